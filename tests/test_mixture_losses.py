"""Router losses (analytic values, padding invariance) and routing statistics / heatmap."""

from __future__ import annotations

import math

import pytest
import torch

from molora_adapters.mixture.analysis import RoutingStatistics, collect_routing_statistics
from molora_adapters.mixture.losses import (
    language_supervision_loss,
    load_balancing_loss,
    router_z_loss,
    routing_statistics,
    top_k_selection,
)
from tests.conftest import tiny_adapter_model


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_balancing_loss_is_one_under_uniform_routing(top_k):
    n, e = 12, 4
    probs = torch.full((n, e), 1.0 / e)
    # each expert selected equally often: token i picks experts i, i+1, ... (mod e)
    selected = torch.zeros(n, e)
    for i in range(n):
        for j in range(top_k):
            selected[i, (i + j) % e] = 1
    assert torch.isclose(load_balancing_loss(probs, selected, e), torch.tensor(1.0))


def test_balancing_loss_collapsed_routing_is_num_experts():
    n, e = 8, 4
    probs = torch.zeros(n, e)
    probs[:, 0] = 1.0
    selected = torch.zeros(n, e)
    selected[:, 0] = 1
    assert torch.isclose(load_balancing_loss(probs, selected, e), torch.tensor(float(e)))


def test_losses_ignore_masked_padding():
    torch.manual_seed(0)
    logits = torch.randn(6, 3)
    padded = torch.cat([logits, torch.randn(4, 3) * 10])
    mask = torch.tensor([True] * 6 + [False] * 4)
    sel, sel_p = top_k_selection(logits, 2), top_k_selection(padded, 2)
    lb = load_balancing_loss(logits.softmax(-1), sel, 3)
    assert torch.allclose(lb, load_balancing_loss(padded.softmax(-1), sel_p, 3, mask))
    assert torch.allclose(router_z_loss(logits), router_z_loss(padded, mask))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    tp = torch.cat([target, torch.zeros(4, dtype=torch.long)])
    assert torch.allclose(
        language_supervision_loss(logits, target), language_supervision_loss(padded, tp, mask)
    )


def test_z_loss_and_language_loss_known_values():
    logits = torch.zeros(2, 4)
    assert torch.isclose(router_z_loss(logits), torch.tensor(math.log(4) ** 2))
    assert torch.isclose(language_supervision_loss(logits, torch.tensor([1, 3])), torch.tensor(math.log(4)))
    # a target expert absent from the layer (-inf logit) is skipped, not infinite
    logits[:, 3] = float("-inf")
    assert torch.isclose(language_supervision_loss(logits, torch.tensor([1, 3])), torch.tensor(math.log(3)))


def test_routing_statistics_summaries():
    uniform = {"0-x": torch.zeros(6, 3)}
    stats = routing_statistics(uniform, top_k=3)
    assert stats["normalized_entropy"] == pytest.approx(1.0)
    assert stats["balance"] == pytest.approx(0.0, abs=1e-6)
    peaked = {"0-x": torch.tensor([[10.0, 0, 0]] * 6)}
    stats = routing_statistics(peaked, top_k=1)
    assert stats["entropy"] < 0.01 and stats["load"]["0-x"] == pytest.approx([1.0, 0.0, 0.0])


def test_collect_routing_statistics_per_language(tmp_path):
    model = tiny_adapter_model("bert")
    name = model.add_adapter_mixture(["en", "de"], top_k=1, granularity="language", set_active=True)
    ids = torch.randint(5, 1000, (4, 6), generator=torch.Generator().manual_seed(0))
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones(4, 6, dtype=torch.long),
        "language_ids": ["en", "de", "de", "en"],
    }
    stats = collect_routing_statistics(model, [batch], progress=False)
    assert set(stats.counts) == {"en", "de"}
    n_linears = len(model.base_model.mixture_routers[name])
    # in language mode the learned routers still produce logits; counts cover every linear and example
    total = sum(sum(row) for row in stats.counts["en"].values())
    assert total == n_linears * 2
    shares = stats.shares()
    assert set(shares["en"]) == {"0", "1"}
    assert all(sum(v) == pytest.approx(1.0) for v in shares["de"].values())
    png = stats.plot_heatmap(tmp_path / "routing.png")
    assert (tmp_path / "routing.png").stat().st_size > 1000 and png.endswith("routing.png")
    stats.save_json(tmp_path / "routing.json")
    again = RoutingStatistics(**__import__("json").loads((tmp_path / "routing.json").read_text()))
    assert again.counts == stats.counts


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_routing_summary_equals_routing_statistics_without_host_syncs(top_k):
    from molora_adapters.mixture.losses import routing_summary

    g = torch.Generator().manual_seed(0)
    logits = {"0-a": torch.randn(12, 3, generator=g), "1-b": torch.randn(12, 3, generator=g)}
    logits["1-b"][:, 2] = float("-inf")  # an expert absent from this layer
    mask = torch.ones(3, 4, dtype=torch.long)
    mask[1:, 2:] = 0
    stats = routing_statistics(logits, mask, top_k=top_k)
    summary = routing_summary(logits, mask, top_k=top_k)
    torch.testing.assert_close(summary, torch.tensor([stats["entropy"], stats["balance"]]), rtol=0, atol=1e-6)
