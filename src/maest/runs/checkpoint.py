"""Checkpoints: atomic writes, safe loading (``weights_only=True`` or safetensors), resume lookup,
and loading of model weights from the containers other code bases use.

A training checkpoint is a plain dict ``{model, optimizer, step, epoch, config, version, extra}`` saved
with ``torch.save`` to a temporary file and renamed into place, so a crash mid-write never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maest import __version__
from maest.runs.outputs import device_of

_CKPT_RE = re.compile(r"checkpoint-(\d+)\.pt$")
# atomic_save's temporary for checkpoint-<step>.pt: tempfile.mkstemp adds 8 characters of [a-z0-9_]
_TMP_RE = re.compile(r"\.checkpoint-\d+\.pt\.[a-z0-9_]{8}\.tmp")
# prefixes added by DDP/FSDP wrappers and torch.compile
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_checkpoint_wrapped_module.")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``. The file gets
    the permissions the umask gives a new file (``mkstemp`` alone would leave it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            out = _Writes(f)
            torch.save(obj, out)
            f.flush()
            os.chmod(tmp, 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        err = out.error if "out" in locals() and out.error else e
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(_disk_full_message(path, err)) from None
        raise
    return path


class DiskFull(OSError):
    """A save ran out of space (or quota); its message names the device and the file, and what is intact."""


class _Writes:
    """A binary file that remembers its first write error: ``torch.save`` reports one only as
    ``[enforce fail at inline_container.cc] unexpected pos``, without the errno."""

    def __init__(self, f: Any) -> None:
        self.f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def _disk_full_message(path: Path, err: OSError) -> str:
    others = [p for p in list_checkpoints(path.parent) if p != path]
    if others:
        kept = f"the previous checkpoint {others[-1]} is intact (resume from it with --resume once there is space)"
    else:
        kept = f"the earlier {path.name} is intact" if path.exists() else "nothing was replaced"
    what = "no space left" if err.errno == errno.ENOSPC else "disk quota exceeded"
    return f"{what} on {device_of(path.parent)} writing {path}; {kept}"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True`` (or a safetensors file as ``{"model": ...}``).
    ``mmap`` maps the tensors instead of reading them (for a look at the config of a file maest wrote)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was cut off while being written; "
                              "delete it and use an earlier checkpoint")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return {"model": load_file(str(path), device=str(map_location))}
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # torch and safetensors raise many types for damaged files
        if _is_pickled(path, str(e)):  # torch's weights-only unpickler met a Python object
            raise CheckpointError(_pickled_message(path, str(e))) from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(e))  # past torch's generic preamble
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: "
            f"{detail.group(1)[:200] if detail else first_line(e)}); "
            "it is corrupt, truncated or not a checkpoint: use an earlier one"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file ({} when it has none).

    Raises:
        CheckpointError: the file's header is not a safetensors header (not JSON, cut off, ...).
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type (and OSError) for a damaged header
        raise CheckpointError(f"safetensors file {path} could not be read ({first_line(e)}); it is corrupt, "
                              "truncated or not a safetensors file") from None


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message (200 characters at most), or "no message"."""
    return next((line.strip()[:200] for line in str(e).splitlines() if line.strip()), "no message")


def _is_pickled(path: Path, error: str) -> bool:
    """Whether a weights-only load failed on pickled Python objects (a global it refuses, or a raw pickle
    stream of a protocol it does not read), not on a damaged file."""
    if "Weights only load failed" not in error:
        return False
    if "GLOBAL" in error:
        return True
    with open(path, "rb") as f:
        head = f.read(2)
    return "Unsupported operand" in error and len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _pickled_message(path: Path, detail: str) -> str:
    """What to do with a checkpoint that holds pickled Python objects (not advice to load it unsafely)."""
    found = re.search(r"GLOBAL (\S+)", detail)
    what = f"it holds pickled Python objects ({found.group(1)})" if found else "it holds pickled Python objects"
    return (
        f"checkpoint {path} is not a plain-tensor checkpoint; it would execute code to load ({what}), and maest "
        "never runs code from a file. Convert it with the code that wrote it, keeping only tensors: "
        "torch.save({'model': model.state_dict()}, 'plain.pt') (or safetensors), then use plain.pt"
    )


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (``os.umask`` sets it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    problems = weight_problems(model.state_dict(), state, strict)
    if problems:
        raise CheckpointError(f"checkpoint does not fit the model ({problems}); check the model name and geometry")
    model.load_state_dict(state, strict=strict)


def weight_problems(own: dict[str, Any], state: dict[str, Any], strict: bool = True) -> str:
    """What keeps ``state`` from loading into a model whose state dict is ``own`` (shapes are compared,
    so ``own`` may live on the meta device): mis-shaped, and (``strict``) missing or unexpected keys; ""
    when it fits."""
    shape = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if shape:
        parts.append("shape mismatch: " + "; ".join(shape[:8]))
    if strict and missing:
        parts.append(f"missing {len(missing)} keys: {missing[:8]}")
    if strict and unexpected:
        parts.append(f"unexpected {len(unexpected)} keys: {unexpected[:8]}")
    return " | ".join(parts)


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


def checkpoint_step(path: str | Path) -> int:
    """The step in a ``checkpoint-<step>.pt`` name."""
    m = _CKPT_RE.search(Path(path).name)
    if m is None:
        raise ValueError(f"{path} is not named checkpoint-<step>.pt")
    return int(m.group(1))


def remove_stale_temporaries(output_dir: str | Path) -> list[Path]:
    """Delete the temporaries that :func:`atomic_save` leaves when a process dies mid-save
    (``.checkpoint-<step>.pt.<8 random characters>.tmp``) from ``output_dir``; no other file is touched.
    Call it only where no save is in flight (the main process at start and after its own save)."""
    d = Path(output_dir)
    if not d.is_dir():
        return []
    stale = [p for p in d.glob(".checkpoint-*.tmp") if _TMP_RE.fullmatch(p.name) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` training checkpoints."""
    if keep <= 0:
        return
    for p in list_checkpoints(output_dir)[:-keep]:
        p.unlink(missing_ok=True)


def training_state(
    model_state: dict[str, torch.Tensor], optimizer_state: dict, step: int, epoch: int, config: dict, kind: str,
    **extra: Any
) -> dict[str, Any]:
    """The checkpoint dict, from full model and optimizer state dicts (see ``distributed.state_dicts``).
    Like every maest checkpoint it says what it holds: ``kind`` and ``model_config`` (the run config's
    ``model`` section), which :func:`maest.load` rebuilds the model from."""
    return {
        "kind": kind,
        "model_config": config["model"],
        "model": {strip_prefixes(k): v for k, v in model_state.items()},
        "optimizer": optimizer_state,
        "step": step,
        "epoch": epoch,
        "config": config,
        "version": __version__,
        "extra": extra,
    }


def model_record(state: dict[str, torch.Tensor], kind: str, model_config: dict[str, Any], **extra: Any
                 ) -> dict[str, Any]:
    """A weights-only maest checkpoint: what :func:`maest.load` needs and nothing to resume from."""
    return {"kind": kind, "model_config": model_config, "model": {strip_prefixes(k): v for k, v in state.items()},
            "version": __version__, **extra}


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
