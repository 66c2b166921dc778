"""``maest.load(path)``: the model a maest checkpoint describes, rebuilt from the config stored in it
and ready for eval. Every maest checkpoint records its ``kind`` (mae / classifier / probe) and its
``model_config``; files from maest 0.1 carry only their run ``config``, which is upgraded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from maest import checkpoint as ckpt
from maest.config import from_dict, upgrade_model_section, upgrade_run_config
from maest.models import ClassifierConfig, MAEConfig

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
        kind, section = state["kind"], state["model_config"]
        section = upgrade_model_section(section, KINDS[kind] is ClassifierConfig)
    elif run is not None and isinstance(run.get("model"), dict):  # maest 0.1: only the run config
        run = upgrade_run_config(run)
        section = run["model"]
        kind = "mae" if "mix" not in run else ("probe" if section.get("probe", "none") != "none" else "classifier")
    else:
        raise NoModelConfig(f"{path} does not say which model it holds (no maest model config): convert it first, "
                            "e.g. maest convert --from official|videomae|hf SRC OUT.pt")
    if run is not None and "encoder" not in run.get("model", {}):
        run = upgrade_run_config(run)  # the run config is returned in today's layout
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
