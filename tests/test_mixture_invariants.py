"""Mixture invariants over the case table: reference equality (alone, Stack, BatchSplit, Parallel) x granularity x
top-k x architecture x expert path, padding invariance, zero gradients of unselected experts, top-k defaults, and
inference -> training -> inference on one model."""

from __future__ import annotations

import copy

import pytest
import torch
from adapters.composition import BatchSplit, Parallel, Stack

from molora_adapters import Mixture, MixtureConfig
from molora_adapters.mixture.compute import expert_compute
from tests.testing_common import (
    check_matches_reference,
    check_padding_invariance,
    check_slices_match_alone,
    check_unselected_experts_get_zero_grad,
    model_output,
    padded_batch,
    tiny_mixture_model,
)

EXPERTS = ["en", "de", "zh", "es", "pt", "ar"]
ARCHS = ["encoder", "causal"]
GRANULARITIES = ["token", "sentence", "language"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("top_k", [1, 2, 6])
def test_alone_matches_reference(arch, granularity, top_k):
    model, name = tiny_mixture_model(arch, EXPERTS, top_k=top_k, granularity=granularity, set_active=True)
    check_matches_reference(model, padded_batch())


def _nested(model, name: str, nesting: str):
    """``nesting`` around mixture ``name`` (a plain LoRA ``other`` and a second mixture are added as needed)."""
    mix = model.get_adapter_mixture(name)
    if nesting == "stack":
        model.add_adapter("other", "lora")
        return Stack("other", mix)
    if nesting == "batch_split":
        model.add_adapter("other", "lora")
        return BatchSplit(mix, "other", batch_sizes=[2, 1])
    if nesting == "parallel":
        config = model.adapter_mixtures[name]
        second = model.add_adapter_mixture(
            ["b0", "b1", "b2"],
            name="second",
            expert_config=model.adapters_config.get(config.experts[0]),
            top_k=min(2, config.top_k),
            granularity=config.granularity,
            languages={"de": "b0", "zh": "b1", "en": "b2"},
        )
        return Parallel(mix, model.get_adapter_mixture(second))
    raise ValueError(nesting)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("nesting", ["stack", "batch_split", "parallel"])
def test_nested_matches_reference(arch, granularity, nesting):
    model, name = tiny_mixture_model(arch, EXPERTS, top_k=2, granularity=granularity)
    block = _nested(model, name, nesting)
    batch = padded_batch()
    check_matches_reference(model, batch, block)
    if nesting == "batch_split":  # each slice equals its child alone on its rows (mask and languages sliced)
        out = check_slices_match_alone(model, batch, block, [block[0], "other"], "split")
        assert all("@0-2" in key for key in out.router_logits)
    elif nesting == "parallel":
        out = check_slices_match_alone(model, batch, block, [block[0], block[1]], "parallel")
        n_layers = len(model.base_model.mixture_routers[name]) + len(
            model.base_model.mixture_routers["second"]
        )
        assert len(out.router_logits) == n_layers  # one entry per (layer, copy): no copy overwrites another


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_padding_invariance(arch, granularity, path):
    model, _ = tiny_mixture_model(
        arch,
        EXPERTS,
        top_k=2,
        granularity=granularity,
        load_balancing_coef=0.5,
        router_z_loss_coef=0.1,
        set_active=True,
    )
    with expert_compute(path):
        check_padding_invariance(model, padded_batch())


@pytest.mark.parametrize("nesting", ["batch_split", "parallel"])
def test_padding_invariance_nested(nesting):
    model, name = tiny_mixture_model(
        "encoder", EXPERTS, top_k=2, load_balancing_coef=0.5, router_z_loss_coef=0.1
    )
    model.set_active_adapters(_nested(model, name, nesting))
    check_padding_invariance(model, padded_batch())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_unselected_experts_get_exactly_zero_gradient(arch, path):
    model, name = tiny_mixture_model(arch, EXPERTS, top_k=2, granularity="sentence", set_active=True)
    batch = {k: v[:1] for k, v in padded_batch().items()}
    with expert_compute(path):
        assert check_unselected_experts_get_zero_grad(model, name, batch) > 0


def test_sparse_and_dense_paths_agree_on_gradients():
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)
    model.train_adapter_mixture(name)
    batch = padded_batch()
    grads = {}
    for path in ("dense", "sparse"):
        with expert_compute(path):
            out, main = model_output(model, batch)
            (main.pow(2).mean() + out.mixture_aux_loss).backward()
        grads[path] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
    assert grads["dense"].keys() == grads["sparse"].keys()
    for n, g in grads["dense"].items():
        assert torch.allclose(g, grads["sparse"][n], atol=1e-5, rtol=1e-4), n


def test_expert_compute_rejects_unknown_mode():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        with expert_compute("fast"):
            pass


# ---- top-k defaults (issue 15, item 2) -----------------------------------------------------------------------------
def test_config_top_k_defaults_to_min_2_and_experts():
    assert MixtureConfig(experts=["en"]).top_k == 1
    assert MixtureConfig(experts=["en", "de", "zh"]).top_k == 2
    with pytest.raises(ValueError, match=r"`top_k` must be an int in \[1, 2\]"):
        MixtureConfig(experts=["en", "de"], top_k=3)
    with pytest.raises(ValueError, match=r"`top_k` must be an int in \[1, 2\]"):
        Mixture("en", "de", top_k=3)


def test_one_expert_mixture_without_top_k():
    model, name = tiny_mixture_model("encoder", ["en"], set_active=True)  # raised: top_k=2 > 1 expert
    assert model.adapter_mixtures[name].top_k == 1
    batch = padded_batch()
    with torch.no_grad():
        _, configured = model_output(model, batch)
        model.set_active_adapters(Mixture("en"))  # raised before: top_k=2 > 1 expert
        _, by_hand = model_output(model, batch)
    assert Mixture("en").top_k is None  # built by hand: follows the config
    assert torch.equal(configured, by_hand)


def test_hand_built_block_uses_the_config_top_k():
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=3, set_active=True)
    batch = padded_batch()
    with torch.no_grad():
        _, configured = model_output(model, batch)
        model.set_active_adapters(Mixture(*EXPERTS))  # no top_k: the config's 3, not 2
        _, by_hand = model_output(model, batch)
        model.set_active_adapters(Mixture(*EXPERTS, top_k=2))
        _, two = model_output(model, batch)
    assert torch.equal(configured, by_hand)
    assert not torch.allclose(configured, two)


@pytest.mark.parametrize(
    "block",
    [
        Mixture(*EXPERTS),
        Mixture(*EXPERTS, top_k=2),
        Mixture(*EXPERTS, name="moe"),
        Mixture(*EXPERTS, top_k=3, name="m"),
    ],
    ids=repr,
)
def test_block_round_trips_with_its_top_k_and_name(block):
    """``to_dict`` / ``from_dict`` (ours and adapters' generic one, through JSON) keep experts, ``top_k`` and name."""
    import json

    from adapters.composition import AdapterCompositionBlock, Stack

    for data in (block.to_dict(), json.loads(json.dumps(block.to_dict()))):
        for again in (Mixture.from_dict(data), AdapterCompositionBlock.from_dict(data)):
            assert again == block
            assert (again.children, again.top_k, again.name) == (block.children, block.top_k, block.name)
    nested = AdapterCompositionBlock.from_dict(Stack("task", block).to_dict())
    assert nested.children[1] == block and nested.children[1].top_k == block.top_k


# ---- inference mode, then training (issue 15, item 5) ------------------------------------------------------------
def test_pipeline_then_train_then_pipeline(tiny_tokenizer, multilingual_sentences):
    from molora_adapters.oie import OIEPipeline, add_oie_head
    from tests.conftest import tiny_adapter_model

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    name = model.add_adapter_mixture(EXPERTS[:3], top_k=2, expert_config="lora", set_active=True)
    pipe = OIEPipeline(model, tiny_tokenizer, min_args=0)
    sentences = multilingual_sentences[:3]
    first = pipe.extract(sentences)  # under torch.inference_mode(): builds the routers' layout caches
    model.train_adapter_mixture(name)
    model.train()
    enc = tiny_tokenizer(sentences, return_tensors="pt", padding=True)
    out = model.base_model(**enc, output_router_logits=True)
    (
        out.last_hidden_state.pow(2).mean() + out.mixture_aux_loss
    ).backward()  # raised "Inference tensors ..." before
    assert any(p.grad is not None for n, p in model.named_parameters() if "mixture_routers" in n)
    model.eval()
    again = pipe.extract(sentences)  # no optimizer step ran: the same extractions
    assert [[e.to_dict() for e in r] for r in again] == [[e.to_dict() for e in r] for r in first]


@pytest.mark.parametrize("outer", ["parallel>batch_split", "stack>parallel", "batch_split>stack"])
def test_deeper_nestings_rejected_at_set_active_adapters(outer):
    """Only one level of Stack / BatchSplit / Parallel around a Mixture is exact and supported; deeper setups fail
    when activated (adapters' own depth check), before any forward."""
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2)
    model.add_adapter("other", "lora")
    mix = model.get_adapter_mixture(name)
    block = {
        "parallel>batch_split": Parallel(BatchSplit(mix, "other", batch_sizes=[2, 1]), "other"),
        "stack>parallel": Stack("other", Parallel(mix, "other")),
        "batch_split>stack": BatchSplit(Stack("other", mix), "other", batch_sizes=[1, 2]),
    }[outer]
    with pytest.raises(ValueError, match="too deep"):
        model.set_active_adapters(block)


# ---- the layers a mixture adapts are the model's own (deep copies, gradient checkpointing) --------------------------
def _grads(model, batch) -> dict:
    out, main = model_output(model, batch)
    (main.pow(2).mean() + out.mixture_aux_loss).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out, grads


def test_deepcopy_runs_with_the_copied_layers():
    """``MixtureRouters.layers`` holds the model's own layers: a deep copy runs with the copy's weights."""
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)
    clone = copy.deepcopy(model)
    routers = clone.base_model.mixture_routers[name]
    modules = {id(m) for m in clone.modules()}
    assert routers.layers and all(id(layer) in modules for layer in routers.layers.values())
    with torch.no_grad():  # change the copy's experts so that the original's weights would show
        for layer in routers.layers.values():
            for lora in layer.loras.values():
                lora.lora_A.add_(0.5)
    check_matches_reference(clone, padded_batch())


def test_gradient_checkpointing_gives_the_same_gradients():
    """A checkpointed layer recomputed in backward routes as in the forward: the gradients equal those without."""
    model, name = tiny_mixture_model("causal", EXPERTS, top_k=2, load_balancing_coef=0.5, set_active=True)
    model.train_adapter_mixture(name)
    batch = padded_batch()
    _, plain = _grads(model, batch)
    model.gradient_checkpointing_enable()
    model.train()
    _, checkpointed = _grads(model, batch)
    assert plain.keys() == checkpointed.keys() and any("mixture_routers" in n for n in plain)
    for n, g in plain.items():
        assert torch.allclose(g, checkpointed[n], atol=1e-6, rtol=1e-5), n
