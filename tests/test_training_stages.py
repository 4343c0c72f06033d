"""`Stage` validation, built-in targets and plan fingerprints."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest

from molora_adapters.training import (
    MT4CROSSOIE_STAGES,
    STAGE_TARGETS,
    Stage,
    plan_fingerprint,
    register_stage_target,
)
from molora_adapters.training.stages import validate_plan
from molora_adapters.training.targets import resolve_stage_parameters
from tests.training_utils import tagging_model


def _names(model, *targets, **kw):
    return resolve_stage_parameters(model, Stage("s", targets, **kw))


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_builtin_targets_partition_the_pretrained_model(model_type):
    from adapters import LoRAConfig

    model = tagging_model(model_type=model_type)
    model.add_adapter("lora", config=LoRAConfig(r=2))
    prefix = model.base_model_prefix
    emb = _names(model, "embeddings")
    assert emb == {f"{prefix}.embeddings.word_embeddings.weight"}
    emb_pos = _names(model, "embeddings", train_position_embeddings=True)
    assert f"{prefix}.embeddings.position_embeddings.weight" in emb_pos
    assert f"{prefix}.embeddings.token_type_embeddings.weight" in emb_pos
    backbone = _names(model, "backbone")
    heads = _names(model, "heads")
    assert heads == {n for n, _ in model.named_parameters() if n.startswith("heads.oie.")}
    lora = {n for n, _ in model.named_parameters() if ".loras.lora." in n}
    assert lora and not lora & (backbone | emb_pos | heads)
    # embeddings + backbone + heads + adapter weights cover every parameter exactly once
    everything = {n for n, _ in model.named_parameters()}
    assert emb | backbone | heads | lora == everything
    assert not emb & backbone and not backbone & heads
    assert f"{prefix}.embeddings.position_embeddings.weight" in backbone
    assert f"{prefix}.embeddings.LayerNorm.weight" in backbone


def test_predicate_and_registered_targets():
    model = tagging_model()
    assert _names(model, lambda n, p: n.endswith("pooler.dense.bias")) == {"bert.pooler.dense.bias"}

    @register_stage_target("test_layer0")
    def _layer0(model, stage):
        return {n for n, _ in model.named_parameters() if ".layer.0." in n}

    try:
        assert all(".layer.0." in n for n in _names(model, "test_layer0"))
        with pytest.raises(ValueError, match="already registered"):
            register_stage_target("test_layer0", lambda m, s: set())
    finally:
        STAGE_TARGETS.unregister("test_layer0")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "s", "train": ()}, "would train nothing"),
        ({"name": "s", "train": ("encoder",)}, "unknown target 'encoder'"),
        ({"name": "bad name", "train": ("heads",)}, "path-safe"),
        ({"name": "s", "train": ("heads",), "max_steps": 0}, "`max_steps`"),
        ({"name": "s", "train": ("heads",), "learning_rate": -1.0}, "`learning_rate`"),
        ({"name": "s", "train": ("heads",), "warmup_ratio": 1.5}, "`warmup_ratio`"),
        ({"name": "s", "train": ("heads",), "lr_scheduler_type": "zigzag"}, "`lr_scheduler_type`"),
    ],
)
def test_stage_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Stage(**kwargs)


def test_target_matching_nothing_is_an_error():
    model = tagging_model()
    with pytest.raises(ValueError, match="matches no parameter"):
        _names(model, lambda n, p: False)


def test_plan_validation_and_fingerprint():
    with pytest.raises(ValueError, match="empty"):
        validate_plan([])
    with pytest.raises(ValueError, match="unique"):
        validate_plan([Stage("a", "heads"), Stage("a", "heads")])
    fp = plan_fingerprint(MT4CROSSOIE_STAGES)
    # optimisation settings may change on resume; structure may not
    tuned = [dataclasses.replace(s, learning_rate=1e-3) for s in MT4CROSSOIE_STAGES]
    assert plan_fingerprint(tuned) == fp
    assert plan_fingerprint(MT4CROSSOIE_STAGES[1:]) != fp
    routers_only = (*MT4CROSSOIE_STAGES[:2], Stage("mixture", ("mixture_routers", "heads")))
    assert plan_fingerprint(routers_only) != fp


def test_stage_round_trips():
    stage = Stage("mix", ("mixture", "heads"), max_steps=5, learning_rate=1e-3, warmup_ratio=0.1, mixture="m")
    assert json.loads(json.dumps(stage.to_dict()))["train"] == ["mixture", "heads"]
    assert copy.deepcopy(stage) == stage and pickle.loads(pickle.dumps(stage)) == stage
    assert stage.trains_mixture and not MT4CROSSOIE_STAGES[0].trains_mixture
    assert stage.argument_overrides() == {
        "max_steps": 5,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.1,
        "warmup_steps": 0,
    }
    assert Stage("e", "heads", num_train_epochs=2).argument_overrides() == {
        "num_train_epochs": 2,
        "max_steps": -1,
    }


def _lambda_plan(word: str):
    return [Stage("pred", (lambda n, p: word in n,))]


def test_lambda_predicates_get_different_fingerprints():
    """Resuming under another lambda must not pass the plan check: lambdas all share one name."""
    a = [Stage("pred", (lambda n, p: "lora_A" in n,))]
    b = [Stage("pred", (lambda n, p: "lora_B" in n,))]
    assert plan_fingerprint(a) != plan_fingerprint(b)
    assert plan_fingerprint(a) == plan_fingerprint([Stage("pred", (lambda n, p: "lora_A" in n,))])
    # closures: same code, different captured value
    assert plan_fingerprint(_lambda_plan("query")) != plan_fingerprint(_lambda_plan("value"))
    assert plan_fingerprint(_lambda_plan("query")) == plan_fingerprint(_lambda_plan("query"))


def test_stage_callback_exports_its_trainable_set():
    """`restore_callback_states_from_checkpoint=True` rebuilds the callback from its state: the trainable check
    must survive that."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from molora_adapters.training import StageCallback

    model = tagging_model()
    stages = [Stage("heads", ("heads",))]
    callback = StageCallback(plan_fingerprint(stages), ["heads"])
    trainable, _ = callback.enter_stage(model, stages, 0)
    restored = StageCallback.from_state(json.loads(json.dumps(callback.state())))
    assert restored.trainable == trainable and restored.stage_index == 0
    next(p for n, p in model.named_parameters() if n not in trainable).requires_grad_(True)
    args = TrainingArguments(output_dir="unused", report_to=[])
    with pytest.raises(RuntimeError, match="trainable parameters changed"):
        restored.on_train_begin(args, TrainerState(), TrainerControl(), model=model)
