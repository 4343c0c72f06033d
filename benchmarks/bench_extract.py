"""Extraction speed: ``OIEPipeline.extract`` against the encoder-only forward over the same batches (the floor).

Run from the repository root::

    python benchmarks/bench_extract.py [--model DIR] [--sentences 634] [--rounds 3] [--quick]
        [--out benchmarks/results/bench_extract.json]

The sentences are CaRB en test (and, with ``--languages``, other shipped test sets). The floor is the
encoder alone (``model.base_model``) run over exactly the batches the pipeline forms (its chunks, grouped by
length, ``--batch-size`` per batch) at the pipeline's precision: everything above it is the OIE head, the
per-predicate argument tagger and the decoding. Timings alternate floor / pipeline in each round and report the
best round, so a busy machine affects both alike. ``--model`` is a directory saved with ``save_pretrained``
(with its OIE head); without it the embedded multilingual-e5-small gets a fresh OIE head whose predicate tagger
is biased to fire about twice per sentence (and ``min_args=0``), so that the argument tagger has work.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


PREDICATE_BIAS = 0.25  # logit of "O" over "P-B" / "P-I" for the fresh head: about 2 predicates per sentence


def build_pipeline(model_dir: str | None, precision: str, batch_size: int):
    import torch
    from transformers import AutoTokenizer

    from molora_adapters.oie import OIEPipeline

    kwargs = {"precision": precision} if "precision" in inspect.signature(OIEPipeline).parameters else {}
    if model_dir:
        return OIEPipeline.from_pretrained(model_dir, progress=False, **kwargs)
    from adapters import AutoAdapterModel

    import molora_adapters  # noqa: F401
    from molora_adapters.models import resolve_model_name_or_path
    from molora_adapters.oie import add_oie_head

    path = resolve_model_name_or_path("embedded:multilingual-e5-small")
    torch.manual_seed(0)
    model = AutoAdapterModel.from_pretrained(path)
    add_oie_head(model, "oie", n_arg_layers=2, d_feedforward=512)
    with torch.no_grad():  # a random predicate tagger; the bias sets how often it fires
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([PREDICATE_BIAS, 0.0, 0.0]))
    model.eval()
    tok = AutoTokenizer.from_pretrained(path, fix_mistral_regex=False)
    return OIEPipeline(model, tok, progress=False, min_args=0, **kwargs)  # every predicate becomes a tuple


def load_sentences(languages: list[str], n: int) -> list[tuple[str, str]]:
    from molora_adapters.oie.benchmarks import load_benchmark

    out = []
    for lang in languages:
        bench = "benchie" if lang == "de" else "carb"
        sents = list(dict.fromkeys(s.strip() for s in load_benchmark(bench, lang)["sentence"]))
        out.extend((s, lang) for s in sents[:n])
    return out


def _batches(pipe, sentences: list[str], languages: list[str], batch_size: int):
    """The pipeline's own chunks, grouped by length as ``extract`` does."""
    _, chunks = pipe.preprocess(sentences, languages)
    chunks.sort(key=lambda c: len(c.input_ids))
    return [chunks[s : s + batch_size] for s in range(0, len(chunks), batch_size)]


def encoder_floor(pipe, batches) -> float:
    import torch

    try:
        from molora_adapters.utils.precision import autocast, resolve_precision

        ctx = autocast(resolve_precision(getattr(pipe, "precision", "fp32"), "cpu"), "cpu")
    except ImportError:  # an older tree without the precision helpers: float32
        import contextlib

        ctx = contextlib.nullcontext()
    pad = pipe.tokenizer.pad_token_id
    t0 = time.perf_counter()
    with torch.inference_mode(), ctx:
        for batch in batches:
            length = max(len(c.input_ids) for c in batch)
            ids = torch.full((len(batch), length), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), length), dtype=torch.long)
            for b, c in enumerate(batch):
                ids[b, : len(c.input_ids)] = torch.tensor(c.input_ids)
                mask[b, : len(c.input_ids)] = 1
            pipe.model.base_model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default=None, help="a saved OIE model directory (default: fresh head, see above)"
    )
    p.add_argument("--languages", default="en", help="comma-separated test-set languages (carb; de: benchie)")
    p.add_argument("--sentences", type=int, default=634, help="sentences per language (634 = all of CaRB en)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="fp32")
    p.add_argument("--quick", action="store_true", help="200 sentences, 2 rounds")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.sentences, args.rounds = min(args.sentences, 200), min(args.rounds, 2)
    import torch

    pipe = build_pipeline(args.model, args.precision, args.batch_size)
    data = load_sentences([x.strip() for x in args.languages.split(",") if x.strip()], args.sentences)
    sentences, languages = [s for s, _ in data], [lg for _, lg in data]
    batches = _batches(pipe, sentences, languages, args.batch_size)
    pipe.extract(sentences[: args.batch_size], language=languages[: args.batch_size])  # warm-up
    floor, full, exts = [], [], None
    for _ in range(args.rounds):
        floor.append(encoder_floor(pipe, batches))
        t0 = time.perf_counter()
        exts = pipe.extract(sentences, language=languages, batch_size=args.batch_size)
        full.append(time.perf_counter() - t0)
    n = len(sentences)
    result = {
        "sentences": n,
        "languages": args.languages,
        "batch_size": args.batch_size,
        "precision": getattr(pipe, "precision", "fp32"),
        "model": args.model or "embedded:multilingual-e5-small + fresh OIE head (biased predicate tagger)",
        "extractions_per_sentence": round(sum(map(len, exts)) / n, 2),
        "encoder_floor_sentences_per_second": round(n / min(floor), 1),
        "pipeline_sentences_per_second": round(n / min(full), 1),
        "pipeline_over_floor": round(min(full) / min(floor), 2),
        "rounds_seconds": {"floor": [round(x, 2) for x in floor], "pipeline": [round(x, 2) for x in full]},
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared machine: timings are indicative)",
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from molora_adapters.utils.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
