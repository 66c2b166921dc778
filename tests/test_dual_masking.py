"""Dual masking (VideoMAE V2): encoder and decoder masks, their token counts against the official
generators, and V2's pre-training forward and loss against tests/golden/videomae_v2_tiny.pt."""

from pathlib import Path

import pytest
import torch

from maest.losses import reconstruction_loss
from maest.models.masking import (
    MaskConfig,
    decoder_mask_noise,
    decoder_num_keep,
    mask_indices,
    mask_noise,
    mask_to_noise,
    num_keep,
    running_cell_mask,
)

GOLDEN = Path(__file__).parent / "golden" / "videomae_v2_tiny.pt"


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def _grid(key: str) -> tuple[tuple[int, int, int], float]:
    size, ratio = key.split("_")
    t, h, w = map(int, size.split("x"))
    return (t, h, w), float(ratio)


def test_running_cell_masks_match_videomae_v2_for_every_offset(golden):
    for key, maps in golden["running_cell"].items():  # (4 offsets, t, h*w), 1 = masked
        grid, ratio = _grid(key)
        ours = running_cell_mask(grid, ratio, torch.arange(4)).view(4, grid[0], -1)
        assert torch.equal(ours, maps.float()), key


@pytest.mark.parametrize("strategy", ["running_cell", "run_cell"])
def test_running_cell_noise_draws_one_of_the_official_masks(golden, strategy):
    for key, maps in golden["running_cell"].items():
        grid, ratio = _grid(key)
        g = torch.Generator().manual_seed(0)
        noise = decoder_mask_noise(16, grid, strategy, generator=g)
        # the decoder keeps the tokens the running cell does not mask
        keep = decoder_num_keep(ratio, grid, strategy)
        dropped = mask_indices(noise, keep).mask.view(16, 1, -1)
        assert (dropped == maps.float().flatten(1)[None]).all(-1).any(-1).all(), key
        # the same cell as an encoder mask
        enc = mask_indices(mask_noise(16, grid, "running_cell", g), num_keep(ratio, grid, "running_cell")).mask
        assert (enc.view(16, 1, -1) == maps.float().flatten(1)[None]).all(-1).any(-1).all(), key


def test_tube_counts_follow_videomae_generator(golden):
    for key, mask in golden["tube"].items():  # one official draw, (t, h*w)
        grid, ratio = _grid(key)
        assert num_keep(ratio, grid, "tube") == int((mask == 0).sum()), key
    assert num_keep(0.9, (8, 14, 14), "tube") == 8 * 20
    assert num_keep(0.9, (8, 7, 7), "tube") == 8 * 5
    assert num_keep(0.9, (8, 14, 14), "random") == int(1568 * (1 - 0.9))  # MAE-ST's count is unchanged


def test_masks_are_reproducible_from_seeds():
    grid = (4, 4, 4)
    for strategy in ("random", "running_cell"):
        a = decoder_mask_noise(3, grid, strategy, generator=torch.Generator().manual_seed(5))
        b = decoder_mask_noise(3, grid, strategy, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
    assert decoder_mask_noise(3, grid, "none") is None
    assert decoder_num_keep(0.5, grid, "random") == 64 - 32
    assert decoder_num_keep(0.3, grid, "random") == 64 - int(0.3 * 64)


def test_mask_to_noise_replays_a_mask():
    mask = (torch.rand(3, 20) < 0.5).float()
    mask[:, 0], mask[:, 1] = 0, 1
    for b in range(3):
        m = mask_indices(mask_to_noise(mask[b:b + 1]), int((mask[b] == 0).sum())).mask
        assert torch.equal(m[0], mask[b])


@pytest.mark.parametrize("kw, msg", [
    (dict(strategy="blocks"), "model.mask.strategy='blocks' is not one of"),
    (dict(decoder="cells", decoder_ratio=0.5), "model.mask.decoder='cells' is not one of"),
    (dict(decoder="random", decoder_ratio=1.5), "must be strictly between 0 and 1"),
    (dict(decoder="random", decoder_ratio=0.0), "must be strictly between 0 and 1"),
    (dict(decoder="running_cell", decoder_ratio=0.6), "0.6 cannot be expressed by running-cell masking"),
    (dict(decoder="none", decoder_ratio=0.5), "needs a decoder mask"),
])
def test_mask_config_errors_are_one_line(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        MaskConfig(**kw).validate((8, 14, 14))
    assert "\n" not in str(e.value)


def test_running_cell_needs_an_even_grid():
    with pytest.raises(ValueError, match="even token grid; 7x7"):
        MaskConfig(decoder="running_cell", decoder_ratio=0.5).validate((8, 7, 7))
    with pytest.raises(ValueError, match="cannot be expressed"):
        num_keep(0.9, (8, 14, 14), "running_cell")


def test_loss_over_decoded_tokens_is_v2s():
    torch.manual_seed(0)
    B, L, K = 2, 12, 5
    target, mask = torch.randn(B, L, K), (torch.rand(B, L) < 0.7).float()
    ids = torch.stack([torch.randperm(L)[:6].sort().values for _ in range(B)])
    pred = torch.randn(B, 6, K)
    loss = reconstruction_loss(pred, target, mask, ids)
    # V2: labels at decoded tokens, averaged over those both masked and decoded
    t = torch.gather(target, 1, ids[..., None].expand(-1, -1, K))
    m = torch.gather(mask, 1, ids)
    expected = (((pred - t) ** 2).mean(-1) * m).sum() / m.sum()
    torch.testing.assert_close(loss, expected)
    # predictions at decoded but visible tokens do not count
    pred2 = pred.clone()
    pred2[m == 0] += 10
    torch.testing.assert_close(reconstruction_loss(pred2, target, mask, ids), loss)
