"""Shared fixtures: the real CIFAR-10 subset, tiny specs, the CLI entry point."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real CIFAR-10 subset beside the checkout, or wherever AUDITOR_CIFAR10_SUBSET points.
SUBSET = Path(os.environ.get("AUDITOR_CIFAR10_SUBSET") or REPO.parent / "shared" / "data" / "cifar10-subset").expanduser().resolve()
HAVE_SUBSET = (SUBSET / "cifar-10-batches-py").is_dir()
requires_subset = pytest.mark.skipif(
    not HAVE_SUBSET, reason=f"real CIFAR-10 subset not found at {SUBSET} (present in CI)"
)

# A fast synthetic run: resnet8, ~600 images, 2 epochs (a few seconds on 2 cores).
TINY_SETS = [
    "data.synthetic.train=600", "data.synthetic.test=200", "data.val_split=100",
    "train.epochs=2", "train.batch_size=64", "measure.latency.warmup=2", "measure.latency.iters=5",
    "criteria.best_val_acc=>= 0.2",  # the shipped 0.5 needs the full smoke budget
    "criteria.latency_ms=null",  # timings vary with machine load: tests never gate on them
]  # fmt: skip



def _process_state() -> tuple[Any, ...]:
    """torch's determinism flags, its thread count and CUBLAS_WORKSPACE_CONFIG: what an in-process
    run (`repro.enforce`) sets, and, for the variable, what later tests' subprocess runs inherit."""
    import torch
    import torch.utils.deterministic

    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
            torch.utils.deterministic.fill_uninitialized_memory, torch.get_num_threads(),
            os.environ.get("CUBLAS_WORKSPACE_CONFIG"))  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _state_at_start() -> tuple[Any, ...]:
    """The process state before any fixture of a wider scope (a module's trained checkpoint) changed it."""
    return _process_state()


@pytest.fixture(autouse=True)
def _process_state_restored(_state_at_start: tuple[Any, ...]) -> Iterator[None]:
    """Each test ends with the process state as the session began."""
    yield
    if _process_state() == _state_at_start:
        return
    import torch
    import torch.utils.deterministic

    algorithms, warn_only, cudnn_det, benchmark, fill, threads, cublas = _state_at_start
    # use_deterministic_algorithms imports torch._inductor (~1 s): called only where something changed
    torch.use_deterministic_algorithms(bool(algorithms), warn_only=bool(warn_only))
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_det, benchmark
    torch.utils.deterministic.fill_uninitialized_memory = fill
    torch.set_num_threads(threads)
    if cublas is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


# 62 bytes that give numpy's dtype a crafted state: numpy's own unpickling crashes the process.
CRASHES_NUMPY = (
    b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R"
    b"(K\x03X\x01\x00\x00\x00|M90J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb."
)


def fake_cifar_root(
    root: Path, n: int = 20, batches: tuple[str, ...] = ("data_batch_1", "test_batch"), seed: int = 0
) -> Path:
    """A small CIFAR-10 copy in the official layout under `root` (random images, `n` a batch)."""
    import pickle

    import numpy as np

    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in batches:
        d = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
             "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}  # fmt: skip
        (base / name).write_bytes(pickle.dumps(d, protocol=4))
    return root


def bench_module(filename: str) -> Iterator[ModuleType]:
    """bench/FILENAME imported as a module (bench/ is not a package), forgotten afterwards."""
    spec = importlib.util.spec_from_file_location(f"bench_{Path(filename).stem}", REPO / "bench" / filename)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def sets(*items: str) -> list[str]:
    """`--set` arguments for the CLI from KEY=VALUE items."""
    return [a for item in items for a in ("--set", item)]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `python -m auditor ARGS` in a fresh process (the real entry point)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args], cwd=cwd, env=full_env,
        check=False, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 2, no traceback, and the message names every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    for frag in fragments:
        assert frag in proc.stderr, (frag, proc.stderr)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished tiny synthetic run, shared read-only by tests (its --out root)."""
    out = tmp_path_factory.mktemp("smoke_run")
    proc = run_cli("run", "smoke", *sets(*TINY_SETS), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def field_paths(node: Any, per_list: int, path: tuple = ()) -> list[tuple]:
    """The path of every field in a JSON record, nested ones too (of a list: its first `per_list` items)."""
    items = node.items() if isinstance(node, dict) else enumerate(node[:per_list]) if isinstance(node, list) else []
    return [p for k, v in items for p in ((*path, k), *field_paths(v, per_list, (*path, k)))]
