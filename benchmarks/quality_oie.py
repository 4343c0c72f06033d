"""Cross-lingual OIE quality: MT4CrossOIE against full fine-tuning, one LoRA, stages 1+2, a head-only control and
ablations, at equal training-time budgets.

Every system is an `OIERecipe` preset (`molora_adapters/oie/recipes.py`: the one place where stages, budget split,
learning rates, experts and data mix are defined), trained and evaluated in this process by `run_recipe` with the
same data stream, seed and **training-time budget**. By default (``--clock steps``) a budget of N seconds is N
seconds of training on 2 quiet cores, given to each stage as steps at its measured throughput (`step_budget.py`),
so a busy machine changes the wall time but not the scores; ``--clock wall`` uses the recipe's own clock instead
(each stage fits its steps and learning-rate schedule to its share; checkpoint saves do not count). Systems:

- ``full_finetuning``: one stage, word embeddings + encoder + head (Multi2OIE-style);
- ``single_lora``: one LoRA (a one-expert mixture) + head, encoder frozen;
- ``stages_1_2``: disentangled stages 1 (word embeddings) and 2 (rest of the encoder);
- ``stage3_head_only``: stages 1 + 2, then the head alone for stage 3's budget (the control that shows what the
  mixture itself adds in stage 3);
- ``mt4crossoie``: stages 1 + 2 + Mixture-of-LoRA (one expert per language with data, top-2, token routing,
  language-supervised routing, language-balanced batches), with the projected XQuAD corpus and es/pt few-shot;
- ablations: ``mt4crossoie_no_projected``, ``mt4crossoie_top1``, ``mt4crossoie_dense``, ``mt4crossoie_sentence``,
  ``mt4crossoie_unsupervised``.

    python benchmarks/quality_oie.py                         # main systems, 3 seeds, 600 s, then 1,800 s for two
    python benchmarks/quality_oie.py --budgets 600 --systems full_finetuning,mt4crossoie --seeds 42
    python benchmarks/quality_oie.py --dry-run --out /tmp/q  # aggregation only, on synthetic scores (no training)

Each (budget, system, seed) run resumes if interrupted and is reused once finished (``--fresh`` redoes it). A
finished run's results are also recorded in ``benchmarks/results/quality_oie_runs/`` (committed), so the comparison
can be run in parts across sessions and machines: a recorded run of the same recipe is never trained again.
Writes ``benchmarks/results/quality_oie.{md,json}`` and the learning-curve figure::

    {"systems": [...at the first budget...], "budgets": [{"budget_seconds": 600, "systems": [...]}, ...],
     "contrasts": {"mt4crossoie_minus_full_finetuning": {"diff": d, "ci95": [lo, hi], "seeds": [...]}, ...},
     "meta": {"budget_seconds": 600, "budgets": [600, 1800], "learning_curves": "...png", ...}}
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from molora_adapters.oie.benchmarks.anchors import PUBLISHED_ANCHORS  # noqa: E402
from molora_adapters.oie.evaluation import TEST_EVALUATIONS  # noqa: E402
from molora_adapters.oie.recipes import PRESETS, OIERecipe  # noqa: E402
from molora_adapters.utils.io import atomic_write_text  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_budget import steps_for_budget  # noqa: E402

MAIN_SYSTEMS = ("full_finetuning", "single_lora", "stages_1_2", "stage3_head_only", "mt4crossoie")
LONG_SYSTEMS = ("full_finetuning", "mt4crossoie")  # also run at the budgets after the first
CONTRASTS = ("full_finetuning", "single_lora")  # mt4crossoie minus each, paired by seed
CLOCKS = {
    "steps": "steps per stage at the stages' measured rates on 2 quiet cores, fixed in advance",
    "wall": "the stages' clock; saves excluded",
}
DEV_KEY = "dev:en"  # CaRB en dev: the learning curves (choices are made on dev, never on test)

# Published anchors (F1, and AUC where published), keyed like our scores (also used by the model card).
ANCHORS = PUBLISHED_ANCHORS


def mean_non_en_f1(scores: dict[str, dict]) -> float:
    """Mean F1 of the non-English CaRB and BenchIE test rows (lexical Re-OIE2016 repeats es/pt; dev is not test)."""
    values = [
        v["f1"]
        for k, v in scores.items()
        if not k.endswith(":en") and not k.startswith(("reoie2016:", "dev:")) and v["f1"] is not None
    ]
    return sum(values) / len(values) if values else float("nan")


def recipe_for(name: str, seed: int, budget: float, args) -> OIERecipe:
    """The benchmark's recipe of one (system, seed, budget)."""
    changes = {
        "seed": seed,
        "batch_size": args.batch_size,
        "eval_max_sentences": args.eval_sentences,
    }
    changes["eval"] = TEST_EVALUATIONS + (DEV_KEY,)
    if args.train_sentences is not None:
        changes["max_train_sentences"] = args.train_sentences
    if args.model:
        changes["model"] = args.model
    if args.clock == "wall":
        return OIERecipe.from_preset(name, time_budget=budget, **changes)
    return steps_for_budget(OIERecipe.from_preset(name, **changes), budget)


def record_path(records: Path, name: str, seed: int, budget: float) -> Path:
    """Where a finished run's results are recorded (committed: the comparison can span sessions)."""
    return records / f"budget{budget:g}" / f"{name}-seed{seed}.json"


def run_one(name: str, seed: int, budget: float, args, out_root: Path) -> dict:
    """Train and evaluate one (system, seed, budget) in this process; reuses a finished run of the same recipe."""
    from molora_adapters.oie.recipes import run_recipe

    recipe = recipe_for(name, seed, budget, args)
    record = record_path(Path(args.records), name, seed, budget)
    if not args.fresh and record.is_file():
        data = json.loads(record.read_text())
        if OIERecipe.from_dict(data["recipe"]) != recipe:
            raise SystemExit(
                f"{record} records a run of another recipe (changed flags?); pass --fresh to redo it"
            )
        print(f"== {budget:g} s {name} seed {seed}: recorded in {record}", flush=True)
        return data
    out = out_root / f"budget{budget:g}" / f"{name}-seed{seed}"
    done, saved = out / "results.json", out / "recipe.json"
    if not args.fresh and saved.is_file():
        if OIERecipe.from_json(saved) != recipe:
            raise SystemExit(f"{out} holds a run of another recipe (changed flags?); pass --fresh to redo it")
        if done.is_file():
            print(f"== {budget:g} s {name} seed {seed}: reusing {done}", flush=True)
            return _record(record, out, json.loads(done.read_text()))
    if args.fresh and out.exists():
        shutil.rmtree(out)
    print(f"== {budget:g} s {name} seed {seed}: steps {recipe.stage_steps()}", flush=True)
    t0 = time.time()
    result = run_recipe(recipe, out, resume=True, log=lambda m: print(f"   {m}", flush=True))
    result["wall_seconds"] = round(time.time() - t0, 1)
    if not args.keep_checkpoints:  # a finished run's staged checkpoints are large; scores and tsv stay
        shutil.rmtree(out / "train", ignore_errors=True)
    return _record(record, out, result)


def _record(record: Path, out: Path, result: dict) -> dict:
    """Write a finished run's record (results without local file paths, plus its own-expert shares); the routing
    heatmap goes beside it."""
    data = {k: v for k, v in result.items() if k != "files"}
    data["own_expert_share"] = own_expert_share(out)
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps(data, indent=1) + "\n")
    heatmap = out / "routing_heatmap.png"
    if data["own_expert_share"] is not None and heatmap.is_file():
        shutil.copyfile(heatmap, record.with_suffix(".routing.png"))
    return data


def own_expert_share(out: Path) -> dict[str, float] | None:
    """Per language with an expert of its own: the share of its tokens' top-k routing slots (all layers) that go to
    that expert, from the run's ``routing_statistics.json`` (`None` without a trained mixture)."""
    path, results = out / "routing_statistics.json", out / "results.json"
    if (
        not path.is_file()
        or not results.is_file()
        or "mixture" not in json.loads(results.read_text())["stages"]
    ):
        return None
    stats = json.loads(path.read_text())
    experts = stats["experts"]
    if len(experts) < 2:
        return None
    shares = {}
    for lang, per_layer in stats["counts"].items():
        if lang in experts:
            totals = [sum(c) for c in per_layer.values()]
            own = [c[experts.index(lang)] for c in per_layer.values()]
            shares[lang] = round(sum(own) / max(1.0, sum(totals)), 3)
    return shares


def fake_run(name: str, seed: int, budget: float) -> dict:
    """Synthetic results of the shape `run_recipe` writes (``--dry-run``: tests the aggregation, trains nothing)."""
    rng = random.Random(f"{name}:{seed}:{budget}")
    base = 0.1 + 0.02 * sorted(PRESETS).index(name) + 0.00005 * budget
    rows = []
    for key in TEST_EVALUATIONS + (DEV_KEY,):
        scorer, _, lang = key.partition(":")
        f1 = round(base + rng.uniform(-0.02, 0.02), 4)
        rows.append(
            {
                "key": key,
                "scorer": "carb" if scorer == "dev" else scorer,
                "lang": lang,
                "sentences": 10,
                "empty_sentences": rng.randint(0, 3),
                "f1": f1,
                "auc": None if scorer == "benchie" else f1 / 2,
            }
        )
    training = {"train_seconds": budget * 0.99, "samples_per_second": 30.0, "samples": int(budget * 30)}
    return {
        "stages": list(PRESETS[name][1].get("stages", ("embeddings", "backbone", "mixture"))),
        "results": rows,
        "training": training,
        "decoding": {"span_strategy": "merge"},
        "own_expert_share": None,
    }


def summarise(name: str, runs: list[dict]) -> dict:
    """Mean over seeds of every score, plus per-seed figures."""
    per_seed = []
    for run in runs:
        scores = {
            r["key"]: {
                "f1": r["f1"],
                "auc": r["auc"],
                "sentences": r["sentences"],
                "empty_sentences": r.get("empty_sentences"),
            }
            for r in run["results"]
        }
        training = run.get("training", {})
        per_seed.append(
            {
                "seed": run["seed"],
                "scores": scores,
                "mean_non_en_f1": mean_non_en_f1(scores),
                "train_seconds": training.get("train_seconds"),
                "samples_per_second": training.get("samples_per_second"),
                "samples": training.get("samples"),
                "stages": training.get("stages"),
            }
        )
    scores = {}
    for key in per_seed[0]["scores"]:
        f1 = [s["scores"][key]["f1"] for s in per_seed]
        entry = {"f1": statistics.mean(f1), "f1_std": statistics.stdev(f1) if len(f1) > 1 else 0.0}
        aucs = [s["scores"][key]["auc"] for s in per_seed]
        if all(a is not None for a in aucs):
            entry["auc"] = statistics.mean(aucs)
        entry["sentences"] = per_seed[0]["scores"][key]["sentences"]
        entry["empty_sentences"] = [s["scores"][key]["empty_sentences"] for s in per_seed]
        scores[key] = entry
    means = [s["mean_non_en_f1"] for s in per_seed]

    def avg(field):
        vals = [s[field] for s in per_seed if s[field] is not None]
        return round(statistics.mean(vals), 2) if vals else None

    return {
        "name": name,
        "description": PRESETS[name][0],
        "mean_non_en_f1": statistics.mean(means),
        "mean_non_en_f1_std": statistics.stdev(means) if len(means) > 1 else 0.0,
        "train_seconds": avg("train_seconds"),
        "samples_per_second": avg("samples_per_second"),
        "scores": scores,
        "decoding": runs[0].get("decoding"),
        "own_expert_share": runs[0].get("own_expert_share"),
        "seeds": per_seed,
    }


def paired_contrast(a: dict, b: dict, n_boot: int = 10_000, seed: int = 0) -> dict | None:
    """``a - b`` on mean non-English F1, paired by seed, with a 95% bootstrap interval over seeds (resampling the
    seeds carries the seed-to-seed variance into the interval). `None` when the systems share no seed."""
    fa = {s["seed"]: s["mean_non_en_f1"] for s in a["seeds"]}
    fb = {s["seed"]: s["mean_non_en_f1"] for s in b["seeds"]}
    seeds = sorted(set(fa) & set(fb))
    if not seeds:
        return None
    diffs = [fa[s] - fb[s] for s in seeds]
    rng = random.Random(seed)
    boots = sorted(statistics.mean(rng.choices(diffs, k=len(diffs))) for _ in range(n_boot))
    lo, hi = boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]
    return {"diff": statistics.mean(diffs), "ci95": [lo, hi], "seeds": seeds, "per_seed": diffs}


def contrasts(systems: list[dict]) -> dict[str, dict]:
    by = {s["name"]: s for s in systems}
    out = {}
    for other in CONTRASTS:
        if "mt4crossoie" in by and other in by:
            c = paired_contrast(by["mt4crossoie"], by[other])
            if c is not None:
                out[f"mt4crossoie_minus_{other}"] = c
    return out


def plot_learning_curves(budgets: list[dict], path: Path) -> str | None:
    """CaRB en dev F1 against training seconds per system (mean over seeds, one point per budget)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    curves: dict[str, list[tuple[float, float]]] = {}
    for point in budgets:
        for s in point["systems"]:
            if DEV_KEY in s["scores"]:
                curves.setdefault(s["name"], []).append((point["budget_seconds"], s["scores"][DEV_KEY]["f1"]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in sorted(curves.items()):
        xs, ys = zip(*sorted(pts), strict=True)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("training budget (seconds on 2 quiet cores)")
    ax.set_ylabel("CaRB en dev F1 (mean over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def report(budgets: list[dict], found: dict[str, dict], args) -> str:
    seconds = ", ".join(f"{b['budget_seconds']:g} s" for b in budgets)
    lines = [
        f"Equal training-time budgets ({CLOCKS[args.clock]}): {seconds}; "
        f"batch {args.batch_size} sentences; seeds {', '.join(map(str, args.seeds))} at the first budget. "
        "Cells: mean F1 / AUC over seeds. Every system trains on the same seeded stream of the recipe's data "
        "(all vendored English corpora, projected XQuAD without its dev slice, es/pt leak-free few-shot).",
        f"Machine: {args.machine}."
        + (" **Dry run: synthetic scores, nothing was trained.**" if args.dry_run else ""),
    ]
    for point in budgets:
        systems = point["systems"]
        keys = [k for k in systems[0]["scores"] if not k.startswith("reoie2016:")]
        lines += [
            "",
            f"### {point['budget_seconds']:g} s",
            "",
            "| system | " + " | ".join(keys) + " | mean non-en F1 | train s | samples/s |",
            "|" + "---|" * (len(keys) + 4),
        ]
        for s in systems:
            cells = [
                f"{s['scores'][k]['f1']:.3f}"
                + (f" / {s['scores'][k]['auc']:.3f}" if s["scores"][k].get("auc") is not None else "")
                for k in keys
            ]
            lines.append(
                f"| {s['name']} | "
                + " | ".join(cells)
                + f" | **{s['mean_non_en_f1']:.3f}** ± {s['mean_non_en_f1_std']:.3f} | {s['train_seconds']} | {s['samples_per_second']} |"
            )
        anchor = [
            (f"{a[0]} {a[1]:.3f}" + (f" / {a[2]:.3f}" if a[2] else "")) if (a := ANCHORS.get(k)) else ""
            for k in keys
        ]
        lines.append("| published | " + " | ".join(anchor) + " | | | |")
    lines += ["", "Paired by seed, mean non-English F1, 95% bootstrap interval over seeds (first budget):"]
    for name, c in found.items():
        lines.append(
            f"- {name}: {c['diff']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] (seeds {c['seeds']})"
        )
    lines += [
        "",
        "Score keys are `benchmark:language`; `carb:es` / `carb:pt` are the held-out Re-OIE2016 es/pt sentences in "
        "CaRB format; `dev:en` is CaRB en dev (for choices, not a test result). Mean non-en F1 averages the CaRB "
        "and BenchIE test rows of the non-English languages.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--systems", default=",".join(MAIN_SYSTEMS), help="comma-separated presets: " + ",".join(PRESETS)
    )
    p.add_argument("--seeds", default="42,43,44", help="comma-separated seeds (>= 3 for the committed run)")
    p.add_argument("--budgets", default="600,1800", help="training seconds per system, comma-separated")
    p.add_argument(
        "--long-systems", default=",".join(LONG_SYSTEMS), help="systems run at the budgets after the first"
    )
    p.add_argument("--long-seeds", type=int, default=2, help="seeds run at the budgets after the first")
    p.add_argument("--batch-size", type=int, default=16, help="training batch size (sentences)")
    p.add_argument(
        "--train-sentences",
        type=int,
        default=None,
        help="English sentences sampled (default: the recipe's, all)",
    )
    p.add_argument("--eval-sentences", type=int, default=0, help="sample test sets to this size (0 = full)")
    p.add_argument(
        "--model", default=None, help="encoder (default: the recipe's embedded multilingual-e5-small)"
    )
    p.add_argument("--out", default=str(ROOT / "runs" / "quality_oie"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "quality_oie"))
    p.add_argument("--machine", default="2 CPU cores", help="recorded in the report")
    p.add_argument(
        "--clock",
        choices=("steps", "wall"),
        default="steps",
        help="steps: a budget is steps at the stages' measured 2-core rates (load-independent); wall: the clock",
    )
    p.add_argument(
        "--records",
        default=str(ROOT / "benchmarks" / "results" / "quality_oie_runs"),
        help="finished runs' records (reused; commit them to continue in another session)",
    )
    p.add_argument("--fresh", action="store_true", help="redo finished runs instead of reusing them")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each finished run's train/")
    p.add_argument(
        "--dry-run", action="store_true", help="synthetic scores instead of training (tests the aggregation)"
    )
    args = p.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    long_systems = [s.strip() for s in args.long_systems.split(",") if s.strip()]
    unknown = [s for s in systems + long_systems if s not in PRESETS]
    if unknown or not systems:
        p.error(f"--systems/--long-systems: unknown {unknown or '(none)'}; choose from {','.join(PRESETS)}")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        p.error("--seeds takes comma-separated integers and --budgets comma-separated seconds")
    if not args.seeds or not budgets or min(budgets) <= 0:
        p.error("--seeds needs at least one seed and every budget must be > 0")
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    points = []
    for i, budget in enumerate(budgets):
        names = systems if i == 0 else [s for s in systems if s in long_systems]
        seeds = args.seeds if i == 0 else args.seeds[: args.long_seeds]
        summaries = []
        for name in names:
            runs = []
            for seed in seeds:
                run = (
                    fake_run(name, seed, budget)
                    if args.dry_run
                    else run_one(name, seed, budget, args, out_root)
                )
                runs.append({**run, "seed": seed})
            summaries.append(summarise(name, runs))
        if summaries:
            points.append({"budget_seconds": budget, "seeds": seeds, "systems": summaries})
    found = contrasts(points[0]["systems"])
    text = report(points, found, args)
    print(text)
    figure = plot_learning_curves(points, Path(f"{args.results}_learning_curves.png"))
    meta = {
        "budget_seconds": budgets[0],
        "budgets": budgets,
        "seeds": args.seeds,
        "batch_size": args.batch_size,
        "train_sentences": args.train_sentences if args.train_sentences is not None else "all (recipe)",
        "eval_sentences": args.eval_sentences or "all",
        "machine": args.machine,
        "clock": args.clock,
        "dry_run": args.dry_run,
        "learning_curves": figure,
        "command": "python benchmarks/quality_oie.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    atomic_write_text(Path(f"{args.results}.md"), text + "\n")
    heatmap = record_path(Path(args.records), "mt4crossoie", args.seeds[0], budgets[0]).with_suffix(
        ".routing.png"
    )
    if "mt4crossoie" in systems and heatmap.is_file():  # expert share per language per layer
        shutil.copyfile(heatmap, f"{args.results}_routing_heatmap.png")
    payload = {"systems": points[0]["systems"], "budgets": points, "contrasts": found, "meta": meta}
    atomic_write_text(Path(f"{args.results}.json"), json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
