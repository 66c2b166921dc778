"""Issue 21, ``maest convert`` on files that cannot be trusted: a Hugging Face config.json that is a list,
lacks a size, or declares a width the weights do not have (checked on the meta device, before a byte is
allocated); a safetensors file with a non-JSON header; integer or boolean tensors where weights belong.
Each is one line naming the file and the field."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
import torch

from maest.cli import main
from maest.convert.run import convert
from maest.models import model_config
from maest.runs import checkpoint as ckpt

from ..helpers import _one_line_error


@pytest.fixture
def hf_folder(tmp_path):
    """A Hugging Face VideoMAE classifier folder, written by maest's own export (no transformers needed)."""
    cfg = model_config("vit_tiny_test")
    e = cfg.encoder
    e.pos_embed_type, e.cls_embed, e.qkv_bias, e.pooling, e.final_norm_eps = "sincos", False, "qv", "mean", 1e-5
    cfg.num_classes = 3
    cfg.validate()
    ckpt.atomic_save(ckpt.model_record(cfg.build().state_dict(), cfg.kind, dataclasses.asdict(cfg)), tmp_path / "m.pt")
    convert(tmp_path / "m.pt", tmp_path / "hf", to="hf")
    return tmp_path / "hf"


def _edit(folder, **changes):
    conf = json.loads((folder / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            conf.pop(k)
        else:
            conf[k] = v
    (folder / "config.json").write_text(json.dumps(conf))


def test_an_hf_folder_converts_back(hf_folder, tmp_path):
    assert convert(hf_folder, tmp_path / "back.pt")["kind"] == "classifier"


@pytest.mark.parametrize("changes, needles", [
    ({"image_size": None}, ["config.json", "image_size is missing"]),
    ({"hidden_size": "64"}, ["config.json", 'hidden_size is "64", not a positive integer']),
    ({"num_hidden_layers": 0}, ["config.json", "num_hidden_layers is 0"]),
    ({"hidden_size": 10**9, "num_attention_heads": 1}, ["hf", "shape mismatch|cannot be built"]),
    ({"hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 2}, ["hf", "shape mismatch"]),
])
def test_an_hf_config_that_does_not_describe_its_weights_is_one_line(hf_folder, tmp_path, capsys, changes, needles):
    _edit(hf_folder, **changes)
    code = main(["convert", str(hf_folder), str(tmp_path / "out.pt")])
    line = _one_line_error(capsys, code, str(hf_folder), *[n for n in needles if "|" not in n])
    for n in needles:
        if "|" in n:
            assert any(alt in line for alt in n.split("|")), line
    assert not (tmp_path / "out.pt").exists()


def test_an_hf_config_that_is_a_list_is_one_line(hf_folder, tmp_path, capsys):
    (hf_folder / "config.json").write_text("[1, 2]")
    _one_line_error(capsys, main(["convert", str(hf_folder), str(tmp_path / "out.pt")]),
                    str(hf_folder / "config.json"), "holds a JSON list")


def test_a_safetensors_file_with_a_non_json_header_is_one_line(tmp_path, capsys):
    header = b"not json at all"
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    _one_line_error(capsys, main(["convert", str(path), str(tmp_path / "out.pt")]), str(path), "could not be read")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_boolean_tensors_are_refused_where_weights_belong(tmp_path, capsys, dtype):
    cfg = model_config("mae_vit_tiny_test")
    state = cfg.build().state_dict()
    key = "blocks.0.norm1.weight"
    state[key] = state[key].to(dtype)
    ckpt.atomic_save(ckpt.model_record(state, "mae", dataclasses.asdict(cfg)), tmp_path / "m.pt")
    line = _one_line_error(capsys, main(["convert", str(tmp_path / "m.pt"), str(tmp_path / "out.pt")]),
                           str(tmp_path / "m.pt"), key, str(dtype).removeprefix("torch."))
    assert "floating point" in line and not (tmp_path / "out.pt").exists()
