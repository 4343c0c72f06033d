"""``molora`` command line: one sub-command per feature, each imported only when used.

Each sub-command module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Modules are imported lazily so `molora --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert-embedded": ("molora_adapters.models.cli", "Convert the embedded encoder into an HF directory."),
    "extract": ("molora_adapters.oie.cli", "Extract OIE tuples from sentences on stdin."),
    "answer": ("molora_adapters.xsta.cli", "Answer questions (JSONL) with an X-STA model."),
    "evaluate": ("molora_adapters.oie.benchmarks.cli", "Score predictions on an OIE benchmark."),
    "annotate": ("molora_adapters.data.llm.cli", "Build multilingual training data with an LLM."),
    "project": ("molora_adapters.data.projection.cli", "Project English tuples onto parallel translations."),
    "train": ("molora_adapters.oie.train_cli", "Train an OIE model from a recipe (preset or JSON)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="molora", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.error(f"unknown command `{argv[0]}`; choose one of: {', '.join(COMMANDS)}")
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"molora {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
