"""Feed-forward compressor that streams, with no per-sample Python loop.

Signal path (all channels share one gain, so the stereo image does not wander):

1. detector: mean power over channels smoothed by a one-pole filter (``DETECTOR_MS`` time constant,
   ``scipy.signal.lfilter`` with carried state), in dB;
2. static gain computer: ``threshold_db``, ``ratio``, soft knee ``knee_db`` (quadratic in the knee);
3. smooth decoupled peak detector on the gain reduction (Giannoulis, Massberg & Reiss, JAES 2012):
   an instant-attack / exponential-release peak hold ``y1[n] = max(gr[n], a_R * y1[n-1])``, computed
   vectorised as a running maximum in the log domain (``log y1[n] - n log a_R`` is a cumulative max),
   followed by a one-pole attack smoother (``lfilter``, carried state);
4. ``out = x * 10^((makeup_db - gr_db) / 20)``.

``attack_ms`` and ``release_ms`` are the time constants (63 % of a step) of those two stages.
The state is three floats (JSON). ``last_gain_reduction_db`` holds the gain reduction of the last
block, per frame (for the gain-reduction curve of the report).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal

from engine.errors import ParamsError
from engine.options import checked_float
from engine.processors.base import State

DETECTOR_MS = 5.0
DEFAULT_KNEE_DB = 6.0
#: accepted ranges (inclusive) of the params; engine.params validates with the same numbers
RANGES: dict[str, tuple[float, float]] = {
    "threshold_db": (-60.0, 0.0),
    "ratio": (1.0, 20.0),
    "attack_ms": (0.1, 200.0),
    "release_ms": (5.0, 3000.0),
    "makeup_db": (-12.0, 24.0),
    "knee_db": (0.0, 24.0),
}


def _one_pole(time_ms: float, sample_rate_hz: int) -> float:
    return float(np.exp(-1000.0 / (max(time_ms, 1e-3) * sample_rate_hz)))


def static_gain_reduction_db(
    level_db: np.ndarray, threshold_db: float, ratio: float, knee_db: float
) -> np.ndarray:
    """Gain reduction in dB (>= 0) the static curve applies at input ``level_db``."""
    over = np.asarray(level_db, dtype=np.float64) - threshold_db
    slope = 1.0 - 1.0 / ratio
    gr = np.where(over > 0.0, slope * over, 0.0)
    if knee_db > 0:
        half = knee_db / 2.0
        in_knee = np.abs(over) <= half
        gr = np.where(in_knee, slope * (over + half) ** 2 / (2.0 * knee_db), gr)
    return np.maximum(gr, 0.0)


def validate_compressor_params(params: dict[str, Any]) -> dict[str, float]:
    """Normalised copy of a ``compressor`` block; ParamsError names the bad field."""
    if not isinstance(params, dict):
        raise ParamsError(f"must be an object, got {type(params).__name__}", where="compressor")
    for key in params:
        if key not in RANGES:
            raise ParamsError(f"unknown field {key!r} (allowed: {', '.join(RANGES)})",
                              where=f"compressor.{key}")
    out: dict[str, float] = {}
    for name, (lo, hi) in RANGES.items():
        if name not in params:
            if name == "knee_db":
                out[name] = DEFAULT_KNEE_DB
                continue
            raise ParamsError("missing", where=f"compressor.{name}")
        value = checked_float(params[name], f"compressor.{name}")  # "-20" or true is no number
        if not lo <= value <= hi:
            raise ParamsError(f"{value:g} is outside {lo:g}..{hi:g}", where=f"compressor.{name}")
        out[name] = value
    return out


class Compressor:
    """Processor ``compressor {threshold_db, ratio, attack_ms, release_ms, makeup_db, knee_db?}``."""

    latency_frames = 0

    def __init__(self) -> None:
        self.last_gain_reduction_db = np.zeros(0, np.float32)

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        """Configure for a stream at ``sample_rate_hz``; raises ParamsError on bad params."""
        self.params = validate_compressor_params(params)
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(channels)
        fs = self.sample_rate_hz
        self._a_det = _one_pole(DETECTOR_MS, fs)
        self._a_att = _one_pole(self.params["attack_ms"], fs)
        self._log_a_rel = -1000.0 / (self.params["release_ms"] * fs)

    def gain_reduction_db(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """Per-frame gain reduction (dB, >= 0) for ``block`` and the state after it."""
        p = self.params
        st = state or {"det": 0.0, "peak_db": 0.0, "att": 0.0}
        x = np.asarray(block, dtype=np.float64)
        power = np.mean(x * x, axis=1)
        a = self._a_det
        det, zf_det = signal.lfilter([1.0 - a], [1.0, -a], power, zi=[a * float(st["det"])])
        level_db = 10.0 * np.log10(np.maximum(det, 1e-15))
        gr = static_gain_reduction_db(level_db, p["threshold_db"], p["ratio"], p["knee_db"])
        # instant attack, exponential release: y[n] = max(gr[n], a_R y[n-1]) as a log-domain cummax
        n = gr.shape[0]
        with np.errstate(divide="ignore"):
            h = np.log(np.concatenate([[max(float(st["peak_db"]), 0.0)], gr]))
        ramp = np.arange(-1, n, dtype=np.float64) * self._log_a_rel
        peak = np.exp(np.maximum.accumulate(h - ramp) + ramp)[1:]
        b = self._a_att
        smooth, zf_att = signal.lfilter([1.0 - b], [1.0, -b], peak, zi=[b * float(st["att"])])
        new_state = {
            "det": float(det[-1]) if n else float(st["det"]),
            "peak_db": float(peak[-1]) if n else float(st["peak_db"]),
            "att": float(smooth[-1]) if n else float(st["att"]),
        }
        del zf_det, zf_att
        return smooth, new_state

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """Compress one ``(frames, channels)`` float32 block; returns ``(block, state)``."""
        gr, new_state = self.gain_reduction_db(block, state)
        self.last_gain_reduction_db = gr.astype(np.float32)
        gain = np.power(10.0, (self.params["makeup_db"] - gr) / 20.0)
        return (np.asarray(block, dtype=np.float32) * gain[:, None]).astype(np.float32), new_state
