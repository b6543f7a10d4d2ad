"""Log records: the run's fields on every record, ``ctx.logger`` quiet on replay, and the
worker's one line per run start and end (as text, or one JSON object per line)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import orjson
import pytest

import durable
from durable.testing import crash

from .processes import durable_process


@durable.step
async def noted(n: int) -> int:
    logging.getLogger("durable").info("inside the step")
    return n + 1


@durable.workflow
async def chatty(ctx: durable.WorkflowContext, n: int) -> int:
    ctx.logger.info("asking about %s", n)
    answer = await ctx.wait_for_user("go on?")
    ctx.logger.info("told %s", answer)
    return await noted(n)


@durable.workflow
async def crashing(ctx: durable.WorkflowContext) -> None:
    raise KeyError("missing")


def records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if text in record.getMessage()]


async def test_ctx_logger_logs_each_line_once_across_a_crash_and_replays(
    db: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    rt = durable.Runtime(db, always_replay=True)  # rebuilt from the journal at every wait
    await rt.open()
    try:
        await rt.start(chatty, 1, run_id="chat")
        await rt.wait_for_question("chat", timeout=10)
        rt = await crash(rt)
        await rt.wait_for_question("chat", timeout=10)
        await rt.respond("chat", "yes")
        assert await rt.handle("chat").result(timeout=10) == 2
    finally:
        await rt.close()
    (asked,) = records(caplog, "asking about 1")
    (told,) = records(caplog, "told yes")
    for record in (asked, told):
        assert record.name == "durable.workflow.chatty"
        assert (record.run_id, record.workflow, record.step) == ("chat", "chatty", None)  # type: ignore[attr-defined]


async def test_every_record_of_the_durable_logger_names_its_run_and_step(
    db: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with durable.Runtime(db) as rt:
        await rt.start(chatty, 5, run_id="fields")
        await rt.wait_for_question("fields", timeout=10)
        await rt.respond("fields", "ok")
        await rt.handle("fields").result(timeout=10)
    (inside,) = records(caplog, "inside the step")
    assert (inside.run_id, inside.workflow, inside.step) == ("fields", "chatty", "noted")  # type: ignore[attr-defined]
    ours = [record for record in caplog.records if record.name == "durable"]
    assert ours and all(hasattr(record, "run_id") for record in ours)
    (started,) = records(caplog, "run fields (chatty) started")
    (ended,) = records(caplog, "run fields (chatty) completed after")
    for record in (started, ended):
        assert record.levelno == logging.INFO
        assert (record.run_id, record.workflow, record.step) == ("fields", "chatty", None)  # type: ignore[attr-defined]


async def test_an_unhandled_exception_is_logged_once_with_its_traceback(
    db: Path | str, caplog: pytest.LogCaptureFixture
) -> None:
    async with durable.Runtime(db) as rt:
        with pytest.raises(durable.WorkflowFailed):
            await (await rt.start(crashing, run_id="boom")).result()
    (failed,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert failed.getMessage().startswith("run boom (crashing) failed after")
    assert failed.getMessage().endswith("KeyError: 'missing'")
    assert failed.exc_info is not None and failed.exc_info[0] is KeyError


def worker_log(db: Path | str, tmp_path: Path, run_id: str, *flags: str) -> str:
    """What ``durable worker tests.child FLAGS`` wrote to stderr while it ran one run."""
    import asyncio

    from . import child

    worker = durable_process(
        *("--db", str(db), "worker", "tests.child", *flags),
        ready="durable worker:",
        DURABLE_TEST_EFFECTS=str(tmp_path / "effects.log"),
    )

    async def run_one() -> None:
        async with durable.Runtime(db, recover=False) as client:
            await (await client.start(child.three_steps, run_id=run_id)).result(timeout=30)

    asyncio.run(run_one())
    worker.send_signal(signal.SIGTERM)
    return str(worker.communicate(timeout=30)[1])


def test_the_worker_logs_one_json_line_per_run_start_and_end(
    db: Path | str, tmp_path: Path
) -> None:
    err = worker_log(db, tmp_path, "logged", "--log-json")
    lines = [orjson.loads(line) for line in err.splitlines()]
    about = [line for line in lines if line.get("run_id") == "logged"]
    assert [line["message"].split(" ")[3] for line in about] == ["started", "completed"]
    for line in about:
        assert line["level"] == "INFO" and line["logger"] == "durable"
        assert line["workflow"] == "child.three_steps" and "step" not in line
        assert line["time"].endswith("+00:00")


def test_the_worker_log_level_silences_the_run_lines(db: Path | str, tmp_path: Path) -> None:
    assert "quiet" not in worker_log(db, tmp_path, "quiet", "--log-level", "warning")
