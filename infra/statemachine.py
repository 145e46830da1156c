"""Render :data:`functions.pipeline.definition.PIPELINE` into a Step Functions (ASL) definition.

Nothing here knows the step names: every state comes from walking ``pipeline.nodes``:

* ``Task`` on ``compute="lambda"`` → a Lambda invoke of that step's function, the function's return
  stored under ``$.<result_key>`` (or discarded when ``result_key`` is ``None``);
* ``Parallel`` → an ASL ``Parallel`` whose branch outputs (each the whole state plus that branch's
  result) are merged back into one state with ``States.JsonMerge``;
* ``Map`` → an inline ``Map`` over ``items_key``; each iteration's event is the parent state plus
  ``{"item", "item_index"}`` as the definition says. A ``compute="batch"`` iterator becomes
  ``batch:submitJob.sync`` (the event travels in the container's environment, the step's return value
  comes back through the object store and a small loader Lambda), preceded by a ``Choice``: plans with
  at most ``lambda_render_max_segments`` items run the same step on Lambda instead (the CPU path for
  short jobs, no GPU instance to start);
* ``RetryPolicy`` → ``Retry`` (2, 4, 8, 16, 32 s by default);
* every top-level state → ``Catch`` (``States.ALL``) into: a ``Pass`` naming the failed step, the
  pipeline's ``on_error`` task (marks the job FAILED), an SQS dead-letter message, then ``Fail``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.pipeline.definition import Map, Parallel, Pipeline, RetryPolicy, Task

#: Environment variable names the Batch container reads (gpu_batch/entrypoint.py).
ENV_EVENT = "TONEMATCH_EVENT"
ENV_RESULT_KEY = "TONEMATCH_RESULT_KEY"
ENV_STEP_HANDLER = "TONEMATCH_STEP_HANDLER"

#: Where a Batch step leaves its return value for the loader Lambda, per job and item.
BATCH_RESULT_KEY_FORMAT = "{}/work/{}/batch-results/{}-{}.json"


@dataclass(frozen=True)
class BatchTarget:
    """Where ``compute="batch"`` tasks run, and the Lambda that reads their results back."""

    job_queue_arn: str
    job_definition_arn: str
    result_loader: lambda_.IFunction


def _state_id(name: str) -> str:
    return name


def _add_retry(state: sfn.TaskStateBase | sfn.Parallel | sfn.Map, policy: RetryPolicy) -> None:
    state.add_retry(
        errors=list(policy.errors),
        interval=Duration.seconds(int(policy.interval_s)),
        backoff_rate=policy.backoff_rate,
        max_attempts=policy.max_attempts,
    )


class PipelineRenderer:
    """Builds the state machine's chain inside ``scope`` from ``pipeline``.

    ``functions`` maps each Lambda-run task's name to its function; ``batch`` is required when the
    definition has ``compute="batch"`` tasks."""

    def __init__(
        self,
        scope: Construct,
        pipeline: Pipeline,
        *,
        functions: dict[str, lambda_.IFunction],
        dead_letter_queue: sqs.IQueue,
        batch: BatchTarget | None = None,
        lambda_render_max_segments: int = 0,
    ) -> None:
        self.scope = scope
        self.pipeline = pipeline
        self.functions = functions
        self.dlq = dead_letter_queue
        self.batch = batch
        self.lambda_render_max_segments = lambda_render_max_segments
        self._notes: dict[str, sfn.Pass] = {}
        self._failure_entry = self._build_failure_path()

    # -- failure path --------------------------------------------------------------------------
    def _build_failure_path(self) -> sfn.IChainable:
        on_error = self.pipeline.on_error
        mark_failed = self._lambda_task(on_error, state_name=on_error.name)
        send_dlq = tasks.SqsSendMessage(
            self.scope,
            "SendToDeadLetterQueue",
            queue=self.dlq,
            message_body=sfn.TaskInput.from_object(
                {
                    "job_id": sfn.JsonPath.string_at("$.job_id"),
                    "failed_step": sfn.JsonPath.string_at("$.failed_step"),
                    "error": sfn.JsonPath.object_at("$.error"),
                    "execution_id": sfn.JsonPath.execution_id,
                    "input": sfn.JsonPath.object_at("$"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        send_dlq.add_retry(
            errors=["States.ALL"], interval=Duration.seconds(2), backoff_rate=2, max_attempts=5
        )
        # The execution fails with one fixed error name (error names starting "States." may not be
        # re-raised by a Fail state); the original error is in the cause, the job row and the dead letter.
        fail = sfn.Fail(self.scope, "JobFailed", error="TonematchJobFailed", cause_path="$.error.Cause")
        # If marking FAILED itself fails after its retries, the dead letter still goes out, with both
        # errors, so nothing is lost: operators replay from the queue.
        mark_failed.add_catch(send_dlq, errors=["States.ALL"], result_path="$.mark_failed_error")
        send_dlq.add_catch(fail, errors=["States.ALL"], result_path="$.dead_letter_error")
        return mark_failed.next(send_dlq).next(fail)

    def _failure_note(self, step_name: str) -> sfn.Pass:
        """One ``Pass`` per failing step that records its name, then joins the failure path."""
        if step_name not in self._notes:
            note = sfn.Pass(
                self.scope,
                f"{step_name}Failed",
                result=sfn.Result.from_string(step_name),
                result_path="$.failed_step",
            )
            note.next(self._failure_entry)
            self._notes[step_name] = note
        return self._notes[step_name]

    def _catch_into_failure(self, state: sfn.TaskStateBase | sfn.Parallel | sfn.Map, step_name: str) -> None:
        state.add_catch(self._failure_note(step_name), errors=["States.ALL"], result_path="$.error")

    # -- tasks -------------------------------------------------------------------------------
    def _lambda_task(
        self, task: Task, *, state_name: str, result_path: str | None = None, as_item_result: bool = False
    ) -> tasks.LambdaInvoke:
        fn = self.functions.get(task.name)
        if fn is None:
            raise KeyError(f"no Lambda function given for pipeline task {task.name!r}")
        if as_item_result:
            path = None  # a Map iteration's output is the step's return value
        elif result_path is not None:
            path = result_path
        else:
            path = f"$.{task.result_key}" if task.result_key else sfn.JsonPath.DISCARD
        invoke = tasks.LambdaInvoke(
            self.scope,
            state_name,
            lambda_function=fn,
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=path,
            task_timeout=sfn.Timeout.duration(Duration.seconds(min(task.timeout_s, 900) + 60)),
        )
        _add_retry(invoke, task.retry)
        return invoke

    def _batch_task(self, task: Task, *, state_name: str) -> tuple[tasks.BatchSubmitJob, tasks.LambdaInvoke]:
        if self.batch is None:
            raise ValueError(f"task {task.name!r} runs on batch but no BatchTarget was given")
        result_key = sfn.JsonPath.format(
            BATCH_RESULT_KEY_FORMAT,
            sfn.JsonPath.string_at("$.user_id"),
            sfn.JsonPath.string_at("$.job_id"),
            task.name,
            sfn.JsonPath.string_at("$.item_index"),
        )
        submit = tasks.BatchSubmitJob(
            self.scope,
            state_name,
            job_name=f"tonematch-{task.name}",
            job_queue_arn=self.batch.job_queue_arn,
            job_definition_arn=self.batch.job_definition_arn,
            container_overrides=tasks.BatchContainerOverrides(
                environment={
                    ENV_EVENT: sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$")),
                    ENV_RESULT_KEY: result_key,
                    ENV_STEP_HANDLER: task.handler,
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(Duration.seconds(task.timeout_s + 600)),
        )
        _add_retry(submit, task.retry)

        def loader(suffix: str, payload: dict) -> tasks.LambdaInvoke:
            invoke = tasks.LambdaInvoke(
                self.scope,
                f"{state_name}{suffix}",
                lambda_function=self.batch.result_loader,
                payload_response_only=True,
                retry_on_service_exceptions=False,
                payload=sfn.TaskInput.from_object({"result_key": result_key, "step": task.name, **payload}),
            )
            _add_retry(invoke, task.retry)
            return invoke

        load = loader("Result", {})
        # A failed job (exit code, timeout) raises the step's own error through the loader, which reads
        # what the entrypoint left at the result key, instead of States.TaskFailed + the job description.
        failed = loader(
            "Failed",
            {
                "item_index": sfn.JsonPath.number_at("$.item_index"),
                "batch_error": sfn.JsonPath.object_at("$.batch_error"),
            },
        )
        submit.add_catch(failed, errors=["States.ALL"], result_path="$.batch_error")
        submit.next(load)
        return submit, load

    # -- nodes -------------------------------------------------------------------------------
    def _parallel(self, node: Parallel) -> sfn.Parallel:
        outputs = [f"$[{i}]" for i in range(len(node.branches))]
        merged = outputs[0]
        for out in outputs[1:]:
            merged = f"States.JsonMerge({merged}, {out}, false)"
        par = sfn.Parallel(
            self.scope, node.name, result_selector={"merged.$": merged}, output_path="$.merged"
        )
        for branch in node.branches:
            chain: sfn.IChainable | None = None
            for task in branch:
                state = self._task_state(task, state_name=task.name)
                chain = state if chain is None else chain.next(state)
            par.branch(chain)
        return par  # retries live on the branch tasks, so one branch's fault never re-runs the other

    def _map(self, node: Map, *, state_name: str, compute: str) -> sfn.Map:
        items_path = f"$.{node.items_key}"
        extra: dict = {"item.$": "$$.Map.Item.Value", "item_index.$": "$$.Map.Item.Index"}
        head, _, rest = node.items_key.partition(".")
        if compute == "batch" and rest:
            # A Batch job's event travels in its container environment (ECS caps overrides at 8 KB):
            # the whole item list is not repeated in each item's event, only a note of where it went.
            extra[head] = {"omitted": f"{node.items_key} (this event's item is in 'item')"}
        mapped = sfn.Map(
            self.scope,
            state_name,
            items_path=items_path,
            max_concurrency=node.max_concurrency,
            item_selector={"state.$": "$", "extra": extra},
            result_path=f"$.{node.result_key}",
        )
        merge_event = sfn.Pass(
            self.scope,
            f"{state_name}Event",
            parameters={"merged.$": "States.JsonMerge($.state, $.extra, false)"},
            output_path="$.merged",
        )
        task = node.iterator
        if compute == "batch":
            body = self._batch_task(task, state_name=f"{state_name}Job")[0]
        else:
            body = self._lambda_task(task, state_name=f"{state_name}Step", as_item_result=True)
        mapped.item_processor(merge_event.next(body))
        return mapped

    def _task_states(self, task: Task, *, state_name: str) -> list[sfn.TaskStateBase]:
        """The states of one task in order (one for Lambda; submit + result loader for Batch)."""
        if task.compute == "batch":
            return list(self._batch_task(task, state_name=state_name))
        return [self._lambda_task(task, state_name=state_name)]

    def _task_state(self, task: Task, *, state_name: str) -> sfn.IChainable:
        states = self._task_states(task, state_name=state_name)
        return states[0] if len(states) == 1 else sfn.Chain.custom(states[0], [states[-1]], states[-1])

    def build(self) -> sfn.IChainable:
        """The whole chain: nodes in order, then ``Succeed``."""
        chain: sfn.Chain | None = None
        open_ends: list[sfn.INextable] = []

        def append(entry: sfn.IChainable, ends: list[sfn.INextable]) -> None:
            nonlocal chain, open_ends
            if chain is None:
                chain = sfn.Chain.start(entry)
            else:
                for end in open_ends:
                    end.next(entry)
            open_ends = ends

        for node in self.pipeline.nodes:
            if isinstance(node, Task):
                states = self._task_states(node, state_name=node.name)
                for state in states:
                    self._catch_into_failure(state, node.name)
                append(states[0], [states[-1]])
            elif isinstance(node, Parallel):
                par = self._parallel(node)
                self._catch_into_failure(par, node.name)
                append(par, [par])
            elif isinstance(node, Map):
                if node.iterator.compute == "batch":
                    on_batch = self._map(node, state_name=node.name, compute="batch")
                    on_lambda = self._map(node, state_name=f"{node.name}OnLambda", compute="lambda")
                    self._catch_into_failure(on_batch, node.name)
                    self._catch_into_failure(on_lambda, node.name)
                    # More than N items (item N exists) → Batch; else the same step on Lambda.
                    choose = sfn.Choice(self.scope, f"{node.name}Where")
                    choose.when(
                        sfn.Condition.is_present(
                            f"{'$.' + node.items_key}[{self.lambda_render_max_segments}]"
                        ),
                        on_batch,
                    )
                    choose.otherwise(on_lambda)
                    append(choose, [on_batch, on_lambda])
                else:
                    mapped = self._map(node, state_name=node.name, compute="lambda")
                    self._catch_into_failure(mapped, node.name)
                    append(mapped, [mapped])
            else:  # pragma: no cover - definition types are closed
                raise TypeError(f"unknown pipeline node {node!r}")
        done = sfn.Succeed(self.scope, "Done")
        append(done, [])
        assert chain is not None
        return chain


def render_pipeline(scope: Construct, pipeline: Pipeline, **kwargs: object) -> sfn.IChainable:
    """Shortcut for ``PipelineRenderer(scope, pipeline, **kwargs).build()``."""
    return PipelineRenderer(scope, pipeline, **kwargs).build()  # type: ignore[arg-type]


FunctionFactory = Callable[[Task], lambda_.IFunction]
