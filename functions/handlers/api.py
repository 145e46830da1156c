"""The HTTPS API on Lambda: the FastAPI app through Mangum (HTTP API payload v2).

``handler = Mangum(create_app(settings_from_env()))``, wrapped so each request gets a fresh database
token (IAM auth) and a correlation id (API Gateway's request id). Traces come from Lambda's active
tracing: the X-Ray SDK is not imported here (it adds about 0.8 s of CPU to every cold start).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from functions.api.app import create_app
from functions.handlers._runtime import logger, refresh_db_credentials
from functions.settings import Settings


def settings_from_env() -> Settings:
    """Settings from ``TONEMATCH_*`` (jobs start Step Functions executions; no local runner)."""
    return Settings.from_env(run_local_runner=False)


refresh_db_credentials()
app = create_app(settings_from_env())
asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", log_event=False)
def handler(event: dict, context: Any) -> dict:
    refresh_db_credentials()
    return asgi(event, context)
