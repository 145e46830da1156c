"""Mid/side stereo width: side = (L - R) / 2 is scaled by ``width`` (1 = unchanged, 0.5 narrower,
1.5 wider), mid = (L + R) / 2 untouched. Done as one 2x2 mix per block (no state). Mono passes through."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.processors.base import State


class StereoWidth:
    """``params`` = the ``stereo`` block of style_params: ``{width}``."""

    latency_frames = 0

    def reset(self, sample_rate_hz: int, channels: int, params: dict[str, Any]) -> None:
        self.channels = int(channels)
        self.width = float((params or {}).get("width", 1.0))
        self.active = self.channels == 2 and self.width != 1.0
        # L' = M + wS = (1+w)/2 L + (1-w)/2 R ; R' = (1-w)/2 L + (1+w)/2 R
        self._a = np.float32((1.0 + self.width) / 2.0)
        self._b = np.float32((1.0 - self.width) / 2.0)

    def process(self, block: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        if not self.active:
            return block, {}
        left, right = block[:, 0], block[:, 1]
        out = np.empty_like(block, dtype=np.float32)
        np.multiply(left, self._a, out=out[:, 0])
        out[:, 0] += self._b * right
        np.multiply(right, self._a, out=out[:, 1])
        out[:, 1] += self._b * left
        return out, {}
