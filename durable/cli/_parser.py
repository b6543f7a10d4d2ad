"""The argument parser of ``durable``: one function per group of commands."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
from collections.abc import Callable, Sequence

import durable
from durable.cli._budget import add_commands as _budgets
from durable.cli._commands import duration, when

DISTRIBUTION = "durable-workflows"

DB_HELP = (
    "the journal: a SQLite file path or a postgresql:// URL; before or after the command"
    " (default: $DURABLE_DB, else durable.db)"
)

STATUSES = [status.value for status in durable.RunStatus]

Command = Callable[..., argparse.ArgumentParser]
"""Adds a subcommand by name, one-line description and exit codes (when they are not the
usual ones); it knows ``--db`` too."""


EXIT_CODES = (
    "Exit codes: 0 success; 1 a refused request (one line on stderr names the problem and"
    " the fix); 2 usage; 3 serve cannot listen on its address; 4 check found runs that"
    " need a human."
)

MODULE_HELP = "a module that defines workflows (repeatable; anywhere on the line)"


class IntermixedParser(argparse.ArgumentParser):
    """A subcommand's parser whose options may stand between its positional arguments
    (``start WF --module M '["o-1"]'``): argparse's intermixed parsing, which a parser
    with subcommands cannot use itself."""

    _parsing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # the two passes of the intermixed parse
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="durable",
        description="Inspect and operate durable workflow runs in a journal.",
        epilog=EXIT_CODES + " See each command's --help for its own.",
    )
    top.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    _module_option(top, dest="top_modules")
    top.add_argument("--version", action="version", version=f"durable {_version()}")
    # --db is also accepted after the command: each subcommand knows it too.
    shared = IntermixedParser(add_help=False)
    shared.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    commands = top.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=IntermixedParser
    )

    def command(name: str, text: str, exits: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=text,
            description=text + ".",
            epilog=exits or "Exit codes: 0 success, 1 a refused request, 2 usage.",
            parents=[shared],
        )

    _reading(command)
    _writing(command)
    _operating(command)
    _budgets(command)
    _running(command)
    return top


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _run_id(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("run_id", metavar="RUN_ID", help="the run's id")


def _as_json(sub: argparse.ArgumentParser, text: str = "print JSON instead of text") -> None:
    sub.add_argument("--json", action="store_true", help=text)


def _modules(sub: argparse.ArgumentParser, text: str) -> None:
    """MODULE... as positional arguments, or ``--module MODULE`` anywhere."""
    sub.add_argument("modules", nargs="*", metavar="MODULE", help=text)
    _module_option(sub, dest="option_modules")


def _module_option(sub: argparse.ArgumentParser, dest: str = "option_modules") -> None:
    sub.add_argument(
        "--module",
        "-m",
        dest=dest,
        action="append",
        default=argparse.SUPPRESS,
        metavar="MODULE",
        help=MODULE_HELP,
    )


def _reading(command: Command) -> None:
    """runs, show, history, export: read a journal."""
    runs = command("runs", "list runs, newest first")
    runs.add_argument("--status", choices=STATUSES, help="only runs with this status")
    runs.add_argument("--workflow", help="only runs of this workflow (its name)")
    runs.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    runs.add_argument("--after", metavar="RUN_ID", help="the next page: runs listed after this one")
    runs.add_argument("--since", type=when, help="created at or after (ISO 8601, or 2h: ago)")
    runs.add_argument("--until", type=when, help="created before (ISO 8601, or 2h: ago)")
    runs.add_argument("--parent", metavar="RUN_ID", help="only the children of this run")
    _as_json(runs)

    show = command("show", "a run: status, input, output, open questions, timeline")
    _run_id(show)
    _as_json(show)
    _run_id(command("history", "a run's events as JSON, times in ISO 8601"))
    _run_id(command("export", "a run's history document, for durable.testing.replay"))


def _writing(command: Command) -> None:
    """start, respond, send (send-event): write to a journal for a worker to act on."""
    start = command("start", "start a run, for a worker with its workflow to execute")
    start.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name (NAME@VERSION)")
    start.add_argument(
        "args",
        metavar="ARGS_JSON",
        nargs="?",
        help='its arguments: a JSON array (["o-1", 3]) or object of keyword arguments',
    )
    _module_option(start)
    start.add_argument("--run-id", help="the run's id, its idempotency key (default: a new one)")
    _as_json(start, 'print {"run_id": ...}')

    respond = command(
        "respond", "answer a run's wait_for_user question, or a budget question with stop"
    )
    _run_id(respond)
    respond.add_argument("value", metavar="VALUE", help="the answer, as typed (text)")
    respond.add_argument("--wait-id", help="which question, if the run has several")
    _as_json(respond, "parse VALUE as JSON (42 a number, true a boolean)")

    for name in ("send", "send-event"):
        send = command(name, "send an event to a run's wait_for_event (send-event: the same)")
        _run_id(send)
        send.add_argument("name", metavar="NAME", help="the event's name")
        send.add_argument(
            "payload",
            metavar="PAYLOAD",
            nargs="?",
            help="its payload as JSON: '{\"n\": 1}', 42, '\"text\"' (default null)",
        )
        send.add_argument(
            "--key",
            help="a delivery key: a second send with the same key to the run delivers nothing",
        )
        send.add_argument("--text", action="store_true", help="send PAYLOAD as the text typed")
        send.add_argument(
            "--json",
            action="store_true",
            help="PAYLOAD is JSON (the default; kept for scripts that pass it)",
        )


def _operating(command: Command) -> None:
    """cancel, resume, rerun, check, queues, schedules, prune: operate on runs."""
    for name, text in (
        ("cancel", "cancel runs: those named, or those the filters select"),
        ("resume", "retry failed runs: from the step that failed, else on their journal"),
    ):
        sub = command(name, text)
        sub.add_argument("run_ids", metavar="RUN_ID", nargs="*", help="the runs (or use filters)")
        sub.add_argument("--workflow", help="every such run of this workflow")
        sub.add_argument("--before", type=when, help="created before (ISO 8601, or 2h: ago)")
        if name == "cancel":
            sub.add_argument("--status", choices=STATUSES, help="only runs with this status")
        sub.add_argument("--yes", "-y", action="store_true", help="act without asking first")

    rerun = command("rerun", "re-execute a completed or failed run from a position")
    _run_id(rerun)
    rerun.add_argument(
        "--from",
        dest="position",
        type=int,
        required=True,
        metavar="POSITION",
        help="the journal position to re-execute from (durable history shows them); the"
        " entries at and after it are kept, marked superseded",
    )

    check = command(
        "check",
        "the gate before a deploy: replay every unfinished run against the code in the"
        " modules, and list what needs a human",
        "Exit codes: 0 nothing needs a human; 4 a run would diverge under this code, has"
        " a workflow the modules lack, failed as poison, had a step interrupted or cannot"
        " be read (the report says which); 1 the check could not run; 2 usage.",
    )
    _modules(
        check,
        "the workflow modules of the code to deploy: every unfinished run is replayed"
        " against them, writing nothing",
    )
    _as_json(check)

    for name, summary, more in (
        ("queues", "queued and running runs per queue, and the queues' limits", "limits"),
        ("schedules", "cron schedules: next tick and the latest run", "schedules"),
    ):
        listing = command(name, summary)
        _modules(listing, f"modules that declare them, for their {more} as the code has them")
        _as_json(listing)

    prune = command("prune", "delete runs that ended long ago, with their journals")
    prune.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="AGE",
        help="ended more than this long ago: 30d, 12h, 90m, 45s (unfinished runs never go)",
    )


def _running(command: Command) -> None:
    """worker, serve: run workflows until stopped."""
    worker = command(
        "worker",
        "import workflow modules and run their runs until stopped",
        "Exit codes: 0 stopped cleanly (SIGINT, SIGTERM); 1 a module or an extra could"
        " not be imported, or the journal not opened; 2 usage.",
    )
    _modules(worker, "modules defining workflows (at least one)")
    worker.add_argument(
        "--durability",
        choices=("full", "normal"),
        default="full",
        help="full: each step survives power loss; normal: process crashes only",
    )
    serve = command(
        "serve",
        "a worker and an HTTP server (JSON API, streams) on one runtime",
        "Exit codes: 0 stopped cleanly (SIGINT, SIGTERM); 1 a module or the server extra"
        " could not be imported, or the address refused without a token; 2 usage;"
        " 3 the address cannot be listened on (the port is in use).",
    )
    _modules(serve, "modules defining workflows (at least one)")
    _serving(serve)
    for runner in (worker, serve):
        runner.add_argument(
            "--log-level",
            choices=("debug", "info", "warning", "error"),
            default="info",
            help="log records of this level and above to stderr (default info: a line per"
            " run started, resumed and ended)",
        )
        runner.add_argument("--log-json", action="store_true", help="log one JSON object per line")


def _serving(serve: argparse.ArgumentParser) -> None:
    """The HTTP options of serve: where it listens and whom it answers."""
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


def _byte_count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes >= 1, e.g. 10000000")
    return int(text)
