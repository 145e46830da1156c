"""Pipeline: the Step Functions standard workflow rendered from ``functions.pipeline.definition``, its
step Lambdas, the AWS Batch GPU renders, the dead-letter queue and the status watcher."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.pipeline.definition import PIPELINE, Pipeline
from infra import assets
from infra.config import Settings
from infra.stacks.common import LAMBDA_DATA_DIR, DataBucket, grant_objects, python_function
from infra.stacks.database import DatabaseStack
from infra.statemachine import BatchTarget, PipelineRenderer

#: Exit codes of gpu_batch/entrypoint.py that the job definition's retry strategy keys on.
EXIT_TRANSIENT = "3"
EXIT_PERMANENT = "2"
LAMBDA_MAX_TIMEOUT_S = 900
#: /tmp of the step Lambdas (the most Lambda offers; the default is 512 MB). Steps download and write
#: whole files there: Invert the target and its gain-probe render, Merge every segment as float32 plus
#: the merged file, about four times a 16-bit upload of the largest size (Settings.max_upload_bytes).
STEP_EPHEMERAL_STORAGE_MB = 10240


class PipelineStack(Stack):
    """State machine + step Lambdas + Batch GPU compute + DLQ."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        bucket: DataBucket,
        database: DatabaseStack,
        pipeline: Pipeline = PIPELINE,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        vpc = database.vpc
        app_sg = database.app_security_group
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )

        dsp_layer = assets.layer(self, "dsp", settings.lambda_python, settings.python_runtime)
        service_layer = assets.layer(self, "service", settings.lambda_python, settings.python_runtime)
        env = {"TONEMATCH_BUCKET": bucket.name, **database.client_environment}

        #: one Lambda per pipeline task (the Batch task gets one too: the CPU path for short jobs)
        self.step_functions: dict[str, lambda_.Function] = {}
        for task in pipeline.tasks():
            fn = python_function(
                self,
                f"{task.name}Function",
                handler="functions.handlers.steps.handler",
                settings=settings,
                layers=[dsp_layer, service_layer],
                description=f"tonematch pipeline step {task.name}",
                environment={**env, "TONEMATCH_STEP": task.name},
                memory_mb=task.memory_mb,
                timeout_s=min(task.timeout_s, LAMBDA_MAX_TIMEOUT_S),
                vpc=vpc,
                security_groups=[app_sg],
                ephemeral_storage_mb=STEP_EPHEMERAL_STORAGE_MB,
            )
            fn.add_environment("TONEMATCH_SCRATCH_DIR", "/tmp")
            grant_objects(fn, bucket, read=True, write=True, delete=True, list_keys=True)
            database.grant_client(fn)
            self.step_functions[task.name] = fn

        self.result_loader = python_function(
            self,
            "BatchResultFunction",
            handler="functions.handlers.batch_result.handler",
            settings=settings,
            layers=[service_layer],
            description="reads a Batch step's return value back from S3",
            environment={"TONEMATCH_BUCKET": bucket.name},
            memory_mb=256,
            timeout_s=30,
        )
        # listing lets S3 answer a result never written with NoSuchKey (without it: AccessDenied)
        grant_objects(
            self.result_loader, bucket, read=True, list_keys=True, key_pattern="*/work/*/batch-results/*"
        )

        self._build_batch(settings, bucket, database, env, pipeline)
        renderer = PipelineRenderer(
            self,
            pipeline,
            functions=self.step_functions,
            dead_letter_queue=self.dead_letter_queue,
            batch=BatchTarget(
                self.job_queue.job_queue_arn, self.job_definition.job_definition_arn, self.result_loader
            ),
            lambda_render_max_segments=settings.lambda_render_max_segments,
        )
        sm_logs = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{pipeline.name}-{settings.stage}",
            definition_body=sfn.DefinitionBody.from_chainable(renderer.build()),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.hours(12),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=sm_logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        )

        # Executions that end without passing through the Catch path (timeout, abort, a States.Runtime
        # error) still end their job as FAILED with a dead letter: the status watcher sees every end.
        self.status_function = python_function(
            self,
            "StatusFunction",
            handler="functions.handlers.status.handler",
            settings=settings,
            layers=[dsp_layer, service_layer],
            description="marks jobs of ended executions FAILED",
            environment={
                **env,
                "TONEMATCH_DLQ_URL": self.dead_letter_queue.queue_url,
                "TONEMATCH_STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
            },
            memory_mb=512,
            timeout_s=60,
            vpc=vpc,
            security_groups=[app_sg],
        )
        database.grant_client(self.status_function)
        self.dead_letter_queue.grant_send_messages(self.status_function)
        self.watch_rule = events.Rule(
            self,
            "ExecutionEnded",
            description="tonematch executions that failed, timed out or were aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.status_function,
                    retry_attempts=8,
                    max_event_age=Duration.hours(24),
                    dead_letter_queue=self.dead_letter_queue,
                )
            ],
        )

    def _build_batch(
        self,
        settings: Settings,
        bucket: DataBucket,
        database: DatabaseStack,
        env: dict[str, str],
        pipeline: Pipeline,
    ) -> None:
        self.compute_environment = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "GpuCompute",
            vpc=database.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[database.app_security_group],
            instance_types=[ec2.InstanceType(t) for t in settings.gpu_instance_types],
            use_optimal_instance_classes=False,
            images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)],
            spot=settings.spot,
            minv_cpus=0,
            maxv_cpus=settings.gpu_max_vcpus,
            allocation_strategy=(
                batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                if settings.spot
                else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
            ),
            update_to_latest_image_version=True,
            replace_compute_environment=False,
        )
        self.job_queue = batch.JobQueue(
            self,
            "GpuQueue",
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=self.compute_environment, order=1)
            ],
            # A job that waits hours for GPU capacity fails (and so its job) rather than hang forever.
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(
                    max_time=Duration.hours(2),
                    reason=batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
                    action=batch.JobStateTimeLimitActionsAction.CANCEL,
                )
            ],
        )
        image = ecr_assets.DockerImageAsset(
            self,
            "RenderImage",
            directory=str(assets.gpu_image_context()),
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.job_role = iam.Role(
            self,
            "RenderJobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="tonematch segment renders on AWS Batch",
        )
        grant_objects(self.job_role, bucket, read=True, write=True, list_keys=True)
        database.grant_client(self.job_role)
        render_logs = logs.LogGroup(
            self, "RenderLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        batch_tasks = [t for t in pipeline.tasks() if t.compute == "batch"]
        timeout_s = max((t.timeout_s for t in batch_tasks), default=3600)
        self.job_definition = batch.EcsJobDefinition(
            self,
            "RenderJob",
            timeout=Duration.seconds(timeout_s),
            container=batch.EcsEc2ContainerDefinition(
                self,
                "RenderContainer",
                image=ecs.ContainerImage.from_docker_image_asset(image),
                cpu=4,
                memory=Size.gibibytes(14),
                gpu=1,
                job_role=self.job_role,
                # ECS on EC2 sets no region (boto3 and the RDS token need one); the image's user may
                # write only /tmp, where Settings.resolved() keeps its data dir
                environment={
                    **env,
                    "AWS_REGION": self.region,
                    "AWS_DEFAULT_REGION": self.region,
                    "TONEMATCH_DATA_DIR": LAMBDA_DATA_DIR,
                    "TONEMATCH_SCRATCH_DIR": "/tmp",
                    "TONEMATCH_GPU": "auto",
                },
                logging=ecs.LogDriver.aws_logs(stream_prefix="render", log_group=render_logs),
            ),
            retry_attempts=4,
            retry_strategies=[
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_exit_code=EXIT_TRANSIENT)),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_exit_code=EXIT_PERMANENT)),
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_exit_code="*")),
            ],
        )
