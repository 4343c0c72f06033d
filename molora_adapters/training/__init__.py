"""Disentangled (staged) tuning: embeddings -> backbone -> Mixture-of-LoRA, as in MT4CrossOIE."""

from .averaging import CheckpointAveragingCallback, average_checkpoints
from .callback import StageCallback
from .checkpointing import load_staged_model
from .mixin import DisentangledTuningMixin
from .stages import MT4CROSSOIE_STAGES, Stage, plan_fingerprint
from .targets import STAGE_TARGETS, register_stage_target
from .trainer import StagedAdapterTrainer, StagedTrainer

__all__ = [
    "CheckpointAveragingCallback",
    "DisentangledTuningMixin",
    "MT4CROSSOIE_STAGES",
    "STAGE_TARGETS",
    "Stage",
    "StageCallback",
    "StagedAdapterTrainer",
    "StagedTrainer",
    "average_checkpoints",
    "load_staged_model",
    "plan_fingerprint",
    "register_stage_target",
]
