"""Packaged OIE models (issue 22): exact fp32 round trip, fp16 / int8 within tolerance, integrity errors, the shipped
model's default resolution (missing and present), the CLI, the model card and the Hub round trip.

The "trained" model is a tiny BERT base with an OIE head and a two-expert mixture whose encoder layers, some embedding
rows, experts and routers are perturbed: enough to exercise every encoding of the format in about a second.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_tokenizer, tiny_config

from molora_adapters.cli import main
from molora_adapters.oie.shipping import (
    MANIFEST_NAME,
    PackageIntegrityError,
    ShippedModelMissingError,
    load_packaged_model,
    package_model,
)
from molora_adapters.oie.shipping import shipped as shipped_module
from molora_adapters.oie.shipping.format import decode_tensor, encode_tensor

SENTENCES = [
    "Lisbon is the capital of Portugal .",
    "Berlin liegt an der Spree und ist groß .",
    "Barack Obama was born in Hawaii and studied law at Harvard .",
]
CHANGED_ROWS = list(range(10, 40))
# max |logit difference| / max |logit| against the run's model (measured on this model: fp16 1.3e-4, int8 1.3e-2;
# its "training" noise is larger than its weights, a harder case than real training's small changes)
TOLERANCE = {"fp16": 1e-3, "int8": 3e-2}


def _write_run_files(root: Path, base: Path) -> None:
    """recipe.json, training.json and results.json as `run_recipe` writes them (values made up for the card)."""
    recipe = {"model": str(base), "stages": ["embeddings", "backbone", "mixture"], "experts": ["en", "de"],
              "expert_fallback": {"pt": "de"}, "top_k": 1, "granularity": "token", "lora_rank": 2, "seed": 3}  # fmt: skip
    training = {
        "train_seconds": 123.4, "wall_seconds": 150.0, "samples": 4321, "samples_per_second": 35.02,
        "time_budget": 120.0, "machine": {"cpu": "Test CPU 9000", "cpu_count": 2},
        "stages": [{"name": "embeddings", "global_step": 7, "train_loss": 1.5, "clock_seconds": 30.0}],
    }  # fmt: skip
    rows = [
        {"benchmark": "CaRB en test", "key": "carb:en", "scorer": "carb", "lang": "en", "sentences": 641,
         "precision": 0.5123, "recall": 0.4011, "f1": 0.4499, "auc": 0.2876},
        {"benchmark": "BenchIE zh", "key": "benchie:zh", "scorer": "benchie", "lang": "zh", "sentences": 300,
         "precision": 0.2, "recall": 0.1, "f1": 0.1333, "auc": None},
        {"benchmark": "CaRB en dev", "key": "dev:en", "scorer": "carb", "lang": "en", "sentences": 638,
         "precision": 0.55, "recall": 0.41, "f1": 0.4701, "auc": 0.3},
    ]  # fmt: skip
    results = {
        "results": rows,
        "decoding": {"span_strategy": "merge", "min_args": 1},
        "data": {
            "sources": {"oie2016": 1759, "projected:vendored": {"de": 470, "es": 570}},
            "few_shot_sentences": {"es": 300},
            "dev_sentences": {"de": 30},
        },
    }
    for name, data in (("recipe.json", recipe), ("training.json", training), ("results.json", results)):
        (root / name).write_text(json.dumps(data), encoding="utf-8")


def _save_run(model, run: Path) -> None:
    """The final-model layout of a staged run (`save_final_model`) in ``run/train``, without the training code."""
    from molora_adapters.loading import MANIFEST_NAME as STAGED_MANIFEST

    model.save_pretrained(str(run / "train"))
    (run / "train" / "heads").mkdir()
    model.save_adapter_mixture(str(run / "train" / "mixtures" / "oie_mixture"), "oie_mixture")
    model.save_head(str(run / "train" / "heads" / "oie"), "oie")
    staged = {"active_adapters": model.active_adapters.to_dict(), "active_head": "oie", "heads": ["oie"],
              "mixtures": ["oie_mixture"]}  # fmt: skip
    (run / "train" / STAGED_MANIFEST).write_text(json.dumps(staged), encoding="utf-8")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """``(run dir, base dir)``: a staged-run layout (``train/`` + run files) over a tiny saved base encoder."""
    from adapters import AutoAdapterModel, LoRAConfig
    from transformers import BertModel

    import molora_adapters  # noqa: F401
    from molora_adapters.oie import add_oie_head

    root = tmp_path_factory.mktemp("shipping")
    base_dir, run = root / "base", root / "run"
    torch.manual_seed(0)
    BertModel(tiny_config("bert", pad_token_id=1)).save_pretrained(str(base_dir))
    make_tiny_tokenizer().save_pretrained(str(base_dir))
    model = AutoAdapterModel.from_pretrained(str(base_dir))
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=1)
    model.add_adapter_mixture(
        ["en", "de"],
        name="oie_mixture",
        top_k=1,
        expert_config=LoRAConfig(r=2, alpha=4, selfattn_lora=True, intermediate_lora=True, output_lora=True),
        set_active=True,
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # "training": every encoder layer, 30 embedding rows, experts, routers and the head
        for name, p in model.named_parameters():
            if ".encoder.layer." in name or "mixture_routers" in name or ".loras." in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        model.bert.embeddings.word_embeddings.weight[CHANGED_ROWS] += 0.05 * torch.randn(
            len(CHANGED_ROWS), model.config.hidden_size, generator=g
        )
        # a predicate-tag bias, so that random weights give tuples
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    model.active_head = "oie"
    _save_run(model, run)
    make_tiny_tokenizer().save_pretrained(str(run / "train"))
    _write_run_files(run, base_dir)
    return run, base_dir


@pytest.fixture(scope="module")
def packages(tiny_run, tmp_path_factory):
    run, _ = tiny_run
    out = tmp_path_factory.mktemp("packages")
    return {dt: package_model(run, out / dt, dtype=dt, progress=False) for dt in ("fp32", "fp16", "int8")}


def _reference(tiny_run):
    from molora_adapters.oie.pipeline import OIEPipeline

    return OIEPipeline.from_pretrained(str(tiny_run[0] / "train"))


def _logits(model, tokenizer):
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, head="oie", return_dict=True)
        pred_mask = torch.zeros_like(enc["input_ids"])
        pred_mask[:, 2] = 1
        args = model.heads["oie"].argument_logits(out.sequence_output, pred_mask, enc["attention_mask"])
    return out.predicate_logits, args


def _as_dicts(extractions):
    return [[e.to_dict() for e in exts] for exts in extractions]


# ------------------------------------------------------------------------------------------------ format
def test_fp32_package_reloads_the_run_model_exactly(tiny_run, packages):
    from molora_adapters.oie.pipeline import OIEPipeline

    ref = _reference(tiny_run)
    pipe = OIEPipeline.from_pretrained(str(packages["fp32"]))
    for a, b in zip(_logits(ref.model, ref.tokenizer), _logits(pipe.model, pipe.tokenizer), strict=True):
        assert torch.equal(a, b)
    expected = _as_dicts(ref.extract(SENTENCES))
    assert any(expected) and _as_dicts(pipe.extract(SENTENCES)) == expected
    ref_state, state = ref.model.state_dict(), pipe.model.state_dict()
    assert ref_state.keys() == state.keys()
    assert all(torch.equal(ref_state[k], state[k]) for k in ref_state)
    assert pipe.model.active_head == "oie" and str(pipe.model.active_adapters) == str(
        ref.model.active_adapters
    )


def test_only_what_differs_from_the_base_is_stored(packages):
    manifest = json.loads((packages["fp32"] / MANIFEST_NAME).read_text())
    tensors = manifest["tensors"]
    emb = tensors["bert.embeddings.word_embeddings.weight"]
    assert emb["encoding"] == "rows" and emb["rows"] == len(CHANGED_ROWS)
    assert "bert.embeddings.position_embeddings.weight" not in tensors  # unchanged: comes from the base
    assert "bert.embeddings.LayerNorm.weight" not in tensors
    files = {e["file"] for e in tensors.values()}
    assert files == {"encoder.safetensors", "mixture.safetensors", "head.safetensors"}
    assert (
        tensors["bert.mixture_routers.oie_mixture.0-selfattn_lora-q.weight"]["file"] == "mixture.safetensors"
    )
    assert manifest["tokenizer"]["from_base"] and "tokenizer.json" not in manifest["files"]
    assert set(manifest["files"]) == {"config.json", *files}


def test_an_inactive_mixture_is_left_out_and_the_output_is_unchanged(tiny_run, tmp_path):
    """A run that never activated its mixture (full fine-tuning) ships without it, and extracts the same."""
    import shutil

    from molora_adapters.loading import MANIFEST_NAME as STAGED_MANIFEST
    from molora_adapters.oie.pipeline import OIEPipeline

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    staged_file = run / "train" / STAGED_MANIFEST
    staged = json.loads(staged_file.read_text())
    staged["active_adapters"] = None
    staged_file.write_text(json.dumps(staged), encoding="utf-8")
    recipe = json.loads((run / "recipe.json").read_text())
    (run / "recipe.json").write_text(json.dumps({**recipe, "stages": ["full"]}), encoding="utf-8")
    with pytest.warns(UserWarning, match="none is active"):  # the reference still carries the mixture
        ref = OIEPipeline.from_pretrained(str(run / "train"))
    assert ref.model.active_adapters is None and "oie_mixture" in ref.model.adapter_mixtures

    out = package_model(run, tmp_path / "pkg", dtype="fp32", progress=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert "mixture.safetensors" not in manifest["files"]
    assert not any(".loras." in k or "mixture_routers" in k for k in manifest["tensors"])
    assert manifest["setup"]["mixtures"] == []
    config = json.loads((out / "config.json").read_text())
    assert config["adapters"]["adapters"] == {} and config["adapters"]["mixtures"] == {}
    pipe = OIEPipeline.from_pretrained(str(out))
    assert not pipe.model.adapter_mixtures and not any(".loras." in k for k in pipe.model.state_dict())
    for a, b in zip(_logits(ref.model, ref.tokenizer), _logits(pipe.model, pipe.tokenizer), strict=True):
        assert torch.equal(a, b)
    assert _as_dicts(pipe.extract(SENTENCES)) == _as_dicts(ref.extract(SENTENCES))
    card = (out / "README.md").read_text()
    assert "(full fine-tuning: word embeddings, encoder and head in one stage)" in card
    assert "mixture-of-lora" not in card and "routing" not in card and "experts" not in card


@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_fp16_and_int8_stay_within_tolerance(tiny_run, packages, dtype):
    ref = _reference(tiny_run)
    model = load_packaged_model(packages[dtype])
    for a, b in zip(_logits(ref.model, ref.tokenizer), _logits(model, ref.tokenizer), strict=True):
        assert not torch.equal(a, b)  # really stored at lower precision
        assert (a - b).abs().max() <= TOLERANCE[dtype] * a.abs().max()
    manifest = json.loads((packages[dtype] / MANIFEST_NAME).read_text())
    layer = manifest["tensors"]["bert.encoder.layer.0.intermediate.dense.weight"]
    assert layer["storage"] == dtype and layer["encoding"] == "delta"  # relative to the base
    norm = manifest["tensors"]["bert.encoder.layer.0.output.LayerNorm.weight"]
    router = manifest["tensors"]["bert.mixture_routers.oie_mixture.0-selfattn_lora-q.weight"]
    assert norm["storage"] == router["storage"] == "fp32"
    sizes = {dt: sum(m["size"] for m in json.loads((p / MANIFEST_NAME).read_text())["files"].values())
             for dt, p in packages.items()}  # fmt: skip
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]


def test_int8_codec_error_is_bounded_by_half_a_step_per_row():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(50, 96, generator=g)
    trained = base.clone()
    trained[3:9] += torch.randn(6, 96, generator=g)
    entry, stored = encode_tensor("w", trained, base, "int8")
    assert entry["encoding"] == "rows_delta" and entry["rows"] == 6 and entry["axis"] == 0
    out = decode_tensor("w", entry, stored, base)
    step = (trained - base)[3:9].abs().amax(dim=1) / 127
    assert torch.equal(out[:3], base[:3]) and torch.equal(out[9:], base[9:])
    assert ((out[3:9] - trained[3:9]).abs().amax(dim=1) <= step / 2 + 1e-6).all()
    narrow = torch.randn(512, 8, generator=g)  # a LoRA B: scales per column
    entry, stored = encode_tensor("b", narrow, None, "int8")
    assert entry["axis"] == 1 and stored["b::scale"].shape == (8,)
    assert encode_tensor("same", base, base, "int8") is None
    # min_row_change: rows changed by at most the tolerance keep their base value
    small = trained.clone()
    small[3] = base[3] + 1e-4
    entry, stored = encode_tensor("w", small, base, "fp32", min_row_change=1e-3)
    assert entry["rows"] == 5 and stored["w::rows"].tolist() == [4, 5, 6, 7, 8]
    out = decode_tensor("w", entry, stored, base)
    assert torch.equal(out[3], base[3]) and torch.equal(out[4:9], small[4:9])


# ------------------------------------------------------------------------------------------------ integrity
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_file_is_named_with_what_was_expected(packages, tmp_path, damage):
    import shutil

    pkg = tmp_path / "pkg"
    shutil.copytree(packages["int8"], pkg)
    target = pkg / "encoder.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[:-10]))
    else:
        target.unlink()
    with pytest.raises(PackageIntegrityError) as err:
        load_packaged_model(pkg)
    msg = str(err.value)
    assert "`encoder.safetensors`" in msg and "molora package-model" in msg
    expected = {"flip": "its sha256 is", "truncate": f"has {len(data) - 10} bytes", "delete": "is missing"}
    assert expected[damage] in msg and "\n" not in msg
    if damage != "delete":
        assert "expects" in msg


def test_a_different_base_encoder_is_refused(tiny_run, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    run, base = tiny_run
    other = tmp_path / "base"
    shutil.copytree(base, other)
    pkg = package_model(
        run, tmp_path / "pkg", dtype="fp16", base=str(other), progress=False, model_card=False
    )
    state = load_file(str(other / "model.safetensors"))
    state["encoder.layer.0.output.dense.bias"] += 1.0
    save_file(state, str(other / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(PackageIntegrityError, match="stores differences from the base encoder"):
        load_packaged_model(pkg)


# ------------------------------------------------------------------------------------------------ the shipped model
def test_missing_shipped_model_is_one_clear_line(tmp_path, monkeypatch, capsys):
    from molora_adapters.oie.pipeline import OIEPipeline

    monkeypatch.setattr(shipped_module, "SHIPPED_MODEL_DIR", tmp_path / "absent")
    for call in (lambda: OIEPipeline.from_pretrained(), lambda: OIEPipeline.from_pretrained(shipped_module.SHIPPED_MODEL_NAME)):  # fmt: skip
        with pytest.raises(ShippedModelMissingError, match="is not in this build"):
            call()
    (tmp_path / "in.txt").write_text(SENTENCES[0] + "\n")
    assert main(["extract", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("molora extract: error: ")
    assert "molora/oie-multilingual-e5-small" in err and "--model" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_shipped_model_is_the_default_of_the_pipeline_and_of_molora_extract(
    tiny_run, packages, tmp_path, monkeypatch
):
    from molora_adapters.oie.pipeline import OIEPipeline

    monkeypatch.setattr(shipped_module, "SHIPPED_MODEL_DIR", packages["int8"])
    expected = _as_dicts(OIEPipeline.from_pretrained(str(packages["int8"])).extract(SENTENCES))
    assert _as_dicts(OIEPipeline.from_pretrained().extract(SENTENCES)) == expected
    assert (
        _as_dicts(OIEPipeline.from_pretrained(shipped_module.SHIPPED_MODEL_NAME).extract(SENTENCES))
        == expected
    )
    # no --lang: the script says zh (character level)
    lines = [*SENTENCES, "该公司去年在柏林发布了一款新产品。"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    for label, extra in (("default", []), ("explicit", ["--model", str(packages["int8"])])):
        out = tmp_path / f"{label}.jsonl"
        assert main(["extract", *extra, "--input", str(tmp_path / "in.txt"), "--output", str(out)]) == 0
        outputs[label] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert outputs["default"] == outputs["explicit"] and len(outputs["default"]) == len(lines)


# ------------------------------------------------------------------------------------------------ CLI and card
def test_package_model_command(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    out = tmp_path / "pkg"
    assert main(["package-model", str(run), "--out", str(out), "--dtype", "int8", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert json.loads((out / MANIFEST_NAME).read_text())["dtype"] == "int8" and (out / "README.md").is_file()
    assert main(["package-model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "`RUN_DIR`" in err and "holds no trained model" in err
    assert not (tmp_path / "x").exists()


def test_package_model_ship_writes_the_default_model(tiny_run, tmp_path, monkeypatch, capsys):
    from molora_adapters.oie.pipeline import OIEPipeline

    run, _ = tiny_run
    monkeypatch.setattr(
        shipped_module, "SHIPPED_MODEL_DIR", tmp_path / "models" / "oie-multilingual-e5-small"
    )
    assert main(["package-model", str(run), "--ship", "--dtype", "fp32", "--quiet"]) == 0
    manifest = json.loads((shipped_module.SHIPPED_MODEL_DIR / MANIFEST_NAME).read_text())
    assert manifest["name"] == shipped_module.SHIPPED_MODEL_NAME
    assert _as_dicts(OIEPipeline.from_pretrained().extract(SENTENCES)) == _as_dicts(
        _reference(tiny_run).extract(SENTENCES)
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["package-model", str(run), "--out", str(tmp_path / "y"), "--dtype", "fp8"])
    assert exc.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err


def test_model_card_comes_from_the_run_files(packages):
    from molora_adapters.oie.benchmarks.anchors import PUBLISHED_ANCHORS
    from molora_adapters.oie.shipping.card import data_licences

    card = (packages["int8"] / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["language"] == ["de", "en", "pt", "zh"]
    assert meta["license"] == "cc-by-sa-4.0"  # the projected XQuAD data is CC BY-SA
    assert meta["library_name"] == "molora-adapters" and meta["metrics"] == ["f1", "auc"]
    assert set(meta["datasets"]) == {"oie2016", "projected:vendored", "reoie2016 few-shot"}
    results = meta["model-index"][0]["results"]
    assert {r["metrics"][0]["value"] for r in results} == {0.4499, 0.1333, 0.4701}
    assert "| 0.512 | 0.401 | 0.450 | 0.288 | Gen2OIE 0.530 / AUC 0.324 |" in card
    assert f"Multi2OIE {PUBLISHED_ANCHORS['benchie:zh'][1]}" in card  # 0.1295: four digits where published
    assert data_licences()["oie2016"] in card and "CC BY-SA 4.0" in card
    assert (
        "123.4 s" in card
        and "Test CPU 9000" in card
        and "120 s of training" in card
        and "35.0 samples/s" in card
    )
    assert "pt -> de" in card and "Known limitations" in card
    assert "OIEPipeline.from_pretrained()" in card  # the shipped name by default


def test_the_packages_own_scores_replace_the_runs_rows_in_the_card(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    own = {"benchmark": "CaRB en test", "key": "carb:en", "scorer": "carb", "lang": "en", "sentences": 641,
           "precision": 0.6, "recall": 0.5, "f1": 0.5454, "auc": 0.33, "empty_sentences": 2}  # fmt: skip
    extra = {
        **own,
        "benchmark": "BenchIE de",
        "key": "benchie:de",
        "scorer": "benchie",
        "lang": "de",
        "f1": 0.0612,
    }
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"results": [own, extra], "meta": {"command": "python bench.py"}}))
    out = tmp_path / "pkg"
    argv = [
        "package-model",
        str(run),
        "--out",
        str(out),
        "--dtype",
        "int8",
        "--quiet",
        "--scores",
        str(scores),
    ]
    assert main(argv) == 0
    card = (out / "README.md").read_text(encoding="utf-8")
    values = {
        r["metrics"][0]["value"] for r in yaml.safe_load(card.split("---\n")[1])["model-index"][0]["results"]
    }
    assert values == {0.5454, 0.0612, 0.1333, 0.4701}  # carb:en replaced, benchie:de added, the rest kept
    assert "0.450" not in card and "Rows of 2 sets score this package itself (`python bench.py`)" in card
    capsys.readouterr()
    scores.write_text(json.dumps({"results": [{"key": "carb:en"}]}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "`--scores`" in err and "'benchmark'" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ Hub
@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import configure_http_backend

    from tests.hub_utils import LoopbackHub, point_client_at

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    server = LoopbackHub(lifetime_s=60).start()
    refused = point_client_at(server, tmp_path / "hf_home", monkeypatch)
    yield server
    server.stop()
    configure_http_backend()
    assert refused == [] and server.unhandled == []


def test_push_to_hub_and_load_back_by_repo_id(tiny_run, packages, hub):
    from molora_adapters.oie.pipeline import OIEPipeline
    from molora_adapters.oie.shipping import push_packaged_model_to_hub

    push_packaged_model_to_hub(packages["int8"], "user/oie-model")
    files = hub.files("user/oie-model")
    local = {p.name: p.read_bytes() for p in packages["int8"].iterdir() if p.is_file()}
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == local
    pulled = OIEPipeline.from_pretrained("user/oie-model")
    expected = OIEPipeline.from_pretrained(str(packages["int8"]))
    assert _as_dicts(pulled.extract(SENTENCES)) == _as_dicts(expected.extract(SENTENCES))
    for a, b in zip(_logits(pulled.model, pulled.tokenizer), _logits(expected.model, expected.tokenizer), strict=True):  # fmt: skip
        assert torch.equal(a, b)


def test_a_damaged_package_is_not_pushed(packages, tmp_path, hub):
    import shutil

    from molora_adapters.oie.shipping import push_packaged_model_to_hub

    pkg = tmp_path / "pkg"
    shutil.copytree(packages["fp16"], pkg)
    (pkg / "head.safetensors").write_bytes(b"garbage")
    with pytest.raises(PackageIntegrityError, match="`head.safetensors`"):
        push_packaged_model_to_hub(pkg, "user/broken")
    assert "user/broken" not in hub.repos
    assert os.path.isdir(pkg)


# ------------------------------------------------------------------------------------------------ real size
@pytest.mark.slow
def test_e5_small_int8_package_is_at_most_40_mb(embedded_e5_dir, tmp_path):
    """The recipe's model shape on the embedded e5-small (6 experts, r=8, the default head), every encoder layer and
    300 embedding rows changed: the int8 package fits the 40 MB target and stays close to the model."""
    from adapters import AutoAdapterModel, LoRAConfig

    torch.manual_seed(0)
    model = AutoAdapterModel.from_pretrained(embedded_e5_dir)
    model.add_oie_head("oie", n_arg_layers=2, d_feedforward=512)
    experts = ["en", "de", "zh", "es", "ar", "hi"]
    lora = LoRAConfig(r=8, alpha=16, selfattn_lora=True, intermediate_lora=True, output_lora=True)
    model.add_adapter_mixture(experts, name="oie_mixture", top_k=2, expert_config=lora, set_active=True)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".loras." in name or "mixture_routers" in name:
                p.add_(0.02 * torch.randn(p.shape, generator=g))
            elif ".encoder.layer." in name:
                p.add_(1e-3 * torch.randn(p.shape, generator=g))
        rows = torch.randperm(model.config.vocab_size, generator=g)[:300]
        model.bert.embeddings.word_embeddings.weight[rows] += 1e-3 * torch.randn(300, 384, generator=g)
    model.active_head = "oie"
    _save_run(model, tmp_path / "run")
    (tmp_path / "run" / "recipe.json").write_text(json.dumps({"model": "embedded:multilingual-e5-small"}))
    pkg = package_model(tmp_path / "run", tmp_path / "pkg", dtype="int8", progress=False)
    manifest = json.loads((pkg / MANIFEST_NAME).read_text())
    assert sum(m["size"] for m in manifest["files"].values()) <= 40e6
    assert manifest["stats"]["changed_rows"] == {"bert.embeddings.word_embeddings.weight": 300}
    ids = torch.tensor([[0, 1000, 2000, 3000, 5, 7, 44, 900, 12345, 2]])
    with torch.no_grad():
        a = model.eval()(input_ids=ids, return_dict=True).predicate_logits
        b = load_packaged_model(pkg)(input_ids=ids, return_dict=True).predicate_logits
    assert (a - b).abs().max() <= TOLERANCE["int8"] * a.abs().max()
