"""Convolution reverb: uniformly partitioned FFT convolution (overlap-save) that streams.

The IR (with ``pre_delay_ms`` of silence in front) is cut into ``P`` partitions of ``B`` frames; each
input block of ``B`` frames is transformed once (FFT size ``2B``) and kept in a frequency-domain delay
line (FDL) of the last ``P`` block spectra. A block's output is the inverse FFT of
``sum_p X[m - p] * H[p]``. All blocks of a call are transformed together and the FDL sum runs as ``P``
vectorised multiply-adds over every block of the call at once, so there is no per-block Python loop.

Calls need not be a multiple of ``B``: the incomplete last block is convolved zero-padded (its outputs
are exact, the convolution being causal) and kept, and recomputed once the next call completes it, so
the processor adds no latency. The state carries the last ``P`` complete input blocks and the pending
partial block as base64 float32 (channel-major: all of channel 0, then channel 1), enough to
rebuild the FDL on another machine with the same output.

Output = ``(1 - mix) * dry + mix * wet``; the library IRs are energy-normalised, so ``mix`` is the
wet share. ``tail_frames`` is how long the output rings after the input stops (renderers flush that).
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import numpy as np
from scipy import fft as sp_fft

from engine.errors import ParamsError
from engine.processors.base import State

PRE_DELAY_MAX_MS = 200.0
_instance_ids = itertools.count(1)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.float32).tobytes()).decode("ascii")


def _unb64(text: str, channels: int) -> np.ndarray:
    """Channel-major float32 buffer -> ``(channels, frames)``."""
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).reshape(channels, -1).copy()


def default_block_frames(ir_frames: int) -> int:
    """Partition size: large enough that the FDL has few partitions (speed), at most 32768 frames."""
    b = 1024
    while b < 32768 and b * 8 < ir_frames:
        b *= 2
    return b


class PartitionedConvolver:
    """Streaming convolution of ``(frames, channels)`` blocks with a fixed multichannel IR.

    Channel ``c`` of the input is convolved with channel ``c`` of the IR (an IR with fewer channels
    is reused cyclically). Exact (to float32 rounding) against direct convolution.
    """

    def __init__(self, ir: np.ndarray, channels: int, block_frames: int | None = None) -> None:
        ir = np.asarray(ir, dtype=np.float32)
        if ir.ndim == 1:
            ir = ir[:, None]
        if ir.shape[0] == 0:
            ir = np.zeros((1, ir.shape[1]), np.float32)
        self.channels = int(channels)
        self.ir_frames = ir.shape[0]
        self.B = int(block_frames or default_block_frames(self.ir_frames))
        self.P = -(-self.ir_frames // self.B)
        ir = ir[:, [c % ir.shape[1] for c in range(self.channels)]]
        padded = np.zeros((self.channels, self.P * self.B), np.float32)
        padded[:, : self.ir_frames] = ir.T
        parts = padded.reshape(self.channels, self.P, self.B)
        # (P, C, 1, B+1) partition spectra, zero-padded to 2B (overlap-save); channel-first keeps
        # every array of the multiply-add contiguous
        H = sp_fft.rfft(parts, n=2 * self.B, axis=-1).astype(np.complex64)
        self.H = np.ascontiguousarray(H.transpose(1, 0, 2))[:, :, None, :]
        self._id = f"pc{next(_instance_ids)}"
        self._serial = 0
        self._cache: dict[str, Any] | None = None

    # -- state: internal arrays are channel-first: time (C, frames), spectra (C, blocks, B+1) -------
    def _fresh(self) -> dict[str, Any]:
        C = self.channels
        return {
            "hist": np.zeros((C, self.P * self.B), np.float32),  # last P complete blocks (time)
            "fdl": np.zeros((C, self.P - 1, self.B + 1), np.complex64),  # spectra of the newest P-1
            "partial": np.zeros((C, 0), np.float32),
            "pos": 0,
        }

    def _restore(self, state: State | None) -> dict[str, Any]:
        if not state:
            return self._fresh()
        if (
            self._cache is not None
            and state.get("cache_id") == self._id
            and state.get("serial") == self._cache["serial"]
        ):
            return self._cache
        try:
            hist = _unb64(state["hist"], self.channels)
            partial = _unb64(state["partial"], self.channels)
            pos = int(state["pos"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ParamsError(f"reverb state is malformed ({exc})", where="state.reverb") from exc
        if hist.shape[1] != self.P * self.B or partial.shape[1] >= self.B:
            raise ParamsError("reverb state does not match this IR / block size", where="state.reverb")
        # rebuild the FDL: the spectrum of block j needs block j-1 too (window of 2B), so the P
        # kept blocks give the spectra of the newest P-1
        if self.P > 1:
            win = np.lib.stride_tricks.sliding_window_view(hist, 2 * self.B, axis=1)[:, :: self.B]
            fdl = sp_fft.rfft(win[:, : self.P - 1], axis=-1).astype(np.complex64)
        else:
            fdl = np.zeros((self.channels, 0, self.B + 1), np.complex64)
        return {"hist": hist, "fdl": fdl, "partial": partial, "pos": pos}

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """Convolve one ``(frames, channels)`` block; returns ``(wet, state)``, wet as long as block."""
        st = self._restore(state)
        B, P, C = self.B, self.P, self.channels
        x = np.asarray(block, dtype=np.float32).reshape(-1, C).T
        n = x.shape[1]
        q = st["partial"].shape[1]
        total = q + n
        k_full = total // B
        n_blocks = -(-total // B)
        if n == 0:
            out = np.zeros((0, C), np.float32)
        else:
            padded = np.zeros((C, B + n_blocks * B), np.float32)
            padded[:, :B] = st["hist"][:, -B:]
            padded[:, B : B + q] = st["partial"]
            padded[:, B + q : B + total] = x
            win = np.lib.stride_tricks.sliding_window_view(padded, 2 * B, axis=1)[:, ::B][:, :n_blocks]
            Xn = sp_fft.rfft(win, axis=-1)  # (C, n_blocks, B+1) complex64
            fdl = st["fdl"]  # (C, P-1, B+1): spectra of the P-1 complete blocks before this call
            # Y[j] = sum_p X[j - p] H[p]; X[j - p] is Xn[j - p] for j >= p, else fdl[P-1+j-p]
            Y = Xn * self.H[0]
            tmp = np.empty_like(Y)
            for p in range(1, P):
                k = min(p, n_blocks)
                if k < n_blocks:
                    np.multiply(Xn[:, : n_blocks - p], self.H[p], out=tmp[:, : n_blocks - p])
                    Y[:, p:] += tmp[:, : n_blocks - p]
                np.multiply(fdl[:, P - 1 - p : P - 1 - p + k], self.H[p], out=tmp[:, :k])
                Y[:, :k] += tmp[:, :k]
            y = sp_fft.irfft(Y, n=2 * B, axis=-1)[:, :, B:]
            out = y.reshape(C, -1)[:, q : q + n].T.astype(np.float32)
            if k_full:
                full = padded[:, B : B + k_full * B]
                hist = np.concatenate([st["hist"], full], axis=1)[:, -P * B :]
                if k_full >= P - 1:
                    fdl = Xn[:, k_full - (P - 1) : k_full].copy()
                else:
                    both = np.concatenate([fdl, Xn[:, :k_full]], axis=1)
                    fdl = both[:, both.shape[1] - (P - 1) :]
            else:
                hist = st["hist"]
            partial = padded[:, B + k_full * B : B + total].copy()
            st = {"hist": hist, "fdl": fdl, "partial": partial, "pos": st["pos"] + n}
        self._serial += 1
        st["serial"] = self._serial
        self._cache = st
        new_state = {
            "cache_id": self._id,
            "serial": self._serial,
            "pos": st["pos"],
            "block_frames": B,
            "hist": _b64(st["hist"]),
            "partial": _b64(st["partial"]),
        }
        return out, new_state


class ConvolutionReverb:
    """Processor ``reverb {ir_key, mix 0..1, pre_delay_ms 0..200}`` (see module docstring)."""

    latency_frames = 0

    def __init__(self, block_frames: int | None = None) -> None:
        self._block_frames = block_frames
        self.tail_frames = 0
        self.params: dict[str, Any] = {}

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        """Load the IR ``params["ir_key"]`` at ``sample_rate_hz``; raises ParamsError on bad params."""
        from engine.ir_library import load_ir

        try:
            mix = float(params["mix"])
            pre_delay_ms = float(params.get("pre_delay_ms", 0.0))
            key = params["ir_key"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ParamsError(f"reverb needs ir_key, mix and pre_delay_ms ({exc})", where="reverb") from exc
        if not 0.0 <= mix <= 1.0:
            raise ParamsError(f"mix {mix} outside 0..1", where="reverb.mix")
        if not 0.0 <= pre_delay_ms <= PRE_DELAY_MAX_MS:
            raise ParamsError(
                f"pre_delay_ms {pre_delay_ms} outside 0..{PRE_DELAY_MAX_MS:g}", where="reverb.pre_delay_ms"
            )
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(channels)
        self.mix = mix
        self.params = {"ir_key": key, "mix": mix, "pre_delay_ms": pre_delay_ms}
        ir = load_ir(key, self.sample_rate_hz)
        delay = round(pre_delay_ms * 1e-3 * self.sample_rate_hz)
        if delay:
            ir = np.concatenate([np.zeros((delay, ir.shape[1]), np.float32), ir])
        self.tail_frames = ir.shape[0]
        self._conv = PartitionedConvolver(ir, self.channels, self._block_frames)

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """``(1 - mix) * block + mix * (block conv IR)``; state carries the tail (base64 JSON)."""
        x = np.asarray(block, dtype=np.float32)
        wet, st = self._conv.process(x, state)
        if self.mix >= 1.0:
            return wet, st
        return ((1.0 - self.mix) * x + self.mix * wet).astype(np.float32), st


def benchmark(
    seconds: float = 60.0,
    ir_key: str = "ir/hall_2.0s.wav",
    sample_rate_hz: int = 48000,
    chunk_s: float = 6.0,
    repeats: int = 3,
) -> dict[str, float]:
    """Time the streaming convolution against ``scipy.signal.fftconvolve`` of the whole file
    (stereo, one thread; best of ``repeats``); returns the figures (seconds, x realtime, error dB)."""
    import time

    from scipy import signal

    from engine.ir_library import load_ir

    fs = sample_rate_hz
    ir = load_ir(ir_key, fs)
    x = (0.1 * np.random.default_rng(0).standard_normal((int(seconds * fs), 2))).astype(np.float32)
    chunk = int(chunk_s * fs)

    def ours() -> np.ndarray:
        conv, st, outs = PartitionedConvolver(ir, 2), None, []
        for i in range(0, len(x), chunk):
            y, st = conv.process(x[i : i + chunk], st)
            outs.append(y)
        return np.concatenate(outs)

    def best(fn):
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_ours, y = best(ours)
    t_f32, _ = best(lambda: signal.fftconvolve(x, ir, axes=0)[: len(x)])
    t_f64, ref64 = best(
        lambda: signal.fftconvolve(x.astype(np.float64), ir.astype(np.float64), axes=0)[: len(x)]
    )
    err_db = float(20 * np.log10(np.max(np.abs(y - ref64)) / np.max(np.abs(ref64))))
    return {
        "audio_s": seconds,
        "ir_s": ir.shape[0] / fs,
        "block_frames": PartitionedConvolver(ir, 2).B,
        "partitioned_s": round(t_ours, 4),
        "x_realtime": round(seconds / t_ours, 1),
        "fftconvolve_float32_s": round(t_f32, 4),
        "fftconvolve_float64_s": round(t_f64, 4),
        "speedup_vs_fftconvolve_float32": round(t_f32 / t_ours, 2),
        "speedup_vs_fftconvolve_float64": round(t_f64 / t_ours, 2),
        "max_error_vs_float64_db": round(err_db, 1),
    }


if __name__ == "__main__":
    import json
    import os
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(json.dumps(benchmark(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0), indent=2))
