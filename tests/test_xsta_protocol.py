"""X-STA benchmark protocol: vendored TyDiQA/MLQA data, overlap with XQuAD, no-answer windows, row-sparse embedding
training, en-en pairs, the entropy average and the hierarchical bootstrap."""

from __future__ import annotations

import math

import pytest
import torch

from molora_adapters.xsta.data import (
    TYDIQA_LANGUAGES,
    QAExample,
    cap_no_answer,
    load_mlqa_de,
    load_tydiqa,
    load_xquad,
    no_answer_fraction,
    paragraph_overlap,
)


# ---- data --------------------------------------------------------------------------------------------------------
def test_vendored_tydiqa_and_mlqa_counts():
    dev, report = load_tydiqa("dev")
    counts = {lang: len(v) for lang, v in dev.items()}
    # the official per-language TyDiQA-GoldP v1.1 dev counts (5,077 in all)
    assert counts == {
        "en": 440, "ar": 921, "bn": 113, "fi": 782, "id": 565, "ko": 276, "ru": 812, "sw": 499, "te": 669,
    }  # fmt: skip
    assert tuple(dev) == TYDIQA_LANGUAGES and not report.summary()["span_not_found"]
    train, _ = load_tydiqa("train")
    assert list(train) == ["en"] and len(train["en"]) == 3696
    mlqa, report = load_mlqa_de()
    assert len(mlqa) == 512 and len({e.context for e in mlqa}) == 456
    assert all(e.context[e.answers[0][1] :].startswith(e.answers[0][0]) for e in mlqa)
    assert not report.summary()["realigned"]


def test_tydiqa_bad_input():
    with pytest.raises(ValueError, match="`split`"):
        load_tydiqa("test")
    with pytest.raises(ValueError, match="xx"):
        load_tydiqa("dev", ["xx"])
    with pytest.raises(FileNotFoundError, match="`ko`"):
        load_tydiqa("train", ["ko"])


def _ex(qid, title, context):
    return QAExample(qid, title, context, "q?", (("a", 0),), "en")


def test_paragraph_overlap_hand_made():
    shared = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    a = [
        _ex("a1", "Alpha", "Completely different words here."),
        _ex("a2", "Beta", "Prefix words. " + shared),
        _ex("a3", "Gamma", "Exact paragraph."),
        _ex("a4", "Oxygen", "Nothing shared at all."),
    ]
    b = [_ex("b1", "oxygen", shared + " suffix"), _ex("b2", "Delta", "exact PARAGRAPH")]
    out = paragraph_overlap(a, b)
    assert (out["exact"], out["ngram"], out["shared_titles"]) == (1, 1, ["oxygen"])
    assert out["overlapping_ids"] == ["a2", "a3", "a4"]


def test_tydiqa_train_overlap_with_xquad():
    train, _ = load_tydiqa("train")
    xquad, _ = load_xquad(["en"])
    out = paragraph_overlap(train["en"], xquad["en"])
    # no paragraph in common; one TyDiQA paragraph (Oxygen) shares 13-grams; two article titles are shared
    assert (out["paragraphs_a"], out["paragraphs_b"], out["exact"], out["ngram"]) == (3428, 240, 0, 1)
    assert out["shared_titles"] == ["force", "oxygen"] and len(out["overlapping_ids"]) == 3


def test_cap_no_answer():
    feats = [
        {"start_positions": int(i % 4 != 0) * 5, "end_positions": int(i % 4 != 0) * 6, "i": i}
        for i in range(40)
    ]
    feats += [{"start_positions": 0, "end_positions": 0, "i": 40 + i} for i in range(20)]
    assert no_answer_fraction(feats) == pytest.approx(30 / 60)
    capped = cap_no_answer(feats, 0.1, seed=0)
    # 30 answer windows kept; floor(0.1 * 30 / 0.9) = 3 no-answer windows
    assert len(capped) == 33 and no_answer_fraction(capped) == pytest.approx(3 / 33)
    assert [f["i"] for f in capped] == sorted(f["i"] for f in capped)
    assert capped == cap_no_answer(feats, 0.1, seed=0)
    assert cap_no_answer(feats, 1.0) == feats


# ---- settings ----------------------------------------------------------------------------------------------------
def _model(**cfg):
    from conftest import tiny_adapter_model

    model = tiny_adapter_model("bert")
    model.add_xsta("xsta", layer=1, languages=["en", "de"], correction_dropout=0.0, **cfg)
    return model


def test_entropy_average_known_values():
    from molora_adapters.xsta import pair_attention_entropy

    # one pair, L = 4: 2 real target tokens, 3 real source keys; every query row is uniform over the real keys
    probs = torch.zeros(1, 4, 4)
    probs[:, :, :3] = 1 / 3
    t_mask = torch.tensor([[1, 1, 0, 0]])
    s_mask = torch.tensor([[1, 1, 1, 0]])
    ln3 = math.log(3)
    # padded (released code): rows ln3 each over all 4 rows; columns 4 * (1/3) ln3 on 3 of 4 columns -> ln3
    assert float(pair_attention_entropy(probs, t_mask, s_mask, "padded")) == pytest.approx(2 * ln3, abs=1e-5)
    # real tokens: rows ln3; columns 2 * (1/3) ln3 over the 3 real columns
    assert float(pair_attention_entropy(probs, t_mask, s_mask, "real")) == pytest.approx(
        5 / 3 * ln3, abs=1e-5
    )
    with pytest.raises(ValueError, match="`entropy_average`"):
        _model(entropy_average="tokens")


def test_en_en_pairs_pass_gradient_to_source():
    # the released code uses the source as is for same-language pairs: no stop-gradient
    model = _model()
    model.train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 900, (4, 10), generator=g)
    embeds = model.base_model.embeddings.word_embeddings(ids).detach().requires_grad_(True)
    out = model(
        inputs_embeds=embeds,
        attention_mask=torch.ones(4, 10, dtype=torch.long),
        language_ids=["en"] * 4,
        xsta_paired=True,
        start_positions=torch.tensor([1, 2, 1, 3]),
        end_positions=torch.tensor([3, 4, 2, 5]),
    )
    # the source rows' only way into the target loss is the cross-attention at the GDKS layer
    out.target_loss.backward()
    assert torch.count_nonzero(embeds.grad[:2]) > 0


def _train(tmp_path, sparse: bool, steps: int = 3):
    from transformers import TrainingArguments

    from molora_adapters.xsta import DataCollatorForXSTA, XSTATrainer

    model = _model()
    model.train_xsta("xsta")
    g = torch.Generator().manual_seed(3)

    def feat(lang):
        ids = torch.randint(5, 60, (8,), generator=g).tolist()  # rows 60..999 are never used
        return dict(input_ids=ids, attention_mask=[1] * 8, start_positions=1, end_positions=3, language=lang)

    items = [{"source": feat("en"), "target": feat(lang)} for lang in ("en", "de") for _ in range(4)]
    args = TrainingArguments(
        str(tmp_path / f"s{int(sparse)}"),
        max_steps=steps,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        learning_rate=1e-2,
        adam_beta1=0.0,
        # parameters with a true gradient of 0 (key biases: softmax is shift-invariant) get rounding noise of 1e-9;
        # a plain eps of 1e-8 would turn it into lr-sized steps that differ between any two summation orders
        adam_epsilon=1e-3,
        weight_decay=0.0,
        max_grad_norm=0.5,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
    )

    class Pad:
        pad_token_id = 0

    trainer = XSTATrainer(
        model=model,
        args=args,
        train_dataset=items,
        data_collator=DataCollatorForXSTA(Pad()),
        sparse_embedding_updates=sparse,
    )
    before = model.get_input_embeddings().weight.detach().clone()
    trainer.train()
    return model, trainer, before


def test_trainer_row_sparse_embeddings_equal_dense(tmp_path):
    from molora_adapters.training import RowSparseAdamW

    sparse, trainer, before = _train(tmp_path, True)
    dense, dense_trainer, _ = _train(tmp_path, False)
    assert isinstance(
        getattr(trainer.optimizer, "optimizer", None), RowSparseAdamW
    )  # inside accelerate's wrapper
    assert not isinstance(getattr(dense_trainer.optimizer, "optimizer", None), RowSparseAdamW)
    emb = sparse.get_input_embeddings()
    assert emb.sparse is False and trainer.args.max_grad_norm == 0.5  # restored after the run
    assert torch.equal(emb.weight[60:], before[60:])  # rows no batch used are untouched
    assert not torch.equal(emb.weight[5:60], before[5:60])
    # beta1 = 0, no weight decay: row-sparse AdamW is exactly dense AdamW (clipping included)
    for (name, p), (_, q) in zip(sparse.named_parameters(), dense.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)


# ---- the benchmark's statistics and summary ----------------------------------------------------------------------
def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_xsta.py"
    spec = importlib.util.spec_from_file_location("quality_xsta", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hierarchical_bootstrap_known_cases():
    import numpy as np

    from molora_adapters.xsta.metric import hierarchical_bootstrap as boot

    # constant scores: every replicate is the constant
    np.testing.assert_allclose(boot(np.full((3, 4), 0.7), ["p", "p", "q", "r"], 200), 0.7, rtol=1e-12)
    # one seed; paragraph A holds 3 questions scoring 1, paragraph B one question scoring 0. Drawing paragraphs
    # gives {A, A} -> 1, {A, B} -> 3/4, {B, B} -> 0 with probabilities 1/4, 1/2, 1/4 (questions: mean 3/4)
    reps = boot(np.array([[1.0, 1.0, 1.0, 0.0]]), ["A", "A", "A", "B"], 20000, seed=1)
    values, counts = np.unique(np.round(reps, 6), return_counts=True)
    assert values.tolist() == [0.0, 0.75, 1.0]
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.015)
    assert reps.mean() == pytest.approx(0.625, abs=0.01)
    # scores that differ only by seed: replicates are means of S seeds drawn with replacement
    reps = boot(np.array([[0.0, 0.0], [1.0, 1.0]]), ["A", "B"], 20000, seed=2)
    values, counts = np.unique(np.round(reps, 6), return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.015)
    with pytest.raises(ValueError, match="`scores`"):
        boot(np.zeros((2, 3)), ["A", "B"], 10)


def _run(seed, fold, ids, f1, langs, extra=False):
    xq = {lang: {q: [float(f1 == 1.0), f1] for q in ids} for lang in langs}
    scores = {"xquad": xq}
    if extra:
        scores["tydiqa"] = {"fi": {"t1": [1.0, 1.0], "t2": [0.0, 0.5]}, "sw": {"t3": [0.0, 0.0]}}
        scores["mlqa_de"] = {"m1": [0.0, 0.25]}
    return {"seed": seed, "fold": fold, "scores": scores}


def test_summary_means_gate_and_contrasts():
    bench = _bench()
    langs = [*bench.XQUAD_MEAN, "ro"]
    paragraph = {"a": "P1", "b": "P1", "c": "P2"}
    # folds 0 ({a, b}) and 1 ({c}) x seeds 0 and 1
    zero = [
        _run(s, f, ids, 1.0 if s == 0 else 0.0, langs, f == 0)
        for s in (0, 1)
        for f, ids in ((0, "ab"), (1, "c"))
    ]
    entry = bench.summarise_arm("zero_shot_en", zero, paragraph, 200)
    assert entry["seeds"] == [0, 1] and entry["folds"] == [0, 1] and entry["xquad_questions"] == 3
    assert entry["mean_f1"] == 50.0 and entry["f1"]["en"] == 50.0 and entry["ro_f1"] == 50.0
    assert entry["per_seed_mean_f1"] == {"0": 100.0, "1": 0.0}
    assert entry["tydiqa_f1"] == {"fi": 75.0, "sw": 0.0} and entry["tydiqa_mean_f1"] == 37.5
    assert entry["mlqa_de_f1"] == 25.0 and entry["tydiqa_mlqa_seeds"] == [0, 1]
    assert {"name", "mean_f1", "f1", "seeds", "tydiqa_f1", "mlqa_de_f1"} <= set(entry)
    tt = [_run(s, f, ids, 0.5, langs) for s in (0, 1) for f, ids in ((0, "ab"), (1, "c"))]
    tt_entry = bench.summarise_arm("translate_train", tt, paragraph, 200)
    gate = bench.sanity_gate({"zero_shot_en": entry, "translate_train": tt_entry})
    assert gate["zero_shot_en_xquad_en_f1"] == 50.0 and gate["en_f1_ok"] and gate["translate_train_ok"]
    assert gate["passed"] is True
    status = bench.findings_status(gate, {"zero_shot_en": entry, "translate_train": tt_entry})
    assert status.startswith("NOT findings: progress only: translate_train, zero_shot_en")  # 2 seeds < 3
    three = {n: {**e, "seeds": [0, 1, 2]} for n, e in (("zero_shot_en", entry), ("translate_train", tt_entry))}
    assert bench.findings_status(gate, three) == "findings: the sanity gate passed"
    assert bench.findings_status({**gate, "passed": False}, three).startswith("NOT findings: the sanity gate")
    diff = bench.contrast(tt, zero, paragraph, 500)
    assert diff["diff"] == 0.0 and diff["ci95"][0] < 0 < diff["ci95"][1]  # seeds disagree by +-50
    same = bench.contrast(tt, [_run(s, f, ids, 0.25, langs) for s in (0, 1) for f, ids in ((0, "ab"), (1, "c"))],
                          paragraph, 200)  # fmt: skip
    assert same == {"diff": 25.0, "ci95": [25.0, 25.0]}
    with pytest.raises(ValueError, match="missing"):
        bench.summarise_arm("x", zero[:3], paragraph, 10)
    assert bench.evals_of("xsta") == [("xsta_source_free", False), ("xsta_paired", True)]


def test_stable_sample_is_fixed():
    bench = _bench()
    ids = [f"q{i}" for i in range(50)]
    assert bench.stable_sample(ids, 10) == bench.stable_sample(list(reversed(ids)), 10)
    assert set(bench.stable_sample(ids, 10)) < set(
        bench.stable_sample(ids, 20)
    )  # nested: growing n keeps questions
    assert bench.stable_sample(ids, 0) == sorted(ids)


def test_runs_on_disk_resume_and_settings(tmp_path):
    import json

    bench = _bench()
    args = bench.parse_args(["--runs-dir", str(tmp_path), "--seeds", "0", "1", "--folds", "0", "1"])
    assert (args.n_folds, args.max_length, args.doc_stride, args.batch_pairs * args.grad_accum) == (
        12,
        384,
        128,
        32,
    )
    langs = [*bench.XQUAD_MEAN, "ro"]
    for seed, fold in ((0, 0), (0, 1), (1, 0)):  # seed 1 lacks fold 1
        run = _run(seed, fold, "ab" if fold == 0 else "c", 0.5, langs)
        record = {"settings": bench.run_settings(args), "scores": {"translate_train": run["scores"]}}
        bench.run_path(args, "translate_train", fold, seed).write_text(json.dumps(record))
    assert bench._done(args, 0, 0, "translate_train") and not bench._done(args, 1, 1, "translate_train")
    # --estimate plans only the missing run (seed 1, fold 1): its training at the arm's rate, no TyDiQA / MLQA
    tt = bench.parse_args(
        ["--runs-dir", str(tmp_path), "--seeds", "0", "1", "--folds", "0", "1", "--arms", "translate_train"]
    )
    fake = {"xquad": {"en": range(1200), "de": range(1200)}, "tydiqa": {"en": range(7)}, "mlqa_de": range(5)}
    plan = bench.estimate(tt, fake)
    rows = tt.steps * 2 * tt.batch_pairs * tt.grad_accum
    want = rows * bench.TRAIN_ROW_SECONDS[tt.precision] * bench.ARM_TRAIN_FACTOR["translate_train"]
    assert (plan["runs"], plan["planned"], plan["train_s"]) == (1, 4, round(want))
    per_fold = tt.xquad_per_fold or 1200 / tt.n_folds
    assert plan["eval_s"] == round(per_fold * 2 * 1.05 * bench.EVAL_ROW_SECONDS[tt.precision]) > 0
    runs = bench.load_runs(args, ["translate_train"], [0, 1], [0, 1])
    assert sorted((r["seed"], r["fold"]) for r in runs["translate_train"]) == [(0, 0), (0, 1)]
    other = bench.parse_args(
        ["--runs-dir", str(tmp_path), "--seeds", "0", "--folds", "0", "1", "--lr", "3e-5"]
    )
    assert not bench._done(other, 0, 0, "translate_train")  # other settings: recomputed, never mixed in
    assert bench.load_runs(other, ["translate_train"], [0, 1], [0]) == {}
    with pytest.raises(SystemExit):
        bench.parse_args(["--folds", "11"])  # the dev fold is never a test fold


def test_runs_written_before_precision_read_as_float32(tmp_path):
    import json

    bench = _bench()
    fp32 = bench.parse_args(
        ["--runs-dir", str(tmp_path), "--scale", "gate", "--steps", "150", "--precision", "fp32"]
    )
    # the settings as the 150-step runs hold them: no `precision` key
    legacy = {k: v for k, v in bench.run_settings(fp32).items() if k != "precision"}
    record = {"settings": legacy, "scores": {"zero_shot_en": {"xquad": {}}}}
    bench.run_path(fp32, "zero_shot_en", 0, 0).write_text(json.dumps(record))
    assert bench._done(fp32, 0, 0, "zero_shot_en")
    gate = bench.parse_args(["--runs-dir", str(tmp_path), "--scale", "gate"])
    assert (gate.steps, gate.lr, gate.precision) == (300, 1e-4, "bf16")  # the size chosen on dev
    assert not bench._done(gate, 0, 0, "zero_shot_en")
    assert bench.parse_args([]).precision == "fp32"


def test_protocol_settings():
    bench = _bench()
    args = bench.parse_args([])
    # a stable schedule: peak 1e-4 after a linear warm-up over 10% of the steps; 32 pairs per optimiser step (the
    # authors'), weight decay 1e-4 (the authors'), 384/128 windows with at most 10% no-answer windows
    assert (args.lr, args.warmup_ratio, args.weight_decay) == (1e-4, 0.1, 1e-4)
    assert (args.batch_pairs * args.grad_accum, args.max_no_answer, args.en_pair_share) == (32, 0.1, 1 / 12)
    assert (args.max_length, args.doc_stride, args.max_query_length) == (384, 128, 64)
    assert (args.folds, args.seeds, args.n_folds) == ([0, 1], [0, 1, 2], 12)
    paper = bench.parse_args(["--scale", "paper"])
    assert (paper.lr, paper.n_folds, paper.tydiqa_per_language, paper.mlqa_questions) == (3e-5, 4, 0, 0)
    assert bench.parse_args(["--dev"]).folds == [11]
    quick = bench.parse_args(["--quick", "--work-dir", "/tmp/x"])
    assert (
        quick.output.startswith("/tmp/x") and "results" not in quick.runs_dir
    )  # smoke output stays out of results/
