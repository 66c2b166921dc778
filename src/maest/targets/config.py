"""``model.target.*``: what the decoder predicts. Kept free of model imports so model configs can use it."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_KINDS = ("norm_pix", "pixels", "videomae_norm_pix", "videomae_pixels", "hog")


@dataclass
class TargetConfig:
    """Attributes:
        kind: "norm_pix" (MAE-ST, default), "pixels" (the input as the model sees it),
            "videomae_norm_pix" (VideoMAE / V2), "videomae_pixels" (VideoMAE without target
            normalisation: pixels in [0, 1]) or "hog" (MaskFeat).
        hog_bins: orientation bins over 180 degrees (MaskFeat: 9).
        hog_cell: cell size in pixels over which gradients are pooled (MaskFeat: 8).
    """

    kind: str = "norm_pix"
    hog_bins: int = 9
    hog_cell: int = 8

    def validate(self, patch_size: int | None = None, t_pred_patch_size: int = 1) -> TargetConfig:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"model.target.kind={self.kind!r} is not one of {TARGET_KINDS}")
        if self.kind == "hog":
            if self.hog_bins < 1 or self.hog_cell < 1:
                raise ValueError(f"model.target.hog_bins={self.hog_bins} and hog_cell={self.hog_cell} must be >= 1")
            if patch_size is not None and patch_size % self.hog_cell:
                raise ValueError(f"model.target.hog_cell={self.hog_cell} does not divide the patch size {patch_size}: "
                                 "each token's HOG target needs whole cells (MaskFeat: 8 px cells, 16 px patches)")
            if t_pred_patch_size != 1:
                raise ValueError(f"HOG targets describe one frame per token (MaskFeat); set "
                                 f"model.decoder.t_pred_patch_size=1, not {t_pred_patch_size}")
        return self

    @property
    def is_pixels(self) -> bool:
        """Whether predictions are (possibly normalised) pixels that can be drawn."""
        return self.kind != "hog"


def target_dim(cfg: TargetConfig, patch_size: int, t_pred_patch_size: int, in_chans: int = 3) -> int:
    """Width K of one token's target: ``u' * p * p * C`` for pixel targets, ``C * bins * (p / cell)^2``
    for HOG."""
    cfg.validate(patch_size, t_pred_patch_size)
    if cfg.kind == "hog":
        return in_chans * cfg.hog_bins * (patch_size // cfg.hog_cell) ** 2
    return t_pred_patch_size * patch_size * patch_size * in_chans
