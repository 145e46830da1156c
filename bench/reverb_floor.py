"""The floor the mel / MR-STFT targets of mode B have on reverb cases: the style chain S itself, exactly,
except that its reverb IR is drawn with another noise seed (same RT60, damping, pre-delay and mix).

Frame-by-frame distances score the IR's random fine structure, so even a perfect estimate of every
parameter of S stays this far from the truth unless it guesses the very IR. Read mode B's figures
against this floor, next to mode A's (issue #5's targets are ratios to mode A and Matchering).

    .venv/bin/python -m bench.reverb_floor --results bench/.work/results_quality_b.json \\
        [--n 3] [--seed 2026] [--types b_ref_wetter voice_ref_wetter]

``--results`` is a ``bench.run_quality`` JSON of the same case set (same --n, --seed, --types).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from bench import metrics as bm
from bench.cases import build_cases
from bench.common import median
from bench.style import apply_style

REF_WETTER_TYPES = ("b_ref_wetter", "voice_ref_wetter")


def _read(path: str) -> tuple[np.ndarray, int]:
    x, rate = sf.read(path, dtype="float64", always_2d=True)
    return x, rate


def _distances(out: np.ndarray, truth: np.ndarray, rate: int) -> tuple[float, float]:
    xa, ta, _ = bm.align_to(out, truth, rate)
    return bm.mel_distance_db(xa, ta, rate), bm.mrstft_distance(xa, ta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--types", nargs="+", default=list(REF_WETTER_TYPES),
                    help="case types to score (the run_quality case set must hold them)")
    ap.add_argument("--build-types", nargs="+",
                    default=["b_ref_wetter", "voice_ref_wetter", "b_target_wetter", "voice_target_wetter"],
                    help="the --types the results were run with (decides the case set)")
    args = ap.parse_args()
    results = {c["id"]: c for c in json.loads(args.results.read_text())["cases"]}
    per_type: dict[str, list[dict[str, float]]] = {}
    print(f"{'case':24s} {'S':3s} {'floor mel/mrstft':>18s} {'A mel/mrstft':>16s} {'B mel/mrstft':>16s}")
    for case in build_cases(args.n, 20.0, args.seed, tuple(args.build_types)):
        if case["type"] not in args.types or case["id"] not in results:
            continue
        style = case["style"]
        truth, rate = _read(case["truth"])
        if "reverb" in style:
            other = copy.deepcopy(style)
            other["reverb"]["ir_seed"] = int(other["reverb"]["ir_seed"]) + 1
            target, _ = _read(case["target"])
            floor = _distances(apply_style(target, rate, other), truth, rate)
        else:
            floor = (0.0, 0.0)  # nothing random in S: a perfect estimate reaches the truth
        tools = results[case["id"]]["tools"]
        a, b = tools["tonematch_A"]["metrics"], tools["tonematch_B"]["metrics"]
        row = {"floor_mel": floor[0], "floor_mrstft": floor[1], "a_mel": a["mel_db"], "a_mrstft": a["mrstft"],
               "b_mel": b["mel_db"], "b_mrstft": b["mrstft"]}
        per_type.setdefault(case["type"], []).append(row)
        kinds = ("C" if "compressor" in style else "") + ("R" if "reverb" in style else "")
        print(f"{case['id']:24s} {kinds:3s} {floor[0]:8.2f} / {floor[1]:.3f}  {a['mel_db']:6.2f} / "
              f"{a['mrstft']:.3f}  {b['mel_db']:6.2f} / {b['mrstft']:.3f}")
    print("\nmedians, as ratios to mode A (the issue's targets: B/A <= 0.6)")
    for kind, rows in per_type.items():
        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return float(median([r[key] for r in rows]))
        print(f"  {kind:18s} floor/A mel {med('floor_mel') / med('a_mel'):.2f} mrstft "
              f"{med('floor_mrstft') / med('a_mrstft'):.2f};  B/A mel {med('b_mel') / med('a_mel'):.2f} "
              f"mrstft {med('b_mrstft') / med('a_mrstft'):.2f}")


if __name__ == "__main__":
    main()
