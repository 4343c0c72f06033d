"""``molora evaluate``: score prediction files on a benchmark, print P/R/F1/AUC, write JSON and a plot.

Example::

    molora evaluate --benchmark carb --lang zh --format tabbed sys1.tsv sys2.tsv --json scores.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ...utils.io import atomic_write_text
from ..formats.readers import format_choices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .api import SCORERS

    parser.add_argument("predictions", nargs="+", help="prediction file(s); several are compared on one plot")
    parser.add_argument("--benchmark", required=True, choices=SCORERS.names(), help="benchmark to score on")
    parser.add_argument("--lang", default="en", help="gold language (default: en)")
    parser.add_argument(
        "--format",
        default="tabbed",
        choices=format_choices(),
        help="prediction file format (default: tabbed; `carb` is an alias of `tabbed`)",
    )
    parser.add_argument("--gold", default=None, help="gold file overriding the shipped one")
    parser.add_argument("--split", default=None, help="gold split for carb/oie2016 (default: test)")
    parser.add_argument("--binary", action="store_true", help="Re-OIE2016: binary gold variant")
    parser.add_argument(
        "--merge-duplicates",
        action="store_true",
        help="merge sentence groups that share a normalised key (not the official behaviour)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        help="label per prediction file for the table and plot (repeat; default: file name)",
    )
    parser.add_argument("--json", default=None, help="write all results (with curves) to this JSON file")
    parser.add_argument(
        "--plot", default=None, help="write the PR curve(s) to this PNG (default: next to --json, if given)"
    )
    parser.add_argument("--no-plot", action="store_true", help="do not write a PNG")
    parser.add_argument(
        "--dat",
        default=None,
        help="carb: write the official scorer's PR-curve file (one prediction file only)",
    )


def _options(args: argparse.Namespace) -> dict:
    opts: dict = {}
    if args.split is not None:
        if args.benchmark not in ("carb", "oie2016"):
            raise SystemExit(f"`--split` applies to carb and oie2016, not `{args.benchmark}`.")
        opts["split"] = args.split
    if args.binary:
        if args.benchmark != "reoie2016":
            raise SystemExit("`--binary` applies to reoie2016 only.")
        opts["binary"] = True
    if args.merge_duplicates:
        if args.benchmark == "benchie":
            raise SystemExit("`--merge-duplicates` does not apply to benchie (sentences are matched by id).")
        opts["merge_duplicates"] = True
    return opts


def run(args: argparse.Namespace) -> int:
    from .api import score

    labels = args.label or [os.path.basename(p) for p in args.predictions]
    if len(labels) != len(args.predictions):
        raise SystemExit(
            f"Got {len(labels)} `--label` value(s) for {len(args.predictions)} prediction file(s)."
        )
    opts = _options(args)
    results: dict[str, dict] = {}
    for label, path in zip(labels, args.predictions, strict=False):
        try:
            results[label] = score(
                args.benchmark, path, lang=args.lang, format=args.format, gold=args.gold, **opts
            )
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    width = max(len(x) for x in labels)
    print(f"{'system':<{width}}  {'P':>6}  {'R':>6}  {'F1':>6}  {'AUC':>6}   ({args.benchmark}, {args.lang})")
    for label, res in results.items():
        auc = "-" if res.get("auc") is None else f"{res['auc']:.3f}"
        print(f"{label:<{width}}  {res['precision']:.4f}  {res['recall']:.4f}  {res['f1']:.4f}  {auc:>6}")
        if res.get("unknown_predictions"):
            print(
                f"{'':<{width}}  note: {res['unknown_predictions']} prediction(s) on sentences not in the gold"
            )
    if args.dat:
        if args.benchmark != "carb" or len(results) != 1:
            raise SystemExit("`--dat` needs `--benchmark carb` and exactly one prediction file.")
        from .carb import format_pr_dat

        res = results[labels[0]]
        c = res["curve"]
        atomic_write_text(
            args.dat,
            format_pr_dat(c["precision"], c["recall"], c["thresholds"], c["kept"], res["gold_tuples"]),
        )
        print(f"wrote {args.dat}")
    if args.json:
        payload = results[labels[0]] if len(results) == 1 else {"results": results}
        atomic_write_text(args.json, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    plot = args.plot or (os.path.splitext(args.json)[0] + ".png" if args.json else None)
    if plot and not args.no_plot:
        from .plot import plot_pr_curves

        plot_pr_curves(results, plot, title=f"{args.benchmark} ({args.lang})")
        print(f"wrote {plot}")
    return 0
