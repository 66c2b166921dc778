"""What maest does on a CUDA GPU, in at most 10 minutes on one GPU, written to one JSON (issue 24).

Run through ``scripts/gpu_check.sh``. Each check runs in its own process under its own time limit, and the
JSON is rewritten after each one, so a check that fails, hangs or is cut off leaves the others' results:

- ``flash``: whether SDPA's flash kernel takes maest's attention (bf16, ViT-B and ViT-L heads) forward
  and backward;
- ``syncs``: host synchronisations per optimizer step of the pre-training trainer
  (``torch.cuda.set_sync_debug_mode``), by source line;
- ``bench``: ``maest bench`` ViT-B/L, bf16, mask 0.9, compile off and on: s/step, clips/s, TFLOP/s, % of
  the measured matmul peak, MFU against the GPU's datasheet bf16 peak where known, peak memory;
- ``trainer``: ``maest bench --trainer``: the package's trainer beside the bare step (ViT-B, bf16);
- ``gpu_tests``: the tests marked ``gpu``;
- ``decode``: clips/s of fine-tuning items (RandAugment on) decoded by torchcodec on the GPU, and on the CPU;
- ``nccl``: 2-process DDP and FSDP2 over NCCL against one process (2 or more GPUs only).

On a machine without CUDA it writes the JSON with every check skipped and prints one line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKS = {  # name: (seconds allowed, what it is)
    "flash": (60, "flash-attention eligibility"),
    "syncs": (90, "synchronisations per step"),
    "bench": (240, "maest bench ViT-B/L bf16 compile off/on"),
    "trainer": (120, "a short trainer run"),
    "gpu_tests": (150, "the gpu-marked tests"),
    "decode": (90, "CUDA decoding with RandAugment"),
    "nccl": (120, "NCCL DDP/FSDP2"),
}
BUDGET_S = 570  # of the 10 minutes: the rest is start-up and the JSON
BF16_PEAK_TFLOPS = {"H100": 989, "H200": 989, "H800": 989, "GH200": 989, "A100": 312, "A800": 312, "L40S": 362,
                    "L4": 121, "B200": 2250}  # dense, datasheet


def _torch():
    import torch

    return torch


def check_flash() -> dict:
    torch = _torch()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from maest.models.layers import Attention

    out = {}
    for name, dim, heads in (("vit_b", 768, 12), ("vit_l", 1024, 16)):
        attn = Attention(dim, heads).cuda()
        x = torch.randn(2, 1 + 8 * 14 * 14, dim, device="cuda", requires_grad=True)  # 16x224x224: 1568 + cls
        try:
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", dtype=torch.bfloat16):
                attn(x).float().sum().backward()
            torch.cuda.synchronize()
            out[name] = {"flash": True}
        except RuntimeError as e:
            out[name] = {"flash": False, "why": str(e).splitlines()[0][:300]}
    return out


def _enclosing_function(path: str, line: int) -> str:
    import ast

    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError):
        return "?"
    best = "?"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.lineno <= line <= node.end_lineno:
            best = node.name  # ast.walk goes outside in: the last match is the innermost
    return best


def check_syncs(device: str = "cuda") -> dict:
    torch = _torch()
    import warnings

    import maest.train.pretrain as pre
    from maest.train.recipes import get_preset

    sys.path.insert(0, str(ROOT))
    from tests.conftest import RandomClips

    steps, log_every = 8, 4
    with tempfile.TemporaryDirectory() as tmp:
        cfg = get_preset("tiny")
        t = cfg.train
        t.output_dir, t.device, t.precision, t.progress, t.tensorboard = tmp, device, "bf16", False, False
        t.batch_size, t.accum_iter, t.max_steps, t.epochs, t.log_every = 2, 2, steps, 100, log_every
        cfg.optim.clip_grad = 1.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                pre.run(cfg, dataset=RandomClips(n=64))
            finally:
                torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    where: dict[str, int] = {}
    for w in syncs:
        key = f"{Path(w.filename).name}:{w.lineno} ({_enclosing_function(w.filename, w.lineno)})"
        where[key] = where.get(key, 0) + 1
    logged = sum(n for k, n in where.items() if "(log_step)" in k or "(check)" in k)
    return {"steps": steps, "micro_batches_per_step": 2, "log_every": log_every, "total": len(syncs),
            "per_step": len(syncs) / steps, "per_step_outside_log_steps": (len(syncs) - logged) / steps,
            "by_line": dict(sorted(where.items(), key=lambda kv: -kv[1]))}


def _run_json(cmd: list[str], json_path: Path, timeout: float) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:6])} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return json.loads(json_path.read_text())


def check_bench() -> dict:
    torch = _torch()
    name = torch.cuda.get_device_name()
    spec = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        report = _run_json([sys.executable, "-m", "maest.bench.step", "--models", "base", "large", "--masks", "0.9",
                            "--precisions", "bf16", "--compile", "off", "on", "--reference", "--batch", "8",
                            "--steps", "5", "--warmup", "2", "--device", "cuda", "--json", str(out)], out, 230)
    rows = [{k: r[k] for k in ("model", "compile", "batch", "s_per_step", "clips_per_s", "peak_mem_gib")}
            | {"tflops": r["achieved_gflops"] / 1e3, "pct_of_measured_matmul_peak": r["pct_of_peak"],
               "mfu_pct_of_datasheet": None if spec is None else 100 * r["achieved_gflops"] / 1e3 / spec}
            for r in report["results"]]
    return {"gpu": name, "datasheet_bf16_tflops": spec, "rows": rows, "note": report.get("note"),
            "measured_bf16_matmul_tflops": report["peaks_gflops"]["bf16"] / 1e3}


def check_trainer(device: str = "cuda", model: str = "base", steps: int = 30) -> dict:
    """The package's trainer (noise, loss, guard, clipping, fused AdamW, logging, a checkpoint at the end)
    on ViT-B, bf16, batch 8, fed from memory, beside the bare step of the same model (forward, backward,
    AdamW on one batch already on the GPU)."""
    torch = _torch()
    from types import SimpleNamespace

    import maest.train.pretrain as pre
    from maest.bench.trainer import bare_rate
    from maest.runs.metrics import read_metrics
    from maest.train import loop
    from maest.train.recipes import get_preset

    class Resident(torch.utils.data.Dataset):
        """4 distinct clips, made once: loading costs nothing, so the trainer's own waits show."""

        def __init__(self, shape):
            self.clips = [torch.randn(1, *shape) for _ in range(4)]

        def __len__(self):
            return 256

        def __getitem__(self, i):
            return {"video": self.clips[i % 4], "label": torch.zeros(1, dtype=torch.long),
                    "index": torch.full((1,), i), "skipped": []}

    loop.write_run_curves = lambda run_dir: None
    cfg = get_preset("demo")
    cfg.model.adopt(model)
    e, t = cfg.model.encoder, cfg.train
    cfg.data.num_workers, cfg.data.repeat_aug = 0, 1
    with tempfile.TemporaryDirectory() as tmp:
        t.output_dir, t.device, t.precision, t.batch_size, t.max_steps, t.epochs = tmp, device, "bf16", 8, steps, 100
        t.log_every, t.progress, t.tensorboard, t.keep_checkpoints, t.save_every_steps = 5, False, False, 1, 0
        pre.run(cfg, dataset=Resident((3, e.num_frames, e.img_size, e.img_size)))
        rates = [r["clips_per_s"] for r in read_metrics(Path(tmp) / "metrics.jsonl") if "clips_per_s" in r]
    bare = bare_rate(model, SimpleNamespace(device=device, compile=["off"], batch=8, precisions=["bf16"]), 20)
    trainer = sorted(rates[1:])[len(rates[1:]) // 2]  # the first window holds the warm-up
    return {"model": model, "batch": 8, "precision": "bf16", "steps": steps, "trainer_clips_s_windows": rates,
            "trainer_clips_s": trainer, "bare_clips_s": bare, "ratio": trainer / bare,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device != "cpu" else None}


def check_gpu_tests() -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-k", "not nccl", "-p",
                           "no:cacheprovider", "tests"], capture_output=True, text=True, timeout=145, cwd=ROOT)
    tail = proc.stdout.strip().splitlines()[-15:]
    return {"rc": proc.returncode, "passed": proc.returncode == 0, "summary": tail[-1] if tail else "", "tail": tail}


def check_decode(devices: tuple[str, ...] = ("cuda:0", "cpu")) -> dict:
    torch = _torch()
    from maest.data import write_test_pattern
    from maest.data.datasets import ClipSpec, VideoClipDataset
    from maest.data.decode import check_decode_device

    if "cuda:0" in devices:
        check_decode_device("cuda:0")  # one line when torchcodec has no CUDA decoder here
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = [write_test_pattern(Path(tmp) / f"p{i}.mp4", 340, 256, num_frames=150, fps=30, gop=30, seed=i)
                 for i in range(3)]
        items = [(str(p), 0) for p in paths]
        for device in devices:
            spec = ClipSpec(mode="finetune", repeat=2, rand_aug=True, erase_prob=0.25, decode_device=device, seed=0)
            ds = VideoClipDataset(items, spec)
            ds[0]  # warm-up: decoder creation, kernels
            sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
            sync()
            t0, clips = time.perf_counter(), 0
            for i in range(12):
                clips += ds[i % len(items)]["video"].shape[0]
            sync()
            out[device] = {"clips_per_s": clips / (time.perf_counter() - t0), "clips": clips,
                           "in_process": True, "video": "340x256 H.264, 16 frames x 4, crop 224, RandAugment"}
        if "cuda:0" in devices:
            out["cuda:0 uint8, 2 threads"] = _threaded_uint8(items)
    return out


def _threaded_uint8(items: list, batches: int = 6) -> dict:
    """data.transfer=uint8 clips decoded on the GPU in 2 loading threads (the trainer's path), normalised on the
    device: clips/s, and how far they are from float32 clips of the same items (bound: 0.5 grey level)."""
    torch = _torch()
    from maest.data.datasets import ClipSpec, VideoClipDataset
    from maest.data.loader import build_run_loader
    from maest.data.transfer import DeviceInput

    def spec(transfer):
        return ClipSpec(mode="finetune", repeat=2, rand_aug=True, erase_prob=0.25, decode_device="cuda:0", seed=0,
                        transfer=transfer)

    u8 = VideoClipDataset(items * batches, spec("uint8"))
    to_input = DeviceInput.of(u8, "cuda:0")
    loader = build_run_loader(u8, 1, seed=0, rank=0, world=1, per_epoch=batches, epochs=1, num_workers=0, threads=2)
    torch.cuda.synchronize()
    t0, clips = time.perf_counter(), 0
    for batch in loader:
        clips += to_input(batch).shape[0]
    torch.cuda.synchronize()
    rate = clips / (time.perf_counter() - t0)
    a = VideoClipDataset(items, spec("float32"))[0]["video"]
    b = to_input(VideoClipDataset(items, spec("uint8"))[0])
    return {"clips_per_s": rate, "clips": clips, "max_diff_vs_float32": float((a - b).abs().max()),
            "bound": 0.5 / (255 * 0.225)}


def check_nccl() -> dict:
    torch = _torch()
    if torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU: NCCL DDP/FSDP2 needs 2 or more"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-k", "nccl", "-p", "no:cacheprovider",
                           "tests/runtime/test_distributed.py"], capture_output=True, text=True, timeout=115, cwd=ROOT)
    tail = proc.stdout.strip().splitlines()[-10:]
    return {"rc": proc.returncode, "passed": proc.returncode == 0, "tail": tail}


def run_check(name: str) -> dict:
    """One check in this process (the child side)."""
    return globals()[f"check_{name}"]()


def _child(name: str, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"cut off after {timeout:.0f} s", "seconds": round(time.perf_counter() - t0, 1)}
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"error": f"exited {proc.returncode}", "stderr": proc.stderr[-2000:]}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def environment() -> dict:
    torch = _torch()
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        env.update(gpus=torch.cuda.device_count(), gpu=torch.cuda.get_device_name(),
                   capability=list(torch.cuda.get_device_capability()))
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(os.environ.get("OUT", ROOT / "runs")) / "gpu_check.json"),
                   help="the JSON to write (default: $OUT/gpu_check.json, else runs/gpu_check.json)")
    p.add_argument("--checks", nargs="+", default=list(CHECKS), choices=list(CHECKS))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_check(args.child), default=str))
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"environment": environment(), "checks": {}}
    torch = _torch()
    if not torch.cuda.is_available():
        why = f"torch {torch.__version__} sees no CUDA GPU"
        report["skipped"] = {name: why for name in args.checks}
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"gpu_check: skipped all {len(args.checks)} checks ({', '.join(CHECKS[c][1] for c in args.checks)}): "
              f"{why}; wrote {out}")
        return 0
    start = time.perf_counter()
    for name in args.checks:
        left = BUDGET_S - (time.perf_counter() - start)
        allowed = min(CHECKS[name][0], left)
        if allowed < 20:
            report["checks"][name] = {"skipped": f"out of time ({left:.0f} s of {BUDGET_S} left)"}
        else:
            report["checks"][name] = _child(name, allowed)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"gpu_check: {name}: {json.dumps(report['checks'][name], default=str)[:300]}", flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"gpu_check: wrote {out} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
