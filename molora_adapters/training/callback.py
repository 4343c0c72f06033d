"""`StageCallback`: switches stages (freezing/unfreezing, mixture activation) and exports the current stage.

The callback is an `ExportableState`, so every checkpoint's ``trainer_state.json`` records the plan fingerprint and
the stage the checkpoint belongs to; resuming reads it to continue in the right stage.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence

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


class StageClockCallback(TrainerCallback):
    """Fits a stage with ``Stage.max_seconds`` into its wall-clock budget.

    After ``calibration_steps`` optimisation steps it measures the seconds per step, sets ``state.max_steps`` to the
    steps that fit the budget (at most the stage's own ``max_steps``/epochs) and rebuilds the learning-rate schedule
    for that horizon (warm-up and decay complete within the budget). It also stops the stage once the budget is
    spent. After a resume the budget counts from the resumed step (the time before the interruption is not known).

    Args:
        trainer: the staged trainer (its ``current_stage``, ``optimizer`` and ``create_scheduler`` are used).
        calibration_steps (`int`, *optional*, defaults to 5): steps timed before the horizon is set.
    """

    def __init__(self, trainer, calibration_steps: int = 5) -> None:
        self.trainer = trainer
        self.calibration_steps = calibration_steps
        self._start: float | None = None
        self._first_step = 0
        self._calibrated = False

    def _budget(self) -> float | None:
        stage = self.trainer.current_stage
        return None if stage is None else stage.max_seconds

    def on_train_begin(self, args, state, control, **kwargs):
        self._start, self._first_step, self._calibrated = time.perf_counter(), state.global_step, False

    def on_step_end(self, args, state, control, **kwargs):
        budget = self._budget()
        if budget is None or self._start is None:
            return
        elapsed = time.perf_counter() - self._start
        done = state.global_step - self._first_step
        if elapsed >= budget:
            control.should_training_stop = True
            return
        if not self._calibrated and done >= self.calibration_steps:
            self._calibrated = True
            fit = self._first_step + int(budget / (elapsed / done))
            horizon = max(state.global_step + 1, min(state.max_steps, fit))
            if horizon != state.max_steps:
                logger.info(
                    "Stage `%s`: %.2f s/step, %d steps fit its %.0f s budget (was %d).",
                    self.trainer.current_stage.name,
                    elapsed / done,
                    horizon,
                    budget,
                    state.max_steps,
                )
                state.max_steps = horizon
                self._rebuild_schedule(horizon, state.global_step)

    def _rebuild_schedule(self, horizon: int, step: int) -> None:
        trainer = self.trainer
        if trainer.optimizer is None or trainer.lr_scheduler is None:
            return
        trainer.lr_scheduler = None
        trainer.create_scheduler(num_training_steps=horizon, optimizer=trainer.optimizer)
        with warnings.catch_warnings():  # the optimiser did step, before this scheduler existed
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)`")
            for _ in range(step):  # advance the fresh schedule to the current step
                trainer.lr_scheduler.step()
