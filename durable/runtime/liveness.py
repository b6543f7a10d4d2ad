"""Whether the runtime that holds a lease is a process known dead here, so its runs can be
taken at once instead of when its lease lapses.

Hostname and pid do not tell processes apart: containers share hostnames and
each pid namespace reuses the same pids. A runtime's name carries what does:
the kernel's boot id and the pid namespace (together, "the same process table")
and the process's start time (a reused pid starts later). Only a runtime whose
name shows the same process table as ours can be proven dead, by a pid that no
longer exists or that now names a process started at another time; any other
is alive until its lease lapses.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

HOST = socket.gethostname()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22),
    or None where there is no such process or no ``/proc``."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


def _process_table() -> str | None:
    """A short name for this process table: the boot id and the pid namespace."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    if boot is None:
        return None
    return hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:12]


TABLE = _process_table()


def runtime_name(tag: str) -> str:
    """A new runtime's name: host, pid, the process table and start time (where this
    system tells them), and ``tag`` to tell runtimes of one process apart."""
    pid = os.getpid()
    started = _started(pid)
    if TABLE is None or started is None:
        return f"{HOST}:{pid}:{tag}"
    return f"{HOST}:{pid}:{TABLE}:{started}:{tag}"


def is_dead(owner: str) -> bool:
    """True when ``owner`` names a process of this process table that no longer runs."""
    parts = owner.split(":")
    if len(parts) != 5 or TABLE is None:
        return False  # another system, an older name, or a chosen identity: its lease tells
    _, pid_text, table, started, _ = parts
    if table != TABLE or not pid_text.isdigit():
        return False
    now_started = _started(int(pid_text))
    if now_started is None:  # gone, or hidden from us (/proc mounted hidepid)
        return not _exists(int(pid_text))
    return now_started != started


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
