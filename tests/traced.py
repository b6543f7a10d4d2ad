"""Workflows for the tracing tests, and an OpenTelemetry SDK that writes spans to a file.

``durable worker tests.traced`` with DURABLE_TEST_SPANS=<file> exports every span
it ends as a JSON line there. BLOCK=fetch makes the step ``fetch`` block forever
after writing "start fetch <attempt>" to DURABLE_TEST_EFFECTS, for a SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import durable


class FileExporter(SpanExporter):
    """Each span as one JSON line: what the tests compare across processes."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "ab") as out:
            for span in spans:
                out.write(orjson.dumps(span_dict(span)) + b"\n")
        return SpanExportResult.SUCCESS


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


if os.environ.get("DURABLE_TEST_SPANS"):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["DURABLE_TEST_SPANS"])))
    trace.set_tracer_provider(provider)


def effect(line: str) -> None:
    with open(os.environ["DURABLE_TEST_EFFECTS"], "a") as out:
        out.write(line + "\n")


@durable.step
async def fetch(n: int) -> int:
    effect(f"start fetch {durable.step_info().attempt}")
    if os.environ.get("BLOCK") == "fetch":
        await asyncio.Event().wait()
    return n * 2


@durable.step
async def double(n: int) -> int:
    return n * 2


@durable.workflow
async def helper(ctx: durable.WorkflowContext, n: int) -> int:
    return await double(n)


@durable.workflow
async def traced_flow(ctx: durable.WorkflowContext, n: int) -> int:
    fetched = await fetch(n)
    return await helper(fetched)
