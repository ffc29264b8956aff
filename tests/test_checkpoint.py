"""Tests for checkpoint files: digests, resume candidates and pruning."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from auditor import checkpoint


def _write(path: Path, step: int) -> Path:
    checkpoint.save(path, {"model": {}, "global_step": step})
    return path


def test_candidates_newest_first_and_foreign_step_files_ignored(tmp_path: Path) -> None:
    _write(tmp_path / "last.pt", 8)
    for step in (6, 10, 12):
        _write(tmp_path / f"step-{step:08d}.pt", step)
    stray = _write(tmp_path / "step-final.pt", 99)  # a user's copy, not the trainer's
    assert [p.name for p in checkpoint.candidates(tmp_path)] == [
        "step-00000012.pt", "step-00000010.pt", "last.pt", "step-00000006.pt",
    ]  # fmt: skip
    assert checkpoint.newest_intact(tmp_path) == (tmp_path / "step-00000012.pt", [])
    checkpoint.prune_step_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == ["step-00000010.pt", "step-00000012.pt", "step-final.pt"]
    assert stray.is_file() and not checkpoint.digest_path(tmp_path / "step-00000006.pt").exists()


def test_newest_intact_skips_a_corrupted_file_with_its_reason(tmp_path: Path) -> None:
    _write(tmp_path / "last.pt", 4)
    newest = _write(tmp_path / "step-00000006.pt", 6)
    newest.write_bytes(newest.read_bytes()[:-8] + b"corrupt!")
    found, skipped = checkpoint.newest_intact(tmp_path)
    assert found == tmp_path / "last.pt"
    assert [(p.name, r.split(" (")[0]) for p, r in skipped] == [("step-00000006.pt", "sha256 mismatch")]


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("auditor-checkpoint") and t.is_alive()]


def test_background_writer_keeps_order_and_starts_no_thread_until_used(tmp_path: Path) -> None:
    writer = checkpoint.BackgroundWriter()
    assert _writer_threads() == []
    order: list[int] = []
    first_may_finish = threading.Event()

    def job(i: int) -> None:
        if i == 0:
            first_may_finish.wait(5)  # the first job is the slowest: the order must still hold
        order.append(i)

    with writer:
        for i in range(4):
            writer.submit(job, i)
        writer.submit(checkpoint.save_copies, [tmp_path / "best.pt", tmp_path / "last.pt"], b"payload")
        assert order == [] and len(_writer_threads()) == 1
        first_may_finish.set()
    assert order == [0, 1, 2, 3]  # and all done once the block is left
    assert checkpoint.verify(tmp_path / "last.pt") is None and (tmp_path / "best.pt").read_bytes() == b"payload"
    assert checkpoint.verify(tmp_path / "best.pt") is None
    assert _writer_threads() == []


def test_a_failed_background_write_surfaces_without_waiting_and_at_the_next_wait(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = checkpoint.BackgroundWriter()
    with pytest.raises(OSError), writer:
        writer.submit(checkpoint.save_bytes, blocker / "last.pt", b"x")  # its folder is a file
        deadline = time.monotonic() + 10
        with pytest.raises(OSError):  # polled, as the training loop does after each step
            while time.monotonic() < deadline:
                writer.raise_if_failed()
        writer.submit(checkpoint.save_bytes, blocker / "best.pt", b"x")
        with pytest.raises(OSError):
            writer.wait()
        writer.submit(checkpoint.save_bytes, blocker / "x.pt", b"x")  # and on the way out
    assert blocker.read_text() == "not a folder"


def test_leaving_with_an_exception_lands_pending_writes_and_keeps_that_exception(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    may_write = threading.Event()

    def held_save(path: Path, data: bytes) -> None:
        may_write.wait(5)
        checkpoint.save_bytes(path, data)

    with pytest.raises(KeyboardInterrupt) as err, checkpoint.BackgroundWriter() as writer:
        writer.submit(held_save, tmp_path / "last.pt", b"epoch 3")
        writer.submit(checkpoint.save_bytes, tmp_path / "file" / "x.pt", b"x")  # fails: its folder is a file
        may_write.set()
        raise KeyboardInterrupt  # Ctrl-C during the next epoch
    assert checkpoint.verify(tmp_path / "last.pt") is None  # the newest checkpoint landed
    assert any("a pending checkpoint write failed too" in note for note in err.value.__notes__)
