"""Corpus loaders and span alignment: exact counts on the shipped corpora, every drop reported."""

from __future__ import annotations

import functools
import gzip
import json
from collections import Counter

import pytest
from conftest import SHARED_DATA

from molora_adapters.data import CORPUS_LOADERS, OIE_FEATURES, load_training_corpus, register_corpus_loader
from molora_adapters.data.alignment import (
    DROP_REASONS,
    AlignmentReport,
    find_span,
    split_into_spans,
    split_words,
)
from molora_adapters.data.corpora import align_tuple, parse_t5_target

# Expected alignment of the vendored corpora: (sentences, tuples in, tuples kept, drops by reason).
SHIPPED = {
    "oie2016": (1759, 5078, 4472, {"duplicate_tuple": 1, "overlapping_spans": 551, "too_many_arguments": 54}),
    "imojie": (
        7368,
        17754,
        15575,
        {
            "argument_not_found": 499,
            "duplicate_tuple": 426,
            "overlapping_spans": 87,
            "relation_not_found": 1167,
        },
    ),
    "lsoie-gpt": (
        4900,
        26349,
        16312,
        {
            "argument_not_found": 1252,
            "duplicate_tuple": 200,
            "eval_overlap": 6,
            "overlapping_spans": 144,
            "relation_not_found": 8435,
        },
    ),
}


@functools.cache
def _load_shipped(name: str):
    report = AlignmentReport()
    return name, load_training_corpus(name, report=report), report


@pytest.fixture(
    params=[
        pytest.param(n, marks=pytest.mark.slow) if n in ("imojie", "lsoie-gpt") else n
        for n in sorted(SHIPPED)
    ]
)
def shipped(request):
    return _load_shipped(request.param)


def test_shipped_corpus_counts(shipped):
    name, ds, report = shipped
    sentences, tuples_in, kept, drops = SHIPPED[name]
    assert ds.features == OIE_FEATURES
    assert (len(ds), report.tuples_in, report.tuples_kept, dict(report.dropped)) == (
        sentences,
        tuples_in,
        kept,
        drops,
    )
    assert report.tuples_in == report.tuples_kept + report.tuples_dropped
    assert sum(len(r) for r in ds["extractions"]) == kept
    assert f"kept {kept}," in ds.info.description


def test_every_rejected_tuple_is_listed_in_meta(shipped):
    name, ds, report = shipped
    listed = Counter(r["reason"] for m in ds["meta"] for r in json.loads(m).get("rejected", []))
    expected = Counter({k: v for k, v in report.dropped.items() if k != "eval_overlap"})
    assert listed == expected
    assert set(report.dropped) <= set(DROP_REASONS)


def test_aligned_positions_spell_the_argument_texts(shipped):
    _, ds, _ = shipped
    for rec in ds.select(range(200)):
        for e in rec["extractions"]:
            assert e["arg0"] == " ".join(rec["words"][i] for i in e["arg0_pos"])
            assert [" ".join(rec["words"][i] for i in p) for p in e["args_pos"]] == e["args"]
            assert len(e["args"]) <= 3 and e["relation_pos"]


@pytest.mark.slow
def test_lsoie_gpt_drops_the_carb_dev_sentence():
    _, ds, _ = _load_shipped("lsoie-gpt")
    assert not any(
        s.startswith("Plans to artificially oxygenate areas of the Baltic") for s in ds["sentence"]
    )


def test_oie2016_positions_come_from_the_file():
    rec = _load_shipped("oie2016")[1][0]
    first = rec["extractions"][0]
    assert rec["sentence"].startswith("Courtaulds ' spinoff reflects")
    assert (first["relation"], first["relation_pos"], first["arg0_pos"]) == ("reflects", [3], [0, 1, 2])


@pytest.mark.slow
def test_oie2016_argument_order_comes_from_the_original_annotation(tmp_path):
    _, ds, _ = _load_shipped("oie2016")
    metas = [json.loads(m) for m in ds["meta"]]
    # 1,696 of the 5,078 tuples of train.oie list another argument first than train.oie.orig (33.4%)
    assert sum(m["arg0_changed"] for m in metas) == 1696
    rec = next(r for r in ds if r["sentence"].startswith("The statement emphasized that holders"))
    first = rec["extractions"][0]
    assert (first["arg0"], first["relation"], first["arg0_pos"]) == ("The statement", "emphasized", [0, 1])
    assert first["args_pos"] == [list(range(4, 25))]  # positions still come from train.oie
    file_order = load_training_corpus("oie2016", argument_order="file")
    rec = next(r for r in file_order if r["sentence"] == rec["sentence"])
    assert rec["extractions"][0]["arg0"].startswith("holders representing")

    # a copy elsewhere: the original annotation is read from `<path>.orig`, and is required
    sentence = "Mary gave John a book ."
    (tmp_path / "x.oie").write_text(
        f"{sentence}\t('gave', [1])\t('John', [2])\t('Mary', [0])\t('a book', [3, 4])\n"
    )
    with pytest.raises(FileNotFoundError, match="original_path"):
        load_training_corpus("oie2016", path=str(tmp_path / "x.oie"))
    (tmp_path / "x.oie.orig").write_text(f"{sentence}\tgave\tMary\ta book\tJohn\n")
    (ext,) = load_training_corpus("oie2016", path=str(tmp_path / "x.oie"))[0]["extractions"]
    assert (ext["arg0"], ext["args"], ext["args_pos"]) == ("Mary", ["a book", "John"], [[3, 4], [2]])
    with pytest.raises(ValueError, match="argument_order"):
        load_training_corpus("oie2016", argument_order="subject")


def test_t5_target_parsing():
    tuples = parse_t5_target(
        "subject <is> A B <and> relation <is> r <and> object <is> C <then> subject <is> X <and> relation <is> y"
    )
    assert tuples == [
        {"relation": "r", "arg0": "A B", "args": ["C"]},
        {"relation": "y", "arg0": "X", "args": []},
    ]


def test_imojie_style_object_is_split_into_arguments():
    words = "Christiaan Barnard later expressed regret for endorsing Glycel .".split()
    tup, note = align_tuple(
        words,
        {
            "arg0": "Christiaan Barnard",
            "relation": "expressed",
            "args": ["regret for endorsing Glycel later"],
        },
    )
    assert note == "split" and tup.args == ["regret for endorsing Glycel", "later"]
    assert tup.args_pos == [[4, 5, 6, 7], [2]]


@pytest.mark.parametrize(
    "raw, reason",
    [
        ({"arg0": "A", "relation": " ", "args": []}, "empty_relation"),
        ({"arg0": "A", "relation": "missing", "args": ["b"]}, "relation_not_found"),
        ({"arg0": "nobody", "relation": "saw", "args": ["b"]}, "argument_not_found"),
        ({"arg0": "", "relation": "saw", "args": []}, "no_arguments"),
        ({"arg0": "A", "relation": "saw", "args": ["saw b"]}, "overlapping_spans"),
        ({"arg0": "A", "relation": "saw", "args": ["b", "c", "d", "e"]}, "too_many_arguments"),
        (
            {
                "arg0": "A",
                "relation": "saw",
                "args": ["b"],
                "relation_pos": [9],
                "arg0_pos": [0],
                "args_pos": [[2]],
            },
            "position_out_of_range",
        ),
    ],
)
def test_drop_reasons(raw, reason):
    assert align_tuple("A saw b c d e".split(), raw) == (None, reason)


def test_alignment_is_language_aware():
    assert [w for w, _, _ in split_words("北京 是首都", "zh")] == ["北", "京", "是", "首", "都"]
    assert split_words("Der Fluss", "de") == [("Der", 0, 3), ("Fluss", 4, 9)]
    assert [w for w, _, _ in split_words("北京是首都。")] == ["北", "京", "是", "首", "都", "。"]  # detected
    assert [w for w, _, _ in split_words("Tokyo 東京 is big")] == ["Tokyo", "東京", "is", "big"]
    zh = [w for w, _, _ in split_words("该公司去年在柏林发布了一款新产品。", "zh")]
    tup, _ = align_tuple(zh, {"arg0": "该公司", "relation": "发布了", "args": ["一款新产品"]}, "zh")
    assert (tup.arg0, tup.args, tup.relation_pos) == ("该公司", ["一款新产品"], [8, 9, 10])


def _words(text, language="de"):
    return [w for w, _, _ in split_words(text, language)]


def test_split_words_peels_punctuation_like_the_training_corpora():
    # raw text splits as the PTB-tokenised and projected training data do: marks are their own words
    assert _words('Die "Kormoran" war, wie (oft) gesagt: schnell.') == [
        "Die",
        '"',
        "Kormoran",
        '"',
        "war",
        ",",
        "wie",
        "(",
        "oft",
        ")",
        "gesagt",
        ":",
        "schnell",
        ".",
    ]
    assert _words("Er zahlte 15.7% oder $5 für 1,000 Ein- und Ausgänge!", "de")[2:] == [
        "15.7",
        "%",
        "oder",
        "$",
        "5",
        "für",
        "1,000",
        "Ein-",
        "und",
        "Ausgänge",
        "!",
    ]
    # mid-sentence periods belong to abbreviations, initials and ordinals; final abbreviations keep theirs
    assert _words("Dr. Jagan traf am 3. Mai J. Doe in Calif. bei U.S. Steel Inc.", "en") == [
        "Dr.",
        "Jagan",
        "traf",
        "am",
        "3.",
        "Mai",
        "J.",
        "Doe",
        "in",
        "Calif.",
        "bei",
        "U.S.",
        "Steel",
        "Inc.",
    ]
    assert _words("It 's .308 , he said ``ok '' ... -- done!!", "en") == [
        "It",
        "'s",
        ".308",
        ",",
        "he",
        "said",
        "``",
        "ok",
        "''",
        "...",
        "--",
        "done",
        "!!",
    ]
    # offsets point into the text, so spans render from the original characters
    text = "Sie sagte: „Ja.“"
    assert [text[a:b] for _, a, b in split_words(text, "de")] == ["Sie", "sagte", ":", "„", "Ja", ".", "“"]


def test_split_words_keeps_tokenised_benchmark_text():
    tokenised = "Earlier this year , President Bush made a final `` take - it '' offer : $ 4.25 an hour ."
    assert _words(tokenised, "en") == tokenised.split()


def test_align_tuple_finds_spans_on_peeled_words():
    words = _words("Die Beiträge von al-Muwaffaq sind ebenfalls wegweisend.")
    tup, _ = align_tuple(
        words,
        {"arg0": "Die Beiträge von al-Muwaffaq", "relation": "sind", "args": ["ebenfalls wegweisend."]},
        "de",
    )
    assert tup.args_pos == [[5, 6, 7]]
    words = _words("He moved to Sacramento , Calif. in 1990 .", "en")
    tup, _ = align_tuple(words, {"arg0": "He", "relation": "moved", "args": ["to Sacramento , Calif."]}, "en")
    assert tup.args == ["to Sacramento , Calif."]


def test_find_span_prefers_positions_outside_avoid_and_normalises():
    words = "the cat saw the cat".split()
    assert find_span(words, ["the", "cat"]) == [0, 1]
    assert find_span(words, ["the", "cat"], avoid=[1]) == [3, 4]
    assert find_span(["The", "CAT"], ["the", "cat"]) == [0, 1]
    assert find_span(["people", "'s", "conference"], ["people's", "conference"]) == [0, 1, 2]
    assert split_into_spans(words, ["saw", "cat", "the"]) == [[2], [1], [0]]
    assert split_into_spans(words, ["dog"]) is None


def test_jsonl_loader_round_trip(tmp_path):
    lines = [
        {
            "sentence": "Madrid es la capital de España .",
            "language": "es",
            "extractions": [{"arg0": "Madrid", "relation": "es", "args": ["la capital de España"]}],
        },
        {
            "sentence": "北京是首都。",
            "language": "zh",
            "extractions": [
                {"arg0": "北京", "relation": "是", "args": ["首都"]},
                {"arg0": "上海", "relation": "是", "args": ["首都"]},
            ],
        },
    ]
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n")
    report = AlignmentReport()
    ds = load_training_corpus("jsonl", str(path), report=report)
    assert ds["language"] == ["es", "zh"]
    assert ds[0]["extractions"][0]["args_pos"] == [[2, 3, 4, 5]]
    assert ds[1]["extractions"][0]["relation_pos"] == [2]
    assert dict(report.dropped) == {"argument_not_found": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence": "x"}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_training_corpus("jsonl", str(bad))


def test_path_only_loaders_require_a_path():
    for name in ("lsoie", "openie4", "jsonl"):
        with pytest.raises(ValueError, match="pass `path=`"):
            load_training_corpus(name)


def test_registry_rejects_duplicates_and_accepts_new_loaders():
    with pytest.raises(ValueError, match="already registered"):
        register_corpus_loader("oie2016", lambda path=None: None)
    register_corpus_loader("test-empty", lambda path=None, **kw: "ok")
    try:
        assert load_training_corpus("test-empty") == "ok"
    finally:
        CORPUS_LOADERS.unregister("test-empty")
    assert "test-empty" not in CORPUS_LOADERS
    with pytest.raises(KeyError, match="Unknown corpus loader `test-empty`"):
        CORPUS_LOADERS.unregister("test-empty")


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "oie_train").is_dir(), reason="../shared/data is not available")
def test_path_loaders_on_shared_data():
    root = SHARED_DATA / "oie_train"
    report = AlignmentReport()
    ds = load_training_corpus(
        "lsoie", str(root / "lsoie_partial" / "lsoie_wiki_test.eval.oie"), report=report
    )
    assert (len(ds), report.tuples_in, report.tuples_kept) == (2402, 5374, 4886)
    report = AlignmentReport()
    ds = load_training_corpus("openie4", str(root / "tupleinf_openie4" / "4thgr_pt1.md"), report=report)
    assert (len(ds), report.tuples_in, report.tuples_kept) == (116, 222, 202)
    conf = ds[1]["extractions"][0]["confidence"]
    assert conf == pytest.approx(0.96)
    report = AlignmentReport()
    ds = load_training_corpus(
        "oie2016",
        str(root / "oie2016" / "conll" / "propbank.train.oie.conll"),
        report=report,
        original_path=str(root / "oie2016" / "train.oie.orig"),
    )
    assert (len(ds), report.tuples_in) == (703, 2173)
