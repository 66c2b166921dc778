"""The options of the two benchmarks, ``maest bench`` (:mod:`maest.bench.step`) and ``maest bench-data``
(:mod:`maest.bench.data`). They are declared here, apart from the benchmarks' code, so that the
``maest`` command line lists them (``maest bench --help``) without importing the benchmarks."""

from __future__ import annotations

import argparse
import os

SIZES = {"340x256": (340, 256), "1280x720": (1280, 720)}  # generated video sizes: name -> (width, height)
DATA_SECTIONS = ("speedup", "shards", "profile", "e2e", "stall", "motion")  # motion: codec motion vectors vs plain


def add_step_options(p: argparse.ArgumentParser) -> None:
    """The options of the training-step benchmark (:func:`maest.bench.step.run_args`)."""
    p.add_argument("--models", nargs="+", default=["tiny", "small", "base"],
                   help="registered models to time (default: tiny small base)")
    p.add_argument("--masks", nargs="+", type=float, default=[0.9, 0.0],
                   help="mask ratios (0: nothing masked; default: 0.9 0.0)")
    p.add_argument("--decoder-masks", nargs="+", type=float, default=[0.0], metavar="RATIO",
                   help="decoder mask ratios (0: the decoder runs on every token; VideoMAE V2: 0.5), each "
                        "combined with every mask above 0")
    p.add_argument("--decoder-strategy", default="running_cell", choices=["running_cell", "random"],
                   help="which tokens a decoder mask keeps (default: running_cell)")
    p.add_argument("--motion-rules", nargs="*", default=[], choices=["warp", "magnitude"],
                   help="also time motion-guided masking (model.mask.strategy=motion) with these rules, the mask "
                        "computed from a synthetic pan inside the timed step (maest.bench.motion_step)")
    p.add_argument("--targets", nargs="+", default=["norm_pix"], choices=["norm_pix", "pixels", "hog", "features"],
                   help="reconstruction targets (the decoder's output width follows; features: distilling a "
                        "random-init copy of the same model, as MVD's targets)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                   help="autocast precisions of the maest rows (default: fp32 bf16)")
    p.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"],
                   help="torch.compile settings to run (cold compile adds 25-45 s per CPU config)")
    p.add_argument("--reference", nargs="*", default=["base"], metavar="MODEL",
                   help="models also timed with the reference computation (default: base)")
    p.add_argument("--batch", type=int, default=2, help="clips per training step (default: 2)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per configuration, median reported "
                                                        "(default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them (default: 1)")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="torch threads (default: 2, or 1 on a one-core machine)")
    p.add_argument("--device", help="cuda or cpu (default: cuda when there is a GPU)")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="recompute the blocks' activations in the backward pass (less memory, slower)")
    p.add_argument("--side-by-side", type=int, default=0, metavar="ROUNDS",
                   help="instead of the table: interleave reference / maest-bf16 / maest-fp32 steps of the "
                        "--reference models in one process for ROUNDS rounds (fair under shared load)")
    p.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                   help="instead of the table: interleave steps of every --masks x --decoder-masks setting of "
                        "each --models model (first --precisions) in one process for ROUNDS rounds")
    p.add_argument("--trainer", type=int, default=0, metavar="ROUNDS",
                   help="instead of the table: the package's trainer (loader, noise, loss, clipping, AdamW, "
                        "logging) beside the bare step of each --models model, first --precisions and --compile, "
                        "--batch videos, for ROUNDS interleaved rounds (maest.bench.trainer)")
    p.add_argument("--trainer-files", action="store_true",
                   help="with --trainer: also feed the trainer from generated H.264 files, not only from memory")
    p.add_argument("--trainer-cache", action="store_true",
                   help="with --trainer: also feed it from the files with data.cache=memory (every video decoded "
                        "once, up front; the steady-state windows then read memory)")
    p.add_argument("--trainer-workers", type=int, default=0,
                   help="with --trainer: loader worker processes (default: 0, loading in the training process)")
    p.add_argument("--trainer-videos", type=int, default=0, metavar="N",
                   help="with --trainer: videos in the trainer's set (default: max(64, 4 x --batch)); an epoch "
                        "ends, and a checkpoint is saved, every N / (--batch / R) steps, so a set as large as "
                        "the real one times the trainer as it will run (the miniature: 1900)")
    p.add_argument("--trainer-transfer", choices=["float32", "uint8"], default="float32",
                   help="with --trainer: the trainer's data.transfer (uint8: clips normalised once per batch in "
                        "the step; the same numbers for pre-training, as the miniature pre-trains)")
    p.add_argument("--trainer-repeat-aug", type=int, default=1, metavar="R",
                   help="with --trainer: clips per decoded video (repeated sampling; the official pre-training "
                        "uses 4); the trainer takes --batch / R videos, so both sides step on --batch clips")
    p.add_argument("--json", help="write {meta, peaks, results} here")


def add_data_options(p: argparse.ArgumentParser) -> None:
    """The options of the loader benchmark (:func:`maest.bench.data.run_args`)."""
    p.add_argument("--sections", nargs="+", default=list(DATA_SECTIONS), choices=list(DATA_SECTIONS),
                   help="what to measure (default: all; see the module docstring of maest.bench.data)")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES),
                   help="sizes of the generated videos (default: both)")
    p.add_argument("--gop", type=int, default=30, help="keyframe interval of the generated H.264 (default: 30)")
    p.add_argument("--repeats", nargs="+", type=int, default=[1, 2, 4],
                   help="clips per decoded video, repeated sampling (default: 1 2 4)")
    p.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2],
                   help="loader worker counts of the shards section (default: 0 1 2)")
    p.add_argument("--backend", default="auto", choices=["auto", "torchcodec", "pyav"],
                   help="decoder of the 'now' files/shards rows (default: auto)")
    p.add_argument("--files", type=int, default=3, help="distinct generated videos per corpus")
    p.add_argument("--items", type=int, default=9, help="video reads per 256p measurement (720p: a third)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the speedup section")
    p.add_argument("--profile-reads", type=int, default=4, help="video reads per profile row (default: 4)")
    p.add_argument("--models", nargs="+", default=["tiny", "small", "base"],
                   help="models of the e2e section (default: tiny small base)")
    p.add_argument("--e2e-batch", type=int, default=1, help="videos per step (each gives --e2e-repeat clips)")
    p.add_argument("--e2e-repeat", type=int, default=4, help="clips per video in the e2e section (default: 4)")
    p.add_argument("--e2e-steps", type=int, default=3, help="timed steps per e2e row (default: 3)")
    p.add_argument("--e2e-workers", nargs="+", type=int, default=[0, 2],
                   help="loader worker counts of the e2e section (default: 0 2)")
    p.add_argument("--e2e-threads", type=int, default=1,
                   help="torch threads of the step (default 1: on a shared machine more threads wait on each other)")
    p.add_argument("--decode-device", default="cpu", choices=["cpu", "cuda"],
                   help="speedup section: also time torchcodec decoding on this device (0 workers)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default: 16)")
    p.add_argument("--rate", type=int, default=4, help="sampling stride between clip frames (default: 4)")
    p.add_argument("--crop", type=int, default=224, help="crop size in pixels (default: 224)")
    p.add_argument("--need-model", default="mae_vit_base_patch16",
                   help="the model whose clips/s per GPU the loader rows are set against (default: ViT-B 16x224 "
                        "MAE, mae_vit_base_patch16, at its 90%% masking; maest.bench.feed)")
    p.add_argument("--gpu", default="H100", choices=["H100", "H200", "A100", "B200", "L40S"],
                   help="the GPU of that column, at its dense bf16 peak (default: H100, 989 TFLOP/s)")
    p.add_argument("--mfu", type=float, default=0.4,
                   help="the model FLOP utilisation assumed on it (default: 0.4)")
    p.add_argument("--quick", action="store_true", help="256p, repeat 4, 1 round, tiny e2e: a smoke run")
    p.add_argument("--workdir", help="keep the generated videos and shards here (default: a temp folder)")
    p.add_argument("--out", help="write results as JSON here")
