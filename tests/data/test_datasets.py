import json

import pytest
import torch

from maest.data import (
    ClipSpec,
    ShardedSampler,
    VideoClipDataset,
    dataset_from_source,
    read_csv_list,
    read_ssv2,
)
from maest.data.transforms import MEAN, STD, normalize, random_resized_crop, rrc_box


def _spec(mode, **kw):
    return dict(mode=mode, num_frames=8, sampling_rate=2, crop_size=32, repeat=2, **kw)


@pytest.mark.parametrize(
    "mode, views", [("pretrain", 2), ("finetune", 2), ("val", 1), ("test", 6)],
)
def test_item_shapes_in_every_mode(digits, mode, views):
    extra = dict(rand_aug=True, erase_prob=1.0) if mode == "finetune" else {}
    extra.update(test_clips=2) if mode == "test" else None
    ds = dataset_from_source(digits["train"], **_spec(mode, **extra))
    item = ds[0]
    assert item["video"].shape == (views, 3, 8, 32, 32) and item["video"].dtype == torch.float32
    assert item["label"].shape == (views,) and item["skipped"] == []
    assert torch.isfinite(item["video"]).all()
    if mode == "test":
        assert item["view"].tolist() == [0, 1, 2, 3, 4, 5]


def test_list_formats_and_layouts(tmp_path, digits):
    videos = sorted((digits["root"] / "videos").glob("*.mp4"))
    (tmp_path / "a.csv").write_text(f"path,label\n{videos[0]},3\n{videos[1]},4\n")
    (tmp_path / "b.txt").write_text(f"{videos[0]} 3\n\n# comment\n{videos[1]}   4\n")
    assert read_csv_list(tmp_path / "a.csv") == read_csv_list(tmp_path / "b.txt") == [(str(videos[0]), 3),
                                                                                    (str(videos[1]), 4)]
    rel = read_csv_list(digits["train"])
    assert all(p.startswith(str(digits["root"])) for p, _ in rel)  # resolved against the list's folder
    (tmp_path / "bad.csv").write_text(f"{videos[0]} three\n{videos[1]} x\n")
    with pytest.raises(ValueError, match="bad.csv:2: label 'x' is not an integer"):
        read_csv_list(tmp_path / "bad.csv")
    # class folders and an unlabelled folder
    for cls, v in (("walk", videos[0]), ("run", videos[1]), ("run", videos[2])):
        (tmp_path / "tree" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / cls / v.name).write_bytes(v.read_bytes())
    tree = dataset_from_source(tmp_path / "tree")
    assert tree.classes == ["run", "walk"] and sorted(lbl for _, lbl in tree.items) == [0, 0, 1]
    flat = dataset_from_source(tmp_path / "tree" / "run")
    assert [lbl for _, lbl in flat.items] == [-1, -1]


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="data source .*nowhere does not exist"):
        dataset_from_source(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no videos"):
        dataset_from_source(tmp_path / "empty")


def test_ssv2_labels(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"Pushing something from left to right": "7"}))
    (tmp_path / "train.json").write_text(json.dumps(
        [{"id": "42", "template": "Pushing [something] from left to right", "label": "pushing a cup"}]))
    assert read_ssv2(tmp_path / "v", tmp_path / "labels.json", tmp_path / "train.json") == [
        (str(tmp_path / "v" / "42.webm"), 7)]


def test_augmentation_uses_one_box_for_all_frames():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (1, 3, 48, 64), dtype=torch.uint8)
    clip = frame.expand(6, -1, -1, -1)
    out = random_resized_crop(clip, 32)
    assert out.shape == (6, 3, 32, 32)
    assert all(torch.equal(out[0], out[i]) for i in range(6))
    for _ in range(50):
        top, left, h, w = rrc_box(48, 64, (0.5, 1.0), (3 / 4, 4 / 3))
        assert top >= 0 and left >= 0 and top + h <= 48 and left + w <= 64
        assert 0.45 <= h * w / (48 * 64) <= 1.0


def test_rand_augment_and_erasing_keep_frames_identical(digits):
    from maest.data.randaugment import OPS

    clip = torch.rand(1, 3, 32, 32).expand(4, -1, -1, -1) * 255
    for name, op in OPS.items():
        out = op(clip, 7.0)
        assert out.shape == clip.shape and all(torch.allclose(out[0], out[i]) for i in range(4)), name
        assert out.min() >= 0 and out.max() <= 255, name
    from maest.data.transforms import random_erasing

    erased = random_erasing(torch.zeros(3, 4, 32, 32), p=1.0)
    assert (erased != 0).any() and torch.equal(erased[:, 0] != 0, erased[:, 3] != 0)


def test_normalisation_constants():
    x = normalize(torch.full((2, 3, 4, 4), 0.45 * 255))
    assert x.shape == (3, 2, 4, 4) and x.abs().max() < 1e-5
    assert MEAN == (0.45,) * 3 and STD == (0.225,) * 3


def test_sampler_shards_disjointly_and_resumes():
    a, b = ShardedSampler(11, seed=3, rank=0, world=2), ShardedSampler(11, seed=3, rank=1, world=2)
    ia, ib = list(a), list(b)
    assert len(ia) == len(ib) == 6 and set(ia) | set(ib) == set(range(11))
    a.set_epoch(1)
    assert list(a) != ia
    a.set_epoch(1, start=2)
    full = ShardedSampler(11, seed=3, rank=0, world=2)
    full.set_epoch(1)
    assert list(a) == list(full)[2:] and len(a) == 4


def test_all_broken_gives_a_clear_error(corrupt_corpus):
    _, bad = corrupt_corpus
    ds = VideoClipDataset([(p, 0) for p in bad], ClipSpec(**_spec("pretrain", max_retries=3)))
    with pytest.raises(RuntimeError, match="4 videos in a row could not be decoded"):
        ds[0]


def test_factories(tmp_path, digits):
    from maest.data import VideoClipDataset

    ds = VideoClipDataset.from_csv(digits["train"], mode="val", num_frames=4, crop_size=32)
    assert len(ds) == 8 and ds.spec.crop_size == 32 and ds[0]["video"].shape == (1, 3, 4, 32, 32)
    videos = sorted((digits["root"] / "videos").glob("*.mp4"))
    for cls, v in (("b_walk", videos[0]), ("a_run", videos[1]), ("a_run", videos[2])):
        (tmp_path / "tree" / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / cls / v.name).write_bytes(v.read_bytes())
    tree = VideoClipDataset.from_folder_per_class(tmp_path / "tree", ClipSpec(mode="val"))
    assert tree.classes == ["a_run", "b_walk"] and [lbl for _, lbl in tree.items] == [0, 0, 1]
    flat = VideoClipDataset.from_unlabelled_folder(tmp_path / "tree")
    assert len(flat) == 3 and {lbl for _, lbl in flat.items} == {-1}
    (tmp_path / "labels.json").write_text(json.dumps({"Holding something": "1", "Pushing something left": "0"}))
    (tmp_path / "val.json").write_text(json.dumps([
        {"id": "5", "template": "Holding [something]", "label": "holding a pen", "placeholders": ["pen"]},
        {"id": "9", "template": "Pushing [something] left", "label": "pushing a cup left"}]))
    ss = VideoClipDataset.from_ssv2_json(tmp_path / "vids", tmp_path / "labels.json", tmp_path / "val.json",
                                         mode="test")
    assert ss.items == [(str(tmp_path / "vids" / "5.webm"), 1), (str(tmp_path / "vids" / "9.webm"), 0)]
    assert ss.classes == ["Pushing something left", "Holding something"]
    with pytest.raises(TypeError):
        VideoClipDataset([], ClipSpec(), mode="val")


def test_val_and_test_do_not_substitute_broken_videos(corrupt_corpus):
    from maest.data import VideoDecodeError
    from maest.data.loader import GuardedVideos, collate_guarded

    _, bad = corrupt_corpus
    for mode in ("val", "test"):
        ds = VideoClipDataset([(bad[0], 1)], ClipSpec(mode=mode, num_frames=4, crop_size=32, test_clips=2))
        with pytest.raises(VideoDecodeError, match="cannot decode"):
            ds[0]
        out = collate_guarded([GuardedVideos(ds, [0])[0]])
        assert out["failed"] and bad[0] in out["failed"][0] and "video" not in out


def test_seeded_items_are_reproducible(digits):
    from maest.data import VideoClipDataset

    make = lambda: VideoClipDataset.from_csv(digits["train"], mode="finetune", num_frames=4, crop_size=32,  # noqa: E731
                                             repeat=2, rand_aug=True, erase_prob=0.5, seed=7)
    a, b = make(), make()
    torch.manual_seed(123)
    x = a[2]["video"]
    torch.manual_seed(456)
    assert torch.equal(x, b[2]["video"])
    b.set_epoch(1)
    assert not torch.equal(x, b[2]["video"])
