"""The command line: ``durable [--db DB] COMMAND ...``, also ``python -m durable``.

Every command but ``worker`` opens the journal with ``recover=False``, so it
runs no workflow: it reads, answers, starts, cancels, resumes or prunes, and
a live runtime on the same journal notices within a second. Exit codes: 0
success, 1 a refused request (one line on stderr names the problem), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import durable
from durable.cli._commands import COMMANDS
from durable.cli._logging import configure as configure_logging
from durable.cli._parser import parser
from durable.errors import DurableError
from durable.store import is_url
from durable.workflow.decorators import registry_keys

__all__ = ["main", "parser"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.db = getattr(args, "db", None) or os.environ.get("DURABLE_DB") or "durable.db"
    if args.command in ("worker", "serve"):
        configure_logging(args.log_level, args.log_json)
    try:
        if args.command == "worker":
            asyncio.run(_worker(args.db, args.modules, args.durability))
        elif args.command == "serve":
            asyncio.run(_serve(args))
        else:
            asyncio.run(_one_shot(args))
    except (DurableError, ValueError) as exc:
        print(f"durable: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"durable: cannot import workflow module: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except (KeyboardInterrupt, EOFError):
        print("durable: interrupted; nothing more was done", file=sys.stderr)
        return 1
    return 0


def _import(modules: Sequence[str]) -> None:
    sys.path.insert(0, os.getcwd())
    for module in modules:
        importlib.import_module(module)


async def _one_shot(args: argparse.Namespace) -> None:
    if not is_url(args.db) and not os.path.exists(args.db):
        raise DurableError(
            f"no journal at {args.db}; pass --db PATH or --db postgresql://... (or set DURABLE_DB)"
        )
    _import(getattr(args, "modules", None) or ())
    async with durable.Runtime(args.db, recover=False) as rt:
        await COMMANDS[args.command](rt, args)


async def _worker(db: str, modules: Sequence[str], durability: str) -> None:
    _import(modules)
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


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _uvicorn_server(ready: str) -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, with the runtime's signal handling: a SIGTERM stops the HTTP
        server and then the runtime, cleanly (uvicorn would raise the signal again once
        it stopped, killing the process before the runtime let its runs go). It prints
        ``ready`` once it listens, so whoever waits for that line can connect."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(ready, flush=True)

        def stop(self) -> None:
            self.should_exit = True

    return Server


async def _serve(args: argparse.Namespace) -> None:
    if args.host not in _LOOPBACK and not args.token:
        raise DurableError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it could"
            " start, answer and cancel runs; pass --token (or set DURABLE_TOKEN), or bind"
            " 127.0.0.1"
        )
    import uvicorn

    from durable.server import create_app

    _Server = _uvicorn_server(f"durable serve: http://{args.host}:{args.port} on {args.db}")

    _import(args.modules)
    async with durable.Runtime(args.db) as rt:
        app = create_app(
            rt,
            token=args.token,
            host=args.host,
            allowed_host=args.allowed_host,
            max_body=args.max_body,
        )
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_level="warning", lifespan="off"
        )
        server = _Server(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        await server.serve()
    print("durable serve: stopped cleanly", flush=True)
