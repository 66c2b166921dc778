"""Multi-view evaluation (arXiv:2205.09113 §4; the reference's ``main_test.py``): every video is seen
as clips x crops views (default 10 x 3), the softmax scores of its views are averaged (the reference
sums them: same ranking), and top-1 / top-5 (top-k, k = the class count, with 5 classes or fewer),
per-class accuracy and a confusion matrix are computed from the per-video scores. Videos that cannot be
decoded are counted and listed, never dropped silently.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from maest import runtime
from maest.data.loader import GuardedVideos, collate_guarded
from maest.data.transfer import DeviceInput
from maest.runs.progress import counter
from maest.runtime import autocast


class ViewAccumulator:
    """Sums per-view softmax scores into per-video scores.

    Args:
        num_videos: N videos (indexed 0..N-1).
        num_classes: K.
    """

    def __init__(self, num_videos: int, num_classes: int) -> None:
        self.scores = torch.zeros(num_videos, num_classes, dtype=torch.float64)
        self.views = torch.zeros(num_videos, dtype=torch.long)
        self.labels = torch.full((num_videos,), -1, dtype=torch.long)

    def add(self, probs: torch.Tensor, index: torch.Tensor, labels: torch.Tensor) -> None:
        """probs: (V, K) softmax scores of V views; index: (V,) their video; labels: (V,)."""
        index = index.cpu()
        self.scores.index_add_(0, index, probs.detach().double().cpu())
        self.views.index_add_(0, index, torch.ones_like(index))
        self.labels[index] = labels.cpu()

    def merge(self, other: ViewAccumulator) -> None:
        self.scores += other.scores
        self.views += other.views
        self.labels = torch.maximum(self.labels, other.labels)

    def mean_scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(M, K) averaged scores, (M,) labels and (M,) video indices of the M videos with any view."""
        seen = self.views > 0
        return self.scores[seen] / self.views[seen, None], self.labels[seen], seen.nonzero().flatten()


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the k highest scores, for each k (k clipped to K)."""
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hit = top == labels[:, None]
    return {k: hit[:, :k].any(dim=1).double().mean().item() for k in ks}


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted class."""
    flat = labels.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> list[float | None]:
    """Recall of each class (diagonal / row sum); None for classes with no video."""
    totals = cm.sum(dim=1)
    return [None if n == 0 else (cm[i, i] / n).item() for i, n in enumerate(totals.tolist())]


def write_confusion_csv(cm: torch.Tensor, classes: list[str], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *classes])
        for name, row in zip(classes, cm.tolist(), strict=True):
            w.writerow([name, *row])
    return path


def write_confusion_png(cm: torch.Tensor, classes: list[str], path: str | Path,
                        title: str = "Confusion matrix") -> Path:
    """The confusion matrix as a matplotlib figure (see :func:`maest.figures.plots.confusion_figure`): rows =
    true, columns = predicted, counts and row percentages, a colour bar; many classes stay legible.

    Raises:
        RuntimeError: matplotlib (the ``plots`` extra) is not installed.
    """
    from maest.figures import plots

    return plots.write_confusion(cm.numpy() if isinstance(cm, torch.Tensor) else cm, classes, path, title)


@torch.no_grad()
def predict_views(
    model: nn.Module, dataset: Dataset, num_classes: int, batch_size: int = 4, device: str = "cpu",
    precision: str = "fp32", num_workers: int = 0, rank: int = 0, world_size: int = 1, progress: bool = False,
) -> tuple[ViewAccumulator, list[str]]:
    """Run ``model`` over every view of every video; this rank takes videos ``rank::world_size`` and
    the results of all ranks are merged.

    Args:
        dataset: yields ``{"video": (V, C, T, H, W), "label": (V,)}`` per video (V views); or an iterable
            dataset of :class:`~maest.data.loader.GuardedVideos` items, read in this process by one rank.
        batch_size: videos per forward pass (each brings V views).
        progress: a bar of the videos done (on a terminal).

    Returns:
        the accumulated per-video scores and the videos that failed to decode.
    """
    was_training = model.training
    model.eval()
    n = len(dataset)  # type: ignore[arg-type]
    acc = ViewAccumulator(n, num_classes)
    stream = isinstance(dataset, IterableDataset)
    items = dataset if stream else GuardedVideos(dataset, list(range(rank, n, world_size)))
    loader = DataLoader(items, batch_size=batch_size, num_workers=0 if stream else num_workers,
                        collate_fn=collate_guarded)
    failed: list[str] = []
    bar = counter(len(items), "videos", "video", enabled=progress and rank == 0)
    to_input = DeviceInput.of(dataset, device, getattr(getattr(model, "model_cfg", None), "encoder", None))
    for batch in loader:
        failed += batch["failed"]
        bar.update(len(batch["failed"]) + (len(batch["index"].unique()) if "video" in batch else 0))
        if "video" not in batch:
            continue
        with autocast(device, precision):
            logits = model(to_input(batch))
        acc.add(torch.softmax(logits.float(), dim=-1), batch["index"], batch["label"])
    bar.close()
    model.train(was_training)
    parts = runtime.all_gather_objects((acc, failed))
    if len(parts) > 1:
        acc, failed = ViewAccumulator(n, num_classes), []
        for a, f in parts:
            acc.merge(a)
            failed += f
    return acc, failed


def topk_key(k: int) -> str:
    """The result key of top-k accuracy: "top5", or "top3" for a 3-class model (see :func:`summarize`)."""
    return f"top{k}"


def summarize(acc: ViewAccumulator, failed: list[str], classes: list[str] | None = None) -> dict[str, Any]:
    """Top-1 and top-k (in %, k = min(5, classes): "top5" only with more than 5 classes; ``topk`` says which
    k), per-class accuracy and the confusion matrix over the decoded videos."""
    scores, labels, _ = acc.mean_scores()
    K = acc.scores.shape[1]
    classes = classes or [str(i) for i in range(K)]
    k = min(5, K)
    topk = topk_accuracy(scores, labels, (1, k))
    cm = confusion_matrix(scores.argmax(dim=1), labels, K)
    return {
        "top1": 100 * topk[1], topk_key(k): 100 * topk[k], "topk": k, "videos": len(labels),
        "failed_videos": len(failed),
        "failed": failed, "views_per_video": float(acc.views[acc.views > 0].double().mean()) if len(labels) else 0.0,
        "per_class": dict(zip(classes, per_class_accuracy(cm), strict=True)),
        "confusion": cm.tolist(), "classes": classes,
    }


def write_report(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """``results.json``, ``confusion.csv`` and ``confusion.png`` (with matplotlib) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cm = torch.tensor(result["confusion"])
    paths = {"json": out / "results.json", "csv": out / "confusion.csv", "png": out / "confusion.png"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    write_confusion_csv(cm, result["classes"], paths["csv"])
    try:
        write_confusion_png(cm, result["classes"], paths["png"])
    except RuntimeError as e:  # no matplotlib: the numbers are written, the figure is not
        logging.getLogger("maest").warning("confusion.png not written: %s", e)
        paths.pop("png").unlink(missing_ok=True)  # an earlier run's figure would not match these results
    return paths


def _class_names(dataset: Dataset, classes_file: str | None, num_classes: int) -> list[str]:
    """Names for the confusion matrix of a model without ``label_names``: ``--classes``, else the data's own
    (class folders, a classes.txt beside the list), else the label numbers."""
    names = getattr(dataset, "classes", None)
    if classes_file:
        names = [line.strip() for line in Path(classes_file).read_text().splitlines() if line.strip()]
        if len(names) != num_classes:
            raise ValueError(f"--classes {classes_file} names {len(names)} classes but the model has {num_classes}; "
                             "give one name per class, in label order")
    if not names or len(names) != num_classes:
        return [str(i) for i in range(num_classes)]
    return list(names)


def require_labels(data: str | Path, dataset: Dataset | None = None) -> None:
    """Refuse, before any inference, data without labels: a single video, an unlabelled folder or a list
    whose lines lack labels. ``maest predict`` is the command for those."""
    from maest.data.datasets import VIDEO_EXTENSIONS

    hint = f"to classify unlabelled videos, use maest predict CHECKPOINT {data}"
    if Path(data).is_file() and Path(data).suffix.lower() in VIDEO_EXTENSIONS:
        raise ValueError(f"{data} is one video; maest test needs labelled data (a CSV list of 'path label' lines "
                         f"or a folder of class folders): {hint}")
    items = getattr(dataset, "items", None) or []
    unlabelled = [path for path, label in items if label < 0]
    if unlabelled:
        raise ValueError(f"{data}: {len(unlabelled)} of {len(items)} videos have no label (e.g. {unlabelled[0]}); "
                         f"maest test needs labels to score against: {hint}")


def decode_device_for_test(trained: str, num_workers: int, device: str) -> str:
    """Where ``maest test`` decodes, given the fine-tuning run's ``data.decode_device``: on its GPU only in
    the testing process itself (``num_workers=0``, CUDA here, ``device`` not cpu), since CUDA cannot be used
    in forked loader workers; otherwise on the CPU, in the workers. A GPU that fails while decoding stops
    the test (:func:`maest.data.decode.device_failure`); it is never counted as failed videos."""
    if trained == "cpu":
        return "cpu"
    if num_workers == 0 and device != "cpu" and torch.cuda.is_available():
        return trained
    logging.getLogger("maest").info("maest test decodes on the CPU (the run decoded on %s; the GPU decodes only "
                                    "with --num-workers 0 and a CUDA device)", trained)
    return "cpu"


def run_test(
    checkpoint: str | Path, data: str, out_dir: str | Path, clips: int = 10, crops: int = 3, batch_size: int = 4,
    num_workers: int = 2, precision: str = "auto", device: str = "auto", classes_file: str | None = None,
) -> dict[str, Any]:
    """Test a ``maest finetune`` / ``linprobe`` checkpoint on ``data`` with clips x crops views per video
    and write ``results.json``, ``confusion.csv`` and ``confusion.png`` to ``out_dir``.

    Raises:
        ValueError: before any inference, when the checkpoint is not a classifier or ``data`` has no labels.
    """
    from maest.data.config import FinetuneDataConfig
    from maest.loading import read
    from maest.overrides import from_dict
    from maest.runtime import resolve_precision

    require_labels(data)
    source = read(checkpoint)
    if source.kind == "mae":
        raise ValueError(f"{checkpoint} is a pre-training (MAE) checkpoint; maest test needs a classifier from "
                         "maest finetune, maest linprobe or a converted fine-tuned model")
    mcfg = source.model_config
    run = source.run_config
    # sampling settings of the fine-tuning run (read() gives today's layout); a converted classifier has
    # none, so the defaults apply
    data_cfg = from_dict(FinetuneDataConfig, run["data"]) if run else FinetuneDataConfig()
    data_cfg.test_clips, data_cfg.test_crops = clips, crops
    data_cfg.decode_device = decode_device_for_test(data_cfg.decode_device, num_workers, device)
    require_labels(data, data_cfg.build(mcfg.encoder, "test", source=data))  # lists the files: no decoding
    dataset = data_cfg.build(mcfg.encoder, "test", source=data, num_classes=mcfg.num_classes)
    classes = mcfg.label_names or _class_names(dataset, classes_file, mcfg.num_classes)
    info = runtime.init(device)
    try:
        model = source.build().to(info.device)
        acc, failed = predict_views(model, dataset, mcfg.num_classes, batch_size, info.device,
                                    resolve_precision(precision, info.device), num_workers, info.rank,
                                    info.world_size)
        result = summarize(acc, failed, classes)
        result.update(checkpoint=str(checkpoint), data=str(data), clips=clips, crops=crops)
        if info.is_main:
            write_report(result, out_dir)
        return result
    finally:
        runtime.shutdown()
