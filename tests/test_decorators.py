"""Decoration-time errors, signatures kept, and step functions inside and outside workflows."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

import durable


def test_workflow_must_be_async() -> None:
    with pytest.raises(TypeError, match="async def"):

        @durable.workflow  # type: ignore[arg-type]
        def sync(ctx: durable.WorkflowContext) -> None: ...


def test_workflow_must_take_the_context() -> None:
    with pytest.raises(TypeError, match="WorkflowContext as its first parameter"):

        @durable.workflow  # type: ignore[arg-type]
        async def no_params() -> None: ...


def test_duplicate_workflow_name_is_refused() -> None:
    @durable.workflow(name="decorators.taken")
    async def one(ctx: durable.WorkflowContext) -> None: ...

    with pytest.raises(durable.DurableError, match=r"already registered.*name=\.\.\."):

        @durable.workflow(name="decorators.taken")
        async def two(ctx: durable.WorkflowContext) -> None: ...


def test_same_name_with_another_version_is_allowed() -> None:
    @durable.workflow(name="decorators.versioned")
    async def v1(ctx: durable.WorkflowContext) -> None: ...

    @durable.workflow(name="decorators.versioned", version="2")
    async def v2(ctx: durable.WorkflowContext) -> None: ...

    assert (v1.version, v2.version) == ("1", "2")


def test_decorators_keep_names_docs_and_signatures() -> None:
    async def original(ctx: durable.WorkflowContext, order: str, *, cents: int = 1) -> str:
        """Docstring survives."""
        return order

    wf = durable.workflow(name="decorators.kept")(original)
    assert wf.__doc__ == "Docstring survives."
    assert wf.__name__ == "original"
    assert (wf.name, wf.version) == ("decorators.kept", "1")

    async def charge(order: str, cents: int) -> str:
        """Charge."""
        return order

    wrapped = durable.step(retry=durable.RetryPolicy(max_attempts=3))(charge)
    assert inspect.signature(wrapped) == inspect.signature(charge)
    assert wrapped.__doc__ == "Charge." and asyncio.iscoroutinefunction(wrapped)


async def test_sync_step_function_in_a_workflow_asks_for_ctx_step(db: Path) -> None:
    @durable.step
    def add(a: int, b: int) -> int:
        return a + b

    @durable.workflow(name="decorators.sync_step")
    async def wf(ctx: durable.WorkflowContext) -> int:
        via_ctx = await ctx.step(add, 1, 2)
        try:
            add(1, 2)
        except durable.DurableError as exc:
            assert "ctx.step(add" in str(exc)
            return via_ctx
        return -1

    assert add(2, 3) == 5
    async with durable.Runtime(db) as rt:
        assert await (await rt.start(wf)).result() == 3


def test_step_options_are_validated() -> None:
    with pytest.raises(ValueError, match="timeout"):
        durable.step(timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        durable.RetryPolicy(max_attempts=0)


def test_a_first_parameter_that_is_not_the_context_is_refused() -> None:
    with pytest.raises(TypeError, match=r"first parameter is 'name'.*async def greet\(ctx"):

        @durable.workflow  # type: ignore[arg-type]
        async def greet(name: str) -> str:
            return f"hi {name}"


def test_the_context_is_known_by_its_name_or_its_annotation() -> None:
    @durable.workflow(name="decorators.by_name")
    async def by_name(ctx, who: str) -> str:  # type: ignore[no-untyped-def]
        return who

    @durable.workflow(name="decorators.by_annotation")
    async def by_annotation(context: durable.WorkflowContext, who: str) -> str:
        return who

    assert by_name.name == "decorators.by_name"
    assert by_annotation.name == "decorators.by_annotation"
