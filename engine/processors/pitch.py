"""Pitch shifter by whole semitones (-3..+3), length preserved, streaming.

Frequency-domain peak shifting with phase locking (Laroche & Dolson, "New phase-vocoder techniques
for pitch-shifting, harmonizing and other exotic effects", WASPAA 1999): every STFT frame (Hann,
``N`` ~ 85 ms, hop ``N/4``) is split into regions of influence around its spectral peaks; each region is
moved as a block by the whole number of bins nearest to ``(r - 1) * f_peak`` (``r = 2^(semitones/12)``)
and rotated by a phase that advances ``2 pi (r - 1) f_peak * hop / fs`` per frame, with ``f_peak`` the
instantaneous frequency of the peak from the phase difference between frames. Bins keep their phase
relation to their peak (phase locking), so partials stay coherent, and because there is no time
stretch and no resampling the output has exactly the input's length and timing. Stereo shares one
region map (taken from the summed spectrum), so the image does not smear.

The frames' FFTs run batched; one small vectorised step per frame (peaks, regions, scatter) runs in a
loop over frames, since each frame's phases continue the previous frame's. Latency: ``N`` frames
(``latency_frames``); the state (input overlap, overlap-add buffer, output FIFO, phase maps) is
base64 float32/float64 JSON.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from scipy import fft as sp_fft

from engine.errors import ParamsError
from engine.processors.base import State

SEMITONES_MAX = 3


def frame_size(sample_rate_hz: int) -> int:
    """STFT size: the power of two nearest to 85 ms."""
    return int(2 ** round(np.log2(0.085 * sample_rate_hz)))


def _enc(a: np.ndarray, dtype: Any = np.float32) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _dec(text: str, shape_tail: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape((-1, *shape_tail)).copy()


class PitchShifter:
    """Processor ``pitch {semitones}`` with ``semitones`` a whole number in -3..+3 (0 = bypass)."""

    def __init__(self) -> None:
        self.latency_frames = 0

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        """Configure for a stream; raises ParamsError unless ``semitones`` is an integer in -3..+3."""
        value = params.get("semitones") if isinstance(params, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise ParamsError(f"semitones must be a whole number, got {value!r}", where="pitch.semitones")
        semitones = int(value)
        if abs(semitones) > SEMITONES_MAX:
            raise ParamsError(f"{semitones} outside -3..+3", where="pitch.semitones")
        self.semitones = semitones
        self.ratio = float(2.0 ** (semitones / 12.0))
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(channels)
        self.N = frame_size(self.sample_rate_hz)
        self.H = self.N // 4
        self.latency_frames = self.N if semitones else 0
        self.window = np.hanning(self.N + 1)[:-1].astype(np.float64)  # periodic Hann
        # Hann analysis x Hann synthesis at hop N/4 sums to 1.5
        self._ola_norm = float(np.sum(self.window**2) / self.H)
        self._bins = self.N // 2 + 1
        self._omega = 2.0 * np.pi * np.arange(self._bins) / self.N  # rad/sample of each bin

    def _fresh(self) -> dict[str, Any]:
        C, N, H = self.channels, self.N, self.H
        return {
            "pend": np.zeros((N - H, C)),
            "acc": np.zeros((N - H, C)),
            "fifo": np.zeros((H, C)),
            "prev_phase": np.zeros(self._bins),
            "phi": np.zeros(self._bins),
            "frames": 0,
        }

    def _load(self, state: State | None) -> dict[str, Any]:
        if not state:
            return self._fresh()
        C = self.channels
        try:
            return {
                "pend": _dec(state["pend"], (C,), np.float64),
                "acc": _dec(state["acc"], (C,), np.float64),
                "fifo": _dec(state["fifo"], (C,), np.float64),
                "prev_phase": _dec(state["prev_phase"], (), np.float64).reshape(-1),
                "phi": _dec(state["phi"], (), np.float64).reshape(-1),
                "frames": int(state["frames"]),
            }
        except (KeyError, ValueError, TypeError) as exc:
            raise ParamsError(f"pitch state is malformed ({exc})", where="state.pitch") from exc

    def _shift_frames(self, spec: np.ndarray, st: dict[str, Any]) -> np.ndarray:
        """Shift ``k`` frames ``spec`` (k, bins, C); updates the phase maps in ``st``.

        Peaks, regions, instantaneous frequencies, shifts and the scatter run vectorised over all
        frames; only the phase recursion (each frame continues the previous frame's phase map at its
        peaks) is a loop over frames, one gather and one add each.
        """
        N, H, nb = self.N, self.H, self._bins
        k = spec.shape[0]
        mid = np.sum(spec, axis=2)
        mid_phase = np.angle(mid)
        mag = np.sum(np.abs(spec), axis=2)  # (k, bins)
        top = mag.max(axis=1, keepdims=True)
        is_peak = np.zeros((k, nb), bool)
        m = mag
        is_peak[:, 2:-2] = (
            (m[:, 2:-2] > m[:, 1:-3])
            & (m[:, 2:-2] >= m[:, 3:-1])
            & (m[:, 2:-2] > m[:, :-4])
            & (m[:, 2:-2] >= m[:, 4:])
        )
        is_peak &= m > top * 1e-5
        empty = ~is_peak.any(axis=1)
        is_peak[empty, np.argmax(m[empty], axis=1)] = True
        # each bin's region = its nearest peak (ties to the lower one)
        idx = np.broadcast_to(np.arange(nb), (k, nb))
        prev_pk = np.maximum.accumulate(np.where(is_peak, idx, -1), axis=1)
        next_pk = np.minimum.accumulate(np.where(is_peak, idx, nb)[:, ::-1], axis=1)[:, ::-1]
        use_prev = (prev_pk >= 0) & ((next_pk >= nb) | (idx - prev_pk <= next_pk - idx))
        peak_of = np.where(use_prev, prev_pk, next_pk)  # (k, bins) bin index of the region's peak
        # instantaneous frequency at every bin from the phase advance over one hop
        prev_phase = np.concatenate([st["prev_phase"][None, :], mid_phase[:-1]])
        dphi = mid_phase - prev_phase - self._omega[None, :] * H
        dphi = (dphi + np.pi) % (2.0 * np.pi) - np.pi
        omega = self._omega[None, :] + dphi / H
        d_omega = (self.ratio - 1.0) * np.take_along_axis(omega, peak_of, axis=1)  # per region
        shift = np.rint(d_omega * N / (2.0 * np.pi)).astype(np.int64)
        step = d_omega * H
        phi = np.empty((k, nb))
        cur = st["phi"]
        for i in range(k):
            cur = np.mod(cur[peak_of[i]] + step[i], 2.0 * np.pi)
            phi[i] = cur
        st["phi"] = cur
        st["prev_phase"] = mid_phase[-1]
        dest = idx + shift
        ok = (dest >= 0) & (dest < nb) & ~(top <= 1e-12)
        flat = (np.arange(k)[:, None] * nb + dest)[ok]
        rot = np.exp(1j * phi)[ok]
        out = np.empty_like(spec)
        for c in range(spec.shape[2]):
            src = spec[:, :, c][ok] * rot
            re = np.bincount(flat, weights=src.real, minlength=k * nb)
            im = np.bincount(flat, weights=src.imag, minlength=k * nb)
            out[:, :, c] = (re + 1j * im).reshape(k, nb)
        return out

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """Shift one ``(frames, channels)`` block; output delayed by ``latency_frames``."""
        x = np.asarray(block, dtype=np.float32)
        if self.semitones == 0:
            return x, state or {}
        st = self._load(state)
        N, H, C = self.N, self.H, self.channels
        pend = np.concatenate([st["pend"], x.astype(np.float64).reshape(-1, C)])
        k = (pend.shape[0] - N) // H + 1 if pend.shape[0] >= N else 0
        produced = np.zeros((0, C))
        if k > 0:
            frames = np.lib.stride_tricks.sliding_window_view(pend, N, axis=0)[::H][:k]  # (k, C, N)
            spec = sp_fft.rfft(frames * self.window, axis=-1).transpose(0, 2, 1)  # (k, bins, C)
            out_spec = self._shift_frames(spec, st)
            grains = sp_fft.irfft(out_spec.transpose(0, 2, 1), n=N, axis=-1) * (self.window / self._ola_norm)
            # overlap-add the k grains onto the carried accumulator
            span = (k - 1) * H + N
            ola = np.zeros((span, C))
            ola[: N - H] += st["acc"]
            idx = (np.arange(k)[:, None] * H + np.arange(N)[None, :]).reshape(-1)
            for c in range(C):
                ola[:, c] += np.bincount(idx, weights=grains[:, c, :].reshape(-1), minlength=span)
            produced = ola[: k * H]
            st["acc"] = ola[k * H :]
            pend = pend[k * H :]
            st["frames"] += k
        fifo = np.concatenate([st["fifo"], produced])
        n = x.shape[0]
        out = fifo[:n]
        new_state = {
            "pend": _enc(pend, np.float64),
            "acc": _enc(st["acc"], np.float64),
            "fifo": _enc(fifo[n:], np.float64),
            "prev_phase": _enc(st["prev_phase"], np.float64),
            "phi": _enc(st["phi"], np.float64),
            "frames": st["frames"],
        }
        return out.astype(np.float32), new_state
