"""Issue 21 §5-6, config values that cannot be trusted: a ``--config`` JSON with wrong-typed values is one
line naming the file and the key (not a traceback, and not a run with a string where a number belongs);
mixing settings out of range are refused; ``train.save_every_minutes`` is checked."""

from __future__ import annotations

import json

import pytest

from maest.cli import main
from maest.loading import load_run_config
from maest.overrides import apply_overrides
from maest.train.config import FinetuneConfig, PretrainConfig
from maest.train.recipes import get_preset

from ..helpers import QUIET, _one_line_error

pytestmark = pytest.mark.usefixtures("no_curves")

BAD = [  # (section, key, value): one of each kind of wrong type a hand-edited or downloaded file holds
    ("train", "batch_size", "2"), ("train", "epochs", "abc"), ("train", "max_steps", 1.5),
    ("train", "seed", None), ("train", "compile", "false"), ("train", "resume", 5), ("train", "log_every", [1]),
    ("optim", "blr", "1e-3"), ("optim", "clip_grad", "none"), ("optim", "warmup_epochs", True),
    ("data", "num_workers", 2.0), ("data", "source", 7), ("model", "encoder", 3),
]


@pytest.mark.parametrize("section, key, value", BAD, ids=[f"{s}.{k}" for s, k, _ in BAD])
def test_a_wrong_typed_config_value_is_one_line_naming_file_and_key(tmp_path, capsys, fake_data,
                                                                  section, key, value):
    cfg = get_preset("tiny").to_dict()
    cfg[section][key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code = main(["pretrain", "unused", "--config", str(path), "--output-dir", str(tmp_path / "run"), *QUIET])
    _one_line_error(capsys, code, str(path), f"{section}.{key}=")
    assert not (tmp_path / "run").exists()


def test_nested_model_values_and_the_finetune_config_are_checked_too(tmp_path):
    cfg = get_preset("tiny").to_dict()
    cfg["model"]["encoder"]["mean"] = [0.5, "x", 0.5]
    (tmp_path / "a.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"a\.json: model\.encoder\.mean\[1\]=\"x\".*expected a number"):
        load_run_config(PretrainConfig, tmp_path / "a.json")
    ft = FinetuneConfig().to_dict()
    ft["mix"]["mixup"] = "0.8"
    (tmp_path / "b.json").write_text(json.dumps(ft))
    with pytest.raises(ValueError, match=r"b\.json: mix\.mixup=\"0\.8\""):
        load_run_config(FinetuneConfig, tmp_path / "b.json")
    # a JSON integer where a float belongs is a number, and the round trip is unchanged
    cfg = get_preset("tiny").to_dict()
    cfg["optim"]["blr"] = 1
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert load_run_config(PretrainConfig, tmp_path / "c.json").optim.blr == 1.0


@pytest.mark.parametrize("item, match", [
    ("mix.mixup=-1", r"mix\.mixup=-1\.0 must be a finite alpha >= 0"),
    ("mix.cutmix=-0.5", r"mix\.cutmix=-0\.5 must be"),
    ("mix.prob=1.5", r"mix\.prob=1\.5 must be a probability"),
    ("mix.switch_prob=-1", r"mix\.switch_prob=-1\.0 must be a probability"),
])
def test_mixing_settings_out_of_range_are_refused(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(FinetuneConfig(), [item]).validate()
