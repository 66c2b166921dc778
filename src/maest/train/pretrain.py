"""MAE-ST pre-training (arXiv:2205.09113): the job assembles data, model and optimizer from a
:class:`~maest.train.config.PretrainConfig` and hands the loop one micro-step, which masks with noise
keyed by (seed, step, video, clip) and scores the decoder against targets computed outside the model.
The reference's ``main_pretrain.py`` + ``engine_pretrain.train_one_epoch`` forward and loss.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from maest import runtime
from maest.data.transfer import DeviceInput
from maest.models import describe_model
from maest.models.motion_masking import motion_noise
from maest.runtime import autocast, mix_seed, resolve_precision, to_device, unwrap
from maest.targets import make_target
from maest.train.config import PretrainConfig
from maest.train.loop import effective_batch, train
from maest.train.losses import reconstruction_loss
from maest.train.optim import param_groups_weight_decay
from maest.train.run_folder import check_before_start
from maest.train.teacher import build_teacher

log = logging.getLogger("maest")

_DECODER_STREAM = 0xDEC0DE  # a fifth seed part, so decoder masks never reuse an encoder stream


def _target_and_loss(compiled: bool) -> tuple[Any, Any]:
    """With train.compile the target and the loss are compiled too, beside the model, not inside it: eager,
    their fp32 passes over every token's pixels took 12-15% of the digits step at batch 64 (2 CPU cores)."""
    return _compiled_target_and_loss() if compiled else (make_target, reconstruction_loss)


@functools.cache  # wrapped once per process, so every run shares the compiled graphs
def _compiled_target_and_loss() -> tuple[Any, Any]:
    return torch.compile(make_target), torch.compile(reconstruction_loss)


def _per_clip_noise(make: Any, video_index: torch.Tensor, seed: int, step: int, *stream: int) -> torch.Tensor:
    """Rows of ``make(1, generator)`` seeded by (seed, step, video, clip of that video, *stream)."""
    seen: dict[int, int] = {}
    rows = []
    for v in video_index.tolist():
        clip = seen.get(v, 0)
        seen[v] = clip + 1
        rows.append(make(1, generator=torch.Generator().manual_seed(mix_seed(seed, step, v, clip, *stream))))
    return torch.cat(rows)


def masking_noise(model: nn.Module, video_index: torch.Tensor, seed: int, step: int) -> torch.Tensor:
    """Masking noise (B, L) for a batch of clips, each row a pure function of (seed, step, video,
    clip of that video). A resumed run masks exactly as an uninterrupted one without saving RNG
    state, and the masks do not depend on how the global batch is split over processes.

    Args:
        video_index: (B,) dataset index of each clip's video; repeated clips of a video share it and are
            told apart by their order in the batch.
    """
    return _per_clip_noise(model.make_noise, video_index, seed, step)


def with_motion(model: nn.Module, noise: torch.Tensor, batch: dict, device: str) -> torch.Tensor:
    """``noise`` turned into motion-guided masks from ``batch["motion"]`` (B, T, 2, H, W) and
    ``batch["has_motion"]`` when the model masks by motion (``model.mask.strategy=motion``); else as it is.
    The random part stays keyed by (seed, step, video, clip), so a resumed run masks the same."""
    mask = model.model_cfg.mask
    if mask.strategy != "motion":
        return noise
    if "motion" not in batch:
        raise ValueError("model.mask.strategy=motion, but the batch has no motion field: set data.motion=codec or flow")
    return motion_noise(noise, batch["motion"].to(device, non_blocking=True), batch["has_motion"], model.grid,
                        model.model_cfg.encoder.patch_size, mask.ratio, mask.motion_rule)


def decoder_masking_noise(model: nn.Module, video_index: torch.Tensor, seed: int, step: int) -> torch.Tensor | None:
    """Decoder-mask noise (B, L) keyed like :func:`masking_noise` but from its own stream, so the encoder
    masks of a run are the same with and without a decoder mask; None when the model has none."""
    if getattr(model, "decoder_mask", "none") == "none":
        return None
    return _per_clip_noise(model.make_decoder_noise, video_index, seed, step, _DECODER_STREAM)


def mae_loss(model: nn.Module, video: torch.Tensor, noise: torch.Tensor | None = None,
             decoder_noise: torch.Tensor | None = None, *, mask_ratio: float | None = None,
             target: torch.Tensor | None = None, compiled: bool = False) -> torch.Tensor:
    """Forward the (possibly wrapped) MAE and return the reconstruction loss (fp32 scalar, ``model.target.loss``)
    against the model's own target (``model.target``), or ``target`` (B, L, K) when given (a teacher's
    features): over removed tokens, or over removed and decoded tokens when the model masks its decoder
    (VideoMAE V2). ``mask_ratio`` defaults to the model's ``model.mask.ratio``; ``compiled``: the target
    and the loss through ``torch.compile`` (the same computation, fused)."""
    make, loss = _target_and_loss(compiled)
    core = unwrap(model)
    if decoder_noise is None:
        out = model(video, mask_ratio, noise)
    else:
        out = model(video, mask_ratio, noise, decoder_noise=decoder_noise)
    cfg = core.model_cfg
    if target is None:
        target = make(video, cfg.target, core.target_spec, cfg.encoder.mean, cfg.encoder.std)
    return loss(out.pred, target, out.mask, out.pred_ids, cfg.target.loss_kind)


def build_model(cfg: PretrainConfig) -> nn.Module:
    model = cfg.model.build()
    model.grad_checkpointing = cfg.train.grad_checkpointing
    return model


def run(cfg: PretrainConfig, dataset: Dataset | None = None) -> dict[str, Any]:
    """Pre-train; returns a summary (final step, last loss, checkpoint path, skipped videos).

    Args:
        cfg: the run configuration (validated here).
        dataset: optional map-style dataset yielding ``{"video": (r, C, T, H, W), "skipped": [...]}``;
            built from ``cfg.data`` when None.
    """
    cfg.validate()
    info = runtime.init(cfg.train.device)
    try:
        check_before_start(cfg, info)  # before loading: data.cache=memory decodes the whole set first
        return _run(cfg, dataset, info)
    finally:
        runtime.shutdown()


def _run(cfg: PretrainConfig, dataset: Dataset | None, info: runtime.DistInfo) -> dict[str, Any]:
    t, o = cfg.train, cfg.optim
    torch.manual_seed(t.seed)
    model = build_model(cfg).to(info.device)
    if t.parallel == "fsdp":
        # before the optimizer: sharding swaps in DTensor parameters; bf16 gathers bf16 weights
        runtime.shard_fsdp(model, info, resolve_precision(t.precision, info.device))
    if dataset is None:
        dataset = cfg.data.build(cfg.model.encoder)
    # the reference excludes repeated sampling from the pre-training batch used to scale the lr
    base_lr = o.peak_lr(effective_batch(cfg, info))
    precision = resolve_precision(t.precision, info.device)
    optimizer = o.build(param_groups_weight_decay(model, o.weight_decay), base_lr, info.device)
    teacher = build_teacher(cfg, info.device)  # feature targets: frozen, never part of the model's state
    to_input = DeviceInput.of(dataset, info.device, cfg.model.encoder)  # uint8 clips: normalised on the device

    def loss_fn(train_model: nn.Module, batch: dict, step: int, accum_pos: int) -> torch.Tensor:
        video = to_input(batch)
        core = unwrap(model)
        noise = to_device(masking_noise(core, batch["index"], t.seed, step), info.device)
        noise = with_motion(core, noise, batch, info.device)  # model.mask.strategy=motion: the clips' fields
        dnoise = decoder_masking_noise(core, batch["index"], t.seed, step)  # None without decoder masking
        with autocast(info.device, precision):
            target = None if teacher is None else teacher(video)
            return mae_loss(train_model, video, noise, None if dnoise is None else to_device(dnoise, info.device),
                            target=target, compiled=t.compile)

    return train(cfg, model, optimizer, dataset, info, loss_fn, base_lr=base_lr, precision=precision,
                 title=f"pretrain {describe_model(model)}")
