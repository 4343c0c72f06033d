"""`StageCallback`: switches stages (freezing/unfreezing, mixture activation) and exports the current stage.

The callback is an `ExportableState`, so every checkpoint's ``trainer_state.json`` records the plan fingerprint and
the stage the checkpoint belongs to; resuming reads it to continue in the right stage.
"""

from __future__ import annotations

import logging
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
