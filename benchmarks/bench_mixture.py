"""Mixture-of-LoRA speed, side by side in one process: base, one LoRA, our mixture, a naive expert loop, peft X-LoRA.

Every system runs the same randomly initialised backbone on the same batch (16 x 128 tokens by default), with
6 experts of rank 8 on the attention q/v projections (adapters' and peft's LoRA default), top-2, token routing.
Timings are medians over repeats after a warm-up; the targets are ratios to the single-LoRA model of the same run:

- mixture forward <= 1.10x, mixture train step (forward + backward) <= 1.25x;
- at least 2x faster than X-LoRA (measured on a causal LM of the same size, since X-LoRA needs one).

    python benchmarks/bench_mixture.py                # BERT-base-sized + small encoder + causal LM
    python benchmarks/bench_mixture.py --quick        # fewer repeats, smaller batch (smoke run)

Writes ``benchmarks/results/bench_mixture_<device>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import molora_adapters  # noqa: E402,F401  (registers the plugin)
from molora_adapters.mixture.reference import use_reference_forward  # noqa: E402

N_EXPERTS, RANK, TOP_K = 6, 8, 2
ENCODERS = {
    "bert-base-sized": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "small-encoder": dict(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    ),
}
CAUSAL = {
    "causal-lm-base-sized": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    )
}


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _run_once(model, batch, extra: dict, train: bool) -> float:
    """Seconds for one forward (eval, no grad) or one train step (forward + backward)."""
    _sync()
    t0 = time.perf_counter()
    if not train:
        model.eval()
        with torch.no_grad():
            model(**batch, **extra)
    else:
        model.train()
        out = model(**batch, **extra)
        logits = (
            out[0] if isinstance(out, tuple) else (out.logits if "logits" in out else out.last_hidden_state)
        )
        loss = logits.float().pow(2).mean()
        if isinstance(out, dict) and "mixture_aux_loss" in out:
            loss = loss + out["mixture_aux_loss"]
        loss.backward()
        model.zero_grad(set_to_none=True)
    _sync()
    return time.perf_counter() - t0


def _round_robin(systems: dict, batch, repeats: int) -> dict[str, dict[str, float]]:
    """Time every system in rotation (one warm-up round), so drift and noise hit all systems alike.

    ``systems`` maps a name to ``(model, activate, extra_kwargs, context_factory, trains)``.
    """
    times = {name: {"forward": [], "train_step": []} for name in systems}
    for round_ in range(repeats + 1):
        for name, (model, activate, extra, ctx, trains) in systems.items():
            activate()
            with ctx():
                fwd = _run_once(model, batch, extra, train=False)
                step = _run_once(model, batch, extra, train=True) if trains else float("nan")
            if round_:  # round 0 is the warm-up
                times[name]["forward"].append(fwd)
                times[name]["train_step"].append(step)
    return {
        name: {
            "forward_s": statistics.median(t["forward"]),
            "train_step_s": statistics.median(t["train_step"]),
        }
        for name, t in times.items()
    }


def _lora_config():
    from adapters import LoRAConfig

    return LoRAConfig(r=RANK, alpha=2 * RANK, dropout=0.0, init_weights="bert")


def _adapters_model(config, causal: bool, device, dtype):
    from adapters import AutoAdapterModel
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    if causal:
        import adapters

        model = AutoModelForCausalLM.from_config(config)
        adapters.init(model)
    else:
        model = AutoAdapterModel.from_config(config)
    return model.to(device=device, dtype=dtype)


def _adapters_systems(config, causal: bool, device, dtype, naive: bool) -> dict:
    """One backbone with a single LoRA and a 6-expert mixture; systems differ only in what is active/trainable."""
    from contextlib import nullcontext

    model = _adapters_model(config, causal, device, dtype)
    model.add_adapter("single", _lora_config())
    experts = [f"expert{i}" for i in range(N_EXPERTS)]
    name = model.add_adapter_mixture(experts, top_k=TOP_K, expert_config=_lora_config())
    model.to(device=device, dtype=dtype)

    def base():
        model.set_active_adapters(None)

    systems = {
        "base": (model, base, {}, nullcontext, False),
        "single_lora": (model, lambda: model.train_adapter("single"), {}, nullcontext, True),
        "mixture": (
            model,
            lambda: model.train_adapter_mixture(name),
            {"output_router_logits": True},
            nullcontext,
            True,
        ),
    }
    if naive:
        systems["naive_loop"] = (
            model,
            lambda: model.train_adapter_mixture(name),
            {"output_router_logits": True},
            use_reference_forward,
            True,
        )
    return systems


def _xlora_model(config, device, dtype):
    try:
        from peft import LoraConfig, XLoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM
    except ImportError:
        return None
    config.use_cache = False
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i in range(N_EXPERTS):  # X-LoRA crashes on names such as "en"/"de": number the experts
            torch.manual_seed(i)
            base = AutoModelForCausalLM.from_config(config)
            lora = get_peft_model(
                base,
                LoraConfig(
                    r=RANK,
                    lora_alpha=2 * RANK,
                    target_modules=["q_proj", "v_proj"],
                    init_lora_weights="gaussian",
                ),
            )
            lora.save_pretrained(os.path.join(tmp, str(i)))
            paths[str(i)] = os.path.join(tmp, str(i))
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="batch 4 x 64, 2 repeats, small models only")
    parser.add_argument("--no-xlora", action="store_true")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.seq_len, args.repeats = 4, 64, 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    torch.set_grad_enabled(True)

    from transformers import BertConfig, LlamaConfig

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 30000, (args.batch_size, args.seq_len), generator=g).to(device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    report = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "batch": [args.batch_size, args.seq_len],
        "experts": N_EXPERTS,
        "rank": RANK,
        "top_k": TOP_K,
        "models": {},
    }
    encoders = {"small-encoder": ENCODERS["small-encoder"]} if args.quick else ENCODERS
    for name, dims in encoders.items():
        cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, **dims)
        print(f"[{name}] ...", flush=True)
        report["models"][name] = _round_robin(
            _adapters_systems(cfg, False, device, dtype, naive=True), batch, args.repeats
        )
    if not args.quick:
        for name, dims in CAUSAL.items():
            cfg = LlamaConfig(
                vocab_size=32000, num_key_value_heads=dims["num_attention_heads"], use_cache=False, **dims
            )
            print(f"[{name}] ...", flush=True)
            systems = _adapters_systems(cfg, True, device, dtype, naive=False)
            xlora = None if args.no_xlora else _xlora_model(cfg, device, dtype)
            if xlora is not None:
                from contextlib import nullcontext

                systems["peft_xlora"] = (xlora, lambda: None, {}, nullcontext, True)
            report["models"][name] = _round_robin(systems, batch, args.repeats)

    lines = [
        "| model | system | forward (s) | train step (s) | forward / 1 LoRA | step / 1 LoRA |",
        "|---|---|---|---|---|---|",
    ]
    for mname, systems in report["models"].items():
        ref = systems["single_lora"]
        for sname, t in systems.items():
            t["forward_vs_single_lora"] = t["forward_s"] / ref["forward_s"]
            t["train_step_vs_single_lora"] = t["train_step_s"] / ref["train_step_s"]
            step = "n/a (frozen)" if sname == "base" else f"{t['train_step_s']:.3f}"
            step_ratio = "" if sname == "base" else f"{t['train_step_vs_single_lora']:.2f}x"
            lines.append(
                f"| {mname} | {sname} | {t['forward_s']:.3f} | {step} | {t['forward_vs_single_lora']:.2f}x | {step_ratio} |"
            )
        if "peft_xlora" in systems:
            m, x = systems["mixture"], systems["peft_xlora"]
            report.setdefault("xlora_speedup", {})[mname] = {
                "forward": x["forward_s"] / m["forward_s"],
                "train_step": x["train_step_s"] / m["train_step_s"],
            }
    table = "\n".join(lines)
    print(table)
    if "xlora_speedup" in report:
        print("mixture speed-up over peft X-LoRA:", json.dumps(report["xlora_speedup"]))
    tag = "cuda" if device.type == "cuda" else "cpu"
    out = Path(
        args.out
        or Path(__file__).parent / "results" / f"bench_mixture_{tag}{'_quick' if args.quick else ''}.json"
    )
    from molora_adapters.utils.io import atomic_write_text

    report["table_markdown"] = table
    atomic_write_text(out, json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
