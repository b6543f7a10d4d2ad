"""``ctx.state``: a run's durable key-value state, which other processes can read.

Every change takes a position and is journaled (committed with the run's next
write, and announced so that ``rt.wait_state`` hears of it); a replay applies
the journaled changes again, so the state is rebuilt exactly as it was
committed. ``rt.get_state`` folds the same events (``run_journal.state_of``).
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

from durable._base.codec import encode, loads
from durable._base.ids import check_name
from durable.errors import DurableError, NonDeterminismError
from durable.journal.kinds import STATE, STATE_CLEARED, STATE_DELETED, STATE_SET
from durable.workflow.calls import Calls

_CLEAR = "*"


class WorkflowState:
    """What a run publishes as it goes: progress, the step it is on, partial results."""

    def __init__(self, calls: Calls) -> None:
        # Not the calls themselves: that cycle would keep a finished run for the collector.
        self._run = weakref.ref(calls)
        self._values: dict[str, Any] = {}

    @property
    def _calls(self) -> Calls:
        calls = self._run()
        if calls is None:
            raise DurableError("this ctx.state belongs to a run that has ended here")
        return calls

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self._values.get(key, default))

    def snapshot(self) -> dict[str, Any]:
        """A copy of the whole state."""
        return copy.deepcopy(self._values)

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value`` (JSON data; ``SerializationError`` at once if not)."""
        text = encode(value, self._calls.host.max_value_bytes)
        replayed = self._change(STATE_SET, _key(key), f'{{"value":{text}}}')
        self._values[key] = loads(text) if replayed is None else self._calls.read(replayed)["value"]

    def delete(self, key: str) -> None:
        self._change(STATE_DELETED, _key(key), "{}")
        self._values.pop(key, None)

    def clear(self) -> None:
        self._change(STATE_CLEARED, _CLEAR, "{}")
        self._values.clear()

    def _change(self, kind: str, name: str, text: str) -> Any:
        """Journal one change, or return the journaled one a replay finds at its position."""
        calls = self._calls
        host = calls.host
        position = calls.take(STATE, name)
        events = host.journal.at(position)
        host.journal.settle(position)
        if events:
            if events[0].kind != kind:
                error = NonDeterminismError(
                    position, f"{events[0].kind} {name!r}", f"{kind} {name!r}"
                )
                host.fatal(error)
                raise error
            return events[0]
        host.publish(position, kind, name, text)
        return None

    def __repr__(self) -> str:
        return f"<WorkflowState {self._values!r}>"


def _key(key: str) -> str:
    if key == _CLEAR:
        raise ValueError(f"{_CLEAR!r} is reserved and cannot be a ctx.state key")
    return check_name("a ctx.state key", key)
