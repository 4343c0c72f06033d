"""Hub push / pull of mixtures against a loopback Hub (tests/hub_utils.py); nothing leaves 127.0.0.1."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from adapters import AutoAdapterModel, LoRAConfig
from huggingface_hub import HfApi, ModelCard, configure_http_backend, constants, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from molora_adapters.mixture.hub import download_mixture_expert
from tests.conftest import tiny_adapter_model, tiny_config
from tests.hub_utils import LoopbackHub, point_client_at

EXPERTS = ["en", "de", "zh"]
EXPERT_CFG = LoRAConfig(r=4, alpha=8, init_weights="bert", selfattn_lora=True, intermediate_lora=True)
TOKEN = "hf_loopback_token"
REPO = "user/oie-mix"
TAGS = {"adapter-transformers", "molora-adapters", "lora"}


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """Yields ``make(fail_commits=None) -> LoopbackHub``: a started loopback hub the client points at."""
    servers: list[LoopbackHub] = []
    refused: list[str] = []
    monkeypatch.setattr(
        tempfile, "tempdir", str(_mkdir(tmp_path / "tmp"))
    )  # staging dirs land where we can see them

    def make(fail_commits: set[int] | None = None) -> LoopbackHub:
        hub = LoopbackHub(fail_commits=fail_commits, lifetime_s=60).start()
        servers.append(hub)
        refused.extend(point_client_at(hub, tmp_path / "hf_home", monkeypatch))
        return hub

    yield make
    for hub in servers:
        hub.stop()
    configure_http_backend()  # fresh default sessions (offline again once monkeypatch restores the constants)
    assert refused == [], f"a test tried to reach {refused}"
    for hub in servers:
        assert hub.unhandled == [], hub.unhandled


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mixture_model(seed: int = 0):
    model = tiny_adapter_model("bert", seed=seed)
    name = model.add_adapter_mixture(EXPERTS, name="oie", top_k=2, expert_config=EXPERT_CFG, set_active=True)
    # Train-like perturbation so routers are not at their (seeded) init: a pull must bring the pushed weights.
    with torch.no_grad():
        for param in model.base_model.mixture_routers.parameters():
            param.add_(torch.randn_like(param))
    return model, name


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1:, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _out(model):
    with torch.no_grad():
        return model(**_batch()).last_hidden_state


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _expert_files(prefix: str = "") -> set[str]:
    return {f"{prefix}{f}" for f in ("README.md", "adapter_config.json", "pytorch_adapter.bin")}


# ---- single repo ---------------------------------------------------------------------------------------------------
def test_single_repo_push_files_cards_and_exact_pull(hub_env, tmp_path):
    hub = hub_env()
    model, name = _mixture_model()
    expected = _out(model)

    commits = model.push_adapter_mixture_to_hub(REPO, name, token=TOKEN)
    assert hub.authorizations == {f"Bearer {TOKEN}"}  # every request carried the token

    assert len(commits) == 1 and commits[0].oid == hub.repos[REPO].branches["main"]
    files = {".gitattributes", "README.md", "mixture_config.json", "pytorch_model_mixture.bin"}
    for expert in EXPERTS:
        files |= _expert_files(f"{expert}/")
    assert set(hub.files(REPO)) == files
    assert sorted(HfApi().list_repo_files(REPO)) == sorted(files)
    assert [msg for _, msg in hub.repos[REPO].log] == ["initial commit", "Upload Mixture-of-LoRA `oie`"]

    card = ModelCard.load(REPO)  # mixture card: all languages, experts and routing
    assert card.data.language == sorted(EXPERTS)
    assert card.data.library_name == "adapters"
    assert TAGS | {"mixture-of-lora", "bert"} <= set(card.data.tags)
    assert '"top_k": 2' in card.text and all(f"| `{e}` | {e} | `{e}/` |" in card.text for e in EXPERTS)
    info = HfApi().model_info(REPO)
    assert info.card_data.language == sorted(EXPERTS) and info.library_name == "adapters"
    de_card = ModelCard.load(hf_hub_download(REPO, "de/README.md"))
    assert de_card.data.language == ["de"] and de_card.data.library_name == "adapters"
    assert TAGS <= set(de_card.data.tags)

    fresh = tiny_adapter_model("bert", seed=0)  # same backbone, no adapters
    assert fresh.load_adapter_mixture(REPO, set_active=True) == name
    assert torch.equal(_out(fresh), expected)
    assert not any((tmp_path / "tmp").iterdir())  # staging removed


def test_single_repo_plain_adapters_needs_the_expert_subfolder(hub_env):
    hub_env()
    model, name = _mixture_model()
    model.push_adapter_mixture_to_hub(REPO, name, token=TOKEN)

    folder = Path(download_mixture_expert(REPO, "de"))
    assert folder.name == "de"
    assert {p.name for p in folder.parent.iterdir()} == {"mixture_config.json", "de"}  # only what is needed
    plain = AutoAdapterModel.from_config(tiny_config("bert"))
    # adapters' load_adapter(repo_id) loads the repo root and takes no subfolder: the mixture root is no adapter.
    with pytest.raises(OSError):
        plain.load_adapter(REPO)
    assert plain.load_adapter(str(folder)) == "de"
    pushed = dict(model.named_parameters())
    lora = {n: p for n, p in plain.named_parameters() if ".loras.de." in n}
    assert lora and all(torch.equal(p, pushed[n]) for n, p in lora.items())
    with pytest.raises(ValueError, match="not an expert"):
        download_mixture_expert(REPO, "fr")


def test_repush_replaces_files_and_skips_unchanged(hub_env):
    hub = hub_env()
    model, name = _mixture_model()
    model.push_adapter_mixture_to_hub(REPO, name, use_safetensors=True)
    assert "de/adapter.safetensors" in hub.files(REPO)
    first = model.push_adapter_mixture_to_hub(REPO, name)  # back to torch files: stale safetensors must go
    files = hub.files(REPO)
    assert "de/adapter.safetensors" not in files and "de/pytorch_adapter.bin" in files
    assert "model_mixture.safetensors" not in files
    again = model.push_adapter_mixture_to_hub(REPO, name)
    assert again[0].oid == first[0].oid and len(hub.repos[REPO].log) == 3  # nothing changed: no empty commit


def test_head_and_base_model_travel_with_the_mixture(hub_env):
    hub = hub_env()
    model, name = _mixture_model()
    model.config.name_or_path = (
        "google-bert/bert-base-uncased"  # set by from_pretrained; the cards' base_model
    )
    model.add_tagging_head(name, num_labels=3)
    model.set_active_adapters(model.get_adapter_mixture(name))
    with torch.no_grad():
        expected = model(**_batch()).logits
    model.push_adapter_mixture_to_hub(REPO, name, per_expert_repos=True, with_head=True)

    assert {"head/head_config.json", "head/pytorch_model_head.bin"} <= set(hub.files(REPO))
    assert ModelCard.load(REPO).data.base_model == "google-bert/bert-base-uncased"
    assert ModelCard.load(f"{REPO}-en").data.base_model == "google-bert/bert-base-uncased"
    fresh = tiny_adapter_model("bert", seed=0)
    fresh.load_adapter_mixture(REPO, set_active=True)
    fresh.set_active_adapters(fresh.get_adapter_mixture(name))
    with torch.no_grad():
        assert torch.equal(fresh(**_batch()).logits, expected)


# ---- one repo per expert -------------------------------------------------------------------------------------------
def test_per_expert_repos_push_pull_plain_adapters_and_offline_cache(hub_env, monkeypatch):
    hub = hub_env()
    model, name = _mixture_model()
    expected = _out(model)

    commits = model.push_adapter_mixture_to_hub(
        REPO, name, per_expert_repos=True, token=TOKEN, language_tags={"zh": ["zh", "zh-Hans"]}
    )

    expert_repos = [f"{REPO}-{e}" for e in EXPERTS]
    assert [c.repo_url.repo_id for c in commits] == [*expert_repos, REPO]  # experts first, mixture last
    for rid in expert_repos:
        assert set(hub.files(rid)) == _expert_files() | {".gitattributes"}
    assert set(hub.files(REPO)) == {
        ".gitattributes",
        "README.md",
        "mixture_config.json",
        "pytorch_model_mixture.bin",
    }
    saved = json.loads(hub.files(REPO)["mixture_config.json"])
    assert saved["expert_repos"] == {
        e: {"repo_id": rid, "revision": hub.repos[rid].branches["main"]}
        for e, rid in zip(EXPERTS, expert_repos, strict=True)
    }
    for expert, rid in zip(EXPERTS, expert_repos, strict=True):
        info = HfApi().model_info(rid)
        assert info.card_data.language == (["zh", "zh-Hans"] if expert == "zh" else [expert])
        assert info.card_data.library_name == "adapters" and TAGS <= set(info.card_data.tags)
        assert f'load_adapter("{rid}"' in ModelCard.load(rid).text
    mix_card = ModelCard.load(REPO)
    assert mix_card.data.language == ["de", "en", "zh", "zh-Hans"]
    assert all(rid in mix_card.text for rid in expert_repos)

    base_state = tiny_adapter_model("bert", seed=0).state_dict()
    fresh = tiny_adapter_model("bert", seed=0)
    assert fresh.load_adapter_mixture(REPO, set_active=True) == name
    assert torch.equal(_out(fresh), expected)

    plain = AutoAdapterModel.from_config(tiny_config("bert"))  # plain adapters, no mixture API needed
    plain.load_state_dict(base_state, strict=False)
    assert plain.load_adapter(f"{REPO}-de") == "de"
    pushed = dict(model.named_parameters())
    lora = {n: p for n, p in plain.named_parameters() if ".loras.de." in n}
    assert lora and all(torch.equal(p, pushed[n]) for n, p in lora.items())

    # Offline: the hub is gone, the pinned expert commits and the mixture's `main` ref resolve from the cache.
    hub.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    configure_http_backend()
    offline = tiny_adapter_model("bert", seed=0)
    offline.load_adapter_mixture(REPO, set_active=True)
    assert torch.equal(_out(offline), expected)


def test_push_to_branch_leaves_main_alone(hub_env):
    hub = hub_env()
    model, name = _mixture_model()
    model.push_adapter_mixture_to_hub(REPO, name, per_expert_repos=True, revision="v1")
    for rid in [REPO, *(f"{REPO}-{e}" for e in EXPERTS)]:
        assert set(hub.files(rid, "main")) == {".gitattributes"}
        assert "README.md" in hub.files(rid, "v1")
    fresh = tiny_adapter_model("bert", seed=0)
    fresh.load_adapter_mixture(REPO, revision="v1", set_active=True)
    assert torch.equal(_out(fresh), _out(model))


# ---- failures ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_expert_repos, fail_at", [(False, 1), (True, 2), (True, 4)])
def test_failed_push_leaves_no_local_damage_and_no_half_described_mixture(
    hub_env, tmp_path, per_expert_repos, fail_at
):
    hub = hub_env(fail_commits={fail_at})
    model, name = _mixture_model()
    model.save_adapter_mixture(tmp_path / "local_mix", name)  # an existing local save must stay untouched
    before_dir = _snapshot(tmp_path / "local_mix")
    before_state = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(HfHubHTTPError, match="Injected failure"):
        model.push_adapter_mixture_to_hub(REPO, name, per_expert_repos=per_expert_repos)

    assert _snapshot(tmp_path / "local_mix") == before_dir
    assert not any((tmp_path / "tmp").iterdir()), list((tmp_path / "tmp").iterdir())  # no staging leftovers
    state = model.state_dict()
    assert state.keys() == before_state.keys() and all(torch.equal(state[k], before_state[k]) for k in state)
    # The mixture repo never describes missing experts: it either does not exist or holds no mixture.
    if REPO in hub.repos:
        assert set(hub.files(REPO)) == {".gitattributes"}
    if per_expert_repos:
        assert REPO not in hub.repos or fail_at == 4
        with pytest.raises(OSError, match="Could not find|has no mixture_config.json"):
            tiny_adapter_model("bert").load_adapter_mixture(REPO)
        # experts committed before the failure are complete standalone adapters
        for expert in EXPERTS[: fail_at - 1]:
            assert set(hub.files(f"{REPO}-{expert}")) == _expert_files() | {".gitattributes"}

    # A retry completes the push; expert repos that were already up to date get no new commit.
    hub.fail_commits.clear()
    model.push_adapter_mixture_to_hub(REPO, name, per_expert_repos=per_expert_repos)
    if per_expert_repos:
        assert len(hub.repos[f"{REPO}-en"].log) == 2
    fresh = tiny_adapter_model("bert", seed=0)
    fresh.load_adapter_mixture(REPO, set_active=True)
    assert torch.equal(_out(fresh), _out(model))


def test_invalid_arguments_rejected_before_any_request(hub_env):
    hub = hub_env()
    model, name = _mixture_model()
    with pytest.raises(ValueError, match=r"`language_tags\['de'\]`"):
        model.push_adapter_mixture_to_hub(REPO, name, language_tags={"de": "German"})
    with pytest.raises(ValueError, match="unknown expert `fr`"):
        model.push_adapter_mixture_to_hub(REPO, name, language_tags={"fr": "fr"})
    with pytest.raises(ValueError, match="needs `per_expert_repos=True`"):
        model.push_adapter_mixture_to_hub(REPO, name, expert_repo_ids={"de": "user/x"})
    with pytest.raises(ValueError, match="distinct"):
        model.push_adapter_mixture_to_hub(REPO, name, per_expert_repos=True, expert_repo_ids={"de": REPO})
    with pytest.raises(ValueError, match="card_kwargs"):
        model.push_adapter_mixture_to_hub(REPO, name, card_kwargs={"licence": "mit"})
    with pytest.raises(ValueError, match="No adapter mixture named `nope`"):
        model.push_adapter_mixture_to_hub(REPO, "nope")
    assert hub.requests == []


# ---- the environment-variable route a user takes ------------------------------------------------------------------
PULL_SCRIPT = """
import socket, sys
_real = socket.getaddrinfo
def _loopback_only(host, *a, **k):
    if host not in ("127.0.0.1", "localhost"):
        raise OSError(f"test guard: refusing {host!r}")
    return _real(host, *a, **k)
socket.getaddrinfo = _loopback_only

import torch
from tests.conftest import tiny_adapter_model
from tests.test_hub import REPO, _out

model = tiny_adapter_model("bert", seed=0)
model.load_adapter_mixture(REPO, set_active=True)
torch.save(_out(model), sys.argv[1])
"""


@pytest.mark.slow
def test_pull_in_fresh_process_configured_by_hf_endpoint_only(hub_env, tmp_path):
    """No monkeypatching in the puller: ``HF_ENDPOINT`` / ``HF_HOME`` set before import, as a user would."""
    import os
    import subprocess
    import sys

    hub = hub_env()
    model, name = _mixture_model()
    model.push_adapter_mixture_to_hub(REPO, name, per_expert_repos=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith(("HF_", "TRANSFORMERS_"))
    }
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "fresh_home"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", PULL_SCRIPT, str(tmp_path / "out.pt")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.equal(torch.load(tmp_path / "out.pt"), _out(model))
    assert ("GET", f"/api/models/{REPO}/revision/main") in hub.requests


def test_pull_sends_the_given_token(hub_env):
    """`load_adapter_mixture(token=)` authenticates the download, as `push_adapter_mixture_to_hub(token=)` does."""
    hub = hub_env()
    model, name = _mixture_model()
    model.push_adapter_mixture_to_hub(REPO, name, token=TOKEN)
    hub.authorizations.clear()
    fresh = tiny_adapter_model("bert", seed=0)
    assert fresh.load_adapter_mixture(REPO, token="hf_other_token", set_active=True) == name
    assert hub.authorizations == {"Bearer hf_other_token"}
    assert torch.equal(_out(fresh), _out(model))


def test_router_loader_and_save_adapter_mixture_agree_on_the_weights_format(tmp_path):
    from molora_adapters.mixture.loading import MIXTURE_WEIGHTS_NAME, MixtureRouterLoader

    model, name = _mixture_model()
    model.save_adapter_mixture(tmp_path / "mixture", name)
    MixtureRouterLoader(model).save(str(tmp_path / "routers"), name)
    assert (tmp_path / "mixture" / MIXTURE_WEIGHTS_NAME).is_file()
    assert sorted(p.name for p in (tmp_path / "routers").iterdir()) == sorted(
        p.name for p in (tmp_path / "mixture").iterdir() if p.is_file()
    )
