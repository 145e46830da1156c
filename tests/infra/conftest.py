"""One synthesis of the whole CDK app per test session, shared by every infra test."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

#: what the tests synthesise with: bundling skipped (no pip at synth), Lambda render for <= 1 segment
TEST_CONTEXT = {
    "aws:cdk:bundling-stacks": [],
    "tonematch:stage": "test",
    "tonematch:lambdaRenderMaxSegments": 1,
}


@dataclass
class Synth:
    outdir: Path
    templates: dict[str, dict]
    seconds: float
    validation_report: dict | None

    def template(self, suffix: str) -> dict:
        (name,) = [n for n in self.templates if n.endswith(suffix)]
        return self.templates[name]

    def resources(self, type_name: str, suffix: str | None = None) -> dict[str, dict]:
        out = {}
        for name, tpl in self.templates.items():
            if suffix and not name.endswith(suffix):
                continue
            out.update(
                {f"{name}/{k}": v for k, v in tpl.get("Resources", {}).items() if v["Type"] == type_name}
            )
        return out


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    pytest.importorskip("aws_cdk")
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    started = time.perf_counter()
    app = build_app(dict(TEST_CONTEXT), outdir=str(outdir))
    app.synth()
    seconds = time.perf_counter() - started
    print(f"\nCDK synth of the whole app: {seconds:.1f} s")
    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text())
        for p in outdir.glob("*.template.json")
    }
    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return Synth(outdir, templates, seconds, report)
