"""``molora extract``: read sentences (one per line), write extractions.

Example::

    molora extract < in.txt > out.jsonl                  # the shipped model
    molora extract --model DIR --lang zh < in.txt > out.jsonl
    molora extract --model DIR --format tabbed --input sents.txt --output carb.tsv
    molora evaluate --benchmark carb --format tabbed carb.tsv

Bad arguments (a missing, empty or non-model ``--model`` directory, a missing or empty ``--input``, an unknown
``--head``) stop the command before any work with one line on stderr and status 2; nothing is written. A bad line
does not stop a run: a line that is empty or whitespace-only, is not valid UTF-8, or fails for any other reason gets
an ``{"line": N, "error": ...}`` record in JSONL (and a message on stderr for the tab formats), and the command ends
with status 1 and the count of failed lines. A failing batch is retried line by line, unless two lines in a row fail
alone exactly as the batch did (a systematic error). Very long lines are split into chunks with a warning (see
:class:`OIEPipeline`).

Confidences: in the default ``multi2oie`` mode a tuple's confidence is a *score*, the sum of the predicate's and each
argument's tag probability (range ``[0, 1 + n_args]``, so values above 1 are normal; Multi2OIE writes it to CaRB
files, where only the ranking matters); ``--confidence-mode mean`` divides it by ``1 + n_args``, in ``[0, 1]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator

from ..utils.cli import (
    CommandError,
    add_precision_argument,
    check_input_file,
    check_model_path,
    check_output_file,
    check_positive,
    error_text,
    retry_one_by_one,
)
from ..utils.io import read_lines  # noqa: F401  (re-exported: part of this module's API)
from .decoding import CONFIDENCE_MODES, SPAN_SELECTORS
from .formats.readers import FORMAT_ALIASES
from .formats.writers import OUTPUT_FORMATS, LineResult, write_results

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="Directory of a model saved with an OIE head, a `molora package-model` directory, or a model id "
        "(default: the shipped model, molora/oie-multilingual-e5-small).",
    )
    parser.add_argument("--adapter", help="Adapter directory to load (with its head) and activate.")
    parser.add_argument("--head", dest="head_name", help="OIE head to use when the model has several.")
    parser.add_argument(
        "--lang", dest="language", help="Language code of the input (zh/ja: character level)."
    )
    parser.add_argument(
        "--format",
        choices=sorted({*OUTPUT_FORMATS, *(a for a, c in FORMAT_ALIASES.items() if c in OUTPUT_FORMATS)}),
        default="jsonl",
        help="Output format (default: jsonl; `carb` is an alias of `tabbed`). Every format reads back "
        "with `molora evaluate --format` of the same name.",
    )
    parser.add_argument("--input", help="Input file (default: stdin).")
    parser.add_argument("--output", help="Output file, written atomically (default: stdout).")
    parser.add_argument("--batch-size", type=int, default=32, help="Encoder inputs per forward pass.")
    parser.add_argument("--lines-per-chunk", type=int, default=1024, help="Input lines processed at a time.")
    parser.add_argument(
        "--confidence-mode",
        choices=CONFIDENCE_MODES,
        default="multi2oie",
        help="multi2oie (default): a score, the sum of the predicate's and each argument's tag probability, in "
        "[0, 1 + number of arguments]; mean: that sum divided by 1 + number of arguments, in [0, 1].",
    )
    add_precision_argument(parser)
    parser.add_argument(
        "--span-strategy",
        choices=SPAN_SELECTORS.names(),
        default="merge",
        help="Several spans of one argument role: merge them (Multi2OIE), keep the most probable, the nearest "
        "to the predicate, or the most probable plus pieces within 2 words (see oie.decoding).",
    )
    parser.add_argument("--min-args", type=int, default=1, help="Drop tuples with fewer arguments.")
    parser.add_argument(
        "--max-predicates-per-chunk",
        type=int,
        default=None,
        help="Predicates per encoder chunk that get an argument pass (default: "
        "OIEPipeline's DEFAULT_MAX_PREDICATES_PER_CHUNK, 32); bounds the cost of a line by its length.",
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")


def _extract(pipeline, texts: list[str], numbers: list[int], **kwargs) -> list:
    """``pipeline.extract(texts)``, re-issuing its per-sentence warnings with the input line number."""
    from .pipeline import SentenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = pipeline.extract(texts, **kwargs)
    for w in caught:
        msg = w.message
        if isinstance(msg, SentenceWarning):
            i = msg.sentence_index
            text = str(msg).replace(f"Sentence {i}", f"Input line {numbers[i]}", 1)
            warnings.warn(type(msg)(text, i), stacklevel=2)
        else:
            warnings.warn_explicit(msg, w.category, w.filename, w.lineno)
    return out


def extract_lines(
    pipeline,
    lines: Iterable[tuple[int, str | None, str | None]],
    *,
    language: str | None,
    batch_size: int,
    lines_per_chunk: int,
) -> Iterator[LineResult]:
    """Run ``pipeline`` over numbered lines, isolating failures to the line that caused them."""
    buf: list[tuple[int, str | None, str | None]] = []

    def flush() -> Iterator[LineResult]:
        good = [(n, t) for n, t, err in buf if err is None]
        results: dict[int, LineResult] = {n: LineResult(n, error=err) for n, _, err in buf if err is not None}
        texts, numbers = [t for _, t in good], [n for n, _ in good]
        try:
            exts = _extract(pipeline, texts, numbers, language=language, batch_size=batch_size)
        except Exception as batch_error:  # noqa: BLE001 - retry one by one so only the culprit line fails
            exts = retry_one_by_one(
                good, lambda nt: _extract(pipeline, [nt[1]], [nt[0]], language=language)[0], batch_error
            )
        for (n, t), e in zip(good, exts, strict=True):
            results[n] = (
                LineResult(n, t, language, error=error_text(e))
                if isinstance(e, BaseException)
                else LineResult(n, t, language, e)
            )
        buf.clear()
        yield from (results[n] for n in sorted(results))

    for item in lines:
        buf.append(item)
        if len(buf) >= lines_per_chunk:
            yield from flush()
    if buf:
        yield from flush()


def load_pipeline(args: argparse.Namespace):
    """The :class:`OIEPipeline` named by the arguments; load errors become one :class:`CommandError` line."""
    from .pipeline import OIEPipeline
    from .shipping.shipped import (
        SHIPPED_MODEL_NAME,
        ShippedModelMissingError,
        is_shipped_name,
        shipped_model_path,
    )

    if is_shipped_name(args.model):
        try:
            model = str(shipped_model_path())
        except ShippedModelMissingError as err:
            raise CommandError(str(err)) from None
    else:
        model = check_model_path(args.model)
    if args.adapter is not None and not os.path.isdir(args.adapter):
        raise CommandError(f"`--adapter` {args.adapter!r} does not exist; expected an adapter directory.")
    options = (
        {}
        if args.max_predicates_per_chunk is None
        else {"max_predicates_per_chunk": args.max_predicates_per_chunk}
    )
    try:
        return OIEPipeline.from_pretrained(
            model,
            adapter=args.adapter,
            head_name=args.head_name,
            confidence_mode=args.confidence_mode,
            min_args=args.min_args,
            span_strategy=args.span_strategy,
            precision=args.precision,
            **options,
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        if args.head_name is not None and "head_name" in str(err):
            raise CommandError(f"`--head` {args.head_name!r}: {str(err).partition('; ')[2] or err}") from err
        raise CommandError(
            f"`--model` {args.model or SHIPPED_MODEL_NAME!r} could not be loaded as an OIE model: {_first_line(err)}"
        ) from err


def _first_line(err: BaseException) -> str:
    text = error_text(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run(args: argparse.Namespace) -> int:
    """Run ``molora extract``: 0 when every line was processed, 1 when some failed, 2 on bad arguments."""
    check_positive(batch_size=args.batch_size, lines_per_chunk=args.lines_per_chunk)
    check_input_file(args.input, what="one sentence per line")
    check_output_file(args.output)
    pipe = load_pipeline(args)
    device = args.device or ("cuda" if _cuda() else "cpu")
    pipe.model.to(device)
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    errors = 0

    def counted(results: Iterable[LineResult]) -> Iterator[LineResult]:
        nonlocal errors
        for r in results:
            if r.error is not None:
                errors += 1
                if args.format != "jsonl":
                    print(f"line {r.line}: {r.error}", file=sys.stderr)
            yield r

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        results = counted(
            extract_lines(
                pipe,
                read_lines(source),
                language=args.language,
                batch_size=args.batch_size,
                lines_per_chunk=args.lines_per_chunk,
            )
        )
        try:
            if args.output:
                directory = os.path.dirname(os.path.abspath(args.output))
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=".molora-extract-")
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as f:
                        write_results(results, f, args.format)
                    os.replace(tmp, args.output)
                except BaseException:
                    os.unlink(tmp)
                    raise
            else:
                write_results(results, sys.stdout, args.format)
        finally:
            if args.input:
                source.close()
    if errors:
        print(
            f"molora extract: {errors} line(s) could not be processed (see error records).", file=sys.stderr
        )
    return 1 if errors else 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
