"""Motion fields in the batch (data.motion): codec motion vectors from the PyAV decode pass, user flow files,
their crop/resize with the clip, the intra-only fallback, and the one-line refusals."""

import numpy as np
import pytest
import torch

from maest.data import motion as M
from maest.data.config import DataConfig
from maest.data.datasets import ClipSpec, VideoClipDataset
from maest.data.synthetic import encode_mp4
from maest.models import model_config
from maest.train.config import PretrainConfig, TrainConfig

SPEC = dict(mode="pretrain", num_frames=4, sampling_rate=2, crop_size=32, repeat=2, scale=(1.0, 1.0),
            aspect=(1.0, 1.0), flip=False, seed=0)


def _panning(path, gop=30, frames=24, step=2):
    """A textured scene panning: the content moves left ``step`` px per frame (64 x 64)."""
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (8, 8 + frames * step // 8 + 2, 3), dtype=np.uint8)
    scene = np.kron(scene, np.ones((8, 8, 1), np.uint8))
    video = np.stack([scene[:, t * step:t * step + 64] for t in range(frames)])
    return encode_mp4(video, path, gop=gop)


def test_codec_fields_point_back_along_the_motion(tmp_path):
    p = _panning(tmp_path / "pan.mp4")
    ds = VideoClipDataset([(str(p), -1)], ClipSpec(motion="codec", **SPEC))
    item = ds[0]
    assert item["motion"].shape == (2, 4, 2, 8, 8) and item["has_motion"].all() and item["no_motion"] == []
    u = item["motion"][:, 1:, 0]  # pixel x came from x + u: content moving left -> u > 0 (scaled by 32/64)
    assert (u.mean((-1, -2)) > 0.4).all() and item["motion"][:, 1:, 1].abs().mean() < 0.2


def test_intra_only_videos_fall_back_and_are_listed(tmp_path):
    p = _panning(tmp_path / "intra.mp4", gop=1)
    item = VideoClipDataset([(str(p), -1)], ClipSpec(motion="codec", **SPEC))[0]
    assert not item["has_motion"].any() and item["no_motion"] == [str(p)] * 2


def test_flow_files_sum_over_the_stride_and_follow_the_crop(tmp_path):
    p = _panning(tmp_path / "pan.mp4")
    flows = tmp_path / "flow"
    flows.mkdir()
    f = np.zeros((24, 2, 64, 64), np.float32)
    f[:, 0] = 2.0  # every frame: content came from 2 px to the right
    np.save(flows / "pan.npy", f)
    item = VideoClipDataset([(str(p), -1)], ClipSpec(motion="flow", flow_dir=str(flows), **SPEC))[0]
    m = item["motion"]
    # the frames between clip frames (the stride, rescaled to 15 fps by the sampler) x 2 px, halved by the resize
    assert torch.unique(m[:, 1:, 0]).tolist() in ([1.0], [2.0]) and (m[:, 0] == 0).all() and (m[:, :, 1] == 0).all()
    torch.save(torch.from_numpy(f[1:]), flows / "pan.pt")  # N - 1 frames, as .pt (the .npy wins; check both)
    (flows / "pan.npy").unlink()
    m2 = VideoClipDataset([(str(p), -1)], ClipSpec(motion="flow", flow_dir=str(flows), **SPEC))[0]["motion"]
    assert torch.allclose(m, m2)


def test_flip_negates_x():
    m = torch.zeros(1, 2, 4, 4)
    m[:, 0, :, :2] = 3.0
    out = M.flip(m)
    assert (out[:, 0, :, 2:] == -3.0).all() and (out[:, 0, :, :2] == 0).all()


def test_bad_flow_files_are_refused_in_one_line(tmp_path, digits):
    flows = tmp_path / "flow"
    flows.mkdir()
    cfg = DataConfig(source=str(digits["train"]), motion="flow", flow_dir=str(flows))
    enc = model_config("mae_vit_tiny_test").encoder
    with pytest.raises(FileNotFoundError, match=r"data.motion=flow: no .*\.npy or .*\.pt in data.flow_dir"):
        cfg.validate().build(enc)
    for path, _ in VideoClipDataset.from_csv(digits["train"]).items:
        np.save(flows / f"{path.rsplit('/', 1)[-1][:-4]}.npy", np.zeros((10, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"has shape \(10, 3, 64, 64\) .*a flow file holds float \(N, 2, H, W\)"):
        cfg.build(enc)


@pytest.mark.parametrize("kw, match", [
    (dict(motion="codec", backend="torchcodec"), "torchcodec .* offers none: set data.backend=pyav"),
    (dict(motion="flow", flow_dir="/nonexistent"), "needs data.flow_dir"),
    (dict(motion="optical"), "data.motion"),
    (dict(flow_dir="/tmp"), "read only with data.motion=flow"),
])
def test_data_motion_refusals(kw, match):
    with pytest.raises(ValueError, match=match):
        DataConfig(**kw).validate()


def test_motion_strategy_needs_a_motion_source(tmp_path):
    model = model_config("mae_vit_digits_motion")
    cfg = PretrainConfig(model=model, data=DataConfig(source="x"), train=TrainConfig(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="strategy=motion .* data.motion=none supplies none"):
        cfg.validate()
    cfg = PretrainConfig(data=DataConfig(source="x", motion="codec"), train=TrainConfig(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="data.motion=codec is read only by model.mask.strategy=motion"):
        cfg.validate()


def test_pretrain_cli_with_codec_motion_counts_the_fallback(tmp_path, capsys):
    import json

    from maest.cli import main
    from maest.runs.metrics import read_metrics

    moving, intra = _panning(tmp_path / "pan.mp4"), _panning(tmp_path / "intra.mp4", gop=1)
    (tmp_path / "list.csv").write_text(f"{moving}\n{intra}\n")
    out = tmp_path / "run"
    args = ["pretrain", str(tmp_path / "list.csv"), "--preset", "tiny", "--output-dir", str(out), "--json",
            "--set", "model.mask.strategy=motion", "--set", "model.mask.ratio=0.75", "--set", "data.motion=codec",
            "--set", "train.epochs=1", "--set", "data.num_workers=0", "--set", "train.tensorboard=false",
            "--set", "train.progress=false", "--set", "data.repeat_aug=3"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    repeat = 3  # every clip of the intra-only video
    assert summary["motion_fallback"] == repeat
    per_epoch = [r["motion_fallback_clips"] for r in read_metrics(out / "metrics.jsonl") if "epoch_end" in r]
    assert per_epoch == [repeat]
