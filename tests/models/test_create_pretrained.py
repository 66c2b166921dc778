"""Issue 22 §6: ``create_model("vit_...", pretrained=<MAE checkpoint>)`` takes the encoder as fine-tuning's
``--init`` does, initialises the head and says so."""

from __future__ import annotations

import dataclasses
import logging

import torch

from maest.models import create_model
from maest.runs import checkpoint as ckpt


def test_a_classifier_from_an_mae_checkpoint_gets_a_fresh_head_and_a_warning(tmp_path, caplog):
    mae = create_model("mae_vit_tiny_test")
    with torch.no_grad():
        for p in mae.parameters():
            p.normal_()
    path = ckpt.atomic_save(ckpt.model_record(mae.state_dict(), "mae", dataclasses.asdict(mae.model_cfg)),
                            tmp_path / "mae.pt")
    with caplog.at_level(logging.WARNING, logger="maest"):
        vit = create_model("vit_tiny_test", pretrained=path, num_classes=3)
    (msg,) = [r.getMessage() for r in caplog.records if "newly initialised" in r.getMessage()]
    assert "vit_tiny_test" in msg and "mae.pt" in msg and "3 classes" in msg and "decoder keys dropped" in msg
    assert not vit.training
    torch.testing.assert_close(vit.blocks[0].attn.q.weight, mae.blocks[0].attn.q.weight)
    torch.testing.assert_close(vit.norm.weight, mae.norm.weight)
    assert vit.head.weight.abs().max() < 1e-3 and not vit.head.bias.any()  # the official head init: std 2e-5
    # another clip length: the positional tables are resized, and the warning says so
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="maest"):
        longer = create_model("vit_tiny_test", pretrained=path, num_classes=3, num_frames=8)
    assert longer.pos_embed_temporal.shape[1] == 4 and "resized" in caplog.records[-1].getMessage()
    # a probe takes the encoder too
    probe = create_model("vit_tiny_test", pretrained=path, num_classes=3, probe="linear")
    torch.testing.assert_close(probe.encoder.blocks[0].attn.q.weight, mae.blocks[0].attn.q.weight)
