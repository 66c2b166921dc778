"""Official MAE-ST / SlowFast checkpoints: geometry read from the weights, heads never guessed, every
key accounted for, outputs equal to the official model's (golden tensors). The VideoMAE and Hugging
Face matrix is in test_convert_matrix.py."""

import argparse

import pytest
import torch

import maest
import maest.loading
from maest.convert import ConversionError, convert

from ..conftest import GOLDEN


def _official(tmp_path, container: str = "model", **extra):
    if not GOLDEN.is_file():
        pytest.skip("golden tensors not available")
    g = torch.load(GOLDEN, weights_only=True)["tiny_sep_cls"]
    path = tmp_path / "official.pth"
    # as mae_st's misc.save_model writes it: the argparse Namespace travels with the weights
    args = argparse.Namespace(model="mae_vit_large_patch16", mask_ratio=0.9)
    torch.save({container: {**g["state_dict"], **extra}, "epoch": 3, "args": args}, path)
    return g, path


@pytest.mark.parametrize("container", ["model", "model_state"])
def test_official_pretraining_checkpoint_matches_golden(tmp_path, container):
    g, src = _official(tmp_path, container)
    report = convert(src, tmp_path / "m.pt", model_name="mae_vit_base_patch16", num_heads=2, decoder_num_heads=2)
    assert report["format"] == "official" and report["kind"] == "mae"
    e = maest.loading.read(tmp_path / "m.pt").model_config.encoder
    c = g["config"]
    # sizes and geometry come from the weights (no size flags were given)
    assert (e.num_frames, e.img_size, e.patch_size, e.embed_dim, e.depth) == (
        c["num_frames"], c["img_size"], c["patch_size"], c["embed_dim"], c["depth"])
    model = maest.load(tmp_path / "m.pt")
    with torch.no_grad():
        out = model(g["input"], g["mask_ratio"], g["noise"])
    assert torch.equal(out.mask, g["mask"])
    diff = (out.pred - g["pred"]).abs().max().item()
    print(f"DIFF official-mae-st predictions {diff:.3g}")
    assert diff <= 1e-5


def test_official_heads_are_not_taken_from_a_model_of_another_width(tmp_path):
    _, src = _official(tmp_path)
    with pytest.raises(ConversionError, match="32 wide but mae_vit_base_patch16 is 768 wide.*pass --num-heads"):
        convert(src, tmp_path / "m.pt", model_name="mae_vit_base_patch16")
    with pytest.raises(ConversionError, match="16 wide but .*pass --decoder-num-heads"):
        convert(src, tmp_path / "m.pt", model_name="mae_vit_base_patch16", num_heads=2)
    with pytest.raises(ConversionError, match="--num-frames 16 contradicts the checkpoint's positional tables"):
        convert(src, tmp_path / "m.pt", model_name="mae_vit_base_patch16", num_heads=2, decoder_num_heads=2,
                num_frames=16)


def test_official_leftovers_and_missing_heads_fail(tmp_path):
    _, src = _official(tmp_path, surprise=torch.zeros(1))
    with pytest.raises(ConversionError, match="1 produced keys the model lacks: \\['surprise'\\]"):
        convert(src, tmp_path / "m.pt", model_name="mae_vit_base_patch16", num_heads=2, decoder_num_heads=2)
    _, src = _official(tmp_path)
    with pytest.raises(ConversionError, match="no head .*pre-training weights"):
        convert(src, tmp_path / "m.pt", model_name="vit_base_patch16", num_heads=2)
    assert not (tmp_path / "m.pt").exists()


def test_official_finetuned_checkpoint_with_slowfast_head_names(tmp_path):
    g, _ = _official(tmp_path)
    enc = {k: v for k, v in g["state_dict"].items() if not k.startswith(("decoder_", "mask_token"))}
    head = {"head.projection.weight": torch.randn(7, 32), "head.projection.bias": torch.randn(7)}
    torch.save({"model_state": {**enc, **head}}, tmp_path / "ft.pyth")
    report = convert(tmp_path / "ft.pyth", tmp_path / "ft.pt", model_name="vit_base_patch16", num_heads=2)
    assert report["kind"] == "classifier"
    model = maest.load(tmp_path / "ft.pt")
    assert model.num_classes == 7 and torch.equal(model.head.weight, head["head.projection.weight"])
    with torch.no_grad():
        assert model(g["input"]).shape == (2, 7)


def test_convert_cli_official_needs_a_model_name(tmp_path, capsys):
    from maest.cli import main

    _, src = _official(tmp_path)
    assert main(["convert", str(src), str(tmp_path / "o.pt"), "--from", "official"]) == 2
    assert "--model is required" in capsys.readouterr().err
