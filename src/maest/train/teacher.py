"""The frozen teacher of feature targets (``model.target.kind=features``; MVD, Wang et al., CVPR 2023).

Any checkpoint :func:`maest.load` reads can teach (a maest MAE or classifier run, converted VideoMAE /
MAE-ST / Hugging Face weights): only its encoder runs, up to ``model.target.teacher_layer`` (default the
last block, before the final norm, as MVD reads its teachers). It is built once per job, frozen, in eval
mode, on the job's device, and is never a submodule of the student, so its weights never enter the
student's checkpoints; its path, width and sha256 are recorded in ``model.target`` (the run config and
every checkpoint). Geometry that does not line up with the student is refused in one line; the tokens
are laid out as :mod:`maest.targets.features` describes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maest.loading import Checkpoint, describe
from maest.models import MAEConfig
from maest.models.encoder import EncoderConfig, VideoEncoder
from maest.runs import checkpoint as ckpt
from maest.targets.features import normalise_features, stack_frame_tokens, tube_first_frames


def teacher_layout(teacher: EncoderConfig, student: EncoderConfig, what: str = "the teacher") -> str:
    """"video" (the student's frames and tubes: one teacher token per student token) or "image" (one
    frame: it sees the first frame of each student tube, MVD's ``time_stride_loss``).

    Raises:
        ValueError: token grids, channels or tubes that do not line up (MVD resamples none of them).
    """
    if (teacher.img_size, teacher.patch_size) != (student.img_size, student.patch_size):
        raise ValueError(f"{what} takes {teacher.img_size} px in {teacher.patch_size} px patches but the student "
                         f"{student.img_size} px in {student.patch_size} px patches, so their token grids differ "
                         f"(MVD does not resample features); use a teacher of img_size={student.img_size}, "
                         f"patch_size={student.patch_size}, or give the student the teacher's")
    if teacher.in_chans != student.in_chans:
        raise ValueError(f"{what} takes {teacher.in_chans} channels, the student {student.in_chans}; use a "
                         f"teacher of in_chans={student.in_chans}")
    if (teacher.num_frames, teacher.t_patch_size) == (student.num_frames, student.t_patch_size):
        return "video"
    if (teacher.num_frames, teacher.t_patch_size) == (1, 1):
        return "image"
    raise ValueError(f"{what} takes {teacher.num_frames} frames in tubes of {teacher.t_patch_size}, the student "
                     f"{student.num_frames} in tubes of {student.t_patch_size}; use a video teacher with "
                     f"num_frames={student.num_frames}, t_patch_size={student.t_patch_size}, or an image teacher "
                     "(num_frames=1, t_patch_size=1), which sees the first frame of each tube as in MVD")


def block_index(layer: int, depth: int, what: str = "the teacher") -> int:
    """``model.target.teacher_layer`` as an index in [0, depth)."""
    if not -depth <= layer < depth:
        raise ValueError(f"model.target.teacher_layer={layer} is not a block of {what} (depth {depth}); use 0.."
                         f"{depth - 1}, or -1 for the last block (MVD's)")
    return layer % depth


class Teacher(nn.Module):
    """A frozen encoder whose block ``layer`` gives per-token targets for a student of geometry
    ``student``: ``teacher(video)`` maps the student's normalised (B, C, T, H, W) clips to (B, L, D)
    features in the student's token order, without gradients, in the caller's autocast precision.

    Args:
        encoder: the teacher model (any :class:`~maest.models.encoder.VideoEncoder`: MAE or classifier);
            its blocks up to ``layer`` are copied into a bare encoder, the rest (decoder, head) is dropped.
        student: the student's encoder config (geometry and input normalisation).
        layer: index of the block whose output is read (-1: the last).
        feature_norm: "none" or "layernorm" (:func:`maest.targets.features.normalise_features`).
    """

    def __init__(self, encoder: VideoEncoder, student: EncoderConfig, layer: int = -1, feature_norm: str = "none",
                 what: str = "the teacher") -> None:
        super().__init__()
        cfg = encoder.cfg
        self.layout = teacher_layout(cfg, student, what)
        depth = block_index(layer, cfg.depth, what) + 1
        self.encoder = VideoEncoder(dataclasses.replace(cfg, depth=depth, final_norm=False))
        own = self.encoder.state_dict()
        self.encoder.load_state_dict({k: v for k, v in encoder.state_dict().items() if k in own}, strict=True)
        self.encoder.requires_grad_(False)
        self.t_patch_size, self.feature_norm = student.t_patch_size, feature_norm
        self.dim = cfg.embed_dim
        # the clip comes normalised for the student; the teacher sees it in its own normalisation
        s_mean, s_std, t_mean, t_std = (torch.tensor(v, dtype=torch.float64).view(1, -1, 1, 1, 1)
                                        for v in (student.mean, student.std, cfg.mean, cfg.std))
        self.renormalise = (student.mean, student.std) != (cfg.mean, cfg.std)
        self.register_buffer("scale", (s_std / t_std).float(), persistent=False)
        self.register_buffer("shift", ((s_mean - t_mean) / t_std).float(), persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)  # always frozen in eval mode

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.renormalise:
            video = video * self.scale.to(video.dtype) + self.shift.to(video.dtype)
        x = tube_first_frames(video, self.t_patch_size) if self.layout == "image" else video
        tokens = self.encoder.encode(self.encoder.embed_tokens(x), norm=False)
        if self.encoder.cls_embed:
            tokens = tokens[:, 1:]
        if self.layout == "image":
            tokens = stack_frame_tokens(tokens, video.shape[0])
        return normalise_features(tokens, self.feature_norm)


def read_teacher(model: MAEConfig) -> Checkpoint:
    """The checkpoint ``model.target.teacher`` names, its geometry and layer checked against the student;
    fills ``model.target.teacher_dim`` from it (weights are mapped, not read).

    Raises:
        ValueError: no teacher given, an unreadable or foreign file, or a teacher that does not fit.
    """
    t = model.target
    if not t.teacher:
        raise ValueError("model.target.kind=features needs a teacher: add --set model.target.teacher=PATH (a maest "
                         "checkpoint: a pre-trained MAE, a classifier, or converted VideoMAE / MAE-ST / HF weights)")
    try:
        src = describe(t.teacher, ckpt.load_checkpoint(t.teacher, mmap=True))
    except (ckpt.CheckpointError, ValueError) as e:
        raise ValueError(f"model.target.teacher={t.teacher}: {ckpt.first_line(e)}") from None
    te, what = src.model_config.encoder, f"the teacher {t.teacher}"
    teacher_layout(te, model.encoder, what)
    block_index(t.teacher_layer, te.depth, what)
    if t.teacher_dim and t.teacher_dim != te.embed_dim:
        raise ValueError(f"model.target.teacher_dim={t.teacher_dim} but {what} is {te.embed_dim} wide; set "
                         f"model.target.teacher_dim={te.embed_dim}, or 0 to read it from the teacher")
    t.teacher_dim = te.embed_dim
    return src


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _recorded_sha256(cfg: Any) -> tuple[str, str]:
    """(where, sha256) the run recorded for its teacher: the checkpoint ``train.resume`` resumes from, else
    the config's own ``model.target.teacher_sha256``."""
    resume_from = ckpt.resolve_resume(cfg.train.resume, Path(cfg.train.output_dir))
    if resume_from is not None:
        run = ckpt.load_checkpoint(resume_from, mmap=True).get("config") or {}
        recorded = ((run.get("model") or {}).get("target") or {}).get("teacher_sha256", "")
        if recorded:
            return f"the checkpoint {resume_from}", recorded
    return "model.target.teacher_sha256", cfg.model.target.teacher_sha256


def build_teacher(cfg: Any, device: str | torch.device) -> Teacher | None:
    """The frozen teacher of a pre-training job config (None unless ``model.target.kind=features``), on
    ``device``; records the teacher file's sha256 in ``cfg.model.target``.

    Raises:
        ValueError: as :func:`read_teacher`; or the teacher file is not the one the run (or the checkpoint
            it resumes from) recorded.
    """
    t = cfg.model.target
    if t.kind != "features":
        return None
    src = read_teacher(cfg.model)
    digest = file_sha256(src.path)
    where, recorded = _recorded_sha256(cfg)
    if recorded and recorded != digest:
        raise ValueError(f"model.target.teacher={t.teacher} has sha256 {digest[:16]}..., not the {recorded[:16]}... "
                         f"that {where} recorded: the teacher changed under this run; restore that file, or start a "
                         "new run (with model.target.teacher_sha256 empty)")
    t.teacher_sha256 = digest
    return Teacher(src.build(), cfg.model.encoder, t.teacher_layer, t.feature_norm, f"the teacher {t.teacher}"
                   ).to(device)
