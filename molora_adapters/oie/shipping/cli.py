"""``molora package-model``: write a trained OIE model as a compact package (only what differs from its base encoder).

Examples::

    molora package-model runs/final --out dist/oie --dtype int8
    molora package-model runs/final --dtype int8 --ship          # into the package data: the shipped model
    molora package-model runs/final --out dist/oie --push-to-hub user/oie-model
    molora extract --model dist/oie < sentences.txt

RUN_DIR is a ``molora train`` run directory (or its ``train/``). The package holds the changed encoder layers, the
changed word-embedding rows, the mixture's experts and routers, the OIE head, the config, a manifest with every
file's sha256 and a model card filled from the run's results.json, training.json and recipe.json. ``--dtype fp32``
reloads bit for bit; fp16 and int8 store differences from the base (see molora_adapters.oie.shipping.format).
"""

from __future__ import annotations

import argparse
import sys

from ...utils.cli import CommandError

__all__ = ["add_arguments", "run"]

DTYPE_CHOICES = ("fp32", "fp16", "int8")  # = format.DTYPES (not imported: `--help` stays free of torch)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``package-model`` options to ``parser``."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a `molora train` run directory (or its train/).")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="the package directory to write (replaced if it exists).")
    where.add_argument(
        "--ship",
        action="store_true",
        help="write into the package data as the shipped model (molora/oie-multilingual-e5-small).",
    )
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="fp16", help="storage (default: fp16).")
    parser.add_argument(
        "--base", help="the base encoder the run was trained from (default: the run's recipe.json `model`)."
    )
    parser.add_argument(
        "--min-row-change",
        type=float,
        default=0.0,
        help="leave changed embedding rows whose largest change is at most this at their base value (lossy; "
        "default 0: keep every changed row).",
    )
    parser.add_argument("--name", help="the model's name in the manifest and card.")
    parser.add_argument("--license", help="the card's licence id (default: derived from the training data).")
    parser.add_argument(
        "--scores",
        metavar="JSON",
        help="the package's own evaluation (a JSON file with a `results` list in results.json's row shape, e.g. "
        "benchmarks/results/shipped_model.json): its rows replace the run's rows of the same sets in the card.",
    )
    parser.add_argument("--no-card", action="store_true", help="do not write README.md (the model card).")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also push the package to this Hub repo.")
    parser.add_argument("--quiet", action="store_true", help="no progress bar.")


def run(args: argparse.Namespace) -> int:
    """Package the run; bad input is one :class:`CommandError` line (status 2) before anything is written."""
    from .build import find_run
    from .shipped import SHIPPED_MODEL_DIR, SHIPPED_MODEL_NAME

    try:
        find_run(args.run_dir)
    except FileNotFoundError as err:
        raise CommandError(f"`RUN_DIR` {args.run_dir!r}: {err}") from None
    card_kwargs: dict = {"license": args.license} if args.license else {}
    if args.scores:
        card_kwargs["scores"] = _read_scores(args.scores)
    out = SHIPPED_MODEL_DIR if args.ship else args.out
    name = args.name or (SHIPPED_MODEL_NAME if args.ship else None)
    from .build import package_model
    from .format import PackageIntegrityError

    try:
        path = package_model(
            args.run_dir,
            out,
            dtype=args.dtype,
            base=args.base,
            name=name,
            min_row_change=args.min_row_change,
            model_card=not args.no_card,
            card_kwargs=card_kwargs or None,
            progress=not args.quiet,
            log=lambda m: print(m, file=sys.stderr),
        )
    except (ValueError, OSError, ImportError) as err:  # PackageIntegrityError is a ValueError
        kind = "" if isinstance(err, ValueError | PackageIntegrityError) else f"{type(err).__name__}: "
        raise CommandError(kind + str(err).strip().splitlines()[0]) from None
    if args.push_to_hub:
        from .hub import push_packaged_model_to_hub

        info = push_packaged_model_to_hub(path, args.push_to_hub)
        print(f"pushed to {args.push_to_hub}: {info.commit_url}", file=sys.stderr)
    print(path)
    return 0


_ROW_KEYS = {"key", "benchmark", "scorer", "lang", "f1"}


def _read_scores(path: str) -> dict:
    """``--scores``: ``{"results": [row, ...], "meta": {...}}``; a bad file is one `CommandError` line."""
    import json

    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as err:
        raise CommandError(f"`--scores` {path!r}: cannot read it as JSON ({err})") from None
    rows = data.get("results") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and _ROW_KEYS <= r.keys() for r in rows):
        raise CommandError(
            f"`--scores` {path!r}: expected a JSON object with a `results` list of rows with {sorted(_ROW_KEYS)} "
            "(the shape benchmarks/quality_shipped.py writes)"
        )
    return {"rows": rows, "source": (data.get("meta") or {}).get("command") or path}
