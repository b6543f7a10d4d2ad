"""Test helpers for workflows: virtual time, crash simulation and exploration, replay of
recorded histories.

The pytest plugin (fixtures ``durable_runtime``, ``durable_clock`` and ``durable_crash``)
is registered by entry point and lives in ``durable.testing.plugin``.
"""

from durable._base.clock import VirtualClock
from durable.testing._crash import crash
from durable.testing._explore import CrashPoint, CrashReport, explore_crashes
from durable.testing._replay import load_history, replay
from durable.testing._scoped import scoped_workflows

__all__ = [
    "CrashPoint",
    "CrashReport",
    "VirtualClock",
    "crash",
    "explore_crashes",
    "load_history",
    "replay",
    "scoped_workflows",
]
