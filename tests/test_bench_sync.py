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


def test_a_loop_site_firing_on_most_steps_is_per_step_and_others_are_not(sync) -> None:
    every = sync.Site("train.py:1 train_one_epoch", True, 40)
    per_epoch = sync.Site("train.py:2 train_one_epoch", True, 2)
    outside = sync.Site("measure.py:3 latency", False, 500)
    assert sync.per_step(every, 40) and not sync.per_step(per_epoch, 40) and not sync.per_step(outside, 40)
    text, clean = sync.report([per_epoch, outside], 40, 2)
    assert clean and "no per-step host synchronisation" in text and "2 in all, 0.050 per step" in text
    text, clean = sync.report([every, per_epoch, outside], 40, 2)
    assert not clean and "VERDICT: per-step host synchronisation at train.py:1 train_one_epoch" in text
    assert sync.report([], 40, 2)[1]


def test_recorded_syncs_counts_sync_warnings_and_passes_others_on(sync, monkeypatch) -> None:
    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)

    def three_syncs_and_another_warning() -> None:
        for _ in range(3):
            warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
        warnings.warn("unrelated", UserWarning, stacklevel=1)

    with pytest.warns(UserWarning, match="unrelated"), sync.recorded_syncs() as counted:
        three_syncs_and_another_warning()
    assert modes == ["warn", "default"] and sum(counted.values()) == 3
    (where, in_loop), = counted  # this test module is outside the package: its own frame is named
    assert where.startswith("test_bench_sync.py:") and not in_loop


def test_the_training_loop_is_attributed_when_it_syncs(sync, monkeypatch, capsys) -> None:
    """A sync inside train_one_epoch (here: every loss read, made to warn) counts as in the loop."""
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    monkeypatch.setattr(sync, "has_cuda", lambda: True)
    real_step = train.train_step

    def warning_step(*args, **kwargs):
        warnings.warn("called a synchronizing CUDA operation", UserWarning)  # as `.item()` per step would
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "train_step", warning_step)
    sets = ["--set", "train.epochs=1", "--set", "measure.latency.iters=5", "--set", "measure.latency.warmup=1"]
    rc = sync.main([str(REPO / "specs" / "smoke.yaml"), *sets])
    assert rc == 1  # 19 steps, 19 syncs in the loop (smoke: 1,200 training images, batch 64)
    out = capsys.readouterr().out
    assert "19 training steps in 1 epoch;" in out and "train_one_epoch" in out.split("VERDICT: per-step")[1]


def test_no_cuda_is_refused_with_exit_2(sync, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert sync.main(["specs/smoke.yaml"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
