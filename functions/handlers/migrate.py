"""CloudFormation custom resource (through the CDK provider framework): applies the status store's
versioned migrations (``functions/stores/migrations``) on every deploy that changes them.
Deleting the resource keeps the data (nothing is dropped)."""

from __future__ import annotations

from typing import Any

from functions.handlers._runtime import logger, refresh_db_credentials
from functions.settings import Settings
from functions.stores.status import StatusStore

PHYSICAL_ID = "tonematch-migrations"


@logger.inject_lambda_context(log_event=True)
def on_event(event: dict, context: Any) -> dict:
    if event.get("RequestType") == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_ID)}
    refresh_db_credentials()
    settings = Settings.from_env()
    store = StatusStore(settings.database_url, schema=settings.database_schema)
    try:
        applied = store.migrate()
        version = store.schema_version()
    finally:
        store.close()
    logger.info("migrations applied", extra={"applied": applied, "schema_version": version})
    return {
        "PhysicalResourceId": PHYSICAL_ID,
        "Data": {"SchemaVersion": str(version), "Applied": ",".join(map(str, applied))},
    }
