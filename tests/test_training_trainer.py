"""StagedTrainer / StagedAdapterTrainer: freezing, optimiser rebuilds, logging, saving, reloading, resuming."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from molora_adapters.training import Stage, StagedAdapterTrainer, StagedTrainer, load_staged_model
from tests.training_utils import snapshot, tagging_model, toy_dataset, training_args

TWO_STAGES = (
    Stage("embeddings", ("embeddings", "heads"), max_steps=3),
    Stage("backbone", ("backbone", "heads"), max_steps=4, learning_rate=1e-3, weight_decay=0.1),
)


class Recorder(TrainerCallback):
    """Snapshots parameters and optimiser facts at the start and end of every stage."""

    def __init__(self):
        self.begin, self.end, self.optimizers, self.logs = [], [], [], []

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
        self.begin.append(snapshot(model))
        params = {id(p) for g in optimizer.param_groups for p in g["params"]}
        trainable = {n for n, p in model.named_parameters() if id(p) in params}
        decays = sorted({g["weight_decay"] for g in optimizer.param_groups})
        self.optimizers.append((id(optimizer), trainable, optimizer.param_groups[0]["initial_lr"], decays))

    def on_train_end(self, args, state, control, model=None, **kw):
        self.end.append(snapshot(model))

    def on_log(self, args, state, control, logs=None, **kw):
        self.logs.append(dict(logs))


class Interrupt(Exception):
    pass


class InterruptAt(TrainerCallback):
    def __init__(self, trainer_ref, stage: int, step: int):
        self.trainer_ref, self.stage, self.step = trainer_ref, stage, step

    def on_save(self, args, state, control, **kw):
        if self.trainer_ref[0]._stage_index == self.stage and state.global_step == self.step:
            raise Interrupt


def _trainer(tmp_path, model=None, stages=TWO_STAGES, cls=StagedTrainer, callbacks=(), **args):
    model = model if model is not None else tagging_model()
    return cls(
        model=model,
        args=training_args(tmp_path / "run", **args),
        stages=stages,
        train_dataset=toy_dataset(),
        callbacks=list(callbacks),
    )


def test_stages_freeze_exactly_and_rebuild_optimiser(tmp_path):
    rec = Recorder()
    trainer = _trainer(tmp_path, callbacks=[rec])
    trainer.train()
    model = trainer.model
    word = "bert.embeddings.word_embeddings.weight"
    expected = [
        {word} | {n for n, _ in model.named_parameters() if n.startswith("heads.")},
        {n for n, _ in model.named_parameters() if n.startswith("bert.") and n != word}
        | {n for n, _ in model.named_parameters() if n.startswith("heads.")},
    ]
    assert len(rec.optimizers) == 2 and rec.optimizers[0][0] != rec.optimizers[1][0]
    for i, (_, trainable, lr, decays) in enumerate(rec.optimizers):
        assert trainable == expected[i]
    assert rec.optimizers[0][2] == pytest.approx(1e-2) and rec.optimizers[1][2] == pytest.approx(1e-3)
    assert rec.optimizers[0][3] == [0.0] and rec.optimizers[1][3] == [0.0, 0.1]
    for i in range(2):
        for name, before in rec.begin[i].items():
            after = rec.end[i][name]
            if name in expected[i]:
                if "pooler" in name:  # trainable, but the tagging head never uses it: no gradient
                    continue
                assert not torch.equal(before, after), f"stage {i}: {name} did not train"
            else:  # frozen: bitwise unchanged
                assert torch.equal(before, after), f"stage {i}: frozen {name} changed"
    # stage 1 keeps position / token-type embeddings frozen by default
    assert torch.equal(rec.begin[0]["bert.embeddings.position_embeddings.weight"],
                       rec.end[0]["bert.embeddings.position_embeddings.weight"])


def test_logs_stage_and_trainable_count(tmp_path):
    rec = Recorder()
    trainer = _trainer(tmp_path, callbacks=[rec])
    out = trainer.train()
    train_logs = [log for log in rec.logs if "loss" in log]
    assert [log["stage"] for log in train_logs] == [0] * 3 + [1] * 4
    counts = [log.get("stage_trainable_parameters") for log in train_logs]
    n0, n1 = (h["trainable_parameters"] for h in trainer.stage_history)
    assert counts == [n0, None, None, n1, None, None, None]
    assert n0 == 1000 * 32 + 32 * 3 + 3
    assert out.global_step == 7 and set(out.metrics) >= {"embeddings_train_loss", "backbone_train_loss"}


def test_outputs_and_reload_gives_identical_predictions(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.train()
    run = tmp_path / "run"
    s0, s1 = run / "stage-0-embeddings", run / "stage-1-backbone"
    for stage_dir in (s0, s1):
        assert json.loads((stage_dir / "stage_state.json").read_text())["completed"]
        assert (stage_dir / "model" / "model.safetensors").is_file()  # embeddings / backbone changed
        assert (stage_dir / "heads" / "oie" / "head_config.json").is_file()
    model = trainer.model.eval()
    batch = torch.tensor(toy_dataset(4, seed=5)["input_ids"])
    with torch.no_grad():
        expected = model(batch).logits
        reloaded = load_staged_model(run)
        got = reloaded(batch).logits
    assert torch.equal(expected, got)
    assert reloaded.active_head == "oie"


@pytest.mark.parametrize("how", ["latest", "path"])
def test_resume_mid_stage_two_equals_uninterrupted(tmp_path, how):
    args = dict(save_strategy="steps", save_steps=2)
    full = _trainer(tmp_path / "full", **args)
    full.train()

    ref = [None]
    interrupted = _trainer(tmp_path / "cut", callbacks=[InterruptAt(ref, stage=1, step=2)], **args)
    ref[0] = interrupted
    with pytest.raises(Interrupt):
        interrupted.train()
    resumed = _trainer(tmp_path / "cut", **args)  # fresh model from the same seed
    checkpoint = True if how == "latest" else str(tmp_path / "cut" / "run" / "stage-1-backbone" / "checkpoint-2")
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.stage_history[0]["name"] == "backbone" and resumed.state.global_step == 4
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name


class InterruptAtStageStart(TrainerCallback):
    def __init__(self, trainer_ref, stage: int):
        self.trainer_ref, self.stage = trainer_ref, stage

    def on_train_begin(self, args, state, control, **kw):
        if self.trainer_ref[0]._stage_index == self.stage:
            raise Interrupt


def test_resume_after_a_finished_stage_starts_the_next(tmp_path):
    full = _trainer(tmp_path / "full")
    full.train()
    ref = [None]
    cut = _trainer(tmp_path / "cut", callbacks=[InterruptAtStageStart(ref, 1)])
    ref[0] = cut
    with pytest.raises(Interrupt):
        cut.train()
    resumed = _trainer(tmp_path / "cut")
    resumed.train(resume_from_checkpoint=True)  # stage 0 restored from its stage folder, stage 1 from scratch
    assert [h["name"] for h in resumed.stage_history] == ["backbone"]
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name


def test_resume_refuses_another_plan(tmp_path):
    args = dict(save_strategy="steps", save_steps=2)
    _trainer(tmp_path, **args).train()
    other = (TWO_STAGES[0], Stage("backbone", ("backbone",), max_steps=4))
    with pytest.raises(ValueError, match="different stage plan"):
        _trainer(tmp_path, stages=other, **args).train(resume_from_checkpoint=True)
    ckpt = tmp_path / "run" / "stage-1-backbone" / "checkpoint-4"
    with pytest.raises(ValueError, match="different stage plan"):
        _trainer(tmp_path, stages=other, **args).train(resume_from_checkpoint=str(ckpt))
    renamed = (Stage("words", ("embeddings", "heads"), max_steps=3),)
    with pytest.raises(ValueError, match="No staged checkpoint"):
        _trainer(tmp_path, stages=renamed, **args).train(resume_from_checkpoint=True)


def test_bad_input_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="no mixture"):
        _trainer(tmp_path, stages=(Stage("mix", ("mixture", "heads")),))
    with pytest.raises(ValueError, match="matches no parameter"):
        _trainer(tmp_path, stages=(Stage("x", (lambda n, p: "nothing" in n,)),))
    with pytest.raises(ValueError, match="optimizer_cls_and_kwargs"):
        model = tagging_model()
        StagedTrainer(
            model=model,
            args=training_args(tmp_path),
            stages=TWO_STAGES,
            train_dataset=toy_dataset(),
            optimizers=(torch.optim.SGD(model.parameters(), lr=0.1), None),
        )


def _lora_model():
    from adapters import LoRAConfig

    model = tagging_model()
    torch.manual_seed(3)
    model.add_adapter("lora", config=LoRAConfig(r=2))
    model.set_active_adapters("lora")
    return model


ADAPTER_STAGES = (
    *TWO_STAGES,
    Stage("lora", (lambda n, p: ".loras.lora." in n, "heads"), max_steps=2),
)


def test_adapter_trainer_stages_and_resume(tmp_path):
    args = dict(save_strategy="steps", save_steps=2)
    full = _trainer(tmp_path / "full", model=_lora_model(), stages=ADAPTER_STAGES, cls=StagedAdapterTrainer, **args)
    full.train()  # AdapterTrainer's frozen-model check does not fire in stages 1-2
    ckpt = tmp_path / "full" / "run" / "stage-1-backbone" / "checkpoint-2"
    assert (ckpt / "model" / "model.safetensors").is_file()  # backbone completed in the checkpoint
    assert not (tmp_path / "full" / "run" / "stage-2-lora" / "checkpoint-2" / "model").exists()

    ref = [None]
    cut = _trainer(tmp_path / "cut", model=_lora_model(), stages=ADAPTER_STAGES, cls=StagedAdapterTrainer,
                   callbacks=[InterruptAt(ref, stage=1, step=2)], **args)
    ref[0] = cut
    with pytest.raises(Interrupt):
        cut.train()
    resumed = _trainer(tmp_path / "cut", model=_lora_model(), stages=ADAPTER_STAGES, cls=StagedAdapterTrainer, **args)
    resumed.train(resume_from_checkpoint=True)
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(a, b), name
