"""benchmarks/quality_oie.py aggregation on synthetic runs (`--dry-run`: nothing is trained)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/quality_oie.py")


def test_paired_contrast_is_by_seed_with_a_bootstrap_interval(bench):
    a = {"seeds": [{"seed": s, "mean_non_en_f1": v} for s, v in ((1, 0.30), (2, 0.26), (3, 0.28))]}
    b = {"seeds": [{"seed": s, "mean_non_en_f1": v} for s, v in ((3, 0.20), (1, 0.25), (2, 0.25), (9, 0.9))]}
    c = bench.paired_contrast(a, b)
    assert c["seeds"] == [1, 2, 3] and c["per_seed"] == pytest.approx([0.05, 0.01, 0.08])
    assert c["diff"] == pytest.approx(statistics.mean([0.05, 0.01, 0.08]))
    assert 0.01 - 1e-9 <= c["ci95"][0] < c["diff"] < c["ci95"][1] <= 0.08 + 1e-9  # within the seeds' spread
    same = bench.paired_contrast(a, a)
    assert same["diff"] == 0 and same["ci95"] == [0, 0]
    assert bench.paired_contrast(a, {"seeds": [{"seed": 7, "mean_non_en_f1": 0.1}]}) is None


def test_mean_non_en_f1_leaves_out_english_lexical_and_dev(bench):
    scores = {
        "carb:en": {"f1": 0.9},
        "carb:zh": {"f1": 0.2},
        "benchie:de": {"f1": 0.1},
        "reoie2016:es": {"f1": 0.9},
        "dev:en": {"f1": 0.9},
        "dev:de": {"f1": 0.9},
    }
    assert bench.mean_non_en_f1(scores) == pytest.approx(0.15)


def test_dry_run_writes_budgets_seeds_contrasts_and_curves(bench, tmp_path):
    results = tmp_path / "q"
    argv = [
        "--dry-run",
        "--out",
        str(tmp_path / "runs"),
        "--results",
        str(results),
        "--budgets",
        "600,1800",
        "--seeds",
        "42,43,44",
    ]
    assert bench.main(argv) == 0
    data = json.loads(results.with_suffix(".json").read_text())
    assert data["meta"]["budget_seconds"] == 600 and data["meta"]["budgets"] == [600, 1800]
    first, second = data["budgets"]
    assert [s["name"] for s in first["systems"]] == list(bench.MAIN_SYSTEMS)
    assert [s["name"] for s in second["systems"]] == ["full_finetuning", "mt4crossoie"] and second[
        "seeds"
    ] == [42, 43]
    assert data["systems"] == first["systems"]
    assert all(len(s["seeds"]) == 3 for s in first["systems"])
    by = {s["name"]: s for s in first["systems"]}
    for other in ("full_finetuning", "single_lora"):
        c = data["contrasts"][f"mt4crossoie_minus_{other}"]
        expected = [
            x["mean_non_en_f1"] - y["mean_non_en_f1"]
            for x, y in zip(by["mt4crossoie"]["seeds"], by[other]["seeds"], strict=True)
        ]
        assert (
            c["diff"] == pytest.approx(statistics.mean(expected))
            and c["ci95"][0] <= c["diff"] <= c["ci95"][1]
        )
    assert "empty_sentences" in by["mt4crossoie"]["scores"]["carb:zh"]
    figure = data["meta"]["learning_curves"]
    assert figure is None or Path(figure).stat().st_size > 1000
    assert "Dry run" in results.with_suffix(".md").read_text()
    assert not list((tmp_path / "runs").iterdir())  # nothing trained


def _args(**kw):
    import argparse

    base = dict(batch_size=16, eval_sentences=0, train_sentences=None, model=None, clock="steps", fresh=False)
    return argparse.Namespace(**{**base, **kw})


def test_recipe_for_gives_the_budget_as_steps_at_the_measured_rates(bench):
    from step_budget import STEPS_PER_SECOND, equivalent_seconds

    recipe = bench.recipe_for("stage3_head_only", 43, 600.0, _args())
    assert recipe.time_budget is None and recipe.seed == 43 and recipe.stages[-1] == "head"
    # 20/40/40 of 600 s at each stage kind's steps per second
    assert recipe.max_steps == tuple(
        round(600 * share * STEPS_PER_SECOND[k])
        for k, share in zip(recipe.stages, (0.2, 0.4, 0.4), strict=True)
    )
    assert equivalent_seconds(recipe) == pytest.approx(600, rel=0.01)
    assert "dev:en" in recipe.eval and recipe.projected_data == ("vendored",)
    for name in bench.MAIN_SYSTEMS:
        assert equivalent_seconds(bench.recipe_for(name, 42, 600.0, _args())) == pytest.approx(600, rel=0.01)
    wall = bench.recipe_for("full_finetuning", 42, 600.0, _args(clock="wall"))
    assert wall.time_budget == 600.0 and wall.max_steps is None


def test_a_recorded_run_is_reused_and_a_changed_recipe_is_refused(bench, tmp_path):
    args = _args(records=str(tmp_path / "records"))
    recipe = bench.recipe_for("single_lora", 42, 600.0, args)
    record = bench.record_path(tmp_path / "records", "single_lora", 42, 600.0)
    assert record == tmp_path / "records" / "budget600" / "single_lora-seed42.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"recipe": recipe.to_dict(), "results": [], "own_expert_share": None}))
    out_root = tmp_path / "runs"
    assert bench.run_one("single_lora", 42, 600.0, args, out_root)["results"] == []
    assert not out_root.exists()  # nothing trained
    record.write_text(json.dumps({"recipe": recipe.replace(seed=7).to_dict()}))
    with pytest.raises(SystemExit, match="records a run of another recipe"):
        bench.run_one("single_lora", 42, 600.0, args, out_root)
