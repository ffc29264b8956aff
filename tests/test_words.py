"""Counted nouns (`auditor.words`), shared by every stage's messages and the sheet."""

from __future__ import annotations

from auditor.words import count, every_n, plural


def test_counted_nouns_are_singular_for_one() -> None:
    assert [count(1, "torch thread"), count(2, "CPU"), count(1.5, "CPU"), count(4068, "training image")] == [
        "1 torch thread", "2 CPUs", "1.5 CPUs", "4,068 training images"]  # fmt: skip


def test_a_noun_alone_follows_a_number_said_elsewhere() -> None:
    assert [plural(1, "epoch"), plural(2, "epoch"), plural(0, "milestone"), plural(0.5, "epoch")] == [
        "epoch", "epochs", "milestones", "epochs"]  # fmt: skip


def test_a_cadence_of_one_reads_every_step() -> None:
    assert [every_n(1, "step"), every_n(4, "step"), every_n(1000, "step")] == ["every step", "every 4 steps", "every 1,000 steps"]
