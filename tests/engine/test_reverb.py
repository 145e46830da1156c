"""Partitioned convolution reverb: exact against direct convolution, streams, state resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal

from engine.errors import ParamsError
from engine.processors import reverb as reverb_mod
from engine.processors.reverb import ConvolutionReverb, PartitionedConvolver, default_block_frames


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


@pytest.mark.parametrize("mix", [0.3, 1.0])
def test_reverb_processor_mix_predelay_and_tail_match_offline(tmp_path, mix):
    fs = 48000
    rng = np.random.default_rng(1)
    x = np.zeros((fs * 2, 2), np.float32)
    x[: fs // 2] = 0.3 * rng.standard_normal((fs // 2, 2))
    params = {"ir_key": "ir/room_0.4s.wav", "mix": mix, "pre_delay_ms": 20.0}
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
    ref = (1 - mix) * x + mix * wet
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


def test_zero_mix_adds_no_silent_tail():
    # a preset whose reverb mix is 0 (turned down by hand) rendered the dry signal followed by the IR's
    # length of digital silence (3 s for a 2 s hall): nothing rings, so nothing is added
    from engine.render import render

    rev = ConvolutionReverb()
    rev.reset(44100, 2, {"ir_key": "ir/hall_2.0s.wav", "mix": 0.0, "pre_delay_ms": 50})
    assert rev.tail_frames == 0
    x = (0.1 * np.random.default_rng(3).standard_normal((44100, 2))).astype(np.float32)
    y, report = render(x, {"reverb": {"ir_key": "ir/hall_2.0s.wav", "mix": 0.0, "pre_delay_ms": 50}},
                       sample_rate_hz=44100)
    assert y.shape == x.shape and np.array_equal(y, x)
    assert report["frames"] == x.shape[0]


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


def _ir(frames: int, seed: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    decay = np.exp(-np.arange(frames) / max(1.0, frames / 7))[:, None]
    return (rng.standard_normal((frames, channels)) * decay).astype(np.float32)


def _reference(x: np.ndarray, ir: np.ndarray, frames: int) -> np.ndarray:
    """float64 FFT convolution (exact to ~-300 dB), first ``frames`` outputs, channel c with IR c."""
    return np.stack(
        [signal.fftconvolve(x[:, c].astype(np.float64), ir[:, c].astype(np.float64))[:frames]
         for c in range(x.shape[1])],
        axis=1,
    )


@pytest.mark.parametrize(
    ("ir_frames", "block", "sizes"),
    [
        # chunks smaller than a partition, odd, and one larger than many partitions
        (3000, 256, [1, 7, 255, 257, 9001, 0, 3]),
        # the cost model's block size (a 1 s IR at 48 kHz): renderer blocks, 1.5 s chunks, odd ones
        (48000, None, [65536, 72000, 1, 12345, 100003]),
    ],
)
def test_chunked_equals_whole_and_reference(ir_frames, block, sizes):
    ir = _ir(ir_frames, ir_frames)
    x = np.random.default_rng(7).standard_normal((250000, 2)).astype(np.float32)
    ref = _reference(x, ir, len(x))
    whole, _ = PartitionedConvolver(ir, 2, block).process(x, None)
    chunked, _ = _stream(PartitionedConvolver(ir, 2, block), x, sizes)
    assert _err_db(whole, ref) < -100
    assert _err_db(chunked, ref) < -100
    assert _err_db(chunked, whole) < -100


def test_tail_continues_after_the_input_ends():
    ir = _ir(5000, 3)
    x = np.random.default_rng(4).standard_normal((7000, 2)).astype(np.float32)
    conv, st = PartitionedConvolver(ir, 2, 1024), None
    y, st = conv.process(x, st)
    tail = []
    for n in (1, 999, 2048, 1952):  # silence in odd chunks, 5000 frames in all
        t, st = conv.process(np.zeros((n, 2), np.float32), st)
        tail.append(t)
    full = np.concatenate([y, *tail])
    ref = _reference(x, ir, len(x) + len(ir) - 1)
    assert _err_db(full[: len(ref)], ref) < -100
    assert np.max(np.abs(full[len(x) :])) > 1e-2  # it rings on


def _old_layout(state: dict, channels: int) -> dict:
    """The state as the earlier convolver wrote it: one channel-major string of all kept blocks."""
    def frames(text: str) -> np.ndarray:
        return reverb_mod._unb64_frames(text, channels)

    hist = np.concatenate([frames(b) for b in state["blocks"]], axis=0)
    return {
        "pos": state["pos"],
        "block_frames": state["block_frames"],
        "hist": reverb_mod._b64(hist.T),
        "partial": reverb_mod._b64(frames(state["pending"]).T),
    }


@pytest.mark.parametrize(("block_a", "block_b", "old_layout"), [(512, 512, True), (512, 2048, False),
                                                                  (2048, 256, True)])
def test_state_resumes_through_json_across_layouts_and_block_sizes(block_a, block_b, old_layout):
    ir = _ir(3000, 5)
    x = np.random.default_rng(6).standard_normal((30000, 2)).astype(np.float32)
    ref = _reference(x, ir, len(x))
    y1, st = _stream(PartitionedConvolver(ir, 2, block_a), x[:12345], [1000, 777])
    st = json.loads(json.dumps(st))
    if old_layout:
        st = _old_layout(st, 2)
    # a fresh convolver resumes from the JSON state (another machine, perhaps another block size)
    conv_b = PartitionedConvolver(ir, 2, block_b)
    y2, st2 = conv_b.process(x[12345:20000], st)
    y3, _ = conv_b.process(x[20000:], st2)
    assert _err_db(np.concatenate([y1, y2, y3]), ref) < -100


def test_state_from_a_shorter_history_is_refused():
    conv = PartitionedConvolver(_ir(3000, 5), 2, 512)
    _, st = conv.process(np.ones((5000, 2), np.float32), None)
    short = dict(json.loads(json.dumps(st)), blocks=st["blocks"][-2:])  # 1024 frames < the IR
    with pytest.raises(ParamsError) as err:
        PartitionedConvolver(_ir(3000, 5), 2, 512).process(np.ones((10, 2), np.float32), short)
    assert err.value.where == "state.reverb"


def test_memory_does_not_grow_with_the_call_or_the_stream():
    conv = PartitionedConvolver(_ir(20000, 8), 2, 4096)
    x = np.random.default_rng(9).standard_normal((400000, 2)).astype(np.float32)

    def held() -> int:
        return sum(v.nbytes for v in vars(conv).values() if isinstance(v, np.ndarray))

    _, st = conv.process(x[:5000], None)
    before = held()
    for i in range(5000, len(x), 130000):
        _, st = conv.process(x[i : i + 130000], st)
    assert held() == before
    assert sum(len(b) for b in st["blocks"]) < 2 * 20000 * 2 * 4  # state: about one IR of history


def test_public_fft_fallback_gives_the_same_output(monkeypatch):
    ir = _ir(3000, 10)
    x = np.random.default_rng(11).standard_normal((9000, 2)).astype(np.float32)
    fast, _ = _stream(PartitionedConvolver(ir, 2, 1024), x, [1000, 3333])
    monkeypatch.setattr(reverb_mod, "_PF", None)
    slow, _ = _stream(PartitionedConvolver(ir, 2, 1024), x, [1000, 3333])
    assert np.allclose(slow, fast, rtol=0, atol=1e-6 * np.max(np.abs(fast)))


def test_ffts_go_through_a_scipy_fft_backend_when_one_is_set():
    """The GPU path sends the engine's FFTs elsewhere with ``scipy.fft.set_backend``: the convolver
    must then call scipy.fft, not pocketfft directly."""
    import scipy.fft

    class Counting:
        __ua_domain__ = "numpy.scipy.fft"
        calls = 0

        def __ua_function__(self, method, args, kwargs):
            Counting.calls += 1
            return NotImplemented  # scipy's own backend does the work

    ir = _ir(3000, 12)
    x = np.random.default_rng(13).standard_normal((9000, 2)).astype(np.float32)
    plain, _ = _stream(PartitionedConvolver(ir, 2, 1024), x, [1000, 3333])
    with scipy.fft.set_backend(Counting()):
        routed, _ = _stream(PartitionedConvolver(ir, 2, 1024), x, [1000, 3333])
    assert Counting.calls > 0
    assert np.allclose(routed, plain, rtol=0, atol=1e-6 * np.max(np.abs(plain)))


def test_cost_model_block_is_a_power_of_two_covering_the_ir():
    for ir_frames in (1, 700, 14400, 144000, 297600):
        b = default_block_frames(ir_frames)
        assert b & (b - 1) == 0 and 256 <= b <= 65536
    # longer IRs never get smaller partitions
    sizes = [default_block_frames(n) for n in (1000, 10000, 50000, 150000, 300000)]
    assert sizes == sorted(sizes)
