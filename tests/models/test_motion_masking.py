"""Motion-guided masking (model.mask.strategy=motion): counts, the two rules, the random fallback, the
config's refusals, and exact resume (the masks are a function of (seed, step, video, clip) and the clip)."""

import pytest
import torch

from maest.models import model_config
from maest.models.masking import MaskConfig, mask_indices, mask_noise, num_keep
from maest.models.motion_masking import motion_noise
from maest.train.pretrain import masking_noise, with_motion

GRID, PATCH = (4, 4, 4), 8  # 8 frames of 32 px, tubelet 2


def _masks(noise, motion, has, rule, ratio=0.75):
    out = motion_noise(noise, motion, has, GRID, PATCH, ratio, rule)
    return mask_indices(out, num_keep(ratio, GRID, "motion")).mask.view(-1, *GRID)


def test_motion_count_is_mgmae_per_slice():
    assert num_keep(0.9, (8, 14, 14), "motion") == 19 * 8  # int(196 * 0.1) = 19; tube keeps 20
    assert num_keep(0.75, GRID, "motion") == 16


@pytest.mark.parametrize("rule", ["warp", "magnitude"])
def test_every_slice_keeps_the_same_count(rule):
    g = torch.Generator().manual_seed(0)
    motion = torch.randn(3, 8, 2, 32, 32, generator=g) * 3
    m = _masks(torch.rand(3, 64, generator=g), motion, torch.ones(3, dtype=torch.bool), rule)
    assert ((1 - m).sum((2, 3)) == 4).all()


def test_warp_without_motion_is_a_tube():
    """A still clip: the base frame's mask stays put, so each token is masked in every slice or in none."""
    m = _masks(torch.rand(2, 64), torch.zeros(2, 8, 2, 32, 32), torch.ones(2, dtype=torch.bool), "warp")
    assert (m == m[:, :1]).all()


def test_warp_follows_a_translation():
    """Content moving right one token (8 px) per slice: the visible tokens move right with it."""
    motion = torch.zeros(1, 8, 2, 32, 32)
    motion[:, 1:, 0] = -4.0  # pixel x of frame t came from x - 4 of frame t - 1: 8 px per 2-frame slice
    noise = torch.rand(1, 64)
    m = _masks(noise, motion, torch.ones(1, dtype=torch.bool), "warp")[0]
    vis2, vis3 = (1 - m[2]).nonzero().tolist(), (1 - m[3]).nonzero().tolist()
    shifted = {(r, c + 1) for r, c in vis2 if c + 1 < 4}
    assert shifted <= set(map(tuple, vis3))


def test_magnitude_masks_the_moving_tokens():
    motion = torch.zeros(1, 8, 2, 32, 32)
    motion[:, 1:, :, :16, :16] = 5.0  # the top-left 2x2 tokens move
    m = _masks(torch.rand(1, 64), motion, torch.ones(1, dtype=torch.bool), "magnitude")[0]
    assert (m[:, :2, :2] == 1).all()  # masked in every slice (the first slice through its second frame)


def test_clips_without_motion_fall_back_to_random_masking_with_the_same_count():
    noise = torch.rand(2, 64)
    has = torch.tensor([True, False])
    out = motion_noise(noise, torch.randn(2, 8, 2, 32, 32), has, GRID, PATCH, 0.75, "warp")
    keep = num_keep(0.75, GRID, "motion")
    got = mask_indices(out, keep).mask
    want = mask_indices(noise, keep).mask
    assert torch.equal(got[1], want[1]) and got.sum(1).tolist() == [48, 48]


def test_bad_motion_shape_and_rule_are_refused():
    with pytest.raises(ValueError, match="does not fit"):
        motion_noise(torch.rand(1, 64), torch.zeros(1, 8, 2, 12, 12), torch.ones(1, dtype=torch.bool), GRID, PATCH,
                     0.75)
    with pytest.raises(ValueError, match="model.mask.motion_rule='flow'"):
        MaskConfig(strategy="motion", motion_rule="flow").validate()


def test_motion_noise_random_part_is_uniform():
    assert mask_noise(2, GRID, "motion", generator=torch.Generator().manual_seed(0)).shape == (2, 64)


def _tiny_motion_model(rule="warp"):
    cfg = model_config("mae_vit_tiny_test")
    cfg.mask = MaskConfig(strategy="motion", ratio=0.75, motion_rule=rule)
    return cfg.build()


@pytest.mark.parametrize("rule", ["warp", "magnitude"])
def test_resume_masks_identically_for_the_same_seed_step_video_clip(rule):
    """The masks of a clip depend on (seed, step, video, clip) and its motion field only: the same clips in
    another batch order (another process split, a resumed run) get the same masks."""
    model = _tiny_motion_model(rule)
    g = torch.Generator().manual_seed(3)
    motion = torch.randn(4, 4, 2, 32, 32, generator=g) * 4
    index = torch.tensor([7, 7, 2, 9])
    batch = {"motion": motion, "has_motion": torch.tensor([True, True, True, False]), "index": index}
    a = with_motion(model, masking_noise(model, index, 0, 11), batch, "cpu")
    b = with_motion(model, masking_noise(model, index, 0, 11), batch, "cpu")
    assert torch.equal(a, b)
    # the last two clips alone, as another rank would see them
    part = {"motion": motion[2:], "has_motion": batch["has_motion"][2:], "index": index[2:]}
    c = with_motion(model, masking_noise(model, index[2:], 0, 11), part, "cpu")
    keep = num_keep(0.75, model.grid, "motion")
    assert torch.equal(mask_indices(a[2:], keep).mask, mask_indices(c, keep).mask)
    d = with_motion(model, masking_noise(model, index, 0, 12), batch, "cpu")  # another step: other masks
    assert not torch.equal(mask_indices(a, keep).mask, mask_indices(d, keep).mask)
    out = model(torch.randn(4, 3, 4, 32, 32), noise=a)
    assert out.mask.sum(1).tolist() == [32 - keep] * 4
