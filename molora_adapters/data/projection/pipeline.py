"""``project``: sentence pairing, word alignment and tuple projection, written as resumable shards.

The output directory has exactly the layout of ``molora annotate`` (see
:mod:`molora_adapters.data.shards`), so ``load_training_corpus("llm-augmented", path=OUT)`` and
``--llm-data OUT`` read it unchanged; ``load_training_corpus("projected", path=OUT)`` is the same loader
under this feature's name. An *item* is one (parallel unit, target language); shard ``k`` holds items
``[k * shard_size, (k + 1) * shard_size)`` of the deterministic item list, is written atomically and
recorded in ``manifest.json`` last, and a resumed run skips finished shards without encoding anything.

Every confidently paired sentence (a *pair*, see :mod:`.pairing`) becomes either an accepted record or a
reject with its reason, so per shard ``accepted + rejected == pairs``; the pairing counts themselves
(merges, skipped sentences, low-similarity 1:1 steps) are kept in the manifest under ``pairing``.
A pair is accepted when all of its English tuples project (``keep_partial=False``, the default: a
record missing a tuple would teach the tagger that the tuple is not there), or when at least one does
(``keep_partial=True``; the dropped tuples are listed in ``meta``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import shards
from ..llm.languages import parse_language_list
from ..schema import OIERecord
from .align import AlignMethod, EncodedSentence, EncoderAligner
from .leaks import EvaluationSentences, eval_overlap
from .pairing import PairingConfig, pair_sentences
from .project import ProjectionReject, RejectReason, project_tuple
from .sources import ParallelUnit

__all__ = ["ProjectConfig", "ProjectReport", "SilverExtractor", "project"]

PROJECTION_VERSION = "projection-v1"

SilverExtractor = Callable[[list[list[str]]], list[list[dict[str, Any]]]]
"""English words of each sentence -> tuples per sentence (dicts with ``arg0``, ``relation``, ``args``,
``confidence`` and ``*_pos`` word positions into those words)."""


@dataclass
class ProjectConfig:
    """Settings of a projection run.

    Args:
        languages (`list[str]` or `str`): target language codes.
        out_dir (`str`): output directory (layout of ``molora annotate``).
        shard_size (`int`, *optional*, defaults to 32): items (unit, language) per shard; fixed per ``out_dir``.
        limit (`int`, *optional*): use only the first ``limit`` units.
        encoder (`str`, *optional*, defaults to `"embedded:multilingual-e5-small"`): aligner encoder.
        layer (`int`, *optional*, defaults to 8): hidden-state index used for alignment.
        method (`str`, *optional*, defaults to `"itermax"`): ``argmax`` or ``itermax``.
        min_coverage (`float`, *optional*, defaults to 0.5): see :func:`~.project.project_tuple`.
        pairing (`PairingConfig`, *optional*): sentence-pairing thresholds.
        keep_partial (`bool`, *optional*, defaults to `False`): accept pairs where only some tuples project.
        silver_model (`str`, *optional*): name recorded for silver tuples (the extractor's model).
        leak_check (`bool`, *optional*, defaults to `True`): reject pairs whose English sentence or
            translation collides with an evaluation sentence (``eval_overlap``, see :mod:`.leaks`; the sentences come
            from the `evaluation_sentences` argument of :func:`project`).
            Turn off only to project an evaluation set itself (Re-OIE2016, for measuring).
        progress (`bool`, *optional*, defaults to `True`): show a tqdm progress bar.
    """

    languages: list[str] | str
    out_dir: str
    shard_size: int = 32
    limit: int | None = None
    encoder: str = "embedded:multilingual-e5-small"
    layer: int = 8
    method: str = "itermax"
    min_coverage: float = 0.5
    pairing: PairingConfig = field(default_factory=PairingConfig)
    keep_partial: bool = False
    silver_model: str | None = None
    leak_check: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.languages = parse_language_list(self.languages)  # also rejects `en`, the source language
        self.method = AlignMethod(self.method).value
        if isinstance(self.pairing, dict):  # from `dataclasses.asdict` / JSON
            self.pairing = PairingConfig(**self.pairing)
        if not isinstance(self.pairing, PairingConfig):
            raise TypeError(
                f"`pairing` must be a PairingConfig or a dict of its fields, got {self.pairing!r}."
            )
        if self.shard_size < 1:
            raise ValueError(f"`shard_size` must be >= 1, got {self.shard_size!r}.")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"`limit` must be >= 1 or None, got {self.limit!r}.")
        if not 0 < self.min_coverage <= 1:
            raise ValueError(f"`min_coverage` must be in (0, 1], got {self.min_coverage!r}.")

    def settings(self) -> dict[str, Any]:
        """What must not change between resumed runs (``run.json``)."""
        return {
            "projection": PROJECTION_VERSION,
            "languages": self.languages,
            "shard_size": self.shard_size,
            "limit": self.limit,
            "encoder": self.encoder,
            "layer": self.layer,
            "method": self.method,
            "min_coverage": self.min_coverage,
            "pairing": asdict(self.pairing),
            "keep_partial": self.keep_partial,
            "silver_model": self.silver_model,
            "leak_check": self.leak_check,
        }


@dataclass
class ProjectReport:
    """Counts over the whole output directory.

    ``pairs`` is the number of confident sentence pairs, ``accepted + sum(rejected.values()) == pairs``;
    ``pairing`` counts every pairing outcome (see :class:`~.pairing.PairOutcome`).
    """

    items: int = 0
    pairs: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    pairing: dict[str, int] = field(default_factory=dict)
    tuples: dict[str, int] = field(default_factory=dict)
    skipped_shards: int = 0

    def summary(self) -> str:
        return (
            f"items {self.items} (unit x language; shards reused {self.skipped_shards})\n"
            f"pairing: {shards.format_counts(self.pairing)}\n"
            f"pairs {self.pairs}: accepted {self.accepted}, rejected {sum(self.rejected.values())} "
            f"({shards.format_counts(self.rejected)})\n"
            f"tuples: {shards.format_counts(self.tuples)}"
        )


class _Projector:
    def __init__(
        self,
        config: ProjectConfig,
        aligner: EncoderAligner,
        extractor: SilverExtractor | None,
        source_name: str,
        evaluation_sentences: EvaluationSentences | None,
    ) -> None:
        self.config, self.aligner, self.extractor, self.source_name = config, aligner, extractor, source_name
        self.evaluation_sentences = evaluation_sentences
        self._unit_id: str | None = None
        self._unit_cache: tuple[list[EncodedSentence], list[list[dict[str, Any]]], str] | None = None

    def _english(self, unit: ParallelUnit) -> tuple[list[EncodedSentence], list[list[dict[str, Any]]], str]:
        # items are unit-major: the English side is encoded (and silver-annotated) once per unit
        if self._unit_id != unit.id:
            enc = self.aligner.encode(unit.source)
            if unit.gold is not None:
                tuples, kind = unit.gold, "gold"
            elif self.extractor is not None:
                tuples, kind = self.extractor([list(s.words) for s in unit.source]), "silver"
                if len(tuples) != len(unit.source):
                    raise ValueError(
                        f"the silver extractor returned {len(tuples)} lists for {len(unit.source)} sentences."
                    )
            else:
                raise ValueError(
                    f"unit {unit.id!r} has no English gold tuples and no silver extractor was given; pass a "
                    "trained English model (`--silver-model DIR`)."
                )
            self._unit_id, self._unit_cache = unit.id, (enc, tuples, kind)
        return self._unit_cache  # type: ignore[return-value]

    def process(
        self, unit: ParallelUnit, lang: str
    ) -> tuple[list[dict], list[dict], Counter[str], Counter[str]]:
        cfg = self.config
        src_enc, tuples, kind = self._english(unit)
        tgt_sents = unit.targets[lang]
        tgt_enc = self.aligner.encode(tgt_sents)
        import torch

        outcomes = pair_sentences(
            torch.stack([e.embedding for e in src_enc]) if src_enc else torch.zeros(0, 1),
            torch.stack([e.embedding for e in tgt_enc]) if tgt_enc else torch.zeros(0, 1),
            [len(s.text) for s in unit.source],
            [len(s.text) for s in tgt_sents],
            cfg.pairing,
        )
        pairing = Counter(o.kind for o in outcomes)
        tuple_counts: Counter[str] = Counter()
        accepted, rejects = [], []
        for o in outcomes:
            if o.kind != "pair":
                continue
            i, j = o.source[0], o.target[0]
            src, tgt = unit.source[i], tgt_sents[j]
            rid = f"{unit.id}:{i}:{lang}"
            alignment = self.aligner.align(src_enc[i], tgt_enc[j])
            meta: dict[str, Any] = {
                "source_id": f"{unit.id}:{i}",
                "source_corpus": self.source_name,
                "source_language": "en",
                "source_sentence": src.text,
                "target_index": j,
                "language": lang,
                "projection": PROJECTION_VERSION,
                "tuples_from": kind,
                "silver_model": cfg.silver_model if kind == "silver" else None,
                "alignment": {"encoder": cfg.encoder, "layer": cfg.layer, "method": cfg.method},
                "pair_similarity": round(o.similarity, 4),
                "pair_margin": None if math.isinf(o.margin) else round(o.margin, 4),
                "source_tuples": [],
                "tuple_scores": [],
                "dropped": [],
            }
            if self.evaluation_sentences is not None:
                hit = [
                    (x.text, x.language)
                    for x in (src, tgt)
                    if eval_overlap(x.text, x.language, self.evaluation_sentences)
                ]
                if hit:
                    detail = f"{hit[0][1]} sentence collides with an evaluation sentence: {hit[0][0][:80]!r}"
                    rejects.append(
                        {
                            "id": rid,
                            "reason": RejectReason.EVAL_OVERLAP.value,
                            "detail": detail,
                            "sentence": tgt.text,
                            "meta": meta,
                        }
                    )
                    continue
            kept = []
            for k, t in enumerate(tuples[i]):
                slots = [list(t.get("arg0_pos") or []), list(t.get("relation_pos") or [])] + [
                    list(p) for p in t.get("args_pos") or []
                ]
                meta["source_tuples"].append(
                    {
                        "arg0": t["arg0"],
                        "relation": t["relation"],
                        "args": list(t.get("args") or []),
                        "confidence": float(t.get("confidence", 1.0)),
                    }
                )
                try:
                    p = project_tuple(
                        src,
                        tgt,
                        alignment,
                        slots,
                        min_coverage=cfg.min_coverage,
                        confidence=float(t.get("confidence", 1.0)),
                    )
                except ProjectionReject as e:
                    tuple_counts[e.reason.value] += 1
                    meta["dropped"].append({"tuple": k, "reason": e.reason.value, "detail": e.detail})
                    continue
                tuple_counts["projected"] += 1
                kept.append(p)
                meta["tuple_scores"].append({"tuple": k, **p.meta()})
            if not tuples[i]:
                reason, detail = RejectReason.NO_SOURCE_TUPLES.value, "the English sentence has no tuples"
            elif meta["dropped"] and (not cfg.keep_partial or not kept):
                reason = meta["dropped"][0]["reason"]
                detail = "; ".join(f"tuple {d['tuple']}: {d['detail']}" for d in meta["dropped"])
            else:
                record = OIERecord(rid, tgt.text, list(tgt.words), lang, [p.tuple for p in kept], meta)
                accepted.append(record.to_dict())
                continue
            rejects.append(
                {"id": rid, "reason": reason, "detail": detail, "sentence": tgt.text, "meta": meta}
            )
        return accepted, rejects, pairing, tuple_counts


def project(
    units: Sequence[ParallelUnit],
    config: ProjectConfig,
    *,
    aligner: EncoderAligner | None = None,
    extractor: SilverExtractor | None = None,
    evaluation_sentences: EvaluationSentences | None = None,
    source_name: str = "",
) -> ProjectReport:
    """Project English tuples onto ``config.languages``; resumable (see module docstring).

    Args:
        units (`Sequence[ParallelUnit]`): the parallel source (see :mod:`.sources`).
        config (`ProjectConfig`): run settings.
        aligner (`EncoderAligner`, *optional*): built from ``config`` when omitted (and only if a shard
            needs it).
        extractor (`SilverExtractor`, *optional*): English model for units without gold tuples (e.g.
            :func:`molora_adapters.oie.projection.pipeline_extractor`).
        evaluation_sentences (`Callable[[str], Iterable[str]]`, *optional*): ``language -> evaluation sentences``
            for the leak check; required when ``config.leak_check`` (e.g.
            :func:`molora_adapters.oie.projection.evaluation_sentences`, the shipped gold sets).
        source_name (`str`, *optional*): source name, recorded in ``run.json`` and ``meta``.

    Returns:
        `ProjectReport`: counts over every shard of the output directory.
    """
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    units = list(units)[: config.limit] if config.limit else list(units)
    missing = sorted({lang for u in units for lang in config.languages if lang not in u.targets})
    if missing:
        raise ValueError(f"`languages` {missing} are missing from the source's units.")
    if config.leak_check and evaluation_sentences is None:
        raise ValueError(
            "`leak_check` needs `evaluation_sentences` (language -> evaluation sentences), e.g. "
            "`molora_adapters.oie.projection.evaluation_sentences`; or set `leak_check=False`."
        )
    with shards.run_lock(out, "molora project"):
        shards.check_run_file(out, {"source": source_name, **config.settings()})
        items = [(u, lang) for u in units for lang in config.languages]
        report = ProjectReport(items=len(items))
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(items), desc="project", unit="item", disable=not config.progress, dynamic_ncols=True
        )
        worker: _Projector | None = None
        try:
            for shard in shards.plan_shards(items, config.shard_size, lambda x: f"{x[0].id}:{x[1]}"):
                chunk = shard.items
                if shards.finished_shard(out, shard):
                    report.skipped_shards += 1
                    bar.update(len(chunk))
                    continue
                if worker is None:
                    if aligner is None:
                        aligner = EncoderAligner(config.encoder, layer=config.layer, method=config.method)
                    worker = _Projector(
                        config,
                        aligner,
                        extractor,
                        source_name,
                        evaluation_sentences if config.leak_check else None,
                    )
                acc, rej, pairing, tuples = [], [], Counter(), Counter()
                for u, lang in chunk:
                    a, r, p, t = worker.process(u, lang)
                    acc += a
                    rej += r
                    pairing.update(p)
                    tuples.update(t)
                    bar.update(1)
                _write_shard(out, shard, acc, rej, pairing, tuples)
        finally:
            bar.close()
        totals: Counter[str] = Counter()
        pairing_total: Counter[str] = Counter()
        tuple_total: Counter[str] = Counter()
        for e in shards.read_manifest(out)["shards"].values():
            totals.update(e["counts"])
            pairing_total.update(e.get("pairing", {}))
            tuple_total.update(e.get("tuples", {}))
        report.accepted = totals.pop("accepted", 0)
        report.rejected = dict(totals)
        report.pairs = report.accepted + sum(totals.values())
        report.pairing = dict(pairing_total)
        report.tuples = dict(tuple_total)
        shards.write_json(out / shards.STATS_FILE, asdict(report))
        return report


def _write_shard(
    out: Path,
    shard: shards.Shard,
    accepted: list[dict],
    rejects: list[dict],
    pairing: Counter,
    tuples: Counter,
) -> None:
    counts = Counter(["accepted"] * len(accepted) + [r["reason"] for r in rejects])
    shards.write_shard(
        out,
        shard,
        accepted,
        rejects,
        items=sum(counts.values()),
        counts=dict(counts),
        pairing=dict(pairing),
        tuples=dict(tuples),
        complete=True,
    )
