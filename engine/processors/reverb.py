"""Convolution reverb: uniformly partitioned FFT convolution (overlap-save) that streams.

The IR (with ``pre_delay_ms`` of silence in front) is cut into ``P`` partitions of ``B`` frames; each
input block of ``B`` frames is transformed once (FFT size ``2B``: the block and the one before it) and
kept in a frequency-domain delay line (FDL) of the last ``P`` block spectra. A block's output is the
second half of the inverse FFT of ``sum_p X[m - p] * H[p]`` (the first half is circularly aliased and
dropped). Blocks go through the FFTs in small groups (one pocketfft call transforms a group's
windows for all channels at once, its SIMD batch), and the FDL sum runs as ``P`` vectorised complex64
multiply-adds over the group, so there is no per-sample or per-channel Python work. Time data stays
frame-major as it comes: the forward FFT reads the overlapping windows straight from the call's
frames (only windows that reach into the previous call or past the end are copied), and the inverse
FFT writes frame-major, so there is no transpose pass. The FFTs write into preallocated buffers sized
by one group: memory is flat in the call length and in the stream length.

``B`` comes from :func:`default_block_frames`, a cost model per output frame (FFTs, multiply-adds,
per-call overheads) fitted to timings of this convolver (pocketfft single precision, one thread).

Calls need not be a multiple of ``B``: the incomplete last block is convolved zero-padded (its outputs
are exact, the convolution being causal) and kept, and recomputed once the next call completes it, so
the processor adds no latency.

State (JSON): ``blocks`` is the last ``P`` complete input blocks as a list of base64 float32 strings,
oldest first, each frame-major (``B`` x channels, interleaved as the audio); ``pending`` the incomplete
block (same layout); ``pos`` the frames consumed; ``block_frames`` ``B``. A block's string is encoded
once and reused by the later states that still hold it. That is enough to rebuild the FDL on another
machine with the same output. States of the earlier layout (``hist``: one channel-major string of
``P * B`` frames, ``partial``) and states written with another ``block_frames`` load too: the input
history is re-cut into this convolver's blocks (frames before it count as silence, which is exact
since the history spans the IR).

``ConvolutionReverb`` folds the dry/wet mix into the IR (``mix * ir`` plus ``1 - mix`` at lag 0), so
``(1 - mix) * dry + mix * wet`` comes out of the one convolution; the library IRs are
energy-normalised, so ``mix`` is the wet share. ``tail_frames`` is how long the output rings after
the input stops (renderers flush that): the IR with its pre-delay, 0 at ``mix`` 0.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy import fft as sp_fft

from engine.errors import ParamsError
from engine.processors.base import State

PRE_DELAY_MAX_MS = 200.0
_instance_ids = itertools.count(1)

#: partition sizes the cost model chooses from: powers of two, so the renderers' 2**16-frame blocks
#: never leave an incomplete partition to recompute
_BLOCK_CHOICES = tuple(2**k for k in range(8, 17))
#: cost model, ns per output frame and channel, fitted (rms 6 %, worst 19 %) to this convolver
#: timed on one core (AMD EPYC, pocketfft float32, stereo; CPU time) over IRs of 100 frames .. 4.5 s,
#: B = 2**8..2**15 and calls of 65536, 72000 and 288000 frames: a fixed part (FFTs, copies, state)
#: plus one per partition (the FDL multiply-add), times a factor for what grows with B (FFT length,
#: cache misses, the incomplete block recomputed each call), plus the numpy call overheads of a
#: block and of each of its partitions. Only the ratios matter; its pick is within 10 % of the
#: measured best B for every IR length measured.
_FIXED_NS = 6.26
_PER_PARTITION_NS = 0.74
_B_SCALE_FRAMES = 19240.0
_PER_BLOCK_NS = 2390.0
_PER_BLOCK_PARTITION_NS = 384.0
#: transforms per FFT call: pocketfft runs 4 single-precision transforms at once (SIMD), so a call
#: batches ceil(4 / channels) blocks; measured the fastest here (1 block: 1.6x slower in stereo, 4 no
#: faster than 2) and small enough that a group's spectra stay in cache
FFT_BATCH_TRANSFORMS = 4


def _probe_pocketfft() -> Any:
    """scipy's pocketfft binding, whose transforms write into a given array (``out=``), if it is
    there and agrees with ``scipy.fft``; else None (then the public API, which allocates)."""
    try:
        from scipy.fft._pocketfft import pypocketfft as pf

        x = np.random.default_rng(0).standard_normal((3, 2, 16)).astype(np.float32)
        spec = np.empty((3, 2, 9), np.complex64)
        back = np.empty((3, 2, 16), np.float32)
        pf.r2c(x, (2,), True, 0, spec, 1)
        pf.c2r(spec, (2,), 16, False, 2, back, 1)
        if np.allclose(spec, sp_fft.rfft(x, axis=-1), atol=1e-4) and np.allclose(back, x, atol=1e-5):
            return pf
    except Exception:  # a private module: any failure means "use the public API"
        pass
    return None


_PF = _probe_pocketfft()
_FFT_DOMAIN = "numpy.scipy.fft"
try:  # uarray's dispatch state, to see whether scipy.fft has another backend (private as well)
    from scipy._lib._uarray import _uarray as _uarray_state
    from scipy.fft._backend import _ScipyBackend
except Exception:
    _uarray_state = _ScipyBackend = None


def _direct_fft_ok() -> bool:
    """True when scipy.fft would run its own pocketfft anyway (no other backend set, registered or
    preferred, e.g. the GPU path's ``scipy.fft.set_backend``), so calling the binding directly skips
    nothing. Any doubt (another scipy, an unreadable state) answers False: the public API."""
    if _PF is None or _uarray_state is None:
        return False
    try:
        glob, local, _ = _uarray_state.get_state()._pickle()
        if _FFT_DOMAIN in glob:
            (backend, _, _), registered, _ = glob[_FFT_DOMAIN]
            if backend is not _ScipyBackend or registered:
                return False
        skipped, preferred = local.get(_FFT_DOMAIN, ((), ()))
        return not skipped and not preferred
    except Exception:  # private API: any surprise means "go through scipy.fft"
        return False


def _rfft_into(x: np.ndarray, out: np.ndarray, direct: bool) -> np.ndarray:
    """Real FFT of ``x`` (float32) along its last axis into ``out`` (complex64, ``n // 2 + 1``)."""
    if direct:
        return _PF.r2c(x, (x.ndim - 1,), True, 0, out, 1)
    out[...] = sp_fft.rfft(x, axis=-1)
    return out


def _irfft_into(X: np.ndarray, n: int, out: np.ndarray, direct: bool) -> np.ndarray:
    """Inverse real FFT (size ``n``, scaled 1/n) of ``X`` along its last axis into ``out`` (float32)."""
    if direct:
        return _PF.c2r(X, (X.ndim - 1,), n, False, 2, out, 1)
    out[...] = sp_fft.irfft(X, n=n, axis=-1)
    return out


def _b64(a: np.ndarray) -> str:
    """Base64 of the float32 bytes of ``a`` in C order."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not a.size:
        return ""
    return binascii.b2a_base64(memoryview(a).cast("B"), newline=False).decode("ascii")


def _unb64(text: str, channels: int) -> np.ndarray:
    """Channel-major float32 buffer (the earlier state layout) -> ``(channels, frames)``."""
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).reshape(channels, -1).copy()


def _unb64_frames(text: str, channels: int) -> np.ndarray:
    """Frame-major float32 buffer -> ``(frames, channels)``."""
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).reshape(-1, channels).copy()


def block_cost_ns(block_frames: int, ir_frames: int) -> float:
    """Modelled cost (ns per output frame and channel) of partitions of ``block_frames``."""
    b = int(block_frames)
    parts = -(-max(1, int(ir_frames)) // b)
    return (_FIXED_NS + _PER_PARTITION_NS * parts) * (1.0 + b / _B_SCALE_FRAMES) + (
        _PER_BLOCK_NS + _PER_BLOCK_PARTITION_NS * parts
    ) / b


def default_block_frames(ir_frames: int) -> int:
    """Partition size (frames) with the least modelled cost per output frame for this IR length."""
    return min(_BLOCK_CHOICES, key=lambda b: (block_cost_ns(b, ir_frames), b))


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
        self.channels = C = int(channels)
        self.ir_frames = ir.shape[0]
        self.B = B = int(block_frames or default_block_frames(self.ir_frames))
        self.P = P = -(-self.ir_frames // B)
        ir = ir[:, [c % ir.shape[1] for c in range(C)]]
        padded = np.zeros((P * B, C), np.float32)
        padded[: self.ir_frames] = ir
        # (P, C, B+1) partition spectra, each partition zero-padded to 2B (overlap-save)
        parts = np.ascontiguousarray(padded.reshape(P, B, C).transpose(0, 2, 1))
        self.H = sp_fft.rfft(parts, n=2 * B, axis=-1).astype(np.complex64)
        self._zero_block_b64 = _b64(np.zeros((B, C), np.float32))
        self._id = f"pc{next(_instance_ids)}"
        self._serial = 0
        self._cache: dict[str, Any] | None = None
        # work buffers (frame-major time, spectra), all sized by the group of G blocks: memory does
        # not grow with the call or the stream
        # time: [:B] the last complete block, [B:B+q] the pending one
        self._time = np.zeros((2 * B, C), np.float32)
        # block spectra: the FDL is spec[base - (P-1) : base] (newest last) and a group's new spectra
        # go to spec[base : base + G]; when the end is reached the FDL moves back to the front
        G = self.G = max(1, -(-FFT_BATCH_TRANSFORMS // C))
        self._spec = np.zeros((P - 1 + 4 * G, C, B + 1), np.complex64)
        self._base = P - 1
        self._acc = np.empty((G, C, B + 1), np.complex64)  # FDL sums of a group
        self._tmp = np.empty((G, C, B + 1), np.complex64)
        self._wet = np.empty((G, 2 * B, C), np.float32)  # a group's inverse FFTs, frame-major
        self._win = np.empty(((G + 1) * B, C), np.float32)  # windows that are not inside one call

    # -- state -----------------------------------------------------------------------------------
    def _fresh(self) -> dict[str, Any]:
        self._time[: self.B] = 0.0
        self._base = self.P - 1
        self._spec[: self._base] = 0.0
        return {"blocks": [self._zero_block_b64] * self.P, "q": 0, "pos": 0}

    def _history(self, state: State) -> tuple[np.ndarray, np.ndarray, int]:
        """``(hist (frames, C), pending (q, C), pos)`` of a JSON state, either layout."""
        C = self.channels
        try:
            pos = int(state["pos"])
            if "blocks" in state:
                hist = np.concatenate([_unb64_frames(s, C) for s in state["blocks"]], axis=0)
                pending = _unb64_frames(state["pending"], C)
            else:  # earlier layout: channel-major
                hist = np.ascontiguousarray(_unb64(state["hist"], C).T)
                pending = np.ascontiguousarray(_unb64(state["partial"], C).T)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ParamsError(f"reverb state is malformed ({exc})", where="state.reverb") from exc
        return hist, pending, pos

    def _restore(self, state: State | None) -> dict[str, Any]:
        if not state:
            return self._fresh()
        if (
            self._cache is not None
            and state.get("cache_id") == self._id
            and state.get("serial") == self._cache["serial"]
        ):
            return self._cache
        B, P, C = self.B, self.P, self.channels
        hist, pending, pos = self._history(state)
        q = pos % B
        if hist.shape[0] != P * B or pending.shape[0] != q:
            # another block size (or layout): re-cut the input history into our blocks; the frames
            # before it are silence, exact when the history spans the IR
            known = np.concatenate([hist, pending], axis=0)
            if known.shape[0] < min(pos, self.ir_frames - 1):
                raise ParamsError("reverb state does not match this IR / block size", where="state.reverb")
            need = P * B + q
            if known.shape[0] < need:
                known = np.concatenate([np.zeros((need - known.shape[0], C), np.float32), known], axis=0)
            known = known[known.shape[0] - need :]
            hist, pending = known[: P * B], known[P * B :]
        # rebuild the FDL: the spectrum of block j needs block j-1 too (window of 2B), so the P
        # kept blocks give the spectra of the newest P-1
        if P > 1:
            f_st, c_st = hist.strides
            win = as_strided(hist, (P - 1, C, 2 * B), (B * f_st, c_st, f_st), writeable=False)
            _rfft_into(win, self._spec[: P - 1], _direct_fft_ok())
        self._base = P - 1
        self._time[:B] = hist[(P - 1) * B :]
        self._time[B : B + q] = pending
        blocks = [_b64(hist[j * B : (j + 1) * B]) for j in range(P)]
        return {"blocks": blocks, "q": q, "pos": pos}

    def _frames(self, x: np.ndarray, q: int, lo: int, hi: int, buf: np.ndarray | None = None) -> np.ndarray:
        """Call frames ``[lo, hi)`` of the stream: negative ones are the kept earlier frames (the last
        complete block and the ``q`` pending ones), ``>= len(x)`` ones silence. A view into ``x``
        when inside it, else assembled in ``buf`` (or a new array)."""
        n = x.shape[0]
        if lo >= 0 and hi <= n:
            return x[lo:hi]
        B = self.B
        out = np.empty((hi - lo, self.channels), np.float32) if buf is None else buf[: hi - lo]
        a = min(hi, 0)
        if lo < a:  # earlier frames: call frame f is self._time[B + q + f]
            out[: a - lo] = self._time[B + q + lo : B + q + a]
        b0, b1 = max(lo, 0), min(hi, n)
        if b0 < b1:
            out[b0 - lo : b1 - lo] = x[b0:b1]
        z = max(lo, n)
        if z < hi:
            out[z - lo :] = 0.0
        return out

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """Convolve one ``(frames, channels)`` block; returns ``(wet, state)``, wet as long as block."""
        st = self._restore(state)
        B, P, C = self.B, self.P, self.channels
        x = np.asarray(block, dtype=np.float32).reshape(-1, C)
        n = x.shape[0]
        q = st["q"]
        total = q + n
        k_full = total // B
        n_blocks = -(-total // B)
        out = np.empty((n, C), np.float32)
        if n:
            S, H, G = self._spec, self.H, self.G
            direct = _direct_fft_ok()
            base = self._base
            for g0 in range(0, n_blocks, G):
                g = min(G, n_blocks - g0)
                if base + g > S.shape[0]:
                    S[: P - 1] = S[base - (P - 1) : base]
                    base = P - 1
                # windows [block j-1, block j] of 2B frames, as (g, C, 2B) views: straight into the
                # call's frames, or a copy where they reach into earlier frames or past the call
                src = self._frames(x, q, g0 * B - B - q, (g0 + g) * B - q, self._win)
                f_st, c_st = src.strides
                win = as_strided(src, (g, C, 2 * B), (B * f_st, c_st, f_st), writeable=False)
                X = _rfft_into(win, S[base : base + g], direct)
                # Y[j] = sum_p X[j - p] H[p], X[j - p] = S[base + j - p] (the FDL for j < p)
                Y, tmp = self._acc[:g], self._tmp[:g]
                np.multiply(X, H[0], out=Y)
                for p in range(1, P):
                    np.multiply(S[base - p : base - p + g], H[p], out=tmp)
                    np.add(Y, tmp, out=Y)
                wet = self._wet[:g]  # (g, 2B, C); the second half of each is un-aliased
                _irfft_into(Y, 2 * B, wet.transpose(0, 2, 1), direct)
                for i in range(g):  # block j holds call frames [j*B - q, (j+1)*B - q)
                    j = g0 + i
                    lo, hi = max(0, j * B - q), min(n, (j + 1) * B - q)
                    out[lo:hi] = wet[i, B + lo + q - j * B : B + hi + q - j * B]
                base += max(0, min(g, k_full - g0))  # the incomplete block stays out of the FDL
            self._base = base
            blocks = st["blocks"]
            if k_full:
                first = max(0, k_full - P)
                new = [_b64(self._frames(x, q, j * B - q, (j + 1) * B - q)) for j in range(first, k_full)]
                blocks = (blocks + new)[-P:]
            # keep the last complete block and the incomplete one for the next call
            q_next = total - k_full * B
            self._time[: B + q_next] = self._frames(x, q, k_full * B - q - B, n)  # a view of x or a new array
            st = {"blocks": blocks, "q": q_next, "pos": st["pos"] + n}
        self._serial += 1
        st["serial"] = self._serial
        self._cache = st
        new_state = {
            "cache_id": self._id,
            "serial": self._serial,
            "pos": st["pos"],
            "block_frames": B,
            "blocks": list(st["blocks"]),
            "pending": _b64(self._time[B : B + st["q"]]),
        }
        return out, new_state


class ConvolutionReverb:
    """Processor ``reverb {ir_key, mix 0..1, pre_delay_ms 0..200}`` (see module docstring)."""

    latency_frames = 0

    def __init__(self, block_frames: int | None = None) -> None:
        self._block_frames = block_frames
        self._conv: PartitionedConvolver | None = None
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
        # at mix 0 nothing rings after the input (the dry signal passes as it is): no tail to flush
        self.tail_frames = ir.shape[0] if mix > 0.0 else 0
        # the dry share rides in the IR at lag 0: (1 - mix) x + mix (x conv ir) = x conv ir_mixed
        self._conv = None
        if mix > 0.0:
            ir_mixed = mix * ir
            if mix < 1.0:
                ir_mixed[0] += 1.0 - mix
            self._conv = PartitionedConvolver(ir_mixed, self.channels, self._block_frames)

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """``(1 - mix) * block + mix * (block conv IR)``; state carries the tail (base64 JSON)."""
        x = np.asarray(block, dtype=np.float32)
        if self._conv is None:  # mix 0: the dry signal, exactly
            return x.copy(), {"bypass": True}
        return self._conv.process(x, state)


def benchmark(
    seconds: float = 60.0,
    ir_key: str = "ir/hall_2.0s.wav",
    sample_rate_hz: int = 48000,
    chunks_frames: tuple[int, ...] = (288000, 65536),
    repeats: int = 3,
    direct_check_frames: int = 4800,
) -> dict[str, Any]:
    """Time the streaming convolution against ``scipy.signal.fftconvolve`` of the whole file, float32
    and float64, on the same stereo noise at ``sample_rate_hz``; returns the figures.

    Times are best of ``repeats``, wall (``_s``) and CPU (``_cpu_s``; the same unless another process
    takes the core). Ours runs chunk by chunk as the renderers call it (``chunks_frames``: 6 s is
    ``render``'s chunk at 48 kHz, 65536 frames ``render_file``'s block), returns the JSON state every
    call and writes each chunk into one output array; fftconvolve gets the whole file at once and its
    output is cut to the input length (equal output). ``x_realtime`` is audio seconds per wall second
    on one core (run under ``taskset -c 1`` with ``OMP_NUM_THREADS=1``). Errors are the max abs
    difference relative to the max abs of the float64 FFT convolution of the whole file, and of the
    float64 direct convolution (``np.convolve``) over ``direct_check_frames`` outputs mid-file."""
    import time

    from scipy import signal

    from engine.ir_library import load_ir

    fs = sample_rate_hz
    ir = load_ir(ir_key, fs)
    x = (0.1 * np.random.default_rng(0).standard_normal((int(seconds * fs), 2))).astype(np.float32)

    def ours(chunk: int) -> np.ndarray:
        conv, st = PartitionedConvolver(ir, 2), None
        y = np.empty_like(x)
        for i in range(0, len(x), chunk):
            y[i : i + chunk], st = conv.process(x[i : i + chunk], st)
        return y

    def best(fn):
        wall, cpu, out = [], [], None
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return min(wall), min(cpu), out

    def err_db(y: np.ndarray, ref: np.ndarray) -> float:
        return round(float(20 * np.log10(np.max(np.abs(y - ref)) / np.max(np.abs(ref)))), 1)

    w32, c32, y32 = best(lambda: signal.fftconvolve(x, ir, axes=0)[: len(x)])
    w64, c64, ref64 = best(
        lambda: signal.fftconvolve(x.astype(np.float64), ir.astype(np.float64), axes=0)[: len(x)]
    )
    # direct float64 convolution of a stretch mid-file: outputs [a, a + k), each a full dot product
    k = min(direct_check_frames, len(x) - len(ir) + 1)
    a = max(len(ir) - 1, len(x) // 2 - k // 2)
    direct = None
    if k > 0:
        seg, ir64 = x[a - len(ir) + 1 : a + k].astype(np.float64), ir.astype(np.float64)
        direct = np.stack([np.convolve(seg[:, c], ir64[:, c], mode="valid") for c in range(2)], axis=1)
    report: dict[str, Any] = {
        "audio_s": seconds,
        "ir_s": round(ir.shape[0] / fs, 3),
        "sample_rate_hz": fs,
        "channels": 2,
        "block_frames": PartitionedConvolver(ir, 2).B,
        "partitions": PartitionedConvolver(ir, 2).P,
        "fft_into_buffers": _PF is not None,
        "fftconvolve_float32_s": round(w32, 4),
        "fftconvolve_float32_cpu_s": round(c32, 4),
        "fftconvolve_float64_s": round(w64, 4),
        "fftconvolve_float64_cpu_s": round(c64, 4),
        "fftconvolve_float32_error_vs_float64_db": err_db(y32, ref64),
    }
    for chunk in chunks_frames:
        w, c, y = best(lambda chunk=chunk: ours(chunk))
        report[f"chunk_{chunk}"] = {
            "chunk_s": round(chunk / fs, 3),
            "partitioned_s": round(w, 4),
            "partitioned_cpu_s": round(c, 4),
            "x_realtime": round(seconds / w, 1),
            "speedup_vs_fftconvolve_float32": round(w32 / w, 2),
            "speedup_vs_fftconvolve_float32_cpu": round(c32 / c, 2),
            "speedup_vs_fftconvolve_float64": round(w64 / w, 2),
            "speedup_vs_fftconvolve_float64_cpu": round(c64 / c, 2),
            "max_error_vs_float64_fft_db": err_db(y, ref64),
            "max_error_vs_float64_direct_db": None if direct is None else err_db(y[a : a + k], direct),
        }
    return report


if __name__ == "__main__":
    import json
    import os
    import sys

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for secs in [float(a) for a in sys.argv[1:]] or [60.0, 240.0]:
        print(json.dumps(benchmark(secs), indent=2), flush=True)
