"""The epoch loop on its own, with a toy model and loss: the per-step lr and warmup, each group's
``lr_scale``, accumulation, clipping, ``max_steps``, ``save_every_steps``, the non-finite guard, and a
resume that ends on the same weights as a run that was never interrupted."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from maest import runtime
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import read_metrics
from maest.train import loop
from maest.train.recipes import get_preset
from maest.train.schedule import lr_at

from ..conftest import RandomClips


@pytest.fixture(autouse=True)
def _no_curves(monkeypatch):
    monkeypatch.setattr(loop, "write_run_curves", lambda run_dir: None)


def _cfg(tmp_path, **train):
    cfg = get_preset("tiny")
    cfg.train.output_dir, cfg.train.progress, cfg.train.tensorboard = str(tmp_path / "run"), False, False
    cfg.train.log_every, cfg.train.epochs, cfg.train.batch_size = 1, 3, 2
    cfg.optim.warmup_epochs, cfg.optim.clip_grad, cfg.optim.lr = 1.0, None, 0.1
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 1)


def _toy_loss(model: nn.Module, batch: dict, step: int, accum_pos: int) -> torch.Tensor:
    x = batch["video"].flatten(1)[:, :4]
    return model.head(torch.tanh(model.body(x))).pow(2).mean()


def _run(cfg, model=None, loss_fn=_toy_loss, groups=None):
    torch.manual_seed(0)
    model = model or Toy()
    params = groups or [{"params": list(model.parameters())}]
    opt = torch.optim.SGD(params, lr=cfg.optim.lr)
    summary = loop.train(cfg, model, opt, RandomClips(n=8), runtime.DistInfo(), loss_fn,
                         base_lr=cfg.optim.lr, precision="fp32", title="test toy")
    return model, summary


def test_lr_follows_warmup_then_cosine_per_step_and_each_group_scales_it(tmp_path):
    cfg = _cfg(tmp_path)
    model = Toy()
    seen = []

    def spy(m, batch, step, accum_pos):
        seen.append((step, [g["lr"] for g in opt.param_groups]))
        return _toy_loss(m, batch, step, accum_pos)

    opt = torch.optim.SGD([{"params": model.body.parameters()},
                           {"params": model.head.parameters(), "lr_scale": 10.0}], lr=0.1)
    summary = loop.train(cfg, model, opt, RandomClips(n=8), runtime.DistInfo(), spy, base_lr=0.1,
                         precision="fp32", title="test toy")
    steps_per_epoch = 8 // 2
    assert summary["steps"] == 3 * steps_per_epoch == len(seen)
    for step, (body, head) in seen:
        want = lr_at(step / steps_per_epoch, 0.1, cfg.optim.min_lr, 1.0, 3)
        assert body == pytest.approx(want) and head == pytest.approx(10 * want)
    assert seen[0][1][0] == 0.0 and seen[steps_per_epoch][1][0] == pytest.approx(0.1)  # warmup ends at epoch 1
    logged = [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "lr" in r]
    assert logged == pytest.approx([lr for _, (lr, _) in seen])


def test_accumulating_two_halves_is_one_step_over_both(tmp_path):
    """The gradient of two accumulated micro-batches of 1 video equals one batch of 2 (the loss is a mean)."""
    whole, _ = _run(_cfg(tmp_path / "a", batch_size=2, max_steps=3))
    halves, summary = _run(_cfg(tmp_path / "b", batch_size=1, accum_iter=2, max_steps=3))
    assert summary["steps"] == 3
    for a, b in zip(whole.parameters(), halves.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_clipping_bounds_the_update_and_logs_the_norm(tmp_path):
    cfg = _cfg(tmp_path, max_steps=1)
    cfg.optim.clip_grad = 1e-3
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in Toy().state_dict().items()}  # what _run builds
    model, _ = _run(cfg)
    moved = torch.cat([(p - start[k]).flatten() for k, p in model.state_dict().items()])
    assert moved.norm() <= 0.1 * 1e-3 * (1 + 1e-5)  # lr x clip: SGD moves at most that far
    rec = next(r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "grad_norm" in r)
    assert rec["grad_norm"] > 1e-3  # the norm before clipping


def test_max_steps_and_save_every_steps(tmp_path):
    _, summary = _run(_cfg(tmp_path, max_steps=5, save_every_steps=2, keep_checkpoints=0))
    assert summary["steps"] == 5
    steps = [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(tmp_path / "run")]
    assert steps == [2, 4, 5]  # every 2 steps, and where the run stopped


def test_non_finite_loss_stops_with_the_step(tmp_path):
    def nan_at_3(model, batch, step, accum_pos):
        loss = _toy_loss(model, batch, step, accum_pos)
        return loss * math.nan if step == 3 else loss

    with pytest.raises(FloatingPointError, match="loss is nan at step 3"):
        _run(_cfg(tmp_path), loss_fn=nan_at_3)


def test_a_resumed_run_ends_on_the_weights_of_an_uninterrupted_one(tmp_path):
    straight, _ = _run(_cfg(tmp_path / "a"))
    _run(_cfg(tmp_path / "b", max_steps=5, save_every_steps=5))
    resumed, summary = _run(_cfg(tmp_path / "b", resume="auto"))
    assert summary["steps"] == 12
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
