"""Build models by name: ``model_config(name)`` gives the registered config, ``create_model`` builds
it (with keyword overrides of single fields, and optionally weights from a maest checkpoint)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from torch import nn

import maest.models.zoo  # noqa: F401  (fills the registry)
from maest.models.encoder import EncoderConfig
from maest.models.layers import qkv_bias_form
from maest.models.mae import DecoderConfig, MAEConfig
from maest.models.registry import lookup, registered_names
from maest.models.vit import ClassifierConfig, load_pretrained
from maest.runs import checkpoint as ckpt

log = logging.getLogger("maest")

_ENCODER_KEYS = {f.name for f in dataclasses.fields(EncoderConfig)}
_DECODER_KEYS = {f.name for f in dataclasses.fields(DecoderConfig)}
# flat decoder keywords that are not ``decoder_`` + a field's own name (``decoder_norm_eps``: maest
# 0.1's name of the final norm's eps, read so only with legacy=True, refused otherwise)
_RENAMED = {"decoder_embed_dim": "embed_dim", "decoder_depth": "depth", "decoder_num_heads": "num_heads",
            "decoder_norm_eps": "final_norm_eps", "decoder_mlp_ratio": "mlp_ratio",
            "decoder_qkv_bias": "qkv_bias", "decoder_embed_bias": "embed_bias"}
_POOL_NAMES = {"avg": "mean", "token": "cls"}  # earlier ``global_pool`` values

# One keyword per LayerNorm group: keyword -> (section, field). ``norm_eps`` sets all of them (the
# official constructors' ``norm_layer``), these single groups out; the more specific keyword wins.
_EPS_KEYWORDS = {
    "encoder_block_norm_eps": ("encoder", "norm_eps"),  # norm1/norm2 of ``blocks``
    "final_norm_eps": ("encoder", "final_norm_eps"),  # ``norm`` (the classifier: after pooling)
    "encoder_final_norm_eps": ("encoder", "final_norm_eps"),  # the same, by its prefixed name
    "decoder_block_norm_eps": ("decoder", "norm_eps"),  # norm1/norm2 of ``decoder_blocks``
    "decoder_final_norm_eps": ("decoder", "final_norm_eps"),  # ``decoder_norm``
}
# settings the official MaskedAutoencoderViT gives encoder and decoder blocks alike -> the keyword
# that sets the decoder's alone (and then wins for the decoder)
_SHARED = {"mlp_ratio": "decoder_mlp_ratio", "qkv_bias": "decoder_qkv_bias"}
# keywords refused because two readings are plausible: keyword -> the one-line explanation
_AMBIGUOUS = {
    "decoder_norm_eps": "maest 0.1 reads it as the eps of the decoder's final norm (decoder_norm) only, while by "
                        "its name (the decoder's norm_eps) it would be the decoder blocks' eps; give "
                        "decoder_final_norm_eps (decoder_norm), decoder_block_norm_eps (decoder_blocks) or norm_eps "
                        "(every LayerNorm, as the official norm_layer)",
}


def model_config(name: str) -> MAEConfig | ClassifierConfig:
    """A fresh copy of the registered config of ``name`` (an alias such as "base" works too)."""
    return lookup(name)()


def count(n: float) -> str:
    """A parameter count as people write it: 49.2k, 86.2M, 1.1B."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def describe_model(model: nn.Module) -> str:
    """The model that was built, for logs and summaries: its encoder's width x depth, its parameters and
    tokens, e.g. ``"ViT 768x12, 86.2M parameters, 1568 tokens (16 frames x 224 px)"``."""
    cfg = getattr(model, "model_cfg", None)
    e = getattr(cfg, "encoder", None)
    params = count(sum(p.numel() for p in model.parameters()))
    if e is None:
        return f"{type(model).__name__}, {params} parameters"
    return (f"ViT {e.embed_dim}x{e.depth}, {params} parameters, {e.num_patches} tokens "
            f"({e.num_frames} frames x {e.img_size} px)")


def list_models(pattern: str = "") -> list[str]:
    """Registered model names containing ``pattern`` (aliases included)."""
    return [n for n in registered_names() if pattern in n]


def apply_flat_overrides(cfg: MAEConfig | ClassifierConfig, /, *, legacy: bool = False,
                         **kw: Any) -> MAEConfig | ClassifierConfig:
    """Set fields of ``cfg`` from flat keywords (the table is in :func:`create_model`'s docstring).

    Keywords the official ``MaskedAutoencoderViT`` / ``VisionTransformer`` constructors share mean what
    they mean there: ``norm_eps`` is the eps of every LayerNorm, ``mlp_ratio`` and ``qkv_bias`` (or the
    official ``no_qkv_bias``) reach the decoder blocks too unless ``decoder_mlp_ratio`` /
    ``decoder_qkv_bias`` say otherwise. Other encoder fields go by name (``depth=2``), decoder fields
    with a ``decoder_`` prefix, and the config's own fields by name. ``pred_t_dim`` (target frames),
    ``global_pool`` and ``drop_path_rate`` of earlier versions are translated. Unknown and ambiguous
    keys raise ``ValueError``.

    ``legacy=True`` reads the keywords as maest 0.1 wrote them into run configs (for
    :mod:`maest.upgrade` only): ``norm_eps``, ``mlp_ratio`` and ``qkv_bias`` set the encoder alone and
    ``decoder_norm_eps`` is the decoder's final norm.
    """
    kw = dict(kw)
    if "global_pool" in kw:
        pool = kw.pop("global_pool")
        if pool not in _POOL_NAMES:
            raise ValueError(f"global_pool={pool!r} is not one of {tuple(_POOL_NAMES)}")
        kw["pooling"] = _POOL_NAMES[pool]
    if "drop_path_rate" in kw:
        kw["drop_path"] = kw.pop("drop_path_rate")
    pred_t_dim = kw.pop("pred_t_dim", None)
    if isinstance(cfg, MAEConfig):  # maest 0.1's flat mask strategy and target switch
        if "mask_strategy" in kw:
            cfg.mask.strategy = kw.pop("mask_strategy")
        if "norm_pix_loss" in kw:
            cfg.target.kind = "norm_pix" if kw.pop("norm_pix_loss") else "pixels"
    if legacy:
        _set_fields_legacy(cfg, kw)
    else:
        _set_fields(cfg, kw)
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


def _set_fields(cfg: MAEConfig | ClassifierConfig, kw: dict[str, Any]) -> None:
    """Today's reading (the official constructors' meaning; see create_model's table)."""
    mae = isinstance(cfg, MAEConfig)
    for key, why in _AMBIGUOUS.items():
        if key in kw:
            raise ValueError(f"{cfg.name}: {key} is ambiguous: {why}")
    if "no_qkv_bias" in kw:  # the official constructors' spelling of qkv_bias=False
        no_bias = kw.pop("no_qkv_bias")
        form = "none" if no_bias else "qkv"
        if "qkv_bias" in kw and qkv_bias_form(kw["qkv_bias"]) != form:
            raise ValueError(f"{cfg.name}: qkv_bias={kw['qkv_bias']!r} contradicts no_qkv_bias={no_bias!r}; "
                             "give one of them")
        kw["qkv_bias"] = form
    if "sep_pos_embed" in kw:  # the official constructors' switch between separable and joint tables
        kind = "separable" if kw.pop("sep_pos_embed") else "joint"
        if kw.get("pos_embed_type", kind) != kind:
            raise ValueError(f"{cfg.name}: pos_embed_type={kw['pos_embed_type']!r} contradicts sep_pos_embed; "
                             "give one of them")
        kw["pos_embed_type"] = kind
    if "encoder_final_norm_eps" in kw:
        eps = kw.pop("encoder_final_norm_eps")
        if kw.get("final_norm_eps", eps) != eps:
            raise ValueError(f"{cfg.name}: final_norm_eps={kw['final_norm_eps']!r} contradicts "
                             f"encoder_final_norm_eps={eps!r} (one setting, two names); give one of them")
        kw["final_norm_eps"] = eps
    final_as_blocks = "final_norm_eps" in kw and kw["final_norm_eps"] is None  # earlier: "the blocks' eps"
    if final_as_blocks:
        kw.pop("final_norm_eps")
    groups = {"encoder": cfg.encoder, "decoder": cfg.decoder if mae else None}
    # 1. norm_eps: every LayerNorm; 2. the single groups; 3. the rest by name
    if "norm_eps" in kw:
        eps = kw.pop("norm_eps")
        for section, field in set(_EPS_KEYWORDS.values()):
            if groups[section] is not None:
                setattr(groups[section], field, eps)
    for key, (section, field) in _EPS_KEYWORDS.items():
        if key in kw and groups[section] is not None:
            setattr(groups[section], field, kw.pop(key))
    if final_as_blocks:
        cfg.encoder.final_norm_eps = cfg.encoder.norm_eps
    for key, decoder_key in _SHARED.items():
        if key in kw:
            setattr(cfg.encoder, key, kw[key])
            if mae and decoder_key not in kw:
                setattr(cfg.decoder, key, kw[key])
            kw.pop(key)
    _set_by_name(cfg, kw)


def _set_fields_legacy(cfg: MAEConfig | ClassifierConfig, kw: dict[str, Any]) -> None:
    """maest 0.1's reading: every encoder field by name, every decoder field ``decoder_``-prefixed,
    ``decoder_norm_eps`` the decoder's final norm, ``final_norm_eps=None`` the blocks' eps."""
    if kw.get("final_norm_eps", 0.0) is None:
        kw["final_norm_eps"] = kw.get("norm_eps", cfg.encoder.norm_eps)
    _set_by_name(cfg, kw)


def _set_by_name(cfg: MAEConfig | ClassifierConfig, kw: dict[str, Any]) -> None:
    own = {f.name for f in dataclasses.fields(cfg)} - {"encoder", "decoder"}
    for key, value in kw.items():
        if key in _ENCODER_KEYS:
            setattr(cfg.encoder, key, value)
        elif isinstance(cfg, MAEConfig) and (key in _RENAMED or key.removeprefix("decoder_") in _DECODER_KEYS):
            setattr(cfg.decoder, _RENAMED.get(key, key.removeprefix("decoder_")), value)
        elif key in own:
            setattr(cfg, key, value)
        else:
            hint = f"; the eps keywords are norm_eps, {', '.join(_EPS_KEYWORDS)}" if key.endswith("_eps") else ""
            raise ValueError(f"{cfg.name}: unknown model setting {key!r}{hint}")


def create_model(name: str, pretrained: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("mae_vit_base_patch16", depth=2)``.

    Keywords named after the official ``MaskedAutoencoderViT`` (models_mae.py) and
    ``VisionTransformer`` (models_vit.py) of facebookresearch/mae_st mean what they mean there, so
    an official model rebuilt from its own constructor keywords computes the same numbers:

    ==========================  =======================================================================
    keyword                     what it sets
    ==========================  =======================================================================
    ``norm_eps``                eps of every LayerNorm (the official ``norm_layer``): encoder blocks,
                                encoder ``norm``, decoder blocks and ``decoder_norm``; a classifier's
                                blocks and its ``norm`` (applied after pooling, as the official one)
    ``encoder_block_norm_eps``  norm1/norm2 of the encoder ``blocks`` only
    ``final_norm_eps``          the encoder's final ``norm`` only (alias ``encoder_final_norm_eps``;
                                None: the encoder blocks' eps)
    ``decoder_block_norm_eps``  norm1/norm2 of ``decoder_blocks`` only
    ``decoder_final_norm_eps``  ``decoder_norm`` only
    ``decoder_norm_eps``        refused as ambiguous (maest 0.1: ``decoder_norm`` only; by its name:
                                the decoder blocks); use one of the two above or ``norm_eps``
    ``mlp_ratio``               encoder and decoder blocks; ``decoder_mlp_ratio`` the decoder's alone
    ``qkv_bias``                encoder and decoder blocks (True/False or "qkv", "qv", "none");
                                ``no_qkv_bias`` is the official spelling; ``decoder_qkv_bias`` the
                                decoder's alone
    ``decoder_*``               any other decoder field (``decoder_embed_dim``, ``decoder_depth``,
                                ``decoder_num_heads``, ``decoder_embed_bias``, ...)
    ``pred_t_dim``              target frames (sets ``decoder.t_pred_patch_size``)
    ``sep_pos_embed``           the official switch: True "separable", False "joint" (``pos_embed_type``)
    other names                 the encoder field (``depth``, ``num_frames``, ``cls_embed``, ...) or
                                the config's own (``num_classes``, ``dropout``, ``drop_path``, ...)
    ==========================  =======================================================================

    A single-group keyword wins over ``norm_eps``, a ``decoder_*`` keyword over the shared one
    (``create_model(name, norm_eps=1e-5, decoder_final_norm_eps=1e-6)`` gives every LayerNorm but
    ``decoder_norm`` eps 1e-5). Unknown keywords, ``decoder_norm_eps`` and two names of one setting
    with different values raise ``ValueError``.

    With ``pretrained``, the weights of that maest checkpoint are loaded (strictly) and the model is
    returned in eval mode; the file's own config must describe the same model. ``maest.load(path)``
    does the same without a name. A classifier from a pre-training (MAE) checkpoint takes its encoder,
    as fine-tuning's ``--init`` does: the decoder is dropped, positional tables are resized, and the head
    is newly initialised, which a warning says (fine-tune it before trusting its outputs).
    """
    cfg = apply_flat_overrides(model_config(name), **overrides)
    model = cfg.build()
    if pretrained is None:
        return model
    state = ckpt.load_checkpoint(pretrained)
    weights = ckpt.model_state(state)
    if isinstance(cfg, ClassifierConfig) and (state.get("kind") == "mae" or "decoder_embed.weight" in weights):
        vit = getattr(model, "encoder", model)  # a probe wraps the classifier
        report = load_pretrained(vit, weights)
        log.warning("%s: encoder from the pre-training checkpoint %s (%d decoder keys dropped%s); the %s head (%d "
                    "classes) is newly initialised: fine-tune it before use", name, pretrained, len(report["dropped"]),
                    f", {', '.join(report['resized'])} resized" if report["resized"] else "",
                    "classifier" if cfg.probe == "none" else f"{cfg.probe} probe", cfg.num_classes)
        return model.eval()
    stored = state.get("model_config")
    if stored is not None and (EncoderConfig(**stored["encoder"]) != cfg.encoder or (
            isinstance(cfg, MAEConfig) and DecoderConfig(**stored.get("decoder", {})) != cfg.decoder)):
        raise ValueError(f"{pretrained} holds a different model than {name!r} with these settings; "
                         "use maest.load(path) to get the model the file describes")
    ckpt.load_model_weights(model, weights)
    return model.eval()
