"""Regenerate the golden tensors of tests/models/test_dual_masking.py and tests/targets/test_hog.py
from the official code.

Runs OpenGVLab/VideoMAEv2 (@29eab1e) and facebookresearch/SlowFast (@287ec00) on CPU, fp32, and writes
``videomae_v2_tiny.pt`` and ``slowfast_hog.pt`` beside this script. Nothing of their code is copied here:
the official modules are imported from checkouts given on the command line. Only imports that do not touch
the numbers are stubbed (timm helpers, tensorboardX, ``torch.cuda.synchronize``, and the SlowFast modules
``masked.py`` imports but the HOG label path never calls).

    python tests/golden/make_v2_hog_golden.py --videomae-v2 /path/to/VideoMAEv2 --slowfast /path/to/SlowFast

(needs ``einops`` importable, which VideoMAEv2's training engine uses). See tests/golden/README.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
V2_COMMIT = "29eab1e8a588d1b3ec0cdec7b03a86cca491b74b"
SLOWFAST_COMMIT = "287ec0076846560f44a9327e931a5a2360240533"


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def _stub_timm() -> None:
    """timm helpers VideoMAEv2 imports: drop_path (identity at rate 0, never called here), to_2tuple,
    trunc_normal_ (initialisation only: every parameter is overwritten below), the model registry and
    ImageNet constants (the values timm defines)."""

    def to_2tuple(x):
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return nn.init.trunc_normal_(t, mean=mean, std=std, a=a, b=b)

    def drop_path(x, drop_prob=0.0, training=False):
        if drop_prob:
            raise RuntimeError("drop_path is stubbed for rate 0 only")
        return x

    _module("timm")
    _module("timm.models")
    _module("timm.models.layers", drop_path=drop_path, to_2tuple=to_2tuple, trunc_normal_=trunc_normal_)
    _module("timm.models.registry", register_model=lambda fn: fn)
    _module("timm.utils", get_state_dict=lambda model, *a, **k: model.state_dict())
    _module("timm.data")
    _module("timm.data.constants", IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406),
            IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225))
    _module("tensorboardX", SummaryWriter=object)


def _perturb(model: nn.Module, seed: int) -> None:
    """Nudge every parameter so zero-initialised tensors (biases, LayerNorm shifts) cannot hide a
    mismatch."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


def videomae_v2(root: Path) -> dict:
    """Running-cell and tube generators, and one pre-training step's forward and loss of a tiny V2."""
    sys.path.insert(0, str(root))
    _stub_timm()
    torch.cuda.synchronize = lambda *a, **k: None  # CPU run: the engine syncs after each step
    # the generators without the dataset package's __init__ (video decoding, pandas)
    _module("dataset", __path__=[str(root / "dataset")])
    from dataset.masking_generator import RunningCellMaskingGenerator, TubeMaskingGenerator
    from engine_for_pretraining import train_one_epoch
    from models.modeling_pretrain import PretrainVisionTransformer

    out: dict = {"commit": V2_COMMIT}
    # every pointer position's mask map, as the generator precomputes them (its __call__ picks one)
    cells = {}
    for size, ratio in [((2, 4, 4), 0.5), ((4, 4, 6), 0.25), ((3, 2, 2), 0.75), ((8, 14, 14), 0.5)]:
        gen = RunningCellMaskingGenerator(size, ratio)
        cells[f"{size[0]}x{size[1]}x{size[2]}_{ratio}"] = torch.from_numpy(gen.all_mask_maps.astype(np.uint8))
    out["running_cell"] = cells
    tubes = {}
    for size, ratio in [((8, 14, 14), 0.9), ((8, 7, 7), 0.9), ((2, 4, 4), 0.75), ((8, 14, 14), 0.75)]:
        np.random.seed(0)
        tubes[f"{size[0]}x{size[1]}x{size[2]}_{ratio}"] = torch.from_numpy(TubeMaskingGenerator(size, ratio)()
                                                                           .astype(np.uint8))
    out["tube"] = tubes

    # tiny pre-training model: 32 px, patch 8, 4 frames, tubelet 2 -> 2x4x4 = 32 tokens
    cfg = dict(img_size=32, patch_size=8, encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
               decoder_num_classes=2 * 8 * 8 * 3, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2,
               mlp_ratio=4.0, qkv_bias=True, norm_layer=lambda d: nn.LayerNorm(d, eps=1e-6), init_values=0.0,
               tubelet_size=2, all_frames=4)
    torch.manual_seed(0)
    model = PretrainVisionTransformer(**cfg)
    _perturb(model, 1)
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(2)
    video = torch.randn(2, 3, 4, 32, 32, generator=g)
    np.random.seed(3)
    tube = TubeMaskingGenerator((2, 4, 4), 0.75)
    cell = RunningCellMaskingGenerator((2, 4, 4), 0.5)
    enc_mask = torch.from_numpy(np.stack([tube(), tube()])).bool()
    dec_mask = torch.from_numpy(np.stack([cell(), cell()])).reshape(2, -1).bool()  # 1 = not decoded
    cases = {}
    for name, decode in [("running_cell", dec_mask), ("none", ~enc_mask)]:
        model.load_state_dict(state)
        captured: list[torch.Tensor] = []
        hook = model.register_forward_hook(lambda m, a, o, into=captured: into.append(o.detach().clone()))
        # one step of the official engine on a one-batch loader; lr 0 leaves the weights as they are
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        stats = train_one_epoch(model, [(video, enc_mask, decode)], opt, torch.device("cpu"), 0, None,
                                max_norm=None, patch_size=8, normlize_target=True, start_steps=0)
        hook.remove()
        cases[name] = {"decoder_mask": decode.to(torch.uint8), "pred": captured[0],
                       "loss": torch.tensor(stats["loss"], dtype=torch.float32)}
    model.load_state_dict(state)
    out["forward"] = {"config": {k: v for k, v in cfg.items() if k != "norm_layer"} | {"norm_eps": 1e-6},
                      "state_dict": state, "input": video, "encoder_mask": enc_mask.to(torch.uint8),
                      "cases": cases}
    sys.path.remove(str(root))
    return out


def slowfast_hog(root: Path) -> dict:
    """MaskFeat's HOG target (SlowFast ``MASK.PRED_HOG``): the HOG layer, and the per-token labels of
    ``MaskMViT._get_hog_label_3d`` for a ViT-style 2x16x16 patching."""
    sys.path.insert(0, str(root))
    # import ``slowfast.models.masked`` without its package __init__ (which builds every model family)
    pkg = _module("slowfast", __path__=[str(root / "slowfast")])
    _module("slowfast.models", __path__=[str(root / "slowfast" / "models")])
    utils = _module("slowfast.utils", __path__=[])
    utils.logging = _module("slowfast.utils.logging", get_logger=lambda name: None)
    utils.misc = _module("slowfast.utils.misc")
    pkg.utils = utils
    _module("pytorchvideo")
    _module("pytorchvideo.layers")
    _module("pytorchvideo.layers.swish", Swish=nn.Identity)
    _module("slowfast.models.utils", get_gkern=None, calc_mvit_feature_geometry=None)
    _module("slowfast.models.video_model_builder", MViT=nn.Module)
    for name in ("head_helper", "resnet_helper", "stem_helper"):
        _module(f"slowfast.models.{name}")

    class _Registry:
        def register(self):
            return lambda cls: cls

    _module("slowfast.models.build", MODEL_REGISTRY=_Registry())
    from slowfast.models import operators
    from slowfast.models.masked import MaskMViT

    g = torch.Generator().manual_seed(4)
    frames = torch.randn(2, 3, 4, 48, 48, generator=g)  # (B, C, T, H, W), normalised input
    image = torch.randn(2, 3, 24, 40, generator=g)
    layer = operators.HOGLayerC(nbins=9, pool=8)  # what MaskMViT builds for MASK.PRED_HOG
    hog2d = layer(image)  # (B, 3, 9, H/8, W/8)
    # a ViT with 2x16x16 patches: feature grid t=2, h=w=3 (the label code assumes square grids)
    feat = [2, 3, 3]
    fake = SimpleNamespace(cfg=SimpleNamespace(MVIT=SimpleNamespace(PATCH_STRIDE=[2, 16, 16])), pretrain_depth=[0],
                           feat_size={0: feat}, hogs=[layer], pred_hog_wt=1.0, hog_loss="mse")
    mask = torch.ones(2, math.prod(feat), dtype=torch.bool)
    (label, _, _), = MaskMViT._get_hog_label_3d(fake, frames, [mask])
    sys.path.remove(str(root))
    return {"commit": SLOWFAST_COMMIT, "input": frames, "image": image, "hog_image": hog2d, "nbins": 9, "cell": 8,
            "patch_size": 16, "t_patch_size": 2, "labels": label.reshape(2, math.prod(feat), -1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videomae-v2", type=Path, required=True, help="checkout of OpenGVLab/VideoMAEv2")
    p.add_argument("--slowfast", type=Path, required=True, help="checkout of facebookresearch/SlowFast")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args()
    torch.set_num_threads(1)
    for name, data in [("videomae_v2_tiny.pt", videomae_v2(args.videomae_v2)),
                       ("slowfast_hog.pt", slowfast_hog(args.slowfast))]:
        path = args.out / name
        torch.save(data, path)
        torch.load(path, weights_only=True)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
