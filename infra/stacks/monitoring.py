"""Monitoring: one CloudWatch dashboard and alarms for queued, running, failed and retried jobs, job
and step durations, Lambda and Batch errors, dead letters; plus the quality metrics the step adapters
publish through Powertools (namespace ``Tonematch``)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import Settings
from infra.stacks.common import METRICS_NAMESPACE, SERVICE_NAME

#: Quality metrics of finished jobs (SPEC section 3), published by functions/handlers/steps.py.
QUALITY_METRICS = ("stft_dist", "mel_dist", "lufs_err", "tp_db", "artifacts_rate")
FIVE_MIN = Duration.minutes(5)


def _app_metric(name: str, stat: str = "Sum", dims: dict[str, str] | None = None) -> cw.Metric:
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        statistic=stat,
        period=FIVE_MIN,
        dimensions_map={"service": SERVICE_NAME, **(dims or {})},
    )


class MonitoringStack(Stack):
    """Dashboard + alarms + alarm topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        state_machine: sfn.IStateMachine,
        functions: dict[str, lambda_.IFunction],
        job_queue_arn: str,
        dead_letter_queues: dict[str, sqs.IQueue],
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            description="tonematch alarm topic",
        )
        self.topic = sns.Topic(
            self, "Alarms", master_key=key, enforce_ssl=True, display_name="tonematch alarms"
        )
        if settings.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(settings.alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.Alarm] = []

        def alarm(
            cid: str, metric: cw.IMetric, threshold: float, description: str, periods: int = 1
        ) -> cw.Alarm:
            a = cw.Alarm(
                self,
                cid,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            a.add_alarm_action(action)
            self.alarms.append(a)
            return a

        # -- jobs ------------------------------------------------------------------------------
        started = state_machine.metric_started(period=FIVE_MIN)
        succeeded = state_machine.metric_succeeded(period=FIVE_MIN)
        failed = state_machine.metric_failed(period=FIVE_MIN)
        timed_out = state_machine.metric_timed_out(period=FIVE_MIN)
        aborted = state_machine.metric_aborted(period=FIVE_MIN)
        queued = _app_metric("JobsQueued")
        retried = _app_metric("StepTransientErrors")
        # Executions started minus ended in the window: a flow measure of jobs still running.
        running = cw.MathExpression(
            expression="MAX([0, started - (succeeded + failed + timedOut + aborted)])",
            using_metrics={
                "started": started,
                "succeeded": succeeded,
                "failed": failed,
                "timedOut": timed_out,
                "aborted": aborted,
            },
            label="running (started - ended)",
            period=FIVE_MIN,
        )
        duration = state_machine.metric_time(period=FIVE_MIN, statistic="p90")
        alarm("JobsFailed", failed, 1, "a tonematch job failed (see the pipeline dead-letter queue)")
        alarm("JobsTimedOut", timed_out, 1, "a tonematch execution timed out")
        alarm("JobsRetried", retried, 10, "many transient step errors (retries) in 5 minutes", periods=2)
        alarm(
            "JobDurationHigh",
            duration,
            Duration.hours(2).to_milliseconds(),
            "p90 job duration over 2 h",
            periods=3,
        )

        # -- Lambda and Batch errors ------------------------------------------------------------
        lambda_errors = []
        for name, fn in sorted(functions.items()):
            metric = fn.metric_errors(period=FIVE_MIN)
            lambda_errors.append(metric)
            alarm(f"{name}Errors", metric, 3, f"Lambda {name} errors", periods=1)
        batch_logs = logs.LogGroup(
            self,
            "BatchFailedJobs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        events.Rule(
            self,
            "BatchJobFailed",
            description="tonematch render jobs that failed",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={"status": ["FAILED"], "jobQueue": [job_queue_arn]},
            ),
            targets=[targets.CloudWatchLogGroup(batch_logs)],
        )
        batch_failed = logs.MetricFilter(
            self,
            "BatchFailedFilter",
            log_group=batch_logs,
            metric_namespace=METRICS_NAMESPACE,
            metric_name="BatchJobsFailed",
            filter_pattern=logs.FilterPattern.literal('{ $.detail.status = "FAILED" }'),
            metric_value="1",
            default_value=0,
        ).metric(statistic="Sum", period=FIVE_MIN)
        alarm("BatchJobsFailed", batch_failed, 1, "an AWS Batch segment render failed")

        # -- dead letters ------------------------------------------------------------------------
        dlq_metrics = {}
        for name, queue in dead_letter_queues.items():
            m = queue.metric_approximate_number_of_messages_visible(period=FIVE_MIN, statistic="Maximum")
            dlq_metrics[name] = m
            alarm(f"{name}NotEmpty", m, 1, f"messages waiting in the {name} dead-letter queue")

        # -- dashboard -----------------------------------------------------------------------------
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"tonematch-{settings.stage}")
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Jobs", left=[queued, started, succeeded, failed, timed_out], width=12),
            cw.GraphWidget(title="Running, retried", left=[running, retried], width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Job duration (ms)",
                left=[
                    state_machine.metric_time(period=FIVE_MIN, statistic=s) for s in ("p50", "p90", "Maximum")
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Step duration (ms, p90)",
                left=[
                    _app_metric("StepDuration", "p90", {"step": n})
                    for n in sorted(functions)
                    if n[0].isupper()
                ][:10],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Lambda errors", left=lambda_errors, width=12),
            cw.GraphWidget(
                title="Batch failures, dead letters", left=[batch_failed, *dlq_metrics.values()], width=12
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Quality of finished jobs (average)",
                left=[_app_metric(m, "Average") for m in QUALITY_METRICS],
                width=24,
            )
        )
