"""Docker-free, reproducible build of tonematch's Lambda layers, checked against Lambda's size limits.

Two layers, because the API/starter Lambdas need none of the DSP stack:

* ``dsp``: numpy, scipy, soundfile, pyloudnorm, soxr, onnxruntime and the ``engine`` package, for the
  pipeline step Lambdas (analyse, invert, plan, render, merge, finalise);
* ``service``: FastAPI, Mangum, pydantic, psycopg (binary), PyJWT, argon2, Powertools, the X-Ray SDK,
  for every Lambda.

Wheels are fetched for the Lambda runtime, not for this machine::

    pip install --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 ... \
        --only-binary=:all: --python-version 3.12 --implementation cp --target <layer>/python <reqs>

then tests, ``__pycache__`` and other files Lambda never reads are stripped, and the sizes are checked:
Lambda allows 250 MB unzipped for a function plus all its layers, and 50 MB zipped for a direct upload
(a bigger layer zip must go through S3, which CDK assets do anyway). ``--check-only`` re-checks an
existing build. Run ``python layers/build.py --help``.

Exit status: 0 when the build fits, 1 when a limit is exceeded (the report says which and what to do),
2 on a usage or pip error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Lambda's documented quotas (bytes). 250 MB is counted over the function's code plus all its layers.
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
DIRECT_UPLOAD_ZIP_LIMIT_BYTES = 50 * 1024 * 1024
MAX_LAYERS_PER_FUNCTION = 5

#: Pinned lower bounds match pyproject.toml; pip resolves the newest wheels built for the runtime.
LAYERS: dict[str, list[str]] = {
    "dsp": [
        "numpy>=1.26",
        "scipy>=1.11",
        "soundfile>=0.12",
        "pyloudnorm>=0.1.1",
        "soxr>=0.3",
        "onnxruntime>=1.17",
    ],
    "service": [
        "fastapi>=0.110",
        "mangum>=0.17",
        "pydantic>=2.6",
        "python-multipart>=0.0.9",
        "pyjwt>=2.8",
        "argon2-cffi>=23.1",
        "psycopg[binary]>=3.1",
        "aws-lambda-powertools>=3.0",
        "aws-xray-sdk>=2.12",
    ],
}
#: Our own packages shipped in a layer (copied, not pip-installed, so the build needs no sdist step).
LAYER_PACKAGES: dict[str, list[str]] = {"dsp": ["engine"], "service": []}

#: Which layers each kind of function carries; every combination is checked against the limits.
FUNCTION_LAYERS: dict[str, list[str]] = {
    "pipeline-step": ["dsp", "service"],
    "api": ["dsp", "service"],
    "starter": ["service"],
}

#: Already in the Lambda Python runtime; pip pulls them in as dependencies but the layer needs none.
PROVIDED_BY_RUNTIME = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "dateutil",
    "python_dateutil",
    "six",
)

STRIP_DIR_NAMES = {"__pycache__", "tests", "test", "testing", "benchmarks"}
STRIP_SUFFIXES = (".pyc", ".pyo", ".pyi", ".c", ".h", ".cpp", ".pxd", ".pyx")
#: Test folders some packages need at import time (numpy's testing module is imported by scipy).
KEEP_DIRS = {("numpy", "testing"), ("numpy", "_core", "tests")}


@dataclass(frozen=True)
class SizeReport:
    """Sizes of one layer, in bytes."""

    name: str
    unzipped_bytes: int
    zipped_bytes: int


def dir_size_bytes(path: Path) -> int:
    """Sum of the sizes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def zip_dir(path: Path, zip_path: Path) -> int:
    """Zip ``path``'s contents (deterministic order and timestamps); returns the zip's size in bytes."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(file.relative_to(path)), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (file.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, file.read_bytes())
    return zip_path.stat().st_size


def strip_tree(site: Path) -> int:
    """Delete tests, caches and build sources Lambda never reads; returns the bytes freed."""
    before = dir_size_bytes(site)
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        rel = path.relative_to(site).parts
        if path.is_dir() and path.name in STRIP_DIR_NAMES:
            if any(tuple(rel[i : i + len(k)]) == k for k in KEEP_DIRS for i in range(len(rel))):
                continue
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in STRIP_SUFFIXES and "include" not in rel:
            path.unlink()
    for name in PROVIDED_BY_RUNTIME:
        for match in list(site.glob(name)) + list(site.glob(f"{name}-*.dist-info")):
            shutil.rmtree(match, ignore_errors=True)
    return before - dir_size_bytes(site)


def check_limits(
    layers: list[SizeReport], function_code_bytes: int = 0, combos: dict[str, list[str]] | None = None
) -> list[str]:
    """Problems with the given layer sizes against Lambda's quotas (empty list: everything fits).

    Checks each function kind's code + layers against 250 MB unzipped, the layer count, and flags
    layers whose zip is over 50 MB (they must be uploaded through S3, never directly)."""
    by_name = {layer.name: layer for layer in layers}
    problems: list[str] = []
    for kind, names in (FUNCTION_LAYERS if combos is None else combos).items():
        missing = [n for n in names if n not in by_name]
        if missing:
            problems.append(f"{kind}: layer(s) {missing} were not built")
            continue
        if len(names) > MAX_LAYERS_PER_FUNCTION:
            problems.append(f"{kind}: {len(names)} layers, Lambda allows {MAX_LAYERS_PER_FUNCTION}")
        total = function_code_bytes + sum(by_name[n].unzipped_bytes for n in names)
        if total > UNZIPPED_LIMIT_BYTES:
            problems.append(
                f"{kind}: function + layers {names} unzip to {total / 2**20:.1f} MiB, over Lambda's "
                f"{UNZIPPED_LIMIT_BYTES / 2**20:.0f} MiB: split the function's dependencies, drop "
                "packages it does not import, or deploy it as a container image (10 GB limit)"
            )
    return problems


def upload_notes(layers: list[SizeReport]) -> list[str]:
    """Layers whose zip is over the 50 MB direct-upload limit (fine through S3, which CDK uses)."""
    return [
        f"{layer.name}: zip is {layer.zipped_bytes / 2**20:.1f} MiB, over the "
        f"{DIRECT_UPLOAD_ZIP_LIMIT_BYTES / 2**20:.0f} MiB direct-upload limit: publish it from S3 "
        "(CDK assets are uploaded to the bootstrap bucket, so `cdk deploy` does this)"
        for layer in layers
        if layer.zipped_bytes > DIRECT_UPLOAD_ZIP_LIMIT_BYTES
    ]


#: glibc of each Lambda Python runtime's OS: 3.11 runs on Amazon Linux 2 (2.26), 3.12 on AL2023 (2.34).
RUNTIME_GLIBC_MINOR = {"3.11": 26, "3.12": 34}


def platform_tags(python_version: str, arch: str = "x86_64") -> list[str]:
    """Every manylinux tag a wheel may carry and still load on that runtime's glibc.

    pip's ``--platform`` matches tags exactly, so ``manylinux2014`` alone misses wheels published only
    as ``manylinux_2_27``/``_2_28`` (onnxruntime) and would silently pick an old version or none."""
    newest = RUNTIME_GLIBC_MINOR[python_version]
    return [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 16, -1)] + [
        f"manylinux2014_{arch}",
        f"manylinux2010_{arch}",
        f"manylinux1_{arch}",
    ]


def pip_install(requirements: list[str], target: Path, python_version: str, platforms: list[str]) -> None:
    """Install wheels built for the Lambda runtime into ``target`` (never sdists, never this host's)."""
    platform_args = [arg for tag in platforms for arg in ("--platform", tag)]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--no-cache-dir",
        "--disable-pip-version-check",
        *platform_args,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--upgrade",
        "--target",
        str(target),
        *requirements,
    ]
    subprocess.run(cmd, check=True)


def build_layer(name: str, out_dir: Path, python_version: str, platforms: list[str]) -> Path:
    """Build one layer into ``out_dir/name/python``; returns the layer root (``out_dir/name``)."""
    root = out_dir / name
    if root.exists():
        shutil.rmtree(root)
    site = root / "python"
    site.mkdir(parents=True)
    pip_install(LAYERS[name], site, python_version, platforms)
    for package in LAYER_PACKAGES[name]:
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    strip_tree(site)
    return root


def measure(out_dir: Path, names: list[str]) -> list[SizeReport]:
    """Unzipped and zipped size of each built layer under ``out_dir``."""
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            root = out_dir / name
            if not root.is_dir():
                continue
            zipped = zip_dir(root, Path(tmp) / f"{name}.zip")
            reports.append(SizeReport(name, dir_size_bytes(root), zipped))
    return reports


def function_code_size_bytes() -> int:
    """Size of the function code asset (the ``functions`` package), unzipped."""
    return sum(
        p.stat().st_size
        for p in (REPO / "functions").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "layers" / "build",
        help="output folder; each layer goes to OUT/<name>/python (default layers/build)",
    )
    parser.add_argument(
        "--python-version",
        default=os.environ.get("TONEMATCH_LAMBDA_PYTHON", "3.12"),
        choices=["3.11", "3.12"],
        help="the Lambda runtime's Python (default 3.12)",
    )
    parser.add_argument(
        "--platform",
        action="append",
        help="wheel platform tag (repeatable; default: every manylinux tag the runtime's "
        "glibc loads, x86_64)",
    )
    parser.add_argument(
        "--layer",
        action="append",
        choices=sorted(LAYERS),
        help="build only this layer (repeatable; default: all)",
    )
    parser.add_argument("--check-only", action="store_true", help="measure an existing build only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    names = args.layer or sorted(LAYERS)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.check_only:
        for name in names:
            try:
                build_layer(
                    name, args.out, args.python_version, args.platform or platform_tags(args.python_version)
                )
            except subprocess.CalledProcessError as exc:
                print(f"layers/build.py: error: pip failed building layer {name!r}: {exc}", file=sys.stderr)
                return 2
    reports = measure(args.out, names)
    code_bytes = function_code_size_bytes()
    # function kinds whose layers were all built now, else each layer on its own (a partial build)
    combos = {k: v for k, v in FUNCTION_LAYERS.items() if set(v) <= set(names)} or {
        f"layer {n}": [n] for n in names
    }
    problems = check_limits(reports, code_bytes, combos)
    notes = upload_notes(reports)
    if args.json:
        print(
            json.dumps(
                {
                    "layers": [r.__dict__ for r in reports],
                    "function_code_bytes": code_bytes,
                    "problems": problems,
                    "notes": notes,
                },
                indent=2,
            )
        )
    else:
        for r in reports:
            print(
                f"layer {r.name}: {r.unzipped_bytes / 2**20:.1f} MiB unzipped, "
                f"{r.zipped_bytes / 2**20:.1f} MiB zipped"
            )
        print(f"function code: {code_bytes / 2**20:.2f} MiB")
        for note in notes:
            print(f"note: {note}")
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if not problems:
            print("all function kinds fit Lambda's 250 MiB unzipped limit")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
