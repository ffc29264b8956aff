"""Tests for `auditor.inspect`: a checkpoint's model rebuilt from its embedded spec, and its checks.

The CLI commands (`evaluate`, `measure`) are tested end to end in test_cli.py on a trained run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from auditor import checkpoint, measure
from auditor import inspect as auditor_inspect
from auditor.errors import InvalidInput
from auditor.models import build_model
from auditor.spec import Spec, load_spec, resolved_dict, spec_hash


@pytest.fixture
def spec() -> Spec:
    return load_spec("smoke", ["model.name=resnet8"])


def save_checkpoint(path: Path, spec: Spec, changes: dict[str, object] | None = None) -> Path:
    torch.manual_seed(0)
    state = {"model": build_model(spec.model).state_dict(), "spec": resolved_dict(spec), "spec_hash": spec_hash(spec)}
    checkpoint.save(path, {**state, **(changes or {})})
    return path


def test_the_model_comes_back_from_the_embedded_spec_with_its_weights(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    got_spec, model, recorded, _ = auditor_inspect.model_from_checkpoint(path)
    assert spec_hash(got_spec) == recorded == spec_hash(spec)
    saved = checkpoint.load(path)["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert auditor_inspect.evaluation_warnings(got_spec, model) == [
        "the model was trained on synthetic data, whose classes are not CIFAR-10's: this accuracy says nothing about the run"
    ]  # fmt: skip


def test_a_checkpoint_of_a_run_that_later_checks_would_refuse_still_loads(tmp_path: Path, spec: Spec) -> None:
    """Checks added after runs recorded such specs guard new runs only: evaluate and measure read the run."""
    recorded = resolved_dict(spec)
    recorded["name"] = "sweep.failed"  # before .failed was reserved
    recorded["train"]["schedule"] |= {"name": "multistep", "milestones": [1, 1]}  # before milestones had to differ
    recorded["data"]["require_official"] = True  # before synthetic data refused it
    path = save_checkpoint(tmp_path / "best.pt", spec, {"spec": recorded})
    assert auditor_inspect.model_from_checkpoint(path).spec.name == "sweep.failed"
    recorded["train"]["schedule"]["milestones"] = [2, 1]  # refused by every version: still refused
    path = save_checkpoint(tmp_path / "other.pt", spec, {"spec": recorded})
    with pytest.raises(InvalidInput, match=r"other.pt \(embedded spec\): train.schedule.milestones: must be increasing"):
        auditor_inspect.model_from_checkpoint(path)


def test_a_copied_checkpoint_without_its_digest_loads_but_a_damaged_one_does_not(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    assert auditor_inspect.integrity(path) == "sha256 matches best.pt.sha256"
    checkpoint.digest_path(path).unlink()  # travelled alone
    auditor_inspect.model_from_checkpoint(path)
    assert auditor_inspect.integrity(path) == "not checked: no best.pt.sha256 beside it"
    assert auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["integrity"].startswith("not checked")
    path = save_checkpoint(tmp_path / "last.pt", spec)
    checkpoint.digest_path(path).write_text("0" * 64 + "  last.pt\n")
    with pytest.raises(InvalidInput, match="last.pt: checkpoint is not intact: sha256 mismatch"):
        auditor_inspect.model_from_checkpoint(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"spec": None}, "checkpoint holds no resolved spec"),
     ({"spec": {"name": "x", "unknown": 1}}, "embedded spec"),
     ({"model": {"conv.weight": torch.zeros(1)}}, "weights do not fit resnet8"),
     ({"model": "not a state dict"}, "weights do not fit resnet8")],
    ids=["no spec", "invalid spec", "wrong keys", "not a state dict"],
)
def test_a_checkpoint_that_cannot_rebuild_its_model_is_bad_input(
    tmp_path: Path, spec: Spec, changes: dict[str, object], message: str
) -> None:
    path = save_checkpoint(tmp_path / "odd.pt", spec, changes)
    with pytest.raises(InvalidInput, match=message):
        auditor_inspect.model_from_checkpoint(path)


def test_a_missing_path_or_a_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="checkpoint not found"):
        auditor_inspect.model_from_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(InvalidInput, match="a folder, not a checkpoint file"):
        auditor_inspect.model_from_checkpoint(tmp_path)


def test_device_names_this_build_cannot_measure_on_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for other in ("gpu", "meta", "mps", "xpu", "CPU", "cuda:x"):  # device types torch names, or none at all
        with pytest.raises(InvalidInput, match=rf"--device: must be auto, cpu, cuda or cuda:N, got '{other}'"):
            auditor_inspect._device(other)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInput, match=r"--device: cuda requested but CUDA is not available here"):
        auditor_inspect._device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InvalidInput, match=r"--device: cuda:3 does not exist \(1 GPUs\)"):
        auditor_inspect._device("cuda:3")


def test_non_finite_weights_are_warned_about(tmp_path: Path, spec: Spec) -> None:
    spec_, model, _, _ = auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "best.pt", spec))
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    assert any("non-finite values" in w for w in auditor_inspect.evaluation_warnings(spec_, model))


@pytest.mark.parametrize(("iters", "ok"), [(None, True), (7, True), (0, False), (-1, False)])
def test_iters_is_validated_as_the_spec_field(spec: Spec, iters: int | None, ok: bool) -> None:
    if ok:
        got = auditor_inspect._latency_spec(spec.measure.latency, iters)
        assert got.iters == (spec.measure.latency.iters if iters is None else iters)
    else:
        with pytest.raises(InvalidInput, match=rf"--iters: .* \(as the spec's measure.latency.iters\), got {iters}"):
            auditor_inspect._latency_spec(spec.measure.latency, iters)


def test_measure_checkpoint_reports_the_recorded_hash_sizes_and_a_latency(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    report = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)
    assert report["spec_hash"] == spec_hash(spec) and report["model"] == "resnet8"
    assert report["params_total"] == sum(p.numel() for p in build_model(spec.model).parameters())
    assert report["checkpoint_mb"] * 1e6 == pytest.approx(path.stat().st_size)  # decimal MB
    assert report["latency"]["iters"] == 5 and report["latency"]["median_ms"] > 0


def test_measure_says_when_the_latency_was_timed_on_a_busy_machine(
    tmp_path: Path, spec: Spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sheet's busy-machine and unsteady-timing warnings send users to `auditor measure`,
    which says the same of its own timing."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    quiet = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["latency"]
    busy = {**quiet, "other_cpu_share": 0.5, "other_cpu_window_s": 2.0, "median_ms": 2.0, "iqr_ms": 1.0}
    monkeypatch.setattr(auditor_inspect, "latency", lambda *a, **k: measure.LatencyResult(**busy))
    monkeypatch.setattr(auditor_inspect, "_cpu_notes", lambda device: [])
    notes = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["notes"]
    assert [n.split(":")[0] for n in notes] == ["Unsteady timing", "Busy machine"]
    assert notes[1].startswith("Busy machine: other processes used 50% of the CPU while the latency was timed")
    assert notes[1].endswith("may not hold on a quiet machine.")  # no `auditor measure` hint from measure itself
