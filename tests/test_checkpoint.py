"""Tests for checkpoint files: digests, resume candidates and pruning."""

from __future__ import annotations

from pathlib import Path

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
