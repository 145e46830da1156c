"""engine.iir: the engine's biquad cascade gives scipy.signal.sosfilt's exact output without importing
scipy.signal (half a second of every command)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.signal as ss

from engine import iir
from engine.analysis.f0 import kaiser_lowpass
from engine.loudness import k_weighting_sos
from engine.processors.eq import eq_sos

SOS = eq_sos([{"type": "peaking", "f_hz": 120.0, "q": 1.2, "gain_db": 4.0},
              {"type": "high_shelf", "f_hz": 6000.0, "q": 0.7071, "gain_db": -3.0},
              {"type": "high_pass", "f_hz": 10.0, "q": 0.7071}], 44100)


@pytest.mark.parametrize("shape,axis", [((4000, 2), 0), ((2, 4000), 1), ((4000, 1), 0), ((4000,), 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sosfilt_equals_scipy_bit_for_bit(shape, axis, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    zi_shape = list(shape)
    zi_shape[axis] = 2
    zi = rng.standard_normal((SOS.shape[0], *zi_shape)).astype(dtype)
    y_ref, zf_ref = ss.sosfilt(SOS.astype(dtype), x, axis=axis, zi=zi)
    y, zf = iir.sosfilt(SOS.astype(dtype), x, axis=axis, zi=zi)
    assert y.dtype == y_ref.dtype and y.shape == y_ref.shape and zf.shape == zf_ref.shape
    assert np.array_equal(y, y_ref) and np.array_equal(zf, zf_ref)


def test_sosfilt_state_carries_across_blocks():
    x = np.random.default_rng(4).standard_normal((9000, 2))
    whole, _ = iir.sosfilt(SOS, x, axis=0, zi=np.zeros((SOS.shape[0], 2, 2)))
    zi = np.zeros((SOS.shape[0], 2, 2))
    parts = []
    for a in range(0, 9000, 1234):
        y, zi = iir.sosfilt(SOS, x[a:a + 1234], axis=0, zi=zi)
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), whole)


def test_without_the_kernel_the_public_function_gives_the_same(monkeypatch):
    x = np.random.default_rng(5).standard_normal((3000, 2))
    zi = np.zeros((SOS.shape[0], 2, 2))
    fast = iir.sosfilt(SOS, x, axis=0, zi=zi)
    monkeypatch.setattr(iir, "_KERNEL", None)
    slow = iir.sosfilt(SOS, x, axis=0, zi=zi)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


def test_an_empty_block_keeps_the_state():
    zi = np.random.default_rng(6).standard_normal((SOS.shape[0], 2, 2))
    y, zf = iir.sosfilt(SOS, np.zeros((0, 2), np.float32), axis=0, zi=zi)
    assert y.shape == (0, 2) and np.array_equal(zf, zi)


def test_bad_state_shape_is_refused():
    with pytest.raises(ValueError, match="zi must be shaped"):
        iir.sosfilt(SOS, np.zeros((100, 2)), axis=0, zi=np.zeros((SOS.shape[0], 2, 1)))


def test_frequency_response_equals_sosfreqz():
    freqs = np.linspace(0.0, 22050.0, 777)
    for sos in (SOS, k_weighting_sos(48000)):
        _, h_ref = ss.sosfreqz(sos, worN=freqs, fs=48000 if sos is not SOS else 44100)
        h = iir.sos_frequency_response(sos, freqs, 48000 if sos is not SOS else 44100)
        assert np.max(np.abs(h - h_ref)) < 1e-12


@pytest.mark.parametrize("factor", [2, 4, 5, 6, 12])
def test_kaiser_lowpass_equals_firwin(factor):
    ref = ss.firwin(4 * factor + 1, 0.8 / factor, window=("kaiser", 5.0))
    assert np.max(np.abs(kaiser_lowpass(4 * factor + 1, 0.8 / factor, beta=5.0) - ref)) < 1e-15


def test_a_mode_a_match_does_not_import_scipy_signal(tmp_path):
    from engine.examples import write_example_pair

    pair = write_example_pair(tmp_path, duration_s=3.0)
    code = (
        "import sys, engine, engine.cli\n"
        "engine.match_files(sys.argv[1], sys.argv[2], sys.argv[3], mode='A')\n"
        "print(sorted(m for m in sys.modules if m in ('scipy.signal', 'scipy.stats')))\n"
        # the kernel loaded on its own leaves a later `import scipy.signal` working
        "import numpy as np, scipy.signal\n"
        "y = scipy.signal.sosfilt([[1.0, 0, 0, 1, -0.5, 0]], [1.0, 0, 0])\n"
        "assert np.allclose(y, [1.0, 0.5, 0.25]), y\n"
    )
    out = tmp_path / "o.wav"
    r = subprocess.run([sys.executable, "-c", code, pair["reference"], pair["target"], str(out)],
                       capture_output=True, text=True, check=True)
    assert out.exists()
    assert r.stdout.strip() == "[]", r.stdout
