"""``durable serve``: a runtime that is a worker and an HTTP server (extra ``server``).

Starlette for the routes and Server-Sent Events, uvicorn to serve them: both
made for asyncio, so the server shares the runtime's event loop and calls it
directly. ``create_app(rt, token=None)`` builds the application: the routes and
the actions are in ``_api.py``, the reads the web view needs (runs searched and
paged, a run's steps, queues, schedules) in ``_reads.py``, the shared response and
error shapes in ``_http.py``; the page itself is ``static/``.
"""

from __future__ import annotations

from durable.runtime.runtime import Runtime

try:
    from starlette.applications import Starlette
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "durable serve needs Starlette and uvicorn: pip install 'durable-workflows[server]'"
    ) from None

from durable.server._api import create_app

__all__ = ["Runtime", "Starlette", "create_app"]
