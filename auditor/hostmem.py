"""How the C allocator treats the large blocks that CPU training frees every step.

A CPU training step allocates and frees activations and gradients of up to tens of MB
(resnet18, batch 128: 32 MiB per 64-channel feature map). glibc serves blocks above its
mmap threshold (dynamic, at most 32 MiB) with a fresh mmap and unmaps them on free, so
the kernel page-faults and zeroes that memory again on every step. Keeping them made CPU
training 5-7% faster for resnet18 and 1-5% for resnet20 in bench/RESULTS.md (each pipeline
in its own process). `train.host_memory: retain` raises the threshold and
disables trimming (glibc `mallopt`), so freed blocks stay in the heap and are reused. It
changes where memory comes from, never what is computed (torch aligns every CPU tensor
to 64 bytes either way); the price is that the process keeps its peak footprint.

The setting is process-wide and glibc has no getter, so what is in force is read back by
a probe: one uncommitted 64 MiB malloc, and whether glibc served it from the heap or with
mmap (`mallinfo2`). Nothing here runs at import time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from dataclasses import dataclass
from typing import Literal

HostMemoryMode = Literal["retain", "release"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc <malloc.h>)
# Tried in order: glibc versions differ in the largest mmap threshold they accept.
MMAP_THRESHOLDS = (1 << 30, 32 << 20)  # bytes
TRIM_THRESHOLD = 2**31 - 1  # bytes (mallopt takes an int): never give the heap top back
PROBE_BYTES = 64 << 20  # the read-back probe: larger than any glibc default threshold


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


@dataclass(frozen=True)
class HostMemory:
    """The allocator setting requested, what was set, and what a probe found in force."""

    requested: HostMemoryMode
    allocator: str  # "glibc 2.36", or what else the process runs on (nothing is changed there)
    mmap_threshold: int | None  # bytes set with mallopt(M_MMAP_THRESHOLD); None: left as it was
    trim_threshold: int | None  # bytes set with mallopt(M_TRIM_THRESHOLD); None: left as it was
    large_blocks_from_heap: bool | None  # read back: the 64 MiB probe came from the heap (None: not probed)


def _glibc() -> tuple[ctypes.CDLL, str] | None:
    """The process's glibc and its version, or None on another C library."""
    name, version = platform.libc_ver()
    path = ctypes.util.find_library("c")
    if name != "glibc" or path is None:
        return None
    libc = ctypes.CDLL(path)
    if not hasattr(libc, "mallopt"):
        return None
    return libc, version


def probe_large_blocks_from_heap(libc: ctypes.CDLL) -> bool | None:
    """Whether glibc now serves a PROBE_BYTES malloc from the heap (True) or with mmap (False).

    The block is never written, so no page is committed; None where `mallinfo2` is missing
    (glibc before 2.33).
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


def _set(libc: ctypes.CDLL, param: int, values: tuple[int, ...]) -> int | None:
    """The first of `values` that mallopt accepts for `param`, or None."""
    libc.mallopt.restype, libc.mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return next((v for v in values if libc.mallopt(param, v) == 1), None)


def configure(mode: HostMemoryMode) -> HostMemory:
    """Apply `train.host_memory` to this process and read back what is in force.

    `retain` raises glibc's mmap threshold and disables trimming; `release` changes
    nothing (the C library's defaults, unless this process set them before: the probe
    shows that). On another C library nothing is changed or probed.
    """
    found = _glibc()
    if found is None:
        name, version = platform.libc_ver()
        return HostMemory(mode, f"{name or 'unknown C library'} {version}".strip() + " (not glibc)", None, None, None)
    libc, version = found
    mmap_t = trim_t = None
    if mode == "retain":
        mmap_t = _set(libc, M_MMAP_THRESHOLD, MMAP_THRESHOLDS)
        trim_t = _set(libc, M_TRIM_THRESHOLD, (TRIM_THRESHOLD,))
    return HostMemory(mode, f"glibc {version}", mmap_t, trim_t, probe_large_blocks_from_heap(libc))
