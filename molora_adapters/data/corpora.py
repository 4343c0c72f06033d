"""Built-in loaders of OIE training corpora, each returning a `datasets.Dataset` in ``OIE_FEATURES``.

=============  ==========================================================  =======================
name           format                                                      default path
=============  ==========================================================  =======================
``oie2016``    OIE2016 ``train.oie`` (``sent<TAB>('rel', [i])<TAB>...``)   vendored train split
               or the ``.oie.conll`` BIO table
``imojie``     IMoJIE subsets in CycleOIE's T5 text format                 vendored subsets
``lsoie-gpt``  GPT-annotated LSOIE ``lsoie-g-1.0.tsv`` (same T5 format)    vendored
``lsoie``      LSOIE ``.oie`` files (``sent<TAB>pred<TAB>arg0<TAB>...``)   path required
``openie4``    OpenIE4 output as in the AI2 TupleInf markdown dump         path required
``jsonl``      one :class:`OIERecord` dict per line                        path required
=============  ==========================================================  =======================

Text-only tuple parts are aligned to word positions with :mod:`molora_adapters.data.alignment`. Dropped
tuples are counted by reason in an :class:`AlignmentReport` (pass ``report=`` to receive it; a summary
is logged) and listed per sentence in ``meta["rejected"]``.
"""

from __future__ import annotations

import ast
import gzip
import html
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import datasets

from .alignment import AlignmentReport, find_span, is_char_level, split_into_spans, split_words
from .registry import register_corpus_loader
from .schema import OIERecord, OIETuple, records_to_dataset

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "oie_train"
"""Vendored corpora (package data, see its SOURCES.md)."""
MAX_EXTRA_ARGS = 3  # A1..A3 of the Multi2OIE tagger

# Sentences that are also in evaluation sets (see SOURCES.md): lower-cased alphanumerics only.
EVAL_OVERLAP_PREFIXES = ("planstoartificiallyoxygenateareasofthebaltic",)  # lsoie-g-1.0.tsv line 3536


def _key(sentence: str) -> str:
    return re.sub(r"[^0-9a-z]", "", sentence.lower())


def _open_text(path: str | Path) -> io.TextIOBase:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Corpus file `{path}` does not exist; pass an existing `path`.")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _vendored(name: str) -> Path:
    return RESOURCES / name


def _require_path(loader: str, path: str | None) -> str:
    if path is None:
        raise ValueError(
            f"The `{loader}` loader has no default file (only OIE2016 train, the IMoJIE subsets and LSOIE-g "
            "are shipped, see molora_adapters/resources/oie_train/SOURCES.md); pass `path=` to your copy."
        )
    return path


def _raw(relation: str, arg0: str, args: list[str], **kw: Any) -> dict[str, Any]:
    return {"relation": relation, "arg0": arg0, "args": args, **kw}


def align_tuple(
    words: list[str], raw: dict[str, Any], language: str | None = None
) -> tuple[OIETuple | None, str]:
    """Align one raw tuple (texts, optional positions) to ``words``.

    Args:
        words (`list[str]`): sentence words.
        raw (`dict`): ``relation``, ``arg0``, ``args`` texts; optional ``relation_pos``, ``arg0_pos``,
            ``args_pos`` (used as given, validated), ``confidence``, ``context``.
        language (`str`, *optional*): selects character-level span splitting for zh / ja.

    Returns:
        ``(tuple, "")`` or ``(None, reason)`` with a reason from :data:`DROP_REASONS`; ``(tuple, "split")``
        when an argument had to be split into several contiguous pieces. Argument texts of the returned
        tuple are re-spelled from the aligned words (so they always match the positions); the relation
        keeps its source text (OIE2016 relations such as "might boost" add words outside their positions).
        The subject is never split; further arguments may be.
    """
    n = len(words)

    def split(t: str) -> list[str]:
        return [w for w, _, _ in split_words(t, language)]

    if not raw["relation"].strip():
        return None, "empty_relation"
    note = ""
    rel = raw.get("relation_pos")
    if rel is None:
        rel = find_span(words, split(raw["relation"]))
        if rel is None:
            return None, "relation_not_found"
    used = set(rel)
    texts = [raw.get("arg0") or ""] + list(raw.get("args") or [])
    given = raw.get("args_pos")
    positions: list[list[int]] = []
    for k, text in enumerate(texts):
        if given is not None:
            pos = list(raw.get("arg0_pos") or []) if k == 0 else list(given[k - 1])
            if text.strip() and not pos:
                return None, "argument_not_found"
            positions.append(pos)
            continue
        if not text.strip():
            positions.append([])
            continue
        pos = find_span(words, split(text), avoid=used)
        if pos is not None:
            positions.append(pos)
        elif k == 0:  # the subject is never split
            return None, "argument_not_found"
        else:
            pieces = split_into_spans(words, split(text), avoid=used)
            if pieces is None:
                return None, "argument_not_found"
            positions.extend(pieces)
            note = "split"
        used.update(p for ps in positions for p in ps)
    if any(p < 0 or p >= n for ps in [rel, *positions] for p in ps):
        return None, "position_out_of_range"
    flat = [p for ps in [rel, *positions] for p in ps]
    if len(flat) != len(set(flat)):
        return None, "overlapping_spans"
    arg0_pos, args_pos = positions[0], [p for p in positions[1:] if p]
    if not arg0_pos and not args_pos:
        return None, "no_arguments"
    if len(args_pos) > MAX_EXTRA_ARGS:
        return None, "too_many_arguments"

    joiner = "" if is_char_level(language) else " "
    return (
        OIETuple(
            arg0=joiner.join(words[i] for i in arg0_pos),
            relation=raw["relation"],
            args=[joiner.join(words[i] for i in ps) for ps in args_pos],
            context=raw.get("context"),
            confidence=float(raw.get("confidence", 1.0)),
            arg0_pos=list(arg0_pos),
            relation_pos=list(rel),
            args_pos=[list(p) for p in args_pos],
        ),
        note,
    )


def build_records(
    items: Iterable[tuple[str, list[str] | None, list[dict[str, Any]], dict[str, Any]]],
    *,
    language: str,
    id_prefix: str,
    report: AlignmentReport | None = None,
    drop_eval_overlap: bool = True,
) -> datasets.Dataset:
    """Align raw sentences + tuples into records and a `datasets.Dataset`.

    Args:
        items (`Iterable`): ``(sentence, words or None, raw tuples, meta)``; words default to
            :func:`split_words` of the sentence.
        language (`str`): language code of the corpus.
        id_prefix (`str`): record ids are ``f"{id_prefix}-{i}"``.
        report (`AlignmentReport`, *optional*): filled with counts; a new one is made otherwise.
        drop_eval_overlap (`bool`, *optional*, defaults to `True`): drop sentences known to be in
            evaluation sets.
    """
    report = report if report is not None else AlignmentReport()
    records: list[OIERecord] = []
    for sentence, words, raws, meta in items:
        if drop_eval_overlap and _key(sentence).startswith(EVAL_OVERLAP_PREFIXES):
            report.tuples_in += len(raws)
            report.sentences_dropped += 1
            report.drop("eval_overlap", sentence, count=len(raws))
            continue
        words = words if words is not None else [w for w, _, _ in split_words(sentence, language)]
        report.sentences += 1
        kept, rejected, seen = [], [], set()
        for raw in raws:
            report.tuples_in += 1
            key = (
                raw.get("arg0") or "",
                raw["relation"],
                tuple(raw.get("args") or []),
                repr([raw.get(k) for k in ("arg0_pos", "relation_pos", "args_pos")]),
            )
            tup, reason = (None, "duplicate_tuple") if key in seen else align_tuple(words, raw, language)
            seen.add(key)
            if tup is None:
                summary = " ; ".join([key[0], key[1], *key[2]])  # arg0 ; relation ; args
                report.drop(reason, f"{summary}  <<  {sentence}")
                rejected.append({"reason": reason, "tuple": summary})
                continue
            report.split_arguments += reason == "split"
            report.tuples_kept += 1
            kept.append(tup)
        meta = dict(meta, rejected=rejected) if rejected else dict(meta)
        records.append(
            OIERecord(
                id=f"{id_prefix}-{len(records)}",
                sentence=sentence,
                words=list(words),
                language=language,
                extractions=kept,
                meta=meta,
            )
        )
    logger.info("Loaded %s: %s", id_prefix, report.summary())
    dataset = records_to_dataset(records)
    dataset.info.description = f"{id_prefix}: {report.summary()}"  # alignment counts travel with the data
    return dataset


def _group(rows: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, list[Any]]]:
    """Group ``(sentence, item)`` rows by sentence, keeping first-seen order."""
    groups: dict[str, list[Any]] = {}
    for sentence, item in rows:
        groups.setdefault(sentence, []).append(item)
    yield from groups.items()


# --- OIE2016 -------------------------------------------------------------------------------------


def _oie2016_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            try:
                rel, *args = (ast.literal_eval(p) for p in parts[1:])
            except (ValueError, SyntaxError) as e:
                raise ValueError(f"{path}:{lineno}: cannot parse OIE2016 tuple ({e}).") from None
            yield parts[0], (lineno, rel, args)


def _oie2016_conll_rows(path: Path) -> Iterator[tuple[str, Any]]:
    runs: dict[tuple[str, str], list[list[str]]] = {}
    with _open_text(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for line in f:
            cells = line.rstrip("\n").split("\t")
            if len(cells) == len(header):
                runs.setdefault((cells[col["sent_id"]], cells[col["run_id"]]), []).append(cells)
    for (sent_id, run_id), rows in runs.items():
        words = [r[col["word"]] for r in rows]
        spans: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            label = r[col["label"]]
            if label != "O":
                spans.setdefault(label.split("-")[0], []).append(i)
        rel = ("", spans.get("P", []))
        rel = (" ".join(words[i] for i in rel[1]), rel[1])
        args = [(" ".join(words[i] for i in spans[k]), spans[k]) for k in sorted(spans) if k.startswith("A")]
        yield " ".join(words), (f"{sent_id}/{run_id}", rel, args)


def _oie2016_original(path: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """``train.oie.orig`` (``sentence<TAB>predicate head<TAB>arg1<TAB>arg2...``, no positions), by sentence."""
    out: dict[str, list[tuple[str, list[str]]]] = {}
    with _open_text(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                out.setdefault(parts[0], []).append((parts[1], parts[2:]))
    return out


def _original_order(
    words: list[str], tuples: list[tuple[Any, Any, list]], original: list[tuple[str, list[str]]]
) -> list[list[int]]:
    """Per tuple, the order of its arguments in the original annotation (indices into its ``args``).

    Tuples are paired with the original ones of the sentence in file order when both have the same number of
    tuples, else by predicate head (a word of the relation positions, case-insensitive). Arguments are paired by
    text (exact, then lower-cased alphanumerics); arguments without a partner keep their file order, after the
    paired ones. Unpaired tuples keep their file order.
    """
    if len(original) == len(tuples):
        partners: list[tuple[str, list[str]] | None] = list(original)
    else:
        free, partners = list(original), []
        for _, rel, _ in tuples:
            heads = {words[i].lower() for i in rel[1] if 0 <= i < len(words)}
            hit = next((o for o in free if o[0].lower() in heads), None)
            if hit is not None:
                free.remove(hit)
            partners.append(hit)
    orders = []
    for (_, _, args), partner in zip(tuples, partners, strict=True):
        if partner is None:
            orders.append(list(range(len(args))))
            continue
        rank: dict[int, int] = {}
        for norm in (lambda t: t, _key):
            for j, text in enumerate(partner[1]):
                if j in rank.values() or not norm(text):
                    continue
                k = next((k for k, a in enumerate(args) if k not in rank and norm(a[0]) == norm(text)), None)
                if k is not None:
                    rank[k] = j
        orders.append(sorted(range(len(args)), key=lambda k: (k not in rank, rank.get(k, 0), k)))
    return orders


@register_corpus_loader("oie2016")
def load_oie2016(
    path: str | None = None,
    *,
    report: AlignmentReport | None = None,
    argument_order: Literal["original", "file"] = "original",
    original_path: str | None = None,
) -> datasets.Dataset:
    """OIE2016 train split (Stanovsky & Dagan, 2016): ``train.oie`` or an ``.oie.conll`` BIO table.

    ``train.oie`` lists the arguments of a tuple in no fixed order: in 33.5% of its tuples the first argument
    is not the one the original QA-SRL-derived annotation (``train.oie.orig``, same sentences and tuples,
    arguments as text only, subject first) puts first. With ``argument_order="original"`` (the default) the
    arguments are put in the original order, so ``arg0`` is the original first argument (the subject); the
    positions still come from the file. Words are the sentence split on single spaces. Each record's
    ``meta["arg0_changed"]`` counts its tuples whose ``arg0`` moved. Never train on the OIE2016 *dev* split:
    it is CaRB dev.

    Args:
        path (`str`, *optional*): a ``.oie`` / ``.oie.conll`` file (``.gz`` allowed); defaults to the
            vendored train split.
        report (`AlignmentReport`, *optional*): receives the alignment counts.
        argument_order (`str`, *optional*, defaults to `"original"`): ``"original"`` (order of the original
            annotation) or ``"file"`` (the first argument in the file is ``arg0``).
        original_path (`str`, *optional*): the original annotation; defaults to the vendored
            ``train.oie.orig`` for the vendored split, else to ``<path>.orig`` next to ``path`` (``x.oie.gz``
            -> ``x.oie.orig.gz``).
    """
    if argument_order not in ("original", "file"):
        raise ValueError(f"`argument_order` must be 'original' or 'file', got {argument_order!r}.")
    p = Path(path) if path is not None else _vendored("oie2016_train.oie.gz")
    rows = _oie2016_conll_rows(p) if ".conll" in p.name else _oie2016_rows(p)
    original = None
    if argument_order == "original":
        if original_path is not None:
            orig = Path(original_path)
        elif path is None:
            orig = _vendored("oie2016_train.oie.orig.gz")
        else:
            orig = (
                p.with_name(p.name[:-3] + ".orig.gz")
                if p.name.endswith(".gz")
                else p.with_name(p.name + ".orig")
            )
        if not orig.is_file():
            raise FileNotFoundError(
                f"`argument_order='original'` needs the original annotation (`train.oie.orig`); `{orig}` does not "
                "exist. Pass `original_path=` or `argument_order='file'`."
            )
        original = _oie2016_original(orig)

    def items():
        for sentence, tuples in _group(rows):
            words = sentence.split(" ")
            orders = (
                _original_order(words, tuples, original.get(sentence, []))
                if original is not None
                else [list(range(len(args))) for _, _, args in tuples]
            )
            raws, changed = [], 0
            for (_, rel, args), order in zip(tuples, orders, strict=True):
                args = [args[k] for k in order]
                changed += bool(order) and order[0] != 0
                arg0 = args[0] if args else ("", [])
                rest = args[1:]
                raws.append(
                    _raw(
                        rel[0],
                        arg0[0],
                        [a[0] for a in rest],
                        relation_pos=list(rel[1]),
                        arg0_pos=list(arg0[1]),
                        args_pos=[list(a[1]) for a in rest],
                    )
                )
            meta = {"source": p.name, "line": tuples[0][0], "arg0_changed": changed}
            yield sentence, words, raws, meta

    return build_records(items(), language="en", id_prefix="oie2016", report=report)


# --- CycleOIE T5 format (IMoJIE, LSOIE-g) ---------------------------------------------------------


def parse_t5_target(target: str) -> list[dict[str, Any]]:
    """Parse ``subject <is> A <and> relation <is> R <and> object <is> B <then> ...`` into raw tuples."""
    tuples = []
    for chunk in target.split("<then>"):
        fields: dict[str, str] = {}
        for part in chunk.split("<and>"):
            key, sep, value = part.partition("<is>")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            obj = fields.get("object", "")
            tuples.append(_raw(fields.get("relation", ""), fields.get("subject", ""), [obj] if obj else []))
    return tuples


def _t5_items(paths: list[Path]) -> Iterator[tuple[str, None, list[dict[str, Any]], dict[str, Any]]]:
    rows = []
    for p in paths:
        with _open_text(p) as f:
            for lineno, line in enumerate(f, 1):
                source, sep, target = line.rstrip("\n").partition("\t")
                if not sep or (lineno == 1 and source == "source"):
                    continue
                rows.append((source.strip(), (p.name, lineno, parse_t5_target(target))))
    for sentence, group in _group(rows):
        raws = [t for _, _, tuples in group for t in tuples]  # duplicates are counted by build_records
        yield sentence, None, raws, {"source": group[0][0], "line": group[0][1]}


@register_corpus_loader("imojie")
def load_imojie(
    path: str | list[str] | None = None, *, report: AlignmentReport | None = None
) -> datasets.Dataset:
    """IMoJIE bootstrapped data in CycleOIE's T5 format; objects with appended extra arguments are split
    into several arguments. Sentences repeated across subsets are merged; repeated tuples are dropped
    (counted as ``duplicate_tuple``).

    Args:
        path (`str` or `list[str]`, *optional*): file(s); defaults to the three vendored subsets.
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    if path is None:
        paths = [_vendored(f"imojie_{n}_4cr_qpbo_extractions_t5.tsv.gz") for n in (825, 2147, 4586)]
    else:
        paths = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    return build_records(_t5_items(paths), language="en", id_prefix="imojie", report=report)


@register_corpus_loader("lsoie-gpt")
def load_lsoie_gpt(path: str | None = None, *, report: AlignmentReport | None = None) -> datasets.Dataset:
    """GPT-annotated LSOIE (CycleOIE ``lsoie-g-1.0.tsv``); the sentence also in CaRB dev is dropped.

    Args:
        path (`str`, *optional*): the ``.tsv`` file; defaults to the vendored copy.
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(path) if path is not None else _vendored("lsoie-g-1.0.tsv.gz")
    return build_records(_t5_items([p]), language="en", id_prefix="lsoie-gpt", report=report)


# --- LSOIE .oie ----------------------------------------------------------------------------------


@register_corpus_loader("lsoie")
def load_lsoie(path: str | None = None, *, report: AlignmentReport | None = None) -> datasets.Dataset:
    """LSOIE ``.oie`` files (``sentence<TAB>predicate<TAB>arg0<TAB>arg1...``, no positions).

    Args:
        path (`str`): the ``.oie`` file (required; LSOIE is not vendored).
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(_require_path("lsoie", path))

    def rows():
        with _open_text(p) as f:
            for lineno, line in enumerate(f, 1):
                parts = [c.strip() for c in line.rstrip("\n").split("\t")]
                if len(parts) >= 2:
                    yield parts[0], (lineno, _raw(parts[1], parts[2] if len(parts) > 2 else "", parts[3:]))

    def items():
        for sentence, group in _group(rows()):
            yield sentence, None, [t for _, t in group], {"source": p.name, "line": group[0][0]}

    return build_records(items(), language="en", id_prefix="lsoie", report=report)


# --- OpenIE4 (TupleInf dump) ---------------------------------------------------------------------

_TOKEN = re.compile(r"\w+(?:[-'.,]\w+)*|[^\w\s]", re.UNICODE)
_ROW = re.compile(r"^\|\s*([0-9.]+)\s*\|\s*\((.*)\)\s*\|\s*$")


def _tokenize_raw(text: str) -> list[str]:
    return _TOKEN.findall(html.unescape(text))


@register_corpus_loader("openie4")
def load_openie4(
    path: str | None = None, *, report: AlignmentReport | None = None, limit: int | None = None
) -> datasets.Dataset:
    """OpenIE4 extractions as in the AI2 TupleInf markdown dump (``> sentence`` then ``| conf | (a; r; b) |``).

    Raw web text is un-escaped and split into words and punctuation; ``L:`` / ``T:`` prefixes are removed
    and those arguments kept as further arguments; ``Context(...)`` is stored in ``context``.

    Args:
        path (`str`): a ``.md`` page or a directory of them (required: the dump's licence is unknown, so it
            is never vendored).
        report (`AlignmentReport`, *optional*): receives the alignment counts.
        limit (`int`, *optional*): stop after this many sentences.
    """
    root = Path(_require_path("openie4", path))
    files = sorted(root.glob("*.md")) if root.is_dir() else [root]

    def items():
        count = 0
        for fp in files:
            sentence, raws, lineno0 = None, [], 0
            with _open_text(fp) as f:
                lines = list(enumerate(f, 1))
            for lineno, line in lines + [(len(lines) + 1, "> ")]:
                if line.startswith("> "):
                    if sentence and raws:
                        yield (
                            " ".join(_tokenize_raw(sentence)),
                            _tokenize_raw(sentence),
                            raws,
                            {"source": fp.name, "line": lineno0},
                        )
                        count += 1
                        if limit is not None and count >= limit:
                            return
                    sentence, raws, lineno0 = line[2:].strip(), [], lineno
                    continue
                m = _ROW.match(line.strip())
                if m and sentence:
                    parts = [p.strip() for p in m.group(2).split(";")]
                    if len(parts) < 2:
                        continue
                    context = None
                    if parts[0].startswith("Context(") and ")" in parts[0]:
                        context = parts[0][8 : parts[0].index(")")]
                    parts = [re.sub(r"^[LT]:", "", x).strip() for x in parts]
                    raws.append(
                        _raw(
                            " ".join(_tokenize_raw(parts[1])),
                            " ".join(_tokenize_raw(parts[0])),
                            [" ".join(_tokenize_raw(x)) for x in parts[2:] if x],
                            confidence=float(m.group(1)),
                            context=context,
                        )
                    )

    return build_records(items(), language="en", id_prefix="openie4", report=report)


# --- JSONL in our schema -------------------------------------------------------------------------


@register_corpus_loader("jsonl")
def load_jsonl(
    path: str | None = None, *, language: str | None = None, report: AlignmentReport | None = None
) -> datasets.Dataset:
    """JSONL with one record per line in our schema (``sentence``, optional ``words``, ``language``,
    ``extractions`` with ``arg0`` / ``relation`` / ``args`` and optional ``*_pos``). Missing positions are
    aligned from the texts.

    Args:
        path (`str`): the ``.jsonl`` file (``.gz`` allowed).
        language (`str`, *optional*): language of lines without a ``language`` field (default ``"en"``).
        report (`AlignmentReport`, *optional*): receives the alignment counts.
    """
    p = Path(_require_path("jsonl", path))
    report = report if report is not None else AlignmentReport()
    by_lang: dict[str, list] = {}
    with _open_text(p) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: invalid JSON ({e.msg}); fix or remove the line.") from None
            if "sentence" not in rec:
                raise ValueError(f"{p}:{lineno}: record has no `sentence` field.")
            lang = rec.get("language") or language or "en"
            raws = []
            for ex in rec.get("extractions") or []:
                raw = _raw(
                    ex.get("relation", ""),
                    ex.get("arg0", ""),
                    list(ex.get("args") or []),
                    confidence=ex.get("confidence", 1.0),
                    context=ex.get("context"),
                )
                if ex.get("relation_pos"):
                    raw.update(
                        relation_pos=ex["relation_pos"],
                        arg0_pos=ex.get("arg0_pos") or [],
                        args_pos=ex.get("args_pos") or [[] for _ in raw["args"]],
                    )
                raws.append(raw)
            meta = rec.get("meta") or {}
            meta = json.loads(meta) if isinstance(meta, str) else meta
            by_lang.setdefault(lang, []).append(
                (rec["sentence"], rec.get("words"), raws, dict(meta, source=p.name, line=lineno))
            )
    parts = [
        build_records(v, language=lang, id_prefix=f"{p.stem}-{lang}", report=report)
        for lang, v in by_lang.items()
    ]
    return (
        datasets.concatenate_datasets(parts)
        if len(parts) > 1
        else parts[0]
        if parts
        else build_records([], language=language or "en", id_prefix=p.stem, report=report)
    )
