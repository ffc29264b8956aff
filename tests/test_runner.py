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


def _finished_run(out: Path) -> tuple[object, dict[str, bytes]]:
    """A finished tiny run under `out`, and the bytes of its report and checkpoint files."""
    spec = load_spec("smoke", TINY_SETS)
    execute(spec, "smoke", out, resume=False, argv=["auditor", "run"], log=lambda m: None)
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    return spec, files


@pytest.mark.parametrize("where", ["reports/smoke.old", "checkpoints/smoke.old"])
@pytest.mark.parametrize("kind", ["a file", "a folder of the user's"])
def test_something_under_the_reserved_old_name_is_refused_before_training(tmp_path: Path, where: str, kind: str) -> None:
    """Neither a half-replaced run (new checkpoints, old report) nor the user's files deleted."""
    spec, before = _finished_run(tmp_path)
    blocker = tmp_path / where
    if kind == "a file":
        blocker.write_text("mine")
    else:
        blocker.mkdir()
        (blocker / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match=rf"{blocker}: in the way: .*move it away"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    after = {str(p.relative_to(tmp_path)): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    mine = {k: v for k, v in after.items() if k.startswith(where)}
    assert {k: v for k, v in after.items() if k not in mine} == before and set(mine.values()) == {b"mine"}
    assert not list(tmp_path.glob("*/*.partial"))  # refused before anything was staged


def test_a_file_where_the_run_folder_goes_is_refused_before_training(tmp_path: Path) -> None:
    spec = load_spec("smoke", TINY_SETS)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/smoke").write_text("mine")
    with pytest.raises(InvalidInput, match="reports/smoke: not a folder, but this run writes its reports there"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert (tmp_path / "reports/smoke").read_text() == "mine" and not (tmp_path / "checkpoints").exists()


def test_a_promote_killed_between_its_renames_is_put_back_and_the_run_replaced(tmp_path: Path) -> None:
    """`.old` holding the earlier run, no final folder: restored first, then replaced as usual."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    paths.reports.rename(paths.reports.with_name("smoke.old"))  # killed after the first rename
    outcome = execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert outcome.audit["run"]["status"] == "completed"
    assert not paths.reports.with_name("smoke.old").exists() and (paths.reports / "audit.json").is_file()


@pytest.mark.parametrize("where", ["--out", "argument"])
def test_a_path_that_is_not_utf8_is_refused_before_training(tmp_path: Path, where: str) -> None:
    """The shell passes such bytes as lone surrogates: the sheet (UTF-8) could not be written after training."""
    odd = tmp_path / "bad\udcffname"  # the byte 0xff, as Python decodes it from argv or a file name
    odd.mkdir()
    spec = load_spec("smoke", TINY_SETS)
    out, argv = (odd, ["auditor", "run"]) if where == "--out" else (tmp_path, ["auditor", "run", "--set", f"x={odd}"])
    with pytest.raises(InvalidInput, match=rf"{where} .*bad\\xffname: not valid UTF-8"):
        execute(spec, "smoke", out, resume=False, argv=argv, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [odd.name]  # nothing staged


def test_a_file_where_a_parent_folder_goes_is_named(tmp_path: Path) -> None:
    spec = load_spec("smoke", TINY_SETS)
    (tmp_path / "checkpoints").write_text("mine")
    with pytest.raises(InvalidInput, match=f"--out: cannot write under {tmp_path}: {tmp_path / 'checkpoints'} is a file"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert (tmp_path / "checkpoints").read_text() == "mine"
