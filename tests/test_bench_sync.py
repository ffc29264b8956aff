"""bench/sync_check.py: call sites are attributed and judged correctly, and the harness runs.

The real check needs a CUDA device; here torch's sync debug mode is stood in for by
warnings raised where a synchronisation would be, so nothing needs a GPU.
"""

from __future__ import annotations

import traceback
import warnings
from pathlib import Path

import pytest
import torch
from conftest import bench_module

import auditor
from auditor import train

REPO = Path(__file__).resolve().parents[1]
PKG = Path(auditor.__file__).resolve().parent


@pytest.fixture(scope="module")
def sync():
    """bench/sync_check.py imported as a module (bench/ is not a package)."""
    yield from bench_module("sync_check.py")


def frame(path: Path, line: int, name: str) -> traceback.FrameSummary:
    return traceback.FrameSummary(str(path), line, name)


def test_call_site_is_the_innermost_auditor_frame_and_knows_the_loop(sync) -> None:
    stack = [frame(REPO / "bench" / "x.py", 1, "main"), frame(PKG / "train.py", 600, "_train_epochs"),
             frame(PKG / "train.py", 304, "train_one_epoch"), frame(PKG / "data.py", 10, "helper"),
             frame(Path(torch.__file__), 5, "item")]  # fmt: skip
    assert sync.call_site(stack) == ("data.py:10 helper", True)
    assert sync.call_site(stack[:2]) == ("train.py:600 _train_epochs", False)
    assert sync.call_site([frame(Path("/elsewhere/lib.py"), 7, "f")]) == ("lib.py:7 f", False)


def test_a_loop_site_at_most_steps_is_per_step_and_others_are_not(sync) -> None:
    every = sync.Site("train.py:1 train_one_epoch", True, 40, 40)
    per_epoch = sync.Site("train.py:2 train_one_epoch", True, 2, 2)
    checkpoint = sync.Site("checkpoint.py:50 to_bytes", True, 490, 3)  # many copies at 3 steps: not per step
    outside = sync.Site("measure.py:3 latency", False, 500, 0)
    assert sync.per_step(every, 40) and not any(sync.per_step(s, 40) for s in (per_epoch, checkpoint, outside))
    text, clean = sync.report([checkpoint, per_epoch, outside], 40, 2)
    assert clean and "no per-step host synchronisation" in text and "492 in all, 12.300 per step" in text
    text, clean = sync.report([every, per_epoch, outside], 40, 2)
    assert not clean and "VERDICT: per-step host synchronisation at train.py:1 train_one_epoch" in text
    assert sync.report([], 40, 2)[1]


def test_recorded_syncs_counts_every_sync_warning_and_restores_the_mode(sync, monkeypatch) -> None:
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 2)  # as a caller's "error" mode would be
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # once per location, unless recorded_syncs says otherwise
        with sync.recorded_syncs() as tallies:
            for _ in range(3):
                warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
    assert modes == ["warn", 2]
    ((where, in_loop), tally), = tallies.items()  # this test module is outside the package: its frame is named
    assert where.startswith("test_bench_sync.py:") and not in_loop and tally.count == 3 and not tally.at


def test_recorded_syncs_passes_other_warnings_on(sync, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    with pytest.warns(UserWarning, match="unrelated"), sync.recorded_syncs() as tallies:
        warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert not tallies


@pytest.fixture
def on_cpu(sync, monkeypatch):
    """sync_check made to run a CPU spec: no sync debug mode, and a CPU run accepted."""
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(sync, "has_cuda", lambda: True)
    monkeypatch.setattr(sync, "DEVICE_TYPE", "cpu")
    return sync


SMOKE = str(REPO / "specs" / "smoke.yaml")
ONE_EPOCH = ["--set", "train.epochs=1", "--set", "measure.latency.iters=5", "--set", "measure.latency.warmup=1"]


def syncing_step(monkeypatch, warnings_per_step) -> None:
    """train.train_step warning as a synchronising op would: warnings_per_step(n) times at its n-th call."""
    real_step, calls = train.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        for _ in range(warnings_per_step(len(calls))):
            warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "train_step", step)


def test_a_sync_at_every_step_is_found_in_the_loop(on_cpu, monkeypatch, capsys) -> None:
    syncing_step(monkeypatch, lambda n: 1)
    assert on_cpu.main([SMOKE, *ONE_EPOCH]) == 1  # smoke: 1,200 training images, batch 64: 19 steps
    out = capsys.readouterr().out
    assert "19 training steps in 1 epoch;" in out and "train_one_epoch" in out.split("VERDICT: per-step")[1]


def test_a_sync_in_the_batch_generator_counts_at_each_step(on_cpu, monkeypatch, capsys) -> None:
    """The generator runs resumed from train_one_epoch: its syncs are placed at the loop's steps."""
    real_batches = train.train_batches

    def syncing_batches(*args, **kwargs):
        for batch in real_batches(*args, **kwargs):
            warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)  # as a per-batch copy
            yield batch

    monkeypatch.setattr(train, "train_batches", syncing_batches)
    assert on_cpu.main([SMOKE, *ONE_EPOCH]) == 1
    assert "      19      19  training loop  train.py:" in capsys.readouterr().out  # at -1 (first batch), then 0-17


def test_steps_are_those_the_run_trained_when_a_budget_cuts_the_epoch(on_cpu, monkeypatch, capsys) -> None:
    syncing_step(monkeypatch, lambda n: 1)
    assert on_cpu.main([SMOKE, *ONE_EPOCH, "--set", "train.max_steps=8"]) == 1
    assert "8 training steps in 1 epoch;" in capsys.readouterr().out


def test_many_syncs_at_one_step_are_not_per_step(on_cpu, monkeypatch, capsys) -> None:
    syncing_step(monkeypatch, lambda n: 100 if n == 1 else 0)  # as a checkpoint's tensor copies would
    assert on_cpu.main([SMOKE, *ONE_EPOCH]) == 0
    out = capsys.readouterr().out
    assert "     100       1  training loop  train.py:" in out and "VERDICT: no per-step" in out


def test_a_run_that_did_not_train_on_cuda_is_refused(sync, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: 0)
    monkeypatch.setattr(sync, "has_cuda", lambda: True)
    ran: list[list[str]] = []
    real = sync.auditor_main
    monkeypatch.setattr(sync, "auditor_main", lambda argv: ran.append(argv) or real(argv))
    # A spec that names the CPU: refused before training (a user test: it had trained in full first).
    assert sync.main([SMOKE, *ONE_EPOCH]) == 2
    assert "the spec trains on cpu, not cuda: set train.device: cuda (or auto)" in capsys.readouterr().err and not ran
    # `auto`, which would take CUDA where there is some: judged by where the run trained.
    assert sync.main([SMOKE, *ONE_EPOCH, "--set", "train.device=auto"]) == 2
    assert "the run trained on cpu, not cuda: set train.device: cuda" in capsys.readouterr().err and ran


def test_a_refused_spec_exits_2_and_a_failed_run_3(on_cpu, monkeypatch, capsys) -> None:
    assert on_cpu.main([SMOKE, "--set", "train.epochs=0"]) == 2
    assert "train.epochs: input should be greater than or equal to 1, got 0" in capsys.readouterr().err
    monkeypatch.setattr(on_cpu, "auditor_main", lambda argv: 2)  # refused by the run itself (its data, say)
    assert on_cpu.main([SMOKE]) == 2
    assert "`auditor run` exited 2" in capsys.readouterr().err

    def crash(argv):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(on_cpu, "auditor_main", crash)
    assert on_cpu.main([SMOKE]) == 3
    assert "the run failed: RuntimeError('CUDA error: an illegal memory access')" in capsys.readouterr().err
    for stopped in (130, 143):  # Ctrl-C, SIGTERM: the run's own exit code, not "failed"
        monkeypatch.setattr(on_cpu, "auditor_main", lambda argv, rc=stopped: rc)
        assert on_cpu.main([SMOKE]) == stopped


def test_run_problem_names_a_run_without_steps_apart_from_one_on_another_device(sync) -> None:
    assert sync.run_problem({"trained_on": None}) == "the run trained no step, so there is nothing to count"
    assert sync.run_problem({"trained_on": {"device": "cpu"}}).startswith("the run trained on cpu, not cuda")
    assert sync.run_problem({"trained_on": {"device": "cuda:0"}}) is None


def test_no_cuda_is_refused_with_exit_2(sync, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert sync.main([SMOKE, "--set", "train.device=cuda"]) == 2
    assert "needs a CUDA device; this machine has none (the spec itself validates; its data folder was not read)" in capsys.readouterr().err
    # A user test: every other input error had been hidden behind it.
    for args, said in ((["nosuch.yaml"], "nosuch.yaml"), ([SMOKE, "--set", "train.epochz=1"], "train.epochz: unknown key")):
        assert sync.main(args) == 2
        err = capsys.readouterr().err
        assert said in err and "needs a CUDA device" not in err, err
