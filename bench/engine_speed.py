"""Engine speed figures (issue #2 "Targets"): times each stage of a mode-A match on generated 240 s
44.1 kHz stereo music, best of N, and prints wall and process-CPU seconds with x-realtime.

Run on one core:  taskset -c 0 .venv/bin/python bench/engine_speed.py [--repeat 3] [--dir /tmp/tm_speed]
The CPU column is this process's CPU time (the machine is shared, so wall time can be inflated).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DURATION_S = 240.0


def _ensure_signals(folder: Path) -> dict[str, str]:
    from engine.examples import write_example_pair

    ref, tgt = folder / "reference.wav", folder / "target.wav"
    if not (ref.exists() and tgt.exists()):
        return write_example_pair(folder, duration_s=DURATION_S)
    return {"reference": str(ref), "target": str(tgt)}


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        best_wall, best_cpu = min(best_wall, w), min(best_cpu, c)
    return best_wall, best_cpu, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/tonematch_engine_speed")
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-command timing")
    args = ap.parse_args()
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = _ensure_signals(folder)
    ref, tgt, out = paths["reference"], paths["target"], str(folder / "out.wav")

    import engine
    from engine.features import analyze_features
    try:
        from engine.features import analysis_options
    except ImportError:  # before the per-mode options existed
        def analysis_options(mode: str) -> dict[str, Any]:
            return {}
    from engine.invert import invert_params
    from engine.render import render_file

    opts_a = analysis_options("A")
    rows: list[tuple[str, float, float]] = []
    w, c, ref_f = _time(lambda: analyze_features(ref, **opts_a), args.repeat)
    rows.append(("analyse reference (mode A)", w, c))
    w, c, tgt_f = _time(lambda: analyze_features(tgt, **opts_a), args.repeat)
    rows.append(("analyse target (mode A)", w, c))
    w, c, _ = _time(lambda: analyze_features(tgt, pitch=True), args.repeat)
    rows.append(("  (analyse with F0, for reference)", w, c))
    w, c, params = _time(lambda: invert_params(ref_f, tgt_f, mode="A"), args.repeat)
    rows.append(("invert (mode A)", w, c))
    w, c, _ = _time(lambda: render_file(tgt, out, params), args.repeat)
    rows.append(("render_file (resolve gain + write)", w, c))
    w, c, _ = _time(lambda: engine.match_files(ref, tgt, out, mode="A", measure_result=False), args.repeat)
    rows.append(("match_files A, once loaded", w, c))
    w, c, _ = _time(lambda: engine.match_files(ref, tgt, out, mode="A"), args.repeat)
    rows.append(("match_files A + result metrics", w, c))
    if not args.no_cli:
        cmd = [sys.executable, "-m", "engine.cli", "match", ref, tgt, "-o", out, "--quiet"]
        rss_kb: list[int] = []
        timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)

        def cli() -> None:
            # GNU time's %M is the command's own peak RSS (getrusage of children would count the
            # fork of this process, which holds the analysed features)
            full = [timer, "-f", "%M", *cmd] if timer else cmd
            r = subprocess.run(full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if timer:
                rss_kb.append(int(r.stderr.strip().splitlines()[-1]))
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        w, _, _ = _time(cli, args.repeat)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c = ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) / args.repeat
        rows.append(("whole `tonematch match` command", w, c))
        peak_mb = max(rss_kb) / 1024.0 if rss_kb else float("nan")
    print(f"signals: {DURATION_S:.0f} s 44.1 kHz stereo in {folder}; best of {args.repeat}")
    print(f"{'stage':40s} {'wall s':>8s} {'cpu s':>8s} {'x rt (wall)':>12s} {'x rt (cpu)':>11s}")
    for name, w, c in rows:
        print(f"{name:40s} {w:8.3f} {c:8.3f} {DURATION_S / w:12.1f} {DURATION_S / max(c, 1e-9):11.1f}")
    if not args.no_cli:
        print(f"whole command peak RSS (max of runs): {peak_mb:.0f} MB; cli's cpu is the mean per run")


if __name__ == "__main__":
    main()
