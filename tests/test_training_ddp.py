"""Staged training under DDP: 2 CPU processes (gloo) == one process with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path):
    from tests.training_ddp_worker import run

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), str(ROOT / "tests" / "training_ddp_worker.py"), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    single = run(str(tmp_path / "single"), world_size=1)
    assert rank0.keys() == rank1.keys() == single.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks disagree on {name}"
        torch.testing.assert_close(
            rank0[name], single[name], rtol=1e-5, atol=1e-6, msg=f"DDP != single: {name}"
        )
    # every stage really trained something under DDP
    assert not torch.equal(
        rank0["bert.embeddings.word_embeddings.weight"], _initial()["bert.embeddings.word_embeddings.weight"]
    )


def _initial() -> dict[str, torch.Tensor]:
    from tests.training_ddp_worker import ddp_model

    return {n: p.detach().clone() for n, p in ddp_model().named_parameters()}
