"""cdk-nag's AwsSolutions pack finds nothing unacknowledged, every acknowledgement has a reason and
still matches something, and cfn-lint passes on every template (W3005 allowed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.nag import ACKNOWLEDGEMENTS

pytestmark = pytest.mark.cdk


def test_no_unacknowledged_nag_findings(synth):
    report = synth.validation_report
    findings = []
    if report:
        for plugin in report.get("pluginReports", []):
            for v in plugin.get("violations", []):
                paths = [c.get("constructPath") for c in v.get("violatingConstructs", [])]
                findings.append((v.get("ruleName"), paths[:3]))
    assert findings == [], json.dumps(findings, indent=1)


def test_every_acknowledgement_is_justified_and_live(synth):
    import fnmatch

    tree = json.loads((synth.outdir / "tree.json").read_text())
    paths = []

    def walk(node):
        paths.append(node.get("path", ""))
        for child in (node.get("children") or {}).values():
            walk(child)

    walk(tree["tree"])
    for ack in ACKNOWLEDGEMENTS:
        assert len(ack.reason.split()) >= 8, f"{ack.rule}: reason too thin"
        assert ack.rule.startswith("AwsSolutions-")
        assert any(fnmatch.fnmatchcase(p, ack.path_glob) for p in paths), f"stale: {ack.path_glob} {ack.rule}"


def test_cfn_lint_clean(synth):
    templates = sorted(str(p) for p in synth.outdir.glob("*.template.json"))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    proc = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--ignore-checks", "W3005", "--", *templates],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
