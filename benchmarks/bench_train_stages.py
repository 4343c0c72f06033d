"""The default run's stages, timed in rotation on the same batches (``python benchmarks/bench_train.py --part stages``).

One model is built as ``examples/oie_crosslingual.py`` builds it (plus one single LoRA of the experts' config for the
comparison); each system activates its adapters and trainable parameters before its steps, with an optimiser of its
own, as the example's stages do:

- ``<stage>``: the stage with this code (attention in float32 under CPU bf16 autocast; stage 3 with the experts'
  LoRA dropout in rank space, ``MixtureConfig.dropout_site="rank"``, as the example sets it);
- ``<stage>, before``: the same with the changes of issue 26 switched off (``attention_autocast_dtype(None)``,
  ``dropout_site="input"``; for stage 1, :class:`RowSparseAdamW` as it was before: its dense parameters updated by
  the AdamW loop, not fused, and the clipping norm through squared copies of the gradients);
- ``mixture, input dropout``: stage 3 with the attention change only;
- ``single LoRA``: stage 3's configuration with one LoRA (r=8, dropout 0.1, q/v/intermediate/output) for the mixture;
- ``floor``, ``floor, fp32``: the encoder's forward and backward on the same batches with no adapters and no weight
  gradients (the gradient flows down to the embeddings' output, as every stage's does), under the run's bf16
  autocast (where the CPU has bf16 units) and in float32.

Every other optimiser is the Trainer's default, ``adamw_torch_fused`` (``fused=True``), as in the example's stages.

A sample is one (sentence, predicate) example. Figures are medians over rounds of samples per second (wall clock);
a stage's speedup is the median over rounds of its ratio to its ``before`` arm in the same round (the two run back
to back on the same batches, so the machine's drift between rounds cancels), with the ratio of the medians beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from molora_adapters.mixture import DropoutSite
from molora_adapters.mixture.router import ROUTERS_ATTR
from molora_adapters.training import (
    MT4CROSSOIE_STAGES,
    RowSparseAdamW,
    StreamSampler,
    autocast_bf16_available,
)
from molora_adapters.training.callback import StageCallback
from molora_adapters.training.targets import resolve_stage_parameters
from molora_adapters.utils.attention import attention_autocast_dtype
from molora_adapters.utils.memory import malloc_settings, minor_page_faults

EXPERTS = ("en", "de", "zh", "es", "pt", "ar")
STAGES = ("embeddings", "backbone", "mixture")
SYSTEMS = (
    *STAGES,
    *(f"{s}, before" for s in STAGES),
    "mixture, input dropout",
    "single LoRA",
    "floor",
    "floor, fp32",
)


def _build(path: str, seed: int):
    from adapters import AutoAdapterModel, LoRAConfig

    torch.manual_seed(seed)
    model = AutoAdapterModel.from_pretrained(path, attention_probs_dropout_prob=0.0)  # as the example on CPU
    model.add_oie_head("oie", n_arg_layers=2, d_feedforward=512, attention_probs_dropout=0.0)
    lora = LoRAConfig(
        r=8, alpha=16, dropout=0.1, selfattn_lora=True, intermediate_lora=True, output_lora=True
    )
    languages = {e: e for e in EXPERTS} | {"hi": "en", "te": "en"}
    name = model.add_adapter_mixture(
        list(EXPERTS), name="oie_mixture", top_k=2, granularity="token", languages=languages,
        language_loss_coef=0.1, expert_config=lora,
    )  # fmt: skip
    model.add_adapter("single", config=lora)
    model.train()
    return model, name


class _RowSparseAdamWBefore(RowSparseAdamW):
    """:class:`RowSparseAdamW` before issue 26, for the ``embeddings, before`` system: no ``fused`` (the trainer
    removed it), and the clipping norm summed from squared float copies of the gradients (the previous code)."""

    @torch.no_grad()
    def clip_gradients(self, max_norm: float) -> torch.Tensor:
        squares = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    p.grad = p.grad.coalesce()
                    squares.append(p.grad._values().float().pow(2).sum())
                else:
                    squares.append(p.grad.float().pow(2).sum())
        total = torch.stack(squares).sum().sqrt() if squares else torch.zeros(())
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.is_sparse:
                        p.grad._values().mul_(scale.to(p.grad.dtype))
                    else:
                        p.grad.mul_(scale.to(p.grad.dtype))
        return total


class _System:
    """One timed configuration: what is active and trainable, its optimiser, its switches."""

    def __init__(self, model, name: str, mixture: str) -> None:
        self.model, self.name = model, name
        stage_name = name.split(",")[0]
        self.floor = name.startswith("floor")
        self.before = name.endswith("before")
        self.bf16 = autocast_bf16_available("cpu") and name != "floor, fp32"
        self.rank_dropout = name == "mixture"
        self.setup = None
        heads = {n for n, _ in model.named_parameters() if n.startswith("heads.")}
        if self.floor:
            self.trainable: set[str] = set()
        elif name == "single LoRA":
            self.setup = "single"
            self.trainable = heads | {n for n, _ in model.named_parameters() if ".loras.single." in n}
        else:
            stage = next(s for s in MT4CROSSOIE_STAGES if s.name == stage_name)
            if stage.trains_mixture:
                self.setup = model.get_adapter_mixture(mixture)
                StageCallback.enter_stage(StageCallback.__new__(StageCallback), model, MT4CROSSOIE_STAGES, 2)
            else:
                model.set_active_adapters(None)
            self.trainable = resolve_stage_parameters(model, stage)
        self.routers = getattr(model.base_model, ROUTERS_ATTR)[mixture]
        self.sparse = stage_name == "embeddings"
        params = [p for n, p in model.named_parameters() if n in self.trainable]
        if not params:
            self.opt = None
        elif self.sparse and self.before:  # stage 1 before issue 26: `fused` dropped, the old clipping
            self.opt = _RowSparseAdamWBefore(params, lr=1e-6, weight_decay=0.01, max_grad_norm=1.0)
        elif self.sparse:  # the example's stage 1: row-sparse embedding updates, dense parameters fused
            self.opt = RowSparseAdamW(params, lr=1e-6, weight_decay=0.01, max_grad_norm=1.0, fused=True)
        else:  # the Trainer's default optimiser (adamw_torch_fused)
            self.opt = torch.optim.AdamW(params, lr=1e-6, weight_decay=0.01, fused=True)

    def _enter(self) -> None:
        model = self.model
        model.set_active_adapters(self.setup)
        for n, p in model.named_parameters():
            p.requires_grad_(n in self.trainable)
        model.get_input_embeddings().sparse = self.sparse
        self.routers.config.dropout_site = DropoutSite.RANK if self.rank_dropout else DropoutSite.INPUT

    def step(self, batch: dict) -> float:
        """One training step on ``batch``; returns its wall seconds."""
        self._enter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        attention = attention_autocast_dtype(None) if self.before else contextlib.nullcontext()
        start = time.perf_counter()
        with autocast, attention:
            if self.floor:
                encoder = self.model.base_model
                embeds = encoder.embeddings(input_ids=batch["input_ids"]).detach().requires_grad_()
                out = encoder.encoder(embeds, attention_mask=_extended(batch["attention_mask"], embeds.dtype))
                loss = out.last_hidden_state.float().square().mean()
            else:
                loss = self.model(**batch, return_dict=True).loss
        loss.backward()
        if self.opt is not None:
            if not self.sparse:
                torch.nn.utils.clip_grad_norm_([p for p in self.opt.param_groups[0]["params"]], 1.0)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def _extended(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive ``(B, 1, 1, T)`` attention mask the encoder's SDPA path takes."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _batches(tokenizer, records, n: int, batch_size: int, seed: int) -> list[dict]:
    from molora_adapters.oie import DataCollatorForOIE, build_oie_features

    feats = build_oie_features(records, tokenizer, max_length=64, layout="sentence")
    columns = [c for c in feats.column_names if c not in ("record_id", "length")]
    order = StreamSampler(len(feats), seed=seed, batch_size=batch_size, lengths=feats["length"])
    positions = order.positions(0, n * batch_size).tolist()
    collate = DataCollatorForOIE(tokenizer.pad_token_id)
    return [
        collate(list(feats.select(positions[i : i + batch_size]).select_columns(columns)))
        for i in range(0, n * batch_size, batch_size)
    ]


def run_stages(args, argv: list[str] | None, root: Path, data: Callable) -> int:
    """The ``--part stages`` run (see the module docstring); merges its keys into ``args.out``."""
    from transformers import AutoTokenizer

    from molora_adapters.models import resolve_model_name_or_path
    from molora_adapters.utils.io import atomic_write_text

    logging.getLogger("adapters").setLevel(logging.ERROR)  # "none are activated" on every stage-1/2 forward
    rounds = args.rounds or 7
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if args.threads:
        torch.set_num_threads(args.threads)
    path = resolve_model_name_or_path("embedded:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(path, fix_mistral_regex=False)
    batches = _batches(tokenizer, data(args.sentences, seed=0), (rounds + 1) * args.steps, args.batch_size, 0)
    model, mixture = _build(path, seed=0)
    systems = {n: _System(model, n, mixture) for n in SYSTEMS}
    for system in systems.values():  # warm-up
        system.step(batches[0])
    rates: dict[str, list[float]] = {n: [] for n in SYSTEMS}
    step_seconds: dict[str, list[float]] = {n: [] for n in SYSTEMS}
    faults: dict[str, list[int]] = {n: [] for n in SYSTEMS}  # minor page faults per step
    for rnd in range(rounds):
        names = SYSTEMS[rnd % len(SYSTEMS) :] + SYSTEMS[: rnd % len(SYSTEMS)]  # rotating start
        for n in names:
            seconds = samples = 0.0
            for batch in batches[1 + rnd * args.steps : 1 + (rnd + 1) * args.steps]:
                before = minor_page_faults()
                s = systems[n].step(batch)
                faults[n].append(minor_page_faults() - before)
                step_seconds[n].append(s)
                seconds, samples = seconds + s, samples + int(batch["predicate_mask"].shape[0])
            rates[n].append(samples / seconds)
        print(
            f"round {rnd + 1}/{rounds}: " + ", ".join(f"{n} {rates[n][-1]:.1f}" for n in SYSTEMS), flush=True
        )
    med = {n: statistics.median(v) for n, v in rates.items()}
    floor, floor32 = med["floor"], med["floor, fp32"]
    # a stage and its "before" run back to back on the same batches in every round: the median of the per-round
    # ratios cancels the machine's drift between rounds (the ratio of the medians does not)
    ratios = {s: [a / b for a, b in zip(rates[s], rates[f"{s}, before"], strict=True)] for s in STAGES}
    stages = [
        {
            "name": s,
            "samples_per_second": round(med[s], 2),
            "floor_samples_per_second": round(floor, 2),
            "floor_fp32_samples_per_second": round(floor32, 2),
            "before_samples_per_second": round(med[f"{s}, before"], 2),
            "speedup": round(statistics.median(ratios[s]), 3),
            "speedup_per_round": [round(r, 3) for r in ratios[s]],
            "speedup_of_medians": round(med[s] / med[f"{s}, before"], 3),
            "fraction_of_floor": round(med[s] / floor, 3),
        }
        for s in STAGES
    ]
    single = statistics.median(step_seconds["single LoRA"])
    report = {
        "stages": stages,
        "mixture_vs_single_lora_step": round(statistics.median(step_seconds["mixture"]) / single, 3),
        "mixture_input_dropout_vs_single_lora_step": round(
            statistics.median(step_seconds["mixture, input dropout"]) / single, 3
        ),
        "stage_systems_samples_per_second": {n: round(v, 2) for n, v in med.items()},
        "stage_systems_minor_page_faults_per_step": {n: v for n, v in faults.items()},
        "stages_meta": {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "load_average_at_start": load_at_start,
            "threads": torch.get_num_threads(),
            "bf16_autocast": autocast_bf16_available("cpu"),
            "malloc": malloc_settings() or "glibc defaults",
            "rounds": rounds,
            "steps_per_round": args.steps,
            "batch_size": args.batch_size,
            "command": "python benchmarks/bench_train.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
    }
    lines = [
        "| stage | samples/s | before | speedup (median of rounds) | per round | ratio of medians | floor (bf16) "
        "| floor (fp32) | of floor |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['samples_per_second']:.1f} | {r['before_samples_per_second']:.1f} | "
            f"{r['speedup']:.2f}x | {' '.join(f'{x:.2f}' for x in r['speedup_per_round'])} | "
            f"{r['speedup_of_medians']:.2f}x | {floor:.1f} | {floor32:.1f} | {r['fraction_of_floor']:.2f} |"
            for r in stages
        ),
        "",
        f"stage-3 mixture step / single-LoRA step: {report['mixture_vs_single_lora_step']:.2f}x "
        f"(with input dropout, as the single LoRA: {report['mixture_input_dropout_vs_single_lora_step']:.2f}x)",
    ]
    print("\n".join(lines))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    atomic_write_text(out, json.dumps({**previous, **report}, indent=2))
    atomic_write_text(out.with_name(out.stem + "_stages.md"), "\n".join(lines) + "\n")
    return 0
