"""Choose the decoding options on CaRB **dev** (never on a test set) for a trained OIE model.

Run from the repository root::

    python benchmarks/select_decoding.py --model DIR [--sentences 0] [--out benchmarks/results/decoding_dev.json]

The model is run once over CaRB dev; the tags are then decoded with every span strategy and ``min_args`` value
and each decoding is scored with the CaRB scorer. The best by F1 (ties: AUC) is reported with the whole grid;
pass its ``span_strategy`` / ``min_args`` to ``OIEPipeline`` (``pipe.decoding_config()`` records them in
``results.json``). Then, with that decoding, every ``--predicate-floors`` value (and no floor) is scored: a second
pass keeps the best predicate of every silent sentence, and each floor keeps those at or above it (exact, per
encoder chunk, as the pipeline does it); ``floor_grid`` and ``best_floor`` report them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", required=True, help="a directory saved with save_pretrained (with its OIE head)"
    )
    p.add_argument("--sentences", type=int, default=0, help="CaRB dev sentences to use (0 = all 641)")
    p.add_argument("--min-args", default="1,2", help="comma-separated min_args values to try")
    p.add_argument("--predicate-floors", default="0.02,0.05,0.1,0.2,0.3", help="floors to try (besides none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    from molora_adapters.oie import OIEPipeline
    from molora_adapters.oie.benchmarks import gold_path, load_benchmark, score_extractions
    from molora_adapters.oie.decoding import SPAN_STRATEGIES

    pipe = OIEPipeline.from_pretrained(args.model, progress=True, predicate_floor=None)
    sentences = list(dict.fromkeys(s.strip() for s in load_benchmark("carb", "en", split="dev")["sentence"]))
    if args.sentences:
        sentences = sentences[: args.sentences]
    gold = str(gold_path("carb", "en", "dev"))
    t0 = time.time()
    langs = ["en"] * len(sentences)
    words, chunks = pipe.preprocess(sentences, langs)
    results = []
    for start in range(0, len(chunks), args.batch_size):
        results.extend(pipe._forward(chunks[start : start + args.batch_size]))
    forward_s = time.time() - t0
    grid = []
    for strategy in SPAN_STRATEGIES:
        for min_args in (int(x) for x in args.min_args.split(",")):
            pipe.span_strategy, pipe.min_args = strategy, min_args
            exts = pipe.postprocess(sentences, words, results, langs)
            res = score_extractions("carb", list(zip(sentences, exts, strict=True)), lang="en", gold=gold)
            grid.append(
                {
                    "span_strategy": strategy,
                    "min_args": min_args,
                    "f1": round(res["f1"], 4),
                    "auc": round(res["auc"], 4),
                    "extractions": sum(map(len, exts)),
                }
            )
            print(json.dumps(grid[-1]), flush=True)
    best = max(grid, key=lambda r: (r["f1"], r["auc"]))
    pipe.span_strategy, pipe.min_args = best["span_strategy"], best["min_args"]
    floors = [float(x) for x in args.predicate_floors.split(",") if x.strip()]
    floor_grid = score_floors(pipe, sentences, words, chunks, results, floors, gold, args.batch_size)
    best_floor = max(floor_grid, key=lambda r: (r["f1"], r["auc"], -(r["predicate_floor"] or 0.0)))
    out = {
        "data": f"CaRB en dev, {len(sentences)} sentences",
        "model": args.model,
        "best": best,
        "grid": grid,
        "best_floor": best_floor,
        "floor_grid": floor_grid,
        "forward_seconds": round(forward_s, 1),
    }
    print(json.dumps({"best": best, "best_floor": best_floor}, indent=2))
    if args.out:
        from molora_adapters.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    return 0


def score_floors(pipe, sentences, words, chunks, plain, floors, gold, batch_size) -> list[dict]:
    """Score ``predicate_floor`` values with two forward passes: ``plain`` (no floor) and one with floor 0, whose
    fallback predicate of a silent chunk is kept for a floor ``f`` when its probability is at least ``f``."""
    from molora_adapters.oie.benchmarks import score_extractions

    pipe.predicate_floor = 0.0
    rescued = []
    for start in range(0, len(chunks), batch_size):
        rescued.extend(pipe._forward(chunks[start : start + batch_size]))
    pipe.predicate_floor = None
    langs = ["en"] * len(sentences)
    rows = []
    for floor in [None, *floors]:
        mixed = [
            r
            if (
                floor is not None
                and not p.predicates
                and r.predicates
                and r.pred_probs[r.predicates[0][0]] >= floor
            )
            else p
            for p, r in zip(plain, rescued, strict=True)
        ]
        exts = pipe.postprocess(sentences, words, mixed, langs)
        res = score_extractions("carb", list(zip(sentences, exts, strict=True)), lang="en", gold=gold)
        rows.append(
            {
                "predicate_floor": floor,
                "f1": round(res["f1"], 4),
                "auc": round(res["auc"], 4),
                "empty_sentences": sum(1 for e in exts if not e),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
