"""OIE2016 ``train.oie`` and ``.oie.conll`` (Stanovsky & Dagan, 2016)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import datasets

from ...utils.io import open_text
from ..alignment import AlignmentReport
from ..registry import register_corpus_loader
from .records import _group, _key, _raw, _vendored, build_records


def _oie2016_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with open_text(path) as f:
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
    with open_text(path) as f:
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
    with open_text(path) as f:
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
