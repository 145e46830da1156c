"""Reverberation from free decays in program material.

The 10 ms energy envelope is searched for decays: runs where the (3-frame smoothed) level never
rises by more than ``RISE_TOL_DB``, starting at the offset (the last frame of the run within
1.5 dB of its peak) and ending just above the noise floor reached. Each decay with at least
``MIN_DROP_DB`` of range gets a Schroeder energy-decay curve (backward integration of the
energy); RT60 is extrapolated from the -5..-25 dB part (T20; less range: down to drop - 5 dB,
at least 10 dB), EDT from 0..-10 dB. DRR: before an offset the level is direct + reverberant; right
after it only the reverberant field remains, so the step between the pre-offset level and the
decay line extrapolated back to the offset gives ``D / R``. Medians over decays; ``None`` when no
decay qualifies (dense music without stops often has none).
"""

from __future__ import annotations

import itertools

import numpy as np

RISE_TOL_DB = 1.5
MIN_DROP_DB = 20.0
MAX_DECAY_S = 4.0
EDC_MAX_S = 3.0


def _fit_slope(t: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    if t.size < 3 or np.ptp(t) <= 0:
        return None
    slope, intercept = np.polyfit(t, y, 1)
    return float(slope), float(intercept)


def find_decays(energy: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) frame ranges of free decays in a frame-energy envelope (linear power)."""
    e = np.asarray(energy, dtype=np.float64)
    if e.size < 10:
        return []
    smooth = np.convolve(e, np.ones(3) / 3.0, mode="same")
    db = 10.0 * np.log10(np.maximum(smooth, 1e-15))
    top = db.max()
    rising = np.diff(db) > 0.0
    # runs where the level does not rise by more than the tolerance from its running minimum are
    # found by splitting at frames that rise > tolerance above the previous frame
    breaks = np.nonzero(np.diff(db) > RISE_TOL_DB)[0] + 1
    del rising
    bounds = np.concatenate(([0], breaks, [db.size]))
    out: list[tuple[int, int]] = []
    max_len = int(MAX_DECAY_S / 0.01)
    for a, b in itertools.pairwise(bounds):
        if b - a < 8:
            continue
        seg = db[a:b]
        peak = seg.max()
        if peak < top - 60.0 or peak < -70.0:
            continue
        # offset: last frame still within 1.5 dB of the run's peak
        start = a + int(np.nonzero(seg >= peak - 1.5)[0][-1])
        tail = db[start:b]
        floor = tail.min()
        if tail[0] - floor < MIN_DROP_DB:
            continue
        # stop just above the floor (noise or the next event) to keep the integration unbiased
        stop = start + int(np.argmax(tail <= floor + 3.0))
        stop = min(stop, start + max_len)
        if stop - start >= 8 and db[start] - db[stop - 1] >= MIN_DROP_DB - 3.0:
            out.append((start, stop))
    return out


def analyze_reverb(energy: np.ndarray, hop_s: float) -> dict:
    """``{rt60_s, edt_s, drr_db, edc_db[], edc_hop_s, decays}`` from a frame-energy envelope."""
    e = np.asarray(energy, dtype=np.float64)
    decays = find_decays(e)
    rt, edt, drr, curves = [], [], [], []
    for start, stop in decays:
        seg = e[start:stop]
        edc = np.cumsum(seg[::-1])[::-1]
        edc_db = 10.0 * np.log10(np.maximum(edc / edc[0], 1e-15))
        t = np.arange(seg.size) * hop_s
        drop = float(10.0 * np.log10(max(seg[0], 1e-15) / max(seg[-1], 1e-15)))
        lo_db = -5.0
        hi_db = max(-25.0, -(drop - 5.0))
        if lo_db - hi_db < 10.0:
            continue
        sel = (edc_db <= lo_db) & (edc_db >= hi_db)
        fit = _fit_slope(t[sel], edc_db[sel])
        if fit is None or fit[0] >= -1.0:
            continue
        rt.append(-60.0 / fit[0])
        sel_e = edc_db >= -10.0
        fit_e = _fit_slope(t[sel_e], edc_db[sel_e])
        if fit_e is not None and fit_e[0] < -1.0:
            edt.append(-60.0 / fit_e[0])
        # DRR: level before the offset vs the decay line of the envelope extrapolated to it
        env_db = 10.0 * np.log10(np.maximum(seg, 1e-15))
        env_fit = _fit_slope(t[sel], env_db[sel])
        if env_fit is not None and start >= 3:
            pre_db = 10.0 * np.log10(max(float(np.mean(e[start - 3:start + 1])), 1e-15))
            rev_db = env_fit[1]
            if pre_db > rev_db + 0.05:
                direct = 10.0 ** (pre_db / 10.0) - 10.0 ** (rev_db / 10.0)
                drr.append(float(np.clip(10.0 * np.log10(direct) - rev_db, -20.0, 40.0)))
            else:
                drr.append(-20.0)
        curves.append(edc_db[: int(EDC_MAX_S / hop_s)])
    edc_out: list[float] = []
    if curves:
        n = max(c.size for c in curves)
        stack = np.full((len(curves), n), np.nan)
        for i, c in enumerate(curves):
            stack[i, : c.size] = c
        counts = np.sum(~np.isnan(stack), axis=0)
        keep = counts >= max(1, len(curves) // 2)
        med = np.nanmedian(stack[:, keep], axis=0) if keep.any() else np.zeros(0)
        edc_out = [round(float(v), 2) for v in med]
    return {
        "rt60_s": round(float(np.median(rt)), 3) if rt else None,
        "edt_s": round(float(np.median(edt)), 3) if edt else None,
        "drr_db": round(float(np.median(drr)), 2) if drr else None,
        "edc_db": edc_out,
        "edc_hop_s": hop_s,
        "decays": len(rt),
    }
