"""The one sharded, resumable run (:mod:`molora_adapters.data.shards`), exercised through both of its users:
``molora annotate`` (a scripted LLM) and ``molora project`` (a stand-in aligner). Each is killed mid-run
(Ctrl-C), resumed, and must end with the files of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_utils import ENGLISH, LANGS
from test_llm_pipeline import ScriptedBackend
from test_projection import ConceptAligner, _units

from molora_adapters.data.llm import AnnotateConfig, annotate
from molora_adapters.data.projection import ProjectConfig, project
from molora_adapters.data.shards import ids_hash, plan_shards, read_manifest, run_lock

_SCRATCH = {".lock", "stats.json", "cache.sqlite"}  # the lock, this run's counters, the answer cache


class _Annotate:
    command = "molora annotate"
    interrupt = 13  # the 14th LLM call raises KeyboardInterrupt (shard 0 and part of shard 1 done)

    def run(self, out: Path, *, interrupt: bool = False, idle: bool = False, **settings):
        backend = ScriptedBackend(interrupt_at=self.interrupt if interrupt else (0 if idle else None))
        config = {"languages": LANGS, "out_dir": str(out), "shard_size": 4, "progress": False, **settings}
        return annotate(ENGLISH, backend, AnnotateConfig(**config))

    changed = {"languages": ["de"]}


class _Project:
    command = "molora project"

    def __init__(self) -> None:
        self.units, self.concepts = _units()

    def run(self, out: Path, *, interrupt: bool = False, idle: bool = False, **settings):
        aligner = ConceptAligner(self.concepts, fail_after=7 if interrupt else (0 if idle else None))
        config = ProjectConfig(
            **{
                "languages": "de,zh",
                "out_dir": str(out),
                "shard_size": 3,
                "progress": False,
                "leak_check": False,
            }
            | settings
        )
        return project(self.units, config, aligner=aligner)

    changed = {"min_coverage": 0.9}


RUNS = {"annotate": _Annotate, "project": _Project}


def _tree(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name not in _SCRATCH
    }


@pytest.fixture(params=sorted(RUNS))
def run(request):
    return RUNS[request.param]()


def test_killed_run_resumes_to_the_files_of_an_uninterrupted_one(run, tmp_path):
    run.run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run.run(tmp_path / "resumed", interrupt=True)
    finished = read_manifest(tmp_path / "resumed")["shards"]
    assert 0 < len(finished) < len(read_manifest(tmp_path / "full")["shards"])
    report = run.run(tmp_path / "resumed")
    assert report.skipped_shards == len(finished)
    assert _tree(tmp_path / "full") == _tree(tmp_path / "resumed")
    # a finished run re-run does no work (the stand-ins raise on their first call)
    n_shards = len(read_manifest(tmp_path / "full")["shards"])
    assert run.run(tmp_path / "resumed", idle=True).skipped_shards == n_shards


def test_one_writer_per_directory(run, tmp_path):
    with run_lock(tmp_path, "someone"), pytest.raises(RuntimeError, match=f"Another `{run.command}` run"):
        run.run(tmp_path)
    run.run(tmp_path)  # released


def test_resumed_run_must_keep_its_settings(run, tmp_path):
    run.run(tmp_path)
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="different settings"):
        run.run(tmp_path, **run.changed)
    assert _tree(tmp_path) == before


def test_shard_plan_is_deterministic_and_hashes_item_ids():
    shards = plan_shards(list("abcdefg"), 3, str)
    assert [s.items for s in shards] == [list("abc"), list("def"), ["g"]]
    assert [s.index for s in shards] == [0, 1, 2]
    assert shards[0].ids_sha256 == ids_hash(["a", "b", "c"]) != ids_hash(["a", "b", "d"])
