"""YIN fundamental-frequency estimation (de Cheveigné & Kawahara 2002), vectorised over frames.

Runs on a mono signal decimated to about 8-11 kHz (:class:`Decimator`): F0 up to 1 kHz only needs
the low band, and the difference function costs O(frames x lags). Each frame's difference function
comes from one FFT cross-correlation; the cumulative-mean-normalised difference ``d'`` gives the
period (first local minimum under the aperiodicity threshold, refined by parabolic interpolation)
and the voicing decision (``d'`` at the period below the threshold and the frame not silent).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft

FMIN_HZ = 55.0
FMAX_HZ = 1000.0
THRESHOLD = 0.15  # aperiodicity (d') under which a frame is voiced
SILENCE_DB = -60.0  # frame mean square under this (dBFS) is unvoiced
_TARGET_RATE_HZ = 5500.0
_GRID = np.linspace(-1.0, 1.0, 17)
_GRID_STEP = _GRID[1] - _GRID[0]
_HALF = 1  # extra lags computed beyond tau_max (for the refinement around tau_max)


def kaiser_lowpass(taps: int, cutoff: float, *, beta: float) -> np.ndarray:
    """Linear-phase low-pass FIR by the window method (``scipy.signal.firwin(taps, cutoff,
    window=("kaiser", beta))``): ``cutoff`` as a fraction of Nyquist, unity gain at DC."""
    m = np.arange(taps) - (taps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(taps, beta)
    return h / np.sum(h)


class Decimator:
    """Streaming integer-factor FIR decimator to >= 8 kHz (linear phase; polyphase float32 matvecs)."""

    def __init__(self, sample_rate_hz: float) -> None:
        self.factor = max(1, int(sample_rate_hz // _TARGET_RATE_HZ))
        self.rate_hz = sample_rate_hz / self.factor
        if self.factor == 1:
            self.taps = np.ones(1, dtype=np.float32)
        else:
            # Pass band to 0.8 of the new Nyquist (>= 2.2 kHz: F0 <= 1 kHz and its first harmonics).
            taps = kaiser_lowpass(4 * self.factor + 1, 0.8 / self.factor, beta=5.0)
            self.taps = taps.astype(np.float32)
        # time-reversed taps, zero-padded to whole rows of ``factor`` samples: (rows, factor)
        rows = -(-self.taps.size // self.factor)
        padded = np.zeros(rows * self.factor, dtype=np.float32)
        padded[:self.taps.size] = self.taps[::-1]
        self._phases = padded.reshape(rows, self.factor)
        self._buf = np.zeros(0, dtype=np.float32)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Decimate the next mono samples; returns the decimated samples now available."""
        x = np.asarray(x, dtype=np.float32)
        held = self._buf.size
        n = held + x.size
        n_taps, q = self.taps.size, self.factor
        count = (n - n_taps) // q + 1 if n >= n_taps else 0
        if count <= 0:
            self._buf = np.concatenate([self._buf, x])
            return np.zeros(0, dtype=np.float32)
        # polyphase: out[m] = sum_i rtaps[i] buf[m q + i]; with buf as rows of q samples that is a sum
        # of len(rtaps) / q matrix-vector products on contiguous row slices (BLAS sgemv). The last
        # phase's zero taps may read past the samples, so buf is allocated whole rows long, zero-filled.
        phases = self._phases
        rows = count + phases.shape[0] - 1
        buf = np.zeros(max(n, rows * q), dtype=np.float32)
        buf[:held] = self._buf
        buf[held:n] = x
        p = buf[:rows * q].reshape(rows, q)
        out = p[:count] @ phases[0]
        for r in range(1, phases.shape[0]):
            out += p[r:r + count] @ phases[r]
        self._buf = buf[count * q:n].copy()
        return out


def yin_frames(frames: np.ndarray, rate_hz: float, *, fmin_hz: float = FMIN_HZ, fmax_hz: float = FMAX_HZ,
               threshold: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YIN on ``(n, window + max_lag)`` frames. Returns ``(f0_hz, voiced, aperiodicity)``; f0 is the
    best estimate even when unvoiced (0 for silent frames)."""
    n, length = frames.shape
    tau_max = int(np.ceil(rate_hz / fmin_hz))
    tau_min = max(_HALF + 1, int(np.floor(rate_hz / fmax_hz)))
    window = length - tau_max - _HALF
    if n == 0:
        return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0)
    n_fft = 1 << int(np.ceil(np.log2(length)))
    x = frames.astype(np.float32, copy=False)
    spec_full = scipy.fft.rfft(x, n=n_fft, axis=1)
    spec_head = scipy.fft.rfft(x[:, :window], n=n_fft, axis=1)
    spec_full *= np.conj(spec_head)
    ext = tau_max + _HALF  # lags up to tau_max + 4 for the interpolation kernel
    r = scipy.fft.irfft(spec_full, n=n_fft, axis=1)[:, 1: ext + 1]
    csum = np.cumsum(np.square(x), axis=1)
    e0 = csum[:, window - 1]
    # energy of x[tau : tau + window] for tau = 1..tau_max + 4
    e_tau = csum[:, window:window + ext] - csum[:, :ext]
    d_ext = e_tau
    d = d_ext
    d += e0[:, None]
    d -= 2.0 * r
    np.maximum(d, 0.0, out=d)
    d = d_ext[:, :tau_max]
    cum = np.cumsum(d, axis=1)
    taus = np.arange(1, tau_max + 1, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        dn = np.ones((n, tau_max + 1), dtype=np.float32)
        dn[:, 1:] = np.where(cum > 0, d * taus / cum, 1.0)
    seg = dn[:, tau_min - 1: tau_max + 1]  # one lag of context each side of [tau_min, tau_max - 1]
    centre = seg[:, 1:-1]
    is_min = (centre <= seg[:, :-2]) & (centre <= seg[:, 2:])
    good = is_min & (centre < threshold)
    has = good.any(axis=1)
    first = np.argmax(good, axis=1)
    fallback = np.argmin(centre, axis=1)
    idx = np.where(has, first, fallback)
    rows = np.arange(n)
    tau = idx + tau_min
    # Sub-sample period: r(tau) is evaluated exactly between lags from its spectrum (band-limited
    # interpolation), E(tau) linearly, on a 1/8-lag grid over tau +- 1; a parabola on that fine grid
    # gives the minimum. A 3-point parabola on d itself is biased by several cents when the period is
    # only 5-20 samples, as it is at this rate.
    a, b, c = d_ext[rows, tau - 2], d_ext[rows, tau - 1], d_ext[rows, tau]
    denom = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.clip(np.where(denom > 0, 0.5 * (a - c) / denom, 0.0), -1.0, 1.0)
    sel = np.nonzero(has)[0]  # only voiced candidates need the precise period
    if sel.size:
        delta[sel] = _refine(spec_full[sel], d_ext[sel], e0[sel], tau[sel], n_fft)
    ap = dn[rows, tau]
    loud = 10.0 * np.log10(np.maximum(e0 / window, 1e-30)) > SILENCE_DB
    f0 = np.where(loud, rate_hz / (tau + delta), 0.0)
    voiced = has & loud
    return f0, voiced, np.where(loud, ap, 1.0)


@functools.lru_cache(maxsize=8)
def _shift_table(n_fft: int, bins: int, lags: int) -> np.ndarray:
    omega = 2.0 * np.pi * np.arange(bins) / n_fft
    return np.exp(1j * np.arange(lags)[:, None] * omega[None, :]).astype(np.complex64)


@functools.lru_cache(maxsize=8)
def _grid_basis(n_fft: int, bins: int) -> np.ndarray:
    """Real and imaginary parts of the inverse-rfft weights at lags ``_GRID`` (bins, grid)."""
    wk = np.full(bins, 2.0)
    wk[0] = 1.0
    if n_fft % 2 == 0:
        wk[-1] = 1.0
    omega = 2.0 * np.pi * np.arange(bins) / n_fft
    basis = wk[:, None] * np.exp(1j * omega[:, None] * _GRID[None, :]) / n_fft
    # rows interleaved (re, -im) to match a complex64 array viewed as float32 pairs: one GEMM
    inter = np.empty((2 * bins, _GRID.size), dtype=np.float32)
    inter[0::2] = basis.real
    inter[1::2] = -basis.imag
    return inter


def _refine(cross: np.ndarray, d_ext: np.ndarray, e0: np.ndarray, tau: np.ndarray, n_fft: int) -> np.ndarray:
    """Sub-lag offset (in lags, within +-1) of the minimum of d around integer lag ``tau``."""
    n = tau.size
    k = np.arange(cross.shape[1])
    g = _GRID.astype(np.float32)[None, :]
    basis = _grid_basis(n_fft, k.size)
    table = _shift_table(n_fft, cross.shape[1], d_ext.shape[1] + 2)
    c = table[tau]
    c *= cross  # C_k e^{i w_k tau0}
    r_fine = c.view(np.float32) @ basis  # r(tau0 + grid), (n, grid)
    rows = np.arange(n)
    # E(tau) = d + 2 r - e0 at integer lags; linear interpolation between tau-1, tau, tau+1.
    lag_idx = np.clip(tau - 1, 0, d_ext.shape[1] - 1)
    lo_idx = np.clip(lag_idx - 1, 0, d_ext.shape[1] - 1)
    hi_idx = np.clip(lag_idx + 1, 0, d_ext.shape[1] - 1)
    r_at = r_fine[:, [0, _GRID.size // 2, _GRID.size - 1]]
    e_lo = d_ext[rows, lo_idx] + 2.0 * r_at[:, 0] - e0
    e_mid = d_ext[rows, lag_idx] + 2.0 * r_at[:, 1] - e0
    e_hi = d_ext[rows, hi_idx] + 2.0 * r_at[:, 2] - e0
    e_fine = np.where(g < 0, e_mid[:, None] + (e_mid - e_lo)[:, None] * g,
                      e_mid[:, None] + (e_hi - e_mid)[:, None] * g)
    fine = e0[:, None] + e_fine - 2.0 * r_fine
    j = np.clip(np.argmin(fine, axis=1), 1, _GRID.size - 2)
    fa, fb, fc = fine[rows, j - 1], fine[rows, j], fine[rows, j + 1]
    denom = fa - 2.0 * fb + fc
    with np.errstate(divide="ignore", invalid="ignore"):
        sub = np.where(denom > 0, 0.5 * (fa - fc) / denom, 0.0)
    return _GRID[j] + np.clip(sub, -1.0, 1.0) * _GRID_STEP


class YinTracker:
    """Streaming YIN at ``frame_rate_hz`` frames per second on the decimated mono signal.

    Frame ``k`` analyses decimated samples ``[floor(k rate / frame_rate), ... + window + max_lag)``.
    """

    def __init__(self, sample_rate_hz: float, frame_rate_hz: float = 100.0) -> None:
        self.decimator = Decimator(sample_rate_hz)
        self.rate_hz = self.decimator.rate_hz
        self.frame_rate_hz = frame_rate_hz
        self.tau_max = int(np.ceil(self.rate_hz / FMIN_HZ))
        # FFT size: next power of two >= 2 tau_max; the window (>= one period of the lowest F0) fills it
        self.window = (1 << int(np.ceil(np.log2(2 * self.tau_max + 2 * _HALF)))) - self.tau_max - _HALF
        self.length = self.window + self.tau_max + _HALF
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # decimated index of _buf[0]
        self._next_frame = 0
        self._f0: list[np.ndarray] = []
        self._voiced: list[np.ndarray] = []

    def _frame_start(self, k: np.ndarray | int) -> np.ndarray:
        return np.floor(np.asarray(k) * (self.rate_hz / self.frame_rate_hz) + 1e-9).astype(np.int64)

    def feed(self, mono: np.ndarray) -> None:
        """Analyse the next mono samples (at the input rate)."""
        self.feed_decimated(self.decimator.process(mono))

    def feed_decimated(self, dec: np.ndarray) -> None:
        """Analyse the next samples already decimated by ``self.decimator`` (shared with a caller
        that needs the decimated signal too)."""
        if dec.size == 0:
            return
        self._buf = np.concatenate([self._buf, dec])
        end = self._buf_start + self._buf.size
        # frames whose window is complete
        k_last = int(np.floor((end - self.length) * self.frame_rate_hz / self.rate_hz)) + 1
        while k_last > 0 and int(self._frame_start(k_last - 1)) + self.length > end:
            k_last -= 1
        if k_last > self._next_frame:
            ks = np.arange(self._next_frame, k_last)
            starts = self._frame_start(ks) - self._buf_start
            for s in range(0, ks.size, 4096):  # bounded scratch memory
                st = starts[s:s + 4096]
                frames = self._buf[st[:, None] + np.arange(self.length)]
                f0, voiced, _ = yin_frames(frames, self.rate_hz)
                self._f0.append(f0.astype(np.float32))
                self._voiced.append(voiced)
            self._next_frame = k_last
        keep_from = int(self._frame_start(self._next_frame)) - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:].copy()
            self._buf_start += keep_from

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(f0_hz, voiced)`` of every complete frame so far."""
        if not self._f0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
        return np.concatenate(self._f0), np.concatenate(self._voiced)


def pitch_class_histogram(f0_hz: np.ndarray, voiced: np.ndarray, bins: int = 120) -> np.ndarray:
    """Share of voiced frames per pitch class bin (``bins`` over the octave from C; 10 cents for 120)."""
    f = np.asarray(f0_hz, dtype=np.float64)[np.asarray(voiced, dtype=bool)]
    f = f[f > 0]
    hist = np.zeros(bins)
    if f.size == 0:
        return hist
    c0_hz = 440.0 * 2.0 ** (-57.0 / 12.0)
    cents = np.mod(1200.0 * np.log2(f / c0_hz), 1200.0)
    idx = np.minimum((cents / (1200.0 / bins)).astype(np.int64), bins - 1)
    hist = np.bincount(idx, minlength=bins).astype(np.float64)
    return hist / f.size
