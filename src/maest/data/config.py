"""The ``data`` section of a run: where clips come from, how they are sampled and augmented. Each
section validates itself once, here."""

from __future__ import annotations

from dataclasses import dataclass

from maest.overrides import check_choice, check_positive


@dataclass
class DataConfig:
    """Where clips come from and how they are sampled (MAE-ST defaults: 16x4, repeated sampling 4)."""

    source: str = ""  # a CSV list, a folder of class folders, a folder of videos, or shards (see maest shard)
    layout: str = "auto"  # auto | csv | folder | unlabelled | shards
    sampling_rate: int = 4
    repeat_aug: int = 4
    num_workers: int = 2
    backend: str = "auto"  # auto | torchcodec | pyav
    decode_device: str = "cpu"  # cpu | cuda (torchcodec on the GPU; use num_workers=0)
    shuffle_buffer: int = 64  # shards: encoded samples held per loader worker for the in-stream shuffle

    def validate(self) -> DataConfig:
        for name in ("sampling_rate", "repeat_aug", "shuffle_buffer"):
            check_positive(getattr(self, name), f"data.{name}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers} must be >= 0 (0 loads in the training process)")
        check_choice(self.layout, ("auto", "csv", "folder", "unlabelled", "shards"), "data.layout")
        check_choice(self.backend, ("auto", "torchcodec", "pyav"), "data.backend")
        check_choice(self.decode_device, ("cpu", "cuda"), "data.decode_device")
        return self


@dataclass
class FinetuneDataConfig(DataConfig):
    """Training source plus the validation list and fine-tuning augmentation."""

    val_source: str = ""  # evaluated once per epoch (one centre view per video); empty: no validation
    repeat_aug: int = 2
    rand_aug: bool = True  # rand-m7-mstd0.5
    flip: bool = True
    erase_prob: float = 0.25
    min_scale: float = 0.08  # random-resized-crop area range [min_scale, 1]
    test_clips: int = 10
    test_crops: int = 3
