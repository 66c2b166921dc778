"""Issue 21, checkpoint files that cannot be trusted: a pickle payload is refused with a message that does
not advise disabling the safety; a damaged safetensors header or model description is one line; declared
sizes are checked against the weights before anything is allocated (a depth of 10**7, a width of 10**9);
and a save that runs out of space says where, and that the previous checkpoint is intact."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import struct
import subprocess
import sys

import pytest
import torch

import maest
from maest.models import model_config
from maest.runs import checkpoint as ckpt


def _model_file(tmp_path, name: str, **encoder) -> str:
    """The tiny MAE's weights with a model description whose encoder fields are replaced by ``encoder``."""
    from safetensors.torch import save_file

    cfg = model_config("mae_vit_tiny_test")
    state = {k: v.contiguous() for k, v in cfg.build().state_dict().items()}
    desc = dataclasses.asdict(cfg)
    desc["encoder"].update(encoder)
    path = tmp_path / name
    save_file(state, str(path), metadata={"kind": "mae", "model_config": json.dumps(desc)})
    return str(path)


def test_a_pickle_payload_is_refused_without_advice_to_load_it_unsafely(tmp_path):
    path = tmp_path / "payload.pt"
    torch.save({"model": {}, "x": SystemCall()}, path)
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.load_checkpoint(path)
    msg = str(e.value)
    assert "is not a plain-tensor checkpoint; it would execute code to load" in msg and "system" in msg
    assert "Convert it with" in msg and "weights_only" not in msg and "corrupt" not in msg and "\n" not in msg
    assert not (tmp_path / "ran").exists()


class SystemCall:
    def __reduce__(self):
        return os.system, ("touch ran",)


def test_a_safetensors_file_with_a_non_json_header_is_one_line(tmp_path):
    header = b"this is not json"
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(ckpt.CheckpointError, match=r"bad\.safetensors could not be read \(.*header"):
        maest.load(path)


@pytest.mark.parametrize("encoder, match", [
    ({"depth": "2"}, r'model_config\.encoder\.depth="2" \(a JSON string\): expected an integer'),
    ({"mean": None}, r"model_config\.encoder\.mean=null"),
    ({"patch_size": [8]}, r"model_config\.encoder\.patch_size=an array"),
])
def test_a_model_description_of_wrong_types_names_the_field(tmp_path, encoder, match):
    with pytest.raises(ValueError, match=match):
        maest.load(_model_file(tmp_path, "typed.safetensors", **encoder))


def test_a_huge_declared_width_is_refused_before_allocating(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="cannot be built|do not fit"):
        maest.load(_model_file(tmp_path, "wide.safetensors", embed_dim=10**9, num_heads=1))
    with pytest.raises(ckpt.CheckpointError, match=r"do not fit the model .*shape mismatch"):
        maest.load(_model_file(tmp_path, "wider.safetensors", embed_dim=128, num_heads=2))


def test_a_huge_declared_depth_is_refused_at_once(tmp_path):
    path = _model_file(tmp_path, "deep.safetensors", depth=10**7)
    code = f"import maest; maest.load({path!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "model_config.encoder.depth=10000000 declares more blocks than the weights hold" in done.stderr


def _full_disk_after(limit: int, monkeypatch) -> None:
    """Writes of atomic_save's file fail with ENOSPC after ``limit`` bytes (as on a full disk)."""
    real = os.fdopen

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            self.n += len(data)
            if self.n > limit:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real(fd, mode)))


def test_a_save_that_runs_out_of_space_names_the_device_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    previous = ckpt.atomic_save({"model": {"w": torch.ones(3)}, "step": 1}, ckpt.checkpoint_path(tmp_path, 1))
    _full_disk_after(4096, monkeypatch)
    target = ckpt.checkpoint_path(tmp_path, 2)
    with pytest.raises(OSError) as e:
        ckpt.atomic_save({"model": {"w": torch.zeros(100_000)}, "step": 2}, target)
    msg = str(e.value)
    assert msg.startswith("no space left on ") and "mounted at" in msg and f"writing {target}" in msg
    assert f"the previous checkpoint {previous} is intact" in msg and "--resume" in msg
    assert "enforce fail" not in msg and "Errno" not in msg
    assert not target.exists() and not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    assert ckpt.load_checkpoint(previous)["step"] == 1
