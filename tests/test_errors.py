"""Tests for auditor.errors: how a stop is passed on to a child run."""

from __future__ import annotations

import signal
import subprocess

import pytest

from auditor import errors


class Child:
    """Stands in for a child run's Popen: its first wait is cut by a stop; `hangs`: it never exits."""

    def __init__(self, hangs: bool) -> None:
        self.hangs, self.calls = hangs, []

    def wait(self, timeout: float | None = None) -> int:
        self.calls.append(("wait", timeout))
        if len(self.calls) == 1:
            raise errors.Terminated  # the stop reaches the parent while it waits
        if self.hangs and "kill" not in self.calls:
            raise subprocess.TimeoutExpired("auditor run", timeout or 0)
        return -signal.SIGKILL if "kill" in self.calls else 143

    def send_signal(self, signum: int) -> None:
        self.calls.append(signum)

    def kill(self) -> None:
        self.calls.append("kill")


def test_a_stop_is_passed_on_and_the_child_waited_for() -> None:
    child = Child(hangs=False)
    with pytest.raises(errors.Terminated):
        errors.wait_passing_stop(child, "auditor verify")
    assert child.calls == [("wait", None), signal.SIGTERM, ("wait", errors.CHILD_STOP_S)]


def test_a_child_that_does_not_stop_is_killed_rather_than_waited_for_forever(capsys: pytest.CaptureFixture) -> None:
    """A review: the parent ignores further stops once one came, so a hung child would have held it."""
    child = Child(hangs=True)
    with pytest.raises(errors.Terminated):
        errors.wait_passing_stop(child, "auditor verify")
    assert child.calls == [("wait", None), signal.SIGTERM, ("wait", errors.CHILD_STOP_S), "kill", ("wait", None)]
    assert capsys.readouterr().err == f"auditor verify: the run did not stop within {errors.CHILD_STOP_S} s of being asked to: killed\n"
