"""`RowSparseAdamW`: AdamW that updates only the embedding rows a batch used.

A 250k x 384 word-embedding matrix is 96M parameters, of which a batch of 16 short sentences touches a few hundred
rows; dense AdamW still reads and writes the whole matrix, its gradient and both moments at every step (38% of a
full fine-tuning step on 2 CPU cores). With ``nn.Embedding(sparse=True)`` the gradient holds only the used rows, and
this optimiser updates exactly those rows. Other parameters (dense gradients) get plain ``torch.optim.AdamW``.

**Exactness.** A row that got no gradient for ``k`` steps is caught up when it is next used: its moments are
multiplied by ``beta1 ** k`` and ``beta2 ** k`` and its weight decay by the product of ``(1 - lr_s * wd)`` over the
skipped steps ``s`` -- exactly what dense AdamW does to a zero-gradient row. Then the step is dense AdamW's step
(same bias corrections, from the global step count). Where it differs from dense AdamW:

1. dense AdamW also *moves* a zero-gradient row on skipped steps, by ``lr * m_hat / (sqrt(v_hat) + eps)`` with its
   decaying first moment; this optimiser does not (as ``torch.optim.SparseAdam`` and "lazy Adam");
2. weight decay of a skipped row is applied when the row is next used, so a forward pass in between sees the row
   without its last ``k`` decay factors (``(1 - lr * wd) ** k``: 1e-5 per step at lr 1e-3, wd 0.01); rows never
   used again keep their pending decay.

With ``beta1 = 0`` and no weight decay the two are identical (tested), as they are when every row is used at every
step.

**Gradient clipping.** ``torch.nn.utils.clip_grad_norm_`` cannot take sparse gradients, so ``max_grad_norm``
clips here, over all parameters (the norm of a sparse gradient is that of its dense equivalent); the trainer sets
``TrainingArguments.max_grad_norm = 0`` for stages that use this optimiser (see `DisentangledTuningMixin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class RowSparseAdamW(torch.optim.AdamW):
    """`torch.optim.AdamW` plus exact-catch-up row updates for parameters with sparse gradients.

    Args:
        params: parameters or parameter groups, as for `torch.optim.AdamW`.
        lr, betas, eps, weight_decay: as for `torch.optim.AdamW` (``amsgrad`` is not supported for sparse rows).
        max_grad_norm (`float`, *optional*): clip the global gradient norm (dense and sparse) to this value before
            the step; ``None`` or ``0`` disables clipping. The last norm is in ``last_grad_norm``.
        **kwargs: other `torch.optim.AdamW` options for the dense parameters, ``fused`` and ``foreach`` included
            (``fused=True``, as the Trainer's default optimiser ``adamw_torch_fused`` sets it, runs the dense
            parameters' update as one kernel per parameter instead of about 30 small ops each; equal to the loop to
            float rounding). Sparse rows are updated as below either way. On the default run's stage 1 (the OIE
            head's 37 tensors, 7.3M values, plus the embedding rows) a step took 54.6 ms of CPU and 1,748 ops
            before issue 26 (loop, clipping through squared copies), 24.8 ms and 632 ops fused (1 thread).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        max_grad_norm: float | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("amsgrad"):
            raise ValueError("`amsgrad=True` is not supported by `RowSparseAdamW`.")
        if max_grad_norm is not None and max_grad_norm < 0:
            raise ValueError(f"`max_grad_norm` must be >= 0 or None, got {max_grad_norm!r}.")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)
        self.max_grad_norm = max_grad_norm
        self.last_grad_norm: float | None = None

    @torch.no_grad()
    def clip_gradients(self, max_norm: float) -> torch.Tensor:
        """Scale all gradients (dense and sparse) so that their global L2 norm is at most ``max_norm``.

        The norm is taken per gradient (``torch.linalg.vector_norm``, no squared copy of the gradient), then over
        those norms, as ``torch.nn.utils.clip_grad_norm_`` does."""
        norms, grads = [], []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    p.grad = p.grad.coalesce()  # duplicates summed: the norm of the dense equivalent
                    values = p.grad._values()
                else:
                    values = p.grad
                grads.append(values)
                norms.append(torch.linalg.vector_norm(values, 2.0, dtype=torch.float32))
        total = torch.linalg.vector_norm(torch.stack(norms), 2.0) if norms else torch.zeros(())
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        by_dtype: dict[torch.dtype, torch.Tensor] = {}
        for values in grads:
            if values.dtype not in by_dtype:
                by_dtype[values.dtype] = scale.to(values.dtype)
            values.mul_(by_dtype[values.dtype])
        return total

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.max_grad_norm:
            self.last_grad_norm = float(self.clip_gradients(self.max_grad_norm))
        sparse = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    sparse.append((group, p, p.grad))
                    p.grad = (
                        None  # hidden from the dense AdamW step, which skips parameters without a gradient
                    )
        try:
            super().step()
        finally:
            for _, p, grad in sparse:
                p.grad = grad
        for group, p, grad in sparse:
            self._sparse_step(group, p, grad)
        return loss

    def _sparse_step(self, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor) -> None:
        beta1, beta2 = group["betas"]
        lr, wd, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            # per row: global step of its last update, and the running log-product of weight-decay factors then
            state["row_step"] = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
            state["row_log_decay"] = torch.zeros(p.shape[0], dtype=torch.float64, device=p.device)
            state["log_decay"] = torch.zeros((), dtype=torch.float64)
        if group.get("maximize"):
            raise ValueError("`maximize=True` is not supported for sparse gradients by `RowSparseAdamW`.")
        grad = grad.coalesce()
        rows, values = grad._indices()[0], grad._values().to(p.dtype)
        if rows.numel() == 0:
            return
        state["step"] += 1
        t = float(state["step"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

        # catch up the k skipped (zero-gradient) steps of each row, exactly as dense AdamW would have done
        skipped = (t - 1.0 - state["row_step"][rows]).clamp(min=0.0).unsqueeze(1)  # (n_rows, 1)
        m = exp_avg[rows] * torch.pow(beta1, skipped).to(p.dtype)
        v = exp_avg_sq[rows] * torch.pow(beta2, skipped).to(p.dtype)
        pending = (state["log_decay"] - state["row_log_decay"][rows]).exp().to(p.dtype).unsqueeze(1)
        w = p[rows] * pending

        # this step: dense AdamW's update of these rows
        m.mul_(beta1).add_(values, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(values, values, value=1.0 - beta2)
        bias1, bias2 = 1.0 - beta1**t, 1.0 - beta2**t
        w.mul_(1.0 - lr * wd)
        denom = (v.sqrt() / math.sqrt(bias2)).add_(eps)
        w.addcdiv_(m, denom, value=-lr / bias1)
        if wd:
            state["log_decay"] += math.log1p(-lr * wd)

        exp_avg[rows], exp_avg_sq[rows], p[rows] = m, v, w
        state["row_step"][rows] = t
        state["row_log_decay"][rows] = state["log_decay"]


def build_stage_param_groups(
    model: torch.nn.Module,
    *,
    decay: set[str],
    weight_decay: float,
    head_names: set[str] | None = None,
    head_learning_rate: float | None = None,
) -> list[dict[str, Any]]:
    """Trainer-style parameter groups (weight decay / none) of the trainable parameters, with the ``head_names``
    parameters in their own groups at ``head_learning_rate`` when it is given.

    Args:
        model (`nn.Module`): the model (names as in ``named_parameters()``).
        decay (`set[str]`): names that get weight decay (``Trainer.get_decay_parameter_names``).
        weight_decay (`float`): the decay of those.
        head_names (`set[str]`, *optional*): the prediction-head parameters.
        head_learning_rate (`float`, *optional*): their peak learning rate.
    """
    head_names = head_names or set()
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (head_learning_rate is not None and name in head_names, name in decay)
            groups.setdefault(key, []).append(param)
    out = []
    for (is_head, decays), params in sorted(groups.items()):
        group: dict[str, Any] = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if is_head:
            group["lr"] = head_learning_rate
        out.append(group)
    return out
