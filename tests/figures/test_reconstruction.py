import numpy as np
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


# -- issue 22 §6: the figures name their rows and carry a title; the GIF lasts long enough to follow ----
def _dark(img, rows, cols):
    return (img[rows, cols] < 100).any()


def test_labelled_figure_names_rows_numbers_frames_and_has_a_title():
    from maest.figures.reconstruction import GAP, ROW_NAMES, labelled_figure

    panels = reconstruct(create_model("tiny"), torch.randn(3, 4, 32, 32), mask_ratio=0.75)
    grid = grid_image(panels)
    fig = labelled_figure(panels, "clip.mp4: 75% masked", scale=2, mask_ratio=0.75)
    H, W = 2 * grid.shape[0], 2 * grid.shape[1]
    top, left = fig.shape[0] - H, fig.shape[1] - W
    assert top > 10 and left > 40  # a title strip and a margin of row names
    assert (fig[top:, left:] == np.kron(grid, np.ones((2, 2, 1), np.uint8))).all()
    assert _dark(fig, slice(0, top), slice(None))  # the title (and frame numbers)
    row_h = (H - 3 * GAP * 2) // 4
    for r in range(4):  # every row has its name beside it
        assert _dark(fig, slice(top + r * (row_h + 2 * GAP), top + r * (row_h + 2 * GAP) + row_h), slice(0, left))
    assert "reconstruction" in ROW_NAMES.values()


def test_gif_frames_are_labelled_and_a_loop_lasts_seconds(tmp_path):
    from PIL import Image

    from maest.figures.reconstruction import MIN_GIF_SECONDS, save_gif

    panels = reconstruct(create_model("tiny"), torch.randn(3, 4, 32, 32), mask_ratio=0.75)
    gif = Image.open(save_gif(panels, tmp_path / "r.gif", scale=2, title="clip.mp4"))
    assert gif.n_frames == 2 and gif.size[0] > 2 * 32 + 40  # one frame per predicted frame, named rows
    total = 0
    for f in range(gif.n_frames):
        gif.seek(f)
        total += gif.info["duration"]
    assert total >= 1000 * MIN_GIF_SECONDS


def test_the_report_and_the_command_draw_the_same_figure(tmp_path, monkeypatch, capsys):
    import dataclasses

    from PIL import Image

    from maest.cli import main
    from maest.data import write_test_pattern
    from maest.figures import report
    from maest.figures.reconstruction import labelled_figure, reconstruction_panels
    from maest.runs import checkpoint as ckpt

    mae = create_model("mae_vit_tiny_test")
    path = ckpt.atomic_save(ckpt.model_record(mae.state_dict(), "mae", dataclasses.asdict(mae.model_cfg)),
                            tmp_path / "checkpoint-00000001.pt")
    video = write_test_pattern(tmp_path / "v.mp4", 40, 40, num_frames=24)
    rec = reconstruction_panels(path, video)
    expected = labelled_figure(rec.panels, "t", 3, rec.mask_ratio)
    assert (report.reconstruction_grid(path, video, title="t") == expected).all()
    calls = []
    real = labelled_figure
    monkeypatch.setattr("maest.figures.reconstruction.labelled_figure",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    assert main(["reconstruct", str(video), "--checkpoint", str(path), "--out", str(tmp_path / "r"), "--no-mp4"]) == 0
    assert len(calls) == 1 and Image.open(tmp_path / "r.png").size[::-1] == real(*calls[0]).shape[:2]
    assert "r.png" in capsys.readouterr().out


@pytest.mark.parametrize("rule", ["warp", "magnitude"])
def test_reconstruct_of_a_motion_masked_run_draws_its_motion_masks(tmp_path, monkeypatch, capsys, rule):
    """``maest reconstruct`` on a checkpoint pre-trained with model.mask.strategy=motion and data.motion=codec:
    the figure's masks are motion_noise's for the clip's codec field (not random ones), and a motion row is drawn."""
    import json

    import maest
    from maest.cli import main
    from maest.data.datasets import ClipSpec, VideoClipDataset
    from maest.figures import reconstruction as R
    from maest.models.motion_masking import motion_noise
    from tests.data.test_motion import _panning

    video = _panning(tmp_path / "pan.mp4")
    (tmp_path / "list.csv").write_text(f"{video}\n{video}\n")
    run = tmp_path / "run"
    assert main(["pretrain", str(tmp_path / "list.csv"), "--preset", "tiny", "--output-dir", str(run), "--json",
                 "--set", "model.mask.strategy=motion", "--set", f"model.mask.motion_rule={rule}",
                 "--set", "model.mask.ratio=0.75", "--set", "data.motion=codec", "--set", "train.epochs=1",
                 "--set", "data.num_workers=0", "--set", "train.tensorboard=false",
                 "--set", "train.progress=false"]) == 0
    checkpoint = sorted(run.glob("checkpoint-*.pt"))[-1]
    capsys.readouterr()
    drawn = []
    real = R.labelled_figure
    monkeypatch.setattr(R, "labelled_figure", lambda panels, *a, **k: drawn.append(panels) or real(panels, *a, **k))
    out = tmp_path / "fig"
    assert main(["reconstruct", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--no-mp4",
                 "--json", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (tmp_path / "fig.png").is_file() and summary["motion"] == f"{rule} rule, data.motion=codec"
    panels = drawn[0]
    assert "motion" in R.default_rows(panels) and panels["motion"].shape == panels["original"].shape

    # the expected masks: the clip's codec field (the run's test view) through motion_noise, seeded as the figure
    from maest.loading import read

    model, rate = maest.load(checkpoint), read(checkpoint).run_config["data"]["sampling_rate"]
    e, grid = model.model_cfg.encoder, model.grid
    spec = ClipSpec(mode="test", num_frames=e.num_frames, sampling_rate=rate, crop_size=e.img_size, test_clips=1,
                    test_crops=1, mean=e.mean, std=e.std, motion="codec")
    item = VideoClipDataset([(str(video), -1)], spec)[0]
    assert item["has_motion"].all() and item["motion"][0, 1:].abs().sum() > 0
    noise = model.make_noise(1, generator=torch.Generator().manual_seed(3))
    expected = motion_noise(noise, item["motion"][:1], item["has_motion"][:1], grid, e.patch_size, 0.75, rule)
    keep = int(grid[1] * grid[2] * 0.25) * grid[0]
    removed = expected.argsort(1).argsort(1) >= keep
    p, u, _ = model.target_spec
    assert torch.equal(panels["mask"], R._token_pixels(removed[0], grid, u, p))
    random = model.make_noise(1, generator=torch.Generator().manual_seed(3)).argsort(1).argsort(1) >= keep
    assert not torch.equal(removed, random)  # the motion rule, not the random part alone
