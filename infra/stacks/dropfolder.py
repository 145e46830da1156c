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

from infra import assets
from infra.config import Settings
from infra.stacks.common import DataBucket, grant_objects, python_function
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

        dsp_layer = assets.layer(self, "dsp", settings.lambda_python, settings.python_runtime)
        service_layer = assets.layer(self, "service", settings.lambda_python, settings.python_runtime)
        self.starter = python_function(
            self,
            "StarterFunction",
            handler="functions.handlers.starter.handler",
            settings=settings,
            layers=[dsp_layer, service_layer],
            description="starts jobs from drop-folder uploads",
            environment={
                "TONEMATCH_BUCKET": bucket.name,
                "TONEMATCH_STATE_MACHINE_ARN": state_machine.state_machine_arn,
                "TONEMATCH_RUNNER": "stepfunctions",
                **database.client_environment,
            },
            memory_mb=1024,
            timeout_s=60,
            vpc=database.vpc,
            security_groups=[database.app_security_group],
        )
        # reads the dropped files and writes the job's raw-audio copies (functions/dropfolder.py)
        grant_objects(self.starter, bucket, read=True, write=True, list_keys=True)
        state_machine.grant_start_execution(self.starter)
        database.grant_client(self.starter)
        self.starter.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=10,
                max_batching_window=Duration.seconds(5),
                report_batch_item_failures=True,
            )
        )
