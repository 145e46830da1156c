"""Spectral band layouts and reductions from a power spectrum on a linear bin grid.

Band values are averages of the power spectrum treated as piecewise linear between bin centres
(sampled at 16 points per band), so bands narrower than a bin (1/12 octave below ~300 Hz with a
2048-point frame) read a smooth, interpolated value instead of being empty or jumping.
"""

from __future__ import annotations

import numpy as np

FLOOR_DB = -150.0
_POINTS_PER_BAND = 16


def twelfth_octave_centers_hz(sample_rate_hz: float, fmin_hz: float = 20.0,
                              fmax_hz: float = 20000.0) -> np.ndarray:
    """1/12-octave band centres ``1000 * 2**(k/12)`` Hz within ``fmin_hz .. min(fmax_hz, 0.45 fs)``."""
    top = min(fmax_hz, 0.45 * sample_rate_hz)
    k = np.arange(int(np.ceil(12 * np.log2(fmin_hz / 1000.0))), int(np.floor(12 * np.log2(top / 1000.0))) + 1)
    return 1000.0 * 2.0 ** (k / 12.0)


def _interp_matrix(points_hz: np.ndarray, weights: np.ndarray, n_bins: int, bin_hz: float) -> np.ndarray:
    """(bands, n_bins) matrix: weighted sum of the linearly interpolated spectrum at ``points_hz``."""
    bands, per = points_hz.shape
    pos = np.clip(points_hz / bin_hz, 0.0, n_bins - 1.000001)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    mat = np.zeros((bands, n_bins), dtype=np.float64)
    rows = np.repeat(np.arange(bands), per)
    np.add.at(mat, (rows, lo.ravel()), (weights * (1.0 - frac)).ravel())
    np.add.at(mat, (rows, lo.ravel() + 1), (weights * frac).ravel())
    return mat


def band_average_matrix(centers_hz: np.ndarray, n_bins: int, bin_hz: float,
                        width_octaves: float = 1.0 / 12.0) -> np.ndarray:
    """(bands, n_bins) matrix giving the mean power over each band ``[fc 2^-w/2, fc 2^w/2)``."""
    u = (np.arange(_POINTS_PER_BAND) + 0.5) / _POINTS_PER_BAND - 0.5
    pts = centers_hz[:, None] * 2.0 ** (u[None, :] * width_octaves)
    w = np.full(pts.shape, 1.0 / _POINTS_PER_BAND)
    return _interp_matrix(pts, w, n_bins, bin_hz)


def edges_average_matrix(edges_hz: np.ndarray, n_bins: int, bin_hz: float) -> np.ndarray:
    """(bands, n_bins) matrix giving the mean power between consecutive ``edges_hz`` (log-spaced samples)."""
    u = (np.arange(64) + 0.5) / 64
    lo, hi = np.log(edges_hz[:-1]), np.log(edges_hz[1:])
    pts = np.exp(lo[:, None] + (hi - lo)[:, None] * u[None, :])
    w = np.full(pts.shape, 1.0 / 64)
    return _interp_matrix(pts, w, n_bins, bin_hz)


def hz_to_mel(f_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_matrix(n_mels: int, fmin_hz: float, fmax_hz: float, n_bins: int,
               bin_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(n_mels, n_bins) triangular mel filters normalised to unit weight (each gives a mean power),
    and the band centres in Hz."""
    mels = np.linspace(hz_to_mel(fmin_hz), hz_to_mel(fmax_hz), n_mels + 2)
    per = 32
    u = (np.arange(per) + 0.5) / per  # 0..1 across [lo, hi]
    lo, hi = mels[:-2], mels[2:]
    pts_mel = lo[:, None] + (hi - lo)[:, None] * u[None, :]
    tri = 1.0 - np.abs(2.0 * u - 1.0)
    w = np.broadcast_to(tri / tri.sum(), pts_mel.shape)
    return _interp_matrix(mel_to_hz(pts_mel), w, n_bins, bin_hz), mel_to_hz(mels[1:-1])


def power_db(p: np.ndarray, floor_db: float = FLOOR_DB) -> np.ndarray:
    """10 log10 of a power with a floor (no -inf)."""
    arr = np.maximum(p, 10.0 ** (floor_db / 10.0))
    out = np.log10(arr)
    out *= 10.0
    return out
