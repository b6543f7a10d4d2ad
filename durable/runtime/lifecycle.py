"""Whether the runtime is open: every part that acts on its own (a timer, a claim, an
admission) or for a caller looks here first."""

from __future__ import annotations

from durable.errors import DurableError


class Lifecycle:
    """Open from ``Runtime.open`` until ``close`` (or ``abandon``) begins."""

    def __init__(self) -> None:
        self.is_open = False

    def check_open(self) -> None:
        if not self.is_open:
            raise DurableError(
                "the runtime is not open; use it inside `async with durable.Runtime(...) as rt:`"
            )
