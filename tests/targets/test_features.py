"""Teacher-feature targets: the config, the token layout of image teachers, MVD's feature norm and loss, and
the surfaces that meet a feature-target model (the CLI's one-line refusals, no reconstruction figure)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from maest.cli import main
from maest.models import model_config
from maest.runs import checkpoint as ckpt
from maest.targets import TargetConfig, target_dim
from maest.targets.features import normalise_features, stack_frame_tokens, tube_first_frames
from maest.train.losses import reconstruction_loss

from ..helpers import QUIET, _one_line_error


@pytest.mark.parametrize(("fields", "match"), [
    ({"feature_norm": "l2"}, r"model.target.feature_norm='l2' is not one of \('none', 'layernorm'\)"),
    ({"loss": "l1"}, r"model.target.loss='l1' is not one of"),
    ({"teacher_dim": -1}, r"model.target.teacher_dim=-1 must be >= 0"),
])
def test_feature_settings_are_checked(fields, match):
    with pytest.raises(ValueError, match=match):
        TargetConfig(kind="features", **fields).validate(8)


def test_feature_target_width_is_the_teachers():
    cfg = TargetConfig(kind="features")
    assert not cfg.is_pixels and cfg.loss_kind == "smooth_l1" and TargetConfig().loss_kind == "mse"
    with pytest.raises(ValueError, match="teacher_dim is not known yet: give model.target.teacher=PATH"):
        target_dim(cfg, 16, 1)
    assert target_dim(dataclasses.replace(cfg, teacher_dim=768), 16, 1) == 768
    with pytest.raises(ValueError, match="set model.decoder.t_pred_patch_size=1, not 2"):
        target_dim(dataclasses.replace(cfg, teacher_dim=768), 16, 2)


def test_image_teacher_tokens_follow_the_students_order():
    B, C, T, u = 2, 3, 6, 3
    video = torch.arange(B * C * T * 4).float().view(B, C, T, 2, 2)
    frames = tube_first_frames(video, u)
    assert frames.shape == (B * T // u, C, 1, 2, 2)
    torch.testing.assert_close(frames[3, :, 0], video[1, :, 3])  # clip 1, tube 1 -> frame 3
    tokens = torch.randn(B * T // u, 5, 7)  # per frame: 5 tokens of width 7
    stacked = stack_frame_tokens(tokens, B)
    assert stacked.shape == (B, 2 * 5, 7)
    torch.testing.assert_close(stacked[1, 5:], tokens[3])


def test_layernorm_has_no_affine_and_eps_1e6():
    x = torch.randn(2, 3, 8) * 5 + 2
    y = normalise_features(x, "layernorm")
    expected = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(y, expected)
    assert normalise_features(x, "none") is x


def test_smooth_l1_averages_over_removed_elements_as_nn_smooth_l1():
    pred, target = torch.randn(2, 6, 4) * 2, torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1]]).float()
    got = reconstruction_loss(pred, target, mask, loss="smooth_l1")
    keep = mask.bool()
    torch.testing.assert_close(got, torch.nn.SmoothL1Loss()(pred[keep], target[keep]))
    with pytest.raises(ValueError, match="model.target.loss='huber'"):
        reconstruction_loss(pred, target, mask, loss="huber")


def test_cli_refuses_a_feature_target_without_teacher_in_one_line(tmp_path, capsys, fake_data):
    code = main(["pretrain", "unused", "--preset", "mvd_b_distill_pretrain", "--output-dir", str(tmp_path), *QUIET])
    _one_line_error(capsys, code, "model.target.teacher=PATH")
    code = main(["pretrain", "unused", "--preset", "tiny", "--output-dir", str(tmp_path), "--set",
                 "model.target.kind=features", "--set", f"model.target.teacher={tmp_path / 'nope.pt'}", *QUIET])
    _one_line_error(capsys, code, "model.target.teacher=", "nope.pt does not exist")


def test_reconstruct_says_a_feature_model_has_no_pixels(tmp_path, capsys):
    cfg = model_config("mae_vit_tiny_test")
    cfg.target = TargetConfig(kind="features", teacher="t.pt", teacher_dim=32)
    path = tmp_path / "student.pt"
    ckpt.atomic_save(ckpt.model_record(cfg.build().state_dict(), "mae", dataclasses.asdict(cfg)), path)
    code = main(["reconstruct", str(tmp_path / "clip.mp4"), "--checkpoint", str(path), "--out", str(tmp_path / "r")])
    _one_line_error(capsys, code, "student.pt", "teacher's features", "no pixels to draw")
