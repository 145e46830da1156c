"""What every tonematch Lambda shares: Powertools objects, IAM database credentials, the context.

RDS Proxy is reached with IAM authentication: ``TONEMATCH_DATABASE_URL`` has no password, and when
``TONEMATCH_DB_IAM_AUTH=1`` a fresh auth token (valid 15 min) is put in ``PGPASSWORD`` before each
invocation, which libpq uses for every (re)connection the status store makes.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlparse

from aws_lambda_powertools import Logger, Metrics

from functions.pipeline.context import StepContext, context_from_env

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "tonematch")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Tonematch")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

#: re-sign the token well before its 15-minute life ends
TOKEN_REFRESH_S = 10 * 60
_token_signed_at = 0.0


def refresh_db_credentials(now: float | None = None, rds_client=None) -> bool:
    """Put a fresh RDS IAM auth token in ``PGPASSWORD`` when IAM auth is on and the last one is
    older than :data:`TOKEN_REFRESH_S`; returns whether a token was signed (signing is local, no call)."""
    global _token_signed_at
    if os.environ.get("TONEMATCH_DB_IAM_AUTH") != "1":
        return False
    now = time.time() if now is None else now
    if now - _token_signed_at < TOKEN_REFRESH_S and os.environ.get("PGPASSWORD"):
        return False
    url = urlparse(os.environ["TONEMATCH_DATABASE_URL"])
    if rds_client is None:
        import boto3

        rds_client = boto3.client("rds")
    os.environ["PGPASSWORD"] = rds_client.generate_db_auth_token(
        DBHostname=url.hostname, Port=url.port or 5432, DBUsername=url.username
    )
    os.environ.setdefault("PGSSLMODE", "require")
    _token_signed_at = now
    return True


def step_context() -> StepContext:
    """The process's :class:`StepContext` (cached by ``context_from_env``), credentials refreshed."""
    refresh_db_credentials()
    return context_from_env()
