"""examples/xsta_xquad.py runs end to end offline on the embedded encoder (slow: real weights)."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def example():
    return load_script("examples/xsta_xquad.py")


@pytest.mark.slow
def test_xsta_example_end_to_end(example, embedded_e5_dir, tmp_path):
    argv = ["--model", embedded_e5_dir, "--languages", "de", "--steps", "2", "--eval-questions", "2"]
    argv += ["--max-length", "128", "--doc-stride", "48", "--output-dir", str(tmp_path)]
    assert example.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["scores"]) == {"de/paired", "de/source_free"}
    assert results["reload_identical"] is True
    assert (tmp_path / "xsta" / "xsta_config.json").is_file()


def test_xsta_example_rejects_bad_language(example, tmp_path, capsys):
    assert example.main(["--languages", "xx", "--output-dir", str(tmp_path)]) == 2
    assert "`--languages`" in capsys.readouterr().err
