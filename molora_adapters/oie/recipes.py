"""`OIERecipe`: the cross-lingual OIE training plan as one validated, serialisable object.

The example (`examples/oie_crosslingual.py`), `molora train` and `benchmarks/quality_oie.py` all train through
[`train_recipe`] / [`run_recipe`], so the stage plan, budget split, learning rates, experts and data mix live here
and nowhere else. Presets (`OIERecipe.from_preset`) name the systems of the quality benchmark::

    from molora_adapters.oie.recipes import OIERecipe, run_recipe

    recipe = OIERecipe.from_preset("mt4crossoie", time_budget=600)
    results = run_recipe(recipe, "runs/mt4crossoie")  # resumable: rerun to continue

This module imports torch and the trainer only inside the functions that train; inference never imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ..version import __version__
from .evaluation import DEV_EVALUATIONS, TEST_EVALUATIONS

STAGE_KINDS = ("embeddings", "backbone", "mixture", "head", "full")
"""``embeddings``/``backbone``/``mixture``: MT4CrossOIE's stages 1-3; ``head``: the head alone (the control of
stage 3); ``full``: one-stage full fine-tuning (Multi2OIE)."""

DEFAULT_BUDGET_SPLIT: dict[int, tuple[float, ...]] = {1: (1.0,), 2: (0.3, 0.7), 3: (0.2, 0.4, 0.4)}
"""Share of a system's budget (steps, or seconds with a time budget) that each stage gets, by number of stages."""

# Peak rates per stage kind: (its parameters, the head). Stage 1 starts a fresh head, so it needs a high head rate
# to learn anything in a short stage; later stages refine the head at a lower rate (a fresh AdamW at the mixture's
# 5e-4 undoes what the head learnt).
STAGE_LEARNING_RATES: dict[str, tuple[float, float]] = {
    "embeddings": (5e-4, 1e-3),
    "backbone": (1e-4, 3e-4),
    "mixture": (5e-4, 1e-4),
    "head": (1e-4, 1e-4),
    "full": (1e-4, 1e-3),
}
DEFAULT_STEPS = 300
"""Total steps of a step-based run without ``max_steps`` (the default run: about 10 minutes on 2 quiet cores)."""

DATA_EXPERTS = ("en", "de", "zh", "es", "ar", "hi")
"""One expert per language that has training data: English corpora, and the vendored projected XQuAD corpus (es
603, de 503, hi 479, ar 299, zh 240 records). pt has only the 8 leak-free few-shot sentences, so it has no expert."""
EXPERT_FALLBACK = {"pt": "es", "te": "hi"}
"""Languages without an expert route (and are supervised) to the expert of the closest language with data: pt to
es (Romance), te to hi (Indic, the closest with data); anything else to ``en``."""
ROUTED_LANGUAGES = ("en", "de", "zh", "es", "pt", "ar", "hi", "te")

ENGLISH_CORPORA = ("oie2016", "imojie", "lsoie-gpt")
"""Every vendored, permissively licensed English corpus (see `molora_adapters/resources/oie_train/SOURCES.md`)."""

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "mt4crossoie": ("MT4CrossOIE: stages 1+2+mixture (top-2, token) + projected data", {}),
    "mt4crossoie_no_projected": (
        "ablation: MT4CrossOIE without the projected data",
        {"projected_data": (), "projected_dev_sentences": 0},
    ),
    "mt4crossoie_unsupervised": (
        "ablation: no language supervision, natural language mix",
        {"language_loss_coef": 0.0, "language_alpha": None},
    ),
    "mt4crossoie_top1": ("ablation: top-1", {"top_k": 1}),
    "mt4crossoie_dense": ("ablation: every expert (dense)", {"top_k": len(DATA_EXPERTS)}),
    "mt4crossoie_sentence": ("ablation: sentence routing", {"granularity": "sentence"}),
    "full_finetuning": ("full fine-tuning (one stage)", {"stages": ("full",)}),
    "single_lora": (
        "single LoRA (a one-expert mixture) + head, encoder frozen",
        {"stages": ("mixture",), "experts": ("en",), "top_k": 1},
    ),
    "stages_1_2": ("stages 1+2", {"stages": ("embeddings", "backbone")}),
    "stage3_head_only": (
        "control: stages 1+2, then the head alone for stage 3's budget",
        {"stages": ("embeddings", "backbone", "head")},
    ),
}


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


@dataclass(frozen=True)
class OIERecipe:
    """Everything that defines a cross-lingual OIE training run; validated on construction.

    Args:
        model (`str`, *optional*, defaults to the embedded multilingual-e5-small): HF id, path or ``embedded:<name>``.
        stages (`tuple[str, ...]`): stage kinds in order (`STAGE_KINDS`).
        budget_split (`tuple[float, ...]`, *optional*): share of the budget per stage (default: `DEFAULT_BUDGET_SPLIT`).
        learning_rates / head_learning_rates (`tuple[float, ...]`, *optional*): peak rates per stage (default:
            `STAGE_LEARNING_RATES`).
        max_steps (`int` or `tuple[int, ...]`, *optional*): steps of every stage, or one per stage; default: 300 in
            all, split by ``budget_split`` (with ``time_budget``: no step limit, the clock decides).
        time_budget (`float`, *optional*): training seconds of all stages, split by ``budget_split``; each stage fits
            its step count and learning-rate schedule to its share (see `Stage.max_seconds`).
        epochs (`float`, *optional*): epochs per stage instead of steps (paper scale).
        experts (`tuple[str, ...]`): one LoRA expert per language (default: the languages with data).
        expert_fallback (`dict[str, str]`): expert of each language without one (default: `EXPERT_FALLBACK`).
        top_k (`int`): experts per routing slot. granularity: ``"token"``, ``"sentence"`` or ``"language"``.
        language_loss_coef (`float`): router cross-entropy toward the language's expert.
        language_alpha (`float`, *optional*): language-balanced batches, languages weighted ``n ** alpha`` (`None`:
            the natural mix).
        lora_rank, lora_dropout: every expert's LoRA (q/v, intermediate and output).
        dropout_site (`str`): where that dropout acts in the mixture (`MixtureConfig.dropout_site`): ``"rank"``
            (the gated rank activations: the same dev F1, a faster step; issue 26) or ``"input"``.
        head_layers, head_ff: the Multi2OIE argument tagger size.
        train_data (`tuple[str, ...]`): corpus names or JSONL paths (English). max_train_sentences: English sentences
            sampled from them (0: all; a run uses as many as its budget reaches, in one seeded stream).
        few_shot (`dict[str, int]`): leak-free Re-OIE2016 sentences per language (at most).
        projected_data (`tuple[str, ...]`): ``"vendored"`` or `molora project` outputs.
        projected_dev_sentences (`int`): projected sentences per language held out as dev data (``dev:<lang>``).
        llm_data (`tuple[str, ...]`): `molora annotate` outputs.
        batch_size, max_length, seed: training batch (sentences), sub-words per example, run seed.
        eval (`tuple[str, ...]`): evaluations (`TEST_EVALUATIONS`, ``dev:<lang>``). eval_max_sentences: sample test
            sets to this size (0: all).
    """

    model: str = "embedded:multilingual-e5-small"
    stages: tuple[str, ...] = ("embeddings", "backbone", "mixture")
    budget_split: tuple[float, ...] | None = None
    learning_rates: tuple[float, ...] | None = None
    head_learning_rates: tuple[float, ...] | None = None
    max_steps: int | tuple[int, ...] | None = None
    time_budget: float | None = None
    epochs: float | None = None
    experts: tuple[str, ...] = DATA_EXPERTS
    expert_fallback: dict[str, str] = field(default_factory=lambda: dict(EXPERT_FALLBACK))
    top_k: int = 2
    granularity: Literal["token", "sentence", "language"] = "token"
    language_loss_coef: float = 0.05
    language_alpha: float | None = 0.5
    lora_rank: int = 8
    lora_dropout: float = 0.1
    dropout_site: Literal["input", "rank"] = "rank"
    head_layers: int = 2
    head_ff: int = 512
    train_data: tuple[str, ...] = ENGLISH_CORPORA
    max_train_sentences: int = 0
    few_shot: dict[str, int] = field(default_factory=lambda: {"es": 300, "pt": 300})
    projected_data: tuple[str, ...] = ("vendored",)
    projected_dev_sentences: int = 30
    llm_data: tuple[str, ...] = ()
    batch_size: int = 16
    max_length: int = 64
    seed: int = 42
    eval: tuple[str, ...] = TEST_EVALUATIONS
    eval_max_sentences: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _tuple(getattr(self, f.name)))
        n = len(self.stages)
        bad = [s for s in self.stages if s not in STAGE_KINDS]
        if not self.stages or bad:
            raise ValueError(
                f"`stages` must be kinds from {', '.join(STAGE_KINDS)}, got {list(self.stages)}."
            )
        if len(set(self.stages)) != n:
            raise ValueError(f"`stages` must not repeat a kind, got {list(self.stages)}.")
        for name in ("budget_split", "learning_rates", "head_learning_rates"):
            value = getattr(self, name)
            if value is not None and (len(value) != n or min(value) <= 0):
                raise ValueError(f"`{name}` needs {n} positive values (one per stage), got {value!r}.")
        steps = self.max_steps
        if steps is not None:
            per_stage = steps if isinstance(steps, tuple) else (steps,)
            if not all(isinstance(s, int) and s >= 1 for s in per_stage) or len(per_stage) not in (1, n):
                raise ValueError(
                    f"`max_steps` must be an int >= 1 or {n} of them (one per stage), got {steps!r}."
                )
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"`time_budget` must be > 0 seconds, got {self.time_budget!r}.")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"`epochs` must be > 0, got {self.epochs!r}.")
        if not self.experts or len(set(self.experts)) != len(self.experts):
            raise ValueError(f"`experts` must be distinct language codes, got {list(self.experts)}.")
        if not 1 <= self.top_k <= len(self.experts):
            raise ValueError(
                f"`top_k` must be in [1, {len(self.experts)}] (the number of experts), got {self.top_k}."
            )
        if self.dropout_site not in ("input", "rank"):
            raise ValueError(f"`dropout_site` must be input or rank, got {self.dropout_site!r}.")
        if self.granularity not in ("token", "sentence", "language"):
            raise ValueError(f"`granularity` must be token, sentence or language, got {self.granularity!r}.")
        for name in ("language_loss_coef", "lora_dropout", "max_train_sentences", "projected_dev_sentences"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)!r}.")
        if self.language_alpha is not None and self.language_alpha < 0:
            raise ValueError(f"`language_alpha` must be >= 0 or None, got {self.language_alpha!r}.")
        for name in ("lora_rank", "head_layers", "head_ff", "batch_size", "max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {getattr(self, name)!r}.")
        if not self.train_data:
            raise ValueError("`train_data` is empty: give at least one corpus name or JSONL path.")
        known = set(TEST_EVALUATIONS) | set(DEV_EVALUATIONS) | {f"dev:{lang}" for lang in ROUTED_LANGUAGES}
        unknown = sorted(set(self.eval) - known)
        if unknown:
            raise ValueError(f"`eval`: unknown {unknown}; choose from {', '.join(sorted(known))}.")
        projected_dev = [e for e in self.eval if e.startswith("dev:") and e != "dev:en"]
        if projected_dev and not (self.projected_data and self.projected_dev_sentences):
            raise ValueError(
                f"`eval`: {projected_dev} need a projected dev slice (`projected_data` and `projected_dev_sentences`)."
            )

    # ------------------------------------------------------------------------------------------ the plan
    @property
    def split(self) -> tuple[float, ...]:
        """The budget share of every stage."""
        n = len(self.stages)
        return self.budget_split or DEFAULT_BUDGET_SPLIT.get(n) or tuple(1.0 / n for _ in range(n))

    def stage_steps(self) -> tuple[int | None, ...]:
        """Step limit of every stage (`None`: the clock or the epochs decide)."""
        n = len(self.stages)
        if self.max_steps is not None:
            return self.max_steps if isinstance(self.max_steps, tuple) else (self.max_steps,) * n
        if self.time_budget is not None or self.epochs is not None:
            return (None,) * n
        return tuple(max(1, round(DEFAULT_STEPS * share)) for share in self.split)

    def stage_seconds(self) -> tuple[float | None, ...]:
        """Wall-clock budget of every stage (`None` without ``time_budget``)."""
        if self.time_budget is None:
            return (None,) * len(self.stages)
        return tuple(self.time_budget * share for share in self.split)

    def stage_learning_rates(self) -> tuple[tuple[float, float], ...]:
        """``(learning rate, head learning rate)`` of every stage."""
        lrs = self.learning_rates or tuple(STAGE_LEARNING_RATES[s][0] for s in self.stages)
        heads = self.head_learning_rates or tuple(STAGE_LEARNING_RATES[s][1] for s in self.stages)
        return tuple(zip(lrs, heads, strict=True))

    def routed_languages(self) -> dict[str, str]:
        """Expert of every language the mixture sees (training and evaluation)."""
        default = "en" if "en" in self.experts else self.experts[0]
        languages = {e: e for e in self.experts}
        for lang in ROUTED_LANGUAGES:
            if lang not in languages:
                target = self.expert_fallback.get(lang)
                languages[lang] = target if target in self.experts else default
        return languages

    def build_stages(self) -> list:
        """The `Stage` objects of this recipe."""
        from ..training import MT4CROSSOIE_STAGES, Stage

        by_kind = {s.name: s for s in MT4CROSSOIE_STAGES}
        by_kind["head"] = Stage("head", train=("heads",))
        by_kind["full"] = Stage(
            "full", train=("embeddings", "backbone", "heads"), train_position_embeddings=True
        )
        stages = []
        for kind, steps, seconds, (lr, head_lr) in zip(
            self.stages, self.stage_steps(), self.stage_seconds(), self.stage_learning_rates(), strict=True
        ):
            stages.append(
                dataclasses.replace(
                    by_kind[kind],
                    learning_rate=lr,
                    head_learning_rate=head_lr,
                    max_seconds=seconds,
                    max_steps=steps,
                    num_train_epochs=self.epochs if steps is None and seconds is None else None,
                )
            )
        return stages

    # ------------------------------------------------------------------------------------------ (de)serialise
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> OIERecipe:
        """The recipe of a named system (`PRESETS`), with ``overrides`` applied."""
        if name not in PRESETS:
            raise ValueError(f"Unknown recipe preset `{name}`; choose one of {', '.join(PRESETS)}.")
        return cls(**(PRESETS[name][1] | overrides))

    def replace(self, **changes: Any) -> OIERecipe:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists for tuples), with the library version."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        return {"molora_adapters_version": __version__, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OIERecipe:
        """Inverse of `to_dict`; unknown keys are an error (a typo would silently change the run)."""
        if not isinstance(data, dict):
            raise ValueError(f"A recipe must be a JSON object, got {type(data).__name__}.")
        data = {k: v for k, v in data.items() if k != "molora_adapters_version"}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"Unknown recipe key(s) {unknown}; expected some of: {', '.join(sorted(names))}."
            )
        return cls(**data)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The recipe as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            from ..utils.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> OIERecipe:
        """A recipe from a JSON file path or JSON text."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            path = Path(source)
            if not path.is_file():
                raise ValueError(
                    f"Recipe file `{path}` does not exist (expected a JSON file from `to_json`)."
                )
            text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"Recipe `{source}` is not valid JSON ({err}).") from None
        return cls.from_dict(data)


def train_recipe(recipe: OIERecipe, output_dir: str | os.PathLike, *, resume: bool = True, log=None) -> Path:
    """Train ``recipe`` into ``output_dir`` and return the directory of the final model (``<output_dir>/train``).

    Resumable: with ``resume`` (the default) a rerun continues from the last checkpoint or finished stage.
    ``output_dir`` also gets ``recipe.json`` and ``training.json`` (time, samples per second, per-stage figures).
    """
    from .training_run import train

    return train(recipe, Path(output_dir), resume=resume, log=log)[0]


def run_recipe(
    recipe: OIERecipe,
    output_dir: str | os.PathLike,
    *,
    resume: bool = True,
    log: Callable[[str], None] | None = None,
    push_to_hub: str | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` (see [`train_recipe`]), evaluate it on ``recipe.eval`` and write ``results.json``,
    ``routing_statistics.json`` and the plots into ``output_dir``. Returns the results."""
    from .training_run import run

    return run(recipe, Path(output_dir), resume=resume, log=log, push_to_hub=push_to_hub)
