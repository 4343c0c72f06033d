"""The model card (``README.md``, Hugging Face format with YAML metadata) of a packaged OIE model.

Everything in it comes from the run's files and the package's manifest: ``results.json`` (scores, data counts,
decoding), ``training.json`` (budget, time, throughput, machine), ``recipe.json`` (the plan), the licences listed in
``molora_adapters/resources/oie_train/SOURCES.md`` and the published anchors of
:mod:`molora_adapters.oie.benchmarks.anchors`. Nothing is hard-coded: a run without a file gets "not recorded".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..benchmarks.anchors import PUBLISHED_ANCHORS
from .shipped import SHIPPED_MODEL_NAME

__all__ = ["data_licences", "model_card"]

SOURCES = Path(__file__).resolve().parents[2] / "resources" / "oie_train" / "SOURCES.md"
FEW_SHOT_SOURCE = "reoie2016 few-shot"
FEW_SHOT_LICENCE = "MIT (`LICENSE.Multi2OIE`, Re-OIE2016 es/pt)"
_ROW = re.compile(r"^\|\s*`[^`]+`\s*\|\s*`([^`]+)`[^|]*\|(.*)\|\s*$")


def data_licences(sources: Path = SOURCES) -> dict[str, str]:
    """Loader name -> licence text, read from the vendored data's ``SOURCES.md`` tables (first row per loader)."""
    out: dict[str, str] = {}
    for line in sources.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            loader, rest = match.groups()
            out.setdefault(loader, rest.rsplit("|", 1)[-1].strip())
    return out


def _read(root: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads((root / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _anchor(value: float) -> str:
    return f"{value:.3f}" if round(value, 3) == value else f"{value:.4f}"


def _secs(value: Any) -> str:
    return "–" if value is None else f"{value:.1f}" if isinstance(value, int | float) else str(value)


def _hub_id(name: str | None) -> str | None:
    """``name`` if it can be a Hub ``base_model`` (a repo id, not a local path or an ``embedded:`` name)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or ":" in name or Path(name).exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def _source_licence(source: str, licences: dict[str, str]) -> str:
    loader = "projected" if source.startswith("projected:") else source
    if source.startswith("projected:") and source != "projected:vendored":
        return "your own `molora project` output: the licence of its source texts"
    return licences.get(loader, "not listed in SOURCES.md (check before redistributing)")


def model_card(
    run_root: str | Path,
    manifest: dict[str, Any],
    *,
    license: str | None = None,
    name: str | None = None,
    scores: dict[str, Any] | None = None,
) -> str:
    """The card text of a packaged model built from the run in ``run_root``.

    Args:
        run_root (`str` or `Path`): the run directory (``results.json``, ``training.json``, ``recipe.json``).
        manifest (`dict`): the package manifest (dtype, base, files, stats).
        license (`str`, *optional*): the card's licence id; default: ``cc-by-sa-4.0`` when the training data includes
            CC BY-SA data (the vendored projected XQuAD corpus), else ``mit``.
        name (`str`, *optional*): the model's name (default: the manifest's, else the shipped model's name).
        scores (`dict`, *optional*): the package's own evaluation, ``{"rows": [...], "source": "how"}`` with rows in
            ``results.json``'s shape: they replace the run's rows of the same ``key`` (the run scored the model
            before packaging), and the card names their source.
    """
    from huggingface_hub import EvalResult, ModelCardData

    root = Path(run_root)
    results = _read(root, "results.json") or {}
    training = _read(root, "training.json") or results.get("training") or {}
    recipe = _read(root, "recipe.json") or results.get("recipe") or {}
    name = name or manifest.get("name") or SHIPPED_MODEL_NAME
    licences = data_licences()
    data = results.get("data", {})
    sources = dict(data.get("sources", {}))
    few_shot = data.get("few_shot_sentences", {}) or {}
    source_licences = {s: _source_licence(s, licences) for s in sources}
    if any(few_shot.values()):
        source_licences[FEW_SHOT_SOURCE] = FEW_SHOT_LICENCE
    if license is None:
        license = "cc-by-sa-4.0" if any("CC BY-SA" in v for v in source_licences.values()) else "mit"
    rows = [r for r in results.get("results", []) if isinstance(r, dict)]
    if scores:
        own = {r["key"]: r for r in scores["rows"]}
        rows = [own.pop(r["key"], r) for r in rows] + list(own.values())
    mixture = _trains_mixture(recipe)
    routed = {*recipe.get("experts", ()), *(recipe.get("expert_fallback") or {})} if mixture else set()
    languages = sorted({*routed, *(r["lang"] for r in rows)})
    base = manifest.get("base", {})
    eval_results = [
        EvalResult(
            task_type="open-information-extraction",
            task_name="Open Information Extraction",
            dataset_type=r["key"].partition(":")[0],
            dataset_name=r["benchmark"],
            dataset_config=r["lang"],
            dataset_split="dev" if r["key"].startswith("dev:") else "test",
            metric_type="f1",
            metric_value=round(r["f1"], 4),
            metric_name=f"{r['scorer']} F1",
        )
        for r in rows
        if r.get("f1") is not None
    ]
    meta = ModelCardData(
        language=languages or None,
        license=license,
        library_name="molora-adapters",
        base_model=base.get("original_model") or _hub_id(base.get("name_or_path")),
        datasets=sorted(source_licences) or None,
        metrics=["f1", "auc"],
        tags=[
            "open-information-extraction",
            *(["mixture-of-lora"] if mixture else []),
            "multilingual",
            "adapters",
            "molora-adapters",
        ],
        model_name=name,
        eval_results=eval_results or None,
    )
    loader = "" if name == SHIPPED_MODEL_NAME else f'"{name}"'
    parts = [
        f"---\n{meta.to_yaml()}\n---\n",
        f"# {name}\n",
        "Multilingual open information extraction (Multi2OIE tagging head) on "
        f"`{base.get('name_or_path', 'its base encoder')}`"
        + (f" ({base['original_model']})" if base.get("original_model") else "")
        + ", trained with molora-adapters"
        + (
            " (full fine-tuning: word embeddings, encoder and head in one stage"
            if list(recipe.get("stages", ())) == ["full"]
            else f" (stages: {', '.join(recipe['stages'])}"
            if recipe.get("stages")
            else ""
        )
        + (
            f"; Mixture-of-LoRA experts {', '.join(recipe['experts'])}, top-{recipe.get('top_k')}, "
            f"{recipe.get('granularity')} routing)"
            if recipe.get("experts") and mixture
            else ")"
            if recipe.get("stages")
            else ""
        )
        + ".\n",
        "## Usage\n",
        "```bash\n"
        + ("molora extract" if not loader else f"molora extract --model {name}")
        + " --input sentences.txt --output tuples.jsonl\n```\n",
        "```python\nfrom molora_adapters.oie import OIEPipeline\n\n"
        f"pipe = OIEPipeline.from_pretrained({loader})\n"
        'print(pipe("Barack Obama was born in Hawaii ."))\n```\n',
        _scores_section(rows, results.get("decoding"), scores),
        _training_section(recipe, training, sources, few_shot, data, source_licences),
        _package_section(manifest),
        _limitations_section(recipe),
    ]
    return "\n".join(parts).rstrip() + "\n"


def _scores_section(rows: list[dict], decoding: dict | None, scores: dict[str, Any] | None = None) -> str:
    if not rows:
        return "## Scores\n\nNot recorded (the run has no `results.json`).\n"
    head = (
        "| evaluation | split | sentences | P | R | F1 | AUC | published |\n"
        "|---|---|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for split in ("test", "dev"):
        for r in rows:
            if ("dev" if r["key"].startswith("dev:") else "test") != split:
                continue
            anchor = PUBLISHED_ANCHORS.get(r["key"])
            published = (
                f"{anchor[0]} {_anchor(anchor[1])}"
                + (f" / AUC {_anchor(anchor[2])}" if anchor[2] is not None else "")
                if anchor
                else ""
            )
            lines.append(
                f"| {r['benchmark']} (`{r['key']}`) | {split} | {r.get('sentences', '')} | {_fmt(r.get('precision'))} "
                f"| {_fmt(r.get('recall'))} | {_fmt(r.get('f1'))} | {_fmt(r.get('auc'))} | {published} |"
            )
    text = (
        "## Scores\n\nScored by the project's scorers (official-equal CaRB, BenchIE and lexical Re-OIE2016), as "
        "`molora evaluate` computes them. Dev rows (CaRB en dev, the projected dev slices) are where checkpoints, "
        "decoding and thresholds were chosen; test rows are reported only.\n\n"
        + (
            f"Rows of {len(scores['rows'])} sets score this package itself (`{scores['source']}`); the others "
            "score the trained model before packaging.\n\n"
            if scores
            else ""
        )
        + head
        + "\n".join(lines)
        + "\n"
    )
    if decoding:
        text += "\nDecoding: " + ", ".join(f"`{k}={v}`" for k, v in decoding.items()) + ".\n"
    return text


def _training_section(recipe, training, sources, few_shot, data, licences) -> str:
    lines = ["## Training\n"]
    if sources or few_shot:
        lines.append("| data | sentences | licence |\n|---|---|---|")
        for source, count in sources.items():
            shown = ", ".join(f"{k} {v}" for k, v in count.items()) if isinstance(count, dict) else count
            lines.append(f"| `{source}` | {shown} | {licences[source]} |")
        if any(few_shot.values()):
            shown = ", ".join(f"{k} {v}" for k, v in few_shot.items())
            lines.append(
                f"| {FEW_SHOT_SOURCE} (English originals in no test set) | {shown} | {licences[FEW_SHOT_SOURCE]} |"
            )
        lines.append("")
    else:
        lines.append("Training data: not recorded (the run has no `results.json`).\n")
    if data.get("dev_sentences"):
        held = ", ".join(f"{k} {v}" for k, v in data["dev_sentences"].items())
        lines.append(f"Held out from the projected data as dev sets (sentences): {held}.\n")
    if training:
        budget = training.get("time_budget")
        lines.append(
            f"Budget: {f'{budget:g} s of training' if budget else 'step-based (no time budget)'}; trained "
            f"{_secs(training.get('train_seconds'))} s ({_secs(training.get('wall_seconds'))} s with what the stage "
            f"clock excludes), {training.get('samples')} (sentence, predicate) samples, "
            f"{_secs(training.get('samples_per_second'))} samples/s."
        )
        stages = training.get("stages") or []
        if stages:
            lines.append("\n| stage | steps | train loss | seconds |\n|---|---:|---:|---:|")
            for s in stages:
                lines.append(
                    f"| {s.get('name')} | {s.get('global_step')} | {_fmt(s.get('train_loss'))} | "
                    f"{_secs(s.get('clock_seconds') or s.get('train_seconds'))} |"
                )
        machine = training.get("machine")
        lines.append(
            "\nMachine: "
            + (", ".join(f"{k} {v}" for k, v in machine.items()) if machine else "not recorded by this run")
            + ".\n"
        )
    else:
        lines.append("Budget and machine: not recorded (the run has no `training.json`).\n")
    if recipe:
        keys = ("model", "stages", "experts", "top_k", "granularity", "lora_rank", "max_steps", "time_budget",
                "batch_size", "max_length", "seed")  # fmt: skip
        if "mixture" not in recipe.get("stages", ()):  # the mixture's settings did not shape this model
            keys = tuple(k for k in keys if k not in ("experts", "top_k", "granularity", "lora_rank"))
        shown = ", ".join(f"`{k}={recipe[k]}`" for k in keys if k in recipe)
        lines.append(f"Recipe (full plan in the run's `recipe.json`): {shown}.\n")
    return "\n".join(lines)


def _package_section(manifest: dict[str, Any]) -> str:
    files = manifest.get("files", {})
    size = sum(m["size"] for m in files.values())
    stats = manifest.get("stats", {})
    rows = stats.get("changed_rows") or {}
    base = manifest.get("base", {})
    return (
        "## Package\n\n"
        f"Stored as `{manifest.get('dtype')}` differences from `{base.get('name_or_path')}` (weights sha256 "
        f"`{str(base.get('weights_sha256', ''))[:16]}…`): {stats.get('tensors_stored')} tensors, "
        f"{stats.get('parameters_stored')} values, {size / 1e6:.1f} MB in {len(files)} files"
        + (f"; changed embedding rows: {', '.join(f'{v}' for v in rows.values())}" if rows else "")
        + ". Loading checks every file's sha256 and the base encoder's identity.\n"
    )


def _trains_mixture(recipe: dict[str, Any]) -> bool:
    """Whether the run trained a mixture (a recipe without ``stages`` is taken to be the default staged plan)."""
    return "mixture" in recipe.get("stages", ("mixture",))


def _limitations_section(recipe: dict[str, Any]) -> str:
    mixture = _trains_mixture(recipe)
    fallback = (recipe.get("expert_fallback") or {}) if mixture else {}
    items = [
        "Sentences longer than the encoder's window are split into chunks of whole words; tuples never span chunks.",
        "Chinese and Japanese are split into characters (tagging is character level); other unspaced scripts "
        "(Thai, Khmer, ...) are split on whitespace only, so a sentence without spaces is one word.",
        *(
            ["Without a language code (`--lang`), routing uses only what the tokens tell the routers."]
            if mixture
            else []
        ),
        "The multilingual training data is projected from English silver tuples: it is noisy, and languages "
        "with few or no sentences are weaker.",
    ]
    if fallback:
        items.append(
            "Languages without an expert of their own route to a related one: "
            + ", ".join(f"{k} -> {v}" for k, v in fallback.items())
            + "."
        )
    return "## Known limitations\n\n" + "\n".join(f"- {i}" for i in items) + "\n"
