"""Named recipes as functions returning a config: a derived recipe is a few lines over another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from maest.config import PretrainConfig
from maest.models import model_config
from maest.models.masking import MaskConfig
from maest.targets import TargetConfig

C = TypeVar("C")


class PresetRegistry(Generic[C]):
    """Recipes of one kind, registered by decorating a function named after the recipe."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._fns: dict[str, Callable[[], C]] = {}

    def __call__(self, fn: Callable[[], C]) -> Callable[[], C]:
        self._fns[fn.__name__] = fn
        return fn

    def get(self, name: str) -> C:
        if name not in self._fns:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        return self._fns[name]()

    def names(self) -> list[str]:
        return sorted(self._fns)


preset: PresetRegistry[PretrainConfig] = PresetRegistry("preset")
get_preset = preset.get
list_presets = preset.names


@preset
def vit_l_k400_pretrain() -> PretrainConfig:
    """The released ViT-L recipe (PRETRAIN.md): 90% masking, 16x4, repeat 4, blr 1.6e-3, clip 0.02."""
    cfg = PretrainConfig(model=model_config("mae_vit_large_patch16"))
    cfg.train.epochs, cfg.optim.warmup_epochs = 100, 5.0
    return cfg


@preset
def vit_b_k400_pretrain() -> PretrainConfig:
    cfg = vit_l_k400_pretrain()
    cfg.model = model_config("mae_vit_base_patch16")
    return cfg


@preset
def vit_h_k400_pretrain() -> PretrainConfig:
    cfg = vit_l_k400_pretrain()
    cfg.model = model_config("mae_vit_huge_patch16")
    return cfg


@preset
def tiny() -> PretrainConfig:
    """Tiny model on 32 px, 4-frame clips: for tests and smoke runs."""
    cfg = PretrainConfig(model=model_config("mae_vit_tiny_test"))
    cfg.data.sampling_rate, cfg.data.repeat_aug, cfg.data.num_workers = 2, 2, 0
    cfg.optim.warmup_epochs, cfg.optim.blr = 1.0, 1.5e-4
    cfg.train.epochs, cfg.train.batch_size, cfg.train.log_every = 2, 2, 1
    cfg.train.precision = "fp32"
    return cfg


@preset
def demo() -> PretrainConfig:
    """The embedded CPU demo: a small ViT on 64 px, 8-frame clips of moving digits."""
    cfg = PretrainConfig(model=model_config("mae_vit_tiny_test"))
    e, d = cfg.model.encoder, cfg.model.decoder
    e.img_size, e.patch_size, e.num_frames, e.embed_dim, e.depth, e.num_heads = 64, 8, 8, 96, 4, 3
    d.embed_dim, d.depth, d.num_heads = 64, 2, 4
    cfg.data.sampling_rate, cfg.data.repeat_aug, cfg.data.num_workers = 2, 4, 1
    cfg.optim.blr, cfg.optim.warmup_epochs, cfg.optim.clip_grad, cfg.optim.weight_decay = 4e-2, 3.0, 1.0, 0.05
    cfg.train.epochs, cfg.train.batch_size, cfg.train.log_every = 50, 8, 10
    cfg.train.output_dir = "maest_demo/run"
    return cfg


@preset
def videomae_v2_b_pretrain() -> PretrainConfig:
    """VideoMAE V2's ViT-B pre-training (Wang et al., CVPR 2023; scripts/pretrain/vit_b_hybrid_pt.sh):
    VideoMAE's ViT-B (fixed sin-cos positions, no class token, q/v biases, ImageNet normalisation, a
    384 x 4 decoder predicting both frames of each tube), tube masking 0.9 on the encoder, running-cell
    masking 0.5 on the decoder, per-channel normalised pixel targets; 16x4 clips, repeated sampling 4,
    AdamW (0.9, 0.95), weight decay 0.05, lr 1e-3 per 256 videos, 20 warm-up epochs of 200, no clipping."""
    cfg = PretrainConfig(model=model_config("videomae_vit_base_patch16"))
    cfg.model.mask = MaskConfig(strategy="tube", decoder="running_cell", decoder_ratio=0.5)
    cfg.model.target = TargetConfig(kind="videomae_norm_pix")
    cfg.train.mask_ratio = 0.9
    cfg.optim.blr, cfg.optim.warmup_epochs, cfg.optim.clip_grad = 1e-3, 20.0, None
    cfg.train.epochs = 200
    return cfg


@preset
def maskfeat_hog() -> PretrainConfig:
    """MaskFeat's HOG target (Wei et al., CVPR 2022; SlowFast ``MASK.PRED_HOG``: 9 orientation bins per
    colour channel over 8x8-pixel cells, L2-normalised per cell, first frame of each tube) on the MAE-ST
    ViT-B and recipe (random masking 0.9, the 512 x 4 decoder, 108 outputs per token instead of 512
    pixels). MaskFeat itself keeps mask tokens in the encoder; this is its target in MAE-ST's model."""
    cfg = vit_b_k400_pretrain()
    cfg.model.target = TargetConfig(kind="hog")
    return cfg
