"""Tests for `auditor verify`: twin runs, kill + resume, fault injection, the evidence block.

The end-to-end tests (marked slow) each start one `python -m auditor verify`
process, which trains the tiny synthetic spec four times (A, B, K killed, K
resumed), one process after the other. The rest run in-process in well under
a second each, apart from the one CLI test that checks for a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import assert_clean_error, fake_cifar_root, run_cli

from auditor import checkpoint
from auditor import verify as verify_mod
from auditor.audit import VERIFY_MARKER, losses_text, run_paths
from auditor.check import edited_metrics
from auditor.cli import main
from auditor.environment import compute_setting, software_versions
from auditor.errors import InvalidInput
from auditor.runner import ENV_NOISE_AT, find_resume_point
from auditor.spec import VerifySpec, load_spec, resolved_dict, spec_hash
from auditor.verify import (
    ENV_CORRUPT_NEWEST,
    ENV_NOISE_RUN,
    VerifyOutcome,
    checkpoint_name,
    checkpoint_tensors,
    compare_losses,
    compare_metrics,
    compare_result,
    compare_results,
    compare_tensors,
    decide,
    default_kill_step,
    first_divergence,
    make_plan,
    result_values,
    resume_position,
    settle_verdict,
    state_tensors,
    summary,
)

# 356 synthetic images - 100 held out = 256 training images = 8 steps of 32 per epoch;
# 2 epochs = 16 global steps. verify sets checkpoint_every_steps to 8 // 4 = 2.
TINY = [
    "data.synthetic.train=356", "data.synthetic.test=100", "data.val_split=100",
    "train.batch_size=32", "model.name=resnet8",
    "measure.latency.warmup=0", "measure.latency.iters=5",
    "criteria.reproducible=== bitwise",  # gated on the verdict once verify has recorded it
]  # fmt: skip
SETS = [a for s in TINY for a in ("--set", s)]
SPE, TOTAL, EVERY = 8, 16, 2


def _verify(
    out: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m auditor verify smoke` on the tiny spec, 2 epochs, in a fresh process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITOR_")}
    full_env["OMP_NUM_THREADS"] = "1"  # the box has 2 shared cores; the same for every run
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "auditor", "verify", "smoke", *SETS, "--epochs", "2", "--out", str(out)]
    cmd += args
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600, check=False, cwd=cwd)


def _evidence(out: Path) -> tuple[dict, dict, str]:
    """verify.json, run A's audit.json and run A's sheet."""
    work = out / "verify" / "smoke"
    report = work / "a" / "reports" / "smoke"
    block = json.loads((work / "verify.json").read_text())
    audit = json.loads((report / "audit.json").read_text())
    return block, audit, (report / "REPRODUCIBILITY.md").read_text()


def _pair(block: dict, name: str) -> dict:
    return next(p for p in block["pairs"] if p["pair"] == name)


def _tree_digest(root: Path) -> dict[str, str]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# --- end to end -------------------------------------------------------------------------


@pytest.mark.slow
def test_twin_and_kill_resume_are_bitwise_and_user_run_untouched(tmp_path: Path) -> None:
    user = tmp_path / "reports" / "smoke"
    user.mkdir(parents=True)
    (user / "audit.json").write_text('{"mine": true}\n')
    (tmp_path / "checkpoints" / "smoke").mkdir(parents=True)
    (tmp_path / "checkpoints" / "smoke" / "last.pt").write_bytes(b"user checkpoint")
    stale = tmp_path / "verify" / "smoke" / "logs" / "k-resumed.log"
    stale.parent.mkdir(parents=True)  # an earlier verify's folder: its marker, its logs
    (stale.parent.parent / VERIFY_MARKER).write_text("")
    stale.write_text("from an earlier verify")
    before = _tree_digest(tmp_path / "reports") | _tree_digest(tmp_path / "checkpoints")
    has_git = shutil.which("git") is not None
    ident = ["-c", "user.email=test@example.com", "-c", "user.name=test", "-c", "commit.gpgsign=false"]
    for git in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "empty"]) if has_git else ():
        subprocess.run(["git", *ident, *git], cwd=tmp_path, check=True, capture_output=True)  # a clean work tree

    proc = _verify(tmp_path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    block, audit, sheet = _evidence(tmp_path)

    assert block["verdict"] == "bitwise" and block["passed"] is True
    assert block["kill_signal"] == "SIGKILL"
    k = default_kill_step(TOTAL, SPE, EVERY)
    assert block["kill_at_step"] == k and 0 < k % SPE < SPE - 1  # mid-epoch
    assert block["resumed_from"] == checkpoint_name(resume_position(k, SPE, EVERY), SPE)
    assert block["resumed_from"].startswith("step-")  # a mid-epoch step checkpoint
    assert [p["returncode"] for p in block["processes"] if p["role"] == "killed"] == [-9]
    assert block["budget"]["epochs"] == 2 and block["budget"]["total_steps"] == TOTAL
    assert block["budget"]["checkpoint_every_steps"] == EVERY
    assert block["first_divergence"] is None and block["top_tensors"] == []
    for name in ("a-b", "a-k"):
        pair = _pair(block, name)
        assert pair["equal"] and pair["max_abs_diff"] == 0
        assert pair["losses"]["steps_a"] == pair["losses"]["steps_b"] == TOTAL
        assert pair["metrics"]["equal"] and pair["metrics"]["epochs_a"] == 2
        assert pair["tensors_compared"] == pair["tensors_equal"] > 0
    names = {t["name"] for t in block["tensors"]}
    assert "model.norm1.running_mean" in names and "model.norm1.num_batches_tracked" in names  # BN buffers
    assert "optimizer.conv1.weight.momentum_buffer" in names  # keyed by parameter name
    # what a resume restores: the resumed run K must end with A's RNG streams, scheduler and position too
    assert {"rng.torch", "rng.numpy.keys", "rng.python.internal_state", "scheduler.last_epoch",
            "global_step", "best.metric"} <= names  # fmt: skip
    assert all(t["equal"] and t["sha256_a"] == t["sha256_b"] == t["sha256_k"] for t in block["tensors"])
    for name in ("a-b", "a-k"):
        results = _pair(block, name)["results"]
        assert results["equal"] and {"test_acc", "test_loss", "test_confusion"} <= set(results["compared"])
    assert any("checkpoint_every_steps" in n for n in block["notes"])
    # Run A's sources, less the thread count all three runs recorded alike (it cannot explain a difference).
    own = audit["determinism"]["nondeterminism_sources"]
    assert block["nondeterminism_sources"] == [s for s in own if not s.startswith("thread count ")] != own

    # verify's runs write under verify/ and the user's run folders are there: neither makes the tree dirty
    if has_git:
        assert (audit["environment"]["git_dirty"], audit["environment"]["git_changes"]) == (False, {"tracked": 0, "untracked": 0})
    assert audit["verification"]["verdict"] == "bitwise"
    assert audit["metrics"]["reproducible"] == "bitwise"
    assert block["spec_hash"] == audit["spec_hash"] and edited_metrics(audit) == []  # check's test of a copied block
    (crit,) = [c for c in audit["criteria"] if c["metric"] == "reproducible"]
    assert crit["passed"] and crit["measured"] == "bitwise"
    assert "## Determinism evidence" in sheet and "**bitwise**" in sheet
    assert "BITWISE" in proc.stdout and "first divergence: none" in proc.stdout
    assert block["command"].startswith("auditor verify smoke --set ") and block["cwd"] == str(tmp_path)
    assert f"| Command (repeats this verification) | `{block['command']}` in `{tmp_path}` |" in sheet
    # A user test: run A's Reproduce section offered `auditor run ... --out verify/smoke/a`, which is refused there.
    assert audit["run"]["verify_out"] == str(tmp_path)
    reproduce = sheet.split("## Reproduce", 1)[1].split("## Criteria", 1)[0]
    assert f"(cd {tmp_path} && {block['command']})" in reproduce and "auditor run " not in reproduce
    for run in ("b", "k"):  # their sheets name run A's, whose sheet holds the command
        other = (tmp_path / f"verify/smoke/{run}/reports/smoke/REPRODUCIBILITY.md").read_text()
        assert f"with the command that run A's sheet gives ({tmp_path}/verify/smoke/a/reports/smoke/REPRODUCIBILITY.md)" in other
        assert "auditor run " not in other.split("## Reproduce", 1)[1].split("## Criteria", 1)[0]
    assert ": BITWISE (pass) on cpu, 1 thread, torch " in proc.stdout  # OMP_NUM_THREADS=1 (_verify)
    # A user test: a resumed run's checkpoints came out larger (its history's keys, read back, were copies).
    # Run K's are larger by its resume's record alone (`resumes`), as the same payload saved with and without it.
    best = {run: tmp_path / f"verify/smoke/{run}/checkpoints/smoke/best.pt" for run in "abk"}
    sizes = {run: path.stat().st_size for run, path in best.items()}
    resumes = checkpoint.load(best["k"])["resumes"]
    assert [r["checkpoint"] for r in resumes] == [block["resumed_from"]] and checkpoint.load(best["a"])["resumes"] == []
    state, saved = checkpoint.load(best["a"]), []
    for listed in ([], resumes):
        state["resumes"] = listed
        checkpoint.save(tmp_path / "resaved" / "best.pt", state)
        saved.append((tmp_path / "resaved" / "best.pt").stat().st_size)
    assert sizes["a"] == sizes["b"] and sizes["k"] - sizes["a"] == saved[1] - saved[0], (sizes, saved)
    assert any(n.startswith(f"run K was killed from inside its process at the end of step {k}, once the checkpoints "
                            "written so far were on disk") for n in block["notes"])  # fmt: skip

    after = _tree_digest(tmp_path / "reports") | _tree_digest(tmp_path / "checkpoints")
    assert after == before  # the user's own run is never touched
    assert stale.read_text() != "from an earlier verify"  # verify's own earlier work dir is replaced (its log anew)
    assert not (tmp_path / "verify" / "smoke" / "a" / "reports" / "smoke.partial").exists()


@pytest.mark.slow
def test_cpu_toggles_and_resume_past_a_corrupted_checkpoint(tmp_path: Path) -> None:
    """NCHW (channels_last off; on is the default) + bf16 autocast on the CPU; the resume
    must skip a corrupted newest checkpoint. The budget ends mid-epoch (15 of 16 steps), so
    last.pt holds the wall time of the epoch so far, which no rerun repeats and verify leaves out."""
    # Killed after step 13: step-00000010.pt and step-00000012.pt are kept (newer than last.pt at 8);
    # the newest is corrupted, so the resume falls back to step-00000010.pt.
    proc = _verify(
        tmp_path, "--set", "train.channels_last=false", "--set", "train.amp=bf16", "--kill-at", "13",
        "--set", "train.max_steps=15", env={ENV_CORRUPT_NEWEST: "1"},
    )  # fmt: skip
    block, audit, sheet = _evidence(tmp_path)
    assert block["budget"]["total_steps"] == 15
    names = {t["name"] for t in block["tensors"]}
    assert "partial.elapsed" not in names and {"step_in_epoch", "global_step"} <= names
    assert audit["spec"]["train"]["channels_last"] is False and audit["spec"]["train"]["amp"] == "bf16"
    emulated = audit["environment"]["cpu_bf16_native"] is False  # this machine: no bf16 instructions
    assert any("autocast emulates bf16" in n for n in audit["run"]["toggle_notes"]) is emulated
    assert ("| Notes on the toggles | train.amp=bf16 on a CPU without bf16 instructions" in sheet) is emulated
    assert block["kill_at_step"] == 13 and block["kill_signal"] == "SIGKILL"
    assert block["resumed_from"] == "step-00000010.pt"
    assert any("corrupted step-00000012.pt" in n for n in block["notes"])
    assert any("skipped step-00000012.pt: sha256 mismatch" in n for n in block["notes"])
    assert any("fell back" in n for n in block["notes"])
    # On the CPU both toggles are deterministic: bf16 autocast changes the numerics,
    # not their run-to-run order, so twin and resumed runs stay bit-identical.
    assert block["verdict"] == "bitwise", proc.stdout + proc.stderr
    assert proc.returncode == 0
    assert any("AMP bf16" in s for s in block["nondeterminism_sources"])  # named as a risk all the same


@pytest.mark.slow
def test_resume_past_a_corrupted_last_pt_continues_from_best_pt(tmp_path: Path) -> None:
    """As `run --resume` does: killed after step 9, last.pt (step 8, the newest) is corrupted, and
    best.pt, written with last.pt's bytes at that epoch's end, is further on than step-00000006.pt."""
    proc = _verify(tmp_path, "--kill-at", "9", env={ENV_CORRUPT_NEWEST: "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    block, _, _ = _evidence(tmp_path)
    assert block["resumed_from"] == "best.pt" and block["verdict"] == "bitwise"
    assert any("corrupted last.pt" in n for n in block["notes"])
    assert any("skipped last.pt: sha256 mismatch" in n for n in block["notes"])
    assert any(n.startswith("resume: continuing from best.pt") for n in block["notes"]), block["notes"]
    assert "resumed from best.pt (newest written before the kill: last.pt; see resume notes)" in block["notes"]
    assert not any("restarted from scratch" in n for n in block["notes"])


@pytest.mark.slow
def test_injected_noise_diverges_and_kill_after_a_lost_checkpoint_restarts_from_scratch(tmp_path: Path) -> None:
    noise = 5
    # Killed after step 2: step-00000002.pt is the only checkpoint, and it is corrupted before the resume.
    env = {ENV_NOISE_AT: str(noise), ENV_NOISE_RUN: "b", ENV_CORRUPT_NEWEST: "1"}
    proc = _verify(tmp_path, "--kill-at", "2", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    block, audit, sheet = _evidence(tmp_path)

    assert block["verdict"] == "diverged" and block["passed"] is False
    fd = block["first_divergence"]
    assert fd["step"] == noise + 1 and fd["pair"] == "a-b" and fd["loss_a"] != fd["loss_b"]
    ab = _pair(block, "a-b")
    assert not ab["equal"] and ab["losses"]["first_divergence"] == noise + 1
    assert ab["top_tensors"] and ab["top_tensors"][0]["max_abs_diff"] > 0
    assert block["top_tensors"][0]["pair"] == "a-b"
    assert block["tensors"][0]["equal"] is False  # differing tensors listed first
    assert any("noise" in n and "run b" in n for n in block["notes"])

    # Run K lost its only checkpoint: it restarted from scratch and was still compared;
    # the divergence of run B decides the verdict.
    assert block["kill_at_step"] == 2 and block["kill_signal"] == "SIGKILL"
    assert block["resumed_from"] is None
    assert "run K: killed after step 2 (0-based: 3 steps done) by SIGKILL, resumed from scratch" in proc.stdout
    assert block["runs"][2] == "k: killed after step 2 (0-based: 3 steps done; SIGKILL), resumed from scratch"
    assert any("run K restarted from scratch" in n for n in block["notes"])
    assert not any("verdict unresumed" in n for n in block["notes"])
    ak = _pair(block, "a-k")
    assert ak["equal"] and ak["losses"]["steps_b"] == TOTAL and ak["tensors_compared"] > 0

    assert audit["metrics"]["reproducible"] == "diverged"
    (crit,) = [c for c in audit["criteria"] if c["metric"] == "reproducible"]
    assert not crit["passed"] and crit["measured"] == "diverged" and audit["verdict"] == "FAIL"
    assert "DIVERGED" in proc.stdout and f"first divergence: step {noise + 1}" in proc.stdout
    causes = proc.stdout.split("possible causes (settings the runs did not share, then nondeterminism sources in "
                               "force; a thread count all three runs recorded alike is left out):\n")[1].split("  note:")[0]  # fmt: skip
    assert "thread count" not in causes and block["threads"] and "thread count" not in str(block["nondeterminism_sources"])
    assert "thread count" in str(audit["determinism"]["nondeterminism_sources"])  # run A's own list keeps it
    assert "## Determinism evidence" in sheet and "**diverged**" in sheet


@pytest.mark.slow
def test_runs_that_agree_without_a_resume_are_unresumed_and_fail(tmp_path: Path) -> None:
    proc = _verify(tmp_path, "--kill-at", "2", env={ENV_CORRUPT_NEWEST: "1"})  # its only checkpoint is lost
    assert proc.returncode == 1, proc.stdout + proc.stderr
    block, audit, sheet = _evidence(tmp_path)
    assert block["verdict"] == "unresumed" and block["passed"] is False
    assert all(p["equal"] for p in block["pairs"])  # the runs agree: only the resume is missing
    assert block["resumed_from"] is None and any("verdict unresumed" in n for n in block["notes"])
    assert audit["metrics"]["reproducible"] == "unresumed" and audit["verdict"] == "FAIL"
    assert "UNRESUMED (FAIL)" in proc.stdout and "possible causes" not in proc.stdout
    assert "verify: run k (killed) exited -9 (killed, as planned)" in proc.stdout + proc.stderr
    banner = "Verification verdict **unresumed**: the runs agree, but run K did NOT resume from a checkpoint"
    assert banner in sheet


@pytest.mark.slow
def test_a_run_that_diverges_before_the_kill_moves_it_and_is_incomplete(tmp_path: Path) -> None:
    proc = _verify(tmp_path, "--set", "train.optimizer.lr=1e8")  # non-finite within a few steps, every run alike
    assert proc.returncode == 1, proc.stdout + proc.stderr
    block, audit, sheet = _evidence(tmp_path)
    assert "Verification verdict **incomplete**: the runs agree, but training diverged, and no checkpoint holds" in sheet
    diverged_at = audit["training"]["diverged_at_step"]
    assert audit["run"]["status"] == "diverged" and diverged_at < default_kill_step(TOTAL, SPE, EVERY)
    steps_a = len((tmp_path / "verify/smoke/a/reports/smoke/steps.csv").read_text().splitlines()) - 1  # header
    were = "was" if diverged_at == 1 else "were"
    said = f"run A diverged: {diverged_at} of its {steps_a} step losses {were} finite before the first non-finite one"
    assert any(n.startswith(said) for n in block["notes"]), block["notes"]
    assert block["kill_signal"] == "SIGKILL" and block["kill_at_step"] < diverged_at and block["resumed_from"]
    assert block["verdict"] == "incomplete" and block["passed"] is False  # no last.pt: weights uncompared
    assert all(p["losses"]["equal"] and p["tensors_compared"] == 0 for p in block["pairs"])
    assert "INCOMPLETE (FAIL)" in proc.stdout and "possible causes" not in proc.stdout
    assert "final weights not compared;" in proc.stdout and "differ only in" not in proc.stdout
    assert f"; run A trained {steps_a} of them (early stopping or a divergence ended it before the budget's end)" in proc.stdout


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_toggle_the_device_cannot_run_is_refused_before_anything_in_the_users_words(tmp_path: Path) -> None:
    """It was refused by run A, after the earlier evidence was set aside, naming verify's own spec.yaml."""
    refusals = [("train.amp=fp16", "smoke --set 'train.amp=fp16': train.amp: fp16 needs a CUDA device"),
                ("train.device=cuda", "smoke --set 'train.device=cuda': train.device: cuda requested but CUDA is not")]
    for override, said in refusals:
        with pytest.raises(InvalidInput, match=said):
            make_plan("smoke", [*TINY, override], tmp_path, epochs=1, steps=None, kill_at=None)
    assert not (tmp_path / "verify").exists()


def test_a_budget_flag_that_replaces_the_users_set_says_so(tmp_path: Path) -> None:
    """The user test: `--epochs 1 --set train.epochs=5` trained 1 epoch without a word."""
    plan = make_plan("smoke", [*TINY, "train.epochs=5"], tmp_path, epochs=1, steps=None, kill_at=None)
    assert "--epochs 1 replaces --set 'train.epochs=5': train.epochs is 1 for all three runs" in plan.notes
    plan = make_plan("smoke", [*TINY, "train={max_steps: 9}"], tmp_path, epochs=None, steps=6, kill_at=None)
    assert "--steps 6 replaces --set 'train={max_steps: 9}': train.max_steps is 6 for all three runs" in plan.notes
    plan = make_plan("smoke", [*TINY, "train.max_steps=9"], tmp_path, epochs=None, steps=12, kill_at=None)
    assert any(note.startswith("--steps 12 goes past the train.max_steps 9 of --set 'train.max_steps=9': ")
               for note in plan.notes), plan.notes  # not "the spec's own"
    for sets, epochs in (([*TINY, "train.max_steps=9"], 1), ([*TINY, "train.epochs=1"], 1),  # nothing replaced
                         (["train=null", *TINY], 1)):  # a --set that gave train.epochs no value
        plan = make_plan("smoke", sets, tmp_path, epochs=epochs, steps=None, kill_at=None)
        assert not any("replaces" in note for note in plan.notes), sets
    # the budget's cap is said only where it cut the epochs short (it had been said of any max_steps)
    with pytest.raises(InvalidInput, match=r"outside the budget \(global steps 0\.\.15: 2 epochs x 8 steps\)$"):
        make_plan("smoke", [*TINY, "train.epochs=2"], tmp_path, epochs=None, steps=100, kill_at=80)
    with pytest.raises(InvalidInput, match=r"outside the budget \(global steps 0\.\.9: 2 epochs x 8 steps, capped at "
                                           r"max_steps 10\)$"):  # fmt: skip
        make_plan("smoke", [*TINY, "train.epochs=2"], tmp_path, epochs=None, steps=10, kill_at=80)


def test_a_data_setting_synthetic_data_does_not_read_is_said_in_the_evidence(tmp_path: Path) -> None:
    """A user test: `verify smoke --set data.root=/nonexistent` ran a whole verify without a word."""
    plan = make_plan("smoke", [*TINY, "data.root=/nonexistent"], tmp_path, epochs=1, steps=None, kill_at=None)
    assert "data.root ('/nonexistent') is not read: the dataset is synthetic" in plan.notes
    assert not any("is not read" in n for n in make_plan("smoke", TINY, tmp_path, epochs=1, steps=None, kill_at=None).notes)


def test_a_budget_flag_refused_by_validation_is_named_as_given(tmp_path: Path) -> None:
    """The review: `--steps N` had been named `--set 'train.max_steps=N'`, a --set the user never typed."""
    huge = 99999999999999999999999
    with pytest.raises(InvalidInput, match=rf"^smoke --steps {huge}: train\.max_steps: an integer of 23 digits"):
        make_plan("smoke", list(TINY), tmp_path, epochs=None, steps=huge, kill_at=None)
    with pytest.raises(InvalidInput, match=rf"^smoke --epochs {huge}: train\.epochs: an integer of 23 digits"):
        make_plan("smoke", list(TINY), tmp_path, epochs=huge, steps=None, kill_at=None)


def test_unknown_spec_key_exits_2_without_traceback(tmp_path: Path) -> None:
    keep = tmp_path / "verify" / "smoke" / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("evidence of an earlier verify")
    cmd = [sys.executable, "-m", "auditor", "verify", "smoke", "--set", "train.bogus=1"]
    cmd += ["--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "train.bogus" in proc.stderr and "unknown key" in proc.stderr
    assert keep.exists()  # bad input never removes an earlier work dir


def test_a_file_where_the_work_dir_goes_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "verify").mkdir()
    (tmp_path / "verify" / "smoke").write_text("mine")
    assert main(["verify", "smoke", "--steps", "2", "--out", str(tmp_path)]) == 2
    assert f"--out: cannot write under {tmp_path}: {tmp_path / 'verify' / 'smoke'} is a file" in capsys.readouterr().err
    assert (tmp_path / "verify" / "smoke").read_text() == "mine"


@pytest.mark.parametrize("kill_at", [TOTAL, 10_000, -1])
def test_kill_at_outside_the_budget_exits_2(
    tmp_path: Path, kill_at: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["verify", "smoke", *SETS, "--epochs", "2", "--out", str(tmp_path), "--kill-at", str(kill_at)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--kill-at" in err and f"0..{TOTAL - 1}" in err
    assert not (tmp_path / "verify").exists()


def test_epochs_and_steps_are_exclusive_and_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["verify", "smoke", "--epochs", "1", "--steps", "3", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert main(["verify", "smoke", *SETS, "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "--steps: must be >= 1" in capsys.readouterr().err


def test_bad_injection_variable_is_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_NOISE_AT, "5")
    monkeypatch.setenv(ENV_NOISE_RUN, "z")
    assert main(["verify", "smoke", *SETS, "--epochs", "2", "--out", str(tmp_path)]) == 2  # the CLI reads the env
    assert f"{ENV_NOISE_RUN}: must be a, b or k, got 'z'" in capsys.readouterr().err
    assert not (tmp_path / "verify").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({ENV_NOISE_RUN: "a"}, "is set but"),
        ({ENV_NOISE_AT: "five"}, "expected a global step"),
        ({ENV_CORRUPT_NEWEST: "yes"}, r"must be 1 \(on\) or 0 \(off\), got 'yes'"),
    ],
)
def test_fault_variables_are_parsed_once(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        verify_mod.Faults.from_env(env)


def test_faults_reach_only_their_run_and_are_checked_against_the_budget() -> None:
    faults = verify_mod.Faults.from_env({ENV_NOISE_AT: "5", ENV_NOISE_RUN: "k", verify_mod.ENV_CORRUPT_NEWEST: "1"})
    assert faults == verify_mod.Faults(noise_at=5, noise_run="k", corrupt_newest=True)
    assert verify_mod._child_env(faults, "k")[ENV_NOISE_AT] == "5"
    assert ENV_NOISE_AT not in verify_mod._child_env(faults, "b")
    assert "run k's weights after step 5" in faults.notes(total=10)[0]
    with pytest.raises(InvalidInput, match="outside the budget"):
        faults.notes(total=5)
    assert verify_mod.Faults.from_env({}) == verify_mod.Faults()


# --- planning -------------------------------------------------------------------------------


def test_plan_sets_checkpoint_cadence_and_budget(tmp_path: Path) -> None:
    plan = make_plan("smoke", TINY, tmp_path, epochs=2, steps=None, kill_at=None)
    assert (plan.steps_per_epoch, plan.total_steps, plan.checkpoint_every) == (SPE, TOTAL, EVERY)
    assert plan.spec.train.checkpoint_every_steps == EVERY and plan.spec.train.epochs == 2
    assert plan.workdir == tmp_path / "verify" / "smoke"
    assert plan.budget["source"] == "--epochs"
    steps = make_plan("smoke", [*TINY, "train.checkpoint_every_steps=3"], tmp_path, None, 11, None)
    assert steps.total_steps == 11 and steps.checkpoint_every == 3 and steps.spec.train.max_steps == 11
    assert not any("checkpoint_every_steps" in n for n in steps.notes)  # the spec's own cadence is kept
    assert not any("max_steps" in n for n in steps.notes)  # the spec sets none
    past = make_plan("smoke", [*TINY, "train.checkpoint_every_steps=3", "train.max_steps=5"], tmp_path, None, 11, None)
    assert past.total_steps == 11 and past.notes == [  # the --set's, not the spec's own; one note, not a second "replaces"
        ("--steps 11 goes past the train.max_steps 5 of --set 'train.max_steps=5': the runs compared train 6 steps "
         "that a run of the spec never trains")]  # fmt: skip
    own = tmp_path / "own.yaml"
    own.write_text((Path(__file__).resolve().parents[1] / "specs" / "smoke.yaml").read_text())
    own.write_text(own.read_text().replace("train:\n", "train:\n  max_steps: 5\n", 1))
    past = make_plan(str(own), [*TINY, "train.checkpoint_every_steps=3"], tmp_path, None, 11, None)
    assert ("--steps 11 goes past the spec's own train.max_steps 5: the runs compared train 6 steps that a run of the "
            "spec never trains") in past.notes  # fmt: skip
    within = make_plan("smoke", [*TINY, "train.checkpoint_every_steps=3", "train.max_steps=20"], tmp_path, None, 11, None)
    assert not any("goes past" in n for n in within.notes)


def test_the_plan_keeps_the_command_that_repeats_the_verification(tmp_path: Path) -> None:
    plan = make_plan("smoke", [*TINY, "description=a b"], tmp_path, epochs=2, steps=None, kill_at=None)
    assert plan.command == shlex.join(["auditor", "verify", "smoke", *(a for s in [*TINY, "description=a b"] for a in ("--set", s)),
                                       "--out", str(tmp_path), "--epochs", "2"])  # fmt: skip
    steps = make_plan("smoke", list(TINY), tmp_path, epochs=None, steps=11, kill_at=5)
    assert steps.command.endswith(f" --out {tmp_path} --steps 11 --kill-at 5")  # only the flags given


def test_an_epochs_budget_the_schedule_refuses_says_that_steps_keeps_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"train\.schedule\.milestones: .* \(--epochs 1 sets train\.epochs; --steps "
                                           r"shortens the budget and keeps the spec's schedule\)$"):
        make_plan("resnet20_cifar10", [], tmp_path, epochs=1, steps=None, kill_at=None)
    with pytest.raises(InvalidInput) as bad:  # the spec's own problem: no advice about --epochs
        make_plan("smoke", ["train.schedule.name=multistep", "train.schedule.milestones=[50]"], tmp_path,
                  epochs=2, steps=None, kill_at=None)  # fmt: skip
    assert "--steps shortens" not in str(bad.value)


def test_each_run_compiles_with_a_cache_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run B and K must not reuse run A's compiled kernels: each run's torch.compile cache is its own."""
    plan = make_plan("smoke", TINY, tmp_path, epochs=2, steps=None, kill_at=None)
    envs: list[dict[str, str]] = []

    class FakeRun:  # stands in for the `auditor run` child process
        def __init__(self, cmd: list[str], **kwargs: Any) -> None:
            envs.append(kwargs["env"])

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(verify_mod.subprocess, "Popen", FakeRun)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "users-cache"))
    for run_id in ("a", "b", "k"):
        verify_mod._start(plan, tmp_path / "spec.yaml", run_id, "reference", lambda m: None)
    assert [e["TORCHINDUCTOR_CACHE_DIR"] for e in envs] == [
        str(plan.workdir / run_id / ".inductor-cache") for run_id in ("a", "b", "k")]
    assert [e["TRITON_CACHE_DIR"] for e in envs] == [  # torch reads it first where it is set (CUDA kernels)
        str(plan.workdir / run_id / ".inductor-cache" / "triton") for run_id in ("a", "b", "k")]


def test_the_setting_shown_as_shared_is_read_from_all_three_runs() -> None:
    def audit(threads: int, torch_version: str) -> dict[str, Any]:
        return {"environment": {"torch_threads": threads, "torch": torch_version}}

    notes: list[str] = []
    same = verify_mod.shared_setting([audit(2, "2.9"), audit(2, "2.9"), audit(2, "2.9")], notes)
    assert same == {"threads": 2, "torch": "2.9"} and notes == []
    other = verify_mod.shared_setting([audit(2, "2.9"), audit(1, "2.9"), audit(2, "2.9")], notes)
    assert other == {"threads": None, "torch": "2.9"}
    assert notes == ["the runs did not share their torch threads (A 2, B 1, K 2)"]


def test_a_run_a_that_stopped_early_moves_the_kill_inside_its_steps(tmp_path: Path) -> None:
    plan = make_plan("smoke", TINY, tmp_path, epochs=2, steps=None, kill_at=None)
    assert any("set it to 2 (a checkpoint every 2 of the 8 steps of an epoch, a quarter)" in n for n in plan.notes)
    notes: list[str] = []
    assert verify_mod.kill_within(plan, TOTAL, "completed", notes, print) is plan and notes == []
    moved = verify_mod.kill_within(plan, 5, "early_stopped", notes, lambda m: None)  # stopped before the kill
    assert moved.kill_at < 5 and resume_position(moved.kill_at, SPE, EVERY) > 0
    expected = (f"run A stopped (early_stopped) after 5 steps, before the planned kill after step "
                f"{plan.kill_at}: run K is killed after step {moved.kill_at} instead")  # fmt: skip
    assert notes == [expected]
    notes.clear()
    assert verify_mod.kill_within(plan, 2, "diverged", notes, print, diverged_at=1) is plan  # no checkpoint within 1 step
    assert notes[0].startswith("run A diverged: 1 of its 2 step losses was finite before the first non-finite one")
    assert "before any checkpoint a kill could resume from" in notes[0]
    notes.clear()  # 8 steps run, the loss non-finite from step 5 on: the kill moves before step 5
    diverged = verify_mod.kill_within(plan, 8, "diverged", notes, lambda m: None, diverged_at=5)
    assert diverged.kill_at < 5 and resume_position(diverged.kill_at, SPE, EVERY) > 0
    said = (f"run A diverged: 5 of its 8 step losses were finite before the first non-finite one, after which "
            f"no checkpoint is written, before the planned kill after step {plan.kill_at}: run K is killed after "
            f"step {diverged.kill_at} instead")  # fmt: skip
    assert notes == [said]


def test_resume_arithmetic() -> None:
    # 8 steps/epoch, step checkpoint every 2: positions 2, 4, 6 | last.pt at 8 | 10, 12, 14.
    assert [resume_position(s, 8, 2) for s in (0, 1, 2, 3, 7, 8, 9, 13)] == [0, 0, 2, 2, 6, 8, 8, 12]
    assert checkpoint_name(0, 8) is None and checkpoint_name(8, 8) == "last.pt"
    assert checkpoint_name(6, 8) == "step-00000006.pt"
    k = default_kill_step(16, 8, 2)
    p = resume_position(k, 8, 2)
    assert 0 < k % 8 < 7 and p % 8 != 0 and p // 8 == k // 8 and abs(k - 7.5) <= 2
    assert default_kill_step(30, 10, 3) == 14  # resumes from step-00000012.pt, replays 12..14
    assert default_kill_step(1, 1, 1) == 0  # no room for any checkpoint: mid-budget (make_plan refuses it)
    assert default_kill_step(4, 3, 100) == 3  # no step checkpoint fits: after last.pt at 3 (not mid-budget 2)


def _kill_step_by_walking(total: int, spe: int, every: int) -> int:
    """default_kill_step's rule, applied by walking every step of the budget (as it once was)."""
    def position(k: int) -> int:
        return next((p for p in range(k, 0, -1) if p % spe == 0 or p % every == 0), 0)

    mid_epoch = [s for s in range(total) if s % spe != spe - 1 and position(s) % spe != 0 and position(s) // spe == s // spe]
    candidates = mid_epoch or [s for s in range(total) if position(s) > 0]
    return min(candidates, key=lambda s: (abs(2 * s - (total - 1)), s == position(s), s)) if candidates else total // 2


def test_the_kill_step_is_worked_out_not_walked_to() -> None:
    """A user test: `verify --epochs 9999999999999` filled 23 GB listing every step before training."""
    for total, spe, every in itertools.product(range(1, 42), range(1, 12), range(1, 16)):
        assert default_kill_step(total, spe, every) == _kill_step_by_walking(total, spe, every), (total, spe, every)
        assert resume_position(total, spe, every) == next(
            (p for p in range(total, 0, -1) if p % spe == 0 or p % every == 0), 0)  # fmt: skip
    huge = 19 * 9_999_999_999_999
    k = default_kill_step(huge, 19, 4)
    p = resume_position(k, 19, 4)
    assert abs(2 * k - (huge - 1)) < 2 * 19 and p % 19 != 0 and p // 19 == k // 19 and k % 19 != 18


def test_a_budget_shorter_than_an_epoch_still_checkpoints_before_its_kill(tmp_path: Path) -> None:
    plan = make_plan("smoke", TINY, tmp_path, epochs=None, steps=6, kill_at=None)  # 6 of 8 steps of an epoch
    assert plan.checkpoint_every == 1 and any("set it to 1 (a checkpoint every 1 of the 6 steps of the budget)" in n for n in plan.notes)
    assert resume_position(plan.kill_at, SPE, plan.checkpoint_every) > 0


@pytest.mark.parametrize(
    ("sets", "steps", "kill_at", "message"),
    [
        ([], None, 0, ("--kill-at: 0 (0-based: 1 step done, killed at the end of that step) "
                       "comes before the first checkpoint (checkpoints after every 2 steps and at each epoch end (8 "
                       "steps)), so the resume would train from scratch and go untested; use --kill-at 2 to 15 "
                       "(0-based: 3 steps done, resumed from the checkpoint after 2 steps)")),
        # A user test: "or later" where the first step after a checkpoint is the budget's last.
        (["train.checkpoint_every_steps=100"], 9, 6, (
            "comes before the first checkpoint (checkpoints after every 100 steps and at each epoch end (8 steps)), so "
            "the resume would train from scratch and go untested; use --kill-at 8 (the budget's last step; 0-based: 9 "
            "steps done, resumed from the checkpoint after 8 steps)")),
        ([], None, 1, "--kill-at: 1 (0-based: 2 steps done, killed at the end of that step, before its checkpoint)"),
        (["train.checkpoint_every_steps=2"], 1, None, "the budget is 1 step: verify needs at least 2"),
        (["train.checkpoint_every_steps=100"], 6, None, (
            "no checkpoint is written before the last of the budget's 6 steps (checkpoints after every 100 steps and "
            "at each epoch end (8 steps): the first after 6 steps, at its end), so no kill could be resumed from one")),
        (["train.checkpoint_every_steps=100"], 6, 0, "no checkpoint is written before the last of the budget's 6 steps"),
    ],
)  # fmt: skip
def test_a_kill_no_checkpoint_precedes_is_refused(
    tmp_path: Path, sets: list[str], steps: int | None, kill_at: int | None, message: str
) -> None:
    epochs = None if steps else 2
    with pytest.raises(InvalidInput) as exc:
        make_plan("smoke", [*TINY, *sets], tmp_path, epochs=epochs, steps=steps, kill_at=kill_at)
    assert message in str(exc.value)
    assert not (tmp_path / "verify").exists()


def test_missing_data_is_named_with_the_spec_before_anything_runs(tmp_path: Path) -> None:
    none = tmp_path / "none"  # named with the --set that gave it, as `auditor run` names it
    with pytest.raises(InvalidInput, match=rf"^smoke --set 'data\.root={none}': data\.root: {none} does not exist"):
        make_plan("smoke", [*TINY, "data.dataset=cifar10", f"data.root={none}"], tmp_path, 2, None, None)
    assert not (tmp_path / "verify").exists()


# --- comparison -----------------------------------------------------------------------------


def test_compare_losses_finds_first_divergence() -> None:
    same = compare_losses(["1.5", "1.25"], ["1.5", "1.25"])
    assert same["equal"] and same["first_divergence"] is None and same["max_abs_diff"] == 0
    diff = compare_losses(["1.5", "1.25", "1.0"], ["1.5", "1.2500001", "2.0"])
    assert diff["first_divergence"] == 1 and diff["loss_a"] == 1.25 and diff["max_abs_diff"] == 1.0
    short = compare_losses(["1.5", "1.25"], ["1.5"])
    assert short["first_divergence"] == 1 and short["loss_b"] is None and short["max_abs_diff"] is None
    fd = first_divergence([{"pair": "a-b", "losses": short}, {"pair": "a-k", "losses": diff}])
    assert fd == {"step": 1, "pair": "a-b", "loss_a": 1.25, "loss_b": None}
    # how many steps differ, not how many each run wrote
    assert (same["steps_differ"], diff["steps_differ"], short["steps_differ"]) == (0, 2, 1)
    assert losses_text(same) == "losses of all 2 steps equal"
    assert losses_text(diff) == "losses of 2 of 3 steps differ, first at step 1"
    assert losses_text(short) == "losses of 1 of 2 steps differ, first at step 1 (the runs wrote 2 and 1 steps)"


def test_compare_metrics_ignores_timing_columns() -> None:
    row = {"epoch": "1", "lr": "0.1", "train_loss": "2.0", "val_acc": "0.5"}
    row |= {"epoch_s": "3.2", "images_per_s": "100"}
    timing_only = compare_metrics([row], [row | {"epoch_s": "9.9", "images_per_s": "7"}])
    assert timing_only["equal"] and timing_only["max_abs_diff"] == 0
    loss = compare_metrics([row], [row | {"train_loss": "2.5"}])
    assert not loss["equal"] and loss["max_abs_diff"] == 0.5
    assert loss["differences"][0]["column"] == "train_loss"


def test_compare_metrics_of_runs_with_other_epoch_counts_is_neither_equal_nor_comparable() -> None:
    row = {"epoch": "1", "lr": "0.1", "train_loss": "2.0"}
    short = compare_metrics([row], [row, row | {"epoch": "2"}])  # the rows both have agree
    assert (short["equal"], short["max_abs_diff"], short["epochs_a"], short["epochs_b"]) == (False, None, 1, 2)
    assert compare_metrics([], [])["equal"] and compare_metrics([], [])["max_abs_diff"] == 0


def _pair_folders(workdir: Path) -> dict[str, dict[str, Any]]:
    """Runs a and b of `smoke` under `workdir` whose logs agree; their audit records."""
    for run in ("a", "b"):
        reports = run_paths(workdir / run, "smoke").reports
        reports.mkdir(parents=True)
        (reports / "steps.csv").write_text("step,loss\n1,2.25\n2,2.0\n")
        (reports / "metrics.csv").write_text("epoch,val_acc,epoch_time_s\n1,0.5,3.0\n")
    confusion = [[2, 1, 0], [0, 2, 1], [1, 0, 2]]
    return {run: _record(0.7, {"cat": 2 / 3, "dog": 2 / 3, "bird": 2 / 3}, confusion) for run in ("a", "b")}


@pytest.mark.parametrize("missing", [("a", "b"), ("b",)])
def test_a_pair_without_final_weights_on_a_side_is_never_equal(tmp_path: Path, missing: tuple[str, ...]) -> None:
    """Logs and records agree, but last.pt is missing in one run or both: nothing proves the weights."""
    audits = _pair_folders(tmp_path)
    tensors = {run: None if run in missing else {"w": torch.ones(2)} for run in ("a", "b")}
    pair = verify_mod.compare_pair(tmp_path, "smoke", "a", "b", tensors, audits)
    assert pair["losses"]["equal"] and pair["metrics"]["equal"] and pair["results"]["equal"]
    assert not pair["equal"] and pair["tensors_compared"] == 0
    assert pair["notes"] == [f"no last.pt in run {' and '.join(missing)}: checkpoint entries not compared"]
    # one side's weights alone compare with nothing: no difference can be measured
    assert pair["max_abs_diff"] == (0 if len(missing) == 2 else None)
    assert decide([pair], 1.0) == "incomplete"  # uncompared, not proven equal, nor seen to differ


def test_tensor_comparison_layout_and_optimizer_names() -> None:
    w = torch.randn(4, 3, 3, 3)
    cl = w.to(memory_format=torch.channels_last)
    rows = compare_tensors({"w": w, "n": torch.tensor(7)}, {"w": cl, "n": torch.tensor(7)})
    assert all(r["equal"] and r["max_abs_diff"] == 0 for r in rows)  # logical order, not storage order
    nudged = w.clone()
    nudged[0, 0, 0, 0] += 1e-3
    (r,) = compare_tensors({"w": w}, {"w": nudged})
    assert not r["equal"] and r["sha256_a"] != r["sha256_b"] and abs(r["max_abs_diff"] - 1e-3) < 1e-6
    (m,) = compare_tensors({"w": w}, {"w": w[:2]})
    assert m["max_abs_diff"] is None and "vs" in m["note"]
    (bf,) = compare_tensors({"b": w.bfloat16()}, {"b": w.bfloat16()})
    assert bf["equal"]

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 2)).sum().backward()
    opt.step()
    names = [n for n, _ in model.named_parameters()]
    flat = state_tensors({"model": model.state_dict(), "optimizer": opt.state_dict()}, names)
    assert "model.1.running_var" in flat and "model.1.num_batches_tracked" in flat
    assert {f"optimizer.{n}.momentum_buffer" for n in names} <= set(flat)


def _resumable_payload(seed: int = 0) -> dict[str, Any]:
    """A checkpoint payload as train writes it: model, optimiser, scheduler and every RNG stream."""
    import random

    from auditor.train import _rng_state

    torch.manual_seed(seed)
    random.seed(seed)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    model(torch.randn(4, 2)).sum().backward()
    opt.step()
    sched.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": {}, "rng": _rng_state(torch.device("cpu")), "epoch": 1, "step_in_epoch": 0,
            "global_step": 4, "partial": {}, "best": {"metric": 0.5, "epoch": 1, "since": 0},
            "step_losses": torch.tensor([2.3, 2.1], dtype=torch.float64), "train_time_s": 1.5}  # fmt: skip


def test_the_state_a_resume_restores_is_compared_tensor_by_tensor() -> None:
    import random

    names = ["weight", "bias"]
    a = _resumable_payload()
    flat = state_tensors(a, names)
    assert {"scheduler.last_epoch", "scheduler._last_lr", "rng.torch", "rng.numpy.keys", "rng.numpy.pos",
            "rng.python.internal_state", "epoch", "global_step", "best.metric", "step_losses"} <= set(flat)  # fmt: skip
    assert "train_time_s" not in flat and "rng.cuda" not in flat  # a timing; no CUDA stream on the CPU
    mid_epoch = {**a, "partial": {"losses": [2.3], "loss_sum": 2.3, "correct": 5.0, "elapsed": 0.41}}
    assert {"partial.losses", "partial.loss_sum", "partial.correct"} <= set(state_tensors(mid_epoch, names))
    assert "partial.elapsed" not in state_tensors(mid_epoch, names)  # the epoch's wall time so far
    assert all(r["equal"] for r in compare_tensors(flat, state_tensors(_resumable_payload(), names)))

    # One draw from Python's generator that a resume would not replay: the weights agree, the state does not.
    b = _resumable_payload()
    random.random()
    b["rng"]["python"] = random.getstate()
    rows = {r["name"]: r for r in compare_tensors(flat, state_tensors(b, names))}
    assert [n for n, r in rows.items() if not r["equal"]] == ["rng.python.internal_state"]
    assert rows["rng.python.internal_state"]["max_abs_diff"] >= 1  # beyond any tolerance verify accepts (< 1)
    c = _resumable_payload()
    c["scheduler"]["last_epoch"] += 1
    assert not {r["name"]: r for r in compare_tensors(flat, state_tensors(c, names))}["scheduler.last_epoch"]["equal"]


def test_best_pt_weights_are_compared_where_best_pt_is_not_last_pt() -> None:
    last = _resumable_payload()
    assert not any(n.startswith("best.pt/") for n in checkpoint_tensors(last, last, ["weight", "bias"]))  # last.pt's bytes
    # A user test: a best.pt of last.pt's step was taken for last.pt's bytes unread (its weights edited).
    same_step = {**_resumable_payload(), "global_step": last["global_step"]}
    assert {"best.pt/model.weight", "best.pt/model.bias"} <= set(checkpoint_tensors(last, same_step, ["weight", "bias"]))
    earlier = {**_resumable_payload(seed=1), "global_step": 2}
    flat = checkpoint_tensors(last, earlier, ["weight", "bias"])
    assert {"best.pt/model.weight", "best.pt/model.bias"} <= set(flat)
    assert not torch.equal(flat["best.pt/model.weight"], flat["model.weight"])
    assert not any(n.startswith("best.pt/optimizer") for n in flat)  # its weights are what was measured
    assert checkpoint_tensors(last, None, ["weight", "bias"]).keys() == state_tensors(last, ["weight", "bias"]).keys()


def test_a_checkpoint_changed_after_its_run_is_refused_not_compared(tmp_path: Path, smoke_run: Path) -> None:
    """A user test: run A's best.pt, its weights edited (and its digest written again) while the
    verify ran, passed as BITWISE: best.pt of last.pt's step went unread, and no file was held to
    the digest the run's audit.json records."""
    from auditor.verify import run_tensors

    shutil.copytree(smoke_run, tmp_path / "a")
    audit = json.loads((tmp_path / "a/reports/smoke/audit.json").read_text())
    names = [n for n, _ in torch.nn.Linear(1, 1).named_parameters()]  # any: weights are keyed by the model's
    assert run_tensors(tmp_path, "smoke", "a", names, audit) is not None  # as the run wrote them
    # A user test: a loss edited in steps.csv, which verify compares, was reported as nondeterminism.
    steps = tmp_path / "a/reports/smoke/steps.csv"
    written = steps.read_text()
    lines = written.splitlines(keepends=True)
    lines[4] = "3,1.0\n"
    steps.write_text("".join(lines))
    with pytest.raises(InvalidInput, match=r"steps\.csv: step 3's loss '1\.0', where last\.pt holds '[0-9.]+': it was "
                                           r"changed after run A; nothing was compared"):
        run_tensors(tmp_path, "smoke", "a", names, audit)
    lines = written.splitlines(keepends=True)
    lines[5] = lines[5].rstrip("\n") + "0\n"  # the same number written otherwise: verify compares the text (the review)
    steps.write_text("".join(lines))
    with pytest.raises(InvalidInput, match=r"steps\.csv: step 4's loss '[0-9.]+0', where last\.pt holds '[0-9.]+'"):
        run_tensors(tmp_path, "smoke", "a", names, audit)
    steps.write_text("".join(lines[:3]))  # cut short
    with pytest.raises(InvalidInput, match=r"steps\.csv: the losses of 2 steps, where last\.pt holds [0-9,]+: it was changed"):
        run_tensors(tmp_path, "smoke", "a", names, audit)
    steps.write_text(written + "999,nan\n")  # more than last.pt holds: only a run that diverged after it writes them
    with pytest.raises(InvalidInput, match=r"steps\.csv: the losses of [0-9,]+ steps, where last\.pt holds [0-9,]+"):
        run_tensors(tmp_path, "smoke", "a", names, audit)
    diverged = {**audit, "training": {**audit["training"], "status": "diverged"}}
    assert run_tensors(tmp_path, "smoke", "a", names, diverged) is not None
    steps.write_text(written)
    # With no last.pt (training diverged before one was written), the newest step checkpoint is the reference (the review).
    ckpts = tmp_path / "a/checkpoints/smoke"
    shutil.copytree(ckpts, tmp_path / "kept")
    payload = checkpoint.load(ckpts / "last.pt")
    checkpoint.save(ckpts / f"step-{payload['global_step']:08d}.pt", payload)
    for final in ("last.pt", "best.pt"):
        (ckpts / final).unlink()
        checkpoint.digest_path(ckpts / final).unlink()
    unwritten = {**audit, "checkpoints": {}, "training": {**audit["training"], "status": "diverged"}}
    assert run_tensors(tmp_path, "smoke", "a", names, unwritten) is None  # as written: nothing to compare, nothing refused
    fresh = written.splitlines(keepends=True)
    steps.write_text("".join([*fresh[:4], "3,1.0\n", *fresh[5:]]))
    with pytest.raises(InvalidInput, match=r"steps\.csv: step 3's loss '1\.0', where step-[0-9]{8}\.pt holds '[0-9.]+': it "
                                           r"was changed after run A"):
        run_tensors(tmp_path, "smoke", "a", names, unwritten)
    steps.write_text(written)
    shutil.rmtree(ckpts)
    shutil.move(tmp_path / "kept", ckpts)
    best = tmp_path / "a/checkpoints/smoke/best.pt"
    payload = checkpoint.load(best)
    payload["model"]["fc.bias"] = payload["model"]["fc.bias"] + 0.5
    checkpoint.save(best, payload)  # with its digest written again: the file verifies
    with pytest.raises(InvalidInput, match=r"best\.pt: not the file run A's audit\.json records \(sha256 [0-9a-f]{12}, "
                                           r"recorded [0-9a-f]{12}\): it was changed after that run; nothing was compared"):
        run_tensors(tmp_path, "smoke", "a", names, audit)
    best.unlink()  # a checkpoint the record lists, gone (the review)
    with pytest.raises(InvalidInput, match=r"best\.pt: not the file run A's audit\.json records \(no such file, recorded "):
        run_tensors(tmp_path, "smoke", "a", names, audit)


def test_the_results_measured_after_training_are_compared() -> None:
    a = {"status": "completed", "test_acc": 0.5, "best_val_acc": 0.4, "final_val_acc": None, "latency_ms": 1.0}
    assert compare_results(a, {**a, "latency_ms": 2.0, "train_time_s": 9.0}) == {
        "compared": ["status", "test_acc", "best_val_acc", "final_val_acc", "final_train_acc",
                     "test_loss", "test_per_class_acc", "test_confusion"],
        "equal": True, "max_abs_diff": 0.0, "differences": []}  # fmt: skip
    near = compare_results(a, {**a, "test_acc": 0.5 + 2**-20})
    assert not near["equal"] and near["max_abs_diff"] == 2**-20
    assert near["differences"] == [{"metric": "test_acc", "a": 0.5, "b": 0.5 + 2**-20, "abs_diff": 2**-20}]
    status = compare_results(a, {**a, "status": "diverged"})
    assert not status["equal"] and status["max_abs_diff"] is None  # not a distance: never within tolerance
    assert compare_results(a, {**a, "test_acc": None})["max_abs_diff"] is None
    assert compare_results(a, {**a, "test_acc": float("nan")})["max_abs_diff"] is None
    nan = {**a, "test_acc": float("nan")}
    assert not compare_results(nan, nan)["equal"]  # NaN agrees with nothing


def _record(loss: float, per_class: dict, confusion: list) -> dict:
    test = {"split": "test", "acc": 0.5, "loss": loss, "per_class": per_class, "confusion": confusion}
    return {"metrics": {"status": "completed", "test_acc": 0.5, "latency_ms": 1.0}, "measurements": {"test": test}}


def test_the_test_evaluation_behind_the_accuracy_is_compared() -> None:
    """Runs with one test accuracy can differ in loss, and in which class a prediction went to."""
    thirds = {"cat": 2 / 3, "dog": 2 / 3, "bird": 2 / 3}
    confusion = [[2, 1, 0], [0, 2, 1], [1, 0, 2]]
    values = result_values(_record(0.7, thirds, confusion))
    assert values["test_loss"] == 0.7 and values["test_confusion"] == confusion
    assert "latency_ms" not in values  # timings are not expected to repeat
    assert compare_results(values, result_values(_record(0.7, dict(thirds), [list(r) for r in confusion])))["equal"]
    loss = compare_results(values, result_values(_record(0.7 + 2**-20, thirds, confusion)))
    assert loss["differences"] == [{"metric": "test_loss", "a": 0.7, "b": 0.7 + 2**-20, "abs_diff": loss["max_abs_diff"]}]
    assert 0 < loss["max_abs_diff"] < 1e-5
    # the same accuracy and per-class accuracies: a wrong prediction of a cat went to another class
    moved = compare_results(values, result_values(_record(0.7, thirds, [[2, 0, 1], [0, 2, 1], [1, 0, 2]])))
    assert moved["differences"] == [{
        "metric": "test_confusion", "abs_diff": 1 / 9, "cells_differing": 2,
        "entries": [{"at": "[0][1]", "a": 1, "b": 0}, {"at": "[0][2]", "a": 0, "b": 1}]}]  # fmt: skip
    # a moved prediction weighs 1/n, as in test_acc: a count would exceed any verify.tolerance (< 1)
    assert moved["max_abs_diff"] == 1 / 9
    per_class = compare_results(values, result_values(_record(0.7, {**thirds, "dog": 0.5, "bird": 0.6}, confusion)))
    assert per_class["max_abs_diff"] == 2 / 3 - 0.5
    assert per_class["differences"][0]["entries"] == [  # largest first
        {"at": "[dog]", "a": 2 / 3, "b": 0.5}, {"at": "[bird]", "a": 2 / 3, "b": 0.6}]  # fmt: skip
    # a class on one side only, or a table against a missing one, is no distance
    renamed = compare_results(values, result_values(_record(0.7, {"cat": 2 / 3, "cow": 2 / 3, "bird": 2 / 3}, confusion)))
    assert not renamed["equal"] and renamed["max_abs_diff"] is None
    assert renamed["differences"] == [{"metric": "test_per_class_acc", "abs_diff": None, "cells_differing": 0,
                                       "entries": [], "only_in_a": ["[dog]"], "only_in_b": ["[cow]"]}]  # fmt: skip
    bare = {"metrics": {"status": "completed"}, "measurements": {"test": None}}
    assert compare_results(result_values(bare), result_values(bare))["equal"]  # no test split in either
    missing = compare_results(result_values(bare), values)
    assert missing["max_abs_diff"] is None
    assert {"metric": "test_confusion", "a": None, "b": "a table of 9 cells", "abs_diff": None} in missing["differences"]
    assert compare_result("test_confusion", [[5, 0], [0, 5]], [[50, 0], [0, 50]])["abs_diff"] is None  # other n
    assert compare_result("test_confusion", [[]], [])["abs_diff"] is None  # one row of no cells is not none
    assert compare_result("test_per_class_acc", {}, None) == {
        "metric": "test_per_class_acc", "a": "a table of 0 cells", "b": None, "abs_diff": None}  # fmt: skip
    assert compare_result("t", {"0": 1}, [1])["abs_diff"] is None  # a mapping is no list
    # a class without test images (null in audit.json) agrees with itself, not with a measured one
    assert compare_results(*[result_values(_record(0.7, {"cat": None}, [[0]]))] * 2)["equal"]
    assert compare_result("test_per_class_acc", {"cat": None}, {"cat": 0.5})["abs_diff"] is None


def test_a_pair_whose_runs_differ_only_in_their_test_evaluation_is_not_equal(tmp_path: Path) -> None:
    """compare_pair reads each run's record whole: a moved prediction alone makes the pair differ."""
    audits = _pair_folders(tmp_path)
    audits["b"] = _record(0.7, {"cat": 2 / 3, "dog": 2 / 3, "bird": 2 / 3}, [[2, 0, 1], [0, 2, 1], [1, 0, 2]])
    tensors = {"w": torch.ones(2)}
    pair = verify_mod.compare_pair(tmp_path, "smoke", "a", "b", {"a": tensors, "b": dict(tensors)}, audits)
    assert pair["losses"]["equal"] and pair["metrics"]["equal"] and pair["tensors_equal"] == 1
    assert not pair["equal"] and pair["max_abs_diff"] == 1 / 9
    assert [d["metric"] for d in pair["results"]["differences"]] == ["test_confusion"]
    assert verify_mod.decide([pair], 0.2) == "tolerance" and verify_mod.decide([pair], 0.1) == "diverged"


def test_noise_planned_after_run_a_stopped_is_said_to_have_tested_nothing() -> None:
    faults = verify_mod.Faults(noise_at=30, noise_run="b")
    assert faults.unapplied(40) == []
    assert faults.unapplied(16) == [("test-only fault injection: run A stopped after 16 steps, before step 30, so no "
                                     "noise was added to run b: the injection tested nothing")]  # fmt: skip
    assert verify_mod.Faults().unapplied(0) == []


def test_verdict_levels() -> None:
    def pair(equal: bool, diff: float | None, tensors: int = 5) -> dict:
        same = {"equal": diff == 0}
        return {"equal": equal, "max_abs_diff": diff, "tensors_compared": tensors, "losses": same, "metrics": same}

    assert decide([pair(True, 0.0), pair(True, 0.0)], 1e-6) == "bitwise"
    assert decide([pair(True, 0.0), pair(False, 1e-7)], 1e-6) == "tolerance"
    assert decide([pair(False, 1e-3), pair(True, 0.0)], 1e-6) == "diverged"
    assert decide([pair(False, None), pair(True, 0.0)], 1.0) == "diverged"  # not comparable
    assert decide([pair(False, 1e-6), pair(True, 0.0)], 1e-6) == "tolerance"  # at the tolerance: within it
    # no last.pt in either run (diverged before one was written): nothing differs, nothing proves the weights
    assert decide([pair(False, 0.0, tensors=0), pair(False, 0.0, tensors=0)], 1e-6) == "incomplete"
    assert decide([pair(False, 1e-3, tensors=0), pair(True, 0.0)], 1e-6) == "diverged"  # losses differ
    # Training that diverged after its last checkpoint: last.pt agrees, but predates the weights it ended with.
    pairs, notes = [pair(True, 0.0), pair(True, 0.0)], []
    facts = {"kill_signal": "SIGKILL", "resumed_from": "step_4.pt"}
    diverged = {"status": "diverged", "diverged_at_step": 5}
    assert settle_verdict(pairs, VerifySpec(), facts, None, notes, diverged) == "incomplete"
    said = ("the runs agree (bitwise) on every step's loss (the non-finite ones too), every epoch's metrics and "
            "last.pt, but training diverged at step 5 after last.pt was written, so the weights it ended with were "
            "not compared: verdict incomplete")
    assert notes == [said]
    within = VerifySpec(tolerance=1e-6, allow_tolerance=True)  # a pass for agreeing runs, not for uncompared ones
    assert settle_verdict([pair(True, 0.0), pair(False, 1e-7)], within, facts, None, [], diverged) == "incomplete"
    assert settle_verdict(pairs, VerifySpec(), facts, None, [], {"status": "completed"}) == "bitwise"
    # Diverged at once, so never killed, and no last.pt: nothing differed, so no note may say the runs differ.
    unweighed, notes = [pair(False, 0.0, tensors=0), pair(False, 0.0, tensors=0)], []
    never = {"kill_signal": None, "resumed_from": None}
    assert settle_verdict(unweighed, VerifySpec(), never, None, notes, {"status": "completed"}) == "unresumed"
    assert notes[0].startswith("the runs agree (on every loss and metric; no final weights to compare), but run K "
                               "did not continue from a checkpoint (it was not killed)")  # fmt: skip
    assert not any("differ only in" in n for n in notes), notes
    # Equal losses but different per-epoch metrics: the runs do not differ only in the final state.
    metrics_differ = {**pair(False, 1e-3), "losses": {"equal": True}, "metrics": {"equal": False}}
    notes = []
    assert settle_verdict([metrics_differ], VerifySpec(), facts, None, notes, {"status": "completed"}) == "diverged"
    assert not any("differ only in" in n for n in notes), notes
    # Identical losses, metrics and checkpoints, but a result measured after training differs.
    measured = {**pair(False, None), "tensors_equal": 5, "losses": {"equal": True}, "metrics": {"equal": True}, "results": {
        "equal": False, "differences": [{"metric": "test_acc", "a": 0.5, "b": 0.52, "abs_diff": 0.02}]}}  # fmt: skip
    notes = []
    assert settle_verdict([measured], VerifySpec(), facts, None, notes, {"status": "completed"}) == "diverged"
    assert notes == [("the loss streams and per-epoch metrics are identical: the runs differ only in the results "
                      "measured after training (test_acc)")]  # fmt: skip
    weights = {**pair(False, 1e-3), "tensors_equal": 4, "losses": {"equal": True}, "metrics": {"equal": True}}
    notes = []
    settle_verdict([weights], VerifySpec(), facts, None, notes, {"status": "completed"})
    assert notes == [("the loss streams and per-epoch metrics are identical: the runs differ only in the checkpoints "
                      "(see tensors)")]  # fmt: skip


def test_the_summary_says_run_k_was_not_killed_and_what_the_runs_shared(tmp_path: Path) -> None:
    same = {"equal": True, "max_abs_diff": 0, "first_divergence": None, "steps_a": 3, "steps_b": 3,
            "nonfinite_a": 0, "nonfinite_b": 0}  # fmt: skip
    pair = {"pair": "a-b", "equal": False, "max_abs_diff": 0.0, "losses": same, "metrics": same,
            "tensors_compared": 0, "tensors_equal": 0}  # fmt: skip
    block = {"verdict": "unresumed", "work_dir": str(tmp_path / "smoke"), "device": "cpu", "threads": 2,
             "torch": "2.9.0", "kill_at_step": 4, "kill_signal": None, "resumed_from": None, "pairs": [pair],
             "budget": {"total_steps": 8, "epochs": 2, "steps_per_epoch": 4, "steps": None,
                        "checkpoint_every_steps": 1},
             "first_divergence": None, "top_tensors": [], "nondeterminism_sources": [], "notes": []}  # fmt: skip
    text = summary(VerifyOutcome(block, False, tmp_path))
    assert "  first divergence: none" in text.splitlines()  # nothing differs: the weights were not compared
    results = {"equal": False, "max_abs_diff": 0.01, "differences": [{"metric": "test_acc"}]}
    differ = {**block, "verdict": "diverged", "pairs": [{**pair, "tensors_compared": 3, "tensors_equal": 3,
                                                         "results": results}]}  # fmt: skip
    differ_text = summary(VerifyOutcome(differ, False, tmp_path))
    assert "  first divergence: none in the per-step losses (the runs differ elsewhere: see above)" in (
        differ_text.splitlines())  # fmt: skip
    assert "; results differ (test_acc); checkpoint entries 3/3 identical" in differ_text  # which results, named
    assert "; results equal; checkpoint entries not compared (no last checkpoint)" in text  # not "0/0 identical"
    assert text.splitlines()[0].endswith(": UNRESUMED (FAIL) on cpu, 2 threads, torch 2.9.0")
    assert "  run K: not killed (it finished before step 4)" in text.splitlines()
    assert "a-b: final weights not compared;" in text and "max |diff|" not in text


def test_the_summary_tells_losses_apart_and_names_unshared_settings_first(tmp_path: Path) -> None:
    """A user test: a first divergence was said as `loss 2.51964 vs 2.51964`, and the thread counts
    the runs did not share were only a note below the nondeterminism sources."""
    same = {"equal": True, "max_abs_diff": 0, "first_divergence": None, "steps_a": 3, "steps_b": 3,
            "nonfinite_a": 0, "nonfinite_b": 0}  # fmt: skip
    pair = {"pair": "a-b", "equal": False, "max_abs_diff": 7e-7, "losses": same, "metrics": same,
            "tensors_compared": 3, "tensors_equal": 1}  # fmt: skip
    unshared = "the runs did not share their torch threads (A 2, B 1, K 2)"
    block = {"verdict": "diverged", "work_dir": str(tmp_path / "smoke"), "device": "cpu", "threads": None,
             "torch": "2.9.0", "kill_at_step": 4, "kill_signal": "SIGKILL", "resumed_from": "step-00000002.pt",
             "pairs": [pair], "budget": {"total_steps": 8, "epochs": 2, "steps_per_epoch": 4, "steps": None,
                                         "checkpoint_every_steps": 1},
             "first_divergence": {"step": 0, "pair": "a-b", "loss_a": 2.519636631, "loss_b": 2.519637346},
             "top_tensors": [], "nondeterminism_sources": ["thread count 2: ..."], "notes": [unshared]}  # fmt: skip
    lines = summary(VerifyOutcome(block, False, tmp_path)).splitlines()
    assert "  first divergence: step 0 (a-b: loss 2.5196366 vs 2.5196373)" in lines
    causes = lines.index(next(line for line in lines if line.startswith("  possible causes")))
    assert lines[causes + 1 : causes + 3] == [f"    - {unshared}", "    - thread count 2: ..."]
    assert sum(unshared in line for line in lines) == 1  # the review: not said again as a note
    assert verify_mod.distinct(1.5, 1.5) == ("1.5", "1.5") and verify_mod.distinct(None, 2.0) == ("n/a", "2")


def test_a_coarse_tolerance_and_a_failing_run_a_are_noted(tmp_path: Path) -> None:
    """A user test: verify.tolerance 0.99 passed runs whose test accuracies differed by 3 of 200 images
    (the sheet ticked its box), and a model that blew up to inf was verified BITWISE, exit 0, with no
    word in the summary."""
    from auditor.spec import VerifySpec

    audit_a = {"measurements": {"test": {"n": 200}}, "data": {"sizes": {"train": 900, "val": 0, "test": 200}}}
    coarse = VerifySpec(tolerance=0.005, allow_tolerance=True)
    assert verify_mod.tolerance_notes(coarse, audit_a) == [(
        "verify.tolerance 0.005 is at least one image's share of the test accuracy (1/200 = 0.005): runs whose "
        "predictions differ pass it, where a tolerance for floating-point reordering is orders of magnitude below "
        "(the default is 1e-6)")]
    assert verify_mod.tolerance_notes(VerifySpec(tolerance=0.004, allow_tolerance=True), audit_a) == []
    assert verify_mod.tolerance_notes(VerifySpec(tolerance=0.5), audit_a) == []  # not allowed: it passes nothing
    # The review: the smallest split scored decides (a val split of 100 beside 1,000 test images).
    audit_a = {"measurements": {"test": {"n": 1000}}, "data": {"sizes": {"train": 900, "val": 100, "test": 1000}}}
    [said] = verify_mod.tolerance_notes(VerifySpec(tolerance=0.01, allow_tolerance=True), audit_a)
    assert said.startswith("verify.tolerance 0.01 is at least one image's share of the validation accuracy (1/100 = 0.01)")
    golden = json.loads((Path(__file__).parent / "fixtures" / "audit_golden.json").read_text())
    assert verify_mod.run_a_fails(golden) == []
    # The review: run A's criteria are not judged here (verify's short budget, and its `reproducible`
    # criterion not yet judged, would say FAIL of a run whose sheet then says PASS).
    assert verify_mod.run_a_fails({**golden, "verdict": "FAIL"}) == []
    broken = {**golden, "measurements": {**golden["measurements"], "nonfinite": ["bn1.running_var"]}}
    assert verify_mod.run_a_fails(broken) == [(
        "run A's model holds non-finite values: verify's verdict says whether the runs reproduce one another, not "
        "whether the model works (run A's own sheet says FAIL)")]


def test_a_damaged_data_file_is_named_with_the_spec_as_run_names_it(tmp_path: Path) -> None:
    """A user test: `run` said `bad.yaml:5: data.root: .../data_batch_1: not a readable ...`, verify the
    file alone."""
    root = fake_cifar_root(tmp_path / "data")
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(InvalidInput, match=rf"^smoke --set 'data\.root={root}': data\.root: {root}/cifar-10-batches-py/data_batch_1: "):
        make_plan("smoke", [*TINY, "data.dataset=cifar10", f"data.root={root}", "data.val_split=2"], tmp_path, 2, None, None)


# --- checkpoint faults (in-process, no training) ---------------------------------------------


DATA = "d" * 64  # the fingerprint of the data the fake checkpoints trained on, and of the data read now


def _fake_checkpoints(tmp_path: Path, positions: list[int]) -> tuple:
    spec = load_spec("smoke", TINY)
    paths = run_paths(tmp_path, spec.name)
    paths.ckpt_staging.mkdir(parents=True)
    for g in positions:
        name = "last.pt" if g % SPE == 0 else f"step-{g:08d}.pt"
        payload = {"model": {"w": torch.full((2,), float(g))}, "global_step": g,
                   "spec": resolved_dict(spec), "spec_hash": spec_hash(spec), "data_fingerprint": DATA,
                   "versions": software_versions(), "compute": compute_setting(torch.device("cpu"))}  # fmt: skip
        checkpoint.save(paths.ckpt_staging / name, payload)
    return spec, paths


def test_resume_falls_back_past_a_corrupted_newest_checkpoint(tmp_path: Path) -> None:
    spec, paths = _fake_checkpoints(tmp_path, [8, 10, 12])
    newest = paths.ckpt_staging / "step-00000012.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    logged: list[str] = []
    found, notes = find_resume_point(paths, spec, logged.append, torch.device("cpu"), DATA)
    assert found is not None and found.name == "step-00000010.pt"
    assert len(notes) == 1 and notes[0].startswith("skipped step-00000012.pt: sha256 mismatch")
    assert not any("continuing" in m for m in logged)  # said by train.fit once the checkpoint is restored


def test_half_written_checkpoint_is_never_loaded(tmp_path: Path) -> None:
    spec, paths = _fake_checkpoints(tmp_path, [8, 10])
    d = paths.ckpt_staging
    # Killed mid-write: the temp file of the next checkpoint, and one renamed before its digest.
    (d / ".step-00000014.pt.abc123.tmp").write_bytes(b"\x80\x02partial")
    torn = d / "step-00000012.pt"
    torn.write_bytes((d / "step-00000010.pt").read_bytes()[:100])
    found, notes = find_resume_point(paths, spec, lambda _m: None, torch.device("cpu"), DATA)
    assert found is not None and found.name == "step-00000010.pt"
    assert notes == [("skipped step-00000012.pt: no digest file (step-00000012.pt.sha256 is missing: it was removed, or the "
                      "file was copied without it)")]
    with pytest.raises(InvalidInput, match="not intact"):
        checkpoint.load(torn)
    assert checkpoint.load(found)["global_step"] == 10


def test_a_failed_reverify_puts_the_earlier_evidence_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or a crash) in a second `auditor verify` must not cost the first one's evidence."""
    workdir = tmp_path / "verify" / "smoke"
    workdir.mkdir(parents=True)
    (workdir / "verify.json").write_text("earlier evidence")

    def interrupted(plan: Any, notes: list[str], log: Any) -> None:
        verify_mod.write_spec_file(plan)  # it had started writing
        (plan.workdir / "a").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_mod, "_run_and_compare", interrupted)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        verify_mod.verify("smoke", [], tmp_path, epochs=1, log=said.append)
    assert (workdir / "verify.json").read_text() == "earlier evidence" and not (workdir / "a").exists()
    assert not workdir.with_name("smoke.old").exists()
    assert said[-1] == (f"verify: the earlier evidence is back in {workdir}/; this attempt's runs and logs are in "
                        f"{workdir.with_name('smoke.failed')}/ until the next verify finishes")  # where, by name
    # A verify killed outright (no chance to put it back) leaves `.old`: the next one restores it first.
    os.replace(workdir, workdir.with_name("smoke.old"))
    (workdir / "a").mkdir(parents=True)
    (workdir / VERIFY_MARKER).write_text("")
    with pytest.raises(KeyboardInterrupt):
        verify_mod.verify("smoke", [], tmp_path, epochs=1)
    assert (workdir / "verify.json").read_text() == "earlier evidence" and not (workdir / "a").exists()


def test_runs_given_another_spec_or_other_data_are_refused_not_called_nondeterministic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: data.root's files replaced (or verify's spec.yaml edited) while run A trained,
    and verify said DIVERGED and named fill_uninitialized_memory as a possible cause."""
    root = fake_cifar_root(tmp_path / "data", n=48)
    sets = [*TINY, "data.dataset=cifar10", f"data.root={root}", "data.val_split=16", "train.batch_size=16",
            "train.epochs=1"]  # fmt: skip
    started = verify_mod._start

    def changed_before_b(change: Any) -> Any:
        def start(plan: Any, spec_file: Path, run_id: str, *args: Any, **kw: Any) -> Any:
            if run_id == "b":
                change(spec_file)
            return started(plan, spec_file, run_id, *args, **kw)
        return start

    monkeypatch.setattr(verify_mod, "_start", changed_before_b(lambda _f: fake_cifar_root(root, n=48, seed=1)))
    with pytest.raises(InvalidInput) as info:
        verify_mod.verify("smoke", sets, tmp_path / "v1", log=lambda m: None)
    said = str(info.value)
    assert said.startswith("run B: it read other data than run A (training and test images: fingerprint "), said
    assert f"the files under {root}/cifar-10-batches-py changed while verify ran; nothing was compared" in said
    assert not (tmp_path / "v1" / "verify" / "smoke" / "k").exists()  # stopped before run K

    fake_cifar_root(root, n=48)  # as run A read it
    monkeypatch.setattr(verify_mod, "_start", changed_before_b(
        lambda f: f.write_text(f.read_text().replace("description:", "description: edited", 1))))
    with pytest.raises(InvalidInput) as info:
        verify_mod.verify("smoke", sets, tmp_path / "v2", log=lambda m: None)
    assert str(info.value).startswith(f"run B: it trained under another spec than verify wrote to "
                                      f"{tmp_path / 'v2' / 'verify' / 'smoke' / 'spec.yaml'} (spec_hash ")  # fmt: skip
    assert "the file was edited while verify ran; nothing was compared" in str(info.value)


def test_a_crashed_reverify_keeps_its_logs_beside_the_earlier_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = tmp_path / "verify" / "smoke"
    workdir.mkdir(parents=True)
    (workdir / "verify.json").write_text("earlier evidence")

    def crashed(plan: Any, notes: list[str], log: Any) -> None:
        (plan.workdir / "logs").mkdir()
        (plan.workdir / "logs" / "b-twin.log").write_text("the crash")
        quoted = f"$ auditor run {plan.workdir / 'spec.yaml'} --out {plan.workdir / 'b'}"  # as its log says it
        raise verify_mod.RunFailed(f"run b (twin) failed{verify_mod.how_it_failed(-9)}; log "
                                   f"{plan.workdir / 'logs' / 'b-twin.log'}:\n{quoted}")  # fmt: skip

    monkeypatch.setattr(verify_mod, "_run_and_compare", crashed)
    with pytest.raises(verify_mod.RunFailed) as info:
        verify_mod.verify("smoke", [], tmp_path, epochs=1)
    head, tail = str(info.value).split("\n")
    assert head.startswith("run b (twin) failed: killed by SIGKILL (exit code -9: the out-of-memory killer, or kill -9)")
    named = Path(head.rsplit("log ", 1)[1].removesuffix(":"))
    assert named == workdir.with_name("smoke.failed") / "logs" / "b-twin.log" and named.read_text() == "the crash"
    # A user test: the log's own lines were quoted with paths rewritten, as the log does not say them.
    assert tail == f"$ auditor run {workdir / 'spec.yaml'} --out {workdir / 'b'}"
    assert (workdir / "verify.json").read_text() == "earlier evidence"


def test_a_file_verify_cannot_write_is_bad_input_and_the_earlier_evidence_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while verify writes its own files (the evidence into run A's record) was a traceback, exit 1."""
    workdir = tmp_path / "verify" / "smoke"
    workdir.mkdir(parents=True)
    (workdir / "verify.json").write_text("earlier evidence")

    def disk_full(plan: Any, notes: list[str], log: Any) -> None:
        record = plan.workdir / "a" / "reports" / "smoke" / "audit.json"
        raise OSError(errno.ENOSPC, "No space left on device", str(record))

    monkeypatch.setattr(verify_mod, "_run_and_compare", disk_full)
    with pytest.raises(InvalidInput) as info:
        verify_mod.verify("smoke", [], tmp_path, epochs=1)
    failed = workdir.with_name("smoke.failed")
    assert str(info.value) == (f"--out: cannot write under {tmp_path}: {failed}/a/reports/smoke/audit.json: "
                               "No space left on device")  # named where this attempt now is
    assert (workdir / "verify.json").read_text() == "earlier evidence"

    def unnamed(plan: Any, notes: list[str], log: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as os.write and fsync raise it

    monkeypatch.setattr(verify_mod, "_run_and_compare", unnamed)
    with pytest.raises(InvalidInput) as info:
        verify_mod.verify("smoke", [], tmp_path, epochs=1)
    assert str(info.value) == f"--out: cannot write under {tmp_path}: No space left on device"  # no folder misnamed

    def unreadable(plan: Any, notes: list[str], log: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")  # not a write: not said to be one

    monkeypatch.setattr(verify_mod, "_run_and_compare", unreadable)
    with pytest.raises(OSError, match="Input/output error"):
        verify_mod.verify("smoke", [], tmp_path, epochs=1)
    assert (workdir / "verify.json").read_text() == "earlier evidence"


def test_files_verify_did_not_write_in_its_work_dir_are_refused_not_deleted(tmp_path: Path) -> None:
    """A JUnit report or notes put beside the evidence were deleted by the next verify without a word."""
    workdir = tmp_path / "verify" / "smoke"
    (workdir / "logs").mkdir(parents=True)
    (workdir / "verify.json").write_text("earlier evidence")
    (workdir / "logs" / "a-reference.log").write_text("")
    (workdir / ".verify.json.x1.tmp").write_text("")  # left by a write cut short: verify's own
    (workdir / "a/reports/smoke/figures").mkdir(parents=True)
    (workdir / "a/reports/smoke/audit.json").write_text("{}")  # run A's record, as its run wrote it
    (workdir / "a/checkpoints/smoke").mkdir(parents=True)
    (workdir / "a/checkpoints/.smoke.lock").write_text("")  # the run's lock and its compile cache: verify's own
    (workdir / "a/.inductor-cache").mkdir()
    (workdir / "b/reports/other").mkdir(parents=True)
    mine = ["notes.md", "logs/junit.xml", "logs/my-notes.log", "a/reports/smoke/junit.xml",
            "a/reports/smoke/figures/mine.svg", "a/notes.md", "a/checkpoints/keep.md", "b/reports/other/n.txt"]  # fmt: skip
    for name in mine:  # a JUnit report beside run A's record is where `auditor check --junit` would put it
        (workdir / name).write_text("the user's")
    plan = verify_mod.make_plan("smoke", [], tmp_path, 1, None, None)
    listed = (r"a/checkpoints/keep\.md, a/notes\.md, a/reports/smoke/figures/mine\.svg, a/reports/smoke/junit\.xml, "
              r"b/reports/other, logs/junit\.xml, logs/my-notes\.log, notes\.md")  # fmt: skip
    with pytest.raises(InvalidInput, match=rf"smoke: holds files verify did not write \({listed}\)"):
        verify_mod._set_aside_workdir(plan, tmp_path)
    assert all((workdir / name).read_text() == "the user's" for name in mine)
    for name in mine:
        (workdir / name).unlink()
    (workdir / "b/reports/other").rmdir()
    assert verify_mod._set_aside_workdir(plan, tmp_path) == workdir.with_name("smoke.old")


@pytest.mark.parametrize("where", ["smoke", "smoke.old"])
def test_a_run_s_sheet_edited_by_hand_in_the_work_dir_is_refused_not_replaced(tmp_path: Path, where: str) -> None:
    """A user test: run A's sheet, which holds the verdict, signed off by hand, was replaced by the
    next verify without a word (`run` and `render` refuse to). Its last line (the mark) removed, beside
    a record of a version that marks every sheet, is an edit too."""
    from auditor.fileio import with_mark

    workdir = tmp_path / "verify" / "smoke"
    evidence = workdir.with_name(where)
    reports = evidence / "k/reports/smoke"
    reports.mkdir(parents=True)
    (evidence / "verify.json").write_text("earlier evidence")
    (reports / "audit.json").write_text(json.dumps({"environment": {"auditor": "0.4.0"}}))
    sheet = reports / "REPRODUCIBILITY.md"
    marked = with_mark("# smoke\n\nReproducible: bitwise\n")
    plan = verify_mod.make_plan("smoke", [], tmp_path, 1, None, None)
    for text in (marked.replace("bitwise\n", "bitwise. Signed off by QA.\n", 1),
                 "# smoke\n\nReproducible: bitwise. Signed off by QA.\n"):  # fmt: skip
        sheet.write_text(text)
        with pytest.raises(InvalidInput) as info:
            verify_mod._set_aside_workdir(plan, tmp_path)
        assert str(info.value).startswith(f"{sheet}: it ") and str(info.value).endswith(
            f"; verify replaces {evidence} when it finishes, this sheet included: move the sheet out of that folder "
            "to keep your edit")  # fmt: skip
        assert sheet.read_text() == text and (evidence / "verify.json").read_text() == "earlier evidence"
    sheet.write_text(marked)  # as the run wrote it: replaced
    assert verify_mod._set_aside_workdir(plan, tmp_path) == workdir.with_name("smoke.old")


def test_a_finished_verify_is_not_replaced_by_a_leftover_old_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after writing its evidence but before deleting `.old`: the newer evidence stays."""
    workdir = tmp_path / "verify" / "smoke"
    (workdir.with_name("smoke.old")).mkdir(parents=True)
    workdir.mkdir()
    (workdir / "verify.json").write_text("newer evidence")
    plan = verify_mod.make_plan("smoke", [], tmp_path, 1, None, None)
    assert verify_mod._set_aside_workdir(plan, tmp_path) == workdir.with_name("smoke.old")
    assert (workdir.with_name("smoke.old") / "verify.json").read_text() == "newer evidence"


def test_an_unfinished_attempt_is_not_kept_as_evidence(tmp_path: Path) -> None:
    """A first verify that failed left no verify.json: the next one starts clean, restores nothing."""
    workdir = tmp_path / "verify" / "smoke"
    (workdir / "b").mkdir(parents=True)
    (workdir / "spec.yaml").write_text("")
    (workdir / "logs").mkdir()  # as a verify before the marker left it
    plan = verify_mod.make_plan("smoke", [], tmp_path, 1, None, None)
    assert verify_mod._set_aside_workdir(plan, tmp_path) is None
    assert [p.name for p in workdir.iterdir()] == [VERIFY_MARKER]  # a fresh start, marked as verify's
    assert not workdir.with_name("smoke.old").exists()


@pytest.mark.parametrize("suffix", ["", ".old", ".failed"])
def test_a_folder_verify_did_not_make_is_never_deleted(tmp_path: Path, suffix: str) -> None:
    """verify/<name> (and its .old, .failed) may be a user's folder, e.g. under --out . in a repo."""
    plan = verify_mod.make_plan("smoke", [], tmp_path, 1, None, None)
    theirs = tmp_path / "verify" / f"smoke{suffix}"
    (theirs / "logs").mkdir(parents=True)  # names verify uses too, but not its marker
    (theirs / "a").mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match=f"{theirs}: in the way: .*holds something else; move it away"):
        verify_mod._set_aside_workdir(plan, tmp_path)
    assert (theirs / "notes.txt").read_text() == "mine"
    shutil.rmtree(theirs)
    theirs.write_text("a file of mine")
    with pytest.raises(InvalidInput, match=f"{theirs} is a file, not a folder"):
        verify_mod._set_aside_workdir(plan, tmp_path)
    assert theirs.read_text() == "a file of mine"
    theirs.unlink()
    theirs.symlink_to(tmp_path)  # a link is refused: what it points to is not verify's
    with pytest.raises(InvalidInput, match="in the way"):
        verify_mod._set_aside_workdir(plan, tmp_path)
    assert theirs.is_symlink()


def test_a_sheet_that_cannot_be_re_rendered_is_put_on_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor import render
    from auditor.fileio import with_mark
    from auditor.spec import validate_spec

    audit = json.loads((Path(__file__).parent / "fixtures" / "audit_golden.json").read_text())
    report = tmp_path / "reports" / "smoke"
    report.mkdir(parents=True)
    (report / "audit.json").write_text(json.dumps(audit))
    (report / "REPRODUCIBILITY.md").write_text(earlier := with_mark("the earlier sheet"))  # as a run wrote it

    def read_only(path: Path, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(render, "atomic_write_bytes", read_only)  # the record itself is still writable
    block = {"verdict": "bitwise", "notes": []}
    said: list[str] = []
    verify_mod.record_in_audit(report, validate_spec(audit["spec"], "fixture"), block, said.append)
    recorded = json.loads((report / "audit.json").read_text())
    assert recorded["metrics"]["reproducible"] == "bitwise"
    (note,) = recorded["verification"]["notes"]
    assert "could not re-render the sheet" in note and f"auditor render {report}" in note
    assert (report / "REPRODUCIBILITY.md").read_text() == earlier
    assert said == [f"auditor verify: warning: {note}"]


@pytest.mark.slow
def test_sigterm_sent_to_verify_alone_stops_its_run_cleanly_and_the_run_is_not_taken_over(tmp_path: Path) -> None:
    """A user test: `kill PID` of verify killed its run outright (its log cut short), and the advice
    that log ended with, `auditor run ... --out verify/<name>/a --resume`, replaced the record
    verify writes its verdict into; a run into verify's work dir is now refused."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "auditor", "verify", "smoke", *SETS, "--epochs", "30",
                             "--out", "out"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    workdir = tmp_path / "out" / "verify" / "smoke"
    staging = run_paths(workdir / "a", "smoke").ckpt_staging
    deadline = time.monotonic() + 300
    while not (staging / "last.pt.sha256").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # run A has a checkpoint: it is training
    os.kill(proc.pid, signal.SIGTERM)  # its own session: its run does not get it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "Traceback" not in err, out + err
    log = (workdir / "logs" / "a-reference.log").read_text()
    assert log.rstrip().endswith("terminated (SIGTERM): a run of `auditor verify`, which starts its runs afresh: run "
                                 "`auditor verify` again"), log[-500:]  # fmt: skip
    for run, replaced in (("a", "the record verify wrote its verdict into"), ("b", "a run verify compared with run A"),
                          ("k", "a run verify compared with run A")):
        refused = run_cli("run", "smoke", *SETS, "--out", str(workdir / run), "--resume", cwd=tmp_path)
        assert_clean_error(refused, f"--out {workdir / run}: run {run.upper()} of the work dir {workdir} of `auditor "
                                    f"verify`, which starts its runs itself, afresh: a run here would replace {replaced}; "
                                    "run `auditor verify` again, or give another --out")  # fmt: skip
    # Elsewhere in the work dir too (a review): it had run, and the next verify then refused the work
    # dir as holding files it did not write.
    mine = run_cli("run", "smoke", *SETS, "--set", "train.epochs=1", "--out", str(workdir / "mine"), cwd=tmp_path)
    assert_clean_error(mine, f"--out {workdir / 'mine'}: in the work dir {workdir} of `auditor verify`, which a verify "
                             "of it replaces whole; give an --out outside it")  # fmt: skip
    assert not (workdir / "mine").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock: verifies are not locked there")
def test_a_second_verify_of_a_name_going_on_is_refused(tmp_path: Path) -> None:
    from auditor.fileio import lock_file

    plan = verify_mod.make_plan("smoke", [], tmp_path, 1, None, None)
    plan.workdir.mkdir(parents=True)
    (plan.workdir / VERIFY_MARKER).write_text("the live verify's\n")
    lock = plan.workdir.with_name(".smoke.lock")
    holder = lock_file(lock)  # as the verify going on holds it
    assert holder is not None, "this file system cannot lock files"
    try:
        with pytest.raises(InvalidInput, match=f"{lock}: a verify of 'smoke' is going on in this --out"):
            verify_mod.verify("smoke", [], tmp_path, epochs=1, log=lambda m: None)
    finally:
        os.close(holder)
    assert [p.name for p in plan.workdir.iterdir()] == [VERIFY_MARKER]  # its work dir untouched


def test_corrupting_the_newest_checkpoint_is_on_only_at_1() -> None:
    assert [verify_mod.Faults.from_env(e).corrupt_newest for e in ({}, {ENV_CORRUPT_NEWEST: "0"},
                                                                   {ENV_CORRUPT_NEWEST: "1"})] == [False, False, True]  # fmt: skip


@pytest.mark.parametrize(("change", "said"), [
    ({}, "its criteria failed"),  # the golden record's all pass: none to name
    ({"run": {"status": "diverged"}, "training": {"status": "diverged"}, "metrics": {"status": "diverged"}},
     "its training diverged"),
    ({"measurements": {"nonfinite": ["fc.weight"]}}, "its model holds non-finite values"),
])  # fmt: skip
def test_a_run_that_exits_1_is_said_to_fail_for_the_reason_its_record_gives(  # (only called for exit 1)
    tmp_path: Path, change: dict[str, Any], said: str
) -> None:
    audit = json.loads((Path(__file__).parent / "fixtures" / "audit_golden.json").read_text())
    for section, values in change.items():
        audit[section] |= values
    record = tmp_path / "audit.json"
    assert verify_mod._failed_why(record) == " (it crashed: see its log)"
    record.write_text(json.dumps(audit))
    assert verify_mod._failed_why(record) == f" ({said}: its own sheet says FAIL; the comparison decides verify's verdict)"
    record.write_text("{not json")
    assert verify_mod._failed_why(record) == " (its audit.json could not be read: see its log)"


def test_a_run_whose_criteria_failed_is_said_to_fail_them_by_name() -> None:
    """A user test: verify said "its criteria failed at this budget" of a latency timed on a busy
    machine, at the spec's own budget; it names the criteria that failed, and what was measured."""
    audit = json.loads((Path(__file__).parent / "fixtures" / "audit_golden.json").read_text())
    for c in audit["criteria"][:2]:
        c["passed"] = False
    said = verify_mod._failed_criteria(audit)
    first, second = audit["criteria"][:2]
    assert said == (f"its criteria failed: {first['metric']} {first['expr']} (measured {first['measured']}); "
                    f"{second['metric']} {second['expr']} (measured {second['measured']})")
    for c in audit["criteria"]:
        c["passed"] = False
    assert verify_mod._failed_criteria(audit).endswith(f" and {len(audit['criteria']) - 3} more")


def test_verify_notes_a_removal_of_a_criterion_the_spec_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The review: `run` and `validate` note a `--set criteria.X=null` that removes nothing, and
    verify, whose runs are given the spec resolved, said nothing of it."""
    assert main(["verify", "smoke", "--set", "criteria.test_acc=null", "--kill-at", "0", "--out", str(tmp_path)]) == 2
    assert ("verify: note: smoke --set 'criteria.test_acc=null' removes nothing: the criteria before it hold no "
            "test_acc (they hold ") in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused (the kill) before anything was written


@pytest.mark.parametrize("inner", ["", "logs", "a"])
def test_an_out_in_another_verify_s_work_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], inner: str) -> None:
    """A user test: `verify --out verify/smoke` trained inside an earlier verify's work dir, and a
    verify of that work dir then refused its own folder as holding files it did not write."""
    workdir = tmp_path / "verify" / "smoke"
    (workdir / "logs").mkdir(parents=True)
    (workdir / "a").mkdir()
    (workdir / VERIFY_MARKER).write_text("")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = workdir / inner
    assert main(["verify", "--out", str(out), "--steps", "6"]) == 2
    assert capsys.readouterr().err == (f"auditor verify: error: --out {out}: in the work dir {workdir} of `auditor "
                                       "verify`, which a verify of it replaces whole; give an --out outside it\n")
    assert main(["run", "--out", str(out)]) == 2  # the review: `run` too, where it is not run A, B or K
    said = "run A of the work dir" if inner == "a" else f"--out {out}: in the work dir {workdir} of `auditor verify`"
    assert said in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("inner", ["a", "k", "logs"])
def test_an_out_that_links_into_a_verify_s_work_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               inner: str) -> None:  # fmt: skip
    """A user test: `run --out LINK`, LINK a symbolic link to verify's run A, replaced the record
    holding its verdict (the path named plainly was refused); `verify --out LINK` trained inside."""
    workdir = tmp_path / "verify" / "smoke"
    for sub in ("a", "k", "logs"):
        (workdir / sub).mkdir(parents=True)
    (workdir / VERIFY_MARKER).write_text("")
    link = tmp_path / "elsewhere"
    link.symlink_to(workdir / inner)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["run", "--out", str(link)]) == 2
    run_a = f"run {inner.upper()} of the work dir {workdir} of `auditor verify`"
    said = run_a if inner != "logs" else f"in the work dir {workdir} of `auditor verify`"
    assert f"--out {link} (which leads to {workdir / inner}): {said}" in capsys.readouterr().err
    assert main(["verify", "--out", str(link), "--steps", "6"]) == 2
    assert capsys.readouterr().err == (f"auditor verify: error: --out {link} (which leads to {workdir / inner}): in the "
                                       f"work dir {workdir} of `auditor verify`, which a verify of it replaces whole; "
                                       "give an --out outside it\n")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_stops_change_nothing_once_the_evidence_is_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user test: a Ctrl-C while the earlier evidence was deleted (after verify.json and run A's
    record held the new verdict) ended verify with 130 and no summary. `in_place` (the CLI's
    `Stops.complete`) is called once the new evidence is written, before the earlier is deleted."""
    workdir = tmp_path / "verify" / "smoke"
    workdir.mkdir(parents=True)
    (workdir / VERIFY_MARKER).write_text("")
    (workdir / "verify.json").write_text("earlier evidence")
    seen: list[tuple[str, bool]] = []

    def compared(plan: Any, notes: list[str], log: Any) -> tuple[dict[str, Any], Path]:
        (plan.workdir / "verify.json").write_text("new evidence")
        return {"passed": True}, plan.workdir / "a" / "reports" / "smoke"

    monkeypatch.setattr(verify_mod, "_run_and_compare", compared)
    old = workdir.with_name("smoke.old")
    outcome = verify_mod.verify("smoke", [], tmp_path, epochs=1, log=lambda m: None,
                                in_place=lambda: seen.append(((workdir / "verify.json").read_text(), old.exists())))  # fmt: skip
    assert outcome.passed and seen == [("new evidence", True)]  # called with the earlier still there to delete
    assert not old.exists()


def test_a_stop_after_verify_s_evidence_is_in_place_keeps_the_verdict_s_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The review: the CLI's part of the mend above, end to end: `cmd_verify` hands `Stops.complete`
    to verify, so a Ctrl-C from then on is said, and the verdict and its summary stand."""
    from auditor import cli

    def verified(*args: Any, in_place: Any = None, **kwargs: Any) -> Any:
        in_place()
        os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised
        time.sleep(0.05)
        return verify_mod.VerifyOutcome({"passed": True}, True, tmp_path)

    monkeypatch.setattr(verify_mod, "verify", verified)
    monkeypatch.setattr(verify_mod, "summary", lambda outcome: "verdict: bitwise (PASS)")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest may run with SIGINT ignored
    try:
        assert cli.main(["verify", "--out", str(tmp_path), "--steps", "6"]) == 0
    finally:
        signal.signal(signal.SIGINT, previous)
    out, err = capsys.readouterr()
    assert out == "verdict: bitwise (PASS)\n"
    assert "note: SIGINT came after the verification's evidence was in place; it is complete, so nothing was stopped" in err


def test_run_k_restarted_with_an_intact_best_pt_passed_over_says_so_not_no_intact_checkpoint(tmp_path: Path) -> None:
    """As `run --resume` refuses it: a damaged last.pt whose bytes read as further on than an intact best.pt."""
    from types import SimpleNamespace

    spec = load_spec("smoke", ["train.epochs=2"])
    staging = run_paths(tmp_path / "k", spec.name).ckpt_staging
    staging.mkdir(parents=True)
    checkpoint.save(staging / "best.pt", {"model": {}, "global_step": 4})
    checkpoint.save(staging / "last.pt", {"model": {}, "global_step": 9})
    checkpoint.digest_path(staging / "last.pt").write_text("0" * 64)
    plan = SimpleNamespace(workdir=tmp_path, spec=spec, faults=verify_mod.Faults())
    facts: dict[str, Any] = {"notes": []}
    assert verify_mod._prepare_resume(plan, facts) is False
    [note] = facts["notes"]
    assert note.startswith("no checkpoint to continue from (best.pt verifies but holds step 4, before the step 9 that "
                           "last.pt's bytes read as: it is not taken over them, as only last.pt's digest may be damaged) "
                           "after the kill (last.pt: sha256 mismatch") and note.endswith("): run K restarted from scratch")
    assert not staging.exists()
