#!/usr/bin/env bash
# What maest does on a CUDA GPU, in one command and at most 10 minutes on one GPU, written to one JSON
# (default $OUT/gpu_check.json, else runs/gpu_check.json; --out PATH to choose): flash-attention eligibility,
# synchronisations per step, maest bench ViT-B/L bf16 compile off/on (MFU, peak memory), a short trainer run,
# the gpu-marked tests, CUDA decoding with RandAugment, NCCL DDP/FSDP2 with 2 or more GPUs. See
# scripts/gpu_check.py. Without a GPU it exits 0 and says in one line what it skipped and why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
# each check has its own limit inside; this one only guards against a hang outside them
exec timeout 600 "$PY" scripts/gpu_check.py "$@"
