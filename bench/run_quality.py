"""Quality benchmark: tonematch (mode A, and mode B on the mode-B cases) vs Matchering 2.0 on the same
cases in one run.

    .venv/bin/python -m bench.run_quality [--n 8] [--excerpt-s 20] [--types ...] [--via inproc|cli]

Prints one table per case type (medians; ratio ours / Matchering), the target checks, the cases where
tonematch loses, and writes everything to bench/.work/results_quality.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from bench import metrics as M  # noqa: N812
from bench.cases import MODE_B_TYPES, MUSIC_TYPES, SAMPLE_RATE_HZ, build_cases
from bench.common import (
    BENCH_DIR,
    MG_PY,
    TONEMATCH_EXE,
    WORK_DIR,
    dump_json,
    engine_ready,
    fmt,
    git_commit,
    median,
    now_utc,
    ratio,
    require_matchering,
)

CEILING_DBTP = -1.0
#: our 4x resample_poly meter and the engine's BS.1770 48-tap meter may differ by a few hundredths of a dB
TP_METER_TOLERANCE_DB = 0.05
METRICS = ("mrstft", "mel_db", "lufs_err_lu", "tp_dbtp", "third_oct_db", "width_diff_db",
           "third_oct_vs_ref_db", "width_vs_ref_db")


def read(path: str | Path) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    if sr != SAMPLE_RATE_HZ:
        x = soxr.resample(x, sr, SAMPLE_RATE_HZ, quality="VHQ")
    return x


def evaluate(out_path: str | Path, case: dict, cache: dict) -> dict:
    """Metrics of one output against the case's truth (if any) and reference."""
    x = read(out_path)
    if case["id"] not in cache:
        ref = read(case["reference"])
        cache[case["id"]] = {
            "ref": ref,
            "ref_lufs": M.integrated_lufs(ref, SAMPLE_RATE_HZ),
            "truth": read(case["truth"]) if case.get("truth") else None,
        }
    c = cache[case["id"]]
    lufs = M.integrated_lufs(x, SAMPLE_RATE_HZ)
    m: dict = {
        "lufs": lufs,
        "lufs_err_lu": abs(lufs - c["ref_lufs"]) if math.isfinite(lufs) else None,
        "tp_dbtp": M.true_peak_dbtp(x),
        "third_oct_vs_ref_db": M.third_octave_difference_db(*M.match_channels(x, c["ref"]), SAMPLE_RATE_HZ),
        "width_vs_ref_db": M.width_difference_db(x, c["ref"]),
    }
    if c["truth"] is not None:
        truth = c["truth"]
        xa, ta, info = M.align_to(x, truth, SAMPLE_RATE_HZ)
        m.update(info)
        m["mrstft"] = M.mrstft_distance(xa, ta)
        m["mel_db"] = M.mel_distance_db(xa, ta, SAMPLE_RATE_HZ)
        m["third_oct_db"] = M.third_octave_difference_db(*M.match_channels(x, truth), SAMPLE_RATE_HZ)
        m["width_diff_db"] = M.width_difference_db(x, truth)
    return m


# --- runners -------------------------------------------------------------------------------------------


def run_tonematch(case: dict, mode: str, out: Path, via: str) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if via == "inproc":
            import engine

            res = engine.match_files(case["reference"], case["target"], str(out), mode=mode,
                                     opts={"ceiling_dbtp": CEILING_DBTP})
            info = {"style_params": res.get("style_params"), "engine_metrics": res.get("metrics")}
        else:
            report = out.with_suffix(".report.json")
            cmd = [str(TONEMATCH_EXE), "match", case["reference"], case["target"], "-o", str(out),
                   "--mode", mode, "--ceiling-dbtp", str(CEILING_DBTP), "--report", str(report)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                err = p.stderr.strip()
                raise RuntimeError(err.splitlines()[-1] if err else f"exit {p.returncode}")
            rep = json.loads(report.read_text()) if report.exists() else {}
            info = {"style_params": rep.get("style_params"), "engine_metrics": rep.get("metrics")}
        return {"ok": True, "seconds": time.perf_counter() - t0, "error": None, **info}
    except Exception as exc:
        tb = traceback.format_exc(limit=3)
        return {"ok": False, "seconds": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}",
                "traceback": tb}


def run_matchering(cases: list[dict], out_dir: Path) -> dict:
    require_matchering()
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [{"id": c["id"], "target": c["target"], "reference": c["reference"],
             "out": str(out_dir / f"{c['id']}.wav")} for c in cases]
    jobs_path, res_path = out_dir / "jobs.json", out_dir / "results.json"
    jobs_path.write_text(json.dumps(jobs))
    subprocess.run([str(MG_PY), str(BENCH_DIR / "matchering_batch.py"), str(jobs_path), str(res_path)],
                   check=True)
    return json.loads(res_path.read_text())


# --- report --------------------------------------------------------------------------------------------


def summarise(results: list[dict], tools: list[str]) -> dict:
    """Medians per case type, tool and metric (over the outputs that exist), plus max true peak."""
    summary: dict = {}
    for ctype in dict.fromkeys(r["type"] for r in results):
        rows = [r for r in results if r["type"] == ctype]
        s: dict = {"n": len(rows), "tools": {}}
        for tool in [*tools, "unprocessed"]:
            ms = [r["tools"][tool]["metrics"] for r in rows if r["tools"].get(tool, {}).get("metrics")]
            if not ms:
                continue
            t = {k: median([m.get(k) for m in ms]) for k in METRICS}
            t["tp_max_dbtp"] = max(m["tp_dbtp"] for m in ms)
            t["n_ok"] = len(ms)
            s["tools"][tool] = t
        summary[ctype] = s
    return summary


def print_tables(summary: dict) -> None:
    for ctype, s in summary.items():
        tools = s["tools"]
        cols = [t for t in ("tonematch_A", "tonematch_B", "matchering", "unprocessed") if t in tools]
        ratios = []
        if "tonematch_A" in tools and "matchering" in tools:
            ratios.append(("A/MG", "tonematch_A", "matchering"))
        if "tonematch_B" in tools and "tonematch_A" in tools:
            ratios.append(("B/A", "tonematch_B", "tonematch_A"))
        if "tonematch_B" in tools and "matchering" in tools:
            ratios.append(("B/MG", "tonematch_B", "matchering"))
        oks = ", ".join(f"{c} {tools[c]['n_ok']}/{s['n']}" for c in cols if c != "unprocessed")
        print(f"\n== {ctype} (n={s['n']}; ok: {oks}) — medians ==")
        head = f"{'metric':<22}" + "".join(f"{c:>14}" for c in cols) + "".join(f"{r[0]:>9}" for r in ratios)
        print(head)
        for k in (*METRICS, "tp_max_dbtp"):
            vals = [tools[c].get(k) for c in cols]
            if all(v is None for v in vals):
                continue
            line = f"{k:<22}" + "".join(f"{fmt(v):>14}" for v in vals)
            if k in ("tp_dbtp", "tp_max_dbtp"):
                line += "".join(f"{'':>9}" for _ in ratios)
            else:
                line += "".join(f"{fmt(ratio(tools[a].get(k), tools[b].get(k)), 2):>9}" for _, a, b in ratios)
            print(line)


def check_targets(summary: dict, results: list[dict]) -> list[dict]:
    """The targets of issues #2 and #5, each with its figure and met / not met."""
    checks: list[dict] = []

    def add(name: str, value: float | None, limit: float | None, met: bool | None) -> None:
        checks.append({"target": name, "value": value, "limit": limit, "met": met})

    def tool(ctype: str, t: str, k: str) -> float | None:
        return summary.get(ctype, {}).get("tools", {}).get(t, {}).get(k)

    for ctype in ("style_transfer", "restore"):
        for k in ("mel_db", "mrstft"):
            r = ratio(tool(ctype, "tonematch_A", k), tool(ctype, "matchering", k))
            add(f"{ctype}: mode A median {k} / Matchering <= 0.8", r, 0.8, None if r is None else r <= 0.8)
    tm_tools = ("tonematch_A", "tonematch_B")
    all_err = [r["tools"][t]["metrics"]["lufs_err_lu"] for r in results for t in tm_tools
               if r["tools"].get(t, {}).get("metrics")]
    a_err = [r["tools"]["tonematch_A"]["metrics"]["lufs_err_lu"] for r in results
             if r["tools"].get("tonematch_A", {}).get("metrics")]
    for name, errs in (("mode A", a_err), ("all tonematch outputs", all_err)):
        med = median(errs)
        add(f"median LUFS error ({name}) <= 0.2 LU", med, 0.2, None if med is None else med <= 0.2)
    tps = [r["tools"][t]["metrics"]["tp_dbtp"] for r in results for t in ("tonematch_A", "tonematch_B")
           if r["tools"].get(t, {}).get("metrics")]
    if tps:
        over = sum(tp > CEILING_DBTP + TP_METER_TOLERANCE_DB for tp in tps)
        add(f"true peak <= {CEILING_DBTP} dBTP on every tonematch output (max; {over}/{len(tps)} over)",
            max(tps), CEILING_DBTP, over == 0)
    a, b = tool("cross_song", "tonematch_A", "third_oct_vs_ref_db"), tool("cross_song", "matchering",
                                                                            "third_oct_vs_ref_db")
    add("cross_song: 1/3-oct difference to reference <= Matchering's", a, b,
        None if a is None or b is None else a <= b)
    for ctype in ("b_ref_wetter", "voice_ref_wetter"):
        for k in ("mel_db", "mrstft"):
            rb = ratio(tool(ctype, "tonematch_B", k), tool(ctype, "tonematch_A", k))
            add(f"{ctype}: mode B median {k} / mode A <= 0.6", rb, 0.6, None if rb is None else rb <= 0.6)
            rm = ratio(tool(ctype, "tonematch_B", k), tool(ctype, "matchering", k))
            add(f"{ctype}: mode B median {k} / Matchering <= 0.5", rm, 0.5, None if rm is None else rm <= 0.5)
    for ctype in ("b_target_wetter", "voice_target_wetter"):
        for k in ("mel_db", "mrstft"):
            rb = ratio(tool(ctype, "tonematch_B", k), tool(ctype, "tonematch_A", k))
            add(f"{ctype}: mode B median {k} no worse than mode A (ratio <= 1)", rb, 1.0,
                None if rb is None else rb <= 1.0)
    return checks


def losses(results: list[dict]) -> list[dict]:
    """Cases where tonematch (A, or B on mode-B cases) is worse than Matchering on mel or MR-STFT
    (or, for cross-song, on the 1/3-octave difference to the reference)."""
    out = []
    for r in results:
        mg = r["tools"].get("matchering", {}).get("metrics")
        if not mg:
            continue
        for t in ("tonematch_A", "tonematch_B"):
            tm = r["tools"].get(t, {}).get("metrics")
            if not tm:
                continue
            keys = ("mel_db", "mrstft") if "mel_db" in tm else ("third_oct_vs_ref_db",)
            worse = {k: (round(tm[k], 3), round(mg[k], 3)) for k in keys if tm[k] > mg[k]}
            if worse:
                sp = r["tools"][t].get("style_params") or {}
                out.append({"case": r["id"], "tool": t, "worse_ours_vs_mg": worse,
                            "style": r.get("style"), "estimated": sp, "lufs_err_lu": tm["lufs_err_lu"],
                            "width_diff_db": tm.get("width_diff_db")})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="cases per type (default 8)")
    ap.add_argument("--excerpt-s", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--types", nargs="+", default=list(MUSIC_TYPES + MODE_B_TYPES))
    ap.add_argument("--via", choices=("inproc", "cli"), default="inproc",
                    help="call engine.match_files in this process, or the `tonematch match` command")
    ap.add_argument("--skip-tonematch", action="store_true", help="Matchering side only")
    ap.add_argument("--skip-matchering", action="store_true")
    ap.add_argument("--out", type=Path, default=WORK_DIR / "results_quality.json")
    ap.add_argument("--keep-outputs", action="store_true",
                    help="keep the rendered outputs (bench/.work/runs/<run>/) for listening")
    a = ap.parse_args(argv)

    t_start = time.perf_counter()
    cases = build_cases(a.n, a.excerpt_s, a.seed, tuple(a.types))
    print(f"{len(cases)} cases ready ({time.perf_counter() - t_start:.0f} s)", flush=True)
    # outputs of this run only (another run at the same time must not overwrite them)
    out_root = WORK_DIR / "runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    run_tm = not a.skip_tonematch
    if run_tm:
        ok, why = engine_ready()
        if not ok:
            print(f"tonematch not ready ({why}); running the Matchering side only", flush=True)
            run_tm = False

    results = [{"id": c["id"], "type": c["type"], "style": c.get("style"), "sources": c.get("sources"),
                "tools": {}} for c in cases]
    by_id = {r["id"]: r for r in results}
    if run_tm:
        for c in cases:
            for mode in c["modes"]:
                res = run_tonematch(c, mode, out_root / f"tonematch_{mode}" / f"{c['id']}.wav", a.via)
                res["out"] = str(out_root / f"tonematch_{mode}" / f"{c['id']}.wav")
                by_id[c["id"]]["tools"][f"tonematch_{mode}"] = res
                status = "ok" if res["ok"] else f"FAILED {res['error']}"
                print(f"tonematch {mode} {c['id']}: {res['seconds']:.2f} s {status}", flush=True)
    if not a.skip_matchering:
        mg = run_matchering(cases, out_root / "matchering")
        for c in cases:
            r = mg.get(c["id"], {"ok": False, "error": "no result", "seconds": None})
            r["out"] = str(out_root / "matchering" / f"{c['id']}.wav")
            by_id[c["id"]]["tools"]["matchering"] = r

    cache: dict = {}
    for c in cases:
        r = by_id[c["id"]]
        r["tools"]["unprocessed"] = {"ok": True, "out": c["target"]}
        for _name, t in r["tools"].items():
            if t.get("ok"):
                try:
                    t["metrics"] = evaluate(t["out"], c, cache)
                except Exception as exc:
                    t["ok"], t["error"] = False, f"evaluation failed: {type(exc).__name__}: {exc}"
        cache.pop(c["id"], None)
    tools = [t for t in ("tonematch_A", "tonematch_B", "matchering") if any(t in r["tools"] for r in results)]
    summary = summarise(results, tools)
    print(f"\ntonematch vs Matchering 2.0.6 — {now_utc()}, commit {git_commit()}, {len(cases)} cases of "
          f"{a.excerpt_s:.0f} s, ceiling {CEILING_DBTP} dBTP")
    print("distances to the truth after time + loudness alignment; lower is better")
    print_tables(summary)
    checks = check_targets(summary, results) if run_tm else []
    if checks:
        print("\n== targets ==")
        for ch in checks:
            mark = {True: "MET", False: "NOT MET", None: "n/a"}[ch["met"]]
            print(f"  [{mark:>7}] {ch['target']}: {fmt(ch['value'])}")
    lost = losses(results) if run_tm else []
    if lost:
        print(f"\n== cases where tonematch is worse than Matchering ({len(lost)}) ==")
        for entry in lost:
            print(f"  {entry['case']} {entry['tool']}: {entry['worse_ours_vs_mg']} (ours, MG); "
                  f"lufs_err {fmt(entry['lufs_err_lu'], 2)} LU, "
                  f"width diff {fmt(entry['width_diff_db'], 2)} dB")
    failures = [(r["id"], n, t.get("error")) for r in results for n, t in r["tools"].items()
                if not t.get("ok")]
    if failures:
        print(f"\n== failures ({len(failures)}) ==")
        for cid, n, err in failures:
            print(f"  {cid} {n}: {err}")
    elapsed = time.perf_counter() - t_start
    if a.keep_outputs:
        print(f"outputs kept in {out_root}")
    else:
        shutil.rmtree(out_root, ignore_errors=True)
    print(f"\nwall time {elapsed:.0f} s; results in {a.out}")
    dump_json(a.out, {"date": now_utc(), "commit": git_commit(),
                      "settings": vars(a) | {"out": str(a.out), "outputs": str(out_root)},
                      "ceiling_dbtp": CEILING_DBTP, "summary": summary, "checks": checks, "losses": lost,
                      "cases": results, "wall_s": elapsed})
    return 0


if __name__ == "__main__":
    sys.exit(main())
