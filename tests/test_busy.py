"""Two processes writing hard to one file at once: nobody ever sees "database is locked"."""

from __future__ import annotations

from pathlib import Path

from .processes import lines, spawn


def test_two_processes_writing_hard_at_once(db: Path, tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    loop_writer = spawn(str(db), "hammer", str(effects), "100", DURABLE_DURABILITY="normal")
    thread_writer = spawn(str(db), "hammer", str(effects), "100", DURABLE_DURABILITY="full")
    outputs = [proc.communicate(timeout=120) for proc in (loop_writer, thread_writer)]
    for proc, (_, err) in zip((loop_writer, thread_writer), outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b"locked" not in err and b"busy" not in err
    assert sorted(line for line in lines(effects) if line.startswith("hammered")) == [
        "hammered 100 4500",
        "hammered 100 4500",
    ]
