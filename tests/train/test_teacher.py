"""Feature targets in the pre-training job: a frozen teacher from any maest checkpoint, never saved with the
student, recorded by path and sha256; exact resume; one-line refusals of teachers that do not fit."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

import maest
from maest.models import model_config
from maest.overrides import apply_overrides
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import read_metrics
from maest.train.pretrain import mae_loss, run
from maest.train.recipes import get_preset
from maest.train.teacher import Teacher, build_teacher

from ..conftest import RandomClips


def _teacher(tmp: Path, name: str = "teacher.pt", seed: int = 1, **encoder) -> Path:
    """A random-init tiny MAE (32 px, 4 frames, patch 8, tubes of 2, 32 wide, depth 2) as a maest checkpoint."""
    cfg = model_config("mae_vit_tiny_test")
    cfg.encoder = dataclasses.replace(cfg.encoder, **encoder)
    cfg.mask.ratio = 0.5  # coarse teacher grids keep a token
    if cfg.encoder.t_patch_size == 1:
        cfg.decoder.t_pred_patch_size = 1
    torch.manual_seed(seed)
    path = tmp / name
    ckpt.atomic_save(ckpt.model_record(cfg.build().state_dict(), "mae", dataclasses.asdict(cfg)), path)
    return path


def _cfg(out: Path, teacher: Path | str, *extra: str):
    return apply_overrides(get_preset("tiny"), [
        f"train.output_dir={out}", "train.tensorboard=false", "train.progress=false", "train.epochs=2",
        "train.log_every=1", "data.num_workers=0", "model.target.kind=features", f"model.target.teacher={teacher}",
        *extra])


def _losses(path: Path) -> dict:
    return {r["step"]: r["loss"] for r in read_metrics(path / "metrics.jsonl") if "loss" in r}


def test_pretrain_with_a_teacher_saves_the_student_only_and_records_the_teacher(tmp_path):
    teacher = _teacher(tmp_path)
    summary = run(_cfg(tmp_path / "run", teacher, "train.max_steps=2"), dataset=RandomClips())
    state = ckpt.load_checkpoint(summary["checkpoint"])
    student = get_preset("tiny").model
    student.target.kind, student.target.teacher_dim = "features", 32
    assert set(state["model"]) == set(student.build().state_dict())  # no teacher tensor rides along
    assert state["model"]["decoder_pred.weight"].shape == (32, 16)  # the decoder predicts 32-wide features
    target = state["config"]["model"]["target"]
    digest = hashlib.sha256(teacher.read_bytes()).hexdigest()
    assert (target["teacher"], target["teacher_dim"], target["teacher_sha256"]) == (str(teacher), 32, digest)
    assert state["model_config"]["target"]["teacher_sha256"] == digest
    on_disk = json.loads((tmp_path / "run" / "config.json").read_text())
    assert on_disk["model"]["target"]["teacher_sha256"] == digest
    assert all(torch.isfinite(torch.tensor(v)) for v in _losses(tmp_path / "run").values())
    assert maest.load(summary["checkpoint"]).decoder_pred.out_features == 32  # no teacher needed to load


def test_resume_with_a_teacher_is_exact_and_refuses_a_changed_teacher(tmp_path):
    teacher = _teacher(tmp_path)
    full = run(_cfg(tmp_path / "full", teacher, "train.max_steps=4"), dataset=RandomClips())
    run(_cfg(tmp_path / "split", teacher, "train.max_steps=2", "train.save_every_steps=2"), dataset=RandomClips())
    resumed = run(_cfg(tmp_path / "split", teacher, "train.max_steps=4", "train.resume=auto"), dataset=RandomClips())
    assert _losses(tmp_path / "full") == _losses(tmp_path / "split")
    wa = ckpt.model_state(ckpt.load_checkpoint(full["checkpoint"]))
    wb = ckpt.model_state(ckpt.load_checkpoint(resumed["checkpoint"]))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    _teacher(tmp_path, seed=2)  # other weights under the same path
    with pytest.raises(ValueError, match=r"has sha256 .* that the checkpoint .* recorded") as e:
        run(_cfg(tmp_path / "split", teacher, "train.max_steps=6", "train.epochs=3", "train.resume=auto"),
            dataset=RandomClips())
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("encoder", "extra", "match"), [
    ({}, ["model.target.teacher="], r"model.target.kind=features needs a teacher: add --set model.target.teacher"),
    ({}, ["model.target.teacher_layer=2"], r"teacher_layer=2 is not a block of .* \(depth 2\); use 0..1"),
    ({}, ["model.target.teacher_dim=48"], r"teacher_dim=48 but .* is 32 wide; set model.target.teacher_dim=32"),
    ({"patch_size": 16}, [], r"takes 32 px in 16 px patches but the student 32 px in 8 px patches"),
    ({"img_size": 64}, [], r"use a teacher of img_size=32, patch_size=8"),
    ({"num_frames": 8}, [], r"takes 8 frames in tubes of 2, the student 4 in tubes of 2; use a video teacher"),
    ({"t_patch_size": 1}, [], r"or an image teacher \(num_frames=1, t_patch_size=1\)"),
])
def test_teachers_that_do_not_fit_are_refused_in_one_line(tmp_path, encoder, extra, match):
    teacher = _teacher(tmp_path, **encoder)
    with pytest.raises(ValueError, match=match) as e:
        _cfg(tmp_path / "run", teacher, *extra).validate()
    assert "\n" not in str(e.value)


def test_a_file_that_is_not_a_maest_checkpoint_is_refused(tmp_path):
    (tmp_path / "bare.pt").write_bytes(b"")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "sd.pt")
    for name, match in (("missing.pt", "does not exist"), ("bare.pt", "is empty"), ("sd.pt", "maest convert")):
        with pytest.raises(ValueError, match=rf"model.target.teacher=.*{name}: .*{match}"):
            _cfg(tmp_path / "run", tmp_path / name).validate()


def test_image_teacher_sees_the_first_frame_of_each_tube(tmp_path):
    teacher_path = _teacher(tmp_path, num_frames=1, t_patch_size=1)
    cfg = _cfg(tmp_path / "run", teacher_path).validate()
    teacher = build_teacher(cfg, "cpu")
    video = torch.randn(2, 3, 4, 32, 32)
    feats = teacher(video)
    assert teacher.layout == "image" and feats.shape == (2, 2 * 16, 32)
    # frame 2 alone, through the teacher: the second time slot of the second clip
    alone = teacher.encoder.encode(teacher.encoder.embed_tokens(video[1:, :, 2:3]), norm=False)[:, 1:]
    torch.testing.assert_close(feats[1, 16:], alone[0])


def test_teacher_layer_norm_and_normalisation(tmp_path):
    teacher_path = _teacher(tmp_path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    full = maest.load(teacher_path)
    student = get_preset("tiny").model.encoder
    video = torch.randn(2, 3, 4, 32, 32)
    first = Teacher(full, student, layer=0, feature_norm="layernorm")
    assert len(first.encoder.blocks) == 1 and not any(p.requires_grad for p in first.parameters())
    # the clip, normalised for the student, reaches the teacher in the teacher's own normalisation
    mean, std = torch.tensor(student.mean).view(1, 3, 1, 1, 1), torch.tensor(student.std).view(1, 3, 1, 1, 1)
    as_teacher = (video * std + mean - 0.5) / 0.25
    with torch.no_grad():
        tokens = full.blocks[0](torch.cat([full.cls_token.expand(2, -1, -1) + full._pos_tables("pos_embed")[1],
                                           full.embed_tokens(as_teacher) + full._pos_tables("pos_embed")[0]], 1))
    expected = torch.nn.functional.layer_norm(tokens[:, 1:], (32,), eps=1e-6)
    torch.testing.assert_close(first(video), expected, rtol=1e-5, atol=1e-5)
    first.train()
    assert not first.training  # stays in eval mode


def test_mae_loss_takes_the_teacher_target_and_refuses_without_it(tmp_path):
    cfg = _cfg(tmp_path / "run", _teacher(tmp_path), "model.target.loss=mse").validate()
    model = cfg.model.build()
    video = torch.randn(2, 3, 4, 32, 32)
    target = build_teacher(cfg, "cpu")(video)
    loss = mae_loss(model, video, target=target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="feature targets come from the teacher"):
        mae_loss(model, video)
