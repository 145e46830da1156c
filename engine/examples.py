"""Deterministic, music-like example audio made here (no downloads): drums, bass, chords and a lead
line, mixed in stereo. :func:`write_example_pair` writes a bright, wide, loud "reference" and a dull,
narrow, quiet "target" (different tempo, key and seed), the pair the README quick start matches.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from engine.audio_io import write_audio


def _env(n: int, attack_s: float, decay_s: float, fs: int) -> np.ndarray:
    t = np.arange(n) / fs
    a = np.minimum(1.0, t / max(attack_s, 1e-4))
    return a * np.exp(-t / decay_s)


def _place(out: np.ndarray, sound: np.ndarray, at: int, gains: tuple[float, float]) -> None:
    end = min(out.shape[0], at + sound.shape[0])
    if end <= at:
        return
    s = sound[: end - at]
    out[at:end, 0] += gains[0] * s
    out[at:end, 1] += gains[1] * s


def synth_music(duration_s: float = 30.0, sample_rate_hz: int = 44100, *, seed: int = 0,
                tempo_bpm: float = 110.0, root_hz: float = 55.0) -> np.ndarray:
    """A stereo float32 ``(frames, 2)`` music-like excerpt (peak about -3 dBFS). Deterministic per
    arguments."""
    fs = int(sample_rate_hz)
    n = round(duration_s * fs)
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 2))
    beat = round(60.0 / tempo_bpm * fs)
    eighth = beat // 2
    t_kick = np.arange(int(0.35 * fs)) / fs
    kick = np.sin(2 * np.pi * (45 * t_kick + 60 * (1 - np.exp(-t_kick * 30)) / 30)) * np.exp(-t_kick * 9)
    snare_len = int(0.25 * fs)
    hp = butter(2, 6000, "highpass", fs=fs, output="sos")
    bp = butter(2, [200, 4000], "bandpass", fs=fs, output="sos")
    snare_env = _env(snare_len, 0.001, 0.06, fs)
    snares = [sosfilt(bp, rng.standard_normal(snare_len)) * snare_env for _ in range(4)]
    for k, at in enumerate(range(0, n, beat)):
        if k % 2 == 0:
            _place(out, 0.45 * kick, at, (1.0, 1.0))
        else:
            _place(out, 0.8 * snares[k % 4], at, (0.9, 1.1))
    hat_len = int(0.06 * fs)
    hats = [sosfilt(hp, rng.standard_normal(hat_len)) * _env(hat_len, 0.0005, 0.015, fs) for _ in range(8)]
    for k, at in enumerate(range(0, n, eighth)):
        pan = 0.3 * rng.uniform(-1, 1)
        _place(out, 0.3 * hats[k % 8], at, (1 - pan, 1 + pan))
    # bass: a saw-like tone (8 harmonics) following a 4-bar root pattern
    pattern = [0, 0, 7, 5, 3, 3, 10, 7]
    note_len = beat
    tn = np.arange(note_len) / fs
    bass_env = 0.25 * _env(note_len, 0.005, 0.4, fs)
    bass = {}
    for semi in set(pattern):
        f0 = root_hz * 2 ** (semi / 12)
        bass[semi] = bass_env * sum(np.sin(2 * np.pi * f0 * h * tn) / h for h in range(1, 9))
    for k, at in enumerate(range(0, n, note_len)):
        _place(out, bass[pattern[k % len(pattern)]], at, (1.0, 1.0))
    # chords: every bar, a triad with slow attack, spread left/right
    bar = 4 * beat
    tb = np.arange(bar) / fs
    chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (3, 7, 10)]
    chord_env = 0.08 * _env(bar, 0.08, 1.5, fs)
    voices = {}
    for chord in chords:
        for semi in chord:
            if semi not in voices:
                f = 4 * root_hz * 2 ** (semi / 12)
                voices[semi] = chord_env * sum(np.sin(2 * np.pi * f * h * tb + h) * 0.6 ** h
                                               for h in range(1, 6))
    for k, at in enumerate(range(0, n, bar)):
        for j, semi in enumerate(chords[k % len(chords)]):
            pan = (j - 1) * 0.6
            _place(out, voices[semi], at, (1 - pan, 1 + pan))
    # lead: a random walk over a pentatonic scale, eighth notes, vibrato
    scale = [0, 3, 5, 7, 10, 12, 15]
    idx = 3
    tl = np.arange(eighth) / fs
    lead_env = 0.07 * _env(eighth, 0.01, 0.25, fs)
    vib = 0.3 * np.sin(2 * np.pi * 5.5 * tl)
    leads = {}
    for semi in scale:
        ph = 2 * np.pi * 8 * root_hz * 2 ** (semi / 12) * tl + vib
        leads[semi] = lead_env * (np.sin(ph) + 0.3 * np.sin(2 * ph) + 0.1 * np.sin(3 * ph))
    for at in range(2 * bar, n, eighth):
        idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(scale) - 1))
        if rng.random() < 0.25:
            continue
        _place(out, leads[scale[idx]], at, (0.8, 1.2))
    # a little room: two short feedback delays per side
    for c, d_ms in ((0, 23.0), (1, 31.0)):
        d = int(d_ms * 1e-3 * fs)
        wet = np.zeros(n)
        wet[d:] = out[:-d, c] * 0.25
        wet[2 * d:] += out[:-2 * d, c] * 0.12
        out[:, c] += wet
    out /= max(1e-9, np.abs(out).max())
    return (out * 10 ** (-3 / 20)).astype(np.float32)


def _tilt(audio: np.ndarray, fs: int, *, low_db: float, high_db: float, width: float,
          level_db: float) -> np.ndarray:
    from engine.processors.eq import eq_sos
    sos = eq_sos([{"type": "low_shelf", "f_hz": 150.0, "q": 0.7, "gain_db": low_db},
                  {"type": "high_shelf", "f_hz": 4000.0, "q": 0.7, "gain_db": high_db}], fs)
    y = sosfilt(sos, audio.astype(np.float64), axis=0)
    mid, side = (y[:, 0] + y[:, 1]) / 2, (y[:, 0] - y[:, 1]) / 2 * width
    y = np.stack([mid + side, mid - side], axis=1)
    y *= 10 ** (level_db / 20) / max(1e-9, np.abs(y).max())
    return y.astype(np.float32)


def write_example_pair(folder: str | os.PathLike, *, duration_s: float = 30.0,
                       sample_rate_hz: int = 44100) -> dict[str, str]:
    """Write ``reference.wav`` (bright, wide, loud) and ``target.wav`` (dull, narrow, quiet, other
    music) into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fs = int(sample_rate_hz)
    ref = _tilt(synth_music(duration_s, fs, seed=1, tempo_bpm=124.0, root_hz=49.0), fs,
                low_db=2.0, high_db=4.0, width=1.3, level_db=-0.5)
    tgt = _tilt(synth_music(duration_s, fs, seed=2, tempo_bpm=96.0, root_hz=55.0), fs,
                low_db=-3.0, high_db=-6.0, width=0.8, level_db=-8.0)
    paths = {"reference": str(folder / "reference.wav"), "target": str(folder / "target.wav")}
    write_audio(paths["reference"], ref, fs, "wav24")
    write_audio(paths["target"], tgt, fs, "wav24")
    return paths
