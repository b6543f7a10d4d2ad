"""``GET /metrics``: the runtime's counters and the journal's counts in Prometheus format.

Rendered with the Prometheus client library from one ``rt.metrics()`` snapshot
per scrape, so the counts in one answer agree with each other.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response

import durable


async def metrics_page(rt: durable.Runtime, request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await rt.metrics()))
    return Response(generate_latest(registry), media_type=_TEXT_FORMAT)


class _Snapshot:
    """A collector over one snapshot (the client library asks collectors at render time)."""

    def __init__(self, metrics: durable.Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        runs = GaugeMetricFamily(
            "durable_runs", "Runs in the journal, by workflow and status", labels=_RUN
        )
        for (workflow, status), n in sorted(m.runs.items()):
            runs.add_metric([workflow, status], n)
        yield runs
        for name, counts, text in (
            ("durable_steps_started", m.steps_started, "Step attempts begun"),
            ("durable_steps_completed", m.steps_completed, "Step attempts that returned"),
            ("durable_steps_failed", m.steps_failed, "Step attempts that raised"),
            ("durable_steps_retried", m.steps_retried, "Failed step attempts retried"),
        ):
            family = CounterMetricFamily(name, f"{text} in this runtime", labels=_STEP)
            for labels, n in sorted(counts.items()):
                family.add_metric(list(labels), n)
            yield family
        ended = CounterMetricFamily(
            "durable_runs_ended", "Runs that ended in this runtime, by status", labels=_RUN
        )
        for labels, n in sorted(m.runs_ended.items()):
            ended.add_metric(list(labels), n)
        yield ended
        spend = CounterMetricFamily(
            "durable_spend",
            "Spend charged by steps in this runtime (durable.charge), by workflow and unit"
            " (usd: dollars, tokens)",
            labels=["workflow", "unit"],
        )
        for labels, amount in sorted(m.spend.items()):
            spend.add_metric(list(labels), amount)
        yield spend
        yield CounterMetricFamily(
            "durable_lease_takeovers",
            "Runs this runtime took over from a runtime that died or whose lease lapsed",
            value=m.lease_takeovers,
        )
        depth = GaugeMetricFamily("durable_queue_depth", "Runs waiting in a queue", labels=_QUEUE)
        running = GaugeMetricFamily(
            "durable_queue_running", "Runs admitted by a queue and not ended", labels=_QUEUE
        )
        for queue, (queued, admitted) in sorted(m.queues.items()):
            depth.add_metric([queue], queued)
            running.add_metric([queue], admitted)
        yield depth
        yield running


# The text format every Prometheus server scrapes (the names here need no escaping).
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
_RUN = ["workflow", "status"]
_STEP = ["workflow", "step"]
_QUEUE = ["queue"]
