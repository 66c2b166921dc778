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


def _reference_field(vectors, height, width):
    """The codec field painted vector by vector, as maest.data.motion documents it: later references first
    (negated), then earlier ones; each block fills its 4 x 4 cells inside the frame."""
    gh, gw = -(-height // 4), -(-width // 4)
    out = np.zeros((len(vectors), 2, gh, gw), np.float32)
    for t, vs in enumerate(vectors):
        for past in (False, True):
            for v in [] if vs is None else vs:
                if (v["source"] < 0) != past:
                    continue
                scale = max(float(v["motion_scale"]), 1.0)
                sign = 1.0 if past else -1.0
                w, h = int(v["w"]), int(v["h"])
                x0, y0 = (int(v["dst_x"]) - w // 2) // 4, (int(v["dst_y"]) - h // 2) // 4
                for y in range(max(y0, 0), min(y0 + max(h // 4, 1), gh)):
                    for x in range(max(x0, 0), min(x0 + max(w // 4, 1), gw)):
                        out[t, 0, y, x] = sign * np.float32(v["motion_x"]) / np.float32(scale)
                        out[t, 1, y, x] = sign * np.float32(v["motion_y"]) / np.float32(scale)
    return torch.from_numpy(out)


def test_codec_clip_matches_a_vector_by_vector_reference(tmp_path):
    """The vectorised painting (all frames, one scatter per block shape) equals the plain loop on a decoded
    clip with B-pictures, several block shapes and a width that is not a multiple of 16 (blocks over the edge)."""
    from maest.data.decode import open_video
    from maest.data.synthetic import write_test_pattern

    p = write_test_pattern(tmp_path / "pattern.mp4", 100, 76, num_frames=40, gop=12, seed=1)
    video = open_video(p, "pyav", motion_vectors=True)
    idx = [0, 3, 5, 6, 11, 12, 13, 20, 31, 39]
    video.get_frames(idx)
    vectors = [video.vectors.get(i) for i in idx]
    got, has = M.codec_clip(vectors, video.height, video.width)
    sources = np.concatenate([v["source"] for v in vectors if v is not None])
    assert has and (sources < 0).any() and (sources > 0).any()  # both reference directions occur
    assert len({(int(v["w"]), int(v["h"])) for vs in vectors if vs is not None for v in vs}) > 1
    assert torch.equal(got, _reference_field(vectors, video.height, video.width))
    odd = vectors[1].copy()  # blocks past the painting margin (not from a real decoder) are clipped too
    odd["dst_x"][:2], odd["dst_y"][2:4], odd["w"][:4], odd["h"][:4] = (-70, 500), (-9, 90), 16, 16
    assert torch.equal(M.codec_clip([None, odd], 76, 100)[0], _reference_field([None, odd], 76, 100))
    assert M.codec_clip([None, vectors[1]], 76, 100)[1] and not M.codec_clip([vectors[1], None], 76, 100)[1]


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


@pytest.mark.parametrize("suffix, content", [(".npy", b""), (".pt", b""), (".npy", b"not numpy"),
                                             (".pt", b"PK\x03\x04 cut off")])
def test_empty_or_foreign_flow_files_are_refused_in_one_line(tmp_path, suffix, content):
    """A zero-byte, truncated or foreign flow file ends in one line naming it and the fix, no traceback."""
    from maest.data.motion import open_flow

    path = tmp_path / f"clip{suffix}"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"clip\{suffix} is not a readable flow file \({len(content)} bytes: .*"
                                         r"numpy.save or torch.save of a float \(N, 2, H, W\) array") as e:
        open_flow(path)
    assert "\n" not in str(e.value)


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


@pytest.mark.parametrize("kw", [dict(motion="codec"), dict(motion="flow", flow_dir="/tmp")])
def test_fine_tuning_refuses_data_motion(tmp_path, kw):
    from maest.data.config import FinetuneDataConfig
    from maest.train.config import FinetuneConfig

    cfg = FinetuneConfig(data=FinetuneDataConfig(source="x", **kw), train=TrainConfig(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match=rf"data.motion={kw['motion']}.* fine-tuning .* drop the setting"):
        cfg.validate()
