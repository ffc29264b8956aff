"""`auditor run/render/check/evaluate/measure` end to end through the real entry point."""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import errno
import hashlib
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import (
    REPO,
    SUBSET,
    TINY_SETS,
    assert_clean_error,
    fake_cifar_root,
    requires_subset,
    run_cli,
    sets,
)

from auditor import checkpoint
from auditor.audit import VERIFY_MARKER, moved_note, verify_attempt_note
from auditor.environment import software_versions
from auditor.errors import InvalidInput, Terminated
from auditor.fileio import sha256_file


def audit_of(out: Path, name: str = "smoke") -> dict:
    return json.loads((out / "reports" / name / "audit.json").read_text())


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_run_writes_every_artifact(smoke_run: Path) -> None:
    rep, ck = smoke_run / "reports" / "smoke", smoke_run / "checkpoints" / "smoke"
    for f in ["REPRODUCIBILITY.md", "audit.json", "metrics.csv", "steps.csv", "spec.resolved.yaml", "figures"]:
        assert (rep / f).exists(), f
    for f in ["last.pt", "best.pt", "last.pt.sha256", "best.pt.sha256"]:
        assert (ck / f).is_file(), f
    assert not list(smoke_run.glob("*/*.partial"))  # staging promoted
    audit = audit_of(smoke_run)
    assert audit["schema_version"] == 1 and audit["verdict"] == "PASS"
    assert audit["training"]["status"] == "completed" and audit["training"]["epochs_run"] == 2
    assert audit["training"]["images_per_s"] > 0
    for name in ("last", "best"):
        facts = audit["checkpoints"][name]
        assert facts["sha256"] == sha256_file(smoke_run / facts["path"])
        assert {"model", "optimizer", "scheduler", "scaler", "rng", "spec", "spec_hash"} <= set(facts["contents"])
    m = audit["metrics"]
    assert 0 <= m["test_acc"] <= 1 and m["params_m"] == pytest.approx(75_290 / 1e6)
    assert m["checkpoint_mb"] == pytest.approx((ck / "best.pt").stat().st_size / 1e6)
    lat = audit["measurements"]["latency"]
    assert lat["median_ms"] > 0 and lat["iters"] == 5 and lat["threads"] >= 1
    cm = audit["measurements"]["test"]["confusion"]
    assert sum(map(sum, cm)) == audit["data"]["sizes"]["test"] == 200
    det = audit["determinism"]
    assert det["deterministic_algorithms"] is True and det["fill_uninitialized_memory"] is False
    assert (det["cudnn_allow_tf32"], det["cuda_matmul_allow_tf32"]) == (True, False)  # torch's defaults, read back
    assert lat["dtype"] == "float32"  # the CPU: no TF32
    assert audit["spec"]["train"]["channels_last"] is True  # the default memory format
    # `smoke` names no file in the working directory: the record and the sheet say which file it stood for
    assert (audit["run"]["spec_path"], audit["run"]["spec_shipped"]) == ("smoke", "specs/smoke.yaml")
    sheet = (rep / "REPRODUCIBILITY.md").read_text()
    assert "| Spec read | no file `smoke` in the working directory, so the `specs/smoke.yaml` shipped with auditor " in sheet
    hm = audit["training"]["host_memory"]  # the default: freed blocks stay in the heap, read back
    assert hm["requested"] == "retain"
    if hm["allocator"].startswith("glibc"):
        assert hm["mmap_threshold"] is not None and hm["large_blocks_from_heap"] in (True, None)
    assert audit["environment"]["torch"] == torch.__version__
    assert audit["environment"]["torchvision"] == torchvision.__version__
    rows = list(csv.DictReader((rep / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_s", "images_per_s"} <= rows[0].keys()
    steps = list(csv.DictReader((rep / "steps.csv").open()))
    assert len(steps) == 2 * 8  # 500 training images / batch 64 = 8 steps per epoch


def test_models_lists_exact_counts() -> None:
    proc = run_cli("models")
    assert proc.returncode == 0
    assert "11,173,962" in proc.stdout and "resnet20" in proc.stdout and "plain110" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("(params with a 10-class head and batch norm, the spec defaults; group")
    assert "resnet18     11,173,962  resnet-imagenet-style  3x3 conv (64 ch), stride 1, no max-pool" in proc.stdout
    listed = json.loads(run_cli("models", "--json").stdout)  # a user test: scripts parsed the table
    from auditor.models import count_parameters, create_model, list_models

    assert sorted(m["name"] for m in listed) == sorted(list_models())
    assert all(m["params"] == count_parameters(create_model(m["name"]))[0] for m in listed)


def test_output_into_a_closed_pipe_is_no_traceback() -> None:
    """`auditor models | head -0`: the reader is gone before auditor prints (it starts slower)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as usual
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditor", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    proc.stdout.close()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=120) == 141 and "Traceback" not in stderr, stderr


def test_a_closed_log_pipe_mid_run_exits_141_and_keeps_the_run_resumable(tmp_path: Path) -> None:
    """`auditor run ... 2>&1 | head -1`: the log's reader goes away during training.

    That is neither a disk problem (no "cannot write a checkpoint" advice) nor a failed criterion (exit 1).
    """
    args = ["run", "smoke", *sets(*TINY_SETS, "train.epochs=50"), "--out", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "auditor", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 141, first
    assert (tmp_path / "checkpoints/smoke.partial").is_dir() and not (tmp_path / "reports/smoke").exists()


def test_a_path_the_os_refuses_is_bad_input_naming_it(tmp_path: Path, smoke_run: Path) -> None:
    """A name longer than the file system allows (ENAMETOOLONG), wherever a path is given."""
    long = tmp_path / ("x" * 300)
    best = str(smoke_run / "checkpoints/smoke/best.pt")
    for args in (["validate", f"{long}.yaml"], ["run", "smoke", "--out", str(long)], ["measure", f"{long}.pt"],
                 ["evaluate", best, "--data-root", str(long)], ["render", f"{long}/audit.json"],
                 ["check", f"{long}/audit.json"]):  # fmt: skip
        assert_clean_error(run_cli(*args), str(long), "File name too long")
    assert list(tmp_path.iterdir()) == []
    # A user test: given relative, such a name was said at a path the tool looked at instead (the shipped
    # specs' folder, which a bare name may mean; a verify work dir's marker file under --out).
    name = "x" * 300
    for args in (["run", f"{name}.yaml"], ["run", f"specs/{name}.yaml"], ["ablate", f"{name}.yaml"],
                 ["run", "smoke", "--out", name], ["verify", "smoke", "--out", name]):  # fmt: skip
        proc = run_cli(*args, cwd=tmp_path)
        assert_clean_error(proc, name)
        assert "/specs/" not in proc.stderr and ".auditor-verify" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("signum", "times", "code", "word"),
    [(signal.SIGINT, 1, 130, "interrupted"), (signal.SIGTERM, 1, 143, "terminated (SIGTERM)"),
     (signal.SIGTERM, 3, 143, "terminated (SIGTERM)"),  # a process group's, then ablate's passed on
     (signal.SIGINT, 3, 130, "interrupted")],  # Ctrl-C at a terminal, ablate's, an impatient second Ctrl-C
    ids=["sigint", "sigterm", "sigterm-thrice", "sigint-thrice"],
)
def test_ctrl_c_hint_is_a_command_a_shell_takes(tmp_path: Path, signum: int, times: int, code: int, word: str) -> None:
    """SIGINT (or a CI job's SIGTERM) mid-training: exit 130 (143) and a shell-quoted --resume command
    (`>=` is no redirect). Signals after the first do not cut the clean stop short."""
    args = ["run", "smoke", *sets(*TINY_SETS, "train.epochs=50"), "--out", str(tmp_path)]
    # A shell without job control starts background jobs with SIGINT ignored, which a child inherits
    # (and Python then keeps): with a handler here instead, the run starts with the default action.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "auditor", *args], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    staging = tmp_path / "checkpoints/smoke.partial"
    deadline = time.monotonic() + 120
    while not (staging / "last.pt.sha256").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first epoch's checkpoint is there to continue from
    for i in range(times):
        if i:
            time.sleep(0.1)
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code and "Traceback" not in err, err
    hint = err.strip().splitlines()[-1]
    said = re.fullmatch(rf"{re.escape(word)}; continue from (\S+) \(global step (\d+)\) with: (.*)", hint)
    assert said is not None, hint
    again = shlex.split(said[3])
    assert again == ["auditor", *args[:-2], "--out", str(tmp_path), "--resume"]
    assert "'criteria.best_val_acc=>= 0.2'" in hint
    # The checkpoint it names is the one the resume continues from, at the step it says.
    assert checkpoint.resume_point(staging)[0] == staging / said[1]
    assert checkpoint.load(staging / said[1])["global_step"] == int(said[2]) > 0


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_a_stop_that_also_ends_the_reader_of_the_output_keeps_its_exit_code(tmp_path: Path, signum: int, code: int) -> None:
    """A user test: Ctrl-C to `auditor run ... 2>&1 | tee log` ends tee too, and the run's stop then
    wrote its hint into the closed pipe: exit 141, where a wrapper resuming on 130/143 looks. The
    run's cleanup goes on, and the run stays resumable."""
    args = ["run", "smoke", *sets(*TINY_SETS, "train.epochs=50"), "--out", str(tmp_path)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (see above)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "auditor", *args], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    staging = tmp_path / "checkpoints/smoke.partial"
    deadline = time.monotonic() + 120
    while not (staging / "last.pt.sha256").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader (tee) ended by the same Ctrl-C
    proc.send_signal(signum)
    assert proc.wait(timeout=120) == code
    assert (staging / "last.pt").is_file() and not (tmp_path / "reports/smoke").exists()  # kept for --resume


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_stop_as_a_finished_run_exits_keeps_its_verdict(tmp_path: Path, signum: int) -> None:
    """The user test: Ctrl-C in the second after a run printed PASS and its sheet's path (the process
    still exiting) gave exit 130, and CI would fail a complete, passing run. Sent as the last line
    appears, the stop lands in the command's last lines or the interpreter's shutdown."""
    args = ["run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (see above)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "auditor", *args], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert proc.stdout is not None
    lines = []
    while (line := proc.stdout.readline()) and not line.startswith("status "):
        lines.append(line)
    assert line.startswith("status completed; sheet: "), lines
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert (tmp_path / "reports/smoke/REPRODUCIBILITY.md").is_file()


@pytest.mark.parametrize("as_the_program", [True, False], ids=["console-script", "called-from-python"])
def test_a_stop_after_the_run_is_in_place_is_said_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_the_program: bool
) -> None:
    """In-process, so that the stop lands at a known point: while the verdict is printed. As the
    program (`main()`, reading sys.argv), stops stay recorded until exit and are ignored from the
    interpreter's shutdown on; called from Python with its arguments, main puts the handlers back."""
    import atexit

    from auditor import cli

    real, at_exit, register = cli._print_outcome, [], atexit.register

    def stopped_while_printing(audit: dict, report_dir: Path) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # delivered now, to the handler in force
        real(audit, report_dir)

    monkeypatch.setattr(cli, "_print_outcome", stopped_while_printing)
    monkeypatch.setattr(atexit, "register", lambda f, *a: at_exit.append(a) if f is cli._ignore_stops else register(f, *a))
    args = ["run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["auditor", *args])
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert (cli.main() if as_the_program else cli.main(args)) == 0
        err = capsys.readouterr().err
        assert "note: SIGTERM came after the finished run was in place; it is complete, so nothing was stopped" in err
        if as_the_program:
            os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised
            time.sleep(0.05)
            assert at_exit == [(tuple(s for s in before if before[s] is not signal.SIG_IGN),)]
        else:
            assert at_exit == [] and {s: signal.getsignal(s) for s in before} == before
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_ctrl_c_before_the_first_checkpoint_leaves_nothing_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditor import runner
    from auditor.cli import main

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt  # training had begun: staging exists, no checkpoint yet

    monkeypatch.setattr(runner, "train_staged", stopped)
    argv = ["run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path)]
    assert main(argv) == 130
    assert "interrupted before the first checkpoint; start again with: " in capsys.readouterr().err
    assert not (tmp_path / "checkpoints/smoke.partial").exists() and not (tmp_path / "reports/smoke.partial").exists()


def test_ctrl_c_before_staging_does_not_advise_resume(tmp_path: Path) -> None:
    from auditor.cli import _interrupted_hint

    argv = ["auditor", "run", "smoke", "--set", "criteria.test_acc=>= 0.1"]
    hint = _interrupted_hint(tmp_path, "smoke", argv)  # nothing staged under tmp_path
    assert hint == "interrupted before the first checkpoint; start again with: " + shlex.join(argv)
    (tmp_path / "checkpoints" / "smoke.partial").mkdir(parents=True)  # staged, but no checkpoint yet
    assert _interrupted_hint(tmp_path, "smoke", argv) == hint
    # Stopped after the checkpoints were put in place, before the finished report was.
    from auditor import checkpoint
    from auditor.audit import run_paths

    paths = run_paths(tmp_path, "smoke")
    paths.ckpt_staging.rmdir()
    checkpoint.save(paths.last_checkpoint, {"model": {}, "global_step": 9})
    paths.reports_staging.mkdir(parents=True)
    (paths.reports_staging / "REPRODUCIBILITY.md").write_text("finished")
    last = {"sha256": checkpoint.recorded_digest(paths.last_checkpoint)}
    (paths.reports_staging / "audit.json").write_text(json.dumps({"checkpoints": {"last": last}}))
    assert _interrupted_hint(tmp_path, "smoke", argv) == (
        "interrupted while putting the finished run in place (its report waits in staging); put it in place "
        f"without training again with: {shlex.join([*argv, '--resume'])}"
    )
    # A --resume re-judging the finished run, stopped: its copy is gone, the finished run as it was.
    shutil.rmtree(paths.reports_staging)
    assert _interrupted_hint(tmp_path, "smoke", argv, resume=True) == (
        f"interrupted; the finished run is as it was: re-judge it again with: {shlex.join([*argv, '--resume'])}"
    )


def test_ctrl_c_hint_names_the_checkpoint_the_resume_continues_from(tmp_path: Path) -> None:
    """The newest checkpoint that verifies, by global step, as `--resume` takes it (a user test:
    the hint said nothing of how much of the run was kept)."""
    from auditor.audit import run_paths
    from auditor.cli import _interrupted_hint

    argv = ["auditor", "run", "smoke"]
    again = shlex.join([*argv, "--resume"])
    staging = run_paths(tmp_path, "smoke").ckpt_staging
    staging.mkdir(parents=True)
    checkpoint.save(staging / "last.pt", {"model": {}, "global_step": 1200})
    checkpoint.save(staging / "step-00001234.pt", {"model": {}, "global_step": 1234})
    hint = _interrupted_hint(tmp_path, "smoke", argv)
    assert hint == f"interrupted; continue from step-00001234.pt (global step 1,234) with: {again}"
    with (staging / "step-00001234.pt").open("ab") as f:
        f.write(b"torn")  # fails its digest: the resume passes over it
    assert _interrupted_hint(tmp_path, "smoke", argv, "terminated (SIGTERM)") == (
        f"terminated (SIGTERM); continue from last.pt (global step 1,200) with: {again}")  # fmt: skip
    with (staging / "last.pt").open("ab") as f:
        f.write(b"torn")
    assert _interrupted_hint(tmp_path, "smoke", argv) == (
        "interrupted; continue (no checkpoint there verifies: the resume says why, and how to start over) "
        f"with: {again}")  # fmt: skip


def test_recorded_commands_with_a_dash_leading_path_run_again_as_shown(tmp_path: Path) -> None:
    """A user test: `--out=-dash` and `-- -d.yaml` were recorded as `--out -dash` and `-d.yaml`,
    which argparse then took for options: the sheet's commands could not be pasted."""
    import yaml

    from auditor.cli import _interrupted_hint, build_parser

    spec = {"name": "dash", "data": {"dataset": "synthetic"}, "model": {"name": "resnet8"}}
    (tmp_path / "-d.yaml").write_text(yaml.safe_dump(spec))
    done = run_cli("run", *sets(*TINY_SETS, "train.epochs=1"), "--out=-out", "--", "-d.yaml", cwd=tmp_path)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr  # 1: a criterion at this budget
    command = json.loads((tmp_path / "-out/reports/dash/audit.json").read_text())["environment"]["command"]
    assert command.startswith("auditor run ./-d.yaml --set ") and command.endswith(" --out=-out")
    args = build_parser().parse_args(shlex.split(command)[1:] + ["--resume"])
    assert (args.spec, str(args.out), args.resume) == ("./-d.yaml", "-out", True)
    assert "--out=-out --resume" in (tmp_path / "-out/reports/dash/REPRODUCIBILITY.md").read_text()
    hint = _interrupted_hint(tmp_path / "nowhere", "dash", shlex.split(command))
    build_parser().parse_args(shlex.split(hint.split("with: ", 1)[1])[1:])  # a command argparse takes


def test_measure_iters_is_validated_as_the_spec_field(smoke_run: Path) -> None:
    best = str(smoke_run / "checkpoints/smoke/best.pt")
    assert_clean_error(run_cli("measure", best, "--iters", "3"), "--iters", "greater than or equal to 5", "got 3")
    assert_clean_error(run_cli("measure", best, "--batch-size", "5000"), "--batch-size", "less than or equal to 4096")
    assert_clean_error(run_cli("measure", best, "--threads", "0"), "--threads: 1 to 1024, got 0")
    done = run_cli("measure", best, "--iters", "5", "--batch-size", "2", "--threads", "1", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and (report["latency"]["batch_size"], report["latency"]["threads"]) == (2, 1)


def test_failed_criterion_exits_1_and_still_writes_the_sheet(tmp_path: Path) -> None:
    proc = run_cli("run", "smoke", *sets(*TINY_SETS, "train.epochs=1", 'criteria.best_val_acc=">= 0.999"'), "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "FAIL  best_val_acc >= 0.999" in proc.stdout
    assert (tmp_path / "reports/smoke/REPRODUCIBILITY.md").is_file()
    assert audit_of(tmp_path)["verdict"] == "FAIL"


def test_diverged_run_fails_the_gate(tmp_path: Path) -> None:
    proc = run_cli("run", "smoke", *sets(*TINY_SETS, "train.optimizer.lr=10.0", "model.norm=none"), "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    audit = audit_of(tmp_path)
    assert audit["run"]["status"] == "diverged" and audit["verdict"] == "FAIL"
    assert audit["training"]["diverged_at_step"] is not None
    # The steps before the divergence ran: their time is measured, not recorded as zero.
    assert audit["metrics"]["train_time_s"] > 0 and audit["metrics"]["images_per_s"] > 0
    assert audit["metrics"]["official_data"] is False  # synthetic data is known not to be CIFAR-10
    assert "FAIL  training diverged" in proc.stdout
    header = (tmp_path / "reports/smoke/metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,") and "val_acc" in header  # the usual columns, even with no epoch row
    # The CI gate agrees with the run even when every criterion it checks passes.
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text('criteria:\n  params_m: "< 100"\n')
    junit = tmp_path / "junit.xml"
    gate = run_cli("check", str(tmp_path / "reports/smoke"), "--criteria", str(lenient), "--junit", str(junit))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "PASS  params_m < 100" in gate.stdout
    assert "1/1 criteria passed; training diverged: FAIL" in gate.stdout
    assert 'failures="1"' in junit.read_text()


def _folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # several `auditor` processes
def test_a_resume_from_a_checkpoint_that_does_not_fit_exits_2_and_keeps_everything(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: a checkpoint edited and digested again was a traceback (exit 1) on --resume."""
    args = ["run", "smoke", *sets(*TINY_SETS, "train.checkpoint_every_steps=3"), "--out", str(tmp_path / "cut")]
    assert run_cli(*args, env={"AUDITOR_KILL_AT_STEP": "11"}).returncode == -9
    staging = tmp_path / "cut/checkpoints/smoke.partial"
    newest = staging / "step-00000009.pt"
    checkpoint.save(newest, checkpoint.load(newest) | {"epoch": 1000})  # digested again: it verifies
    before = _folder_digest(staging)
    refused = run_cli(*args, "--resume")
    assert_clean_error(refused, f"--resume: {newest}: cannot continue from it: its position (epoch 1000, ",
                       f"or, to start over, remove {staging} and run without --resume")  # fmt: skip
    assert "continuing from" not in refused.stderr and _folder_digest(staging) == before
    # A user test: another checkpoint under its name (a copy of another run's), digested again, was
    # continued from at its own step; a file no torch.save wrote had no advice.
    checkpoint.save(newest, checkpoint.load(staging / "step-00000006.pt"))
    refused = run_cli(*args, "--resume")
    assert_clean_error(refused, f"--resume: {newest}: cannot continue from it: its name gives global step 9, but it "
                                "holds global step 6 (another's, renamed) (its digest verifies",
                       "move it away to resume from the checkpoint before it")  # fmt: skip
    checkpoint.save_bytes(newest, b"hello\n")
    refused = run_cli(*args, "--resume")
    assert_clean_error(refused, f"--resume: {newest}: cannot load checkpoint (not a torch.save file",
                       "move it away to resume from the checkpoint before it")  # fmt: skip
    assert "continuing from" not in refused.stderr
    done = tmp_path / "done"  # a finished run: starting over needs no folder removed
    shutil.copytree(smoke_run, done)
    last = done / "checkpoints/smoke/last.pt"
    checkpoint.save(last, checkpoint.load(last) | {"epoch": 1000})
    before = _folder_digest(done)
    refused = run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(done), "--resume")
    assert_clean_error(refused, f"--resume: {last}: cannot continue from it: its position (epoch 1000, ",
                       "a finished run is resumed from its newest intact checkpoint: to train it again, run without --resume")  # fmt: skip
    assert "remove" not in refused.stderr and "move it away" not in refused.stderr and _folder_digest(done) == before


def test_verify_s_noise_hook_is_ignored_by_a_run_verify_did_not_start(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: AUDITOR_INJECT_NOISE_AT_STEP left set added unseeded noise to a plain run's
    weights, and nothing on its sheet or in its record said so."""
    # (with verify's own variable left set too: the verify that sets it must be the run's parent, the review)
    left = {"AUDITOR_INJECT_NOISE_AT_STEP": "2", "AUDITOR_VERIFY_OUT": str(tmp_path)}
    proc = run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path), env=left)
    assert proc.returncode in (0, 1), proc.stderr
    assert ("warning: AUDITOR_INJECT_NOISE_AT_STEP=2 is set, and ignored: a test hook of `auditor verify` (unseeded "
            "noise added to the weights), which only the runs verify starts take") in proc.stderr  # fmt: skip
    ours, theirs = (checkpoint.load(root / "checkpoints/smoke/last.pt")["model"] for root in (tmp_path, smoke_run))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)  # no noise: the same weights


@pytest.mark.slow  # several `auditor` processes
def test_kill_then_resume_equals_uninterrupted(tmp_path: Path, smoke_run: Path) -> None:
    """SIGKILL mid-run (no cleanup), then --resume: final weights equal bit for bit."""
    args = ["run", "smoke", *sets(*TINY_SETS, "train.checkpoint_every_steps=3"), "--out", str(tmp_path)]
    killed = run_cli(*args, env={"AUDITOR_KILL_AT_STEP": "11"})  # step 11: mid epoch 2
    assert killed.returncode == -9
    # A user test: a variable left set killed a plain run without a word.
    assert ("warning: AUDITOR_KILL_AT_STEP=11 is set: this process kills itself (SIGKILL) after global step 11, a "
            "test hook of `auditor verify`; unset it to train to the end") in killed.stderr  # fmt: skip
    assert (tmp_path / "checkpoints/smoke.partial").is_dir() and not (tmp_path / "reports/smoke").exists()
    fresh = run_cli(*args)  # a fresh start would discard the interrupted run: refused
    assert_clean_error(fresh, "interrupted run", "--resume")
    again = run_cli(*args, "--resume", env={"AUDITOR_KILL_AT_STEP": "13"})  # killed again, after step-12.pt
    assert again.returncode == -9 and "resume: continuing from step-00000009.pt (global step 9)" in again.stderr
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: continuing from step-00000012.pt" in resumed.stderr
    reference = run_cli("run", "smoke", *sets(*TINY_SETS, "train.checkpoint_every_steps=3"), "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0
    a, b = weights(tmp_path / "checkpoints/smoke/last.pt"), weights(tmp_path / "ref/checkpoints/smoke/last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = lambda out: (out / "reports/smoke/steps.csv").read_text()
    assert steps(tmp_path) == steps(tmp_path / "ref")
    audit = audit_of(tmp_path)
    assert audit["run"]["resumed_from"] == audit["training"]["resumed_from"] == "step-00000012.pt"
    # Both resumes, as their processes' checkpoints carried them, and the sheet lists them.
    resumes = audit["training"]["resumes"]
    assert [(r["checkpoint"], r["global_step"]) for r in resumes] == [("step-00000009.pt", 9), ("step-00000012.pt", 12)]
    assert audit["training"]["resumes_unrecorded"] is False
    assert ".partial" not in json.dumps(audit)  # no staging path survives the promote
    # The killed first process's command, carried by its checkpoints, is the one the sheet gives as the start.
    first = audit["run"]["started_by"]
    assert first["command"].endswith(f"--out {tmp_path}") and "--resume" not in first["command"]
    assert audit["environment"]["command"].endswith("--resume") and first["cwd"] == audit["environment"]["cwd"]
    sheet = (tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()
    threads = audit["training"]["trained_at"][0]["torch_threads"]
    assert ("# the command that started this run (its first process, as its checkpoints record it), as run from "
            f"{first['cwd']}\n# (as typed, without its environment: that process trained at {threads} torch "
            f"thread{'s' if threads != 1 else ''}, which only\n# OMP_NUM_THREADS set to that count gives on another "
            f"machine)\n(cd {shlex.quote(first['cwd'])} && {first['command']})\n") in sheet  # fmt: skip
    assert "the first process's command is not recorded" not in sheet
    listed = (f"at global step 9 from step-00000009.pt ({resumes[0]['utc']}); at global step 12 from step-00000012.pt "
              f"({resumes[1]['utc']})")  # fmt: skip
    kept = "" if audit["run"]["resumed_from_kept"] else "; a checkpoint of the interrupted run, since removed as the run's checkpoints were pruned"
    assert f"| Resumed from | step-00000012.pt (global step 12{kept}); its training was resumed 2 times in all: {listed} |" in sheet
    assert checkpoint.load(tmp_path / "checkpoints/smoke/last.pt")["resumes"] == resumes
    # Re-judged, the finished run trains nothing: no weights went through that resume (the review).
    rejudged = run_cli(*args, "--resume")
    assert rejudged.returncode == 0, rejudged.stderr
    assert audit_of(tmp_path)["training"]["resumes"] == resumes
    final = checkpoint.load(tmp_path / "checkpoints/smoke/last.pt")["global_step"]
    assert (f"| Resumed from | last.pt (global step {final}; this process ran no training step: it measured and judged "
            f"the finished training again); its training was resumed 2 times in all: {listed} |") in (
        tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()  # fmt: skip


@pytest.mark.slow  # two `auditor` processes
def test_a_resume_from_an_epoch_s_last_pt_says_that_file_was_replaced_since(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: resumed from epoch 1's last.pt, the sheet said 'Resumed from | last.pt' and the
    record that file was kept, while the run's final last.pt (another step) had replaced it."""
    spe = audit_of(smoke_run)["training"]["steps_per_epoch"]
    args = ["run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path)]
    assert run_cli(*args, env={"AUDITOR_KILL_AT_STEP": str(spe)}).returncode == -9  # in epoch 2, after its last.pt landed
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0 and f"resume: continuing from last.pt (global step {spe})" in resumed.stderr
    audit = audit_of(tmp_path)
    assert audit["run"]["resumed_from"] == "last.pt" and audit["run"]["resumed_from_kept"] is False
    assert audit["training"]["resumed_at_step"] == spe < audit["checkpoints"]["last"]["global_step"]
    assert (f"| Resumed from | last.pt (global step {spe}; a checkpoint of the interrupted run, since replaced by the "
            "run's later last.pt) |") in (tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock: runs are not locked there")
def test_a_second_run_of_a_name_going_on_in_the_same_out_is_refused(tmp_path: Path) -> None:
    from auditor.audit import run_paths
    from auditor.fileio import lock_file

    paths = run_paths(tmp_path, "smoke")
    paths.ckpt_staging.mkdir(parents=True)
    holder = lock_file(paths.lock)  # as the run going on holds it
    assert holder is not None, "this file system cannot lock files"
    try:
        for resume in ([], ["--resume"]):
            proc = run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path), *resume)
            assert_clean_error(proc, f"{paths.lock}: a run named 'smoke' is going on in this --out")
    finally:
        os.close(holder)
    assert not any(paths.ckpt_staging.iterdir()) and not (tmp_path / "reports").exists()  # its folders untouched


def test_interrupted_rerun_leaves_the_finished_run_intact(tmp_path: Path, smoke_run: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(smoke_run, out)
    before = {p: p.read_bytes() for p in (out / "reports/smoke").rglob("*") if p.is_file()}
    killed = run_cli("run", "smoke", *sets(*TINY_SETS, "seed=5"), "--out", str(out), env={"AUDITOR_KILL_AT_STEP": "3"})
    assert killed.returncode == -9
    assert {p: p.read_bytes() for p in (out / "reports/smoke").rglob("*") if p.is_file()} == before
    # SIGKILLed before its first checkpoint: its staging holds nothing, and no process holds its
    # lock, so the same command takes the folder over (no --resume, no folder to remove by hand).
    assert not any(p.name.endswith(".pt") for p in (out / "checkpoints/smoke.partial").iterdir())
    again = run_cli("run", "smoke", *sets(*TINY_SETS, "seed=5"), "--out", str(out))
    assert again.returncode in (0, 1), again.stderr
    assert audit_of(out)["spec"]["seed"] == 5 and not (out / "checkpoints/smoke.partial").exists()


@pytest.mark.slow  # several `auditor` processes
def test_resume_errors(tmp_path: Path, smoke_run: Path) -> None:
    assert_clean_error(run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(tmp_path), "--resume"), "--resume: no checkpoint")
    out = tmp_path / "other"
    shutil.copytree(smoke_run, out)
    other_spec = run_cli("run", "smoke", *sets(*TINY_SETS, "seed=9"), "--out", str(out), "--resume")
    assert_clean_error(other_spec, f"{out / 'checkpoints/smoke/last.pt'}: checkpoint was written by a different spec", "seed: 0 -> 9")
    # The refusal leaves nothing that looks like an interrupted run: a plain run is not refused.
    assert not (out / "checkpoints/smoke.partial").exists() and not (out / "reports/smoke.partial").exists()
    # A criterion is not training: a finished run resumes (trains nothing) and is re-judged.
    stricter = run_cli("run", "smoke", *sets(*TINY_SETS, "criteria.best_val_acc=>= 0.999"), "--out", str(out), "--resume")
    assert stricter.returncode == 1, stricter.stderr  # the new criterion fails
    assert "differs only outside training" in stricter.stderr and "criteria.best_val_acc" in stricter.stderr
    audit = audit_of(out)
    assert audit["spec"]["criteria"]["best_val_acc"] == ">= 0.999" and audit["verdict"] == "FAIL"
    assert any("differs only outside training" in n for n in audit["run"]["resume_notes"])
    assert audit["training"]["history"] == audit_of(smoke_run)["training"]["history"]  # nothing retrained
    shutil.rmtree(out / "checkpoints/smoke.partial", ignore_errors=True)
    last = out / "checkpoints/smoke/last.pt"
    for pt in (out / "checkpoints/smoke").glob("*.pt"):  # as if an older auditor had written them
        state = checkpoint.load(pt)
        assert state["versions"] == software_versions()
        checkpoint.save(pt, {**state, "versions": {"auditor": "0.0.1", "torch": state["versions"]["torch"]}})
    older = run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(out), "--resume")
    assert older.returncode == 0, older.stderr  # resumable; the sheet says which software wrote it
    # A finished run: nothing is trained again, so the weights are the older software's.
    note = (f".pt was written with auditor 0.0.1 (source not recorded), torch {torch.__version__}; no step is trained again "
            "(the run had finished)")
    assert any(note in n for n in audit_of(out)["run"]["resume_notes"]), audit_of(out)["run"]
    assert note in (out / "reports/smoke/REPRODUCIBILITY.md").read_text()
    shutil.rmtree(out / "checkpoints/smoke.partial", ignore_errors=True)
    last.write_bytes(last.read_bytes()[:1000])  # truncated: digest no longer matches
    best = last.with_name("best.pt")  # intact, it would be resumed from (test_runner): damaged too
    best.write_bytes(best.read_bytes()[:1000])
    corrupt = run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(out), "--resume")
    assert_clean_error(corrupt, "no intact checkpoint", "skipped last.pt: sha256 mismatch", "skipped best.pt: sha256 "
                       "mismatch", "to start over, run without --resume")  # fmt: skip
    assert "remove" not in corrupt.stderr  # resuming a finished run: nothing of it is to be removed
    assert corrupt.stderr.count("sha256 mismatch") == 2, corrupt.stderr  # each said once, in the error


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.amp=fp16", "error: smoke --set 'train.amp=fp16': train.amp: fp16 needs a CUDA device"),  # as validation names it
     ("model.num_classes=12",
      "error: smoke --set 'model.num_classes=12': model.num_classes: 12, but data.dataset synthetic has 10 classes"),
     ("data.dataset=cifar10", "error: smoke: data.root: ")],
)
def test_invalid_toggles_fail_before_any_folder_is_made(tmp_path: Path, override: str, message: str) -> None:
    assert_clean_error(run_cli("run", "smoke", *sets(*TINY_SETS, override), "--out", str(tmp_path)), message)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "reports").exists()


def cli_in_fresh_python(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, bool]:
    """The CLI's `main` in a fresh interpreter, and whether torch was imported by the time it returned."""
    code = ("import sys\nfrom auditor.cli import main\nrc = main(sys.argv[1:])\n"
            "print('torch' in sys.modules, file=sys.stderr)\nsys.exit(rc)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    *said, imported = proc.stderr.rstrip("\n").split("\n")
    assert imported in ("True", "False"), proc.stderr
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, "\n".join(said)), imported == "True"


@pytest.mark.parametrize("command", ["run", "verify", "validate"])
def test_a_spec_that_cannot_be_read_is_refused_before_torch_is_imported(tmp_path: Path, command: str) -> None:
    """Importing torch takes seconds: a missing file, a YAML error or a malformed --set is said at
    once, word for word as after the import; a readable spec that fails validation needs torch."""
    (tmp_path / "broken.yaml").write_text("name: x\nmodel: {name: resnet20\n")
    (tmp_path / "unknown.yaml").write_text("name: x\nmodel: {name: resnet7}\n")
    (tmp_path / "abl.yaml").write_text("base: smoke\nvariants: {a: {}}\n")
    (tmp_path / "r").mkdir()
    (tmp_path / "r/audit.json").write_text(json.dumps({"schema_version": 1, "run": {}, "spec": {"name": "x"}, "verdict": "PASS",
                                                      "model": {}, "data": {}, "metrics": {}}))  # fmt: skip
    (tmp_path / "r/ablations.json").write_text(json.dumps({"schema_version": 1, "ablation": {}, "variants": []}))
    refused_early = [
        (["nope.yaml"], "nope.yaml: spec file not found"),
        # A user test: `verify .../audit.json` listed dozens of unknown keys (a record has model and data sections).
        (["r/audit.json"], ("r/audit.json: a run's audit record (audit.json), not a spec; the spec that run trained is "
                            "in r/spec.resolved.yaml")),
        (["r/ablations.json"], ("r/ablations.json: an ablation page's record (ablations.json), not a spec; the page "
                                "beside it, r/ABLATIONS.md, names the ablation file it was made from")),
        (["broken.yaml"], "broken.yaml:2: not valid YAML: expected ',' or '}'"),
        (["smoke", "--set", "train.epochs"], "--set 'train.epochs': expected KEY=VALUE"),
        (["smoke", "--set", "train.epochs.x=1"], "smoke --set 'train.epochs.x=1'"),
        (["abl.yaml"], "abl.yaml: an ablation file (it names a base spec and variants), not a spec"),
    ]
    for given, message in refused_early:
        proc, imported = cli_in_fresh_python(command, *given, cwd=tmp_path)
        assert_clean_error(proc, f"auditor {command}: error: ", message)
        assert not imported, (given, proc.stderr)
    proc, imported = cli_in_fresh_python(command, "unknown.yaml", cwd=tmp_path)
    assert_clean_error(proc, "unknown.yaml:2: model.name: unknown model 'resnet7'")
    assert imported and not (tmp_path / "reports").exists() and not (tmp_path / "verify").exists()
    if command == "verify":  # a budget flag below 1 is said first, as before the spec is read
        proc, imported = cli_in_fresh_python(command, "nope.yaml", "--epochs", "0", cwd=tmp_path)
        assert_clean_error(proc, "auditor verify: error: --epochs: must be >= 1, got 0")
        assert imported and not (tmp_path / "verify").exists()
    if command == "validate":  # each spec said: one that reads is validated (with torch), and printed
        proc, imported = cli_in_fresh_python(command, "nope.yaml", "smoke", "broken.yaml", cwd=tmp_path)
        assert_clean_error(proc, "nope.yaml: spec file not found", "broken.yaml:2: not valid YAML")
        assert imported and "# smoke: valid" in proc.stdout


@pytest.mark.parametrize("command", ["evaluate", "measure"])
def test_a_checkpoint_path_where_no_file_is_is_refused_before_torch_is_imported(tmp_path: Path, command: str) -> None:
    data = ["--data-root", str(tmp_path)] if command == "evaluate" else []
    (tmp_path / "run").mkdir()
    (tmp_path / "run/best.pt").write_bytes(b"")
    for given, message in [("none.pt", "none.pt: checkpoint not found"),
                           ("run", "run: a folder, not a checkpoint file (it holds best.pt)"),
                           ("run/best.pt/x", "run/best.pt/x: run/best.pt is a regular file, not a folder")]:  # fmt: skip
        proc, imported = cli_in_fresh_python(command, given, *data, cwd=tmp_path)
        assert_clean_error(proc, f"auditor {command}: error: {message}")
        assert not imported, (given, proc.stderr)
    proc, imported = cli_in_fresh_python(command, "run/best.pt", *data, cwd=tmp_path)  # a file: read with torch
    assert_clean_error(proc, "run/best.pt: cannot load checkpoint (empty file)")
    assert imported


def test_check_refuses_a_record_whose_spec_or_metrics_were_edited_and_warns_of_a_stored_verdict(
    tmp_path: Path, smoke_run: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    loosened = {**audit, "spec": {**audit["spec"], "criteria": {}}}  # the gate removed by hand
    (run / "audit.json").write_text(json.dumps(loosened))
    assert_clean_error(run_cli("check", str(run)), f"{run / 'audit.json'}: its resolved spec does not match its spec_hash")
    size = audit["metrics"]["checkpoint_mb"]
    edited = {**audit, "metrics": {**audit["metrics"], "checkpoint_mb": 1e6}}  # a metric changed by hand
    (run / "audit.json").write_text(json.dumps(edited))
    assert_clean_error(run_cli("check", str(run)), f"{run / 'audit.json'}: the record disagrees with what the run "
                       f"measured (metrics.checkpoint_mb 1000000.0, but measurements.size.checkpoint_bytes / 1e6 is "
                       f"{size}; criteria[", "it was edited after the run")  # fmt: skip
    (run / "audit.json").write_text(json.dumps({**audit, "verdict": "FAIL"}))  # the stored verdict alone
    proc = run_cli("check", str(run))
    assert proc.returncode == 0  # judged on the metrics as recorded
    assert "warning: " in proc.stderr and "verdict stored FAIL, now PASS" in proc.stderr
    for stored in ([{"metric": "status"}], ["x"]):  # stored results edited by hand: refused, as render refuses them
        (run / "audit.json").write_text(json.dumps({**audit, "criteria": stored}))
        assert_clean_error(run_cli("check", str(run)), f"{run / 'audit.json'}: malformed audit record: criteria[0] = "
                                                       f"{json.dumps(stored[0])} (not as a run writes it)")  # fmt: skip


@pytest.mark.parametrize(("edit", "said"), [
    (lambda a: a["spec"]["train"].update(compile=True), 'spec.train.compile true, read as "default"'),  # the README's example
    (lambda a: a["spec"]["train"]["optimizer"].update(lr=-1),
     "validation refuses it: spec: train.optimizer.lr: input should be greater than 0, got -1"),
    (lambda a: a["spec"]["train"].update(bogus=1), "validation refuses it: spec: train.bogus: unknown key (not in the spec schema)"),
    (lambda a: a["spec"]["criteria"].update(best_val_acc=None), "spec.criteria.best_val_acc null, which validation drops"),
], ids=["compile-true", "negative-lr", "unknown-key", "null-criterion"])
def test_a_spec_edited_with_its_spec_hash_made_again_is_refused_by_check_render_and_ablate(
    tmp_path: Path, smoke_run: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[dict], None], said: str
) -> None:
    """A user test: the sheet says how spec_hash is computed, and a spec edited with its hash made
    again was never validated: `compile: true` failed inside the renderer, a negative lr or an
    unknown key was rendered as if trained, and a criterion set to null was dropped by check with no word."""
    from auditor.check import check_refusal
    from auditor.cli import main
    from auditor.spec import hash_resolved

    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    edit(audit)
    audit["spec_hash"] = hash_resolved(audit["spec"])
    (run / "audit.json").write_text(json.dumps(audit))
    sheet = (run / "REPRODUCIBILITY.md").read_bytes()
    refused = f"{run / 'audit.json'}: its resolved spec was edited after the run into none a run records ({said})"
    assert main(["check", str(run)]) == 2
    assert capsys.readouterr().err == f"auditor check: error: {refused}; gate on the record as the run wrote it\n"
    assert main(["render", str(run)]) == 2
    assert capsys.readouterr().err == f"auditor render: error: {refused}, so the sheet cannot be rendered\n"
    assert (run / "REPRODUCIBILITY.md").read_bytes() == sheet
    assert check_refusal(audit) == refused.removeprefix(f"{run / 'audit.json'}: ")  # what the ablation page says is check's reason


def test_a_stored_criterion_edited_is_refused_or_warned_of_not_shown_as_judged(
    tmp_path: Path, smoke_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: an edited stored `expr` ('< 0.5' for '< 50') was shown on the sheet beside the real
    figure as PASS, and check passed the record without a word. (Its `detail` is not compared: its
    wording differs between versions, and an older record would be warned of.)"""
    from auditor.cli import main

    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    i, entry = next((i, c) for i, c in enumerate(audit["criteria"]) if c["metric"] == "checkpoint_mb")
    for field, value in (("expr", "< 0.001"), ("threshold", 0.001), ("op", ">")):
        edited = copy.deepcopy(audit)
        edited["criteria"][i][field] = value
        (run / "audit.json").write_text(json.dumps(edited))
        assert main(["check", str(run)]) == 2
        assert (f"(criteria[{i}] (checkpoint_mb) {field} {json.dumps(value)}, but its criterion in the record's spec "
                f"gives {json.dumps(entry[field])}): it was edited after the run") in capsys.readouterr().err


def test_check_refuses_a_record_render_refuses_and_a_stored_result_of_no_criterion(
    tmp_path: Path, smoke_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: with measurements.latency.min_ms deleted, a latency edited in every place it is
    recorded passed `check` (its order check needs min_ms), where `render` refused the record as
    incomplete; a stored result renamed to a metric no criterion has was only warned of."""
    from auditor.cli import main

    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    edited = copy.deepcopy(audit)
    del edited["measurements"]["latency"]["min_ms"]
    (run / "audit.json").write_text(json.dumps(edited))
    assert main(["check", str(run)]) == 2
    assert capsys.readouterr().err == (f"auditor check: error: {run / 'audit.json'}: incomplete audit record: it has no "
                                       "field 'min_ms' (measurements.latency.min_ms) where the sheet reads one "
                                       "(`auditor render` refuses it too)\n")  # fmt: skip
    # The review: a value of another kind the renderer fails on was a traceback in check (exit 1)
    edited = copy.deepcopy(audit)
    edited["training"]["trained_on"]["torch_threads"] = "x"
    (run / "audit.json").write_text(json.dumps(edited))
    for command in ("check", "render"):
        assert main([command, str(run)]) == 2
        err = capsys.readouterr().err
        assert f"auditor {command}: error: {run / 'audit.json'}: malformed audit record, cannot render the sheet (ValueError: " in err
    edited = copy.deepcopy(audit)
    edited["criteria"][1]["metric"] = "x"
    (run / "audit.json").write_text(json.dumps(edited))
    assert main(["check", str(run)]) == 2
    assert "(criteria[1] metric \"x\", but the record's spec has no criterion on it)" in capsys.readouterr().err
    (run / "audit.json").write_text(json.dumps(audit))
    assert main(["check", str(run)]) == 0
    # A criterion given now that no run of this spec passes: refused (exit 2), not failed as a regression (1)
    assert main(["check", str(run), "--set", "criteria.status=== early_stopped"]) == 2
    assert ("train.early_stopping is not set, so no run of this spec stops early; nor can this run pass it"
            in capsys.readouterr().err)


def test_render_refuses_an_audit_json_that_is_a_fifo_rather_than_waiting_on_it(tmp_path: Path) -> None:
    """A user test: `render` hung on it (it read the record's bytes first), where `check` refused it."""
    os.mkfifo(tmp_path / "audit.json")  # no one writes to it
    proc = run_cli("render", str(tmp_path), timeout=60)
    assert_clean_error(proc, f"{tmp_path / 'audit.json'}: not a regular file (a device, pipe or socket)")


def test_a_metric_edited_alone_is_refused_by_check_and_warned_of_by_render(tmp_path: Path, smoke_run: Path) -> None:
    """The user test: metrics.test_acc set to 0.95 by hand had passed `test_acc >= 0.9` with no
    word, and the sheet had shown 0.95 in its front matter and the measured figure in its tables."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    measured = audit["measurements"]["test"]["acc"]
    audit["metrics"]["test_acc"] = 0.95 if measured != 0.95 else 0.96
    (run / "audit.json").write_text(json.dumps(audit))
    proc = run_cli("check", str(run), *sets("criteria.test_acc=>= 0.9"), "--junit", str(tmp_path / "j.xml"))
    said = f"metrics.test_acc {audit['metrics']['test_acc']}, but measurements.test.acc is {measured}"
    assert_clean_error(proc, said)
    assert proc.stdout == ""  # no PASS line
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("errors") == "1"
    rendered = run_cli("render", str(run))
    assert rendered.returncode == 0 and f"auditor render: warning: {run / 'audit.json'}: the record disagrees" \
        in rendered.stderr and said in rendered.stderr
    assert f"> audit.json disagrees with what the run measured: {said}." in (run / "REPRODUCIBILITY.md").read_text()


def test_render_warns_on_the_console_of_a_stored_verdict_its_metrics_contradict(tmp_path: Path, smoke_run: Path) -> None:
    """The user test: a verdict edited to FAIL (or a criterion's result flipped) was said only inside the sheet, so a
    CI log of `render` showed nothing; a verdict neither PASS nor FAIL was rendered as the sheet's headline."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    assert audit["verdict"] == "PASS" and run_cli("render", str(run)).stderr.count("warning") == 0
    flipped = copy.deepcopy(audit)
    flipped["criteria"][0]["passed"] = False
    for edited, said in (({**audit, "verdict": "FAIL"}, "verdict stored FAIL, now PASS"),
                         (flipped, f"`{audit['criteria'][0]['metric']}` stored FAIL, now PASS")):  # fmt: skip
        (run / "audit.json").write_text(json.dumps(edited))
        proc = run_cli("render", str(run))
        assert proc.returncode == 0 and f"auditor render: warning: {run / 'audit.json'}: the stored verdict or criteria " \
            f"results do not agree with the record's metrics judged again ({said}); the sheet shows them as stored, and " \
            "`auditor check` gates on the metrics\n" in proc.stderr, proc.stderr
    edited = copy.deepcopy(audit)  # a review: check refuses a record whose metric was edited, and render said it gated
    assert edited["spec"]["criteria"]["checkpoint_mb"] == "< 5"
    edited["metrics"]["checkpoint_mb"] = 999.0  # the criterion fails on it now
    (run / "audit.json").write_text(json.dumps(edited))
    proc = run_cli("render", str(run))
    assert "judged again (verdict stored PASS, now FAIL; `checkpoint_mb` stored PASS, now FAIL); the sheet shows them as " \
        "stored, and `auditor check` refuses the record (above)\n" in proc.stderr, proc.stderr
    (run / "audit.json").write_text(json.dumps({**audit, "verdict": "maybe"}))
    for command in ("render", "check"):
        assert_clean_error(run_cli(command, str(run)), f'{run / "audit.json"}: malformed audit record: verdict = "maybe"')


@pytest.mark.parametrize("expr", ["== unresumed", "!= diverged"])
def test_a_recorded_criterion_that_passes_a_failed_verification_fails_the_gate(
    tmp_path: Path, smoke_run: Path, expr: str
) -> None:
    """A record an older version wrote (`!=` and failing verdicts were accepted then), verified
    `unresumed`: check had passed it, or refused the record."""
    from auditor.spec import hash_resolved

    run = tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)
    audit = json.loads((run / "audit.json").read_text())
    audit["spec"]["criteria"] = {"reproducible": expr}
    audit["spec_hash"] = hash_resolved(audit["spec"])
    agree = [{"pair": p, "equal": True, "max_abs_diff": 0.0, "tensors_compared": 2, "tensors_equal": 2, "top_tensors": [],
              "losses": {"equal": True, "first_divergence": None}, "metrics": {"equal": True}, "results": {"equal": True}}
             for p in ("a-b", "a-k")]  # as verify writes them  # fmt: skip
    audit["verification"] = {"verdict": "unresumed", "passed": False, "allow_tolerance": False, "first_divergence": None,
                             "runs": [], "tensors": [], "notes": [], "device": "cpu", "budget": {}, "tolerance": 0.0,
                             "pairs": agree, "kill_signal": None, "resumed_from": None, "top_tensors": []}  # fmt: skip
    audit["metrics"]["reproducible"] = "unresumed"
    audit["metric_notes"].pop("reproducible", None)
    audit["criteria"] = [{"metric": "reproducible", "expr": expr, "op": expr[:2], "threshold": expr[3:], "tolerance": None,
                          "measured": "unresumed", "passed": True, "detail": "as an older version judged"}]  # fmt: skip
    (run / "audit.json").write_text(json.dumps(audit))
    proc = run_cli("check", str(run), "--junit", str(tmp_path / "j.xml"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"FAIL  reproducible {expr}  (the criterion passes only a verdict that fails verification: " in proc.stdout
    assert proc.stdout.endswith("0/1 criteria passed: FAIL\n")
    assert "verdict stored PASS, now FAIL" in proc.stderr
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("failures") == "1"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_a_junit_path_in_a_folder_that_takes_no_file_stops_check_before_any_verdict(smoke_run: Path) -> None:
    """/proc refuses new files to root as well; the user test found every PASS line printed first."""
    proc = run_cli("check", str(smoke_run / "reports/smoke"), "--junit", "/proc/j.xml")
    assert_clean_error(proc, "/proc/j.xml: cannot write JUnit report: no file can be made in /proc")
    assert proc.stdout == ""


def test_a_junit_report_to_a_dash_is_refused_not_written_as_a_file_named_dash(tmp_path: Path, smoke_run: Path) -> None:
    """The user test: `--junit -` (as `--criteria -` reads stdin) wrote a file named `-` in the working folder."""
    proc = run_cli("check", str(smoke_run / "reports/smoke"), "--junit", "-", cwd=tmp_path)
    assert_clean_error(proc, "argument --junit: '-' is not standard output here (check prints its verdict there): "
                             "give a file name, e.g. results.xml, or ./- for a file named -")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    assert run_cli("check", str(smoke_run / "reports/smoke"), "--junit", "./-", cwd=tmp_path).returncode == 0
    assert ET.parse(tmp_path / "-").getroot().get("name") == "auditor.smoke"


def test_check_holds_a_reproducible_criterion_to_the_run_s_allow_tolerance_as_validate_does(smoke_run: Path) -> None:
    """`check --set criteria.reproducible='== tolerance'` had been accepted where validate refuses it."""
    proc = run_cli("check", str(smoke_run / "reports/smoke"), *sets("criteria.reproducible=== tolerance"))
    assert_clean_error(proc, "--set 'criteria.reproducible=== tolerance': criteria.reproducible: '== tolerance' asks for a tolerance verdict, which verify "
                             "fails while verify.allow_tolerance is false (fixed by the spec the run ran: a run and its "
                             "verification with another setting can be gated so): require '== bitwise'")  # fmt: skip
    assert "set verify.allow_tolerance" not in proc.stderr  # check refuses any --set but criteria (a user test)
    proc = run_cli("check", str(smoke_run / "reports/smoke"), *sets("criteria.reproducible=== bitwise"))
    assert proc.returncode == 1 and "reproducible" in proc.stdout  # accepted: not verified, so it fails


def test_a_criteria_fifo_is_refused_and_a_pipe_from_the_shell_read(tmp_path: Path, smoke_run: Path) -> None:
    fifo = tmp_path / "crit.yaml"
    os.mkfifo(fifo)  # no one writes to it: reading it had waited forever
    proc = run_cli("check", str(smoke_run / "reports/smoke"), "--criteria", str(fifo), timeout=60)
    assert_clean_error(proc, f"{fifo}: criteria file is not a regular file: a named pipe (FIFO)")
    read_end, write_end = os.pipe()  # what `--criteria <(echo ...)` hands over, as /dev/fd/N
    os.write(write_end, b'status: "== completed"\n')
    os.close(write_end)
    try:
        piped = subprocess.run([sys.executable, "-m", "auditor", "check", str(smoke_run / "reports/smoke"), "--criteria",
                                f"/dev/fd/{read_end}"], pass_fds=(read_end,), capture_output=True, text=True,
                               timeout=60, check=False)  # fmt: skip
    finally:
        os.close(read_end)
    assert piped.returncode == 0 and "PASS  status == completed" in piped.stdout, piped.stderr


def test_criteria_on_stdin_are_read_and_named_stdin(smoke_run: Path, tmp_path: Path) -> None:
    """`--criteria -` reads standard input (it had looked for a file named `-`); its errors name stdin."""
    cmd = [sys.executable, "-m", "auditor", "check", str(smoke_run / "reports/smoke"), "--criteria", "-"]
    piped = subprocess.run(cmd, input='status: "== completed"\n', capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 0 and "PASS  status == completed" in piped.stdout, piped.stderr
    assert "criteria changed from the run's own by --criteria" in piped.stdout + piped.stderr
    bad = subprocess.run(cmd, input="test_acc: 0.5\n", capture_output=True, text=True, timeout=60, check=False)
    assert_clean_error(bad, "stdin (--criteria -):1: criteria.test_acc:")
    closed = subprocess.run(cmd, stdin=None, capture_output=True, text=True, timeout=60, check=False,
                            preexec_fn=lambda: os.close(0))  # `<&-`: Python starts with sys.stdin None
    assert_clean_error(closed, "stdin (--criteria -): standard input is closed")
    # Past the limit, on stdin and in a file: refused having read no more than the limit's worth.
    too_long = "stdin (--criteria -): YAML too large to read: more than the 1,000,000 characters allowed"
    with open("/dev/zero", "rb") as endless:  # a stream with no end: read whole, it had never been refused
        assert_clean_error(subprocess.run(cmd, stdin=endless, capture_output=True, text=True, timeout=60, check=False), too_long)
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(2**31)  # sparse: 2 GiB of NUL characters on no disk
    assert_clean_error(run_cli("check", str(smoke_run / "reports/smoke"), "--criteria", str(big)),
                       f"{big}: YAML too large to read: more than the 1,000,000 characters allowed")


def test_check_explains_unmeasured_metrics_once(smoke_run: Path) -> None:
    proc = run_cli("check", str(smoke_run / "reports/smoke"), *sets("criteria.reproducible=== bitwise"))
    assert proc.returncode == 1
    assert "not measured: not verified: run `auditor verify`" in proc.stdout
    assert "not measured: not measured" not in proc.stdout


def test_unwritable_out_is_invalid_input(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_clean_error(run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(blocker)), "--out: cannot write under")


def test_render_keeps_a_sheet_edited_by_hand_and_writes_nothing(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: `render` replaced a sheet edited by hand, losing the edit; it now refuses (exit 2),
    and the sheet and figures stay as they were."""
    copy = tmp_path / "copy"
    shutil.copytree(smoke_run / "reports/smoke", copy)
    sheet, figure = copy / "REPRODUCIBILITY.md", copy / "figures/learning_curves.png"
    assert run_cli("render", str(copy)).returncode == 0  # as the run wrote it: rebuilt
    sheet.write_text(sheet.read_text().replace("\n# ", "\n# Our ", 1))
    figure.write_bytes(b"ours")
    before = sorted(p.name for p in copy.rglob("*"))
    proc = run_cli("render", str(copy))
    assert_clean_error(proc, f"auditor render: error: {sheet}: it was edited by hand: its text no longer matches the "
                             "sha256 on its last line; it is kept, and nothing was written: move it away (or delete "
                             "it) to have auditor write the sheet again")  # fmt: skip
    assert "\n# Our " in sheet.read_text() and figure.read_bytes() == b"ours"
    assert sorted(p.name for p in copy.rglob("*")) == before  # no temporary file left
    sheet.rename(copy / "ours.md")
    assert run_cli("render", str(copy)).returncode == 0
    assert sheet.read_text() == (smoke_run / "reports/smoke/REPRODUCIBILITY.md").read_text()


def test_render_from_audit_json_alone(tmp_path: Path, smoke_run: Path) -> None:
    src = smoke_run / "reports/smoke"
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    (copy / "REPRODUCIBILITY.md").unlink()
    proc = run_cli("render", str(copy))  # no checkpoints, no data, no training
    assert proc.returncode == 0, proc.stderr
    assert (copy / "REPRODUCIBILITY.md").read_text() == (src / "REPRODUCIBILITY.md").read_text()
    # a user test: the sheet of a moved report names the paths where the run wrote it, and render did not say so
    assert proc.stderr == (f"auditor render: note: {copy}: the run wrote this report in {src}; the sheet's Reproduce "
                           "commands name the paths there (the spec file, the checkpoints), as its record gives them, "
                           "not this folder\n")  # fmt: skip
    record = audit_of(smoke_run)
    assert moved_note(src, record) is None  # where the run wrote it (the shared run is not rendered again here)
    (tmp_path / "alias").symlink_to(smoke_run)  # the same folder by another name
    assert moved_note(tmp_path / "alias" / "reports" / "smoke", record) is None
    assert moved_note(copy, record | {"run": {**record["run"], "out": None}}) is None  # a record that does not say
    (copy / "REPRODUCIBILITY.md").unlink()
    assert run_cli("render", str(copy / "audit.json")).returncode == 0  # the record itself names its folder
    assert (copy / "REPRODUCIBILITY.md").read_text() == (src / "REPRODUCIBILITY.md").read_text()


def test_an_output_root_or_checkpoint_folder_given_for_a_report_names_the_report(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: `check reports` and `check checkpoints/smoke` said only "no audit.json", `measure
    checkpoints/smoke` only "a folder", and `--criteria .../audit.json` that criteria must be a mapping."""
    shutil.copytree(smoke_run, tmp_path / "out")
    shutil.copytree(smoke_run / "reports/smoke", tmp_path / "out/reports/smoke.partial")  # a later run's staging: not listed
    said = "no audit.json (is this a report folder of `auditor run`?)"
    for given, where in [("reports", "; the report folders in it: reports/smoke"), (".", "; the report folders in it: reports/smoke"),
                         ("checkpoints/smoke", "; this is a run's checkpoint folder: its report folder is reports/smoke")]:  # fmt: skip
        assert_clean_error(run_cli("check", given, cwd=tmp_path / "out"), f"auditor check: error: {given}: {said}{where}\n")
    assert_clean_error(run_cli("measure", "checkpoints/smoke", cwd=tmp_path / "out"),
                       "checkpoints/smoke: a folder, not a checkpoint file (it holds best.pt, last.pt)\n")  # fmt: skip
    # A README walk-through: a report given where a checkpoint goes did not point at the run's checkpoints.
    ckpts = "its checkpoints are checkpoints/smoke/best.pt and checkpoints/smoke/last.pt\n"
    assert_clean_error(run_cli("measure", "reports/smoke", cwd=tmp_path / "out"),
                       f"error: reports/smoke: a folder, not a checkpoint file; this is a run's report folder: {ckpts}")
    assert_clean_error(run_cli("evaluate", "reports/smoke/audit.json", "--data-root", str(tmp_path), cwd=tmp_path / "out"),
                       "error: reports/smoke/audit.json: cannot load checkpoint (not a torch.save file: neither its zip "
                       "archive nor a legacy pickle of tensors); this is a file in a run's report folder (reports/smoke): "
                       + ckpts)  # fmt: skip
    # A review: from inside reports/ the checkpoints were looked for under the current folder.
    assert_clean_error(run_cli("measure", "smoke", cwd=tmp_path / "out/reports"),
                       "error: smoke: a folder, not a checkpoint file; this is a run's report folder: its checkpoints are "
                       "../checkpoints/smoke/best.pt and ../checkpoints/smoke/last.pt\n")  # fmt: skip
    assert_clean_error(run_cli("measure", "../audit.json", cwd=tmp_path / "out/reports/smoke/figures"),
                       "a file in a run's report folder (..): its checkpoints are ../../../checkpoints/smoke/best.pt")
    # An error about another argument, or a checkpoint not found, gets no hint.
    shutil.copy(tmp_path / "out/checkpoints/smoke/best.pt", tmp_path / "out/reports/smoke/copy.pt")  # a user's copy
    refused = run_cli("measure", "reports/smoke/copy.pt", "--iters", "1", cwd=tmp_path / "out")
    assert_clean_error(refused, "--iters")
    assert "report folder" not in refused.stderr
    (tmp_path / "out/reports/smoke/copy.pt").unlink()
    refused = run_cli("measure", "best.pt", cwd=tmp_path / "out/reports/smoke")
    assert_clean_error(refused, "best.pt: checkpoint not found")
    assert "report folder" not in refused.stderr
    for name in ("last.pt", "best.pt"):
        (tmp_path / "out/checkpoints/smoke" / name).unlink()
    assert_clean_error(run_cli("measure", ".", cwd=tmp_path / "out/reports/smoke"),
                       "error: .: a folder, not a checkpoint file; this is a run's report folder: its checkpoints would be "
                       "in ../../checkpoints/smoke, which holds no best.pt or last.pt\n")  # fmt: skip
    assert_clean_error(run_cli("measure", str(tmp_path / "out/reports/smoke")),  # given absolute: named absolute
                       f"its checkpoints would be in {tmp_path / 'out/checkpoints/smoke'}, which holds no")
    assert_clean_error(run_cli("measure", "reports", cwd=tmp_path / "out"),
                       "error: reports: a folder, not a checkpoint file\n")  # not a report folder: nothing more said
    assert_clean_error(run_cli("check", "reports/smoke", "--criteria", "reports/smoke/audit.json", cwd=tmp_path / "out"),
                       "reports/smoke/audit.json: a run's audit record, not a criteria file: give its folder as RUN_DIR")  # fmt: skip


@pytest.mark.parametrize("command", ["render", "check"])
def test_a_report_folder_that_is_not_one_says_what_it_is(tmp_path: Path, command: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "list").mkdir()
    (tmp_path / "list/audit.json").write_text("[]")
    (tmp_path / "file.csv").write_text("x")
    (tmp_path / "list/REPRODUCIBILITY.md").write_text("x")  # the sheet given for its folder: the folder is named
    for given, said in [("nothing", "nothing: no such folder"), ("empty", "empty: no audit.json"),
                        ("file.csv", "file.csv: a file, not a report folder (give the folder that holds audit.json)"),
                        ("list/REPRODUCIBILITY.md", (f"REPRODUCIBILITY.md: a file, not a report folder (give its folder, "
                                                     f"{tmp_path / 'list'}, which holds audit.json)")),
                        ("/dev/null", "/dev/null: a character device, not a report folder"),
                        ("file.csv/x", f"file.csv/x: {tmp_path / 'file.csv'} is a regular file, not a folder"),
                        ("list", "audit.json: not an audit record (a JSON object), got JSON list")]:  # fmt: skip
        assert_clean_error(run_cli(command, str(tmp_path / given)), said)


def test_a_folder_given_as_a_spec_or_checkpoint_says_so(tmp_path: Path) -> None:
    assert_clean_error(run_cli("validate", str(tmp_path)), f"{tmp_path}: a folder, not a spec file")
    assert_clean_error(run_cli("measure", str(tmp_path)), f"{tmp_path}: a folder, not a checkpoint file")
    # An empty argument (an unset variable) is not taken for the current folder.
    assert_clean_error(run_cli("validate", ""), "the spec path is empty: give a spec file, or the name of a shipped one")
    assert_clean_error(run_cli("ablate", "", "--list"), "the ablation path is empty: give an ablation file")
    for argv in (["check", ""], ["render", ""], ["measure", ""], ["run", "smoke", "--out", ""],
                 ["check", str(tmp_path), "--junit", ""], ["evaluate", "x.pt", "--data-root", ""]):  # fmt: skip
        assert_clean_error(run_cli(*argv), "the path is empty (an unset variable?)")


def test_check_of_a_loop_of_links_still_writes_its_junit_error_report(tmp_path: Path) -> None:
    """Naming the report's suite once resolved the loop: a RuntimeError traceback, exit 1, no report."""
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    proc = run_cli("check", str(tmp_path / "l1"), "--junit", str(tmp_path / "j.xml"))
    assert_clean_error(proc, "l1/audit.json: unreadable audit record", "says so: one errored test case")
    assert ET.parse(tmp_path / "j.xml").getroot().find("testsuite").get("name") == "auditor.l1"
    for command in ("run", "verify"):  # as --out: refused before anything (it was a RuntimeError traceback)
        assert_clean_error(run_cli(command, "smoke", "--out", str(tmp_path / "l1" / "x")),
                           f"argument --out: {tmp_path / 'l1' / 'x'}: a loop of symbolic links")
    # A `~` the shell left alone (quoted in a CI file) is expanded as for data.root, not a folder named `~`.
    unknown = run_cli("run", "smoke", "--out", "~auditor-no-such-user/x", cwd=tmp_path)
    assert_clean_error(unknown, "argument --out: ~auditor-no-such-user/x: ~auditor-no-such-user names no home folder")
    assert not (tmp_path / "~auditor-no-such-user").exists()


@pytest.mark.slow  # several `auditor` processes
def test_a_record_nested_too_deeply_is_refused_by_check_and_render_with_its_junit_report(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: a record nested past Python's recursion limit gave a RecursionError traceback
    (exit 1, the earlier JUnit report left in place) where --junit named its suite, and a resolved
    spec nested 250 levels deep one in render and check (validation's messages recurse)."""
    from auditor.spec import hash_resolved

    deep, nested = tmp_path / "deep", tmp_path / "nested"
    for folder in (deep, nested):
        shutil.copytree(smoke_run / "reports" / "smoke", folder)
    text = (deep / "audit.json").read_text().rstrip()
    (deep / "audit.json").write_text(text[:-1] + ', "x": ' + "[" * 1100 + "]" * 1100 + "}")
    junit = tmp_path / "j.xml"
    assert run_cli("check", str(smoke_run / "reports" / "smoke"), "--junit", str(junit)).returncode == 0
    proc = run_cli("check", str(deep), "--junit", str(junit))
    assert_clean_error(proc, "audit.json: unreadable audit record (nested too deeply to read)", "says so: one errored test case")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("name"), suite.get("errors"), suite.get("failures")) == ("auditor.deep", "1", "0")
    record = json.loads((nested / "audit.json").read_text())
    description: list = []
    record["spec"]["description"] = description
    for _ in range(250):
        description.append([])
        description = description[0]
    record["spec_hash"] = hash_resolved(record["spec"])  # made to match: the hash is no signature
    (nested / "audit.json").write_text(json.dumps(record))
    said = "its resolved spec was edited after the run into none a run records (validation refuses it: spec: description.0.0.…: nested more than 64 levels deep"
    for command in ("check", "render"):
        assert_clean_error(run_cli(command, str(nested)), said)


@pytest.mark.slow  # several `auditor` processes
def test_check_gate_and_junit(tmp_path: Path, smoke_run: Path) -> None:
    rep = smoke_run / "reports/smoke"
    ok = run_cli("check", str(rep), "--junit", str(tmp_path / "j.xml"))
    assert ok.returncode == 0 and "criteria passed: PASS" in ok.stdout
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests")) == len(audit_of(smoke_run)["criteria"])
    assert int(suite.get("failures")) == 0
    (prop,) = suite.findall("properties/property")  # the run's spec hash, as every artifact carries it
    assert prop.attrib == {"name": "auditor.spec_hash", "value": audit_of(smoke_run)["spec_hash"]}
    strict = run_cli("check", str(rep), *sets("criteria.best_val_acc=>= 0.9999"), "--junit", str(tmp_path / "f.xml"))
    assert strict.returncode == 1 and "FAIL  best_val_acc" in strict.stdout
    assert ET.parse(tmp_path / "f.xml").getroot().find("testsuite").get("failures") == "1"
    crit = tmp_path / "crit.yaml"
    crit.write_text('criteria:\n  params_m: "< 0.01"\n')
    assert run_cli("check", str(rep), "--criteria", str(crit)).returncode == 1
    crit.write_text('criteria:\n  params_m: "less than 1"\n')
    assert_clean_error(run_cli("check", str(rep), "--criteria", str(crit)), str(crit), "criteria.params_m")
    crit.write_text("criteria: {}\n")  # nothing left to gate: passes, unless criteria are required
    assert run_cli("check", str(rep), "--criteria", str(crit)).returncode == 0
    required = run_cli("check", str(rep), "--criteria", str(crit), "--require-criteria", "--junit", str(tmp_path / "r.xml"))
    assert required.returncode == 1 and "\nFAIL  no criteria defined" in required.stdout
    assert ET.parse(tmp_path / "r.xml").getroot().find("testsuite").get("failures") == "1"
    assert run_cli("check", str(rep), "--require-criteria").returncode == 0
    # Bad input (exit 2) replaces the earlier report with one errored case: CI must not show its old PASS.
    stopped = run_cli("check", str(rep), *sets("criteria.best_val_acc=>= 30%"), "--junit", str(tmp_path / "j.xml"))
    assert_clean_error(stopped, "criteria.best_val_acc: cannot parse", f"(the JUnit report {tmp_path / 'j.xml'} says so")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "1")
    assert suite.get("name") == "auditor.smoke"  # as the run's own reports are named
    moved = tmp_path / "artifacts" / "downloaded"  # a report folder handed to a later CI job: still the run's name
    shutil.copytree(rep, moved)
    assert run_cli("check", str(moved), *sets("criteria.best_val_acc=>= 30%"), "--junit", str(tmp_path / "m.xml")).returncode == 2
    assert ET.parse(tmp_path / "m.xml").getroot().find("testsuite").get("name") == "auditor.smoke"
    assert "cannot parse '>= 30%'" in suite.find("testcase/error").get("message")
    record = (rep / "audit.json").read_bytes()  # not a JUnit report: never replaced, also not on an error
    refused = run_cli("check", str(rep), *sets("criteria.best_val_acc=>= 30%"), "--junit", str(rep / "audit.json"))
    assert_clean_error(refused, "cannot parse")
    assert (rep / "audit.json").read_bytes() == record and "says so: one errored test case" not in refused.stderr
    assert f"(no JUnit report was written: {rep / 'audit.json'}: cannot write JUnit report" in refused.stderr


def test_check_arguments_argparse_refuses_still_replace_the_junit_report(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: an unset variable's empty RUN_DIR, or an option given twice, left the previous
    report's PASS in place (argparse refused them before check ran)."""
    rep, junit, other = str(smoke_run / "reports/smoke"), tmp_path / "ci.xml", tmp_path / "other.xml"

    def errored(path: Path) -> str:
        suite = ET.parse(path).getroot().find("testsuite")
        assert (suite.get("name"), suite.get("tests"), suite.get("errors")) == ("auditor.check", "1", "1")
        return suite.find("testcase/error").get("message")

    for args, said in [(["", "--junit", str(junit)], "argument RUN_DIR: the path is empty"),
                       ([rep, f"--junit={junit}", "--criteria", ""], "argument --criteria: the path is empty"),
                       ([rep, "--junit", str(junit), "--junit", str(junit)], "--junit given twice"),
                       ([rep, "--junit", str(junit), "--no-such-option"], "unrecognized arguments: --no-such-option")]:
        assert run_cli("check", rep, "--junit", str(junit)).returncode == 0  # a PASS report first
        proc = run_cli("check", *args)
        assert_clean_error(proc, f"auditor check: error: {said}", f"(the JUnit report {junit} says so: one errored test case)")
        assert said in errored(junit)
    proc = run_cli("check", rep, "--junit", str(junit), "--junit", str(other))  # both named: both say so
    assert_clean_error(proc, f"the JUnit report {junit} says so", f"the JUnit report {other} says so")
    assert "--junit given twice" in errored(junit) == errored(other)
    record = (smoke_run / "reports/smoke/audit.json").read_bytes()  # not a JUnit report: left as it was
    proc = run_cli("check", "", "--junit", str(smoke_run / "reports/smoke/audit.json"))
    assert_clean_error(proc, "the path is empty", f"\n(no JUnit report was written: {smoke_run / 'reports/smoke/audit.json'}: ")
    assert (smoke_run / "reports/smoke/audit.json").read_bytes() == record
    refused = run_cli("check", rep, "--junit", "-")  # the --junit path refused itself: said once
    assert refused.stderr.count("'-' is not standard output here") == 1
    # The review: the option after a bare --junit was written as the report, a file named --criteria;
    # and a path too long to look at was a traceback
    proc = run_cli("check", rep, "--junit", "--criteria", "x.yaml", cwd=tmp_path)
    assert_clean_error(proc, "argument --junit: expected one argument")
    assert not (tmp_path / "--criteria").exists() and "JUnit report" not in proc.stderr
    proc = run_cli("check", "", "--junit", str(tmp_path / ("a" * 300 + ".xml")))
    assert_clean_error(proc, "the path is empty", "\n(no JUnit report was written: ", "File name too long")
    # An upgrade test: `--jun`, an abbreviation auditor 0.2.0 took, left the old PASS report
    assert run_cli("check", rep, "--junit", str(junit)).returncode == 0
    proc = run_cli("check", rep, "--jun", str(junit))
    assert_clean_error(proc, "--jun for --junit", f"(the JUnit report {junit} says so: one errored test case)")
    assert "unrecognized arguments: --jun" in errored(junit)
    # The second review: argparse takes a negative number (and a word with a space) as --junit's value
    assert run_cli("check", rep, "--junit", "-5", cwd=tmp_path).returncode == 0  # writes ./-5, a PASS report
    proc = run_cli("check", rep, "--junit", "-5", "--junit", "x y.xml", cwd=tmp_path)
    assert_clean_error(proc, "the JUnit report -5 says so", "the JUnit report x y.xml says so")
    assert "--junit given twice" in errored(tmp_path / "-5") == errored(tmp_path / "x y.xml")


def test_check_into_a_closed_pipe_still_puts_its_junit_report_in_place(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: `check ... --junit ci.xml | head -1` left the earlier, passing report in place
    for a failing record, where the README sends a CI that pipes the output to the report."""
    junit = tmp_path / "ci.xml"
    assert run_cli("check", str(smoke_run / "reports/smoke"), "--junit", str(junit)).returncode == 0
    assert ET.parse(junit).getroot().get("failures") == "0"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "check", str(smoke_run / "reports/smoke"),
                             *sets("criteria.params_m=< 0.0001"), "--junit", str(junit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    proc.stdout.close()  # type: ignore[union-attr]
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    assert proc.wait(timeout=120) == 141 and "Traceback" not in stderr, stderr
    assert ET.parse(junit).getroot().get("failures") == "1"  # this check's verdict, not the earlier one


def test_check_says_which_criteria_it_changed_and_which_run_it_judged(tmp_path: Path, smoke_run: Path) -> None:
    rep = tmp_path / "reports" / "smoke"
    shutil.copytree(smoke_run / "reports/smoke", rep)
    proc = run_cli("check", str(rep), *sets("criteria.best_val_acc=null", "criteria.params_m=< 9"),
                   "--junit", str(tmp_path / "j.xml"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    own = audit_of(smoke_run)["spec"]["criteria"]["best_val_acc"]
    said = f"criteria changed from the run's own by --set: best_val_acc {own} removed; params_m < 9 added"
    assert proc.stdout.splitlines()[0] == said
    props = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite/properties/property")
    assert {"name": "auditor.note", "value": said} in [p.attrib for p in props]
    nothing = run_cli("check", str(rep), *sets("criteria.test_acc=null"), "--junit", str(tmp_path / "j.xml"))
    noted = "--set 'criteria.test_acc=null' removes nothing: the criteria before it hold no test_acc (they hold "
    assert nothing.returncode == 0 and f"auditor check: warning: {noted}" in nothing.stderr, nothing.stderr
    assert "criteria changed" not in nothing.stdout
    props = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite/properties/property")
    assert any(p.get("name") == "auditor.warning" and p.get("value", "").startswith(noted) for p in props)
    (tmp_path / "reports" / "smoke.partial").mkdir()  # a later run of this name, unfinished
    later = run_cli("check", str(rep))
    finished = audit_of(smoke_run)["run"]["finished_utc"]
    assert later.returncode == 0 and f"{rep}.partial exists: a later run of this name started and has not " \
        f"finished (interrupted, or running now); this check judges the finished run in {rep}, finished {finished}" \
        in later.stderr
    here = run_cli("check", ".", cwd=rep)  # the folder named as `.`: its sibling is found all the same
    assert f"{rep}.partial exists: a later run of this name" in here.stderr
    shutil.rmtree(tmp_path / "reports" / "smoke.partial")
    shutil.copytree(rep, tmp_path / "reports" / "smoke.partial")  # a run stopped before putting its report in place
    staged = run_cli("check", str(tmp_path / "reports" / "smoke.partial"))
    assert staged.returncode == 0 and (f"{rep}.partial is a run's staging folder, not its report: the run had not "
                                       "finished putting its report in place") in staged.stderr  # fmt: skip
    (tmp_path / "v" / "smoke").mkdir(parents=True)
    (tmp_path / "v" / "smoke" / "verify.json").write_text("{}")  # verify's work dir: run A's record holds the verdict
    assert_clean_error(run_cli("check", str(tmp_path / "v" / "smoke")),
                       f"a work dir of `auditor verify`, not a run's report folder: its verdict is recorded in run "
                       f"A's, {tmp_path / 'v' / 'smoke' / 'a' / 'reports' / 'smoke'}")  # fmt: skip
    # A --junit target that cannot be written is said before any verdict is printed.
    refused = run_cli("check", str(rep), "--junit", str(tmp_path / "no-such-folder" / "j.xml"))
    assert_clean_error(refused, "cannot write JUnit report: directory")
    assert refused.stdout == ""


def test_render_warns_as_check_does_of_a_run_that_has_not_finished(tmp_path: Path, smoke_run: Path) -> None:
    """The user test (left alone, then mended): `render` said nothing of a later run of the name left
    unfinished beside the report, or of being given a run's staging folder, where `check` warned."""
    rep = tmp_path / "reports" / "smoke"
    shutil.copytree(smoke_run / "reports/smoke", rep)
    assert "warning" not in run_cli("render", str(rep)).stderr
    (tmp_path / "reports" / "smoke.partial").mkdir()  # a later run of this name, unfinished
    later = run_cli("render", str(rep))
    finished = audit_of(smoke_run)["run"]["finished_utc"]
    assert later.returncode == 0 and f"auditor render: warning: {rep}.partial exists: a later run of this name " \
        f"started and has not finished (interrupted, or running now); this sheet is rendered from the finished run " \
        f"in {rep}, finished {finished}\n" in later.stderr, later.stderr
    shutil.rmtree(tmp_path / "reports" / "smoke.partial")
    shutil.copytree(rep, tmp_path / "reports" / "smoke.partial")  # a run stopped before putting its report in place
    staged = run_cli("render", str(tmp_path / "reports" / "smoke.partial"))
    assert staged.returncode == 0 and (f"auditor render: warning: {rep}.partial is a run's staging folder, not its "
                                       "report: the run had not finished putting its report in place") in staged.stderr
    assert (tmp_path / "reports" / "smoke.partial" / "REPRODUCIBILITY.md").is_file()


@pytest.mark.parametrize(("argv", "said"), [
    (["check"], "auditor check: error: the following arguments are required: RUN_DIR"),
    (["check", "R", "--junit", "a.xml", "--junit", "b.xml"], "auditor check: error: --junit given twice"),
    (["run", "smoke", "--resum"], "auditor: error: unrecognized arguments: --resum"),  # parse_args: the top's own
    (["bogus"], "auditor: error: argument COMMAND: invalid choice: 'bogus'"),
])  # fmt: skip
def test_build_parser_refuses_as_argparse_does_for_callers_outside_main(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The review: with main's refusal path (`_Refused`, for check's --junit report), build_parser()'s
    other callers got that private exception instead of argparse's usage error (exit 2)."""
    from auditor.cli import build_parser

    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(argv)
    assert stopped.value.code == 2 and said in capsys.readouterr().err


def test_set_and_only_still_repeat() -> None:
    """The review: nothing showed that the options meant to repeat still do after `_GivenOnce`."""
    from auditor.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "smoke", "--set", "a=1", "--set", "a=2", "--set", "b=3"])
    assert args.sets == ["a=1", "a=2", "b=3"]
    args = parser.parse_args(["ablate", "x", "--only", "a", "--only", "b", "c"])
    assert args.only == ["a", "b", "c"]
    assert parser.parse_args(["check", "R", "--criteria", "c.yaml"]).criteria == Path("c.yaml")  # once: taken


@pytest.mark.parametrize(("argv", "abbreviated"), [
    (["run", "smoke", "--resum"], "--resum"), (["check", "R", "--crit", "c.yaml"], "--crit c.yaml"),
    (["measure", "x.pt", "--iter", "5"], "--iter 5"),
])  # fmt: skip
def test_an_abbreviated_option_is_refused_not_read_as_the_full_one(tmp_path: Path, argv: list[str], abbreviated: str) -> None:
    """A user test: `auditor run --resum` resumed the run, re-measured it and replaced its report."""
    proc = run_cli(*argv, cwd=tmp_path)
    assert_clean_error(proc, f"auditor {argv[0]}: error: unrecognized arguments: {abbreviated}")
    assert list(tmp_path.iterdir()) == []
    # An upgrade test: auditor 0.2.0 took them; the refusal says what each stands for
    word = abbreviated.split()[0]
    full = {"--resum": "--resume", "--crit": "--criteria", "--iter": "--iters"}[word]
    assert f"(options are given in full, not abbreviated: {word} for {full})" in proc.stderr


@pytest.mark.parametrize("argv", [
    ["check", "R", "--criteria", "strict.yaml", "--criteria", "team.yaml"], ["check", "R", "--junit", "a.xml", "--junit", "b.xml"],
    ["measure", "x.pt", "--iters", "3", "--iters", "4"], ["verify", "--steps", "1", "--steps", "2"],
    ["ablate", "x", "--seeds", "1", "--seeds", "2"],
])  # fmt: skip
def test_a_single_valued_option_given_twice_is_refused(tmp_path: Path, argv: list[str]) -> None:
    """A user test: `check --criteria strict.yaml --criteria team.yaml` judged team.yaml alone and
    passed, dropping strict.yaml's failing gate without a word (argparse keeps the last value)."""
    option = argv[-2]
    proc = run_cli(*argv, cwd=tmp_path)
    assert_clean_error(proc, f"auditor {argv[0]}: error: {option} given twice: it takes one value, and the first "
                             "would be ignored; give it once")  # fmt: skip
    # refused before anything is read or written; but --junit's reports say so (a CI page must not show an old PASS)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["a.xml", "b.xml"] if option == "--junit" else [])


@pytest.mark.parametrize("argv", [
    ["measure", "x.pt", "--iters", "\uff15"], ["measure", "x.pt", "--warmup", "1_000"], ["verify", "--epochs", "2.0"],
    ["verify", "--steps", "1e3"], ["verify", "--kill-at", ""], ["ablate", "x", "--seeds", "\u0663"],
])  # fmt: skip
def test_a_count_not_in_ascii_digits_is_refused(tmp_path: Path, argv: list[str]) -> None:
    """A user test: `measure --iters ５` (a full-width digit) and `--iters 1_000` were read by
    Python's int(), which a CI file checking its numbers would not pass."""
    proc = run_cli(*argv, cwd=tmp_path)
    assert_clean_error(proc, f"auditor {argv[0]}: error: argument {argv[-2]}: expected a whole number in digits "
                             f"(0-9), got {argv[-1]!r}")  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_count_may_have_a_sign_and_spaces_around_it() -> None:
    from auditor.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["measure", "x.pt", "--iters", " 7 ", "--warmup", "+0"]).iters == 7
    assert parser.parse_args(["verify", "--kill-at", "-1"]).kill_at == -1  # its range is checked, and said, later


def test_options_given_once_leave_no_bookkeeping_in_the_parsed_arguments() -> None:
    from auditor.cli import build_parser

    args = build_parser().parse_args(["check", "R", "--criteria", "c.yaml", "--junit", "j.xml"])
    assert str(args.criteria) == "c.yaml" and str(args.junit) == "j.xml"
    assert not hasattr(args, "_given_once")  # a review: the check's set rode along in every command's args


def test_check_says_a_run_of_an_unfinished_or_failed_verify_holds_no_verdict(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: after a verify killed outright, `check` on its run A judged the killed attempt's
    record without saying that the earlier verify's evidence waits in `<name>.old`."""
    workdir = tmp_path / "verify" / "smoke"
    run_a = workdir / "a" / "reports" / "smoke"
    shutil.copytree(smoke_run / "reports/smoke", run_a)
    (workdir / VERIFY_MARKER).write_text("")
    proc = run_cli("check", str(run_a), "--junit", str(tmp_path / "j.xml"))
    assert proc.returncode == 0, proc.stderr
    unfinished = (f"{run_a} is a run of a verify attempt in {workdir} that has not finished (stopped, or running "
                  "now): it holds no verdict of that attempt")  # fmt: skip
    assert f"auditor check: warning: {unfinished}\n" in proc.stderr
    # A warning reaches the JUnit report too (a user test: a CI page showed a clean PASS)
    props = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite/properties/property")
    assert {"name": "auditor.warning", "value": unfinished} in [p.attrib for p in props]
    # and to the report of an error met after it (a user test: there it was printed only)
    errored = run_cli("check", str(run_a), "--junit", str(tmp_path / "j.xml"), *sets("criteria.test_acc=0.5"))
    assert_clean_error(errored, "criteria.test_acc:", f"auditor check: warning: {unfinished}\n")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite is not None and suite.attrib["errors"] == "1"
    assert {"name": "auditor.warning", "value": unfinished} in [p.attrib for p in suite.findall("properties/property")]
    (workdir.with_name("smoke.old")).mkdir()
    (workdir.with_name("smoke.old") / "verify.json").write_text("{}")
    relative = run_cli("check", "a/reports/smoke", cwd=workdir)  # named as given, its work dir found all the same
    assert (f"a/reports/smoke is a run of a verify attempt in {workdir} that has not finished (stopped, or running "
            f"now): it holds no verdict of that attempt; the evidence of the verify before it is in {workdir}.old, "
            "which the next `auditor verify` of this spec puts back first\n") in relative.stderr  # fmt: skip
    os.replace(workdir, workdir.with_name("smoke.failed"))  # the failed attempt kept beside the evidence put back
    os.replace(workdir.with_name("smoke.old"), workdir)
    failed = workdir.with_name("smoke.failed") / "a" / "reports" / "smoke"
    assert (f"{failed} is a run of a verify attempt that did not finish, kept in {workdir}.failed for reading: it "
            f"holds no verdict of that attempt; {workdir} holds the evidence of another verify of it\n"
            ) in run_cli("check", str(failed)).stderr  # fmt: skip
    # stopped between writing run A's verification block and verify.json (check passes `verified` from the record)
    assert verify_attempt_note(failed, verified=True) == (
        f"{failed} is a run of a verify attempt that did not finish, kept in {workdir}.failed for reading: it holds "
        f"that attempt's verdict, but the attempt stopped before writing verify.json; {workdir} holds the evidence of "
        "another verify of it")  # fmt: skip
    shutil.copytree(failed, run_a)  # the finished verify's own run A: no note
    (workdir / VERIFY_MARKER).write_text("")
    assert "verify attempt" not in run_cli("check", str(run_a)).stderr
    # A user test: run B of a finished verify said "not verified" without pointing at run A, and
    # verify.json given was called "a file" only.
    run_b = workdir / "b" / "reports" / "smoke"
    shutil.copytree(failed, run_b)
    assert (f"auditor check: warning: {run_b} is run B of the verify in {workdir}, compared with run A: the verdict "
            f"is recorded in run A's record, {run_a}\n") in run_cli("check", str(run_b)).stderr  # fmt: skip
    assert_clean_error(run_cli("check", str(workdir / "verify.json")),
                       f"{workdir / 'verify.json'}: the evidence file of `auditor verify`, not a run's report folder: its "
                       f"verdict is recorded in run A's, {run_a}\n")  # fmt: skip
    aside = workdir.with_name("smoke.old")  # an earlier verify's evidence, set aside during a re-verify
    shutil.copytree(workdir, aside)
    assert_clean_error(run_cli("check", str(aside / "verify.json")),
                       f"its verdict is recorded in run A's, {aside / 'a' / 'reports' / 'smoke'}\n")
    (workdir / VERIFY_MARKER).unlink()
    (workdir / "verify.json").unlink()
    assert "verify attempt" not in run_cli("check", str(run_a)).stderr  # no marker: not verify's folder


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) for a full disk behind stdout")
def test_check_output_that_cannot_be_written_is_an_error_and_the_junit_says_so(tmp_path: Path, smoke_run: Path) -> None:
    junit = tmp_path / "j.xml"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "auditor", "check", str(smoke_run / "reports/smoke"), "--junit",
                               str(junit)], stdout=full, stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    assert_clean_error(proc, "standard output: cannot write: No space left on device", "the JUnit report")
    assert ET.parse(junit).getroot().find("testsuite").get("errors") == "1"  # not the PASS the exit code denies


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) for a full disk behind stdout")
@pytest.mark.parametrize("command", ["models", "schema", "validate", "render", "evaluate", "measure"])
def test_every_command_whose_output_cannot_be_written_says_so(tmp_path: Path, smoke_run: Path, command: str) -> None:
    best, run = str(smoke_run / "checkpoints/smoke/best.pt"), tmp_path / "run"
    shutil.copytree(smoke_run / "reports/smoke", run)  # render writes the sheet: into a copy
    argv = {"validate": ["specs/smoke.yaml"], "render": [str(run)], "measure": [best, "--iters", "5"],
            "evaluate": [best, "--data-root", str(fake_cifar_root(tmp_path / "data"))]}.get(command, [])  # fmt: skip
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "auditor", command, *argv], stdout=full, stderr=subprocess.PIPE,
                              text=True, check=False, cwd=REPO)  # fmt: skip
    assert_clean_error(proc, f"auditor {command}: error: standard output: cannot write: No space left on device")


def _with_fd_closed(fd: int, *args: str) -> subprocess.CompletedProcess:
    """`python -m auditor ARGS` with file descriptor `fd` closed (a shell's `>&-` or `2>&-`), the other one captured."""
    shell = f'exec "$@" {fd}>&-'
    return subprocess.run(["sh", "-c", shell, "sh", sys.executable, "-m", "auditor", *args], capture_output=True,
                          text=True, check=False, cwd=REPO)  # fmt: skip


def test_a_closed_stdout_is_an_error_and_the_junit_report_says_so(tmp_path: Path, smoke_run: Path) -> None:
    """Python writes nothing to a closed stdout without a word: a check whose verdict nobody could
    read had exited 1 with a traceback, and left an earlier report's verdict in place."""
    junit = tmp_path / "j.xml"
    assert run_cli("check", str(smoke_run / "reports/smoke"), "--junit", str(junit)).returncode == 0  # a PASS report
    proc = _with_fd_closed(1, "check", str(smoke_run / "reports/smoke"), "--junit", str(junit))
    assert_clean_error(proc, "auditor check: error: standard output: cannot write: it is closed", "the JUnit report")
    assert ET.parse(junit).getroot().find("testsuite").get("errors") == "1"
    for command in ("models", "schema"):
        assert_clean_error(_with_fd_closed(1, command), f"auditor {command}: error: standard output: cannot write")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) for a full disk behind stderr")
def test_a_closed_or_full_stderr_keeps_stdout_clean_and_the_exit_codes(tmp_path: Path, smoke_run: Path) -> None:
    """stderr carries diagnostics: closed, its lines must not fall back to stdout (a CI parses it);
    full, bad input is still exit 2 (not 1, a failed criterion) and a run still finishes."""
    closed = _with_fd_closed(2, "check", str(tmp_path / "none"))
    assert (closed.returncode, closed.stdout) == (2, "")
    with open("/dev/full", "w") as full:
        bad = subprocess.run([sys.executable, "-m", "auditor", "check", str(tmp_path / "none")], stdout=subprocess.PIPE,
                             stderr=full, text=True, check=False)  # fmt: skip
        assert (bad.returncode, bad.stdout) == (2, "")
        ran = subprocess.run([sys.executable, "-m", "auditor", "run", "smoke", "--out", str(tmp_path / "out"),
                              *sets(*TINY_SETS)], stdout=subprocess.PIPE, stderr=full, text=True, check=False)  # fmt: skip
    assert ran.returncode == 0 and "criteria passed: PASS" in ran.stdout, ran.stdout
    assert (tmp_path / "out/reports/smoke/REPRODUCIBILITY.md").is_file()


def test_a_folder_whose_name_is_not_utf8_is_printed_as_its_own_bytes(tmp_path: Path, smoke_run: Path) -> None:
    raw = bytes(tmp_path) + b"/bad\xffdir"
    rep = Path(os.fsdecode(raw))
    shutil.copytree(smoke_run / "reports/smoke", rep)
    rendered = subprocess.run([sys.executable, "-m", "auditor", "render", raw], capture_output=True, check=False)
    assert rendered.returncode == 0 and b"Traceback" not in rendered.stderr, rendered.stderr
    assert rendered.stdout.startswith(b"wrote " + raw + b"/REPRODUCIBILITY.md")  # a path that can be pasted back
    assert run_cli("check", str(rep), "--junit", str(tmp_path / "j.xml")).returncode == 0
    empty = Path(os.fsdecode(bytes(tmp_path) + b"/empty\xffdir"))
    empty.mkdir()  # no audit.json: the errored JUnit report is named after the folder
    assert run_cli("check", str(empty), "--junit", str(tmp_path / "j.xml")).returncode == 2
    assert ET.parse(tmp_path / "j.xml").getroot().get("name") == "auditor.empty?dir"
    (rep / "audit.json").unlink()
    os.mkfifo(rep / "audit.json")  # a read would block for ever
    assert_clean_error(run_cli("check", str(rep), timeout=60), "audit.json: not a regular file (a device, pipe or socket)")


def test_check_junit_never_replaces_the_record_it_read(tmp_path: Path, smoke_run: Path) -> None:
    rep = tmp_path / "smoke"
    shutil.copytree(smoke_run / "reports/smoke", rep)  # a copy: a regression must not spoil the shared run
    before = {p.name: p.read_bytes() for p in rep.iterdir() if p.is_file()}
    for target in ("audit.json", "REPRODUCIBILITY.md"):
        proc = run_cli("check", str(rep), "--junit", str(rep / target))
        assert_clean_error(proc, f"{rep / target}: cannot write JUnit report: the file there is not a JUnit report")
    assert {p.name: p.read_bytes() for p in rep.iterdir() if p.is_file()} == before


def test_measure_checkpoint(smoke_run: Path) -> None:
    proc = run_cli("measure", str(smoke_run / "checkpoints/smoke/best.pt"), "--device", "cpu", "--iters", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["params_total"] == 75_290 and report["latency"]["iters"] == 5
    assert report["checkpoint_bytes"] == (smoke_run / "checkpoints/smoke/best.pt").stat().st_size  # a user test: exact
    assert report["weights_bytes"] == audit_of(smoke_run)["measurements"]["size"]["weights_bytes"]
    assert report["spec_hash"] == checkpoint.load(smoke_run / "checkpoints/smoke/best.pt")["spec_hash"]
    assert report["checkpoint_mb"] == pytest.approx((smoke_run / "checkpoints/smoke/best.pt").stat().st_size / 1e6)
    table = run_cli("measure", str(smoke_run / "checkpoints/smoke/best.pt"), "--device", "cpu", "--iters", "5",
                    "--warmup", "0")  # fmt: skip
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "  warmup                 0" in lines and "  iters                  5" in lines

    from auditor.cli import _table

    notes = ["Unsteady timing: a; b", "Busy machine: c"]  # a note may hold '; ' itself: one a line
    assert _table({"run": "smoke", "notes": notes, "warnings": []}).splitlines() == [
        "run                      smoke", "notes:", "  - Unsteady timing: a; b", "  - Busy machine: c",
        "warnings                 none"]  # fmt: skip
    # A user test: a nested mapping printed as Python's repr, and a line break in a path ended its row.
    assert _table({"data": {"files": {"test_batch": "md5 mismatch", "batches.meta": "ok"}}, "checkpoint": "/x\ny.pt"}).splitlines() == [
        "data:", "  files                  test_batch md5 mismatch; batches.meta ok", "checkpoint               /x\\ny.pt"]  # fmt: skip


def test_terminal_safe_escapes_c0_and_c1_controls_but_line_breaks_and_tabs() -> None:
    from auditor.cli import terminal_safe

    assert terminal_safe("a\x1b[31mb\x9b31mc\x85d\x7f\te\nf") == "a\\x1b[31mb\\x9b31mc\\x85d\\x7f\te\nf"  # the review: C1
    assert terminal_safe("héllo 日本 \u00a0") == "héllo 日本 \u00a0"  # printable text beyond ASCII stays


def test_measure_shows_control_characters_of_a_path_escaped(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: the error path escaped them, but notes and the table printed ESC raw, which
    a terminal obeys (colours, a cleared line) rather than shows."""
    odd = tmp_path / "x\x1b[31mred.pt"
    shutil.copy(smoke_run / "checkpoints/smoke/best.pt", odd)  # no digest file beside it: a note names it
    proc = run_cli("measure", str(odd), "--iters", "5", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout + proc.stderr
    assert f"checkpoint               {tmp_path}/x\\x1b[31mred.pt" in proc.stdout.splitlines()
    assert "auditor measure: note: no x\\x1b[31mred.pt.sha256 came with it" in proc.stderr, proc.stderr


def test_bad_checkpoint_is_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert_clean_error(run_cli("measure", str(bad)), "bad.pt: cannot load checkpoint")
    assert_clean_error(run_cli("measure", str(tmp_path / "none.pt")), "none.pt: checkpoint not found")
    assert_clean_error(run_cli("evaluate", str(bad), "--data-root", str(tmp_path)), "bad.pt")


def test_checkpoint_whose_weights_are_not_a_state_dict(tmp_path: Path, smoke_run: Path) -> None:
    state = checkpoint.load(smoke_run / "checkpoints/smoke/best.pt")
    checkpoint.save(tmp_path / "odd.pt", {**state, "model": "not a state dict"})
    assert_clean_error(run_cli("measure", str(tmp_path / "odd.pt")), "odd.pt: weights do not fit resnet8")


def test_measure_device_errors(smoke_run: Path) -> None:
    """Through the entry point; every refused device name is in test_inspect.py."""
    best = str(smoke_run / "checkpoints/smoke/best.pt")
    assert_clean_error(run_cli("measure", best, "--device", "gpu"), "--device: must be auto, cpu, cuda or cuda:N, got 'gpu'")


@requires_subset
def test_evaluate_checkpoint_on_real_data(smoke_run: Path) -> None:
    """A synthetic-trained model on real CIFAR-10: the plumbing works, accuracy is near chance."""
    proc = run_cli("evaluate", str(smoke_run / "checkpoints/smoke/best.pt"), "--data-root", str(SUBSET), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["n"] == 1017 and report["data"]["official"] is False and len(report["spec_hash"]) == 64
    assert set(report["per_class_acc"]) == {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    assert 0.0 <= report["test_acc"] <= 0.3
    assert report["warnings"] == [
        "the model was trained on synthetic data, whose classes are not CIFAR-10's: this accuracy says nothing about the run"
    ]  # fmt: skip
    assert f"auditor evaluate: warning: {report['warnings'][0]}" in proc.stderr
    strict = run_cli("evaluate", str(smoke_run / "checkpoints/smoke/best.pt"), "--data-root", str(SUBSET), "--strict")
    assert strict.returncode == 1 and "auditor evaluate: FAIL (--strict): 1 warning" in strict.stderr, strict.stderr
    assert "Traceback" not in strict.stderr and "per_class_acc:" in strict.stdout  # the table is printed all the same


@requires_subset
def test_evaluate_reproduces_the_runs_test_accuracy_on_its_limited_test_set(tmp_path: Path) -> None:
    """A run scored on data.limit_test images: evaluate scores the same images and gets its figure."""
    run = run_cli("run", "smoke", "--out", str(tmp_path), *sets(
        *TINY_SETS, "data.dataset=cifar10", f"data.root={SUBSET}", "data.limit_train=256", "data.val_split=64",
        "data.limit_test=100", "train.epochs=1", "criteria.best_val_acc=null"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    audit = audit_of(tmp_path)
    proc = run_cli("evaluate", str(tmp_path / "checkpoints/smoke/best.pt"), "--data-root", str(SUBSET), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["scored"] == "the first 100 of the 1,017 test images, as the run's data.limit_test"
    assert report["n"] == audit["measurements"]["test"]["n"] == 100 and report["test_images"] == 1017  # not in prose only
    assert report["test_acc"] == audit["metrics"]["test_acc"] and report["warnings"] == []
    assert report["precision"] == audit["measurements"]["test"]["precision"] == "float32"
    assert report["data"]["fingerprint"] == audit["data"]["test_fingerprint"]  # the files the run read
    assert report["scored_fingerprint"] == audit["data"]["scored_test_fingerprint"] != audit["data"]["test_fingerprint"]
    assert f"`auditor evaluate` prints it as `scored_fingerprint`) | `{report['scored_fingerprint']}` |" in (
        tmp_path / "reports/smoke/REPRODUCIBILITY.md").read_text()  # fmt: skip
    # A copy with one label changed: evaluate says it is not the test set the run was scored on.
    copy = tmp_path / "copy" / "cifar-10-batches-py"
    copy.mkdir(parents=True)
    shutil.copy(SUBSET / "cifar-10-batches-py" / "batches.meta", copy)
    batch = pickle.loads((SUBSET / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="bytes")
    labels = batch[b"labels" if b"labels" in batch else "labels"]
    labels[100] = (labels[100] + 1) % 10  # past the 100 images the run scored: another file, the same images scored
    (copy / "test_batch").write_bytes(pickle.dumps(batch))
    same = run_cli("evaluate", str(tmp_path / "checkpoints/smoke/best.pt"), "--data-root", str(copy.parent), "--json",
                   "--strict")  # no warning: --strict passes  # fmt: skip
    assert same.returncode == 0 and json.loads(same.stdout)["warnings"] == [], same.stdout
    assert json.loads(same.stdout)["test_acc"] == audit["metrics"]["test_acc"]
    labels[0] = (labels[0] + 1) % 10  # one of the images scored
    (copy / "test_batch").write_bytes(pickle.dumps(batch))
    other = run_cli("evaluate", str(tmp_path / "checkpoints/smoke/best.pt"), "--data-root", str(copy.parent), "--json")
    assert other.returncode == 0, other.stderr
    [warning] = json.loads(other.stdout)["warnings"]
    assert warning.startswith("the 100 test images scored here, or their labels (sha256 ") and "are not those the run scored" in warning
    assert f"({audit['data']['scored_test_fingerprint'][:12]})" in warning and f"auditor evaluate: warning: {warning}" in other.stderr
    # The same images and labels, with two class names swapped in batches.meta: said, by name.
    labels[0] = (labels[0] - 1) % 10
    (copy / "test_batch").write_bytes(pickle.dumps(batch))
    meta = pickle.loads((copy / "batches.meta").read_bytes(), encoding="latin1")
    meta["label_names"][3], meta["label_names"][5] = meta["label_names"][5], meta["label_names"][3]
    (copy / "batches.meta").write_bytes(pickle.dumps(meta))
    named = run_cli("evaluate", str(tmp_path / "checkpoints/smoke/best.pt"), "--data-root", str(copy.parent), "--json")
    assert named.returncode == 0, named.stderr
    said = "the class names here are not those the run read: cat, dog (now dog, cat); the per-class accuracies are named as here, by label"
    assert json.loads(named.stdout)["warnings"] == [said]
    # No batches.meta: said once, as such (a user test: the names, now numbers, were warned of too); a folder
    # in its place: refused.
    (copy / "batches.meta").unlink()
    unnamed = run_cli("evaluate", str(tmp_path / "checkpoints/smoke/best.pt"), "--data-root", str(copy.parent), "--json")
    assert unnamed.returncode == 0, unnamed.stderr
    assert json.loads(unnamed.stdout)["warnings"] == [(
        f"{copy / 'batches.meta'} is missing: the classes are named by their labels' numbers, not compared with the "
        "names the run read")]  # fmt: skip
    (copy / "batches.meta").mkdir()
    folder = run_cli("evaluate", str(tmp_path / "checkpoints/smoke/best.pt"), "--data-root", str(copy.parent))
    assert_clean_error(folder, f"{copy / 'batches.meta'}: a folder, where CIFAR-10's batches.meta goes")


@pytest.mark.slow
@requires_subset
def test_real_data_acceptance_resnet20(tmp_path: Path) -> None:
    """resnet20, 8 epochs, batch 128, SGD lr 0.1 cosine, wd 5e-4, seed 42, no val split: test acc >= 0.40."""
    proc = run_cli(
        "run", "specs/resnet20_cifar10.yaml", "--out", str(tmp_path),
        *sets("name=acceptance", f"data.root={SUBSET}", "data.val_split=0", "train.epochs=8",
              "train.optimizer.weight_decay=5e-4", "train.schedule.name=cosine", "train.schedule.milestones=[]",
              "train.device=cpu", "seed=42", "criteria.test_acc=>= 0.40"),
        timeout=1800,  # ~35 s on 2 quiet AVX-512 cores, ~170 s on AVX2-only ones (bench/RESULTS.md runs it)
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    audit = audit_of(tmp_path, "acceptance")
    assert audit["metrics"]["test_acc"] >= 0.40
    assert audit["training"]["selection_split"] == "test"
    assert audit["data"]["official"] is False
    print(f"acceptance: test_acc {audit['metrics']['test_acc']:.4f}, wall {audit['run']['wall_time_s']:.0f}s")


def test_a_data_folder_refused_names_the_set_that_gave_it(tmp_path: Path) -> None:
    nowhere, out = tmp_path / "nowhere", tmp_path / "out"
    proc = run_cli("run", "resnet20_cifar10", "--set", f"data.root={nowhere}", "--out", str(out), cwd=tmp_path)
    assert_clean_error(proc, f"resnet20_cifar10 --set 'data.root={nowhere}': data.root: {nowhere} does not exist")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_fast_preset_without_cuda_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    proc = run_cli("run", "specs/resnet18_fast.yaml", "--out", str(tmp_path), cwd=REPO)
    assert_clean_error(proc, "train.device: cuda requested but CUDA is not available here")
    assert not any(tmp_path.iterdir())
    proc = run_cli("run", "smoke", "--set", "train.device=cuda", "--out", str(tmp_path), cwd=REPO)
    assert_clean_error(proc, "smoke --set 'train.device=cuda': train.device: cuda requested but CUDA is not available")
    assert not any(tmp_path.iterdir())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@requires_subset
def test_fast_preset_runs_on_cuda_on_a_tiny_budget(tmp_path: Path) -> None:
    """The fast preset's CUDA path (bf16, channels_last, compile, deterministic) end to end."""
    # 4,068 - 68 = 4,000 training images: 8 full batches of 500, no recompile for a short one
    tiny = ("name=fast", f"data.root={SUBSET}", "data.val_split=68", "data.limit_test=512", "train.epochs=2",
            "train.log_every_steps=2", "measure.latency.warmup=5", "measure.latency.iters=20")  # fmt: skip
    proc = run_cli("run", "specs/resnet18_fast.yaml", "--out", str(tmp_path), *sets(*tiny), cwd=REPO)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: the full-budget criteria fail
    audit = audit_of(tmp_path, "fast")
    assert audit["run"]["status"] == "completed" and audit["environment"]["device"].startswith("cuda")
    det = audit["determinism"]
    assert det["cudnn_deterministic"] and not det["cudnn_benchmark"] and det["deterministic_algorithms"]
    latency = audit["measurements"]["latency"]
    assert audit["training"]["compile_s"] > 0 and latency["synchronized"] and latency["median_ms"] > 0


def test_help_names_every_command_and_the_exit_codes() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0 and "Reproducibility audits" in proc.stdout
    for command in ("models", "schema", "validate", "run", "verify", "render", "check", "evaluate", "measure", "ablate"):
        assert re.search(rf"^\s+{command}\s", proc.stdout, re.MULTILINE), command  # whatever the terminal width
    text = " ".join(proc.stdout.split())
    assert "Exit codes: 0 success; 1 a criterion failed" in text and "141 its output pipe closed early" in text


def test_only_an_os_error_about_a_given_path_is_bad_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A full disk or a broken install is no bad input (exit 2 would send verify and ablate looking at the spec)."""
    from auditor import cli

    def failing(exc: OSError):
        return lambda args: (_ for _ in ()).throw(exc)

    monkeypatch.setitem(cli.COMMANDS, "models", failing(OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300)))
    assert cli.main(["models"]) == 2 and f"{'x' * 300}: File name too long" in capsys.readouterr().err
    monkeypatch.setitem(cli.COMMANDS, "models", failing(OSError(errno.EISDIR, "Is a directory", "a", None, "b")))
    assert cli.main(["models"]) == 2 and "a -> b: Is a directory" in capsys.readouterr().err
    for other in (OSError(errno.ENOSPC, "No space left on device", "f"), OSError(errno.ENOENT, "no such thing")):
        monkeypatch.setitem(cli.COMMANDS, "models", failing(other))
        with pytest.raises(OSError):
            cli.main(["models"])


def test_a_stray_argument_is_reported_with_the_command_s_usage() -> None:
    proc = run_cli("schema", "--json")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: auditor schema")
    assert "auditor schema: error: unrecognized arguments: --json" in proc.stderr


@pytest.mark.slow  # two short runs on the real subset
@requires_subset
def test_the_sheet_s_retrain_command_works_with_a_relative_data_root(tmp_path: Path) -> None:
    """data.root relative to the working directory (as in the shipped specs): the pasted command finds the data."""
    tiny = (f"data.root={os.path.relpath(SUBSET, REPO)}", "data.val_split=128", "data.limit_train=256",
            "data.limit_test=128", "train.epochs=1", "train.schedule.milestones=[0.5]", "measure.latency.iters=5",
            "measure.latency.warmup=1", "criteria={}")  # fmt: skip
    first = run_cli("run", "resnet20_cifar10", *sets(*tiny), "--out", str(tmp_path), cwd=REPO)
    assert first.returncode == 0, first.stderr
    before = audit_of(tmp_path, "resnet20-cifar10")
    losses = (tmp_path / "reports/resnet20-cifar10/steps.csv").read_text()
    sheet = (tmp_path / "reports/resnet20-cifar10/REPRODUCIBILITY.md").read_text()
    block = sheet.split("## Reproduce", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    retrain = next(line for line in block if "spec.resolved.yaml" in line and not line.startswith("#"))
    again = subprocess.run(["bash", "-c", f"cd {shlex.quote(str(tmp_path))} && {retrain}"],
                           capture_output=True, text=True, timeout=300, check=False,
                           env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})  # fmt: skip
    assert again.returncode == 0, retrain + "\n" + again.stderr
    after = audit_of(tmp_path, "resnet20-cifar10")
    assert after["spec_hash"] == before["spec_hash"] and after["run"]["finished_utc"] >= before["run"]["finished_utc"]
    assert (tmp_path / "reports/resnet20-cifar10/steps.csv").read_text() == losses  # retrained, same losses


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("auditor ")


def test_spec_hash_in_checkpoint_matches_audit(smoke_run: Path) -> None:
    state = torch.load(smoke_run / "checkpoints/smoke/last.pt", weights_only=True)
    assert state["spec_hash"] == audit_of(smoke_run)["spec_hash"]
    assert hashlib.sha256((smoke_run / "checkpoints/smoke/last.pt").read_bytes()).hexdigest() == (
        (smoke_run / "checkpoints/smoke/last.pt.sha256").read_text().split()[0]
    )


@pytest.mark.slow
def test_non_editable_install_ships_specs_and_templates(tmp_path: Path) -> None:
    """`pip install .` (not -e) must carry specs/ and templates/ inside the package."""
    import subprocess
    import sys

    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(REPO)],
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    probe = "import auditor.spec as s; print(s.resource_dir('templates')); print(s.resolve_spec_path('smoke'))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    templates, smoke = (Path(p) for p in out.stdout.split())
    assert templates.is_relative_to(target) and (templates / "reproducibility.md.j2").is_file()
    assert smoke.is_relative_to(target) and smoke.name == "smoke.yaml"
    assert (target / "auditor/specs/ablations/plain_vs_resnet.yaml").is_file()


def imported_modules(proc: subprocess.CompletedProcess) -> set[str]:
    """Top-level names of the modules a `python -X importtime` process imported (from its stderr)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:") and ln.count("|") == 2]
    return {ln.rsplit("|", 1)[1].strip().split(".")[0] for ln in lines}


@pytest.mark.parametrize("command", ["check", "render", "ablate --list"])
def test_commands_that_need_no_model_never_import_torch(tmp_path: Path, request: pytest.FixtureRequest, command: str) -> None:
    """A CI gate (`check`) or a re-render pays no torch import (1.3-1.4 s and 650 MB on 2 cores).

    (`validate` and `schema` do: they name the registered models, and the registry lives with the models.)
    """
    run_dir = tmp_path / "smoke"
    if command in ("check", "render"):  # a finished run; render rewrites its sheet, so a copy
        shutil.copytree(request.getfixturevalue("smoke_run") / "reports/smoke", run_dir)
    args = {
        "check": ["check", str(run_dir)], "render": ["render", str(run_dir)],
        "ablate --list": ["ablate", "plain_vs_resnet", "--list"],
    }[command]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "auditor", *args], capture_output=True, text=True, check=False, timeout=120
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = imported_modules(proc)
    assert "auditor" in modules  # the parse saw the imports at all
    assert "torch" not in modules and "torchvision" not in modules


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_run_started_by_verify_or_ablate_stops_when_its_parent_is_killed_outright(tmp_path: Path) -> None:
    """SIGKILL reaches verify or ablate alone: their run must not train on as an orphan."""
    parent = (
        "import subprocess, sys, time\n"
        "from auditor.errors import parent_env\n"
        f"child = subprocess.Popen([sys.executable, '-m', 'auditor', 'run', 'smoke', '--set', 'train.epochs=500', "
        f"'--out', {str(tmp_path)!r}], env=parent_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    time.sleep(8)  # training by now
    proc.kill()
    proc.wait()

    def alive(pid: int) -> bool:  # a zombie (no init to reap it here) has stopped too
        status = Path(f"/proc/{pid}/status")
        return status.exists() and "\nState:\tZ" not in status.read_text()

    deadline = time.monotonic() + 60
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(child), "the run trained on after its parent was killed"


def test_a_stop_while_a_complete_command_exits_is_said(capfd: pytest.CaptureFixture[str]) -> None:
    """A user test: a Ctrl-C after a finished run's last line, while the process exited, changed
    nothing (rightly) and was said nowhere, where the README says such a stop is said in a note."""
    from auditor.cli import Stops

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    stops = Stops()
    stops.install()
    try:
        stops.complete()
        assert stops.late_note() is None  # none came before the command's last line
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised; the first is said at once
            time.sleep(0.05)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert capfd.readouterr().err == ("note: SIGINT came after the finished run was in place, while the process "
                                      "exited; it is complete, so nothing was stopped\n")  # fmt: skip


def test_a_stop_after_the_work_was_complete_is_said_where_the_command_then_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop recorded after `complete` was said only where the command returned: one that then
    raised (a write after the run was in place refused) dropped it without a word."""
    from auditor import cli

    def completes_then_fails(args: argparse.Namespace) -> int:
        args.stops.complete()
        try:
            os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised
            time.sleep(0.05)
        except KeyboardInterrupt:
            pytest.fail("a stop after the work was complete was raised")
        raise InvalidInput("out/x: refused")

    monkeypatch.setitem(cli.COMMANDS, "models", completes_then_fails)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    try:
        assert cli.main(["models"]) == 2
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err == ("auditor models: error: out/x: refused\nnote: SIGINT came after the finished run was "
                                       "in place; it is complete, so nothing was stopped\n")  # fmt: skip


def test_a_stop_while_any_command_exits_leaves_its_exit_code(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: a Ctrl-C just after a refusal was printed ended the process by SIGINT (-2 to a
    parent), not with the refusal's exit 2: the handlers were put back for the interpreter's exit."""
    import atexit

    from auditor.cli import Stops, _ignore_stops

    at_exit: list[tuple] = []
    monkeypatch.setattr(atexit, "register", lambda f, *a: at_exit.append((f, *a)))
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    stops = Stops()
    stops.install()
    try:
        stops.restore(to_exit=True)  # as main() returns a refused command's exit code
        try:
            os.kill(os.getpid(), signal.SIGINT)  # recorded and said, not raised
            time.sleep(0.05)
        except KeyboardInterrupt:  # as the handlers put back raised it, which the process died of (-2)
            pytest.fail("the stop was raised while the process exited")
        assert at_exit == [(_ignore_stops, (signal.SIGINT, signal.SIGTERM))]  # ignored from shutdown on
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert capfd.readouterr().err == "note: SIGINT came while the process exited; it stopped nothing\n"


@pytest.mark.parametrize(("sig", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_stop_while_torch_imports_takes_effect_after_the_import(sig: int, raised: type) -> None:
    """Raised inside torch's or numpy's import it left them half-made: an AttributeError (exit 1)
    or a C++ abort instead of exit 130/143."""
    from auditor.cli import Stops, signals_held

    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    Stops().install()  # as main() runs a command: the first stop raises, then both are ignored
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        finished = False
        with pytest.raises(raised), signals_held():
            os.kill(os.getpid(), sig)
            time.sleep(0.05)  # the handler runs between bytecodes: it must not raise here
            finished = True
        assert finished
        # delivered to main's handler, which ignores any stop after the first
        assert signal.getsignal(signal.SIGTERM) is signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert before[signal.SIGINT] is before[signal.SIGTERM]  # one handler for both stops
        with signals_held():  # nothing held: nothing raised
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def test_a_command_imports_its_modules_with_stops_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user test: a Ctrl-C inside the exec() by which a dataclass of a module imported part way
    made its methods had CPython end a `run --resume` by SIGINT (-2) after its clean stop (130)."""
    from auditor import cli

    imported: list[str] = []

    def imports(name: str) -> None:
        if not imported:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs between bytecodes: it must not raise here
        imported.append(name)

    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    monkeypatch.setattr(cli.importlib, "import_module", imports)
    try:
        with pytest.raises(KeyboardInterrupt):
            cli._import_held(cli.COMMAND_MODULES["run"])
    finally:
        signal.signal(signal.SIGINT, previous_int)
    assert imported == list(cli.COMMAND_MODULES["run"])  # every one, then the stop


def test_the_modules_imported_up_front_are_every_module_a_command_uses() -> None:
    """Every module of the package (but the entry points) is imported up front, and the light ones
    without torch, which `check`, `render`, `schema` and `ablate` do not wait for."""
    from auditor import cli

    code = ("import sys, auditor.cli as c; c._import_held(c.LIGHT_MODULES); print('torch' in sys.modules); "
            "c._import_held(c.COMMAND_MODULES['run']); print(sorted(m for m in sys.modules if m.startswith('auditor.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    light_has_torch, loaded = out.splitlines()
    assert light_has_torch == "False"
    package = {f"auditor.{p.stem}" for p in Path(cli.__file__).parent.glob("*.py")} - {"auditor.__init__", "auditor.__main__"}
    assert package <= set(ast.literal_eval(loaded))
    assert set(cli.COMMAND_MODULES) | {"schema", "check"} == set(cli.COMMANDS)


def test_matplotlib_settings_it_refuses_do_not_stop_a_command_at_its_imports(smoke_run: Path, tmp_path: Path) -> None:
    """A review: imported up front, `MPLBACKEND=nonsense` failed `render` with a traceback."""
    report = tmp_path / "smoke"
    shutil.copytree(smoke_run / "reports" / "smoke", report)
    proc = run_cli("render", str(report), env={"MPLBACKEND": "nonsense"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "figures unavailable: matplotlib is not importable (ValueError: " in (report / "REPRODUCIBILITY.md").read_text()


def test_a_stop_before_a_command_took_over_says_how_to_go_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The user test: Ctrl-C while torch imported had printed only 'auditor run: interrupted', though
    README says run says how to continue (later stops name the command)."""
    from auditor import cli

    def stopped(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "validate", stopped)
    assert cli.main(["validate", "smoke"]) == 130
    assert capsys.readouterr().err == "\nauditor validate: interrupted; to go on, run the same command again\n"


def test_an_in_process_main_leaves_the_stop_handlers_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor import cli

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert cli.main(["models"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before

    def stopped(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "models", stopped)  # the review: after a stop both had stayed ignored
    try:
        assert cli.main(["models"]) == 130
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_every_command_help_describes_it() -> None:
    from auditor.cli import COMMANDS, DESCRIPTIONS

    assert set(DESCRIPTIONS) == set(COMMANDS)
    for command in COMMANDS:
        proc = run_cli(command, "--help")
        assert proc.returncode == 0, proc.stderr
        first_words = " ".join(DESCRIPTIONS[command].split()[:4])
        assert first_words in " ".join(proc.stdout.split()), command
    assert "{" not in run_cli("--help").stdout  # every exit code in the epilog is filled in


def test_render_and_check_warn_when_the_resolved_yaml_was_edited(smoke_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "smoke"
    shutil.copytree(smoke_run / "reports" / "smoke", report)
    spec_file = report / "spec.resolved.yaml"
    spec_file.write_text(spec_file.read_text().replace("seed: 0", "seed: 1"))
    for command in ("render", "check"):  # a copy: its Reproduce command names the run's own file, which is intact
        proc = run_cli(command, str(report))
        assert proc.returncode == 0, proc.stderr
        # The copy's own file is said (a user test: a record put in another run's folder passed in silence).
        own = smoke_run / "reports" / "smoke"
        assert proc.stderr.count("warning") == 1 and (
            f"auditor {command}: warning: {spec_file} does not hold the spec audit.json records (sha256 "
            in proc.stderr) and f"it was edited, or is another run's beside this record (whose run wrote its report in {own}," in proc.stderr
    record = json.loads((report / "audit.json").read_text())
    record["run"]["out"] = str(tmp_path / "elsewhere")  # as a report from another machine: its own file is checked
    (report / "audit.json").write_text(json.dumps(record, indent=2))
    for command in ("render", "check"):
        proc = run_cli(command, str(report))
        assert proc.returncode == 0, proc.stderr  # the record itself is intact: the gate goes by it
        assert f"auditor {command}: warning: {spec_file} does not hold the spec audit.json records" in proc.stderr
        assert proc.stderr.count("warning") == 1  # its own file is the one the commands name: said once
    spec_file.write_bytes((smoke_run / "reports" / "smoke" / "spec.resolved.yaml").read_bytes())
    for command in ("render", "check"):  # the copy whole again: nothing to say
        proc = run_cli(command, str(report))
        assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_control_characters_in_an_error_or_warning_are_shown_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user test: a path holding ESC was written raw to stderr, where a terminal acts on it."""
    from auditor.cli import _warn, main, terminal_safe

    assert main(["check", str(tmp_path / "x\x1b[31my")]) == 2
    err = capsys.readouterr().err
    assert err == f"auditor check: error: {tmp_path}/x\\x1b[31my: no such folder\n" and "\x1b" not in err
    _warn("check", "a\x07b\tc\nd")  # line breaks and tabs stay: messages span lines
    assert capsys.readouterr().err == "auditor check: warning: a\\x07b\tc\nd\n"
    assert terminal_safe("plain é 日本") == "plain é 日本"


def test_a_spec_path_with_no_file_there_is_said_to_be_read_as_the_shipped_one(tmp_path: Path) -> None:
    """A user test: `auditor run specs/smoke.yaml` from another folder ran the shipped smoke spec
    with no word on the console (validate and the sheet said it); a bare name is documented."""
    proc = run_cli("run", "specs/smoke.yaml", *sets(*TINY_SETS, "train.epochs=1"), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr  # 1: a criterion at this budget
    assert f"note: no file {tmp_path / 'specs/smoke.yaml'}: read the spec shipped with auditor, " in proc.stderr
    from auditor.cli import _shipped_for_a_path

    assert _shipped_for_a_path("smoke") is None and _shipped_for_a_path("resnet20_cifar10") is None  # names
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/smoke.yaml").write_text("name: mine\n")
    assert _shipped_for_a_path(str(tmp_path / "specs/smoke.yaml")) is None  # the file given is there


def test_verify_says_too_that_a_spec_path_with_no_file_there_was_read_as_the_shipped_one(tmp_path: Path) -> None:
    """The review: `verify specs/smoke.yaml` from another folder still read the shipped spec without a word."""
    proc = run_cli("verify", "specs/smoke.yaml", "--steps", "0", "--out", str(tmp_path), cwd=tmp_path)  # refused: no run
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"verify: note: no file {tmp_path / 'specs/smoke.yaml'}: read the spec shipped with auditor, " in proc.stderr
