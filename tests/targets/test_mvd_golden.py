"""Feature targets against MVD's own code (tests/golden/mvd_targets.pt, made by make_mvd_golden.py from
ruiwang2021/mvd @45b877a): an image teacher (MAE ViT, first frame of each tube) and a video teacher
(VideoMAE encoder), with and without MVD's feature LayerNorm, smooth L1 and MSE, loaded from maest
checkpoints through the pre-training job's teacher builder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from maest.models import ClassifierConfig, MAEConfig
from maest.models.encoder import EncoderConfig
from maest.runs import checkpoint as ckpt
from maest.train.config import PretrainConfig
from maest.train.losses import reconstruction_loss
from maest.train.teacher import build_teacher

GOLDEN = Path(__file__).parents[1] / "golden" / "mvd_targets.pt"
LOSSES = {"SmoothL1": "smooth_l1", "L2": "mse"}


@pytest.fixture(scope="module")
def golden() -> dict:
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} is missing (make it with tests/golden/make_mvd_golden.py)")
    return torch.load(GOLDEN, weights_only=True)


def _student(g: dict) -> EncoderConfig:
    geo = g["geometry"]
    return EncoderConfig(img_size=geo["img_size"], patch_size=geo["patch_size"], num_frames=geo["frames"],
                         t_patch_size=geo["tubelet"], embed_dim=16, depth=1, num_heads=2)


def _teacher_file(g: dict, which: str, tmp: Path) -> Path:
    """The golden teacher as a maest classifier checkpoint (its head is never read)."""
    geo, t = g["geometry"], g[which]
    if which == "image_teacher":  # MAE's image ViT: class token, joint positions with the class slot first
        enc = EncoderConfig(img_size=geo["img_size"], patch_size=geo["patch_size"], num_frames=1, t_patch_size=1,
                            embed_dim=t["dim"], depth=t["depth"], num_heads=t["heads"], pos_embed_type="joint",
                            cls_embed=True, pooling="cls")
    else:  # VideoMAE: q/v biases, fixed 1-D sin-cos positions, no class token
        enc = EncoderConfig(img_size=geo["img_size"], patch_size=geo["patch_size"], num_frames=geo["frames"],
                            t_patch_size=geo["tubelet"], embed_dim=t["dim"], depth=t["depth"], num_heads=t["heads"],
                            qkv_bias="qv", pos_embed_type="sincos", cls_embed=False)
    cfg = ClassifierConfig(encoder=enc, num_classes=2)
    model = cfg.build()
    missing, unexpected = model.load_state_dict(t["state_dict"], strict=False)
    assert sorted(missing) == ["head.bias", "head.weight"] and not unexpected
    path = tmp / f"{which}.pt"
    ckpt.atomic_save(ckpt.model_record(model.state_dict(), "classifier", dataclasses.asdict(cfg)), path)
    return path


def _job(g: dict, teacher: Path, norm: str, tmp: Path) -> PretrainConfig:
    cfg = PretrainConfig(model=MAEConfig(encoder=_student(g)))
    cfg.model.decoder.embed_dim, cfg.model.decoder.depth, cfg.model.decoder.num_heads = 16, 1, 2
    cfg.model.target.kind, cfg.model.target.teacher, cfg.model.target.feature_norm = "features", str(teacher), norm
    cfg.train.output_dir = str(tmp / "run")
    return cfg.validate()


@pytest.mark.parametrize("which", ["image_teacher", "video_teacher"])
def test_teacher_features_match_mvd(golden: dict, which: str, tmp_path: Path) -> None:
    """The raw features (last block, no final norm) in the student's token order."""
    cfg = _job(golden, _teacher_file(golden, which, tmp_path), "none", tmp_path)
    teacher = build_teacher(cfg, "cpu")
    feats = teacher(golden["video"].float())
    B = golden["video"].shape[0]
    raw = golden["image_raw" if which == "image_teacher" else "video_raw"]
    expected = raw.reshape(B, -1, raw.shape[-1])  # MVD: '(b t) l c -> b (t l) c'
    assert teacher.layout == ("image" if which == "image_teacher" else "video")
    assert cfg.model.target.teacher_dim == raw.shape[-1]
    torch.testing.assert_close(feats, expected)


@pytest.mark.parametrize("case", ["layernorm_smoothl1", "none_smoothl1", "layernorm_l2"])
def test_targets_and_loss_match_mvd(golden: dict, case: str, tmp_path: Path) -> None:
    c = golden["cases"][case]
    mask = golden["mask"]
    B, L = mask.shape
    total = 0.0
    for which, key in (("image_teacher", "image"), ("video_teacher", "video")):
        cfg = _job(golden, _teacher_file(golden, which, tmp_path), "layernorm" if c["norm_feature"] else "none",
                   tmp_path)
        target = build_teacher(cfg, "cpu")(golden["video"].float())
        D = target.shape[-1]
        torch.testing.assert_close(target[mask].reshape(B, -1, D), c[f"{key}_target"])
        pred = torch.zeros(B, L, D)
        pred[mask] = golden[f"{key}_pred"].reshape(-1, D)  # MVD predicts the masked tokens in token order
        cfg.model.target.loss = LOSSES[c["loss_funcs"][0 if key == "image" else 1]]
        loss = reconstruction_loss(pred, target, mask.float(), loss=cfg.model.target.loss_kind)
        torch.testing.assert_close(loss, c[f"{key}_loss"])
        total = total + loss
    torch.testing.assert_close(total, c["loss"])  # MVD's two-teacher sum at weights 1, 1


def test_auto_loss_is_mvds_smooth_l1(golden: dict, tmp_path: Path) -> None:
    cfg = _job(golden, _teacher_file(golden, "video_teacher", tmp_path), "none", tmp_path)
    assert cfg.model.target.loss == "auto" and cfg.model.target.loss_kind == "smooth_l1"
