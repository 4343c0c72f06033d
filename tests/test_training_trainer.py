"""StagedTrainer on a two-stage plan: exact freezing, optimiser rebuilds, per-stage logs and outputs, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from molora_adapters.training import Stage, StagedTrainer
from tests.training_utils import Recorder, tagging_model, toy_dataset, training_args

TWO_STAGES = (
    Stage("embeddings", ("embeddings", "heads"), max_steps=3),
    Stage("backbone", ("backbone", "heads"), max_steps=4, learning_rate=1e-3, weight_decay=0.1),
)


def _trainer(tmp_path, stages=TWO_STAGES, **kwargs):
    return StagedTrainer(
        model=tagging_model(), args=training_args(tmp_path / "run"), stages=stages, train_dataset=toy_dataset(),
        **kwargs,
    )  # fmt: skip


def test_stages_freeze_exactly_rebuild_optimiser_and_log(tmp_path):
    rec = Recorder()
    trainer = _trainer(tmp_path, callbacks=[rec])
    out = trainer.train()
    model = trainer.model
    word = "bert.embeddings.word_embeddings.weight"
    heads = {n for n, _ in model.named_parameters() if n.startswith("heads.")}
    expected = [
        {word} | heads,
        {n for n, _ in model.named_parameters() if n.startswith("bert.") and n != word} | heads,
    ]

    # a fresh optimiser per stage, over exactly the stage's parameters, with the stage's lr and weight decay
    assert len(rec.optimizers) == 2 and rec.optimizers[0][0] != rec.optimizers[1][0]
    assert [o[1] for o in rec.optimizers] == expected
    assert rec.optimizers[0][2] == pytest.approx(1e-2) and rec.optimizers[1][2] == pytest.approx(1e-3)
    assert rec.optimizers[0][3] == [0.0] and rec.optimizers[1][3] == [0.0, 0.1]
    for i in range(2):
        for name, before in rec.begin[i].items():
            after = rec.end[i][name]
            if name not in expected[i]:
                assert torch.equal(before, after), f"stage {i}: frozen {name} changed"  # bitwise
            elif "pooler" not in name:  # the pooler trains but the tagging head never uses it
                assert not torch.equal(before, after), f"stage {i}: {name} did not train"
    # position / token-type embeddings stay frozen in stage 1 by default
    assert "bert.embeddings.position_embeddings.weight" not in expected[0]

    train_logs = [log for log in rec.logs if "loss" in log]
    assert [log["stage"] for log in train_logs] == [0] * 3 + [1] * 4
    n0, n1 = (h["trainable_parameters"] for h in trainer.stage_history)
    assert n0 == 1000 * 32 + 32 * 3 + 3
    assert [log.get("stage_trainable_parameters") for log in train_logs] == [
        n0,
        None,
        None,
        n1,
        None,
        None,
        None,
    ]
    assert out.global_step == 7 and set(out.metrics) >= {"embeddings_train_loss", "backbone_train_loss"}

    run = tmp_path / "run"
    for stage_dir in (run / "stage-0-embeddings", run / "stage-1-backbone"):
        marker = json.loads((stage_dir / "stage_state.json").read_text())
        assert marker["completed"] and marker["plan_fingerprint"] == trainer.plan_fingerprint
        assert (stage_dir / "model" / "model.safetensors").is_file()  # embeddings / backbone changed
        assert (stage_dir / "heads" / "oie" / "head_config.json").is_file()
    assert (run / "staged_training.json").is_file() and (run / "model.safetensors").is_file()


def test_train_position_embeddings_is_configurable(tmp_path):
    rec = Recorder()
    _trainer(tmp_path, stages=(Stage("e", ("embeddings",), max_steps=1, train_position_embeddings=True),),
             callbacks=[rec]).train()  # fmt: skip
    assert rec.optimizers[0][1] == {
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
    }


def test_bad_input_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="no mixture"):
        _trainer(tmp_path, stages=(Stage("mix", ("mixture", "heads")),))
    with pytest.raises(ValueError, match="matches no parameter"):
        _trainer(tmp_path, stages=(Stage("x", (lambda n, p: "nothing" in n,)),))
    with pytest.raises(ValueError, match="unknown target"):
        _trainer(tmp_path, stages=(Stage("x", ("encoder",)),))
    model = tagging_model()
    with pytest.raises(ValueError, match="optimizer_cls_and_kwargs"):
        StagedTrainer(
            model=model,
            args=training_args(tmp_path),
            stages=TWO_STAGES,
            train_dataset=toy_dataset(),
            optimizers=(torch.optim.SGD(model.parameters(), lr=0.1), None),
        )
    with pytest.raises(ValueError, match="not a Trainer checkpoint"):
        _trainer(tmp_path).train(resume_from_checkpoint=str(tmp_path))
    with pytest.raises(ValueError, match="No staged checkpoint"):
        _trainer(tmp_path).train(resume_from_checkpoint=True)


def test_checkpoint_averaging_callback(tmp_path):
    from safetensors.torch import load_file

    from molora_adapters.training import CheckpointAveragingCallback

    averaging = CheckpointAveragingCallback(last_n=3, stages=["heads"])
    plan = (Stage("embeddings", ("embeddings",), max_steps=1), Stage("heads", ("heads",), max_steps=4))
    trainer = StagedTrainer(
        model=tagging_model(),
        args=training_args(tmp_path / "run", save_strategy="steps", save_steps=1),
        stages=plan,
        train_dataset=toy_dataset(),
        callbacks=[averaging],
    )
    trainer.train()
    stage_dir = tmp_path / "run" / "stage-1-heads"
    assert averaging.averaged == {"heads": ["checkpoint-2", "checkpoint-3", "checkpoint-4"]}
    states = [load_file(stage_dir / f"checkpoint-{s}" / "model.safetensors") for s in (2, 3, 4)]
    params = dict(trainer.model.named_parameters())
    for name in ("heads.oie.1.weight", "heads.oie.1.bias"):
        expected = sum(s[name] for s in states) / 3
        torch.testing.assert_close(params[name].detach(), expected, rtol=0, atol=1e-7)
        assert not torch.equal(params[name].detach(), states[-1][name])
        # the stage's saved outputs hold the average, not the last step
        torch.testing.assert_close(
            load_file(stage_dir / "trainable.safetensors")[name], params[name].detach()
        )
    word = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(params[word].detach(), states[-1][word])  # frozen in the averaged stage
    with pytest.raises(ValueError, match="last_n"):
        CheckpointAveragingCallback(last_n=1)
