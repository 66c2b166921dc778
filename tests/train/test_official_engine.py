"""maest's trainer against the official engine (tests/golden/trainer_reference.pt, made by
tests/golden/make_trainer_golden.py from facebookresearch/mae_st @c5dec1b).

Pre-training: ``maest.train.pretrain.run`` on the golden tiny MAE, initial weights, videos (in the golden
per-epoch order) and masking noise must reproduce the official ``engine_pretrain.train_one_epoch`` run
(``lr_sched.adjust_learning_rate``, ``misc.add_weight_decay``, AdamW (0.9, 0.95) foreach,
``NativeScalerWithGradNormCount(fp32=True)`` with clip_grad, repeated clips reshaped into the batch): the
lr of every group at every step, every micro-batch loss, every grad norm and the final weights. Two
negative checks show the comparison notices a changed weight-decay grouping or warmup.

Fine-tuning: the peak lr counts repeated clips (``main_finetune.py``'s eff_batch_size), and the
layer-wise lr decay groups give every parameter the official ``param_groups_lrd`` lr_scale and weight decay.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import maest.data.loader
from maest.models import create_model, model_config
from maest.models.factory import apply_flat_overrides
from maest.runs.metrics import read_metrics
from maest.train import finetune, loop, pretrain
from maest.train.config import FinetuneConfig, PretrainConfig
from maest.train.optim import param_groups_layer_decay, param_groups_weight_decay

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "trainer_reference.pt"
RTOL = 1e-5  # losses and grad norms, relative
WTOL = 1e-5  # final weights, absolute (they are O(0.01..1))


@pytest.fixture(scope="module")
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} not found; regenerate it with tests/golden/make_trainer_golden.py")
    return torch.load(GOLDEN, weights_only=True)


@pytest.fixture(autouse=True)
def _no_curves(monkeypatch):
    monkeypatch.setattr(loop, "write_run_curves", lambda run_dir: None)


def _mae_keywords(model: dict) -> dict:
    """The official constructor keywords for create_model. ``sep_pos_embed`` is the one create_model does
    not take (it raises ValueError): it is mapped to maest's ``pos_embed_type`` here."""
    kw = dict(model)
    kw["pos_embed_type"] = "separable" if kw.pop("sep_pos_embed") else "joint"
    return kw


class GoldenVideos(Dataset):
    """The golden videos, r clips each, with their index (for the noise spy)."""

    def __init__(self, videos: torch.Tensor) -> None:
        self.videos = videos.float()

    def __len__(self) -> int:
        return self.videos.shape[0]

    def __getitem__(self, i: int) -> dict:
        clips = self.videos[i]
        return {"video": clips, "index": torch.full((clips.shape[0],), int(i), dtype=torch.long), "skipped": []}


def _pretrain_cfg(golden: dict, case: str, out_dir: Path) -> PretrainConfig:
    r = golden["runs"][case]["run"]
    cfg = PretrainConfig(model=create_model("mae_vit_base_patch16", **_mae_keywords(golden["model"])).model_cfg)
    cfg.model.mask.ratio = r["mask_ratio"]
    o, t = cfg.optim, cfg.train
    o.lr, o.min_lr, o.warmup_epochs, o.weight_decay = r["lr"], r["min_lr"], r["warmup_epochs"], r["weight_decay"]
    (o.beta1, o.beta2), o.clip_grad, o.fused = r["betas"], r["clip_grad"], "off"
    t.epochs, t.batch_size, t.accum_iter = r["epochs"], r["batch_size"], r["accum_iter"]
    t.precision, t.device, t.seed, t.log_every = "fp32", "cpu", 0, 1
    t.progress, t.tensorboard, t.output_dir = False, False, str(out_dir)
    cfg.data.repeat_aug, cfg.data.num_workers = r["repeat_aug"], 0
    return cfg


def run_maest(golden: dict, case: str, out_dir: Path, monkeypatch: pytest.MonkeyPatch,
              cfg: PretrainConfig | None = None) -> dict:
    """maest's pre-training on the golden weights, video order and noise; what it did at each step."""
    ref = golden["runs"][case]
    cfg = cfg or _pretrain_cfg(golden, case, out_dir)
    seen: dict = {"model": None, "lr": [], "loss": [], "index": [], "micro": []}

    def build_model(c):
        model = c.model.build()
        model.load_state_dict(golden["initial_state_dict"], strict=True)
        seen["model"] = model
        return model

    r = ref["run"]
    micro_per_epoch = r["num_videos"] // r["batch_size"]
    steps_per_epoch = micro_per_epoch // r["accum_iter"]
    calls: dict[int, int] = {}

    def masking_noise(model, video_index, seed, step):
        # maest keys its noise by (step, video, clip), not by draw order: give each micro-batch the row the
        # official engine drew for the same micro-batch (its k-th of the run)
        epoch, calls[step] = step // steps_per_epoch, calls.get(step, 0) + 1
        k = epoch * micro_per_epoch + (step - epoch * steps_per_epoch) * r["accum_iter"] + calls[step] - 1
        seen["index"].append(video_index.clone())
        seen["micro"].append(k)
        return ref["noise"][k].clone()

    real_set_lr, real_loss = loop.set_lr, pretrain.mae_loss

    def set_lr(optimizer, *a, **k):
        lr = real_set_lr(optimizer, *a, **k)
        seen["lr"].append([g["lr"] for g in optimizer.param_groups])
        return lr

    def mae_loss(*a, **k):
        loss = real_loss(*a, **k)
        seen["loss"].append(loss.item())
        return loss

    order = ref["order"]
    monkeypatch.setattr(maest.data.loader, "epoch_order",
                        lambda num_items, seed, epoch, rank=0, world=1, shuffle=True: order[epoch].tolist())
    monkeypatch.setattr(pretrain, "build_model", build_model)
    monkeypatch.setattr(pretrain, "masking_noise", masking_noise)
    monkeypatch.setattr(pretrain, "mae_loss", mae_loss)
    monkeypatch.setattr(loop, "set_lr", set_lr)
    summary = pretrain.run(cfg, dataset=GoldenVideos(golden["videos"][:ref["run"]["num_videos"]]))
    metrics = [m for m in read_metrics(out_dir / "metrics.jsonl") if "grad_norm" in m]
    return {"summary": summary, "lr": torch.tensor(seen["lr"], dtype=torch.float64),
            "loss": torch.tensor(seen["loss"], dtype=torch.float64),
            "grad_norm": torch.tensor([m["grad_norm"] for m in metrics], dtype=torch.float64),
            "logged_loss": torch.tensor([m["loss"] for m in metrics], dtype=torch.float64),
            "index": seen["index"], "micro": seen["micro"], "model": seen["model"],
            "state_dict": seen["model"].state_dict()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs() / b.abs().clamp_min(1e-12)).max().item()


def _no_gradient(name: str) -> bool:
    """Attention key biases: q . (k + b) adds the same q . b to every logit of a query, which softmax
    ignores, so their gradient is zero in exact arithmetic. What both runs compute is rounding noise
    (~1e-10), which Adam divides by its own tiny running scale: they drift by noise-sized steps (the
    official run moves them by at most 6e-5 in total) and are compared at KBIAS_TOL, not WTOL."""
    return name.endswith("attn.k.bias")


KBIAS_TOL = 5e-4


def weight_diffs(got: dict, ref: dict) -> tuple[float, float]:
    """max |maest - official| over the final weights with a gradient, and over the attention key biases."""
    want = ref["final_state_dict"]
    assert set(got) == set(want)
    diff = {k: (got[k].double() - want[k].double()).abs().max().item() for k in want}
    return (max(d for k, d in diff.items() if not _no_gradient(k)),
            max(d for k, d in diff.items() if _no_gradient(k)))


def check_against_official(got: dict, ref: dict) -> None:
    """The step-by-step comparison: data order, lr per group, losses, logged losses, grad norms, weights.

    Where accum_iter does not divide an epoch's micro-batches, the official engine also runs each
    epoch's last, incomplete accumulation (forward and backward, then zero_grad at the next epoch's
    start); maest skips that work, as it never reaches the weights, so micro-batches and lr settings are
    compared at the official micro-batches maest ran."""
    r = ref["run"]
    steps = ref["grad_norm"].numel()
    assert got["summary"]["steps"] == steps
    micro_per_epoch = r["num_videos"] // r["batch_size"]
    ran = torch.tensor(got["micro"])
    used = torch.tensor([k for k in range(ref["noise"].shape[0])
                         if k % micro_per_epoch < micro_per_epoch - micro_per_epoch % r["accum_iter"]])
    assert torch.equal(ran, used)  # every official micro-batch that reaches the weights, in order
    # the same videos in the same order, r clips each, video-major
    b = r["batch_size"]
    want_index = ref["order"][:, :, None].expand(-1, -1, r["repeat_aug"]).reshape(-1, b * r["repeat_aug"])
    assert torch.equal(torch.stack(got["index"]), want_index[ran])
    # lr of every group, set at every accum_iter-th micro-batch (warmup then cosine)
    adjusted = [k for k in range(ref["noise"].shape[0]) if k % micro_per_epoch % r["accum_iter"] == 0]
    official_lr_at = [adjusted.index(k) for k in used.tolist() if k in adjusted]  # the official's adjust calls
    assert got["lr"].shape[0] == steps
    torch.testing.assert_close(got["lr"], ref["lr"][official_lr_at], rtol=0, atol=1e-12)
    # every micro-batch loss, the logged per-step mean, and the grad norm the clipping saw
    assert _rel(got["loss"], ref["loss"][ran]) < RTOL
    if micro_per_epoch % r["accum_iter"] == 0:
        assert _rel(got["logged_loss"], ref["loss"].view(steps, -1).mean(1)) < RTOL
    assert got["grad_norm"].shape == ref["grad_norm"].shape
    assert _rel(got["grad_norm"], ref["grad_norm"]) < RTOL
    weights, key_biases = weight_diffs(got["state_dict"], ref)
    assert weights < WTOL
    assert key_biases < KBIAS_TOL


def test_pretraining_matches_the_official_engine_step_by_step(golden, tmp_path, monkeypatch):
    ref = golden["runs"]["main"]
    assert ref["grad_norm"].numel() >= 50
    check_against_official(run_maest(golden, "main", tmp_path / "run", monkeypatch), ref)


def test_pretraining_matches_the_official_engine_with_a_ragged_epoch(golden, tmp_path, monkeypatch):
    check_against_official(run_maest(golden, "ragged", tmp_path / "run", monkeypatch), golden["runs"]["ragged"])


def _decay_everything(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]


def _spare_tokens_and_positions(model, weight_decay):
    """maest's groups, but cls/mask tokens and positional tables without decay (as fine-tuning treats them;
    the official pre-training decays every parameter of more than one dimension but biases)."""
    spared = {id(p) for n, p in model.named_parameters() if "pos_embed" in n or n.endswith(("cls_token", "mask_token"))}
    groups = param_groups_weight_decay(model, weight_decay)
    moved = [p for p in groups[1]["params"] if id(p) in spared]
    assert moved
    groups[0]["params"] += moved
    groups[1]["params"] = [p for p in groups[1]["params"] if id(p) not in spared]
    return groups


@pytest.mark.parametrize("grouping", [_decay_everything, _spare_tokens_and_positions])
def test_a_changed_weight_decay_grouping_is_detected(golden, tmp_path, monkeypatch, grouping):
    monkeypatch.setattr(pretrain, "param_groups_weight_decay", grouping)
    got = run_maest(golden, "main", tmp_path / "run", monkeypatch)
    assert weight_diffs(got["state_dict"], golden["runs"]["main"])[0] > 100 * WTOL
    with pytest.raises(AssertionError):
        check_against_official(got, golden["runs"]["main"])


def test_a_changed_warmup_is_detected(golden, tmp_path, monkeypatch):
    cfg = _pretrain_cfg(golden, "main", tmp_path / "run")
    cfg.optim.warmup_epochs += 1
    got = run_maest(golden, "main", tmp_path / "run", monkeypatch, cfg)
    ref = golden["runs"]["main"]
    assert (got["lr"] - ref["lr"]).abs().max() > 1e-4
    assert weight_diffs(got["state_dict"], ref)[0] > 1000 * WTOL


@pytest.mark.parametrize("repeat_aug", [1, 2, 4])
def test_finetuning_lr_counts_repeated_clips_as_the_official_main_finetune(tmp_path, monkeypatch, repeat_aug):
    blr, batch_size, accum_iter, world_size = 1e-3, 3, 2, 1
    cfg = FinetuneConfig(model=apply_flat_overrides(model_config("vit_base_patch16"), img_size=32, patch_size=16,
                                                    embed_dim=32, depth=2, num_heads=2, num_frames=8, t_patch_size=2,
                                                    num_classes=5))
    cfg.optim.blr, cfg.optim.lr = blr, None
    cfg.train.batch_size, cfg.train.accum_iter, cfg.train.device = batch_size, accum_iter, "cpu"
    cfg.train.output_dir, cfg.data.repeat_aug = str(tmp_path / "ft"), repeat_aug
    captured = {}

    def fake_train(cfg, model, optimizer, dataset, info, loss_fn, *, base_lr, **kw):
        captured["base_lr"] = base_lr
        captured["group_lrs"] = [g["lr"] for g in optimizer.param_groups]
        return {}

    monkeypatch.setattr(finetune, "train", fake_train)
    finetune.run(cfg, dataset=GoldenVideos(torch.zeros(4, repeat_aug, 3, 8, 32, 32)))
    # main_finetune.py: eff_batch_size = batch_size * accum_iter * world_size * repeat_aug; lr = blr * eff / 256
    official = blr * (batch_size * accum_iter * world_size * repeat_aug) / 256
    assert captured["base_lr"] == pytest.approx(official, rel=1e-12)
    assert captured["group_lrs"] == [pytest.approx(official, rel=1e-12)] * len(captured["group_lrs"])


@pytest.mark.parametrize("case", ["sep_cls", "joint_nocls"])
def test_layer_decay_groups_match_official_param_groups_lrd(golden, case):
    ref = golden["layer_decay"]
    g, m = ref[case], golden["model"]
    c = g["config"]
    model = create_model("vit_base_patch16", img_size=m["img_size"], patch_size=m["patch_size"],
                         embed_dim=m["embed_dim"], depth=m["depth"], num_heads=m["num_heads"],
                         mlp_ratio=m["mlp_ratio"], num_frames=m["num_frames"], t_patch_size=m["t_patch_size"],
                         norm_eps=m["norm_eps"], num_classes=c["num_classes"], cls_embed=c["cls_embed"],
                         pos_embed_type="separable" if c["sep_pos_embed"] else "joint")
    s = ref["settings"]
    groups = param_groups_layer_decay(model, s["weight_decay"], s["layer_decay"], num_layers=m["depth"] + 1)
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)]: (grp["lr_scale"], grp["weight_decay"]) for grp in groups for p in grp["params"]}
    # the classifier's parameter names are the official ones: no mapping needed
    assert set(got) == set(g["groups"])
    for name, want in g["groups"].items():
        assert got[name] == pytest.approx(tuple(want.tolist()), rel=1e-12, abs=0), name
