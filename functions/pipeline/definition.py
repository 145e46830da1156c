"""The one declarative description of a tonematch job (SPEC section 4).

Both deployments are generated from :data:`PIPELINE`:

* the local runner (:mod:`functions.pipeline.runner`) walks it in-process, running ``Parallel``
  branches on threads and ``Map`` items on a process pool;
* the CDK pipeline stack (``infra/``) renders it into a Step Functions state machine: ``Task`` on
  ``compute="lambda"`` becomes a Lambda invoke, on ``compute="batch"`` a ``batch:submitJob.sync``
  whose container gets the step's input as environment; ``Parallel`` and ``Map`` become their ASL
  states; ``retry`` becomes ``Retry``; every state gets a ``Catch`` to :data:`PIPELINE.on_error`.

Step handlers are plain functions ``handler(event: dict, ctx: StepContext) -> dict`` (see
:mod:`functions.pipeline.steps`). ``event`` is the job's small JSON state (ids, keys, numbers: never
audio, features or curves, which live in the object store; the whole state stays far below Step
Functions' 256 KB). A task's return value is stored in the state under ``result_key``; a Map collects
its items' results, in order, under its ``result_key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Compute = Literal["lambda", "batch"]

#: Error names retried with exponential back-off. ``TransientError`` is ours
#: (:class:`functions.pipeline.errors.TransientError`); the rest are AWS service faults.
TRANSIENT_ERRORS: tuple[str, ...] = (
    "TransientError",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Batch.AWSBatchException",
    "Batch.ServerException",
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off: waits of ``interval_s * backoff_rate**n`` for n = 0..max_attempts-1
    (2, 4, 8, 16, 32 s by default). As in ASL, ``max_attempts`` counts retries, not the first try."""

    errors: tuple[str, ...] = TRANSIENT_ERRORS
    interval_s: float = 2.0
    backoff_rate: float = 2.0
    max_attempts: int = 5

    def delays_s(self) -> list[float]:
        """The waits before each retry, in seconds."""
        return [self.interval_s * self.backoff_rate**n for n in range(self.max_attempts)]


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Task:
    """One step: ``handler`` is ``"module:function"``; ``status`` is the job status while it runs;
    progress moves from ``progress_start`` to ``progress_end`` (percent) as it (or its Map) advances."""

    name: str
    handler: str
    result_key: str | None
    status: str
    progress_start: int
    progress_end: int
    compute: Compute = "lambda"
    retry: RetryPolicy = DEFAULT_RETRY
    timeout_s: int = 900
    memory_mb: int = 3008


@dataclass(frozen=True)
class Parallel:
    """Branches that run at the same time; each branch is a list of tasks. Results are merged into
    the state by each task's own ``result_key``."""

    name: str
    branches: tuple[tuple[Task, ...], ...]


@dataclass(frozen=True)
class Map:
    """Runs ``iterator`` once per element of the list at state key ``items_key`` (a list of small
    dicts). Each item's event is the parent state plus ``{"item": element, "item_index": i}``.
    Results are collected in order under ``result_key``."""

    name: str
    items_key: str
    iterator: Task
    result_key: str
    max_concurrency: int = 40


Node = Task | Parallel | Map


@dataclass(frozen=True)
class Pipeline:
    name: str
    nodes: tuple[Node, ...]
    #: run when any node fails after its retries: marks the job FAILED with ``error`` and
    #: ``last_step`` and sends a dead-letter record. Its event is the state plus
    #: ``{"error": {"Error": name, "Cause": message}, "failed_step": node name}``.
    on_error: Task
    statuses: tuple[str, ...] = field(
        default=("PENDING", "ANALYZING", "INVERTING", "RENDERING", "COMPLETED", "FAILED")
    )

    def tasks(self) -> list[Task]:
        """Every task, in execution order (branches and Map iterators included), then on_error."""
        out: list[Task] = []
        for node in self.nodes:
            if isinstance(node, Task):
                out.append(node)
            elif isinstance(node, Parallel):
                out.extend(t for branch in node.branches for t in branch)
            else:
                out.append(node.iterator)
        out.append(self.on_error)
        return out

    def task(self, name: str) -> Task:
        for t in self.tasks():
            if t.name == name:
                return t
        raise KeyError(name)


_STEPS = "functions.pipeline.steps"

PIPELINE = Pipeline(
    name="tonematch-job",
    nodes=(
        Parallel(
            name="Analyze",
            branches=(
                (Task("AnalyzeReference", f"{_STEPS}:analyze_reference", "reference",
                      "ANALYZING", 0, 15),),
                (Task("AnalyzeTarget", f"{_STEPS}:analyze_target", "target", "ANALYZING", 0, 15),),
            ),
        ),
        Task("Invert", f"{_STEPS}:invert", "params", "INVERTING", 15, 20),
        Task("PlanSegments", f"{_STEPS}:plan_segments", "plan", "RENDERING", 20, 25),
        Map(
            name="RenderSegments",
            items_key="plan.segments",
            iterator=Task("RenderSegment", f"{_STEPS}:render_segment", None, "RENDERING", 25, 90,
                          compute="batch", timeout_s=3600),
            result_key="segments",
        ),
        Task("Merge", f"{_STEPS}:merge", "merged", "RENDERING", 90, 97),
        Task("Finalize", f"{_STEPS}:finalize", "result", "COMPLETED", 97, 100),
    ),
    on_error=Task("MarkFailed", f"{_STEPS}:mark_failed", None, "FAILED", 0, 0,
                  retry=RetryPolicy(max_attempts=3)),
)
