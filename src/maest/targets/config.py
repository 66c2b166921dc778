"""``model.target.*``: what the decoder predicts. Kept free of model imports so model configs can use it."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_KINDS = ("norm_pix", "pixels", "videomae_norm_pix", "videomae_pixels", "hog", "features")
FEATURE_NORMS = ("none", "layernorm")  # MVD: none in its released scripts, "layernorm" with --norm_feature
LOSSES = ("auto", "mse", "smooth_l1")


@dataclass
class TargetConfig:
    """Attributes:
        kind: "norm_pix" (MAE-ST, default), "pixels" (the input as the model sees it),
            "videomae_norm_pix" (VideoMAE / V2), "videomae_pixels" (VideoMAE without target
            normalisation: pixels in [0, 1]), "hog" (MaskFeat) or "features" (a frozen teacher's per-token
            features, masked distillation as MVD).
        hog_bins: orientation bins over 180 degrees (MaskFeat: 9).
        hog_cell: cell size in pixels over which gradients are pooled (MaskFeat: 8).
        teacher: features: a maest checkpoint of the teacher (anything ``maest.load`` reads).
        teacher_layer: features: the block whose output is the target, as a Python index into the teacher's
            blocks (-1, the last block, before the final norm: MVD's).
        teacher_dim: features: the teacher's width (the decoder's output width); 0 = read from ``teacher``
            when the pre-training job starts, and stored with the run.
        teacher_sha256: features: the teacher file's hash, recorded by the job (a run or resume with another
            file under the same path is refused).
        feature_norm: features: "none" (MVD's released recipes) or "layernorm" (MVD's ``--norm_feature``:
            a LayerNorm over channels without affine parameters, eps 1e-6).
        loss: "mse", "smooth_l1" (beta 1, MVD's), or "auto": smooth_l1 for features, mse otherwise. Each
            averages over the removed tokens' elements.
    """

    kind: str = "norm_pix"
    hog_bins: int = 9
    hog_cell: int = 8
    teacher: str = ""
    teacher_layer: int = -1
    teacher_dim: int = 0
    teacher_sha256: str = ""
    feature_norm: str = "none"
    loss: str = "auto"

    def validate(self, patch_size: int | None = None, t_pred_patch_size: int = 1) -> TargetConfig:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"model.target.kind={self.kind!r} is not one of {TARGET_KINDS}")
        if self.loss not in LOSSES:
            raise ValueError(f"model.target.loss={self.loss!r} is not one of {LOSSES}")
        if self.kind == "hog":
            if self.hog_bins < 1 or self.hog_cell < 1:
                raise ValueError(f"model.target.hog_bins={self.hog_bins} and hog_cell={self.hog_cell} must be >= 1")
            if patch_size is not None and patch_size % self.hog_cell:
                raise ValueError(f"model.target.hog_cell={self.hog_cell} does not divide the patch size {patch_size}: "
                                 "each token's HOG target needs whole cells (MaskFeat: 8 px cells, 16 px patches)")
            if t_pred_patch_size != 1:
                raise ValueError(f"HOG targets describe one frame per token (MaskFeat); set "
                                 f"model.decoder.t_pred_patch_size=1, not {t_pred_patch_size}")
        if self.kind == "features":
            if self.feature_norm not in FEATURE_NORMS:
                raise ValueError(f"model.target.feature_norm={self.feature_norm!r} is not one of {FEATURE_NORMS}")
            if self.teacher_dim < 0:
                raise ValueError(f"model.target.teacher_dim={self.teacher_dim} must be >= 0 (0: the teacher's width)")
            if t_pred_patch_size != 1:
                raise ValueError(f"feature targets are one teacher vector per token; set "
                                 f"model.decoder.t_pred_patch_size=1, not {t_pred_patch_size}")
        return self

    @property
    def is_pixels(self) -> bool:
        """Whether predictions are (possibly normalised) pixels that can be drawn."""
        return self.kind not in ("hog", "features")

    @property
    def loss_kind(self) -> str:
        """The loss ``loss`` stands for: "auto" is smooth_l1 for feature targets (MVD), mse otherwise."""
        if self.loss != "auto":
            return self.loss
        return "smooth_l1" if self.kind == "features" else "mse"


def target_dim(cfg: TargetConfig, patch_size: int, t_pred_patch_size: int, in_chans: int = 3) -> int:
    """Width K of one token's target: ``u' * p * p * C`` for pixel targets, ``C * bins * (p / cell)^2``
    for HOG, the teacher's width for features."""
    cfg.validate(patch_size, t_pred_patch_size)
    if cfg.kind == "features":
        if cfg.teacher_dim < 1:
            raise ValueError("model.target.teacher_dim is not known yet: give model.target.teacher=PATH (the "
                             "pre-training job reads the teacher's width from it) or set model.target.teacher_dim")
        return cfg.teacher_dim
    if cfg.kind == "hog":
        return in_chans * cfg.hog_bins * (patch_size // cfg.hog_cell) ** 2
    return t_pred_patch_size * patch_size * patch_size * in_chans
