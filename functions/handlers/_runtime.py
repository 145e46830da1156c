"""What every tonematch Lambda shares: Powertools objects, IAM database credentials, the context.

RDS Proxy is reached with IAM authentication (:mod:`functions.stores.db_auth`): a token is signed
before each invocation, and again by the status store before any connection it re-opens later.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

from functions.pipeline.context import StepContext, context_from_env
from functions.stores.db_auth import refresh_db_credentials

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "tonematch")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Tonematch")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

__all__ = ["logger", "metrics", "refresh_db_credentials", "step_context"]


def step_context() -> StepContext:
    """The process's :class:`StepContext` (cached by ``context_from_env``), credentials refreshed."""
    refresh_db_credentials()
    return context_from_env()
