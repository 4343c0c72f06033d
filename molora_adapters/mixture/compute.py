"""Expert compute of one adapted linear layer: dense in rank space, or sparse (grouped per expert), by cost.

Input ``x`` is viewed as ``(U, S, D)``: ``U`` routing decisions (tokens, or sequences for sentence and language
routing) of ``S`` tokens each. ``gates`` ``(U, E)`` hold each decision's gate per present expert, exactly ``k`` of
them non-zero (the LoRA scalings are folded into the stacked B, see :mod:`.weights`). Experts have ranks ``r_e``,
``R = sum r_e``.

- **dense**: ``h = x @ cat(A_e).T`` ``(U, S, R)``, gates broadcast over each expert's rank columns, then
  ``h @ cat(B_e, dim=1).T``. Cost per token ``R (D + O)``: it grows with the number of experts ``E``.
- **sparse** (equal ranks): the ``U k`` (decision, expert) pairs are sorted by expert into a padded
  ``(E, C, S, D)`` buffer (``C`` the largest expert load), run as two batched matmuls against the stacked
  ``A_e.T`` ``(E, D, r)`` and ``B_e.T`` ``(E, r, O)``, and added back to their decisions.
  Cost per token ``k r (D + O)`` times the padding waste ``E C / (U k)``, plus gathering ``k`` copies of each
  token: it grows with ``k``, not ``E``.

Both are exact: an expert that no decision selects sees only zero rows (sparse) or zero gates (dense), so its
LoRA weights get exactly zero gradient. No Python loop over experts or tokens runs in either path.

Which path a layer runs is its mixture's choice (``MixtureConfig.compute``), decided by each layer's router once per
``(top_k, dtype)`` (:meth:`~molora_adapters.mixture.router.Router.sparse_path`). With ``"auto"`` the switch
(:func:`use_sparse`) compares the two costs: sparse runs when ``k (r + overhead) < E r``, where
``SPARSE_OVERHEAD[dtype]`` is the measured fixed cost of the sparse path's gathers, in rank columns per token. Padding never
makes the sparse matmuls costlier than the dense ones (``C <= U``), so the switch needs no per-call load.
:func:`expert_compute` forces a path within a block, for the current thread (or task) only.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable, Iterator

import torch


class ExpertCompute(str, enum.Enum):
    """How a mixture's layers compute their experts: by the measured cost switch (``auto``), or always one path."""

    AUTO = "auto"
    DENSE = "dense"
    SPARSE = "sparse"


# Fixed cost of the sparse path (k input copies gathered, k outputs added back, bookkeeping) in rank columns per
# selected expert and token, by dtype: sparse runs when  k * (r + overhead) < E * r.  Measured in whole models with
# benchmarks/bench_mixture.py (both paths side by side, 2-core Xeon with AMX, shared machine): in float32 sparse wins
# from E * r ~ 1000 (r=64, E>=16); in bfloat16 (AMX makes the dense matmuls cheap) it did not win up to E=32, r=64.
SPARSE_OVERHEAD = {torch.float32: 192, torch.bfloat16: 1024, torch.float16: 1024}
# a path forced by `expert_compute` in this thread / task; None: each mixture's own `compute` setting
_forced: contextvars.ContextVar[ExpertCompute | None] = contextvars.ContextVar(
    "molora_expert_compute", default=None
)


def parse_compute(mode: ExpertCompute | str, what: str = "mode") -> ExpertCompute:
    """``mode`` as an :class:`ExpertCompute` (raises ``ValueError`` naming ``what`` for an unknown value)."""
    try:
        return ExpertCompute(mode)
    except ValueError:
        raise ValueError(
            f"`{what}` must be one of {[m.value for m in ExpertCompute]}, got {mode!r}."
        ) from None


@contextlib.contextmanager
def expert_compute(mode: ExpertCompute | str) -> Iterator[None]:
    """Force the dense or the sparse expert path of every mixture within the block, in the current thread (or
    asyncio task) only (tests, benchmarks); ``"auto"`` leaves each mixture's own ``compute`` setting in charge.

    Args:
        mode (`ExpertCompute` or `str`): ``"auto"``, ``"dense"`` or ``"sparse"``.
    """
    new = parse_compute(mode)
    token = _forced.set(None if new is ExpertCompute.AUTO else new)
    try:
        yield
    finally:
        _forced.reset(token)


def forced_compute() -> ExpertCompute | None:
    """The path :func:`expert_compute` forces in this thread / task, or `None`."""
    return _forced.get()


def use_sparse(
    n_present: int,
    top_k: int,
    equal_ranks: bool,
    rank: int | None,
    dtype: torch.dtype = torch.float32,
    mode: ExpertCompute = ExpertCompute.AUTO,
) -> bool:
    """Whether a layer runs the sparse path for ``top_k`` of ``n_present`` experts under ``mode`` (``auto``: when
    it is expected to beat the dense one)."""
    if mode is ExpertCompute.DENSE or not equal_ranks or top_k >= n_present:
        return False
    if mode is ExpertCompute.SPARSE:
        return True
    return top_k * (rank + SPARSE_OVERHEAD.get(dtype, SPARSE_OVERHEAD[torch.float32])) < n_present * rank


def gated_rank_activations(
    x: torch.Tensor,
    gates: torch.Tensor,
    lora_a: torch.Tensor | None,
    rank: int | None,
    rank_owner: torch.Tensor | None,
    h: torch.Tensor | None = None,
) -> torch.Tensor:
    """The dense path's gated rank space: ``x`` ``(U, S, D)``, ``gates`` ``(U, E)``, ``lora_a`` ``(R, D)``; returns
    ``(U, S, R)``, each expert's rank columns times its gate. ``rank`` is the shared rank (None: use ``rank_owner``
    ``(R,)``). ``h`` ``(U, S, R)``, when given, is ``x @ lora_a.T`` already computed (fused with the router's
    matmul)."""
    if h is None:
        h = x @ lora_a.t()  # (U, S, R)
    if rank is not None:
        # (U, S, E, r) * (U, 1, E, 1): each expert's gate over its own rank columns
        return (h.unflatten(-1, (-1, rank)) * gates[:, None, :, None]).flatten(-2)
    return h * gates.index_select(-1, rank_owner)[:, None, :]  # (U, S, R)


def dense_experts(
    x: torch.Tensor,
    gates: torch.Tensor,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    rank: int | None,
    rank_owner: torch.Tensor | None,
    h: torch.Tensor | None = None,
) -> torch.Tensor:
    """All experts in rank space: ``x`` ``(U, S, D)``, ``gates`` ``(U, E)``, ``lora_a`` ``(R, D)``,
    ``lora_b`` ``(O, R)``; returns ``(U, S, O)`` (see :func:`gated_rank_activations`)."""
    return gated_rank_activations(x, gates, lora_a, rank, rank_owner, h) @ lora_b.t()  # (U, S, O)


def sparse_experts(
    x: torch.Tensor,
    gates: torch.Tensor,
    top_k: int,
    a_t: torch.Tensor,
    b_t: torch.Tensor,
    out: torch.Tensor | None = None,
    rank_dropout: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Only the selected experts, grouped per expert: ``x`` ``(U, S, D)``, ``gates`` ``(U, E)`` with ``top_k``
    non-zeros per row, ``a_t`` ``(E, D, r)`` (the stacked ``A_e.T``), ``b_t`` ``(E, r, O)`` (the stacked ``B_e.T``);
    returns ``(U, S, O)``: the experts' sum, or ``out`` (``U S O`` elements, e.g. the frozen linear's output) with
    the sum accumulated into it in place. ``rank_dropout``, when given, acts on the rank activations."""
    n_units, seq, d_in = x.shape
    n_exp = gates.shape[-1]
    vals, idx = gates.topk(top_k, dim=-1)  # (U, k): the selected experts (the others have gate 0)
    flat_e = idx.reshape(-1)  # (U k,) expert of each (decision, slot) pair
    order = flat_e.argsort(stable=True)  # pairs grouped by expert
    counts = torch.bincount(flat_e, minlength=n_exp)  # (E,)
    cap = int(counts.max())  # host sync: the padded group size C
    starts = counts.cumsum(0) - counts  # (E,) first sorted position of each expert
    sorted_e = flat_e[order]
    slot_sorted = sorted_e * cap + torch.arange(flat_e.numel(), device=x.device) - starts[sorted_e]
    # padded rows read decision 0 with gate 0: they add exactly nothing to outputs or gradients
    unit_of_slot = x.new_zeros(n_exp * cap, dtype=torch.long).index_copy_(0, slot_sorted, order // top_k)
    g_pad = gates.new_zeros(n_exp * cap).index_copy_(0, slot_sorted, vals.reshape(-1)[order])  # (E C,)
    x_pad = x.index_select(0, unit_of_slot)  # (E C, S, D)
    h = torch.bmm(x_pad.view(n_exp, cap * seq, d_in), a_t)  # (E, C S, r)
    h = h.view(n_exp * cap, seq, -1) * g_pad[:, None, None]  # (E C, S, r)
    if rank_dropout is not None:
        h = rank_dropout(h)
    y = torch.bmm(h.view(n_exp, cap * seq, -1), b_t)  # (E, C S, O)
    # each decision sums its k rows; padded rows are exact zeros added to decision 0
    into = x.new_zeros(n_units, seq, y.shape[-1]) if out is None else out.view(n_units, seq, -1)
    return into.index_add_(0, unit_of_slot, y.view(n_exp * cap, seq, -1))
