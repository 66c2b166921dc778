"""Hugging Face ``transformers`` VideoMAE (``VideoMAEForPreTraining``, ``VideoMAEForVideoClassification``)
to maest and back.

HF VideoMAE is the VideoMAE architecture: fixed 1-D sinusoid positions, no class token, query and
value biases only (``qkv_bias="qv"``) or none, inputs laid out (B, T, C, H, W). Its blocks use
``layer_norm_eps`` (default 1e-12) while ``fc_norm`` and the decoder's final norm use PyTorch's
1e-5. ``use_mean_pooling`` decides the final norm: with it, the encoder has no final norm at all
(the pre-training model feeds un-normalised tokens to the decoder) and the classifier applies
``fc_norm`` to the token mean; without it, ``layernorm`` normalises every token and the classifier
reads token 0.

Key names: transformers 4 writes ``attention.attention.q_bias`` / ``v_bias`` and the config key
``qkv_bias``; transformers 5 writes ``query.bias`` / ``value.bias`` and ``qv_bias``. Both are read.
Exports use the 4.x names, which transformers 5 renames on load, so the folder loads in both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from maest.convert.accounting import ConversionError, KeyMap
from maest.convert.spec import Imported, mlp_ratio

_LAYER = {"attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
          "layernorm_before": "norm1", "layernorm_after": "norm2"}
HF_NORM_EPS = 1e-5  # nn.LayerNorm's default: HF's fc_norm and decoder.norm (not configurable)
ARCHITECTURES = ("VideoMAEForPreTraining", "VideoMAEForVideoClassification")


def _qv_bias(config: dict[str, Any]) -> bool:
    return bool(config.get("qv_bias", config.get("qkv_bias", True)))


_SIZES = ("image_size", "patch_size", "num_frames", "tubelet_size", "hidden_size", "num_hidden_layers",
          "num_attention_heads", "intermediate_size")
_DECODER_SIZES = ("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
                  "decoder_intermediate_size")


def check_hf_sizes(config: dict[str, Any], classifier: bool) -> None:
    """Every size the conversion reads is in ``config`` and a positive integer: Hugging Face would fill a
    missing one with its default, maest does not guess which model the weights belong to."""
    for key in _SIZES + (() if classifier else _DECODER_SIZES):
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            what = "is missing" if key not in config else f"is {json.dumps(value)[:40]}, not a positive integer"
            raise ConversionError(f"config.json: {key} {what}; a VideoMAE config.json gives every size "
                                  "(transformers writes them all): restore it from the model's source")


def spec_from_hf(config: dict[str, Any], classifier: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """maest encoder (and decoder) fields equivalent to an HF ``VideoMAEConfig`` (as a dict)."""
    c = config
    check_hf_sizes(c, classifier)
    if c.get("num_channels", 3) != 3:
        raise ConversionError(f"num_channels={c['num_channels']}: only RGB models are supported")
    if c.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"hidden_act={c['hidden_act']!r}: only exact GELU ('gelu') is supported")
    mean_pool = c.get("use_mean_pooling", True)
    eps = c.get("layer_norm_eps", 1e-12)
    bias = "qv" if _qv_bias(c) else "none"
    encoder = dict(img_size=c["image_size"], patch_size=c["patch_size"], num_frames=c["num_frames"],
                   t_patch_size=c["tubelet_size"], in_chans=3, embed_dim=c["hidden_size"],
                   depth=c["num_hidden_layers"], num_heads=c["num_attention_heads"],
                   mlp_ratio=mlp_ratio(c["intermediate_size"], c["hidden_size"]), qkv_bias=bias, norm_eps=eps,
                   pos_embed_type="sincos", cls_embed=False, pooling="mean" if mean_pool else "token0",
                   mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    if classifier:  # fc_norm (eps 1e-5) on the mean, or layernorm (layer_norm_eps) then token 0
        encoder.update(final_norm=True, final_norm_eps=HF_NORM_EPS if mean_pool else eps)
        return encoder, None
    # pre-training: with mean pooling VideoMAEModel has no final norm at all
    encoder.update(final_norm=not mean_pool, final_norm_eps=eps)
    decoder = dict(embed_dim=c["decoder_hidden_size"], depth=c["decoder_num_hidden_layers"],
                   num_heads=c["decoder_num_attention_heads"],
                   mlp_ratio=mlp_ratio(c["decoder_intermediate_size"], c["decoder_hidden_size"]), qkv_bias=bias,
                   norm_eps=eps, final_norm_eps=HF_NORM_EPS, embed_bias=False, t_pred_patch_size=c["tubelet_size"])
    return encoder, decoder


def _layer(km: KeyMap, src: str, dst: str, bias: str) -> None:
    for a, b in _LAYER.items():
        for w in ("weight", "bias"):
            km.move(f"{src}.{a}.{w}", f"{dst}.{b}.{w}")
    att = f"{src}.attention.attention"
    for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
        km.move(f"{att}.{name}.weight", f"{dst}.attn.{short}.weight")
        if short == "k":
            if km.has(f"{att}.key.bias"):
                raise ConversionError(f"{att}.key.bias: HF VideoMAE has no key bias; this is not a VideoMAE state dict")
            continue
        if bias == "qv":
            v4 = f"{att}.{short}_bias"
            km.move(v4 if km.has(v4) else f"{att}.{name}.bias", f"{dst}.attn.{short}.bias")


def _label_names(config: dict[str, Any], n: int) -> list[str]:
    id2label = config.get("id2label") or {}
    names = [id2label.get(str(i), id2label.get(i)) for i in range(n)]
    return [str(x) for x in names] if all(x is not None for x in names) else []


def read_hf(config: dict[str, Any], state: dict[str, torch.Tensor]) -> Imported:
    """Geometry and maest-named weights of an HF VideoMAE model (config.json as a dict + its state dict)."""
    archs = config.get("architectures") or ["VideoMAEModel"]
    arch = archs[0] if isinstance(archs, list) else archs
    if arch not in ARCHITECTURES:
        raise ConversionError(f"architecture {arch}: maest converts {' and '.join(ARCHITECTURES)} (a bare "
                              "VideoMAEModel has no decoder or head)")
    classifier = arch == "VideoMAEForVideoClassification"
    encoder, decoder = spec_from_hf(config, classifier)
    bias = encoder["qkv_bias"]
    km = KeyMap(state, "Hugging Face VideoMAE state dict")
    p = "videomae."
    km.move(f"{p}embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight")
    km.move(f"{p}embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias")
    for i in range(encoder["depth"]):
        _layer(km, f"{p}encoder.layer.{i}", f"blocks.{i}", bias)
    km.skip(f"{p}embeddings.position_embeddings")  # the fixed sinusoid (older files store it): recomputed
    num_classes = 0
    if classifier:
        src = "fc_norm" if encoder["pooling"] == "mean" else f"{p}layernorm"
        for w in ("weight", "bias"):
            km.move(f"{src}.{w}", f"norm.{w}")
            km.move(f"classifier.{w}", f"head.{w}")
        num_classes = km.out["head.weight"].shape[0]
    else:
        if encoder["final_norm"]:
            for w in ("weight", "bias"):
                km.move(f"{p}layernorm.{w}", f"norm.{w}")
        km.move("encoder_to_decoder.weight", "decoder_embed.weight")
        km.move("mask_token", "mask_token")
        for i in range(decoder["depth"]):
            _layer(km, f"decoder.decoder_layers.{i}", f"decoder_blocks.{i}", bias)
        for w in ("weight", "bias"):
            km.move(f"decoder.norm.{w}", f"decoder_norm.{w}")
            km.move(f"decoder.head.{w}", f"decoder_pred.{w}")
    # HF's loss: norm_pix_loss -> VideoMAE's per-channel normalised pixels; else the pixels back in [0, 1]
    norm_pix = bool(config.get("norm_pix_loss", True))
    return Imported("classifier" if classifier else "mae", encoder, decoder, km.consumed(), num_classes=num_classes,
                    label_names=_label_names(config, num_classes) if classifier else [], mask_strategy="tube",
                    target="videomae_norm_pix" if norm_pix else "videomae_pixels")


def hf_export_problems(cfg: Any) -> list[str]:
    """Why a maest ``MAEConfig`` / ``ClassifierConfig`` has no exact HF VideoMAE counterpart ([] if it has)."""
    e = cfg.encoder
    why = []
    if e.pos_embed_type != "sincos":
        why.append(f"positional embeddings are {e.pos_embed_type!r} (HF VideoMAE only has a fixed sinusoid: "
                   "model.encoder.pos_embed_type=sincos)")
    if e.cls_embed:
        why.append("the model has a class token (HF VideoMAE has none: model.encoder.cls_embed=false)")
    if e.qkv_bias == "qkv":
        why.append("attention has key biases (HF VideoMAE has query and value biases only: model.encoder.qkv_bias=qv)")
    if e.in_chans != 3:
        why.append(f"in_chans={e.in_chans} (HF's processor is RGB)")
    target = getattr(cfg, "target", None)
    if cfg.kind == "mae" and target is not None and not target.is_pixels:
        why.append(f"the decoder predicts {target.kind} targets (HF VideoMAE predicts pixels)")
    if cfg.kind == "probe":
        why.append(f"it is a {cfg.probe} probe (HF VideoMAE has no probe head)")
    elif cfg.kind == "classifier":
        if e.pooling == "mean" and e.final_norm_eps != HF_NORM_EPS:
            why.append(f"the pooled norm has eps {e.final_norm_eps:g} (HF's fc_norm: {HF_NORM_EPS:g}, fixed): a "
                       f"classifier inherits it from --init, so pre-train with model.encoder.final_norm_eps="
                       f"{HF_NORM_EPS:g} and model.encoder.norm_eps={HF_NORM_EPS:g} (as videomae_v2_b_pretrain does)")
        elif e.pooling == "token0" and e.final_norm_eps != e.norm_eps:
            why.append(f"the final norm's eps {e.final_norm_eps:g} differs from the blocks' {e.norm_eps:g} "
                       f"(HF uses layer_norm_eps for both): pre-train with model.encoder.final_norm_eps={e.norm_eps:g}")
        elif e.pooling == "cls":
            why.append("it pools a class token")
        if not e.final_norm:
            why.append("it has no final norm (HF's classifier always normalises)")
    else:
        d = cfg.decoder
        if e.final_norm and e.final_norm_eps != e.norm_eps:
            why.append(f"the final norm's eps {e.final_norm_eps:g} differs from the blocks' {e.norm_eps:g} "
                       f"(HF uses layer_norm_eps for both): pre-train with model.encoder.final_norm_eps={e.norm_eps:g}")
        if d.embed_bias:
            why.append("decoder_embed has a bias (HF's encoder_to_decoder has none)")
        if d.qkv_bias != e.qkv_bias:
            why.append(f"decoder attention bias {d.qkv_bias!r} differs from the encoder's {e.qkv_bias!r} "
                       "(HF shares one)")
        if d.norm_eps != e.norm_eps:
            why.append(f"decoder block eps {d.norm_eps:g} differs from the encoder's {e.norm_eps:g} (HF shares one): "
                       f"pre-train with model.decoder.norm_eps={e.norm_eps:g}")
        if d.final_norm_eps != HF_NORM_EPS:
            why.append(f"decoder_norm has eps {d.final_norm_eps:g} (HF's decoder norm: {HF_NORM_EPS:g}, fixed): "
                       f"pre-train with model.decoder.final_norm_eps={HF_NORM_EPS:g}")
        if d.t_pred_patch_size != e.t_patch_size:
            why.append(f"each token predicts {d.t_pred_patch_size} of its {e.t_patch_size} frames (HF predicts all)")
    return why


def hf_export_notes(cfg: Any) -> list[str]:
    """Training-only settings of a pre-training model that an HF VideoMAE folder does not carry: its weights
    compute the same numbers, but ``VideoMAEForPreTraining`` would train (and score its loss) differently."""
    if cfg.kind != "mae":
        return []
    mask, target = cfg.mask, cfg.target.kind
    notes = [f"the mask ({mask.strategy}, ratio {mask.ratio:g}) is not part of an HF config: VideoMAEForPreTraining "
             "masks the tokens its caller passes as bool_masked_pos"]
    if mask.decoder != "none":
        notes.append(f"decoder masking ({mask.decoder}, ratio {mask.decoder_ratio:g}) is dropped: HF's decoder "
                     "reconstructs every masked token, so its loss differs from this run's")
    if target not in ("videomae_norm_pix", "videomae_pixels"):
        norm = target.endswith("norm_pix")
        notes.append(f"the target {target!r} becomes norm_pix_loss={str(norm).lower()}: HF's loss targets "
                     f"{'pixels normalised per tube and channel' if norm else 'pixels in [0, 1]'} (VideoMAE's), "
                     "not this run's")
    return notes


def export_hf_videomae(cfg: Any, state: dict[str, torch.Tensor], out_dir: str | Path) -> Path:
    """Write a maest model (its config and state dict) as an HF VideoMAE folder: config.json,
    model.safetensors and preprocessor_config.json (so ``AutoImageProcessor`` loads it).

    Raises:
        ConversionError: the model has no exact HF counterpart (see :func:`hf_export_problems`).
    """
    from maest.runs.checkpoint import export_safetensors

    why = hf_export_problems(cfg)
    if why:
        raise ConversionError("cannot export to Hugging Face VideoMAE: " + "; ".join(why))
    e, classifier = cfg.encoder, cfg.kind == "classifier"
    sd = _Tracked(state)
    out: dict[str, torch.Tensor] = {}

    def layer(src: str, dst: str, bias: str) -> None:
        for a, b in _LAYER.items():
            for w in ("weight", "bias"):
                out[f"{dst}.{a}.{w}"] = sd[f"{src}.{b}.{w}"]
        att = f"{dst}.attention.attention"
        for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
            out[f"{att}.{name}.weight"] = sd[f"{src}.attn.{short}.weight"]
        if bias == "qv":  # 4.x names; transformers 5 renames them to query.bias / value.bias on load
            out[f"{att}.q_bias"], out[f"{att}.v_bias"] = sd[f"{src}.attn.q.bias"], sd[f"{src}.attn.v.bias"]

    out["videomae.embeddings.patch_embeddings.projection.weight"] = sd["patch_embed.proj.weight"]
    out["videomae.embeddings.patch_embeddings.projection.bias"] = sd["patch_embed.proj.bias"]
    for i in range(e.depth):
        layer(f"blocks.{i}", f"videomae.encoder.layer.{i}", e.qkv_bias)
    hidden = sd["blocks.0.mlp.fc1.weight"].shape[0] if e.depth else int(e.embed_dim * e.mlp_ratio)
    config: dict[str, Any] = {
        "model_type": "videomae", "image_size": e.img_size, "patch_size": e.patch_size, "num_channels": 3,
        "num_frames": e.num_frames, "tubelet_size": e.t_patch_size, "hidden_size": e.embed_dim,
        "num_hidden_layers": e.depth, "num_attention_heads": e.num_heads, "intermediate_size": hidden,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02, "layer_norm_eps": e.norm_eps, "qkv_bias": e.qkv_bias == "qv",
    }
    if classifier:
        mean_pool = e.pooling == "mean"
        src = "fc_norm" if mean_pool else "videomae.layernorm"
        for w in ("weight", "bias"):
            out[f"{src}.{w}"] = sd[f"norm.{w}"]
            out[f"classifier.{w}"] = sd[f"head.{w}"]
        names = list(cfg.label_names) or [f"LABEL_{i}" for i in range(cfg.num_classes)]
        config.update(architectures=["VideoMAEForVideoClassification"], use_mean_pooling=mean_pool,
                      id2label={str(i): n for i, n in enumerate(names)},
                      label2id={n: i for i, n in enumerate(names)})
    else:
        d = cfg.decoder
        if e.final_norm:
            out["videomae.layernorm.weight"], out["videomae.layernorm.bias"] = sd["norm.weight"], sd["norm.bias"]
        out["encoder_to_decoder.weight"] = sd["decoder_embed.weight"]
        out["mask_token"] = sd["mask_token"]
        for i in range(d.depth):
            layer(f"decoder_blocks.{i}", f"decoder.decoder_layers.{i}", d.qkv_bias)
        for w in ("weight", "bias"):
            out[f"decoder.norm.{w}"] = sd[f"decoder_norm.{w}"]
            out[f"decoder.head.{w}"] = sd[f"decoder_pred.{w}"]
        dhidden = sd["decoder_blocks.0.mlp.fc1.weight"].shape[0] if d.depth else int(d.embed_dim * d.mlp_ratio)
        config.update(architectures=["VideoMAEForPreTraining"], use_mean_pooling=not e.final_norm,
                      norm_pix_loss=cfg.target.kind in ("norm_pix", "videomae_norm_pix"),
                      decoder_hidden_size=d.embed_dim,
                      decoder_num_hidden_layers=d.depth, decoder_num_attention_heads=d.num_heads,
                      decoder_intermediate_size=dhidden)
    left = sorted(set(state) - sd.used)
    if left:
        raise ConversionError(f"cannot export to Hugging Face VideoMAE: weights without a counterpart: {left[:8]}")
    processor = {
        "image_processor_type": "VideoMAEImageProcessor", "do_resize": True, "size": {"shortest_edge": e.img_size},
        "resample": 2, "do_center_crop": True, "crop_size": {"height": e.img_size, "width": e.img_size},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": list(e.mean), "image_std": list(e.std),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(out_dir / "config.json", json.dumps(config, indent=2) + "\n")
    _write_text(out_dir / "preprocessor_config.json", json.dumps(processor, indent=2) + "\n")
    export_safetensors(out, out_dir / "model.safetensors", {"format": "pt"})
    return out_dir


class _Tracked(dict):
    """A state dict that records which keys were read."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__(state)
        self.used: set[str] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        self.used.add(key)
        return super().__getitem__(key)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
