"""Where a small model's training step spends its time (issue 19 §1): the digits MAE step (48 px,
8 frames, 144 tokens, ViT 96 x 4, decoder 64 x 2, 90% masking, raw pixels) profiled with
torch.profiler, as it ran before (fp32, eager, 16-channel decoder heads) and as it runs now (bf16,
compiled, 32-channel heads), at the same batch. Prints ms per step by operator group.

    python benchmarks/small_step_profile.py --batch 16

``--loss-ab ROUNDS``: instead, the compiled bf16 step with its target and loss eager (as before
``train.compile`` compiled them) and compiled (now), one step of each per round in one process, for
raw-pixel and per-patch normalised targets; median clips/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from maest.models import model_config
from maest.runtime import autocast
from maest.train.pretrain import mae_loss

GROUPS = {  # operator name fragments -> group
    "matmul": ("mm", "addmm", "bmm", "linear", "matmul"),
    "softmax": ("softmax",),
    "copies and casts": ("copy_", "_to_copy", "cat", "index", "gather", "clone", "contiguous"),
    "norms and GELU": ("layer_norm", "gelu"),
    "AdamW": ("adamw", "Optimizer"),
    "compiled kernels": ("CompiledFxGraph",),
}


def step_fn(precision: str, compiled: bool, heads: int, batch: int, loss_compiled: bool | None = None,
            target: str = "pixels"):
    """One training step of the digits MAE; ``loss_compiled`` (default: ``compiled``): its target and loss."""
    torch.manual_seed(0)
    loss_compiled = compiled if loss_compiled is None else loss_compiled
    cfg = model_config("digits")
    cfg.target.kind, cfg.decoder.num_heads = target, heads
    model = cfg.build()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    run_model = torch.compile(model) if compiled else model
    video, noise = torch.randn(batch, 3, 8, 48, 48), torch.rand(batch, model.num_patches)

    def step() -> None:
        with autocast("cpu", precision):
            loss = mae_loss(run_model, video, noise, compiled=loss_compiled)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def profile_step(precision: str, compiled: bool, heads: int, batch: int, steps: int) -> dict:
    step = step_fn(precision, compiled, heads, batch)
    for _ in range(4):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = {g: 0.0 for g in GROUPS} | {"other": 0.0}
    for e in prof.key_averages():
        name = e.key.lower()
        group = next((g for g, keys in GROUPS.items() if any(k.lower() in name for k in keys)), "other")
        totals[group] += e.self_cpu_time_total / 1e3 / steps
    total = sum(totals.values())
    return {"precision": precision, "compiled": compiled, "decoder_heads": heads, "batch": batch,
            "ms_per_step": round(total, 1), "clips_per_s_profiled": round(batch / total * 1e3, 1),
            "ms_by_group": {g: round(v, 1) for g, v in totals.items()}}


def loss_ab(batch: int, rounds: int, target: str) -> dict:
    """Median clips/s of the compiled bf16 step with the target and loss eager vs compiled, interleaved."""
    steps = {mode: step_fn("bf16", True, 2, batch, mode == "compiled", target) for mode in ("eager", "compiled")}
    times: dict[str, list[float]] = {mode: [] for mode in steps}
    for r in range(rounds + 3):  # 3 warm-up rounds: compilation
        for mode, step in steps.items():
            t0 = time.perf_counter()
            step()
            if r >= 3:
                times[mode].append(time.perf_counter() - t0)
    rate = {mode: batch / statistics.median(t) for mode, t in times.items()}
    return {"target": target, "batch": batch, "rounds": rounds, "loss_eager_clips_s": round(rate["eager"], 1),
            "loss_compiled_clips_s": round(rate["compiled"], 1), "speedup": round(rate["compiled"] / rate["eager"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--loss-ab", type=int, default=0, metavar="ROUNDS",
                   help="instead of the profile: the step with the target and loss eager vs compiled, interleaved")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.loss_ab:
        for target in ("pixels", "norm_pix"):
            print(json.dumps(loss_ab(args.batch, args.loss_ab, target)), flush=True)
        return
    for setting in (("fp32", False, 4), ("bf16", True, 2)):
        print(json.dumps(profile_step(*setting, args.batch, args.steps)), flush=True)


if __name__ == "__main__":
    main()
