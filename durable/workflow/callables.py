"""What kind of callable a step is, and its name: functions, bound methods,
``functools.partial`` objects and objects with a ``__call__`` method alike.

A step's default name must be the same in every process (replay compares it),
so it never comes from ``repr`` (which holds an address): an object is named
after its class, a partial after the function it wraps.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def behind(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The function whose definition says how ``fn`` runs: a partial's function, an
    object's ``__call__`` (bound), or ``fn`` itself."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn) or isinstance(fn, type):
        return fn
    call = getattr(fn, "__call__", None)  # noqa: B004 - the bound method is wanted
    return call if call is not None else fn


def is_async(fn: Callable[..., Any]) -> bool:
    """``fn(...)`` returns a coroutine by its definition (``async def``, or marked so)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(behind(fn))


def is_async_generator(fn: Callable[..., Any]) -> bool:
    """``fn(...)`` returns an async generator by its definition."""
    return inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(behind(fn))


def callable_name(fn: Callable[..., Any]) -> str:
    """The name a step gets from its callable: a function's or method's qualified name,
    a partial's function's, an object's class's."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None)
    if isinstance(name, str) and name:
        return name
    return type(fn).__qualname__
