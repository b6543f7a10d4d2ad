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
import importlib.metadata
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from durable.cli._commands import COMMANDS, duration, when
from durable.cli._logging import configure as configure_logging
from durable.errors import DurableError
from durable.journal.info import RunStatus
from durable.runtime.runtime import Runtime
from durable.store import is_url
from durable.workflow.decorators import registry_keys

DISTRIBUTION = "durable-workflows"

DB_HELP = (
    "the journal: a SQLite file path or a postgresql:// URL; before or after the command"
    " (default: $DURABLE_DB, else durable.db)"
)


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="durable",
        description="Inspect and operate durable workflow runs in a journal.",
        epilog="Exit codes: 0 success, 1 a refused request, 2 usage.",
    )
    top.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    top.add_argument("--version", action="version", version=f"durable {_version()}")
    # --db is also accepted after the command: each subcommand knows it too.
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text + ".", parents=[shared])

    def run_id(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("run_id", metavar="RUN_ID", help="the run's id")

    def as_json(sub: argparse.ArgumentParser, text: str = "print JSON instead of text") -> None:
        sub.add_argument("--json", action="store_true", help=text)

    statuses = [status.value for status in RunStatus]
    runs = command("runs", "list runs, newest first")
    runs.add_argument("--status", choices=statuses, help="only runs with this status")
    runs.add_argument("--workflow", help="only runs of this workflow (its name)")
    runs.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    runs.add_argument("--after", metavar="RUN_ID", help="the next page: runs listed after this one")
    runs.add_argument("--since", type=when, help="created at or after (ISO 8601, or 2h: ago)")
    runs.add_argument("--until", type=when, help="created before (ISO 8601, or 2h: ago)")
    runs.add_argument("--parent", metavar="RUN_ID", help="only the children of this run")
    as_json(runs)

    show = command("show", "a run: status, input, output, open questions, timeline")
    run_id(show)
    as_json(show)
    history = command("history", "a run's events as JSON, times in ISO 8601")
    run_id(history)
    export = command("export", "a run's history document, for durable.testing.replay")
    run_id(export)

    start = command("start", "start a run, for a worker with its workflow to execute")
    start.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name (NAME@VERSION)")
    start.add_argument(
        "args",
        metavar="ARGS_JSON",
        nargs="?",
        help='its arguments: a JSON array (["o-1", 3]) or object of keyword arguments',
    )
    start.add_argument(
        "--module",
        "-m",
        dest="modules",
        action="append",
        required=True,
        metavar="MODULE",
        help="a module that defines the workflow (repeatable)",
    )
    start.add_argument("--run-id", help="the run's id, its idempotency key (default: a new one)")
    as_json(start, 'print {"run_id": ...}')

    respond = command("respond", "answer a run's wait_for_user question")
    run_id(respond)
    respond.add_argument("value", metavar="VALUE", help="the answer, as typed (text)")
    respond.add_argument("--wait-id", help="which question, if the run has several")
    as_json(respond, "parse VALUE as JSON (42 a number, true a boolean)")

    send = command("send-event", "send an event to a run's wait_for_event")
    run_id(send)
    send.add_argument("name", metavar="NAME", help="the event's name")
    send.add_argument("payload", metavar="PAYLOAD", nargs="?", help="its payload, as text")
    as_json(send, "parse PAYLOAD as JSON")

    for name, text in (
        ("cancel", "cancel runs: those named, or those the filters select"),
        ("resume", "retry failed runs: from the step that failed, else on their journal"),
    ):
        sub = command(name, text)
        sub.add_argument("run_ids", metavar="RUN_ID", nargs="*", help="the runs (or use filters)")
        sub.add_argument("--workflow", help="every such run of this workflow")
        sub.add_argument("--before", type=when, help="created before (ISO 8601, or 2h: ago)")
        if name == "cancel":
            sub.add_argument("--status", choices=statuses, help="only runs with this status")
        sub.add_argument("--yes", "-y", action="store_true", help="act without asking first")

    rerun = command("rerun", "re-execute a completed or failed run from a position")
    run_id(rerun)
    rerun.add_argument(
        "--from",
        dest="position",
        type=int,
        required=True,
        metavar="POSITION",
        help="the journal position to re-execute from (durable history shows them); the"
        " entries at and after it are kept, marked superseded",
    )

    check = command("check", "what needs a human: interrupted steps, orphaned or diverged runs")
    check.add_argument(
        "modules",
        nargs="*",
        metavar="MODULE",
        help="workflow modules; with them, runs of workflows they lack are reported, and"
        " parked runs are replayed against their code",
    )
    as_json(check)

    for name, summary, more in (
        ("queues", "queued and running runs per queue, and the queues' limits", "limits"),
        ("schedules", "cron schedules: next tick and the latest run", "schedules"),
    ):
        listing = command(name, summary)
        listing.add_argument(
            "modules",
            nargs="*",
            metavar="MODULE",
            help=f"modules that declare them, for their {more} as the code has them",
        )
        as_json(listing)

    prune = command("prune", "delete runs that ended long ago, with their journals")
    prune.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="ended more than this long ago: 30d, 12h, 90m, 45s (unfinished runs never go)",
    )

    worker = command("worker", "import workflow modules and run their runs until stopped")
    worker.add_argument("modules", nargs="+", metavar="MODULE", help="modules defining workflows")
    worker.add_argument(
        "--durability",
        choices=("full", "normal"),
        default="full",
        help="full: each step survives power loss; normal: process crashes only",
    )
    serve = command("serve", "a worker and an HTTP server (JSON API, streams) on one runtime")
    serve.add_argument("modules", nargs="+", metavar="MODULE", help="modules defining workflows")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument(
        "--token",
        default=os.environ.get("DURABLE_TOKEN"),
        help="every request must bear Authorization: Bearer TOKEN (default: $DURABLE_TOKEN);"
        " needed to bind anything but a loopback address",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer besides the address bound (repeatable); requests naming"
        " any other are refused, so a page of another site cannot reach the server",
    )
    serve.add_argument(
        "--max-body",
        type=_byte_count,
        default=None,
        metavar="BYTES",
        help="refuse request bodies larger than this (default: 10000000, the runtime's"
        " max_value_bytes)",
    )
    for runner in (worker, serve):
        runner.add_argument(
            "--log-level",
            choices=("debug", "info", "warning", "error"),
            default="info",
            help="log records of this level and above to stderr (default info: a line per"
            " run started, resumed and ended)",
        )
        runner.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    return top


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
    async with Runtime(args.db, recover=False) as rt:
        await COMMANDS[args.command](rt, args)


async def _worker(db: str, modules: Sequence[str], durability: str) -> None:
    _import(modules)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Runtime(db, durability=durability) as rt:
        names = ", ".join(f"{name}@{version}" for name, version in registry_keys())
        print(
            f"durable worker: {db}, {len(rt.loaded_runs)} run(s) resumed, workflows: {names}",
            flush=True,
        )
        await stop.wait()
    print("durable worker: stopped cleanly", flush=True)


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _byte_count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes >= 1, e.g. 10000000")
    return int(text)


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
    async with Runtime(args.db) as rt:
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
