"""``RunHandle``: a reference to one run, wherever it executes."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from durable.journal.info import RunInfo, RunStatus

R = TypeVar("R")


class _Results(Protocol):
    async def wait(self, run_id: str, timeout: float | None) -> Any: ...


class Runs(Protocol):
    """What a handle asks of the runtime it came from."""

    @property
    def results(self) -> _Results: ...

    async def get_run(self, run_id: str) -> RunInfo: ...

    async def cancel(self, run_id: str) -> None: ...


class RunHandle(Generic[R]):
    """A reference to one run: await its result, read its status, cancel it."""

    def __init__(self, runtime: Runs, run_id: str) -> None:
        self.runtime = runtime
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r}>"

    async def result(self, timeout: float | None = None) -> R:
        """The run's output; raises ``WorkflowFailed`` or ``WorkflowCancelled``.

        ``timeout`` is in real seconds: a ``TimeoutError`` naming the run and its
        status when it passes (the run goes on).
        """
        result: R = await self.runtime.results.wait(self.run_id, timeout)
        return result

    async def status(self) -> RunStatus | str:
        return (await self.runtime.get_run(self.run_id)).status

    async def cancel(self) -> None:
        await self.runtime.cancel(self.run_id)
