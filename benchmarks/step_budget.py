"""Training-time budgets given as steps: the same compute on a quiet or a busy machine.

A wall-clock budget gives a run on a loaded machine fewer steps, so its scores depend on what else ran beside it.
The quality benchmarks instead convert "``seconds`` of training on 2 quiet cores" into steps per stage with the
stages' throughput measured there, and train by steps: a busy machine then changes the wall time, never the result.
Used by `select_recipe.py` (dev search) and `quality_oie.py` (the comparison).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from molora_adapters.oie.recipes import OIERecipe  # noqa: E402

# Training steps per second on 2 quiet cores: the default run's stages 1-3 at 59.6 / 48.5 / 44.4 (sentence,
# predicate) examples per second (bench_train_stages.md) over 32 examples per step (a batch of 16 sentences holds
# 32.3 on average in this stream: 59,372 examples in 1,840 steps). `full` trains what stages 1 and 2 train together:
# stage 2's rate (the embedding update is row-sparse); `head` runs the frozen encoder forward only: at least stage 1's.
# A one-expert mixture (`single_lora`) steps at the mixture's rate (bench_train_stages.md: mixture step / single-LoRA
# step 1.00x with rank-space dropout).
STEPS_PER_SECOND = {
    "embeddings": 1.8625,
    "backbone": 1.5156,
    "mixture": 1.3875,
    "full": 1.5156,
    "head": 1.8625,
}


def steps_for_budget(recipe: OIERecipe, seconds: float) -> OIERecipe:
    """``recipe`` trained by steps: each stage gets its share of ``seconds`` at its measured steps per second."""
    if not seconds > 0:
        raise ValueError(f"budget must be > 0 seconds, got {seconds!r}")
    unknown = [k for k in recipe.stages if k not in STEPS_PER_SECOND]
    if unknown:
        raise ValueError(
            f"no measured steps per second for stage kind(s) {unknown}; known: {sorted(STEPS_PER_SECOND)}"
        )
    steps = tuple(
        max(1, round(seconds * share * STEPS_PER_SECOND[kind]))
        for kind, share in zip(recipe.stages, recipe.split, strict=True)
    )
    return recipe.replace(max_steps=steps, time_budget=None)


def equivalent_seconds(recipe: OIERecipe) -> float:
    """The quiet-machine training seconds that ``recipe``'s step counts stand for."""
    return sum(n / STEPS_PER_SECOND[k] for n, k in zip(recipe.stage_steps(), recipe.stages, strict=True))
