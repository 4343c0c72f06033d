"""The mixture's fast path (issue 16): top-k gates from logits, the fused residual add of a top-level mixture, and
the stacked-weight cache of inference. Each is checked against a reference: the full softmax then top-k, the
composition path, the naive per-expert loop after the weights change."""

from __future__ import annotations

import pytest
import torch
from adapters.composition import Stack

from molora_adapters.mixture.layer import sparse_top_k_gates, top_k_gates
from tests.testing_common import ATOL, check_matches_reference, model_output, padded_batch, tiny_mixture_model

EXPERTS = ["en", "de", "zh", "es", "pt", "ar"]


# ---- top-k gates from logits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_experts", [3, 6, 16, 32])
@pytest.mark.parametrize("top_k", [1, 2, 3])
@pytest.mark.parametrize("renormalize", [True, False])
def test_top_k_gates_equal_softmax_then_top_k(n_experts, top_k, renormalize):
    """Values and gradients equal the reference: the full softmax, its top-k, renormalised."""
    logits = torch.randn(
        64, n_experts, dtype=torch.float32, generator=torch.Generator().manual_seed(n_experts)
    )
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    fast = top_k_gates(a, top_k, n_experts, renormalize)
    ref = sparse_top_k_gates(b.softmax(-1), top_k, n_experts, renormalize)
    assert torch.equal(fast > 0, ref > 0)
    assert torch.allclose(fast, ref, atol=1e-6, rtol=0)
    weights = torch.randn(64, n_experts, generator=torch.Generator().manual_seed(1))
    (ref * weights).sum().backward()
    if top_k == 1 and renormalize:  # gates are exactly 1: the reference's p / p has zero gradient, ours none
        assert not fast.requires_grad and torch.allclose(b.grad, torch.zeros_like(b.grad), atol=1e-6)
        return
    (fast * weights).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=0)


def test_top_k_gates_with_ties_and_absent_experts():
    """Tied logits still give exactly k distinct experts; absent experts (-inf) are never selected."""
    logits = torch.tensor([[1.0, 1.0, 1.0, 0.0], [2.0, float("-inf"), 2.0, float("-inf")]])
    gates = top_k_gates(logits, 1, 4)
    assert torch.equal((gates > 0).sum(-1), torch.tensor([1, 1])) and gates[1, 1] == gates[1, 3] == 0
    gates = top_k_gates(logits, 2, 4)
    assert ((gates > 0).sum(-1) == 2).all()
    assert torch.allclose(gates.sum(-1), torch.ones(2))
    assert torch.equal(gates[1], torch.tensor([0.5, 0.0, 0.5, 0.0]))
    assert torch.equal(gates[0, :3].sort().values, torch.tensor([0.0, 0.5, 0.5]))


# ---- the fused residual add of a top-level mixture -----------------------------------------------------------------
@pytest.mark.parametrize("arch", ["encoder", "causal"])
def test_top_level_mixture_equals_its_composition_path(arch):
    """A top-level mixture adds its delta inside the B matmul (the seam's ``LoRALinear.forward``); ``Stack(mixture)``
    composes through adapters' path (delta, then scale-and-add). Outputs and gradients agree."""
    model, name = tiny_mixture_model(arch, EXPERTS, top_k=2, load_balancing_coef=0.5)
    mix = model.get_adapter_mixture(name)
    batch = padded_batch()
    results = []
    for setup in (mix, Stack(mix)):
        model.train_adapter_mixture(name)
        model.set_active_adapters(setup)
        out, main = model_output(model, batch)
        (main.pow(2).mean() + out.mixture_aux_loss).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        results.append((main.detach(), grads))
    (fused, fused_grads), (composed, composed_grads) = results
    assert torch.allclose(fused, composed, atol=ATOL, rtol=0)
    assert fused_grads.keys() == composed_grads.keys() and fused_grads
    for n, g in fused_grads.items():
        assert torch.allclose(g, composed_grads[n], atol=1e-6, rtol=1e-5), n


def test_fused_residual_under_autocast_matches_float32():
    """Under autocast the frozen linear's output is bfloat16 and the experts' product is added, not accumulated in
    place; the result stays the float32 one to bfloat16 precision."""
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)
    batch = padded_batch()
    with torch.no_grad():
        _, ref = model_output(model, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, low = model_output(model, batch)
    assert torch.allclose(low.float(), ref, atol=0.1, rtol=0.05)


# ---- the stacked-weight cache of inference -------------------------------------------------------------------------
def _expert_loras(model, name):
    routers = model.base_model.mixture_routers[name]
    return [lora for layer in routers.layers.values() for lora in layer.loras.values()]


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_cache_follows_in_place_updates(mode):
    """An optimizer-like in-place update of the experts and routers between two inference forwards is seen by the
    second one (the cache is keyed by the weights' versions)."""
    from molora_adapters.mixture.compute import expert_compute

    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)
    batch = padded_batch()
    with expert_compute(mode):
        check_matches_reference(model, batch)
        with torch.no_grad():
            before = model_output(model, batch)[1].clone()
            for lora in _expert_loras(model, name):
                lora.lora_B.add_(0.05)
            for router in model.base_model.mixture_routers[name].values():
                router.weight.mul_(-1.0)
            after = model_output(model, batch)[1]
    assert not torch.allclose(before, after, atol=1e-3)
    check_matches_reference(model, batch)


def test_cache_follows_load_state_dict_and_dtype_changes():
    """``load_state_dict`` (in-place copies) and ``.to(dtype)`` (new storage) both rebuild the stacks."""
    model, name = tiny_mixture_model("causal", EXPERTS, top_k=2, set_active=True)
    batch = padded_batch()
    with torch.no_grad():
        before = model_output(model, batch)[1].clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key in state:
        if ".loras." in key and "lora_B" in key:
            state[key] += 0.05
    model.load_state_dict(state)
    with torch.no_grad():
        assert not torch.allclose(before, model_output(model, batch)[1], atol=1e-3)
    check_matches_reference(model, batch)
    model.to(torch.float64)
    check_matches_reference(model, {**batch})
    with torch.no_grad():
        assert model_output(model, batch)[1].dtype == torch.float64


def test_cache_built_under_inference_mode_serves_a_later_grad_forward():
    """Stacks cached under ``inference_mode`` are ordinary tensors: a later forward with frozen weights but a
    gradient to the inputs may save them for backward."""
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)
    batch = padded_batch()
    with torch.inference_mode():
        model_output(model, batch)
    for p in model.parameters():
        p.requires_grad_(False)
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_()
    out = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
    out.last_hidden_state.pow(2).mean().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


def test_training_forward_gives_each_expert_its_own_gradient_after_cached_inference():
    """Inference first (stacks cached), then a training step: the experts' gradients flow as without the cache."""
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, load_balancing_coef=0.5, set_active=True)
    batch = padded_batch()

    def grads():
        model.train_adapter_mixture(name)
        out, main = model_output(model, batch)
        (main.pow(2).mean() + out.mixture_aux_loss).backward()
        g = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return g

    fresh = grads()
    model.eval()
    with torch.no_grad():
        model_output(model, batch)
    after_cache = grads()
    assert fresh.keys() == after_cache.keys() and any("lora_B" in n for n in fresh)
    for n, g in fresh.items():
        assert torch.equal(g, after_cache[n]), n


@pytest.mark.parametrize("optimizer", ["fused", "foreach", "for-loop"])
def test_cache_follows_optimizer_steps(optimizer):
    """A fused AdamW step updates the weights without bumping their version counters; the cache still sees it."""
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, load_balancing_coef=0.5, set_active=True)
    model.train_adapter_mixture(name)
    batch = padded_batch()
    flags = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False)}[optimizer]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1, **flags)
    model.eval()
    with torch.no_grad():
        before = model_output(model, batch)[1].clone()  # stacks cached
    model.train()
    out, main = model_output(model, batch)
    (main.pow(2).mean() + out.mixture_aux_loss).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(before, model_output(model, batch)[1], atol=1e-3)
    check_matches_reference(model, batch)


def test_clear_weight_cache_after_data_edits():
    """Edits through ``.data`` bypass version counters: ``clear_weight_cache`` makes the next forward see them."""
    from molora_adapters.mixture import clear_weight_cache

    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)
    batch = padded_batch()
    with torch.no_grad():
        model_output(model, batch)
    for lora in _expert_loras(model, name):
        lora.lora_B.data.add_(0.05)
    clear_weight_cache(model)
    check_matches_reference(model, batch)


# ---- the compute path: the mixture's setting, decided per layer; forcing it is thread-local --------------------------
@pytest.mark.parametrize("compute", ["dense", "sparse", "auto"])
def test_compute_setting_decides_the_path(compute, monkeypatch):
    """``MixtureConfig.compute`` picks each layer's expert path (``auto``: the cost switch, dense at E=6, r=4, k=2);
    every path equals the reference."""
    from molora_adapters.mixture import layer as layer_mod

    calls = []
    original = layer_mod.sparse_experts
    monkeypatch.setattr(layer_mod, "sparse_experts", lambda *a, **k: calls.append(1) or original(*a, **k))
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, compute=compute, set_active=True)
    assert model.adapter_mixtures[name].compute.value == compute
    with torch.no_grad():
        model_output(model, padded_batch())
    n_layers = len(model.base_model.mixture_routers[name])
    assert len(calls) == (n_layers if compute == "sparse" else 0)
    routers = model.base_model.mixture_routers[name].values()
    assert all(r.sparse_path(2, torch.float32) == (compute == "sparse") for r in routers)
    check_matches_reference(model, padded_batch())


def test_compute_setting_is_validated_and_saved(tmp_path):
    from molora_adapters import MixtureConfig

    with pytest.raises(ValueError, match="`compute` must be one of"):
        MixtureConfig(experts=["a", "b"], compute="fast")
    model, name = tiny_mixture_model("encoder", EXPERTS, top_k=2, compute="sparse", set_active=True)
    assert model.adapters_config.mixtures[name]["compute"] == "sparse"
    model.save_adapter_mixture(str(tmp_path / "m"), name)
    again, _ = tiny_mixture_model("encoder", ["x", "y"], top_k=1)
    loaded = again.load_adapter_mixture(str(tmp_path / "m"))
    assert again.adapter_mixtures[loaded].compute.value == "sparse"


def test_forcing_a_path_is_local_to_the_thread():
    """``expert_compute`` forces a path in its own thread only: another thread keeps the mixtures' settings."""
    import threading

    from molora_adapters.mixture.compute import expert_compute, forced_compute

    seen = []
    with expert_compute("sparse"):
        thread = threading.Thread(target=lambda: seen.append(forced_compute()))
        thread.start()
        thread.join()
        assert forced_compute().value == "sparse"
    assert seen == [None] and forced_compute() is None


def test_a_training_forward_drops_only_its_own_models_cache():
    """The weight cache is per layer: a forward that records gradients drops that model's stacks, not another's."""
    from molora_adapters.mixture.weights import _CACHE_ATTR

    models = [tiny_mixture_model("encoder", EXPERTS, top_k=2, set_active=True)[0] for _ in range(2)]
    batch = padded_batch()
    with torch.no_grad():
        for model in models:
            model_output(model, batch)

    def cached(model):
        routers = [r for m in model.base_model.mixture_routers.values() for r in m.values()]
        return sum(_CACHE_ATTR in r.__dict__ for r in routers)

    assert cached(models[0]) == cached(models[1]) > 0
    models[0].train_adapter_mixture(models[0].active_adapters.name)
    model_output(models[0], batch)[1].sum().backward()
    assert cached(models[0]) == 0 and cached(models[1]) > 0
