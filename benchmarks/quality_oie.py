"""Cross-lingual OIE quality: MT4CrossOIE against full fine-tuning, one LoRA, stages 1+2 and ablations.

Every system runs `examples/oie_crosslingual.py` in its own process with the same data, seeds and **the same
wall-clock training budget** (``--time-budget``; the example splits it over a system's stages by its
``BUDGET_SPLIT``, the one place where the split is defined, and each stage calibrates its step count to its share).
Evaluation is on the full test sets unless ``--eval-sentences`` samples them (the report says so), with the
leak-free splits of the example (es/pt: held-out part of Re-OIE2016). Systems:

- ``full_finetuning``: one stage, word embeddings + encoder + head (Multi2OIE-style);
- ``single_lora``: one LoRA (a one-expert mixture) + head, encoder frozen;
- ``stages_1_2``: disentangled stages 1 (word embeddings) and 2 (rest of the encoder);
- ``mt4crossoie``: stages 1 + 2 + Mixture-of-LoRA (6 language experts, top-2, token routing, language-supervised
  routing and language-balanced batches);
- ``mt4crossoie_projected``: the same with the vendored projected XQuAD corpus added (data-based transfer: English
  silver tuples projected onto the XQuAD translations, so the de/zh/es/ar experts train on their languages);
- ablations: ``mt4crossoie_top1``, ``mt4crossoie_top6`` (dense), ``mt4crossoie_sentence`` (sentence routing),
  ``mt4crossoie_unsupervised`` (no language loss, natural language mix).

    python benchmarks/quality_oie.py                                  # all systems, 2 seeds, full test sets
    nice python benchmarks/quality_oie.py --systems full_finetuning,single_lora,stages_1_2,mt4crossoie \\
        --budget 120 --eval-sentences 100                             # a reduced run (the report says so)

Each (system, seed) run resumes if interrupted and is reused once finished (``--fresh`` to redo). Writes
``benchmarks/results/quality_oie.md`` and ``quality_oie.json``::

    {"systems": [{"name": "mt4crossoie", "mean_non_en_f1": 0.0, "train_seconds": 0.0, "samples_per_second": 0.0,
                  "scores": {"carb:en": {"f1": 0.0, "auc": 0.0}, "benchie:zh": {"f1": 0.0}}, "seeds": [...]}],
     "meta": {...}}
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "oie_crosslingual.py"

MAIN_SYSTEMS = ("full_finetuning", "single_lora", "stages_1_2", "mt4crossoie")
# name -> (description, example flags); learning rates per stage come from the example's STAGE_LEARNING_RATES.
SYSTEMS = {
    "full_finetuning": ("full fine-tuning (one stage)", ["--stages", "full"]),
    "single_lora": ("single LoRA", ["--stages", "mixture", "--experts", "en", "--top-k", "1"]),
    "stages_1_2": ("stages 1+2", ["--stages", "embeddings,backbone"]),
    "mt4crossoie": ("MT4CrossOIE: stages 1+2+mixture (top-2, token)", []),
    "mt4crossoie_projected": (
        "MT4CrossOIE + projected XQuAD data (de, zh, es, ar, hi; vendored)",
        ["--projected-data", "vendored"],
    ),
    "mt4crossoie_top1": ("ablation: top-1", ["--top-k", "1"]),
    "mt4crossoie_top6": ("ablation: top-6 (dense)", ["--top-k", "6"]),
    "mt4crossoie_sentence": ("ablation: sentence routing", ["--granularity", "sentence"]),
    "mt4crossoie_unsupervised": (
        "ablation: no language supervision, natural mix",
        ["--language-loss-coef", "0", "--language-alpha", "-1"],
    ),
}

# Published anchors (F1, and AUC where published), keyed like our scores.
ANCHORS = {
    "benchie:en": ("Multi2OIE", 0.2281, None),
    "benchie:de": ("Multi2OIE", 0.0400, None),
    "benchie:zh": ("Multi2OIE", 0.1295, None),
    "carb:en": ("Gen2OIE", 0.530, 0.324),
    "carb:es": ("Gen2OIE", 0.643, 0.421),
    "carb:pt": ("Gen2OIE", 0.642, 0.445),
    "carb:zh": ("Gen2OIE", 0.298, 0.103),
    "carb:hi": ("Gen2OIE", 0.517, 0.281),
    "carb:te": ("Gen2OIE", 0.394, 0.160),
}


def score_key(row: dict) -> str:
    """``benchmark:language`` of a result row (``carb``, ``benchie`` or ``reoie2016`` (lexical) + language)."""
    return f"{row['scorer']}:{row['lang']}"


def mean_non_en_f1(scores: dict[str, dict]) -> float:
    """Mean F1 of the non-English CaRB and BenchIE rows (the lexical Re-OIE2016 rows repeat es/pt and are left out)."""
    values = [v["f1"] for k, v in scores.items() if not k.endswith(":en") and not k.startswith("reoie2016:")]
    return sum(values) / len(values) if values else float("nan")


def run_one(name: str, seed: int, args, out_root: Path) -> dict:
    """Train and evaluate one (system, seed) through the example; reuses a finished run."""
    out = out_root / f"{name}-seed{seed}"
    done = out / "results.json"
    cmd = [sys.executable, str(EXAMPLE), "--output-dir", str(out), "--seed", str(seed)]
    cmd += ["--time-budget", str(args.budget), "--batch-size", str(args.batch_size), *SYSTEMS[name][1]]
    cmd += [
        "--eval-max-sentences",
        str(args.eval_sentences),
        "--max-train-sentences",
        str(args.train_sentences),
    ]
    if args.model:
        cmd += ["--model", args.model]
    marker = out / "command.txt"
    if (
        not args.fresh
        and done.is_file()
        and marker.is_file()
        and marker.read_text().strip() == " ".join(cmd[2:])
    ):
        print(f"== {name} seed {seed}: reusing {done}", flush=True)
        return {**json.loads(done.read_text()), "own_expert_share": own_expert_share(out)}
    if args.fresh and out.exists():
        shutil.rmtree(out)
    print(f"== {name} seed {seed}: {' '.join(cmd[2:])}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    t0 = time.time()
    with open(out / "log.txt", "a", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} (seed {seed}) failed (exit {proc.returncode}); see {out / 'log.txt'}")
    result = json.loads(done.read_text())
    result["own_expert_share"] = own_expert_share(out)
    result["wall_seconds"] = round(time.time() - t0, 1)
    result["command"] = cmd[2:]
    done.write_text(json.dumps(result, indent=2))
    marker.write_text(" ".join(cmd[2:]) + "\n")  # marks a finished run
    if not args.keep_checkpoints:  # a finished run's staged checkpoints are several GB; scores and tsv stay
        shutil.rmtree(out / "train", ignore_errors=True)
    return result


def own_expert_share(out: Path) -> dict[str, float] | None:
    """Per language with an expert of its own: the share of its tokens' top-k routing slots (all layers) that go to
    that expert, from the run's ``routing_statistics.json`` (``None`` when the system has no mixture)."""
    path, results = out / "routing_statistics.json", out / "results.json"
    if (
        not path.is_file()
        or not results.is_file()
        or "mixture" not in json.loads(results.read_text())["stages"]
    ):
        return None  # systems without a mixture stage route through an untrained, inactive mixture
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


def summarise(name: str, runs: list[dict]) -> dict:
    """Mean over seeds of every score, plus per-seed figures."""
    per_seed = []
    for run in runs:
        scores = {
            score_key(r): {"f1": r["f1"], "auc": r["auc"], "sentences": r["sentences"]}
            for r in run["results"]
        }
        training = run.get("training", {})
        per_seed.append(
            {
                "seed": run.get("seed"),
                "scores": scores,
                "mean_non_en_f1": mean_non_en_f1(scores),
                "train_seconds": training.get("train_seconds"),
                "samples_per_second": training.get("samples_per_second"),
                "samples": training.get("samples"),
                "stages": training.get("stages"),
            }
        )
    keys = list(per_seed[0]["scores"])
    scores = {}
    for key in keys:
        f1 = [s["scores"][key]["f1"] for s in per_seed]
        entry = {"f1": statistics.mean(f1), "f1_std": statistics.stdev(f1) if len(f1) > 1 else 0.0}
        aucs = [s["scores"][key]["auc"] for s in per_seed]
        if all(a is not None for a in aucs):
            entry["auc"] = statistics.mean(aucs)
        entry["sentences"] = per_seed[0]["scores"][key]["sentences"]
        scores[key] = entry
    means = [s["mean_non_en_f1"] for s in per_seed]

    def avg(field):
        vals = [s[field] for s in per_seed if s[field] is not None]
        return round(statistics.mean(vals), 2) if vals else None

    return {
        "name": name,
        "description": SYSTEMS[name][0],
        "mean_non_en_f1": statistics.mean(means),
        "mean_non_en_f1_std": statistics.stdev(means) if len(means) > 1 else 0.0,
        "train_seconds": avg("train_seconds"),
        "samples_per_second": avg("samples_per_second"),
        "scores": scores,
        "decoding": runs[0].get("decoding"),  # chosen on CaRB dev (benchmarks/select_decoding.py)
        # routing of the first seed's mixture: the share of each language's slots given to its own expert
        "own_expert_share": runs[0].get("own_expert_share"),
        "seeds": per_seed,
    }


def report(systems: list[dict], args) -> str:
    keys = list(systems[0]["scores"])
    sizes = {k: systems[0]["scores"][k]["sentences"] for k in keys}
    sampled = args.eval_sentences and any(n >= args.eval_sentences for n in sizes.values())
    lines = [
        f"Equal wall-clock training budget: {args.budget:.0f} s per system (split over stages by the example's "
        f"BUDGET_SPLIT), batch {args.batch_size} sentences, seeds {', '.join(map(str, args.seeds))} "
        "(cells: mean F1 / AUC over seeds), "
        f"{args.train_sentences or 'all'} English training sentences + es/pt few-shot sentences whose English "
        "originals are in no test set (as selected by the example).",
        (
            f"**Evaluation sets sampled** to {args.eval_sentences} sentences each (not the full test sets)."
            if sampled
            else "Full test sets."
        )
        + " Sentences per set: "
        + ", ".join(f"{k} {n}" for k, n in sizes.items())
        + ".",
        f"Machine: {args.machine}.",
        "",
        "| system | " + " | ".join(keys) + " | mean non-en F1 | train s | samples/s |",
        "|" + "---|" * (len(keys) + 4),
    ]
    for s in systems:
        cells = []
        for k in keys:
            v = s["scores"][k]
            cells.append(f"{v['f1']:.3f}" + (f" / {v['auc']:.3f}" if v.get("auc") is not None else ""))
        lines.append(
            f"| {s['name']} | "
            + " | ".join(cells)
            + f" | **{s['mean_non_en_f1']:.3f}** ± {s['mean_non_en_f1_std']:.3f}"
            f" | {s['train_seconds']} | {s['samples_per_second']} |"
        )
    anchor = []
    for k in keys:
        a = ANCHORS.get(k)
        anchor.append(f"{a[0]} {a[1]:.3f}" + (f" / {a[2]:.3f}" if a[2] else "") if a else "")
    lines.append("| published | " + " | ".join(anchor) + " | | | |")
    by = {s["name"]: s for s in systems}
    lines += ["", "Targets (issue 12):"]
    if {"mt4crossoie", "full_finetuning", "single_lora"} <= set(by):
        m = by["mt4crossoie"]["mean_non_en_f1"]
        beats = m > by["full_finetuning"]["mean_non_en_f1"] and m > by["single_lora"]["mean_non_en_f1"]
        lines.append(
            f"- MT4CrossOIE beats full fine-tuning and a single LoRA on mean non-en F1: {'yes' if beats else 'no'}"
        )
    for key, goal, label in (
        ("carb:en", 0.53, ">= .53"),
        ("benchie:de", 0.040, "> .040"),
        ("benchie:zh", 0.1295, "> .1295"),
    ):
        if "mt4crossoie" in by and key in by["mt4crossoie"]["scores"]:
            f1 = by["mt4crossoie"]["scores"][key]["f1"]
            ok = f1 >= goal if label.startswith(">=") else f1 > goal
            lines.append(f"- MT4CrossOIE {key} F1 {label}: {f1:.3f} ({'met' if ok else 'not met'})")
    if {"mt4crossoie", "mt4crossoie_projected"} <= set(by):
        base, proj = by["mt4crossoie"], by["mt4crossoie_projected"]
        keys13 = [
            k for k in ("benchie:de", "benchie:zh", "carb:zh", "carb:hi", "carb:te") if k in base["scores"]
        ]
        lines.append(
            "- Projected data (issue 13), MT4CrossOIE + projected vs without: "
            + ", ".join(f"{k} {proj['scores'][k]['f1']:.3f} vs {base['scores'][k]['f1']:.3f}" for k in keys13)
            + f"; mean non-en F1 {proj['mean_non_en_f1']:.3f} vs {base['mean_non_en_f1']:.3f}"
        )
    routed = [s for s in systems if s.get("own_expert_share")]
    if routed:
        lines += [
            "",
            "Routing (first seed): share of each language's top-k slots that go to its own expert "
            "(uniform over 6 experts = 0.167):",
            "",
        ]
        langs = sorted({k for s in routed for k in s["own_expert_share"]})
        lines += ["| system | " + " | ".join(langs) + " |", "|" + "---|" * (len(langs) + 1)]
        for s in routed:
            lines.append(
                f"| {s['name']} | "
                + " | ".join(f"{s['own_expert_share'].get(k, float('nan')):.3f}" for k in langs)
                + " |"
            )
        lines.append("")
    decoding = systems[0].get("decoding")
    if decoding:
        lines.append(
            f"- Decoding (chosen on CaRB dev, `benchmarks/results/decoding_dev.json`): {json.dumps(decoding)}"
        )
    lines += [
        "",
        "Score keys are `benchmark:language`; `carb:es` / `carb:pt` are the held-out Re-OIE2016 es/pt sentences in",
        "CaRB format, `reoie2016:*` the same sentences with the lexical (Multi2OIE / SpanOIE) scorer. Mean non-en F1",
        "averages the CaRB and BenchIE rows of the non-English languages. Gen2OIE's CaRB figures are on full test",
        "sets (es/pt: all of Re-OIE2016), ours on the held-out parts.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS)
    )
    p.add_argument("--seeds", default="42,43", help="comma-separated seeds (>= 2 for the committed run)")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per system (all stages)")
    p.add_argument("--batch-size", type=int, default=16, help="training batch size (sentences)")
    p.add_argument("--train-sentences", type=int, default=1200, help="English training sentences (0 = all)")
    p.add_argument(
        "--eval-sentences", type=int, default=0, help="sample evaluation sets to this size (0 = full)"
    )
    p.add_argument(
        "--model", default=None, help="encoder (default: the example's embedded multilingual-e5-small)"
    )
    p.add_argument("--out", default=str(ROOT / "runs" / "quality_oie"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "quality_oie"))
    p.add_argument("--machine", default="2 CPU cores shared with other jobs", help="recorded in the report")
    p.add_argument("--fresh", action="store_true", help="redo finished runs instead of reusing them")
    p.add_argument(
        "--keep-checkpoints", action="store_true", help="keep each finished run's train/ (several GB per run)"
    )
    args = p.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        p.error(f"--systems: unknown {unknown or '(none)'}; choose from {','.join(SYSTEMS)}")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if not args.seeds or args.budget <= 0:
        p.error("--seeds needs at least one seed and --budget must be > 0")
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    summaries = []
    for name in systems:
        runs = []
        for seed in args.seeds:
            run = run_one(name, seed, args, out_root)
            run["seed"] = seed
            runs.append(run)
        summaries.append(summarise(name, runs))
    text = report(summaries, args)
    print(text)
    sys.path.insert(0, str(ROOT))
    from molora_adapters.utils.io import atomic_write_text

    meta = {
        "budget_seconds": args.budget,
        "seeds": args.seeds,
        "batch_size": args.batch_size,
        "train_sentences": args.train_sentences,
        "eval_sentences": args.eval_sentences or "all",
        "machine": args.machine,
        "command": "python benchmarks/quality_oie.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    atomic_write_text(Path(f"{args.results}.md"), text + "\n")
    for name, suffix in (("mt4crossoie", ""), ("mt4crossoie_projected", "_projected")):
        heatmap = out_root / f"{name}-seed{args.seeds[0]}" / "routing_heatmap.png"
        if name in systems and heatmap.is_file():  # expert share per language per layer
            shutil.copyfile(heatmap, f"{args.results}_routing_heatmap{suffix}.png")
    atomic_write_text(
        Path(f"{args.results}.json"), json.dumps({"systems": summaries, "meta": meta}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
