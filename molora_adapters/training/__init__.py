"""Disentangled (staged) tuning: embeddings -> backbone -> Mixture-of-LoRA, as in MT4CrossOIE."""

from ..loading import load_staged_model
from .averaging import CheckpointAveragingCallback, average_checkpoints
from .callback import StageCallback, StageClockCallback
from .mixin import DisentangledTuningMixin
from .optim import RowSparseAdamW
from .precision import autocast_bf16_available
from .sampling import StreamSampler
from .stages import MT4CROSSOIE_STAGES, Stage, plan_fingerprint
from .targets import STAGE_TARGETS, register_stage_target
from .trainer import StagedAdapterTrainer, StagedTrainer

__all__ = [
    "CheckpointAveragingCallback",
    "DisentangledTuningMixin",
    "MT4CROSSOIE_STAGES",
    "RowSparseAdamW",
    "STAGE_TARGETS",
    "Stage",
    "StageCallback",
    "StageClockCallback",
    "StagedAdapterTrainer",
    "StagedTrainer",
    "StreamSampler",
    "autocast_bf16_available",
    "average_checkpoints",
    "load_staged_model",
    "plan_fingerprint",
    "register_stage_target",
]
