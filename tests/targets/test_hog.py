"""MaskFeat HOG targets against SlowFast's own (tests/golden/slowfast_hog.pt, see tests/golden/README.md)."""

from pathlib import Path

import pytest
import torch

from maest.targets import TargetConfig, hog_histograms, hog_target, make_target, target_dim

GOLDEN = Path(__file__).parents[1] / "golden" / "slowfast_hog.pt"


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def test_hog_layer_matches_slowfast(golden):
    out = hog_histograms(golden["image"], golden["nbins"], golden["cell"])
    torch.testing.assert_close(out, golden["hog_image"])


def test_hog_token_labels_match_slowfast_maskfeat(golden):
    # MaskMViT._get_hog_label_3d: first frame of each 2-frame tube, 16 px patches of 8 px cells
    video = golden["input"]
    frames = video.shape[2] // golden["t_patch_size"]
    out = hog_target(video, golden["patch_size"], frames, golden["nbins"], golden["cell"])
    torch.testing.assert_close(out, golden["labels"])
    cfg = TargetConfig(kind="hog")
    torch.testing.assert_close(make_target(video, cfg, (16, 1, frames)), golden["labels"])
    assert out.shape[-1] == target_dim(cfg, 16, 1) == 108


def test_hog_ignores_brightness_and_is_unit_norm_per_cell():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 24)
    h = hog_histograms(x)
    torch.testing.assert_close(hog_histograms(x + 3.0), h, atol=1e-5, rtol=1e-5)  # gradients only
    norms = h.norm(dim=2)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    # an edge turned by 90 degrees moves its votes to another bin
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 8:] = 1.0
    vertical, horizontal = hog_histograms(edge)[0, 0], hog_histograms(edge.transpose(2, 3))[0, 0]
    assert vertical.sum((1, 2)).argmax() != horizontal.sum((1, 2)).argmax()


def test_hog_is_computed_in_fp32_under_autocast():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hog_target(x, 16, 2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, hog_target(x, 16, 2))


@pytest.mark.parametrize("kw, msg", [(dict(kind="hug"), "model.target.kind='hug' is not one of"),
                                     (dict(kind="hog", hog_cell=6), "does not divide the patch size 16")])
def test_target_config_errors_are_one_line(kw, msg):
    with pytest.raises(ValueError, match=msg) as e:
        TargetConfig(**kw).validate(16)
    assert "\n" not in str(e.value)


def test_hog_needs_one_frame_per_token():
    with pytest.raises(ValueError, match="t_pred_patch_size=1"):
        target_dim(TargetConfig(kind="hog"), 16, 2)


def test_hog_reconstruction_figure_says_there_are_no_pixels(tmp_path):
    from maest.figures.reconstruction import HOG_CAPTION, default_rows, grid_image, reconstruct, save_gif
    from maest.models import model_config

    cfg = model_config("tiny")
    cfg.target = TargetConfig(kind="hog")
    panels = reconstruct(cfg.build(), torch.randn(3, 4, 32, 32), mask_ratio=0.75)
    assert "reconstruction" not in panels and default_rows(panels) == ("original", "masked")
    img = grid_image(panels)
    rows_only = 2 * 32 + 2
    assert img.shape[0] > rows_only and img.shape[1] == 2 * 32 + 2  # a caption strip on top
    assert (img[: img.shape[0] - rows_only] < 128).any()  # with text in it
    assert "not pixels" in HOG_CAPTION
    assert save_gif(panels, tmp_path / "hog.gif").is_file()
