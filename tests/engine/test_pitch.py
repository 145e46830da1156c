"""Pitch shifter: whole semitones land within 1 cent, length kept, spectrum like a real tone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import ParamsError
from engine.processors.pitch import PitchShifter

FS = 48000
F0_HZ = 220.0
N_HARM = 8


def harmonic_tone(f0_hz: float, seconds: float = 3.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    x = sum((0.5 / h) * np.sin(2 * np.pi * h * f0_hz * t + h) for h in range(1, N_HARM + 1))
    return np.repeat(np.asarray(x, np.float32)[:, None], channels, axis=1)


def shift(x: np.ndarray, semitones: int, chunk: int = 7000) -> tuple[np.ndarray, int]:
    p = PitchShifter()
    p.reset(FS, x.shape[1], {"semitones": semitones})
    st, outs = None, []
    for i in range(0, len(x), chunk):
        y, st = p.process(x[i : i + chunk], st)
        st = json.loads(json.dumps(st))
        outs.append(y)
    # flush the latency with silence, then drop it: output aligned with the input, same length
    y, _ = p.process(np.zeros((p.latency_frames, x.shape[1]), np.float32), st)
    outs.append(y)
    return np.concatenate(outs)[p.latency_frames :], p.latency_frames


def _spectrum(y: np.ndarray, n_fft: int = 1 << 21) -> tuple[np.ndarray, np.ndarray]:
    w = y[:, 0].astype(np.float64) * np.hanning(len(y))
    return np.abs(np.fft.rfft(w, n_fft)), np.fft.rfftfreq(n_fft, 1 / FS)


def measure_f0_hz(y: np.ndarray, guess_hz: float) -> float:
    """Fundamental by a zero-padded FFT peak with log-parabolic interpolation (~0.01 cent)."""
    S, f = _spectrum(y)
    lo, hi = np.searchsorted(f, [guess_hz * 0.95, guess_hz * 1.05])
    k = lo + int(np.argmax(S[lo:hi]))
    a, b, c = np.log(S[k - 1 : k + 2])
    return float((k + 0.5 * (a - c) / (a - 2 * b + c)) * FS / (2 * (len(S) - 1)))


def harmonic_levels_db(y: np.ndarray, f0_hz: float) -> np.ndarray:
    S, f = _spectrum(y)
    levels = []
    for h in range(1, N_HARM + 1):
        lo, hi = np.searchsorted(f, [h * f0_hz * 0.99, h * f0_hz * 1.01])
        levels.append(20 * np.log10(S[lo:hi].max()))
    return np.array(levels)


def spectral_distance_db(y: np.ndarray, ref: np.ndarray, f0_hz: float) -> float:
    """RMS difference (dB) of the harmonic levels of ``y`` and ``ref``."""
    return float(np.sqrt(np.mean((harmonic_levels_db(y, f0_hz) - harmonic_levels_db(ref, f0_hz)) ** 2)))


@pytest.mark.parametrize("semitones", [-3, -2, -1, 1, 2, 3])
def test_shift_lands_within_one_cent_and_matches_a_real_tone(semitones):
    x = harmonic_tone(F0_HZ)
    y, _ = shift(x, semitones)
    assert y.shape == x.shape
    expected = F0_HZ * 2 ** (semitones / 12)
    core = slice(FS // 2, len(y) - FS // 2)
    cents = 1200 * np.log2(measure_f0_hz(y[core], expected) / expected)
    assert abs(cents) < 1.0
    dist = spectral_distance_db(y[core], harmonic_tone(expected)[core], expected)
    print(f"semitones {semitones:+d}: {cents:+.4f} cent, harmonic-level distance {dist:.2f} dB")
    assert dist < 1.0
    # energy outside the harmonics stays far below them (no phasiness / smearing noise)
    S, f = _spectrum(y[core], 1 << 18)
    near = np.min(np.abs(f[:, None] - expected * np.arange(1, N_HARM + 1)[None, :]), axis=1) < 15.0
    assert 10 * np.log10(np.sum(S[~near] ** 2) / np.sum(S[near] ** 2)) < -30


def test_stereo_chunking_does_not_change_the_output():
    x = harmonic_tone(150.0, 2.0, channels=2)
    x[:, 1] *= 0.5
    a, _ = shift(x, 2, chunk=4096)
    b, _ = shift(x, 2, chunk=10007)
    assert np.max(np.abs(a - b)) < 1e-5
    assert np.max(np.abs(a[:, 1] - 0.5 * a[:, 0])) < 1e-4  # one region map: image kept


def test_zero_semitones_is_bypass_and_silence_stays_silent():
    x = harmonic_tone(300.0, 1.0)
    p = PitchShifter()
    p.reset(FS, 1, {"semitones": 0})
    y, _ = p.process(x, None)
    assert np.array_equal(y, x) and p.latency_frames == 0
    y, _ = shift(np.zeros((FS, 1), np.float32), 3)
    assert np.all(y == 0)


@pytest.mark.parametrize("bad", [4, -4, 1.5, "2", None, True])
def test_bad_semitones_are_refused(bad):
    with pytest.raises(ParamsError) as err:
        PitchShifter().reset(FS, 1, {"semitones": bad})
    assert err.value.where == "pitch.semitones"
