"""Loader and end-to-end throughput on generated H.264 corpora (issue 15).

Usage: ``maest bench-data [--sections speedup shards profile e2e stall] [--quick] [--out results.json]``
(or ``python benchmarks/bench_data.py``). Sections:

- ``speedup``: clips/s on one core (0 workers) of the loader as it was before issue 15 ("before":
  torchcodec or PyAV decoding every frame up to the last one needed, float crop + resize, separate
  normalise, stack, cat) and as it is now ("now": PyAV skips unreferenced pictures it does not need,
  uint8 crop + resize, one-pass normalise into the batch, shared-memory collation), side by side in
  interleaved rounds, medians reported, at 340x256 and 1280x720, repeated sampling 1/2/4;
- ``shards``: files vs WebDataset shards of the same videos through the trainer's loader
  (:func:`maest.data.loader.build_run_loader`), repeat 1/2/4 x workers 0/1/2;
- ``profile``: where one clip's time goes (open/demux, decode, colour conversion, crop + resize, float
  conversion + normalise, collate), before and now;
- ``e2e``: the MAE pre-training step (90% masking, AdamW) fed by the real loader vs by in-memory
  tensors for tiny, small and base: the fraction of step time spent waiting on data, and the
  decode + augment cost per clip as a fraction of the step's compute per clip;
- ``stall``: step times around epoch boundaries with the run-long loader (workers start once) and
  with a loader rebuilt every epoch (as before).
- ``motion``: PyAV decoding with codec motion fields for motion-guided masking (``data.motion=codec``)
  vs plain decoding, side by side at 340x256 (issue 23's goal: at most 15% more time per clip).

"cores/GPU" = the loader cores needed to feed one GPU: a GPU's clips/s divided by clips/s per core.
"clips/s needed per GPU" (speedup and shards rows, ``clips_per_s_needed_per_gpu`` and ``gpus_fed``): what one
GPU consumes from the model's FLOPs (``--need-model``, ``--gpu``, ``--mfu``; :mod:`maest.bench.feed`), printed
beside the measured wall-clock clips/s.
GPU rates (``GPU_MS_PER_CLIP``): ViT-L on A100, 58.8 ms per clip, derived from MAE-ST Table 1
(arXiv:2205.09113: 24.5 h of compute on 128 A100s for 800 effective epochs of K400, taken as 240k
videos x 800 clips); ViT-B on H100, 12.5 ms per clip, the middle of the 10-15 ms issue 15 quotes
(no published measurement found). Measured results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from maest.bench.corpus import corpus_and_shards, make_corpus
from maest.bench.e2e import section_e2e, section_stall
from maest.bench.feed import columns, feed
from maest.bench.options import add_data_options
from maest.data import ClipSpec, VideoClipDataset, torchcodec_available
from maest.data import transforms as T
from maest.data.decode import PyAVVideo, open_video, pyav_rgb24, read_frames
from maest.data.loader import build_run_loader, epoch_of
from maest.data.sampling import train_clips
from maest.runtime import mix_seed

GPU_MS_PER_CLIP = {"ViT-B H100": 12.5, "ViT-L A100": 58.8}


class BeforeClips(Dataset):
    """The pre-training item as maest computed it before issue 15, for side-by-side ratios."""

    def __init__(self, paths: list[Path], spec: ClipSpec) -> None:
        self.paths, self.spec = paths, spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.spec
        # seeded per item as the dataset is, so both pipelines decode the same clips
        torch.manual_seed(mix_seed(s.seed or 0, epoch_of(index, 0), index))
        video = open_video(self.paths[index], s.backend)
        if isinstance(video, PyAVVideo):
            video.decode_every_frame()  # as before
        idx = train_clips(video.num_frames, s.num_frames, s.sampling_rate, video.fps, s.repeat)
        frames = read_frames(video, torch.cat(idx).tolist())
        if isinstance(video, PyAVVideo):
            frames = frames.contiguous()  # PyAV gave planar frames before (torchcodec: channels-last, as now)
        frames = frames.split(s.num_frames)
        m = torch.tensor(T.MEAN).view(1, -1, 1, 1) * 255
        sd = torch.tensor(T.STD).view(1, -1, 1, 1) * 255
        out = []
        for f in frames:
            top, left, h, w = T.rrc_box(f.shape[-2], f.shape[-1], (0.5, 1.0), s.aspect)
            x = F.interpolate(f[..., top:top + h, left:left + w].float(), size=(s.crop_size, s.crop_size),
                              mode="bilinear", align_corners=False)
            if torch.rand(()).item() < 0.5:
                x = x.flip(-1)
            out.append(((x - m) / sd).permute(1, 0, 2, 3).contiguous())
        r = len(out)
        return {"video": torch.stack(out), "index": torch.full((r,), index), "label": torch.zeros(r, dtype=torch.long),
                "skipped": []}


def loader_rate(ds: Any, workers: int, items: int) -> tuple[float, float]:
    """(clips per wall-clock second, clips per CPU second of the decoding processes) of one pass of the
    trainer's loader over ``items`` videos (batch 1), the first item not counted. CPU seconds do not
    grow when other jobs share the cores, so their ratios are what to compare on a busy machine (with
    workers they include the workers' start-up)."""
    loader = build_run_loader(ds, 1, seed=0, rank=0, world=1, per_epoch=items, epochs=1, num_workers=workers)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    it = iter(loader)
    next(it)  # worker start-up and the first item are not timed
    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(b["video"].shape[0] for b in it)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if workers:
        del it  # the workers exit and are reaped, so their CPU time is counted below
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (children.ru_utime + children.ru_stime) - (children0.ru_utime + children0.ru_stime)
        n_cpu = n + 1  # the workers' CPU time covers the first item too
    else:
        n_cpu = n
    return n / wall, n_cpu / cpu


def _datasets(paths: list[Path], shards: Path | None, spec_kw: dict, repeat: int, backend: str,
              decode_device: str = "cpu") -> dict[str, Any]:
    from maest.data.datasets import dataset_from_source

    items = [(str(p), 0) for p in paths]
    spec = dict(mode="pretrain", repeat=repeat, seed=0, **spec_kw)
    out = {}
    for b in ("torchcodec", "pyav"):
        if b == "torchcodec" and not torchcodec_available():
            continue
        out[f"before {b}"] = BeforeClips(paths, ClipSpec(backend=b, **spec))
        out[f"now {b}"] = VideoClipDataset(items, ClipSpec(backend=b, **spec))
    if decode_device != "cpu":
        out[f"now torchcodec {decode_device}"] = VideoClipDataset(items, ClipSpec(backend="torchcodec",
                                                                                  decode_device=decode_device, **spec))
    if shards is not None:
        out[f"now shards {backend}"] = dataset_from_source(shards, backend=backend, **spec)
    return out


def gpu_cores(per_core: float) -> dict[str, float]:
    return {name: (1000 / ms) / per_core for name, ms in GPU_MS_PER_CLIP.items()}


def section_speedup(args, work: Path) -> list[dict]:
    rows = []
    for size in args.sizes:
        paths, items, shards = corpus_and_shards(args, work, size)
        for repeat in args.repeats:
            sets = _datasets([paths[i % len(paths)] for i in range(items)], shards, args.spec_kw, repeat, args.backend,
                             args.decode_device)
            wall: dict[str, list[float]] = {k: [] for k in sets}
            cpu: dict[str, list[float]] = {k: [] for k in sets}
            for _ in range(args.rounds):  # interleaved, so load from other jobs falls on all alike
                for name, ds in sets.items():
                    w, c = loader_rate(ds, 0, items)
                    wall[name].append(w)
                    cpu[name].append(c)
            base = statistics.median(cpu.get("before torchcodec") or cpu["before pyav"])
            for name in sets:
                med, med_wall = statistics.median(cpu[name]), statistics.median(wall[name])
                rows.append({"section": "speedup", "size": size, "gop": args.gop, "repeat": repeat, "pipeline": name,
                             "backend": name, "workers": 0, "clips_per_s": med_wall, "clips_per_cpu_s": med,
                             "clips_per_s_per_core": med, "rounds_cpu": cpu[name], "rounds_wall": wall[name],
                             "vs_before_torchcodec": med / base, **columns(args.need, med_wall),
                             **{f"cores/GPU {k}": v for k, v in gpu_cores(med).items()}})
                print(f"{size:>9} r={repeat} {name:<26} {med:6.1f} clips per CPU-s  x{med / base:.2f}  (rounds "
                      f"{', '.join(f'{v:.1f}' for v in cpu[name])}; wall {med_wall:.1f} clips/s, needed per GPU "
                      f"{args.need.clips_per_s:.0f})", flush=True)
    return rows


def section_shards(args, work: Path) -> list[dict]:
    from maest.data.datasets import dataset_from_source

    rows = []
    for size in args.sizes:
        paths, items, shards = corpus_and_shards(args, work, size)
        for repeat in args.repeats:
            spec = dict(mode="pretrain", repeat=repeat, seed=0, backend=args.backend, **args.spec_kw)
            files = VideoClipDataset([(str(paths[i % len(paths)]), 0) for i in range(items)], ClipSpec(**spec))
            sh = dataset_from_source(shards, **spec)
            for workers in args.workers:
                for name, ds in (("files", files), ("shards", sh)):
                    cps, per_core = loader_rate(ds, workers, items)
                    rows.append({"section": "shards", "size": size, "gop": args.gop, "repeat": repeat, "source": name,
                                 "backend": f"{name} ({args.backend})", "workers": workers, "clips_per_s": cps,
                                 "clips_per_s_per_core": per_core, **columns(args.need, cps),
                                 **{f"cores/GPU {k}": v for k, v in gpu_cores(per_core).items()}})
                    print(f"{size:>9} r={repeat} workers {workers} {name:<6} {cps:6.1f} clips/s wall "
                          f"(needed per GPU {args.need.clips_per_s:.0f}), {per_core:.1f} clips per CPU-s", flush=True)
    return rows


def section_profile(args, work: Path) -> list[dict]:
    """CPU ms per clip by stage for one video read (repeat r), before and now, PyAV (decode and colour
    conversion timed apart) and torchcodec (together)."""
    rows = []
    for size in args.sizes:
        path = make_corpus(work, size, args.gop, 1)[0]
        for repeat in args.repeats:
            for mode in ("before", "now"):
                for backend in ("pyav", "torchcodec"):
                    if backend == "torchcodec" and not torchcodec_available():
                        continue
                    acc: dict[str, float] = {}
                    n = args.profile_reads
                    for it in range(n + 1):
                        _profile_once(path, repeat, backend, mode, args.spec_kw, acc if it else {}, it)
                    per_clip = {k: v / n / repeat * 1e3 for k, v in acc.items()}
                    rows.append({"section": "profile", "size": size, "repeat": repeat, "pipeline": f"{mode} {backend}",
                                 "ms_per_clip": per_clip, "total_ms_per_clip": sum(per_clip.values())})
                    print(f"{size:>9} r={repeat} {mode:<6} {backend:<10} {sum(per_clip.values()):6.1f} ms/clip: "
                          + ", ".join(f"{k} {v:.1f}" for k, v in per_clip.items()), flush=True)
    return rows


def _profile_once(path: Path, repeat: int, backend: str, mode: str, spec_kw: dict, acc: dict, seed: int) -> None:
    def tick(key: str, t0: float) -> float:
        t = time.process_time()
        acc[key] = acc.get(key, 0.0) + t - t0
        return t

    g = torch.Generator().manual_seed(seed)
    t = time.process_time()
    video = open_video(path, backend)
    if mode == "before" and isinstance(video, PyAVVideo):
        video.decode_every_frame()
    idx = train_clips(video.num_frames, spec_kw["num_frames"], spec_kw["sampling_rate"], video.fps, repeat, g)
    flat = torch.cat(idx).tolist()
    t = tick("open+demux", t)
    if isinstance(video, PyAVVideo):
        wanted, last = set(flat), max(flat)
        video._container.seek(video._pts[min(flat)], stream=video._stream, backward=True, any_frame=False)
        got, raw = {}, {}
        for frame in video._frames(video._stream, wanted):
            i = video._index.get(frame.pts, -1)
            if i in wanted:
                raw[i] = frame
            if i >= last:
                break
        t = tick("decode", t)
        if mode == "before":  # planar frames, as before
            for i, frame in raw.items():
                got[i] = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            frames = torch.stack([got[i] for i in flat])
        else:  # channels-last, converted as the decoder converts them
            for i, frame in raw.items():
                got[i] = pyav_rgb24(frame)
            frames = torch.from_numpy(np.stack([got[i] for i in flat])).permute(0, 3, 1, 2)
        t = tick("colour", t)
    else:
        frames = read_frames(video, flat)
        t = tick("decode+colour", t)
    size = spec_kw["crop_size"]
    outs = torch.empty(repeat, 3, spec_kw["num_frames"], size, size) if mode == "now" else []
    for k, f in enumerate(frames.split(spec_kw["num_frames"])):
        top, left, h, w = T.rrc_box(f.shape[-2], f.shape[-1], (0.5, 1.0), (3 / 4, 4 / 3))
        crop = f[..., top:top + h, left:left + w]
        if mode == "before":
            x = crop.float()
            t = tick("float", t)
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            t = tick("crop+resize", t)
            x = T.normalize(x.flip(-1))
            outs.append(x)
            t = tick("flip+normalise", t)
        else:
            x = T.resize(crop, (size, size))
            t = tick("crop+resize", t)
            T.normalize(x.flip(-1), out=outs[k])
            t = tick("flip+float+normalise", t)
    batch = torch.cat([torch.stack(outs)]) if mode == "before" else outs
    del batch
    tick("collate", t)


def section_motion(args, work: Path) -> list[dict]:
    """PyAV decoding with the clips' codec motion fields (``data.motion=codec``: export, rasterise, crop and
    resize with the clip) vs plain, side by side in interleaved rounds at 340x256; CPU-second medians."""
    rows = []
    paths = make_corpus(work, "340x256", args.gop, args.files)
    items = [(str(paths[i % len(paths)]), 0) for i in range(args.items)]
    for repeat in args.repeats:
        spec = dict(mode="pretrain", repeat=repeat, seed=0, backend="pyav", **args.spec_kw)
        sets = {m: VideoClipDataset(items, ClipSpec(motion=m, **spec)) for m in ("none", "codec")}
        cpu: dict[str, list[float]] = {k: [] for k in sets}
        for _ in range(args.rounds):
            for name, ds in sets.items():
                cpu[name].append(loader_rate(ds, 0, args.items)[1])
        plain, codec = statistics.median(cpu["none"]), statistics.median(cpu["codec"])
        rows.append({"section": "motion", "size": "340x256", "gop": args.gop, "repeat": repeat,
                     "plain_clips_per_cpu_s": plain, "codec_clips_per_cpu_s": codec, "time_ratio": plain / codec,
                     "rounds_plain": cpu["none"], "rounds_codec": cpu["codec"]})
        print(f"  340x256 r={repeat} decode {plain:6.1f} clips per CPU-s plain, {codec:6.1f} with motion vectors: "
              f"x{plain / codec:.3f} the time per clip (goal <= 1.15)", flush=True)
    return rows


SECTIONS = {"speedup": section_speedup, "shards": section_shards, "profile": section_profile, "e2e": section_e2e,
            "stall": section_stall, "motion": section_motion}


def run(argv: list[str] | None = None) -> list[dict]:
    """``python benchmarks/bench_data.py [options]``: parse ``argv`` and run :func:`run_args`."""
    p = argparse.ArgumentParser(prog="maest bench-data", description=__doc__.split("\n\n")[0])
    add_data_options(p)
    return run_args(p.parse_args(argv))


def run_args(args: argparse.Namespace) -> list[dict]:
    """The sections of parsed options (:func:`maest.bench.options.add_data_options`), in order; with
    ``--out`` the results so far are written after each."""
    if args.quick:
        args.sizes, args.repeats, args.workers, args.rounds, args.items = ["340x256"], [4], [0, 2], 1, 4
        args.models, args.profile_reads, args.e2e_steps = ["tiny"], 1, 2
    args.spec_kw = dict(num_frames=args.frames, sampling_rate=args.rate, crop_size=args.crop)
    args.need = feed(args.need_model, args.gpu, args.mfu)
    print(args.need.describe(), flush=True)
    if args.decode_device != "cpu":
        from maest.data.decode import check_decode_device

        check_decode_device(args.decode_device)  # one line on a machine that cannot
    torch.set_num_threads(1)  # the timed process is one decoding core, as a worker is
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for section in args.sections:
            if section == "e2e":
                torch.set_num_threads(args.e2e_threads)
            rows += SECTIONS[section](args, work)
            torch.set_num_threads(1)
            if args.out:
                _write(args, rows)
    return rows


def _write(args: argparse.Namespace, rows: list[dict]) -> None:
    meta = {"torch": torch.__version__, "machine": platform.machine(), "torchcodec": torchcodec_available(),
            "clip": f"{args.frames} frames x stride {args.rate}, crop {args.crop}", "gop": args.gop,
            "gpu_ms_per_clip": GPU_MS_PER_CLIP, "needed_per_gpu": vars(args.need)}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=1, default=str) + "\n")


