"""Deployment settings read from CDK context (``cdk.json`` plus ``-c`` flags or ``cdk.App(context=)``).

Running ``python infra/app.py`` directly does not read ``cdk.json``; :func:`load_cdk_json_context`
gives its context so the app can pass it to ``cdk.App(context=...)`` and both ways synthesise alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO = Path(__file__).resolve().parents[1]
CDK_JSON = REPO / "cdk.json"


def load_cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of ``cdk.json`` (feature flags and tonematch settings)."""
    return dict(json.loads(path.read_text()).get("context", {}))


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


@dataclass(frozen=True)
class Settings:
    """Everything the stacks read from context; defaults are the documented ones in ``cdk.json``."""

    stage: str = "dev"
    lambda_python: str = "3.12"
    gpu_instance_types: tuple[str, ...] = ("g5.xlarge", "g5.2xlarge", "g6.xlarge", "g6.2xlarge")
    spot: bool = False
    gpu_max_vcpus: int = 64
    #: jobs whose plan has at most this many segments render on Lambda (the CPU path); longer on Batch
    lambda_render_max_segments: int = 4
    raw_retention_days: int = 180
    processed_retention_days: int = 365
    work_retention_days: int = 7
    drop_retention_days: int = 30
    db_multi_az: bool = True
    db_instance_type: str = "t4g.medium"
    nat_gateways: int = 1
    cors_origins: tuple[str, ...] = ("https://localhost:8000",)
    api_rate_limit: float = 50
    api_burst_limit: int = 100
    alarm_email: str = ""
    nag: bool = True

    @property
    def python_runtime(self) -> lambda_.Runtime:
        """The Lambda runtime matching the layer build (``layers/build.py --python-version``)."""
        runtimes = {"3.11": lambda_.Runtime.PYTHON_3_11, "3.12": lambda_.Runtime.PYTHON_3_12}
        if self.lambda_python not in runtimes:
            raise ValueError(
                f"context tonematch:lambdaPython must be 3.11 or 3.12, got {self.lambda_python!r}"
            )
        return runtimes[self.lambda_python]

    @classmethod
    def from_scope(cls, scope: Construct) -> Settings:
        """Read ``tonematch:*`` context keys from the construct tree (missing keys keep defaults)."""
        d = cls()

        def get(key: str, default: Any) -> Any:
            value = scope.node.try_get_context(f"tonematch:{key}")
            return default if value is None else value

        settings = cls(
            stage=str(get("stage", d.stage)),
            lambda_python=str(get("lambdaPython", d.lambda_python)),
            gpu_instance_types=tuple(_list(get("gpuInstanceTypes", list(d.gpu_instance_types)))),
            spot=_bool(get("spot", d.spot)),
            gpu_max_vcpus=int(get("gpuMaxVcpus", d.gpu_max_vcpus)),
            lambda_render_max_segments=int(get("lambdaRenderMaxSegments", d.lambda_render_max_segments)),
            raw_retention_days=int(get("rawRetentionDays", d.raw_retention_days)),
            processed_retention_days=int(get("processedRetentionDays", d.processed_retention_days)),
            work_retention_days=int(get("workRetentionDays", d.work_retention_days)),
            drop_retention_days=int(get("dropRetentionDays", d.drop_retention_days)),
            db_multi_az=_bool(get("dbMultiAz", d.db_multi_az)),
            db_instance_type=str(get("dbInstanceType", d.db_instance_type)),
            nat_gateways=int(get("natGateways", d.nat_gateways)),
            cors_origins=tuple(_list(get("corsOrigins", list(d.cors_origins)))),
            api_rate_limit=float(get("apiRateLimit", d.api_rate_limit)),
            api_burst_limit=int(get("apiBurstLimit", d.api_burst_limit)),
            alarm_email=str(get("alarmEmail", d.alarm_email)),
            nag=_bool(get("nag", d.nag)),
        )
        bad = [
            t
            for t in settings.gpu_instance_types
            if not t.split(".")[0].startswith(("g4dn", "g5", "g6", "p"))
        ]
        if bad:
            raise ValueError(f"context tonematch:gpuInstanceTypes: {bad} are not GPU instance types")
        if settings.lambda_render_max_segments < 0:
            raise ValueError("context tonematch:lambdaRenderMaxSegments must be >= 0")
        return settings
