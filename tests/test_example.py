"""examples/oie_crosslingual.py end to end on the embedded encoder (tiny budget), and its one-line errors."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def example():
    return load_script("examples/oie_crosslingual.py")


@pytest.mark.slow
def test_example_runs_end_to_end(example, embedded_e5_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "--max-steps",
        "2",
        "--max-train-sentences",
        "16",
        "--eval-max-sentences",
        "8",
        "--batch-size",
        "4",
        "--eval",
        "carb:en,reoie2016:es,carb:zh",
        "--experts",
        "en,de,zh",
        "--output-dir",
        str(out),
    ]
    assert example.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["benchmark"] for r in results["results"]] == [
        "CaRB en test",
        "Re-OIE2016 es held-out (lexical)",
        "multilingual CaRB zh",
    ]
    assert all(r["sentences"] == 8 for r in results["results"])
    assert {"precision", "recall", "f1", "auc"} <= set(results["results"][0])
    assert (out / "routing_heatmap.png").stat().st_size > 1000
    routing = json.loads((out / "routing_statistics.json").read_text())
    assert routing["experts"] == ["en", "de", "zh"] and "zh" in routing["counts"]
    # few-shot data: only the 8 Re-OIE2016 sentences per language whose English original is in no test set,
    # never in the held-out es evaluation; the decoding options are recorded
    assert results["few_shot"]["sentences"] == {"es": 8, "pt": 8}
    assert results["decoding"] == {
        "span_strategy": "merge",
        "min_args": 1,
        "confidence_mode": "multi2oie",
        "predicate_floor": 0.1,
    }
    for key, row in zip(("carb_en", "reoie2016_es", "carb_zh"), results["results"], strict=True):
        lines = (out / "predictions" / f"{key}.tsv").read_text(encoding="utf-8").splitlines()
        assert row["empty_sentences"] == row["sentences"] - len(
            {line.split("\t")[0] for line in lines if line}
        )
    assert all(0 <= r["empty_sentences"] <= r["sentences"] for r in results["results"])
    training = json.loads((out / "training.json").read_text())
    assert [s["name"] for s in training["stages"]] == ["embeddings", "backbone", "mixture"]
    assert json.loads((out / "recipe.json").read_text())["max_steps"] == 2
    from molora_adapters.oie.benchmarks import leak_free_few_shot
    from molora_adapters.oie.evaluation import evaluation_sets

    recipe = example.parse_args(argv).recipe
    sets = evaluation_sets(recipe.eval, few_shot=recipe.few_shot, max_sentences=8, seed=recipe.seed)
    (es,) = [e for e in sets if e["benchmark"] == "reoie2016"]
    few_shot = {s.strip() for s in leak_free_few_shot("es")["sentence"]}
    assert len(es["subset"]) == 8 and not es["subset"] & few_shot
    assert "total time" in capsys.readouterr().out

    # a rerun resumes from the finished stages instead of training again: no stage output is written or
    # rewritten (only the final model is saved again), and the scores are the same
    def stage_files():
        return {p: p.stat().st_mtime_ns for p in (out / "train").glob("stage-*/**/*") if p.is_file()}

    before = stage_files()
    assert len({p.relative_to(out / "train").parts[0] for p in before}) == 3  # three finished stages
    assert example.main(argv) == 0
    assert "resuming from" in capsys.readouterr().out
    assert stage_files() == before
    assert json.loads((out / "results.json").read_text())["results"] == results["results"]
    # the rerun's training.json keeps every stage of the first run (restored from their stage folders)
    again = json.loads((out / "training.json").read_text())
    assert [s["name"] for s in again["stages"]] == ["embeddings", "backbone", "mixture"]
    assert all(s["restored"] for s in again["stages"]) and again["samples"] == training["samples"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "/nonexistent/model/dir"], "`model` /nonexistent/model/dir: cannot load it"),
        (["--train-data", "no-such-corpus"], "`train_data`: `no-such-corpus` is neither a corpus"),
    ],
)
def test_user_errors_are_one_line(example, argv, message, tmp_path, capsys, embedded_e5_dir):
    assert example.main([*argv, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {message}") and "\n" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--stages", "embeddings,nope"],
        ["--top-k", "9"],
        ["--max-steps", "1,2"],
        ["--eval", "carb:xx"],
        ["--head", "2by512"],
        ["--preset", "nope"],
    ],
)
def test_bad_flags_exit_2(example, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        example.parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
