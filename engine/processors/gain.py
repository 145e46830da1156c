"""Static gain in dB (the make-up gain that brings the chain to the loudness target). No state."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.processors.base import State


class Gain:
    """``params`` = ``{"gain_db": x}`` (the resolved ``lufs.gain_db`` of style_params)."""

    latency_frames = 0

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        self.gain_db = float((params or {}).get("gain_db", 0.0) or 0.0)
        self.factor = np.float32(10.0 ** (self.gain_db / 20.0))
        self.active = self.gain_db != 0.0

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        if not self.active:
            return block, {}
        return np.multiply(block, self.factor, dtype=np.float32), {}
