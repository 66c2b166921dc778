"""Variable-frame-rate H.264: PyAV decodes every frame torchcodec decodes (issue 13)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from maest.data import ClipSpec, VideoClipDataset, open_video, torchcodec_available

N = 60


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory):
    """60 frames of 64 px H.264 (B-frames, a keyframe every 12) with irregular gaps of 17-83 ms;
    frame i is a flat grey of level 4 i, so each decoded frame says which one it is."""
    import av

    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    gaps = np.random.default_rng(0).choice([17, 33, 50, 83], size=N)  # 60, 30, 20 and 12 fps
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        s.options = {"g": "12", "bf": "2", "crf": "10"}
        pts = 0
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += int(gaps[i])
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def _levels(frames: torch.Tensor) -> list[int]:
    return [round(v / 4) for v in frames.float().mean(dim=(1, 2, 3)).tolist()]


def test_pyav_decodes_every_frame_of_a_vfr_file(vfr_video):
    v = open_video(vfr_video, "pyav")
    assert v.num_frames == N
    assert _levels(v.get_frames(list(range(N)))) == list(range(N))
    # a request in the middle (a seek to an earlier keyframe), out of order and with repeats
    assert _levels(v.get_frames([54, 50, 3, 50, 59])) == [54, 50, 3, 50, 59]


def test_pyav_matches_torchcodec_on_a_vfr_file(vfr_video):
    if not torchcodec_available():
        pytest.skip("torchcodec does not load here")
    idx = [0, 13, 50, 54, 59, 7]
    a = open_video(vfr_video, "pyav")
    b = open_video(vfr_video, "torchcodec")
    assert a.num_frames == b.num_frames == N
    assert torch.equal(a.get_frames(idx), b.get_frames(idx))


def test_a_vfr_file_is_not_skipped_in_training(vfr_video):
    ds = VideoClipDataset([(str(vfr_video), 0)], ClipSpec(mode="pretrain", num_frames=8, sampling_rate=2,
                                                          crop_size=32, repeat=2, backend="pyav", max_retries=0))
    item = ds[0]
    assert item["skipped"] == [] and item["video"].shape == (2, 3, 8, 32, 32)


def test_pyav_counts_only_the_frames_an_edit_list_shows(vfr_video, tmp_path):
    """Issue 21: a file cut without re-encoding (``ffmpeg -ss 0.3 -c copy``) keeps the packets from the
    keyframe before the cut, flagged as discarded by its edit list; PyAV counted them as frames (60 where
    52 decode). Now the count is what decodes, and every counted frame decodes, in order."""
    import shutil
    import subprocess

    import av

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg command to write an edit list")
    cut = tmp_path / "cut.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-ss", "0.3", "-i", str(vfr_video), "-c", "copy", str(cut)],
                   check=True, timeout=60)
    with av.open(str(cut)) as c:
        shown = [round(f.to_ndarray(format="rgb24").mean() / 4) for f in c.decode(c.streams.video[0])]
    v = open_video(cut, "pyav")
    assert len(shown) < N and v.num_frames == len(shown)
    assert _levels(v.get_frames(list(range(v.num_frames)))) == shown
