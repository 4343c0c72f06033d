"""OIE training throughput, before vs after the training-path changes, side by side in one process (rotation).

Every configuration trains the embedded multilingual-e5-small with a Multi2OIE head on the same English + es/pt
training sentences, batch 16 sentence rows (before: 16 (sentence, predicate) rows), max length 64, full fine-tuning
(word embeddings + encoder + head: the most expensive stage). Configurations are timed in rotation, a few steps
each per round, so that a shared machine's load hits them alike; the figure is training *samples* (= (sentence,
predicate) examples, the unit both layouts share) per second, median over rounds.

- ``before``: one row per (sentence, predicate), random batches, dense AdamW, fp32, attention-probability dropout;
- ``after``: one row per sentence (the encoder runs once for all its predicates), length-grouped batches
  ([`StreamSampler`]), row-sparse embedding updates ([`RowSparseAdamW`]), bf16 autocast where the CPU has bf16
  units, no attention-probability dropout; and the ablations that remove one change each;
- ``head:*``: the ``after`` path with other argument-tagger sizes (the head size is chosen from these figures).

    python benchmarks/bench_train.py                   # ~5 min on 2 quiet cores
    python benchmarks/bench_train.py --rounds 2 --steps 2   # smoke

Writes ``benchmarks/results/bench_train.json`` and prints a markdown table.

``--part stages`` times the default run's three stages instead (``examples/oie_crosslingual.py``: e5-small, 2 x 512
head, 6 LoRA experts r=8 with dropout 0.1 on q/v/intermediate/output, top-2 token routing, batch 16, max length 64,
bf16 autocast where the CPU has bf16 units), in rotation on the same batches (see :mod:`bench_train_stages`), and
adds ``stages`` and ``mixture_vs_single_lora_step`` to the JSON (the rest of it is kept)::

    python benchmarks/bench_train.py --part stages     # ~4 min on 2 quiet cores (measured: 5.5 min loaded, 1 thread)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import molora_adapters  # noqa: E402,F401
from molora_adapters.training import RowSparseAdamW, StreamSampler, autocast_bf16_available  # noqa: E402

BASE = dict(layout="sentence", lengths=True, sparse=True, bf16=True, attn_dropout=False, head=(2, 512))
CONFIGS = {
    "before": dict(
        layout="predicate", lengths=False, sparse=False, bf16=False, attn_dropout=True, head=(2, 512)
    ),
    "after": dict(BASE),
    "after, per-predicate rows": dict(BASE, layout="predicate"),
    "after, random batches": dict(BASE, lengths=False),
    "after, dense AdamW": dict(BASE, sparse=False),
    "after, fp32": dict(BASE, bf16=False),
    "after, attention dropout": dict(BASE, attn_dropout=True),
    "head: 1 x 512": dict(BASE, head=(1, 512)),
    "head: 4 x 2048 (Multi2OIE)": dict(BASE, head=(4, 2048)),
}
DEFAULT = "before;after;after, per-predicate rows;after, random batches;after, fp32;after, dense AdamW"


def _data(n_sentences: int, seed: int):
    import datasets

    from molora_adapters.data import load_training_corpus
    from molora_adapters.oie.benchmarks import load_benchmark

    en = datasets.concatenate_datasets([load_training_corpus(c) for c in ("oie2016", "imojie", "lsoie-gpt")])
    en = en.shuffle(seed=seed).select(range(n_sentences))
    parts = [en] + [
        load_benchmark("reoie2016", lang).select(range(n_sentences // 4)) for lang in ("es", "pt")
    ]
    return datasets.concatenate_datasets(parts)


class Runner:
    """One configuration: a batch stream over its features, on a model + optimiser shared by every configuration
    with the same model-side settings (attention dropout, head, sparse updates), to keep memory low."""

    _shared: dict[tuple, tuple] = {}

    def __init__(self, cfg: dict, path: str, tokenizer, features: dict, batch_size: int, seed: int) -> None:
        from molora_adapters.oie import DataCollatorForOIE

        self.cfg = cfg
        key = (cfg["attn_dropout"], cfg["head"], cfg["sparse"])
        if key not in self._shared:
            self._shared[key] = self._build(cfg, path, seed)
        self.model, self.opt, self.params = self._shared[key]
        self.feats = features[cfg["layout"]]
        self.collate = DataCollatorForOIE(tokenizer.pad_token_id)
        n = len(self.feats)
        sampler = StreamSampler(
            n, seed=seed, batch_size=batch_size, lengths=self.feats["length"] if cfg["lengths"] else None
        )
        self.order = sampler.positions(0, n * 20).tolist()
        self.pos, self.batch_size = 0, batch_size
        self.bf16 = cfg["bf16"] and autocast_bf16_available("cpu")
        self.columns = [c for c in self.feats.column_names if c not in ("record_id", "length")]

    @staticmethod
    def _build(cfg: dict, path: str, seed: int):
        from adapters import AutoAdapterModel

        torch.manual_seed(seed)
        kwargs = {} if cfg["attn_dropout"] else {"attention_probs_dropout_prob": 0.0}
        model = AutoAdapterModel.from_pretrained(path, **kwargs)
        layers, ff = cfg["head"]
        head_kw = {} if cfg["attn_dropout"] else {"attention_probs_dropout": 0.0}
        model.add_oie_head("oie", n_arg_layers=layers, d_feedforward=ff, **head_kw)
        model.train()
        model.get_input_embeddings().sparse = cfg["sparse"]
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg["sparse"]:
            opt = RowSparseAdamW(params, lr=1e-4, weight_decay=0.01, max_grad_norm=1.0)
        else:
            opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        return model, opt, params

    def step(self) -> tuple[float, int, int]:
        """One optimisation step; returns (wall seconds, CPU seconds of this process, samples, real-token share)."""
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        rows = self.feats.select(idx).select_columns(self.columns)
        t0, c0 = time.perf_counter(), time.process_time()
        batch = self.collate(list(rows))
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with ctx:
            out = self.model(**batch, return_dict=True)
        out.loss.backward()
        if not self.cfg["sparse"]:
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        samples = int(batch["predicate_mask"].shape[0])
        real = float(batch["attention_mask"].float().mean())
        return seconds, cpu, samples, real


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["configs", "stages"], default="configs")
    p.add_argument("--rounds", type=int, default=None, help="rotation rounds (default: 4, stages: 7)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration per round")
    p.add_argument(
        "--sentences", type=int, default=600, help="English training sentences (+ 1/4 each es, pt)"
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--configs", default=DEFAULT, help="';'-separated subset of: " + "; ".join(CONFIGS))
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 avoids spin-waits on a crowded machine)"
    )
    p.add_argument(
        "--malloc",
        choices=["default", "retain"],
        default="default",
        help="default: glibc's adaptive thresholds (the example's setting); retain: glibc keeps freed memory "
        "(molora_adapters.utils.memory.retain_freed_memory; every system of the run alike)",
    )
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_train.json"))
    args = p.parse_args(argv)
    if args.malloc == "retain":
        from molora_adapters.utils.memory import retain_freed_memory

        retain_freed_memory()
    if args.part == "stages":
        from bench_train_stages import run_stages

        return run_stages(args, argv, ROOT, _data)
    args.rounds = args.rounds or 4
    names = [c.strip() for c in args.configs.split(";") if c.strip()]
    bad = [c for c in names if c not in CONFIGS]
    if bad:
        p.error(f"--configs: unknown {bad}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_at_start = _load_average()  # a shared machine shows in the results
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    from molora_adapters.models import resolve_model_name_or_path
    from molora_adapters.oie import build_oie_features

    path = resolve_model_name_or_path("embedded:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(path, fix_mistral_regex=False)
    records = _data(args.sentences, seed=0)
    features = {
        layout: build_oie_features(records, tokenizer, max_length=64, layout=layout)
        for layout in ("sentence", "predicate")
    }
    runners = {n: Runner(CONFIGS[n], path, tokenizer, features, args.batch_size, seed=0) for n in names}
    for r in runners.values():  # warm-up
        r.step()
    rates: dict[str, list[float]] = {n: [] for n in names}
    steps: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    cpu_rates: dict[str, list[float]] = {n: [] for n in names}
    real: dict[str, list[float]] = {n: [] for n in names}
    for rnd in range(args.rounds):
        for n in names:
            secs = csecs = samples = 0.0
            for _ in range(args.steps):
                s, c, k, f = runners[n].step()
                secs, csecs, samples = secs + s, csecs + c, samples + k
                steps[n].append(s)
                cpu[n].append(c)
                real[n].append(f)
            rates[n].append(samples / secs)
            cpu_rates[n].append(samples / csecs)
        print(
            f"round {rnd + 1}/{args.rounds}: " + ", ".join(f"{n} {rates[n][-1]:.1f}" for n in names),
            flush=True,
        )
    base = statistics.median(rates["before"]) if "before" in rates else None
    cpu_base = statistics.median(cpu_rates["before"]) if "before" in rates else None
    rows = []
    for n in names:
        med = statistics.median(rates[n])
        rows.append(
            {
                "config": n,
                **CONFIGS[n],
                "samples_per_second": round(med, 2),
                "seconds_per_step": round(statistics.median(steps[n]), 3),
                "cpu_seconds_per_step": round(statistics.median(cpu[n]), 3),
                "samples_per_cpu_second": round(statistics.median(cpu_rates[n]), 2),
                "cpu_speedup_vs_before": round(statistics.median(cpu_rates[n]) / cpu_base, 2)
                if cpu_base
                else None,
                "real_token_share": round(statistics.mean(real[n]), 3),
                "speedup_vs_before": round(med / base, 2) if base else None,
            }
        )
    lines = [
        "| configuration | samples/s (wall) | s/step (wall) | CPU s/step | samples/CPU-s | real tokens | "
        "vs before (wall) | vs before (CPU) |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['config']} | {r['samples_per_second']:.1f} | {r['seconds_per_step']:.3f} | "
            f"{r['cpu_seconds_per_step']:.3f} | {r['samples_per_cpu_second']:.2f} | {r['real_token_share']:.0%} | "
            f"{r['speedup_vs_before'] or '-'}x | {r['cpu_speedup_vs_before'] or '-'}x |"
            for r in rows
        ),
    ]
    print("\n".join(lines))
    from molora_adapters.utils.io import atomic_write_text

    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_start": load_at_start,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "bf16_autocast": autocast_bf16_available("cpu"),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "batch_size": args.batch_size,
        "command": "python benchmarks/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    atomic_write_text(Path(args.out), json.dumps({"meta": meta, "results": rows}, indent=2))
    atomic_write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
