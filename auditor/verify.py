"""`auditor verify`: train one spec three times and compare the runs bit for bit.

Run A and run B are twin runs, each in a fresh process. Run K is killed with
SIGKILL in the middle of an epoch (right after global step `kill_at`, 0-based)
and continued with `auditor run --resume` in another fresh process. A vs B
and A vs K are compared on the per-step training losses (steps.csv), the
per-epoch metrics (metrics.csv without its timing columns), the results each run
measured after training (audit.json's status and accuracies, and the test
evaluation's loss, per-class accuracies and confusion matrix) and every tensor of
the final checkpoint (`last.pt`: model parameters, BN buffers, optimiser
momentum buffers keyed by parameter name, and what a resume restores: scheduler,
grad scaler, RNG streams, position, best-so-far), with best.pt's weights where
best.pt was saved at another step.

The verdict is `bitwise` (everything identical), `tolerance` (every
difference <= spec.verify.tolerance; a pass only with
spec.verify.allow_tolerance), `diverged`, `incomplete` (the runs agree, bitwise or
within tolerance, but training diverged after their last checkpoint, or before any:
no final weights to compare; a fail), or
`unresumed` (the runs agree
but run K did not continue from a checkpoint after a kill: its checkpoints
were all damaged, or it stopped before its first checkpoint, so the resume
went untested and verify fails; a kill that no checkpoint can precede is
refused up front). The verdict goes into run A's audit.json
as the `verification` block (see `verify`), into `metrics.reproducible`
(so a `reproducible: "== bitwise"` criterion gates on it), and into
`<out>/verify/<name>/verify.json`.

Everything lives under `<out>/verify/<name>/` (verify's own folder, replaced
when a verify finishes; a failed or interrupted attempt goes to `<name>.failed/`
and the earlier evidence stays; files verify did not write there are refused); the user's `<out>/reports/<name>` and
`<out>/checkpoints/<name>` are never touched. Runs are sequential.

Test-only fault injection (never set in normal use):

* `AUDITOR_INJECT_NOISE_AT_STEP=N` in verify's environment is forwarded to
  one run only, the one named by `AUDITOR_VERIFY_NOISE_RUN` (a, b or k;
  default b); that run adds unseeded noise to its weights after step N.
* `AUDITOR_VERIFY_CORRUPT_NEWEST=1` flips bytes in run K's newest checkpoint
  after the kill and before the resume, so the resume must fall back to the
  previous intact one.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from auditor import checkpoint
from auditor.audit import (
    FAILED,
    STAGING,
    VERIFY_MARKER,
    RunPaths,
    aside,
    decide,
    is_number,
    losses_text,
    nothing_differs,
    read_audit,
    run_paths,
    scope_text,
    sheet_edited,
    short_of_budget,
    unweighed,
    verify_workdir,
    write_json,
)
from auditor.check import (
    BROKEN,
    DIVERGED,
    UNSELECTED,
    record_gate_status,
    verdict,
    verification_passed,
)
from auditor.errors import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    InvalidInput,
    parent_env,
    signal_name,
    wait_passing_stop,
)
from auditor.fileio import atomic_write_bytes, held_lock, lock_beside, out_error, why_not_writable
from auditor.runner import (
    ENV_KILL_AT,
    ENV_NOISE_AT,
    ENV_OUTPUT_ROOT,
    discard,
    foreign_files,
    leftover_note,
    load_final_checkpoints,
    load_run_data,
    spec_source,
    unlisted,
)
from auditor.spec import (
    SetItem,
    Spec,
    VerifySpec,
    is_nan,
    load_spec,
    parse_sets,
    resolved_dict,
    resolved_yaml,
    set_args,
    short_value,
    spec_hash,
    unread_data_fields,
    validate_spec,
    written_by,
)
from auditor.words import count, every_n, out_args, path_arg

ENV_NOISE_RUN = "AUDITOR_VERIFY_NOISE_RUN"  # test-only: which run gets ENV_NOISE_AT (a|b|k)
ENV_CORRUPT_NEWEST = "AUDITOR_VERIFY_CORRUPT_NEWEST"  # test-only: corrupt K's newest checkpoint
TIMING_COLUMNS = ("epoch_s", "images_per_s")  # metrics.csv columns that are wall-clock, not results
TOP_N = 10
PAIRS = (("a", "b"), ("a", "k"))
Log = Callable[[str], None]


class RunFailed(Exception):
    """A training process of verify crashed (not a verdict: exit code 1 with its log tail)."""


# --- planning -------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The resolved spec and the step arithmetic every run shares."""

    spec: Spec
    workdir: Path
    steps_per_epoch: int
    total_steps: int
    checkpoint_every: int
    kill_at: int
    budget: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    faults: Faults = field(default_factory=lambda: Faults())
    command: str = ""  # this verification as a command that repeats it (`verify_command`)


@dataclass(frozen=True)
class Faults:
    """Test-only fault injection, read once from the environment by the CLI (`Faults.from_env`)."""

    noise_at: int | None = None  # unseeded noise into one run's weights after this global step
    noise_run: str = "b"  # which run gets it: a | b | k
    corrupt_newest: bool = False  # corrupt run K's newest checkpoint before it resumes

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Faults:
        """Parse the AUDITOR_* variables; InvalidInput names a bad one."""
        noise_at, noise_run = env.get(ENV_NOISE_AT), env.get(ENV_NOISE_RUN)
        if noise_run is not None and noise_run not in ("a", "b", "k"):
            raise InvalidInput(f"{ENV_NOISE_RUN}: must be a, b or k, got {noise_run!r}")
        if noise_at is None and noise_run is not None:
            raise InvalidInput(f"{ENV_NOISE_RUN} is set but {ENV_NOISE_AT} is not")
        try:
            step = None if noise_at is None else int(noise_at)
        except ValueError:
            raise InvalidInput(f"{ENV_NOISE_AT}: expected a global step, got {noise_at!r}") from None
        corrupt = env.get(ENV_CORRUPT_NEWEST, "")
        if corrupt not in ("", "0", "1"):
            raise InvalidInput(f"{ENV_CORRUPT_NEWEST}: must be 1 (on) or 0 (off), got {corrupt!r}")
        return cls(step, noise_run or "b", corrupt == "1")

    def unapplied(self, steps_a: int) -> list[str]:
        """A note when run A stopped (early stopping, divergence) before the noise step: the runs,
        which stop where run A did, never got the noise, so the injection tested nothing."""
        if self.noise_at is None or self.noise_at < steps_a:
            return []
        return [(f"test-only fault injection: run A stopped after {steps_a} steps, before step {self.noise_at}, so no "
                 f"noise was added to run {self.noise_run}: the injection tested nothing")]  # fmt: skip

    def notes(self, total: int) -> list[str]:
        """What will be injected, for the evidence; InvalidInput when the step is outside the budget."""
        if self.noise_at is None:
            return []
        if not 0 <= self.noise_at < total:
            raise InvalidInput(f"{ENV_NOISE_AT}: {self.noise_at} is outside the budget (0..{total - 1})")
        return [
            f"test-only fault injection: unseeded noise added to run {self.noise_run}'s weights "
            f"after step {self.noise_at} ({ENV_NOISE_AT})"
        ]


def total_steps(epochs: int, max_steps: int | None, spe: int) -> int:
    """Global steps a run trains for: epochs * steps per epoch, capped by max_steps."""
    return min(epochs * spe, max_steps) if max_steps is not None else epochs * spe


def killed_done(kill_at: int) -> str:
    """'0-based: 3 steps done' for a kill after step 2: --kill-at counts steps from 0, while
    checkpoint names (step-00000002.pt) count the steps done."""
    return f"0-based: {count(kill_at + 1, 'step')} done"


def resume_position(kill_at: int, spe: int, every: int) -> int:
    """Global position (steps done) of the newest checkpoint written before a kill after step `kill_at`.

    Step checkpoints are written after position p when p % every == 0 and p is
    inside an epoch; last.pt at every epoch end. The checkpoint at kill_at + 1
    is never written (the kill comes first). 0 means none: start from scratch.
    """
    return max(kill_at // spe * spe, kill_at // every * every)  # the newest multiple of either, 0 where none


def checkpoint_name(position: int, spe: int) -> str | None:
    """File name of the checkpoint at a global position (None for position 0)."""
    if position == 0:
        return None
    return "last.pt" if position % spe == 0 else f"step-{position:08d}.pt"


def default_kill_step(total: int, spe: int, every: int) -> int:
    """A step in the middle of an epoch, near the middle of the budget, after a step checkpoint.

    Prefers a kill that must replay at least two steps and skips an epoch's
    last step (whose kill would look like an epoch boundary). Falls back to a
    kill after an epoch-end checkpoint when no step checkpoint can precede one,
    then to the middle step when no checkpoint can (`make_plan` refuses that).
    Worked out from the checkpoint positions near the middle, never by walking the
    budget's steps (a budget of 10^14 steps is planned as fast as one of 10).
    """
    def key(s: int) -> tuple[int, bool, int]:  # nearest the middle; then one that replays a step; then earliest
        return abs(2 * s - (total - 1)), s == resume_position(s, spe, every), s

    near = [min(max(s, lo), hi) for lo, hi in _mid_epoch_kills(total, spe, every) for s in _middle(total)]
    if near:
        return min(near, key=key)
    first = min(spe, every)  # the first checkpoint's position: any later kill resumes from one
    after = [max(s, first) for s in _middle(total) if max(s, first) < total]
    return min(after, key=key) if after else total // 2


def _middle(total: int) -> tuple[int, int]:
    """The budget's middle step(s): one, or the two beside a middle that falls between steps."""
    return (total - 1) // 2, total // 2


def _mid_epoch_kills(total: int, spe: int, every: int) -> list[tuple[int, int]]:
    """The kill steps nearest the budget's middle on either side that resume from a step checkpoint
    of their own epoch and are not its last step, as (first, last) ranges: in epoch e they run from
    its first step checkpoint q (a multiple of `every` inside it, not its last step) to its
    second-to-last step. The residues of multiples of `every` modulo `spe` repeat within `spe`
    multiples, so looking that far on each side finds one wherever one can be."""
    ranges = []
    for side in (-1, 1):
        q = (_middle(total)[0] // every + (side > 0)) * every  # the multiples of every at or below / above the middle
        for _ in range(spe + 1):
            if not 0 < q < total:
                break
            epoch_start = q // spe * spe
            first = max(epoch_start + 1, -(-(epoch_start + 1) // every) * every)  # the epoch's first multiple
            last = min(epoch_start + spe - 2, total - 1)
            if q % spe and first <= last:
                ranges.append((first, last))
                break
            q += side * every
    return ranges


def _training_images(spec: Spec, spec_arg: str, sets: Sequence[SetItem] = ()) -> int:
    """How many images one epoch trains on (the data stage's split, provenance checks included)."""
    with spec_source(spec_arg, sets):  # `data.root: ...` named with the spec, as `auditor run` does
        n_train = len(load_run_data(spec).train_y)
    if n_train == 0:
        raise InvalidInput(f"{spec_arg}: no training images after the validation split")
    return n_train


def _with_checkpoint_cadence(spec: Spec, spe: int, total: int, spec_arg: str) -> tuple[Spec, list[str]]:
    """The spec with mid-epoch checkpoints when it has none (every quarter of an epoch, or of a
    shorter budget, rounded down, at least every step), and a note saying so."""
    if spec.train.checkpoint_every_steps is not None:
        return spec, []
    # A kill then lands between checkpoints, not only at epoch ends, and a
    # budget shorter than an epoch still writes checkpoints before its kill.
    base = min(spe, total)
    every = max(1, base // 4)
    raw = resolved_dict(spec)
    raw["train"]["checkpoint_every_steps"] = every
    unit = "an epoch" if spe <= total else "the budget"
    share = f"a checkpoint every {every} of the {base} steps of {unit}" + (", a quarter" if every * 4 == base else "")
    note = (
        f"train.checkpoint_every_steps was unset: verify set it to {every} ({share}) for all three runs, "
        "so they stay comparable"
    )
    return validate_spec(raw, spec_arg), [note]


def _check_device(spec: Spec, spec_arg: str, sets: Sequence[SetItem] = ()) -> None:
    """Refuse toggles the device cannot run now, as `auditor run` does, rather than after the
    earlier evidence was set aside, naming the spec (and the --set that set the field) as it does."""
    from auditor.environment import resolve_device
    from auditor.train import check_device_support

    with spec_source(spec_arg, sets):
        check_device_support(spec.train, resolve_device(spec.train.device))


def _check_kill_at(kill_at: int | None, total: int, spec: Spec, spe: int) -> None:
    if kill_at is not None and not 0 <= kill_at < total:
        raise InvalidInput(
            f"--kill-at: {kill_at} is outside the budget (global steps 0..{total - 1}: "
            f"{count(spec.train.epochs, 'epoch')} x {count(spe, 'step')}"
            + (f", capped at max_steps {spec.train.max_steps})" if total < spec.train.epochs * spe else ")")
        )


def _check_resume_is_exercised(k: int, chosen: bool, total: int, spe: int, every: int) -> None:
    """Refuse a kill that no checkpoint precedes: its resume would train from scratch, untested."""
    if resume_position(k, spe, every) > 0:
        return
    if total < 2:
        raise InvalidInput(f"the budget is {total} step: verify needs at least 2 (one to checkpoint after, "
                           "one to kill after); use a larger --steps or --epochs")  # fmt: skip
    first = min(every, spe)  # the first checkpoint is written after this many steps
    cadence = f"checkpoints after {every_n(every, 'step')} and at each epoch end ({count(spe, 'step')})"
    if chosen and first < total:
        before = ", before its checkpoint" if k + 1 == first else ""
        steps, last = (f"{first} to {total - 1}", "") if first < total - 1 else (f"{first}", "the budget's last step; ")
        raise InvalidInput(f"--kill-at: {k} ({killed_done(k)}, killed at the end of that step{before}) "
                           f"comes before the first checkpoint ({cadence}), so the resume would train from scratch and "
                           f"go untested; use --kill-at {steps} ({last}{killed_done(first)}, resumed from the "
                           f"checkpoint after {count(first, 'step')})")  # fmt: skip
    raise InvalidInput(f"no checkpoint is written before the last of the budget's {total} steps ({cadence}: the "
                       f"first after {count(min(first, total), 'step')}, at its end), so no kill could be resumed from one; lower "
                       "train.checkpoint_every_steps or raise the budget")  # fmt: skip


def _budgeted_spec(spec_arg: str, sets: list[str], epochs: int | None,
                   steps: int | None) -> tuple[Spec, list[SetItem]]:
    """The spec with --set and verify's budget flags applied (as `train.epochs`/`train.max_steps` items
    after the user's), and those items. Raises InvalidInput."""
    for flag, value in (("--epochs", epochs), ("--steps", steps)):
        if value is not None and value < 1:
            raise InvalidInput(f"{flag}: must be >= 1, got {value}")
    budget = [(f"train.epochs={epochs}", f"--epochs {epochs}")] if epochs is not None else []
    budget += [(f"train.max_steps={steps}", f"--steps {steps}")] if steps is not None else []
    budget_sets, given_as = [item for item, _ in budget], [flag for _, flag in budget]
    try:
        spec = load_spec(spec_arg, [*sets, *budget_sets], given_as)
    except InvalidInput as exc:
        if epochs is None or "epochs" not in str(exc) or load_spec_problem(spec_arg, sets) is not None:
            raise
        raise InvalidInput(f"{exc} (--epochs {epochs} sets train.epochs; --steps shortens the budget and keeps "
                           "the spec's schedule)") from None  # fmt: skip
    return spec, parse_sets([*sets, *budget_sets], given_as)


def make_plan(
    spec_arg: str, sets: list[str], out: Path, epochs: int | None, steps: int | None, kill_at: int | None,
    faults: Faults | None = None,
) -> Plan:
    """Resolve the spec with the budget and checkpoint cadence; validate --kill-at. Raises InvalidInput."""
    from auditor.data import steps_per_epoch

    spec, items = _budgeted_spec(spec_arg, sets, epochs, steps)
    _check_device(spec, spec_arg, items)
    spe = steps_per_epoch(_training_images(spec, spec_arg, items), spec.train.batch_size)
    total = total_steps(spec.train.epochs, spec.train.max_steps, spe)
    spec, notes = _with_checkpoint_cadence(spec, spe, total, spec_arg)
    every = spec.train.checkpoint_every_steps
    assert every is not None  # set just above when the spec had none
    own = _own_max_steps(spec_arg, sets) if steps is not None else None
    past = own is not None and total > own  # said below, which says more than that --steps replaced it
    notes += _flags_replacing_sets(items[: len(sets)], epochs, None if past else steps)
    notes += [note for _, note in unread_data_fields(spec.data)]  # a user test: said only in the runs' logs
    if steps is not None and steps > spec.train.epochs * spe:
        notes.append(f"--steps {steps} exceeds train.epochs x steps per epoch: the budget is {total} steps")
    if past:
        by = written_by(items[: len(sets)], ("train", "max_steps"))  # the user's own --set, where it gave it
        whose = f"the train.max_steps {own} of {by[0].shown}" if by else f"the spec's own train.max_steps {own}"
        notes.append(f"--steps {steps} goes past {whose}: the runs compared train {count(total - own, 'step')} that "
                     "a run of the spec never trains")  # fmt: skip
    _check_kill_at(kill_at, total, spec, spe)
    budget = {
        "epochs": spec.train.epochs, "steps": spec.train.max_steps, "total_steps": total,
        "steps_per_epoch": spe, "checkpoint_every_steps": every,
        "source": "--epochs" if epochs is not None else "--steps" if steps is not None else "spec",
    }  # fmt: skip
    k = default_kill_step(total, spe, every) if kill_at is None else kill_at
    _check_resume_is_exercised(k, kill_at is not None, total, spe, every)
    return Plan(spec, verify_workdir(out, spec.name), spe, total, every, k, budget, notes, faults or Faults(),
                verify_command(spec_arg, sets, out, {"--epochs": epochs, "--steps": steps, "--kill-at": kill_at}))


def verify_command(spec_arg: str, sets: Sequence[str], out: Path, flags: Mapping[str, int | None]) -> str:
    """`auditor verify` as given (`flags`: its budget and kill flags, None where not given), quoted
    for a POSIX shell, so that a verified sheet says how to repeat its verification."""
    given = [a for flag, value in flags.items() if value is not None for a in (flag, str(value))]
    return shlex.join(["auditor", "verify", path_arg(spec_arg), *set_args(sets), *out_args(out), *given])


def _flags_replacing_sets(user: Sequence[SetItem], epochs: int | None, steps: int | None) -> list[str]:
    """A note for each of verify's budget flags that replaced what the user's own --set gave."""
    notes = []
    for flag, value, key in (("--epochs", epochs, ("train", "epochs")), ("--steps", steps, ("train", "max_steps"))):
        if value is not None and (by := written_by(user, key)) is not None and by[1] != value:
            notes.append(f"{flag} {value} replaces {by[0].shown}: train.{key[1]} is {value} for all three runs")
    return notes


def _own_max_steps(spec_arg: str, sets: list[str]) -> int | None:
    """The spec's own train.max_steps, before --steps replaced it (None: none, or it does not load)."""
    try:
        return load_spec(spec_arg, sets).train.max_steps
    except InvalidInput:
        return None


def load_spec_problem(spec_arg: str, sets: list[str]) -> str | None:
    """Why the spec with `sets` alone (no budget of verify's) is refused, or None."""
    try:
        load_spec(spec_arg, sets)
    except InvalidInput as exc:
        return str(exc)
    return None


# --- the runs -------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One training process that verify started."""

    id: str  # a | b | k
    role: str
    returncode: int
    wall_s: float
    log: str

    def as_dict(self) -> dict[str, Any]:
        """The record as verify.json stores it (wall time rounded to ms)."""
        return {"id": self.id, "role": self.role, "returncode": self.returncode,
                "wall_s": round(self.wall_s, 3), "log": self.log}  # fmt: skip


def _child_env(faults: Faults, run_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for run `run_id`, with only the faults meant for that run."""
    env = {k: v for k, v in parent_env().items() if k not in (ENV_KILL_AT, ENV_NOISE_AT, ENV_NOISE_RUN)}
    if faults.noise_at is not None and faults.noise_run == run_id:
        env[ENV_NOISE_AT] = str(faults.noise_at)
    env.update(extra or {})
    return env


# torch.compile's kernel and graph cache of one run, inside its output root: each run compiles
# afresh rather than reuse run A's kernels (run K's resumed process reuses run K's, as a resume on
# the same machine would); removed once the three runs have finished, before they are compared.
COMPILE_CACHE = ".inductor-cache"


def compile_cache(plan: Plan, run_id: str) -> Path:
    """Where run `run_id`'s torch.compile caches go."""
    return plan.workdir / run_id / COMPILE_CACHE


def _start(
    plan: Plan, spec_file: Path, run_id: str, role: str, log: Log, *, resume: bool = False,
    extra_env: dict[str, str] | None = None,
) -> RunRecord:
    cmd = [sys.executable, "-m", "auditor", "run", str(spec_file), "--out", str(plan.workdir / run_id)]
    cmd += ["--resume"] if resume else []
    log_path = plan.workdir / "logs" / f"{run_id}-{role}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"verify: run {run_id} ({role}) ...")
    cache = compile_cache(plan, run_id)
    own = {ENV_OUTPUT_ROOT: str(plan.workdir.parent.parent),  # verify's --out: its runs' git state leaves it out
           "TORCHINDUCTOR_CACHE_DIR": str(cache), "TRITON_CACHE_DIR": str(cache / "triton")}  # fmt: skip
    t0 = time.perf_counter()
    with log_path.open("wb") as f:
        f.write(("$ " + shlex.join(cmd) + "\n").encode())
        f.flush()
        rc = wait_passing_stop(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                                env=_child_env(plan.faults, run_id, {**own, **(extra_env or {})})), "auditor verify")  # fmt: skip
    rec = RunRecord(run_id, role, rc, time.perf_counter() - t0, str(log_path.relative_to(plan.workdir)))
    record = run_paths(plan.workdir / run_id, plan.spec.name).reports / "audit.json"
    why = {EXIT_FAILED: _failed_why(record) if rc == EXIT_FAILED else "",
           -signal.SIGKILL: " (killed, as planned)" if extra_env and ENV_KILL_AT in extra_env else ""}  # fmt: skip
    log(f"verify: run {run_id} ({role}) exited {rc}{why.get(rc, '')} after {rec.wall_s:.1f}s")
    return rec


def _failed_why(record: Path) -> str:
    """Why a run exited 1, from the record it wrote (`record`, its audit.json): its training
    diverged or left a broken model, or its criteria failed (named); a crash where none is."""
    if not record.is_file():
        return " (it crashed: see its log)"
    try:
        audit = read_audit(record.parent)
        gate = record_gate_status(audit)
    except (InvalidInput, KeyError, TypeError, AttributeError):
        return " (its audit.json could not be read: see its log)"
    said = f"its {GATE_WHY[gate]}" if gate in GATE_WHY else _failed_criteria(audit)
    return f" ({said}: its own sheet says FAIL; the comparison decides verify's verdict)"


# What a run's gate status (check.gate_status) says of its training, after "its" or "run A".
GATE_WHY: Mapping[str, str] = MappingProxyType({
    DIVERGED: "training diverged", BROKEN: "model holds non-finite values", UNSELECTED: "training selected no epoch",
})  # fmt: skip


def _failed_criteria(audit: Mapping[str, Any]) -> str:
    """'its criteria failed: latency_ms < 50 (measured 239.99)', from the record, for the cause to
    be seen (a user test: "at this budget" was said of a latency timed on a busy machine)."""
    results = audit.get("criteria")
    failed = [f"{c['metric']} {c['expr']} (measured {short_value(c['measured'])})" for c in results
              if isinstance(c, dict) and c.get("passed") is False and {"metric", "expr", "measured"} <= c.keys()
              ] if isinstance(results, list) else []  # fmt: skip
    more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
    return f"its criteria failed: {'; '.join(failed[:3])}{more}" if failed else "its criteria failed"


# After a run's own words, which speak of `auditor run` and its folders inside verify's work dir.
AFRESH = ("(verify starts all its runs afresh each time: any advice in its log to continue that run does not "
          "apply; mend what it names, then run `auditor verify` again)")  # fmt: skip


def how_it_failed(returncode: int) -> str:
    """'with exit code 1', or for a run a signal ended: ': killed by SIGKILL (exit code -9: ...)'."""
    if returncode >= 0:
        return f" with exit code {returncode}"
    name = signal_name(returncode)
    why = ": the out-of-memory killer, or kill -9" if name == "SIGKILL" else ""
    return f": killed by {name} (exit code {returncode}{why})"


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _finished(plan: Plan, rec: RunRecord) -> dict[str, Any]:
    """The audit of a run that must have finished; raise on a crash or bad input."""
    log_path = plan.workdir / rec.log
    report = run_paths(plan.workdir / rec.id, plan.spec.name).reports
    if rec.returncode == EXIT_INVALID:
        raise InvalidInput(f"run {rec.id} ({rec.role}) refused to go on (exit 2: bad input, or a file it could not "
                           f"write); log {log_path}:\n{_tail(log_path, 5)}\n{AFRESH}")  # fmt: skip
    if rec.returncode not in (EXIT_OK, EXIT_FAILED) or not (report / "audit.json").is_file():
        raise RunFailed(
            f"run {rec.id} ({rec.role}) failed{how_it_failed(rec.returncode)}; "
            f"log {log_path}:\n{_tail(log_path)}\n{AFRESH}"
        )
    return read_audit(report)  # exit 1 = its own criteria failed: still a finished run


# What two runs must share to be compared: their data as read (run A's record names data.root).
SAME_DATA = (("fingerprint", "training and test images"), ("scored_test_fingerprint", "scored test images"))


def check_inputs(
    plan: Plan, spec_file: Path, run_id: str, audit: dict[str, Any], audit_a: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`audit` where run `run_id` trained the spec verify wrote to `spec_file` and (runs B and K)
    read the data run A read; else InvalidInput: the runs differ in what they were given (the file
    edited, or data.root's files changed while verify ran), which no comparison should blame on
    nondeterminism."""
    problems, want = [], spec_hash(plan.spec)
    if (got := audit.get("spec_hash")) != want:
        problems.append(f"it trained under another spec than verify wrote to {spec_file} (spec_hash "
                        f"{str(got)[:12]}, not {want[:12]}): the file was edited while verify ran")  # fmt: skip
    data, ref = audit.get("data") or {}, (audit_a or {}).get("data") or {}
    for key, what in SAME_DATA if audit_a is not None else ():
        if data.get(key) != ref.get(key):
            changed = f"the files under {ref['root']} changed" if ref.get("root") else "the data generated differ"
            problems.append(f"it read other data than run A ({what}: fingerprint {str(data.get(key))[:12]}, run A's "
                            f"{str(ref.get(key))[:12]}): {changed} while verify ran")  # fmt: skip
            break  # the scored images are among the images
    if problems:
        raise InvalidInput(f"run {run_id.upper()}: {'; and '.join(problems)}; nothing was compared, since a "
                           "difference would be blamed on nondeterminism: run `auditor verify` again while the spec "
                           "and data stay as they are")  # fmt: skip
    return audit


def corrupt_newest(ckpt_dir: Path) -> str | None:
    """Flip bytes in the middle of the newest checkpoint (test-only fault injection)."""
    cands = checkpoint.candidates(ckpt_dir)
    if not cands:
        return None
    p = cands[0]
    data = bytearray(p.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    p.write_bytes(bytes(data))
    return p.name


def _prepare_resume(plan: Plan, facts: dict[str, Any]) -> bool:
    """After the kill: whether `run --resume` can continue run K; if not, clear it for a fresh start."""
    staging = run_paths(plan.workdir / "k", plan.spec.name).ckpt_staging
    if plan.faults.corrupt_newest:
        hit = corrupt_newest(staging) if staging.is_dir() else None
        facts["notes"].append(
            f"test-only fault injection: corrupted {hit} before resuming ({ENV_CORRUPT_NEWEST})"
            if hit else f"test-only fault injection: no checkpoint to corrupt ({ENV_CORRUPT_NEWEST})"
        )
    found, skipped = checkpoint.resume_point(staging) if staging.is_dir() else (None, [])
    resume = staging.is_dir() and not (found is None and skipped)
    if not resume:  # `run --resume` would refuse: start run K over from scratch
        why = "; ".join(f"{p.name}: {r}" for p, r in skipped) or "no staging folder"
        passed = checkpoint.best_passed_over(staging, skipped) if skipped else None  # as `run --resume` refuses
        head = "no intact checkpoint" if passed is None else f"no checkpoint to continue from ({passed})"
        facts["notes"].append(f"{head} after the kill ({why}): run K restarted from scratch")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(run_paths(plan.workdir / "k", plan.spec.name).reports_staging, ignore_errors=True)
    return resume


def _note_resume_point(plan: Plan, facts: dict[str, Any], resume: bool) -> None:
    """Say where the resumed process continued from, against the newest checkpoint before the kill."""
    spe = plan.steps_per_epoch
    expected = checkpoint_name(resume_position(plan.kill_at, spe, plan.checkpoint_every), spe)
    if facts["resumed_from"] is None and resume:
        facts["notes"].append(
            f"killed after step {plan.kill_at} before any checkpoint was written: the resumed process "
            "found none and trained from scratch (resumed from scratch)"
        )
    elif facts["resumed_from"] is not None:
        where = f"resumed from {facts['resumed_from']}"
        if facts["resumed_from"] != expected:
            how = "see resume notes" if facts["resumed_from"] == "best.pt" else "it fell back past it, see resume notes"
            where += f" (newest written before the kill: {expected}; {how})"
        facts["notes"].append(where)


def run_killed(
    plan: Plan, spec_file: Path, log: Log
) -> tuple[list[RunRecord], dict[str, Any], dict[str, Any]]:
    """Run K: killed after step plan.kill_at, then resumed. Returns (records, audit, facts)."""
    k = plan.kill_at
    killed = _start(plan, spec_file, "k", "killed", log, extra_env={ENV_KILL_AT: str(k)})
    facts: dict[str, Any] = {"kill_signal": None, "notes": [], "resumed_from": None, "resume_notes": []}
    if killed.returncode != -signal.SIGKILL:
        audit = _finished(plan, killed)
        facts["notes"].append(
            f"run K was not killed: it finished (exit {killed.returncode}, status "
            f"{audit['run']['status']}) before reaching step {k}; compared as it is"
        )
        return [killed], audit, facts
    facts["kill_signal"] = "SIGKILL"
    resume = _prepare_resume(plan, facts)
    resumed = _start(plan, spec_file, "k", "resumed", log, resume=resume)
    audit = _finished(plan, resumed)
    facts["resumed_from"] = audit["run"].get("resumed_from")
    facts["resume_notes"] = list(audit["run"].get("resume_notes") or [])
    facts["notes"] += [f"resume: {n}" for n in facts["resume_notes"]]
    _note_resume_point(plan, facts, resume)
    return [killed, resumed], audit, facts


def kill_within(
    plan: Plan, steps_a: int, status: str, notes: list[str], log: Log, diverged_at: int | None = None
) -> Plan:
    """The plan with its kill moved inside run A's `steps_a` steps when A stopped early
    (early stopping, divergence): run K stops where its twin did, so a later kill never comes.
    A run that diverged writes no checkpoint from its first non-finite loss (`diverged_at`, a
    0-based step) on, so the kill moves before that."""
    limit = steps_a if diverged_at is None else min(steps_a, diverged_at)
    if plan.kill_at < limit:
        return plan
    spe, every = plan.steps_per_epoch, plan.checkpoint_every
    k = default_kill_step(limit, spe, every)
    why = (f"run A stopped ({status}) after {steps_a} steps" if diverged_at is None else
           f"run A diverged: {diverged_at} of its {steps_a} step losses {'was' if diverged_at == 1 else 'were'} "
           "finite before the first "
           "non-finite one, after which no checkpoint is written")  # fmt: skip
    if resume_position(k, spe, every) == 0:  # 0 steps included: kill 0
        notes.append(f"{why}, before any checkpoint a kill could resume from: run K cannot be killed "
                     f"after step {plan.kill_at}")  # fmt: skip
        return plan
    note = f"{why}, before the planned kill after step {plan.kill_at}: run K is killed after step {k} instead"
    notes.append(note)
    log(f"verify: {note}")
    return replace(plan, kill_at=k)


# --- comparison -----------------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except FileNotFoundError:
        return [], []


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _abs_diff(a: float | None, b: float | None) -> float | None:
    """|a - b|, or None when not comparable (missing or non-finite)."""
    if a is None or b is None:
        return None
    d = abs(a - b)
    return d if math.isfinite(d) else None


def compare_losses(a: list[str], b: list[str]) -> dict[str, Any]:
    """Per-step loss streams (as written, so equal means bit-identical floats)."""
    first, max_diff, comparable, differ = None, 0.0, len(a) == len(b), 0
    for i in range(max(len(a), len(b))):
        va, vb = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
        if va == vb:
            continue
        differ += 1
        if first is None:
            first = i
        d = _abs_diff(_num(va), _num(vb))
        if d is None:
            comparable = False
        else:
            max_diff = max(max_diff, d)
    return {
        "steps_a": len(a), "steps_b": len(b), "equal": first is None,
        "first_divergence": first, "steps_differ": differ,  # steps one run has and the other lacks count
        "loss_a": _num(a[first]) if first is not None and first < len(a) else None,
        "loss_b": _num(b[first]) if first is not None and first < len(b) else None,
        "max_abs_diff": max_diff if comparable else None,
    }  # fmt: skip


def compare_metrics(a: list[dict[str, str]], b: list[dict[str, str]]) -> dict[str, Any]:
    """Per-epoch metrics, timing columns excluded."""
    diffs, max_diff, comparable = [], 0.0, len(a) == len(b)
    for ra, rb in zip(a, b):
        for col in ra:
            if col in TIMING_COLUMNS or ra.get(col) == rb.get(col):
                continue
            d = _abs_diff(_num(ra.get(col)), _num(rb.get(col)))
            diffs.append(
                {"epoch": ra.get("epoch"), "column": col, "a": ra.get(col), "b": rb.get(col), "abs_diff": d}
            )
            if d is None:
                comparable = False
            else:
                max_diff = max(max_diff, d)
    return {
        "epochs_a": len(a), "epochs_b": len(b), "excluded_columns": list(TIMING_COLUMNS),
        "equal": not diffs and len(a) == len(b), "max_abs_diff": max_diff if comparable else None,
        "differences": diffs[:TOP_N],
    }  # fmt: skip


def tensor_sha256(t: Any) -> str:
    """sha256 of a tensor's raw bytes in logical (contiguous, row-major) order."""
    import torch

    t = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()


def state_tensors(payload: dict[str, Any], param_names: list[str]) -> dict[str, Any]:
    """Model tensors (parameters and buffers), optimiser state keyed by parameter name, and
    the rest a resume restores (`resume_state`)."""
    return {**weight_tensors(payload), **optimizer_tensors(payload, param_names), **resume_state(payload)}


def weight_tensors(payload: dict[str, Any]) -> dict[str, Any]:
    """The model's parameters and buffers, `model.<name>`."""
    import torch

    return {f"model.{k}": v for k, v in payload["model"].items() if torch.is_tensor(v)}


def optimizer_tensors(payload: dict[str, Any], param_names: list[str]) -> dict[str, Any]:
    """The optimiser's per-parameter state (momentum buffers), `optimizer.<parameter>.<key>`."""
    import torch

    out = {}
    opt = payload.get("optimizer") or {}
    ids = [i for g in opt.get("param_groups", []) for i in g["params"]]
    names = dict(zip(ids, param_names)) if len(ids) == len(param_names) else {}
    for i, st in sorted(opt.get("state", {}).items()):
        for key, v in st.items():
            if torch.is_tensor(v):
                out[f"optimizer.{names.get(i, f'param{i}')}.{key}"] = v
    return out


# What a resume restores besides weights and optimiser state (train.payload's keys); the
# payload's timings, history (wall times), provenance and versions are not training state.
RESUME_KEYS = ("scheduler", "scaler", "rng", "epoch", "step_in_epoch", "global_step", "partial", "best", "step_losses")
# Wall times inside them (a budget that ends mid-epoch leaves the epoch's time so far in `partial`).
TIMINGS = frozenset({"partial.elapsed"})


def resume_state(payload: dict[str, Any]) -> dict[str, Any]:
    """The scheduler, grad scaler, RNG streams (torch, CUDA, numpy, Python), position, epoch
    accumulators and best-so-far record, as tensors named by their path in the payload
    (`rng.numpy.keys`, `scheduler.last_epoch`). Numbers become float64 or int64 tensors (a
    list of numbers one tensor); strings and None are skipped (a generator's name, an unset field)."""
    out: dict[str, Any] = {}
    for key in RESUME_KEYS:
        if key in payload:
            _leaf_tensors(key, _named_rng(payload[key]) if key == "rng" else payload[key], out)
    return {k: v for k, v in out.items() if k not in TIMINGS}


# The fields of numpy's `get_state()` and Python's `random.getstate()` tuples, in order.
_NUMPY_STATE = ("kind", "keys", "pos", "has_gauss", "cached_gaussian")
_PYTHON_STATE = ("version", "internal_state", "gauss_next")


def _named_rng(rng: Any) -> Any:
    """train's RNG record with its two state tuples keyed by field name (a record of another shape as it is)."""
    if not isinstance(rng, dict):
        return rng
    named = dict(rng)
    for key, fields in (("numpy", _NUMPY_STATE), ("python", _PYTHON_STATE)):
        value = rng.get(key)
        if isinstance(value, (list, tuple)) and len(value) == len(fields):
            named[key] = dict(zip(fields, value, strict=True))
    return named


def _leaf_tensors(name: str, value: Any, out: dict[str, Any]) -> None:
    import torch

    if torch.is_tensor(value):
        out[name] = value
    elif isinstance(value, dict):
        for k, v in value.items():
            _leaf_tensors(f"{name}.{k}", v, out)
    elif _plain_number(value) or (isinstance(value, (list, tuple)) and value and all(map(_plain_number, value))):
        kind = torch.float64 if any(isinstance(v, float) for v in _as_list(value)) else torch.int64
        try:
            out[name] = torch.tensor(value if _plain_number(value) else list(value), dtype=kind)
        except (OverflowError, RuntimeError, ValueError):  # an int past int64: compared by its digits
            out[name] = torch.tensor(list(repr(value).encode()), dtype=torch.uint8)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _leaf_tensors(f"{name}[{i}]", v, out)


def _plain_number(v: Any) -> bool:
    return isinstance(v, (bool, int, float))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def best_weights(payload: dict[str, Any]) -> dict[str, Any]:
    """best.pt's weights, `best.pt/model.<name>` (the weights every measurement after training used)."""
    return {f"best.pt/{k}": v for k, v in weight_tensors(payload).items()}


# The headline results each run measured after training (audit.json `metrics`): timings and
# sizes are left out (they are not expected to repeat), as metrics.csv's timing columns are.
RESULT_METRICS = ("status", "test_acc", "best_val_acc", "final_val_acc", "final_train_acc")
# And the test evaluation behind test_acc (audit.json `measurements.test`): two runs can share an
# accuracy while their losses differ, or while predictions move between classes.
TEST_RESULTS = MappingProxyType({"test_loss": "loss", "test_per_class_acc": "per_class", "test_confusion": "confusion"})


def result_values(audit: Mapping[str, Any]) -> dict[str, Any]:
    """What `compare_results` compares of one run's record: RESULT_METRICS from `metrics`, and
    TEST_RESULTS from `measurements.test` (None where the run measured no test split)."""
    test = (audit.get("measurements") or {}).get("test") or {}
    return {**{k: audit["metrics"].get(k) for k in RESULT_METRICS},
            **{k: test.get(field) for k, field in TEST_RESULTS.items()}}  # fmt: skip


def _table(value: Any) -> dict[str, Any] | None:
    """A per-class table ({'cat': acc}) or a matrix ([[count]]) as {'[cat]': v} / {'[3][5]': v};
    None for anything else."""
    if isinstance(value, Mapping):
        return {f"[{k}]": v for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {f"[{i}]{at}": v for i, row in enumerate(value)
                for at, v in ((_table(row) or {}).items() if isinstance(row, (list, tuple)) else [("", row)])}  # fmt: skip
    return None


def _same(a: Any, b: Any) -> bool:
    return a == b and not is_nan(a)  # NaN agrees with nothing (audit.json holds none: it writes null)


def _number(v: Any) -> float | None:
    return v if is_number(v) else None


def _scale(metric: str, cells: Mapping[str, Any]) -> float:
    """What a difference of `metric` is divided by: a confusion count by the images counted, so a
    prediction that moved weighs 1/n, as in test_acc (verify.tolerance is below 1, and a count is
    not); other results are fractions or losses already."""
    total = sum(v for v in cells.values() if _number(v) is not None) if metric == "test_confusion" else 1
    return total if total > 0 else 1


def compare_result(metric: str, va: Any, vb: Any) -> dict[str, Any] | None:
    """None where `va` and `vb` agree; else the difference, `abs_diff` (None where it is not a
    distance: a status, a missing value, NaN, tables of other keys, confusion matrices of other
    totals; a table against a value is named by its size, not stored). Two tables (per class, or a
    matrix) give `abs_diff`, the largest cell difference (a confusion count as its share of the
    test images: `_scale`), and their differing cells, largest first (`entries`: the first TOP_N of
    `cells_differing`), and the cells only one has (`only_in_a`, `only_in_b`), not both tables."""
    ta, tb = _table(va), _table(vb)
    if ta is None or tb is None or isinstance(va, Mapping) != isinstance(vb, Mapping):
        if _same(va, vb):
            return None
        return {"metric": metric, "a": va if ta is None else f"a table of {count(len(ta), 'cell')}",
                "b": vb if tb is None else f"a table of {count(len(tb), 'cell')}",
                "abs_diff": _abs_diff(_number(va), _number(vb))}  # fmt: skip
    shared = [k for k in ta if k in tb and not _same(ta[k], tb[k])]
    only_a, only_b = [k for k in ta if k not in tb], [k for k in tb if k not in ta]
    if not (shared or only_a or only_b) and len(va) == len(vb):  # [[]] and [] hold the same (no) cells
        return None
    scale = _scale(metric, ta)
    diffs = {k: _abs_diff(_number(ta[k]), _number(tb[k])) for k in shared}
    # confusion matrices of other totals scored other test images: no share of one n
    comparable = (not (only_a or only_b) and None not in diffs.values() and len(va) == len(vb)
                  and scale == _scale(metric, tb))  # fmt: skip
    shared.sort(key=lambda k: -math.inf if diffs[k] is None else -diffs[k])
    return {
        "metric": metric,
        "abs_diff": max(d for d in diffs.values() if d is not None) / scale if comparable and diffs else None,
        "cells_differing": len(shared), "entries": [{"at": k, "a": ta[k], "b": tb[k]} for k in shared[:TOP_N]],
        **({"only_in_a": only_a[:TOP_N], "only_in_b": only_b[:TOP_N]} if only_a or only_b else {}),
    }  # fmt: skip


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two runs' `result_values`; a difference that is not between finite numbers (a status, a
    missing value, NaN, tables of other shapes) is not comparable (`max_abs_diff` None)."""
    compared = [*RESULT_METRICS, *TEST_RESULTS]
    diffs = [d for k in compared if (d := compare_result(k, a.get(k), b.get(k))) is not None]
    comparable = all(d["abs_diff"] is not None for d in diffs)
    return {
        "compared": compared, "equal": not diffs,
        "max_abs_diff": max((d["abs_diff"] for d in diffs), default=0.0) if comparable else None,
        "differences": diffs,
    }  # fmt: skip


def compare_tensors(ta: dict[str, Any], tb: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per tensor name in either state (sha256 each side, max |a-b|)."""
    rows = []
    for name in list(ta) + [n for n in tb if n not in ta]:
        a, b = ta.get(name), tb.get(name)
        sa = tensor_sha256(a) if a is not None else None
        sb = tensor_sha256(b) if b is not None else None
        same_kind = a is not None and b is not None and a.dtype == b.dtype and a.shape == b.shape
        equal = same_kind and sa == sb
        diff: float | None = 0.0 if equal else None
        if same_kind and not equal:
            da, db = a.detach().cpu().double(), b.detach().cpu().double()
            d = (da - db).abs().max().item() if a.numel() else 0.0
            diff = d if math.isfinite(d) else None
        row = {"name": name, "sha256_a": sa, "sha256_b": sb, "max_abs_diff": diff, "equal": equal}
        if not same_kind:
            row["note"] = "missing on one side" if a is None or b is None else (
                f"{a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}")  # fmt: skip
        rows.append(row)
    return rows


def checkpoint_tensors(last: dict[str, Any], best: dict[str, Any] | None, param_names: list[str]) -> dict[str, Any]:
    """Everything compared from one run's checkpoints: all of last.pt's state (`state_tensors`)
    and best.pt's weights where best.pt is another file than last.pt (`load_final_checkpoints`
    gives a best.pt of last.pt's bytes as last.pt's own payload). Not by its step: a best.pt of
    last.pt's step but other bytes had passed unread (a user test: its weights edited during the
    verify, on which every measurement of the run is made)."""
    out = state_tensors(last, param_names)
    if best is not None and best is not last:
        out |= best_weights(best)
    return out


def run_tensors(workdir: Path, name: str, run_id: str, param_names: list[str], audit: Mapping[str, Any]) -> dict[str, Any] | None:
    """Everything compared from one run's checkpoints (`checkpoint_tensors`), each file loaded and
    verified once (best.pt with last.pt's bytes is not read again), or None: no last.pt. InvalidInput
    for a checkpoint that is not the file the run's `audit` records (its sha256): changed since."""
    ckpt_dir = run_paths(workdir / run_id, name).checkpoints
    loaded = load_final_checkpoints(ckpt_dir)
    recorded = {k: v.get("sha256") for k, v in (audit.get("checkpoints") or {}).items() if isinstance(v, dict)}
    for which in sorted({*loaded, *(k for k, digest in recorded.items() if digest)}):
        found = checkpoint.recorded_digest(ckpt_dir / f"{which}.pt") if which in loaded else None
        if found != recorded.get(which):
            said = f"sha256 {found[:12]}" if found else "no such file"
            raise InvalidInput(f"{ckpt_dir / f'{which}.pt'}: not the file run {run_id.upper()}'s audit.json records "
                               f"({said}, recorded {str(recorded.get(which) or 'none')[:12]}): it was changed after "
                               "that run; nothing was compared")  # fmt: skip
    diverged = (audit.get("training") or {}).get("status") == "diverged"
    steps = run_paths(workdir / run_id, name).reports / "steps.csv"
    # With no last.pt (training diverged before one), its newest step checkpoint holds the losses so far (the review).
    held, which = (loaded["last"], "last.pt") if "last" in loaded else _newest_step_checkpoint(ckpt_dir)
    if held is not None and (problem := steps_file_problem(steps, held, diverged, which)):
        raise InvalidInput(f"{problem}: it was changed after run {run_id.upper()}; nothing was compared")
    return checkpoint_tensors(loaded["last"], loaded.get("best"), param_names) if "last" in loaded else None


def _newest_step_checkpoint(ckpt_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The payload of the newest checkpoint in `ckpt_dir` whose digest verifies (`checkpoint.newest_intact`:
    with no last.pt, a step checkpoint) and its name, or (None, "")."""
    found, _ = checkpoint.newest_intact(ckpt_dir) if ckpt_dir.is_dir() else (None, [])
    try:
        return (checkpoint.load(found, check_digest=False), found.name) if found is not None else (None, "")
    except InvalidInput:  # its digest matches, but torch cannot read it: nothing to hold steps.csv to
        return None, ""


def steps_file_problem(path: Path, last: Mapping[str, Any], diverged: bool, which: str = "last.pt") -> str | None:
    """Where the run's steps.csv (`path`), whose losses verify compares as text, does not hold the
    losses its checkpoint `which` holds (`last`: the epochs' and the last epoch's so far) as the run
    writes them (`str` of each float), or None (a user test: a loss edited in steps.csv was reported
    as nondeterminism, beside identical checkpoints). Only a run that `diverged` after it has more."""
    partial = last["partial"].get("losses") if isinstance(last.get("partial"), dict) else None
    held = [*last["step_losses"].tolist(), *(partial if isinstance(partial, list) else [])]
    written = [row.get("loss") for row in _read_csv(path)[1]]
    if len(written) < len(held) or (len(written) > len(held) and not diverged):
        return f"{path}: the losses of {count(len(written), 'step')}, where {which} holds {len(held):,}"
    for step, (text, value) in enumerate(zip(written, held, strict=False)):
        if text != str(float(value)):
            return f"{path}: step {step}'s loss {text!r}, where {which} holds {str(float(value))!r}"
    return None


def compare_pair(
    workdir: Path, name: str, x: str, y: str, tensors_of: Mapping[str, dict[str, Any] | None],
    audits: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """Compare run x (the reference) and run y (`tensors_of`: each run's `run_tensors`, and
    `audits`: its audit.json, by run id)."""
    rx, ry = run_paths(workdir / x, name).reports, run_paths(workdir / y, name).reports
    losses = compare_losses(*[[r["loss"] for r in _read_csv(d / "steps.csv")[1]] for d in (rx, ry)])
    metrics = compare_metrics(_read_csv(rx / "metrics.csv")[1], _read_csv(ry / "metrics.csv")[1])
    results = compare_results(result_values(audits[x]), result_values(audits[y]))
    px, py = tensors_of[x], tensors_of[y]
    notes = []
    if px is None or py is None:
        missing = [r for r, p in ((x, px), (y, py)) if p is None]
        notes.append(f"no last.pt in run {' and '.join(missing)}: checkpoint entries not compared")
        tensors = []
    else:
        tensors = compare_tensors(px, py)
    # Nothing compared proves nothing: no final weights can never count as equal.
    t_equal = bool(tensors) and all(t["equal"] for t in tensors)
    diffs = [losses["max_abs_diff"], metrics["max_abs_diff"], results["max_abs_diff"],
             *[t["max_abs_diff"] for t in tensors]]  # fmt: skip
    comparable = all(d is not None for d in diffs) and (px is None) == (py is None)
    differing = sorted((t for t in tensors if not t["equal"]), key=_by_diff)
    return {
        "pair": f"{x}-{y}",
        "equal": losses["equal"] and metrics["equal"] and results["equal"] and t_equal,
        "max_abs_diff": max(d for d in diffs if d is not None) if comparable else None,
        "losses": losses,
        "metrics": metrics,
        "results": results,
        "tensors_compared": len(tensors),
        "tensors_equal": sum(t["equal"] for t in tensors),
        "top_tensors": [{"name": t["name"], "max_abs_diff": t["max_abs_diff"]} for t in differing[:TOP_N]],
        "tensors": tensors,
        "notes": notes,
    }


def _by_diff(row: dict[str, Any]) -> float:
    """Sort key: largest difference first, not-comparable (None) before everything."""
    return -(row["max_abs_diff"] if row["max_abs_diff"] is not None else math.inf)


def merge_tensor_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per tensor over both pairs (a-b, a-k): differing ones first, largest difference first.

    `sha256_a`/`sha256_b`/`sha256_k` are each run's digest; `max_abs_diff` and
    `equal` cover both pairs, `*_ab` / `*_ak` each pair alone.
    """
    by_pair = {p["pair"]: {t["name"]: t for t in p["tensors"]} for p in pairs}
    ab, ak = by_pair.get("a-b", {}), by_pair.get("a-k", {})
    rows = []
    for name in list(ab) + [n for n in ak if n not in ab]:
        tb, tk = ab.get(name), ak.get(name)
        diffs = [t["max_abs_diff"] for t in (tb, tk) if t is not None]
        equal = all(t is not None and t["equal"] for t in (tb, tk))
        rows.append({
            "name": name,
            "sha256_a": (tb or tk)["sha256_a"],
            "sha256_b": tb["sha256_b"] if tb else None,
            "sha256_k": tk["sha256_b"] if tk else None,
            "max_abs_diff": None if None in diffs or len(diffs) < 2 else max(diffs),
            "equal": equal,
            "max_abs_diff_ab": tb["max_abs_diff"] if tb else None, "equal_ab": bool(tb and tb["equal"]),
            "max_abs_diff_ak": tk["max_abs_diff"] if tk else None, "equal_ak": bool(tk and tk["equal"]),
        })  # fmt: skip
    differing = sorted((r for r in rows if not r["equal"]), key=_by_diff)
    return differing + [r for r in rows if r["equal"]]


def first_divergence(pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Earliest step at which a pair's loss streams differ (loss_a: run A, loss_b: the pair's other run)."""
    hits = [(p["losses"]["first_divergence"], i, p) for i, p in enumerate(pairs)]
    hits = [h for h in hits if h[0] is not None]
    if not hits:
        return None
    step, _, p = min(hits, key=lambda h: (h[0], h[1]))
    return {"step": step, "pair": p["pair"], "loss_a": p["losses"]["loss_a"], "loss_b": p["losses"]["loss_b"]}


# --- the command ----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyOutcome:
    """The evidence block, whether it passed, and run A's report folder."""
    block: dict[str, Any]
    passed: bool
    report_dir: Path


def _param_names(spec: Spec) -> list[str]:
    from auditor.models import build_model

    model = build_model(spec.model)
    return [n for n, _ in model.named_parameters()]


def write_spec_file(plan: Plan) -> Path:
    """The one resolved spec every run uses; checked to round-trip to the same hash."""
    path = plan.workdir / "spec.yaml"
    atomic_write_bytes(path, resolved_yaml(resolved_dict(plan.spec)).encode())
    if spec_hash(load_spec(path)) != spec_hash(plan.spec):
        raise InvalidInput(f"{path}: the resolved spec does not round-trip through YAML")
    return path


def verify(
    spec_arg: str, sets: list[str], out: Path, *, epochs: int | None = None, steps: int | None = None,
    kill_at: int | None = None, log: Log = print, faults: Faults | None = None,
    in_place: Callable[[], None] | None = None,
) -> VerifyOutcome:
    """Plan, run A, B and K, compare, and write the evidence. Raises InvalidInput / RunFailed.

    Evidence from an earlier invocation is set aside, not deleted, until this
    one has written its own: an interrupted or failed re-verify puts it back.
    Another verify of the same name into the same `out` is refused while this one goes on.
    `in_place` is called once this verification's evidence is written and in place, before the
    earlier evidence is deleted: from then on a stop has nothing left to stop.
    """
    plan = make_plan(spec_arg, sets, out, epochs, steps, kill_at, faults)
    with held_workdir(plan, out):
        return _verify_planned(plan, out, log, in_place)


@contextmanager
def held_workdir(plan: Plan, out: Path) -> Iterator[None]:
    """Hold the flock on `<out>/verify/.<name>.lock` (a file that stays) for the block, so that
    two verifies of one name never move or delete each other's work dir; InvalidInput when
    another process holds it. Where files cannot be locked, nothing is held."""
    busy = (f"a verify of {plan.spec.name!r} is going on in this --out (another process holds this lock); "
            "wait for it to finish, or use another --out")  # fmt: skip
    with held_lock(lock_beside(plan.workdir), busy, out):
        yield


def _verify_planned(plan: Plan, out: Path, log: Log, in_place: Callable[[], None] | None = None) -> VerifyOutcome:
    """`verify` once the work dir is held: set the earlier evidence aside, run, compare, settle."""
    notes = [*plan.notes, *plan.faults.notes(plan.total_steps)]
    previous = _set_aside_workdir(plan, out)
    try:
        block, report_a = _run_and_compare_writing(plan, notes, log, out)
    except (RunFailed, InvalidInput) as exc:
        if previous is None:
            raise
        failed = _put_back(plan.workdir, previous)  # the paths the message names moved to `failed`
        head, sep, quoted = str(exc).partition("\n")  # below its first line, a run's log, quoted as written
        raise type(exc)(head.replace(f"{plan.workdir}/", f"{failed}/") + sep + quoted) from None
    except BaseException as exc:  # Ctrl-C included: the earlier evidence must survive
        stopped = isinstance(exc, KeyboardInterrupt)
        if previous is not None:
            failed = _put_back(plan.workdir, previous)
            if stopped:
                log(f"verify: the earlier evidence is back in {plan.workdir}/; this attempt's runs and logs are "
                    f"in {failed}/ until the next verify finishes")  # fmt: skip
        elif stopped:
            log(f"verify: this attempt's runs and logs are in {plan.workdir}/")
        raise
    if in_place is not None:  # a Ctrl-C while the earlier evidence is deleted had thrown the verdict away
        in_place()
    # The earlier evidence and a failed attempt's, superseded. A deletion that fails part way (a
    # read-only folder inside) leaves a hidden name, which the next verify tries again.
    for left in (discard(previous) if previous is not None else None, discard(failed_dir(plan.workdir))):
        if left is not None:
            log(leftover_note(left, "the next verify"))
    return VerifyOutcome(block, block["passed"], report_a)


def _put_back(workdir: Path, previous: Path) -> Path:
    """Move this attempt to `<workdir>.failed` (returned) and the earlier evidence back in place."""
    failed = failed_dir(workdir)
    discard(failed)
    os.replace(workdir, failed)
    os.replace(previous, workdir)
    return failed


# Why a file could not be written under --out: the disk or quota is full, or it may not be written.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def _run_and_compare_writing(plan: Plan, notes: list[str], log: Log, out: Path) -> tuple[dict[str, Any], Path]:
    """`_run_and_compare`; a file verify itself cannot write (a full disk) is bad input, not a crash."""
    try:
        return _run_and_compare(plan, notes, log)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:  # a closed pipe, a read that failed: not a place to write
            raise
        raise out_error(out, why_not_writable(exc, plan.workdir)) from None  # the file, where the OS names it


def _run_and_compare(plan: Plan, notes: list[str], log: Log) -> tuple[dict[str, Any], Path]:
    """Runs A, B and K in plan.workdir, compared; the evidence written there and into A's record."""
    spec_file = write_spec_file(plan)
    log(f"verify: {plan.total_steps} steps ({plan.steps_per_epoch} per epoch), checkpoint every "
        f"{plan.checkpoint_every}, kill after step {plan.kill_at}; work dir {plan.workdir}")  # fmt: skip
    try:
        rec_a = _start(plan, spec_file, "a", "reference", log)
        audit_a = check_inputs(plan, spec_file, "a", _finished(plan, rec_a))
        steps_a = len(_read_csv(run_paths(plan.workdir / "a", plan.spec.name).reports / "steps.csv")[1])
        diverged_at = audit_a["training"].get("diverged_at_step")
        plan = kill_within(plan, steps_a, audit_a["run"]["status"], notes, log, diverged_at)
        notes += plan.faults.unapplied(steps_a)
        rec_b = _start(plan, spec_file, "b", "twin", log)
        audit_b = check_inputs(plan, spec_file, "b", _finished(plan, rec_b), audit_a)
        recs_k, audit_k, facts = run_killed(plan, spec_file, log)
        check_inputs(plan, spec_file, "k", audit_k, audit_a)
    finally:  # kept or not, the evidence needs no compiled kernels
        for run_id in ("a", "b", "k"):
            shutil.rmtree(compile_cache(plan, run_id), ignore_errors=True)
    facts["shared"] = shared_setting([audit_a, audit_b, audit_k], notes)
    if plan.spec.train.compile != "off":
        notes.append("each run compiled its model afresh, with a torch.compile cache of its own (run K's resumed "
                     "process reused run K's, as a resume on the same machine would)")  # fmt: skip
    audits, names = {"a": audit_a, "b": audit_b, "k": audit_k}, _param_names(plan.spec)
    tensors_of = {r: run_tensors(plan.workdir, plan.spec.name, r, names, audits[r]) for r in audits}  # run A's once, for both pairs
    pairs = [compare_pair(plan.workdir, plan.spec.name, x, y, tensors_of, audits) for x, y in PAIRS]
    block = evidence_block(plan, pairs, audit_a, [rec_a, rec_b, *recs_k], facts, [*notes, *facts["notes"]])
    report_a = run_paths(plan.workdir / "a", plan.spec.name).reports
    record_in_audit(report_a, plan.spec, block, log)
    write_json(plan.workdir / "verify.json", block)
    return block, report_a


# What verify writes into a work dir (runs a, b, k each an `auditor run --out`), and its logs/.
# Its logs by name (`_start`'s `<run>-<role>.log`): a user's own `notes.log` there is refused, not deleted.
RUN_LOGS = ("a-reference.log", "b-twin.log", "k-killed.log", "k-resumed.log")
WORKDIR_FILES = {"": (VERIFY_MARKER, "spec.yaml", "verify.json", "logs", "a", "b", "k", ".*.tmp"), "logs": RUN_LOGS}


def old_dir(workdir: Path) -> Path:
    """Where an earlier verify's evidence waits while this one runs."""
    return aside(workdir)


def failed_dir(workdir: Path) -> Path:
    """Where an attempt that failed is kept, its logs for reading, once the earlier evidence is back."""
    return workdir.with_name(workdir.name + FAILED)


def _made_by_verify(folder: Path) -> bool:
    """A real folder verify made: its marker, or nothing at all (killed at once), or what
    versions before the marker left (their evidence, or their spec beside their logs)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if (folder / VERIFY_MARKER).is_file() or not any(folder.iterdir()):
        return True
    return (folder / "verify.json").is_file() or ((folder / "spec.yaml").is_file() and (folder / "logs").is_dir())


def _foreign_files(workdir: Path, name: str) -> list[str]:
    """Names in a work dir verify made (its logs/, and each run's report and checkpoint folder)
    that neither verify nor the runs write there: a JUnit report beside run A's record, notes."""
    found = [f"{sub}/{n}" if sub else n for sub, patterns in WORKDIR_FILES.items() for n in unlisted(workdir / sub, patterns)]
    for run in ("a", "b", "k"):
        paths = run_paths(workdir / run, name)
        found += [str((folder / n).relative_to(workdir)) for folder, patterns in _run_root_files(paths).items()
                  for n in unlisted(folder, patterns)]  # fmt: skip
        for attr, folder in (("reports", paths.reports), ("checkpoints", paths.checkpoints)):
            if folder.is_dir() and not folder.is_symlink():
                found += [str(folder.relative_to(workdir) / n) for n in foreign_files(folder, attr)]
    return sorted(found)


def _run_root_files(paths: RunPaths) -> dict[Path, tuple[str, ...]]:
    """What one of verify's runs writes in its output root and in its reports/ and checkpoints/
    (its run's folders, staged and set aside, the lock, the compile cache): anything else there
    is the user's, which replacing the work dir would delete."""
    name = paths.reports.name
    # ... and what a deletion cut short left of a set-aside folder (`runner.discard`)
    run_folders = (name, f"{name}{STAGING}", aside(paths.reports).name, f".{aside(paths.reports).name}.trash-*")
    return {paths.out: ("reports", "checkpoints", COMPILE_CACHE),
            paths.reports.parent: run_folders, paths.checkpoints.parent: (*run_folders, paths.lock.name)}  # fmt: skip


def _edited_sheet(workdir: Path, name: str) -> str | None:
    """'SHEET: why' of the first of the runs' sheets in a work dir verify made that was edited by
    hand (`audit.sheet_edited`), or None (a user test: run A's, which holds the verdict, was
    replaced without a word)."""
    for run in ("a", "b", "k"):
        reports = run_paths(workdir / run, name).reports
        if reports.is_dir() and (edited := sheet_edited(reports)) is not None:
            return edited
    return None


def _set_aside_workdir(plan: Plan, out: Path) -> Path | None:
    """An empty work dir; an earlier one moved to `<workdir>.old` (returned), or None if there was none.

    Refuses (InvalidInput) a folder there that verify did not make: it would delete it.
    """
    old = old_dir(plan.workdir)
    for folder in (plan.workdir, old, failed_dir(plan.workdir)):
        if folder.is_file() and not folder.is_symlink():
            raise out_error(out, f"{folder} is a file, not a folder; move it away")
        if (folder.exists() or folder.is_symlink()) and not _made_by_verify(folder):
            raise InvalidInput(
                f"{folder}: in the way: verify keeps its runs and evidence in {plan.workdir} (an earlier "
                f"verify's in {old.name}, a failed attempt's in {failed_dir(plan.workdir).name}), and this holds "
                "something else; move it away or choose another --out"
            )
        if folder.is_dir() and (foreign := _foreign_files(folder, plan.spec.name)):
            raise InvalidInput(f"{folder}: holds files verify did not write ({', '.join(foreign)}), and verify "
                               "replaces this folder: move them away first")  # fmt: skip
        if folder.is_dir() and (edited := _edited_sheet(folder, plan.spec.name)):
            raise InvalidInput(f"{edited}; verify replaces {folder} when it finishes, this sheet included: move the "
                               "sheet out of that folder to keep your edit")  # fmt: skip
    try:
        if old.is_dir() and not (plan.workdir / "verify.json").is_file():
            # A verify killed mid-way: its work dir is partial, `.old` holds the evidence.
            discard(plan.workdir)
            os.replace(old, plan.workdir)
        discard(old)  # left by a verify that finished: its evidence is newer
        previous = None
        if (plan.workdir / "verify.json").is_file():  # evidence: kept until this verify has its own
            os.replace(plan.workdir, old)
            previous = old
        else:  # an attempt that never finished is not evidence
            discard(plan.workdir)
        plan.workdir.mkdir(parents=True)
        (plan.workdir / VERIFY_MARKER).write_text("a work dir of auditor verify: it replaces this folder\n")
    except OSError as exc:
        raise out_error(out, why_not_writable(exc, plan.workdir, path=plan.workdir)) from None
    return previous


def settle_verdict(
    pairs: list[dict[str, Any]], tol: VerifySpec, facts: dict[str, Any], fd: dict[str, Any] | None, notes: list[str],
    training: Mapping[str, Any],
) -> str:
    """`decide`'s verdict on the pairs, made `unresumed` when run K did not continue from a
    checkpoint, and `incomplete` when run A's `training` diverged after its last checkpoint;
    appends to `notes` what the verdict needs said (`fd`: `first_divergence(pairs)`)."""
    verdict = decided = decide(pairs, tol.tolerance)
    if verdict in ("bitwise", "tolerance") and training["status"] == "diverged":  # last.pt predates it
        notes.append(f"the runs agree ({AGREEMENT[verdict]}) on every step's loss (the non-finite ones too), every epoch's "
                     f"metrics and last.pt, but training diverged at step {training.get('diverged_at_step')} after "
                     "last.pt was written, so the weights it ended with were not compared: verdict incomplete")  # fmt: skip
        return "incomplete"
    if verdict != "diverged" and (facts["kill_signal"] is None or facts["resumed_from"] is None):
        why = "it was not killed" if facts["kill_signal"] is None else "no checkpoint was intact after its kill"
        notes.append(f"the runs agree ({AGREEMENT[verdict]}), but run K did not continue from a checkpoint ({why}), "
                     "so the resume went untested: verdict unresumed")  # fmt: skip
        verdict = "unresumed"
    if verdict == "tolerance" and not tol.allow_tolerance:
        notes.append(f"differences are within verify.tolerance {tol.tolerance:g} "
                     "but verify.allow_tolerance is false")  # fmt: skip
    if verdict == "incomplete":
        notes.append("the runs agree on every step's loss and every epoch's metrics, but no final checkpoint "
                     "was written (the training diverged first), so their final weights were not compared")  # fmt: skip
    elif decided in ("tolerance", "diverged") and fd is None and all(p["metrics"]["equal"] for p in pairs):
        notes.append(_final_state_note(pairs))
    return verdict


def _unshared_sources(audit_a: dict[str, Any], shared: dict[str, Any]) -> list[str]:
    """Run A's nondeterminism sources, less the thread count where all three runs recorded the
    same one (`shared`, from shared_setting): a count they shared cannot explain a difference."""
    sources = list(audit_a["determinism"].get("nondeterminism_sources", []))
    if shared.get("threads") is None:
        return sources
    return [s for s in sources if not s.startswith("thread count ")]


UNSHARED = "the runs did not share their"  # how a note names a setting that differed between the runs


def shared_setting(audits: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """The torch thread count and torch version as all three runs recorded them (`threads`,
    `torch`; None where they differ, with a note appended to `notes`)."""
    shared: dict[str, Any] = {}
    for key, field_name in (("threads", "torch_threads"), ("torch", "torch")):
        values = [a["environment"].get(field_name) for a in audits]
        agree = len(set(map(str, values))) == 1
        shared[key] = values[0] if agree else None
        if not agree:
            said = ", ".join(f"{run} {v}" for run, v in zip("ABK", values, strict=True))
            notes.append(f"{UNSHARED} {field_name.replace('_', ' ')} ({said})")
    return shared


def _final_state_note(pairs: list[dict[str, Any]]) -> str:
    """What differs between runs whose losses and per-epoch metrics are identical."""
    results = [d["metric"] for p in pairs for d in p.get("results", {}).get("differences", [])]
    tensors = any(p.get("tensors_equal") != p.get("tensors_compared") for p in pairs)
    said = (["the checkpoints (see tensors)"] if tensors else []) + (
        [f"the results measured after training ({', '.join(dict.fromkeys(results))})"] if results else [])  # fmt: skip
    return "the loss streams and per-epoch metrics are identical: the runs differ only in " + (
        " and ".join(said) or "what one of them lacks (see the pairs)")


# How far runs that `decide` found agreeing agree, as a note says it.
AGREEMENT: Mapping[str, str] = MappingProxyType({
    "bitwise": "bitwise", "tolerance": "within verify.tolerance",
    "incomplete": "on every loss and metric; no final weights to compare",
})  # fmt: skip


def tolerance_notes(tol: VerifySpec, audit_a: Mapping[str, Any]) -> list[str]:
    """A note where an allowed verify.tolerance is at least one image's share of an accuracy it
    bounds, that of the smallest split scored (a user test: 0.99 passed runs whose test accuracies
    differed by 3 images, and the sheet ticked the box): such a tolerance passes runs whose
    predictions differ."""
    test, sizes = audit_a["measurements"].get("test"), audit_a["data"].get("sizes")
    counts = {"test": test.get("n") if isinstance(test, dict) else None,
              "validation": sizes.get("val") if isinstance(sizes, dict) else None}  # fmt: skip
    scored = [(n, split) for split, n in counts.items() if isinstance(n, int) and n > 0]
    if not tol.allow_tolerance or not scored or tol.tolerance < 1 / (least := min(scored))[0]:
        return []
    n, split = least
    return [(f"verify.tolerance {tol.tolerance:g} is at least one image's share of the {split} accuracy (1/{n:,} = "
             f"{1 / n:.3g}): runs whose predictions differ pass it, where a tolerance for floating-point reordering "
             "is orders of magnitude below (the default is 1e-6)")]


def run_a_fails(audit_a: Mapping[str, Any]) -> list[str]:
    """A note where run A's training diverged, left a broken model or selected no epoch (a user
    test: a model that blew up to inf was verified BITWISE, exit 0, and the summary did not say it
    was broken). Its criteria are left to `check`: verify's budget is often cut short on purpose,
    and its `reproducible` criterion is judged only once verify records its verdict."""
    if (gate := record_gate_status(audit_a)) not in GATE_WHY:  # completed, early_stopped: a model to judge
        return []
    return [(f"run A's {GATE_WHY[gate]}: verify's verdict says whether the runs reproduce one another, not whether the "
             "model works (run A's own sheet says FAIL)")]


def evidence_block(
    plan: Plan, pairs: list[dict[str, Any]], audit_a: dict[str, Any], records: list[RunRecord],
    facts: dict[str, Any], notes: list[str],
) -> dict[str, Any]:
    """The verification record: verdict, first divergence, largest differences, runs and notes."""
    tol = plan.spec.verify
    notes = _evidence_notes(plan, pairs, audit_a, facts, notes)
    fd = first_divergence(pairs)
    verdict = settle_verdict(pairs, tol, facts, fd, notes, audit_a["training"])
    top = sorted(({"pair": p["pair"], **t} for p in pairs for t in p["top_tensors"]), key=_by_diff)[:TOP_N]
    k_desc = (
        f"k: killed after step {plan.kill_at} ({killed_done(plan.kill_at)}; {facts['kill_signal']}), "
        f"resumed from {facts['resumed_from'] or 'scratch'}"
        if facts["kill_signal"] else f"k: not killed (finished before step {plan.kill_at})"
    )  # fmt: skip
    return {
        "verdict": verdict,
        "passed": verification_passed(verdict, tol.allow_tolerance),
        "tolerance": tol.tolerance,
        "allow_tolerance": tol.allow_tolerance,
        "runs": ["a: reference", "b: twin", k_desc],
        "processes": [r.as_dict() for r in records],
        "device": audit_a["environment"]["device"],
        **facts.get("shared", {}),
        "budget": plan.budget,
        "kill_at_step": plan.kill_at,
        "kill_signal": facts["kill_signal"],
        "resumed_from": facts["resumed_from"],
        "resume_notes": facts["resume_notes"],
        "first_divergence": fd,
        "top_tensors": top,
        "tensors": merge_tensor_rows(pairs),
        "pairs": [{k: v for k, v in p.items() if k != "tensors"} for p in pairs],
        "nondeterminism_sources": _unshared_sources(audit_a, facts.get("shared", {})),
        "spec_hash": spec_hash(plan.spec),
        "command": plan.command,
        "cwd": os.getcwd(),  # where the command's relative paths (the spec's) are read from
        "work_dir": str(plan.workdir),
        "notes": notes,
    }


def _evidence_notes(plan: Plan, pairs: list[dict[str, Any]], audit_a: dict[str, Any], facts: dict[str, Any],
                    notes: list[str]) -> list[str]:
    """The evidence's notes before the verdict adds its own: the caller's, each pair's, the kill's, and
    what determinism off, an allowed tolerance and run A's own failures mean for the verdict."""
    notes = [*notes, *(f"{p['pair']}: {n}" for p in pairs for n in p["notes"])]
    if facts["kill_signal"]:
        notes.append(f"run K was killed from inside its process at the end of step {plan.kill_at}, once the "
                     "checkpoints written so far were on disk: this tests resuming from a checkpoint, not a kill "
                     "while one is being written")  # fmt: skip
    if not audit_a["determinism"].get("requested", True):
        notes.append("determinism was off (determinism.enabled: false): agreeing runs show that these three "
                     "matched here, not that other runs of this spec will")  # fmt: skip
    return [*notes, *tolerance_notes(plan.spec.verify, audit_a), *run_a_fails(audit_a)]


def record_in_audit(report_dir: Path, spec: Spec, block: dict[str, Any], log: Log) -> None:
    """Put the block into run A's audit.json, re-evaluate its criteria and re-render its sheet
    (a sheet that cannot be re-rendered is noted in the block and logged as a warning)."""
    from auditor.check import evaluate_criteria

    audit = read_audit(report_dir)
    audit["verification"] = block
    audit["metrics"]["reproducible"] = block["verdict"]
    notes = {k: v for k, v in audit.get("metric_notes", {}).items() if k != "reproducible"}
    audit["metric_notes"] = notes
    results = evaluate_criteria(spec.parsed_criteria(), audit["metrics"], notes, spec.verify.allow_tolerance)
    audit["criteria"] = [asdict(r) for r in results]
    audit["verdict"] = verdict(results, record_gate_status(audit))
    write_json(report_dir / "audit.json", audit)
    from auditor.render import render_run

    try:
        render_run(report_dir)
    except InvalidInput as exc:  # e.g. an unwritable figures folder; the evidence is on disk
        block["notes"].append(f"could not re-render the sheet ({exc}); it predates this verification: "
                              f"run `auditor render {report_dir}` once that is mended")  # fmt: skip
        write_json(report_dir / "audit.json", audit)  # the block is audit's: the note goes on record
        log(f"auditor verify: warning: {block['notes'][-1]}")


def summary(outcome: VerifyOutcome) -> str:
    """The short human report printed to stdout."""
    from auditor.render import budget_text  # the sheet's Budget row says it alike

    b = outcome.block
    bud = b["budget"]
    verdict = b["verdict"].upper() + (" (pass)" if outcome.passed else " (FAIL)")
    killed = (f"killed after step {b['kill_at_step']} ({killed_done(b['kill_at_step'])}) by {b['kill_signal']}, "
              f"resumed from {b['resumed_from'] or 'scratch'}"
              if b["kill_signal"] else f"not killed (it finished before step {b['kill_at_step']})")  # fmt: skip
    lines = [
        f"verify {Path(b['work_dir']).name}: {verdict} on {b['device']}" + scope_text(b),
        f"  budget: {budget_text(bud)}" + short_of_budget(b),
        f"  run K: {killed}",
    ]
    lines += [_pair_line(p) for p in b["pairs"]]
    lines += _divergence_lines(b)
    causes = b["verdict"] in ("tolerance", "diverged")  # the unshared settings were said among them
    lines += [f"  note: {n}" for n in b["notes"] if not (causes and n.startswith(UNSHARED))]
    evidence = Path(b["work_dir"]) / "verify.json"
    lines.append(f"  evidence: {evidence}; sheet: {outcome.report_dir / 'REPRODUCIBILITY.md'}")
    return "\n".join(lines)


def _pair_line(p: dict[str, Any]) -> str:
    """One pair's line of the summary: weights, losses, metrics, results, checkpoint entries."""
    state = ("identical" if p["equal"] else "final weights not compared" if unweighed(p)
             else f"max |diff| {_g(p['max_abs_diff'])}")  # fmt: skip
    differ = ", ".join(d["metric"] for d in p.get("results", {}).get("differences", []))
    tensors = (f"checkpoint entries {p['tensors_equal']}/{p['tensors_compared']} identical" if p["tensors_compared"]
               else "checkpoint entries not compared (no last checkpoint)")  # fmt: skip
    return (f"  {p['pair']}: {state}; {losses_text(p['losses'])}; "
            f"metrics {'equal' if p['metrics']['equal'] else 'differ'}; "
            f"results {f'differ ({differ})' if differ else 'equal'}; {tensors}")


def _divergence_lines(b: dict[str, Any]) -> list[str]:
    """The summary's first divergence, the tensors that differ most and, for a failed verdict, its causes."""
    fd = b["first_divergence"]
    lines = [
        ("  first divergence: none" if nothing_differs(b["pairs"]) else
         "  first divergence: none in the per-step losses (the runs differ elsewhere: see above)") if fd is None else
        f"  first divergence: step {fd['step']} ({fd['pair']}: loss {' vs '.join(distinct(fd['loss_a'], fd['loss_b']))})"
    ]  # fmt: skip
    if b["top_tensors"]:
        lines.append("  top differing tensors:")
        lines += [
            f"    {t['pair']} {t['name']}: max |diff| {_g(t['max_abs_diff'])}"
            for t in b["top_tensors"][:5]
        ]
    if b["verdict"] in ("tolerance", "diverged"):
        lines.append("  possible causes (settings the runs did not share, then nondeterminism sources in force; a "
                     "thread count all three runs recorded alike is left out):")  # fmt: skip
        unshared = [n for n in b["notes"] if n.startswith(UNSHARED)]  # a user test: only a note said so
        lines += [f"    - {s}" for s in [*unshared, *b["nondeterminism_sources"]]] or ["    - none known: see the notes"]
    return lines


def _g(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def distinct(a: float | None, b: float | None) -> tuple[str, str]:
    """`a` and `b` to 6 significant digits, or to as many more as tell them apart (a user test: a
    first divergence was said as `loss 2.51964 vs 2.51964`)."""
    for digits in range(6, 18):
        shown = tuple("n/a" if v is None else f"{v:.{digits}g}" for v in (a, b))
        if shown[0] != shown[1]:
            return shown
    return _g(a), _g(b)
