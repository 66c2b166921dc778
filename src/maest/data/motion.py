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

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

SOURCES = ("none", "codec", "flow")
FLOW_SUFFIXES = (".npy", ".pt")
CELL = 4  # H.264/HEVC blocks are multiples of 4 pixels
_PAD = 8  # cells of margin around a frame's grid while painting blocks (codec_clip)


def codec_clip(vectors: list[np.ndarray | None], height: int, width: int) -> tuple[torch.Tensor, bool]:
    """A clip's float32 (T, 2, ceil(H/4), ceil(W/4)) backward field, one vector per 4 x 4 pixels, from its
    frames' motion vectors (PyAV's structured arrays with source, w, h, dst_x, dst_y, motion_x, motion_y,
    motion_scale; None or empty: the frame has none), and whether any frame after the first has vectors
    (False: the clip falls back to random masking).

    Every block of every frame is painted at once, one numpy scatter per block shape and reference
    direction: later references first, so the earlier reference's vector of a bi-predicted block
    overwrites it (the blocks of one direction do not overlap). The grid carries a margin of ``_PAD``
    cells, so blocks hanging over the frame's edge (a 16-pixel macroblock past a 340-pixel width) need
    no per-cell bounds test; the rare block past the margin is painted on its own.
    ``tests/data/test_motion.py`` holds this to a vector-by-vector reference on decoded clips."""
    gh, gw = -(-height // CELL), -(-width // CELL)
    got = [(t, v) for t, v in enumerate(vectors) if v is not None and len(v)]
    if not got:
        return torch.zeros(len(vectors), 2, gh, gw), False
    ph, pw = gh + 2 * _PAD, gw + 2 * _PAD
    field = np.zeros((len(vectors), 2, ph, pw), np.float32)
    # one structured array of the clip's vectors (joined as bytes: numpy joins structured arrays field by field)
    v = np.concatenate([a.view(np.uint8).reshape(-1) for _, a in got]).view(got[0][1].dtype)
    frame = np.repeat(np.array([t for t, _ in got], np.int32), [len(a) for _, a in got])
    past = v["source"] < 0
    scale = np.maximum(v["motion_scale"].astype(np.float32), 1.0)
    sign = np.where(past, np.float32(1.0), np.float32(-1.0))
    uv = np.stack([sign * v["motion_x"].astype(np.float32) / scale, sign * v["motion_y"].astype(np.float32) / scale], 1)
    w, h = v["w"].astype(np.int32), v["h"].astype(np.int32)
    bw, bh = np.maximum(w // CELL, 1), np.maximum(h // CELL, 1)
    x0 = (v["dst_x"].astype(np.int32) - w // 2) // CELL + _PAD
    y0 = (v["dst_y"].astype(np.int32) - h // 2) // CELL + _PAD
    first = (frame * 2 * ph + y0) * pw + x0  # flat index of each block's first cell (channel 0)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + bw <= pw) & (y0 + bh <= ph)
    shape = bh * 1024 + bw
    flat = field.reshape(-1)
    for direction in (False, True):
        here = past == direction
        for s in np.unique(shape[here & inside]).tolist():
            g = np.flatnonzero(here & inside & (shape == s))
            rows, cols = divmod(s, 1024)
            # a view whose entry i is the (2, rows, cols) block of cells whose first cell is flat[i]
            span = ph * pw + (rows - 1) * pw + cols - 1
            blocks = np.lib.stride_tricks.as_strided(flat, (flat.size - span, 2, rows, cols),
                                                     (4, 4 * ph * pw, 4 * pw, 4), writeable=True)
            blocks[first[g]] = uv[g, :, None, None]
        for i in np.flatnonzero(here & ~inside).tolist():  # past the margin: clip to the grid
            ys, xs = np.arange(y0[i], y0[i] + bh[i]), np.arange(x0[i], x0[i] + bw[i])
            ys, xs = ys[(ys >= 0) & (ys < ph)], xs[(xs >= 0) & (xs < pw)]
            field[frame[i], 0, ys[:, None], xs] = uv[i, 0]
            field[frame[i], 1, ys[:, None], xs] = uv[i, 1]
    return torch.from_numpy(field[:, :, _PAD:_PAD + gh, _PAD:_PAD + gw]), bool((frame > 0).any())


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
    """The flow array of a file, memory-mapped, with its shape checked: (N, 2, H, W) float.

    Raises:
        ValueError: an empty, truncated or foreign file, or another shape (one line naming the file).
    """
    try:
        if path.suffix == ".npy":
            arr: Any = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            arr = torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except (OSError, EOFError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path} is not a readable flow file ({path.stat().st_size} bytes: {why}); write it with "
                         "numpy.save or torch.save of a float (N, 2, H, W) array") from None
    if not isinstance(arr, torch.Tensor | np.ndarray):
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


def view_field(motion: torch.Tensor, frame_hw: tuple[int, int], resized_hw: tuple[int, int], size: int,
               position: int, stride: int) -> torch.Tensor:
    """The (T, 2, size/4, size/4) field of a test view: the frames (``frame_hw``) resized to ``resized_hw``
    (their short side to the view's), then cropped ``size`` x ``size`` at ``position`` 0/1/2 as
    ``transforms.uniform_crop`` does; ``motion`` as for :func:`crop_resize`."""
    (h, w), (nh, nw) = frame_hw, resized_hw
    top, left = (nh - size) // 2, (nw - size) // 2
    if nw >= nh:
        left = [0, (nw - size) // 2, nw - size][position]
    else:
        top = [0, (nh - size) // 2, nh - size][position]
    return crop_resize(motion, (top * h / nh, left * w / nw, size * h / nh, size * w / nw), size, stride)


def flip(motion: torch.Tensor) -> torch.Tensor:
    """The field of horizontally flipped frames: mirrored, x component negated."""
    return motion.flip(-1) * torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1)
