"""Shared invariant checks, used by each feature's thin, parametrised test file (peft's ``PeftCommonTester`` style)."""

from __future__ import annotations

import torch

# ======================================================================================================================
# Mixture-of-LoRA invariants (issues 15 and 16). Each check raises AssertionError with the largest deviation.
# ======================================================================================================================
from adapters import LoRAConfig

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


def check_unselected_experts_get_zero_grad(model, name: str, batch: dict) -> int:
    """After one backward, every expert that no decision of a layer selected has exactly zero LoRA gradient there,
    and every selected one a non-zero gradient; returns the number of (layer, expert) pairs checked as zero."""
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
    model.zero_grad(set_to_none=True)
    model.eval()
    return zero
