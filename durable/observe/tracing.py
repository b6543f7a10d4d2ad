"""OpenTelemetry spans for runs and step attempts (the extra ``durable[otel]``).

Only the OpenTelemetry API is used; the SDK, its exporters and its sampling are
the application's choice. With no SDK configured every span is a no-op, and
attributes are only worked out for spans that record. A run's trace context is
kept in its row as W3C trace context headers, so every process that executes
the run, after a crash too, continues the trace it was started in.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from durable.workflow.logs import error_summary
from durable.workflow.step_info import idempotency_key

if TYPE_CHECKING:
    from durable.journal.records import RunRecord
    from durable.workflow.step_info import StepScope

_PROPAGATOR = TraceContextTextMapPropagator()

RUN_ID = "durable.run_id"
WORKFLOW = "durable.workflow"


class Tracing:
    """Makes the spans: one when a run is started, one per execution of a run in a
    process, one per step attempt."""

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        self._tracer = None if provider is None else provider.get_tracer("durable", _version())
        self._looked_at = -math.inf

    def tracer(self) -> trace.Tracer | None:
        """The tracer; None while the application has set no SDK (the global provider is
        still the API's proxy, or the no-op one) and no provider was given: then no span
        could record, and none is made. Looked up at most once a second (the lookup
        reads the environment, which would cost a step 1 us)."""
        if self._tracer is None:
            now = time.monotonic()
            if now - self._looked_at < 1.0:
                return None
            self._looked_at = now
            provider = trace.get_tracer_provider()
            if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
                return None
            self._tracer = provider.get_tracer("durable", _version())
        return self._tracer

    def start_trace(self, workflow: str, run_id: str) -> str | None:
        """A span for starting the run, under the current one; its context as JSON for
        the run's row (None when nothing records: no SDK, or not sampled)."""
        tracer = self._tracer or self.tracer()
        if tracer is None:
            return None
        span = tracer.start_span(
            f"durable.start {workflow}",
            kind=SpanKind.PRODUCER,
            attributes={RUN_ID: run_id, WORKFLOW: workflow},
        )
        span.end()
        if not span.get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return orjson.dumps(carrier).decode()

    def run_span(self, record: RunRecord) -> tuple[Span, object] | None:
        """The span of one execution of the run, child of the context the run was started
        in, and made current for the workflow's task (returns it and the token)."""
        tracer = self._tracer or self.tracer()
        if tracer is None:
            return None
        parent = None
        if record.trace is not None:
            try:
                parent = _PROPAGATOR.extract(orjson.loads(record.trace))
            except (orjson.JSONDecodeError, AttributeError):
                parent = None  # written by hand: start a trace of its own
        span = tracer.start_span(
            f"durable.run {record.workflow}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={RUN_ID: record.run_id, WORKFLOW: record.workflow},
        )
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def run_ended(span: Span, token: object, status: str | None, error: str | None) -> None:
        """``status`` is how the run ended, or None when this execution stopped and the
        run goes on later (unloaded, shut down, taken over)."""
        otel_context.detach(token)  # type: ignore[arg-type]
        if span.is_recording():
            span.set_attribute("durable.status", status or "stopped")
            if status == "failed":
                span.set_status(Status(StatusCode.ERROR, error_summary(error)))
        span.end()

    def step_span(self, scope: StepScope) -> tuple[Span, object] | None:
        """The span of one step attempt, current while its body runs; None when it does
        not record (the body then runs under the run's span)."""
        tracer = self._tracer or self.tracer()
        if tracer is None:
            return None
        span = tracer.start_span(f"durable.step {scope.step}")
        if not span.is_recording():
            span.end()
            return None
        span.set_attributes(
            {
                RUN_ID: scope.run_id,
                WORKFLOW: scope.workflow,
                "durable.step": scope.step,
                "durable.position": scope.position,
                "durable.attempt": scope.attempt,
                "durable.idempotency_key": idempotency_key(
                    scope.run_id, scope.position, scope.step
                ),
            }
        )
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def step_ended(made: tuple[Span, object], error: BaseException | None, retried: bool) -> None:
        span, token = made
        otel_context.detach(token)  # type: ignore[arg-type]
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_attribute("durable.retried", retried)
        span.end()


def charged(usd: float, tokens: int) -> None:
    """Add spend to the current span (a step attempt's): cumulative ``durable.usd`` and
    ``durable.tokens`` attributes, and one ``durable.charge`` event per charge."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    so_far = getattr(span, "attributes", None) or {}
    span.set_attributes(
        {
            "durable.usd": float(so_far.get("durable.usd", 0.0)) + usd,
            "durable.tokens": int(so_far.get("durable.tokens", 0)) + tokens,
        }
    )
    span.add_event("durable.charge", {"durable.usd": usd, "durable.tokens": tokens})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("durable-workflows")
    except PackageNotFoundError:
        return "0"
