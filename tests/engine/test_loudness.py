"""BS.1770-4 / EBU R128 meter: EBU Tech 3341 and 3342 cases generated here, plus cross-checks."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from engine.errors import TonematchError
from engine.loudness import LoudnessMeter, integrated_loudness_lufs, k_weighting_sos


def stereo_sine(segments: list[tuple[float, float]], fs: int, freq_hz: float = 1000.0) -> np.ndarray:
    """Concatenated 1 kHz stereo sine segments ``(level_dbfs, seconds)`` (continuous phase)."""
    levels = np.concatenate([np.full(round(d * fs), 10 ** (db / 20)) for db, d in segments])
    t = np.arange(levels.size) / fs
    x = (levels * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    return np.stack([x, x], axis=1)


def measure(x: np.ndarray, fs: int, block: int = 4801) -> LoudnessMeter:
    meter = LoudnessMeter(fs, x.shape[1])
    for i in range(0, len(x), block):  # odd block size: segment boundaries fall inside blocks
        meter.feed(x[i:i + block])
    return meter


TECH_3341 = {
    1: ([(-23, 20)], -23.0),
    2: ([(-33, 20)], -33.0),
    3: ([(-36, 10), (-23, 60), (-36, 10)], -23.0),
    4: ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),
    5: ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),
}


@pytest.mark.parametrize("fs", [44100, 48000])
@pytest.mark.parametrize("case", sorted(TECH_3341))
def test_tech_3341_integrated(case: int, fs: int) -> None:
    segments, expected = TECH_3341[case]
    meter = measure(stereo_sine(segments, fs), fs)
    assert meter.integrated_lufs() == pytest.approx(expected, abs=0.1)


def test_tech_3341_momentary_and_short_term_of_steady_tone() -> None:
    meter = measure(stereo_sine([(-23, 20)], 48000), 48000)
    m, s = meter.momentary_lufs(), meter.short_term_lufs()
    assert len(m) == 200 - 3 and len(s) == 200 - 29  # complete windows at 10 Hz
    np.testing.assert_allclose(m, -23.0, atol=0.1)
    np.testing.assert_allclose(s, -23.0, atol=0.1)
    assert meter.momentary_max_lufs() == pytest.approx(-23.0, abs=0.1)


TECH_3342 = {
    1: ([(-20, 20), (-30, 20)], 10.0),
    2: ([(-20, 20), (-15, 20)], 5.0),
    3: ([(-40, 20), (-20, 20)], 20.0),
    4: ([(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
}


@pytest.mark.parametrize("case", sorted(TECH_3342))
def test_tech_3342_loudness_range(case: int) -> None:
    segments, expected = TECH_3342[case]
    meter = measure(stereo_sine(segments, 48000), 48000)
    assert meter.loudness_range_lu() == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("fs", [32000, 44100, 88200, 96000])
@pytest.mark.parametrize("freq_hz", [60.0, 997.0, 8000.0])
def test_sample_rate_independent(fs: int, freq_hz: float) -> None:
    """The same program at another rate reads the same (filters derived by bilinear transform);
    60 Hz exercises the RLB high-pass, 8 kHz the shelf. The bilinear transform of one analog
    prototype deviates from the 48 kHz response by up to ~0.03 dB between 32 and 96 kHz."""

    def tone(rate: int) -> np.ndarray:
        x = stereo_sine([(-18, 10)], rate, freq_hz)
        x[: rate // 2] *= np.linspace(0, 1, rate // 2, dtype=np.float32)[:, None]  # no onset transient
        return x

    ref = measure(tone(48000), 48000).integrated_lufs()
    assert measure(tone(fs), fs).integrated_lufs() == pytest.approx(ref, abs=0.05)


def test_k_weighting_matches_bs1770_48k_coefficients() -> None:
    sos = k_weighting_sos(48000)
    # ITU-R BS.1770-4 table 1 and 2 (48 kHz).
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
    np.testing.assert_allclose(sos[0, 4:], [-1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(sos[1, 4:], [-1.99004745483398, 0.99007225036621], atol=1e-8)


def test_noise_agrees_with_pyloudnorm() -> None:
    rng = np.random.default_rng(7)
    # Pink-ish stereo noise with a level change, so both gates act.
    white = rng.standard_normal((48000 * 40, 2))
    spec = np.fft.rfft(white, axis=0)
    spec /= np.sqrt(np.maximum(np.arange(spec.shape[0]), 1))[:, None]
    x = np.fft.irfft(spec, n=white.shape[0], axis=0)
    x *= 0.1 / x.std()
    x[: 48000 * 15] *= 0.05
    x = x.astype(np.float32)
    ours = integrated_loudness_lufs(x, 48000)
    # Same analog prototype as ours (De Man's derivation): agreement to rounding.
    assert ours == pytest.approx(
        pyloudnorm.Meter(48000, filter_class="DeMan").integrated_loudness(x.astype(np.float64)), abs=0.01)
    # pyloudnorm's default filter is a slightly different approximation of K-weighting.
    assert ours == pytest.approx(pyloudnorm.Meter(48000).integrated_loudness(x.astype(np.float64)), abs=0.05)


def test_gain_shifts_loudness_exactly() -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((44100 * 8, 2)) * 0.05).astype(np.float32)
    a = integrated_loudness_lufs(x, 44100)
    b = integrated_loudness_lufs(x * np.float32(10 ** (6 / 20)), 44100)
    assert b - a == pytest.approx(6.0, abs=1e-3)


def test_block_size_does_not_matter() -> None:
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((44100 * 6, 2)) * 0.05).astype(np.float32)
    x[44100 * 2:] *= 0.2
    ref = measure(x, 44100, block=len(x))
    for block in (1, 100, 4410, 65536):
        m = measure(x, 44100, block=block) if block > 1 else measure(x[:8820], 44100, block=1)
        if block == 1:  # sample-by-sample: same segment energies as one big block
            one = measure(x[:8820], 44100, block=len(x))
            np.testing.assert_allclose(m.momentary_lufs(), one.momentary_lufs(), atol=1e-4)
            continue
        assert m.integrated_lufs() == pytest.approx(ref.integrated_lufs(), abs=1e-4)
        np.testing.assert_allclose(m.short_term_lufs(), ref.short_term_lufs(), atol=1e-4)


def test_silence_and_short_input() -> None:
    assert integrated_loudness_lufs(np.zeros((48000 * 2, 2), np.float32), 48000) is None
    assert integrated_loudness_lufs(np.full((1000, 1), 0.1, np.float32), 48000) is None  # < 400 ms
    meter = measure(np.zeros((48000 * 4, 1), np.float32), 48000)
    assert meter.loudness_range_lu() is None and meter.short_term_max_lufs() is None
    assert np.all(np.isneginf(meter.short_term_lufs()))


def test_mono_input_and_bad_shapes() -> None:
    x = stereo_sine([(-20, 3)], 48000)[:, :1]
    assert integrated_loudness_lufs(x, 48000) == pytest.approx(-23.0, abs=0.1)  # one channel: -3 dB
    with pytest.raises(TonematchError, match="channels"):
        LoudnessMeter(48000, 3)
    with pytest.raises(TonematchError, match="expected"):
        LoudnessMeter(48000, 2).feed(np.zeros((10, 1), np.float32))


def test_a_dc_offset_adds_no_loudness() -> None:
    """BS.1770's high-pass gives DC no loudness; the filter's start from rest turned a file that
    starts on an offset into a step, which read as sound (a constant 0.3 read -33 LUFS)."""
    fs = 48000
    t = np.arange(10 * fs) / fs
    tone = 0.1 * np.sin(2 * np.pi * 1000 * t + 0.3)
    plain = integrated_loudness_lufs(np.stack([tone, tone], 1), fs)
    offset = integrated_loudness_lufs(np.stack([tone + 0.3, tone - 0.2], 1), fs)
    assert offset == pytest.approx(plain, abs=0.001)
    assert integrated_loudness_lufs(np.full((10 * fs, 2), 0.3), fs) is None
