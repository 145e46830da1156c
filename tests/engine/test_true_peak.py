"""True-peak meter (BS.1770-4 Annex 2, 4x oversampling) on known inter-sample peaks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from engine.errors import TonematchError
from engine.true_peak import GAIN_BOUND, TruePeakMeter, TruePeakOversampler, true_peak_dbtp


def faded(x: np.ndarray, fade: int = 4800) -> np.ndarray:
    """Fade in and out so an abrupt start or end (which really overshoots) does not dominate."""
    ramp = np.minimum(1.0, np.minimum(np.arange(len(x)), np.arange(len(x))[::-1]) / fade)
    return (x * ramp).astype(np.float32)


def test_quarter_rate_sine_at_45_degrees() -> None:
    """Samples of sin(pi/2 n + pi/4) peak at 0.707 (-3.01 dB); the waveform peaks at 1.0 (0 dBTP)."""
    n = np.arange(48000)
    x = faded(np.sin(np.pi / 2 * n + np.pi / 4))
    assert 20 * math.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x, 48000) == pytest.approx(0.0, abs=0.2)
    assert true_peak_dbtp(np.stack([0.5 * x, x], axis=1), 48000) == pytest.approx(0.0, abs=0.2)


@pytest.mark.parametrize("freq_hz", [997.0, 5000.0, 11025.0, 15000.0, 17000.0])
@pytest.mark.parametrize("phase", [0.0, 0.3, 0.785])
def test_sines_read_their_amplitude(freq_hz: float, phase: float) -> None:
    fs = 44100
    n = np.arange(fs)
    x = faded(0.5 * np.sin(2 * np.pi * freq_hz / fs * n + phase))
    # 4x oversampling may under-read by up to cos(2 pi f / fs / 8) (peak between two phases).
    worst_db = 20 * math.log10(math.cos(2 * math.pi * freq_hz / fs / 8))
    got = true_peak_dbtp(x, fs) - 20 * math.log10(0.5)
    assert worst_db - 0.05 <= got <= 0.05


def test_true_peak_never_below_sample_peak_and_detects_overs() -> None:
    """A full-scale square-ish alternating pattern with a step reaches above 0 dBFS between samples."""
    x = np.zeros(4000, np.float32)
    x[1000:1004] = [1.0, 1.0, -1.0, -1.0]  # sharp transitions ring above full scale
    assert true_peak_dbtp(x, 48000) > 0.5
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((20000, 2)) * 0.2).astype(np.float32)
    assert true_peak_dbtp(y, 48000) >= 20 * math.log10(np.abs(y).max())


def full_envelope(x: np.ndarray, block: int, floor: float | None = None) -> np.ndarray:
    os_ = TruePeakOversampler(x.shape[1])
    parts = [os_.process(x[i:i + block], floor=floor) for i in range(0, len(x), block)]
    return np.concatenate([*parts, os_.flush(floor=floor)])


def test_fast_paths_equal_full_oversampling() -> None:
    """Skipping rows by the documented bound gives the same true peak as oversampling everything."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((48000 * 3, 2)) * 0.05).astype(np.float32)
    x[70000:70400] *= 8  # a loud burst somewhere
    env = full_envelope(x, 48000 * 3)
    expected = 20 * math.log10(env.max())
    assert true_peak_dbtp(x, 48000) == pytest.approx(expected, abs=1e-4)
    meter = TruePeakMeter(48000, 2)
    for i in range(0, len(x), 7000):
        meter.feed(x[i:i + 7000])
    assert meter.true_peak_dbtp() == pytest.approx(expected, abs=1e-4)
    # With a floor, everything that can exceed it is exact, and nothing is over-estimated.
    floor = 0.2
    env_f = full_envelope(x, 4096, floor=floor)
    hot = env > floor
    np.testing.assert_allclose(env_f[hot], env[hot], rtol=1e-5)
    assert np.all(env_f <= env * (1 + 1e-5))
    assert np.all(env_f >= np.abs(np.concatenate([np.zeros((TruePeakOversampler.latency_frames, 2)), x]))
                  .max(axis=1) - 1e-7)


def test_envelope_is_aligned_and_block_size_independent() -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((10000, 2)) * 0.1).astype(np.float32)
    a = full_envelope(x, 10000)
    b = full_envelope(x, 333)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    lat = TruePeakOversampler.latency_frames
    assert a.shape == (10000 + lat,)
    # output k describes input frame k - latency: an impulse shows up latency frames later
    imp = np.zeros((2000, 1), np.float32)
    imp[500] = 0.9
    env = full_envelope(imp, 2000)
    assert int(np.argmax(env)) == 500 + lat
    assert env[500 + lat] == pytest.approx(0.9, abs=1e-6)


def test_state_round_trips_through_json() -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6000, 2)) * 0.1).astype(np.float32)
    one = TruePeakOversampler(2)
    whole = np.concatenate([one.process(x[:3000]), one.process(x[3000:])])
    first = TruePeakOversampler(2)
    head = first.process(x[:3000])
    state = json.loads(json.dumps(first.state()))
    second = TruePeakOversampler(2)
    second.load_state(state)
    np.testing.assert_array_equal(np.concatenate([head, second.process(x[3000:])]), whole)
    with pytest.raises(TonematchError, match="history"):
        second.load_state({"history": [[0.0]]})


def test_silence_bad_input_and_bound() -> None:
    assert true_peak_dbtp(np.zeros((1000, 2), np.float32), 48000) == -math.inf
    with pytest.raises(TonematchError, match="NaN"):
        true_peak_dbtp(np.array([0.0, np.nan, 0.1], np.float32), 48000)
    with pytest.raises(TonematchError, match="expected"):
        TruePeakOversampler(2).process(np.zeros((10, 3), np.float32))
    assert 1.0 < GAIN_BOUND < 2.5
