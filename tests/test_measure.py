"""Measure stage: accuracy with the confusion matrix, sizes, latency records, peak memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO
from torch import nn

from auditor import measure
from auditor.models import create_model
from auditor.spec import Latency, TrainSpec

CLASSES = ("a", "b", "c")


class Constant(nn.Module):
    """Predicts class `k` for every image; (B,3,H,W) -> (B,3) logits."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), len(CLASSES)) + self.w
        logits[:, self.k] = 1.0
        return logits


def test_confusion_matrix_rows_are_true_classes() -> None:
    y, pred = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2])
    cm = measure.confusion_matrix(y, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_accuracy_per_class_and_totals() -> None:
    x = torch.zeros(6, 3, 32, 32, dtype=torch.uint8)
    y = torch.tensor([1, 1, 1, 0, 2, 2])
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    train = TrainSpec(eval_batch_size=4, channels_last=False)  # two batches: 4 + 2
    acc = measure.accuracy(Constant(1), x, y, mean, std, train, CLASSES, "test")
    assert (acc.split, acc.n, acc.acc) == ("test", 6, pytest.approx(0.5))
    assert acc.per_class == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert acc.confusion == [[0, 1, 0], [0, 3, 0], [0, 2, 0]]
    assert acc.precision == "float32"  # what the forwards computed in, as the latency's dtype says it
    bf16 = TrainSpec(eval_batch_size=4, channels_last=False, amp="bf16")
    assert measure.accuracy(Constant(1), x, y, mean, std, bf16, CLASSES, "test").precision == "bf16 autocast, as trained"


def test_size_counts_parameters_and_bytes(tmp_path: Path) -> None:
    model = create_model("resnet8")
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"x" * 1234)
    s = measure.size(model, ckpt)
    assert s.params_total == sum(p.numel() for p in model.parameters()) == s.params_trainable
    assert s.checkpoint_bytes == 1234
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert s.weights_bytes == len(buf.getvalue())
    assert measure.size(model, None).checkpoint_bytes is None
    assert measure.size(model, tmp_path / "absent.pt").checkpoint_bytes is None


@pytest.mark.parametrize("channels_last", [False, True])
def test_latency_on_the_cpu_records_what_it_did(channels_last: bool) -> None:
    spec = Latency(batch_size=2, warmup=1, iters=5)
    lat = measure.latency(create_model("resnet8"), spec, torch.device("cpu"), channels_last, "test CPU")
    assert (lat.batch_size, lat.warmup, lat.iters, lat.channels_last) == (2, 1, 5, channels_last)
    assert lat.dtype == "float32" and not lat.synchronized and lat.threads == torch.get_num_threads()
    assert 0 < lat.min_ms <= lat.median_ms <= lat.p95_ms and lat.iqr_ms >= 0
    assert "5 iterations each timed" in lat.method and "no device sync needed (CPU)" in lat.method
    layout = "channels_last" if channels_last else "contiguous"  # what was timed, said (a user test of the sheet)
    assert f"on one random-normal input of 2x3x32x32 ({layout}; no data decoding or normalisation timed)" in lat.method
    assert lat.other_cpu_window_s > 0
    # 5 iterations of a tiny model: too short a window for the kernel's CPU-time ticks
    assert lat.other_cpu_share is None if lat.other_cpu_window_s < measure.MIN_CPU_WINDOW_S else 0 <= lat.other_cpu_share <= 1


@pytest.mark.parametrize("training", [True, False])
def test_latency_times_eval_mode_and_gives_the_model_back_in_its_mode(training: bool) -> None:
    model = create_model("resnet8").train(training)
    frozen = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)).train(not training)  # mixed modes
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    measure.latency(model, Latency(batch_size=2, warmup=1, iters=5), torch.device("cpu"), False, "test CPU")
    assert all(m.training is (training if m is not frozen else not training) for m in model.modules())
    # batch norm ran in eval mode: its running statistics and batch count did not move
    assert all(torch.equal(buffers[k], v) for k, v in model.state_dict().items())


def test_nonfinite_tensors_finds_weights_and_buffers() -> None:
    model = create_model("resnet8")
    assert measure.nonfinite_tensors(model) == []
    bn = next(name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    model.get_submodule(bn).running_var[0] = float("inf")  # a buffer: what a diverging run leaves
    model.fc.weight.data[0, 0] = float("nan")
    assert measure.nonfinite_tensors(model) == [f"{bn}.running_var", "fc.weight"]


def test_foreign_cpu_counts_other_processes_not_this_one(tmp_path: Path) -> None:
    stop, ready = tmp_path / "stop", tmp_path / "ready"
    spin = (f"import os, time\nopen({str(ready)!r}, 'w').close()\nend = time.monotonic() + 30\n"
            f"while not os.path.exists({str(stop)!r}) and time.monotonic() < end: pass")  # fmt: skip
    # Started through a shell that exits at once: the spinner is not this process's child.
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$0" >/dev/null 2>&1 &', spin], check=True)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the spinning process did not start"
        meter = measure.ForeignCpu()
        meter.start()
        deadline = time.perf_counter() + 0.6
        while time.perf_counter() < deadline:  # this process busy too: its own time is not counted
            sum(range(1000))
        share = meter.stop()
    finally:
        stop.write_text("")
    assert share is not None and 0.25 / meter.n_cpus < share <= 1  # about one spinning CPU of n_cpus


def test_foreign_cpu_is_none_where_the_cpu_times_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(*args: object, **kwargs: object) -> None:
        raise PermissionError("/proc/stat")

    monkeypatch.setattr(measure.psutil, "cpu_times", unreadable)
    meter = measure.ForeignCpu()
    meter.start()
    assert meter.stop() is None


@pytest.mark.parametrize(
    ("listed", "cpu_count", "affinity", "cpus", "n"),
    [
        (8, 8, {2, 3}, [2, 3], 2),  # a CPU set: its CPUs only
        (4, 8, {4, 5, 6, 7}, None, 4),  # a container's /proc lists its CPUs as 0-3: all of those
        (6, 8, {0, 7}, None, 6),  # offline CPUs shift the positions: all CPUs listed
    ],
)
def test_foreign_cpu_counts_the_cpus_it_can_name(
    monkeypatch: pytest.MonkeyPatch, listed: int, cpu_count: int, affinity: set[int], cpus: list[int] | None, n: int
) -> None:
    times = measure.psutil.cpu_times
    monkeypatch.setattr(measure.psutil, "cpu_times", lambda percpu=False: [times()] * listed if percpu else times())
    monkeypatch.setattr(measure.os, "cpu_count", lambda: cpu_count)
    monkeypatch.setattr(measure.os, "sched_getaffinity", lambda pid: affinity, raising=False)
    meter = measure.ForeignCpu()
    assert (meter._cpus, meter.n_cpus) == (cpus, n)
    meter.start()
    assert meter.stop() is not None


@pytest.mark.parametrize(("busy", "own", "share"), [
    ((10.0, 13.0), (5.0, 6.0), 0.5),  # 3 CPU-s busy over 2 s x 2 CPUs, 1 of them this process's
    ((10.0, 11.0), (5.0, 6.0), 0.0),  # all of it this process's
    ((10.0, 10.5), (5.0, 6.0), 0.0),  # ticks read apart: never below 0
    ((10.0, 20.0), (5.0, 5.0), 1.0),  # never above 1
])  # fmt: skip
def test_foreign_cpu_share_is_busy_time_less_this_process_tree_over_wall_time_and_cpus(
    monkeypatch: pytest.MonkeyPatch, busy: tuple[float, float], own: tuple[float, float], share: float
) -> None:
    meter = measure.ForeignCpu()
    meter.n_cpus = 2
    readings = {"_busy": iter(busy), "_own": iter(own), "clock": iter((100.0, 102.0))}
    monkeypatch.setattr(meter, "_busy", lambda: next(readings["_busy"]))
    monkeypatch.setattr(meter, "_own", lambda: next(readings["_own"]))
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(readings["clock"]))
    meter.start()
    assert meter.stop() == pytest.approx(share) and meter.window_s == 2.0


def test_foreign_cpu_is_none_over_a_window_shorter_than_the_ticks() -> None:
    meter = measure.ForeignCpu(min_window_s=10.0)
    meter.start()
    assert meter.stop() is None and 0 < meter.window_s < 10


@pytest.mark.parametrize(
    ("conv", "matmul", "dtype"),
    [(True, False, "float32 (convolutions in TF32)"), (False, False, "float32"),
     (True, True, "float32 (convolutions and matmuls in TF32)"), (False, True, "float32 (matmuls in TF32)")],
)
def test_cuda_latency_record_states_tf32(conv: bool, matmul: bool, dtype: str) -> None:
    """On CUDA, fp32 convolutions run in TF32 when cuDNN allows it (torch's default): say so."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
    try:
        lat = measure._summarise([1.0, 2.0, 3.0, 4.0, 5.0], Latency(iters=5), torch.device("cuda"), True, "GPU", True)
        cpu = measure.fp32_kind(torch.device("cpu"))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert lat.dtype == dtype and cpu == "float32"
    assert lat.median_ms == 3.0 and "torch.cuda.synchronize() before and after each" in lat.method
    flags = f"cudnn.deterministic={torch.backends.cudnn.deterministic}, cudnn.benchmark={torch.backends.cudnn.benchmark}"
    assert lat.method.endswith(flags)  # they choose cuDNN's algorithms, and so the time


def test_latency_statistics_of_known_samples() -> None:
    """Median, p95 (linear interpolation), mean, IQR and min of timed iterations given in any order."""
    lat = measure._summarise([5.0, 1.0, 4.0, 2.0, 3.0, 9.0], Latency(iters=6), torch.device("cpu"), False, "CPU", False)
    assert (lat.median_ms, lat.mean_ms, lat.min_ms) == (3.5, 4.0, 1.0)
    assert lat.p95_ms == pytest.approx(8.0) and lat.iqr_ms == pytest.approx(2.5)  # q3 4.75 - q1 2.25
    assert "no device sync needed (CPU)" in lat.method and "6 iterations each timed" in lat.method


def test_peak_memory_on_the_cpu() -> None:
    mem = measure.peak_memory(torch.device("cpu"))
    assert mem["peak_rss_mb"] > 10 and mem["cuda_max_allocated_mb"] is None and mem["cuda_max_reserved_mb"] is None
    assert mem["peak_rss_source"] == ("VmHWM" if Path("/proc/self/status").is_file() else "getrusage")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="VmHWM is Linux's (/proc/self/status)")
def test_peak_rss_is_this_program_s_not_the_one_that_started_it(tmp_path: Path) -> None:
    """A user test: getrusage's ru_maxrss carries over the peak of the process that started this
    one, so a run started by a parent that had held 2.6 GB reported 2.6 GB."""
    parent = ("import subprocess, sys\n"
              "held = bytearray(1536 * 2**20)\n"  # 1.5 GiB, zeroed: resident
              "del held\n"
              "code = 'import resource; from auditor.measure import peak_rss_kb; "
              "print(peak_rss_kb()[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)'\n"
              "print(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout)\n")
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout  # fmt: skip
    own, inherited = map(int, out.split())
    # The child itself, torch imported, holds about half a GB; ru_maxrss holds the parent's 1.5 GiB
    # too where the parent started it by vfork, as CPython does on Linux (not by a plain fork)
    assert own < 1024 * 1024, (own, inherited)
    (tmp_path / "status").write_text("Name:\tpython\nVmPeak:\t  900 kB\nVmHWM:\t   1234 kB\nVmRSS:\t 1000 kB\n")
    assert measure.peak_rss_kb(tmp_path / "status") == (1234, "VmHWM")
    (tmp_path / "status").write_text("Name:\tpython\n")  # no VmHWM: getrusage's figure
    assert measure.peak_rss_kb(tmp_path / "status") == (measure.resource.getrusage(measure.resource.RUSAGE_SELF).ru_maxrss,
                                                        "getrusage")
