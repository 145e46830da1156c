#!/usr/bin/env bash
# Quick start (README): install tonematch into .venv, generate deterministic example audio (no
# downloads), match the example target to the example reference, and say where everything went.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_env.sh
ensure_venv
OUT=${TONEMATCH_QUICKSTART_DIR:-out/quickstart}
mkdir -p "$OUT"
echo "== generating example audio in $OUT/audio"
"$VENV/bin/tonematch" example-audio "$OUT/audio" --duration 30
echo "== matching target.wav to reference.wav"
"$VENV/bin/tonematch" match "$OUT/audio/reference.wav" "$OUT/audio/target.wav" \
  -o "$OUT/matched.wav" --preset-out "$OUT/preset.json" --report "$OUT/report.json"
echo
echo "processed audio: $OUT/matched.wav"
echo "preset:          $OUT/preset.json   (re-apply: .venv/bin/tonematch apply $OUT/preset.json OTHER.wav -o OUT.wav)"
echo "report:          $OUT/report.json   (parameters, quality metrics, visualisation data)"
