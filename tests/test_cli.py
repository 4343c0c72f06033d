"""The `molora` command line: light help, `--version`, one-line errors (status 2, nothing written), exit status of
runs with failed lines, and the retry that stops on a systematic error."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from conftest import tiny_adapter_model

from molora_adapters.cli import COMMANDS, main
from molora_adapters.oie.cli import extract_lines
from molora_adapters.version import __version__

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)


def test_help_of_every_command_imports_neither_torch_nor_adapters():
    code = f"""
import contextlib, io, sys
from molora_adapters.cli import main
for argv in [["--help"], ["--version"], *[[c, "--help"] for c in {list(COMMANDS)!r}]]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 0, (argv, e.code)
heavy = [m for m in ("torch", "adapters") if m in sys.modules]
assert not heavy, heavy
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr


def test_importing_the_package_is_light_and_registers_when_adapters_arrives():
    code = """
import sys
import molora_adapters
assert "torch" not in sys.modules and "adapters" not in sys.modules
from adapters.model_mixin import ModelAdaptersMixin
assert hasattr(ModelAdaptersMixin, "add_adapter_mixture")
from adapters.composition import ALLOWED_NESTINGS
assert molora_adapters.Mixture in ALLOWED_NESTINGS
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr


def test_extraction_imports_no_training_data_stack():
    """`molora extract`'s imports (pipeline, CLI, formats) leave out `datasets`, pandas and pyarrow (cold start,
    issue 22); the corpus registry still lists and loads every built-in loader."""
    code = """
import sys
import molora_adapters.cli, molora_adapters.oie.cli, molora_adapters.oie.pipeline, molora_adapters.oie.formats
heavy = [m for m in ("datasets", "pandas", "pyarrow") if m in sys.modules]
assert not heavy, heavy
from molora_adapters.data import CORPUS_LOADERS
assert {"oie2016", "imojie", "lsoie-gpt", "lsoie", "openie4", "jsonl", "projected"} <= set(CORPUS_LOADERS.names())
assert "datasets" not in sys.modules
from molora_adapters.data.corpora import load_oie2016
assert CORPUS_LOADERS.get("oie2016") is load_oie2016
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("first", ["molora_adapters.mixture", "molora_adapters._integration", "adapters"])
def test_registration_whatever_is_imported_first(first):
    proc = _python(
        f"import {first}\nimport molora_adapters\nfrom adapters.model_mixin import ModelAdaptersMixin\n"
        "assert hasattr(ModelAdaptersMixin, 'add_adapter_mixture')"
    )
    assert proc.returncode == 0, proc.stderr


def test_version_and_plain_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"molora-adapters {__version__}"
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = capsys.readouterr().out
        assert "``" not in out and ":class:" not in out and ":mod:" not in out, name


@pytest.fixture(scope="module")
def oie_model_dir(tmp_path_factory):
    from conftest import TINY_TOKENIZER
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from molora_adapters.oie import add_oie_head

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie")
    path = tmp_path_factory.mktemp("oie_model")
    model.save_pretrained(str(path))
    PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(TINY_TOKENIZER)), pad_token="<pad>", unk_token="<unk>"
    ).save_pretrained(str(path))
    return path


BAD_EXTRACT = {
    "missing model": (["--model", "{tmp}/nope"], "`--model` '{tmp}/nope' does not exist"),
    "empty model dir": (["--model", "{tmp}/emptymodel"], "is an empty directory"),
    "not a model dir": (["--model", "{tmp}/notmodel"], "is not a model directory (no config.json)"),
    "missing input": (
        ["--model", "{model}", "--input", "{tmp}/missing.txt"],
        "`--input` '{tmp}/missing.txt' does not",
    ),
    "empty input": (
        ["--model", "{model}", "--input", "{tmp}/empty.txt"],
        "`--input` '{tmp}/empty.txt' is empty",
    ),
    "unknown head": (["--model", "{model}", "--head", "nope"], "`--head` 'nope'"),
    "unknown strategy": (["--model", "{model}", "--span-strategy", "nope"], "invalid choice: 'nope'"),
    "bad batch size": (["--model", "{model}", "--batch-size", "0"], "`--batch-size` must be >= 1, got 0"),
}


@pytest.mark.parametrize("case", list(BAD_EXTRACT))
def test_extract_bad_input_is_one_line_status_2_and_writes_nothing(case, tmp_path, oie_model_dir, capsys):
    (tmp_path / "emptymodel").mkdir()
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "notmodel" / "weights.bin").write_bytes(b"x")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "in.txt").write_text("Paris is the capital of France .\n")
    args, expected = BAD_EXTRACT[case]
    fill = {"tmp": str(tmp_path), "model": str(oie_model_dir)}
    argv = ["extract", *(a.format(**fill) for a in args), "--output", str(tmp_path / "out.jsonl")]
    if "--input" not in argv:
        argv += ["--input", str(tmp_path / "in.txt")]
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SystemExit) if case == "unknown strategy" else _no_exit() as exc:
        rc = main(argv)
    rc = exc.value.code if case == "unknown strategy" else rc
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("molora extract: error: "), err
    assert expected.format(**fill) in err
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temporary file


def test_answer_bad_input_is_one_line_status_2(tmp_path, capsys):
    (tmp_path / "emptymodel").mkdir()
    out = tmp_path / "out.jsonl"
    for argv, expected in [
        (["--model", str(tmp_path / "emptymodel")], "is an empty directory"),
        (["--model", str(tmp_path / "nope")], "does not exist"),
        (["--model", str(tmp_path / "emptymodel"), "--input", str(tmp_path / "q.jsonl")], "`--input`"),
    ]:
        assert main(["answer", *argv, "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not out.exists()


def test_convert_embedded_unknown_model_is_one_line_status_2(tmp_path, capsys):
    assert main(["convert-embedded", "no-such-model", "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-model" in err, err
    assert not (tmp_path / "cache").exists()


class _Failing:
    """A stand-in pipeline: fails on sentences containing `bad`, or on everything when `systematic`."""

    def __init__(self, systematic: bool) -> None:
        self.systematic, self.calls = systematic, 0

    def extract(self, texts, **kwargs):
        self.calls += 1
        if self.systematic:
            raise RuntimeError("device lost")
        if any("bad" in t for t in texts):
            raise ValueError("bad sentence")
        return [[] for _ in texts]


def test_retry_isolates_the_culprit_and_stops_on_a_systematic_error():
    lines = [(i + 1, t, None) for i, t in enumerate(["a", "bad", "c", "d"])]
    pipe = _Failing(systematic=False)
    results = list(extract_lines(pipe, lines, language=None, batch_size=8, lines_per_chunk=10))
    assert [r.error for r in results] == [None, "ValueError: bad sentence", None, None]
    assert pipe.calls == 1 + 4  # the batch, then every line alone
    pipe = _Failing(systematic=True)
    results = list(extract_lines(pipe, lines, language=None, batch_size=8, lines_per_chunk=10))
    assert [r.error for r in results] == ["RuntimeError: device lost"] * 4
    assert pipe.calls == 1 + 2  # the batch, then two lines fail the same way in a row: no more retries


def test_extract_exit_status_counts_failed_lines(tmp_path, oie_model_dir, capsys):
    inp = tmp_path / "in.txt"
    inp.write_bytes(b"Paris is the capital of France .\n\n")
    out = tmp_path / "out.jsonl"
    assert main(["extract", "--model", str(oie_model_dir), "--input", str(inp), "--output", str(out)]) == 1
    assert "1 line(s) could not be processed" in capsys.readouterr().err
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1, 2]
    inp.write_text("Paris is the capital of France .\n")
    assert main(["extract", "--model", str(oie_model_dir), "--input", str(inp), "--output", str(out)]) == 0


class _no_exit:
    """A context manager standing in for `pytest.raises` where the command returns instead of exiting."""

    value = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_reloaded_large_vocabulary_tokenizer_loads_without_the_mistral_regex_warning(tmp_path):
    """transformers 4.57.3+ warns about a Mistral regex for every saved tokenizer of > 100,000 tokens whose
    config.json it wrote; `load_tokenizer` (used by the pipelines and CLI) does not, and tokenizes the same."""
    import logging

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from transformers import __version__ as hf_version

    from molora_adapters.models.tokenizer import load_tokenizer

    vocab = {"<unk>": 0, "<pad>": 1, **{f"w{i}": i + 2 for i in range(100_001)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>").save_pretrained(
        tmp_path
    )
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "xlm-roberta", "transformers_version": hf_version})
    )

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        plain = AutoTokenizer.from_pretrained(tmp_path)
        warned_plain = any("fix_mistral_regex" in m for m in records)
        records.clear()
        ours = load_tokenizer(str(tmp_path))
        assert not any("fix_mistral_regex" in m for m in records)
    finally:
        logger.removeHandler(handler)
    assert ours("w1 w77 zz")["input_ids"] == plain("w1 w77 zz")["input_ids"]
    if not warned_plain:
        pytest.skip(f"transformers {hf_version} no longer warns: nothing to compare with")


def test_inactive_adapters_are_reported_once_not_per_batch(tiny_tokenizer, multilingual_sentences, caplog):
    from adapters import LoRAConfig

    from molora_adapters.oie import OIEPipeline, add_oie_head

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie")
    model.add_adapter("unused", config=LoRAConfig())
    with pytest.warns(UserWarning, match=r"adapters \(unused\) but none is active"):
        pipe = OIEPipeline(model, tiny_tokenizer, min_args=0)
    with caplog.at_level(logging.WARNING, logger="adapters"):
        pipe.extract(multilingual_sentences[:6], batch_size=2)  # three batches
    assert not [r for r in caplog.records if "none are activated" in r.getMessage()]
    with caplog.at_level(logging.WARNING, logger="adapters"):
        model(**tiny_tokenizer("Paris", return_tensors="pt"))  # outside the pipeline adapters still says it
    assert [r for r in caplog.records if "none are activated" in r.getMessage()]


@pytest.mark.parametrize(
    "package",
    [
        "molora_adapters.oie",
        "molora_adapters.oie.benchmarks",
        "molora_adapters.oie.shipping",
        "molora_adapters.xsta",
        "molora_adapters.data.projection",
    ],
)
def test_lazy_package_names_are_what_the_eager_package_exported(package):
    """Every public name resolves to the object of its module, even one named like a sub-module
    (`data.projection.project` is the function, not `data/projection/project.py`), in any access order."""
    import importlib

    pkg = importlib.import_module(package)
    first = sorted(pkg.__all__, key=lambda n: pkg._LAZY[n] == f".{n}")  # names shadowed by a sub-module last
    for name in first:
        assert getattr(pkg, name) is getattr(importlib.import_module(pkg._LAZY[name], package), name), name
    assert sorted(pkg.__all__) == sorted(pkg._LAZY) and set(pkg.__all__) <= set(dir(pkg))
