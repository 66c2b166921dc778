"""Reconstruction targets, computed outside the model from the input clip (arXiv:2205.09113 §3).

* ``pixels``: the (input-normalised) pixels of each token's target frames;
* ``norm_pix``: MAE-ST's per-patch normalised pixels (mean and unbiased variance over the whole patch,
  ``(var + 1e-6) ** 0.5``), the default;
* ``videomae_norm_pix``: VideoMAE / V2's: pixels put back in [0, 1] with the input mean/std, then each
  patch normalised per colour channel by ``std + 1e-6``; ``videomae_pixels``: the [0, 1] pixels alone
  (VideoMAE's ``normlize_target=False``);
* ``hog``: MaskFeat's histograms of oriented gradients (Wei et al., CVPR 2022), as SlowFast's
  ``MASK.PRED_HOG``: per colour channel, 9 unsigned orientation bins over 8x8-pixel cells, L2-normalised
  per cell, on the first frame of each tube;
* ``features``: a frozen teacher's per-token features (MVD's masked distillation): the arithmetic is in
  :mod:`maest.targets.features`, the teacher in :mod:`maest.train.teacher`.

The decoder's output width follows the target (:func:`target_dim`).
"""

from maest.targets.config import TARGET_KINDS, TargetConfig, target_dim
from maest.targets.hog import hog_histograms, hog_target
from maest.targets.pixels import make_target, pixel_target

__all__ = ["TARGET_KINDS", "TargetConfig", "hog_histograms", "hog_target", "make_target", "pixel_target",
           "target_dim"]
