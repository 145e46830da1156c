"""Quality metrics: signal distances on aligned signals and statistics distances on features."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from engine.errors import TonematchError
from engine.features import analyze_features
from engine.metrics import mel_distance_db, mrstft_distance, result_metrics

FS = 44100


def noise(seconds: float, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((int(seconds * FS), channels)) * 0.1).astype(np.float32)


def lowpassed(x: np.ndarray, coeff: float) -> np.ndarray:
    return lfilter([1 - coeff], [1, -coeff], x, axis=0).astype(np.float32)


def test_signal_distances_are_zero_for_identity_and_grow_with_the_difference() -> None:
    x = noise(3.0, 1)
    assert mrstft_distance(x, x, FS) == pytest.approx(0.0, abs=1e-9)
    assert mel_distance_db(x, x, FS) == pytest.approx(0.0, abs=1e-9)
    small, large = lowpassed(x, 0.2), lowpassed(x, 0.8)
    assert 0 < mrstft_distance(small, x, FS) < mrstft_distance(large, x, FS)
    assert 0 < mel_distance_db(small, x, FS) < mel_distance_db(large, x, FS)


def test_mel_distance_of_a_gain_is_the_gain_in_db() -> None:
    x = noise(2.0, 2)
    assert mel_distance_db(x * np.float32(10 ** (3 / 20)), x, FS) == pytest.approx(3.0, abs=0.01)


def test_mrstft_matches_its_definition_for_a_gain() -> None:
    """For y = g x: spectral convergence = |1 - g| ... relative to y: |g - 1| / g; log term = |ln g|."""
    x = noise(2.0, 3, channels=1)
    g = 2.0
    expected = abs(1 - 1 / g) + abs(np.log(g))
    assert mrstft_distance(x, x * np.float32(g), FS) == pytest.approx(expected, rel=1e-3)


def test_signal_distance_input_checks() -> None:
    with pytest.raises(TonematchError, match="channel"):
        mrstft_distance(noise(1, 1, 1), noise(1, 1, 2), FS)
    with pytest.raises(TonematchError, match="empty"):
        mel_distance_db(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), FS)


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    ref = noise(8.0, 4)
    other_music_same_style = noise(8.0, 5)  # different samples, same statistics
    darker = lowpassed(noise(8.0, 6), 0.7)
    return {
        "ref": analyze_features(ref, sample_rate_hz=FS),
        "same": analyze_features(other_music_same_style, sample_rate_hz=FS),
        "darker": analyze_features(darker, sample_rate_hz=FS),
    }


def test_result_metrics_compare_statistics(docs: dict[str, dict]) -> None:
    report = {"true_peak_dbtp": -1.2, "artifacts_rate": 0.001, "style_params": {"lufs": {"target_db": -14.0}}}
    good = result_metrics(docs["same"], docs["ref"], ceiling_dbtp=-1.0, render_report=report)
    bad = result_metrics(docs["darker"], docs["ref"], ceiling_dbtp=-1.0, render_report=report)
    assert set(good) >= {"stft_dist", "mel_dist", "lufs_err", "tp_db", "artifacts_rate"}
    assert good["stft_dist"] < 0.1 and good["mel_dist"] < 0.3  # same style, other samples
    assert bad["stft_dist"] > 5 * good["stft_dist"] and bad["mel_dist"] > 3.0
    assert good["tp_db"] == -1.2 and good["tp_over_db"] == 0.0 and good["artifacts_rate"] == 0.001
    lufs = docs["same"]["loudness"]["integrated_lufs"]
    assert good["lufs_err"] == pytest.approx(abs(lufs + 14.0), abs=1e-3)
    # without a requested target the reference's loudness is the target
    plain = result_metrics(docs["same"], docs["ref"], ceiling_dbtp=-1.0, render_report=None)
    ref_lufs = docs["ref"]["loudness"]["integrated_lufs"]
    assert plain["lufs_err"] == pytest.approx(abs(lufs - ref_lufs), abs=1e-3)
    assert plain["tp_db"] == docs["same"]["true_peak_dbtp"] and plain["artifacts_rate"] is None
    over = result_metrics(docs["same"], docs["ref"], ceiling_dbtp=-1.0,
                          render_report={"true_peak_dbtp": -0.4})
    assert over["tp_over_db"] == pytest.approx(0.6)
    assert result_metrics(docs["same"], docs["ref"], ceiling_dbtp=-1.0, render_report=report,
                          target_lufs=-20.0)["lufs_err"] == pytest.approx(abs(lufs + 20.0), abs=1e-3)


def test_result_metrics_gain_shows_in_distances(docs: dict[str, dict]) -> None:
    """A result 6 dB too quiet: mel distance ~6 dB, lufs_err ~6 LU."""
    quieter = analyze_features(noise(8.0, 5) * np.float32(0.5), sample_rate_hz=FS)
    m = result_metrics(quieter, docs["ref"], ceiling_dbtp=-1.0, render_report=None)
    assert m["mel_dist"] == pytest.approx(6.02, abs=0.3)
    assert m["lufs_err"] == pytest.approx(6.02, abs=0.3)


def test_result_metrics_ignore_bands_without_content() -> None:
    """A band-limited recording (nothing above 6 kHz) against itself with 16-bit-like noise at
    -100 dBFS in the empty octaves: the same sound, so the distances stay near zero (the empty bands
    read -150 dB in one and -100 dB in the other, which would dominate a plain mean)."""
    x = noise(8.0, 7)
    spec = np.fft.rfft(x, axis=0)
    spec[np.fft.rfftfreq(x.shape[0], 1 / FS) > 6000.0] = 0.0
    band_limited = np.fft.irfft(spec, n=x.shape[0], axis=0).astype(np.float32)
    floor = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    hiss = band_limited + np.float32(1e-5) * floor
    ref = analyze_features(band_limited, sample_rate_hz=FS)
    m = result_metrics(analyze_features(hiss, sample_rate_hz=FS), ref, ceiling_dbtp=-1.0, render_report=None)
    assert m["mel_dist"] < 0.5 and m["stft_dist"] < 0.1, m
    # content missing where the reference has it still counts in full
    dull = result_metrics(analyze_features(lowpassed(band_limited, 0.9), sample_rate_hz=FS), ref,
                          ceiling_dbtp=-1.0, render_report=None)
    assert dull["mel_dist"] > 3.0, dull


def test_result_metrics_reject_malformed_documents(docs: dict[str, dict]) -> None:
    with pytest.raises(TonematchError, match="stft"):
        result_metrics({"mel": docs["ref"]["mel"]}, docs["ref"], ceiling_dbtp=-1.0, render_report=None)
