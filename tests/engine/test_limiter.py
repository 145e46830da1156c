"""True-peak limiter: the ceiling holds on adversarial signals (measured with the 4x BS.1770 meter),
streaming equals one-shot, state survives JSON, latency is compensated exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import lfilter

from engine.processors.limiter import TruePeakLimiter
from engine.true_peak import true_peak_dbtp

FS = 44100


def _limit(x: np.ndarray, ceiling: float, block: int = 7919, **kw) -> np.ndarray:
    lim = TruePeakLimiter()
    lim.reset(FS, x.shape[1], {"tp_db": ceiling, **kw})
    padded = np.concatenate([x, np.zeros((lim.latency_frames, x.shape[1]), np.float32)])
    outs, state = [], None
    for i in range(0, padded.shape[0], block):
        y, state = lim.process(padded[i:i + block], state)
        outs.append(y)
    return np.concatenate(outs)[lim.latency_frames:]


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = FS * 2
    t = np.arange(n) / FS
    sq = np.sign(np.sin(2 * np.pi * 1000 * t))
    imp = np.zeros(n)
    imp[::997] = 1.0
    imp[::1999] = -1.0
    s4 = np.sin(2 * np.pi * (FS / 4) * t + np.pi / 4)
    s4 /= np.abs(s4).max()
    music = lfilter([1.0], [1.0, -0.9], rng.standard_normal((n, 2)), axis=0)
    music *= (1 + 0.8 * np.sin(2 * np.pi * 2 * t))[:, None]
    music *= 4.0 / np.abs(music).max()  # +12 dB overdriven
    alt = np.ones(n)
    alt[1::2] = -1.0
    return {
        "full-scale square": np.stack([sq, sq], 1),
        "square, channels opposite": np.stack([sq, -sq], 1),
        "impulses": np.stack([imp, 0.5 * imp], 1),
        "sine fs/4 at 45 degrees": np.stack([s4, s4], 1),
        "music-like +12 dB": music,
        "uniform noise +12 dB": rng.uniform(-4, 4, (n, 2)),
        "nyquist alternation": np.stack([alt, alt], 1),
    }


@pytest.mark.parametrize("name", list(_signals()))
@pytest.mark.parametrize("ceiling", [-1.0, -0.1, -6.0])
def test_true_peak_never_exceeds_the_ceiling(name: str, ceiling: float) -> None:
    x = _signals()[name].astype(np.float32)
    y = _limit(x, ceiling)
    assert y.shape == x.shape
    assert true_peak_dbtp(y, FS) <= ceiling + 1e-4
    assert true_peak_dbtp(x, FS) > ceiling  # the test is meaningful: the input was over


@pytest.mark.parametrize("seed", range(6))
def test_ceiling_holds_for_random_settings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = FS
    env = np.exp(rng.standard_normal(n // 441 + 1) * 1.5).repeat(441)[:n]
    x = rng.standard_normal((n, 2)) * env[:, None]
    x[rng.integers(0, n, 40)] *= 20
    x = (x / np.abs(x).max() * 10 ** (rng.uniform(0, 20) / 20)).astype(np.float32)
    y = _limit(x, -1.0, block=int(rng.integers(100, 20000)), lookahead_ms=float(rng.uniform(0.5, 5)),
               release_ms=float(rng.uniform(10, 500)))
    assert true_peak_dbtp(y, FS) <= -1.0 + 1e-4


def test_quiet_signal_passes_unchanged_and_aligned() -> None:
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((FS, 2))).astype(np.float32)
    y = _limit(x, -1.0)
    assert np.array_equal(y, x)


def test_limiting_is_transparent_away_from_peaks() -> None:
    t = np.arange(FS * 2) / FS
    x = (0.3 * np.sin(2 * np.pi * 440 * t))[:, None].repeat(2, 1).astype(np.float32)
    x[FS, :] = 1.5  # one spike
    y = _limit(x, -1.0, release_ms=50.0)
    far = slice(int(1.5 * FS), None)  # 0.5 s after the spike: fully released
    assert np.max(np.abs(y[far] - x[far])) < 1e-3
    early = slice(0, FS - 200)
    assert np.array_equal(y[early], x[early])


def test_chunked_equals_whole_and_json_state_resumes() -> None:
    x = _signals()["music-like +12 dB"].astype(np.float32)
    whole = _limit(x, -1.0, block=x.shape[0] + 1000)
    chunked = _limit(x, -1.0, block=4097)
    d = (whole - chunked).astype(np.float64)
    assert 10 * np.log10(np.sum(d ** 2) / np.sum(whole.astype(np.float64) ** 2) + 1e-30) < -100
    lim = TruePeakLimiter()
    lim.reset(FS, 2, {"tp_db": -1.0})
    _, st = lim.process(x[:30000], None)
    b1, _ = lim.process(x[30000:60000], st)
    lim2 = TruePeakLimiter()  # another machine picks up the JSON state
    lim2.reset(FS, 2, {"tp_db": -1.0})
    b2, _ = lim2.process(x[30000:60000], json.loads(json.dumps(st)))
    assert np.array_equal(b1, b2)


def test_gain_reduction_is_reported() -> None:
    x = _signals()["full-scale square"].astype(np.float32)
    lim = TruePeakLimiter()
    lim.reset(FS, 2, {"tp_db": -3.0})
    lim.process(x, None)
    gr = lim.last_gain_reduction_db
    assert gr.shape == (x.shape[0],)
    assert 4.0 < float(gr.max()) < 6.0  # the square's true peak is about +1.9 dBTP
