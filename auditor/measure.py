"""Measure stage: accuracy, size and batch-1 latency of the selected model.

Latency is measured on the eager, unwrapped model in FP32 and eval mode,
after warm-up, timing each iteration separately with perf_counter; on CUDA
the device is synchronised before the clock is read at both ends, so each
sample is the full time of one forward pass, and the record says when cuDNN
ran the fp32 convolutions in TF32 (torch's default). The share of the CPU
other processes used meanwhile is recorded with it: a busy machine inflates
the figure without widening its spread. Peak memory is the whole run's
(data, training, measurement), not this stage's alone.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn

from auditor import checkpoint
from auditor.audit import MB, MIN_CPU_WINDOW_S
from auditor.models import count_parameters
from auditor.repro import tf32_flags
from auditor.spec import Latency, MeasureSpec, TrainSpec
from auditor.train import evaluate


@dataclass(frozen=True)
class LatencyResult:
    """Distribution of per-iteration forward times, in milliseconds."""

    device: str
    device_name: str  # GPU name, or CPU model
    threads: int  # torch intra-op threads (CPU timing depends on it)
    batch_size: int
    warmup: int
    iters: int
    dtype: str
    channels_last: bool
    synchronized: bool  # the device was synchronised around every timed iteration
    median_ms: float
    p95_ms: float
    mean_ms: float
    iqr_ms: float
    min_ms: float
    method: str
    other_cpu_share: float | None  # other processes' share of this process's CPUs (None: see below)
    other_cpu_window_s: float  # over warm-up + timed iterations; under MIN_CPU_WINDOW_S no share


@dataclass(frozen=True)
class Accuracy:
    """Accuracy of a model on one split."""

    split: str
    n: int
    acc: float
    loss: float
    per_class: dict[str, float]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    precision: str  # what the forwards computed in: train.amp's autocast, as in training, or fp32


@dataclass(frozen=True)
class Size:
    """Parameter counts and on-disk sizes."""

    params_total: int
    params_trainable: int
    checkpoint_bytes: int | None  # the full checkpoint file (model + optimiser + RNG ...)
    weights_bytes: int  # a bare state_dict as torch.save writes it


def confusion_matrix(y: torch.Tensor, pred: torch.Tensor, k: int) -> np.ndarray:
    """(k, k) counts, rows = true class, columns = predicted class."""
    idx = y.cpu().long() * k + pred.cpu().long()
    return torch.bincount(idx, minlength=k * k).view(k, k).numpy()


def accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
    train: TrainSpec, classes: tuple[str, ...], split: str,
) -> Accuracy:
    """Overall and per-class accuracy with the confusion matrix."""
    loss, acc, pred = evaluate(model, x, y, mean, std, train)
    cm = confusion_matrix(y, pred, len(classes))
    totals = cm.sum(1)
    per_class = {c: float(cm[i, i] / totals[i]) if totals[i] else float("nan") for i, c in enumerate(classes)}
    return Accuracy(split, len(y), acc, loss, per_class, cm.tolist(), eval_precision(train, x.device))


def eval_precision(train: TrainSpec, device: torch.device) -> str:
    """What `evaluate` computes in: the training's autocast, or fp32 as the latency is timed."""
    return f"{train.amp} autocast, as trained" if train.amp != "off" else fp32_kind(device)


def size(model: nn.Module, checkpoint_path: Path | None) -> Size:
    """Parameter counts and byte sizes of the checkpoint file and bare weights."""
    total, trainable = count_parameters(model)
    ckpt_bytes = checkpoint_path.stat().st_size if checkpoint_path and checkpoint_path.is_file() else None
    return Size(total, trainable, ckpt_bytes, checkpoint.weights_only_bytes(model.state_dict()))


def _sync(device: torch.device) -> bool:
    """Wait for queued device work; True when there was a device to wait for."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return True
    return False


def latency(model: nn.Module, spec: Latency, device: torch.device, channels_last: bool, device_name: str) -> LatencyResult:
    """Batch-`spec.batch_size` FP32 forward latency over `spec.iters` timed iterations.

    Times `model` in eval mode, moved to `device` in the given memory format (in place, as
    `Module.to` is); each submodule's train/eval mode is put back afterwards.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    modes = {m: m.training for m in model.to(device, memory_format=fmt).modules()}
    x = torch.randn(spec.batch_size, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    samples, synced, meter = [], True, ForeignCpu(min_window_s=MIN_CPU_WINDOW_S)
    meter.start()  # over the warm-up too: the same work, and a longer window than the ticks
    try:
        with torch.inference_mode():
            model.eval()
            for i in range(spec.warmup + spec.iters):
                synced &= _sync(device)
                t0 = time.perf_counter()
                model(x)
                synced &= _sync(device)
                if i >= spec.warmup:
                    samples.append((time.perf_counter() - t0) * 1e3)
    finally:
        for m, training in modes.items():
            m.training = training
    share = meter.stop()
    return _summarise(samples, spec, device, channels_last, device_name, synced, share, meter.window_s)


class ForeignCpu:
    """Share of this process's CPUs' time used by other processes (and VM steal) over an interval.

    The busy time of the CPUs this process may run on (psutil per-CPU times,
    /proc/stat on Linux) minus this process tree's CPU time, divided by wall
    time x those CPUs: 0 on a quiet machine, 0.5 when another process kept
    half of them busy. A container's CPU quota is not seen (only its CPU set).
    """

    def __init__(self, min_window_s: float = 0.0) -> None:
        self._me = psutil.Process()
        self._t0 = self._busy0 = self._own0 = 0.0
        self._ok = True
        self.min_window_s = min_window_s  # shorter intervals give None
        self.window_s = 0.0  # the last interval's wall time
        try:
            listed = len(psutil.cpu_times(percpu=True))  # the online CPUs, by position, not by id
        except (psutil.Error, OSError):
            listed, self._ok = os.cpu_count() or 1, False
        affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        # Position i is CPU i only when every CPU is listed (none offline, none renumbered by a
        # container's /proc): otherwise the share is of all the CPUs listed.
        whole = not affinity or listed != os.cpu_count() or affinity[-1] >= listed
        self._cpus: list[int] | None = None if whole else affinity
        self.n_cpus = listed if whole else len(affinity)  # how many CPUs the share is of

    def _busy(self) -> float:
        keys = ("user", "nice", "system", "irq", "softirq", "steal")
        if self._cpus is None:
            t = psutil.cpu_times()
            return sum(getattr(t, k, 0.0) for k in keys)
        per_cpu = psutil.cpu_times(percpu=True)
        return sum(getattr(per_cpu[i], k, 0.0) for i in self._cpus for k in keys)

    def _own(self) -> float:
        total = 0.0
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                c = proc.cpu_times()
                total += c.user + c.system + getattr(c, "children_user", 0.0) + getattr(c, "children_system", 0.0)
            except psutil.Error:  # a child that exited in between
                pass
        return total

    def start(self) -> None:
        """Start an interval."""
        try:
            self._t0, self._busy0, self._own0 = time.perf_counter(), self._busy(), self._own()
        except (psutil.Error, OSError):  # no /proc/stat in a sandbox: the share is unknown
            self._ok = False

    def stop(self) -> float | None:
        """Other processes' share of the CPU since `start`, in [0, 1]; None where it could not be
        read or the interval was shorter than `min_window_s`."""
        self.window_s = wall = time.perf_counter() - self._t0
        if not self._ok or wall < self.min_window_s:
            return None
        try:
            foreign = (self._busy() - self._busy0) - (self._own() - self._own0)
        except (psutil.Error, OSError):
            return None
        return min(1.0, max(0.0, foreign / max(wall * self.n_cpus, 1e-9)))


def fp32_kind(device: torch.device) -> str:
    """'float32', or which fp32 ops CUDA runs in TF32 (cuDNN convolutions by torch's default)."""
    if device.type != "cuda":
        return "float32"
    tf32 = [name for name, on in zip(("convolutions", "matmuls"), tf32_flags(), strict=True) if on]
    return f"float32 ({' and '.join(tf32)} in TF32)" if tf32 else "float32"


def _summarise(
    samples: list[float], spec: Latency, device: torch.device, channels_last: bool, name: str, synced: bool,
    other_cpu: float | None = None, window_s: float = 0.0,
) -> LatencyResult:
    q1, q3 = np.percentile(samples, [25, 75])
    how = "torch.cuda.synchronize() before and after each" if synced else "no device sync needed (CPU)"
    if device.type == "cuda":  # cuDNN's algorithm choice, and so the time, depends on these
        how += (f"; cudnn.deterministic={torch.backends.cudnn.deterministic}, "
                f"cudnn.benchmark={torch.backends.cudnn.benchmark}")  # fmt: skip
    return LatencyResult(
        device=str(device), device_name=name, threads=torch.get_num_threads(),
        batch_size=spec.batch_size, warmup=spec.warmup, iters=spec.iters, dtype=fp32_kind(device),
        channels_last=channels_last, synchronized=synced, median_ms=statistics.median(samples),
        p95_ms=float(np.percentile(samples, 95)), mean_ms=statistics.fmean(samples),
        iqr_ms=float(q3 - q1), min_ms=min(samples), other_cpu_share=other_cpu, other_cpu_window_s=window_s,
        method=(
            f"eager model, eval mode, torch.inference_mode, on one random-normal input of {spec.batch_size}x3x32x32 "
            f"({'channels_last' if channels_last else 'contiguous'}; no data decoding or normalisation timed), "
            f"{spec.warmup} untimed warm-up iterations, then {spec.iters} iterations each timed with "
            f"time.perf_counter; {how}"
        ),
    )  # fmt: skip


def peak_rss_kb(status: Path = Path("/proc/self/status")) -> tuple[int, str]:
    """This process's peak resident set size (kB): Linux's VmHWM, which starts afresh with each
    program; elsewhere getrusage's ru_maxrss. On Linux ru_maxrss carries over the peak of the
    process that started this one (verify's, ablate's, a CI harness's): a run started by a parent
    that once held 2.6 GB reported 2.6 GB (a user test). Returns (kB, "VmHWM" or "getrusage")."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]), "VmHWM"
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak // 1024 if sys.platform == "darwin" else peak), "getrusage"  # bytes on macOS, kilobytes elsewhere


def peak_memory(device: torch.device) -> dict[str, float | str | None]:
    """Peak process RSS (MB) and, on CUDA, the peak device memory held in tensors and the peak
    reserved by torch's caching allocator (MB), over the whole run so far.

    Reserved is what the GPU must have free for the run (allocated leaves out the allocator's
    cache and fragmentation); neither counts the CUDA context and the libraries' workspaces.
    """
    rss_kb, source = peak_rss_kb()
    cuda = device.type == "cuda"
    return {
        "peak_rss_mb": rss_kb * 1024 / MB, "peak_rss_source": source,
        "cuda_max_allocated_mb": torch.cuda.max_memory_allocated(device) / MB if cuda else None,
        "cuda_max_reserved_mb": torch.cuda.max_memory_reserved(device) / MB if cuda else None,
    }


@dataclass(frozen=True)
class Measurements:
    """Everything the measure stage found out about the selected model."""

    evaluated_checkpoint: str | None  # file name, None when there was none to load
    test: Accuracy | None
    size: Size
    latency: LatencyResult
    memory: dict[str, float | str | None]
    nonfinite: list[str]  # state-dict tensors (weights, buffers) holding inf/NaN: a broken model


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of `model`'s floating-point state-dict tensors (parameters and buffers, such as batch
    norm's running variance) that hold an inf or NaN: such a model computes nothing meaningful."""
    return nonfinite_entries(model.state_dict())


def nonfinite_entries(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold an inf or NaN."""
    return [k for k, t in state.items() if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]


def measure(
    spec: MeasureSpec, train: TrainSpec, model: nn.Module, test: tuple[torch.Tensor, torch.Tensor],
    norm: tuple[torch.Tensor, torch.Tensor], classes: tuple[str, ...], device: torch.device,
    selected: Path | None, device_name: str,
) -> Measurements:
    """Test accuracy, size, latency and peak memory of `model` (already holding `selected`'s weights).

    `test` holds uint8 images (N,3,32,32) and labels on `device`; `norm` the
    (1,3,1,1) mean and std. Without a selected checkpoint (a run that
    diverged before its first epoch ended, or none of whose epochs could be
    selected) accuracy is not measured.
    """
    acc = None
    if selected is not None:
        acc = accuracy(model, *test, *norm, train, classes, "test")
    lat = latency(model, spec.latency, device, train.channels_last, device_name)
    return Measurements(
        selected.name if selected else None, acc, size(model, selected), lat, peak_memory(device), nonfinite_tensors(model)
    )
