"""tonematch's CDK app. ``cdk synth`` (reads cdk.json) and ``python infra/app.py`` synthesise the same
thing: the app passes cdk.json's context to ``cdk.App`` itself, since running it directly would not.

    python infra/app.py                        # writes cdk.out/
    npx aws-cdk@2 synth --no-notices           # same, through the CLI
    python infra/app.py -c tonematch:spot=true # a context override when run directly
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python infra/app.py` puts infra/ on the path, not the repo
    sys.path.insert(0, str(REPO))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402

from infra.config import Settings, load_cdk_json_context  # noqa: E402
from infra.stacks.api import ApiStack  # noqa: E402
from infra.stacks.database import DatabaseStack  # noqa: E402
from infra.stacks.dropfolder import DropFolderStack  # noqa: E402
from infra.stacks.monitoring import MonitoringStack  # noqa: E402
from infra.stacks.pipeline import PipelineStack  # noqa: E402
from infra.stacks.storage import StorageStack  # noqa: E402


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> cdk.App:
    """The whole app: cdk.json's context, overridden by ``context``, then the six stacks."""
    merged = {**load_cdk_json_context(), **(context or {})}
    app = cdk.App(context=merged, outdir=outdir)
    settings = Settings.from_scope(app)
    prefix = f"Tonematch-{settings.stage}"
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    storage = StorageStack(app, f"{prefix}-Storage", settings=settings, env=env)
    database = DatabaseStack(app, f"{prefix}-Database", settings=settings, env=env)
    pipeline = PipelineStack(
        app, f"{prefix}-Pipeline", settings=settings, bucket=storage.data, database=database, env=env
    )
    api = ApiStack(
        app,
        f"{prefix}-Api",
        settings=settings,
        bucket=storage.data,
        database=database,
        state_machine=pipeline.state_machine,
        env=env,
    )
    drop = DropFolderStack(
        app,
        f"{prefix}-DropFolder",
        settings=settings,
        bucket=storage.data,
        database=database,
        state_machine=pipeline.state_machine,
        env=env,
    )
    functions = {
        **pipeline.step_functions,
        "BatchResult": pipeline.result_loader,
        "Status": pipeline.status_function,
        "Api": api.function,
        "Starter": drop.starter,
        "Tagger": storage.tagger,
    }
    MonitoringStack(
        app,
        f"{prefix}-Monitoring",
        settings=settings,
        state_machine=pipeline.state_machine,
        functions=functions,
        job_queue_arn=pipeline.job_queue.job_queue_arn,
        dead_letter_queues={
            "PipelineDLQ": pipeline.dead_letter_queue,
            "DropFolderDLQ": drop.dead_letter_queue,
        },
        env=env,
    )
    for stack in app.node.children:
        if isinstance(stack, cdk.Stack):
            for key, value in (("project", "tonematch"), ("stage", settings.stage)):
                # DBProxyTargetGroup takes no Tags (CloudFormation rejects them)
                cdk.Tags.of(stack).add(key, value, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    if settings.nag:
        from infra.nag import apply_nag

        apply_nag(app)
    return app


def _cli_context(argv: list[str]) -> dict[str, Any]:
    """``-c key=value`` pairs given on the command line when the app is run directly."""
    out: dict[str, Any] = {}
    it = iter(argv)
    for arg in it:
        if arg in ("-c", "--context"):
            key, _, value = next(it, "").partition("=")
            try:  # the CLI parses JSON values (lists, booleans, numbers) the same way
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
    return out


if __name__ == "__main__":
    outdir = os.environ.get("CDK_OUTDIR") or str(REPO / "cdk.out")
    build_app(_cli_context(sys.argv[1:]), outdir=outdir).synth()
