"""Checking the blocks that streaming meters and analysers are fed."""

from __future__ import annotations

import numpy as np

from engine.errors import TonematchError


def as_float32_block(block: np.ndarray, channels: int, *, where: str = "block") -> np.ndarray:
    """``block`` as a float32 ``(frames, channels)`` array (a 1-D block is one channel); any other
    shape raises TonematchError naming ``where``."""
    x = np.asarray(block, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != channels:
        raise TonematchError(f"block shaped {x.shape}, expected (frames, {channels})", where=where)
    return x
