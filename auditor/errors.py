"""Error types that the CLI maps to exit codes, the exit codes, and how a run started by
`verify` or `ablate` stops when they are killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # a criterion failed, the run diverged, or verification found a difference
EXIT_INVALID = 2  # bad input (InvalidInput): spec, data, checkpoint, path
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipe reader that stopped
EXIT_TERMINATED = 143  # 128 + SIGTERM (a CI job's timeout, `kill`)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that it stops as cleanly: checkpoints being
    written land, the run stays resumable, child processes are stopped."""


def exit_code(stop: KeyboardInterrupt) -> int:
    """The exit code of a stop by Ctrl-C (130) or SIGTERM (143)."""
    return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED


def stop_word(stop: KeyboardInterrupt) -> str:
    """'interrupted' (Ctrl-C) or 'terminated (SIGTERM)'."""
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"


def signal_name(returncode: int) -> str:
    """The signal a child process's negative `returncode` says killed it: 'SIGKILL', or 'signal 99'."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def stop_after_finish_note(signum: int, when: str) -> str:
    """The note for a Ctrl-C or SIGTERM that came `when` the finished run was complete: it stopped nothing."""
    return f"note: {signal.Signals(signum).name} came {when}; it is complete, so nothing was stopped"


class InvalidInput(Exception):
    """Bad input from the user (spec, data, checkpoint, path): exit code 2.

    The message must name what was wrong and where; the CLI prints it without
    a traceback.
    """


class SpecFieldError(InvalidInput):
    """Bad input found at one field of the spec by a later stage (`train.amp`, `data.root`).

    The message reads `FIELD: PROBLEM`; the CLI puts the spec's file in front, as
    validation does (`runner.spec_source`).
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


ENV_PARENT_PID = "AUDITOR_PARENT_PID"  # set by verify and ablate for the `auditor run` processes they start


ENV_ABLATION_RUN = "AUDITOR_ABLATION_RUN"  # set by ablate for each run it starts: which of its runs (JSON)


def parent_env() -> dict[str, str]:
    """The environment for an `auditor run` this process starts and waits for (without the ablation
    run this process may be: ablate names each run it starts, `ablation_run_env`)."""
    return {**{k: v for k, v in os.environ.items() if k != ENV_ABLATION_RUN}, ENV_PARENT_PID: str(os.getpid())}


def ablation_run_env(ablation: str, variant: str, seed: int) -> dict[str, str]:
    """The environment for the run `auditor ablate` starts for (variant, seed) of `ablation`: the
    run records which it is (`run.ablation_run`), so that another ablation whose run names
    coincide (names join ablation, variant and seed with '-') does not take it for its own."""
    return {**parent_env(), ENV_ABLATION_RUN: json.dumps({"ablation": ablation, "variant": variant, "seed": seed})}


def ablation_run_of(value: Any) -> dict[str, Any] | None:
    """`{"ablation", "variant", "seed"}` of `value` where it holds them (as a run records them, other
    keys left out), else None."""
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in ("ablation", "variant")):
        return None
    return {k: value[k] for k in ("ablation", "variant", "seed")} if type(value.get("seed")) is int else None


def parent_set_the_environment() -> bool:
    """Whether this process's parent is the auditor process that set its environment (`parent_env`):
    variables it sets are taken from it, not from a shell where they were exported or left over."""
    return os.environ.get(ENV_PARENT_PID) == str(os.getppid())


def started_by_ablation() -> dict[str, Any] | None:
    """Which run of which ablation this process is, where `auditor ablate` started it (else None):
    the variable is taken only from the ablate that is this process's parent, not from a shell
    that has it set (exported by hand, or left over)."""
    if not parent_set_the_environment():
        return None
    try:
        return ablation_run_of(json.loads(os.environ.get(ENV_ABLATION_RUN) or "null"))
    except (ValueError, RecursionError):
        return None


ENV_OUTPUT_ROOT = "AUDITOR_VERIFY_OUT"  # set by verify for its runs: its own --out (see runner.output_folders)
# What a run verify started says when stopped: verify starts its runs afresh, and refuses a user's run into them.
VERIFY_RUN_STOPPED = "a run of `auditor verify`, which starts its runs afresh: run `auditor verify` again"


def started_by_verify() -> bool:
    """Whether this process is a run `auditor verify` started (ENV_OUTPUT_ROOT set)."""
    return bool(os.environ.get(ENV_OUTPUT_ROOT))


def verify_is_parent() -> bool:
    """`started_by_verify`, with the verify that set the variable this process's parent (as
    `started_by_ablation` holds it): not a shell where it was left set."""
    return started_by_verify() and parent_set_the_environment()


# How long a child run is given to stop cleanly once a stop is passed on (a checkpoint being written
# lands first: seconds), before it is killed.
CHILD_STOP_S = 120


def wait_passing_stop(proc: Any, who: str) -> int:
    """Wait for the child process `proc` (a Popen) and return its exit code. A stop that reaches this
    process alone (`kill PID`) is passed on as SIGTERM or SIGINT, and the child waited for: it stops
    cleanly, saving its state (one that got the signal too ignores the second), where the cleanup of
    `subprocess.run` would kill it outright, its log cut short; one that has not stopped after
    CHILD_STOP_S is killed, `who` (`auditor verify`) saying so."""
    try:
        return proc.wait()
    except KeyboardInterrupt as stop:
        proc.send_signal(signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
        try:
            proc.wait(timeout=CHILD_STOP_S)
        except subprocess.TimeoutExpired:  # hung: this process ignores further stops, so nothing else would end it
            print(f"{who}: the run did not stop within {CHILD_STOP_S} s of being asked to: killed", file=sys.stderr)
            proc.kill()
            proc.wait()
        raise


def stop_with_parent() -> None:
    """Where `verify` or `ablate` started this process (ENV_PARENT_PID) and is killed outright
    (SIGKILL, which it cannot pass on), receive SIGTERM, which stops a run cleanly and
    resumably, rather than train on as an orphan. Linux only (PR_SET_PDEATHSIG); elsewhere nothing."""
    parent = os.environ.get(ENV_PARENT_PID)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def signals_held(deliver: bool = True) -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM for the block, yielding the list of those that came; then, with
    `deliver`, raise the first again, to the handlers in force (else the caller says what it did).

    For importing torch (an interrupt inside its import leaves the modules half-made, so the
    stop would end in an AttributeError or a C++ abort instead of exit 130/143), for putting a
    finished run in place, and around a child process (`subprocess.run`): its wait takes a lock
    with `acquire(False)` before the `try` that releases it, so that a stop raised in between
    leaves the lock held, and the wait of the clean stop then hangs on it (seen with SIGTERM,
    which Popen.__exit__ does not take for a KeyboardInterrupt). A signal ignored, or handled from C, is left alone; nothing is held off
    the main thread. Every handler is restored, also when a signal lands while they are.
    """
    held: list[int] = []
    wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) not in (signal.SIG_IGN, None)]
    try:
        previous = [(s, signal.signal(s, lambda signum, frame: held.append(signum))) for s in wanted]
    except ValueError:  # not the main thread: signals cannot be handled here
        yield held
        return
    try:
        yield held
    finally:
        _restore(previous)
        if held and deliver:  # main's handler (the first SIGTERM ignores any after it); the stop, not
            signal.raise_signal(held[0])  # an error the block raised meanwhile, ends the command


def _restore(handlers: list[tuple[int, Any]]) -> None:
    """Put `handlers` back; each in a `finally` of the one before, so that a signal landing meanwhile
    (raised by a handler put back already) leaves none of the holding ones installed."""
    if not handlers:
        return
    (sig, handler), rest = handlers[0], handlers[1:]
    try:
        _restore(rest)
    finally:
        signal.signal(sig, handler)
