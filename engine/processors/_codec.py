"""Exact, compact JSON encoding of numpy arrays in processor state (base64 of the raw bytes)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """``{"dtype", "shape", "b64"}`` for a numeric array; round-trips bit for bit."""
    a = np.ascontiguousarray(a)
    b64 = base64.b64encode(a.tobytes()).decode("ascii")
    return {"dtype": a.dtype.str, "shape": list(a.shape), "b64": b64}


def decode_array(obj: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array` (returns a writable copy)."""
    raw = base64.b64decode(obj["b64"])
    return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
