"""Mode-B diagnosis: per case, what the reverb and compressor estimators read on the reference and the
target, what the decision was and why, next to the style chain S the benchmark hid in the case.

    .venv/bin/python -m bench.mode_b_diag [--n 4] [--seed 2026] [--types b_ref_wetter b_target_wetter]

Same case set as ``bench.run_quality`` with the same --n / --seed / --types. Prints, per case: the true
reverb (RT60 s, mix, pre-delay ms) and compressor (ratio, threshold re RMS) of S; for reference and
target the DSP free-decay RT60 / DRR (``reverb.rt60_s`` / ``drr_db``), the learned blind RT60 / DRR and
its steepest-decay DSP RT60 (``reverb.blind``), the RMS-envelope spreads p95-p10 / p95-p50 (dB) and its
fast dynamics (p90/p95/p98 over its own 3-s moving level, dB, what the compressor check compares); then the
reverb and compressor notes of :func:`engine.invert_mode_b.invert_mode_b` on mode A's params.
"""

from __future__ import annotations

import argparse

from bench.cases import build_cases
from engine import invert_mode_b as mb
from engine.features import analysis_options, analyze_features
from engine.invert import invert_params


def _truth(style: dict) -> str:
    rv, cp = style.get("reverb"), style.get("compressor")
    rev = (f"reverb RT60 {rv['rt60_s']:.2f} s mix {rv['mix']:.2f} pre {rv['pre_delay_ms']:.0f} ms"
           if rv else "no reverb")
    comp = (f"compressor {cp['ratio']:.1f}:1 at {cp['threshold_rel_db']:.0f} dB re RMS"
            if cp else "no compressor")
    return f"{rev}; {comp}"


def _readings(f: dict) -> str:
    rev = f.get("reverb") or {}
    b = rev.get("blind") or {}
    env = mb._envelope(f)
    spread = f"{mb._spread_db(env):.1f} / {mb._upper_spread_db(env):.1f}" if env.size >= 20 else "n/a"
    raw, hop = mb._raw_envelope(f)
    act = mb._active(raw)
    fast = ("/".join(f"{v:.1f}" for v in mb._local_upper_db(raw, hop, act))
            if hop and act.sum() >= 20 else "n/a")
    dsp = b.get("dsp_rt60_s")
    return (f"DSP RT60 {rev.get('rt60_s')} s DRR {rev.get('drr_db')} dB | learned RT60 {b.get('rt60_s')} s "
            f"DRR {b.get('drr_db')} dB, steepest-decay RT60 {dsp if dsp is None else round(dsp, 2)} s | "
            f"envelope p95-p10 / p95-p50 {spread} dB, fast p90/p95/p98 {fast} dB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--excerpt-s", type=float, default=20.0)
    ap.add_argument("--types", nargs="+", default=["b_ref_wetter", "b_target_wetter"])
    a = ap.parse_args()
    for case in build_cases(a.n, a.excerpt_s, a.seed, tuple(a.types)):
        if "B" not in case["modes"]:
            continue
        ref = analyze_features(case["reference"], **analysis_options("B"))
        tgt = analyze_features(case["target"], **analysis_options("B"))
        params = mb.invert_mode_b(ref, tgt, invert_params(ref, tgt))
        notes = params["notes"]
        print(f"{case['id']}: S = {_truth(case['style'])}")
        print(f"  reference: {_readings(ref)}")
        print(f"  target:    {_readings(tgt)}")
        print(f"  reverb:     {params.get('reverb')} - {notes.get('reverb')}")
        print(f"  compressor: {params.get('compressor')} - {notes.get('compressor')}")


if __name__ == "__main__":
    main()
