"""Shared by the pydantic-ai contract tests: what ran for real, and a replay on a new runtime."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, RetryPromptPart, ToolReturnPart

import durable

CALLS: list[str] = []
"""What ran for real in this process (a model request, a tool); a replay adds nothing."""


def tool_returns(messages: list[ModelMessage]) -> dict[str, str]:
    """What each tool call returned (or was told to retry), by call id."""
    return {
        part.tool_call_id: (
            part.model_response_str() if isinstance(part, ToolReturnPart) else part.model_response()
        )
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart | RetryPromptPart)
    }


async def run_twice(db: Path | str, workflow: durable.Workflow[..., Any], *args: Any) -> Any:
    """Run until the closing question, close the runtime, and let a new one on the same
    journal replay the run and finish it; check it replays what the first process saw,
    running nothing again, and return the output."""
    async with durable.Runtime(db) as rt:
        await rt.start(workflow, *args, run_id="twice")
        wait = await rt.wait_for_question("twice", timeout=30)
    ran = list(CALLS)
    async with durable.Runtime(db) as rt:
        await rt.respond("twice", "go")
        output = await rt.handle("twice").result(timeout=30)
        history = await rt.history("twice")
    assert ran == CALLS, "the replay ran a completed model request or tool again"
    assert json.loads(wait.question) == output, "the replay saw another agent run"
    assert all(e["payload"]["attempt"] == 1 for e in history if e["kind"] == "step.started")
    return output


def completed_steps(history: list[dict[str, Any]]) -> list[str]:
    """The names of the steps that completed, in the order they did."""
    return [event["name"] for event in history if event["kind"] == "step.completed"]


async def wait_for_kind(rt: durable.Runtime, run_id: str, kind: str, seconds: float = 30) -> None:
    """Until the run's journal has an event of ``kind`` (at most ``seconds``)."""
    async with asyncio.timeout(seconds):
        while kind not in [e["kind"] for e in await rt.history(run_id)]:
            await asyncio.sleep(0.01)
