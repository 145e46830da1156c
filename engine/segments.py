"""Segmented rendering: split a long file into segments that render independently (on other
machines), then join them so the result equals a whole-file render.

Each segment runs the chain from ``start_s - preroll_s`` (settling the EQ filters and the limiter's
release) and writes ``start_s .. stop_s + crossfade_s`` as float32 WAV; :func:`merge_segments`
cross-fades each overlap linearly (both sides hold the same signal, so the fade cannot change the
level) and writes the final format. The style_params must carry the resolved ``lufs.gain_db``
(:func:`engine.render.resolve_gain` on the whole file) so every segment applies the same gain.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from engine.audio_io import AudioWriter, iter_blocks, probe
from engine.chain import build_chain
from engine.errors import ParamsError
from engine.render import BLOCK_FRAMES, _output_analyzer, _Report, as_written, render_file
from engine.threads import BackgroundSink, prefetch, usable_cores

DEFAULT_PREROLL_S = 3.0
DEFAULT_CROSSFADE_S = 0.05


def plan_segments(duration_s: float, segment_s: float = 60.0, preroll_s: float = DEFAULT_PREROLL_S,
                  crossfade_s: float = DEFAULT_CROSSFADE_S,
                  style_params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Cut ``duration_s`` into segments of about ``segment_s`` (the last absorbs a short remainder):
    ``[{idx, start_s, stop_s, preroll_s, crossfade_s}]``; segment ``i`` is written from ``start_s`` to
    ``stop_s + crossfade_s`` (the last to the end of the audio).

    With ``style_params`` the pre-roll grows to cover the processors' memory (the limiter's and the
    compressor's release, the reverb tail), and a pitch shift keeps the file in ONE segment: the
    phase-locked shifter's output phase depends on the whole history, so a shifter started mid-file
    cannot join inaudibly."""
    if style_params:
        from engine.invert_mode_b import SETTLE_TIME_CONSTANTS, mode_b_preroll_s

        # a preset may hold a 2 s limiter release: 3 s of pre-roll left -21 dB at the join
        release_s = float((style_params.get("limiter") or {}).get("release_ms", 0.0)) / 1000.0
        preroll_s = max(preroll_s, mode_b_preroll_s(style_params), SETTLE_TIME_CONSTANTS * release_s)
        if (style_params.get("pitch") or {}).get("semitones"):
            segment_s = max(segment_s, duration_s)
    if not (duration_s > 0):
        raise ParamsError(f"duration {duration_s} s must be positive", where="duration_s")
    if not (segment_s > 0):
        raise ParamsError(f"segment length {segment_s} s must be positive", where="segment_s")
    if preroll_s < 0 or crossfade_s < 0:
        raise ParamsError("preroll_s and crossfade_s must be >= 0", where="preroll_s")
    n = max(1, math.floor(duration_s / segment_s))
    if duration_s - n * segment_s > 0.5 * segment_s:
        n += 1
    bounds = [min(duration_s, i * segment_s) for i in range(n)] + [duration_s]
    plan = []
    for i in range(n):
        last = i == n - 1
        plan.append({"idx": i, "start_s": float(bounds[i]), "stop_s": float(bounds[i + 1]),
                     "preroll_s": float(min(preroll_s, bounds[i])),
                     "crossfade_s": 0.0 if last else float(crossfade_s)})
    return plan


def render_segment(in_path: str | os.PathLike, out_path: str | os.PathLike, style_params: dict[str, Any],
                   segment: dict[str, Any], *, sample_rate_hz: int | None = None) -> dict[str, Any]:
    """Render one planned segment to a float32 WAV (``start_s .. stop_s + crossfade_s``); returns the
    segment's render report."""
    if (style_params.get("lufs") or {}).get("target_db") is not None and \
            (style_params.get("lufs") or {}).get("gain_db") is None:
        raise ParamsError("segmented renders need the resolved gain (run resolve_gain on the whole file)",
                          where="lufs.gain_db")
    info = probe(in_path)
    rate = int(sample_rate_hz or info.sample_rate_hz)
    total_s = math.floor(info.frames * rate / info.sample_rate_hz) / rate
    stop = float(segment["stop_s"]) + float(segment.get("crossfade_s", 0.0))
    stop_s = None if stop >= total_s - 0.5 / rate else stop
    # a reverb rings for its IR length: the pre-roll must cover it so the tail entering this segment
    # is the same as in a whole-file render
    chain = build_chain(style_params, rate, info.channels)
    tail_s = sum(int(getattr(p, "tail_frames", 0) or 0) for p in chain) / rate
    preroll_s = max(float(segment.get("preroll_s", 0.0)), tail_s + 1.0 if tail_s else 0.0)
    report = render_file(in_path, out_path, style_params, fmt="float32", sample_rate_hz=rate,
                         start_s=float(segment["start_s"]), stop_s=stop_s, preroll_s=preroll_s)
    report["idx"] = segment.get("idx")
    return report


def merge_segments(segment_paths: list[str | os.PathLike], plan: list[dict[str, Any]],
                   out_path: str | os.PathLike, *, fmt: str = "wav24",
                   sample_rate_hz: int | None = None,
                   analysis: dict[str, Any] | None = None,
                   segment_reports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Join rendered segments (in plan order) with linear cross-fades over each overlap, write
    ``out_path`` in ``fmt`` atomically, and measure the result (loudness, true peak).

    With ``analysis`` (keyword options of :class:`engine.features.FeatureAnalyzer`, e.g.
    ``{"pitch": False}``) the written blocks are also analysed as they go, and the report carries
    the result's features document under ``"features"`` (what :func:`engine.features.analyze_features`
    would give on the float output, without decoding the file again).

    With ``segment_reports`` (the segments' :func:`render_segment` reports, in plan order) the
    report's gain-reduction curve, its maximum and ``artifacts_rate`` come from the segments' limiter
    and compressor, as in a whole-file render's report (the merge itself only sees the output)."""
    if len(segment_paths) != len(plan) or not plan:
        raise ParamsError(f"{len(segment_paths)} segment files for a plan of {len(plan)} segments",
                          where="segments")
    infos = [probe(p) if os.path.getsize(p) > 0 else None for p in segment_paths]
    if any(i is None for i in infos):
        raise ParamsError("a segment file is empty", where="segments")
    rate = int(sample_rate_hz or infos[0].sample_rate_hz)
    channels = infos[0].channels
    for p, i in zip(segment_paths, infos, strict=True):
        if i.sample_rate_hz != rate or i.channels != channels:
            raise ParamsError(f"segment {p} is {i.sample_rate_hz} Hz / {i.channels} ch, expected {rate} Hz / "
                              f"{channels} ch", where="segments")
    total = sum(round((s["stop_s"] - s["start_s"]) * rate) for s in plan) + max(
        0, infos[-1].frames - round((plan[-1]["stop_s"] - plan[-1]["start_s"]) * rate))
    # with ``analysis`` its meters are the report's: loudness and true peak measured once
    rep = _Report(rate, channels, total, _output_analyzer(analysis, rate, channels, total))
    _merge_into(segment_paths, plan, out_path, fmt, rate, channels, rep)
    report = rep.result()
    report.update({"format": fmt, "out_path": str(out_path), "segments": len(plan)})
    if segment_reports is not None:
        report.update(_stitched_gain_reduction(segment_reports, plan, report))
    return report


def _stitched_gain_reduction(segment_reports: list[dict[str, Any]], plan: list[dict[str, Any]],
                             report: dict[str, Any]) -> dict[str, Any]:
    """The merged output's gain-reduction fields from the segments' reports: each segment bin goes
    (max) into the merged bins it overlaps (segment hops are never longer than the merged hop, so at
    most two); hard-limited frames add up, each segment's share over its frames without the
    crossfade into the next segment."""
    if len(segment_reports) != len(plan):
        raise ParamsError(f"{len(segment_reports)} segment reports for a plan of {len(plan)} segments",
                          where="segments")
    hop_s = float(report["gain_reduction_hop_s"])
    curve = np.asarray(report["gain_reduction_db"], dtype=np.float64)
    gr_max = float(report["gain_reduction_max_db"])
    hard = float(report["artifacts_rate"]) * report["frames"]
    seg_hard = 0.0
    for seg, rep in zip(plan, segment_reports, strict=True):
        gr = np.asarray(rep.get("gain_reduction_db") or [], dtype=np.float64)
        h = float(rep.get("gain_reduction_hop_s") or 0.0)
        if gr.size and h > 0 and curve.size:
            starts = float(seg["start_s"]) + np.arange(gr.size) * h
            first = np.clip(np.floor(starts / hop_s + 1e-9).astype(np.int64), 0, curve.size - 1)
            last = np.clip(np.floor((starts + h) / hop_s - 1e-9).astype(np.int64), 0, curve.size - 1)
            np.maximum.at(curve, first, gr)
            np.maximum.at(curve, last, gr)
        gr_max = max(gr_max, float(rep.get("gain_reduction_max_db") or 0.0))
        # the segment's frames include its outgoing crossfade, which the next segment covers too
        frames = int(rep.get("frames") or 0)
        overlap = round(float(seg.get("crossfade_s", 0.0)) * float(rep.get("sample_rate_hz") or 0.0))
        seg_hard += float(rep.get("artifacts_rate") or 0.0) * max(0, frames - overlap)
    return {
        "gain_reduction_db": [round(float(v), 2) for v in curve],
        "gain_reduction_max_db": round(gr_max, 3),
        "artifacts_rate": min(1.0, max(hard, seg_hard) / max(1, report["frames"])),
    }


def _merge_into(segment_paths: list[str | os.PathLike], plan: list[dict[str, Any]],
                out_path: str | os.PathLike, fmt: str, rate: int, channels: int, rep: _Report) -> None:
    """The merge loop of :func:`merge_segments`. Reading, writing and measuring (+ analysing) overlap
    on two threads where two cores are usable; an error in any of them leaves no output file."""
    threaded = usable_cores() >= 2
    with AudioWriter(out_path, rate, channels, fmt) as writer, \
            BackgroundSink(writer.write, threaded=threaded) as write, \
            BackgroundSink(rep.feed, threaded=threaded) as measure:
        fade_in: np.ndarray | None = None  # tail of the previous segment to cross-fade into this one
        for k, (path, seg) in enumerate(zip(segment_paths, plan, strict=True)):
            start_f = round(seg["start_s"] * rate)
            body = round(seg["stop_s"] * rate) - start_f
            xf = round(seg.get("crossfade_s", 0.0) * rate) if k < len(plan) - 1 else 0
            pos = 0
            for block in prefetch(iter_blocks(path, BLOCK_FRAMES), threaded=threaded):
                n = block.shape[0]
                if fade_in is not None and pos < fade_in.shape[0]:
                    m = min(n, fade_in.shape[0] - pos)
                    ramp = ((np.arange(pos, pos + m) + 0.5) / fade_in.shape[0]).astype(np.float32)[:, None]
                    block = block.copy()
                    block[:m] = fade_in[pos:pos + m] * (1 - ramp) + block[:m] * ramp
                limit = body if k < len(plan) - 1 else n + pos
                keep = max(0, min(n, limit - pos))
                if keep:  # queued blocks are never modified afterwards (a cross-fade copies first)
                    out = as_written(block[:keep], fmt)
                    write.put(out)
                    measure.put(out, None)
                if k < len(plan) - 1 and pos + n > body:
                    lo = max(0, body - pos)
                    hi = min(n, body + xf - pos)
                    piece = block[lo:hi]
                    first = fade_in is None or pos + lo == body
                    fade_in = piece if first else np.concatenate([fade_in, piece])
                pos += n
            if k < len(plan) - 1:
                if fade_in is None or fade_in.shape[0] != xf:
                    got = 0 if fade_in is None else fade_in.shape[0]
                    if got < xf:
                        raise ParamsError(f"segment {path} is shorter than planned ({pos} frames)",
                                          where="segments")
            else:
                fade_in = None
