"""Shared samples and helpers of the OIE tests (gold tuples in several languages, a tiny training loop)."""

from __future__ import annotations

import torch

from molora_adapters.data.corpora import build_records

# (language, sentence, [(arg0, relation, [args...]), ...]); texts are aligned by contiguous search.
GOLD_SAMPLES = [
    (
        "en",
        "Barack Obama was born in Hawaii and studied law at Harvard .",
        [("Barack Obama", "was born in", ["Hawaii"]), ("Barack Obama", "studied", ["law", "at Harvard"])],
    ),
    (
        "de",
        "Angela Merkel war lange Zeit Bundeskanzlerin von Deutschland .",
        [("Angela Merkel", "war", ["lange Zeit", "Bundeskanzlerin von Deutschland"])],
    ),
    (
        "es",
        "Ella le regaló a su hermano un libro sobre historia antigua .",
        [("Ella", "regaló", ["un libro sobre historia antigua", "a su hermano"])],
    ),
    (
        "pt",
        "Os cientistas descobriram que o medicamento reduz a inflamação .",
        [
            ("Os cientistas", "descobriram", ["que o medicamento reduz a inflamação"]),
            ("o medicamento", "reduz", ["a inflamação"]),
        ],
    ),
    ("zh", "该公司去年在柏林发布了一款新产品。", [("该公司", "发布了", ["一款新产品", "在柏林", "去年"])]),
    (
        "ar",
        "أعلنت الشركة عن منتج جديد في برلين العام الماضي .",
        [("الشركة", "أعلنت", ["عن منتج جديد", "في برلين", "العام الماضي"])],
    ),
]


def gold_records():
    """The samples as a `datasets.Dataset` in OIE_FEATURES (every tuple must align)."""
    parts = []
    for i, (lang, sentence, tuples) in enumerate(GOLD_SAMPLES):
        raws = [{"arg0": a0, "relation": rel, "args": list(args)} for a0, rel, args in tuples]
        ds = build_records([(sentence, None, raws, {})], language=lang, id_prefix=f"gold{i}")
        assert len(ds[0]["extractions"]) == len(tuples), (sentence, ds[0]["meta"])
        parts.append(ds)
    import datasets

    return datasets.concatenate_datasets(parts)


def train_steps(
    model,
    features,
    collator,
    *,
    steps: int,
    lr: float = 3e-3,
    head_lr: float | None = None,
    batch_size: int = 8,
    seed: int = 0,
):
    """A plain AdamW loop over ``features`` (``head_lr`` for the prediction heads, if given); returns the losses."""
    torch.manual_seed(seed)
    model.train()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in named if n.startswith("heads.")]
    body = [p for n, p in named if not n.startswith("heads.")]
    opt = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": head_lr or lr}])
    loader = torch.utils.data.DataLoader(
        features.remove_columns(
            [c for c in ("record_id", "language", "length") if c in features.column_names]
        ),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(seed),
    )
    losses, it = [], iter(loader)
    for _ in range(steps):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        out = model(**batch, return_dict=True)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    model.eval()
    return losses
