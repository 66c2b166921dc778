"""Named recipes as functions returning a job config (pre-training, fine-tuning, probing): a derived
recipe is a few lines over another."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from maest.convert.hf_videomae import HF_NORM_EPS
from maest.models import model_config
from maest.models.factory import apply_flat_overrides
from maest.models.masking import MaskConfig
from maest.targets import TargetConfig
from maest.train.config import FinetuneConfig, PretrainConfig, classifier_from_data
from maest.train.mixup import MixupConfig

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

    def about(self, name: str) -> str:
        """What the recipe ``name`` is for: the first sentence of its docstring."""
        doc = " ".join((self._fns[name].__doc__ or "").split())
        return doc.split(". ")[0].rstrip(".")


# recipes of tiny models that learn nothing: they check that a setup runs (tests, CI), no more
SMOKE_TESTS = ("tiny", "tiny_finetune", "tiny_linprobe")

pretrain_preset: PresetRegistry[PretrainConfig] = PresetRegistry("preset")
get_preset = pretrain_preset.get
list_presets = pretrain_preset.names


@pretrain_preset
def vit_l_k400_pretrain() -> PretrainConfig:
    """The released ViT-L recipe (PRETRAIN.md): 90% masking, 16x4, repeat 4, blr 1.6e-3, clip 0.02."""
    cfg = PretrainConfig(model=model_config("mae_vit_large_patch16"))
    cfg.train.epochs, cfg.optim.warmup_epochs = 100, 5.0
    return cfg


@pretrain_preset
def vit_b_k400_pretrain() -> PretrainConfig:
    """The released recipe on ViT-B."""
    cfg = vit_l_k400_pretrain()
    cfg.model = model_config("mae_vit_base_patch16")
    return cfg


@pretrain_preset
def vit_h_k400_pretrain() -> PretrainConfig:
    """The released recipe on ViT-H."""
    cfg = vit_l_k400_pretrain()
    cfg.model = model_config("mae_vit_huge_patch16")
    return cfg


@pretrain_preset
def tiny() -> PretrainConfig:
    """Smoke test: a tiny model on 32 px, 4-frame clips that learns nothing; it checks that a setup runs."""
    cfg = PretrainConfig(model=model_config("mae_vit_tiny_test"))
    cfg.data.sampling_rate, cfg.data.repeat_aug, cfg.data.num_workers = 2, 2, 0
    cfg.optim.warmup_epochs, cfg.optim.blr = 1.0, 1.5e-4
    cfg.train.epochs, cfg.train.batch_size, cfg.train.log_every = 2, 2, 1
    cfg.train.precision = "fp32"
    return cfg


@pretrain_preset
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


@pretrain_preset
def vit_s_112_pretrain() -> PretrainConfig:
    """Real data on a laptop CPU or one small GPU: MAE-ST on ViT-S (384 wide, 12 deep, 21.9M encoder
    parameters) at 112 px and 8 frames with stride 4 (4 x 7 x 7 = 196 tokens, 20 of them seen at 90% masking),
    a 512 x 4 decoder, normalised-pixel targets; 8 videos per step x 2 repeated clips, lr 3e-4 (blr 9.6e-3 per 256
    videos), 10 warm-up epochs of 100, clipping at 1. Fine-tune with ``vit_s_112_finetune``."""
    cfg = vit_l_k400_pretrain()
    cfg.model = model_config("mae_vit_small_patch16")
    cfg.model.encoder.img_size, cfg.model.encoder.num_frames = 112, 8
    cfg.data.repeat_aug = 2
    cfg.optim.blr, cfg.optim.warmup_epochs, cfg.optim.clip_grad = 9.6e-3, 10.0, 1.0
    cfg.train.epochs, cfg.train.batch_size, cfg.train.output_dir = 100, 8, "runs/vit_s_112_pretrain"
    return cfg


@pretrain_preset
def videomae_v2_b_pretrain() -> PretrainConfig:
    """VideoMAE V2's ViT-B pre-training (Wang et al., CVPR 2023; scripts/pretrain/vit_b_hybrid_pt.sh):
    VideoMAE's ViT-B (fixed sin-cos positions, no class token, q/v biases, ImageNet normalisation, a
    384 x 4 decoder predicting both frames of each tube), tube masking 0.9 on the encoder, running-cell
    masking 0.5 on the decoder, per-channel normalised pixel targets; 16x4 clips, repeated sampling 4,
    AdamW (0.9, 0.95), weight decay 0.05, lr 1e-3 per 256 videos, 20 warm-up epochs of 200, no clipping.

    One deliberate difference: every LayerNorm has eps 1e-5 (VideoMAE: 1e-6), the value Hugging Face's
    VideoMAE fixes for its decoder norm and ``fc_norm``, so the run and the classifiers fine-tuned from it
    (which inherit the encoder's eps) export exactly with ``maest convert --to hf``."""
    cfg = PretrainConfig(model=apply_flat_overrides(model_config("videomae_vit_base_patch16"), norm_eps=HF_NORM_EPS))
    cfg.model.mask = MaskConfig(ratio=0.9, strategy="tube", decoder="running_cell", decoder_ratio=0.5)
    cfg.model.target = TargetConfig(kind="videomae_norm_pix")
    cfg.optim.blr, cfg.optim.warmup_epochs, cfg.optim.clip_grad = 1e-3, 20.0, None
    cfg.train.epochs = 200
    return cfg


@pretrain_preset
def maskfeat_hog() -> PretrainConfig:
    """MaskFeat's HOG target (Wei et al., CVPR 2022; SlowFast ``MASK.PRED_HOG``: 9 orientation bins per
    colour channel over 8x8-pixel cells, L2-normalised per cell, first frame of each tube) on the MAE-ST
    ViT-B and recipe (random masking 0.9, the 512 x 4 decoder, 108 outputs per token instead of 512
    pixels). MaskFeat itself keeps mask tokens in the encoder; this is its target in MAE-ST's model."""
    cfg = vit_b_k400_pretrain()
    cfg.model.target = TargetConfig(kind="hog")
    return cfg


@pretrain_preset
def mvd_b_distill_pretrain() -> PretrainConfig:
    """Masked distillation as MVD (Wang et al., CVPR 2023; pretrain_mvd_base_on_k400.sh), from one teacher
    given with ``--set model.target.teacher=PATH`` (any maest checkpoint whose frames, tubes, size and patch
    match, or an image model of 1 frame): VideoMAE's ViT-B student, a 768 x 2 decoder (MVD's: the encoder's
    width and heads) predicting the teacher's last-block features, no feature norm, smooth L1 over the
    removed tokens, tube masking 0.9, 16x4 clips, no repeated sampling, lr 1.5e-4 per 256 videos, 40
    warm-up epochs of 400, no clipping. MVD's second teacher (image and video at once) is not carried; its
    min lr (2/3 of the peak) is left at 0."""
    cfg = PretrainConfig(model=model_config("videomae_vit_base_patch16"))
    d = cfg.model.decoder
    d.embed_dim, d.depth, d.num_heads, d.embed_bias, d.t_pred_patch_size = 768, 2, 12, True, 1
    cfg.model.mask = MaskConfig(ratio=0.9, strategy="tube")
    cfg.model.target = TargetConfig(kind="features", feature_norm="none", loss="smooth_l1")
    cfg.data.repeat_aug = 1
    cfg.optim.blr, cfg.optim.warmup_epochs, cfg.optim.clip_grad = 1.5e-4, 40.0, None
    cfg.train.epochs, cfg.train.output_dir = 400, "runs/mvd_b_distill_pretrain"
    return cfg


finetune_preset: PresetRegistry[FinetuneConfig] = PresetRegistry("fine-tuning preset")
get_finetune_preset = finetune_preset.get
list_finetune_presets = finetune_preset.names


@finetune_preset
def vit_l_k400_finetune() -> FinetuneConfig:
    """The released ViT-L fine-tuning recipe (FINETUNE.md): 50 epochs, blr 2.4e-3, warmup 5, layer decay
    0.75, drop path 0.2, dropout 0.3, clip 5, smoothing 0.1, mixup 0.8, cutmix 1.0, RandAugment, repeated
    sampling 2, 16x4 clips; as many classes as the training data has."""
    return FinetuneConfig()


def _k400_finetune(model: str, drop_path: float) -> FinetuneConfig:
    """FINETUNE.md's recipe on another size, with that size's drop path."""
    cfg = vit_l_k400_finetune()
    cfg.model = classifier_from_data(model)
    cfg.model.drop_path = drop_path
    return cfg


@finetune_preset
def vit_b_k400_finetune() -> FinetuneConfig:
    """FINETUNE.md's recipe on ViT-B (drop path 0.1)."""
    return _k400_finetune("vit_base_patch16", 0.1)


@finetune_preset
def vit_h_k400_finetune() -> FinetuneConfig:
    """FINETUNE.md's recipe on ViT-H (drop path 0.3)."""
    return _k400_finetune("vit_huge_patch16", 0.3)


@finetune_preset
def vit_s_112_finetune() -> FinetuneConfig:
    """Fine-tunes ``vit_s_112_pretrain`` weights on a laptop CPU or one small GPU: ViT-S at 112 px and 8
    frames, 30 epochs, lr 1.5e-4 (blr 2.4e-3 per 256 clips, 8 videos x 2 clips per step), layer decay 0.75,
    drop path 0.1, dropout 0.3, mixup / cutmix with smoothing 0.1, RandAugment; tested on 4 clips x 3 crops."""
    cfg = _k400_finetune("vit_small_patch16", 0.1)
    cfg.model.encoder.img_size, cfg.model.encoder.num_frames = 112, 8
    cfg.optim.warmup_epochs, cfg.train.epochs, cfg.train.batch_size = 3.0, 30, 8
    cfg.data.test_clips, cfg.data.test_crops = 4, 3
    cfg.train.output_dir = "runs/vit_s_112_finetune"
    return cfg


@finetune_preset
def vit_b_k400_linprobe() -> FinetuneConfig:
    """MAE's linear probe (BatchNorm without affine + linear head on frozen, pooled features), with
    AdamW in place of LARS: no mixup, smoothing, augmentation beyond crops, or weight decay."""
    cfg = vit_b_k400_finetune()
    cfg.model.probe, cfg.model.drop_path, cfg.model.dropout = "linear", 0.0, 0.0
    cfg.data.rand_aug, cfg.data.erase_prob, cfg.data.repeat_aug = False, 0.0, 1
    cfg.mix = MixupConfig(mixup=0.0, cutmix=0.0, prob=0.0, smoothing=0.0)
    cfg.optim.blr, cfg.optim.weight_decay, cfg.optim.layer_decay, cfg.optim.clip_grad = 1e-3, 0.0, 1.0, None
    cfg.optim.warmup_epochs, cfg.train.epochs, cfg.train.output_dir = 10.0, 90, "runs/linprobe"
    return cfg


@finetune_preset
def tiny_finetune() -> FinetuneConfig:
    """Smoke test: fine-tunes ``mae_vit_tiny_test`` weights on 32 px, 4-frame clips; it learns nothing."""
    cfg = FinetuneConfig(model=classifier_from_data("vit_tiny_test"))
    cfg.data.sampling_rate, cfg.data.num_workers = 2, 0
    cfg.data.test_clips, cfg.data.test_crops = 2, 3
    cfg.optim.warmup_epochs, cfg.optim.blr = 1.0, 1e-3
    cfg.train.epochs, cfg.train.batch_size, cfg.train.log_every, cfg.train.precision = 2, 2, 1, "fp32"
    cfg.train.output_dir = "runs/finetune"
    return cfg


@finetune_preset
def tiny_linprobe() -> FinetuneConfig:
    """Smoke test: a linear probe on ``mae_vit_tiny_test`` weights; it learns nothing."""
    cfg = tiny_finetune()
    cfg.model.probe, cfg.model.drop_path, cfg.model.dropout = "linear", 0.0, 0.0
    cfg.mix = MixupConfig(mixup=0.0, cutmix=0.0, prob=0.0, smoothing=0.0)
    cfg.optim.weight_decay, cfg.optim.layer_decay, cfg.train.output_dir = 0.0, 1.0, "runs/linprobe"
    return cfg


@finetune_preset
def demo_finetune() -> FinetuneConfig:
    """Fine-tunes the ``demo`` pre-training preset's model (64 px, 8 frames, 96 wide, 4 deep) on the
    moving-digits set; 10 classes = 5 digits x 2 directions."""
    cfg = FinetuneConfig(model=classifier_from_data("vit_tiny_test"))
    cfg.model.encoder = demo().model.encoder  # the demo pre-training's geometry, declared there once
    cfg.model.drop_path, cfg.model.dropout = 0.1, 0.0
    cfg.data.sampling_rate, cfg.data.repeat_aug, cfg.data.num_workers = 2, 2, 1
    # a horizontal flip turns "left" into "right": it would corrupt the direction labels
    cfg.data.flip, cfg.data.min_scale, cfg.data.rand_aug, cfg.data.erase_prob = False, 0.5, False, 0.0
    cfg.data.test_clips, cfg.data.test_crops = 2, 3
    cfg.optim.blr, cfg.optim.warmup_epochs, cfg.optim.clip_grad = 3e-2, 1.0, 5.0  # lr 9.4e-4 at batch 8
    cfg.mix = MixupConfig(mixup=0.8, cutmix=0.0, prob=0.5, smoothing=0.1)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.log_every = 8, 8, 5
    cfg.train.output_dir = "maest_demo/finetune"
    return cfg
