"""The two-stage annotation pipeline: translate, then annotate, validate, write shards.

:func:`annotate` walks the items (each English sentence × each target language) shard by shard.
Every LLM answer goes through the :class:`~.cache.AnswerCache` first, so a resumed run re-asks
nothing it already has; every finished shard is written atomically and recorded in the manifest, so
a resumed run skips it entirely. Items whose request failed for good (``backend_error``) are not
cached and leave their shard marked incomplete: the next run retries exactly those.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...utils.text import unescape_ptb
from ..schema import OIERecord
from ..shards import (
    STATS_FILE,
    Shard,
    check_run_file,
    finished_shard,
    format_counts,
    plan_shards,
    read_manifest,
    run_lock,
    write_json,
    write_shard,
)
from .backends.base import BackendError, ChatBackend, FatalBackendError
from .cache import AnswerCache, CachedAnswer, cache_key
from .languages import get_language, parse_language_list
from .parsing import ParseError, parse_translation, parse_triples
from .prompts import PromptTemplate, format_triples, load_prompt
from .validation import RejectReason, ValidationError, align_triples, check_translation


def detokenize(text: str) -> str:
    """Undo PTB bracket escapes and spaces before punctuation (``"a , b -LRB- c -RRB-"`` -> ``"a, b (c)"``)."""
    text = unescape_ptb(text)
    text = re.sub(r"\s+([,.;:!?%)\]}])", r"\1", text)
    text = re.sub(r"([(\[{$])\s+", r"\1", text)
    text = re.sub(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    return " ".join(text.split())


@dataclass
class AnnotateConfig:
    """Settings of an annotation run.

    Args:
        languages (`list[str]` or `str`): target language codes (``"de,zh"`` or a list).
        out_dir (`str`): output directory (see ``shards.py`` for its layout).
        prompt (`str` or `PromptTemplate`, *optional*, defaults to `"mt4crossoie"`): template name or JSON file.
        limit (`int`, *optional*): use only the first ``limit`` source sentences with extractions.
        shard_size (`int`, *optional*, defaults to 256): items per shard; fixed for the life of ``out_dir``.
        cache_path (`str`, *optional*): answer cache; defaults to ``out_dir/cache.sqlite``.
        concurrency (`int`, *optional*, defaults to 4): items processed in parallel.
        temperature (`float`, *optional*, defaults to 0.0): sampling temperature.
        max_tokens_translate (`int`, *optional*, defaults to 512): answer budget of the translation stage.
        max_tokens_annotate (`int`, *optional*, defaults to 1024): answer budget of the annotation stage.
        price_prompt (`float`, *optional*, defaults to 0.0): price per million prompt tokens, for the cost line.
        price_completion (`float`, *optional*, defaults to 0.0): price per million completion tokens.
        progress (`bool`, *optional*, defaults to `True`): show a tqdm progress bar.
    """

    languages: list[str] | str
    out_dir: str
    prompt: str | PromptTemplate = "mt4crossoie"
    limit: int | None = None
    shard_size: int = 256
    cache_path: str | None = None
    concurrency: int = 4
    temperature: float = 0.0
    max_tokens_translate: int = 512
    max_tokens_annotate: int = 1024
    price_prompt: float = 0.0
    price_completion: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        self.languages = parse_language_list(self.languages)
        self.prompt = load_prompt(self.prompt)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"`limit` must be >= 1 or None, got {self.limit!r}.")
        for name in ("shard_size", "concurrency", "max_tokens_translate", "max_tokens_annotate"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)!r}.")
        for name in ("temperature", "price_prompt", "price_completion"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")


@dataclass
class Usage:
    """Request and token counts of one run (cache hits cost nothing)."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    saved_tokens: int = 0

    def cost(self, price_prompt: float, price_completion: float) -> float:
        return (self.prompt_tokens * price_prompt + self.completion_tokens * price_completion) / 1e6


@dataclass
class AnnotateReport:
    """What :func:`annotate` did.

    ``items``, ``accepted`` and ``rejected`` cover every shard of the output directory (including shards of
    earlier runs with a larger ``limit``); ``usage`` and ``cost`` cover this run only.
    """

    items: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    skipped_shards: int = 0
    incomplete_shards: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0

    def summary(self) -> str:
        u = self.usage
        return (
            f"items {self.items}: accepted {self.accepted}, rejected {sum(self.rejected.values())} "
            f"({format_counts(self.rejected)})\n"
            f"requests {u.requests} (cache hits {u.cache_hits}, shards reused {self.skipped_shards}); "
            f"tokens prompt {u.prompt_tokens} + completion {u.completion_tokens} "
            f"(saved by cache {u.saved_tokens}); cost {self.cost:.4f}"
            + (
                f"\n{self.incomplete_shards} shard(s) had backend errors: run again to retry them"
                if self.incomplete_shards
                else ""
            )
        )


@dataclass
class _Outcome:
    accepted: dict[str, Any] | None = None
    reject: dict[str, Any] | None = None


def source_items(source: Sequence[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """English records with at least one usable extraction (non-empty ``arg0`` and ``relation``)."""
    out = []
    seen: set[str] = set()
    for row in source:
        if str(row["id"]) in seen:
            raise ValueError(
                f"`source` has two records with id {row['id']!r}; ids must be unique because record ids "
                "are `<source id>:<language>`."
            )
        seen.add(str(row["id"]))
        exts = [
            e
            for e in row.get("extractions") or []
            if (e.get("arg0") or "").strip() and (e.get("relation") or "").strip()
        ]
        if not exts:
            continue
        out.append({"id": str(row["id"]), "sentence": row["sentence"], "extractions": exts})
        if limit is not None and len(out) >= limit:
            break
    return out


class _Annotator:
    def __init__(self, backend: ChatBackend, cache: AnswerCache, config: AnnotateConfig) -> None:
        self.backend, self.cache, self.config = backend, cache, config
        self.prompt: PromptTemplate = config.prompt  # type: ignore[assignment]
        self.usage = Usage()
        self.fatal: FatalBackendError | None = None
        self._lock = threading.Lock()
        self._key_locks: dict[str, tuple[threading.Lock, int]] = {}

    def _ask(self, stage: str, messages: list[dict[str, str]], sentence: str, lang: str, extra: str) -> str:
        key = cache_key(
            self.backend.name, self.backend.model, self.prompt.prompt_id, stage, sentence, lang, extra
        )
        if self.fatal is not None:
            raise self.fatal
        # one request per key even when two items share it (a sentence repeated in the source)
        with self._lock:
            key_lock, users = self._key_locks.get(key, (threading.Lock(), 0))
            self._key_locks[key] = (key_lock, users + 1)
        try:
            with key_lock:
                return self._ask_locked(key, stage, messages, sentence, lang)
        finally:
            with self._lock:
                key_lock, users = self._key_locks[key]
                if users == 1:
                    del self._key_locks[key]
                else:
                    self._key_locks[key] = (key_lock, users - 1)

    def _ask_locked(
        self, key: str, stage: str, messages: list[dict[str, str]], sentence: str, lang: str
    ) -> str:
        hit = self.cache.get(key)
        if hit is not None:
            with self._lock:
                self.usage.cache_hits += 1
                self.usage.saved_tokens += hit.prompt_tokens + hit.completion_tokens
            return hit.response
        max_tokens = (
            self.config.max_tokens_translate if stage == "translate" else self.config.max_tokens_annotate
        )
        resp = self.backend.chat(messages, max_tokens=max_tokens, temperature=self.config.temperature)
        self.cache.put(
            key,
            CachedAnswer(resp.text, resp.prompt_tokens, resp.completion_tokens),
            backend=self.backend.name,
            model=self.backend.model,
            prompt_id=self.prompt.prompt_id,
            stage=stage,
            language=lang,
            sentence=sentence,
        )
        with self._lock:
            self.usage.requests += 1
            self.usage.prompt_tokens += resp.prompt_tokens
            self.usage.completion_tokens += resp.completion_tokens
        return resp.text

    def process(self, item: dict[str, Any], lang: str) -> _Outcome:
        english = detokenize(item["sentence"])
        exts = [
            {
                "arg0": detokenize(e["arg0"]),
                "relation": detokenize(e["relation"]),
                "args": [detokenize(a) for a in e.get("args") or [] if a and a.strip()],
            }
            for e in item["extractions"]
        ]
        triples = format_triples(exts)
        name = get_language(lang).name
        meta: dict[str, Any] = {
            "source_id": item["id"],
            "source_language": "en",
            "source_sentence": english,
            "source_triples": triples,
            "language": lang,
            "backend": self.backend.name,
            "model": self.backend.model,
            "prompt_id": self.prompt.prompt_id,
            "responses": {},
        }
        rid = f"{item['id']}:{lang}"

        def reject(reason: RejectReason, detail: str) -> _Outcome:
            return _Outcome(reject={"id": rid, "reason": reason.value, "detail": detail, "meta": meta})

        try:
            raw = self._ask("translate", self.prompt.translate_messages(english, name), english, lang, "")
            meta["responses"]["translate"] = raw
            try:
                translation = parse_translation(raw)
            except ParseError as e:
                return reject(RejectReason.TRANSLATION_PARSE, str(e))
            meta["translation"] = translation
            check_translation(english, translation, lang)
            raw = self._ask(
                "annotate",
                self.prompt.annotate_messages(english, translation, triples, name),
                english,
                lang,
                json.dumps([translation, triples], ensure_ascii=False),
            )
            meta["responses"]["annotate"] = raw
            try:
                parsed = parse_triples(raw)
            except ParseError as e:
                return reject(RejectReason.ANNOTATION_PARSE, str(e))
            words, tuples = align_triples(translation, lang, parsed, [len(e["args"]) for e in exts])
        except ValidationError as e:
            return reject(e.reason, e.detail)
        except FatalBackendError as e:  # stops the run: other workers see it and stop too
            self.fatal = e
            raise
        except BackendError as e:
            return reject(RejectReason.BACKEND_ERROR, str(e))
        record = OIERecord(
            id=rid, sentence=translation, words=words, language=lang, extractions=tuples, meta=meta
        )
        return _Outcome(accepted=record.to_dict())


def annotate(
    source: Sequence[dict[str, Any]], backend: ChatBackend, config: AnnotateConfig, *, source_name: str = ""
) -> AnnotateReport:
    """Translate and annotate ``source`` into ``config.languages``; resumable (see module docstring).

    Args:
        source (`Sequence[dict]`): English records in the OIE schema (a `datasets.Dataset` works).
        backend (`ChatBackend`): the LLM.
        config (`AnnotateConfig`): run settings.
        source_name (`str`, *optional*): corpus name or path, recorded in ``run.json``.

    Returns:
        `AnnotateReport`: counts over the whole output directory, usage and cost of this run.
    """
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out, "molora annotate"):
        return _annotate(source, backend, config, out, source_name)


def _annotate(
    source: Sequence[dict[str, Any]],
    backend: ChatBackend,
    config: AnnotateConfig,
    out: Path,
    source_name: str,
) -> AnnotateReport:
    items = [(it, lang) for it in source_items(source, config.limit) for lang in config.languages]
    check_run_file(
        out,
        {
            "source": source_name,
            "languages": config.languages,
            "backend": backend.name,
            "model": backend.model,
            "prompt_id": config.prompt.prompt_id,
            "shard_size": config.shard_size,
            "limit": config.limit,
        },
    )
    cache = AnswerCache(config.cache_path or out / "cache.sqlite")
    worker = _Annotator(backend, cache, config)
    report = AnnotateReport(items=len(items))
    bar = _progress_bar(len(items), config.progress)
    counts: Counter[str] = Counter()
    pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="annotate")
    try:
        for shard in plan_shards(items, config.shard_size, lambda x: f"{x[0]['id']}:{x[1]}"):
            chunk = shard.items
            entry = finished_shard(out, shard)
            if entry:
                report.skipped_shards += 1
                counts.update(entry["counts"])
                bar.update(len(chunk))
                bar.set_postfix(_postfix(counts, worker.usage), refresh=False)
                continue
            futures = {pool.submit(worker.process, it, lang): k for k, (it, lang) in enumerate(chunk)}
            results: list[_Outcome | None] = [None] * len(chunk)
            for fut in as_completed(futures):
                o = fut.result()
                results[futures[fut]] = o
                counts["accepted" if o.accepted else o.reject["reason"]] += 1
                bar.update(1)
                bar.set_postfix(_postfix(counts, worker.usage), refresh=False)
            _write_shard(out, shard, results)  # type: ignore[arg-type]
    except BaseException:
        # Ctrl-C or a fatal backend error: drop queued items, let running ones store their answers.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
        cache.close()
    shards = read_manifest(out)["shards"].values()
    totals: Counter[str] = Counter()
    for e in shards:
        totals.update(e["counts"])
    report.items = sum(e["items"] for e in shards)
    report.accepted = totals.pop("accepted", 0)
    report.rejected = dict(totals)
    report.incomplete_shards = sum(not e["complete"] for e in shards)
    report.usage = worker.usage
    report.cost = worker.usage.cost(config.price_prompt, config.price_completion)
    write_json(out / STATS_FILE, {**asdict(report), "usage": asdict(report.usage)})
    return report


def _write_shard(out: Path, shard: Shard, results: list[_Outcome]) -> None:
    accepted = [o.accepted for o in results if o.accepted]
    rejects = [o.reject for o in results if o.reject]
    counts = Counter(["accepted"] * len(accepted) + [r["reason"] for r in rejects])
    complete = counts.get(RejectReason.BACKEND_ERROR.value, 0) == 0  # backend errors are retried on resume
    write_shard(out, shard, accepted, rejects, items=len(shard.items), counts=dict(counts), complete=complete)


def _postfix(counts: Counter, usage: Usage) -> dict[str, Any]:
    return {
        "ok": counts.get("accepted", 0),
        "rej": sum(v for k, v in counts.items() if k != "accepted"),
        "tok": usage.prompt_tokens + usage.completion_tokens,
    }


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="annotate", unit="item", disable=not enabled, dynamic_ncols=True)
