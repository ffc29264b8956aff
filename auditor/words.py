"""Counted nouns for messages and the sheet, in one place for every stage: '1 run', '3 runs'."""

from __future__ import annotations


def plural(n: float, noun: str) -> str:
    """`noun`, plural unless `n` is 1: the noun alone, for a number said elsewhere ('at epochs 1, 2')."""
    return noun if n == 1 else f"{noun}s"


def count(n: float, noun: str) -> str:
    """`n` and `noun`, plural unless `n` is 1: '1 run', '2 runs', '1.5 CPUs', '4,068 training images'."""
    number = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{number} {plural(n, noun)}"
