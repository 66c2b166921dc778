"""One MAE pre-training micro-step: per-clip masking noise keyed by (seed, step, video, clip), and the
reconstruction loss of the (possibly wrapped) model against targets computed outside it."""

from __future__ import annotations

import torch
from torch import nn

from maest.data.loader import mix_seed
from maest.distributed import unwrap
from maest.losses import reconstruction_loss
from maest.targets import TargetConfig, make_target


def masking_noise(model: nn.Module, video_index: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Masking noise (B, L) for a batch of clips, each row a pure function of (seed, step, video,
    clip of that video). A resumed run masks exactly as an uninterrupted one without saving RNG
    state, and the masks do not depend on how the global batch is split over processes.

    Args:
        video_index: (B,) dataset index of each clip's video; repeated clips of a video share it and are
            told apart by their order in the batch.
    """
    seen: dict[int, int] = {}
    rows = []
    for v in video_index.tolist():
        clip = seen.get(v, 0)
        seen[v] = clip + 1
        g = torch.Generator().manual_seed(mix_seed(seed, step, v, clip))
        rows.append(model.make_noise(1, generator=g))
    return torch.cat(rows)


_DECODER_STREAM = 0xDEC0DE  # a fifth seed part, so decoder masks never reuse an encoder stream


def decoder_masking_noise(model: nn.Module, video_index: torch.Tensor, seed: int, step: int) -> torch.Tensor | None:
    """Decoder-mask noise (B, L) keyed like :func:`masking_noise` but from its own stream, so the encoder
    masks of a run are the same with and without a decoder mask; None when the model has none."""
    if getattr(model, "decoder_mask", "none") == "none":
        return None
    seen: dict[int, int] = {}
    rows = []
    for v in video_index.tolist():
        clip = seen.get(v, 0)
        seen[v] = clip + 1
        g = torch.Generator().manual_seed(mix_seed(seed, step, v, clip, _DECODER_STREAM))
        rows.append(model.make_decoder_noise(1, generator=g))
    return torch.cat(rows)


def target_config(model: nn.Module, target: TargetConfig | bool | None = None) -> TargetConfig:
    """The target to train ``model`` on: ``target`` if given (a bool means norm-pix or raw pixels, the
    older flag), else the model's own ``model.target``."""
    if isinstance(target, TargetConfig):
        return target
    if isinstance(target, bool):
        return TargetConfig("norm_pix" if target else "pixels")
    cfg = getattr(getattr(model, "model_cfg", None), "target", None)
    return cfg if cfg is not None else TargetConfig()


def mae_loss(
    model: nn.Module, video: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None,
    target: TargetConfig | bool | None = None, decoder_noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward the (possibly wrapped) MAE and return the reconstruction loss (fp32 scalar): over removed
    tokens, or over removed and decoded tokens when the model masks its decoder (VideoMAE V2)."""
    core = unwrap(model)
    if decoder_noise is None:
        out = model(video, mask_ratio, noise)
    else:
        out = model(video, mask_ratio, noise, decoder_noise=decoder_noise)
    enc = getattr(getattr(core, "model_cfg", None), "encoder", None)
    tgt = make_target(video, target_config(core, target), core.target_spec, getattr(enc, "mean", None),
                      getattr(enc, "std", None))
    return reconstruction_loss(out.pred, tgt, out.mask, getattr(out, "pred_ids", None))
