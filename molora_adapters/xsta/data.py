"""QA data for X-STA: the vendored XQuAD (12 languages), TyDiQA-GoldP and MLQA de copies, article-level splits,
windows with document stride, pair features, one-language-pair batches with length grouping, and answer
post-processing.

Vendored in ``molora_adapters/resources/`` (each folder's ``SOURCES.md`` gives source, commit and licence):
``xquad/`` is XQuAD (Artetxe et al., 2020, CC BY-SA 4.0) plus Romanian from LiRo; ``tydiqa_goldp/`` is TyDiQA-GoldP
v1.1 dev in 9 languages and English train (Clark et al., 2020, Apache-2.0); ``mlqa/`` is MLQA dev de-de (Lewis et
al., 2020, CC BY-SA 3.0).
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import XQUAD_LANGUAGES

logger = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
XQUAD_DIR = RESOURCES / "xquad"
TYDIQA_DIR = RESOURCES / "tydiqa_goldp"
MLQA_DIR = RESOURCES / "mlqa"

TYDIQA_LANGUAGES = ("en", "ar", "bn", "fi", "id", "ko", "ru", "sw", "te")
"""The 9 languages of TyDiQA-GoldP dev (the XTREME evaluation set)."""
_TYDIQA_NAMES = {
    "en": "english",
    "ar": "arabic",
    "bn": "bengali",
    "fi": "finnish",
    "id": "indonesian",
    "ko": "korean",
    "ru": "russian",
    "sw": "swahili",
    "te": "telugu",
}


@dataclass(frozen=True)
class QAExample:
    """One question: ``answers`` are ``(text, char_start)`` pairs; ``trainable`` is False when the first answer's
    span could not be found in the context (kept for scoring, left out of training features)."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]
    language: str
    trainable: bool = True


@dataclass
class XQuADLoadReport:
    """What the loader found: per language, questions read, spans re-aligned (answer text found at another offset)
    and spans not found (kept for scoring, never silently dropped)."""

    questions: dict[str, int] = field(default_factory=dict)
    realigned: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    span_not_found: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def summary(self) -> dict[str, Any]:
        return {
            "questions": dict(self.questions),
            "realigned": {k: len(v) for k, v in self.realigned.items() if v},
            "span_not_found": {k: list(v) for k, v in self.span_not_found.items() if v},
        }


def _read_json(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def parse_squad(data: dict, language: str, report: XQuADLoadReport, strict: bool = False) -> list[QAExample]:
    """SQuAD v1.1 JSON -> examples, checking every answer span against its context.

    Args:
        data (`dict`): ``{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}``.
        language (`str`): the language code recorded on each example.
        report (`XQuADLoadReport`): receives the counts.
        strict (`bool`, *optional*, defaults to `False`): raise on an answer not found in its context.
    """
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"Not SQuAD v1.1 JSON for `{language}`: expected a top-level `data` list.")
    out = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                answers, trainable = [], True
                for i, ans in enumerate(qa["answers"]):
                    text, start = ans["text"], int(ans["answer_start"])
                    if context[start : start + len(text)] != text:
                        found = context.find(text)
                        if found >= 0:
                            report.realigned[language].append(qa["id"])
                            start = found
                        elif i == 0:
                            if strict:
                                raise ValueError(
                                    f"Question `{qa['id']}` ({language}): answer {text!r} is not in its context."
                                )
                            report.span_not_found[language].append(qa["id"])
                            trainable = False
                    answers.append((text, start))
                if not answers:
                    raise ValueError(
                        f"Question `{qa['id']}` ({language}) has no answer; SQuAD v1.1 needs one."
                    )
                out.append(
                    QAExample(
                        qa["id"],
                        article["title"],
                        context,
                        qa["question"],
                        tuple(answers),
                        language,
                        trainable,
                    )
                )
    report.questions[language] = len(out)
    return out


def load_xquad(
    languages: Sequence[str] | None = None, path: str | Path | None = None, strict: bool = False
) -> tuple[dict[str, list[QAExample]], XQuADLoadReport]:
    """Load XQuAD (the vendored copy by default): ``({language: examples}, report)``.

    Args:
        languages (`Sequence[str]`, *optional*): codes to load; defaults to all 12.
        path (`str`, *optional*): a directory of ``xquad.<lang>.json[.gz]`` files instead of the vendored copy.
        strict (`bool`, *optional*, defaults to `False`): raise on an answer span missing from its context.
    """
    languages = list(languages or XQUAD_LANGUAGES)
    root = Path(path) if path is not None else XQUAD_DIR
    report = XQuADLoadReport()
    out = {}
    for lang in languages:
        files = [root / f"xquad.{lang}.json.gz", root / f"xquad.{lang}.json"]
        file = next((f for f in files if f.is_file()), None)
        if file is None:
            raise FileNotFoundError(
                f"No XQuAD file for language `{lang}` in {root} (expected {files[0].name})."
            )
        out[lang] = parse_squad(_read_json(file), lang, report, strict=strict)
    missing = report.summary()["span_not_found"]
    if missing:
        logger.warning("XQuAD answers not found in their context (kept for scoring only): %s", missing)
    return out, report


def load_tydiqa(
    split: str = "dev",
    languages: Sequence[str] | None = None,
    path: str | Path | None = None,
    strict: bool = False,
) -> tuple[dict[str, list[QAExample]], XQuADLoadReport]:
    """Load TyDiQA-GoldP v1.1 (the vendored copy by default): ``({language: examples}, report)``.

    Args:
        split (`str`, *optional*, defaults to `"dev"`): ``"dev"`` (9 languages) or ``"train"`` (English only is
            vendored).
        languages (`Sequence[str]`, *optional*): codes to load (see ``TYDIQA_LANGUAGES``); defaults to all of the
            split's vendored languages.
        path (`str`, *optional*): a directory of ``<language>_tydiqa_<split>.json[.gz]`` files instead.
        strict (`bool`, *optional*, defaults to `False`): raise on an answer span missing from its context.
    """
    if split not in ("dev", "train"):
        raise ValueError(f"`split` must be 'dev' or 'train', got {split!r}.")
    default = TYDIQA_LANGUAGES if split == "dev" else ("en",)
    languages = list(languages or default)
    bad = [lang for lang in languages if lang not in _TYDIQA_NAMES]
    if bad:
        raise ValueError(
            f"Unknown TyDiQA-GoldP language codes {bad}; expected codes from {list(TYDIQA_LANGUAGES)}."
        )
    root = Path(path) if path is not None else TYDIQA_DIR
    report = XQuADLoadReport()
    out = {}
    for lang in languages:
        stem = f"{_TYDIQA_NAMES[lang]}_tydiqa_{split}.json"
        file = next((f for f in (root / f"{stem}.gz", root / stem) if f.is_file()), None)
        if file is None:
            raise FileNotFoundError(
                f"No TyDiQA-GoldP {split} file for language `{lang}` in {root} (expected {stem}.gz)."
            )
        out[lang] = parse_squad(_read_json(file), lang, report, strict=strict)
    return out, report


def load_mlqa_de(
    path: str | Path | None = None, strict: bool = False
) -> tuple[list[QAExample], XQuADLoadReport]:
    """Load MLQA dev de-de (German context and question; the vendored copy by default): ``(examples, report)``.

    Args:
        path (`str`, *optional*): a ``mlqa_dev_de_de.json[.gz]`` file instead of the vendored copy.
        strict (`bool`, *optional*, defaults to `False`): raise on an answer span missing from its context.
    """
    file = Path(path) if path is not None else MLQA_DIR / "mlqa_dev_de_de.json.gz"
    if not file.is_file():
        raise FileNotFoundError(f"MLQA file {file} not found (expected SQuAD v1.1 JSON, optionally gzipped).")
    report = XQuADLoadReport()
    return parse_squad(_read_json(file), "de", report, strict=strict), report


def paragraph_overlap(a: Sequence[QAExample], b: Sequence[QAExample], ngram: int = 13) -> dict[str, Any]:
    """Paragraph overlap between two QA sets (a train/test contamination check).

    Counts the distinct paragraphs (contexts) of ``a`` that also occur in ``b`` exactly (case and punctuation
    ignored), that share at least one word ``ngram``-gram with a paragraph of ``b`` (the GPT-3 paper's 13-gram
    check), and the article titles the two sets share.

    Returns:
        `dict`: ``paragraphs_a``, ``paragraphs_b``, ``exact``, ``ngram`` (paragraphs of ``a`` with a shared
        ``ngram``-gram), ``shared_titles`` (sorted, lower case) and ``overlapping_ids`` (sorted ids of the questions
        of ``a`` in an overlapping paragraph or a shared article: drop these from training data).
    """

    def words(text: str) -> tuple[str, ...]:
        return tuple(re.findall(r"\w+", text.lower()))

    def grams(w: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {w[i : i + ngram] for i in range(len(w) - ngram + 1)}

    ctx_a = {words(e.context) for e in a}
    ctx_b = {words(e.context) for e in b}
    grams_b = set().union(*(grams(w) for w in ctx_b)) if ctx_b else set()
    with_gram = {w for w in ctx_a if not grams(w).isdisjoint(grams_b)}
    titles = {e.title.strip().lower() for e in a if e.title.strip()} & {e.title.strip().lower() for e in b}
    flagged = [
        e.id
        for e in a
        if e.title.strip().lower() in titles or (w := words(e.context)) in ctx_b or w in with_gram
    ]
    return {
        "paragraphs_a": len(ctx_a),
        "paragraphs_b": len(ctx_b),
        "exact": len(ctx_a & ctx_b),
        "ngram": len(with_gram),
        "shared_titles": sorted(titles),
        "overlapping_ids": sorted(flagged),
    }


def split_articles(
    titles: Sequence[str], n_folds: int = 4, fold: int = 0, seed: int = 0
) -> tuple[list[str], list[str]]:
    """An article-level split: ``(train_titles, test_titles)``, fold ``fold`` of ``n_folds`` held out.

    Questions of one paragraph never straddle the split. The order of ``titles`` does not matter.
    """
    unique = sorted(set(titles))
    if not 2 <= n_folds <= len(unique):
        raise ValueError(f"`n_folds` must be in [2, {len(unique)}], got {n_folds}.")
    if not 0 <= fold < n_folds:
        raise ValueError(f"`fold` must be in [0, {n_folds - 1}], got {fold}.")
    random.Random(seed).shuffle(unique)
    test = unique[fold::n_folds]
    held = set(test)
    return [t for t in unique if t not in held], test


def _cut_questions(tokenizer, questions: list[str], max_query_length: int) -> list[str]:
    """Questions cut to at most ``max_query_length`` tokens (at a token boundary of the original text)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for q, offsets in zip(questions, enc["offset_mapping"], strict=True):
        out.append(q[: offsets[max_query_length - 1][1]] if len(offsets) > max_query_length else q)
    return out


def build_features(
    tokenizer,
    examples: Sequence[QAExample],
    max_length: int = 384,
    doc_stride: int = 128,
    train: bool = True,
    max_query_length: int = 64,
) -> list[dict[str, Any]]:
    """Tokenise examples into windows (question + a stretch of context, ``doc_stride`` tokens of overlap).

    Each feature holds ``input_ids``, ``attention_mask``, ``example_id``, ``window``, ``language``, ``span`` (the
    window's stretch of context as fractions ``(start, end)`` of the context's length) and either
    ``start_positions`` / ``end_positions`` (``train=True``; 0 = the first token when the answer is outside the
    window, SQuAD convention; untrainable examples are skipped) or ``offsets`` (character span of each context token,
    ``None`` elsewhere) for post-processing.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("`tokenizer` must be a fast tokenizer (offset mappings are needed).")
    if max_query_length + doc_stride + 4 > max_length:
        raise ValueError(
            f"`max_query_length` ({max_query_length}) + `doc_stride` ({doc_stride}) + 4 special tokens must fit in "
            f"`max_length` ({max_length}); lower the stride or the query length."
        )
    examples = [e for e in examples if e.trainable or not train]
    if not examples:
        return []
    pad_right = tokenizer.padding_side == "right"
    questions = _cut_questions(tokenizer, [e.question.lstrip() for e in examples], max_query_length)
    enc = tokenizer(
        questions if pad_right else [e.context for e in examples],
        [e.context for e in examples] if pad_right else questions,
        truncation="only_second" if pad_right else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    context_index = 1 if pad_right else 0
    features, window_of = [], defaultdict(int)
    for i, ids in enumerate(enc["input_ids"]):
        ex = examples[enc["overflow_to_sample_mapping"][i]]
        seq_ids = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        feat = {
            "input_ids": ids,
            "attention_mask": enc["attention_mask"][i],
            "example_id": ex.id,
            "window": window_of[ex.id],
            "language": ex.language,
        }
        window_of[ex.id] += 1
        ctx = [k for k, s in enumerate(seq_ids) if s == context_index]
        # the window's stretch of context as fractions of the context's length, to align windows across languages
        n_chars = max(1, len(ex.context))
        feat["span"] = (offsets[ctx[0]][0] / n_chars, offsets[ctx[-1]][1] / n_chars) if ctx else (0.0, 0.0)
        if train:
            text, start_char = ex.answers[0]
            end_char = start_char + len(text)
            start_tok = end_tok = 0
            if ctx and offsets[ctx[0]][0] <= start_char and offsets[ctx[-1]][1] >= end_char:
                start_tok = next(k for k in ctx if offsets[k][1] > start_char)
                end_tok = next(k for k in reversed(ctx) if offsets[k][0] < end_char)
            feat["start_positions"], feat["end_positions"] = start_tok, end_tok
        else:
            feat["offsets"] = [
                tuple(o) if s == context_index else None for o, s in zip(offsets, seq_ids, strict=True)
            ]
        features.append(feat)
    return features


def no_answer_fraction(features: Sequence[dict[str, Any]]) -> float:
    """Fraction of training windows whose answer lies outside the window (labelled with the first token)."""
    if not features:
        return 0.0
    return sum(f["start_positions"] == 0 and f["end_positions"] == 0 for f in features) / len(features)


def cap_no_answer(
    features: Sequence[dict[str, Any]], max_fraction: float, seed: int = 0
) -> list[dict[str, Any]]:
    """Training windows with at most ``max_fraction`` of no-answer windows: all answer-bearing windows are kept, and
    a seeded random subset of the no-answer ones (order preserved). ``max_fraction >= 1`` keeps everything.

    Short windows over long contexts label most windows with the first token (the answer is elsewhere); capping
    their share keeps the span loss about answers, as 384-token windows over SQuAD-length paragraphs do.
    """
    if not 0.0 <= max_fraction:
        raise ValueError(f"`max_fraction` must be >= 0, got {max_fraction!r}.")
    empty = [i for i, f in enumerate(features) if f["start_positions"] == 0 and f["end_positions"] == 0]
    n_answer = len(features) - len(empty)
    if max_fraction >= 1.0:
        return list(features)
    keep_empty = min(len(empty), int(max_fraction * n_answer / (1.0 - max_fraction)))
    kept = set(random.Random(seed).sample(empty, keep_empty))
    drop = set(empty) - kept
    return [f for i, f in enumerate(features) if i not in drop]


def _aligned_window(windows: Sequence[dict[str, Any]], feat: dict[str, Any]) -> dict[str, Any]:
    """The source window covering the same stretch of the (parallel) context as target window ``feat``.

    Windows of two languages cover different fractions of the context (a translation tokenises into more or fewer
    tokens), so window ``k`` of one is not window ``k`` of the other: pick the source window whose context span,
    as fractions of the context's length, overlaps ``feat``'s most (ties: the nearest centre, then the lower index).
    Features without ``span`` fall back to the same index, clipped to the source's window count.
    """
    if "span" not in feat or any("span" not in w for w in windows):
        return windows[min(feat["window"], len(windows) - 1)]
    t0, t1 = feat["span"]

    def key(item: tuple[int, dict[str, Any]]) -> tuple[float, float, int]:
        k, w = item
        s0, s1 = w["span"]
        return (-max(0.0, min(s1, t1) - max(s0, t0)), abs((s0 + s1) - (t0 + t1)), k)

    return min(enumerate(windows), key=key)[1]


def build_pair_features(
    source: Sequence[dict[str, Any]], target: Sequence[dict[str, Any]]
) -> list[dict[str, dict[str, Any]]]:
    """Pair each target window with the source window of the same question that covers the same stretch of the
    context (see :func:`_aligned_window`): ``[{"source": feature, "target": feature}]``. Questions missing on either
    side are skipped."""
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for feat in source:
        by_id[feat["example_id"]].append(feat)
    pairs = []
    for feat in target:
        windows = by_id.get(feat["example_id"])
        if windows:
            pairs.append({"source": _aligned_window(windows, feat), "target": feat})
    return pairs


def _pair_key(item: dict[str, Any]) -> tuple[str, str]:
    if "source" in item:
        return item["source"]["language"], item["target"]["language"]
    return item["language"], item["language"]


def _item_length(item: dict[str, Any]) -> int:
    if "source" in item:
        return max(len(item["source"]["input_ids"]), len(item["target"]["input_ids"]))
    return len(item["input_ids"])


class PairBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of ``batch_size`` items, every batch from one language pair, with length grouping.

    Within each pair, items are shuffled, cut into mega-batches of ``50 * batch_size`` and sorted by length inside
    each mega-batch (transformers' ``LengthGroupedSampler`` scheme), so that dynamic padding wastes little; batch
    order is shuffled across pairs. Deterministic for a given ``seed`` and epoch (:meth:`set_epoch`).

    Args:
        items (`Sequence[dict]`): pair items (``{"source", "target"}``) or single features (with ``language``).
        batch_size (`int`): items per batch (pairs for paired data: the model sees ``2 * batch_size`` rows).
        seed (`int`, *optional*, defaults to 0): shuffling seed.
        group_by_length (`bool`, *optional*, defaults to `True`): sort by length inside mega-batches.
        drop_last (`bool`, *optional*, defaults to `False`): drop each pair's last incomplete batch.
    """

    def __init__(
        self,
        items: Sequence[dict[str, Any]],
        batch_size: int,
        seed: int = 0,
        group_by_length: bool = True,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        self.batch_size, self.seed, self.group_by_length, self.drop_last = (
            batch_size,
            seed,
            group_by_length,
            drop_last,
        )
        self.groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            self.groups[_pair_key(item)].append(i)
        self.lengths = [_item_length(item) for item in items]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        batches = []
        for key in sorted(self.groups):
            idx = list(self.groups[key])
            rng.shuffle(idx)
            if self.group_by_length:
                mega = 50 * self.batch_size
                idx = [
                    j
                    for s in range(0, len(idx), mega)
                    for j in sorted(idx[s : s + mega], key=lambda k: -self.lengths[k])
                ]
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        n = 0
        for idx in self.groups.values():
            n += len(idx) // self.batch_size if self.drop_last else -(-len(idx) // self.batch_size)
        return n


def make_pair_batch(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Stack two padded batches (same keys, tensors ``(B, L)``) into one pair batch ``(2B, L)`` with
    ``xsta_paired=True``; ``language_ids`` lists are concatenated.

    Raises ``ValueError`` when the halves differ in batch size or length (pad both to one length).
    """
    out: dict[str, Any] = {}
    for key, s in source.items():
        t = target.get(key)
        if isinstance(s, torch.Tensor):
            if not isinstance(t, torch.Tensor) or s.shape != t.shape:
                raise ValueError(
                    f"Pair halves differ in `{key}`: source {tuple(s.shape)}, target "
                    f"{tuple(t.shape) if isinstance(t, torch.Tensor) else t!r}; pad both halves to the same length "
                    "(`DataCollatorForXSTA` does)."
                )
            out[key] = torch.cat([s, t])
        elif isinstance(s, list):
            out[key] = [*s, *t]
    out["xsta_paired"] = True
    return out


@dataclass
class DataCollatorForXSTA:
    """Pads a list of items into one batch, dynamic padding to the longest row (optionally to a multiple).

    Pair items (``{"source", "target"}``) give a pair batch ``(2B, L)`` = ``[sources; targets]`` with
    ``language_ids`` and ``xsta_paired=True``, unless ``paired=False``: then the ``2B`` rows are ordinary examples
    (translate-train fine-tuning on the same data). Single features give a ``(B, L)`` batch.

    Args:
        tokenizer: provides ``pad_token_id``.
        paired (`bool`, *optional*, defaults to `True`): mark pair batches as paired.
        pad_to_multiple_of (`int`, *optional*): round the padded length up.
        language_ids (`bool`, *optional*, defaults to `True`): pass ``language_ids``.
    """

    tokenizer: Any
    paired: bool = True
    pad_to_multiple_of: int | None = None
    language_ids: bool = True

    def _pad(self, features: list[dict[str, Any]], length: int) -> dict[str, Any]:
        pad_id = self.tokenizer.pad_token_id
        ids = np.full((len(features), length), pad_id, dtype=np.int64)
        mask = np.zeros((len(features), length), dtype=np.int64)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n], mask[i, :n] = f["input_ids"], 1
        batch: dict[str, Any] = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if all("start_positions" in f for f in features):
            batch["start_positions"] = torch.tensor([f["start_positions"] for f in features])
            batch["end_positions"] = torch.tensor([f["end_positions"] for f in features])
        if self.language_ids:
            batch["language_ids"] = [f["language"] for f in features]
        return batch

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        if not items:
            raise ValueError("Cannot collate an empty batch.")
        paired = "source" in items[0]
        rows = [it["source"] for it in items] + [it["target"] for it in items] if paired else list(items)
        length = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = self._pad(rows, length)
        if paired and self.paired:
            pair_batch_check(batch.get("language_ids"), len(rows))
            batch["xsta_paired"] = True
        return batch


def pair_batch_check(language_ids: list[str] | None, n_rows: int) -> None:
    """Validate a collated pair batch before it reaches the model (odd rows, mixed language pairs)."""
    from .layer import pair_languages

    if language_ids is not None:
        pair_languages(language_ids, n_rows)


def postprocess_predictions(
    features: Sequence[dict[str, Any]],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    contexts: dict[str, str] | None = None,
) -> dict[str, str]:
    """Best answer text per example id: over all windows of an example, the context span ``(s, e)`` with
    ``s <= e < s + max_answer_length`` maximising ``start_logit[s] + end_logit[e]`` among the ``n_best`` starts and
    ends of each window.

    Args:
        features: eval features from :func:`build_features` (``train=False``), each with ``offsets``.
        start_logits / end_logits: one array of scores per feature (its unpadded length or longer).
        contexts (`dict[str, str]`): example id -> context text (required to cut the answer text).
    """
    if contexts is None:
        raise ValueError("`contexts` (example id -> context) is needed to cut answer texts.")
    best: dict[str, tuple[float, str]] = {}
    for feat, s_log, e_log in zip(features, start_logits, end_logits, strict=True):
        offsets = feat["offsets"]
        n = len(offsets)
        s_log, e_log = np.asarray(s_log[:n], dtype=np.float64), np.asarray(e_log[:n], dtype=np.float64)
        valid = np.array([o is not None for o in offsets])
        if not valid.any():
            continue
        s_masked = np.where(valid, s_log, -np.inf)
        e_masked = np.where(valid, e_log, -np.inf)
        starts = np.argsort(-s_masked)[:n_best]
        ends = np.argsort(-e_masked)[:n_best]
        context = contexts[feat["example_id"]]
        for s in starts:
            if not valid[s]:
                continue
            for e in ends:
                if not valid[e] or e < s or e - s + 1 > max_answer_length:
                    continue
                score = s_log[s] + e_log[e]
                prev = best.get(feat["example_id"])
                if prev is None or score > prev[0]:
                    best[feat["example_id"]] = (score, context[offsets[s][0] : offsets[e][1]].strip())
    return {k: v[1] for k, v in best.items()}
