"""auditor.runner pieces that the CLI tests do not reach directly."""

from __future__ import annotations

import errno
import gc
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY_SETS, fake_cifar_root

import auditor
from auditor import checkpoint, environment, fileio, runner
from auditor import inspect as auditor_inspect
from auditor.audit import RunPaths, has_checkpoint, run_paths
from auditor.errors import InvalidInput, SpecFieldError, Terminated
from auditor.fileio import lock_file
from auditor.models import model_info
from auditor.runner import execute, long_lived_frozen, recover_interrupted_promote
from auditor.spec import Spec, load_spec, parse_overrides, resolved_dict, set_items, spec_hash


def test_long_lived_frozen_freezes_only_inside_the_block() -> None:
    assert gc.get_freeze_count() == 0
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0  # the objects alive at entry are left out of collections
    assert gc.get_freeze_count() == 0
    with pytest.raises(KeyError), long_lived_frozen():
        raise KeyError("x")  # a failing run unfreezes too
    assert gc.get_freeze_count() == 0


def test_a_cpu_quota_under_torchs_threads_is_said_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's CPU quota below torch's thread count: the run says so before training, the
    record and the sheet keep it, and `auditor measure` says it of the checkpoint's latency."""
    monkeypatch.setattr(environment, "cgroup_cpu_quota", lambda: 0.5)
    monkeypatch.setattr(environment, "usable_cpus", lambda: 8)  # the quota is the tighter limit on any machine
    threads, logged = torch.get_num_threads(), []
    torch.set_num_threads(2)  # over the quota's one thread
    try:
        outcome = execute(load_spec("smoke", TINY_SETS), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                          log=logged.append)  # fmt: skip
        measured = auditor_inspect.measure_checkpoint(tmp_path / "checkpoints/smoke/best.pt", "cpu", iters=5)
    finally:
        torch.set_num_threads(threads)
    [note] = outcome.audit["run"]["environment_notes"]
    assert note.startswith("torch runs 2 CPU threads but this process's cgroup CPU quota is 0.5 CPUs")
    assert "set OMP_NUM_THREADS=1 for the next run" in note and f"note: {note}" in logged
    assert outcome.audit["environment"]["cpu_quota"] == 0.5
    assert f"| Notes on the CPUs | {note} |" in (outcome.report_dir / "REPRODUCIBILITY.md").read_text()
    # then any warning on the timing itself; measure speaks of the latency it times, not of training
    assert measured["notes"][0] == note.replace("slows training and inflates latency", "inflates the latency timed here").replace(
        "set OMP_NUM_THREADS=1 for the next run (CPU results reproduce bit for bit only at the same thread count)",
        "set OMP_NUM_THREADS=1, or give --threads 1, to time it without the turns")  # fmt: skip


def stage_outputs(test: dict | None, nonfinite: list[str], history: list, best_epoch: int | None,
                  best_metric: float | None, status: str = "completed") -> tuple[SimpleNamespace, dict]:
    """(a TrainResult stand-in, measurements) with what `_metrics` and `_metric_notes` read."""
    measured = {"test": test, "nonfinite": nonfinite, "evaluated_checkpoint": "best.pt" if test else None,
                "size": {"checkpoint_bytes": 10 if test else None, "params_total": 1, "weights_bytes": 1},
                "latency": {"median_ms": 1.0}, "memory": {"peak_rss_mb": 1.0}}  # fmt: skip
    result = SimpleNamespace(history=history, selection_split="val", best_metric=best_metric, best_epoch=best_epoch,
                             train_time_s=1.0, images_per_s=1.0, status=status)  # fmt: skip
    return result, measured


def test_a_broken_selected_model_has_no_test_accuracy_metric() -> None:
    """Its accuracy is measured (the record keeps it) but not offered to criteria or the model card."""
    test = {"acc": 0.1032, "n": 1017, "loss": 2.3026}
    result, measured = stage_outputs(test, ["bn1.running_var"], [], None, None, "diverged")
    assert runner._metrics(result, measured, False)["test_acc"] is None
    note = runner._metric_notes(result, measured)["test_acc"]
    assert note == ("best.pt holds non-finite values in 1 tensor (e.g. bn1.running_var): the model is broken, "
                    "and its accuracy as measured (10.32%) means nothing")  # fmt: skip
    assert runner._metrics(result, {**measured, "nonfinite": []}, False)["test_acc"] == 0.1032
    # Its validation accuracy was measured on the same broken model (the selected epoch's): withheld too.
    result.best_metric, result.status = 0.17, "completed"
    assert runner._metrics(result, measured, False)["best_val_acc"] is None
    assert runner._metric_notes(result, measured)["best_val_acc"].endswith("its accuracy as measured (17.00%) means nothing")
    assert runner._metrics(result, {**measured, "nonfinite": []}, False)["best_val_acc"] == 0.17


def test_a_test_accuracy_whose_test_loss_is_not_a_number_is_withheld() -> None:
    """Finite weights whose outputs are inf or NaN on some test images: one rule with the final val
    accuracy's. Its accuracy had been offered to criteria with only a caution on the sheet."""
    epoch = SimpleNamespace(epoch=1, val_loss=2.3, val_acc=0.25, train_acc=0.1)
    result, measured = stage_outputs({"acc": 0.125, "n": 16, "loss": math.nan}, [], [epoch], 1, 0.25)
    assert runner._metrics(result, measured, False)["test_acc"] is None
    assert runner._metric_notes(result, measured)["test_acc"] == (
        "the test loss of best.pt is not a number: it computed inf or NaN on some test images, and its accuracy as "
        "measured (12.50%), which counts argmaxes of non-numbers, means nothing")  # fmt: skip
    assert runner._metrics(result, measured, False)["best_val_acc"] == 0.25  # its val loss was a number
    epoch.val_loss = math.nan  # selected by an older version (a run resumed from its checkpoint): withheld, and said why
    assert runner._metrics(result, measured, False)["best_val_acc"] is None
    assert runner._metric_notes(result, measured)["best_val_acc"] == (
        "the val loss at the selected epoch (1) is not a number: the model then computed inf or NaN, and its accuracy "
        "as measured means nothing")  # fmt: skip
    epoch.val_loss = 2.3
    measured["test"]["loss"] = 2.31
    assert runner._metrics(result, measured, False)["test_acc"] == 0.125
    assert "test_acc" not in runner._metric_notes(result, measured)


def test_a_run_none_of_whose_epochs_could_be_selected_says_why() -> None:
    """Every epoch's val loss NaN: no epoch is selected, so no best.pt, and the notes say why
    rather than "no best checkpoint (run completed)"."""
    epochs = [SimpleNamespace(epoch=e, val_loss=math.nan, val_acc=0.125, train_acc=0.1) for e in (1, 2)]
    result, measured = stage_outputs(None, [], epochs, None, None)
    notes = runner._metric_notes(result, measured)
    why = ("no epoch was selected: the val loss of every completed epoch (2 epochs) was not a number (the model "
           "computed inf or NaN), so no best checkpoint was written")  # fmt: skip
    assert notes["test_acc"] == notes["checkpoint_mb"] == notes["best_val_acc"] == why
    assert {k: v for k, v in runner._metrics(result, measured, False).items() if k.endswith("acc") and k != "final_train_acc"} == {
        "test_acc": None, "best_val_acc": None, "final_val_acc": None}


def test_the_final_val_accuracy_of_an_epoch_whose_val_loss_is_not_a_number_is_withheld() -> None:
    """Predictions made from inf or NaN: their count of hits (a constant argmax) means nothing."""
    epoch = SimpleNamespace(epoch=3, val_loss=float("nan"), val_acc=0.2344, train_acc=0.1)
    result, measured = stage_outputs({"acc": 0.2, "n": 10, "loss": 2.1}, [], [epoch], 1, 0.3)
    assert runner._metrics(result, measured, False)["final_val_acc"] is None
    assert runner._metric_notes(result, measured)["final_val_acc"] == (
        "the val loss at the last epoch (3) is not a number: the model then computed inf or NaN, and its accuracy "
        "as measured means nothing")  # fmt: skip
    epoch.val_loss = 2.3
    assert runner._metrics(result, measured, False)["final_val_acc"] == 0.2344
    assert "final_val_acc" not in runner._metric_notes(result, measured)
    # The selected model is broken: the last epoch's accuracy is withheld where it is that model's.
    broken = {**measured, "nonfinite": ["bn1.running_var"]}
    assert runner._metrics(result, broken, False)["final_val_acc"] == 0.2344  # epoch 3, not the selected epoch 1
    result.best_epoch = 3
    assert runner._metrics(result, broken, False)["final_val_acc"] is None
    assert runner._metric_notes(result, broken)["final_val_acc"] == (
        "best.pt holds non-finite values in 1 tensor (e.g. bn1.running_var): the model is broken, and its accuracy "
        "as measured (23.44%) means nothing")  # fmt: skip
    # The selected model (an earlier epoch) is finite, but the weights the last epoch was measured on are not.
    result.best_epoch = 1
    final = {**measured, "final_nonfinite": ["bn1.running_var", "bn2.running_var"]}
    assert runner._metrics(result, final, False)["final_val_acc"] is None
    assert runner._metric_notes(result, final)["final_val_acc"] == (
        "last.pt, which it was measured on, holds non-finite values in 2 tensors (e.g. bn1.running_var): it is broken, "
        "and its accuracy as measured (23.44%) means nothing")  # fmt: skip


@pytest.mark.slow
def test_final_weights_that_overflowed_after_the_selected_epoch_are_found(tmp_path: Path) -> None:
    """lr 200 on the smoke spec: BN running variances reach inf while the selected epoch's weights stay finite.
    The last epoch's accuracy had been reported, and the divergence box ticked."""
    from auditor.cli import main

    args = ["train.epochs=4", "train.schedule.name=constant", "train.schedule.warmup_epochs=4",
            "train.optimizer.lr=200", "data.synthetic.train=600", "data.synthetic.test=100", "data.val_split=100",
            "measure.latency.warmup=0", "measure.latency.iters=5"]  # fmt: skip
    main(["run", "smoke", *[a for x in args for a in ("--set", x)], "--out", str(tmp_path)])
    audit = json.loads((tmp_path / "reports/smoke/audit.json").read_text())
    final = audit["measurements"]["final_nonfinite"]
    assert final and all("running_var" in n for n in final), final
    assert audit["metrics"]["final_val_acc"] is None and "last.pt, which it was" in audit["metric_notes"]["final_val_acc"]
    assert audit["run"]["status"] == "completed"  # not a divergence: last.pt is the last epoch's, overflowed
    sheet = (tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()
    assert "| Final val accuracy | not reported: last.pt, which it was measured on, holds inf or NaN in" in sheet
    assert "- [ ] **Training finished without divergence**" in sheet


def test_metrics_a_run_that_diverged_before_any_checkpoint_could_not_have_say_why() -> None:
    measured = {"test": None, "nonfinite": [], "evaluated_checkpoint": None,
                "size": {"checkpoint_bytes": None, "params_total": 1, "weights_bytes": 1},
                "latency": {"median_ms": 1.0}, "memory": {"peak_rss_mb": 1.0}}  # fmt: skip
    result = SimpleNamespace(history=[], selection_split="val", best_metric=None, best_epoch=None, train_time_s=1.0,
                             images_per_s=1.0, status="diverged")  # fmt: skip
    notes = runner._metric_notes(result, measured)
    assert (notes["best_val_acc"], notes["final_val_acc"], notes["checkpoint_mb"], notes["test_acc"]) == (
        "no epoch completed (run diverged)", "no epoch completed (run diverged)", "no best checkpoint (run diverged)",
        "no best checkpoint (run diverged)")  # fmt: skip
    result.selection_split = "test"  # no validation split: said as such, not as an epoch missing
    assert runner._metric_notes(result, measured)["best_val_acc"] == "the spec has no validation split"


def test_spec_source_names_the_spec_in_errors_about_its_fields() -> None:
    with pytest.raises(InvalidInput, match=r"^specs/x\.yaml: train\.amp: fp16 needs CUDA$"), runner.spec_source("specs/x.yaml"):
        raise SpecFieldError("train.amp", "fp16 needs CUDA")
    with pytest.raises(InvalidInput, match=r"^/data/test_batch: not a readable CIFAR-10 batch$"), runner.spec_source("x"):
        raise InvalidInput("/data/test_batch: not a readable CIFAR-10 batch")  # about a file: named already
    # Decided by the error's type, not its text: a path that starts like a section stays as it is.
    with pytest.raises(InvalidInput, match=r"^data\.v2/test_batch: truncated$"), runner.spec_source("x"):
        raise InvalidInput("data.v2/test_batch: truncated")
    # The --set that set the field is named with it, as validation names it.
    sets = set_items(parse_overrides(["train.amp=fp16", "seed=3"]))
    with pytest.raises(InvalidInput, match=r"^x --set 'train\.amp=fp16': train\.amp: fp16 needs CUDA$"), runner.spec_source("x", sets):
        raise SpecFieldError("train.amp", "fp16 needs CUDA")
    with pytest.raises(InvalidInput, match=r"^x: data\.root: gone$"), runner.spec_source("x", sets):
        raise SpecFieldError("data.root", "gone")


def test_a_resume_refused_names_what_changed_in_training_apart_from_what_may_change(tmp_path: Path) -> None:
    old = load_spec("smoke", TINY_SETS)
    state = {"spec": resolved_dict(old), "spec_hash": spec_hash(old)}
    new = load_spec("smoke", [*TINY_SETS, "seed=9", "criteria.test_acc=>= 0.99"])
    with pytest.raises(InvalidInput) as err:
        runner.resume_spec_notes(tmp_path / "last.pt", state, new)
    message = str(err.value)
    assert "changed in its training settings: seed: 0 -> 9; also changed, which alone would not stop a resume: " in message
    assert message.endswith("criteria.test_acc: null -> '>= 0.99'; resume with the spec it was written under, or "
                            "train this spec under another name (--set name=NEW), which keeps that run")  # fmt: skip
    with pytest.raises(InvalidInput) as err:  # as a run gives it: how to start over too
        runner.resume_spec_notes(tmp_path / "last.pt", state, new, "run without --resume")
    assert str(err.value).endswith("which keeps that run, or, to start over in its place, run without --resume")
    assert runner.listed([str(i) for i in range(10)]) == "0; 1; 2; 3; 4; 5; 6; 7 (and 2 more)"
    [note] = runner.resume_spec_notes(tmp_path / "last.pt", state, load_spec("smoke", [*TINY_SETS, "description=x"]))
    assert note.startswith("last.pt was written under a spec that differs only outside training (description: ")


def _run_on_a_full_disk(
    out: Path, monkeypatch: pytest.MonkeyPatch, spec: Spec, at_write: int
) -> tuple[pytest.ExceptionInfo[InvalidInput], RunPaths]:
    """A run of `spec` whose `at_write`-th write of last.pt finds the disk full (best.pt, written
    before it with the same bytes, lands): the error it stops with, and its paths."""
    real, writes = checkpoint.atomic_write_bytes, []

    def disk_full_at_a_last_pt(path: Path, data: bytes) -> None:
        writes.append(path.name)
        if path.name == "last.pt" and writes.count("last.pt") == at_write:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full_at_a_last_pt)
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", out, resume=False, argv=["auditor", "run"], log=lambda m: None)
    return err, run_paths(out, spec.name)


def test_a_checkpoint_that_cannot_be_written_is_a_clean_error_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk during training (the write fails on the background thread) keeps the run in staging."""
    spec = load_spec("smoke", TINY_SETS)
    err, paths = _run_on_a_full_disk(tmp_path, monkeypatch, spec, at_write=2)
    assert "cannot write a checkpoint: No space left on device" in str(err.value) and "continue with --resume" in str(err.value)
    assert str(paths.ckpt_staging / "last.pt") in str(err.value)
    assert torch.load(paths.ckpt_staging / "last.pt", weights_only=False)["global_step"] > 0  # epoch 1 intact
    assert not paths.checkpoints.exists() and not paths.reports.exists()  # nothing promoted
    monkeypatch.undo()
    outcome = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert outcome.audit["run"]["status"] == "completed" and (paths.reports / "REPRODUCIBILITY.md").is_file()


def test_a_full_disk_between_the_first_best_pt_and_last_pt_keeps_best_pt_to_resume_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: best.pt landed whole, last.pt (the same bytes) found the disk full, and the run
    deleted best.pt with its staging folder, saying no checkpoint had been written."""
    spec = load_spec("smoke", TINY_SETS)
    err, paths = _run_on_a_full_disk(tmp_path, monkeypatch, spec, at_write=1)
    assert "continue with --resume" in str(err.value) and runner.NOTHING_KEPT not in str(err.value)
    assert checkpoint.verify(paths.ckpt_staging / "best.pt") is None and not (paths.ckpt_staging / "last.pt").exists()
    monkeypatch.undo()
    said: list[str] = []
    outcome = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    assert outcome.audit["run"]["status"] == "completed" and outcome.audit["run"]["resumed_from"] == "best.pt"
    assert any(m.startswith("resume: continuing from best.pt") for m in said), said


def test_a_damaged_best_pt_alone_in_staging_is_refused_by_name_not_trained_over(tmp_path: Path) -> None:
    """The review: counted as a checkpoint to continue from, a best.pt alone that fails its digest
    sent --resume to train from the start without a word of it (a damaged last.pt is refused)."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    shutil.rmtree(paths.reports)
    paths.checkpoints.rename(paths.ckpt_staging)
    (paths.ckpt_staging / "last.pt").unlink()
    best = paths.ckpt_staging / "best.pt"
    best.write_bytes(best.read_bytes()[:-1] + b"x")
    with pytest.raises(InvalidInput, match="an interrupted run of this name exists; continue it with --resume"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    with pytest.raises(InvalidInput, match=r"--resume: no intact checkpoint in .*\(skipped best\.pt: sha256 mismatch"):
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert best.is_file()  # kept for the user to look at


def test_a_first_checkpoint_that_cannot_be_written_keeps_nothing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full)
    with pytest.raises(InvalidInput) as err:
        execute(load_spec("smoke", TINY_SETS), "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert str(err.value).endswith(f"; {runner.NOTHING_KEPT}") and "--resume" not in str(err.value)
    paths = run_paths(tmp_path, "smoke")
    assert not paths.ckpt_staging.exists() and not paths.reports_staging.exists()  # the same command starts again


def _files(out: Path) -> dict[str, bytes]:
    """Every file under `out` but the lock files, whose holder note each run rewrites."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.suffix != ".lock"}


def _finished_run(out: Path) -> tuple[Spec, dict[str, bytes]]:
    """A finished tiny run under `out`, and the bytes of its report and checkpoint files."""
    spec = load_spec("smoke", TINY_SETS)
    execute(spec, "smoke", out, resume=False, argv=["auditor", "run"], log=lambda m: None)
    return spec, _files(out)


def test_the_determinism_flags_are_set_with_stops_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """use_deterministic_algorithms imports torch._inductor (1-2 s): a Ctrl-C inside that import
    had CPython end the process by SIGINT after the run's clean stop. It takes effect after."""
    real, done = runner.repro.enforce, []

    def enforce(seed: int, spec: object) -> object:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes: it must not raise here
        done.append(seed)
        return real(seed, spec)

    monkeypatch.setattr(runner.repro, "enforce", enforce)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.check_and_load(load_spec("smoke", TINY_SETS), "smoke", tmp_path, ["auditor", "run"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert done == [0]


def test_a_run_replacing_one_of_another_spec_gets_no_caution_from_the_earlier_one(tmp_path: Path) -> None:
    """A review: the sheet rendered in staging had been cautioned that the earlier run's
    spec.resolved.yaml, still in place then, does not hold this run's spec."""
    _finished_run(tmp_path)
    execute(load_spec("smoke", [*TINY_SETS, "seed=1"]), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
            log=lambda m: None)  # fmt: skip
    assert json.loads((tmp_path / "reports/smoke/audit.json").read_text())["spec"]["seed"] == 1  # the new run's
    assert "[!CAUTION]" not in (tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()


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
    with pytest.raises(InvalidInput, match=rf"{blocker}: in the way: .*not such a folder\): rename or move it"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    after = _files(tmp_path)
    mine = {k: v for k, v in after.items() if k.startswith(where)}
    assert {k: v for k, v in after.items() if k not in mine} == before and set(mine.values()) == {b"mine"}
    assert not list(tmp_path.glob("*/*.partial"))  # refused before anything was staged


@pytest.mark.parametrize("where", ["reports/smoke", "checkpoints/smoke"])
def test_a_run_folder_this_user_may_not_write_is_refused_before_training(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: with reports/smoke read-only, a new run trained, promoted its checkpoints, then
    failed to set the old report aside: the old record described checkpoints that were gone. (As
    root, where the mode binds nothing, os.access stands in for a user the mode binds.)"""
    _, before = _finished_run(tmp_path)
    locked = tmp_path / where
    real = os.access
    monkeypatch.setattr(runner.os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    with pytest.raises(InvalidInput, match=rf"^{locked}: not writable by this user; a run marks its earlier "):
        execute(load_spec("smoke", [*TINY_SETS, "seed=1"]), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                log=lambda m: None)  # fmt: skip
    assert _files(tmp_path) == before and not list(tmp_path.glob("*/*.partial"))
    # A user test: an immutable folder (chattr +i), which chmod cannot mend, was said to want chmod u+wx.
    # The inode flag is simulated where chattr is not allowed.
    real_flags = fileio._inode_flags
    monkeypatch.setattr(fileio, "_inode_flags", lambda p: 0x10 if Path(p) == locked else real_flags(p))
    with pytest.raises(InvalidInput, match=(rf"^{locked}: immutable \(chattr \+i; lsattr shows it\), so this run cannot "
                                            rf"replace its \w+ folder when it finishes: remove the flag \(chattr -i {locked}, "
                                            r"as root\), or give another --out$")):  # fmt: skip
        execute(load_spec("smoke", [*TINY_SETS, "seed=1"]), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                log=lambda m: None)  # fmt: skip
    assert _files(tmp_path) == before


def test_a_report_folder_that_takes_no_mark_leaves_both_earlier_folders_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both earlier folders are marked before either is set aside: a mark that fails (a folder made
    read-only while the run trained) stops the run with neither promoted, its training kept."""
    _, before = _finished_run(tmp_path)
    real = runner.mark_set_aside

    def refuse_reports(final: Path) -> None:
        if final.parent.name == "reports":
            raise PermissionError(errno.EACCES, "Permission denied", str(final / ".set-aside-by-auditor"))
        real(final)

    monkeypatch.setattr(runner, "mark_set_aside", refuse_reports)
    with pytest.raises(InvalidInput, match="cannot write the finished run: Permission denied; its training is kept: "
                                           "make it writable, then run the same command with --resume"):
        execute(load_spec("smoke", [*TINY_SETS, "seed=1"]), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                log=lambda m: None)  # fmt: skip
    assert {k: v for k, v in _files(tmp_path).items() if ".partial" not in k} == before  # no mark left behind
    assert (tmp_path / "checkpoints/smoke.partial/last.pt").is_file()  # kept for --resume


def test_discard_frees_the_name_even_where_the_deletion_fails_part_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: verify's earlier evidence, deleted in place, stayed half-deleted under its
    reserved name (a read-only folder inside), and blocked every later verify."""
    old = tmp_path / "smoke.old"
    (old / "a").mkdir(parents=True)
    (old / "a" / "f").write_text("x")
    monkeypatch.setattr(runner.shutil, "rmtree", lambda path, ignore_errors=False: None)  # deletes nothing
    left = runner.discard(old)
    assert left is not None and left.parent == tmp_path and left.name.startswith(".smoke.old.trash-")
    assert not old.exists() and (left / "a" / "f").is_file()
    assert runner.discard(old) == left  # tried again, failing again: said again (a review: it went unsaid)
    monkeypatch.undo()
    old.mkdir()
    assert runner.discard(old) is None and list(tmp_path.iterdir()) == []  # the leftover is tried again


@pytest.mark.parametrize("where", ["reports/smoke", "checkpoints/smoke"])
def test_files_of_the_users_in_a_run_folder_are_refused_before_training_not_deleted(tmp_path: Path, where: str) -> None:
    """A folder of the user's at a run's name, and a file added to a finished run's folder (a
    JUnit report): replacing the folder would delete them."""
    spec = load_spec("smoke", TINY_SETS)
    mine = tmp_path / where / "notes.md"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    with pytest.raises(InvalidInput, match=rf"{mine.parent}: holds notes.md, which no run writes; .*which would delete "
                                           "it: move it away"):  # fmt: skip
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert mine.read_text() == "mine" and not list(tmp_path.glob("*/*.partial"))
    mine.unlink()
    mine.parent.rmdir()
    spec, before = _finished_run(tmp_path)
    mine = {"reports/smoke": ["junit.xml", "figures/notes.txt", "figures/mine.png"],
            "checkpoints/smoke": ["junit.xml", "pretrained.pt", "step-mybackup.pt", "step-00000001.pt.bak"]}[where]  # fmt: skip
    for name in mine:
        (tmp_path / where / name).write_text("mine")
    for resume in (False, True):  # a re-run, and a resume that re-judges the finished run
        with pytest.raises(InvalidInput, match=rf"holds {', '.join(sorted(mine))}, which no run writes; .*move them away"):
            execute(spec, "smoke", tmp_path, resume=resume, argv=["auditor", "run"], log=lambda m: None)
    assert _files(tmp_path) == {**before, **{f"{where}/{name}": b"mine" for name in mine}}


def test_everything_in_the_way_of_a_run_is_named_in_one_refusal(tmp_path: Path) -> None:
    """Files of the user's in both run folders and under a reserved name: one refusal names them all,
    so that one tidy-up (not one retry, and one data load, per folder) lets the run start."""
    spec, before = _finished_run(tmp_path)
    mine = {"reports/smoke/notes.md", "checkpoints/smoke/step-backup.pt", "reports/smoke.old"}
    for name in mine:
        (tmp_path / name).write_text("mine")
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    lines = str(err.value).splitlines()
    assert lines[0] == "3 things are in the way of this run:" and len(lines) == 4
    assert lines[1].startswith(f"  - {tmp_path / 'checkpoints/smoke'}: holds step-backup.pt, which no run writes")
    assert lines[2].startswith(f"  - {tmp_path / 'reports/smoke'}: holds notes.md, which no run writes")
    assert lines[3].startswith(f"  - {tmp_path / 'reports/smoke.old'}: in the way: a run moves its earlier reports")
    assert _files(tmp_path) == {**before, **{name: b"mine" for name in mine}}
    for name in mine:
        (tmp_path / name).unlink()
    shutil.rmtree(tmp_path / "reports/smoke")
    (tmp_path / "reports/smoke").write_text("a file where the run's folder goes")
    (tmp_path / "reports/smoke.old").mkdir()
    (tmp_path / "reports/smoke.old/mine.txt").write_text("mine")
    with pytest.raises(InvalidInput) as err:  # a file in the folder's place does not hide what else is in the way
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert str(err.value).startswith("2 things are in the way of this run:\n") and "smoke.old: in the way" in str(err.value)


def _cifar_run(out: Path, root: Path) -> Spec:
    """A finished tiny run on a small CIFAR-10 copy under `root`."""
    fake_cifar_root(root, n=64)
    spec = load_spec("smoke", [*TINY_SETS, "data.dataset=cifar10", f"data.root={root}", "data.val_split=16",
                               "train.batch_size=16", "criteria.best_val_acc=null"])  # fmt: skip
    execute(spec, "smoke", out, resume=False, argv=["auditor", "run"], log=lambda m: None)
    return spec


def test_a_run_says_before_training_and_records_which_entries_of_its_data_folder_it_does_not_read(tmp_path: Path) -> None:
    root = fake_cifar_root(tmp_path / "data", n=64)
    (root / "cifar-10-batches-py" / "data_batch_6").write_bytes(b"")
    said: list[str] = []
    spec = load_spec("smoke", [*TINY_SETS, "data.dataset=cifar10", f"data.root={root}", "data.val_split=16",
                               "train.batch_size=16", "train.epochs=1", "criteria.best_val_acc=null"])  # fmt: skip
    execute(spec, "smoke", tmp_path / "out", resume=False, argv=["auditor", "run"], log=said.append)
    note = f"note: {root / 'cifar-10-batches-py'} holds 'data_batch_6', which this run does not read"
    assert any(line.startswith(note) for line in said), said
    record = json.loads((tmp_path / "out/reports/smoke/audit.json").read_text())
    assert record["data"]["other_entries"] == ["data_batch_6"] and record["data"]["n_other_entries"] == 1
    assert "`batches.meta`): `data_batch_6`." in (
        tmp_path / "out/reports/smoke/REPRODUCIBILITY.md").read_text()


def test_a_damaged_data_file_names_the_spec_and_the_set_that_named_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: `run` named the damaged file alone, where `validate` names the spec and the
    --set behind data.root as well."""
    root = fake_cifar_root(tmp_path / "data", n=64)
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    items = [*TINY_SETS, "data.dataset=cifar10", f"data.root={root}", "data.val_split=16"]
    spec, sets = load_spec("smoke", items), set_items(parse_overrides(items))
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path / "out", resume=False, argv=["auditor", "run"], log=lambda m: None, sets=sets)
    said = f"smoke --set 'data.root={root}': data.root: {root / 'cifar-10-batches-py' / 'data_batch_1'}: not a readable"
    assert str(err.value).startswith(said), str(err.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))
    # A review: a refusal that names its own field kept it (the val split, not the folder, is wrong).
    fake_cifar_root(tmp_path / "data", n=64)
    big = [*items, "data.val_split=100"]
    with pytest.raises(InvalidInput) as err:
        execute(load_spec("smoke", big), "smoke", tmp_path / "out", resume=False, argv=["auditor", "run"],
                log=lambda m: None, sets=set_items(parse_overrides(big)))  # fmt: skip
    assert str(err.value) == "smoke --set 'data.val_split=100': data.val_split: 100 must be smaller than the 64 training images"

    def unlookable(spec: object) -> None:  # as Path.is_file() raises on a file whose folder denies access (Python 3.11)
        raise PermissionError(13, "Permission denied", str(root / "cifar-10-batches-py" / "data_batch_1"))

    monkeypatch.setattr(runner, "load_data", lambda data, seed: unlookable(data))
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path / "out", resume=False, argv=["auditor", "run"], log=lambda m: None, sets=sets)
    assert str(err.value) == f"smoke --set 'data.root={root}': data.root: {root / 'cifar-10-batches-py/data_batch_1'}: Permission denied"


def test_a_resume_on_other_data_under_the_same_root_is_refused_and_leaves_no_copy(tmp_path: Path) -> None:
    """The spec names a folder, not its images: a copy swapped in under data.root would have mixed
    two data sets into one run (and the resumed run of a finished one re-judged other data)."""
    spec = _cifar_run(tmp_path / "out", tmp_path / "data")
    before = _files(tmp_path / "out")
    fake_cifar_root(tmp_path / "data", n=64, seed=1)  # other images, same spec
    with pytest.raises(InvalidInput, match=r"checkpoints/smoke/last.pt: the run read other data \(fingerprint \w+, over its training and test "):
        execute(spec, "smoke", tmp_path / "out", resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert _files(tmp_path / "out") == before and not list((tmp_path / "out").glob("*/*.partial"))


def test_a_resume_of_a_finished_run_stopped_or_refused_later_leaves_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its staging copy must go, or every later plain run is refused as 'interrupted'."""
    spec, before = _finished_run(tmp_path)

    def stopped(run_dir: Path) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the sheet is drawn

    monkeypatch.setattr("auditor.render.render_run", stopped)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    monkeypatch.undo()
    assert _files(tmp_path) == before and not list(tmp_path.glob("*/*.partial"))
    best = tmp_path / "checkpoints/smoke/best.pt"
    best.write_bytes(best.read_bytes()[:-1] + b"x")  # no longer its digest
    _best_before_last(best.with_name("last.pt"))  # so that best.pt cannot be written again from last.pt
    with pytest.raises(InvalidInput, match=rf"^{best}: checkpoint is not intact"):  # the user's file, not the copy
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert not list(tmp_path.glob("*/*.partial"))
    execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)  # not refused


def test_a_damaged_best_checkpoint_is_rebuilt_from_last_pt_also_for_a_resume_from_a_later_step(tmp_path: Path) -> None:
    """A review: only a resume from last.pt itself rebuilt best.pt, while one from a step checkpoint
    after it (train.checkpoint_every_steps) was refused. Nothing is written until the caller's checks pass."""
    best = {"epoch": 2, "since": 0, "metric": 0.5}
    checkpoint.save(tmp_path / "last.pt", {"model": {}, "epoch": 2, "step_in_epoch": 0, "global_step": 16, "best": best})
    step = {"model": {}, "epoch": 2, "step_in_epoch": 2, "global_step": 18, "best": best}
    checkpoint.save(found := tmp_path / "step-00000018.pt", step)
    here = environment.compute_setting(torch.device("cpu"))
    source, note = runner.check_best_kept(found, step, "start over", here)
    assert source == tmp_path / "last.pt" and note.startswith("best.pt was missing; it is written again from last.pt")
    assert not (tmp_path / "best.pt").exists()  # the caller copies it once every check has passed
    later = {**best, "epoch": 1, "since": 1}  # last.pt written an epoch after the best one: other bytes
    checkpoint.save(tmp_path / "last.pt", {"model": {}, "epoch": 2, "step_in_epoch": 0, "global_step": 16, "best": later})
    with pytest.raises(InvalidInput, match="--resume cannot write it again"):
        runner.check_best_kept(found, {**step, "best": later}, "start over", here)
    with pytest.raises(InvalidInput, match="--resume cannot write it again"):  # another best epoch than found's
        runner.check_best_kept(found, step, "start over", here)


def _best_before_last(last: Path) -> None:
    """last.pt rewritten as if an epoch had ended after the best one (its best.pt then older)."""
    state = checkpoint.load(last)
    checkpoint.save(last, {**state, "best": {**state["best"], "epoch": state["epoch"] - 1, "since": 1}})


@pytest.mark.parametrize("damage", ["deleted", "changed"])
@pytest.mark.parametrize("finished", [True, False], ids=["finished", "interrupted"])
def test_a_best_checkpoint_gone_or_damaged_is_written_again_from_the_last_pt_of_its_epoch(
    tmp_path: Path, damage: str, finished: bool
) -> None:
    """A user test: --resume said best.pt 'cannot be written again' while last.pt, written at the end
    of the selected epoch, held the same bytes."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    if not finished:
        shutil.rmtree(paths.reports)
        paths.checkpoints.rename(paths.ckpt_staging)
    best = (paths.checkpoints if finished else paths.ckpt_staging) / "best.pt"
    if damage == "deleted":
        best.unlink()
    else:
        best.write_bytes(best.read_bytes()[:-1] + b"x")
    said: list[str] = []
    result = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    state = "missing" if damage == "deleted" else "checkpoint is not intact: sha256 mismatch"
    assert any(n.startswith(f"best.pt was {state}") and "written again from last.pt" in n
               for n in result.audit["run"]["resume_notes"]), result.audit["run"]["resume_notes"]  # fmt: skip
    after = _files(tmp_path)
    assert after["checkpoints/smoke/best.pt"] == before["checkpoints/smoke/best.pt"]
    assert checkpoint.verify(paths.checkpoints / "best.pt") is None


@pytest.mark.parametrize("damage", ["deleted", "changed"])
@pytest.mark.parametrize("finished", [True, False], ids=["finished", "interrupted"])
def test_a_resume_whose_best_checkpoint_is_gone_or_damaged_is_refused_before_training(
    tmp_path: Path, damage: str, finished: bool
) -> None:
    """The selected model must not be measured from other weights (or said never written), nor
    found damaged only after all the training is done again."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    if not finished:  # the same files, as an interrupted run leaves them in staging
        shutil.rmtree(paths.reports)
        paths.checkpoints.rename(paths.ckpt_staging)
    best = (paths.checkpoints if finished else paths.ckpt_staging) / "best.pt"
    assert torch.load(best, weights_only=False)["epoch"] > 0
    _best_before_last(best.with_name("last.pt"))  # so that best.pt cannot be written again from last.pt
    before = _files(tmp_path)
    kept = {p.name: p.read_bytes() for p in best.parent.iterdir() if p.name != "best.pt"}
    if damage == "deleted":
        best.unlink()
    else:
        best.write_bytes(best.read_bytes()[:-1] + b"x")
    said: list[str] = []
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    state = "missing" if damage == "deleted" else r"checkpoint is not intact: sha256 mismatch \(file \w+, recorded \w+\)"
    assert re.match(rf"{re.escape(str(best))}: {state}; last.pt records it as written after epoch \d", str(err.value))
    assert ("run without --resume" if finished else f"remove {paths.ckpt_staging}") in str(err.value)
    assert not any("continuing from" in m for m in said)  # refused before training
    assert {p.name: p.read_bytes() for p in best.parent.iterdir() if p.name != "best.pt"} == kept
    assert not list(tmp_path.glob("*/*.partial")) if finished else not paths.checkpoints.exists()
    if finished:
        assert {k: v for k, v in _files(tmp_path).items() if "best.pt" not in k} == {
            k: v for k, v in before.items() if "best.pt" not in k}  # the report as it was  # fmt: skip


def test_a_checkpoint_of_another_spec_is_refused_as_such_before_its_missing_best_pt(tmp_path: Path) -> None:
    """A user test: a checkpoint of another spec, its best.pt missing, was refused with advice to put
    best.pt back, which would only have led to the refusal of the spec."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    shutil.rmtree(paths.reports)
    paths.checkpoints.rename(paths.ckpt_staging)
    _best_before_last(paths.ckpt_staging / "last.pt")
    (paths.ckpt_staging / "best.pt").unlink()
    other = load_spec("smoke", [*TINY_SETS, "train.optimizer.lr=0.07"])
    with pytest.raises(InvalidInput) as err:
        execute(other, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert "last.pt: checkpoint was written by a different spec" in str(err.value), err.value
    assert "train.optimizer.lr: 0.05 -> 0.07" in str(err.value) and "best.pt" not in str(err.value)


@pytest.mark.parametrize("other_setting", [True, False])
def test_a_best_checkpoint_newer_than_last_pt_is_resumed_from(tmp_path: Path, other_setting: bool) -> None:
    """best.pt landed, last.pt did not (a kill between them): a user test found the resume going back
    to an older checkpoint (an epoch trained again), or refused on another thread count, though
    best.pt holds that epoch's whole training state. On another setting the resume notes say so."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    shutil.rmtree(paths.reports)
    paths.checkpoints.rename(paths.ckpt_staging)
    last = paths.ckpt_staging / "last.pt"
    state = checkpoint.load(last)
    checkpoint.save(last, {**state, "global_step": state["global_step"] - 1})  # stands in for an older last.pt
    if other_setting:
        here = environment.compute_setting(torch.device("cpu"))
        best = checkpoint.load(paths.ckpt_staging / "best.pt")
        checkpoint.save(paths.ckpt_staging / "best.pt", {**best, "compute": {**here, "torch_threads": here["torch_threads"] + 5}})
    said: list[str] = []
    result = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    notes = result.audit["run"]["resume_notes"]
    assert notes[0].startswith("continuing from best.pt, the newest checkpoint that verifies (the process stopped after "
                               "writing it, before last.pt): a run writes it"), notes  # fmt: skip
    assert result.audit["run"]["resumed_from"] == "best.pt"
    assert any(n.startswith("best.pt was written on cpu (") for n in notes) is other_setting, notes
    after = _files(tmp_path)
    a = torch.load(io.BytesIO(before["checkpoints/smoke/last.pt"]), weights_only=False)
    b = torch.load(io.BytesIO(after["checkpoints/smoke/last.pt"]), weights_only=False)
    assert b["global_step"] == a["global_step"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_resume_of_a_finished_run_stopped_between_its_promotes_keeps_the_report_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoints are in place: the staged report must stay, for the next run to put in place."""
    _finished_run(tmp_path)
    real, calls = runner.promote, []

    def stopped_second(staging: Path, final: Path) -> None:
        calls.append(final)
        if len(calls) == 2:
            raise KeyboardInterrupt  # between the checkpoints' promote and the report's
        real(staging, final)

    monkeypatch.setattr(runner, "promote", stopped_second)
    rejudged = load_spec("smoke", [*TINY_SETS, "criteria.checkpoint_mb=< 4"])
    with pytest.raises(KeyboardInterrupt):
        execute(rejudged, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    paths = run_paths(tmp_path, "smoke")
    assert runner.report_awaits_promotion(paths)
    monkeypatch.undo()
    runner.recover_interrupted_promote(paths)
    assert json.loads((paths.reports / "audit.json").read_text())["spec"]["criteria"]["checkpoint_mb"] == "< 4"


def test_a_group_norm_run_records_its_group_counts_and_the_sheet_gives_them(tmp_path: Path) -> None:
    spec = load_spec("smoke", [*TINY_SETS, "model.norm=group", "train.epochs=1"])
    execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    audit = json.loads((tmp_path / "reports/smoke/audit.json").read_text())
    assert audit["model"]["norm_groups"] == {"16": 16, "32": 32, "64": 32}  # resnet8 (smoke): widths 16, 32, 64
    sheet = (tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()
    assert "| Normalisation | group (GroupNorm: 16 groups at 16 channels; 32 groups at 32, 64 channels) |" in sheet


@pytest.mark.parametrize(("status", "found", "seeded", "nothing"), [
    ("completed", "last.pt", True, True), ("early_stopped", "last.pt", True, True),
    ("diverged", "last.pt", True, False),  # its last epoch is trained again (and diverges where it did)
    ("completed", "step-00000012.pt", True, False),  # last.pt damaged: trained on from the step checkpoint
    ("completed", "last.pt", False, False),  # an interrupted run's
])  # fmt: skip
def test_a_resume_trains_nothing_only_from_a_finished_run_s_own_end(
    tmp_path: Path, status: str, found: str, seeded: bool, nothing: bool
) -> None:
    """The resume notes had said "no step is trained again (the run had finished)" on a diverged run."""
    paths = run_paths(tmp_path, "smoke")
    paths.reports.mkdir(parents=True)
    (paths.reports / "audit.json").write_text(json.dumps({"run": {"status": status}}))
    assert runner.trains_nothing(paths, paths.ckpt_staging / found, seeded) is nothing
    state = {"compute": {"device": "cpu", "torch_threads": 64}, "versions": {"torch": "0.0"}}
    said = [*runner.resume_version_notes(Path(found), state, nothing),
            *runner.resume_compute_notes(Path(found), state, torch.device("cpu"), nothing)]
    assert any(runner.MEASURED_AGAIN in n for n in said) is nothing


def test_a_step_checkpoint_that_is_not_intact_is_recorded_without_a_digest_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its sidecar's digest had been recorded as the file's (or, with no sidecar, the run had failed
    at its last stage on every retry)."""
    digests = {step: checkpoint.save(tmp_path / f"step-{step:08d}.pt", {"global_step": step}) for step in (4, 8, 12)}
    checkpoint.digest_path(tmp_path / "step-00000004.pt").unlink()
    with (tmp_path / "step-00000008.pt").open("ab") as f:
        f.write(b"x")
    (tmp_path / "step-backup.pt").write_bytes(b"the user's own: not a step checkpoint")
    facts = runner._step_checkpoint_facts(tmp_path, Path("checkpoints/smoke"))
    assert [(c["path"], c["global_step"], c["sha256"]) for c in facts] == [
        ("checkpoints/smoke/step-00000004.pt", 4, None), ("checkpoints/smoke/step-00000008.pt", 8, None),
        ("checkpoints/smoke/step-00000012.pt", 12, digests[12])]  # fmt: skip
    assert facts[0]["problem"] == ("no digest file (step-00000004.pt.sha256 is missing: it was removed, or the "
                                  "file was copied without it)")
    assert facts[1]["problem"].startswith("sha256 mismatch") and "problem" not in facts[2]
    assert [c["bytes"] for c in facts] == [(tmp_path / Path(c["path"]).name).stat().st_size for c in facts]
    real = checkpoint.verify

    def unreadable(path: Path) -> str | None:  # as for a file this process may not read (root reads anything)
        if path.name == "step-00000012.pt":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(checkpoint, "verify", unreadable)
    last = runner._step_checkpoint_facts(tmp_path, Path("checkpoints/smoke"))[2]
    assert (last["sha256"], last["problem"]) == (None, "unreadable (Permission denied)")


def test_a_run_records_its_init_for_its_norm_and_its_step_checkpoints_and_the_sheet_gives_them(tmp_path: Path) -> None:
    # 500 training images at batch 64: 8 steps; step checkpoints at 3 and 6 (none at an epoch's end)
    spec = load_spec("smoke", [*TINY_SETS, "model.norm=none", "train.epochs=1", "train.checkpoint_every_steps=3"])
    execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    audit = json.loads((tmp_path / "reports/smoke/audit.json").read_text())
    assert audit["model"]["init"] == model_info("resnet8").for_norm("none").init != model_info("resnet8").init
    assert "conv biases 0" in audit["model"]["init"]  # no norm layers: the convs carry the biases
    sheet = (tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()
    assert f"| Initialisation | {audit['model']['init']} |" in sheet
    folder = tmp_path / "checkpoints/smoke"
    assert [c["global_step"] for c in audit["step_checkpoints"]] == [3, 6]
    for c in audit["step_checkpoints"]:
        on_disk = tmp_path / c["path"]
        assert on_disk.parent == folder and on_disk.stat().st_size == c["bytes"]
        assert checkpoint.verify(on_disk) is None and checkpoint.recorded_digest(on_disk) == c["sha256"]
        assert f"| step | `{c['path']}` | " in sheet
    assert "| step | `checkpoints/smoke/step-00000003.pt` |" in sheet and "| 0 (+3 steps) | 3 |" in sheet
    assert "The 2 `step` rows are the mid-epoch checkpoints (`train.checkpoint_every_steps`)" in sheet


def test_a_rerun_says_it_will_replace_the_earlier_run(tmp_path: Path) -> None:
    spec, _ = _finished_run(tmp_path)
    said: list[str] = []
    execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=said.append)
    assert f"note: {tmp_path / 'reports/smoke'} holds an earlier run of this name; this run replaces it when it finishes" \
        ", and it stays as it is until then" in said


def test_a_file_where_the_run_folder_goes_is_refused_before_training(tmp_path: Path) -> None:
    spec = load_spec("smoke", TINY_SETS)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/smoke").write_text("mine")
    with pytest.raises(InvalidInput, match="reports/smoke: not a folder, but this run writes its reports there"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert (tmp_path / "reports/smoke").read_text() == "mine"
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [".smoke.lock"]  # only the lock file stays


def test_a_promote_killed_between_its_renames_is_put_back(tmp_path: Path) -> None:
    """`.old` holding the earlier run and no final folder: the earlier run is put back as it was."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    for final in (paths.checkpoints, paths.reports):
        (final / runner.SET_ASIDE).touch()  # as promote marks it
        final.rename(final.with_name("smoke.old"))  # killed after the first rename of that promote
        recover_interrupted_promote(paths)
        assert _files(tmp_path) == before
    (paths.reports / runner.SET_ASIDE).touch()
    paths.reports.rename(paths.reports.with_name("smoke.old"))
    outcome = execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert outcome.audit["run"]["status"] == "completed"
    assert not paths.reports.with_name("smoke.old").exists() and (paths.reports / "audit.json").is_file()


@pytest.mark.parametrize("with_final", [True, False])
def test_a_users_copy_of_a_run_under_the_reserved_old_name_is_refused_not_deleted(tmp_path: Path, with_final: bool) -> None:
    """A user test: `cp -a reports/smoke reports/smoke.old` (a backup before re-running) was
    deleted by the next run without a word; moved there with the run's folders, it was put back
    as "an earlier run" and then deleted."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    for final in (paths.reports, paths.checkpoints):
        if with_final:
            shutil.copytree(final, final.with_name("smoke.old"))
        else:
            final.rename(final.with_name("smoke.old"))
    kept = _files(tmp_path)
    back = "" if with_final else ", or if an older auditor left it, rename it back to smoke"  # not over the run in place
    with pytest.raises(InvalidInput, match=r"smoke.old: in the way: .*this one was not set aside by a run \(it holds a run: "
                                           rf"a copy of yours\?\): rename or move it{back}$"):  # fmt: skip
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert _files(tmp_path) == kept
    # One made while a run trained is found at its promote: left as it is, the results kept in staging.
    shutil.rmtree(paths.reports.with_name("smoke.old"))
    staging = tmp_path / "staged"
    staging.mkdir()
    (staging / "audit.json").write_text("{}")
    old = paths.checkpoints.with_name("smoke.old")
    if not old.exists():
        shutil.copytree(tmp_path / "checkpoints" / "smoke.old", old)
    with pytest.raises(InvalidInput, match=rf"{old}: appeared while this run worked, .*results wait in {staging}: rename"):
        runner.promote(staging, paths.checkpoints)
    assert (staging / "audit.json").is_file() and any(old.glob("*.pt"))


def test_a_reserved_old_name_appearing_during_training_is_found_before_either_promote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review: one appearing beside the reports had been found only after the checkpoints
    were promoted, leaving the earlier report beside the new checkpoints."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    from auditor import render

    real = render.render_run

    def user_copies_the_report(run_dir: Path, *a: object) -> Path:
        shutil.copytree(paths.reports, paths.reports.with_name("smoke.old"))
        return real(run_dir, *a)

    monkeypatch.setattr(render, "render_run", user_copies_the_report)
    with pytest.raises(InvalidInput, match=r"reports/smoke.old: appeared while this run worked"):
        execute(load_spec("smoke", [*TINY_SETS, "seed=7"]), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                log=lambda m: None)
    in_place = {k: v for k, v in _files(tmp_path).items() if k.split("/")[1] == "smoke"}
    assert in_place == before  # the earlier run, report and checkpoints together
    assert has_checkpoint(paths.ckpt_staging)  # the new run waits for --resume


def test_an_empty_run_folder_set_aside_holds_its_mark_alone_and_is_put_back(tmp_path: Path) -> None:
    """The review: a run that diverged before its first checkpoint promotes an empty checkpoints
    folder; set aside, it holds only the mark, and had been refused as not the tool's own."""
    paths = run_paths(tmp_path, "smoke")
    paths.checkpoints.mkdir(parents=True)
    (paths.checkpoints / runner.SET_ASIDE).touch()
    paths.checkpoints.rename(paths.checkpoints.with_name("smoke.old"))  # killed between the renames
    recover_interrupted_promote(paths)
    assert paths.checkpoints.is_dir() and not any(paths.checkpoints.iterdir())


def test_a_run_killed_between_its_two_promotes_gets_its_own_report(tmp_path: Path) -> None:
    """Checkpoints already promoted, the finished report still in staging: promoted, not the earlier one put back."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    new = load_spec("smoke", [*TINY_SETS, "seed=7"])
    with pytest.MonkeyPatch.context() as mp:
        real = runner.promote
        mp.setattr(runner, "promote", lambda staging, final: real(staging, final) if final == paths.checkpoints else None)
        execute(new, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert paths.reports_staging.is_dir() and json.loads((paths.reports / "audit.json").read_text())["spec"]["seed"] == 0
    recover_interrupted_promote(paths)
    audit = json.loads((paths.reports / "audit.json").read_text())
    assert audit["spec"]["seed"] == 7 and not paths.reports_staging.exists()
    assert audit["checkpoints"]["last"]["sha256"] == checkpoint.recorded_digest(paths.last_checkpoint)


@pytest.mark.parametrize("attr", ["reports", "checkpoints"])
def test_a_symlinked_run_folder_is_refused_before_training_and_a_dangling_one_too(tmp_path: Path, attr: str) -> None:
    """A user test: a run folder linked to another disk was replaced by a folder of the run's own
    (the link's target untouched), so checkpoints meant for that disk came back without a word."""
    spec = load_spec("smoke", TINY_SETS)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "smoke").mkdir(parents=True)
    (elsewhere / "smoke" / "mine.txt").write_text("mine")
    (tmp_path / f"out/{attr}").mkdir(parents=True)
    (tmp_path / f"out/{attr}/smoke").symlink_to(elsewhere / "smoke")
    with pytest.raises(InvalidInput, match=rf"{attr}/smoke: a symbolic link \(to {elsewhere / 'smoke'}\); a run "
                                           rf"replaces its {attr} folder as a whole"):  # fmt: skip
        execute(spec, "smoke", tmp_path / "out", resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert (tmp_path / f"out/{attr}/smoke").is_symlink() and sorted(p.name for p in elsewhere.rglob("*")) == ["mine.txt", "smoke"]
    assert not (tmp_path / "out/checkpoints/smoke.partial").exists()  # refused before training
    (tmp_path / f"out/{attr}/smoke").unlink()
    (tmp_path / f"out/{attr}/smoke").symlink_to(tmp_path / "unmounted" / "smoke")
    with pytest.raises(InvalidInput, match=f"{attr}/smoke: not a folder, but this run writes its {attr} there"):
        execute(spec, "smoke", tmp_path / "out", resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert not (tmp_path / "out/checkpoints/smoke.partial").exists()


def test_a_deletion_cut_short_leaves_no_partial_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    real_rmtree = shutil.rmtree

    def cut_short(path: Path, ignore_errors: bool = False) -> None:
        victim = next((p for p in Path(path).rglob("*") if p.is_file()), None)
        if victim is not None:
            victim.unlink()  # one file deleted, then "killed"
            return
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(runner.shutil, "rmtree", cut_short)
    said: list[str] = []
    execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=said.append)
    monkeypatch.undo()
    assert not paths.reports.with_name("smoke.old").exists() and not paths.checkpoints.with_name("smoke.old").exists()
    left = sorted(m for m in said if m.startswith("note: ") and "not all of it could be deleted" in m)
    assert len(left) == 2, said  # the earlier checkpoints and report, each said, not left silently
    for folder, note in zip((paths.checkpoints, paths.reports), left, strict=True):
        assert note.startswith(f"note: {folder.parent}/.smoke.old.trash-") and note.endswith(
            "the next run of this name tries again, or delete it yourself")
    said.clear()
    execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=said.append)  # not refused
    assert not list(paths.reports.parent.glob(".*trash*"))  # the leftover went with the next promote
    assert not [m for m in said if "could be deleted" in m]


def test_a_write_failing_after_training_keeps_the_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec("smoke", TINY_SETS)
    paths = run_paths(tmp_path, spec.name)

    def disk_full(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(paths.reports_staging / "audit.json"))

    monkeypatch.setattr(runner, "write_run_files", disk_full)
    with pytest.raises(InvalidInput, match=r"audit.json: cannot write the finished run: No space left on device; .*--resume"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    keep = paths.ckpt_staging.with_name("kept")
    shutil.copytree(paths.ckpt_staging, keep)
    for f in paths.ckpt_staging.iterdir():  # a run that wrote no checkpoint (it diverged at once) keeps nothing
        f.unlink()
    with pytest.raises(InvalidInput) as err:
        runner.finish_staged(paths, {}, None)  # type: ignore[arg-type]  # the disk is still full
    assert str(err.value).endswith(f"; {runner.NOTHING_KEPT}")
    shutil.rmtree(paths.ckpt_staging)
    keep.rename(paths.ckpt_staging)
    monkeypatch.undo()
    trained = checkpoint.load(paths.ckpt_staging / "last.pt")
    logged: list[str] = []
    outcome = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=logged.append)
    assert outcome.audit["run"]["status"] == "completed" and outcome.audit["run"]["resumed_from"] == "last.pt"
    assert not any(m.startswith("epoch ") for m in logged), logged  # measured and written, not trained again
    assert outcome.audit["training"]["history"] == [{**h} for h in trained["history"]]


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


def test_resume_with_no_intact_checkpoint_says_how_to_start_over(tmp_path: Path) -> None:
    """An interrupted run's staging folder must go before a fresh start; a finished run's copy goes by itself."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    shutil.copytree(paths.checkpoints, paths.ckpt_staging)  # as an interrupted run leaves it
    for pt in paths.ckpt_staging.glob("*.pt"):
        pt.write_bytes(b"damaged")
    with pytest.raises(InvalidInput, match=rf"to start over, remove {paths.ckpt_staging} and run without --resume$"):
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert paths.ckpt_staging.is_dir()  # the user decides


@pytest.mark.parametrize("finished", [False, True], ids=["interrupted", "finished"])
def test_a_run_whose_last_checkpoint_is_damaged_resumes_from_an_intact_best(tmp_path: Path, finished: bool) -> None:
    """User tests: with last.pt damaged and best.pt intact (the same training state), --resume said
    'no intact checkpoint' and advised removing the run; of a finished run, it said so still after
    the interrupted run's case was mended."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    if not finished:
        shutil.rmtree(paths.reports)
        paths.checkpoints.rename(paths.ckpt_staging)  # as an interrupted run leaves them
    last = (paths.checkpoints if finished else paths.ckpt_staging) / "last.pt"
    last.write_bytes(last.read_bytes()[:-1] + b"x")
    said: list[str] = []
    result = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    notes = result.audit["run"]["resume_notes"]
    assert notes[0].startswith("skipped last.pt: sha256 mismatch"), notes
    assert notes[1].startswith("continuing from best.pt, the newest checkpoint that verifies"), notes
    assert any("continuing from" in m and "best.pt" in m for m in said)
    assert result.audit["run"]["resumed_from"] == "best.pt" and result.audit["run"]["resumed_from_kept"] is True
    after = _files(tmp_path)  # trained on from best.pt's epoch to the same weights, bit for bit
    for name in ("checkpoints/smoke/best.pt", "checkpoints/smoke/last.pt"):
        a, b = torch.load(io.BytesIO(before[name]), weights_only=False), torch.load(io.BytesIO(after[name]), weights_only=False)
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), name


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "interrupted"])
def test_a_damaged_last_pt_beyond_an_earlier_best_pt_is_refused_naming_best_pt_then_trained_on_from_it(
    tmp_path: Path, finished: bool
) -> None:
    """The cases above have best.pt equal to last.pt, so a finished run's resume trains nothing. Here
    best.pt holds the first of two epochs. While a damaged last.pt's bytes read as further on, the
    refusal had said "no intact checkpoint", with best.pt intact; once last.pt cannot be read (or, in
    an interrupted run, is removed, as the refusal says), the second epoch is trained again from it."""
    spec, said = load_spec("smoke", TINY_SETS), []
    paths = run_paths(tmp_path, spec.name)

    def stop_after_epoch_1(line: str) -> None:
        if line.startswith("epoch 1/"):  # its checkpoint has landed before the line is said
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=stop_after_epoch_1)
    first_epoch = (paths.ckpt_staging / "last.pt").read_bytes()
    execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    before = checkpoint.load(paths.last_checkpoint)
    if not finished:
        shutil.rmtree(paths.reports)
        paths.checkpoints.rename(paths.ckpt_staging)  # as an interrupted run leaves them
    folder = paths.checkpoints if finished else paths.ckpt_staging
    checkpoint.save_bytes(folder / "best.pt", first_epoch)  # as if epoch 1 had been selected
    last = folder / "last.pt"
    last.write_bytes(last.read_bytes()[:-1] + b"x")  # its step still reads: only its digest may be damaged
    damaged = _files(tmp_path)
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    steps = (checkpoint.position(folder / "best.pt"), before["global_step"])
    advice = "" if finished else f"to train on from best.pt (the steps after it are trained again), remove {last}; "
    assert str(err.value) == (
        f"--resume: no checkpoint to continue from in {folder} (skipped last.pt: {checkpoint.verify(last)}; best.pt "
        f"verifies but holds step {steps[0]}, before the step {steps[1]} that last.pt's bytes read as: it is not taken "
        f"over them, as only last.pt's digest may be damaged); {advice}to start over, "
        + ("run without --resume" if finished else f"remove {folder} and run without --resume"))
    assert _files(tmp_path) == damaged  # the refusal changed nothing
    if finished:
        last.write_bytes(b"damaged")  # a finished run needs a last.pt to be resumed: one that cannot be read
    else:
        last.unlink()  # as the refusal says
    result = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    assert result.audit["run"]["resumed_from"] == "best.pt" and result.audit["run"]["status"] == "completed"
    assert [m.split()[1] for m in said if m.startswith("epoch ")] == ["2/2"]  # epoch 2 trained again, epoch 1 not
    after = checkpoint.load(paths.last_checkpoint)
    assert after["epoch"] == 2 and all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


def test_resuming_on_another_thread_count_is_said(tmp_path: Path) -> None:
    """CPU reductions are split by thread: a resume on another count is no longer an uninterrupted run's twin."""
    from auditor.environment import cpu_model

    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    state = checkpoint.load(paths.last_checkpoint)
    threads, kernels = torch.get_num_threads(), torch.backends.cpu.get_cpu_capability()
    kernel_env = {k: os.environ[k] for k in environment.KERNEL_ENV if k in os.environ}
    assert state["compute"] == {"device": "cpu", "processor": cpu_model(), "torch_threads": threads,
                                "cpu_capability": kernels, "kernel_env": kernel_env}  # fmt: skip
    extra = (", " + " ".join(f"{k}={v}" for k, v in kernel_env.items())) if kernel_env else ""
    cpu = f"cpu ({cpu_model()}, {{}} torch threads, {kernels} kernels{extra})"
    same = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert not any("torch threads" in n for n in same.audit["run"]["resume_notes"])
    checkpoint.save(paths.last_checkpoint, {**state, "compute": {**state["compute"], "torch_threads": threads + 1}})
    moved = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    # A finished run: nothing is trained again, so the weights stay those of the other thread count.
    note = (f"last.pt was trained on {cpu.format(threads + 1)}; no step is trained again "
            "(the run had finished), so the weights are those trained there; this process only measures them "
            f"again and writes the sheet, whose environment is its own ({cpu.format(threads)})")
    assert note in moved.audit["run"]["resume_notes"], moved.audit["run"]["resume_notes"]
    assert "may differ in its last bits" not in " ".join(moved.audit["run"]["resume_notes"])
    sheet = (paths.reports / "REPRODUCIBILITY.md").read_text()
    assert note in sheet
    # The determinism section names the count the weights were trained at, not only this process's.
    assert moved.audit["training"]["trained_on"]["torch_threads"] == threads + 1
    assert moved.audit["training"]["trained_here"] is False and moved.audit["training"]["other_cpu_share"] is None
    assert "| not measured: this process trained nothing (a resume after the training had ended" in sheet
    assert (f"| torch intra-op / inter-op threads | {threads} / {torch.get_num_interop_threads()} (this process's, "
            f"which trained nothing: the weights were trained at {threads + 1} torch threads, on {cpu_model()}) |") in sheet
    assert (f"thread count {threads + 1} (the weights were trained at it; this process, which trained nothing, ran "
            f"{threads}): CPU reductions") in " ".join(moved.audit["determinism"]["nondeterminism_sources"])
    assert same.audit["training"]["trained_on"]["torch_threads"] == threads  # the same count: nothing to add
    # An interrupted run continues training on the other thread count: its last bits may differ.
    [going_on] = runner.resume_compute_notes(paths.last_checkpoint, checkpoint.load(paths.last_checkpoint), torch.device("cpu"))
    assert going_on == (f"last.pt was written on {cpu.format(threads + 1)}; this run continues "
                        f"on {cpu.format(threads)}: the result may differ in its last bits "
                        "from an uninterrupted run on either")
    # Other CPU kernels (ATEN_CPU_CAPABILITY=default, say) round otherwise: said too.
    other = {**state, "compute": {**state["compute"], "cpu_capability": "DEFAULT"}}
    [kernel_note] = runner.resume_compute_notes(paths.last_checkpoint, other, torch.device("cpu"))
    assert kernel_note.startswith(f"last.pt was written on cpu ({cpu_model()}, {threads} torch threads, DEFAULT kernels")
    # A checkpoint written before the kernel set was recorded is compared on what it holds.
    three = {k: state["compute"][k] for k in ("device", "processor", "torch_threads")}
    assert runner.resume_compute_notes(paths.last_checkpoint, {**state, "compute": three}, torch.device("cpu")) == []
    older = {k: v for k, v in state.items() if k != "compute"}  # written before checkpoints recorded it
    checkpoint.save(paths.last_checkpoint, older)
    unknown = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert any(n.startswith("last.pt did not record the device, processor and torch thread count")
               for n in unknown.audit["run"]["resume_notes"])  # fmt: skip


def test_identical_final_checkpoints_are_verified_each_and_deserialised_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    assert checkpoint.recorded_digest(paths.checkpoints / "best.pt") == checkpoint.recorded_digest(paths.last_checkpoint)
    loads, verified = [], []
    real_load, real_verify = checkpoint.load, checkpoint.verify
    monkeypatch.setattr(checkpoint, "load", lambda p, **k: loads.append(p.name) or real_load(p, **k))
    monkeypatch.setattr(checkpoint, "verify", lambda p: verified.append(p.name) or real_verify(p))
    final = runner.load_final_checkpoints(paths.checkpoints)
    assert final["best"] is final["last"] and loads == ["last.pt"] and verified == ["last.pt", "best.pt"]
    (paths.checkpoints / "best.pt").write_bytes(b"damaged")  # its digest no longer matches: refused, not reused
    with pytest.raises(InvalidInput, match="best.pt: checkpoint is not intact: sha256 mismatch"):
        runner.load_final_checkpoints(paths.checkpoints)


def test_a_busy_machine_while_timing_is_said_in_the_log_and_the_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor import measure

    def half(self: measure.ForeignCpu) -> float:  # as if another process held half the CPU for 2 s
        self.window_s = 2.0
        return 0.5

    monkeypatch.setattr(measure.ForeignCpu, "stop", half)
    logged: list[str] = []
    outcome = execute(load_spec("smoke", TINY_SETS), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                      log=logged.append)  # fmt: skip
    assert outcome.audit["measurements"]["latency"]["other_cpu_share"] == 0.5
    assert "note: other processes used 50% of the CPU while the latency was timed" in "\n".join(logged)
    assert outcome.audit["training"]["other_cpu_share"] == 0.5  # the training's meter, which a user test missed on the console
    assert "note: other processes used 50% of the CPU while this run trained: its training time is longer" in "\n".join(logged)
    assert "**Busy machine:**" in (outcome.report_dir / "REPRODUCIBILITY.md").read_text()



def start(paths: RunPaths, resume: bool) -> bool:
    """`prepare_dirs` as `execute` calls it: in the run it has claimed."""
    with runner.claimed_run(paths) as claimed:
        return runner.prepare_dirs(paths, resume, *claimed)


needs_flock = pytest.mark.skipif(sys.platform == "win32", reason="no flock: runs are not locked there")


def hold_lock(paths: RunPaths) -> int:
    """Take the run's lock as another process's run would (flock locks conflict between open files)."""
    paths.checkpoints.parent.mkdir(parents=True, exist_ok=True)
    fd = lock_file(paths.lock)
    assert fd is not None, "this file system cannot lock files"
    return fd


@needs_flock
def test_a_run_of_this_name_going_on_is_refused_and_an_abandoned_one_taken_over(tmp_path: Path) -> None:
    paths = run_paths(tmp_path, "smoke")
    paths.ckpt_staging.mkdir(parents=True)
    left = paths.ckpt_staging / ".last.pt.x1.tmp"  # as a run killed before its first checkpoint leaves
    left.write_bytes(b"half")
    holder = hold_lock(paths)
    try:
        for resume in (False, True):  # --resume would write into the live run's folder too
            with pytest.raises(InvalidInput, match=f"{paths.lock}: a run named 'smoke' is going on"):
                start(paths, resume=resume)
        assert left.is_file()  # a live run's folder is left alone
    finally:
        os.close(holder)
    assert start(paths, resume=False) is False  # nobody holds it: taken over and emptied
    assert not left.exists() and (paths.reports_staging / "figures").is_dir()
    checkpoint.save(paths.ckpt_staging / "step-00000002.pt", {"model": {}, "global_step": 2})
    with pytest.raises(InvalidInput, match="an interrupted run of this name exists; continue it with --resume"):
        start(paths, resume=False)
    assert (paths.ckpt_staging / "step-00000002.pt").is_file()  # kept for --resume
    # A user test: a --resume of a finished run killed while it measured again left a copy of it, then
    # called an interrupted run; its last.pt is the finished run's, and is said to be.
    paths.checkpoints.mkdir(parents=True)
    for folder in (paths.checkpoints, paths.ckpt_staging):  # the finished run, and the copy a --resume made of it
        checkpoint.save(folder / "step-00000002.pt", {"model": {}, "global_step": 2})
        finished = checkpoint.save(folder / "last.pt", {"model": {}, "global_step": 4})
    assert checkpoint.digest_path(paths.ckpt_staging / "last.pt").read_text().startswith(finished)
    with pytest.raises(InvalidInput, match=re.escape(
            f"{paths.ckpt_staging}: a copy of the finished run, made by a --resume of it that was stopped before it "
            "finished (its checkpoints are the finished run's: nothing trained there was saved); remove that folder "
            f"(the finished run in {paths.checkpoints} is as it was), or run that --resume again")):  # fmt: skip
        start(paths, resume=False)
    # The review: a resume of a diverged run trains on from a step checkpoint, its last.pt untouched.
    checkpoint.save(paths.ckpt_staging / "step-00000003.pt", {"model": {}, "global_step": 3})
    with pytest.raises(InvalidInput, match="an interrupted run of this name exists; continue it with --resume"):
        start(paths, resume=False)
    checkpoint.save(paths.ckpt_staging / "last.pt", {"model": {}, "global_step": 6})  # trained on past it
    with pytest.raises(InvalidInput, match="an interrupted run of this name exists; continue it with --resume"):
        start(paths, resume=False)


@needs_flock
def test_the_lock_is_held_through_the_promotion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flock holds a file, not a name: a lock on the staging folder would have moved with it."""
    refused: list[str] = []
    real = runner.promote

    def promote_then_try_a_second_run(staging: Path, final: Path) -> None:
        real(staging, final)
        with pytest.raises(InvalidInput) as err:  # the whole start, leftovers' check included
            execute(load_spec("smoke", TINY_SETS), "smoke", tmp_path, resume=False, argv=["auditor", "run"],
                    log=lambda m: None)  # fmt: skip
        refused.append(str(err.value))

    monkeypatch.setattr(runner, "promote", promote_then_try_a_second_run)
    execute(load_spec("smoke", TINY_SETS), "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert len(refused) == 2 and all("a run named 'smoke' is going on" in r for r in refused)  # after each promotion
    assert (tmp_path / "reports/smoke/REPRODUCIBILITY.md").is_file()
    assert start(run_paths(tmp_path, "smoke"), resume=False) is False  # let go when the run ended


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Terminated, RuntimeError])
def test_a_run_stopped_before_its_first_checkpoint_removes_its_staging(tmp_path: Path, stop: type[BaseException]) -> None:
    paths = run_paths(tmp_path, "smoke")
    with pytest.raises(stop), runner.claimed_run(paths) as claimed:
        runner.prepare_dirs(paths, False, *claimed)
        raise stop
    assert not paths.ckpt_staging.exists() and not paths.reports_staging.exists()  # the same command starts again
    with pytest.raises(stop), runner.claimed_run(paths) as claimed:
        runner.prepare_dirs(paths, False, *claimed)
        checkpoint.save(paths.ckpt_staging / "step-00000002.pt", {"model": {}, "global_step": 2})
        raise stop
    assert (paths.ckpt_staging / "step-00000002.pt").is_file()  # something to continue from stays


def test_where_files_cannot_be_locked_a_found_staging_folder_is_refused_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fileio, "lock_file", lambda path: None)  # no flock: not POSIX, or such a file system
    paths = run_paths(tmp_path, "smoke")
    paths.ckpt_staging.mkdir(parents=True)
    with pytest.raises(InvalidInput, match="stopped before its first checkpoint, or is running now .*cannot be locked"):
        start(paths, resume=False)
    assert paths.ckpt_staging.is_dir()  # perhaps a live run's: not removed
    shutil.rmtree(paths.ckpt_staging)
    assert start(paths, resume=False) is False  # one it makes itself is its own


def test_a_resume_that_cannot_start_removes_its_copy_of_the_finished_run(tmp_path: Path) -> None:
    paths = run_paths(tmp_path, "smoke")
    checkpoint.save(paths.checkpoints / "last.pt", {"model": {}, "global_step": 9})
    paths.reports_staging.parent.mkdir(parents=True)
    paths.reports_staging.write_text("a file where the report staging folder goes")
    with pytest.raises(InvalidInput, match="cannot write under"):
        start(paths, resume=True)
    assert not paths.ckpt_staging.exists() and (paths.checkpoints / "last.pt").is_file()


def test_a_run_that_cannot_start_leaves_no_staging_folder(tmp_path: Path) -> None:
    paths = run_paths(tmp_path, "smoke")
    paths.reports_staging.parent.write_text("a file where reports/ goes")
    with pytest.raises(InvalidInput, match="is a file, not a folder"):
        start(paths, resume=False)
    assert not paths.ckpt_staging.exists()


def test_resuming_a_run_that_wrote_no_checkpoint_says_it_starts_over(tmp_path: Path) -> None:
    spec = load_spec("smoke", TINY_SETS)
    paths = run_paths(tmp_path, "smoke")
    paths.ckpt_staging.mkdir(parents=True)
    said: list[str] = []
    claim = runner.Claim(made=False, locked=True)
    found, notes, seeded = runner.stage_run(paths, spec, True, said.append, torch.device("cpu"), claim, "f" * 64)
    assert found is None and notes == [] and not seeded
    [line] = said
    assert line == f"resume: no checkpoint in {paths.ckpt_staging} (none was written, or they were removed): training from the start"


def test_a_resume_with_nothing_to_continue_makes_nothing_under_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InvalidInput, match=r"--resume: no checkpoint to resume under .*run without --resume"):
        execute(load_spec("smoke", TINY_SETS), "smoke", out, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert not out.exists()  # no folders, no lock file


def test_a_resume_of_a_finished_run_without_checkpoints_says_it_finished(tmp_path: Path) -> None:
    """A finished run whose checkpoints are gone (a run that diverged before its first, or removed):
    the refusal names that run and its status, not merely a missing checkpoint."""
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, "smoke")
    shutil.rmtree(paths.checkpoints)
    before = _files(tmp_path)
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert str(err.value) == (
        f"--resume: the finished run in {paths.reports} (status completed) has no {paths.last_checkpoint}, which a "
        "finished run needs to be resumed (none was written, or it was removed), so there is nothing to continue; run without "
        "--resume to train it again (it replaces that run when it finishes), or `auditor check`/`auditor render` that "
        "run to judge or show it again"
    )
    assert _files(tmp_path) == before


def test_a_resume_of_a_finished_run_whose_last_checkpoint_is_gone_names_the_step_checkpoints(tmp_path: Path) -> None:
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, "smoke")
    for p in paths.checkpoints.iterdir():
        p.unlink()
    for step in (9, 12, 10):  # the newest by number, not by name (step-9 sorts after step-12)
        (paths.checkpoints / f"step-{step}.pt").write_bytes(b"x")
    with pytest.raises(InvalidInput) as err:
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert str(err.value) == (
        f"--resume: {paths.last_checkpoint} is missing, which a finished run needs to be resumed; the step checkpoints "
        "beside it (3 files, the newest step-12.pt) are not resumed from: run without --resume to train it again"
    )


@pytest.mark.parametrize("record", [None, "not json", '{"run": {"status": 3}}', '{"run": {}}'])
def test_nothing_to_resume_without_a_readable_finished_status(tmp_path: Path, record: str | None) -> None:
    paths = run_paths(tmp_path, "smoke")
    if record is not None:
        paths.reports.mkdir(parents=True)
        (paths.reports / "audit.json").write_text(record)
    assert runner._nothing_to_resume(paths) == (
        f"--resume: no checkpoint to resume under {paths.checkpoints}; run without --resume to train it (a run "
        "stopped before its first checkpoint leaves nothing to continue: its stop said to start again)"
    )


def test_a_resume_past_a_run_stopped_before_its_first_checkpoint_continues_the_finished_run(tmp_path: Path) -> None:
    """Staging left by a later run that wrote no checkpoint does not hide the finished run:
    --resume re-judges that one (no training) instead of training a new one from the start."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, "smoke")
    paths.ckpt_staging.mkdir(parents=True)
    said: list[str] = []
    execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    after = _files(tmp_path)
    assert not any("training from the start" in m for m in said), said
    assert not paths.ckpt_staging.exists()
    ckpts = [k for k in before if k.startswith("checkpoints/") and k.endswith(".pt")]
    assert ckpts and all(after[k] == before[k] for k in ckpts)  # trained nothing: the same weights


def test_a_folder_that_cannot_be_written_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a read-only reports/ mount (chmod would not stop root): the folder refused is named."""
    paths = run_paths(tmp_path, "smoke")
    real_mkdir = Path.mkdir

    def read_only_reports(self: Path, *args: object, **kwargs: object) -> None:
        if self.is_relative_to(tmp_path / "reports"):
            raise OSError(30, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_reports)
    with pytest.raises(InvalidInput, match=f"cannot write under {tmp_path}: {paths.reports_staging}/figures: Read-only"):
        start(paths, resume=False)


def test_a_resume_on_other_software_says_whether_anything_is_trained_on_it(tmp_path: Path) -> None:
    state = {"versions": {"auditor": "0.0.1", "torch": "1.0"}}
    [going_on] = runner.resume_version_notes(tmp_path / "step-00000004.pt", state)
    assert going_on.startswith("step-00000004.pt was written with auditor 0.0.1 (source not recorded), torch 1.0; "
                               "this run continues with auditor ")
    assert going_on.endswith("the result may differ in its last bits from an uninterrupted run under either")
    [finished] = runner.resume_version_notes(tmp_path / "last.pt", state, finished=True)
    assert finished.startswith("last.pt was written with auditor 0.0.1 (source not recorded), torch 1.0; no step is trained again")
    # The same version with edited code: the digest tells them apart.
    edited = {"versions": {**environment.software_versions(), "auditor_source": "0" * 12}}
    [note] = runner.resume_version_notes(tmp_path / "last.pt", edited)
    assert note.startswith(f"last.pt was written with auditor {auditor.__version__} (source 000000000000), torch ")
    assert runner.resume_version_notes(tmp_path / "last.pt", {"versions": environment.software_versions()}) == []
    assert "may differ" not in finished


def test_a_resume_under_other_class_names_says_so(tmp_path: Path) -> None:
    names = [f"c{k}" for k in range(10)]
    state = {"data_fingerprint": "f" * 64, "classes": names}
    ckpt = tmp_path / "last.pt"
    assert runner.resume_data_notes(ckpt, state, "f" * 64, "start over", names) == []
    swapped = [*names[:3], "c5", "c4", "c3", *names[6:]]
    [note] = runner.resume_data_notes(ckpt, state, "f" * 64, "start over", swapped)
    assert note == ("last.pt was trained when the class names were c3, c5 (now c5, c3): the labels trained on are the "
                    "same, and the sheet names the classes as read now")  # fmt: skip
    assert runner.resume_data_notes(ckpt, {"data_fingerprint": "f" * 64}, "f" * 64, "x", swapped) == []  # older: none


def test_a_resume_copy_of_a_finished_run_cut_short_is_removed_not_promoted(tmp_path: Path) -> None:
    """A --resume killed while it copied the finished run's checkpoints into staging (SIGKILL: no
    cleanup ran) left part of them there; taken for an interrupted run, its promotion would have
    replaced the finished run's best.pt and step checkpoints with that part."""
    spec, before = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)
    paths.ckpt_staging.mkdir()
    (paths.ckpt_staging / runner.SEEDING).write_text("being made")
    for name in ("last.pt", "last.pt.sha256"):
        shutil.copy(paths.checkpoints / name, paths.ckpt_staging / name)
    with pytest.raises(InvalidInput, match="a copy of the finished run that a --resume was making, or is making now"):
        runner.discard_half_seeded(paths, locked=False)  # files cannot be locked: not told from a live copy
    said: list[str] = []
    again = execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=said.append)
    assert any("a copy of the finished run that a killed --resume left half made" in m for m in said)
    assert (paths.checkpoints / "best.pt").is_file() and again.audit["measurements"]["test"] is not None
    assert {p.name for p in paths.checkpoints.iterdir()} >= {n.removeprefix("checkpoints/smoke/") for n in before
                                                              if n.startswith("checkpoints/smoke/")}  # fmt: skip


def test_the_copy_for_a_resume_that_finds_no_room_says_so_in_a_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, _ = _finished_run(tmp_path)
    paths = run_paths(tmp_path, spec.name)

    def full(src: object, dst: object, **kwargs: object) -> None:
        raise shutil.Error([(str(src), str(dst), "[Errno 28] No space left on device: 'x'")])

    monkeypatch.setattr(runner.shutil, "copytree", full)
    with pytest.raises(InvalidInput, match=r"for --resume: \[Errno 28\] No space left on device: 'x' \(it needs room") as exc:
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert "[(" not in str(exc.value) and not paths.ckpt_staging.exists()


@pytest.mark.parametrize("where", ["reports/smoke.partial", "checkpoints/smoke.partial"])
def test_the_users_files_in_a_staging_folder_are_refused_not_deleted(tmp_path: Path, where: str) -> None:
    spec, _ = _finished_run(tmp_path)
    (tmp_path / where).mkdir()
    mine = tmp_path / where / "mywork.txt"
    mine.write_text("precious")
    with pytest.raises(InvalidInput, match=rf"{where}: holds mywork.txt, which no run writes; a run empties this staging"):
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert mine.read_text() == "precious"


@pytest.fixture
def sigint_raises() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt, as in a terminal: a process started in the background by a
    shell without job control inherits it ignored (as CI may start the tests)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_raises")
def test_signals_wait_for_the_end_of_a_promote() -> None:
    from auditor.errors import signals_held

    reached = []
    with pytest.raises(KeyboardInterrupt), signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # delivered now, were it not held back
        reached.append("end of block")
    assert reached == ["end of block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    before = signal.getsignal(signal.SIGTERM)
    with signals_held(deliver=False) as came:  # said by the caller, not raised
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert came == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is before
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:  # an ignored signal stays ignored
        with signals_held() as came:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert came == [] and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.usefixtures("sigint_raises")
def test_a_signal_while_the_finished_run_is_put_in_place_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec("smoke", TINY_SETS)
    real = runner.promote

    def promote_signalled(staging: Path, final: Path) -> None:
        if final.parent.name == "checkpoints":
            os.kill(os.getpid(), signal.SIGINT)  # between the checkpoints' and the reports' promotes
            time.sleep(0.05)
        real(staging, final)

    monkeypatch.setattr(runner, "promote", promote_signalled)
    sigint = signal.getsignal(signal.SIGINT)
    said: list[str] = []
    in_place: list[bool] = []  # called once, with both folders in place and the stop still held
    outcome = execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=said.append,
                      in_place=lambda: in_place.append((tmp_path / "reports/smoke/audit.json").is_file()
                                                       and signal.getsignal(signal.SIGINT) is not sigint))  # fmt: skip
    assert in_place == [True]
    assert (tmp_path / "reports/smoke/audit.json").is_file() and (tmp_path / "checkpoints/smoke/last.pt").is_file()
    assert outcome.audit["run"]["status"] == "completed"
    assert "note: SIGINT came while the finished run was put in place; it is complete, so nothing was stopped" in said


def test_a_sheet_that_cannot_be_written_keeps_the_training_and_says_how_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor import render

    spec = load_spec("smoke", TINY_SETS)
    real = render.atomic_write_files

    def full_disk(files: dict[Path, bytes]) -> None:
        if sheet := next((p for p in files if p.name == "REPRODUCIBILITY.md"), None):
            raise OSError(28, "No space left on device", str(sheet))
        real(files)

    monkeypatch.setattr(render, "atomic_write_files", full_disk)
    with pytest.raises(InvalidInput, match="No space left on device; its training is kept: make room, then run the same "
                                           "command with --resume"):  # fmt: skip
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)


@pytest.mark.parametrize("where", ["checkpoints/smoke/last.pt", "checkpoints/smoke.partial/step-00000010.pt"])
def test_a_folder_where_a_checkpoint_file_goes_is_refused_before_training(tmp_path: Path, where: str) -> None:
    spec, _ = _finished_run(tmp_path)
    target = tmp_path / where
    if target.exists():
        target.unlink()
    target.mkdir(parents=True)
    with pytest.raises(InvalidInput, match=rf"{target.parent}: {target.name} where a checkpoint file goes"):
        execute(spec, "smoke", tmp_path, resume=True, argv=["auditor", "run"], log=lambda m: None)
    assert target.is_dir()


def test_a_run_says_before_training_what_validate_notes_of_its_schedule(tmp_path: Path) -> None:
    said: list[str] = []
    sets = ["train.schedule.name=multistep", "train.schedule.milestones=[0.25]", "train.schedule.warmup_epochs=0.5"]
    execute(load_spec("smoke", [*TINY_SETS, *sets]), "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=said.append)
    notes = [line for line in said if line.startswith("note: train.schedule.milestones: [0.25] ")]
    assert [n.split(": ")[2].split(" (")[0] for n in notes] == ["[0.25] are epochs, not fractions of the training", "[0.25] lie within the warm-up"]
    first = said.index(notes[0])
    assert not any(line.startswith("epoch ") for line in said[:first]), said  # before training


def test_a_run_over_a_run_of_an_ablation_going_on_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: a plain `auditor run --set name=tiny-cosine-s0` replaced a run the ablation going
    on in another process had just finished, whose page then showed one run's figures beside the
    other's sheet."""
    from conftest import assert_clean_error, run_cli, sets

    from auditor.fileio import held_lock, lock_beside

    paths = run_paths(tmp_path, "tiny-cosine-s0")
    paths.reports.mkdir(parents=True)
    made = {"ablation": "tiny", "variant": "cosine", "seed": 0}
    (paths.reports / "audit.json").write_text(json.dumps({"run": {"ablation_run": made}}))
    runner.check_run_folders(paths)  # no ablation going on: replaced, as before
    with held_lock(lock_beside(tmp_path / "reports" / "tiny"), "busy", tmp_path):  # as `auditor ablate` holds it
        with pytest.raises(InvalidInput) as err:
            runner.check_run_folders(paths)
        said = (f"{paths.reports}: holds seed 0 of variant 'cosine' of ablation 'tiny', which is going on now "
                f"(process {os.getpid()} on ")
        assert str(err.value).startswith(said) and str(err.value).endswith(
            "): this run would replace it while the ablation counts it; wait for the ablation to finish, or run "
            "under another name or --out")  # fmt: skip
        proc = run_cli("run", "smoke", *sets(*TINY_SETS, "name=tiny-cosine-s0"), "--out", str(tmp_path))
        assert_clean_error(proc, said)
        assert json.loads((paths.reports / "audit.json").read_text()) == {"run": {"ablation_run": made}}
        monkeypatch.setattr(runner, "started_by_ablation", lambda: made)  # the ablation's own run: its rerun goes ahead
        runner.check_run_folders(paths)


def test_a_run_over_a_sheet_edited_by_hand_is_refused_before_training(tmp_path: Path) -> None:
    """The review: `render` kept a sheet edited by hand, while a run (or an ablation's re-judge) of its
    name replaced it with the report folder, without a word. A sheet with no mark (0.3.0's) is not refused."""
    from auditor.fileio import hand_edited

    _finished_run(tmp_path)
    sheet = tmp_path / "reports/smoke/REPRODUCIBILITY.md"
    assert hand_edited(sheet) is None
    sheet.write_text(sheet.read_text() + "Our reading of it.\n")
    before = _files(tmp_path)
    spec = load_spec("smoke", [*TINY_SETS, "seed=1"])
    with pytest.raises(InvalidInput, match=(rf"^{sheet}: it was edited by hand: text follows the mark of auditor's on what "
                                            r"was its last line; this run replaces the report folder when it finishes, "
                                            r"sheet included: move the sheet out of that folder")):  # fmt: skip
        execute(spec, "smoke", tmp_path, resume=False, argv=["auditor", "run"], log=lambda m: None)
    assert _files(tmp_path) == before
    assert runner.run_folder_problems(run_paths(tmp_path, "smoke"))  # ablate says it before any run
    # No mark beside a record of this version, which marks every sheet: its last line was removed by hand (a user test).
    sheet.write_text("# the sheet, edited, without its last line\n")
    version = json.loads((tmp_path / "reports/smoke/audit.json").read_text())["environment"]["auditor"]
    assert runner.run_folder_problems(run_paths(tmp_path, "smoke")) == [(
        f"{sheet}: it carries no mark of auditor's (the sha256 of its text, on its last line), though its audit.json "
        f"was written by auditor {version}, which marks every sheet: it was edited by hand; this run replaces the "
        "report folder when it finishes, sheet included: move the sheet out of that folder to keep your edit (a sheet "
        "of 0.3.0, with no mark, is replaced as before)")]  # fmt: skip
    record = json.loads((tmp_path / "reports/smoke/audit.json").read_text())
    record["environment"]["auditor"] = "0.3.0"  # a sheet of 0.3.0 marked nothing
    (tmp_path / "reports/smoke/audit.json").write_text(json.dumps(record))
    assert not runner.run_folder_problems(run_paths(tmp_path, "smoke"))
