"""Environment capture: software versions, hardware, git state, command line."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

import auditor
from auditor.errors import signals_held
from auditor.spec import resource_dir
from auditor.words import count


@dataclass(frozen=True)
class GPUInfo:
    """One CUDA device as NVML (or torch, when NVML is absent) reports it."""

    name: str
    memory_total_mb: float  # decimal megabytes (1e6 bytes)
    driver: str | None
    source: str  # "nvml" | "torch"


@dataclass(frozen=True)
class Environment:
    """Where and how a run happened."""

    python: str
    torch: str
    torchvision: str
    numpy: str
    auditor: str
    cuda: str | None
    cudnn: int | None
    device: str
    gpu: GPUInfo | None
    cpu_model: str
    cpu_cores_logical: int
    cpu_cores_physical: int | None
    ram_gb: float
    os: str
    torch_threads: int
    cpu_bf16_native: bool | None  # avx512_bf16 / amx_bf16 that oneDNN may use: without them CPU bf16 autocast is emulated
    cpu_affinity: int  # CPUs this process may run on
    cpu_quota: float | None  # CPUs' worth of time per second its cgroups allow; None: no quota found
    git_commit: str | None
    git_dirty: bool | None
    # files changed, outside the tool's own output folders: {"tracked": n, "untracked": m}
    git_changes: dict[str, int] | None
    command: str
    cwd: str
    cpu_capability: str | None = None  # torch's CPU kernel set (ATEN_CPU_CAPABILITY can lower it); older records: None
    numeric_env: dict[str, str] | None = None  # NUMERIC_ENV variables set in the process (older records: None)
    auditor_source: str | None = None  # source_digest(): which code ran, beyond the version number
    git_problem: str | None = None  # git's own error where it could not tell the commit
    git_holds_spec: bool | None = None  # the spec file lies in that work tree (None: no tree, or not recorded)
    # bytes its cgroups let this process use (None: no limit found; older records: the key is absent)
    memory_limit_bytes: int | None = None


# Environment variables that change a run's numbers or its thread count: kernel sets (ATen's,
# oneDNN's), thread counts, MKL's reproducibility mode, which GPUs are seen, TF32 overrides and
# Python's hash seed. CUBLAS_WORKSPACE_CONFIG is the determinism section's (the run sets it).
NUMERIC_ENV = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
    "ONEDNN_DEFAULT_FPMATH_MODE", "MKL_CBWR", "CUDA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "PYTHONHASHSEED",
)  # fmt: skip


def numeric_env() -> dict[str, str]:
    """The NUMERIC_ENV variables set in this process, as set."""
    return {k: os.environ[k] for k in NUMERIC_ENV if k in os.environ}


@functools.cache
def source_digest() -> str:
    """sha256 of the auditor code that runs: its modules and templates (paths and bytes, in
    path order). An edited copy with the same version number has another digest."""
    files = _shipped(Path(auditor.__file__).resolve().parent, "*.py", "auditor")
    files += _shipped(resource_dir("templates"), "*.j2", "templates")
    h = hashlib.sha256()
    for name, path in sorted(files):
        try:
            data = path.read_bytes()
        except OSError:  # gone or unreadable since it was listed: said in the digest, not a crash
            data = b"\0unreadable"
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _shipped(folder: Path, pattern: str, prefix: str) -> list[tuple[str, Path]]:
    """(name, path) of the files matching `pattern` under `folder` that a wheel ships: regular
    files, none hidden (an editor's lock or swap file) and none in __pycache__."""
    found = []
    for p in folder.rglob(pattern):
        rel = p.relative_to(folder)
        if p.is_file() and not p.is_symlink() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            found.append((f"{prefix}/{rel.as_posix()}", p))
    return found


CPUINFO = Path("/proc/cpuinfo")


def read_cpuinfo() -> str | None:
    """The text of /proc/cpuinfo, or None where there is none (not Linux)."""
    try:
        return CPUINFO.read_text()
    except OSError:
        return None


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU advertises bf16 instructions, from `cpuinfo` (read now when not given);
    None where there is no /proc/cpuinfo."""
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    if text is None:
        return None
    return "avx512_bf16" in text or "amx_bf16" in text


def onednn_bf16_usable(native: bool | None) -> bool | None:
    """`native` (the CPU's bf16 flags), False where oneDNN may not use them: ONEDNN_MAX_CPU_ISA
    capped below them, which /proc/cpuinfo does not show and autocast then emulates. torch's
    own answer (a private op: where it is missing, the flags alone)."""
    if not native:
        return native
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return native


PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time per second this process's cgroups allow: the smallest CFS quota /
    period over its cgroup and the ancestors (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` and
    `cpu.cfs_period_us`). None where no quota is set or none can be read (not Linux).

    A container limited to 2 CPUs on a 64-core host still shows 64 cores and torch still starts
    one thread per core: the threads then take turns within the quota (CPU affinity, which
    torch does follow, is a different limit).
    """
    return _smallest_limit(proc_cgroup, root, "cpu", _v2_quota, _v1_quota)


def cgroup_memory_limit(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """Bytes of memory this process's cgroups let it use: the smallest limit over its cgroup and
    the ancestors (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`). None where no limit is set
    or none can be read. A container's limit is not in `psutil.virtual_memory()`, which gives the
    host's RAM: past it the kernel's OOM killer ends the run."""
    limit = _smallest_limit(proc_cgroup, root, "memory", _v2_memory, _v1_memory)
    return None if limit is None else int(limit)


def _smallest_limit(proc_cgroup: Path, root: Path, controller: str, v2: Callable[[Path], float | None],
                    v1: Callable[[Path], float | None]) -> float | None:
    """The smallest of `controller`'s limits over this process's cgroups (v2 and v1 hierarchies)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and not controllers:
            limits += _limits_up(root, path, v2)
        elif controller in controllers.split(","):
            mount = root / controllers if (root / controllers).is_dir() else root / controller
            limits += _limits_up(mount, path, v1)
    return min(limits, default=None)


def _limits_up(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """`read(folder)` for the cgroup at `path` under `mount` and each ancestor up to the mount.
    A container often sees its own cgroup as the mount's root while /proc names the host's
    path: where that path is not there, the mount's root alone is read."""
    here = mount / path.strip("/")
    if not here.is_dir():
        here = mount
    found = []
    for folder in [here, *here.parents]:
        if (limit := read(folder)) is not None:
            found.append(limit)
        if folder == mount or mount not in folder.parents:
            break
    return found


def _v2_quota(folder: Path) -> float | None:
    """`cpu.max` ("max 100000" or "200000 100000": quota and period in microseconds) as CPUs."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_quota(folder: Path) -> float | None:
    """`cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`, as CPUs."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota < 0 else quota / period
    except (OSError, ValueError, ZeroDivisionError):
        return None


# cgroup v1 writes "no limit" as the largest page-aligned count (9223372036854771712 with 4 KiB pages).
_NO_MEMORY_LIMIT = 2**62


def _v2_memory(folder: Path) -> float | None:
    """`memory.max` ("max" or bytes)."""
    try:
        text = (folder / "memory.max").read_text().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _v1_memory(folder: Path) -> float | None:
    """`memory.limit_in_bytes` (about 2**63: none)."""
    try:
        limit = int((folder / "memory.limit_in_bytes").read_text())
        return None if limit >= _NO_MEMORY_LIMIT else limit
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; all of them where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def oversubscription_note(
    threads: int, affinity: int | None, quota: float | None, slows: str = "slows training and inflates latency",
    remedy: str | None = None,
) -> str | None:
    """A note when torch runs more CPU threads than this process's CPUs can run at once, else None.

    The tighter limit is named; at a tie the quota, which torch does not see. `slows`: what the
    threads' taking turns does to the work at hand; `remedy`: what to do, given the CPU count
    (default: set OMP_NUM_THREADS for the next run).
    """
    limits = [] if quota is None else [(max(1, math.floor(quota)), f"this process's cgroup CPU quota is {count(quota, 'CPU')}")]
    if affinity:
        limits.append((affinity, f"this process's CPU affinity allows {count(affinity, 'CPU')}"))
    over = [(n, why) for n, why in limits if threads > n]
    if not over:
        return None
    n, why = min(over, key=lambda limit: limit[0])  # the first of equals: the quota
    todo = remedy.format(n=n) if remedy is not None else (
        f"set OMP_NUM_THREADS={n} for the next run (CPU results reproduce bit for bit only at the same thread count)")
    return f"torch runs {threads} CPU threads but {why}: the threads take turns, which {slows}; {todo}"


def torchvision_version() -> str | None:
    """torchvision's version string (with its local tag, e.g. +cu130) without importing it (about
    1.4 s after torch on 2 cores: it imports torch._dynamo)."""
    found = importlib.util.find_spec("torchvision")  # a top-level name: finds, does not import
    if found is None or found.origin is None:
        return None
    version_py = Path(found.origin).with_name("version.py")
    text = version_py.read_text() if version_py.is_file() else ""
    m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    if m:
        return m.group(1)
    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return None


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name, from `cpuinfo` (/proc/cpuinfo, read now when not given) on Linux."""
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    for line in (text or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_info(device: torch.device) -> GPUInfo | None:
    """Name, memory and driver of the CUDA device; NVML first, torch as fallback."""
    if device.type != "cuda":
        return None
    props = torch.cuda.get_device_properties(device.index if device.index is not None else torch.cuda.current_device())
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            h = _nvml_handle(pynvml, str(props.uuid))
            return GPUInfo(
                name=_decode(pynvml.nvmlDeviceGetName(h)),
                memory_total_mb=pynvml.nvmlDeviceGetMemoryInfo(h).total / 1e6,
                driver=_decode(pynvml.nvmlSystemGetDriverVersion()),
                source="nvml",
            )
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML library, no permission, no matching device (e.g. a MIG slice)
        return GPUInfo(props.name, props.total_memory / 1e6, None, "torch")


def _nvml_handle(pynvml: Any, cuda_uuid: str) -> Any:
    """The NVML device whose UUID is the CUDA device's.

    By UUID, not by index: NVML numbers GPUs in PCI order and ignores
    CUDA_VISIBLE_DEVICES, so CUDA's device 0 need not be NVML's device 0.
    NVML's UUIDs carry a "GPU-" prefix that torch's may lack.
    """
    for i in range(pynvml.nvmlDeviceGetCount()):
        try:
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            uuid = _decode(pynvml.nvmlDeviceGetUUID(h))
        except pynvml.NVMLError:  # e.g. no permission on another user's GPU: not ours anyway
            continue
        if uuid.removeprefix("GPU-") == cuda_uuid.removeprefix("GPU-"):
            return h
    raise LookupError(f"no NVML device has UUID {cuda_uuid}")


def _decode(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


@dataclass(frozen=True)
class GitState:
    """The git work tree a run started in (all None outside one, or without git)."""

    commit: str | None
    dirty: bool | None
    # {"tracked": tracked files changed, "untracked": untracked paths (a new folder counts once)}
    changes: dict[str, int] | None
    problem: str | None = None  # why git could not tell, where it is not simply "not a work tree"
    top: str | None = None  # the work tree's top folder


def git_state(where: Path, outputs: Sequence[Path] = ()) -> GitState:
    """Commit and uncommitted changes of the git work tree containing `where`.

    A change to a tracked file counts wherever it is. Untracked files count
    too (an untracked module can change what runs), except under `outputs`:
    the tool's own output folders, which a run has begun to write when this
    is read.
    """
    try:
        env = {**os.environ, "LC_ALL": "C"}  # git's messages in English, as _git_problem reads them

        def run(*a: str) -> str:
            with signals_held():  # a stop comes after git returns (errors.signals_held says why)
                return subprocess.run(
                    ["git", *a], cwd=where, capture_output=True, text=True, timeout=10, check=True, env=env
                ).stdout

        commit, top, *_ = [*run("rev-parse", "HEAD", "--show-toplevel").splitlines(), "", ""]
        if not commit or not top:  # an old git inside .git prints no top level
            return GitState(None, None, None)
        status = ("--no-optional-locks", "status", "--porcelain")  # never takes index.lock from the user's git
        tracked = run(*status, "--untracked-files=no", "--", ":/").splitlines()
        excluded = [f":(top,literal,exclude){rel}" for rel in _inside(Path(top), outputs)]
        listed = run(*status, "--untracked-files=normal", "--", ":/", *excluded).splitlines()
    except (OSError, subprocess.SubprocessError) as e:
        return GitState(None, None, None, _git_problem(e))
    untracked = sum(line.startswith("?? ") for line in listed)
    return GitState(commit, bool(tracked) or untracked > 0, {"tracked": len(tracked), "untracked": untracked}, top=top)


def _git_problem(e: OSError | subprocess.SubprocessError) -> str | None:
    """git's reason for failing, in one line; None for "not a git repository" (nothing to tell)."""
    if isinstance(e, FileNotFoundError):
        return "git is not installed"
    if isinstance(e, subprocess.TimeoutExpired):
        return "git did not answer within 10 s"
    if not isinstance(e, subprocess.CalledProcessError):
        return f"git could not be run ({e})"
    lines = [ln.strip() for ln in (e.stderr or "").splitlines() if ln.strip()]
    text = lines[0] if lines else f"git exited with status {e.returncode}"
    if "not a git repository" in text.lower():
        return None
    if "ambiguous argument 'HEAD'" in text:
        return "a git work tree with no commit yet"
    return text.removeprefix("fatal: ")


def _inside(top: Path, paths: Sequence[Path]) -> list[str]:
    """`paths` that lie inside the work tree `top`, relative to it (git refuses the others).

    A path's last component is kept as it is: a symlinked `checkpoints/` on
    a scratch disk is still the entry git lists inside the work tree.
    """
    found = []
    for p in paths:
        try:
            found.append((p.parent.resolve() / p.name).relative_to(top.resolve()).as_posix())
        except ValueError:
            continue
    return [f for f in found if f != "."]


def software_versions() -> dict[str, str]:
    """The software whose numerics a run depends on (also recorded in every checkpoint): the
    versions, and the first 12 hex digits of `source_digest` (an edited copy of one version)."""
    # plain str: weights_only loads it
    return {"auditor": auditor.__version__, "auditor_source": source_digest()[:12], "torch": str(torch.__version__)}


def capture(
    device: torch.device, argv: list[str] | None = None, outputs: Sequence[Path] = (), spec_file: Path | None = None
) -> Environment:
    """Capture the environment of the current process for `device` (`outputs`: see `git_state`;
    `spec_file`: the spec run, to tell whether the working directory's git tree holds it)."""
    cwd = Path.cwd()
    git = git_state(cwd, outputs)
    mem = psutil.virtual_memory().total
    versions = software_versions()
    cpuinfo = read_cpuinfo()
    return Environment(
        python=platform.python_version(),
        torch=versions["torch"],
        torchvision=torchvision_version(),
        numpy=np.__version__,
        auditor=versions["auditor"],
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        device=str(device),
        gpu=gpu_info(device),
        cpu_model=cpu_model(cpuinfo),
        cpu_cores_logical=psutil.cpu_count(logical=True) or os.cpu_count() or 0,
        cpu_cores_physical=psutil.cpu_count(logical=False),
        ram_gb=round(mem / 2**30, 1),
        os=platform.platform(),
        torch_threads=torch.get_num_threads(),
        cpu_bf16_native=onednn_bf16_usable(cpu_has_native_bf16(cpuinfo)),
        cpu_affinity=usable_cpus(),
        cpu_quota=cgroup_cpu_quota(),
        memory_limit_bytes=cgroup_memory_limit(),
        git_commit=git.commit,
        git_dirty=git.dirty,
        git_changes=git.changes,
        command=shlex.join(argv if argv is not None else ["auditor", *sys.argv[1:]]),
        cwd=str(cwd),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        numeric_env=numeric_env(),
        auditor_source=source_digest(),
        git_problem=git.problem,
        git_holds_spec=None if git.top is None or spec_file is None else _inside_tree(spec_file, Path(git.top)),
    )


def _inside_tree(path: Path, top: Path) -> bool:
    """Whether git tracks `path` (links followed) in the work tree at `top`: inside it, and neither
    untracked nor ignored nor in a nested repository."""
    try:
        real = path.resolve()
        if not real.is_relative_to(top.resolve()):
            return False
        with signals_held():  # as in git_state
            done = subprocess.run(["git", "ls-files", "--error-unmatch", "--", str(real)], cwd=top, capture_output=True,
                                  timeout=10, env={**os.environ, "LC_ALL": "C"}, check=False)  # fmt: skip
    except (OSError, RuntimeError, subprocess.SubprocessError):  # a link loop, git gone: not shown to be tracked
        return False
    return done.returncode == 0


def cpu_notes(
    device: str, threads: int, affinity: int | None, quota: float | None,
    slows: str = "slows training and inflates latency", remedy: str | None = None,
) -> list[str]:
    """Warnings about how this process's CPUs are shared out, for work on the CPU `device`
    (`slows`, `remedy`: what sharing does to that work and what to do, as `oversubscription_note` takes them)."""
    if not device.startswith("cpu"):
        return []
    note = oversubscription_note(threads, affinity, quota, slows, remedy)
    return [note] if note else []


def run_cpu_notes(env: Environment) -> list[str]:
    """`cpu_notes` for the run `env` describes."""
    return cpu_notes(env.device, env.torch_threads, env.cpu_affinity, env.cpu_quota)


def cuda_problem(device: torch.device) -> str | None:
    """Why a CUDA `device` cannot be used here ('requested but ...', 'does not exist ...'), or None."""
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return "requested but CUDA is not available here"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"does not exist ({torch.cuda.device_count()} GPUs)"
    return None


def versions_agree(then: Any, now: dict[str, str]) -> bool:
    """Whether recorded software versions are `now`'s: the source digest compared only where both
    recorded it (checkpoints and records written before it have none; that is not a difference)."""
    if not isinstance(then, dict):
        return False
    keys = [k for k in now if k != "auditor_source" or then.get(k)]
    return all(then.get(k) == now[k] for k in keys)


def versions_text(versions: dict[str, Any]) -> str:
    """'auditor 0.2.0 (source f1858964fca1), torch 2.14.1' from `software_versions`' dict, as
    recorded (older checkpoints: no source)."""
    source = versions.get("auditor_source") or "not recorded"
    return f"auditor {versions.get('auditor', '?')} (source {source}), torch {versions.get('torch', '?')}"


# compute_setting's keys; checkpoints written before the last two have only the first three
COMPUTE_KEYS = ("device", "processor", "torch_threads", "cpu_capability", "kernel_env")
# NUMERIC_ENV's variables that choose kernels or their arithmetic (not thread counts torch reports,
# nor which GPUs are seen, nor Python's hash seed)
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE", "MKL_CBWR", "MKL_NUM_THREADS",
              "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")  # fmt: skip


def compute_setting(device: torch.device) -> dict[str, Any]:
    """What a run's last bits depend on besides the software: the device type, the processor
    and, on the CPU, torch's thread count (reductions are split by thread) and the kernel sets
    in use (ATen's CPU capability; KERNEL_ENV as set: oneDNN's ISA cap and math mode, MKL's
    reproducibility mode, the TF32 overrides: other instructions, other roundings)."""
    cuda, numeric = device.type == "cuda", numeric_env()
    return {
        "device": device.type,
        "processor": torch.cuda.get_device_name(device) if cuda else cpu_model(),
        "torch_threads": None if cuda else torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # CUDA runs too: the model is initialised on the CPU
        "kernel_env": {k: numeric[k] for k in KERNEL_ENV if k in numeric},
    }


def same_setting(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two compute settings agree in every key both recorded (older checkpoints left
    some out, e.g. a CUDA run's CPU kernel set: not a difference)."""
    return all(a[k] == b[k] for k in COMPUTE_KEYS if a.get(k) is not None and b.get(k) is not None)


def setting_differs(then: dict[str, Any], now: dict[str, Any]) -> bool:
    """Whether two compute settings differ in a key both recorded (None: not recorded, as CUDA
    checkpoints did for the CPU kernel set before it was)."""
    return any(then[k] != now[k] for k in COMPUTE_KEYS if then.get(k) is not None and k in now)


def make_current(device: torch.device) -> None:
    """Make a `cuda:N` device the current one: what does not take a device (a benchmark Timer,
    some of torch.compile's CUDA-graph machinery) uses the current device, GPU 0 by default."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
