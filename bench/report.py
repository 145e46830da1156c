# ruff: noqa: E501  (Markdown table rows read better on one line)
"""Format the benchmark's JSON results as the Markdown tables of docs/BENCHMARKS.md.

    .venv/bin/python -m bench.report [--quality bench/.work/results_quality.json]
                                     [--speed bench/.work/results_speed.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import WORK_DIR, fmt, ratio

TOOL_NAMES = {"tonematch_A": "tonematch A", "tonematch_B": "tonematch B", "matchering": "Matchering",
              "unprocessed": "unprocessed"}
ROWS = (("mrstft", "MR-STFT distance"), ("mel_db", "mel distance (dB)"), ("lufs_err_lu", "LUFS error (LU)"),
        ("tp_dbtp", "true peak (dBTP), median"), ("tp_max_dbtp", "true peak (dBTP), max"),
        ("third_oct_db", "1/3-oct diff. to truth (dB)"), ("third_oct_vs_ref_db", "1/3-oct diff. to reference (dB)"),
        ("width_diff_db", "width diff. to truth (dB)"), ("width_vs_ref_db", "width diff. to reference (dB)"))


def quality_md(q: dict) -> str:
    out = [f"Run {q['date']}, commit `{q['commit']}`, {len(q['cases'])} cases, "
           f"{q['settings']['excerpt_s']:.0f} s excerpts, ceiling {q['ceiling_dbtp']} dBTP, "
           f"tonematch via `{q['settings']['via']}`, wall time {q['wall_s'] / 60:.0f} min. Medians; lower is better.",
           ""]
    for ctype, s in q["summary"].items():
        tools = s["tools"]
        cols = [t for t in ("tonematch_A", "tonematch_B", "matchering", "unprocessed") if t in tools]
        ratios = []
        if {"tonematch_A", "matchering"} <= tools.keys():
            ratios.append(("A / MG", "tonematch_A", "matchering"))
        if {"tonematch_B", "tonematch_A"} <= tools.keys():
            ratios.append(("B / A", "tonematch_B", "tonematch_A"))
        if {"tonematch_B", "matchering"} <= tools.keys():
            ratios.append(("B / MG", "tonematch_B", "matchering"))
        oks = ", ".join(f"{TOOL_NAMES[c]} {tools[c]['n_ok']}/{s['n']}" for c in cols if c != "unprocessed")
        out.append(f"**{ctype}** (outputs: {oks})")
        out.append("")
        out.append("| metric | " + " | ".join(TOOL_NAMES[c] for c in cols) + "".join(f" | {r[0]}" for r in ratios)
                   + " |")
        out.append("| --- |" + " ---: |" * (len(cols) + len(ratios)))
        for key, label in ROWS:
            vals = [tools[c].get(key) for c in cols]
            if all(v is None for v in vals):
                continue
            cells = [fmt(v) for v in vals]
            if key.startswith("tp_"):
                cells += ["" for _ in ratios]
            else:
                cells += [fmt(ratio(tools[a].get(key), tools[b].get(key)), 2) for _, a, b in ratios]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    if q.get("checks"):
        out += ["**Targets**", "", "| target | figure | met |", "| --- | ---: | --- |"]
        for ch in q["checks"]:
            met = {True: "yes", False: "**no**", None: "n/a"}[ch["met"]]
            out.append(f"| {ch['target']} | {fmt(ch['value'])} | {met} |")
        out.append("")
    return "\n".join(out)


def speed_md(s: dict) -> str:
    out = [f"Run {s['date']}, commit `{s['commit']}`, {s['cpu_count']} cores shared with other work "
           f"(load average {s['load_avg_start'][0]:.1f} at the start, {s['load_avg_end'][0]:.1f} at the end).", "",
           "| reference → target | target (s) | tonematch (s) | Matchering (s) | speed-up | tonematch s/s | "
           "Matchering s/s | tonematch peak RSS (MB) | Matchering peak RSS (MB) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in s["whole_command"]:
        out.append(f"| {r['reference']} → {r['target']} | {r['target_s']:.1f} | {fmt(r.get('tonematch_median_s'), 2)} | "
                   f"{fmt(r.get('matchering_median_s'), 2)} | {fmt(r.get('speedup'), 2)} | "
                   f"{fmt(r.get('tonematch_s_per_audio_s'), 4)} | {fmt(r.get('matchering_s_per_audio_s'), 4)} | "
                   f"{fmt(r.get('tonematch_median_rss_mb'), 0)} | {fmt(r.get('matchering_median_rss_mb'), 0)} |")
    out.append("")
    for ip in s.get("in_process", []):
        if "realtime_x" in ip:
            out.append(f"- Engine once loaded, one core (`taskset -c 0`), mode A: {ip['median_s']:.2f} s for "
                       f"{ip['target_s']:.1f} s of audio = **{ip['realtime_x']:.0f}x realtime** "
                       f"(runs {', '.join(f'{t:.2f}' for t in ip['times_s'])} s; import {ip['import_s']:.2f} s; "
                       f"peak RSS {ip['peak_rss_mb']:.0f} MB).")
        else:
            out.append(f"- Engine once loaded: failed: {ip}")
    mf = s.get("memory_flat")
    if mf:
        out.append(f"- Peak RSS of `tonematch match`: 3-minute target {mf['3min']['peak_rss_mb']:.0f} MB "
                   f"({mf['3min']['wall_s']:.1f} s, rc {mf['3min']['rc']}), 60-minute target "
                   f"{mf['60min']['peak_rss_mb']:.0f} MB ({mf['60min']['wall_s']:.1f} s, rc {mf['60min']['rc']}"
                   f"{', killed at the time limit: peak so far' if mf['60min'].get('timed_out') else ''}).")
    m16 = s.get("matchering_16min")
    if m16:
        out.append(f"- Matchering, 16-minute target: exit {m16['rc']} after {m16['wall_s']:.1f} s "
                   f"({m16['peak_rss_mb']:.0f} MB): `{m16['message']}`.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quality", type=Path, default=WORK_DIR / "results_quality.json")
    ap.add_argument("--speed", type=Path, default=WORK_DIR / "results_speed.json")
    a = ap.parse_args(argv)
    if a.quality.exists():
        print(quality_md(json.loads(a.quality.read_text())))
    if a.speed.exists():
        print(speed_md(json.loads(a.speed.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
