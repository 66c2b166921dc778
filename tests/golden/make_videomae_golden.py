"""Regenerate ``videomae_reference.pt``: outputs of the official VideoMAE / VideoMAE V2 model code on
tiny configurations with random weights, the reference for ``tests/convert/test_convert_matrix.py``.

The official code is not part of maest and is not copied here: pass the two repositories' git
directories (or work trees), and this script imports their ``modeling_*.py`` as they are, on CPU in
fp32. Only ``timm``'s small helpers are stubbed (``to_2tuple``, ``trunc_normal_``, ``register_model``
and ``drop_path``, which is never called at drop-path rate 0); none of them touches the numbers,
since every parameter is overwritten with random values afterwards.

    python tests/golden/make_videomae_golden.py --videomae /path/to/MCG-NJU/VideoMAE \
        --videomae-v2 /path/to/OpenGVLab/VideoMAEv2 [--out tests/golden/videomae_reference.pt]

Weights and inputs are stored in fp16 (and run in fp32, so the reference saw exactly those values);
outputs in fp32. Each case records its source commit.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import torch
from torch import nn

# tiny geometries: every case differs from the others in something the converter must get right
CASES = [
    # name, version, kind, geometry
    ("v1_pretrain_hd32", "v1", "pretrain", dict(img=16, patch=4, frames=16, tubelet=2, dim=64, depth=2, heads=2,
                                                ddim=32, ddepth=1, dheads=1, qkv_bias=True)),
    ("v1_pretrain_hd64", "v1", "pretrain", dict(img=16, patch=4, frames=16, tubelet=4, dim=64, depth=2, heads=1,
                                                ddim=64, ddepth=1, dheads=1, qkv_bias=True)),
    ("v2_pretrain_nobias", "v2", "pretrain", dict(img=16, patch=4, frames=8, tubelet=2, dim=64, depth=2, heads=2,
                                                  ddim=32, ddepth=1, dheads=1, qkv_bias=False)),
    ("v1_finetune_mean_hd32", "v1", "finetune", dict(img=16, patch=4, frames=8, tubelet=2, dim=64, depth=2,
                                                     heads=2, classes=5, mean_pool=True, qkv_bias=True)),
    ("v1_finetune_token0_hd64", "v1", "finetune", dict(img=16, patch=4, frames=8, tubelet=2, dim=64, depth=2,
                                                       heads=1, classes=5, mean_pool=False, qkv_bias=True)),
    ("v2_finetune_token0_hd32", "v2", "finetune", dict(img=16, patch=4, frames=16, tubelet=4, dim=64, depth=2,
                                                       heads=2, classes=3, mean_pool=False, qkv_bias=True)),
    ("v2_finetune_mean_hd64_nobias", "v2", "finetune", dict(img=16, patch=4, frames=8, tubelet=2, dim=64, depth=2,
                                                            heads=1, classes=3, mean_pool=True, qkv_bias=False)),
    # layer scale (init_values > 0: gamma_1/gamma_2) and learned positions (use_learnable_pos_emb)
    ("v2_finetune_layerscale_hd32", "v2", "finetune", dict(img=16, patch=4, frames=8, tubelet=2, dim=64, depth=2,
                                                           heads=2, classes=3, mean_pool=True, qkv_bias=True,
                                                           init_values=0.1)),
    ("v1_finetune_learnedpos_hd32", "v1", "finetune", dict(img=16, patch=4, frames=8, tubelet=2, dim=64, depth=2,
                                                           heads=2, classes=3, mean_pool=False, qkv_bias=True,
                                                           learned_pos=True)),
]
MLP_RATIO = 2.0  # the releases use 4 (ViT-g 48/11); 2 keeps the file small and is as good a test


def _stub_timm() -> None:
    def drop_path(*a, **k):
        raise NotImplementedError("drop_path is not used at rate 0")

    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return nn.init.trunc_normal_(t, mean, std, a, b)

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    layers.drop_path, layers.to_2tuple, layers.trunc_normal_ = drop_path, to_2tuple, trunc_normal_
    registry.register_model = lambda f: f
    timm.models, models.layers, models.registry = models, layers, registry
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry})


def _source(repo: Path, rel: str, dst: Path) -> str:
    """Copy ``rel`` out of ``repo`` (a git dir or work tree) into ``dst``; returns the commit."""
    git = ["git", f"--git-dir={repo / '.git' if (repo / '.git').exists() else repo}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    text = subprocess.run([*git, "show", f"HEAD:{rel}"], capture_output=True, text=True, check=True).stdout
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    return commit


def _import(name: str, path: Path, package: bool = False):
    kw = {"submodule_search_locations": [str(path.parent)]} if package else {}
    spec = importlib.util.spec_from_file_location(name, path, **kw)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_official(v1: Path, v2: Path, tmp: Path) -> dict:
    _stub_timm()
    out = {}
    c1 = _source(v1, "modeling_finetune.py", tmp / "v1" / "modeling_finetune.py")
    _source(v1, "modeling_pretrain.py", tmp / "v1" / "modeling_pretrain.py")
    sys.path.insert(0, str(tmp / "v1"))  # modeling_pretrain does `from modeling_finetune import ...`
    out["v1"] = (c1, _import("modeling_finetune", tmp / "v1" / "modeling_finetune.py"),
                 _import("modeling_pretrain", tmp / "v1" / "modeling_pretrain.py"))
    c2 = None
    for rel in ("models/__init__.py", "models/modeling_finetune.py", "models/modeling_pretrain.py"):
        c2 = _source(v2, rel, tmp / "v2" / rel)
    pkg = _import("videomaev2_models", tmp / "v2" / "models" / "__init__.py", package=True)
    out["v2"] = (c2, sys.modules["videomaev2_models.modeling_finetune"],
                 sys.modules["videomaev2_models.modeling_pretrain"])
    del pkg
    return out


def _randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Random weights, non-trivial norms and biases, rounded to fp16 (stored that way)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=gen) * fan_in**-0.5
            elif "norm" in name and name.endswith("weight"):
                v = 1 + 0.3 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.3 * torch.randn(p.shape, generator=gen)
            p.copy_(v.half().float())


def _tube_mask(B: int, t: int, hw: int, keep: int, gen: torch.Generator) -> torch.Tensor:
    """(B, t*hw) bool, True = masked; the same ``hw - keep`` spatial positions in every frame."""
    rows = []
    for _ in range(B):
        m = torch.ones(hw, dtype=torch.bool)
        m[torch.randperm(hw, generator=gen)[:keep]] = False
        rows.append(m.repeat(t))
    return torch.stack(rows)


def make_case(name: str, version: str, kind: str, g: dict, mods: dict, gen: torch.Generator) -> dict:
    commit, finetune, pretrain = mods[version]
    norm = partial(nn.LayerNorm, eps=1e-6)
    B = 2
    if kind == "pretrain":
        extra = {"all_frames": g["frames"]} if version == "v2" else {}
        if version == "v1":
            assert g["frames"] == 16, "VideoMAE v1's pre-training encoder always embeds 16 frames"
        model = pretrain.PretrainVisionTransformer(
            img_size=g["img"], patch_size=g["patch"], encoder_embed_dim=g["dim"], encoder_depth=g["depth"],
            encoder_num_heads=g["heads"], decoder_num_classes=3 * g["tubelet"] * g["patch"] ** 2,
            decoder_embed_dim=g["ddim"], decoder_depth=g["ddepth"], decoder_num_heads=g["dheads"],
            mlp_ratio=MLP_RATIO, qkv_bias=g["qkv_bias"], norm_layer=norm, tubelet_size=g["tubelet"], **extra)
    else:
        model = finetune.VisionTransformer(
            img_size=g["img"], patch_size=g["patch"], num_classes=g["classes"], embed_dim=g["dim"], depth=g["depth"],
            num_heads=g["heads"], mlp_ratio=MLP_RATIO, qkv_bias=g["qkv_bias"], norm_layer=norm,
            all_frames=g["frames"], tubelet_size=g["tubelet"], use_mean_pooling=g["mean_pool"], init_scale=1.0,
            init_values=g.get("init_values", 0.0), use_learnable_pos_emb=g.get("learned_pos", False))
    model.eval()
    _randomise(model, gen)
    video = torch.randn(B, 3, g["frames"], g["img"], g["img"], generator=gen).half().float()
    t, hw = g["frames"] // g["tubelet"], (g["img"] // g["patch"]) ** 2
    case = {"version": version, "kind": kind, "commit": commit, "geometry": dict(g, mlp_ratio=MLP_RATIO),
            "state_dict": {k: v.half() for k, v in model.state_dict().items()}, "video": video.half()}
    with torch.no_grad():
        if kind == "pretrain":
            mask = _tube_mask(B, t, hw, keep=hw // 4, gen=gen)
            case["mask"] = mask
            case["pred"] = model(video, mask)  # (B, masked, 3*u*p*p), masked tokens in ascending order
            case["features"] = model.encoder.forward_features(video, mask)  # (B, visible, D), normalised
        else:
            case["logits"] = model(video)
            case["features"] = model.forward_features(video)  # pooled and normalised (B, D)
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videomae", type=Path, required=True, help="MCG-NJU/VideoMAE git directory or work tree")
    ap.add_argument("--videomae-v2", type=Path, required=True, help="OpenGVLab/VideoMAEv2 git directory or work tree")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("videomae_reference.pt"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(12)
    with tempfile.TemporaryDirectory() as tmp:
        mods = load_official(args.videomae, args.videomae_v2, Path(tmp))
        cases = {name: make_case(name, v, k, g, mods, gen) for name, v, k, g in CASES}
    torch.save(cases, args.out)
    for name, c in cases.items():
        print(name, c["kind"], c["commit"][:8], sum(v.numel() for v in c["state_dict"].values()), "params")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
