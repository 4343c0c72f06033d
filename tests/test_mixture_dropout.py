"""Where the experts' LoRA dropout acts in the mixture (`MixtureConfig.dropout_site`)."""

from __future__ import annotations

import copy

import pytest
import torch
from adapters.methods.lora import LoRA

from molora_adapters.mixture import DropoutSite, MixtureConfig, expert_compute
from tests.testing_common import model_output, padded_batch, tiny_mixture_model


class _Halve(torch.nn.Dropout):
    """A deterministic stand-in for dropout: halves its input and records the width it saw."""

    def __init__(self):
        super().__init__(p=0.5)
        self.widths: list[int] = []

    def forward(self, x):
        self.widths.append(x.shape[-1])
        return x * 0.5


def test_dropout_site_config():
    assert MixtureConfig(["a", "b"]).dropout_site is DropoutSite.INPUT
    cfg = MixtureConfig(["a", "b"], dropout_site="rank")
    assert cfg.dropout_site is DropoutSite.RANK
    assert cfg.to_dict()["dropout_site"] == "rank"
    assert MixtureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="`dropout_site`"):
        MixtureConfig(["a", "b"], dropout_site="output")


@pytest.mark.parametrize("compute", ["dense", "sparse"])
@pytest.mark.parametrize("site", ["input", "rank"])
def test_dropout_acts_at_its_site(site, compute):
    # Halving either the input of A or the rank activations halves each expert's delta; the gates read the
    # undropped input either way, so a training forward equals an eval forward with every B halved.
    model, name = tiny_mixture_model("encoder", ["de", "zh", "en"], top_k=2, dropout_site=site)
    model.set_active_adapters(model.get_adapter_mixture(name))
    reference = copy.deepcopy(model)
    loras = [m for m in model.modules() if isinstance(m, LoRA)]
    halve = _Halve()
    for lora in loras:
        lora.lora_dropout = halve
    with torch.no_grad():
        for lora in [m for m in reference.modules() if isinstance(m, LoRA)]:
            lora.lora_B.mul_(0.5)
    batch = padded_batch()
    model.train()
    with torch.no_grad(), expert_compute(compute):
        _, got = model_output(model, batch)
        _, want = model_output(reference, batch)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    hidden, rank = 32, 3 * loras[0].r
    widths = set(halve.widths)
    if site == "input":  # q/v/intermediate/output inputs: hidden or intermediate width
        assert widths and rank not in widths and hidden in widths
    else:  # all experts' rank columns (dense) or one expert's (sparse)
        assert widths == ({rank} if compute == "dense" else {loras[0].r})
