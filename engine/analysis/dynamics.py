"""Series reduction for small feature documents and level statistics."""

from __future__ import annotations

import math

import numpy as np

MAX_POINTS = 2000


def reduce_factor(n: int, max_points: int = MAX_POINTS) -> int:
    """Smallest integer group size that brings ``n`` points to at most ``max_points``."""
    return max(1, math.ceil(n / max_points))


def energy_mean_db(values_db: np.ndarray, factor: int, floor_db: float = -150.0) -> np.ndarray:
    """Group ``factor`` consecutive dB values by averaging their powers (a partial last group too)."""
    v = np.asarray(values_db, dtype=np.float64)
    if factor <= 1 or v.size == 0:
        return np.maximum(v, floor_db)
    p = 10.0 ** (np.maximum(v, floor_db) / 10.0)
    n_groups = math.ceil(v.size / factor)
    sums = np.add.reduceat(p, np.arange(0, v.size, factor))
    counts = np.diff(np.append(np.arange(0, v.size, factor), v.size))
    out = 10.0 * np.log10(np.maximum(sums / counts, 1e-300))
    return np.maximum(out[:n_groups], floor_db)


def rounded(values: np.ndarray, digits: int = 2) -> list[float]:
    """Plain Python floats rounded for a compact, deterministic JSON document (NaN/inf not allowed)."""
    v = np.round(np.asarray(values, dtype=np.float64), digits)
    return [float(x) for x in v]


def percentile_or_none(values: np.ndarray, q: float) -> float | None:
    """``q``-th percentile of the finite values, or None."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if v.size else None
