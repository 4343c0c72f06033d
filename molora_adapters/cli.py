"""molora command line: one sub-command per feature, each imported only when used.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; a
:class:`~molora_adapters.utils.cli.CommandError` raised by ``run`` is printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from .utils.cli import CommandError
from .version import __version__

DESCRIPTION = (
    "Mixture-of-LoRA adapters, cross-lingual open information extraction (MT4CrossOIE) and X-STA QA."
)

# name -> (module, one-line help). Modules are imported lazily so `molora --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert-embedded": ("molora_adapters.models.cli", "Convert the embedded encoder into an HF directory."),
    "extract": ("molora_adapters.oie.cli", "Extract OIE tuples from sentences on stdin."),
    "answer": ("molora_adapters.xsta.cli", "Answer questions (JSONL) with an X-STA model."),
    "evaluate": ("molora_adapters.oie.benchmarks.cli", "Score predictions on an OIE benchmark."),
    "annotate": ("molora_adapters.data.llm.cli", "Build multilingual training data with an LLM."),
    "project": ("molora_adapters.data.projection.cli", "Project English tuples onto parallel translations."),
    "train": ("molora_adapters.oie.train_cli", "Train an OIE model from a recipe (preset or JSON)."),
    "package-model": (
        "molora_adapters.oie.shipping.cli",
        "Package a trained OIE model compactly (what differs from its base encoder).",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def plain(doc: str | None) -> str:
    """A module docstring as plain help text: reST roles, double backticks and ``::`` markers removed."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc or "")
    text = text.replace("``", "").replace("::\n", ":\n").replace("\\\\\n", "\\\n")
    return text.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="molora",
        description=DESCRIPTION,
        epilog="Run `molora COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"molora-adapters {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``molora``; returns the exit status (2 for bad arguments or input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command `{argv[0]}`; choose one of: {', '.join(COMMANDS)}")
        if argv:
            parser.parse_args(argv)  # --help / --version exit here; anything else is an argparse error
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    _, _, details = plain(module.__doc__).partition("\n")
    parser = _Parser(
        prog=f"molora {name}",
        description=COMMANDS[name][1],
        epilog=details.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except CommandError as err:
        print(f"molora {name}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
