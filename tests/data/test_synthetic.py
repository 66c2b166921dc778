"""The moving-digits generator: both backgrounds, and a clear error for an unknown one."""

import numpy as np
import pytest

from maest.data.synthetic import render_moving_digit, write_moving_digits


def _sprite() -> np.ndarray:
    s = np.zeros((8, 8))
    s[2:6, 3:5] = 1.0
    return s


@pytest.mark.parametrize("direction", ["left", "right"])
def test_plain_background_is_one_colour_and_the_digit_moves(direction):
    frames = render_moving_digit(_sprite(), direction, num_frames=6, size=24, rng=np.random.default_rng(0),
                                 background="plain")
    assert frames.shape == (6, 24, 24, 3) and frames.dtype == np.uint8
    corner = frames[:, 0, 0]
    assert (corner == corner[0]).all() and corner.max() <= 0.3 * 255 + 1  # dark and constant over time
    cols = [np.flatnonzero((f != f[0, 0]).any(-1).any(0)).mean() for f in frames]  # digit's mean column
    steps = np.diff(cols)
    assert (steps > 0).all() if direction == "right" else (steps < 0).all()


def test_blob_background_varies_across_the_frame():
    frames = render_moving_digit(_sprite(), "left", num_frames=2, size=24, rng=np.random.default_rng(0))
    assert len(np.unique(frames[0, :, :12].reshape(-1, 3), axis=0)) > 20


def test_unknown_background_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="'stars'.*blobs.*plain"):
        write_moving_digits(tmp_path, num_videos=2, background="stars")
    with pytest.raises(ValueError, match="'stars'"):
        render_moving_digit(_sprite(), "left", 2, 24, np.random.default_rng(0), background="stars")


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    """Generated videos are reproducible to the byte: x264's macroblock-tree rate control (now off) changed the
    coded pictures of about a third of these small videos from one run to the next."""
    import hashlib

    digests = []
    for run in ("a", "b"):
        out = write_moving_digits(tmp_path / run, num_videos=24, num_frames=32, size=48, digit_scale=3, seed=4)
        videos = sorted((out["root"] / "videos").glob("*.mp4"))
        digests.append([hashlib.sha1(v.read_bytes()).hexdigest() for v in videos])
    assert len(digests[0]) == 24 and digests[0] == digests[1]
