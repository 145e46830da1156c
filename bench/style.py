"""The benchmark's random style chain S, written independently of the engine (scipy only).

S is what the benchmark hides inside a reference; a matcher has to recover it. A chain is drawn from a
seed (``sample_style``), is plain JSON, and is applied with ``apply_style``:

    EQ (2-5 RBJ bands, +-3..9 dB) -> [compressor] -> [reverb] -> mid/side width -> gain

Nothing here imports tonematch: if the engine had a bug in, say, its RBJ formulas, a chain built from
the same code would hide it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import signal

StyleParams = dict[str, Any]


# --- RBJ Audio-EQ-Cookbook biquads -------------------------------------------------------------


def rbj_sos(kind: str, f_hz: float, q: float, gain_db: float, sample_rate_hz: int) -> np.ndarray:
    """One RBJ cookbook biquad as a (1, 6) SOS row. ``kind``: peaking | low_shelf | high_shelf."""
    A = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f_hz / sample_rate_hz
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2.0 * q)
    if kind == "peaking":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif kind in ("low_shelf", "high_shelf"):
        sqa2 = 2.0 * math.sqrt(A) * alpha
        if kind == "low_shelf":
            b = [A * ((A + 1) - (A - 1) * cw + sqa2), 2 * A * ((A - 1) - (A + 1) * cw),
                 A * ((A + 1) - (A - 1) * cw - sqa2)]
            a = [(A + 1) + (A - 1) * cw + sqa2, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - sqa2]
        else:
            b = [A * ((A + 1) + (A - 1) * cw + sqa2), -2 * A * ((A - 1) + (A + 1) * cw),
                 A * ((A + 1) + (A - 1) * cw - sqa2)]
            a = [(A + 1) - (A - 1) * cw + sqa2, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - sqa2]
    else:
        raise ValueError(f"unknown band kind {kind!r}")
    b = np.asarray(b) / a[0]
    a = np.asarray(a) / a[0]
    return np.concatenate([b, a])[None, :]


def eq_sos(bands: list[dict], sample_rate_hz: int) -> np.ndarray:
    """All bands of an EQ as one SOS array (n_bands, 6)."""
    return np.concatenate([rbj_sos(b["type"], b["f_hz"], b["q"], b["gain_db"], sample_rate_hz)
                           for b in bands])


# --- drawing a chain -----------------------------------------------------------------------------


def _signed(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0]))


def sample_style(seed: int, *, compressor: bool | None = False, reverb: bool | None = False,
                 voice: bool = False) -> StyleParams:
    """Draw a style chain from ``seed`` (same seed -> same chain).

    ``compressor`` / ``reverb``: True = always, False = never, None = at random (p = 0.5).
    ``voice`` keeps rooms small-to-medium and EQ inside the speech band.
    """
    rng = np.random.default_rng(seed)
    n_bands = int(rng.integers(2, 6))
    bands = []
    for i in range(n_bands):
        kind = "peaking"
        if i == 0 and rng.random() < 0.5:
            kind = "low_shelf"
        elif i == n_bands - 1 and rng.random() < 0.5:
            kind = "high_shelf"
        if kind == "low_shelf":
            f_hz, q = float(np.exp(rng.uniform(np.log(80), np.log(300)))), 0.707
        elif kind == "high_shelf":
            f_hz, q = float(np.exp(rng.uniform(np.log(2500), np.log(9000)))), 0.707
        else:
            lo, hi = (150.0, 6000.0) if voice else (60.0, 12000.0)
            f_hz, q = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), float(rng.uniform(0.5, 2.5))
        bands.append({"type": kind, "f_hz": round(f_hz, 1), "q": round(q, 3),
                      "gain_db": round(_signed(rng, 3.0, 9.0), 2)})
    style: StyleParams = {
        "seed": seed,
        "eq": bands,
        "width": round(float(rng.uniform(0.6, 1.4)), 3),
        "gain_db": round(float(rng.uniform(-4.0, 4.0)), 2),
    }
    use_comp = bool(rng.random() < 0.5) if compressor is None else compressor
    use_rev = bool(rng.random() < 0.5) if reverb is None else reverb
    if use_comp:
        style["compressor"] = {
            # threshold relative to the input's RMS level, so it always bites
            "threshold_rel_db": round(float(rng.uniform(-12.0, -4.0)), 2),
            "ratio": round(float(rng.uniform(2.5, 8.0)), 2),
            "attack_ms": round(float(rng.uniform(2.0, 25.0)), 2),
            "release_ms": round(float(rng.uniform(60.0, 300.0)), 1),
        }
    if use_rev:
        rt_lo, rt_hi = (0.3, 1.2) if voice else (0.6, 2.8)
        style["reverb"] = {
            "rt60_s": round(float(rng.uniform(rt_lo, rt_hi)), 3),
            "hf_damping": round(float(rng.uniform(0.3, 0.8)), 3),  # RT60 at 8 kHz = rt60_s * (1 - damping/2)
            "pre_delay_ms": round(float(rng.uniform(5.0, 40.0)), 1),
            "mix": round(float(rng.uniform(0.2, 0.5)), 3),
            "ir_seed": int(rng.integers(0, 2**31 - 1)),
        }
    return style


# --- processors ------------------------------------------------------------------------------------


def compress(x: np.ndarray, sample_rate_hz: int, threshold_rel_db: float, ratio: float,
             attack_ms: float, release_ms: float) -> np.ndarray:
    """Feed-forward peak compressor, hard knee, gain smoothed with separate attack / release.

    The level detector runs at a 1 ms control rate (max |x| over the frame, all channels linked);
    the threshold is relative to the input's RMS level. Make-up gain restores the input RMS.
    """
    frames = x.shape[0]
    hop = max(1, sample_rate_hz // 1000)
    n_ctl = -(-frames // hop)
    padded = np.zeros((n_ctl * hop, x.shape[1]), dtype=np.float64)
    padded[:frames] = x
    peak = np.abs(padded).max(axis=1).reshape(n_ctl, hop).max(axis=1)
    level_db = 20.0 * np.log10(np.maximum(peak, 1e-9))
    rms_db = 10.0 * np.log10(max(float(np.mean(x.astype(np.float64) ** 2)), 1e-18))
    threshold_db = rms_db + threshold_rel_db
    over = np.maximum(level_db - threshold_db, 0.0)
    target_gr_db = over * (1.0 - 1.0 / ratio)  # positive dB of reduction
    a_att = math.exp(-1.0 / (attack_ms * 1e-3 * 1000.0))
    a_rel = math.exp(-1.0 / (release_ms * 1e-3 * 1000.0))
    gr = np.empty_like(target_gr_db)
    g = 0.0
    # control-rate loop (1000 steps per second of audio), not per sample
    for i, t in enumerate(target_gr_db.tolist()):
        a = a_att if t > g else a_rel
        g = a * g + (1.0 - a) * t
        gr[i] = g
    t_ctl = (np.arange(n_ctl) + 0.5) * hop
    gain_db = -np.interp(np.arange(frames), t_ctl, gr)
    y = x * (10.0 ** (gain_db / 20.0))[:, None]
    out_rms_db = 10.0 * np.log10(max(float(np.mean(y**2)), 1e-18))
    return y * 10.0 ** ((rms_db - out_rms_db) / 20.0)


def make_ir(sample_rate_hz: int, channels: int, rt60_s: float, hf_damping: float, pre_delay_ms: float,
            ir_seed: int) -> np.ndarray:
    """Synthetic room impulse response (frames, channels): decorrelated noise with an exponential decay
    whose RT60 falls with frequency (two bands split at 2 kHz), a pre-delay and a short onset ramp.
    Normalised to unit energy per channel."""
    rng = np.random.default_rng(ir_seed)
    n = int(sample_rate_hz * min(rt60_s * 1.2, 4.0))
    t = np.arange(n) / sample_rate_hz
    noise = rng.standard_normal((n, channels))
    lo_sos = signal.butter(2, 2000.0, "lowpass", fs=sample_rate_hz, output="sos")
    hi_sos = signal.butter(2, 2000.0, "highpass", fs=sample_rate_hz, output="sos")
    rt_hi = rt60_s * (1.0 - hf_damping / 2.0)
    env_lo = 10.0 ** (-3.0 * t / rt60_s)
    env_hi = 10.0 ** (-3.0 * t / rt_hi)
    ir = (signal.sosfilt(lo_sos, noise, axis=0) * env_lo[:, None]
          + signal.sosfilt(hi_sos, noise, axis=0) * env_hi[:, None])
    ramp = np.minimum(t / 0.005, 1.0)
    ir *= ramp[:, None]
    ir /= np.sqrt(np.sum(ir**2, axis=0, keepdims=True))
    pre = round(pre_delay_ms * 1e-3 * sample_rate_hz)
    return np.concatenate([np.zeros((pre, channels)), ir])


def add_reverb(x: np.ndarray, sample_rate_hz: int, rt60_s: float, hf_damping: float, pre_delay_ms: float,
               mix: float, ir_seed: int) -> np.ndarray:
    """Dry/wet mix with a synthetic IR (wet scaled to the dry RMS so ``mix`` means a level share);
    output has the input's length (the tail past the end is cut, as in an excerpt)."""
    ir = make_ir(sample_rate_hz, x.shape[1], rt60_s, hf_damping, pre_delay_ms, ir_seed)
    wet = signal.oaconvolve(x, ir, axes=0)[: x.shape[0]]
    dry_rms = np.sqrt(np.mean(x**2)) + 1e-12
    wet *= dry_rms / (np.sqrt(np.mean(wet**2)) + 1e-12)
    return (1.0 - mix) * x + mix * wet


def set_width(x: np.ndarray, width: float) -> np.ndarray:
    """Scale the side signal (L-R)/2 by ``width``; mono passes unchanged."""
    if x.shape[1] != 2:
        return x
    mid = 0.5 * (x[:, 0] + x[:, 1])
    side = 0.5 * (x[:, 0] - x[:, 1]) * width
    return np.stack([mid + side, mid - side], axis=1)


def apply_style(x: np.ndarray, sample_rate_hz: int, style: StyleParams) -> np.ndarray:
    """Apply chain S to ``x`` (frames, channels); returns float64 of the same shape (no clipping)."""
    y = np.asarray(x, dtype=np.float64)
    y = signal.sosfilt(eq_sos(style["eq"], sample_rate_hz), y, axis=0)
    if "compressor" in style:
        y = compress(y, sample_rate_hz, **style["compressor"])
    if "reverb" in style:
        y = add_reverb(y, sample_rate_hz, **style["reverb"])
    y = set_width(y, style["width"])
    return y * 10.0 ** (style["gain_db"] / 20.0)
