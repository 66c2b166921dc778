"""A clip dataset held in memory: every video is decoded once, and clips are then sampled and
augmented exactly as from files. For small sets and experiments that run hundreds of epochs, where
decoding would otherwise dominate the step (moving digits: 2100 videos of 16 frames at 48 px are
230 MB as uint8)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import torch

from maest.data.datasets import VideoClipDataset
from maest.data.decode import Video, VideoDecodeError, open_video, read_frames

log = logging.getLogger("maest.data")


class DecodedVideo(Video):
    """A video whose uint8 (N, C, H, W) frames are already decoded."""

    def __init__(self, path: str, frames: torch.Tensor, fps: float) -> None:
        self.path, self.frames, self.fps = path, frames, fps
        self.num_frames, self.height, self.width = frames.shape[0], frames.shape[2], frames.shape[3]
        # (N, H, W, C): a gather along N keeps the decoders' channels-last layout, which torch's uint8
        # bilinear resize needs for its fast kernel (2.4x faster on a 48 px clip; same values)
        self._nhwc = frames.permute(0, 2, 3, 1)

    def _decode(self, indices: Sequence[int]) -> torch.Tensor:
        # index_select: a quarter of the cost of indexing with a Python list (16 vs 60 us a clip)
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.frames.device)
        return self._nhwc.index_select(0, idx).permute(0, 3, 1, 2)


class CacheFull(ValueError):
    """The decoded videos do not fit the memory the caller allowed."""


class InMemoryClips(VideoClipDataset):
    """``dataset``'s videos, decoded once; items are what ``dataset`` would give for the same seed.

    Videos that cannot be decoded are left out, counted and listed in ``skipped`` (and logged), as
    the file pipeline skips them; nothing is replaced by zeros. (Left out up front, they shift the indices
    of the videos after them, so with a broken video the items are no longer those of the file pipeline,
    which skips at load time.)

    Args:
        max_bytes: refuse (:class:`CacheFull`, naming ``limit_name``) once the decoded frames pass this.
        threads: videos decoded at once (each on one decoder thread), in order, so the result does not
            depend on it.
    """

    def __init__(self, dataset: VideoClipDataset, max_bytes: int | None = None, threads: int = 1,
                 limit_name: str = "max_bytes") -> None:
        super().__init__(dataset.items, dataset.spec, dataset.classes)
        self.videos: list[DecodedVideo] = []
        self.skipped: list[str] = []
        self.nbytes = 0
        kept = []
        t0 = time.perf_counter()
        # closed on a refusal: the decodes queued behind it are cancelled, not run
        with closing(_decoded(dataset.items, dataset.spec.backend, threads)) as decoded:
            for (path, label), got in decoded:
                if isinstance(got, str):
                    self.skipped.append(got)
                    continue
                self.nbytes += got.frames.numel()
                if max_bytes is not None and self.nbytes > max_bytes:
                    raise CacheFull(f"the decoded videos pass {limit_name}={max_bytes / 2**30:.4g} GB after "
                                    f"{len(kept) + len(self.skipped) + 1} of {len(dataset.items)} videos "
                                    f"({self.nbytes / 2**30:.2f} GB); raise {limit_name}, or decode from the "
                                    "files every epoch")
                self.videos.append(got)
                kept.append((path, label))
        self.items = kept
        if self.skipped:
            log.warning("%d of %d videos could not be decoded and are left out: %s", len(self.skipped),
                        len(dataset.items), "; ".join(self.skipped[:5]))
        if not kept:
            raise ValueError(f"none of the {len(dataset.items)} videos could be decoded")
        log.info("decoded %d videos into memory (%.2f GB) in %.1f s", len(kept), self.nbytes / 2**30,
                 time.perf_counter() - t0)

    def _load(self, index: int) -> dict[str, Any]:
        return self.clips(self.videos[index], self.items[index][1], index)


def _decoded(items: Sequence[tuple[str, int]], backend: str, threads: int) -> Iterator[tuple[tuple[str, int], Any]]:
    """(item, :func:`_decode_all` of it) in the items' order, ``threads`` videos decoding at a time and at most
    twice that many decoded ahead of the caller (who may stop early: nothing more is decoded then)."""
    threads = max(1, threads)
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(_decode_all, item, backend)))
                if len(pending) > 2 * threads:
                    item0, fut = pending.popleft()
                    yield item0, fut.result()
            while pending:
                item0, fut = pending.popleft()
                yield item0, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()


def _decode_all(item: tuple[str, int], backend: str) -> DecodedVideo | str:
    """Every frame of the item's video, or why it could not be decoded ("path (reason)")."""
    path = item[0]
    try:
        video = open_video(path, backend)
        frames = read_frames(video, range(video.num_frames))
    except VideoDecodeError as e:
        return f"{e.path} ({e.reason})"
    return DecodedVideo(str(path), frames, video.fps)
