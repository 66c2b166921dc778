"""``maest.load(path)``: the model a maest checkpoint describes, rebuilt from the config stored in it
and ready for eval. Every maest checkpoint records its ``kind`` (mae / classifier / probe) and its
``model_config``; files from maest 0.1 carry only their run ``config``, which is upgraded."""

from __future__ import annotations

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


def read(path: str | Path) -> Checkpoint:
    """Read ``path`` and work out which model it holds; refuse a file that does not say."""
    path = Path(path)
    state = ckpt.load_checkpoint(path)
    run = state.get("config") if isinstance(state.get("config"), dict) else None
    if "model_config" in state and state.get("kind") in KINDS:
        kind, section = state["kind"], state["model_config"]
        section = upgrade_model_section(section, KINDS[kind] is ClassifierConfig)
    elif run is not None and isinstance(run.get("model"), dict):  # maest 0.1: only the run config
        run = upgrade_run_config(run)
        section = run["model"]
        kind = "mae" if "mix" not in run else ("probe" if section.get("probe", "none") != "none" else "classifier")
    else:
        raise ValueError(f"{path} does not say which model it holds (no maest model config): convert it first, "
                         "e.g. maest convert --from official|videomae|hf SRC OUT.pt")
    if run is not None and "encoder" not in run.get("model", {}):
        run = upgrade_run_config(run)
    return Checkpoint(path, state, kind, from_dict(KINDS[kind], section), run)


def load(path: str | Path) -> nn.Module:
    """The model a maest checkpoint (pre-training, fine-tuning, probe, or converted) describes, with
    its weights, in eval mode: ``model = maest.load("runs/b16/checkpoint-00012000.pt")``."""
    return read(path).build()
