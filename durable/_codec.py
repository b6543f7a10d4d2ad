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
import math
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from .errors import SerializationError

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):  # tuple: NamedTuple subclasses
        return list(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic v2, without importing it
        return model_dump(mode="json")
    raise TypeError(f"{type(value).__qualname__} is not JSON serializable")


def encode(value: Any, limit: int | None = None) -> str:
    """JSON text for ``value``; ``SerializationError`` if unstorable or over ``limit`` bytes."""
    try:
        data = orjson.dumps(value, default=_default, option=_OPTIONS)
    except TypeError as exc:
        raise SerializationError(
            f"cannot store a value of type {_type_name(value)} as JSON ({exc}); return"
            " JSON-ready data, a dataclass, Enum, datetime, UUID, Decimal or pydantic model"
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
        return orjson.dumps(
            value, default=_default, option=_OPTIONS | orjson.OPT_SORT_KEYS
        ).decode()
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
    try:
        return typing.get_type_hints(inspect.unwrap(fn))
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
    return _convert_class(obj, hint)


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
    if dataclasses.is_dataclass(cls):
        return _convert_dataclass(obj, cls)
    validate = getattr(cls, "model_validate", None)
    if callable(validate):  # pydantic v2
        return validate(obj)
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
