"""Speed and memory benchmark: `tonematch match` vs Matchering 2.0 on full-length tracks, side by side.

    .venv/bin/python -m bench.run_speed [--runs 3] [--pairs 2] [--skip-long]

Measures, in one run on this machine:
1. whole command wall time, imports included: ``tonematch match REF TGT -o OUT`` vs
   ``python -c "import matchering as mg; mg.process(...)"`` on the same 3-5 minute 44.1 kHz 16-bit
   WAVs (Singularity soundtrack, Debian ``singularity-music``), ``--runs`` runs each, alternating;
   medians, seconds per second of audio, peak RSS (``os.wait4`` rusage of each child);
2. the engine once loaded (as a service worker): ``engine.match_files`` in one process pinned to one
   core (``taskset -c 0``, BLAS/OpenMP threads 1), after a warm-up run; realtime factor, mode A;
3. peak RSS of ``tonematch match`` on a 3-minute and a 60-minute target (memory must be flat);
4. Matchering on a 16-minute target (it refuses files over 15 minutes).

Results go to bench/.work/results_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bench.common import (
    MG_PY,
    PROJECT_PY,
    ROOT,
    TONEMATCH_EXE,
    WORK_DIR,
    dump_json,
    engine_ready,
    git_commit,
    now_utc,
    require_matchering,
)

SPEED_DIR = WORK_DIR / "speed"
SR_HZ = 44100
SINGULARITY_DIR = Path("/usr/share/games/singularity/music")
# (reference, target) pairs of full-length tracks, 3.5-4.2 minutes
PAIRS = (("Awakening.ogg", "Coherence.ogg"), ("Inevitable.ogg", "Deprecation.ogg"))
ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "NUMBA_NUM_THREADS": "1"}


# --- audio preparation ----------------------------------------------------------------------------------


def decode_to_wav(src: Path, dst: Path, *, max_s: float | None = None) -> Path:
    """Decode a Debian track to 44.1 kHz 16-bit stereo WAV (what a user would hand to either tool)."""
    if dst.exists():
        return dst
    x, sr = sf.read(str(src), dtype="float32", always_2d=True)
    if max_s is not None:
        x = x[: int(max_s * sr)]
    if sr != SR_HZ:
        x = soxr.resample(x, sr, SR_HZ, quality="VHQ")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".part.wav")
    sf.write(str(tmp), x, SR_HZ, subtype="PCM_16")
    tmp.rename(dst)
    return dst


def looped_wav(dst: Path, minutes: float, sources: list[Path]) -> Path:
    """A long 44.1 kHz 16-bit stereo WAV made by concatenating ``sources`` in a loop, written in blocks
    (memory stays flat)."""
    if dst.exists() and abs(sf.info(str(dst)).duration - minutes * 60) < 1:
        return dst
    need = int(minutes * 60 * SR_HZ)
    tmp = dst.with_suffix(".part.wav")
    with sf.SoundFile(str(tmp), "w", SR_HZ, 2, "PCM_16") as out:
        written = 0
        i = 0
        while written < need:
            with sf.SoundFile(str(sources[i % len(sources)])) as f:
                for block in f.blocks(blocksize=SR_HZ * 10, dtype="float32", always_2d=True):
                    block = block[: need - written]
                    out.write(block)
                    written += len(block)
                    if written >= need:
                        break
            i += 1
    tmp.rename(dst)
    return dst


def prepare(pairs: int, long: bool) -> dict:
    SPEED_DIR.mkdir(parents=True, exist_ok=True)
    tracks = []
    for ref, tgt in PAIRS[:pairs]:
        r = decode_to_wav(SINGULARITY_DIR / ref, SPEED_DIR / ref.replace(".ogg", ".wav"))
        t = decode_to_wav(SINGULARITY_DIR / tgt, SPEED_DIR / tgt.replace(".ogg", ".wav"))
        tracks.append((r, t))
    prepared: dict = {"pairs": tracks}
    if long:
        loop_src = [decode_to_wav(SINGULARITY_DIR / n, SPEED_DIR / n.replace(".ogg", ".wav"))
                    for n in ("Coherence.ogg", "Deprecation.ogg", "Nebula.ogg", "Aberrations.ogg")]
        prepared["t3"] = looped_wav(SPEED_DIR / "loop_3min.wav", 3, loop_src)
        prepared["t16"] = looped_wav(SPEED_DIR / "loop_16min.wav", 16, loop_src)
        prepared["t60"] = looped_wav(SPEED_DIR / "loop_60min.wav", 60, loop_src)
    return prepared


# --- measuring ------------------------------------------------------------------------------------------


# Runs the measured command as the grandchild of this (large) bench process: the ``ru_maxrss`` that
# ``wait4`` reports for a direct child counts the memory of the process it was forked from (Linux keeps
# the pre-exec high-water mark), so a direct child would inherit this script's few hundred MB.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "maxrss_kb": ru.ru_maxrss,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, fh)
"""


def run_with_rss(cmd: list[str], *, env: dict | None = None, timeout_s: float = 1800) -> dict:
    """Run ``cmd``: wall time (s), its peak RSS (MB, ``wait4`` rusage taken by a small launcher
    process, see ``_LAUNCHER``), CPU times, exit code, output tails."""
    full_env = os.environ | (env or {})
    out_f = SPEED_DIR / "_child.out"
    err_f = SPEED_DIR / "_child.err"
    usage_f = SPEED_DIR / "_child.rusage.json"
    usage_f.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(usage_f), *cmd]
    with open(out_f, "wb") as fo, open(err_f, "wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(launcher, stdout=fo, stderr=fe, env=full_env, cwd=ROOT, start_new_session=True)
        timed_out = False
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, 9)
            p.wait()
        wall = time.perf_counter() - t0
    usage = json.loads(usage_f.read_text()) if usage_f.exists() else {
        "rc": p.returncode, "maxrss_kb": 0, "user_s": 0.0, "sys_s": 0.0}
    return {"wall_s": wall, "rc": usage["rc"], "timed_out": timed_out,
            "peak_rss_mb": usage["maxrss_kb"] / 1024.0, "user_s": usage["user_s"], "sys_s": usage["sys_s"],
            "stdout": out_f.read_text(errors="replace")[-4000:],
            "stderr": err_f.read_text(errors="replace")[-2000:]}


def tonematch_cmd(ref: Path, tgt: Path, out: Path, mode: str = "A") -> list[str]:
    return [str(TONEMATCH_EXE), "match", str(ref), str(tgt), "-o", str(out), "--mode", mode,
            "--format", "wav24"]


def matchering_cmd(ref: Path, tgt: Path, out: Path) -> list[str]:
    code = (f"import matchering as mg; mg.process(target={str(tgt)!r}, reference={str(ref)!r}, "
            f"results=[mg.pcm24({str(out)!r})])")
    return [str(MG_PY), "-c", code]


def duration_s(path: Path) -> float:
    return float(sf.info(str(path)).duration)


def whole_command(pairs: list[tuple[Path, Path]], runs: int, tm: bool, mg: bool) -> list[dict]:
    rows = []
    for ref, tgt in pairs:
        dur = duration_s(tgt)
        row: dict = {"reference": ref.name, "target": tgt.name, "target_s": dur, "tonematch": [],
                     "matchering": []}
        for i in range(runs):
            if tm:
                r = run_with_rss(tonematch_cmd(ref, tgt, SPEED_DIR / "out_tm.wav"))
                row["tonematch"].append(r)
                print(f"  tonematch  {tgt.name} run {i + 1}: {r['wall_s']:.2f} s, {r['peak_rss_mb']:.0f} MB, "
                      f"rc {r['rc']}", flush=True)
            if mg:
                r = run_with_rss(matchering_cmd(ref, tgt, SPEED_DIR / "out_mg.wav"))
                row["matchering"].append(r)
                print(f"  matchering {tgt.name} run {i + 1}: {r['wall_s']:.2f} s, {r['peak_rss_mb']:.0f} MB, "
                      f"rc {r['rc']}", flush=True)
        for tool in ("tonematch", "matchering"):
            ok = [r for r in row[tool] if r["rc"] == 0]
            if ok:
                w = statistics.median(r["wall_s"] for r in ok)
                row[f"{tool}_median_s"] = w
                row[f"{tool}_s_per_audio_s"] = w / dur
                row[f"{tool}_median_rss_mb"] = statistics.median(r["peak_rss_mb"] for r in ok)
            elif row[tool]:
                row[f"{tool}_error"] = row[tool][-1]["stderr"].strip().splitlines()[-1:] or ["?"]
            for r in row[tool]:
                r.pop("stdout", None)
        if row.get("tonematch_median_s") and row.get("matchering_median_s"):
            row["speedup"] = row["matchering_median_s"] / row["tonematch_median_s"]
        rows.append(row)
    return rows


INPROC = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
import engine
import_s = time.perf_counter() - t0
import soundfile as sf
ref, tgt, out, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
engine.match_files(ref, tgt, out, mode="A")  # warm-up: first-call costs (caches, lazy imports)
times = []
for _ in range(runs):
    t = time.perf_counter()
    engine.match_files(ref, tgt, out, mode="A")
    times.append(time.perf_counter() - t)
dur = sf.info(tgt).duration
print(json.dumps({"import_s": import_s, "times_s": times, "median_s": statistics.median(times),
                  "target_s": dur, "realtime_x": dur / statistics.median(times)}))
"""


def engine_in_process(ref: Path, tgt: Path, runs: int) -> dict:
    cmd = ["taskset", "-c", "0", str(PROJECT_PY), "-c", INPROC, str(ref), str(tgt),
           str(SPEED_DIR / "out_inproc.wav"), str(runs)]
    r = run_with_rss(cmd, env=ONE_CORE_ENV)
    if r["rc"] != 0:
        return {"error": r["stderr"].strip().splitlines()[-3:], "rc": r["rc"]}
    res = json.loads(r["stdout"].strip().splitlines()[-1])
    res["peak_rss_mb"] = r["peak_rss_mb"]
    return res


def memory_flat(ref: Path, t3: Path, t60: Path, timeout_s: float) -> dict:
    """Peak RSS with a 3- and a 60-minute target. A run past ``timeout_s`` is killed; its peak RSS up to
    then is still reported (``timed_out``)."""
    res = {}
    for name, tgt in (("3min", t3), ("60min", t60)):
        r = run_with_rss(tonematch_cmd(ref, tgt, SPEED_DIR / f"out_{name}.wav"), timeout_s=timeout_s)
        res[name] = {"target_s": duration_s(tgt), "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"],
                     "rc": r["rc"], "timed_out": r["timed_out"],
                     "stderr_tail": r["stderr"].strip().splitlines()[-2:]}
        print(f"  tonematch on {name}: {r['wall_s']:.1f} s, {r['peak_rss_mb']:.0f} MB, rc {r['rc']}",
              flush=True)
        (SPEED_DIR / f"out_{name}.wav").unlink(missing_ok=True)
    return res


def matchering_long(ref: Path, t16: Path) -> dict:
    r = run_with_rss(matchering_cmd(ref, t16, SPEED_DIR / "out_mg16.wav"))
    last = (r["stderr"].strip().splitlines() or ["(no message)"])[-1]
    print(f"  matchering on 16 min: rc {r['rc']}, {r['wall_s']:.1f} s, {r['peak_rss_mb']:.0f} MB: {last}",
          flush=True)
    return {"target_s": duration_s(t16), "rc": r["rc"], "wall_s": r["wall_s"],
            "peak_rss_mb": r["peak_rss_mb"], "message": last}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=2, choices=(1, 2))
    ap.add_argument("--inproc-runs", type=int, default=3, help="timed in-process runs after the warm-up")
    ap.add_argument("--skip-long", action="store_true", help="skip the 3/16/60-minute memory runs")
    ap.add_argument("--skip-matchering", action="store_true")
    ap.add_argument("--long-timeout-s", type=float, default=1800.0,
                    help="kill the 60-minute run after this long (its peak RSS so far is still reported)")
    ap.add_argument("--out", type=Path, default=WORK_DIR / "results_speed.json")
    a = ap.parse_args(argv)
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed for the one-core measurement")
    mg = not a.skip_matchering
    if mg:
        require_matchering()
    tm, why = engine_ready()
    if not tm:
        print(f"tonematch not ready ({why}); measuring the Matchering side only", flush=True)
    prep = prepare(a.pairs, not a.skip_long)
    res: dict = {"date": now_utc(), "commit": git_commit(), "cpu_count": os.cpu_count(),
                 "load_avg_start": os.getloadavg(), "settings": vars(a) | {"out": str(a.out)}}
    print("1. whole command (imports included)", flush=True)
    res["whole_command"] = whole_command(prep["pairs"], a.runs, tm, mg)
    if tm:
        print("2. engine once loaded, one core (taskset -c 0), mode A", flush=True)
        res["in_process"] = [engine_in_process(r, t, a.inproc_runs) for r, t in prep["pairs"]]
        for ip in res["in_process"]:
            print(f"  {json.dumps({k: v for k, v in ip.items() if k != 'times_s'})}", flush=True)
    if not a.skip_long:
        ref0 = prep["pairs"][0][0]
        if tm:
            print("3. peak RSS of `tonematch match`, 3-minute vs 60-minute target", flush=True)
            res["memory_flat"] = memory_flat(ref0, prep["t3"], prep["t60"], a.long_timeout_s)
        if mg:
            print("4. Matchering on a 16-minute target", flush=True)
            res["matchering_16min"] = matchering_long(ref0, prep["t16"])
    res["load_avg_end"] = os.getloadavg()
    print_summary(res)
    dump_json(a.out, res)
    print(f"results in {a.out}")
    return 0


def print_summary(res: dict) -> None:
    print(f"\n== speed: tonematch vs Matchering 2.0.6 — {res['date']}, commit {res['commit']}, "
          f"{res['cpu_count']} cores, load {res['load_avg_start'][0]:.2f} ==")
    print(f"{'target':<18}{'dur s':>7}{'tm s':>8}{'mg s':>8}{'speedup':>9}{'tm s/s':>9}{'mg s/s':>9}"
          f"{'tm MB':>8}{'mg MB':>8}")
    for row in res["whole_command"]:
        def g(k: str, row: dict = row) -> str:
            v = row.get(k)
            if v is None:
                return "—"
            if k.endswith("per_audio_s"):
                return f"{v:.3f}"
            return f"{v:.2f}" if k.endswith("_s") or k == "speedup" else f"{v:.0f}"
        print(f"{row['target']:<18}{row['target_s']:>7.1f}{g('tonematch_median_s'):>8}{g('matchering_median_s'):>8}"
              f"{g('speedup'):>9}{g('tonematch_s_per_audio_s'):>9}{g('matchering_s_per_audio_s'):>9}"
              f"{g('tonematch_median_rss_mb'):>8}{g('matchering_median_rss_mb'):>8}")
    for ip in res.get("in_process", []):
        if "realtime_x" in ip:
            print(f"engine in-process, one core: {ip['median_s']:.2f} s for {ip['target_s']:.0f} s of audio"
                  f" = {ip['realtime_x']:.0f}x realtime (import {ip['import_s']:.2f} s, "
                  f"RSS {ip['peak_rss_mb']:.0f} MB)")
        else:
            print(f"engine in-process failed: {ip}")
    mf = res.get("memory_flat")
    if mf:
        killed = " (killed at the time limit)" if mf["60min"].get("timed_out") else ""
        print(f"tonematch peak RSS: 3 min {mf['3min']['peak_rss_mb']:.0f} MB ({mf['3min']['wall_s']:.1f} s), "
              f"60 min {mf['60min']['peak_rss_mb']:.0f} MB ({mf['60min']['wall_s']:.1f} s{killed})")
    m16 = res.get("matchering_16min")
    if m16:
        print(f"Matchering on a 16-minute target: rc {m16['rc']} after {m16['wall_s']:.1f} s, "
              f"{m16['peak_rss_mb']:.0f} MB: {m16['message']}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
