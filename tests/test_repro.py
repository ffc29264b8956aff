"""Seeding and determinism flags: what `enforce` sets is what the record says is in force."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.utils.deterministic

from auditor import repro
from auditor.spec import Determinism, Spec


@pytest.fixture(autouse=True)
def _cublas_config_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without CUBLAS_WORKSPACE_CONFIG, which enforce sets (conftest restores it and the flags)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)


@pytest.mark.parametrize("fill", [False, True])
def test_enforce_sets_and_reads_back_every_flag(fill: bool) -> None:
    state = repro.enforce(7, Determinism(enabled=True, fill_uninitialized_memory=fill))
    assert state.requested and state.seed == 7
    assert state.deterministic_algorithms and torch.are_deterministic_algorithms_enabled()
    assert state.cudnn_deterministic and not state.cudnn_benchmark
    assert state.fill_uninitialized_memory is fill is torch.utils.deterministic.fill_uninitialized_memory
    assert state.cublas_workspace_config == repro.CUBLAS_CONFIG
    assert state.torch_threads == torch.get_num_threads()


def test_an_inherited_cublas_config_is_kept_and_refused_on_cuda_unless_torch_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    state = repro.enforce(0, Determinism(enabled=True))
    assert state.cublas_workspace_config == ":0:0"  # the shell's value is kept, not overwritten
    problem = repro.cublas_problem(state, torch.device("cuda", 0))
    assert problem is not None and "':0:0'" in problem and ":16:8" in problem
    assert repro.cublas_problem(state, torch.device("cpu")) is None  # no cuBLAS on the CPU
    for ok in (":16:8", ":4096:8"):
        assert repro.cublas_problem(replace(state, cublas_workspace_config=ok), torch.device("cuda", 0)) is None
    off = repro.enforce(0, Determinism(enabled=False))
    assert repro.cublas_problem(off, torch.device("cuda", 0)) is None  # only deterministic mode checks it


def test_tf32_flags_are_read_back_not_assumed() -> None:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        for conv, matmul in [(True, False), (False, True)]:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul
            state = repro.read_state(0, True)
            assert (state.cudnn_allow_tf32, state.cuda_matmul_allow_tf32) == (conv, matmul)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_tf32_flags_set_through_the_per_operator_api_are_read_too() -> None:
    """Once conv and rnn precision differ, torch's legacy cudnn.allow_tf32 getter raises instead of answering."""
    saved = torch.backends.cudnn.conv.fp32_precision
    try:
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        with pytest.raises(RuntimeError):
            _ = torch.backends.cudnn.allow_tf32
        assert repro.read_state(0, True).cudnn_allow_tf32 is False
    finally:
        torch.backends.cudnn.conv.fp32_precision = saved
    assert repro.tf32_flags()[0] is bool(torch.backends.cudnn.allow_tf32)


def test_enforce_off_is_the_fast_setting_and_says_so() -> None:
    state = repro.enforce(0, Determinism(enabled=False))
    assert not state.deterministic_algorithms and state.cudnn_benchmark and not state.cudnn_deterministic
    sources = repro.nondeterminism_sources(Spec(name="x", determinism={"enabled": False}), state, "cpu")
    assert any("use_deterministic_algorithms is off" in s for s in sources)
    assert not any("fill_uninitialized_memory" in s for s in sources)  # irrelevant when determinism is off


def test_fill_off_is_named_as_a_caveat_only_when_off() -> None:
    spec = Spec(name="x")
    assert spec.determinism.fill_uninitialized_memory is False  # the default: faster, still deterministic
    off = repro.nondeterminism_sources(spec, repro.enforce(0, spec.determinism), "cpu")
    on_spec = Spec(name="x", determinism={"fill_uninitialized_memory": True})
    on = repro.nondeterminism_sources(on_spec, repro.enforce(0, on_spec.determinism), "cpu")
    assert any("fill_uninitialized_memory is off" in s for s in off)
    assert not any("fill_uninitialized_memory" in s for s in on)


def test_a_training_resumed_at_other_thread_counts_names_them_all() -> None:
    """After 2, then 4, then 2 threads the sources had named only the last count."""
    spec = Spec(name="x")
    state = repro.enforce(0, spec.determinism)
    [mixed] = [s for s in repro.nondeterminism_sources(spec, state, "cpu", 2, [2, 2, None, 4, 2]) if "thread" in s]
    assert mixed.startswith("thread counts 2 then 4 then 2 (the training's parts through its resumes)")
    assert "no single one reproduces these weights" in mixed
    [cuda] = [s for s in repro.nondeterminism_sources(spec, state, "cpu", 4, [2, "cuda", 4]) if "thread" in s]
    assert cuda.startswith("thread counts 2 then a CUDA part then 4 (")
    [one] = [s for s in repro.nondeterminism_sources(spec, state, "cpu", 3, [3, None, "cuda", 3]) if "thread" in s]
    assert one.startswith("thread count 3") and "thread counts" not in one


def test_enforce_reads_the_seed_back() -> None:
    state = repro.enforce(7, Determinism())
    assert state.torch_initial_seed == 7 == torch.initial_seed() and state.seeded == repro.SEEDED
    assert repro.read_state(3, True).torch_initial_seed == 7  # read back, not copied from the argument


def test_seed_everything_repeats_every_generator() -> None:
    def draw() -> tuple[float, float, torch.Tensor]:
        return random.random(), float(np.random.rand()), torch.rand(3)

    repro.seed_everything(123)
    first = draw()
    repro.seed_everything(123)
    second = draw()
    repro.seed_everything(124)
    other = draw()
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    assert first[:2] != other[:2] and not torch.equal(first[2], other[2])



@pytest.mark.parametrize("enabled", [True, False])
def test_inductor_kernel_choice_by_timing_is_named_only_where_it_happens(enabled: bool) -> None:
    """torch.use_deterministic_algorithms also switches inductor's deterministic mode (no autotuning)."""
    import torch._inductor.config as inductor_config

    state = repro.enforce(0, Determinism(enabled=enabled))
    assert state.inductor_deterministic is enabled is inductor_config.deterministic  # read back
    timing = "picks kernels (autotuning, Triton configurations) by timing them"
    for compile_mode, device, named in [("default", "cuda", not enabled), ("max-autotune", "cpu", not enabled),
                                        ("default", "cpu", False), ("off", "cuda", False)]:  # fmt: skip
        spec = Spec(name="x", determinism={"enabled": enabled}, train={"compile": compile_mode})
        sources = repro.nondeterminism_sources(spec, state, device)
        assert any(timing in s for s in sources) is named, (compile_mode, device, sources)
    repro.enforce(0, Determinism())  # leave the process as the other tests expect it


def _cuda_state(**flags: object) -> repro.DeterminismState:
    """A state as `enforce` reads it back in deterministic mode on CUDA, with `flags` replaced."""
    state = replace(repro.read_state(0, True), cudnn_deterministic=True, cudnn_benchmark=False,
                    deterministic_algorithms=True, fill_uninitialized_memory=True,
                    cublas_workspace_config=repro.CUBLAS_CONFIG, cuda_initialized_before=False,
                    inductor_deterministic=True)  # fmt: skip
    return replace(state, **flags)


CUDA_ONLY = {  # a flag away from the deterministic setting -> the source it names (on CUDA, never on the CPU)
    "cudnn_benchmark": (True, "cudnn.benchmark is on: convolution algorithms are chosen by timing"),
    "cudnn_deterministic": (False, "cudnn.deterministic is off: cuDNN may pick non-deterministic kernels"),
    "cublas_workspace_config": (None, "CUBLAS_WORKSPACE_CONFIG is unset: cuBLAS GEMMs may vary"),
    "cuda_initialized_before": (True, "CUDA was initialised before CUBLAS_WORKSPACE_CONFIG was set: it may not apply"),
}


@pytest.mark.parametrize("flag", list(CUDA_ONLY))
def test_each_cuda_flag_out_of_its_deterministic_setting_is_named_on_cuda_only(flag: str) -> None:
    spec = Spec(name="x")
    value, said = CUDA_ONLY[flag]
    assert said not in repro.nondeterminism_sources(spec, _cuda_state(), "cuda:0")
    cuda = repro.nondeterminism_sources(spec, _cuda_state(**{flag: value}), "cuda:0")
    assert cuda[0] == said and not cuda[1:-1], cuda  # that source alone, then the thread count
    assert said not in repro.nondeterminism_sources(spec, _cuda_state(**{flag: value}), "cpu")


def test_compile_on_cuda_is_named_as_other_numerics_and_the_deterministic_state_names_nothing_else() -> None:
    state = _cuda_state()
    assert [s for s in repro.nondeterminism_sources(Spec(name="x"), state, "cuda") if "thread" not in s] == []
    compiled = repro.nondeterminism_sources(Spec(name="x", train={"compile": "default"}), state, "cuda")
    assert compiled[:1] == ["torch.compile (default): inductor kernels differ from eager numerics"]
    assert not any("compile" in s for s in repro.nondeterminism_sources(
        Spec(name="x", train={"compile": "default"}), state, "cpu"))  # default mode on the CPU: no kernel timed
