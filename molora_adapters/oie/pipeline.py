"""``OIEPipeline``: sentences in, typed :class:`~molora_adapters.oie.extraction.Extraction` objects out.

It follows the transformers pipeline contract (``preprocess`` -> ``_forward`` -> ``postprocess``; only
``_forward`` touches the device) without subclassing ``transformers.Pipeline``, whose batching cannot fan
one sentence out into several chunks and several predicates.

Steps for every sentence:

1. ``preprocess``: split into words (:func:`~molora_adapters.data.alignment.split_words`; characters for
   zh / ja) and tokenise (:func:`~molora_adapters.data.tokenization.tokenize_words`: scripts without spaces
   as unspaced text, sub-words mapped back to words through character offsets). A sentence longer than the encoder's ``max_length`` sub-words is **split into
   consecutive word chunks** that each fit (a warning says so); tuples are then extracted within chunks and
   their positions refer to the whole sentence. Nothing is cut silently: a single word longer than a chunk
   is the only thing ever truncated, and it is warned about too.
2. ``_forward``: encode once (float32, or bf16 autocast, see ``precision``), tag predicates, then run the
   argument tagger for all predicates of the batch on the cached encoder states. At most
   ``max_predicates_per_chunk`` predicates (default :data:`DEFAULT_MAX_PREDICATES_PER_CHUNK`) get an argument
   pass per chunk, the most confident ones; when a chunk has more, a :class:`PredicateCapWarning` names the
   sentence. So the cost of a sentence is bounded by its length (chunks x cap argument passes), whatever the
   head predicts: an untrained head on one hostile line of 3,000 repeated words would otherwise run an
   argument pass per word.
3. ``postprocess``: word-level tags -> repaired spans -> :class:`Extraction` with a confidence (see
   :mod:`molora_adapters.oie.decoding`).

Empty and whitespace-only sentences have no words and give no extractions (documented skip).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm.auto import tqdm

from ..data.alignment import split_words
from ..data.tokenization import tokenize_words, word_level_tags
from ..utils.precision import PRECISIONS, Precision, autocast, resolve_precision
from ..utils.quiet import inactive_adapters_once, warn_if_adapters_inactive
from .decoding import (
    CONFIDENCE_MODES,
    SPAN_STRATEGIES,
    ConfidenceMode,
    SpanStrategy,
    build_extraction,
    decode_predicates,
    fallback_predicate,
)
from .extraction import Extraction
from .heads import OIEHead
from .labels import ARG_LABELS, PRED_LABELS

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
    word_tokens: list[int] = field(default_factory=list)  # word -> sub-word its tag is read from (-1: none)


_PRED_BEGIN = PRED_LABELS.index("P-B")
DEFAULT_PREDICATE_FLOOR = 0.1
"""Default `OIEPipeline.predicate_floor`. On dev every floor from 0.02 to 0.3 ties with none for the shipped model
(its dev sets have almost no silent sentences; benchmarks/results/decoding_dev_shipped.json), so this stays a
conservative value: it rescues a silent sentence only when its best predicate is reasonably likely."""


def _word_begin_probs(pred_probs: torch.Tensor, word_tokens: torch.Tensor) -> torch.Tensor:
    """(b, w) probability of ``P-B`` at every word's sub-word (0 for words without one)."""
    begin = pred_probs[..., _PRED_BEGIN].gather(1, word_tokens.clamp(min=0))
    return begin.masked_fill(word_tokens < 0, 0.0)


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
            argument role, a name in :data:`~molora_adapters.oie.decoding.SPAN_STRATEGIES` (``"merge"``,
            ``"best"``, ``"nearest"``, ``"merge_near"``; see :func:`~molora_adapters.oie.decoding.decode_arguments`).
            The defaults of ``span_strategy`` and ``min_args`` were chosen on CaRB dev (see benchmarks/README.md).
        argument_batch_size (`int`, *optional*, defaults to 256): predicates per argument-tagger pass (a
            batch of sentences can contain many more predicates than sentences).
        precision (`str`, *optional*, defaults to `"auto"`): ``"bf16"`` runs the model under bf16 autocast,
            ``"fp32"`` in float32; ``"auto"`` picks bf16 on CPUs with native bf16 (``avx512_bf16`` / AMX) and on
            CUDA devices that support it, float32 elsewhere. On a 2-core AMX Xeon, bf16 extracts CaRB en test at
            107-126 sentences per second against 70 in float32, with the shipped model's dev F1 unchanged (CaRB en
            dev .538 both; see benchmarks/README.md); pass ``"fp32"`` for bit-stable float32 outputs.
        predicate_floor (`float`, *optional*, defaults to :data:`DEFAULT_PREDICATE_FLOOR`): when no word of an
            encoder chunk (a sentence, unless it is longer than ``max_length``) is tagged as a predicate, its most
            likely predicate-begin word is kept as a one-word predicate if that probability is at least this
            (see :func:`~molora_adapters.oie.decoding.fallback_predicate`); `None` turns the fallback off.
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
        precision: Precision = "auto",
        max_predicates_per_chunk: int = DEFAULT_MAX_PREDICATES_PER_CHUNK,
        predicate_floor: float | None = DEFAULT_PREDICATE_FLOOR,
        progress: bool | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
        self.precision = precision
        if confidence_mode not in CONFIDENCE_MODES:
            raise ValueError(f"`confidence_mode` must be one of {CONFIDENCE_MODES}, got {confidence_mode!r}.")
        if min_args < 0:
            raise ValueError(f"`min_args` must be >= 0, got {min_args}.")
        if span_strategy not in SPAN_STRATEGIES:
            raise ValueError(
                f"`span_strategy` must be one of {SPAN_STRATEGIES.names()}, got {span_strategy!r}."
            )
        self.span_strategy = span_strategy
        if argument_batch_size < 1:
            raise ValueError(f"`argument_batch_size` must be >= 1, got {argument_batch_size}.")
        self.argument_batch_size = argument_batch_size
        if not isinstance(max_predicates_per_chunk, int) or max_predicates_per_chunk < 1:
            raise ValueError(
                f"`max_predicates_per_chunk` must be an int >= 1, got {max_predicates_per_chunk!r}."
            )
        self.max_predicates_per_chunk = max_predicates_per_chunk
        if predicate_floor is not None and not 0.0 <= predicate_floor <= 1.0:
            raise ValueError(f"`predicate_floor` must be in [0, 1] or None, got {predicate_floor!r}.")
        self.predicate_floor = predicate_floor
        self.model = model
        self.tokenizer = tokenizer
        self.head_name = find_oie_head(model, head_name)
        warn_if_adapters_inactive(model, stacklevel=2)
        self.max_length = max_length or self._default_max_length()
        if self.max_length < tokenizer.num_special_tokens_to_add() + 1:
            raise ValueError(f"`max_length`={self.max_length} leaves no room for words.")
        self.confidence_mode = confidence_mode
        self.min_args = min_args
        self.progress = progress

    def decoding_config(self) -> dict[str, Any]:
        """The decoding options in use, for results files (``span_strategy``, ``min_args``, ``confidence_mode``,
        ``predicate_floor``)."""
        return {
            "span_strategy": self.span_strategy,
            "min_args": self.min_args,
            "confidence_mode": self.confidence_mode,
            "predicate_floor": self.predicate_floor,
        }

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
        enc = tokenize_words(
            self.tokenizer,
            [[w for w, _, _ in words[i]] for i in todo],
            languages=[languages[i] for i in todo],
            sentences=[sentences[i] for i in todo],
        )
        for j, i in enumerate(todo):
            if len(enc.input_ids[j]) <= self.max_length:
                chunks.append(
                    Chunk(
                        i,
                        0,
                        enc.input_ids[j],
                        enc.word_ids[j],
                        len(words[i]),
                        languages[i],
                        enc.word_tokens[j],
                    )
                )
            else:
                chunks.extend(self._split_long(i, sentences[i], words[i], enc.word_ids[j], languages[i]))
        return words, chunks

    def _split_long(
        self, index: int, sentence: str, words: list, word_ids: list[int | None], language: str | None
    ) -> list[Chunk]:
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
        too_long = [words[j][0][:20] for j, c in enumerate(counts) if c > capacity]
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
        enc = tokenize_words(
            self.tokenizer,
            [[w for w, _, _ in words[a:b]] for a, b in spans],
            languages=language,
            sentences=[sentence[words[a][1] : words[b - 1][2]] for a, b in spans],
            max_length=self.max_length,
            truncation=True,
        )
        return [
            Chunk(index, a, ids, wids, b - a, language, wtoks)
            for (a, b), ids, wids, wtoks in zip(
                spans, enc.input_ids, enc.word_ids, enc.word_tokens, strict=True
            )
        ]

    # ----------------------------------------------------------------------------- forward (device)

    @torch.inference_mode()
    def _forward(self, chunks: Sequence[Chunk]) -> list[ChunkResult]:
        """Encode a batch of chunks, tag predicates, then tag arguments for every predicate found.

        All tensors are built and all tags are read for the whole batch at once; only the conversion of tag
        ids to names and the predicate spans are per chunk.
        """
        device = next(self.model.parameters()).device
        precision = resolve_precision(self.precision, device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        lengths = torch.tensor([len(c.input_ids) for c in chunks])
        input_ids = pad_sequence(
            [torch.tensor(c.input_ids) for c in chunks], batch_first=True, padding_value=pad
        )
        attention_mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()  # (b, t)
        # (b, t): word of every sub-word, -1 for specials / markers / padding
        token_word = pad_sequence(
            [torch.tensor([-1 if w is None else w for w in c.word_ids]) for c in chunks],
            batch_first=True,
            padding_value=-1,
        )
        # (b, w): sub-word every word reads its tag from, -1 for none / padding
        word_tokens = pad_sequence(
            [torch.tensor(c.word_tokens, dtype=torch.long) for c in chunks],
            batch_first=True,
            padding_value=-1,
        )
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        extra = {}
        if all(c.language for c in chunks) and getattr(self.model, "adapter_mixtures", None):
            extra["language_ids"] = [c.language for c in chunks]  # for language-routed mixtures
        head: OIEHead = self.model.heads[self.head_name]
        with autocast(precision, device):
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                head=self.head_name,
                return_dict=True,
                **extra,
            )
        pred_probs = out.predicate_logits.float().softmax(-1)  # (b, t, n_labels)
        tags, probs = word_level_tags(pred_probs, word_tokens.to(device), PRED_LABELS)
        tags, probs = tags.tolist(), probs.tolist()
        begin_probs = None

        results, plan = [], []  # plan: (batch row, predicate word positions)
        for b, c in enumerate(chunks):
            word_tags, word_probs = [PRED_LABELS[k] for k in tags[b][: c.n_words]], probs[b][: c.n_words]
            predicates = decode_predicates(word_tags)
            if not predicates and self.predicate_floor is not None:  # a silent chunk keeps its best guess
                if begin_probs is None:
                    begin_probs = _word_begin_probs(pred_probs, word_tokens.to(device)).tolist()
                predicates = fallback_predicate(begin_probs[b][: c.n_words], self.predicate_floor)
                for (i,) in predicates:
                    word_tags[i], word_probs[i] = PRED_LABELS[_PRED_BEGIN], begin_probs[b][i]
            predicates = self._cap_predicates(c, predicates, word_probs)
            res = ChunkResult(c, word_tags, word_probs, predicates=predicates)
            results.append(res)
            plan.extend((b, p) for p in res.predicates)
        if not plan:
            return results
        # One argument-tagger row per predicate, on the cached encoder states, in slices.
        n_words = word_tokens.shape[1]
        for start in range(0, len(plan), self.argument_batch_size):
            part = plan[start : start + self.argument_batch_size]
            rows = torch.tensor([b for b, _ in part])
            hit_rows = [r for r, (_, positions) in enumerate(part) for _ in positions]
            hit_words = [p for _, positions in part for p in positions]
            pred_words = torch.zeros((len(part), n_words + 1), dtype=torch.bool)  # last column: "no word"
            pred_words[hit_rows, hit_words] = True
            tw = token_word.index_select(0, rows)  # (P, t)
            pred_mask = pred_words.gather(1, torch.where(tw >= 0, tw, n_words))  # (P, t)
            rows_d = rows.to(device)
            with autocast(precision, device):
                arg_logits = head.argument_logits(
                    out.sequence_output.index_select(0, rows_d),
                    pred_mask.long().to(device),
                    attention_mask.index_select(0, rows_d),
                    compact_keys=True,  # keys / values at the predicate's sub-words only
                )
            a_tags, a_probs = word_level_tags(
                arg_logits.float().softmax(-1), word_tokens.index_select(0, rows).to(device), ARG_LABELS
            )
            a_tags, a_probs = a_tags.tolist(), a_probs.tolist()
            for r, (b, _) in enumerate(part):
                n = chunks[b].n_words
                results[b].arg_tags.append([ARG_LABELS[k] for k in a_tags[r][:n]])
                results[b].arg_probs.append(a_probs[r][:n])
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
    def _word_level(probs: torch.Tensor, word_tokens: Sequence[int], labels: Sequence[str]):
        """Tags and probabilities of the words of one row (see
        :func:`~molora_adapters.data.tokenization.word_level_tags`).

        Args:
            probs (`torch.Tensor` of shape `(seq_len, n_labels)`): tag probabilities of one row.
            word_tokens (`Sequence[int]`): sub-word each word reads its tag from (``-1``: none, tag ``O``).
            labels (`Sequence[str]`): tag names.
        """
        tags, word_probs = word_level_tags(
            probs[None], torch.tensor([list(word_tokens)], dtype=torch.long), labels
        )
        return [labels[k] for k in tags[0].tolist()], word_probs[0].tolist()

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
            out[res.chunk.sentence_index].extend(self._decode_chunk(sentences, words, res, languages))
        return out

    def _decode_chunk(
        self,
        sentences: Sequence[str],
        words: Sequence[list],
        res: ChunkResult,
        languages: Sequence[str | None],
    ) -> list[Extraction]:
        c = res.chunk
        i = c.sentence_index
        offsets = [(s, e) for _, s, e in words[i]][c.word_start : c.word_start + c.n_words]
        exts = []
        for predicate, arg_tags, arg_probs in zip(res.predicates, res.arg_tags, res.arg_probs, strict=True):
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
            exts.append(ext)
        return exts

    # ----------------------------------------------------------------------------- public API

    def extract(
        self,
        sentences: str | Sequence[str],
        language: str | Sequence[str | None] | None = None,
        batch_size: int = 32,
    ) -> list[Extraction] | list[list[Extraction]]:
        """Extract tuples from ``sentences``.

        Chunks are batched by length (so little compute goes to padding); the decoding of one batch's tags
        into tuples runs in a worker thread while the next batch is encoded. Results come back in input order.

        Args:
            sentences (`str` or `Sequence[str]`): one sentence or many.
            language (`str` or `Sequence[str]`, *optional*): language code(s); ``zh`` / ``ja`` split
                sentences into characters, anything else on whitespace with punctuation peeled off the words
                (:func:`~molora_adapters.data.alignment.split_words`); scripts without spaces are tokenised
                as unspaced text (see :mod:`molora_adapters.data.tokenization`).
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
        order = sorted(range(len(chunks)), key=lambda k: len(chunks[k].input_ids))  # length-grouped batches
        batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
        decoded: list[list[Extraction]] = [[] for _ in chunks]
        was_training = self.model.training
        self.model.eval()

        def decode(batch: list[int], results: list[ChunkResult]) -> None:
            for k, res in zip(batch, results, strict=True):
                decoded[k] = self._decode_chunk(sents, words, res, langs)

        try:
            show = self.progress if self.progress is not None else len(batches) > 4
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = None
                for batch in tqdm(batches, desc="OIE extraction", unit="batch", disable=not show):
                    with inactive_adapters_once():  # said once, in __init__
                        results = self._forward([chunks[k] for k in batch])
                    if pending is not None:
                        pending.result()  # re-raises a decoding error
                    pending = pool.submit(decode, batch, results)
                if pending is not None:
                    pending.result()
        finally:
            self.model.train(was_training)
        out: list[list[Extraction]] = [[] for _ in sents]
        for chunk, exts in zip(chunks, decoded, strict=True):  # chunks are in sentence, then word order
            out[chunk.sentence_index].extend(exts)
        return out[0] if single else out

    __call__ = extract

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | None = None,
        *,
        adapter: str | None = None,
        head_name: str | None = None,
        **kwargs: Any,
    ) -> OIEPipeline:
        """Load the shipped model, a packaged model (``molora package-model``, local or on the Hub), a model saved
        with ``model.save_pretrained``, or the output of a staged run (`StagedTrainer`, with its mixtures and active
        setup), with the tokenizer files in the same directory (a packaged model names its base encoder's).

        Args:
            model_name_or_path (`str`, *optional*): directory or model id (``embedded:...`` ids are resolved); `None`
                or :data:`~molora_adapters.oie.shipping.SHIPPED_MODEL_NAME` (``"molora/oie-multilingual-e5-small"``)
                load the model that ships with the package.
            adapter (`str`, *optional*): an adapter directory to load with its head and activate.
            head_name (`str`, *optional*): OIE head to use.
            **kwargs: passed to :class:`OIEPipeline`.

        Raises:
            ShippedModelMissingError: the shipped model was asked for and this build has none.
            PackageIntegrityError: a packaged model's file is damaged or its base encoder differs.
        """
        from ..models import resolve_model_name_or_path
        from ..models.tokenizer import load_tokenizer
        from .shipping.load import find_packaged_model, load_packaged_tokenizer

        package = find_packaged_model(model_name_or_path)
        if package is not None:
            model = load_oie_model(str(package), adapter=adapter)
            tokenizer = load_packaged_tokenizer(package)
        else:
            path = resolve_model_name_or_path(model_name_or_path)
            model = load_oie_model(path, adapter=adapter)
            tokenizer = load_tokenizer(path)
        return cls(model, tokenizer, head_name=head_name, **kwargs)


def load_oie_model(model_name_or_path: str | None = None, *, adapter: str | None = None):
    """The model of :meth:`OIEPipeline.from_pretrained`, in eval mode: the shipped or a packaged model, a directory
    saved with ``save_pretrained`` or a staged run's output (its mixtures and active setup restored), plus an optional
    adapter loaded and activated.

    Args:
        model_name_or_path (`str`, *optional*): directory or model id (``embedded:...`` ids are resolved); `None`:
            the shipped model.
        adapter (`str`, *optional*): an adapter directory to load with its head and activate.
    """
    from adapters import AutoAdapterModel

    from ..loading import is_staged_run, load_staged_model
    from ..models import resolve_model_name_or_path
    from .shipping.load import find_packaged_model, load_packaged_model

    package = find_packaged_model(model_name_or_path)
    if package is not None:
        model = load_packaged_model(package)
    else:
        path = resolve_model_name_or_path(model_name_or_path)
        if is_staged_run(path):
            # a staged run's output: its mixtures, active setup and head come back as at the end of training
            model = load_staged_model(path)
        else:
            model = AutoAdapterModel.from_pretrained(path)  # saved OIE heads come back (the seam's head hook)
    model.eval()
    if adapter is not None:
        name = model.load_adapter(adapter, with_head=True)
        model.set_active_adapters(name)
    return model
