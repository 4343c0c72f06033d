"""benchmarks/select_recipe.py: the dev search's plans (nothing is trained here)."""

from __future__ import annotations

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def search():
    return load_script("benchmarks/select_recipe.py")


def test_candidates_get_equal_time_as_steps_and_only_dev_evaluations(search):
    default = search.recipe_for("default", 1200, 42)
    # 20/40/40 of 1,200 s at each stage's measured steps per second
    assert default.max_steps == (447, 727, 666)
    assert search.recipe_for("full_finetuning", 1200, 42).max_steps == (1819,)
    for name in search.CANDIDATES:
        recipe = search.recipe_for(name, 1200, 42)
        assert all(e.startswith("dev:") for e in recipe.eval), name  # never a test set
        seconds = sum(
            n / search.STEPS_PER_SECOND[k] for n, k in zip(recipe.max_steps, recipe.stages, strict=True)
        )
        assert seconds == pytest.approx(1200, rel=0.01), name


def test_children_share_their_parents_earlier_stages(search):
    for name, (_, parent, _) in search.CANDIDATES.items():
        if parent is None:
            continue
        parent, _, n = parent.partition(":")
        mine, theirs = search.recipe_for(name, 1200, 42), search.recipe_for(parent, 1200, 42)
        n = int(n)
        assert mine.stages == theirs.stages and mine.max_steps[:n] == theirs.max_steps[:n]
        assert mine.stage_learning_rates()[:n] == theirs.stage_learning_rates()[:n], name


def test_bad_arguments_are_refused(search, capsys):
    with pytest.raises(SystemExit):
        search.main(["--candidates", "nope", "--list"])
    assert "unknown candidate(s) ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search.main(["--budget", "0", "--list"])
