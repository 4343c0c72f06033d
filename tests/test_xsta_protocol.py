"""X-STA benchmark protocol: vendored TyDiQA/MLQA data, overlap with XQuAD, no-answer windows, row-sparse embedding
training, en-en pairs, the entropy average and the hierarchical bootstrap."""

from __future__ import annotations

import math

import pytest
import torch

from molora_adapters.xsta.data import (
    TYDIQA_LANGUAGES,
    QAExample,
    cap_no_answer,
    load_mlqa_de,
    load_tydiqa,
    load_xquad,
    no_answer_fraction,
    paragraph_overlap,
)


# ---- data --------------------------------------------------------------------------------------------------------
def test_vendored_tydiqa_and_mlqa_counts():
    dev, report = load_tydiqa("dev")
    counts = {lang: len(v) for lang, v in dev.items()}
    # the official per-language TyDiQA-GoldP v1.1 dev counts (5,077 in all)
    assert counts == {
        "en": 440, "ar": 921, "bn": 113, "fi": 782, "id": 565, "ko": 276, "ru": 812, "sw": 499, "te": 669,
    }  # fmt: skip
    assert tuple(dev) == TYDIQA_LANGUAGES and not report.summary()["span_not_found"]
    train, _ = load_tydiqa("train")
    assert list(train) == ["en"] and len(train["en"]) == 3696
    mlqa, report = load_mlqa_de()
    assert len(mlqa) == 512 and len({e.context for e in mlqa}) == 456
    assert all(e.context[e.answers[0][1] :].startswith(e.answers[0][0]) for e in mlqa)
    assert not report.summary()["realigned"]


def test_tydiqa_bad_input():
    with pytest.raises(ValueError, match="`split`"):
        load_tydiqa("test")
    with pytest.raises(ValueError, match="xx"):
        load_tydiqa("dev", ["xx"])
    with pytest.raises(FileNotFoundError, match="`ko`"):
        load_tydiqa("train", ["ko"])


def _ex(qid, title, context):
    return QAExample(qid, title, context, "q?", (("a", 0),), "en")


def test_paragraph_overlap_hand_made():
    shared = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    a = [
        _ex("a1", "Alpha", "Completely different words here."),
        _ex("a2", "Beta", "Prefix words. " + shared),
        _ex("a3", "Gamma", "Exact paragraph."),
        _ex("a4", "Oxygen", "Nothing shared at all."),
    ]
    b = [_ex("b1", "oxygen", shared + " suffix"), _ex("b2", "Delta", "exact PARAGRAPH")]
    out = paragraph_overlap(a, b)
    assert (out["exact"], out["ngram"], out["shared_titles"]) == (1, 1, ["oxygen"])
    assert out["overlapping_ids"] == ["a2", "a3", "a4"]


def test_tydiqa_train_overlap_with_xquad():
    train, _ = load_tydiqa("train")
    xquad, _ = load_xquad(["en"])
    out = paragraph_overlap(train["en"], xquad["en"])
    # no paragraph in common; one TyDiQA paragraph (Oxygen) shares 13-grams; two article titles are shared
    assert (out["paragraphs_a"], out["paragraphs_b"], out["exact"], out["ngram"]) == (3428, 240, 0, 1)
    assert out["shared_titles"] == ["force", "oxygen"] and len(out["overlapping_ids"]) == 3


def test_cap_no_answer():
    feats = [{"start_positions": int(i % 4 != 0) * 5, "end_positions": int(i % 4 != 0) * 6, "i": i} for i in range(40)]
    feats += [{"start_positions": 0, "end_positions": 0, "i": 40 + i} for i in range(20)]
    assert no_answer_fraction(feats) == pytest.approx(30 / 60)
    capped = cap_no_answer(feats, 0.1, seed=0)
    # 30 answer windows kept; floor(0.1 * 30 / 0.9) = 3 no-answer windows
    assert len(capped) == 33 and no_answer_fraction(capped) == pytest.approx(3 / 33)
    assert [f["i"] for f in capped] == sorted(f["i"] for f in capped)
    assert capped == cap_no_answer(feats, 0.1, seed=0)
    assert cap_no_answer(feats, 1.0) == feats
