"""The command line: ``durable --db app.db runs|show|history|export|respond|...|worker``.

Every command but ``worker`` opens the journal with ``recover=False``, so it
runs no workflow: it reads, answers, cancels or resumes, and a live runtime
on the same file notices within a second. Exit codes: 0 success, 1 a refused
request (one line on stderr names the problem), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson

from ._codec import loads
from ._runtime import Runtime
from ._store import is_url
from ._workflow import registry_keys
from .errors import DurableError

Command = Callable[[Runtime, argparse.Namespace], Coroutine[Any, Any, None]]


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _time(moment: dt.datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


async def _runs(rt: Runtime, args: argparse.Namespace) -> None:
    runs = await rt.list_runs(status=args.status, workflow=args.workflow, limit=args.limit)
    if args.json:
        _print_json([_run_json(run) for run in runs])
        return
    rows: list[tuple[str, ...]] = [("RUN ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED")]
    rows += [
        (r.run_id, r.workflow, r.status.value, _time(r.created_at), _time(r.updated_at))
        + ((f"  UNREADABLE: {r.unreadable}",) if r.unreadable else ())
        for r in runs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        print("  ".join(cells) + "  " + "".join(row[4:]))


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "version": run.version,
        "status": run.status.value,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
    } | ({"unreadable": run.unreadable} if run.unreadable else {})


async def _show(rt: Runtime, args: argparse.Namespace) -> None:
    run = await rt.get_run(args.run_id)
    waits = await rt.pending_waits(args.run_id)
    events = await rt.history(args.run_id)
    if args.json:
        _print_json(
            {
                "run": _run_json(run),
                "pending_waits": [
                    {**vars(w), "created_at": w.created_at.isoformat(), "deadline": None}
                    for w in waits
                ],
                "timeline": timeline(events),
            }
        )
        return
    print(f"run       {run.run_id}")
    print(f"workflow  {run.workflow} (version {run.version})")
    print(f"status    {run.status.value}")
    print(f"created   {_time(run.created_at)}    updated {_time(run.updated_at)}")
    print(f"input     {orjson.dumps(run.input).decode()}")
    if run.output is not None:
        print(f"output    {orjson.dumps(run.output).decode()}")
    if run.error is not None:
        print(
            f"error     {run.error.get('code')} {run.error.get('type')}: {run.error.get('message')}"
        )
    for wait in waits:
        options = ", ".join(f"{o['id']}={o['label']}" for o in wait.options or [])
        kind = f"{wait.input_type}: {options}" if options else wait.input_type
        print(f"waiting   [{wait.wait_id}] {wait.question}  ({kind})")
    print("timeline (seconds after the run was created)")
    for entry in timeline(events):
        offset = (dt.datetime.fromisoformat(entry["at"]) - run.created_at).total_seconds()
        print(f"  +{offset:9.3f}s  #{entry['position']:<3} {entry['what']}")


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per durable call (and per message), with how long it took."""
    by_position: dict[int, list[dict[str, Any]]] = {}
    lines: list[dict[str, Any]] = []
    for event in events:
        if event["superseded"]:
            continue
        if event["position"] is None:
            lines.append({"at": event["created_at"], "position": "-", "what": _unpositioned(event)})
        else:
            by_position.setdefault(event["position"], []).append(event)
    for position, group in by_position.items():
        lines.append({"at": group[0]["created_at"], "position": position, "what": _describe(group)})
    return sorted(lines, key=lambda line: str(line["at"]))


def _unpositioned(event: dict[str, Any]) -> str:
    if event["kind"] == "message":
        return f"message {event['name']!r} received: {orjson.dumps(event['payload']).decode()}"
    if event["kind"] == "run.rerun":
        return f"re-run from position {event['payload']['position']}"
    return str(event["kind"])


def _seconds_between(first: dict[str, Any], last: dict[str, Any]) -> float:
    start = dt.datetime.fromisoformat(first["created_at"])
    return (dt.datetime.fromisoformat(last["created_at"]) - start).total_seconds()


def _describe(group: list[dict[str, Any]]) -> str:
    first, last = group[0], group[-1]
    kind = first["kind"].partition(".")[0]
    took = f"{_seconds_between(first, last):.3f}s"
    if kind == "step":
        attempts = sum(1 for e in group if e["kind"] == "step.started")
        outcome = {"step.completed": "completed", "step.failed": "failed"}.get(
            last["kind"], "running"
        )
        return f"step {first['name']}: {outcome} after {attempts} attempt(s), {took}"
    if kind == "sleep":
        wake = dt.datetime.fromtimestamp(first["payload"]["wake_at"], dt.timezone.utc)
        return f"sleep until {wake.isoformat()}"
    if kind == "wait":
        label = first["payload"].get("question") or f"event {first['name']!r}"
        if last["kind"] == "wait.completed":
            if last["payload"].get("timed_out"):
                return f"wait for {label}: timed out after {took}"
            value = orjson.dumps(last["payload"].get("value")).decode()
            return f"wait for {label}: got {value} after {took}"
        return f"wait for {label}: waiting"
    return f"{first['name']} = {orjson.dumps(first['payload'].get('value')).decode()}"


async def _history(rt: Runtime, args: argparse.Namespace) -> None:
    _print_json(await rt.history(args.run_id))


async def _export(rt: Runtime, args: argparse.Namespace) -> None:
    _print_json(await rt.export(args.run_id))


def _parse_value(text: str) -> Any:
    """JSON if it parses, else the text itself."""
    try:
        return loads(text)
    except orjson.JSONDecodeError:
        return text


async def _respond(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.respond(args.run_id, _parse_value(args.value), wait_id=args.wait_id)
    print(f"answered run {args.run_id}")


async def _send_event(rt: Runtime, args: argparse.Namespace) -> None:
    payload = None if args.payload is None else _parse_value(args.payload)
    await rt.send_event(args.run_id, args.name, payload)
    print(f"sent {args.name!r} to run {args.run_id}")


async def _cancel(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.cancel(args.run_id)
    print(f"cancelled run {args.run_id}")


async def _resume(rt: Runtime, args: argparse.Namespace) -> None:
    await rt.resume(args.run_id)
    print(f"run {args.run_id} will be resumed by a runtime that has its workflow")


async def _check(rt: Runtime, args: argparse.Namespace) -> None:
    report = await rt.check(unregistered=bool(args.modules))
    if args.json:
        _print_json(report.to_dict())
        return
    if report.ok:
        print("ok: nothing needs a human")
        return
    for step in report.interrupted_steps:
        again = " and was run again: its effect may have happened twice" if step.retried else ""
        print(
            f"interrupted step  run {step.run_id} position {step.position} {step.step!r}"
            f" attempt {step.attempt} started {_time(step.started_at)} never finished{again}"
        )
    for run in report.orphaned_runs:
        print(
            f"orphaned run      {run.run_id} ({run.workflow}, {run.status.value}):"
            " no live runtime owns it"
        )
    for run in report.poison_runs:
        print(
            f"poison run        {run.run_id} ({run.workflow}): failed with RECOVERY_LIMIT, its"
            " process died each time it ran; fix the cause, then `durable resume`"
        )
    for run in report.unregistered_runs:
        print(
            f"unknown workflow  {run.run_id}: {run.workflow} version {run.version}"
            " is not registered here"
        )


def _import(modules: Sequence[str]) -> None:
    sys.path.insert(0, os.getcwd())
    for module in modules:
        importlib.import_module(module)


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


COMMANDS: dict[str, Command] = {
    "runs": _runs,
    "show": _show,
    "history": _history,
    "export": _export,
    "respond": _respond,
    "send-event": _send_event,
    "cancel": _cancel,
    "resume": _resume,
    "check": _check,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="durable", description=__doc__.split("\n")[0])
    top.add_argument(
        "--db",
        default=os.environ.get("DURABLE_DB", "durable.db"),
        help="the journal: a SQLite file path, or a postgresql:// URL (default: $DURABLE_DB,"
        " else durable.db)",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runs = commands.add_parser("runs", help="list runs")
    runs.add_argument("--status")
    runs.add_argument("--workflow")
    runs.add_argument("--limit", type=int, default=100)
    runs.add_argument("--json", action="store_true")
    show = commands.add_parser("show", help="a run: status, waits, timeline")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    for name, text in (
        ("history", "a run's events as JSON"),
        ("export", "a run's history document"),
    ):
        commands.add_parser(name, help=text).add_argument("run_id")
    respond = commands.add_parser("respond", help="answer a run's wait_for_user")
    respond.add_argument("run_id")
    respond.add_argument("value", help="JSON, or else taken as a string")
    respond.add_argument("--wait-id")
    send = commands.add_parser("send-event", help="send an event to a run")
    send.add_argument("run_id")
    send.add_argument("name")
    send.add_argument("payload", nargs="?", help="JSON, or else taken as a string")
    for name, text in (
        ("cancel", "cancel a run"),
        ("resume", "re-run a failed run on its journal"),
    ):
        commands.add_parser(name, help=text).add_argument("run_id")
    check = commands.add_parser("check", help="what needs a human after a crash")
    check.add_argument("--json", action="store_true")
    check.add_argument(
        "modules",
        nargs="*",
        metavar="MODULE",
        help="workflow modules; with them, runs of workflows they lack are reported too",
    )
    worker = commands.add_parser("worker", help="import workflow modules and run them")
    worker.add_argument("modules", nargs="+", metavar="MODULE")
    worker.add_argument("--durability", choices=("full", "normal"), default="full")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "worker":
            asyncio.run(_worker(args.db, args.modules, args.durability))
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
    return 0


async def _one_shot(args: argparse.Namespace) -> None:
    if not is_url(args.db) and not os.path.exists(args.db):
        raise DurableError(
            f"no journal at {args.db}; pass --db PATH or --db postgresql://... (or set DURABLE_DB)"
        )
    _import(getattr(args, "modules", ()))
    async with Runtime(args.db, recover=False) as rt:
        await COMMANDS[args.command](rt, args)
