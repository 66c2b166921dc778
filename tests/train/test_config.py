import json

import pytest

from maest.loading import load_run_config as load_json
from maest.overrides import apply_overrides, from_dict, save_json
from maest.train.config import PretrainConfig
from maest.train.recipes import get_preset, list_presets
from maest.train.schedule import lr_at, scaled_lr


def test_overrides_are_typed():
    cfg = apply_overrides(PretrainConfig(), ["train.epochs=3", "optim.blr=2e-4", "train.compile=true",
                                             "optim.clip_grad=none", "model.encoder.num_frames=8",
                                             "model.encoder.mean=0.5,0.4,0.3"])
    assert cfg.train.epochs == 3 and cfg.optim.blr == 2e-4 and cfg.train.compile is True
    assert cfg.optim.clip_grad is None and cfg.model.encoder.num_frames == 8
    assert cfg.model.encoder.mean == (0.5, 0.4, 0.3)


@pytest.mark.parametrize(
    "item, match",
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("model.depth=3", "did you mean model.encoder.depth"),
        ("model.name=vit_base_patch16", "is a classifier model; this job needs a mae model"),
        ("model.encoder.mean=0.5,x", "expected a value of type float"),
        ("trian.epochs=3", "unknown config section 'trian'"),
        ("train.epochs=three", "expected a value of type int"),
        ("train.compile=maybe", "expected true or false"),
        ("train.epochs", "must look like section.key=value"),
        ("train=3", "is a section"),
    ],
)
def test_bad_overrides_fail_clearly(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(PretrainConfig(), [item])


@pytest.mark.parametrize(
    "item, match",
    [
        ("model.mask.ratio=1.0", "model.mask.ratio=1.0 must be strictly between 0 and 1"),
        ("model.mask.ratio=0", "model.mask.ratio=0.0 must be strictly between 0 and 1"),
        ("train.precision=fp16", "train.precision='fp16' is not one of"),
        ("train.batch_size=0", "train.batch_size=0 must be a positive integer"),
        ("optim.clip_grad=-1", "optim.clip_grad=-1.0 must be > 0"),
    ],
)
def test_validation_names_the_value(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(PretrainConfig(), [item]).validate()


def test_json_round_trip(tmp_path):
    cfg = get_preset("demo")
    save_json(cfg, tmp_path / "c.json")
    assert load_json(PretrainConfig, tmp_path / "c.json") == cfg
    bad = cfg.to_dict()
    bad["train"]["nonsense"] = 1
    with pytest.raises(ValueError, match="unknown keys for TrainConfig"):
        from_dict(PretrainConfig, json.loads(json.dumps(bad)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_json(PretrainConfig, tmp_path / "missing.json")


def test_presets_validate():
    for name in list_presets():
        if get_preset(name).model.target.kind == "features":  # a teacher path cannot be baked into a preset
            with pytest.raises(ValueError, match="needs a teacher: add --set model.target.teacher=PATH"):
                get_preset(name).validate()
            continue
        get_preset(name).validate()
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")


def test_schedule_endpoints_and_shape():
    assert lr_at(0.0, 1.0, 0.1, 5, 100) == 0.0
    assert lr_at(2.5, 1.0, 0.1, 5, 100) == pytest.approx(0.5)
    assert lr_at(5.0, 1.0, 0.1, 5, 100) == pytest.approx(1.0)
    assert lr_at(52.5, 1.0, 0.1, 5, 100) == pytest.approx(0.55)
    assert lr_at(100.0, 1.0, 0.1, 5, 100) == pytest.approx(0.1)
    values = [lr_at(e / 10, 1.0, 0.0, 5, 100) for e in range(50, 1000)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert scaled_lr(1.6e-3, 512) == pytest.approx(3.2e-3)
