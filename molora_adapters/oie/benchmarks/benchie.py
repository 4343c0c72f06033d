"""BenchIE (Gashteovski et al., ACL 2022): fact-synset gold and exact slot-wise matching.

Reimplemented from the paper and the observable behaviour of the official tool (gkiril/benchie,
NEC non-commercial licence; none of its code was copied). The gold-file parse keeps the official
tool's reading of malformed lines, because it changes the numbers:

- blocks are split at blank lines and paired with the ``sent_id:`` lines in order;
- inside a block, a line containing ``Cluster`` starts a synset (``78-->Cluster 6:`` and
  ``14-> Cluster 6:`` are headers); any other non-triple line (the zh ``2 0 6 :``) is *not* a header:
  the following triples stay in the current synset and the stray line itself becomes a (never
  matching) pseudo-triple, read character by character;
- a block of a single line yields no synset.

Scoring: a prediction is a true positive when its stripped subject, relation and object equal a
realisation of some gold triple (optional ``[tokens]`` dropped in every combination). TP counts synsets
hit (a synset hit twice counts once), FP counts predictions on known sentences that hit nothing.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..formats.readers import iter_lines
from ..formats.rows import ExtractionRow, char_tokenize, normalize_key


@dataclass
class _GoldTriple:
    raw: tuple[str, ...]  # slots as written (brackets kept)
    alts: tuple[frozenset[str], ...]  # realisations per slot (subject, relation, object)
    alts_stripped: tuple[frozenset[str], ...]
    source: str = ""
    stray: bool = False  # a malformed non-triple line read as a pseudo-triple


@dataclass
class BenchieGold:
    """Parsed BenchIE gold: sentence ids in file order, their sentences and synsets."""

    sent_ids: list[str]
    sentences: dict[str, str]
    synsets: dict[str, list[list[_GoldTriple]]]
    source: str = ""
    key_to_id: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.key_to_id:
            for sid in self.sent_ids:
                self.key_to_id.setdefault(normalize_key(self.sentences[sid]), sid)

    @property
    def n_synsets(self) -> int:
        return sum(len(v) for v in self.synsets.values())


def _units(slot: str) -> list[str]:
    """Split a slot on single spaces, grouping ``[multi word]`` optional spans into one unit (official:
    a token with only ``]`` that does not close a span is dropped, as is an unclosed ``[``)."""
    tokens = slot.split(" ")
    units: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        opens, closes = "[" in tok, "]" in tok
        if opens == closes:
            units.append(tok)
        elif opens:
            for j in range(i + 1, len(tokens)):
                if "]" in tokens[j]:
                    units.append(" ".join(tokens[i : j + 1]))
                    i = j - 1  # official: resumes at the closing token itself, which is then dropped
                    break
        i += 1
    return units


def _realisations(units: list[str]) -> list[str]:
    optional = [k for k, u in enumerate(units) if "[" in u]
    variants = [units]
    for size in range(1, len(optional) + 1):
        for combo in itertools.combinations(optional, size):
            drop = set(combo)
            variants.append([u for k, u in enumerate(units) if k not in drop])
    return [" ".join(v).replace("[", "").replace("]", "") for v in variants]


def _make_triple(entry, source: str) -> _GoldTriple:
    slots = list(entry)  # a stray string is read character by character, as the official tool does
    if len(slots) < 3:
        raise ValueError(
            f"{source}: a BenchIE triple needs `subject --> relation --> object`, got {entry!r}."
        )
    units = [_units(s) for s in slots]
    alts = tuple(frozenset(_realisations(u)) for u in units[:3])
    stripped = tuple(frozenset(a.strip() for a in s) for s in alts)
    raw = tuple(slots[:3]) if isinstance(entry, list) else tuple(entry[:3])
    return _GoldTriple(raw, alts, stripped, source, stray=not isinstance(entry, list))


def parse_benchie_gold(path: str | os.PathLike) -> BenchieGold:
    """Parse a BenchIE gold-annotation file with the official tool's semantics (see module docstring).

    Args:
        path (`str` or `os.PathLike`): ``benchie_gold_annotations_<lang>.txt`` (``.gz`` accepted).
    """
    path_s = os.fspath(path)
    sent_ids: list[str] = []
    sentences: dict[str, str] = {}
    entries: list[tuple[object, str]] = []
    for n, raw_line in iter_lines(path):
        line = raw_line.strip()
        where = f"{path_s}:{n}"
        # official: sentences and annotations are collected in two independent passes
        if "sent_id:" in line:
            parts = line.split("\t")
            if len(parts) < 2:
                raise ValueError(f"{where}: expected `sent_id:N<TAB>sentence`.")
            sid = parts[0].split("sent_id:")[1]
            if sid in sentences:
                raise ValueError(f"{where}: duplicate sentence id `{sid}`.")
            sent_ids.append(sid)
            sentences[sid] = parts[1]
        if " --> " in line:
            entries.append((line.split(" --> "), where))
        elif "sent_id:" not in line:
            entries.append((line, where))
    blocks: list[list[tuple[object, str]]] = [[]]
    for e in entries:
        if e[0] == "":
            blocks.append([])
        else:
            blocks[-1].append(e)
    if not entries:
        blocks = []
    synsets: dict[str, list[list[_GoldTriple]]] = {}
    for sid, block in zip(sent_ids, blocks, strict=False):
        clusters: list[list[tuple[object, str]]] = []
        start = 0
        for i in range(1, len(block)):
            if "Cluster" in block[i][0]:
                clusters.append(block[start:i])
                start = i
            if i == len(block) - 1:
                clusters.append(block[start:])
        out = []
        for cluster in clusters:
            # official: headers are removed while iterating, so the element after a removed one is skipped
            items = list(cluster)
            idx = 0
            while idx < len(items):
                if "Cluster" in items[idx][0]:
                    target = items[idx][0]
                    first = next(k for k, it in enumerate(items) if it[0] == target)
                    del items[first]
                idx += 1
            out.append([_make_triple(entry, where) for entry, where in items])
        synsets[sid] = out
    return BenchieGold(sent_ids, sentences, synsets, path_s)


def benchie_score(gold: BenchieGold, rows: Iterable[ExtractionRow], *, tokenize_chars: bool = False) -> dict:
    """Precision, recall and F1 of ``rows`` on ``gold`` (official BenchIE slot match).

    A row is placed by its ``sent_id`` or, if it has none, by the normalised key of its sentence.

    Args:
        gold (`BenchieGold`): the parsed gold.
        rows (`Iterable[ExtractionRow]`): predictions; args beyond the second are folded into the object.
        tokenize_chars (`bool`, *optional*, defaults to `False`): re-tokenise predicted slots character by
            character (the zh gold is character-tokenised).
    """
    hits = {sid: [False] * len(v) for sid, v in gold.synsets.items()}
    fp = 0
    n_rows = 0
    unknown_rows = 0
    unknown_sentences: set[str] = set()
    for r in rows:
        n_rows += 1
        sid = r.sent_id if r.sent_id is not None else gold.key_to_id.get(normalize_key(r.sentence))
        if sid is None or sid not in gold.synsets:
            unknown_rows += 1
            unknown_sentences.add(r.sent_id if r.sent_id is not None else r.sentence)
            continue
        subj = r.args[0] if r.args else ""
        obj = " ".join(r.args[1:])
        slots = [subj, r.relation, obj]
        if tokenize_chars:
            slots = [char_tokenize(s) for s in slots]
        stripped = [s.strip() for s in slots]
        clusters = gold.synsets[sid]
        is_tp = any(all(stripped[k] in t.alts_stripped[k] for k in range(3)) for c in clusters for t in c)
        if not is_tp:
            fp += 1
            continue
        # official: the synset marked is the first one matching the *unstripped* slots, else the last one
        index = -1
        for ci, c in enumerate(clusters):
            if any(all(slots[k] in t.alts[k] for k in range(3)) for t in c):
                index = ci
                break
        hits[sid][index] = True
    tp = sum(sum(h) for h in hits.values())
    n_syn = gold.n_synsets
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_syn if n_syn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": None,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": n_syn - tp,
        "synsets": n_syn,
        "predictions": n_rows,
        "unknown_predictions": unknown_rows,
        "unknown_sentences": len(unknown_sentences),
    }


def benchie_records(gold: BenchieGold) -> list[tuple[str, str, list[tuple[Sequence[str], int]]]]:
    """``(sent_id, sentence, [(raw triple, synset index), ...])`` for the dataset loader (stray
    pseudo-triples are left out)."""
    out = []
    for sid in gold.sent_ids:
        triples = []
        for ci, c in enumerate(gold.synsets.get(sid, [])):
            for t in c:
                if not t.stray:
                    triples.append((t.raw, ci))
        out.append((sid, gold.sentences[sid], triples))
    return out
