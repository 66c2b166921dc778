"""Issue 22 §3: the project's own recipes export. The VideoMAE-architecture preset (and a classifier that
inherits its encoder) has an exact Hugging Face counterpart, a refused export names the setting to change,
an export that drops a training-only setting (decoder mask, target kind) says so in its notes and summary,
and a ``--set`` that ``--init`` overrides is one warning line, not silent."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from maest.cli import main
from maest.convert.accounting import ConversionError
from maest.convert.hf_videomae import hf_export_problems
from maest.models import create_model
from maest.runs import checkpoint as ckpt
from maest.train.config import FinetuneConfig, classifier_from_data
from maest.train.finetune import inherit_encoder
from maest.train.recipes import get_preset

from ..helpers import QUIET


def _save(model, kind, path):
    return ckpt.atomic_save(ckpt.model_record(model.state_dict(), kind, dataclasses.asdict(model.model_cfg)), path)


def test_the_videomae_preset_and_its_classifier_export_exactly():
    pre = get_preset("videomae_v2_b_pretrain").model
    assert hf_export_problems(pre) == []
    ft = FinetuneConfig(model=classifier_from_data("vit_base_patch16"))
    ft.model.num_classes = 2
    inherit_encoder(ft, pre.encoder, "the pre-training")
    assert hf_export_problems(ft.model) == []
    # with VideoMAE's own 1e-6 the refusal names the pre-training setting to change
    ft.model.encoder.final_norm_eps = 1e-6
    (why,) = hf_export_problems(ft.model)
    assert "model.encoder.final_norm_eps=1e-05" in why and "pre-train" in why


def test_an_export_that_drops_training_only_settings_says_so(tmp_path, capsys):
    cfg = get_preset("videomae_v2_b_pretrain").model
    e, d = cfg.encoder, cfg.decoder
    e.img_size, e.patch_size, e.num_frames, e.embed_dim, e.depth, e.num_heads = 32, 8, 4, 32, 1, 2
    d.embed_dim, d.depth, d.num_heads = 16, 1, 2
    cfg.target.kind = "norm_pix"  # MAE-ST's per-patch target: HF normalises per tube and channel
    path = _save(cfg.build(), "mae", tmp_path / "v2.pt")
    assert main(["convert", str(path), str(tmp_path / "hf"), "--to", "hf"]) == 0
    text = capsys.readouterr().out
    assert "note: decoder masking (running_cell, ratio 0.5) is dropped" in text
    assert "note: the target 'norm_pix' becomes norm_pix_loss=true" in text and "bool_masked_pos" in text
    assert main(["convert", str(path), str(tmp_path / "hf"), "--to", "hf", "--force", "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("decoder masking" in n for n in notes) and any("norm_pix" in n for n in notes)


def test_a_refused_export_names_the_setting(tmp_path):
    from maest.convert.run import convert

    path = _save(create_model("vit_tiny_test", num_classes=2), "classifier", tmp_path / "c.pt")
    with pytest.raises(ConversionError, match="model.encoder.pos_embed_type=sincos.*cls_embed=false.*qkv_bias=qv"):
        convert(path, tmp_path / "hf", to="hf")


@pytest.mark.usefixtures("no_curves")
def test_a_set_that_init_overrides_is_one_warning(tmp_path, caplog, fake_data, capsys):
    init = _save(create_model("mae_vit_tiny_test"), "mae", tmp_path / "pre.pt")  # final_norm_eps 1e-6
    argv = ["finetune", "unused", "--preset", "tiny_finetune", "--init", str(init), "--output-dir",
            str(tmp_path / "ft"), "--set", "train.max_steps=1", "--set", "model.encoder.final_norm_eps=1e-5",
            "--set", "model.encoder.num_frames=4", *QUIET]
    with caplog.at_level(logging.WARNING, logger="maest"):
        assert main(argv) == 0
    lines = [r.getMessage() for r in caplog.records if "overridden by --init" in r.getMessage()]
    assert len(lines) == 1  # num_frames is fine-tuning's own choice: no warning for it
    assert "--set model.encoder.final_norm_eps=1e-05" in lines[0] and "final_norm_eps=1e-06" in lines[0]
