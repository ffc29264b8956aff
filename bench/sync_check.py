#!/usr/bin/env python
"""Host synchronisations of `auditor run` on CUDA, counted by call site.

    python bench/sync_check.py specs/resnet18_fast.yaml --set train.epochs=2 ...

Runs `auditor run SPEC --out TMP [--set ...]` in this process under
torch.cuda.set_sync_debug_mode("warn"): torch then warns at each operation that makes
the host wait for the device (`.item()`, `.cpu()`, `.tolist()`, a blocking copy). The
Python stack at each warning names its call site in the auditor package. A call site
inside the training loop (`train.train_one_epoch`) that synchronises at more than half
of the training steps (distinct (epoch, step) positions, read from that function's
frame, so a checkpoint's many copies count as one step) is a per-step synchronisation:
it would stall the host once per step, so the device would idle while the next step is
queued. torch calls the mode a prototype that does not detect every synchronising
operation, so a clean verdict covers those it detects (`.item()`, `.cpu()`, blocking
copies among them). Periodic reads count where the run reaches them: the log-point loss
read fires every `train.log_every_steps` steps, so a run whose epochs are shorter than
that never shows it.

Prints one line per call site (synchronisations, the distinct steps they happened at,
whether inside the training loop), then the verdict. Exit 0: no per-step
synchronisation; 1: at least one; 2: bad input (no CUDA device, a spec the run refuses,
a run that did not train on CUDA); 3: the run itself failed; 130 / 143: the run was
stopped (Ctrl-C, SIGTERM). Figures, no timings.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import traceback
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

import auditor
from auditor.cli import main as auditor_main
from auditor.errors import InvalidInput
from auditor.spec import load_spec
from auditor.words import count

PACKAGE = Path(auditor.__file__).resolve().parent
SYNC_WARNING = "synchronizing CUDA operation"  # the text torch's sync debug mode warns with
LOOP_FUNCTION = "train_one_epoch"
WARNINGS_MODULE = Path(warnings.__file__).resolve()  # its frames sit between the call site and the hook
DEVICE_TYPE = "cuda"  # the device the run must have trained on for the count to mean anything


@dataclass(frozen=True)
class Site:
    """One call site in the auditor package where the host waited for the device."""

    where: str  # "train.py:304 train_one_epoch"
    in_loop: bool  # called (directly or not) from train.train_one_epoch
    count: int  # synchronisations
    steps: int  # distinct training steps (epoch, step) they happened at; 0 outside the loop


@dataclass
class Tally:
    """What one call site did so far: synchronisations, and the training steps they happened at."""

    count: int = 0
    at: set[tuple[int, int]] = field(default_factory=set)


def call_site(stack: list[traceback.FrameSummary]) -> tuple[str, bool]:
    """(innermost auditor frame as "file:line function", whether train_one_epoch is on the stack)."""
    ours = [f for f in stack if Path(f.filename).resolve().is_relative_to(PACKAGE)]
    inner = ours[-1] if ours else stack[-1]
    name = Path(inner.filename).resolve().relative_to(PACKAGE) if ours else Path(inner.filename).name
    return f"{name}:{inner.lineno} {inner.name}", any(f.name == LOOP_FUNCTION for f in ours)


def loop_position(frame: FrameType | None) -> tuple[int, int] | None:
    """(epoch, step) of the innermost train_one_epoch on the stack from `frame`; None outside it.

    The step is -1 before the epoch's first batch (its order and augmentation are being copied).
    """
    while frame is not None:
        code = frame.f_code
        if code.co_name == LOOP_FUNCTION and Path(code.co_filename).resolve().is_relative_to(PACKAGE):
            return getattr(frame.f_locals.get("loop"), "epoch", -1), frame.f_locals.get("step", -1)
        frame = frame.f_back
    return None


@contextmanager
def recorded_syncs() -> Iterator[dict[tuple[str, bool], Tally]]:
    """Tally torch's synchronisation warnings by call site while the block runs (CUDA only)."""
    sites: dict[tuple[str, bool], Tally] = defaultdict(Tally)
    shown = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if SYNC_WARNING not in str(message):
            shown(message, category, filename, lineno, file, line)
            return
        stack = [f for f in traceback.extract_stack()[:-1] if Path(f.filename).resolve() != WARNINGS_MODULE]
        tally = sites[call_site(stack)]
        tally.count += 1
        if (position := loop_position(sys._getframe(1))) is not None:
            tally.at.add(position)

    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=f".*{SYNC_WARNING}")  # every one, not once per location
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield sites
        finally:
            torch.cuda.set_sync_debug_mode(previous)


def per_step(site: Site, steps: int) -> bool:
    """A call site in the training loop that synchronises at more than half of the steps."""
    return site.in_loop and site.steps * 2 > steps


def report(sites: list[Site], steps: int, epochs: int) -> tuple[str, bool]:
    """The printed table and verdict; True when no call site synchronises per step."""
    rows = [f"{s.count:>8}  {s.steps if s.in_loop else '-':>6}  {'training loop' if s.in_loop else 'outside it':<13}  "
            f"{s.where}" for s in sites]  # fmt: skip
    in_loop = sum(s.count for s in sites if s.in_loop)
    bad = [s for s in sites if per_step(s, steps)]
    lines = [
        (f"{count(steps, 'training step')} in {count(epochs, 'epoch')}; host synchronisations by call site "
         "(torch sync debug mode; 'steps': the distinct training steps they happened at):"),
        f"{'count':>8}  {'steps':>6}  {'where':<13}  call site", *(rows or ["       0  (none)"]),
        f"inside the training loop: {in_loop} in all, {in_loop / max(steps, 1):.3f} per step",
    ]
    if bad:
        lines.append("VERDICT: per-step host synchronisation at " + "; ".join(s.where for s in bad))
    else:
        lines.append("VERDICT: no per-step host synchronisation (no call site in the loop synchronises at more "
                     "than half of the steps)")  # fmt: skip
    lines.append("(torch's sync debug mode is a prototype that does not detect every synchronising operation: "
                 "this counts those it detects)")
    return "\n".join(lines), not bad


def trained(report_dir: Path) -> tuple[int, dict[str, Any]]:
    """(steps the run trained, as steps.csv lists them; its audit.json's training section) from `report_dir`."""
    with (report_dir / "steps.csv").open(newline="") as f:
        steps = sum(1 for _ in csv.DictReader(f))
    return steps, json.loads((report_dir / "audit.json").read_text())["training"]


def run_problem(training: dict[str, Any]) -> str | None:
    """Why a finished run says nothing about CUDA synchronisation (it trained elsewhere, or no step)."""
    device = (training.get("trained_on") or {}).get("device")
    if not device:
        return "the run trained no step, so there is nothing to count"
    if not str(device).startswith(DEVICE_TYPE):
        return f"the run trained on {device}, not {DEVICE_TYPE}: set train.device: {DEVICE_TYPE}"
    return None


def has_cuda() -> bool:
    """Whether torch sees a CUDA device (the sync debug mode exists only there)."""
    return torch.cuda.is_available()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="the spec to run (needs train.device: cuda)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as `auditor run --set`")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the spec under the sync debug mode and print the call sites and verdict."""
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:  # a spec that cannot run is said as such, also on a machine without CUDA (a pre-check on a laptop)
        spec = load_spec(a.spec, a.set)
    except InvalidInput as exc:
        return refuse(str(exc))
    device = spec.train.device  # said before training, not after it (a user test); `auto` picks CUDA where there is one
    if device != "auto" and not device.startswith(DEVICE_TYPE):
        return refuse(f"the spec trains on {device}, not {DEVICE_TYPE}: set train.device: {DEVICE_TYPE} (or auto)")
    if not has_cuda():
        return refuse("needs a CUDA device; this machine has none (the spec itself validates; its data folder was not read)")
    with tempfile.TemporaryDirectory(prefix="auditor-sync-") as tmp:
        sets = [x for s in a.set for x in ("--set", s)]
        try:
            with recorded_syncs() as tallies:
                rc = auditor_main(["run", a.spec, "--out", tmp, *sets])
        except Exception as exc:  # noqa: BLE001 - a crash of the run is this script's exit 3, with what it was
            print(f"sync_check: the run failed: {exc!r}", file=sys.stderr)
            return 3
        if rc not in (0, 1):  # 1: a criterion failed, which says nothing about synchronisation
            print(f"sync_check: `auditor run` exited {rc}", file=sys.stderr)
            return rc if rc in (2, 130, 143) else 3  # bad input, or stopped (Ctrl-C, SIGTERM): as the run said
        steps, training = trained(next(Path(tmp).glob("reports/*")))
    if (problem := run_problem(training)) is not None:
        return refuse(problem)
    sites = sorted((Site(w, loop, t.count, len(t.at)) for (w, loop), t in tallies.items()),
                   key=lambda s: (not s.in_loop, -s.count))  # fmt: skip
    text, clean = report(sites, steps, training["epochs_run"])
    print(text)
    if training["status"] == "diverged":
        print(f"(the run diverged: the count covers the {count(steps, 'step')} it trained)")
    return 0 if clean else 1


def refuse(why: str) -> int:
    """Bad input: say why on stderr; exit code 2."""
    print(f"sync_check: {why}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
