"""Issue 22 §5: presets between a smoke test and ViT-B, and ``maest models`` says what each name is: the
tiny presets are listed as smoke tests, ``--verbose`` gives geometry, parameters and purpose."""

from __future__ import annotations

import pytest

from maest.cli import main
from maest.train.recipes import SMOKE_TESTS, get_finetune_preset, get_preset

from ..conftest import RandomClips


def test_models_lists_smoke_tests_apart(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    presets = next(line for line in lines if line.startswith("presets:")).split()
    assert "vit_s_112_pretrain" in presets and "tiny" not in presets
    assert "vit_s_112_finetune" in next(line for line in lines if line.startswith("fine-tuning presets:"))
    smoke = next(line for line in lines if line.startswith("smoke tests"))
    assert "learn nothing" in smoke and all(n in smoke.split() for n in SMOKE_TESTS)


def test_models_verbose_shows_geometry_parameters_and_purpose(capsys):
    assert main(["models", "--verbose"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "MAE 384x12, 8x112px, patch 2x16" in rows["vit_s_112_pretrain"] and "35.1M" in rows["vit_s_112_pretrain"]
    assert "ViT 384x12, 8x112px" in rows["vit_s_112_finetune"] and "21.9M + head" in rows["vit_s_112_finetune"]
    assert "smoke test" in rows["mae_vit_tiny_test"].lower() and "Smoke test" in rows["tiny"]
    assert "ViT 768x12, 16x224px" in rows["vit_base_patch16"] and "86.7M" in rows["vit_base_patch16"]
    assert all(len(line.split("  ")) > 2 for name, line in rows.items() if name not in ("PRESET",))


@pytest.mark.usefixtures("no_curves")
def test_the_vit_s_112_pair_trains_and_fits_together(tmp_path):
    from maest.train import finetune, pretrain

    pre, ft = get_preset("vit_s_112_pretrain"), get_finetune_preset("vit_s_112_finetune")
    e = pre.model.encoder
    assert (e.embed_dim, e.depth, e.img_size, e.num_frames, e.num_patches) == (384, 12, 112, 8, 196)
    assert pre.optim.peak_lr(pre.train.batch_size) == pytest.approx(3e-4)  # learns: not the smoke tests' 1e-6
    assert ft.optim.peak_lr(ft.train.batch_size * ft.data.repeat_aug) == pytest.approx(1.5e-4)
    fields = ("img_size", "num_frames", "patch_size", "embed_dim", "depth", "num_heads")
    assert [getattr(ft.model.encoder, f) for f in fields] == [getattr(e, f) for f in fields]
    for cfg in (pre, ft):
        cfg.train.max_steps, cfg.train.batch_size, cfg.train.progress, cfg.train.tensorboard = 1, 1, False, False
        cfg.data.num_workers = 0
    pre.train.output_dir, ft.train.output_dir = str(tmp_path / "pre"), str(tmp_path / "ft")
    summary = pretrain.run(pre, dataset=RandomClips(n=2, repeat=2, frames=8, size=112))
    ft.init = summary["checkpoint"]
    assert finetune.run(ft, dataset=RandomClips(n=2, repeat=2, frames=8, size=112))["steps"] == 1
