#!/usr/bin/env bash
# Compare the GPU render path with the CPU path on a GPU machine (H100/H200): prints the difference
# in dB (must be < -90 dB) and timings. Run from the repository root:  bash gpu_batch/check_gpu.sh
# Uses python3 (or $PYTHON). Installs what is missing from wheels in ./.whl if present (no network
# needed), else tries pip (cupy-cuda12x may or may not install; CuPy already there is used as is).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$PY" - <<'PYEOF'
import importlib.util
need = ["numpy", "scipy", "soundfile", "soxr", "pyloudnorm"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PYEOF
)
if [ -n "$missing" ]; then
  echo "check_gpu: installing $missing" >&2
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/tonematch-site .whl/*.whl
  else
    "$PY" -m pip install -q --target /tmp/tonematch-site $missing
  fi
  export PYTHONPATH="$PYTHONPATH:/tmp/tonematch-site"
fi
if ! "$PY" -c "import cupy" 2>/dev/null; then
  echo "check_gpu: CuPy missing, trying pip install cupy-cuda12x" >&2
  "$PY" -m pip install -q --target /tmp/tonematch-site cupy-cuda12x || true
  export PYTHONPATH="$PYTHONPATH:/tmp/tonematch-site"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
exec "$PY" -m gpu_batch.check_gpu "$@"
