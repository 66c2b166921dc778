"""The clip dataset of a job: its data section plus the model's encoder config (frames, resolution
and input normalisation come from the model, so a converted VideoMAE model sees ImageNet statistics
and an MAE-ST model 0.45 / 0.225)."""

from __future__ import annotations

from typing import Any

from maest.data.datasets import VideoClipDataset, dataset_from_source


def pretrain_dataset(data: Any, encoder: Any, mode: str = "pretrain") -> VideoClipDataset:
    """Args: data: a ``DataConfig``; encoder: an ``EncoderConfig``."""
    return dataset_from_source(data.source, layout=data.layout, mode=mode, num_frames=encoder.num_frames,
                               sampling_rate=data.sampling_rate, crop_size=encoder.img_size, repeat=data.repeat_aug,
                               backend=data.backend, mean=encoder.mean, std=encoder.std,
                               decode_device=data.decode_device, shuffle_buffer=data.shuffle_buffer)


def classifier_dataset(data: Any, encoder: Any, mode: str, source: str | None = None,
                       num_classes: int | None = None) -> VideoClipDataset:
    """``mode`` "finetune" reads ``data.source``, "val" / "test" ``data.val_source`` (or ``source``).

    Args: data: a ``FinetuneDataConfig``; encoder: an ``EncoderConfig``; num_classes: the head's, which
    every label must fit (checked as the list is read).
    """
    if source is None:
        source = data.source if mode == "finetune" else data.val_source
    return dataset_from_source(
        source, layout=data.layout, mode=mode, num_frames=encoder.num_frames, sampling_rate=data.sampling_rate,
        crop_size=encoder.img_size, repeat=data.repeat_aug, scale=(data.min_scale, 1.0), flip=data.flip,
        rand_aug=data.rand_aug, erase_prob=data.erase_prob, test_clips=data.test_clips, test_crops=data.test_crops,
        backend=data.backend, mean=encoder.mean, std=encoder.std, num_classes=num_classes,
        decode_device=data.decode_device, shuffle_buffer=data.shuffle_buffer,
    )
