"""Training stage: SGD with a per-step schedule, checkpoints that resume bit for bit.

The host never waits on the device inside a step: per-step losses go into a
device buffer, and the loss is read back only at logging points (a NaN
check every `log_every_steps`), at checkpoints and at the end of an epoch.
(With amp fp16, torch's GradScaler itself reads the inf check back every
step; bf16 needs no scaler.) Best-model selection uses the
validation split, or the test split when there is none (recorded as such).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from auditor import checkpoint, hostmem
from auditor.audit import not_a_number, recorded_resumes
from auditor.data import DataBundle, norm_tensors, normalize, steps_per_epoch, train_batches
from auditor.environment import compute_setting, cuda_problem, same_setting, software_versions
from auditor.errors import InvalidInput, SpecFieldError, ablation_run_of
from auditor.spec import DataSpec, Schedule, TrainSpec
from auditor.words import count

StepHook = Callable[[int, nn.Module], None]  # (global step, model) after each step
AMP_DTYPES = MappingProxyType({"off": None, "bf16": torch.bfloat16, "fp16": torch.float16})


@dataclass(frozen=True)
class EpochRecord:
    """One row of metrics.csv."""

    epoch: int  # 1-based
    steps: int  # optimisation steps run in this epoch (fewer than a full epoch under max_steps)
    lr: float  # used by the epoch's last step
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None  # on the selection split (val, or test without val)
    epoch_s: float
    images_per_s: float


@dataclass(frozen=True)
class LayoutReadback:
    """What the first training step of a process computed in, read from its tensors rather than
    from the spec: autocast's compute type and the memory layout of its input and weights."""

    logits_dtype: str  # dtype of the step's logits (B, classes): float32, or autocast's bfloat16/float16
    input_channels_last: bool  # the normalised batch (B, 3, H, W) had channels_last strides
    weights_channels_last: bool  # every 4-D weight of the model had them (conv kernels)


@dataclass(frozen=True)
class TrainResult:
    """What training produced; the measure stage loads `best_path`."""

    status: str  # completed | early_stopped | diverged
    epochs_run: int
    history: list[EpochRecord]
    step_losses: list[float]
    best_epoch: int | None
    best_metric: float | None
    selection_split: str  # "val" | "test"
    train_time_s: float  # training steps' wall time summed over epochs (not evaluation, epoch-end checkpoints)
    images_per_s: float  # training images / train_time_s
    diverged_at_step: int | None
    resumed_from: str | None
    compile_s: float | None = None  # wall time of the first step at each batch shape (incl. compile)
    steps_per_epoch: int = 0
    host_memory: hostmem.HostMemory | None = None  # train.host_memory as set and read back
    layout: LayoutReadback | None = None  # None: no step ran in this run's processes (or a checkpoint predates it)
    # environment.compute_setting of the process that ran the last training step: this one, or,
    # where it trained nothing (a finished run resumed), the checkpoint's; None: not recorded
    trained_on: dict[str, Any] | None = None
    # Other processes' share of this process's CPUs while it trained (its whole fit: steps, epoch-end
    # evaluations and checkpoints), and that interval in seconds; None: not measured (see runner)
    other_cpu_share: float | None = None
    other_cpu_window_s: float | None = None
    trained_here: bool = True  # False: this process ran no training step (a finished run resumed)
    # environment.compute_setting of every setting training steps ran at, through resumes (older
    # checkpoints: the last writer's only); more than one: no one setting reproduces the bits
    trained_at: list[dict[str, Any]] = field(default_factory=list)
    # {"command", "cwd"} of the process that started the run (carried by checkpoints through
    # resumes); None: a resume of a checkpoint written before it was recorded
    started_by: dict[str, str] | None = None
    # {"ablation", "variant", "seed"}: the ablation run this is (this process's, where `auditor ablate`
    # started it, else carried by checkpoints through resumes); None: not an ablation's run
    ablation_run: dict[str, Any] | None = None
    # Every resume whose process's training the final checkpoint holds, first first (carried by
    # checkpoints): {"checkpoint": its file name, "global_step", "utc": when the process resumed};
    # not this process's where it ran no training step (a finished run re-judged: `trained_here`)
    resumes: list[dict[str, Any]] = field(default_factory=list)
    # continued from a checkpoint without the list (an earlier version's, or one edited): earlier ones unknown
    resumes_unrecorded: bool = False
    resumed_at_step: int | None = None  # the global step this process continued from (None: not a resume)


@dataclass
class RunFiles:
    """Where checkpoints go and what identifies the run they belong to."""

    ckpt_dir: Path
    spec: dict[str, Any]
    spec_hash: str
    test_fingerprint: str | None = None  # the data stage's; `auditor evaluate` compares a copy's with it
    data_fingerprint: str | None = None  # train + test as read; a resume refuses other data
    scored_test_fingerprint: str | None = None  # the test images scored (the first data.limit_test)
    classes: tuple[str, ...] | None = None  # the class names read (batches.meta), by label
    started_by: dict[str, str] | None = None  # this process's {"command", "cwd"}: a fresh run's first process
    resume_advice: str = "run without --resume to start over"  # what a refused resume says to do (the runner's)
    ablation_run: dict[str, Any] | None = None  # errors.started_by_ablation: the ablation that started this process


@dataclass
class _Loop:
    """Mutable state of one training loop."""

    train: TrainSpec
    data_spec: DataSpec
    seed: int
    model: nn.Module  # unwrapped: its state_dict is what checkpoints hold
    step_fn: nn.Module  # the module called in training steps (compiled or not)
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    device: torch.device
    tensors: dict[str, torch.Tensor]  # data resident on the device
    files: RunFiles
    spe: int  # steps per epoch
    host_memory: hostmem.HostMemory
    compute: dict[str, Any]  # environment.compute_setting: recorded in checkpoints, checked on resume
    epoch: int = 0  # 0-based epoch in progress
    step: int = 0  # next step within the epoch
    history: list[EpochRecord] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    partial: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=lambda: {"metric": None, "epoch": None, "since": 0})
    train_time_s: float = 0.0
    unrecorded_images: int = 0  # images of a diverged epoch, which has no EpochRecord
    compile_s: float | None = None
    compiled_sizes: set[int] = field(default_factory=set)  # batch sizes compiled in this process
    layout: LayoutReadback | None = None  # this process's first step's, else the checkpoint's
    layout_read: bool = False  # read in this process
    trained_on: dict[str, Any] | None = None  # the checkpoint's compute setting, once restored
    computes: list[dict[str, Any]] = field(default_factory=list)  # the settings earlier processes trained at
    started_by: dict[str, str] | None = None  # the first process's command and folder (RunFiles', or the checkpoint's)
    ablation_run: dict[str, Any] | None = None  # RunFiles', or else the checkpoint's
    resumes: list[dict[str, Any]] = field(default_factory=list)  # TrainResult.resumes so far
    resumes_unrecorded: bool = False  # TrainResult's
    writer: checkpoint.BackgroundWriter = field(default_factory=checkpoint.BackgroundWriter)


# --- optimisation pieces ------------------------------------------------------


def lr_factor(step: int, spe: int, epochs: int, sched: Schedule, base_lr: float) -> float:
    """Multiplier of the base lr at global step `step` (0-based), per step.

    Linear warm-up over `warmup_epochs` (fractional), then cosine to eta_min,
    multistep decay at epoch milestones, or constant. A warm-up of a fractional
    number of steps (0.5 epochs of 19 steps) reaches the base lr at its last step
    and never passes it.
    """
    t = step / spe  # epochs elapsed, fractional
    if sched.warmup_epochs > 0 and t < sched.warmup_epochs:
        return min(1.0, (step + 1) / (sched.warmup_epochs * spe))
    if sched.name == "constant":
        return 1.0
    if sched.name == "multistep":
        return sched.gamma ** sum(t >= m for m in sched.milestones)
    span = max(epochs - sched.warmup_epochs, 1e-12)
    progress = min((t - sched.warmup_epochs) / span, 1.0)
    floor = sched.eta_min / base_lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, train: TrainSpec) -> torch.optim.SGD:
    """SGD over all parameters (weight decay applies to every parameter)."""
    o = train.optimizer
    return torch.optim.SGD(
        model.parameters(), lr=o.lr, momentum=o.momentum,
        weight_decay=o.weight_decay, nesterov=o.nesterov,
    )  # fmt: skip


def build_scheduler(opt: torch.optim.Optimizer, train: TrainSpec, spe: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR following `lr_factor`."""
    s, lr = train.schedule, train.optimizer.lr
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, spe, train.epochs, s, lr)
    )


def check_device_support(train: TrainSpec, device: torch.device) -> None:
    """Raise SpecFieldError for the first toggle the resolved device cannot run."""
    if problems := device_problems(train, device):
        raise problems[0]


def device_problems(train: TrainSpec, device: torch.device) -> list[SpecFieldError]:
    """Each toggle the resolved device cannot run (`validate` says all of them)."""
    problems = []
    if device.type == "cpu" and train.amp == "fp16":
        problems.append(SpecFieldError("train.amp", "fp16 needs a CUDA device (GradScaler); use bf16 or off on CPU"))
    if (problem := cuda_problem(device)) is not None:
        problems.append(SpecFieldError("train.device", f"{device} {problem}"))
    if train.compile != "off" and (switch := compile_switched_off()) is not None:
        problems.append(SpecFieldError("train.compile", f"{train.compile}, but {switch} in this environment, so "
                                       "torch.compile would run the model eager while the record says compiled: "
                                       "unset it, or set train.compile: off"))  # fmt: skip
    return problems


def compile_switched_off() -> str | None:
    """What switches torch.compile off for this process, or None: it then returns the model
    unchanged, without a word (TORCHDYNAMO_DISABLE=1 is read at each call, TORCH_COMPILE_DISABLE=1
    into torch._dynamo.config.disable at import)."""
    if os.environ.get("TORCHDYNAMO_DISABLE", "") == "1":
        return "TORCHDYNAMO_DISABLE=1 is set"
    import torch._dynamo

    return "torch._dynamo.config.disable is on (TORCH_COMPILE_DISABLE=1)" if torch._dynamo.config.disable else None


def toggle_notes(train: TrainSpec, device: torch.device, cpu_bf16_native: bool | None) -> list[str]:
    """Warnings about toggles that run but cost far more than they look on this machine."""
    notes = []
    if device.type == "cpu" and train.amp == "bf16" and cpu_bf16_native is False:
        notes.append(
            "train.amp=bf16 on a CPU without bf16 instructions that oneDNN may use (avx512_bf16 / amx_bf16: "
            "absent, or capped by ONEDNN_MAX_CPU_ISA): autocast "
            "emulates bf16, far slower than fp32 (resnet20 trained at 0.10x the fp32 default's images/s on an "
            "AVX2-only AMD EPYC in this project's bench/RESULTS.md; this run's own images/s is in its record)"
        )
    return notes


# --- steps and epochs ---------------------------------------------------------


def train_step(
    loop: _Loop, x: torch.Tensor, y: torch.Tensor, read_layout: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step; returns (loss, correct count) as device tensors (no sync).

    `read_layout` records what the step computed in as `loop.layout` (host metadata only, no sync).
    """
    dtype = AMP_DTYPES[loop.train.amp]
    with torch.autocast(loop.device.type, dtype=dtype, enabled=dtype is not None):
        logits = loop.step_fn(x)  # (B, classes)
        loss = loop.loss_fn(logits, y)
    if read_layout:
        loop.layout, loop.layout_read = read_back_layout(loop.model, x, logits), True
    correct = (logits.argmax(1) == y).sum()  # read the outputs before backward (CUDA graphs reuse buffers)
    loop.opt.zero_grad(set_to_none=True)
    loop.scaler.scale(loss).backward()
    loop.scaler.step(loop.opt)
    loop.scaler.update()
    loop.sched.step()
    return loss.detach().float(), correct


def read_back_layout(model: nn.Module, x: torch.Tensor, logits: torch.Tensor) -> LayoutReadback:
    """The compute type and memory layouts a step used, from its input `x` (B, 3, H, W), its
    logits (B, classes) and the model's weights."""
    kernels = [p for p in model.parameters() if p.dim() == 4]
    return LayoutReadback(
        logits_dtype=str(logits.dtype).removeprefix("torch."),
        input_channels_last=x.is_contiguous(memory_format=torch.channels_last),
        weights_channels_last=bool(kernels) and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels),
    )  # fmt: skip


def epoch_accumulators(loop: _Loop) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-epoch accumulators on the device: (step losses, loss sum, correct)."""
    z = lambda: torch.zeros((), device=loop.device)
    losses = torch.full((loop.spe,), float("nan"), device=loop.device)
    done = loop.partial.get("losses", [])
    losses[: len(done)] = torch.tensor(done, device=loop.device)
    return losses, z() + loop.partial.get("loss_sum", 0.0), z() + loop.partial.get("correct", 0.0)


def train_one_epoch(
    loop: _Loop, hook: StepHook | None, progress: bool = False, log: Callable[[str], None] | None = None
) -> tuple[float, float, bool, int]:
    """Run the rest of the current epoch, or up to train.max_steps; returns (mean loss, acc, all finite, images).
    `progress` shows a tqdm bar (the CLI asks for one on a terminal); without one, `log` takes a line
    every train.log_every_steps steps (a CI log's sign of life within a long epoch)."""
    t0 = time.perf_counter() - loop.partial.get("elapsed", 0.0)
    losses, loss_sum, correct = epoch_accumulators(loop)
    tx, ty = loop.tensors["train_x"], loop.tensors["train_y"]
    mean, std = loop.tensors["mean"], loop.tensors["std"]
    batches = train_batches(tx, ty, loop.data_spec, loop.seed, loop.epoch, loop.train.batch_size, loop.step)
    for step, xb, yb in _progress(batches, loop) if progress else batches:
        ts = time.perf_counter()
        loss, corr = train_step(loop, normalize(xb, mean, std, loop.train.channels_last), yb, not loop.layout_read)
        if loop.train.compile != "off" and len(yb) not in loop.compiled_sizes:
            # A new batch shape (the short last batch) compiles again: count that step too.
            loop.compiled_sizes.add(len(yb))
            loop.compile_s = (loop.compile_s or 0.0) + _sync_time(loop.device, ts)
        losses[step], loss_sum, correct = loss, loss_sum + loss * len(yb), correct + corr
        loop.step = step + 1
        loop.writer.raise_if_failed()  # a full disk stops training now, not an epoch later
        if hook is not None:
            loop.writer.wait()  # fault injection may SIGKILL here: what was saved must be on disk
            hook(loop.epoch * loop.spe + step, loop.model)
        if (step + 1) % loop.train.log_every_steps == 0 and not _read_back(loop, loss, None if progress else log):
            break  # diverged: the epoch-end check below records where
        if _budget_reached(loop):
            break
        if _checkpoint_due(loop):
            loop.partial = _partial(losses, loss_sum, correct, t0, loop.device, loop.step)
            # Saved only while every loss so far is finite. The weights are not checked: an update
            # that overflows them shows as a non-finite loss at the next step, and a resume from
            # such a checkpoint diverges at that same step, as the uninterrupted run does.
            if all(math.isfinite(v) for v in loop.partial["losses"]):
                save_step_checkpoint(loop)
    n = min(len(ty), loop.step * loop.train.batch_size)  # images seen this epoch
    done = losses[: loop.step].cpu().tolist()
    loop.step_losses += done
    loop.partial = {"elapsed": time.perf_counter() - t0}
    return loss_sum.item() / n, correct.item() / n, all(math.isfinite(v) for v in done), n


def _read_back(loop: _Loop, loss: torch.Tensor, log: Callable[[str], None] | None) -> bool:
    """Read the step's loss back to the host (a sync: every train.log_every_steps steps only);
    whether it is finite. `log` takes a line of it, but for the epoch's last step, which the
    epoch's own line says."""
    value = loss.item()
    if log is not None and math.isfinite(value) and loop.step < loop.spe:
        log(f"step {loop.step}/{loop.spe} of epoch {loop.epoch + 1}/{loop.train.epochs}: loss {value:.4f}")
    return math.isfinite(value)


def _sync_time(device: torch.device, start: float) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _budget_reached(loop: _Loop) -> bool:
    cap = loop.train.max_steps
    return cap is not None and loop.epoch * loop.spe + loop.step >= cap


def _checkpoint_due(loop: _Loop) -> bool:
    every = loop.train.checkpoint_every_steps
    return every is not None and (loop.epoch * loop.spe + loop.step) % every == 0 and loop.step < loop.spe


def _partial(
    losses: torch.Tensor, loss_sum: torch.Tensor, correct: torch.Tensor, t0: float, device: torch.device, step: int
) -> dict[str, Any]:
    """Host copy of the epoch's accumulators so far (a sync point: checkpoints only)."""
    done = losses[:step].cpu().tolist()  # waits for the queued steps
    return {
        "losses": done, "loss_sum": loss_sum.item(), "correct": correct.item(),
        "elapsed": _sync_time(device, t0),
    }  # fmt: skip


def _progress(batches: Any, loop: _Loop) -> Any:
    """`batches` wrapped in a tqdm bar on stderr."""
    from tqdm import tqdm

    desc = f"epoch {loop.epoch + 1}/{loop.train.epochs}"
    return tqdm(batches, total=loop.spe, initial=loop.step, desc=desc, leave=False, file=sys.stderr)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
    train: TrainSpec,
) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, predictions) of `model` on uint8 images x (N,3,32,32).

    Runs in eval mode with the training's autocast setting, in batches of
    train.eval_batch_size; predictions come back on the CPU.
    """
    was_training = model.training
    model.eval()
    dtype = AMP_DTYPES[train.amp]
    loss_sum, preds = torch.zeros((), device=x.device), []
    for i in range(0, len(y), train.eval_batch_size):
        xb = normalize(x[i : i + train.eval_batch_size], mean, std, train.channels_last)
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(xb).float()
        loss_sum += nn.functional.cross_entropy(logits, y[i : i + len(xb)], reduction="sum")
        preds.append(logits.argmax(1))
    model.train(was_training)
    pred = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=x.device)
    n = max(len(y), 1)
    return loss_sum.item() / n, (pred == y).sum().item() / n, pred.cpu()


# --- checkpoints ----------------------------------------------------------------


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])


def payload(loop: _Loop) -> dict[str, Any]:
    """Everything needed to continue the run exactly from the current position."""
    return {
        "format": checkpoint.CHECKPOINT_FORMAT,
        "model": loop.model.state_dict(),
        "optimizer": loop.opt.state_dict(),
        "scheduler": loop.sched.state_dict(),
        "scaler": loop.scaler.state_dict(),
        "rng": _rng_state(loop.device),
        "epoch": loop.epoch, "step_in_epoch": loop.step,
        "global_step": loop.epoch * loop.spe + loop.step,
        "partial": loop.partial, "history": [asdict(h) for h in loop.history],
        "step_losses": torch.tensor(loop.step_losses, dtype=torch.float64),
        "best": loop.best, "train_time_s": loop.train_time_s, "compile_s": loop.compile_s,
        "layout": asdict(loop.layout) if loop.layout else None,
        "spec": loop.files.spec, "spec_hash": loop.files.spec_hash, "test_fingerprint": loop.files.test_fingerprint,
        "data_fingerprint": loop.files.data_fingerprint, "scored_test_fingerprint": loop.files.scored_test_fingerprint,
        "classes": list(loop.files.classes) if loop.files.classes else None,
        "versions": software_versions(), "compute": loop.compute, "computes": trained_at(loop), "started_by": loop.started_by,
        "resumes": loop.resumes, "resumes_unrecorded": loop.resumes_unrecorded,
        "ablation_run": loop.ablation_run,
    }  # fmt: skip


def trained_at(loop: _Loop) -> list[dict[str, Any]]:
    """Every compute setting the run's training steps ran at, through its resumes, first first:
    more than one, and no single setting reproduces its last bits."""
    here = [loop.compute] if loop.layout_read else []
    kept: list[dict[str, Any]] = []
    for setting in [*loop.computes, *here]:
        if not kept or not same_setting(kept[-1], setting):  # in order: 2, 4, then 2 threads again is three
            kept.append(setting)
    return kept


def save_step_checkpoint(loop: _Loop) -> None:
    """Mid-epoch checkpoint `step-<global step>.pt`, written in the background; keeps the newest two."""
    g = loop.epoch * loop.spe + loop.step
    path = loop.files.ckpt_dir / f"step-{g:08d}.pt"
    loop.writer.wait()  # the previous checkpoint first: one payload in memory at a time
    loop.writer.submit(_save_and_prune, path, checkpoint.to_bytes(payload(loop)))


def _save_and_prune(path: Path, data: bytes) -> None:
    """One job: the older step checkpoints go only once the new one has landed intact."""
    checkpoint.save_bytes(path, data)
    checkpoint.prune_step_checkpoints(path.parent)


def save_epoch_checkpoints(loop: _Loop, improved: bool) -> None:
    """`last.pt` every epoch, `best.pt` (the same bytes) when the metric improved, written in the background."""
    loop.writer.wait()  # the previous checkpoint first: one payload in memory at a time
    data = checkpoint.to_bytes(payload(loop))  # the snapshot, taken before training goes on
    # best first: a kill in between never leaves last.pt naming a best.pt that is not there
    names = ["best", "last"] if improved else ["last"]
    loop.writer.submit(checkpoint.save_copies, [loop.files.ckpt_dir / f"{n}.pt" for n in names], data)


def resume_into(loop: _Loop, path: Path) -> None:
    """Restore the checkpoint at `path` into the loop; InvalidInput naming the file where its
    entries are of the wrong kind or format (`checkpoint.resume_problem`), its position does not
    fit this run's steps per epoch, or its state this model, optimiser or schedule."""
    state = checkpoint.load(path)
    problem = checkpoint.resume_problem(state) or _position_problem(state, loop.spe)
    if problem is None:
        try:
            restore(loop, state)
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            text = " ".join(str(exc).split())
            problem = f"it does not fit this run ({type(exc).__name__}: {text[:300] + '...' if len(text) > 300 else text})"
    if problem is not None:
        raise InvalidInput(f"--resume: {path}: cannot continue from it: {problem} (its digest verifies: it was "
                           f"written so, or edited and digested again); {loop.files.resume_advice}")  # fmt: skip


def _position_problem(state: dict[str, Any], spe: int) -> str | None:
    """Where a checkpoint's position (epoch, step in it, global step, steps' losses) is not one a
    run of `spe` steps per epoch saves."""
    epoch, step, g = state["epoch"], state["step_in_epoch"], state["global_step"]
    if step >= spe or g != epoch * spe + step:  # a run rolls a full epoch over before it saves
        return (f"its position (epoch {epoch}, step {step} in it, global step {g}) is not one a run of "
                f"{count(spe, 'step')} per epoch reaches")  # fmt: skip
    # The epochs' losses, and those of the epoch a step checkpoint was taken in, so far.
    partial = state["partial"].get("losses", [])
    recorded = len(state["step_losses"]) + (len(partial) if isinstance(partial, list) else -1)
    if recorded != g:
        return f"it records the losses of {count(recorded, 'step')}, not of the {g:,} it trained"
    if not epoch <= len(state["history"]) <= epoch + 1:  # a budget that stops mid-epoch records that epoch
        return f"it records {count(len(state['history']), 'epoch')} of metrics at epoch {epoch}"
    return None


def restore(loop: _Loop, state: dict[str, Any]) -> None:
    """Load a checkpoint payload into the loop (model, optimiser, RNGs, position)."""
    loop.model.load_state_dict(state["model"])
    loop.opt.load_state_dict(state["optimizer"])
    loop.sched.load_state_dict(state["scheduler"])
    loop.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"], loop.device)
    loop.epoch, loop.step = int(state["epoch"]), int(state["step_in_epoch"])
    loop.partial = dict(state["partial"])
    loop.history = [EpochRecord(**h) for h in state["history"]]
    loop.step_losses = state["step_losses"].tolist()
    loop.best = dict(state["best"])
    loop.train_time_s, loop.compile_s = float(state["train_time_s"]), state["compile_s"]
    loop.layout = LayoutReadback(**state["layout"]) if state.get("layout") else None  # older checkpoints: none
    loop.trained_on = state.get("compute") if isinstance(state.get("compute"), dict) else None
    computes = state.get("computes")  # older checkpoints: the writing process's setting alone, or none
    loop.computes = list(computes) if isinstance(computes, list) else [loop.trained_on] if loop.trained_on else []
    loop.started_by = state.get("started_by") if isinstance(state.get("started_by"), dict) else None  # older: none
    loop.ablation_run = loop.ablation_run or ablation_run_of(state.get("ablation_run"))  # a resume by hand keeps it
    resumes = state.get("resumes")  # older checkpoints: none, so earlier resumes are not known
    listed = recorded_resumes(resumes)
    loop.resumes = [dict(r) for r in resumes] if listed else []
    loop.resumes_unrecorded = not listed or state.get("resumes_unrecorded") is not False


# --- the loop -------------------------------------------------------------------


def _device_tensors(data: DataBundle, data_spec: DataSpec, device: torch.device) -> dict[str, torch.Tensor]:
    """Move the whole uint8 data set to the device once (CIFAR-10 is ~180 MB)."""
    t = {k: getattr(data, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
    t["mean"], t["std"] = norm_tensors(data_spec, device)
    return t


def build_loop(
    train: TrainSpec, data_spec: DataSpec, seed: int, model: nn.Module, data: DataBundle,
    device: torch.device, files: RunFiles,
) -> _Loop:
    """Assemble optimiser, schedule, scaler, loss and device data around `model`."""
    check_device_support(train, device)
    host_memory = hostmem.configure(train.host_memory)  # before the loop allocates anything
    model = model.to(device)
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_fn = model
    if train.compile != "off":
        # dynamic=False: torch would otherwise switch every step after a short last batch to a
        # dynamic-batch graph, which a resumed process does not compile: other kernels, other bits.
        step_fn = torch.compile(model, mode=None if train.compile == "default" else train.compile, dynamic=False)
    spe = steps_per_epoch(len(data.train_y), train.batch_size)
    opt = build_optimizer(model, train)
    return _Loop(
        train=train, data_spec=data_spec, seed=seed, model=model, step_fn=step_fn, opt=opt,
        sched=build_scheduler(opt, train, spe),
        scaler=torch.amp.GradScaler(device.type, enabled=train.amp == "fp16"),
        loss_fn=nn.CrossEntropyLoss(label_smoothing=train.label_smoothing),
        device=device, tensors=_device_tensors(data, data_spec, device), files=files, spe=spe,
        host_memory=host_memory, compute=compute_setting(device), started_by=files.started_by,
        ablation_run=files.ablation_run,
    )  # fmt: skip


def _selection_split(loop: _Loop) -> str:
    return "val" if len(loop.tensors["val_y"]) else "test"


def _end_epoch(loop: _Loop, loss: float, acc: float, n: int) -> EpochRecord:
    """Evaluate on the selection split and close the epoch's record."""
    split = _selection_split(loop)
    t = loop.tensors
    vloss, vacc, _ = evaluate(loop.model, t[f"{split}_x"], t[f"{split}_y"], t["mean"], t["std"], loop.train)
    elapsed = loop.partial.get("elapsed", 0.0)
    loop.train_time_s += elapsed
    return EpochRecord(
        epoch=loop.epoch + 1, steps=loop.step, lr=_last_step_lr(loop), train_loss=loss, train_acc=acc,
        val_loss=vloss, val_acc=vacc, epoch_s=elapsed,
        images_per_s=n / elapsed if elapsed > 0 else 0.0,
    )  # fmt: skip


def _last_step_lr(loop: _Loop) -> float:
    # After the scheduler's step the optimiser holds the *next* step's lr.
    last = loop.sched.last_epoch - 1
    return loop.sched.base_lrs[0] * loop.sched.lr_lambdas[0](last)


def selectable(rec: EpochRecord) -> bool:
    """Whether an epoch may be selected: its selection-split loss is a number. Where it is not,
    the model output inf or NaN there, and its accuracy counts argmaxes of non-numbers."""
    return not not_a_number(rec.val_loss)


def _update_best(loop: _Loop, rec: EpochRecord) -> bool:
    """Track the best selection metric over the selectable epochs; True when this epoch improved it."""
    best = loop.best
    if selectable(rec) and (best["metric"] is None or (rec.val_acc or 0.0) > best["metric"]):
        loop.best = {"metric": rec.val_acc, "epoch": rec.epoch, "since": 0}
        return True
    best["since"] += 1
    return False


def _should_stop_early(loop: _Loop) -> bool:
    """Patience runs out only once the best selectable epoch is at or above the floor: before any epoch
    is selectable (their selection loss not a number) there is no best, and nothing counts against
    patience. After one, every epoch that does not improve on the best counts, selectable or not."""
    es, best = loop.train.early_stopping, loop.best["metric"]
    return es is not None and best is not None and best >= es.floor and loop.best["since"] >= es.patience


def _log_epoch(rec: EpochRecord, split: str, total: int, log: Callable[[str], None]) -> None:
    log(
        f"epoch {rec.epoch}/{total}  lr {rec.lr:.4g} (last step)  train loss {rec.train_loss:.4f} "
        f"acc {rec.train_acc:.4f}  {split} loss {rec.val_loss:.4f} acc {rec.val_acc:.4f}  "
        f"{rec.epoch_s:.1f}s  {rec.images_per_s:.0f} img/s"
        + ("" if selectable(rec) else f"  ({split} loss not a number: not eligible as the best epoch)")
    )


def fit(
    train: TrainSpec, data_spec: DataSpec, seed: int, model: nn.Module, data: DataBundle,
    device: torch.device, files: RunFiles, resume: Path | None = None,
    hook: StepHook | None = None, log: Callable[[str], None] = print, progress: bool = False,
) -> TrainResult:
    """Train `model` per the spec sections, writing checkpoints under files.ckpt_dir.

    `log` takes the epoch lines and notes; `progress` adds a per-step tqdm bar.
    """
    loop = build_loop(train, data_spec, seed, model, data, device, files)
    if resume is not None:
        resume_into(loop, resume)
        step = loop.epoch * loop.spe + loop.step
        now = datetime.now(UTC).isoformat(timespec="seconds")
        loop.resumes.append({"checkpoint": resume.name, "global_step": step, "utc": now})  # carried by its checkpoints
        log(f"resume: continuing from {resume.name} (global step {step})")
    with loop.writer:  # every checkpoint is on disk when fit returns (or raises)
        status, diverged_at = _train_epochs(loop, hook, progress, log)
    return _result(loop, status, diverged_at, resume)


def _train_epochs(
    loop: _Loop, hook: StepHook | None, progress: bool, log: Callable[[str], None]
) -> tuple[str, int | None]:
    """Epochs until the end, a budget, early stopping or divergence: (status, diverged at step)."""
    train = loop.train
    status, diverged_at = "completed", None
    while loop.epoch < train.epochs:
        if _budget_reached(loop):
            log(f"step budget reached: {train.max_steps} steps")
            break
        if _should_stop_early(loop):  # checked here too, so resuming a stopped run trains nothing
            status = "early_stopped"
            log(f"early stopping: no improvement for {count(loop.best['since'], 'epoch')}")
            break
        loss, acc, finite, n = train_one_epoch(loop, hook, progress, log)
        if not finite or not math.isfinite(loss):
            # The steps up to the divergence trained too: their time and images count.
            loop.train_time_s += loop.partial.get("elapsed", 0.0)
            loop.unrecorded_images += n
            status, diverged_at = "diverged", _first_nonfinite(loop.step_losses)
            log(f"loss became non-finite{_step_words(diverged_at, loop.spe)}: stopping (status diverged)")
            break
        rec = _end_epoch(loop, loss, acc, n)
        loop.history.append(rec)
        improved = _update_best(loop, rec)
        if loop.step >= loop.spe:  # a budget can stop mid-epoch: keep the true position then
            loop.epoch, loop.step, loop.partial = loop.epoch + 1, 0, {}
        # Its checkpoint is on its way before the epoch's line is shown: a Ctrl-C on seeing the
        # line finds it pending, and waits for it to land (it had been lost with the epoch).
        save_epoch_checkpoints(loop, improved)
        _log_epoch(rec, _selection_split(loop), train.epochs, log)
    return status, diverged_at


def _step_words(step: int | None, spe: int) -> str:
    """' at global step 37 (0-based; step 8/29 of epoch 2)': the record's numbering, and the progress
    lines' (a user test read them as two numberings of one step); '' where no step is known."""
    if step is None:
        return ""
    return f" at global step {step} (0-based; step {step % spe + 1}/{spe} of epoch {step // spe + 1})"


def _first_nonfinite(values: list[float]) -> int | None:
    return next((i for i, v in enumerate(values) if not math.isfinite(v)), None)


def _result(loop: _Loop, status: str, diverged_at: int | None, resume: Path | None) -> TrainResult:
    images = sum(h.images_per_s * h.epoch_s for h in loop.history) + loop.unrecorded_images
    return TrainResult(
        status=status, epochs_run=len(loop.history), history=list(loop.history),
        step_losses=list(loop.step_losses), best_epoch=loop.best["epoch"],
        best_metric=loop.best["metric"], selection_split=_selection_split(loop),
        train_time_s=loop.train_time_s,
        images_per_s=images / loop.train_time_s if loop.train_time_s > 0 else 0.0,
        diverged_at_step=diverged_at, resumed_from=str(resume) if resume else None,
        compile_s=loop.compile_s, steps_per_epoch=loop.spe, host_memory=loop.host_memory, layout=loop.layout,
        trained_on=loop.compute if loop.layout_read else loop.trained_on,  # a step ran here, or not
        trained_here=loop.layout_read, started_by=loop.started_by, trained_at=trained_at(loop),
        ablation_run=loop.ablation_run, resumes_unrecorded=loop.resumes_unrecorded,
        resumed_at_step=loop.resumes[-1]["global_step"] if resume is not None else None,  # fit's own entry
        # a resume that ran no step (a re-judge) is in no checkpoint: its weights went through none (the review)
        resumes=loop.resumes[:-1] if resume is not None and not loop.layout_read else list(loop.resumes),
    )  # fmt: skip
