"""Cross-lingual extractive QA with X-STA (arXiv 2311.06758) on XQuAD, end to end and offline.

1. Encoder: the embedded multilingual-e5-small by default (offline), or any BERT / RoBERTa / XLM-R id or path.
2. Data: the XQuAD copy shipped with the package (12 languages, CC BY-SA 4.0), split by article with a fixed seed;
   English windows paired with their parallel target-language windows (one language pair per batch).
3. X-STA: GDKS knowledge sharing at one layer, the ATGC teacher-guided head and the MGSA losses, trained with
   ``XSTATrainer`` (full fine-tuning; ``--lora`` trains a LoRA adapter instead).
4. Evaluation on held-out articles, SQuAD v1.1 EM/F1: paired (English parallel text beside the target) and
   source-free (the target alone).
5. Persistence: ``save_xsta`` / ``load_xsta`` and ``save_pretrained`` / ``from_pretrained`` give the same answers;
   the saved directory works with ``molora answer``.

    python examples/xsta_xquad.py                      # a few minutes on 2 CPU cores, offline
    python examples/xsta_xquad.py --steps 2000 --max-length 384 --doc-stride 128 --eval-questions 0   # on a GPU

Writes ``results.json`` and the trained model into ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default="embedded:multilingual-e5-small", help="HF id, local path or embedded:<name>"
    )
    p.add_argument("--languages", nargs="+", default=["de", "zh"], help="Target languages (XQuAD codes).")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument(
        "--batch-pairs", type=int, default=4, help="Pairs per step (the model sees twice as many rows)."
    )
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--layer", type=int, default=7, help="GDKS layer (0-based).")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--doc-stride", type=int, default=64)
    p.add_argument("--eval-questions", type=int, default=10, help="Held-out questions per language (0: all).")
    p.add_argument("--lora", action="store_true", help="Train a LoRA adapter instead of the whole encoder.")
    p.add_argument("--output-dir", default="xsta_xquad_out")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from adapters import AutoAdapterModel
    from transformers import AutoTokenizer, TrainingArguments

    import molora_adapters  # noqa: F401  (registers the plugin)
    from molora_adapters.models import resolve_model_name_or_path
    from molora_adapters.xsta import (
        XQUAD_LANGUAGES,
        DataCollatorForXSTA,
        XSTAQuestionAnsweringPipeline,
        XSTATrainer,
        build_features,
        build_pair_features,
        load_xquad,
        predict_answers,
        split_articles,
        squad_scores,
    )

    bad = [lang for lang in args.languages if lang not in XQUAD_LANGUAGES or lang == "en"]
    if bad:
        print(
            f"error: `--languages` {bad}: choose non-English XQuAD codes {list(XQUAD_LANGUAGES[1:])}",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    # 1. encoder
    model_dir = resolve_model_name_or_path(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoAdapterModel.from_pretrained(model_dir, attention_probs_dropout_prob=0.0)

    # 2. data: article-level split, windows, pairs
    data, report = load_xquad(["en", *args.languages])
    train_titles, test_titles = split_articles([e.title for e in data["en"]], n_folds=4, fold=0, seed=0)
    feats = {
        lang: build_features(
            tokenizer,
            [e for e in data[lang] if e.title in set(train_titles)],
            args.max_length,
            args.doc_stride,
        )
        for lang in ["en", *args.languages]
    }
    pairs = [p for lang in args.languages for p in build_pair_features(feats["en"], feats[lang])]
    print(f"XQuAD: {len(train_titles)} train / {len(test_titles)} test articles, {len(pairs)} training pairs")

    # 3. X-STA
    model.add_xsta("xsta", layer=args.layer, languages=["en", *args.languages])
    if args.lora:
        model.add_adapter("qa_lora", config="lora")
        model.train_xsta("xsta", adapter_setup="qa_lora")
    else:
        model.train_xsta("xsta")
    targs = TrainingArguments(
        output_dir=str(out_dir / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_pairs,
        learning_rate=args.lr,
        warmup_ratio=0.1,
        logging_steps=max(1, args.steps // 5),
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = XSTATrainer(
        model=model, args=targs, train_dataset=pairs, data_collator=DataCollatorForXSTA(tokenizer)
    )
    t0 = time.time()
    trainer.train()
    train_seconds = time.time() - t0
    model.eval()

    # 4. evaluation: paired and source-free
    pipe = XSTAQuestionAnsweringPipeline(
        model, tokenizer, max_length=args.max_length, doc_stride=args.doc_stride
    )
    english = {e.id: e for e in data["en"]}
    results: dict = {"train_seconds": round(train_seconds, 1), "loader": report.summary(), "scores": {}}
    for lang in args.languages:
        test = [e for e in data[lang] if e.title in set(test_titles)][: args.eval_questions or None]
        refs = {e.id: [a[0] for a in e.answers] for e in test}
        for mode, sources in (("paired", english), ("source_free", None)):
            scores = squad_scores(predict_answers(pipe, test, sources), refs)
            results["scores"][f"{lang}/{mode}"] = {k: round(v, 2) for k, v in scores.items()}
            print(f"{lang} {mode:11s}: EM {scores['exact_match']:5.1f}  F1 {scores['f1']:5.1f}")

    # 5. persistence: both routes reproduce the answers
    sample = [e for e in data[args.languages[0]] if e.title in set(test_titles)][:3]
    before = predict_answers(pipe, sample, None)
    model.save_xsta(out_dir / "xsta", "xsta")
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
    reloaded = AutoAdapterModel.from_pretrained(out_dir / "model")
    reloaded.active_head = "xsta"
    after = predict_answers(
        XSTAQuestionAnsweringPipeline(
            reloaded, tokenizer, max_length=args.max_length, doc_stride=args.doc_stride
        ),
        sample,
        None,
    )
    results["reload_identical"] = before == after
    print(f"save_pretrained/from_pretrained reproduces the answers: {before == after}")
    example = sample[0]
    print(
        f"Q ({example.language}): {example.question}\nA: {before[example.id]!r}  (gold: {example.answers[0][0]!r})"
    )
    print(f"Answer questions from a file: molora answer --model {out_dir / 'model'} --input questions.jsonl")
    (out_dir / "results.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
