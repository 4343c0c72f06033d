"""Choose MT4CrossOIE's stage plan on dev data only (issue 21, item 5): a small, documented search.

Every candidate is an `OIERecipe` (the `mt4crossoie` preset with a few changes) trained with seed 42 on the same
data stream and evaluated on **dev sets only**: CaRB en dev (``dev:en``, 641 sentences) and the 30 projected
sentences per language that every recipe holds out (``dev:de``, ``dev:zh``, ``dev:es``, ``dev:ar``, ``dev:hi``).
Test sets are never read here. The selection score is the mean of CaRB en dev F1 and the mean projected
non-English dev F1 (the benchmark's targets are English CaRB and the non-English mean).

Candidates are compared at an equal *training-time* budget (1,200 s on 2 quiet cores, between the quality
benchmark's 600 s and 1,800 s points), converted to steps per stage with the stages' throughput measured on 2 quiet
cores (`benchmarks/results/bench_train_stages.md`; 16 sentences per step), so that the search
gives the same answer on a busy machine (a time budget would give a loaded run fewer steps). A candidate that
changes only its last stage starts from its parent's finished earlier stages (copied, bitwise the same as training
them again: every stage starts from the run seed), which is why the search is cheap enough to run.

    python benchmarks/select_recipe.py                      # every candidate, resumable; then the report
    python benchmarks/select_recipe.py --candidates default,full_then_mixture
    python benchmarks/select_recipe.py --list               # the candidates and what they change

Writes ``benchmarks/results/select_recipe.{json,md}`` after every candidate (atomically); runs go to
``runs/select_recipe/<candidate>`` (rerun to resume an interrupted one).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from molora_adapters.oie.recipes import OIERecipe  # noqa: E402
from molora_adapters.training.checkpointing import read_stage_state  # noqa: E402
from molora_adapters.utils.io import atomic_write_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_budget import STEPS_PER_SECOND, steps_for_budget  # noqa: E402

DEV = ("dev:en", "dev:de", "dev:zh", "dev:es", "dev:ar", "dev:hi")

BUDGET = 1200.0
"""Training seconds per candidate: between the quality benchmark's two points (600 s and 1,800 s)."""

# name: (what it tests, parent whose finished stages it reuses (or None), `OIERecipe` changes on `mt4crossoie`)
CANDIDATES: dict[str, tuple[str, str | None, dict]] = {
    "default": (
        "the current plan: 20/40/40, stage lrs 5e-4 / 1e-4 / 5e-4, language loss .05, top-2, rank 8",
        None,
        {},
    ),
    "full_finetuning": (
        "reference: one stage, everything (the baseline to beat)",
        None,
        {"stages": ("full",)},
    ),
    "full_then_mixture": (
        "stages 1 and 2 merged (word embeddings train with the encoder), then the mixture: 60/40",
        None,
        {"stages": ("full", "mixture"), "budget_split": (0.6, 0.4)},
    ),
    "split_10_50_40": ("a shorter stage 1: 10/50/40", None, {"budget_split": (0.1, 0.5, 0.4)}),
    "stage2_lr_2e-4": (
        "stage 2 at lr 2e-4 (head 1e-3), as full fine-tuning's head",
        "default:1",
        {"learning_rates": (5e-4, 2e-4, 5e-4), "head_learning_rates": (1e-3, 1e-3, 1e-4)},
    ),
    "stage3_lr_1e-3": (
        "the mixture at lr 1e-3",
        "default:2",
        {"learning_rates": (5e-4, 1e-4, 1e-3)},
    ),
    "stage3_no_language_loss": (
        "no router supervision (language loss 0; it hurt at 180 s)",
        "default:2",
        {"language_loss_coef": 0.0},
    ),
    "stage3_top1": ("top-1 routing", "default:2", {"top_k": 1}),
}


def recipe_for(name: str, budget: float, seed: int) -> OIERecipe:
    """The candidate's recipe, with per-stage steps equal to its share of ``budget`` seconds."""
    changes = dict(CANDIDATES[name][2])
    return steps_for_budget(OIERecipe.from_preset("mt4crossoie", eval=DEV, seed=seed, **changes), budget)


def seed_from_parent(name: str, out_root: Path, budget: float, seed: int, log) -> None:
    """Copy the parent's finished stages (not its checkpoints) into this candidate's run, once."""
    parent_spec = CANDIDATES[name][1]
    if parent_spec is None:
        return
    parent, _, n = parent_spec.partition(":")
    child_train = out_root / name / "train"
    if child_train.is_dir() and any(child_train.glob("stage-*")):
        return  # already seeded (or resuming)
    mine, theirs = recipe_for(name, budget, seed), recipe_for(parent, budget, seed)
    if mine.stages != theirs.stages or mine.max_steps[: int(n)] != theirs.max_steps[: int(n)]:
        raise SystemExit(f"{name}: its first {n} stages differ from {parent}'s; it cannot reuse them")
    parent_train = out_root / parent / "train"
    stage_dirs = sorted(parent_train.glob("stage-*"))[: int(n)]
    if len(stage_dirs) < int(n) or not all(read_stage_state(d) for d in stage_dirs):
        raise SystemExit(
            f"{name}: run {parent} first (its first {n} stages are not finished in {parent_train})"
        )
    child_train.mkdir(parents=True, exist_ok=True)
    for d in stage_dirs:
        shutil.copytree(d, child_train / d.name, ignore=shutil.ignore_patterns("checkpoint-*"))
    log(f"   {name}: reusing {parent}'s first {n} stage(s)")


def run_candidate(name: str, args, out_root: Path) -> dict:
    """Train and evaluate one candidate (resumable); returns its summary row."""
    from molora_adapters.oie.recipes import run_recipe

    recipe = recipe_for(name, args.budget, args.seed)
    out = out_root / name
    done = out / "results.json"
    if (
        done.is_file()
        and (out / "recipe.json").is_file()
        and OIERecipe.from_json(out / "recipe.json") == recipe
    ):
        result = json.loads(done.read_text())
    else:
        seed_from_parent(name, out_root, args.budget, args.seed, print)
        print(f"== {name}: {CANDIDATES[name][0]}; steps {recipe.max_steps}", flush=True)
        t0 = time.time()
        result = run_recipe(recipe, out, resume=True, log=lambda m: print(f"   {m}", flush=True))
        result["wall_seconds"] = round(time.time() - t0, 1)
        atomic_write_text(done, json.dumps(result, indent=2))
        for ckpt in (out / "train").glob(
            "stage-*/checkpoint-*"
        ):  # finished: keep stage outputs, drop checkpoints
            shutil.rmtree(ckpt, ignore_errors=True)
    f1 = {r["key"]: r["f1"] for r in result["results"]}
    empty = {r["key"]: r.get("empty_sentences") for r in result["results"]}
    non_en = [f1[k] for k in DEV if k != "dev:en"]
    non_en_mean = sum(non_en) / len(non_en)
    training = result.get("training", {})
    return {
        "name": name,
        "description": CANDIDATES[name][0],
        "parent": CANDIDATES[name][1],
        "stages": list(recipe.stages),
        "steps": list(recipe.max_steps),
        "equivalent_seconds": args.budget,
        "dev_f1": f1,
        "dev_empty_sentences": empty,
        "dev_en_f1": f1["dev:en"],
        "dev_non_en_mean_f1": round(non_en_mean, 4),
        "score": round((f1["dev:en"] + non_en_mean) / 2, 4),
        "train_seconds": training.get("train_seconds"),
        "samples_per_second": training.get("samples_per_second"),
        "recipe": recipe.to_dict(),
    }


def report(rows: list[dict], args) -> None:
    best = max(rows, key=lambda r: r["score"]) if rows else None
    data = {
        "meta": {
            "protocol": "dev only: CaRB en dev + 30 held-out projected sentences per language (de, zh, es, ar, hi)",
            "score": "mean of CaRB en dev F1 and the mean projected non-English dev F1",
            "seed": args.seed,
            "equivalent_seconds": args.budget,
            "steps_per_second": STEPS_PER_SECOND,
            "machine": args.machine,
            "command": "python benchmarks/select_recipe.py"
            + (f" --budget {args.budget:g}" if args.budget != BUDGET else ""),
        },
        "candidates": rows,
        "best": best["name"] if best else None,
    }
    path = Path(args.results)
    atomic_write_text(path.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    lines = [
        f"# Stage-plan search on dev (seed {args.seed}, {args.budget:g} s-equivalent per candidate)",
        "",
        "| candidate | stages | steps | CaRB en dev | de | zh | es | ar | hi | non-en mean | score |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["score"]):
        f = r["dev_f1"]
        lines.append(
            f"| {r['name']} | {'+'.join(r['stages'])} | {'/'.join(map(str, r['steps']))} | {f['dev:en']:.3f} | "
            + " | ".join(f"{f[k]:.3f}" for k in DEV[1:])
            + f" | {r['dev_non_en_mean_f1']:.3f} | **{r['score']:.3f}** |"
        )
    lines += ["", "Candidates:", ""] + [f"- `{r['name']}`: {r['description']}" for r in rows]
    atomic_write_text(path.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--candidates", default=",".join(CANDIDATES), help="comma-separated: " + ",".join(CANDIDATES)
    )
    p.add_argument(
        "--budget", type=float, default=BUDGET, help="training seconds (2 quiet cores) per candidate"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default=str(ROOT / "runs" / "select_recipe"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "select_recipe"))
    p.add_argument(
        "--machine", default="2 CPU cores (steps fixed in advance: the load does not change results)"
    )
    p.add_argument("--list", action="store_true", help="print the candidates and exit")
    args = p.parse_args(argv)
    names = [n for n in args.candidates.split(",") if n]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidate(s) {unknown}; choose from {', '.join(CANDIDATES)}")
    if not args.budget > 0:
        p.error(f"--budget must be > 0 seconds, got {args.budget}")
    if args.list:
        for n in names:
            r = recipe_for(n, args.budget, args.seed)
            print(f"{n}: {CANDIDATES[n][0]} (stages {'+'.join(r.stages)}, steps {r.max_steps})")
        return
    out_root = Path(args.out)
    results = Path(args.results).with_suffix(".json")
    rows = {r["name"]: r for r in json.loads(results.read_text())["candidates"]} if results.is_file() else {}
    for name in names:
        rows[name] = run_candidate(name, args, out_root)
        report(list(rows.values()), args)


if __name__ == "__main__":
    main()
