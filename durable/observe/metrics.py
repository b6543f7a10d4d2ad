"""What a runtime counts for ``/metrics``: step attempts by outcome, run ends, takeovers.

Plain counters in memory, cheap enough for every step; ``durable serve`` renders
them, with the journal's counts of runs and queued runs, in Prometheus format.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Counters:
    """Counted by this runtime since it opened (a Prometheus counter per process)."""

    def __init__(self) -> None:
        self.steps_started: dict[tuple[str, str], int] = {}
        self.steps_completed: dict[tuple[str, str], int] = {}
        self.steps_failed: dict[tuple[str, str], int] = {}
        """Attempts that raised, retried or not."""
        self.steps_retried: dict[tuple[str, str], int] = {}
        """Attempts that raised and are retried."""
        self.runs_ended: dict[tuple[str, str], int] = {}
        """Runs that ended here, by (workflow, status)."""
        self.lease_takeovers = 0
        """Runs taken over from a runtime that died or whose lease lapsed."""
        self.spend: dict[tuple[str, str], float] = {}
        """Spend charged by steps run here (``durable.charge``), by (workflow, unit)."""


@dataclass(frozen=True)
class Metrics:
    """A runtime's counters and the journal's counts, as of one moment (``rt.metrics()``).

    Step and run-end counters are this runtime's, since it opened; ``runs`` and
    ``queues`` are the whole journal's, over every runtime on it.
    """

    steps_started: dict[tuple[str, str], int] = field(default_factory=dict)
    """Attempts begun, by (workflow, step)."""
    steps_completed: dict[tuple[str, str], int] = field(default_factory=dict)
    steps_failed: dict[tuple[str, str], int] = field(default_factory=dict)
    """Attempts that raised, whether retried or not."""
    steps_retried: dict[tuple[str, str], int] = field(default_factory=dict)
    """Attempts that raised and will be retried."""
    runs_ended: dict[tuple[str, str], int] = field(default_factory=dict)
    """Runs that ended in this runtime, by (workflow, status)."""
    lease_takeovers: int = 0
    spend: dict[tuple[str, str], float] = field(default_factory=dict)
    """Spend charged by steps run in this runtime, by (workflow, unit: usd or tokens)."""
    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    """Runs in the journal by (workflow, status)."""
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per queue: (runs queued, runs admitted and unfinished)."""
