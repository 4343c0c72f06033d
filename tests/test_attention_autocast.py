"""Attention under CPU bf16 autocast: the attention product runs in float32, the q/k/v linears stay in bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_adapter_model
from torch.overrides import TorchFunctionMode

from molora_adapters import _integration
from molora_adapters._patching import MAKERS, patch
from molora_adapters.utils.attention import (
    Float32Attention,
    attention_autocast_dtype,
    scaled_dot_product_attention,
)

BF16 = torch.autocast("cpu", dtype=torch.bfloat16)


class _Record(TorchFunctionMode):
    """Records the input dtype of every SDPA call and the output dtype of every linear."""

    def __init__(self):
        super().__init__()
        self.sdpa, self.linear = [], []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is F.scaled_dot_product_attention:
            self.sdpa.append(args[0].dtype)
        elif func is F.linear:
            self.linear.append(out.dtype)
        return out


def _qkv(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(3, 4, 7, 8, generator=g).bfloat16().requires_grad_() for _ in range(3))
    mask = torch.zeros(3, 1, 1, 7, dtype=torch.bfloat16)
    mask[1, ..., 5:] = torch.finfo(torch.bfloat16).min
    return q, k, v, mask


def test_mode_computes_float32_attention_exactly():
    q, k, v, mask = _qkv()
    with BF16, Float32Attention():
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    got = [t.grad.clone() for t in (q, k, v)]

    q2, k2, v2 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q2, k2, v2, attn_mask=mask.float())
    torch.testing.assert_close(out, ref.bfloat16(), rtol=0, atol=0)
    ref.bfloat16().float().square().sum().backward()
    for g, r in zip(got, (q2.grad, k2.grad, v2.grad), strict=True):
        torch.testing.assert_close(g, r.bfloat16(), rtol=0, atol=0)


def test_helper_runs_float32_when_a_backward_follows():
    q, k, v, _ = _qkv(1)
    keys = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    keys[1, ..., 5:] = False  # a boolean mask, as the OIE head passes
    with BF16, _Record() as seen:
        out = scaled_dot_product_attention(q, k, v, attn_mask=keys)
    assert seen.sdpa == [torch.float32] and out.dtype == torch.bfloat16
    out.float().square().sum().backward()
    q2, k2, v2 = (t.detach().float().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q2, k2, v2, attn_mask=keys)
    torch.testing.assert_close(out, ref.bfloat16(), rtol=0, atol=0)
    ref.bfloat16().float().square().sum().backward()
    for g, r in zip((q.grad, k.grad, v.grad), (q2.grad, k2.grad, v2.grad), strict=True):
        torch.testing.assert_close(g, r.bfloat16(), rtol=0, atol=0)

    with BF16, torch.no_grad(), _Record() as seen:  # inference: bf16's forward is the fast one
        scaled_dot_product_attention(q, k, v, attn_mask=keys)
    with BF16, attention_autocast_dtype(None), _Record() as off:
        scaled_dot_product_attention(q, k, v, attn_mask=keys)
    with _Record() as plain:  # no autocast: the plain call
        scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=keys)
    assert (seen.sdpa, off.sdpa, plain.sdpa) == ([torch.bfloat16], [torch.bfloat16], [torch.float32])


def test_oie_head_attention_float32_in_training():
    from molora_adapters.oie.heads import PredicateAttentionBlock

    torch.manual_seed(0)
    block = PredicateAttentionBlock(d_model=16, n_heads=2, d_feedforward=32, dropout=0.0, activation="gelu")
    target, source = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    key_mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    with BF16, _Record() as seen:
        out = block(target, source, key_mask)
    assert seen.sdpa == [torch.float32]
    torch.testing.assert_close(out.float(), block(target, source, key_mask), rtol=0.05, atol=0.05)


def _run(model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    out.float().square().mean().backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out.float().detach(), grads


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_model_attention_float32_under_autocast(model_type):
    model = tiny_adapter_model(model_type, attn_implementation="sdpa")
    assert "Sdpa" in type(model.base_model.encoder.layer[0].attention.self).__name__
    model.add_adapter("lora", config="lora")
    model.train_adapter("lora")
    ids = torch.randint(3, 1000, (3, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    reference, ref_grads = _run(model, ids, mask)  # float32 everywhere

    with BF16, _Record() as seen:
        ours, our_grads = _run(model, ids, mask)
    assert seen.sdpa and set(seen.sdpa) == {torch.float32}  # the attention product in float32
    assert seen.linear and set(seen.linear) == {torch.bfloat16}  # q/k/v and the rest stay in bf16
    torch.testing.assert_close(ours, reference, rtol=0.05, atol=0.05)
    assert our_grads.keys() == ref_grads.keys()
    for name, grad in our_grads.items():
        scale = ref_grads[name].abs().max().clamp_min(1e-6)
        assert (grad - ref_grads[name]).abs().max() / scale < 0.05, name

    with BF16, attention_autocast_dtype(None), _Record() as seen:  # switched off: autocast's bf16
        _run(model, ids, mask)
    assert set(seen.sdpa) == {torch.bfloat16}

    with _Record() as seen:  # no autocast: untouched
        _run(model, ids, mask)
    assert set(seen.sdpa) == {torch.float32}


def test_attention_dtype_rejects_other_dtypes():
    with pytest.raises(ValueError, match="`dtype`"), attention_autocast_dtype(torch.float16):
        pass


def test_attention_patches_stack_with_xsta_dispatch():
    from molora_adapters.xsta.seam import _make_attention_forward, install_attention_dispatch

    install_attention_dispatch()
    for module, name in _integration.SDPA_ATTENTION_CLASSES:
        cls = _integration.resolve(f"{module}:{name}")
        makers = getattr(cls.forward, MAKERS)
        assert _integration._make_float32_attention_forward in makers and _make_attention_forward in makers


def test_patch_is_idempotent_per_wrapper():
    class Owner:
        def f(self):
            return 1

    def plus(n):
        def make(original):
            return lambda self: original(self) + n

        return make

    add_one, add_ten = plus(1), plus(10)
    for make in (add_one, add_one, add_ten, add_one, add_ten):
        patch(Owner, "f", make)
    assert Owner().f() == 12  # 1, each wrapper once
