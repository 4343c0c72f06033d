"""Training the Multi2OIE head lowers the loss and yields correct extractions."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_adapter_model
from oie_testing import GOLD_SAMPLES, gold_records, train_steps

from molora_adapters.oie import (
    DataCollatorForOIE,
    FeatureStats,
    OIEPipeline,
    add_oie_head,
    build_oie_features,
)
from molora_adapters.oie.labels import MAX_ARGS


def _gold_set(rec):
    return {(e["arg0"], e["relation"], tuple(e["args"])) for e in rec["extractions"]}


@pytest.mark.slow
def test_tiny_model_learns_and_extracts(tiny_tokenizer):
    records = gold_records()
    stats = FeatureStats()
    feats = build_oie_features(records, tiny_tokenizer, stats=stats)
    assert stats.examples == sum(len(t) for _, _, t in GOLD_SAMPLES) and not stats.skipped
    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2, arg_dropout=0.0, attention_dropout=0.0)
    losses = train_steps(model, feats, DataCollatorForOIE(tiny_tokenizer.pad_token_id), steps=60)
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:5]) / 5, losses[::10]

    pipe = OIEPipeline(model, tiny_tokenizer)
    results = pipe.extract(list(records["sentence"]), language=list(records["language"]))
    correct = [
        (rec["language"], (e.arg0, e.relation, tuple(e.args)))
        for rec, exts in zip(records, results, strict=True)
        for e in exts
        if (e.arg0, e.relation, tuple(e.args)) in _gold_set(rec)
    ]
    print(f"correct tuples: {len(correct)} / {sum(len(t) for _, _, t in GOLD_SAMPLES)}: {correct}")
    assert len(correct) >= 1, results
    assert all(0.0 <= e.confidence <= 1 + MAX_ARGS for exts in results for e in exts)


@pytest.mark.slow
def test_real_encoder_short_run_gives_nontrivial_extractions(embedded_e5_dir):
    """~30 s on 2 CPU cores: 100 steps on 60 short OIE2016 sentences, then extraction on 20 of them."""
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer

    from molora_adapters.data import load_training_corpus

    path, encoder = embedded_e5_dir, "embedded:multilingual-e5-small"
    tokenizer = AutoTokenizer.from_pretrained(path, fix_mistral_regex=False)
    torch.manual_seed(0)
    model = AutoAdapterModel.from_pretrained(path)
    add_oie_head(model, "oie", n_arg_layers=2, d_feedforward=512)
    model.get_input_embeddings().weight.requires_grad = (
        False  # 250k-row embedding: frozen to keep the test short
    )
    corpus = load_training_corpus("oie2016")
    corpus = corpus.select([i for i, w in enumerate(corpus["words"]) if len(w) <= 20][:60])
    feats = build_oie_features(corpus, tokenizer, max_length=64)
    collator = DataCollatorForOIE(tokenizer.pad_token_id)
    losses = train_steps(model, feats, collator, steps=100, lr=2e-4, head_lr=1e-4, batch_size=8)
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10]), losses[::10]

    sample = corpus.select(range(20))
    results = OIEPipeline(model, tokenizer).extract(list(sample["sentence"]), language="en")
    exts = [e for r in results for e in r]
    gold_rel = {(i, tuple(e["relation_pos"])) for i, rec in enumerate(sample) for e in rec["extractions"]}
    hits = sum((e.sentence_index, tuple(e.relation_pos)) in gold_rel for e in exts)
    full = [e for e in exts if e.arg0 and e.args]
    print(f"{encoder}: {len(exts)} extractions, {hits} gold predicates, {len(full)} with subject and object")
    assert len(exts) >= 10 and hits >= 10 and len(full) >= 3, [
        (e.arg0, e.relation, e.args) for e in exts[:10]
    ]


def test_sentence_layout_encodes_once_and_matches_the_predicate_layout(tiny_tokenizer):
    """One row per sentence gives the same argument logits and argument loss as one row per predicate."""
    records = gold_records()
    per_sentence = build_oie_features(records, tiny_tokenizer)
    per_predicate = build_oie_features(records, tiny_tokenizer, layout="predicate")
    n_tuples = sum(len(t) for _, _, t in GOLD_SAMPLES)
    assert len(per_sentence) == len(GOLD_SAMPLES) and len(per_predicate) == n_tuples
    assert sum(len(m) for m in per_sentence["predicate_masks"]) == n_tuples
    assert per_sentence["length"] == [len(ids) for ids in per_sentence["input_ids"]]
    collator = DataCollatorForOIE(tiny_tokenizer.pad_token_id)
    grouped = collator(list(per_sentence))
    flat = collator(list(per_predicate))
    assert (
        grouped["input_ids"].shape[0] == len(GOLD_SAMPLES) and grouped["predicate_mask"].shape[0] == n_tuples
    )
    torch.testing.assert_close(
        grouped["input_ids"].index_select(0, grouped["predicate_rows"]), flat["input_ids"]
    )
    for key in ("predicate_mask", "argument_labels"):
        torch.testing.assert_close(grouped[key], flat[key])

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    model.eval()
    with torch.no_grad():
        a = model(**grouped, return_dict=True)
        b = model(**flat, return_dict=True)
    torch.testing.assert_close(a.argument_logits, b.argument_logits)
    torch.testing.assert_close(a.argument_loss, b.argument_loss)
    # the predicate loss counts each sentence once (the predicate layout repeats it per predicate)
    torch.testing.assert_close(
        a.predicate_logits.index_select(0, grouped["predicate_rows"]), b.predicate_logits
    )
