"""train.host_memory: glibc's treatment of large freed blocks, set and read back."""

from __future__ import annotations

import ctypes
import json
import platform
import subprocess
import sys
from dataclasses import asdict

import pytest

from auditor import hostmem

GLIBC = platform.libc_ver()[0] == "glibc"
requires_glibc = pytest.mark.skipif(not GLIBC, reason="the allocator setting applies to glibc only")
# The probe answers (True or False) where glibc has mallinfo2 (2.33 and later), else None.
PROBES = GLIBC and hasattr(ctypes.CDLL(None), "mallinfo2")


def probed(answer: bool) -> bool | None:
    """What the probe must say where it is `answer`: that, or None where glibc cannot be asked."""
    return answer if PROBES else None


def fresh_process(code: str) -> dict:
    """Run `code` (which prints one JSON value) in a new interpreter: mallopt is process-wide."""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@requires_glibc
def test_release_leaves_glibc_as_it_is_and_reads_back_mmap() -> None:
    got = fresh_process(
        "import json, dataclasses; from auditor import hostmem; "
        "print(json.dumps(dataclasses.asdict(hostmem.configure('release'))))"
    )
    assert got["requested"] == "release" and got["allocator"].startswith("glibc ")
    assert got["mmap_threshold"] is None and got["trim_threshold"] is None
    assert got["large_blocks_from_heap"] is probed(False)  # glibc's default: a 64 MiB block is mmapped


@requires_glibc
def test_retain_sets_the_thresholds_and_the_probe_sees_it() -> None:
    got = fresh_process(
        "import json, dataclasses; from auditor import hostmem; "
        "before = hostmem.configure('release').large_blocks_from_heap; "
        "print(json.dumps([before, dataclasses.asdict(hostmem.configure('retain'))]))"
    )
    before, after = got
    assert before is probed(False)
    if after["mmap_threshold"] is None:  # a glibc that refuses a 1 GiB threshold: said so, and the probe agrees
        assert after["large_blocks_from_heap"] is probed(False)
    else:
        assert after["mmap_threshold"] == hostmem.MMAP_THRESHOLD and after["large_blocks_from_heap"] is probed(True)
    assert after["trim_threshold"] == hostmem.TRIM_THRESHOLD and after["probe_bytes"] == hostmem.PROBE_BYTES


def test_another_c_library_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem.platform, "libc_ver", lambda: ("", ""))
    got = hostmem.configure("retain")
    assert asdict(got) == {
        "requested": "retain", "allocator": "unknown C library (not glibc)", "mmap_threshold": None,
        "trim_threshold": None, "large_blocks_from_heap": None, "probe_bytes": hostmem.PROBE_BYTES,
    }  # fmt: skip
    assert hostmem.read_back() is None


def test_a_glibc_without_mallopt_is_named_and_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem.platform, "libc_ver", lambda: ("glibc", "2.99"))
    monkeypatch.setattr(hostmem.ctypes, "CDLL", lambda name: object())  # no mallopt, no mallinfo2
    got = hostmem.configure("retain")
    assert (got.allocator, got.mmap_threshold, got.large_blocks_from_heap) == ("glibc 2.99 (mallopt unavailable)", None, None)
    assert hostmem.read_back() is None


TRAIN_FEW_STEPS = """
import hashlib, json, sys, torch
from pathlib import Path
from auditor import repro
from auditor.data import load_data
from auditor.models import build_model
from auditor.spec import load_spec, resolved_dict, spec_hash
from auditor.train import RunFiles, fit
# batch 512: the first stage's maps are 512x16x32x32 fp32 = 32 MiB, above glibc's largest dynamic
# mmap threshold, so under release every step maps them afresh, and under retain reuses heap blocks.
spec = load_spec("smoke", ["model.name=resnet8", "data.synthetic.train=1546", "data.synthetic.test=10",
                           "data.val_split=10", "train.batch_size=512", "train.max_steps=3",
                           "train.host_memory=" + sys.argv[1]])
repro.enforce(spec.seed, spec.determinism)
data = load_data(spec.data, spec.seed)
torch.manual_seed(spec.seed)
model = build_model(spec.model)
files = RunFiles(Path(sys.argv[2]), resolved_dict(spec), spec_hash(spec))
result = fit(spec.train, spec.data, spec.seed, model, data, torch.device("cpu"), files, log=lambda s: None)
digest = hashlib.sha256()
for k, v in sorted(model.state_dict().items()):
    digest.update(k.encode() + v.detach().contiguous().numpy().tobytes())
print(json.dumps([result.step_losses, digest.hexdigest(), result.host_memory.large_blocks_from_heap]))
"""


@pytest.mark.slow
def test_the_setting_changes_no_bit_of_training(tmp_path) -> None:
    """Where memory comes from must not change what is computed: same losses, same weights."""
    runs = {}
    for mode in ("retain", "release"):
        out = subprocess.run([sys.executable, "-c", TRAIN_FEW_STEPS, mode, str(tmp_path / mode)],
                             check=True, capture_output=True, text=True, timeout=600)  # fmt: skip
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    if PROBES:  # the runs took their memory from different places
        assert runs["retain"][2] is True and runs["release"][2] is False
    assert len(runs["retain"][0]) == 3
    assert runs["retain"][:2] == runs["release"][:2]
