"""``ctx.patched``: versioning a workflow's code while runs of the old code are in flight.

A patch is journaled where a run first reaches it under code that has it, so
the answer is fixed per run: a run whose journal already went past that point
without it keeps replaying the old branch.
"""

from __future__ import annotations

from durable._base.ids import check_name
from durable.journal.kinds import PATCH, PATCHED
from durable.workflow.calls import Calls


def patched(calls: Calls, seen: set[str], patch_id: str) -> bool:
    """True where the run reaches the patch under code that has it; ``seen`` holds the
    run's patch ids so far (each may be asked once)."""
    check_name("patch_id", patch_id)
    if patch_id in seen:
        raise ValueError(
            f"ctx.patched({patch_id!r}) was called twice in run {calls.host.run_id!r}; give"
            " each change its own patch id (its answer is fixed per run: keep it in a variable)"
        )
    seen.add(patch_id)
    journal = calls.host.journal
    events = journal.at(calls.next_position)
    if events and (events[0].kind != PATCHED or events[0].name != patch_id):
        return False  # the run went past this point under code without the patch
    position = calls.take(PATCH, patch_id)
    journal.settle(position)
    if not events:
        calls.host.append_nowait(position, PATCHED, patch_id, "{}")
    return True
