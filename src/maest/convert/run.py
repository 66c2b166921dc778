"""``maest convert``: read a checkpoint (official MAE-ST, VideoMAE, Hugging Face VideoMAE, or maest
itself), work out the exact maest model it describes, and write a maest checkpoint (weights + model
config), safetensors (weights, config in the metadata) or a Hugging Face VideoMAE folder.

Every path is exact or refuses: weights are moved with full key accounting, the model is rebuilt
from the resolved config and loaded strictly, and anything without an exact counterpart (a head
count the weights do not record, cosine attention, key biases for HF, ...) is a one-line error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from maest.convert.accounting import ConversionError, check_fits
from maest.convert.hf_videomae import export_hf_videomae, hf_export_notes, read_hf
from maest.convert.official import from_official_state
from maest.convert.spec import build_config
from maest.convert.videomae import is_videomae, read_videomae
from maest.loading import meta_model
from maest.runs import checkpoint as ckpt

FORMATS = {
    "maest": "a maest checkpoint",
    "official": "an official MAE-ST / SlowFast checkpoint (separate attn.q/k/v weights)",
    "videomae": "an original VideoMAE / VideoMAE V2 checkpoint (fused attn.qkv weights)",
    "hf": "a Hugging Face VideoMAE model",
}
OUTPUTS = ("maest", "safetensors", "hf")


def _load(path: Path) -> dict[str, Any]:
    # official MAE-ST checkpoints store their argparse Namespace next to the weights
    with torch.serialization.safe_globals([argparse.Namespace]):
        return ckpt.load_checkpoint(path)


def _safetensors_metadata(path: Path) -> dict[str, str]:
    return ckpt.safetensors_metadata(path)


def _hf_folder(src: Path) -> Path | None:
    folder = src if src.is_dir() else src.parent
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            raise ConversionError(f"{cfg} holds a JSON {type(data).__name__}, not an object of model settings; "
                                  "a Hugging Face config.json is one object (model_type, hidden_size, ...)")
        return folder if data.get("model_type") == "videomae" else None
    return None


def _hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of an HF model folder: one weights file, or the shards its index lists."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return ckpt.model_state(_load(folder / name))
        index = folder / f"{name}.index.json"
        if index.is_file():
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
                state.update(ckpt.model_state(_load(folder / shard)))
            return state
    raise FileNotFoundError(f"{folder} has neither model.safetensors nor pytorch_model.bin (nor a sharded index)")


def detect_format(src: str | Path, raw: dict[str, Any] | None = None) -> str:
    """Which of :data:`FORMATS` ``src`` is (a file, or a Hugging Face model folder)."""
    src = Path(src)
    if src.is_dir():
        if _hf_folder(src):
            return "hf"
        raise ConversionError(f"{src} is a folder without a VideoMAE config.json; pass a checkpoint file or a "
                              "Hugging Face VideoMAE model folder")
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist; check the path")
    if src.suffix == ".safetensors" and "model_config" in _safetensors_metadata(src):
        return "maest"
    raw = _load(src) if raw is None else raw
    if "model_config" in raw or isinstance(raw.get("config"), dict) and isinstance(raw["config"].get("model"), dict):
        return "maest"
    state = ckpt.model_state(raw)
    if any(k.startswith(("videomae.", "embeddings.patch_embeddings")) for k in state):
        return "hf"
    if is_videomae(state):
        return "videomae"
    if any(k.startswith(("patch_embed.proj.", "blocks.0.attn.q.")) for k in state):
        return "official"
    raise ConversionError(f"{src}: unrecognised checkpoint layout (first keys {sorted(state)[:4]}); expected "
                          "MAE-ST, VideoMAE or Hugging Face VideoMAE weights")


def _check_sizes(what: str, e: Any, num_frames: int | None, img_size: int | None) -> None:
    for flag, given, own in (("--num-frames", num_frames, e.num_frames), ("--img-size", img_size, e.img_size)):
        if given is not None and given != own:
            raise ConversionError(f"{flag} {given} contradicts {what}, which records {own}; omit {flag}")


def read_source(src: Path, fmt: str, raw: dict[str, Any] | None, *, model_name: str | None = None,
                num_frames: int | None = None, img_size: int | None = None, num_heads: int | None = None,
                decoder_num_heads: int | None = None) -> tuple[Any, dict[str, torch.Tensor], list[str]]:
    """(maest model config, maest state dict, notes) of ``src`` read as ``fmt``."""
    if (num_heads or decoder_num_heads) and fmt not in ("videomae", "official"):
        raise ConversionError("--num-heads / --decoder-num-heads apply to VideoMAE and official MAE-ST checkpoints "
                              f"only ({FORMATS[fmt]} records its head count)")
    if fmt == "maest":
        from maest.loading import read  # the one loader (safetensors metadata included)

        rec = read(src)
        cfg, state = rec.model_config, ckpt.model_state(rec.state)
        _check_sizes("the checkpoint's config", cfg.encoder, num_frames, img_size)
        if model_name:
            cfg.name = model_name
        return cfg, state, []
    if fmt == "hf":
        folder = _hf_folder(src)
        if folder is None:
            raise ConversionError(f"{src} has no VideoMAE config.json beside it; pass the Hugging Face model folder")
        hf_cfg = json.loads((folder / "config.json").read_text())
        try:
            imp = read_hf(hf_cfg, _hf_weights(folder))
        except ConversionError as e:
            raise ConversionError(f"{folder}: {e}") from None
        cfg = build_config(imp, model_name)
        _check_sizes("config.json", cfg.encoder, num_frames, img_size)
        return cfg, imp.state, imp.notes
    raw = _load(src) if raw is None else raw
    state = ckpt.model_state(raw)
    if fmt == "videomae":
        imp = read_videomae(state, 16 if num_frames is None else num_frames, 224 if img_size is None else img_size,
                            num_heads, decoder_num_heads)
        return build_config(imp, model_name), imp.state, imp.notes
    if fmt == "official":
        cfg, out = from_official_state(state, model_name, num_frames, img_size, num_heads, decoder_num_heads)
        return cfg, out, []
    raise ValueError(f"unknown source format {fmt!r}; choose one of {sorted(FORMATS)} or auto")


def refuse_non_float(state: dict[str, torch.Tensor], src: Path) -> None:
    """Every converted tensor is a weight: integer or boolean tensors (e.g. a step counter or a mask saved
    among the weights) would be cast silently by ``load_state_dict``; refuse them, naming them."""
    bad = [f"{k} ({str(v.dtype).removeprefix('torch.')})" for k, v in state.items() if not v.is_floating_point()]
    if bad:
        raise ConversionError(f"{src}: {len(bad)} tensor(s) that must hold floating-point weights are not "
                              f"floating point: {', '.join(bad[:6])}; the file is not a model checkpoint or is "
                              "damaged")


def _refuse_overwrite(out: Path, to: str, force: bool) -> None:
    if force:
        return
    if to == "hf" and out.is_dir() and any(out.iterdir()) or to != "hf" and out.exists():
        raise ConversionError(f"{out} already exists; choose another output or pass --force to overwrite it")


def convert(src: str | Path, out: str | Path, fmt: str = "auto", to: str = "maest", model_name: str | None = None,
            num_frames: int | None = None, img_size: int | None = None, num_heads: int | None = None,
            decoder_num_heads: int | None = None, force: bool = False) -> dict[str, Any]:
    """Convert ``src`` (``fmt``: auto | maest | official | videomae | hf) and write ``out``
    (``to``: maest | safetensors | hf). Returns a report dict; raises ConversionError (a ValueError)
    for anything that would not be exact."""
    src, out = Path(src), Path(out)
    if to not in OUTPUTS:
        raise ValueError(f"unknown output {to!r}; choose one of {OUTPUTS}")
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"unknown source format {fmt!r}; choose one of {sorted(FORMATS)} or auto")
    if src.resolve() == out.resolve():
        raise ConversionError(f"{out} is the source itself; write the conversion elsewhere")
    _refuse_overwrite(out, to, force)
    raw = None if src.is_dir() or not src.is_file() or src.suffix == ".safetensors" else _load(src)
    detected = detect_format(src, raw)
    if fmt == "auto":
        fmt = detected
    elif fmt != detected:
        raise ConversionError(f"{src} is {FORMATS[detected]}, not {FORMATS[fmt]}: use --from {detected}")
    cfg, state, notes = read_source(src, fmt, raw, model_name=model_name, num_frames=num_frames, img_size=img_size,
                                    num_heads=num_heads, decoder_num_heads=decoder_num_heads)
    refuse_non_float(state, src)
    skeleton = meta_model(cfg, state, f"{src} ({FORMATS[fmt]})")  # declared sizes vs the weights, no memory
    check_fits(state, skeleton.state_dict(), f"{src}: {FORMATS[fmt]} -> maest {cfg.kind}")
    model = cfg.build()
    model.load_state_dict(state, strict=True)
    config = dataclasses.asdict(cfg)
    if to == "hf":
        export_hf_videomae(cfg, state, out)
        notes = [*notes, *hf_export_notes(cfg)]  # training-only settings the folder does not carry
    elif to == "safetensors":
        ckpt.export_safetensors(state, out, {"format": "pt", "kind": cfg.kind, "model_config": json.dumps(config),
                                             "source": str(src)})
    else:
        ckpt.atomic_save(ckpt.model_record(state, cfg.kind, config, source=str(src), format=fmt), out)
    return {"source": str(src), "format": fmt, "output": str(out), "to": to, "kind": cfg.kind,
            "tensors": len(state), "parameters": sum(v.numel() for v in state.values()), "notes": notes}
