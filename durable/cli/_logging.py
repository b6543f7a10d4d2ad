"""How ``durable worker`` and ``durable serve`` write log records: lines for people, or
one JSON object per line for log pipelines (``--log-json``)."""

from __future__ import annotations

import datetime as dt
import logging
import sys

import orjson

from durable.workflow.logs import FIELDS


def configure(level: str, as_json: bool) -> None:
    """Records of ``level`` and above, of every logger, to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if as_json else Lines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Lines(logging.Formatter):
    """``time level logger message``; a record from workflow code or a step also names its
    run (the runtime's own lines say it in the message)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name != "durable":
            fields = [f"{name}={getattr(record, name)}" for name in FIELDS if _has(record, name)]
            if fields:
                text += f" [{' '.join(fields)}]"
        return text


class JsonLines(logging.Formatter):
    """One object per record: time, level, logger, message, run_id, workflow, step (when
    the record has them) and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        document: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if _has(record, name):
                document[name] = getattr(record, name)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


def _has(record: logging.LogRecord, name: str) -> bool:
    return getattr(record, name, None) is not None
