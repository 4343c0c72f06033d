"""benchmarks/quality_shipped.py: its pieces that need no trained model (the runs themselves are benchmarks)."""

from __future__ import annotations

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/quality_shipped.py")


def test_empty_sentences_counts_sentences_without_a_tuple(bench, tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("A b c .\t0.9\tb\tA\tc\nA b c .\t0.5\tb\tA\nD e .\t0.7\te\tD\n", encoding="utf-8")
    assert bench._empty_sentences(["A b c .", "D e .", "F g .", "H ."], tsv) == 2


def test_dev_score_is_the_mean_of_english_and_the_non_english_mean(bench):
    rows = [{"key": "dev:en", "f1": 0.5}, {"key": "dev:de", "f1": 0.4}, {"key": "dev:zh", "f1": 0.2}]
    en, non_en, score = bench._dev_score(rows)
    assert (en, non_en, score) == pytest.approx((0.5, 0.3, 0.4))


def test_bad_arguments_are_refused(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--select", str(tmp_path)])
    assert "is not a `molora train` run directory (no recipe.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--select", str(tmp_path), "--model", "x"])
    assert "separate modes" in capsys.readouterr().err
