"""The package as users get it: every module imports, and a built wheel works outside the source tree.

`.ci/run` already installs the project into a brand-new virtual environment from its declared requirements, so a
missing dependency fails the whole run. The slow test below checks packaging itself: it builds the wheel, installs
it (not editable) into a fresh environment, and runs the console script from a folder where the source tree is
not importable, so that missing modules, package data (vendored corpora, gold sets, metric scripts) or entry points
fail CI. That environment takes its third-party packages from the test environment through a ``.pth`` line: they
were just installed from the declared requirements, and re-downloading them would add minutes without testing
anything new.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

import molora_adapters

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "molora_adapters"


def _all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(molora_adapters.__path__, f"{PACKAGE}."))


def test_every_module_imports():
    """No module needs an undeclared package at import time (optional extras are imported lazily)."""
    failures = {}
    for name in _all_modules():
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - report every failing module at once
            failures[name] = repr(err)
    assert not failures, failures


def test_trainer_dependencies_are_declared():
    """transformers' Trainer needs accelerate; it must come with the package, not by luck."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from transformers import TrainingArguments

    reqs = [Requirement(r) for r in requires("molora-adapters") or []]
    declared = {r.name for r in reqs if r.marker is None}
    assert "accelerate" in declared
    TrainingArguments(output_dir="unused", report_to=[])  # raises ImportError without accelerate


def _source_files() -> list[Path]:
    """The files a clean clone has (git-tracked), or the tree minus build output outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout
        files = [REPO / f for f in out.decode().split("\0") if f]
        return [f for f in files if f.is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {"build", "dist", ".git", "__pycache__", ".venv", "runs", "outputs"}
        return [
            p
            for p in REPO.rglob("*")
            if p.is_file() and not (set(p.relative_to(REPO).parts) & skip) and ".egg-info" not in str(p)
        ]


def _build_wheel(dest: Path) -> Path:
    """Build the wheel from a copy of the clean-clone files (no stale ``build/`` content can slip in)."""
    src = dest / "src"
    for f in _source_files():
        target = src / f.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest / "dist"), str(src)]
    have_bdist_wheel = importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    if have_bdist_wheel or importlib.util.find_spec("wheel") is not None:
        cmd.insert(4, "--no-build-isolation")  # build with the setuptools already here: no download
    subprocess.run(cmd, check=True, timeout=600)
    (wheel,) = (dest / "dist").glob("molora_adapters-*.whl")
    return wheel


def _fresh_env(dest: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed (not editable) and this environment's third-party packages."""
    venv = dest / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # A plain path line: this environment's own .pth hooks (our editable install) are NOT run there.
    (site / "_molora_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    return venv


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [str(venv / "bin" / args[0]), *args[1:]]  # the fresh environment's python / console script
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path, tiny_tokenizer):
    from conftest import tiny_adapter_model

    from molora_adapters.oie import LineResult, OIEPipeline, add_oie_head, write_results

    wheel = _build_wheel(tmp_path / "build")
    venv = _fresh_env(tmp_path / "env", wheel)
    work = tmp_path / "work"  # not the repo: `import molora_adapters` can only find the wheel's copy
    work.mkdir()

    # Every module imports from the installed copy, which holds every non-Python file of the package.
    check = """
import importlib, json, pkgutil, sys
from pathlib import Path
import molora_adapters
root = Path(molora_adapters.__file__).parent
assert str(root).startswith(sys.prefix), root
for m in pkgutil.walk_packages(molora_adapters.__path__, "molora_adapters."):
    importlib.import_module(m.name)
data = sorted(str(p.relative_to(root)) for p in root.rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)
print(json.dumps(data))
"""
    shipped = json.loads(_run(venv, work, "python", "-c", check).stdout)
    pkg_root = REPO / PACKAGE
    expected = sorted(
        str(f.relative_to(pkg_root))
        for f in _source_files()
        if f.is_relative_to(pkg_root) and f.suffix != ".py"
    )
    assert shipped == expected

    # Package data is readable through the public loaders.
    _run(
        venv,
        work,
        "python",
        "-c",
        "from molora_adapters.oie.benchmarks import load_benchmark; "
        "from molora_adapters.data import load_training_corpus; "
        "assert len(load_benchmark('carb', 'en')) > 0; assert len(load_benchmark('benchie', 'zh')) > 0; "
        "assert len(load_training_corpus('oie2016')) > 0",
    )

    # The console script.
    assert "extract" in _run(venv, work, "molora", "--help").stdout
    assert "--model" in _run(venv, work, "molora", "extract", "--help").stdout
    # ... whose help imports neither torch nor adapters (the installed entry point, as the script runs it).
    light = """
import contextlib, io, sys
from importlib.metadata import entry_points
(script,) = [e for e in entry_points(group="console_scripts") if e.name == "molora"]
main = script.load()
for argv in (["--help"], ["--version"], ["extract", "--help"], ["answer", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
print(sorted(m for m in ("torch", "adapters", "transformers") if m in sys.modules))
"""
    assert _run(venv, work, "python", "-c", light).stdout.strip() == "[]"

    # One tiny extraction through the installed CLI equals the in-process pipeline on the same saved model.
    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    with torch.no_grad():  # bias the predicate tagger so that random weights give tuples
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    model_dir = tmp_path / "model"
    model.save_pretrained(str(model_dir))
    tiny_tokenizer.save_pretrained(str(model_dir))
    sentences = ["Lisbon is the capital of Portugal .", "Berlin liegt an der Spree ."]
    (work / "in.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    _run(
        venv,
        work,
        "molora",
        "extract",
        "--model",
        str(model_dir),
        "--input",
        "in.txt",
        "--output",
        "out.jsonl",
        "--min-args",
        "0",
    )
    pipe = OIEPipeline(model, tiny_tokenizer, min_args=0)
    expected = io.StringIO()
    # the CLI runs both lines in one batch; so does this (padding changes the last bits of the confidences)
    write_results(
        [
            LineResult(n, s, None, e)
            for n, (s, e) in enumerate(zip(sentences, pipe.extract(sentences), strict=True), 1)
        ],
        expected,
        "jsonl",
    )
    got = [json.loads(x) for x in (work / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert got == [json.loads(x) for x in expected.getvalue().splitlines()]
    assert any(row["extractions"] for row in got)
