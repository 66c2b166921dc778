"""Encoder features for a list or folder of videos: the class token or the mean of patch tokens
(after the encoder's final norm), per clip or averaged over a video's clips, written as
``features.npy`` + ``index.csv`` or as Parquet. Videos that cannot be decoded are listed in
``failed.txt`` and the summary, never silently dropped."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from maest.data import ClipSpec, VideoClipDataset, dataset_from_source
from maest.data.datasets import VIDEO_EXTENSIONS
from maest.data.loader import GuardedVideos, collate_guarded
from maest.data.transfer import DeviceInput
from maest.loading import read
from maest.runs.progress import iterate
from maest.runtime import autocast


def load_encoder(checkpoint: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model of any maest checkpoint (``maest.load``), plus the sampling settings of the run that
    wrote it (defaults for converted weights, which have no run)."""
    source = read(checkpoint)
    data = (source.run_config or {}).get("data", {})
    return source.build(), {"sampling_rate": data.get("sampling_rate", 4), "backend": data.get("backend", "auto")}


def pool_tokens(tokens: torch.Tensor, pool: str, cls_embed: bool) -> torch.Tensor:
    """(B, cls + L, D) -> (B, D): the class token, the first patch token or the mean of the patch tokens."""
    if pool == "cls":
        if not cls_embed:
            raise ValueError("--pool cls needs a model with a class token; use --pool mean or token0")
        return tokens[:, 0]
    if pool == "token0":
        return tokens[:, int(cls_embed)]
    if pool == "mean":
        return tokens[:, int(cls_embed):].mean(1)
    raise ValueError(f"unknown pooling {pool!r}; choose cls, token0 or mean")


@torch.no_grad()
def extract(
    model: nn.Module, dataset: VideoClipDataset, pool: str | None = None, average: bool = False, batch_size: int = 2,
    num_workers: int = 0, device: str = "cpu", precision: str = "fp32", progress: bool = True,
) -> tuple[np.ndarray, list[dict[str, Any]], list[str]]:
    """Features of every clip (or clip-averaged per video) of a test-mode dataset.

    Args:
        pool: "mean", "cls" or "token0"; None: the model's own (``encoder.pooling``).

    Returns:
        features (N, D) float32, one index row per feature (path, label, clip or -1), failed videos.
    """
    pool = pool or model.cfg.pooling
    model.to(device)
    loader = DataLoader(GuardedVideos(dataset, list(range(len(dataset)))), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=collate_guarded)
    feats, rows, failed = [], [], []
    to_input = DeviceInput.of(dataset, device, getattr(model, "cfg", None))
    for batch in iterate(loader, "extract", "batch", progress):
        failed += batch["failed"]
        if "video" not in batch:
            continue
        with autocast(device, precision):
            tokens = model.forward_features(to_input(batch))
        native = hasattr(model, "head") and pool == model.cfg.pooling
        # a classifier's own pooling applies its post-pool norm (its tokens come un-normalised)
        f = (model.pool(tokens) if native else pool_tokens(tokens, pool, model.cls_embed)).float().cpu()
        index, view = batch["index"], batch["view"]
        for v in dict.fromkeys(index.tolist()):
            sel = index == v
            path, label = dataset.items[v]
            if average:
                feats.append(f[sel].mean(0))
                rows.append({"path": path, "label": label, "clip": -1})
            else:
                for fv, clip in zip(f[sel], view[sel].tolist(), strict=True):
                    feats.append(fv)
                    rows.append({"path": path, "label": label, "clip": clip})
    dim = model.embed_dim
    array = torch.stack(feats).numpy().astype(np.float32) if feats else np.zeros((0, dim), np.float32)
    return array, rows, failed


def write_features(features: np.ndarray, rows: list[dict[str, Any]], failed: list[str], out_dir: str | Path,
                   fmt: str = "npy") -> dict[str, str]:
    """Write the features (``features.npy`` + ``index.csv``, or ``features.parquet``) and ``failed.txt``.
    Each file is written under a temporary name and all are renamed into place at the end, so an error
    (a full disk) leaves no truncated file and no features without their index; files of an earlier run
    (replaced with ``--force``) stay as they were."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if fmt not in ("npy", "parquet"):
        raise ValueError(f"unknown format {fmt!r}; choose npy or parquet")
    staged: list[tuple[Path, Path]] = []

    def stage(name: str, mode: str, **kw: Any) -> Any:
        staged.append((out / f".{name}.tmp", out / name))
        return open(staged[-1][0], mode, **kw)  # closed by the caller's with

    try:
        if fmt == "npy":
            with stage("features.npy", "wb") as fh:
                np.save(fh, features)
            with stage("index.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["row", "path", "label", "clip"])
                w.writeheader()
                for i, r in enumerate(rows):
                    w.writerow({"row": i, **r})
        else:
            with stage("features.parquet", "wb") as fh:
                _write_parquet(features, rows, fh)
        with stage("failed.txt", "w") as fh:
            fh.write("".join(f"{f}\n" for f in failed))
        for tmp, final in staged:
            os.replace(tmp, final)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    names = {"features": "features.npy", "index": "index.csv"} if fmt == "npy" else {"features": "features.parquet"}
    return {**{k: str(out / v) for k, v in names.items()}, "failed": str(out / "failed.txt")}


def _write_parquet(features: np.ndarray, rows: list[dict[str, Any]], fh: Any) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("--format parquet needs pyarrow (pip install pyarrow); or use --format npy") from None
    table = pa.table({"path": [r["path"] for r in rows], "label": [r["label"] for r in rows],
                      "clip": [r["clip"] for r in rows], "feature": list(features)})
    pq.write_table(table, fh)


def dataset_for(model: nn.Module, source: str, clips: int, sampling: dict[str, Any]) -> VideoClipDataset:
    e = model.cfg
    spec = dict(mode="test", num_frames=e.num_frames, crop_size=e.img_size, test_clips=clips, test_crops=1,
                sampling_rate=sampling["sampling_rate"], backend=sampling["backend"], mean=e.mean, std=e.std)
    p = Path(source)
    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
        return VideoClipDataset([(str(p), -1)], ClipSpec(**spec))
    return dataset_from_source(source, **spec)
