"""The ``e2e`` and ``stall`` sections of ``maest bench-data`` (see :mod:`maest.bench.data`): the MAE
pre-training step fed by the real loader vs by in-memory tensors, and step times around epoch
boundaries with the run-long loader vs a loader rebuilt every epoch."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from maest.bench.corpus import make_corpus
from maest.data import ClipSpec, VideoClipDataset
from maest.data.loader import build_loader, build_run_loader


def _step_fn(model_name: str, precision: str):
    from maest.models import create_model
    from maest.runtime import autocast
    from maest.train.optim import build_adamw, param_groups_weight_decay
    from maest.train.pretrain import mae_loss

    torch.manual_seed(0)
    model = create_model(model_name)
    opt = build_adamw(param_groups_weight_decay(model, 0.05), 1e-4, (0.9, 0.95), "auto", "cpu")

    def step(video: torch.Tensor) -> None:
        with autocast("cpu", precision):
            loss = mae_loss(model, video, mask_ratio=0.9)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return model, step


def section_e2e(args, work: Path) -> list[dict]:
    from maest.runtime import resolve_precision

    precision = resolve_precision("auto", "cpu")
    paths = make_corpus(work, "340x256", args.gop, args.files)
    rows = []
    for model_name in args.models:
        model, step = _step_fn(model_name, precision)
        pe = model.patch_embed
        spec = ClipSpec(mode="pretrain", repeat=args.e2e_repeat, seed=0, backend=args.backend,
                        num_frames=pe.num_frames, sampling_rate=4, crop_size=pe.img_size)
        steps = args.e2e_steps
        ds = VideoClipDataset([(str(paths[i % len(paths)]), 0) for i in range(args.e2e_batch * (steps + 2))], spec)
        first = next(iter(build_loader(ds, args.e2e_batch, shuffle=False, num_workers=0)))
        video = first["video"]
        step(video)  # warm-up
        mem = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step(video)
            mem.append(time.perf_counter() - t0)
        t_mem = statistics.median(mem)
        clips = video.shape[0]
        for workers in args.e2e_workers:
            loader = build_run_loader(ds, args.e2e_batch, seed=0, rank=0, world=1,
                                      per_epoch=args.e2e_batch * (steps + 1), epochs=1, num_workers=workers)
            it = iter(loader)
            step(next(it)["video"])  # start-up not timed
            wait = compute = 0.0
            for _ in range(steps):
                t0 = time.perf_counter()
                b = next(it)["video"]
                t1 = time.perf_counter()
                step(b)
                wait, compute = wait + t1 - t0, compute + time.perf_counter() - t1
            del it
            data_per_clip = wait / steps / clips  # with 0 workers: the decode + augment cost of a clip
            row = {"section": "e2e", "model": model_name, "precision": precision, "workers": workers,
                   "clips_per_step": clips, "step_s_in_memory": t_mem, "step_s_loader": (wait + compute) / steps,
                   "data_wait_fraction": wait / (wait + compute),
                   "data_ms_per_clip": data_per_clip * 1e3, "compute_ms_per_clip": t_mem / clips * 1e3,
                   "data_cost_vs_compute": data_per_clip / (t_mem / clips)}
            rows.append(row)
            print(f"e2e {model_name:<6} workers {workers}: step {row['step_s_loader']:.3f} s (in memory {t_mem:.3f}), "
                  f"waiting {100 * row['data_wait_fraction']:.0f}%, data {row['data_ms_per_clip']:.0f} ms/clip = "
                  f"{100 * row['data_cost_vs_compute']:.0f}% of compute per clip", flush=True)
        del model
    return rows


def section_stall(args, work: Path) -> list[dict]:
    """A GPU-like step (the CPU idles ``step_s`` while the data keeps up) over 3 epochs of 6 batches, 2
    workers: the first step of epochs 2 and 3 vs the median step, with the run-long loader (workers
    start once, prefetch runs across epoch ends) and with a loader rebuilt every epoch (as before)."""
    from torch.utils.data import DataLoader

    from maest.data.loader import ShardedSampler, collate_clips, worker_init

    paths = make_corpus(work, "340x256", args.gop, args.files)
    batch, per_epoch, epochs = 1, 6, 3
    spec = ClipSpec(mode="pretrain", repeat=4, seed=0, backend=args.backend, **args.spec_kw)
    ds = VideoClipDataset([(str(paths[i % len(paths)]), 0) for i in range(batch * per_epoch)], spec)
    ds[0]  # library loading, first open
    t0 = time.perf_counter()
    ds[1]
    step_s = time.perf_counter() - t0  # one batch's decode time: 2 workers keep ahead of it
    rows = []
    for how in ("run-long loader", "rebuilt each epoch"):
        run_it = iter(build_run_loader(ds, batch, seed=0, rank=0, world=1, per_epoch=batch * per_epoch,
                                       epochs=epochs, num_workers=2)) if how == "run-long loader" else None
        times = []
        for e in range(epochs):
            if run_it is None:  # before issue 15: a new loader (new workers) every epoch
                sampler = ShardedSampler(len(ds), seed=0)
                sampler.set_epoch(e)
                cur = iter(DataLoader(ds, batch, sampler=sampler, num_workers=2, collate_fn=collate_clips,
                                      worker_init_fn=worker_init, persistent_workers=False))
            else:
                cur = run_it
            ts = []
            for _ in range(per_epoch):
                t0 = time.perf_counter()
                next(cur)
                time.sleep(step_s)
                ts.append(time.perf_counter() - t0)
            times.append(ts)
        steady = statistics.median([t for ts in times for t in ts[1:]])
        firsts = [ts[0] for ts in times[1:]]
        rows.append({"section": "stall", "loader": how, "step_s": step_s, "median_step_s": steady,
                     "first_step_s": firsts, "first_over_median": [f / steady for f in firsts]})
        print(f"stall {how:<20}: median step {steady:.3f} s (GPU-like step {step_s:.3f} s), first step of epochs "
              f"2-{epochs}: " + ", ".join(f"{f:.3f} s ({f / steady:.2f}x)" for f in firsts), flush=True)
    return rows
