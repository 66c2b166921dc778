import pytest
import torch

from maest.figures.reconstruction import grid_image, reconstruct
from maest.models import create_model


@pytest.mark.parametrize("mode", ["honest", "true-stats"])
def test_panels_shapes_and_mask(mode):
    model = create_model("tiny")
    clip = torch.randn(3, 4, 32, 32)
    panels = reconstruct(model, clip, mask_ratio=0.75, seed=0, mode=mode)
    for k in ("original", "masked", "reconstruction", "pasted"):
        assert panels[k].shape == (2, 32, 32, 3) and panels[k].dtype == torch.uint8
    m = panels["mask"]
    assert m.shape == (2, 32, 32) and abs(m.float().mean().item() - 0.75) < 1e-6
    # visible pixels come from the input, masked ones from the model
    assert torch.equal(panels["pasted"][~m], panels["original"][~m])
    assert torch.equal(panels["pasted"][m], panels["reconstruction"][m])
    assert grid_image(panels).shape == (4 * 32 + 3 * 2, 2 * 32 + 2, 3)


def test_true_stats_reconstruction_of_a_perfect_prediction_is_exact():
    """If the model predicted the normalised target exactly, true-stats mode returns the input."""
    from maest.targets import pixel_target

    model = create_model("tiny")
    clip = torch.randn(3, 4, 32, 32) * 0.5
    target = pixel_target(clip[None], *model.target_spec, "norm_pix")

    class Perfect(torch.nn.Module):
        def forward(self, video, ratio, noise):
            out = model(video, ratio, noise)
            return out._replace(pred=target)

    perfect = Perfect()
    perfect.target_spec, perfect.grid, perfect.make_noise = model.target_spec, model.grid, model.make_noise
    perfect.cfg, perfect.model_cfg = model.cfg, model.model_cfg
    panels = reconstruct(perfect, clip, 0.75, mode="true-stats")
    diff = (panels["reconstruction"].int() - panels["original"].int()).abs().max()
    assert diff <= 1


def test_nearest_visible_uses_only_visible_tokens():
    from maest.figures.reconstruction import nearest_visible

    mask = torch.ones(2 * 2 * 2, dtype=torch.bool)
    mask[0] = False  # only token (0, 0, 0) visible
    mask[7] = False  # and (1, 1, 1)
    src = nearest_visible(mask, (2, 2, 2))
    assert src.tolist() == [0, 0, 0, 7, 0, 7, 7, 7]
