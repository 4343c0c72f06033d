"""Worker for the 2-process DDP test (run by `torch.distributed.run`); also importable for the reference run.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/training_ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from molora_adapters.training import Stage, StagedTrainer  # noqa: E402
from tests.training_utils import tagging_model, toy_dataset, training_args  # noqa: E402

GLOBAL_BATCH = 4

DDP_STAGES = (
    Stage("embeddings", ("embeddings", "heads"), max_steps=2),
    Stage("backbone", ("backbone", "heads"), max_steps=2, learning_rate=1e-3),
    Stage("lora", (lambda n, p: ".loras.lora." in n, "heads"), max_steps=2),
)


def ddp_model():
    from adapters import LoRAConfig

    model = tagging_model()
    torch.manual_seed(3)
    model.add_adapter("lora", config=LoRAConfig(r=2, init_weights="bert"))  # non-zero B: LoRA affects outputs
    model.set_active_adapters("lora")
    return model


def run(out_dir: str, world_size: int) -> dict[str, torch.Tensor]:
    args = training_args(
        out_dir,
        per_device_train_batch_size=GLOBAL_BATCH // world_size,
        ddp_backend="gloo" if world_size > 1 else None,
        logging_steps=1,
    )
    trainer = StagedTrainer(model=ddp_model(), args=args, stages=DDP_STAGES, train_dataset=toy_dataset())
    trainer.train()
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    params = run(str(out / "run"), int(os.environ["WORLD_SIZE"]))
    torch.save(params, out / f"rank{os.environ['RANK']}.pt")
