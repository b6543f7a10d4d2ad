from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
import subprocess
import sys
import typing
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Optional, Union, cast

import orjson
import pydantic
import pydantic.dataclasses
import pytest
import typing_extensions

import durable
from durable import SerializationError
from durable._base.codec import decode, encode

from .helpers import status_is


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


# -- timedelta, and what pydantic puts in JSON ------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(0), '"PT0S"'),
        (dt.timedelta(seconds=1.5), '"PT1.5S"'),
        (
            dt.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5),
            '"P1DT2H3M4.000005S"',
        ),
        (dt.timedelta(days=400), '"P400D"'),
        (-dt.timedelta(seconds=1.5), '"-PT1.5S"'),
        (dt.timedelta.max, '"P999999999DT23H59M59.999999S"'),
        (dt.timedelta.min, '"-P999999999D"'),
    ],
)
def test_a_timedelta_is_an_iso_duration_exact_to_the_microsecond(
    value: dt.timedelta, text: str
) -> None:
    assert encode(value) == text
    assert decode(text, dt.timedelta) == value
    assert pydantic.TypeAdapter(dt.timedelta).validate_json(text) == value  # pydantic reads it


@dataclasses.dataclass
class Timing:
    took: dt.timedelta
    laps: dict[str, dt.timedelta]
    best: Optional[dt.timedelta] = None  # noqa: UP045


def test_timedeltas_inside_dataclasses_and_containers_round_trip() -> None:
    timing = Timing(dt.timedelta(minutes=1), {"a": dt.timedelta(seconds=-2)}, dt.timedelta(0))
    assert decode(encode(timing), Timing) == timing
    # Read as pydantic writes one (years of 365 days), and as a number of seconds.
    assert decode('["P1Y2DT3S", "PT1,5S", 90, 0.25]', list[dt.timedelta]) == [
        dt.timedelta(days=367, seconds=3),
        dt.timedelta(seconds=1.5),
        dt.timedelta(seconds=90),
        dt.timedelta(seconds=0.25),
    ]
    with pytest.raises(SerializationError, match=r"ISO 8601 duration such as 'PT1\.5S'"):
        decode('"an hour"', dt.timedelta)


class Money(pydantic.BaseModel):
    amount: Decimal
    currency: str = pydantic.Field(alias="ccy")


class Cat(pydantic.BaseModel):
    kind: Literal["cat"] = "cat"
    lives: int


class Dog(pydantic.BaseModel):
    kind: Literal["dog"] = "dog"
    good: bool


class Call(pydantic.BaseModel):
    """A model with every kind of field pydantic puts in JSON that the issue named."""

    id: uuid.UUID
    at: dt.datetime
    duration: dt.timedelta
    cost: Money
    history: list[Money]
    pet: Annotated[Union[Cat, Dog], pydantic.Field(discriminator="kind")]  # noqa: UP007
    pets: list[Annotated[Cat | Dog, pydantic.Discriminator("kind")]]
    blob: bytes
    color: Color
    tags: frozenset[str]


CALL = Call(
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    at=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    duration=dt.timedelta(seconds=1.25),
    cost=Money(amount=Decimal("0.10"), ccy="EUR"),
    history=[Money(amount=Decimal(1), ccy="USD")],
    pet=Dog(good=True),
    pets=[Cat(lives=9), Dog(good=False)],
    blob=b"tokens",
    color=Color.BLUE,
    tags=frozenset({"a"}),
)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (CALL, Call),
        ([CALL, CALL], list[Call]),
        ({"call": CALL}, dict[str, Call]),
        (None, Optional[Call]),  # noqa: UP045
        (Dog(good=True), Annotated[Union[Cat, Dog], pydantic.Discriminator("kind")]),  # noqa: UP007
        (Money(amount=Decimal("2.50"), ccy="GBP"), Money),
    ],
)
def test_pydantic_values_round_trip_with_any_field_type(value: object, hint: object) -> None:
    assert decode(encode(value), hint) == value


def test_a_model_is_stored_as_model_dump_json_and_old_records_still_read() -> None:
    stored = encode(CALL)
    assert orjson.loads(stored) == CALL.model_dump(mode="json")  # the format is unchanged
    assert orjson.loads(stored)["duration"] == "PT1.25S"
    # An aliased model was written by field name; it reads back by name as by alias.
    assert decode('{"amount": "3", "currency": "EUR"}', Money) == Money(
        amount=Decimal(3), ccy="EUR"
    )
    assert decode('{"amount": "3", "ccy": "EUR"}', Money) == Money(amount=Decimal(3), ccy="EUR")
    with pytest.raises(SerializationError, match="cannot be read as"):
        decode('{"amount": "x", "ccy": "EUR"}', Money)


@pydantic.dataclasses.dataclass(
    config=pydantic.ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
)
class Binary:
    data: bytes
    media_type: str


@dataclasses.dataclass
class TextPart:
    content: str
    part_kind: Literal["text"] = "text"


@dataclasses.dataclass
class FilePart:
    content: Binary
    part_kind: Literal["file"] = "file"


@dataclasses.dataclass
class Response:
    """Shaped as pydantic-ai's ``ModelResponse``: a plain dataclass whose fields carry
    pydantic's annotations, a timedelta, and a pydantic dataclass holding bytes."""

    parts: Sequence[Annotated[TextPart | FilePart, pydantic.Discriminator("part_kind")]]
    timestamp: dt.datetime
    duration: Optional[dt.timedelta] = None  # noqa: UP045


def test_a_dataclass_with_pydantic_annotations_is_read_by_pydantic() -> None:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    text_only = Response([TextPart("hi")], at, dt.timedelta(milliseconds=1500))
    assert decode(encode(text_only), Response) == text_only
    assert '"duration":"PT1.5S"' in encode(text_only)
    # Bytes that are not UTF-8, as the pydantic dataclass's own config writes them.
    with_file = Response([TextPart("a"), FilePart(Binary(b"\xff\x00", "image/png"))], at)
    stored = encode(with_file)
    assert '"data":"_wA="' in stored
    assert decode(stored, Response) == with_file
    assert decode(encode([with_file]), list[Response]) == [with_file]
    # Beside it, a plain dataclass is written as ever (orjson's form), not by pydantic.
    both = orjson.loads(encode([ORDER, Binary(b"\xff", "x")]))
    assert both == [orjson.loads(encode(ORDER)), {"data": "_w==", "media_type": "x"}]


def test_pydantic_ai_messages_round_trip() -> None:
    messages = pytest.importorskip("pydantic_ai.messages")
    response = messages.ModelResponse(
        parts=[
            messages.TextPart("hello"),
            messages.ToolCallPart("refund", {"cents": 500}, tool_call_id="c1"),
            messages.FilePart(messages.BinaryContent(b"\x89PNG\xff", media_type="image/png")),
        ],
        model_name="offline",
        timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        duration=dt.timedelta(seconds=2.5),
    )
    request = messages.ModelRequest(parts=[messages.UserPromptPart("refund order 7")])
    history = [request, response]
    # What pydantic-ai's own round trip gives (it narrows BinaryContent to BinaryImage).
    adapter = messages.ModelMessagesTypeAdapter
    expected = adapter.validate_json(adapter.dump_json(history))
    back = decode(encode(response), messages.ModelResponse)
    assert back == expected[1] and back.duration == dt.timedelta(seconds=2.5)
    assert decode(encode(history), cast(Any, list)[messages.ModelMessage]) == expected


def test_openai_output_items_round_trip() -> None:
    responses = pytest.importorskip("openai.types.responses")
    items = [
        responses.ResponseOutputMessage(
            id="m1",
            content=[responses.ResponseOutputText(annotations=[], text="hi", type="output_text")],
            role="assistant",
            status="completed",
            type="message",
        ),
        responses.ResponseFunctionToolCall(
            arguments="{}", call_id="c1", name="refund", type="function_call"
        ),
    ]
    assert decode(encode(items), cast(Any, list)[responses.ResponseOutputItem]) == items


def test_pydantic_stays_optional() -> None:
    """Without pydantic the codec neither imports it nor needs it, timedeltas included."""
    script = """
import dataclasses, datetime as dt, sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pydantic", "pydantic_core"):
            raise ImportError("pydantic is not installed")
sys.meta_path.insert(0, NotInstalled())
from durable._base.codec import decode, encode
@dataclasses.dataclass
class Timing:
    took: dt.timedelta
value = Timing(dt.timedelta(seconds=3))
assert decode(encode(value), Timing) == value
assert decode(encode([value]), list[Timing]) == [value]
try:
    encode(b"raw")
except Exception as exc:
    assert type(exc).__name__ == "SerializationError", exc
assert "pydantic" not in sys.modules
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(durable.__file__).parent.parent)},
    )
    assert done.stdout.strip() == "ok", done.stderr


class Usage(pydantic.BaseModel):
    tokens: int
    duration: dt.timedelta


async def model_request(prompt: str) -> Usage:
    return Usage(tokens=len(prompt), duration=dt.timedelta(milliseconds=250))


async def test_a_step_returning_a_model_with_a_timedelta_is_typed_on_every_run(db: Path) -> None:
    seen: list[object] = []

    @durable.workflow(name="codec.model_timedelta")
    async def agent(ctx: durable.WorkflowContext) -> int:
        usage = await ctx.step(model_request, "hello")
        seen.append((type(usage).__name__, usage.duration))
        await ctx.wait_for_event("go")
        return usage.tokens

    async with durable.Runtime(db) as rt:
        await rt.start(agent, run_id="m")
        await status_is(rt, "m", "waiting")
    async with durable.Runtime(db) as rt:  # replayed: the result comes from the journal
        await rt.send_event("m", "go")
        assert await rt.handle("m").result(timeout=10) == 5
    assert seen == [("Usage", dt.timedelta(milliseconds=250))] * 2


class _Shipment(typing.TypedDict):
    order: str
    at: dt.datetime


class _Parcel(typing_extensions.TypedDict):
    order: str
    at: dt.datetime


@pytest.mark.parametrize("hint", [_Shipment, _Parcel])
def test_typed_dicts_of_typing_and_typing_extensions_round_trip(hint: type) -> None:
    """typing's TypedDict (pydantic refuses it before Python 3.12) and typing_extensions'
    both read back with their fields shaped by their annotations."""
    value = {"order": "o-1", "at": dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)}
    assert decode(encode(value), hint) == value


def test_a_type_pydantic_cannot_describe_is_a_serialization_error() -> None:
    class Opaque:
        @classmethod
        def __get_pydantic_core_schema__(cls, source: object, handler: object) -> object:
            raise pydantic.PydanticUserError("no schema for Opaque", code=None)

    with pytest.raises(SerializationError, match="cannot be read as"):
        decode(encode({"x": 1}), Opaque)
