"""The ``tonematch`` command.

    tonematch match REFERENCE TARGET -o OUT [--mode A|B] [--target-lufs X] [--ceiling-dbtp X]
                    [--intensity X] [--format wav16|wav24|flac] [--sample-rate HZ] [--exclude LIST]
                    [--preset-out F] [--report F] [--progress]
    tonematch analyze FILE [-o OUT.json]
    tonematch apply PRESET TARGET -o OUT [--format ...] [--target-lufs X] [--ceiling-dbtp X]
                    [--sample-rate HZ] [--exclude LIST] [--report F]
    tonematch example-audio DIR [--duration S]
    tonematch serve | users | drop ...      (the service; see functions/cli.py)

Errors are one line on stderr, ``tonematch: error: <where>: <message>``, exit status 2, no traceback
(set TONEMATCH_DEBUG=1 to see one), and never a partial output file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SERVICE_COMMANDS = ("serve", "users", "drop")
EXIT_USAGE = 2


class _CliError(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where, self.message = where, message


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise _CliError("usage", f"{message} (see `{self.prog} --help`)")


class _ProgressBar:
    """A one-line progress bar on stderr (only when asked or when stderr is a terminal)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self._last = -1
        self._t0 = time.monotonic()

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        pct = int(max(0.0, min(1.0, fraction)) * 100)
        if pct == self._last:
            return
        self._last = pct
        filled = pct * 30 // 100
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {pct:3d}% "
                         f"{time.monotonic() - self._t0:5.1f} s")
        if pct >= 100:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._last < 100:
            self(1.0)


def _fmt_for(out: str, fmt: str | None) -> str:
    ext = Path(out).suffix.lower()
    if ext not in (".flac", ".wav", ".wave"):
        raise _CliError(out, "output must end in .wav or .flac (--format then picks wav16 or wav24 for .wav)")
    if fmt is None:
        return "flac" if ext == ".flac" else "wav24"
    if (fmt == "flac") != (ext == ".flac"):
        raise _CliError(out, f"--format {fmt} does not match the file extension {ext or '(none)'}")
    return fmt


def _check_side_outputs(*paths: str | None) -> None:
    """Refuse a report / preset / EQ-text path whose folder is missing before any work is done (not
    after the audio has been rendered and written)."""
    for path in paths:
        if path and str(Path(path).parent) and not Path(path).parent.is_dir():
            raise _CliError(path, "folder does not exist")


def _write_json(path: str, obj: Any) -> None:
    """Atomic JSON write (temp file + rename)."""
    p = Path(path)
    _check_side_outputs(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n",
                       encoding="utf-8")
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()


def _json_default(o: Any) -> Any:
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _build_parser() -> _Parser:
    p = _Parser(prog="tonematch", description="Match a recording's tone, width and loudness to a reference.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    m = sub.add_parser("match", help="match TARGET to REFERENCE and write OUT")
    m.add_argument("reference")
    m.add_argument("target")
    m.add_argument("-o", "--output", required=True, help="output file (.wav or .flac)")
    m.add_argument("--mode", choices=("A", "B"), default="A",
                   help="A: EQ/width/loudness/limiter; B: + dynamics, reverb, pitch")
    m.add_argument("--target-lufs", type=float, help="loudness target (default: the reference's)")
    m.add_argument("--ceiling-dbtp", type=float, help="true-peak ceiling, dBTP (default -1.0)")
    m.add_argument("--intensity", type=float, help="0..1, how much of the correction to apply (default 1)")
    m.add_argument("--format", choices=("wav16", "wav24", "flac"), help="output format (default from -o)")
    m.add_argument("--sample-rate", type=int, help="output sample rate in Hz (default: the target's)")
    m.add_argument("--exclude", help="comma-separated processors to leave out (eq,stereo,limiter,...)")
    m.add_argument("--preset-out", help="write the estimated parameters as a preset (.json)")
    m.add_argument("--eq-apo-out", help="write the EQ as Equalizer APO / REW text")
    m.add_argument("--report", help="write the full report (metrics, parameters, visualisation) as JSON")
    m.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")
    m.add_argument("--quiet", action="store_true", help="print nothing on success")

    a = sub.add_parser("analyze", help="print the features of FILE as JSON")
    a.add_argument("file")
    a.add_argument("-o", "--output", help="write the JSON here instead of stdout")

    ap = sub.add_parser("apply", help="apply a preset to TARGET")
    ap.add_argument("preset")
    ap.add_argument("target")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--format", choices=("wav16", "wav24", "flac"))
    ap.add_argument("--target-lufs", type=float, help="override the preset's loudness target")
    ap.add_argument("--ceiling-dbtp", type=float, help="override the preset's true-peak ceiling")
    ap.add_argument("--sample-rate", type=int, help="output sample rate in Hz (default: the target's)")
    ap.add_argument("--exclude", help="comma-separated processors of the preset to leave out (eq,limiter,..)")
    ap.add_argument("--report", help="write the render report as JSON")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--quiet", action="store_true")

    for name, text in (("serve", "run the API, web console and local pipeline runner"),
                       ("users", "manage service users"), ("drop", "drop-folder tools")):
        sub.add_parser(name, help=f"{text} (see `tonematch {name} --help`)", add_help=False)

    e = sub.add_parser("example-audio", help="write example reference.wav and target.wav into DIR")
    e.add_argument("dir")
    e.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    return p


def _opts_from(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.target_lufs is not None:
        opts["target_lufs"] = args.target_lufs
    if args.ceiling_dbtp is not None:
        opts["ceiling_dbtp"] = args.ceiling_dbtp
    if getattr(args, "intensity", None) is not None:
        opts["intensity"] = args.intensity
    if getattr(args, "exclude", None):
        opts["exclude"] = [s.strip() for s in args.exclude.split(",") if s.strip()]
    if args.sample_rate is not None:
        opts["output_sample_rate_hz"] = args.sample_rate
    return opts


def _cmd_match(args: argparse.Namespace) -> int:
    from engine import match_files
    from engine.options import validate_options
    from engine.preset import eq_to_equalizer_apo, export_preset

    fmt = _fmt_for(args.output, args.format)
    opts = _opts_from(args)
    opts["output_format"] = fmt
    validate_options(opts)
    for side in (args.preset_out, args.report, args.eq_apo_out):
        if side and Path(side).resolve() in (Path(args.reference).resolve(), Path(args.target).resolve(),
                                             Path(args.output).resolve()):
            raise _CliError(side, "would overwrite an input or the audio output")
    sides = [Path(p).resolve() for p in (args.preset_out, args.report, args.eq_apo_out) if p]
    if len(set(sides)) < len(sides):
        raise _CliError(str(next(p for p in sides if sides.count(p) > 1)),
                        "given for two of --preset-out, --report and --eq-apo-out; one would overwrite "
                        "the other")
    _check_side_outputs(args.preset_out, args.report, args.eq_apo_out)
    bar = _ProgressBar("matching", args.progress or sys.stderr.isatty())
    result = match_files(args.reference, args.target, args.output, mode=args.mode, opts=opts, progress=bar,
                         measure_result=bool(args.report))
    bar.done()
    params = result["style_params"]
    if args.preset_out:
        _write_json(args.preset_out, export_preset(params, name=Path(args.reference).stem,
                                                   source={"reference": str(args.reference),
                                                           "target": str(args.target)}))
    if args.eq_apo_out:
        Path(args.eq_apo_out).write_text(eq_to_equalizer_apo(params), encoding="utf-8")
    if args.report:
        _write_json(args.report, {"style_params": params, "metrics": result["metrics"],
                                  "report": result["report"], "viz": result["viz"],
                                  "warnings": result["warnings"]})
    for w in result["warnings"]:
        print(f"tonematch: warning: {w}", file=sys.stderr)
    if not args.quiet:
        _print_summary(args.output, params, result["report"], result["metrics"])
    return 0


def _print_summary(out: str, params: dict[str, Any], report: dict[str, Any], metrics: dict | None) -> None:
    lines = [f"wrote {out}"]
    for b in params.get("eq") or []:
        gain = "" if b["type"] in ("high_pass", "low_pass") else f" {b['gain_db']:+.1f} dB"
        lines.append(f"  eq      {b['type']:<10} {b['f_hz']:>7.0f} Hz  Q {b['q']:.2f}{gain}")
    if "stereo" in params:
        lines.append(f"  width   {params['stereo']['width']:.2f}")
    lufs = params.get("lufs") or {}
    if lufs:
        target = "none (a fixed gain)" if lufs.get("target_db") is None else f"{lufs['target_db']} LUFS"
        lines.append(f"  loudness target {target}, gain {lufs.get('gain_db', 0):+.2f} dB")
    notes = params.get("notes") or {}
    comp = params.get("compressor")
    if comp:
        lines.append(f"  compressor threshold {comp['threshold_db']:.1f} dB, ratio {comp['ratio']:g}:1, "
                     f"attack {comp['attack_ms']:g} ms, release {comp['release_ms']:g} ms, "
                     f"makeup {comp['makeup_db']:+.1f} dB")
    rev = params.get("reverb")
    if rev:
        lines.append(f"  reverb  {rev['ir_key']}, mix {rev['mix']:.2f}, pre-delay {rev['pre_delay_ms']:g} ms")
    if params.get("pitch"):
        lines.append(f"  pitch   {params['pitch']['semitones']:+d} semitones")
    # mode B says why a processor stayed off (mode A's notes hold none of these)
    for name in ("compressor", "reverb", "pitch"):
        if not params.get(name) and str(notes.get(name, "")).startswith("off"):
            lines.append(f"  {name:<7} {notes[name]}")
    if "limiter" in params:
        which = "compressor and limiter" if comp else "limiter"
        lines.append(f"  limiter ceiling {params['limiter']['tp_db']:.1f} dBTP, max gain reduction "
                     f"{report.get('gain_reduction_max_db', 0):.1f} dB ({which})")
    lines.append(f"  result  {report.get('lufs_integrated')} LUFS integrated, true peak "
                 f"{report.get('true_peak_dbtp')} dBTP, {report.get('duration_s', 0):.1f} s")
    if metrics:
        lines.append("  metrics " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()
                                            if isinstance(v, int | float)))
    print("\n".join(lines))


def _cmd_apply(args: argparse.Namespace) -> int:
    from engine import input_warnings
    from engine.audio_io import input_levels, probe
    from engine.options import validate_options
    from engine.preset import load_preset, preset_params_for_target
    from engine.render import render_file, render_warnings

    fmt = _fmt_for(args.output, args.format)
    params = load_preset(args.preset)
    if Path(args.output).resolve() == Path(args.target).resolve():
        raise _CliError(args.output, "the output would overwrite the target")
    _check_side_outputs(args.report)
    exclude = [s.strip() for s in args.exclude.split(",") if s.strip()] if args.exclude else []
    # the options are checked (as match's) before the target is read
    validate_options({"target_lufs": args.target_lufs, "ceiling_dbtp": args.ceiling_dbtp, "exclude": exclude,
                      "output_sample_rate_hz": args.sample_rate})
    rate = args.sample_rate or probe(args.target).sample_rate_hz
    levels = input_levels(args.target)
    # the gain re-solved, the old target's notes gone, the options and this target's rate and offset
    params, notes = preset_params_for_target(
        params, sample_rate_hz=rate, dc_offset_dbfs=levels["dc_offset_dbfs"],
        sample_peak_dbfs=levels["sample_peak_dbfs"], target_lufs=args.target_lufs,
        ceiling_dbtp=args.ceiling_dbtp, exclude=exclude)
    for w in [*input_warnings(None, levels, target_name=str(args.target)), *notes]:
        print(f"tonematch: warning: {w}", file=sys.stderr)
    bar = _ProgressBar("applying", args.progress or sys.stderr.isatty())
    report = render_file(args.target, args.output, params, fmt=fmt, sample_rate_hz=args.sample_rate,
                         progress=bar)
    bar.done()
    for w in render_warnings(report):
        print(f"tonematch: warning: {w}", file=sys.stderr)
    if report.get("loudness_note"):
        print(f"tonematch: warning: loudness: {report['loudness_note']}", file=sys.stderr)
    if args.report:
        _write_json(args.report, report)
    if not args.quiet:
        _print_summary(args.output, report.get("style_params", params), report, None)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from engine.features import analyze_features

    _check_side_outputs(args.output)
    feats = analyze_features(args.file)
    if args.output:
        _write_json(args.output, feats)
    else:
        sys.stdout.write(json.dumps(feats, allow_nan=False, default=_json_default) + "\n")
    return 0


def _cmd_example(args: argparse.Namespace) -> int:
    from engine.examples import write_example_pair

    if not (1.0 <= args.duration <= 3600.0):
        raise _CliError("--duration", f"{args.duration:g} s is outside 1..3600")
    paths = write_example_pair(args.dir, duration_s=args.duration)
    print(f"reference: {paths['reference']}\ntarget:    {paths['target']}")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "match": _cmd_match, "apply": _cmd_apply, "analyze": _cmd_analyze, "example-audio": _cmd_example,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tonematch`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # before numpy loads; the service's render processes inherit it (see single_blas_thread)
    from engine.threads import single_blas_thread

    single_blas_thread()
    if argv and argv[0] in SERVICE_COMMANDS:
        from functions.cli import main as service_main
        return service_main(argv)
    debug = os.environ.get("TONEMATCH_DEBUG") == "1"
    from engine.memory import reuse_heap_for_blocks

    reuse_heap_for_blocks()
    try:
        args = _build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except _CliError as exc:
        print(f"tonematch: error: {exc.where}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except KeyboardInterrupt:
        print("tonematch: error: interrupted (no output written)", file=sys.stderr)
        return 130
    except Exception as exc:
        from engine.errors import TonematchError
        if debug:
            raise
        if isinstance(exc, TonematchError):
            where = exc.where or "input"
            print(f"tonematch: error: {where}: {exc.message}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, OSError):
            print(f"tonematch: error: {exc.filename or 'file'}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"tonematch: error: internal: {type(exc).__name__}: {msg} (TONEMATCH_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
