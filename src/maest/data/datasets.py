"""Clip datasets over real video files: Kinetics-style CSV lists, folder-per-class trees,
unlabelled folders (pre-training) and Something-Something v2 JSON labels.

An item is one video: ``{"video": float (r, C, T, H, W), "label": int64 (r,), "index": int64 (r,),
"skipped": [paths]}`` (``video`` uint8 with ``transfer="uint8"``, plus random erasing's ``erase`` and
``erase_noise``: see :mod:`maest.data.transfer`). r is the number of repeated clips in training modes (MAE-ST's repeated
sampling), 1 in "val", and clips x crops views in "test" (plus ``"view"``). With ``motion`` ("codec" or
"flow"; pre-training, and "test" for ``maest reconstruct``) an item also holds each view's motion field
``"motion"`` float (r, T, 2, s/4, s/4), cropped and resized with it (see :mod:`maest.data.motion`),
``"has_motion"`` bool (r,) and ``"no_motion"``, the video's path once per clip without motion (masked
randomly; the loop counts them per epoch).

A broken video never stops training and is never replaced by zeros: in training modes the item is
taken from another random video (up to ``max_retries``), the broken path travels back in
``skipped`` so the loop can count and report it, and a warning is logged once per path and process.
In "val"/"test" nothing is substituted: :class:`~maest.data.decode.VideoDecodeError` propagates, and
evaluation wraps the dataset in :class:`~maest.data.loader.GuardedVideos`, whose items then carry
``{"failed": "path (reason)"}`` so every broken test video is counted, never silently dropped.

Build datasets with the factories: :meth:`VideoClipDataset.from_csv`, ``.from_folder_per_class``,
``.from_unlabelled_folder`` and ``.from_ssv2_json``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from maest.data import motion as M
from maest.data import rng
from maest.data import transforms as T
from maest.data.decode import Video, VideoDecodeError, check_decode_device, open_video, read_frames, warn_once
from maest.data.loader import epoch_of
from maest.data.randaugment import rand_augment
from maest.data.sampling import train_clips, uniform_clips
from maest.data.shard_files import is_shard_source
from maest.data.shards import ShardDataset
from maest.data.transfer import check_transfer, erase_fields
from maest.runtime import mix_seed

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")
MODES = ("pretrain", "finetune", "val", "test")


@dataclass
class ClipSpec:
    """How clips are sampled and augmented (defaults: MAE-ST pre-training, 16 frames x stride 4)."""

    mode: str = "pretrain"
    num_frames: int = 16
    sampling_rate: int = 4
    crop_size: int = 224
    repeat: int = 4
    scale: tuple[float, float] | None = None  # None: (0.5, 1) pre-training, (0.08, 1) fine-tuning
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    rand_aug: bool = False
    erase_prob: float = 0.0
    short_side: int | None = None  # val/test resize; None: crop_size (the reference's test setting)
    test_clips: int = 10
    test_crops: int = 3
    backend: str = "auto"
    decode_device: str = "cpu"  # "cuda": torchcodec decodes on the GPU (checked when the spec is made)
    shuffle_buffer: int = 64  # shards: encoded samples held per worker for the in-stream shuffle
    mean: tuple[float, ...] = T.MEAN  # input normalisation: the model's (EncoderConfig.mean / std)
    std: tuple[float, ...] = T.STD
    max_retries: int = 10
    transfer: str = "float32"  # float32 | uint8: how clips travel (maest.data.transfer)
    seed: int | None = None  # set: each item's randomness depends only on (seed, epoch, index)
    motion: str = "none"  # pre-training: "codec" (motion vectors) or "flow" (files in flow_dir); maest.data.motion
    flow_dir: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown dataset mode {self.mode!r}; choose one of {MODES}")
        for name in ("num_frames", "sampling_rate", "crop_size", "repeat", "test_clips", "test_crops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.decode_device != "cpu":
            check_decode_device(self.decode_device)
        check_transfer(self.transfer)
        if self.test_crops not in (1, 3):
            raise ValueError(f"test_crops={self.test_crops} must be 1 (centre) or 3 (left/centre/right)")
        if self.motion not in M.SOURCES:
            raise ValueError(f"data.motion={self.motion!r} is not one of {M.SOURCES}")
        if self.motion != "none" and self.crop_size % M.CELL:
            raise ValueError(f"data.motion={self.motion} carries a vector per 4 x 4 pixels, and the crop of "
                             f"{self.crop_size} px is not a multiple of 4; use a model whose img_size is")


class VideoClipDataset(Dataset):
    """Clips from a list of ``(path, label)``; label -1 means unlabelled."""

    def __init__(self, items: list[tuple[str, int]], spec: ClipSpec | None = None,
                 classes: list[str] | None = None, **spec_kw: Any) -> None:
        """
        Args:
            items: (video path, label) pairs; label -1 = unlabelled.
            spec: sampling/augmentation settings; or pass ClipSpec fields as keywords.
            classes: class names by label index, when known.
        """
        if spec is not None and spec_kw:
            raise TypeError("pass either spec or ClipSpec keywords, not both")
        self.items = list(items)
        self.spec = spec or ClipSpec(**spec_kw)
        self.classes = classes
        self.epoch = 0

    @classmethod
    def from_csv(cls, path: str | Path, spec: ClipSpec | None = None, **spec_kw: Any) -> VideoClipDataset:
        """Kinetics-style list (``path label`` or ``path,label``); see :func:`read_csv_list`."""
        return cls(read_csv_list(path), spec, **spec_kw)

    @classmethod
    def from_folder_per_class(cls, root: str | Path, spec: ClipSpec | None = None,
                              **spec_kw: Any) -> VideoClipDataset:
        """``root/<class>/<video>``; ``classes`` holds the sorted class names (label = position)."""
        items, classes = read_class_folders(root)
        return cls(items, spec, classes, **spec_kw)

    @classmethod
    def from_unlabelled_folder(cls, root: str | Path, spec: ClipSpec | None = None,
                               **spec_kw: Any) -> VideoClipDataset:
        """Every video under ``root`` (recursively), label -1: pre-training data."""
        return cls(read_unlabelled_folder(root), spec, **spec_kw)

    @classmethod
    def from_ssv2_json(cls, videos_dir: str | Path, labels_json: str | Path, split_json: str | Path,
                       spec: ClipSpec | None = None, **spec_kw: Any) -> VideoClipDataset:
        """Something-Something v2 (``<id>.webm`` files, template labels); see :func:`read_ssv2`."""
        labels = json.loads(Path(labels_json).read_text())
        classes = [k for k, _ in sorted(labels.items(), key=lambda kv: int(kv[1]))]
        return cls(read_ssv2(videos_dir, labels_json, split_json), spec, classes, **spec_kw)

    def set_epoch(self, epoch: int) -> None:
        """With ``spec.seed`` set, reseeds augmentation per epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.spec.seed is not None:
            # global torch RNG: transforms draw from it; keyed per item so worker count does not matter
            rng.seed_item(mix_seed(self.spec.seed, epoch_of(index, self.epoch), index))
        if self.spec.mode in ("val", "test"):
            return self._load(index)
        skipped: list[str] = []
        tried = index
        for _ in range(self.spec.max_retries + 1):
            try:
                item = self._load(tried)
                item["skipped"] = skipped
                return item
            except VideoDecodeError as e:
                warn_once(e)
                skipped.append(e.path)
                tried = int(torch.randint(len(self.items), (), generator=rng.generator()).item())
        raise RuntimeError(
            f"{self.spec.max_retries + 1} videos in a row could not be decoded (tried: {', '.join(skipped[:10])}); "
            "check the dataset files and the video backend"
        )

    def _load(self, index: int) -> dict[str, Any]:
        path, label = self.items[index]
        video = open_video(path, self.spec.backend, device=self.spec.decode_device,
                           motion_vectors=self.spec.motion == "codec")
        return self.clips(video, label, index)

    def clips(self, video: Video, label: int, index: int) -> dict[str, Any]:
        """The item (clips, labels, index) of an open video; shards decode from memory and come here too."""
        s = self.spec
        if s.mode in ("pretrain", "finetune"):
            clips_idx = train_clips(video.num_frames, s.num_frames, s.sampling_rate, video.fps, s.repeat,
                                    rng.generator())
        elif s.mode == "val":
            clips_idx = uniform_clips(video.num_frames, s.num_frames, s.sampling_rate, video.fps, 1)
        else:
            clips_idx = uniform_clips(video.num_frames, s.num_frames, s.sampling_rate, video.fps, s.test_clips)
        # one decoder call for all clips of this video
        frames = read_frames(video, torch.cat(clips_idx).tolist()).split(s.num_frames)
        # motion fields: pre-training's masks, and test views for maest reconstruct's motion masks
        motion = self._motion(video, clips_idx) if s.motion != "none" and s.mode in ("pretrain", "test") else None
        crops = [1] if s.mode != "test" or s.test_crops == 1 else [0, 1, 2]
        channels, size = frames[0].shape[1], s.crop_size
        # every clip is normalised straight into its slot of the item (no list, no stack)
        out = torch.empty(len(frames) * len(crops), channels, s.num_frames, size, size, device=frames[0].device,
                          dtype=torch.uint8 if s.transfer == "uint8" else torch.float32)
        erased: list | None = [] if s.transfer == "uint8" and s.erase_prob > 0 else None
        if s.mode in ("pretrain", "finetune"):
            fields = []
            for ci, (f, dst) in enumerate(zip(frames, out, strict=True)):
                fields.append(self._augment(f, dst, None if motion is None else motion[0][ci], erased)[1])
            views = None
        else:
            views, fields = [], []
            for ci, f in enumerate(frames):
                hw = f.shape[-2:]
                f = T.short_side_resize(f, s.short_side or s.crop_size)  # one resize shared by the crops
                for crop in crops:
                    self._finish(T.uniform_crop(f, s.crop_size, crop), out[len(views)])
                    views.append(ci * len(crops) + crop if len(crops) == 3 else ci)
                    if motion is not None:
                        fields.append(M.view_field(motion[0][ci], hw, f.shape[-2:], s.crop_size, crop,
                                                   M.CELL if s.motion == "codec" else 1))
        r = len(out)
        item = {"video": out, "label": torch.full((r,), label, dtype=torch.long),
                "index": torch.full((r,), index, dtype=torch.long), "skipped": []}
        if views is not None:
            item["view"] = torch.tensor(views, dtype=torch.long)
        if erased is not None:
            item.update(erase_fields(erased))
        if motion is not None:
            item["motion"] = torch.stack(fields)
            item["has_motion"] = torch.tensor([has for has in motion[1] for _ in crops])  # per view
            item["no_motion"] = [video.path for has in motion[1] if not has]
        return item

    def _motion(self, video: Video, clips_idx: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[bool]]:
        """Each clip's full-frame motion field (T, 2, H, W) and whether it has motion (see maest.data.motion)."""
        s, fields, has = self.spec, [], []
        if s.motion == "flow":
            path = M.flow_path(s.flow_dir, video.path)
            arr = M.open_flow(path)
        for idx in clips_idx:
            if s.motion == "codec":
                vectors = getattr(video, "vectors", {})
                f, ok = M.codec_clip([vectors.get(i) for i in idx.tolist()], video.height, video.width)
            else:
                f, ok = M.flow_clip(arr, path, idx.tolist(), video.num_frames, video.height, video.width), True
            fields.append(f)
            has.append(ok)
        return fields, has

    def _train_view(self, frames: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """One augmented clip of uint8 (T, C, H, W) frames, normalised (C, T, s, s) into ``out`` if given."""
        return self._augment(frames, out)[0]

    def _augment(self, frames: torch.Tensor, out: torch.Tensor | None = None,
                 motion: torch.Tensor | None = None, erased: list | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`_train_view`, and the clip's motion field (T, 2, H, W) cropped, resized and flipped with it
        (None without one)."""
        s = self.spec
        scale = s.scale or ((0.5, 1.0) if s.mode == "pretrain" else (0.08, 1.0))
        box = T.rrc_box(frames.shape[-2], frames.shape[-1], scale, s.aspect)
        x = T.resized_crop(frames, box, s.crop_size)
        if motion is not None:  # codec fields hold a vector per 4 x 4 pixels, flow files one per pixel
            motion = M.crop_resize(motion, box, s.crop_size, M.CELL if s.motion == "codec" else 1)
        if s.flip and T.flip_draw():
            x = x.flip(-1)
            motion = None if motion is None else M.flip(motion)
        if s.rand_aug:
            x = rand_augment(x)
        clip = self._finish(x, out)
        if erased is not None:  # uint8 clips: the box travels beside the clip (maest.data.transfer)
            erased.append(T.erase_draw(clip.shape, s.erase_prob))
        elif s.erase_prob > 0 and (noisy := T.random_erasing(clip, s.erase_prob)) is not clip:
            clip.copy_(noisy)
        return clip, motion

    def _finish(self, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """(T, C, s, s) frames in [0, 255] as the item's (C, T, s, s) clip, into ``out`` if given: normalised
        float32, or with ``transfer=uint8`` rounded once to uint8 if float (maest.data.transfer)."""
        s = self.spec
        if s.transfer == "float32":
            return T.normalize(x, s.mean, s.std, out=out)
        src = T.to_uint8(x).permute(1, 0, 2, 3)
        return src.clone() if out is None else out.copy_(src)


# -- list builders ---------------------------------------------------------------------------------
def read_csv_list(path: str | Path, num_classes: int | None = None) -> list[tuple[str, int]]:
    """Kinetics-style list: ``path label`` (whitespace) or ``path,label`` per line; a header line is
    skipped; relative paths are resolved against the list's folder; a line with only a path is
    unlabelled (-1). With ``num_classes`` (a classifier's), every line needs a label in [0, num_classes):
    anything else raises, naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"video list {p} does not exist")
    items = []
    for n, raw in enumerate(_read_text_list(p).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = next(csv.reader([line])) if "," in line else line.split()
        parts = [x.strip() for x in parts if x.strip()]
        if len(parts) > 2:
            # paths with spaces in a whitespace list: the label is the last field
            parts = [" ".join(parts[:-1]), parts[-1]] if re.fullmatch(r"-?\d+", parts[-1]) else parts
        if len(parts) not in (1, 2):
            raise ValueError(f"{p}:{n}: expected 'path label' or 'path,label', got {raw!r}")
        label = -1
        if len(parts) == 2:
            if not re.fullmatch(r"-?\d+", parts[1]):
                if not items and n == 1:
                    continue  # header
                raise ValueError(f"{p}:{n}: label {parts[1]!r} is not an integer")
            label = int(parts[1])
        if num_classes is not None and not 0 <= label < num_classes:
            got = f"label {label}" if len(parts) == 2 else "no label (-1)"
            raise ValueError(f"{p}:{n}: {got} is outside [0, {num_classes}) for model.num_classes={num_classes}; "
                             "fix the list or set model.num_classes")
        vp = Path(parts[0])
        items.append((str(vp if vp.is_absolute() else p.parent / vp), label))
    if not items:
        raise ValueError(f"video list {p} has no entries")
    return items


def _read_text_list(p: Path) -> str:
    """The text of a list file; a binary file (not UTF-8, or holding NUL bytes) raises, naming it."""
    try:
        text = p.read_text()
    except UnicodeDecodeError as e:
        raise ValueError(f"{p} is not a text file (byte {e.start} is not UTF-8): pass a CSV list of "
                         "'path label' lines, a class-folder root or a video folder") from None
    if "\x00" in text:
        raise ValueError(f"{p} is not a text file (it holds NUL bytes): pass a CSV list of 'path label' lines, "
                         "a class-folder root or a video folder")
    return text


def _videos_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)


def read_class_folders(root: str | Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``root/<class>/<video>``: classes sorted by name -> 0..K-1."""
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"dataset folder {r} does not exist")
    classes = sorted(d.name for d in r.iterdir() if d.is_dir() and not d.name.startswith("."))
    items = [(str(f), ci) for ci, c in enumerate(classes) for f in _videos_in(r / c)]
    if not items:
        raise ValueError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) under class folders of {r}")
    return items, classes


def read_unlabelled_folder(root: str | Path) -> list[tuple[str, int]]:
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"video folder {r} does not exist")
    items = [(str(f), -1) for f in _videos_in(r)]
    if not items:
        raise ValueError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under {r}")
    return items


def read_ssv2(videos_dir: str | Path, labels_json: str | Path, split_json: str | Path) -> list[tuple[str, int]]:
    """Something-Something v2: ``labels.json`` maps template -> id; the split lists
    ``{"id", "template"}`` whose ``[something]`` brackets are dropped for the lookup."""
    labels = {k: int(v) for k, v in json.loads(Path(labels_json).read_text()).items()}
    items = []
    for entry in json.loads(Path(split_json).read_text()):
        template = entry["template"].replace("[", "").replace("]", "")
        if template not in labels:
            raise ValueError(f"SSv2 template {template!r} (video {entry['id']}) is not in {labels_json}")
        items.append((str(Path(videos_dir) / f"{entry['id']}.webm"), labels[template]))
    return items


def dataset_from_source(source: str | Path, layout: str = "auto", allow_pipe: bool = False,
                        **spec: Any) -> VideoClipDataset:
    """A dataset for a CSV list, a class-folder tree or a folder of videos (``layout`` "auto" picks:
    shards (a ``.tar`` or brace pattern, ``pipe:``, a URL, a manifest, a folder of ``.tar``) stream
    through :class:`~maest.data.shards.ShardDataset`; another file is a list; a folder with
    sub-folders holding videos is class folders; else unlabelled). ``allow_pipe``: shards may come from
    ``pipe:`` shell commands (pass it only for a source the user typed, or after an explicit opt-in).
    ``spec``: :class:`ClipSpec` fields, plus ``num_classes`` to check the labels of a classifier's data."""
    if layout == "shards" or (layout == "auto" and is_shard_source(source)):
        num_classes = spec.pop("num_classes", None)
        cs = ClipSpec(**spec)
        ds = ShardDataset(source, cs, VideoClipDataset([], cs).clips, allow_pipe, num_classes)
        if num_classes is not None and ds.classes and len(ds.classes) > num_classes:
            raise ValueError(f"the shards of {source} have {len(ds.classes)} classes but model.num_classes="
                             f"{num_classes}; set model.num_classes={len(ds.classes)}")
        return ds
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(
            f"data source {p} does not exist; pass a CSV list, a class-folder root or a video folder"
        )
    if layout == "auto":
        if p.is_file():
            layout = "csv"
        else:
            subdirs = [d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")]
            layout = "folder" if any(_videos_in(d) for d in subdirs) else "unlabelled"
    num_classes = spec.pop("num_classes", None)  # a classifier's: labels are checked against it
    cs = ClipSpec(**spec)
    if layout == "csv":
        items = read_csv_list(p, num_classes)
        names = read_classes_beside(p, items) if cs.mode != "pretrain" else None
        return VideoClipDataset(items, cs, names)
    if layout == "folder":
        items, classes = read_class_folders(p)
        if num_classes is not None and len(classes) > num_classes:
            raise ValueError(f"{p} has {len(classes)} class folders but model.num_classes={num_classes}; set "
                             f"model.num_classes={len(classes)} or remove folders")
        return VideoClipDataset(items, cs, classes)
    if layout == "unlabelled":
        return VideoClipDataset(read_unlabelled_folder(p), cs)
    raise ValueError(f"unknown data layout {layout!r}; choose auto, csv, folder, unlabelled or shards")


# -- what a classifier's data says about its classes ---------------------------------------------------
CLASSES_FILE = "classes.txt"


def read_classes_beside(list_path: str | Path, items: list[tuple[str, int]]) -> list[str] | None:
    """The class names of ``classes.txt`` (one per line, label order) beside a video list, if there is
    one; a file with fewer names than the list's labels need raises, naming both files."""
    path = Path(list_path).parent / CLASSES_FILE
    if not path.is_file():
        return None
    names = [line.strip() for line in _read_text_list(path).splitlines() if line.strip()]
    top = max((label for _, label in items), default=-1)
    if top >= len(names):
        raise ValueError(f"{path} names {len(names)} classes but {list_path} uses label {top}; add the missing "
                         f"names to {path.name} or remove it")
    return names


@dataclass
class DataClasses:
    """The classes a labelled dataset has: ``count`` (None: it cannot tell), their ``names`` (None:
    unnamed) and whether the count is ``exact`` (named classes) or a lower bound (max label + 1)."""

    count: int | None
    names: list[str] | None = None
    exact: bool = False


def data_classes(dataset: Any) -> DataClasses:
    """What ``dataset`` says about its classes: class folders, a ``classes.txt`` beside a list, SSv2's
    labels and a shard manifest name them; a list without names bounds them by its largest label."""
    names = getattr(dataset, "classes", None)
    if names:
        return DataClasses(len(names), [str(n) for n in names], True)
    labels = [label for _, label in getattr(dataset, "items", ()) if label >= 0]
    return DataClasses(max(labels) + 1 if labels else None)
