"""Benchmark cases: real music from Debian packages, synthetic signals and espeak-ng speech, styled
with the independent chain S of :mod:`bench.style`.

Case types (as in the DeepAFx-ST evaluation; A and B are non-overlapping excerpts of one recording):

| type | reference | target | truth | modes |
| --- | --- | --- | --- | --- |
| style_transfer | S(B) | A | S(A) | A |
| restore | A | S(A) | A | A |
| cross_song | song X | song Y | none (compare with the reference's long-term spectrum) | A |
| synthetic | S(B) | A | S(A) (pink noise, harmonic tones) | A |
| b_ref_wetter | S_B(B) (S with compressor and/or reverb) | A | S_B(A) | A, B |
| b_target_wetter | A | S_B(A) | A | A, B |
| voice_ref_wetter | S_B(speech X) | dry speech Y (same voice) | S_B(Y) | A, B |
| voice_target_wetter | dry speech X | S_B(speech Y) | Y | A, B |

Every excerpt is normalised to -23 LUFS before S. Files are float32 WAV at 44.1 kHz (music stereo,
speech mono) under ``bench/.work/casesets/<settings key>/<case_id>/`` with a ``manifest.json`` (one
folder per set of settings, so runs with different settings never touch each other's files); nothing is
committed.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf
import soxr

from bench.style import apply_style, sample_style

SAMPLE_RATE_HZ = 44100
SOURCE_LUFS = -23.0
BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
MUSIC_PACKAGES = ("hyperrogue-music", "singularity-music")

MUSIC_TYPES = ("style_transfer", "restore", "cross_song", "synthetic")
MODE_B_TYPES = ("b_ref_wetter", "b_target_wetter", "voice_ref_wetter", "voice_target_wetter")

# Speech texts for espeak-ng, written for this benchmark (about 20 s each at 160 words per minute).
SPEECH_TEXTS = (
    "Welcome back to the show. Today we are talking about the small decisions that shape a recording: "
    "where the microphone sits, how loud the room is, and how much of the space you want the listener "
    "to hear. None of these choices is right or wrong on its own.",
    "The harbour was quiet before sunrise. A few boats moved out past the lighthouse, their engines low "
    "and steady, while the gulls waited on the wall. By seven the market was open and the first crates "
    "of fish were already stacked along the quay.",
    "If you are following along at home, open the settings panel and choose the second option from the "
    "list. Then press the green button, wait for the light to stop blinking, and check that the display "
    "shows the new number before you continue.",
    "Our next guest has spent twenty years building instruments by hand. She starts every guitar with a "
    "single piece of spruce, and she says the wood tells her when it is ready. Each one takes about three "
    "months, from the first cut to the final string.",
    "Weather for the coming week looks mild, with light winds from the west and a chance of showers on "
    "Thursday afternoon. Temperatures will stay close to the seasonal average, and the weekend should be "
    "dry and bright across most of the region.",
    "Chapter four. The train left the city late, and by the time it crossed the river the lamps in the "
    "carriages had been lit. Anna watched the fields go by and tried to remember the last time she had "
    "travelled this way, alone, with nowhere in particular to be.",
    "Before we finish, a quick reminder about next month's meeting. It will be held in the library hall "
    "instead of the usual room, starting half an hour earlier than normal. Please bring your notes and "
    "any questions you would like the committee to answer.",
    "The experiment was simple. We played the same sentence in twelve different rooms and asked people "
    "to guess the size of each space. Most listeners were surprisingly accurate, even when the recording "
    "was short and the room was mostly empty.",
)
VOICES = ("en-us", "en-gb+m3", "en-us+f3", "en-gb-scotland+f2")


@dataclass(frozen=True)
class Source:
    path: str
    duration_s: float
    sample_rate_hz: int


# --- sources -------------------------------------------------------------------------------------


def find_music_files(min_duration_s: float = 45.0) -> list[Source]:
    """Music files of the Debian packages (``dpkg -L``), at least ``min_duration_s`` long, sorted."""
    out: list[Source] = []
    for pkg in MUSIC_PACKAGES:
        try:
            listing = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise RuntimeError(f"Debian package {pkg} is not installed: run bench/setup.sh") from exc
        for line in listing.splitlines():
            if "/music/" in line and line.endswith((".ogg", ".flac", ".wav", ".mp3")):
                info = sf.info(line)
                if info.duration >= min_duration_s:
                    out.append(Source(line, float(info.duration), int(info.samplerate)))
    if not out:
        raise RuntimeError("no music files found in " + ", ".join(MUSIC_PACKAGES))
    return sorted(out, key=lambda s: s.path)


def read_excerpt(src: Source, start_s: float, duration_s: float) -> np.ndarray:
    """Decode [start_s, start_s + duration_s) of ``src`` as float64 stereo at 44.1 kHz."""
    start = int(start_s * src.sample_rate_hz)
    stop = start + math.ceil(duration_s * src.sample_rate_hz)
    x, sr = sf.read(src.path, start=start, stop=stop, dtype="float64", always_2d=True)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    if sr != SAMPLE_RATE_HZ:
        x = soxr.resample(x, sr, SAMPLE_RATE_HZ, quality="VHQ")
    return x[: round(duration_s * SAMPLE_RATE_HZ)]


def normalise_lufs(x: np.ndarray, target_lufs: float = SOURCE_LUFS) -> np.ndarray:
    meter = pyloudnorm.Meter(SAMPLE_RATE_HZ)
    lufs = meter.integrated_loudness(x if x.shape[1] > 1 else x[:, 0])
    if not math.isfinite(lufs):
        raise ValueError("silent excerpt")
    return x * 10.0 ** ((target_lufs - lufs) / 20.0)


def render_speech(text: str, voice: str, out_dir: Path) -> np.ndarray:
    """espeak-ng speech rendered to WAV, resampled to 44.1 kHz mono float64 (frames, 1)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: run bench/setup.sh")
    out_dir.mkdir(parents=True, exist_ok=True)
    wav = out_dir / f"speech_{hashlib.sha1((voice + text).encode()).hexdigest()[:12]}.wav"
    subprocess.run([exe, "-v", voice, "-s", "160", "-w", str(wav), text], check=True, capture_output=True)
    x, sr = sf.read(wav, dtype="float64", always_2d=True)
    wav.unlink()
    return soxr.resample(x, sr, SAMPLE_RATE_HZ, quality="VHQ")


# --- synthetic signals ------------------------------------------------------------------------------


def pink_noise(seed: int, duration_s: float, correlation: float = 0.6) -> np.ndarray:
    """Stereo pink (1/f power) noise; ``correlation`` = share of a common component in L and R."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * SAMPLE_RATE_HZ)
    white = rng.standard_normal((n, 3))
    spec = np.fft.rfft(white, axis=0)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ)
    shape = np.where(f > 0, 1.0 / np.sqrt(np.maximum(f, 20.0)), 0.0)
    pink = np.fft.irfft(spec * shape[:, None], n=n, axis=0)
    c = math.sqrt(correlation)
    s = math.sqrt(1.0 - correlation)
    return np.stack([c * pink[:, 0] + s * pink[:, 1], c * pink[:, 0] + s * pink[:, 2]], axis=1)


def harmonic_tones(seed: int, duration_s: float) -> np.ndarray:
    """Stereo sequence of notes (2..3 voices), each 12 harmonics at 1/n amplitude with a decay
    envelope, panned at random: a stand-in for a simple synthesiser part."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * SAMPLE_RATE_HZ)
    out = np.zeros((n, 2))
    t_note = np.arange(int(1.25 * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    env = np.minimum(t_note / 0.01, 1.0) * np.exp(-t_note * 2.5)
    h = np.arange(1, 13)[:, None]
    for voice in range(int(rng.integers(2, 4))):
        for start in np.arange(0.0, duration_s - 1.25, 0.625 * (voice + 1)):
            midi = int(rng.integers(36 + 12 * voice, 60 + 12 * voice))
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            harmonics = np.where(h * f0 < 0.45 * SAMPLE_RATE_HZ, 1.0 / h, 0.0)
            phase = rng.uniform(0, 2 * np.pi, (12, 1))
            note = (harmonics * np.sin(2 * np.pi * f0 * h * t_note[None, :] + phase)).sum(0)
            note *= env
            pan = rng.uniform(0.15, 0.85)
            i0 = int(start * SAMPLE_RATE_HZ)
            seg = slice(i0, i0 + len(note))
            out[seg, 0] += note[: n - i0] * math.cos(pan * math.pi / 2)
            out[seg, 1] += note[: n - i0] * math.sin(pan * math.pi / 2)
    return out


# --- case building ----------------------------------------------------------------------------------


def _write(path: Path, x: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(x, dtype=np.float32), SAMPLE_RATE_HZ, subtype="FLOAT")
    return str(path)


def _two_excerpts(src: Source, rng: np.random.Generator, excerpt_s: float) -> tuple[float, float]:
    """Start times of two non-overlapping excerpts (A in the first half, B in the second)."""
    half = src.duration_s / 2.0
    lo = min(5.0, max(0.0, half - excerpt_s))
    a = float(rng.uniform(lo, max(lo, half - excerpt_s)))
    b = float(rng.uniform(half, max(half, src.duration_s - excerpt_s - 0.5)))
    return round(a, 2), round(b, 2)


def caseset_dir(settings: dict) -> Path:
    """``bench/.work/casesets/n8_20s_seed2026_<hash of the types>``: one folder per settings."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return (WORK_DIR / "casesets"
            / f"n{settings['n_per_type']}_{settings['excerpt_s']:g}s_seed{settings['seed']}_{digest}")


def build_cases(n_per_type: int = 8, excerpt_s: float = 20.0, seed: int = 2026,
                types: tuple[str, ...] = MUSIC_TYPES + MODE_B_TYPES, work_dir: Path | None = None,
                force: bool = False) -> list[dict]:
    """Write the cases' audio and return the manifest (list of case dicts). Deterministic for a given
    (n_per_type, excerpt_s, seed, types); reuses ``manifest.json`` when it was built with the same
    settings."""
    settings = {"n_per_type": n_per_type, "excerpt_s": excerpt_s, "seed": seed, "types": list(types),
                "version": 1}
    work_dir = work_dir or caseset_dir(settings)
    manifest_path = work_dir / "manifest.json"
    if not force and manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("settings") == settings and all(Path(c["target"]).exists() for c in old["cases"]):
            return old["cases"]
    if work_dir.exists():
        shutil.rmtree(work_dir)
    rng = np.random.default_rng(seed)
    need_music = any(t in types for t in ("style_transfer", "restore", "cross_song", "b_ref_wetter",
                                          "b_target_wetter"))
    songs = find_music_files(min_duration_s=2 * excerpt_s + 6.0) if need_music else []
    cases: list[dict] = []
    style_seed = seed * 1000

    def song_pair_cycle(k: int) -> Source:
        return songs[k % len(songs)]

    song_k = int(rng.integers(0, 1000))
    for ctype in types:
        for i in range(n_per_type):
            style_seed += 1
            cid = f"{ctype}_{i:02d}"
            d = work_dir / cid
            case: dict = {"id": cid, "type": ctype, "modes": ["A", "B"] if ctype in MODE_B_TYPES else ["A"],
                          "truth": None}
            if ctype in ("style_transfer", "restore", "b_ref_wetter", "b_target_wetter"):
                song_k += 1
                src = song_pair_cycle(song_k)
                a_s, b_s = _two_excerpts(src, rng, excerpt_s)
                A = normalise_lufs(read_excerpt(src, a_s, excerpt_s))
                case["sources"] = {"song": src.path, "a_start_s": a_s, "b_start_s": b_s}
                if ctype.startswith("b_"):
                    which = i % 3  # compressor only, reverb only, both
                    style = sample_style(style_seed, compressor=which != 1, reverb=which != 0)
                else:
                    style = sample_style(style_seed)
                case["style"] = style
                if ctype in ("style_transfer", "b_ref_wetter"):
                    B = normalise_lufs(read_excerpt(src, b_s, excerpt_s))
                    case["reference"] = _write(d / "reference.wav", apply_style(B, SAMPLE_RATE_HZ, style))
                    case["target"] = _write(d / "target.wav", A)
                    case["truth"] = _write(d / "truth.wav", apply_style(A, SAMPLE_RATE_HZ, style))
                else:
                    case["reference"] = _write(d / "reference.wav", A)
                    case["target"] = _write(d / "target.wav", apply_style(A, SAMPLE_RATE_HZ, style))
                    case["truth"] = _write(d / "truth.wav", A)
            elif ctype == "cross_song":
                song_k += 1
                x_src = songs[song_k % len(songs)]
                y_src = songs[(song_k + len(songs) // 2 + 1) % len(songs)]
                x_s, _ = _two_excerpts(x_src, rng, excerpt_s)
                y_s, _ = _two_excerpts(y_src, rng, excerpt_s)
                # the reference gets its own level (-14..-20 LUFS) so the loudness match is exercised
                ref_lufs = float(rng.uniform(-20.0, -14.0))
                case["sources"] = {"reference": x_src.path, "reference_start_s": x_s, "target": y_src.path,
                                   "target_start_s": y_s, "reference_lufs": round(ref_lufs, 2)}
                case["reference"] = _write(d / "reference.wav",
                                           normalise_lufs(read_excerpt(x_src, x_s, excerpt_s), ref_lufs))
                case["target"] = _write(d / "target.wav", normalise_lufs(read_excerpt(y_src, y_s, excerpt_s)))
            elif ctype == "synthetic":
                gen = pink_noise if i % 2 == 0 else harmonic_tones
                sig_seed = int(rng.integers(0, 2**31 - 1))
                A = normalise_lufs(gen(sig_seed, excerpt_s))
                B = normalise_lufs(gen(sig_seed + 1, excerpt_s))
                style = sample_style(style_seed)
                case["style"] = style
                case["sources"] = {"signal": gen.__name__, "seed": sig_seed}
                case["reference"] = _write(d / "reference.wav", apply_style(B, SAMPLE_RATE_HZ, style))
                case["target"] = _write(d / "target.wav", A)
                case["truth"] = _write(d / "truth.wav", apply_style(A, SAMPLE_RATE_HZ, style))
            elif ctype in ("voice_ref_wetter", "voice_target_wetter"):
                voice = VOICES[i % len(VOICES)]
                tx = SPEECH_TEXTS[(2 * i) % len(SPEECH_TEXTS)]
                ty = SPEECH_TEXTS[(2 * i + 1) % len(SPEECH_TEXTS)]
                X = normalise_lufs(render_speech(tx, voice, work_dir / "_speech"))
                Y = normalise_lufs(render_speech(ty, voice, work_dir / "_speech"))
                which = i % 3
                style = sample_style(style_seed, compressor=which != 1, reverb=which != 0, voice=True)
                case["style"] = style
                case["sources"] = {"voice": voice, "reference_text": tx[:40], "target_text": ty[:40]}
                if ctype == "voice_ref_wetter":
                    case["reference"] = _write(d / "reference.wav", apply_style(X, SAMPLE_RATE_HZ, style))
                    case["target"] = _write(d / "target.wav", Y)
                    case["truth"] = _write(d / "truth.wav", apply_style(Y, SAMPLE_RATE_HZ, style))
                else:
                    case["reference"] = _write(d / "reference.wav", X)
                    case["target"] = _write(d / "target.wav", apply_style(Y, SAMPLE_RATE_HZ, style))
                    case["truth"] = _write(d / "truth.wav", Y)
            else:
                raise ValueError(f"unknown case type {ctype!r}")
            cases.append(case)
    shutil.rmtree(work_dir / "_speech", ignore_errors=True)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps({"settings": settings, "cases": cases}, indent=1))
    return cases


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="build the benchmark cases under bench/.work/cases")
    ap.add_argument("--n", type=int, default=8, help="cases per type")
    ap.add_argument("--excerpt-s", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    built = build_cases(a.n, a.excerpt_s, a.seed, force=a.force)
    print(f"{len(built)} cases in {Path(built[0]['target']).parent.parent}")
