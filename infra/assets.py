"""Lambda code, layers and the Batch image context, prepared without Docker.

* Function code: ``functions/`` copied into ``infra/build/function_code`` (``Code.from_asset``).
* Layers (``dsp``, ``service``): bundled locally by ``layers/build.py`` (pip with
  ``--platform manylinux... --only-binary=:all:``), never in a container. Their asset hash is the hash
  of what decides their content (the build script, the engine's source, the Python version), so an
  unchanged layer is not rebuilt or re-uploaded. Synthesis with bundling skipped (context
  ``aws:cdk:bundling-stacks = []``, as the tests do) stages ``layers/`` as is and never calls pip.
* Batch image: a build context folder (Dockerfile, engine, functions, gpu_batch, pyproject) for a
  ``DockerImageAsset``, which is only staged at synth; the image is built by ``cdk deploy``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "infra" / "build"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


def _kept_files(root: Path) -> list[Path]:
    """The files under ``root`` that matter (and that a copy with ``_IGNORE`` keeps), sorted: no
    ``__pycache__``, ``.pytest_cache``, ``*.egg-info`` or ``*.pyc``."""
    def kept(file: Path) -> bool:
        parts = file.relative_to(root).parts
        return file.suffix != ".pyc" and not any(
            part in ("__pycache__", ".pytest_cache") or part.endswith(".egg-info") for part in parts)

    return sorted(p for p in root.rglob("*") if p.is_file() and kept(p))


def tree_hash(*paths: Path, extra: str = "") -> str:
    """SHA-256 over the relative names and bytes of every file under ``paths`` (sorted)."""
    digest = hashlib.sha256(extra.encode())
    for root in paths:
        for file in [root] if root.is_file() else _kept_files(root):
            digest.update(str(file.relative_to(REPO)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _tree_digest(root: Path) -> str:
    """SHA-256 over the names (relative to ``root``) and bytes of the files a copy keeps."""
    digest = hashlib.sha256()
    for file in _kept_files(root):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _sync_tree(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src``. Several processes may synthesise at once (pytest-xdist workers):
    a copy that is already identical is left alone, and a new one is built beside ``dst`` and renamed
    into place, so no process ever sees a half-deleted tree (rmtree then copytree in place raced)."""
    want = _tree_digest(src)
    if dst.is_dir() and _tree_digest(dst) == want:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    # staged outside dst's parent, which is itself an asset (the Lambda code, the Docker context) that
    # another process may be hashing; same file system, so the renames are atomic
    staging = BUILD / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    fresh = staging / f"{dst.name}-{os.getpid()}-{secrets.token_hex(4)}"
    shutil.copytree(src, fresh, ignore=_IGNORE)
    if dst.is_dir() and _tree_digest(dst) == want:  # another process finished the same copy meanwhile
        shutil.rmtree(fresh, ignore_errors=True)
        return
    stale = fresh.with_name(fresh.name + "-stale")
    with contextlib.suppress(FileNotFoundError):
        os.rename(dst, stale)
    try:
        os.rename(fresh, dst)
    except OSError:  # another process renamed its (identical) copy into place first
        shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)


def function_code() -> lambda_.Code:
    """The code asset every tonematch Lambda shares: the ``functions`` package."""
    out = BUILD / "function_code"
    _sync_tree(REPO / "functions", out / "functions")
    return lambda_.Code.from_asset(str(out))


def migrations_hash() -> str:
    """Hash of the database migrations, so the migration custom resource re-runs when they change."""
    folder = REPO / "functions" / "stores" / "migrations"
    return tree_hash(folder) if folder.is_dir() else tree_hash(REPO / "functions" / "stores")


@jsii.implements(ILocalBundling)
class LayerBundler:
    """Builds one layer with ``layers/build.py`` on this machine (no Docker)."""

    def __init__(self, layer: str, python_version: str) -> None:
        self.layer = layer
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *_options: object, **_kw: object) -> bool:
        tmp = Path(output_dir) / ".." / f"{Path(output_dir).name}-build"
        cmd = [
            sys.executable,
            str(REPO / "layers" / "build.py"),
            "--layer",
            self.layer,
            "--python-version",
            self.python_version,
            "--out",
            str(tmp),
        ]
        subprocess.run(cmd, check=True)
        # The asset's root must hold ``python/`` (Lambda puts it on sys.path as /opt/python).
        shutil.copytree(tmp / self.layer, output_dir, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        return True


def layer(
    scope: Construct,
    layer_name: str,
    python_version: str,
    runtime: lambda_.Runtime,
    construct_id: str | None = None,
) -> lambda_.LayerVersion:
    """The ``dsp`` or ``service`` layer, bundled locally for the runtime's Python on x86_64."""
    inputs = [REPO / "layers" / "build.py"] + ([REPO / "engine"] if layer_name == "dsp" else [])
    code = lambda_.Code.from_asset(
        str(REPO / "layers"),
        exclude=["build", "build/**", "__pycache__", "*.pyc"],
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=tree_hash(*inputs, extra=f"{layer_name}:{python_version}"),
        bundling=BundlingOptions(
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{python_version}"),
            local=LayerBundler(layer_name, python_version),
            command=["false"],  # never used: local bundling always answers (or raises)
        ),
    )
    return lambda_.LayerVersion(
        scope,
        construct_id or f"{layer_name.capitalize()}Layer",
        code=code,
        compatible_runtimes=[runtime],
        compatible_architectures=[lambda_.Architecture.X86_64],
        description=f"tonematch {layer_name} dependencies (layers/build.py, Python {python_version})",
    )


def gpu_image_context() -> Path:
    """A small Docker build context for ``gpu_batch/Dockerfile`` (the image is built at deploy)."""
    out = BUILD / "gpu_context"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("engine", "functions", "gpu_batch"):
        _sync_tree(REPO / name, out / name)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, out / name)
    shutil.copy2(REPO / "gpu_batch" / "Dockerfile", out / "Dockerfile")
    return out
