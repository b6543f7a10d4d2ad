"""What runs and steps tell the world outside: counters, spans and the runtime's log lines.

One part hears of every run execution and step attempt and feeds the three: the
counters behind ``/metrics``, OpenTelemetry spans (when ``opentelemetry-api``
is installed) and one log line per run started, resumed and ended.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from durable.observe.metrics import Counters, Metrics
from durable.workflow.logs import about, error_summary, log

if TYPE_CHECKING:
    from durable.journal.records import RunRecord
    from durable.journal.run_journal import RunJournal
    from durable.observe.tracing import Tracing
    from durable.workflow.queues import QueueStatus
    from durable.workflow.step_info import StepScope


class ObservedRun(Protocol):
    """What telemetry reads of an execution of a run (a live run)."""

    run_id: str
    workflow_name: str
    record: RunRecord
    journal: RunJournal
    unhandled: BaseException | None
    final: RunRecord | None
    """The run's row as its end left it; None while it goes on."""


class CountsRuns(Protocol):
    """Where the number of runs by workflow and status comes from (the store)."""

    async def run_counts(self) -> dict[tuple[str, str], int]: ...


try:
    from durable.observe.tracing import Tracing as _Tracing
    from durable.observe.tracing import charged as _span_charged
except ImportError:  # the extra durable[otel] is not installed: no spans, no cost
    _Tracing = None  # type: ignore[assignment,misc]


class Telemetry:
    """Counts, traces and logs runs and steps for one runtime."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self.counters = Counters()
        self.tracing: Tracing | None = None if _Tracing is None else _Tracing(tracer_provider)

    # -- runs ----------------------------------------------------------------

    def trace_for_start(self, workflow: str, run_id: str) -> str | None:
        """The trace context to keep in a new run's row (see ``Tracing.start_trace``)."""
        return None if self.tracing is None else self.tracing.start_trace(workflow, run_id)

    def run_began(self, live: ObservedRun) -> tuple[Any, object] | None:
        """An execution of the run begins in this process: the line, and its span."""
        replaying = bool(live.journal.replay_end)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "run %s (%s) %s",
                live.run_id,
                live.workflow_name,
                "resumed" if replaying else "started",
                extra=about(live.run_id, live.workflow_name),
            )
        return None if self.tracing is None else self.tracing.run_span(live.record)

    def run_stopped(self, live: ObservedRun, span: tuple[Any, object] | None) -> None:
        """The execution stopped: the run ended (``live.final``), or goes on later."""
        final = live.final
        status = None if final is None else final.status
        if final is not None:
            ended, key = self.counters.runs_ended, (live.workflow_name, final.status)
            ended[key] = ended.get(key, 0) + 1
            _log_end(live, final.status, final.error, final.updated_at - live.record.created_at)
            live.unhandled = None  # its traceback holds the workflow's frames
        if span is not None:
            assert self.tracing is not None
            self.tracing.run_ended(span[0], span[1], status, None if final is None else final.error)

    def took_over(self, runs: int) -> None:
        self.counters.lease_takeovers += runs

    # -- step attempts ---------------------------------------------------------

    def step_began(self, scope: StepScope) -> tuple[Any, object] | None:
        started, key = self.counters.steps_started, (scope.workflow, scope.step)
        started[key] = started.get(key, 0) + 1
        return None if self.tracing is None else self.tracing.step_span(scope)

    def step_ended(
        self,
        scope: StepScope,
        span: tuple[Any, object] | None,
        error: BaseException | None = None,
        retried: bool = False,
    ) -> None:
        """The attempt returned, or raised ``error`` (and is ``retried``, or not)."""
        key = scope.workflow, scope.step
        counters = self.counters
        if error is None:
            counters.steps_completed[key] = counters.steps_completed.get(key, 0) + 1
        elif isinstance(error, Exception):
            counters.steps_failed[key] = counters.steps_failed.get(key, 0) + 1
            if retried:
                counters.steps_retried[key] = counters.steps_retried.get(key, 0) + 1
        if span is not None:
            assert self.tracing is not None
            self.tracing.step_ended(span, error, retried)

    def charged(self, workflow: str, record: dict[str, Any]) -> None:
        """A step recorded spend (``durable.charge``): counted by workflow and unit, and
        added to the current step span."""
        spend = self.counters.spend
        for unit in ("usd", "tokens"):
            if record.get(unit):
                spend[(workflow, unit)] = spend.get((workflow, unit), 0) + record[unit]
        if self.tracing is not None:
            _span_charged(float(record.get("usd") or 0.0), int(record.get("tokens") or 0))

    # -- metrics ---------------------------------------------------------------

    async def metrics(self, store: CountsRuns, queues: list[QueueStatus]) -> Metrics:
        counters = self.counters
        return Metrics(
            steps_started=dict(counters.steps_started),
            steps_completed=dict(counters.steps_completed),
            steps_failed=dict(counters.steps_failed),
            steps_retried=dict(counters.steps_retried),
            runs_ended=dict(counters.runs_ended),
            lease_takeovers=counters.lease_takeovers,
            spend=dict(counters.spend),
            runs=await store.run_counts(),
            queues={queue.name: (queue.queued, queue.running) for queue in queues},
        )


def _log_end(live: ObservedRun, status: str, error: str | None, seconds: float) -> None:
    """One line per run's end: a failure as a warning, with the traceback of an exception
    the workflow did not handle."""
    extra = about(live.run_id, live.workflow_name)
    name = live.workflow_name
    if status == "failed":
        log.warning(
            "run %s (%s) failed after %.3f s: %s",
            live.run_id,
            name,
            seconds,
            error_summary(error),
            exc_info=live.unhandled,
            extra=extra,
        )
    elif log.isEnabledFor(logging.INFO):
        log.info("run %s (%s) %s after %.3f s", live.run_id, name, status, seconds, extra=extra)
