"""Offline real-video generators: moving digits (labels = digit x direction) rendered from
scikit-learn's bundled 8x8 digits and encoded to H.264 MP4, a noisy moving test pattern for loader
benchmarks, and deliberately broken copies for robustness tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
BACKGROUNDS = ("blobs", "plain")


def encode_mp4(frames: np.ndarray, path: str | Path, fps: int = 15, gop: int = 30, crf: int = 18,
               bit_rate: int | None = None, pix_fmt: str = "yuv420p") -> Path:
    """Encode uint8 (N, H, W, 3) RGB frames as H.264 MP4 (``pix_fmt``, yuv420p by default) with PyAV (even
    H, W required); constant quality ``crf`` unless a target ``bit_rate`` (bits/s) is given."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        # mbtree=0: x264's macroblock-tree rate control gave different bytes for the same frames from run to
        # run on these small frames (a third of 48 px digit videos); without it the bytes repeat exactly
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast",
                          "x264-params": "mbtree=0"}
        if bit_rate:
            stream.bit_rate = bit_rate
        else:
            stream.options = {**stream.options, "crf": str(crf)}
        stream.thread_count = 1
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _digit_sprites(scale: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RuntimeError("moving-digit videos draw scikit-learn's bundled digit images: pip install 'maest[demo]' "
                           "(or pip install scikit-learn)") from None

    d = load_digits()
    sprites = np.kron(d.images / 16.0, np.ones((scale, scale)))  # (1797, 8*scale, 8*scale) in [0, 1]
    return sprites, d.target


def render_moving_digit(sprite: np.ndarray, direction: str, num_frames: int, size: int,
                        rng: np.random.Generator, background: str = "blobs") -> np.ndarray:
    """(num_frames, size, size, 3) uint8: a coloured digit crossing a background, either a textured
    scene (``"blobs"``) or one flat dark colour per video (``"plain"``, as in Moving MNIST)."""
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; choose from {list(BACKGROUNDS)}")
    s = sprite.shape[0]
    dy, dx = DIRECTIONS[direction]
    travel = size - s
    speed = travel / max(num_frames - 1, 1)
    y0 = rng.integers(0, travel + 1) if dy == 0 else (0 if dy > 0 else travel)
    x0 = rng.integers(0, travel + 1) if dx == 0 else (0 if dx > 0 else travel)
    colour = rng.uniform(0.6, 1.0, 3)
    if background == "plain":
        scene = np.broadcast_to(rng.uniform(0.0, 0.3, 3), (size, size, 3))
        return _composite(scene, sprite, colour, y0, x0, dy, dx, speed, num_frames)
    # a smooth random scene (a few soft blobs): structured at patch scale, so per-patch normalised
    # targets stay predictable instead of amplifying noise on flat regions
    yy, xx = np.mgrid[0:size, 0:size] / size
    scene = np.full((size, size, 3), 0.2)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.15, 0.4)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
        scene += blob[..., None] * rng.uniform(-0.15, 0.35, 3)
    return _composite(scene, sprite, colour, y0, x0, dy, dx, speed, num_frames)


def _composite(scene: np.ndarray, sprite: np.ndarray, colour: np.ndarray, y0: int, x0: int, dy: int, dx: int,
               speed: float, num_frames: int) -> np.ndarray:
    """Frames of ``sprite`` (alpha in [0, 1]) in ``colour`` over ``scene``, moving ``speed`` px per frame."""
    s, size = sprite.shape[0], scene.shape[0]
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        img = scene.copy()
        y = int(round(y0 + dy * speed * t))
        x = int(round(x0 + dx * speed * t))
        alpha = sprite[..., None]
        img[y:y + s, x:x + s] = img[y:y + s, x:x + s] * (1 - alpha) + alpha * colour
        frames[t] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return frames


def write_moving_digits(
    out_dir: str | Path, num_videos: int = 64, num_frames: int = 32, size: int = 64, fps: int = 15,
    digits: Sequence[int] = (0, 1, 2, 3, 4), directions: Sequence[str] = ("left", "right"),
    seed: int = 0, val_fraction: float = 0.25, digit_scale: int = 4, background: str = "blobs",
) -> dict[str, Path]:
    """Write moving-digit MP4s and Kinetics-style lists.

    Label = digit_index * len(directions) + direction_index, balanced over videos. ``background`` is
    ``"blobs"`` (a smooth random scene per video) or ``"plain"`` (one flat dark colour per video). Writes
    ``videos/*.mp4``, ``train.csv``, ``val.csv`` (``relative/path label``) and ``classes.txt``.

    Returns:
        {"root", "train", "val", "classes"} paths.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; choose from {list(BACKGROUNDS)}")
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"unknown direction {d!r}; choose from {list(DIRECTIONS)}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    sprites, targets = _digit_sprites(digit_scale)
    if sprites.shape[1] >= size:
        raise ValueError(f"size={size} must exceed the digit size {sprites.shape[1]}; raise size or lower digit_scale")
    classes = [f"{dg}_{dr}" for dg in digits for dr in directions]
    rows = []
    for i in range(num_videos):
        label = i % len(classes)
        digit, direction = digits[label // len(directions)], directions[label % len(directions)]
        sprite = sprites[rng.choice(np.flatnonzero(targets == digit))]
        rel = Path("videos") / f"{i:04d}_{classes[label]}.mp4"
        encode_mp4(render_moving_digit(sprite, direction, num_frames, size, rng, background), out / rel, fps=fps)
        rows.append((rel.as_posix(), label))
    order = rng.permutation(len(rows))
    n_val = int(round(len(rows) * val_fraction))
    val, train = [rows[j] for j in order[:n_val]], [rows[j] for j in order[n_val:]]
    (out / "train.csv").write_text("".join(f"{p} {lbl}\n" for p, lbl in train))
    (out / "val.csv").write_text("".join(f"{p} {lbl}\n" for p, lbl in val))
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    return {"root": out, "train": out / "train.csv", "val": out / "val.csv", "classes": out / "classes.txt"}


def write_test_pattern(path: str | Path, width: int, height: int, num_frames: int = 300, fps: int = 30,
                       gop: int = 30, seed: int = 0, bit_rate: int | None = None) -> Path:
    """A moving noisy gradient pattern (like ffmpeg's testsrc2 + noise), H.264 at ``bit_rate``
    (default: 0.8 Mbit/s up to 256p, 4 Mbit/s above, as Kinetics-like files), for loader benchmarks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        base = np.stack([(xx + 3 * t) % 256, (yy + 2 * t) % 256, (xx + yy + t) % 256], axis=-1)
        frames[t] = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    rate = bit_rate or (800_000 if min(width, height) <= 256 else 4_000_000)
    return encode_mp4(frames, path, fps=fps, gop=gop, bit_rate=rate)


def corrupt_copy(src: str | Path, dst: str | Path, mode: str = "truncate", seed: int = 0) -> Path:
    """A broken copy of a video: "truncate" (first 30% of bytes), "garbage" (random bytes of the same
    size) or "empty" (0 bytes)."""
    data = Path(src).read_bytes()
    if mode == "truncate":
        data = data[: int(len(data) * 0.3)]
    elif mode == "garbage":
        data = np.random.default_rng(seed).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    elif mode == "empty":
        data = b""
    else:
        raise ValueError(f"unknown corruption mode {mode!r}; choose truncate, garbage or empty")
    Path(dst).write_bytes(data)
    return Path(dst)
