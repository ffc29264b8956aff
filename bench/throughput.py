#!/usr/bin/env python
"""Training throughput: a conventional PyTorch pipeline vs the auditor's training path.

    python bench/throughput.py                      # resnet20, A/B only
    python bench/throughput.py --all --write-results
    python bench/throughput.py --model resnet18 --matrix --steps 4 --repeats 3

(a) CONVENTIONAL: a torchvision-style dataset (uint8 HWC arrays -> PIL per
    image, exactly what torchvision.datasets.CIFAR10.__getitem__ does) with
    RandomCrop(32, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize()
    per image, through DataLoader(shuffle=True, num_workers=W), and the plain
    eager fp32 loop with `loss.item()` every step; torch's default (non
    deterministic) flags, as a typical script leaves them.
(b) AUDITOR: `auditor.train.build_loop` + `auditor.train.train_one_epoch`
    itself, stopped after the timed steps by the spec's step budget
    (`train.max_steps`), so the timed loop is `auditor run`'s (device-side loss
    accumulators, host read only at log points), after `auditor.repro.enforce`
    exactly as `auditor run` calls it.

Same data (the real CIFAR-10 subset when present, else synthetic), same model
init (torch.manual_seed(SEED) before build_model), same batch size, SGD lr 0.1
momentum 0.9 wd 5e-4 (constant lr), same number of steps. Each timed repeat
runs the pipelines in alternating order after untimed warm-up steps; a
DataLoader iterator is created fresh (workers started) per repeat and shut
down after it, so its workers never compete with the other pipeline.

The script prints figures and never asserts them. Run it on a quiet machine:
`os.getloadavg()` is printed before and after every timed section, and each
timed repeat records the share of the machine's CPU that other processes used
meanwhile; a disturbed repeat (> --quiet-threshold) is discarded and rerun.
See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import multiprocessing.connection
import multiprocessing.util
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

import auditor
from auditor import hostmem, repro
from auditor.audit import is_number
from auditor.cli import given_path
from auditor.data import DataBundle, load_data, why_no_cifar_dir
from auditor.environment import (
    cgroup_cpu_quota,
    cpu_has_native_bf16,
    cpu_model,
    git_state,
    gpu_info,
    make_current,
    onednn_bf16_usable,
    oversubscription_note,
    read_cpuinfo,
    usable_cpus,
)
from auditor.errors import (
    InvalidInput,
    Terminated,
    exit_code,
    parent_env,
    signals_held,
    stop_with_parent,
    stop_word,
)
from auditor.fileio import atomic_write_bytes, home_expanded, resolved_folder
from auditor.measure import ForeignCpu as _ForeignCpu
from auditor.models import build_model, list_models
from auditor.render import cpus_text
from auditor.spec import (
    DataSpec,
    Determinism,
    ModelSpec,
    Optimizer,
    Schedule,
    Spec,
    SyntheticSize,
    TrainSpec,
    format_validation_error,
    resolved_dict,
    spec_hash,
)
from auditor.train import RunFiles, build_loop, train_one_epoch
from auditor.verify import compare_tensors, state_tensors
from auditor.words import count

REPO = Path(__file__).resolve().parents[1]
# The real CIFAR-10 subset beside the checkout, or wherever AUDITOR_CIFAR10_SUBSET points (`~` expanded,
# as for --data-root: quoted in a CI file, no shell expands it).
SUBSET = Path(os.environ.get("AUDITOR_CIFAR10_SUBSET") or REPO.parent / "shared" / "data" / "cifar10-subset").expanduser().resolve()
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_SHOWN = RESULTS_MD.relative_to(REPO)  # as --help names it
SEED = 42
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4
# Defaults sized for a 2-core CPU (one timed repeat of either pipeline took 2-3 s for resnet20
# and 4-6 s for resnet18 in RESULTS.md).
DEFAULT_STEPS = {"resnet20": 20, "resnet18": 4}
DEFAULT_REPEATS = {"resnet20": 5, "resnet18": 3}
FALLBACK_STEPS, FALLBACK_REPEATS = 10, 3
# On a GPU a step takes milliseconds: a repeat is every full batch of one epoch, so that the
# per-epoch work (order, crop/flip parameters, their copies to the device) weighs as in training.
CUDA_REPEATS = 10


def default_steps(model: str, device: torch.device, n_train: int, batch_size: int) -> int:
    """Timed steps per repeat when --steps is not given."""
    if device.type == "cuda":
        return max(1, n_train // batch_size)
    return DEFAULT_STEPS.get(model, FALLBACK_STEPS)


# --- machine ------------------------------------------------------------------------


def loadavg() -> list[float] | None:
    """[1, 5, 15]-minute load averages, or None where the OS has none.

    A list, so that a report prints the same whether rendered live or from its JSON.
    """
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """What the figures depend on: hardware, versions, threads, load."""
    gpu = gpu_info(device)  # NVML (name, memory, driver) where available
    git = git_state(REPO)
    cpuinfo = read_cpuinfo()
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "auditor": auditor.__version__, "git_commit": git.commit, "git_dirty": git.dirty,
        "gpu_driver": gpu.driver if gpu else None,
        "host": platform.node(), "os": platform.platform(), "python": platform.python_version(),
        "cpu_model": cpu_model(cpuinfo), "cpu_count": os.cpu_count(), "cpu_bf16_native": onednn_bf16_usable(cpu_has_native_bf16(cpuinfo)),
        "cpu_affinity": usable_cpus(), "cpu_quota": cgroup_cpu_quota(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda_available": torch.cuda.is_available(), "device": str(device), "gpu": gpu.name if gpu else None,
        "loadavg_start": loadavg(),
    }  # fmt: skip


class ForeignCpu(_ForeignCpu):
    """auditor's meter of other processes' CPU share, NaN (shown as such) where it cannot be read."""

    def stop(self) -> float:  # type: ignore[override]
        share = super().stop()
        return math.nan if share is None else share


def wait_for_quiet(quiet: float, max_wait_s: float, log: Callable[[str], None] = print, sample_s: float = 2.0) -> float:
    """Sample other processes' CPU share until it is at most `quiet` or `max_wait_s` passed; return the last share."""
    meter, waited = ForeignCpu(), 0.0
    while True:
        meter.start()
        time.sleep(sample_s)
        busy = meter.stop()
        if busy <= quiet or waited >= max_wait_s:
            if waited:
                log(f"    waited {waited:.0f}s for other processes to quieten (now {busy:.0%} of the CPU)")
            return busy
        waited += sample_s


def sync(device: torch.device) -> None:
    """Wait for queued device work before a clock is read (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- data ---------------------------------------------------------------------------


def bench_data_spec(root: Path | None = SUBSET, synthetic_train: int = 4000) -> DataSpec:
    """The real subset (all 4068 training images, no val split) if present, else synthetic."""
    if root is not None and (Path(root) / "cifar-10-batches-py").is_dir():
        return DataSpec(dataset="cifar10", root=str(root), val_split=0)
    return DataSpec(
        dataset="synthetic", val_split=0, synthetic=SyntheticSize(train=synthetic_train, test=10)
    )  # fmt: skip


def describe_data(spec: DataSpec, data: DataBundle, chosen: bool = False) -> str:
    """One line naming the data the pipelines trained on (`chosen`: synthetic by --synthetic): for
    CIFAR-10, whether it is the official copy, and its content fingerprint, as a run's sheet gives them."""
    if spec.dataset == "synthetic":
        why = "--synthetic" if chosen else f"no CIFAR-10 subset at {SUBSET}"
        return f"synthetic ({len(data.train_y)} train images; {why})"
    prov = data.provenance  # the copy as read: `--data-root` may name any, the official one too (a user test)
    missing = [name for name, status in prov.files.items() if status == "missing"]
    changed = [name for name, status in prov.files.items() if status == "md5 mismatch"]
    differs = [*([f"{', '.join(missing)} missing"] if missing else []),
               *([f"{count(len(changed), 'file')} not the official bytes (MD5)"] if changed else [])]  # fmt: skip
    what = "the official CIFAR-10" if prov.official else f"a CIFAR-10 copy that is not the official one ({'; '.join(differs)})"
    subset = "the subset; " if Path(prov.root or "").parent == SUBSET else ""
    return f"{what} at {prov.root} ({subset}{len(data.train_y)} train images; content sha256 {prov.fingerprint[:12]})"


# --- (a) the conventional pipeline --------------------------------------------------


class PILImageDataset(torch.utils.data.Dataset):
    """torchvision.datasets.CIFAR10's item access: HWC uint8 array -> PIL image -> transform."""

    def __init__(self, images_hwc: np.ndarray, labels: list[int], transform: Callable[[Any], Any]):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def conventional_transform(mean: list[float], std: list[float], padding: int = 4) -> Callable[[Any], Any]:
    """The usual CIFAR-10 training transform, applied per PIL image."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomCrop(32, padding=padding), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std),
    ])  # fmt: skip


def default_workers() -> int:
    """DataLoader workers a typical script uses on this box: 2 (the PyTorch CIFAR-10
    tutorial's value), never more than the CPUs this process may run on."""
    return max(0, min(2, usable_cpus()))


def sgd(model: nn.Module) -> torch.optim.SGD:
    """(a)'s optimiser: the spec's default SGD settings, at a constant lr."""
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def init_model(name: str, device: torch.device) -> nn.Module:
    """The same initial weights for every pipeline (the runner's seeding order)."""
    torch.manual_seed(SEED)
    return build_model(ModelSpec(name=name)).to(device)


def set_conventional_flags() -> None:
    """torch's defaults: what a script that sets no determinism flags runs under."""
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = False
    torch.utils.deterministic.fill_uninitialized_memory = True
    torch.backends.mkldnn.enabled = True


class ConventionalPipeline:
    """(a): DataLoader + per-image PIL transforms + the textbook eager fp32 loop."""

    label = "(a) conventional"
    repeat_warmup = 1  # a fresh iterator per repeat: one untimed step lets the workers fill the queue

    def __init__(self, model_name: str, data: DataBundle, data_spec: DataSpec, device: torch.device,
                 batch_size: int, workers: int) -> None:  # fmt: skip
        self.device = device
        images = data.train_x.permute(0, 2, 3, 1).contiguous().numpy()  # (N, 32, 32, 3) like CIFAR10.data
        tf = conventional_transform(list(data_spec.mean), list(data_spec.std), data_spec.augment.crop_padding)
        self.dataset = PILImageDataset(images, data.train_y.tolist(), tf)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(SEED),
        )  # fmt: skip
        self.model = init_model(model_name, device)
        self.model.train()
        self.opt = sgd(self.model)
        self.criterion = nn.CrossEntropyLoss()
        self.losses: list[float] = []
        self._it: Iterator[Any] | None = None

    def begin(self) -> None:
        """Start a repeat: torch default flags, a fresh iterator (workers start here)."""
        set_conventional_flags()
        self._it = iter(self.loader)

    def end(self) -> None:
        """Shut the workers down so they never run during the other pipeline's turn."""
        self._it = None

    def _next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._it is None:
            self.begin()
        try:
            return next(self._it)  # type: ignore[arg-type]
        except StopIteration:  # epoch boundary: a new epoch, as a training script starts one
            self._it = iter(self.loader)
            return next(self._it)

    def run(self, steps: int) -> int:
        """`steps` training steps; returns the number of images trained on."""
        images = 0
        for _ in range(steps):
            x, y = self._next()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = self.criterion(self.model(x), y)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.losses.append(loss.item())
            images += len(y)
        return images


# --- (b) the auditor path ---------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One configuration of the auditor path: spec toggles (spec defaults) plus diagnostic-only flags."""

    label: str
    amp: str = "off"
    channels_last: bool = True
    compile: str = "off"
    determinism: bool = True
    fill_uninitialized_memory: bool = False  # determinism.fill_uninitialized_memory
    host_memory: hostmem.HostMemoryMode = "retain"  # train.host_memory
    # Diagnostics, not spec fields: foreach SGD and oneDNN on/off.
    foreach: bool | None = None
    mkldnn: bool = True  # torch.backends.mkldnn.enabled (oneDNN convolutions on CPU)


DEFAULT_CONFIG = Config("(b) auditor, spec defaults (determinism on)")
PLAIN_CONFIG = Config("channels_last off, fill_uninitialized_memory on, host_memory release (torch's and glibc's defaults)",
                      channels_last=False, fill_uninitialized_memory=True, host_memory="release")  # fmt: skip
PROFILED_CONFIGS = [DEFAULT_CONFIG, PLAIN_CONFIG]
FAST_PAIR = "amp bf16, compile default"


def matrix_configs(device: torch.device, diagnostics: bool) -> list[Config]:
    """The toggle matrix for (b), each row one change from the spec defaults; on CUDA also fp16, and
    the fast preset's two changes together (bf16 autocast with compile, specs/resnet18_fast.yaml)."""
    rows = [
        DEFAULT_CONFIG,
        Config("channels_last off", channels_last=False),
        Config("fill_uninitialized_memory on", fill_uninitialized_memory=True),
        Config("host_memory release", host_memory="release"),
        PLAIN_CONFIG,
        Config("amp bf16", amp="bf16"),
        *([Config("amp fp16", amp="fp16")] if device.type == "cuda" else []),
        Config("compile default", compile="default"),
        *([Config(FAST_PAIR, amp="bf16", compile="default")] if device.type == "cuda" else []),
        Config("determinism off", determinism=False),
    ]
    if diagnostics:
        rows += [Config("foreach SGD", foreach=True), Config("mkldnn (oneDNN) off", mkldnn=False)]
    return rows


def select_rows(rows: list[Config], labels: list[str] | None) -> list[Config]:
    """The default row plus the rows named by `labels` (all rows when None); ValueError names unknown ones."""
    if labels is None:
        return rows
    known = [r.label for r in rows]
    unknown = [x for x in labels if x not in known]
    if unknown:
        raise ValueError(f"--rows: unknown row {', '.join(map(repr, unknown))}; rows: {', '.join(map(repr, known))}")
    return [r for r in rows if r is DEFAULT_CONFIG or r.label in labels]


def auditor_spec(model_name: str, data_spec: DataSpec, batch_size: int, device: torch.device, cfg: Config) -> Spec:
    """A run spec with the spec defaults except the benchmark's data/model/optimiser and `cfg`'s toggles."""
    train = TrainSpec(
        batch_size=batch_size, device=str(device), amp=cfg.amp, channels_last=cfg.channels_last,
        compile=cfg.compile, host_memory=cfg.host_memory, schedule=Schedule(name="constant"),
        optimizer=Optimizer(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY),
    )  # fmt: skip
    return Spec(
        name="bench", seed=SEED, data=data_spec,
        determinism=Determinism(enabled=cfg.determinism, fill_uninitialized_memory=cfg.fill_uninitialized_memory),
        model=ModelSpec(name=model_name), train=train,
    )  # fmt: skip


class AuditorPipeline:
    """(b): the auditor's training loop, built and stepped with the library's own functions."""

    def __init__(self, model_name: str, data: DataBundle, data_spec: DataSpec, device: torch.device,
                 batch_size: int, cfg: Config = DEFAULT_CONFIG, ckpt_dir: Path | None = None) -> None:  # fmt: skip
        self.cfg, self.device = cfg, device
        self.label = cfg.label
        self.repeat_warmup = 0  # no per-repeat state to warm
        self.spec = auditor_spec(model_name, data_spec, batch_size, device, cfg)
        self.apply_flags()  # before anything touches the device, as the runner does
        model = init_model(model_name, device)  # the same initial weights as (a)
        files = RunFiles(ckpt_dir or Path(tempfile.gettempdir()) / "auditor-bench-unused",
                         resolved_dict(self.spec), spec_hash(self.spec))  # fmt: skip
        self.loop = build_loop(self.spec.train, self.spec.data, self.spec.seed, model, data, device, files)
        if cfg.foreach is not None:
            for g in self.loop.opt.param_groups:
                g["foreach"] = cfg.foreach
        self.step_losses: list[float] = []  # the steps this pipeline ran, in order

    def apply_flags(self) -> None:
        """The determinism flags as `auditor run` sets them, and this row's oneDNN switch."""
        repro.enforce(self.spec.seed, self.spec.determinism)
        torch.backends.mkldnn.enabled = self.cfg.mkldnn

    def begin(self) -> None:
        """Start a repeat at step 0 of the epoch, as (a)'s fresh iterator does: the short last
        batch (and, compiled, its recompile) stays out of timed repeats shorter than an epoch."""
        self.apply_flags()
        self.loop.step, self.loop.partial = 0, {}

    def end(self) -> None:
        """Nothing to shut down (no workers)."""

    def run(self, steps: int) -> int:
        """`steps` steps of `train.train_one_epoch` itself, stopped by a step budget; returns images.

        The budget is the spec's `train.max_steps`, set to where this call
        should stop, so every per-step check of the real loop (budget,
        checkpoint cadence, log-point loss read) runs as in `auditor run`.
        """
        loop, images = self.loop, 0
        while steps > 0:
            if loop.step >= loop.spe:
                loop.epoch, loop.step, loop.partial = loop.epoch + 1, 0, {}
            start, n = loop.step, min(steps, loop.spe - loop.step)
            loop.train = self.spec.train.model_copy(update={"max_steps": loop.epoch * loop.spe + start + n})
            before = len(loop.step_losses)
            train_one_epoch(loop, None)
            # train_one_epoch lists the epoch's losses from step 0; earlier calls' steps are NaN here.
            self.step_losses += loop.step_losses[before + start :]
            images += self._images_through(loop.step) - self._images_through(start)
            steps -= loop.step - start
        return images

    def _images_through(self, step: int) -> int:
        return min(len(self.loop.tensors["train_y"]), step * self.loop.train.batch_size)


# --- timing -----------------------------------------------------------------------


def summarize(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min, max of a sample."""
    if not values:
        return {"n": 0}
    q1, q3 = np.percentile(values, [25, 75])
    return {
        "n": len(values), "median": statistics.median(values), "q1": float(q1), "q3": float(q3),
        "min": min(values), "max": max(values),
    }  # fmt: skip


def timed_run(pipe: Any, steps: int, device: torch.device, meter: ForeignCpu | None = None) -> tuple[float, float]:
    """One repeat: begin, the pipeline's per-repeat warm-up steps untimed, `steps` timed.

    Returns (images/s, share of the machine's CPU other processes used meanwhile).
    """
    meter = meter or ForeignCpu()
    pipe.begin()
    try:
        if pipe.repeat_warmup:
            pipe.run(pipe.repeat_warmup)
        sync(device)
        meter.start()
        t0 = time.perf_counter()
        images = pipe.run(steps)
        sync(device)
        dt = time.perf_counter() - t0
        return images / dt, meter.stop()
    finally:
        pipe.end()


@dataclass
class Samples:
    """Timed repeats of one pipeline: kept ones, and attempts discarded as disturbed."""

    images_per_s: list[float] = field(default_factory=list)
    foreign_cpu: list[float] = field(default_factory=list)
    discarded: list[tuple[float, float]] = field(default_factory=list)  # (images/s, foreign share)


def interleaved(pipes: list[Isolated], steps: dict[str, int], repeats: int, log: Callable[[str], None] = print,
                quiet: float = 0.05, retries: int = 2, wait_s: float = 120.0,
                failed: dict[str, str] | None = None) -> dict[str, Samples]:  # fmt: skip
    """images/s of each pipeline over `repeats` rounds; the order reverses every round.

    A repeat during which other processes used more than `quiet` of the machine's CPU is
    discarded and run again, at most `retries` times (the last attempt is kept regardless),
    after waiting up to `wait_s` for the machine to quieten. A pipeline whose process fails
    (killed, say, by the out-of-memory killer) is said so in `failed`, left out of the later
    rounds and of the result; the others go on.
    """
    out = {p.label: Samples() for p in pipes}
    for r in range(repeats):
        order = pipes if r % 2 == 0 else pipes[::-1]
        for p in order:
            if (p.repeats is not None and r >= p.repeats) or p.label not in out:
                continue
            try:
                _timed_repeat(p, steps[p.label], out[p.label], f"{r + 1}/{repeats}", log, quiet, retries, wait_s)
            except RuntimeError as exc:
                del out[p.label]
                if failed is not None:
                    failed[p.label] = f"in repeat {r + 1}: {exc}"
                log(f"    repeat {r + 1}/{repeats}  {p.label:48s} FAILED ({exc}): left out")
    return out


def _timed_repeat(p: Isolated, steps: int, out: Samples, at: str, log: Callable[[str], None], quiet: float,
                  retries: int, wait_s: float) -> None:  # fmt: skip
    """One repeat of `p` into `out`, rerun (at most `retries` times) while other processes were busy."""
    for attempt in range(retries + 1):
        v, busy = p.timed(steps)
        if busy <= quiet or attempt == retries:
            break
        out.discarded.append((v, busy))
        log(f"    repeat {at}  {p.label:48s} {v:8.1f} img/s  DISCARDED: other processes used {busy:.0%} of the CPU; "
            "retrying")  # fmt: skip
        wait_for_quiet(quiet, wait_s, log)
    out.images_per_s.append(v)
    out.foreign_cpu.append(busy)
    log(f"    repeat {at}  {p.label:48s} {v:8.1f} img/s  other processes {busy:4.0%} of CPU  load {loadavg()}")


def warm(pipe: Any, steps: int, device: torch.device, budget_s: float = math.inf) -> tuple[float, float]:
    """Untimed first steps of a fresh pipeline (allocator, oneDNN primitives, compilation).

    Runs `steps` + 1 steps one at a time, stopping early (after at least two) once
    `budget_s` is spent; returns (total seconds, the last step's seconds), the latter
    sizing the timed repeats.
    """
    pipe.begin()
    try:
        total, last = 0.0, 0.0
        for i in range(steps + 1):
            t0 = time.perf_counter()
            pipe.run(1)
            sync(device)
            last = time.perf_counter() - t0
            total += last
            if i >= 1 and total > budget_s:
                break
        return total, last
    finally:
        pipe.end()


def steps_within(budget_s: float, step_s: float, steps: int) -> int:
    """At most `steps`, fewer for a configuration so slow that a repeat would exceed the budget."""
    return max(1, min(steps, int(budget_s // max(step_s, 1e-9))))


# --- bitwise determinism of a configuration -------------------------------------------


def state_of(pipe: AuditorPipeline) -> dict[str, torch.Tensor]:
    """Model tensors and optimiser state keyed by name, as `auditor verify` compares them."""
    model, opt = pipe.loop.model, pipe.loop.opt
    payload = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    return state_tensors(payload, [n for n, _ in model.named_parameters()])


def determinism_check(make: Callable[[], AuditorPipeline], steps: int) -> dict[str, Any]:
    """Train twice in-process from the same seed; compare step losses and final state bit for bit."""
    runs = []
    for _ in range(2):
        p = make()
        p.begin()
        p.run(steps)
        losses = torch.tensor(p.step_losses, dtype=torch.float32)
        runs.append((losses, {k: v.detach().cpu().clone() for k, v in state_of(p).items()}))
        del p
    (la, sa), (lb, sb) = runs
    losses_equal = torch.equal(la.view(torch.int32), lb.view(torch.int32))
    rows = compare_tensors(sa, sb)
    differing = [r["name"] for r in rows if not r["equal"]]
    return {
        "steps": steps, "losses_equal": losses_equal, "tensors": len(rows),
        "tensors_equal": len(rows) - len(differing), "differing": differing[:5],
        "bitwise": losses_equal and not differing,
        "losses_a": la.tolist(), "losses_b": lb.tolist(),
    }  # fmt: skip


# --- throughput sections ------------------------------------------------------------


@dataclass
class Setup:
    """What every throughput section of one model shares."""

    model: str
    device: torch.device
    batch_size: int
    steps: int
    repeats: int
    warmup: int
    workers: int
    data: DataBundle
    data_spec: DataSpec
    data_desc: str
    ckpt_dir: Path
    det_steps: int = 3
    det_steps_given: bool = False  # --det-steps written: a check it asked for that does not run is missing
    max_repeat_s: float = 30.0
    quiet: float = 0.05  # max share of the CPU other processes may use during a kept repeat
    retries: int = 2
    wait_s: float = 120.0  # before a retry, wait up to this long for the machine to quieten
    log: Callable[[str], None] = print
    child_tmp: str | None = None  # where the pipelines' processes make their folders; None: TMPDIR's (child_temp_base)


def make_auditor(s: Setup, cfg: Config) -> AuditorPipeline:
    """A fresh (b) pipeline for configuration `cfg` (the setup's model, data and batch size)."""
    return AuditorPipeline(s.model, s.data, s.data_spec, s.device, s.batch_size, cfg, s.ckpt_dir)


def conventional_steps_held(s: Setup) -> int:
    """Timed steps one fresh (a) iterator holds after its untimed per-repeat step: one epoch's
    batches (the last may be partial), less that step. Beyond them a new iterator, and with it new
    worker processes, would start inside the timing, which (b) never pays."""
    return math.ceil(len(s.data.train_y) / s.batch_size) - ConventionalPipeline.repeat_warmup


def make_conventional(s: Setup) -> ConventionalPipeline:
    """A fresh (a) pipeline for the setup."""
    return ConventionalPipeline(s.model, s.data, s.data_spec, s.device, s.batch_size, s.workers)


def training_flops_per_image(model_name: str, batch_size: int) -> float:
    """FLOPs of one fp32 training step (forward + backward, as torch's FlopCounterMode counts them) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(SEED)
    model = build_model(ModelSpec(name=model_name))
    x, y = torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch_size


GEMM_N, GEMM_TRIES = 2048, 12  # the ceiling's fp32 GEMM: n x n products, the best of this many timed


def _best_rate(product: Callable[[], Any], flop: float, device: torch.device, tries: int) -> float:
    """Best GFLOP/s of `product` over `tries` timed calls after two untimed ones."""
    best = 0.0
    for i in range(tries + 2):
        sync(device)
        t0 = time.perf_counter()
        product()
        sync(device)
        if i >= 2:  # two untimed products warm the library
            best = max(best, flop / (time.perf_counter() - t0) / 1e9)
    return best


def matmul_peak_gflops(device: torch.device, n: int = GEMM_N, tries: int = GEMM_TRIES) -> float:
    """Best fp32 GEMM rate (GFLOP/s) of `a @ b` (the BLAS library) over `tries` n x n products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return _best_rate(lambda: a @ b, 2 * n**3, device, tries)


def conv_gemm_peak_gflops(device: torch.device, n: int = GEMM_N, tries: int = GEMM_TRIES) -> float:
    """The same n x n x n fp32 product run as a 1x1 convolution over n pixels (oneDNN on the CPU).

    torch's CPU matmul goes to MKL, which takes a slower code path on non-Intel processors
    (about half oneDNN's rate on the AMD EPYC of RESULTS.md); the convolutions run on oneDNN.
    """
    x = torch.randn(1, n, 32, n // 32, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1, device=device).contiguous(memory_format=torch.channels_last)
    return _best_rate(lambda: nn.functional.conv2d(x, w), 2 * n**3, device, tries)


def gemm_peaks(device: torch.device, n: int = GEMM_N, tries: int = GEMM_TRIES) -> dict[str, float]:
    """The GEMM rate of each fp32 backend the step's work can run on (CPU: BLAS and oneDNN; CUDA: cuBLAS).

    On CUDA a convolution may run in TF32 (torch's default), so only the strict-fp32 matmul counts there.
    """
    peaks = {"BLAS matmul": matmul_peak_gflops(device, n, tries)}
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        peaks["oneDNN 1x1 convolution"] = conv_gemm_peak_gflops(device, n, tries)
    return peaks


def compute_ceiling(model_name: str, batch_size: int, device: torch.device) -> dict[str, Any]:
    """The images/s an fp32 step could reach if it ran at the measured GEMM peak."""
    flops = training_flops_per_image(model_name, batch_size)
    return with_peaks({"gflop_per_image": flops / 1e9}, gemm_peaks(device))


def with_peaks(ceiling: dict[str, Any], peaks: dict[str, float]) -> dict[str, Any]:
    """`ceiling` with one more measurement (GFLOP/s per backend): its best is added to the section's
    measurements, each backend keeps its best, and the best of all is the ceiling's peak."""
    measured = [*ceiling.get("matmul_peak_measured_gflops", []), max(peaks.values())]
    backends = dict(ceiling.get("gemm_backends", {}))
    for name, rate in peaks.items():
        backends[name] = max(backends.get(name, 0.0), rate)
    return {**ceiling_record(ceiling["gflop_per_image"], measured, max(measured)), "gemm_backends": backends}


def gemm_backends_text(c: dict[str, Any]) -> str:
    """'BLAS matmul 239, oneDNN 1x1 convolution 501 GFLOP/s' (reports from before it was recorded: empty)."""
    backends = c.get("gemm_backends") or {}
    return ", ".join(f"{k} {v:.0f}" for k, v in backends.items()) + (" GFLOP/s" if backends else "")


def ceiling_record(gflop_per_image: float, measured: list[float], peak: float, pooled: bool = False) -> dict[str, Any]:
    """A section's ceiling: its own GEMM rates, the rate it uses, and the images/s that rate allows."""
    record = {"gflop_per_image": gflop_per_image, "matmul_peak_measured_gflops": measured,
              "matmul_peak_gflops": peak, "ceiling_images_per_s": peak / gflop_per_image}  # fmt: skip
    return {**record, "pooled": True} if pooled else record


def pool_ceilings(sections: list[dict[str, Any]]) -> None:
    """Give every section the best GEMM rate measured anywhere in the run on its device and thread
    count. The ceiling is a best case: on a shared machine one slow moment must not lower it."""
    def key(res: dict[str, Any]) -> tuple[str, int]:
        return res["device"], res["torch_threads"]

    best: dict[tuple[str, int], float] = {}
    for res in sections:
        if c := res.get("ceiling"):
            best[key(res)] = max(best.get(key(res), 0.0), *own_peaks(c))
    for res in sections:
        if c := res.get("ceiling"):
            res["ceiling"] = {**c, **ceiling_record(c["gflop_per_image"], own_peaks(c), best[key(res)], pooled=True)}


def own_peaks(c: dict[str, Any]) -> list[float]:
    """The GEMM rates a section measured itself (reports saved before pooling hold one, unlisted)."""
    return list(c.get("matmul_peak_measured_gflops", [c["matmul_peak_gflops"]]))


# --- each pipeline in a process of its own --------------------------------------------


def setup_fields(s: Setup) -> dict[str, Any]:
    """What a child process needs to rebuild `s` (it loads the data itself, from the same spec and seed)."""
    fields = {k: getattr(s, k) for k in ("model", "batch_size", "steps", "repeats", "warmup", "workers",
                                         "data_spec", "data_desc", "det_steps", "max_repeat_s")}  # fmt: skip
    return {**fields, "device": str(s.device), "ckpt_dir": str(s.ckpt_dir), "threads": torch.get_num_threads()}


# The longest path a Unix socket may have: sockaddr_un's sun_path less its NUL (108 bytes on Linux,
# 104 on macOS; the smaller is taken).
SOCKET_PATH_MAX = 103
# What a pipeline's process adds below the base folder for the socket its DataLoader workers pass
# each batch through: /auditor-bench-child-XXXXXXXX/pymp-XXXXXXXX/listener-XXXXXXXX (8 random characters each).
CHILD_PREFIX = "auditor-bench-child-"
CHILD_SOCKET_TAIL = len(f"/{CHILD_PREFIX}/pymp-/listener-") + 3 * 8


def child_temp_base() -> tuple[str | None, str | None]:
    """The folder the pipelines' processes make their temporary folders in (None: TMPDIR's), and a
    note when it is not TMPDIR's; ValueError when no candidate is short enough and writable.

    A DataLoader worker passes each batch through a Unix socket made below it: under a long TMPDIR
    that socket's path was too long, no batch was ever passed, and the bench waited for ever."""
    try:
        default = tempfile.gettempdir()
    except FileNotFoundError as exc:  # no usable temporary folder at all: tempfile says which it tried
        raise ValueError(f"no temporary folder can be written ({exc})") from None
    longest = SOCKET_PATH_MAX - CHILD_SOCKET_TAIL
    for base in (default, "/tmp", "/var/tmp"):
        if len(os.fsencode(base)) <= longest and os.path.isdir(base) and _cannot_create_in(Path(base)) is None:
            if base == default:
                return None, None
            return base, (f"the temporary folder {default} is too long a path for the socket a DataLoader worker "
                          f"passes batches through (a TMPDIR of at most {longest} bytes leaves room for it); the "
                          f"pipelines' processes make their folders in {base} instead, and the bench removes them "
                          "as it would have")  # fmt: skip
    raise ValueError(f"the temporary folder {default} is too long a path for the socket a DataLoader worker passes "
                     f"batches through, and neither /tmp nor /var/tmp can be written: set TMPDIR to a writable folder "
                     f"of at most {longest} bytes")  # fmt: skip


def pipelines_temp_base(workers: int | None) -> tuple[str | None, str | None]:
    """`child_temp_base` for (a)'s DataLoader of `workers` workers (None: the default); with none,
    no socket is made, and TMPDIR is taken as it is."""
    return (None, None) if workers == 0 else child_temp_base()


# How long a stopped child's process group gets to die of SIGTERM before SIGKILL: it dies at once,
# unless a process of it is inside a system call the signal waits for (a device driver's, say).
STOP_GRACE_S = 5.0


class Isolated:
    """One pipeline, built and stepped in a Python process of its own (`--pipeline-child`).

    Each pipeline sets process-wide state: the determinism flags, glibc's allocator
    thresholds (`train.host_memory`), oneDNN's primitive cache, compiled kernels. In one
    shared process what one pipeline set would carry over to the next (the auditor's
    allocator setting would speed (a) up too), so each runs alone in its own process, as a
    training script would. The parent sends commands; the child times its own steps.
    """

    def __init__(self, s: Setup, cfg: Config | None) -> None:
        parent, child = socket.socketpair()
        self.folder = tempfile.mkdtemp(prefix=CHILD_PREFIX, dir=s.child_tmp)  # its multiprocessing folder goes in it
        try:
            # A session of its own: a terminal's Ctrl-C reaches the bench alone (a child hit while
            # importing had died with "Fatal Python error: init_import_site"); the bench passes the
            # stop on, and the group's number names the child's DataLoader workers too.
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--pipeline-child", str(child.fileno()), self.folder],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, start_new_session=True, env=parent_env(),
            )  # fmt: skip
        except BaseException:
            parent.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        finally:
            child.close()
        self.conn = multiprocessing.connection.Connection(parent.detach())
        self.cfg, self.label = cfg, cfg.label if cfg else ConventionalPipeline.label
        self.repeats: int | None = None  # fewer timed repeats than the section's (set for a hopeless row)
        self.facts: dict[str, Any] = {}  # from the child once built: its allocator probe
        self._built = False
        self._closed = False  # reaped and its folder removed: its pid may be another process's now
        self._send("build", setup_fields(s), asdict(cfg) if cfg else None)

    def _send(self, command: str, *args: Any) -> None:
        try:
            self.conn.send((command, args))
        except OSError as exc:  # the child is gone
            raise RuntimeError(f"the process of {self.label!r} is gone ({exc})") from None

    def _reply(self) -> Any:
        try:
            ok, value = self.conn.recv()
        except (EOFError, OSError):
            raise RuntimeError(f"the process of {self.label!r} ended ({self._how_it_ended()})") from None
        if not ok:
            raise RuntimeError(value)
        return value

    def _how_it_ended(self) -> str:
        """'killed by SIGKILL', 'exit code 1', or 'still running': its pipe closed before it was reaped."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "its pipe closed, the process still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:  # a real-time signal: valid, but unnamed
                name = f"signal {-code}"
            return f"killed by {name}" + (" (as the kernel's out-of-memory killer does)" if code == -signal.SIGKILL else "")
        return f"exit code {code}"

    def call(self, command: str, *args: Any) -> Any:
        """Run `command` in the built child and return its result; RuntimeError carries a child's error."""
        self.ready()
        self._send(command, *args)
        return self._reply()

    def ready(self) -> None:
        """Wait until the child has built its pipeline (once), and keep its facts (allocator probe)."""
        if not self._built:
            self.facts = self._reply()  # the answer to the "build" sent by __init__
            self._built = True

    def warm(self, steps: int, budget_s: float) -> tuple[float, float]:
        """`warm` in the child: (total seconds, the last step's seconds)."""
        return tuple(self.call("warm", steps, budget_s))

    def timed(self, steps: int) -> tuple[float, float]:
        """`timed_run` in the child: (images/s, other processes' CPU share)."""
        return tuple(self.call("timed", steps))

    def determinism(self, steps: int) -> dict[str, Any]:
        """`determinism_check` of this configuration in the child (twin runs in that process)."""
        return self.call("determinism", steps)

    def profile(self) -> dict[str, Any]:
        """`profile_auditor` of this pipeline in the child."""
        return self.call("profile")

    def stop(self) -> None:
        """Stop the child and its DataLoader workers now, mid-command (SIGTERM to its process
        group: they die at once; its folder, multiprocessing's included, is the parent's to remove)."""
        self.conn.close()
        self._signal_group(signal.SIGTERM)

    def _signal_group(self, signum: int) -> None:
        """Send `signum` to the child's process group, while the child is unreaped: once reaped
        (`_how_it_ended`), its number may be another process's (its workers exit with it)."""
        if self._closed or self.proc.returncode is not None:
            return
        with suppress(ProcessLookupError):  # all gone already
            os.killpg(self.proc.pid, signum)

    def close(self, wait_s: float = 60.0, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the child and what it started: asked to exit, stopped (SIGTERM) if it has not
        within `wait_s`, its process group killed if it has not within `grace_s` more; then
        its temporary folder removed."""
        if self._closed:
            return
        with suppress(OSError):  # closed by `stop`, or the child is gone
            self.conn.send(("close", ()))
        if not _exited(self.proc, wait_s):
            self.stop()
            _exited(self.proc, grace_s)
        self._signal_group(signal.SIGKILL)  # DataLoader workers it left (killed, it could not stop them)
        self.conn.close()
        killed_s = max(grace_s, 1.0)  # within `closing_all`'s deadline, bar the second SIGKILL takes to land
        try:
            self.proc.wait(timeout=killed_s)
        except subprocess.TimeoutExpired:  # stuck where SIGKILL waits (a driver's call): not waited for
            self._closed = True
            print(f"WARNING: the process of {self.label!r} (pid {self.proc.pid}) did not die of SIGKILL within "
                  f"{killed_s:g} s: it is left running, and its folder {self.folder} in place", file=sys.stderr)  # fmt: skip
            return
        self._closed = True
        shutil.rmtree(self.folder, ignore_errors=True)


def _seconds(s: float) -> str:
    """'0.4 s', '4 s', '1500 s': three significant digits, whole seconds from 100 s (a 0.4 s step
    had read '0s', and .3g writes 1500 as 1.5e+03)."""
    return f"{s:.0f} s" if s >= 100 else f"{s:.3g} s"


def _exited(proc: subprocess.Popen, wait_s: float) -> bool:
    """Whether `proc` has exited within `wait_s`, leaving it unreaped: as a zombie it keeps its
    pid, so no other process can take its process group's number before the group is killed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # reaped already (`_how_it_ended`)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@contextmanager
def closing_all(pipes: list[Isolated]) -> Iterator[list[Isolated]]:
    """Close every pipeline in `pipes` (as it is when the block ends); on an error or Ctrl-C,
    stop them all at once instead of waiting for a busy child to finish its command."""
    try:
        yield pipes
        for p in pipes:
            p.close()
    except BaseException:  # Ctrl-C while one closes too: the others are stopped, not left running
        with signals_held(deliver=False):  # a second Ctrl-C or a SIGTERM must not leave processes and folders behind
            for p in pipes:
                p.stop()
            deadline = time.monotonic() + STOP_GRACE_S
            for p in pipes:
                p.close(wait_s=0, grace_s=max(0.0, deadline - time.monotonic()))
        raise


class _Child:
    """The child side of `Isolated`: one pipeline and the commands it serves."""

    def __init__(self) -> None:
        self.s: Setup | None = None
        self.cfg: Config | None = None
        self.pipe: Any = None

    def build(self, fields: dict[str, Any], cfg: dict[str, Any] | None) -> dict[str, Any]:
        """Rebuild the parent's Setup (the data loaded with SEED, as `setups` loads it) and the pipeline."""
        torch.set_num_threads(fields.pop("threads"))
        fields.update(device=torch.device(fields["device"]), ckpt_dir=Path(fields["ckpt_dir"]))
        make_current(fields["device"])
        self.s = Setup(**fields, data=load_data(fields["data_spec"], SEED), log=lambda m: None)
        self.cfg = Config(**cfg) if cfg else None
        self.pipe = make_auditor(self.s, self.cfg) if self.cfg else make_conventional(self.s)
        return {"large_blocks_from_heap": hostmem.read_back()}

    def warm(self, steps: int, budget_s: float) -> tuple[float, float]:
        """Untimed first steps (`warm`)."""
        return warm(self.pipe, steps, self.s.device, budget_s)

    def timed(self, steps: int) -> tuple[float, float]:
        """One timed repeat (`timed_run`)."""
        return timed_run(self.pipe, steps, self.s.device)

    def determinism(self, steps: int) -> dict[str, Any]:
        """Twin runs of fresh pipelines of this configuration (`determinism_check`)."""
        return determinism_check(lambda: make_auditor(self.s, self.cfg), steps)

    def profile(self) -> dict[str, Any]:
        """The profiler over a few steps of this pipeline (`profile_auditor`)."""
        return profile_auditor(self.s, self.pipe)


def pipeline_child(fd: int, folder: str) -> int:
    """`--pipeline-child FD FOLDER`: serve one pipeline's commands over the socket FD until told to close.

    It runs in a session of its own, and a stop from the parent (SIGTERM, then SIGKILL, to its
    process group) ends it where it is: the parent removes FOLDER, which holds its temporary files.
    """
    stop_with_parent()  # its own session: a hangup or a SIGKILL of the bench would not reach it otherwise
    _multiprocessing_folder_in(folder)
    return _serve(multiprocessing.connection.Connection(fd), _Child())


def _multiprocessing_folder_in(folder: str) -> None:
    """Make multiprocessing's temporary folder (its sockets pass the DataLoader workers' batches)
    in `folder`, which the parent removes however this process ends; the workers, forked later,
    use this one. Only that folder: torch.compile's cache stays where tempfile puts it."""
    before, tempfile.tempdir = tempfile.tempdir, folder
    try:
        multiprocessing.util.get_temp_dir()
    finally:
        tempfile.tempdir = before


def _serve(conn: multiprocessing.connection.Connection, child: _Child) -> int:
    """Run commands from `conn` on `child` until "close" or the parent is gone."""
    while True:
        try:
            command, args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return 0
        if command == "close":
            return 0
        try:
            reply = (True, getattr(child, command)(*args))
        except Exception as exc:  # reported to the parent, which records the row as failed
            reply = (False, _short_error(exc))
        try:
            conn.send(reply)
        except OSError:
            return 0


def build_pipelines(s: Setup, configs: list[Config], pipes: list[Isolated]) -> dict[str, str]:
    """Start (a) and one (b) per configuration, each in its own process, built in parallel, into
    `pipes` (which the caller closes); return the ones that failed to build, with why."""
    for cfg in [None, *configs]:
        with signals_held():  # a stop while one starts lands once it is in `pipes`, which the caller stops
            pipes.append(Isolated(s, cfg))
    failed: dict[str, str] = {}
    for p in list(pipes):
        try:
            p.ready()
        except RuntimeError as exc:  # e.g. a toggle the device cannot run
            failed[p.label] = str(exc)
            p.close()  # before it leaves `pipes`: a Ctrl-C meanwhile stops it with the others
            pipes.remove(p)
    return failed


def warm_pipelines(s: Setup, pipes: list[Isolated], failed: dict[str, str]) -> dict[str, tuple[float, float, int]]:
    """Warm each pipeline; per label (warm-up s, last step s, timed steps per repeat). Drops failures."""
    plan: dict[str, tuple[float, float, int]] = {}
    for p in list(pipes):
        try:
            warmup_s, step_s = p.warm(s.warmup, s.max_repeat_s)
        except RuntimeError as exc:  # e.g. compile without a working C++ toolchain
            failed[p.label] = str(exc)
            p.close()  # before it leaves `pipes`: a Ctrl-C meanwhile stops it with the others
            pipes.remove(p)
            continue
        steps = steps_within(s.max_repeat_s, step_s, s.steps)
        cut = f" (capped from {s.steps} by --max-repeat-s {s.max_repeat_s:g})" if steps < s.steps else ""
        if p.cfg is None and s.workers > 0 and steps > (held := conventional_steps_held(s)):
            if held >= 1:
                cut += (f" (capped at {held}: a fresh DataLoader iterator holds {held + ConventionalPipeline.repeat_warmup} "
                        "batches, and the next would start its workers inside the timed window)")  # fmt: skip
                steps = held
            else:
                cut += (" (NOTE: one batch is the whole training set, so every timed step starts a fresh DataLoader "
                        "iterator and its workers, which favours (b): lower --batch-size)")  # fmt: skip
        if step_s > s.max_repeat_s:  # hopeless (e.g. bf16 emulated on the CPU): one repeat is enough
            p.repeats = 1
            cut += "; a single repeat (one step exceeds --max-repeat-s)"
        s.log(f"  warm-up {p.label}: {warmup_s:.1f}s, last step {step_s:.2f}s; timing {count(steps, 'step')} per repeat{cut}")
        plan[p.label] = (warmup_s, step_s, steps)
    return plan


def throughput_rows(pipes: list[Isolated], samples: dict[str, Any], plan: dict[str, tuple[float, float, int]]) -> list[dict[str, Any]]:
    """One row per timed pipeline: images/s, spread, and ratios to (a) and to the default (b)."""
    med = {k: statistics.median(v.images_per_s) for k, v in samples.items()}
    base_a, base_b = med.get(ConventionalPipeline.label), med.get(DEFAULT_CONFIG.label)  # None: it failed
    rows = []
    for p in pipes:
        sm, (warmup_s, step_s, steps) = samples[p.label], plan[p.label]
        rows.append({
            "label": p.label, "config": asdict(p.cfg) if p.cfg else None,
            "images_per_s": summarize(sm.images_per_s), "samples": sm.images_per_s,
            "foreign_cpu": sm.foreign_cpu, "discarded": sm.discarded, "steps": steps,
            "warmup_s": warmup_s, "step_s_estimate": step_s,
            "ratio_to_a": med[p.label] / base_a if base_a else None,
            "ratio_to_default_b": med[p.label] / base_b if base_b else None,
            "large_blocks_from_heap": p.facts["large_blocks_from_heap"],
        })  # fmt: skip
    return rows


def check_rows_determinism(s: Setup, pipes: list[Isolated], rows: list[dict[str, Any]]) -> None:
    """Twin runs of each timed configuration in its own process, compared bit for bit (into its row).

    A configuration one of whose steps takes over half of --max-repeat-s is not checked (the twin
    runs take at least 4 steps), and the others run fewer than --det-steps steps where that many
    would exceed it. Where --det-steps was written, either is said on stderr, and a check not run
    is recorded as one that could not run (`determinism_error`: the bench exits 3).
    """
    by_label = {p.label: p for p in pipes if p.cfg is not None}
    for row in rows:
        p = by_label.get(row["label"])
        if p is None or "failed" in row:
            continue
        if row["step_s_estimate"] * 4 > 2 * s.max_repeat_s:  # two twin runs of two steps
            row["determinism_skipped"] = (f"one step takes {_seconds(row['step_s_estimate'])}, more than "
                                          f"--max-repeat-s / 2 = {_seconds(s.max_repeat_s / 2)}")
            s.log(f"  determinism check skipped for {p.label}: {row['determinism_skipped']}")
            if s.det_steps_given:
                row["determinism_error"] = f"{row['determinism_skipped']}, though --det-steps {s.det_steps} asked for it"
            continue
        n = max(2, steps_within(s.max_repeat_s, row["step_s_estimate"], s.det_steps))
        cut = f"; --det-steps {s.det_steps} cut: more would exceed --max-repeat-s {s.max_repeat_s:g}" if n < s.det_steps else ""
        s.log(f"  determinism check ({count(n, 'step')}, twice{cut}): {p.label}")
        if cut and s.det_steps_given:
            print(f"WARNING: determinism check of {p.label}: {count(n, 'step')}{cut}", file=sys.stderr)
        try:
            row["determinism"] = p.determinism(n)
        except RuntimeError as exc:
            row["determinism_skipped"], row["determinism_error"] = f"failed: {exc}", str(exc)


def throughput(s: Setup, configs: list[Config], check_determinism: bool) -> dict[str, Any]:
    """(a) and each auditor configuration, interleaved; ratios to (a) and to the default (b)."""
    s.log(f"[{s.model}] building pipelines, one process each: (a) + {count(len(configs), 'auditor configuration')}, "
          f"{count(torch.get_num_threads(), 'torch thread')}")  # fmt: skip
    with closing_all([]) as pipes:
        failed = build_pipelines(s, configs, pipes)
        plan = warm_pipelines(s, pipes, failed)
        for label, err in failed.items():
            s.log(f"  {label}: FAILED ({err})")
        ceiling = compute_ceiling(s.model, s.batch_size, s.device)
        s.log(f"  fp32 ceiling: {ceiling['gflop_per_image']:.3f} GFLOP per training image, GEMM peak "
              f"{ceiling['matmul_peak_gflops']:.0f} GFLOP/s ({gemm_backends_text(ceiling)}) -> "
              f"{ceiling['ceiling_images_per_s']:.0f} images/s at that rate (a bound only where no pipeline "
              "beats it: the results say)")  # fmt: skip
        load_before = loadavg()
        steps = {label: n for label, (_, _, n) in plan.items()}
        samples = interleaved(pipes, steps, s.repeats, s.log, s.quiet, s.retries, s.wait_s, failed)
        for p in [p for p in pipes if p.label not in samples]:  # its process failed during the repeats
            p.close()  # before it leaves `pipes`: a Ctrl-C meanwhile stops it with the others
            pipes.remove(p)
        load_after = loadavg()
        ceiling = with_peaks(ceiling, gemm_peaks(s.device))  # again after the repeats: keep the best
        rows = throughput_rows(pipes, samples, plan)
        rows += [{"label": k, "failed": v} for k, v in failed.items()]
        if check_determinism:
            check_rows_determinism(s, pipes, rows)
    return {
        "model": s.model, "device": str(s.device), "batch_size": s.batch_size, "steps": s.steps,
        "repeats": s.repeats, "warmup_steps": s.warmup, "workers": s.workers, "data": s.data_desc,
        "torch_threads": torch.get_num_threads(), "max_repeat_s": s.max_repeat_s, "quiet": s.quiet,
        "retries": s.retries, "isolated": True,
        "loadavg_before": load_before, "loadavg_after": load_after, "rows": rows, "ceiling": ceiling,
        "tf32": dict(zip(("cudnn", "matmul"), repro.tf32_flags(), strict=True)),
    }  # fmt: skip


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):  # a configuration the spec refuses (fp16 on a CPU): in its words
        return format_validation_error("bench", exc).splitlines()[0].removeprefix("bench: ")[:200]
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:200] if msg else ''}"


def print_throughput(res: dict[str, Any], log: Callable[[str], None] = print) -> None:
    """A throughput section's table and ceiling, as the run goes."""
    log(f"\n== {res['model']} on {res['device']}, batch {res['batch_size']}, up to {count(res['steps'], 'timed step')} x "
        f"{count(res['repeats'], 'repeat')}, DataLoader workers {res['workers']}, torch threads {res['torch_threads']}")  # fmt: skip
    log(f"   data: {res['data']}; load before {res['loadavg_before']} after {res['loadavg_after']}")
    for line in [*throughput_table(res), *ceiling_lines(res)]:
        log("   " + line)


def _det_cell(row: dict[str, Any]) -> str:
    d = row.get("determinism")
    if d is None:
        if row.get("determinism_skipped"):
            return f"not checked: {row['determinism_skipped']}"
        return "n/a (no determinism flags)" if row.get("config") is None else "-"
    if d["bitwise"]:
        return f"yes ({d['steps']} steps, {d['tensors']} tensors)"
    return f"NO (losses equal: {d['losses_equal']}, {d['tensors_equal']}/{d['tensors']} tensors equal)"


def throughput_table(res: dict[str, Any]) -> list[str]:
    """Markdown table of one throughput section."""
    lines = [
        "| pipeline / configuration | images/s median | IQR | min-max | timed steps x repeats | other processes' CPU share (max) | discarded repeats | ratio to (a) | ratio to default (b) | share of fp32 ceiling | a 64 MiB block from (glibc, in its process) | bitwise deterministic (twin runs in its process) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    cap = res.get("ceiling", {}).get("ceiling_images_per_s")
    for r in res["rows"]:
        if "failed" in r:
            lines.append(f"| {r['label']} | failed: {r['failed']} | | | | | | | | | | |")
            continue
        st = r["images_per_s"]
        ra, rb = (f"{r[k]:.2f}x" if r[k] else "-" for k in ("ratio_to_a", "ratio_to_default_b"))
        heap = {True: "heap", False: "mmap"}.get(r.get("large_blocks_from_heap"), "-")
        amp = (r.get("config") or {}).get("amp", "off")
        share = f"n/a ({amp}, not fp32)" if amp != "off" else (f"{st['median'] / cap:.0%}" if cap else "-")
        lines.append(
            f"| {r['label']} | {st['median']:.1f} | {st['q1']:.1f}-{st['q3']:.1f} | {st['min']:.1f}-{st['max']:.1f} "
            f"| {r['steps']} x {st['n']} | {_share(_largest(r['foreign_cpu']))} | {len(r['discarded'])} "
            f"| {ra} | {rb} | {share} | {heap} | {_det_cell(r)} |"
        )
    return lines


def ceiling_exceeded(res: dict[str, Any]) -> float | None:
    """The largest share of the fp32 ceiling an fp32 row reached, when above 1 (else None):
    then the GEMM rate measured is no ceiling on this machine and thread count."""
    cap = (res.get("ceiling") or {}).get("ceiling_images_per_s")
    shares = [r["images_per_s"]["median"] / cap for r in res["rows"]
              if cap and "failed" not in r and (r.get("config") or {}).get("amp", "off") == "off"]  # fmt: skip
    top = max(shares, default=0.0)
    return top if top > 1 else None


def ceiling_lines(res: dict[str, Any]) -> list[str]:
    """What the fp32 arithmetic allows: the ceiling and the share of it each target needs."""
    c = res.get("ceiling")
    a = next((r for r in res["rows"] if r["label"] == ConventionalPipeline.label and "failed" not in r), None)
    if not c or not a:
        return []
    base, cap = a["images_per_s"]["median"], c["ceiling_images_per_s"]
    return [
        f"Practical fp32 compute ceiling: one training step needs {c['gflop_per_image']:.3f} GFLOP per image "
        f"(torch.utils.flop_counter, forward + backward); the best fp32 {GEMM_N}x{GEMM_N}x{GEMM_N} product here "
        f"ran at {c['matmul_peak_gflops']:.0f} GFLOP/s ({peak_provenance(c)}; not the hardware peak), so an fp32 "
        f"pipeline whose "
        f"convolutions ran as fast as that GEMM would reach about {cap:.0f} images/s "
        f"({cap / base:.2f}x the conventional pipeline). 1.5x (a) = {1.5 * base:.0f} images/s = "
        f"{1.5 * base / cap:.0%} of that ceiling; 2x = {2 * base / cap:.0%}.",
        *tf32_note(res),
        *([] if (over := ceiling_exceeded(res)) is None else [
            "", (f"**Not a ceiling here:** an fp32 configuration reached {over:.0%} of it, so on this machine and "
                 "thread count that GEMM rate is no upper bound ("
                 + ("TF32 convolutions, above" if tf32_note(res) else "the GEMM kernels ran below the convolutions' rate")
                 + "); read the shares above as ratios to that GEMM, not as shares of a limit.")]),
    ]


def tf32_note(res: dict[str, Any]) -> list[str]:
    """On CUDA with TF32 convolutions and a strict-fp32 GEMM (as recorded), the ceiling can be exceeded."""
    tf32 = res.get("tf32") or {}
    if not str(res["device"]).startswith("cuda") or not tf32.get("cudnn") or tf32.get("matmul"):
        return []
    return ["", "cuDNN ran fp32 convolutions in TF32 (torch.backends.cudnn.allow_tf32) while this GEMM was "
                "strict fp32 (torch.backends.cuda.matmul.allow_tf32 off), so a configuration can exceed 100% "
                "of this ceiling."]  # fmt: skip


def peak_provenance(c: dict[str, Any]) -> str:
    """How the ceiling's GEMM rate was found, with this section's own measurements."""
    own = own_peaks(c)
    when = "before its repeats" if len(own) == 1 else "before and after its repeats"
    where = "pooled over this run's sections on the same device and thread count; " if c.get("pooled") else ""
    backends = f"; best per backend: {gemm_backends_text(c)}" if c.get("gemm_backends") else ""
    return (f"the best of {GEMM_TRIES} products per backend, {where}"
            f"this section measured {', '.join(f'{g:.0f}' for g in own)} GFLOP/s {when}{backends}")


# --- where (b)'s time goes --------------------------------------------------------------

# aten op -> category, for the profile summary (anything else: "other")
OP_GROUPS = {
    "convolution (forward)": ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution",
                              "aten::conv2d", "aten::_slow_conv2d_forward", "aten::thnn_conv2d"),
    "convolution (backward)": ("aten::convolution_backward", "aten::_slow_conv2d_backward"),
    "batch norm": ("aten::native_batch_norm", "aten::native_batch_norm_backward", "aten::batch_norm",
                   "aten::_batch_norm_impl_index", "aten::_native_batch_norm_legit"),
    "fill_ (incl. NaN-fill of new tensors, when fill_uninitialized_memory is on)": ("aten::fill_",),
    "relu / add / other elementwise": ("aten::threshold_backward", "aten::clamp_min_", "aten::relu_", "aten::add",
                                       "aten::add_", "aten::mul_", "aten::mul", "aten::div", "aten::sub",
                                       "aten::div_", "aten::sub_", "aten::addcmul_", "aten::where"),
    "data: gather / pad / index / copies": ("aten::index", "aten::constant_pad_nd", "aten::copy_", "aten::randint",
                                           "aten::random_", "aten::randperm", "aten::to", "aten::_to_copy",
                                           "aten::index_put_", "aten::pad", "aten::arange"),
    "optimizer (SGD)": ("Optimizer.step#SGD.step", "aten::_foreach_add_", "aten::_foreach_mul_",
                        "aten::_foreach_add", "aten::_fused_sgd_"),
}  # fmt: skip


def profile_auditor(s: Setup, pipe: AuditorPipeline, steps: int = 3, top: int = 12) -> dict[str, Any]:
    """torch.profiler over `steps` steps of a fresh (b) pipeline: self CPU time per op and per category."""
    from torch.profiler import ProfilerActivity, profile

    warm(pipe, s.warmup, s.device, s.max_repeat_s)
    pipe.begin()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if s.device.type == "cuda" else [])
    t0 = time.perf_counter()
    on_cpu = s.device.type == "cpu"  # the shapes and FLOPs feed conv_layers, which CUDA has no use for
    with profile(activities=acts, record_shapes=on_cpu, with_flops=on_cpu) as prof:
        pipe.run(steps)
        sync(s.device)
    wall = time.perf_counter() - t0
    events = [(e.key, e.self_cpu_time_total, e.count) for e in prof.key_averages()]
    total = sum(t for _, t, _ in events) or 1.0
    group_of = {op: g for g, ops in OP_GROUPS.items() for op in ops}
    groups: dict[str, float] = {}
    for key, t, _ in events:
        g = group_of.get(key, "other (python, autograd engine, small ops)")
        groups[g] = groups.get(g, 0.0) + t
    return {
        "model": s.model, "config": pipe.label, "steps": steps, "wall_s": wall, "threads": torch.get_num_threads(),
        "self_cpu_s": total / 1e6, "device": str(s.device),
        "groups": sorted(((g, t / total) for g, t in groups.items()), key=lambda kv: -kv[1]),
        "top_ops": [(k, t / total, n) for k, t, n in sorted(events, key=lambda e: -e[1])[:top]],
        # On CUDA the host's times say nothing of the kernels': no rates there.
        "conv_layers": conv_layers(prof.events(), steps) if on_cpu else [],
    }  # fmt: skip


def conv_layers(events: Any, steps: int) -> list[dict[str, Any]]:
    """Per convolution shape in the profiled steps: calls per step, and for the forward and the
    backward the inclusive time per call (the kernel, its layout reorders and allocations; us)
    and the FLOPs. The forward's FLOPs are the profiler's count for aten::conv2d (2 per
    multiply-add, stride included); the backward computes the forward's FLOPs again for each
    gradient its output_mask asks for (input, weight: the batch itself needs no gradient)."""
    acc: dict[tuple[str, str], dict[str, float]] = {}
    for e in events:
        if e.name == "aten::conv2d" and not _inside_conv2d(e):  # autocast records one inside another
            a = acc.setdefault((str(e.input_shapes[0]), str(e.input_shapes[1])), dict.fromkeys(CONV_SUMS, 0.0))
            a["fwd_calls"], a["fwd_us"], a["fwd_flops"] = a["fwd_calls"] + 1, a["fwd_us"] + e.cpu_time_total, a["fwd_flops"] + e.flops
        elif e.name == "aten::convolution_backward":  # inputs: grad_output, input, weight, ...
            a = acc.setdefault((str(e.input_shapes[1]), str(e.input_shapes[2])), dict.fromkeys(CONV_SUMS, 0.0))
            grads = sum(bool(g) for g in e.concrete_inputs[-1][:2])  # output_mask: (input, weight, bias)
            a["bwd_calls"], a["bwd_us"], a["bwd_grads"] = a["bwd_calls"] + 1, a["bwd_us"] + e.cpu_time_total, a["bwd_grads"] + grads
    return [_conv_row(shapes, a, steps) for shapes, a in acc.items()]


CONV_SUMS = ("fwd_calls", "fwd_us", "fwd_flops", "bwd_calls", "bwd_us", "bwd_grads")


def _inside_conv2d(e: Any) -> bool:
    """Whether a profiler event runs within an aten::conv2d event (its time is counted there)."""
    parent = e.cpu_parent
    while parent is not None:
        if parent.name == "aten::conv2d":
            return True
        parent = parent.cpu_parent
    return False


def _conv_row(shapes: tuple[str, str], a: dict[str, float], steps: int) -> dict[str, Any]:
    """One layer shape's sums as per-call figures; None where that pass was not seen."""
    fwd, bwd = a["fwd_calls"], a["bwd_calls"]
    flops = a["fwd_flops"] / fwd if fwd else None  # one forward call's
    grads = a["bwd_grads"] / bwd if bwd else None  # gradients one backward call computes
    return {
        "input": shapes[0], "weight": shapes[1], "calls_per_step": fwd / steps, "bwd_calls_per_step": bwd / steps,
        "fwd_flops": flops,
        "fwd_us": a["fwd_us"] / fwd if fwd else None, "fwd_gflops": flops * fwd / (a["fwd_us"] * 1e3) if flops else None,
        "bwd_us": a["bwd_us"] / bwd if bwd else None, "bwd_grads": grads,
        "bwd_gflops": grads * flops * bwd / (a["bwd_us"] * 1e3) if flops and grads else None,
    }  # fmt: skip


def profile_isolated(s: Setup, cfg: Config) -> dict[str, Any]:
    """`profile_auditor` in a process of its own, as the throughput rows run."""
    with closing_all([Isolated(s, cfg)]) as (p,):
        return p.profile()


def profile_lines(results: list[dict[str, Any]]) -> list[str]:
    """RESULTS.md lines: where (b)'s step time goes, per op group."""
    lines = []
    for r in results:
        # On CUDA the host's self time is launch and dispatch work; kernel time is not in it.
        host_only = " (host side: launches and dispatch, not GPU kernel time)" if r.get("device", "cpu") != "cpu" else ""
        lines += [f"**{r['model']}, {r['config']}** ({count(r['steps'], 'step')}, {count(r['threads'], 'thread')}, {r['wall_s']:.1f}s wall, "
                  f"{r['self_cpu_s']:.1f}s self CPU as the profiler counts it{host_only})", "",
                  "| category | share of self CPU |", "| --- | ---: |"]  # fmt: skip
        lines += [f"| {g} | {share * 100:.1f}% |" for g, share in r["groups"]]
        lines += ["", "| op | share | calls |", "| --- | ---: | ---: |"]
        lines += [f"| `{k}` | {share * 100:.1f}% | {n} |" for k, share, n in r["top_ops"]]
        lines += ["", *conv_lines(r.get("conv_layers") or [], r["steps"], r["self_cpu_s"])]
    return lines


def conv_lines(layers: list[dict[str, Any]], steps: int, self_cpu_s: float) -> list[str]:
    """RESULTS.md lines: each convolution shape's time and rate, and all of them against the step."""
    if not layers:
        return []
    lines = [
        ("Convolutions by shape, most time per step first: time per call under the profiler, including "
         "oneDNN's layout reorders and allocations; FLOPs as the profiler counts the forward (2 per "
         "multiply-add), and that count again for each gradient the backward computes (the batch itself "
         "needs none)."), "",
        ("| input (N, C, H, W) | weight (out, in, kh, kw) | calls per step | forward ms | forward GFLOP/s "
         "| backward ms | gradients | backward GFLOP/s |"), "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]  # fmt: skip
    for c in sorted(layers, key=lambda c: -sum(us for us, _ in _conv_passes(c))):
        cells = [_fmt(c["fwd_us"], 1e-3, ".2f"), _fmt(c["fwd_gflops"], 1, ".0f"), _fmt(c["bwd_us"], 1e-3, ".2f"),
                 _fmt(c["bwd_grads"], 1, "g"), _fmt(c["bwd_gflops"], 1, ".0f")]  # fmt: skip
        lines.append(f"| {c['input']} | {c['weight']} | {c['calls_per_step']:g} | {' | '.join(cells)} |")
    passes = [p for c in layers for p in _conv_passes(c)]
    us = sum(t for t, _ in passes)
    if not us:
        return [*lines, ""]
    share = us * steps / (self_cpu_s * 1e6)
    known = [(t, fl) for t, fl in passes if fl is not None and t]  # a backward whose forward was not seen: no FLOPs
    rate = f"{sum(fl for _, fl in known) / (sum(t for t, _ in known) * 1e3):.0f}" if known else "n/a"
    return [*lines, "", (f"All convolutions: {share:.0%} of the self CPU time, at {rate} GFLOP/s together; the "
                         f"other {1 - share:.0%} is batch norm, elementwise ops, data, the optimizer and Python."), ""]  # fmt: skip


def _conv_passes(c: dict[str, Any]) -> list[tuple[float, float | None]]:
    """(us per step, FLOPs per step or None where not known) of a shape's forward calls and of its
    backward calls (a report from before these were counted apart has as many of each)."""
    fwd, bwd, flops = c["calls_per_step"], c.get("bwd_calls_per_step", c["calls_per_step"]), c["fwd_flops"]
    return [(fwd * (c["fwd_us"] or 0), fwd * flops if flops else None),
            (bwd * (c["bwd_us"] or 0), bwd * flops * c["bwd_grads"] if flops and c["bwd_grads"] else None)]


def _fmt(value: float | None, scale: float, spec: str) -> str:
    """value x scale in format `spec`, or "n/a" where the profile had no such figure."""
    return format(value * scale, spec) if value is not None else "n/a"


# --- auditing overhead ------------------------------------------------------------------

# (epochs, device, data root) -> `auditor run` arguments
OVERHEAD_SPECS: dict[str, Callable[[int, str, Path], list[str]]] = {
    "smoke": lambda epochs, device, root: ["smoke", "--set", f"train.device={device}"],
    "subset-resnet20": lambda epochs, device, root: [
        str(REPO / "specs" / "resnet20_cifar10.yaml"), "--set", "name=bench-subset-resnet20",
        "--set", f"data.root={root}", "--set", "data.val_split=0", "--set", f"train.epochs={epochs}",
        "--set", "train.optimizer.weight_decay=5e-4", "--set", "train.schedule.name=cosine",
        "--set", "train.schedule.milestones=[]", "--set", f"train.device={device}", "--set", "seed=42",
    ],
}  # fmt: skip

# (module, function, phase) wrapped with timers in the breakdown child process.
PHASES = [
    ("auditor.repro", "enforce", "seeding + determinism flags"),
    ("auditor.runner", "load_data", "data loading"),
    ("auditor.runner", "prepare_dirs", "staging folders"),
    ("auditor.environment", "capture", "environment capture"),
    ("auditor.runner", "build_model", "model construction"),
    ("auditor.train", "build_loop", "loop build (data to device)"),
    ("auditor.train", "train_one_epoch", "training steps"),
    ("auditor.train", "evaluate", "per-epoch evaluation (selection split)"),
    ("auditor.train", "save_epoch_checkpoints", "checkpointing"),
    ("auditor.train", "save_step_checkpoint", "checkpointing"),
    # waiting for the background writer (before the next checkpoint, at the end of training);
    # the writes themselves overlap training steps, on a thread of their own
    ("auditor.checkpoint", "BackgroundWriter.wait", "checkpointing"),
    ("auditor.runner", "measure_run", "measurement (test acc, size, latency)"),
    ("auditor.runner", "assemble", "audit record"),
    ("auditor.runner", "write_run_files", "writing audit.json / csv"),
    ("auditor.render", "render_run", "rendering the sheet"),
    ("auditor.runner", "promote", "promoting staging folders"),
]


def phase_target(mod_name: str, attr: str) -> tuple[Any, str]:
    """(object holding it, attribute name) of a PHASES entry; "Class.method" names a method on its class."""
    import importlib

    owner: Any = importlib.import_module(mod_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    return owner, name


def exclusive_timer(totals: dict[str, float]) -> Callable[[Callable[..., Any], str], Callable[..., Any]]:
    """`wrap(fn, phase)`: fn, adding to `totals[phase]` its time less that of wrapped calls inside it."""
    stack: list[float] = []  # child time accumulated per open frame

    def wrap(fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                dt = time.perf_counter() - t0
                child = stack.pop()
                totals[phase] = totals.get(phase, 0.0) + dt - child
                if stack:
                    stack[-1] += dt

        return timed

    return wrap


def instrument_phases(wrap: Callable[[Callable[..., Any], str], Callable[..., Any]]) -> list[str]:
    """Replace each PHASES target by `wrap(target, phase)`; return the targets not found."""
    missing = []
    for mod_name, attr, phase in PHASES:
        owner, name = phase_target(mod_name, attr)
        if callable(getattr(owner, name, None)):
            setattr(owner, name, wrap(getattr(owner, name), phase))
        else:
            missing.append(f"{mod_name}.{attr}")
    return missing


def overhead_child(argv: list[str]) -> int:
    """`auditor run ARGV` in this process with timers around each stage (exclusive times).

    Writes `<--out>/bench_phases.json`. Used by `--overhead` for the breakdown only.
    """
    t_start = time.perf_counter()
    from auditor import cli

    t_imported = time.perf_counter()
    totals: dict[str, float] = {}
    missing = instrument_phases(exclusive_timer(totals))
    t0 = time.perf_counter()
    # torch imports torch._dynamo on first use of torch.optim or of
    # use_deterministic_algorithms (0.85-0.88 s on 2 cores in RESULTS.md): a cost any training script
    # pays, timed on its own here so the breakdown does not charge it to a stage.
    import torch._dynamo  # noqa: F401

    totals[TORCH_LAZY] = time.perf_counter() - t0
    code = cli.main(argv)
    t_main = time.perf_counter() - t0
    out = Path(argv[argv.index("--out") + 1])
    if not out.is_dir():  # refused before it made its --out
        return code
    (out / "bench_phases.json").write_text(json.dumps({
        "phases": totals, "main_s": t_main, "import_s": t_imported - t_start, "missing": missing, "exit": code,
    }, indent=2))  # fmt: skip
    return code  # a run that failed (2: bad input, a crash) gives no breakdown


def _read_audit(out: Path) -> dict[str, Any]:
    found = sorted(out.glob("reports/*/audit.json"))
    if not found:
        raise RuntimeError(f"no audit.json under {out}")
    return json.loads(found[0].read_text())


@dataclass
class Quiet:
    """How long to wait for other processes before a measurement, and what counts as quiet."""

    share: float = 0.05
    wait_s: float = 120.0


def run_command(args: list[str], cwd: Path, log: Callable[[str], None], quiet: Quiet) -> tuple[float, subprocess.CompletedProcess, float]:
    """(wall seconds, the finished process, other processes' CPU share meanwhile)."""
    wait_for_quiet(quiet.share, quiet.wait_s, log)
    log("    $ " + shlex.join(args))
    meter = ForeignCpu()
    meter.start()
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, check=False, capture_output=True, text=True, timeout=7200)
    return time.perf_counter() - t0, proc, meter.stop()


# `auditor run` as `python -m auditor run` runs it (auditor.cli.main), timed from main's call to
# its return: the in-process time, which `run.wall_time_s` is not (the run records it before it
# writes audit.json, renders the sheet and promotes its folders). torch and the stages' modules
# are imported first, as the breakdown's child imports them to wrap their functions: python
# start-up and imports are the whole command's, not in-process.
# argv: [-c, TIMING_JSON, *ARGS].
TIMED_MAIN = """import json, sys, time
import torch
import auditor.render, auditor.runner
from auditor import cli
t0 = time.perf_counter()
code = cli.main(sys.argv[2:])
open(sys.argv[1], "w").write(json.dumps({"main_s": time.perf_counter() - t0}))
sys.exit(code)
"""


def overhead_command(args: list[str]) -> str:
    """The `auditor run` an overhead row times, as RESULTS.md records it (its --out a temporary folder)."""
    return shlex.join([sys.executable, "-m", "auditor", "run", *args, "--out", "<tmp>"])


def overhead_one(name: str, args: list[str], breakdown: bool, log: Callable[[str], None], quiet: Quiet) -> dict[str, Any]:
    """Time `auditor run` (its main, as `python -m auditor run` calls it) in a subprocess;
    optionally a second, instrumented run."""
    with tempfile.TemporaryDirectory(prefix="auditor-bench-") as tmp:
        out, timing = Path(tmp) / "plain", Path(tmp) / "main_s.json"
        cmd = [sys.executable, "-c", TIMED_MAIN, str(timing), "run", *args, "--out", str(out)]
        load0 = loadavg()
        proc_s, proc, busy = run_command(cmd, Path(tmp), log, quiet)
        if proc.returncode not in (0, 1):  # 1 = a criterion failed; the run itself finished
            raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        if not timing.is_file():  # main raised (a traceback exits 1, as a failed criterion does)
            raise RuntimeError(f"{name}: exit {proc.returncode} before main returned\n{proc.stderr[-2000:]}")
        audit = _read_audit(out)
        wall, train = audit["run"]["wall_time_s"], audit["training"]["train_time_s"]
        main_s = json.loads(timing.read_text())["main_s"]
        res = {
            "name": name, "command": overhead_command(args),
            "exit": proc.returncode, "process_wall_s": proc_s, "main_s": main_s, "run_wall_time_s": wall,
            "train_time_s": train, "measure_time_s": audit["run"].get("measure_time_s"),
            "epochs": audit["training"].get("epochs_run"), "images_per_s": audit["training"].get("images_per_s"),
            "overhead_in_process": (main_s - train) / main_s, "overhead_whole_command": (proc_s - train) / proc_s,
            "startup_and_imports_s": proc_s - main_s, "loadavg_before": load0, "loadavg_after": loadavg(),
            "foreign_cpu": busy,
        }  # fmt: skip
        if breakdown:
            out2 = Path(tmp) / "instrumented"
            cmd2 = [sys.executable, str(Path(__file__).resolve()), "--overhead-child", "run", *args, "--out", str(out2)]
            proc2_s, proc2, busy2 = run_command(cmd2, Path(tmp), log, quiet)
            if proc2.returncode in (0, 1) and (out2 / "bench_phases.json").is_file():  # 1: a criterion failed
                ph = json.loads((out2 / "bench_phases.json").read_text())
                ph["process_wall_s"], ph["foreign_cpu"] = proc2_s, busy2
                ph["unattributed_s"] = ph["main_s"] - sum(ph["phases"].values())
                res["breakdown"] = ph
            else:
                res["breakdown_error"] = proc2.stderr[-1000:]
    return res


def overhead(
    epochs: int, breakdown: bool, log: Callable[[str], None], quiet: Quiet | None = None,
    device: str = "cpu", root: Path | None = SUBSET,
) -> list[dict[str, Any]]:  # fmt: skip
    """`auditor run` of the smoke and subset specs on `device` in child processes, with the time
    outside training steps; the subset run reads `root` (None: --synthetic, skipped)."""
    out = []
    for name, make_args in OVERHEAD_SPECS.items():
        if name.startswith("subset") and (root is None or not (root / "cifar-10-batches-py").is_dir()):
            log(f"  {name}: skipped ({'--synthetic' if root is None else f'no CIFAR-10 subset at {root}'})")
            continue
        log(f"  overhead: {name}")
        args = make_args(epochs, device, root or SUBSET)
        try:
            res = overhead_one(name, args, breakdown, log, quiet or Quiet())
        except RuntimeError as exc:  # the run failed: said in its row, and the bench exits EXIT_PARTIAL
            log(f"  {name}: FAILED ({str(exc).splitlines()[0]})")
            res = {"name": name, "failed": str(exc), "command": overhead_command(args)}
        out.append({**res, "device": device})
    return out


def overhead_lines(results: list[dict[str, Any]]) -> list[str]:
    """RESULTS.md lines: the overhead table and, where measured, the per-phase breakdowns."""
    lines = [
        "| run | epochs | whole command s | in-process s (auditor's main) | `run.wall_time_s` (before audit.json and the sheet) | training steps s | measure s | overhead in-process | overhead whole command | other processes' CPU share |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['name']} | failed: {r['failed'].splitlines()[0]} |" + " |" * 8)
            continue
        # Reports saved before main was timed: their in-process overhead is of run.wall_time_s.
        main_s = f"{r['main_s']:.1f}" if "main_s" in r else "not measured"
        lines.append(
            f"| {r['name']} | {r['epochs']} | {r['process_wall_s']:.1f} | {main_s} | {r['run_wall_time_s']:.1f} | {r['train_time_s']:.1f} "
            f"| {r['measure_time_s']:.2f} | {r['overhead_in_process'] * 100:.1f}% | {r['overhead_whole_command'] * 100:.1f}% "
            f"| {_share(r['foreign_cpu'])} |"
        )
    for r in results:
        b = r.get("breakdown")
        if not b:
            continue
        lines += ["", f"Breakdown of `{r['name']}` (instrumented second run, exclusive seconds; whole command "
                      f"{b['process_wall_s']:.1f}s, of which python start-up + imports "
                      f"{b['process_wall_s'] - b['main_s']:.1f}s; other processes used {_share(b.get('foreign_cpu') or 0.0)} "
                      f"of the CPU meanwhile):", "",
                  "| phase | s | share of whole command |", "| --- | ---: | ---: |"]  # fmt: skip
        items = sorted(b["phases"].items(), key=lambda kv: -kv[1])
        items.append(("python start-up + imports", b["process_wall_s"] - b["main_s"]))
        items.append(("unattributed (CLI, spec, logging, glue)", b["unattributed_s"]))
        for phase, sec in items:
            lines.append(f"| {phase} | {sec:.2f} | {sec / b['process_wall_s'] * 100:.1f}% |")
        a = auditing_only(b)
        lines += ["", f"Excluding the per-epoch evaluation (model selection) and torch's lazy import of torch._dynamo "
                      f"(a conventional script pays both too), "
                      f"the auditing overhead of this run is {a['in_process'] * 100:.1f}% in-process and "
                      f"{a['whole_command'] * 100:.1f}% of the whole command."]  # fmt: skip
    return lines


NOT_AUDITING = ("training steps", "per-epoch evaluation (selection split)", "torch's lazy import of torch._dynamo")
TORCH_LAZY = NOT_AUDITING[2]


def auditing_only(b: dict[str, Any]) -> dict[str, float]:
    """Share of the instrumented run outside training, per-epoch evaluation and torch's own lazy import."""
    ph = b["phases"]
    work = sum(ph.get(k, 0.0) for k in NOT_AUDITING)
    return {
        "in_process": (b["main_s"] - work) / b["main_s"],
        "whole_command": (b["process_wall_s"] - work) / b["process_wall_s"],
    }


# --- latency method check -----------------------------------------------------------


def latency_check(model_name: str, device: torch.device, device_name: str, rounds: int,
                  quiet: Quiet | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """auditor.measure.latency with the spec's defaults vs torch.utils.benchmark's blocked_autorange,
    interleaved round by round (the auditor's method first in each)."""
    from torch.utils import benchmark

    from auditor.measure import latency
    from auditor.spec import Latency

    spec, channels_last = Latency(), TrainSpec().channels_last  # what a default run's sheet measures
    iters, warmup = spec.iters, spec.warmup
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = init_model(model_name, device).to(memory_format=fmt).eval()
    x = torch.randn(1, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    ours, theirs, busy = [], [], []
    quiet = quiet or Quiet()
    meter = ForeignCpu()
    for _ in range(rounds):
        wait_for_quiet(quiet.share, quiet.wait_s, log)
        meter.start()
        r = latency(model, spec, device, channels_last, device_name)
        ours.append(r.median_ms)
        # On CUDA each call waits for its result, as measure.latency's synchronised samples do; without
        # it, blocked_autorange (synchronised per block) would time calls queued behind each other.
        stmt = "model(x); torch.cuda.synchronize(device)" if device.type == "cuda" else "model(x)"
        timer = benchmark.Timer(stmt=stmt, globals={"model": model, "x": x, "torch": torch, "device": device},
                                num_threads=torch.get_num_threads())  # fmt: skip
        with torch.inference_mode():
            m = timer.blocked_autorange(min_run_time=max(1.0, r.median_ms * iters / 1e3))
        theirs.append(m.median * 1e3)
        busy.append(meter.stop())
    a, b = statistics.median(ours), statistics.median(theirs)
    return {
        "model": model_name, "device": str(device), "threads": torch.get_num_threads(), "batch_size": 1,
        "auditor_median_ms": a, "benchmark_median_ms": b, "relative_diff": (a - b) / b,
        "auditor_rounds_ms": ours, "benchmark_rounds_ms": theirs, "iters": iters, "warmup": warmup,
        "channels_last": channels_last,
        "loadavg": loadavg(), "foreign_cpu": busy,
    }  # fmt: skip


def latency_lines(results: list[dict[str, Any]]) -> list[str]:
    """RESULTS.md lines: the sheet's latency method against torch.utils.benchmark."""
    lines = [
        "| model | device | threads | memory format | `auditor.measure.latency` (warm-up + timed iterations) median ms | `benchmark.Timer.blocked_autorange` median ms | relative difference | rounds | other processes' CPU share (max) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        fmt = "channels_last" if r.get("channels_last") else "contiguous"
        lines.append(
            f"| {r['model']} | {r['device']} | {r['threads']} | {fmt} | ({r['warmup']} + {r['iters']}) {r['auditor_median_ms']:.3f} "
            f"| {r['benchmark_median_ms']:.3f} "
            f"| {r['relative_diff'] * 100:+.1f}% | {len(r['auditor_rounds_ms'])} | {_share(_largest(r['foreign_cpu']))} |"
        )
    return lines


# --- targets ------------------------------------------------------------------------


def _verdict(ok: bool, share: float = 0.0, quiet: float = 1.0) -> str:
    """'met' / 'NOT met', or, where other processes used more than `quiet` of the CPU during the
    repeats kept (`share`, still so after the retries), no verdict: the figures are disturbed."""
    said = "met" if ok else "NOT met"
    if math.isnan(share):  # /proc/stat unreadable: whether it was quiet is not known
        return f"{said} (other processes' share of the CPU could not be read: whether the machine was quiet is unknown)"
    if share <= quiet:
        return said
    return (f"not judged: other processes used up to {share:.0%} of the CPU meanwhile (as measured: {said}); "
            "rerun on a quiet machine")


def _pct(value: float, target: float) -> str:
    """A signed percentage, with as many decimals as it takes to show which side of `target` (at most) it is on."""
    return _deciding_text(value, lambda v: v <= target, 100, "%", 1, "+")


def _deciding_text(value: float, meets: Callable[[float], bool], scale: float, unit: str, first: int,
                   sign: str = "") -> str:
    """`value` times `scale`, with `unit`, to the fewest decimals (`first` to 6) whose reading meets the
    target (`meets`) as `value` does; past 6, every digit the float holds."""
    for digits in range(first, 7):
        text = f"{value * scale:{sign}.{digits}f}"
        if meets(float(text) / scale) == meets(value):
            return text + unit
    return f"{value * scale:{sign}}{unit}"


def _times(value: float, target: float) -> str:
    """A ratio such as '1.62x', with as many decimals (2 to 6) as it takes to show which side of
    `target` it is on (a user test: "1.50x (target >= 1.5x ...): NOT met" for a ratio of 1.496)."""
    return _deciding_text(value, lambda v: v >= target, 1, "x", 2)


def _few(st: dict[str, Any], steps: int, label: str = "") -> str:
    """A caveat on a verdict drawn from fewer than 3 repeats (an unmeasured spread), of the row
    `label` names where given."""
    said = f"from {count(st['n'], 'repeat')} of {count(steps, 'step')}: indicative only"
    return "" if st["n"] >= 3 else f" ({label}: {said})" if label else f" ({said})"


def _within_spread(x: dict[str, Any], y: dict[str, Any], target: float, shown: Callable[[float], str]) -> str:
    """A caveat on a verdict on the ratio of rows x and y (images/s medians) against `target`, where
    the target lies within what their interquartile ranges give (x's q1 over y's q3 to x's q3 over
    y's q1): the verdict could go either way on these repeats (a user test: "+6.1% ... NOT met" from
    rows whose ranges overlapped). `shown` writes a ratio as the verdict does."""
    sx, sy = x["images_per_s"], y["images_per_s"]
    if sx["n"] < 3 or sy["n"] < 3 or min(sy["q1"], sy["q3"]) <= 0:
        return ""  # `_few` says so
    low, high = sx["q1"] / sy["q3"], sx["q3"] / sy["q1"]
    if not low < target < high:
        return ""
    return f" (within the repeats' spread: their interquartile ranges give {shown(low)} to {shown(high)}; indicative only)"


def _few_rows(first: dict[str, Any], *others: dict[str, Any] | None) -> str:
    """The caveats of a verdict comparing rows: `first`'s, then each of `others` that ran fewer than
    3 repeats (--max-repeat-s can cut any row to one), named."""
    return _few(first["images_per_s"], first["steps"]) + "".join(
        _few(r["images_per_s"], r["steps"], r["label"]) for r in others if r)


# The issue's targets; the report compares with them and never asserts them.
TARGETS = MappingProxyType({
    "speedup": 1.5, "speedup_aim": 2.0,  # auditor path / conventional, training images/s
    "determinism_overhead": 0.05,  # images/s lost to determinism on vs off
    "auditing_overhead": 0.03, "overhead_epochs": 8,  # share of an 8-epoch subset run's wall time
    "latency_within": 0.10,  # |auditor latency / torch.utils.benchmark - 1|
})  # fmt: skip


# The speed-up and determinism-overhead targets are set for the CPU; CUDA's are others (no per-step
# host sync: bench/sync_check.py; the fast preset's goal: its criteria), so CUDA rows are reported only.
CPU_ONLY = "the {} target is set for the CPU; on CUDA reported, not judged"


def targets_lines(report: dict[str, Any]) -> list[str]:
    """The figures measured in this invocation against the project's targets (reported, never asserted)."""
    lines = [line for res in report.get("throughput", []) for line in _throughput_targets(res)]
    quiet = report.get("quiet", Quiet.share)  # --quiet-threshold (reports saved before it was: the default)
    lines += [line for r in report.get("overhead", []) if r["name"].startswith("subset") and "failed" not in r
              for line in _overhead_targets(r, quiet)]  # fmt: skip
    lines += [
        f"- latency method vs torch.utils.benchmark, {r['model']} on {r['device']}: "
        f"{r['relative_diff'] * 100:+.1f}% (target within {TARGETS['latency_within']:.0%}): "
        f"{_verdict(abs(r['relative_diff']) <= TARGETS['latency_within'], _largest(r['foreign_cpu']), quiet)}"
        + ("" if len(r.get("auditor_rounds_ms", [0] * 3)) >= 3 else
           f" (from {count(len(r['auditor_rounds_ms']), 'round')}: its spread is unmeasured, indicative only)")
        for r in report.get("latency", [])
    ]
    return lines


def _busy(*rows: dict[str, Any] | None) -> float:
    """The largest share of the CPU other processes used during the repeats kept of `rows`; NaN
    when any of them could not be read."""
    return _largest([v for r in rows if r for v in r["foreign_cpu"]])


def _share(value: float) -> str:
    """Other processes' share of the CPU as a percentage; "unread" where /proc/stat could not be read (NaN)."""
    return "unread" if math.isnan(value) else f"{value:.0%}"


def _largest(shares: list[float]) -> float:
    """max(shares), NaN as soon as one is NaN (max() would keep or drop it by its place), 0 for none."""
    return math.nan if any(math.isnan(v) for v in shares) else max(shares, default=0.0)


def shares_apart(a: float, b: float) -> tuple[str, str]:
    """`a` and `b` as percentages, with as many decimals (0 to 2) as tell two that differ apart (a
    user test: "needs 9%; the default reaches 9%" where it needed 9.3% and reached 9.0%)."""
    digits = next((d for d in (0, 1) if f"{a:.{d}%}" != f"{b:.{d}%}"), 2)
    return f"{a:.{digits}%}", f"{b:.{digits}%}"


def _throughput_targets(res: dict[str, Any]) -> list[str]:
    lines, t = [], TARGETS
    on_cpu = torch.device(res["device"]).type == "cpu"  # "cpu:0" too
    rows = {r["label"]: r for r in res["rows"] if "failed" not in r}
    tag = f"{res['model']}, {res['device']}, {count(res['torch_threads'], 'thread')}, batch {res['batch_size']}"
    b = rows.get(DEFAULT_CONFIG.label)
    if b and b["ratio_to_a"] is None:
        lines.append(f"- auditor path vs conventional, {tag}: not measured ((a) failed)")
    elif b:
        judged = (f"(target >= {t['speedup']}x, aim {t['speedup_aim']:g}x): "
                  f"{_verdict(b['ratio_to_a'] >= t['speedup'], _busy(b, rows.get(ConventionalPipeline.label)), res['quiet'])}"
                  if on_cpu else f"({CPU_ONLY.format('>= ' + str(t['speedup']) + 'x')})")  # fmt: skip
        c, a = res.get("ceiling"), rows.get(ConventionalPipeline.label)
        spread = _within_spread(b, a, t["speedup"], lambda r: _times(r, t["speedup"])) if on_cpu and a else ""
        lines.append(f"- auditor path (spec defaults, determinism on) vs conventional, {tag}: "
                     f"{_times(b['ratio_to_a'], t['speedup'])} {judged}{spread}{_few_rows(b, a)}")  # fmt: skip
        if on_cpu and c and a and ceiling_exceeded(res) is None:  # a rate the pipelines beat bounds nothing
            need, reach = shares_apart(t["speedup"] * a["images_per_s"]["median"] / c["ceiling_images_per_s"],
                                       b["images_per_s"]["median"] / c["ceiling_images_per_s"])  # fmt: skip
            lines.append(f"  - {t['speedup']}x needs {need} of the fp32 GEMM-peak ceiling; the default reaches {reach}")
    det = [r for r in rows.values() if r["config"] and r["config"]["determinism"]
           and r.get("determinism", {}).get("bitwise") and r["ratio_to_a"] is not None]  # fmt: skip
    if len(det) > 1:
        lines += _fastest_bitwise(det, rows, tag, res["quiet"])
    off = rows.get("determinism off")
    if b and off:
        cost = off["images_per_s"]["median"] / b["images_per_s"]["median"] - 1
        judged = (f"target <= {t['determinism_overhead']:.0%}): "
                  f"{_verdict(cost <= t['determinism_overhead'], _busy(b, off), res['quiet'])}"
                  if on_cpu else f"{CPU_ONLY.format('<= ' + format(t['determinism_overhead'], '.0%'))})")  # fmt: skip
        spread = _within_spread(off, b, 1 + t["determinism_overhead"], lambda r: _pct(r - 1, t["determinism_overhead"])) if on_cpu else ""
        lines.append(f"- determinism overhead, {tag}: {_pct(cost, t['determinism_overhead'])} (determinism off vs on; "
                     f"{judged}{spread}{_few_rows(b, off)}")  # fmt: skip
    return lines


def _reduced_precision(row: dict[str, Any]) -> str | None:
    """The autocast dtype of a row that computes in reduced precision, which its bitwise twin
    runs do not show; None for fp32. (Other rows' bits differ from the default's too, as any
    reordering of float sums does, at fp32's precision.)"""
    amp = row["config"].get("amp", "off")
    return None if amp == "off" else amp


def _fastest_bitwise(det: list[dict[str, Any]], rows: dict[str, Any], tag: str, quiet: float) -> list[str]:
    """The fastest of the rows whose twin runs matched bit for bit, and, where that one computes
    in reduced precision, the fastest that computes in fp32 as well."""
    best = max(det, key=lambda r: r["ratio_to_a"])
    busy = _busy(best, rows.get(ConventionalPipeline.label), rows.get(DEFAULT_CONFIG.label))
    amp = _reduced_precision(best)
    lines = [f"- fastest configuration that stayed bitwise deterministic, {tag}: {_ratios(best)}"
             + (f" ({amp} autocast: bitwise from run to run, in reduced precision)" if amp else "")
             + (f" (other processes used up to {busy:.0%} of the CPU meanwhile: indicative only)" if busy > quiet else "")
             + _few(best["images_per_s"], best["steps"])]  # fmt: skip
    fp32 = [r for r in det if _reduced_precision(r) is None]
    if amp and fp32:
        top = max(fp32, key=lambda r: r["ratio_to_a"])
        lines.append(f"  - the fastest of them in fp32: {_ratios(top)}{_few(top['images_per_s'], top['steps'])}")
    return lines


def _ratios(row: dict[str, Any]) -> str:
    """'<label>, 1.62x the conventional pipeline, 1.08x the default'."""
    return f"{row['label']}, {row['ratio_to_a']:.2f}x the conventional pipeline, {row['ratio_to_default_b']:.2f}x the default"


def _overhead_targets(r: dict[str, Any], quiet: float) -> list[str]:
    t = TARGETS
    epochs = t["overhead_epochs"]
    note = "" if r["epochs"] == epochs else f" (run with {count(r['epochs'], 'epoch')}; the target is for {epochs})"
    verdict = _verdict(r["overhead_in_process"] <= t["auditing_overhead"], _largest([r.get("foreign_cpu") or 0.0]), quiet)
    if "main_s" not in r:  # a report saved before main was timed
        note += " (in-process of `run.wall_time_s`, which leaves out writing audit.json and the sheet)"
    lines = [f"- auditing overhead, resnet20 subset run{note}: {r['overhead_in_process'] * 100:.1f}% in-process, "
             f"{r['overhead_whole_command'] * 100:.1f}% of the whole command (target <= {t['auditing_overhead']:.0%}, "
             f"in-process): {verdict}"]  # fmt: skip
    if r.get("breakdown"):
        a, busy = auditing_only(r["breakdown"]), r["breakdown"].get("foreign_cpu") or 0.0
        lines.append(f"  - excluding per-epoch evaluation (model selection) and torch's lazy torch._dynamo import "
                     f"(a second, instrumented run): {a['in_process'] * 100:.1f}% in-process, "
                     f"{a['whole_command'] * 100:.1f}% whole command (in-process): "
                     f"{_verdict(a['in_process'] <= t['auditing_overhead'], _largest([busy]), quiet)}"
                     + (" (more than the whole figure above, which it is a part of: the second run went otherwise, "
                        "e.g. on a busier machine; the two are not comparable here)"
                        if a["in_process"] > r["overhead_in_process"] else ""))  # fmt: skip
    return lines


# --- RESULTS.md ----------------------------------------------------------------------


RESULTS_TITLE = "# Throughput benchmark results"
RESULTS_INTRO = (
    "Generated by `bench/throughput.py` (see bench/README.md for the method). Each run below "
    "comes from one invocation; the figures are printed by the script, never estimated. "
    "Lines of the form '- target: met / NOT met' are computed from the figures of that run."
)


def code_line(m: dict[str, Any]) -> list[str]:
    """The measured code's version and commit (reports from before they were recorded have none)."""
    if "git_commit" not in m:
        return []
    commit = m["git_commit"] or "unknown (not a git checkout)"
    dirty = " with uncommitted changes" if m["git_dirty"] else ""
    return [f"- Code: auditor {m['auditor']}, commit {commit}{dirty}"]


def gpu_label(m: dict[str, Any]) -> str:
    """GPU name, with the driver where the report recorded one."""
    return m["gpu"] + (f", driver {m['gpu_driver']}" if m.get("gpu_driver") else "")


def machine_lines(report: dict[str, Any]) -> list[str]:
    """A run's heading, command and the machine it measured."""
    m = report["machine"]
    cuda = m["cuda_available"] and report["device"].startswith("cuda")
    out = [
        f"## Run of {m['date_utc']}", "",
        "```", report["command"], "```", "",
        f"- CPU: {m['cpu_model']} ({m['cpu_count']} logical cores); torch {m['torch']}, "
        f"{m['torch_threads']} intra-op threads by default, {m['torch_interop_threads']} inter-op threads, "
        f"oneDNN {m['mkldnn']}",
        f"- OS: {m['os']}; Python {m['python']}",
        *code_line(m),
        f"- Device benchmarked: {report['device']}" + (f" ({gpu_label(m)})" if m["gpu"] else ""),
        f"- Load average (1, 5, 15 min) at start: {m['loadavg_start']}; at end: {report.get('loadavg_end')}",
    ]  # fmt: skip
    if not cuda:
        out.append(
            "- **No GPU was available: CUDA figures were not measured.** Nothing here is a GPU "
            "estimate; rerun with `--device cuda` on a GPU machine."
            if not m["cuda_available"] else
            "- CUDA is available on this machine but this run benchmarked the CPU: no CUDA figures here."
        )  # fmt: skip
    out.append(f"- CPU has native bf16 instructions (avx512_bf16 / amx_bf16) that oneDNN may use: {m['cpu_bf16_native']}")
    return [*out, *cpu_share_lines(m), ""]


def cpu_share_lines(m: dict[str, Any]) -> list[str]:
    """The CPUs the bench could use, and a warning when torch ran more threads than those
    (reports saved before these were recorded: nothing)."""
    if "cpu_affinity" not in m:
        return []
    note = oversubscription_note(m["torch_threads"], m["cpu_affinity"], m["cpu_quota"])
    return [f"- CPUs this process could use: {cpus_text(m['cpu_affinity'], m['cpu_quota'])}",
            *([f"- **Warning:** {note}"] if note else [])]


def section_threads_note(res: dict[str, Any], m: dict[str, Any]) -> str | None:
    """`oversubscription_note` for a CPU section run at a `--threads` count other than torch's
    default, which the machine's line judges (reports saved before the CPUs were recorded: None)."""
    if ("cpu_affinity" not in m or not str(res.get("device", "cpu")).startswith("cpu")
            or res["torch_threads"] == m["torch_threads"]):  # fmt: skip
        return None
    return oversubscription_note(res["torch_threads"], m["cpu_affinity"], m["cpu_quota"],
                                 slows="slows these steps and lowers this section's figures",
                                 remedy="pass --threads {n} or fewer")  # fmt: skip


def _single_repeats(res: dict[str, Any]) -> str:
    """Which rows ran once: one of their steps took longer than --max-repeat-s allows a repeat."""
    once = [r["label"] for r in res["rows"] if "failed" not in r and r["images_per_s"]["n"] < res["repeats"]]
    return f" (once for {', '.join(once)}: one step exceeded {res['max_repeat_s']:g}s)" if once else ""


def throughput_section(res: dict[str, Any], m: dict[str, Any]) -> list[str]:
    """One throughput section (`m`: the run's machine): how it was timed, its table and the fp32 ceiling."""
    note = section_threads_note(res, m)
    return [
        f"### Training throughput: {res['model']}, batch {res['batch_size']}, {res['device']}, "
        f"{count(res['torch_threads'], 'torch thread')}", "",
        *([f"**Warning:** {note}", ""] if note else []),
        f"Up to {count(res['steps'], 'timed step')} per repeat (fewer where one repeat would exceed "
        f"{res['max_repeat_s']:g}s), {count(res['repeats'], 'repeat')} in alternating order{_single_repeats(res)}, after {res['warmup_steps']} + 1 "
        f"untimed warm-up steps per pipeline (at least 2 for a slow configuration), plus 1 untimed step per repeat "
        f"for (a)'s fresh DataLoader iterator; a repeat during which other processes used more than "
        f"{res['quiet']:.0%} of the CPU {_disturbed_kept(res['retries'])}; "
        f"DataLoader num_workers={res['workers']}; data: {res['data']}; "
        f"load average before {res['loadavg_before']}, after {res['loadavg_after']}.", "",
        *throughput_table(res), "", *ceiling_lines(res), "",
    ]  # fmt: skip


def _disturbed_kept(retries: int) -> str:
    """What became of a disturbed repeat, with --retries `retries`."""
    if retries == 0:
        return "was kept, not rerun (--retries 0)"
    return f"was discarded and rerun (at most {count(retries, 'time')}, then kept)"


def results_markdown(report: dict[str, Any]) -> str:
    """One run as a Markdown block (level-2 heading per run, level-3 per section)."""
    out = machine_lines(report)
    if report.get("notes"):
        out += [*[f"- NOTE: {n}" for n in report["notes"]], ""]
    if (targets := targets_lines(report)):
        out += ["### Against the targets", "", *targets, ""]
    for res in report.get("throughput", []):
        out += throughput_section(res, report["machine"])
    if report.get("profile"):
        out += ["### Where the auditor path's time goes (torch.profiler)", "", *profile_lines(report["profile"])]
    if report.get("overhead"):
        where = "".join(sorted({f", on {r['device']}" for r in report["overhead"] if r.get("device")}))
        out += [f"### Auditing overhead (`auditor run` time outside training steps{where})", "",
                *overhead_lines(report["overhead"]), "",
                "Commands: " + "; ".join(f"`{r['command']}`" for r in report["overhead"]), ""]  # fmt: skip
    if report.get("latency"):
        out += ["### Latency method check (batch 1, fp32, eval)", "", *latency_lines(report["latency"]), ""]
    return "\n".join(out) + "\n"


def write_results(reports: list[dict[str, Any]], path: Path = RESULTS_MD, append: bool = False) -> None:
    """Write the runs to `path` (replacing it), or append them below the runs already there; through
    a link, to its target (the link is left a link)."""
    path = Path(os.path.realpath(path))
    held = path.read_text(encoding="utf-8").rstrip("\n") if append and path.is_file() else ""
    # An empty file is taken, and given the title (a user test: appended to, it had none, and was then refused).
    text = held + "\n\n" if held.strip() else f"{RESULTS_TITLE}\n\n{RESULTS_INTRO}\n\n"
    body = "\n".join(results_markdown(r) for r in reports)  # first: a report it cannot render leaves the file alone
    atomic_write_bytes(path, (text + body).encode())


# --- CLI ----------------------------------------------------------------------------


def at_least(kind: Callable[[str], Any], minimum: float, strict: bool = False) -> Callable[[str], Any]:
    """An argparse type: `kind(text)`, at least `minimum` (above it when `strict`); argparse turns
    the ValueError into a usage message and exit code 2."""
    def parse(text: str) -> Any:
        value = kind(text)
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise ValueError(text)  # nan and inf too: they would break the arithmetic after measuring
        return value

    parse.__name__ = f"{kind.__name__} {'>' if strict else '>='} {minimum:g}"  # argparse's name for the type
    return parse


def cpu_share(text: str) -> float:
    """An argparse type: a share of the CPU, 0 <= x < 1 (1 would call a fully busy machine quiet)."""
    x = at_least(float, 0)(text)
    if x >= 1:
        raise ValueError(f"{text} is not below 1")
    return x


cpu_share.__name__ = "share of the CPU in [0, 1)"  # argparse's name for the type


def _file(text: str) -> Path:
    """A file argument with `~` expanded, as --data-root's is."""
    try:
        return home_expanded(given_path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_timing_options(p: argparse.ArgumentParser) -> None:
    """How each throughput section is timed: steps, repeats, quiet-machine rules, batch, threads."""
    p.add_argument("--steps", type=at_least(int, 1), default=None, help="timed steps per repeat (default: resnet20 20, resnet18 4; on CUDA every full batch of one epoch)")
    p.add_argument("--repeats", type=at_least(int, 1), default=None, help=f"timed repeats (default: resnet20 5, resnet18 3; on CUDA {CUDA_REPEATS})")
    p.add_argument("--warmup", type=at_least(int, 1), default=2,
                   help="untimed warm-up steps per pipeline before timing (at least 1: oneDNN builds its kernels then; default %(default)s)")
    p.add_argument("--max-repeat-s", type=at_least(float, 0, strict=True), default=30.0,
                   help="cap one timed repeat of a configuration at about this many seconds (fewer steps; default %(default)g)")
    p.add_argument("--quiet-threshold", type=cpu_share, default=0.05,
                   help="discard and rerun a repeat during which other processes used more than this share of the CPU (default %(default)g)")
    p.add_argument("--retries", type=at_least(int, 0), default=2, help="reruns of a disturbed repeat before it is kept anyway (default %(default)s)")
    p.add_argument("--wait-quiet-s", type=at_least(float, 0), default=120.0,
                   help="before a rerun, an overhead run or a latency round, wait up to this long (s) for other processes to stop (default %(default)g)")
    p.add_argument("--batch-size", type=at_least(int, 1), default=128, help="images per training step (default %(default)s)")
    p.add_argument("--workers", type=at_least(int, 0), default=None, help=f"DataLoader workers for (a) (default: 2, or the CPUs this process may run on where fewer; here {default_workers()})")
    p.add_argument("--threads", type=at_least(int, 1), nargs="+", default=None,
                   help="torch.set_num_threads value(s); each gets its own throughput section (default: torch's)")


def add_section_options(p: argparse.ArgumentParser) -> None:
    """The sections besides throughput: toggle matrix, overhead, profile, latency check."""
    p.add_argument("--matrix", action="store_true", help="toggle matrix for (b), with bitwise determinism checks")
    p.add_argument("--diagnostics", action="store_true", help="matrix: also foreach SGD and oneDNN off")
    p.add_argument("--rows", nargs="+", default=None, metavar="LABEL",
                   help='matrix: only these rows besides the default, e.g. --rows "determinism off"')
    p.add_argument("--det-steps", type=at_least(int, 2), default=3,
                   help="steps of each twin run in the determinism checks (at least 2: the second step uses the first's update; default %(default)s)")
    p.add_argument("--overhead", action="store_true", help="auditing overhead of `auditor run` (smoke, subset)")
    p.add_argument("--overhead-epochs", type=at_least(int, 1), default=8, help="epochs of the subset overhead run (default %(default)s)")
    p.add_argument("--no-breakdown", action="store_true", help="overhead: skip the instrumented second run")
    p.add_argument("--profile", action="store_true", help="torch.profiler over a few steps of (b): where its time goes")
    p.add_argument("--latency-check", action="store_true", help="auditor.measure.latency vs torch.utils.benchmark")
    p.add_argument("--latency-rounds", type=at_least(int, 1), default=5, help="alternating rounds of the two latency methods (default %(default)s)")
    p.add_argument("--all", action="store_true", help="--matrix --profile --overhead --latency-check")


def _folder(text: str) -> Path:
    """A folder argument, `~` expanded and made absolute (the overhead's runs work elsewhere)."""
    try:
        return resolved_folder(given_path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; bad values exit 2 through argparse before anything is measured."""
    # No abbreviations: which options were given is read from the words themselves (given_options).
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--model", nargs="+", default=None, choices=list_models(), metavar="MODEL",
                   help="model name(s) (default resnet20; --all: resnet20 resnet18)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--data-root", type=_folder, default=None,  # the overhead runs elsewhere
                   help=(f"folder holding cifar-10-batches-py/ (default: $AUDITOR_CIFAR10_SUBSET, else "
                         f"../shared/data/cifar10-subset beside the checkout: here {SUBSET}, when present; else synthetic)"))
    p.add_argument("--synthetic", action="store_true", help="use synthetic data even if the subset is there")
    add_timing_options(p)
    add_section_options(p)
    p.add_argument("--write-results", action="store_true",
                   help=f"write {RESULTS_SHOWN} (or --results): a new file, or one holding no earlier run")
    p.add_argument("--append-results", action="store_true", help=f"append this run to {RESULTS_SHOWN} (or --results)")
    p.add_argument("--results", type=_file, default=None, metavar="PATH",
                   help=f"the Markdown file --write-results or --append-results writes (default {RESULTS_SHOWN})")
    p.add_argument("--render-json", type=_file, nargs="+", default=None, metavar="JSON",
                   help="measure nothing: write RESULTS.md from reports saved with --json (with --write-results or --append-results)")
    p.add_argument("--json", type=_file, default=None, help="also write the raw results as JSON here")
    a = p.parse_args(argv)
    a.given = given_options(p, sys.argv[1:] if argv is None else argv)  # before --all
    a.results_path = a.results if a.results is not None else RESULTS_MD
    a.child_tmp = None  # where the pipelines' processes make their folders: main sets it (pipelines_temp_base)
    if a.all:
        a.matrix = a.overhead = a.latency_check = a.profile = True
    if a.model is None:
        a.model = ["resnet20", "resnet18"] if a.all else ["resnet20"]
    return a


def given_options(p: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The dests of the options written on the command line, at their default value too
    (`--overhead-epochs 8` without `--overhead` is as misplaced as `--overhead-epochs 3`)."""
    words = {w.split("=", 1)[0] for w in argv if w.startswith("--")}
    return [a.dest for a in p._actions if words.intersection(a.option_strings)]


# Options that only a section reads (dest -> that section's dest): given without it, refused.
SECTION_OPTIONS = {
    "rows": "matrix", "diagnostics": "matrix", "det_steps": "matrix",
    "overhead_epochs": "overhead", "no_breakdown": "overhead", "latency_rounds": "latency_check",
}  # fmt: skip


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def argument_problem(a: argparse.Namespace) -> str | None:
    """What is wrong with the arguments before anything is measured, or None (`a.given`: see parse_args)."""
    given = getattr(a, "given", [])
    if (problem := _report_options_problem(a)) is not None:
        return problem
    if a.render_json is not None:
        return _render_json_problem(a, given)
    for dest in given:
        if (section := SECTION_OPTIONS.get(dest)) is not None and not getattr(a, section):
            return f"{_flag(dest)} is for {_flag(section)}: add {_flag(section)} (or --all)"
    return _data_problem(a) or _device_problem(a.device)


def _report_options_problem(a: argparse.Namespace) -> str | None:
    """What is wrong with the report options (RESULTS.md, --json) and the listed values, or None."""
    if a.write_results and a.append_results:
        return "--write-results replaces RESULTS.md and --append-results appends to it: give one"
    if a.results is not None and not (a.write_results or a.append_results):
        return "--results names the file --write-results or --append-results writes: add one of them"
    if (a.write_results or a.append_results) and (problem := results_problem(a.results_path, a.append_results)):
        return problem
    for option, values in (("--model", a.model), ("--threads", a.threads or []), ("--rows", a.rows or []),
                           ("--render-json", [p.resolve() for p in a.render_json or []])):  # fmt: skip
        if len(set(values)) < len(values):
            return f"{option}: a value is listed twice ({' '.join(map(str, values))})"
    if a.json is not None and (problem := json_problem(a.json, a.results_path)):
        return problem
    return None


def _render_json_problem(a: argparse.Namespace, given: list[str]) -> str | None:
    """--render-json measures nothing: what else was asked of it, or None."""
    others = [d for d in given if d not in ("render_json", "append_results", "write_results", "results")]
    if others:
        return (f"--render-json measures nothing and takes only --write-results or --append-results (and --results); "
                f"drop {_flag(others[0])}")
    if not (a.write_results or a.append_results):  # the shipped RESULTS.md is replaced only when asked
        return f"--render-json writes {a.results_path.name}: add --write-results to replace it, or --append-results"
    return None


def _data_problem(a: argparse.Namespace) -> str | None:
    """Why the data the arguments (and AUDITOR_CIFAR10_SUBSET) name cannot be benchmarked, or None."""
    if a.synthetic and a.data_root is not None:
        return "--synthetic and --data-root name different data: give one"
    if a.data_root is not None and (why := why_no_cifar_dir(a.data_root, "--data-root")) is not None:
        return f"--data-root {a.data_root}: {why}"  # as `auditor` says it (a user test: the batches folder itself given)
    named = os.environ.get("AUDITOR_CIFAR10_SUBSET")
    if named == "" and a.data_root is None and not a.synthetic:  # set, but to nothing: an unset variable upstream?
        return ("AUDITOR_CIFAR10_SUBSET is set but empty (an unset variable?): point it at the subset, or unset it "
                "to use the subset beside the checkout or synthetic data")  # fmt: skip
    if named and a.data_root is None and not a.synthetic and not (SUBSET / "cifar-10-batches-py").is_dir():
        return (f"AUDITOR_CIFAR10_SUBSET={named}: no cifar-10-batches-py/ folder there (unset it to benchmark "
                "synthetic data where the subset is absent, or give --synthetic)")  # fmt: skip
    return None


def _device_problem(name: str) -> str | None:
    """Why --device NAME cannot be benchmarked here, or None."""
    try:
        device = torch.device(name)
    except RuntimeError:
        return f"--device {name}: not a device (cpu, cuda or cuda:N)"
    if device.type not in ("cpu", "cuda"):
        return f"--device {name}: only cpu and cuda are benchmarked"
    if device.type == "cpu" and device.index is not None:  # torch takes `cpu:3` and runs on every core alike
        return f"--device {name}: the CPU takes no index (cpu, cuda or cuda:N; --threads sets the cores used)"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"--device {name}: no CUDA device here"
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        return f"--device {name}: no such GPU ({torch.cuda.device_count()} here)"
    return None


def results_problem(path: Path, append: bool) -> str | None:
    """Why RESULTS.md (`path`, a link's target: `write_results` writes through it) cannot be written,
    or appended to, once measured (checked before): not a file, a folder no file can be made in, a
    read-only file, or a file that is not a results file the bench wrote (it would be lost)."""
    if path.is_dir() or (os.path.lexists(path) and not path.is_file()):
        return f"{path}: not a regular file, where the results go"
    if (read_only := _read_only(path)) is not None:  # before os.access: root and a user are told alike
        return f"{path}: {read_only}"
    target = Path(os.path.realpath(path))
    if not os.access(target.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{path}: cannot be written here (checked now, not after measuring)"
    if (why := _cannot_create_in(target.parent)) is not None:  # root passes os.access anywhere, /proc included
        return f"{path}: no file can be made in {target.parent} ({why}; checked now, not after measuring)"
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}), so not a results file the bench wrote"
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror})"
    if text.strip() and not text.startswith(RESULTS_TITLE + "\n"):  # a user's file, not one the bench wrote
        return (f"{path}: holds a file that does not begin with {RESULTS_TITLE!r}, as the results files the bench "
                "writes do; name another file, or remove it")  # fmt: skip
    # Replacing a file of earlier runs lost them (a user test: the committed file, and its only GPU runs, went).
    # ... and notes under a lower heading, or no heading (a user test: lost without a word).
    if not append and text.strip() not in ("", f"{RESULTS_TITLE}\n\n{RESULTS_INTRO}"):
        held = sum(line.startswith("## ") for line in text.splitlines())
        what = f"{held} earlier section{'s' if held != 1 else ''} (runs, notes)" if held else "text besides its title (notes)"
        return (f"--write-results: {path} holds {what}, which replacing it would lose: --append-results adds this run "
                "below them, --results PATH writes another file, or remove it first to start it afresh")  # fmt: skip
    return None


def json_problem(path: Path, results: Path = RESULTS_MD) -> str | None:
    """Why --json cannot write `path`: a folder, an unwritable one, RESULTS.md, or a file that is
    not a report --json wrote (it would be replaced without a word)."""
    if path.is_dir():
        return f"--json {path}: {path} is a folder (checked now, not after measuring)"
    folder = Path(os.path.realpath(path)).parent  # a link's target's: `finish` writes through it
    if not (folder.is_dir() and os.access(folder, os.W_OK)):
        return f"--json {path}: {folder} is not a writable folder (checked now, not after measuring)"
    if (why := _cannot_create_in(folder)) is not None:
        return f"--json {path}: no file can be made in {folder} ({why}; checked now, not after measuring)"
    if (read_only := _read_only(path)) is not None:
        return f"--json {path}: {read_only}"
    if path.resolve() == results.resolve():
        return f"--json {path}: is {results.name}, which --write-results and --append-results write"
    if path.exists() and path.stat().st_size and not _is_report(path):  # an empty file (mktemp's) is taken
        return f"--json {path}: holds a file that is not a report --json wrote; name another file, or remove it"
    return None


def _read_only(path: Path) -> str | None:
    """Why a file the bench would replace is not to be written, where its mode gives no one write
    permission (root may write it all the same: its mode says its owner does not mean it to be)."""
    if not path.is_file() or path.stat().st_mode & 0o222:
        return None
    return f"is read-only (mode {path.stat().st_mode & 0o777:04o}); make it writable, or name another file"


def _cannot_create_in(folder: Path) -> str | None:
    """Why no file can be made in `folder` now, or None: os.access says yes to root everywhere, and
    to pseudo file systems such as /proc, where the report would fail after the measuring."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".throughput-probe-"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _is_report(path: Path) -> bool:
    try:
        return _report_shaped(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def _report_shaped(report: Any) -> bool:
    """Whether `report` has the shape of a report --json writes."""
    return isinstance(report, dict) and {"machine", "command"} <= report.keys()


def busy_warning(load: list[float] | None, seconds: float = 2.0, quiet: float = 0.10, retries: int = 2) -> str | None:
    """A warning when other processes are using a noticeable share of the CPU right now.

    Measured over `seconds` with ForeignCpu (the load average also counts this
    benchmark's own recent runs, so it is reported but not used to decide).
    """
    meter = ForeignCpu()
    meter.start()
    time.sleep(seconds)
    busy = meter.stop()
    if busy > quiet:
        return (f"machine busy: other processes used {busy:.0%} of the CPU just before the benchmark (load "
                f"average {load}); with several torch threads, OpenMP barriers stall whenever one thread is "
                f"descheduled. {retry_words(retries)}, but treat the figures as rough.")  # fmt: skip
    return None


def render_saved(a: argparse.Namespace) -> int:
    """--render-json: rebuild RESULTS.md from saved reports; measure nothing (2: a report unreadable,
    not shaped as --json writes it, or contradicting itself)."""
    reports: list[dict[str, Any]] = []
    held = a.results_path.read_text(encoding="utf-8") if a.append_results and a.results_path.is_file() else ""
    for p in a.render_json:
        report, problem = _read_report(p)
        if problem is None:
            problem = _render_problem(report) or _repeated_report(report, reports, held, a)
        if problem is not None:
            print(f"throughput.py: error: --render-json {p}: {problem}; {a.results_path.name} was left as it was", file=sys.stderr)
            return 2
        reports.append(report)
    try:
        write_results(reports, a.results_path, append=a.append_results)
    except OSError as exc:  # it changed since the arguments were checked
        print(f"throughput.py: error: {a.results_path}: {exc.strerror or exc}; it was left as it was", file=sys.stderr)
        return 2
    print(f"wrote {a.results_path}")
    return 0


def _repeated_report(
    report: dict[str, Any], earlier: list[dict[str, Any]], held: str, a: argparse.Namespace
) -> str | None:
    """Why `report` would be written twice: it is one given before it (a copy of its file), or its run's
    section is in `held`, the text of the results file appended to (a user test: two identical sections)."""
    if report in earlier:
        return f"the same report as {a.render_json[earlier.index(report)]} (a copy of it): its run would be written twice"
    if held and results_markdown(report).strip() in held:
        return f"its run's section is in {a.results_path} already: appending it would write it twice"
    return None


def _read_report(path: Path) -> tuple[Any, str | None]:
    """The report saved in `path`, or why it cannot be one."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, str(exc.strerror or exc)
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start}), so not a report written by --json"
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc}), so not a report written by --json"
    return report, None if _report_shaped(report) else "not a report written by --json"


def _render_problem(report: dict[str, Any]) -> str | None:
    """Why a saved report cannot be rendered as it stands: a part of the wrong kind (a section would
    vanish without a word), a number that is not finite, a figure its own samples or medians
    contradict (edited or damaged), or a field missing (saved before it existed, or edited)."""
    if (problem := _shape_problem(report) or _nonfinite_problem(report)) is not None:
        return problem
    try:
        if (problem := _edited_problem(report)) is not None:
            return problem
        pool_ceilings(report["throughput"])
        results_markdown(report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # StatisticsError is a ValueError
        if isinstance(exc, KeyError):
            return f"the report is not complete (missing {exc})"
        return f"the report holds a field of another kind than --json writes, or is not complete ({exc})"
    return None


_ABSENT = object()  # a key the report lacks


def _expected_parts(report: dict[str, Any]) -> Iterator[tuple[str, Any, type]]:
    """(where, what is there, the kind --json writes there) for each part the renderer goes through.
    Lazy: the caller stops at the first part of the wrong kind, before anything inside it is read."""
    yield "machine", report.get("machine", _ABSENT), dict
    yield "throughput", report.get("throughput", _ABSENT), list
    for key in ("overhead", "latency", "profile", "notes"):
        if key in report:
            yield key, report[key], list
    for key in ("overhead", "latency", "profile"):
        for i, part in enumerate(report.get(key, [])):
            yield f"{key}[{i}]", part, dict
    for i, res in enumerate(report["throughput"]):
        yield f"throughput[{i}]", res, dict
        yield f"throughput[{i}].rows", res.get("rows", _ABSENT), list
        for j, row in enumerate(res["rows"]):
            at = f"throughput[{i}].rows[{j}]"
            yield at, row, dict
            if "failed" not in row:
                yield f"{at}.images_per_s", row.get("images_per_s", _ABSENT), dict
                for key in ("samples", "foreign_cpu", "discarded"):
                    yield f"{at}.{key}", row.get(key, _ABSENT), list


def _shape_problem(report: dict[str, Any]) -> str | None:
    """The first part of `report` that is not of the kind --json writes there, said so."""
    for where, value, kind in _expected_parts(report):
        if value is _ABSENT:
            return f"the report is not complete (missing {where})"
        if not isinstance(value, kind):
            return f"not shaped as --json writes a report: {where} is {_kind(value)}, not {_kind(kind())}"
        if value == [] and (held := _NEVER_EMPTY.get(where.rsplit(".", 1)[-1])) is not None:
            return f"not shaped as --json writes a report: {where} is an empty list (a run writes at least one {held})"
    return None


# The lists a run never leaves empty, and what they hold: it measures at least one model, and (a) in each.
_NEVER_EMPTY = {"throughput": "section", "rows": "row"}


def _kind(value: Any) -> str:
    """A JSON value's kind, in words."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _nonfinite_problem(report: dict[str, Any]) -> str | None:
    """The first number in `report` that is NaN or infinite where --json writes none (Python's json
    reads both): `--render-json` would print verdicts from it."""
    found = _nonfinite_in(report, ())
    return None if found is None else f"{_where(found[0])} is {found[1]}, not a finite number"


def _nonfinite_in(value: Any, at: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], float] | None:
    """(where, the number) of the first non-finite number in `value`, which is at `at`; or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) or (math.isnan(value) and _unread_share(at)) else (at, value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, v in items:
        if (found := _nonfinite_in(v, (*at, key))) is not None:
            return found
    return None


def _edited_problem(report: dict[str, Any]) -> str | None:
    """A figure that the report's own figures contradict (edited, or damaged): a row's images/s summary
    against its samples, its ratios against the medians. The table would contradict itself."""
    for i, res in enumerate(report["throughput"]):
        rows = [(f"throughput[{i}].rows[{j}]", r) for j, r in enumerate(res["rows"]) if "failed" not in r]
        summaries = [(at, f"images_per_s.{k}", row["images_per_s"].get(k, _ABSENT), v)
                     for at, row in rows for k, v in summarize(row["samples"]).items()]  # fmt: skip
        if (problem := _contradiction(summaries, "its samples give")) is not None:
            return problem  # before the ratios: they are checked against medians found whole
        med = {row["label"]: row["images_per_s"]["median"] for _, row in rows}
        base_a, base_b = med.get(ConventionalPipeline.label), med.get(DEFAULT_CONFIG.label)
        ratios = [(at, key, row.get(key, _ABSENT), med[row["label"]] / base if base else None)
                  for at, row in rows for key, base in (("ratio_to_a", base_a), ("ratio_to_default_b", base_b))]  # fmt: skip
        if (problem := _contradiction(ratios, "the medians give")) is not None:
            return problem
    return _contradiction([*_overhead_derived(report), *_latency_derived(report)], "its figures give")


def _overhead_derived(report: dict[str, Any]) -> list[tuple[str, str, Any, float | None]]:
    """Each measured overhead row's shares and start-up time, derived again from its times (a user
    test: a share edited to 1% rendered "met" beside times that give 40%)."""
    derived = []
    for i, r in enumerate(report.get("overhead", [])):
        main, proc, train = (r.get(k) for k in ("main_s", "process_wall_s", "train_time_s"))
        if "failed" in r or not all(map(is_number, (main, proc, train))) or not (main > 0 and proc > 0):
            continue  # a failed row has none; a row missing a time is refused by the renderer itself
        derived += [(f"overhead[{i}]", "overhead_in_process", r.get("overhead_in_process", _ABSENT), (main - train) / main),
                    (f"overhead[{i}]", "overhead_whole_command", r.get("overhead_whole_command", _ABSENT), (proc - train) / proc),
                    (f"overhead[{i}]", "startup_and_imports_s", r.get("startup_and_imports_s", _ABSENT), proc - main)]  # fmt: skip
    return derived


def _latency_derived(report: dict[str, Any]) -> list[tuple[str, str, Any, float | None]]:
    """Each latency check's medians and their difference, derived again from its rounds."""
    derived = []
    for i, r in enumerate(report.get("latency", [])):
        ours, theirs = r.get("auditor_rounds_ms"), r.get("benchmark_rounds_ms")
        if not all(isinstance(v, list) and v and all(map(is_number, v)) for v in (ours, theirs)):
            continue
        a, b = statistics.median(ours), statistics.median(theirs)
        derived += [(f"latency[{i}]", "auditor_median_ms", r.get("auditor_median_ms", _ABSENT), a),
                    (f"latency[{i}]", "benchmark_median_ms", r.get("benchmark_median_ms", _ABSENT), b),
                    (f"latency[{i}]", "relative_diff", r.get("relative_diff", _ABSENT), (a - b) / b if b else None)]  # fmt: skip
    return derived


def _contradiction(derived: list[tuple[str, str, Any, float | None]], source: str) -> str | None:
    """The first (where, key, stored, derived again) whose stored figure is not the one derived, said so."""
    for at, key, stored, want in derived:
        if not _same(stored, want):
            said = "missing" if stored is _ABSENT else stored
            return f"{at}.{key} is {said}, but {source} {want}: an edited or damaged report"
    return None


def _same(stored: Any, derived: float | None) -> bool:
    """Whether a stored figure is the one derived again (equal to rounding; None only for None)."""
    if derived is None or stored is None or isinstance(stored, bool) or not isinstance(stored, int | float):
        return stored is None and derived is None
    return math.isclose(stored, derived, rel_tol=1e-9)


def _unread_share(at: tuple[str | int, ...]) -> bool:
    """Whether `at` holds other processes' share of the CPU, which is NaN where /proc/stat could not be
    read: under a `foreign_cpu` key, or the second figure of a discarded repeat."""
    return "foreign_cpu" in at or (len(at) >= 3 and at[-3] == "discarded" and at[-1] == 1)


def _where(at: tuple[str | int, ...]) -> str:
    """('throughput', 0, 'rows') as 'throughput[0].rows'."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in at).lstrip(".")


# Options whose values are paths, read from the working directory (--render-json takes several).
PATH_OPTIONS = ("--data-root", "--json", "--results", "--render-json")


def _recorded_command(raw: list[str]) -> str:
    """The command as a shell reruns it from the repository's root, with the AUDITOR_CIFAR10_SUBSET
    that chose the data, if one was set (without it, a rerun elsewhere would read other data or
    fall back to synthetic); paths given relative to another working directory made absolute (a
    user test: the command recorded from /tmp named `../work/...`, which the root does not hold)."""
    # --synthetic and --data-root choose the data themselves (a user test: the variable was recorded beside them).
    chose = not any(arg == "--synthetic" or arg.partition("=")[0] == "--data-root" for arg in raw)
    env = os.environ.get("AUDITOR_CIFAR10_SUBSET") if chose else None
    if env and Path.cwd() != REPO:
        env = _absolute(env)
    assignment = f"AUDITOR_CIFAR10_SUBSET={shlex.quote(env)} " if env else ""  # a quoted whole would be a command name
    return assignment + shlex.join(["python", "bench/throughput.py", *_rooted(raw)])


def _rooted(raw: list[str]) -> list[str]:
    """`raw` with the path values of PATH_OPTIONS absolute, where the working directory is not the
    repository's root (from it, they read as given)."""
    if Path.cwd() == REPO:
        return list(raw)
    out, option = [], None
    for arg in raw:
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            option = name if name in PATH_OPTIONS and not eq else None
            out.append(f"{name}={_absolute(value)}" if eq and name in PATH_OPTIONS else arg)
            continue
        out.append(_absolute(arg) if option is not None else arg)
        option = option if option == "--render-json" else None  # its list goes on to the next option
    return out


def retry_words(retries: int) -> str:
    """What becomes of a disturbed repeat under --retries."""
    if retries == 0:
        return "Disturbed repeats are kept, not rerun (--retries 0)"
    return f"Disturbed repeats are discarded and rerun (up to {count(retries, 'time')} each)"


def _absolute(path: str) -> str:
    return path if not path or os.path.isabs(path) or path.startswith("~") else os.path.abspath(path)


def new_report(raw: list[str], device: torch.device, quiet: float, retries: int) -> dict[str, Any]:
    """The report skeleton: command, machine, and a warning when the machine is busy right now."""
    report: dict[str, Any] = {
        "command": _recorded_command(raw),
        "machine": machine_info(device), "device": str(device), "throughput": [], "notes": [],
        "quiet": quiet,  # --quiet-threshold: the verdicts judge only figures measured below it
    }  # fmt: skip
    m = report["machine"]
    print(f"machine: {m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch']}, {count(m['torch_threads'], 'thread')}, "
          f"device {device}{' (' + m['gpu'] + ')' if m['gpu'] else ''}, load {m['loadavg_start']}")  # fmt: skip
    if (warning := busy_warning(m["loadavg_start"], quiet=quiet, retries=retries)) is not None:
        print("WARNING: " + warning)
        report["notes"].append(warning)
    source = Path(auditor.__file__).resolve().parent
    if source != REPO / "auditor":  # the code measured is not this checkout's (an installed copy): its commit says nothing
        warning = f"auditor was imported from {source}, not from this checkout ({REPO}): the commit above is not the code measured"
        print("WARNING: " + warning)
        report["notes"].append(warning)
    return report


def setups(a: argparse.Namespace, device: torch.device, ckpt: Path) -> Iterator[Setup]:
    """One Setup per (thread count, model), with torch's thread count set while it is in use."""
    data_spec = bench_data_spec(None if a.synthetic else a.data_root or SUBSET)
    data = load_data(data_spec, SEED)
    workers = default_workers() if a.workers is None else a.workers
    default_threads = torch.get_num_threads()
    try:
        for threads in a.threads or [default_threads]:
            torch.set_num_threads(threads)
            for name in a.model:
                yield Setup(
                    model=name, device=device, batch_size=a.batch_size,
                    steps=a.steps or default_steps(name, device, len(data.train_y), a.batch_size),
                    repeats=a.repeats or (CUDA_REPEATS if device.type == "cuda" else DEFAULT_REPEATS.get(name, FALLBACK_REPEATS)),
                    warmup=a.warmup,
                    workers=workers, data=data, data_spec=data_spec, data_desc=describe_data(data_spec, data, a.synthetic),
                    ckpt_dir=ckpt, det_steps=a.det_steps, det_steps_given="det_steps" in a.given, max_repeat_s=a.max_repeat_s,
                    quiet=a.quiet_threshold, retries=a.retries, wait_s=a.wait_quiet_s, child_tmp=a.child_tmp,
                )  # fmt: skip
    finally:
        torch.set_num_threads(default_threads)


def throughput_sections(
    a: argparse.Namespace, device: torch.device, configs: list[Config], report: dict[str, Any]
) -> None:
    """Every throughput section (and its profile), then the run-wide GEMM ceiling pooling."""
    for threads in a.threads or []:  # before measuring, as every other warning (RESULTS.md keeps it per section)
        if (note := section_threads_note({"device": str(device), "torch_threads": threads}, report["machine"])):
            print(f"WARNING: --threads {threads}: {note}")
    with tempfile.TemporaryDirectory(prefix="auditor-bench-ckpt-") as ckpt:
        for s in setups(a, device, Path(ckpt)):
            res = throughput(s, configs, check_determinism=a.matrix)
            report["throughput"].append(res)
            print_throughput(res)
            for cfg in PROFILED_CONFIGS if a.profile else []:
                report.setdefault("profile", []).append(profile_isolated(s, cfg))
                print_lines(profile_lines(report["profile"][-1:]))
    pool_ceilings(report["throughput"])


def print_lines(lines: list[str]) -> None:
    """Indented under the section heading printed before."""
    for line in lines:
        print("   " + line)


def other_sections(a: argparse.Namespace, device: torch.device, report: dict[str, Any]) -> None:
    """Auditing overhead and the latency method check, when asked for."""
    quiet = Quiet(a.quiet_threshold, a.wait_quiet_s)
    if a.overhead:
        print(f"\n== auditing overhead (subprocesses on {device}, torch's default thread count)")
        root = None if a.synthetic else (a.data_root or SUBSET)
        report["overhead"] = overhead(a.overhead_epochs, not a.no_breakdown, print, quiet, str(device), root)
        print_lines(overhead_lines(report["overhead"]))
    if a.latency_check:
        print(f"\n== latency method check (torch threads {torch.get_num_threads()})")
        name = report["machine"]["gpu"] or report["machine"]["cpu_model"]  # as the sheet names the device
        report["latency"] = [latency_check(n, device, name, a.latency_rounds, quiet) for n in a.model]
        print_lines(latency_lines(report["latency"]))


def finish(a: argparse.Namespace, report: dict[str, Any]) -> None:
    """Print the targets, then write the JSON and RESULTS.md as asked."""
    report["loadavg_end"] = loadavg()
    if (targets := targets_lines(report)):
        print("\n== against the targets (reported, not asserted)")
        print_lines(targets)
    print(f"\nload average at end: {report['loadavg_end']}")
    failed: OSError | None = None
    if a.json:  # first: whatever fails after it, the measurements are kept
        try:
            atomic_write_bytes(Path(os.path.realpath(a.json)), json.dumps(report, indent=2, default=str).encode())
            a.json_written = True
            print(f"wrote {a.json}")
        except OSError as exc:  # changed since it was checked, or a full disk
            a.json_kept, failed = _keep_elsewhere(report), exc
    if a.write_results or a.append_results:  # a RESULTS.md that fails says where the JSON is (main)
        try:
            write_results([report], a.results_path, append=a.append_results)
        except (OSError, UnicodeDecodeError) as exc:  # UnicodeDecodeError: a file no longer UTF-8 since it was checked
            if not a.json:  # the measurements are kept however RESULTS.md failed
                a.json_kept, a.json_keep_tried = _keep_elsewhere(report), True
            if isinstance(exc, UnicodeDecodeError):
                raise OSError(errno.EINVAL, f"cannot be appended to now ({exc})", str(a.results_path)) from None
            raise
        print(f"wrote {a.results_path}")
    if failed is not None:
        raise failed


EXIT_PARTIAL = 3  # some rows not measured: not 1, which a crash's traceback exits with


def failed_rows(report: dict[str, Any]) -> list[str]:
    """What was asked for and not measured: 'not measured: <model>, <n> threads: <row>' for a
    throughput row whose pipeline failed, 'determinism not checked: ...' for one whose twin
    runs could not run (a row whose twins ran and differed is a finding, not a failure), and
    the auditing-overhead runs that failed."""
    said: list[str] = []
    for key, what in (("failed", "not measured"), ("determinism_error", "determinism not checked")):
        rows = [f"{res['model']}, {count(res['torch_threads'], 'thread')}: {r['label']}"
                for res in report.get("throughput", []) for r in res["rows"] if key in r]  # fmt: skip
        said += [f"{what}: {'; '.join(rows)}"] if rows else []
    runs = [r["name"] for r in report.get("overhead", []) if "failed" in r]
    return said + ([f"auditing overhead not measured: {', '.join(runs)}"] if runs else [])


def unchecked_rows(report: dict[str, Any]) -> list[str]:
    """The rows whose determinism check was skipped for their length without --det-steps asking for
    it: not a failure (a configuration too slow to check, bf16 emulated on a CPU, would fail every
    default --matrix run), but said on stderr, so that a bitwise column left empty is not missed."""
    rows = [f"{res['model']}, {count(res['torch_threads'], 'thread')}: {r['label']}"
            for res in report.get("throughput", []) for r in res["rows"]
            if r.get("determinism_skipped") and "determinism_error" not in r]  # fmt: skip
    return [f"determinism not checked, one step being over half of --max-repeat-s: {'; '.join(rows)}"] if rows else []


def _keep_elsewhere(report: dict[str, Any]) -> str | None:
    """Write `report` to a new file in the temporary folder; its path, or None where that fails too
    (nothing partial is left)."""
    try:
        fd, kept = tempfile.mkstemp(prefix="throughput-report-", suffix=".json")
    except OSError:  # no temporary folder can be written either
        return None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(report, indent=2, default=str).encode())
    except OSError:
        Path(kept).unlink(missing_ok=True)
        return None
    return kept


def _raise_terminated(signum: int, frame: Any) -> None:
    """SIGTERM, raised where the bench is (as `auditor` stops on it): its temporary folders and
    pipelines are removed on the way out; a second SIGTERM is ignored meanwhile."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def refuse(problem: object) -> int:
    """Exit status 2 with `problem` said as argparse says its own argument errors."""
    print(f"{Path(sys.argv[0]).name}: error: {problem}; nothing measured", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the sections the flags ask for, print them, and write the reports asked for."""
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["--overhead-child"]:
        return overhead_child(raw[1:])
    if raw[:1] == ["--pipeline-child"]:
        return pipeline_child(int(raw[1]), raw[2])
    a = parse_args(raw)
    if (problem := argument_problem(a)) is not None:
        return refuse(problem)
    if a.render_json:
        return render_saved(a)
    device = torch.device(a.device)
    try:
        configs = prepare(a, device)
    except ValueError as exc:
        return refuse(exc)
    report = new_report(raw, device, a.quiet_threshold, a.retries)
    signal.signal(signal.SIGTERM, _raise_terminated)
    measured = False
    try:
        throughput_sections(a, device, configs, report)
        other_sections(a, device, report)
        measured = True
        finish(a, report)
    except KeyboardInterrupt as stop:  # Terminated too; the pipelines' processes are stopped on the way out
        written = "results not all written (see above)" if measured else "no results written"
        print(f"\n{stop_word(stop)}: {written}", file=sys.stderr)
        return exit_code(stop)
    except InvalidInput as exc:  # the data (a damaged batch file), found when it is read
        print(f"{Path(sys.argv[0]).name}: error: {exc}; no results written", file=sys.stderr)
        return 2
    except OSError as exc:  # a report file that cannot be written now (changed since it was checked, a full disk)
        if not measured:
            raise
        return report_unwritten(a, exc)
    return finished_exit(report)


def prepare(a: argparse.Namespace, device: torch.device) -> list[Config]:
    """The configurations to time, with the pipelines' temporary folder set (`a.child_tmp`) and the
    device made current. Raises ValueError (an unknown --rows name, no usable temporary folder)."""
    configs = select_rows(matrix_configs(device, a.diagnostics), a.rows) if a.matrix else [DEFAULT_CONFIG]
    a.child_tmp, tmp_note = pipelines_temp_base(a.workers)
    if tmp_note:
        print(f"{Path(sys.argv[0]).name}: note: {tmp_note}", file=sys.stderr)
    if device.type == "cuda":  # cuBLAS reads it when its first handle is made: before any GEMM
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", repro.CUBLAS_CONFIG)
    make_current(device)
    return configs


def report_unwritten(a: argparse.Namespace, exc: OSError) -> int:
    """Say which report could not be written after measuring, and where this run's JSON report went; exit 2."""
    saved = f"; this run's JSON report is in {a.json}" if getattr(a, "json_written", False) else ""
    if kept := getattr(a, "json_kept", None):
        instead = " instead" if a.json else ""
        saved = f"; this run's JSON report was written to {kept}{instead} (--render-json renders it without measuring again)"
    elif a.json and not getattr(a, "json_written", False):
        saved = f"; this run's JSON report could not be written to {a.json} nor to the temporary folder"
    elif getattr(a, "json_keep_tried", False):
        saved = "; this run's JSON report could not be kept in the temporary folder either: its figures are above"
    where = f"{exc.filename}: " if exc.filename else ""
    print(f"{Path(sys.argv[0]).name}: error: {where}{exc.strerror or exc}{saved}", file=sys.stderr)
    return 2


def finished_exit(report: dict[str, Any]) -> int:
    """Note rows left unchecked; exit EXIT_PARTIAL where a row failed, else 0."""
    for note in unchecked_rows(report):
        print(f"{Path(sys.argv[0]).name}: note: {note} (raise it to check them)", file=sys.stderr)
    if lost := failed_rows(report):  # a script or CI job must not take a partial table for a full one
        print(f"{Path(sys.argv[0]).name}: {'; '.join(lost)} (see the rows above)", file=sys.stderr)
        return EXIT_PARTIAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
