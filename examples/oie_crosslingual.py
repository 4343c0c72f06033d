"""Cross-lingual Open Information Extraction, end to end (MT4CrossOIE on `adapters`).

1. Encoder: the embedded multilingual-e5-small by default (offline), or any HF id / path (`--model`).
2. Data: English OIE corpora shipped with the package (OIE2016 train, IMoJIE subsets, GPT-LSOIE) plus few-shot
   in-language data (the Re-OIE2016 es and pt sentences whose English original is in no test set: 8 each),
   optionally LLM-generated languages (`--llm-data`, output of `molora annotate`).
3. Disentangled stage tuning with a Multi2OIE head: (1) word embeddings, (2) the rest of the encoder, (3) a
   Mixture-of-LoRA with 6 language experts (en, de, zh, es, pt, ar), top-2 routing.
4. Evaluation with scorers that reproduce the official tools: CaRB en, BenchIE en/de/zh, Re-OIE2016 es/pt (held-out
   part, CaRB format and lexical match) and multilingual CaRB zh/hi/te.

    python examples/oie_crosslingual.py                        # ~10 min on 2 CPU cores, offline
    python examples/oie_crosslingual.py --full --model bert-base-multilingual-cased   # paper scale, on a GPU

Writes `results.json`, `routing_heatmap.png` and `pr_curves.png` into `--output-dir`; Ctrl-C and rerun resumes.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

EXPERTS = ["en", "de", "zh", "es", "pt", "ar"]
STAGE_NAMES = ("embeddings", "backbone", "mixture", "full")  # "full": one-stage full fine-tuning (Multi2OIE)
# (benchmark, language, scorer, what): the evaluation protocol of benchmarks/quality_oie.py
EVALUATIONS = [
    ("carb", "en", "carb", "CaRB en test"),
    ("benchie", "en", "benchie", "BenchIE en"),
    ("benchie", "de", "benchie", "BenchIE de"),
    ("benchie", "zh", "benchie", "BenchIE zh"),
    ("carb", "es", "carb", "Re-OIE2016 es held-out (CaRB format)"),
    ("carb", "pt", "carb", "Re-OIE2016 pt held-out (CaRB format)"),
    ("reoie2016", "es", "reoie2016", "Re-OIE2016 es held-out (lexical)"),
    ("reoie2016", "pt", "reoie2016", "Re-OIE2016 pt held-out (lexical)"),
    ("carb", "zh", "carb", "multilingual CaRB zh"),
    ("carb", "hi", "carb", "multilingual CaRB hi"),
    ("carb", "te", "carb", "multilingual CaRB te"),
]
FEW_SHOT = {"es": 300, "pt": 300}
DEFAULT_CORPORA = "oie2016,imojie,lsoie-gpt"

# The training budget, in one place: the share of a system's budget (steps, or seconds with --time-budget) that
# each of its stages gets, by number of stages. benchmarks/quality_oie.py uses the same split.
BUDGET_SPLIT = {1: (1.0,), 2: (0.3, 0.7), 3: (0.2, 0.4, 0.4)}
# Peak learning rates per stage (encoder / embedding / mixture parameters) and of the head in that stage. Stage 1
# starts a fresh head, so it needs a high head rate to learn anything in a short stage; later stages refine the
# head at a lower rate (a fresh AdamW at the mixture's 5e-4 undoes what the head learnt).
STAGE_LEARNING_RATES = {
    "embeddings": (5e-4, 1e-3),
    "backbone": (1e-4, 3e-4),
    "mixture": (5e-4, 1e-4),
    "full": (1e-4, 1e-3),
}
DEFAULT_STEPS = 300  # total steps of the default run (see README: fits the 10-minute budget on 2 quiet cores)


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", default="embedded:multilingual-e5-small", help="HF id, local path or embedded:<name>"
    )
    p.add_argument(
        "--train-data", default=DEFAULT_CORPORA, help="comma-separated corpus names or JSONL paths"
    )
    p.add_argument(
        "--llm-data", action="append", default=[], metavar="DIR", help="output of `molora annotate`"
    )
    p.add_argument(
        "--projected-data",
        action="append",
        default=[],
        metavar="DIR|vendored",
        help="projected multilingual records (`molora project` output, a JSONL file of them, or `vendored`: the "
        "XQuAD projection shipped with the package)",
    )
    p.add_argument(
        "--stages",
        default="embeddings,backbone,mixture",
        help="comma-separated, in order, from "
        + ",".join(STAGE_NAMES)
        + " (full = one-stage full fine-tuning)",
    )
    p.add_argument("--experts", default=",".join(EXPERTS))
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--granularity", choices=["token", "sentence", "language"], default="token")
    p.add_argument(
        "--max-steps",
        default=None,
        help=f"steps per stage: one int, or one per stage (default: {DEFAULT_STEPS} split by BUDGET_SPLIT)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="training seconds for all stages, split by BUDGET_SPLIT (each stage calibrates its step count); "
        "--max-steps then only caps the steps",
    )
    p.add_argument("--learning-rates", default=None, help="one value, or one per stage (default: per stage)")
    p.add_argument("--head-learning-rates", default=None, help="head rates: one value, or one per stage")
    p.add_argument(
        "--language-loss-coef",
        type=float,
        default=0.05,
        help="router cross-entropy toward the example's language expert (where the language is known)",
    )
    p.add_argument(
        "--language-alpha",
        type=float,
        default=0.5,
        help="language-balanced batches: languages weighted n**alpha (1 = natural mix; -1 = off)",
    )
    p.add_argument("--head", default="2x512", help="argument tagger size LAYERSxFEEDFORWARD (see README)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=64, help="sub-words per training example")
    p.add_argument("--max-train-sentences", type=int, default=1200, help="English sentences used (0 = all)")
    p.add_argument(
        "--eval-max-sentences",
        type=int,
        default=0,
        help="per benchmark; larger sets are sampled (0 = all, the default)",
    )
    p.add_argument(
        "--eval",
        default="all",
        help="evaluations to run, e.g. carb:en,benchie:de,reoie2016:es (default: all of the protocol)",
    )
    p.add_argument("--output-dir", default="runs/oie_crosslingual")
    p.add_argument("--push-to-hub", metavar="REPO", default=None)
    p.add_argument(
        "--full", action="store_true", help="paper scale (use a GPU): all data, 3 epochs per stage, r=16"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-resume", action="store_true", help="start over even if checkpoints exist")
    args = p.parse_args(argv)

    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = [s for s in args.stages if s not in STAGE_NAMES]
    if bad or not args.stages:
        p.error(f"--stages: unknown stage(s) {bad or '(none)'}; choose from {','.join(STAGE_NAMES)}")
    args.experts = [e.strip() for e in args.experts.split(",") if e.strip()]
    if not 1 <= args.top_k <= len(args.experts):
        p.error(f"--top-k must be in [1, {len(args.experts)}] (the number of experts), got {args.top_k}")
    n = len(args.stages)
    split = BUDGET_SPLIT.get(n) or tuple(1.0 / n for _ in range(n))
    try:
        steps = (
            [int(x) for x in args.max_steps.split(",")]
            if args.max_steps
            else [max(1, round(DEFAULT_STEPS * share)) for share in split]
        )
        lrs = (
            [float(x) for x in args.learning_rates.split(",")]
            if args.learning_rates
            else [STAGE_LEARNING_RATES[s][0] for s in args.stages]
        )
        head_lrs = (
            [float(x) for x in args.head_learning_rates.split(",")]
            if args.head_learning_rates
            else [STAGE_LEARNING_RATES[s][1] for s in args.stages]
        )
        layers, ff = (int(x) for x in args.head.lower().split("x"))
    except ValueError:
        p.error(
            "--max-steps, --learning-rates, --head-learning-rates take comma-separated numbers (e.g. 60,120,120 "
            "and 5e-4,1e-4,5e-4), --head takes LAYERSxFEEDFORWARD (e.g. 2x512)"
        )
    args.head_layers, args.head_ff = layers, ff
    steps, lrs = (steps * n if len(steps) == 1 else steps), (lrs * n if len(lrs) == 1 else lrs)
    head_lrs = head_lrs * n if len(head_lrs) == 1 else head_lrs
    if len(steps) != n or len(lrs) != n or len(head_lrs) != n or min(steps) < 1 or min(lrs + head_lrs) <= 0:
        p.error(
            f"--max-steps / --learning-rates / --head-learning-rates need one value or one per stage ({n}); "
            "steps >= 1, rates > 0"
        )
    if args.time_budget is not None and args.time_budget <= 0:
        p.error(f"--time-budget must be > 0 seconds, got {args.time_budget}")
    if args.time_budget is not None and not args.max_steps:
        steps = [100_000] * n  # only the clock limits the stages
    args.steps = dict(zip(args.stages, steps, strict=True))
    args.lrs = dict(zip(args.stages, lrs, strict=True))
    args.head_lrs = dict(zip(args.stages, head_lrs, strict=True))
    args.seconds = (
        dict(zip(args.stages, (args.time_budget * share for share in split), strict=True))
        if args.time_budget
        else {}
    )
    known = {f"{b}:{lang}" for b, lang, _, _ in EVALUATIONS}
    args.eval = (
        sorted(known) if args.eval == "all" else [e.strip() for e in args.eval.split(",") if e.strip()]
    )
    unknown = sorted(set(args.eval) - known)
    if unknown or not args.eval:
        p.error(f"--eval: unknown {unknown or '(none)'}; choose from {','.join(sorted(known))}")
    if args.full:
        args.max_train_sentences = args.eval_max_sentences = 0
        args.max_length = 128
    return args


# ---------------------------------------------------------------------------------------------------- data
def load_training_data(args, log):
    """English corpora (sampled), few-shot es/pt Re-OIE2016 and LLM-generated data, as one `datasets.Dataset`."""
    import datasets

    from molora_adapters.data import CORPUS_LOADERS, load_training_corpus
    from molora_adapters.oie.benchmarks import leak_free_few_shot

    parts = []
    for spec in [s.strip() for s in args.train_data.split(",") if s.strip()]:
        if spec in CORPUS_LOADERS:
            ds = load_training_corpus(spec)
        elif os.path.exists(spec):
            ds = load_training_corpus("jsonl", path=spec)
        else:
            raise UserError(
                f"--train-data: `{spec}` is neither a corpus ({', '.join(CORPUS_LOADERS.names())}) nor a file"
            )
        log(f"  {spec}: {len(ds)} sentences")
        parts.append(ds)
    if not parts:
        raise UserError("--train-data is empty: give at least one corpus name or JSONL path")
    english = datasets.concatenate_datasets(parts).shuffle(seed=args.seed)
    if args.max_train_sentences:
        english = english.select(range(min(args.max_train_sentences, len(english))))
    data = [english]
    for lang, n in FEW_SHOT.items():  # few-shot in-language data; evaluation uses only the rest
        few = leak_free_few_shot(lang, n)
        data.append(few)
        args.few_shot_sentences = {**getattr(args, "few_shot_sentences", {}), lang: len(few)}
        log(
            f"  few-shot reoie2016 {lang}: {len(few)} sentences (at most {n}) whose English original is in no "
            "test set (CaRB en, BenchIE en)"
        )
    for d in args.llm_data:
        if not os.path.isdir(d):
            raise UserError(f"--llm-data: `{d}` is not a directory (give the --out of `molora annotate`)")
        gen = load_training_corpus("llm-augmented", path=d)
        log(f"  llm-augmented {d}: {len(gen)} sentences")
        data.append(gen)
    for spec in args.projected_data:
        if spec != "vendored" and not os.path.exists(spec):
            raise UserError(
                f"--projected-data: `{spec}` is neither `vendored` nor a `molora project` output (directory or JSONL)"
            )
        proj = load_training_corpus("projected", path=None if spec == "vendored" else spec)
        counts = collections.Counter(proj["language"])
        log(
            f"  projected {spec}: {len(proj)} sentences ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
        )
        data.append(proj)
    return datasets.concatenate_datasets(data)


# ---------------------------------------------------------------------------------------------------- model
def build_model(args, log):
    import torch
    from adapters import AutoAdapterModel, LoRAConfig
    from transformers import AutoTokenizer

    import molora_adapters  # noqa: F401
    from molora_adapters.models import resolve_model_name_or_path

    try:
        path = resolve_model_name_or_path(args.model)
        tok_kwargs = {"fix_mistral_regex": False} if args.model.startswith("embedded:") else {}
        tokenizer = AutoTokenizer.from_pretrained(path, **tok_kwargs)
        torch.manual_seed(args.seed)
        # On CPU, attention-probability dropout makes attention fall back to its unfused kernel; it is turned off
        # there (hidden-state dropout stays). On GPU the model's own value is kept.
        cpu_kwargs = {} if torch.cuda.is_available() else {"attention_probs_dropout_prob": 0.0}
        model = AutoAdapterModel.from_pretrained(path, **cpu_kwargs)
    except (OSError, ValueError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--model {args.model}: cannot load it ({first})") from None
    head_kwargs = {} if torch.cuda.is_available() else {"attention_probs_dropout": 0.0}
    model.add_oie_head("oie", n_arg_layers=args.head_layers, d_feedforward=args.head_ff, **head_kwargs)
    r = 16 if args.full else 8
    languages = {e: e for e in args.experts}
    # training / evaluation languages without an expert route to English (language routing and supervision)
    for lang in ("en", "de", "zh", "es", "pt", "ar", "hi", "te"):
        languages.setdefault(lang, "en" if "en" in args.experts else args.experts[0])
    name = model.add_adapter_mixture(
        args.experts,
        name="oie_mixture",
        top_k=args.top_k,
        granularity=args.granularity,
        languages=languages,
        # one expert (a single LoRA): nothing to route, so no routing supervision
        language_loss_coef=args.language_loss_coef if len(args.experts) > 1 else 0.0,
        dropout_site="rank",  # LoRA dropout on the rank activations: same dev F1, ~14% faster step (CHANGELOG)
        expert_config=LoRAConfig(
            r=r, alpha=2 * r, dropout=0.1, selfattn_lora=True, intermediate_lora=True, output_lora=True
        ),
    )
    log(
        f"model {args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, mixture `{name}`"
    )
    return model, tokenizer, name


def train(args, model, tokenizer, features, mixture, log):
    from dataclasses import replace

    import torch
    from transformers import TrainingArguments

    from molora_adapters.oie import DataCollatorForOIE
    from molora_adapters.training import MT4CROSSOIE_STAGES, Stage, StagedTrainer, autocast_bf16_available

    by_name = {s.name: s for s in MT4CROSSOIE_STAGES}
    by_name["full"] = Stage("full", train=("embeddings", "backbone", "heads"), train_position_embeddings=True)
    stages = []
    for s in args.stages:
        stage = replace(
            by_name[s],
            learning_rate=args.lrs[s],
            head_learning_rate=args.head_lrs[s],
            max_seconds=args.seconds.get(s),
        )
        stage = replace(stage, num_train_epochs=3.0) if args.full else replace(stage, max_steps=args.steps[s])
        stages.append(stage)
    targs = TrainingArguments(
        output_dir=str(Path(args.output_dir) / "train"),
        per_device_train_batch_size=args.batch_size,
        warmup_ratio=0.1,
        weight_decay=0.01,
        logging_steps=10,
        save_steps=25,
        save_total_limit=2,
        report_to=[],
        remove_unused_columns=False,
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=autocast_bf16_available(),  # bf16 autocast on GPUs and on CPUs with bf16 units; else fp32
        group_by_length=True,  # the `length` column of the features
        disable_tqdm=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = StagedTrainer(
        model=model,
        args=targs,
        stages=stages,
        train_dataset=features,
        data_collator=DataCollatorForOIE(tokenizer.pad_token_id),
        language_sampling_alpha=args.language_alpha if args.language_alpha >= 0 else None,
    )
    train_dir = Path(targs.output_dir)
    resume = (not args.no_resume) and train_dir.is_dir() and any(train_dir.glob("stage-*"))
    if resume:
        log(f"resuming from {train_dir}")
    trainer.train(resume_from_checkpoint=True if resume else None)
    # the final model is in train/: with the tokenizer beside it, `OIEPipeline.from_pretrained(train_dir)` loads it
    tokenizer.save_pretrained(str(train_dir))
    return trainer


# ---------------------------------------------------------------------------------------------------- evaluation
def evaluation_sets(args) -> list[dict]:
    """Per evaluation: the sentences to extract from, and the gold sentences to score on (`None`: all)."""
    from molora_adapters.oie.benchmarks import leak_free_few_shot, load_benchmark

    held_out = {lang: set(leak_free_few_shot(lang, n)["sentence"]) for lang, n in FEW_SHOT.items()}
    sets = []
    for bench, lang, scorer, what in EVALUATIONS:
        if f"{bench}:{lang}" not in args.eval:
            continue
        sentences = [s.strip() for s in load_benchmark(bench, lang)["sentence"]]
        keep = None
        if lang in held_out and bench in ("carb", "reoie2016"):
            few = {s.strip() for s in held_out[lang]}
            sentences = [s for s in sentences if s not in few]
            keep = set(sentences)
        if args.eval_max_sentences and len(sentences) > args.eval_max_sentences and bench != "benchie":
            sentences = sorted(
                random.Random(args.seed).sample(sentences, args.eval_max_sentences), key=sentences.index
            )
            keep = set(sentences)
        sets.append(
            dict(benchmark=bench, lang=lang, scorer=scorer, what=what, sentences=sentences, subset=keep)
        )
    return sets


def evaluate_all(args, model, tokenizer, log) -> tuple[list[dict], dict]:
    from molora_adapters.oie import OIEPipeline
    from molora_adapters.oie.benchmarks import score_extractions, write_tabbed

    pipe = OIEPipeline(model, tokenizer)
    args.decoding = pipe.decoding_config()  # written into results.json
    pred_dir = Path(args.output_dir) / "predictions"
    rows, curves, cache = [], {}, {}
    for ev in evaluation_sets(args):
        key = (ev["lang"], tuple(ev["sentences"]))
        if key not in cache:  # CaRB and lexical scoring of es/pt share one extraction pass
            t0 = time.time()
            cache[key] = pipe.extract(ev["sentences"], language=ev["lang"], batch_size=32)
            log(f"  extracted {ev['what']}: {len(ev['sentences'])} sentences in {time.time() - t0:.0f}s")
        extractions = cache[key]
        preds = [(s, exts) for s, exts in zip(ev["sentences"], extractions, strict=True)]
        write_tabbed(
            pred_dir / f"{ev['benchmark']}_{ev['lang']}.tsv", preds
        )  # CaRB format, for `molora evaluate`
        res = score_extractions(ev["scorer"], preds, lang=ev["lang"], sentences=ev["subset"])
        row = {
            "benchmark": ev["what"],
            "scorer": ev["scorer"],
            "lang": ev["lang"],
            "sentences": len(ev["sentences"]),
            "extractions": sum(len(e) for e in extractions),
            **{k: res.get(k) for k in ("precision", "recall", "f1", "auc")},
        }
        rows.append(row)
        if res.get("curve"):
            curves[f"{ev['scorer']} {ev['lang']}"] = res
    return rows, curves


def training_summary(args, trainer, features, seconds: float) -> dict:
    """Training time and throughput; a rerun that trained nothing (all stages finished) reuses the saved summary.

    Samples are (sentence, predicate) examples: rows seen x the mean predicates per row."""
    from molora_adapters.utils.io import atomic_write_text

    path = Path(args.output_dir) / "training.json"
    if not trainer.stage_history and path.is_file():
        return json.loads(path.read_text())
    per_row = sum(len(m) for m in features["predicate_masks"]) / max(1, len(features))
    stages = [
        {
            k: h.get(k)
            for k in (
                "name",
                "global_step",
                "train_loss",
                "train_seconds",
                "examples_seen",
                "sparse_embedding_updates",
            )
        }
        for h in trainer.stage_history
    ]
    train_seconds = sum(h["train_seconds"] or 0.0 for h in stages) or seconds
    samples = round(sum(h["examples_seen"] for h in stages) * per_row)
    summary = {
        "train_seconds": round(train_seconds, 1),
        "samples": samples,
        "samples_per_second": round(samples / train_seconds, 2) if train_seconds else 0.0,
        "stages": stages,
        "time_budget": args.time_budget,
    }
    atomic_write_text(path, json.dumps(summary, indent=2))
    return summary


def write_outputs(args, rows, curves, model, tokenizer, mixture, elapsed, log, training=None) -> dict:
    from molora_adapters.mixture import collect_routing_statistics
    from molora_adapters.utils.io import atomic_write_text

    out = Path(args.output_dir)
    files = {}
    try:
        from molora_adapters.oie.benchmarks.plot import plot_pr_curves

        files["pr_curves"] = plot_pr_curves(curves, out / "pr_curves.png", title="PR curves (CaRB / lexical)")
    except ImportError as err:
        log(f"  no PR-curve plot: {err}")
    # Routing heatmap: expert share per language per layer, on a few evaluation sentences of each language.
    batches = []
    for lang, sents in _routing_samples(args).items():
        enc = tokenizer(sents, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
        batches.append({**enc, "languages": [lang] * len(sents)})
    model.set_active_adapters(model.get_adapter_mixture(mixture))
    stats = collect_routing_statistics(model, batches, mixture=mixture, progress=False)
    stats.save_json(out / "routing_statistics.json")
    try:
        files["routing_heatmap"] = stats.plot_heatmap(out / "routing_heatmap.png")
    except ImportError as err:
        log(f"  no routing heatmap: {err}")
    results = {
        "model": args.model,
        "stages": args.stages,
        "experts": args.experts,
        "top_k": args.top_k,
        "granularity": args.granularity,
        "seconds": round(elapsed, 1),
        "training": training or {},
        "decoding": getattr(args, "decoding", None),
        "few_shot": {
            "source": "Re-OIE2016 sentences whose English original is in no test set (CaRB en, BenchIE en)",
            "sentences": getattr(args, "few_shot_sentences", None),
        },
        "results": rows,
        "files": files,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    return results


def _routing_samples(args, n: int = 16) -> dict[str, list[str]]:
    from molora_adapters.oie.benchmarks import load_benchmark

    samples = {}
    for bench, lang in [
        ("carb", "en"),
        ("benchie", "de"),
        ("carb", "zh"),
        ("carb", "es"),
        ("carb", "pt"),
        ("carb", "hi"),
    ]:
        samples[lang] = list(load_benchmark(bench, lang)["sentence"][:n])
    return samples


def format_table(rows: list[dict]) -> str:
    def f(v):
        return "  -  " if v is None else f"{v:.3f}"

    lines = [f"{'benchmark':40s} {'n':>5s} {'P':>6s} {'R':>6s} {'F1':>6s} {'AUC':>6s}"]
    for r in rows:
        lines.append(
            f"{r['benchmark']:40s} {r['sentences']:5d} {f(r['precision']):>6s} {f(r['recall']):>6s} "
            f"{f(r['f1']):>6s} {f(r['auc']):>6s}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Stages 1-2 train with the mixture added but inactive: adapters would warn on every forward.
    logging.getLogger("adapters.model_mixin").addFilter(lambda r: "none are activated" not in r.getMessage())
    start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - start:6.0f}s] {msg}", flush=True)

    try:
        import torch

        from molora_adapters.oie import build_oie_features

        torch.manual_seed(args.seed)
        random.seed(args.seed)
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        log("loading training data")
        records = load_training_data(args, log)
        model, tokenizer, mixture = build_model(args, log)
        features = build_oie_features(records, tokenizer, max_length=args.max_length)
        n_examples = sum(len(m) for m in features["predicate_masks"])
        log(
            f"{len(records)} sentences -> {len(features)} training rows, {n_examples} (sentence, predicate) examples"
        )
        t0 = time.time()
        trainer = train(args, model, tokenizer, features, mixture, log)
        training = training_summary(args, trainer, features, time.time() - t0)
        log(
            f"trained {training['train_seconds']:.0f}s, {training['samples']} samples "
            f"({training['samples_per_second']:.1f}/s)"
        )
        log("evaluating")
        t0 = time.time()
        model.eval()
        model.set_active_adapters(model.get_adapter_mixture(mixture) if "mixture" in args.stages else None)
        rows, curves = evaluate_all(args, model, tokenizer, log)
        training["eval_seconds"] = round(time.time() - t0, 1)
        results = write_outputs(
            args, rows, curves, model, tokenizer, mixture, time.time() - start, log, training
        )
        if args.push_to_hub:
            urls = model.push_adapter_mixture_to_hub(args.push_to_hub, mixture, with_head="oie")
            log(f"pushed to {args.push_to_hub}: {len(urls)} commit(s)")
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print()
    print(format_table(rows))
    print(f"\ntotal time {results['seconds']:.0f}s; results in {Path(args.output_dir) / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
