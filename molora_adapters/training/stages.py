"""`Stage`: one step of a disentangled tuning plan, and the MT4CrossOIE three-stage plan."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .targets import MIXTURE_TARGETS, STAGE_TARGETS, ParameterPredicate

_STAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

# TrainingArguments fields a stage may override, by Stage field name.
STAGE_ARGUMENT_FIELDS = (
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "lr_scheduler_type",
)

# Step cap of a stage limited only by its clock (`max_seconds` without `max_steps`/epochs).
BUDGET_STEP_CAP = 10**9


@dataclass(frozen=True)
class Stage:
    """One stage of a disentangled tuning plan: what trains, for how long, and how.

    Unset (``None``) optimisation fields fall back to the trainer's `TrainingArguments`. Every stage gets a fresh
    optimiser and learning-rate scheduler; parameters outside ``train`` are frozen (``requires_grad=False``) and are
    bitwise unchanged by the stage.

    Args:
        name (`str`): unique, path-safe stage name; checkpoints go to ``<output_dir>/stage-<i>-<name>/``.
        train (`Sequence[str | Callable[[str, nn.Parameter], bool]]`):
            registered targets (``"embeddings"``, ``"backbone"``, ``"mixture"``, ``"mixture_experts"``,
            ``"mixture_routers"``, ``"heads"``, see [`register_stage_target`]) or predicates on
            ``(parameter_name, parameter)``.
        num_train_epochs (`float`, *optional*): epochs of this stage (ignored when ``max_steps`` is set).
        max_steps (`int`, *optional*): optimisation steps of this stage; overrides epochs.
        learning_rate (`float`, *optional*): peak learning rate of this stage.
        warmup_steps (`int`, *optional*): linear warm-up steps (takes precedence over ``warmup_ratio``).
        warmup_ratio (`float`, *optional*): warm-up as a fraction of the stage's steps.
        weight_decay (`float`, *optional*): AdamW weight decay of this stage.
        lr_scheduler_type (`str`, *optional*): any `transformers.SchedulerType` value.
        head_learning_rate (`float`, *optional*): peak learning rate of the ``"heads"`` parameters in this stage (their
            own parameter group, same schedule); defaults to the stage's ``learning_rate``. A head that was trained
            in an earlier stage usually wants a smaller rate than freshly initialised mixture experts.
        max_seconds (`float`, *optional*): wall-clock training budget of the stage. The step count is re-fitted to
            the measured speed after every step (never more than ``max_steps`` / the epochs; without either, only
            the clock limits the stage) and the learning rate warms up and decays over that plan
            ([`BudgetSchedule`]), so stages and systems can be compared at equal time. Logging, evaluation and
            checkpoint saves do not count against the budget, and checkpoints hold only the trainable state.
        mixture (`str`, *optional*): the Mixture-of-LoRA block to activate and train. Defaults to the model's only
            mixture for stages with a mixture target; stages without one leave the active adapter setup alone.
        train_position_embeddings (`bool`, *optional*, defaults to `False`):
            whether the ``"embeddings"`` target also trains position and token-type embeddings. MT4CrossOIE keeps them
            frozen in stage 1: the stage tunes the *shared semantic space* (the word-embedding matrix) while the
            position information stays fixed, which relaxes the coupling between word and position information
            that pre-training learned jointly. Set `True` to tune all input embeddings together instead.
    """

    name: str
    train: Sequence[str | ParameterPredicate] = field(default_factory=tuple)
    num_train_epochs: float | None = None
    max_steps: int | None = None
    learning_rate: float | None = None
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    lr_scheduler_type: str | None = None
    head_learning_rate: float | None = None
    max_seconds: float | None = None
    mixture: str | None = None
    train_position_embeddings: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _STAGE_NAME_RE.match(self.name):
            raise ValueError(
                f"`Stage.name` must be a non-empty path-safe string (letters, digits, '_', '-', '.'), "
                f"got {self.name!r}."
            )
        train = (self.train,) if isinstance(self.train, str) or callable(self.train) else tuple(self.train)
        object.__setattr__(self, "train", train)
        if not train:
            raise ValueError(
                f"Stage `{self.name}` would train nothing: `train` is empty. Give targets such as "
                f"['embeddings', 'heads'] (available: {', '.join(STAGE_TARGETS.names())})."
            )
        for target in train:
            if callable(target):
                continue
            if not isinstance(target, str) or target not in STAGE_TARGETS:
                raise ValueError(
                    f"Stage `{self.name}`: unknown target {target!r} in `train`. Use one of "
                    f"{', '.join(STAGE_TARGETS.names())}, a predicate `(name, param) -> bool`, or register a new "
                    "target with `register_stage_target`."
                )
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps <= 0):
            raise ValueError(
                f"Stage `{self.name}`: `max_steps` must be a positive int, got {self.max_steps!r}."
            )
        if self.num_train_epochs is not None and self.num_train_epochs <= 0:
            raise ValueError(
                f"Stage `{self.name}`: `num_train_epochs` must be > 0, got {self.num_train_epochs!r}."
            )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"Stage `{self.name}`: `max_seconds` must be > 0, got {self.max_seconds!r}.")
        for name in ("learning_rate", "head_learning_rate", "weight_decay", "warmup_ratio", "warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Stage `{self.name}`: `{name}` must be >= 0, got {value!r}.")
        if self.warmup_ratio is not None and self.warmup_ratio > 1:
            raise ValueError(
                f"Stage `{self.name}`: `warmup_ratio` must be in [0, 1], got {self.warmup_ratio!r}."
            )
        if self.lr_scheduler_type is not None:
            from transformers import SchedulerType

            try:
                SchedulerType(self.lr_scheduler_type)
            except ValueError:
                raise ValueError(
                    f"Stage `{self.name}`: unknown `lr_scheduler_type` {self.lr_scheduler_type!r}; use one of "
                    f"{', '.join(s.value for s in SchedulerType)}."
                ) from None

    @property
    def trains_mixture(self) -> bool:
        """Whether the stage trains (and therefore activates) a Mixture-of-LoRA block."""
        return self.mixture is not None or any(t in MIXTURE_TARGETS for t in self.train if isinstance(t, str))

    def argument_overrides(self) -> dict[str, Any]:
        """The `TrainingArguments` values this stage sets (``max_steps=-1`` when it counts epochs)."""
        overrides = {k: getattr(self, k) for k in STAGE_ARGUMENT_FIELDS if getattr(self, k) is not None}
        if self.num_train_epochs is not None and self.max_steps is None:
            overrides["max_steps"] = -1
        if self.warmup_steps is not None and self.warmup_ratio is None:
            overrides["warmup_ratio"] = 0.0
        if self.warmup_ratio is not None and self.warmup_steps is None:
            overrides["warmup_steps"] = 0
        if self.max_seconds is not None and self.max_steps is None and self.num_train_epochs is None:
            overrides["max_steps"] = (
                BUDGET_STEP_CAP  # the clock stops the stage; no schedule is built on this
            )
        return overrides

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (predicates by qualified name)."""
        data = asdict(self) | {"train": [_target_label(t) for t in self.train]}
        return {f.name: data[f.name] for f in fields(self)}


_PLAIN = (str, int, float, bool, type(None), bytes)


def _code_digest(code: Any, closure: tuple | None = None) -> str:
    """A stable digest of a function body: bytecode, constants (nested code by digest), names and plain closure
    values. Lambdas all share the name ``<lambda>``, so their fingerprint needs what they compute."""
    consts = [
        _code_digest(c)
        if hasattr(c, "co_code")
        else repr(c)
        if isinstance(c, _PLAIN + (tuple, frozenset))
        else ""
        for c in code.co_consts
    ]
    cells = []
    for cell in closure or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            value = None
        cells.append(
            repr(value) if isinstance(value, _PLAIN + (tuple, frozenset)) else type(value).__qualname__
        )
    payload = json.dumps([code.co_code.hex(), consts, list(code.co_names), cells])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _target_label(target: str | ParameterPredicate) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", "")
    qualname = getattr(target, "__qualname__", type(target).__name__)
    label = f"{module}.{qualname}"
    code = getattr(target, "__code__", None)
    if code is not None and ("<lambda>" in qualname or "<locals>" in qualname):
        # anonymous or local: the name does not identify the predicate, what it computes does
        label += f" #{_code_digest(code, getattr(target, '__closure__', None))}"
    return f"<predicate {label}>"


def validate_plan(stages: Sequence[Stage]) -> tuple[Stage, ...]:
    """Check a plan is non-empty, made of `Stage` objects, with unique names; returns it as a tuple."""
    stages = tuple(stages)
    if not stages:
        raise ValueError("`stages` is empty; give at least one `Stage` (e.g. `MT4CROSSOIE_STAGES`).")
    for i, stage in enumerate(stages):
        if not isinstance(stage, Stage):
            raise TypeError(f"`stages[{i}]` must be a `Stage`, got {type(stage).__name__}.")
    names = [s.name for s in stages]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Stage names must be unique; repeated: {duplicates}.")
    return stages


def plan_fingerprint(stages: Sequence[Stage]) -> str:
    """A short stable hash of a plan's structure: stage order, names, targets and mixtures.

    A checkpoint resumes only under a plan with the same fingerprint. Optimisation settings (learning rate, steps,
    warm-up) are left out so that they can be changed on resume, as with `transformers.Trainer`.
    """
    keys = ("name", "train", "mixture", "train_position_embeddings")
    payload = json.dumps([{k: s.to_dict()[k] for k in keys} for s in stages], sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


MT4CROSSOIE_STAGES: tuple[Stage, ...] = (
    Stage(name="embeddings", train=("embeddings", "heads")),
    Stage(name="backbone", train=("backbone", "heads")),
    Stage(name="mixture", train=("mixture", "heads")),
)
"""MT4CrossOIE's plan (arXiv 2308.06552): (1) word embeddings with the encoder and position embeddings frozen,
(2) everything else with the word embeddings frozen, (3) Mixture-of-LoRA experts and routers with the pre-trained
model frozen. Task heads train in every stage; epochs, learning rates etc. come from `TrainingArguments` unless you
build your own stages, e.g. ``dataclasses.replace(MT4CROSSOIE_STAGES[2], learning_rate=1e-3)``."""
