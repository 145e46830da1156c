"""The GPU path: the engine's heavy array work moved to CuPy, leaving the engine itself untouched.

* FFTs: a ``scipy.fft`` backend (uarray protocol) that sends transforms of at least
  ``min_elements`` to ``cupyx.scipy.fft`` and returns NumPy arrays, so the engine's FFT convolution
  (reverb, ``engine/processors/reverb.py``) and phase-vocoder (pitch) run on the GPU; smaller ones
  stay on the CPU, where the transfer would cost more than the transform.
* 4x true-peak oversampling: the engine's polyphase interpolation is a GEMM per block
  (``engine/true_peak.py``, ``_interp_peaks``); :func:`interp_peaks` is the same computation written
  for any array module, installed on CuPy.

Both are written against an array module ``xp`` so the tests check them on NumPy (no GPU needed) and
``gpu_batch/check_gpu.sh`` compares the GPU render with the CPU render on a GPU machine (the two must
agree within -90 dB). CuPy's matmul keeps full float32 (no TF32) unless ``CUPY_TF32`` is set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_FFT_NAMES = (
    "fft",
    "ifft",
    "rfft",
    "irfft",
    "fftn",
    "ifftn",
    "rfftn",
    "irfftn",
    "fft2",
    "ifft2",
    "rfft2",
    "irfft2",
    "hfft",
    "ihfft",
)
_DROPPED_KWARGS = ("workers", "overwrite_x", "plan")


@dataclass
class ArrayFFTBackend:
    """``scipy.fft`` backend running large transforms with ``fft_module`` on ``xp`` arrays."""

    xp: Any
    fft_module: Any
    min_elements: int = 1 << 15
    calls: int = 0
    fallbacks: int = 0
    __ua_domain__: str = field(default="numpy.scipy.fft", init=False)

    def __ua_function__(self, method: Any, args: tuple, kwargs: dict) -> Any:
        fn = getattr(self.fft_module, method.__name__, None) if method.__name__ in _FFT_NAMES else None
        x = args[0] if args else kwargs.get("x")
        if (
            fn is None
            or not isinstance(x, np.ndarray)
            or x.size < self.min_elements
            or x.dtype.kind not in "fc"
        ):
            self.fallbacks += 1
            return NotImplemented
        kw = {k: v for k, v in kwargs.items() if k not in _DROPPED_KWARGS and k != "x"}
        out = fn(self.xp.asarray(x), *args[1:], **kw)
        self.calls += 1
        return self.xp.asnumpy(out) if hasattr(self.xp, "asnumpy") else np.asarray(out)


def interp_peaks(xp: Any, x: np.ndarray, rows: np.ndarray, offset: int = 0) -> np.ndarray:
    """``engine.true_peak._interp_peaks`` on array module ``xp``: max over channels and phases 1..3
    of |interpolated x| for the given rows; returns a NumPy ``(len(rows), ROW_FRAMES)`` array."""
    from engine import true_peak as tp

    mat = xp.asarray(tp._MAT)
    span = tp._MAT.shape[0]
    b = tp._ROW_FRAMES
    frames, channels = x.shape
    starts = rows.astype(np.int64) * b - offset
    # Windows are gathered as indices (clipped reads replaced by zeros: frames outside x are silence).
    idx = starts[:, None] + np.arange(span)[None, :]
    valid = (idx >= 0) & (idx < frames)
    idx_d = xp.asarray(np.clip(idx, 0, max(frames - 1, 0)))
    valid_d = xp.asarray(valid)
    out = xp.zeros((rows.size, b), dtype=xp.float32)
    xd = xp.asarray(np.ascontiguousarray(x, dtype=np.float32))
    step = 65536
    for c in range(channels):
        col = xd[:, c]
        for s in range(0, rows.size, step):
            win = xp.where(valid_d[s : s + step], col[idx_d[s : s + step]], xp.float32(0))
            y = xp.abs(win @ mat)
            peak = xp.maximum(xp.maximum(y[:, :b], y[:, b : 2 * b]), y[:, 2 * b :])
            out[s : s + step] = xp.maximum(out[s : s + step], peak)
    return xp.asnumpy(out) if hasattr(xp, "asnumpy") else np.asarray(out)


def cupy_or_none() -> Any:
    """CuPy when importable and a CUDA device answers, else None (``TONEMATCH_GPU=off`` forces None)."""
    if os.environ.get("TONEMATCH_GPU", "auto").lower() in ("0", "off", "false", "cpu"):
        return None
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        cupy.zeros(1).sum()  # the device really runs kernels
        return cupy
    except Exception:
        return None


@contextlib.contextmanager
def use_array_module(
    xp: Any, fft_module: Any, *, min_fft_elements: int = 1 << 15
) -> Iterator[ArrayFFTBackend]:
    """Route the engine's FFTs and true-peak oversampling through ``xp`` inside the block."""
    import scipy.fft

    from engine import true_peak as tp

    backend = ArrayFFTBackend(xp=xp, fft_module=fft_module, min_elements=min_fft_elements)
    original = tp._interp_peaks
    tp._interp_peaks = lambda x, rows, offset=0: interp_peaks(xp, x, rows, offset)
    try:
        with scipy.fft.set_backend(backend):
            yield backend
    finally:
        tp._interp_peaks = original


@contextlib.contextmanager
def gpu_if_available() -> Iterator[str]:
    """Inside the block the engine uses the GPU when one is usable; yields ``"cuda"`` or ``"cpu"``."""
    cp = cupy_or_none()
    if cp is None:
        yield "cpu"
        return
    import cupyx.scipy.fft

    with use_array_module(cp, cupyx.scipy.fft):
        yield "cuda"
