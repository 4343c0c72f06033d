"""MT4CrossOIE's full three-stage plan with a Mixture-of-LoRA: freezing, aux loss and routing logs, routers-only
plans, reload, and resume (mid-stage 2, after a finished stage, with Trainer and AdapterTrainer)."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from molora_adapters.mixture import mixture_parameters
from molora_adapters.training import (
    MT4CROSSOIE_STAGES,
    Stage,
    StagedAdapterTrainer,
    StagedTrainer,
    load_staged_model,
)
from tests.training_utils import (
    FakeClock,
    Interrupt,
    InterruptAt,
    Recorder,
    assert_same_parameters,
    tagging_model,
    toy_dataset,
    training_args,
)

# MT4CrossOIE's three stages, a few steps each; stage 2 (index 1) has a checkpoint mid-way at step 2
PLAN = tuple(dataclasses.replace(s, max_steps=n) for s, n in zip(MT4CROSSOIE_STAGES, (2, 3, 3), strict=True))
CKPT = dict(save_strategy="steps", save_steps=2)


def mixture_model():
    model = tagging_model()
    torch.manual_seed(7)
    model.add_adapter_mixture(["en", "de"], top_k=1, set_active=True, load_balancing_coef=0.1)
    # LoRA B starts at zero; give the experts distinct non-zero weights so that routing matters from step one
    for name, p in model.named_parameters():
        if ".loras." in name and name.endswith("lora_B"):
            torch.nn.init.normal_(p, std=0.05)
    return model


def _trainer(run_dir, stages=PLAN, cls=StagedTrainer, callbacks=(), **args):
    return cls(
        model=mixture_model(),
        args=training_args(run_dir, **(CKPT | args)),
        stages=stages,
        train_dataset=toy_dataset(),
        callbacks=list(callbacks),
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run of the plan, shared by the tests of this module."""
    run_dir = tmp_path_factory.mktemp("full") / "run"
    rec = Recorder()
    trainer = _trainer(run_dir, callbacks=[rec])
    trainer.train()
    return run_dir, trainer, rec


def test_mt4crossoie_plan_freezes_logs_saves_and_reloads(full_run):
    run_dir, trainer, rec = full_run
    model = trainer.model
    mixture = set(mixture_parameters(model, "en,de"))
    heads = {n for n, _ in model.named_parameters() if n.startswith("heads.")}
    assert rec.optimizers[2][1] == mixture | heads
    for name, before in rec.begin[2].items():  # stage 3: the pre-trained model is bitwise frozen
        if name not in mixture | heads:
            assert torch.equal(before, rec.end[2][name]), name
    for name in mixture:  # ... and the mixture is bitwise frozen in stages 1 and 2
        assert torch.equal(rec.begin[0][name], rec.end[1][name]), name
        assert not torch.equal(rec.begin[2][name], rec.end[2][name]), name  # every expert and router trains

    mix_logs = [log for log in rec.logs if log.get("stage") == 2 and "loss" in log]
    assert len(mix_logs) == 3 and mix_logs[0]["stage_trainable_parameters"] == sum(
        p.numel() for n, p in model.named_parameters() if n in mixture | heads
    )
    for log in mix_logs:
        assert log["mixture_aux_loss"] > 0 and 0 <= log["routing_entropy"] <= torch.log(torch.tensor(2.0))
        assert log["routing_balance"] >= 0
    assert all("mixture_aux_loss" not in log for log in rec.logs if log.get("stage") in (0, 1))

    # each stage saved exactly what it changed
    assert (run_dir / "stage-0-embeddings" / "model").is_dir() and (
        run_dir / "stage-1-backbone" / "model"
    ).is_dir()
    assert not (run_dir / "stage-0-embeddings" / "mixtures").exists()
    stage3 = run_dir / "stage-2-mixture"
    assert (stage3 / "mixtures" / "en,de" / "mixture_config.json").is_file()
    assert (stage3 / "heads" / "oie" / "head_config.json").is_file()
    assert not (stage3 / "model").exists()

    batch = torch.tensor(toy_dataset(4, seed=5)["input_ids"])
    model.eval()
    with torch.no_grad():
        expected = model(batch).logits
        reloaded = load_staged_model(run_dir)
        assert torch.equal(reloaded(batch).logits, expected)
    assert "en,de" in reloaded.adapter_mixtures


def test_compute_loss_adds_the_mixture_aux_loss(tmp_path):
    trainer = _trainer(tmp_path, stages=PLAN[2:])
    trainer.stage_callback.enter_stage(trainer.model, trainer.stages, 0)
    trainer._stage_index, trainer._stage_mixture = 0, "en,de"
    trainer.model.train()
    ds = toy_dataset(4)
    inputs = {k: torch.tensor(ds[k]) for k in ds.column_names}
    loss, outputs = trainer.compute_loss(trainer.model, inputs, return_outputs=True)
    reference = trainer.model(**inputs, output_router_logits=True)
    assert reference.mixture_aux_loss > 0 and torch.equal(
        outputs.mixture_aux_loss, reference.mixture_aux_loss
    )
    assert outputs.router_logits.keys() == reference.router_logits.keys()  # read by name, not by position
    torch.testing.assert_close(loss, reference.loss + reference.mixture_aux_loss, rtol=0, atol=0)


@contextlib.contextmanager
def _no_host_sync():
    """Tensor -> Python conversions raise (the CPU stand-in for CUDA's sync debug mode)."""

    def refuse(*args, **kwargs):
        raise AssertionError("host sync in a training step")

    with pytest.MonkeyPatch.context() as mp:
        for method in ("item", "tolist", "__float__", "__int__", "__bool__"):
            mp.setattr(torch.Tensor, method, refuse)
        yield


def test_mixture_statistics_accumulate_on_device_and_reduce_when_logging(tmp_path, monkeypatch):
    from transformers import Trainer

    from molora_adapters.mixture import routing_statistics

    trainer = _trainer(tmp_path, stages=PLAN[2:])
    trainer.stage_callback.enter_stage(trainer.model, trainer.stages, 0)
    trainer._stage_index, trainer._stage_mixture = 0, "en,de"
    trainer.model.train()
    record = trainer._record_mixture_stats

    def record_without_syncs(*args):  # the forward itself may sync; the statistics must not
        with _no_host_sync():
            return record(*args)

    monkeypatch.setattr(trainer, "_record_mixture_stats", record_without_syncs)
    expected = []
    for seed in range(3):
        ds = toy_dataset(4, seed=seed)
        inputs = {k: torch.tensor(ds[k]) for k in ds.column_names}
        inputs["attention_mask"][:, -2:] = 0  # padding is excluded from the routing statistics
        with torch.no_grad():
            ref = trainer.model(**inputs, output_router_logits=True)
        stats = routing_statistics(ref.router_logits, inputs["attention_mask"], top_k=1)
        expected.append((float(ref.mixture_aux_loss), stats["entropy"], stats["balance"]))
        trainer.compute_loss(trainer.model, inputs)
    logged = []
    monkeypatch.setattr(Trainer, "log", lambda self, logs, start_time=None: logged.append(logs))
    trainer.log({"loss": 1.0})
    (logs,) = logged
    for i, key in enumerate(("mixture_aux_loss", "routing_entropy", "routing_balance")):
        assert logs[key] == pytest.approx(sum(e[i] for e in expected) / 3, abs=2e-6), key
    trainer.log({"loss": 1.0})  # reset after logging
    assert "mixture_aux_loss" not in logged[-1]


def test_routers_only_plan_leaves_experts_bitwise_unchanged(tmp_path):
    rec = Recorder()
    plan = (Stage("routers", ("mixture_routers", "heads"), max_steps=2),)  # stages 1 and 2 skipped
    trainer = _trainer(tmp_path, stages=plan, callbacks=[rec], save_strategy="no")
    trainer.train()
    routers = set(mixture_parameters(trainer.model, "en,de", include_experts=False))
    experts = set(mixture_parameters(trainer.model, "en,de", include_routers=False))
    assert routers and experts
    assert all(not torch.equal(rec.begin[0][n], rec.end[0][n]) for n in routers)
    assert all(torch.equal(rec.begin[0][n], rec.end[0][n]) for n in experts)


def test_mixture_stage_errors(tmp_path):
    with pytest.raises(ValueError, match="mixture='nope'"):
        _trainer(tmp_path, stages=(Stage("m", ("mixture",), mixture="nope"),))
    trainer = _trainer(tmp_path, stages=(Stage("m", ("heads",)),))
    trainer.model.add_adapter_mixture(["fr", "es"], top_k=1)
    with pytest.raises(ValueError, match="several"):
        trainer.__class__(model=trainer.model, args=trainer.args, stages=(Stage("m", ("mixture",)),))


@pytest.mark.slow
@pytest.mark.parametrize("cls", [StagedTrainer, StagedAdapterTrainer])
def test_resume_mid_stage_two_equals_uninterrupted(full_run, tmp_path, cls):
    ref = [None]
    cut = _trainer(tmp_path / "run", cls=cls, callbacks=[InterruptAt(ref, stage=1, step=2)])
    ref[0] = cut
    with pytest.raises(Interrupt):
        cut.train()
    checkpoint = tmp_path / "run" / "stage-1-backbone" / "checkpoint-2"
    if cls is StagedAdapterTrainer:  # its checkpoint lacks the backbone; our extras complete it
        assert not (checkpoint / "model.safetensors").exists() and (checkpoint / "model").is_dir()
    resumed = _trainer(tmp_path / "run", cls=cls)  # a fresh model from the same seed
    resumed.train(resume_from_checkpoint=True if cls is StagedTrainer else str(checkpoint))
    # the stage finished before the interruption keeps its summary (training.json's samples/s need it)
    assert [(h["name"], h.get("restored", False)) for h in resumed.stage_history] == [
        ("embeddings", True),
        ("backbone", False),
        ("mixture", False),
    ]
    assert resumed.stage_history[0] == {**cut.stage_history[0], "restored": True}
    assert (
        resumed.stage_history[1]["global_step"] == 3
    )  # the whole stage, not only the steps after the resume
    assert_same_parameters(full_run[1].model, resumed.model)  # AdapterTrainer == Trainer, bit for bit


@pytest.mark.slow
def test_resume_after_a_finished_stage(full_run, tmp_path):
    ref = [None]
    cut = _trainer(tmp_path / "run", callbacks=[InterruptAt(ref, stage=2)], save_strategy="no")
    ref[0] = cut
    with pytest.raises(Interrupt):
        cut.train()
    resumed = _trainer(tmp_path / "run", save_strategy="no")
    resumed.train(resume_from_checkpoint=True)  # stages 1-2 restored from their folders; stage 3 from scratch
    assert [(h["name"], h.get("restored", False)) for h in resumed.stage_history] == [
        ("embeddings", True),
        ("backbone", True),
        ("mixture", False),
    ]
    assert_same_parameters(full_run[1].model, resumed.model)


def test_resume_refuses_another_plan(full_run):
    run_dir = full_run[0]
    other = (*PLAN[:2], Stage("mixture", ("mixture_routers", "heads"), max_steps=3))
    with pytest.raises(ValueError, match="different stage plan"):
        _trainer(run_dir, stages=other).train(resume_from_checkpoint=True)
    with pytest.raises(ValueError, match="different stage plan"):
        _trainer(run_dir, stages=other).train(
            resume_from_checkpoint=str(run_dir / "stage-1-backbone" / "checkpoint-2")
        )
    renamed = (Stage("words", ("embeddings", "heads"), max_steps=2),)
    with pytest.raises(ValueError, match="No staged checkpoint"):
        _trainer(run_dir, stages=renamed).train(resume_from_checkpoint=True)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [StagedTrainer, StagedAdapterTrainer])
def test_budgeted_stage_resumes_bitwise_from_a_trainable_only_checkpoint(tmp_path, cls):
    """Stage 2 (the backbone) on a 6 s budget of a 1 s/step fake clock: its checkpoints hold only the backbone and
    head tensors, and a run interrupted at its step-2 checkpoint resumes to the uninterrupted model, bit for bit,
    with Trainer and AdapterTrainer."""
    plan = (PLAN[0], dataclasses.replace(PLAN[1], max_steps=None, max_seconds=6.0), PLAN[2])

    def trainer(run_dir, clock, *callbacks):
        t = _trainer(run_dir, stages=plan, cls=cls, callbacks=[clock, *callbacks])
        t.clock.clock = clock
        return t

    full = trainer(tmp_path / "full", FakeClock())
    full.train()
    assert [h["global_step"] for h in full.stage_history] == [2, 6, 3]
    checkpoint = tmp_path / "full" / "stage-1-backbone" / "checkpoint-2"
    assert (checkpoint / "trainable_state.json").is_file() and not (checkpoint / "model").exists()
    ref = [None]
    cut = trainer(tmp_path / "cut", FakeClock(), InterruptAt(ref, stage=1, step=2))
    ref[0] = cut
    with pytest.raises(Interrupt):
        cut.train()
    clock = FakeClock()
    clock.steps = 1  # not the first step of the clock any more
    resumed = trainer(tmp_path / "cut", clock)
    resumed.train(
        resume_from_checkpoint=True
        if cls is StagedTrainer
        else str(tmp_path / "cut" / "stage-1-backbone" / "checkpoint-2")
    )
    assert [h["global_step"] for h in resumed.stage_history] == [2, 6, 3]
    assert_same_parameters(full.model, resumed.model)


def test_stages_without_adapters_do_not_log_inactive_adapters_every_step(tmp_path, caplog):
    # stages 1-2 run the model with its mixture inactive on purpose; adapters would log it on every forward
    plan = tuple(dataclasses.replace(s, max_steps=2) for s in MT4CROSSOIE_STAGES[:2])
    trainer = _trainer(tmp_path / "run", stages=plan, save_strategy="no")
    caplog.clear()
    with caplog.at_level("WARNING", logger="adapters"):
        trainer.train()
    assert not [r for r in caplog.records if "none are activated" in r.getMessage()]
    # outside the trainer, adapters' own message is untouched
    model = mixture_model()
    model.set_active_adapters(None)
    caplog.clear()
    with caplog.at_level("WARNING", logger="adapters"):
        model(input_ids=torch.tensor([[1, 2, 3]]))
    assert [r for r in caplog.records if "none are activated" in r.getMessage()]
