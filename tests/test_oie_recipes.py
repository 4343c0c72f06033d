"""`OIERecipe` (validation, presets, JSON round trip, the stage plan), the projected dev slice, empty-sentence counts
and the training summary after a resume; no training here (the example's end-to-end test trains)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from types import SimpleNamespace

import pytest

from molora_adapters.oie.evaluation import evaluate, format_table
from molora_adapters.oie.recipes import DATA_EXPERTS, PRESETS, OIERecipe
from molora_adapters.oie.training_run import dev_slice, training_summary


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips(name):
    recipe = OIERecipe.from_preset(name, time_budget=600.0, seed=7)
    assert OIERecipe.from_json(recipe.to_json()) == recipe
    assert OIERecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    assert pickle.loads(pickle.dumps(recipe)) == recipe
    assert len(recipe.build_stages()) == len(recipe.stages)


def test_recipe_file_round_trip(tmp_path):
    recipe = OIERecipe(stages=("embeddings", "backbone"), max_steps=(3, 4), learning_rates=(1e-3, 2e-4))
    recipe.to_json(tmp_path / "r.json")
    assert OIERecipe.from_json(tmp_path / "r.json") == recipe
    assert isinstance(OIERecipe.from_json(tmp_path / "r.json").max_steps, tuple)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"top_kk": 2}, r"Unknown recipe key\(s\) \['top_kk'\]"),
        ({"stages": ["embeddings", "nope"]}, "`stages`"),
        ({"top_k": 9}, "`top_k`"),
        ({"max_steps": [1, 2]}, "`max_steps`"),
        ({"budget_split": [0.5, 0.5]}, "`budget_split`"),
        ({"time_budget": 0}, "`time_budget`"),
        ({"eval": ["carb:xx"]}, "`eval`"),
        ({"granularity": "word"}, "`granularity`"),
        ({"experts": ["en", "en"]}, "`experts`"),
        ({"dropout_site": "output"}, "`dropout_site`"),
        ({"eval": ["dev:de"], "projected_data": []}, "projected dev slice"),
    ],
)
def test_bad_recipes_are_refused_with_the_field_named(data, message):
    with pytest.raises(ValueError, match=message):
        OIERecipe.from_dict(data)


def test_bad_recipe_sources(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        OIERecipe.from_json(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="not valid JSON"):
        OIERecipe.from_json("{nope")
    with pytest.raises(ValueError, match="Unknown recipe preset `nope`"):
        OIERecipe.from_preset("nope")


def test_default_plan_steps_budget_and_rates():
    recipe = OIERecipe()
    assert recipe.stage_steps() == (60, 120, 120) and recipe.stage_seconds() == (None, None, None)
    timed = recipe.replace(time_budget=600.0)
    assert timed.stage_steps() == (None, None, None)
    assert timed.stage_seconds() == pytest.approx((120.0, 240.0, 240.0))
    stages = timed.build_stages()
    assert [s.max_seconds for s in stages] == pytest.approx([120.0, 240.0, 240.0])
    assert all(s.max_steps is None and s.num_train_epochs is None for s in stages)  # the clock alone
    assert [(s.learning_rate, s.head_learning_rate) for s in stages] == [
        (5e-4, 1e-3),
        (1e-4, 3e-4),
        (5e-4, 1e-4),
    ]
    capped = timed.replace(max_steps=50).build_stages()
    assert [s.max_steps for s in capped] == [50, 50, 50]
    paper = recipe.replace(epochs=3.0).build_stages()
    assert all(s.num_train_epochs == 3.0 and s.max_steps is None for s in paper)
    head = OIERecipe.from_preset("stage3_head_only").build_stages()
    assert [s.name for s in head] == ["embeddings", "backbone", "head"] and head[2].train == ("heads",)


def test_paper_recipe_data_and_experts():
    recipe = OIERecipe.from_preset("mt4crossoie")
    assert recipe.projected_data == ("vendored",) and set(recipe.few_shot) == {"es", "pt"}
    assert recipe.experts == DATA_EXPERTS and recipe.max_train_sentences == 0
    assert OIERecipe.from_preset("mt4crossoie_no_projected").projected_data == ()
    routed = recipe.routed_languages()
    assert routed["pt"] == "es" and routed["te"] == "hi" and all(routed[e] == e for e in DATA_EXPERTS)
    assert set(OIERecipe.from_preset("single_lora").routed_languages().values()) == {"en"}
    # every system of the benchmark trains on the same data stream
    data_fields = ("train_data", "max_train_sentences", "few_shot", "projected_data", "llm_data", "seed")
    systems = [OIERecipe.from_preset(n) for n in PRESETS if n != "mt4crossoie_no_projected"]
    assert len({tuple(str(getattr(r, f)) for f in data_fields) for r in systems}) == 1


def _record(lang, source, i):
    meta = json.dumps({"source_id": source})
    return {"language": lang, "sentence": f"{lang} sentence {i}", "meta": meta, "extractions": []}


def test_dev_slice_is_deterministic_and_keeps_translations_of_dev_sentences_out_of_training():
    records = [_record(lang, f"s{i}", i) for i in range(40) for lang in ("de", "zh")]
    records += [_record("es", f"s{i}", i) for i in range(40, 60)]  # es: other source sentences
    train, dev = dev_slice(records, 5, seed=1)
    assert dev_slice(list(reversed(records)), 5, seed=1)[1].keys() == dev.keys()
    assert {lang: len(ids) for lang, ids in dev.items()} == {"de": 5, "es": 5, "zh": 5}
    dev_sources = {json.loads(records[i]["meta"])["source_id"] for ids in dev.values() for i in ids}
    assert not dev_sources & {json.loads(records[i]["meta"])["source_id"] for i in train}
    held = {i for ids in dev.values() for i in ids}
    assert not held & set(train) and len(train) + len(held) <= len(records)
    assert dev_slice(records, 5, seed=2)[1] != dev  # the seed chooses the slice


def test_evaluation_rows_count_empty_sentences(monkeypatch):
    sentences = ["A saw B .", "Nothing here .", "C met D ."]
    ext = SimpleNamespace(arg0="A", relation="saw", args=["B"], confidence=0.9, context=None)

    class Pipe:
        def extract(self, sents, language=None, batch_size=32):
            return [[ext] if s.startswith("A") else [] for s in sents]

    ev = dict(
        name="carb:en",
        benchmark="carb",
        lang="en",
        scorer="carb",
        what="toy",
        sentences=sentences,
        subset=set(sentences),
        gold=None,
        records=None,
    )
    import molora_adapters.oie.benchmarks as benchmarks

    monkeypatch.setattr(
        benchmarks,
        "score_extractions",
        lambda *a, **k: {"precision": 1.0, "recall": 0.5, "f1": 0.6, "auc": 0.1},
    )
    rows, _ = evaluate(Pipe(), [ev], None, log=lambda m: None)
    assert rows[0]["empty_sentences"] == 2 and rows[0]["extractions"] == 1
    assert "    2" in format_table(rows)


def test_training_summary_counts_the_stages_finished_before_a_resume(tmp_path):
    restored = {
        "name": "embeddings",
        "global_step": 10,
        "train_loss": 2.0,
        "clock_seconds": 20.0,
        "train_seconds": 25.0,
        "max_seconds": None,
        "examples_seen": 160,
        "sparse_embedding_updates": True,
        "restored": True,
    }
    fresh = restored | {
        "name": "backbone",
        "clock_seconds": 30.0,
        "train_seconds": 31.0,
        "examples_seen": 240,
        "restored": False,
    }
    trainer = SimpleNamespace(stage_history=[restored, fresh])
    features = {"predicate_masks": [[1, 1], [1]]}  # 1.5 predicates per row

    class Features(dict):
        def __len__(self):
            return 2

    summary = training_summary(trainer, Features(features), tmp_path, None)
    assert [s["name"] for s in summary["stages"]] == ["embeddings", "backbone"]
    assert summary["train_seconds"] == 50.0 and summary["wall_seconds"] == 56.0
    assert summary["samples"] == 600 and summary["samples_per_second"] == 12.0
    assert summary["machine"]["cpu_count"] == os.cpu_count()  # for the model card (issue 22)
    assert json.loads((tmp_path / "training.json").read_text()) == summary


@pytest.mark.slow
def test_molora_train_help_lists_the_presets():
    out = subprocess.run(
        [sys.executable, "-m", "molora_adapters.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--preset" in out and "mt4crossoie_no_projected" in out and "--time-budget" in out


@pytest.mark.slow
def test_molora_train_rejects_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text('{"top_kk": 2}')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "molora_adapters.cli",
            "train",
            "--config",
            str(bad),
            "--output-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "top_kk" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_inference_does_not_import_the_training_code():
    code = (
        "import sys, molora_adapters.oie.pipeline\n"
        "bad = [m for m in sys.modules if m.startswith(('molora_adapters.training', 'molora_adapters.oie.recipes',"
        " 'molora_adapters.oie.training_run'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_projected_dev_slice_is_scored_against_its_own_tuples():
    from molora_adapters.oie.evaluation import score_projected

    records = [
        {
            "sentence": "Mario Addison addierte 6 Sacks hinzu .",
            "language": "de",
            "extractions": [{"arg0": "Mario Addison", "relation": "addierte", "args": ["6 Sacks"]}],
        },
        {
            "sentence": "Der Fluss fließt durch die Stadt .",
            "language": "de",
            "extractions": [{"arg0": "Der Fluss", "relation": "fließt", "args": ["durch die Stadt"]}],
        },
    ]
    exact = [
        (r["sentence"], [SimpleNamespace(**r["extractions"][0], confidence=0.9, context=None)])
        for r in records
    ]
    assert score_projected(exact, records)["f1"] == pytest.approx(1.0)
    half = score_projected([exact[0], (records[1]["sentence"], [])], records)
    assert half["precision"] == pytest.approx(1.0) and half["recall"] == pytest.approx(0.5)
