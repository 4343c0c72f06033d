"""Words -> sub-words, with the sub-word -> word map both taggers and the decoder need.

Spaced text is tokenised as pre-split words (``is_split_into_words``). Sentences of scripts written without
spaces (:func:`~molora_adapters.data.alignment.is_unspaced`: zh / ja / th ..., or any sentence whose words
are single characters) are instead joined into their **unspaced** text
(:func:`~molora_adapters.data.alignment.join_words`), tokenised as such, and every sub-word is mapped back to
the word its first character belongs to through the fast tokenizer's character offsets. Pre-splitting
``"汉 服 作 为"`` would give every character its own word-start marker, and ``"▁"`` + character is rarely one
piece: the first sub-word of most characters would be a lone ``"▁"``.

In unspaced text one sub-word can cover several words (``"作为"`` covers ``"作"`` and ``"为"``). The sub-word
then belongs to its first word (``word_ids``), carries that word's training tag, and the later words read
their tag from it (``word_tokens``) as a continuation (``X-B`` becomes ``X-I``, see
:func:`word_level_tags`). A lone word-start marker (``"▁"`` before a character that is its own piece) belongs
to no word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from .alignment import is_unspaced, join_words, word_spaces

__all__ = ["WordEncoding", "encode_words", "tokenize_words", "word_level_tags"]

_MARKERS = "▁Ġ"  # SentencePiece / byte-level BPE word-start markers


@dataclass
class WordEncoding:
    """Sub-words of a batch of sentences and their maps to words.

    Args:
        input_ids (`list[list[int]]`): sub-word ids with special tokens.
        word_ids (`list[list[int | None]]`): per sub-word, the index of its (first) word; ``None`` for special
            tokens and lone word-start markers. Word tags go on the first sub-word of each word.
        word_tokens (`list[list[int]]`): per word, the sub-word its tag is read from: the word's own first
            sub-word, else the sub-word covering its first character (shared with earlier words), else ``-1``
            (truncated away or removed by the normaliser).
        unspaced (`list[bool]`): per sentence, whether it was tokenised as unspaced text.
    """

    input_ids: list[list[int]]
    word_ids: list[list[int | None]]
    word_tokens: list[list[int]]
    unspaced: list[bool]

    def __len__(self) -> int:
        return len(self.input_ids)


def _check_fast(tokenizer: PreTrainedTokenizerBase) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "OIE features need a fast tokenizer (`use_fast=True`) to map sub-words to words; got "
            f"{type(tokenizer).__name__}."
        )


def _per_sentence(value, n: int, name: str) -> list:
    if value is None or isinstance(value, str):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"`{name}` has {len(value)} entries for {n} sentences.")
    return value


def _first_tokens(word_ids: Sequence[int | None], n_words: int) -> list[int]:
    out = [-1] * n_words
    for t, w in enumerate(word_ids):
        if w is not None and out[w] < 0:
            out[w] = t
    return out


def tokenize_words(
    tokenizer: PreTrainedTokenizerBase,
    words: Sequence[Sequence[str]],
    *,
    languages: str | Sequence[str | None] | None = None,
    sentences: Sequence[str | None] | None = None,
    max_length: int | None = None,
    truncation: bool = False,
) -> WordEncoding:
    """Tokenise sentences given as words (see module docstring).

    Args:
        tokenizer (`PreTrainedTokenizerBase`): a *fast* tokenizer (character offsets are needed).
        words (`Sequence[Sequence[str]]`): the words of each sentence.
        languages (`str` or `Sequence[str]`, *optional*): language code of each sentence (or one for all);
            languages in :data:`~molora_adapters.data.alignment.UNSPACED_LANGUAGES` are tokenised unspaced.
        sentences (`Sequence[str]`, *optional*): the original texts; in unspaced sentences, whitespace between
            two words of a spaced script (``"iPhone 手机"`` vs ``"用iPhone"``) is kept only where the text had it.
        max_length (`int`, *optional*): truncation length when ``truncation`` is set.
        truncation (`bool`, *optional*, defaults to `False`): truncate to ``max_length``.

    Returns:
        :class:`WordEncoding`
    """
    _check_fast(tokenizer)
    n = len(words)
    langs = _per_sentence(languages, n, "languages")
    texts = _per_sentence(sentences, n, "sentences") if sentences is not None else [None] * n
    unspaced = [is_unspaced(w, lang) for w, lang in zip(words, langs, strict=True)]
    input_ids: list[list[int]] = [[] for _ in range(n)]
    word_ids: list[list[int | None]] = [[] for _ in range(n)]
    word_tokens: list[list[int]] = [[] for _ in range(n)]
    kw = dict(
        truncation=truncation,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,  # long inputs are chunked by the pipeline / skipped by build_oie_features
    )

    spaced = [i for i in range(n) if not unspaced[i]]
    if spaced:
        enc = tokenizer([list(words[i]) for i in spaced], is_split_into_words=True, **kw)
        for j, i in enumerate(spaced):
            input_ids[i], word_ids[i] = enc["input_ids"][j], enc.word_ids(j)
            word_tokens[i] = _first_tokens(word_ids[i], len(words[i]))

    todo = [i for i in range(n) if unspaced[i]]
    if todo:
        joined = [join_words(words[i], word_spaces(texts[i], words[i])) for i in todo]
        enc = tokenizer([text for text, _ in joined], return_offsets_mapping=True, **kw)
        markers = _marker_ids(tokenizer, {t for ids in enc["input_ids"] for t in ids})
        for j, i in enumerate(todo):
            text, spans = joined[j]
            char_word = [-1] * len(text)
            for w, (a, b) in enumerate(spans):
                char_word[a:b] = [w] * (b - a)
            ids, offsets = enc["input_ids"][j], enc["offset_mapping"][j]
            wids: list[int | None] = []
            char_token = [-1] * len(text)
            for t, (tok, (a, b)) in enumerate(zip(ids, offsets, strict=True)):
                covered = [char_word[c] for c in range(a, b) if char_word[c] >= 0]
                if tok in markers or not covered or (a == b):
                    wids.append(None)
                    continue
                wids.append(covered[0])
                for c in range(a, b):
                    if char_token[c] < 0:
                        char_token[c] = t
            first = _first_tokens(wids, len(spans))
            input_ids[i], word_ids[i] = ids, wids
            word_tokens[i] = [f if f >= 0 else char_token[a] for f, (a, _) in zip(first, spans, strict=True)]
    return WordEncoding(input_ids, word_ids, word_tokens, unspaced)


def _marker_ids(tokenizer: PreTrainedTokenizerBase, ids: set[int]) -> set[int]:
    """Ids among ``ids`` whose piece is only word-start markers (a lone ``"▁"``)."""
    ids = sorted(ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return {i for i, p in zip(ids, pieces, strict=True) if p and not p.strip(_MARKERS)}


def encode_words(
    tokenizer: PreTrainedTokenizerBase,
    words: Sequence[Sequence[str]],
    *,
    languages: str | Sequence[str | None] | None = None,
    max_length: int | None = None,
    truncation: bool = False,
) -> tuple[list[list[int]], list[list[int | None]]]:
    """``(input_ids, word_ids)`` of :func:`tokenize_words` (kept for callers of the earlier API)."""
    enc = tokenize_words(tokenizer, words, languages=languages, max_length=max_length, truncation=truncation)
    return enc.input_ids, enc.word_ids


def inside_label_map(labels: Sequence[str]) -> torch.Tensor:
    """Label id -> id of the same role's ``-I`` label (``O`` and ``-I`` labels map to themselves)."""
    index = {label: i for i, label in enumerate(labels)}
    return torch.tensor(
        [index.get(label[:-2] + "-I", i) if label.endswith("-B") else i for i, label in enumerate(labels)]
    )


def word_level_tags(
    probs: torch.Tensor, word_tokens: torch.Tensor, labels: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Word tag ids and their probabilities from sub-word tag probabilities, for a batch of rows at once.

    Each word reads the tag of its sub-word (``word_tokens``); a word that shares that sub-word with the
    previous word continues its span (``X-B`` -> ``X-I``); words without a sub-word (``-1``) get ``O`` with
    probability 1.

    Args:
        probs (`torch.Tensor` of shape `(batch, seq_len, n_labels)`): tag probabilities.
        word_tokens (`torch.Tensor` of shape `(batch, n_words)`): sub-word index of every word, ``-1`` for
            none and for padding words.
        labels (`Sequence[str]`): tag names (``labels[0]`` is ``O``).

    Returns:
        ``(tags, word_probs)``, both of shape `(batch, n_words)`.
    """
    gather = word_tokens.clamp(min=0).unsqueeze(-1).expand(-1, -1, probs.shape[-1])  # (b, w, n_labels)
    best_p, best = probs.gather(1, gather).max(-1)  # (b, w)
    missing = word_tokens < 0
    best = best.masked_fill(missing, 0)
    best_p = best_p.masked_fill(missing, 1.0)
    shared = torch.zeros_like(missing)
    shared[:, 1:] = (word_tokens[:, 1:] == word_tokens[:, :-1]) & ~missing[:, 1:]
    best = torch.where(shared, inside_label_map(labels).to(best.device)[best], best)
    return best, best_p
