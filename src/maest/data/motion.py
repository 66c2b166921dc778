"""Per-clip motion fields for motion-guided masking (``data.motion``; the masks are made model-side, in
:mod:`maest.models.motion_masking`).

A clip's field is float32 (T, 2, s/4, s/4): for each of its frames a *backward* displacement in pixels of the
clip, pixel (x, y) of the frame came from (x + u, y + v) of an earlier frame, one vector per 4 x 4 pixels
(the finest block of H.264/HEVC motion vectors; the masking upsamples it). It is cropped, resized and flipped
with the clip's frames, on the same crop box and flip draw: each vector is read from the source at the centre
of its 4 x 4 output cell (nearest, so codec blocks keep their vectors), scaled by the resize, u negated by
the flip. It travels in the batch as ``motion`` (B, T, 2, s/4, s/4) with ``has_motion`` (B,).

Sources:
- ``codec``: the H.264/HEVC motion vectors of each clip frame, exported by FFmpeg in the same PyAV decode
  pass (``flags2=+export_mvs``, frame side data MOTION_VECTORS). A vector points from a block of the frame to
  where it was in its reference picture (``src - dst``), which is usually one to a few frames earlier: the
  field is the decoder's own motion of that frame, not accumulated over the sampling stride. Vectors to a
  later reference (B-pictures) are negated; where a block has both, the earlier reference wins. Blocks
  without a vector (intra blocks, an I-picture) stay 0. A clip none of whose frames after the first has a
  vector (an intra-only codec, a clip of key frames) has no motion: it is masked randomly and counted.
- ``flow``: optical flow a user computed beforehand, one file per video in ``data.flow_dir`` named after the
  video (``<flow_dir>/<video file stem>.npy`` or ``.pt``), float (N, 2, H, W) at the video's resolution for
  its N frames (or N - 1, the first frame's left out): entry i is the flow from frame i to frame i - 1. A
  clip frame's field is the sum of the entries since the previous clip frame (exact for translations).
  ``.npy`` files are memory-mapped and ``.pt`` files read with ``torch.load(weights_only=True, mmap=True)``,
  so only the frames a clip needs are read; no pickle is ever loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

SOURCES = ("none", "codec", "flow")
FLOW_SUFFIXES = (".npy", ".pt")
CELL = 4  # H.264/HEVC blocks are multiples of 4 pixels


def codec_field(vectors: np.ndarray | None, height: int, width: int) -> np.ndarray | None:
    """Float32 (2, ceil(H/4), ceil(W/4)) backward field of one frame's motion vectors, one per 4 x 4 pixels
    (PyAV's structured array with source, w, h, dst_x, dst_y, motion_x, motion_y, motion_scale); None when
    the frame has none."""
    if vectors is None or len(vectors) == 0:
        return None
    gh, gw = -(-height // CELL), -(-width // CELL)
    field = np.zeros((2, gh, gw), np.float32)
    # later references first, so the earlier reference's vector of a bi-predicted block overwrites it
    for past in (False, True):
        v = vectors[(vectors["source"] < 0) == past]
        if not len(v):
            continue
        sign = 1.0 if past else -1.0
        scale = np.maximum(v["motion_scale"].astype(np.float32), 1.0)
        du = sign * v["motion_x"].astype(np.float32) / scale
        dv = sign * v["motion_y"].astype(np.float32) / scale
        bw, bh = np.maximum(v["w"].astype(np.int64) // CELL, 1), np.maximum(v["h"].astype(np.int64) // CELL, 1)
        x0 = (v["dst_x"].astype(np.int64) - v["w"].astype(np.int64) // 2) // CELL
        y0 = (v["dst_y"].astype(np.int64) - v["h"].astype(np.int64) // 2) // CELL
        n = bw * bh  # cells per block
        owner = np.repeat(np.arange(len(v)), n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # cell number within its block
        cy, cx = y0[owner] + k // bw[owner], x0[owner] + k % bw[owner]
        ok = (cy >= 0) & (cy < gh) & (cx >= 0) & (cx < gw)
        field[0, cy[ok], cx[ok]] = du[owner[ok]]
        field[1, cy[ok], cx[ok]] = dv[owner[ok]]
    return field


def codec_clip(fields: list[np.ndarray | None], height: int, width: int) -> tuple[torch.Tensor, bool]:
    """A clip's (T, 2, ceil(H/4), ceil(W/4)) field from its frames' codec fields, and whether any frame after
    the first has motion vectors (False: the clip falls back to random masking)."""
    out = torch.zeros(len(fields), 2, -(-height // CELL), -(-width // CELL))
    found = False
    for t, f in enumerate(fields):
        if f is not None:
            out[t] = torch.from_numpy(f)
            found = found or t > 0
    return out, found


def flow_path(flow_dir: str | Path, video_path: str | Path) -> Path:
    """The flow file of a video: ``<flow_dir>/<stem>.npy`` or ``.pt``; a missing one raises, naming it."""
    stem = Path(str(video_path)).stem
    for suffix in FLOW_SUFFIXES:
        p = Path(flow_dir) / f"{stem}{suffix}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"data.motion=flow: no {stem}.npy or {stem}.pt in data.flow_dir={flow_dir} for video "
                            f"{video_path}; write one (float (N, 2, H, W), frame i -> i-1) or set data.motion=none")


def open_flow(path: Path) -> Any:
    """The flow array of a file, memory-mapped, with its shape checked: (N, 2, H, W) float."""
    if path.suffix == ".npy":
        arr: Any = np.load(path, mmap_mode="r", allow_pickle=False)
    else:
        arr = torch.load(path, weights_only=True, mmap=True, map_location="cpu")
        if not isinstance(arr, torch.Tensor):
            raise ValueError(f"{path} holds a {type(arr).__name__}, not a flow tensor (N, 2, H, W); save the tensor "
                             "itself with torch.save")
    if len(arr.shape) != 4 or arr.shape[1] != 2 or not _is_float(arr):
        raise ValueError(f"{path} has shape {tuple(arr.shape)} ({arr.dtype}); a flow file holds float (N, 2, H, W): "
                         "frame i -> i-1 displacements in pixels, channel 0 = x")
    return arr


def _is_float(arr: Any) -> bool:
    return arr.dtype.is_floating_point if isinstance(arr, torch.Tensor) else np.issubdtype(arr.dtype, np.floating)


def flow_clip(arr: Any, path: Path, indices: list[int], num_frames: int, height: int, width: int) -> torch.Tensor:
    """A clip's (T, 2, H, W) field from a video's flow array: per clip frame, the sum of the per-frame
    flows since the previous clip frame (the first clip frame: 0)."""
    n, _, h, w = arr.shape
    if (h, w) != (height, width) or n not in (num_frames, num_frames - 1):
        raise ValueError(f"{path} has shape {tuple(arr.shape)} but its video has {num_frames} frames of {height}x"
                         f"{width}: expected ({num_frames}, 2, {height}, {width}) (or {num_frames - 1} frames)")
    shift = num_frames - n  # 1: entry 0 is frame 1's flow
    out = torch.zeros(len(indices), 2, height, width)
    for t in range(1, len(indices)):
        lo, hi = max(indices[t - 1] + 1 - shift, 0), max(indices[t] + 1 - shift, 0)
        if hi > lo:
            chunk = arr[lo:hi]
            chunk = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.array(chunk))
            out[t] = chunk.float().sum(0)
    return out


def crop_resize(motion: torch.Tensor, box: tuple[int, int, int, int], size: int, stride: int) -> torch.Tensor:
    """The (T, 2, size/4, size/4) field of the frames' crop ``box`` (top, left, h, w, in frame pixels) resized
    to ``size``: ``motion`` (T, 2, ., .) holds one vector per ``stride`` x ``stride`` frame pixels; each output
    vector is the one under its 4 x 4 cell's centre, scaled by the resize."""
    top, left, h, w = box
    n = size // CELL
    centre = (torch.arange(n, dtype=torch.float64) + 0.5) * CELL / size  # fraction of the crop
    rows = ((top + centre * h) // stride).long().clamp(0, motion.shape[-2] - 1)
    cols = ((left + centre * w) // stride).long().clamp(0, motion.shape[-1] - 1)
    m = motion.index_select(-2, rows).index_select(-1, cols)
    return m * torch.tensor([size / w, size / h]).view(1, 2, 1, 1)


def flip(motion: torch.Tensor) -> torch.Tensor:
    """The field of horizontally flipped frames: mirrored, x component negated."""
    return motion.flip(-1) * torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1)
