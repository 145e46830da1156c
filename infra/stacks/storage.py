"""Storage: the private, encrypted data bucket (audio, work files, viz, presets, drop folder).

Keys start with the owner (``{user_id}/audio/raw/...``, SPEC section 7), and S3 lifecycle filters only
match key prefixes or tags, so a small tagger Lambda tags each new object with ``tonematch-class``
(``raw``, ``processed``, ``work``, ``drop``) from its key, and the lifecycle rules filter on that tag.
The bucket sends its events to EventBridge (the drop folder and the tagger listen there).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import assets
from infra.config import Settings
from infra.stacks.common import DataBucket, data_bucket_name, python_function

#: Object classes the tagger assigns (functions/handlers/tagger.py holds the key → class rules).
CLASS_TAG = "tonematch-class"


class StorageStack(Stack):
    """Data bucket + access-log bucket + KMS key + tagger."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.key = kms.Key(
            self,
            "DataKey",
            enable_key_rotation=True,
            description="tonematch data bucket and queues",
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365))],
        )

        def by_class(cls: str) -> dict[str, str]:
            return {CLASS_TAG: cls}

        self.bucket = s3.Bucket(
            self,
            "Data",
            bucket_name=data_bucket_name(settings.stage),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data/",
            removal_policy=RemovalPolicy.RETAIN,
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=list(settings.cors_origins),
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
                s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=Duration.days(30)),
                s3.LifecycleRule(
                    id="raw-audio",
                    tag_filters=by_class("raw"),
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(30),
                        )
                    ],
                    expiration=Duration.days(settings.raw_retention_days),
                ),
                s3.LifecycleRule(
                    id="processed-audio",
                    tag_filters=by_class("processed"),
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(30),
                        )
                    ],
                    expiration=Duration.days(settings.processed_retention_days),
                ),
                s3.LifecycleRule(
                    id="work-files",
                    tag_filters=by_class("work"),
                    expiration=Duration.days(settings.work_retention_days),
                ),
                s3.LifecycleRule(
                    id="drop-folder",
                    tag_filters=by_class("drop"),
                    expiration=Duration.days(settings.drop_retention_days),
                ),
            ],
        )

        self.service_layer = assets.layer(self, "service", settings.lambda_python, settings.python_runtime)
        self.tagger = python_function(
            self,
            "Tagger",
            handler="functions.handlers.tagger.handler",
            settings=settings,
            layers=[self.service_layer],
            description="tags new objects with their lifecycle class",
            environment={
                "TONEMATCH_BUCKET": data_bucket_name(settings.stage),
                "TONEMATCH_CLASS_TAG": CLASS_TAG,
            },
            memory_mb=256,
            timeout_s=30,
        )
        # Tagging only: read the current tags (to keep them) and write the new set, nothing else;
        # listing lets S3 answer an object deleted before its event arrives with NoSuchKey (the
        # handler's "gone" branch) rather than AccessDenied
        self.data = DataBucket(name=data_bucket_name(settings.stage), key_arn=self.key.key_arn)
        self.tagger.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObjectTagging", "s3:PutObjectTagging"],
                resources=[self.data.arn_for_objects("*")],
            )
        )
        self.tagger.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.data.arn])
        )
        events.Rule(
            self,
            "TagNewObjects",
            description="tag each new object with its lifecycle class",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [data_bucket_name(settings.stage)]}},
            ),
            targets=[targets.LambdaFunction(self.tagger, retry_attempts=4, max_event_age=Duration.hours(6))],
        )
