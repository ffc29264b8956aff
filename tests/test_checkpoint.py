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


def test_background_writer_keeps_order_and_starts_no_thread_until_used(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    writer = checkpoint.BackgroundWriter()
    assert {t.name for t in threading.enumerate()} == before
    order: list[int] = []

    def slow(i: int) -> None:
        time.sleep(0.05 if i == 0 else 0.0)  # the first job is the slowest: order must still hold
        order.append(i)

    with writer:
        for i in range(4):
            writer.submit(slow, i)
        checkpoint_path = tmp_path / "last.pt"
        writer.submit(checkpoint.save_copies, [tmp_path / "best.pt", checkpoint_path], b"payload")
    assert order == [0, 1, 2, 3]  # and all done once the block is left
    assert checkpoint.verify(checkpoint_path) is None and (tmp_path / "best.pt").read_bytes() == b"payload"
    assert not any(t.name.startswith("auditor-checkpoint") and t.is_alive() for t in threading.enumerate())


def test_a_failed_background_write_surfaces_at_the_next_wait(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = checkpoint.BackgroundWriter()
    with pytest.raises(OSError), writer:
        writer.submit(checkpoint.save_bytes, blocker / "last.pt", b"x")  # its folder is a file
        with pytest.raises(OSError):
            writer.wait()
        writer.submit(checkpoint.save_bytes, blocker / "best.pt", b"x")
    assert blocker.read_text() == "not a folder"


def test_leaving_with_an_exception_lands_pending_writes_and_keeps_that_exception(tmp_path: Path) -> None:
    def slow_save(path: Path, data: bytes) -> None:
        time.sleep(0.2)
        checkpoint.save_bytes(path, data)

    with pytest.raises(KeyboardInterrupt), checkpoint.BackgroundWriter() as writer:
        writer.submit(slow_save, tmp_path / "last.pt", b"epoch 3")
        writer.submit(checkpoint.save_bytes, tmp_path / "file" / "x.pt", b"x")  # will fail below
        (tmp_path / "file").write_text("not a folder")
        raise KeyboardInterrupt  # Ctrl-C during the next epoch
    assert checkpoint.verify(tmp_path / "last.pt") is None  # the newest checkpoint landed
