"""Orchestration of `auditor run`, called only by the CLI.

A run is built in staging folders (`reports/<name>.partial`,
`checkpoints/<name>.partial`) and promoted over any earlier run of the same
name only once it has finished, so an existing run is never half-overwritten.
An interrupted run stays in staging, where `--resume` finds it. A run holds the
flock on `checkpoints/.<name>.lock` from before it touches those folders until it
has promoted them, so two runs of one name in one output root never mix.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import torch

from auditor import checkpoint, environment, repro
from auditor.audit import (
    LEARNING_CURVES,
    MIN_CPU_WINDOW_S,
    OUTPUT_DIRS,
    SCHEMA_VERSION,
    SET_ASIDE,
    RunPaths,
    ablation_going_on,
    ablation_page_note,
    aside,
    busy_cpu,
    has_checkpoint,
    is_count,
    latency_warnings,
    metric_sources,
    nan_test_loss_note,
    no_selection_note,
    none_selected,
    not_a_number,
    run_paths,
    sheet_edited,
    step_checkpoints,
    step_of,
    write_csv,
    write_json,
)
from auditor.check import evaluate_criteria, gate_status, verdict
from auditor.data import (
    DataBundle,
    Provenance,
    class_changes,
    data_problems,
    load_data,
    missing_note,
    norm_tensors,
    unread_note,
)
from auditor.errors import (
    ENV_OUTPUT_ROOT,
    InvalidInput,
    SpecFieldError,
    signals_held,
    started_by_ablation,
    stop_after_finish_note,
    verify_is_parent,
)
from auditor.fileio import (
    atomic_write_bytes,
    held_lock,
    no_rename_flag,
    not_a_folder,
    out_error,
    why_not_writable,
)
from auditor.measure import ForeignCpu, measure, nonfinite_entries
from auditor.models import build_model, model_info, norm_groups
from auditor.spec import (
    SetItem,
    Spec,
    field_source,
    resolve_spec_path,
    resolved_dict,
    resolved_yaml,
    same_training,
    schedule_notes,
    shipped_name,
    spec_hash,
    training_changes,
    unread_data_fields,
)
from auditor.train import (
    EpochRecord,
    RunFiles,
    StepHook,
    TrainResult,
    check_device_support,
    device_problems,
    fit,
    toggle_notes,
)
from auditor.words import count, describe_setting

# Fault-injection hooks for `auditor verify` and its tests (never set in normal use):
ENV_KILL_AT = "AUDITOR_KILL_AT_STEP"  # SIGKILL this process after that global step
ENV_NOISE_AT = "AUDITOR_INJECT_NOISE_AT_STEP"  # add unseeded noise to the weights there


# --- staging and resume ---------------------------------------------------------


class Claim(NamedTuple):
    """What claimed_run found: whether it made the checkpoint staging folder (else an earlier
    run's was there) and whether it holds the run's lock (not where files cannot be locked)."""

    made: bool
    locked: bool


@contextmanager
def claimed_run(paths: RunPaths, log: Any = print) -> Iterator[Claim]:
    """Hold the run's lock for the block (InvalidInput when another process holds it), check and
    settle what an earlier run left, and make or find the checkpoint staging folder. Whoever
    holds the lock owns the run's folders, from that check to the promotion, so a run that
    finds staging while holding it knows no run of this name is going on in this --out. The
    lock file stays, also after a refused start. A block left by an exception (a failed start,
    Ctrl-C, SIGTERM) before the first checkpoint removes the staging folders: nothing to continue."""
    busy = (f"a run named {paths.checkpoints.name!r} is going on in this --out (another process holds this "
            "lock); wait for it to finish, or run under another name or --out")  # fmt: skip
    with held_lock(paths.lock, busy, paths.out) as locked:
        check_run_folders(paths)
        discard_half_seeded(paths, locked, log)
        if (left := recover_interrupted_promote(paths)) is not None:
            log(leftover_note(left))
        made = _make_ckpt_staging(paths)
        try:
            yield Claim(made, locked)
        except BaseException:
            if locked or made:  # its own: unlocked, a folder found here may be a live run's
                discard_unstarted(paths)
            raise


def _make_ckpt_staging(paths: RunPaths) -> bool:
    """Make the checkpoint staging folder; False when one was there already."""
    try:
        paths.ckpt_staging.mkdir(parents=True)
        return True
    except FileExistsError:
        if not paths.ckpt_staging.is_dir():
            raise out_error(paths.out, not_a_folder(paths.ckpt_staging)) from None
        return False
    except OSError as exc:
        raise out_error(paths.out, _why_not_writable(paths, exc)) from None


def prepare_dirs(paths: RunPaths, resume: bool, made: bool, locked: bool) -> bool:
    """Fill the claimed staging folders; on --resume, seed them from a finished run if needed.

    `made`: claimed_run made the checkpoint staging folder (else it held an earlier run's);
    `locked`: it holds the run's lock. Returns True when it seeded checkpoint staging from
    the finished run. A start that fails removes the staging folder it made (or seeded), so
    nothing looks like an interrupted run afterwards.
    """
    if not resume and not made:
        if (interrupted := has_checkpoint(paths.ckpt_staging)) or not locked:
            raise InvalidInput(_interrupted_run_exists(paths, interrupted))
        _empty(paths.ckpt_staging)  # a run killed before its first checkpoint: nothing to continue
    elif resume and not made and locked and _stopped_before_checkpoint(paths) and paths.last_checkpoint.is_file():
        _empty(paths.ckpt_staging)  # nothing to continue there: the finished run is what --resume continues
        made = True
    seeded = resume and made
    if seeded:
        _seed_from_finished(paths)
    try:
        shutil.rmtree(paths.reports_staging, ignore_errors=True)
        (paths.reports_staging / "figures").mkdir(parents=True)
    except OSError as exc:
        if made:
            shutil.rmtree(paths.ckpt_staging, ignore_errors=True)
        raise out_error(paths.out, _why_not_writable(paths, exc)) from None
    return seeded


def _stopped_before_checkpoint(paths: RunPaths) -> bool:
    """Checkpoint staging is there but holds no checkpoint: a run stopped before its first."""
    return paths.ckpt_staging.is_dir() and not has_checkpoint(paths.ckpt_staging)


def _empty(folder: Path) -> None:
    """Remove what `folder` holds, keeping the folder."""
    for item in folder.iterdir():
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()


def _interrupted_run_exists(paths: RunPaths, interrupted: bool) -> str:
    """Why a fresh start is refused: staging holds an interrupted run (`interrupted`: it has a
    checkpoint), or, where files cannot be locked, perhaps one running now."""
    if interrupted and _a_copy_of_the_finished_run(paths):
        return (f"{paths.ckpt_staging}: a copy of the finished run, made by a --resume of it that was stopped before "
                "it finished (its checkpoints are the finished run's: nothing trained there was saved); remove that "
                f"folder (the finished run in {paths.checkpoints} is as it was), or run that --resume again")  # fmt: skip
    if interrupted:
        return (f"{paths.ckpt_staging}: an interrupted run of this name exists; continue it with "
                "--resume, or remove that folder to start over")  # fmt: skip
    return (
        f"{paths.ckpt_staging}: a run of this name was stopped before its first checkpoint, or is running "
        "now (files cannot be locked here to tell); if none is, remove that folder to start over"
    )


def _a_copy_of_the_finished_run(paths: RunPaths) -> bool:
    """Whether checkpoint staging holds the finished run's checkpoints and nothing since (every digest
    file there is the finished run's, and the same ones): a --resume of the finished run copied them
    there and was stopped before it saved anything (a user test: a SIGKILL while it measured again was
    then called an interrupted run)."""
    def digests(folder: Path) -> dict[str, str]:
        return {p.name: p.read_text() for p in folder.glob("*" + checkpoint.DIGEST_SUFFIX)}

    try:
        staged = digests(paths.ckpt_staging)
        return bool(staged) and staged == digests(paths.checkpoints)
    except (OSError, UnicodeDecodeError):
        return False


# In checkpoint staging while a finished run is copied there for --resume: a copy cut short (SIGKILL,
# the OOM killer) still holds it, and the next run removes that copy rather than take it for an
# interrupted run, whose promotion would replace the finished run's checkpoints with part of them.
SEEDING = ".seeding"


def _seed_from_finished(paths: RunPaths) -> None:
    """Copy the finished run's checkpoints into staging for --resume, or refuse."""
    if not paths.last_checkpoint.is_file():
        raise InvalidInput(_nothing_to_resume(paths))
    marker = paths.ckpt_staging / SEEDING
    try:
        atomic_write_bytes(marker, b"a copy of the finished run for --resume, being made\n")
        shutil.copytree(paths.checkpoints, paths.ckpt_staging, dirs_exist_ok=True)  # into the claimed folder
        marker.unlink()
    except BaseException as exc:  # a half copy must not pass for an interrupted run
        shutil.rmtree(paths.ckpt_staging, ignore_errors=True)
        if isinstance(exc, shutil.Error):  # copytree's list of (source, target, why): the first why
            first = exc.args[0][0] if exc.args and isinstance(exc.args[0], list) and exc.args[0] else None
            why = first[2] if isinstance(first, tuple) and len(first) == 3 else str(exc)
            room = " (it needs room for a second copy of them)" if "No space left" in why else ""
            raise out_error(paths.out, f"copying the finished run's checkpoints for --resume: {why}{room}") from None
        if isinstance(exc, OSError):
            raise out_error(paths.out, _why_not_writable(paths, exc)) from None
        raise


def _nothing_to_resume(paths: RunPaths) -> str:
    """The refusal of a --resume that finds no run to continue, saying what is there instead: step
    checkpoints without the last.pt a finished run needs, or a finished run without checkpoints."""
    steps = step_checkpoints(paths.checkpoints) if paths.checkpoints.is_dir() else []
    if steps:
        newest = max(steps, key=step_of).name  # type: ignore[arg-type,type-var]  # step checkpoints: never None
        return (f"--resume: {paths.last_checkpoint} is missing, which a finished run needs to be resumed; the step "
                f"checkpoints beside it ({count(len(steps), 'file')}, the newest {newest}) are not resumed from: "
                "run without --resume to train it again")  # fmt: skip
    status = _finished_status(paths.reports / "audit.json")
    if status is not None:
        return (f"--resume: the finished run in {paths.reports} (status {status}) has no {paths.last_checkpoint}, "
                "which a finished run needs to be resumed (none was written, or it was removed), so there is "
                "nothing to continue; run without --resume to train it again (it replaces that run when it finishes), "
                "or `auditor check`/`auditor render` that run to judge or show it again")  # fmt: skip
    return (f"--resume: no checkpoint to resume under {paths.checkpoints}; run without --resume to train it (a run "
            "stopped before its first checkpoint leaves nothing to continue: its stop said to start again)")  # fmt: skip


def trains_nothing(paths: RunPaths, found: Path, seeded: bool) -> bool:
    """Whether resuming from `found` trains no step: a finished run's own `last.pt` (`seeded`), which
    ends its training, unless the run diverged after it (a diverged run trains its last epoch
    again); a step checkpoint or best.pt, taken where `last.pt` is damaged, is trained on from."""
    return seeded and found.name == "last.pt" and _finished_status(paths.reports / "audit.json") != "diverged"


def _finished_status(path: Path) -> str | None:
    """The run status a finished run's audit.json records, or None where there is none to read
    (no file, something else there, not JSON, no status)."""
    if not path.is_file():  # is_file first: a FIFO would block the read
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))["run"]["status"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return status if isinstance(status, str) else None


def check_resumable(paths: RunPaths) -> None:
    """Refuse a --resume with no run to continue, interrupted or finished, before anything is
    made under --out. A look without the lock: claimed_run's check is the one that counts, and
    this one only spares the data load and the folders a refusal would leave. (A run stopped
    before its first checkpoint removed its folders, `discard_unstarted`: there is nothing to
    continue, and the stop said to start again; something else where last.pt goes is named by
    the checks that follow.)"""
    if not os.path.lexists(paths.ckpt_staging) and not os.path.lexists(paths.last_checkpoint):
        raise InvalidInput(_nothing_to_resume(paths))


def discard_half_seeded(paths: RunPaths, locked: bool, log: Any = print) -> None:
    """Remove checkpoint staging where a --resume's copy of the finished run was cut short (its
    SEEDING marker is there; check_run_folders has refused anything of the user's in it): the
    finished run itself is intact. Where files cannot be locked (`locked` False) a copy being made
    now cannot be told from one cut short: refused, named."""
    if not (paths.ckpt_staging / SEEDING).exists() or paths.ckpt_staging.is_symlink():
        return
    if not locked:
        raise InvalidInput(f"{paths.ckpt_staging}: a copy of the finished run that a --resume was making, or is "
                           "making now (files cannot be locked here to tell); if none is running, remove that "
                           "folder: the finished run is as it was")  # fmt: skip
    try:
        shutil.rmtree(paths.ckpt_staging)
        shutil.rmtree(paths.reports_staging, ignore_errors=True)  # a run writes it afresh anyway
    except OSError as exc:
        raise out_error(paths.out, _why_not_writable(paths, exc)) from None
    log(f"note: removed {paths.ckpt_staging}, a copy of the finished run that a killed --resume left half made; "
        "the finished run is as it was")  # fmt: skip


def discard_unstarted(paths: RunPaths) -> None:
    """By the run that claimed the staging folders, when it stops or fails: remove them when no
    checkpoint was written (nothing to continue), so that the same command starts again."""
    if paths.ckpt_staging.is_dir() and not has_checkpoint(paths.ckpt_staging):
        shutil.rmtree(paths.ckpt_staging, ignore_errors=True)
        shutil.rmtree(paths.reports_staging, ignore_errors=True)


def _why_not_writable(paths: RunPaths, exc: OSError) -> str:
    """Why a staging folder could not be written (`fileio.why_not_writable`)."""
    return why_not_writable(exc, paths.ckpt_staging, paths.reports_staging)


def stage_run(
    paths: RunPaths, spec: Spec, resume: bool, log: Any, device: torch.device, claimed: Claim, data_fingerprint: str,
    classes: Sequence[str] | None = None,
) -> tuple[Path | None, list[str], bool]:
    """Staging folders and, on --resume, the checkpoint to continue from (None: from scratch),
    its notes, and whether staging is a copy of the finished run (`seeded_copy`).

    `claimed`: what claimed_run yielded; `data_fingerprint` and `classes`: the data read for this run.
    """
    seeded = prepare_dirs(paths, resume, made=claimed.made, locked=claimed.locked)
    if not resume:
        if (paths.reports / "audit.json").is_file():
            log(f"note: {paths.reports} holds an earlier run of this name; this run replaces it when it "
                "finishes, and it stays as it is until then")  # fmt: skip
            _say_ablation_page(paths, log)
        return None, [], False
    with seeded_copy(paths, seeded):
        found, notes = find_resume_point(paths, spec, log, device, data_fingerprint, seeded, classes)
    if seeded:  # the finished run's record is replaced too, when this resume finishes
        _say_ablation_page(paths, log)
    return found, notes, seeded


def _say_ablation_page(paths: RunPaths, log: Any) -> None:
    """Note, where the record this run replaces is counted on an ablation's page, that the page goes on
    showing it (`ablation_page_note`): not where this run is that ablation's own rerun of it."""
    if (page := ablation_page_note(paths.reports, started_by_ablation())) is not None:
        log(f"note: {page}")


@contextmanager
def seeded_copy(paths: RunPaths, seeded: bool) -> Iterator[None]:
    """A resume of a finished run works on a copy of it in staging (`seeded`): whatever stops it
    (refused, a bad checkpoint, Ctrl-C) removes the copy, so that nothing looks like an
    interrupted run afterwards, and an error names the user's checkpoint rather than the copy."""
    try:
        yield
    except BaseException as exc:
        if not seeded or not paths.ckpt_staging.exists():  # promoted already: a staged report waits for the next run
            raise
        shutil.rmtree(paths.ckpt_staging, ignore_errors=True)
        shutil.rmtree(paths.reports_staging, ignore_errors=True)
        if isinstance(exc, InvalidInput):
            raise InvalidInput(str(exc).replace(str(paths.ckpt_staging), str(paths.checkpoints))) from None
        raise


def _from_best_note(skipped: bool) -> str:
    """Why a resume continues from best.pt (`skipped`: the checkpoints after it were passed over)."""
    why = "" if skipped else " (the process stopped after writing it, before last.pt)"
    return (f"continuing from best.pt, the newest checkpoint that verifies{why}: a run writes it with the same bytes "
            "as last.pt at the end of an epoch whose model it selects, so it holds that epoch's whole training state; "
            "last.pt is written again from it")  # fmt: skip


def _nothing_to_resume_text(paths: RunPaths, skipped: list[tuple[Path, str]], notes: list[str], seeded: bool) -> str:
    """Why --resume is refused where every checkpoint in staging was `skipped` (`notes` says why, one
    each), and what to do: start over, or, for an interrupted run whose best.pt was passed over for
    the damaged last.pt, train on from best.pt once last.pt is removed."""
    fresh = start_over_text(paths, seeded)
    if (passed := checkpoint.best_passed_over(paths.ckpt_staging, skipped)) is None:
        return f"--resume: no intact checkpoint in {paths.ckpt_staging} ({'; '.join(notes)}); to start over, {fresh}"
    # An interrupted run trains on from best.pt once last.pt is gone; a finished run needs its last.pt.
    advice = "" if seeded else (f"to train on from best.pt (the steps after it are trained again), remove "
                                f"{paths.ckpt_staging / 'last.pt'}; ")  # fmt: skip
    return (f"--resume: no checkpoint to continue from in {paths.ckpt_staging} ({'; '.join(notes)}; {passed}); "
            f"{advice}to start over, {fresh}")  # fmt: skip


def find_resume_point(
    paths: RunPaths, spec: Spec, log: Any, device: torch.device, data_fingerprint: str, seeded: bool = False,
    classes: Sequence[str] | None = None,
) -> tuple[Path | None, list[str]]:
    """The checkpoint in staging to continue from (`checkpoint.resume_point`), checked against the
    current spec and data; where it is best.pt, last.pt is written again from it.

    `seeded`: staging is a copy of the finished run (removed again if this refuses).
    """
    found, skipped = checkpoint.resume_point(paths.ckpt_staging)
    notes = [f"skipped {p.name}: {reason}" for p, reason in skipped]
    notes += [_from_best_note(bool(skipped))] if found is not None and found.name == "best.pt" else []
    fresh = start_over_text(paths, seeded)
    if found is None and skipped:
        raise InvalidInput(_nothing_to_resume_text(paths, skipped, notes, seeded))
    for n in notes:
        log(f"resume: {n}")
    if found is None:
        log(f"resume: no checkpoint in {paths.ckpt_staging} (none was written, or they were removed): training from the start")
        return None, notes
    state = _load_resumable(found, paths, seeded)
    # What it was trained under first: a checkpoint of another spec or data is refused as such,
    # not for a best.pt that putting back would not make resumable (a user test).
    own = [*resume_spec_notes(found, state, spec, fresh), *resume_data_notes(found, state, data_fingerprint, fresh, classes)]
    best_from, best_note = check_best_kept(found, state, fresh, environment.compute_setting(device))
    done = trains_nothing(paths, found, seeded)
    notes_now = [*own, *resume_version_notes(found, state, done), *resume_compute_notes(found, state, device, done)]
    for n in [*([best_note] if best_note else []), *notes_now]:
        log(f"resume: {n}")
        notes.append(n)
    # Accepted: files are written again only now, so that a refused resume leaves staging as it was.
    if best_from is not None:
        checkpoint.save_bytes(found.with_name("best.pt"), best_from.read_bytes())
    if found.name == "best.pt":  # the damaged last.pt would outlive a resume that trains nothing
        checkpoint.save_bytes(paths.ckpt_staging / "last.pt", found.read_bytes())
    return found, notes  # `train.fit` says it continues, once the checkpoint is restored


def resume_from_text(ckpt_dir: Path) -> str:
    """Where a --resume of the run in `ckpt_dir` would continue from, as a stop's hint says it:
    ' from step-00000028.pt (global step 28)' (a user test: the hint said nothing of how much was
    kept). The resume checks it again, against the spec and data too."""
    found, _ = checkpoint.resume_point(ckpt_dir)
    if found is None:
        return " (no checkpoint there verifies: the resume says why, and how to start over)"
    step = checkpoint.position(found)
    return f" from {found.name}" + (f" (global step {step:,})" if step >= 0 else "")


def _load_resumable(found: Path, paths: RunPaths, seeded: bool) -> dict[str, Any]:
    """The checkpoint a --resume continues from, loaded, with a position it can go on from; else
    InvalidInput with what to do (its digest verifies: it was written so, or replaced and digested
    again, a user test). `train.resume_into` checks the rest once the loop is built."""
    try:
        state = checkpoint.load(found)
    except InvalidInput as exc:
        raise InvalidInput(f"--resume: {exc}; {refused_resume_advice(paths, seeded)}") from None
    if (problem := _named_step_problem(found, state)) is not None:
        raise InvalidInput(f"--resume: {found}: cannot continue from it: {problem} (its digest verifies: it was "
                           f"written so, or edited and digested again); {refused_resume_advice(paths, seeded)}")  # fmt: skip
    return state


def _named_step_problem(found: Path, state: dict[str, Any]) -> str | None:
    """Why a checkpoint's global step cannot be continued from, or None: not a count, or not the
    step its name gives (`step-<global step>.pt`: a user test copied another run's step-56 over
    step-28, and the resume went on from step 56 under the other's name)."""
    if (problem := checkpoint.count_problem(state, "global_step")) is not None:
        return problem
    named = step_of(found)
    if named is not None and named != state["global_step"]:
        return f"its name gives global step {named}, but it holds global step {state['global_step']} (another's, renamed)"
    return None


def start_over_text(paths: RunPaths, seeded: bool) -> str:
    """How to start a run over instead of resuming it: without --resume, where staging is a copy of
    the finished run (`seeded`, removed again when the resume is refused), else after removing the
    interrupted run's staging folder, which a plain run refuses to mix into."""
    return "run without --resume" if seeded else f"remove {paths.ckpt_staging} and run without --resume"


def refused_resume_advice(paths: RunPaths, seeded: bool) -> str:
    """What to do where the checkpoint a --resume would continue from is refused: an interrupted
    run may go on from the one before it, where one is kept; a finished run (`seeded`) is resumed
    from its newest intact checkpoint, which a resume works on a copy of: it is trained again."""
    if seeded:
        return "a finished run is resumed from its newest intact checkpoint: to train it again, run without --resume"
    return ("move it away to resume from the checkpoint before it (with none kept, the run trains from the start), "
            f"or, to start over, {start_over_text(paths, seeded)}")


def check_best_kept(
    found: Path, state: dict[str, Any], fresh: str, now: dict[str, Any]
) -> tuple[Path | None, str | None]:
    """Refuse to resume when the checkpoint records a best epoch whose best.pt (the model every
    measurement uses) is gone or damaged: training on would end in a run measured on the wrong
    weights, or refused only after all its training. Except where last.pt verifies and was
    written at the end of that epoch (`holds_best`), with best.pt's bytes: then (last.pt, the note
    saying best.pt is written again from it), for the caller to copy once every check has passed;
    else (None, None). And refuse when best.pt is newer than the checkpoint yet was not taken
    (`checkpoint.newer_best`: a last.pt that reads as further on failed its digest) and was trained
    on another compute setting than `now`: there the epoch it holds need not be selected again, and the
    best.pt it replaced is gone. `fresh`: how to start over instead."""
    best = state.get("best")
    epoch = best.get("epoch") if isinstance(best, dict) else None
    path = found.with_name("best.pt")
    reason = checkpoint.verify(path)
    if reason is None:
        _check_best_not_ahead(path, found, state, fresh, now)
    if reason is None or epoch is None:  # no best yet: the first selectable epoch's end writes one
        return None, None
    state_of = "missing" if reason == "missing" else f"checkpoint is not intact: {reason}"
    if (source := _best_source(found, state, epoch)) is not None:
        return source, (f"best.pt was {state_of}; it is written again from last.pt, which was written with the same "
                        f"bytes at the end of epoch {epoch}, the one the run selected")  # fmt: skip
    raise InvalidInput(
        f"{path}: {state_of}; {found.name} records it as written after epoch {epoch} (the model the run selected, "
        f"which every measurement uses), and --resume cannot write it again; put back best.pt and its "
        f"{checkpoint.digest_path(path).name} from a copy, or to start over, {fresh}"
    )


def _best_source(found: Path, state: dict[str, Any], epoch: int) -> Path | None:
    """last.pt where it verifies and holds best.pt's bytes (`holds_best`) for the best `epoch` the
    resume point records (`found`, `state`: last.pt itself, or a step checkpoint after it); else None."""
    last = found.with_name("last.pt")
    if found != last:
        if checkpoint.verify(last) is not None:
            return None
        try:
            state = checkpoint.load(last, check_digest=False)  # verified
        except InvalidInput:
            return None
    best = state.get("best")
    return last if holds_best(state) and isinstance(best, dict) and best.get("epoch") == epoch else None


def holds_best(state: dict[str, Any]) -> bool:
    """Whether a checkpoint was written at the end of the epoch its run selected, where best.pt is
    written with the same bytes: no epoch ended after the best one (`since` 0), and it is at that
    epoch's end (no step into the next)."""
    best = state.get("best")
    if not isinstance(best, dict):
        return False
    at_end = state.get("step_in_epoch") == 0
    return best.get("since") == 0 and is_count(best.get("epoch")) and state.get("epoch") == best["epoch"] and at_end


def _check_best_not_ahead(path: Path, found: Path, state: dict[str, Any], fresh: str, now: dict[str, Any]) -> None:
    """Refuse an intact best.pt written after the checkpoint resumed from on another compute setting."""
    newer = checkpoint.load(path, check_digest=False)  # verified
    then, step = newer.get("compute"), newer.get("global_step")
    if not isinstance(step, int) or step <= state["global_step"] or not isinstance(then, dict) or environment.same_setting(then, now):
        return  # on the same setting, training on selects (and writes) the same epoch again
    raise InvalidInput(
        f"{path}: written at global step {step:,} on {describe_setting(then)}, after {found.name} (step "
        f"{state['global_step']:,}) by a process stopped before its last.pt; continuing on {describe_setting(now)} "
        f"need not select that epoch again, and the best.pt it replaced is gone: resume on that setting, or to "
        f"start over, {fresh}"
    )


def resume_spec_notes(found: Path, state: dict[str, Any], spec: Spec, fresh: str | None = None) -> list[str]:
    """Accept a checkpoint of the same spec, or of one changed only outside training; else refuse,
    saying the ways on: the spec it was written under, another name, or (`fresh`) starting over."""
    if state.get("spec_hash") == spec_hash(spec):
        return []
    before = state.get("spec")
    training, outside = training_changes(before if isinstance(before, dict) else {}, spec)
    if same_training(before, spec):
        if not outside:  # hashed otherwise by an earlier version (-0.0 apart from 0)
            same = (f"{found.name} was written under the same spec, which an earlier version hashed otherwise "
                    f"({str(state.get('spec_hash'))[:12]}, now {spec_hash(spec)[:12]})")  # fmt: skip
            return [same]
        return [f"{found.name} was written under a spec that differs only outside training "
                f"({'; '.join(outside)}); this run records the new spec, checkpoints written "
                "before the resume keep the old one"]  # fmt: skip
    allowed = f"; also changed, which alone would not stop a resume: {listed(outside)}" if outside else ""
    over = f", or, to start over in its place, {fresh}" if fresh else ""
    raise InvalidInput(
        f"{found}: checkpoint was written by a different spec (hash {str(state.get('spec_hash'))[:12]}"
        f", now {spec_hash(spec)[:12]}); changed in its training settings: {listed(training) or 'unknown'}{allowed}; "
        f"resume with the spec it was written under, or train this spec under another name (--set name=NEW), "
        f"which keeps that run{over}"
    )


def resume_data_notes(
    found: Path, state: dict[str, Any], fingerprint: str, fresh: str, classes: Sequence[str] | None = None
) -> list[str]:
    """Refuse a checkpoint of a run that trained on other data (a data.root that now holds other
    images: the spec alone cannot tell); a note when the checkpoint does not say, or when the
    class names read now (`classes`: batches.meta's, which the fingerprint leaves out) are not
    those it was trained under. `fresh`: how to start over instead."""
    recorded = state.get("data_fingerprint")
    if recorded is None:  # checkpoints written before the fingerprint was recorded
        return [(f"{found.name} does not record the fingerprint of the data it trained on (an earlier version "
                 "wrote it): that the data is the same could not be checked")]  # fmt: skip
    if recorded != fingerprint:
        raise InvalidInput(
            f"{found}: the run read other data (fingerprint {str(recorded)[:12]}, over its training and test images "
            f"and labels) than the data read now ({fingerprint[:12]}): continuing would mix two data sets; resume "
            f"with the data it read, or to start over, {fresh}"
        )
    then = state.get("classes")  # older checkpoints: not recorded
    if classes is not None and isinstance(then, list) and then != list(classes):
        note = (f"{found.name} was trained when the class names were {class_changes(then, classes)}: the labels "
                "trained on are the same, and the sheet names the classes as read now")  # fmt: skip
        return [note]
    return []



def listed(changes: list[str], most: int = 8, sep: str = "; ") -> str:
    """The first `most` changes (or names), and how many more there are."""
    more = f" (and {len(changes) - most} more)" if len(changes) > most else ""
    return sep.join(changes[:most]) + more


# After what a finished run's checkpoint was written with (a --resume that trains nothing again):
# the weights are that training's, and only the measuring and the sheet are this process's.
MEASURED_AGAIN = ("no step is trained again (the run had finished), so the weights are those trained there; "
                  "this process only measures them again and writes the sheet, whose environment is its own")


def resume_version_notes(found: Path, state: dict[str, Any], finished: bool = False) -> list[str]:
    """A note when the checkpoint was written by other software than the one continuing it
    (`finished`: a finished run's, which nothing trains further)."""
    now, then = environment.software_versions(), state.get("versions")
    if environment.versions_agree(then, now):
        return []
    listed = environment.versions_text
    was = listed(then) if isinstance(then, dict) else "software versions it did not record"
    if finished:
        return [f"{found.name} was written with {was}; {MEASURED_AGAIN} ({listed(now)})"]
    return [f"{found.name} was written with {was}; this run continues with {listed(now)}: "
            "the result may differ in its last bits from an uninterrupted run under either"]  # fmt: skip


def resume_compute_notes(found: Path, state: dict[str, Any], device: torch.device, finished: bool = False) -> list[str]:
    """A note when the checkpoint was written on another device, processor or CPU thread count
    (`finished`: a finished run's, which nothing trains further)."""
    then, now = state.get("compute"), environment.compute_setting(device)
    if finished and isinstance(then, dict) and environment.setting_differs(then, now):
        note = (f"{found.name} was trained on {describe_setting(then)}; {MEASURED_AGAIN} "
                f"({describe_setting(now)})")
        return [note]
    if not isinstance(then, dict):  # written before checkpoints recorded it
        unknown = (
            f"{found.name} did not record the device, processor and torch thread count it was written "
            f"on; this run continues on {describe_setting(now)}: on another one, the result "
            "may differ in its last bits from an uninterrupted run"
        )
        return [unknown]
    if not environment.setting_differs(then, now):
        return []
    note = (
        f"{found.name} was written on {describe_setting(then)}; this run continues on "
        f"{describe_setting(now)}: the result may differ in its last bits from an "
        "uninterrupted run on either"
    )
    return [note]


def _holds_a_run(folder: Path, marker: str) -> bool:
    """A real folder holding what a run leaves there, or nothing at all (nothing to lose)."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    return any(folder.glob(marker)) or not any(folder.iterdir())


def _set_aside_by_us(folder: Path) -> bool:
    """`<name>.old` as `promote` leaves it: a real folder it marked (its contents were checked as
    the run's own before it was set aside; an empty run folder marked holds the mark alone), or an
    empty folder (nothing to lose)."""
    if not folder.is_dir() or folder.is_symlink():
        return False
    return (folder / SET_ASIDE).is_file() or not any(folder.iterdir())


# What a run writes at the top of each of its folders (fileio's `.*.tmp` files too, left by a write
# cut short). Anything else there is the user's, which replacing the folder would delete.
RUN_FILES = {
    "checkpoints": (*checkpoint.FILE_PATTERNS, ".*.tmp", SEEDING, SET_ASIDE),
    "reports": ("REPRODUCIBILITY.md", "audit.json", "metrics.csv", "steps.csv", "spec.resolved.yaml", "figures", ".*.tmp",
                SET_ASIDE),
    "reports/figures": (f"{LEARNING_CURVES}.png", ".*.tmp"),
}  # fmt: skip


def unlisted(folder: Path, patterns: Sequence[str | re.Pattern[str]]) -> list[str]:
    """Names in `folder` that match none of `patterns` (none where it is not a real folder:
    missing, a file, or a link, which replacing it would not delete through)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [p.name for p in folder.iterdir() if not any(checkpoint.name_matches(p.name, pat) for pat in patterns)]


def foreign_files(folder: Path, attr: str) -> list[str]:
    """Names in `folder` (a run's `attr` folder, and its figures/) that no run writes there."""
    found = unlisted(folder, RUN_FILES[attr])
    figures = folder / "figures"
    if f"{attr}/figures" in RUN_FILES and figures.is_dir() and not figures.is_symlink():
        found += [f"figures/{n}" for n in foreign_files(figures, f"{attr}/figures")]
    return sorted(found)


def misplaced_checkpoints(folder: Path) -> list[str]:
    """Names in `folder` that a checkpoint file takes (last.pt, step-*.pt, their digests) held by
    something else: a folder, a FIFO, a link to nothing."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if any(checkpoint.name_matches(p.name, pat) for pat in checkpoint.FILE_PATTERNS) and not p.is_file())  # fmt: skip


def _run_folders(paths: RunPaths) -> list[tuple[str, Path, str]]:
    """(what, final folder, what a run leaves there) for each folder a run replaces; the marker
    recognises a set-aside copy of an earlier run."""
    return [("checkpoints", paths.checkpoints, "*.pt"), ("reports", paths.reports, "audit.json")]


def recover_interrupted_promote(paths: RunPaths) -> Path | None:
    """Finish or undo a promote that was killed part-way; returns what of a folder it set aside
    could not be deleted (`discard`), or None.

    Killed between the two promotes (checkpoints already the new run's), the
    new report is complete in staging: it is promoted, so that a report never
    sits beside checkpoints it was not written with. Killed between the two
    renames of one promote, `<name>.old` is put back.
    """
    left = None
    if report_awaits_promotion(paths):
        mark_set_aside(paths.reports)
        left = promote(paths.reports_staging, paths.reports)
    for _, final, _ in _run_folders(paths):
        old = aside(final)
        if _set_aside_by_us(old) and not (final.exists() or final.is_symlink()):
            os.replace(old, final)
        if final.is_dir() and not final.is_symlink():  # put back, or marked by a promote killed before its rename
            (final / SET_ASIDE).unlink(missing_ok=True)
    return left


def report_awaits_promotion(paths: RunPaths) -> bool:
    """The staged report is finished and records the checkpoints now in place (by their digests)."""
    if paths.ckpt_staging.exists() or not (paths.reports_staging / "REPRODUCIBILITY.md").is_file():
        return False
    try:
        recorded = json.loads((paths.reports_staging / "audit.json").read_text())["checkpoints"]["last"]["sha256"]
        return recorded == checkpoint.recorded_digest(paths.last_checkpoint)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_recordable(spec: Spec, spec_path: str, out: Path, argv: list[str]) -> None:
    """Refuse, before training, text the record cannot hold: a path or argument that is not UTF-8.

    The shell hands such bytes over as lone surrogates; audit.json escapes them,
    but the sheet is UTF-8 text and could not be written after training.
    """
    texts = [("--out", str(out)), ("spec", spec_path), ("working directory", os.getcwd())]
    texts += [("argument", a) for a in argv] + [("spec", json.dumps(resolved_dict(spec), ensure_ascii=False))]
    for label, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise InvalidInput(
                f"{label} {shown}: not valid UTF-8; the audit record and the sheet are UTF-8 text and could "
                "not record it: rename it, or run from a folder whose path is UTF-8"
            ) from None


def check_run_folders(paths: RunPaths) -> None:
    """Refuse, before training, anything in the way of replacing an earlier run cleanly, naming
    all of it at once (the reports' and the checkpoints' folders alike).

    A run replaces its folders by renaming (`promote`): a file where a run's
    folder goes, or something of the user's under the reserved `<name>.old`,
    would make it fail half-way (checkpoints replaced, reports not) or delete
    the user's files.
    """
    problems = run_folder_problems(paths)
    if (going_on := ablation_going_on(paths.reports, started_by_ablation())) is not None:
        problems.insert(0, going_on)
    if len(problems) == 1:
        raise InvalidInput(problems[0])
    if problems:
        raise InvalidInput(f"{len(problems)} things are in the way of this run:\n" + "\n".join(f"  - {p}" for p in problems))


def run_folder_problems(paths: RunPaths) -> list[str]:
    """What `check_run_folders` refuses, one line each (none: nothing is in the way); `ablate`
    says them of every run to come before the first starts."""
    return [p for attr, final, marker in _run_folders(paths) for p in _in_the_way(attr, final, marker)]


def _them(found: list[str]) -> str:
    return "it" if len(found) == 1 else "them"


def _sheet_edited(reports: Path) -> list[str]:
    """The refusal of a run over a report folder whose sheet was edited by hand (`audit.sheet_edited`):
    the run replaces the folder, sheet included (the review: an ablation's re-judge replaced one
    without a word). A sheet of 0.3.0, with no mark, is not said."""
    if (why := sheet_edited(reports)) is None:
        return []
    return [(f"{why}; this run replaces the report folder when it finishes, sheet included: move the sheet out of "
             "that folder to keep your edit (a sheet of 0.3.0, with no mark, is replaced as before)")]  # fmt: skip


def _in_the_way(attr: str, final: Path, marker: str) -> list[str]:
    """What is in the way of a run's `attr` folder at `final`: check_run_folders's refusals."""
    found = []
    real_folder = final.is_dir() and not final.is_symlink()
    if (final.exists() or final.is_symlink()) and not final.is_dir():  # a dangling link too
        found.append(f"{final}: not a folder, but this run writes its {attr} there; move it away")
    if final.is_dir() and final.is_symlink():  # a user test: checkpoints linked to another disk came back silently
        found.append(f"{final}: a symbolic link (to {os.readlink(final)}); a run replaces its {attr} folder as a whole "
                     "when it finishes, which would put a folder here in the link's place rather than write where it "
                     "points: remove the link (nothing it points to is touched), or give --out a folder on that disk")  # fmt: skip
    if real_folder and (flag := no_rename_flag(final)):  # chmod cannot mend it, root's access() alike (a user test)
        found.append(f"{final}: {flag}, so this run cannot replace its {attr} folder when it finishes: remove the flag "
                     f"(chattr -{flag[0]} {shlex.quote(str(final))}, as root), or give another --out")  # fmt: skip
    elif real_folder and not os.access(final, os.W_OK | os.X_OK):
        found.append(f"{final}: not writable by this user; a run marks its earlier {attr} folder before it "
                     f"replaces it when it finishes: make it writable (chmod u+wx {shlex.quote(str(final))}), or give "
                     "another --out")  # fmt: skip
    if real_folder and attr == "reports":
        found += _sheet_edited(final)
    if real_folder and (foreign := foreign_files(final, attr)):
        found.append(f"{final}: holds {listed(foreign, 5, ', ')}, which no run writes; this run replaces the folder "
                     f"when it finishes, which would delete {_them(foreign)}: move {_them(foreign)} away")  # fmt: skip
    staging = final.with_name(final.name + ".partial")
    for folder in (final, staging) if attr == "checkpoints" else ():
        if odd := misplaced_checkpoints(folder):  # a run would train, then fail writing there
            found.append(f"{folder}: {listed(odd, 5, ', ')} where a checkpoint file goes (not a regular file); "
                         "move it away")  # fmt: skip
    if staging.is_dir() and not staging.is_symlink() and (foreign := foreign_files(staging, attr)):
        found.append(f"{staging}: holds {listed(foreign, 5, ', ')}, which no run writes; a run empties this staging "
                     f"folder, which would delete {_them(foreign)}: move {_them(foreign)} away")  # fmt: skip
    old = aside(final)
    if (old.exists() or old.is_symlink()) and not _set_aside_by_us(old):
        found.append(f"{old}: in the way: a run moves its earlier {attr} folder to this reserved name while it "
                     "replaces it, and deletes it when done; this one was not set aside by a run (" + (
                         "it holds a run: a copy of yours?" if _holds_a_run(old, marker) else "not such a folder")
                     + "): rename or move it" + ("" if final.exists() or final.is_symlink() else
                                                  f", or if an older auditor left it, rename it back to {final.name}"))  # fmt: skip
    return found


def promote(staging: Path, final: Path) -> Path | None:
    """Replace `final` by `staging` (rename old aside first, delete it last).

    `<name>.old` is renamed to a hidden trash name before it is deleted, so
    that a deletion cut short never leaves a partial `.old` behind. Returns
    what of the earlier folder could not be deleted (`discard`), or None. The
    caller has marked `final` as set aside by a run (`mark_set_aside`).
    """
    old = aside(final)
    appeared(old, staging)
    discard(old)
    if final.exists() or final.is_symlink():
        os.replace(final, old)
    os.replace(staging, final)
    return discard(old)


def leftover_note(left: Path, retried_by: str = "the next run of this name") -> str:
    """The console note for what `discard` could not delete (`left`), which `retried_by` (the next
    run of the name, the next verify) tries again."""
    return (f"note: {left}: not all of it could be deleted (a folder inside that may not be written?); "
            f"{retried_by} tries again, or delete it yourself")


def mark_set_aside(final: Path) -> None:
    """Mark an earlier run's folder as one a run sets aside, before it is moved to `<name>.old`
    (OSError where the folder takes no file: a read-only one)."""
    if final.is_dir() and not final.is_symlink():
        (final / SET_ASIDE).touch()


def mark_both_set_aside(*finals: Path) -> None:
    """Mark every earlier folder before any is set aside, so that one that takes no mark (made
    read-only meanwhile) stops both promotes; the marks already made are then taken back (a mark
    left in a folder that stays would pass a user's copy of it under `<name>.old` for a run's)."""
    done: list[Path] = []
    try:
        for final in finals:
            mark_set_aside(final)
            done.append(final)
    except OSError:
        for final in done:
            (final / SET_ASIDE).unlink(missing_ok=True)
        raise


def appeared(old: Path, staging: Path) -> None:
    """Refuse to replace a `<name>.old` that a run did not set aside (made since the run's own
    check: a user's); `staging` is where the run's results wait meanwhile."""
    if (old.exists() or old.is_symlink()) and not _set_aside_by_us(old):
        raise InvalidInput(f"{old}: appeared while this run worked, under the name a run reserves for setting its "
                           f"earlier folder aside; it was left as it is, and this run's results wait in {staging}: "
                           "rename or move it, then run the same command with --resume")  # fmt: skip


def discard(path: Path) -> Path | None:
    """Remove a folder (or a link to one: the link, not its target), by way of a trash name, so
    that a deletion that fails part way (a read-only folder inside) leaves a hidden name, not a
    half-deleted folder under `path`'s name. Returns such a leftover, or an earlier one that fails
    again (None: all gone); a later discard of the same name tries it again."""
    stuck = None  # an earlier leftover that fails again is said too (the README promises a note)
    for left in path.parent.glob(f".{path.name}.trash-*"):  # from a deletion cut short
        shutil.rmtree(left, ignore_errors=True)
        stuck = stuck or (left if left.exists() or left.is_symlink() else None)
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        trash = path.with_name(f".{path.name}.trash-{os.getpid()}")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return trash if trash.exists() or trash.is_symlink() else stuck
    return stuck


# --- fault injection (verify) -----------------------------------------------------


def output_folders(out: Path, verify_out: str | None = None) -> list[Path]:
    """The tool's own output folders under `out` (and, for verify's runs, under verify's
    `--out`), which the run's git state leaves out: the run has begun writing there."""
    roots = [out, *([Path(verify_out)] if verify_out else [])]
    return [root / d for root in roots for d in OUTPUT_DIRS]


def hooks_from_env(log: Any = print) -> StepHook | None:
    """Step hook from the fault-injection variables of verify's tests, or None where none is taken.
    Outside a run whose parent is the `auditor verify` that set them (`errors.verify_is_parent`: not
    a variable left set in a shell or a CI job), the noise
    hook is ignored, as its unseeded noise would leave weights no rerun gives with nothing on the
    sheet saying so (a user test), and the kill hook, which finishes nothing, is said at the start
    (the process had died with exit 137 without a word)."""
    kill_at, noise_at = os.environ.get(ENV_KILL_AT), os.environ.get(ENV_NOISE_AT)
    if not verify_is_parent():
        if noise_at is not None:
            log(f"warning: {ENV_NOISE_AT}={noise_at} is set, and ignored: a test hook of `auditor verify` (unseeded "
                "noise added to the weights), which only the runs verify starts take")  # fmt: skip
            noise_at = None
        if kill_at is not None:
            log(f"warning: {ENV_KILL_AT}={kill_at} is set: this process kills itself (SIGKILL) after global step "
                f"{kill_at}, a test hook of `auditor verify`; unset it to train to the end")  # fmt: skip
    if kill_at is None and noise_at is None:
        return None

    def hook(step: int, model: torch.nn.Module) -> None:
        if noise_at is not None and step == int(noise_at):
            with torch.no_grad():  # deliberately unseeded: a fresh generator from OS entropy
                p = next(model.parameters())
                g = torch.Generator(device=p.device).manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
                p.add_(torch.randn(p.shape, generator=g, device=p.device) * 1e-3)
        if kill_at is not None and step == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


# --- the run ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """What the CLI needs to report and pick an exit code."""

    audit: dict[str, Any]
    report_dir: Path
    passed: bool


def check_and_load(
    spec: Spec, spec_path: str, out: Path, argv: list[str], sets: Sequence[SetItem] = ()
) -> tuple[repro.DeterminismState, torch.device, DataBundle]:
    """What a run settles before it claims its folders: the spec recordable, seeds and
    determinism flags in force, the device usable, the data loaded and fitting the model.
    `sets`: the --set items it was read with, for naming the one that set a field refused."""
    check_recordable(spec, spec_path, out, argv)
    # Before anything touches CUDA. Stops held: its use_deterministic_algorithms imports torch._inductor
    # (1-2 s), and a stop inside an import leaves it half-made (see cli.COMMAND_MODULES, which does not
    # import it ahead, so that nothing it might do to CUDA comes before the flags).
    with signals_held():
        det = repro.enforce(spec.seed, spec.determinism)
    with spec_source(spec_path, sets):
        device = environment.resolve_device(spec.train.device)
        check_device_support(spec.train, device)
        if (problem := repro.cublas_problem(det, device)) is not None:
            raise InvalidInput(problem)
        environment.make_current(device)
        data = load_run_data(spec)
    return det, device, data


def load_run_data(spec: Spec) -> DataBundle:
    """`load_data`, where a file under data.root that cannot be read is blamed on data.root (as
    `validate` blames it: `data_problems`), so the spec and the --set that named the folder are said."""
    try:
        return load_data(spec.data, spec.seed)  # spec validation checked model.num_classes against it
    except SpecFieldError:  # names its own field (data.val_split, data.require_official, data.download)
        raise
    except InvalidInput as exc:
        if spec.data.dataset != "cifar10":
            raise
        raise SpecFieldError("data.root", str(exc)) from None
    except OSError as exc:  # a file that cannot even be looked at (permission denied), as data_problems says it
        if spec.data.dataset != "cifar10" or exc.filename is None:  # not about a path: no bad input
            raise
        raise SpecFieldError("data.root", f"{exc.filename}: {exc.strerror or exc}") from None


def machine_problems(spec: Spec) -> list[SpecFieldError]:
    """Why this machine cannot train `spec`, as `check_and_load` and the data stage would refuse it
    (each error names its field), before anything is set: its device or toggles, its data folder,
    or what reading that folder's files finds (a damaged file, a val_split larger than the set)."""
    return [*device_problems(spec.train, environment.resolve_device(spec.train.device)), *data_problems(spec.data)]


@contextmanager
def spec_source(source: str, sets: Sequence[SetItem] = ()) -> Iterator[None]:
    """Name the spec in an error a stage raises about one of its fields (`train.amp: ...`
    becomes `SPEC: train.amp: ...`, or `SPEC --set 'train.amp=fp16': ...` for the `--set` of
    `sets` that wrote it), as validation does; other errors pass unchanged."""
    try:
        yield
    except SpecFieldError as exc:
        raise InvalidInput(f"{field_source(source, exc.field, sets)}: {exc}") from None


def spec_file(spec_path: str) -> Path | None:
    """The file `spec_path` names (a path, or a shipped spec's name), or None where it is gone."""
    try:
        return resolve_spec_path(spec_path)
    except InvalidInput:
        return None


def execute(
    spec: Spec, spec_path: str, out: Path, resume: bool, argv: list[str], log: Any = print,
    in_place: Callable[[], None] | None = None, sets: Sequence[SetItem] = (),
) -> RunOutcome:
    """Run a validated spec end to end; raise InvalidInput on bad input. A run stopped (Ctrl-C,
    SIGTERM) or failed before its first checkpoint removes its staging folders (nothing to continue).
    `in_place` is called, with stops still held, once the finished run is complete and in place:
    from then on a stop has nothing left to stop (the CLI then records one rather than raise it).
    `sets`: the spec's --set items, named with the field they set where this machine refuses it."""
    started, t_wall = datetime.now(UTC), time.perf_counter()
    # Which file the argument stood for, before the run makes folders (its --out may be in the working directory).
    read_from, shipped = spec_file(spec_path), shipped_name(spec_path)
    paths = run_paths(out, spec.name)
    if resume:
        check_resumable(paths)
    det, device, data = check_and_load(spec, spec_path, out, argv, sets)
    prov = data.provenance
    with claimed_run(paths, log) as claimed:
        resume_from, resume_notes, seeded = stage_run(paths, spec, resume, log, device, claimed, prov.fingerprint,
                                                      data.classes)  # fmt: skip
        with seeded_copy(paths, seeded):
            verify_out = os.environ.get(ENV_OUTPUT_ROOT) or None  # verify's --out, for the runs it starts
            env = environment.capture(device, argv, output_folders(out, verify_out), read_from)
            notes = _said_run_notes(spec, device, env, prov, resume_notes, verify_out, log)
            torch.manual_seed(spec.seed)  # model init draws from the global generator
            model = build_model(spec.model)
            files = RunFiles(paths.ckpt_staging, resolved_dict(spec), spec_hash(spec), prov.test_fingerprint,
                             prov.fingerprint, prov.scored_test_fingerprint, tuple(data.classes),
                             {"command": env.command, "cwd": env.cwd}, refused_resume_advice(paths, seeded),
                             started_by_ablation())  # fmt: skip
            result = train_staged(spec, model, data, device, files, resume_from, log)
            run = (det, env, device, data, model)
            audit = measure_and_write(spec, spec_path, paths, run, result, notes, log, (started, t_wall), in_place,
                                      shipped)  # fmt: skip
    return RunOutcome(audit, paths.reports, audit["verdict"] == "PASS")


def _said_run_notes(spec: Spec, device: torch.device, env: environment.Environment, prov: Provenance,
                   resume_notes: list[str], verify_out: str | None, log: Any) -> dict[str, Any]:
    """The run's notes for its record (toggles, environment, resume; `verify_out`: verify's --out),
    logged before training with the data's and the schedule's, which the sheet says elsewhere."""
    notes = {"toggle_notes": toggle_notes(spec.train, device, env.cpu_bf16_native),
             "environment_notes": environment.run_cpu_notes(env), "resume_notes": resume_notes,
             "verify_out": verify_out}  # fmt: skip
    data_said = [note for note in (unread_note(prov), missing_note(prov)) if note]
    # said before training: the sheet holds the first three, its schedule row says what the lr did, and its
    # resolved spec what the data read
    settings = [note for _, note in [*unread_data_fields(spec.data), *schedule_notes(spec.train)]]
    for note in (*notes["toggle_notes"], *notes["environment_notes"], *data_said, *settings):
        log(f"note: {note}")
    return notes


def measure_and_write(
    spec: Spec, spec_path: str, paths: RunPaths, run: tuple[Any, Any, torch.device, DataBundle, torch.nn.Module],
    result: TrainResult, notes: dict[str, list[str]], log: Any, begun: tuple[datetime, float],
    in_place: Callable[[], None] | None = None, shipped: str | None = None,
) -> dict[str, Any]:
    """Measure the trained run, assemble its audit record, write it with the sheet and promote
    the run (`finish_staged`). `run`: (determinism state, environment, device, data, model);
    `begun`: when the run started (UTC) and `time.perf_counter()` then; `in_place` as for `execute`;
    `shipped`: the shipped spec `spec_path` stood for (`shipped_name`), or None."""
    det, env, device, data, model = run
    if busy_cpu(result.other_cpu_share, result.other_cpu_window_s):  # the sheet warns too; a user test missed it here
        log(f"note: other processes used {result.other_cpu_share:.0%} of the CPU while this run trained: its training "
            "time is longer, and its images/s lower, than the spec alone would make them (see the sheet)")  # fmt: skip
    with long_lived_frozen():
        t_measure = time.perf_counter()
        final = load_final_checkpoints(paths.ckpt_staging)
        measured = measure_run(spec, model, data, device, paths.ckpt_staging, env, final.get("best"))
        # last.pt: the weights the last epoch was evaluated on (a divergence writes none after it)
        measured["final_nonfinite"] = nonfinite_entries(final["last"]["model"]) if "last" in final else []
        lat = measured["latency"]
        if "busy" in latency_warnings(lat, None):
            log(f"note: other processes used {lat['other_cpu_share']:.0%} of the CPU while the latency was "
                "timed: the latency figure is inflated (see the sheet)")  # fmt: skip
        audit = assemble(spec, spec_path, paths, det, env, data, result, measured, notes, final)
        audit["run"].update(
            spec_shipped=shipped,  # `smoke`, no file in the working directory, read as the package's specs/smoke.yaml
            started_utc=begun[0].isoformat(timespec="seconds"),
            finished_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            wall_time_s=time.perf_counter() - begun[1], measure_time_s=time.perf_counter() - t_measure,
        )  # fmt: skip
        finish_staged(paths, audit, result, log, in_place)
    return audit


NOTHING_KEPT = "no checkpoint had been written, so nothing is kept: make room, then run the same command again"


def finish_staged(
    paths: RunPaths, audit: dict[str, Any], result: TrainResult, log: Any = print,
    in_place: Callable[[], None] | None = None,
) -> None:
    """Write the record and the sheet into staging, then promote both folders.

    A write that fails (a full disk) loses no training: the run is kept, and
    `--resume` measures and writes it again without training.
    """
    from auditor.render import render_run

    try:
        write_run_files(audit, result, paths.reports_staging)
        try:
            render_run(paths.reports_staging)
        except InvalidInput as exc:
            if isinstance(exc.__context__, OSError):  # the sheet could not be written (a full disk)
                raise exc.__context__ from None
            raise
        # Checkpoints first: a report never points at checkpoints it was not written with. Both
        # `.old` names are checked first, so that neither promote is refused after the other.
        for folder in (paths.checkpoints, paths.reports):
            appeared(aside(folder), paths.ckpt_staging)
        mark_both_set_aside(paths.checkpoints, paths.reports)
        with signals_held(deliver=False) as came:  # a stop between the renames would strand `.old`
            left = [promote(paths.ckpt_staging, paths.checkpoints), promote(paths.reports_staging, paths.reports)]
            if in_place is not None:
                in_place()
        for trash in filter(None, left):  # the earlier run's folder, set aside
            log(leftover_note(trash))
        if came:  # the run is complete and in place: nothing is left to stop
            log(stop_after_finish_note(came[0], "while the finished run was put in place"))
    except OSError as exc:
        where = exc.filename or paths.reports_staging
        promoted = not paths.ckpt_staging.exists()
        raise InvalidInput(
            f"{where}: cannot write the finished run: {exc.strerror or exc}; "
            + (f"its training is kept: {_mend(exc)}, then run the same command with --resume, which writes it "
               "without training again" if promoted or has_checkpoint(paths.ckpt_staging) else NOTHING_KEPT)
        ) from None


def _mend(exc: OSError) -> str:
    """What mends a failed write: permission for a folder that may not be written, else room."""
    return "make it writable" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "make room"


def train_staged(
    spec: Spec, model: torch.nn.Module, data: DataBundle, device: torch.device, files: RunFiles,
    resume_from: Path | None, log: Any,
) -> TrainResult:
    """`fit` into the staging folder, with the share of the CPU other processes used meanwhile (a
    busy machine slows training: its time and throughput are then not this spec's alone); a
    checkpoint that cannot be written (full disk) is a clean error."""
    meter = ForeignCpu(min_window_s=MIN_CPU_WINDOW_S)
    meter.start()
    try:
        result = fit(
            spec.train, spec.data, spec.seed, model, data, device, files, resume_from, hooks_from_env(log), log,
            progress=sys.stderr.isatty(),
        )  # fmt: skip
        share = meter.stop()  # over this process's training; none where it trained nothing
        return replace(result, other_cpu_share=share, other_cpu_window_s=meter.window_s) if result.trained_here else result
    except BrokenPipeError:  # the log's reader went away (`| head`): not a disk problem
        raise
    except OSError as exc:
        where = exc.filename or files.ckpt_dir
        raise InvalidInput(
            f"{where}: cannot write a checkpoint: {exc.strerror or exc}; "
            + (f"the run so far stays in {files.ckpt_dir} (the newest intact checkpoint is kept): make room, "
               "then continue with --resume" if has_checkpoint(files.ckpt_dir) else NOTHING_KEPT)
        ) from None


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Leave every object alive now out of garbage collection until the block ends.

    After training the process holds some 340,000 long-lived objects (torch and its compiler
    stack, the data); a full collection walks them all (about 0.18 s on the machine
    of bench/RESULTS.md), and assembling the record and importing matplotlib for the sheet
    triggered such collections. Cyclic garbage left by training waits until the block ends,
    when everything is unfrozen, so nothing outlives the run that would not have.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def load_final_checkpoints(ckpt_dir: Path) -> dict[str, dict[str, Any]]:
    """last.pt and best.pt, each verified against its digest; byte-identical files (best.pt
    after an improving last epoch) are deserialised once. Digest renames that a killed
    earlier process left undone are completed first, so the digests read are the files'."""
    checkpoint.discard_leftovers(ckpt_dir)
    loaded: dict[str, dict[str, Any]] = {}
    by_digest: dict[str, dict[str, Any]] = {}
    for name in ("last", "best"):
        p = ckpt_dir / f"{name}.pt"
        if not p.is_file():
            continue
        digest = checkpoint.recorded_digest(p) if checkpoint.digest_path(p).is_file() else None
        twin = by_digest.get(digest) if digest else None
        if twin is not None and checkpoint.verify(p) is None:
            loaded[name] = twin
        else:
            loaded[name] = checkpoint.load(p)  # verifies the file against its recorded digest
            if digest:
                by_digest[digest] = loaded[name]
    return loaded


def measure_run(
    spec: Spec, model: torch.nn.Module, data: DataBundle, device: torch.device, ckpt_dir: Path,
    env: environment.Environment, best_state: dict[str, Any] | None,
) -> dict[str, Any]:
    """Put the selected checkpoint's weights (best.pt, loaded as `best_state`) into `model` and measure it."""
    selected = ckpt_dir / "best.pt" if best_state is not None else None
    if best_state is not None:
        model.load_state_dict(best_state["model"])
    test = (data.test_x.to(device), data.test_y.to(device))
    name = env.gpu.name if env.gpu else env.cpu_model
    found = measure(spec.measure, spec.train, model, test, norm_tensors(spec.data, device), data.classes, device, selected, name)
    return asdict(found)


def _checkpoint_facts(ckpt_dir: Path, rel: Path, loaded: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Path, size, digest and position of each checkpoint in `loaded` (verified when loaded)."""
    facts = {}
    for name, state in loaded.items():
        p = ckpt_dir / f"{name}.pt"
        facts[name] = {
            "path": str(rel / p.name), "bytes": p.stat().st_size, "sha256": checkpoint.recorded_digest(p),
            "epoch": len(state["history"]), "global_step": int(state["global_step"]),
            "contents": sorted(state.keys()),
        }  # fmt: skip
    return facts


def _step_checkpoint_facts(ckpt_dir: Path, rel: Path) -> list[dict[str, Any]]:
    """Path, size, verified digest and global step of each mid-epoch checkpoint kept (`step-<step>.pt`),
    by step, read off the folder and the names (not loaded: the measure stage never loads them); one
    that does not match its digest file has `sha256` null and says why in `problem`."""
    facts = []
    for p in sorted(step_checkpoints(ckpt_dir), key=step_of):  # type: ignore[arg-type,return-value]
        try:
            problem = checkpoint.verify(p)
        except OSError as exc:  # a file this process may not read
            problem = f"unreadable ({exc.strerror or exc})"
        facts.append({"path": str(rel / p.name), "bytes": p.stat().st_size, "global_step": step_of(p),
                      "sha256": None if problem else checkpoint.recorded_digest(p),
                      **({"problem": problem} if problem else {})})  # fmt: skip
    return facts


def _metrics(result: TrainResult, measured: dict[str, Any], official: bool | None) -> dict[str, Any]:
    """The metrics criteria judge: copies of figures in the record, never recomputed, derived by
    the function `check` uses to find a record whose metrics were edited (`verify` adds
    `reproducible`). A broken model's accuracies, and a last epoch's that are noise, are withheld."""
    epochs = [{k: getattr(h, k) for k in ("epoch", "val_loss", "val_acc", "train_acc")} for h in result.history]
    training = {k: getattr(result, k, None) for k in ("status", "selection_split", "best_metric", "best_epoch",
                                                      "train_time_s", "images_per_s")}  # fmt: skip
    record = {"measurements": measured, "training": {**training, "history": epochs}, "data": {"official": official}}
    return {name: source.value for name, source in metric_sources(record).items() if name != "reproducible"}


def _metric_notes(result: TrainResult, measured: dict[str, Any]) -> dict[str, str]:
    notes = {"reproducible": "not verified: run `auditor verify` on this spec"}
    if result.selection_split != "val":
        notes["best_val_acc"] = notes["final_val_acc"] = "the spec has no validation split"
    if not result.history and result.selection_split == "val":
        notes["best_val_acc"] = notes["final_val_acc"] = f"no epoch completed (run {result.status})"
    if result.history and result.selection_split == "val" and (why := _final_is_noise(result, measured)):
        notes["final_val_acc"] = why
    none_selected = no_selection_note(len(result.history), result.best_epoch, result.selection_split)
    if none_selected and result.selection_split == "val":
        notes["best_val_acc"] = none_selected
    best = next((h for h in result.history if h.epoch == result.best_epoch), None)
    if best is not None and result.selection_split == "val" and not_a_number(best.val_loss):
        # selected by a version that selected such epochs (a run resumed from its checkpoint)
        notes["best_val_acc"] = (f"the val loss at the selected epoch ({best.epoch}) is not a number: the model then "
                                 "computed inf or NaN, and its accuracy as measured means nothing")  # fmt: skip
    if measured["size"]["checkpoint_bytes"] is None:
        notes["checkpoint_mb"] = none_selected or f"no best checkpoint (run {result.status})"
    if measured["test"] is None:
        notes["test_acc"] = none_selected or f"no best checkpoint (run {result.status})"
    elif bad := measured["nonfinite"]:
        notes["test_acc"] = broken_model_note(measured["evaluated_checkpoint"], bad, measured["test"]["acc"])
        if result.selection_split == "val" and result.best_metric is not None:  # the selected epoch's, the same model
            notes["best_val_acc"] = broken_model_note(measured["evaluated_checkpoint"], bad, result.best_metric)
    elif not_a_number(measured["test"]["loss"]):
        notes["test_acc"] = nan_test_loss_note(measured["evaluated_checkpoint"], measured["test"]["acc"])
    return notes


def _final_is_noise(result: TrainResult, measured: dict[str, Any]) -> str | None:
    """Why the last epoch's validation accuracy means nothing, or None: its val loss is not a
    number (predictions made from inf or NaN), or it is the selected epoch's, whose model is broken."""
    last = result.history[-1]
    if not_a_number(last.val_loss):
        return (f"the val loss at the last epoch ({last.epoch}) is not a number: the model then computed inf or NaN, "
                "and its accuracy as measured means nothing")  # fmt: skip
    if (bad := measured.get("final_nonfinite")) and last.val_acc is not None:  # the weights it was measured on
        return (f"last.pt, which it was measured on, holds non-finite values in {count(len(bad), 'tensor')} (e.g. "
                f"{bad[0]}): it is broken, and its accuracy as measured ({last.val_acc:.2%}) means nothing")  # fmt: skip
    if measured["nonfinite"] and last.epoch == result.best_epoch and last.val_acc is not None:  # the same weights
        return broken_model_note(measured["evaluated_checkpoint"], measured["nonfinite"], last.val_acc)
    return None


def broken_model_note(checkpoint_name: str | None, bad: list[str], acc: float) -> str:
    """Why an accuracy measured on a model with non-finite weights (test, or the selected epoch's
    validation) is not reported."""
    return (f"{checkpoint_name} holds non-finite values in {count(len(bad), 'tensor')} (e.g. {bad[0]}): "
            f"the model is broken, and its accuracy as measured ({acc:.2%}) means nothing")  # fmt: skip


def _resumed_from_kept(result: TrainResult, final: dict[str, dict[str, Any]]) -> bool | None:
    """Whether the checkpoint this process resumed from is there still as it was (None: not a
    resume): a step checkpoint not pruned since, a last.pt or best.pt not written again since at a
    later step (a user test: a resume from an epoch's last.pt was said kept, which the run's final
    last.pt had replaced)."""
    if not result.resumed_from:
        return None
    path = Path(result.resumed_from)
    kept = final.get(path.stem) if path.name in ("last.pt", "best.pt") else None
    return path.is_file() and (kept is None or kept.get("global_step") == result.resumed_at_step)


def assemble(
    spec: Spec, spec_path: str, paths: RunPaths, det: repro.DeterminismState,
    env: environment.Environment, data: DataBundle, result: TrainResult,
    measured: dict[str, Any], run_notes: dict[str, Any], final: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The audit record: everything the sheet and `check` read (`final`: `load_final_checkpoints`;
    `run_notes`: the resume, toggle and environment notes, and `verify_out`, verify's --out where
    verify started this run)."""
    metrics = _metrics(result, measured, data.provenance.official)
    notes = _metric_notes(result, measured)
    criteria = evaluate_criteria(spec.parsed_criteria(), metrics, notes, spec.verify.allow_tolerance)
    rel_ckpt = paths.checkpoints.relative_to(paths.out)
    train = asdict(result)
    train.pop("step_losses")  # in steps.csv
    train.pop("ablation_run")  # in the run section
    train["resumed_from"] = _resumed_from_name(result)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": _run_section(spec, spec_path, paths, result, run_notes, final),
        "spec": resolved_dict(spec),
        "spec_hash": spec_hash(spec),
        "determinism": {**asdict(det), "nondeterminism_sources": repro.nondeterminism_sources(
            spec, det, env.device, (result.trained_on or {}).get("torch_threads"),
            [setting.get("torch_threads") or setting.get("device") for setting in result.trained_at])},
        "environment": asdict(env),
        "data": {**asdict(data.provenance), "sizes": data.sizes(), "class_counts": data.class_counts(),
                 "classes": list(data.classes)},
        "model": _model_section(spec),
        "training": {**train, "epochs_planned": spec.train.epochs},
        "measurements": measured,
        "checkpoints": _checkpoint_facts(paths.ckpt_staging, rel_ckpt, final),
        "step_checkpoints": _step_checkpoint_facts(paths.ckpt_staging, rel_ckpt),
        "metrics": metrics,
        "metric_notes": notes,  # why a metric is null; `check` reuses these
        "criteria": [asdict(c) for c in criteria],
        "verdict": verdict(criteria, gate_status(result.status, measured["nonfinite"],
                                                 none_selected(len(result.history), result.best_epoch))),
        "verification": None,
    }


def _resumed_from_name(result: TrainResult) -> str | None:
    # The file's name, not its staging path, which no longer exists once the run is promoted.
    return Path(result.resumed_from).name if result.resumed_from else None


def _run_section(spec: Spec, spec_path: str, paths: RunPaths, result: TrainResult,
                 run_notes: dict[str, Any], final: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The record's `run` section: where the run lives, how it was started and resumed."""
    return {
        "name": spec.name, "status": result.status, "spec_path": spec_path, "out": str(paths.out),
        "report_dir": str(paths.reports.relative_to(paths.out)),
        "checkpoint_dir": str(paths.checkpoints.relative_to(paths.out)),
        "resumed_from": _resumed_from_name(result),
        "resumed_from_kept": _resumed_from_kept(result, final),
        "started_by": result.started_by,  # the first process's command and folder (None: not recorded)
        **{k: run_notes[k] for k in ("resume_notes", "toggle_notes", "environment_notes")},
        "verify_out": run_notes["verify_out"],  # verify's --out, for its run A, B or K (None: not verify's)
        "ablation_run": result.ablation_run,  # {ablation, variant, seed}: a run `auditor ablate` started
    }


def _model_section(spec: Spec) -> dict[str, Any]:
    """The record's `model` section: the registry's facts for the spec's model, norm and head."""
    groups = {"norm_groups": norm_groups(spec.model.name, spec.model.num_classes)} if spec.model.norm == "group" else {}
    return {**asdict(model_info(spec.model.name).for_norm(spec.model.norm)), "norm": spec.model.norm,
            "num_classes": spec.model.num_classes, **groups}


def write_run_files(audit: dict[str, Any], result: TrainResult, report_dir: Path) -> None:
    """audit.json, metrics.csv, steps.csv and the resolved spec, each written atomically."""
    write_json(report_dir / "audit.json", audit)
    rows = [asdict(h) for h in result.history]
    write_csv(report_dir / "metrics.csv", rows, [f.name for f in fields(EpochRecord)])  # a header even with no epoch
    write_csv(report_dir / "steps.csv", [{"step": i, "loss": v} for i, v in enumerate(result.step_losses)], ["step", "loss"])
    atomic_write_bytes(
        report_dir / "spec.resolved.yaml", resolved_yaml(audit["spec"]).encode()
    )
