"""Environment capture: versions, devices, git state; the GPU found by UUID, not by index."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import auditor
from auditor import environment
from auditor.spec import resource_dir
from auditor.words import describe_setting


class FakeNVML:
    """NVML on a 3-GPU box, in PCI order; records whether it was shut down."""

    class NVMLError(Exception):
        pass

    def __init__(self) -> None:
        self.gpus = [("GPU-aaaa", b"GPU zero"), ("GPU-bbbb", b"GPU one"), ("GPU-cccc", b"GPU two")]
        self.shut = False
        self.refused: set[int] = set()  # devices this user may not query

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, h: int) -> str:
        if h in self.refused:
            raise self.NVMLError("Insufficient Permissions")
        return self.gpus[h][0]

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return self.gpus[h][1]

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(total=(h + 1) * 10**9)

    def nvmlSystemGetDriverVersion(self) -> str:
        return "580.1"


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> FakeNVML:
    """CUDA device 0 is NVML's device 2 (as under CUDA_VISIBLE_DEVICES=2); no GPU needed."""
    nvml = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    props = SimpleNamespace(uuid="cccc", name="GPU two (torch)", total_memory=40 * 10**9)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    return nvml


def test_gpu_is_found_by_uuid_not_by_index(fake_cuda: FakeNVML) -> None:
    info = environment.gpu_info(torch.device("cuda:0"))
    assert info == environment.GPUInfo("GPU two", 3000.0, "580.1", "nvml")
    assert fake_cuda.shut


def test_a_gpu_nvml_refuses_to_describe_is_skipped(fake_cuda: FakeNVML) -> None:
    fake_cuda.refused = {0, 1}
    assert environment.gpu_info(torch.device("cuda:0")) == environment.GPUInfo("GPU two", 3000.0, "580.1", "nvml")


def test_gpu_without_a_matching_nvml_device_falls_back_to_torch(fake_cuda: FakeNVML) -> None:
    fake_cuda.gpus.pop()  # e.g. a MIG slice, whose UUID NVML lists elsewhere
    info = environment.gpu_info(torch.device("cuda"))
    assert info == environment.GPUInfo("GPU two (torch)", 40000.0, None, "torch")
    assert fake_cuda.shut


def test_no_gpu_info_on_the_cpu() -> None:
    assert environment.gpu_info(torch.device("cpu")) is None


def _git(repo: Path, *args: str) -> None:
    ident = ["-c", "user.email=test@example.com", "-c", "user.name=test", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", *ident, *args], cwd=repo, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_counts_changes_but_not_the_tools_own_outputs(tmp_path: Path) -> None:
    repo = tmp_path / "project"
    (repo / "sub").mkdir(parents=True)
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "first")
    out = repo / "runs"
    outputs = [out / "reports", out / "checkpoints", out / "verify", tmp_path / "elsewhere" / "reports"]
    for d in ("reports/r.partial", "checkpoints/r", "verify/r/a"):
        (out / d).mkdir(parents=True)
        (out / d / "f").write_text("written by a run")
    state = environment.git_state(repo / "sub", outputs)  # from a subfolder: the whole work tree counts
    assert state.dirty is False and state.changes == {"tracked": 0, "untracked": 0} and len(state.commit or "") == 40
    assert environment.git_state(repo, []).changes == {"tracked": 0, "untracked": 1}  # runs/ counted without outputs
    (out / "notes.txt").write_text("mine")  # beside the outputs: the user's, counted
    (repo / "train.py").write_text("print('v2')\n")
    state = environment.git_state(repo / "sub", outputs)
    assert state.dirty is True and state.changes == {"tracked": 1, "untracked": 1}
    assert environment.git_state(tmp_path, outputs) == environment.GitState(None, None, None)  # not a work tree


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("tree", [True, False])  # git succeeds, or fails (no work tree: CalledProcessError)
def test_a_stop_during_a_git_call_comes_after_git_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tree: bool
) -> None:
    """A user test: a SIGTERM raised inside subprocess's wait, between its lock's acquire(False) and
    the `try` releasing it, left the lock held; the clean stop's wait then hung on it (kill -9 only).
    The stop is held until the child process is reaped, then raised, also where git failed."""
    from auditor.cli import Stops
    from auditor.errors import Terminated

    if tree:
        _git(tmp_path, "init", "-q")
    real, returned = subprocess.run, []

    def run_with_a_stop(*args: object, **kwargs: object) -> subprocess.CompletedProcess:
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs at the next bytecode: here, unless held
        returned.append(args[0])
        return real(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", run_with_a_stop)
    stops = Stops()
    stops.install()
    try:
        with pytest.raises(Terminated):
            environment.git_state(tmp_path)
    finally:
        stops.restore(to_exit=False)
    assert len(returned) == 1 and returned[0][:2] == ["git", "rev-parse"]  # type: ignore[index]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_counts_tracked_changes_in_output_folders_and_follows_no_symlink(tmp_path: Path) -> None:
    repo, scratch = tmp_path / "project", tmp_path / "scratch"
    (repo / "verify").mkdir(parents=True)
    (repo / "verify" / "tool.py").write_text("v1\n")  # a tracked folder that shares an output folder's name
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    scratch.mkdir()
    (scratch / "last.pt").write_bytes(b"weights")
    (repo / "checkpoints").symlink_to(scratch)  # checkpoints on a scratch disk
    outputs = [repo / d for d in ("reports", "checkpoints", "verify")]
    assert environment.git_state(repo, outputs).changes == {"tracked": 0, "untracked": 0}
    (repo / "verify" / "tool.py").write_text("v2\n")
    assert environment.git_state(repo, outputs).changes == {"tracked": 1, "untracked": 0}


def test_capture_records_versions_device_and_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git checkout
    env = environment.capture(torch.device("cpu"), ["auditor", "run", "smoke"])
    assert (env.auditor, env.torch) == (auditor.__version__, str(torch.__version__))
    assert environment.software_versions() == {
        "auditor": env.auditor, "auditor_source": env.auditor_source[:12], "torch": env.torch}
    assert env.device == "cpu" and env.gpu is None and env.torch_threads == torch.get_num_threads()
    assert (env.git_commit, env.git_dirty, env.git_changes, env.git_problem) == (None, None, None, None)
    assert env.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert env.command == "auditor run smoke" and env.cwd == str(tmp_path)
    assert env.cpu_bf16_native is environment.onednn_bf16_usable(environment.cpu_has_native_bf16())
    fake = "processor\t: 0\nmodel name\t: Fake CPU 9000\nflags\t\t: fpu avx2 amx_bf16\n"
    monkeypatch.setattr(environment, "read_cpuinfo", lambda: fake)  # read once per capture
    monkeypatch.setattr(environment, "onednn_bf16_usable", lambda native: native)
    env = environment.capture(torch.device("cpu"), ["auditor"])
    assert (env.cpu_model, env.cpu_bf16_native) == ("Fake CPU 9000", True)


def test_bf16_instructions_that_onednn_may_not_use_are_not_called_native() -> None:
    """The user test: under ONEDNN_MAX_CPU_ISA=AVX2 a bf16 run was 17x slower, its weights other, and the
    sheet still said the CPU's bf16 instructions were there, with no emulation note."""
    assert environment.onednn_bf16_usable(False) is False and environment.onednn_bf16_usable(None) is None
    code = "import torch; from auditor import environment as e; print(e.onednn_bf16_usable(True))"
    capped = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                            capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
    assert capped.stdout.strip() == "False"  # whatever this CPU has: AVX2 holds no bf16 instructions


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu avx2 avx512f", False), ("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True)],
)
def test_cpu_bf16_detection(flags: str, native: bool) -> None:
    assert environment.cpu_has_native_bf16(f"model name\t: X\nflags\t\t: {flags}\n") is native


def test_cpu_model_without_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "CPUINFO", Path("/nonexistent/cpuinfo"))
    assert environment.read_cpuinfo() is None and environment.cpu_has_native_bf16() is None
    assert environment.cpu_model() == (platform.processor() or platform.machine())


def test_resolve_device() -> None:
    assert environment.resolve_device("cpu") == torch.device("cpu")
    assert environment.resolve_device("cuda:1") == torch.device("cuda", 1)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert environment.resolve_device("auto").type == expected


# --- the CPUs a process may use: affinity and cgroup CPU quota ----------------------------


def fake_cgroups(tmp_path: Path, proc_lines: list[str], files: dict[str, str]) -> tuple[Path, Path]:
    """A /proc/self/cgroup with `proc_lines` and a cgroup mount holding `files` (path -> text)."""
    proc, root = tmp_path / "proc_self_cgroup", tmp_path / "sys_fs_cgroup"
    proc.write_text("".join(f"{line}\n" for line in proc_lines))
    root.mkdir()
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return proc, root


@pytest.mark.parametrize(
    ("proc_lines", "files", "quota"),
    [
        # cgroup v2: the smallest quota over the process's cgroup and its ancestors
        (["0::/user.slice/job"], {"user.slice/job/cpu.max": "max 100000", "user.slice/cpu.max": "150000 100000"}, 1.5),
        (["0::/a/b"], {"a/b/cpu.max": "50000 100000", "a/cpu.max": "400000 100000", "cpu.max": "max 100000"}, 0.5),
        (["0::/a/b"], {"a/b/cpu.max": "max 100000", "a/cpu.max": "max 100000"}, None),  # limits, none set
        # a container: /proc names the host's path, the mount's root is the container's cgroup
        (["0::/kubepods/pod1/c1"], {"cpu.max": "200000 100000"}, 2.0),
        # cgroup v1, cpu and cpuacct mounted together; -1 is no quota
        (["5:memory:/docker/x", "4:cpu,cpuacct:/docker/x"],
         {"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "-1", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000",
          "cpu,cpuacct/docker/cpu.cfs_quota_us": "300000", "cpu,cpuacct/docker/cpu.cfs_period_us": "100000"}, 3.0),
        (["4:cpu:/"], {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
        # unreadable or malformed files tell nothing, rather than fail the run
        (["0::/"], {"cpu.max": "garbage"}, None),
        (["0::/"], {"cpu.max": "100000 0"}, None),
        (["0::/"], {}, None),
        (["not a cgroup line"], {}, None),
    ],
)  # fmt: skip
def test_cgroup_cpu_quota(tmp_path: Path, proc_lines: list[str], files: dict[str, str], quota: float | None) -> None:
    proc, root = fake_cgroups(tmp_path, proc_lines, files)
    assert environment.cgroup_cpu_quota(proc, root) == quota


def test_cgroup_cpu_quota_without_proc(tmp_path: Path) -> None:
    assert environment.cgroup_cpu_quota(tmp_path / "none", tmp_path) is None  # not Linux


@pytest.mark.parametrize(
    ("proc_lines", "files", "limit"),
    [
        # cgroup v2: the smallest limit over the process's cgroup and its ancestors
        (["0::/a/b"], {"a/b/memory.max": "max", "a/memory.max": "8589934592", "memory.max": "max"}, 8 * 2**30),
        (["0::/a/b"], {"a/b/memory.max": "max", "a/memory.max": "max"}, None),
        (["0::/kubepods/pod1/c1"], {"memory.max": "4294967296\n"}, 4 * 2**30),  # a container: the mount's root
        # cgroup v1: about 2**63 is none (this machine's hierarchy: a memory cgroup under process_api)
        (["4:memory:/process_api/x", "1:cpu:/"],
         {"memory/process_api/x/memory.limit_in_bytes": "9223372036854771712",
          "memory/process_api/memory.limit_in_bytes": "9223372036854771712"}, None),
        (["4:memory:/docker/x"], {"memory/docker/x/memory.limit_in_bytes": "2147483648",
                                  "memory/docker/memory.limit_in_bytes": "9223372036854771712"}, 2 * 2**30),
        (["0::/"], {"memory.max": "garbage"}, None),  # unreadable: tells nothing, rather than fail the run
        (["0::/"], {}, None),
    ],
)  # fmt: skip
def test_cgroup_memory_limit(tmp_path: Path, proc_lines: list[str], files: dict[str, str], limit: int | None) -> None:
    proc, root = fake_cgroups(tmp_path, proc_lines, files)
    assert environment.cgroup_memory_limit(proc, root) == limit
    assert environment.cgroup_memory_limit(tmp_path / "none", root) is None  # not Linux


@pytest.mark.parametrize(
    ("threads", "affinity", "quota", "said"),
    [
        (2, 2, None, None),
        (2, 2, 2.0, None),
        (3, 2, None, "torch runs 3 CPU threads but this process's CPU affinity allows 2 CPUs"),
        (8, 64, 2.5, "torch runs 8 CPU threads but this process's cgroup CPU quota is 2.5 CPUs"),
        (4, 3, 2.0, "this process's cgroup CPU quota is 2 CPUs: "),  # the tighter limit is named
        (2, 1, 0.5, "this process's cgroup CPU quota is 0.5 CPUs: "),  # a tie: the quota, which torch does not see
        (2, 1, None, "this process's CPU affinity allows 1 CPU: "),
        (2, 8, 0.5, "this process's cgroup CPU quota is 0.5 CPUs"),  # under one CPU: one thread
        (1, 8, 0.5, None),
    ],
)
def test_oversubscription_note(threads: int, affinity: int, quota: float | None, said: str | None) -> None:
    note = environment.oversubscription_note(threads, affinity, quota)
    if said is None:
        assert note is None
        return
    assert note is not None and said in note
    expected = max(1, min(affinity, int(quota) if quota else affinity))
    assert f"set OMP_NUM_THREADS={expected} for the next run" in note


def test_capture_records_the_cpus_the_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "cgroup_cpu_quota", lambda: 0.5)
    monkeypatch.setattr(environment, "cgroup_memory_limit", lambda: 2**31)
    env = environment.capture(torch.device("cpu"), ["auditor"])
    assert env.cpu_affinity == len(os.sched_getaffinity(0)) and env.cpu_quota == 0.5 and env.memory_limit_bytes == 2**31
    two = dataclasses.replace(env, torch_threads=2, cpu_affinity=2)
    [note] = environment.run_cpu_notes(two)
    assert "cgroup CPU quota is 0.5 CPUs" in note
    assert environment.run_cpu_notes(dataclasses.replace(two, cpu_quota=None)) == []
    assert environment.run_cpu_notes(dataclasses.replace(two, device="cuda:0")) == []  # CPU threads do not train there


def test_source_digest_identifies_the_code_that_runs(tmp_path: Path) -> None:
    """An edited copy of the package, with the same version number, has another digest."""
    src = Path(auditor.__file__).resolve().parent
    copy = tmp_path / "auditor"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(resource_dir("templates"), tmp_path / "templates")
    probe = "import auditor.environment as e; print(e.source_digest())"
    run = lambda: subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert run() == environment.source_digest()  # the same files, wherever they are
    (copy / ".#models.py").symlink_to(tmp_path / "gone")  # an editor's lock file: a link to nothing
    (tmp_path / "templates" / ".reproducibility.md.j2.swp").write_text("swap")
    (tmp_path / "templates" / "notes.txt").write_text("not shipped")
    assert run() == environment.source_digest()  # what a wheel ships, only
    (copy / "models.py").write_text((copy / "models.py").read_text() + "\n# edited\n")
    edited = run()
    assert len(edited) == 64 and edited != environment.source_digest()
    (tmp_path / "templates" / "reproducibility.md.j2").write_text("edited")
    assert run() not in (edited, environment.source_digest())  # the templates count too


def test_numeric_environment_variables_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in environment.NUMERIC_ENV:
        monkeypatch.delenv(k, raising=False)
    assert environment.numeric_env() == {}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("LANG", "C")  # not one that changes numbers
    assert environment.numeric_env() == {"OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")
    setting = environment.compute_setting(torch.device("cpu"))
    assert setting["kernel_env"] == {"ONEDNN_MAX_CPU_ISA": "AVX2", "ONEDNN_DEFAULT_FPMATH_MODE": "BF16"}
    assert setting["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert describe_setting(setting).endswith("kernels, ONEDNN_MAX_CPU_ISA=AVX2 ONEDNN_DEFAULT_FPMATH_MODE=BF16)")


def test_compute_settings_differ_only_in_what_both_recorded() -> None:
    now = environment.compute_setting(torch.device("cpu"))
    old = {k: now[k] for k in ("device", "processor", "torch_threads")}  # a checkpoint before the kernel keys
    assert not environment.setting_differs(old, now)
    assert not environment.setting_differs({**now, "cpu_capability": None}, now)  # a CUDA checkpoint before it was recorded
    assert environment.setting_differs({**now, "cpu_capability": "DEFAULT"}, now)
    assert environment.setting_differs({**now, "kernel_env": {"ONEDNN_DEFAULT_FPMATH_MODE": "BF16"}}, now)
    assert environment.setting_differs({**old, "torch_threads": 99}, now)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_says_why_git_could_not_tell(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")  # a work tree with no commit yet
    assert environment.git_state(tmp_path) == environment.GitState(None, None, None, "a git work tree with no commit yet")
    err = subprocess.CalledProcessError(128, ["git"], stderr="fatal: detected dubious ownership in repository at '/r'\n")
    assert environment._git_problem(err) == "detected dubious ownership in repository at '/r'"
    assert environment._git_problem(FileNotFoundError("git")) == "git is not installed"
    assert environment._git_problem(subprocess.TimeoutExpired(["git"], 10)) == "git did not answer within 10 s"
    not_repo = subprocess.CalledProcessError(128, ["git"], stderr="fatal: not a git repository (or any parent)\n")
    assert environment._git_problem(not_repo) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_capture_says_whether_the_working_directorys_tree_tracks_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "spec.yaml").write_text("name: x\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "spec.yaml")
    _git(repo, "commit", "-qm", "first")
    (tmp_path / "elsewhere.yaml").write_text("name: y\n")
    monkeypatch.chdir(repo)
    cpu = torch.device("cpu")
    assert environment.capture(cpu, ["auditor"], spec_file=repo / "spec.yaml").git_holds_spec is True
    assert environment.capture(cpu, ["auditor"], spec_file=tmp_path / "elsewhere.yaml").git_holds_spec is False
    (repo / "new.yaml").write_text("name: z\n")  # in the tree, but not tracked
    assert environment.capture(cpu, ["auditor"], spec_file=repo / "new.yaml").git_holds_spec is False
    assert environment.capture(cpu, ["auditor"]).git_holds_spec is None  # not told which spec
