#!/usr/bin/env bash
# Benchmark set-up (run on demand, not by the test suite):
#   1. Debian packages with the audio and the speech synthesiser: hyperrogue-music, singularity-music,
#      espeak-ng (apt-get; skipped when already installed);
#   2. a separate venv bench/.venv-matchering with Matchering 2.0.6, so its pins stay out of .venv;
#   3. lists the music files the benchmark will use (dpkg -L).
# Decoded excerpts and outputs go to bench/.work/ (gitignored); no audio is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(hyperrogue-music singularity-music espeak-ng)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
else
  echo "Debian packages present: ${PKGS[*]}"
fi

PY=${PYTHON:-python3}
if [[ ! -x bench/.venv-matchering/bin/python ]]; then
  "$PY" -m venv bench/.venv-matchering
fi
if ! bench/.venv-matchering/bin/python -c "import matchering, sys; sys.exit(matchering.__version__ != '2.0.6')" \
    2>/dev/null; then
  bench/.venv-matchering/bin/pip install -q --upgrade pip
  bench/.venv-matchering/bin/pip install -q "matchering==2.0.6"
fi
bench/.venv-matchering/bin/python -c "import matchering; print('matchering', matchering.__version__)"

echo "music files:"
dpkg -L hyperrogue-music singularity-music | grep -E '/music/.*\.ogg$' | sed 's/^/  /'
mkdir -p bench/.work
echo "ready: .venv/bin/python -m bench.run_quality   and   .venv/bin/python -m bench.run_speed"
