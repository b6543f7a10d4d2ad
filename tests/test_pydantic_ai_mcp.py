"""An MCP server's tools through ``Durability``: a real MCP server, in this process.

The MCP SDK's own server (``MCPServer``) reached by pydantic-ai's ``MCPToolset`` over its
in-memory transport, so the test needs no network and no child process. pydantic-ai's
guide asks an engine whose steps run in the workflow's process to hold one session per
agent run, opened inside the first step that needs it; the listing and each call are steps
that a replay does not make again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import durable
from durable.integrations.pydantic_ai import Durability

from .agent_contract import CALLS, completed_steps, run_twice, tool_returns

SESSIONS: list[bool] = []
"""One item per MCP session the server opened: whether it was opened inside a step."""


@asynccontextmanager
async def _session(server: MCPServer) -> AsyncIterator[dict[str, Any]]:
    SESSIONS.append(durable.in_step())
    yield {}


calculator = MCPServer("calculator", lifespan=_session)


@calculator.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    CALLS.append(f"add:{a}+{b}")
    return a + b


def _sums(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Two additions at once, then the answer made of their results."""
    CALLS.append("model")
    returned = tool_returns(messages)
    if not returned:
        return ModelResponse(
            parts=[
                ToolCallPart("add", {"a": 1, "b": 2}, tool_call_id="a-1"),
                ToolCallPart("add", {"a": 3, "b": 4}, tool_call_id="a-2"),
            ]
        )
    return ModelResponse(parts=[TextPart(f"{returned['a-1']} and {returned['a-2']}")])


adder = Agent(
    FunctionModel(_sums),
    name="adder",
    toolsets=[MCPToolset(calculator, id="calc")],
    capabilities=[Durability(stream=False)],
)


@durable.workflow(name="mcp_contract.adder")
async def add_up(ctx: durable.WorkflowContext) -> str:
    answer = (await adder.run("add up")).output
    await ctx.wait_for_user(json.dumps(answer))  # the replay point
    return answer


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()
    SESSIONS.clear()


async def test_an_mcp_servers_listing_and_calls_are_steps_of_one_session(db: Path | str) -> None:
    assert await run_twice(db, add_up) == "3 and 7"
    assert sorted(CALLS) == ["add:1+2", "add:3+4", "model", "model"]
    assert SESSIONS == [True], "one session for the run, opened inside its first step"
    async with durable.Runtime(db) as rt:
        names = completed_steps(await rt.history("twice"))
    assert names == [
        "adder__mcp_server__calc.get_tools",
        "adder__model.request",
        "adder__mcp_server__calc.call_tool",
        "adder__mcp_server__calc.call_tool",
        "adder__model.request",
    ]


async def test_outside_a_workflow_the_mcp_server_is_plain_pydantic_ai() -> None:
    assert (await adder.run("add up")).output == "3 and 7"
    assert SESSIONS == [False]
