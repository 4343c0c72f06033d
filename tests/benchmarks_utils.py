"""Shared paths and helpers for the benchmark-scorer tests (tests/test_benchmarks_*.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

BENCH_DATA = Path(__file__).parent / "data" / "benchmarks"
SHARED_OIE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oie"


def gunzip_to(src: Path, dst: Path) -> Path:
    """Decompress ``src`` into ``dst`` (tests that need a plain file)."""
    dst.write_bytes(gzip.decompress(src.read_bytes()))
    return dst


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
