"""Test helpers for workflows: virtual time, crash simulation and exploration, replay of
recorded histories.

The pytest plugin (fixtures ``durable_runtime``, ``durable_clock`` and ``durable_crash``)
is registered by entry point and lives in ``durable.testing.plugin``.
"""

from .._clock import VirtualClock
from ._crash import crash
from ._explore import CrashPoint, CrashReport, explore_crashes
from ._replay import load_history, replay
from ._scoped import scoped_workflows

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
