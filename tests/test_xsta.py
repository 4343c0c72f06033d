"""X-STA: GDKS, ATGC and MGSA invariants, persistence, data, metric, trainer and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import tiny_adapter_model

from molora_adapters.xsta import XSTAConfig, info_nce, pair_attention_entropy
from molora_adapters.xsta.head import LanguageNorm

B, L = 2, 12
LANGS = ["en"] * B + ["de"] * B


def _model(model_type="bert", **cfg):
    model = tiny_adapter_model(model_type)
    cfg.setdefault("layer", 1)
    cfg.setdefault("languages", ["en", "de", "zh"])
    cfg.setdefault("correction_dropout", 0.0)
    model.add_xsta("xsta", **cfg)
    return model


def _batch(seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 900, (2 * B, L), generator=g)
    mask = torch.ones(2 * B, L, dtype=torch.long)
    if pad:
        mask[1, 9:] = 0
        mask[3, 7:] = 0
        ids[mask == 0] = 0
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "language_ids": list(LANGS),
        "xsta_paired": True,
        "start_positions": torch.tensor([1, 2, 1, 3]),
        "end_positions": torch.tensor([3, 4, 2, 5]),
    }


def _attn_module(model, layer):
    return model.base_model.encoder.layer[layer].attention.self


def _pair_items(targets, per_target=8, seed=0):
    """Random pair-training items: an ``en`` source and a ``target`` window of 6-11 tokens each, answer 1..2."""
    g = torch.Generator().manual_seed(seed)

    def feat(lang):
        n = int(torch.randint(6, 12, (1,), generator=g))
        ids = torch.randint(5, 900, (n,), generator=g).tolist()
        return {
            "input_ids": ids,
            "attention_mask": [1] * n,
            "start_positions": 1,
            "end_positions": 2,
            "language": lang,
        }

    return [{"source": feat("en"), "target": feat(lang)} for lang in targets for _ in range(per_target)]


# ---- GDKS --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_gdks_target_loss_gives_no_gradient_to_source(model_type):
    model = _model(model_type)
    model.train()
    batch = _batch()
    embeds = model.base_model.embeddings.word_embeddings(batch.pop("input_ids")).detach().requires_grad_(True)
    captured = {}

    def keep(module, args):
        args[0].retain_grad()
        captured["x"] = args[0]

    handle = _attn_module(model, 1).register_forward_pre_hook(keep)
    out = model(inputs_embeds=embeds, **batch)
    handle.remove()
    out.target_loss.backward()
    assert torch.count_nonzero(embeds.grad[:B]) == 0
    assert torch.count_nonzero(captured["x"].grad[:B]) == 0
    assert torch.count_nonzero(embeds.grad[B:]) > 0
    assert model.base_model.xsta_gdks["xsta"].correction.weight.grad.abs().sum() > 0


def test_gdks_source_stream_ignores_target():
    model = _model()
    a, b = _batch(0), _batch(0)
    b["input_ids"][B:] = torch.randint(5, 900, (B, L), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        out_a, out_b = model(**a), model(**b)
    assert torch.equal(out_a.source_start_logits, out_b.source_start_logits)
    assert torch.equal(out_a.source_end_logits, out_b.source_end_logits)
    assert not torch.equal(out_a.start_logits, out_b.start_logits)


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_gdks_gate_zero_equals_plain_layer(model_type):
    model = _model(model_type)
    gdks = model.base_model.xsta_gdks["xsta"]
    with torch.no_grad():
        gdks.gate_weight.zero_()
        gdks.gate_bias.zero_()
    batch = _batch()
    plain = {k: v for k, v in batch.items() if k != "xsta_paired"}
    with torch.no_grad():
        paired = model(**batch, output_hidden_states=True).hidden_states[-1]
        single = model(**plain, output_hidden_states=True).hidden_states[-1]
    mask = batch["attention_mask"].bool()
    torch.testing.assert_close(paired[mask], single[mask], atol=1e-6, rtol=0)


def _reference_attention(attn, x, mask, gdks, same_language):
    """Naive per-pair GDKS self-attention, straight from the equations (no batching tricks)."""
    h, d = attn.num_attention_heads, attn.attention_head_size
    out = torch.zeros_like(x)

    def proj(lin, v):  # (L, H) -> (h, L, d)
        return lin(v).view(v.shape[0], h, d).transpose(0, 1)

    def attend(q, k, v, key_mask):
        s = q @ k.transpose(-1, -2) / math.sqrt(d)
        s = s.masked_fill(~key_mask[None, None, :], float("-inf"))
        p = s.softmax(-1)
        return p @ v, p

    for i in range(B):
        xs, xt = x[i], x[B + i]
        ms, mt = mask[i], mask[B + i]
        cs, _ = attend(proj(attn.query, xs), proj(attn.key, xs), proj(attn.value, xs), ms)
        a_self, _ = attend(proj(attn.query, xt), proj(attn.key, xt), proj(attn.value, xt), mt)
        corr = xs if same_language else xs + gdks.correction(torch.cat([xs, xt], -1))
        a_cross, _ = attend(proj(attn.query, xt), proj(attn.key, corr), proj(attn.value, corr), ms)
        r = 0.3 * gdks.gate_weight + gdks.gate_bias
        out[i] = cs.transpose(0, 1).reshape(L, h * d)
        out[B + i] = (r * a_cross + (1 - r) * a_self).transpose(0, 1).reshape(L, h * d)
    return out


@pytest.mark.parametrize("same_language", [False, True])
def test_gdks_equals_naive_reference(same_language):
    model = _model()
    with torch.no_grad():
        model.base_model.xsta_gdks["xsta"].gate_bias.fill_(0.2)  # r = 0.5: both branches matter
    batch = _batch()
    if same_language:
        batch["language_ids"] = ["de"] * (2 * B)
    attn = _attn_module(model, 1)
    seen = {}
    h1 = attn.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    h2 = attn.register_forward_hook(lambda m, args, out: seen.__setitem__("y", out[0]))
    with torch.no_grad():
        model(**batch)
        ref = _reference_attention(
            attn, seen["x"], batch["attention_mask"].bool(), model.base_model.xsta_gdks["xsta"], same_language
        )
    h1.remove(), h2.remove()
    torch.testing.assert_close(seen["y"], ref, atol=1e-5, rtol=1e-5)


# ---- ATGC --------------------------------------------------------------------------------------------------------
def test_atgc_teacher_gradient_never_reaches_source_logits():
    model = _model()
    model.train()
    out = model(**_batch())
    out.teacher_loss.backward()
    head = model.heads["xsta"]
    # the classifier produces the logits; the teacher only reads them detached
    assert head.qa_outputs.weight.grad is None or torch.count_nonzero(head.qa_outputs.weight.grad) == 0
    assert head.teacher.query.weight.grad.abs().sum() > 0


def test_atgc_norm_uses_only_real_tokens():
    torch.manual_seed(0)
    norm = LanguageNorm(8, ["en", "de"], momentum=0.1, eps=1e-8).train()
    x = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]).bool()
    garbage = x.clone()
    garbage[~mask] = 1e4
    y1 = norm(x, mask, "de")
    stats1 = norm.running_mean.clone(), norm.running_var.clone()
    norm2 = LanguageNorm(8, ["en", "de"], momentum=0.1, eps=1e-8).train()
    y2 = norm2(garbage, mask, "de")
    torch.testing.assert_close(y1[mask], y2[mask])
    torch.testing.assert_close(stats1[0], norm2.running_mean)
    real = x[mask]
    torch.testing.assert_close(
        y1[mask], (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + 1e-8)
    )
    assert torch.equal(norm.running_mean[0], torch.zeros(8))  # other languages untouched


def test_atgc_norm_statistics_are_bias_corrected():
    # regression (issue 14): with a plain EMA from (0, 1), a target language seen in 3 batches of a 30-step run was
    # normalised at eval with var ~0.75 instead of its ~0.075, flattening target logits against the teacher's
    torch.manual_seed(0)
    norm = LanguageNorm(4, ["en", "de", "zh"], momentum=0.1, eps=1e-8, fallback="en").train()
    mask = torch.ones(2, 3, dtype=torch.bool)
    batches = [torch.randn(2, 3, 4) * 0.3 + k for k in range(3)]
    for x in batches:
        norm(x, mask, "de")
    means = [x.reshape(-1, 4).mean(0) for x in batches]
    variances = [x.reshape(-1, 4).var(0, unbiased=False) for x in batches]
    # rates 1, 1/2, 1/3: the cumulative average of the batch statistics
    torch.testing.assert_close(norm.running_mean[1], sum(means) / 3)
    torch.testing.assert_close(norm.running_var[1], sum(variances) / 3)
    for x in batches[:1] * 20:
        norm(x, mask, "en")
    norm.eval()
    probe = torch.randn(1, 3, 4)
    # unseen zh uses en's statistics; after 20 batches at rate max(0.1, 1/n), en's equal the repeated batch's
    torch.testing.assert_close(norm(probe, mask[:1], "zh"), norm(probe, mask[:1], "en"))
    torch.testing.assert_close(norm.running_mean[0], means[0])
    # heads saved before the counts existed still load (as long-tracked statistics)
    state = {k: v for k, v in norm.state_dict().items() if k != "num_batches_tracked"}
    fresh = LanguageNorm(4, ["en", "de", "zh"], momentum=0.1, eps=1e-8)
    fresh.load_state_dict(state)
    assert int(fresh.num_batches_tracked.min()) > 0


# ---- MGSA --------------------------------------------------------------------------------------------------------
def test_info_nce_hand_computed():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # cos: s0.t0 = 1, s0.t1 = 1/sqrt2, s1.t0 = 0, s1.t1 = 1/sqrt2; temperature 0.5 doubles them
    c = 2 / math.sqrt(2)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(c)))
    row1 = -math.log(math.exp(c) / (math.exp(0) + math.exp(c)))
    assert float(info_nce(s, t, temperature=0.5)) == pytest.approx((row0 + row1) / 2, abs=1e-6)


def test_mgsa_losses_ignore_padding():
    torch.manual_seed(0)
    probs = torch.rand(2, 4, 5).softmax(-1)
    t_mask = torch.ones(2, 4, dtype=torch.bool)
    s_mask = torch.ones(2, 5, dtype=torch.bool)
    # pad by two target positions and three source positions (zero mass on padded keys, arbitrary padded rows)
    padded = torch.zeros(2, 6, 8)
    padded[:, :4, :5] = probs
    padded[:, 4:, :5] = torch.rand(2, 2, 5).softmax(-1)
    tp = torch.cat([t_mask, torch.zeros(2, 2, dtype=torch.bool)], 1)
    sp = torch.cat([s_mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(
        pair_attention_entropy(probs, t_mask, s_mask, "real"), pair_attention_entropy(padded, tp, sp, "real")
    )
    # InfoNCE through the head's pooling: padding a row does not change the loss
    model = _model(entropy_average="real")
    a = _batch(pad=False)
    b = {**a, "input_ids": torch.cat([a["input_ids"], torch.zeros(2 * B, 3, dtype=torch.long)], 1)}
    b["attention_mask"] = torch.cat([a["attention_mask"], torch.zeros(2 * B, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        la, lb = model(**a), model(**b)
    torch.testing.assert_close(la.infonce_loss, lb.infonce_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(la.entropy_loss, lb.entropy_loss, atol=1e-5, rtol=1e-5)


# ---- persistence ------------------------------------------------------------------------------------------------
def _trained_model():
    model = _model()
    model.train()
    out = model(**_batch())  # moves the running statistics off their initial values
    out.loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.add_(0.1 * p.grad)
    return model.eval()


def test_save_load_xsta_round_trip(tmp_path):
    model = _trained_model()
    with torch.no_grad():
        ref = model(**_batch())
    model.save_xsta(tmp_path / "x", "xsta")
    fresh = tiny_adapter_model("bert")
    fresh.load_state_dict(model.state_dict(), strict=False)  # same backbone
    fresh.load_xsta(tmp_path / "x")
    with torch.no_grad():
        out = fresh(**_batch())
    for key in ("start_logits", "end_logits", "loss"):
        assert torch.equal(ref[key], out[key])
    fresh.delete_xsta("xsta")
    assert "xsta" not in fresh.heads and not fresh.adapters_config.xsta


def test_save_pretrained_round_trip(tmp_path):
    from adapters import AutoAdapterModel

    model = _trained_model()
    with torch.no_grad():
        ref = model(**_batch())
    model.save_pretrained(tmp_path / "m")
    loaded = AutoAdapterModel.from_pretrained(tmp_path / "m").eval()
    assert "xsta" in loaded.base_model.xsta_gdks
    loaded.active_head = "xsta"
    with torch.no_grad():
        out = loaded(**_batch())
    for key in ("start_logits", "end_logits", "source_start_logits", "loss"):
        assert torch.equal(ref[key], out[key])


# ---- bad input ---------------------------------------------------------------------------------------------------
def test_bad_pair_batches_raise_before_work():
    from molora_adapters.xsta import make_pair_batch

    model = _model()
    odd = _batch()
    odd = {**odd, "input_ids": odd["input_ids"][:3], "attention_mask": odd["attention_mask"][:3]}
    odd["language_ids"] = ["en", "en", "de"]
    with pytest.raises(ValueError, match="odd number of rows"):
        model(**odd)
    mixed = {**_batch(), "language_ids": ["en", "en", "de", "zh"]}
    with pytest.raises(ValueError, match="one language pair"):
        model(**mixed)
    with pytest.raises(ValueError, match="language_ids"):
        model(**{**_batch(), "language_ids": None})
    half = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "language_ids": ["en", "en"]}
    other = {"input_ids": torch.zeros(2, 7, dtype=torch.long), "language_ids": ["de", "de"]}
    with pytest.raises(ValueError, match="differ in `input_ids`"):
        make_pair_batch(half, other)


def test_bad_setups_raise():
    model = tiny_adapter_model("bert")
    with pytest.raises(ValueError, match=r"`layer` must be in \[0, 1\]"):
        model.add_xsta("x", layer=2)
    assert not model.adapters_config.xsta and "x" not in model.heads
    with pytest.raises(ValueError, match="source_language"):
        XSTAConfig(languages=["de"])
    from adapters import AutoAdapterModel
    from transformers import DistilBertConfig

    import molora_adapters  # noqa: F401

    distil = AutoAdapterModel.from_config(
        DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    )
    with pytest.raises(ValueError, match="BERT-family"):
        distil.add_xsta("x", layer=0)


def test_loader_reports_answers_not_in_context():
    from molora_adapters.xsta.data import XQuADLoadReport, parse_squad

    data = {
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": "Paris is the capital of France.",
                        "qas": [
                            {"id": "ok", "question": "q", "answers": [{"text": "Paris", "answer_start": 0}]},
                            {
                                "id": "moved",
                                "question": "q",
                                "answers": [{"text": "France", "answer_start": 3}],
                            },
                            {
                                "id": "gone",
                                "question": "q",
                                "answers": [{"text": "Berlin", "answer_start": 0}],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    report = XQuADLoadReport()
    examples = parse_squad(data, "en", report)
    assert [e.id for e in examples] == ["ok", "moved", "gone"]  # never silently dropped
    assert examples[1].answers[0] == ("France", 24) and examples[2].trainable is False
    assert report.summary() == {
        "questions": {"en": 3},
        "realigned": {"en": 1},
        "span_not_found": {"en": ["gone"]},
    }
    with pytest.raises(ValueError, match="`gone`"):
        parse_squad(data, "en", XQuADLoadReport(), strict=True)


# ---- metric ------------------------------------------------------------------------------------------------------
def test_squad_metric_matches_official_script_on_hand_cases():
    from molora_adapters.xsta import squad_scores

    # values computed with the official evaluate-v1.1.py rules (normalisation, max over golds, percentages)
    refs = {"a": ["The Eiffel Tower"], "b": ["in 1889", "1889"], "c": ["red, green and blue"], "d": ["x"]}
    preds = {"a": "eiffel tower!", "b": "built in 1889 by", "c": "green and blue light"}
    scores = squad_scores(preds, refs)
    # a: EM 1, F1 1; b: best gold "in 1889": p=2/4, r=1 -> F1 2/3, EM 0; c: 3 common of pred 4 / gold 4 -> 0.75
    assert scores["exact_match"] == pytest.approx(25.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0.75 + 0) / 4)


# ---- data ---------------------------------------------------------------------------------------------------------
def test_xquad_split_windows_and_pair_batches(tiny_tokenizer):
    from molora_adapters.xsta import (
        DataCollatorForXSTA,
        PairBatchSampler,
        build_features,
        build_pair_features,
        load_xquad,
        split_articles,
    )

    data, report = load_xquad(["en", "de", "zh"])
    assert report.questions == {"en": 1190, "de": 1190, "zh": 1190}
    titles = [e.title for e in data["en"]]
    train, test = split_articles(titles, n_folds=4, fold=0, seed=0)
    assert len(test) == 12 and not set(train) & set(test) and split_articles(titles, 4, 0, 0) == (train, test)
    en = [e for e in data["en"] if e.title in test][:20]
    feats = build_features(tiny_tokenizer, en, max_length=96, doc_stride=16, max_query_length=24)
    assert max(len(f["input_ids"]) for f in feats) <= 96 and len(feats) > len(en)  # long contexts -> windows
    by_id = {e.id: e for e in en}
    offsets = build_features(
        tiny_tokenizer, en, max_length=96, doc_stride=16, train=False, max_query_length=24
    )
    assert [f["example_id"] for f in offsets] == [f["example_id"] for f in feats]
    spans = [(f, o) for f, o in zip(feats, offsets, strict=True) if f["start_positions"]]
    assert len({f["example_id"] for f, _ in spans}) == len(en)  # every answer lies in some window
    for f, o in spans:
        ex = by_id[f["example_id"]]
        span = ex.context[o["offsets"][f["start_positions"]][0] : o["offsets"][f["end_positions"]][1]]
        assert span.strip() == ex.answers[0][0].strip()
    items = []
    for lang in ("de", "zh"):
        tgt = [e for e in data[lang] if e.id in by_id]
        items += build_pair_features(
            feats, build_features(tiny_tokenizer, tgt, max_length=96, doc_stride=16, max_query_length=24)
        )
    sampler = PairBatchSampler(items, batch_size=4, seed=1)
    collate = DataCollatorForXSTA(tiny_tokenizer)
    for idx in sampler:
        batch = collate([items[i] for i in idx])
        assert len(set(batch["language_ids"][len(idx) :])) == 1 and batch["xsta_paired"]
    assert list(sampler) == list(PairBatchSampler(items, batch_size=4, seed=1))


def test_pair_windows_cover_the_same_stretch_of_context(tiny_tokenizer):
    # regression (issue 14): target window k was paired with source window k, so a translation that tokenises into
    # more windows had its answer window paired with a source window about another part of the context
    from molora_adapters.xsta import build_features, build_pair_features
    from molora_adapters.xsta.data import QAExample

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    src_ctx = " ".join(words * 3) + " Paris is the capital."
    tgt_ctx = " ".join(w + " " + w for w in words * 3) + " Paris ist die Hauptstadt."
    src = QAExample("q", "", src_ctx, "What is the capital?", (("Paris", src_ctx.index("Paris")),), "en")
    tgt = QAExample("q", "", tgt_ctx, "Was ist die Hauptstadt?", (("Paris", tgt_ctx.index("Paris")),), "de")
    kw = dict(max_length=48, doc_stride=16, max_query_length=12)
    s_feats, t_feats = (
        build_features(tiny_tokenizer, [src], **kw),
        build_features(tiny_tokenizer, [tgt], **kw),
    )
    assert len(t_feats) > len(s_feats) > 1
    pairs = build_pair_features(s_feats, t_feats)
    assert [p["target"]["window"] for p in pairs] == list(range(len(t_feats)))
    for p in pairs:  # the chosen source window overlaps the target's stretch at least as much as any other
        (t0, t1), (s0, s1) = p["target"]["span"], p["source"]["span"]
        best = max(max(0.0, min(w["span"][1], t1) - max(w["span"][0], t0)) for w in s_feats)
        assert min(s1, t1) - max(s0, t0) == pytest.approx(best)
    windows = [(p["source"]["window"], p["target"]["window"]) for p in pairs]
    assert windows[0] == (0, 0) and windows[-1] == (len(s_feats) - 1, len(t_feats) - 1)
    assert [s for s, _ in windows] == sorted(s for s, _ in windows)  # monotone alignment
    for p in pairs:  # the window holding the answer is paired with the source window holding it
        if p["target"]["start_positions"]:
            assert p["source"]["start_positions"] > 0


def test_paired_inference_on_identical_halves_matches_source_free(tiny_tokenizer):
    # regression (issue 14): paired = target + teacher logits; when the source half is the target itself GDKS is
    # the identity, so the answers must be those of source-free inference while the teacher has learnt nothing
    from molora_adapters.xsta import DataCollatorForXSTA, QAInput, XSTAQuestionAnsweringPipeline

    model = _model(languages=["en", "de"])
    head = model.heads["xsta"]
    assert head.teacher.query.weight.std() < 0.03  # the encoder's init, as the released code's init_weights()
    pipe = XSTAQuestionAnsweringPipeline(
        model, tiny_tokenizer, max_length=48, doc_stride=16, max_query_length=12
    )
    ctxs = [
        "The capital of France is Paris and it is very big, bigger than most other cities.",
        "Berlin is the capital of Germany. It has many museums and a long history.",
        "Water boils at one hundred degrees at sea level and freezes at zero degrees.",
    ]
    qs = ["What is the capital?", "What does Berlin have?", "When does water boil?"]
    free = [
        {"question": q, "context": c, "language": "en", "id": str(i)}
        for i, (q, c) in enumerate(zip(qs, ctxs, strict=True))
    ]
    paired = [{**f, "source_question": f["question"], "source_context": f["context"]} for f in free]
    answers_free = [o["answer"] for o in pipe(free)]
    assert [o["answer"] for o in pipe(paired)] == answers_free
    items = pipe.preprocess([QAInput.from_dict(d) for d in paired])
    batch = DataCollatorForXSTA(tiny_tokenizer)(items)
    single = DataCollatorForXSTA(tiny_tokenizer)([it["target"] for it in items])
    with torch.no_grad():
        out, ref = model(**batch, return_dict=True), model(**single, return_dict=True)
    torch.testing.assert_close(
        out.start_logits - out.teacher_start_logits, ref.start_logits, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(out.end_logits - out.teacher_end_logits, ref.end_logits, atol=1e-5, rtol=0)
    real = single["attention_mask"].bool()
    spread = (out.teacher_start_logits - out.teacher_start_logits[:, :1]).abs()[real].max()
    assert spread < 0.1 * (ref.start_logits - ref.start_logits[:, :1]).abs()[real].max()


# ---- training with adapters ------------------------------------------------------------------------------------
def test_trainer_with_lora_and_mixture(tmp_path, tiny_tokenizer):
    from transformers import TrainingArguments

    from molora_adapters.xsta import DataCollatorForXSTA, XSTATrainer

    model = _model()
    model.add_adapter_mixture(["en", "de", "zh"], name="moe", granularity="language")
    model.train_xsta("xsta", adapter_setup=model.get_adapter_mixture("moe"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("xsta_gdks" in n for n in trainable) and any(".loras." in n for n in trainable)
    assert not any("encoder.layer.0.attention.self.query.weight" in n for n in trainable)
    items = _pair_items(("de", "zh"))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    args = TrainingArguments(
        str(tmp_path), max_steps=4, per_device_train_batch_size=4, logging_steps=2, report_to=[], use_cpu=True
    )
    trainer = XSTATrainer(
        model=model, args=args, train_dataset=items, data_collator=DataCollatorForXSTA(tiny_tokenizer)
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged and all(
        k in logged[0] for k in ("source_loss", "teacher_loss", "entropy_loss", "infonce_loss")
    )
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_pipeline_paired_and_source_free(tiny_tokenizer):
    from molora_adapters.xsta import XSTAQuestionAnsweringPipeline

    model = _model()
    pipe = XSTAQuestionAnsweringPipeline(
        model, tiny_tokenizer, max_length=96, doc_stride=16, max_query_length=24
    )
    ctx = "Die Hauptstadt von Frankreich ist Paris und sie ist sehr groß."
    out = pipe(
        [
            {"question": "Was ist die Hauptstadt?", "context": ctx, "language": "de"},
            {
                "question": "Was ist die Hauptstadt?",
                "context": ctx,
                "language": "de",
                "source_question": "What is the capital?",
                "source_context": "The capital of France is Paris and it is very big.",
            },
        ]
    )
    assert [o["paired"] for o in out] == [False, True]
    assert all(o["answer"] and o["answer"] in ctx for o in out)
    with pytest.raises(ValueError, match="`context`"):
        pipe({"question": "q", "context": " ", "language": "de"})


def test_pipeline_precision_bf16_matches_fp32(tiny_tokenizer):
    """bf16 autocast scores agree with float32 to bf16 accuracy, paired and source-free; a bad value is refused."""
    from molora_adapters.xsta import XSTAQuestionAnsweringPipeline
    from molora_adapters.xsta.pipeline import QAInput

    model = _model()
    kw = dict(max_length=96, doc_stride=16, max_query_length=24)
    ctx = "Die Hauptstadt von Frankreich ist Paris und sie ist sehr groß."
    inputs = [
        QAInput("Was ist die Hauptstadt?", ctx, "de"),
        QAInput(
            "Was ist die Hauptstadt?",
            ctx,
            "de",
            source_question="What is the capital?",
            source_context="The capital of France is Paris and it is very big.",
        ),
    ]
    scores = {}
    for precision in ("fp32", "bf16"):
        pipe = XSTAQuestionAnsweringPipeline(model, tiny_tokenizer, precision=precision, **kw)
        scores[precision] = pipe._forward(pipe.preprocess(inputs))
    for (s32, e32), (s16, e16) in zip(scores["fp32"], scores["bf16"], strict=True):
        assert s16.dtype == s32.dtype == np.float32
        scale = max(np.abs(s32).max(), np.abs(e32).max())
        assert np.abs(s16 - s32).max() <= 0.05 * scale and np.abs(e16 - e32).max() <= 0.05 * scale
    with pytest.raises(ValueError, match="`precision` must be one of"):
        XSTAQuestionAnsweringPipeline(model, tiny_tokenizer, precision="fp16", **kw)


def test_trainer_under_bf16_autocast(tmp_path, tiny_tokenizer):
    """`TrainingArguments(bf16=True)` on CPU: every X-STA loss part stays finite and the parameters move."""
    from transformers import TrainingArguments

    from molora_adapters.xsta import DataCollatorForXSTA, XSTATrainer

    model = _model()
    model.train_xsta("xsta")
    items = _pair_items(("de", "zh"))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = TrainingArguments(
        str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=True,
        learning_rate=1e-3,
    )
    trainer = XSTATrainer(
        model=model, args=args, train_dataset=items, data_collator=DataCollatorForXSTA(tiny_tokenizer)
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    parts = ("loss", "source_loss", "target_loss", "teacher_loss", "entropy_loss", "infonce_loss")
    assert len(logged) == 3 and all(math.isfinite(h[k]) for h in logged for k in parts)
    moved = [n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert any("xsta_gdks" in n for n in moved) and any("heads.xsta" in n for n in moved)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_cli_answer_error_records(tmp_path, tiny_tokenizer):
    import json

    from molora_adapters.cli import main

    model = _model()
    model.save_pretrained(tmp_path / "m")
    tiny_tokenizer.save_pretrained(tmp_path / "m")
    ctx = "Die Hauptstadt von Frankreich ist Paris."
    lines = [
        json.dumps({"id": "a", "question": "Was ist die Hauptstadt?", "context": ctx}),
        "",
        "not json",
        json.dumps({"id": "b", "question": "Wo?", "context": ctx, "source_question": "Where?"}),
        json.dumps(
            {
                "id": "c",
                "question": "Was?",
                "context": ctx,
                "language": "de",
                "source_question": "What?",
                "source_context": "The capital of France is Paris.",
            }
        ),
    ]
    (tmp_path / "in.jsonl").write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")
    argv = [
        "answer",
        "--model",
        str(tmp_path / "m"),
        "--lang",
        "de",
        "--max-length",
        "64",
        "--doc-stride",
        "16",
    ]
    assert main([*argv, "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 1
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["line"] for r in out] == [1, 2, 3, 4, 5, 6]
    assert out[0]["id"] == "a" and out[0]["answer"] in ctx and out[0]["paired"] is False
    assert out[1]["error"] == "empty line" and out[2]["error"].startswith("invalid JSON")
    assert "source_context" in out[3]["error"] and out[4]["paired"] is True
    assert out[5]["error"].startswith("invalid UTF-8")


def test_staged_trainer_composes(tmp_path, tiny_tokenizer):
    from transformers import TrainingArguments

    from molora_adapters.training import Stage, StagedTrainer
    from molora_adapters.xsta import DataCollatorForXSTA, XSTATrainerMixin

    class StagedXSTATrainer(XSTATrainerMixin, StagedTrainer):
        pass

    model = _model()
    model.train_xsta("xsta")
    g = torch.Generator().manual_seed(1)

    def feat(lang):
        ids = torch.randint(5, 900, (8,), generator=g).tolist()
        return {
            "input_ids": ids,
            "attention_mask": [1] * 8,
            "start_positions": 1,
            "end_positions": 3,
            "language": lang,
        }

    items = [{"source": feat("en"), "target": feat("de")} for _ in range(8)]
    stages = [
        Stage("recipe", train=["xsta"], max_steps=2),
        Stage("encoder", train=["backbone", "heads"], max_steps=1),
    ]
    args = TrainingArguments(
        str(tmp_path),
        per_device_train_batch_size=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )
    before = model.base_model.encoder.layer[0].attention.self.query.weight.detach().clone()
    gdks_before = model.base_model.xsta_gdks["xsta"].correction.weight.detach().clone()
    trainer = StagedXSTATrainer(
        model=model,
        args=args,
        train_dataset=items,
        data_collator=DataCollatorForXSTA(tiny_tokenizer),
        stages=stages,
    )
    trainer.train()
    history = [(h["stage"], h["name"]) for h in trainer.stage_history]
    assert history == [(i, s.name) for i, s in enumerate(stages)]
    assert not torch.equal(gdks_before, model.base_model.xsta_gdks["xsta"].correction.weight)
    assert not torch.equal(before, model.base_model.encoder.layer[0].attention.self.query.weight)
    assert any("teacher_loss" in h for h in trainer.state.log_history)


@pytest.mark.slow
def test_import_does_not_load_xsta():
    import subprocess
    import sys

    code = "import sys, molora_adapters; print(sorted(m for m in sys.modules if 'xsta' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
