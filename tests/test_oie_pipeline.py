"""OIEPipeline and `molora extract`: batching, long sentences, bad input, output formats."""

from __future__ import annotations

import io
import json
import warnings

import pytest
import torch
from adapters import LoRAConfig
from conftest import tiny_adapter_model

from molora_adapters.oie import Extraction, LineResult, OIEPipeline, add_oie_head, write_results
from molora_adapters.oie.cli import extract_lines, read_lines
from molora_adapters.oie.formats import format_jsonl
from molora_adapters.oie.pipeline import LongSentenceWarning, find_oie_head


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
    out = pipe.extract(["", "   \t", "Madrid es la capital de España ."])
    assert out[0] == [] and out[1] == []
    assert all(e.sentence_index == 2 for e in out[2])


def test_long_sentence_is_chunked_with_a_warning(pipe):
    words = ("Der Fluss fließt durch die Stadt und mündet ins Meer . " * 60).split()
    sentence = " ".join(words)
    with pytest.warns(LongSentenceWarning, match="split into"):
        (exts,) = pipe.extract([sentence])
    chunk_start = max(e.relation_pos[0] for e in exts)
    assert chunk_start > 130  # extractions come from later chunks too, with sentence-level positions
    for e in exts:
        assert e.relation == " ".join(words[p] for p in e.relation_pos)


@pytest.mark.parametrize("language", ["zh", None])
def test_chinese_is_character_level(pipe, language):
    words, chunks = pipe.preprocess(["北京是中华人民共和国的首都。"], [language])
    assert len(words[0]) == 14 and chunks[0].n_words == 14
    (exts,) = pipe.extract(["北京是中华人民共和国的首都。"], language=language)
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
    buf = io.StringIO()
    write_results(results, buf, "carb")
    assert buf.getvalue().splitlines() == [
        "Obama was born in Hawaii .\t0.500000\twas born in\tObama\tHawaii",
        "Obama was born in Hawaii .\t0.500000\twas born in\tObama\tHawaii\tin 1961",
    ]
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
        == 0
    )
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert "error" in rows[1] and "invalid UTF-8" in rows[2]["error"]
    assert rows[0]["sentence"] == productive
    expected = [
        json.loads(format_jsonl(LineResult(n, s, None, pipe.extract(s))))
        for n, s in [(1, productive), (4, "北京是中华人民共和国的首都。")]
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
    pipe = OIEPipeline(model, tiny_tokenizer, min_args=0)
    sentence = multilingual_sentences[5]
    pipe.extract([sentence], language="de")  # would raise without `language_ids`
    with pytest.raises(ValueError, match="language_ids"):
        pipe.extract([sentence])  # no language given: the mixture cannot route
    model.eval()
    enc = tiny_tokenizer([sentence], return_tensors="pt")
    with torch.no_grad():
        de = model(**enc, language_ids=["de"], head="oie").predicate_logits
        en = model(**enc, language_ids=["en"], head="oie").predicate_logits
    assert not torch.allclose(de, en)
