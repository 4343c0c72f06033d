"""The README: its shape, and every python / bash snippet run as written.

A snippet preceded by ``<!-- readme-test: skip (reason) -->`` is not run (it installs packages or trains for
minutes); the reason is reported. The trained OIE model the quick tour names (``runs/oie_crosslingual/train``,
written by ``scripts/run_example.sh``) is replaced by a tiny saved model, the only substitution made.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_adapter_model

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MODEL_PLACEHOLDER = "runs/oie_crosslingual/train"
SKIP = re.compile(r"<!-- readme-test: skip \((?P<reason>[^)]*)\) -->\s*$")
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.S | re.M)


def snippets() -> list[tuple[int, str, str, str | None]]:
    """``(line, language, code, skip reason)`` of every fenced python / bash block."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        if m.group("lang") not in ("python", "bash"):
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        line = text[: m.start()].count("\n") + 1
        out.append((line, m.group("lang"), m.group("body"), skip.group("reason") if skip else None))
    return out


def test_readme_shape():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300
    assert "## Installation" in lines[:40]
    assert [h for h in lines if h.startswith("## ")][:2] == ["## Installation", "## Quick tour"]
    for reason in (s[3] for s in snippets() if s[3] is not None):
        assert reason.strip(), "a skipped snippet must say why"


def test_setup_long_description_is_the_readme():
    proc = subprocess.run(
        [sys.executable, "setup.py", "--long-description"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == README.read_text(encoding="utf-8").strip()


@pytest.fixture(scope="module")
def trained_model_dir(tmp_path_factory, tiny_tokenizer):
    """A saved OIE model standing in for the example's trained one (random weights, predicate tagger biased)."""
    from molora_adapters.oie import add_oie_head

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    with torch.no_grad():
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    path = tmp_path_factory.mktemp("readme_model")
    model.save_pretrained(str(path))
    tiny_tokenizer.save_pretrained(str(path))
    return path


RUN = [s for s in snippets() if s[3] is None]


@pytest.mark.slow  # 20-30 s each: a subprocess importing torch and adapters
@pytest.mark.parametrize("line,lang,code", [s[:3] for s in RUN], ids=[f"line{s[0]}-{s[1]}" for s in RUN])
def test_readme_snippet_runs(line, lang, code, tmp_path, trained_model_dir):
    code = code.replace(MODEL_PLACEHOLDER, str(trained_model_dir))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:  # `molora` is the console script; run the same entry point with this interpreter
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        script = bin_dir / "molora"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m molora_adapters.cli "$@"\n')
        script.chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README line {line}:\n{proc.stdout}\n{proc.stderr}"


def test_skipped_snippets_are_listed():
    skipped = [(s[0], s[3]) for s in snippets() if s[3] is not None]
    assert skipped and RUN  # some run, some are documented as not run
