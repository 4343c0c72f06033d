"""Re-OIE2016 / OIE2016 lexical-match scorer (SpanOIE / Multi2OIE semantics), hand-computed."""

from __future__ import annotations

import json

import pytest
from benchmarks_utils import write_lines

from molora_adapters.oie.benchmarks import ExtractionRow, score, score_extractions
from molora_adapters.oie.benchmarks.gold import gold_path
from molora_adapters.oie.benchmarks.lexical import lexical_match, read_oie2016_gold, read_reoie2016_gold


def _t(arg0, pred, arg1="", **kw):
    base = {
        "arg0": arg0,
        "pred": pred,
        "arg1": arg1,
        "arg2": "",
        "arg3": "",
        "temp": "",
        "loc": "",
        "context": "",
    }
    return base | kw


@pytest.fixture
def gold_json(tmp_path):
    data = {
        "A b c d .": [_t("A", "b", "c d"), _t("c", "<be> d")],
        "E f g .": [_t("E", "f", "g")],
        "H i j .": [_t("H", "i", "j"), _t("j", "<be>", "H")],
    }
    path = tmp_path / "Re-gold.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_relabelled_gold(gold_json):
    rows = read_reoie2016_gold(gold_json)
    assert [(r.relation, r.args) for r in rows] == [
        ("b", ("A", "c d")),
        ("d", ("c",)),
        ("f", ("E", "g")),
        ("i", ("H", "j")),
        ("[is]", ("j", "H")),
    ]


def test_lexical_match_counts_word_pairs():
    assert lexical_match("b A c d".split(), "b A c".split())  # 3/4
    assert not lexical_match("b A c d".split(), "b A".split())  # 2/4 is not > 1/2
    assert lexical_match("x y z w".split(), "x x x".split())  # pairs: 3/4 (duplicates count)


def test_hand_computed_curve(gold_json, tmp_path):
    pred = write_lines(
        tmp_path / "pred.tsv",
        [
            "A b c d .\t0.9\tb\tA\tc",  # matches gold 1
            "A b c d .\t0.6\tis\tc\td",  # matches gold 2 ("d c")
            "A b c d .\t0.3\tx\ty",  # false positive
            "E f g .\t0.8\tf\tE",  # matches gold 3 (2 of 3 words)
            "E f g .\t0.7\tf\tE\tg",  # gold already taken: false positive
            "E f g .\t0.5\tnoargs",  # no argument: skipped, as the official reader does
        ],
    )
    res = score("reoie2016", pred, gold=gold_json)
    # "H i j ." has no predictions: its 2 tuples add 2*2 to the total and to the unmatched -> recall x 3/7
    assert res["gold_tuples_counted"] == 7 and res["matched_gold"] == 3
    assert res["skipped_predictions_without_args"] == 1
    assert res["precision"] == pytest.approx(3 / 4) and res["recall"] == pytest.approx(3 / 7)
    assert res["f1"] == pytest.approx(6 / 11) and res["best_threshold"] == 0.6
    assert res["auc"] == pytest.approx(65 / 168)
    assert res["curve"]["thresholds"] == [0.6, 0.7, 0.8, 0.9]


@pytest.mark.parametrize(
    "bench_name, lang, reader",
    [
        ("reoie2016", "en", read_reoie2016_gold),
        ("reoie2016", "es", read_reoie2016_gold),
        ("reoie2016", "pt", read_reoie2016_gold),
        ("oie2016", "en", read_oie2016_gold),
    ],
)
def test_gold_as_predictions_is_almost_perfect(bench_name, lang, reader):
    gold = reader(gold_path(bench_name, lang))
    preds = [ExtractionRow(r.sentence, r.relation, r.args, 1.0) for r in gold if r.args]
    res = score_extractions(bench_name, preds, lang=lang)
    # a gold tuple takes the *first* unused prediction that covers it, so near-duplicate gold tuples can
    # steal each other's copy: a handful stay unmatched, never more
    assert res["unknown_predictions"] == 0 and res["matched_gold"] >= res["gold_tuples_counted"] - 3
    assert min(res["precision"], res["recall"]) > 0.99 and res["f1"] == pytest.approx(res["auc"], abs=0.01)


def test_empty_predictions(gold_json, tmp_path):
    pred = write_lines(tmp_path / "pred.tsv", [])
    with pytest.warns(UserWarning, match="no predictions"):
        res = score("reoie2016", pred, gold=gold_json)
    assert (res["precision"], res["recall"], res["f1"], res["auc"]) == (0.0, 0.0, 0.0, 0.0)
