"""Training-step benchmark: seconds per step, clips/s, peak memory, FLOPs and achieved FLOP/s against
the measured matmul peak, for model sizes x mask ratios x precisions x compile, plus the reference
computation (fp32, explicit-softmax attention with three q/k/v GEMMs, plain AdamW, as the official
MAE-ST code runs) on the same weights for a side-by-side speedup. Rows may mask the decoder too
(VideoMAE V2's running cell, ``--decoder-masks 0.5``) and predict other targets (``--targets hog``;
``features``: MVD's distillation from a random-init copy of the same model as teacher, whose forward the
step time includes and the FLOPs do not).

Each configuration runs in its own process, so peak memory is its own and one configuration's
allocator state cannot slow the next. FLOPs are counted analytically (matmuls and attention; norms,
softmax and activations are ignored), since ``FlopCounterMode`` misses the CPU SDPA kernel.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from maest.bench.motion_step import motion_noise_fn
from maest.bench.options import add_step_options
from maest.bench.peak import matmul_peak
from maest.bench.peak import sync as _sync
from maest.models.masking import decoder_num_keep, num_keep
from maest.train.optim import build_adamw
from maest.train.teacher import Teacher

BARE_STEP_NOTE = ("these are bare steps (forward, backward, AdamW on one batch already on the device): they omit "
                  "the loader and the trainer's waits (noise, logging, clipping), so they overstate training "
                  "throughput; maest bench --trainer ROUNDS times the package's trainer beside them")


def forward_flops(model: torch.nn.Module, mask_ratio: float, embed_all: bool = True) -> float:
    """Multiply-adds x 2 of one clip's forward pass through the MAE (encoder on visible tokens,
    decoder on all tokens, or with a decoder mask on the visible plus the decoded ones). ``embed_all``:
    the patch projection runs on every patch, as in the reference; maest projects only the visible ones
    (``embed_all=False``)."""
    pe = model.patch_embed
    L, D = pe.num_patches, model.embed_dim
    C = pe.proj.in_channels
    cls = int(model.cls_embed)
    keep = num_keep(mask_ratio, model.grid, getattr(model, "mask_strategy", "random"))
    decoded, dec_tokens = L, L  # predicted tokens, tokens in the decoder blocks
    if getattr(model, "decoder_mask", "none") != "none":
        decoded = decoder_num_keep(model.decoder_mask_ratio, model.grid, model.decoder_mask)
        dec_tokens = keep + decoded
    Dd = model.decoder_embed.out_features
    K = model.decoder_pred.out_features
    hidden = model.blocks[0].mlp.fc1.out_features if len(model.blocks) else 4 * D
    dhidden = model.decoder_blocks[0].mlp.fc1.out_features if len(model.decoder_blocks) else 4 * Dd

    def block(n: int, d: int, h: int) -> float:
        return 2 * n * d * d * 4 + 2 * 2 * n * d * h + 4 * n * n * d  # qkv+proj, mlp, QK^T and AV

    flops = 2 * (L if embed_all else keep) * D * C * pe.t_patch_size * pe.patch_size**2
    flops += len(model.blocks) * block(keep + cls, D, hidden)
    flops += 2 * keep * D * Dd
    flops += len(model.decoder_blocks) * block(dec_tokens + cls, Dd, dhidden)
    flops += 2 * decoded * Dd * K
    return float(flops)


def build_model(model_name: str, decoder_mask_ratio: float = 0.0, target: str = "norm_pix",
                decoder_strategy: str = "running_cell", motion_rule: str = "") -> torch.nn.Module:
    """A registered model, with a decoder mask of ``decoder_mask_ratio`` (0: none), ``target`` and, with a
    ``motion_rule``, motion-guided masking."""
    from maest.models import model_config

    cfg = model_config(model_name)
    if decoder_mask_ratio > 0:
        cfg.mask.decoder, cfg.mask.decoder_ratio = decoder_strategy, decoder_mask_ratio
    cfg.target.kind = target
    if motion_rule:
        cfg.mask.strategy, cfg.mask.motion_rule = "motion", motion_rule
    if target == "features":  # the bench's teacher is a random-init copy of the model: as wide as the student
        cfg.target.teacher_dim = cfg.encoder.embed_dim
    return cfg.build()


def _random_clips(model: torch.nn.Module, batch: int, device: str) -> torch.Tensor:
    """``batch`` random clips of the shape ``model`` takes."""
    pe = model.patch_embed
    return torch.randn(batch, pe.proj.in_channels, pe.num_frames, pe.img_size, pe.img_size, device=device)


def _timed_step(model: torch.nn.Module, opt: torch.optim.Optimizer, video: torch.Tensor, mask_ratio: float,
                device: str, precision: str, ctx: Any = None, teacher: Any = None, noise: Any = None,
                compiled: bool = False) -> float:
    """Seconds of one full training step (masking ``noise()`` when given, forward and loss under ``ctx`` and
    autocast, backward, optimizer step), the device synchronised before and after; ``compiled``: the target
    and the loss compiled, as the trainer does with ``train.compile``."""
    from maest.runtime import autocast
    from maest.train.pretrain import mae_loss

    _sync(device)
    t0 = time.perf_counter()
    with ctx if ctx is not None else nullcontext(), autocast(device, precision):
        loss = mae_loss(model, video, None if noise is None else noise(), mask_ratio=mask_ratio,
                        target=None if teacher is None else teacher(video), compiled=compiled)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - t0


def time_step(model_name: str, mask_ratio: float, precision: str, compile: bool, mode: str, batch: int,
              steps: int, warmup: int, device: str, grad_checkpointing: bool = False,
              decoder_mask_ratio: float = 0.0, target: str = "norm_pix",
              decoder_strategy: str = "running_cell", motion_rule: str = "") -> dict[str, Any]:
    """Median seconds of full training steps (forward, loss, backward, AdamW) on random clips; with
    ``motion_rule``, masked by motion (:mod:`maest.bench.motion_step`), the mask's work inside the step."""
    from maest.models.layers import reference_attention

    torch.manual_seed(0)
    model = build_model(model_name, decoder_mask_ratio, target, decoder_strategy, motion_rule).to(device)
    model.grad_checkpointing = grad_checkpointing
    video = _random_clips(model, batch, device)
    teacher = Teacher(build_model(model_name), model.model_cfg.encoder).to(device) if target == "features" else None
    noise = motion_noise_fn(model, batch, motion_rule, device) if motion_rule else None
    if mode == "reference":
        precision, compile = "fp32", False
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), foreach=False)
        math_ctx = reference_attention
    else:
        opt = build_adamw([{"params": list(model.parameters())}], 1e-4, (0.9, 0.95), "auto", device)
        math_ctx = nullcontext
    with math_ctx():
        times = step_times(model, opt, video, mask_ratio, precision, compile, steps, warmup, device, teacher=teacher,
                           noise=noise)
    step = statistics.median(times)
    # backward ~ 2x forward
    flops = 3 * forward_flops(model, mask_ratio, embed_all=mode == "reference") * batch
    if device.startswith("cuda"):
        peak_mem = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    return {"model": model_name, "mode": mode, "mask_ratio": mask_ratio, "precision": precision,
            "decoder_mask": decoder_mask_ratio, "target": target, "motion_rule": motion_rule, "compile": compile,
            "batch": batch,
            "s_per_step": step, "clips_per_s": batch / step,
            "gflop_per_step": flops / 1e9, "achieved_gflops": flops / step / 1e9, "peak_mem_gib": peak_mem,
            "steps": steps, "spread": [min(times), max(times)]}


def step_times(model: torch.nn.Module, opt: torch.optim.Optimizer, video: torch.Tensor, mask_ratio: float,
               precision: str, compile: bool, steps: int, warmup: int, device: str, **step_kw: Any) -> list[float]:
    """Seconds of ``steps`` full training steps of ``model`` on ``video`` after ``warmup`` untimed ones
    (:func:`_timed_step`; compiled with ``compile``, the target and loss too)."""
    run_model = torch.compile(model) if compile else model
    times = [_timed_step(run_model, opt, video, mask_ratio, device, precision, compiled=compile, **step_kw)
             for _ in range(warmup + steps)]
    return times[warmup:]


def bare_clips_per_s(model: torch.nn.Module, batch: int, precision: str, compile: bool, steps: int, warmup: int = 3,
                     device: str = "cpu", mask_ratio: float = 0.9) -> float:
    """Clips/s of ``model``'s bare step (any geometry, e.g. a config's model): forward, loss, backward and
    AdamW on one random batch of ``batch`` clips, median of ``steps``, as :func:`time_step` times them."""
    opt = build_adamw([{"params": list(model.parameters())}], 1e-4, (0.9, 0.95), "auto", device)
    video = _random_clips(model, batch, device)
    return batch / statistics.median(step_times(model, opt, video, mask_ratio, precision, compile, steps, warmup,
                                                device))


def side_by_side(model_name: str, mask_ratio: float, rounds: int, batch: int, device: str,
                 modes: tuple[str, ...] = ("reference", "maest-bf16", "maest-fp32")) -> dict[str, Any]:
    """Interleaved timing in one process on the same weights: each round runs one step of every mode,
    so load from other processes falls on all modes alike. Returns per-mode medians and the median
    of the per-round speedups against the reference."""
    from maest.models import create_model
    from maest.models.layers import reference_attention

    torch.manual_seed(0)
    model = create_model(model_name).to(device)
    video = _random_clips(model, batch, device)
    opts = {m: torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), foreach=False) if m == "reference"
            else build_adamw([{"params": list(model.parameters())}], 1e-5, (0.9, 0.95), "auto", device) for m in modes}

    def step(mode: str) -> float:
        ctx = reference_attention() if mode == "reference" else nullcontext()
        precision = "bf16" if mode.endswith("bf16") else "fp32"
        return _timed_step(model, opts[mode], video, mask_ratio, device, precision, ctx)

    times = _interleave(step, modes, rounds)
    out = {"model": model_name, "mask_ratio": mask_ratio, "batch": batch, "rounds": rounds,
           "s_per_step": {m: statistics.median(v) for m, v in times.items()}, "times": times}
    if "reference" in modes:
        out["speedup_vs_reference"] = {
            m: statistics.median(r / t for r, t in zip(times["reference"], times[m], strict=True))
            for m in modes if m != "reference"}
    return out


def _interleave(step: Callable[[Any], float], keys: list, rounds: int) -> dict[Any, list[float]]:
    """One warm-up step per key, then ``rounds`` rounds of one timed step per key, so load from other
    processes falls on every key alike; the seconds of each key's steps."""
    for k in keys:
        step(k)
    times: dict[Any, list[float]] = {k: [] for k in keys}
    for _ in range(rounds):
        for k in keys:
            times[k].append(step(k))
    return times


def interleaved_masks(model_name: str, settings: list[tuple[float, float]], rounds: int, batch: int, device: str,
                      precision: str = "bf16", decoder_strategy: str = "running_cell") -> list[dict[str, Any]]:
    """Interleaved timing of (mask, decoder mask) settings in one process on the same weights: each round
    runs one training step of every setting, so load from other processes falls on all alike. Returns one
    row per setting with its median s/step and, for every setting after the first, the median of the
    per-round speedups against the first."""
    torch.manual_seed(0)
    models: dict[float, torch.nn.Module] = {}
    for _, dmask in settings:
        if dmask not in models:
            models[dmask] = build_model(model_name, dmask, decoder_strategy=decoder_strategy).to(device)
    first = next(iter(models.values()))
    for m in models.values():
        m.load_state_dict(first.state_dict())
    video = _random_clips(first, batch, device)
    opts = {d: build_adamw([{"params": list(m.parameters())}], 1e-5, (0.9, 0.95), "auto", device)
            for d, m in models.items()}

    def ratio(mask: float) -> float:
        return mask if mask > 0 else 0.5 / first.num_patches  # see _effective_ratio

    def step(setting: tuple[float, float]) -> float:
        mask, dmask = setting
        return _timed_step(models[dmask], opts[dmask], video, ratio(mask), device, precision)

    times = _interleave(step, settings, rounds)
    rows = []
    for mask, dmask in settings:
        t = times[(mask, dmask)]
        flops = 3 * forward_flops(models[dmask], ratio(mask), embed_all=False) * batch
        row = {"model": model_name, "mode": "maest", "mask": mask, "decoder_mask": dmask, "target": "norm_pix",
               "precision": precision, "compile": False, "batch": batch, "rounds": rounds,
               "s_per_step": statistics.median(t), "times": t, "gflop_per_step": flops / 1e9,
               "achieved_gflops": flops / statistics.median(t) / 1e9}
        if (mask, dmask) != settings[0]:
            row["paired_speedup_vs_first"] = statistics.median(
                a / b for a, b in zip(times[settings[0]], t, strict=True))
        rows.append(row)
    return rows


def _child(spec: dict[str, Any]) -> None:
    torch.set_num_threads(spec.pop("threads"))
    print(json.dumps(time_step(**spec)))


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "maest.bench.step", "--_child", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark process failed for {spec}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _effective_ratio(ratio: float, model_name: str) -> float:
    """0.0 means "no masking": remove a single token so the loss is defined (the reference's exact
    0.0 gives 0/0 = NaN), keeping L-1 of L tokens visible."""
    if ratio > 0:
        return ratio
    from maest.models import create_model

    return 0.5 / create_model(model_name).num_patches


def run(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """``python -m maest.bench.step [options]``: parse ``argv`` and run :func:`run_args`."""
    p = argparse.ArgumentParser(prog="maest bench", description=__doc__.split("\n\n")[0])
    add_step_options(p)
    p.add_argument("--_child", help=argparse.SUPPRESS)  # one configuration in its own process (_spawn)
    args = p.parse_args(argv)
    if args._child:
        _child(json.loads(args._child))
        return []
    return run_args(args)


def prepare(args: argparse.Namespace) -> argparse.Namespace:
    """The device (cuda when there is a GPU) and thread count of parsed options, set."""
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    return args


def run_args(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The benchmark of parsed options (:func:`maest.bench.options.add_step_options`): the table (one
    process per row), or the --side-by-side / --interleave rows. ``--trainer`` is
    :func:`maest.bench.trainer.run_trainer`'s, which times this module's step beside the trainer."""
    if args.trainer:
        raise ValueError("--trainer times the package's trainer: run it as maest bench --trainer ROUNDS")
    prepare(args)
    if args.side_by_side:
        return _run_side_by_side(args)
    if args.interleave:
        return _run_interleaved(args)
    return _run_table(args)


def _run_table(args: argparse.Namespace) -> list[dict[str, Any]]:
    peaks = {"fp32": matmul_peak(torch.float32, args.device), "bf16": matmul_peak(torch.bfloat16, args.device)}
    print(f"matmul peak ({args.threads} threads, {args.device}): fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)
    base = dict(batch=args.batch, steps=args.steps, warmup=args.warmup, device=args.device, threads=args.threads,
                grad_checkpointing=args.grad_checkpointing)
    specs = []  # (requested mask, process spec)
    for name in args.models:
        for mask in args.masks:
            ratio = _effective_ratio(mask, name)
            for dmask in args.decoder_masks:
                if dmask > 0 and mask == 0:
                    continue  # nothing masked: no decoder to save
                for target, rule in [(t, "") for t in args.targets] + [("norm_pix", r) for r in args.motion_rules]:
                    extra = dict(decoder_mask_ratio=dmask, target=target, decoder_strategy=args.decoder_strategy,
                                 motion_rule=rule)
                    if name in args.reference and dmask == 0 and target == "norm_pix" and not rule:
                        specs.append((mask, dict(model_name=name, mask_ratio=ratio, precision="fp32",
                                                 compile=False, mode="reference", **base, **extra)))
                    for prec in args.precisions:
                        for comp in args.compile:
                            specs.append((mask, dict(model_name=name, mask_ratio=ratio, precision=prec,
                                                     compile=comp == "on", mode="maest", **base, **extra)))
    rows = []
    print(f"{'model':<6} {'mode':<9} {'mask':>5} {'dec':>4} {'target':<8} {'prec':<5} {'comp':<4} {'s/step':>8} "
          f"{'clips/s':>8} {'GFLOP/step':>10} {'GFLOP/s':>8} {'%peak':>6} {'mem GiB':>8}", flush=True)
    for mask, spec in specs:
        r = _spawn(spec)
        r["mask"] = mask
        r["pct_of_peak"] = 100 * r["achieved_gflops"] / peaks[r["precision"]]
        rows.append(r)
        comp = "on" if r["compile"] else "off"
        print(f"{r['model']:<6} {r['mode']:<9} {r['mask']:>5.2f} {r['decoder_mask']:>4.2f} {r['target']:<8} "
              f"{r['precision']:<5} {comp:<4} {r['s_per_step']:>8.3f} {r['clips_per_s']:>8.2f} "
              f"{r['gflop_per_step']:>10.1f} "
              f"{r['achieved_gflops']:>8.1f} {r['pct_of_peak']:>6.1f} {r['peak_mem_gib']:>8.2f}"
              + (f"  motion masks ({r['motion_rule']})" if r["motion_rule"] else ""), flush=True)
    for line in summarize(rows):
        print(line)
    print(BARE_STEP_NOTE)
    if args.json:
        meta = {"torch": torch.__version__, "device": args.device, "threads": args.threads,
                "cpu": platform.processor() or platform.machine(), "batch": args.batch, "steps": args.steps}
        report = {"meta": meta, "peaks_gflops": peaks, "results": rows, "summary": summarize(rows),
                  "note": BARE_STEP_NOTE}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return rows


def _run_interleaved(args: argparse.Namespace) -> list[dict[str, Any]]:
    peak = matmul_peak(torch.bfloat16 if args.precisions[0] == "bf16" else torch.float32, args.device)
    print(f"matmul peak ({args.threads} threads, {args.device}, {args.precisions[0]}): {peak:.0f} GFLOP/s", flush=True)
    settings = [(m, d) for m in args.masks for d in args.decoder_masks if not (d > 0 and m == 0)]
    rows = []
    for name in args.models:
        for r in interleaved_masks(name, settings, args.interleave, args.batch, args.device, args.precisions[0],
                                   args.decoder_strategy):
            r["pct_of_peak"] = 100 * r["achieved_gflops"] / peak
            rows.append(r)
            rounds = ", ".join(f"{t:.2f}" for t in r["times"])
            vs = f"; {r['paired_speedup_vs_first']:.2f}x vs the first setting (paired rounds)" \
                if "paired_speedup_vs_first" in r else ""
            print(f"{name} mask {r['mask']} decoder {r['decoder_mask']}: {r['s_per_step']:.2f} s/step (rounds "
                  f"{rounds}), {r['gflop_per_step']:.1f} GFLOP/step, {r['pct_of_peak']:.1f}% of peak{vs}", flush=True)
    for line in summarize(rows):
        print(line)
    if args.json:
        meta = {"torch": torch.__version__, "device": args.device, "threads": args.threads, "mode": "interleave",
                "peak_gflops": peak}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": rows, "summary": summarize(rows)}, indent=2)
                                   + "\n")
    return rows


def _run_side_by_side(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for name in args.reference:
        for mask in args.masks:
            r = side_by_side(name, _effective_ratio(mask, name), args.side_by_side, args.batch, args.device)
            r["mask"] = mask
            results.append(r)
            speed = ", ".join(f"{m} {t:.2f}" for m, t in r["s_per_step"].items())
            ups = ", ".join(f"{m} {x:.2f}x" for m, x in r.get("speedup_vs_reference", {}).items())
            print(f"{name} mask {mask}: s/step {speed}; speedup vs reference (median of paired rounds): {ups}",
                  flush=True)
    by_mask = {r["mask"]: r for r in results if r["model"] == args.reference[0]}
    if 0.9 in by_mask and 0.0 in by_mask:
        for m, t in by_mask[0.9]["s_per_step"].items():
            print(f"{args.reference[0]} {m}: masking speedup 0.9 vs 0.0 = {by_mask[0.0]['s_per_step'][m] / t:.1f}x")
    if args.json:
        meta = {"torch": torch.__version__, "device": args.device, "threads": args.threads, "mode": "side-by-side"}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return results


def summarize(rows: list[dict[str, Any]]) -> list[str]:
    """Speedups vs the reference computation and masking speedups (0.9 vs 0.0), per model."""
    out = []

    def find(model, mode, mask, prec=None, dmask=0.0):
        for r in rows:
            if r["model"] == model and r["mode"] == mode and r["mask"] == mask and not r["compile"] \
                    and (prec is None or r["precision"] == prec) and r.get("decoder_mask", 0.0) == dmask \
                    and r.get("target", "norm_pix") == "norm_pix":
                return r
        return None

    for model in dict.fromkeys(r["model"] for r in rows):
        for mask in (0.9, 0.0):
            ref = find(model, "reference", mask)
            fast = find(model, "maest", mask, "bf16") or find(model, "maest", mask)
            if ref and fast:
                out.append(f"{model} mask {mask}: maest ({fast['precision']}) {fast['s_per_step']:.2f} s/step vs "
                           f"reference {ref['s_per_step']:.2f} s/step: {ref['s_per_step'] / fast['s_per_step']:.1f}x")
        for mode in ("maest", "reference"):
            for prec in ("bf16", "fp32"):
                hi, lo = find(model, mode, 0.9, prec), find(model, mode, 0.0, prec)
                if hi and lo:
                    out.append(f"{model} {mode} {prec}: masking speedup 0.9 vs 0.0 = "
                               f"{lo['s_per_step'] / hi['s_per_step']:.1f}x")
                for dm in sorted({r.get("decoder_mask", 0.0) for r in rows} - {0.0}):
                    both = find(model, mode, 0.9, prec, dm)
                    if both and lo:
                        out.append(f"{model} {mode} {prec}: masking speedup 0.9 + decoder {dm} vs 0.0 = "
                                   f"{lo['s_per_step'] / both['s_per_step']:.1f}x (FLOPs "
                                   f"{lo['gflop_per_step'] / both['gflop_per_step']:.1f}x)")
                    if both and hi:
                        out.append(f"{model} {mode} {prec}: decoder mask {dm} at 0.9 = "
                                   f"{hi['s_per_step'] / both['s_per_step']:.2f}x faster than 0.9 alone (FLOPs "
                                   f"{hi['gflop_per_step'] / both['gflop_per_step']:.2f}x)")
    return out


if __name__ == "__main__":
    run()
