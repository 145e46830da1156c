"""Partitioned convolution reverb: exact against direct convolution, streams, state resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from engine.errors import ParamsError
from engine.processors.reverb import ConvolutionReverb, PartitionedConvolver


@pytest.fixture(autouse=True)
def _ir_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TONEMATCH_IR_DIR", str(tmp_path))


def _err_db(y: np.ndarray, ref: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(y - ref)) / np.max(np.abs(ref))))


def _stream(proc, x, sizes, *, json_roundtrip_at=None, factory=None):
    st, outs, i, k = None, [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        if json_roundtrip_at is not None and k == json_roundtrip_at:
            st = json.loads(json.dumps(st))
            proc = factory()  # a fresh instance (another machine) resumes from the JSON state
        y, st = proc.process(x[i : i + n], st)
        assert y.shape == x[i : i + n].shape
        outs.append(y)
        i += n
        k += 1
    return np.concatenate(outs), st


@pytest.mark.parametrize(("ir_frames", "block"), [(5000, 1024), (700, 1024), (1024, 1024), (3000, 256)])
def test_equals_direct_convolution_within_minus_100_db(ir_frames, block):
    rng = np.random.default_rng(ir_frames)
    ir = (rng.standard_normal((ir_frames, 2)) * np.exp(-np.arange(ir_frames) / 800)[:, None]).astype(
        np.float32
    )
    x = rng.standard_normal((20000, 2)).astype(np.float32)
    ref = np.stack([np.convolve(x[:, c].astype(np.float64), ir[:, c])[: len(x)] for c in range(2)], axis=1)
    y, _ = _stream(
        PartitionedConvolver(ir, 2, block),
        x,
        [1, 333, block, 5000, 7, 0, 4096],
        json_roundtrip_at=3,
        factory=lambda: PartitionedConvolver(ir, 2, block),
    )
    assert _err_db(y, ref) < -100


def test_reverb_processor_mix_predelay_and_tail_match_offline(tmp_path):
    fs = 48000
    rng = np.random.default_rng(1)
    x = np.zeros((fs * 2, 2), np.float32)
    x[: fs // 2] = 0.3 * rng.standard_normal((fs // 2, 2))
    params = {"ir_key": "ir/room_0.4s.wav", "mix": 0.3, "pre_delay_ms": 20.0}
    rev = ConvolutionReverb()
    rev.reset(fs, 2, params)
    y, _ = _stream(rev, x, [4800, 12345, 2048])
    from engine.ir_library import load_ir

    ir = load_ir("ir/room_0.4s.wav", fs)
    delay = int(0.02 * fs)
    wet = np.stack(
        [signal.fftconvolve(x[:, c].astype(np.float64), ir[:, c])[: len(x) - delay] for c in range(2)], 1
    )
    wet = np.concatenate([np.zeros((delay, 2)), wet])
    ref = 0.7 * x + 0.3 * wet
    assert _err_db(y, ref) < -100
    # the tail rings past the input's end, then ends (no runaway): silence after tail_frames
    assert rev.tail_frames == delay + len(ir)
    assert np.max(np.abs(y[fs // 2 + 1000 : fs // 2 + 3000])) > 1e-3
    # after the tail only float32 FFT round-off of the last block is left (< -120 dB of the peak)
    assert np.max(np.abs(y[fs // 2 + rev.tail_frames + 10 :])) < 1e-6 * np.max(np.abs(y))


def test_mono_stream_and_zero_mix_is_bypass():
    rev = ConvolutionReverb()
    rev.reset(44100, 1, {"ir_key": "ir/plate_0.8s.wav", "mix": 0.0, "pre_delay_ms": 0})
    x = np.random.default_rng(2).standard_normal((10000, 1)).astype(np.float32)
    y, st = rev.process(x, None)
    assert np.array_equal(y, x)
    json.dumps(st)


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"ir_key": "ir/hall_2.0s.wav", "mix": 1.5, "pre_delay_ms": 0}, "reverb.mix"),
        ({"ir_key": "ir/hall_2.0s.wav", "mix": 0.2, "pre_delay_ms": 900}, "reverb.pre_delay_ms"),
        ({"ir_key": "ir/nowhere.wav", "mix": 0.2, "pre_delay_ms": 0}, "reverb.ir_key"),
        ({"mix": 0.2}, "reverb"),
    ],
)
def test_bad_params_name_the_field(params, where):
    with pytest.raises(ParamsError) as err:
        ConvolutionReverb().reset(48000, 2, params)
    assert err.value.where == where
