"""The pipeline with an in-process scripted backend: Ctrl-C and resume, the run lock, the
``llm-augmented`` / ``openie4pp`` loaders and the backend registry."""

from __future__ import annotations

import threading

import pytest
from llm_utils import ENGLISH, EXPECTED_ACCEPTED, EXPECTED_REJECTED, LANGS, N_REQUESTS, scripted_answer

from molora_adapters.data import load_training_corpus, records_to_dataset
from molora_adapters.data.llm import (
    LLM_BACKENDS,
    AnnotateConfig,
    ChatBackend,
    ChatResponse,
    annotate,
    build_backend,
    build_openie4pp,
    register_llm_backend,
)
from molora_adapters.data.llm.pipeline import detokenize
from molora_adapters.data.registry import CORPUS_LOADERS, register_corpus_loader
from molora_adapters.data.shards import read_jsonl


class ScriptedBackend(ChatBackend):
    """The scripted LLM in-process; raises ``interrupt_at``-th call's ``KeyboardInterrupt`` (Ctrl-C)."""

    name = "scripted"

    def __init__(self, model: str = "script-1", interrupt_at: int | None = None) -> None:
        self.model, self.interrupt_at = model, interrupt_at
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def chat(self, messages, *, max_tokens, temperature):
        key, answer = scripted_answer(messages)
        with self._lock:
            if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
                raise KeyboardInterrupt
            self.calls.append(key)
        return ChatResponse(answer, prompt_tokens=10, completion_tokens=5)


def _config(out, **kw) -> AnnotateConfig:
    return AnnotateConfig(
        **{"languages": LANGS, "out_dir": str(out), "shard_size": 4, "progress": False, **kw}
    )


def _ids(out) -> list[str]:
    return load_training_corpus("llm-augmented", path=str(out))["id"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_ctrl_c_then_resume(tmp_path, concurrency):
    first = ScriptedBackend(interrupt_at=13)
    with pytest.raises(KeyboardInterrupt):
        annotate(ENGLISH, first, _config(tmp_path, concurrency=concurrency))
    assert len(first.calls) == 13  # queued items were cancelled, not run
    second = ScriptedBackend()
    report = annotate(ENGLISH, second, _config(tmp_path, concurrency=concurrency))
    assert sorted(first.calls + second.calls) == sorted(
        set(first.calls + second.calls)
    )  # nothing asked twice
    assert len(first.calls) + len(second.calls) == N_REQUESTS
    ids = _ids(tmp_path)
    assert sorted(ids) == sorted(EXPECTED_ACCEPTED) and len(ids) == len(set(ids))
    rejects = {r["id"]: r["reason"] for f in (tmp_path / "rejects").glob("*.jsonl") for r in read_jsonl(f)}
    assert rejects == EXPECTED_REJECTED
    assert report.accepted == 12 and report.rejected == {
        "not_a_span": 1,
        "untranslated": 1,
        "annotation_unparseable": 1,
    }
    assert report.usage.requests == len(second.calls) and report.usage.cache_hits >= 1


def test_cache_is_keyed_by_model_and_prompt(tmp_path):
    cache = str(tmp_path / "shared.sqlite")
    a = ScriptedBackend("model-a")
    annotate(ENGLISH, a, _config(tmp_path / "a", cache_path=cache, limit=1))
    b = ScriptedBackend("model-b")
    annotate(ENGLISH, b, _config(tmp_path / "b", cache_path=cache, limit=1))
    c = ScriptedBackend("model-a")
    annotate(ENGLISH, c, _config(tmp_path / "c", cache_path=cache, limit=1, prompt="mt4crossoie-cot"))
    d = ScriptedBackend("model-a")
    annotate(ENGLISH, d, _config(tmp_path / "d", cache_path=cache, limit=1))
    assert len(a.calls) == len(b.calls) == len(c.calls) == 6 and d.calls == []


def test_repeated_sentence_is_asked_once(tmp_path):
    source = [dict(r, id=f"{r['id']}-{k}") for k in range(4) for r in ENGLISH[:1]]
    backend = ScriptedBackend()
    report = annotate(source, backend, _config(tmp_path, concurrency=4, languages=["de"]))
    assert sorted(backend.calls) == ["annotate:s1:de", "translate:s1:de"]
    assert report.accepted == 4 and report.usage.cache_hits == 6


def test_openie4pp(tmp_path):
    annotate(ENGLISH, ScriptedBackend(), _config(tmp_path / "run1", languages=["de", "zh"]))
    annotate(ENGLISH, ScriptedBackend(), _config(tmp_path / "run2", languages=["es"]))
    english = records_to_dataset(
        [
            {
                **r,
                "words": r["sentence"].split(),
                "language": "en",
                "meta": "{}",
                "extractions": [
                    {
                        **e,
                        "context": None,
                        "confidence": 1.0,
                        "arg0_pos": [],
                        "relation_pos": [],
                        "args_pos": [],
                    }
                    for e in r["extractions"]
                ],
            }
            for r in ENGLISH
        ]
    )
    mixed = build_openie4pp(english, [tmp_path / "run1", tmp_path / "run2"])
    assert mixed["language"].count("en") == 6 and len(mixed) == 6 + 12
    assert sorted(mixed["id"][6:]) == sorted(EXPECTED_ACCEPTED)
    only_zh = build_openie4pp(english, [tmp_path / "run1", tmp_path / "run2"], languages=["zh"])
    assert len(only_zh) == 6 + 4
    register_corpus_loader("test-english", lambda path=None, **kw: english)
    try:
        ds = load_training_corpus("openie4pp", path=[str(tmp_path / "run1")], english="test-english")
        assert len(ds) == 6 + 8 and ds.features == english.features
    finally:
        CORPUS_LOADERS.unregister("test-english")
    # the same directory twice gives no duplicates
    assert len(load_training_corpus("llm-augmented", path=[tmp_path / "run2", tmp_path / "run2"])) == 4


def test_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="`path` is required"):
        load_training_corpus("llm-augmented")
    with pytest.raises(FileNotFoundError, match="not an annotation output directory"):
        load_training_corpus("llm-augmented", path=str(tmp_path))


def test_backend_registry():
    assert {"openai", "transformers"} <= set(LLM_BACKENDS.names())
    with pytest.raises(ValueError, match="already registered"):
        register_llm_backend("openai", ScriptedBackend)
    register_llm_backend("test-scripted", ScriptedBackend)
    try:
        assert build_backend("test-scripted", model="m").model == "m"
    finally:
        LLM_BACKENDS.unregister("test-scripted")
    with pytest.raises(KeyError, match="Unknown LLM backend `nope`"):
        build_backend("nope")


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="`shard_size` must be >= 1, got 0"):
        _config(tmp_path, shard_size=0)
    with pytest.raises(ValueError, match="`limit` must be >= 1"):
        _config(tmp_path, limit=0)
    with pytest.raises(ValueError, match="Unknown language code"):
        _config(tmp_path, languages="de,klingon")


def test_detokenize():
    assert detokenize("It , along with nihonium -LRB- element 113 -RRB- , is n't new .") == (
        "It, along with nihonium (element 113), isn't new."
    )
