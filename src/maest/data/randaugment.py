"""RandAugment on video tensors (timm's ``rand-m7-mstd0.5-inc1`` policy, used by MAE-ST fine-tuning):
``num_ops`` operations, each applied with probability ``prob`` at a magnitude drawn from
N(m, mstd) and clipped to [0, 10], with the same operation and magnitude for every frame.

Frames are float (T, C, H, W) in [0, 255], on any device: matrices and kernels are made on the frames'
device, and nothing reads a value back from it (the random draws come from the host's generator), so
GPU-decoded frames are augmented on the GPU without a synchronisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from maest.data.rng import generator

_FILL = 128.0


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    return (b + (a - b) * factor).clamp(0, 255)


def _affine(x: torch.Tensor, matrix: list[list[float]]) -> torch.Tensor:
    """Apply a 2x3 affine map in normalised coordinates; exposed pixels get the grey fill."""
    T = x.shape[0]
    theta = torch.tensor(matrix, dtype=x.dtype, device=x.device).unsqueeze(0).expand(T, -1, -1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    ones = torch.ones_like(x[:, :1])
    out = F.grid_sample(torch.cat([x, ones], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    img, valid = out[:, :-1], out[:, -1:]
    return img + (1 - valid) * _FILL


def _sign() -> float:
    return -1.0 if torch.rand((), generator=generator()).item() < 0.5 else 1.0


def identity(x, m):
    return x


def autocontrast(x, m):
    lo = x.amin(dim=(0, 2, 3), keepdim=True)
    hi = x.amax(dim=(0, 2, 3), keepdim=True)
    scale = torch.where(hi > lo, 255.0 / (hi - lo), torch.ones_like(hi))
    return torch.where(hi > lo, (x - lo) * scale, x).clamp(0, 255)


def equalize(x, m):
    """Per-channel histogram equalisation over the whole clip; a channel of one value is left as is.
    Fixed-size histograms and ``where`` instead of ``bincount`` and an ``if``: no read-back on a GPU."""
    out = torch.empty_like(x)
    q = x.round().clamp(0, 255).long()
    for c in range(x.shape[1]):
        idx = q[:, c].flatten()
        hist = torch.zeros(256, dtype=torch.long, device=x.device).scatter_add_(0, idx, torch.ones_like(idx)).float()
        cdf = hist.cumsum(0)
        first = cdf.gather(0, (hist > 0).int().argmax().view(1))  # the cdf at the lowest value present
        lut = ((cdf - first) / (cdf[-1] - first) * 255).clamp(0, 255)
        out[:, c] = torch.where(cdf[-1] > first, lut[q[:, c]], x[:, c])
    return out


def rotate(x, m):
    a = math.radians(_sign() * m / 10 * 30)
    return _affine(x, [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])


def solarize(x, m):
    thr = 256 - m / 10 * 256  # "increasing" variant: stronger with m
    return torch.where(x >= thr, 255 - x, x)


def color(x, m):
    return _blend(x, _gray(x).expand_as(x), 1 + _sign() * m / 10 * 0.9)


def posterize(x, m):
    bits = max(8 - int(m / 10 * 4), 1)
    shift = 2 ** (8 - bits)
    return torch.div(x.clamp(0, 255), shift, rounding_mode="floor") * shift


def contrast(x, m):
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean.expand_as(x), 1 + _sign() * m / 10 * 0.9)


def brightness(x, m):
    return _blend(x, torch.zeros_like(x), 1 + _sign() * m / 10 * 0.9)


def sharpness(x, m):
    k = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
    C = x.shape[1]
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(C, 1, 3, 3), groups=C)
    return _blend(x, blurred, 1 + _sign() * m / 10 * 0.9)


def shear_x(x, m):
    return _affine(x, [[1.0, _sign() * m / 10 * 0.3, 0.0], [0.0, 1.0, 0.0]])


def shear_y(x, m):
    return _affine(x, [[1.0, 0.0, 0.0], [_sign() * m / 10 * 0.3, 1.0, 0.0]])


def translate_x(x, m):
    return _affine(x, [[1.0, 0.0, _sign() * m / 10 * 0.45 * 2], [0.0, 1.0, 0.0]])


def translate_y(x, m):
    return _affine(x, [[1.0, 0.0, 0.0], [0.0, 1.0, _sign() * m / 10 * 0.45 * 2]])


OPS = {f.__name__: f for f in (identity, autocontrast, equalize, rotate, solarize, color, posterize, contrast,
                               brightness, sharpness, shear_x, shear_y, translate_x, translate_y)}


def rand_augment(frames: torch.Tensor, num_ops: int = 2, magnitude: float = 7.0, mstd: float = 0.5,
                 prob: float = 0.5) -> torch.Tensor:
    """Apply RandAugment to float (T, C, H, W) frames in [0, 255]; returns the same layout."""
    names = list(OPS)
    x = frames.float()
    for _ in range(num_ops):
        if torch.rand((), generator=generator()).item() >= prob:
            continue
        op = names[int(torch.randint(len(names), (), generator=generator()).item())]
        m = min(max(magnitude + mstd * torch.randn((), generator=generator()).item(), 0.0), 10.0)
        x = OPS[op](x, m)
    return x
