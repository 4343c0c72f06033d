"""``molora train``: train (and evaluate) a cross-lingual OIE model from a recipe preset or a recipe file.

Example::

    molora train --preset mt4crossoie --output-dir runs/mt4 --time-budget 600
    molora train --config recipe.json --output-dir runs/mine --eval dev:en   # rerun to resume

The run's model is in ``<output-dir>/train`` (``molora extract --model <output-dir>/train``); ``results.json``,
``training.json`` and ``recipe.json`` sit beside it.
"""

from __future__ import annotations

import argparse
import sys

from ..utils.cli import CommandError
from .recipes import PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags (no torch import: `molora train --help` stays fast)."""
    parser.add_argument(
        "--preset",
        default="mt4crossoie",
        choices=sorted(PRESETS),
        help="recipe preset (default: mt4crossoie)",
    )
    parser.add_argument(
        "--config", metavar="JSON", help="a recipe file (`OIERecipe.to_json`); overrides --preset"
    )
    parser.add_argument("--output-dir", required=True, help="run directory (resumed when it holds a run)")
    parser.add_argument("--max-steps", type=int, help="steps per stage (with --time-budget: a cap)")
    parser.add_argument("--time-budget", type=float, help="training seconds of all stages, split over them")
    parser.add_argument("--seed", type=int, help="run seed")
    parser.add_argument(
        "--eval", help="comma-separated evaluations, e.g. dev:en,carb:en (default: the recipe's)"
    )
    parser.add_argument("--no-eval", action="store_true", help="train only (no evaluation, no results.json)")
    parser.add_argument(
        "--no-resume", action="store_true", help="start over even if the run directory holds one"
    )


def run(args: argparse.Namespace) -> int:
    """Build the recipe, train it (and evaluate unless ``--no-eval``); bad input raises `CommandError` (one line,
    status 2) before any training."""
    from .recipes import OIERecipe

    try:
        recipe = OIERecipe.from_json(args.config) if args.config else OIERecipe.from_preset(args.preset)
        changes = {"max_steps": args.max_steps, "time_budget": args.time_budget, "seed": args.seed}
        if args.eval:
            changes["eval"] = tuple(e.strip() for e in args.eval.split(",") if e.strip())
        recipe = recipe.replace(**{k: v for k, v in changes.items() if v is not None})
    except ValueError as err:
        raise CommandError(str(err).splitlines()[0]) from None
    from .evaluation import format_table
    from .recipes import run_recipe, train_recipe
    from .training_run import RecipeDataError

    try:
        if args.no_eval:
            path = train_recipe(recipe, args.output_dir, resume=not args.no_resume, log=_log)
            print(f"model in {path}")
            return 0
        results = run_recipe(recipe, args.output_dir, resume=not args.no_resume, log=_log)
    except RecipeDataError as err:
        raise CommandError(str(err)) from None
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    print(format_table(results["results"]))
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
