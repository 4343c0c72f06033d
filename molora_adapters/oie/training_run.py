"""What [`train_recipe`] and [`run_recipe`] do: data, model, staged training, evaluation and the run's files.

Layout of a run directory::

    recipe.json            # the recipe (`OIERecipe.to_json`)
    train/                 # the staged run: checkpoints, stage folders, the final model and its tokenizer
    training.json          # training time (the budget's clock: saves excluded), samples per second, stages
    results.json           # evaluation rows (with empty-sentence counts), decoding options, files
    predictions/*.tsv      # CaRB-format predictions per evaluation
    routing_statistics.json, routing_heatmap.png, pr_curves.png
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .evaluation import evaluate, evaluation_sets, routing_samples

# `OIERecipe` (molora_adapters.oie.recipes) appears in annotations only: importing it here would close an import
# circle (recipes runs this module), hence the `noqa: F821` on those annotations.

logger = logging.getLogger(__name__)
MIXTURE_NAME = "oie_mixture"


class RecipeDataError(ValueError):
    """A recipe names training data that cannot be read."""


def _log(log):
    return log if log is not None else logger.info


# ---------------------------------------------------------------------------------------------------- data
def dev_slice(records, per_language: int, seed: int) -> tuple[list[int], dict[str, list[int]]]:
    """Split projected records into (train indices, dev indices per language): per language, the
    ``per_language`` records with the smallest seeded hash of their source sentence, so every translation of a
    held-out English sentence stays out of training too (no leak across languages), whatever the file order."""

    def key(i: int) -> str:
        meta = records[i].get("meta")
        source = json.loads(meta).get("source_id") if isinstance(meta, str) and meta else None
        return hashlib.sha256(f"{seed}:{source or records[i]['sentence']}".encode()).hexdigest()

    by_lang: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(records):
        by_lang[r["language"]].append(i)
    dev_sources: set[str] = set()
    dev: dict[str, list[int]] = {}
    for lang in sorted(by_lang):
        ranked = sorted(by_lang[lang], key=key)[:per_language]
        dev[lang] = ranked
        dev_sources |= {key(i) for i in ranked}
    held = {i for ids in dev.values() for i in ids}
    # a record whose source sentence is held out in another language is dropped from training as well
    train = [i for i in range(len(records)) if i not in held and key(i) not in dev_sources]
    return train, dev


def load_training_data(recipe: OIERecipe, log=None) -> tuple[Any, dict[str, Any], dict[str, list[dict]]]:  # noqa: F821
    """English corpora (seeded sample), leak-free few-shot, projected and LLM data as one `datasets.Dataset`.

    Returns:
        ``(records, info, dev_records)``: the shuffled training records, counts per source, and the projected
        records held out per language.
    """
    import datasets

    from ..data import CORPUS_LOADERS, load_training_corpus
    from .benchmarks import leak_free_few_shot

    log = _log(log)
    parts, info = [], {"sources": {}}
    for spec in recipe.train_data:
        if spec in CORPUS_LOADERS:
            ds = load_training_corpus(spec)
        elif os.path.exists(spec):
            ds = load_training_corpus("jsonl", path=spec)
        else:
            raise RecipeDataError(
                f"`train_data`: `{spec}` is neither a corpus ({', '.join(CORPUS_LOADERS.names())}) nor a file"
            )
        log(f"  {spec}: {len(ds)} sentences")
        info["sources"][spec] = len(ds)
        parts.append(ds)
    english = datasets.concatenate_datasets(parts).shuffle(seed=recipe.seed)
    if recipe.max_train_sentences:
        english = english.select(range(min(recipe.max_train_sentences, len(english))))
    data = [english]
    info["few_shot_sentences"] = {}
    for lang, n in recipe.few_shot.items():  # few-shot in-language data; evaluation uses only the rest
        few = leak_free_few_shot(lang, n)
        data.append(few)
        info["few_shot_sentences"][lang] = len(few)
        log(f"  few-shot reoie2016 {lang}: {len(few)} sentences whose English original is in no test set")
    for d in recipe.llm_data:
        if not os.path.isdir(d):
            raise RecipeDataError(
                f"`llm_data`: `{d}` is not a directory (give the --out of `molora annotate`)"
            )
        gen = load_training_corpus("llm-augmented", path=d)
        log(f"  llm-augmented {d}: {len(gen)} sentences")
        data.append(gen)
    dev_records: dict[str, list[dict]] = {}
    for spec in recipe.projected_data:
        if spec != "vendored" and not os.path.exists(spec):
            raise RecipeDataError(
                f"`projected_data`: `{spec}` is neither `vendored` nor a `molora project` output (directory or JSONL)"
            )
        proj = load_training_corpus("projected", path=None if spec == "vendored" else spec)
        if recipe.projected_dev_sentences:
            train_ids, dev_ids = dev_slice(proj, recipe.projected_dev_sentences, recipe.seed)
            for lang, ids in dev_ids.items():
                dev_records.setdefault(lang, []).extend(proj[i] for i in ids)
            proj = proj.select(train_ids)
        counts = collections.Counter(proj["language"])
        log(
            f"  projected {spec}: {len(proj)} training sentences ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
        )
        info["sources"][f"projected:{spec}"] = dict(sorted(counts.items()))
        data.append(proj)
    info["dev_sentences"] = {lang: len(r) for lang, r in sorted(dev_records.items())}
    records = datasets.concatenate_datasets(data)
    return records, info, dev_records


# ---------------------------------------------------------------------------------------------------- model
def build_model(recipe: OIERecipe, log=None):  # noqa: F821
    """The encoder with a Multi2OIE head and the recipe's Mixture-of-LoRA (inactive until its stage)."""
    import torch
    from adapters import AutoAdapterModel, LoRAConfig
    from transformers import AutoTokenizer

    from ..models import resolve_model_name_or_path

    log = _log(log)
    # On CPU, attention-probability dropout makes attention fall back to its unfused kernel; it is turned off
    # there (hidden-state dropout stays). On GPU the model's own value is kept.
    cpu = not torch.cuda.is_available()
    try:
        path = resolve_model_name_or_path(recipe.model)
        tok_kwargs = {"fix_mistral_regex": False} if recipe.model.startswith("embedded:") else {}
        tokenizer = AutoTokenizer.from_pretrained(path, **tok_kwargs)
        torch.manual_seed(recipe.seed)
        model = AutoAdapterModel.from_pretrained(
            path, **({"attention_probs_dropout_prob": 0.0} if cpu else {})
        )
    except (OSError, ValueError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecipeDataError(f"`model` {recipe.model}: cannot load it ({first})") from None
    head_kwargs = {"attention_probs_dropout": 0.0} if cpu else {}
    model.add_oie_head("oie", n_arg_layers=recipe.head_layers, d_feedforward=recipe.head_ff, **head_kwargs)
    r = recipe.lora_rank
    name = model.add_adapter_mixture(
        list(recipe.experts),
        name=MIXTURE_NAME,
        top_k=recipe.top_k,
        granularity=recipe.granularity,
        languages=recipe.routed_languages(),
        # one expert (a single LoRA): nothing to route, so no routing supervision
        language_loss_coef=recipe.language_loss_coef if len(recipe.experts) > 1 else 0.0,
        dropout_site=recipe.dropout_site,
        expert_config=LoRAConfig(
            r=r,
            alpha=2 * r,
            dropout=recipe.lora_dropout,
            selfattn_lora=True,
            intermediate_lora=True,
            output_lora=True,
        ),
    )
    log(
        f"model {recipe.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, mixture `{name}`"
    )
    return model, tokenizer, name


# ---------------------------------------------------------------------------------------------------- training
def training_summary(trainer, features, out: Path, time_budget: float | None) -> dict[str, Any]:
    """Training time and throughput over every stage of the run, those finished before a resume included.

    ``train_seconds`` is the stages' clock (training alone: logging, evaluation and checkpoint saves excluded);
    ``wall_seconds`` adds what the clock excludes. Samples are (sentence, predicate) examples: rows seen x the
    mean predicates per row. A rerun that trained nothing and restored no stage summary reuses the saved file."""
    from ..utils.io import atomic_write_text

    path = out / "training.json"
    if not trainer.stage_history and path.is_file():
        return json.loads(path.read_text())
    per_row = sum(len(m) for m in features["predicate_masks"]) / max(1, len(features))
    keys = (
        "name",
        "global_step",
        "train_loss",
        "clock_seconds",
        "train_seconds",
        "max_seconds",
        "examples_seen",
        "sparse_embedding_updates",
        "restored",
    )
    stages = [{k: h.get(k, False if k == "restored" else None) for k in keys} for h in trainer.stage_history]
    seconds = sum(h["clock_seconds"] or h["train_seconds"] or 0.0 for h in stages)
    samples = round(sum(h["examples_seen"] for h in stages) * per_row)
    summary = {
        "train_seconds": round(seconds, 1),
        "wall_seconds": round(sum(h["train_seconds"] or 0.0 for h in stages), 1),
        "samples": samples,
        "samples_per_second": round(samples / seconds, 2) if seconds else 0.0,
        "stages": stages,
        "time_budget": time_budget,
        "machine": machine_info(),
    }
    atomic_write_text(path, json.dumps(summary, indent=2))
    return summary


def machine_info() -> dict[str, Any]:
    """Where a run trained: platform, CPU model and count, torch threads, accelerator (for the model card)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "platform": platform.platform(terse=True),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "accelerator": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch": torch.__version__,
    }


def train(recipe: OIERecipe, out: Path, *, resume: bool = True, log=None):  # noqa: F821
    """Train ``recipe`` into ``out``; returns ``(final model dir, model, tokenizer, mixture, training, info)``."""
    import random

    import torch
    from transformers import TrainingArguments

    import molora_adapters  # noqa: F401  (registers the plugin with adapters)

    from ..training import StagedTrainer, autocast_bf16_available
    from .collator import DataCollatorForOIE
    from .features import build_oie_features

    log = _log(log)
    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    recipe.to_json(out / "recipe.json")
    log("loading training data")
    records, info, dev_records = load_training_data(recipe, log)
    model, tokenizer, mixture = build_model(recipe, log)
    features = build_oie_features(records, tokenizer, max_length=recipe.max_length)
    n_examples = sum(len(m) for m in features["predicate_masks"])
    log(
        f"{len(records)} sentences -> {len(features)} training rows, {n_examples} (sentence, predicate) examples"
    )
    args = TrainingArguments(
        output_dir=str(out / "train"),
        per_device_train_batch_size=recipe.batch_size,
        warmup_ratio=0.1,
        weight_decay=0.01,
        logging_steps=10,
        save_steps=25,
        save_total_limit=2,
        report_to=[],
        remove_unused_columns=False,
        seed=recipe.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=autocast_bf16_available(),  # bf16 autocast on GPUs and on CPUs with bf16 units; else fp32
        group_by_length=True,  # the `length` column of the features
        disable_tqdm=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    trainer = StagedTrainer(
        model=model,
        args=args,
        stages=recipe.build_stages(),
        train_dataset=features,
        data_collator=DataCollatorForOIE(tokenizer.pad_token_id),
        language_sampling_alpha=recipe.language_alpha,
    )
    train_dir = Path(args.output_dir)
    resuming = resume and train_dir.is_dir() and any(train_dir.glob("stage-*"))
    if resuming:
        log(f"resuming from {train_dir}")
    trainer.train(resume_from_checkpoint=True if resuming else None)
    # the final model is in train/: with the tokenizer beside it, `OIEPipeline.from_pretrained(train_dir)` loads it
    tokenizer.save_pretrained(str(train_dir))
    training = training_summary(trainer, features, out, recipe.time_budget)
    log(
        f"trained {training['train_seconds']:.0f}s, {training['samples']} samples ({training['samples_per_second']:.1f}/s)"
    )
    info["dev_records"] = dev_records
    return train_dir, model, tokenizer, mixture, training, info


# ---------------------------------------------------------------------------------------------------- run
def run(
    recipe: OIERecipe,  # noqa: F821
    out: Path,
    *,
    resume: bool = True,
    log=None,
    push_to_hub: str | None = None,
) -> dict:
    """Train, evaluate on ``recipe.eval`` and write the run's files (see the module docstring)."""
    from ..utils.io import atomic_write_text
    from .pipeline import OIEPipeline

    log = _log(log)
    start = time.time()
    train_dir, model, tokenizer, mixture, training, info = train(recipe, out, resume=resume, log=log)
    log("evaluating")
    t0 = time.time()
    model.eval()
    model.set_active_adapters(model.get_adapter_mixture(mixture) if "mixture" in recipe.stages else None)
    pipe = OIEPipeline(model, tokenizer)
    sets = evaluation_sets(
        recipe.eval,
        few_shot=recipe.few_shot,
        max_sentences=recipe.eval_max_sentences,
        seed=recipe.seed,
        dev_records=info["dev_records"],
    )
    rows, curves = evaluate(pipe, sets, out / "predictions", log)
    training["eval_seconds"] = round(time.time() - t0, 1)
    files = _plots(recipe, out, curves, model, tokenizer, mixture, log)
    results = {
        "model": recipe.model,
        "recipe": recipe.to_dict(),
        "stages": list(recipe.stages),
        "experts": list(recipe.experts),
        "top_k": recipe.top_k,
        "granularity": recipe.granularity,
        "seconds": round(time.time() - start, 1),
        "training": training,
        "data": {k: v for k, v in info.items() if k != "dev_records"},
        "decoding": pipe.decoding_config(),
        "few_shot": {
            "source": "Re-OIE2016 sentences whose English original is in no test set (CaRB en, BenchIE en)",
            "sentences": info["few_shot_sentences"],
        },
        "results": rows,
        "files": files,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    if push_to_hub:
        urls = model.push_adapter_mixture_to_hub(push_to_hub, mixture, with_head="oie")
        log(f"pushed to {push_to_hub}: {len(urls)} commit(s)")
    return results


def _plots(recipe: OIERecipe, out: Path, curves, model, tokenizer, mixture, log) -> dict[str, str]:  # noqa: F821
    """PR curves and the routing heatmap (expert share per language per layer on a few test sentences)."""
    from ..mixture import collect_routing_statistics

    files = {}
    try:
        from .benchmarks.plot import plot_pr_curves

        files["pr_curves"] = plot_pr_curves(curves, out / "pr_curves.png", title="PR curves (CaRB / lexical)")
    except ImportError as err:
        log(f"  no PR-curve plot: {err}")
    batches = []
    for lang, sents in routing_samples().items():
        enc = tokenizer(
            sents, padding=True, truncation=True, max_length=recipe.max_length, return_tensors="pt"
        )
        batches.append({**enc, "languages": [lang] * len(sents)})
    model.set_active_adapters(model.get_adapter_mixture(mixture))
    stats = collect_routing_statistics(model, batches, mixture=mixture, progress=False)
    stats.save_json(out / "routing_statistics.json")
    try:
        files["routing_heatmap"] = stats.plot_heatmap(out / "routing_heatmap.png")
    except ImportError as err:
        log(f"  no routing heatmap: {err}")
    return {k: str(v) for k, v in files.items()}
