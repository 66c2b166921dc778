"""``data.transfer=uint8``: clips travel as uint8 and are normalised on the device. The same clips as
``float32``: bit for bit where the host pipeline is integer (pre-training, val/test), within the one rounding
of RandAugment's float output (0.5 grey level) in fine-tuning, random erasing's boxes exact; 4x fewer bytes;
the statistics made once per job, not copied per clip; resume exact; every job takes uint8 batches."""

from __future__ import annotations

import pytest
import torch

from maest.data import VideoClipDataset, collate_clips
from maest.data import transforms as T
from maest.data.config import DataConfig, FinetuneDataConfig
from maest.data.datasets import ClipSpec
from maest.data.transfer import DeviceInput
from maest.overrides import apply_overrides

from ..helpers import _cfg

SPEC = dict(num_frames=8, sampling_rate=2, crop_size=32, seed=0)
ROUNDING = 0.5 / (255 * 0.225) + 1e-5  # half a grey level in normalised units (+ float32's own rounding)


def _pair(digits, **kw):
    items = VideoClipDataset.from_csv(digits["train"]).items[:4]
    return (VideoClipDataset(items, ClipSpec(transfer="float32", **SPEC, **kw)),
            VideoClipDataset(items, ClipSpec(transfer="uint8", **SPEC, **kw)))


def _batches(ds, n=4):
    return collate_clips([ds[i] for i in range(n)])


@pytest.mark.parametrize("mode", ["pretrain", "val", "test"])
def test_integer_pipelines_give_the_float32_numbers_bit_for_bit(digits, mode):
    f32, u8 = _pair(digits, mode=mode, repeat=2)
    a, b = _batches(f32), _batches(u8)
    assert a["video"].dtype == torch.float32 and b["video"].dtype == torch.uint8
    assert b["video"].element_size() * b["video"].numel() * 4 == a["video"].element_size() * a["video"].numel()
    torch.testing.assert_close(DeviceInput.of(u8, "cpu")(b), a["video"], rtol=0, atol=0)
    assert DeviceInput.of(f32, "cpu")(a) is a["video"]  # float32 batches pass as they are


@pytest.mark.parametrize("erase_prob", [0.25, 1.0])
def test_finetune_rounds_once_after_randaugment_and_erases_exactly(digits, erase_prob):
    f32, u8 = _pair(digits, mode="finetune", repeat=2, rand_aug=True, erase_prob=erase_prob)
    a, b = _batches(f32), _batches(u8)
    x = DeviceInput.of(u8, "cpu")(b)
    diff = (x - a["video"]).abs()
    assert diff.max() <= ROUNDING and diff.max() > 0  # RandAugment's float output, rounded once
    erased = b["erase"]
    assert erased.shape == (8, 4) and (erased[:, 2] > 0).sum() >= (8 if erase_prob == 1 else 1)
    for clip, ref, (top, left, h, w) in zip(x, a["video"], erased.tolist(), strict=True):
        if h:  # the noise written after normalisation, as the host writes it
            torch.testing.assert_close(clip[:, :, top:top + h, left:left + w], ref[:, :, top:top + h, left:left + w],
                                       rtol=0, atol=0)


def test_the_device_step_keeps_its_statistics_and_moves_only_the_clips(digits, monkeypatch):
    _, u8 = _pair(digits, mode="finetune", repeat=2, erase_prob=1.0)
    batch = _batches(u8)
    T._scaled_stats.cache_clear()
    step = DeviceInput.of(u8, "meta")
    moved = []
    original = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: moved.append(self.shape) or original(self, *a, **k))
    for _ in range(3):
        x = step(batch)
        assert x.device.type == "meta" and x.dtype == torch.float32 and x.shape == batch["video"].shape
    assert T._scaled_stats.cache_info().misses == 1  # made on the device once, for every batch
    assert moved == [batch["video"].shape, batch["erase_noise"].shape] * 3  # the clips and the erased values


def test_transfer_is_validated_in_one_line():
    with pytest.raises(ValueError, match=r"data.transfer='fp16' is not one of float32, uint8"):
        DataConfig(transfer="fp16").validate()
    with pytest.raises(ValueError, match="is not one of float32, uint8"):
        ClipSpec(transfer="int8")
    with pytest.raises(ValueError, match="data.decode_threads=-1 must be >= 0"):
        DataConfig(decode_threads=-1).validate()


def test_the_data_config_builds_uint8_datasets(digits):
    enc = _cfg("unused").model.encoder
    assert DataConfig(source=str(digits["train"]), transfer="uint8").build(enc).spec.transfer == "uint8"
    ft = FinetuneDataConfig(source=str(digits["train"]), val_source=str(digits["val"]), transfer="uint8")
    assert ft.build(enc, "val").spec.transfer == "uint8"


def test_pretraining_on_uint8_clips_matches_float32_and_resumes_exactly(digits, tmp_path):
    from maest.runs.metrics import read_metrics
    from maest.train.pretrain import run

    src = [f"data.source={digits['train']}", "data.num_workers=0"]

    def losses(out):
        return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]

    run(_cfg(tmp_path / "f32", *src, "train.max_steps=4"))
    run(_cfg(tmp_path / "full", *src, "data.transfer=uint8", "train.max_steps=4"))
    run(_cfg(tmp_path / "split", *src, "data.transfer=uint8", "train.max_steps=2", "train.save_every_steps=2"))
    run(_cfg(tmp_path / "split", *src, "data.transfer=uint8", "train.max_steps=4", "train.resume=auto"))
    assert len(losses(tmp_path / "full")) == 4
    assert losses(tmp_path / "full") == losses(tmp_path / "split") == losses(tmp_path / "f32")


def test_finetuning_on_uint8_clips_runs_and_resumes_exactly(digits, tmp_path):
    from maest.runs.metrics import read_metrics
    from maest.train.finetune import run
    from maest.train.recipes import get_finetune_preset

    def cfg(out, *extra):
        return apply_overrides(get_finetune_preset("tiny_finetune"), [
            f"train.output_dir={out}", "train.tensorboard=false", "train.progress=false", "train.log_every=1",
            f"data.source={digits['train']}", "data.transfer=uint8", "model.num_classes=10", *extra])

    def losses(out):
        return [r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]

    run(cfg(tmp_path / "full", "train.max_steps=4"))
    run(cfg(tmp_path / "split", "train.max_steps=2", "train.save_every_steps=2"))
    run(cfg(tmp_path / "split", "train.max_steps=4", "train.resume=auto"))
    assert len(losses(tmp_path / "full")) == 4 and losses(tmp_path / "full") == losses(tmp_path / "split")


def test_test_predict_and_features_take_uint8_batches(digits):
    from maest.eval.features import extract
    from maest.eval.test import predict_views
    from maest.models import create_model

    torch.manual_seed(0)
    clf = create_model("vit_tiny_test", num_classes=10).eval()
    items = VideoClipDataset.from_csv(digits["val"]).items
    spec = dict(mode="test", num_frames=4, sampling_rate=2, crop_size=32, test_clips=2, test_crops=3)
    f32 = VideoClipDataset(items, ClipSpec(**spec))
    u8 = VideoClipDataset(items, ClipSpec(transfer="uint8", **spec))
    a = predict_views(clf, f32, 10, batch_size=2)[0].mean_scores()[0]
    b = predict_views(clf, u8, 10, batch_size=2)[0].mean_scores()[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # maest test, maest predict and validation
    fa, fb = extract(clf, f32, "mean", progress=False)[0], extract(clf, u8, "mean", progress=False)[0]
    assert fa.shape[0] == len(items) * 6 and (fa == fb).all()
