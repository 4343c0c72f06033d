"""Shared invariant checks (peft's ``PeftCommonTester`` is the model): each feature's test file is a thin,
parametrised wrapper around the ``_test_*`` functions here.

Conventions: every check takes the object under test (and what it needs to rebuild it) and asserts an exact
invariant; no check branches on the case, and no check has a per-case tolerance.

Sections:

* **config round trips**: dict, JSON, copy and pickle, for every config class of the package (the case table
  is :data:`tests.test_configs.CONFIG_CASES`).
* **Mixture-of-LoRA invariants** (``check_*``; case table in ``tests/test_mixture_invariants.py``): equality with
  the naive reference under both expert paths, slices of ``BatchSplit`` / ``Parallel`` equal to their child run
  alone, padding invariance, exactly zero gradients for unselected experts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections.abc import Callable
from typing import Any

import torch
from adapters import LoRAConfig

# ---- config round trips --------------------------------------------------------------------------------------------


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config's own ``to_dict()``, else ``dataclasses.asdict`` (the documented serialisation of a dataclass)."""
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """The class's own ``from_dict`` (or ``from_kwargs``), else its constructor."""
    if hasattr(cls, "from_dict"):
        return cls.from_dict(dict(data))
    if hasattr(cls, "from_kwargs"):
        return cls.from_kwargs(**data)
    return cls(**data)


def _test_config_dict_round_trip(config: Any) -> None:
    data = config_to_dict(config)
    assert isinstance(data, dict)
    rebuilt = config_from_dict(type(config), data)
    assert rebuilt == config
    assert config_to_dict(rebuilt) == data  # and the dict is stable


def _test_config_json_round_trip(config: Any) -> None:
    text = json.dumps(config_to_dict(config), sort_keys=True)
    rebuilt = config_from_dict(type(config), json.loads(text))
    assert rebuilt == config
    assert json.dumps(config_to_dict(rebuilt), sort_keys=True) == text


def _test_config_copy_round_trip(config: Any) -> None:
    assert copy.copy(config) == config
    deep = copy.deepcopy(config)
    assert deep == config and type(deep) is type(config)


def _test_config_pickle_round_trip(config: Any) -> None:
    rebuilt = pickle.loads(pickle.dumps(config))
    assert rebuilt == config and type(rebuilt) is type(config)


CONFIG_ROUND_TRIPS: dict[str, Callable[[Any], None]] = {
    "dict": _test_config_dict_round_trip,
    "json": _test_config_json_round_trip,
    "copy": _test_config_copy_round_trip,
    "pickle": _test_config_pickle_round_trip,
}
"""Every round trip a config class must pass, by name."""


def config_classes(package: str = "molora_adapters") -> set[type]:
    """Every dataclass of ``package`` that is a configuration: its name ends in ``Config`` or ``Spec``, or it is
    a declared settings class (``Stage``, ``PromptTemplate``). Importing every sub-module finds them all."""
    import importlib
    import pkgutil

    root = importlib.import_module(package)
    found: set[type] = set()
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if ".metrics." in info.name:  # `evaluate` metric scripts, loaded by `evaluate` itself
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__
                and (
                    value.__name__.endswith(("Config", "Spec"))
                    or value.__name__ in ("Stage", "PromptTemplate")
                )
            ):
                found.add(value)
    return found


# ======================================================================================================================
# Mixture-of-LoRA invariants (issues 15 and 16). Each check raises AssertionError with the largest deviation.
# ======================================================================================================================
ATOL = 1e-5
MIXTURE_EXPERT_CFG = LoRAConfig(r=4, alpha=8, init_weights="bert", dropout=0.0)


def tiny_causal_lm(seed: int = 0):
    """A tiny random Llama causal LM (2 layers, hidden 32) with ``adapters`` attached and our plugin registered."""
    import adapters
    from transformers import AutoModelForCausalLM, LlamaConfig

    import molora_adapters  # noqa: F401

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=1000,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        use_cache=False,
    )
    model = AutoModelForCausalLM.from_config(config)
    adapters.init(model)
    model.eval()
    return model


def tiny_mixture_model(
    arch: str, experts: list[str], seed: int = 0, expert_config=MIXTURE_EXPERT_CFG, **mixture_kw
):
    """A tiny ``arch`` model ("encoder": BERT, "causal": Llama) with one mixture over ``experts``; returns
    ``(model, mixture_name)``."""
    if arch == "encoder":
        from tests.conftest import tiny_adapter_model

        model = tiny_adapter_model("bert", seed=seed)
    elif arch == "causal":
        model = tiny_causal_lm(seed)
    else:
        raise ValueError(f"`arch` must be 'encoder' or 'causal', got {arch!r}.")
    name = model.add_adapter_mixture(experts, expert_config=expert_config, **mixture_kw)
    return model, name


def padded_batch(seed: int = 0, batch: int = 3, seq: int = 9, languages=("de", "zh", "en")) -> dict:
    """Random ids with right padding in rows 1 and 2, plus one language code per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1:, seq - 3 :] = 0
    mask[2:, seq - 5 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "language_ids": list(languages[:batch])}


def model_output(model, batch: dict, **kwargs):
    """The forward's output with router outputs, and its main tensor (hidden states or LM logits)."""
    out = model(**batch, output_router_logits=True, **kwargs)
    main = out.last_hidden_state if "last_hidden_state" in out else out.logits
    return out, main


def slice_batch(batch: dict, rows: slice) -> dict:
    return {k: v[rows] for k, v in batch.items()}


def _max_dev(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def check_matches_reference(model, batch: dict, setup=None) -> None:
    """The fast mixture forward (dense and sparse expert paths) equals the naive per-expert loop, for ``setup``
    (default: the active setup), on every output row."""
    from molora_adapters.mixture.compute import expert_compute
    from molora_adapters.mixture.reference import use_reference_forward

    if setup is not None:
        model.set_active_adapters(setup)
    with torch.no_grad():
        with use_reference_forward():
            _, ref = model_output(model, batch)
        for mode in ("dense", "sparse"):
            with expert_compute(mode):
                _, fast = model_output(model, batch)
            assert fast.shape == ref.shape
            assert torch.allclose(fast, ref, atol=ATOL, rtol=0), (mode, _max_dev(fast, ref))


def check_slices_match_alone(model, batch: dict, block, children_setups: list, channels: str) -> None:
    """Each slice of a ``BatchSplit`` (``channels="split"``) or each copy of a ``Parallel`` (``"parallel"``) block
    equals its child run alone on its rows of the batch: the attention mask and language ids follow the slice."""
    model.set_active_adapters(block)
    with torch.no_grad():
        out, full = model_output(model, batch)
    n = batch["input_ids"].shape[0]
    if channels == "split":
        bounds, start = [], 0
        for size in block.batch_sizes:
            bounds.append((slice(start, start + size), slice(start, start + size)))
            start += size
    else:
        bounds = [(slice(i * n, (i + 1) * n), slice(0, n)) for i in range(len(children_setups))]
    for (out_rows, in_rows), child in zip(bounds, children_setups, strict=True):
        model.set_active_adapters(child)
        with torch.no_grad():
            _, alone = model_output(model, slice_batch(batch, in_rows))
        got = full[out_rows]
        assert torch.allclose(got, alone, atol=ATOL, rtol=0), (child, _max_dev(got, alone))
    model.set_active_adapters(block)
    return out


def check_padding_invariance(model, batch: dict, n_pad: int = 4, pad_id: int = 0) -> None:
    """Appending ``n_pad`` masked pad tokens changes neither the real tokens' router logits nor ``mixture_aux_loss``
    (nor the real tokens' outputs)."""
    padded = dict(batch)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    padded["input_ids"] = torch.cat([ids, torch.full((ids.shape[0], n_pad), pad_id, dtype=ids.dtype)], 1)
    padded["attention_mask"] = torch.cat([mask, torch.zeros(mask.shape[0], n_pad, dtype=mask.dtype)], 1)
    with torch.no_grad():
        out, main = model_output(model, batch)
        out_p, main_p = model_output(model, padded)
    b, t = ids.shape
    real = mask.bool()
    real_out = real.repeat(main.shape[0] // b, 1)  # Parallel returns one copy of the batch per channel
    got, want = main_p[:, :t][real_out], main[real_out]
    assert torch.allclose(got, want, atol=ATOL, rtol=0), _max_dev(got, want)
    assert out.router_logits.keys() == out_p.router_logits.keys()
    for key, logits in out.router_logits.items():
        logits_p = out_p.router_logits[key]
        rows = slice(None)
        if "@" in key:  # a slice of BatchSplit / Parallel: "<layer>@<start>-<end>"
            start, end = (int(v) for v in key.split("@")[1].split("-"))
            rows = slice(start % b, (end - 1) % b + 1)
        mask_k = real[rows]
        n_rows = mask_k.shape[0]
        if logits.shape[0] == n_rows * t:  # token routing: (B T, E) -> real tokens only
            logits = logits.view(n_rows, t, -1)[mask_k]
            logits_p = logits_p.view(n_rows, t + n_pad, -1)[:, :t][mask_k]
        assert torch.allclose(logits, logits_p, atol=ATOL, rtol=0), (key, _max_dev(logits, logits_p))
    assert torch.allclose(out.mixture_aux_loss, out_p.mixture_aux_loss, atol=ATOL, rtol=0), (
        float(out.mixture_aux_loss),
        float(out_p.mixture_aux_loss),
    )


def check_unselected_experts_get_zero_grad(model, name: str, batch: dict, check_routers: bool = False) -> int:
    """After one backward, every expert that no decision of a layer selected has exactly zero LoRA gradient there,
    and every selected one a non-zero gradient (with ``check_routers``, every router too); returns the number of
    (layer, expert) pairs checked as zero."""
    from molora_adapters.mixture.router import layer_key

    model.train_adapter_mixture(name)
    config = model.adapter_mixtures[name]
    top_k = config.top_k
    out, main = model_output(model, batch)
    main.float().pow(2).mean().backward()
    layers = {layer_key(m): m for m in model.modules() if hasattr(m, "loras") and hasattr(m, "location_key")}
    zero = 0
    for key, logits in out.router_logits.items():
        selected = set(logits.topk(min(top_k, logits.shape[-1]), dim=-1).indices.flatten().tolist())
        layer = layers[key.split("@")[0]]
        for e, expert in enumerate(config.experts):
            if expert not in layer.loras:
                continue
            grads = [layer.loras[expert].lora_A.grad, layer.loras[expert].lora_B.grad]
            if e in selected:
                assert all(g is not None and g.abs().sum() > 0 for g in grads), (key, expert)
            else:
                assert all(g is None or torch.count_nonzero(g) == 0 for g in grads), (key, expert)
                zero += 1
        if check_routers:
            grad = model.base_model.mixture_routers[name][key.split("@")[0]].weight.grad
            assert grad is not None and grad.abs().sum() > 0, key
    model.zero_grad(set_to_none=True)
    model.eval()
    return zero
