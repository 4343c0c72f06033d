"""Checks and options shared by the ``molora`` sub-commands: bad arguments become one :class:`CommandError` line,
status 2.

Every check here runs before a command loads a model or writes anything, and imports nothing heavy.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

MODEL_FILES = ("config.json",)
"""A model directory written by ``save_pretrained`` (or ``molora train``) has these files."""


class CommandError(Exception):
    """A bad argument or input of a ``molora`` command: printed as one line, exit status 2."""


def _looks_like_path(value: str) -> bool:
    # A Hub id is `name` or `org/name`; anything else (absolute, relative with `.`, deeper) is a local path.
    return (
        os.path.isabs(value)
        or value.startswith((".", "~"))
        or value.count("/") > 1
        or (os.sep != "/" and os.sep in value)
    )


def check_model_path(value: str, flag: str = "--model") -> str:
    """``value`` if it names a model directory, an ``embedded:`` model or a Hub id; raises :class:`CommandError`.

    Args:
        value (`str`): the argument.
        flag (`str`, *optional*, defaults to `"--model"`): the option named in the message.
    """
    from ..models.embedded import EMBEDDED_MODELS, EMBEDDED_PREFIX

    if value.startswith(EMBEDDED_PREFIX):
        name = value[len(EMBEDDED_PREFIX) :]
        if name not in EMBEDDED_MODELS:
            raise CommandError(
                f"`{flag}` {value!r}: unknown embedded model; expected one of "
                f"{', '.join(EMBEDDED_PREFIX + n for n in EMBEDDED_MODELS.names())}."
            )
        return value
    path = os.path.expanduser(value)
    if os.path.isdir(path):
        if not os.listdir(path):
            raise CommandError(f"`{flag}` {value!r} is an empty directory; expected a saved model directory.")
        missing = [f for f in MODEL_FILES if not os.path.isfile(os.path.join(path, f))]
        if missing:
            raise CommandError(
                f"`{flag}` {value!r} is not a model directory (no {', '.join(missing)}); expected a directory "
                "written by `save_pretrained` or `molora train`."
            )
        return path
    if os.path.exists(path):
        raise CommandError(f"`{flag}` {value!r} is a file; expected a model directory.")
    if _looks_like_path(value):
        raise CommandError(f"`{flag}` {value!r} does not exist; expected a saved model directory.")
    return value


def check_input_file(path: str | None, flag: str = "--input", what: str = "one input per line") -> None:
    """Raise :class:`CommandError` unless ``path`` is ``None`` (stdin) or a non-empty readable file.

    Args:
        path (`str`, *optional*): the argument.
        flag (`str`, *optional*, defaults to `"--input"`): the option named in the message.
        what (`str`, *optional*): what the file should hold, for the message.
    """
    if path is None:
        return
    if not os.path.exists(path):
        raise CommandError(f"`{flag}` {path!r} does not exist; expected a file with {what}.")
    if not os.path.isfile(path):
        raise CommandError(f"`{flag}` {path!r} is not a file; expected a file with {what}.")
    if os.path.getsize(path) == 0:
        raise CommandError(f"`{flag}` {path!r} is empty; expected a file with {what}.")
    if not os.access(path, os.R_OK):
        raise CommandError(f"`{flag}` {path!r} is not readable.")


def check_output_file(path: str | None, flag: str = "--output") -> None:
    """Raise :class:`CommandError` unless ``path`` is ``None`` (stdout) or can be written (its directory exists)."""
    if path is None:
        return
    if os.path.isdir(path):
        raise CommandError(f"`{flag}` {path!r} is a directory; expected a file path.")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"`{flag}` {path!r}: directory {directory!r} does not exist.")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision {auto,bf16,fp32}`` (default ``auto``), as the pipelines take it (`utils.precision`)."""
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="auto (default): bf16 autocast where the CPU / GPU has native bf16 (AMX, avx512_bf16), float32 "
        "elsewhere; fp32: always float32 (bit-stable outputs); bf16: always bf16 autocast.",
    )


def check_positive(**values: int) -> None:
    """Raise :class:`CommandError` for the first ``--name value`` that is below 1 (keyword ``batch_size`` ->
    ``--batch-size``)."""
    for name, value in values.items():
        if value < 1:
            raise CommandError(f"`--{name.replace('_', '-')}` must be >= 1, got {value}.")


def same_failure(a: BaseException, b: BaseException) -> bool:
    """Whether two exceptions are the same failure (type and message); see :func:`retry_one_by_one`."""
    return type(a) is type(b) and str(a) == str(b)


def error_text(err: BaseException) -> str:
    """``"Type: message"`` for an error record (a ``KeyError``'s message without its quotes)."""
    msg = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else err
    return f"{type(err).__name__}: {msg}"


def retry_one_by_one(
    items: Sequence[T],
    run_one: Callable[[T], object],
    batch_error: BaseException,
    *,
    systematic_after: int = 2,
) -> list[object | BaseException]:
    """Run ``run_one`` on each item after its batch failed with ``batch_error``; returns results or exceptions.

    One line failing alone exactly as its batch did (same type and message) is the culprit; ``systematic_after``
    lines in a row failing that way show a systematic error (a bad model, device or option), and every remaining
    item gets that error without another try, so a broken run costs a few forward passes, not one per line.

    Args:
        items (`Sequence`): the batch's items.
        run_one (`Callable`): runs one item.
        batch_error (`BaseException`): what the batch raised.
        systematic_after (`int`, *optional*, defaults to 2): identical failures in a row that stop the retries.
    """
    out: list[object | BaseException] = []
    same_in_a_row = 0
    for i, item in enumerate(items):
        try:
            out.append(run_one(item))
            same_in_a_row = 0
        except Exception as e:  # noqa: BLE001 - isolate the culprit line
            out.append(e)
            same_in_a_row = same_in_a_row + 1 if same_failure(e, batch_error) else 0
            if same_in_a_row >= systematic_after:
                out.extend([e] * (len(items) - i - 1))
                break
    return out
