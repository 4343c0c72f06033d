"""Training-efficiency pieces of the staged trainer: row-sparse AdamW, the shared data stream, head learning rates,
wall-clock stage budgets."""

from __future__ import annotations

import collections

import pytest
import torch
from training_utils import FakeClock, Recorder, tagging_model, toy_dataset, training_args

from molora_adapters.training import BudgetSchedule, RowSparseAdamW, Stage, StagedTrainer, StreamSampler
from molora_adapters.training.callback import fit_horizon


def _embedding_problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(20, 4, generator=g)
    batches = [torch.randint(0, 20, (6,), generator=g) for _ in range(8)]
    batches[3] = torch.arange(20)  # a step that touches every row (with catch-up of the skipped ones)
    target = torch.randn(20, 4, generator=g)
    return weight, batches, target


def _run(
    weight,
    batches,
    target,
    *,
    sparse: bool,
    betas=(0.0, 0.999),
    weight_decay=0.1,
    clip=None,
    shared=True,
    **options,
):
    """AdamW steps on an embedding. ``shared``: its rows feed a shared linear layer (couples the rows); otherwise
    the loss is linear in the rows (a row's gradient does not depend on its value)."""
    emb = torch.nn.Embedding.from_pretrained(weight.clone(), freeze=False, sparse=sparse)
    lin = torch.nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(4))
        lin.bias.zero_()
    params = [emb.weight, *lin.parameters()] if shared else [emb.weight]
    groups = [{"params": [emb.weight], "weight_decay": weight_decay}]
    groups += [{"params": list(lin.parameters()), "weight_decay": 0.0}] if shared else []
    kw = dict(lr=0.05, betas=betas, eps=1e-8, **options)
    opt = RowSparseAdamW(groups, max_grad_norm=clip, **kw) if sparse else torch.optim.AdamW(groups, **kw)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - 0.1 * s)  # a varying lr, as with schedules
    for ids in batches:
        loss = ((lin(emb(ids)) - target[ids]) ** 2).sum() if shared else (emb(ids) * target[ids]).sum()
        loss.backward()
        if clip and not sparse:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad()
        sched.step()
    return emb.weight.detach(), lin.weight.detach()


@pytest.mark.parametrize("clip", [None, 0.5])
def test_row_sparse_adamw_equals_dense_adamw_without_momentum_or_decay(clip):
    """beta1 = 0 and no weight decay: dense AdamW leaves a zero-gradient row where it is, so the row-sparse update
    is dense AdamW exactly, on every row and on the shared layer (global-norm clipping included)."""
    weight, batches, target = _embedding_problem()
    dense, dense_lin = _run(weight, batches, target, sparse=False, weight_decay=0.0, clip=clip)
    sparse, sparse_lin = _run(weight, batches, target, sparse=True, weight_decay=0.0, clip=clip)
    torch.testing.assert_close(sparse, dense)
    torch.testing.assert_close(sparse_lin, dense_lin)


@pytest.mark.parametrize("option", [{"fused": True}, {"foreach": True}])
def test_row_sparse_adamw_fused_or_foreach_dense_update_equals_the_loop(option):
    """``fused`` / ``foreach`` change only how the dense parameters' AdamW update runs: every parameter equals the
    default loop's to float rounding (clipping on, momentum and weight decay on, rows coupled by a shared layer)."""
    weight, batches, target = _embedding_problem()
    kw = dict(sparse=True, betas=(0.9, 0.999), clip=0.5)
    loop, loop_lin = _run(weight, batches, target, **kw)
    other, other_lin = _run(weight, batches, target, **kw, **option)
    torch.testing.assert_close(other, loop, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(other_lin, loop_lin, rtol=1e-5, atol=1e-6)


def test_row_sparse_adamw_clipping_equals_clip_grad_norm():
    """The global norm over sparse and dense gradients is the dense equivalent's, and the scaled gradients are
    ``clip_grad_norm_``'s (duplicate sparse indices summed first)."""
    g = torch.Generator().manual_seed(3)
    emb = torch.nn.Parameter(torch.randn(10, 4, generator=g))
    lin = torch.nn.Parameter(torch.randn(4, 4, generator=g))
    rows = torch.tensor([[1, 3, 3, 7]])
    values = torch.randn(4, 4, generator=g)
    emb.grad = torch.sparse_coo_tensor(rows, values, (10, 4), check_invariants=True)
    lin.grad = torch.randn(4, 4, generator=g) * 5
    dense_emb = emb.grad.to_dense()
    dense_lin = lin.grad.clone()
    opt = RowSparseAdamW([emb, lin], max_grad_norm=1.0)
    total = opt.clip_gradients(1.0)
    ref_emb, ref_lin = dense_emb.clone().requires_grad_(), dense_lin.clone().requires_grad_()
    ref_emb.grad, ref_lin.grad = dense_emb.clone(), dense_lin.clone()
    ref_total = torch.nn.utils.clip_grad_norm_([ref_emb, ref_lin], 1.0)
    torch.testing.assert_close(total, ref_total)
    torch.testing.assert_close(emb.grad.to_dense(), ref_emb.grad)
    torch.testing.assert_close(lin.grad, ref_lin.grad)


def test_row_sparse_adamw_catches_up_moments_and_weight_decay_exactly():
    """Rows skipped for several steps: their second moment and weight decay are caught up when next used, so a
    used row equals dense AdamW's (gradients independent of the row values, beta1 = 0: the lazily applied decay
    does not change them); an unused row is bitwise untouched."""
    weight, batches, target = _embedding_problem()
    dense, _ = _run(weight, batches, target, sparse=False, shared=False)
    sparse, _ = _run(weight, batches, target, sparse=True, shared=False)
    last = batches[-1].unique()
    torch.testing.assert_close(sparse[last], dense[last])
    high = [b[b >= 10] for b in batches if (b >= 10).any()]
    out, _ = _run(weight, high, target, sparse=True, betas=(0.9, 0.999))
    assert torch.equal(out[:10], weight[:10])
    assert not torch.equal(out[10:], weight[10:])


def test_stream_sampler_continues_and_balances_languages():
    langs = ["en"] * 12 + ["es"] * 3 + ["pt"] * 3
    lengths = list(range(18))
    s = StreamSampler(18, seed=1, batch_size=3, lengths=lengths, languages=langs, language_alpha=0.0)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    later = StreamSampler(
        18, seed=1, start=18, batch_size=3, lengths=lengths, languages=langs, language_alpha=0.0
    )
    assert list(later) == second  # a stage starting at position 18 sees epoch 1 of the same stream
    assert s.positions(5, 30).tolist() == (first + second)[5:30]
    assert collections.Counter(langs[i] for i in first) == {"en": 6, "es": 6, "pt": 6}
    # a small language cycles through all its examples before repeating one
    assert collections.Counter(i for i in first if langs[i] == "es") == {12: 2, 13: 2, 14: 2}
    plain = StreamSampler(18, seed=1, batch_size=3, lengths=lengths)
    order = list(plain)
    assert sorted(order) == list(range(18))  # without balancing an epoch is a permutation
    batches = [order[i : i + 3] for i in range(0, 18, 3)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread == 2 * 6  # sorted within the (single) mega-batch: each batch spans 3 consecutive lengths


def test_stages_continue_the_data_stream_and_use_head_learning_rates(tmp_path):
    model = tagging_model()
    seen, starts = [], []

    class Starts(Recorder):
        def on_train_begin(self, *args, **kw):
            starts.append(len(seen))

    def collate(features):
        seen.append([f["idx"] for f in features])
        return {k: torch.tensor([f[k] for f in features]) for k in ("input_ids", "attention_mask", "labels")}

    data = toy_dataset(16).add_column("idx", list(range(16)))
    stages = [
        Stage(
            "embeddings",
            train=("embeddings", "heads"),
            max_steps=2,
            learning_rate=1e-2,
            head_learning_rate=1e-1,
        ),
        Stage("backbone", train=("backbone", "heads"), max_steps=2, learning_rate=1e-3),
    ]
    recorder = Recorder()
    trainer = StagedTrainer(
        model=model,
        args=training_args(tmp_path, save_strategy="no"),
        stages=stages,
        train_dataset=data,
        data_collator=collate,
        callbacks=[recorder, Starts()],
    )
    trainer.train()
    # (accelerate collates one batch ahead: the batches of stage i start at starts[i])
    stage1, stage2 = seen[starts[0] : starts[0] + 2], seen[starts[1] : starts[1] + 2]
    assert not set(sum(stage1, [])) & set(sum(stage2, []))  # stage 2 did not replay stage 1's batches
    assert sorted(sum(stage1 + stage2, [])) == list(range(16))
    assert (
        trainer.stage_history[0]["examples_seen"] == 8
        and trainer.stage_history[0]["sparse_embedding_updates"]
    )
    assert not trainer.stage_history[1]["sparse_embedding_updates"]
    assert not model.get_input_embeddings().sparse  # restored after the stage


def test_head_learning_rate_group_and_sparse_optimizer(tmp_path):
    model = tagging_model()
    stage = Stage(
        "embeddings", train=("embeddings", "heads"), max_steps=1, learning_rate=1e-2, head_learning_rate=1e-1
    )
    trainer = StagedTrainer(
        model=model, args=training_args(tmp_path), stages=[stage], train_dataset=toy_dataset(8)
    )
    groups, fused = [], []

    class Peek(Recorder):
        def on_train_begin(self, args, state, control, optimizer=None, **kw):
            groups.extend(
                (type(optimizer).__name__, g["initial_lr"], len(g["params"])) for g in optimizer.param_groups
            )
            fused.extend(g.get("fused") for g in optimizer.param_groups)

    trainer.add_callback(Peek())
    before = model.get_input_embeddings().weight.detach().clone()
    trainer.train()
    names = {n for n, _, _ in groups}
    assert names == {"RowSparseAdamW"} or names == {"AcceleratedOptimizer"}
    assert sorted({lr for _, lr, _ in groups}) == [1e-2, 1e-1]
    # the Trainer's optimiser settings reach the dense parameters (transformers' default: adamw_torch_fused)
    _, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    assert set(fused) == {kwargs.get("fused")}
    after = model.get_input_embeddings().weight.detach()
    changed = (after != before).any(1)
    batch = StreamSampler(8, seed=13).positions(0, 4).tolist()  # the one batch of the stream (seed 13)
    used = torch.tensor(sorted({i for j in batch for i in toy_dataset(8)["input_ids"][j]}))
    assert changed[used].all() and changed.sum() == len(used)  # exactly the rows of the one batch moved


def _budgeted_trainer(tmp_path, clock, stage, **args):
    trainer = StagedTrainer(
        model=tagging_model(),
        args=training_args(tmp_path, **({"warmup_ratio": 0.25} | args)),
        stages=[stage],
        train_dataset=toy_dataset(16),
        callbacks=[clock],
    )
    trainer.clock.clock = clock
    return trainer


def test_budget_schedule_warms_up_and_decays_over_its_current_horizon():
    schedule = BudgetSchedule("linear", horizon=40, warmup_ratio=0.1)
    assert schedule.warmup == 4
    assert [schedule(s) for s in (0, 2, 4, 22, 40, 50)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    schedule.horizon = 20  # re-fitted: warm-up and decay follow the new plan
    assert schedule.warmup == 2 and schedule(20) == 0.0 and schedule(11) == pytest.approx(0.5)
    cosine = BudgetSchedule("cosine", horizon=10, warmup_steps=2)
    assert cosine(2) == 1.0 and cosine(6) == pytest.approx(0.5) and cosine(10) == pytest.approx(0.0)
    assert BudgetSchedule("constant", horizon=10, warmup_ratio=0.5)(0) == 1.0
    with pytest.raises(ValueError, match="lr_scheduler_type"):
        BudgetSchedule("polynomial", horizon=10)


def test_fit_horizon_leaves_the_first_step_out_of_the_mean():
    # 5 s first step, then 1 s per step: after 5 steps (9 s), 21 s are left, at 1 s per step
    assert fit_horizon(step=5, done=5, elapsed=9.0, budget=30.0, first_step_seconds=5.0) == 26
    assert fit_horizon(step=1, done=1, elapsed=5.0, budget=30.0, first_step_seconds=5.0) == 6
    assert fit_horizon(step=7, done=7, elapsed=30.5, budget=30.0, first_step_seconds=1.0) == 7  # spent: stop


@pytest.mark.slow
@pytest.mark.parametrize("first_step_seconds", [1.0, 4.0])
def test_max_seconds_plans_the_steps_the_clock_allows(tmp_path, first_step_seconds):
    """A 1 s/step fake clock and a 12 s budget: 12 steps (9 after a 4 s first step), the learning rate warms
    up over a quarter of that plan and reaches 0 with the clock; no step cap was given (the clock alone stops it)."""
    clock = FakeClock(first_step_seconds=first_step_seconds)
    stage = Stage("heads", train=("heads",), max_seconds=12.0)
    trainer = _budgeted_trainer(tmp_path, clock, stage)
    out = trainer.train()
    expected = 12 if first_step_seconds == 1.0 else 9  # 4 s + 8 x 1 s
    assert out.global_step == expected
    warmup = trainer.clock.schedule.warmup
    assert warmup == -(-expected // 4)
    assert clock.lrs[0] == 0.0 and max(clock.lrs) == pytest.approx(1e-2)
    # a steady speed: the schedule is the step-based one of the same length; after a slow first step, the same once
    # the plan has settled (from the third step on)
    reference = BudgetSchedule("linear", horizon=expected, warmup_ratio=0.25)
    settled = 0 if first_step_seconds == 1.0 else 3
    assert clock.lrs[settled:] == pytest.approx([1e-2 * reference(s) for s in range(settled, expected)])
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    assert trainer.stage_history[0]["clock_seconds"] == pytest.approx(clock.now)


def test_max_seconds_respects_the_stage_step_cap(tmp_path):
    clock = FakeClock()
    stage = Stage("heads", train=("heads",), max_steps=6, max_seconds=12.0)
    out = _budgeted_trainer(tmp_path, clock, stage).train()
    assert out.global_step == 6


@pytest.mark.slow
def test_budgeted_checkpoints_are_trainable_only_outside_the_clock_and_resume_bitwise(tmp_path):
    """Saves (100 fake seconds each) do not count against the budget; a budgeted checkpoint holds only the stage's
    trainable tensors; a resume continues with what is left of the budget, bit for bit."""
    from training_utils import Interrupt, InterruptAt, assert_same_parameters

    stage = Stage("heads", train=("heads",), max_seconds=12.0)
    save = dict(save_strategy="steps", save_steps=4)
    full = _budgeted_trainer(tmp_path / "full", FakeClock(save_seconds=100.0), stage, **save)
    assert full.train().global_step == 12
    checkpoint = tmp_path / "full" / "stage-0-heads" / "checkpoint-8"
    assert (checkpoint / "trainable_state.json").is_file() and (
        checkpoint / "trainable.safetensors"
    ).is_file()
    assert not (checkpoint / "model.safetensors").exists()

    ref = [None]
    cut = _budgeted_trainer(tmp_path / "cut", FakeClock(), stage, **save)
    cut.add_callback(InterruptAt(ref, stage=0, step=8))
    ref[0] = cut
    with pytest.raises(Interrupt):
        cut.train()
    clock = FakeClock()
    clock.now, clock.steps = 8.0, 8
    resumed = _budgeted_trainer(tmp_path / "cut", clock, stage, **save)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.stage_history[0]["global_step"] == 12
    assert resumed.stage_history[0]["clock_seconds"] == pytest.approx(12.0)
    assert_same_parameters(full.model, resumed.model)
