"""Reconstruction figures: original, masked input and the MAE's reconstruction of a clip.

With normalised-pixel targets (the paper's default) the model predicts each patch up to its own
mean and variance, which it never sees for masked patches. Two ways to show pixels:

* ``"honest"`` (default): each masked patch borrows the mean and variance of the nearest *visible*
  patch in (t, h, w), so only pixels the model was shown enter the picture;
* ``"true-stats"``: the ground-truth mean/variance of every patch are put back, as VideoMAE's
  visualiser does. It looks better because it leaks information; figures are labelled as such.

Models trained without ``norm_pix`` predict normalised pixels directly and need neither.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from maest.data.transforms import MEAN, STD
from maest.losses import mae_target, target_frame_indices
from maest.models.masking import unpatchify

MODES = ("honest", "true-stats")
GAP = 2


def _to_pixels(x: torch.Tensor, mean_std: tuple = (MEAN, STD)) -> torch.Tensor:
    """Normalised (C, T, H, W) -> uint8 (T, H, W, C), undoing the model's input normalisation."""
    mean = torch.tensor(mean_std[0]).view(-1, 1, 1, 1)
    std = torch.tensor(mean_std[1]).view(-1, 1, 1, 1)
    return ((x * std + mean) * 255).clamp(0, 255).round().byte().permute(1, 2, 3, 0)


@torch.no_grad()
def reconstruct(
    model: nn.Module, clip: torch.Tensor, mask_ratio: float = 0.9, seed: int = 0, mode: str = "honest",
    norm_pix: bool = True,
) -> dict[str, torch.Tensor]:
    """Run the MAE on one clip and return uint8 (T', H, W, C) panels at the predicted frames.

    Args:
        model: a :class:`~maest.models.mae.MaskedAutoencoderViT` (eval mode is set here).
        clip: normalised (C, T, H, W).
        mask_ratio: fraction of tokens removed.
        seed: masking seed.
        mode: "honest" or "true-stats" (see module docstring); ignored when ``norm_pix`` is False.
        norm_pix: whether the model was trained on normalised-pixel targets.

    Returns:
        {"original", "masked", "reconstruction", "pasted"} where "pasted" shows visible patches from
        the input and reconstructions elsewhere; plus "mask" (T', H, W) bool, True = removed.
    """
    if mode not in MODES:
        raise ValueError(f"unknown reconstruction mode {mode!r}; choose one of {MODES}")
    model.eval()
    p, u, frames = model.target_spec
    t, h, w = model.grid
    video = clip.unsqueeze(0).float()
    noise = model.make_noise(1, generator=torch.Generator().manual_seed(seed))
    out = model(video, mask_ratio, noise)
    pred = out.pred.float()
    if norm_pix:
        raw = mae_target(video, p, u, frames, norm_pix=False)
        mean, var = raw.mean(-1, keepdim=True), raw.var(-1, keepdim=True)
        if mode == "honest":
            src = nearest_visible(out.mask[0].bool(), (t, h, w))
            mean, var = mean[:, src], var[:, src]
        pred = pred * (var + 1e-6) ** 0.5 + mean
    rec = unpatchify(pred, p, u, (t, h, w), channels=clip.shape[0])[0]  # (C, T', H, W)
    original = clip.index_select(1, target_frame_indices(clip.shape[1], frames))
    # token mask (t, h, w) -> pixels at the predicted frames; each token covers u predicted frames
    m = out.mask[0].view(t, h, w).bool()
    m = m.repeat_interleave(u, 0).repeat_interleave(p, 1).repeat_interleave(p, 2)  # (T', H, W)
    masked = original.clone()
    ms = (model.cfg.mean, model.cfg.std)
    masked[:, m] = ((0.5 - torch.tensor(ms[0])) / torch.tensor(ms[1])).view(-1, 1).to(masked.dtype)  # grey
    pasted = torch.where(m.unsqueeze(0), rec, original)
    return {"original": _to_pixels(original, ms), "masked": _to_pixels(masked, ms),
            "reconstruction": _to_pixels(rec, ms), "pasted": _to_pixels(pasted, ms), "mask": m}


def nearest_visible(mask: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """For each token, the index of the nearest visible token in (t, h, w) (itself if visible).

    mask: (L,) bool, True = removed.
    """
    t, h, w = grid
    coords = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), -1)
    coords = coords.reshape(-1, 3).float()
    visible = (~mask).nonzero().flatten()
    nearest = torch.cdist(coords, coords[visible]).argmin(1)
    return visible[nearest]


def grid_image(panels: dict[str, torch.Tensor], rows=("original", "masked", "reconstruction", "pasted")) -> np.ndarray:
    """Stack panels as rows, frames as columns: uint8 (rows*H + gaps, T*W + gaps, 3) on white."""
    first = panels[rows[0]]
    T, H, W, C = first.shape
    img = np.full((len(rows) * (H + GAP) - GAP, T * (W + GAP) - GAP, C), 255, np.uint8)
    for r, name in enumerate(rows):
        for f in range(T):
            img[r * (H + GAP): r * (H + GAP) + H, f * (W + GAP): f * (W + GAP) + W] = panels[name][f].numpy()
    return img


def save_png(img: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    from PIL import Image

    im = Image.fromarray(img)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def _strips(panels: dict[str, torch.Tensor], rows, scale: int) -> list[np.ndarray]:
    """One image per predicted frame: the chosen panels side by side, upscaled."""
    T = panels[rows[0]].shape[0]
    strips = []
    for f in range(T):
        strip = np.concatenate([np.pad(panels[r][f].numpy(), ((0, 0), (0, GAP), (0, 0)), constant_values=255)
                                for r in rows], axis=1)
        strips.append(np.kron(strip, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else strip)
    return strips


def save_mp4(panels: dict[str, torch.Tensor], path: str | Path, rows=("original", "masked", "reconstruction"),
             fps: int = 4, scale: int = 2) -> Path:
    """The GIF's frames as an H.264 MP4 (dimensions padded to even numbers)."""
    from maest.data.synthetic import encode_mp4

    frames = np.stack(_strips(panels, rows, scale))
    h, w = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, h - frames.shape[1]), (0, w - frames.shape[2]), (0, 0)), constant_values=255)
    return encode_mp4(frames, path, fps=fps, gop=fps)


def save_gif(panels: dict[str, torch.Tensor], path: str | Path, rows=("original", "masked", "reconstruction"),
             fps: int = 4, scale: int = 1) -> Path:
    """Animated GIF: the chosen panels side by side, one animation frame per predicted frame."""
    from PIL import Image

    frames = [Image.fromarray(s) for s in _strips(panels, rows, scale)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
