"""How the C allocator treats the large blocks that CPU training frees every step.

A CPU training step allocates and frees activations and gradients of up to tens of MB
(resnet18, batch 128: 32 MiB per 64-channel feature map). glibc serves blocks above its
mmap threshold (dynamic, at most 32 MiB) with a fresh mmap and unmaps them on free, so
the kernel page-faults and zeroes that memory again on every step. Keeping them made CPU
training 2.5% (resnet18) to 7% (resnet20) faster in bench/RESULTS.md (each pipeline in
its own process). `train.host_memory: retain` raises the threshold to 1 GiB and the
trim threshold to 2 GiB (glibc `mallopt`), so freed blocks stay in the heap and are reused.
It changes where memory comes from, not what a correct op computes: only an op that reads
memory it never wrote could tell (fresh mmap pages are zero, a reused block holds old
bytes), and `determinism.fill_uninitialized_memory: true` exposes such an op either way.
The price is that the process keeps its peak footprint.

The setting is process-wide and glibc has no getter, so what is in force is read back by
a probe: one PROBE_BYTES malloc (never written), and whether glibc served it from the heap
or with mmap (`mallinfo2`). The probe runs on the calling thread, whose arena is the main
one for the training loop. Nothing here runs at import time.
"""

from __future__ import annotations

import ctypes
import platform
from dataclasses import dataclass

from auditor.spec import HostMemoryMode

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc <malloc.h>)
MMAP_THRESHOLD = 1 << 30  # bytes: blocks up to 1 GiB come from the heap
TRIM_THRESHOLD = 2**31 - 1  # bytes, the most mallopt's int takes: free heap top kept up to 2 GiB
PROBE_BYTES = 64 << 20  # the read-back probe: above glibc's largest dynamic threshold (32 MiB)


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (malloc.h): allocator statistics in size_t fields."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


@dataclass(frozen=True)
class HostMemory:
    """The allocator setting requested, what was set, and what a probe found in force."""

    requested: HostMemoryMode
    allocator: str  # "glibc 2.36", or what else the process runs on (nothing is changed there)
    mmap_threshold: int | None  # bytes set with mallopt(M_MMAP_THRESHOLD); None: not set (or refused)
    trim_threshold: int | None  # bytes set with mallopt(M_TRIM_THRESHOLD); None: not set (or refused)
    large_blocks_from_heap: bool | None  # read back: the probe came from the heap (None: not probed)
    probe_bytes: int = PROBE_BYTES


def _glibc() -> tuple[ctypes.CDLL, str] | None:
    """The process's own C library (its symbols, not a file looked up) and glibc's version,
    or None on another C library."""
    name, version = platform.libc_ver()
    if name != "glibc":
        return None
    return ctypes.CDLL(None), version


def _probe(libc: ctypes.CDLL) -> bool | None:
    """Whether glibc now serves a PROBE_BYTES malloc from the heap (True) or with mmap (False).

    The block is never written, so nothing beyond its header page is committed; None where
    `mallinfo2` is missing (glibc before 2.33).
    """
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    before = libc.mallinfo2().hblkhd  # bytes in mmapped blocks
    block = libc.malloc(PROBE_BYTES)
    if not block:
        return None
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(block)
    return mapped < PROBE_BYTES


def _set(libc: ctypes.CDLL, param: int, value: int) -> int | None:
    """`value` if mallopt accepts it for `param`, else None."""
    libc.mallopt.restype, libc.mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return value if libc.mallopt(param, value) == 1 else None


def read_back() -> bool | None:
    """Whether large blocks now come from the heap in this process (None: not glibc, or no mallinfo2)."""
    found = _glibc()
    return _probe(found[0]) if found and hasattr(found[0], "mallopt") else None


def configure(mode: HostMemoryMode) -> HostMemory:
    """Apply `train.host_memory` to this process and read back what is in force.

    `retain` raises glibc's mmap and trim thresholds; `release` changes nothing (the C
    library's defaults, unless this process set them before: the probe shows that). On
    another C library, or a glibc without mallopt, nothing is changed or probed.
    """
    found = _glibc()
    if found is None:
        name, version = platform.libc_ver()
        return HostMemory(mode, f"{name or 'unknown C library'} {version}".strip() + " (not glibc)", None, None, None)
    libc, version = found
    if not hasattr(libc, "mallopt"):
        return HostMemory(mode, f"glibc {version} (mallopt unavailable)", None, None, None)
    mmap_t = trim_t = None
    if mode == "retain":
        mmap_t = _set(libc, M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        trim_t = _set(libc, M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return HostMemory(mode, f"glibc {version}", mmap_t, trim_t, _probe(libc))
