"""Choose the decoding options on **dev** data (never on a test set) for a trained OIE model.

Run from the repository root::

    python benchmarks/select_decoding.py --model DIR [--run RUN_DIR] [--out benchmarks/results/decoding_dev.json]

The model runs once over each dev set: CaRB en dev and, with ``--run``, the projected dev slices that training run
held out (de, zh, es, ar, hi for the shipped recipe; the same seed and split as its training). The tags are then
decoded with every span strategy and ``min_args`` value and scored with the CaRB scorer. The dev score is CaRB en dev
F1 alone, or with ``--run`` the mean of CaRB en dev F1 and the mean non-English dev F1 (the rule that chose the
shipped model's storage). The best by dev score (ties: AUC) is reported with the whole grid. Then, with that
decoding, every ``--predicate-floors`` value (and no floor) is scored: a second pass keeps the best predicate of
every silent encoder chunk, and each floor keeps those at or above it (exact, per chunk, as the pipeline does it);
``floor_grid`` and ``best_floor`` report them (ties: the higher floor, the more conservative one).

``--model`` defaults to the shipped model (``molora/oie-multilingual-e5-small``), ``--run`` then to ``runs/ship``
if present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a saved model or package (default: the shipped model)")
    p.add_argument(
        "--run",
        default=None,
        help="the model's training run directory (its recipe.json): adds the projected dev slices it held out",
    )
    p.add_argument("--sentences", type=int, default=0, help="CaRB dev sentences to use (0 = all 641)")
    p.add_argument("--min-args", default="1,2", help="comma-separated min_args values to try")
    p.add_argument("--predicate-floors", default="0.02,0.05,0.1,0.2,0.3", help="floors to try (besides none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.model is None and args.run is None and Path("runs/ship/recipe.json").exists():
        args.run = "runs/ship"
    if args.run is not None and not (Path(args.run) / "recipe.json").is_file():
        raise SystemExit(f"--run {args.run}: no recipe.json there (expected a training run directory).")

    from molora_adapters.oie import OIEPipeline
    from molora_adapters.oie.decoding import SPAN_STRATEGIES
    from molora_adapters.oie.evaluation import evaluation_sets

    pipe = OIEPipeline.from_pretrained(args.model, progress=False, predicate_floor=None)
    dev_records = None
    if args.run:
        from molora_adapters.oie.recipes import OIERecipe
        from molora_adapters.oie.training_run import load_training_data

        recipe = OIERecipe.from_json(Path(args.run) / "recipe.json")
        _, _, dev_records = load_training_data(recipe)  # the slices the run held out (same seed, same split)
        few_shot = recipe.few_shot
    else:
        few_shot = {}
    names = ("dev:en", *sorted(f"dev:{lang}" for lang in (dev_records or {})))
    sets = evaluation_sets(names, few_shot=few_shot, dev_records=dev_records)
    if args.sentences:
        sets[0]["sentences"] = sets[0]["sentences"][: args.sentences]

    t0 = time.time()
    for ev in sets:  # one forward pass per set with no floor, one with floor 0 (the rescued silent chunks)
        langs = [ev["lang"]] * len(ev["sentences"])
        ev["words"], chunks = pipe.preprocess(ev["sentences"], langs)
        ev["plain"], ev["rescued"] = (
            _forward(pipe, chunks, None, args.batch_size),
            _forward(pipe, chunks, 0.0, args.batch_size),
        )
        print(f"{ev['name']}: {len(ev['sentences'])} sentences, {len(chunks)} chunks", flush=True)
    forward_s = time.time() - t0

    grid = []
    for strategy in SPAN_STRATEGIES:
        for min_args in (int(x) for x in args.min_args.split(",")):
            pipe.span_strategy, pipe.min_args = strategy, min_args
            row = {"span_strategy": strategy, "min_args": min_args, **_score_all(pipe, sets, floor=None)}
            grid.append(row)
            print(json.dumps(row), flush=True)
    best = max(grid, key=lambda r: (r["score"], r["auc"]))
    pipe.span_strategy, pipe.min_args = best["span_strategy"], best["min_args"]
    floors = [float(x) for x in args.predicate_floors.split(",") if x.strip()]
    floor_grid = []
    for floor in [None, *floors]:
        row = {"predicate_floor": floor, **_score_all(pipe, sets, floor=floor)}
        floor_grid.append(row)
        print(json.dumps(row), flush=True)
    best_floor = max(floor_grid, key=lambda r: (r["score"], r["auc"], r["predicate_floor"] or 0.0))
    out = {
        "data": {ev["name"]: f"{ev['what']}, {len(ev['sentences'])} sentences" for ev in sets},
        "model": args.model or "the shipped model",
        "run": args.run,
        "score": "CaRB en dev F1"
        if len(sets) == 1
        else "mean of CaRB en dev F1 and the mean non-English dev F1 (the shipped model's storage rule)",
        "best": best,
        "grid": grid,
        "best_floor": best_floor,
        "floor_grid": floor_grid,
        "forward_seconds": round(forward_s, 1),
        "command": "python benchmarks/select_decoding.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(json.dumps({"best": best, "best_floor": best_floor}, indent=2))
    if args.out:
        from molora_adapters.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    return 0


def _forward(pipe, chunks, floor, batch_size) -> list:
    pipe.predicate_floor = floor
    try:
        results = []
        for start in range(0, len(chunks), batch_size):
            results.extend(pipe._forward(chunks[start : start + batch_size]))
        return results
    finally:
        pipe.predicate_floor = None


def _score_all(pipe, sets, floor: float | None) -> dict:
    """Decode every set with the pipeline's options and ``floor``; per-set F1, empty sentences and the dev score."""
    from molora_adapters.oie.evaluation import score_set

    f1, auc, empty = {}, {}, {}
    for ev in sets:
        mixed = [  # a silent chunk keeps the fallback predicate when it clears the floor
            r
            if (
                floor is not None
                and not p.predicates
                and r.predicates
                and r.pred_probs[r.predicates[0][0]] >= floor
            )
            else p
            for p, r in zip(ev["plain"], ev["rescued"], strict=True)
        ]
        langs = [ev["lang"]] * len(ev["sentences"])
        exts = pipe.postprocess(ev["sentences"], ev["words"], mixed, langs)
        res = score_set(ev, list(zip(ev["sentences"], exts, strict=True)))
        f1[ev["name"]], auc[ev["name"]] = round(res["f1"], 4), round(res["auc"], 4)
        empty[ev["name"]] = sum(1 for e in exts if not e)
    non_en = [v for k, v in f1.items() if k != "dev:en"]
    score = (f1["dev:en"] + sum(non_en) / len(non_en)) / 2 if non_en else f1["dev:en"]
    return {
        "score": round(score, 4),
        "f1": f1["dev:en"],
        "auc": auc["dev:en"],
        "dev_f1": f1,
        "empty_sentences": empty,
    }


if __name__ == "__main__":
    raise SystemExit(main())
