"""Error types that the CLI maps to exit codes, the exit codes, and how a run started by
`verify` or `ablate` stops when they are killed outright."""

import os
import signal
import sys

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


def parent_env() -> dict[str, str]:
    """The environment for an `auditor run` this process starts and waits for."""
    return {**os.environ, ENV_PARENT_PID: str(os.getpid())}


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
