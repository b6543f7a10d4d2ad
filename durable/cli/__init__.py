"""The command line: ``durable [--db DB] COMMAND ...``, also ``python -m durable``.

Every command but ``worker`` and ``serve`` opens the journal with ``recover=False``,
so it runs no workflow: it reads, answers, starts, cancels, resumes, checks or
prunes, and a live runtime on the same journal notices within a second. Exit codes
(``_exits``): 0 success, 1 a refused request (one line on stderr names the problem),
2 usage, 3 ``serve`` cannot listen, 4 ``check`` found runs that need a human.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import durable
from durable.cli._commands import COMMANDS, NeedsAHuman
from durable.cli._exits import NEEDS_A_HUMAN, REFUSED, Exit, import_modules, missing_extra
from durable.cli._logging import configure as configure_logging
from durable.cli._parser import parser
from durable.cli._serve import serve
from durable.errors import DurableError
from durable.store import is_url
from durable.workflow.decorators import registry_keys

__all__ = ["main", "parser"]

NEEDS_MODULES = ("start", "worker", "serve")
"""Commands that do nothing useful without the modules that define workflows."""


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    _settle(top, args)
    if args.command in ("worker", "serve"):
        configure_logging(args.log_level, args.log_json)
    try:
        if args.command == "worker":
            asyncio.run(_worker(args.db, args.modules, args.durability))
        elif args.command == "serve":
            asyncio.run(serve(args))
        else:
            asyncio.run(_one_shot(args))
    except NeedsAHuman:
        return NEEDS_A_HUMAN
    except Exit as stop:
        print(f"durable: {stop.message}", file=sys.stderr)
        return stop.code
    except (DurableError, ValueError) as exc:
        print(f"durable: {exc}", file=sys.stderr)
        return REFUSED
    except ImportError as exc:  # an extra durable imports as it runs (asyncpg, ...)
        print(f"durable: {missing_extra(exc) or exc}", file=sys.stderr)
        return REFUSED
    except BrokenPipeError:
        return 0
    except (KeyboardInterrupt, EOFError):
        print("durable: interrupted; nothing more was done", file=sys.stderr)
        return REFUSED
    return 0


def _settle(top: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One list of modules from wherever they stood, and the journal with where it was
    named (``--db``, ``DURABLE_DB`` or the default), for messages that say which."""
    args.modules = [
        *getattr(args, "top_modules", []),
        *getattr(args, "modules", []),
        *getattr(args, "option_modules", []),
    ]
    if args.command in NEEDS_MODULES and not args.modules:
        top.error(
            f"{args.command} needs the modules that define the workflows: --module MODULE"
            " (repeatable)"
        )
    if getattr(args, "db", None):
        args.db_source = "--db"
    elif os.environ.get("DURABLE_DB"):
        args.db, args.db_source = os.environ["DURABLE_DB"], "DURABLE_DB"
    else:
        args.db, args.db_source = "durable.db", "the default"


async def _one_shot(args: argparse.Namespace) -> None:
    if not is_url(args.db) and not os.path.exists(args.db):
        raise Exit(_no_journal(args.db, args.db_source))
    import_modules(args.modules)
    async with durable.Runtime(args.db, recover=False) as rt:
        await COMMANDS[args.command](rt, args)


def _no_journal(path: str, source: str) -> str:
    """What to do about a journal file that does not exist, by where its path came from."""
    if source == "the default":
        return (
            f"no journal at {path} (the default): pass --db PATH or --db postgresql://...,"
            " or set DURABLE_DB"
        )
    return (
        f"no journal at {path} (from {source}): no such file; check the path, or create the"
        f" journal by starting a worker on it (durable --db {path} worker MODULE)"
    )


async def _worker(db: str, modules: Sequence[str], durability: str) -> None:
    import_modules(modules)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with durable.Runtime(db, durability=durability) as rt:
        names = ", ".join(f"{name}@{version}" for name, version in registry_keys())
        print(
            f"durable worker: {db}, {len(rt.loaded_runs)} run(s) resumed, workflows: {names}",
            flush=True,
        )
        await stop.wait()
    print("durable worker: stopped cleanly", flush=True)
