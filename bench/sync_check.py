#!/usr/bin/env python
"""Host synchronisations of `auditor run` on CUDA, counted by call site.

    python bench/sync_check.py specs/resnet18_fast.yaml --set train.epochs=2 ...

Runs `auditor run SPEC --out TMP [--set ...]` in this process under
torch.cuda.set_sync_debug_mode("warn"): torch then warns at each operation that makes
the host wait for the device (`.item()`, `.cpu()`, `.tolist()`, a blocking copy). The
Python stack at each warning names its call site in the auditor package. A call site
inside the training loop (`train.train_one_epoch`) that fires on more than half of
the steps is a per-step synchronisation: it would stall the host once per step, so
the device would idle while the next step is queued. torch calls the mode a prototype
that does not detect every synchronising operation, so a clean verdict covers those it
detects (`.item()`, `.cpu()`, blocking copies among them).

Prints one line per call site (count, and whether it is inside the training loop), then
the verdict. Exit 0: no per-step synchronisation; 1: at least one; 2: bad input (no
CUDA device, a spec the run refuses); 3: the run itself failed. Figures, no timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

import auditor
from auditor.cli import main as auditor_main
from auditor.words import count

PACKAGE = Path(auditor.__file__).resolve().parent
SYNC_WARNING = "synchronizing CUDA operation"  # the text torch's sync debug mode warns with
LOOP_FUNCTION = "train_one_epoch"
WARNINGS_MODULE = Path(warnings.__file__).resolve()  # its frames sit between the call site and the hook


@dataclass(frozen=True)
class Site:
    """One call site in the auditor package where the host waited for the device."""

    where: str  # "train.py:304 train_one_epoch"
    in_loop: bool  # called (directly or not) from train.train_one_epoch
    count: int


def call_site(stack: list[traceback.FrameSummary]) -> tuple[str, bool]:
    """(innermost auditor frame as "file:line function", whether train_one_epoch is on the stack)."""
    ours = [f for f in stack if Path(f.filename).resolve().is_relative_to(PACKAGE)]
    inner = ours[-1] if ours else stack[-1]
    name = Path(inner.filename).resolve().relative_to(PACKAGE) if ours else Path(inner.filename).name
    return f"{name}:{inner.lineno} {inner.name}", any(f.name == LOOP_FUNCTION for f in ours)


@contextmanager
def recorded_syncs() -> Iterator[Counter[tuple[str, bool]]]:
    """Count torch's synchronisation warnings by call site while the block runs (CUDA only)."""
    sites: Counter[tuple[str, bool]] = Counter()
    shown = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if SYNC_WARNING in str(message):
            stack = [f for f in traceback.extract_stack()[:-1] if Path(f.filename).resolve() != WARNINGS_MODULE]
            sites[call_site(stack)] += 1
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=f".*{SYNC_WARNING}")  # every one, not once per location
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield sites
        finally:
            torch.cuda.set_sync_debug_mode("default")


def per_step(site: Site, steps: int) -> bool:
    """A call site in the training loop that fires on more than half of the steps."""
    return site.in_loop and site.count * 2 > steps


def report(sites: list[Site], steps: int, epochs: int) -> tuple[str, bool]:
    """The printed table and verdict; True when no call site synchronises per step."""
    rows = [f"{s.count:>8}  {'training loop' if s.in_loop else 'outside it':<13}  {s.where}" for s in sites]
    in_loop = sum(s.count for s in sites if s.in_loop)
    bad = [s for s in sites if per_step(s, steps)]
    lines = [
        f"{count(steps, 'training step')} in {count(epochs, 'epoch')}; host synchronisations by call site (torch sync debug mode):",
        f"{'count':>8}  {'where':<13}  call site", *(rows or ["       0  (none)"]),
        f"inside the training loop: {in_loop} in all, {in_loop / max(steps, 1):.3f} per step",
    ]
    if bad:
        lines.append("VERDICT: per-step host synchronisation at " + "; ".join(s.where for s in bad))
    else:
        lines.append("VERDICT: no per-step host synchronisation (no call site in the loop fires on more than half of the steps)")
    lines.append("(torch's sync debug mode is a prototype that does not detect every synchronising operation: "
                 "this counts those it detects)")
    return "\n".join(lines), not bad


def trained_steps(out: Path) -> tuple[int, int]:
    """(steps, epochs) the run trained, from the audit.json it wrote under `out`."""
    audit = json.loads(next(out.glob("reports/*/audit.json")).read_text())
    t = audit["training"]
    return t["epochs_run"] * t["steps_per_epoch"], t["epochs_run"]


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
    if not has_cuda():
        print("sync_check: needs a CUDA device; this machine has none", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="auditor-sync-") as tmp:
        sets = [x for s in a.set for x in ("--set", s)]
        with recorded_syncs() as counted:
            rc = auditor_main(["run", a.spec, "--out", tmp, *sets])
        if rc not in (0, 1):  # 1: a criterion failed, which says nothing about synchronisation
            print(f"sync_check: `auditor run` exited {rc}", file=sys.stderr)
            return 2 if rc == 2 else 3
        steps, epochs = trained_steps(Path(tmp))
    sites = sorted((Site(w, loop, n) for (w, loop), n in counted.items()), key=lambda s: (not s.in_loop, -s.count))
    text, clean = report(sites, steps, epochs)
    print(text)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
