"""``durable.Queue``: limits on how many runs of a kind execute at once and how often
they start, and the cron schedules of workflows.

A queue is declared in code, in every process that executes its runs; the
limits a runtime admits by are those it declared. Declaring one name twice
with other limits is refused: two parts of a program would disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from durable._base.ids import check_name
from durable.journal.records import QueueLimits


class Queue:
    """A queue runs go through: ``concurrency`` of them executing at once over every
    runtime on the database, ``per_runtime`` in any one runtime, and no more than ``n``
    started in any ``seconds``-long window (``rate=(n, seconds)``, sliding). None: no
    limit. A run admitted holds its slot until it ends."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        per_runtime: int | None = None,
        rate: tuple[int, float] | None = None,
    ) -> None:
        check_name("a queue's name", name)
        _positive_count(f"Queue({name!r}) concurrency", concurrency)
        _positive_count(f"Queue({name!r}) per_runtime", per_runtime)
        if rate is not None:
            if not isinstance(rate, tuple) or len(rate) != 2:
                raise TypeError(
                    f"Queue({name!r}) rate must be (runs, seconds), such as (50, 30.0);"
                    f" got {rate!r}"
                )
            _positive_count(f"Queue({name!r}) rate's number of runs", rate[0])
            seconds = rate[1]
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds)
                or seconds <= 0
            ):
                raise ValueError(
                    f"Queue({name!r}) rate's window must be a positive number of seconds,"
                    f" got {seconds!r}"
                )
            rate = (rate[0], float(seconds))
        self.limits = QueueLimits(name, concurrency, per_runtime, rate)
        existing = _declared.get(name)
        if existing is not None and existing.limits != self.limits:
            raise ValueError(
                f"queue {name!r} is declared twice with different limits ({_describe(existing)}"
                f" and {_describe(self)}); declare it once and import it where it is used"
            )
        _declared[name] = self

    @property
    def name(self) -> str:
        return self.limits.name

    @property
    def concurrency(self) -> int | None:
        return self.limits.concurrency

    @property
    def per_runtime(self) -> int | None:
        return self.limits.per_runtime

    @property
    def rate(self) -> tuple[int, float] | None:
        return self.limits.rate

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, {_describe(self)})"


_declared: dict[str, Queue] = {}


def declared_snapshot() -> dict[str, Queue]:
    return dict(_declared)


def restore_declared(snapshot: dict[str, Queue]) -> None:
    _declared.clear()
    _declared.update(snapshot)


def declared_queues() -> list[QueueLimits]:
    """The limits of every queue this process declared."""
    return [queue.limits for queue in _declared.values()]


def queue_named(queue: Queue | str) -> Queue:
    """A queue object, or the declared queue of that name (``ValueError`` if none)."""
    if isinstance(queue, Queue):
        return queue
    if not isinstance(queue, str):
        raise TypeError(f"queue= takes a durable.Queue or its name, got {queue!r:.60}")
    found = _declared.get(queue) if isinstance(queue, str) else None
    if found is None:
        names = ", ".join(sorted(_declared)) or "none"
        raise ValueError(
            f"no queue named {queue!r} is declared in this process (declared: {names});"
            " declare it with durable.Queue(name, ...) in a module this process imports"
        )
    return found


@dataclass(frozen=True)
class QueueStatus:
    """``rt.queue_status(name)``: how many runs wait and how many hold a slot."""

    name: str
    queued: int
    running: int
    concurrency: int | None
    per_runtime: int | None
    rate: tuple[int, float] | None


@dataclass(frozen=True)
class ScheduleInfo:
    """``rt.schedules()``: a cron schedule, its next tick, and its latest tick started."""

    workflow: str
    cron: str
    tz: str
    next_tick: dt.datetime
    last_tick: dt.datetime | None

    @property
    def last_run_id(self) -> str | None:
        """The run of the latest tick started, if any."""
        return None if self.last_tick is None else f"{self.workflow}@{self.last_tick.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        """The schedule as JSON-ready data (the CLI's ``--json`` and the HTTP API)."""
        return {
            "workflow": self.workflow,
            "cron": self.cron,
            "tz": self.tz,
            "next_tick": self.next_tick.isoformat(),
            "last_tick": None if self.last_tick is None else self.last_tick.isoformat(),
            "last_run_id": self.last_run_id,
        }


class Cron:
    """A workflow's cron expression in a time zone, checked when the workflow is declared.

    Ticks are computed by cronsim, which follows Debian cron at daylight-saving
    changes: a time that does not exist that day (spring forward) runs right
    after the change, a fixed time that occurs twice (fall back) runs once, at its
    first occurrence, and an expression with a wildcard hour runs in both copies
    of the repeated hour.
    """

    def __init__(self, expression: str, tz: str) -> None:
        try:
            from cronsim import CronSim, CronSimError
        except ImportError:  # pragma: no cover - the extra is not installed
            raise ImportError(
                "@durable.workflow(cron=...) needs cronsim: pip install 'durable-workflows[cron]'"
            ) from None
        if not isinstance(expression, str):
            raise TypeError(f"cron must be a string such as '0 9 * * *', got {expression!r}")
        try:
            self.zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(
                f"unknown time zone tz={tz!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        try:
            CronSim(expression, dt.datetime.now(self.zone))
        except CronSimError as error:
            detail = str(error)
            if detail.startswith("Bad "):
                detail = f"its {detail[4:].lower()} field is not valid"
            raise ValueError(
                f"invalid cron expression {expression!r}: {detail.lower()} (five fields:"
                " minute hour day-of-month month day-of-week, such as '0 9 * * 1-5')"
            ) from None
        self._cronsim = CronSim
        self.expression = expression
        self.tz = tz

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first tick strictly after ``moment``."""
        result: dt.datetime = next(self._cronsim(self.expression, moment.astimezone(self.zone)))
        return result

    def latest_at(self, moment: dt.datetime) -> dt.datetime:
        """The last tick at or before ``moment``."""
        just_after = moment.astimezone(self.zone) + dt.timedelta(microseconds=1)
        result: dt.datetime = next(self._cronsim(self.expression, just_after, reverse=True))
        return result


def _positive_count(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _describe(queue: Queue) -> str:
    return f"concurrency={queue.concurrency}, per_runtime={queue.per_runtime}, rate={queue.rate}"
