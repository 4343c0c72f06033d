"""Worker for the 2-process DDP test (run by `torch.distributed.run`); also importable for the reference run.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/training_ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from molora_adapters.training import MT4CROSSOIE_STAGES, StagedTrainer  # noqa: E402
from tests.training_utils import tagging_model, toy_dataset, training_args  # noqa: E402

GLOBAL_BATCH = 4

# MT4CrossOIE's three stages, two steps each
DDP_STAGES = tuple(dataclasses.replace(s, max_steps=2) for s in MT4CROSSOIE_STAGES)


def ddp_model():
    model = tagging_model()
    torch.manual_seed(7)
    # Dense routing (top_k = n_experts) keeps the comparison continuous: with top-1 a near tie could flip on a
    # 1e-8 reduction-order difference. No balancing loss: each DDP rank balances its own micro-batch, which by
    # design differs from balancing the global batch.
    model.add_adapter_mixture(["en", "de"], top_k=2, load_balancing_coef=0.0)
    for name, p in model.named_parameters():
        if ".loras." in name and name.endswith("lora_B"):
            torch.nn.init.normal_(p, std=0.05)  # non-zero experts, so that the routers get gradients
    return model


def run(out_dir: str, world_size: int) -> dict[str, torch.Tensor]:
    args = training_args(
        out_dir,
        per_device_train_batch_size=GLOBAL_BATCH // world_size,
        ddp_backend="gloo" if world_size > 1 else None,
        logging_steps=1,
    )
    # Row-sparse embedding updates are single-process only (DDP uses dense AdamW), so the reference runs dense too.
    # The continued data stream is off here: with it, DDP and one process still agree on stages 1-2 but not yet on
    # the mixture stage (open issue, see CHANGELOG), so this test keeps checking DDP staging on per-stage orders.
    trainer = StagedTrainer(
        model=ddp_model(),
        args=args,
        stages=DDP_STAGES,
        train_dataset=toy_dataset(),
        sparse_embedding_updates=False,
        continue_data_stream=False,
    )
    trainer.train()
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    params = run(str(out / "run"), int(os.environ["WORLD_SIZE"]))
    torch.save(params, out / f"rank{os.environ['RANK']}.pt")
