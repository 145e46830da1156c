"""Visualisation document of a match (plain JSON; every series at most 2000 points).

``{lufs_trajectory: {hop_s, target[], result[]},
   gain_reduction: {hop_s, db[]},
   f0: {hop_s, target_hz[], reference_hz[], result_hz[]},          # 0 where unvoiced
   mid_side: {band_edges_hz[], target_mid_db[], target_side_db[], reference_mid_db[],
              reference_side_db[], result_mid_db[], result_side_db[]},
   spectrum: {freqs_hz[], target_db[], reference_db[], result_db[]}}``

Series of the same plot share the target's time or frequency grid (others are resampled onto it).
Short-term loudness is in LUFS (silence at -70), gain reduction in dB (positive = reduction),
spectra are the 1/12-octave long-term mid spectra (dB).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_POINTS = 2000


def nested(doc: dict | None, *keys: str) -> Any:
    """``doc[k1][k2]...``, or None where a level is missing (feature documents may lack blocks)."""
    cur: Any = doc
    for k in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur


_get = nested


def _arr(v: Any) -> np.ndarray:
    if not isinstance(v, list | tuple | np.ndarray):
        return np.zeros(0)
    return np.array([np.nan if x is None else float(x) for x in v], dtype=np.float64)


def _r(values: np.ndarray, digits: int = 2, fill: float | None = None) -> list[float | None]:
    out: list[float | None] = []
    for v in np.asarray(values, dtype=np.float64):
        out.append(round(float(v), digits) if math.isfinite(v) else fill)
    return out


def _pool(values: np.ndarray, hop_s: float, how: str) -> tuple[np.ndarray, float]:
    """Reduce to <= MAX_POINTS by grouping (max or mean)."""
    n = values.size
    k = max(1, math.ceil(n / MAX_POINTS))
    if k == 1:
        return values, hop_s
    starts = np.arange(0, n, k)
    if how == "max":
        return np.maximum.reduceat(values, starts), hop_s * k
    counts = np.diff(np.append(starts, n))
    return np.add.reduceat(values, starts) / counts, hop_s * k


def _on_grid(values: np.ndarray, hop_s: float | None, grid_hop_s: float, n: int) -> np.ndarray:
    """Resample a time series onto ``n`` points of ``grid_hop_s`` (nearest sample, NaN outside)."""
    if values.size == 0 or not hop_s:
        return np.full(n, np.nan)
    idx = np.round(np.arange(n) * grid_hop_s / hop_s).astype(np.int64)
    out = np.full(n, np.nan)
    ok = idx < values.size
    out[ok] = values[idx[ok]]
    return out


def _time_series(doc: dict | None, section: str, key: str, hop_key: str) -> tuple[np.ndarray, float | None]:
    values = _arr(_get(doc, section, key))
    hop = _get(doc, section, hop_key)
    return values, (float(hop) if isinstance(hop, int | float) and hop > 0 else None)


def _lufs(target: dict, result: dict) -> dict[str, Any]:
    t, t_hop = _time_series(target, "loudness", "short_term_lufs", "short_term_hop_s")
    r, r_hop = _time_series(result, "loudness", "short_term_lufs", "short_term_hop_s")
    hop = t_hop or r_hop or 0.1
    t, hop_t = _pool(t, hop, "mean")
    n = t.size if t.size else min(r.size, MAX_POINTS)
    grid = hop_t if t.size else (r_hop or hop) * max(1, math.ceil(r.size / MAX_POINTS))
    r = _on_grid(r, r_hop, grid, n)
    return {"hop_s": round(grid, 6), "target": _r(np.maximum(t, -70.0)), "result": _r(np.maximum(r, -70.0))}


def _gain_reduction(report: dict | None) -> dict[str, Any]:
    gr = _arr(_get(report, "gain_reduction_db"))
    hop = _get(report, "gain_reduction_hop_s")
    hop = float(hop) if isinstance(hop, int | float) and hop > 0 else 0.1
    gr, hop = _pool(np.nan_to_num(gr), hop, "max")
    return {"hop_s": round(hop, 6), "db": _r(gr)}


def _f0(target: dict, reference: dict, result: dict) -> dict[str, Any]:
    def voiced_series(doc: dict) -> tuple[np.ndarray, float | None]:
        f, hop = _time_series(doc, "f0", "f0_hz", "series_hop_s")
        v = _get(doc, "f0", "voiced")
        if isinstance(v, list) and len(v) == f.size:
            f = np.where(np.asarray(v, dtype=bool), f, 0.0)
        return np.nan_to_num(f), hop

    t, t_hop = voiced_series(target)
    hop = t_hop or 0.01
    t, grid = _pool(t, hop, "mean") if t.size > MAX_POINTS else (t, hop)
    n = t.size
    ref, ref_hop = voiced_series(reference)
    res, res_hop = voiced_series(result)
    return {
        "hop_s": round(grid, 6),
        "target_hz": _r(t),
        "reference_hz": _r(np.nan_to_num(_on_grid(ref, ref_hop, grid, n)), 2),
        "result_hz": _r(np.nan_to_num(_on_grid(res, res_hop, grid, n)), 2),
    }


def _mid_side(target: dict, reference: dict, result: dict) -> dict[str, Any]:
    edges = _arr(_get(target, "stereo", "band_edges_hz"))
    n = max(0, edges.size - 1)
    out: dict[str, Any] = {"band_edges_hz": _r(edges, 1)}
    for name, doc in (("target", target), ("reference", reference), ("result", result)):
        for part in ("mid", "side"):
            v = _arr(_get(doc, "stereo", f"{part}_energy_db"))[:n]
            v = np.concatenate([v, np.full(n - v.size, np.nan)])
            out[f"{name}_{part}_db"] = _r(v)
    return out


def _spectrum(target: dict, reference: dict, result: dict) -> dict[str, Any]:
    f = _arr(_get(target, "spectrum", "freqs_hz"))
    out: dict[str, Any] = {"freqs_hz": _r(f, 3)}
    for name, doc in (("target", target), ("reference", reference), ("result", result)):
        fo = _arr(_get(doc, "spectrum", "freqs_hz"))
        vo = _arr(_get(doc, "spectrum", "mid_db"))
        if fo.size and fo.size == vo.size and f.size:
            v = np.interp(np.log(f), np.log(fo), vo, left=np.nan, right=np.nan)
        else:
            v = np.full(f.size, np.nan)
        out[f"{name}_db"] = _r(v)
    return out


def visualisation(target_features: dict, reference_features: dict, result_features: dict,
                  render_report: dict | None) -> dict[str, Any]:
    """The report's plot data (see module docstring); missing inputs give empty or null series."""
    return {
        "lufs_trajectory": _lufs(target_features, result_features),
        "gain_reduction": _gain_reduction(render_report),
        "f0": _f0(target_features, reference_features, result_features),
        "mid_side": _mid_side(target_features, reference_features, result_features),
        "spectrum": _spectrum(target_features, reference_features, result_features),
    }
