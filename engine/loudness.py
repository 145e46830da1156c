"""Loudness per ITU-R BS.1770-4 / EBU R128: K-weighting, gated integrated loudness, momentary
(400 ms) and short-term (3 s) loudness at 10 Hz, and loudness range per EBU Tech 3342.

The meter streams: it K-weights each fed block with ``sosfilt`` (filter state carried between
blocks) and keeps only one number per 100 ms segment (the K-weighted energy summed over channels),
so memory is O(duration / 100 ms) and every gate is a vectorised numpy operation over those
segments. Momentary and short-term blocks are sums of 4 and 30 consecutive segments.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import TonematchError
from engine.iir import sos_steady_state_zi, sosfilt

#: BS.1770 offset: ``L = -0.691 + 10 log10(sum_c G_c z_c)``.
LUFS_OFFSET_DB = -0.691
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LRA_RELATIVE_GATE_LU = -20.0
SEGMENT_S = 0.1
MOMENTARY_SEGMENTS = 4
SHORT_TERM_SEGMENTS = 30

# Analog prototype of the K-weighting stages (the values libebur128 / pyloudnorm use), re-derived
# for any sample rate with the bilinear transform so 44.1 kHz, 96 kHz, ... match BS.1770's 48 kHz
# coefficients to within rounding.
_SHELF_F0_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_HP_F0_HZ = 38.13547087602444
_HP_Q = 0.5003270373238773


def k_weighting_sos(sample_rate_hz: float) -> np.ndarray:
    """BS.1770 K-weighting (pre-filter high shelf + RLB high-pass) as a ``(2, 6)`` float64 SOS array."""
    fs = float(sample_rate_hz)
    if not (fs > 2 * _SHELF_F0_HZ):
        raise TonematchError(f"sample rate {sample_rate_hz} Hz is too low for K-weighting",
                             where="sample_rate_hz")
    k = math.tan(math.pi * _SHELF_F0_HZ / fs)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = [
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    ]
    k = math.tan(math.pi * _HP_F0_HZ / fs)
    a0 = 1.0 + k / _HP_Q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HP_Q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def _energy_to_lufs(energy: np.ndarray | float) -> np.ndarray:
    """Mean-square K-weighted energy (summed over channels) to LUFS; 0 → -inf."""
    with np.errstate(divide="ignore"):
        return LUFS_OFFSET_DB + 10.0 * np.log10(np.asarray(energy, dtype=np.float64))


def gated_integrated_lufs(block_energy: np.ndarray) -> float | None:
    """BS.1770-4 two-stage gating (absolute -70 LUFS, relative -10 LU) over 400 ms block energies
    (mean square, channel-weighted sum). Returns ``None`` when no block passes the absolute gate."""
    z = np.asarray(block_energy, dtype=np.float64)
    lufs = _energy_to_lufs(z)
    above_abs = lufs > ABSOLUTE_GATE_LUFS
    if not np.any(above_abs):
        return None
    relative_gate = float(_energy_to_lufs(z[above_abs].mean())) + RELATIVE_GATE_LU
    keep = above_abs & (lufs > relative_gate)
    return float(_energy_to_lufs(z[keep].mean()))


def loudness_range_from_short_term(short_term_lufs: np.ndarray) -> float | None:
    """EBU Tech 3342 loudness range (LU): spread between the 10th and 95th percentiles of the
    short-term loudness values passing the absolute (-70 LUFS) and relative (-20 LU) gates."""
    st = np.asarray(short_term_lufs, dtype=np.float64)
    st = st[st > ABSOLUTE_GATE_LUFS]
    if st.size == 0:
        return None
    mean_energy = np.mean(10.0 ** ((st - LUFS_OFFSET_DB) / 10.0))
    relative_gate = float(_energy_to_lufs(mean_energy)) + LRA_RELATIVE_GATE_LU
    st = st[st > relative_gate]
    if st.size == 0:
        return None
    lo, hi = np.percentile(st, [10.0, 95.0])
    return float(hi - lo)


class LoudnessMeter:
    """Streaming BS.1770-4 / EBU R128 meter for 1 or 2 channels (channel weights 1.0).

    Feed consecutive ``(frames, channels)`` blocks with :meth:`feed`; query at any time. Series are
    at 10 Hz: entry ``k`` of :meth:`momentary_lufs` covers ``[0.1 k, 0.1 k + 0.4)`` s and entry ``k``
    of :meth:`short_term_lufs` covers ``[0.1 k, 0.1 k + 3.0)`` s (complete windows only). Silent
    windows read ``-inf``.
    """

    def __init__(self, sample_rate_hz: float, channels: int) -> None:
        if channels not in (1, 2):
            raise TonematchError(f"{channels} channels; the loudness meter supports 1 or 2", where="channels")
        self.sample_rate_hz = float(sample_rate_hz)
        self.channels = int(channels)
        self._sos = k_weighting_sos(sample_rate_hz)
        self._dtype = np.float32 if self.sample_rate_hz <= 48000 else np.float64
        self._sos32 = self._sos.astype(self._dtype)
        self._zi = np.zeros((self._sos.shape[0], self.channels, 2), dtype=self._dtype)
        self._frames_fed = 0
        # Segment k spans frames [floor(k fs / 10), floor((k+1) fs / 10)); exact for any rate.
        self._seg_energy = np.zeros(1024, dtype=np.float64)  # sum of squares over the segment
        self._seg_frames = np.zeros(1024, dtype=np.int64)
        self._n_segments = 0
        self._partial_energy = 0.0

    def _segment_start(self, k: int | np.ndarray) -> np.ndarray | int:
        return (np.asarray(k, dtype=np.int64) * round(self.sample_rate_hz * 1000)) // 10_000

    def _segment_index_at(self, frame: int) -> int:
        """Number of segments that end at or before ``frame``."""
        step = round(self.sample_rate_hz * 1000)
        k = (frame * 10_000) // step
        while int(self._segment_start(k + 1)) <= frame:
            k += 1
        while k > 0 and int(self._segment_start(k)) > frame:
            k -= 1
        return k

    def _append(self, energy: np.ndarray, frames: np.ndarray) -> None:
        need = self._n_segments + energy.size
        if need > self._seg_energy.size:
            size = max(need, 2 * self._seg_energy.size)
            self._seg_energy = np.resize(self._seg_energy, size)
            self._seg_frames = np.resize(self._seg_frames, size)
        self._seg_energy[self._n_segments:need] = energy
        self._seg_frames[self._n_segments:need] = frames
        self._n_segments = need

    def feed(self, block: np.ndarray) -> None:
        """K-weight one ``(frames, channels)`` block and accumulate its 100 ms segment energies."""
        x = np.asarray(block)
        if x.ndim == 1 and self.channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise TonematchError(f"block shaped {x.shape}, expected (frames, {self.channels})", where="block")
        n = x.shape[0]
        if n == 0:
            return
        # float32 filtering (channel-major for a contiguous inner loop) is ~2x faster than float64 and
        # its round-off is far below what a loudness reading resolves (checked against pyloudnorm);
        # above 48 kHz the high-pass poles crowd z = 1 and float64 keeps the error < 0.001 LU.
        # sosfilt copies its input into a C-ordered working array anyway: pass the transposed view
        xt = x.T if x.dtype == self._dtype else x.T.astype(self._dtype)
        if self._frames_fed == 0:
            # as if the first sample's value had always been there: a DC offset (which BS.1770's
            # high-pass gives no loudness) would otherwise start with a step that reads as sound
            self._zi = sos_steady_state_zi(self._sos, xt[:, 0]).astype(self._dtype)
        y, self._zi = sosfilt(self._sos32, xt, axis=1, zi=self._zi)
        sq = np.square(y[0], dtype=np.float32)
        for c in range(1, self.channels):
            sq += np.square(y[c])
        start = self._frames_fed
        end = start + n
        first_seg = self._n_segments
        last_k = self._segment_index_at(end)  # segments [first_seg, last_k) complete in this block
        if last_k <= first_seg:
            self._partial_energy += float(np.sum(sq, dtype=np.float64))
        else:
            ks = np.arange(first_seg + 1, last_k + 1)
            rel = self._segment_start(ks) - start  # ends of the completed segments, inside the block
            cuts = np.concatenate(([0], rel[:-1]))
            seg_sums = np.add.reduceat(sq, cuts, dtype=np.float64) if n else np.zeros(0)
            if rel[-1] < n:  # reduceat's last slice runs to the block end; trim it to rel[-1]
                seg_sums[-1] -= float(np.sum(sq[rel[-1]:], dtype=np.float64))
            seg_sums[0] += self._partial_energy
            self._append(seg_sums, np.diff(self._segment_start(np.arange(first_seg, last_k + 1))))
            self._partial_energy = float(np.sum(sq[rel[-1]:], dtype=np.float64))
        self._frames_fed = end

    @property
    def duration_s(self) -> float:
        """Seconds fed so far."""
        return self._frames_fed / self.sample_rate_hz

    def _window_energy(self, segments: int) -> np.ndarray:
        """Mean-square energy of every complete window of ``segments`` consecutive segments."""
        n = self._n_segments
        if n < segments:
            return np.zeros(0, dtype=np.float64)
        e = np.concatenate(([0.0], np.cumsum(self._seg_energy[:n])))
        f = np.concatenate(([0], np.cumsum(self._seg_frames[:n])))
        sums = e[segments:] - e[:-segments]
        frames = f[segments:] - f[:-segments]
        return np.maximum(sums, 0.0) / frames

    def momentary_lufs(self) -> np.ndarray:
        """Momentary loudness (400 ms windows, 10 Hz), LUFS; ``-inf`` for silence."""
        return _energy_to_lufs(self._window_energy(MOMENTARY_SEGMENTS))

    def short_term_lufs(self) -> np.ndarray:
        """Short-term loudness (3 s windows, 10 Hz), LUFS; ``-inf`` for silence."""
        return _energy_to_lufs(self._window_energy(SHORT_TERM_SEGMENTS))

    def integrated_lufs(self) -> float | None:
        """Gated integrated loudness (LUFS) of everything fed; ``None`` when silent or < 400 ms."""
        return gated_integrated_lufs(self._window_energy(MOMENTARY_SEGMENTS))

    def loudness_range_lu(self) -> float | None:
        """EBU Tech 3342 loudness range (LU); ``None`` when fewer than one 3 s window passes the gates."""
        return loudness_range_from_short_term(self.short_term_lufs())

    def momentary_max_lufs(self) -> float | None:
        """Highest momentary loudness (LUFS) or ``None``."""
        m = self.momentary_lufs()
        return float(m.max()) if m.size and np.isfinite(m.max()) else None

    def short_term_max_lufs(self) -> float | None:
        """Highest short-term loudness (LUFS) or ``None``."""
        s = self.short_term_lufs()
        return float(s.max()) if s.size and np.isfinite(s.max()) else None


def integrated_loudness_lufs(audio: np.ndarray, sample_rate_hz: float) -> float | None:
    """Integrated loudness (LUFS) of a ``(frames, channels)`` (or 1-D mono) array; ``None`` if silent."""
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[:, None]
    meter = LoudnessMeter(sample_rate_hz, x.shape[1])
    meter.feed(x)
    return meter.integrated_lufs()
