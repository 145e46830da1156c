"""Impulse-response library the project generates itself (rooms, plates, halls, RT60 0.2..4 s).

An IR key names the response completely, for example ``"ir/hall_2.0s.wav"``: the kind (``room``,
``plate`` or ``hall``) and the broadband RT60 in seconds. The response is synthesised
deterministically from the key (the random generator is seeded with a hash of the canonical key), so
every machine makes the same file. Responses are wet-only (no direct sound), stereo (decorrelated
channels), energy-normalised (sum of squares = 1 per channel, so a wet signal is about as loud as the
dry one) and end 90 dB down (length 1.5 x RT60), so a convolution can never ring on.

Generated files are cached as float32 WAV at 48 kHz under the IR cache folder
(``$TONEMATCH_IR_DIR``, default ``~/.cache/tonematch``) at the key's path; ``load_ir`` resamples
(soxr, VHQ) to the rate asked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

from engine.errors import ParamsError

#: rate every IR is generated at; other rates are resampled from it
IR_BASE_RATE_HZ = 48000
KINDS = ("room", "plate", "hall")
RT60_MIN_S = 0.2
RT60_MAX_S = 4.0

#: the canonical library the estimator chooses from
LIBRARY: dict[str, tuple[float, ...]] = {
    "room": (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0),
    "plate": (0.8, 1.2, 1.6, 2.0, 2.5),
    "hall": (1.2, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0),
}

_KEY_RE = re.compile(r"ir/(room|plate|hall)_(\d+(?:\.\d{1,2})?)s\.wav")

# octave-band centres and, per kind, the band RT60 relative to the broadband RT60 (air and wall
# absorption shorten the highs; plates stay brighter).
_BAND_CENTRES_HZ = np.array([125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0])
_BAND_RT60_FACTOR = {
    "room": np.array([1.15, 1.1, 1.0, 1.0, 0.9, 0.75, 0.55, 0.4]),
    "plate": np.array([0.9, 1.0, 1.0, 1.0, 1.0, 0.95, 0.85, 0.7]),
    "hall": np.array([1.3, 1.2, 1.05, 1.0, 0.9, 0.7, 0.5, 0.35]),
}
_BAND_GAIN_DB = {
    "room": np.array([0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -4.0, -8.0]),
    "plate": np.array([-4.0, -2.0, 0.0, 0.0, 0.0, 0.0, -1.0, -3.0]),
    "hall": np.array([1.0, 1.0, 0.0, 0.0, -1.0, -3.0, -6.0, -10.0]),
}


def ir_key(kind: str, rt60_s: float) -> str:
    """The canonical key for a kind and RT60 (seconds), e.g. ``ir_key("hall", 2) == "ir/hall_2.0s.wav"``."""
    if kind not in KINDS:
        raise ParamsError(f"unknown impulse-response kind {kind!r}; one of {KINDS}", where="reverb.ir_key")
    return f"ir/{kind}_{_fmt_rt60(rt60_s)}s.wav"


def _fmt_rt60(rt60_s: float) -> str:
    text = f"{round(float(rt60_s), 2):.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def parse_ir_key(key: str) -> tuple[str, float]:
    """``(kind, rt60_s)`` of a key; raises ParamsError(where="reverb.ir_key") for a malformed one."""
    m = _KEY_RE.fullmatch(str(key))  # fullmatch: "...wav\n" would pass a $-anchored match
    if not m:
        raise ParamsError(
            f"unknown impulse response {key!r}: expected 'ir/<room|plate|hall>_<RT60>s.wav'",
            where="reverb.ir_key",
        )
    rt60_s = float(m.group(2))
    if not RT60_MIN_S <= rt60_s <= RT60_MAX_S:
        raise ParamsError(
            f"impulse response RT60 {rt60_s} s outside {RT60_MIN_S}..{RT60_MAX_S} s", where="reverb.ir_key"
        )
    return m.group(1), rt60_s


def library_keys() -> list[str]:
    """Every key of the canonical library, shortest RT60 first within a kind."""
    return [ir_key(kind, rt) for kind, rts in LIBRARY.items() for rt in rts]


def choose_ir_key(rt60_s: float) -> str:
    """The library IR closest in RT60 (log scale) to ``rt60_s``: rooms below 1 s, plates never
    (they are offered for presets), halls from 1.2 s."""
    rt60_s = float(np.clip(rt60_s, RT60_MIN_S, RT60_MAX_S))
    kind = "room" if rt60_s < 1.1 else "hall"
    rts = np.asarray(LIBRARY[kind])
    return ir_key(kind, float(rts[np.argmin(np.abs(np.log(rts / rt60_s)))]))


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def generate_ir(key: str, sample_rate_hz: int = IR_BASE_RATE_HZ) -> np.ndarray:
    """Synthesise the IR named by ``key`` at ``sample_rate_hz``; ``(frames, 2)`` float32.

    Band-split Gaussian noise with per-octave exponential decays, plus (rooms, halls) a sparse set of
    early reflections; deterministic from the key.
    """
    kind, rt60_s = parse_ir_key(key)
    fs = int(sample_rate_hz)
    rng = np.random.default_rng(_seed(f"{key}@{fs}"))
    n = max(round(1.5 * rt60_s * fs), 64)
    t = np.arange(n) / fs
    noise = rng.standard_normal((n, 2))
    out = np.zeros((n, 2))
    edges = np.sqrt(_BAND_CENTRES_HZ[:-1] * _BAND_CENTRES_HZ[1:])
    nyq = fs / 2
    for b in range(len(_BAND_CENTRES_HZ)):
        lo = edges[b - 1] if b > 0 else None
        hi = edges[b] if b < len(edges) else None
        if lo is not None and lo >= 0.95 * nyq:
            break
        if hi is not None and hi >= 0.95 * nyq:
            hi = None
        if lo is None:
            sos = signal.butter(4, hi, "lowpass", fs=fs, output="sos")
        elif hi is None:
            sos = signal.butter(4, lo, "highpass", fs=fs, output="sos")
        else:
            sos = signal.butter(4, [lo, hi], "bandpass", fs=fs, output="sos")
        band = signal.sosfiltfilt(sos, noise, axis=0)
        rt_b = rt60_s * _BAND_RT60_FACTOR[kind][b]
        env = np.exp(-6.907755 * t / rt_b)  # 60 dB energy decay over rt_b: amplitude 10^(-3 t/rt)
        out += band * (env * 10 ** (_BAND_GAIN_DB[kind][b] / 20))[:, None]
    # build-up: density grows over the first ms (plates almost at once)
    build_s = {"room": 0.004, "plate": 0.001, "hall": 0.012}[kind]
    out *= (1.0 - np.exp(-t / build_s))[:, None]
    if kind != "plate":
        n_refl = 12 if kind == "room" else 20
        span_s = min(0.08 if kind == "hall" else 0.03, 0.5 * rt60_s)
        times = np.sort(rng.uniform(0.002, span_s, size=(n_refl, 2)), axis=0)
        amps = rng.uniform(0.3, 1.0, size=(n_refl, 2)) * np.exp(-6.907755 * times / rt60_s)
        amps *= rng.choice([-1.0, 1.0], size=(n_refl, 2))
        idx = np.minimum((times * fs).astype(int), n - 1)
        level = 3.0 * np.sqrt(np.mean(out[: max(int(span_s * fs), 1)] ** 2))
        for ch in range(2):
            np.add.at(out[:, ch], idx[:, ch], amps[:, ch] * level * np.sqrt(fs / 48000.0) * 8)
    fade = max(int(0.05 * n), 16)
    out[-fade:] *= (0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade)))[:, None]
    out /= np.sqrt(np.sum(out**2, axis=0, keepdims=True))
    return out.astype(np.float32)


def ir_cache_dir() -> Path:
    """Folder under which generated IRs are cached at their key's path."""
    return Path(os.environ.get("TONEMATCH_IR_DIR") or Path.home() / ".cache" / "tonematch")


def ensure_ir_file(key: str) -> Path:
    """Path of the cached 48 kHz file for ``key``, generating it (atomically) when missing."""
    parse_ir_key(key)
    path = ir_cache_dir() / key
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    ir = generate_ir(key, IR_BASE_RATE_HZ)
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, ir, IR_BASE_RATE_HZ, subtype="FLOAT")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_ir(ir_key: str, sample_rate_hz: int) -> np.ndarray:
    """The IR ``ir_key`` at ``sample_rate_hz`` as ``(frames, 2)`` float32 (energy 1 per channel)."""
    path = ensure_ir_file(ir_key)
    ir, fs = sf.read(path, dtype="float32", always_2d=True)
    if fs != int(sample_rate_hz):
        ir = soxr.resample(ir, fs, int(sample_rate_hz), quality="VHQ").astype(np.float32)
        ir /= np.sqrt(np.sum(ir.astype(np.float64) ** 2, axis=0, keepdims=True)).astype(np.float32)
    return np.ascontiguousarray(ir, dtype=np.float32)


def ir_band_power_gain(key: str, freqs_hz: np.ndarray, sample_rate_hz: int = IR_BASE_RATE_HZ) -> np.ndarray:
    """Power gain (linear, averaged over the two channels) of the IR ``key`` in 1/12-octave bands
    centred at ``freqs_hz``: how much louder than the dry signal the wet one is, band by band
    (white noise in -> 1 on average, since IRs are energy-normalised)."""
    ir = load_ir(key, sample_rate_hz).astype(np.float64)
    power = np.mean(np.abs(np.fft.rfft(ir, axis=0)) ** 2, axis=1)
    bin_hz = sample_rate_hz / ir.shape[0]
    csum = np.concatenate([[0.0], np.cumsum(power)])
    f = np.asarray(freqs_hz, dtype=np.float64)
    lo = np.clip(np.floor(f * 2 ** (-1 / 24) / bin_hz).astype(int), 0, power.size - 1)
    hi = np.clip(np.ceil(f * 2 ** (1 / 24) / bin_hz).astype(int), lo + 1, power.size)
    return (csum[hi] - csum[lo]) / (hi - lo)
