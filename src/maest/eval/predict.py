"""What a trained classifier says about videos: ``maest predict`` and ``maest.predict`` / ``maest.read_video``.

A video is read as the model saw its training clips: the model's own frame count, resolution and input
normalisation (``EncoderConfig.num_frames / img_size / mean / std``) and the run's frame stride
(``data.sampling_rate``, recorded by :func:`maest.load` as ``model.sampling_rate``; 4 for converted
weights). Several views per video (clips x crops) are averaged as :mod:`maest.eval.test` averages them.
Videos that cannot be decoded are listed, never scored as zeros.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from maest.data.datasets import VIDEO_EXTENSIONS, ClipSpec, VideoClipDataset, dataset_from_source
from maest.data.decode import VideoDecodeError, open_video
from maest.data.shard_files import VIDEO_KEYS, is_shard_source, iter_shard, resolve_shards
from maest.eval.test import predict_views
from maest.loading import DEFAULT_SAMPLING_RATE, read
from maest.runtime import resolve_device, resolve_precision

Model = nn.Module | str | Path


def as_model(model: Model) -> nn.Module:
    """A built model as it is, or the model a checkpoint path describes (:func:`maest.load`)."""
    return model if isinstance(model, nn.Module) else read(model).build()


def clip_spec(model: nn.Module, clips: int = 1, crops: int = 1, sampling_rate: int | None = None,
              backend: str = "auto") -> ClipSpec:
    """Test-mode sampling of ``clips`` uniform clips x ``crops`` crops in ``model``'s own geometry and
    normalisation, at ``sampling_rate`` (default: the model's ``sampling_rate``, else 4)."""
    cfg = getattr(model, "model_cfg", None)
    if cfg is None:
        raise ValueError(f"{type(model).__name__} is not a maest model (no model_cfg); build it with "
                         "maest.create_model or maest.load")
    e = cfg.encoder
    rate = sampling_rate or int(getattr(model, "sampling_rate", DEFAULT_SAMPLING_RATE))
    return ClipSpec(mode="test", num_frames=e.num_frames, sampling_rate=rate, crop_size=e.img_size, test_clips=clips,
                    test_crops=crops, backend=backend, mean=e.mean, std=e.std)


def read_video(path: str | Path, model: Model, clips: int = 1, crops: int = 1,
               sampling_rate: int | None = None) -> torch.Tensor:
    """The model-ready views of one video: float (clips * crops, C, T, H, W), sampled, resized, cropped and
    normalised as ``model`` (a built maest model or a checkpoint path) expects; ``model(read_video(p, model))``
    gives one row of logits per view.

    Raises:
        VideoDecodeError: the file is missing or cannot be decoded.
    """
    return VideoClipDataset([(str(path), -1)], clip_spec(as_model(model), clips, crops, sampling_rate))[0]["video"]


class ShardVideos(IterableDataset):
    """Every sample of a shard source once, in manifest order, as evaluation items (those of
    :class:`~maest.data.loader.GuardedVideos`: a broken sample is ``{"failed": "name (reason)"}``).
    ``names`` fills with each sample's ``shard:key`` as it is read (one process)."""

    def __init__(self, source: str, spec: ClipSpec) -> None:
        self.shards = resolve_shards(source, allow_pipe=True)  # a source typed on the command line
        self.classes = self.shards.classes
        self.spec = spec
        self.names: list[str] = []
        self._clips = VideoClipDataset([], spec).clips

    def __len__(self) -> int:
        return self.shards.num_samples

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.names.clear()  # in place: video_dataset handed this list out
        for url in self.shards.urls:
            for _, key, sample in iter_shard(url):
                index, name = len(self.names), f"{url}:{key}"
                self.names.append(name)
                video_key = next((k for k in VIDEO_KEYS if k in (sample or {})), None)
                try:
                    if video_key is None:
                        raise VideoDecodeError(name, "no video in the sample")
                    video = open_video(name, self.spec.backend, data=sample[video_key])
                    item = self._clips(video, -1, index)
                except VideoDecodeError as e:
                    yield {"failed": f"{e.path} ({e.reason})", "index": index}
                    continue
                yield {k: item[k] for k in ("video", "label", "index", "view")}


def video_dataset(paths: Sequence[str | Path], spec: ClipSpec) -> tuple[Dataset, list[str]]:
    """The videos of ``paths`` (video files, folders, CSV lists; or one shard source) as a test-mode dataset,
    and each video's name by index (a shard source's names fill in as it is read)."""
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no videos given: pass video files, folders, CSV lists or shards")
    shards = [p for p in paths if is_shard_source(p)]
    if shards:
        if len(paths) > 1:
            raise ValueError(f"{shards[0]} is a shard source: give shards alone, one source per call")
        ds = ShardVideos(shards[0], spec)
        return ds, ds.names
    items: list[tuple[str, int]] = []
    for p in paths:
        if Path(p).is_file() and Path(p).suffix.lower() in VIDEO_EXTENSIONS:
            items.append((p, -1))
        else:  # a CSV list (labels optional), class folders or a folder of videos
            items += dataset_from_source(p, mode="test").items
    return VideoClipDataset(items, spec), [p for p, _ in items]


def top_classes(scores: torch.Tensor, names: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` best classes of (K,) scores: ``[{"class": i, "name": ..., "score": ...}]``, best first."""
    values, idx = scores.topk(min(k, scores.numel()))
    return [{"class": int(i), "name": names[int(i)], "score": round(float(v), 6)} for v, i in zip(values, idx,
                                                                                                   strict=True)]


def class_names(model: nn.Module, num_classes: int) -> list[str]:
    """The model's ``label_names`` (from its training data), else the label numbers."""
    names = list(getattr(getattr(model, "model_cfg", None), "label_names", None) or [])
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def predict_videos(
    model: Model, paths: Sequence[str | Path], top_k: int = 5, clips: int = 1, crops: int = 1, batch_size: int = 4,
    num_workers: int = 0, device: str = "auto", precision: str = "fp32", sampling_rate: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Classify every video of ``paths`` with ``model`` (a classifier or probe, or its checkpoint path).

    Returns:
        ``{"videos": [{"path", "top": [{"class", "name", "score"}, ...]}], "failed": ["path (reason)"],
        "classes", "clips", "crops", "top_k", "sampling_rate"}``; softmax scores averaged over the views.

    Raises:
        ValueError: ``model`` is not a classifier, or a path is neither a video, a folder, a list nor shards.
    """
    built = as_model(model)
    cfg = getattr(built, "model_cfg", None)
    if getattr(cfg, "kind", None) not in ("classifier", "probe"):
        what = f"{model}" if not isinstance(model, nn.Module) else type(model).__name__
        raise ValueError(f"{what} holds a pre-training (MAE) model: predict needs a classifier from maest finetune, "
                         "maest linprobe or a converted fine-tuned model")
    spec = clip_spec(built, clips, crops, sampling_rate)
    dataset, names = video_dataset(paths, spec)
    # a model passed in stays where it is unless a device is asked for; a checkpoint goes to the best one
    dev = str(next(built.parameters()).device) if device == "auto" and built is model else resolve_device(device)
    acc, failed = predict_views(built.to(dev), dataset, cfg.num_classes, batch_size, dev,
                                resolve_precision(precision, dev), num_workers, progress=progress)
    scores, _, index = acc.mean_scores()
    labels = class_names(built, cfg.num_classes)
    k = min(top_k, cfg.num_classes)
    videos = [{"path": names[int(i)], "top": top_classes(s, labels, k)} for s, i in zip(scores, index, strict=True)]
    return {"videos": videos, "failed": failed, "classes": labels, "clips": clips, "crops": crops, "top_k": k,
            "sampling_rate": spec.sampling_rate}


def predict(model: Model, videos: str | Path | Sequence[str | Path], top_k: int = 5, clips: int = 1,
            crops: int = 1, device: str = "auto", batch_size: int = 4) -> Any:
    """What a classifier (a built maest model or a checkpoint path) says about videos, in one line:
    ``maest.predict("runs/ft/checkpoint-00000400.pt", "clip.mp4", top_k=5)``.

    For one video file: its ``top_k`` classes, best first, ``[{"class": 3, "name": "archery", "score": 0.91},
    ...]`` (an unreadable file raises). For several (a list of paths, a folder, a CSV list, shards): one
    ``{"path", "top"}`` per video, and ``{"path", "error"}`` per video that could not be decoded.
    """
    single = isinstance(videos, (str, Path)) and Path(videos).suffix.lower() in VIDEO_EXTENSIONS
    paths = [videos] if isinstance(videos, (str, Path)) else list(videos)
    res = predict_videos(model, paths, top_k, clips, crops, batch_size, device=device)
    if single:
        if res["failed"]:
            raise VideoDecodeError(videos, split_failure(res["failed"][0])[1])
        return res["videos"][0]["top"]
    return res["videos"] + [dict(zip(("path", "error"), split_failure(f), strict=True)) for f in res["failed"]]


def split_failure(failure: str) -> tuple[str, str]:
    """(path, reason) of a ``"path (reason)"`` failure record (the reason may hold parentheses too)."""
    for i in range(len(failure)):
        if failure.startswith(" (", i) and failure.endswith(")") and Path(failure[:i]).suffix:
            return failure[:i], failure[i + 2:-1]
    return failure, ""


def write_predictions(result: dict[str, Any], csv_path: str | Path | None = None,
                      json_path: str | Path | None = None) -> list[Path]:
    """``result`` of :func:`predict_videos` as CSV (one row per video: ``path, top1, top1_score, ...,
    error``; unreadable videos have only the error) and / or JSON (the whole result)."""
    written = []
    if csv_path is not None:
        k = result["top_k"]
        header = ["path"] + [f"top{r}{s}" for r in range(1, k + 1) for s in ("", "_score")] + ["error"]
        with Path(csv_path).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for v in result["videos"]:
                w.writerow([v["path"], *[x for t in v["top"] for x in (t["name"], t["score"])], ""])
            for fail in result["failed"]:
                path, why = split_failure(fail)
                w.writerow([path, *[""] * (2 * k), why])
        written.append(Path(csv_path))
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
        written.append(Path(json_path))
    return written
