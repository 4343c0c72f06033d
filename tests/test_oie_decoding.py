"""Gold tuples -> BIO labels (on sub-words) -> decode gives back the gold tuples exactly."""

from __future__ import annotations

import pytest
import torch
from oie_testing import GOLD_SAMPLES, gold_records

from molora_adapters.data.alignment import split_words
from molora_adapters.data.tokenization import tokenize_words
from molora_adapters.oie.decoding import (
    bio_spans,
    build_extraction,
    confidence,
    decode_arguments,
    decode_predicates,
    repair_bio,
)
from molora_adapters.oie.features import build_oie_features
from molora_adapters.oie.labels import ARG_LABELS, IGNORE_INDEX, PRED_LABELS, argument_tags, predicate_tags
from molora_adapters.oie.pipeline import OIEPipeline


def _oracle_probs(labels: list[int], n_labels: int) -> torch.Tensor:
    """One-hot 'model output' from sub-word labels; unscored positions get a deliberately wrong tag."""
    probs = torch.zeros(len(labels), n_labels)
    for t, y in enumerate(labels):
        probs[t, y if y != IGNORE_INDEX else n_labels - 1] = 1.0
    return probs


@pytest.mark.parametrize("index", range(len(GOLD_SAMPLES)), ids=[s[0] for s in GOLD_SAMPLES])
def test_round_trip_through_subword_labels(index, tiny_tokenizer):
    records = gold_records().select([index])
    rec = records[0]
    feats = build_oie_features(records, tiny_tokenizer, layout="predicate")
    assert len(feats) == len(rec["extractions"])  # one example per (sentence, predicate)
    enc = tokenize_words(
        tiny_tokenizer, [rec["words"]], languages=rec["language"], sentences=[rec["sentence"]]
    )
    (word_ids,), (word_tokens,) = enc.word_ids, enc.word_tokens
    if not enc.unspaced[0]:  # sub-word splits are exercised
        assert len([w for w in word_ids if w is not None]) > len(rec["words"])
    words = split_words(rec["sentence"], rec["language"])
    assert [w for w, _, _ in words] == rec["words"]
    offsets = [(s, e) for _, s, e in words]

    pred_tags, _ = OIEPipeline._word_level(
        _oracle_probs(feats[0]["predicate_labels"], len(PRED_LABELS)), word_tokens, PRED_LABELS
    )
    predicates = decode_predicates(pred_tags)
    assert predicates == [sorted(e["relation_pos"]) for e in rec["extractions"]]
    for gold, feat, predicate in zip(rec["extractions"], feats, predicates, strict=True):
        arg_tags, _ = OIEPipeline._word_level(
            _oracle_probs(feat["argument_labels"], len(ARG_LABELS)), word_tokens, ARG_LABELS
        )
        ext = build_extraction(rec["sentence"], offsets, predicate, arg_tags, language=rec["language"])
        assert (ext.arg0, ext.relation, ext.args) == (gold["arg0"], gold["relation"], gold["args"])
        assert (ext.arg0_pos, ext.relation_pos, ext.args_pos) == (
            gold["arg0_pos"],
            gold["relation_pos"],
            gold["args_pos"],
        )


def test_samples_cover_nary_and_languages():
    langs = {s[0] for s in GOLD_SAMPLES}
    assert langs == {"en", "de", "es", "pt", "zh", "ar"}
    assert max(len(args) for _, _, tuples in GOLD_SAMPLES for _, _, args in tuples) == 3


def test_discontinuous_argument_round_trips():
    words = "He did , in 1990 , win the prize".split()
    sentence = " ".join(words)
    offsets = [(s, e) for _, s, e in split_words(sentence)]
    tags = argument_tags([0], [[7, 8], [3, 4]], len(words))
    ext = build_extraction(sentence, offsets, [6], tags)
    assert ext.args_pos == [[7, 8], [3, 4]]
    gapped = argument_tags([0, 2], [], 4)  # discontinuous subject: two B runs of the same role
    assert gapped == ["A0-B", "O", "A0-B", "O"]
    assert decode_arguments(gapped) == {"A0": [0, 2]}


def test_predicate_tags_cover_all_predicates():
    assert predicate_tags([[1, 2], [4]], 6) == ["O", "P-B", "P-I", "O", "P-B", "O"]
    with pytest.raises(ValueError, match="outside a sentence"):
        predicate_tags([[7]], 6)
    with pytest.raises(ValueError, match="overlap"):
        argument_tags([0, 1], [[1]], 3)
    with pytest.raises(ValueError, match="A1-A3"):
        argument_tags([0], [[1], [2], [3], [4]], 5)


@pytest.mark.parametrize(
    "tags, repaired",
    [
        (["O", "P-I", "P-I", "O"], ["O", "P-B", "P-I", "O"]),  # I without B starts a span
        (["A0-B", "A1-I", "A1-I"], ["A0-B", "A1-B", "A1-I"]),  # I of another role starts a new span
        (["P-I"], ["P-B"]),
        (["A2-B", "O", "A2-I"], ["A2-B", "O", "A2-B"]),
    ],
)
def test_repair_bio(tags, repaired):
    assert repair_bio(tags) == repaired


def test_bio_spans_and_predicate_forced_outside():
    assert bio_spans(["P-B", "P-I", "O", "P-I"]) == [("P", [0, 1]), ("P", [3])]
    # the predicate's own words are never an argument
    assert decode_arguments(["A0-B", "A1-B", "A1-I"], predicate=[1]) == {"A0": [0], "A1": [2]}


def test_best_span_strategy_keeps_the_most_probable_span():
    tags = ["A0-B", "O", "A0-B", "A0-I", "P-B", "A1-B"]
    probs = [0.4, 1.0, 0.9, 0.5, 1.0, 0.7]
    assert decode_arguments(tags, [4]) == {"A0": [0, 2, 3], "A1": [5]}
    assert decode_arguments(tags, [4], strategy="best", probs=probs) == {"A0": [2, 3], "A1": [5]}
    assert decode_arguments(tags, [4], strategy="best") == {"A0": [0], "A1": [5]}
    with pytest.raises(ValueError, match="`strategy`"):
        decode_arguments(tags, strategy="longest")


def test_nearest_and_merge_near_strategies_limit_scattered_pieces():
    #       0       1       2      3      4      5       6      7      8       9
    tags = ["A1-B", "O", "O", "O", "A0-B", "P-B", "A1-B", "A1-I", "O", "A1-B"]
    probs = [0.9, 1.0, 1.0, 1.0, 0.8, 1.0, 0.6, 0.5, 1.0, 0.7]
    assert decode_arguments(tags, [5]) == {"A0": [4], "A1": [0, 6, 7, 9]}
    assert decode_arguments(tags, [5], strategy="nearest", probs=probs) == {"A0": [4], "A1": [6, 7]}
    # merge_near: best A1 span is [0]; 4 words (1-4, the predicate not counted) separate it from [6, 7]
    assert decode_arguments(tags, [5], strategy="merge_near", probs=probs) == {"A0": [4], "A1": [0]}
    probs[0] = 0.1  # now [9] is the best A1 span; [6, 7] is one word away, then [0] four words away
    assert decode_arguments(tags, [5], strategy="merge_near", probs=probs) == {"A0": [4], "A1": [6, 7, 9]}
    # a discontinuous argument around the predicate is kept whole: the predicate is not part of the gap
    assert decode_arguments(["A1-B", "P-B", "P-I", "A1-B"], [1, 2], strategy="merge_near") == {"A1": [0, 3]}


def test_span_strategies_are_a_registry():
    from molora_adapters.oie.decoding import (
        SPAN_SELECTORS,
        SPAN_STRATEGIES,
        SpanSelector,
        register_span_strategy,
    )

    assert tuple(SPAN_STRATEGIES) == ("best", "merge", "merge_near", "nearest")

    class Last(SpanSelector):
        name = "last_for_test"

        def select(self, spans, predicate, probs):
            return spans[-1]

    register_span_strategy(Last())
    try:
        assert decode_arguments(["A0-B", "O", "A0-B"], strategy="last_for_test") == {"A0": [2]}
        with pytest.raises(ValueError, match="already registered"):
            register_span_strategy(Last())
    finally:
        SPAN_SELECTORS.unregister("last_for_test")
    with pytest.raises(TypeError, match="SpanSelector"):
        register_span_strategy("merge")


def test_confidence_matches_hand_computation():
    roles = {"A0": [0, 1], "A1": [3, 5]}  # A1 has two runs -> two B positions
    pred_probs = [0.0, 0.0, 0.9, 0.0, 0.0, 0.0]
    arg_probs = [0.8, 0.1, 0.0, 0.6, 0.0, 0.4]
    assert confidence([2], roles, pred_probs, arg_probs) == pytest.approx(0.9 + 0.8 + 0.5)
    assert confidence([2], roles, pred_probs, arg_probs, "mean") == pytest.approx((0.9 + 0.8 + 0.5) / 3)
    with pytest.raises(ValueError, match="confidence_mode"):
        confidence([2], roles, pred_probs, arg_probs, "max")


def test_min_args_drops_argumentless_tuples():
    offsets = [(0, 1), (2, 3)]
    assert build_extraction("a b", offsets, [0], ["O", "O"]) is None
    assert build_extraction("a b", offsets, [0], ["O", "O"], min_args=0).arguments == [""]
