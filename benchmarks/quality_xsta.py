"""X-STA quality on XQuAD (article-level split), against zero-shot and translate-train fine-tuning.

Protocol: train on English plus the parallel XQuAD versions of the training articles (a stand-in for translate-train);
test on the held-out articles in all 12 languages. Every arm uses the same data order, steps and seed, and equal
compute: X-STA sees B pairs per step, plain fine-tuning 2B sequences (the same pair batches, unpaired), zero-shot 2B
English windows. Attention-probability dropout is off for every arm (2.8x faster CPU training); dynamic padding with
length grouping. Arms: ``zero_shot_en``, ``translate_train``, ``xsta`` (reported as ``xsta_paired`` and
``xsta_source_free``, and as ``xsta_layer_7``), ``xsta_no_gdks`` / ``xsta_no_atgc`` / ``xsta_no_mgsa`` and
``xsta_layer_3`` / ``xsta_layer_11`` (the ablations are evaluated paired, the paper's inference).

    python benchmarks/quality_xsta.py --quick   # all arms, fold 0, 1 seed, 120 steps, 20 sampled questions
    python benchmarks/quality_xsta.py           # full protocol: 4 folds x 3 seeds, all questions (GPU or long CPU)

Writes ``benchmarks/results/quality_xsta.json``: ``{"arms": [{"name", "mean_f1", "mean_em", "ci95", "f1", "em"}]}``,
``mean_*`` over the 11 non-English languages, Romanian also as ``ro_f1`` / ``ro_em``, ``ci95`` a bootstrap over
question ids of ``mean_f1`` (per question the mean over seeds; questions pooled over folds); ``comparison``: paired
bootstraps of the differences (xsta_paired - translate_train, xsta_paired - xsta_source_free, ...); and
``open_question_2`` (how much source-free inference loses against paired).
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


def evaluate(model, tokenizer, data, eval_ids, languages, args, paired: bool):
    """Per-language SQuAD scores of ``model`` on the questions ``eval_ids`` (the same ids in every language)."""
    from molora_adapters.xsta import XSTAQuestionAnsweringPipeline, predict_answers, squad_scores

    pipe = XSTAQuestionAnsweringPipeline(
        model,
        tokenizer,
        max_length=args.max_length,
        doc_stride=args.doc_stride,
        batch_size=args.eval_batch_size,
        max_query_length=args.max_query_length,
    )
    en = {e.id: e for e in data["en"]}
    wanted = set(eval_ids)
    out = {}
    for lang in languages:
        examples = [e for e in data[lang] if e.id in wanted]
        preds = predict_answers(pipe, examples, en if paired else None)
        refs = {e.id: [a[0] for a in e.answers] for e in examples}
        out[lang] = squad_scores(preds, refs, per_question=True)["per_question"]  # id -> (em, f1) in [0, 1]
    return out


def sample_eval_ids(data, test_titles, n: int, seed: int) -> list[str]:
    """``n`` held-out question ids sampled across all test articles (all when ``n`` is 0), present in every
    language; sorted, so every arm scores the same questions in the same order."""
    common = set.intersection(*({e.id for e in exs} for exs in data.values()))
    ids = sorted(e.id for e in data["en"] if e.title in test_titles and e.id in common)
    if n and n < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, n, replace=False).tolist())
    return ids


def _boot_ci(values: np.ndarray, rng, n_boot: int) -> list[float]:
    boots = [100 * values[rng.integers(0, len(values), len(values))].mean() for _ in range(n_boot)]
    return [round(float(np.percentile(boots, 2.5)), 2), round(float(np.percentile(boots, 97.5)), 2)]


def summarise(name, runs, languages, rng, n_boot):
    """One arm's entry from its runs ``[{lang: {id: (em, f1)}}]`` (folds x seeds): per question, the mean over seeds;
    questions pooled over folds; ``ci95`` a bootstrap over question ids of the 11-language mean F1."""
    non_en = [lang for lang in languages if lang != "en"]
    ids = sorted({q for run in runs for q in run["en"]})
    em = np.zeros((len(languages), len(ids)))
    f1 = np.zeros((len(languages), len(ids)))
    count = np.zeros(len(ids))
    col = {q: j for j, q in enumerate(ids)}
    for run in runs:
        for j in (col[q] for q in run["en"]):
            count[j] += 1
        for i, lang in enumerate(languages):
            for q, (e, f) in run[lang].items():
                em[i, col[q]] += e
                f1[i, col[q]] += f
    em, f1 = em / count, f1 / count  # (langs, questions): mean over seeds
    idx = [languages.index(lang) for lang in non_en]
    f1_lang = {lang: round(100 * float(f1[i].mean()), 2) for i, lang in enumerate(languages)}
    em_lang = {lang: round(100 * float(em[i].mean()), 2) for i, lang in enumerate(languages)}
    per_question = f1[idx].mean(0)  # (questions,): mean over the 11 non-English languages
    return {
        "name": name,
        "mean_f1": round(float(np.mean([f1_lang[lang] for lang in non_en])), 2),
        "mean_em": round(float(np.mean([em_lang[lang] for lang in non_en])), 2),
        "ci95": _boot_ci(per_question, rng, n_boot),
        "f1": f1_lang,
        "em": em_lang,
        "ro_f1": f1_lang.get("ro"),
        "ro_em": em_lang.get("ro"),
        "runs": len(runs),
        "questions": len(ids),
    }, (ids, per_question)


def paired_diff(a, b, rng, n_boot):
    """Paired bootstrap over question ids of ``a - b`` (11-language mean F1 per question)."""
    ids_a, qa = a
    ids_b, qb = b
    if ids_a != ids_b:
        raise ValueError("arms were scored on different questions")
    diff = qa - qb
    return {"mean_f1_diff": round(100 * float(diff.mean()), 2), "ci95": _boot_ci(diff, rng, n_boot)}


def evals_of(arm: str) -> list[tuple[str, bool]]:
    """The reported entries of a trained arm: ``(name, paired)``. The layer-7 X-STA model is evaluated twice."""
    if arm == "xsta":
        return [("xsta_paired", True), ("xsta_source_free", False)]
    return [(arm, arm.startswith("xsta_"))]


QUICK = {  # --quick: sized from niced CPU-time measurements (see README, X-STA quality benchmark)
    "steps": 120,
    "batch_pairs": 4,
    "lr": 2e-4,
    "max_length": 128,
    "doc_stride": 48,
    "max_query_length": 32,
    "eval_questions": 20,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Reduced protocol within ~20 min on 2 CPU cores (all arms)."
    )
    parser.add_argument("--model", default="embedded:multilingual-e5-small")
    parser.add_argument("--arms", nargs="+", choices=ARMS)
    parser.add_argument("--steps", type=int, default=None, help="Training steps per arm (default 1000).")
    parser.add_argument(
        "--batch-pairs", type=int, default=None, help="B: pairs per step (plain arms: 2B rows; default 8)."
    )
    parser.add_argument("--lr", type=float, default=None, help="Peak learning rate (default 5e-5).")
    parser.add_argument("--max-length", type=int, default=None, help="Window length (default 384).")
    parser.add_argument("--doc-stride", type=int, default=None, help="Window overlap (default 128).")
    parser.add_argument("--max-query-length", type=int, default=None, help="Question tokens (default 64).")
    parser.add_argument(
        "--eval-questions",
        type=int,
        default=None,
        help="Held-out questions per language and fold, sampled across the test articles (0: all; default 0).",
    )
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument(
        "--train-languages", nargs="+", default=None, help="Target languages trained (default all)."
    )
    parser.add_argument("--folds", type=int, default=4, help="Article-level folds of the split.")
    parser.add_argument(
        "--run-folds",
        type=int,
        nargs="+",
        default=None,
        help="Folds to run (each held out once; default all folds, --quick: fold 0).",
    )
    parser.add_argument("--seeds", type=int, default=None, help="Seeds per fold (default 3, --quick: 1).")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", default="/tmp/molora_quality_xsta")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "quality_xsta.json"))
    args = parser.parse_args(argv)
    full = {
        "steps": 1000,
        "batch_pairs": 8,
        "lr": 5e-5,
        "max_length": 384,
        "doc_stride": 128,
        "max_query_length": 64,
        "eval_questions": 0,
    }
    for key, value in (QUICK if args.quick else full).items():  # explicit flags override the mode's defaults
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.run_folds = args.run_folds or ([0] if args.quick else list(range(args.folds)))
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
    train_langs = ["en", *(args.train_languages or [lang for lang in languages if lang != "en"])]

    runs: dict[str, list] = {}
    timings, logs, split_info = {}, {}, {}
    t_start = time.time()
    for fold in args.run_folds:
        train_titles, test_titles = split_articles([e.title for e in data["en"]], args.folds, fold, seed=0)
        en_feats_all, pairs = build_items(tokenizer, data, set(train_titles), train_langs, args)
        eval_ids = sample_eval_ids(data, set(test_titles), args.eval_questions, seed=fold)
        split_info[str(fold)] = {
            "train_articles": len(train_titles),
            "test_articles": len(test_titles),
            "pairs": len(pairs),
            "eval_questions": len(eval_ids),
        }
        print(
            f"fold {fold}: train {len(train_titles)} articles, {len(pairs)} pairs over {train_langs[1:]}; "
            f"test {len(test_titles)} articles, {len(eval_ids)} questions per language",
            flush=True,
        )
        for seed in range(args.seeds):
            for arm in args.arms:
                tag = f"{arm}/f{fold}/s{seed}"
                model, seconds, history = train_arm(
                    arm, model_dir, tokenizer, pairs, en_feats_all["en"], args, seed
                )
                timings[tag] = round(seconds, 1)
                logs[tag] = history
                for name, paired in evals_of(arm):
                    t0 = time.time()
                    scores = evaluate(model, tokenizer, data, eval_ids, languages, args, paired)
                    timings[f"{name}/f{fold}/s{seed}/eval"] = round(time.time() - t0, 1)
                    runs.setdefault(name, []).append(scores)
                    non_en = [lang for lang in languages if lang != "en"]
                    f1 = np.mean([np.mean([f for _, f in scores[lang].values()]) for lang in non_en])
                    print(f"{name:18s} fold {fold} seed {seed}: mean F1 {100 * f1:.2f}", flush=True)
                del model

    rng = np.random.default_rng(0)
    arms_out, vectors = [], {}
    for name, arm_runs in runs.items():
        summary, vec = summarise(name, arm_runs, languages, rng, args.bootstrap)
        arms_out.append(summary)
        vectors[name] = vec
    if "xsta_paired" in vectors and "xsta_layer_7" not in vectors:
        # the layer sweep's default point is the main X-STA model: listed under its sweep name as well
        alias = dict(next(a for a in arms_out if a["name"] == "xsta_paired"), name="xsta_layer_7")
        arms_out.append({**alias, "same_model_as": "xsta_paired"})
    comparison = {}
    for a, b in (
        ("xsta_paired", "translate_train"),
        ("xsta_source_free", "translate_train"),
        ("xsta_paired", "xsta_source_free"),
        ("translate_train", "zero_shot_en"),
    ):
        if a in vectors and b in vectors:
            comparison[f"{a}-{b}"] = paired_diff(vectors[a], vectors[b], rng, args.bootstrap)
    result = {
        "arms": arms_out,
        "comparison": comparison,
        "open_question_2": {
            "question": "How much does source-free inference (the target text only) lose against paired inference "
            "(English parallel text beside it), on the same trained model?",
            "paired_minus_source_free": comparison.get("xsta_paired-xsta_source_free"),
            "source_free_minus_translate_train": comparison.get("xsta_source_free-translate_train"),
        },
        "anchors": [{"name": n, "mean_f1": f, "mean_em": e, "note": x} for n, f, e, x in ANCHORS],
        "anchor_note": "Anchors train on the whole of SQuAD v1.1 (87k questions), not on a fold of XQuAD.",
        "config": {k: v for k, v in vars(args).items() if k not in ("output", "work_dir")},
        "data": {"folds": split_info, "loader": report.summary()},
        "seconds": timings,
        "total_seconds": round(time.time() - t_start, 1),
        "train_logs": logs,
        "command": " ".join(["python", *sys.argv]),
        "machine": f"CPU, torch threads {args.threads}, load average at the end {os.getloadavg()[0]:.2f}"
        if not torch.cuda.is_available()
        else torch.cuda.get_device_name(),
    }
    from molora_adapters.utils.io import atomic_write_text

    atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    print(f"\n{'arm':18s} {'F1':>6s} {'EM':>6s} {'CI95 (F1)':>16s} {'ro F1':>6s} {'en F1':>6s}")
    for a in arms_out:
        print(
            f"{a['name']:18s} {a['mean_f1']:6.2f} {a['mean_em']:6.2f} {str(a['ci95']):>16s} "
            f"{a['ro_f1']:6.2f} {a['f1']['en']:6.2f}"
        )
    print(
        "\nPublished anchors (they train on all of SQuAD v1.1, not on a fold of XQuAD; 11-language F1 / EM):"
    )
    for n, f, e, x in ANCHORS:
        print(f"  {n:40s} {f:5.1f} / {e:5.1f} {x}")
    for k, v in comparison.items():
        print(f"{k}: {v}")
    if "xsta_paired-xsta_source_free" in comparison:
        print(f"open question 2 (paired - source-free): {comparison['xsta_paired-xsta_source_free']}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
