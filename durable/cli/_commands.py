"""The commands that read or change a journal; each gets an open runtime and its arguments.

A runtime opened with ``recover=False`` runs no workflow, so these only read,
answer, start, cancel, resume or prune; a live runtime on the same journal
notices what they write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import durable
from durable._base.codec import loads_input
from durable.cli import _budget, _render
from durable.workflow.decorators import registered_spec, registry_keys

Command = Callable[[durable.Runtime, argparse.Namespace], Coroutine[Any, Any, None]]


class NeedsAHuman(Exception):
    """``check`` printed a report that lists something: the command exits 4."""


UNFINISHED = [s for s in durable.RunStatus if s.value not in ("completed", "failed", "cancelled")]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def duration(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w``, or plain seconds."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if found is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write a number with s, m, h, d or w (30d, 12h, 90s)"
        )
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]


def when(text: str) -> dt.datetime:
    """An ISO 8601 time (local time if it names no zone), or a duration ago (``2h``)."""
    try:
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=duration(text))
    except argparse.ArgumentTypeError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time; write ISO 8601 (2026-11-30T09:00, 2026-11-30T09:00+00:00)"
            " or a duration ago (2h, 30d)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def json_text(text: str, otherwise: str = "leave out --json") -> Any:
    try:
        return loads_input(text)
    except ValueError as exc:
        raise durable.DurableError(
            f"{text!r} is not JSON ({exc}); quote strings as JSON ('\"text\"') or {otherwise}"
        ) from None


async def runs(rt: durable.Runtime, args: argparse.Namespace) -> None:
    found = await rt.list_runs(
        status=args.status,
        workflow=args.workflow,
        limit=args.limit,
        after=args.after,
        since=args.since,
        until=args.until,
        parent=args.parent,
    )
    spent = await _budget.usages(rt, found)
    if args.json:
        _render.print_json(
            [
                {
                    **run.to_dict(),
                    "spend": None if use is None else {"usd": use.usd, "tokens": use.tokens},
                }
                for run, use in zip(found, spent, strict=True)
            ]
        )
    else:
        _render.runs_table(found, [_budget.spend_cell(use) for use in spent])


async def show(rt: durable.Runtime, args: argparse.Namespace) -> None:
    run = await rt.get_run(args.run_id)
    waits = await rt.pending_waits(args.run_id)
    events = await rt.history(args.run_id)
    children = await rt.list_runs(parent=args.run_id, limit=1000)
    state = await rt.get_state(args.run_id)
    if args.json:
        _render.print_json(
            {
                "run": run.to_dict(),
                "state": state,
                "children": [child.to_dict() for child in children],
                "pending_waits": [wait.to_dict() for wait in waits],
                "timeline": _render.timeline(events),
            }
        )
    else:
        _render.show(run, waits, events, children, state, await _budget.spend_line(rt, run))


async def history(rt: durable.Runtime, args: argparse.Namespace) -> None:
    _render.print_json([_render.readable_event(event) for event in await rt.history(args.run_id)])


async def export(rt: durable.Runtime, args: argparse.Namespace) -> None:
    _render.print_json(await rt.export(args.run_id))


async def start(rt: durable.Runtime, args: argparse.Namespace) -> None:
    wf = _workflow(args.workflow)
    given = json_text(args.args) if args.args is not None else []
    if isinstance(given, list):
        positional, keywords = given, {}
    elif isinstance(given, dict):
        positional, keywords = [], given
    else:
        raise durable.DurableError(
            f"ARGS_JSON must be a JSON array (the arguments) or object (keyword arguments),"
            f" got {args.args!r}"
        )
    handle = await rt.start_run(wf, positional, keywords, run_id=args.run_id)
    if args.json:
        _render.print_json({"run_id": handle.run_id})
    else:
        print(f"started run {handle.run_id} ({wf.name}); a worker with its workflow runs it")


def _workflow(spec: str) -> durable.Workflow[Any, Any]:
    wf = registered_spec(spec)
    if wf is None:
        known = ", ".join(f"{n}@{v}" for n, v in registry_keys()) or "none"
        raise durable.DurableError(
            f"no workflow {spec!r} in the modules imported (registered: {known}); pass the"
            " module that defines it with --module"
        )
    return wf


async def respond(rt: durable.Runtime, args: argparse.Namespace) -> None:
    value = json_text(args.value) if args.json else args.value
    await rt.respond(args.run_id, value, wait_id=args.wait_id)
    print(f"answered run {args.run_id}")


async def send_event(rt: durable.Runtime, args: argparse.Namespace) -> None:
    """``send RUN NAME PAYLOAD [--key K]``: PAYLOAD is JSON, or the text typed (``--text``)."""
    payload = args.payload
    if payload is not None and not args.text:
        payload = json_text(payload, "pass --text to send it as text")
    await rt.send_event(args.run_id, args.name, payload, key=args.key)
    keyed = "" if args.key is None else f" with key {args.key!r}"
    print(f"sent {args.name!r} to run {args.run_id}{keyed}")


async def cancel(rt: durable.Runtime, args: argparse.Namespace) -> None:
    statuses = [durable.RunStatus(args.status)] if args.status else UNFINISHED
    chosen = await _choose(rt, args, statuses, "cancel")
    for run_id in chosen:
        try:
            await rt.cancel(run_id)
        except durable.DurableError as exc:
            if len(chosen) == 1:
                raise
            print(f"skipped {run_id}: {exc}")
            continue
        print(f"cancelled run {run_id}")


async def resume(rt: durable.Runtime, args: argparse.Namespace) -> None:
    chosen = await _choose(rt, args, [durable.RunStatus.FAILED], "resume")
    for run_id in chosen:
        await rt.resume(run_id)
        print(f"run {run_id} will be resumed by a runtime that has its workflow")


async def rerun(rt: durable.Runtime, args: argparse.Namespace) -> None:
    await rt.rerun_from(args.run_id, args.position)
    print(
        f"run {args.run_id} will be re-executed from position {args.position} by a runtime"
        " that has its workflow"
    )


async def _choose(
    rt: durable.Runtime, args: argparse.Namespace, statuses: list[durable.RunStatus], verb: str
) -> list[str]:
    """The runs named, or those the filters select after the user said yes."""
    filtered = args.workflow or args.before or getattr(args, "status", None)
    if args.run_ids:
        if filtered:
            raise durable.DurableError(f"give run ids or filters to {verb}, not both")
        return list(args.run_ids)
    if not filtered:
        raise durable.DurableError(
            f"name the runs to {verb}: RUN_ID..., or filters (--workflow W, --before T)"
        )
    chosen = [run.run_id async for run in _select(rt, statuses, args.workflow, args.before)]
    if not chosen:
        print(f"no run matches; nothing to {verb}")
        return []
    shown = ", ".join(chosen[:5]) + (f" and {len(chosen) - 5} more" if len(chosen) > 5 else "")
    if not args.yes:
        print(f"{verb} {len(chosen)} run(s): {shown}? [y/N] ", end="", flush=True)
        answer = sys.stdin.readline()  # "" at the end of input: no
        if answer.strip().lower() not in ("y", "yes"):
            raise durable.DurableError(
                f"nothing done: {verb} was not confirmed (--yes skips asking)"
            )
    return chosen


async def _select(
    rt: durable.Runtime,
    statuses: list[durable.RunStatus],
    workflow: str | None,
    before: dt.datetime | None,
) -> AsyncIterator[durable.RunInfo]:
    for status in statuses:
        page = await rt.list_runs(status=status, workflow=workflow, limit=500, until=before)
        while page:
            for run in page:
                yield run
            page = await rt.list_runs(
                status=status, workflow=workflow, limit=500, until=before, after=page[-1].run_id
            )


async def check(rt: durable.Runtime, args: argparse.Namespace) -> None:
    """Every unfinished run replayed against the modules' code (nothing written); exits 4
    when anything but an orphaned run is listed, which the next worker takes over."""
    report = await rt.check(unregistered=bool(args.modules))
    if args.json:
        _render.print_json(report.to_dict())
    else:
        _render.check_report(report, modules=args.modules)
    if blocking(report):
        raise NeedsAHuman


def blocking(report: durable.CheckReport) -> bool:
    """Whether the report lists what must be dealt with before a deploy. An interrupted
    step blocks while its attempt is still open (nothing has run it again); one already
    retried is history, listed but not blocking."""
    return bool(
        report.diverged_runs
        or report.unregistered_runs
        or report.poison_runs
        or any(not step.retried for step in report.interrupted_steps)
        or report.corrupt_runs
    )


async def prune(rt: durable.Runtime, args: argparse.Namespace) -> None:
    pruned = await rt.prune(args.older_than)
    print(f"pruned {pruned} run(s) that ended more than {args.older_than:g} s ago")


async def queues(rt: durable.Runtime, args: argparse.Namespace) -> None:
    found = await rt.queues()
    if args.json:
        _render.print_json([_render.queue_json(status) for status in found])
    else:
        _render.queues_table(found)


async def schedules(rt: durable.Runtime, args: argparse.Namespace) -> None:
    found = await rt.schedules()
    if args.json:
        _render.print_json([schedule.to_dict() for schedule in found])
    else:
        _render.schedules_table(found)


COMMANDS: dict[str, Command] = {
    "runs": runs,
    "show": show,
    "history": history,
    "export": export,
    "start": start,
    "respond": respond,
    "send": send_event,
    "send-event": send_event,
    "cancel": cancel,
    "resume": resume,
    "rerun": rerun,
    "check": check,
    "prune": prune,
    "queues": queues,
    "schedules": schedules,
    "budget": _budget.raise_budget,
    "usage": _budget.usage,
}
