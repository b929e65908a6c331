"""models.loop: the one training loop on a toy task (a linear classifier on random tensors):
resume == uninterrupted, keep-best on disk across a resume, select="best", early stopping on
validation, Task.skip, drawn batches, and the common metrics schema."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from models.loop import BEST_NAME, CHECKPOINT_NAME, NonFiniteLossError, Task, TrainConfig, fit, load_checkpoint

D, C = 8, 3
SCHEMA = {"kind", "steps", "total_steps", "finished", "resumed_from_step", "stopped_early", "train_loss_first",
          "train_loss_last", "train_loss_curve", "selection", "best_step", "kept_step", "first", "last", "kept",
          "evals", "n_train", "train_config", "device", "seconds", "train_seconds", "steps_per_second"}  # fmt: skip


class Toy(nn.Module):
    model_type = "toy_linear"

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.3)  # uses the RNG: resume must restore it
        self.fc = nn.Linear(D, C)

    def forward(self, x):
        return self.fc(self.drop(x))


def _data(n: int, seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g)
    y = (x @ torch.randn(D, C, generator=torch.Generator().manual_seed(7))).argmax(1)
    flip = torch.rand(n, generator=g) < noise
    y[flip] = torch.randint(C, (int(flip.sum()),), generator=g)
    return x, y


TRAIN, VAL = _data(96, 1, 0.4), _data(48, 2, 0.0)


def _model() -> Toy:
    torch.manual_seed(0)
    return Toy()


def _loss(model, batch, device):
    x, y = batch
    return F.cross_entropy(model(x.to(device)), y.to(device))


def _evaluate(val=VAL):
    def evaluate(model, device):
        logits = model(val[0].to(device))
        return {"val_loss": F.cross_entropy(logits, val[1]).item(),
                "val_accuracy": (logits.argmax(1) == val[1]).float().mean().item()}  # fmt: skip

    return evaluate


def _task(select="best", metric="val_loss", mode="min", val=VAL, skip=None, draw=False) -> Task:
    if draw:
        def batches(i):
            g = torch.Generator().manual_seed(i)
            idx = torch.randint(len(TRAIN[0]), (8,), generator=g)
            return TRAIN[0][idx], TRAIN[1][idx]
    else:
        batches = DataLoader(TensorDataset(*TRAIN), batch_size=8, shuffle=True)
    return Task(kind="toy", batches=batches, loss=_loss, evaluate=_evaluate(val), metric=metric, mode=mode,
                select=select, skip=skip, n_train=len(TRAIN[0]) if draw else None)  # fmt: skip


def _cfg(**kw) -> TrainConfig:
    base = {"steps": 40, "lr": 2.0, "min_lr": 0.2, "warmup_steps": 2, "batch_size": 8, "device": "cpu", "eval_every": 4}
    return TrainConfig(**{**base, **kw})


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_metrics_schema_and_select_best_returns_the_best_weights():
    seen: dict[int, dict] = {}
    task = _task()
    evaluate = task.evaluate

    def recording(model, device):  # the weights of every evaluation
        seen[len(seen) * 4] = {k: v.clone() for k, v in model.state_dict().items()}
        return evaluate(model, device)

    task.evaluate = recording
    model = _model()
    m = fit(model, task, _cfg())
    assert SCHEMA <= m.keys()
    json.dumps(m)
    assert m["kind"] == "toy" and m["steps"] == m["total_steps"] == 40 and m["finished"] and not m["stopped_early"]
    assert [e["step"] for e in m["evals"]] == list(range(0, 41, 4)) and m["first"]["step"] == 0 and m["last"]["step"] == 40
    best = min(m["evals"], key=lambda e: e["val_loss"])
    assert m["best_step"] == m["kept_step"] == best["step"] and m["kept"] == best
    assert 0 < best["step"] < 40, "the toy run should peak mid-run, or this test proves little"
    assert all(torch.equal(v, seen[best["step"]][k]) for k, v in model.state_dict().items())
    assert m["selection"] == {"metric": "val_loss", "mode": "min", "select": "best", "patience": None}
    assert m["train_loss_last"] == m["train_loss_curve"][-1]["train_loss"]  # the mean of the last eval_every losses
    assert [c["step"] for c in m["train_loss_curve"]] == list(range(4, 41, 4))
    assert m["n_train"] == 96 and m["steps_per_second"] > 0 and m["train_seconds"] <= m["seconds"]

    last = _model()
    m_last = fit(last, _task(select="last"), _cfg())
    assert m_last["kept_step"] == 40 and m_last["best_step"] == m["best_step"] and m_last["kept"] == m_last["last"]
    assert not _same(model, last)


@pytest.mark.parametrize("draw, lr", [(False, 2.0), (True, 0.5)])  # (learning rates at which these seeds peak mid-run)
def test_keep_best_on_disk_survives_a_resume(tmp_path, draw, lr):
    cfg = _cfg(lr=lr, min_lr=lr / 10)
    straight = _model()
    m1 = fit(straight, _task(draw=draw), cfg, checkpoint_dir=tmp_path / "a")
    assert (tmp_path / "a" / BEST_NAME).exists()
    assert 0 < m1["best_step"] < 36, "the toy run should peak mid-run, or this test proves little"
    stop = m1["best_step"] + 4  # interrupted after the best evaluation: its weights only live on disk
    parts = _model()
    first = fit(parts, _task(draw=draw), dataclasses.replace(cfg, stop_at_step=stop), checkpoint_dir=tmp_path / "b")
    assert first["steps"] == stop and not first["finished"]
    ckpt = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)  # weights_only=True
    assert ckpt["history"]["best"]["step"] == m1["best_step"] and ckpt["step"] == stop
    resumed = _model()
    torch.nn.init.zeros_(resumed.fc.weight)  # everything must come from the checkpoint
    m2 = fit(resumed, _task(draw=draw), cfg, checkpoint_dir=tmp_path / "b")
    assert m2["resumed_from_step"] == stop and m2["kept_step"] == m1["kept_step"]
    assert _same(straight, resumed)
    assert m2["evals"] == m1["evals"] and m2["train_loss_curve"] == m1["train_loss_curve"]
    # Without a checkpoint_dir the best weights are kept in memory: the same result.
    in_memory = _model()
    fit(in_memory, _task(draw=draw), cfg)
    assert _same(straight, in_memory)


def test_resume_equals_uninterrupted_with_skipped_batches(tmp_path):
    skip = lambda batch: int(batch[1][0]) == 0  # noqa: E731  (batches passed over without a step)
    straight = _model()
    m1 = fit(straight, _task(select="last", skip=skip), _cfg(steps=30, eval_every=5))
    for stop in (3, 10):  # mid-epoch and between evaluations; at an evaluation
        ckpt = tmp_path / str(stop)
        fit(_model(), _task(select="last", skip=skip), _cfg(steps=30, eval_every=5, stop_at_step=stop), checkpoint_dir=ckpt)
        resumed = _model()
        m2 = fit(resumed, _task(select="last", skip=skip), _cfg(steps=30, eval_every=5), checkpoint_dir=ckpt)
        assert load_checkpoint(ckpt / CHECKPOINT_NAME)["history"]["drawn"] > 30  # skipped batches are counted
        assert _same(straight, resumed), stop
        assert [e for e in m2["evals"] if e["step"] % 5 == 0] == m1["evals"]
        if stop % 5 == 0:  # no extra evaluation: the same loss windows
            assert m2["train_loss_curve"] == m1["train_loss_curve"]


def test_early_stopping_on_validation(tmp_path):
    flipped = (VAL[0], (VAL[1] + 1) % C)  # training makes this validation set worse
    task = lambda: _task(val=flipped, metric="val_accuracy", mode="max")  # noqa: E731
    model = _model()
    m = fit(model, task(), _cfg(patience=2), checkpoint_dir=tmp_path)
    assert m["stopped_early"] and m["finished"] and m["steps"] < m["total_steps"]
    evals = m["evals"]
    assert [e["step"] for e in evals][-1] == m["steps"] and len(evals) == (m["best_step"] // 4) + 3
    assert all(e["val_accuracy"] <= m["kept"]["val_accuracy"] for e in evals[-2:])
    assert m["kept_step"] == m["best_step"]
    # Resuming a run that stopped early trains no further.
    again = fit(_model(), task(), _cfg(patience=2), checkpoint_dir=tmp_path)
    assert again["steps"] == m["steps"] and again["stopped_early"] and again["kept_step"] == m["kept_step"]
    # Off by default: the same run goes the whole way.
    assert fit(_model(), task(), _cfg())["steps"] == 40


def test_skip_that_never_lets_a_batch_through_fails():
    with pytest.raises(ValueError, match="passed over"):
        fit(_model(), _task(skip=lambda batch: True), _cfg())


def test_task_refuses_bad_mode_and_draws_refuse_epochs():
    with pytest.raises(ValueError, match="mode"):
        dataclasses.replace(_task(), mode="up")
    with pytest.raises(ValueError, match="epochs"):
        fit(_model(), _task(draw=True), _cfg(epochs=2))


def test_an_evaluation_on_the_reported_split_chooses_nothing():
    """Task.reported (the evaluation is the held-out split a kind reports, not validation):
    keeping its best evaluation or stopping early on it would select on the reported figures."""
    with pytest.raises(ValueError, match="reported"):
        dataclasses.replace(_task(select="last"), reported=True, select="best")
    reported = dataclasses.replace(_task(select="last"), reported=True)
    with pytest.raises(ValueError, match="patience"):
        fit(_model(), reported, _cfg(patience=2))
    assert fit(_model(), reported, _cfg(steps=4))["kept_step"] == 4


def test_a_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def loss(model, batch, device):
        calls["n"] += 1
        value = _loss(model, batch, device)
        return value * float("nan") if calls["n"] == 7 else value

    task = dataclasses.replace(_task(select="last"), loss=loss)
    model = _model()
    with pytest.raises(NonFiniteLossError, match=r"toy: the training loss is nan at step 7; .*last good checkpoint \(step 4\)"):
        fit(model, task, _cfg(eval_every=4), checkpoint_dir=tmp_path)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 4
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN step never updated the weights


class ToyWithAverage(Toy):
    """Toy with an average of its weights kept in the model (as an EMA is): the checkpoint holds it."""

    def __init__(self):
        super().__init__()
        self.avg = nn.Linear(D, C).requires_grad_(False)
        self.avg.load_state_dict(self.fc.state_dict())


def test_after_step_runs_once_per_step_and_what_it_keeps_in_the_model_survives_a_resume(tmp_path):
    calls: list[int] = []

    def after_step(model, step):
        calls.append(step)
        with torch.no_grad():
            for a, p in zip(model.avg.parameters(), model.fc.parameters()):
                a.lerp_(p, 0.5)

    def task():
        return dataclasses.replace(_task(select="last"), after_step=after_step)

    torch.manual_seed(0)
    straight = ToyWithAverage()
    fit(straight, task(), _cfg(steps=12))
    assert calls == list(range(1, 13))
    assert not torch.equal(straight.avg.weight, straight.fc.weight)  # an average, not a copy
    calls.clear()
    torch.manual_seed(0)
    fit(ToyWithAverage(), task(), _cfg(steps=12, stop_at_step=5), checkpoint_dir=tmp_path)
    torch.manual_seed(0)
    resumed = ToyWithAverage()
    fit(resumed, task(), _cfg(steps=12), checkpoint_dir=tmp_path)
    assert calls == list(range(1, 13))  # 1-5, then 6-12 after the resume
    assert "avg.weight" in load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"] and _same(straight, resumed)
