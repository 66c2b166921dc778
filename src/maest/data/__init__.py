"""Video data: decoding, clip sampling, augmentation, datasets, batching, synthetic videos."""

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
from maest.data.loader import ShardedSampler, SkipTally, build_loader, collate_clips, epoch_order
from maest.data.synthetic import corrupt_copy, write_moving_digits, write_test_pattern

__all__ = [
    "ClipSpec", "ShardedSampler", "SkipTally", "VideoClipDataset", "VideoDecodeError", "build_loader",
    "collate_clips", "corrupt_copy", "dataset_from_source", "epoch_order", "open_video", "read_class_folders",
    "read_csv_list", "read_ssv2", "read_unlabelled_folder", "torchcodec_available", "write_moving_digits",
    "write_test_pattern",
]
