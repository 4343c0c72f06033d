"""``molora project``: multilingual OIE training data by projecting English tuples onto translations.

Example::

    molora project --source xquad --source-path /data/xquad --langs de,zh,ar \\
        --silver-model runs/english-oie --out data/projected
    molora project --source reoie2016 --langs es,pt --out runs/reoie-projected   # gold; measuring only

Every input is checked before the encoder loads. Re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import sys

from .pairing import PairingConfig
from .sources import PARALLEL_SOURCES, load_parallel_source

# The OIE layer's Re-OIE2016 source, by path: `molora project --help` lists it without importing the OIE stack.
if "reoie2016" not in PARALLEL_SOURCES:
    PARALLEL_SOURCES.register_lazy("reoie2016", "molora_adapters.oie.projection:load_reoie2016_parallel")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``molora project`` options to ``parser``."""
    g = parser.add_argument_group("data")
    g.add_argument("--source", required=True, help=f"parallel source: {', '.join(PARALLEL_SOURCES.names())}")
    g.add_argument(
        "--source-path", default=None, help="directory of the source files (xquad: xquad.<lang>.json)"
    )
    g.add_argument("--langs", required=True, help="comma-separated target languages, e.g. de,zh,ar")
    g.add_argument("--out", required=True, help="output directory (re-use it to resume)")
    g.add_argument("--limit", type=int, default=None, help="use the first N units (paragraphs)")
    g.add_argument("--shard-size", type=int, default=32, help="(unit, language) items per shard")
    g.add_argument("--silver-model", default=None, help="trained English OIE model for sources without gold")
    g.add_argument("--silver-adapter", default=None, help="adapter directory for --silver-model")
    g.add_argument("--silver-min-confidence", type=float, default=0.0)
    a = parser.add_argument_group("alignment")
    a.add_argument("--encoder", default="embedded:multilingual-e5-small")
    a.add_argument("--layer", type=int, default=8, help="hidden-state index used for word alignment")
    a.add_argument("--method", choices=("argmax", "itermax"), default="itermax")
    a.add_argument(
        "--min-coverage", type=float, default=0.5, help="share of a slot's words linked into its span"
    )
    a.add_argument("--keep-partial", action="store_true", help="accept pairs where only some tuples project")
    p = parser.add_argument_group("sentence pairing")
    d = PairingConfig()
    p.add_argument("--min-similarity", type=float, default=d.min_similarity)
    p.add_argument("--min-margin", type=float, default=d.min_margin)
    p.add_argument("--max-length-ratio", type=float, default=d.max_length_ratio)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``molora project``; returns 0 on success, 2 on bad input."""
    from ...oie.projection import evaluation_sentences, pipeline_extractor
    from .pipeline import ProjectConfig, project

    try:
        config = ProjectConfig(
            languages=args.langs,
            out_dir=args.out,
            shard_size=args.shard_size,
            limit=args.limit,
            encoder=args.encoder,
            layer=args.layer,
            method=args.method,
            min_coverage=args.min_coverage,
            pairing=PairingConfig(
                min_similarity=args.min_similarity,
                min_margin=args.min_margin,
                max_length_ratio=args.max_length_ratio,
            ),
            keep_partial=args.keep_partial,
            silver_model=args.silver_model,
            # Re-OIE2016 *is* an evaluation set: projecting it is for measuring projection, never training
            leak_check=args.source != "reoie2016",
            progress=not args.no_progress,
        )
        units = load_parallel_source(args.source, config.languages, path=args.source_path)
        if not units:
            raise ValueError(f"`--source` {args.source!r} holds no units.")
        if any(u.gold is None for u in units) and not args.silver_model:
            raise ValueError(
                f"`--source` {args.source!r} has no English gold tuples: pass `--silver-model DIR`, a trained "
                "English OIE model (e.g. the English stage of examples/oie_crosslingual.py)."
            )
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f"molora project: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    extractor = None
    if args.silver_model:
        from ...utils.cli import check_model_path

        check_model_path(args.silver_model, "--silver-model")  # one line, status 2 (see molora_adapters.cli)

        try:
            extractor = pipeline_extractor(
                args.silver_model, adapter=args.silver_adapter, min_confidence=args.silver_min_confidence
            )
        except (OSError, ValueError) as e:
            print(f"molora project: error: `--silver-model` could not load: {e}", file=sys.stderr)
            return 2
    try:
        report = project(
            units,
            config,
            extractor=extractor,
            evaluation_sentences=evaluation_sentences,
            source_name=args.source,
        )
    except KeyboardInterrupt:
        print("molora project: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    print(report.summary())
    print(f"records: molora_adapters.data.load_training_corpus('projected', path={args.out!r})")
    return 0
