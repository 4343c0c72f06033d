"""Few-shot Re-OIE2016 data must not leak English test sentences through translation."""

from __future__ import annotations

import re

import pytest

from molora_adapters.oie.benchmarks import (
    align_translations,
    leak_free_few_shot,
    load_benchmark,
    reoie2016_english_originals,
)


def _key(s: str) -> str:
    return re.sub(r"[\W_]", "", s.lower())


def test_align_translations_skips_a_missing_sentence():
    originals = ["In 1990 Smith met Jones .", "Paris has 2 million people .", "Berlin won in 2004 ."]
    translations = ["En 1990 Smith conoció a Jones .", "Berlín ganó en 2004 ."]
    assert align_translations(translations, originals) == [0, 2]


@pytest.mark.slow
def test_reoie2016_originals_and_leak_free_few_shot():
    english = load_benchmark("reoie2016", "en")["sentence"]
    test = {_key(s) for b in ("carb", "benchie") for s in load_benchmark(b, "en")["sentence"]}
    es = reoie2016_english_originals("es")
    assert es == list(english)  # same order, same count
    pt = reoie2016_english_originals("pt")  # the Portuguese file lacks one sentence: English 590
    assert len(pt) == 594 and None not in pt and pt == list(english[:590]) + list(english[591:])
    # the first 300 translations (the former few-shot set) come from 295 CaRB en test sentences
    carb = {_key(s) for s in load_benchmark("carb", "en")["sentence"]}
    assert sum(_key(s) in carb for s in es[:300]) == 295
    for lang, originals in (("es", es), ("pt", pt)):
        few = leak_free_few_shot(lang)
        assert len(few) == 8 and len(leak_free_few_shot(lang, 3)) == 3
        translated = list(load_benchmark("reoie2016", lang)["sentence"])
        for sentence in few["sentence"]:
            assert _key(originals[translated.index(sentence)]) not in test
    assert len(leak_free_few_shot("es", test_sets=[])) == 595
    with pytest.raises(ValueError, match="`lang`"):
        reoie2016_english_originals("en")
