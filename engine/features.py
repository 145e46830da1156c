"""``analyze_features``: the measurement document of one recording (docs/ARCHITECTURE.md).

One streaming pass over ``(frames, channels)`` float32 blocks feeds:

* the BS.1770 loudness meter and the true-peak meter (:mod:`engine.loudness`, :mod:`engine.true_peak`);
* a Hann STFT (2048 points, hop 2048) of mid ``(L+R)/2`` and side ``(L-R)/2``. Every frame gets a
  K-weighted level (from its spectrum) and all spectral sums are accumulated per 1 dB level bin,
  so the silence gate (absolute -70, relative -20 LU, like BS.1770's) is applied at the end
  without keeping frames: memory is flat in the duration. The long-term spectrum (1/12 octave),
  STFT magnitude statistics, mel statistics and the stereo image all come from this one STFT;
* YIN F0 at 100 frames/s on the decimated mid signal (:mod:`engine.analysis.f0`);
* a 10 ms energy envelope (RMS envelope, crest factor, free decays for RT60/EDT/DRR).

Spectral power is per-bin power normalised by the window energy, so white noise of variance
``s2`` reads ``10 log10(s2)`` dB in every band; levels are dB re full scale, floor -150 dB.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.fft

from engine.analysis import dynamics, reverb, spectrum, stereo
from engine.analysis.f0 import FMAX_HZ, FMIN_HZ, Decimator, YinTracker, pitch_class_histogram
from engine.blocks import as_float32_block
from engine.errors import AudioInputError, TonematchError
from engine.iir import sos_frequency_response
from engine.loudness import LoudnessMeter, k_weighting_sos
from engine.memory import PeriodicTrim
from engine.true_peak import SamplePeakMeter, TruePeakMeter

FEATURES_VERSION = 1
STFT_WIN = 2048
# Hop = window (Hann, no overlap): the long-term averages and per-frame statistics estimate the
# same quantities as at hop 512 (frames are just subsampled), at a quarter of the cost; the
# analysis has to run at >= 500x realtime on one core.
STFT_HOP = 2048
N_MELS = 128
MEL_FMIN_HZ = 20.0
STFT_POINTS = 256
ENVELOPE_HOP_S = 0.01
RMS_HOP_S = 0.05
BLOCK_FRAMES = 1 << 18  # 6 s at 44.1 kHz: few Python-level calls, ~2 MB per block
FLOOR_DB = spectrum.FLOOR_DB
_LEVEL_BINS = 90  # 1 dB bins of frame level from -70 to +20 LUFS
_LEVEL_MIN = -70.0
_REL_GATE_LU = -20.0
_BLIND_REVERB_S = 30.0
_ENVELOPE_DC_MIN = 1e-3  # channel-mean sum (-60 dBFS) above which the envelope is taken without it
LF_WIN = 1024
LF_HOP = 512
LF_CROSSOVER_HZ = 400.0


def _kw_power(freqs_hz: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """|K(f)|^2 of the BS.1770 K-weighting at the bin frequencies."""
    h = sos_frequency_response(k_weighting_sos(sample_rate_hz), freqs_hz, sample_rate_hz)
    return (np.abs(h) ** 2).astype(np.float32)


class FeatureAnalyzer:
    """Streaming analyser: :meth:`feed` consecutive blocks, then :meth:`result`."""

    def __init__(self, sample_rate_hz: int, channels: int, *, expected_frames: int | None = None,
                 blind_reverb: bool = False, pitch: bool = True, true_peak: bool = True) -> None:
        if channels not in (1, 2):
            raise TonematchError(f"{channels} channels; only mono and stereo are supported", where="channels")
        fs = float(sample_rate_hz)
        self.fs = fs
        self.channels = channels
        self.frames = 0
        self.loud = LoudnessMeter(fs, channels)
        self.true_peak = true_peak
        self.tp = TruePeakMeter(fs, channels) if true_peak else SamplePeakMeter()
        self.yin = YinTracker(fs)
        self.pitch = pitch
        # Low band: a 1024-point STFT of mid/side decimated to ~5.5 kHz resolves 5-6 Hz, so 1/12-octave
        # bands below LF_CROSSOVER_HZ (narrower than a 2048-point bin) are measured, not smeared.
        self.dec_side = Decimator(fs)
        q = self.yin.decimator.factor
        self.lf = q >= 4
        self.lf_rate = fs / q
        self.lf_bin_hz = self.lf_rate / LF_WIN
        self.lf_window = (np.hanning(LF_WIN + 1)[:-1] / np.sqrt(np.sum(np.hanning(LF_WIN + 1)[:-1] ** 2))
                          ).astype(np.float32)
        self.lf_scale = float(q)  # a decimated band-limited signal carries 1/q of white-noise power
        self.acc_lf = np.zeros((_LEVEL_BINS, 2, LF_WIN // 2 + 1))
        self.acc_lf_frames = np.zeros(_LEVEL_BINS)
        self.acc_lf_energy = np.zeros(_LEVEL_BINS)
        self._lf_buf = np.zeros((2, 0), dtype=np.float32)
        self.sum_sq = 0.0
        self.sum_mid = 0.0  # sums of mid and side: the DC offset of L = M + S and R = M - S
        self.sum_side = 0.0
        # STFT
        self.window = np.hanning(STFT_WIN + 1)[:-1].astype(np.float32)  # periodic Hann
        self.win_energy = float(np.sum(self.window.astype(np.float64) ** 2))
        self.window_scaled = (self.window / np.sqrt(self.win_energy)).astype(np.float32)
        n_bins = STFT_WIN // 2 + 1
        self.bin_hz = fs / STFT_WIN
        self.freqs = np.arange(n_bins) * self.bin_hz
        self.kw = _kw_power(self.freqs, fs)
        # rfft power -> mean square: (P0 + 2 sum Pk + P_N/2) / N with P = |X|^2 / sum(w^2)
        self.ms_weights = np.full(n_bins, 2.0 / STFT_WIN, dtype=np.float32)
        self.ms_weights[[0, -1]] = 1.0 / STFT_WIN
        self.kw_ms = (self.kw * self.ms_weights).astype(np.float32)
        self.mel_fmax = min(20000.0, fs / 2.0)
        mel_w, self.mel_centers = spectrum.mel_matrix(N_MELS, MEL_FMIN_HZ, self.mel_fmax, n_bins, self.bin_hz)
        self.mel_w_t = np.ascontiguousarray(mel_w.T.astype(np.float32))
        self.group = (n_bins - 1) // STFT_POINTS  # bins per STFT statistics point
        self.acc_pm = np.zeros((_LEVEL_BINS, n_bins))
        self.acc_ps = np.zeros((_LEVEL_BINS, n_bins))
        self.acc_ms_re = np.zeros((_LEVEL_BINS, n_bins))
        self.acc_ms_im = np.zeros((_LEVEL_BINS, n_bins))
        self.acc_frames = np.zeros(_LEVEL_BINS)
        self.acc_energy = np.zeros(_LEVEL_BINS)  # K-weighted, for the relative gate
        self.acc_stft = np.zeros((_LEVEL_BINS, 2, STFT_POINTS))  # sum, sum of squares (dB)
        self.acc_mel = np.zeros((_LEVEL_BINS, 2, N_MELS))
        self._stft_buf = np.zeros((2 if channels == 2 else 1, 0), dtype=np.float32)
        # 10 ms energy envelope
        self.env_hop = max(1, round(fs * ENVELOPE_HOP_S))
        self._env_buf = np.zeros(0, dtype=np.float32)
        self.envelope: list[np.ndarray] = []
        # blind reverb (optional): keep the middle <= 30 s
        self.blind = blind_reverb
        self._mid_range = (0, 0)
        if blind_reverb and expected_frames:
            span = int(min(expected_frames, _BLIND_REVERB_S * fs))
            start = (expected_frames - span) // 2
            self._mid_range = (start, start + span)
        self._mid_parts: list[np.ndarray] = []

    # -- streaming -------------------------------------------------------------------------
    def feed(self, block: np.ndarray) -> None:
        """Analyse the next ``(frames, channels)`` float32 block."""
        x = as_float32_block(block, self.channels, where="audio")
        n = x.shape[0]
        if n == 0:
            return
        total = float(np.sum(x, dtype=np.float64))
        if not math.isfinite(total):
            bad = int(np.nonzero(~np.isfinite(x).all(axis=1))[0][0]) + self.frames
            raise AudioInputError(f"NaN or Inf sample at {bad / self.fs:.3f} s", where="audio")
        self.loud.feed(x)
        self.tp.feed(x)
        if self.channels == 2:
            ms = np.empty((2, n), dtype=np.float32)
            mid, side = ms[0], ms[1]
            np.add(x[:, 0], x[:, 1], out=mid)
            mid *= np.float32(0.5)
            np.subtract(x[:, 0], x[:, 1], out=side)
            side *= np.float32(0.5)
            sq = np.square(mid)
            sq += np.square(side)  # (L^2 + R^2) / 2 = M^2 + S^2
        else:
            mid = x[:, 0]
            side = None
            sq = np.square(mid)
            ms = mid[None, :]
        self.sum_sq += float(np.sum(sq, dtype=np.float64))
        self.sum_mid += total / self.channels  # sum(M) = sum(L + R) / 2, or the mono sum
        if side is not None:
            self.sum_side += float(np.sum(side, dtype=np.float64))
        env_sq = sq
        dc_mid, dc_side = self._running_dc(n)
        if abs(dc_mid) + abs(dc_side) > _ENVELOPE_DC_MIN:
            # the envelope (dynamics, free decays) measures the signal, not a DC offset that would put
            # a floor under every quiet part; the offset is estimated by the running channel means
            env_sq = np.square(mid - np.float32(dc_mid))
            if side is not None:
                env_sq += np.square(side - np.float32(dc_side))
        dec_mid = self.yin.decimator.process(mid)
        if self.pitch:
            self.yin.feed_decimated(dec_mid)
        if self.lf:
            dec_side = self.dec_side.process(side) if self.channels == 2 else np.zeros_like(dec_mid)
            self._feed_lf(np.stack([dec_mid, dec_side[: dec_mid.size]]))
        self._feed_envelope(env_sq)
        self._feed_stft(ms)
        if self.blind:
            lo, hi = self._mid_range
            a, b = max(lo, self.frames), min(hi, self.frames + n)
            if b > a:
                self._mid_parts.append(x[a - self.frames:b - self.frames].copy())
        self.frames += n

    def _feed_envelope(self, sq: np.ndarray) -> None:
        buf = np.concatenate([self._env_buf, sq]) if self._env_buf.size else sq
        k = buf.size // self.env_hop
        if k:
            frames = buf[: k * self.env_hop].reshape(k, self.env_hop)
            self.envelope.append(frames.mean(axis=1, dtype=np.float64))
        self._env_buf = buf[k * self.env_hop:].copy()

    def _feed_lf(self, dec: np.ndarray) -> None:
        buf = np.concatenate([self._lf_buf, dec], axis=1) if self._lf_buf.size else dec
        n = buf.shape[1]
        count = (n - LF_WIN) // LF_HOP + 1 if n >= LF_WIN else 0
        if count > 0:
            view = np.lib.stride_tricks.sliding_window_view(buf, LF_WIN, axis=1)[:, ::LF_HOP][:, :count]
            spec = scipy.fft.rfft(view * self.lf_window, axis=2)
            power = spec.real * spec.real
            power += spec.imag * spec.imag
            power *= np.float32(self.lf_scale)
            # frame level (unweighted mid + side power of the low band) for the same kind of gate
            energy = power.sum(axis=(0, 2), dtype=np.float64) * (2.0 / LF_WIN)
            with np.errstate(divide="ignore"):
                level = 10.0 * np.log10(energy)
            level = np.where(np.isfinite(level), level, _LEVEL_MIN - 1.0)
            lb = np.floor(level - _LEVEL_MIN).astype(np.int64)
            keep = np.nonzero(lb >= 0)[0]
            if keep.size:
                lb = np.minimum(lb[keep], _LEVEL_BINS - 1)
                bins, inverse = np.unique(lb, return_inverse=True)
                onehot = np.zeros((bins.size, count), dtype=np.float32)
                onehot[inverse, keep] = 1.0
                for c in range(2):
                    self.acc_lf[bins, c] += onehot @ power[c]
                self.acc_lf_frames[bins] += np.bincount(inverse, minlength=bins.size)
                self.acc_lf_energy[bins] += np.bincount(inverse, weights=energy[keep], minlength=bins.size)
            buf = buf[:, count * LF_HOP:]
        self._lf_buf = np.ascontiguousarray(buf)

    def _lf_spectrum(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Gated long-term low-band power of mid and side on the LF bin grid, or None."""
        frames = self.acc_lf_frames
        if not self.lf or frames.sum() == 0:
            return None
        mean_level = 10.0 * math.log10(self.acc_lf_energy.sum() / frames.sum())
        gate = (frames > 0) & (_LEVEL_MIN + np.arange(_LEVEL_BINS) + 1.0 > mean_level + _REL_GATE_LU)
        n = frames[gate].sum()
        acc = self.acc_lf[gate].sum(axis=0) / n
        return acc[0], acc[1]

    def _feed_stft(self, ms: np.ndarray) -> None:
        """``ms``: ``(channels_used, frames)`` channel-major mid (and side) samples."""
        buf = np.concatenate([self._stft_buf, ms], axis=1) if self._stft_buf.size else ms
        n = buf.shape[1]
        count = (n - STFT_WIN) // STFT_HOP + 1 if n >= STFT_WIN else 0
        if count > 0:
            for s in range(0, count, 512):  # bounded scratch memory
                c = min(512, count - s)
                self._frames(buf[:, s * STFT_HOP: (s + c - 1) * STFT_HOP + STFT_WIN], c)
            buf = buf[:, count * STFT_HOP:]
        self._stft_buf = np.ascontiguousarray(buf)

    def _frames(self, seg: np.ndarray, count: int) -> None:
        # (chans, count, WIN) frames; the window is pre-scaled by 1/sqrt(sum w^2) so |X|^2 is the power
        view = np.lib.stride_tricks.sliding_window_view(seg, STFT_WIN, axis=1)[:, ::STFT_HOP][:, :count]
        spec = scipy.fft.rfft(view * self.window_scaled, axis=2)
        re, im = spec.real, spec.imag
        power = re * re
        power += im * im
        pm = power[0]
        if seg.shape[0] == 2:
            ps = power[1]
            # M S* = (Mr Sr + Mi Si) + i (Mi Sr - Mr Si)
            cross_re = re[0] * re[1]
            cross_re += im[0] * im[1]
            cross_im = im[0] * re[1]
            cross_im -= re[0] * im[1]
        else:
            ps = None
            cross_re = cross_im = None
        # K-weighted loudness of the frame: L^2 + R^2 = 2 (M^2 + S^2)
        energy = 2.0 * (pm @ self.kw_ms + ps @ self.kw_ms) if ps is not None else 2.0 * (pm @ self.kw_ms)
        with np.errstate(divide="ignore"):
            level = -0.691 + 10.0 * np.log10(energy.astype(np.float64))
        level = np.where(np.isfinite(level), level, _LEVEL_MIN - 1.0)
        lb = np.floor(level - _LEVEL_MIN).astype(np.int64)
        keep = np.nonzero(lb >= 0)[0]
        if keep.size == 0:
            return
        lb = np.minimum(lb[keep], _LEVEL_BINS - 1)
        bins, inverse = np.unique(lb, return_inverse=True)
        # one-hot (present level bins x frames) @ per-frame values: a float32 GEMM per quantity
        onehot = np.zeros((bins.size, pm.shape[0]), dtype=np.float32)
        onehot[inverse, keep] = 1.0

        def acc(target: np.ndarray, values: np.ndarray) -> None:
            v = values.reshape(values.shape[0], -1)
            target[bins] += (onehot @ v).reshape((bins.size, *values.shape[1:]))

        acc(self.acc_pm, pm)
        if ps is not None:
            acc(self.acc_ps, ps)
        if cross_re is not None:
            acc(self.acc_ms_re, cross_re)
            acc(self.acc_ms_im, cross_im)
        self.acc_frames[bins] += np.bincount(inverse, minlength=bins.size)
        self.acc_energy[bins] += np.bincount(inverse, weights=energy[keep].astype(np.float64),
                                             minlength=bins.size)
        g = self.group
        grouped = pm[:, 1:1 + g * STFT_POINTS:g].copy()
        for j in range(1, g):  # mean of g adjacent bins by strided adds (a GEMM wastes time on zeros)
            grouped += pm[:, 1 + j:1 + g * STFT_POINTS:g]
        grouped *= np.float32(1.0 / g)
        gdb = spectrum.power_db(grouped)
        acc(self.acc_stft[:, 0], gdb)
        acc(self.acc_stft[:, 1], gdb * gdb)
        mel_db = spectrum.power_db(pm @ self.mel_w_t)
        acc(self.acc_mel[:, 0], mel_db)
        acc(self.acc_mel[:, 1], mel_db * mel_db)

    # -- results ---------------------------------------------------------------------------
    def _gate(self) -> np.ndarray:
        """Level bins kept: absolute -70 (by construction) and relative -20 LU."""
        if self.acc_frames.sum() == 0:
            return np.zeros(_LEVEL_BINS, dtype=bool)
        mean_level = -0.691 + 10.0 * math.log10(self.acc_energy.sum() / self.acc_frames.sum())
        lower_edges = _LEVEL_MIN + np.arange(_LEVEL_BINS)
        return (self.acc_frames > 0) & (lower_edges + 1.0 > mean_level + _REL_GATE_LU)

    def _running_dc(self, n_new: int = 0) -> tuple[float, float]:
        """Means of mid and side so far (including the ``n_new`` frames just summed)."""
        n = max(self.frames + n_new, 1)
        return self.sum_mid / n, self.sum_side / n

    def _dc_offset_dbfs(self) -> float:
        """The larger channel mean, |mean(L)| or |mean(R)|, in dBFS (floor -150)."""
        dc_mid, dc_side = self._running_dc()
        dc = abs(dc_mid) + abs(dc_side)  # = max(|M + S|, |M - S|)
        return max(FLOOR_DB, 20.0 * math.log10(dc)) if dc > 0 else FLOOR_DB

    def result(self) -> dict[str, Any]:
        """The features document (plain JSON types)."""
        fs = self.fs
        gate = self._gate()
        n_frames = float(self.acc_frames[gate].sum())
        pm = self.acc_pm[gate].sum(axis=0) / max(n_frames, 1.0)
        ps = self.acc_ps[gate].sum(axis=0) / max(n_frames, 1.0)
        msx = self.acc_ms_re[gate].sum(axis=0) + 1j * self.acc_ms_im[gate].sum(axis=0)
        # 1/12-octave long-term spectrum
        centers = spectrum.twelfth_octave_centers_hz(fs)
        band = spectrum.band_average_matrix(centers, self.freqs.size, self.bin_hz)
        mid_p, side_p = band @ pm, band @ ps
        lf = self._lf_spectrum()
        if lf is not None:
            low = centers < LF_CROSSOVER_HZ
            band_lf = spectrum.band_average_matrix(centers[low], LF_WIN // 2 + 1, self.lf_bin_hz)
            mid_p[low], side_p[low] = band_lf @ lf[0], band_lf @ lf[1]
        mid_db = spectrum.power_db(mid_p) if n_frames else np.full(centers.size, FLOOR_DB)
        side_db = (spectrum.power_db(side_p) if n_frames and self.channels == 2
                   else np.full(centers.size, FLOOR_DB))
        # STFT statistics
        g = self.group
        stft_freqs = (np.arange(STFT_POINTS) * g + 1 + (g - 1) / 2.0) * self.bin_hz
        st = self.acc_stft[gate].sum(axis=0)
        ml = self.acc_mel[gate].sum(axis=0)
        if n_frames:
            st_mean = st[0] / n_frames
            st_std = np.sqrt(np.maximum(st[1] / n_frames - st_mean ** 2, 0.0))
            mel_mean = ml[0] / n_frames
            mel_std = np.sqrt(np.maximum(ml[1] / n_frames - mel_mean ** 2, 0.0))
        else:
            st_mean = np.full(STFT_POINTS, FLOOR_DB)
            st_std = np.zeros(STFT_POINTS)
            mel_mean = np.full(N_MELS, FLOOR_DB)
            mel_std = np.zeros(N_MELS)
        # stereo
        edges = stereo.band_edges_hz(fs)
        eband = spectrum.edges_average_matrix(edges, self.freqs.size, self.bin_hz)
        if self.channels == 2 and n_frames:
            coh = stereo.band_coherence(pm, ps, msx / max(n_frames, 1.0), self.freqs, edges)
            in_range = (self.freqs >= edges[0]) & (self.freqs < edges[-1])
            s2m = float(spectrum.power_db(ps[in_range].sum()) - spectrum.power_db(pm[in_range].sum()))
            side_band = spectrum.power_db(eband @ ps)
        else:
            coh = np.full(edges.size - 1, 1.0 if n_frames else np.nan)
            s2m = FLOOR_DB if n_frames else None
            side_band = np.full(edges.size - 1, FLOOR_DB)
        mid_band = spectrum.power_db(eband @ pm) if n_frames else np.full(edges.size - 1, FLOOR_DB)
        # loudness
        st_lufs = self.loud.short_term_lufs()
        factor = dynamics.reduce_factor(st_lufs.size)
        st_series = dynamics.energy_mean_db(np.where(np.isfinite(st_lufs), st_lufs, FLOOR_DB), factor)
        # true peak / sample peak
        tp = self.tp.true_peak_dbtp() if self.true_peak else math.nan
        sp_db = self.tp.sample_peak_dbfs()
        sp = sp_db if math.isfinite(sp_db) else None
        # F0
        f0, voiced = self.yin.result()
        f0_doc = self._f0_doc(f0, voiced)
        # envelope: RMS envelope, crest factor, reverb
        env = np.concatenate(self.envelope) if self.envelope else np.zeros(0)
        rms_step = max(1, round(RMS_HOP_S / ENVELOPE_HOP_S))
        n_rms = env.size // rms_step
        rms_env = env[: n_rms * rms_step].reshape(n_rms, rms_step).mean(axis=1) if n_rms else np.zeros(0)
        rf = dynamics.reduce_factor(rms_env.size)
        rms_env_db = dynamics.energy_mean_db(spectrum.power_db(rms_env), rf)
        # a thinned envelope has lost the fast peaks that dynamics are judged on: keep the middle
        # MAX_POINTS frames (100 s) at the full 50 ms hop beside it
        excerpt_start = (rms_env.size - dynamics.MAX_POINTS) // 2 if rf > 1 else 0
        rms_excerpt_db = (spectrum.power_db(rms_env[excerpt_start: excerpt_start + dynamics.MAX_POINTS])
                          if rf > 1 else None)
        ms_total = self.sum_sq / max(self.frames, 1)  # the waveform's RMS, an offset included
        rms_db = 10.0 * math.log10(ms_total) if ms_total > 0 else None
        rev = reverb.analyze_reverb(env, ENVELOPE_HOP_S)
        rev_doc: dict[str, Any] = {k: rev[k] for k in ("rt60_s", "edt_s", "drr_db", "edc_db", "edc_hop_s")}
        if self.blind:
            rev_doc["blind"] = self._blind()
        finite_st = st_lufs[np.isfinite(st_lufs) & (st_lufs > -70.0)]
        doc: dict[str, Any] = {
            "version": FEATURES_VERSION,
            "sample_rate_hz": round(fs),
            "channels": self.channels,
            "duration_s": round(self.frames / fs, 6),
            "spectrum": {
                "freqs_hz": dynamics.rounded(centers, 3),
                "mid_db": dynamics.rounded(mid_db, 3),
                "side_db": dynamics.rounded(side_db, 3),
            },
            "stft": {
                "win": STFT_WIN,
                "hop": STFT_HOP,
                "freqs_hz": dynamics.rounded(stft_freqs, 2),
                "mag_db_mean": dynamics.rounded(st_mean, 2),
                "mag_db_std": dynamics.rounded(st_std, 2),
            },
            "mel": {
                "n_mels": N_MELS,
                "fmin_hz": MEL_FMIN_HZ,
                "fmax_hz": self.mel_fmax,
                "mean_db": dynamics.rounded(mel_mean, 2),
                "std_db": dynamics.rounded(mel_std, 2),
            },
            "loudness": {
                "integrated_lufs": _r(self.loud.integrated_lufs(), 3),
                "loudness_range_lu": _r(self.loud.loudness_range_lu(), 3),
                "momentary_max_lufs": _r(self.loud.momentary_max_lufs(), 3),
                "short_term_max_lufs": _r(self.loud.short_term_max_lufs(), 3),
                "short_term_lufs": dynamics.rounded(st_series, 2),
                "short_term_hop_s": round(0.1 * factor, 6),
            },
            "true_peak_dbtp": _r(tp if math.isfinite(tp) else None, 3),
            "true_peak_measured": self.true_peak,
            "sample_peak_dbfs": _r(sp, 3),
            "dc_offset_dbfs": round(self._dc_offset_dbfs(), 2),
            "stereo": {
                "band_edges_hz": dynamics.rounded(edges, 1),
                "mid_energy_db": dynamics.rounded(mid_band, 2),
                "side_energy_db": dynamics.rounded(side_band, 2),
                "coherence": [None if not np.isfinite(c) else round(float(c), 4) for c in coh],
                "side_to_mid_db": _r(s2m, 2),
            },
            "f0": f0_doc,
            "reverb": rev_doc,
            "dynamics": {
                "crest_factor_db": _r(sp - rms_db if sp is not None and rms_db is not None else None, 3),
                "rms_db": _r(rms_db, 3),
                "rms_envelope_db": dynamics.rounded(rms_env_db, 2),
                "rms_hop_s": round(RMS_HOP_S * rf, 6),
                **({} if rms_excerpt_db is None else {
                    "rms_excerpt_db": dynamics.rounded(np.maximum(rms_excerpt_db, FLOOR_DB), 2),
                    "rms_excerpt_start_s": round(excerpt_start * RMS_HOP_S, 6),
                    "rms_excerpt_hop_s": RMS_HOP_S,
                }),
                "short_term_p10_lufs": _r(dynamics.percentile_or_none(finite_st, 10), 3),
                "short_term_p95_lufs": _r(dynamics.percentile_or_none(finite_st, 95), 3),
            },
        }
        return doc

    def _f0_doc(self, f0: np.ndarray, voiced: np.ndarray) -> dict[str, Any]:
        n = f0.size
        factor = dynamics.reduce_factor(n)
        if n:
            n_groups = -(-n // factor)
            padded_v = np.zeros(n_groups * factor, dtype=bool)
            padded_v[:n] = voiced
            padded_f = np.full(n_groups * factor, np.nan)
            padded_f[:n] = np.where(voiced, f0, np.nan)
            counts = np.minimum(factor, n - np.arange(n_groups) * factor)
            series_voiced = padded_v.reshape(n_groups, factor).sum(axis=1) >= 0.5 * counts
            # all-NaN groups are unvoiced (0); nanmedian is kept off them rather than its warning
            # silenced: warnings.catch_warnings is process-wide and the two analyses run in threads
            groups = padded_f.reshape(n_groups, factor)
            has_f0 = ~np.isnan(groups).all(axis=1)
            med = np.zeros(n_groups)
            if has_f0.any():
                med[has_f0] = np.nanmedian(groups[has_f0], axis=1)
            series_f0 = np.where(series_voiced, med, 0.0)
        else:
            series_voiced = np.zeros(0, dtype=bool)
            series_f0 = np.zeros(0)
        vf = f0[voiced]
        if not self.pitch:
            factor = 1
        return {
            "algo": "yin",
            "frame_rate_hz": 100,
            "fmin_hz": FMIN_HZ,
            "fmax_hz": FMAX_HZ,
            "voiced_ratio": round(float(voiced.mean()), 4) if n else None,
            "measured": self.pitch,
            "median_f0_hz": round(float(np.median(vf)), 3) if vf.size else None,
            "f0_hz": dynamics.rounded(series_f0, 2),
            "voiced": [bool(v) for v in series_voiced],
            "series_hop_s": round(factor / 100.0, 6),
            "pitch_class_hist": dynamics.rounded(pitch_class_histogram(f0, voiced), 5),
        }

    def _blind(self) -> dict[str, Any]:
        from engine.estimators import estimate_reverb

        if not self._mid_parts:
            return {"rt60_s": None, "drr_db": None, "dsp_rt60_s": None, "model": None,
                    "reason": "no audio captured for the blind estimate"}
        audio = np.concatenate(self._mid_parts) if len(self._mid_parts) > 1 else self._mid_parts[0]
        self._mid_parts = [audio]  # the parts are freed before the estimate allocates its own arrays
        return estimate_reverb(audio, round(self.fs))


def _r(v: float | None, digits: int) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


def _array_blocks(audio: np.ndarray) -> Iterator[np.ndarray]:
    for i in range(0, audio.shape[0], BLOCK_FRAMES):
        yield audio[i:i + BLOCK_FRAMES]


def analysis_options(mode: str) -> dict[str, bool]:
    """Keyword options of :func:`analyze_features` for reference/target analysis in ``mode``
    (``"A"`` or ``"B"``); the one place that decides it, for the CLI, the facade and the service.

    Mode A's inversion (EQ, width, loudness) uses neither F0 nor the learned reverb estimate, so it
    skips YIN; mode B needs F0 (pitch) and ``reverb.blind`` (the ONNX RT60/DRR estimate). Neither
    inversion reads the inputs' true peak (the limiter and the result's report measure their own), so
    both skip its 4x interpolation; the sample peak (crest factor, clipping warnings) is kept."""
    m = str(mode).upper()
    if m == "A":
        return {"pitch": False, "blind_reverb": False, "true_peak": False}
    if m == "B":
        return {"pitch": True, "blind_reverb": True, "true_peak": False}
    raise TonematchError(f"unknown mode {mode!r}; use 'A' or 'B'", where="mode")


def analyze_features(source: str | os.PathLike | np.ndarray, *, sample_rate_hz: int | None = None,
                     blind_reverb: bool = False, pitch: bool = True, true_peak: bool = True,
                     progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Measure a recording: path (streamed in blocks, memory flat; resampled to ``sample_rate_hz``
    when given) or ``(frames, channels)`` / 1-D array at ``sample_rate_hz`` (required then).

    Returns the features document of docs/ARCHITECTURE.md (deterministic, JSON-serialisable,
    series reduced to <= 2000 points). ``blind_reverb=True`` adds ``reverb.blind`` from the learned
    estimator on the middle <= 30 s (mode B uses it; costs an ONNX run). ``pitch=False`` skips YIN
    (about a quarter of the time; mode A's inversion does not use F0): the ``f0`` block is then
    present with ``measured: false``, ``voiced_ratio``/``median_f0_hz`` None and empty series.
    ``true_peak=False`` skips the 4x true-peak interpolation (about a fifth of the time):
    ``true_peak_dbtp`` is None and ``true_peak_measured`` false; ``sample_peak_dbfs`` is measured.
    ``progress`` is called with the fraction (0..1) of frames analysed after every block.
    """
    if isinstance(source, np.ndarray):
        if sample_rate_hz is None:
            raise TonematchError("sample_rate_hz is required when analysing an array", where="sample_rate_hz")
        audio = source[:, None] if source.ndim == 1 else source
        if audio.ndim != 2 or audio.shape[1] not in (1, 2):
            raise TonematchError(f"audio shaped {source.shape}; expected (frames, 1 or 2 channels)",
                                 where="audio")
        if audio.shape[0] == 0:
            raise AudioInputError("audio has no frames", where="audio")
        expected = audio.shape[0]
        analyzer = FeatureAnalyzer(int(sample_rate_hz), audio.shape[1], expected_frames=expected,
                                   blind_reverb=blind_reverb, pitch=pitch, true_peak=true_peak)
        blocks: Iterator[np.ndarray] = _array_blocks(audio)
    else:
        from engine.audio_io import iter_blocks, probe

        info = probe(source)
        rate = int(sample_rate_hz or info.sample_rate_hz)
        expected = round(info.frames * rate / info.sample_rate_hz)
        analyzer = FeatureAnalyzer(rate, info.channels, expected_frames=expected, blind_reverb=blind_reverb,
                                   pitch=pitch, true_peak=true_peak)
        blocks = iter_blocks(source, BLOCK_FRAMES, sample_rate_hz=rate)
    trim = PeriodicTrim()
    for block in blocks:
        analyzer.feed(block)
        trim.tick()
        if progress is not None:
            progress(min(1.0, analyzer.frames / max(1, expected)))
    if analyzer.frames == 0:
        raise AudioInputError("audio has no frames", where=str(source) if not isinstance(source, np.ndarray)
                              else "audio")
    return analyzer.result()
