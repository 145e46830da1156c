"""Drop folder: S3 Object Created (EventBridge) → SQS (own DLQ) → the starter Lambda, which reports
partial batch failures so only the failed records come back (and, after 5 receives, go to the DLQ)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import Settings
from infra.stacks.common import DataBucket, job_starting_function
from infra.stacks.database import DatabaseStack

#: Drop-folder keys look like ``drop/{user_id}/{batch}/...`` (functions/dropfolder.py decides what
#: they mean, including ignoring keys it does not know).
DROP_PREFIX = "drop/"
MAX_RECEIVES = 5


class DropFolderStack(Stack):
    """EventBridge rule + queue + DLQ + starter Lambda."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        bucket: DataBucket,
        database: DatabaseStack,
        state_machine: sfn.IStateMachine,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DropDeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "DropQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(6 * 60),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVES
            ),
        )
        self.rule = events.Rule(
            self,
            "DropObjectCreated",
            description="objects created under a user's drop folder",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.name]}, "object": {"key": [{"prefix": DROP_PREFIX}]}},
            ),
            targets=[
                targets.SqsQueue(
                    self.queue,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=8,
                    max_event_age=Duration.hours(24),
                )
            ],
        )

        # reads the dropped files and writes the job's raw-audio copies (functions/dropfolder.py)
        self.starter = job_starting_function(
            self,
            "StarterFunction",
            handler="functions.handlers.starter.handler",
            description="starts jobs from drop-folder uploads",
            timeout_s=60,
            settings=settings,
            bucket=bucket,
            database=database,
            state_machine=state_machine,
        )
        self.starter.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=10,
                max_batching_window=Duration.seconds(5),
                report_batch_item_failures=True,
            )
        )
