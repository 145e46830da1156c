"""Render style_params onto audio: in memory (:func:`render`) or file to file, streaming
(:func:`render_file`, memory flat in the file's length), plus the loudness resolution
(:func:`resolve_gain`) that finds the make-up gain so the *limited* output hits ``lufs.target_db``.

Loudness resolution. The chain splits into "pre" (everything before the gain stage) and "post"
(gain + true-peak limiter). One pass runs "pre" and keeps a compact model of its output: per cell of
about 1.4 ms (64 frames at 44.1/48 kHz, whatever the file's length up to ~90 minutes) the K-weighted
energy and the sample peak, in dB as float16. The limiter's effect on loudness for any gain ``G`` is
then simulated on the cells (hold, release, gated BS.1770 integration), chunk by chunk so the scratch
memory stays flat, and ``G`` is solved for. :func:`render_file` keeps the "pre" output in a float32
temporary file (page cache) so the final pass runs only gain + limiter; it measures the real output
loudness and, if the model missed by more than :data:`LUFS_TOLERANCE_LU`, corrects the gain and runs
"post" once more.
With ``max_hard_limit_share`` the gain never passes the point where the model forecasts the limiter
cutting hard on more than that share of the audio (:meth:`LoudnessModel.gain_cap`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d

from engine.audio_io import AudioWriter, iter_blocks, probe
from engine.chain import CHAIN_ORDER, POST_STAGES, ChainRunner, build_chain
from engine.errors import AudioInputError, ParamsError
from engine.features import FeatureAnalyzer
from engine.iir import sos_steady_state_zi, sosfilt
from engine.loudness import LoudnessMeter, gated_integrated_lufs, k_weighting_sos
from engine.memory import PeriodicTrim, release_freed_memory
from engine.params import with_note
from engine.processors.limiter import DEFAULT_RELEASE_MS, HARD_LIMIT_DB, MARGIN_DB
from engine.threads import BackgroundSink, prefetch, usable_cores
from engine.true_peak import TruePeakMeter

BLOCK_FRAMES = 65536
RENDER_TRIM_EVERY_BLOCKS = 16  # freed heap memory goes back to the OS every ~24 s of audio
CELL_FRAMES = 64
#: the loudness model's cell length: 64 frames at 44.1 and 48 kHz.
MODEL_CELL_S = 0.0014
#: past this many cells (about 90 minutes at 44.1 kHz) cells get longer, so memory stays bounded.
MAX_MODEL_CELLS = 4_000_000
_MODEL_CHUNK_CELLS = 1 << 17
_PEAK_ALLOWANCE_DB = 0.2  # sample peak -> a typical true peak; the final pass measures the real one
#: the final loudness may miss the target by this much before a corrective "post" pass runs.
LUFS_TOLERANCE_LU = 0.1
#: the largest share of the audio on which the limiter may cut more than HARD_LIMIT_DB (the report's
#: artifacts_rate) on the way to a loudness target that came from the reference (tonematch match and
#: the service's match jobs pass it; explicit and preset targets, and the render functions' default,
#: are reached whatever it costs). Past it, extra gain mostly turns into gain reduction and peaks
#: flatten (an ambient track matched to a bass-heavy reference needed +24 dB of gain for the last
#: 0.4 LU, 28 dB of limiting, crest factor 3 dB); the render then stops at this share and says so.
MAX_HARD_LIMIT_SHARE = 0.1
MAX_SERIES_POINTS = 2000
GR_FINE_FRAMES = 1024
PRE_STAGES = tuple(s for s in CHAIN_ORDER if s not in POST_STAGES)

Progress = Callable[[float], None] | None


def _needs_resolution(style_params: dict[str, Any]) -> bool:
    lufs = style_params.get("lufs")
    return bool(lufs) and lufs.get("target_db") is not None and lufs.get("gain_db") is None


def _with_gain(style_params: dict[str, Any], gain_db: float, note: str | None = None,
               reached_lufs: float | None = None) -> dict[str, Any]:
    """``style_params`` with ``lufs.gain_db``. With ``note`` (why the target was not reached), the note
    is added to ``notes.lufs`` and ``lufs.target_db`` becomes ``reached_lufs``, so a preset made from
    these params re-applies to the same result instead of forcing the original target."""
    out = with_note(style_params, "lufs", note) if note else dict(style_params)
    out["lufs"] = dict(style_params.get("lufs") or {})
    out["lufs"]["gain_db"] = round(float(gain_db), 4)
    if note and reached_lufs is not None:
        out["lufs"]["target_db"] = round(float(reached_lufs), 2)
    return out


def _array_blocks(audio: np.ndarray, block_frames: int) -> Iterator[np.ndarray]:
    for i in range(0, audio.shape[0], block_frames):
        yield audio[i:i + block_frames]


def _as_2d(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] not in (1, 2):
        raise AudioInputError(f"audio shaped {a.shape}; expected (frames, 1 or 2 channels)", where="audio")
    return a


def _run(chain: ChainRunner, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for b in blocks:
        y = chain.process(b)
        if y.shape[0]:
            yield y
    for y in chain.finish():
        if y.shape[0]:
            yield y


class _GrTrack:
    """Max gain reduction (dB) per ``GR_FINE_FRAMES`` frames of a stream (the "pre" chain's compressor),
    to be merged into the report's curve; 60 minutes at 48 kHz hold ~2800 floats per minute."""

    def __init__(self) -> None:
        self._bins: list[np.ndarray] = []
        self._carry = np.zeros(0, np.float32)
        self.frames = 0
        self.any = False

    def feed(self, gr: np.ndarray | None, n: int) -> None:
        if n == 0:
            return
        if gr is None or gr.shape[0] != n:
            gr = np.zeros(n, np.float32)
        else:
            self.any = self.any or bool(gr.any())
        self.frames += n
        g = np.concatenate([self._carry, gr]) if self._carry.size else gr
        m = (g.size // GR_FINE_FRAMES) * GR_FINE_FRAMES
        if m:
            self._bins.append(g[:m].reshape(-1, GR_FINE_FRAMES).max(axis=1))
        self._carry = g[m:].astype(np.float32)

    def fine(self) -> np.ndarray:
        bins = list(self._bins)
        if self._carry.size:
            bins.append(np.array([self._carry.max()], np.float32))
        return np.concatenate(bins) if bins else np.zeros(0, np.float32)


def _run_tracking(chain: ChainRunner, blocks: Iterable[np.ndarray], track: _GrTrack) -> Iterator[np.ndarray]:
    """:func:`_run` that also records the chain's gain reduction into ``track``."""
    for b in blocks:
        y = chain.process(b)
        track.feed(chain.gain_reduction_db, y.shape[0])
        if y.shape[0]:
            yield y
    for y in chain.finish():
        track.feed(None, y.shape[0])
        if y.shape[0]:
            yield y


# ---------------------------------------------------------------------------------------------------
# loudness model of the "pre" output


class _CellModel:
    """Per cell of ``cell_frames`` frames (about 1.4 ms): K-weighted energy (channel sum) and sample
    peak of the pre output, both in dB as float16 (0.03 dB steps at -60 dB; 4 bytes a cell, so a
    60-minute file at 44.1 kHz holds 10 MB)."""

    def __init__(self, sample_rate_hz: int, channels: int, cell_frames: int = CELL_FRAMES,
                 expected_frames: int = 0) -> None:
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = int(channels)
        self.cell_frames = int(cell_frames)
        self._sos = k_weighting_sos(sample_rate_hz).astype(np.float32)
        self._zi = np.zeros((self._sos.shape[0], self.channels, 2), np.float32)
        self._carry_e = np.zeros(0, np.float32)
        self._carry_y = np.zeros((0, self.channels), np.float32)
        # filled in place (sized from expected_frames, grown if needed): collecting per-block arrays
        # and concatenating them at the end held the cells twice
        capacity = expected_frames // self.cell_frames + 2
        self._energy = np.empty(capacity, np.float16)
        self._peak = np.empty(capacity, np.float16)
        self._n = 0
        self.frames = 0

    @staticmethod
    def _db(power: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return (10.0 * np.log10(power)).astype(np.float16)  # silence: -inf (0 energy)

    def feed(self, y: np.ndarray) -> None:
        if y.shape[0] == 0:
            return
        if self.frames == 0:  # started as the output's meter starts (LoudnessMeter.feed)
            self._zi = sos_steady_state_zi(self._sos, y[0]).astype(np.float32)
        self.frames += y.shape[0]
        kw, self._zi = sosfilt(self._sos, y.T, axis=1, zi=self._zi)  # sosfilt makes its own C copy
        e = np.square(kw[0], dtype=np.float32)
        for c in range(1, self.channels):
            e += np.square(kw[c])
        if self._carry_e.size:
            e = np.concatenate([self._carry_e, e])
            y = np.concatenate([self._carry_y, y])
        cell = self.cell_frames
        n_cells = e.size // cell
        m = n_cells * cell
        if n_cells:
            rows = np.ascontiguousarray(y[:m]).reshape(n_cells, cell * self.channels)
            peak = np.maximum(rows.max(axis=1), -rows.min(axis=1))
            self._put(self._db(e[:m].reshape(n_cells, cell).sum(axis=1, dtype=np.float64)),
                      self._db(np.square(peak, dtype=np.float64)))
        self._carry_e, self._carry_y = e[m:].copy(), y[m:].copy()

    def _put(self, energy_db: np.ndarray, peak_db: np.ndarray) -> None:
        end = self._n + energy_db.size
        if end > self._energy.size:
            self._energy = np.resize(self._energy, max(end, self._energy.size * 5 // 4))
            self._peak = np.resize(self._peak, self._energy.size)
        self._energy[self._n:end] = energy_db
        self._peak[self._n:end] = peak_db
        self._n = end

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(energy_db, peak_db)`` per cell (views, float16); the partial last cell is closed here."""
        if self._carry_e.size:
            self._put(self._db(np.array([self._carry_e.sum(dtype=np.float64)])),
                      self._db(np.array([np.abs(self._carry_y).max()], np.float64) ** 2))
            self._carry_e = np.zeros(0, np.float32)
            self._carry_y = np.zeros((0, self.channels), np.float32)
        return self._energy[:self._n], self._peak[:self._n]


def _cell_frames_for(total_frames: int, sample_rate_hz: float) -> int:
    """Cells of about :data:`MODEL_CELL_S` (64 frames at 44.1/48 kHz, 16 at 8 kHz, 256 at 192 kHz):
    the limiter's hold is a few ms, and longer cells spread each peak's gain reduction over the whole
    cell (256-frame cells solved +66 dB instead of +24 on one track). Only past
    :data:`MAX_MODEL_CELLS` (about 90 minutes) do cells grow, and the measured correction pass has
    more to do."""
    cells = max(16, 2 ** round(math.log2(float(sample_rate_hz) * MODEL_CELL_S)))
    while total_frames / cells > MAX_MODEL_CELLS:
        cells *= 2
    return cells


class LoudnessModel:
    """Predicts the integrated loudness of ``limiter(gain(pre))`` for any gain from the cell model.

    Every evaluation walks the cells in chunks of whole 100 ms segments, so its scratch memory does not
    grow with the file's length (the limiter's release state is carried from chunk to chunk)."""

    def __init__(self, energy_db: np.ndarray, peak_db: np.ndarray, sample_rate_hz: int,
                 limiter: dict[str, Any] | None, cell_frames: int = CELL_FRAMES) -> None:
        self.energy_db = energy_db
        self.peak_db = peak_db  # sample peaks; a typical inter-sample allowance is added when used
        self.cell_frames = int(cell_frames)
        self.limiter = limiter
        fs = float(sample_rate_hz)
        cells_per_seg = 0.1 * fs / self.cell_frames
        n_seg = int(energy_db.size / cells_per_seg)
        self._starts = np.round(np.arange(n_seg + 1) * cells_per_seg).astype(np.int64)
        # every segment holds at least one cell (false only for cells over 100 ms, files of days)
        self._cells_per_segment = bool(np.all(self._starts[1:] > self._starts[:-1]))
        self._frames_per_block = 0.4 * fs
        segs_per_chunk = max(1, int(_MODEL_CHUNK_CELLS / max(cells_per_seg, 1.0)))
        bounds = [int(b) for b in self._starts[::segs_per_chunk]]
        if not bounds or bounds[-1] < energy_db.size:
            bounds.append(int(energy_db.size))
        self._bounds = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
        self._active = int(np.count_nonzero(energy_db > -np.inf))
        self.max_peak_db = float(np.max(peak_db)) + _PEAK_ALLOWANCE_DB if peak_db.size else -np.inf
        if limiter:
            self.threshold_db = float(limiter.get("tp_db", -1.0)) - MARGIN_DB
            release_ms = float(limiter.get("release_ms", DEFAULT_RELEASE_MS))
            self.beta_cell = math.exp(-self.cell_frames / (release_ms * 1e-3 * fs))

    def _chunks(self, gain_db: float, limit: bool = True) -> Iterator[tuple[int, int, np.ndarray | None]]:
        """``(first_cell, end_cell, attenuation_db or None)`` per chunk at ``gain_db`` (never any
        attenuation without ``limit``)."""
        if not limit or not self.limiter or self.max_peak_db + gain_db <= self.threshold_db:
            for a, b in self._bounds:
                yield a, b, None
            return
        n = self.peak_db.size
        offset = np.float32(gain_db + _PEAK_ALLOWANCE_DB - self.threshold_db)
        chunk_len = max(1, int(600 / max(1e-9, -math.log(self.beta_cell))))  # keeps beta**-j finite
        v0 = 0.0
        for a, b in self._bounds:
            lo, hi = max(0, a - 1), min(n, b + 1)  # one neighbour each side for the 3-cell hold
            over = np.maximum(self.peak_db[lo:hi].astype(np.float32) + offset, np.float32(0.0))
            if not over.any() and v0 < 1e-6:  # no limiting here, and the last release has died out
                v0 = 0.0
                yield a, b, None
                continue
            u = maximum_filter1d(over, size=3, mode="nearest")[a - lo: a - lo + (b - a)]
            # release at cell rate: v[n] = max(u[n], beta v[n-1])
            att = np.empty_like(u)
            for s in range(0, u.size, chunk_len):
                seg = u[s:s + chunk_len]
                powers = self.beta_cell ** np.arange(seg.size, dtype=np.float64)
                acc = np.maximum.accumulate(seg / powers)
                np.maximum(acc, v0 * self.beta_cell, out=acc)
                acc *= powers
                att[s:s + seg.size] = acc
                v0 = float(acc[-1])
            yield a, b, att

    def lufs(self, gain_db: float, limit: bool = True) -> float | None:
        """Predicted integrated loudness (LUFS) of the limited output at ``gain_db`` (of the output
        with the limiter left out, without ``limit``)."""
        starts = self._starts
        if starts.size < 5:
            total = 0.0
            for a, b, att in self._chunks(gain_db, limit):
                total += self._chunk_energy(a, b, gain_db, att).sum()
            return gated_integrated_lufs(np.array([total / max(1.0, self.energy_db.size * self.cell_frames)]))
        if self._cells_per_segment:
            seg = np.zeros(starts.size - 1)
            k = 0
            for a, b, att in self._chunks(gain_db, limit):
                if a >= starts[-1]:
                    break
                e = self._chunk_energy(a, min(b, starts[-1]), gain_db, att)
                k1 = int(np.searchsorted(starts, min(b, starts[-1]), side="left"))
                if k1 > k:
                    seg[k:k1] = np.add.reduceat(e, starts[k:k1] - a, dtype=np.float64)
                    k = k1
            s = np.concatenate([[0.0], np.cumsum(seg)])
        else:
            parts = [self._chunk_energy(a, b, gain_db, att) for a, b, att in self._chunks(gain_db, limit)]
            s = np.concatenate([[0.0], np.cumsum(np.concatenate(parts), dtype=np.float64)])[starts]
        return gated_integrated_lufs((s[4:] - s[:-4]) / self._frames_per_block)

    def _chunk_energy(self, a: int, b: int, gain_db: float, att: np.ndarray | None) -> np.ndarray:
        e_db = self.energy_db[a:b].astype(np.float32) + np.float32(gain_db)
        if att is not None:
            e_db -= att[: b - a]
        e_db *= np.float32(0.1)
        return np.power(np.float32(10.0), e_db)

    def solve(self, target_lufs: float) -> float:
        """Gain (dB) whose predicted limited loudness equals ``target_lufs`` (monotone in the gain:
        bracket from the unlimited estimate, then secant + bisection)."""
        # start from the loudness without the limiter: the limited loudness at gain 0 of a signal
        # whose peaks sit 100 dB over the ceiling (a stack of +24 dB bands) reads near the ceiling,
        # and the search from there ran out of bracket and corrected itself into silence
        l0 = self.lufs(0.0, limit=False)
        if l0 is None:
            raise AudioInputError("the processed audio is silent or too quiet to measure (no loudness above "
                                  "-70 LUFS); cannot reach a loudness target", where="audio")
        g = target_lufs - l0
        if not self.limiter:
            return g

        def miss(gain_db: float) -> float:
            value = self.lufs(gain_db)
            return -200.0 if value is None else value - target_lufs

        f_g = miss(g)
        if abs(f_g) < 0.005:
            return g
        # limiting only takes loudness away, so at g the limited output is at most the target and
        # the bracket grows upward (the miss's sign picks the side, for float rounding's sake)
        direction = 1.0 if f_g < 0 else -1.0
        near, f_near = g, f_g
        far, f_far = g, f_g
        step = 1.0
        while f_far * f_g > 0 and abs(far - g) < 60.0:
            near, f_near = far, f_far
            far += direction * step
            step *= 2.0
            f_far = miss(far)
        if f_far * f_g > 0:
            return far  # 60 dB either way did not cross the target; correction pass measures the rest
        (lo, f_lo), (hi, f_hi) = sorted([(near, f_near), (far, f_far)])
        for _ in range(40):
            mid = lo - f_lo * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
            if not (lo < mid < hi):
                mid = 0.5 * (lo + hi)
            f_mid = miss(mid)
            if abs(f_mid) < 0.002:
                return mid
            if f_mid < 0:
                lo, f_lo = mid, f_mid
            else:
                hi, f_hi = mid, f_mid
            if hi - lo < 1e-4:
                break
        return 0.5 * (lo + hi)

    def hard_limit_share(self, gain_db: float) -> float:
        """Share of the (non-silent) cells the limiter cuts by more than ``HARD_LIMIT_DB`` at
        ``gain_db``: the model's forecast of the report's ``artifacts_rate``."""
        if not self.limiter or not self._active:
            return 0.0
        hard = 0
        for a, b, att in self._chunks(gain_db):
            if att is not None:
                hard += int(np.count_nonzero((att > HARD_LIMIT_DB) & (self.energy_db[a:b] > -np.inf)))
        return hard / self._active

    def gain_cap(self, gain_db: float, max_hard_limit_share: float | None) -> tuple[float | None, float]:
        """``(cap, share)``: ``share`` = :meth:`hard_limit_share` at ``gain_db``; ``cap`` = the gain (dB)
        at which the limiter cuts more than ``HARD_LIMIT_DB`` on exactly ``max_hard_limit_share`` of the
        audio, where ``gain_db`` exceeds that share (else None; always None for a None share)."""
        share = self.hard_limit_share(gain_db)
        if max_hard_limit_share is None or share <= max_hard_limit_share:
            return None, share
        # the share grows with the gain: bisect between "no cell reaches the threshold" and gain_db
        lo = min(gain_db, self.threshold_db - self.max_peak_db)
        hi = gain_db
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if self.hard_limit_share(mid) > max_hard_limit_share:
                hi = mid
            else:
                lo = mid
            if hi - lo < 1e-3:
                break
        return lo, share

    def slope(self, gain_db: float) -> float:
        """d(loudness)/d(gain) near ``gain_db`` (1 without limiting, below 1 when it works)."""
        a, b = self.lufs(gain_db - 0.25), self.lufs(gain_db + 0.25)
        if a is None or b is None:
            return 1.0
        return float(min(1.0, max(0.05, (b - a) / 0.5)))


class _GainPlan:
    """The make-up gain toward ``target_lufs`` on ``model``: where to start (the solved gain, or the
    clean-limiting cap of ``max_hard_limit_share`` below it), one correction by a measured miss (never
    above the cap), and why the output stays under the target."""

    def __init__(self, model: LoudnessModel, target_lufs: float, max_hard_limit_share: float | None) -> None:
        self.model = model
        self.target = float(target_lufs)
        self.wanted = model.solve(self.target)
        reached = model.lufs(self.wanted)
        if max_hard_limit_share is None and (reached is None or reached < self.target - LUFS_TOLERANCE_LU):
            # an explicit target no gain reaches at this ceiling: chasing it (the solver's bracket end,
            # then a correction by the miss over a near-flat slope: +183 dB on a voice at -6 dBTP)
            # turns the noise floor into full-scale limited noise; stop where limiting stays clean
            max_hard_limit_share = MAX_HARD_LIMIT_SHARE
        self.max_share = max_hard_limit_share
        self.cap, self.share = model.gain_cap(self.wanted, max_hard_limit_share)
        self.start = self.wanted if self.cap is None else self.cap

    def corrected(self, gain_db: float, measured_lufs: float | None) -> float:
        """The gain after one loudness correction by the measured miss (never above the cap)."""
        if measured_lufs is None or abs(self.target - measured_lufs) <= LUFS_TOLERANCE_LU:
            return gain_db
        gain = gain_db + (self.target - measured_lufs) / self.model.slope(gain_db)
        return gain if self.cap is None else min(gain, self.cap)

    def note(self, gain_db: float, measured_lufs: float | None) -> str | None:
        """Why the output stays under the target (the gain sits at the cap), or None."""
        if self.cap is None or measured_lufs is None or gain_db < self.cap - 1e-6 or \
                measured_lufs >= self.target - LUFS_TOLERANCE_LU:
            return None
        stopped = (f"stopped at {measured_lufs:.2f} LUFS, where the limiter cuts more than "
                   f"{HARD_LIMIT_DB:.0f} dB on {100 * float(self.max_share):.0f} % of the audio")
        reached = self.model.lufs(self.wanted)
        reached = -math.inf if reached is None else reached
        if reached < self.target - LUFS_TOLERANCE_LU:
            # the solver's bracket ran out: no gain makes the limited output that loud at this ceiling
            ceiling = float((self.model.limiter or {}).get("tp_db", -1.0))
            return (f"target {self.target:.2f} LUFS not reached: at a {ceiling:.1f} dBTP "
                    f"ceiling no gain gets there (at {self.wanted:+.0f} dB every peak would be flattened "
                    f"and it would still read {reached:.1f} "
                    f"LUFS); {stopped}. A higher ceiling gets louder")
        return (f"target {self.target:.2f} LUFS not reached: it needs about {self.wanted:+.1f} dB of "
                f"gain, at which the limiter would cut more than {HARD_LIMIT_DB:.0f} dB on "
                f"{100 * self.share:.0f} % of the audio (flattened peaks); {stopped}. Less low-end "
                "boost (intensity) or a higher ceiling gets louder")


# ---------------------------------------------------------------------------------------------------
# reports


class _Report:
    """Streams output statistics: loudness, true peak, downsampled gain reduction, artifacts."""

    def __init__(self, sample_rate_hz: int, channels: int, expected_frames: int,
                 analyzer: FeatureAnalyzer | None = None) -> None:
        self.sample_rate_hz = int(sample_rate_hz)
        self.channels = channels
        # with an analyzer the output's features come from this same pass, and its meters are ours
        self.analyzer = analyzer
        self.loudness = analyzer.loud if analyzer is not None else LoudnessMeter(sample_rate_hz, channels)
        self.tp = analyzer.tp if analyzer is not None else TruePeakMeter(sample_rate_hz, channels)
        hop = max(int(0.1 * sample_rate_hz), -(-max(1, expected_frames) // MAX_SERIES_POINTS))
        self.hop_frames = hop
        self._gr_bins: list[np.ndarray] = []
        self._gr_carry = np.zeros(0, np.float32)
        self.frames = 0
        self.hard_frames = 0
        self.clipped_frames = 0
        self.gr_max_db = 0.0
        self._pre_gr: _GrTrack | None = None

    def add_pre_gain_reduction(self, track: _GrTrack) -> None:
        """Add the "pre" chain's (compressor's) gain reduction to the curve, hop by hop (the curve is
        then the sum of the two stages' per-hop maxima)."""
        if track.any:
            self._pre_gr = track

    def feed(self, y: np.ndarray, gr: np.ndarray | None, limiter_gr: np.ndarray | None = None) -> None:
        """Measure output block ``y``; ``gr`` is its gain reduction (dB, the curve), ``limiter_gr``
        the limiter's part of it where a compressor shares the chain (hard limiting counts only the
        limiter; without it all of ``gr`` is the limiter's)."""
        n = y.shape[0]
        if n == 0:
            return
        self.frames += n
        if self.analyzer is not None:
            self.analyzer.feed(y)
        else:
            self.loudness.feed(y)
            self.tp.feed(y)
        if gr is None or gr.shape[0] != n:
            gr = np.zeros(n, np.float32)
        hard = gr if limiter_gr is None or limiter_gr.shape[0] != n else limiter_gr
        gr_max = float(gr.max())
        self.gr_max_db = max(self.gr_max_db, gr_max)
        if float(y.max()) >= 1.0 or float(y.min()) <= -1.0:  # rare: only then look frame by frame
            clipped = (np.abs(y) >= 1.0).any(axis=1)
            self.clipped_frames += int(np.count_nonzero(clipped))
            self.hard_frames += int(np.count_nonzero(clipped | (hard > HARD_LIMIT_DB)))
        elif float(hard.max()) > HARD_LIMIT_DB:
            self.hard_frames += int(np.count_nonzero(hard > HARD_LIMIT_DB))
        g = np.concatenate([self._gr_carry, gr])
        m = (g.size // self.hop_frames) * self.hop_frames
        if m:
            self._gr_bins.append(g[:m].reshape(-1, self.hop_frames).max(axis=1))
        self._gr_carry = g[m:]

    def result(self) -> dict[str, Any]:
        bins = list(self._gr_bins)
        if self._gr_carry.size:
            bins.append(np.array([self._gr_carry.max()], np.float32))
        gr = np.concatenate(bins) if bins else np.zeros(0, np.float32)
        gr_max = self.gr_max_db
        if self._pre_gr is not None and gr.size:
            fine = self._pre_gr.fine()
            starts = (np.arange(gr.size, dtype=np.int64) * self.hop_frames) // GR_FINE_FRAMES
            ok = starts < fine.size
            pre = np.zeros(gr.size, np.float32)
            if ok.any():
                pre[ok] = np.maximum.reduceat(fine, starts[ok])
            gr = gr + pre
            gr_max = max(gr_max, float(gr.max()))
        lufs = self.loudness.integrated_lufs()
        tp = self.tp.true_peak_dbtp()
        features = None if self.analyzer is None or not self.analyzer.frames else self.analyzer.result()
        return {
            "duration_s": self.frames / self.sample_rate_hz,
            "frames": self.frames,
            "sample_rate_hz": self.sample_rate_hz,
            "channels": self.channels,
            "lufs_integrated": None if lufs is None else round(float(lufs), 3),
            "true_peak_dbtp": None if not math.isfinite(tp) else round(float(tp), 3),
            "sample_peak_dbfs": (None if not math.isfinite(self.tp.sample_peak_dbfs())
                                 else round(self.tp.sample_peak_dbfs(), 3)),
            "gain_reduction_db": [round(float(v), 2) for v in gr],
            "gain_reduction_hop_s": self.hop_frames / self.sample_rate_hz,
            "gain_reduction_max_db": round(gr_max, 3),
            "artifacts_rate": self.hard_frames / max(1, self.frames),
            "clipped_frames": self.clipped_frames,
            **({"features": features} if features is not None else {}),
        }


# ---------------------------------------------------------------------------------------------------
# public API


def resolve_gain(source: str | os.PathLike | np.ndarray, style_params: dict[str, Any], *,
                 sample_rate_hz: int | None = None, verify: bool = True,
                 max_hard_limit_share: float | None = None) -> dict[str, Any]:
    """Return a copy of ``style_params`` with ``lufs.gain_db`` set so the limited output's integrated
    loudness is ``lufs.target_db`` (within 0.2 LU). ``source`` is a path (streamed) or an array (then
    ``sample_rate_hz`` is required). With ``verify`` the full chain runs once more at the solved gain
    and the gain is corrected by the measured miss (what segmented renders rely on).
    ``max_hard_limit_share`` (e.g. :data:`MAX_HARD_LIMIT_SHARE`) stops short of a target that would
    flatten the audio (see :meth:`LoudnessModel.gain_cap`); the note goes to ``notes.lufs``."""
    if not (style_params.get("lufs") or {}).get("target_db") is not None:
        return dict(style_params)
    target = float(style_params["lufs"]["target_db"])
    if isinstance(source, np.ndarray):
        if not sample_rate_hz:
            raise ParamsError("sample_rate_hz is required with an array source", where="sample_rate_hz")
        audio = _as_2d(source)
        channels, rate = audio.shape[1], int(sample_rate_hz)
        total = audio.shape[0]

        def blocks() -> Iterator[np.ndarray]:
            return _array_blocks(audio, BLOCK_FRAMES)
    else:
        info = probe(source)
        channels, rate = info.channels, int(sample_rate_hz or info.sample_rate_hz)
        total = int(info.frames * rate / info.sample_rate_hz)

        def blocks() -> Iterator[np.ndarray]:
            return iter_blocks(source, BLOCK_FRAMES, sample_rate_hz=rate)
    pre = ChainRunner(build_chain(style_params, rate, channels, stages=PRE_STAGES), channels)
    cells = _CellModel(rate, channels, _cell_frames_for(total, rate), total)
    for y in _run(pre, blocks()):
        cells.feed(y)
    model = LoudnessModel(*cells.arrays(), rate, style_params.get("limiter"), cells.cell_frames)
    plan = _GainPlan(model, target, max_hard_limit_share)
    if not verify:
        return _with_gain(style_params, plan.start)
    chain = ChainRunner(build_chain(_with_gain(style_params, plan.start), rate, channels), channels)
    meter = LoudnessMeter(rate, channels)
    for y in _run(chain, blocks()):
        meter.feed(y)
    measured = meter.integrated_lufs()
    # same rule as render_file's resolving path, so both give the same gain for the same file
    return _with_gain(style_params, plan.corrected(plan.start, measured), plan.note(plan.start, measured),
                      measured)


def render(audio: np.ndarray, style_params: dict[str, Any], *, sample_rate_hz: int, streaming: bool = True,
           chunk_s: float = 6.0, overlap: float = 0.5,
           max_hard_limit_share: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Process an in-memory ``(frames, channels)`` float32 array; returns ``(processed, report)``.

    With ``streaming`` the chain runs over chunks of ``chunk_s`` seconds with its state carried
    across them (the result equals a one-block render to float rounding; ``overlap`` is accepted for
    the SPEC's signature but not needed, since state carries). Resolves ``lufs.gain_db`` if missing."""
    x = _as_2d(audio)
    rate, channels = int(sample_rate_hz), x.shape[1]
    if x.shape[0] == 0:
        raise AudioInputError("audio is empty", where="audio")
    block = max(1, round(chunk_s * rate)) if streaming else max(1, x.shape[0])
    params = style_params
    if _needs_resolution(style_params):
        pre = ChainRunner(build_chain(style_params, rate, channels, stages=PRE_STAGES), channels)
        pre_gr = _GrTrack()
        pre_out = np.concatenate(list(_run_tracking(pre, _array_blocks(x, block), pre_gr)), axis=0)
        cells = _CellModel(rate, channels, _cell_frames_for(pre_out.shape[0], rate), pre_out.shape[0])
        for b in _array_blocks(pre_out, BLOCK_FRAMES):
            cells.feed(b)
        model = LoudnessModel(*cells.arrays(), rate, style_params.get("limiter"), cells.cell_frames)
        plan = _GainPlan(model, float(style_params["lufs"]["target_db"]), max_hard_limit_share)
        gain = plan.start
        passes = 0
        while True:
            params = _with_gain(style_params, gain)
            out, report, measured = _render_post(pre_out, params, rate, channels, block, pre_gr)
            passes += 1
            corrected = plan.corrected(gain, measured)
            if passes == 2 or abs(corrected - gain) < 1e-4:
                break
            gain = corrected
        note = plan.note(gain, measured)
        if note:
            params = _with_gain(style_params, gain, note, measured)
            report["loudness_note"] = note
        report["post_passes"] = passes
    else:
        chain = ChainRunner(build_chain(params, rate, channels), channels)
        rep = _Report(rate, channels, x.shape[0] + chain.tail_frames)
        outs = []
        for b in _array_blocks(x, block):
            y = chain.process(b)
            rep.feed(y, chain.gain_reduction_db, chain.limiter_gain_reduction_db)
            outs.append(y)
        for y in chain.finish():
            same = chain.gain_reduction_db is not None and chain.gain_reduction_db.shape[0] == y.shape[0]
            rep.feed(y, chain.gain_reduction_db if same else None,
                     chain.limiter_gain_reduction_db if same else None)
            outs.append(y)
        out = np.concatenate(outs, axis=0)
        report = rep.result()
    report["gain_db"] = (params.get("lufs") or {}).get("gain_db")
    report["style_params"] = params
    return out, report


def _render_post(pre_out: np.ndarray, params: dict[str, Any], rate: int, channels: int,
                 block: int, pre_gr: _GrTrack | None = None
                 ) -> tuple[np.ndarray, dict[str, Any], float | None]:
    """Gain + limiter over the "pre" output: ``(audio, report, unrounded integrated LUFS)``."""
    chain = ChainRunner(build_chain(params, rate, channels, stages=POST_STAGES), channels)
    rep = _Report(rate, channels, pre_out.shape[0])
    if pre_gr is not None:
        rep.add_pre_gain_reduction(pre_gr)
    outs = []
    for b in _array_blocks(pre_out, block):
        y = chain.process(b)
        rep.feed(y, chain.gain_reduction_db)
        outs.append(y)
    for y in chain.finish():
        rep.feed(y, None)
        outs.append(y)
    return np.concatenate(outs, axis=0), rep.result(), rep.loudness.integrated_lufs()


def as_written(y: np.ndarray, fmt: str) -> np.ndarray:
    """``y`` as an integer-format file holds it: clipped to full scale (a copy only when it goes over),
    so the report measures the file, not the signal before the writer clipped it. ``float32`` keeps
    everything."""
    if fmt == "float32" or y.size == 0 or (float(y.max()) <= 1.0 and float(y.min()) >= -1.0):
        return y
    return np.clip(y, -1.0, 1.0)


def render_warnings(report: dict[str, Any]) -> list[str]:
    """What a render's report calls for saying: output frames clipped at full scale (only possible
    without the limiter), or a limiter cutting more than ``HARD_LIMIT_DB`` on more than
    ``MAX_HARD_LIMIT_SHARE`` of the audio (an explicit or a preset's target reached by flattening)."""
    clipped, frames = int(report.get("clipped_frames") or 0), int(report.get("frames") or 0)
    if not frames:
        return []
    if clipped:
        return [f"{100.0 * clipped / frames:.2f} % of the output's frames reached full scale and are "
                "clipped in the file (nothing limits the peaks: include the limiter, or lower the "
                "loudness target)"]
    share = float(report.get("artifacts_rate") or 0.0)
    if share > MAX_HARD_LIMIT_SHARE and not report.get("loudness_note"):  # the note says it already
        return [f"the limiter cuts more than {HARD_LIMIT_DB:.0f} dB on {100.0 * share:.0f} % of the audio "
                "(flattened peaks): a lower loudness target or a higher ceiling keeps them"]
    return []


def _stream_to_writer(blocks: Iterable[np.ndarray], chain: ChainRunner, writer: AudioWriter, rep: _Report,
                      skip_frames: int = 0, keep_frames: int | None = None,
                      progress: Progress = None, total_frames: int = 0) -> None:
    """Run ``chain`` over ``blocks``, drop the first ``skip_frames`` output frames (pre-roll), keep at
    most ``keep_frames``, write and measure the rest."""
    done = 0
    kept = 0

    def emit(y: np.ndarray, gr: np.ndarray | None, limiter_gr: np.ndarray | None) -> bool:
        nonlocal skip_frames, kept
        if skip_frames:
            d = min(skip_frames, y.shape[0])
            skip_frames -= d
            y = y[d:]
            gr = None if gr is None else gr[d:]
            limiter_gr = None if limiter_gr is None else limiter_gr[d:]
        if keep_frames is not None:
            room = keep_frames - kept
            if room <= 0:
                return False
            y = y[:room]
            gr = None if gr is None else gr[:room]
            limiter_gr = None if limiter_gr is None else limiter_gr[:room]
        if y.shape[0]:
            y = as_written(y, writer.fmt)
            write.put(y)
            measure.put(y, gr, limiter_gr)
            kept += y.shape[0]
        return True

    # writing and measuring block k run in two threads while block k+1 is processed (on 2+ cores)
    threaded = usable_cores() >= 2
    with BackgroundSink(writer.write, threaded=threaded) as write, \
            BackgroundSink(rep.feed, threaded=threaded) as measure:
        trim = PeriodicTrim(RENDER_TRIM_EVERY_BLOCKS)
        for b in blocks:
            y = chain.process(b)
            done += b.shape[0]
            if not emit(y, chain.gain_reduction_db, chain.limiter_gain_reduction_db):
                break
            trim.tick()
            if progress and total_frames:
                progress(min(1.0, done / total_frames))
        else:
            for y in chain.finish():
                if not emit(y, None, None):
                    break


def _check_out_folder(out_path: str | os.PathLike) -> None:
    folder = Path(out_path).parent if str(Path(out_path).parent) else Path(".")
    if not folder.is_dir():
        raise ParamsError(f"output folder {folder} does not exist", where=str(out_path))
    if Path(out_path).is_dir():
        raise ParamsError("output path is a folder; give a file name", where=str(out_path))


def render_file(in_path: str | os.PathLike, out_path: str | os.PathLike, style_params: dict[str, Any], *,
                fmt: str = "wav24", sample_rate_hz: int | None = None, start_s: float = 0.0,
                stop_s: float | None = None, preroll_s: float = 0.0,
                progress: Progress = None, output_features: dict[str, bool] | None = None,
                max_hard_limit_share: float | None = None) -> dict[str, Any]:
    """Render ``in_path`` (``start_s..stop_s``) to ``out_path`` streaming, memory flat; returns the
    report ``{duration_s, lufs_integrated, true_peak_dbtp, gain_reduction_db[], gain_reduction_hop_s,
    artifacts_rate, gain_db, style_params, ...}``. ``preroll_s`` of audio before ``start_s`` runs
    through the chain (settling filters and limiter) but is not written. If ``lufs.gain_db`` is
    missing it is resolved first (whole-file renders only). Output rate = ``sample_rate_hz`` or the
    input's. The output appears atomically (never a partial file).

    ``output_features`` (:class:`engine.features.FeatureAnalyzer` options such as
    ``analysis_options(mode)``) measures the written audio in the same pass: the report then carries
    its features document under ``"features"`` (what ``analyze_features(out_path)`` returns, before
    the output's dither/quantisation), sharing the report's loudness and true-peak meters.

    ``max_hard_limit_share`` (when the gain is resolved): see :func:`resolve_gain`; when the target
    was not reached the report carries ``loudness_note`` and its ``style_params`` the loudness reached
    as ``lufs.target_db`` (the original target is named in ``notes.lufs``)."""
    _check_out_folder(out_path)
    info = probe(in_path)
    rate = int(sample_rate_hz or info.sample_rate_hz)
    channels = info.channels
    start_frame = max(0, round(start_s * rate))
    total_out = math.floor(info.frames * rate / info.sample_rate_hz)
    stop_frame = total_out if stop_s is None else min(total_out, round(stop_s * rate))
    if stop_frame <= start_frame:
        raise ParamsError(f"empty range {start_s}..{stop_s} s", where="stop_s")
    pre_frames = min(start_frame, round(preroll_s * rate))
    read_from = start_frame - pre_frames
    is_partial = start_frame > 0 or stop_s is not None
    if _needs_resolution(style_params):
        if is_partial:
            raise ParamsError("a partial (segment) render needs the resolved gain; call resolve_gain on the "
                              "whole file first", where="lufs.gain_db")
        return _render_file_resolving(in_path, out_path, style_params, fmt=fmt, rate=rate, channels=channels,
                                      total_frames=stop_frame, progress=progress,
                                      output_features=output_features,
                                      max_hard_limit_share=max_hard_limit_share)
    chain = ChainRunner(build_chain(style_params, rate, channels), channels)
    keep = (stop_frame - start_frame) + (chain.tail_frames if stop_frame >= total_out else 0)
    rep = _Report(rate, channels, keep, _output_analyzer(output_features, rate, channels, keep))
    # read past stop by the chain latency so the limiter's lookahead sees the real future audio
    read_to = min(total_out, stop_frame + chain.latency_frames)
    blocks = prefetch(iter_blocks(in_path, BLOCK_FRAMES, sample_rate_hz=rate, start_frame=read_from,
                                  stop_frame=read_to), threaded=usable_cores() >= 2)
    with AudioWriter(out_path, rate, channels, fmt) as writer:
        try:
            _stream_to_writer(blocks, chain, writer, rep, skip_frames=pre_frames, keep_frames=keep,
                              progress=progress, total_frames=stop_frame - read_from)
        finally:
            blocks.close()  # stops the read-ahead when the range ended before the file
    report = rep.result()
    report.update({"gain_db": (style_params.get("lufs") or {}).get("gain_db"), "style_params": style_params,
                   "format": fmt, "out_path": str(out_path), "start_s": start_frame / rate,
                   "post_passes": 1})
    if progress:
        progress(1.0)
    return report


def _output_analyzer(options: dict[str, bool] | None, rate: int, channels: int,
                     frames: int) -> FeatureAnalyzer | None:
    if options is None:
        return None
    # the report shares the analyser's meters, and the report must carry the output's true peak
    return FeatureAnalyzer(rate, channels, expected_frames=frames, **{**options, "true_peak": True})


def _render_file_resolving(in_path, out_path, style_params, *, fmt, rate, channels, total_frames,
                           progress, output_features=None, max_hard_limit_share=None) -> dict[str, Any]:
    target = float(style_params["lufs"]["target_db"])
    pre = ChainRunner(build_chain(style_params, rate, channels, stages=PRE_STAGES), channels)
    cells = _CellModel(rate, channels, _cell_frames_for(total_frames, rate), total_frames)
    out_dir = Path(out_path).parent if str(Path(out_path).parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=".tonematch-pre-", suffix=".f32", dir=out_dir)
    try:
        threaded = usable_cores() >= 2
        with os.fdopen(fd, "wb") as fh:
            done = 0
            pre_gr = _GrTrack()

            def keep(y: np.ndarray) -> None:
                cells.feed(y)
                fh.write(np.ascontiguousarray(y, dtype=np.float32).tobytes())

            # decoding, the "pre" chain and (measure + spill) run as three overlapping stages
            source = prefetch(iter_blocks(in_path, BLOCK_FRAMES, sample_rate_hz=rate), threaded=threaded)
            with BackgroundSink(keep, threaded=threaded) as sink:
                trim = PeriodicTrim(RENDER_TRIM_EVERY_BLOCKS)
                for y in _run_tracking(pre, source, pre_gr):
                    sink.put(y)
                    trim.tick()
                    done += y.shape[0]
                    if progress:
                        progress(min(0.5, 0.5 * done / max(1, total_frames)))
        release_freed_memory()
        model = LoudnessModel(*cells.arrays(), rate, style_params.get("limiter"), cells.cell_frames)
        plan = _GainPlan(model, target, max_hard_limit_share)
        gain = plan.start
        pre_frames = cells.frames
        report: dict[str, Any] = {}
        passes = 0
        with AudioWriter(out_path, rate, channels, fmt) as writer:
            while True:
                params = _with_gain(style_params, gain)
                post = ChainRunner(build_chain(params, rate, channels, stages=POST_STAGES), channels)
                rep = _Report(rate, channels, pre_frames,
                              _output_analyzer(output_features, rate, channels, pre_frames))
                rep.add_pre_gain_reduction(pre_gr)
                blocks = _read_f32(tmp, channels, BLOCK_FRAMES)
                sub = None if not progress else (lambda f: progress(0.5 + 0.5 * f))
                _stream_to_writer(blocks, post, writer, rep, progress=sub, total_frames=pre_frames)
                report = rep.result()
                passes += 1
                # the unrounded reading (not the report's 0.001 LU figure): resolve_gain's rule exactly
                measured = rep.loudness.integrated_lufs()
                corrected = plan.corrected(gain, measured)
                if passes == 2 or abs(corrected - gain) < 1e-4:
                    break
                gain = corrected
                writer.restart()
        note = plan.note(gain, measured)
        params = _with_gain(style_params, gain, note, measured)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    report.update({"gain_db": params["lufs"]["gain_db"], "style_params": params, "format": fmt,
                   "out_path": str(out_path), "start_s": 0.0, "post_passes": passes})
    if note:
        report["loudness_note"] = note
    if progress:
        progress(1.0)
    return report


def _read_f32(path: str, channels: int, block_frames: int) -> Iterator[np.ndarray]:
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(block_frames * channels * 4)
            if not raw:
                return
            yield np.frombuffer(raw, dtype=np.float32).reshape(-1, channels)
