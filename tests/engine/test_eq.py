"""Parametric EQ: magnitude responses against the RBJ cookbook formulas, streaming state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.signal import freqz

from engine.errors import ParamsError
from engine.processors.eq import ParametricEQ, eq_response_db

FS = 48000


def _rbj(kind: str, f0: float, q: float, gain_db: float, fs: float) -> tuple[list[float], list[float]]:
    """Audio-EQ-Cookbook (R. Bristow-Johnson), written out independently of the engine."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * f0 / fs
    c, s = math.cos(w0), math.sin(w0)
    al = s / (2 * q)
    if kind == "peaking":
        return [1 + al * A, -2 * c, 1 - al * A], [1 + al / A, -2 * c, 1 - al / A]
    if kind == "low_shelf":
        r = 2 * math.sqrt(A) * al
        return ([A * ((A + 1) - (A - 1) * c + r), 2 * A * ((A - 1) - (A + 1) * c),
                 A * ((A + 1) - (A - 1) * c - r)],
                [(A + 1) + (A - 1) * c + r, -2 * ((A - 1) + (A + 1) * c), (A + 1) + (A - 1) * c - r])
    if kind == "high_shelf":
        r = 2 * math.sqrt(A) * al
        return ([A * ((A + 1) + (A - 1) * c + r), -2 * A * ((A - 1) + (A + 1) * c),
                 A * ((A + 1) + (A - 1) * c - r)],
                [(A + 1) - (A - 1) * c + r, 2 * ((A - 1) - (A + 1) * c), (A + 1) - (A - 1) * c - r])
    if kind == "high_pass":
        return [(1 + c) / 2, -(1 + c), (1 + c) / 2], [1 + al, -2 * c, 1 - al]
    return [(1 - c) / 2, 1 - c, (1 - c) / 2], [1 + al, -2 * c, 1 - al]


def _measured_response_db(bands: list[dict], freqs: np.ndarray) -> np.ndarray:
    """Run an impulse through the processor and take its spectrum."""
    eq = ParametricEQ()
    eq.reset(FS, 1, bands)
    imp = np.zeros((16384, 1), np.float32)
    imp[0] = 1.0
    y, _ = eq.process(imp, None)
    h = y[:, 0].astype(np.float64)
    n = np.arange(h.size)
    dft = np.exp(-2j * np.pi * np.outer(freqs, n) / FS) @ h  # the DFT at exactly these frequencies
    return 20 * np.log10(np.abs(dft))


CASES = [
    ("peaking", 1000.0, 1.41, 6.0), ("peaking", 60.0, 4.0, -9.0), ("peaking", 12000.0, 0.5, 3.0),
    ("low_shelf", 120.0, 0.707, 5.0), ("low_shelf", 300.0, 0.5, -8.0),
    ("high_shelf", 6000.0, 0.707, -4.0), ("high_shelf", 2500.0, 1.0, 7.5),
    ("high_pass", 40.0, 0.707, 0.0), ("low_pass", 15000.0, 0.9, 0.0),
]


@pytest.mark.parametrize("kind,f0,q,gain", CASES)
def test_each_band_matches_the_cookbook(kind: str, f0: float, q: float, gain: float) -> None:
    freqs = np.geomspace(20, 20000, 120)
    b, a = _rbj(kind, f0, q, gain, FS)
    _, h = freqz(b, a, worN=freqs, fs=FS)
    expected = 20 * np.log10(np.abs(h))
    band = {"type": kind, "f_hz": f0, "q": q, "gain_db": gain}
    assert np.max(np.abs(eq_response_db([band], freqs, FS) - expected)) < 1e-6
    assert np.max(np.abs(_measured_response_db([band], freqs) - expected)) < 0.01


def test_landmark_gains_a_user_would_check() -> None:
    f = np.array([20.0, 1000.0, 20000.0])
    pk = eq_response_db([{"type": "peaking", "f_hz": 1000.0, "q": 2.0, "gain_db": 6.0}], f, FS)
    assert abs(pk[1] - 6.0) < 1e-9 and abs(pk[0]) < 0.01
    ls = eq_response_db([{"type": "low_shelf", "f_hz": 1000.0, "q": 0.707, "gain_db": 6.0}], f, FS)
    assert abs(ls[0] - 6.0) < 0.05 and abs(ls[1] - 3.0) < 1e-6 and abs(ls[2]) < 0.05
    hp = eq_response_db([{"type": "high_pass", "f_hz": 1000.0, "q": 0.7071, "gain_db": 0.0}], f, FS)
    assert abs(hp[1] + 3.01) < 0.01


def test_cascade_is_one_sosfilt_and_adds_up() -> None:
    bands = [{"type": k, "f_hz": f, "q": q, "gain_db": g} for k, f, q, g in CASES[:7]]
    freqs = np.geomspace(30, 18000, 200)
    total = sum(eq_response_db([b], freqs, FS) for b in bands)
    assert np.max(np.abs(_measured_response_db(bands, freqs) - total)) < 0.02
    eq = ParametricEQ()
    eq.reset(FS, 2, bands)
    assert eq.sos.shape == (7, 6)


def test_chunked_equals_whole_and_state_is_json() -> None:
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((FS * 2, 2))).astype(np.float32)
    bands = [{"type": "peaking", "f_hz": 50.0, "q": 3.0, "gain_db": 8.0},
             {"type": "high_shelf", "f_hz": 8000.0, "q": 0.7, "gain_db": -5.0}]
    eq = ParametricEQ()
    eq.reset(FS, 2, bands)
    whole, _ = eq.process(x, None)
    outs, state, i = [], None, 0
    for size in [1, 7, 4093, 10000, 31]:
        y, state = eq.process(x[i:i + size], state)
        state = json.loads(json.dumps(state))  # survives a trip through JSON
        outs.append(y)
        i += size
    y, _ = eq.process(x[i:], state)
    outs.append(y)
    diff = np.concatenate(outs) - whole
    d64, w64 = diff.astype(np.float64), whole.astype(np.float64)
    assert 10 * np.log10(np.sum(d64 ** 2) / np.sum(w64 ** 2) + 1e-30) < -100


def test_band_above_nyquist_is_refused() -> None:
    eq = ParametricEQ()
    with pytest.raises(ParamsError) as e:
        eq.reset(22050, 2, [{"type": "peaking", "f_hz": 1000.0, "q": 1, "gain_db": 1},
                            {"type": "high_shelf", "f_hz": 16000.0, "q": 0.7, "gain_db": 3}])
    assert e.value.where == "eq[1].f_hz"
