"""Stereo image per band from accumulated mid/side spectra.

With ``M = (L + R) / 2`` and ``S = (L - R) / 2``: ``L = M + S``, ``R = M - S``, so
``|L|^2 = |M|^2 + |S|^2 + 2 Re(M S*)``, ``|R|^2 = |M|^2 + |S|^2 - 2 Re(M S*)`` and
``L R* = |M|^2 - |S|^2 - 2 i Im(M S*)``; the per-bin magnitude-squared coherence
``|sum_t L R*|^2 / (sum_t |L|^2 sum_t |R|^2)`` (averaged over frames) needs only the sums of
``|M|^2``, ``|S|^2`` and ``M S*``.
"""

from __future__ import annotations

import numpy as np

STEREO_BAND_EDGES_HZ = (20.0, 60.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0, 12000.0, 20000.0)


def band_edges_hz(sample_rate_hz: float) -> np.ndarray:
    """Band edges capped at min(20 kHz, 0.45 fs)."""
    top = min(20000.0, 0.45 * sample_rate_hz)
    edges = [e for e in STEREO_BAND_EDGES_HZ if e < top]
    return np.array([*edges, top])


def band_coherence(pm: np.ndarray, ps: np.ndarray, ms: np.ndarray, freqs_hz: np.ndarray,
                   edges_hz: np.ndarray) -> np.ndarray:
    """Inter-channel coherence (0..1) per band, power-weighted mean of the per-bin coherence.

    ``pm``, ``ps``: summed |M|^2, |S|^2 per bin; ``ms``: summed M S* per bin (complex)."""
    ll = pm + ps + 2.0 * ms.real
    rr = pm + ps - 2.0 * ms.real
    lr = pm - ps - 2j * ms.imag
    den = np.maximum(ll, 0.0) * np.maximum(rr, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        coh = np.where(den > 0, np.abs(lr) ** 2 / den, np.nan)
    weight = np.sqrt(np.maximum(den, 0.0))
    out = np.full(edges_hz.size - 1, np.nan)
    for i in range(edges_hz.size - 1):
        sel = (freqs_hz >= edges_hz[i]) & (freqs_hz < edges_hz[i + 1]) & np.isfinite(coh)
        if not sel.any():  # a band narrower than a bin: nearest bin
            centre = np.sqrt(edges_hz[i] * edges_hz[i + 1])
            j = int(np.argmin(np.abs(freqs_hz - centre)))
            sel = np.zeros_like(sel)
            sel[j] = np.isfinite(coh[j])
        if sel.any() and weight[sel].sum() > 0:
            out[i] = float(np.clip(np.sum(coh[sel] * weight[sel]) / weight[sel].sum(), 0.0, 1.0))
    return out
