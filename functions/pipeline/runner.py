"""The local runner: walks :data:`PIPELINE` in-process, the embedded twin of the Step Functions machine.

* ``Parallel`` branches and ``Map`` items are dispatched from threads; the work itself runs on a
  process pool (default one process per core), so analyses and segment renders use every core and
  the API server in the same process keeps its GIL to itself. ``use_processes=False`` runs every step
  on the dispatching thread instead (tests that patch the engine in-process).
* Each task is retried per its :class:`RetryPolicy` when the error's class name is in
  ``retry.errors`` (waits of 2, 4, 8, 16, 32 s by default; ``sleep`` is injectable so tests don't
  wait); any other error, or the last failed retry, runs ``PIPELINE.on_error`` (FAILED + dead letter).
* After every task the job's state (the small JSON of results) is saved in ``jobs.state``; a job left
  queued or running by a crash or a restart is picked up again by :meth:`LocalRunner.start` and
  continues from its last finished task (render steps also skip segments already rendered).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from engine.threads import single_blas_thread
from functions.pipeline.context import StepContext, context_from_settings
from functions.pipeline.definition import DEFAULT_RETRY, PIPELINE, Map, Parallel, Pipeline, Task
from functions.pipeline.errors import TransientError
from functions.settings import Settings

log = logging.getLogger("tonematch.runner")


class StepError(Exception):
    """A task that failed for good: ``step`` (task name), ``error`` (class name), ``message``."""

    def __init__(self, step: str, error: str, message: str) -> None:
        super().__init__(f"{step}: {error}: {message}")
        self.step, self.error, self.message = step, error, message


class _AbandonedError(Exception):
    """The runner was told to drop its work (simulated crash / shutdown)."""


def resolve_handler(path: str) -> Callable[[dict, StepContext], dict]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _get_path(state: dict, dotted: str) -> Any:
    cur: Any = state
    for part in dotted.split("."):
        cur = cur[part]
    return cur


# ---- process-pool side ------------------------------------------------------------------------
_WORKER_CTX: StepContext | None = None


def _exit_with_parent(parent_pid: int, interval_s: float = 0.5) -> None:
    """End this render process once its server has gone without ending it (SIGKILL, the OOM
    killer): the pool's pipes do not tell an idle process, and a busy one would go on writing to a
    job the next start resumes. A thread watches for the process being handed to another parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="tonematch-parent-watch", daemon=True).start()


def _worker_init(settings: Settings, parent_pid: int | None = None) -> None:
    global _WORKER_CTX
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    if settings.render_nice:  # renders are batch work: the API server in the parent wins contention
        with contextlib.suppress(OSError, AttributeError):
            os.nice(int(settings.render_nice))
    _WORKER_CTX = context_from_settings(settings, migrate=False)
    for module in (
        "functions.pipeline.steps",
        "engine.features",
        "engine.render",
        "engine.segments",
        "engine.invert",
        "engine.metrics",
        "engine.viz",
        "engine.preset",
    ):
        with contextlib.suppress(ImportError):  # heavy imports once per process, before the first job
            importlib.import_module(module)


def _worker_ping(hold_s: float = 0.0) -> int:
    """The worker's pid, after ``hold_s`` seconds (so one worker cannot answer every ping at start)."""
    if hold_s:
        time.sleep(hold_s)
    return os.getpid()


def _worker_call(handler: str, event: dict) -> dict:
    """Runs in a pool process; errors come back as data (engine exceptions need not pickle)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        out = resolve_handler(handler)(event, _WORKER_CTX)
        return {"ok": out, "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc), "trace": traceback.format_exc(limit=6)}


# ---- runner -----------------------------------------------------------------------------------
class LocalRunner:
    """Runs jobs of ``pipeline`` with ``ctx``. ``submit(job_id)`` queues a job; ``start()`` launches
    ``job_threads`` job threads and resumes unfinished jobs; ``run_job(job_id)`` runs one job now."""

    def __init__(
        self,
        ctx: StepContext,
        *,
        pipeline: Pipeline = PIPELINE,
        workers: int | None = None,
        job_threads: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        use_processes: bool = True,
    ) -> None:
        self.ctx = ctx
        self.pipeline = pipeline
        self.workers = workers or ctx.settings.render_workers()
        self.job_threads = job_threads or ctx.settings.job_threads
        self.sleep = sleep
        self.use_processes = use_processes
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._inflight: set[str] = set()
        self._again: set[str] = set()  # submitted again while running: run once more after
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pool: ProcessPoolExecutor | None = None
        self._abandon = threading.Event()
        self.retries: list[tuple[str, str, float]] = []  # (step, error, wait_s), for tests/ops
        self.timings: list[tuple[str, float, float]] = []  # (step, wall_s, cpu_s) of pool tasks
        self._job_timings: dict[str, list[tuple[str, float, float]]] = {}

    # lifecycle
    def start(self, *, resume: bool = True, warm_timeout_s: float = 60.0) -> list[str]:
        """Start the job threads; with ``resume``, queue every job left queued/running. Returns the
        resumed job ids. With processes, first waits (at most ``warm_timeout_s``) until every render
        process is up with its imports done, so the server's start pays that, not its first job."""
        self._abandon.clear()
        if self.use_processes:
            self.warm_up(warm_timeout_s)
        for i in range(self.job_threads):
            t = threading.Thread(target=self._loop, name=f"tonematch-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        resumed = []
        if resume:
            for job in self.ctx.status.active_jobs():
                self.submit(job["id"])
                resumed.append(job["id"])
        return resumed

    def warm_up(self, timeout_s: float = 60.0) -> int:
        """Start the render processes and wait until each has answered (initializer and heavy
        imports done), at most ``timeout_s`` s; returns how many answered. Each ping holds its
        process briefly, so the pings spread over the processes instead of the first one up
        answering them all."""
        pool = self._get_pool()
        seen: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(seen) < self.workers and time.monotonic() < deadline:
            futures = [pool.submit(_worker_ping, 0.05) for _ in range(self.workers)]
            for f in futures:
                try:
                    seen.add(f.result(timeout=max(0.1, deadline - time.monotonic())))
                except Exception:  # a slow or broken start: jobs will retry on a fresh pool
                    log.warning("runner: render process warm-up incomplete", exc_info=True)
                    return len(seen)
        return len(seen)

    def stop(self, *, abandon: bool = False, timeout_s: float | None = None) -> None:
        """Stop the job threads: finish the running jobs, or with ``abandon`` drop them where they
        are (as a crash would: they stay RUNNING and the next start resumes them) and end the render
        processes, busy or not, so none outlives the server."""
        if abandon:
            self._abandon.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout_s)
        self._threads = []
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        if not abandon:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        # shutdown(wait=False) leaves busy render processes rendering after the server has gone
        # (and idle ones waiting on a manager thread that exits with the server): end them here
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.join(timeout_s if timeout_s is not None else 5.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        # with its processes gone the executor's manager thread ends at once: wait for it, so the
        # executor is done with its queues before the process exits
        pool.shutdown(wait=True)

    def submit(self, job: str | dict) -> None:
        """Queue a job (id, or an event dict with ``job_id``); a job already queued is not queued
        twice. A job submitted while its run is ending (retried the moment it failed) is run once
        more after that run, which picks it up if it is queued again. Usable as
        ``StepContext.launch``."""
        job_id = job["job_id"] if isinstance(job, dict) else str(job)
        with self._lock:
            if job_id in self._inflight:
                self._again.add(job_id)
                return
            self._inflight.add(job_id)
        self._queue.put(job_id)

    def idle(self) -> bool:
        with self._lock:
            return not self._inflight

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self.run_job(job_id)
            except _AbandonedError:
                pass
            except Exception:
                log.exception("runner: job %s crashed", job_id)
            finally:
                with self._lock:
                    if job_id in self._again and not self._abandon.is_set():
                        self._again.discard(job_id)
                        self._queue.put(job_id)  # still in flight: submit() keeps ignoring it
                    else:
                        self._again.discard(job_id)
                        self._inflight.discard(job_id)

    # running one job
    def initial_state(self, job: dict) -> dict:
        """The job's pipeline event (the same one the AWS launcher sends), plus what earlier steps
        saved in ``job["state"]`` so a resumed job skips finished work."""
        from functions.service import job_event

        state = job_event(job)
        state.update(job.get("state") or {})
        return state

    def run_job(self, job_id: str) -> str:
        """Run (or continue) a job to COMPLETED or FAILED; returns the final status."""
        status = self.ctx.status
        job = self._retrying(f"reading job {job_id}", lambda: status.get_job(job_id))
        if job is None or job["status"] in ("COMPLETED", "FAILED"):
            return job["status"] if job else "UNKNOWN"
        state = self.initial_state(job)
        wall0 = time.perf_counter()
        self._job_timings[job_id] = []
        try:
            for node in self.pipeline.nodes:
                self._check_abandon()
                try:
                    self._run_node(node, state)
                except (StepError, _AbandonedError):
                    raise
                except Exception as exc:  # the runner's own work around a step: fail, never strand
                    log.exception("runner: job %s: %s", job_id, node.name)
                    raise StepError(node.name, type(exc).__name__, str(exc)) from exc
        except StepError as err:
            self._check_abandon()
            event = {**state, "error": {"Error": err.error, "Cause": err.message}, "failed_step": err.step}
            try:
                self._call(self.pipeline.on_error, event)
            except StepError:
                log.exception("runner: on_error failed for job %s", job_id)
                status.update_job(
                    job_id, status="FAILED", error=f"{err.error}: {err.message}", last_step=err.step
                )
        final = self._retrying(f"reading job {job_id}", lambda: status.get_job(job_id))
        steps = self._job_timings.pop(job_id, [])
        log.info(
            "runner: job %s %s in %.2f s; steps (wall s / cpu s): %s",
            job_id,
            final["status"] if final else "UNKNOWN",
            time.perf_counter() - wall0,
            ", ".join(f"{name} {w:.2f}/{c:.2f}" for name, w, c in steps),
        )
        return final["status"] if final else "UNKNOWN"

    def _check_abandon(self) -> None:
        if self._abandon.is_set():
            raise _AbandonedError()

    def _save(self, state: dict, key: str | None, value: Any) -> None:
        if key is None:
            return
        state[key] = value
        job_id = state["job_id"]
        self._retrying(f"saving {key}", lambda: self.ctx.status.merge_job_state(job_id, {key: value}))

    def _retrying(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, retried on a TransientError (a dropped database connection) as a step would
        be: a job whose run could not even read its row would otherwise stay queued, run by nobody."""
        delays = DEFAULT_RETRY.delays_s()
        for attempt in range(len(delays) + 1):
            try:
                return call()
            except TransientError as exc:
                if attempt == len(delays):
                    raise
                log.warning("runner: %s: %s, retry in %.0f s", what, exc, delays[attempt])
                self._check_abandon()
                self.sleep(delays[attempt])
        return None

    def _run_node(self, node: Task | Parallel | Map, state: dict) -> None:
        if isinstance(node, Task):
            if node.result_key and node.result_key in state:
                return  # finished before a restart
            self._save(state, node.result_key, self._call(node, state))
        elif isinstance(node, Parallel):
            self._run_parallel(node, state)
        else:
            self._run_map(node, state)

    def _run_parallel(self, node: Parallel, state: dict) -> None:
        snapshot = dict(state)

        def branch(tasks: tuple[Task, ...]) -> dict:
            local = dict(snapshot)
            out = {}
            for t in tasks:
                if t.result_key and t.result_key in local:
                    continue
                local[t.result_key or t.name] = out[t.result_key or t.name] = self._call(t, local)
            return out

        with ThreadPoolExecutor(max_workers=len(node.branches), thread_name_prefix=node.name) as ex:
            futures = [ex.submit(branch, b) for b in node.branches]
            errors = []
            for f in futures:
                try:
                    for k, v in f.result().items():
                        self._save(state, k, v)
                except StepError as err:
                    errors.append(err)
        if errors:
            raise errors[0]

    def _run_map(self, node: Map, state: dict) -> None:
        if node.result_key in state:
            return
        items = _get_path(state, node.items_key)
        n = max(1, min(node.max_concurrency, self.workers))
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix=node.name) as ex:
            futures = [
                ex.submit(self._call, node.iterator, {**state, "item": item, "item_index": i})
                for i, item in enumerate(items)
            ]
            results, errors = [], []
            for f in futures:
                try:
                    results.append(f.result())
                except StepError as err:
                    errors.append(err)
        if errors:
            raise errors[0]
        self._save(state, node.result_key, results)

    # one task with its retries
    def _call(self, task: Task, event: dict) -> dict:
        delays = task.retry.delays_s()
        attempt = 0
        while True:
            self._check_abandon()
            name, message = self._invoke(task, event)
            if name is None:
                return message  # type: ignore[return-value]
            if name in task.retry.errors and attempt < len(delays):
                wait_s = delays[attempt]
                attempt += 1
                self.retries.append((task.name, name, wait_s))
                log.warning(
                    "runner: %s %s (%s), retry %d in %.0f s", task.name, name, message, attempt, wait_s
                )
                self.sleep(wait_s)
                continue
            raise StepError(task.name, name, str(message))

    def _invoke(self, task: Task, event: dict) -> tuple[str | None, Any]:
        """Run the handler; returns ``(None, result)`` or ``(error_name, message)``."""
        if self.use_processes and task is not self.pipeline.on_error:
            try:
                out = self._get_pool().submit(_worker_call, task.handler, event).result()
            except BrokenProcessPool as exc:
                self._reset_pool()
                return "TransientError", f"render process died: {exc}"
            if "ok" in out:
                timing = (task.name, round(out["wall_s"], 3), round(out["cpu_s"], 3))
                self.timings.append(timing)
                self._job_timings.get(str(event.get("job_id")), []).append(timing)
                return None, out["ok"]
            log.info("runner: %s failed in worker: %s", task.name, out.get("trace"))
            return out["error"], out["message"]
        try:
            return None, resolve_handler(task.handler)(event, self.ctx)
        except _AbandonedError:
            raise
        except Exception as exc:
            log.info("runner: %s failed", task.name, exc_info=True)
            return type(exc).__name__, str(exc)

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                single_blas_thread()  # the spawned render processes inherit it
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(self.ctx.settings, os.getpid()),
                )
            return self._pool

    def _reset_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
