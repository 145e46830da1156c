"""analyze_features: every field of the contract, measured on signals whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter, sosfreqz

from engine.analysis.f0 import Decimator
from engine.errors import AudioInputError, TonematchError
from engine.features import analyze_features
from engine.loudness import integrated_loudness_lufs
from engine.true_peak import true_peak_dbtp

FS = 44100


def pink_noise(seconds: float, seed: int, channels: int = 2, fs: int = FS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    spec = np.fft.rfft(rng.standard_normal((n, channels)), axis=0)
    spec /= np.sqrt(np.maximum(np.arange(spec.shape[0]), 1))[:, None]
    x = np.fft.irfft(spec, n=n, axis=0)
    return (x * (0.1 / x.std())).astype(np.float32)


def harmonic_tone(f0_hz: float, seconds: float, fs: int = FS) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    x = sum(np.sin(2 * np.pi * f0_hz * k * t + k) / k for k in range(1, 8)) * 0.2
    return np.stack([x, x], axis=1).astype(np.float32)


def peaking_biquad(f0_hz: float, gain_db: float, q: float, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook peaking EQ."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0_hz / fs
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return b / den[0], den / den[0]


CONTRACT = {
    "version", "sample_rate_hz", "channels", "duration_s", "spectrum", "stft", "mel", "loudness",
    "true_peak_dbtp", "sample_peak_dbfs", "stereo", "f0", "reverb", "dynamics",
}
SUBKEYS = {
    "spectrum": {"freqs_hz", "mid_db", "side_db"},
    "stft": {"win", "hop", "freqs_hz", "mag_db_mean", "mag_db_std"},
    "mel": {"n_mels", "fmin_hz", "fmax_hz", "mean_db", "std_db"},
    "loudness": {"integrated_lufs", "loudness_range_lu", "momentary_max_lufs", "short_term_max_lufs",
                 "short_term_lufs", "short_term_hop_s"},
    "stereo": {"band_edges_hz", "mid_energy_db", "side_energy_db", "coherence", "side_to_mid_db"},
    "f0": {"algo", "frame_rate_hz", "voiced_ratio", "median_f0_hz", "f0_hz", "voiced", "series_hop_s",
           "pitch_class_hist"},
    "reverb": {"rt60_s", "edt_s", "drr_db", "edc_db", "edc_hop_s"},
    "dynamics": {"crest_factor_db", "rms_db", "rms_envelope_db", "rms_hop_s", "short_term_p10_lufs",
                 "short_term_p95_lufs"},
}


@pytest.fixture(scope="module")
def noise_features() -> tuple[np.ndarray, dict]:
    x = pink_noise(12.0, 1)
    return x, analyze_features(x, sample_rate_hz=FS)


def test_document_has_every_field_and_is_plain_json(noise_features: tuple[np.ndarray, dict]) -> None:
    _x, doc = noise_features
    assert set(doc) >= CONTRACT
    for key, sub in SUBKEYS.items():
        assert sub <= set(doc[key]), key
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert doc["version"] == 1 and doc["channels"] == 2 and doc["sample_rate_hz"] == FS
    assert doc["duration_s"] == pytest.approx(12.0)
    spec = doc["spectrum"]
    assert len(spec["freqs_hz"]) == len(spec["mid_db"]) == len(spec["side_db"])
    f = np.array(doc["spectrum"]["freqs_hz"])
    assert f[0] >= 20.0 and f[-1] <= min(20000.0, 0.45 * FS)
    np.testing.assert_allclose(np.diff(np.log2(f)), 1 / 12, atol=1e-4)
    assert len(doc["stft"]["mag_db_mean"]) <= 256 and len(doc["mel"]["mean_db"]) == 128
    assert len(doc["f0"]["pitch_class_hist"]) == 120
    assert doc["stft"]["win"] == 2048


def test_loudness_and_peaks_match_the_meters(noise_features: tuple[np.ndarray, dict]) -> None:
    x, doc = noise_features
    assert doc["loudness"]["integrated_lufs"] == pytest.approx(integrated_loudness_lufs(x, FS), abs=1e-3)
    assert doc["true_peak_dbtp"] == pytest.approx(true_peak_dbtp(x, FS), abs=1e-3)
    assert doc["sample_peak_dbfs"] == pytest.approx(20 * math.log10(np.abs(x).max()), abs=1e-3)
    rms_db = 10 * math.log10(np.mean(x.astype(np.float64) ** 2))
    assert doc["dynamics"]["rms_db"] == pytest.approx(rms_db, abs=1e-3)
    assert doc["dynamics"]["crest_factor_db"] == pytest.approx(doc["sample_peak_dbfs"] - rms_db, abs=2e-3)
    st = doc["loudness"]["short_term_lufs"]
    assert len(st) == 120 - 29 and doc["loudness"]["short_term_hop_s"] == pytest.approx(0.1)
    assert doc["dynamics"]["short_term_p10_lufs"] <= doc["dynamics"]["short_term_p95_lufs"]


def test_skipping_the_true_peak_changes_nothing_else(noise_features: tuple[np.ndarray, dict]) -> None:
    x, doc = noise_features
    assert doc["true_peak_measured"] is True
    quick = analyze_features(x, sample_rate_hz=FS, true_peak=False)
    assert quick["true_peak_dbtp"] is None and quick["true_peak_measured"] is False
    assert quick["sample_peak_dbfs"] == doc["sample_peak_dbfs"]
    rest = {k: v for k, v in doc.items() if k not in ("true_peak_dbtp", "true_peak_measured")}
    assert {k: v for k, v in quick.items() if k in rest} == rest


def test_louder_copy_differs_by_exactly_the_gain(noise_features: tuple[np.ndarray, dict]) -> None:
    x, doc = noise_features
    louder = analyze_features(x * np.float32(10 ** (4.0 / 20)), sample_rate_hz=FS)
    for path in (("loudness", "integrated_lufs"), ("dynamics", "rms_db"), ("stereo", "side_to_mid_db")):
        a, b = doc[path[0]][path[1]], louder[path[0]][path[1]]
        expected = 0.0 if path[1] == "side_to_mid_db" else 4.0
        assert b - a == pytest.approx(expected, abs=0.01), path
    assert louder["true_peak_dbtp"] - doc["true_peak_dbtp"] == pytest.approx(4.0, abs=0.01)
    np.testing.assert_allclose(np.subtract(louder["spectrum"]["mid_db"], doc["spectrum"]["mid_db"]), 4.0,
                               atol=0.01)
    np.testing.assert_allclose(np.subtract(louder["mel"]["mean_db"], doc["mel"]["mean_db"]), 4.0, atol=0.02)
    np.testing.assert_allclose(louder["stereo"]["coherence"], doc["stereo"]["coherence"], atol=1e-3)
    np.testing.assert_allclose(louder["mel"]["std_db"], doc["mel"]["std_db"], atol=0.02)


def test_spectrum_shows_a_known_filter_response(noise_features: tuple[np.ndarray, dict]) -> None:
    x, doc = noise_features
    b, a = peaking_biquad(1000.0, 6.0, 1.0, FS)
    y = lfilter(b, a, x, axis=0).astype(np.float32)
    filtered = analyze_features(y, sample_rate_hz=FS)
    f = np.array(doc["spectrum"]["freqs_hz"])
    diff = np.subtract(filtered["spectrum"]["mid_db"], doc["spectrum"]["mid_db"])
    _, h = sosfreqz(np.r_[b, a][None, :], worN=f, fs=FS)
    expected = 20 * np.log10(np.abs(h))
    band = (f >= 100) & (f <= 10000)
    np.testing.assert_allclose(diff[band], expected[band], atol=0.4)
    assert diff[np.argmin(np.abs(f - 1000))] == pytest.approx(6.0, abs=0.3)
    # side gets the same filter
    diff_s = np.subtract(filtered["spectrum"]["side_db"], doc["spectrum"]["side_db"])
    np.testing.assert_allclose(diff_s[band], expected[band], atol=0.4)


@pytest.mark.parametrize(("f0_hz", "gain_db", "q"), [(60.0, 6.0, 1.0), (120.0, -6.0, 2.0)])
def test_low_frequency_bands_are_resolved(f0_hz: float, gain_db: float, q: float) -> None:
    """1/12-octave bands below 400 Hz come from a long (5-6 Hz) low-band STFT, so a bass EQ shows
    its real shape instead of a 2048-point smear (which misses these by ~1.4 dB)."""
    x = pink_noise(20.0, 11)
    b, a = peaking_biquad(f0_hz, gain_db, q, FS)
    y = lfilter(b, a, x, axis=0).astype(np.float32)
    before = analyze_features(x, sample_rate_hz=FS)["spectrum"]
    after = analyze_features(y, sample_rate_hz=FS)["spectrum"]
    f = np.array(before["freqs_hz"])
    _, h = sosfreqz(np.r_[b, a][None, :], worN=f, fs=FS)
    diff = np.subtract(after["mid_db"], before["mid_db"])
    sel = f <= 1000
    np.testing.assert_allclose(diff[sel], 20 * np.log10(np.abs(h[sel])), atol=0.3)


def test_spectrum_level_of_white_noise() -> None:
    """White noise of variance s2 reads 10 log10(s2) in every band (the documented normalisation)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((FS * 10, 1)) * 0.05).astype(np.float32)
    doc = analyze_features(x, sample_rate_hz=FS)
    mid = np.array(doc["spectrum"]["mid_db"])
    f = np.array(doc["spectrum"]["freqs_hz"])
    level = 10 * math.log10(0.05 ** 2)
    assert np.median(mid[f > 1000]) == pytest.approx(level, abs=0.2)
    assert np.median(mid[f < 300]) == pytest.approx(level, abs=0.3)  # low band on the same scale
    assert doc["channels"] == 1
    assert set(doc["spectrum"]["side_db"]) == {-150.0}


def test_stereo_image() -> None:
    mono_compatible = pink_noise(6.0, 2, channels=1)
    same = np.repeat(mono_compatible, 2, axis=1)
    doc = analyze_features(same, sample_rate_hz=FS)
    assert doc["stereo"]["side_to_mid_db"] < -100
    assert min(doc["stereo"]["coherence"]) > 0.99
    rng = np.random.default_rng(3)
    wide = (rng.standard_normal((FS * 6, 2)) * 0.1).astype(np.float32)  # independent channels
    doc = analyze_features(wide, sample_rate_hz=FS)
    assert doc["stereo"]["side_to_mid_db"] == pytest.approx(0.0, abs=0.3)
    assert max(doc["stereo"]["coherence"]) < 0.05
    # half-correlated: L = n + a, R = n + b with equal powers -> coherence 0.25 (MSC = rho^2, rho 0.5)
    half = (rng.standard_normal((FS * 6, 1)) + rng.standard_normal((FS * 6, 2))).astype(np.float32) * 0.05
    doc = analyze_features(half, sample_rate_hz=FS)
    np.testing.assert_allclose(doc["stereo"]["coherence"][3:], 0.25, atol=0.05)
    edges = doc["stereo"]["band_edges_hz"]
    assert len(edges) == len(doc["stereo"]["mid_energy_db"]) + 1 == len(doc["stereo"]["coherence"]) + 1


def test_yin_finds_220_hz_within_one_cent() -> None:
    doc = analyze_features(harmonic_tone(220.0, 4.0), sample_rate_hz=FS)
    f0 = doc["f0"]
    assert f0["algo"] == "yin" and f0["frame_rate_hz"] == 100
    assert abs(1200 * math.log2(f0["median_f0_hz"] / 220.0)) < 1.0
    assert f0["voiced_ratio"] > 0.95
    hist = np.array(f0["pitch_class_hist"])
    assert hist.sum() == pytest.approx(1.0, abs=1e-3)
    assert int(np.argmax(hist)) == 90  # A is 900 cents above C: bin 90 of 10 cents
    voiced = np.array(f0["voiced"])
    assert voiced.mean() > 0.95
    np.testing.assert_allclose(np.array(f0["f0_hz"])[voiced], 220.0, rtol=2e-3)


@pytest.mark.parametrize("rate_hz", [44100, 48000, 11025, 96000])
def test_decimator_streams_like_one_filter_and_rejects_aliases(rate_hz: int) -> None:
    """The low band (F0, 1/12-octave LF spectrum) comes from this decimator: fed in odd-sized blocks it
    equals the FIR applied to the whole signal, passes 200 Hz and keeps 5 kHz from aliasing down."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(3 * rate_hz + 17).astype(np.float32)
    dec = Decimator(rate_hz)
    parts, i = [], 0
    for n in (1, 3, 4097, 5, rate_hz, 12345):
        parts.append(dec.process(x[i:i + n]))
        i += n
    parts.append(dec.process(x[i:]))
    y = np.concatenate(parts)
    q, taps = dec.factor, dec.taps.astype(np.float64)
    direct = np.convolve(x.astype(np.float64), taps, mode="valid")[::q]
    assert y.size == direct.size
    np.testing.assert_allclose(y, direct, atol=2e-5)

    t = np.arange(2 * rate_hz) / rate_hz

    def level_db(f_hz: float) -> float:
        out = Decimator(rate_hz).process(np.sin(2 * np.pi * f_hz * t).astype(np.float32))[50:]
        return 10 * math.log10(2 * np.mean(out.astype(np.float64) ** 2))

    assert abs(level_db(200.0)) < 0.1
    if q >= 4:
        assert level_db(5000.0) < -50.0


def test_pitch_can_be_skipped() -> None:
    x = harmonic_tone(220.0, 3.0)
    full = analyze_features(x, sample_rate_hz=FS)
    fast = analyze_features(x, sample_rate_hz=FS, pitch=False)
    assert fast["f0"]["measured"] is False and full["f0"]["measured"] is True
    assert fast["f0"]["voiced_ratio"] is None and fast["f0"]["median_f0_hz"] is None
    assert fast["f0"]["f0_hz"] == [] and sum(fast["f0"]["pitch_class_hist"]) == 0
    for key in ("spectrum", "loudness", "stereo", "mel", "stft", "dynamics"):
        assert fast[key] == full[key], key


def test_noise_is_unvoiced(noise_features: tuple[np.ndarray, dict]) -> None:
    _, doc = noise_features
    assert doc["f0"]["voiced_ratio"] < 0.05


def decaying_bursts(rt60_s: float, seed: int, direct_to_reverb_db: float | None = None) -> np.ndarray:
    """Noise bursts each followed by an exponential decay of known RT60 (and, optionally, a direct
    part that stops at the offset, direct/reverberant power ratio known), separated by near-silence."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(5):
        burst_n, tail_n = int(0.6 * FS), int(1.6 * rt60_s * FS)
        t = np.arange(tail_n) / FS
        envelope = np.concatenate([np.ones(burst_n), 10 ** (-3 * t / rt60_s)])
        reverb = envelope * rng.standard_normal(burst_n + tail_n)
        sig = 0.2 * reverb
        if direct_to_reverb_db is not None:
            direct = np.concatenate([rng.standard_normal(burst_n), np.zeros(tail_n)])
            sig = sig + 0.2 * 10 ** (direct_to_reverb_db / 20) * direct
        parts += [sig, rng.standard_normal(int(0.4 * FS)) * 1e-6]
    x = np.concatenate(parts)
    return np.stack([x, x], axis=1).astype(np.float32)


@pytest.mark.parametrize("rt60_s", [0.5, 1.2])
def test_rt60_of_decaying_noise(rt60_s: float) -> None:
    rev = analyze_features(decaying_bursts(rt60_s, 7), sample_rate_hz=FS)["reverb"]
    assert rev["rt60_s"] == pytest.approx(rt60_s, rel=0.15)
    assert rev["edt_s"] == pytest.approx(rt60_s, rel=0.15)
    edc = np.array(rev["edc_db"])
    assert edc[0] == pytest.approx(0.0, abs=0.5) and np.all(np.diff(edc) <= 1e-6)
    # the decay curve falls 60 dB per RT60
    k = int(0.25 * rt60_s / rev["edc_hop_s"])
    assert (edc[k] - edc[2 * k]) / (k * rev["edc_hop_s"]) == pytest.approx(60 / rt60_s, rel=0.15)


def test_drr_of_direct_plus_reverberant() -> None:
    rev = analyze_features(decaying_bursts(0.8, 8, direct_to_reverb_db=6.0), sample_rate_hz=FS)["reverb"]
    assert rev["drr_db"] == pytest.approx(6.0, abs=2.0)
    assert rev["rt60_s"] == pytest.approx(0.8, rel=0.15)


def test_no_free_decay_gives_none(noise_features: tuple[np.ndarray, dict]) -> None:
    _, doc = noise_features
    assert doc["reverb"]["rt60_s"] is None and doc["reverb"]["edt_s"] is None


def test_deterministic_and_path_equals_array(tmp_path, noise_features: tuple[np.ndarray, dict]) -> None:
    x, doc = noise_features
    again = analyze_features(x.copy(), sample_rate_hz=FS)
    assert json.dumps(again, sort_keys=True) == json.dumps(doc, sort_keys=True)
    path = tmp_path / "noise.wav"
    sf.write(path, x, FS, subtype="FLOAT")
    from_file = analyze_features(str(path))
    assert json.dumps(from_file, sort_keys=True) == json.dumps(doc, sort_keys=True)


def test_silence_and_bad_input() -> None:
    doc = analyze_features(np.zeros((FS * 2, 2), np.float32), sample_rate_hz=FS)
    assert doc["loudness"]["integrated_lufs"] is None and doc["true_peak_dbtp"] is None
    assert doc["f0"]["voiced_ratio"] == 0.0 and doc["reverb"]["rt60_s"] is None
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    bad = np.zeros((FS, 2), np.float32)
    bad[FS // 2, 1] = np.nan
    with pytest.raises(AudioInputError, match=r"0\.500 s"):
        analyze_features(bad, sample_rate_hz=FS)
    with pytest.raises(TonematchError, match="sample_rate_hz"):
        analyze_features(np.zeros((FS, 2), np.float32))
    with pytest.raises(TonematchError, match="channels"):
        analyze_features(np.zeros((FS, 3), np.float32), sample_rate_hz=FS)
    with pytest.raises(AudioInputError):
        analyze_features(np.zeros((0, 2), np.float32), sample_rate_hz=FS)


@pytest.mark.slow
def test_hour_long_input_stays_small() -> None:
    """A 60-minute input (8 kHz keeps the test fast) gives a document well under 256 KB with every
    series at most 2000 points."""
    fs = 8000
    rng = np.random.default_rng(9)
    from engine.features import FeatureAnalyzer

    analyzer = FeatureAnalyzer(fs, 2)
    tone = np.sin(2 * np.pi * 220 * np.arange(fs * 60) / fs).astype(np.float32)
    noise = (rng.standard_normal((fs * 60, 2)) * 0.05).astype(np.float32)
    voiced_minute = noise + 0.2 * tone[:, None]
    for minute in range(60):
        block = voiced_minute if minute % 2 else noise * np.float32(1 + minute / 60)
        for i in range(0, len(block), 65536):
            analyzer.feed(block[i:i + 65536])
    doc = analyzer.result()
    size = len(json.dumps(doc).encode())
    assert size < 256 * 1024
    assert doc["duration_s"] == pytest.approx(3600.0)
    for key, sub in (("loudness", "short_term_lufs"), ("f0", "f0_hz"), ("f0", "voiced"),
                     ("dynamics", "rms_envelope_db"), ("reverb", "edc_db")):
        assert 0 < len(doc[key][sub]) <= 2000 or key == "reverb", (key, sub)
    assert doc["loudness"]["short_term_hop_s"] * len(doc["loudness"]["short_term_lufs"]) == pytest.approx(
        3600.0, rel=0.01)
    assert 0.3 < doc["f0"]["voiced_ratio"] < 0.7


def test_long_recording_keeps_a_full_hop_envelope_excerpt() -> None:
    """Over 100 s the 50 ms RMS envelope is thinned to 2000 points; its middle 100 s stays at 50 ms
    (dynamics are judged on fast peaks), and a short recording carries no excerpt (nothing thinned)."""
    fs = 8000
    rng = np.random.default_rng(3)
    n = 150 * fs
    x = (0.1 * rng.standard_normal(n) * (1.0 + 0.9 * np.sin(2 * np.pi * 0.7 * np.arange(n) / fs))
         ).astype(np.float32)
    d = analyze_features(x, sample_rate_hz=fs, pitch=False)["dynamics"]
    assert d["rms_hop_s"] == pytest.approx(0.1) and len(d["rms_envelope_db"]) == 1500
    assert d["rms_excerpt_hop_s"] == 0.05 and len(d["rms_excerpt_db"]) == 2000
    assert d["rms_excerpt_start_s"] == pytest.approx(25.0)
    frames = x[25 * fs: 125 * fs].astype(np.float64).reshape(2000, -1)
    assert np.allclose(d["rms_excerpt_db"], 10 * np.log10(np.mean(frames**2, axis=1)), atol=0.01)
    short = analyze_features(x[: 60 * fs], sample_rate_hz=fs, pitch=False)["dynamics"]
    assert short["rms_hop_s"] == 0.05 and "rms_excerpt_db" not in short


def test_dc_offset_is_the_larger_channel_mean() -> None:
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((44100 * 3, 2))).astype(np.float32)
    x -= x.mean(axis=0)
    x[:, 0] += 0.1
    x[:, 1] -= 0.05
    assert analyze_features(x, sample_rate_hz=44100)["dc_offset_dbfs"] == pytest.approx(-20.0, abs=0.01)
    x -= x.mean(axis=0)
    assert analyze_features(x, sample_rate_hz=44100)["dc_offset_dbfs"] < -100.0


def test_a_dc_offset_does_not_fill_the_envelope() -> None:
    # a pause inside the music must stay a pause in the RMS envelope (the compressor and reverb
    # decisions read its quiet part, the free decays run down into it) with or without an offset
    from engine.examples import synth_music

    x = synth_music(8.0, 44100, seed=2)
    x[3 * 44100:4 * 44100] = 0.0
    clean = analyze_features(x, sample_rate_hz=44100)
    offset = analyze_features(x + np.float32(0.2), sample_rate_hz=44100)
    assert offset["dc_offset_dbfs"] > -20.0
    env_c = np.array(clean["dynamics"]["rms_envelope_db"])
    env_o = np.array(offset["dynamics"]["rms_envelope_db"])
    hop = clean["dynamics"]["rms_hop_s"]
    pause = slice(int(3.2 / hop), int(3.8 / hop))
    assert np.all(env_o[pause] < -60.0)  # with the offset in it the pause read about -17 dB
    loud = env_c > -40.0
    assert np.max(np.abs(env_o[loud] - env_c[loud])) < 0.5
