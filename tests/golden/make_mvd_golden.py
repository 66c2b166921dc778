"""Regenerate ``mvd_targets.pt``: MVD's own teacher targets and distillation losses (ruiwang2021/mvd,
Wang et al., CVPR 2023) on CPU for a tiny image teacher and a tiny video teacher, the reference for
``tests/targets/test_mvd_golden.py``.

The official code is not part of maest and is not copied here: pass the repository's git directory (or
work tree), and this script imports its ``engine_for_pretraining.py``, ``modeling_teacher.py``,
``modeling_video_teacher.py``, ``modeling_finetune.py`` and ``utils.py`` as they are and runs one step
of ``train_one_epoch`` on one batch. timm 0.4.12 (MVD's pinned version) and einops come from the
registry; stubbed, since none of them touches the numbers: ``torchvision`` (imported, never used on
this path), ``torch._six`` (gone from torch 2: ``inf``), ``tensorboardX``, ``np.float`` (the builtin
``float`` it always was), ``nn.Module.cuda`` / ``torch.cuda.synchronize`` (no-ops on CPU: the engine
moves its parameter-free LayerNorms to the GPU), the student (it returns fixed predictions) and the
loss scaler / optimizer (they record the loss; no update happens). ``torch.cuda.amp.autocast`` is off
without CUDA, so the step runs in fp32.

    pip install --target /tmp/golden_deps --no-deps timm==0.4.12 einops
    PYTHONPATH=/tmp/golden_deps python tests/golden/make_mvd_golden.py --mvd /path/to/mvd \
        [--out tests/golden/mvd_targets.pt]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import numpy as np
import torch
from official_files import import_file  # tests/golden, this script's folder, is on sys.path
from torch import nn

# the student's clip: 16 frames (the VideoMAE teacher's patch embedding is fixed at 16), 32 px, 8 px
# patches, tubelet 2 -> 8 x 4 x 4 = 128 tokens
B, C, T, IMG, PATCH, TUBELET = 2, 3, 16, 32, 8, 2
IMAGE_TEACHER = dict(dim=24, depth=2, heads=2)  # MAE image ViT (class token, 2-D sin-cos positions, qkv bias)
VIDEO_TEACHER = dict(dim=16, depth=2, heads=2)  # VideoMAE encoder (q/v biases, 1-D sin-cos, no class token)
MASK_RATIO = 0.75
CASES = {  # name -> (norm_feature, image-teacher loss, video-teacher loss)
    "layernorm_smoothl1": (True, "SmoothL1", "SmoothL1"),
    "none_smoothl1": (False, "SmoothL1", "SmoothL1"),  # the released scripts: no --norm_feature
    "layernorm_l2": (True, "L2", "L2"),
}


def _source(repo: Path, files: list[str], dst: Path) -> str:
    git = ["git", f"--git-dir={repo / '.git' if (repo / '.git').exists() else repo}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    for rel in files:
        text = subprocess.run([*git, "show", f"HEAD:{rel}"], capture_output=True, text=True, check=True).stdout
        (dst / rel).write_text(text)
    return commit


def _stubs() -> None:
    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    fn = types.ModuleType("torchvision.transforms.functional")
    tv.transforms, tr.functional = tr, fn
    six = types.ModuleType("torch._six")
    six.inf, six.int_classes = math.inf, int
    tbx = types.ModuleType("tensorboardX")
    tbx.SummaryWriter = object
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.transforms.functional": fn,
                        "torch._six": six, "tensorboardX": tbx})
    np.float = float  # removed in numpy 1.24; modeling_teacher's sin-cos table still names it
    nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.synchronize = lambda *a, **k: None


def _randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Every parameter perturbed (positions and class token included), rounded to fp16 (stored that way)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                v = p + torch.randn(p.shape, generator=gen) * p[0].numel() ** -0.5
            elif "norm" in name and name.endswith("weight"):
                v = 1 + 0.3 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.3 * torch.randn(p.shape, generator=gen)
            p.copy_(v.half().float())


def _split_qkv(out: dict, prefix: str, weight: torch.Tensor, bias: list[torch.Tensor | None]) -> None:
    for name, w, b in zip("qkv", weight.chunk(3), bias, strict=True):
        out[f"{prefix}.{name}.weight"] = w.clone()  # a view would save the whole fused tensor
        if b is not None:
            out[f"{prefix}.{name}.bias"] = b.clone()


def image_teacher_in_maest_names(sd: dict) -> dict:
    """MVD's ``MaskedAutoencoderViT`` (image MAE) -> maest's encoder with one frame, 1-frame tubes, a joint
    position table with the class slot first, and separate q/k/v."""
    out = {}
    for k, v in sd.items():
        if k.endswith("attn.qkv.weight"):
            _split_qkv(out, k.removesuffix(".qkv.weight"), v, list(sd[k.replace("weight", "bias")].chunk(3)))
        elif k.endswith("attn.qkv.bias"):
            continue
        elif k == "patch_embed.proj.weight":
            out[k] = v.unsqueeze(2)  # (D, C, p, p) -> (D, C, 1, p, p)
        else:
            out[k] = v
    return out


def video_teacher_in_maest_names(sd: dict) -> dict:
    """MVD's VideoMAE teacher encoder -> maest's (``q_bias`` / ``v_bias`` become q and v biases)."""
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("encoder.")
        if k.endswith("attn.qkv.weight"):
            p = k.removesuffix(".qkv.weight")
            _split_qkv(out, p, v, [sd[f"encoder.{p}.q_bias"], None, sd[f"encoder.{p}.v_bias"]])
        elif not k.endswith(("q_bias", "v_bias")):
            out[k] = v
    return out


def _tube_mask(gen: torch.Generator) -> torch.Tensor:
    """(B, L) bool, True = masked: the same spatial positions in every time slot, as MVD's tube masking."""
    t, hw = T // TUBELET, (IMG // PATCH) ** 2
    rows = []
    for _ in range(B):
        m = torch.zeros(hw, dtype=torch.bool)
        m[torch.randperm(hw, generator=gen)[: int(hw * MASK_RATIO)]] = True
        rows.append(m.repeat(t))
    return torch.stack(rows)


class _Student(nn.Module):
    """Stands in for MVD's student: returns the given predictions of the masked tokens' features."""

    def __init__(self, img: torch.Tensor, vid: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.img, self.vid = img, vid

    def forward(self, videos, mask):
        return self.img, self.vid


class _Recorder:
    """Wraps a loss class: records input, target and value of each call."""

    def __init__(self, cls, log: list) -> None:
        self.cls, self.log = cls, log

    def __call__(self):
        inner, log = self.cls(), self.log

        def call(input, target):
            value = inner(input=input, target=target)
            log.append({"input": input.detach().clone(), "target": target.detach().clone(), "loss": value.detach()})
            return value
        return call


class _Scaler:
    def __init__(self) -> None:
        self.losses = []

    def __call__(self, loss, optimizer, **kw):
        self.losses.append(loss.detach().clone())
        return 0.0

    def state_dict(self):
        return {"scale": 1.0}


class _Optimizer:
    param_groups = [{"lr": 0.0, "weight_decay": 0.0, "lr_scale": 1.0}]

    def zero_grad(self):
        pass


def run_case(engine, teachers: tuple, batch: tuple, preds: tuple, norm: bool, losses: tuple) -> dict:
    image_teacher, video_teacher = teachers
    log: list = []
    engine.Loss_func_choice = {k: _Recorder(v, log) for k, v in engine.Loss_func_choice.items()}
    raw = {}
    hooks = [image_teacher.register_forward_hook(lambda m, i, o: raw.__setitem__("image", o.detach().clone())),
             video_teacher.register_forward_hook(lambda m, i, o: raw.__setitem__("video", o.detach().clone()))]
    args = argparse.Namespace(
        distillation_target_dim=IMAGE_TEACHER["dim"], video_distillation_target_dim=VIDEO_TEACHER["dim"],
        distill_loss_func=losses[0], video_distill_loss_func=losses[1], image_teacher_loss_weight=1.0,
        video_teacher_loss_weight=1.0, tubelet_size=TUBELET, video_teacher_input_size=IMG, input_size=IMG)
    scaler = _Scaler()
    try:
        engine.train_one_epoch(
            args, _Student(*preds), [batch], _Optimizer(), torch.device("cpu"), 0, scaler, max_norm=None,
            start_steps=0, update_freq=1, time_stride_loss=True, image_teacher_model=image_teacher,
            video_teacher_model=video_teacher, norm_feature=norm)
    finally:
        for h in hooks:
            h.remove()
        engine.Loss_func_choice = {k: v.cls for k, v in engine.Loss_func_choice.items()}
    (img, vid) = log
    return {"norm_feature": norm, "loss_funcs": list(losses), "image_raw": raw["image"], "video_raw": raw["video"],
            "image_target": img["target"], "video_target": vid["target"], "image_loss": img["loss"],
            "video_loss": vid["loss"], "loss": scaler.losses[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mvd", type=Path, required=True, help="ruiwang2021/mvd git directory or work tree")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("mvd_targets.pt"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    _stubs()
    with tempfile.TemporaryDirectory() as tmp:
        commit = _source(args.mvd, ["engine_for_pretraining.py", "modeling_teacher.py", "modeling_video_teacher.py",
                                    "modeling_finetune.py", "utils.py"], Path(tmp))
        sys.path.insert(0, tmp)
        teach = import_file("modeling_teacher", Path(tmp, "modeling_teacher.py"))
        vteach = import_file("modeling_video_teacher", Path(tmp, "modeling_video_teacher.py"))
        engine = import_file("engine_for_pretraining", Path(tmp, "engine_for_pretraining.py"))
    gen = torch.Generator().manual_seed(23)
    torch.manual_seed(23)
    norm = partial(nn.LayerNorm, eps=1e-6)
    i, v = IMAGE_TEACHER, VIDEO_TEACHER
    image_teacher = teach.MaskedAutoencoderViT(img_size=IMG, patch_size=PATCH, in_chans=C, embed_dim=i["dim"],
                                               depth=i["depth"], num_heads=i["heads"], mlp_ratio=4, norm_layer=norm)
    video_teacher = vteach.PretrainVideoTransformerTeacher(
        img_size=IMG, patch_size=PATCH, encoder_embed_dim=v["dim"], encoder_depth=v["depth"],
        encoder_num_heads=v["heads"], encoder_num_classes=0, mlp_ratio=4, qkv_bias=True, norm_layer=norm,
        init_values=0.0, tubelet_size=TUBELET)
    for m in (image_teacher, video_teacher):
        _randomise(m, gen)
    videos = torch.randn(B, C, T, IMG, IMG, generator=gen).half().float()
    mask = _tube_mask(gen)
    n = int(mask[0].sum())
    preds = (torch.randn(B, n, i["dim"], generator=gen), torch.randn(B, n, v["dim"], generator=gen))
    batch = (videos, videos.clone(), mask)  # teacher_input_size == input_size: the same crop
    out = {
        "commit": commit,
        "geometry": dict(batch=B, channels=C, frames=T, img_size=IMG, patch_size=PATCH, tubelet=TUBELET,
                         mask_ratio=MASK_RATIO),
        "image_teacher": dict(IMAGE_TEACHER, state_dict=image_teacher_in_maest_names(image_teacher.state_dict())),
        "video_teacher": dict(VIDEO_TEACHER, state_dict=video_teacher_in_maest_names(video_teacher.state_dict())),
        "video": videos.half(), "mask": mask, "image_pred": preds[0], "video_pred": preds[1],
        "cases": {name: run_case(engine, (image_teacher, video_teacher), batch, preds, *spec[:1], spec[1:])
                  for name, spec in CASES.items()},
    }
    for key in ("image_raw", "video_raw"):  # the teachers' outputs before any norm: the same in every case
        raws = [c.pop(key) for c in out["cases"].values()]
        assert all(torch.equal(r, raws[0]) for r in raws)
        out[key] = raws[0]
    torch.save(out, args.out)
    torch.load(args.out, weights_only=True)
    for name, c in out["cases"].items():
        print(f"{name}: image {c['image_loss']:.6f}, video {c['video_loss']:.6f}, total {c['loss']:.6f}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) from mvd @{commit[:7]}")


if __name__ == "__main__":
    main()
