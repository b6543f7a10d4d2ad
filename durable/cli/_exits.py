"""What ends a command short, with its exit code: the journal is missing, a module or an
extra cannot be imported, the address is taken, ``check`` found runs that need a human.

Each is one line on stderr that names the problem and the fix; docs/cli.md lists the
codes per command.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

OK = 0
REFUSED = 1
USAGE = 2
CANNOT_LISTEN = 3
NEEDS_A_HUMAN = 4

DISTRIBUTION = "durable-workflows"

EXTRA_OF = {
    "uvicorn": "server",
    "starlette": "server",
    "prometheus_client": "server",
    "standardwebhooks": "server",
    "asyncpg": "postgres",
    "cronsim": "cron",
    "opentelemetry": "otel",
}
"""The top-level packages of durable's extras, by the extra that installs them."""


class Exit(Exception):
    """Ends the command with ``code`` after printing ``message`` on stderr."""

    def __init__(self, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def missing_extra(error: ImportError) -> Exit | None:
    """The error as "install this extra", when what is missing is one of durable's extras
    (or durable itself says which extra it needs); None for any other import error."""
    if f"pip install '{DISTRIBUTION}[" in str(error):
        return Exit(str(error))
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if not isinstance(error, ModuleNotFoundError) or extra is None:
        return None
    return Exit(
        f"{top} is not installed: it comes with the {extra!r} extra;"
        f" pip install '{DISTRIBUTION}[{extra}]'"
    )


def import_modules(modules: Sequence[str]) -> None:
    """Import the user's workflow modules from the working directory (and PYTHONPATH),
    turning an import error into a line that says which module and what to do."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise _import_failure(module, error) from None


def _import_failure(module: str, error: ImportError) -> Exit:
    extra = missing_extra(error)
    if extra is not None:
        return extra
    missing = error.name or ""
    if isinstance(error, ModuleNotFoundError) and (
        module == missing or module.startswith(missing + ".")
    ):
        return Exit(
            f"cannot import workflow module {module!r}: no module named {missing!r} here;"
            " run durable from the directory that holds it, or add that directory to"
            " PYTHONPATH"
        )
    return Exit(
        f"importing workflow module {module!r} failed: {type(error).__name__}: {error}"
        " (is a package it imports installed in this environment?)"
    )
