"""``molora answer``: answer questions from a JSONL file with an X-STA model.

Example::

    molora answer --model DIR --input questions.jsonl --output answers.jsonl
    molora answer --model embedded:multilingual-e5-small --xsta SAVED_XSTA_DIR --lang de < questions.jsonl

Each input line is a JSON object with ``question``, ``context`` and ``language`` (or ``--lang``), optionally ``id``,
and, for paired inference, ``source_question`` + ``source_context`` (the English parallel text). Each output line is
``{"line", "id", "answer", "paired"}``. Bad input never stops a run, as with ``molora extract``: a line that is empty,
not valid UTF-8, not a JSON object, misses a field or fails for any other reason gets a ``{"line": N, "error": ...}``
record; a failing batch is retried line by line so that only the culprit fails (unless two lines in a row fail alone
exactly as the batch did: a systematic error). The command ends with status 1 and the count when some line failed,
and with one line and status 2, before any work and without writing, on bad arguments (a missing, empty or
non-model --model directory, a missing or empty --input).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from ..utils import cli as checks
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
    checks.add_precision_argument(parser)


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
        except Exception as batch_error:  # noqa: BLE001 - retry one by one so only the culprit line fails
            outs = checks.retry_one_by_one(good, lambda item: pipeline([item[1]])[0], batch_error)
        for (n, _), out in zip(good, outs, strict=True):
            results[n] = (
                {"line": n, "error": checks.error_text(out)}
                if isinstance(out, BaseException)
                else {"line": n, **out}
            )
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

    import molora_adapters  # noqa: F401
    from molora_adapters.models import resolve_model_name_or_path
    from molora_adapters.models.tokenizer import load_tokenizer

    from .pipeline import XSTAQuestionAnsweringPipeline

    path = resolve_model_name_or_path(checks.check_model_path(args.model))
    if args.xsta and not os.path.isdir(args.xsta):
        raise checks.CommandError(
            f"`--xsta` {args.xsta!r} does not exist; expected a directory saved with `save_xsta`."
        )
    try:
        model = AutoAdapterModel.from_pretrained(path)
        tokenizer = load_tokenizer(path)
        if args.xsta:
            model.load_xsta(args.xsta, set_active=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = (checks.error_text(err).strip().splitlines() or [type(err).__name__])[0]
        raise checks.CommandError(f"`--model` {args.model!r} could not be loaded: {first}") from err
    return XSTAQuestionAnsweringPipeline(
        model,
        tokenizer,
        head_name=args.head_name,
        max_length=args.max_length,
        doc_stride=args.doc_stride,
        batch_size=args.batch_size,
        precision=args.precision,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``molora answer``: 0 when every line was answered, 1 when some failed, 2 on bad arguments."""
    checks.check_positive(batch_size=args.batch_size, lines_per_chunk=args.lines_per_chunk)
    checks.check_input_file(args.input, what="one JSON question per line")
    checks.check_output_file(args.output)
    import torch

    try:
        pipe = load_pipeline(args)
    except ValueError as err:  # e.g. an unknown --head or a model without an X-STA head
        raise checks.CommandError(f"`--head` / `--model`: {err}") from err
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
    return 1 if errors else 0
