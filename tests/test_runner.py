"""auditor.runner pieces that the CLI tests do not reach directly."""

from __future__ import annotations

import errno
import gc
from pathlib import Path

import pytest
import torch
from conftest import TINY_SETS

from auditor import checkpoint
from auditor.audit import run_paths
from auditor.errors import InvalidInput
from auditor.runner import execute, long_lived_frozen
from auditor.spec import load_spec


def test_long_lived_frozen_freezes_only_inside_the_block() -> None:
    assert gc.get_freeze_count() == 0
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0  # the objects alive at entry are left out of collections
    assert gc.get_freeze_count() == 0
    with pytest.raises(KeyError), long_lived_frozen():
        raise KeyError("x")  # a failing run unfreezes too
    assert gc.get_freeze_count() == 0


def test_a_checkpoint_that_cannot_be_written_is_a_clean_error_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during training (the write fails on the background thread) keeps the run in staging."""
    spec = load_spec("smoke", TINY_SETS)
    real, writes = checkpoint.atomic_write_bytes, []

    def disk_full_at_epoch_2(path: Path, data: bytes) -> None:
        writes.append(path.name)
        if path.name == "last.pt" and writes.count("last.pt") == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full_at_epoch_2)
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    paths = run_paths(tmp_path, spec.name)
    assert "cannot write a checkpoint: No space left on device" in str(err.value) and "--resume" in str(err.value)
    assert str(paths.ckpt_staging / "last.pt") in str(err.value)
    assert torch.load(paths.ckpt_staging / "last.pt", weights_only=False)["global_step"] > 0  # epoch 1 intact
    assert not paths.checkpoints.exists() and not paths.reports.exists()  # nothing promoted
    monkeypatch.undo()
    outcome = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert outcome.audit["run"]["status"] == "completed" and (paths.reports / "REPRODUCIBILITY.md").is_file()
