"""Checkpoints: atomic writes, safe loading (``weights_only=True`` or safetensors), resume lookup,
and loading of model weights from the containers other code bases use.

A training checkpoint is a plain dict ``{model, optimizer, step, epoch, config, version, extra}`` saved
with ``torch.save`` to a temporary file and renamed into place, so a crash mid-write never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maest import __version__

_CKPT_RE = re.compile(r"checkpoint-(\d+)\.pt$")
# prefixes added by DDP/FSDP wrappers and torch.compile
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_checkpoint_wrapped_module.")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True`` (or a safetensors file as ``{"model": ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return {"model": load_file(str(path), device=str(map_location))}
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch and safetensors raise many types for damaged files
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "it is corrupt, truncated or not a weights-only file: resume from an earlier checkpoint"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint of any common container layout, prefixes stripped."""
    for key in ("model", "model_state", "module", "state_dict"):
        if key in ckpt and isinstance(ckpt[key], dict):
            state = ckpt[key]
            break
    else:
        state = ckpt
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("no model state dict found (looked for 'model', 'model_state', 'module', 'state_dict')")
    return {strip_prefixes(k): v for k, v in state.items()}


def strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _WRAPPER_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def load_model_weights(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> None:
    """``load_state_dict`` with an error that lists what is missing, unexpected or mis-shaped."""
    own = model.state_dict()
    shape = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if shape or (strict and (missing or unexpected)):
        parts = []
        if shape:
            parts.append("shape mismatch: " + "; ".join(shape[:8]))
        if missing:
            parts.append(f"missing {len(missing)} keys: {missing[:8]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {unexpected[:8]}")
        raise CheckpointError(
            "checkpoint does not fit the model (" + " | ".join(parts) + "); check the model name and geometry"
        )
    model.load_state_dict(state, strict=strict)


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"checkpoint-{step:08d}.pt"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Training checkpoints in ``output_dir``, oldest step first."""
    d = Path(output_dir)
    found = [(int(m.group(1)), p) for p in d.glob("checkpoint-*.pt") if (m := _CKPT_RE.search(p.name))]
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """``"auto"`` -> newest checkpoint in ``output_dir`` (None if there is none); a path -> that path."""
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    p = Path(resume)
    if not p.is_file():
        raise CheckpointError(f"--resume {resume}: no such checkpoint file; use a path or 'auto'")
    return p


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` training checkpoints."""
    if keep <= 0:
        return
    for p in list_checkpoints(output_dir)[:-keep]:
        p.unlink(missing_ok=True)


def training_state(
    model_state: dict[str, torch.Tensor], optimizer_state: dict, step: int, epoch: int, config: dict, **extra: Any
) -> dict[str, Any]:
    """The checkpoint dict, from full model and optimizer state dicts (see ``distributed.state_dicts``)."""
    return {
        "model": {strip_prefixes(k): v for k, v in model_state.items()},
        "optimizer": optimizer_state,
        "step": step,
        "epoch": epoch,
        "config": config,
        "version": __version__,
        "extra": extra,
    }


def export_safetensors(
    state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write model weights as safetensors (contiguous, shared storage broken), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata or {})
    os.replace(tmp, path)
    return path
