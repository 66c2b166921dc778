"""Clip augmentations: one box / op / magnitude for all frames, bounds, crops, normalisation."""

import numpy as np
import pytest
import torch

from maest.data import ClipSpec, VideoClipDataset
from maest.data import transforms as T
from maest.data.randaugment import OPS, rand_augment
from maest.data.sampling import train_clips, uniform_clips


def _static_clip(t=6, h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=g).expand(t, -1, -1, -1)


# erasing is left out here: its box is shared but its noise is drawn per frame, as the reference's cube mode
@pytest.mark.parametrize("mode, extra", [("pretrain", {}), ("finetune", dict(rand_aug=True))])
def test_identical_frames_stay_identical_through_training_augmentation(mode, extra):
    ds = VideoClipDataset([], ClipSpec(mode=mode, crop_size=32, **extra))
    for seed in range(20):
        torch.manual_seed(seed)
        clip = ds._train_view(_static_clip(seed=seed))  # (C, T, H, W)
        assert clip.shape == (3, 6, 32, 32) and clip.dtype == torch.float32
        assert all(torch.equal(clip[:, 0], clip[:, i]) for i in range(1, 6))


def test_rrc_box_within_bounds_and_scale():
    torch.manual_seed(0)
    for scale, (h, w) in [((0.5, 1.0), (48, 64)), ((0.08, 1.0), (256, 340)), ((0.08, 1.0), (64, 20))]:
        for _ in range(200):
            top, left, bh, bw = T.rrc_box(h, w, scale, (3 / 4, 4 / 3))
            assert 0 <= top and 0 <= left and top + bh <= h and left + bw <= w and bh > 0 and bw > 0
    # a tall frame cannot fit the aspect range often: the fallback is a centred crop clamped to the range
    top, left, bh, bw = T.rrc_box(200, 10, (0.9, 1.0), (3 / 4, 4 / 3))
    assert (left, bw) == (0, 10) and bh == round(10 / 0.75) and top == (200 - bh) // 2


def test_short_side_resize_and_three_crops():
    land = torch.arange(40 * 80, dtype=torch.float32).view(1, 1, 40, 80).expand(2, 3, -1, -1)
    r = T.short_side_resize(land, 20)
    assert r.shape == (2, 3, 20, 40)
    crops = [T.uniform_crop(r, 20, i) for i in range(3)]
    assert [c.shape[-2:] for c in crops] == [(20, 20)] * 3
    assert torch.equal(crops[0], r[..., :20]) and torch.equal(crops[1], r[..., 10:30]) and torch.equal(
        crops[2], r[..., 20:])
    port = T.short_side_resize(land.transpose(-1, -2), 20)
    assert port.shape == (2, 3, 40, 20)
    assert torch.equal(T.uniform_crop(port, 20, 2), port[..., 20:, :])  # portrait: bottom


def test_normalisation_values():
    x = torch.tensor([0.0, 0.45 * 255, 255.0]).view(1, 1, 1, 3).expand(2, 3, 1, 3)
    out = T.normalize(x)
    assert out.shape == (3, 2, 1, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([-2.0, 0.0, 0.55 / 0.225]))


def test_flip_and_erasing_share_the_box_across_frames():
    clip = _static_clip().float()
    flipped = T.random_flip(clip, p=1.0)
    assert torch.equal(flipped, clip.flip(-1))
    torch.manual_seed(1)
    erased = T.random_erasing(T.normalize(clip), p=1.0)
    changed = erased != T.normalize(clip)
    assert changed.any() and all(torch.equal(changed[:, 0], changed[:, i]) for i in range(6))
    assert torch.equal(T.random_erasing(T.normalize(clip), p=0.0), T.normalize(clip))


def test_rand_augment_ops_change_pixels_in_range():
    torch.manual_seed(0)
    clip = _static_clip().float()
    changed = 0
    for name, op in OPS.items():
        out = op(clip, 9.0)
        assert out.shape == clip.shape and 0 <= out.min() and out.max() <= 255, name
        assert all(torch.allclose(out[0], out[i]) for i in range(6)), name
        changed += not torch.allclose(out, clip)
    assert changed >= len(OPS) - 2  # identity (and maybe equalize on uniform noise) are no-ops
    out = rand_augment(clip, num_ops=2, magnitude=7, mstd=0.5, prob=1.0)
    assert out.shape == clip.shape


def test_sampling_endpoints_and_generators():
    clips = uniform_clips(300, 16, 4, 30.0, 10)
    assert clips[0][0] == 0 and clips[-1][-1] == 299
    for make in (lambda: torch.Generator().manual_seed(3), lambda: np.random.default_rng(3)):
        a, b = train_clips(300, 16, 4, 30.0, 4, make()), train_clips(300, 16, 4, 30.0, 4, make())
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert len({int(c[0]) for c in a}) > 1  # independent starts per repeat
        assert all(c.min() >= 0 and c.max() <= 299 for c in a)
    one = train_clips(1, 16, 4, 30.0, 2)
    assert all(c.tolist() == [0] * 16 for c in one)
    with pytest.raises(ValueError):
        train_clips(0, 16, 4, 30.0, 1)
