"""Mixture-of-LoRA speed against one LoRA and peft X-LoRA, side by side in one process, in rotation.

Two parts, both top-2 token routing on the attention q/v projections (adapters' and peft's LoRA default):

- **targets**: E=6 experts of rank 8, float32, batch 16 x 128 on three shapes (BERT-base-sized encoder, small
  encoder, base-sized causal LM). Systems: base, one LoRA, the mixture, the naive expert loop (encoders) and peft
  X-LoRA (causal LM; it needs one). Targets: mixture forward <= 1.05x and train step <= 1.10x one LoRA, and at
  least 2x faster than X-LoRA.
- **grid**: E in {2, 6, 16, 32} x r in {8, 64} x {encoder, causal LM} x {float32, bfloat16}, on smaller shapes so
  that it runs in bounded time on a shared 2-core CPU. Every E of one (architecture, dtype, r) cell runs in the
  same rotation as its single LoRA and X-LoRA. Target: E=16 forward <= 1.10x one LoRA.

Every ratio comes with its FLOP floor per token per adapted linear, ``base + k * 2r(d + o)`` over
``base + 2r(d + o)`` (``base = 2 d o``): what top-k costs at best, whatever the number of experts.

    python benchmarks/bench_mixture.py                 # targets + full grid (long on a CPU)
    python benchmarks/bench_mixture.py --quick         # targets at batch 8 x 128 + grid on 4-layer shapes
    python benchmarks/bench_mixture.py --part grid --quick --plot
    python benchmarks/bench_mixture.py --committed --threads 2 --plot   # the committed run, bounded (below)

``--committed`` is the run behind the README: the targets at E=6 and E=16 (top-2, r=8, float32, batch 16 x 128, the
issue's protocol) on all three shapes, X-LoRA side by side on the causal LM, then the kernels, then the 4-layer grid
cells (float32 r=8 first) while ``--budget-min`` (default 16 minutes for the whole run) allows; skipped cells are
listed under ``errors``. The report's "Targets of issue 16" table says which targets were met.

Writes ``benchmarks/results/bench_mixture_<device>[_quick].json`` (and ``.png`` with ``--plot``) and prints
markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import molora_adapters  # noqa: E402,F401  (registers the plugin)
from molora_adapters.mixture.compute import expert_compute, use_sparse  # noqa: E402
from molora_adapters.mixture.reference import use_reference_forward  # noqa: E402
from molora_adapters.mixture.weights import _CACHE_ATTR  # noqa: E402
from molora_adapters.utils.memory import malloc_settings, retain_freed_memory  # noqa: E402

TOP_K = 2
TARGET_EXPERTS, TARGET_RANK = 6, 8
TARGET_SHAPES = {
    "bert-base-sized": (
        "encoder",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    ),
    "small-encoder": (
        "encoder",
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    ),
    "causal-lm-base-sized": (
        "causal",
        dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    ),
}
GRID_SHAPES = {  # (full, quick)
    "encoder": (
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
        dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, intermediate_size=1024),
    ),
    "causal": (
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
        dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, intermediate_size=1024),
    ),
}
VOCAB = 8000  # grid: a small vocabulary keeps the LM head from hiding the adapted layers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _run_once(model, batch, extra: dict, train: bool, device: torch.device) -> float:
    """Seconds for one forward (eval, no grad) or one train step (train-mode forward + backward, the mixture's
    auxiliary loss included)."""
    _sync(device)
    t0 = time.perf_counter()
    if not train:  # inference, as a pipeline runs it: no router outputs requested
        model.eval()
        with torch.no_grad():
            model(**batch, **{k: v for k, v in extra.items() if k != "output_router_logits"})
    else:
        model.train()
        out = model(**batch, **extra)
        logits = (
            out[0] if isinstance(out, tuple) else (out.logits if "logits" in out else out.last_hidden_state)
        )
        loss = logits.float().pow(2).mean()
        if isinstance(out, dict) and out.get("mixture_aux_loss") is not None:
            loss = loss + out["mixture_aux_loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - t0


def _round_robin(systems: dict, batch, repeats: int, device, desc: str) -> dict[str, dict[str, float]]:
    """Time every system in rotation (one warm-up round), so that load changes of the machine hit all alike.

    Each round times all forwards, then all train steps, starting from another system each round: every timed
    forward follows a forward and every train step a train step. (Timing a system's forward right after the previous
    system's train step made forwards that follow a backward 3-8% slower on CPU, allocator and cache state left by
    the backward, while one LoRA, run right after the base model's forward, escaped it.)

    ``systems`` maps a name to ``(model, activate, extra_kwargs, context_factory, trains)``.
    """
    times = {name: {"forward": [], "train_step": []} for name in systems}
    names = list(systems)
    for round_ in tqdm(range(repeats + 1), desc=desc, leave=False):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for train in (False, True):
            for i, name in enumerate([order[-1], *order]):  # the first run only warms up the kind of work
                model, activate, extra, ctx, trains = systems[name]
                if train and not trains:
                    continue
                activate()
                with ctx():
                    elapsed = _run_once(model, batch, extra, train, device)
                if round_ and i:  # round 0 is the warm-up
                    times[name]["train_step" if train else "forward"].append(elapsed)
    return {
        n: {
            "forward_s": statistics.median(t["forward"]),
            "train_step_s": statistics.median(t["train_step"]) if t["train_step"] else float("nan"),
        }
        for n, t in times.items()
    }


def _lora_config(rank: int):
    from adapters import LoRAConfig

    return LoRAConfig(r=rank, alpha=2 * rank, dropout=0.0, init_weights="bert")


def _hf_config(arch: str, dims: dict, vocab: int):
    from transformers import BertConfig, LlamaConfig

    if arch == "encoder":
        return BertConfig(vocab_size=vocab, max_position_embeddings=512, **dims)
    return LlamaConfig(
        vocab_size=vocab, num_key_value_heads=dims["num_attention_heads"], use_cache=False, **dims
    )


def _adapters_model(config, arch: str, device, dtype):
    import adapters
    from adapters import AutoAdapterModel
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    if arch == "causal":
        model = AutoModelForCausalLM.from_config(config)
        adapters.init(model)
    else:
        model = AutoAdapterModel.from_config(config)
    return model.to(device=device, dtype=dtype)


def _adapters_systems(
    config, arch, device, dtype, rank: int, expert_counts, naive: bool, both_paths: bool = False
) -> dict:
    """One backbone with a single LoRA and one mixture per expert count; systems differ in what is active."""
    model = _adapters_model(config, arch, device, dtype)
    model.add_adapter("single", _lora_config(rank))
    systems = {
        "base": (model, lambda: model.set_active_adapters(None), {}, nullcontext, False),
        "single_lora": (model, lambda: model.train_adapter("single"), {}, nullcontext, True),
    }
    for n in expert_counts:
        experts = [f"e{n}_{i}" for i in range(n)]
        name = model.add_adapter_mixture(
            experts, name=f"mix{n}", top_k=TOP_K, expert_config=_lora_config(rank)
        )
        activate = (lambda nm: lambda: model.train_adapter_mixture(nm))(name)
        extra = {"output_router_logits": True}
        if n <= TOP_K or not both_paths:
            systems[f"mixture_E{n}"] = (model, activate, extra, nullcontext, True)
        else:  # both expert paths, measured side by side; "mixture_E{n}" is the one the switch picks
            for mode in ("dense", "sparse"):
                ctx = (lambda m: lambda: expert_compute(m))(mode)
                systems[f"mixture_E{n}_{mode}"] = (model, activate, extra, ctx, True)
        if naive:
            systems[f"naive_loop_E{n}"] = (
                model,
                activate,
                {"output_router_logits": True},
                use_reference_forward,
                True,
            )
    model.to(device=device, dtype=dtype)
    return systems


def _xlora_model(config, device, dtype, rank: int, n_experts: int, tmp: str):
    """peft X-LoRA over ``n_experts`` numbered LoRA experts (X-LoRA crashes on names such as "en"/"de")."""
    from peft import LoraConfig, XLoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config.use_cache = False
    first = os.path.join(tmp, f"r{rank}_0")
    if not os.path.isdir(first):
        torch.manual_seed(1)
        lora = get_peft_model(
            AutoModelForCausalLM.from_config(config),
            LoraConfig(
                r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], init_lora_weights="gaussian"
            ),
        )
        lora.save_pretrained(first)
    paths = {}
    for i in range(n_experts):  # same weights in every expert: X-LoRA's speed does not depend on them
        path = os.path.join(tmp, f"r{rank}_{i}")
        if not os.path.isdir(path):
            shutil.copytree(first, path)
        paths[str(i)] = path
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config)
    base.config.use_cache = False
    xcfg = XLoraConfig(
        task_type="CAUSAL_LM",
        hidden_size=config.hidden_size,
        adapters=paths,
        xlora_depth=1,
        top_k_lora=TOP_K,
        enable_softmax=False,
        enable_softmax_topk=True,
        use_trainable_adapters=True,
    )
    return get_peft_model(base, xcfg).to(device=device, dtype=dtype)


def flop_floor(d: int, o: int, rank: int, k: int) -> dict[str, float]:
    """FLOPs per token of one adapted linear ``d -> o``: base, one LoRA, and top-k of a mixture at best."""
    base = 2 * d * o
    single = base + 2 * rank * (d + o)
    mixture = base + k * 2 * rank * (d + o)
    return {"base": base, "single_lora": single, "mixture_top_k": mixture, "ratio": mixture / single}


def _ratios(systems: dict) -> None:
    ref = systems["single_lora"]
    for t in systems.values():
        t["forward_vs_single_lora"] = t["forward_s"] / ref["forward_s"]
        t["train_step_vs_single_lora"] = t["train_step_s"] / ref["train_step_s"]


def _rotate_with_xlora(
    args,
    systems: dict,
    cfg,
    arch: str,
    dtype,
    rank: int,
    expert_counts,
    batch,
    device,
    desc: str,
    errors=None,
) -> dict:
    """``systems`` plus, on a causal LM (unless ``--no-xlora``), peft X-LoRA at each expert count, timed in one
    rotation; returns the times with their ratios to one LoRA. With ``errors``, each X-LoRA first runs one train
    step, and one that fails (peft 0.21.2 in bfloat16) is recorded there and left out."""
    tmp = tempfile.mkdtemp()
    try:
        if arch == "causal" and not args.no_xlora:
            for n in expert_counts:
                xlora = _xlora_model(cfg, device, dtype, rank, n, tmp)
                if errors is not None:
                    try:  # peft 0.21.2 X-LoRA fails in bfloat16 (float32 scalings promote its input)
                        _run_once(xlora, batch, {}, True, device)
                    except RuntimeError as err:
                        errors[f"{desc}/xlora_E{n}"] = f"{type(err).__name__}: {err}"
                        continue
                systems[f"xlora_E{n}"] = (xlora, lambda: None, {}, nullcontext, True)
        res = _round_robin(systems, batch, args.repeats, device, desc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _ratios(res)
    return res


def _cell(arch: str, dtype_name: str, rank: int, dims: dict, res: dict) -> dict:
    """One shape's report entry: its setting, the timed systems and the FLOP floor of an adapted linear."""
    h = dims["hidden_size"]
    return {
        "arch": arch,
        "dtype": dtype_name,
        "rank": rank,
        "dims": dims,
        "systems": res,
        "flop_floor": flop_floor(h, h, rank, TOP_K),
    }


def run_targets(args, device, batch, expert_counts=(TARGET_EXPERTS,), naive: bool = True) -> dict:
    """The issue's three shapes in float32, rank 8: one LoRA, the mixture at each of ``expert_counts`` (top-2) and,
    on the causal LM, peft X-LoRA with as many experts, all in one rotation per shape."""
    out = {}
    dtype = torch.float32
    for name, (arch, dims) in TARGET_SHAPES.items():
        if args.quick and name == "bert-base-sized":
            continue  # the causal LM of the same size covers it; bert-base dominates the run time
        cfg = _hf_config(arch, dims, 30522 if arch == "encoder" else 32000)
        systems = _adapters_systems(
            cfg, arch, device, dtype, TARGET_RANK, list(expert_counts), naive=naive and arch == "encoder"
        )
        res = _rotate_with_xlora(
            args, systems, cfg, arch, dtype, TARGET_RANK, expert_counts, batch, device, name
        )
        out[name] = _cell(arch, "float32", TARGET_RANK, dims, res)
        del systems
    return out


STEADY_SHAPE, STEADY_EXPERTS, STEADY_LIMIT = "small-encoder", 16, 1.10


def _usage() -> tuple[int, int, float, float]:
    """(minor page faults, involuntary context switches, system CPU seconds, user CPU seconds) of this process so
    far (all threads)."""
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_minflt, u.ru_nivcsw, u.ru_stime, u.ru_utime


def _cache_entries(model) -> dict[tuple[int, str], int]:
    """``(id(router), cache key) -> id(cached stacks)`` over the model (a rebuild replaces the stacks object)."""
    return {
        (id(m), key): id(entry[2])
        for m in model.modules()
        for key, entry in m.__dict__.get(_CACHE_ATTR, {}).items()
    }


def run_steady_forward(args, device, batch, rounds: int, runs: int) -> dict:
    """Issue 26's steady-cost check: the mixture forward at E=16 (small encoder, top-2, r=8, float32) against one
    LoRA, ``runs`` times, each on freshly built models with one warm-up round and then ``rounds`` forward-only
    rotation rounds (base, one LoRA, mixture). Per round and system it records the seconds, the minor page faults,
    the involuntary context switches (a busy neighbour shows there), the system and user CPU seconds (page faults
    are system time) and, for the mixture,
    how many cached expert stacks were rebuilt and which expert paths its routers took. Target: the ratio of the
    medians <= 1.10x in every run."""
    import logging

    logging.getLogger("adapters").setLevel(logging.ERROR)  # "none are activated" on every base forward
    arch, dims = TARGET_SHAPES[STEADY_SHAPE]
    cfg = _hf_config(arch, dims, 30522)
    names = ["base", "single_lora", f"mixture_E{STEADY_EXPERTS}"]
    out = {"shape": STEADY_SHAPE, "dims": dims, "experts": STEADY_EXPERTS, "rounds": rounds, "runs": []}
    for run in range(runs):
        systems = _adapters_systems(
            cfg, arch, device, torch.float32, TARGET_RANK, [STEADY_EXPERTS], naive=False
        )
        model = systems["single_lora"][0]
        rec = {
            n: {
                "seconds": [],
                "minor_faults": [],
                "involuntary_switches": [],
                "system_cpu_s": [],
                "user_cpu_s": [],
            }
            for n in names
        }
        rebuilds = []
        for round_ in tqdm(range(rounds + 1), desc=f"E={STEADY_EXPERTS} forward, run {run + 1}", leave=False):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for i, name in enumerate([order[-1], *order]):  # the first run only warms up the kind of work
                _, activate, extra, ctx, _ = systems[name]
                activate()
                before_cache = _cache_entries(model)
                f0, s0, c0, u0 = _usage()
                with ctx():
                    elapsed = _run_once(model, batch, extra, False, device)
                f1, s1, c1, u1 = _usage()
                if round_ and i:
                    r = rec[name]
                    r["seconds"].append(elapsed)
                    r["minor_faults"].append(f1 - f0)
                    r["involuntary_switches"].append(s1 - s0)
                    r["system_cpu_s"].append(round(c1 - c0, 4))
                    r["user_cpu_s"].append(round(u1 - u0, 4))
                    if name.startswith("mixture"):
                        after = _cache_entries(model)
                        rebuilds.append(sum(1 for k, v in after.items() if before_cache.get(k) != v))
        med = {n: statistics.median(rec[n]["seconds"]) for n in names}
        mixture, single = rec[names[2]]["seconds"], rec["single_lora"]["seconds"]
        routers = [m for m in model.modules() if hasattr(m, "_sparse") and hasattr(m, "present_experts")]
        paths = sorted({("sparse" if v else "dense") for m in routers for v in m._sparse.values()})
        out["runs"].append(
            {
                "median_s": med,
                "ratio": med[names[2]] / med["single_lora"],
                "base_vs_single_lora": med["base"] / med["single_lora"],
                "round_ratios": [m / s for m, s in zip(mixture, single, strict=True)],
                "systems": rec,
                "mixture_cache_rebuilds_per_round": rebuilds,
                "mixture_paths": paths,
            }
        )
        del systems, model
    out["met"] = all(r["ratio"] <= STEADY_LIMIT for r in out["runs"])
    return out


def _steady_table(steady: dict) -> str:
    lines = [
        f"Issue 26 steady-cost check: {steady['shape']}, E={steady['experts']} top-{TOP_K} forward / one LoRA, "
        f"median of {steady['rounds']} rotation rounds per run (target <= {STEADY_LIMIT:.2f}x in every run)",
        "",
        "| run | mixture / 1 LoRA | base / 1 LoRA | per-round ratios | minor faults per round (1 LoRA; mixture) "
        "| kernel ms per forward, median (1 LoRA; mixture) | invol. switches per round (1 LoRA; mixture) | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    mix = f"mixture_E{steady['experts']}"
    for i, r in enumerate(steady["runs"], 1):
        s = r["systems"]
        lines.append(
            f"| {i} | {r['ratio']:.3f}x | {r['base_vs_single_lora']:.3f}x | "
            f"{' '.join(f'{x:.2f}' for x in r['round_ratios'])} | "
            f"{s['single_lora']['minor_faults']}; {s[mix]['minor_faults']} | "
            f"{statistics.median(s['single_lora']['system_cpu_s']) * 1e3:.1f}; "
            f"{statistics.median(s[mix]['system_cpu_s']) * 1e3:.1f} | "
            f"{s['single_lora']['involuntary_switches']}; {s[mix]['involuntary_switches']} | "
            f"{'yes' if r['ratio'] <= STEADY_LIMIT else '**no**'} |"
        )
    within = sum(r["ratio"] <= STEADY_LIMIT for r in steady["runs"])
    lines += [
        "",
        f"{within} of {len(steady['runs'])} runs within the target: {'met' if steady['met'] else '**not met**'}",
    ]
    return "\n".join(lines)


def check_targets(report: dict) -> list[dict]:
    """The issue's targets against the ``targets`` part: E=6 forward <= 1.05x and train step <= 1.10x one LoRA,
    E=16 forward <= 1.10x, and at least 2x faster than X-LoRA (forward and train step) where X-LoRA ran."""
    rows = []
    for shape, cell in report.get("targets", {}).items():
        s = cell["systems"]
        for n, metric, limit in ((6, "forward", 1.05), (6, "train_step", 1.10), (16, "forward", 1.10)):
            if f"mixture_E{n}" in s:
                value = s[f"mixture_E{n}"][f"{metric}_vs_single_lora"]
                rows.append(
                    dict(
                        shape=shape,
                        target=f"E={n} {metric} / 1 LoRA <= {limit:.2f}x",
                        value=value,
                        met=value <= limit,
                    )
                )
        for n in sorted(int(k.split("_E")[1]) for k in s if k.startswith("xlora_E")):
            for metric in ("forward", "train_step"):
                value = s[f"xlora_E{n}"][f"{metric}_s"] / s[f"mixture_E{n}"][f"{metric}_s"]
                rows.append(
                    dict(
                        shape=shape,
                        target=f"E={n} {metric}: X-LoRA / mixture >= 2x",
                        value=value,
                        met=value >= 2,
                    )
                )
    return rows


def _grid_cells(args) -> list[tuple[str, str, int]]:
    """(arch, dtype, rank) cells, float32 rank 8 first: the order in which a time budget keeps them."""
    cells = [
        (arch, dtype_name, rank)
        for dtype_name in args.dtypes.split(",")
        for rank in [int(r) for r in args.ranks.split(",")]
        for arch in args.archs.split(",")
    ]
    return sorted(cells, key=lambda c: (c[1] != "float32", c[2] != TARGET_RANK))


def run_grid(args, device, batch, errors: dict, deadline: float | None = None) -> dict:
    """The grid; with ``deadline`` (a ``time.monotonic()`` value), a cell starts only if the longest cell so far
    would still end before it (the others are listed in ``errors`` as skipped)."""
    out = {}
    longest = 0.0
    for arch, dtype_name, rank in _grid_cells(args):
        dims = GRID_SHAPES[arch][1 if args.quick else 0]
        dtype = getattr(torch, dtype_name)
        key = f"{arch}/{dtype_name}/r{rank}"
        if deadline is not None and time.monotonic() + longest > deadline:
            errors[key] = "skipped: the --budget-min time budget was spent"
            continue
        started = time.monotonic()
        experts = [int(e) for e in args.experts.split(",")]
        cfg = _hf_config(arch, dims, VOCAB)
        systems = _adapters_systems(cfg, arch, device, dtype, rank, experts, naive=False, both_paths=True)
        res = _rotate_with_xlora(args, systems, cfg, arch, dtype, rank, experts, batch, device, key, errors)
        out[key] = _cell(arch, dtype_name, rank, dims, res)
        del systems
        longest = max(longest, time.monotonic() - started)
    return out


def run_kernels(args, device) -> dict:
    """Dense vs sparse expert compute of one adapted linear (``d = o = 384``, 1024 tokens, top-2), in rotation:
    the measurement behind ``molora_adapters.mixture.compute.SPARSE_OVERHEAD``."""
    from molora_adapters.mixture.compute import dense_experts, sparse_experts, use_sparse

    d, n_tok, cells = 384, 1024, []
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for rank in [int(r) for r in args.ranks.split(",")]:
            for n in [int(e) for e in args.experts.split(",")]:
                if n > TOP_K:
                    cells.append((dtype, rank, n))
    g = torch.Generator().manual_seed(0)
    data = {}
    for dtype, rank, n in cells:
        x = torch.randn(n_tok, 1, d, generator=g).to(device, dtype)
        a = (torch.randn(n, rank, d, generator=g) * 0.02).to(device, dtype)  # (E, r, D): A_e
        b = (torch.randn(n, d, rank, generator=g) * 0.02).to(device, dtype)  # (E, O, r): B_e
        probs = torch.randn(n_tok, n, generator=g).softmax(-1)
        vals, idx = probs.topk(TOP_K, -1)
        gates = torch.zeros_like(probs).scatter(-1, idx, vals).to(device, dtype)
        data[dtype, rank, n] = (
            x,
            gates,
            a.transpose(1, 2).contiguous(),
            b.transpose(1, 2).contiguous(),
            a.reshape(n * rank, d),
            b.permute(1, 0, 2).reshape(d, n * rank),
        )
    times = {c: {"dense": [], "sparse": []} for c in cells}
    with torch.no_grad():
        for round_ in tqdm(range(3 * args.repeats + 1), desc="kernels", leave=False):
            for c in cells:
                x, gates, a_t, b_t, a_cat, b_cat = data[c]
                _sync(device)
                t0 = time.perf_counter()
                dense_experts(x, gates, a_cat, b_cat, c[1], None)
                _sync(device)
                t1 = time.perf_counter()
                sparse_experts(x, gates, TOP_K, a_t, b_t)
                _sync(device)
                if round_:
                    times[c]["dense"].append(t1 - t0)
                    times[c]["sparse"].append(time.perf_counter() - t1)
    out = {}
    for dtype, rank, n in cells:
        t = times[dtype, rank, n]
        dense, sparse = statistics.median(t["dense"]), statistics.median(t["sparse"])
        out[f"{str(dtype).split('.')[-1]}/r{rank}/E{n}"] = {
            "dense_s": dense,
            "sparse_s": sparse,
            "sparse_vs_dense": sparse / dense,
            "auto_picks": "sparse" if use_sparse(n, TOP_K, True, rank, dtype) else "dense",
        }
    return out


def apply_switch(report: dict) -> None:
    """``mixture_E{n}`` := the measured path (dense or sparse) that the committed switch picks for that cell, and the
    kernels' ``auto_picks``; both paths were measured side by side, so the switch can be re-applied to a saved run."""
    for cell in report.get("grid", {}).values():
        s, dtype = cell["systems"], getattr(torch, cell["dtype"])
        for key in [k for k in s if k.endswith("_dense")]:
            n = int(key.split("_")[1][1:])
            pick = "sparse" if use_sparse(n, TOP_K, True, cell["rank"], dtype) else "dense"
            s[f"mixture_E{n}"] = dict(s[f"mixture_E{n}_{pick}"], path=pick)
    for key, k in report.get("kernels", {}).items():
        dtype_name, rank, n = key.split("/")
        picks = use_sparse(int(n[1:]), TOP_K, True, int(rank[1:]), getattr(torch, dtype_name))
        k["auto_picks"] = "sparse" if picks else "dense"


def _tables(report: dict) -> str:
    lines = []
    if report.get("steady_forward"):
        lines += [_steady_table(report["steady_forward"]), ""]
    if report.get("kernels"):
        lines += [
            "Kernels: one adapted linear 384 -> 384, 1024 tokens, top-2, alone (dense vs sparse)",
            "",
            "| dtype/r/E | dense (ms) | sparse (ms) | sparse / dense | auto picks |",
            "|---|---|---|---|---|",
        ]
        for key, k in report["kernels"].items():
            lines.append(
                f"| {key} | {k['dense_s'] * 1e3:.2f} | {k['sparse_s'] * 1e3:.2f} | {k['sparse_vs_dense']:.2f} | {k['auto_picks']} |"
            )
        lines.append("")
    if report.get("targets"):
        lines += [
            f"Targets: r={TARGET_RANK}, top-{TOP_K}, float32, batch {report['batch_targets']}",
            "",
            "| model | system | forward (s) | train step (s) | forward / 1 LoRA | step / 1 LoRA | FLOP floor |",
            "|---|---|---|---|---|---|---|",
        ]
        for mname, cell in report["targets"].items():
            for sname, t in cell["systems"].items():
                step = "n/a" if sname == "base" else f"{t['train_step_s']:.3f}"
                sr = "" if sname == "base" else f"{t['train_step_vs_single_lora']:.2f}x"
                floor = f"{cell['flop_floor']['ratio']:.3f}x" if sname.startswith("mixture") else ""
                lines.append(
                    f"| {mname} | {sname} | {t['forward_s']:.3f} | {step} | {t['forward_vs_single_lora']:.2f}x | {sr} | {floor} |"
                )
        lines.append("")
    if report.get("target_check"):
        met = sum(r["met"] for r in report["target_check"])
        lines += [
            f"Targets of issue 16: {met} of {len(report['target_check'])} met",
            "",
            "| model | target | measured | met |",
            "|---|---|---|---|",
        ]
        for r in report["target_check"]:
            lines.append(
                f"| {r['shape']} | {r['target']} | {r['value']:.2f}x | {'yes' if r['met'] else '**no**'} |"
            )
        lines.append("")
    if report.get("grid"):
        lines += [
            f"Grid: top-{TOP_K}, batch {report['batch_grid']}; ratios to one LoRA of the same rank (forward / train step)",
            "",
            "| arch | dtype | r | E | mixture fwd | mixture step | path | dense fwd / step | sparse fwd / step "
            "| X-LoRA fwd | X-LoRA step | FLOP floor |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for cell in report["grid"].values():
            s = cell["systems"]
            ns = sorted({int(k.split("_")[1][1:]) for k in s if k.startswith("mixture_E")})
            for n in ns:
                m, x = s[f"mixture_E{n}"], s.get(f"xlora_E{n}")

                def pair(t):
                    return (
                        f"{t['forward_vs_single_lora']:.2f}x / {t['train_step_vs_single_lora']:.2f}x"
                        if t
                        else ""
                    )

                xf = f"{x['forward_vs_single_lora']:.2f}x" if x else ""
                xs = f"{x['train_step_vs_single_lora']:.2f}x" if x else ""
                lines.append(
                    f"| {cell['arch']} | {cell['dtype']} | {cell['rank']} | {n} | {m['forward_vs_single_lora']:.2f}x | "
                    f"{m['train_step_vs_single_lora']:.2f}x | {m.get('path', 'dense')} | "
                    f"{pair(s.get(f'mixture_E{n}_dense'))} | {pair(s.get(f'mixture_E{n}_sparse'))} | {xf} | {xs} | "
                    f"{cell['flop_floor']['ratio']:.3f}x |"
                )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Forward and train-step ratios to one LoRA against E, one panel per (architecture, dtype, rank, metric)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("--plot needs matplotlib: pip install 'molora-adapters[bench]'") from err
    cells = [dict(c, name=n) for n, c in report.get("targets", {}).items() if "arch" in c]
    cells += list(report.get("grid", {}).values())
    fig, axes = plt.subplots(2, len(cells), figsize=(3.2 * len(cells), 6), squeeze=False, sharex=True)
    for col, cell in enumerate(cells):
        s = cell["systems"]
        ns = sorted({int(k.split("_")[1][1:]) for k in s if k.startswith("mixture_E")})
        for row, metric in enumerate(["forward", "train_step"]):
            ax = axes[row][col]
            key = f"{metric}_vs_single_lora"
            ax.plot(ns, [s[f"mixture_E{n}"][key] for n in ns], "o-", label="mixture (ours, auto)")
            sparse_ns = [n for n in ns if f"mixture_E{n}_sparse" in s]
            if sparse_ns:
                ax.plot(
                    sparse_ns, [s[f"mixture_E{n}_sparse"][key] for n in sparse_ns], "x:", label="sparse path"
                )
                ax.plot(
                    sparse_ns, [s[f"mixture_E{n}_dense"][key] for n in sparse_ns], "+:", label="dense path"
                )
            if any(f"xlora_E{n}" in s for n in ns):
                ax.plot(ns, [s[f"xlora_E{n}"][key] for n in ns], "s--", label="peft X-LoRA")
            ax.axhline(1.0, color="gray", lw=1, label="one LoRA")
            ax.axhline(cell["flop_floor"]["ratio"], color="green", lw=1, ls=":", label="FLOP floor (top-k)")
            ax.set_xscale("log", base=2)
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.set_title(
                f"{cell.get('name', cell['arch'])} {cell['dtype']} r={cell['rank']}\n{metric.replace('_', ' ')}",
                fontsize=8,
            )
            if col == 0:
                ax.set_ylabel("time / one LoRA")
            if row == 1:
                ax.set_xlabel("experts E")
    labels = {}
    for ax in axes.flat:  # one legend for all panels (X-LoRA appears only on causal-LM panels)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    fig.legend(labels.values(), labels.keys(), loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(
        f"Mixture-of-LoRA (top-{TOP_K}) vs one LoRA and peft X-LoRA; {report['device']}, "
        f"{report['threads']} thread(s), batch {report['batch_targets']} (targets) / {report['batch_grid']} (grid)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "kernels", "targets", "grid", "e16-forward"], default="all")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (on a CPU shared with other jobs, 1 avoids stalls of OpenMP barriers)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 (targets) / 8 (grid)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="rotation rounds after the warm-up (default 3; e16-forward: 9)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="e16-forward: run the check this many times, each on freshly built models (issue 26: 3)",
    )
    parser.add_argument(
        "--malloc",
        choices=["retain", "default"],
        default="retain",
        help="retain (default): glibc keeps freed memory (molora_adapters.utils.memory.retain_freed_memory), so "
        "forwards do not page-fault their activations afresh; default: glibc's adaptive thresholds",
    )
    parser.add_argument(
        "--quick", action="store_true", help="targets at batch 8 (no bert-base), grid on 4-layer shapes"
    )
    parser.add_argument(
        "--committed",
        action="store_true",
        help="the committed run, bounded: targets at E=6 and E=16 on the three shapes (bert-base included, X-LoRA on "
        "the causal LM, no naive loop), the kernels, then the 4-layer grid cells while --budget-min allows",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=None,
        help="minutes for the whole run: grid cells that would end later are skipped (default 16 with --committed)",
    )
    parser.add_argument("--experts", default="2,6,16,32")
    parser.add_argument("--ranks", default="8,64")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--archs", default="encoder,causal")
    parser.add_argument("--no-xlora", action="store_true")
    parser.add_argument("--plot", action="store_true", help="also write the figure (needs matplotlib)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--replot", default=None, metavar="JSON", help="only redraw the figure of a saved run"
    )
    args = parser.parse_args(argv)
    if args.replot:  # re-apply the switch, rewrite the tables and the figure of a saved run
        from molora_adapters.utils.io import atomic_write_text

        path = Path(args.replot)
        report = json.loads(path.read_text())
        apply_switch(report)
        report["target_check"] = check_targets(report)
        report["table_markdown"] = _tables(report)
        atomic_write_text(path, json.dumps(report, indent=2))
        plot(report, path.with_suffix(".png"))
        print(report["table_markdown"])
        print(f"wrote {path} and {path.with_suffix('.png')}")
        return 0
    started = time.monotonic()
    if args.malloc == "retain":
        retain_freed_memory()
    if args.repeats is None:
        args.repeats = 9 if args.part == "e16-forward" else 3
    if args.committed:
        args.quick = True  # 4-layer grid shapes
        if args.budget_min is None:
            args.budget_min = 16.0
    deadline = started + 60 * args.budget_min if args.budget_min is not None else None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_grad_enabled(True)
    if args.threads:
        torch.set_num_threads(args.threads)

    def make_batch(bs: int, vocab: int):
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(5, vocab, (bs, args.seq_len), generator=g).to(device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    bs_t = args.batch_size or (16 if args.committed or not args.quick else 8)
    bs_g = args.batch_size or 8
    report = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "top_k": TOP_K,
        "command": " ".join(
            ["python", "benchmarks/bench_mixture.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "batch_targets": [bs_t, args.seq_len],
        "batch_grid": [bs_g, args.seq_len],
        "malloc": malloc_settings() or "glibc defaults",
    }
    report["errors"] = {}
    if args.part == "e16-forward":
        report["steady_forward"] = run_steady_forward(
            args, device, make_batch(args.batch_size or 16, 30000), args.repeats, args.repeat
        )
    elif args.committed:  # the targets first: they are what the run is for
        if args.part in ("all", "targets"):
            quick, args.quick = args.quick, False  # all three shapes
            report["targets"] = run_targets(
                args, device, make_batch(bs_t, 30000), expert_counts=(TARGET_EXPERTS, 16), naive=False
            )
            args.quick = quick
        if args.part in ("all", "kernels"):
            report["kernels"] = run_kernels(args, device)
    else:
        if args.part in ("all", "kernels"):
            report["kernels"] = run_kernels(args, device)
        if args.part in ("all", "targets"):
            report["targets"] = run_targets(args, device, make_batch(bs_t, 30000))
    if args.part in ("all", "grid"):
        report["grid"] = run_grid(args, device, make_batch(bs_g, VOCAB), report["errors"], deadline)
    apply_switch(report)
    report["target_check"] = check_targets(report)
    report["wall_s"] = time.monotonic() - started
    report["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    table = _tables(report)
    print(table)
    for key, err in report.get("errors", {}).items():
        print(f"{key}: {err.splitlines()[0]}")
    tag = device.type
    out = Path(
        args.out
        or Path(__file__).parent
        / "results"
        / (
            f"bench_mixture_{tag}_e16_forward.json"
            if args.part == "e16-forward"
            else f"bench_mixture_{tag}{'_quick' if args.quick and not args.committed else ''}.json"
        )
    )
    from molora_adapters.utils.io import atomic_write_text

    report["table_markdown"] = table
    atomic_write_text(out, json.dumps(report, indent=2))
    print(f"wrote {out}")
    if args.plot and (report.get("grid") or report.get("targets")):
        plot(report, out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
