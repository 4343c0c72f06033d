"""`StageCallback`: switches stages (freezing/unfreezing, mixture activation) and exports the current stage.

The callback is an `ExportableState`, so every checkpoint's ``trainer_state.json`` records the plan fingerprint and
the stage the checkpoint belongs to; resuming reads it to continue in the right stage.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence

from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from .stages import Stage
from .targets import resolve_stage_mixture, resolve_stage_parameters

logger = logging.getLogger(__name__)


class StageCallback(TrainerCallback, ExportableState):
    """Holds the current stage of a staged run and applies a stage to the model.

    Args:
        plan_fingerprint (`str`): [`plan_fingerprint`] of the plan being trained.
        stage_names (`list[str]`): names of the plan's stages, in order (for error messages).
        stage_index (`int`, *optional*, defaults to 0): the current stage.
        trainable (`Sequence[str]`, *optional*): names of the parameters the current stage trains (exported, so
            that a callback restored with ``restore_callback_states_from_checkpoint=True`` keeps its check).
    """

    def __init__(
        self,
        plan_fingerprint: str,
        stage_names: list[str],
        stage_index: int = 0,
        trainable: Sequence[str] | None = None,
    ) -> None:
        self.plan_fingerprint = plan_fingerprint
        self.stage_names = list(stage_names)
        self.stage_index = stage_index
        self.trainable: set[str] = set(trainable or ())

    def state(self) -> dict:
        return {
            "args": {
                "plan_fingerprint": self.plan_fingerprint,
                "stage_names": self.stage_names,
                "stage_index": self.stage_index,
                "trainable": sorted(self.trainable),
            },
            "attributes": {},
        }

    def enter_stage(
        self, model: nn.Module, stages: Sequence[Stage], index: int
    ) -> tuple[set[str], str | None]:
        """Make stage ``index`` current: activate its mixture and train exactly its parameters.

        Returns:
            The names of the trainable parameters and the activated mixture (or `None`).
        """
        stage = stages[index]
        mixture = None
        if stage.trains_mixture:
            mixture = resolve_stage_mixture(model, stage)
            # Activates the mixture (experts + routers) the way `train_adapter` activates adapters.
            model.train_adapter_mixture(mixture, train_experts=True)
        trainable = resolve_stage_parameters(model, stage)
        base = getattr(model, "base_model", model)
        if hasattr(base, "freeze_model"):
            # Keep adapters' `model_frozen` flag truthful: it is True only when no pre-trained weight trains.
            base_ids = {id(p) for p in base.parameters()}
            base_trains = any(id(p) in base_ids and n in trainable for n, p in model.named_parameters())
            base.freeze_model(not base_trains)
        for name, param in model.named_parameters():
            param.requires_grad_(name in trainable)
        self.stage_index = index
        self.trainable = trainable
        return trainable, mixture

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model=None, **kwargs
    ):
        if model is None or not self.trainable:
            return
        actual = {n for n, p in model.named_parameters() if p.requires_grad}
        if actual != self.trainable:
            extra, missing = sorted(actual - self.trainable), sorted(self.trainable - actual)
            raise RuntimeError(
                f"Stage `{self.stage_names[self.stage_index]}`: trainable parameters changed after the stage was "
                f"entered (unexpected: {extra[:3]}, missing: {missing[:3]}). Do not call `train_adapter` or "
                "toggle `requires_grad` between stages; express the change as a `Stage` target."
            )


_BUDGET_SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")


class BudgetSchedule:
    """Learning-rate multiplier of a stage with a wall-clock budget, over a horizon that is re-fitted while it runs.

    The multiplier is the `transformers` schedule of the same name (linear warm-up, then linear or cosine decay to 0
    at ``horizon``) with the warm-up a fraction of the *current* horizon, so warm-up and decay always fit the steps
    the clock will allow. [`StageClockCallback`] sets ``horizon`` after every step. A callable object (not a
    closure) so that `LambdaLR` saves and restores its state with a checkpoint.

    Args:
        kind (`str`): ``"linear"``, ``"cosine"``, ``"constant"`` or ``"constant_with_warmup"``.
        horizon (`int`): the planned number of steps (first guess; re-fitted).
        warmup_ratio (`float`, *optional*, defaults to 0): warm-up as a fraction of the horizon.
        warmup_steps (`int`, *optional*, defaults to 0): fixed warm-up steps (take precedence when > 0).
    """

    def __init__(self, kind: str, horizon: int, warmup_ratio: float = 0.0, warmup_steps: int = 0) -> None:
        if kind not in _BUDGET_SCHEDULES:
            raise ValueError(
                f"A stage with `max_seconds` needs `lr_scheduler_type` in {', '.join(_BUDGET_SCHEDULES)}, got "
                f"{kind!r}."
            )
        self.kind, self.horizon = kind, max(1, int(horizon))
        self.warmup_ratio, self.warmup_steps = float(warmup_ratio), int(warmup_steps)

    @property
    def warmup(self) -> int:
        """Warm-up steps of the current horizon."""
        if self.kind == "constant":
            return 0
        return self.warmup_steps if self.warmup_steps > 0 else math.ceil(self.warmup_ratio * self.horizon)

    def __call__(self, step: int) -> float:
        warmup = self.warmup
        if step < warmup:
            return step / max(1, warmup)
        if self.kind.startswith("constant"):
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, self.horizon - warmup))
        if self.kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def fit_horizon(step: int, done: int, elapsed: float, budget: float, first_step_seconds: float) -> int:
    """Steps a budgeted stage can run in total: the steps done, plus the remaining budget at the mean speed so far.

    The first step (allocation, lazy initialisation) is left out of the mean once three steps have run, so it does
    not bias the plan low. Returns ``step`` (stop now) when no further step fits.

    Args:
        step (`int`): the current global step.
        done (`int`): steps run in this stage since the clock started (``>= 1``).
        elapsed (`float`): seconds counted against the budget so far.
        budget (`float`): the stage's budget in seconds.
        first_step_seconds (`float`): seconds of the first timed step.
    """
    if done >= 3:
        per_step = (elapsed - first_step_seconds) / (done - 1)
    else:
        per_step = elapsed / done
    remaining = budget - elapsed
    if remaining <= 0 or per_step <= 0:
        return step
    return step + int(remaining / per_step)


class StageClockCallback(TrainerCallback, ExportableState):
    """Fits a stage with ``Stage.max_seconds`` into its wall-clock budget.

    The stage's learning rate follows a [`BudgetSchedule`] (the mixin builds it instead of Trainer's scheduler).
    After every optimisation step the callback re-fits the plan (the steps that fit the budget at the mean speed
    measured so far, see [`fit_horizon`]; at most the stage's own ``max_steps``/epochs), sets ``state.max_steps``
    and the schedule's horizon to it, so warm-up and decay complete within the clock whatever the real speed. It
    stops the stage when the budget is spent.

    Only training counts: time spent in logging, evaluation and checkpoint saves (`paused`) is excluded. The counted
    seconds are exported with every checkpoint, so a resumed stage continues with what is left of its budget.

    Args:
        trainer: the staged trainer (its ``current_stage`` and ``lr_scheduler`` are used).
        clock (`Callable[[], float]`, *optional*, defaults to `time.perf_counter`): the time source (tests pass a
            fake clock).
    """

    def __init__(self, trainer, clock: Callable[[], float] = time.perf_counter) -> None:
        self.trainer = trainer
        self.clock = clock
        self._start: float | None = None
        self._paused = 0.0
        self._pause_start: float | None = None
        self._before = 0.0  # seconds counted before a resume
        self._first_step = 0
        self._first_step_seconds = 0.0
        self._cap = 0
        self.schedule: BudgetSchedule | None = None
        self.planned_steps: int | None = None

    def state(self) -> dict:
        return {"args": {}, "attributes": {"counted_seconds": self.elapsed()}}

    def _budget(self) -> float | None:
        stage = self.trainer.current_stage
        return None if stage is None else stage.max_seconds

    def elapsed(self) -> float:
        """Seconds of the current stage counted against its budget (pauses excluded, resumed time included)."""
        if self._start is None:
            return self._before
        now = self.clock()
        ongoing = 0.0 if self._pause_start is None else now - self._pause_start
        return self._before + now - self._start - self._paused - ongoing

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside this context does not count against the budget."""
        self._pause_start = self.clock()
        try:
            yield
        finally:
            self._paused += self.clock() - self._pause_start
            self._pause_start = None

    def on_train_begin(self, args, state, control, **kwargs):
        record = (state.stateful_callbacks or {}).get(type(self).__name__) if state.global_step else None
        if isinstance(record, list):
            record = record[-1] if record else None
        self._before = float((record or {}).get("attributes", {}).get("counted_seconds", 0.0))
        self._start, self._paused, self._first_step = self.clock(), 0.0, state.global_step
        self._cap = state.max_steps  # the stage's own step limit; the plan never exceeds it
        self.planned_steps = None

    def on_step_end(self, args, state, control, **kwargs):
        budget = self._budget()
        if budget is None or self._start is None:
            return
        elapsed, done = self.elapsed(), state.global_step - self._first_step
        if done == 1:
            self._first_step_seconds = elapsed - self._before
        fit = fit_horizon(
            state.global_step, done, elapsed - self._before, budget - self._before, self._first_step_seconds
        )
        horizon = min(self._cap, fit)
        self.planned_steps = max(horizon, state.global_step)
        if horizon <= state.global_step:
            control.should_training_stop = True
            return
        state.max_steps = horizon
        for cb in self.trainer.callback_handler.callbacks:  # a progress bar shows the plan, not the step cap
            bar = getattr(cb, "training_bar", None)
            if bar is not None and bar.total != horizon:
                bar.total = horizon
                bar.refresh()
        if self.schedule is not None:
            self.schedule.horizon = horizon
            self._reapply(self.trainer.lr_scheduler)
        if done == 1 or state.global_step % max(1, args.logging_steps) == 0:
            logger.debug(
                "Stage `%s`: %.3f s/step so far, plan %d steps for its %.0f s budget.",
                self.trainer.current_stage.name,
                (elapsed - self._before) / done,
                horizon,
                budget,
            )

    def _reapply(self, scheduler) -> None:
        """Set the rate of the coming step from the re-fitted plan (the scheduler stepped before this callback)."""
        if not isinstance(getattr(scheduler, "lr_lambdas", None), list):
            return
        rates = [
            base * fn(scheduler.last_epoch)
            for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)
        ]
        for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        scheduler._last_lr = rates
