"""The OpenAI-compatible backend and the resumable pipeline against a loopback chat-completions server.

After every injected fault the final dataset must be exactly the fault-free one: nothing lost,
nothing duplicated, and no answer paid for twice.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_utils import (
    ENGLISH,
    EXPECTED_ACCEPTED,
    EXPECTED_REJECTED,
    LANGS,
    N_REQUESTS,
    ChatServer,
    assert_record_valid,
    write_source,
)

from molora_adapters.data import load_training_corpus
from molora_adapters.data.llm import AnnotateConfig, FatalBackendError, OpenAIHTTPBackend, annotate
from molora_adapters.data.llm import cli as annotate_cli
from molora_adapters.data.llm.backends.openai_http import OpenAIHTTPConfig, RateLimiter, parse_retry_after
from molora_adapters.data.shards import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


def _records(out: Path) -> list[dict]:
    ds = load_training_corpus("llm-augmented", path=str(out))
    rows = ds.to_list()
    assert len({r["id"] for r in rows}) == len(rows), "duplicate records"
    return sorted(rows, key=lambda r: r["id"])


def _rejects(out: Path) -> dict[str, str]:
    rows = [r for f in sorted((out / "rejects").glob("*.jsonl")) for r in read_jsonl(f)]
    assert len({r["id"] for r in rows}) == len(rows)
    return {r["id"]: r["reason"] for r in rows}


def _run(server: ChatServer, out: Path, sleeps: list | None = None, **kw) -> OpenAIHTTPBackend:
    # backoff_base 0.01: jittered backoffs stay below 0.02 s, so Retry-After sleeps (1 s) stand out
    settings = {
        "timeout": 5.0,
        "max_retries": 4,
        "backoff_base": 0.01,
        "concurrency": kw.get("concurrency", 4),
    }
    settings.update({k: kw.pop(k) for k in list(kw) if k in ("timeout", "max_retries")})
    backend = OpenAIHTTPBackend(
        OpenAIHTTPConfig(base_url=server.url, model="scripted", api_key="k", **settings),
        sleep=(sleeps.append if sleeps is not None else (lambda s: None)),
    )
    config = AnnotateConfig(languages=LANGS, out_dir=str(out), shard_size=4, progress=False, **kw)
    backend.report = annotate(ENGLISH, backend, config)
    return backend


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ref")
    with ChatServer() as server:
        backend = _run(server, out, concurrency=1)
    assert sum(server.requests.values()) == N_REQUESTS and max(server.requests.values()) == 1
    assert backend.report.accepted == len(EXPECTED_ACCEPTED) and backend.report.usage.requests == N_REQUESTS
    assert _rejects(out) == EXPECTED_REJECTED
    records = _records(out)
    assert {r["id"] for r in records} == EXPECTED_ACCEPTED
    for rec in records:
        assert_record_valid(rec)
    return records


def test_reference_records_provenance(reference):
    rec = next(r for r in reference if r["id"] == "s2:zh")
    assert rec["language"] == "zh" and rec["sentence"] == "玛丽·居里于1898年发现了镭。"
    ex = rec["extractions"][0]
    assert (ex["arg0"], ex["relation"], ex["args"]) == ("玛丽·居里", "发现了", ["镭", "于1898年"])
    assert ex["args_pos"] == [[11], [5, 6, 7]]
    meta = json.loads(rec["meta"])
    assert meta["source_id"] == "s2" and meta["backend"] == "openai" and meta["model"] == "scripted"
    assert meta["prompt_id"].startswith("mt4crossoie@1+") and meta["language"] == "zh"
    assert meta["source_sentence"] == "Marie Curie discovered radium in 1898."
    assert (
        set(meta["responses"]) == {"translate", "annotate"} and "于 1898 年" in meta["responses"]["annotate"]
    )


FAULTS = {
    "429-retry-after": ["429", "429"],
    "500": ["500", None, "500", "500"],
    "hung-connection": ["hang"],
    "malformed-json": ["malformed", "malformed"],
    "mixed-concurrent": ["429", "500", "malformed", "hang", None, "500"],
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_faults_give_exactly_the_reference(name, reference, tmp_path):
    faults = FAULTS[name]
    sleeps: list[float] = []
    # the client timeout is generous so that only the hung request times out on a loaded CI machine
    with ChatServer(faults) as server:
        backend = _run(
            server, tmp_path, sleeps, timeout=1.5, concurrency=3 if name.startswith("mixed") else 1
        )
    assert _records(tmp_path) == reference
    assert _rejects(tmp_path) == EXPECTED_REJECTED
    n_faults = sum(f is not None for f in faults)
    assert server.fault_log == [f for f in faults if f] and backend.retries == n_faults
    # every distinct request answered exactly once: no answer paid for twice
    assert sum(server.requests.values()) == N_REQUESTS and max(server.requests.values()) == 1
    assert len(sleeps) == n_faults
    # Retry-After: 1 is honoured (plus < 0.1 s jitter); other retries back off exponentially (< 0.16 s here)
    assert sum(1.0 <= s < 1.1 for s in sleeps) == faults.count("429")
    assert all(s < 0.16 for s in sleeps if not 1.0 <= s < 1.1)


def test_retries_exhausted_then_resume(reference, tmp_path):
    with ChatServer(["500", "500"]) as server:
        backend = _run(server, tmp_path, max_retries=1, concurrency=1)
    assert backend.report.rejected.get("backend_error") == 1 and backend.report.incomplete_shards == 1
    first = server.requests.copy()
    assert "backend_error" in _rejects(tmp_path).values()
    with ChatServer() as server:
        backend = _run(server, tmp_path, concurrency=1)
    # only the failed item's requests are sent again; complete shards are not even re-read from cache
    assert sum(server.requests.values()) == N_REQUESTS - sum(first.values())
    assert backend.report.skipped_shards == 3 and backend.report.incomplete_shards == 0
    assert _records(tmp_path) == reference and _rejects(tmp_path) == EXPECTED_REJECTED


def test_rerun_is_free_and_identical(reference, tmp_path):
    with ChatServer() as server:
        _run(server, tmp_path, concurrency=2)
        backend = _run(server, tmp_path, concurrency=2)
    assert sum(server.requests.values()) == N_REQUESTS
    assert backend.report.usage.requests == 0 and backend.report.skipped_shards == 4
    assert _records(tmp_path) == reference
    # losing the manifest (but not the cache) re-reads everything from the cache, still for free
    (tmp_path / "manifest.json").unlink()
    with ChatServer() as server:
        backend = _run(server, tmp_path, concurrency=2)
    assert server.received == 0 and backend.report.usage.cache_hits == N_REQUESTS
    assert backend.report.usage.saved_tokens == N_REQUESTS * 120
    assert _records(tmp_path) == reference


def test_limit_extension_and_settings_guard(reference, tmp_path):
    with ChatServer() as server:
        _run(server, tmp_path, limit=2)
        assert {r["id"] for r in _records(tmp_path)} == {"s1:de", "s1:zh", "s1:es", "s2:de", "s2:zh", "s2:es"}
        backend = _run(server, tmp_path)
    assert sum(server.requests.values()) == N_REQUESTS and backend.report.items == 15
    assert _records(tmp_path) == reference
    with ChatServer() as server, pytest.raises(ValueError, match="different settings \\(languages"):
        backend = OpenAIHTTPBackend(base_url=server.url, model="scripted", api_key="k")
        annotate(
            ENGLISH,
            backend,
            AnnotateConfig(languages=["de"], out_dir=str(tmp_path), shard_size=4, progress=False),
        )


def test_fatal_auth_error_stops_the_run(tmp_path):
    with (
        ChatServer(["auth"]) as server,
        pytest.raises(FatalBackendError, match="HTTP 401.*check the API key"),
    ):
        _run(server, tmp_path, concurrency=1)
    assert server.received == 1


@pytest.mark.slow
def test_killed_mid_run_then_resumed(reference, tmp_path):
    src = write_source(tmp_path / "src.jsonl")
    out = tmp_path / "out"
    with ChatServer(delay=0.1) as server:
        cmd = [
            sys.executable,
            "-m",
            "molora_adapters.cli",
            "annotate",
            "--source",
            str(src),
            "--langs",
            ",".join(LANGS),
            "--backend",
            "openai",
            "--base-url",
            server.url,
            "--model",
            "scripted",
            "--api-key",
            "k",
            "--out",
            str(out),
            "--shard-size",
            "4",
            "--concurrency",
            "1",
            "--no-progress",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 300  # generous: a loaded 2-core machine imports torch slowly
        # With one worker an answer is cached before the next request goes out: once the 13th request has
        # arrived, at least 12 answers are in the cache, whatever the machine's load.
        while sum(server.requests.values()) < 13 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)  # let the server finish a request that was in flight at the kill
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        before = sum(server.requests.values())
        with sqlite3.connect(out / "cache.sqlite") as db:
            cached = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        assert 12 <= cached < N_REQUESTS and before - cached <= 1  # at most the one in flight was lost
        args = argparse.ArgumentParser()
        annotate_cli.add_arguments(args)
        assert annotate_cli.run(args.parse_args(cmd[4:])) == 0
    # the resumed run asks exactly what the cache lacked
    assert sum(server.requests.values()) - before == N_REQUESTS - cached
    assert _records(out) == reference  # provenance does not depend on how the source was given
    assert _rejects(out) == EXPECTED_REJECTED


# ---------------------------------------------------------------------------------------------
# bad input: a clear error before any request


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    annotate_cli.add_arguments(parser)
    return annotate_cli.run(parser.parse_args(argv))


@pytest.fixture
def no_env(monkeypatch):
    for k in (
        "OPENAI_API_KEY",
        "MOLORA_LLM_API_KEY",
        "OPENAI_BASE_URL",
        "MOLORA_LLM_BASE_URL",
        "MOLORA_LLM_MODEL",
    ):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def broken_corpus():
    from molora_adapters.data.registry import CORPUS_LOADERS, register_corpus_loader

    def broken(path=None, **kw):
        raise FileNotFoundError(f"no corpus at {path}")

    register_corpus_loader("test-broken-corpus", broken)
    yield "test-broken-corpus"
    CORPUS_LOADERS.unregister("test-broken-corpus")


@pytest.mark.parametrize(
    "case,match",
    [
        ("no-key", "`api_key` is missing"),
        ("no-url", "`base_url` is missing"),
        ("bad-lang", "Unknown language code `'xx'`"),
        ("unknown-source", "neither an existing JSONL file nor a registered corpus"),
        ("broken-source", "failed to load \\(FileNotFoundError: no corpus at /nowhere\\)"),
        ("not-english", "the source must be English"),
    ],
)
def test_bad_input_fails_before_any_request(case, match, no_env, broken_corpus, tmp_path, capsys):
    src = write_source(tmp_path / "src.jsonl")
    with ChatServer() as server:
        argv = {
            "--source": str(src),
            "--langs": "de,zh",
            "--base-url": server.url,
            "--model": "m",
            "--api-key": "k",
            "--out": str(tmp_path / "out"),
        }
        if case == "no-key":
            del argv["--api-key"]
        elif case == "no-url":
            del argv["--base-url"]
        elif case == "bad-lang":
            argv["--langs"] = "de,xx"
        elif case == "unknown-source":
            argv["--source"] = "no-such-corpus"
        elif case == "broken-source":
            argv.update({"--source": broken_corpus, "--source-path": "/nowhere"})
        elif case == "not-english":
            src.write_text(json.dumps({**ENGLISH[0], "language": "de"}) + "\n")
        assert _cli([x for kv in argv.items() for x in kv]) == 2
        assert server.received == 0
    err = capsys.readouterr().err
    assert err.startswith("molora annotate: error:") and __import__("re").search(match, err), err
    assert not (tmp_path / "out").exists()


def test_molora_annotate_command(reference, tmp_path, capsys):
    from molora_adapters.cli import main

    src = write_source(tmp_path / "src.jsonl")
    with ChatServer() as server:
        argv = [
            "annotate",
            "--source",
            str(src),
            "--langs",
            "de,zh,es",
            "--base-url",
            server.url,
            "--model",
            "scripted",
            "--api-key",
            "k",
            "--out",
            str(tmp_path / "out"),
            "--price-prompt",
            "1.0",
            "--price-completion",
            "2.0",
            "--no-progress",
        ]
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "items 15: accepted 12, rejected 3 (annotation_unparseable=1, not_a_span=1, untranslated=1)" in out
    # 29 requests x (100 prompt tokens x $1/M + 20 completion tokens x $2/M)
    assert "tokens prompt 2900 + completion 580" in out and "cost 0.0041" in out
    assert _records(tmp_path / "out") == reference
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["accepted"] == 12 and stats["usage"]["requests"] == N_REQUESTS


def test_duplicate_source_ids(tmp_path):
    with ChatServer() as server, pytest.raises(ValueError, match="two records with id 's1'"):
        backend = OpenAIHTTPBackend(base_url=server.url, model="m", api_key="k")
        annotate(
            ENGLISH + ENGLISH[:1],
            backend,
            AnnotateConfig(languages=["de"], out_dir=str(tmp_path), progress=False),
        )
    assert server.received == 0


def test_bad_local_model_path(tmp_path, capsys):
    src = write_source(tmp_path / "src.jsonl")
    argv = [
        "--source",
        str(src),
        "--langs",
        "de",
        "--backend",
        "transformers",
        "--model",
        str(tmp_path / "x.gguf"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert _cli(argv) == 2
    assert "`model`" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_env_settings(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:1/v1/chat/completions/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("MOLORA_LLM_MODEL", "llama")
    cfg = OpenAIHTTPConfig()
    assert (cfg.base_url, cfg.api_key, cfg.model) == ("http://localhost:1/v1", "sk-x", "llama")
    with pytest.raises(ValueError, match="`concurrency` must be >= 1, got 0"):
        OpenAIHTTPConfig(concurrency=0)
    with pytest.raises(ValueError, match="must start with http"):
        OpenAIHTTPConfig(base_url="localhost:8000")


def test_retry_after_and_rate_limiter():
    assert (
        parse_retry_after("3") == 3.0
        and parse_retry_after(None) is None
        and parse_retry_after("soon") is None
    )
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") < 1e-9  # a date in the past: no wait
    now = [100.0]
    limiter = RateLimiter(120, clock=lambda: now[0])  # 2 per second
    waits: list[float] = []
    for _ in range(3):
        limiter.wait(waits.append)
    assert waits == [0.5, 1.0]  # the first request starts at once
