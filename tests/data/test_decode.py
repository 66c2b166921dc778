import pytest
import torch

from maest.data import VideoDecodeError, corrupt_copy, open_video, torchcodec_available
from maest.data.sampling import clip_span, train_clips, uniform_clips


def _first_video(digits):
    return sorted((digits["root"] / "videos").glob("*.mp4"))[0]


@pytest.mark.parametrize("backend", ["pyav", "torchcodec"])
def test_metadata_and_requested_frames(digits, backend):
    if backend == "torchcodec" and not torchcodec_available():
        pytest.skip("torchcodec does not load here (needs torchcodec==0.13 and FFmpeg shared libraries)")
    v = open_video(_first_video(digits), backend)
    assert (v.num_frames, v.fps, v.height, v.width) == (32, 15.0, 64, 64)
    frames = v.get_frames([5, 0, 5, 31])
    assert frames.shape == (4, 3, 64, 64) and frames.dtype == torch.uint8
    torch.testing.assert_close(frames[0], frames[2], rtol=0, atol=0)


def test_backends_decode_identical_frames(digits):
    if not torchcodec_available():
        pytest.skip("torchcodec does not load here")
    idx = [0, 7, 8, 19, 31, 2]
    a = open_video(_first_video(digits), "pyav").get_frames(idx)
    b = open_video(_first_video(digits), "torchcodec").get_frames(idx)
    assert (a.int() - b.int()).abs().max() <= 1


@pytest.mark.parametrize("mode", ["truncate", "garbage", "empty"])
def test_broken_files_raise_decode_error_naming_the_path(digits, tmp_path, mode):
    bad = corrupt_copy(_first_video(digits), tmp_path / f"{mode}.mp4", mode)
    with pytest.raises(VideoDecodeError, match=f"cannot decode .*{mode}.mp4"):
        v = open_video(bad)
        v.get_frames(list(range(v.num_frames)))


def test_missing_file_and_bad_backend(tmp_path):
    with pytest.raises(VideoDecodeError, match="nope.mp4: file does not exist"):
        open_video(tmp_path / "nope.mp4")
    with pytest.raises(ValueError, match="unknown video backend 'decord'"):
        open_video(tmp_path / "nope.mp4", backend="decord")


def test_clip_sampling_follows_the_reference_scheme():
    # 16 frames at stride 4 defined at 30 fps: a 64-frame span on a 30 fps video
    assert clip_span(16, 4, 30.0) == 64
    assert clip_span(16, 4, 15.0) == 32
    g = torch.Generator().manual_seed(0)
    clips = train_clips(300, 16, 4, 30.0, repeat=4, generator=g)
    assert len(clips) == 4
    for c in clips:
        assert c.shape == (16,) and c.min() >= 0 and c.max() < 300
        assert (c.diff() >= 3).all() and (c.diff() <= 5).all()
        assert c[-1] - c[0] in (60, 61, 62, 63)
    again = train_clips(300, 16, 4, 30.0, repeat=4, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(clips, again, strict=True))
    # a video shorter than the span: clamped to its frames
    short = train_clips(20, 16, 4, 30.0, repeat=1)[0]
    assert short.max() == 19 and short.min() == 0
    test = uniform_clips(300, 16, 4, 30.0, 10)
    assert test[0][0] == 0 and test[-1][-1] == 299 and len(test) == 10
    assert uniform_clips(300, 16, 4, 30.0, 1)[0][0] == 118  # centred: (300 - 64) / 2


def test_pyav_seeking_matches_torchcodec_late_in_the_file(tmp_path):
    if not torchcodec_available():
        pytest.skip("torchcodec does not load here")
    from maest.data import write_test_pattern

    path = write_test_pattern(tmp_path / "p.mp4", 64, 48, num_frames=60, fps=30, gop=8)
    a, b = open_video(path, "pyav"), open_video(path, "torchcodec")
    for idx in ([50, 52, 59, 51], [17, 18, 40], [0, 59], [33]):
        torch.testing.assert_close(a.get_frames(idx), b.get_frames(idx), rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["pyav", "torchcodec"])
def test_overstated_frame_count_is_clamped_near_the_end(digits, backend):
    if backend == "torchcodec" and not torchcodec_available():
        pytest.skip("torchcodec does not load here")
    path = _first_video(digits)
    v = open_video(path, backend)
    v.num_frames = 32 + 3  # as if the container claimed 3 frames that do not decode
    frames = v.get_frames([0, 34, 33, 5])
    assert v.num_frames == 32
    torch.testing.assert_close(frames, open_video(path, backend).get_frames([0, 31, 31, 5]), rtol=0, atol=0)
    v.num_frames = 32 + 20  # far more missing than a short tail: a truncated file
    with pytest.raises(VideoDecodeError, match="truncated or corrupt"):
        v.get_frames([50])


def test_auto_backend_and_layout(digits):
    v = open_video(_first_video(digits))
    assert type(v).__name__ == "PyAVVideo"  # the faster CPU decoder since it skips unneeded pictures
    assert v.get_frames([3]).shape == (1, 3, v.height, v.width)  # (N, C, H, W)
    with pytest.raises(IndexError):
        v.get_frames([v.num_frames])


def _reference_rgb(path):
    """Every frame as PyAV converts it by default: a fresh swscale context per frame."""
    import av

    with av.open(str(path)) as c:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)])


def test_pyav_frames_equal_pyavs_own_conversion_across_sizes_formats_and_threads(tmp_path):
    """The decoder keeps one RGB converter per thread (its swscale context outlives a frame): the bytes
    must equal PyAV's per-frame conversion for any size and pixel format, in any order, on any thread."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from maest.data.synthetic import encode_mp4

    rng = np.random.default_rng(0)
    videos = [encode_mp4(rng.integers(0, 256, (6, h, w, 3), dtype=np.uint8), tmp_path / f"{i}.mp4", pix_fmt=fmt)
              for i, (h, w, fmt) in enumerate([(48, 64, "yuv420p"), (34, 50, "yuv444p"), (48, 64, "yuvj420p"),
                                               (120, 90, "yuv422p"), (18, 26, "yuv420p")])]
    want = {v: _reference_rgb(v) for v in videos}

    def check(order):
        for v in order:  # alternating sizes and formats on one converter
            got = open_video(v, "pyav").get_frames([5, 0, 3])
            assert torch.equal(got.permute(0, 2, 3, 1), want[v][[5, 0, 3]]), v.name

    check(videos + videos[::-1])
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(check, [videos, videos[::-1], videos[1:] + videos[:1]] * 2))
