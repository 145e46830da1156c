"""Stereo width (engine/processors/stereo.py): the side scaled by width, the mid untouched, mono
passed through."""

from __future__ import annotations

import numpy as np
import pytest

from engine.processors.stereo import StereoWidth

FS = 48000


@pytest.mark.parametrize("width", [0.5, 0.8, 1.2, 1.5])
def test_width_scales_the_side_and_keeps_the_mid(width: float) -> None:
    x = (0.1 * np.random.default_rng(0).standard_normal((FS, 2))).astype(np.float32)
    p = StereoWidth()
    p.reset(FS, 2, {"width": width})
    y, _ = p.process(x, None)
    side_x, side_y = x[:, 0] - x[:, 1], y[:, 0] - y[:, 1]
    np.testing.assert_allclose(side_y, width * side_x, atol=1e-6)
    np.testing.assert_allclose(y.sum(axis=1), x.sum(axis=1), atol=1e-6)


def test_mono_and_width_one_pass_through() -> None:
    x = np.ones((100, 1), np.float32)
    p = StereoWidth()
    p.reset(FS, 1, {"width": 1.5})
    assert p.process(x, None)[0] is x
    s = np.ones((100, 2), np.float32)
    p.reset(FS, 2, {"width": 1.0})
    assert p.process(s, None)[0] is s
