"""The Multi2OIE head: config validation, masking invariants, and identical outputs after save / load."""

from __future__ import annotations

import dataclasses
import json
import pickle

import pytest
import torch
from conftest import tiny_adapter_model

from molora_adapters.oie.heads import OIEHead, OIEHeadConfig, OIEHeadOutput, add_oie_head, register_oie_head
from molora_adapters.oie.labels import IGNORE_INDEX

SMALL = dict(d_feedforward=64, n_arg_layers=2)


def _inputs(seed: int = 0, batch: int = 3, length: int = 9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 900, (batch, length), generator=g)
    am = torch.ones_like(ids)
    am[-1, -3:] = 0  # padded row
    pm = torch.zeros_like(ids)
    pm[:, 2:4] = 1
    return dict(input_ids=ids, attention_mask=am, predicate_mask=pm)


def _outputs(model, name="oie"):
    model.eval()
    with torch.no_grad():
        out = model(**_inputs(), head=name, return_dict=True)
    return out.predicate_logits, out.argument_logits


@pytest.fixture
def oie_model(model_type):
    model = tiny_adapter_model(model_type)
    add_oie_head(model, "oie", **SMALL)
    return model


def test_forward_shapes_and_loss(oie_model):
    inputs = _inputs()
    labels = torch.zeros_like(inputs["input_ids"])
    out = oie_model(**inputs, predicate_labels=labels, argument_labels=labels, return_dict=True)
    assert isinstance(out, OIEHeadOutput)
    assert out.predicate_logits.shape == (3, 9, 3) and out.argument_logits.shape == (3, 9, 9)
    torch.testing.assert_close(out.loss, out.predicate_loss + out.argument_loss)
    loss_tuple = oie_model(**inputs, predicate_labels=labels, argument_labels=labels, return_dict=False)
    torch.testing.assert_close(loss_tuple[0], out.loss)


def test_ignored_positions_do_not_change_the_loss(oie_model):
    inputs = _inputs()
    labels = torch.zeros_like(inputs["input_ids"])
    labels[:, 5:] = IGNORE_INDEX
    a = oie_model(**inputs, predicate_labels=labels, argument_labels=labels, return_dict=True).loss
    # the loss equals a cross-entropy computed on the scored positions only
    out = oie_model(**inputs, return_dict=True)
    manual = torch.nn.functional.cross_entropy(
        out.predicate_logits[:, :5].flatten(0, 1), labels[:, :5].flatten()
    )
    manual = manual + torch.nn.functional.cross_entropy(
        out.argument_logits[:, :5].flatten(0, 1), labels[:, :5].flatten()
    )
    torch.testing.assert_close(a, manual)
    all_ignored = torch.full_like(labels, IGNORE_INDEX)
    zero = oie_model(
        **inputs, predicate_labels=all_ignored, argument_labels=all_ignored, return_dict=True
    ).loss
    assert zero.item() == 0.0


def test_argument_logits_depend_only_on_the_predicate_tokens_as_keys(oie_model):
    """Multi2OIE: a token attends to the predicate's tokens only, so changing another real token changes
    that token's tags and nothing else, while changing a predicate token changes every token's tags."""
    head: OIEHead = oie_model.heads["oie"]
    head.eval()
    torch.manual_seed(0)
    seq = torch.randn(1, 7, oie_model.config.hidden_size)
    pm = torch.tensor([[0, 0, 1, 1, 0, 0, 0]])
    am = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    base = head.argument_logits(seq, pm, am)

    other = seq.clone()
    other[0, 4] += 3.0 * torch.randn(seq.shape[-1])  # a real, non-predicate token
    out = head.argument_logits(other, pm, am)
    keep = [0, 1, 2, 3, 5]
    torch.testing.assert_close(out[0, keep], base[0, keep], rtol=0, atol=1e-6)
    assert not torch.allclose(out[0, 4], base[0, 4], atol=1e-3)  # the token itself does change

    predicate = seq.clone()
    predicate[0, 2] += 3.0 * torch.randn(seq.shape[-1])
    out = head.argument_logits(predicate, pm, am)
    assert all(not torch.allclose(out[0, t], base[0, t], atol=1e-4) for t in (0, 1, 4, 5))

    padding = seq.clone()
    padding[0, 6] += 10.0
    torch.testing.assert_close(head.argument_logits(padding, pm, am)[0, :6], base[0, :6], rtol=0, atol=1e-6)
    assert torch.isfinite(head.argument_logits(seq, torch.zeros_like(pm), am)).all()  # no predicate: no NaN


def test_save_head_load_head_identical(oie_model, tmp_path, model_type):
    before = _outputs(oie_model)
    oie_model.save_head(str(tmp_path), "oie")
    fresh = tiny_adapter_model(model_type)  # same seed -> same encoder; head weights must come from disk
    register_oie_head(fresh)
    fresh.load_head(str(tmp_path))
    assert json.loads((tmp_path / "head_config.json").read_text())["config"]["head_type"] == "oie"
    for a, b in zip(before, _outputs(fresh), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_save_adapter_with_head_identical(tmp_path):
    model = tiny_adapter_model()
    model.add_adapter("oie", config="seq_bn")
    add_oie_head(model, "oie", **SMALL)
    model.set_active_adapters("oie")
    with torch.no_grad():
        for p in model.parameters():  # make the adapter non-trivial
            p.add_(0.01 * torch.randn_like(p))
    before = _outputs(model)
    model.save_adapter(str(tmp_path), "oie", with_head=True)
    assert (tmp_path / "head_config.json").is_file()
    fresh = tiny_adapter_model()
    with torch.no_grad():  # same perturbation of the shared encoder weights is not reproduced: copy base only
        fresh.base_model.load_state_dict(
            {k: v for k, v in model.base_model.state_dict().items() if "adapters" not in k}, strict=False
        )
    register_oie_head(fresh)
    name = fresh.load_adapter(str(tmp_path), with_head=True)
    fresh.set_active_adapters(name)
    for a, b in zip(before, _outputs(fresh), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_save_pretrained_then_from_pretrained(oie_model, tmp_path):
    from adapters import AutoAdapterModel

    before = _outputs(oie_model)
    oie_model.save_pretrained(str(tmp_path))
    loaded = AutoAdapterModel.from_pretrained(str(tmp_path))
    assert isinstance(loaded.heads["oie"], OIEHead)
    for a, b in zip(before, _outputs(loaded), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_register_rejects_a_different_oie_head_class():
    model = tiny_adapter_model()
    register_oie_head(model)
    register_oie_head(model)  # idempotent
    model.custom_heads["oie"] = type("Other", (OIEHead,), {})
    with pytest.raises(ValueError, match="already registered"):
        register_oie_head(model)


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_arg_layers", 0),
        ("n_arg_heads", -1),
        ("arg_dropout", 1.0),
        ("activation", "tanh"),
        ("argument_loss_weight", -1.0),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=f"`{field}`"):
        OIEHeadConfig(**{field: value})


def test_heads_must_divide_model_width():
    model = tiny_adapter_model()
    with pytest.raises(ValueError, match="n_arg_heads"):
        add_oie_head(model, "oie", n_arg_heads=7)


def test_config_round_trips_and_unknown_keys_warn(caplog):
    cfg = OIEHeadConfig(n_arg_layers=2, activation="gelu")
    assert OIEHeadConfig(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with caplog.at_level("WARNING"):
        again = OIEHeadConfig.from_kwargs(
            **dataclasses.asdict(cfg), molora_version="0.0", head_type="oie", future_key=1
        )
    assert again == cfg and "future_key" in caplog.text


def test_compact_keys_give_the_full_forms_scores(oie_model):
    """`compact_keys=True` (keys and values at the attended positions only, issue 22) gives the full form's scores up
    to float rounding: rows with predicates of different lengths, a padded row and a row with no predicate token
    (which attends to all its tokens)."""
    head: OIEHead = oie_model.heads["oie"]
    head.eval()
    torch.manual_seed(0)
    seq = torch.randn(4, 8, oie_model.config.hidden_size)
    pm = torch.tensor(
        [
            [0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 0, 0, 0, 0],
        ]
    )
    am = torch.ones_like(pm)
    am[3, 5:] = 0  # padded row
    with torch.no_grad():
        full = head.argument_logits(seq, pm, am)
        compact = head.argument_logits(seq, pm, am, compact_keys=True)
        torch.testing.assert_close(compact, full, rtol=1e-5, atol=1e-5)
        # only predicate rows: the keys shrink to the longest predicate (3 sub-words), same scores
        compact = head.argument_logits(seq[[0, 1, 3]], pm[[0, 1, 3]], am[[0, 1, 3]], compact_keys=True)
        torch.testing.assert_close(compact, full[[0, 1, 3]], rtol=1e-5, atol=1e-5)
