"""``molora answer``: answer questions from a JSONL file with an X-STA model.

Example::

    molora answer --model DIR --input questions.jsonl --output answers.jsonl
    molora answer --model embedded:multilingual-e5-small --xsta SAVED_XSTA_DIR --lang de < questions.jsonl

Each input line is a JSON object with ``question``, ``context`` and ``language`` (or ``--lang``), optionally ``id``,
and, for paired inference, ``source_question`` + ``source_context`` (the English parallel text). Each output line is
``{"line", "id", "answer", "paired"}``. Bad input never stops a run, as with ``molora extract``: a line that is empty,
not valid UTF-8, not a JSON object, misses a field or fails for any other reason gets a ``{"line": N, "error": ...}``
record; a failing batch is retried line by line so that only the culprit fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from ..utils.io import read_lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="Model directory saved with an X-STA head, or a model id."
    )
    parser.add_argument("--xsta", help="X-STA directory saved with `save_xsta` to load onto --model.")
    parser.add_argument("--head", dest="head_name", help="X-STA head to use when the model has several.")
    parser.add_argument("--lang", dest="language", help="Language of lines that do not give one.")
    parser.add_argument("--input", help="Input JSONL file (default: stdin).")
    parser.add_argument("--output", help="Output JSONL file, written atomically (default: stdout).")
    parser.add_argument("--batch-size", type=int, default=16, help="Windows per forward pass.")
    parser.add_argument("--lines-per-chunk", type=int, default=256, help="Input lines processed at a time.")
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")


def read_records(stream, language: str | None) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield ``(line_number, record, error)`` for every line of a binary stream."""
    for n, text, error in read_lines(stream):
        if error is not None:
            yield n, None, error
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            yield n, None, f"invalid JSON: {e}"
            continue
        if not isinstance(record, dict):
            yield n, None, f"expected a JSON object, got {type(record).__name__}"
            continue
        if language and not record.get("language"):
            record["language"] = language
        yield n, record, None


def answer_records(
    pipeline, records: Iterable[tuple[int, dict | None, str | None]], lines_per_chunk: int
) -> Iterator[dict[str, Any]]:
    """Run ``pipeline`` over numbered records, isolating failures to the line that caused them."""
    from .pipeline import QAInput

    buf: list[tuple[int, dict | None, str | None]] = []

    def flush() -> Iterator[dict[str, Any]]:
        results: dict[int, dict[str, Any]] = {n: {"line": n, "error": e} for n, _, e in buf if e is not None}
        good = []
        for n, record, err in buf:
            if err is None:
                try:
                    good.append((n, QAInput.from_dict(record)))
                except ValueError as e:
                    results[n] = {"line": n, "error": str(e)}
        try:
            outs = pipeline([qa for _, qa in good]) if good else []
            for (n, _), out in zip(good, outs, strict=True):
                results[n] = {"line": n, **out}
        except Exception:  # noqa: BLE001 - retry one by one so only the culprit line fails
            for n, qa in good:
                try:
                    results[n] = {"line": n, **pipeline([qa])[0]}
                except Exception as e:  # noqa: BLE001
                    results[n] = {"line": n, "error": f"{type(e).__name__}: {e}"}
        buf.clear()
        yield from (results[n] for n in sorted(results))

    for item in records:
        buf.append(item)
        if len(buf) >= lines_per_chunk:
            yield from flush()
    if buf:
        yield from flush()


def _write(results: Iterable[dict[str, Any]], out: TextIO) -> None:
    for r in results:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")


def load_pipeline(args: argparse.Namespace):
    """The model, tokenizer and pipeline named by the command-line arguments."""
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer

    import molora_adapters  # noqa: F401
    from molora_adapters.models import resolve_model_name_or_path

    from .pipeline import XSTAQuestionAnsweringPipeline

    path = resolve_model_name_or_path(args.model)
    model = AutoAdapterModel.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if args.xsta:
        model.load_xsta(args.xsta, set_active=True)
    return XSTAQuestionAnsweringPipeline(
        model,
        tokenizer,
        head_name=args.head_name,
        max_length=args.max_length,
        doc_stride=args.doc_stride,
        batch_size=args.batch_size,
    )


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.lines_per_chunk < 1:
        raise SystemExit("`--batch-size` and `--lines-per-chunk` must be >= 1.")
    import torch

    pipe = load_pipeline(args)
    pipe.model.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    errors = 0

    def counted(results: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal errors
        for r in results:
            errors += "error" in r
            yield r

    try:
        results = counted(answer_records(pipe, read_records(source, args.language), args.lines_per_chunk))
        if args.output:
            directory = os.path.dirname(os.path.abspath(args.output))
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".molora-answer-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    _write(results, f)
                os.replace(tmp, args.output)
            except BaseException:
                os.unlink(tmp)
                raise
        else:
            _write(results, sys.stdout)
    finally:
        if args.input:
            source.close()
    if errors:
        print(f"molora answer: {errors} line(s) could not be processed (see error records).", file=sys.stderr)
    return 0
