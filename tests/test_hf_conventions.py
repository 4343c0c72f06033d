"""HF conventions: the OIE pipeline through `transformers.pipeline`, and a fixed mix of a mixture's experts merged into
the base weights and exported as a plain `transformers` model (peft's `merge_and_unload`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from adapters import AutoAdapterModel, LoRAConfig
from conftest import tiny_adapter_model

from molora_adapters import mixture_parameters
from molora_adapters.oie import OIEPipeline, add_oie_head

WEIGHTS = [0.5, 0.3, 0.2]
EXPERTS = ["en", "de", "zh"]


def _mixture_model(model_type: str = "bert"):
    model = tiny_adapter_model(model_type)
    torch.manual_seed(1)
    name = model.add_adapter_mixture(EXPERTS, top_k=3, expert_config=LoRAConfig(r=4, alpha=8))
    with torch.no_grad():  # B starts at 0: make every expert change the output visibly
        for module in model.modules():
            for lora in getattr(module, "loras", {}).values():
                lora.lora_B.normal_(std=0.2)
    model.add_classification_head("cls", num_labels=3)
    model.eval()
    return model, name


def _inputs():
    torch.manual_seed(2)
    return {"input_ids": torch.randint(5, 90, (2, 7)), "attention_mask": torch.ones(2, 7, dtype=torch.long)}


@torch.no_grad()
def _routed_uniform(model, name):
    """The routed mixture under a fixed uniform mix: zero router weights give equal logits, so top-3 of 3 experts
    gates each with exactly 1/3 (the real routed forward, no merge code involved)."""
    for p in mixture_parameters(model, name, include_experts=False).values():
        p.zero_()
    model.set_active_adapters(model.get_adapter_mixture(name))
    logits, hidden = model(**_inputs()).logits, model.base_model(**_inputs()).last_hidden_state
    model.set_active_adapters(None)
    return logits, hidden


def test_weighted_merge_equals_the_routed_mixture_under_that_fixed_mix():
    model, name = _mixture_model()
    with torch.no_grad():
        base = model.base_model(**_inputs()).last_hidden_state
    expected, _ = _routed_uniform(model, name)
    model.merge_adapter_mixture(name, weights=[1 / 3] * 3)
    with torch.no_grad():
        merged = model(**_inputs()).logits
        merged_hidden = model.base_model(**_inputs()).last_hidden_state
    torch.testing.assert_close(merged, expected, rtol=1e-5, atol=1e-5)
    assert (merged_hidden - base).abs().max() > 1e-2  # the experts did change the model


def test_weighted_merge_adds_the_weighted_expert_deltas():
    model, name = _mixture_model()
    layers = [m for m in model.modules() if "en" in getattr(m, "loras", {})]
    before = [m.weight.detach().clone() for m in layers]
    model.merge_adapter_mixture(name, weights=dict(zip(EXPERTS, WEIGHTS, strict=True)))
    for layer, w0 in zip(layers, before, strict=True):  # W + sum_i w_i * scaling_i * B_i A_i
        loras = layer.loras
        delta = sum(
            w * loras[e].scaling * (loras[e].lora_B @ loras[e].lora_A)
            for e, w in zip(EXPERTS, WEIGHTS, strict=True)
        )
        torch.testing.assert_close(layer.weight.detach(), w0 + delta, rtol=0, atol=1e-6)


def test_merge_by_language_is_the_one_hot_mix_and_equals_adapters_merge():
    a, name = _mixture_model()
    b, _ = _mixture_model()
    a.merge_adapter_mixture(name, language="de")  # adapters' own merge_adapter("de")
    b.merge_adapter_mixture(name, weights={"de": 1.0})
    with torch.no_grad():
        torch.testing.assert_close(a(**_inputs()).logits, b(**_inputs()).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "weights, match",
    [
        ([0.5, 0.5], "one weight per expert"),
        ([1.0, -0.1, 0.1], ">= 0"),
        ([0, 0, 0], "all 0"),
        ({"xx": 1}, "Unknown"),
    ],
)
def test_merge_rejects_bad_weights(weights, match):
    model, name = _mixture_model()
    with pytest.raises(ValueError, match=match):
        model.merge_adapter_mixture(name, weights=weights)
    with pytest.raises(ValueError, match="exactly one"):
        model.merge_adapter_mixture(name, language="en", weights=[1, 0, 0])


def test_export_is_a_plain_transformers_model_with_the_head_beside_it(tmp_path):
    from transformers import AutoModel

    model, name = _mixture_model()
    model.active_head = "cls"
    logits, hidden = _routed_uniform(model, name)
    out = model.export_merged_adapter_mixture(tmp_path / "merged", name, weights=[1 / 3] * 3)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "head", "model.safetensors"]

    plain = AutoModel.from_pretrained(out).eval()  # transformers alone
    assert "adapters" not in plain.config.to_dict()
    with torch.no_grad():
        torch.testing.assert_close(plain(**_inputs()).last_hidden_state, hidden, rtol=1e-5, atol=1e-5)

    full = AutoAdapterModel.from_pretrained(out).eval()
    full.load_head(str(out / "head"))
    with torch.no_grad():
        torch.testing.assert_close(full(**_inputs()).logits, logits, rtol=1e-5, atol=1e-5)
    # the source model is untouched: nothing merged, its mixture still routes
    assert not any(getattr(m, "merged", False) for m in model.modules())
    model.set_active_adapters(model.get_adapter_mixture(name))
    with torch.no_grad():
        torch.testing.assert_close(model(**_inputs()).logits, logits)


def test_oie_pipeline_through_transformers_pipeline(tmp_path, tiny_tokenizer, multilingual_sentences):
    from transformers import pipeline

    model = tiny_adapter_model("xlm-roberta")
    add_oie_head(model, "oie", d_feedforward=64, n_arg_layers=2)
    with torch.no_grad():  # bias the predicate tagger so that random weights give tuples
        model.heads["oie"].pred_classifier.bias.copy_(torch.tensor([0.0, 0.3, 0.0]))
    model.save_pretrained(str(tmp_path))
    tiny_tokenizer.save_pretrained(str(tmp_path))
    oie = pipeline("open-information-extraction", model=str(tmp_path), min_args=0)
    reference = OIEPipeline(model, tiny_tokenizer, min_args=0)
    sentences = multilingual_sentences[:4]
    got = [oie(s) for s in sentences]
    assert got == [[e.to_dict() for e in reference.extract(s)] for s in sentences]
    assert sum(map(len, got)) > 0
    assert oie(sentences[:2]) == got[:2]  # a list runs sentence by sentence
    assert oie(sentences[0], language="en")[0]["language"] == "en"


@pytest.mark.parametrize(
    "first",
    [
        "molora_adapters.oie.hf_pipeline",
        "molora_adapters.utils.hf_pipelines",
        "transformers.pipelines",
        "molora_adapters.xsta.hf_pipeline",
    ],
)
def test_pipeline_tasks_are_registered_whatever_is_imported_first(first):
    """Importing the sub-packages registers nothing heavy; both tasks appear once transformers' pipelines are
    imported, also when one of our pipeline modules is what imports them."""
    code = f"""
import sys
import molora_adapters.oie, molora_adapters.xsta
assert "transformers.pipelines" not in sys.modules and "torch" not in sys.modules
import {first}
from transformers.pipelines import PIPELINE_REGISTRY
tasks = PIPELINE_REGISTRY.get_supported_tasks()
assert "open-information-extraction" in tasks and "xsta-question-answering" in tasks, tasks
assert PIPELINE_REGISTRY.check_task("question-answering")[1]["impl"].__module__.startswith("transformers.")
"""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_xsta_qa_through_transformers_pipeline_keeps_the_question_answering_contract(
    tmp_path, tiny_tokenizer
):
    from transformers import pipeline
    from transformers.pipelines import QuestionAnsweringPipeline

    import molora_adapters.xsta  # noqa: F401  (registers the task)
    from molora_adapters.xsta import XSTAQuestionAnsweringPipeline

    model = tiny_adapter_model("bert")
    model.add_xsta("xsta", layer=1, languages=["en", "de"], correction_dropout=0.0)
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    qa = pipeline("xsta-question-answering", model=str(tmp_path))
    ctx = "Die Hauptstadt von Frankreich ist Paris, und Berlin liegt an der Spree."
    single = qa(question="Was ist die Hauptstadt?", context=ctx, language="de")
    assert set(single) == {"score", "start", "end", "answer"} and 0 < single["score"] <= 1
    assert single["answer"] == ctx[single["start"] : single["end"]] and single["answer"]
    # the same answer as the package's own pipeline (one window: same best span)
    own = XSTAQuestionAnsweringPipeline(model.eval(), tiny_tokenizer)
    assert (
        single["answer"].strip()
        == own({"question": "Was ist die Hauptstadt?", "context": ctx, "language": "de"})[0]["answer"]
    )
    paired = {
        "question": "Was?",
        "context": ctx,
        "language": "de",
        "source_question": "What?",
        "source_context": "The capital of France is Paris, and Berlin is on the Spree.",
    }
    both = qa([paired, {"question": "Wo?", "context": ctx, "language": "de"}])
    assert len(both) == 2 and all(r["answer"] == ctx[r["start"] : r["end"]] for r in both)
    # transformers' own question-answering task is untouched
    from transformers.pipelines import PIPELINE_REGISTRY

    assert PIPELINE_REGISTRY.check_task("question-answering")[1]["impl"] is QuestionAnsweringPipeline
