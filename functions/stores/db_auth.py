"""RDS IAM authentication for the PostgreSQL status store.

RDS Proxy is reached with IAM authentication: ``TONEMATCH_DATABASE_URL`` has no password, and when
``TONEMATCH_DB_IAM_AUTH=1`` an auth token (valid 15 minutes, signed locally, no AWS call) is put in
``PGPASSWORD``, which libpq reads at connect time. The status store calls
:func:`refresh_db_credentials` before every connection it opens, so a connection re-opened in a long
Batch render or a warm Lambda gets a live token, not the one signed when the process started.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any
from urllib.parse import urlparse

#: re-sign the token well before its 15-minute life ends
TOKEN_REFRESH_S = 10 * 60
_token_signed_at = 0.0
_lock = threading.Lock()


def _rds_client() -> Any:
    import boto3

    return boto3.client("rds")


def refresh_db_credentials(now: float | None = None, rds_client: Any = None,
                           database_url: str | None = None) -> bool:
    """Put a fresh RDS IAM auth token for ``database_url`` (default ``TONEMATCH_DATABASE_URL``) in
    ``PGPASSWORD`` when IAM auth is on and the last one is older than :data:`TOKEN_REFRESH_S`;
    returns whether a token was signed."""
    global _token_signed_at
    if os.environ.get("TONEMATCH_DB_IAM_AUTH") != "1":
        return False
    now = time.time() if now is None else now
    with _lock:  # the runner's threads may reconnect at once
        if now - _token_signed_at < TOKEN_REFRESH_S and os.environ.get("PGPASSWORD"):
            return False
        url = urlparse(database_url or os.environ["TONEMATCH_DATABASE_URL"])
        client = rds_client if rds_client is not None else _rds_client()
        os.environ["PGPASSWORD"] = client.generate_db_auth_token(
            DBHostname=url.hostname, Port=url.port or 5432, DBUsername=url.username
        )
        os.environ.setdefault("PGSSLMODE", "require")
        _token_signed_at = now
    return True
