"""`auditor evaluate` / `auditor measure`: check a checkpoint's claims on its own.

Both rebuild the model from the resolved spec stored inside the checkpoint,
so nothing but the checkpoint (and, for accuracy, a copy of the data) is needed.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import ValidationError
from torch import nn

from auditor import checkpoint, environment
from auditor.audit import latency_warnings
from auditor.data import norm_tensors, read_test_set
from auditor.errors import InvalidInput
from auditor.measure import MB, accuracy, latency, nonfinite_tensors, size
from auditor.models import build_model
from auditor.spec import DEVICE_FORM, DEVICE_FORMS, Latency, Spec, validate_spec


class Loaded(NamedTuple):
    """A checkpoint's model and what the run recorded with it."""

    spec: Spec  # the embedded resolved spec
    model: nn.Module  # with the checkpoint's weights, on the CPU
    spec_hash: str | None  # as the run recorded it
    test_fingerprint: str | None  # the test set the run was scored on (None: not recorded)


def model_from_checkpoint(path: Path) -> Loaded:
    """The checkpoint's model, spec, spec hash and test-set fingerprint as the run recorded them."""
    if not path.is_file():
        raise InvalidInput(f"{path}: {'a folder, not a checkpoint file' if path.is_dir() else 'checkpoint not found'}")
    # A copied checkpoint may travel without its digest file: verify when present.
    state = checkpoint.load(path, check_digest=checkpoint.digest_path(path).is_file())
    if not isinstance(state.get("spec"), dict):
        raise InvalidInput(f"{path}: checkpoint holds no resolved spec")
    spec = validate_spec(state["spec"], f"{path} (embedded spec)", recorded=True)
    model = build_model(spec.model)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # wrong shapes/keys, or not a state dict at all
        raise InvalidInput(f"{path}: weights do not fit {spec.model.name}: {exc}") from None
    recorded = state.get("spec_hash")  # as written, not recomputed under today's defaults
    test = state.get("test_fingerprint")  # checkpoints written before it was recorded have none
    return Loaded(spec, model, recorded if isinstance(recorded, str) else None, test if isinstance(test, str) else None)


def integrity(path: Path) -> str:
    """Whether the checkpoint's bytes were checked against its digest file (`model_from_checkpoint`
    refuses a mismatch), in words."""
    sidecar = checkpoint.digest_path(path)
    if sidecar.is_file():
        return f"sha256 matches {sidecar.name}"
    return f"not checked: no {sidecar.name} beside it"


def _device(name: str) -> torch.device:
    if not DEVICE_FORM.fullmatch(name):  # torch knows many more device types; this build runs these
        raise InvalidInput(f"--device: {DEVICE_FORMS}, got {name!r}")
    device = environment.resolve_device(name)
    if (problem := environment.cuda_problem(device)) is not None:
        raise InvalidInput(f"--device: {name} {problem}")
    environment.make_current(device)
    return device


def evaluate_checkpoint(path: Path, data_root: str, device_name: str) -> dict[str, Any]:
    """Overall and per-class test accuracy of a checkpoint on the data under `data_root`."""
    spec, model, recorded_hash, run_test = model_from_checkpoint(path)
    device = _device(device_name)
    x, y, classes, facts = read_test_set(data_root)
    if len(classes) != spec.model.num_classes:
        raise InvalidInput(f"--data-root: {len(classes)} classes there, the model has {spec.model.num_classes}")
    total, limit = len(y), spec.data.limit_test
    if limit and limit < total:  # the run scored the first `limit` test images (data stage): so does this
        x, y = x[:limit], y[:limit]
    fmt = torch.channels_last if spec.train.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    mean, std = norm_tensors(spec.data, device)
    acc = accuracy(model, x.to(device), y.to(device), mean, std, spec.train, classes, "test")
    scope = (f"the first {acc.n:,} of the {total:,} test images, as the run's data.limit_test" if acc.n < total
             else f"all {total:,} test images")  # fmt: skip
    return {
        "checkpoint": str(path), "integrity": integrity(path), "run": spec.name, "spec_hash": recorded_hash,
        "device": str(device), "data": facts, "scored": scope,
        "n": acc.n, "test_acc": acc.acc, "test_loss": acc.loss, "precision": acc.precision, "per_class_acc": acc.per_class,
        "warnings": [*evaluation_warnings(spec, model), *_copy_warnings(spec, run_test, facts["fingerprint"])],
    }  # fmt: skip


def _copy_warnings(spec: Spec, run_test: str | None, here: str) -> list[str]:
    """A warning when the CIFAR-10 test set here is not the one the run was scored on (a run on
    other data has its own warning)."""
    if spec.data.dataset != "cifar10" or run_test is None or run_test == here:
        return []
    why = (f"the test images or labels here (sha256 {here[:12]}) are not those the run was scored on "
           f"({run_test[:12]}): this accuracy is not the run's to reproduce")  # fmt: skip
    return [why]


def evaluation_warnings(spec: Spec, model: nn.Module) -> list[str]:
    """Why an accuracy of this checkpoint on CIFAR-10 may mean nothing."""
    warnings = []
    if spec.data.dataset != "cifar10":
        warnings.append(
            f"the model was trained on {spec.data.dataset} data, whose classes are not CIFAR-10's: "
            "this accuracy says nothing about the run"
        )
    if bad := nonfinite_tensors(model):
        warnings.append(f"{len(bad)} weight tensors hold non-finite values (e.g. {bad[0]}): the model is broken")
    return warnings


def _latency_spec(latency: Latency, iters: int | None) -> Latency:
    """The checkpoint's latency settings with `--iters` applied and validated as the spec field is."""
    if iters is None:
        return latency
    try:
        return Latency.model_validate({**latency.model_dump(), "iters": iters})
    except ValidationError as err:
        why = err.errors()[0]["msg"].lower()
        raise InvalidInput(f"--iters: {why} (as the spec's measure.latency.iters), got {iters}") from None


def measure_checkpoint(path: Path, device_name: str, iters: int | None) -> dict[str, Any]:
    """Parameters, sizes and batch-1 FP32 latency of a checkpoint's model."""
    spec, model, recorded_hash, _ = model_from_checkpoint(path)
    device = _device(device_name)
    lat_spec = _latency_spec(spec.measure.latency, iters)
    gpu = environment.gpu_info(device)
    lat = latency(model, lat_spec, device, spec.train.channels_last, gpu.name if gpu else environment.cpu_model())
    s = size(model, path)
    return {
        "checkpoint": str(path), "integrity": integrity(path), "run": spec.name, "spec_hash": recorded_hash,
        "model": spec.model.name,
        "params_total": s.params_total, "params_trainable": s.params_trainable,
        "checkpoint_mb": (s.checkpoint_bytes or 0) / MB, "weights_mb": s.weights_bytes / MB,
        "latency": (timed := asdict(lat)),
        "notes": [*_cpu_notes(device), *(f"{t}: {text}" for t, text in latency_warnings(timed, None).values())],
    }  # fmt: skip


def _cpu_notes(device: torch.device) -> list[str]:
    """`environment.cpu_notes` for this process now: more torch threads than CPUs inflates the latency."""
    return environment.cpu_notes(str(device), torch.get_num_threads(), environment.usable_cpus(), environment.cgroup_cpu_quota())
