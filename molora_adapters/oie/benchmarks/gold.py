"""Shipped gold sets and the ``load_benchmark(name, lang)`` registry of `datasets` loaders.

Gold files are vendored (gzip) under ``molora_adapters/resources/benchmarks`` with their sources and
licences in ``SOURCES.md`` there. :func:`gold_path` finds a shipped file; :func:`load_benchmark` returns a
`datasets.Dataset` in :data:`~molora_adapters.data.schema.OIE_FEATURES`, one record per sentence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import datasets

from ...data.schema import OIERecord, OIETuple, records_to_dataset
from ...registry import Registry
from ...utils.io import open_text
from ..formats.readers import iter_lines
from ..formats.rows import ExtractionRow
from .benchie import benchie_records, parse_benchie_gold

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "benchmarks"


@dataclass(frozen=True)
class GoldSet:
    """One shipped gold file.

    Args:
        benchmark (`str`): ``"carb"``, ``"benchie"``, ``"reoie2016"`` or ``"oie2016"``.
        lang (`str`): ISO 639-1 language code.
        split (`str`): ``"test"`` or ``"dev"``.
        variant (`str`): ``"full"`` or ``"binary"`` (Re-OIE2016 only).
        resource (`str`): path relative to the benchmark resources folder.
    """

    benchmark: str
    lang: str
    split: str
    variant: str
    resource: str

    @property
    def path(self) -> Path:
        return RESOURCES / self.resource


GOLD_SETS: dict[tuple[str, str, str, str], GoldSet] = {}


def _add(benchmark: str, lang: str, split: str, variant: str, resource: str) -> None:
    GOLD_SETS[(benchmark, lang, split, variant)] = GoldSet(benchmark, lang, split, variant, resource)


for _split in ("dev", "test"):
    _add("carb", "en", _split, "full", f"carb/en/{_split}.tsv.gz")
    _add("oie2016", "en", _split, "full", f"oie2016/en/OIE2016_{_split}.txt.gz")
for _lang in ("zh", "hi", "te", "es", "pt"):
    _add("carb", _lang, "test", "full", f"carb/{_lang}/test.tsv.gz")
for _lang, _name in (("en", "Re-OIE2016"), ("es", "Re-OIE2016-Spanish"), ("pt", "Re-OIE2016-Portuguese")):
    _add("reoie2016", _lang, "test", "full", f"reoie2016/{_lang}/{_name}.json.gz")
    _add("reoie2016", _lang, "test", "binary", f"reoie2016/{_lang}/{_name}-Binary.json.gz")
for _lang in ("en", "de", "zh"):
    _add("benchie", _lang, "test", "full", f"benchie/{_lang}/benchie_gold_annotations_{_lang}.txt.gz")


def gold_path(benchmark: str, lang: str = "en", split: str = "test", variant: str = "full") -> Path:
    """Path of a shipped gold file.

    Args:
        benchmark (`str`): ``"carb"``, ``"benchie"``, ``"reoie2016"`` or ``"oie2016"``.
        lang (`str`, *optional*, defaults to `"en"`): language code.
        split (`str`, *optional*, defaults to `"test"`): ``"test"`` or ``"dev"``.
        variant (`str`, *optional*, defaults to `"full"`): ``"full"`` or ``"binary"``.
    """
    key = (benchmark, lang, split, variant)
    if key not in GOLD_SETS:
        have = sorted(f"{b}/{lg}/{s}/{v}" for b, lg, s, v in GOLD_SETS if b == benchmark)
        raise ValueError(
            f"No shipped gold for `benchmark={benchmark!r}`, `lang={lang!r}`, `split={split!r}`, "
            f"`variant={variant!r}`. Shipped: {', '.join(have) or '(none for this benchmark)'}; "
            "pass `gold=PATH` to score against another file."
        )
    return GOLD_SETS[key].path


def read_carb_gold(path: str | os.PathLike, *, with_context: bool = False):
    """CaRB gold as the official ``GoldReader`` sees it: fields stripped, sentences stripped, and args
    containing ``"C: "`` (context) skipped. (Official: a *substring* test; one CaRB dev arg has ``C: ``
    inside it and is dropped too.)

    Args:
        path (`str` or `os.PathLike`): a ``sentence<TAB>relation<TAB>arg0...`` file (``.gz`` accepted).
        with_context (`bool`, *optional*, defaults to `False`): also return the context args per row.

    Returns:
        ``list[ExtractionRow]``, or ``(rows, contexts)`` with ``with_context=True``.
    """
    rows, contexts = [], []
    for n, line in iter_lines(path):
        if not line.strip():
            continue  # (the official readers crash on blank lines)
        where = f"{os.fspath(path)}:{n}"
        data = line.strip().split("\t")
        if len(data) < 2:
            raise ValueError(
                f"{where}: expected `sentence<TAB>relation<TAB>arg...`, got {len(data)} field(s)."
            )
        args = tuple(a.strip() for a in data[2:] if "C: " not in a)
        contexts.append([a.strip() for a in data[2:] if "C: " in a])
        rows.append(ExtractionRow(data[0].strip(), data[1].strip(), args, 1.0, None, where))
    return (rows, contexts) if with_context else rows


# ---------------------------------------------------------------------------------------------------
# `datasets` loaders

BenchmarkLoader = Callable[..., datasets.Dataset]
BENCHMARK_LOADERS: Registry[BenchmarkLoader] = Registry("benchmark loader")


def register_benchmark(name: str, loader: BenchmarkLoader | None = None, *, overwrite: bool = False):
    """Register a gold loader ``(lang, split, variant, path) -> datasets.Dataset`` (usable as a decorator).

    Args:
        name (`str`): the name used with :func:`load_benchmark`.
        loader (`Callable`, *optional*): the loader; omit to use as a decorator.
        overwrite (`bool`, *optional*, defaults to `False`): replace an existing loader.
    """
    return BENCHMARK_LOADERS.register(name, loader, overwrite=overwrite)


def load_benchmark(
    name: str,
    lang: str = "en",
    *,
    split: str = "test",
    binary: bool = False,
    path: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Load a benchmark's gold set as a `datasets.Dataset` in the shared OIE schema.

    Covered: ``carb`` (en dev/test; zh, hi, te, es, pt test), ``reoie2016`` (en, es, pt; ``binary``),
    ``benchie`` (en, de, zh) and ``oie2016`` (en dev/test).

    Args:
        name (`str`): a registered benchmark (see ``BENCHMARK_LOADERS.names()``).
        lang (`str`, *optional*, defaults to `"en"`): language code.
        split (`str`, *optional*, defaults to `"test"`): ``"test"`` or ``"dev"``.
        binary (`bool`, *optional*, defaults to `False`): the binary variant (Re-OIE2016).
        path (`str`, *optional*): read this file instead of the shipped one.
    """
    if name == "reoie2016-binary":
        name, binary = "reoie2016", True
    variant = "binary" if binary else "full"
    if path is None:
        key = "reoie2016" if name == "re-oie2016" else name
        path = gold_path(key, lang, split, variant) if name in BENCHMARK_LOADERS else None
    return BENCHMARK_LOADERS.get(name)(lang=lang, split=split, variant=variant, path=path)


def _rel(path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(RESOURCES))
    except ValueError:
        return str(path)


@register_benchmark("carb")
def _load_carb(lang: str, split: str, variant: str, path) -> datasets.Dataset:
    rows, contexts = read_carb_gold(path, with_context=True)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.sentence, []).append(i)
    records = []
    for k, (sentence, idx) in enumerate(groups.items()):
        exts = [
            OIETuple(
                arg0=rows[i].args[0] if rows[i].args else "",
                relation=rows[i].relation,
                args=list(rows[i].args[1:]),
                context=" ; ".join(c[3:] if c.startswith("C: ") else c for c in contexts[i]) or None,
            )
            for i in idx
        ]
        meta = {
            "benchmark": "carb",
            "split": split,
            "source": _rel(path),
            "lines": [int(rows[i].source.rsplit(":", 1)[1]) for i in idx],
        }
        records.append(OIERecord(f"carb-{lang}-{split}-{k}", sentence, sentence.split(), lang, exts, meta))
    return records_to_dataset(records)


def _positions(index: list) -> list[int]:
    pos = [int(i) for i in index if int(i) >= 0]  # -2 marks an inserted "<be>"
    if len(pos) == 2 and pos[1] >= pos[0]:
        return list(range(pos[0], pos[1] + 1))
    return pos


@register_benchmark("reoie2016")
def _load_reoie2016(lang: str, split: str, variant: str, path) -> datasets.Dataset:
    with open_text(path, newline="") as f:
        data = json.load(f)
    records = []
    for k, (sentence, tuples) in enumerate(data.items()):
        exts = []
        for t in tuples:
            names = [a for a in ("arg1", "arg2", "arg3", "temp", "loc") if t.get(a, "")]
            exts.append(
                OIETuple(
                    arg0=t.get("arg0", ""),
                    relation=t["pred"],
                    args=[t[a] for a in names],
                    context=t.get("context") or None,
                    arg0_pos=_positions(t.get("arg0_index", [])),
                    relation_pos=_positions(t.get("pred_index", [])),
                    args_pos=[_positions(t.get(f"{a}_index", [])) for a in names],
                )
            )
        meta = {
            "benchmark": "reoie2016",
            "variant": variant,
            "source": _rel(path),
            "arg_roles": [
                [a for a in ("arg1", "arg2", "arg3", "temp", "loc") if t.get(a, "")] for t in tuples
            ],
        }
        records.append(
            OIERecord(f"reoie2016-{lang}-{variant}-{k}", sentence, sentence.split(), lang, exts, meta)
        )
    return records_to_dataset(records)


@register_benchmark("oie2016")
def _load_oie2016(lang: str, split: str, variant: str, path) -> datasets.Dataset:
    groups: dict[str, list[tuple[list[str], int]]] = {}
    for n, line in iter_lines(path):
        data = line.strip().split("\t")
        if len(data) < 3:
            raise ValueError(f"{os.fspath(path)}:{n}: expected `sentence<TAB>head<TAB>predicate<TAB>arg...`.")
        groups.setdefault(data[0].strip(), []).append((data, n))
    records = []
    for k, (sentence, items) in enumerate(groups.items()):
        exts = [OIETuple(arg0=d[3] if len(d) > 3 else "", relation=d[2], args=list(d[4:])) for d, _ in items]
        meta = {
            "benchmark": "oie2016",
            "split": split,
            "source": _rel(path),
            "heads": [d[1] for d, _ in items],
            "lines": [n for _, n in items],
        }
        records.append(OIERecord(f"oie2016-{split}-{k}", sentence, sentence.split(), lang, exts, meta))
    return records_to_dataset(records)


@register_benchmark("benchie")
def _load_benchie(lang: str, split: str, variant: str, path) -> datasets.Dataset:
    gold = parse_benchie_gold(path)
    records = []
    for sid, sentence, triples in benchie_records(gold):
        exts = [OIETuple(arg0=t[0], relation=t[1], args=[t[2]]) for t, _ in triples]
        meta = {
            "benchmark": "benchie",
            "source": _rel(path),
            "sent_id": sid,
            "synsets": [c for _, c in triples],
            "n_synsets": len(gold.synsets.get(sid, [])),
        }
        records.append(OIERecord(f"benchie-{lang}-{sid}", sentence, sentence.split(), lang, exts, meta))
    return records_to_dataset(records)


def _reoie2016_binary(lang: str, split: str, variant: str, path) -> datasets.Dataset:
    return _load_reoie2016(lang, split, "binary", path)


register_benchmark("re-oie2016", _load_reoie2016)  # alias
register_benchmark("reoie2016-binary", _reoie2016_binary)
