"""Test helpers for workflows: virtual time, crash simulation, replay of recorded histories.

The pytest plugin (fixtures ``durable_runtime`` and ``durable_clock``) is
registered by entry point and lives in ``durable.testing.plugin``.
"""

from .._clock import VirtualClock
from ._crash import crash
from ._replay import load_history, replay
from ._scoped import scoped_workflows

__all__ = ["VirtualClock", "crash", "load_history", "replay", "scoped_workflows"]
