"""What the command line prints: times with their zone, run tables, a run's timeline."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sys
from collections.abc import Callable
from typing import Any

import orjson

import durable
from durable.cli._budget import charges_by_position, spend_text
from durable.journal.kinds import (
    BUDGET_CHARGED,
    BUDGET_RAISED,
    CHILD,
    CHILD_COMPLETED,
    EVENT,
    FIRST,
    MESSAGE,
    PATCH,
    RERUN,
    SLEEP,
    STATE,
    STATE_CLEARED,
    STATE_DELETED,
    STATE_SET,
    STEP,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_STARTED,
    STREAM,
    STREAM_CLOSED,
    STREAM_VALUE,
    WAIT,
    WAIT_COMPLETED,
    family,
    is_gate,
)
from durable.journal.streams import StreamFold, StreamItem, kept_and_retracted

TIME_KEYS = ("wake_at", "deadline", "retry_at")
"""Payload fields that hold a moment as POSIX seconds."""


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def moment(value: dt.datetime) -> str:
    """A moment in local time with its offset: ``2026-12-01 14:05:09+01:00`` (in UTC at
    the ends of the datetime range, where no other zone fits)."""
    with contextlib.suppress(OverflowError):
        value = value.astimezone()
    return value.isoformat(sep=" ", timespec="seconds")


def _local(seconds: Any) -> str:
    """A stored time (POSIX seconds) in local time, or as it is stored, marked, when it
    is no time a datetime holds (1e300, a year past 9999, text)."""
    return _stored_time(seconds, moment)


def iso(seconds: Any) -> Any:
    """A stored time as ISO 8601, or the stored value as it is when it cannot be one."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return seconds
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return seconds


def _stored_time(seconds: Any, show: Callable[[dt.datetime], str]) -> str:
    if not isinstance(seconds, bool) and isinstance(seconds, (int, float)):
        try:
            return show(dt.datetime.fromtimestamp(seconds, dt.UTC))
        except (OverflowError, OSError, ValueError):
            pass
    return f"{seconds!r} (as stored: not a time)"


def readable_event(event: dict[str, Any]) -> dict[str, Any]:
    """A history event with the moments in its payload as ISO 8601, not POSIX seconds
    (a stored time that cannot be a date is left as it is)."""
    data = event["payload"]
    if isinstance(data, dict) and any(isinstance(data.get(key), float) for key in TIME_KEYS):
        data = {
            key: iso(value) if key in TIME_KEYS and isinstance(value, float) else value
            for key, value in data.items()
        }
    return {**event, "payload": data}


def queue_json(status: durable.QueueStatus) -> dict[str, Any]:
    return {**vars(status), "rate": None if status.rate is None else list(status.rate)}


def queues_table(found: list[durable.QueueStatus]) -> None:
    def limit(value: object) -> str:
        return "-" if value is None else str(value)

    rows: list[tuple[str, ...]] = [
        ("QUEUE", "QUEUED", "RUNNING", "CONCURRENCY", "PER RUNTIME", "RATE")
    ]
    for q in found:
        rate = "-" if q.rate is None else f"{q.rate[0]} per {q.rate[1]:g}s"
        rows.append(
            (
                q.name,
                str(q.queued),
                str(q.running),
                limit(q.concurrency),
                limit(q.per_runtime),
                rate,
            )
        )
    _table(rows)
    if any(q.concurrency is None and q.per_runtime is None and q.rate is None for q in found):
        print("(limits show as - where none is declared; pass the modules that declare them)")


def schedules_table(found: list[durable.ScheduleInfo]) -> None:
    rows: list[tuple[str, ...]] = [("WORKFLOW", "CRON", "TZ", "NEXT TICK", "LAST RUN")]
    for s in found:
        rows.append((s.workflow, s.cron, s.tz, moment(s.next_tick), s.last_run_id or "-"))
    _table(rows)


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def runs_table(runs: list[durable.RunInfo], spend: list[str]) -> None:
    """The runs, one a line, with what each run's tree spent (``spend``, in order)."""
    rows: list[tuple[str, ...]] = [("RUN ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED", "SPEND")]
    rows += [
        (r.run_id, r.workflow, status_text(r), moment(r.created_at), moment(r.updated_at), cost)
        + ((f"  UNREADABLE: {r.unreadable}",) if r.unreadable else ())
        for r, cost in zip(runs, spend, strict=True)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        print("  ".join(cells) + "  " + "".join(row[5:]))


WAITING_FOR_A_WORKER = "running: waiting for a worker"
"""A run stored ``running`` that no live runtime holds: its runtime stopped (cleanly,
mid-step, or died and its lease ran out), and the next one with its workflow goes on."""


def status_text(run: durable.RunInfo) -> str:
    """The run's status as stored, or, for a ``running`` run that nothing runs, what it
    is. The stored status is not changed: ``--status running`` still finds it."""
    if run.status == durable.RunStatus.RUNNING and not run.has_live_owner():
        return WAITING_FOR_A_WORKER
    return str(run.status)


def show(
    run: durable.RunInfo,
    waits: list[durable.PendingWait],
    events: list[dict[str, Any]],
    children: list[durable.RunInfo],
    state: dict[str, Any],
    spend: str | None = None,
) -> None:
    print(f"run       {run.run_id}")
    print(f"workflow  {run.workflow} (version {run.version})")
    print(f"status    {status_text(run)}")
    if run.parent_run_id is not None:
        print(f"parent    {run.parent_run_id}")
    print(f"created   {moment(run.created_at)}    updated {moment(run.updated_at)}")
    if run.deadline is not None:
        print(f"deadline  {moment(run.deadline)}")
    print(f"input     {orjson.dumps(run.input).decode()}")
    if run.output is not None:
        print(f"output    {orjson.dumps(run.output).decode()}")
    if run.error is not None:
        error = run.error
        print(f"error     {error.get('code')} {error.get('type')}: {error.get('message')}")
    for wait in waits:
        options = ", ".join(f"{o['id']}={o['label']}" for o in wait.options or [])
        kind = f"{wait.input_type}: {options}" if options else wait.input_type
        due = "" if wait.deadline is None else f"  deadline {moment(wait.deadline)}"
        print(f"waiting   [{wait.wait_id}] {wait.question}  ({kind}){due}")
    if spend is not None:
        print(f"spend     {spend}")
    if state:
        print(f"state     {orjson.dumps(state).decode()}")
    if children:
        print("children")
        for child in children:
            print(f"  {child.run_id}  {child.workflow}  {child.status}")
    print("timeline (seconds after the run was created; #N is the call's position)")
    struck = _strike if sys.stdout.isatty() else str
    for entry in timeline(events):
        offset = (dt.datetime.fromisoformat(entry["at"]) - run.created_at).total_seconds()
        print(f"  +{offset:9.3f}s  #{entry['position']:<3} {struck(entry['what'])}")


def _strike(text: str) -> str:
    """``~~text~~`` struck out on a terminal (SGR 9)."""
    return re.sub(r"~~(.*?)~~", "\x1b[9m\\1\x1b[29m", text, flags=re.DOTALL)


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per durable call (and per message), with how long it took. Calls made
    together (``asyncio.gather``) start at the same moment: their positions tell them
    apart, and break ties in that order."""
    by_position: dict[int, list[dict[str, Any]]] = {}
    lines: list[dict[str, Any]] = stream_lines(events)
    charged = charges_by_position(events)
    for event in events:
        if event["superseded"] or family(event["kind"]) == STREAM:
            continue
        if event["kind"] == BUDGET_CHARGED:
            continue  # added to the line of the step that charged it
        if event["position"] is None:
            lines.append({"at": event["created_at"], "position": "-", "what": _unpositioned(event)})
        else:
            by_position.setdefault(event["position"], []).append(event)
    for position, group in by_position.items():
        what = _line(group)
        if position in charged:
            what += f", spent {spend_text(*charged[position])}"
        lines.append({"at": group[0]["created_at"], "position": position, "what": what})
    return sorted(lines, key=lambda line: (str(line["at"]), str(line["position"]).zfill(9)))


def stream_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per stream, not one per value: its values folded into one text (a
    stream of tokens reads as the text they make), the retracted ones (a step attempt
    that did not complete wrote them) struck out as ``~~text~~``, after the rest."""
    folds: dict[str, tuple[StreamFold, list[StreamItem], dict[str, Any]]] = {}
    closed: set[str] = set()
    for event in events:
        kind, name, position = event["kind"], event["name"], event["position"]
        if event["superseded"] and family(kind) == STREAM:
            continue  # workflow code's, superseded: its re-run writes it again
        if kind in (STREAM_VALUE, STREAM_CLOSED) and name not in folds:
            folds[name] = (StreamFold(name), [], event)
        if kind == STREAM_CLOSED:
            closed.add(name)
        for fold, items, _ in folds.values():
            if fold.concerns(kind, name, position):
                items += fold.take(event["seq"], kind, name, position, event["payload"])
    lines = []
    for key, (_, items, first) in folds.items():
        kept, retracted = kept_and_retracted(items)
        what = f"stream {key!r}: {_folded(kept)}"
        if retracted:
            what += f" ~~{_folded(retracted)}~~"
        counts = f"{len(kept)} value(s)" + (f", {len(retracted)} retracted" if retracted else "")
        what += f" ({counts}{', closed' if key in closed else ''})"
        position = "-" if first["position"] is None else first["position"]
        lines.append({"at": first["created_at"], "position": position, "what": what})
    return lines


_FOLDED_MOST = 400
"""Characters of a stream's folded text that ``durable show`` prints."""


def _folded(values: list[Any]) -> str:
    """Text values joined as they come (tokens), any others as JSON, shortened."""
    if all(isinstance(value, str) for value in values):
        text = orjson.dumps("".join(values)).decode()
    else:
        text = " ".join(orjson.dumps(value).decode() for value in values)
    if len(text) <= _FOLDED_MOST:
        return text
    return f"{text[:_FOLDED_MOST]}... ({len(text) - _FOLDED_MOST} more characters)"


def _line(group: list[dict[str, Any]]) -> str:
    """``_describe``, or the first event as stored when its payload is not of the shape
    its kind has (a journal written by hand, or damaged): shown, never a traceback. A
    budget question shares the position of the call it held back: that call is described,
    with how long the question held it."""
    try:
        gate = [event for event in group if is_gate(event["name"])]
        call = [event for event in group if not is_gate(event["name"])]
        if not gate:
            return _describe(group)
        if not call:
            return _held(gate)
        took = _seconds_between(gate[0], gate[-1])
        return f"{_describe(call)} (held {took:.3f}s by a budget question, then raised)"
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        first = group[0]
        return f"{first['kind']} {first['name']!r}: {orjson.dumps(first['payload']).decode()}"


def _held(gate: list[dict[str, Any]]) -> str:
    """A budget question whose call never started: open, stopped, or withdrawn (the call
    was cancelled). Shown as stored, whatever odd values it holds."""
    held = _object(_object(gate[0]["payload"]).get("budget"))
    unit = str(held.get("unit"))
    spent, cap = _object(held.get("spent")).get(unit), _object(held.get("cap")).get(unit)
    amounts = f"{spent} of {cap} {unit}"
    if unit == "usd" and all(isinstance(n, int | float) for n in (spent, cap)):
        amounts = f"${spent:.4f} of ${cap}"
    what = f"budget of run {held.get('run_id')} reached: {amounts}"
    if gate[-1]["kind"] != WAIT_COMPLETED:
        holder = held.get("run_id")
        return f"{what}; waiting (durable budget {holder} --{unit} N, or durable respond RUN stop)"
    answer = _object(gate[-1]["payload"])
    if answer.get("withdrawn"):
        return f"{what}; withdrawn: the call was cancelled while held"
    value = answer.get("value")
    said = repr(value) if isinstance(value, str) else orjson.dumps(value).decode()
    return f"{what}; answered {said}, the call did not start"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unpositioned(event: dict[str, Any]) -> str:
    if event["kind"] == MESSAGE:
        return f"message {event['name']!r} received: {orjson.dumps(event['payload']).decode()}"
    if event["kind"] == BUDGET_RAISED:
        caps = _object(event["payload"])
        return f"budget raised to usd {caps.get('usd')}, tokens {caps.get('tokens')}"
    if event["kind"] == RERUN:
        return f"re-run from position {event['payload']['position']}"
    return str(event["kind"])


def _seconds_between(first: dict[str, Any], last: dict[str, Any]) -> float:
    start = dt.datetime.fromisoformat(first["created_at"])
    return (dt.datetime.fromisoformat(last["created_at"]) - start).total_seconds()


def _describe(group: list[dict[str, Any]]) -> str:
    first, last = group[0], group[-1]
    kind = family(first["kind"])
    took = f"{_seconds_between(first, last):.3f}s"
    if kind == STEP:
        attempts = sum(1 for e in group if e["kind"] == STEP_STARTED)
        outcome = {STEP_COMPLETED: "completed", STEP_FAILED: "failed"}.get(last["kind"], "running")
        return f"step {first['name']}: {outcome} after {attempts} attempt(s), {took}"
    if kind == SLEEP:
        return f"sleep until {_local(first['payload']['wake_at'])}"
    if kind == WAIT:
        label = first["payload"].get("question") or f"event {first['name']!r}"
        deadline = first["payload"].get("deadline")
        due = "" if deadline is None else f" (deadline {_local(deadline)})"
        if last["kind"] == WAIT_COMPLETED:
            if last["payload"].get("timed_out"):
                return f"wait for {label}: timed out after {took}"
            value = orjson.dumps(last["payload"].get("value")).decode()
            return f"wait for {label}: got {value} after {took}"
        return f"wait for {label}: waiting{due}"
    if kind == CHILD:
        child = first["payload"]["run_id"]
        if last["kind"] == CHILD_COMPLETED:
            return f"child {child} ({first['name']}): {last['payload']['status']} after {took}"
        return f"child {child} ({first['name']}): started"
    if kind == EVENT:
        sent = "not sent: run ended or missing" if "error" in first["payload"] else "sent"
        return f"event {first['name']!r} to {first['payload']['run_id']}: {sent}"
    if kind == STATE:
        change = {STATE_SET: "set", STATE_DELETED: "deleted", STATE_CLEARED: "cleared"}
        return f"state {first['name']!r} {change.get(first['kind'], first['kind'])}"
    if kind == PATCH:
        return f"patched {first['name']!r}"
    if kind == FIRST:
        return f"first to finish: argument {first['payload']['index']}"
    return f"{first['name']} = {orjson.dumps(first['payload'].get('value')).decode()}"


def check_report(report: durable.CheckReport, modules: list[str]) -> None:
    if not modules:
        print(
            "(no --module given: runs were not replayed; pass the modules of the code to"
            " deploy to check that it still fits every unfinished run)"
        )
    if report.ok:
        print("ok: nothing needs a human")
        return
    for diverged in report.diverged_runs:
        print(
            f"diverged run      {diverged.run_id} ({diverged.workflow}, {diverged.status}):"
            f" {_departure(diverged)}"
        )
    for run in report.unregistered_runs:
        print(
            f"unknown workflow  {run.run_id}: {run.workflow} version {run.version} is not in"
            " the modules; keep it there until its runs end, or cancel them"
        )
    for step in report.interrupted_steps:
        again = " and was run again: its effect may have happened twice" if step.retried else ""
        print(
            f"interrupted step  run {step.run_id} position {step.position} {step.step!r}"
            f" attempt {step.attempt} started {moment(step.started_at)} never finished{again}"
        )
    for run in report.poison_runs:
        print(
            f"poison run        {run.run_id} ({run.workflow}): failed with RECOVERY_LIMIT, its"
            " process died each time it ran; fix the cause, then run durable resume"
        )
    for run in report.corrupt_runs:
        problem = run.unreadable or (run.error or {}).get("message")
        print(f"corrupt journal   {run.run_id} ({run.workflow}, {run.status}): {problem}")
    for run in report.orphaned_runs:
        print(
            f"orphaned run      {run.run_id} ({run.workflow}, {run.status}): its owner"
            " died and no live runtime has taken it over; start a worker with its workflow"
        )


def _departure(diverged: durable.DivergedRun) -> str:
    """Where the code departs from the run's journal, and what to do about it."""
    if diverged.position is None:
        return diverged.error
    return (
        f"at position {diverged.position} the journal has {diverged.expected} but this code"
        f" calls {diverged.received}; keep the old path behind ctx.patched(...) or deploy the"
        " change as a new workflow version (see docs: Deploying new code)"
    )
