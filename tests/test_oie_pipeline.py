"""OIEPipeline and `molora extract`: batching, long sentences, bad input, output formats."""

from __future__ import annotations

import io
import json
import re
import warnings

import pytest
import torch
from adapters import LoRAConfig
from conftest import tiny_adapter_model

from molora_adapters.data.alignment import split_words
from molora_adapters.oie import Extraction, LineResult, OIEPipeline, add_oie_head, write_results
from molora_adapters.oie.cli import extract_lines, read_lines
from molora_adapters.oie.extraction import span_text
from molora_adapters.oie.formats.writers import format_jsonl, format_tabbed
from molora_adapters.oie.labels import PRED_LABELS
from molora_adapters.oie.pipeline import (
    DEFAULT_MAX_PREDICATES_PER_CHUNK,
    LongSentenceWarning,
    PredicateCapWarning,
    find_oie_head,
)


@pytest.fixture
def pipe(tiny_tokenizer):
    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    with torch.no_grad():  # bias the predicate tagger towards P-B so that random weights give tuples
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    return OIEPipeline(model, tiny_tokenizer, min_args=0, precision="fp32")


def test_batched_equals_one_by_one(pipe, multilingual_sentences):
    sents = multilingual_sentences[:12]
    batched = pipe.extract(sents, batch_size=5)
    single = [pipe.extract(s) for s in sents]
    assert [[e.to_dict() | {"confidence": round(e.confidence, 5)} for e in r] for r in batched] == [
        [e.to_dict() | {"confidence": round(e.confidence, 5), "sentence_index": i} for e in r]
        for i, r in enumerate(single)
    ]
    assert sum(map(len, batched)) > 0
    assert all(isinstance(e, Extraction) and e.relation for r in batched for e in r)


def test_empty_and_whitespace_sentences_are_skipped(pipe):
    sentence = "The company announced a new product in Berlin last year."
    out = pipe.extract(["", "   \t", sentence])
    assert out[0] == [] and out[1] == []
    assert out[2] and all(e.sentence_index == 2 for e in out[2])
    assert [e.relation_pos for e in out[2]] == [e.relation_pos for e in pipe.extract([sentence])[0]]


def test_long_sentence_is_chunked_with_a_warning(pipe):
    words = ("Der Fluss fließt durch die Stadt und mündet ins Meer . " * 60).split()
    sentence = " ".join(words)
    with pytest.warns(LongSentenceWarning, match="split into"):
        (exts,) = pipe.extract([sentence])
    assert exts
    chunk_start = max(e.relation_pos[0] for e in exts)
    assert chunk_start > 130  # extractions come from later chunks too, with sentence-level positions
    for e in exts:
        assert e.relation == " ".join(words[p] for p in e.relation_pos)


@pytest.mark.parametrize("language", ["zh", None])
def test_chinese_is_character_level(pipe, language):
    words, chunks = pipe.preprocess(["北京是中华人民共和国的首都。"], [language])
    assert len(words[0]) == 14 and chunks[0].n_words == 14
    (exts,) = pipe.extract(["北京是中华人民共和国的首都。"], language=language)
    assert exts
    for e in exts:
        assert " " not in e.relation and e.language == language
        assert e.relation == "".join("北京是中华人民共和国的首都。"[p] for p in e.relation_pos)


def test_find_oie_head_errors(pipe):
    with pytest.raises(ValueError, match="not an OIE head"):
        find_oie_head(pipe.model, "nope")
    with pytest.raises(TypeError, match="prediction heads"):
        find_oie_head(torch.nn.Linear(2, 2))


def test_read_lines_reports_bad_input():
    data = b"ok one\n\n   \n" + b"bad \xff\xfe bytes\n" + b"last"
    rows = list(read_lines(io.BytesIO(data)))
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0][1] == "ok one" and rows[4][1] == "last"
    assert rows[1][2] == "empty line" and rows[2][2] == "whitespace-only line"
    assert "invalid UTF-8" in rows[3][2]


def test_extract_lines_isolates_failures(pipe, monkeypatch):
    lines = [
        (1, "Madrid es la capital de España .", None),
        (2, "BOOM", None),
        (3, None, "empty line"),
        (4, "Lisboa é a capital de Portugal .", None),
    ]
    real = pipe.extract

    def flaky(sents, **kw):
        if "BOOM" in sents:
            raise RuntimeError("kaboom")
        return real(sents, **kw)

    monkeypatch.setattr(pipe, "extract", flaky)
    results = list(extract_lines(pipe, lines, language=None, batch_size=2, lines_per_chunk=10))
    assert [r.line for r in results] == [1, 2, 3, 4]
    assert results[1].error == "RuntimeError: kaboom" and results[2].error == "empty line"
    assert results[0].error is None and results[3].error is None


def test_ten_thousand_word_line_does_not_crash(pipe):
    with torch.no_grad():  # few predicates: the point is the encoder chunking, not 10k argument passes
        pipe.model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([1.5, 0.0, 0.0]))
    long_line = " ".join(["Wort"] * 10_000)
    lines = [(1, "Madrid es la capital de España .", None), (2, long_line, None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LongSentenceWarning)
        results = list(extract_lines(pipe, lines, language=None, batch_size=64, lines_per_chunk=10))
    assert [r.error for r in results] == [None, None]


def _ext(**kw):
    base = dict(
        sentence="Obama was born in Hawaii .",
        relation="was born in",
        arg0="Obama",
        args=["Hawaii"],
        confidence=0.5,
        relation_pos=[1, 2, 3],
        arg0_pos=[0],
        args_pos=[[4]],
    )
    return Extraction(**(base | kw))


def test_output_formats():
    results = [
        LineResult(1, "Obama was born in Hawaii .", "en", [_ext(), _ext(args=["Hawaii", "in 1961"])]),
        LineResult(2, error="empty line"),
    ]
    tabbed = [
        "Obama was born in Hawaii .\t0.5\twas born in\tObama\tHawaii",
        "Obama was born in Hawaii .\t0.5\twas born in\tObama\tHawaii\tin 1961",
    ]
    for name in ("tabbed", "carb"):  # one format, two names
        buf = io.StringIO()
        write_results(results, buf, name)
        assert buf.getvalue().splitlines() == tabbed
    # the same lines as the in-memory writer (one I/O module: same cleaning, same confidence encoding)
    assert format_tabbed([e for r in results for e in r.extractions]).splitlines() == tabbed
    buf = io.StringIO()
    write_results(results, buf, "benchie")
    assert buf.getvalue().splitlines() == [
        "1\tObama\twas born in\tHawaii",
        "1\tObama\twas born in\tHawaii in 1961",
    ]
    buf = io.StringIO()
    write_results(results, buf, "jsonl")
    first, second = map(json.loads, buf.getvalue().splitlines())
    assert first["line"] == 1 and first["extractions"][0]["args"] == ["Hawaii"]
    assert second == {"line": 2, "error": "empty line"}
    with pytest.raises(ValueError, match="`fmt`"):
        write_results(results, io.StringIO(), "xml")


@pytest.mark.parametrize(
    "benchmark,fmt", [("carb", "jsonl"), ("carb", "tabbed"), ("carb", "carb"), ("benchie", "benchie")]
)
def test_extract_then_evaluate_round_trip(pipe, tmp_path, capsys, benchmark, fmt):
    """`molora extract` output, error records included, scores with `molora evaluate --format` of the same
    name, exactly as the in-memory extractions do."""
    from molora_adapters.cli import main
    from molora_adapters.oie.benchmarks import load_benchmark, score_extractions

    sentences = [s.strip() for s in load_benchmark(benchmark, "en")["sentence"][:3]]
    expected_exts = pipe.extract(sentences)
    assert sum(map(len, expected_exts)) > 0
    model_dir = tmp_path / "model"
    pipe.model.save_pretrained(str(model_dir))
    pipe.tokenizer.save_pretrained(str(model_dir))
    inp = tmp_path / "in.txt"  # bad lines last: BenchIE ids are input line numbers
    inp.write_bytes("".join(s + "\n" for s in sentences).encode() + b"\n   \n\xff\xfe\n")
    out = tmp_path / f"out.{fmt}"
    argv = ["extract", "--model", str(model_dir), "--input", str(inp), "--output", str(out), "--format", fmt]
    assert main([*argv, "--min-args", "0"]) == 1  # status 1: some lines failed
    assert "3 line(s) could not be processed" in capsys.readouterr().err
    scores = tmp_path / "scores.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gold sentences without predictions
        rc = main(
            [
                "evaluate",
                "--benchmark",
                benchmark,
                "--format",
                fmt,
                str(out),
                "--json",
                str(scores),
                "--no-plot",
            ]
        )
        assert rc == 0, capsys.readouterr().err
        expected = score_extractions(benchmark, list(zip(sentences, expected_exts, strict=True)), lang="en")
    got = json.loads(scores.read_text())
    assert {k: got[k] for k in ("precision", "recall", "f1", "auc")} == {
        k: expected[k] for k in ("precision", "recall", "f1", "auc")
    }


def test_cli_end_to_end(pipe, tmp_path, monkeypatch, capsys, multilingual_sentences):
    from molora_adapters.cli import main

    productive = next(s for s in multilingual_sentences if pipe.extract(s))

    model_dir = tmp_path / "model"
    pipe.model.save_pretrained(str(model_dir))
    pipe.tokenizer.save_pretrained(str(model_dir))
    inp = tmp_path / "in.txt"
    inp.write_bytes(f"{productive}\n\n".encode() + b"\xff\n" + "北京是中华人民共和国的首都。\n".encode())
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "extract",
                "--model",
                str(model_dir),
                "--input",
                str(inp),
                "--output",
                str(out),
                "--min-args",
                "0",
                "--batch-size",
                "2",
                "--precision",
                "fp32",
            ]
        )
        == 1  # lines 2 and 3 failed
    )
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert "error" in rows[1] and "invalid UTF-8" in rows[2]["error"]
    assert rows[0]["sentence"] == productive
    # The CLI sends lines 1 and 4 in one batch of 2: compare with the in-process model on the same batch, since
    # padding changes the matmul shapes and so the confidences in their last bits (about 1e-8; see
    # test_batched_equals_one_by_one), which made an exact comparison with one-by-one runs fail on other BLAS builds.
    texts = [productive, "北京是中华人民共和国的首都。"]
    expected = [
        json.loads(format_jsonl(LineResult(n, s, None, e)))
        for n, s, e in zip((1, 4), texts, pipe.extract(texts, batch_size=2), strict=True)
    ]
    assert [rows[0], rows[3]] == expected  # the saved model reloads to the same extractions
    assert rows[0]["extractions"]
    assert "2 line(s) could not be processed" in capsys.readouterr().err

    monkeypatch.setattr(
        "sys.stdin", io.TextIOWrapper(io.BytesIO("Lisboa é a capital de Portugal .\n".encode()))
    )
    assert main(["extract", "--model", str(model_dir), "--format", "carb", "--min-args", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("Lisboa é a capital de Portugal .\t") for line in lines)


def test_language_routed_mixture_gets_language_ids(tiny_tokenizer, multilingual_sentences):
    """The pipeline passes each sentence's language on, so a language-routed mixture can run (and routes by it)."""
    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie")
    name = model.add_adapter_mixture(
        ["en", "de"], granularity="language", expert_config=LoRAConfig(init_weights="bert")
    )
    model.set_active_adapters(model.get_adapter_mixture(name))
    pipe = OIEPipeline(model, tiny_tokenizer, min_args=0, precision="fp32")
    sentence = multilingual_sentences[5]
    pipe.extract([sentence], language="de")  # would raise without `language_ids`
    with pytest.raises(ValueError, match="language_ids"):
        pipe.extract([sentence])  # no language given: the mixture cannot route
    # the pipeline's predicate probabilities are those of a direct forward with `language_ids=["de"]`, and
    # differ from routing to another expert
    _, chunks = pipe.preprocess([sentence], ["de"])
    (res,) = pipe._forward(chunks)
    (chunk,) = chunks
    ids = torch.tensor([chunk.input_ids])

    def direct(language):
        model.eval()
        with torch.no_grad():
            logits = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), language_ids=[language], head="oie"
            )
        return OIEPipeline._word_level(
            logits.predicate_logits.float().softmax(-1)[0], chunk.word_tokens, PRED_LABELS
        )

    assert (res.pred_tags, res.pred_probs) == direct("de")
    assert res.pred_probs != direct("en")[1]


def test_precision_and_decoding_options(pipe, multilingual_sentences):
    from molora_adapters.utils.precision import cpu_has_native_bf16, resolve_precision

    assert resolve_precision("fp32", "cpu") == "fp32" and resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="`precision`"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="`precision`"):
        OIEPipeline(pipe.model, pipe.tokenizer, precision="half")
    with pytest.raises(ValueError, match="`span_strategy`"):
        OIEPipeline(pipe.model, pipe.tokenizer, span_strategy="longest")
    bf16 = OIEPipeline(pipe.model, pipe.tokenizer, min_args=0, precision="bf16", span_strategy="nearest")
    sents = multilingual_sentences[:8]
    out = bf16.extract(sents)
    assert len(out) == len(sents) and sum(map(len, out)) > 0
    for i, exts in enumerate(out):
        offsets = [(a, b) for _, a, b in split_words(sents[i])]
        for e in exts:  # tuples stay well formed under bf16
            assert e.sentence_index == i and e.relation == span_text(sents[i], offsets, e.relation_pos)
    assert bf16.decoding_config() == {
        "span_strategy": "nearest",
        "min_args": 0,
        "confidence_mode": "multi2oie",
        "predicate_floor": 0.1,
    }


def _count_argument_rows(pipe, monkeypatch) -> list[int]:
    head = pipe.model.heads[pipe.head_name]
    rows, original = [], head.argument_logits

    def counted(seq, *args, **kwargs):
        rows.append(seq.shape[0])
        return original(seq, *args, **kwargs)

    monkeypatch.setattr(head, "argument_logits", counted)
    return rows


def test_hostile_line_has_bounded_cost(pipe, monkeypatch):
    """A line of repeated words, every one tagged a predicate by the biased head: only
    `max_predicates_per_chunk` predicates per chunk get an argument pass, and a warning names the sentence."""
    assert pipe.max_predicates_per_chunk == DEFAULT_MAX_PREDICATES_PER_CHUNK == 32  # the documented default
    hostile = " ".join(["born"] * 300)  # 8 chunks of 128 sub-words, 17 predicates in each full chunk
    capped = OIEPipeline(pipe.model, pipe.tokenizer, min_args=0, max_predicates_per_chunk=4, precision="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LongSentenceWarning)
        _, chunks = capped.preprocess(["Obama was born in Hawaii .", hostile], [None, None])
    n_chunks = sum(c.sentence_index == 1 for c in chunks)
    assert n_chunks == 8
    rows = _count_argument_rows(capped, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = capped.extract(["Obama was born in Hawaii .", hostile])
    cap_warnings = [str(w.message) for w in caught if w.category is PredicateCapWarning]
    assert len(cap_warnings) == 7 and all(
        re.match(
            r"Sentence 1: a chunk of \d+ words has 17 predicates, more than `max_predicates_per_chunk`=4", m
        )
        for m in cap_warnings
    )
    # the short sentence keeps all its predicates; the hostile one at most 4 per chunk
    assert sum(rows) <= len(capped.extract("Obama was born in Hawaii .")) + 4 * n_chunks
    assert 0 < len(out[1]) <= 4 * n_chunks
    with pytest.raises(ValueError, match="`max_predicates_per_chunk`"):
        OIEPipeline(pipe.model, pipe.tokenizer, max_predicates_per_chunk=0)


def test_cli_warnings_name_the_input_line(pipe):
    capped = OIEPipeline(pipe.model, pipe.tokenizer, min_args=0, max_predicates_per_chunk=4, precision="fp32")
    hostile = " ".join(["born"] * 100)
    lines = [(1, "Obama was born in Hawaii .", None), (2, None, "empty line"), (3, hostile, None)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(extract_lines(capped, lines, language=None, batch_size=8, lines_per_chunk=10))
    messages = [
        str(w.message) for w in caught if issubclass(w.category, (PredicateCapWarning, LongSentenceWarning))
    ]
    assert len(messages) == 3 and all(m.startswith("Input line 3") for m in messages)  # long + 2 capped
    assert [r.line for r in results] == [1, 2, 3]


def test_from_pretrained_restores_a_staged_run(tiny_tokenizer, multilingual_sentences, tmp_path):
    """A staged run's output directory loads with its mixture active, and extracts as the model that wrote it."""
    from molora_adapters.training import MT4CROSSOIE_STAGES
    from molora_adapters.training.checkpointing import save_final_model

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    name = model.add_adapter_mixture(["en", "de"], top_k=1, expert_config=LoRAConfig(init_weights="bert"))
    model.set_active_adapters(model.get_adapter_mixture(name))
    with torch.no_grad():
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    model.eval()
    save_final_model(model, tmp_path, stages=MT4CROSSOIE_STAGES, fingerprint="test")
    tiny_tokenizer.save_pretrained(str(tmp_path))
    expected = OIEPipeline(model, tiny_tokenizer, min_args=0, precision="fp32").extract(
        multilingual_sentences
    )
    loaded = OIEPipeline.from_pretrained(str(tmp_path), min_args=0, precision="fp32")
    assert str(loaded.model.active_adapters) == str(model.active_adapters)
    assert loaded.extract(multilingual_sentences) == expected


def test_silent_tagger_keeps_its_best_predicate_above_the_floor(pipe, multilingual_sentences):
    """A predicate tagger that never argmaxes a predicate tag returns nothing without the floor; with it, every
    sentence keeps one one-word predicate (its most likely ``P-B`` word), and a floor above every probability
    keeps the tagger silent."""
    from molora_adapters.oie.pipeline import _word_begin_probs

    with torch.no_grad():
        pipe.model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([6.0, 0.0, 0.0]))  # always O
    sents = multilingual_sentences[:6]
    silent = OIEPipeline(pipe.model, pipe.tokenizer, min_args=0, predicate_floor=None).extract(sents)
    assert all(r == [] for r in silent)
    kept = OIEPipeline(pipe.model, pipe.tokenizer, min_args=0, predicate_floor=0.0)
    words, chunks = kept.preprocess(sents, [None] * len(sents))
    results = kept._forward(chunks)
    for res in results:
        assert len(res.predicates) == 1 and len(res.predicates[0]) == 1
        (i,) = res.predicates[0]
        assert res.pred_tags[i] == "P-B" and res.pred_tags.count("P-B") == 1
    out = kept.extract(sents)
    assert all(len({e.relation_pos[0] for e in r}) == 1 for r in out)  # one predicate per sentence
    # the kept word is the most likely predicate begin; a floor above it keeps the tagger silent
    begin = _word_begin_probs(
        torch.softmax(torch.tensor([6.0, 0.0, 0.0]), 0).expand(1, 3, 3), torch.tensor([[0, 1, -1]])
    )
    assert begin[0].tolist() == pytest.approx([0.00247, 0.00247, 0.0], abs=1e-5)
    quiet = OIEPipeline(pipe.model, pipe.tokenizer, min_args=0, predicate_floor=0.5).extract(sents)
    assert all(r == [] for r in quiet)
    with pytest.raises(ValueError, match="`predicate_floor`"):
        OIEPipeline(pipe.model, pipe.tokenizer, predicate_floor=1.5)


def test_compact_argument_keys_keep_the_extractions(pipe, multilingual_sentences, monkeypatch):
    """The pipeline's argument passes use `compact_keys=True` (issue 22); on a fixed input set the extractions are
    exactly those of the full form (same tuples, positions and texts; confidences equal to float rounding)."""
    head = pipe.model.heads[pipe.head_name]
    calls, original = [], head.argument_logits

    def recorded(*args, **kwargs):
        calls.append(kwargs.get("compact_keys", False))
        return original(*args, **kwargs)

    monkeypatch.setattr(head, "argument_logits", recorded)
    fast = pipe.extract(multilingual_sentences, batch_size=4)
    assert calls and all(calls)
    monkeypatch.setattr(
        head, "argument_logits", lambda *a, **k: original(*a, **(k | {"compact_keys": False}))
    )
    full = pipe.extract(multilingual_sentences, batch_size=4)
    assert sum(map(len, full)) > 10

    def parts(result):
        return [[e.to_dict() | {"confidence": None} for e in r] for r in result]

    assert parts(fast) == parts(full)
    conf = [e.confidence for r in fast for e in r], [e.confidence for r in full for e in r]
    assert conf[0] == pytest.approx(conf[1], rel=1e-5, abs=1e-6)
