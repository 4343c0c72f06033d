"""Scripts without spaces: the unspaced text is tokenised and sub-words map back to words exactly."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_adapter_model

from molora_adapters.data.alignment import is_unspaced, join_words, split_words, word_spaces
from molora_adapters.data.corpora import build_records
from molora_adapters.data.tokenization import tokenize_words, word_level_tags
from molora_adapters.oie import OIEPipeline, add_oie_head, build_oie_features
from molora_adapters.oie.labels import ARG_LABELS, PRED_LABELS

# A hand-made Unigram vocabulary, so that the expected segmentation is known: multi-character pieces
# ("作为", "東京", "ภาษา"), single characters, and "▁" alone (needed before a character at sentence start).
_PIECES = {
    "▁": -2.0,
    "作为": -1.0,
    "民族": -1.0,
    "東京": -1.0,
    "に": -2.0,
    "住": -2.0,
    "む": -2.0,
    "ภาษา": -1.0,
    "ไทย": -1.0,
    "▁C": -1.0,
    "▁I": -1.0,
    "▁15": -1.0,
    "▁-": -1.0,
    "15": -1.5,
    "-": -1.5,
    "17": -1.5,
    "▁17": -1.0,
}
_CHARS = "汉服作为民族的東京に住むภาษาไทยมีCI15-7天。"


@pytest.fixture(scope="module")
def hand_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = [(s, 0.0) for s in specials] + list(_PIECES.items())
    vocab += [(c, -3.0) for c in _CHARS if c not in _PIECES] + [("▁" + c, -3.5) for c in "東ภ"]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


def _pieces(tok, enc, i=0):
    return tok.convert_ids_to_tokens(enc.input_ids[i])


@pytest.mark.parametrize(
    ("language", "sentence", "pieces", "word_ids", "word_tokens"),
    [
        (  # zh, character words: "▁" alone belongs to no word, "作为" / "民族" cover two words each
            "zh",
            "汉 服 作 为 汉 民族 的",
            ["<s>", "▁", "汉", "服", "作为", "汉", "民族", "的", "</s>"],
            [None, None, 0, 1, 2, 4, 5, 7, None],
            [2, 3, 4, 4, 5, 6, 6, 7],
        ),
        (  # ja, raw text (no spaces at all), characters
            "ja",
            "東京に住む",
            ["<s>", "▁", "東京", "に", "住", "む", "</s>"],
            [None, None, 0, 2, 3, 4, None],
            [2, 2, 3, 4, 5],
        ),
        (  # th, pre-segmented words (split on whitespace) tokenised without the spaces
            "th",
            "ภาษา ไทย มี",
            ["<s>", "▁", "ภาษา", "ไทย", "ม", "ี", "</s>"],
            [None, None, 0, 1, 2, 2, None],
            [2, 3, 4],
        ),
        (  # Latin and digits inside zh keep the spaces the text had; "1 5" written together stays "15"
            "zh",
            "C I 15-17 天",
            ["<s>", "▁C", "▁I", "▁15", "-", "17", "天", "</s>"],
            [None, 0, 1, 2, 4, 5, 7, None],
            [1, 2, 3, 3, 4, 5, 5, 6],
        ),
    ],
)
def test_subword_to_word_map_is_exact(hand_tokenizer, language, sentence, pieces, word_ids, word_tokens):
    words = [w for w, _, _ in split_words(sentence, language)]
    enc = tokenize_words(hand_tokenizer, [words], languages=language, sentences=[sentence])
    assert enc.unspaced == [True]
    assert _pieces(hand_tokenizer, enc) == pieces
    assert enc.word_ids[0] == word_ids
    assert enc.word_tokens[0] == word_tokens


def test_character_split_text_is_unspaced_whatever_the_language(hand_tokenizer):
    assert is_unspaced(["汉", "服"], None) and is_unspaced(["a", "b"], "en") and not is_unspaced(["ab"], "en")
    assert join_words(["C", "I", "汉", "服", "1", "5"], [True, True, True, True, False]) == (
        "C I汉服15",
        [(0, 1), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)],
    )
    assert word_spaces("用 iPhone手机", ["用", "iPhone", "手", "机"]) == [True, False, False]
    assert word_spaces("abc", ["x"]) is None
    spaced = tokenize_words(hand_tokenizer, [["東京", "に"], ["C", "I"]], languages=["de", None])
    assert spaced.unspaced == [False, True]
    assert _pieces(hand_tokenizer, spaced, 0) == ["<s>", "▁", "東京", "▁", "に", "</s>"]  # pre-split words


def test_word_level_tags_continue_shared_subwords():
    # sub-words: 0 special, 1 "作为" (words 0, 1), 2 "的" (word 2); word 3 has no sub-word
    probs = torch.zeros(1, 4, len(PRED_LABELS))
    probs[0, 1, PRED_LABELS.index("P-B")] = 0.9
    probs[0, 2, PRED_LABELS.index("O")] = 0.8
    tags, p = word_level_tags(probs, torch.tensor([[1, 1, 2, -1]]), PRED_LABELS)
    assert [PRED_LABELS[k] for k in tags[0].tolist()] == ["P-B", "P-I", "O", "O"]
    assert torch.allclose(p, torch.tensor([[0.9, 0.9, 0.8, 1.0]]))
    a = torch.zeros(1, 3, len(ARG_LABELS))
    a[0, 1, ARG_LABELS.index("A1-I")] = 1.0
    tags, _ = word_level_tags(a, torch.tensor([[1, 1]]), ARG_LABELS)
    assert [ARG_LABELS[k] for k in tags[0].tolist()] == ["A1-I", "A1-I"]


@pytest.mark.parametrize("layout", ["sentence", "predicate"])
def test_features_put_tags_on_the_unspaced_subwords(hand_tokenizer, layout):
    sentence = "汉服作为民族的"
    raws = [{"arg0": "汉服", "relation": "作为", "args": ["民族的"]}]
    records = build_records([(sentence, None, raws, {})], language="zh", id_prefix="t")
    (feat,) = build_oie_features(records, hand_tokenizer, layout=layout)
    if layout == "sentence":  # one row per sentence: per-predicate fields hold one list per predicate
        assert len(feat["argument_labels"]) == len(feat["predicate_masks"]) == 1
        feat = {
            **feat,
            "argument_labels": feat["argument_labels"][0],
            "predicate_mask": feat["predicate_masks"][0],
        }
    pieces = hand_tokenizer.convert_ids_to_tokens(feat["input_ids"])
    assert pieces == ["<s>", "▁", "汉", "服", "作为", "民族", "的", "</s>"]
    assert [PRED_LABELS[k] if k >= 0 else None for k in feat["predicate_labels"]] == [
        None, None, "O", "O", "P-B", "O", "O", None,
    ]  # fmt: skip
    assert [ARG_LABELS[k] if k >= 0 else None for k in feat["argument_labels"]] == [
        None, None, "A0-B", "A0-I", "O", "A1-B", "A1-I", None,
    ]  # fmt: skip
    assert feat["predicate_mask"] == [0, 0, 0, 0, 1, 0, 0, 0]


def test_unspaced_and_character_split_sentences_give_the_same_extractions(tiny_tokenizer):
    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    with torch.no_grad():  # bias the predicate tagger towards P-B so that random weights give tuples
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    pipe = OIEPipeline(model, tiny_tokenizer, min_args=0, precision="fp32")
    raw = ["北京是中华人民共和国的首都。", "该公司去年在柏林发布了一款新产品。", "河流穿过城市流入大海。"]
    split = [" ".join(s) for s in raw]
    for language in ("zh", None):
        a, b = pipe.extract(raw, language=language), pipe.extract(split, language=language)
        assert sum(map(len, a)) > 0

        def key(exts):
            return [(e.relation_pos, e.arg0_pos, e.args_pos, round(e.confidence, 5)) for e in exts]

        assert [key(x) for x in a] == [key(x) for x in b]
        for sent, exts in zip(split, b, strict=True):  # texts are cut from the character-split input
            for e in exts:
                assert e.relation == " ".join(sent.split()[p] for p in e.relation_pos)
    _, (chunk, *_) = pipe.preprocess(split[:1], ["zh"])
    presplit = tiny_tokenizer([split[0].split()], is_split_into_words=True)["input_ids"][0]
    assert len(chunk.input_ids) < len(presplit)  # no "▁" before every character
