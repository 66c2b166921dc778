"""``maest.load(path)``: the model a maest checkpoint describes, rebuilt from the config stored in it
and ready for eval. Every maest checkpoint records its ``kind`` (mae / classifier / probe) and its
``model_config``; files from maest 0.1 carry only their run ``config``, which is upgraded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maest.models import ClassifierConfig, MAEConfig
from maest.overrides import from_dict
from maest.runs import checkpoint as ckpt
from maest.upgrade import upgrade_model_record, upgrade_run_config

KINDS = {"mae": MAEConfig, "classifier": ClassifierConfig, "probe": ClassifierConfig}
DEFAULT_SAMPLING_RATE = 4  # frames between sampled frames, when a checkpoint has no run config


@dataclass
class Checkpoint:
    """A read checkpoint: its weights, what model they belong to, and the run config (None for
    converted or exported weights)."""

    path: Path
    state: dict[str, Any]
    kind: str
    model_config: MAEConfig | ClassifierConfig
    run_config: dict[str, Any] | None

    @property
    def sampling_rate(self) -> int:
        """The frame stride of the run's clips (``data.sampling_rate``; 4, the MAE-ST and VideoMAE default,
        for converted weights, which have no run)."""
        data = (self.run_config or {}).get("data") or {}
        return int(data.get("sampling_rate", DEFAULT_SAMPLING_RATE))

    def build(self) -> nn.Module:
        """The model with these weights, in eval mode; ``model.sampling_rate`` records the run's frame
        stride, so :func:`maest.read_video` samples clips as the model saw them in training."""
        self.check()
        model = self.model_config.build()
        try:
            ckpt.load_model_weights(model, ckpt.model_state(self.state))
        except ckpt.CheckpointError as e:
            raise ckpt.CheckpointError(f"{self.path}: {e}") from None
        model.sampling_rate = self.sampling_rate
        return model.eval()


    def check(self) -> None:
        """Refuse a model description these weights do not back, before anything is allocated (see
        :func:`check_geometry`)."""
        check_geometry(self.model_config, ckpt.model_state(self.state), f"checkpoint {self.path}")


def check_geometry(cfg: MAEConfig | ClassifierConfig, state: dict[str, Any], what: str) -> None:
    """Check a model config's declared sizes against the weights meant for it, without allocating:
    depths no larger than the weights' tensor count (each block holds tensors), then the model built on
    the meta device (shapes, no memory) with exactly the weights' keys and shapes. ``what`` names the
    source in the messages.

    Raises:
        CheckpointError: the config describes another (or an absurdly large) model.
    """
    skeleton = meta_model(cfg, state, what)
    problems = ckpt.weight_problems(skeleton.state_dict(), state)
    if problems:
        raise ckpt.CheckpointError(f"{what}: the weights do not fit the model its config describes ({problems}); "
                                   "the model description is damaged or belongs to other weights")


def meta_model(cfg: MAEConfig | ClassifierConfig, state: dict[str, Any], what: str) -> nn.Module:
    """The model of ``cfg`` on the meta device (shapes only, no memory), once its depths are no larger
    than the tensor count of ``state`` (building 10**7 empty blocks would take hours)."""
    depths = {"model_config.encoder.depth": cfg.encoder.depth}
    if getattr(cfg, "decoder", None) is not None:
        depths["model_config.decoder.depth"] = cfg.decoder.depth
    for key, depth in depths.items():
        if depth > len(state):
            raise ckpt.CheckpointError(f"{what}: {key}={depth} declares more blocks than the weights hold "
                                       f"({len(state)} tensors in all); the model description is damaged")
    try:
        with torch.device("meta"):
            return cfg.build()
    except (RuntimeError, ValueError, OverflowError) as e:
        raise ckpt.CheckpointError(f"{what}: its model description cannot be built ({ckpt.first_line(e)})"
                                   ) from None


class NoModelConfig(ValueError):
    """The file holds weights but does not say which model they belong to."""


def read(path: str | Path) -> Checkpoint:
    """Read ``path`` and work out which model it holds; refuse a file that does not say."""
    path = Path(path)
    return describe(path, ckpt.load_checkpoint(path))


def describe(path: str | Path, state: dict[str, Any]) -> Checkpoint:
    """Which model the already-read checkpoint ``state`` of ``path`` holds.

    Raises:
        NoModelConfig: ``state`` carries no maest model config (a bare or foreign state dict).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state.update(_safetensors_record(path))
    run = state.get("config") if isinstance(state.get("config"), dict) else None
    if not ("model_config" in state and state.get("kind") in KINDS
            or run is not None and isinstance(run.get("model"), dict)):
        raise NoModelConfig(f"{path} does not say which model it holds (no maest model config): convert it first, "
                            "e.g. maest convert --from official|videomae|hf SRC OUT.pt")
    field = "model_config" if "model_config" in state and state.get("kind") in KINDS else "config.model"
    try:
        if field == "model_config":
            kind = state["kind"]
            section = upgrade_model_record(state["model_config"], KINDS[kind] is ClassifierConfig, run)
        else:  # maest 0.1: only the run config
            run = upgrade_run_config(run)
            section = run["model"]
            kind = "mae" if "mix" not in run else ("probe" if section.get("probe", "none") != "none" else "classifier")
        if run is not None:
            run = upgrade_run_config(run)  # the run config is returned in today's layout (idempotent)
        model_config = from_dict(KINDS[kind], section, f"{field}.")
    except (ValueError, TypeError, AttributeError, KeyError) as e:  # a damaged or hand-edited description
        why = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"checkpoint {path}: its {field} is not a valid model description ({why}); "
                         "re-export or re-convert it") from None
    return Checkpoint(path, state, kind, model_config, run)


def _safetensors_record(path: Path) -> dict[str, Any]:
    """``kind`` and ``model_config`` from a safetensors file's metadata (as ``maest convert --to
    safetensors`` writes them), when present."""
    meta = ckpt.safetensors_metadata(path)
    if "kind" not in meta or "model_config" not in meta:
        return {}
    try:
        return {"kind": meta["kind"], "model_config": json.loads(meta["model_config"])}
    except json.JSONDecodeError:
        raise ValueError(f"{path}: its model_config metadata is not valid JSON") from None


def load(path: str | Path) -> nn.Module:
    """The model a maest checkpoint (pre-training, fine-tuning, probe, or converted) describes, with
    its weights, in eval mode: ``model = maest.load("runs/b16/checkpoint-00012000.pt")``."""
    return read(path).build()


def load_run_config(cls: type, path: str | Path) -> Any:
    """The run config in the JSON file ``path`` (a ``config.json`` of this or an earlier maest version)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    try:
        data = json.loads(p.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"config file {p} is not a text file; pass a config.json written by a maest run") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {p} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                         "fix it, or start from --preset") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} holds a JSON {type(data).__name__}, not an object of config sections "
                         "(model, data, optim, train)")
    try:
        cfg = from_dict(cls, upgrade_run_config(data))
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ValueError(f"config file {p}: {e}") from None
    if getattr(getattr(cfg, "data", None), "allow_pipe", False):
        cfg.data.allow_pipe = False  # file contents never opt in to running shell commands: a flag does
    return cfg
