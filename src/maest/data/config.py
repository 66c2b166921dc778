"""The ``data`` section of a run: where clips come from, how they are sampled and augmented. It
validates itself and builds the job's clip dataset, with frames, resolution and input normalisation
taken from the model's encoder config (so a converted VideoMAE model sees ImageNet statistics and an
MAE-ST model 0.45 / 0.225)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from maest.data.datasets import VideoClipDataset, dataset_from_source
from maest.data.memory import InMemoryClips
from maest.data.motion import SOURCES as MOTION_SOURCES
from maest.data.motion import flow_path, open_flow
from maest.data.transfer import check_transfer
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
    decode_device: str = "cpu"  # cpu | cuda | cuda:N (torchcodec on the GPU; "cuda": each process's own; num_workers=0)
    shuffle_buffer: int = 64  # shards: encoded samples held per loader worker for the in-stream shuffle
    # float32: clips normalised on the host (exact, the default) | uint8: 4x fewer bytes, normalised on the
    # device; rounds once after float math (RandAugment, a GPU resize), <= 0.5 grey level (maest.data.transfer)
    transfer: str = "float32"
    # with data.decode_device=cuda (num_workers=0): threads that decode and augment ahead of the step
    # (CUDA decoders cannot live in forked workers; threads can); 0: in the training thread
    decode_threads: int = 1
    # run pipe: shell commands read from files (a shard manifest, a --config file); a pipe: source typed as
    # DATA or --set data.source is trusted without it. Never taken from a file: --set it (or MAEST_ALLOW_PIPE=1)
    allow_pipe: bool = False
    # motion fields for model.mask.strategy=motion (pre-training; maest.data.motion): "codec" = the videos' own
    # motion vectors (PyAV), "flow" = precomputed flow files <flow_dir>/<video stem>.npy|.pt
    motion: str = "none"  # none | codec | flow
    flow_dir: str = ""
    # memory: decode every training video once, up front (on up to 8 threads), and draw every epoch's clips from
    # the decoded frames: the same clips as from the files, for small sets trained for many epochs, where
    # decoding would take more time than the step; refused once the frames pass data.cache_gb
    cache: str = "none"  # none | memory
    cache_gb: float = 16.0

    def validate(self) -> DataConfig:
        for name in ("sampling_rate", "repeat_aug", "shuffle_buffer"):
            check_positive(getattr(self, name), f"data.{name}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers} must be >= 0 (0 loads in the training process)")
        check_choice(self.layout, ("auto", "csv", "folder", "unlabelled", "shards"), "data.layout")
        check_choice(self.backend, ("auto", "torchcodec", "pyav"), "data.backend")
        check_transfer(self.transfer)
        if self.decode_threads < 0:
            raise ValueError(f"data.decode_threads={self.decode_threads} must be >= 0 (0: the training thread)")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.decode_device):
            raise ValueError(f"data.decode_device={self.decode_device!r} is not cpu, cuda or cuda:N")
        check_choice(self.motion, MOTION_SOURCES, "data.motion")
        self._check_cache()
        if self.motion == "codec" and (self.backend == "torchcodec" or self.decode_device != "cpu"):
            raise ValueError(f"data.motion=codec reads motion vectors through PyAV, and torchcodec (data.backend="
                             f"{self.backend}, data.decode_device={self.decode_device}) offers none: set "
                             "data.backend=pyav (or auto) and data.decode_device=cpu")
        if self.motion == "flow" and not os.path.isdir(self.flow_dir):
            raise ValueError(f"data.motion=flow needs data.flow_dir, a folder of <video stem>.npy or .pt flow files; "
                             f"{self.flow_dir!r} is not a folder")
        if self.flow_dir and self.motion != "flow":
            raise ValueError(f"data.flow_dir={self.flow_dir!r} is read only with data.motion=flow (now "
                             f"{self.motion!r}); set data.motion=flow or leave data.flow_dir empty")
        return self

    def _check_cache(self) -> None:
        check_choice(self.cache, ("none", "memory"), "data.cache")
        if not self.cache_gb > 0:
            raise ValueError(f"data.cache_gb={self.cache_gb} must be > 0 (the gigabytes of decoded frames "
                             "data.cache=memory may hold)")
        if self.cache == "none":
            return
        if self.decode_device != "cpu" or self.motion == "codec":
            raise ValueError(f"data.cache=memory holds frames decoded on the CPU, without motion vectors; "
                             f"data.decode_device={self.decode_device}, data.motion={self.motion} need the files: "
                             "set data.cache=none")
        if self.layout == "shards":
            raise ValueError("data.cache=memory holds a list of video files; shards stream (data.layout=shards): "
                             "set data.cache=none")

    def hold(self, ds: Any, mode: str) -> Any:
        """A training set ``ds`` decoded into memory with ``data.cache=memory``
        (:class:`maest.data.memory.InMemoryClips`), else as it is. Validation and test sets are read from the
        files: they are read once (per epoch), and a video they cannot decode is listed as failed there."""
        if self.cache == "none" or mode not in ("pretrain", "finetune"):
            return ds
        if not isinstance(ds, VideoClipDataset):
            raise ValueError(f"data.cache=memory holds a list of video files; {self.source} is a shard stream: "
                             "set data.cache=none")
        return InMemoryClips(ds, max_bytes=int(self.cache_gb * 2**30), threads=min(8, os.cpu_count() or 1),
                             limit_name="data.cache_gb")

    @property
    def decode_on(self) -> str:
        """The device clips are decoded on: ``decode_device``, with "cuda" under torchrun made this process's
        own GPU (``cuda:LOCAL_RANK``, the device :func:`maest.runtime.init` gives it), so that ranks decode
        on their own GPUs rather than all on the first."""
        if self.decode_device == "cuda" and "LOCAL_RANK" in os.environ:
            return f"cuda:{int(os.environ['LOCAL_RANK'])}"
        return self.decode_device

    def build(self, encoder: Any, mode: str = "pretrain") -> Any:
        """The pre-training clip dataset of ``source`` for a model with ``encoder`` (an ``EncoderConfig``);
        with ``data.motion=flow`` every listed video's flow file must be there and hold (N, 2, H, W)."""
        ds = dataset_from_source(self.source, layout=self.layout, mode=mode, num_frames=encoder.num_frames,
                                 sampling_rate=self.sampling_rate, crop_size=encoder.img_size, repeat=self.repeat_aug,
                                 backend=self.backend, mean=encoder.mean, std=encoder.std,
                                 decode_device=self.decode_on, shuffle_buffer=self.shuffle_buffer,
                                 allow_pipe=self.allow_pipe, motion=self.motion, flow_dir=self.flow_dir,
                                 transfer=self.transfer)
        if self.motion == "flow":
            for path, _ in getattr(ds, "items", ()):
                open_flow(flow_path(self.flow_dir, path))
        return self.hold(ds, mode)


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

    def validate(self) -> FinetuneDataConfig:
        # data.motion / data.flow_dir come with DataConfig, and only pre-training's motion masking reads them
        if self.motion != "none" or self.flow_dir:
            raise ValueError(f"data.motion={self.motion}{f', data.flow_dir={self.flow_dir}' if self.flow_dir else ''}"
                             " feeds model.mask.strategy=motion in pre-training; fine-tuning and testing read no "
                             "motion fields: drop the setting (data.motion=none)")
        super().validate()
        return self

    def build(self, encoder: Any, mode: str = "finetune", source: str | None = None,
              num_classes: int | None = None) -> Any:
        """The clip dataset of a classification job: ``mode`` "finetune" reads ``source``, "val" / "test"
        ``val_source`` (or the ``source`` argument); every label must fit ``num_classes`` (checked as the
        list is read)."""
        if source is None:
            source = self.source if mode == "finetune" else self.val_source
        return self.hold(dataset_from_source(
            source, layout=self.layout, mode=mode, num_frames=encoder.num_frames, sampling_rate=self.sampling_rate,
            crop_size=encoder.img_size, repeat=self.repeat_aug, scale=(self.min_scale, 1.0), flip=self.flip,
            rand_aug=self.rand_aug, erase_prob=self.erase_prob, test_clips=self.test_clips,
            test_crops=self.test_crops, backend=self.backend, mean=encoder.mean, std=encoder.std,
            num_classes=num_classes, decode_device=self.decode_on, shuffle_buffer=self.shuffle_buffer,
            allow_pipe=self.allow_pipe, transfer=self.transfer,
        ), mode)
