import contextlib

import pytest
import torch

from maest.models.masking import mask_indices, mask_noise, num_keep, random_masking
from maest.targets import pixel_target
from maest.targets.patchify import patchify, unpatchify
from maest.targets.pixels import target_frame_indices


def test_unpatchify_inverts_patchify():
    x = torch.randn(2, 3, 8, 32, 48)
    p = patchify(x, 16, 2)
    assert p.shape == (2, 4 * 2 * 3, 2 * 16 * 16 * 3)
    torch.testing.assert_close(unpatchify(p, 16, 2, (4, 2, 3)), x, rtol=0, atol=0)


def test_random_masking_keeps_smallest_noise_and_restores_order():
    x = torch.arange(2 * 10, dtype=torch.float).view(2, 10, 1)
    noise = torch.rand(2, 10)
    m = random_masking(x, 3, noise)
    assert m.visible.shape == (2, 3, 1)
    for b in range(2):
        kept = set(noise[b].argsort()[:3].tolist())
        assert set(m.ids_keep[b].tolist()) == kept
        assert set((m.mask[b] == 0).nonzero().flatten().tolist()) == kept
    # ids_restore inverts the shuffle
    shuffled = torch.gather(x, 1, noise.argsort(1).unsqueeze(-1))
    torch.testing.assert_close(torch.gather(shuffled, 1, m.ids_restore.unsqueeze(-1)), x)


@pytest.mark.parametrize("strategy", ["tube", "frame", "space", "time"])
def test_structured_strategies_keep_whole_tubes_or_frames(strategy):
    grid = (4, 3, 3)
    noise = mask_noise(5, grid, strategy, generator=torch.Generator().manual_seed(0))
    keep = num_keep(0.6, grid, strategy)
    m = random_masking(torch.zeros(5, 36, 1), keep, noise)
    mask = m.mask.view(5, 4, 9)
    if strategy in ("tube", "space"):  # the same spatial positions are removed in every time step
        assert (mask == mask[:, :1]).all()
        assert keep == (9 - int(0.6 * 9)) * 4  # VideoMAE floors the masked count per frame
    else:  # whole frames are removed
        assert (mask == mask[:, :, :1]).all()
        assert keep == int(4 * 0.4) * 9


def test_target_frames_follow_reference_truncation():
    assert target_frame_indices(16, 8).tolist() == [0, 2, 4, 6, 8, 10, 12, 15]


def test_norm_pix_target_is_standardised_per_patch():
    video = torch.rand(2, 3, 4, 32, 32) * 5 + 3
    t = pixel_target(video, 8, 1, 2, "norm_pix")
    torch.testing.assert_close(t.mean(-1), torch.zeros(t.shape[:2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(t.var(-1), torch.ones(t.shape[:2]), atol=1e-3, rtol=0)
    raw = pixel_target(video, 8, 1, 2, "pixels")
    assert raw.mean() > 3


@pytest.mark.parametrize("reference", [False, True])
def test_embedding_only_visible_patches_equals_embedding_all_then_gathering(reference):
    from maest.models.layers import reference_attention
    from maest.models.patch_embed import PatchEmbed

    torch.manual_seed(0)
    pe = PatchEmbed(img_size=32, patch_size=8, num_frames=4, t_patch_size=2, embed_dim=16)
    video = torch.randn(3, 3, 4, 32, 32)
    keep = mask_indices(torch.rand(3, pe.num_patches), 5).ids_keep
    with reference_attention() if reference else contextlib.nullcontext():
        full = pe(video)  # (B, L, D)
        visible = pe(video, keep)
    assert full.shape == (3, pe.num_patches, 16) and visible.shape == (3, 5, 16)
    torch.testing.assert_close(visible, torch.gather(full, 1, keep.unsqueeze(-1).expand(-1, -1, 16)))


def test_mask_indices_agree_with_random_masking():
    noise = torch.rand(4, 36)
    idx, m = mask_indices(noise, 9), random_masking(torch.zeros(4, 36, 2), 9, noise)
    for a, b in zip(idx, (m.mask, m.ids_restore, m.ids_keep), strict=True):
        assert torch.equal(a, b)
