"""Mode-A inversion: a known EQ is recovered, parameters stay readable, options act as documented."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.errors import ParamsError
from engine.invert import invert_params
from engine.params import validate_style_params
from engine.processors.eq import eq_response_db

FREQS = 20 * 2 ** (np.arange(0, int(12 * np.log2(20000 / 20)) + 1) / 12)


def _features(mid_db: np.ndarray, side_db: np.ndarray, lufs: float = -20.0, channels: int = 2) -> dict:
    return {"channels": channels, "sample_rate_hz": 44100,
            "spectrum": {"freqs_hz": FREQS.tolist(), "mid_db": mid_db.tolist(), "side_db": side_db.tolist()},
            "loudness": {"integrated_lufs": lufs}}


def _base() -> np.ndarray:
    rng = np.random.default_rng(0)
    b = -20 - 10 * np.log10(FREQS / 100) + rng.normal(0, 0.2, FREQS.size)
    b[FREQS < 40] -= 12
    return b


KNOWN = [
    [{"type": "low_shelf", "f_hz": 100.0, "q": 0.7, "gain_db": 4.0},
     {"type": "peaking", "f_hz": 800.0, "q": 1.5, "gain_db": -5.0},
     {"type": "peaking", "f_hz": 3000.0, "q": 2.0, "gain_db": 3.0},
     {"type": "high_shelf", "f_hz": 9000.0, "q": 0.7, "gain_db": -6.0}],
    [{"type": "peaking", "f_hz": 250.0, "q": 1.0, "gain_db": 6.0},
     {"type": "peaking", "f_hz": 2000.0, "q": 0.8, "gain_db": -4.0},
     {"type": "peaking", "f_hz": 6000.0, "q": 2.0, "gain_db": 5.0}],
]


def _in_band_error_db(bands: list[dict], truth: list[dict]) -> float:
    sel = (FREQS >= 100) & (FREQS <= 10000)
    e = (eq_response_db(bands, FREQS, 44100) - eq_response_db(truth, FREQS, 44100))[sel]
    return float(np.max(np.abs(e - e.mean())))  # overall level is the gain stage's job


@pytest.mark.parametrize("truth", KNOWN)
def test_known_eq_is_recovered_within_1_db(truth: list[dict]) -> None:
    base = _base()
    resp = eq_response_db(truth, FREQS, 44100)
    params = invert_params(_features(base + resp + 4.0, base + resp - 6.0, -12.0),
                           _features(base, base - 10.0, -20.0))
    assert len(params["eq"]) <= 8
    assert _in_band_error_db(params["eq"], truth) < 1.0
    assert validate_style_params(params, mode="A") == params


def test_parameters_are_readable() -> None:
    base = _base()
    resp = eq_response_db(KNOWN[0], FREQS, 44100)
    params = invert_params(_features(base + resp, base + resp - 10), _features(base, base - 10))
    for b in params["eq"]:
        assert 0.3 <= b["q"] <= 4.0 and abs(b["gain_db"]) <= 12.0 and 20 <= b["f_hz"] <= 16000
        assert b["f_hz"] == round(b["f_hz"]) and b["gain_db"] == round(b["gain_db"], 1)
    assert [b["f_hz"] for b in params["eq"]] == sorted(b["f_hz"] for b in params["eq"])
    peaks = [b["f_hz"] for b in params["eq"] if b["type"] == "peaking"]
    assert all(np.log2(b / a) >= 1 / 3 for a, b in itertools.pairwise(peaks))


def test_identical_spectra_give_a_neutral_eq() -> None:
    base = _base()
    params = invert_params(_features(base, base - 8), _features(base, base - 8))
    assert all(abs(b["gain_db"]) < 0.5 for b in params["eq"])
    assert abs(params["stereo"]["width"] - 1.0) < 0.02


def test_width_follows_side_to_mid_ratio() -> None:
    base = _base()
    wider = invert_params(_features(base, base - 10 + 20 * np.log10(1.3)), _features(base, base - 10))
    assert abs(wider["stereo"]["width"] - 1.3) < 0.02
    narrower = invert_params(_features(base, base - 10 + 20 * np.log10(0.7)), _features(base, base - 10))
    assert abs(narrower["stereo"]["width"] - 0.7) < 0.02
    mono = invert_params(_features(base, np.full(FREQS.size, -150.0)), _features(base, base - 10, channels=1))
    assert "stereo" not in mono
    # a mono reference leaves a stereo target's width alone, whether stored as one channel or as two
    # equal ones (the file's layout must not change the result)
    no_side = np.full(FREQS.size, -150.0)
    for ref in (_features(base, no_side, channels=1), _features(base, no_side)):
        assert invert_params(ref, _features(base, base - 10))["stereo"]["width"] == 1.0


def test_intensity_scales_toward_neutral_and_options_apply() -> None:
    base = _base()
    resp = eq_response_db(KNOWN[0], FREQS, 44100)
    ref = _features(base + resp, base + resp - 10 + 20 * np.log10(1.4), -9.5)
    tgt = _features(base, base - 10, -20.0)
    full = invert_params(ref, tgt)
    half = invert_params(ref, tgt, opts={"intensity": 0.5})
    zero = invert_params(ref, tgt, opts={"intensity": 0.0, "target_lufs": -16, "ceiling_dbtp": -2.0})
    assert full["lufs"]["target_db"] == -9.5 and full["limiter"]["tp_db"] == -1.0
    for a, b in zip(full["eq"], half["eq"], strict=True):
        assert abs(b["gain_db"] - a["gain_db"] / 2) <= 0.11
    assert abs((half["stereo"]["width"] - 1) - (full["stereo"]["width"] - 1) / 2) < 0.01
    assert zero["eq"] == [] and zero["stereo"]["width"] == 1.0
    assert zero["lufs"]["target_db"] == -16 and zero["limiter"]["tp_db"] == -2.0
    ex = invert_params(ref, tgt, opts={"exclude": ["eq", "stereo", "limiter"]})
    assert set(ex) == {"lufs", "notes"}


def test_unusable_features_are_refused() -> None:
    base = _base()
    with pytest.raises(ParamsError) as e:
        invert_params({"channels": 2}, _features(base, base))
    assert e.value.where == "reference.spectrum"
    silent = _features(base, base - 10)
    silent["loudness"]["integrated_lufs"] = None
    with pytest.raises(ParamsError, match="no measurable loudness"):
        invert_params(silent, _features(base, base - 10))


def test_known_eq_is_recovered_from_audio_within_1_db() -> None:
    """End to end: apply four known bands to a music-like signal, analyse both, invert."""
    from scipy.signal import sosfilt

    from engine.examples import synth_music
    from engine.features import analyze_features
    from engine.processors.eq import eq_sos

    fs = 44100
    rng = np.random.default_rng(1)
    x = synth_music(20.0, fs, seed=4)
    x = x + (0.05 * rng.standard_normal(x.shape)).astype(np.float32)  # a bed so every band has energy
    truth = [{"type": "low_shelf", "f_hz": 150.0, "q": 0.7, "gain_db": 3.0},
             {"type": "peaking", "f_hz": 1000.0, "q": 1.2, "gain_db": -4.0},
             {"type": "peaking", "f_hz": 3500.0, "q": 1.5, "gain_db": 3.5},
             {"type": "high_shelf", "f_hz": 8000.0, "q": 0.7, "gain_db": -3.0}]
    y = sosfilt(eq_sos(truth, fs), x, axis=0).astype(np.float32)
    params = invert_params(analyze_features(y, sample_rate_hz=fs), analyze_features(x, sample_rate_hz=fs))
    f = np.geomspace(100, 10000, 200)
    e = eq_response_db(params["eq"], f, fs) - eq_response_db(truth, f, fs)
    assert float(np.max(np.abs(e - e.mean()))) < 1.0
    assert abs(params["stereo"]["width"] - 1.0) < 0.02  # EQ does not change the width


def test_fitted_peaking_bands_are_never_closer_than_the_merge_distance() -> None:
    """A preset never lists two peaking bands a few Hz apart (it once gave 8337 and 8340 Hz, both
    +12 dB, on a harmonic tone): a person reads one band per feature of the curve."""
    import math

    from engine.invert import MERGE_OCTAVES, fit_eq

    f = 30.0 * 2.0 ** (np.arange(0, 9.05, 1 / 12))
    closest = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        d = np.zeros_like(f)
        for _ in range(rng.integers(3, 9)):  # narrow and wide bumps, some overlapping
            fc, bw, g = 30.0 * 2.0 ** rng.uniform(0, 9), rng.uniform(0.1, 1.5), rng.uniform(-15, 15)
            d += g * np.exp(-0.5 * (np.log2(f / fc) / (bw / 2)) ** 2)
        d += rng.normal(0, 0.5, f.size)
        bands = fit_eq(f, d - d.mean(), np.ones_like(f))
        peaks = sorted(b["f_hz"] for b in bands if b["type"] == "peaking")
        closest += [math.log2(b / a) for a, b in itertools.pairwise(peaks)]
    assert min(closest) >= MERGE_OCTAVES - 1e-3


def test_a_target_with_a_dc_offset_gets_a_10_hz_high_pass() -> None:
    base = _base()
    clean = invert_params(_features(base, base - 10), _features(base, base - 10))
    assert all(b["type"] != "high_pass" for b in clean["eq"])
    offset = dict(_features(base, base - 10), dc_offset_dbfs=-30.0)
    fixed = invert_params(_features(base, base - 10), offset)
    assert fixed["eq"][0] == {"type": "high_pass", "f_hz": 10.0, "q": 0.71, "gain_db": 0.0}
    assert "DC offset" in fixed["notes"]["eq"]
    assert len(invert_params(_features(base + 3 * np.sin(FREQS / 500), base), offset)["eq"]) <= 8


def test_a_short_reference_is_matched_with_a_note() -> None:
    base = _base()
    long_ref = {**_features(base, base - 10.0), "duration_s": 45.0}
    short_ref = {**_features(base, base - 10.0), "duration_s": 2.5}
    target = {**_features(base, base - 10.0), "duration_s": 200.0}
    assert "reference" not in invert_params(long_ref, target)["notes"]
    note = invert_params(short_ref, target)["notes"]["reference"]
    assert "2.5 s" in note and "10 s or more" in note


def test_a_preset_reapplied_to_an_offset_target_gets_the_dc_high_pass():
    from engine.invert import DC_HIGH_PASS, with_dc_high_pass

    peak = {"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 3.0}
    params = {"eq": [peak], "notes": {"eq": "1 band"}}
    out, note = with_dc_high_pass(params, -20.0)
    assert out["eq"] == [DC_HIGH_PASS, peak] and "10 Hz high-pass" in out["notes"]["eq"] and note
    assert params["eq"] == [peak]  # the preset itself is not changed
    assert with_dc_high_pass(params, -70.0) == (params, None)  # no offset worth removing
    assert with_dc_high_pass(out, -20.0) == (out, None)  # already cut below 20 Hz
    full = {"eq": [dict(peak, f_hz=100.0 * (i + 1)) for i in range(8)]}
    kept, note = with_dc_high_pass(full, -20.0)
    assert kept["eq"] == full["eq"] and "stays" in note and "8 bands" in note


@pytest.mark.parametrize("ref_lufs, held", [(1.6, 0.0), (-66.0, -60.0)])
def test_a_reference_louder_or_quieter_than_any_target_is_matched_with_the_target_held(
        ref_lufs: float, held: float) -> None:
    """A full-scale square wave reads +1.6 LUFS; that is a reference, not a bad option the user
    typed: the match goes on at the nearest target there is, and the note says so."""
    base = _base()
    params = invert_params(_features(base, base - 10, lufs=ref_lufs), _features(base, base - 10))
    assert params["lufs"]["target_db"] == held
    note = params["notes"]["reference"]
    assert f"{ref_lufs:+.1f} LUFS" in note and f"the target is {held:g} LUFS" in note


def test_a_quiet_targets_offset_counts_against_its_own_peak() -> None:
    """Music 32 dB down with its offset at -52 dBFS: under the absolute -50 dBFS rule, but the make-up
    gain lifts the offset with the audio (it came out at -4 dBFS, eating the limiter's headroom). An
    offset within 40 dB of the target's peak gets the high-pass; a master's -60 dBFS offset does not."""
    from engine.invert import DC_HIGH_PASS, with_dc_high_pass

    base = _base()
    quiet = dict(_features(base - 32, base - 42, lufs=-53.0), dc_offset_dbfs=-52.0, sample_peak_dbfs=-33.0)
    assert invert_params(_features(base, base - 10), quiet)["eq"][0] == DC_HIGH_PASS
    master = dict(_features(base, base - 10), dc_offset_dbfs=-60.0, sample_peak_dbfs=-1.0)
    assert all(b["type"] != "high_pass" for b in invert_params(_features(base, base - 10), master)["eq"])
    peak = {"type": "peaking", "f_hz": 1000.0, "q": 1.0, "gain_db": 3.0}
    assert with_dc_high_pass({"eq": [peak]}, -52.0, -33.0)[0]["eq"] == [DC_HIGH_PASS, peak]
    assert with_dc_high_pass({"eq": [peak]}, -60.0, -1.0)[1] is None


def test_the_dc_rule_reads_levels_at_the_features_precision() -> None:
    """tonematch apply reads a file's raw levels, a service job its features (rounded to 0.01 dB):
    at -49.996 dBFS the two decided differently, and their outputs differed by -4 dBFS."""
    from engine.invert import dc_offset_matters

    assert dc_offset_matters(-49.996) == dc_offset_matters(-50.0) is False
    assert dc_offset_matters(-49.994) == dc_offset_matters(-49.99) is True
    assert dc_offset_matters(-60.004, -20.0) == dc_offset_matters(-60.0, -20.0) is False


def _stft(mean_of: object, std_of: object) -> dict:
    """Features' ``stft`` block: 256 linear points to 22 kHz, level and frame-to-frame std per point."""
    f = (np.arange(256) * 4 + 2.5) * 44100 / 2048
    return {"win": 2048, "hop": 2048, "freqs_hz": f.tolist(),
            "mag_db_mean": [float(mean_of(x)) for x in f], "mag_db_std": [float(std_of(x)) for x in f]}


def test_no_boost_into_a_targets_noise_floor() -> None:
    """A cassette-like target: music rolled off above 5 kHz onto a steady hiss 60 dB under its body,
    against a bright reference. Boosting the top octaves raised only the hiss (+12 dB shelf and +12 dB
    peak at 5.7 and 9.8 kHz: the hiss came out 22-25 dB louder, Matchering's 6). Where the target's STFT
    level is that low and varies frame to frame only as noise does, the EQ may cut but not boost; a
    target that is all noise (pink noise: the noise is the content) is still matched there."""
    base = _base()
    roll = np.where(FREQS > 5000, -40 * np.log2(np.maximum(FREQS, 5000) / 5000), 0.0)
    hissy = np.maximum(base + roll, base.max() - 60 - 3 * np.log2(FREQS / 1000))
    ref = _features(base, base - 10)
    tgt = dict(_features(hissy, hissy - 10),
               stft=_stft(lambda x: np.interp(x, FREQS, hissy), lambda x: 7.0 if x < 8000 else 3.0))
    top = (FREQS >= 10000) & (FREQS <= 16000)
    eq = invert_params(ref, tgt)["eq"]
    # before: +21..24 dB over 10-16 kHz; now 0..5 dB (the shelf that lifts the roll-off is pulled back)
    assert np.mean(eq_response_db(eq, FREQS, 44100)[top]) < 4.0
    assert np.max(eq_response_db(eq, FREQS, 44100)[top]) < 8.0
    # content up to the roll-off is still brightened
    assert np.max(eq_response_db(eq, FREQS, 44100)[(FREQS > 4000) & (FREQS < 8000)]) > 6.0
    from engine.invert import target_floor_mask

    assert target_floor_mask(tgt, FREQS)[top].all()
    assert not target_floor_mask(tgt, FREQS)[FREQS < 5000].any()
    # all noise: no floor to spare, the top is matched as before
    noise = dict(tgt, stft=_stft(lambda x: np.interp(x, FREQS, hissy), lambda x: 3.0))
    assert not target_floor_mask(noise, FREQS).any()
    assert np.max(eq_response_db(invert_params(ref, noise)["eq"], FREQS, 44100)[top]) > 9.0
    # without STFT statistics (older feature documents) nothing changes
    assert invert_params(ref, _features(hissy, hissy - 10))["eq"] == invert_params(ref, noise)["eq"]


def _side_to_mid_db(x: np.ndarray) -> float:
    x = x - x.mean(axis=0)
    mid, side = x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]
    return float(10 * np.log10(np.sum(side.astype(np.float64) ** 2) / np.sum(mid.astype(np.float64) ** 2)))


def test_output_takes_the_references_stereo_width_when_the_eq_moves_energy_between_bands(tmp_path) -> None:
    """A dark target with narrow highs matched to a bright reference with wide highs: the EQ lifts the
    target's highs, so their narrowness becomes audible; the width the output needs is judged after the
    EQ, on the energy the output will have (the target's own balance hides the highs)."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    from engine import match_files

    fs, n = 44100, 44100 * 12
    rng = np.random.default_rng(3)
    low = butter(4, 400, "lowpass", fs=fs, output="sos")
    high = butter(4, 2000, "highpass", fs=fs, output="sos")

    def stereo(highs_db: float, side_highs_db: float) -> np.ndarray:
        """Bass at 0 dB with its side 20 dB down; highs at ``highs_db``, their side ``side_highs_db``."""
        bass = sosfilt(low, rng.standard_normal((2, n)), axis=1)
        highs = sosfilt(high, rng.standard_normal((2, n)), axis=1) * 10 ** (highs_db / 20)
        mid = bass[0] + highs[0]
        side = bass[1] * 10 ** (-20 / 20) + highs[1] * 10 ** (side_highs_db / 20)
        return (0.1 * np.stack([mid + side, mid - side], axis=1)).astype(np.float32)

    ref, tgt = stereo(-6.0, -4.0), stereo(-24.0, -7.0)
    sf.write(tmp_path / "ref.wav", ref, fs, subtype="FLOAT")
    sf.write(tmp_path / "tgt.wav", tgt, fs, subtype="FLOAT")
    match_files(tmp_path / "ref.wav", tmp_path / "tgt.wav", tmp_path / "out.wav", measure_result=False)
    out, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    got, want = _side_to_mid_db(out), _side_to_mid_db(ref)
    assert abs(got - want) < 1.0, (got, want)
