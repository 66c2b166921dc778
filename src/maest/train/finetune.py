"""Fine-tuning and probing: train a video ViT classifier from MAE-ST weights (or from
scratch) with layer-wise lr decay, mixup/cutmix + label smoothing, RandAugment, repeated sampling,
drop path, per-iteration warmup + cosine lr, optional bf16, atomic checkpoints, exact resume and a
validation pass after every epoch (arXiv:2205.09113 §4; the reference's ``main_finetune.py``).

Exact resume: augmentation is seeded per item (:class:`~maest.data.loader.SeededItems`), the mixup draw
and the global RNG used by dropout / drop path are re-seeded from (seed, step, rank, micro-batch).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from maest import runtime
from maest.data.datasets import data_classes
from maest.data.transfer import DeviceInput
from maest.eval.test import predict_views, summarize, topk_key
from maest.loading import NoModelConfig, describe
from maest.models import ClassifierConfig, EncoderConfig, describe_model
from maest.models.probe import ProbedEncoder
from maest.models.vit import load_pretrained
from maest.runs import checkpoint as ckpt
from maest.runs.metrics import MetricsLogger
from maest.runtime import autocast, mix_seed, resolve_precision
from maest.train.config import FinetuneConfig
from maest.train.loop import effective_batch, train
from maest.train.losses import classification_loss
from maest.train.mixup import Mixup
from maest.train.optim import param_groups_layer_decay
from maest.train.run_folder import check_before_start

log = logging.getLogger("maest")


# encoder settings fine-tuning may choose itself: positional tables are resized to a new frame count
# or resolution, and pooling is a head choice; everything else must be the pre-trained encoder's
_OWN_ENCODER_SETTINGS = ("num_frames", "img_size", "pooling")


def inherit_encoder(cfg: FinetuneConfig, source: EncoderConfig, what: str) -> list[str]:
    """Take the encoder geometry of a pre-trained (or resumed) model into ``cfg``, so a recipe need
    not repeat it; returns the settings that changed, as ``key=value``."""
    changed = []
    for f in dataclasses.fields(EncoderConfig):
        value = getattr(source, f.name)
        if f.name not in _OWN_ENCODER_SETTINGS and getattr(cfg.model.encoder, f.name) != value:
            setattr(cfg.model.encoder, f.name, value)
            changed.append(f"{f.name}={value}")
    if changed:
        log.info("model.encoder from %s: %s", what, ", ".join(changed))
    return changed


def init_overrides(cfg: FinetuneConfig, keys: list[str]) -> list[str]:
    """One warning line per ``--set`` key among ``keys`` that ``cfg.init``'s encoder will override (fine-tuning
    keeps the pre-trained encoder's settings but for num_frames, img_size and pooling); the lines are logged and
    returned. A file that cannot be read is left for the run to report."""
    try:
        source = describe(cfg.init, ckpt.load_checkpoint(cfg.init, mmap=True)).model_config.encoder
    except (NoModelConfig, ValueError, OSError, RuntimeError):
        return []
    lines = []
    for key in dict.fromkeys(keys):
        name = key.removeprefix("model.encoder.")
        if name == key or name in _OWN_ENCODER_SETTINGS or not hasattr(source, name):
            continue
        if getattr(source, name) != getattr(cfg.model.encoder, name):
            lines.append(f"--set {key}={getattr(cfg.model.encoder, name)} is overridden by --init {cfg.init}, whose "
                         f"encoder has {name}={getattr(source, name)}: fine-tuning keeps the pre-trained encoder "
                         f"(only {', '.join(_OWN_ENCODER_SETTINGS)} may differ); set it at pre-training")
    for line in lines:
        log.warning("%s", line)
    return lines


def classes_from_data(model: ClassifierConfig, dataset: Dataset, source: str) -> None:
    """Resolve ``model.num_classes`` 0 to the classes the training data has, refuse a given count the
    data contradicts, and keep the data's class names in ``model.label_names`` (checkpoints carry them into
    test, predict, report and exports)."""
    found = data_classes(dataset)
    what = f"{source or 'the training data'}"
    if model.num_classes == 0:
        if found.count is None:
            raise ValueError(f"model.num_classes is not set and {what} does not say how many classes it has (no class "
                             "folders, classes.txt or labels); set model.num_classes")
        model.num_classes = found.count
        log.info("model.num_classes=%d from %s%s", found.count, what, "" if found.exact else " (its largest label + 1)")
    elif found.count is not None and (model.num_classes != found.count if found.exact
                                      else model.num_classes < found.count):
        has = f"{found.count} classes" if found.exact else f"labels up to {found.count - 1}"
        raise ValueError(f"model.num_classes={model.num_classes} but {what} has {has}; drop the setting to take "
                         f"it from the data, or set model.num_classes={found.count}")
    if not model.label_names and found.names and len(found.names) == model.num_classes:
        model.label_names = list(found.names)


def _init_weights(cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
    """The encoder weights of ``cfg.init``; a maest checkpoint also gives the encoder geometry. Weights
    without a config (an official MAE-ST file) are taken as the recipe's encoder, and must fit it exactly."""
    state = ckpt.load_checkpoint(cfg.init)
    try:
        source = describe(cfg.init, state)
    except NoModelConfig:
        log.info("%s holds no maest model config: its weights must fit the recipe's model.encoder", cfg.init)
        return ckpt.model_state(state)
    source.check()  # its declared geometry against its weights, before the classifier inherits it
    inherit_encoder(cfg, source.model_config.encoder, cfg.init)
    return ckpt.model_state(source.state)


def build_classifier(cfg: FinetuneConfig, init_state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The classifier (or probed encoder) of ``cfg``, with ``init_state`` encoder weights loaded."""
    model = cfg.model.build()
    vit = model.encoder if isinstance(model, ProbedEncoder) else model
    vit.grad_checkpointing = cfg.train.grad_checkpointing
    if init_state is not None:
        report = load_pretrained(vit, init_state)
        log.info("initialised from %s (dropped %d pre-training keys%s)", cfg.init, len(report["dropped"]),
                 f"; resized {', '.join(report['resized'])}" if report["resized"] else "")
    return model


def run(cfg: FinetuneConfig, dataset: Dataset | None = None, val_dataset: Dataset | None = None) -> dict[str, Any]:
    """Fine-tune (or probe); returns a summary (steps, last loss, checkpoint, per-epoch validation).

    Args:
        cfg: the run configuration (validated here).
        dataset: optional map-style dataset yielding ``{"video": (r, C, T, H, W), "label": (r,),
            "skipped": [...]}``; built from ``cfg.data.source`` when None.
        val_dataset: optional dataset yielding one or more views per video; built from
            ``cfg.data.val_source`` when None and that is set.
    """
    cfg.validate()
    info = runtime.init(cfg.train.device)
    try:
        check_before_start(cfg, info)  # before loading: data.cache=memory decodes the whole set first
        return _run(cfg, dataset, val_dataset, info)
    finally:
        runtime.shutdown()


def _run(cfg: FinetuneConfig, dataset: Dataset | None, val_dataset: Dataset | None,
         info: runtime.DistInfo) -> dict[str, Any]:
    t, o, m = cfg.train, cfg.optim, cfg.model
    torch.manual_seed(t.seed)
    # a resumed run loads all weights from its checkpoint: no need to read the pre-training one
    resume_from = ckpt.resolve_resume(t.resume, t.output_dir)
    init_state = None
    if resume_from is not None:
        # only the config is needed here (the trainer loads the state): map the file, do not read it
        source = describe(resume_from, ckpt.load_checkpoint(resume_from, mmap=True))
        source.check()
        inherit_encoder(cfg, source.model_config.encoder, str(resume_from))
    elif cfg.init:
        init_state = _init_weights(cfg)
    cfg.validate()
    if dataset is None:
        dataset = cfg.data.build(cfg.model.encoder, "finetune", num_classes=cfg.model.num_classes or None)
    classes_from_data(cfg.model, dataset, cfg.data.source)
    model = build_classifier(cfg, init_state).to(info.device)
    if val_dataset is None and cfg.data.val_source:
        val_dataset = cfg.data.build(cfg.model.encoder, "val", num_classes=cfg.model.num_classes)
    # the reference's fine-tuning lr counts repeated clips (main_finetune.py's eff_batch_size x repeat_aug)
    base_lr = o.peak_lr(effective_batch(cfg, info) * cfg.data.repeat_aug)
    precision = resolve_precision(t.precision, info.device)
    mixup = cfg.mix.build(m.num_classes)
    depth = m.encoder.depth
    groups = param_groups_layer_decay(model, o.weight_decay, o.layer_decay, num_layers=depth + 1,
                                      head_lr_scale=o.head_lr_scale)
    optimizer = o.build(groups, base_lr, info.device)
    to_input = DeviceInput.of(dataset, info.device, m.encoder)  # uint8 clips: normalised on the device

    def loss_fn(train_model: nn.Module, batch: dict, step: int, accum_pos: int) -> torch.Tensor:
        return _forward_loss(train_model, batch, mixup, cfg, info, step, accum_pos, precision, to_input)

    def epoch_end(epoch: int, step: int, logger: MetricsLogger) -> dict | None:
        if val_dataset is None:
            return None
        return _validate(model, val_dataset, cfg, info, precision, logger, step, epoch)

    title = f"{'finetune' if m.probe == 'none' else m.probe + '-probe'} {describe_model(model)}"
    return train(cfg, model, optimizer, dataset, info, loss_fn, base_lr=base_lr, precision=precision,
                 title=title, epoch_end=epoch_end)


def probe(cfg: FinetuneConfig, dataset: Dataset | None = None, val_dataset: Dataset | None = None) -> dict[str, Any]:
    """Train a probe on ``cfg.init``'s frozen encoder (``cfg.model.probe``): MAE's linear probe (BatchNorm
    without affine + linear, He et al. arXiv:2111.06377 §A.3) or an attentive probe (one cross-attention
    pooling layer; :mod:`maest.models.probe`), with fine-tuning's loop and only the probe's parameters
    in the optimizer."""
    if cfg.model.probe == "none":
        raise ValueError("model.probe=none fine-tunes the whole model: use maest finetune, or set "
                         "model.probe=linear or attentive")
    if not cfg.init and cfg.train.resume is None:
        raise ValueError("a probe needs pre-trained weights: pass --init PRETRAIN_CHECKPOINT")
    return run(cfg, dataset, val_dataset)


def _forward_loss(model: nn.Module, batch: dict, mixup: Mixup, cfg: FinetuneConfig, info: runtime.DistInfo,
                  step: int, micro: int, precision: str, to_input: DeviceInput) -> torch.Tensor:
    """Mix the batch, forward, and return the classification loss (fp32 scalar)."""
    seed = cfg.train.seed
    video = to_input(batch)
    target = batch["label"].to(info.device, non_blocking=True)
    if mixup.active:
        # soft targets (B, K) that already carry the label smoothing
        video, target = mixup(video, target, torch.Generator().manual_seed(mix_seed(seed, step, info.rank, micro)))
    # dropout and drop path draw from the global RNG: re-seed it so a resumed run draws the same masks
    torch.manual_seed(mix_seed(seed, step, info.rank, micro, 1))
    with autocast(info.device, precision):
        logits = model(video)
    return classification_loss(logits, target, cfg.mix.smoothing)


def _validate(model: nn.Module, dataset: Dataset, cfg: FinetuneConfig, info: runtime.DistInfo, precision: str,
              logger: MetricsLogger, step: int, epoch: int) -> dict[str, Any]:
    acc, failed = predict_views(model, dataset, cfg.model.num_classes, cfg.train.batch_size, info.device,
                                precision, cfg.data.num_workers, info.rank, info.world_size)
    res = summarize(acc, failed)
    k = res["topk"]
    rec = {"epoch": epoch + 1, "val_top1": res["top1"], **({f"val_top{k}": res[topk_key(k)]} if k > 1 else {}),
           "val_failed": res["failed_videos"]}
    logger.log(step, **rec)
    if info.is_main:
        topk = f", top-{k} {res[topk_key(k)]:.2f}%" if k > 1 else ""
        log.info("epoch %d: val top-1 %.2f%%%s over %d videos (%d failed)", epoch + 1, res["top1"], topk,
                 res["videos"], res["failed_videos"])
    return rec
