"""Seeding and determinism: applied before anything touches CUDA, recorded as in force.

Nothing here runs at import time; the CLI calls `enforce` once per run.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.utils.deterministic

from auditor.audit import CUBLAS_DETERMINISTIC
from auditor.spec import Determinism, Spec

CUBLAS_CONFIG = CUBLAS_DETERMINISTIC[0]  # workspace config cuBLAS needs for deterministic GEMMs


@dataclass(frozen=True)
class DeterminismState:
    """The determinism flags read back after setting them (what is in force)."""

    seed: int
    requested: bool
    cudnn_deterministic: bool
    cudnn_benchmark: bool
    deterministic_algorithms: bool
    fill_uninitialized_memory: bool  # torch fills torch.empty() memory (a few % slower, safer)
    cublas_workspace_config: str | None
    torch_threads: int
    interop_threads: int
    cuda_initialized_before: bool  # CUDA already up when enforced: CUBLAS config may not apply
    # TF32 (10-bit mantissa) for fp32 work on CUDA; torch's defaults: on for cuDNN convolutions,
    # off for matmuls. Deterministic either way, but it is not IEEE fp32 arithmetic.
    cudnn_allow_tf32: bool
    cuda_matmul_allow_tf32: bool
    # torch.compile's inductor makes no kernel choice by timing that could change the numerics
    # (set by use_deterministic_algorithms)
    inductor_deterministic: bool
    seeded: tuple[str, ...]  # the generators seed_everything seeded, as it names them
    torch_initial_seed: int  # torch.initial_seed() read back after seeding


SEEDED = ("Python's random", "NumPy's global generator", "torch (CPU and every CUDA device)")


def seed_everything(seed: int) -> tuple[str, ...]:
    """Seed Python, NumPy and torch (CPU and every CUDA device); return what was seeded."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seed is 32-bit
    torch.manual_seed(seed)  # also seeds all CUDA devices, lazily
    return SEEDED


def enforce(seed: int, spec: Determinism) -> DeterminismState:
    """Seed every generator and set the determinism flags; return what is in force.

    With `spec.enabled`, cuDNN is deterministic with benchmarking off and torch
    raises on ops that have no deterministic implementation. Without it,
    cudnn.benchmark is switched on (CUDA: convolution kernels chosen by timing them, the
    fast setting there) and the sheet says so.
    """
    enabled = spec.enabled
    cuda_was_up = torch.cuda.is_initialized()
    if enabled:
        # Must be in the environment before the CUDA context is created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_CONFIG)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled)
    # Read by torch only while deterministic algorithms are on; set either way so
    # that one run never inherits another's setting in the same process.
    torch.utils.deterministic.fill_uninitialized_memory = spec.fill_uninitialized_memory
    seeded = seed_everything(seed)
    return read_state(seed, enabled, cuda_was_up, seeded)


def cublas_problem(state: DeterminismState, device: torch.device) -> str | None:
    """Why deterministic mode cannot run cuBLAS on `device` with the workspace config in force
    (one the shell set before the run, which `enforce` keeps), or None."""
    value = state.cublas_workspace_config
    if device.type != "cuda" or not state.deterministic_algorithms or value in CUBLAS_DETERMINISTIC:
        return None
    return (
        f"CUBLAS_WORKSPACE_CONFIG={value!r} in the environment: deterministic mode on CUDA needs "
        f"{' or '.join(CUBLAS_DETERMINISTIC)} (torch refuses any other value at the first matrix "
        f"product); unset it (the run sets {CUBLAS_CONFIG}) or set one of those"
    )


def tf32_flags() -> tuple[bool, bool]:
    """(cuDNN convolutions, cuBLAS matmuls) run fp32 work in TF32 on CUDA, as torch is set now."""
    return (
        _tf32(lambda: torch.backends.cudnn.allow_tf32, lambda: torch.backends.cudnn.conv.fp32_precision),
        _tf32(lambda: torch.backends.cuda.matmul.allow_tf32, lambda: torch.backends.cuda.matmul.fp32_precision),
    )


def _tf32(legacy: Callable[[], bool], precision: Callable[[], str]) -> bool:
    """The legacy allow_tf32 flag, or, where torch's per-operator precision API was used (the
    legacy getter then refuses to answer for settings that differ by operator), that API's."""
    try:
        return bool(legacy())
    except RuntimeError:
        chosen = precision()
        return (chosen if chosen != "none" else torch.backends.fp32_precision) == "tf32"  # "none": the global


def read_state(
    seed: int, requested: bool, cuda_initialized_before: bool = False, seeded: tuple[str, ...] = ()
) -> DeterminismState:
    """Read the determinism flags (and torch's seed) back from torch and the environment."""
    # Imported here, not with this module: it takes about 0.8 s, which enforce's call of
    # torch.use_deterministic_algorithms has paid already (it sets the flag).
    import torch._inductor.config as inductor_config

    conv_tf32, matmul_tf32 = tf32_flags()
    return DeterminismState(
        seed=seed,
        requested=requested,
        cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
        cudnn_benchmark=bool(torch.backends.cudnn.benchmark),
        deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
        fill_uninitialized_memory=bool(torch.utils.deterministic.fill_uninitialized_memory),
        cublas_workspace_config=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        torch_threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        cuda_initialized_before=cuda_initialized_before,
        cudnn_allow_tf32=conv_tf32,
        cuda_matmul_allow_tf32=matmul_tf32,
        inductor_deterministic=bool(inductor_config.deterministic),
        seeded=seeded,
        torch_initial_seed=torch.initial_seed(),
    )


def nondeterminism_sources(
    spec: Spec, state: DeterminismState, device: str, trained_threads: int | None = None,
    thread_history: Sequence[int | str | None] = (),
) -> list[str]:  # fmt: skip
    """Name every source of run-to-run variation in force, so a verdict comes with causes
    (`trained_threads`: the CPU thread count the weights were trained at, where this process
    trained nothing: a resume of a finished run; `thread_history`: the thread count of each
    part of the training through its resumes, first first, or the device of a part on one,
    e.g. `[2, "cuda", 4]`; None where a part recorded neither)."""
    return _flag_sources(spec, state, device.startswith("cuda")) + _thread_sources(
        state, trained_threads, thread_history)


def _flag_sources(spec: Spec, state: DeterminismState, cuda: bool) -> list[str]:
    """The variation the determinism flags, compile and AMP leave in force."""
    t = spec.train
    found: list[str] = []
    if cuda and state.cudnn_benchmark:
        found.append("cudnn.benchmark is on: convolution algorithms are chosen by timing")
    if cuda and not state.cudnn_deterministic:
        found.append("cudnn.deterministic is off: cuDNN may pick non-deterministic kernels")
    if not state.deterministic_algorithms:
        found.append(
            "torch.use_deterministic_algorithms is off: ops with non-deterministic "
            "kernels (e.g. scatter_add/index_add on CUDA) run without an error"
        )
    if state.deterministic_algorithms and not state.fill_uninitialized_memory:
        found.append(
            "fill_uninitialized_memory is off: an op that read memory it never wrote would go "
            "unnoticed (twin runs may read the same leftover bytes; set it on to hunt such an op)"
        )
    if cuda and state.cublas_workspace_config is None:
        found.append("CUBLAS_WORKSPACE_CONFIG is unset: cuBLAS GEMMs may vary")
    elif cuda and state.cuda_initialized_before:
        found.append("CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set: it may not apply")
    if t.compile != "off" and (cuda or t.compile == "max-autotune") and not state.inductor_deterministic:
        found.append(
            f"torch.compile ({t.compile}) with inductor's deterministic mode off: it picks kernels "
            "(autotuning, Triton configurations) by timing them, so the choice can vary per run"
        )
    if t.compile != "off" and cuda:
        found.append(f"torch.compile ({t.compile}): inductor kernels differ from eager numerics")
    if t.amp != "off":
        found.append(f"AMP {t.amp}: reduced-precision arithmetic amplifies any reordering")
    return found


def _thread_sources(state: DeterminismState, trained_threads: int | None,
                    thread_history: Sequence[int | str | None]) -> list[str]:
    """The thread count the weights depend on, or the counts their parts ran at where they differ."""
    known = [n for n in thread_history if n]
    parts = [n for i, n in enumerate(known) if i == 0 or n != known[i - 1]]  # 2, 4, 2 threads: three parts
    if len({n for n in parts if isinstance(n, int)}) > 1:
        said = [str(n) if isinstance(n, int) else f"a {n.upper()} part" for n in parts]
        return [(f"thread counts {' then '.join(said)} (the training's parts through its resumes): "
                 "CPU reductions are only reproducible at the same thread count, so no single one reproduces "
                 "these weights")]  # fmt: skip
    threads = trained_threads or state.torch_threads
    here = ("" if threads == state.torch_threads else
            f" (the weights were trained at it; this process, which trained nothing, ran {state.torch_threads})")  # fmt: skip
    return [f"thread count {threads}{here}: CPU reductions are only reproducible at the same thread count"]
