"""Readers for system outputs (CaRB tabbed, OpenIE-4, BenchIE "explicit", our JSONL) and the
conversion of in-memory extractions into :class:`ExtractionRow` lists.

Every reader keeps file order (the official scorers depend on it) and raises ``ValueError`` naming
``file:line`` for malformed lines. Blank lines are skipped. ``.gz`` files are read transparently.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

from ...registry import Registry
from ...utils.io import open_text
from .rows import ExtractionRow

PredictionFormat = Literal["tabbed", "openie4", "benchie", "jsonl"]
PredictionReader = Callable[[str], list[ExtractionRow]]
PREDICTION_READERS: Registry[PredictionReader] = Registry("prediction format")

FORMAT_ALIASES: dict[str, str] = {"carb": "tabbed"}
"""Other names of a format: CaRB's tabbed format is also called ``carb`` (``molora extract --format``)."""


def resolve_format(name: str, *, what: str = "format") -> str:
    """The canonical name of format ``name`` (resolving :data:`FORMAT_ALIASES`).

    Args:
        name (`str`): a format name or alias.
        what (`str`, *optional*, defaults to `"format"`): the argument name used in the error message.

    Raises:
        ValueError: ``name`` is neither a registered format nor an alias.
    """
    name = FORMAT_ALIASES.get(name, name)
    if name not in PREDICTION_READERS:
        raise ValueError(
            f"`{what}` must be one of {', '.join(PREDICTION_READERS.names())} "
            f"(aliases: {', '.join(f'{a}={c}' for a, c in FORMAT_ALIASES.items())}), got {name!r}."
        )
    return name


def format_choices() -> list[str]:
    """Every accepted format name: the registered ones and their aliases (for ``argparse`` choices)."""
    return sorted({*PREDICTION_READERS.names(), *FORMAT_ALIASES})


def register_prediction_reader(name: str, reader: PredictionReader | None = None, *, overwrite: bool = False):
    """Register a reader ``(path) -> list[ExtractionRow]`` for ``format=name`` (usable as a decorator).

    Args:
        name (`str`): the format name used by :func:`read_predictions` and ``molora evaluate --format``.
        reader (`Callable`, *optional*): the reader; omit to use as a decorator.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing reader.
    """
    return PREDICTION_READERS.register(name, reader, overwrite=overwrite)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line_number, line)`` for every line; line endings are split the way Python's text mode does."""
    with open_text(path, newline="") as f:
        text = f.read()
    # universal newlines, as `open()` in text mode (which the official tools use) would split them
    yield from enumerate(io.StringIO(text, newline=None), start=1)


def _tab_fields(path: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """``(where, fields)`` of every non-blank line: stripped, then split on tabs (as the official readers do)."""
    for n, line in iter_lines(path):
        if line.strip():
            yield f"{os.fspath(path)}:{n}", line.strip().split("\t")


def _confidence(value: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: confidence `{value!r}` is not a number.") from None


@register_prediction_reader("tabbed")
def read_tabbed(path: str | os.PathLike) -> list[ExtractionRow]:
    """CaRB tabbed format: ``sentence<TAB>confidence<TAB>relation<TAB>arg0<TAB>arg1...``.

    As the official ``TabReader``: the line is stripped, then split on tabs; arguments are kept verbatim.

    Args:
        path (`str` or `os.PathLike`): the file to read.
    """
    rows = []
    for where, data in _tab_fields(path):
        if len(data) < 3:
            raise ValueError(
                f"{where}: expected `sentence<TAB>confidence<TAB>relation[<TAB>arg...]`, got {len(data)} field(s)."
            )
        rows.append(
            ExtractionRow(data[0], data[2], tuple(data[3:]), _confidence(data[1], where), None, where)
        )
    return rows


def _openie4_text(field: str, where: str) -> str:
    try:
        return field[field.index("(") + 1 : field.index(",List(")]
    except ValueError:
        raise ValueError(
            f"{where}: `{field[:60]}` is not an OpenIE-4 `Kind(text,List(...))` field."
        ) from None


@register_prediction_reader("openie4")
def read_openie4(path: str | os.PathLike) -> list[ExtractionRow]:
    """OpenIE-4 output: ``confidence<TAB>context<TAB>SimpleArgument(a0,List(..))<TAB>Relation(r,..)<TAB>
    SimpleArgument(a1,..)<TAB>sentence``. Lines with an empty arg0/relation/arg1 field are skipped, as the
    official ``OpenieFourReader`` does.

    Args:
        path (`str` or `os.PathLike`): the file to read.
    """
    rows = []
    for where, data in _tab_fields(path):
        if len(data) < 6:
            raise ValueError(f"{where}: expected 6 tab-separated OpenIE-4 fields, got {len(data)}.")
        if not all(data[2:5]):
            continue
        arg0, rel, arg1 = (_openie4_text(s, where) for s in data[2:5])
        rows.append(ExtractionRow(data[5], rel, (arg0, arg1), _confidence(data[0], where), None, where))
    return rows


@register_prediction_reader("benchie")
def read_benchie(path: str | os.PathLike) -> list[ExtractionRow]:
    """BenchIE "explicit" format: ``sent_id<TAB>subject<TAB>relation<TAB>object``. The rows have no
    sentence text (``sentence=""``) and confidence 1. A line whose object is empty loses its last tab to
    the line strip; it is read with an empty object.

    Args:
        path (`str` or `os.PathLike`): the file to read.
    """
    rows = []
    for where, data in _tab_fields(path):
        if len(data) < 3:
            raise ValueError(
                f"{where}: expected `sent_id<TAB>subject<TAB>relation<TAB>object`, got {len(data)} field(s)."
            )
        obj = data[3] if len(data) > 3 else ""
        rows.append(ExtractionRow("", data[2], (data[1], obj), 1.0, data[0], where))
    return rows


@register_prediction_reader("jsonl")
def read_jsonl(path: str | os.PathLike) -> list[ExtractionRow]:
    """Our JSONL: one object per line, either a record ``{"sentence", "extractions": [...]}`` (the
    :data:`~molora_adapters.data.schema.OIE_FEATURES` shape, as :func:`~.writers.write_jsonl` and
    ``molora extract`` write it) or one flat extraction ``{"sentence", "relation", "arg0", "args",
    "confidence"}``. The ``{"line", "error"}`` records of ``molora extract`` (input lines that could not be
    processed) carry no extraction and are skipped.

    Args:
        path (`str` or `os.PathLike`): the file to read.
    """
    rows: list[ExtractionRow] = []
    for n, line in iter_lines(path):
        if not line.strip():
            continue
        where = f"{os.fspath(path)}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: invalid JSON ({e.msg}).") from None
        if isinstance(obj, dict) and "error" in obj and "sentence" not in obj:
            continue  # an input line `molora extract` could not process: nothing to score
        if not isinstance(obj, dict) or "sentence" not in obj:
            raise ValueError(
                f"{where}: expected a JSON object with a `sentence` key (or an `error` record of `molora extract`)."
            )
        sent_id = _record_sent_id(obj)
        exts = obj["extractions"] if "extractions" in obj else [obj]
        for ext in exts:
            rows.append(_row(obj["sentence"], ext, where, sent_id))
    return rows


def read_predictions(path: str | os.PathLike, format: str = "tabbed") -> list[ExtractionRow]:
    """Read a system-output file in one of the registered formats.

    Args:
        path (`str` or `os.PathLike`): the file.
        format (`str`, *optional*, defaults to `"tabbed"`): ``"tabbed"`` (alias ``"carb"``), ``"openie4"``,
            ``"benchie"``, ``"jsonl"`` or any name added with :func:`register_prediction_reader`.
    """
    reader = PREDICTION_READERS.get(resolve_format(format))
    if not os.path.exists(path):
        raise FileNotFoundError(f"Prediction file `{os.fspath(path)}` does not exist.")
    return reader(path)


# ---------------------------------------------------------------------------------------------------
# in-memory extractions


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _row(sentence: str, ext: Any, where: str, sent_id: str | None = None) -> ExtractionRow:
    relation = _get(ext, "relation", _get(ext, "pred"))
    if relation is None:
        raise ValueError(f"{where}: extraction {ext!r} has no `relation`.")
    arg0 = _get(ext, "arg0")
    args = list(_get(ext, "args", None) or [])
    if arg0 is not None:
        args = [arg0, *args]
    conf = _get(ext, "confidence", 1.0)
    conf = 1.0 if conf is None else float(conf)
    sid = _get(ext, "sent_id", sent_id)
    return ExtractionRow(
        str(sentence),
        str(relation),
        tuple(str(a) for a in args),
        conf,
        None if sid is None else str(sid),
        where,
    )


def _record_sent_id(record: Any) -> str | None:
    """A record's BenchIE sentence id: ``sent_id``, else the ``sent_id`` in its JSON ``meta`` (as
    :func:`~molora_adapters.oie.benchmarks.gold.load_benchmark` writes it)."""
    sid = _get(record, "sent_id")
    if sid is None:
        meta = _get(record, "meta")
        if isinstance(meta, str) and meta.startswith("{"):
            try:
                sid = json.loads(meta).get("sent_id")
            except json.JSONDecodeError:
                sid = None
        elif isinstance(meta, Mapping):
            sid = meta.get("sent_id")
    return None if sid in (None, "") else str(sid)


def rows_from_extractions(predictions: Any) -> list[ExtractionRow]:
    """Flatten in-memory extractions into rows, keeping their order.

    Accepted shapes:
        - ``{sentence: [extraction, ...]}``;
        - ``[(sentence, [extraction, ...]), ...]``;
        - records ``[{"sentence": ..., "extractions": [...]}, ...]`` (e.g. a `datasets.Dataset` in
          :data:`~molora_adapters.data.schema.OIE_FEATURES`);
        - flat extractions that carry their own ``sentence`` (``molora_adapters.oie`` ``Extraction``
          objects or dicts).

    A record's ``sent_id`` (or the one in its ``meta``) places it in BenchIE; otherwise its sentence text does.
    An extraction is a dict or object with ``relation``, ``arg0``, ``args`` and optionally
    ``confidence`` (default 1.0), e.g. :class:`~molora_adapters.data.schema.OIETuple`; ``ExtractionRow``
    objects pass through unchanged.

    Args:
        predictions: the extractions, in one of the shapes above.
    """
    if isinstance(predictions, Mapping):
        predictions = list(predictions.items())
    rows: list[ExtractionRow] = []
    for i, item in enumerate(predictions):
        where = f"<predictions>[{i}]"
        if isinstance(item, ExtractionRow):
            rows.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            for ext in item[1]:
                rows.append(_row(item[0], ext, where))
        elif _get(item, "extractions") is not None and _get(item, "sentence") is not None:
            sid = _record_sent_id(item)
            for ext in _get(item, "extractions"):
                rows.append(_row(_get(item, "sentence"), ext, where, sid))
        elif _get(item, "sentence") is not None:
            rows.append(_row(_get(item, "sentence"), item, where))
        else:
            raise ValueError(
                f"{where}: cannot read {type(item).__name__} as predictions; pass `(sentence, extractions)` "
                "pairs, `{sentence: extractions}`, records with `sentence`/`extractions`, or extractions "
                "with a `sentence` attribute."
            )
    return rows


def iter_groups(rows: Iterable[ExtractionRow]) -> dict[str, list[ExtractionRow]]:
    """Group rows by their sentence string, in order of first appearance."""
    out: dict[str, list[ExtractionRow]] = {}
    for r in rows:
        out.setdefault(r.sentence, []).append(r)
    return out
