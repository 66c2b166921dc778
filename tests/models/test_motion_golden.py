"""Motion-guided masking against MGMAE's own code (tests/golden/mgmae_masks.pt, made by
tests/golden/make_mgmae_golden.py): the base map and the warped masks match exactly."""

from pathlib import Path

import pytest
import torch

from maest.models.masking import mask_indices, num_keep
from maest.models.motion_masking import gaussian_base_map, motion_noise, warp_mask

GOLDEN = Path(__file__).parents[1] / "golden" / "mgmae_masks.pt"


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN.name} is missing (regenerate with tests/golden/make_mgmae_golden.py)")
    return torch.load(GOLDEN, weights_only=True)


def _cases(golden):
    return sorted(golden["cases"].items())


def test_golden_holds_every_case(golden):
    assert len(golden["cases"]) == 4 and len(golden["commit"]) == 40


def test_base_map_matches_mgmae(golden):
    for name, c in _cases(golden):
        t, h, w = c["grid"]
        n = h * w - int(c["config"]["ratio"] * h * w)
        got = gaussian_base_map(c["base_noise"].argsort(dim=1)[:, :n], (h, w), c["config"]["patch"])
        assert torch.equal(got, c["init_mask_map"]), name


def test_warped_masks_match_mgmae(golden):
    for name, c in _cases(golden):
        cfg = c["config"]
        got = warp_mask(c["flow"].float(), c["base_noise"], tuple(c["grid"]), cfg["patch"], cfg["ratio"])
        assert torch.equal(got.bool(), c["mask"]), name


def test_noise_interface_replays_mgmae(golden):
    """Through the noise API: the random part's first h*w values are the base order; the model keeps
    exactly MGMAE's visible tokens."""
    for name, c in _cases(golden):
        cfg, grid = c["config"], tuple(c["grid"])
        B, L = c["mask"].shape
        noise = torch.rand(B, L)
        noise[:, : grid[1] * grid[2]] = c["base_noise"]
        out = motion_noise(noise, c["flow"].float(), torch.ones(B, dtype=torch.bool), grid, cfg["patch"],
                           cfg["ratio"], "warp")
        idx = mask_indices(out, num_keep(cfg["ratio"], grid, "motion"))
        assert torch.equal(idx.mask.bool(), c["mask"]), name
