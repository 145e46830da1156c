"""Quick checks of the benchmark's own helpers (the style chain S and the metrics): if these are wrong,
every figure in docs/BENCHMARKS.md is wrong. The benchmark itself is not run by the test suite."""

from __future__ import annotations

import numpy as np
from scipy import signal

from bench import metrics
from bench.style import apply_style, compress, rbj_sos, sample_style

SR = 44100


def _noise(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(int(seconds * SR))
    return 0.1 * np.stack([common + 0.5 * rng.standard_normal(common.size),
                           common + 0.5 * rng.standard_normal(common.size)], axis=1)


def test_style_chain_is_seeded_and_in_range():
    assert sample_style(11, compressor=None, reverb=None) == sample_style(11, compressor=None, reverb=None)
    assert sample_style(11) != sample_style(12)
    for seed in range(40):
        s = sample_style(seed, compressor=None, reverb=None)
        assert 2 <= len(s["eq"]) <= 5
        assert all(3.0 <= abs(b["gain_db"]) <= 9.0 for b in s["eq"])
        assert 0.6 <= s["width"] <= 1.4
    x = _noise(2.0)
    style = sample_style(5, compressor=True, reverb=True)
    np.testing.assert_array_equal(apply_style(x, SR, style), apply_style(x, SR, style))


def test_rbj_bands_hit_their_gain_and_width_scales_side():
    cases = (("peaking", 1000.0, 6.0, 1000.0), ("peaking", 250.0, -7.5, 250.0),
             ("low_shelf", 150.0, 5.0, 20.0), ("high_shelf", 5000.0, -4.0, 20000.0))
    for kind, f_hz, gain_db, probe_hz in cases:
        _, h = signal.sosfreqz(rbj_sos(kind, f_hz, 1.0 if kind == "peaking" else 0.707, gain_db, SR),
                               worN=[probe_hz], fs=SR)
        assert abs(20 * np.log10(abs(h[0])) - gain_db) < 0.15, kind
    x = _noise()
    wide = apply_style(x, SR, {"eq": [{"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 0.0}],
                               "width": 1.4, "gain_db": 0.0})
    assert abs(metrics.side_to_mid_db(wide) - metrics.side_to_mid_db(x) - 20 * np.log10(1.4)) < 0.01


def test_compressor_narrows_the_gap_between_loud_and_quiet_parts():
    t = np.arange(int(2 * SR)) / SR
    loud = np.sin(2 * np.pi * 2 * t) > 0.7
    x = np.repeat(((0.05 + 0.6 * loud) * np.sin(2 * np.pi * 220 * t))[:, None], 2, axis=1)
    y = compress(x, SR, threshold_rel_db=-6.0, ratio=6.0, attack_ms=2.0, release_ms=80.0)

    def gap_db(z):
        # steady parts only: 50 ms in from each edge of the loud bursts
        steady_loud = loud & (np.convolve(loud, np.ones(4410), "same") > 4409)
        steady_quiet = ~loud & (np.convolve(~loud, np.ones(4410), "same") > 4409)
        return 10 * np.log10(np.mean(z[steady_loud] ** 2) / np.mean(z[steady_quiet] ** 2))

    # the loud parts are ~16 dB over the threshold: 6:1 takes ~13 dB off the gap of ~22 dB
    assert abs(gap_db(x) - 22.3) < 0.5
    assert 7.0 < gap_db(y) < 12.0


def test_metrics_are_zero_on_identity_and_grow_with_the_error():
    x = _noise()
    assert metrics.mrstft_distance(x, x) < 1e-9
    assert metrics.mel_distance_db(x, x, SR) < 1e-9
    small = signal.sosfilt(rbj_sos("peaking", 2000.0, 1.0, 2.0, SR), x, axis=0)
    large = signal.sosfilt(rbj_sos("peaking", 2000.0, 1.0, 8.0, SR), x, axis=0)
    assert 0 < metrics.mrstft_distance(small, x) < metrics.mrstft_distance(large, x)
    assert 0 < metrics.mel_distance_db(small, x, SR) < metrics.mel_distance_db(large, x, SR)
    assert metrics.third_octave_difference_db(small, x, SR) < metrics.third_octave_difference_db(large, x, SR)
    # level-normalised: a pure gain is not a spectral difference
    assert metrics.third_octave_difference_db(2.0 * x, x, SR) < 1e-9


def test_alignment_removes_delay_and_gain_but_keeps_real_differences():
    x = _noise()
    delayed = np.concatenate([np.zeros((37, 2)), 0.5 * x])[: len(x)]
    xa, ta, info = metrics.align_to(delayed, x, SR)
    assert info["lag_frames"] == 37
    assert abs(info["align_gain_db"] - 6.02) < 0.05
    assert metrics.mrstft_distance(xa, ta) < 0.02
    eq = signal.sosfilt(rbj_sos("peaking", 3000.0, 1.0, 6.0, SR), x, axis=0)
    xa, ta, _ = metrics.align_to(eq, x, SR)
    assert metrics.mel_distance_db(xa, ta, SR) > 0.5


def test_true_peak_sees_inter_sample_peaks():
    n = np.arange(SR)
    # fs/4 at 45 deg: samples at +-0.707, true peak 1.0 (faded in and out: no onset overshoot)
    fade = np.minimum(1.0, np.minimum(n, n[::-1]) / 2000.0)
    x = (np.sin(2 * np.pi * n / 4 + np.pi / 4) * fade)[:, None]
    assert abs(np.max(np.abs(x)) - 0.7071) < 1e-3
    assert abs(metrics.true_peak_dbtp(x) - 0.0) < 0.05
    assert abs(metrics.integrated_lufs(x * 0.5, SR) - metrics.integrated_lufs(x, SR) + 6.02) < 0.05
