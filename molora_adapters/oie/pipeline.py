"""``OIEPipeline``: sentences in, typed :class:`~molora_adapters.oie.extraction.Extraction` objects out.

It follows the transformers pipeline contract (``preprocess`` -> ``_forward`` -> ``postprocess``; only
``_forward`` touches the device) without subclassing ``transformers.Pipeline``, whose batching cannot fan
one sentence out into several chunks and several predicates.

Steps for every sentence:

1. ``preprocess``: split into words (:func:`~molora_adapters.data.alignment.split_words`; characters for
   zh / ja) and tokenise. A sentence longer than the encoder's ``max_length`` sub-words is **split into
   consecutive word chunks** that each fit (a warning says so); tuples are then extracted within chunks and
   their positions refer to the whole sentence. Nothing is cut silently: a single word longer than a chunk
   is the only thing ever truncated, and it is warned about too.
2. ``_forward``: encode once, tag predicates, then run the argument tagger once per predicate on the cached
   encoder states. At most ``max_predicates_per_chunk`` predicates (default
   :data:`DEFAULT_MAX_PREDICATES_PER_CHUNK`) get an argument pass per chunk, the most confident ones; when a
   chunk has more, a :class:`PredicateCapWarning` names the sentence. So the cost of a sentence is bounded
   by its length (chunks x cap argument passes), whatever the head predicts: an untrained head on one hostile
   line of 3,000 repeated words would otherwise run an argument pass per word.
3. ``postprocess``: word-level tags -> repaired spans -> :class:`Extraction` with a confidence (see
   :mod:`molora_adapters.oie.decoding`).

Empty and whitespace-only sentences have no words and give no extractions (documented skip).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.alignment import split_words
from .decoding import (
    CONFIDENCE_MODES,
    SPAN_STRATEGIES,
    ConfidenceMode,
    SpanStrategy,
    build_extraction,
    decode_predicates,
)
from .extraction import Extraction
from .features import encode_words
from .heads import OIEHead
from .labels import ARG_LABELS, IGNORE_INDEX, PRED_LABELS

logger = logging.getLogger(__name__)


DEFAULT_MAX_PREDICATES_PER_CHUNK = 32
"""Predicates per encoder chunk that get an argument pass (real sentences have far fewer)."""


class SentenceWarning(UserWarning):
    """A warning about one input sentence; ``sentence_index`` is its index in the ``extract`` call."""

    def __init__(self, message: str, sentence_index: int) -> None:
        super().__init__(message)
        self.sentence_index = sentence_index


class LongSentenceWarning(SentenceWarning):
    """A sentence did not fit the encoder and was split into chunks (or a word was truncated)."""


class PredicateCapWarning(SentenceWarning):
    """A chunk had more predicates than ``max_predicates_per_chunk``; only the most confident were kept."""


@dataclass
class Chunk:
    """One encoder input: a run of words ``[word_start, word_start + len(word_ids))`` of one sentence."""

    sentence_index: int
    word_start: int
    input_ids: list[int]
    word_ids: list[int | None]  # sub-word -> word index within the chunk
    n_words: int
    language: str | None = None  # passed to the model as `language_ids` (language-routed mixtures)


@dataclass
class ChunkResult:
    """What ``_forward`` returns for one chunk (CPU tensors and lists)."""

    chunk: Chunk
    pred_tags: list[str]  # word level
    pred_probs: list[float]
    predicates: list[list[int]] = field(default_factory=list)  # chunk-local word positions
    arg_tags: list[list[str]] = field(default_factory=list)
    arg_probs: list[list[float]] = field(default_factory=list)


def find_oie_head(model, head_name: str | None = None) -> str:
    """The OIE head to use: ``head_name``, else the active head if it is an OIE head, else the only one."""
    heads = getattr(model, "heads", None)
    if heads is None:
        raise TypeError(
            f"`model` ({type(model).__name__}) has no prediction heads; use an `adapters` AdapterModel."
        )
    oie = [n for n, h in heads.items() if isinstance(h, OIEHead)]
    if head_name is not None:
        if head_name not in oie:
            raise ValueError(f"`head_name`={head_name!r} is not an OIE head of the model; OIE heads: {oie}.")
        return head_name
    active = model.active_head
    if isinstance(active, str) and active in oie:
        return active
    if len(oie) == 1:
        return oie[0]
    raise ValueError(f"Pass `head_name`: the model has {len(oie)} OIE heads ({oie}) and none is active.")


class OIEPipeline:
    """Batched Multi2OIE extraction with an `adapters` model carrying an OIE head.

    Args:
        model: flex-head `adapters` model with an :class:`~molora_adapters.oie.heads.OIEHead` (and whatever
            adapters are active).
        tokenizer: the encoder's *fast* tokenizer.
        head_name (`str`, *optional*): which OIE head to use (see :func:`find_oie_head`).
        max_length (`int`, *optional*): sub-words per encoder input; defaults to the smaller of the
            tokenizer's ``model_max_length`` and the model's ``max_position_embeddings`` (minus 2 for
            RoBERTa-style position offsets), capped at 512.
        confidence_mode (`str`, *optional*, defaults to `"multi2oie"`): see :mod:`molora_adapters.oie.decoding`.
        min_args (`int`, *optional*, defaults to 1): tuples with fewer arguments are dropped.
        span_strategy (`str`, *optional*, defaults to `"merge"`): what to do with several spans of one
            argument role: ``"merge"`` them or keep the ``"best"`` (see
            :func:`~molora_adapters.oie.decoding.decode_arguments`).
        argument_batch_size (`int`, *optional*, defaults to 256): predicates per argument-tagger pass (a
            batch of sentences can contain many more predicates than sentences).
        max_predicates_per_chunk (`int`, *optional*, defaults to :data:`DEFAULT_MAX_PREDICATES_PER_CHUNK`):
            predicates of one encoder chunk that get an argument pass; when a chunk has more, the most
            confident (mean predicate-tag probability over their words) are kept and a
            :class:`PredicateCapWarning` names the sentence. Bounds the cost of a sentence by its length.
        progress (`bool`, *optional*): show a progress bar; by default only for more than 4 batches.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        head_name: str | None = None,
        max_length: int | None = None,
        confidence_mode: ConfidenceMode = "multi2oie",
        min_args: int = 1,
        span_strategy: SpanStrategy = "merge",
        argument_batch_size: int = 256,
        max_predicates_per_chunk: int = DEFAULT_MAX_PREDICATES_PER_CHUNK,
        progress: bool | None = None,
    ) -> None:
        if confidence_mode not in CONFIDENCE_MODES:
            raise ValueError(f"`confidence_mode` must be one of {CONFIDENCE_MODES}, got {confidence_mode!r}.")
        if min_args < 0:
            raise ValueError(f"`min_args` must be >= 0, got {min_args}.")
        if span_strategy not in SPAN_STRATEGIES:
            raise ValueError(f"`span_strategy` must be one of {SPAN_STRATEGIES}, got {span_strategy!r}.")
        self.span_strategy = span_strategy
        if argument_batch_size < 1:
            raise ValueError(f"`argument_batch_size` must be >= 1, got {argument_batch_size}.")
        self.argument_batch_size = argument_batch_size
        if not isinstance(max_predicates_per_chunk, int) or max_predicates_per_chunk < 1:
            raise ValueError(
                f"`max_predicates_per_chunk` must be an int >= 1, got {max_predicates_per_chunk!r}."
            )
        self.max_predicates_per_chunk = max_predicates_per_chunk
        self.model = model
        self.tokenizer = tokenizer
        self.head_name = find_oie_head(model, head_name)
        self.max_length = max_length or self._default_max_length()
        if self.max_length < tokenizer.num_special_tokens_to_add() + 1:
            raise ValueError(f"`max_length`={self.max_length} leaves no room for words.")
        self.confidence_mode = confidence_mode
        self.min_args = min_args
        self.progress = progress

    def _default_max_length(self) -> int:
        limits = [512, int(getattr(self.tokenizer, "model_max_length", 512) or 512)]
        mpe = getattr(self.model.config, "max_position_embeddings", None)
        if mpe:
            pad = getattr(self.model.config, "pad_token_id", None)
            offset = (
                pad + 1
                if self.model.config.model_type in ("roberta", "xlm-roberta") and pad is not None
                else 0
            )
            limits.append(int(mpe) - offset)
        return min(limits)

    # ----------------------------------------------------------------------------- preprocess (CPU)

    def preprocess(
        self, sentences: Sequence[str], languages: Sequence[str | None]
    ) -> tuple[list[list], list[Chunk]]:
        """Split sentences into words and encoder-sized chunks.

        Returns:
            ``(words, chunks)``: per sentence its ``(word, start, end)`` triples, and all chunks.
        """
        words = [split_words(s, lang) for s, lang in zip(sentences, languages, strict=True)]
        todo = [i for i, w in enumerate(words) if w]
        chunks: list[Chunk] = []
        if not todo:
            return words, chunks
        ids, wids = encode_words(self.tokenizer, [[w for w, _, _ in words[i]] for i in todo])
        for i, input_ids, word_ids in zip(todo, ids, wids, strict=True):
            if len(input_ids) <= self.max_length:
                chunks.append(Chunk(i, 0, input_ids, word_ids, len(words[i]), languages[i]))
            else:
                for chunk in self._split_long(i, [w for w, _, _ in words[i]], word_ids):
                    chunk.language = languages[i]
                    chunks.append(chunk)
        return words, chunks

    def _split_long(self, index: int, words: list[str], word_ids: list[int | None]) -> list[Chunk]:
        capacity = self.max_length - self.tokenizer.num_special_tokens_to_add()
        counts = [0] * len(words)
        for w in word_ids:
            if w is not None:
                counts[w] += 1
        spans, start, used = [], 0, 0
        for j, c in enumerate(counts):
            if used + c > capacity and j > start:
                spans.append((start, j))
                start, used = j, 0
            used += c
        spans.append((start, len(words)))
        too_long = [words[j][:20] for j, c in enumerate(counts) if c > capacity]
        warnings.warn(
            LongSentenceWarning(
                f"Sentence {index} has {sum(counts)} sub-words, more than `max_length`={self.max_length}; it "
                f"was split into {len(spans)} chunks of whole words and tuples are extracted within each chunk"
                + (f"; words truncated to fit: {too_long}" if too_long else "")
                + ".",
                index,
            ),
            stacklevel=4,
        )
        ids, wids = encode_words(
            self.tokenizer, [words[a:b] for a, b in spans], max_length=self.max_length, truncation=True
        )
        return [Chunk(index, a, i, w, b - a) for (a, b), i, w in zip(spans, ids, wids, strict=True)]

    # ----------------------------------------------------------------------------- forward (device)

    @torch.inference_mode()
    def _forward(self, chunks: Sequence[Chunk]) -> list[ChunkResult]:
        """Encode a batch of chunks, tag predicates, then tag arguments for every predicate found."""
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        length = max(len(c.input_ids) for c in chunks)
        input_ids = torch.full((len(chunks), length), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(chunks), length), dtype=torch.long)
        first = torch.full(
            (len(chunks), length), IGNORE_INDEX, dtype=torch.long
        )  # sub-word -> word (first piece)
        for b, c in enumerate(chunks):
            input_ids[b, : len(c.input_ids)] = torch.tensor(c.input_ids)
            attention_mask[b, : len(c.input_ids)] = 1
            prev = None
            for t, w in enumerate(c.word_ids):
                if w is not None and w != prev:
                    first[b, t] = w
                prev = w if w is not None else prev
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        extra = {}
        if all(c.language for c in chunks) and getattr(self.model, "adapter_mixtures", None):
            extra["language_ids"] = [c.language for c in chunks]  # for language-routed mixtures
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, head=self.head_name, return_dict=True, **extra
        )
        head: OIEHead = self.model.heads[self.head_name]
        pred_probs = out.predicate_logits.float().softmax(-1).cpu()  # (b, t, 3)

        results, plan = [], []  # plan: (batch row, predicate word positions)
        for b, c in enumerate(chunks):
            tags, probs = self._word_level(pred_probs[b], first[b], c.n_words, PRED_LABELS)
            res = ChunkResult(
                c, tags, probs, predicates=self._cap_predicates(c, decode_predicates(tags), probs)
            )
            results.append(res)
            plan.extend((b, p) for p in res.predicates)
        if not plan:
            return results
        # One argument-tagger row per predicate, on the cached encoder states, in slices.
        for start in range(0, len(plan), self.argument_batch_size):
            part = plan[start : start + self.argument_batch_size]
            rows = torch.tensor([b for b, _ in part], device=device)
            pred_mask = torch.zeros((len(part), length), dtype=torch.long)
            for r, (b, positions) in enumerate(part):
                wid = torch.tensor([w if w is not None else -1 for w in chunks[b].word_ids])
                pred_mask[r, : len(wid)] = torch.isin(wid, torch.tensor(positions)).long()
            seq = out.sequence_output.index_select(0, rows)  # (P, t, hidden)
            arg_logits = head.argument_logits(seq, pred_mask.to(device), attention_mask.index_select(0, rows))
            arg_probs = arg_logits.float().softmax(-1).cpu()  # (P, t, 9)
            for r, (b, _) in enumerate(part):
                tags, probs = self._word_level(arg_probs[r], first[b], chunks[b].n_words, ARG_LABELS)
                results[b].arg_tags.append(tags)
                results[b].arg_probs.append(probs)
        return results

    def _cap_predicates(
        self, chunk: Chunk, predicates: list[list[int]], probs: list[float]
    ) -> list[list[int]]:
        """At most ``max_predicates_per_chunk`` predicates: the most confident, in sentence order."""
        cap = self.max_predicates_per_chunk
        if len(predicates) <= cap:
            return predicates
        score = [sum(probs[w] for w in p) / len(p) for p in predicates]
        keep = sorted(sorted(range(len(predicates)), key=lambda k: -score[k])[:cap])
        i = chunk.sentence_index
        warnings.warn(
            PredicateCapWarning(
                f"Sentence {i}: a chunk of {chunk.n_words} words has {len(predicates)} predicates, more than "
                f"`max_predicates_per_chunk`={cap}; only the {cap} most confident get an argument pass.",
                i,
            ),
            stacklevel=5,
        )
        return [predicates[k] for k in keep]

    @staticmethod
    def _word_level(probs: torch.Tensor, first: torch.Tensor, n_words: int, labels: Sequence[str]):
        """Tags and probabilities of each word's first sub-word; words without sub-words get ``O``.

        Args:
            probs (`torch.Tensor` of shape `(seq_len, n_labels)`): tag probabilities of one row.
            first (`torch.Tensor` of shape `(seq_len,)`): word index at a word's first sub-word, else
                ``IGNORE_INDEX``.
            n_words (`int`): words in the row.
            labels (`Sequence[str]`): tag names.
        """
        tags, word_probs = ["O"] * n_words, [1.0] * n_words
        keep = (first != IGNORE_INDEX).nonzero().flatten()
        best_p, best = probs.index_select(0, keep).max(-1)
        for w, b, p in zip(first[keep].tolist(), best.tolist(), best_p.tolist(), strict=True):
            tags[w], word_probs[w] = labels[b], p
        return tags, word_probs

    # ----------------------------------------------------------------------------- postprocess (CPU)

    def postprocess(
        self,
        sentences: Sequence[str],
        words: Sequence[list],
        results: Sequence[ChunkResult],
        languages: Sequence[str | None],
    ) -> list[list[Extraction]]:
        """Chunk results -> per-sentence lists of :class:`Extraction`, positions relative to the sentence."""
        out: list[list[Extraction]] = [[] for _ in sentences]
        for res in results:
            c = res.chunk
            i = c.sentence_index
            offsets = [(s, e) for _, s, e in words[i]][c.word_start : c.word_start + c.n_words]
            for predicate, arg_tags, arg_probs in zip(
                res.predicates, res.arg_tags, res.arg_probs, strict=True
            ):
                ext = build_extraction(
                    sentences[i],
                    offsets,
                    predicate,
                    arg_tags,
                    pred_probs=res.pred_probs,
                    arg_probs=arg_probs,
                    confidence_mode=self.confidence_mode,
                    min_args=self.min_args,
                    span_strategy=self.span_strategy,
                    language=languages[i],
                    sentence_index=i,
                )
                if ext is None:
                    continue
                if c.word_start:
                    ext.relation_pos = [p + c.word_start for p in ext.relation_pos]
                    ext.arg0_pos = [p + c.word_start for p in ext.arg0_pos]
                    ext.args_pos = [[p + c.word_start for p in ps] for ps in ext.args_pos]
                out[i].append(ext)
        return out

    # ----------------------------------------------------------------------------- public API

    def extract(
        self,
        sentences: str | Sequence[str],
        language: str | Sequence[str | None] | None = None,
        batch_size: int = 32,
    ) -> list[Extraction] | list[list[Extraction]]:
        """Extract tuples from ``sentences``.

        Args:
            sentences (`str` or `Sequence[str]`): one sentence or many.
            language (`str` or `Sequence[str]`, *optional*): language code(s); ``zh`` / ``ja`` split
                sentences into characters, anything else on whitespace.
            batch_size (`int`, *optional*, defaults to 32): encoder inputs per forward pass.

        Returns:
            For one sentence, its list of extractions; for a sequence, one list per sentence.
        """
        single = isinstance(sentences, str)
        sents = [sentences] if single else list(sentences)
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        bad = [i for i, s in enumerate(sents) if not isinstance(s, str)]
        if bad:
            raise TypeError(f"`sentences` must be strings; items {bad[:5]} are not.")
        langs = list(language) if isinstance(language, list | tuple) else [language] * len(sents)
        if len(langs) != len(sents):
            raise ValueError(f"`language` has {len(langs)} entries for {len(sents)} sentences.")
        words, chunks = self.preprocess(sents, langs)
        was_training = self.model.training
        self.model.eval()
        results: list[ChunkResult] = []
        try:
            batches = range(0, len(chunks), batch_size)
            show = self.progress if self.progress is not None else len(batches) > 4
            for start in tqdm(batches, desc="OIE extraction", unit="batch", disable=not show):
                results.extend(self._forward(chunks[start : start + batch_size]))
        finally:
            self.model.train(was_training)
        out = self.postprocess(sents, words, results, langs)
        return out[0] if single else out

    __call__ = extract

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        *,
        adapter: str | None = None,
        head_name: str | None = None,
        **kwargs: Any,
    ) -> OIEPipeline:
        """Load a model saved with ``model.save_pretrained`` (tokenizer files in the same directory).

        Args:
            model_name_or_path (`str`): directory or model id (``embedded:...`` ids are resolved).
            adapter (`str`, *optional*): an adapter directory to load with its head and activate.
            head_name (`str`, *optional*): OIE head to use.
            **kwargs: passed to :class:`OIEPipeline`.
        """
        from adapters import AutoAdapterModel
        from transformers import AutoTokenizer

        from ..models import resolve_model_name_or_path

        path = resolve_model_name_or_path(model_name_or_path)
        model = AutoAdapterModel.from_pretrained(path)  # saved OIE heads come back (the seam's head hook)
        model.eval()
        if adapter is not None:
            name = model.load_adapter(adapter, with_head=True)
            model.set_active_adapters(name)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, head_name=head_name, **kwargs)
