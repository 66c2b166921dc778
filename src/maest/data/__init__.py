"""Video data for MAE-ST (arXiv:2205.09113): decoding, clip sampling, augmentation, datasets,
batching and synthetic videos. Only :mod:`maest.data.decode` imports torchcodec or PyAV."""

from maest.data.datasets import (
    ClipSpec,
    VideoClipDataset,
    dataset_from_source,
    read_class_folders,
    read_csv_list,
    read_ssv2,
    read_unlabelled_folder,
)
from maest.data.decode import VideoDecodeError, open_video, torchcodec_available
from maest.data.loader import (
    RepeatAwareDistributedSampler,
    ShardedSampler,
    SkipTally,
    build_loader,
    collate_clips,
    epoch_order,
    set_epoch,
)
from maest.data.synthetic import corrupt_copy, write_moving_digits, write_test_pattern

__all__ = [
    "ClipSpec", "RepeatAwareDistributedSampler", "ShardedSampler", "SkipTally", "VideoClipDataset",
    "VideoDecodeError", "build_loader", "collate_clips", "corrupt_copy", "dataset_from_source", "epoch_order",
    "open_video", "read_class_folders", "read_csv_list", "read_ssv2", "read_unlabelled_folder", "set_epoch",
    "torchcodec_available", "write_moving_digits", "write_test_pattern",
]
