"""bench/throughput.py: the two pipelines it compares train on the same thing, and its harness runs.

Correctness only; nothing here times anything.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from conftest import SUBSET, bench_module, requires_subset
from PIL import Image
from torch import nn

import auditor
from auditor.data import augment, generator, load_data, normalize
from auditor.models import create_model
from auditor.spec import DataSpec, SyntheticSize, resolved_dict, spec_hash
from auditor.train import RunFiles, fit

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
PAD = 4


@pytest.fixture(scope="module")
def bench():
    """bench/throughput.py imported as a module (bench/ is not a package)."""
    yield from bench_module("throughput.py")


@pytest.fixture
def small_gemm(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ceiling's GEMM rate from 256 x 256 products, twice per backend: the same code, in well under
    a second. At 2048 x 2048, 12 times, on one thread it took about 25 s of each throughput test."""
    real = bench.gemm_peaks
    monkeypatch.setattr(bench, "gemm_peaks", lambda device: real(device, n=256, tries=2))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One intra-op thread: tiny models gain nothing from more, and on a busy machine OpenMP
    barriers with a descheduled thread would make these tests slow. (conftest restores the thread
    count and the determinism flags the harness sets.)"""
    torch.set_num_threads(1)


def uint8_batch(n: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def augment_params(gen: torch.Generator, b: int) -> tuple[list[int], list[int], list[bool]]:
    """The (dy, dx, flip) that auditor.data.augment draws from `gen`, in its order."""
    dy = torch.randint(0, 2 * PAD + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * PAD + 1, (b,), generator=gen)
    flip = torch.randint(0, 2, (b,), generator=gen).bool()
    return dy.tolist(), dx.tolist(), flip.tolist()


def conventional_batch(x: torch.Tensor, params: tuple[list[int], list[int], list[bool]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per PIL image, what RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor + Normalize
    do once their random draws are fixed: (uint8 crops (B,C,H,W), normalised float batch)."""
    crops, normed = [], []
    for img, dy, dx, flip in zip(x.permute(0, 2, 3, 1).numpy(), *params):
        pil = TF.crop(TF.pad(Image.fromarray(img), PAD, fill=0), dy, dx, 32, 32)
        pil = TF.hflip(pil) if flip else pil
        crops.append(torch.from_numpy(np.array(pil)).permute(2, 0, 1))
        normed.append(TF.normalize(TF.to_tensor(pil), MEAN, STD))
    return torch.stack(crops), torch.stack(normed)  # the DataLoader's default collate stacks


def auditor_batch(x: torch.Tensor, seed_key: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    xb = augment(x, PAD, True, generator(*seed_key))
    return xb, normalize(xb, mean, std, channels_last=False)


def loss_and_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model = copy.deepcopy(model).train()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in model.parameters()]


def test_augment_is_torchvision_crop_and_flip_exactly() -> None:
    x, key = uint8_batch(), (7, "augment", 0, 3)
    params = augment_params(generator(*key), len(x))
    assert any(params[2]) and not all(params[2]), "the draw should mix flipped and unflipped images"
    crops, _ = conventional_batch(x, params)
    ours, _ = auditor_batch(x, key)
    assert ours.dtype == torch.uint8 and torch.equal(ours, crops)


def test_fast_and_conventional_paths_give_the_same_loss_and_grads() -> None:
    """Same batch, same crop/flip draws: the model sees the same input and computes the same loss.

    Both normalisations are x/255, then -mean, then /std in float32, elementwise in the same
    order, so today the inputs (and therefore loss and grads) are bitwise equal. The check is
    allclose so that a future fused normalisation (x*a+b, a different rounding) still passes;
    a crop/flip or channel mix-up would change the loss far beyond these tolerances.
    """
    x, key = uint8_batch(), (7, "augment", 0, 3)
    _, conv = conventional_batch(x, augment_params(generator(*key), len(x)))
    _, fast = auditor_batch(x, key)
    assert fast.shape == conv.shape == (len(x), 3, 32, 32)
    assert torch.allclose(fast, conv, rtol=0, atol=1e-6)
    y = torch.arange(len(x)) % 10
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, norm="batch")
    la, ga = loss_and_grads(model, conv, y)
    lb, gb = loss_and_grads(model, fast, y)
    assert torch.allclose(la, lb, rtol=1e-5, atol=1e-6), (la, lb)
    for a, b in zip(ga, gb, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bench_transform_is_the_conventional_one(bench) -> None:
    from torchvision import transforms as T

    tf = bench.conventional_transform(MEAN, STD)
    kinds = [type(t) for t in tf.transforms]
    assert kinds == [T.RandomCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    assert tf.transforms[0].padding == PAD and tf.transforms[0].size == (32, 32)


@pytest.fixture(scope="module")
def tiny(bench):
    """A tiny synthetic set (48 images: 3 steps of 16)."""
    spec = DataSpec(dataset="synthetic", val_split=0, synthetic=SyntheticSize(train=48, test=10))
    data = load_data(spec, 0)
    return spec, data


@pytest.mark.parametrize("workers", [0, 1])
def test_conventional_pipeline_trains_two_steps(bench, tiny, workers: int) -> None:
    spec, data = tiny
    p = bench.ConventionalPipeline("resnet8", data, spec, torch.device("cpu"), 16, workers)
    before = [t.detach().clone() for t in p.model.parameters()]
    ips, busy = bench.timed_run(p, 2, torch.device("cpu"))
    assert ips > 0 and 0 <= busy <= 1 and len(p.losses) == 2 + p.repeat_warmup
    assert all(np.isfinite(p.losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, p.model.parameters()))


def test_auditor_pipeline_trains_two_steps(bench, tiny, tmp_path: Path) -> None:
    spec, data = tiny
    p = bench.AuditorPipeline("resnet8", data, spec, torch.device("cpu"), 16, ckpt_dir=tmp_path)
    assert p.spec.determinism == bench.Determinism() and p.spec.train.amp == "off"  # the spec defaults
    assert p.spec.train.channels_last == bench.TrainSpec().channels_last and p.spec.train.compile == "off"
    assert p.loop.spe == 3 and torch.utils.deterministic.fill_uninitialized_memory is False
    assert bench.timed_run(p, 2, torch.device("cpu"))[0] > 0
    assert len(p.step_losses) == 2 and torch.are_deterministic_algorithms_enabled()
    assert p.run(2) == 16 + 16 and p.loop.epoch == 1  # crosses the epoch boundary into a new epoch


def test_auditor_pipeline_steps_are_those_of_auditor_run(bench, tiny, tmp_path: Path) -> None:
    """The bench times `fit`'s own loop: the same losses, bit for bit, over an epoch boundary."""
    spec, data = tiny
    p = bench.AuditorPipeline("resnet8", data, spec, torch.device("cpu"), 16, ckpt_dir=tmp_path / "b")
    p.begin()
    assert p.run(4) == 48 + 16 and p.run(2) == 32  # 3 steps per epoch: 4 + 2 steps end epoch 2
    run_spec = p.spec.model_copy(update={"train": p.spec.train.model_copy(update={"epochs": 2})})
    model = bench.init_model("resnet8", torch.device("cpu"))
    files = RunFiles(tmp_path / "fit", resolved_dict(run_spec), spec_hash(run_spec))
    result = fit(run_spec.train, spec, run_spec.seed, model, data, torch.device("cpu"), files, log=lambda m: None)
    assert len(result.step_losses) == len(p.step_losses) == 6
    assert torch.equal(torch.tensor(result.step_losses), torch.tensor(p.step_losses))
    fitted, timed = model.state_dict(), p.loop.model.state_dict()
    assert all(torch.equal(fitted[k], timed[k]) for k in fitted)


def test_both_pipelines_start_from_the_same_weights(bench, tiny, tmp_path: Path) -> None:
    spec, data = tiny
    a = bench.ConventionalPipeline("resnet8", data, spec, torch.device("cpu"), 16, 0)
    b = bench.AuditorPipeline("resnet8", data, spec, torch.device("cpu"), 16, ckpt_dir=tmp_path)
    sa, sb = a.model.state_dict(), b.loop.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    oa, ob = a.opt.param_groups[0], b.loop.opt.param_groups[0]
    assert (oa["lr"], oa["momentum"], oa["weight_decay"]) == (ob["lr"], ob["momentum"], ob["weight_decay"])


@pytest.mark.usefixtures("small_gemm")
def test_throughput_section_runs_and_reports(bench, tiny, tmp_path: Path) -> None:
    spec, data = tiny
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=2, repeats=1, warmup=1,
                    workers=0, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, det_steps=2,
                    retries=0, log=lambda m: None)  # fmt: skip
    res = bench.throughput(s, [bench.DEFAULT_CONFIG], check_determinism=True)
    rows = {r["label"]: r for r in res["rows"]}
    assert set(rows) == {"(a) conventional", bench.DEFAULT_CONFIG.label}
    assert all(r["images_per_s"]["median"] > 0 and r["steps"] == 2 for r in rows.values())
    if platform.libc_ver()[0] == "glibc":  # each pipeline in its own process: (b)'s allocator setting stays there
        assert rows["(a) conventional"]["large_blocks_from_heap"] is False  # glibc's defaults
        assert rows[bench.DEFAULT_CONFIG.label]["large_blocks_from_heap"] is True  # train.host_memory: retain
    det = rows[bench.DEFAULT_CONFIG.label]["determinism"]  # two in-process twin runs, bit for bit
    assert det["bitwise"] and det["tensors"] > 0 and len(det["losses_a"]) == 2, det
    text = "\n".join(bench.throughput_table(res))
    assert "ratio to (a)" in text and "yes (2 steps" in text
    c = res["ceiling"]  # FLOPs per image x GEMM rate: positive, and the table shows each row's share
    assert c["gflop_per_image"] > 0 and c["matmul_peak_gflops"] > 0 and c["ceiling_images_per_s"] > 0
    assert len(c["matmul_peak_measured_gflops"]) == 2  # before and after the repeats; the best is used
    assert c["matmul_peak_gflops"] == max(c["matmul_peak_measured_gflops"])
    assert bench.ceiling_exceeded(res) is None or "Not a ceiling here" in "\n".join(bench.ceiling_lines(res))
    beaten = copy.deepcopy(res)  # a GEMM rate the pipelines beat (1 thread on some CPUs) is no ceiling
    fastest = max(r["images_per_s"]["median"] for r in rows.values())  # both rows are fp32
    beaten["ceiling"]["ceiling_images_per_s"] = fastest / 1.3
    assert bench.ceiling_exceeded(beaten) == pytest.approx(1.3)
    assert "**Not a ceiling here:** an fp32 configuration reached 130% of it" in "\n".join(bench.ceiling_lines(beaten))
    assert not any("needs" in line for line in bench._throughput_targets(beaten))
    assert any("(from 1 repeat of 2 steps: indicative only)" in line for line in bench._throughput_targets(res))
    off = {**rows[bench.DEFAULT_CONFIG.label], "label": "determinism off"}
    on_gpu = bench._throughput_targets({**res, "device": "cuda", "rows": [*res["rows"], off]})
    assert "target is set for the CPU; on CUDA reported, not judged" in on_gpu[0] and "1.5x" in on_gpu[0]
    assert "determinism overhead" in on_gpu[-1] and "the <= 5% target is set for the CPU" in on_gpu[-1]
    assert not any(" met" in line or "needs" in line for line in on_gpu)  # the CPU's targets judge no GPU
    as_cpu0 = [ln.replace("cpu:0,", "cpu,") for ln in bench._throughput_targets({**res, "device": "cpu:0"})]
    assert as_cpu0 == bench._throughput_targets(res)  # `--device cpu:0` is judged as the CPU
    old_report = {k: v for k, v in res.items() if k != "ceiling"}  # saved before ceilings existed
    for table in (bench.throughput_table(res), bench.throughput_table(old_report)):
        assert len({line.count("|") for line in table}) == 1  # every row has every column
    b_row = rows[bench.DEFAULT_CONFIG.label]
    bf16 = {**b_row, "label": "amp bf16", "config": {**b_row["config"], "amp": "bf16"}}
    shares = [ln.split("|")[10].strip() for ln in bench.throughput_table({**res, "rows": [b_row, bf16]})[2:]]
    assert shares[0].endswith("%") and shares[1] == "n/a (bf16, not fp32)"  # an fp32 ceiling says nothing of bf16
    # The fastest deterministic row is named with the same caveats as the verdicts: disturbed, few repeats.
    fast = {**b_row, "label": "channels_last", "ratio_to_a": b_row["ratio_to_a"] * 1.2, "ratio_to_default_b": 1.2,
            "foreign_cpu": [0.5]}  # fmt: skip
    quiet_rows = [{**r, "foreign_cpu": [0.0]} for r in res["rows"]]  # the machine as it was is not this test's
    line = next(ln for ln in bench._throughput_targets({**res, "rows": [*quiet_rows, fast], "quiet": 0.05})
                if "fastest configuration" in ln)  # fmt: skip
    assert line.endswith("1.20x the default (other processes used up to 50% of the CPU meanwhile: indicative only) "
                         "(from 1 repeat of 2 steps: indicative only)"), line  # fmt: skip
    report = {"machine": bench.machine_info(torch.device("cpu")), "device": "cpu",
              "command": "python bench/throughput.py", "throughput": [res], "loadavg_end": bench.loadavg()}
    md = bench.results_markdown(report)
    no_gpu, cpu_only = "No GPU was available: CUDA figures were not measured", "this run benchmarked the CPU"
    assert (no_gpu in md, cpu_only in md) == (not torch.cuda.is_available(), torch.cuda.is_available())
    with_gpu = {**report, "machine": {**report["machine"], "cuda_available": True}}
    assert cpu_only in bench.results_markdown(with_gpu) and no_gpu not in bench.results_markdown(with_gpu)
    assert "## Against the targets" in md and "vs conventional, resnet8" in md
    assert f"- Code: auditor {auditor.__version__}, commit " in md  # which code the figures measured
    saved = json.loads(json.dumps(report, default=str))  # as --json writes it and --render-json reads it
    assert bench.results_markdown(saved) == md
    one_cpu = {**report, "machine": {**report["machine"], "cpu_affinity": 1, "cpu_quota": None, "torch_threads": 1},
               "throughput": [{**res, "torch_threads": 2}]}  # fmt: skip
    section = bench.results_markdown(one_cpu).split("### Training throughput", 1)[1]
    assert section.split("\n")[2].startswith("**Warning:** torch runs 2 CPU threads but this process's CPU affinity")
    enough = {**one_cpu, "machine": {**one_cpu["machine"], "cpu_affinity": 2}}
    assert "**Warning:**" not in bench.results_markdown(enough).split("### Training throughput", 1)[1]


def test_pool_ceilings_uses_the_runs_best_gemm_rate_per_device_and_threads(bench) -> None:
    def section(threads: int, peaks: list[float] | None, single: float | None = None) -> dict:
        c = {"gflop_per_image": 0.5, "matmul_peak_gflops": single, "ceiling_images_per_s": 0.0}
        if peaks is not None:
            c = {"gflop_per_image": 0.5}
            for peak in peaks:  # one measurement before the repeats, one after; BLAS slower than oneDNN
                c = bench.with_peaks(c, {"BLAS matmul": peak / 2, "oneDNN 1x1 convolution": peak})
        return {"device": "cpu", "torch_threads": threads, "ceiling": c}

    # a slow moment (120) in one section; the old single-value form; another thread count; no ceiling
    slow, fast, legacy = section(2, [120.0, 130.0]), section(2, [180.0, 175.0]), section(2, None, 150.0)
    one_thread, none = section(1, [90.0]), {"device": "cpu", "torch_threads": 2}
    bench.pool_ceilings([slow, fast, legacy, one_thread, none])
    for res in (slow, fast, legacy):
        assert res["ceiling"]["matmul_peak_gflops"] == 180.0
        assert res["ceiling"]["ceiling_images_per_s"] == pytest.approx(360.0)
    assert slow["ceiling"]["matmul_peak_measured_gflops"] == [120.0, 130.0]  # its own figures are kept
    assert legacy["ceiling"]["matmul_peak_measured_gflops"] == [150.0]
    assert one_thread["ceiling"]["matmul_peak_gflops"] == 90.0 and "ceiling" not in none
    line = bench.peak_provenance(slow["ceiling"])
    assert "measured 120, 130 GFLOP/s before and after" in line and "pooled over" in line
    assert "best per backend: BLAS matmul 65, oneDNN 1x1 convolution 130 GFLOP/s" in line  # kept by pooling
    assert "pooled" not in bench.peak_provenance(bench.with_peaks({"gflop_per_image": 0.5}, {"BLAS matmul": 99.0}))
    sections = [slow, fast, legacy, one_thread, none]
    again = copy.deepcopy(sections)  # pooling twice (a saved report re-rendered) changes nothing
    bench.pool_ceilings(again)
    assert again == sections
    assert "before its repeats" in bench.peak_provenance(legacy["ceiling"])


def test_ceiling_text_names_tf32_on_cuda_when_recorded(bench) -> None:
    def text(device: str, tf32: dict | None = None) -> str:
        a = {"label": bench.ConventionalPipeline.label, "images_per_s": {"median": 100.0}}
        res = {"device": device, "rows": [a], "ceiling": bench.ceiling_record(0.5, [200.0], 200.0)}
        return "\n".join(bench.ceiling_lines({**res, "tf32": tf32} if tf32 is not None else res))

    cpu = text("cpu", {"cudnn": True, "matmul": False})
    assert "about 400 images/s (4.00x the conventional pipeline)" in cpu and "TF32" not in cpu
    cuda = text("cuda:0", {"cudnn": True, "matmul": False})
    assert cuda.startswith(cpu) and "cuDNN ran fp32 convolutions in TF32" in cuda
    assert "TF32" not in text("cuda:0", {"cudnn": True, "matmul": True})  # the GEMM ran in TF32 too
    assert "TF32" not in text("cuda:0", {"cudnn": False, "matmul": False}) + text("cuda:0")  # strict / unrecorded


def test_select_rows_keeps_the_default_and_names_unknown_rows(bench) -> None:
    rows = bench.matrix_configs(torch.device("cpu"), diagnostics=False)
    assert bench.select_rows(rows, None) == rows
    picked = bench.select_rows(rows, ["determinism off"])
    assert [r.label for r in picked] == [bench.DEFAULT_CONFIG.label, "determinism off"]
    with pytest.raises(ValueError, match=r"--rows: unknown row 'amp fp16'; rows: .*'determinism off'"):
        bench.select_rows(rows, ["amp fp16"])  # a CUDA-only row


def test_cuda_matrix_adds_fp16_and_the_fast_presets_pair(bench) -> None:
    cpu = bench.matrix_configs(torch.device("cpu"), diagnostics=False)
    cuda = bench.matrix_configs(torch.device("cuda"), diagnostics=False)  # only the type is read: no GPU needed
    added = [r for r in cuda if r not in cpu]
    assert [(r.label, r.amp, r.compile) for r in added] == [("amp fp16", "fp16", "off"),
                                                            (bench.FAST_PAIR, "bf16", "default")]  # fmt: skip
    assert all(r.channels_last and r.determinism for r in added)  # otherwise the spec defaults


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--device", "cuda"], "--device cuda: no CUDA device here; nothing measured"),
     (["--device", "gpu"], "--device gpu: not a device (cpu, cuda or cuda:N)"),
     (["--device", "meta"], "--device meta: only cpu and cuda are benchmarked"),
     (["--device", "cpu:3"], "--device cpu:3: the CPU takes no index (cpu, cuda or cuda:N; --threads sets the cores used)"),
     (["--rows", "determinism off"], "--rows is for --matrix: add --matrix (or --all)"),
     (["--diagnostics"], "--diagnostics is for --matrix: add --matrix"),
     (["--overhead-epochs", "2"], "--overhead-epochs is for --overhead: add --overhead"),
     (["--latency-rounds", "3"], "--latency-rounds is for --latency-check: add --latency-check"),
     (["--overhead-epochs", "8"], "--overhead-epochs is for --overhead: add --overhead"),  # the default, written
     (["--latency-rounds=5"], "--latency-rounds is for --latency-check: add --latency-check"),
     (["--det-steps", "3"], "--det-steps is for --matrix: add --matrix"),
     (["--matrix", "--det-steps", "1"], "argument --det-steps: invalid int >= 2 value: '1'"),
     (["--overhead-e", "2"], "unrecognized arguments: --overhead-e"),  # no abbreviations
     (["--write-results", "--append-results"], "--write-results replaces RESULTS.md and --append-results appends"),
     (["--render-json", "x.json", "--matrix"], "--render-json measures nothing and takes only --write-results or --append-results (and --results); drop"),
     (["--render-json", "/nonexistent.json", "--append-results"], "--render-json /nonexistent.json: No such file or directory"),
     (["--render-json", "x.json"], "--render-json writes RESULTS.md: add --write-results to replace it, or --append-results"),
     (["--synthetic", "--data-root", "/tmp"], "--synthetic and --data-root name different data: give one"),
     (["--threads", "1", "1"], "--threads: a value is listed twice (1 1)"),
     (["--json", "/nonexistent/dir/x.json"], "--json /nonexistent/dir/x.json: /nonexistent/dir is not a writable folder"),
     (["--json", "/tmp"], "--json /tmp: /tmp is a folder"),
     # an unset variable in a script: Path('') is the current folder
     (["--json", ""], "argument --json: the path is empty (an unset variable?)"),
     (["--data-root", ""], "argument --data-root: the path is empty (an unset variable?)"),
     (["--render-json", "", "--write-results"], "argument --render-json: the path is empty (an unset variable?)"),
     # os.access says yes to root, and to /proc, where the report would have failed after measuring
     (["--json", "/proc/x.json"], "--json /proc/x.json: no file can be made in /proc (No such file or directory; checked now"),
     (["--render-json", "x.json", "--model", "resnet18"], "--render-json measures nothing and takes only --write-results or --append-results (and --results); drop --model"),
     (["--render-json", "x.json", "--all"], "--render-json measures nothing and takes only --write-results or --append-results (and --results); drop --all"),
     (["--max-repeat-s", "nan"], "argument --max-repeat-s: invalid float > 0 value: 'nan'"),
     (["--wait-quiet-s", "inf"], "argument --wait-quiet-s: invalid float >= 0 value: 'inf'"),
     (["--warmup", "0"], "argument --warmup: invalid int >= 1 value: '0'"),
     (["--matrix", "--rows", "bogus"], "--rows: unknown row 'bogus'"),
     (["--data-root", "/nonexistent"], "--data-root /nonexistent: does not exist; set --data-root to the folder that holds cifar-10-batches-py/"),
     (["--data-root", "~auditor-no-such-user/x"], "argument --data-root: ~auditor-no-such-user/x: ~auditor-no-such-user names no home"),
     (["--model", "bogus"], "argument --model: invalid choice: 'bogus'"),
     (["--steps", "0"], "argument --steps: invalid int >= 1 value: '0'"),
     (["--repeats", "-1"], "argument --repeats: invalid int >= 1 value: '-1'"),
     (["--threads", "0"], "argument --threads: invalid int >= 1 value: '0'"),
     (["--batch-size", "0"], "argument --batch-size: invalid int >= 1 value: '0'"),
     (["--workers", "-1"], "argument --workers: invalid int >= 0 value: '-1'"),
     (["--max-repeat-s", "0"], "argument --max-repeat-s: invalid float > 0 value: '0'"),
     (["--quiet-threshold", "1"], "argument --quiet-threshold: invalid share of the CPU in [0, 1) value: '1'"),
     (["--json", "~auditor-no-such-user/x.json"], "argument --json: ~auditor-no-such-user/x.json: ~auditor-no-such-user names no home")],
)
def test_bad_bench_arguments_exit_2_before_measuring(args: list[str], message: str) -> None:
    if args[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("checks the refusal on a machine without CUDA")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), *args], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "throughput.py: error: " in proc.stderr  # the bench's own refusals are said as argparse says its own
    assert "machine:" not in proc.stdout  # stopped before anything was measured


def test_a_data_root_given_as_the_batches_folder_itself_is_told_its_parent(tmp_path: Path) -> None:
    """A user test: the bench said only "no cifar-10-batches-py/ folder there", where `auditor` names the folder to give."""
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--data-root", str(batches)], check=False,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and (f"--data-root {batches}: is the cifar-10-batches-py/ folder itself; set --data-root "
                                     f"to the folder that holds it, {tmp_path}") in proc.stderr, proc.stderr  # fmt: skip


def _pipeline_processes(pid: int) -> list[Any]:
    """The pipelines' processes under `pid`, and the DataLoader workers they forked (same command line)."""
    import psutil

    try:
        processes = psutil.Process(pid).children(recursive=True)
    except psutil.Error:  # it ended
        return []
    return [c for c in processes if "--pipeline-child" in _command_line(c)]


def _command_line(process: Any) -> str:
    """A psutil process's command line; '' for one that ended, or a zombie, meanwhile (it runs nothing)."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _still_running(p: Any) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _parent_pid(process: Any) -> int | None:
    """A psutil process's parent pid; None where it has exited meanwhile (a DataLoader worker can)."""
    import psutil

    try:
        return process.ppid()
    except psutil.NoSuchProcess:
        return None


@pytest.fixture
def short_tmp() -> Any:
    """A temporary folder of a short path. Under pytest's (about 60 characters) the socket a DataLoader
    worker passes batches through would not fit, and the bench would make its pipelines' folders in /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="t-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("stop", "code", "said"), [("term", 143, "terminated (SIGTERM)"), ("ctrl-c", 130, "interrupted")])
def test_a_stopped_bench_leaves_no_folder_or_process(short_tmp: Path, stop: str, code: int, said: str) -> None:
    """The user test: stopped while (a)'s DataLoader workers ran, the bench had killed each pipeline's
    process at once, so its workers outlived the bench (reparented to init) and its multiprocessing
    folder (pymp-*) stayed in the temporary folder; a terminal's Ctrl-C had reached the children too."""
    import psutil

    env = {**os.environ, "TMPDIR": str(short_tmp), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO / "bench" / "throughput.py"), "--synthetic", "--model", "resnet20", "--steps", "200"]
    # Not inherited as ignored: a shell without job control starts a background job (a CI step, `cmd &`)
    # with Ctrl-C ignored, and the bench would then ignore the test's Ctrl-C too.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)  # fmt: skip  # a process group of its own, as a terminal gives
    finally:
        signal.signal(signal.SIGINT, previous)
    seen: list[Any] = []
    try:
        for line in proc.stdout:  # the temporary folder exists; the pipelines' processes start after this line
            if "building pipelines" in line:
                break
        deadline = time.monotonic() + 120
        while len(seen) < 3 and time.monotonic() < deadline:  # (a) and (b), and a worker of (a)'s DataLoader
            time.sleep(0.1)
            seen = _pipeline_processes(proc.pid)
        children = [c for c in seen if _parent_pid(c) == proc.pid]
        assert len(children) == 2 and len(seen) >= 3 and list(short_tmp.glob("auditor-bench-*")), "nothing to clean up yet"
        sessions = {os.getsid(c.pid) for c in children}
        if stop == "term":
            proc.send_signal(signal.SIGTERM)  # to the bench alone
        else:
            os.killpg(proc.pid, signal.SIGINT)  # to its process group, as a terminal's Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:  # whatever failed, nothing of this test outlives it (psutil checks that a pid is still the one seen)
        proc.kill()
        proc.wait()  # reaped: no zombie left among this process's children for a later test to read
        for p in seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
    assert proc.returncode == code and f"{said}: no results written" in err, err
    # No traceback of the bench's own; a DataLoader worker's queue feeder thread, cut off mid-send by
    # the stop, may print one (multiprocessing's, in the worker: left in the session's note). Two
    # workers' tracebacks can interleave line by line, so each frame is read alone.
    frames = [line for line in err.splitlines() if line.lstrip().startswith('File "')]
    assert all(f"{os.sep}multiprocessing{os.sep}" in f or f"{os.sep}threading.py" in f for f in frames), err
    assert "AF_UNIX path too long" not in err and "too long a path" not in err
    assert "Fatal Python error" not in err
    assert not list(short_tmp.iterdir())  # its folders and the pipelines' multiprocessing folders
    assert not [p for p in seen if _still_running(p)]
    assert sessions == {c.pid for c in children}  # each in a session of its own: a terminal's Ctrl-C reaches the bench alone


@pytest.mark.slow
def test_under_a_long_temporary_folder_the_pipelines_make_their_folders_in_a_short_one(tmp_path: Path) -> None:
    """CI found it: under a TMPDIR of 62 characters the socket a DataLoader worker passes batches through
    had a path longer than a Unix socket's may be. No batch was passed ("AF_UNIX path too long", in the
    workers) and the bench waited for ever."""
    long_tmp = tmp_path / ("t" * 60)
    long_tmp.mkdir()
    before = set(Path("/tmp").glob("auditor-bench-child-*"))
    cmd = [sys.executable, str(REPO / "bench" / "throughput.py"), "--synthetic", "--model", "resnet8", "--steps", "2",
           "--repeats", "1", "--warmup", "1", "--workers", "1", "--retries", "0", "--wait-quiet-s", "0"]  # fmt: skip
    try:  # not waiting for a quiet machine: a busy one had taken the bench past the timeout
        proc = subprocess.run(cmd, env={**os.environ, "TMPDIR": str(long_tmp)}, check=False, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    finally:  # what the bench left (a bench killed by the timeout leaves its pipelines' folders), removed
        left = set(Path("/tmp").glob("auditor-bench-child-*")) - before
        for folder in left:
            shutil.rmtree(folder, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert f"note: the temporary folder {long_tmp} is too long a path" in proc.stderr
    assert "make their folders in /tmp instead" in proc.stderr
    assert "AF_UNIX" not in proc.stderr and "Traceback" not in proc.stderr
    assert "| (a) conventional | " in proc.stdout
    assert not left and not list(long_tmp.glob("auditor-bench-child-*"))


def test_the_pipelines_folder_base_is_the_temporary_folder_where_its_sockets_fit(bench, monkeypatch) -> None:
    monkeypatch.setattr(bench, "_cannot_create_in", lambda folder: None)
    monkeypatch.setattr(bench.os.path, "isdir", lambda path: True)
    monkeypatch.setattr(tempfile, "tempdir", "/tmp/short")
    assert bench.child_temp_base() == (None, None)
    longest = "/" + "x" * (bench.SOCKET_PATH_MAX - bench.CHILD_SOCKET_TAIL - 1)
    monkeypatch.setattr(tempfile, "tempdir", longest)
    assert bench.child_temp_base() == (None, None)  # the longest that fits
    monkeypatch.setattr(tempfile, "tempdir", longest + "x")
    base, note = bench.child_temp_base()
    assert base == "/tmp" and note.startswith(f"the temporary folder {longest}x is too long a path for the socket")
    assert f"(a TMPDIR of at most {len(longest)} bytes leaves room for it)" in note
    monkeypatch.setattr(bench, "_cannot_create_in", lambda folder: None if str(folder) == "/var/tmp" else "Read-only file system")
    assert bench.child_temp_base()[0] == "/var/tmp"  # root passes os.access on a read-only file system: a file is made
    monkeypatch.setattr(bench, "_cannot_create_in", lambda folder: "Read-only file system")
    with pytest.raises(ValueError, match=f"set TMPDIR to a writable folder of at most {len(longest)} bytes"):
        bench.child_temp_base()


def test_a_temporary_folder_too_long_for_the_sockets_with_no_other_is_refused(bench, monkeypatch, capsys) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/" + "x" * 200)
    monkeypatch.setattr(bench, "_cannot_create_in", lambda folder: "Read-only file system")
    assert bench.pipelines_temp_base(0) == (None, None)  # no DataLoader worker: no socket to fit
    assert bench.main(["--synthetic"]) == 2
    err = capsys.readouterr().err
    assert "error: the temporary folder /xxx" in err and "neither /tmp nor /var/tmp can be written" in err
    assert err.rstrip().endswith("nothing measured")


def test_a_verdict_from_repeats_kept_on_a_busy_machine_is_not_given(bench) -> None:
    quiet, busy = {"foreign_cpu": [0.02, 0.05]}, {"foreign_cpu": [0.02, 0.35]}
    assert bench._busy(quiet, None) == 0.05 and bench._busy(quiet, busy) == 0.35
    assert bench._verdict(True, 0.05, 0.1) == "met" and bench._verdict(False) == "NOT met"
    assert bench._verdict(True, 0.35, 0.1) == ("not judged: other processes used up to 35% of the CPU meanwhile "
                                               "(as measured: met); rerun on a quiet machine")  # fmt: skip
    # The overhead and latency lines are judged alike (they had said met / NOT met on any machine).
    over = {"name": "subset", "epochs": 8, "overhead_in_process": 0.22, "overhead_whole_command": 0.3, "foreign_cpu": 0.65}
    lat = {"model": "resnet8", "device": "cpu", "relative_diff": -0.894, "foreign_cpu": [0.63, 0.67]}
    lines = bench.targets_lines({"overhead": [over], "latency": [lat], "quiet": 0.05})
    assert lines[0].endswith("(target <= 3%, in-process): not judged: other processes used up to 65% of the CPU "
                             "meanwhile (as measured: NOT met); rerun on a quiet machine")  # fmt: skip
    assert "-89.4% (target within 10%): not judged: other processes used up to 67%" in lines[1]
    over["foreign_cpu"], lat["foreign_cpu"] = 0.01, [0.01]
    lines = bench.targets_lines({"overhead": [over], "latency": [lat]})  # a report saved before "quiet": 5%
    assert lines[0].endswith("in-process): NOT met") and lines[1].endswith(": NOT met")
    nan = float("nan")  # a share /proc/stat could not give: unknown, whichever place it takes in the list
    assert bench._busy({"foreign_cpu": [0.01, nan]}) != bench._busy({"foreign_cpu": [0.01]})
    assert math.isnan(bench._busy({"foreign_cpu": [nan, 0.01]})) and math.isnan(bench._busy({"foreign_cpu": [0.01, nan]}))
    assert bench._verdict(True, nan, 0.05) == ("met (other processes' share of the CPU could not be read: whether the "
                                               "machine was quiet is unknown)")  # fmt: skip
    lat["auditor_rounds_ms"] = [1.0]  # one round: no spread to judge it by
    assert bench.targets_lines({"latency": [lat]})[0].endswith(": NOT met (from 1 round: its spread is unmeasured, "
                                                               "indicative only)")  # fmt: skip


def test_the_recorded_command_names_the_subset_folder_chosen(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_CIFAR10_SUBSET", "/data/my subset")
    assert bench._recorded_command(["--steps", "2"]) == "AUDITOR_CIFAR10_SUBSET='/data/my subset' python bench/throughput.py --steps 2"
    # A user test: recorded beside --synthetic (and --data-root), where it chose nothing.
    assert bench._recorded_command(["--synthetic"]) == "python bench/throughput.py --synthetic"
    assert bench._recorded_command(["--data-root=/d"]) == "python bench/throughput.py --data-root=/d"
    monkeypatch.delenv("AUDITOR_CIFAR10_SUBSET")
    assert bench._recorded_command([]) == "python bench/throughput.py"


def test_the_recorded_command_makes_paths_absolute_where_it_ran_outside_the_root(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: run from /tmp with `--data-root ../work/...`, the command recorded to rerun from the
    repository's root named a folder the root does not hold."""
    given = ["--data-root", "../d", "--steps", "1", "--json", "r.json", "--render-json", "a.json", "/x/b.json",
             "--write-results", "--results=m.md", "--threads", "2"]  # fmt: skip
    monkeypatch.chdir(REPO)
    assert bench._recorded_command(given) == "python bench/throughput.py " + shlex.join(given)  # as given: they read so
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDITOR_CIFAR10_SUBSET", "sub")
    assert bench._recorded_command(given) == "python bench/throughput.py " + shlex.join([  # --data-root chose the data
        "--data-root", str(tmp_path.parent / "d"), "--steps", "1", "--json", str(tmp_path / "r.json"), "--render-json",
        str(tmp_path / "a.json"), "/x/b.json", "--write-results", f"--results={tmp_path}/m.md", "--threads", "2"])


def test_render_json_writes_a_run_once(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user test: a report and a copy of it, or a report appended to a file that holds its run, gave two
    identical run sections."""
    one, copy_of_it, results = tmp_path / "r.json", tmp_path / "copy.json", tmp_path / "R.md"
    one.write_text(json.dumps(_saved_report(bench)))
    shutil.copy(one, copy_of_it)
    assert bench.main(["--render-json", str(one), str(copy_of_it), "--results", str(results), "--write-results"]) == 2
    assert (f"--render-json {copy_of_it}: the same report as {one} (a copy of it): its run would be written twice; "
            "R.md was left as it was") in capsys.readouterr().err and not results.exists()
    assert bench.main(["--render-json", str(one), "--results", str(results), "--write-results"]) == 0
    written = results.read_text()
    assert bench.main(["--render-json", str(copy_of_it), "--results", str(results), "--append-results"]) == 2
    assert f"its run's section is in {results} already: appending it would write it twice" in capsys.readouterr().err
    assert results.read_text() == written


def test_render_json_of_an_incomplete_report_exits_2_and_leaves_results_alone(tmp_path: Path) -> None:
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps({"machine": {}, "command": "x"}))
    results = REPO / "bench" / "RESULTS.md"
    before = results.read_bytes()
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--render-json", str(saved),
                           "--append-results"], check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and f"--render-json {saved}: the report is not complete (missing " in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and results.read_bytes() == before


def test_a_subset_variable_set_to_nothing_is_refused_not_read_as_unset() -> None:
    env = {**os.environ, "AUDITOR_CIFAR10_SUBSET": ""}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--steps", "1"], env=env,
                          check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "AUDITOR_CIFAR10_SUBSET is set but empty (an unset variable?)" in proc.stderr
    assert "Traceback" not in proc.stderr and "machine:" not in proc.stdout


def test_a_subset_folder_named_in_the_environment_that_is_not_there_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "AUDITOR_CIFAR10_SUBSET": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--steps", "1"], env=env,
                          check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and f"AUDITOR_CIFAR10_SUBSET={tmp_path / 'none'}: no cifar-10-batches-py/" in proc.stderr
    assert "machine:" not in proc.stdout  # not silently benchmarked on synthetic data


def test_a_subset_folder_named_in_the_environment_with_a_tilde_is_found(tmp_path: Path, monkeypatch) -> None:
    """A user test: `AUDITOR_CIFAR10_SUBSET='~/subset'` (quoted in a CI file) was refused as not there."""
    (tmp_path / "subset" / "cifar-10-batches-py").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AUDITOR_CIFAR10_SUBSET", "~/subset")
    for bench in bench_module("throughput.py"):
        assert bench.SUBSET == tmp_path / "subset"


def test_damaged_data_is_bad_input_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-batches-py").mkdir()  # no batch files in it
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--data-root", str(tmp_path),
                           "--model", "resnet8", "--steps", "1", "--repeats", "1"],
                          check=False, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "is missing test_batch" in proc.stderr and "no results written" in proc.stderr


def test_a_row_timed_once_is_named_in_its_sections_header(bench) -> None:
    row = lambda label, n: {"label": label, "images_per_s": {"n": n}}
    res = {"repeats": 3, "max_repeat_s": 30.0, "rows": [row("(a) conventional", 3), row("amp bf16", 1),
                                                        {"label": "amp fp16", "failed": "fp16 needs a CUDA device"}]}
    assert bench._single_repeats(res) == " (once for amp bf16: one step exceeded 30s)"
    res["rows"][1]["images_per_s"]["n"] = 3
    assert bench._single_repeats(res) == ""


def test_overhead_phases_name_functions_that_exist(bench) -> None:
    """The breakdown wraps functions by name: a renamed or removed one would silently time nothing."""
    for module, attr, _ in bench.PHASES:
        owner, name = bench.phase_target(module, attr)
        assert callable(getattr(owner, name, None)), f"{module}.{attr}"


@pytest.mark.usefixtures("small_gemm")
def test_a_pipeline_that_fails_is_a_failed_row_and_leaves_no_process(bench, tiny, tmp_path: Path) -> None:
    spec, data = tiny
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=1, repeats=1, warmup=1,
                    workers=-1, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, retries=0,
                    log=lambda m: None)  # fmt: skip  # (a)'s DataLoader refuses -1 workers
    fp16 = bench.Config("amp fp16", amp="fp16")  # CUDA only: refused on the CPU
    res = bench.throughput(s, [bench.DEFAULT_CONFIG, fp16], check_determinism=False)
    rows = {r["label"]: r for r in res["rows"]}
    assert "num_workers" in rows["(a) conventional"]["failed"]
    assert "fp16 needs a CUDA device" in rows["amp fp16"]["failed"]
    b = rows[bench.DEFAULT_CONFIG.label]
    assert b["images_per_s"]["median"] > 0 and b["ratio_to_a"] is None  # no ratio to a pipeline that did not run
    assert len({line.count("|") for line in bench.throughput_table(res)}) == 1
    assert "vs conventional, resnet8, cpu, 1 thread, batch 16: not measured ((a) failed)" in bench.targets_lines(
        {"throughput": [res]})[0]
    assert not [c for c in _pipeline_processes(os.getpid()) if _still_running(c)]


def test_profile_lines_say_cuda_host_time_is_not_kernel_time(bench) -> None:
    r = {"model": "resnet20", "config": "default", "steps": 3, "threads": 2, "wall_s": 0.5, "self_cpu_s": 0.4,
         "groups": [("convolution (forward)", 1.0)], "top_ops": [("aten::conv", 1.0, 3)]}  # fmt: skip
    host_only = "not GPU kernel time"
    assert host_only in bench.profile_lines([{**r, "device": "cuda:0"}])[0]
    assert host_only not in bench.profile_lines([{**r, "device": "cpu"}])[0]
    assert host_only not in bench.profile_lines([r])[0]  # a saved report from before the device was recorded


def test_default_steps_fill_an_epoch_on_cuda_only(bench) -> None:
    assert bench.default_steps("resnet18", torch.device("cpu"), 4068, 128) == bench.DEFAULT_STEPS["resnet18"]
    assert bench.default_steps("resnet18", torch.device("cuda"), 4068, 128) == 31  # full batches only
    assert bench.default_steps("resnet18", torch.device("cuda:1"), 100, 128) == 1


def test_machine_lines_say_which_cpus_the_bench_could_use(bench) -> None:
    m = bench.machine_info(torch.device("cpu"))
    assert bench.cpu_share_lines(m)[0] == f"- CPUs this process could use: {m['cpu_affinity']} (CPU affinity); " + (
        "no cgroup CPU quota" if m["cpu_quota"] is None else f"cgroup CPU quota of {m['cpu_quota']:g} CPUs")
    over = {**m, "torch_threads": 4, "cpu_affinity": 2, "cpu_quota": None}
    assert bench.cpu_share_lines(over)[1].startswith("- **Warning:** torch runs 4 CPU threads")
    old = {k: v for k, v in m.items() if k not in ("cpu_affinity", "cpu_quota")}
    assert bench.cpu_share_lines(old) == []  # a report saved before they were recorded


def test_a_threads_count_over_the_cpus_is_warned_of_before_measuring(
    bench, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: the warning came after the section's table, every other one before measuring."""
    m = {**bench.machine_info(torch.device("cpu")), "torch_threads": 2, "cpu_affinity": 2, "cpu_quota": None}
    measured: list[str] = []

    def setups(*args: object) -> Any:
        measured.append(capsys.readouterr().out)  # what was said before the first section
        return iter(())

    monkeypatch.setattr(bench, "setups", setups)
    monkeypatch.setattr(bench, "pool_ceilings", lambda sections: None)
    a = argparse.Namespace(threads=[2, 3])
    bench.throughput_sections(a, torch.device("cpu"), [], {"machine": m, "throughput": []})
    [said] = measured
    assert said.startswith("WARNING: --threads 3: torch runs 3 CPU threads but this process's CPU affinity allows 2 CPUs")
    assert "--threads 2:" not in said


def test_a_section_run_on_more_threads_than_cpus_says_so(bench) -> None:
    """--threads 4 on two CPUs: the machine's line judges torch's default only, so the section warns."""
    m = {**bench.machine_info(torch.device("cpu")), "torch_threads": 2, "cpu_affinity": 2, "cpu_quota": None}
    res = {"device": "cpu", "torch_threads": 4}
    note = bench.section_threads_note(res, m)
    assert note is not None and note.startswith("torch runs 4 CPU threads but this process's CPU affinity allows 2 CPUs")
    assert note.endswith("lowers this section's figures; pass --threads 2 or fewer")  # set_num_threads beats OMP_*
    assert bench.section_threads_note({**res, "torch_threads": 2}, m) is None
    assert bench.section_threads_note(res, {**m, "torch_threads": 4}) is None  # the machine's line says it
    assert bench.section_threads_note({**res, "device": "cuda"}, m) is None  # the host threads do not run the steps
    assert bench.section_threads_note(res, {k: v for k, v in m.items() if k != "cpu_affinity"}) is None  # an old report
    assert bench.section_threads_note(res, {**m, "cpu_affinity": 8, "cpu_quota": 1.5}).startswith(
        "torch runs 4 CPU threads but this process's cgroup CPU quota is 1.5 CPUs")


def test_a_percentage_next_to_its_target_shows_the_side_it_is_on(bench) -> None:
    assert bench._pct(0.0503, 0.05) == "+5.03%" and bench._pct(-0.012, 0.05) == "-1.2%"
    assert bench._pct(0.05004, 0.05) == "+5.004%"  # not +5.00% NOT met


def test_a_speedup_next_to_its_target_shows_the_side_it_is_on(bench) -> None:
    """A user test: a ratio of 1.496 was printed "1.50x (target >= 1.5x, aim 2x): NOT met"."""
    assert bench._times(1.77, 1.5) == "1.77x" and bench._times(1.5, 1.5) == "1.50x"
    assert bench._times(1.496, 1.5) == "1.496x" and bench._times(1.4999, 1.5) == "1.4999x"
    assert bench._times(1.4999999, 1.5) == "1.4999999x"  # past 6 decimals: every digit (the review: "1.500000x")
    section = _saved_report(bench)["throughput"][0]
    section["rows"][1]["ratio_to_a"] = 1.496
    line = next(line for line in bench._throughput_targets(section) if "vs conventional" in line)
    assert ": 1.496x (target >= 1.5x, aim 2x): NOT met" in line, line


def test_render_json_refuses_a_file_that_is_not_a_saved_report(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "list.json"
    saved.write_text("[]")
    assert bench.main(["--render-json", str(saved), "--append-results"]) == 2
    assert f"--render-json {saved}: not a report written by --json; RESULTS.md was left as it was" in capsys.readouterr().err
    # The user test: these said neither what the file was nor that RESULTS.md was left alone.
    saved.write_text("some notes")
    assert bench.main(["--render-json", str(saved), "--append-results"]) == 2
    assert (f"--render-json {saved}: not JSON (Expecting value: line 1 column 1 (char 0)), so not a report written by "
            "--json; RESULTS.md was left as it was") in capsys.readouterr().err  # fmt: skip
    saved.unlink()
    assert bench.main(["--render-json", str(saved), "--append-results"]) == 2
    assert (f"--render-json {saved}: No such file or directory; RESULTS.md was left as it was"
            in capsys.readouterr().err)  # fmt: skip


def _saved_report(bench) -> dict[str, Any]:
    """A report as --json saves it: (a) at 30 and 32 images/s, the default (b) at 50 and 54."""
    pipes = [SimpleNamespace(label=bench.ConventionalPipeline.label, cfg=None, facts={"large_blocks_from_heap": False}),
             SimpleNamespace(label=bench.DEFAULT_CONFIG.label, cfg=bench.DEFAULT_CONFIG,
                             facts={"large_blocks_from_heap": True})]  # fmt: skip
    samples = {pipes[0].label: bench.Samples([30.0, 32.0], [0.01, 0.02]), pipes[1].label: bench.Samples([54.0, 50.0], [0.01, 0.02])}
    section = {"model": "resnet20", "device": "cpu", "batch_size": 128, "steps": 2, "repeats": 2, "warmup_steps": 1,
               "workers": 2, "data": "synthetic", "torch_threads": 1, "max_repeat_s": 30.0, "quiet": 0.05,
               "retries": 2, "isolated": True, "loadavg_before": None, "loadavg_after": None,
               "rows": bench.throughput_rows(pipes, samples, {p.label: (1.0, 0.5, 2) for p in pipes}),
               "ceiling": bench.ceiling_record(0.25, [100.0], 100.0)}  # fmt: skip
    report = {"command": "python bench/throughput.py", "machine": bench.machine_info(torch.device("cpu")),
              "device": "cpu", "throughput": [section], "notes": [], "quiet": 0.05}  # fmt: skip
    return json.loads(json.dumps(report, default=str))


def test_render_json_refuses_a_report_that_is_not_finite_contradicts_itself_or_is_misshapen(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user test: a median edited to NaN rendered as `nan` (targets `+nan%`), one edited to 1000 kept the
    old ratio beside a new share of the ceiling, and `"throughput": {}` dropped the section, each exit 0."""
    written: list[Any] = []
    monkeypatch.setattr(bench, "write_results", lambda reports, path=None, append=False: written.extend(reports))
    report, b, deleted = _saved_report(bench), "throughput[0].rows[1]", object()

    def render(path: list[str | int], value: Any) -> tuple[int, str]:
        edited = copy.deepcopy(report)
        *parents, last = path
        target = edited
        for key in parents:
            target = target[key]
        if value is deleted:
            del target[last]
        else:
            target[last] = value
        (tmp_path / "r.json").write_text(json.dumps(edited))
        code = bench.main(["--render-json", str(tmp_path / "r.json"), "--results", str(tmp_path / "RESULTS.md"), "--write-results"])
        return code, capsys.readouterr().err

    assert render(["notes"], []) == (0, "") and len(written) == 1  # as saved
    row = ["throughput", 0, "rows", 1]
    for path, value, said in [
        ([*row, "images_per_s", "median"], math.nan, f"{b}.images_per_s.median is nan, not a finite number"),
        ([*row, "samples", 0], math.inf, f"{b}.samples[0] is inf, not a finite number"),
        ([*row, "images_per_s", "median"], 1000.0, f"{b}.images_per_s.median is 1000.0, but its samples give 52.0: an edited"),
        ([*row, "ratio_to_a"], 9.0, f"{b}.ratio_to_a is 9.0, but the medians give {52 / 31}: an edited or damaged report"),
        (["throughput"], {}, "not shaped as --json writes a report: throughput is an object, not a list"),
        ([*row[:3]], "x", "not shaped as --json writes a report: throughput[0].rows is a string, not a list"),
        ([*row, "images_per_s", "median"], deleted, f"{b}.images_per_s.median is missing, but its samples give 52.0"),
        (["throughput"], [], "throughput is an empty list (a run writes at least one section)"),
        (["throughput", 0, "steps"], "two", ("the report holds a field of another kind than --json writes, or is not "
                                             "complete (Unknown format code")),  # a user test: it said only "not complete"
        ([*row[:3]], [], "throughput[0].rows is an empty list (a run writes at least one row)"),
    ]:  # fmt: skip
        code, err = render(path, value)
        assert code == 2 and said in err and err.endswith("; RESULTS.md was left as it was\n"), err
        assert len(written) == 1
    for path, value in (([*row, "foreign_cpu", 0], math.nan), ([*row, "discarded"], [[40.0, math.nan]])):
        assert render(path, value) == (0, "")  # a CPU share /proc/stat could not give is NaN in a real report


def test_a_verdict_says_which_compared_row_ran_too_few_repeats(bench) -> None:
    """Left from a user test: --max-repeat-s cut (a) to one repeat, and the speed-up's verdict, which
    named only (b)'s repeats, did not say so."""
    section = _saved_report(bench)["throughput"][0]
    a, b = section["rows"]
    b["images_per_s"]["n"], a["images_per_s"]["n"] = 5, 1
    line = next(line for line in bench._throughput_targets(section) if "vs conventional" in line)
    assert line.endswith(f"({a['label']}: from 1 repeat of 2 steps: indicative only)"), line
    a["images_per_s"]["n"] = 3
    line = next(line for line in bench._throughput_targets(section) if "vs conventional" in line)
    assert "indicative only" not in line


def test_a_verdict_whose_target_lies_within_the_rows_spread_says_so(bench) -> None:
    """A user test: "+6.1% (determinism off vs on; target <= 5%): NOT met" was printed from rows whose
    interquartile ranges overlapped, with no caveat."""
    section = _saved_report(bench)["throughput"][0]
    a, b = section["rows"]
    for row, (q1, median, q3) in ((a, (30.0, 31.0, 32.0)), (b, (50.0, 52.0, 54.0))):
        row["images_per_s"] |= {"n": 5, "q1": q1, "median": median, "q3": q3}
    off = copy.deepcopy(b) | {"label": "determinism off", "config": {**b["config"], "determinism": False}}
    off["images_per_s"] |= {"q1": 45.0, "median": 55.0, "q3": 56.0}  # +5.8%, but 45/54 - 1 to 56/50 - 1 holds 5%
    lines = bench._throughput_targets({**section, "rows": [a, b, off]})
    overhead = next(line for line in lines if "determinism overhead" in line)
    assert overhead.endswith("NOT met (within the repeats' spread: their interquartile ranges give -16.7% to +12.0%; "
                             "indicative only)"), overhead  # fmt: skip
    speedup = next(line for line in lines if "vs conventional" in line)
    assert "spread" not in speedup  # 50/32 to 54/30: 1.56x to 1.80x, all above 1.5x
    a["images_per_s"] |= {"q1": 28.0, "q3": 34.0}  # 50/34 = 1.47x: the target within
    speedup = next(line for line in bench._throughput_targets({**section, "rows": [a, b]}) if "vs conventional" in line)
    assert "(within the repeats' spread: their interquartile ranges give 1.47x to 1.93x; indicative only)" in speedup


def test_a_cpu_share_that_could_not_be_read_is_said_unread_not_nan_percent(bench) -> None:
    """Left from a user test: an unread share (NaN) showed as "nan%", or not at all where max() kept the
    figure before it."""
    section = _saved_report(bench)["throughput"][0]
    section["rows"][1]["foreign_cpu"] = [0.01, math.nan]
    row = next(line for line in bench.throughput_table(section) if line.startswith(f"| {bench.DEFAULT_CONFIG.label} |"))
    assert "| unread |" in row and "nan" not in row
    over = {"name": "smoke", "epochs": 1, "process_wall_s": 10.0, "main_s": 9.0, "run_wall_time_s": 8.0,
            "train_time_s": 7.0, "measure_time_s": 0.5, "overhead_in_process": 0.1, "overhead_whole_command": 0.3,
            "foreign_cpu": math.nan}  # fmt: skip
    assert "| unread |" in bench.overhead_lines([over])[-1]





def test_render_json_refuses_edited_overhead_and_latency_figures(bench) -> None:
    """A user test: an overhead share edited to 1% rendered "met" beside times that give 40%, and a latency
    difference edited to +50% rendered "NOT met" beside rounds that give +0.8%."""
    report = _saved_report(bench)
    report["overhead"] = [{"name": "subset", "main_s": 8.0, "process_wall_s": 10.0, "train_time_s": 2.0,
                           "overhead_in_process": 0.75, "overhead_whole_command": 0.8, "startup_and_imports_s": 2.0},
                          {"name": "smoke", "failed": "exit 1"}]  # fmt: skip
    report["latency"] = [{"auditor_rounds_ms": [1.0, 1.5, 1.25], "benchmark_rounds_ms": [1.0, 1.0, 1.25],
                          "auditor_median_ms": 1.25, "benchmark_median_ms": 1.0, "relative_diff": 0.25}]  # fmt: skip
    assert bench._edited_problem(report) is None
    for part, key, value, said in [
        ("overhead", "overhead_in_process", 0.01, "overhead[0].overhead_in_process is 0.01, but its figures give 0.75: an"),
        ("overhead", "train_time_s", 4.0, "overhead[0].overhead_in_process is 0.75, but its figures give 0.5: an"),
        ("latency", "relative_diff", 0.5, "latency[0].relative_diff is 0.5, but its figures give 0.25: an"),
        ("latency", "auditor_median_ms", 3.0, "latency[0].auditor_median_ms is 3.0, but its figures give 1.25: an"),
    ]:
        edited = copy.deepcopy(report)
        edited[part][0][key] = value
        assert (bench._edited_problem(edited) or "").startswith(said), (key, bench._edited_problem(edited))


def test_an_empty_results_file_gets_the_title_and_notes_are_not_replaced(
    bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: --append-results to an empty file wrote no title, so the bench then refused the file it
    wrote; --write-results over a file of notes under a lower heading lost them without a word."""
    report = _saved_report(bench)
    empty = tmp_path / "empty.md"
    empty.write_text("")
    bench.write_results([report], empty, append=True)
    assert empty.read_text().startswith(f"{bench.RESULTS_TITLE}\n\n{bench.RESULTS_INTRO}\n\n## Run of ")
    assert bench.results_problem(empty, append=True) is None  # the file it wrote is one it takes
    notes = tmp_path / "notes.md"
    notes.write_text(f"{bench.RESULTS_TITLE}\n\nGenerated by x\n\n### My notes\n\nimportant\n")
    assert bench.results_problem(notes, append=False) == (
        f"--write-results: {notes} holds text besides its title (notes), which replacing it would lose: "
        "--append-results adds this run below them, --results PATH writes another file, or remove it first to "
        "start it afresh")
    notes.write_text(f"{bench.RESULTS_TITLE}\n\n{bench.RESULTS_INTRO}\n")  # only what the bench writes first
    assert bench.results_problem(notes, append=False) is None


def test_where_the_results_go_is_checked_before_measuring(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found after every section had been measured, these were a traceback (exit 1) and lost results."""
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench, "RESULTS_MD", results)
    results.mkdir()
    assert bench.main(["--write-results"]) == 2
    assert f"{results}: not a regular file, where the results go; nothing measured" in capsys.readouterr().err
    results.rmdir()
    results.write_bytes(b"# Results\n\xff\xfe")
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"machine": {}, "command": "x"}))
    for args in (["--append-results"], ["--render-json", str(report), "--append-results"]):
        assert bench.main(args) == 2
        assert f"{results}: not UTF-8 text (invalid start byte at byte 10)" in capsys.readouterr().err
    assert results.read_bytes() == b"# Results\n\xff\xfe"
    results.write_text("# Results\n")
    monkeypatch.setattr(bench.os, "access", lambda path, mode: False)  # a read-only folder (root ignores chmod)
    assert bench.main(["--write-results"]) == 2
    assert f"{results}: cannot be written here (checked now, not after measuring)" in capsys.readouterr().err


def test_a_results_file_the_bench_did_not_write_or_a_read_only_one_is_refused_and_a_link_written_through(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: --write-results replaced a file of notes (no '## ' heading) without a word; as root, a
    read-only file was replaced and made writable, and a folder in /proc passed until after the measuring;
    a RESULTS.md that was a link became a file, its target left without the run."""
    notes = tmp_path / "notes.md"
    notes.write_text("my precious notes\n")
    for append in (False, True):
        assert bench.results_problem(notes, append) == (
            f"{notes}: holds a file that does not begin with '# Throughput benchmark results', as the results files "
            "the bench writes do; name another file, or remove it")  # fmt: skip
    notes.write_bytes(b"\xff notes")
    assert bench.results_problem(notes, False).startswith(f"{notes}: not UTF-8 text (invalid start byte at byte 0)")
    ours = tmp_path / "RESULTS.md"
    ours.write_text(f"{bench.RESULTS_TITLE}\n\n{bench.RESULTS_INTRO}\n")
    assert bench.results_problem(ours, True) is None and bench.results_problem(ours, False) is None
    (tmp_path / "empty.md").write_text("")
    assert bench.results_problem(tmp_path / "empty.md", False) is None
    ours.chmod(0o444)
    try:
        assert bench.results_problem(ours, True) == f"{ours}: is read-only (mode 0444); make it writable, or name another file"
    finally:
        ours.chmod(0o644)
    monkeypatch.setattr(bench, "_cannot_create_in", lambda folder: "Permission denied")
    assert bench.results_problem(ours, True) == (f"{ours}: no file can be made in {tmp_path} (Permission denied; "
                                                 "checked now, not after measuring)")  # fmt: skip
    monkeypatch.undo()
    link = tmp_path / "link.md"
    link.symlink_to(ours)
    monkeypatch.setattr(bench, "results_markdown", lambda report: "## Run of now\n")
    bench.write_results([{}], link, append=True)
    assert link.is_symlink() and ours.read_text().endswith("\n\n## Run of now\n")


def test_the_busy_machine_warning_says_what_becomes_of_a_disturbed_repeat(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user test: under --retries 0 it said that disturbed repeats are discarded and rerun."""
    monkeypatch.setattr(bench, "ForeignCpu", lambda: SimpleNamespace(start=lambda: None, stop=lambda: 0.5))
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    assert "Disturbed repeats are kept, not rerun (--retries 0), but" in bench.busy_warning([2.0], retries=0)
    assert "Disturbed repeats are discarded and rerun (up to 2 times each), but" in bench.busy_warning([2.0])
    assert "(up to 1 time each)" in bench.busy_warning([2.0], retries=1)
    monkeypatch.setattr(bench, "ForeignCpu", lambda: SimpleNamespace(start=lambda: None, stop=lambda: 0.01))
    assert bench.busy_warning([2.0], retries=0) is None


def test_measurements_are_kept_when_results_md_cannot_be_written_after_measuring(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --json, a RESULTS.md that failed after the measuring (a full disk) had lost every figure."""
    monkeypatch.setattr(bench, "targets_lines", lambda report: [])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def full(reports: Any, path: Path, append: bool = False) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(bench, "write_results", full)
    a = argparse.Namespace(json=None, write_results=False, append_results=True, results_path=tmp_path / "RESULTS.md")
    report = {"machine": {}, "command": "python bench/throughput.py"}
    with pytest.raises(OSError, match="No space left"):
        bench.finish(a, report)
    assert a.json_kept is not None and json.loads(Path(a.json_kept).read_text())["command"] == report["command"]

    def not_utf8(reports: Any, path: Path, append: bool = False) -> None:  # changed since it was checked
        b"\xff".decode()

    monkeypatch.setattr(bench, "write_results", not_utf8)
    monkeypatch.setattr(bench, "_keep_elsewhere", lambda report: None)  # the temporary folder full too
    a = argparse.Namespace(json=None, write_results=False, append_results=True, results_path=tmp_path / "RESULTS.md")
    with pytest.raises(OSError, match="cannot be appended to now .*invalid start byte") as raised:
        bench.finish(a, report)  # an OSError, which main says as an error (a ValueError had been a traceback)
    assert raised.value.filename == str(tmp_path / "RESULTS.md") and a.json_kept is None and a.json_keep_tried

    def unrenderable(reports: Any, path: Path, append: bool = False) -> None:
        raise ValueError("Unknown format code 'f' for object of type 'str'")

    monkeypatch.setattr(bench, "write_results", unrenderable)  # the review: not a file that cannot be appended to
    with pytest.raises(ValueError, match="Unknown format code"):
        bench.finish(argparse.Namespace(json=None, write_results=True, append_results=False, results_path=tmp_path / "R.md"), report)
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # no temporary folder to keep it in
    assert bench._keep_elsewhere(report) is None


def test_write_results_never_replaces_a_file_of_earlier_runs_and_results_writes_elsewhere(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: --write-results replaced the committed RESULTS.md, its only GPU runs with it, and
    no option wrote a file of one's own."""
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench, "RESULTS_MD", results)
    held = "# Throughput benchmark results\n\n## Run of 2026-12-01\n\nfigures\n\n## CUDA notes\n\nmore\n"
    results.write_text(held)
    assert bench.main(["--write-results"]) == 2
    assert (f"--write-results: {results} holds 2 earlier sections (runs, notes), which replacing it would lose: "
            "--append-results adds this run below them, --results PATH writes another file, or remove it first to "
            "start it afresh; nothing measured") in capsys.readouterr().err
    assert results.read_text() == held
    mine = tmp_path / "mine.md"
    assert bench.main(["--results", str(mine)]) == 2  # where to write, but not to write
    assert "--results names the file --write-results or --append-results writes: add one of them" in capsys.readouterr().err
    assert bench.main(["--results", str(mine), "--write-results", "--json", str(mine)]) == 2
    assert f"--json {mine}: is mine.md, which --write-results and --append-results write" in capsys.readouterr().err
    written: list[tuple] = []
    monkeypatch.setattr(bench, "write_results", lambda reports, path, append=False: written.append((path, append)))
    monkeypatch.setattr(bench, "_read_report", lambda p: ({}, None))
    monkeypatch.setattr(bench, "_render_problem", lambda report: None)
    report = tmp_path / "r.json"
    report.write_text("{}")
    assert bench.main(["--render-json", str(report), "--results", str(mine), "--write-results"]) == 0
    assert written == [(mine, False)] and f"wrote {mine}" in capsys.readouterr().out and results.read_text() == held


def test_json_never_replaces_results_or_a_file_it_did_not_write(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n")
    monkeypatch.setattr(bench, "RESULTS_MD", results)
    assert bench.main(["--json", str(results)]) == 2
    assert f"--json {results}: is RESULTS.md, which --write-results and --append-results write" in capsys.readouterr().err
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    assert bench.main(["--json", str(mine)]) == 2
    assert "holds a file that is not a report --json wrote; name another file, or remove it" in capsys.readouterr().err
    assert mine.read_text() == "mine" and results.read_text() == "# Results\n"
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"machine": {}, "command": "x"}))
    assert bench.json_problem(report) is None and bench.json_problem(tmp_path / "new.json") is None
    (tmp_path / "empty.json").write_text("")  # `--json "$(mktemp)"`: the review
    assert bench.json_problem(tmp_path / "empty.json") is None


def test_a_report_or_row_listed_twice_is_refused(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One report rendered twice had put one run into RESULTS.md twice."""
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"machine": {}, "command": "x"}))
    assert bench.main(["--render-json", str(report), str(tmp_path / "." / "r.json"), "--append-results"]) == 2
    assert "--render-json: a value is listed twice" in capsys.readouterr().err
    assert bench.main(["--matrix", "--rows", "determinism off", "determinism off"]) == 2
    assert "--rows: a value is listed twice (determinism off determinism off)" in capsys.readouterr().err


def test_the_instrumented_run_exits_as_the_run_did(tmp_path: Path) -> None:
    """Its breakdown is used only from a run that finished: it had exited 0 whatever the run did."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "throughput.py"), "--overhead-child", "run",
                           str(tmp_path / "nosuch.yaml"), "--out", str(tmp_path / "o")], check=False,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "nosuch.yaml" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_report_that_cannot_be_written_after_measuring_is_exit_2_naming_what_was_saved(
    bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk after measuring had been a traceback; a JSON report from an earlier run was named as this one's."""
    import errno

    monkeypatch.setattr(bench, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(bench, "throughput_sections", lambda *args: None)  # measured: nothing to measure here
    monkeypatch.setattr(bench, "other_sections", lambda *args: None)
    monkeypatch.setattr(bench, "busy_warning", lambda *args, **kwargs: None)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bench, "write_results", full)
    saved = tmp_path / "r.json"
    assert bench.main(["--synthetic", "--json", str(saved), "--write-results"]) == 2
    err = capsys.readouterr().err
    assert f"error: No space left on device; this run's JSON report is in {saved}" in err and "Traceback" not in err
    before = saved.read_bytes()  # a report of an earlier run, which --json may replace
    monkeypatch.setattr(bench, "atomic_write_bytes", full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the report is kept instead, not the real one
    assert bench.main(["--synthetic", "--json", str(saved), "--write-results"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "JSON report is in" not in err and saved.read_bytes() == before
    kept = list(tmp_path.glob("throughput-report-*.json"))
    assert len(kept) == 1 and str(kept[0]) in err


def test_the_fastest_bitwise_row_says_when_its_numbers_are_not_fp32s(bench) -> None:
    def row(label: str, ratio: float, amp: str = "off") -> dict:
        return {"label": label, "config": {"determinism": True, "amp": amp}, "determinism": {"bitwise": True},
                "ratio_to_a": ratio, "ratio_to_default_b": ratio / 1.5, "images_per_s": {"n": 3, "median": ratio},
                "steps": 10, "foreign_cpu": [0.0]}  # fmt: skip

    res = {"model": "resnet8", "device": "cpu", "torch_threads": 2, "batch_size": 16, "quiet": 0.05,
           "rows": [row(bench.DEFAULT_CONFIG.label, 1.5), row("amp bf16", 1.8, "bf16")]}  # fmt: skip
    [line] = [x for x in bench.targets_lines({"throughput": [res]}) if "fastest configuration" in x]
    assert "amp bf16, 1.80x" in line and "(bf16 autocast: bitwise from run to run, in reduced precision)" in line
    lines = bench.targets_lines({"throughput": [res]})
    assert lines[lines.index(line) + 1] == f"  - the fastest of them in fp32: {bench.DEFAULT_CONFIG.label}, 1.50x the conventional " \
                                          "pipeline, 1.00x the default"
    res["rows"][1] = row("channels_last off", 1.8)
    lines = bench.targets_lines({"throughput": [res]})
    [line] = [x for x in lines if "fastest configuration" in x]
    assert "channels_last off, 1.80x" in line and "autocast" not in line and "in fp32" not in "".join(lines)


def test_a_row_not_measured_makes_the_bench_exit_3_after_writing_the_rest(bench, monkeypatch, capsys,
                                                                        tmp_path: Path) -> None:
    """A matrix row that failed (or whose determinism check could not run) had exited 0, so a script
    or CI job took a partial table for a full one; the report is still written first."""
    rows = [{"label": "(a) conventional", "images_per_s": {"n": 1}},
            {"label": "compile default", "failed": "RuntimeError: no C++ compiler"},
            {"label": "amp bf16", "determinism_skipped": "failed: RuntimeError: boom", "determinism_error": "boom"},
            {"label": "determinism off", "determinism_skipped": "one step takes 90 s, more than --max-repeat-s / 2 = 15 s"}]
    section = {"model": "resnet8", "torch_threads": 2, "rows": rows}

    def measured(a, device, configs, report) -> None:
        report["throughput"].append(section)

    monkeypatch.setattr(bench, "throughput_sections", measured)
    monkeypatch.setattr(bench, "other_sections", lambda *args: None)
    monkeypatch.setattr(bench, "targets_lines", lambda report: [])
    saved = tmp_path / "r.json"
    assert bench.main(["--synthetic", "--json", str(saved)]) == bench.EXIT_PARTIAL == 3  # 1 is a traceback's
    err = capsys.readouterr().err
    assert "not measured: resnet8, 2 threads: compile default; determinism not checked: resnet8, 2 threads: amp bf16 (" in err
    # Skipped for its length without --det-steps asking for it: not a failure, but said.
    assert ("note: determinism not checked, one step being over half of --max-repeat-s: resnet8, 2 threads: "
            "determinism off (raise it to check them)") in err  # fmt: skip
    assert json.loads(saved.read_text())["throughput"][0]["rows"] == rows
    section["rows"] = rows[:1] + rows[3:]
    assert bench.main(["--synthetic"]) == 0


def test_a_determinism_check_that_could_not_run_is_recorded_apart_from_its_wording(bench, tiny, tmp_path: Path) -> None:
    class Twins:
        label, cfg = "amp bf16", bench.Config("amp bf16", amp="bf16")

        def determinism(self, steps: int) -> dict:
            raise RuntimeError("the process of 'amp bf16' ended (killed by SIGKILL)")

    spec, data = tiny
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=1, repeats=1, warmup=1,
                    workers=0, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, log=lambda m: None)  # fmt: skip
    rows = [{"label": "amp bf16", "step_s_estimate": 0.1}]
    bench.check_rows_determinism(s, [Twins()], rows)
    assert rows[0]["determinism_error"] == "the process of 'amp bf16' ended (killed by SIGKILL)"
    assert rows[0]["determinism_skipped"].startswith("failed: ")  # the table's wording, which failed_rows no longer reads
    report = {"throughput": [{"model": "resnet8", "torch_threads": 1, "rows": rows}]}
    assert bench.failed_rows(report) == ["determinism not checked: resnet8, 1 thread: amp bf16"]


def test_one_step_and_no_retries_are_said_as_such(bench, tiny, tmp_path: Path) -> None:
    """The user test: "timing 1 steps per repeat", "Up to 1 timed steps", and with --retries 0 a disturbed repeat
    "was discarded and rerun (at most 0 times, then kept)"."""
    spec, data = tiny
    said: list[str] = []
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=2, repeats=1, warmup=1,
                    workers=0, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, max_repeat_s=5.0,
                    log=said.append)  # fmt: skip
    slow = SimpleNamespace(label="(b) slow", cfg=object(), repeats=None, warm=lambda steps, budget_s: (7.0, 3.5))
    assert bench.warm_pipelines(s, [slow], {}) == {"(b) slow": (7.0, 3.5, 1)}
    assert said == ["  warm-up (b) slow: 7.0s, last step 3.50s; timing 1 step per repeat (capped from 2 by --max-repeat-s 5)"]
    section = {**_saved_report(bench)["throughput"][0], "steps": 1, "retries": 0}
    text = "\n".join(bench.throughput_section(section, {}))
    assert "Up to 1 timed step per repeat (fewer" in text and "of the CPU was kept, not rerun (--retries 0);" in text
    text = "\n".join(bench.throughput_section({**section, "retries": 1}, {}))
    assert "of the CPU was discarded and rerun (at most 1 time, then kept);" in text
    printed: list[str] = []
    bench.print_throughput(section, printed.append)
    assert ", up to 1 timed step x 2 repeats," in printed[0]


class _Twins:
    """A (b) pipeline in `check_rows_determinism`'s eyes: records the steps its twin runs were given."""

    label, cfg = "determinism off", object()

    def __init__(self) -> None:
        self.steps: list[int] = []

    def determinism(self, steps: int) -> dict:
        self.steps.append(steps)
        return {"steps": steps, "bitwise": True}


@pytest.mark.parametrize("given", [False, True])
def test_a_determinism_check_asked_for_with_det_steps_and_not_run_as_asked_is_said(
    bench, tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: bool
) -> None:
    """The user test: `--matrix --det-steps 2` where every row's step took 4 s of --max-repeat-s 5 exited 0,
    its --det-steps dropped without a word."""
    spec, data = tiny
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=1, repeats=1, warmup=1,
                    workers=0, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, det_steps=10,
                    det_steps_given=given, max_repeat_s=5.0, log=lambda m: None)  # fmt: skip
    twins, rows = _Twins(), [{"label": "determinism off", "step_s_estimate": 4.0}]
    bench.check_rows_determinism(s, [twins], rows)
    report = {"throughput": [{"model": "resnet8", "torch_threads": 1, "rows": rows}]}
    assert twins.steps == [] and rows[0]["determinism_skipped"] == "one step takes 4 s, more than --max-repeat-s / 2 = 2.5 s"
    lost, noted = ["determinism not checked: resnet8, 1 thread: determinism off"], bench.unchecked_rows(report)
    assert (bench.failed_rows(report), noted) == ((lost, []) if given else ([], [noted[0]]))  # given: exit 3
    assert given or noted[0].endswith("over half of --max-repeat-s: resnet8, 1 thread: determinism off")
    rows[:] = [{"label": "determinism off", "step_s_estimate": 1.0}]  # 5 of the 10 steps fit in 5 s
    bench.check_rows_determinism(s, [twins], rows)
    assert twins.steps == [5] and rows[0]["determinism"]["bitwise"] and bench.failed_rows(report) == []
    warned = "WARNING: determinism check of determinism off: 5 steps; --det-steps 10 cut: more would exceed --max-repeat-s 5"
    assert (warned in capsys.readouterr().err) == given
    rows[:] = [{"label": "determinism off", "step_s_estimate": 0.4}]
    bench.check_rows_determinism(dataclasses.replace(s, max_repeat_s=0.5), [twins], rows)
    assert rows[0]["determinism_skipped"] == "one step takes 0.4 s, more than --max-repeat-s / 2 = 0.25 s"  # it had said 0s
    assert [bench._seconds(s) for s in (0.4, 4.0, 99.94, 1500.0)] == ["0.4 s", "4 s", "99.9 s", "1500 s"]  # not 1.5e+03


def test_an_overhead_part_larger_than_its_whole_is_said_not_left_to_the_reader(bench) -> None:
    """A user test: the instrumented second run, on a busier machine, gave 'excluding evaluation' a larger share
    than the whole run's, with no word that the two did not agree."""
    phases = {"training steps": 80.0, "per-epoch evaluation (selection split)": 5.0}
    r = {"epochs": 8, "overhead_in_process": 0.02, "overhead_whole_command": 0.05, "main_s": 100.0,
         "breakdown": {"phases": phases, "main_s": 100.0, "process_wall_s": 110.0, "foreign_cpu": 0.0}}  # fmt: skip
    first, part = bench._overhead_targets(r, 0.05)
    assert first.startswith("- auditing overhead") and "15.0% in-process" in part and "more than the whole figure" in part
    r["overhead_in_process"] = 0.2
    assert "more than the whole" not in bench._overhead_targets(r, 0.05)[1]


def test_an_overhead_run_that_fails_is_a_row_not_a_traceback(bench, monkeypatch, tmp_path: Path) -> None:
    """It had raised out of the bench, and every section measured before it was lost."""

    def fails(name: str, *args: object) -> dict:
        raise RuntimeError(f"{name}: exit 2\nauditor run: error: no space left")

    monkeypatch.setattr(bench, "overhead_one", fails)
    said: list[str] = []
    results = bench.overhead(1, False, said.append, device="cpu", root=None)
    assert [r["name"] for r in results] == ["smoke"] and "  smoke: FAILED (smoke: exit 2)" in said
    lines = bench.overhead_lines(results)
    assert lines[2].startswith("| smoke | failed: smoke: exit 2 |") and len({line.count("|") for line in lines}) == 1
    report = {"overhead": results + [{**results[0], "name": "subset-resnet20"}]}
    assert bench.targets_lines(report) == []  # no verdict on a run that did not finish
    assert bench.failed_rows(report) == ["auditing overhead not measured: smoke, subset-resnet20"]


class _FakePipe:
    """A pipeline in `interleaved`'s eyes: `timed` gives a rate, or fails as a killed child does."""

    def __init__(self, label: str, fail_at: int | None = None) -> None:
        self.label, self.repeats, self.fail_at, self.calls = label, None, fail_at, 0

    def timed(self, steps: int) -> tuple[float, float]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"the process of {self.label!r} ended (killed by SIGKILL)")
        return 100.0 * steps, 0.0


def test_a_pipeline_whose_process_dies_during_the_repeats_is_left_out_and_named(bench) -> None:
    """The user test: a (b) child killed mid-repeats (as by the OOM killer) had ended the bench in a traceback."""
    pipes, failed, said = [_FakePipe("(a) conventional"), _FakePipe("(b) x", fail_at=2)], {}, []
    samples = bench.interleaved(pipes, {"(a) conventional": 2, "(b) x": 2}, 3, said.append, retries=0, failed=failed)
    assert list(samples) == ["(a) conventional"] and samples["(a) conventional"].images_per_s == [200.0] * 3
    assert failed == {"(b) x": "in repeat 2: the process of '(b) x' ended (killed by SIGKILL)"}
    assert pipes[1].calls == 2 and any("FAILED" in line and "left out" in line for line in said)


def test_how_a_pipeline_process_ended_is_read_after_it_is_reaped(bench) -> None:
    """Its pipe closes before the kernel reaps it: poll() had said 'exit code None' for a SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.kill()
    fake = type("Child", (), {"proc": proc})()
    assert bench.Isolated._how_it_ended(fake) == "killed by SIGKILL (as the kernel's out-of-memory killer does)"
    done = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    assert bench.Isolated._how_it_ended(type("Child", (), {"proc": done})()) == "exit code 3"
    realtime = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    realtime.send_signal(signal.SIGRTMIN + 6)  # valid, but no signal.Signals member: it had raised ValueError
    assert bench.Isolated._how_it_ended(type("Child", (), {"proc": realtime})()) == f"killed by signal {signal.SIGRTMIN + 6}"


def test_a_stop_while_a_pipeline_process_starts_leaves_neither_it_nor_its_folder(bench, tiny, tmp_path: Path, monkeypatch) -> None:
    """A review: a Ctrl-C landing after a child had started but before it was in `pipes` left its process (in a
    session of its own, which a terminal's Ctrl-C misses) and its folder behind."""
    spec, data = tiny
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=1, repeats=1, warmup=1, workers=0,
                    data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, det_steps=2, max_repeat_s=5.0)  # fmt: skip
    started, send = [], bench.Isolated._send

    def interrupted(self, command: str, *args: Any) -> None:
        started.append(self)
        os.kill(os.getpid(), signal.SIGINT)  # just after its process started
        send(self, command, *args)

    monkeypatch.setattr(bench.Isolated, "_send", interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # the suite may run with Ctrl-C ignored
    try:
        with pytest.raises(KeyboardInterrupt), bench.closing_all([]) as pipes:
            bench.build_pipelines(s, [], pipes)
        assert len(started) == 1 and started[0].proc.poll() is not None, "its process was left running"
        assert not Path(started[0].folder).exists(), "its folder was left behind"
    finally:
        signal.signal(signal.SIGINT, previous)
        for p in started:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
            shutil.rmtree(p.folder, ignore_errors=True)


def test_a_child_that_outlives_sigkill_is_left_named_not_waited_for(bench, tmp_path: Path, capsys) -> None:
    """A child stuck where SIGKILL waits (inside a driver's call) had hung the bench's exit on an unbounded wait."""
    import multiprocessing.connection
    import socket

    ours, theirs = socket.socketpair()
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child = object.__new__(bench.Isolated)
    child.proc, child.conn, child.label = stuck, multiprocessing.connection.Connection(ours.detach()), "(b) x"
    child.folder, child._closed = str(tmp_path / "child"), False
    (tmp_path / "child").mkdir()
    child._signal_group = lambda signum: None  # as if no signal reached it
    try:
        started = time.monotonic()
        child.close(wait_s=0, grace_s=0)
        assert time.monotonic() - started < 10
        err = capsys.readouterr().err
        assert f"the process of '(b) x' (pid {stuck.pid}) did not die of SIGKILL within 1 s: it is left running, and " \
            f"its folder {tmp_path / 'child'} in place" in err
        assert (tmp_path / "child").is_dir()  # it may still be using it
        assert stuck.poll() is None and child._closed
        child.close()  # closed: nothing is sent, signalled or waited for again
    finally:
        stuck.kill()
        stuck.wait()
        theirs.close()


def test_conventional_timed_steps_stay_within_one_fresh_iterator(bench, tiny, tmp_path: Path) -> None:
    """The user test: with more timed steps than (a)'s fresh iterator held, a second iterator, and its
    worker processes, started inside the timed window."""
    spec, data = tiny

    class Warmed:  # a pipeline in warm_pipelines' eyes: (a) when cfg is None
        def __init__(self, cfg: object) -> None:
            self.cfg, self.repeats = cfg, None
            self.label = "(a) conventional" if cfg is None else "(b)"

        def warm(self, steps: int, budget_s: float) -> tuple[float, float]:
            return 0.1, 0.01

    def plan(batch_size: int, workers: int) -> tuple[dict[str, tuple[float, float, int]], list[str]]:
        said: list[str] = []
        s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=batch_size, steps=5, repeats=1,
                        warmup=1, workers=workers, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path,
                        log=said.append)  # fmt: skip
        return bench.warm_pipelines(s, [Warmed(None), Warmed(bench.DEFAULT_CONFIG)], {}), said

    third = len(data.train_y) // 3  # 3 batches an epoch: a fresh iterator holds 2 after its untimed step
    steps, said = plan(third, workers=1)
    assert steps["(a) conventional"][2] == 2 and steps["(b)"][2] == 5
    assert any("capped at 2: a fresh DataLoader iterator holds 3 batches" in line for line in said)
    steps, said = plan(len(data.train_y), workers=1)  # one batch an epoch: nothing to cap to, and said so
    assert steps["(a) conventional"][2] == 5
    assert any("every timed step starts a fresh DataLoader iterator and its workers" in line for line in said)
    steps, said = plan(third, workers=0)  # no worker processes to start: no cap
    assert steps["(a) conventional"][2] == 5 and not any("capped at" in line or "NOTE" in line for line in said)
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=third, steps=5, repeats=1, warmup=1,
                    workers=1, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path)  # fmt: skip
    a = bench.make_conventional(s)  # the real loader holds the batches counted
    assert len(a.loader) == bench.conventional_steps_held(s) + bench.ConventionalPipeline.repeat_warmup == 3


def test_the_overhead_run_times_auditor_main_not_the_records_wall_time(bench, tmp_path: Path) -> None:
    """The user test: `run.wall_time_s` is taken before audit.json, the sheet and the promotion, so an
    overhead of it left the sheet's rendering out."""
    res = bench.overhead_one("smoke", bench.OVERHEAD_SPECS["smoke"](1, "cpu", tmp_path), False, lambda m: None,
                             bench.Quiet(share=1.0, wait_s=0))  # fmt: skip
    assert res["exit"] == 0 and res["run_wall_time_s"] < res["main_s"] < res["process_wall_s"]
    assert res["overhead_in_process"] == (res["main_s"] - res["train_time_s"]) / res["main_s"]
    assert res["command"].endswith(" -m auditor run smoke --set train.device=cpu --out '<tmp>'")
    row = bench.overhead_lines([res])[2]
    assert row.startswith(f"| smoke | {res['epochs']} | {res['process_wall_s']:.1f} | {res['main_s']:.1f} | ")
    old = {k: v for k, v in res.items() if k != "main_s"}  # a report saved before main was timed
    assert "| not measured |" in bench.overhead_lines([old])[2]


def test_a_json_report_that_fails_after_measuring_is_kept_elsewhere(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user test: a --json path that failed after the measuring had thrown the run's figures away."""
    import argparse

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    a = argparse.Namespace(json=Path("/proc/x.json"), write_results=False, append_results=False)
    report = {"machine": {}, "command": "python bench/throughput.py --json /proc/x.json"}
    with pytest.raises(OSError):
        bench.finish(a, report)
    assert Path(a.json_kept).parent == tmp_path and json.loads(Path(a.json_kept).read_text())["command"] == report["command"]


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_layers_count_each_shapes_calls_flops_and_gradients(bench, stride: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    first, second = nn.Conv2d(3, 8, 3, stride=stride, padding=1, bias=False), nn.Conv2d(8, 4, 1, bias=False)
    x = torch.randn(2, 3, 8, 8)  # the batch: no gradient of its own
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(2):  # two steps
            second(first(x)).sum().backward()
    rows = {(r["input"], r["weight"]): r for r in bench.conv_layers(prof.events(), steps=2)}
    side = 8 // stride
    a, b = rows[("[2, 3, 8, 8]", "[8, 3, 3, 3]")], rows[(f"[2, 8, {side}, {side}]", "[4, 8, 1, 1]")]
    assert a["fwd_flops"] == 2 * 2 * 8 * side * side * 3 * 9 and b["fwd_flops"] == 2 * 2 * 4 * side * side * 8
    assert a["calls_per_step"] == b["calls_per_step"] == 1
    assert a["bwd_grads"] == 1 and b["bwd_grads"] == 2  # weight only; input and weight
    for r in (a, b):
        assert r["fwd_us"] > 0 and r["bwd_us"] > 0
        assert r["fwd_gflops"] == pytest.approx(r["fwd_flops"] / (r["fwd_us"] * 1e3))
        assert r["bwd_gflops"] == pytest.approx(r["bwd_grads"] * r["fwd_flops"] / (r["bwd_us"] * 1e3))
    lines = bench.conv_lines(list(rows.values()), steps=2, self_cpu_s=1.0)
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 4 and len({line.count("|") for line in table}) == 1
    us = sum(2 * (r["fwd_us"] + r["bwd_us"]) for r in rows.values())  # per call x 2 steps
    assert f"All convolutions: {us / 1e6:.0%} of the self CPU time" in lines[-2]


def test_conv_lines_show_a_pass_the_profile_missed_as_not_available(bench) -> None:
    only_fwd = {"input": "[1, 3, 4, 4]", "weight": "[2, 3, 1, 1]", "calls_per_step": 1, "fwd_flops": 192.0,
                "fwd_us": 2.0, "fwd_gflops": 0.096, "bwd_us": None, "bwd_grads": None, "bwd_gflops": None}  # fmt: skip
    assert bench.conv_lines([], 3, 1.0) == []
    row = next(line for line in bench.conv_lines([only_fwd], 1, 1.0) if line.startswith("| [1, 3"))
    assert row == "| [1, 3, 4, 4] | [2, 3, 1, 1] | 1 | 0.00 | 0 | n/a | n/a | n/a |"


def test_profile_of_the_auditor_path_has_conv_rates_on_cpu(bench, tiny, tmp_path: Path) -> None:
    spec, data = tiny
    s = bench.Setup(model="resnet8", device=torch.device("cpu"), batch_size=16, steps=1, repeats=1, warmup=1,
                    workers=0, data=data, data_spec=spec, data_desc="tiny", ckpt_dir=tmp_path, log=lambda m: None)  # fmt: skip
    r = bench.profile_auditor(s, bench.make_auditor(s, bench.DEFAULT_CONFIG), steps=2)
    convs = r["conv_layers"]
    assert convs and all(c["calls_per_step"] >= 1 and c["bwd_grads"] in (1, 2) for c in convs)
    assert sum(c["bwd_grads"] == 1 for c in convs) == 1  # only the first layer's input is the batch
    assert any("All convolutions:" in line for line in bench.profile_lines([r]))


def _event(name: str, shapes: list[list[int]], us: float, flops: int = 0, mask: list[bool] | None = None,
           parent: Any = None) -> SimpleNamespace:
    """A stand-in for a profiler event: what conv_layers reads."""
    return SimpleNamespace(name=name, input_shapes=shapes, cpu_time_total=us, flops=flops, cpu_parent=parent,
                           concrete_inputs=[None, None, None, mask])  # fmt: skip


def test_conv_lines_turn_known_counts_into_ms_gflops_and_shares(bench) -> None:
    x, w = [8, 4, 16, 16], [4, 4, 3, 3]
    outer = _event("aten::conv2d", [x, w], us=1000.0, flops=2_000_000_000)  # 2 GFLOP in 1 ms
    events = [outer, _event("aten::conv2d", [x, w], us=900.0, flops=2_000_000_000, parent=outer),  # autocast's inner one
              _event("aten::convolution_backward", [x, x, w], us=2000.0, mask=[True, True, False])]  # fmt: skip
    [row] = bench.conv_layers(events, steps=1)
    assert row["calls_per_step"] == row["bwd_calls_per_step"] == 1  # the nested forward is not a second call
    assert (row["fwd_gflops"], row["bwd_gflops"], row["bwd_grads"]) == (2000.0, 2000.0, 2)  # 4 GFLOP in 2 ms
    lines = bench.conv_lines([row], steps=1, self_cpu_s=0.006)  # the convolutions: 3 ms of 6
    assert "| [8, 4, 16, 16] | [4, 4, 3, 3] | 1 | 1.00 | 2000 | 2.00 | 2 | 2000 |" in lines
    assert lines[-2].startswith("All convolutions: 50% of the self CPU time, at 2000 GFLOP/s together; the other 50%")


def test_conv_lines_without_a_forward_count_the_backward_time_but_no_rate(bench) -> None:
    """Under torch.compile the forward is no aten::conv2d: the backward's time stays, its rate is unknown."""
    x, w = [8, 4, 16, 16], [4, 4, 3, 3]
    [row] = bench.conv_layers([_event("aten::convolution_backward", [x, x, w], us=3000.0, mask=[False, True, False])], 1)
    assert row["calls_per_step"] == 0 and row["fwd_us"] is None and row["bwd_gflops"] is None
    lines = bench.conv_lines([row], steps=1, self_cpu_s=0.012)
    assert "| [8, 4, 16, 16] | [4, 4, 3, 3] | 0 | n/a | n/a | 3.00 | 1 | n/a |" in lines
    assert lines[-2].startswith("All convolutions: 25% of the self CPU time, at n/a GFLOP/s together")


@requires_subset
def test_the_data_line_says_whether_the_copy_is_the_official_one(bench) -> None:
    """A user test: the data line called any --data-root "CIFAR-10 subset at ...", whatever it held,
    and did not say a copy lacked a training batch."""
    from auditor.data import load_data

    spec = bench.bench_data_spec(SUBSET)
    line = bench.describe_data(spec, load_data(spec, 0))
    assert line.startswith("a CIFAR-10 copy that is not the official one (data_batch_5 missing; 5 files not the official "
                           f"bytes (MD5)) at {SUBSET / 'cifar-10-batches-py'} (the subset; 4068 train images; content "
                           "sha256 "), line  # fmt: skip


def test_two_shares_are_given_with_the_decimals_that_tell_them_apart(bench: Any) -> None:
    """A user test: "1.5x needs 9% of the fp32 GEMM-peak ceiling; the default reaches 9%", missed."""
    assert bench.shares_apart(0.093, 0.090) == ("9.3%", "9.0%")
    assert bench.shares_apart(0.56, 0.65) == ("56%", "65%")
    assert bench.shares_apart(0.09001, 0.09004) == ("9.00%", "9.00%")  # apart by less than is shown: as equal
    assert bench.shares_apart(0.5, 0.5) == ("50.00%", "50.00%")
