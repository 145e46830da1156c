"""True-peak limiter with lookahead and release whose output stays at or below ``tp_db`` dBTP.

Detection uses the BS.1770 4x true-peak envelope (:class:`engine.true_peak.TruePeakOversampler`,
interpolating only where a peak can reach the threshold). Everything after detection is vectorised
over the block, in attenuation dB (``a >= 0``), on a timeline where ``a[n]`` is what frame ``n``
needs so that its true peak (the interpolated values between ``n`` and ``n + 1``) meets the ceiling:

1. hold:    ``u[n] = max(a[n - H .. n + L + H])`` (``scipy.ndimage.maximum_filter1d``), where ``L`` is
   the lookahead and ``H`` = 8 frames covers the interpolator's support (x[n-5 .. n+6]);
2. release: ``v[n] = max(u[n], beta * v[n-1])``, an exponential recovery with time constant
   ``release_ms``, computed with a running maximum (``v = beta^n * cummax(u[j] / beta^j)``);
3. attack:  ``w[n] = mean(v[n - L .. n])`` (a box average = a linear ramp over the lookahead).

Every term of the average in 3 around a peak at ``p`` holds ``a[p]`` (by 1), for every ``n`` in
``p - H .. p + H``, so the gain is at or below the needed value across the whole interpolation
support of the peak. A small design margin (``MARGIN_DB``) covers what interpolation can still add
when neighbouring samples are attenuated even more. The audio is delayed by ``L + H`` plus the
detector's latency (``latency_frames``); renderers compensate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d

from engine.errors import ParamsError
from engine.processors._codec import decode_array, encode_array
from engine.processors.base import State
from engine.true_peak import TruePeakOversampler

DEFAULT_LOOKAHEAD_MS = 1.5
DEFAULT_RELEASE_MS = 100.0
HOLD_MARGIN_FRAMES = 8
MARGIN_DB = 0.05
#: gain reduction counted as "the limiter bit hard" in ``artifacts_rate``.
HARD_LIMIT_DB = 6.0
_V_EPS_DB = 1e-6


class TruePeakLimiter:
    """``params`` = the ``limiter`` block of style_params: ``{tp_db, lookahead_ms, release_ms}``.

    After each :meth:`process` call, :attr:`last_gain_reduction_db` holds the gain reduction (dB,
    float32, one value per output frame) that was applied, for reports.
    """

    latency_frames = 0

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        params = params or {}
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(channels)
        self.tp_db = float(params.get("tp_db", -1.0))
        self.lookahead_ms = float(params.get("lookahead_ms", DEFAULT_LOOKAHEAD_MS))
        self.release_ms = float(params.get("release_ms", DEFAULT_RELEASE_MS))
        if not (self.lookahead_ms > 0 and self.release_ms > 0):
            raise ParamsError("lookahead_ms and release_ms must be positive", where="limiter")
        self.threshold = 10.0 ** ((self.tp_db - MARGIN_DB) / 20.0)
        self.lookahead_frames = max(1, round(self.lookahead_ms * 1e-3 * self.sample_rate_hz))
        self.hold = HOLD_MARGIN_FRAMES
        self._detector = TruePeakOversampler(self.channels)
        self.latency_frames = self.lookahead_frames + self.hold + self._detector.latency_frames
        tau = self.release_ms * 1e-3 * self.sample_rate_hz
        self._beta = math.exp(-1.0 / tau)
        self._release_chunk = max(1, int(600 * tau))  # keeps beta**-j finite in float64
        self.last_gain_reduction_db = np.zeros(0, np.float32)
        self._power_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def initial_state(self) -> State:
        L, H = self.lookahead_frames, self.hold
        return {
            "detector": self._fresh_detector_state(),
            "a_hist": encode_array(np.zeros(L + 2 * H, np.float32)),
            "v_hist": encode_array(np.zeros(L, np.float64)),
            "v_prev": 0.0,
            "x_hist": encode_array(np.zeros((self.latency_frames, self.channels), np.float32)),
        }

    def _fresh_detector_state(self) -> dict[str, Any]:
        det = TruePeakOversampler(self.channels)
        return det.state()

    def _powers(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._power_cache.get(m)
        if cached is None:
            powers = self._beta ** np.arange(m, dtype=np.float64)
            cached = self._power_cache[m] = (powers, 1.0 / powers)
            if len(self._power_cache) > 8:
                self._power_cache.pop(next(iter(self._power_cache)))
        return cached

    def _release(self, u: np.ndarray, v0: float) -> np.ndarray:
        """``v[n] = max(u[n], beta v[n-1])`` with ``v[-1] = v0`` (float64)."""
        n = u.size
        if v0 <= _V_EPS_DB and not u.any():
            return np.zeros(n)
        out = np.empty(n)
        beta = self._beta
        for s in range(0, n, self._release_chunk):
            seg = u[s:s + self._release_chunk].astype(np.float64)
            m = seg.size
            if v0 <= _V_EPS_DB and not seg.any():
                out[s:s + m] = 0.0
                v0 = 0.0
                continue
            powers, inv = self._powers(m)
            acc = np.maximum.accumulate(seg * inv)
            np.maximum(acc, v0 * beta, out=acc)
            acc *= powers
            acc[acc < _V_EPS_DB] = 0.0
            out[s:s + m] = acc
            v0 = float(acc[-1])
        return out

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        state = state or self.initial_state()
        x = np.asarray(block, dtype=np.float32)
        n = x.shape[0]
        L, H = self.lookahead_frames, self.hold
        self._detector.load_state(state["detector"])
        env = self._detector.process(x, floor=self.threshold)
        a = np.zeros(n, np.float32)
        hot = np.flatnonzero(env > self.threshold)
        if hot.size:
            a[hot] = 20.0 * np.log10(env[hot] / np.float32(self.threshold))
        a_ext = np.concatenate([decode_array(state["a_hist"]), a])
        size = L + 2 * H + 1
        if a_ext.any():
            u = maximum_filter1d(a_ext, size=size, mode="constant", cval=0.0)[size // 2: size // 2 + n]
        else:
            u = np.zeros(n, np.float32)
        v = self._release(u, float(state["v_prev"]))
        v_ext = np.concatenate([decode_array(state["v_hist"]), v])
        x_ext = np.concatenate([decode_array(state["x_hist"]), x], axis=0)
        y = x_ext[:n]
        if v_ext.any():
            c = np.concatenate([[0.0], np.cumsum(v_ext)])
            w = ((c[L + 1:] - c[:-L - 1]) / (L + 1)).astype(np.float32)
            gain = np.power(np.float32(10.0), w * np.float32(-0.05))
            y = y * gain[:, None]
            self.last_gain_reduction_db = w
        else:
            self.last_gain_reduction_db = np.zeros(n, np.float32)
        new_state = {
            "detector": self._detector.state(),
            "a_hist": encode_array(a_ext[a_ext.size - (L + 2 * H):]),
            "v_hist": encode_array(v_ext[v_ext.size - L:]),
            "v_prev": float(v[-1]) if n else float(state["v_prev"]),
            "x_hist": encode_array(x_ext[x_ext.shape[0] - self.latency_frames:]),
        }
        return np.ascontiguousarray(y, dtype=np.float32), new_state
