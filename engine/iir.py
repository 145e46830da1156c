"""Cascaded biquads (second-order sections) without importing :mod:`scipy.signal`.

``import scipy.signal`` also loads scipy.stats, scipy.interpolate and their dependencies: about half
a second of every ``tonematch`` command (issue #2 counts imports), for the one function the mode-A
engine needs from it. :func:`sosfilt` here calls the compiled kernel that ``scipy.signal.sosfilt``
itself calls (``scipy/signal/_sosfilt``), loaded straight from its file, and repeats sosfilt's array
handling for the call form the engine uses (filter state ``zi`` given). If a scipy release lays the
kernel out differently, the public ``scipy.signal.sosfilt`` is used instead: the same results, only
the import is slower. :func:`sos_frequency_response` is ``scipy.signal.sosfreqz`` at given
frequencies.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from collections.abc import Callable

import numpy as np

_Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def _load_kernel() -> _Kernel | None:
    """scipy's compiled ``_sosfilt(sos, x, zi)`` (filters the C-ordered ``(rows, frames)`` ``x`` and
    the ``(rows, sections, 2)`` ``zi`` in place), or None where it cannot be loaded on its own."""
    import scipy

    folder = os.path.join(os.path.dirname(scipy.__file__), "signal")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "_sosfilt" + suffix)
        if not os.path.exists(path):
            continue
        try:
            spec = importlib.util.spec_from_file_location("scipy.signal._sosfilt", path)
            if spec is None or spec.loader is None:
                return None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            kernel = module._sosfilt
            # check the calling convention on a known case before trusting it: y = 0.5 x + 0.25 y[-1]
            x = np.array([[1.0, 0.0, 0.0]])
            zi = np.zeros((1, 1, 2))
            kernel(np.array([[0.5, 0.0, 0.0, 1.0, -0.25, 0.0]]), x, zi)
            if np.allclose(x, [[0.5, 0.125, 0.03125]]):
                return kernel
        except Exception:
            return None
    return None


_KERNEL = _load_kernel()


def sosfilt(sos: np.ndarray, x: np.ndarray, *, axis: int, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, x, axis=axis, zi=zi)``: filter ``x`` along ``axis`` through the
    ``(sections, 6)`` cascade starting from state ``zi`` (``x``'s shape with ``axis`` replaced by 2,
    sections first); returns ``(y, zf)`` in scipy's dtypes and layouts."""
    sos = np.asarray(sos)
    x = np.asarray(x)
    zi = np.asarray(zi)
    dtype = np.result_type(sos, x, zi)
    if _KERNEL is None or dtype.kind not in "fiub" or dtype.itemsize > 8:  # complex, long double: scipy
        from scipy.signal import sosfilt as public_sosfilt

        return public_sosfilt(sos, x, axis=axis, zi=zi)
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise ValueError(f"sos must be shaped (n_sections, 6), got {sos.shape}")
    n_sections = sos.shape[0]
    axis = axis % x.ndim
    zi_shape = (n_sections, *x.shape[:axis], 2, *x.shape[axis + 1:])
    if zi.shape != zi_shape:
        raise ValueError(f"zi must be shaped {zi_shape} for x shaped {x.shape}, got {zi.shape}")
    if dtype.char not in "fd":
        dtype = np.dtype(np.float64)  # integer input, as scipy.signal.sosfilt does
    if x.shape[axis] == 0:  # nothing to filter: the state passes through (scipy raises here)
        return x.astype(dtype), zi.astype(dtype)
    xm = np.moveaxis(x, axis, -1)
    work = np.array(xm.reshape(-1, xm.shape[-1]), dtype=dtype, order="C")  # filtered in place
    state = np.ascontiguousarray(np.moveaxis(zi, (0, axis + 1), (-2, -1)).reshape(-1, n_sections, 2),
                                 dtype=dtype)
    _KERNEL(np.ascontiguousarray(sos, dtype=dtype), work, state)
    y = np.moveaxis(work.reshape(xm.shape), -1, axis)
    zf_moved_shape = (*np.moveaxis(zi, (0, axis + 1), (-2, -1)).shape,)
    zf = np.moveaxis(state.reshape(zf_moved_shape), (-2, -1), (0, axis + 1))
    return y, zf


def sos_frequency_response(sos: np.ndarray, freqs_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Complex response of the ``(sections, 6)`` cascade at ``freqs_hz`` (``scipy.signal.sosfreqz``)."""
    z1 = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / float(sample_rate_hz))  # z^-1
    h = np.ones(z1.shape, dtype=np.complex128)
    for b0, b1, b2, a0, a1, a2 in np.asarray(sos, dtype=np.float64):
        h *= (b0 + z1 * (b1 + z1 * b2)) / (a0 + z1 * (a1 + z1 * a2))
    return h


def sos_steady_state_zi(sos: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """The ``(sections, channels, 2)`` state of the ``(sections, 6)`` cascade (a0 = 1) after a
    constant input ``x0`` (one value per channel) forever: filtering from it, a signal starting at
    ``x0`` has no start-up step (``scipy.signal.sosfilt_zi(sos) * x0``, for the transposed direct
    form II that sosfilt runs)."""
    level = np.asarray(x0, dtype=np.float64).reshape(-1)
    zi = np.empty((len(sos), level.size, 2))
    for s, (b0, b1, b2, _, a1, a2) in enumerate(np.asarray(sos, dtype=np.float64)):
        y = level * (b0 + b1 + b2) / (1.0 + a1 + a2)  # the section's DC gain
        zi[s, :, 1] = b2 * level - a2 * y
        zi[s, :, 0] = b1 * level - a1 * y + zi[s, :, 1]
        level = y
    return zi
