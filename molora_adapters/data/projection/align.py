"""SimAlign-style word alignment with the embedded multilingual encoder (Jalili Sabet et al., 2020).

Each sentence is encoded on its own; the contextual vectors of its sub-word pieces at a middle layer
(default 8 of 12: SimAlign's finding that middle layers align best) are compared by cosine similarity
between the two sentences. Links between pieces are then chosen by

* ``argmax``: a pair is linked when each piece is the other's most similar piece (mutual argmax,
  high precision);
* ``itermax``: argmax, then further rounds of mutual argmax restricted to cells whose row or column is
  still unlinked, with similarities of cells where both are free weighted higher (``alpha``), which
  raises recall for words that argmax leaves out.

Words are mapped to pieces by the project's one tokenisation helper,
:func:`molora_adapters.data.tokenization.tokenize_words`: spaced scripts as pre-split words, unspaced
scripts (one word per character) as their joined text with pieces mapped back through character
offsets. A piece covering several characters (``"作为"``) covers all of their words; two words are
aligned when any of their pieces are linked.

The same forward pass gives each sentence a mean-pooled last-layer embedding, used to pair sentences
(:mod:`.pairing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

from .sentences import Sentence

__all__ = [
    "AlignMethod",
    "EncodedSentence",
    "EncoderAligner",
    "WordAlignment",
    "alignment_scores",
    "itermax",
    "mutual_argmax",
]


class AlignMethod(str, Enum):
    """Link extraction from the similarity matrix."""

    ARGMAX = "argmax"
    ITERMAX = "itermax"


@dataclass
class EncodedSentence:
    """One sentence as the aligner sees it.

    Args:
        sentence (`Sentence`): the sentence.
        pieces (`torch.Tensor`): ``(n_pieces, hidden)`` L2-normalised middle-layer vectors of its pieces.
        piece_words (`torch.Tensor`): ``(n_pieces, n_words)`` bool, piece overlaps word.
        embedding (`torch.Tensor`): ``(hidden,)`` L2-normalised mean of the last layer (sentence vector).
    """

    sentence: Sentence
    pieces: torch.Tensor
    piece_words: torch.Tensor
    embedding: torch.Tensor


@dataclass
class WordAlignment:
    """Word links between a source and a target sentence.

    Args:
        links (`list[tuple[int, int]]`): sorted ``(source word, target word)`` pairs.
        scores (`list[float]`): best piece cosine similarity of each link, same order.
    """

    links: list[tuple[int, int]]
    scores: list[float]

    def targets_of(self, source_words: list[int]) -> list[int]:
        s = set(source_words)
        return sorted({j for i, j in self.links if i in s})


def mutual_argmax(sim: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Cells that are the maximum of both their row and their column (among ``allowed`` cells).

    Args:
        sim (`torch.Tensor`): ``(m, n)`` scores.
        allowed (`torch.Tensor`, *optional*): ``(m, n)`` bool mask of eligible cells.

    Returns:
        `torch.Tensor`: ``(m, n)`` bool links.
    """
    if sim.numel() == 0:
        return torch.zeros_like(sim, dtype=torch.bool)
    s = sim if allowed is None else sim.masked_fill(~allowed, float("-inf"))
    fwd = torch.zeros_like(s, dtype=torch.bool)
    fwd[torch.arange(s.shape[0]), s.argmax(dim=1)] = True
    bwd = torch.zeros_like(s, dtype=torch.bool)
    bwd[s.argmax(dim=0), torch.arange(s.shape[1])] = True
    links = fwd & bwd
    return links if allowed is None else links & allowed


def itermax(sim: torch.Tensor, max_rounds: int = 2, alpha: float = 0.9) -> torch.Tensor:
    """Iterative mutual argmax (SimAlign's *itermax*; see module docstring).

    Args:
        sim (`torch.Tensor`): ``(m, n)`` similarities in ``[0, 1]``.
        max_rounds (`int`, *optional*, defaults to 2): rounds in all, the first being plain argmax.
        alpha (`float`, *optional*, defaults to 0.9): weight per free side (row, column) of a cell.

    Returns:
        `torch.Tensor`: ``(m, n)`` bool links.
    """
    links = mutual_argmax(sim)
    if min(sim.shape) <= 2:
        return links
    for _ in range(max_rounds - 1):
        row_free = ~links.any(dim=1, keepdim=True)  # (m, 1)
        col_free = ~links.any(dim=0, keepdim=True)  # (1, n)
        if not row_free.any() or not col_free.any():
            break
        weight = alpha * (row_free.float() + col_free.float())  # (m, n): 0, alpha or 2 alpha
        new = mutual_argmax(sim * weight, allowed=weight > 0) & ~links
        if not new.any():
            break
        links = links | new
    return links


class EncoderAligner:
    """Word aligner and sentence encoder over one multilingual encoder (see module docstring).

    Args:
        model (`str`, *optional*, defaults to `"embedded:multilingual-e5-small"`): encoder name or path
            (anything :func:`~molora_adapters.models.resolve_model_name_or_path` accepts).
        layer (`int`, *optional*, defaults to 8): hidden-state index used for alignment (0 = embeddings).
        method (`AlignMethod` or `str`, *optional*, defaults to `"itermax"`): link extraction.
        batch_size (`int`, *optional*, defaults to 32): sentences per forward pass.
        max_length (`int`, *optional*, defaults to 256): pieces per sentence; words past it stay unaligned.
        device (`str`, *optional*, defaults to `"cpu"`): torch device.
    """

    def __init__(
        self,
        model: str = "embedded:multilingual-e5-small",
        *,
        layer: int = 8,
        method: AlignMethod | str = AlignMethod.ITERMAX,
        batch_size: int = 32,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        from ...models import resolve_model_name_or_path

        self.method = AlignMethod(method)
        if batch_size < 1 or max_length < 8:
            raise ValueError(
                f"`batch_size` must be >= 1 and `max_length` >= 8, got {batch_size}, {max_length}."
            )
        path = resolve_model_name_or_path(model)
        self.model_name = model
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if not self.tokenizer.is_fast:
            raise ValueError(
                f"`model` {model!r} has no fast tokenizer; offsets are needed to map pieces to words."
            )
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        n_layers = self.model.config.num_hidden_layers
        if not 0 <= layer <= n_layers:
            raise ValueError(f"`layer` must be in [0, {n_layers}] for {model!r}, got {layer}.")
        self.layer, self.batch_size, self.max_length, self.device = layer, batch_size, max_length, device

    @torch.inference_mode()
    def encode(self, sentences: list[Sentence]) -> list[EncodedSentence]:
        """Encode sentences (batched); see :class:`EncodedSentence`."""
        from ..tokenization import tokenize_words

        out: list[EncodedSentence] = []
        pad = self.tokenizer.pad_token_id
        for b in range(0, len(sentences), self.batch_size):
            batch = sentences[b : b + self.batch_size]
            # the project's one words -> sub-words map (unspaced scripts through character offsets)
            enc = tokenize_words(
                self.tokenizer,
                [list(s.words) for s in batch],
                languages=[s.language for s in batch],
                sentences=[s.text for s in batch],
                max_length=self.max_length,
                truncation=True,
            )
            width = max(len(ids) for ids in enc.input_ids)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, T)
            mask = torch.zeros(len(batch), width, dtype=torch.long)  # (B, T)
            for k, row in enumerate(enc.input_ids):
                ids[k, : len(row)] = torch.tensor(row)
                mask[k, : len(row)] = 1
            hs = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), output_hidden_states=True
            ).hidden_states
            mid = torch.nn.functional.normalize(hs[self.layer].float(), dim=-1).cpu()  # (B, T, H)
            m = mask.unsqueeze(-1).float()  # (B, T, 1)
            pooled = torch.nn.functional.normalize(
                (hs[-1].float().cpu() * m).sum(1) / m.sum(1), dim=-1
            )  # (B, H)
            for k, sent in enumerate(batch):
                n_tok, n_words = len(enc.input_ids[k]), len(sent.words)
                tw = torch.zeros(n_tok, n_words, dtype=torch.bool)  # (T, W): sub-word covers word
                wid = torch.tensor([-1 if w is None else w for w in enc.word_ids[k]])
                has = wid >= 0
                tw[has.nonzero().flatten(), wid[has]] = True
                # a sub-word shared by several characters (unspaced "作为") also covers the later ones
                wt = torch.tensor(enc.word_tokens[k], dtype=torch.long)
                ok = wt >= 0
                tw[wt[ok], ok.nonzero().flatten()] = True
                keep = tw.any(dim=1)
                out.append(EncodedSentence(sent, mid[k, :n_tok][keep], tw[keep], pooled[k]))
        return out

    def align(self, source: EncodedSentence, target: EncodedSentence) -> WordAlignment:
        """Word alignment between two encoded sentences."""
        if not len(source.pieces) or not len(target.pieces):
            return WordAlignment([], [])
        sim = source.pieces @ target.pieces.T  # (Ps, Pt) cosine
        sim01 = (sim + 1) / 2
        links = mutual_argmax(sim01) if self.method is AlignMethod.ARGMAX else itermax(sim01)
        # piece links -> word links: (Ws, Ps) @ (Ps, Pt) @ (Pt, Wt)
        ps, pt = source.piece_words.float(), target.piece_words.float()
        words = (ps.T @ links.float() @ pt) > 0  # (Ws, Wt)
        best = torch.where(links, sim, torch.full_like(sim, -2.0))  # (Ps, Pt)
        # best linked-piece similarity per word pair, as two masked maxima (no loop over words)
        neg = torch.tensor(-2.0)
        per_src = torch.where(source.piece_words[:, :, None], best[:, None, :], neg).amax(0)  # (Ws, Pt)
        score = torch.where(target.piece_words[None, :, :], per_src[:, :, None], neg).amax(1)  # (Ws, Wt)
        pairs = words.nonzero().tolist()
        return WordAlignment([(i, j) for i, j in pairs], [round(float(score[i, j]), 4) for i, j in pairs])


def alignment_scores(
    predicted: list[list[tuple[int, int]]],
    sure: list[list[tuple[int, int]]],
    possible: list[list[tuple[int, int]]] | None = None,
) -> dict[str, float]:
    """Micro-averaged alignment precision, recall, F1 and AER (Och & Ney 2003) over sentence pairs.

    Precision counts predicted links found among sure or possible links, recall counts sure links found;
    ``AER = 1 - (|A & S| + |A & P|) / (|A| + |S|)`` with ``P`` = sure plus possible.

    Args:
        predicted (`list[list[tuple[int, int]]]`): predicted links per pair.
        sure (`list[list[tuple[int, int]]]`): sure gold links per pair.
        possible (`list[list[tuple[int, int]]]`, *optional*): extra possible links per pair.
    """
    if len(predicted) != len(sure) or (possible is not None and len(possible) != len(sure)):
        raise ValueError("`predicted`, `sure` and `possible` must have one entry per sentence pair.")
    a_n = s_n = a_s = a_p = 0
    for k, (pred, s) in enumerate(zip(predicted, sure, strict=True)):
        a, s = {tuple(x) for x in pred}, {tuple(x) for x in s}
        p = s | ({tuple(x) for x in possible[k]} if possible else set())
        a_n, s_n, a_s, a_p = a_n + len(a), s_n + len(s), a_s + len(a & s), a_p + len(a & p)
    precision = a_p / a_n if a_n else 0.0
    recall = a_s / s_n if s_n else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    aer = 1 - (a_s + a_p) / (a_n + s_n) if a_n + s_n else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "aer": aer, "links": a_n, "sure": s_n}
