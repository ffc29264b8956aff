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


def test_the_ablation_run_is_taken_only_from_the_ablate_that_started_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review: a variable left set in a shell would have made a user's run, or verify's, an ablation's."""
    import json
    import os

    made = {"ablation": "tiny", "variant": "cosine", "seed": 0}
    monkeypatch.setenv(errors.ENV_ABLATION_RUN, json.dumps({**made, "extra": [1, 2]}))
    monkeypatch.setenv(errors.ENV_PARENT_PID, str(os.getppid()))
    assert errors.started_by_ablation() == made  # only its three fields
    monkeypatch.setenv(errors.ENV_PARENT_PID, str(os.getppid() + 1))  # another process's variable
    assert errors.started_by_ablation() is None
    monkeypatch.delenv(errors.ENV_PARENT_PID)
    assert errors.started_by_ablation() is None
    monkeypatch.setenv(errors.ENV_PARENT_PID, str(os.getppid()))
    for bad in ("[" * 100000, "not json", json.dumps({**made, "seed": "0"}), json.dumps([made])):
        monkeypatch.setenv(errors.ENV_ABLATION_RUN, bad)
        assert errors.started_by_ablation() is None
    assert errors.ENV_ABLATION_RUN not in errors.parent_env()  # verify's runs, and ablate's before it names each
    env = errors.ablation_run_env("tiny", "cosine", 0)
    assert json.loads(env[errors.ENV_ABLATION_RUN]) == made and env[errors.ENV_PARENT_PID] == str(os.getpid())
