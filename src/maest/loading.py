"""``maest.load(path)``: the model a maest checkpoint describes, rebuilt from the config stored in it
and ready for eval. Every maest checkpoint records its ``kind`` (mae / classifier / probe) and its
``model_config``; files from maest 0.1 carry only their run ``config``, which is upgraded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from maest.models import ClassifierConfig, MAEConfig
from maest.overrides import from_dict
from maest.runs import checkpoint as ckpt
from maest.upgrade import upgrade_model_record, upgrade_run_config

KINDS = {"mae": MAEConfig, "classifier": ClassifierConfig, "probe": ClassifierConfig}


@dataclass
class Checkpoint:
    """A read checkpoint: its weights, what model they belong to, and the run config (None for
    converted or exported weights)."""

    path: Path
    state: dict[str, Any]
    kind: str
    model_config: MAEConfig | ClassifierConfig
    run_config: dict[str, Any] | None

    def build(self) -> nn.Module:
        """The model with these weights, in eval mode."""
        model = self.model_config.build()
        try:
            ckpt.load_model_weights(model, ckpt.model_state(self.state))
        except ckpt.CheckpointError as e:
            raise ckpt.CheckpointError(f"{self.path}: {e}") from None
        return model.eval()


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
    if "model_config" in state and state.get("kind") in KINDS:
        kind = state["kind"]
        section = upgrade_model_record(state["model_config"], KINDS[kind] is ClassifierConfig, run)
    elif run is not None and isinstance(run.get("model"), dict):  # maest 0.1: only the run config
        run = upgrade_run_config(run)
        section = run["model"]
        kind = "mae" if "mix" not in run else ("probe" if section.get("probe", "none") != "none" else "classifier")
    else:
        raise NoModelConfig(f"{path} does not say which model it holds (no maest model config): convert it first, "
                            "e.g. maest convert --from official|videomae|hf SRC OUT.pt")
    if run is not None:
        run = upgrade_run_config(run)  # the run config is returned in today's layout (idempotent)
    return Checkpoint(path, state, kind, from_dict(KINDS[kind], section), run)


def _safetensors_record(path: Path) -> dict[str, Any]:
    """``kind`` and ``model_config`` from a safetensors file's metadata (as ``maest convert --to
    safetensors`` writes them), when present."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
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
        return from_dict(cls, upgrade_run_config(data))
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise ValueError(f"config file {p}: {e}") from None
