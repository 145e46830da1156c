"""Feed-forward compressor: static curve, ballistics, streaming equals one-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import ParamsError
from engine.processors.compressor import Compressor, static_gain_reduction_db

FS = 48000


def _sine(level_db: float, seconds: float, f_hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(FS * seconds)) / FS
    amp = 10 ** (level_db / 20) * np.sqrt(2)  # RMS = level_db
    return (amp * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)[:, None].repeat(2, axis=1)


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


def _comp(**kw) -> Compressor:
    params = {"threshold_db": -20.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0, "makeup_db": 0.0}
    params.update(kw)
    c = Compressor()
    c.reset(FS, 2, params)
    return c


def test_static_curve_above_threshold_divides_by_ratio():
    c = _comp(knee_db=0.0)
    y, _ = c.process(_sine(-8.0, 1.0), None)
    # -8 dB in, 12 dB over, ratio 4 -> 3 dB over: -17 dB out (after the attack settled)
    assert _rms_db(y[FS // 2 :]) == pytest.approx(-17.0, abs=0.3)
    quiet, _ = _comp(knee_db=0.0).process(_sine(-30.0, 0.5), None)
    assert _rms_db(quiet[FS // 4 :]) == pytest.approx(-30.0, abs=0.05)
    assert static_gain_reduction_db(np.array([-20.0]), -20.0, 4.0, 6.0)[0] == pytest.approx(0.75 * 9 / 12)


def test_attack_and_release_time_constants():
    c = _comp(attack_ms=10.0, release_ms=200.0, knee_db=0.0)
    x = np.concatenate([_sine(-40.0, 0.3), _sine(0.0, 0.5), _sine(-40.0, 1.0)])
    gr, _ = c.gain_reduction_db(x, None)
    steady = gr[int(0.75 * FS)]
    assert steady == pytest.approx(15.0, abs=0.5)  # 20 dB over, ratio 4
    on = int(0.3 * FS)
    # one attack time constant after the step: ~63 % of the way (detector adds a few ms)
    assert 0.4 * steady < gr[on + int(0.010 * FS)] < 0.75 * steady
    off = int(0.8 * FS)
    assert 0.25 * steady < gr[off + int(0.2 * FS)] < 0.5 * steady
    assert gr[off + int(0.9 * FS)] < 0.02 * steady


def test_streaming_with_json_state_equals_one_shot():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((FS * 2, 2)) * np.repeat(rng.uniform(0.01, 0.8, 20), FS // 10)[:, None]).astype(
        np.float32
    )
    whole, _ = _comp().process(x, None)
    c, st, outs = _comp(), None, []
    for i in range(0, len(x), 7777):
        y, st = c.process(x[i : i + 7777], st)
        st = json.loads(json.dumps(st))
        outs.append(y)
    assert np.max(np.abs(np.concatenate(outs) - whole)) < 1e-6


def test_makeup_and_silence():
    y, st = _comp(makeup_db=6.0).process(np.zeros((4800, 2), np.float32), None)
    assert np.all(y == 0) and np.all(np.isfinite(list(st.values())))
    y, _ = _comp(makeup_db=6.0).process(_sine(-40.0, 0.5), None)
    assert _rms_db(y) == pytest.approx(-34.0, abs=0.05)


@pytest.mark.parametrize(
    ("field", "value"), [("ratio", 0.5), ("attack_ms", -1.0), ("threshold_db", float("nan"))]
)
def test_bad_params_name_the_field(field, value):
    with pytest.raises(ParamsError) as err:
        _comp(**{field: value})
    assert err.value.where == f"compressor.{field}"
