import pytest
import torch

from maest.models import create_model
from maest.runs import checkpoint as ckpt


def test_atomic_save_round_trip_weights_only(tmp_path):
    model = create_model("tiny")
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(1, 3, 4, 32, 32), 0.5).pred.sum().backward()
    opt.step()
    state = ckpt.training_state(model.state_dict(), opt.state_dict(), 7, 1, {"model": {"a": 1}}, "mae")
    path = ckpt.atomic_save(state, tmp_path / "checkpoint-00000007.pt")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    state = ckpt.load_checkpoint(path)
    assert state["step"] == 7 and state["config"] == {"model": {"a": 1}}
    assert state["kind"] == "mae" and state["model_config"] == {"a": 1}
    fresh = create_model("tiny")
    ckpt.load_model_weights(fresh, ckpt.model_state(state))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=0, atol=0)


def test_corrupt_and_missing_checkpoints_fail_clearly(tmp_path):
    good = ckpt.atomic_save({"model": create_model("tiny").state_dict()}, tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ckpt.CheckpointError, match="bad.pt could not be read .* corrupt, truncated"):
        ckpt.load_checkpoint(bad)
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


class Evil:
    """Any non-allow-listed class: weights_only loading must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "obj": Evil()}, path)
    with pytest.raises(ckpt.CheckpointError, match="not a plain-tensor checkpoint"):
        ckpt.load_checkpoint(path)


def test_mismatched_weights_are_listed():
    state = create_model("tiny").state_dict()
    state.pop("norm.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ckpt.CheckpointError, match="missing 1 keys: \\['norm.weight'\\].*unexpected 1 keys"):
        ckpt.load_model_weights(create_model("tiny"), state)
    with pytest.raises(ckpt.CheckpointError, match="shape mismatch: pos_embed_spatial"):
        ckpt.load_model_weights(create_model("tiny"), create_model("tiny", img_size=64).state_dict())


def test_wrapper_prefixes_and_containers():
    sd = {"module._orig_mod.norm.weight": torch.ones(2)}
    assert list(ckpt.model_state({"model_state": sd})) == ["norm.weight"]


def test_resume_lookup_and_pruning(tmp_path):
    for s in (5, 10, 15):
        ckpt.atomic_save({"step": s}, ckpt.checkpoint_path(tmp_path, s))
    assert ckpt.resolve_resume("auto", tmp_path).name == "checkpoint-00000015.pt"
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-00000010.pt", "checkpoint-00000015.pt"]
    assert ckpt.resolve_resume("auto", tmp_path / "empty") is None
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        ckpt.resolve_resume(str(tmp_path / "x.pt"), tmp_path)


def test_safetensors_export_loads_back(tmp_path):
    model = create_model("tiny")
    path = ckpt.export_safetensors(model.state_dict(), tmp_path / "w.safetensors", {"model": "tiny"})
    state = ckpt.model_state(ckpt.load_checkpoint(path))
    ckpt.load_model_weights(create_model("tiny"), state)
