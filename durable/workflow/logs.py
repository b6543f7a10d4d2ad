"""Log records that say which run and step they are about.

Every record of the ``durable`` logger carries ``run_id``, ``workflow`` and
``step`` (None where they do not apply), so handlers and JSON formatters can
filter by run. ``ctx.logger`` gives workflow code the same fields and stays
quiet while a run replays, so its lines are not repeated on every replay.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import orjson

from durable.workflow import current as _current
from durable.workflow.calls import Calls

FIELDS = ("run_id", "workflow", "step")


class RunFields(logging.Filter):
    """Fills in the fields a record was not given as ``extra``: from the step or the run
    executing where it was logged, else None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "run_id"):
            for name in FIELDS:
                if not hasattr(record, name):
                    setattr(record, name, None)
            return True
        scope = _current.step.get()
        if scope is not None:
            record.run_id, record.workflow, record.step = scope.run_id, scope.workflow, scope.step
            return True
        ctx = _current.context.get()
        record.run_id = None if ctx is None else ctx.run_id
        record.workflow = None if ctx is None else ctx.workflow_name
        record.step = None
        return True


log = logging.getLogger("durable")
log.addFilter(RunFields())


def error_summary(error: str | None) -> str:
    """``Type: message`` of a run's stored error (its JSON record)."""
    try:
        record = orjson.loads(error or "{}")
        return f"{record.get('type', 'Error')}: {record.get('message', '')}"
    except (orjson.JSONDecodeError, AttributeError):
        return error or "unknown error"


def about(run_id: str, workflow: str | None = None, step: str | None = None) -> dict[str, Any]:
    """The ``extra`` of a record about a run logged outside it."""
    return {"run_id": run_id, "workflow": workflow, "step": step}


class WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    """``ctx.logger``: the logger ``durable.workflow.<name>``, silent while the run replays
    calls its journal already holds; each record carries the run's fields."""

    def __init__(self, calls: Calls) -> None:
        super().__init__(logging.getLogger(f"durable.workflow.{calls.host.workflow_name}"))
        self._calls = calls

    def isEnabledFor(self, level: int) -> bool:
        return not self._calls.replaying and self.logger.isEnabledFor(level)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        host = self._calls.host
        extra = {"run_id": host.run_id, "workflow": host.workflow_name, "step": None}
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs
