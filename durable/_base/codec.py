"""JSON encoding with orjson, and decoding shaped by type hints.

Every stored value goes through ``encode``; every value a workflow receives
comes back through ``decode`` with the annotation of the function that
produced it, so a step returns the same type on its first run and on replay.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import inspect
import json
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson
import typing_extensions

from durable._base import pydantic_json
from durable._base.durations import duration_text, parse_duration
from durable.errors import SerializationError

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):  # tuple: NamedTuple subclasses
        return list(value)
    if isinstance(value, dt.timedelta):
        return duration_text(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic v2, without importing it
        return model_dump(mode="json")
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable")


def _default_by_fields(value: Any) -> Any:
    """``_default``, also given every dataclass: one whose fields pydantic annotates is
    written by pydantic, any other as orjson writes one."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if pydantic_json.wants(type(value)):
            return pydantic_json.dump(value)
        if hasattr(value, "__dict__"):
            return {k: v for k, v in vars(value).items() if not k.startswith("_")}
        return {
            f.name: getattr(value, f.name)
            for f in dataclasses.fields(value)
            if not f.name.startswith("_")
        }
    return _default(value)


def _dumps(value: Any, option: int) -> bytes:
    """orjson's JSON for ``value``. What it cannot write (``TypeError``) is tried again
    with each dataclass handed over, when pydantic is in use: a pydantic dataclass
    inside one (pydantic-ai's ``BinaryContent`` in a ``ModelResponse``) writes its
    fields its own way."""
    try:
        return orjson.dumps(value, default=_default, option=option)
    except TypeError:
        _refuse_big_int(value)
        if not pydantic_json.in_use():
            raise
    option |= orjson.OPT_PASSTHROUGH_DATACLASS
    return orjson.dumps(value, default=_default_by_fields, option=option)


def encode(value: Any, limit: int | None = None) -> str:
    """JSON text for ``value``; ``SerializationError`` if unstorable or over ``limit`` bytes."""
    try:
        data = _dumps(value, _OPTIONS)
    except TypeError as exc:
        raise SerializationError(
            f"cannot store a value of type {_type_name(value)} as JSON ({exc}); return"
            " JSON-ready data, a dataclass, Enum, datetime, timedelta, UUID, Decimal or"
            " pydantic model"
        ) from None
    # orjson writes NaN and infinity as null: refuse them instead of losing them. Only
    # text with a null in it can hold one, so only that is looked through.
    if b"null" in data and _has_non_finite(value):
        raise SerializationError(
            f"a value of type {_type_name(value)} holds NaN or infinity, which JSON cannot"
            " store; return None, a string or a finite number in its place"
        )
    if limit is not None and len(data) > limit:
        raise SerializationError(
            f"a value of type {_type_name(value)} is {len(data)} bytes as JSON, over the"
            f" limit of {limit}; store a reference (a path, a URL, an id) instead, or raise"
            " Runtime(max_value_bytes=...)"
        )
    return data.decode()


INT_RANGE = range(-(2**63), 2**64)
"""The integers JSON values keep exactly here (orjson's range: int64 and uint64)."""


def _refuse_big_int(value: Any) -> None:
    """``SerializationError`` naming the place of an integer in ``value`` beyond 64 bits,
    if it holds one: such a number is refused, never stored as a float."""
    found = _big_int(value, [])
    if found is None:
        return
    number, path = found
    place = _place(path)
    digits = len(number.lstrip("-"))
    shown = number if digits <= 40 else f"{number[:20]}... ({digits} digits)"
    raise SerializationError(
        f"the integer {shown}{f' at {place}' if place else ''} is beyond 64 bits (64-bit"
        f" integers go from {INT_RANGE.start} to {INT_RANGE.stop - 1}): JSON numbers keep"
        " no more here, and durable never rounds it to a float; store it as a string or a"
        " Decimal"
    )


class _BigInt(str):
    """An integer beyond 64 bits in JSON text, kept as its digits (``loads_input``)."""


def _exact_int(text: str) -> int | _BigInt:
    digits = len(text.lstrip("-"))
    if digits < 19 or (digits <= 20 and int(text) in INT_RANGE):
        return int(text)
    return _BigInt(text)


def _big_int(value: Any, path: list[str | int]) -> tuple[str, list[str | int]] | None:
    """The first integer beyond 64 bits in ``value`` (its digits) and the keys and
    indexes to it."""
    if isinstance(value, _BigInt):
        return value, path
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value in INT_RANGE else (_digits(value), path)
    items: Any = ()
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    elif isinstance(value, (set, frozenset)):
        items = ((None, item) for item in value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    for key, item in items:
        if isinstance(key, int) and not isinstance(key, bool) and key not in INT_RANGE:
            return _digits(key), [*path, _KEY]
        found = _big_int(item, path if key is None else [*path, key])
        if found is not None:
            return found
    return None


def _digits(number: int) -> str:
    """Its decimal digits, or its size where Python refuses to write so many."""
    try:
        return str(number)
    except ValueError:
        return f"of {number.bit_length()} bits"


_KEY = "(a key)"


def _place(path: list[str | int]) -> str:
    """``args[0]['n']``: a top-level name bare, the keys and indexes under it bracketed
    (and a dict key that is the integer itself marked so)."""
    key = path[-1] == _KEY if path else False
    steps = path[:-1] if key else path
    if steps and isinstance(steps[0], str) and steps[0].isidentifier():
        text = steps[0] + "".join(f"[{step!r}]" for step in steps[1:])
    else:
        text = "".join(f"[{step!r}]" for step in steps)
    return f"{text or 'the top'} {_KEY}" if key else text


def loads_input(text: str | bytes) -> Any:
    """JSON given from outside (an HTTP body, the command line), parsed as ``loads`` does,
    but an integer beyond 64 bits is refused (``SerializationError`` naming its place)
    where orjson would turn it into a float; ``ValueError`` if it is not JSON."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        _find_big_int(text)  # orjson takes one past the range of a double for bad JSON
        raise
    _find_big_int(text)
    return value


def _find_big_int(text: str | bytes) -> None:
    # Every integer out of range has 19 digits or more: only such text is read again,
    # with Python's exact integers, to find one.
    if _LONG_DIGITS.search(text if isinstance(text, bytes) else text.encode()):
        try:
            exact = json.loads(text, parse_int=_exact_int)
        except ValueError:
            return
        _refuse_big_int(exact)


_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_non_finite(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_non_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return _has_non_finite(model_dump())
    return False


def canonical(value: Any) -> str:
    """JSON text with sorted keys: equal values give equal text (for digests)."""
    try:
        return _dumps(value, _OPTIONS | orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise SerializationError(f"cannot store {_type_name(value)} as JSON: {exc}") from None


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def decode(text: str, hint: Any = Any) -> Any:
    """Parse JSON text and shape it as ``hint``."""
    return convert(orjson.loads(text), hint)


def return_hint(fn: Callable[..., Any]) -> Any:
    """The return annotation of ``fn``, or ``Any``."""
    return _hints(fn).get("return", Any)


def parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The annotations of ``fn``'s parameters (a read-only, cached mapping)."""
    return {name: hint for name, hint in _hints(fn).items() if name != "return"}


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s type hints, cached by its code and annotations, so that closures made
    anew for each call share an entry and none of them (nor what they captured) is
    kept alive; callers must not change the dict."""
    inner = inspect.unwrap(fn)
    code = getattr(inner, "__code__", None)
    try:
        key = (code, tuple(getattr(inner, "__annotations__", {}).items()))
        hints = _HINTS.get(key) if code is not None else None
    except TypeError:  # an unhashable annotation
        return _lookup_hints(fn)
    if hints is None:
        hints = _lookup_hints(fn)
        if code is not None:
            if len(_HINTS) >= 4096:
                _HINTS.clear()
            _HINTS[key] = hints
    return hints


_HINTS: dict[Any, dict[str, Any]] = {}


def _lookup_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:  # with Annotated's extras: pydantic's (a discriminator) shape what is read
        return typing.get_type_hints(inspect.unwrap(fn), include_extras=True)
    except Exception:
        return {}


def _type_name(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def convert(obj: Any, hint: Any) -> Any:
    """Shape the JSON value ``obj`` as the type ``hint`` describes."""
    try:
        return _convert(obj, hint)
    except SerializationError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise SerializationError(
            f"stored value {obj!r:.80} cannot be read as {_hint_name(hint)}: {exc}"
        ) from None


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__qualname__", None) or repr(hint)


_SCALARS: dict[Any, Callable[[Any], Any]] = {
    dt.datetime: dt.datetime.fromisoformat,
    dt.date: dt.date.fromisoformat,
    dt.time: dt.time.fromisoformat,
    uuid.UUID: uuid.UUID,
    Decimal: lambda v: Decimal(str(v)),
}


_AS_IS = frozenset({int, str, float, bool})
"""JSON scalars that already are what their own type asks for."""


def _convert(obj: Any, hint: Any) -> Any:
    if hint is Any or hint is object or hint is inspect.Parameter.empty:
        return obj
    if type(obj) is hint and hint in _AS_IS:
        return obj
    if hint is None or hint is type(None):
        if obj is not None:
            raise TypeError("expected null")
        return None
    if pydantic_json.wants(hint):
        return pydantic_json.validate(obj, hint)
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _convert(obj, typing.get_args(hint)[0])
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(obj, typing.get_args(hint))
    if origin is typing.Literal:
        if obj not in typing.get_args(hint):
            raise ValueError(f"{obj!r} is not one of {typing.get_args(hint)}")
        return obj
    if origin is not None:
        return _convert_generic(obj, origin, typing.get_args(hint))
    if isinstance(hint, typing.TypeVar):
        return obj
    if not isinstance(hint, type):
        return obj
    if typing_extensions.is_typeddict(hint):
        return _convert_typed_dict(obj, hint)
    return _convert_class(obj, hint)


def _convert_typed_dict(obj: Any, hint: type) -> dict[str, Any]:
    """A JSON object as a TypedDict pydantic does not read: each field by its annotation."""
    if not isinstance(obj, dict):
        raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
    fields = typing.get_type_hints(hint)
    return {key: _convert(value, fields.get(key, Any)) for key, value in obj.items()}


def _convert_union(obj: Any, arms: tuple[Any, ...]) -> Any:
    if obj is None and type(None) in arms:
        return None
    errors = []
    for arm in arms:
        if arm is type(None):
            continue
        try:
            return _convert(obj, arm)
        except (TypeError, ValueError, KeyError, SerializationError) as exc:
            errors.append(str(exc))
    raise TypeError(f"matches no member of the union ({'; '.join(errors)})")


def _convert_generic(obj: Any, origin: Any, args: tuple[Any, ...]) -> Any:
    if origin in (list, set, frozenset, Sequence, typing.Sequence, tuple):
        if not isinstance(obj, list):
            raise TypeError(f"expected a JSON array, got {type(obj).__name__}")
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0]) for v in obj)
            if len(args) != len(obj):
                raise ValueError(f"expected {len(args)} items, got {len(obj)}")
            return tuple(_convert(v, a) for v, a in zip(obj, args, strict=True))
        item = args[0] if args else Any
        items = [_convert(v, item) for v in obj]
        return items if origin in (list, Sequence, typing.Sequence) else origin(items)
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(obj, dict):
            raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
        key, value = args if args else (Any, Any)
        return {_convert_key(k, key): _convert(v, value) for k, v in obj.items()}
    if isinstance(origin, type):
        return _convert_class(obj, origin)
    return obj


def _convert_key(key: str, hint: Any) -> Any:
    if hint in (int, float, Decimal, uuid.UUID) or (
        isinstance(hint, type) and issubclass(hint, enum.Enum)
    ):
        try:
            return _convert(hint(key) if hint in (int, float) else key, hint)
        except (TypeError, ValueError):
            pass
    return _convert(key, hint)


def _convert_class(obj: Any, cls: type) -> Any:
    if cls is bool:
        if not isinstance(obj, bool):
            raise TypeError(f"expected a boolean, got {type(obj).__name__}")
        return obj
    if cls is int:
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise TypeError(f"expected an integer, got {type(obj).__name__}")
        return obj
    if cls is float:
        if isinstance(obj, bool) or not isinstance(obj, (int, float)):
            raise TypeError(f"expected a number, got {type(obj).__name__}")
        return float(obj)
    if cls is str:
        if not isinstance(obj, str):
            raise TypeError(f"expected a string, got {type(obj).__name__}")
        return obj
    if issubclass(cls, enum.Enum):
        return cls(obj)
    for scalar in (dt.datetime, dt.date, dt.time, uuid.UUID, Decimal):
        if issubclass(cls, scalar):
            return obj if isinstance(obj, cls) else _SCALARS[scalar](obj)
    if issubclass(cls, dt.timedelta):
        return obj if isinstance(obj, cls) else parse_duration(obj)
    if dataclasses.is_dataclass(cls):
        return _convert_dataclass(obj, cls)
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):  # NamedTuple
        hints = typing.get_type_hints(cls)
        return cls(*(_convert(v, hints.get(f, Any)) for f, v in zip(cls._fields, obj, strict=True)))
    if cls in (list, dict, tuple, set, frozenset):
        return _convert_generic(obj, cls, ())
    if isinstance(obj, cls):
        return obj
    raise TypeError(f"expected {cls.__qualname__}, got {type(obj).__name__}")


def _convert_dataclass(obj: Any, cls: type) -> Any:
    if not isinstance(obj, dict):
        raise TypeError(f"expected a JSON object for {cls.__qualname__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.init and field.name in obj:
            values[field.name] = _convert(obj[field.name], hints.get(field.name, Any))
    return cls(**values)
