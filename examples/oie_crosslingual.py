"""Cross-lingual Open Information Extraction, end to end (MT4CrossOIE on `adapters`).

The run is an `OIERecipe` (`molora_adapters.oie.recipes`, preset `mt4crossoie` unless `--preset` / `--config`
say otherwise), trained and evaluated by `run_recipe`; the flags below override single fields of it:

1. Encoder: the embedded multilingual-e5-small by default (offline), or any HF id / path (`--model`).
2. Data: every English OIE corpus shipped with the package (OIE2016 train, IMoJIE subsets, GPT-LSOIE), the
   projected XQuAD corpus (de, zh, es, ar, hi; a per-language dev slice held out) and few-shot in-language data
   (the Re-OIE2016 es and pt sentences whose English original is in no test set: 8 each).
3. Disentangled stage tuning with a Multi2OIE head: (1) word embeddings, (2) the rest of the encoder, (3) a
   Mixture-of-LoRA with one expert per language that has data (en, de, zh, es, ar, hi; pt routes to es, te to
   hi), top-2 routing.
4. Evaluation with scorers that reproduce the official tools: CaRB en, BenchIE en/de/zh, Re-OIE2016 es/pt (held-out
   part, CaRB format and lexical match) and multilingual CaRB zh/hi/te.

    python examples/oie_crosslingual.py                        # ~10 min on 2 CPU cores, offline
    python examples/oie_crosslingual.py --full --model bert-base-multilingual-cased   # paper scale, on a GPU
    molora train --preset mt4crossoie --output-dir runs/x      # the same training from the command line

Writes `results.json`, `training.json`, `recipe.json`, `routing_heatmap.png` and `pr_curves.png` into
`--output-dir`; Ctrl-C and rerun resumes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from molora_adapters.oie.recipes import PRESETS, STAGE_KINDS, OIERecipe


def _numbers(text: str | None, kind=float):
    if text is None:
        return None
    values = tuple(kind(x) for x in text.split(",") if x.strip())
    return values[0] if len(values) == 1 and kind is int else values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the flags into ``args.recipe`` (an `OIERecipe`); bad values exit with status 2."""
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--preset", default="mt4crossoie", choices=sorted(PRESETS), help="recipe preset (see recipes.py)"
    )
    p.add_argument("--config", metavar="JSON", help="a recipe file (`OIERecipe.to_json`); flags override it")
    p.add_argument("--model", help="HF id, local path or embedded:<name>")
    p.add_argument("--train-data", help="comma-separated English corpus names or JSONL paths")
    p.add_argument("--llm-data", action="append", metavar="DIR", help="output of `molora annotate`")
    p.add_argument(
        "--projected-data",
        action="append",
        metavar="DIR|vendored|none",
        help="projected records (`molora project` output, or `vendored`); `none`: no projected data",
    )
    p.add_argument("--stages", help=f"comma-separated, in order, from {','.join(STAGE_KINDS)}")
    p.add_argument("--experts", help="comma-separated expert languages")
    p.add_argument("--top-k", type=int)
    p.add_argument("--granularity", choices=["token", "sentence", "language"])
    p.add_argument("--max-steps", help="steps per stage: one int for every stage, or one per stage")
    p.add_argument("--time-budget", type=float, help="training seconds of all stages (split over them)")
    p.add_argument("--learning-rates", help="one value per stage")
    p.add_argument("--head-learning-rates", help="head rates, one value per stage")
    p.add_argument(
        "--language-loss-coef", type=float, help="router cross-entropy toward the language's expert"
    )
    p.add_argument(
        "--language-alpha", type=float, help="languages weighted n**alpha in batches (-1: natural mix)"
    )
    p.add_argument("--head", help="argument tagger size LAYERSxFEEDFORWARD, e.g. 2x512")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="sub-words per training example")
    p.add_argument("--max-train-sentences", type=int, help="English sentences sampled (0 = all)")
    p.add_argument("--eval-max-sentences", type=int, help="sample larger test sets to this size (0 = all)")
    p.add_argument("--eval", help="evaluations, e.g. carb:en,benchie:de,dev:en (default: every test set)")
    p.add_argument("--output-dir", default="runs/oie_crosslingual")
    p.add_argument("--push-to-hub", metavar="REPO", default=None)
    p.add_argument(
        "--full", action="store_true", help="paper scale (use a GPU): all data, 3 epochs per stage, r=16"
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    args = p.parse_args(argv)
    try:
        recipe = OIERecipe.from_json(args.config) if args.config else OIERecipe.from_preset(args.preset)
        changes = {
            "model": args.model,
            "train_data": _split(args.train_data),
            "llm_data": args.llm_data,
            "projected_data": None
            if args.projected_data is None
            else tuple(d for d in args.projected_data if d != "none"),
            "stages": _split(args.stages),
            "experts": _split(args.experts),
            "top_k": args.top_k,
            "granularity": args.granularity,
            "max_steps": _numbers(args.max_steps, int),
            "time_budget": args.time_budget,
            "learning_rates": _numbers(args.learning_rates),
            "head_learning_rates": _numbers(args.head_learning_rates),
            "language_loss_coef": args.language_loss_coef,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "max_train_sentences": args.max_train_sentences,
            "eval_max_sentences": args.eval_max_sentences,
            "eval": None if args.eval in (None, "all") else _split(args.eval),
            "seed": args.seed,
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        if args.language_alpha is not None:
            changes["language_alpha"] = None if args.language_alpha < 0 else args.language_alpha
        if args.head:
            changes["head_layers"], changes["head_ff"] = (int(x) for x in args.head.lower().split("x"))
        if "experts" in changes and "top_k" not in changes:
            changes["top_k"] = min(recipe.top_k, len(changes["experts"]))
        if args.full:
            changes |= {"max_train_sentences": 0, "eval_max_sentences": 0, "max_length": 128, "lora_rank": 16}
            changes |= {"epochs": 3.0, "max_steps": None, "time_budget": None}
        args.recipe = recipe.replace(**changes)
    except ValueError as err:
        p.error(str(err).splitlines()[0])
    return args


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(s.strip() for s in text.split(",") if s.strip())


def main(argv: list[str] | None = None) -> int:
    from molora_adapters.oie.evaluation import format_table
    from molora_adapters.oie.recipes import run_recipe
    from molora_adapters.oie.training_run import RecipeDataError

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - start:6.0f}s] {msg}", flush=True)

    try:
        results = run_recipe(
            args.recipe, args.output_dir, resume=not args.no_resume, log=log, push_to_hub=args.push_to_hub
        )
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except RecipeDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(format_table(results["results"]))
    print(f"\ntotal time {results['seconds']:.0f}s; results in {Path(args.output_dir) / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
