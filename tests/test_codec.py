from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple, Optional, Union

import pydantic
import pytest

import durable
from durable import SerializationError
from durable._base.codec import decode, encode


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Item:
    sku: str
    price: Decimal
    color: Color


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    placed: dt.datetime
    due: dt.date
    items: list[Item]
    note: Optional[str] = None  # noqa: UP045 - the old spelling must work too


class Point(NamedTuple):
    x: int
    y: int


class Model(pydantic.BaseModel):
    name: str
    when: dt.datetime


ORDER = Order(
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    placed=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    due=dt.date(2026, 2, 1),
    items=[Item("a", Decimal("19.99"), Color.RED), Item("b", Decimal("0.10"), Color.BLUE)],
)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (ORDER, Order),
        ((1, "a", 2.5), tuple[int, str, float]),
        ((1, 2, 3), tuple[int, ...]),
        ({1: Color.RED}, dict[int, Color]),
        ([Point(1, 2)], list[Point]),
        (Model(name="m", when=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)), Model),
        (None, Optional[Item]),  # noqa: UP045
        (Item("x", Decimal(1), Color.RED), Union[int, Item]),  # noqa: UP007
        (7, int | Item),
        ({"a", "b"}, frozenset[str]),
        (dt.time(12, 30), dt.time),
    ],
)
def test_round_trip(value: object, hint: object) -> None:
    assert decode(encode(value), hint) == value


def test_decode_without_hint_gives_json_data() -> None:
    assert decode(encode(ORDER)) == {
        "id": "12345678-1234-5678-1234-567812345678",
        "placed": "2026-01-02T03:04:05+00:00",
        "due": "2026-02-01",
        "items": [
            {"sku": "a", "price": "19.99", "color": "red"},
            {"sku": "b", "price": "0.10", "color": "blue"},
        ],
        "note": None,
    }


def test_unstorable_value_names_its_type() -> None:
    with pytest.raises(SerializationError, match=r"object"):
        encode(object())


def test_value_of_the_wrong_shape_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="cannot be read as"):
        decode(encode({"sku": "a"}), Item)
    with pytest.raises(SerializationError):
        decode(encode("text"), int)


@dataclasses.dataclass
class Reading:
    value: float


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        {"a": [1.0, float("nan")]},
        (1, float("inf")),
        Reading(float("nan")),
    ],
)
def test_nan_and_infinity_are_refused_not_stored_as_null(value: object) -> None:
    with pytest.raises(SerializationError, match="NaN or infinity"):
        encode(value)


def test_null_and_finite_floats_still_store() -> None:
    assert encode({"a": None, "b": 1.5, "c": [None]}) == '{"a":null,"b":1.5,"c":[null]}'


async def test_a_step_returning_nan_fails_on_the_first_run(tmp_path: Path) -> None:
    @durable.workflow(name="codec.nan")
    async def measure(ctx: durable.WorkflowContext, scale: float) -> object:
        return await ctx.step("measure", lambda: scale * float("nan"))  # no annotation

    async with durable.Runtime(tmp_path / "journal.db") as rt:
        with pytest.raises(durable.WorkflowFailed, match="NaN or infinity"):
            await (await rt.start(measure, 1.0)).result(timeout=5)
        with pytest.raises(SerializationError, match="NaN or infinity"):
            await rt.start(measure, float("inf"))  # refused before anything is written
        assert len(await rt.list_runs()) == 1

        async def annotated() -> float:
            return float("nan")

        @durable.workflow(name="codec.nan_annotated")
        async def measure_annotated(ctx: durable.WorkflowContext) -> float:
            return await ctx.step("measure", annotated)

        with pytest.raises(durable.WorkflowFailed, match="NaN or infinity"):
            await (await rt.start(measure_annotated)).result(timeout=5)
