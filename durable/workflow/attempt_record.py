"""What a step attempt journals for people, beyond what replay needs: the arguments it
was called with, and a failed attempt's traceback.

Replay never reads these (old journals lack them); the web view and ``rt.history``
show them. Neither may fail a step: arguments that cannot be stored as JSON, or are
over the size limit, are kept as a shortened ``repr``; a traceback is cut to its end.
"""

from __future__ import annotations

import reprlib
import sysconfig
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from durable._base.codec import encode
from durable.errors import SerializationError

TRACEBACK_CHARS = 16_000
"""The most characters of a traceback journaled (its end, where the error was raised)."""

REPR_CHARS = 2_000
"""The most characters of the ``repr`` kept for arguments that cannot be stored as JSON."""

_PACKAGE = str(Path(__file__).resolve().parent.parent)
_STDLIB = sysconfig.get_paths()["stdlib"]

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 200
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 20
_short.maxlevel = 4


def started_payload(
    attempt: int, args: Sequence[Any], kwargs: dict[str, Any], limit: int | None
) -> str:
    """The ``step.started`` payload: the attempt's number and, when the step takes
    arguments, ``input`` (``{"args", "kwargs"}`` as stored JSON) or, when they cannot
    be stored within ``limit`` bytes, ``input_repr`` (text)."""
    if not args and not kwargs:
        return f'{{"attempt":{attempt}}}'
    try:
        text = encode({"args": list(args), "kwargs": kwargs}, limit)
    except Exception as exc:  # whatever a value's own conversion raises: not the step's failure
        shown = _bounded_repr(args, kwargs)
        why = _culprit(args, kwargs, exc)
        return encode({"attempt": attempt, "input_repr": shown, "input_error": why[:500]})
    return f'{{"attempt":{attempt},"input":{text}}}'


def _culprit(args: Sequence[Any], kwargs: dict[str, Any], error: Exception) -> str:
    """Which argument could not be stored, and why (or the whole call's error, when
    each one alone can be: together they are over the size limit)."""
    named = [(f"argument {i + 1}", value) for i, value in enumerate(args)]
    named += [(f"argument {key!r}", value) for key, value in kwargs.items()]
    for name, value in named:
        try:
            encode(value)
        except Exception as exc:
            return f"{name}: {exc}"
    return str(error) if isinstance(error, SerializationError) else repr(error)


def _bounded_repr(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    parts = []
    try:
        parts = [_short.repr(arg) for arg in args]
        parts += [f"{key}={_short.repr(value)}" for key, value in kwargs.items()]
    except Exception as exc:  # a __repr__ that raises is the user's, not ours to fail on
        parts.append(f"<repr failed: {type(exc).__name__}>")
    text = f"({', '.join(parts)})"
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 3] + "..."


def traceback_text(exc: BaseException, limit: int | None = None) -> str:
    """``exc``'s traceback as text, from the first frame outside ``durable`` (the step's
    own code) on, cut to its last ``TRACEBACK_CHARS`` characters (fewer with a smaller
    ``limit``, the runtime's ``max_value_bytes``)."""
    tb = _from_user_code(exc.__traceback__)
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception as failure:  # a __str__ that raises: say so rather than fail the step
        text = f"{type(exc).__name__}: <the traceback could not be formatted: {failure!r}>"
    most = TRACEBACK_CHARS if limit is None else max(200, min(TRACEBACK_CHARS, limit // 4))
    if len(text) <= most:
        return text
    return f"... ({len(text) - most} characters cut)\n" + text[-most:]


def _from_user_code(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from its first frame that is neither ``durable``'s nor the standard
    library's (asyncio, a worker thread); all of it if there is none."""
    frame = tb
    while frame is not None:
        filename = frame.tb_frame.f_code.co_filename
        stdlib = filename.startswith(_STDLIB) and "-packages" not in filename
        if not filename.startswith(_PACKAGE) and not stdlib:
            return frame
        frame = frame.tb_next
    return tb
