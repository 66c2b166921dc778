#!/usr/bin/env bash
# Creates .venv and installs maest with everything its tests and demo need, offline-friendly:
# torch comes from a local CPU wheel when one is present, so pip never pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" 2>/dev/null; then
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)
  if [ -n "$wheel" ]; then src="$wheel"; else src=torch==2.13.0; fi
  "$VPY" -m pip install -q "$src" 2>&1 | grep -v "is ignored: it is neither" || true
fi
# torchcodec 0.13 needs FFmpeg's shared libraries; PyAV (bundled FFmpeg) is the fallback without them.
extras="demo,dev"
if ! ldconfig -p 2>/dev/null | grep -q libavcodec.so.59; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) \
      || echo "setup: ffmpeg install failed; maest will decode with PyAV" >&2
  fi
fi
ldconfig -p 2>/dev/null | grep -q libavcodec.so.59 && extras="$extras,torchcodec"
"$VPY" -m pip install -q -e ".[${extras}]" 2>&1 | grep -v "is ignored: it is neither" || true
"$VPY" -c "import maest, torch; print(f'setup: maest {maest.__version__}, torch {torch.__version__}')"
