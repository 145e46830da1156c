"""GPU vs CPU check of the segment render (run by gpu_batch/check_gpu.sh on a GPU machine).

Renders the same segment of a synthetic 60 s stereo file twice with mode-B parameters that exercise
the FFT convolution (reverb, 2 s hall) and the 4x true-peak oversampling (limiter): once on the CPU,
once with the engine's FFTs and oversampling on CuPy (gpu_batch/gpu.py). Prints the difference in dB
(RMS of the difference relative to the RMS of the CPU output; must be below -90 dB) and timings, plus
an FFT convolution micro-benchmark. ``--xp numpy`` runs the GPU code path on NumPy (no GPU needed).
Exit status 0 when within the limit, 1 when not, 2 when no GPU was usable (with --xp cupy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_DB = -90.0


def make_input(path: Path, duration_s: float = 60.0, rate_hz: int = 48000) -> None:
    import soundfile as sf

    rng = np.random.default_rng(7)
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    noise = 0.05 * rng.standard_normal((t.size, 2))
    clicks = np.zeros_like(t)
    clicks[:: rate_hz // 2] = 0.9
    x = np.stack([tone + clicks, 0.8 * tone - clicks], axis=1) + noise
    sf.write(path, (0.7 * x / np.abs(x).max()).astype(np.float32), rate_hz, subtype="FLOAT")


def style_params() -> dict:
    return {
        "eq": [
            {"type": "low_shelf", "f_hz": 120.0, "q": 0.7, "gain_db": 2.0},
            {"type": "peaking", "f_hz": 3000.0, "q": 1.0, "gain_db": -1.5},
        ],
        "compressor": {
            "threshold_db": -18.0,
            "ratio": 2.5,
            "attack_ms": 10.0,
            "release_ms": 120.0,
            "makeup_db": 1.0,
        },
        "reverb": {"ir_key": "ir/hall_2.0s.wav", "mix": 0.25, "pre_delay_ms": 12.0},
        "stereo": {"width": 1.1},
        "lufs": {"target_db": -12.0, "gain_db": 6.0},
        "limiter": {"tp_db": -1.0, "lookahead_ms": 5.0, "release_ms": 80.0},
    }


def diff_db(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    err = np.sqrt(np.mean((a[:n].astype(np.float64) - b[:n]) ** 2))
    ref = np.sqrt(np.mean(a[:n].astype(np.float64) ** 2))
    return float("-inf") if err == 0 else float(20 * np.log10(err / ref))


def render(src: Path, out: Path, params: dict, segment: dict) -> tuple[np.ndarray, float]:
    import soundfile as sf

    from engine.segments import render_segment

    t0 = time.perf_counter()
    render_segment(str(src), str(out), params, segment)
    elapsed = time.perf_counter() - t0
    return sf.read(out, dtype="float32")[0], elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xp", choices=["cupy", "numpy"], default="cupy")
    parser.add_argument("--duration-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    from gpu_batch.gpu import cupy_or_none, use_array_module

    if args.xp == "cupy":
        xp = cupy_or_none()
        if xp is None:
            print("check_gpu: no usable CuPy/CUDA device here", file=sys.stderr)
            return 2
        import cupyx.scipy.fft as fft_module

        device = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    else:
        xp, fft_module, device = np, __import__("numpy").fft, "numpy (GPU code path on the CPU)"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.wav"
        make_input(src, args.duration_s)
        from engine.segments import plan_segments

        segment = plan_segments(args.duration_s, segment_s=args.duration_s / 2)[1]
        params = style_params()
        cpu, t_cpu = render(src, Path(tmp) / "cpu.wav", params, segment)
        cpu_again, t_cpu2 = render(src, Path(tmp) / "cpu2.wav", params, segment)
        with use_array_module(xp, fft_module) as backend:
            _, t_warm = render(src, Path(tmp) / "gpu0.wav", params, segment)
            gpu, t_gpu = render(src, Path(tmp) / "gpu.wav", params, segment)
        # FFT convolution micro-benchmark: 60 s stereo with a 2 s IR (what a long reverb costs).
        from scipy import signal

        rng = np.random.default_rng(1)
        x = rng.standard_normal((48000 * 60, 2)).astype(np.float32)
        h = rng.standard_normal((48000 * 2, 2)).astype(np.float32) * 0.01
        t0 = time.perf_counter()
        y_cpu = signal.oaconvolve(x, h, axes=0)
        t_conv_cpu = time.perf_counter() - t0
        with use_array_module(xp, fft_module, min_fft_elements=1):
            signal.oaconvolve(x, h, axes=0)
            t0 = time.perf_counter()
            y_gpu = signal.oaconvolve(x, h, axes=0)
            t_conv_gpu = time.perf_counter() - t0
    report = {
        "device": device,
        "segment": segment,
        "render_diff_db": round(diff_db(cpu, gpu), 2),
        "cpu_repeat_diff_db": diff_db(cpu, cpu_again),
        "limit_db": LIMIT_DB,
        "render_cpu_s": round(min(t_cpu, t_cpu2), 3),
        "render_gpu_s": round(t_gpu, 3),
        "render_gpu_first_call_s": round(t_warm, 3),
        "gpu_fft_calls": backend.calls,
        "cpu_fft_fallbacks": backend.fallbacks,
        "oaconvolve_60s_2s_ir_diff_db": round(diff_db(y_cpu, y_gpu), 2),
        "oaconvolve_cpu_s": round(t_conv_cpu, 3),
        "oaconvolve_gpu_s": round(t_conv_gpu, 3),
    }
    print(json.dumps(report, indent=2))
    ok = report["render_diff_db"] < LIMIT_DB and report["oaconvolve_60s_2s_ir_diff_db"] < LIMIT_DB
    print(
        f"check_gpu: {'OK' if ok else 'FAILED'}: render differs by {report['render_diff_db']} dB, "
        f"convolution by {report['oaconvolve_60s_2s_ir_diff_db']} dB (limit {LIMIT_DB} dB)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
