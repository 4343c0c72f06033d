"""The seam into `adapters`: it patches adapters and nothing else, fails loudly, and keeps imports narrow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import tiny_adapter_model

from molora_adapters import _integration
from molora_adapters.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_flex_head_model_imports_no_oie_or_data_stack_and_reloads_a_saved_oie_head(tmp_path):
    """Building a flex-head model imports no OIE/data/LLM module; a saved OIE head comes back with a plain
    `AutoAdapterModel.from_pretrained` (the head type is imported on first use)."""
    model = tiny_adapter_model("bert")
    model.add_oie_head("oie", d_feedforward=16, n_arg_layers=1)
    model.save_pretrained(str(tmp_path))
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    with torch.no_grad():
        expected = model(input_ids=ids, head="oie").predicate_logits
    torch.save(ids, tmp_path / "ids.pt")
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from conftest import tiny_adapter_model
        tiny_adapter_model("xlm-roberta")
        before = sorted(m for m in sys.modules if m.startswith("molora_adapters."))
        from adapters import AutoAdapterModel
        loaded = AutoAdapterModel.from_pretrained({str(tmp_path)!r})
        loaded.eval()
        with torch.no_grad():
            out = loaded(input_ids=torch.load({str(tmp_path / "ids.pt")!r}), head="oie").predicate_logits
        torch.save(out, {str(tmp_path / "out.pt")!r})
        print(json.dumps({{"before": before, "head": type(loaded.heads["oie"]).__name__}}))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    heavy = [m for m in report["before"] if m.split(".")[1] in ("oie", "data", "training")]
    assert heavy == []
    assert report["head"] == "OIEHead"
    assert torch.equal(torch.load(tmp_path / "out.pt"), expected)


@pytest.mark.slow
def test_data_registers_llm_loaders_without_importing_the_llm_package():
    script = (
        "import sys; import molora_adapters.data as d; "
        "assert {'llm-augmented', 'openie4pp'} <= set(d.CORPUS_LOADERS.names()); "
        "assert 'molora_adapters.data.llm' not in sys.modules, 'imported eagerly'; "
        "f = d.CORPUS_LOADERS.get('llm-augmented'); "
        "assert f.__module__ == 'molora_adapters.data.llm.loader' and 'molora_adapters.data.llm' in sys.modules"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_llm_loader_rejects_misspelt_arguments(tmp_path):
    from molora_adapters.data import load_training_corpus

    with pytest.raises(TypeError, match="langauges"):
        load_training_corpus("llm-augmented", path=str(tmp_path), langauges=["de"])


def test_patch_raises_when_the_wrapped_original_is_missing():
    class Renamed:  # stands for an adapters class whose method was renamed in a new release
        pass

    with pytest.raises(ImportError, match=r"wraps `.*Renamed\.forward_context`, which adapters"):
        _integration._patch(Renamed, "forward_context", lambda original: original)
    with pytest.raises(ImportError, match=r"wraps `.*Renamed\.vslice`"):
        _integration._patch(Renamed, "vslice", lambda original: original, inherited=True)


def test_every_seam_entry_is_installed_once():
    """The table is applied: every wrapped original is marked, and registering again wraps nothing twice."""
    from molora_adapters._patching import MARK

    wrapped = {(p.owner, p.name): getattr(p.owner, p.name) for p in _integration.PATCHES}
    assert all(getattr(fn, MARK, False) for fn in wrapped.values())
    for owner, name, value in _integration.MODEL_METHODS:
        assert owner.__dict__.get(name) is value or getattr(owner, name) is value
    _integration._registered = False
    _integration.register()
    assert {(p.owner, p.name): getattr(p.owner, p.name) for p in _integration.PATCHES} == wrapped


@pytest.mark.slow
def test_attention_is_patched_only_once_xsta_is_added():
    """A process that never adds X-STA runs adapters' self-attention unchanged."""
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from conftest import tiny_adapter_model
        from adapters.models.bert.modeling_bert import BertSelfAttentionWithAdapters as A
        model = tiny_adapter_model("bert")
        model.add_adapter_mixture(["a", "b"], set_active=True)
        before = hasattr(A.forward, "__molora_patched__"), "molora_adapters.xsta" in sys.modules
        model.add_xsta("qa", layer=1)
        after = hasattr(A.forward, "__molora_patched__")
        print(json.dumps([*before, after]))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, False, True]


def test_mixin_copy_refuses_name_clashes():
    class Target:
        def add_adapter(self):
            return "adapters"

    class Clashing:
        def add_adapter(self):
            return "ours"

        def add_something_new(self):
            return "new"

    with pytest.raises(ImportError, match=r"`.*Target\.add_adapter` already exists"):
        _integration._copy_methods(Clashing, Target)

    class Fine:
        def add_something_new(self):
            return "new"

    _integration._copy_methods(Fine, Target)
    _integration._copy_methods(Fine, Target)  # idempotent
    assert Target().add_something_new() == "new" and Target().add_adapter() == "adapters"


def test_head_type_hook_validates_and_unregisters():
    with pytest.raises(ValueError, match="built-in adapters head type"):
        _integration.register_head_type("tagging", "x.y:Z")
    with pytest.raises(ValueError, match="identifier"):
        _integration.register_head_type("my-head", "x.y:Z")
    with pytest.raises(ValueError, match="already declared"):
        _integration.register_head_type("oie", "somewhere.else:OtherHead")
    _integration.register_head_type(
        "test_kind", "molora_adapters.oie.heads:OIEHead", adder="molora_adapters.oie.heads:add_oie_head"
    )
    try:
        model = tiny_adapter_model("bert")
        model.add_test_kind_head("t", d_feedforward=16, n_arg_layers=1)  # the declared adder, by its name
        assert type(model.heads["t"]).__name__ == "OIEHead"
    finally:
        _integration.unregister_head_type("test_kind")
    assert "test_kind" not in _integration.HEAD_TYPES
    assert not hasattr(tiny_adapter_model("bert"), "add_test_kind_head")


def test_relink_prefix_pools_repairs_what_save_pretrained_unlinks(tmp_path):
    """adapters 1.3's ``save_pretrained`` unlinks prefix-tuning layers from their pool (``train_adapter`` then
    fails); the seam's workaround re-links them, and our ``save_pretrained`` applies it."""
    from adapters.methods.prefix_tuning import PrefixTuningLayer

    from molora_adapters.training.checkpointing import save_pretrained

    model = tiny_adapter_model("bert")
    model.add_adapter("p", config="prefix_tuning")
    layers = [m for m in model.modules() if isinstance(m, PrefixTuningLayer)]
    assert layers and all(layer.pool is not None for layer in layers)
    model.save_pretrained(str(tmp_path / "plain"))
    assert all(layer.pool is None for layer in layers)  # the adapters bug this works around
    _integration.relink_prefix_pools(model)
    assert all(layer.pool is not None for layer in layers)
    model.train_adapter("p")
    save_pretrained(model, tmp_path / "ours")
    assert all(layer.pool is not None for layer in layers)
    model.train_adapter("p")


def test_registry_lazy_entries_and_unregister():
    reg: Registry = Registry("thing")
    reg.register_lazy("dumps", "json:dumps")
    assert "dumps" in reg and reg.names() == ["dumps"]
    assert reg.get("dumps") is json.dumps
    with pytest.raises(ValueError, match="already registered"):
        reg.register("dumps", print)
    with pytest.raises(ValueError, match="package.module:attribute"):
        reg.register_lazy("bad", "no-colon")
    assert reg.unregister("dumps") is json.dumps
    reg.register_lazy("later", "json:loads")
    assert reg.unregister("later") == "json:loads"  # never imported
    with pytest.raises(KeyError, match="Unknown thing `later`"):
        reg.unregister("later")
