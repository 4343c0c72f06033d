"""Annotation projection (issue 13): splitting, pairing, alignment, span projection, resumable output.

The pipeline tests use a deterministic stand-in aligner (sentence embeddings from a concept id, word
links given by the test), so they exercise pairing, projection, shards, resume and the loader without
weights; the real encoder is checked on the hand-aligned set in ``tests/data/alignment_gold.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from molora_adapters.data import OIE_FEATURES, load_training_corpus
from molora_adapters.data.projection import (
    EncodedSentence,
    ParallelUnit,
    ProjectConfig,
    ProjectionReject,
    RejectReason,
    Sentence,
    WordAlignment,
    eval_overlap,
    export_projected,
    find_leaks,
    itermax,
    mutual_argmax,
    pair_sentences,
    project,
    project_tuple,
    split_sentences,
)
from molora_adapters.data.projection.align import alignment_scores
from molora_adapters.data.projection.corpus import leaked_source_ids
from molora_adapters.data.shards import read_jsonl, read_manifest
from molora_adapters.oie.projection import evaluation_sentences

GOLD = Path(__file__).parent / "data" / "alignment_gold.jsonl"


# --- sentences -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, lang, expected",
    [
        (
            "Mr. Smith went to Washington. He arrived at 5 p.m. on Monday. It rained!",
            "en",
            ["Mr. Smith went to Washington.", "He arrived at 5 p.m. on Monday.", "It rained!"],
        ),
        (
            "He was 39. The record was held by J. R. Ewing.",
            "en",
            ["He was 39.", "The record was held by J. R. Ewing."],
        ),
        ("Er kam am 3. Mai an. Dann ging er.", "de", ["Er kam am 3. Mai an.", "Dann ging er."]),
        ('"Is it?" she asked. Pi is 3.14 roughly.', "en", ['"Is it?" she asked.', "Pi is 3.14 roughly."]),
        ("北京是首都。上海很大！你好吗？", "zh", ["北京是首都。", "上海很大！", "你好吗？"]),
    ],
)
def test_split_sentences(text, lang, expected):
    assert split_sentences(text, lang) == expected


def test_sentence_offsets():
    s = Sentence.from_text("Die Katze, sagte er.", "de")
    assert s.words == ("Die", "Katze", ",", "sagte", "er", ".")
    assert all(s.text[a:b] == w for w, (a, b) in zip(s.words, s.spans, strict=True))
    z = Sentence.from_text("她1990年出生", "zh")
    assert z.words == ("她", "1990", "年", "出", "生")
    w = Sentence.from_words(["Few", "people", "."], "en")
    assert w.text == "Few people ." and w.spans == ((0, 3), (4, 10), (11, 12))
    with pytest.raises(ValueError, match="does not match"):
        Sentence("ab", "en", ("ab",), ((0, 1),))


# --- alignment ------------------------------------------------------------------------------------


def test_mutual_argmax_and_itermax_hand_computed():
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.85, 0.2, 0.3], [0.1, 0.2, 0.7]])
    # row maxima (0,0) (1,0) (2,2); column maxima (0,0) (0,1) (2,2): mutual = (0,0), (2,2)
    assert mutual_argmax(sim).nonzero().tolist() == [[0, 0], [2, 2]]
    # round 2: only row 1 and column 1 are free, so only cells in them are eligible, weighted 0.9 per free
    # side: (1,0) 0.765 is row 1's best and the only eligible cell of column 0 -> linked; likewise (0,1)
    # 0.72 for row 0 / column 1 (beats (1,1) 1.8 * 0.2 = 0.36). Linked rows may gain links to free columns.
    assert itermax(sim).nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [2, 2]]
    sim2 = torch.tensor([[0.9, 0.1, 0.1], [0.8, 0.6, 0.1], [0.1, 0.1, 0.9]])
    # argmax leaves row 1 / column 1 out; round 2 links (1,1): weight 1.8 * 0.6 beats 0.9 * 0.8
    assert mutual_argmax(sim2).nonzero().tolist() == [[0, 0], [2, 2]]
    assert itermax(sim2).nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]


def test_alignment_scores_hand_computed():
    s = alignment_scores([[(0, 0), (1, 1), (1, 2)]], [[(0, 0), (1, 2), (2, 3)]], [[(1, 1)]])
    # |A|=3, |S|=3, A&S=2, A&P=3: P=1, R=2/3, AER = 1 - 5/6
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx(2 / 3)
    assert s["aer"] == pytest.approx(1 / 6)


@pytest.mark.slow
def test_real_aligner_on_hand_checked_set(embedded_e5_dir):
    from molora_adapters.data.projection import EncoderAligner

    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} == {"de", "zh"} and len(rows) == 16
    pairs = [
        (Sentence.from_text(r["source"], "en"), Sentence.from_text(r["target"], r["language"])) for r in rows
    ]
    for (s, t), r in zip(pairs, rows, strict=True):  # the committed words are the project's words
        assert list(s.words) == r["source_words"] and list(t.words) == r["target_words"]
    aligner = EncoderAligner(embedded_e5_dir)
    enc = aligner.encode([x for p in pairs for x in p])
    cat = aligner.align(enc[0], enc[1])
    assert cat.links == [
        (i, i) for i in range(7)
    ]  # "The cat sat on the mat." / "Die Katze saß auf der Matte."
    assert len(cat.scores) == 7 and all(-1 <= x <= 1 for x in cat.scores)
    # Chinese is aligned through character offsets: "Beijing" links both characters of 北京
    bj = aligner.align(enc[16], enc[17])
    assert {(0, 0), (0, 1)} <= set(bj.links)
    # sentence embeddings pair the right translations
    emb = torch.stack([e.embedding for e in enc])
    sims = emb[0::2] @ emb[1::2].T
    assert sims.argmax(dim=1).tolist() == list(range(16))


# --- pairing --------------------------------------------------------------------------------------


def _unit_vectors(ids: list[int], dim: int = 16) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.eye(dim)[ids] + 0.05, dim=-1)


def test_pairing_counts_add_up_and_merges():
    src = _unit_vectors([0, 1, 2, 3])
    # target: s0, (s1+s2) as one sentence, an extra sentence, s3
    tgt = torch.stack(
        [src[0], torch.nn.functional.normalize(src[1] + src[2], dim=-1), _unit_vectors([9])[0], src[3]]
    )
    out = pair_sentences(src, tgt, [20, 20, 20, 20], [20, 40, 20, 20])
    kinds = [(o.kind, o.source, o.target) for o in out]
    assert kinds == [
        ("pair", (0,), (0,)),
        ("merge", (1, 2), (1,)),
        ("target_only", (), (2,)),
        ("pair", (3,), (3,)),
    ]
    assert sorted(i for o in out for i in o.source) == [0, 1, 2, 3]
    assert sorted(j for o in out for j in o.target) == [0, 1, 2, 3]
    # a 1:1 step whose length ratio (relative to the paragraphs' ratio) is off is not kept:
    # (30 / 60) / (10 / 40) = 2.0 > 1.8, while (10 / 60) / (10 / 40) = 0.67 is fine
    out = pair_sentences(src, src, [10, 10, 10, 10], [10, 10, 10, 30])
    assert [o.kind for o in out] == ["pair", "pair", "pair", "length_ratio"]


# --- span projection ------------------------------------------------------------------------------


def _sent(words: str, lang: str = "en") -> Sentence:
    return Sentence.from_words(words.split(), lang)


def _links(pairs: str) -> WordAlignment:
    links = sorted(tuple(int(x) for x in p.split("-")) for p in pairs.split())
    return WordAlignment(links, [0.9] * len(links))


def test_project_tuple_contiguous_spans():
    en = _sent("The cat sat on the mat .")
    de = _sent("Die Katze saß auf der Matte .", "de")
    al = _links("0-0 1-1 2-2 3-3 4-4 5-5 6-6")
    p = project_tuple(en, de, al, [[0, 1], [2, 3], [4, 5]], confidence=0.7)
    t = p.tuple
    assert (t.arg0, t.relation, t.args) == ("Die Katze", "saß auf", ["der Matte"])
    assert (t.arg0_pos, t.relation_pos, t.args_pos) == ([0, 1], [2, 3], [[4, 5]])
    assert t.confidence == 0.7 and p.coverage == [1.0, 1.0, 1.0] and p.link_score == pytest.approx(0.9)


def test_project_tuple_fills_unlinked_gaps_and_reorders():
    en = _sent("She bought a car yesterday")
    de = _sent("Sie hat gestern ein Auto gekauft", "de")
    # "hat" and "gekauft" both link "bought": the relation's run is broken by "gestern ein Auto"
    al = _links("0-0 1-1 1-5 2-3 3-4 4-2")
    with pytest.raises(ProjectionReject) as e:
        project_tuple(en, de, al, [[0], [1], [2, 3]], min_coverage=1.0)
    assert e.value.reason is RejectReason.NON_CONTIGUOUS and "both sides" in e.value.detail
    # the object "a car" -> "ein Auto"; an unlinked word inside a span is taken in
    al = _links("0-0 1-5 3-4 4-2")
    p = project_tuple(en, de, al, [[0], [1], [2, 3]])
    assert p.tuple.args == ["Auto"] and p.coverage[2] == 0.5  # "a" unlinked: half covered, span trimmed
    en2 = _sent("the old city")
    de2 = _sent("die sehr alte Stadt", "de")
    p = project_tuple(en2, de2, _links("0-0 1-2 2-3"), [[0], [1], [2]][:2] + [[2]])
    assert p.tuple.relation == "alte"


@pytest.mark.parametrize(
    "links, slots, reason",
    [
        ("0-0 2-2", [[0], [1], [2]], RejectReason.LOW_COVERAGE),  # "b" has no link at all
        ("0-0 1-1 2-1 3-2", [[0], [1], [2, 3]], RejectReason.OVERLAPPING_SLOTS),  # "x" in two slots
        ("0-0 1-1 2-3 3-2", [[0], [1], [2, 3]], None),  # swapped inside the object: still one run
        ("0-3 1-1 2-0 3-2", [[0, 2], [1], [3]], RejectReason.NON_CONTIGUOUS),  # split by a foreign word
        ("0-0 1-1", [[0], []], RejectReason.SOURCE_UNALIGNED),
    ],
)
def test_project_tuple_rejects(links, slots, reason):
    en, tg = _sent("a b c d"), _sent("w x y z q", "de")
    if reason is None:
        assert project_tuple(en, tg, _links(links), slots).tuple.args == ["y z"]
        return
    with pytest.raises(ProjectionReject) as e:
        project_tuple(en, tg, _links(links), slots, min_coverage=0.6)
    assert e.value.reason is reason and e.value.detail


# --- pipeline, shards, resume, loader -------------------------------------------------------------


class ConceptAligner:
    """Stand-in for `EncoderAligner`: a sentence's embedding is its concept id, words link by index.

    Target sentences are word-by-word "translations" (same word count), so identity links are right;
    ``drop`` removes the links of given (concept, source word) pairs to force rejects.
    """

    def __init__(self, concepts: dict[str, int], drop: set[tuple[int, int]] = frozenset(), fail_after=None):
        self.concepts, self.drop, self.calls, self.fail_after = concepts, set(drop), 0, fail_after

    def encode(self, sentences):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt
        out = []
        for s in sentences:
            n = len(s.words)
            emb = _unit_vectors([self.concepts[s.text]], 64)[0]
            out.append(EncodedSentence(s, torch.zeros(n, 1), torch.eye(n, dtype=torch.bool), emb))
        return out

    def align(self, source, target):
        c = self.concepts[source.sentence.text]
        n = min(len(source.sentence.words), len(target.sentence.words))
        links = [(i, i) for i in range(n) if (c, i) not in self.drop]
        return WordAlignment(links, [0.8] * len(links))


def _units() -> tuple[list[ParallelUnit], dict[str, int]]:
    concepts: dict[str, int] = {}
    units = []
    for u in range(5):
        src, tgts, gold = [], {"de": [], "zh": []}, []
        for k in range(3):
            c = len(concepts) // 3
            en = f"Alice{u}{k} met Bob{u}{k} ."
            de = f"Alice{u}{k} traf Bob{u}{k} ."
            zh = f"爱{u}{k}见鲍{u}{k}。"
            for t in (en, de, zh):
                concepts[t] = c
            src.append(Sentence.from_text(en, "en"))
            tgts["de"].append(Sentence.from_text(de, "de"))
            tgts["zh"].append(Sentence.from_text(zh, "zh"))
            gold.append(
                [
                    {
                        "arg0": f"Alice{u}{k}",
                        "relation": "met",
                        "args": [f"Bob{u}{k}"],
                        "confidence": 1.0,
                        "arg0_pos": [0],
                        "relation_pos": [1],
                        "args_pos": [[2]],
                    }
                ]
                if k != 2 or u != 1
                else []  # one sentence without tuples
            )
        units.append(ParallelUnit(f"u{u}", src, tgts, gold))
    # unit 3: German drops its middle sentence (a 1:0 step)
    units[3].targets["de"] = [units[3].targets["de"][0], units[3].targets["de"][2]]
    return units, concepts


def _config(tmp_path, name="out", **kw) -> ProjectConfig:
    kw.setdefault("leak_check", False)
    return ProjectConfig(languages="de,zh", out_dir=str(tmp_path / name), shard_size=3, progress=False, **kw)


def test_project_counts_rejects_and_loader_round_trip(tmp_path):
    units, concepts = _units()
    # zh of concept 0: the relation "met" (word 1) loses its link -> low_coverage
    aligner = ConceptAligner(concepts, drop={(0, 1)})
    report = project(units, _config(tmp_path), aligner=aligner, source_name="toy")
    # pairs: 5 units x 3 sentences x 2 languages, less unit 3's German middle sentence
    assert report.pairs == 29 and report.items == 10
    assert report.accepted + sum(report.rejected.values()) == report.pairs
    assert report.rejected == {"no_source_tuples": 2, "low_coverage": 2}  # concept 0: its de and zh
    assert report.pairing == {"pair": 29, "source_only": 1}
    out = tmp_path / "out"
    manifest = read_manifest(out)
    for e in manifest["shards"].values():
        assert sum(e["counts"].values()) == e["items"] == e["pairing"]["pair"]
    rejects = [r for f in sorted((out / "rejects").glob("*.jsonl")) for r in read_jsonl(f)]
    assert all(r["reason"] and r["detail"] and r["meta"]["source_id"] for r in rejects)
    accepted = [r for f in sorted((out / "data").glob("*.jsonl")) for r in read_jsonl(f)]
    ds = load_training_corpus("projected", path=str(out))
    assert ds.features == OIE_FEATURES and len(ds) == report.accepted == len(accepted)
    assert [dict(r) for r in ds] == [dict(r) for r in load_training_corpus("llm-augmented", path=str(out))]
    for row, raw in zip(ds, accepted, strict=True):
        assert row["id"] == raw["id"] and row["sentence"] == raw["sentence"] and row["words"] == raw["words"]
        assert json.loads(row["meta"]) == json.loads(raw["meta"])
        for e, r in zip(row["extractions"], raw["extractions"], strict=True):
            assert {k: e[k] for k in r} == r  # confidence 1.0 is exact in float32
    zh = next(r for r in ds if r["id"] == "u2:0:zh")
    ext = zh["extractions"][0]
    assert (ext["arg0"], ext["relation"], ext["args"]) == ("爱", "20", ["见"])  # 爱 20 见 鲍 20 。
    meta = json.loads(zh["meta"])
    assert meta["tuples_from"] == "gold" and meta["alignment"]["method"] == "itermax"
    assert meta["source_sentence"] == "Alice20 met Bob20 ." and meta["pair_similarity"] > 0.9


def test_export_projected_round_trips_through_the_loader(tmp_path):
    units, concepts = _units()
    project(units, _config(tmp_path), aligner=ConceptAligner(concepts))
    out = tmp_path / "out"
    n = export_projected([out], tmp_path / "a.jsonl.gz")
    assert export_projected([out, out], tmp_path / "b.jsonl.gz") == n  # ids already written are skipped
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (
        tmp_path / "b.jsonl.gz"
    ).read_bytes()  # fixed gzip mtime
    from_dir = load_training_corpus("projected", path=str(out))
    from_file = load_training_corpus("projected", path=str(tmp_path / "a.jsonl.gz"))
    assert n == len(from_dir) > 0 and [dict(r) for r in from_file] == [dict(r) for r in from_dir]
    only_zh = load_training_corpus("projected", path=tmp_path / "a.jsonl.gz", languages=["zh"])
    assert set(only_zh["language"]) == {"zh"} and len(only_zh) == from_dir["language"].count("zh")
    with pytest.raises(ValueError, match="mixes record files and output directories"):
        load_training_corpus("projected", path=[tmp_path / "a.jsonl.gz", out])
    with pytest.raises(FileNotFoundError, match="not a `molora project` output directory"):
        export_projected([tmp_path], tmp_path / "c.jsonl")


def test_a_translation_of_a_test_sentence_leaks_its_source_in_every_language(tmp_path):
    """One language's eval_overlap reject drops the other languages' translations of the same English sentence."""
    units, concepts = _units()
    project(units, _config(tmp_path), aligner=ConceptAligner(concepts))
    out = tmp_path / "out"
    before = load_training_corpus("projected", path=str(out))
    source_of = {r["id"]: json.loads(r["meta"])["source_id"] for r in before}
    leaked = source_of["u2:0:zh"]
    assert sum(s == leaked for s in source_of.values()) == 2  # its de and zh translations
    reject = {
        "id": "u2:0:de",
        "reason": "eval_overlap",
        "detail": "de sentence collides",
        "meta": {"source_id": leaked},
    }
    with open(out / "rejects" / "extra.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(reject) + "\n")
    assert leaked_source_ids([out]) == {leaked}
    after = load_training_corpus("projected", path=str(out))
    assert sorted(after["id"]) == sorted(i for i, s in source_of.items() if s != leaked)
    assert export_projected([out], tmp_path / "x.jsonl") == len(after)


@pytest.mark.slow
def test_vendored_projected_corpus():
    """The shipped XQuAD projection: silver provenance, the expert languages, no evaluation sentence."""
    ds = load_training_corpus("projected")
    assert ds.features == OIE_FEATURES and len(ds) > 1000
    assert set(ds["language"]) == {"de", "zh", "es", "ar", "hi"}
    assert len(set(ds["id"])) == len(ds)
    for row in ds.select(range(0, len(ds), 25)):
        meta = json.loads(row["meta"])
        assert meta["tuples_from"] == "silver" and meta["source_id"].startswith("xquad-")
        assert row["extractions"] and all(e["relation"] for e in row["extractions"])
    assert not any(
        eval_overlap(s, lang, evaluation_sentences)
        for s, lang in zip(ds["sentence"], ds["language"], strict=True)
    )


def test_project_input_is_checked(tmp_path):
    units, concepts = _units()
    with pytest.raises(ValueError, match="`en`"):
        ProjectConfig(languages="en,de", out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="missing from the source"):
        project(
            units,
            ProjectConfig(languages="ar", out_dir=str(tmp_path / "x")),
            aligner=ConceptAligner(concepts),
        )


def test_silver_extractor_is_used_and_recorded(tmp_path):
    units, concepts = _units()
    for u in units:
        u.gold = None
    seen = []

    def extractor(sentences):
        seen.append(len(sentences))
        return [
            [
                {
                    "arg0": w[0],
                    "relation": w[1],
                    "args": [w[2]],
                    "confidence": 0.42,
                    "arg0_pos": [0],
                    "relation_pos": [1],
                    "args_pos": [[2]],
                }
            ]
            for w in sentences
        ]

    cfg = _config(tmp_path, silver_model="toy-english")
    report = project(units, cfg, aligner=ConceptAligner(concepts), extractor=extractor)
    assert seen == [3] * 5  # once per unit, not once per language
    ds = load_training_corpus("projected", path=cfg.out_dir)
    meta = json.loads(ds[0]["meta"])
    assert meta["tuples_from"] == "silver" and meta["silver_model"] == "toy-english"
    assert ds[0]["extractions"][0]["confidence"] == pytest.approx(0.42) and report.accepted == 29
    with pytest.raises(ValueError, match="silver"):
        project(units, _config(tmp_path, "y"), aligner=ConceptAligner(concepts))


# --- leaks and CLI --------------------------------------------------------------------------------


def test_find_leaks():
    test = ["The quick brown fox jumps over the lazy dog near the river bank."]
    cands = [
        "A quick brown fox jumps over the lazy dog near the river.",  # shares 8+ words
        "The fox is quick.",
        "the quick brown fox jumps over the lazy dog near the river bank",  # same after normalising
    ]
    assert [i for i, _ in find_leaks(cands, test)] == [0, 2]
    assert [
        i
        for i, _ in find_leaks(
            ["他曾担任澳大利亚第一任总理。"], ["他 曾 担 任 澳 大 利 亚 第 一 任 总 理 ，"], "zh"
        )
    ] == [0]


@pytest.mark.slow
def test_eval_overlap_pairs_are_rejected(tmp_path):
    carb = "A CEN forms an important but small part of a Local Strategic Partnership ."
    assert eval_overlap(carb, "en", evaluation_sentences)
    assert not eval_overlap("Alice00 met Bob00 .", "en", evaluation_sentences)
    units, concepts = _units()
    # an English sentence of CaRB, with same-length stand-in translations (so that the pair is kept)
    units[0].source[0] = Sentence.from_text(carb, "en")
    units[0].targets["de"][0] = Sentence.from_text(carb.upper(), "de")
    units[0].targets["zh"][0] = Sentence.from_text(carb.lower(), "zh")
    units[0].gold[0] = []
    for text in (carb, carb.upper(), carb.lower()):
        concepts[text] = concepts["Alice00 met Bob00 ."]
    with pytest.raises(ValueError, match="`leak_check` needs `evaluation_sentences`"):
        project(units, _config(tmp_path, leak_check=True), aligner=ConceptAligner(concepts))
    report = project(
        units,
        _config(tmp_path, leak_check=True),
        aligner=ConceptAligner(concepts),
        evaluation_sentences=evaluation_sentences,
    )
    assert report.rejected["eval_overlap"] == 2  # its de and zh pairs
    # (the long stand-in shifts the paragraphs' length ratio: two short zh sentences fail the ratio test)
    assert report.pairing == {"pair": 27, "length_ratio": 2, "source_only": 1}
    assert report.accepted + sum(report.rejected.values()) == report.pairs == 27


def test_cli_checks_input_first(tmp_path, capsys):
    from molora_adapters.cli import main

    assert main(["project", "--source", "reoie2016", "--langs", "de", "--out", str(tmp_path / "o")]) == 2
    assert "not in Re-OIE2016" in capsys.readouterr().err
    xq = tmp_path / "xquad"
    xq.mkdir()
    para = {"data": [{"title": "t", "paragraphs": [{"context": "A b c.", "qas": [{"id": "q1"}]}]}]}
    for lang in ("en", "de"):
        (xq / f"xquad.{lang}.json").write_text(json.dumps(para))
    assert (
        main(
            [
                "project",
                "--source",
                "xquad",
                "--source-path",
                str(xq),
                "--langs",
                "de",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "--silver-model" in capsys.readouterr().err
    assert main(["project", "--source", "nope", "--langs", "de", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
