"""``maest convert``: read a foreign checkpoint, build the matching maest model, convert with full
key accounting, and write a maest checkpoint (weights + config), safetensors or an HF folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from maest import checkpoint as ckpt
from maest.config import PretrainConfig
from maest.convert.accounting import ConversionError
from maest.convert.hf_videomae import export_hf_videomae, from_hf_videomae, model_kwargs
from maest.convert.official import from_official
from maest.convert.videomae import from_videomae
from maest.models import create_model


def _config_for(name: str, kwargs: dict[str, Any], classifier: bool) -> dict[str, Any]:
    """A config dict that ``maest`` commands rebuild the model from."""
    if classifier:
        from maest.finetune_config import FinetuneConfig

        cfg: Any = FinetuneConfig()
        kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
    else:
        cfg = PretrainConfig()
    unknown = set(kwargs) - set(cfg.model.__dataclass_fields__)
    if unknown:
        raise ConversionError(f"model settings {sorted(unknown)} cannot be stored in a maest config")
    cfg.model.name = name
    for k, v in kwargs.items():
        setattr(cfg.model, k, v)
    return cfg.to_dict()


def _infer_videomae(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, Any], bool]:
    """Model name and geometry of a VideoMAE checkpoint from its tensor shapes."""
    enc = "encoder." if any(k.startswith("encoder.") for k in state) else ""
    w = state[f"{enc}patch_embed.proj.weight"]
    D, _, u, p, _ = w.shape
    depth = len({k.split(".")[2 if enc else 1] for k in state if k.startswith(f"{enc}blocks.")})
    kw: dict[str, Any] = dict(embed_dim=D, depth=depth, num_heads=max(D // 64, 1), patch_size=p, t_patch_size=u,
                              pos_embed_type="sincos", cls_embed=False,
                              mlp_ratio=state[f"{enc}blocks.0.mlp.fc1.weight"].shape[0] / D)
    if enc:
        Dd = state["encoder_to_decoder.weight"].shape[0]
        kw.update(decoder_embed_dim=Dd, decoder_num_heads=max(Dd // 64, 1), mask_strategy="tube",
                  decoder_depth=len({k.split(".")[2] for k in state if k.startswith("decoder.blocks.")}))
        return "mae_vit_base_patch16", kw, False
    kw.update(num_classes=state["head.weight"].shape[0])
    return "vit_base_patch16", kw, True


def convert(src: str | Path, fmt: str, out: str | Path, model_name: str | None = None, to: str = "maest",
            num_frames: int = 16, img_size: int = 224) -> dict[str, Any]:
    """Convert ``src`` (``fmt``: official | videomae | hf) and write ``out`` (``to``: maest | safetensors | hf)."""
    src = Path(src)
    if fmt == "hf":
        folder = src if src.is_dir() else src.parent
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} has no config.json: pass a Hugging Face VideoMAE model folder")
        hf_cfg = json.loads((folder / "config.json").read_text())
        weights = next((f for f in (folder / "model.safetensors", folder / "pytorch_model.bin") if f.is_file()), None)
        if weights is None:
            raise FileNotFoundError(f"{folder} has neither model.safetensors nor pytorch_model.bin")
        state = ckpt.model_state(ckpt.load_checkpoint(weights))
        arch = (hf_cfg.get("architectures") or ["VideoMAEModel"])[0]
        classifier = arch == "VideoMAEForVideoClassification"
        if arch == "VideoMAEModel":
            raise ConversionError("a bare VideoMAEModel has no decoder or head; convert VideoMAEForPreTraining "
                                  "or VideoMAEForVideoClassification")
        kw = model_kwargs(hf_cfg, "classify" if classifier else "pretrain")
        name = model_name or ("vit_base_patch16" if classifier else "mae_vit_base_patch16")
        model = create_model(name, **kw)
        converted = from_hf_videomae(state, model)
    else:
        raw = ckpt.load_checkpoint(src)
        state = ckpt.model_state(raw)
        if fmt == "official":
            classifier = not any(k.startswith("decoder_") for k in state)
            if model_name is None:
                raise ValueError("--model is required for official checkpoints, e.g. mae_vit_large_patch16 "
                                 "(pre-training) or vit_large_patch16 (fine-tuned)")
            kw = dict(num_frames=num_frames, img_size=img_size)
            if classifier:
                head = state.get("head.weight", state.get("head.projection.weight"))
                kw["num_classes"] = head.shape[0]
            name = model_name
            model = create_model(name, **kw)
            converted = from_official(raw, model)
        elif fmt == "videomae":
            name, kw, classifier = _infer_videomae(state)
            kw.update(num_frames=num_frames, img_size=img_size)
            if not classifier:
                kw["pred_t_dim"] = num_frames
            name = model_name or name
            model = create_model(name, **kw)
            converted = from_videomae(raw, model)
        else:
            raise ValueError(f"unknown source format {fmt!r}; choose official, videomae or hf")
    model.load_state_dict(converted, strict=True)
    out = Path(out)
    if to == "hf":
        export_hf_videomae(model, out)
    elif to == "safetensors":
        ckpt.export_safetensors(converted, out, {"maest_model": model_name or "", "source": str(src)})
    elif to == "maest":
        config = _config_for(name, kw, classifier)
        ckpt.atomic_save({"model": converted, "config": config, "source": str(src), "format": fmt}, out)
    else:
        raise ValueError(f"unknown output {to!r}; choose maest, safetensors or hf")
    return {"source": str(src), "format": fmt, "output": str(out), "to": to, "tensors": len(converted),
            "parameters": sum(v.numel() for v in converted.values())}
