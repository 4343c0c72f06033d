"""Ready-made staged trainers: `StagedTrainer` (on `transformers.Trainer`) and `StagedAdapterTrainer`."""

from __future__ import annotations

from adapters.trainer import AdapterTrainer
from transformers import Trainer

from .mixin import DisentangledTuningMixin


class StagedTrainer(DisentangledTuningMixin, Trainer):
    """`transformers.Trainer` running a plan of `Stage`s (default: `MT4CROSSOIE_STAGES`).

    Example:

    ```python
    from molora_adapters.training import MT4CROSSOIE_STAGES, StagedTrainer

    trainer = StagedTrainer(model=model, args=TrainingArguments("out"), stages=MT4CROSSOIE_STAGES,
                            train_dataset=train, data_collator=collator)
    trainer.train()  # stage 1, 2, 3 in order; `trainer.train(resume_from_checkpoint=True)` resumes
    ```
    """


class StagedAdapterTrainer(DisentangledTuningMixin, AdapterTrainer):
    """`adapters.AdapterTrainer` running a plan of `Stage`s; its checkpoints stay adapter-sized in stages that
    train only adapters/mixtures and heads. Needs an active adapter setup at construction, like AdapterTrainer."""
