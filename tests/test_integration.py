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


def test_relink_prefix_pools_lives_in_the_seam():
    from molora_adapters.training import checkpointing

    assert checkpointing.relink_prefix_pools is _integration.relink_prefix_pools


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


@pytest.mark.parametrize(
    "module", ["transformers.modeling_utils", "huggingface_hub.file_download", "adapters.loading"]
)
@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_upstream_deprecations_are_errors_in_tests(module, category):
    """pyproject's filterwarnings: upstream breakage shows up as a failing test, not a log line."""
    import warnings

    with pytest.raises(category, match="upstream"):
        warnings.warn_explicit("upstream deprecation", category, "upstream.py", 1, module=module)
