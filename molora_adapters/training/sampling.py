"""`StreamSampler`: one deterministic stream of training examples shared by all stages of a staged run.

``Trainer`` builds a fresh ``RandomSampler`` for every ``train()`` call, so a plan of three stages would replay
the same first batches three times. The stream sampler instead cuts one endless, seeded stream of example indices
into epochs, and each stage starts where the previous one stopped (``start``: the examples consumed so far), so a
staged run sees as many distinct examples as a single-stage run of the same length.

Block ``b`` of the stream (``len(dataset)`` indices) is built from the seed and ``b`` alone, so any position of the
stream is reproducible without replaying it (resume, DDP). Within a block:

* **language balance** (``language_alpha``, optional): the block holds ``len(dataset) * w_l`` examples of language
  ``l`` with ``w_l`` proportional to ``n_l ** alpha`` (``alpha=1``: the natural mix, ``0``: every language
  equally). Each language keeps its own endless stream of permutations, so small languages cycle through all
  their examples before repeating one. Balancing is per block (hence in expectation per batch), not exact per
  batch, because it is combined with:
* **length grouping** (``lengths``, optional): the block is cut into mega-batches of ``50 * batch_size``
  examples, each sorted by length and cut into batches, and the batches are shuffled, so a batch pads to a
  similar length (99% of padded tokens are real on the shipped corpora, 65% with random batches) while the batch
  order stays random. Like ``transformers.trainer_pt_utils.LengthGroupedSampler``, without its longest-first rule.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

_MEGABATCH = 50


class StreamSampler(Sampler[int]):
    """Epochs of a seeded, endless index stream, starting at position ``start`` (see module docstring).

    Args:
        num_examples (`int`): dataset size (= indices per epoch).
        seed (`int`): seed of the stream.
        start (`int`, *optional*, defaults to 0): stream position of the first index of epoch 0.
        batch_size (`int`, *optional*, defaults to 1): batch size used by length grouping.
        lengths (`Sequence[int]`, *optional*): per-example lengths; enables length grouping.
        languages (`Sequence[str]`, *optional*): per-example language codes; with ``language_alpha``, enables
            language-balanced blocks.
        language_alpha (`float`, *optional*): exponent of the language weights ``n_l ** alpha``.
    """

    def __init__(
        self,
        num_examples: int,
        *,
        seed: int,
        start: int = 0,
        batch_size: int = 1,
        lengths: Sequence[int] | None = None,
        languages: Sequence[str] | None = None,
        language_alpha: float | None = None,
    ) -> None:
        if num_examples < 1:
            raise ValueError(f"`num_examples` must be >= 1, got {num_examples}.")
        if start < 0 or batch_size < 1:
            raise ValueError(f"`start` must be >= 0 and `batch_size` >= 1, got {start} and {batch_size}.")
        for name, values in (("lengths", lengths), ("languages", languages)):
            if values is not None and len(values) != num_examples:
                raise ValueError(f"`{name}` has {len(values)} entries for {num_examples} examples.")
        if language_alpha is not None and (language_alpha < 0 or languages is None):
            raise ValueError(
                f"`language_alpha` must be >= 0 and needs `languages`, got {language_alpha!r} "
                f"with {'no ' if languages is None else ''}languages."
            )
        self.num_examples, self.seed, self.start, self.batch_size = num_examples, seed, start, batch_size
        self.lengths = torch.as_tensor(list(lengths)) if lengths is not None else None
        self.epoch = 0
        self._by_language: list[torch.Tensor] = []
        self._quota: list[int] = []
        if language_alpha is not None:
            names = sorted(set(languages))
            groups = [torch.tensor([i for i, lang in enumerate(languages) if lang == n]) for n in names]
            weights = [len(g) ** language_alpha for g in groups]
            quota = [num_examples * w / sum(weights) for w in weights]
            counts = [math.floor(q) for q in quota]
            # largest remainders fill the block up to exactly num_examples
            for j in sorted(range(len(quota)), key=lambda j: counts[j] - quota[j])[
                : num_examples - sum(counts)
            ]:
                counts[j] += 1
            self._by_language, self._quota = groups, counts
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.num_examples

    def set_epoch(self, epoch: int) -> None:
        """Called by ``Trainer`` / accelerate at every epoch: epoch ``e`` is stream positions
        ``[start + e * n, start + (e + 1) * n)``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        begin = self.start + self.epoch * self.num_examples
        yield from self.positions(begin, begin + self.num_examples).tolist()

    def positions(self, begin: int, end: int) -> torch.Tensor:
        """Dataset indices at stream positions ``[begin, end)``."""
        n = self.num_examples
        blocks = [self._block(b) for b in range(begin // n, (end - 1) // n + 1)]
        offset = (begin // n) * n
        return torch.cat(blocks)[begin - offset : end - offset]

    def _generator(self, *key: int) -> torch.Generator:
        digest = hashlib.sha256(repr((self.seed, *key)).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def _block(self, b: int) -> torch.Tensor:
        if b not in self._cache:
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[b] = self._build_block(b)
        return self._cache[b]

    def _build_block(self, b: int) -> torch.Tensor:
        n = self.num_examples
        if self._by_language:
            parts = [self._language_slice(j, b) for j in range(len(self._by_language))]
            block = torch.cat(parts)
            block = block[torch.randperm(n, generator=self._generator(b, -1))]
        else:
            block = torch.randperm(n, generator=self._generator(b))
        if self.lengths is None:
            return block
        g = self._generator(b, -2)
        size = self.batch_size * _MEGABATCH
        batches = []
        for mega in block.split(size):
            order = torch.sort(self.lengths[mega], descending=True, stable=True).indices
            batches.extend(mega[order].split(self.batch_size))
        order = torch.randperm(len(batches), generator=g).tolist()
        return torch.cat([batches[i] for i in order])

    def _language_slice(self, j: int, b: int) -> torch.Tensor:
        """Block ``b``'s share of language ``j``: positions ``[b * q, (b + 1) * q)`` of its own endless stream."""
        group, q = self._by_language[j], self._quota[j]
        if q == 0:
            return group[:0]
        m = len(group)
        begin, end = b * q, (b + 1) * q
        # permutation p of language j depends on (j, p) only, so the language stream continues across blocks
        perms = [
            group[torch.randperm(m, generator=self._generator(-1, j, p))]
            for p in range(begin // m, (end - 1) // m + 1)
        ]
        offset = (begin // m) * m
        return torch.cat(perms)[begin - offset : end - offset]
