"""pydantic's own JSON for the values and annotations that need it.

A pydantic model, a pydantic dataclass, a ``TypedDict``, or a dataclass whose
fields carry pydantic's annotations (a discriminated union, a field alias, as
pydantic-ai's messages do) is read back by pydantic, which knows every field
type it can put in JSON. pydantic stays optional: nothing here imports it
unless it is already imported, as a value or annotation that needs it cannot
exist before it is.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import orjson
import typing_extensions


def in_use() -> bool:
    """pydantic has been imported (by the application or a library it uses)."""
    return sys.modules.get("pydantic") is not None


def wants(hint: Any) -> bool:
    """Whether values of ``hint`` are read back by pydantic rather than by the codec's
    own rules."""
    if not in_use():
        return False
    return _remembered(_WANTS, hint, lambda: _wants(hint, set()))


def _wants(hint: Any, seen: set[int]) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        inner, *metadata = typing.get_args(hint)
        return any(_from_pydantic(item) for item in metadata) or _wants(inner, seen)
    if origin is typing.Literal:
        return False
    if origin is not None:
        return any(_wants(arg, seen) for arg in typing.get_args(hint) if arg is not Ellipsis)
    if not isinstance(hint, type) or id(hint) in seen:
        return False
    if _pydantic_class(hint) or _typed_dict_pydantic_reads(hint):
        return True
    if dataclasses.is_dataclass(hint) or (issubclass(hint, tuple) and hasattr(hint, "_fields")):
        seen.add(id(hint))
        try:
            fields = typing.get_type_hints(hint, include_extras=True)
        except Exception:  # names it cannot resolve: the codec's own rules read it
            return False
        return any(_wants(field, seen) for field in fields.values())
    return False


def _typed_dict_pydantic_reads(cls: type) -> bool:
    """A TypedDict of typing_extensions', or of typing's from Python 3.12 on: pydantic
    refuses typing's own before (the codec reads those by their annotations)."""
    if not typing_extensions.is_typeddict(cls):
        return False
    return sys.version_info >= (3, 12) or not typing.is_typeddict(cls)


def _pydantic_class(cls: type) -> bool:
    """A model, a pydantic dataclass, or a type that gives pydantic its own schema."""
    return any(
        hasattr(cls, name)
        for name in (
            "__pydantic_validator__",
            "__pydantic_core_schema__",
            "__get_pydantic_core_schema__",
        )
    )


def _from_pydantic(item: Any) -> bool:
    """An ``Annotated`` entry of pydantic's (``Field``, ``Discriminator``, ``Tag``, a
    validator) or of ``annotated_types`` (``Gt``, ``MaxLen``), which pydantic applies."""
    module = type(item).__module__ or ""
    return module.partition(".")[0] in ("pydantic", "pydantic_core", "annotated_types")


def validate(obj: Any, hint: Any) -> Any:
    """The JSON value ``obj`` read as ``hint`` by pydantic in JSON mode (the inverse of
    ``model_dump(mode="json")``); fields are taken by alias or by name, so an aliased
    model reads back whichever way it was written. ``ValueError`` if it does not fit."""
    try:
        adapter = _adapter(hint)
    except Exception as exc:  # pydantic cannot describe the type (PydanticUserError)
        raise TypeError(f"pydantic cannot read this type: {exc}") from None
    return adapter.validate_json(orjson.dumps(obj), **_both_names())


def dump(value: Any) -> Any:
    """``value`` (a dataclass instance) as JSON data by pydantic: by the annotations of
    its fields, so a nested pydantic type writes itself its own way (bytes as base64,
    if its config says so)."""
    return _adapter(type(value)).dump_python(value, mode="json")


def _adapter(hint: Any) -> Any:
    def build() -> Any:
        import pydantic

        return pydantic.TypeAdapter(hint)

    return _remembered(_ADAPTERS, hint, build)


T = TypeVar("T")

_WANTS: dict[Any, bool] = {}
_ADAPTERS: dict[Any, Any] = {}
_KEPT = 1024
"""How many hints each cache keeps: a bound, as classes made anew (a test's, a
closure's) would otherwise be kept alive by it."""


def _remembered(cache: dict[Any, T], hint: Any, work: Callable[[], T]) -> T:
    """``work()``, kept in ``cache`` under ``hint`` (done anew for an unhashable one)."""
    try:
        return cache[hint]
    except KeyError:
        pass
    except TypeError:
        return work()
    if len(cache) >= _KEPT:
        cache.clear()
    found = cache[hint] = work()
    return found


@cache
def _both_names() -> dict[str, bool]:
    """``by_alias=True, by_name=True`` where pydantic takes them (2.11 and later)."""
    import pydantic

    parameters = inspect.signature(pydantic.TypeAdapter.validate_json).parameters
    return {"by_alias": True, "by_name": True} if "by_name" in parameters else {}
