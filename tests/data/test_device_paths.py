"""Clips decoded on a GPU, checked on the CPU: RandAugment and normalisation make their matrices, kernels and
statistics on the frames' device (``meta`` frames show a misplaced tensor without computing anything),
equalisation reads nothing back and gives the numbers it gave, ``data.decode_device`` takes ``cuda:N`` and
``cuda`` means the process's own GPU, and a GPU failing while decoding stops the job instead of marking
videos unreadable (``maest test`` included, which never decodes on the GPU in forked workers)."""

from __future__ import annotations

import pytest
import torch

from maest.data import randaugment as ra
from maest.data import transforms as T
from maest.data.config import DataConfig, FinetuneDataConfig
from maest.data.decode import Video, VideoDecodeError, device_failure, read_frames


@pytest.mark.parametrize("op", list(ra.OPS))
def test_every_randaugment_op_stays_on_the_frames_device(op):
    frames = torch.empty(4, 3, 32, 32, device="meta")
    out = ra.OPS[op](frames, 7.0)
    assert out.device.type == "meta" and out.shape == frames.shape


def test_rand_augment_and_normalize_on_meta_frames():
    frames = torch.empty(4, 3, 32, 32, device="meta")
    x = ra.rand_augment(frames, num_ops=len(ra.OPS), prob=1.0)
    clip = T.normalize(x)
    assert clip.device.type == "meta" and clip.shape == (3, 4, 32, 32)


def _equalize_before(x):
    """maest's equalize before GPU readiness (bincount and an ``if`` on a tensor)."""
    out = torch.empty_like(x)
    q = x.round().clamp(0, 255).long()
    for c in range(x.shape[1]):
        hist = torch.bincount(q[:, c].flatten(), minlength=256).float()
        cdf = hist.cumsum(0)
        nonzero = cdf[hist > 0]
        if nonzero.numel() == 0 or cdf[-1] == nonzero[0]:
            out[:, c] = x[:, c]
            continue
        lut = ((cdf - nonzero[0]) / (cdf[-1] - nonzero[0]) * 255).clamp(0, 255)
        out[:, c] = lut[q[:, c]]
    return out


def test_equalize_gives_the_numbers_it_gave():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 3, 16, 16, generator=g) * 200 + 20
    frames[:, 1] = 77.3  # a channel of one value is left as it is
    frames[:, 2] = frames[:, 2].round()
    torch.testing.assert_close(ra.equalize(frames, 5.0), _equalize_before(frames), rtol=0, atol=0)


def test_normalize_makes_its_statistics_once_per_device():
    frames = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    want = (frames.permute(1, 0, 2, 3).float() - 0.45 * 255) / (0.225 * 255)
    T._scaled_stats.cache_clear()
    torch.testing.assert_close(T.normalize(frames), want)
    torch.testing.assert_close(T.normalize(frames, out=torch.empty(3, 4, 8, 8)), want)
    assert T._scaled_stats.cache_info().misses == 1


def test_decode_device_takes_cuda_n_and_cuda_means_the_local_rank_under_torchrun(monkeypatch):
    assert DataConfig(decode_device="cuda:3").validate().decode_on == "cuda:3"
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert DataConfig(decode_device="cuda").decode_on == "cuda"  # alone: the current GPU
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert DataConfig(decode_device="cuda").validate().decode_on == "cuda:2"
    assert DataConfig().decode_on == "cpu"
    with pytest.raises(ValueError, match="is not cpu, cuda or cuda:N"):
        DataConfig(decode_device="gpu").validate()


def test_the_dataset_is_built_for_the_local_gpu(monkeypatch):
    import maest.data.config as config

    seen = {}
    monkeypatch.setattr(config, "dataset_from_source", lambda source, **kw: seen.update(kw))
    monkeypatch.setenv("LOCAL_RANK", "1")
    from maest.models import model_config

    FinetuneDataConfig(decode_device="cuda").build(model_config("vit_tiny_test").encoder, "test", source="x")
    assert seen["decode_device"] == "cuda:1"


class _FailingVideo(Video):
    def __init__(self, device: str, error: Exception) -> None:
        self.path, self.device, self.num_frames, self.fps, self.error = "clip.mp4", device, 10, 30.0, error

    def _decode(self, indices):
        raise self.error


@pytest.mark.parametrize("message", ["CUDA error: an illegal memory access was encountered",
                                     "Cannot re-initialize CUDA in forked subprocess",
                                     "NVDEC: no decoder for this codec"])
def test_a_gpu_failing_while_decoding_is_raised_as_itself(message):
    video = _FailingVideo("cuda:0", RuntimeError(message))
    with pytest.raises(RuntimeError, match=message.split(":")[0]) as err:
        read_frames(video, [0, 1])
    assert not isinstance(err.value, VideoDecodeError)
    assert device_failure(torch.cuda.OutOfMemoryError("oom"), "cuda")


def test_a_broken_video_is_still_a_decode_error_on_the_gpu_and_the_cpu():
    for device in ("cuda:0", "cpu"):
        with pytest.raises(VideoDecodeError):
            read_frames(_FailingVideo(device, RuntimeError("Invalid data found when processing input")), [0])
    # on the CPU a message that happens to mention CUDA is the video's problem
    assert not device_failure(RuntimeError("CUDA"), "cpu")
    assert not device_failure(RuntimeError("cannot read /data/cuda_clips/a.mp4"), "cuda", "/data/cuda_clips/a.mp4")


def test_maest_test_stops_when_the_gpu_fails_instead_of_counting_failed_videos():
    from maest.eval.test import predict_views

    class GpuDecoded(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return read_frames(_FailingVideo("cuda:0", RuntimeError("CUDA error: launch failure")), [0])

    with pytest.raises(RuntimeError, match="CUDA error"):
        predict_views(torch.nn.Identity(), GpuDecoded(), 3)


@pytest.mark.parametrize(("trained", "workers", "device", "cuda", "want"), [
    ("cpu", 0, "auto", True, "cpu"),
    ("cuda", 2, "auto", True, "cpu"),  # forked workers never decode on the GPU
    ("cuda", 0, "auto", True, "cuda"),  # in the testing process, on its GPU
    ("cuda:1", 0, "cuda", True, "cuda:1"),
    ("cuda", 0, "cpu", True, "cpu"),
    ("cuda", 0, "auto", False, "cpu"),  # a GPU-trained run tested on a CPU machine
])
def test_where_maest_test_decodes(monkeypatch, trained, workers, device, cuda, want):
    from maest.eval.test import decode_device_for_test

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert decode_device_for_test(trained, workers, device) == want
