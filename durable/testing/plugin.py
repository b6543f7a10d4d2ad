"""The pytest plugin: ``durable_clock``, ``durable_runtime`` and ``durable_crash`` fixtures.

Registered through the ``pytest11`` entry point, so installing
``durable-workflows[testing]`` is enough. Works with pytest-asyncio in strict and in
auto mode. Run pytest with ``--durable-always-replay`` to rebuild every run
from its journal at each suspension, which flushes out non-determinism.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import durable
from durable.testing._crash import crash

try:
    import pytest_asyncio

    _HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - durable installed without its testing extra
    _HAVE_PYTEST_ASYNCIO = False


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("durable")
    group.addoption(
        "--durable-always-replay",
        action="store_true",
        default=False,
        help="durable_runtime rebuilds every run from its journal at each suspension",
    )


@pytest.fixture
def durable_clock() -> durable.VirtualClock:
    """A virtual clock: it jumps to the next timer when every run is blocked on one."""
    return durable.VirtualClock()


class _Holder:
    """The runtime a test is using now (``durable_crash`` swaps it for a new one)."""

    def __init__(self, runtime: durable.Runtime) -> None:
        self.runtime = runtime


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def _durable_holder(
        durable_clock: durable.VirtualClock, tmp_path: Path, request: pytest.FixtureRequest
    ) -> AsyncIterator[_Holder]:
        always_replay = bool(request.config.getoption("--durable-always-replay"))
        runtime = durable.Runtime(
            tmp_path / "durable.db", clock=durable_clock, always_replay=always_replay
        )
        await runtime.open()
        holder = _Holder(runtime)
        try:
            yield holder
        finally:
            await holder.runtime.close()

    @pytest_asyncio.fixture
    async def durable_runtime(_durable_holder: _Holder) -> durable.Runtime:
        """A started runtime on a fresh journal file in ``tmp_path``, on ``durable_clock``."""
        return _durable_holder.runtime

    @pytest_asyncio.fixture
    async def durable_crash(_durable_holder: _Holder) -> Callable[[], Awaitable[durable.Runtime]]:
        """``await durable_crash()`` abandons ``durable_runtime`` as a SIGKILL would and
        returns a new runtime on the same file, which resumes the runs."""

        async def crash_and_restart() -> durable.Runtime:
            _durable_holder.runtime = await crash(_durable_holder.runtime)
            return _durable_holder.runtime

        return crash_and_restart

else:  # pragma: no cover

    @pytest.fixture
    def durable_runtime() -> durable.Runtime:
        raise pytest.UsageError(
            "durable's fixtures need pytest-asyncio: pip install 'durable-workflows[testing]'"
        )
