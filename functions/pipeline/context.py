"""What every step handler gets besides its event: the stores, a scratch dir and the settings.

The local runner builds one :class:`StepContext` from its settings; the Lambda handlers call
:func:`context_from_env`, which reads (all optional, see :mod:`functions.settings`):

``TONEMATCH_DATABASE_URL`` (or ``TONEMATCH_DATABASE_SECRET_ARN``), ``TONEMATCH_DATABASE_SCHEMA``,
``TONEMATCH_BUCKET``, ``TONEMATCH_S3_ENDPOINT_URL``, ``AWS_REGION``, ``TONEMATCH_SCRATCH_DIR``,
``TONEMATCH_DLQ_URL`` (dead letters to SQS, else the ``dead_letters`` table),
``TONEMATCH_STATE_MACHINE_ARN`` (new jobs start a Step Functions execution), ``TONEMATCH_DATA_DIR``,
``TONEMATCH_JWT_SECRET`` (or ``TONEMATCH_JWT_SECRET_ARN``), ``TONEMATCH_PUBLIC_URL``,
``TONEMATCH_RATE_LIMIT_PER_S``,
``TONEMATCH_RATE_BURST``, ``TONEMATCH_WORKERS``, ``TONEMATCH_RENDER_NICE``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from functions.settings import Settings
from functions.stores.objects import ObjectStore, object_store_from_settings
from functions.stores.status import StatusStore


class DeadLetterSink(Protocol):
    def send(self, record: dict) -> None: ...


class TableDeadLetters:
    """Dead letters as rows of the ``dead_letters`` table (local default)."""

    def __init__(self, status: StatusStore) -> None:
        self.status = status

    def send(self, record: dict) -> None:
        self.status.add_dead_letter(record)


class SqsDeadLetters:
    """Dead letters as SQS messages (AWS)."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        import boto3

        self.queue_url = queue_url
        self.client = client or boto3.client("sqs")

    def send(self, record: dict) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(record, default=str))


class StepFunctionsLauncher:
    """Starts a job by starting an execution of the state machine (name = job id, so a second
    start of the same job is refused by Step Functions itself)."""

    def __init__(self, state_machine_arn: str, client: Any = None) -> None:
        import boto3

        self.arn = state_machine_arn
        self.client = client or boto3.client("stepfunctions")

    def __call__(self, event: dict) -> None:
        name = f"{event['job_id']}-{int(event.get('attempt', 0))}"
        with contextlib.suppress(self.client.exceptions.ExecutionAlreadyExists):
            self.client.start_execution(stateMachineArn=self.arn, name=name, input=json.dumps(event))


@dataclass
class StepContext:
    """Stores and settings for step handlers. ``launch`` starts a job's pipeline (local runner or
    Step Functions); ``dead_letters`` receives the record of a job that failed for good."""

    objects: ObjectStore
    status: StatusStore
    scratch_dir: Path
    settings: Settings
    dead_letters: DeadLetterSink | None = None
    launch: Callable[[dict], None] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scratch_dir = Path(self.scratch_dir)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        if self.dead_letters is None:
            self.dead_letters = TableDeadLetters(self.status)


def context_from_settings(settings: Settings, *, migrate: bool = True) -> StepContext:
    """Build the stores from (resolved) settings; applies pending migrations when ``migrate``."""
    settings = settings.resolved()
    status = StatusStore(settings.database_url, schema=settings.database_schema)
    if migrate:
        status.migrate()
    dead = SqsDeadLetters(settings.dlq_url) if settings.dlq_url else TableDeadLetters(status)
    launch = StepFunctionsLauncher(settings.state_machine_arn) if settings.state_machine_arn else None
    return StepContext(
        objects=object_store_from_settings(settings),
        status=status,
        scratch_dir=settings.scratch_dir,
        settings=settings,
        dead_letters=dead,
        launch=launch,
    )


_ENV_CTX: StepContext | None = None


def context_from_env(*, refresh: bool = False) -> StepContext:
    """The context of a Lambda/Batch process, from ``TONEMATCH_*`` env vars (module docstring);
    cached per process so warm invocations reuse connections."""
    global _ENV_CTX
    if _ENV_CTX is None or refresh:
        _ENV_CTX = context_from_settings(Settings.from_env())
    return _ENV_CTX
