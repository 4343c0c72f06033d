"""Routing analytics: how often each expert is selected, per layer and per language, and a heatmap of it."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from .losses import top_k_selection


@dataclass
class RoutingStatistics:
    """Expert selection counts of a mixture, by language and by adapted layer.

    Args:
        experts (`list[str]`): the mixture's experts (column order of every count vector).
        top_k (`int`): experts counted per routing decision.
        counts (`dict[str, dict[str, list[float]]]`): language -> layer key -> selections per expert.
    """

    experts: list[str]
    top_k: int
    counts: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def update(
        self, router_logits: dict[str, torch.Tensor], languages: list[str], attention_mask=None
    ) -> None:
        """Add one forward pass's routing (``router_logits`` as returned with ``output_router_logits=True``)."""
        batch = len(languages)
        lang_index = {lang: i for i, lang in enumerate(sorted(set(languages)))}
        example_lang = torch.tensor([lang_index[lang] for lang in languages])
        for key, logits in router_logits.items():
            logits = logits.detach().float().cpu()
            n = logits.shape[0]
            if n == batch:  # one decision per sequence
                owner, keep = example_lang, torch.ones(n, dtype=torch.bool)
            elif n % batch == 0:  # one decision per token, (batch * seq) rows
                owner = example_lang.repeat_interleave(n // batch)
                keep = (
                    attention_mask.reshape(-1).bool().cpu()
                    if attention_mask is not None
                    else torch.ones(n, dtype=torch.bool)
                )
            else:
                raise ValueError(
                    f"Router logits of `{key}` have {n} rows, not a multiple of the batch size {batch}."
                )
            k = min(self.top_k, int(torch.isfinite(logits[0]).sum()))
            selected = top_k_selection(logits, k) * keep[:, None]  # (N, E)
            per_lang = torch.zeros(len(lang_index), logits.shape[-1]).index_add_(0, owner, selected)
            for lang, i in lang_index.items():
                row = self.counts.setdefault(lang, {}).setdefault(key, [0.0] * len(self.experts))
                for e, c in enumerate(per_lang[i].tolist()):
                    row[e] += c

    def shares(self, by_layer: bool = True) -> dict[str, dict[str, list[float]]]:
        """Selection shares (rows sum to 1): language -> layer key (or transformer layer index) -> per expert."""
        out: dict[str, dict[str, list[float]]] = {}
        for lang, layers in self.counts.items():
            grouped: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(self.experts))
            for key, row in layers.items():
                group = key.split("-")[0] if by_layer else key
                grouped[group] = [a + b for a, b in zip(grouped[group], row, strict=True)]
            out[lang] = {
                g: [c / (sum(row) or 1.0) for c in row]
                for g, row in sorted(
                    grouped.items(), key=lambda kv: (int(kv[0]) if kv[0].lstrip("-").isdigit() else 0, kv[0])
                )
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"experts": self.experts, "top_k": self.top_k, "counts": self.counts}

    def save_json(self, path: str | os.PathLike) -> None:
        from ..utils.io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))

    def plot_heatmap(self, path: str | os.PathLike, title: str | None = None) -> str:
        """Save a PNG: one panel per language, transformer layers x experts, colour = selection share."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("Plots need matplotlib: pip install 'molora-adapters[plot]'.") from err
        shares = self.shares(by_layer=True)
        langs = sorted(shares)
        if not langs:
            raise ValueError(
                "No routing statistics collected yet; call `update` or `collect_routing_statistics`."
            )
        fig, axes = plt.subplots(
            1,
            len(langs),
            figsize=(2.2 + 1.6 * len(langs), 0.6 + 0.35 * max(len(v) for v in shares.values())),
            squeeze=False,
        )
        image = None
        for ax, lang in zip(axes[0], langs, strict=True):
            layers = list(shares[lang])
            image = ax.imshow(
                [shares[lang][g] for g in layers], vmin=0, vmax=1, cmap="viridis", aspect="auto"
            )
            ax.set_title(lang)
            ax.set_xticks(range(len(self.experts)), self.experts, rotation=90)
            ax.set_yticks(range(len(layers)), [f"L{g}" for g in layers])
        fig.colorbar(image, ax=axes[0].tolist(), label="selection share")
        fig.suptitle(title or f"Expert selection share per layer (top-{self.top_k})")
        path = str(path)
        tmp = f"{path}.tmp.png"
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        plt.close(fig)
        os.replace(tmp, path)
        return path


@torch.no_grad()
def collect_routing_statistics(
    model: torch.nn.Module,
    batches: Iterable[dict[str, Any]],
    mixture: str | None = None,
    top_k: int | None = None,
    progress: bool = True,
) -> RoutingStatistics:
    """Run ``model`` over ``batches`` and count expert selections per language and layer.

    Args:
        model (`torch.nn.Module`): an ``adapters`` model with an active mixture.
        batches (`Iterable[dict]`): model inputs; each also holds ``languages`` (one code per example, not passed to
            the model) or ``language_ids``.
        mixture (`str`, *optional*): the mixture whose experts label the counts; defaults to the only mixture.
        top_k (`int`, *optional*): selections counted per decision; defaults to the mixture's ``top_k``.
        progress (`bool`, *optional*, defaults to `True`): show a tqdm bar.
    """
    mixtures = model.adapter_mixtures
    if mixture is None:
        if len(mixtures) != 1:
            raise ValueError(f"Pass `mixture=`; this model has mixtures {sorted(mixtures)}.")
        mixture = next(iter(mixtures))
    config = mixtures[mixture]
    stats = RoutingStatistics(list(config.experts), top_k or config.top_k)
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="routing statistics", disable=not progress):
            batch = dict(batch)
            languages = batch.pop("languages", None) or batch.get("language_ids")
            if languages is None:
                raise ValueError(
                    "Each batch needs `languages` (or `language_ids`) to group routing by language."
                )
            if isinstance(languages, torch.Tensor):
                languages = [config.experts[i] for i in languages.tolist()]
            out = model(**batch, output_router_logits=True)
            stats.update(out["router_logits"], [str(x) for x in languages], batch.get("attention_mask"))
    finally:
        model.train(was_training)
    return stats
