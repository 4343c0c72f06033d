"""X-STA quality on XQuAD (article-level split), against zero-shot and translate-train fine-tuning.

Protocol: train on English plus the parallel XQuAD versions of the training articles (a stand-in for translate-train);
test on the held-out articles in all 12 languages. Every arm uses the same data order, steps and seed, and equal
compute: X-STA sees B pairs per step, plain fine-tuning 2B sequences (the same pair batches, unpaired). Attention-
probability dropout is off for every arm (2.8x faster CPU training); dynamic padding with length grouping.

    python benchmarks/quality_xsta.py --quick            # <= 20 min on 2 CPU cores (reduced protocol)
    python benchmarks/quality_xsta.py --folds 4 --seeds 3 # full protocol (GPU or a long CPU run)

Writes ``benchmarks/results/quality_xsta.json``: ``{"arms": [{"name", "mean_f1", "mean_em", "ci95", "f1", "em"}]}``,
``mean_*`` over the 11 non-English languages, ``ci95`` a question-level bootstrap interval of ``mean_f1``; plus
``comparison`` (paired bootstrap of xsta_paired - translate_train) and the configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ANCHORS = [
    ("mBERT zero-shot (XTREME)", 64.5, 49.4, "en 83.5"),
    ("mBERT translate-train (XTREME)", 70.0, 56.0, ""),
    ("XLM-R large zero-shot (XQuAD README)", 76.6, 60.8, ""),
    ("X-STA XLM-R large (paper)", 78.9, 64.5, ""),
]
ARMS = (
    "zero_shot_en",
    "translate_train",
    "xsta",  # evaluated twice: xsta_paired and xsta_source_free
    "xsta_no_gdks",
    "xsta_no_atgc",
    "xsta_no_mgsa",
    "xsta_layer_3",
    "xsta_layer_11",
)
QUICK_ARMS = ("zero_shot_en", "translate_train", "xsta")
OFF = {"use_gdks": False, "use_atgc": False, "use_mgsa": False}


def arm_config(arm: str) -> dict:
    if arm in ("zero_shot_en", "translate_train"):
        return dict(OFF)
    if arm.startswith("xsta_layer_"):
        return {"layer": int(arm.rsplit("_", 1)[1])}
    return {"xsta_no_gdks": {"use_gdks": False}, "xsta_no_atgc": {"use_atgc": False}}.get(
        arm, {"use_mgsa": False} if arm == "xsta_no_mgsa" else {}
    )


def build_items(tokenizer, data, titles, languages, args):
    from molora_adapters.xsta import build_features, build_pair_features

    feats = {
        lang: build_features(
            tokenizer,
            [e for e in data[lang] if e.title in titles],
            args.max_length,
            args.doc_stride,
            True,
            args.max_query_length,
        )
        for lang in languages
    }
    pairs = [p for lang in languages if lang != "en" for p in build_pair_features(feats["en"], feats[lang])]
    return feats, pairs


def train_arm(arm, model_dir, tokenizer, pairs, en_feats, args, seed):
    from adapters import AutoAdapterModel
    from transformers import TrainingArguments

    import molora_adapters  # noqa: F401
    from molora_adapters.xsta import DataCollatorForXSTA, XSTATrainer

    torch.manual_seed(seed)
    model = AutoAdapterModel.from_pretrained(model_dir, attention_probs_dropout_prob=0.0)
    model.add_xsta("qa", **arm_config(arm))
    model.train_xsta("qa")
    if arm == "zero_shot_en":  # 2B English windows per step: same compute, no target language
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(en_feats))
        items = [en_feats[i] for i in order]
        items = (items * (2 * len(pairs) // max(1, len(items)) + 1))[: 2 * len(pairs)]
        batch_size = 2 * args.batch_pairs
    else:
        items, batch_size = pairs, args.batch_pairs
    collator = DataCollatorForXSTA(tokenizer, paired=arm.startswith("xsta"))
    targs = TrainingArguments(
        output_dir=str(Path(args.work_dir) / f"{arm}-{seed}"),
        max_steps=args.steps,
        per_device_train_batch_size=batch_size,
        learning_rate=args.lr,
        warmup_ratio=0.1,
        weight_decay=1e-4,
        logging_steps=max(1, args.steps // 5),
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        disable_tqdm=False,
    )
    trainer = XSTATrainer(model=model, args=targs, train_dataset=items, data_collator=collator)
    t0 = time.time()
    trainer.train()
    return model.eval(), time.time() - t0, [h for h in trainer.state.log_history if "loss" in h]


def evaluate(model, tokenizer, data, test_titles, languages, args, paired: bool):
    from molora_adapters.xsta import XSTAQuestionAnsweringPipeline, predict_answers, squad_scores

    pipe = XSTAQuestionAnsweringPipeline(
        model,
        tokenizer,
        max_length=args.max_length,
        doc_stride=args.doc_stride,
        batch_size=args.eval_batch_size,
    )
    en = {e.id: e for e in data["en"]}
    out = {}
    for lang in languages:
        examples = [e for e in data[lang] if e.title in test_titles][: args.eval_questions or None]
        preds = predict_answers(pipe, examples, en if paired else None)
        refs = {e.id: [a[0] for a in e.answers] for e in examples}
        out[lang] = squad_scores(preds, refs, per_question=True)
    return out


def summarise(name, scores, languages, rng, n_boot):
    non_en = [lang for lang in languages if lang != "en"]
    f1 = {lang: round(scores[lang]["f1"], 2) for lang in languages}
    em = {lang: round(scores[lang]["exact_match"], 2) for lang in languages}
    ids = list(scores[non_en[0]]["per_question"])
    mat = np.array(
        [[scores[lang]["per_question"][q][1] for q in ids] for lang in non_en]
    )  # (langs, questions)
    boots = [100 * mat[:, rng.integers(0, len(ids), len(ids))].mean() for _ in range(n_boot)]
    return {
        "name": name,
        "mean_f1": round(float(np.mean([f1[lang] for lang in non_en])), 2),
        "mean_em": round(float(np.mean([em[lang] for lang in non_en])), 2),
        "ci95": [round(float(np.percentile(boots, 2.5)), 2), round(float(np.percentile(boots, 97.5)), 2)],
        "f1": f1,
        "em": em,
        "ro_f1": f1.get("ro"),
        "ro_em": em.get("ro"),
    }, (ids, mat)


def paired_diff(a, b, rng, n_boot):
    ids_a, mat_a = a
    ids_b, mat_b = b
    if ids_a != ids_b:
        raise ValueError("arms were scored on different questions")
    diff = mat_a.mean(0) - mat_b.mean(0)  # per question, mean over languages
    boots = [100 * diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n_boot)]
    return {
        "mean_f1_diff": round(100 * float(diff.mean()), 2),
        "ci95": [round(float(np.percentile(boots, 2.5)), 2), round(float(np.percentile(boots, 97.5)), 2)],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Reduced protocol within ~20 min on 2 CPU cores."
    )
    parser.add_argument("--model", default="embedded:multilingual-e5-small")
    parser.add_argument("--arms", nargs="+", choices=ARMS)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-pairs", type=int, default=8, help="B: pairs per step (plain arms: 2B rows).")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument(
        "--eval-questions", type=int, default=0, help="Held-out questions per language (0: all)."
    )
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument(
        "--train-languages", nargs="+", default=None, help="Target languages trained (default all)."
    )
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", default="/tmp/molora_quality_xsta")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "quality_xsta.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.arms = args.arms or list(QUICK_ARMS)
        args.steps, args.batch_pairs, args.lr = min(args.steps, 30), 4, 1e-4
        args.max_length, args.doc_stride, args.max_query_length = 128, 48, 32
        args.eval_questions = args.eval_questions or 8
    args.arms = args.arms or list(ARMS)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers import AutoTokenizer

    from molora_adapters.models import resolve_model_name_or_path
    from molora_adapters.xsta import XQUAD_LANGUAGES, load_xquad, split_articles

    model_dir = resolve_model_name_or_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data, report = load_xquad()
    languages = list(XQUAD_LANGUAGES)
    train_titles, test_titles = split_articles([e.title for e in data["en"]], args.folds, args.fold, seed=0)
    train_langs = ["en", *(args.train_languages or [lang for lang in languages if lang != "en"])]
    en_feats_all, pairs = build_items(tokenizer, data, set(train_titles), train_langs, args)
    print(
        f"train: {len(train_titles)} articles, {len(pairs)} pairs over {train_langs[1:]}; test: {len(test_titles)}"
    )

    rng = np.random.default_rng(0)
    arms_out, mats, timings, logs = [], {}, {}, {}
    t_start = time.time()
    for seed in range(args.seeds):
        for arm in args.arms:
            model, seconds, history = train_arm(
                arm, model_dir, tokenizer, pairs, en_feats_all["en"], args, seed
            )
            timings[f"{arm}/{seed}"] = round(seconds, 1)
            logs[f"{arm}/{seed}"] = history
            evals = [("xsta_paired", True), ("xsta_source_free", False)] if arm == "xsta" else [(arm, False)]
            if arm.startswith("xsta_"):
                evals = [(arm, True)]
            for name, paired in evals:
                t0 = time.time()
                scores = evaluate(model, tokenizer, data, set(test_titles), languages, args, paired)
                summary, mat = summarise(name, scores, languages, rng, args.bootstrap)
                summary["seed"] = seed
                timings[f"{name}/{seed}/eval"] = round(time.time() - t0, 1)
                arms_out.append(summary)
                mats[(name, seed)] = mat
                print(
                    f"{name:18s} seed {seed}: mean F1 {summary['mean_f1']:.2f} EM {summary['mean_em']:.2f} "
                    f"CI95 {summary['ci95']} ro F1 {summary['ro_f1']}",
                    flush=True,
                )
    comparison = {}
    for seed in range(args.seeds):
        for name in ("xsta_paired", "xsta_source_free"):
            if (name, seed) in mats and ("translate_train", seed) in mats:
                comparison[f"{name}-translate_train/{seed}"] = paired_diff(
                    mats[(name, seed)], mats[("translate_train", seed)], rng, args.bootstrap
                )
        if ("xsta_paired", seed) in mats and ("xsta_source_free", seed) in mats:
            comparison[f"xsta_paired-xsta_source_free/{seed}"] = paired_diff(
                mats[("xsta_paired", seed)], mats[("xsta_source_free", seed)], rng, args.bootstrap
            )
    result = {
        "arms": arms_out,
        "comparison": comparison,
        "anchors": [{"name": n, "mean_f1": f, "mean_em": e, "note": x} for n, f, e, x in ANCHORS],
        "anchor_note": "Anchors train on the whole of SQuAD v1.1 (87k questions), not on a fold of XQuAD.",
        "config": {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")},
        "data": {
            "train_articles": len(train_titles),
            "test_articles": len(test_titles),
            "pairs": len(pairs),
            "loader": report.summary(),
        },
        "seconds": timings,
        "total_seconds": round(time.time() - t_start, 1),
        "train_logs": logs,
        "command": " ".join(["python", *sys.argv]),
        "machine": f"CPU, torch threads {args.threads}, shared with other jobs"
        if not torch.cuda.is_available()
        else torch.cuda.get_device_name(),
    }
    from molora_adapters.utils.io import atomic_write_text

    atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    print("\nPublished anchors (trained on all of SQuAD, not a fold of XQuAD; 11-language mean F1 / EM):")
    for n, f, e, x in ANCHORS:
        print(f"  {n:40s} {f:5.1f} / {e:5.1f} {x}")
    for k, v in comparison.items():
        print(f"{k}: {v}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
