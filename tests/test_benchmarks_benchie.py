"""BenchIE scorer: Multi2OIE's official en/de/zh numbers, the official gold-file parse, zh normalisation."""

from __future__ import annotations

import pytest
from benchmarks_utils import BENCH_DATA, write_lines

from molora_adapters.oie.benchmarks import parse_benchie_gold, score, score_extractions
from molora_adapters.oie.benchmarks.benchie import _realisations, _units


@pytest.mark.parametrize(
    "lang, expected",
    [("en", (0.3924, 0.1607, 0.2281)), ("de", (0.0895, 0.0258, 0.0400)), ("zh", (0.1756, 0.1026, 0.1295))],
)
def test_multi2oie_official_numbers(lang, expected):
    res = score("benchie", BENCH_DATA / f"m2oie_{lang}_explicit.txt", lang=lang, format="benchie")
    assert tuple(round(res[k], 4) for k in ("precision", "recall", "f1")) == expected
    assert res["auc"] is None and res["unknown_predictions"] == 0


def test_shipped_gold_header_typos_parse_as_official():
    # en '78-->Cluster 6:' and de '14-> Cluster 6:' are headers; zh '2 0 6 :' is not (sentence 206 keeps 3 synsets)
    from molora_adapters.oie.benchmarks.gold import gold_path

    en, de, zh = (parse_benchie_gold(gold_path("benchie", lang)) for lang in ("en", "de", "zh"))
    assert (en.n_synsets, de.n_synsets, zh.n_synsets) == (1350, 1086, 994)
    assert len(en.synsets["78"]) >= 6 and len(de.synsets["14"]) >= 6
    assert len(zh.synsets["206"]) == 3
    assert any(t.stray for c in zh.synsets["206"] for t in c)


def test_optional_token_units_and_realisations():
    assert _units("a [b c] d") == ["a", "[b c]", "d"]
    assert _units("a b] c") == ["a", "c"]  # a stray closing token is dropped
    assert _units("[x y") == ["y"]  # an unclosed opening token is dropped
    assert sorted(_realisations(_units("[the] first [Prime] Minister"))) == sorted(
        ["the first Prime Minister", "first Prime Minister", "the first Minister", "first Minister"]
    )


@pytest.fixture
def small_gold(tmp_path):
    return write_lines(
        tmp_path / "gold.txt",
        [
            "sent_id:1\tHe served as the first Prime Minister of Australia .",
            "1--> Cluster 1:",
            "He --> served as --> [the] [first] Prime Minister [of Australia]",
            "He --> served --> as [the] [first] Prime Minister [of Australia]",
            "1--> Cluster 2:",
            "He --> became --> a founding justice",
            "",
            "sent_id:2\tGraner handcuffed him .",
            "2-->Cluster 1:",
            "Graner --> handcuffed --> him",
            "2 :",
            "Graner --> cuffed --> him",
            "2-> Cluster 3:",
            "him --> was handcuffed by --> Graner",
        ],
    )


def test_small_gold_hand_computed(small_gold, tmp_path):
    gold = parse_benchie_gold(small_gold)
    assert [len(gold.synsets[s]) for s in ("1", "2")] == [2, 2]
    pred = write_lines(
        tmp_path / "pred.txt",
        [
            "1\tHe\tserved as\tPrime Minister",  # hits synset 1
            "1\tHe\tserved as\tthe Prime Minister",  # same synset again: neither TP nor FP
            "1\tHe\tbecame\ta justice",  # FP
            "2\tGraner\tcuffed\thim",  # the '2 :' line is no header: still synset 1
            "3\tX\ty\tz",  # unknown sentence: reported, not scored
        ],
    )
    with pytest.warns(UserWarning, match="not in the `benchie` gold"):
        res = score("benchie", pred, gold=small_gold, format="benchie")
    assert (res["true_positives"], res["false_positives"], res["synsets"]) == (2, 1, 4)
    assert res["precision"] == pytest.approx(2 / 3) and res["recall"] == pytest.approx(2 / 4)
    assert res["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert res["unknown_predictions"] == 1


def test_zh_word_tokenised_predictions_are_normalised():
    sentence = "他 曾 担任 澳大利亚 第一任 总理 ， 并 成为 澳大利亚 高等法院 的 创始 法官 。"
    ext = {"arg0": "他", "relation": "担任", "args": ["澳大利亚 第一任 总理"], "confidence": 1.0}
    res = score_extractions("benchie", [(sentence, [ext])], lang="zh")
    assert (res["true_positives"], res["false_positives"]) == (1, 0)
    raw = score_extractions("benchie", [(sentence, [ext])], lang="zh", tokenize_chars=False)
    assert (raw["true_positives"], raw["false_positives"]) == (0, 1)


def test_tabbed_predictions_are_placed_by_sentence_text(small_gold, tmp_path):
    pred = write_lines(tmp_path / "pred.tsv", ["Graner handcuffed him.\t1.0\thandcuffed\tGraner\thim"])
    res = score("benchie", pred, gold=small_gold, format="tabbed")
    assert res["true_positives"] == 1 and res["unknown_predictions"] == 0


def test_malformed_benchie_line(tmp_path):
    pred = write_lines(tmp_path / "pred.txt", ["1\tHe"])
    with pytest.raises(ValueError, match=r"pred\.txt:1: expected"):
        score("benchie", pred, format="benchie")
