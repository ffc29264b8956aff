"""Words for messages and the sheet, in one place for every stage: counted nouns ("1 run", "3 runs") and compute settings."""

from __future__ import annotations

from typing import Any


def plural(n: float, noun: str) -> str:
    """`noun`, plural unless `n` is 1: the noun alone, for a number said elsewhere ('at epochs 1, 2')."""
    return noun if n == 1 else f"{noun}s"


def count(n: float, noun: str) -> str:
    """`n` and `noun`, plural unless `n` is 1: '1 run', '2 runs', '1.5 CPUs', '4,068 training images'."""
    number = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{number} {plural(n, noun)}"


def every_n(n: int, noun: str) -> str:
    """'every step', 'every 4 steps' (a cadence: never 'every 1 steps')."""
    return f"every {noun}" if n == 1 else f"every {n:,} {noun}s"


def first_of(shown: list[str], total: int) -> str:
    """The names `shown` of `total` ('a, b' or 'a, b and 3 more'): a list cut short, said so."""
    return ", ".join(shown) + (f" and {total - len(shown):,} more" if total > len(shown) else "")


def exact(x: float) -> str:
    """Shortest text that reads back as `x`: 0.05, 5e-06, 150.00001, 3 (an integral float loses its
    `.0`; YAML and pydantic read `91` in an epoch list as 91.0)."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def describe_setting(setting: dict[str, Any]) -> str:
    """A compute setting (environment.compute_setting) in words: 'cpu (AMD EPYC, 2 torch threads,
    AVX512 kernels)' or 'cuda (NVIDIA H100)'."""
    parts = [str(setting.get("processor"))]
    if threads := setting.get("torch_threads"):
        parts.append(count(threads, "torch thread"))
    if capability := setting.get("cpu_capability"):
        parts.append(f"{capability} kernels")
    if kernel_env := setting.get("kernel_env"):
        parts.append(" ".join(f"{k}={v}" for k, v in kernel_env.items()))
    return f"{setting.get('device')} ({', '.join(parts)})"


def out_args(out: object) -> list[str]:
    """`--out OUT` as a command gives it, unless it is the default (here); `--out=-OUT` where it
    starts with a dash, which argparse would otherwise take for an option."""
    if str(out) == ".":
        return []
    return [f"--out={out}"] if str(out).startswith("-") else ["--out", str(out)]


def path_arg(path: object) -> str:
    """A positional path argument as a command can be given it again: `./-x.yaml` for a relative
    path starting with a dash (the same file), which argparse would take for an option."""
    return f"./{path}" if str(path).startswith("-") else str(path)
