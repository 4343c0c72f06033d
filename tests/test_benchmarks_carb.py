"""CaRB scorer: official numbers on OpenIE-4, the whole official PR curve, hand-computed matches and curves."""

from __future__ import annotations

import gzip
import random
import warnings

import numpy as np
import pytest
from benchmarks_utils import BENCH_DATA, gunzip_to, write_lines

from molora_adapters.oie.benchmarks import (
    ExtractionRow,
    match_tuples,
    normalize_key,
    score,
    score_extractions,
)
from molora_adapters.oie.benchmarks._reference import reference_carb_curve
from molora_adapters.oie.benchmarks.carb import carb_curve, trapezoid_auc


@pytest.fixture(scope="module")
def openie4(tmp_path_factory):
    return gunzip_to(BENCH_DATA / "openie4_output.txt.gz", tmp_path_factory.mktemp("carb") / "openie4.txt")


@pytest.fixture(scope="module")
def openie4_result(openie4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OpenIE-4's file also covers sentences outside the test gold
        return score("carb", openie4, format="openie4")


def _dat_points():
    text = gzip.decompress((BENCH_DATA / "OpenIE-4.dat.gz").read_bytes()).decode()
    return [line.split("\t") for line in text.splitlines()[1:]]


def test_openie4_official_numbers(openie4_result):
    res = openie4_result
    assert res["auc"] == 0.272
    assert res["official"] == {"auc": 0.272, "precision": 0.553, "recall": 0.437, "f1": 0.488}
    assert round(res["precision"], 4) == 0.5526 and round(res["recall"], 4) == 0.4372
    assert round(res["f1"], 4) == 0.4882
    assert res["unknown_predictions"] == 6975 and res["gold_tuples"] == 2715


def test_openie4_curve_matches_official_dat_point_for_point(openie4_result):
    curve = openie4_result["curve"]
    # the official .dat lists (P, R, threshold) stably sorted by recall
    ours = sorted(
        zip(curve["precision"], curve["recall"], curve["thresholds"], strict=False), key=lambda x: x[1]
    )
    dat = _dat_points()
    assert len(ours) == len(dat) == 2603
    for (p, r, c), (dp, dr, dc) in zip(ours, dat, strict=False):
        assert (p, r, c) == (float(dp), float(dr), float(dc))  # bit-identical


def test_official_dat_file_reproduced_byte_for_byte(openie4_result):
    from molora_adapters.oie.benchmarks.carb import format_pr_dat

    c = openie4_result["curve"]
    text = format_pr_dat(
        c["precision"], c["recall"], c["thresholds"], c["kept"], openie4_result["gold_tuples"]
    )
    assert text == gzip.decompress((BENCH_DATA / "OpenIE-4.dat.gz").read_bytes()).decode()


def test_linear_accumulation_equals_exact_up_to_rounding(openie4):
    from molora_adapters.oie.benchmarks.gold import gold_path, read_carb_gold
    from molora_adapters.oie.formats.readers import read_openie4

    gold, pred = read_carb_gold(gold_path("carb", "en")), read_openie4(openie4)
    exact = carb_curve(gold, pred, exact_order=True)
    linear = carb_curve(gold, pred, exact_order=False)
    np.testing.assert_allclose(linear.precision, exact.precision, rtol=0, atol=1e-12)
    np.testing.assert_allclose(linear.recall, exact.recall, rtol=0, atol=1e-12)
    assert round(linear.auc, 3) == round(exact.auc, 3) == 0.272


@pytest.mark.parametrize(
    "gold, pred, expected",
    [
        # relation words as multisets; arguments 2.. folded into one object
        (("born in", ("Obama", "Hawaii", "1961")), ("born in", ("Obama", "Hawaii 1961")), (1.0, 1.0)),
        # a leftover predicted "be" matches a form of "be" in the gold relation: 2 of 3 / 2 of 2 rel words
        (("is born in", ("he", "Paris")), ("be born", ("he", "Paris")), (4 / 4, 4 / 5)),
        # no relation overlap scores (0, 0)
        (("lives in", ("he", "Paris")), ("born", ("he", "Paris")), (0.0, 0.0)),
        # a required gold argument missing from the prediction scores (0, 0)
        (("lives in", ("he", "Paris")), ("lives in", ("he",)), (0.0, 0.0)),
        # word overlap: precision over predicted words, recall over gold words
        (("lives in", ("the man", "Paris")), ("lives", ("man", "Paris France")), (3 / 4, 3 / 5)),
        # said-type relation: subject/object swap tried, best kept
        (("said", ("he", "it rains")), ("said", ("it rains", "he")), (1.0, 1.0)),
        # ... and only for said-type gold relations
        (("stated", ("he", "it rains")), ("stated", ("it rains", "he")), (1 / 4, 1 / 4)),
        # gold with only arg0: predicted object words are not counted against precision
        (("runs", ("he",)), ("runs", ("he", "fast now")), (1.0, 1.0)),
    ],
)
def test_match_hand_computed(gold, pred, expected):
    assert match_tuples(gold[0], gold[1], pred[0], pred[1]) == pytest.approx(expected)


def test_normalize_key():
    assert normalize_key("He said -LRB- loudly -RRB- : yes .") == "Hesaidloudlyyes"
    assert normalize_key("汉 服 作 为 。") == "汉服作为。"  # only ASCII punctuation is removed


def _rows(items):
    return [ExtractionRow(s, r, tuple(a), c) for s, r, a, c in items]


def test_curve_hand_computed():
    gold = _rows(
        [("A b c .", "b", ("A", "c"), 1), ("A b c .", "x", ("y", "z"), 1), ("D e f .", "e", ("D", "f"), 1)]
    )
    pred = _rows(
        [
            ("A b c .", "b", ("A", "c"), 0.9),
            ("A b c .", "b", ("A", "q"), 0.5),
            ("D e f .", "e", ("D", "q"), 0.7),
        ]
    )
    res = carb_curve(gold, pred)
    assert res.thresholds.tolist() == [0.5, 0.7, 0.9]
    # t=0.9: one exact match kept -> P = 1/1, R = (1 + 0 + 0) / 3
    # t=0.7: + (e; D; q): P = (1 + 2/3) / 2, R = (1 + 2/3) / 3
    # t=0.5: + (b; A; q) on sentence 1, whose gold rows are already taken -> P = (1 + 0 + 2/3) / 3
    np.testing.assert_allclose(res.precision, [(1 + 2 / 3) / 3, (1 + 2 / 3) / 2, 1.0])
    np.testing.assert_allclose(res.recall, [(1 + 2 / 3) / 3, (1 + 2 / 3) / 3, 1 / 3])
    f1s = [2 * p * r / (p + r) for p, r in zip(res.precision, res.recall, strict=False)]
    assert res.best_index == int(np.argmax(f1s)) == 1
    # points in ascending-threshold order, then (R=0, P=1); the first two share a recall (zero width)
    r1, r2 = (1 + 2 / 3) / 3, 1 / 3
    expected_auc = (r1 - r2) * (res.precision[1] + 1.0) / 2 + r2 * (1.0 + 1.0) / 2
    assert res.auc == pytest.approx(expected_auc)


def test_fast_curve_equals_naive_reference_on_random_systems():
    rng = random.Random(0)
    words = "a b c d e f g is was be said told".split()
    gold, pred = [], []
    for s in range(30):
        sent = f"s{s} " + " ".join(rng.choice(words) for _ in range(6))
        for _ in range(rng.randint(1, 4)):
            gold.append(
                ExtractionRow(
                    sent, rng.choice(words), tuple(rng.choice(words) for _ in range(rng.randint(1, 3)))
                )
            )
        for _ in range(rng.randint(0, 6)):
            args = tuple(" ".join(rng.choice(words) for _ in range(2)) for _ in range(rng.randint(1, 3)))
            pred.append(ExtractionRow(sent, rng.choice(words), args, rng.choice([0.1, 0.2, 0.5, 0.7, 0.9])))
    fast = carb_curve(gold, pred)
    thr, p, r, best, auc = reference_carb_curve(gold, pred)
    assert fast.thresholds.tolist() == thr
    np.testing.assert_allclose(fast.precision, p, atol=1e-12)
    np.testing.assert_allclose(fast.recall, r, atol=1e-12)
    assert fast.best == pytest.approx(best) and fast.auc == pytest.approx(auc)


def test_duplicate_keys_replace_by_default_and_merge_on_request(tmp_path):
    gold = write_lines(
        tmp_path / "gold.tsv",
        [
            "He ran .\tran\tHe",
            "He ran.\tran\tHe\thome",
            "She sat .\tsat\tShe",
        ],
    )
    pred = write_lines(tmp_path / "pred.tsv", ["He ran .\t0.9\tran\tHe", "He  ran .\t0.8\tran\tHe\thome"])
    res = score("carb", pred, gold=gold)
    # gold "He ran." replaces "He ran ." (same key): 2 gold tuples; the 2nd prediction group replaces the 1st
    assert res["gold_tuples"] == 2 and res["replaced_gold_tuples"] == 1 and res["replaced_predictions"] == 1
    assert res["curve"]["thresholds"] == [0.8]
    merged = score("carb", pred, gold=gold, merge_duplicates=True)
    assert merged["gold_tuples"] == 3 and merged["curve"]["thresholds"] == [0.8, 0.9]


def test_unknown_sentences_are_counted_and_warned(tmp_path):
    gold = write_lines(tmp_path / "gold.tsv", ["He ran .\tran\tHe\thome"])
    pred = write_lines(
        tmp_path / "pred.tsv", ["He ran .\t0.9\tran\tHe\thome", "Other one .\t0.5\tis\tit\tone"]
    )
    with pytest.warns(UserWarning, match="1 prediction"):
        res = score("carb", pred, gold=gold)
    assert res["unknown_predictions"] == 1 and res["unknown_sentences"] == 1
    # official: thresholds include confidences of sentences outside the gold (P = 1 where nothing is kept)
    assert res["curve"]["thresholds"] == [0.5, 0.9] and res["precision"] == 1.0 and res["recall"] == 1.0


def test_empty_predictions_official_semantics_with_warning(tmp_path):
    gold = write_lines(tmp_path / "gold.tsv", ["He ran .\tran\tHe\thome"])
    pred = write_lines(tmp_path / "pred.tsv", [])
    with pytest.warns(UserWarning, match="no predictions"):
        res = score("carb", pred, gold=gold)
    assert (res["precision"], res["recall"], res["f1"], res["auc"]) == (0.0, 0.0, 0.0, 0.0)


def test_malformed_lines_name_file_and_line(tmp_path):
    pred = write_lines(tmp_path / "pred.tsv", ["He ran .\t0.9\tran\tHe", "He ran .\tnot-a-number\tran\tHe"])
    with pytest.raises(ValueError, match=r"pred\.tsv:2: confidence"):
        score("carb", pred)
    short = write_lines(tmp_path / "short.tsv", ["only\tfields"])
    with pytest.raises(ValueError, match=r"short\.tsv:1: expected"):
        score("carb", short)


def test_in_memory_equals_file(openie4, openie4_result):
    from molora_adapters.oie.formats.readers import read_openie4

    rows = read_openie4(openie4)
    records: dict[str, list[dict]] = {}
    for r in rows:
        records.setdefault(r.sentence, []).append(
            {"arg0": r.args[0], "relation": r.relation, "args": list(r.args[1:]), "confidence": r.confidence}
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = score_extractions("carb", list(records.items()))
    assert res["curve"] == openie4_result["curve"] and res["auc"] == 0.272


def test_trapezoid_auc_is_absolute():
    assert trapezoid_auc([1.0, 0.5, 0.0], [0.5, 0.5, 1.0]) == pytest.approx(0.25 + 0.375)


def test_official_point_keeps_the_nan_f1_quirk():
    gold = _rows([("A b c .", "b", ("A", "c"), 1), ("D e f .", "e", ("D", "f"), 1)])
    # the most confident prediction is wrong: at t=0.9, P = 0/1 and R = 0 -> the official F1 is NaN there
    pred = _rows([("A b c .", "zz", ("q", "r"), 0.9), ("D e f .", "e", ("D", "f"), 0.5)])
    res = carb_curve(gold, pred)
    assert res.best == pytest.approx((0.5, 0.5, 0.5))
    p, r, f = res.official_best
    assert (p, r) == (0.0, 0.0) and np.isnan(f)
