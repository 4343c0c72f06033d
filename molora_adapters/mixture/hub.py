"""Pushing mixtures to the Hugging Face Hub, and resolving the experts of a pulled mixture.

Two layouts are supported:

- **single repo** (default): the repo is exactly what :meth:`save_adapter_mixture` writes: ``mixture_config.json`` and
  the router weights at the root, one standard ``adapters`` LoRA folder per expert (``en/``, ``de/``, ...), plus model
  cards. One commit.
- **one repo per expert** (``per_expert_repos=True``): every expert is a standard ``adapters`` repo
  (``{repo_id}-{expert}`` by default) that plain ``model.load_adapter("user/repo-en")`` loads; the mixture repo holds
  the config, the router weights and a card, and its ``mixture_config.json`` names each expert's repo *and the commit*
  it was pushed as (``expert_repos``), so a pull is reproducible and works offline from the cache. Expert repos are
  committed first and the mixture repo last: a failure mid-way never leaves a mixture repo describing missing experts.

Files are staged in a temporary directory written by :meth:`save_adapter_mixture`, so the model and any local
directory are never touched, and each repo gets one atomic commit (``upload_folder``) that also removes files of an
earlier push (``.gitattributes`` is kept).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData, snapshot_download
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..version import __version__
from .config import MixtureConfig
from .loading import MIXTURE_CONFIG_NAME

logger = logging.getLogger(__name__)

EXPERT_REPOS_KEY = "expert_repos"
CARD_NAME = "README.md"
CARD_TAGS = ("adapter-transformers", "molora-adapters", "lora")
MIXTURE_CARD_TAGS = (*CARD_TAGS, "mixture-of-lora")
# ISO 639-1/2/3 code with an optional BCP-47 region/script subtag, e.g. "en", "yue", "pt-BR", "zh-Hans".
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def expert_repo_id(repo_id: str, expert: str) -> str:
    """Default repo of one expert in the per-expert layout: ``"user/mix"`` + ``"en"`` -> ``"user/mix-en"``."""
    return f"{repo_id}-{expert}"


def _language_tags(config: MixtureConfig, language_tags: Mapping[str, str | Sequence[str] | None] | None):
    """Expert -> list of Hub language tags.

    Explicit ``language_tags`` entries are validated; defaults come from ``config.languages`` (code -> expert) and keep
    only codes that look like language codes (an expert called ``"legal"`` gets no language tag).
    """
    tags: dict[str, list[str]] = {e: [] for e in config.experts}
    for code, expert in config.languages.items():
        if _LANGUAGE_TAG.match(code) and code not in tags[expert]:
            tags[expert].append(code)
    for expert, value in (language_tags or {}).items():
        if expert not in tags:
            raise ValueError(
                f"`language_tags` names unknown expert `{expert}`; experts are {config.experts}."
            )
        codes = [] if value is None else [value] if isinstance(value, str) else list(value)
        bad = [c for c in codes if not isinstance(c, str) or not _LANGUAGE_TAG.match(c)]
        if bad:
            raise ValueError(
                f"`language_tags[{expert!r}]` must be ISO 639 language codes such as 'en' or 'pt-BR' (or None for "
                f"no tag), got {bad!r}."
            )
        tags[expert] = codes
    return tags


def _base_model(model_name: str | None) -> str | None:
    """``model_name`` if it can be a Hub ``base_model`` (a repo id, not a local path)."""
    if not model_name or os.path.exists(model_name):
        return None
    try:
        validate_repo_id(model_name)
    except HFValidationError:
        return None
    return model_name


def _card(data: ModelCardData, body: str) -> ModelCard:
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")


def _expert_card(
    model,
    mixture: str,
    expert: str,
    languages: list[str],
    load_code: str,
    mixture_ref: str,
    card_kwargs: dict,
) -> ModelCard:
    model_type = model.config.model_type
    base = _base_model(getattr(model, "model_name", None))
    data = ModelCardData(
        language=languages or None,
        library_name="adapters",
        tags=[*CARD_TAGS, model_type, *card_kwargs.get("tags", [])],
        base_model=base,
        license=card_kwargs.get("license"),
        datasets=card_kwargs.get("datasets"),
    )
    lang = ", ".join(f"`{c}`" for c in languages) or "none"
    body = f"""
# LoRA expert `{expert}` of the Mixture-of-LoRA `{mixture}`

A standard [`adapters`](https://github.com/adapter-hub/adapters) LoRA adapter for `{base or model_type}`,
trained as the `{expert}` expert (language: {lang}) of the mixture {mixture_ref}, made with `molora-adapters`.

## Usage on its own

```python
from adapters import AutoAdapterModel

model = AutoAdapterModel.from_pretrained("{base or "<base model>"}")
{load_code}
```
"""
    return _card(data, body)


def _mixture_card(
    model,
    name: str,
    repo_id: str,
    config: MixtureConfig,
    languages: dict[str, list[str]],
    locations: dict[str, str],
    card_kwargs: dict,
) -> ModelCard:
    model_type = model.config.model_type
    base = _base_model(getattr(model, "model_name", None))
    all_languages = sorted({c for codes in languages.values() for c in codes})
    data = ModelCardData(
        language=all_languages or None,
        library_name="adapters",
        tags=[*MIXTURE_CARD_TAGS, model_type, *card_kwargs.get("tags", [])],
        base_model=base,
        license=card_kwargs.get("license"),
        datasets=card_kwargs.get("datasets"),
    )
    rows = "\n".join(f"| `{e}` | {', '.join(languages[e]) or '-'} | {locations[e]} |" for e in config.experts)
    routing = config.to_dict()
    routing.pop("experts")
    body = f"""
# Mixture-of-LoRA `{name}`

{config.n_experts} LoRA experts for `{base or model_type}` with one learned router per adapted linear layer
(`top_k={config.top_k}`, granularity `{routing["granularity"]}`), made with `molora-adapters` {__version__}.

## Experts

| expert | language(s) | location |
|---|---|---|
{rows}

## Routing config

```json
{json.dumps(routing, indent=2, sort_keys=True)}
```

## Usage

```python
import molora_adapters  # registers the mixture API on adapters models
from adapters import AutoAdapterModel

model = AutoAdapterModel.from_pretrained("{base or "<base model>"}")
model.load_adapter_mixture("{repo_id}", set_active=True)
```
"""
    return _card(data, body)


def _add_note(err: BaseException, note: str) -> None:
    if hasattr(err, "add_note"):  # Python >= 3.11
        err.add_note(note)


class MixtureHubMixin:
    """``push_adapter_mixture_to_hub`` for ``adapters`` models (attached by ``molora_adapters._integration``)."""

    def push_adapter_mixture_to_hub(
        self,
        repo_id: str,
        name: str,
        *,
        per_expert_repos: bool = False,
        expert_repo_ids: Mapping[str, str] | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
        language_tags: Mapping[str, str | Sequence[str] | None] | None = None,
        with_head: bool | str = False,
        use_safetensors: bool = False,
        card_kwargs: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> list[CommitInfo]:
        """Push mixture ``name`` to the Hugging Face Hub, to one repo or to one repo per expert.

        Each expert is a standard ``adapters`` LoRA adapter with a model card that carries its language tag and
        ``library_name: adapters``; the mixture repo holds ``mixture_config.json``, the router weights and a card
        listing the experts and the routing config. Each repo gets one atomic commit; files of an earlier push that
        the new one lacks are removed in that commit. Nothing local is modified.

        Args:
            repo_id (`str`): the mixture repo, e.g. ``"user/oie-mixture"`` (created if needed).
            name (`str`): the mixture to push.
            per_expert_repos (`bool`, *optional*, defaults to `False`): push every expert to its own repo (then
                plain ``load_adapter(expert_repo)`` works) and the mixture repo last, referencing the experts' repos
                and commits.
            expert_repo_ids (`dict[str, str]`, *optional*): expert -> repo id in the per-expert layout; defaults to
                ``f"{repo_id}-{expert}"``.
            private (`bool`, *optional*): visibility of repos that get created.
            token (`str` or `bool`, *optional*): Hub token (default: the logged-in one).
            commit_message (`str`, *optional*): commit message (a default names the mixture / expert).
            revision (`str`, *optional*): branch to commit to (created if missing); defaults to ``main``.
            language_tags (`dict`, *optional*): expert -> language code(s) for the cards' ``language`` field, or None
                for none. Defaults to the codes of ``MixtureConfig.languages`` that look like ISO 639 codes.
            with_head (`bool` or `str`, *optional*, defaults to `False`): also push a prediction head (see
                :meth:`save_adapter_mixture`).
            use_safetensors (`bool`, *optional*, defaults to `False`): push safetensors weights instead of the
                torch files that plain ``load_adapter`` reads by default.
            card_kwargs (`dict`, *optional*): ``license``, ``datasets`` and extra ``tags`` for the cards.
            endpoint (`str`, *optional*): Hub endpoint (default: ``HF_ENDPOINT`` / huggingface.co).

        Returns:
            `list[CommitInfo]`: one commit per repo (``str(info)`` is its URL), experts first, the mixture last.
        """
        config = self._get_mixture_routers(name).config
        languages = _language_tags(config, language_tags)
        card_kwargs = dict(card_kwargs or {})
        unknown = sorted(set(card_kwargs) - {"license", "datasets", "tags"})
        if unknown:
            raise ValueError(f"Unknown `card_kwargs` {unknown}; supported: license, datasets, tags.")
        validate_repo_id(repo_id)
        expert_repos: dict[str, str] = {}
        if per_expert_repos:
            extra = sorted(set(expert_repo_ids or {}) - set(config.experts))
            if extra:
                raise ValueError(
                    f"`expert_repo_ids` names unknown experts {extra}; experts are {config.experts}."
                )
            expert_repos = {
                e: (expert_repo_ids or {}).get(e) or expert_repo_id(repo_id, e) for e in config.experts
            }
            for rid in expert_repos.values():
                validate_repo_id(rid)
            if len({*expert_repos.values(), repo_id}) != len(expert_repos) + 1:
                raise ValueError(
                    f"Expert repos {expert_repos} must be distinct from each other and from `{repo_id}`."
                )
        elif expert_repo_ids:
            raise ValueError("`expert_repo_ids` needs `per_expert_repos=True`.")

        api = HfApi(
            endpoint=endpoint, token=token, library_name="molora_adapters", library_version=__version__
        )
        commits: list[CommitInfo] = []

        def upload(rid: str, folder: Path, message: str) -> CommitInfo:
            api.create_repo(rid, private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(rid, branch=revision, exist_ok=True)
            # One commit that also removes files of an earlier push (`.gitattributes` is always kept).
            info = api.upload_folder(
                repo_id=rid,
                folder_path=folder,
                commit_message=commit_message or message,
                revision=revision,
                delete_patterns="*",
            )
            commits.append(info)
            return info

        with tempfile.TemporaryDirectory(prefix="molora-push-") as stage:
            folder = Path(stage) / "mixture"
            self.save_adapter_mixture(folder, name, with_head=with_head, use_safetensors=use_safetensors)
            try:
                locations: dict[str, str] = {}
                pins: dict[str, dict[str, str]] = {}
                for expert in config.experts:
                    if per_expert_repos:
                        rid = expert_repos[expert]
                        load = f'model.load_adapter("{rid}", set_active=True)'
                        ref = f"[`{repo_id}`]({api.endpoint}/{repo_id})"
                        _expert_card(self, name, expert, languages[expert], load, ref, card_kwargs).save(
                            folder / expert / CARD_NAME
                        )
                        info = upload(
                            rid, folder / expert, f"Upload LoRA expert `{expert}` of mixture `{name}`"
                        )
                        shutil.rmtree(folder / expert)  # the mixture repo references the expert repo instead
                        pins[expert] = {"repo_id": rid, "revision": info.oid}
                        locations[expert] = f"[`{rid}`]({api.endpoint}/{rid}) @ `{info.oid[:10]}`"
                    else:
                        load = (
                            "from molora_adapters.mixture.hub import download_mixture_expert\n\n"
                            f'model.load_adapter(download_mixture_expert("{repo_id}", "{expert}"), set_active=True)'
                        )
                        ref = "stored in the same repo"
                        _expert_card(self, name, expert, languages[expert], load, ref, card_kwargs).save(
                            folder / expert / CARD_NAME
                        )
                        locations[expert] = f"`{expert}/`"
                if pins:
                    config_file = folder / MIXTURE_CONFIG_NAME
                    saved = json.loads(config_file.read_text(encoding="utf-8"))
                    saved[EXPERT_REPOS_KEY] = pins
                    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True), encoding="utf-8")
                card = _mixture_card(self, name, repo_id, config, languages, locations, card_kwargs)
                card.save(folder / CARD_NAME)
                # Last: by now every expert it references is committed.
                upload(repo_id, folder, f"Upload Mixture-of-LoRA `{name}`")
            except Exception as err:
                if commits:
                    done = ", ".join(f"{c.repo_url.repo_id}@{c.oid[:10]}" for c in commits)
                    note = (
                        f"Pushed before the failure (complete standalone adapters): {done}; "
                        f"no mixture was committed to `{repo_id}`."
                    )
                    logger.error(note)
                    _add_note(err, note)
                raise
        return commits


def resolve_expert_dirs(
    path: Path, saved: dict, experts: Sequence[str], token: str | bool | None = None
) -> dict[str, Path]:
    """Local folder of every expert of a saved mixture: ``path/<expert>``, or a Hub snapshot of its pinned repo.

    All experts are resolved before any is loaded, so a missing one fails before the model is changed.

    Args:
        path (`Path`): the mixture directory (local or a Hub snapshot).
        saved (`dict`): its ``mixture_config.json``.
        experts (`list[str]`): the experts to resolve.
        token (`str` or `bool`, *optional*): Hub token for the expert repos.
    """
    repos = saved.get(EXPERT_REPOS_KEY) or {}
    dirs: dict[str, Path] = {}
    for expert in experts:
        if (path / expert).is_dir():
            dirs[expert] = path / expert
            continue
        pin = repos.get(expert)
        if not pin:
            raise FileNotFoundError(
                f"Mixture at {path} lacks the expert folder `{expert}/` and names no Hub repo for it in "
                f"`{EXPERT_REPOS_KEY}`."
            )
        try:
            local = snapshot_download(
                pin["repo_id"],
                revision=pin.get("revision"),
                token=token,
                library_name="molora_adapters",
                library_version=__version__,
            )
        except Exception as err:  # offline without cache, deleted repo, ...
            raise OSError(
                f"Could not fetch expert `{expert}` from Hub repo {pin['repo_id']!r} at revision "
                f"{pin.get('revision')!r} ({type(err).__name__}: {err})."
            ) from err
        dirs[expert] = Path(local)
    return dirs


def download_mixture_expert(
    repo_id: str, expert: str, revision: str | None = None, token: str | bool | None = None
) -> str:
    """Local folder of one expert of a Hub mixture, for plain ``adapters``' ``model.load_adapter(folder)``.

    ``adapters``' ``load_adapter("user/repo")`` cannot take a subfolder; for a single-repo mixture use this instead
    (per-expert repos load directly: ``load_adapter("user/repo-en")``). Only the expert's files are downloaded.

    Args:
        repo_id (`str`): the mixture repo.
        expert (`str`): the expert.
        revision (`str`, *optional*): the mixture repo's revision.
        token (`str` or `bool`, *optional*): Hub token.
    """
    local = Path(
        snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            allow_patterns=[MIXTURE_CONFIG_NAME, f"{expert}/*"],
            library_name="molora_adapters",
            library_version=__version__,
        )
    )
    saved = json.loads((local / MIXTURE_CONFIG_NAME).read_text(encoding="utf-8"))
    experts = MixtureConfig.from_dict(saved["config"]).experts
    if expert not in experts:
        raise ValueError(
            f"`expert` {expert!r} is not an expert of mixture {repo_id!r}; experts are {experts}."
        )
    return str(resolve_expert_dirs(local, saved, [expert], token=token)[expert])
