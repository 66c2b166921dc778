"""Files of earlier maest versions become today's, here and nowhere else: run configs (``config.json``
and the ``config`` stored in checkpoints) and checkpoint model records.

- maest 0.1 wrote a flat ``model`` section (a name plus optional geometry keywords); it is resolved
  into today's nested encoder / decoder / mask / target sections.
- The first nested configs carried ``mask_strategy`` / ``norm_pix_loss`` on the model section; they
  moved into ``model.mask`` and ``model.target``.
- ``train.mask_ratio`` moved to ``model.mask.ratio``, beside the strategy it belongs to.
- ``grad_checkpointing`` moved from the model section to ``train``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from maest.models import model_config
from maest.models.factory import apply_flat_overrides

log = logging.getLogger("maest")

# ``--set`` keys of earlier versions -> today's (the value means the same)
RENAMED_KEYS = {"train.mask_ratio": "model.mask.ratio"}


def upgrade_overrides(overrides: list[str]) -> list[str]:
    """``--set`` strings with keys of earlier versions renamed, each rename logged once."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if key.strip() in RENAMED_KEYS:
            new = RENAMED_KEYS[key.strip()]
            log.warning("--set %s: the key is now %s (reading it as that)", key.strip(), new)
            item = f"{new}{sep}{value}"
        out.append(item)
    return out


def upgrade_model_section(data: dict[str, Any], classifier: bool) -> dict[str, Any]:
    """A ``model`` section of maest 0.1 (a name plus flat, optional geometry overrides) as the
    resolved config of today; a current section is returned unchanged."""
    if "encoder" in data:
        return _mask_target_sections(data)
    flat = {k: v for k, v in data.items() if v is not None and k not in ("grad_checkpointing",)}
    name = flat.pop("name", "vit_large_patch16" if classifier else "mae_vit_base_patch16")
    if classifier and "cls_embed" not in data:
        flat["cls_embed"] = True
    # read as 0.1 meant them: norm_eps / mlp_ratio / qkv_bias set the encoder alone, decoder_norm_eps
    # the decoder's final norm (create_model's keywords now follow the official constructor instead)
    cfg = apply_flat_overrides(model_config(name), legacy=True, **flat)
    return dataclasses.asdict(cfg)


def upgrade_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """A run config dict (pre-training or fine-tuning) from an earlier maest version, brought to the
    current layout: flat model sections resolved, settings that moved between sections moved."""
    data = json.loads(json.dumps(data))  # a deep copy
    model, train = data.get("model", {}), data.get("train", {})
    classifier = "mix" in data
    if "encoder" not in model:
        if model.get("grad_checkpointing"):
            train["grad_checkpointing"] = True
        if not classifier and "norm_pix_loss" in train:
            model["norm_pix_loss"] = train["norm_pix_loss"]
        norm_pix = model.pop("norm_pix_loss", None)
        data["model"] = upgrade_model_section(model, classifier)
        if norm_pix is not None and "target" in data["model"]:
            data["model"]["target"]["kind"] = "norm_pix" if norm_pix else "pixels"
    elif not classifier:
        data["model"] = _mask_target_sections(model)
    train.pop("norm_pix_loss", None)
    ratio = train.pop("mask_ratio", None)
    if ratio is not None and not classifier:
        data["model"].setdefault("mask", {})["ratio"] = ratio
    return data


def upgrade_model_record(section: dict[str, Any], classifier: bool, run: dict[str, Any] | None) -> dict[str, Any]:
    """A checkpoint's ``model_config`` in today's layout; a pre-training record written before the mask
    ratio joined ``model.mask`` takes the ratio its run trained with (``run``: the stored run config)."""
    section = upgrade_model_section(section, classifier)
    ratio = ((run or {}).get("train") or {}).get("mask_ratio")
    if not classifier and ratio is not None and "ratio" not in section.get("mask", {}):
        section = {**section, "mask": {**section.get("mask", {}), "ratio": ratio}}
    return section


def _mask_target_sections(section: dict[str, Any]) -> dict[str, Any]:
    """An MAE section with the flat ``mask_strategy`` / ``norm_pix_loss`` of the first resolved
    configs, moved into its ``mask`` and ``target`` sections."""
    if "mask_strategy" not in section and "norm_pix_loss" not in section:
        return section
    section = dict(section)
    mask, target = dict(section.get("mask", {})), dict(section.get("target", {}))
    if "mask_strategy" in section:
        mask["strategy"] = section.pop("mask_strategy")
    if "norm_pix_loss" in section:
        videomae = target.get("kind", "").startswith("videomae_")
        target["kind"] = ("videomae_" if videomae else "") + ("norm_pix" if section.pop("norm_pix_loss") else "pixels")
    section["mask"], section["target"] = mask, target
    return section
