"""Paths and small helpers shared by the benchmark scripts."""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
PROJECT_PY = ROOT / ".venv" / "bin" / "python"
TONEMATCH_EXE = ROOT / ".venv" / "bin" / "tonematch"
MG_VENV = BENCH_DIR / ".venv-matchering"
MG_PY = MG_VENV / "bin" / "python"


def require_matchering() -> None:
    if not MG_PY.exists():
        raise SystemExit(f"{MG_PY} missing: run `bash bench/setup.sh` first")


def engine_ready() -> tuple[bool, str]:
    """(True, '') when the engine facade and the CLI are importable / runnable, else (False, why)."""
    try:
        import engine

        if not hasattr(engine, "match_files"):
            return False, "engine.match_files does not exist yet"
        import importlib

        for mod in ("engine.features", "engine.invert", "engine.render", "engine.metrics", "engine.cli"):
            importlib.import_module(mod)
    except Exception as exc:
        return False, f"import engine failed: {exc}"
    try:
        subprocess.run([str(TONEMATCH_EXE), "--help"], check=True, capture_output=True, timeout=60)
    except Exception as exc:
        return False, f"`tonematch --help` failed: {exc}"
    return True, ""


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def dump_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str))
