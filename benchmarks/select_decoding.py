"""Choose the decoding options on CaRB **dev** (never on a test set) for a trained OIE model.

Run from the repository root::

    python benchmarks/select_decoding.py --model DIR [--sentences 0] [--out benchmarks/results/decoding_dev.json]

The model is run once over CaRB dev; the tags are then decoded with every span strategy and ``min_args`` value
and each decoding is scored with the CaRB scorer. The best by F1 (ties: AUC) is reported with the whole grid;
pass its ``span_strategy`` / ``min_args`` to ``OIEPipeline`` (``pipe.decoding_config()`` records them in
``results.json``).
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
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    from molora_adapters.oie import OIEPipeline
    from molora_adapters.oie.benchmarks import gold_path, load_benchmark, score_extractions
    from molora_adapters.oie.decoding import SPAN_STRATEGIES

    pipe = OIEPipeline.from_pretrained(args.model, progress=True)
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
    out = {
        "data": f"CaRB en dev, {len(sentences)} sentences",
        "model": args.model,
        "best": best,
        "grid": grid,
        "forward_seconds": round(forward_s, 1),
    }
    print(json.dumps({"best": best}, indent=2))
    if args.out:
        from molora_adapters.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
