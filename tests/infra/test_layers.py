"""layers/build.py: the Lambda size checks and the wheel selection, without downloading anything."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "layer_build", Path(__file__).parents[2] / "layers" / "build.py"
)
build = importlib.util.module_from_spec(_spec)
sys.modules["layer_build"] = build  # dataclasses look their module up while the class is built
_spec.loader.exec_module(build)

MIB = 2**20


def test_everything_fits_under_the_unzipped_limit():
    layers = [build.SizeReport("dsp", 215 * MIB, 72 * MIB), build.SizeReport("service", 26 * MIB, 9 * MIB)]
    assert build.check_limits(layers, function_code_bytes=1 * MIB) == []
    notes = build.upload_notes(layers)
    assert len(notes) == 1 and notes[0].startswith("dsp: zip is 72.0 MiB") and "S3" in notes[0]


def test_function_plus_layers_over_250_mib_is_reported_with_what_to_do():
    layers = [build.SizeReport("dsp", 240 * MIB, 80 * MIB), build.SizeReport("service", 26 * MIB, 9 * MIB)]
    problems = build.check_limits(layers, function_code_bytes=1 * MIB)
    kinds = sorted(p.split(":")[0] for p in problems)
    assert kinds == ["api", "pipeline-step"]  # the starter carries only the service layer: it fits
    assert all("267.0 MiB" in p and "container image" in p for p in problems)


def test_exactly_at_the_limit_fits_and_one_byte_more_does_not():
    limit = build.UNZIPPED_LIMIT_BYTES
    combos = {"f": ["a"]}
    assert build.check_limits([build.SizeReport("a", limit, 1)], 0, combos) == []
    assert len(build.check_limits([build.SizeReport("a", limit, 1)], 1, combos)) == 1


def test_missing_layer_and_too_many_layers():
    assert "not built" in build.check_limits([], 0, {"f": ["a"]})[0]
    layers = [build.SizeReport(n, 1, 1) for n in "abcdef"]
    assert "6 layers" in build.check_limits(layers, 0, {"f": list("abcdef")})[0]


@pytest.mark.parametrize(
    ("python", "newest", "oldest_ok"),
    [
        ("3.12", "manylinux_2_34_x86_64", "manylinux1_x86_64"),
        ("3.11", "manylinux_2_26_x86_64", "manylinux2014_x86_64"),
    ],
)
def test_wheel_platforms_follow_the_runtime_glibc(python, newest, oldest_ok):
    tags = build.platform_tags(python)
    assert tags[0] == newest and oldest_ok in tags
    assert "manylinux_2_28_x86_64" in tags if python == "3.12" else "manylinux_2_28_x86_64" not in tags


def test_strip_keeps_what_imports_need_and_drops_tests(tmp_path):
    site = tmp_path / "python"
    for rel in (
        "scipy/tests/test_x.py",
        "scipy/linalg/__init__.py",
        "numpy/testing/__init__.py",
        "pkg/__pycache__/m.cpython-312.pyc",
        "pkg/mod.pyi",
        "boto3/__init__.py",
        "scipy/_lib/x.c",
    ):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * 100)
    freed = build.strip_tree(site)
    left = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert left == ["numpy/testing/__init__.py", "scipy/linalg/__init__.py"] and freed == 500


def test_zip_size_is_deterministic(tmp_path):
    (tmp_path / "layer" / "python").mkdir(parents=True)
    (tmp_path / "layer" / "python" / "m.py").write_text("x = 1\n" * 1000)
    a = build.zip_dir(tmp_path / "layer", tmp_path / "a.zip")
    b = build.zip_dir(tmp_path / "layer", tmp_path / "b.zip")
    assert a == b and (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert zipfile.ZipFile(tmp_path / "a.zip").namelist() == ["python/m.py"]


def test_an_empty_combination_list_checks_nothing_rather_than_everything():
    assert build.check_limits([build.SizeReport("dsp", 1, 1)], 0, {}) == []
