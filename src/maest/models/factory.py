"""Build models by name: ``model_config(name)`` gives the registered config, ``create_model`` builds
it (with keyword overrides of single fields, and optionally weights from a maest checkpoint)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

import maest.models.zoo  # noqa: F401  (fills the registry)
from maest import checkpoint as ckpt
from maest.models.encoder import EncoderConfig
from maest.models.mae import DecoderConfig, MAEConfig
from maest.models.registry import lookup, registered_names
from maest.models.vit import ClassifierConfig

_ENCODER_KEYS = {f.name for f in dataclasses.fields(EncoderConfig)}
_DECODER_KEYS = {f.name for f in dataclasses.fields(DecoderConfig)}
# flat keyword names of earlier maest versions (and of create_model) that are not a field's own name
_RENAMED = {"decoder_embed_dim": "embed_dim", "decoder_depth": "depth", "decoder_num_heads": "num_heads",
            "decoder_norm_eps": "final_norm_eps", "decoder_mlp_ratio": "mlp_ratio",
            "decoder_qkv_bias": "qkv_bias", "decoder_embed_bias": "embed_bias"}
_POOL_NAMES = {"avg": "mean", "token": "cls"}  # earlier ``global_pool`` values


def model_config(name: str) -> MAEConfig | ClassifierConfig:
    """A fresh copy of the registered config of ``name`` (an alias such as "base" works too)."""
    return lookup(name)()


def list_models(pattern: str = "") -> list[str]:
    """Registered model names containing ``pattern`` (aliases included)."""
    return [n for n in registered_names() if pattern in n]


def apply_flat_overrides(cfg: MAEConfig | ClassifierConfig, **kw: Any) -> MAEConfig | ClassifierConfig:
    """Set fields of ``cfg`` from flat keywords: encoder fields by name (``depth=2``), decoder fields
    with a ``decoder_`` prefix, and the config's own fields. ``pred_t_dim`` (target frames),
    ``global_pool`` and ``drop_path_rate`` of earlier versions are translated. Unknown keys raise."""
    kw = dict(kw)
    if "global_pool" in kw:
        pool = kw.pop("global_pool")
        if pool not in _POOL_NAMES:
            raise ValueError(f"global_pool={pool!r} is not one of {tuple(_POOL_NAMES)}")
        kw["pooling"] = _POOL_NAMES[pool]
    if "drop_path_rate" in kw:
        kw["drop_path"] = kw.pop("drop_path_rate")
    if kw.get("final_norm_eps", 0.0) is None:  # earlier versions: None meant "the blocks' eps"
        kw["final_norm_eps"] = kw.get("norm_eps", cfg.encoder.norm_eps)
    pred_t_dim = kw.pop("pred_t_dim", None)
    if isinstance(cfg, MAEConfig):  # maest 0.1's flat mask strategy and target switch
        if "mask_strategy" in kw:
            cfg.mask.strategy = kw.pop("mask_strategy")
        if "norm_pix_loss" in kw:
            cfg.target.kind = "norm_pix" if kw.pop("norm_pix_loss") else "pixels"
    own = {f.name for f in dataclasses.fields(cfg)} - {"encoder", "decoder"}
    for key, value in kw.items():
        if key in _ENCODER_KEYS:
            setattr(cfg.encoder, key, value)
        elif isinstance(cfg, MAEConfig) and (key in _RENAMED or key.removeprefix("decoder_") in _DECODER_KEYS):
            setattr(cfg.decoder, _RENAMED.get(key, key.removeprefix("decoder_")), value)
        elif key in own:
            setattr(cfg, key, value)
        else:
            raise ValueError(f"{cfg.name}: unknown model setting {key!r}")
    cfg.encoder.__post_init__()
    if isinstance(cfg, MAEConfig):
        cfg.decoder.__post_init__()
        if pred_t_dim is not None:
            e = cfg.encoder
            if (pred_t_dim * e.t_patch_size) % e.num_frames:
                raise ValueError(f"pred_t_dim={pred_t_dim} is not a whole number of frames per token for "
                                 f"num_frames={e.num_frames}, t_patch_size={e.t_patch_size}")
            cfg.decoder.t_pred_patch_size = pred_t_dim * e.t_patch_size // e.num_frames
    return cfg


def create_model(name: str, pretrained: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("mae_vit_base_patch16", depth=2)``.

    With ``pretrained``, the weights of that maest checkpoint are loaded (strictly) and the model is
    returned in eval mode; the file's own config must describe the same model. ``maest.load(path)``
    does the same without a name.
    """
    cfg = apply_flat_overrides(model_config(name), **overrides)
    model = cfg.build()
    if pretrained is None:
        return model
    state = ckpt.load_checkpoint(pretrained)
    stored = state.get("model_config")
    if stored is not None and (EncoderConfig(**stored["encoder"]) != cfg.encoder or (
            isinstance(cfg, MAEConfig) and DecoderConfig(**stored.get("decoder", {})) != cfg.decoder)):
        raise ValueError(f"{pretrained} holds a different model than {name!r} with these settings; "
                         "use maest.load(path) to get the model the file describes")
    ckpt.load_model_weights(model, ckpt.model_state(state))
    return model.eval()
