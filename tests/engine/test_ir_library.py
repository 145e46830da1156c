"""The generated impulse-response library: deterministic, right decay, safe keys."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ParamsError
from engine.ir_library import choose_ir_key, generate_ir, ir_key, library_keys, load_ir, parse_ir_key


@pytest.fixture(autouse=True)
def _ir_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TONEMATCH_IR_DIR", str(tmp_path))


def _t30_s(ir: np.ndarray, fs: int) -> float:
    e = np.cumsum(ir[::-1].astype(np.float64) ** 2)[::-1]
    edc = 10 * np.log10(np.maximum(e / e[0], 1e-30))
    i5, i35 = np.argmax(edc < -5), np.argmax(edc < -35)
    return 2.0 * (i35 - i5) / fs


@pytest.mark.parametrize(
    "key", ["ir/room_0.3s.wav", "ir/plate_1.6s.wav", "ir/hall_2.0s.wav", "ir/hall_4.0s.wav"]
)
def test_generated_ir_decays_with_the_named_rt60(key):
    _, rt60_s = parse_ir_key(key)
    ir = generate_ir(key, 48000)
    assert ir.shape == (round(1.5 * rt60_s * 48000), 2)
    assert np.allclose(np.sum(ir.astype(np.float64) ** 2, axis=0), 1.0, atol=1e-3)
    for ch in range(2):
        assert _t30_s(ir[:, ch], 48000) == pytest.approx(rt60_s, rel=0.2)
    # stereo channels decorrelated, tail faded to silence (no runaway)
    corr = np.corrcoef(ir[:, 0], ir[:, 1])[0, 1]
    assert abs(corr) < 0.3
    assert np.max(np.abs(ir[-10:])) < 1e-4


def test_same_key_same_response_and_cache_file(tmp_path):
    a = load_ir("ir/room_0.5s.wav", 48000)
    b = load_ir("ir/room_0.5s.wav", 48000)
    assert np.array_equal(a, b)
    assert (tmp_path / "ir" / "room_0.5s.wav").is_file()
    assert not np.array_equal(a, load_ir("ir/room_0.6s.wav", 48000)[: len(a)])


def test_load_at_other_rate_keeps_duration():
    ir = load_ir("ir/hall_1.5s.wav", 44100)
    assert ir.shape[0] == pytest.approx(1.5 * 1.5 * 44100, abs=2)
    assert _t30_s(ir[:, 0], 44100) == pytest.approx(1.5, rel=0.2)


@pytest.mark.parametrize(
    "bad", ["hall_2.0s.wav", "ir/cave_2.0s.wav", "ir/hall_9.0s.wav", "ir/hall_0.1s.wav", "../x"]
)
def test_bad_keys_are_refused_with_the_field(bad):
    with pytest.raises(ParamsError) as err:
        load_ir(bad, 48000)
    assert err.value.where == "reverb.ir_key"


def test_key_names_and_choice():
    assert ir_key("hall", 2) == "ir/hall_2.0s.wav"
    assert ir_key("room", 0.25) == "ir/room_0.25s.wav"
    assert all(parse_ir_key(k) for k in library_keys())
    assert choose_ir_key(0.45).startswith("ir/room_")
    assert choose_ir_key(2.2) == "ir/hall_2.0s.wav"
    assert choose_ir_key(99.0) == "ir/hall_4.0s.wav"


def test_band_power_gain_is_one_on_average_and_falls_with_frequency_for_a_hall():
    from engine.ir_library import ir_band_power_gain

    f = 1000.0 * 2 ** (np.arange(-48, 52) / 12)  # 62 Hz .. 18 kHz
    g = ir_band_power_gain("ir/hall_2.0s.wav", f)
    assert g.shape == f.shape and np.all(g > 0)
    # halls are darker: more wet power in the lows than in the highs
    assert np.mean(g[f < 300]) > 2 * np.mean(g[f > 6000])
    # bandwidth-weighted (white-noise) average over the whole band ~ 1 (energy-normalised IR)
    w = f * (f < 20000)
    assert 0.5 < np.sum(g * w) / np.sum(w) < 2.0
