"""Options are checked where they are given: a wrong one fails at once with the rule,
never later in a run (issue 31)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import durable

calls = {"n": 0}


AS_A_LIST: Any = [KeyError]


@durable.step(
    retry=durable.RetryPolicy(max_attempts=5, initial_interval=0, non_retryable=AS_A_LIST)
)
async def lookup(key: str) -> str:
    calls["n"] += 1
    raise KeyError(key)


@durable.workflow(name="options.lookup")
async def find(ctx: durable.WorkflowContext, key: str) -> str:
    return await lookup(key)


async def test_non_retryable_given_as_a_list_fails_the_step_at_once(db: Path | str) -> None:
    assert durable.RetryPolicy(non_retryable=AS_A_LIST).non_retryable == (KeyError,)
    calls["n"] = 0
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed, match="failed after 1 attempt: KeyError"):
            await (await rt.start(find, "k")).result(timeout=10)
    assert calls["n"] == 1


def test_a_long_backoff_is_capped_at_max_interval_without_overflow() -> None:
    policy = durable.RetryPolicy(max_attempts=5000, backoff_coefficient=10, max_interval=30)
    assert policy.delay_after(4999) == 30
    assert durable.RetryPolicy(non_retryable=KeyError).non_retryable == (KeyError,)  # type: ignore[arg-type]


def _workflow(**options: Any) -> None:
    async def fn(ctx: durable.WorkflowContext) -> None: ...

    durable.workflow(name="options.never", **options)(fn)


BAD: list[Callable[[], object]] = [
    lambda: durable.RetryPolicy(max_attempts="3"),  # type: ignore[arg-type]
    lambda: durable.RetryPolicy(max_attempts=2.5),  # type: ignore[arg-type]
    lambda: durable.RetryPolicy(max_attempts=True),
    lambda: durable.RetryPolicy(backoff_coefficient="2"),  # type: ignore[arg-type]
    lambda: durable.RetryPolicy(backoff_coefficient=0.5),
    lambda: durable.RetryPolicy(initial_interval=-1),
    lambda: durable.RetryPolicy(non_retryable=["KeyError"]),  # type: ignore[arg-type]
    lambda: durable.RetryPolicy(non_retryable=(int,)),  # type: ignore[arg-type]
    lambda: durable.RetryPolicy(non_retryable="KeyError"),  # type: ignore[arg-type]
    lambda: durable.step(retry=3),  # type: ignore[call-overload]
    lambda: durable.step(at_most_once="yes"),  # type: ignore[call-overload]
    lambda: durable.step(timeout="5"),  # type: ignore[call-overload]
    lambda: _workflow(timeout=-1),
    lambda: _workflow(queue=5),
    lambda: durable.Queue("options.q", concurrency=0),
    lambda: durable.Queue("options.q", per_runtime="2"),  # type: ignore[arg-type]
    lambda: durable.Queue("options.q", rate=(5, 0)),
    lambda: durable.Runtime(5),  # type: ignore[arg-type]
    lambda: durable.Runtime("unused.db", clock=5),  # type: ignore[arg-type]
    lambda: durable.Runtime("unused.db", recover="no"),  # type: ignore[arg-type]
    lambda: durable.Runtime("unused.db", always_replay=1),  # type: ignore[arg-type]
    lambda: durable.Runtime("unused.db", identity=""),
    lambda: durable.Runtime("unused.db", identity="a\x00b"),
    lambda: durable.Runtime("unused.db", workflows=["options.lookup"]),  # type: ignore[list-item]
    lambda: durable.Runtime("unused.db", workflows=find),  # type: ignore[arg-type]
    lambda: durable.Runtime("unused.db", durability="fast"),
]


@pytest.mark.parametrize("make", BAD)
def test_an_option_of_the_wrong_type_or_value_is_refused_where_it_is_given(
    make: Callable[[], object],
) -> None:
    with pytest.raises((TypeError, ValueError), match=r"must be|takes|must have"):
        make()
