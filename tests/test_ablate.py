"""Tests for `auditor ablate`: file validation, planning, resumable runs and the aggregate page."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import SUBSET, fake_cifar_root, requires_subset, run_cli

import auditor
from auditor.ablate import (
    STALE_RUN,
    build_plan,
    choose_seeds,
    fmt_reference,
    fmt_stat,
    fmt_value,
    load_ablation,
    make_figures,
    resolve_base,
    software_label,
    summarize,
)
from auditor.audit import run_paths
from auditor.check import check_refusal
from auditor.cli import main
from auditor.errors import InvalidInput
from auditor.fileio import held_lock
from auditor.spec import resource_dir

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "specs" / "ablations"

# 2 variants x 2 seeds of the shipped smoke spec, shrunk to a few seconds per run.
TINY = """\
name: tiny
description: two schedules x two seeds on synthetic data
base: smoke
overrides:
  - train.epochs=1
  - data.synthetic.train=240
  - data.synthetic.test=60
  - data.val_split=60
  - measure.latency.warmup=0
  - measure.latency.iters=5
seeds: [0, 1]
variants:
  cosine: []
  constant: [train.schedule.name=constant]
reference:
  cosine: {best_val_acc: 0.5, note: made-up figure}
"""
VARIANTS, SEEDS = ("cosine", "constant"), (0, 1)
ACC = ("best_val_acc", "final_val_acc", "test_acc")
# The tiny-budget options documented in both presets' comments.
TINY_BUDGET = [
    "train.epochs=1", "train.schedule.milestones=[0.5]", f"data.root={os.path.relpath(SUBSET, REPO)}",
    "data.limit_train=256", "data.val_split=128", "data.limit_test=256", "train.device=cpu",
    "measure.latency.warmup=0", "measure.latency.iters=5",
]  # fmt: skip


def ablate(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`auditor ablate ARGS` in a fresh process, as a user would call it."""
    return subprocess.run(
        [sys.executable, "-m", "auditor", "ablate", *args],
        cwd=cwd, check=False, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sets(items: list[str]) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def assert_invalid(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in: {proc.stderr}"


# --- validation before any run (fast) ---------------------------------------------------


def test_a_record_no_float_can_read_is_unreadable_as_for_check_and_render(tmp_path: Path) -> None:
    """A hand-edited 400-digit integer made the page's float() of it overflow (a traceback)."""
    from auditor.ablate import _read_json

    (tmp_path / "audit.json").write_text(json.dumps({"metrics": {"test_acc": 10**400}}))
    assert _read_json(tmp_path / "audit.json") is None
    (tmp_path / "audit.json").write_text(json.dumps({"metrics": {"test_acc": 0.5}}))
    assert _read_json(tmp_path / "audit.json") == {"metrics": {"test_acc": 0.5}}


def test_bad_override_fails_before_training(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml", TINY.replace(
        "  constant: [train.schedule.name=constant]",
        "  constant: [train.schedule.name=constant]\n  nobn: [model.norm=none, train.optimizer.lr=-1]",
    ))  # fmt: skip
    proc = ablate("x.yaml", "--out", "out", cwd=tmp_path)
    assert_invalid(proc, "x.yaml:15: variant 'nobn': train.optimizer.lr", "got -1")  # the variant's line
    assert not (tmp_path / "out").exists()  # nothing ran, not even the valid variants


def test_a_variant_s_line_is_named_only_for_a_problem_of_its_own_overrides(tmp_path: Path) -> None:
    """A review: a problem of the shared overrides, with --only one variant, named that variant's line."""
    f = write(tmp_path / "x.yaml", TINY.replace("  - train.epochs=1\n", "  - train.epochs=-1\n").replace(
        "constant: [train.schedule.name=constant]", "constant: [train.optimizer.lr=-1]"))  # fmt: skip
    with pytest.raises(InvalidInput) as err:
        build_plan(str(f), only=["constant"])
    assert sorted(str(err.value).splitlines()) == [
        f"{f}:14: variant 'constant': train.optimizer.lr: input should be greater than 0, got -1",
        (f"{f}:5: base smoke with the overrides (variant 'constant'): train.epochs: input should be greater than or "
         "equal to 1, got -1")]  # fmt: skip


def test_a_problem_of_the_file_s_overrides_names_their_line_and_is_no_lone_variant_s(tmp_path: Path) -> None:
    """A user test: a file-wide override's problem had no line, and in a file of one variant, it and
    a --set's were blamed on that variant."""
    shared = TINY.replace("  - train.epochs=1\n", "  - train.epochs=1\n  - model.depth=3\n")
    for text in (shared, shared.replace("  constant: [train.schedule.name=constant]\n", "")):
        f = write(tmp_path / "x.yaml", text)
        with pytest.raises(InvalidInput) as err:
            build_plan(str(f))
        assert str(err.value) == f"{f}:6: base smoke with the overrides (every variant): model.depth: unknown key (not in the spec schema)"
    one = write(tmp_path / "one.yaml", TINY.replace("  constant: [train.schedule.name=constant]\n", "").replace(
        "reference:\n  cosine: {best_val_acc: 0.5, note: made-up figure}\n", ""))  # fmt: skip
    with pytest.raises(InvalidInput) as err:
        build_plan(str(one), cli_sets=["train.epochz=1"])
    assert str(err.value).startswith(f"{one}: base smoke with the overrides (every variant) --set 'train.epochz=1': train.epochz: ")
    with pytest.raises(InvalidInput) as err:  # a VALUE refused as YAML is named so too (the review)
        build_plan(str(one), cli_sets=["train.optimizer.lr=1e-400"])
    assert str(err.value) == (f"{one}: base smoke with the overrides (every variant) --set 'train.optimizer.lr=1e-400': "
                              "1e-400 is too small for a float to tell from 0 (it would read as 0.0): write 0, or a "
                              "larger value (column 1)")  # fmt: skip
    mine = write(tmp_path / "mine.yaml", TINY.replace("  constant: [train.schedule.name=constant]\n", "").replace(
        "cosine: []", "cosine: [train.optimizer.lr=-1]"))  # fmt: skip
    with pytest.raises(InvalidInput) as err:
        build_plan(str(mine))
    assert str(err.value).startswith(f"{mine}:13: variant 'cosine': train.optimizer.lr: ")  # its own: its line


def test_override_path_not_in_schema(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml", TINY.replace("cosine: []", "cosine: [train.optimiser.lr=0.1]"))
    proc = ablate("x.yaml", "--out", "out", cwd=tmp_path)
    assert_invalid(proc, "x.yaml:13: variant 'cosine': train.optimiser: unknown key")
    assert not (tmp_path / "out").exists()


def test_unknown_only_variant(tmp_path: Path) -> None:
    write(tmp_path / "x.yaml", TINY)
    proc = ablate("x.yaml", "--only", "nobn", "--out", "out", cwd=tmp_path)
    assert_invalid(proc, "x.yaml", "'nobn'", "cosine, constant")
    assert not (tmp_path / "out").exists()


def test_base_that_does_not_validate(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "name: b\ndata: {dataset: synthetic}\ntrain: {epochs: 2, optimiser: {}}\n")
    write(tmp_path / "x.yaml", "name: x\nbase: base.yaml\nseeds: [0]\nvariants: {a: [], b: [train.epochs=3]}\n")
    proc = ablate("x.yaml", "--out", "out", cwd=tmp_path)
    assert_invalid(proc, "x.yaml: base base.yaml", "train.optimiser: unknown key")
    assert not (tmp_path / "out").exists()


def test_missing_base(tmp_path: Path) -> None:
    from auditor import ablate as ablate_module

    write(tmp_path / "x.yaml", TINY.replace("base: smoke", "base: nowhere.yaml"))
    with pytest.raises(InvalidInput, match=r"x.yaml: base: 'nowhere.yaml' not found") as info:
        build_plan(str(tmp_path / "x.yaml"))
    assert "shipped ablation" not in str(info.value)
    write(tmp_path / "y.yaml", TINY.replace("base: smoke", "base: plain_vs_resnet"))  # a user test: read as a typo
    with pytest.raises(InvalidInput) as info:
        build_plan(str(tmp_path / "y.yaml"))
    shown = ablate_module.display_path(REPO / "specs/ablations/plain_vs_resnet.yaml")
    assert str(info.value).endswith(f"nor as a path or shipped spec name; 'plain_vs_resnet' names a shipped ablation "
                                    f"file ({shown}), not a spec: an ablation's base is the spec its variants change")


def test_a_base_beside_the_ablation_that_cannot_be_read_is_not_the_shipped_spec(tmp_path: Path) -> None:
    """A link to nothing named as the base, beside the ablation file, had given the shipped spec of its name."""
    (tmp_path / "smoke").symlink_to("/nonexistent/mine.yaml")
    write(tmp_path / "x.yaml", TINY)  # base: smoke
    with pytest.raises(InvalidInput, match=rf"x.yaml: base: {re.escape(str(tmp_path / 'smoke'))}: a broken symbolic "
                                           "link to /nonexistent/mine.yaml$"):  # fmt: skip
        build_plan(str(tmp_path / "x.yaml"))


def test_a_base_named_as_a_shipped_spec_beside_a_folder_of_that_name_is_the_shipped_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier run's --out smoke, beside the ablation file or in the working folder: the bare
    name still means the shipped spec; a base written as a file where a folder stands is refused
    as such, not as 'not found'."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "smoke").mkdir()
    (tmp_path / "sub" / "smoke").mkdir()
    write(tmp_path / "sub" / "x.yaml", TINY)  # base: smoke
    path, abl = load_ablation(str(tmp_path / "sub" / "x.yaml"))
    assert resolve_base(path, abl, "x.yaml") == resource_dir("specs") / "smoke.yaml"
    (tmp_path / "smoke.yaml").mkdir()
    write(tmp_path / "sub" / "y.yaml", TINY.replace("base: smoke", f"base: {tmp_path / 'smoke.yaml'}"))
    with pytest.raises(InvalidInput, match=rf"y.yaml: base: {re.escape(str(tmp_path / 'smoke.yaml'))}: a folder, not a spec file$"):
        build_plan(str(tmp_path / "sub" / "y.yaml"))


def test_a_base_that_is_an_ablation_file_and_a_file_that_is_a_list(tmp_path: Path) -> None:
    inner = write(tmp_path / "inner.yaml", TINY)
    write(tmp_path / "x.yaml", TINY.replace("base: smoke", f"base: {inner}"))
    with pytest.raises(InvalidInput, match=rf"x.yaml: base: {inner} is an ablation file; the base must be a spec$"):
        build_plan(str(tmp_path / "x.yaml"))
    write(tmp_path / "y.yaml", "- a\n- b\n")
    with pytest.raises(InvalidInput, match="y.yaml: the ablation file must be a YAML mapping, got list"):
        build_plan(str(tmp_path / "y.yaml"))
    # A run's record where a spec or an ablation file goes (a user test: dozens of unknown keys were listed).
    (tmp_path / "r").mkdir()
    record = write(tmp_path / "r/audit.json", json.dumps({"schema_version": 1, "run": {}, "spec": {}, "verdict": "PASS",
                                                          "model": {}, "data": {}}))  # fmt: skip
    with pytest.raises(InvalidInput, match=re.escape(f"{record}: a run's audit record (audit.json), not an ablation file; "
                                                     f"the spec that run trained is in {tmp_path / 'r/spec.resolved.yaml'}")):
        build_plan(str(record))
    write(tmp_path / "z.yaml", TINY.replace("base: smoke", f"base: {record}"))
    with pytest.raises(InvalidInput, match=re.escape(f"z.yaml: base: {record}: a run's audit record (audit.json), not a spec")):
        build_plan(str(tmp_path / "z.yaml"))


def test_an_unknown_key_of_a_reference_entry_of_a_variant_named_with_a_dot_is_offered_the_entry_s_keys(tmp_path: Path) -> None:
    """A review: `reference.lr0.1.tst_acc` was taken for a key of the file (its place read from the dotted text)."""
    text = TINY.replace("cosine: []", "lr0.1: []").replace("cosine: {best_val_acc: 0.5,", "lr0.1: {tst_acc: 0.5,")
    with pytest.raises(InvalidInput, match=re.escape("x.yaml:16: reference.lr0.1.tst_acc: unknown key (a reference "
                                                     "entry has: best_val_acc, final_val_acc, test_acc, note)")):  # fmt: skip
        build_plan(str(write(tmp_path / "x.yaml", text)))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("seeds: [0, 1]", "seeds: [0, 1, 0]"), "seeds: seeds must be unique"),
        (("seeds: [0, 1]", "seeds: [0, 1, 4294967296]"), "seeds: seeds [0, 4294967296] are equal modulo 2**32"),
        (("seeds: [0, 1]", "seeds: []"), "seeds: needs at least 1 value, got []"),
        (("name: tiny", "name: tiny\nextra: 1"), "extra: unknown key"),
        (("name: tiny", "name: tiny\nseed: 1"), ("seed: unknown key (an ablation file has: name, description, base, "
                                                  "overrides, seeds, variants, figure, reference, reference_note); "
                                                  "did you mean seeds?")),
        (("cosine: []", "cosine: [seed=3]"), "variants.cosine.0: override 'seed=3': seed is set by ablate"),
        (("cosine: []", "cosine: [train.epochs=2, train.epochs=3]"), "variants.cosine: sets train.epochs more than once"),
        (("cosine: []", "cosine: ['train.optimizer={lr: 0.1}', train.optimizer.lr=0.2]"),
         "variants.cosine: sets train.optimizer.lr more than once"),
        (("cosine: []", "'co sine': []"), "variants.co sine (the name): may contain only ASCII letters, digits"),
        (("cosine: []", "cosine: ['train.epochs =2']"), ("variants.cosine.0: override 'train.epochs =2': its KEY has a "
                                                          "space at the start or end of 'train.epochs '; no spec key has "
                                                          "one: write 'train.epochs=2'")),
        (("cosine: []", "cosine: ['train.epochs: 2']"), "override 'train.epochs: 2': expected KEY=VALUE; write it as 'train.epochs=2'"),
        (("cosine: []", "cosine: ['description=[oops']"), """for text, quote it: 'description="[oops"')"""),
        (("cosine: []", "Constant: []"), "variant names 'Constant', 'constant' differ only in case: their runs' folders"),
        (("cosine: {best_val_acc: 0.5,", "nobn: {best_val_acc: 0.5,"), "x.yaml:15: reference: names unknown variants ['nobn']"),  # file:line
        (("cosine: {best_val_acc: 0.5,", "cosine: {best_val_acc: 94.1,"), "reference.cosine.best_val_acc"),
        # A user test: a reference entry's unknown key was offered the file's own keys.
        (("cosine: {best_val_acc: 0.5,", "cosine: {latency_ms: 3,"), ("x.yaml:16: reference.cosine.latency_ms: unknown key "
                                                                    "(a reference entry has: best_val_acc, final_val_acc, "
                                                                    "test_acc, note)")),
        (("seeds: [0, 1]", f"seeds: {list(range(1001))}"), "seeds: takes at most 1,000 values"),  # as --seeds: a user test
        (("cosine: {best_val_acc: 0.5,", "cosine: {tst_acc: 0.5,"), ("reference.cosine.tst_acc: unknown key (a reference "
                                                                 "entry has: best_val_acc, final_val_acc, test_acc, note); "
                                                                 "did you mean reference.cosine.test_acc?")),
        # A review: a variant named with a dot, and a key with a space, had been offered the file's keys / none.
        (("cosine: {best_val_acc: 0.5,", "cosine: {'test acc': 0.5,"), ("reference.cosine.test acc: unknown key (a "
                                                                       "reference entry has: best_val_acc,")),
        (("name: tiny", "name: tiny\nmy key: 1"), "my key: unknown key (an ablation file has: name, description,"),
    ],
)
def test_ablation_file_is_strict(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    f = write(tmp_path / "x.yaml", TINY.replace(*edit))
    with pytest.raises(InvalidInput) as exc:
        build_plan(str(f))
    assert str(f) in str(exc.value) and needle.lower() in str(exc.value).lower(), str(exc.value)


def test_a_set_whose_value_is_refused_is_named(tmp_path: Path) -> None:
    """A user test: `--set train.epochs=x` was blamed on every variant, as if the file were wrong."""
    f = write(tmp_path / "x.yaml", TINY)
    with pytest.raises(InvalidInput) as exc:
        build_plan(str(f), cli_sets=["train.epochs=x"])
    assert str(exc.value) == (f"{f}: base smoke with the overrides (every variant) --set 'train.epochs=x': train.epochs: "
                              "input should be a valid integer, got 'x'")  # fmt: skip
    # A key a variant sets itself is the variant's: its value wins, so the --set is not refused for it.
    one = write(tmp_path / "z.yaml", TINY.replace("cosine: []", "cosine: [train.epochs=2]"))
    with pytest.raises(InvalidInput) as exc:
        build_plan(str(one), cli_sets=["train.epochs=x"])
    assert str(exc.value) == f"{one}: variant 'constant' --set 'train.epochs=x': train.epochs: input should be a valid integer, got 'x'"
    # A check across fields is each variant's: one whose own value makes the --set valid plans (the review).
    warm = write(tmp_path / "w.yaml", TINY.replace("cosine: []", "cosine: [train.epochs=10]"))
    with pytest.raises(InvalidInput) as exc:
        build_plan(str(warm), cli_sets=["train.schedule.warmup_epochs=5"])
    assert str(exc.value).startswith(f"{warm}: variant 'constant' --set 'train.schedule.warmup_epochs=5': ")
    assert [r.variant for r in build_plan(str(warm), cli_sets=["train.schedule.warmup_epochs=5"], only=["cosine"]).runs] == [
        "cosine", "cosine"]  # fmt: skip
    mine = write(tmp_path / "y.yaml", TINY.replace("cosine: []", "cosine: [train.epochs=2]").replace(
        "constant: [train.schedule.name=constant]", "constant: [train.schedule.name=constant, train.epochs=3]"))  # fmt: skip
    assert {r.spec.train.epochs for r in build_plan(str(mine), cli_sets=["train.epochs=x"]).runs} == {2, 3}


def test_override_order_and_names(tmp_path: Path) -> None:
    f = write(tmp_path / "x.yaml", TINY.replace("cosine: []", "cosine: [train.epochs=2]"))
    plan = build_plan(str(f), cli_sets=["train.epochs=5", "train.batch_size=32"])
    by = {(r.variant, r.seed): r for r in plan.runs}
    assert [r.name for r in plan.runs] == [f"tiny-{v}-s{s}" for v in VARIANTS for s in SEEDS]
    assert by["cosine", 1].spec.train.epochs == 2  # the variant wins over --set
    assert by["constant", 1].spec.train.epochs == 5  # --set wins over the file's overrides
    assert by["constant", 0].spec.train.batch_size == 32
    assert by["constant", 1].spec.seed == 1 and by["constant", 1].spec.name == "tiny-constant-s1"
    assert any("variant 'cosine' sets train.epochs" in w for w in plan.warnings)
    assert len({r.spec_hash for r in plan.runs}) == 4


def test_seeds_option() -> None:
    assert choose_seeds([3, 1, 2], 2, "f")[0] == [3, 1]
    seeds, note = choose_seeds([0, 1, 2], 5, "f")
    assert seeds == [0, 1, 2, 3, 4] and "f lists 3 seeds [0, 1, 2]; extended with [3, 4]" in note
    assert "f lists 1 seed [0]; extended with [1, 2]" in choose_seeds([0], 3, "f")[1]
    for n in (0, 1001, 10**23):  # a mistyped count planned millions of runs (or overflowed)
        with pytest.raises(InvalidInput, match="--seeds: must be 1 to 1000"):
            choose_seeds([0], n, "f")
    # Seeds --seeds makes that no run can take are said of --seeds (a user test: blamed on a variant's run).
    with pytest.raises(InvalidInput, match=re.escape("--seeds 2: f lists 1 seed [9223372036854775807]; extending them "
                                                     "from max+1 passes the largest seed, 9223372036854775807")):
        choose_seeds([2**63 - 1], 2, "f")
    with pytest.raises(InvalidInput, match=re.escape("--seeds 3: extending f's seeds [1, 4294967296] from max+1 gives "
                                                     "4294967297, equal modulo 2**32 to a listed seed")):
        choose_seeds([1, 2**32], 3, "f")


def test_summary_and_format() -> None:
    s = summarize([0.9391, 0.9379, None, 0.9403])
    assert s["n"] == 3 and s["mean"] == pytest.approx(statistics.mean([0.9391, 0.9379, 0.9403]))
    assert s["std"] == pytest.approx(statistics.stdev([0.9391, 0.9379, 0.9403]))
    assert fmt_stat(s, "acc", 4) == f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f} % (n=3)"
    one = summarize([0.5])
    assert one["std"] is None and fmt_stat(one, "acc", 1) == "50.00 %"
    assert fmt_stat(summarize([None]), "acc", 1) == "—"


def test_parameter_counts_below_a_million_keep_three_figures() -> None:
    """An ablation audit: a 0.0753 M model read "0.08 M" (the sheet says 0.0753 M)."""
    assert fmt_stat(summarize([0.0753, 0.0753]), "millions", 2) == "0.0753 M"
    assert fmt_value(0.0753, "millions") == "0.0753 M" and fmt_value(11.1737, "millions") == "11.17 M"
    assert fmt_stat(summarize([0.27, 0.0753]), "millions", 2) == "0.173 ± 0.138 M"


def test_figures_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    figs = make_figures({"variants": [], "ablation": {"name": "x", "figure": None}}, tmp_path)
    assert figs["available"] is False and "matplotlib is not installed" in figs["note"]


# --- shipped presets ---------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "n_variants"), [("resnet18_cifar10", 7), ("plain_vs_resnet", 5)])
def test_presets_validate(preset: str, n_variants: int) -> None:
    plan = build_plan(str(PRESETS / f"{preset}.yaml"))
    assert len(plan.variants) == n_variants and list(plan.seeds) == [0, 1, 2]
    assert len(plan.runs) == 3 * n_variants
    tiny = build_plan(str(PRESETS / f"{preset}.yaml"), cli_sets=TINY_BUDGET, n_seeds=1)
    assert all(r.spec.train.epochs == 1 and r.spec.train.device == "cpu" for r in tiny.runs)


def test_resnet18_preset_contents() -> None:
    plan = build_plan(str(PRESETS / "resnet18_cifar10.yaml"))
    spec = {r.variant: r.spec for r in plan.runs if r.seed == 0}
    assert all(s.train.epochs == 100 for s in spec.values())
    assert spec["multistep"].train.schedule.name == "multistep"
    assert spec["multistep"].train.schedule.milestones == [50, 75]
    assert spec["constant"].train.schedule.name == "constant" and spec["cosine"].train.schedule.name == "cosine"
    assert spec["no-bn"].model.norm == "none" and spec["no-bn"].train.optimizer.lr == 0.01
    assert spec["resnet34"].model.name == "resnet34" and spec["resnet50"].model.name == "resnet50"
    assert spec["batch32"].train.batch_size == 32
    assert plan.ablation.reference["cosine"].best_val_acc == 0.941


def test_plain_vs_resnet_preset_contents() -> None:
    plan = build_plan(str(PRESETS / "plain_vs_resnet.yaml"))
    spec = {r.variant: r.spec for r in plan.runs if r.seed == 0}
    assert {v: s.model.name for v, s in spec.items()} == {v: v for v in spec}
    assert spec["resnet110"].train.schedule.warmup_epochs == 1
    assert spec["resnet20"].train.schedule.milestones == [91, 136] and plan.figure == "depth"
    assert plan.ablation.reference["resnet110"].test_acc == 0.9357
    assert plan.ablation.reference["resnet110"].note == "best of 5 runs; mean 93.39 %"


def test_reference_cells_say_what_the_number_is() -> None:
    assert fmt_reference({"test_acc": 0.9357, "note": "best of 5 runs"}, "test_acc") == "93.57 % (best of 5 runs)"
    assert fmt_reference({"test_acc": 0.9125}, "test_acc") == "91.25 %"  # records without notes
    assert fmt_reference({"test_acc": 0.9125, "note": None}, "best_val_acc") == "—"
    assert fmt_reference(None, "test_acc") == "—"


@pytest.mark.parametrize("preset", ["resnet18_cifar10", "plain_vs_resnet"])
def test_presets_list_and_dry_run(preset: str, tmp_path: Path) -> None:
    listed = ablate(f"specs/ablations/{preset}.yaml", "--list", cwd=REPO)
    assert listed.returncode == 0, listed.stderr
    plan = build_plan(str(PRESETS / f"{preset}.yaml"))
    for v in plan.variants:
        assert re.search(rf"^{re.escape(v)}\s", listed.stdout, re.MULTILINE), listed.stdout
    out, data = tmp_path / "out", fake_cifar_root(tmp_path / "data")  # read as a run reads it: 20 training images
    sets = [f"data.root={data}", "data.val_split=5"]
    plan = build_plan(str(PRESETS / f"{preset}.yaml"), sets)
    dry = ablate(f"specs/ablations/{preset}.yaml", "--dry-run", *(x for s in sets for x in ("--set", s)), "--out", str(out),
                 cwd=REPO)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    for r in plan.runs:
        assert r.name in dry.stdout and r.spec_hash[:12] in dry.stdout
    assert dry.stdout.count("auditor run ") == len(plan.runs)
    # Where the data is not, the plan is listed all the same, and what the ablation would refuse said (exit 2).
    nowhere = ablate(f"specs/ablations/{preset}.yaml", "--dry-run", "--set", f"data.root={tmp_path / 'no'}",
                     "--out", str(out), cwd=REPO)  # fmt: skip
    assert nowhere.returncode == 2 and nowhere.stdout.count("auditor run ") == len(plan.runs)
    assert nowhere.stdout.rstrip().endswith("# dry run: nothing was run or written")
    assert f"data.root: {tmp_path / 'no'} does not exist" in nowhere.stderr and "Traceback" not in nowhere.stderr
    # A copy too small for the held-out images: read as each run would read it, and refused before any run.
    small = ablate(f"specs/ablations/{preset}.yaml", "--dry-run", "--set", f"data.root={data}", "--out", str(out),
                   cwd=REPO)  # fmt: skip
    assert small.returncode == 2 and "data.val_split: 5000" in small.stderr, small.stderr
    assert "must be smaller than the 20 training images" in small.stderr and "Traceback" not in small.stderr
    assert not out.exists()


def test_list_takes_only_and_a_spec_given_as_an_ablation_is_named_as_such(tmp_path: Path) -> None:
    write(tmp_path / "tiny.yaml", TINY)
    listed = ablate("tiny.yaml", "--list", "--only", "constant", cwd=tmp_path)
    assert listed.returncode == 0 and "constant" in listed.stdout and "\ncosine" not in listed.stdout
    assert "\n# seeds: [0, 1]\n" in listed.stdout
    more = ablate("tiny.yaml", "--list", "--seeds", "3", cwd=tmp_path)  # a user test: --seeds was ignored here
    assert more.returncode == 0 and "\n# seeds: [0, 1, 2]  (--seeds 3: " in more.stdout, more.stdout + more.stderr
    proc = ablate("tiny.yaml", "--list", "--only", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "--only: unknown variant 'nope'" in proc.stderr
    # A user test: a misspelt override, or a base that is not there, was listed with exit 0. The runs'
    # specs are not validated (that needs torch, which --list does without); the listing says so.
    write(tmp_path / "typo.yaml", TINY.replace("train.schedule.name=constant", "train.schedul.name=constant"))
    proc = ablate("typo.yaml", "--list", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.endswith("\n# the overrides as written: --dry-run resolves and validates every run\n")
    assert ablate("typo.yaml", "--dry-run", cwd=tmp_path).returncode == 2
    write(tmp_path / "nobase.yaml", TINY.replace("base: smoke", "base: nonexist.yaml"))
    proc = ablate("nobase.yaml", "--list", cwd=tmp_path)
    assert proc.returncode == 2 and "nonexist.yaml" in proc.stderr and not proc.stdout
    proc = ablate(str(REPO / "specs/smoke.yaml"), "--list", cwd=tmp_path)
    assert proc.returncode == 2 and "a spec, not an ablation file" in proc.stderr and proc.stderr.count("\n") == 1


def test_modes_that_each_run_nothing_are_exclusive(tmp_path: Path) -> None:
    write(tmp_path / "tiny.yaml", TINY)
    proc = ablate("tiny.yaml", "--list", "--render-only", cwd=tmp_path)
    assert proc.returncode == 2 and "argument --render-only: not allowed with argument --list" in proc.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.yaml"]


def test_render_only_before_any_run_says_so_without_warnings(tmp_path: Path) -> None:
    write(tmp_path / "tiny.yaml", TINY)
    (tmp_path / "out/reports/tiny-cosine-s0").mkdir(parents=True)
    (tmp_path / "out/reports/tiny-cosine-s0/audit.json").write_text('{"truncated": ')
    proc = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "3 planned runs have no finished report yet" in proc.stdout + proc.stderr
    # A user test: the console said the run whose record cannot be read had none, where the page says so.
    assert "note: 1 run not counted, as its audit.json cannot be read (listed on the page): tiny-cosine-s0" in proc.stdout
    assert (tmp_path / "out/reports/tiny/figures/val_acc.png").is_file()
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    assert "`tiny-cosine-s0` (its audit.json is unreadable)" in page and "`tiny-cosine-s1` (no report: not run yet, or its report was removed)" in page


def test_child_run_commands_take_dash_leading_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The review: a base `./-b.yaml` and an `--out=-o` were handed to the child runs as `-b.yaml`
    and `--out -o`, which argparse took for options: every run failed."""
    import shlex

    from auditor.ablate import run_argv, shell_command
    from auditor.cli import build_parser

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-b.yaml").write_text("name: b\n")
    write(tmp_path / "-a.yaml", TINY.replace("base: smoke", "base: ./-b.yaml"))
    plan = build_plan("./-a.yaml")
    argv = run_argv(plan, plan.runs[0], Path("-o"), resume=True)
    assert argv[1] == "./-b.yaml" and "--out=-o" in argv
    args = build_parser().parse_args(shlex.split(shell_command(argv))[1:])
    assert (args.spec, str(args.out), args.resume) == ("./-b.yaml", "-o", True)


def test_the_console_says_stale_runs_are_stale_not_missing() -> None:
    """A user test: a run of another --set, listed on the page as stale, was 'no finished report yet'."""
    from auditor import ablate

    missing = [{"seed": 0, "name": "t-a-s0", "why": "stale"}, {"seed": 1, "name": "t-a-s1", "why": "not run"}]
    notes = ablate.page_notes({"variants": [{"runs": [], "missing": missing}], "mixed_software": []})
    stale = "note: 1 run not counted, as its audit.json was written by a different spec than the plan's (stale; "
    assert notes == [f"{stale}listed on the page): t-a-s0", "note: 1 planned run has no finished report yet (listed on the page)"]


def test_render_only_of_an_out_holding_no_run_of_the_ablation_is_refused(tmp_path: Path) -> None:
    """A user test: a mistyped --out got an empty page (every run 'not run yet') and exit 0."""
    f = write(tmp_path / "tiny.yaml", TINY)
    for other in ("other-s0", "tiny-wide-cosine-s0"):  # other ablations' runs (`tiny-wide` begins as `tiny` does)
        (tmp_path / "out/reports" / other).mkdir(parents=True)
        (tmp_path / "out/reports" / other / "audit.json").write_text("{}")
    proc = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path)
    assert_invalid(proc, "--render-only: out/reports holds no report of a run of tiny (tiny-<variant>-s<seed>/audit.json) "
                         "and no page of it: nothing to aggregate; run the ablation (without --render-only), or give the "
                         "--out it was run with; nothing was written")  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out/reports").iterdir()) == ["other-s0", "tiny-wide-cosine-s0"]
    _first_run_finished(f, tmp_path / "out")
    assert ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path).returncode == 0


def test_a_page_that_cannot_be_written_names_what_is_in_the_way(tmp_path: Path) -> None:
    _first_run_finished(write(tmp_path / "tiny.yaml", TINY), tmp_path / "out")
    (tmp_path / "out/reports/tiny").write_text("a file where the page's folder goes\n")
    proc = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path)
    assert_invalid(proc, "--out: cannot write under out: out/reports/tiny is a file, not a folder")
    assert (tmp_path / "out/reports/tiny").read_text() == "a file where the page's folder goes\n"


def test_a_page_edited_by_hand_is_kept_by_a_rebuild_and_refused_before_any_run(tmp_path: Path) -> None:
    """A user test: `--render-only` replaced a page edited by hand, losing the edit."""
    f = write(tmp_path / "tiny.yaml", TINY)
    done = _first_run_finished(f, tmp_path / "out")
    assert ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path).returncode == 0
    page = tmp_path / "out/reports/tiny/ABLATIONS.md"
    assert page.read_text().endswith(" (a rebuild replaces this file only while it matches) -->\n")
    assert ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path).returncode == 0  # as written: rebuilt
    page.write_text(page.read_text() + "Our reading of it.\n")
    kept = {p: p.read_bytes() for p in page.parent.rglob("*") if p.is_file()}
    said = ("out/reports/tiny/ABLATIONS.md: it was edited by hand: text follows the mark of auditor's on what was its last line; "
            "it is kept, and nothing was written: move it away (or delete it) to have auditor write the page again")
    for args in (["--render-only"], ["--seeds", "2"]):  # the second would train a run first
        proc = ablate("tiny.yaml", *args, "--out", "out", cwd=tmp_path)
        assert_invalid(proc, said)
        assert {p: p.read_bytes() for p in page.parent.rglob("*") if p.is_file()} == kept
    assert sorted(p.name for p in (tmp_path / "out/reports").glob("[!.]*")) == ["tiny", done]  # no run trained


def test_finished_runs_of_a_changed_spec_are_refused_unless_replace_stale(tmp_path: Path) -> None:
    """A user test: a one-off `--set train.epochs=3` replaced the finished runs of a whole study, with
    no word before it had; the dry run said "run" above the refusal of a run no ablation made."""
    f = write(tmp_path / "tiny.yaml", TINY)
    done = _first_run_finished(f, tmp_path / "out")
    record = json.loads((tmp_path / "out/reports" / done / "audit.json").read_text())
    record["run"]["ablation_run"] = {"ablation": "tiny", "variant": "cosine", "seed": 0}  # as the ablation made it
    (tmp_path / "out/reports" / done / "audit.json").write_text(json.dumps(record))
    kept = (tmp_path / "out/reports" / done / "audit.json").read_bytes()
    longer = ("--set", "train.epochs=2")
    said = (f"tiny.yaml: variant 'cosine' seed 0: out/reports/{done}: a finished run of this ablation, made under a spec "
            "that has changed since (the file, its base or a --set), which running would replace, its report and "
            "checkpoints\nnothing was run; add --replace-stale to train such runs again in their place, or keep them: use "
            "another --out, or rename the ablation (or give the --set they were made with)")  # fmt: skip
    for mode in ([], ["--dry-run"]):
        proc = ablate("tiny.yaml", *longer, *mode, "--out", "out", cwd=tmp_path)
        assert_invalid(proc, said)
        assert (tmp_path / "out/reports" / done / "audit.json").read_bytes() == kept
    plan = ablate("tiny.yaml", *longer, "--dry-run", "--out", "out", cwd=tmp_path).stdout
    assert f"{done}  variant cosine  seed 0  [refused: a finished run of a different spec, which --replace-stale " in plan
    plan = ablate("tiny.yaml", *longer, "--dry-run", "--replace-stale", "--out", "out", cwd=tmp_path)
    assert plan.returncode == 0 and f"{done}  variant cosine  seed 0  [run (replaces a run of a different spec)]" in plan.stdout
    del record["run"]["ablation_run"]  # a run of other settings that no ablation made: refused even so
    (tmp_path / "out/reports" / done / "audit.json").write_text(json.dumps(record))
    plan = ablate("tiny.yaml", *longer, "--dry-run", "--replace-stale", "--out", "out", cwd=tmp_path)
    assert plan.returncode == 2 and "[refused: a finished run of other settings that no ablation started (see below)]" in plan.stdout
    # The review: the relaunch command after a stop carries --replace-stale, and advice adds --render-only to it.
    proc = ablate("tiny.yaml", "--render-only", "--replace-stale", *longer, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # the page of what is there (no run of it): the flag does nothing
    assert ablate("tiny.yaml", "--list", "--replace-stale", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(("epochs", "said"), [
    (1, "each scored one epoch only, so no checkpoint was chosen by it and their test\n    acc is not biased"),
    (2, "the test acc of those that scored more than one epoch is optimistically biased"),
])  # fmt: skip
def test_runs_without_a_validation_split_are_footnoted_by_what_it_means(tmp_path: Path, epochs: int, said: str) -> None:
    no_val = "cosine: [data.val_split=0, criteria.best_val_acc=null]"  # selected on the test split
    ablation = write(tmp_path / "tiny.yaml", TINY.replace("train.epochs=1", f"train.epochs={epochs}").replace(
        "cosine: []", no_val))  # fmt: skip
    for r in build_plan(str(ablation)).runs:
        audit = finished_record(r, 0.5, history=[{"val_acc": 0.5}] * epochs)
        (tmp_path / "out/reports" / r.name).mkdir(parents=True)
        (tmp_path / "out/reports" / r.name / "audit.json").write_text(json.dumps(audit))
    assert main(["ablate", str(ablation), "--render-only", "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    assert "| cosine [^test] |" in page and "| constant |" in page and said in page
    # A user test: the val accuracies such a run never measured were said to be withheld by it.
    rows = [line for line in page.splitlines() if line.startswith("| cosine | ") and "[tiny-cosine-s" in line]
    assert len(rows) == 2 and not any("withheld" in row for row in rows), rows


def test_the_reference_comparison_says_when_our_test_set_is_not_the_papers(tmp_path: Path) -> None:
    ablation = write(tmp_path / "tiny.yaml", TINY.replace("train.epochs=1", "train.epochs=2"))  # a last epoch withheld
    subset = {"dataset": "cifar10", "official": False, "n_test_files": 1017,
              "files": {"data_batch_1": "ok", "test_batch": "md5 mismatch"}}  # fmt: skip
    for r in build_plan(str(ablation)).runs:
        acc = 0.4 + 0.02 * r.seed  # cosine: 0.40 and 0.42 (std 1.41 pp)
        data = {**subset, "fingerprint": "a" * 64 if r.variant == "cosine" else "b" * 64}  # files changed between
        data["sizes"] = {"train": 1000, "val": 200, "test": 256}
        broken_last = {"val_acc": 0.1, "val_loss": None}  # its val loss not a number: the run withholds final_val_acc
        audit = finished_record(r, acc, history=[{"val_acc": acc}, broken_last], data=data)
        (tmp_path / "out/reports" / r.name).mkdir(parents=True)
        (tmp_path / "out/reports" / r.name / "audit.json").write_text(json.dumps(audit))
    assert main(["ablate", str(ablation), "--render-only", "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    said = ("**Not the reference's test set:** our runs were scored on CIFAR-10 (not the official files; 256 of the "
            "1,017 test images there), not on the\nofficial CIFAR-10 test set")  # fmt: skip
    assert said in page
    # The Results say it too, where no reference is given.
    assert "**Data:** the accuracies were measured on CIFAR-10 (not the official files; 256 of the 1,017" in page
    # The honesty audit: variants that read different data files, and accuracies a run withheld, are said
    assert "### Variants that read different data files" in page and f"- data files `{'a' * 12}`: cosine\n" in page
    assert "| completed (final_val_acc withheld by the run: its sheet says why) |" in page
    # Δ with our spread beside it; one seed has none.
    assert "| 41.00 ± 1.41 % | 50.00 % (made-up figure) | -9.00 pp (our std 1.41 pp, n=2) |" in page
    assert main(["ablate", str(ablation), "--render-only", "--seeds", "1", "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    assert "| 40.00 % | 50.00 % (made-up figure) | -10.00 pp (1 seed: no spread measured) |" in page
    # The honesty audit: a one-seed page had no word that its rows may differ by noise alone
    assert "**One seed:** cosine, constant rest on a single run, so no\nseed-to-seed spread was measured" in page


def test_what_the_page_audit_found_is_said(tmp_path: Path) -> None:
    """The ablation page's honesty audit: runs of different variants read different data files
    unflagged; a test accuracy chosen on test got a Δ without a word; the figure drew a final epoch
    the run itself withheld as broken, and the Runs table did not say it was withheld."""
    from auditor.ablate import _curves, _withheld, fmt_delta, mixed_data_files

    def run(fp: str, left_out: str | None = None) -> dict[str, Any]:
        return {"data_id": {"data": fp}, "left_out": left_out}

    same = [{"name": "a", "runs": [run("f1"), run("f1")]}, {"name": "b", "runs": [run("f1"), run("f2", "diverged")]}]
    assert mixed_data_files(same) == {}  # a left-out run does not count
    other = [*same, {"name": "c", "runs": [run("f2")]}]
    assert mixed_data_files(other) == {"f1": ["a", "b"], "f2": ["c"]}
    ours = {"mean": 0.834, "std": 0.0028, "n": 2}
    assert fmt_delta(ours, 0.8) == "+3.40 pp (our std 0.28 pp, n=2)"
    assert fmt_delta(ours, 0.8, True) == ("+3.40 pp (our std 0.28 pp, n=2; optimistic: our checkpoint was chosen on "
                                          "the test split [^test])")  # fmt: skip
    record = {"metrics": {"final_val_acc": None, "best_val_acc": 0.5}, "metric_notes": {"final_val_acc": "broken"}}
    assert _withheld(record, "final_val_acc") and not _withheld(record, "best_val_acc")
    assert not _withheld({"metrics": {"final_val_acc": None}}, "final_val_acc")  # null without a note: not run
    record["training"] = {"history": [{"val_acc": 0.5}, {"val_acc": 0.0833}], "selection_split": "val"}
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert _curves([tmp_path])["val_acc"] == [[0.5, None]]  # the broken last epoch is not drawn


def test_the_data_line_names_whose_test_set_each_is() -> None:
    """One label for every run on the page stands alone; otherwise each names its variants, and a
    variant scored on the official test set is not said to have been scored on another."""
    from auditor.ablate import data_labels

    def variant(name: str, *labels: str | None) -> dict[str, Any]:
        return {"name": name, "runs": [{"data_label": label} for label in labels]}

    sub = "CIFAR-10 (256 of the 1,017 test images)"
    assert data_labels([variant("a", sub, sub), variant("b", sub)]) == [sub]
    assert data_labels([variant("a", sub), variant("b", None)]) == [f"{sub} (variant a)"]
    assert data_labels([variant("a", sub), variant("b", "synthetic data"), variant("c", sub)]) == [
        f"{sub} (variants a, c)", "synthetic data (variant b)"]
    assert data_labels([variant("a", None), variant("b")]) == []


def test_a_run_selected_on_test_draws_its_last_epoch(tmp_path: Path) -> None:
    """Without a val split a run withholds final_val_acc for want of the split, not because its
    last epoch is broken: the figure draws that epoch's test accuracy, unless it is broken."""
    from auditor.ablate import _curves

    note = {"final_val_acc": "the spec has no validation split", "best_val_acc": "the spec has no validation split"}
    history = [{"epoch": 1, "val_loss": 1.0, "val_acc": 0.56}, {"epoch": 2, "val_loss": 0.35, "val_acc": 0.83}]
    record = {"metrics": {"final_val_acc": None, "best_val_acc": None}, "metric_notes": note, "measurements": {},
              "training": {"history": history, "selection_split": "test", "best_epoch": 2}}  # fmt: skip
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert _curves([tmp_path])["val_acc"] == [[0.56, 0.83]]
    history[-1]["val_loss"] = None  # a loss that was not a number (a record holds null for one)
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert _curves([tmp_path])["val_acc"] == [[0.56, None]]
    history[-1]["val_loss"] = 0.35
    record["measurements"] = {"final_nonfinite": ["fc.weight"]}  # last.pt, which it was measured on, is broken
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert _curves([tmp_path])["val_acc"] == [[0.56, None]]


def test_a_variant_that_sets_what_a_set_mapping_sets_is_named(tmp_path: Path) -> None:
    f = write(tmp_path / "x.yaml", TINY.replace("cosine: []", "cosine: [train.optimizer.lr=0.2]"))
    for cli in ("train.optimizer={lr: 0.3}", "train={optimizer: {lr: 0.3}}", "train.optimizer.lr=0.3"):
        said = "variant 'cosine' sets train.optimizer.lr itself; its value wins over --set"
        assert build_plan(str(f), cli_sets=[cli]).warnings == (said,), cli
    g = write(tmp_path / "y.yaml", TINY.replace("cosine: []", "cosine: ['train.optimizer={lr: 0.2}']"))
    assert "train.optimizer.lr" in build_plan(str(g), cli_sets=["train.optimizer.lr=0.3"]).warnings[0]
    assert build_plan(str(g), cli_sets=["train.optimizer.momentum=0.8"]).warnings == ()


def test_variants_that_resolve_to_one_spec_are_named_in_the_plan_and_on_the_page(tmp_path: Path) -> None:
    """smoke already trains with cosine: a variant that sets it again repeats the base variant."""
    text = TINY.replace("constant: [train.schedule.name=constant]",
                        "constant: [train.schedule.name=constant]\n  again: [train.schedule.name=cosine]\n"
                        "  same_lr: [train.optimizer.lr=0.05]")  # fmt: skip
    f = write(tmp_path / "tiny.yaml", text)
    said = ("variants 'cosine', 'again' and 'same_lr' resolve to the same spec (apart from name and description): "
            "their runs repeat one another (one training per seed), so their rows compare nothing; drop all but one, "
            "or change their overrides")  # fmt: skip
    assert build_plan(str(f)).warnings == (said,)
    # A user test: a variant that is the base with no other variant to repeat was not noted at all.
    unchanged = ("variant 'again' resolves to the base spec (with the file's overrides and --set): its overrides "
                 "(train.schedule.name=cosine) change nothing, so its runs train the base")  # fmt: skip
    assert build_plan(str(f), only=["constant", "again"]).warnings == (unchanged,)
    assert build_plan(str(f), only=["constant", "cosine"]).warnings == ()  # `cosine: []` is the base by intent
    assert build_plan(str(write(tmp_path / "plain.yaml", TINY))).warnings == ()
    # a variant that changes only what is measured after training is a different spec, which trains alike
    measured = write(tmp_path / "m.yaml", TINY.replace("constant: [train.schedule.name=constant]",
                                                       "constant: [measure.latency.batch_size=8]"))  # fmt: skip
    alike = ("variants 'cosine' and 'constant' differ only outside training (criteria, measure, verify, "
             "train.host_memory): their runs train the same weights at each seed, so their accuracies repeat one "
             "another; their rows differ only in what is measured or gated")
    assert build_plan(str(measured)).warnings == (alike,)
    dry = ablate("tiny.yaml", "--dry-run", "--out", "out", cwd=tmp_path)
    assert dry.returncode == 0 and f"# note: {said}" in dry.stdout, dry.stdout + dry.stderr
    _first_run_finished(f, tmp_path / "out")
    proc = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    assert "### Variants that resolve to the same spec" in page and "\n- cosine, again, same_lr\n" in page
    assert "note: variants cosine, again, same_lr resolve to the same spec, so their rows compare nothing" in (
        proc.stdout + proc.stderr)  # fmt: skip
    _first_run_finished(write(tmp_path / "tiny.yaml", TINY), tmp_path / "out2")
    assert ablate("tiny.yaml", "--render-only", "--out", "out2", cwd=tmp_path).returncode == 0
    assert "resolve to the same spec" not in (tmp_path / "out2/reports/tiny/ABLATIONS.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs where CUDA is available")
@pytest.mark.parametrize("flag", [[], ["--dry-run"]])
def test_a_variant_this_machine_cannot_run_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str]
) -> None:
    f = write(tmp_path / "x.yaml", TINY.replace("cosine: []", "cosine: [train.device=auto, train.amp=fp16]"))
    assert main(["ablate", str(f), "--out", str(tmp_path / "out"), *flag]) == 2
    err = capsys.readouterr().err
    assert f"{f}: variant 'cosine': train.amp: fp16 needs a CUDA device" in err and "nothing was run" in err
    assert not (tmp_path / "out" / "reports").exists()  # not even the variant that could run


# --- real runs (slow) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The tiny ablation, run once through the real CLI."""
    root = tmp_path_factory.mktemp("ablate")
    write(root / "tiny.yaml", TINY)
    proc = ablate("tiny.yaml", "--out", "out", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


@pytest.fixture
def tiny_copy(tiny_out: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> Path:
    """A private copy of the tiny ablation's folder, for tests that change it (order-independent)."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_out[0], root)
    return root


def test_files_of_the_users_in_a_runs_folders_are_refused_before_anything_runs(tiny_copy: Path) -> None:
    """A user test: a file in the report folder of a run to come stopped the ablation only when that
    run's turn came (hours in), and --dry-run planned the run without a word."""
    notes = tiny_copy / "out/reports/tiny-constant-s2/notes.md"  # --seeds 3: seed 2 is to come
    notes.parent.mkdir()
    notes.write_text("mine")
    for dry in (["--dry-run"], []):
        proc = ablate("tiny.yaml", "--out", "out", "--seeds", "3", *dry, cwd=tiny_copy)
        assert_invalid(proc, "tiny.yaml: variant 'constant' seed 2: ", "tiny-constant-s2: holds notes.md, which no run "
                       "writes", "nothing was run")  # fmt: skip
        assert "[1/" not in proc.stdout and notes.read_text() == "mine"
        if dry:  # a user test: the plan said "run" above the refusal
            assert "tiny-constant-s2  variant constant  seed 2  [refused: its folders hold what this run would not " \
                   "replace (see below)]" in proc.stdout, proc.stdout  # fmt: skip
    assert not (tiny_copy / "out/reports/tiny-cosine-s2").exists()  # the other run to come did not start either
    notes.unlink()
    assert ablate("tiny.yaml", "--out", "out", "--seeds", "3", "--dry-run", cwd=tiny_copy).returncode == 0
    sheet = tiny_copy / "out/reports/tiny-constant-s0/REPRODUCIBILITY.md"
    sheet.write_text(sheet.read_text() + "my note\n")  # a finished run, stale under the --set below
    proc = ablate("tiny.yaml", "--out", "out", "--set", "train.epochs=3", "--replace-stale", "--dry-run", cwd=tiny_copy)
    assert proc.returncode == 2 and "tiny-constant-s0/REPRODUCIBILITY.md: it was edited by hand" in proc.stderr, proc.stderr
    labels = {ln.split("  ")[0]: ln.split("[", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("tiny-")}
    assert labels["tiny-constant-s0"] == "refused: its folders hold what this run would not replace (see below)]"
    assert labels["tiny-cosine-s0"] == "run (replaces a run of a different spec)]", labels


def test_a_page_folder_or_run_names_of_another_ablation_are_refused_before_anything_runs(tiny_copy: Path) -> None:
    page = tiny_copy / "out/reports/tiny/ABLATIONS.md"
    before = page.read_bytes()
    other = tiny_copy / "other"
    other.mkdir()
    write(other / "tiny.yaml", TINY.replace("constant:", "flat:"))  # another file, the same name
    proc = ablate(str(other / "tiny.yaml"), "--out", "out", cwd=tiny_copy)
    assert proc.returncode == 2 and "out/reports/tiny: holds the page of the ablation in ../tiny.yaml (from --out)" in proc.stderr
    assert "[1/" not in proc.stdout and page.read_bytes() == before  # refused before any run
    # Run names join ablation, variant and seed with '-': (tiny-co, sine) and (tiny, co-sine) both make tiny-co-sine-s0.
    write(tiny_copy / "clash.yaml", TINY.replace("name: tiny", "name: tiny-co").replace("cosine:", "sine:").replace(
        "  cosine: {best", "  sine: {best"))  # tiny-co + sine -> tiny-co-sine-s0; tiny + co-sine would be the same
    write(tiny_copy / "clash2.yaml", TINY.replace("cosine:", "co-sine:").replace("  cosine: {best", "  co-sine: {best"))
    proc = ablate("clash.yaml", "--out", "out2", "--only", "sine", "--seeds", "1", cwd=tiny_copy)  # one run: s0
    assert proc.returncode == 0, proc.stderr
    proc = ablate("clash2.yaml", "--out", "out2", "--dry-run", cwd=tiny_copy)
    assert proc.returncode == 2 and "would take the names of another's: tiny-co-sine-s0 (variant 'sine' of ablation 'tiny-co')" in proc.stderr
    assert proc.stderr.count("tiny-co-sine-s0") == 1  # its record says so too: said once
    # A user test: with that page gone (its ablation stopped before writing it), the run was planned as
    # "replaces a run of a different spec", and ran: the run's own record says whose it is.
    shutil.rmtree(tiny_copy / "out2/reports/tiny-co")
    proc = ablate("clash2.yaml", "--out", "out2", "--dry-run", cwd=tiny_copy)
    assert proc.returncode == 2 and ("would take the names of another's: tiny-co-sine-s0 (seed 0 of variant 'sine' of "
                                     "ablation 'tiny-co', as its audit.json records)") in proc.stderr, proc.stderr  # fmt: skip
    assert ablate("clash.yaml", "--out", "out2", "--only", "sine", "--seeds", "1", "--dry-run", cwd=tiny_copy).returncode == 0
    # --render-only under other --set/--seeds than the runs were made with: no page of nothing
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", "--set", "train.epochs=2", cwd=tiny_copy)
    assert proc.returncode == 2 and "--render-only: no finished run of this plan under out, where the page counts 4" in proc.stderr
    # User tests: it said "--set [] and seeds [0, 1]"; then "seeds 0" (of --seeds 1), read as `--seeds 0`.
    assert "made with no --set and seeds 0, 1: `auditor ablate tiny.yaml --out out --render-only` rebuilds it, or run " \
           "the plan; nothing was rewritten" in proc.stderr, proc.stderr  # fmt: skip
    assert page.read_bytes() == before
    write(tiny_copy / "tiny.yaml", TINY.replace("measure.latency.iters=5", "measure.latency.iters=6"))  # the file changed
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 2 and "with the same --set and seeds as this one, so the base spec or the ablation file" in proc.stderr
    assert page.read_bytes() == before


def test_a_run_record_edited_after_the_run_is_not_counted_on_the_page(tiny_copy: Path) -> None:
    """A metric or spec edited in a run's audit.json (which `check` refuses) had gone into the page's
    means and its comparison with the reference as measured."""
    edited = tiny_copy / "out/reports/tiny-constant-s0/audit.json"
    record = json.loads(edited.read_text())
    record["metrics"]["test_acc"] = 0.99
    edited.write_text(json.dumps(record))
    respec = tiny_copy / "out/reports/tiny-cosine-s1/audit.json"
    record = json.loads(respec.read_text())
    record["spec"]["train"]["epochs"] = 50  # its spec_hash kept
    respec.write_text(json.dumps(record))
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    page = (tiny_copy / "out/reports/tiny/ABLATIONS.md").read_text()
    assert ("- constant, seed 0: `tiny-constant-s0` (`auditor check` refuses its audit.json: the record disagrees "
            "with what the run measured (metrics.test_acc 0.99, but measurements.test.acc") in page  # fmt: skip
    assert ("- cosine, seed 1: `tiny-cosine-s1` (`auditor check` refuses its audit.json: its resolved spec does not "
            "match its spec_hash (") in page  # fmt: skip
    assert "99.00" not in page
    (said,) = [line for line in proc.stdout.splitlines() if "not counted" in line]
    assert said.startswith("note: 2 runs not counted, as `auditor check` refuses their audit.json (listed on the "
                           "page): ") and sorted(said.split(": ")[-1].split(", ")) == ["tiny-constant-s0", "tiny-cosine-s1"]
    assert "no finished report yet" not in proc.stdout + proc.stderr  # a user test: it said so of an edited run
    again = ablate("tiny.yaml", "--out", "out", cwd=tiny_copy)  # the runs are skipped, and the log says how
    assert again.returncode == 0, again.stderr
    assert "tiny-constant-s0: skip, but not counted: `auditor check` refuses its audit.json" in again.stdout
    dry = ablate("tiny.yaml", "--out", "out", "--dry-run", cwd=tiny_copy)
    assert dry.returncode == 0 and "tiny-constant-s0  variant constant  seed 0  [skip, but not counted: `auditor check` refuses" in dry.stdout
    # Review: the page advised training it afresh, where --resume re-judges it from its checkpoint in seconds.
    said = re.findall(r"`(auditor run [^`]*--resume)` measures and judges it again from its last checkpoint", page)
    (rejudge,) = [command for command in said if "name=tiny-constant-s0" in command]
    proc = subprocess.run([sys.executable, "-m", "auditor", *shlex.split(rejudge)[1:]], cwd=tiny_copy,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert proc.returncode in (0, 1) and "resume: continuing from last.pt" in proc.stderr, proc.stdout + proc.stderr
    assert run_cli("check", str(edited.parent), cwd=tiny_copy).returncode in (0, 1)  # a record check accepts (its gate: 0 or 1)
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    counted = {v["name"]: v["seeds"] for v in json.loads((tiny_copy / "out/reports/tiny/ablations.json").read_text())["variants"]}
    assert proc.returncode == 0 and counted == {"cosine": [0], "constant": [0, 1]}, proc.stderr


def test_a_refused_record_of_a_run_that_diverged_is_not_offered_a_resume(tmp_path: Path) -> None:
    """A review: --resume re-judges a finished run without training, but trains a diverged one again."""
    from auditor import ablate

    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=1)
    last = run_paths(tmp_path, plan.runs[0].name).last_checkpoint
    last.parent.mkdir(parents=True)
    last.write_bytes(b"a checkpoint")
    assert "--resume` measures and judges it again" in ablate._mending(tmp_path, plan, plan.runs[0], {"run": {"status": "completed"}})
    assert ablate._mending(tmp_path, plan, plan.runs[0], {"run": {"status": "diverged"}}) == (
        "remove its report folder, and this ablation trains it afresh")


def test_render_only_says_when_the_runs_are_there_but_check_refuses_them(tiny_copy: Path) -> None:
    """Review: with every run's record refused, --render-only blamed a change of the spec ("every
    run's spec hash differs from the plan's"), which was not so."""
    page = tiny_copy / "out/reports/tiny/ABLATIONS.md"
    before = page.read_bytes()
    for run in (f"tiny-{v}-s{s}" for v in VARIANTS for s in SEEDS):
        path = tiny_copy / "out/reports" / run / "audit.json"
        record = json.loads(path.read_text())
        del record["data"]["classes"]
        path.write_text(json.dumps(record))
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert_invalid(proc, "--render-only: no run of this plan under out would be counted, where the page counts 4: "
                         "`auditor check` refuses the audit.json of its 4 finished runs (tiny-cosine-s0, ",
                   "the page says how to mend each, or remove their report folders and run the plan")
    assert "spec hash" not in proc.stderr and page.read_bytes() == before


REFUSED_EDITS = [  # (run, edit of its record's text, what the page says), in two rounds: one run stays counted
    [("tiny-cosine-s0", lambda r: {**r, "schema_version": 2}, "unsupported audit schema_version 2 (this auditor reads 1: a newer auditor wrote it?"),
     ("tiny-cosine-s1", lambda r: {**r, "determinism": {**r["determinism"], "cudnn_deterministic": "false"}},
      'malformed audit record: determinism.cudnn_deterministic = "false" (not as'),
     ("tiny-constant-s0", lambda r: {**r, "run": {**r["run"], "status": "diverged"}},
      'its statuses disagree (run.status "diverged", training.status')],
    # Review: without its confusion matrix a record passed, which `check` refuses.
    [("tiny-cosine-s0", lambda r: {**r, "measurements": {**r["measurements"], "test": {**r["measurements"]["test"],
                                                                                     "confusion": None}}},
      "malformed audit record: measurements.test.confusion = null (not as"),
     ("tiny-constant-s0", lambda r: {**r, "training": {**r["training"], "history": [
         {**r["training"]["history"][0], "lr": "0.05"}, *r["training"]["history"][1:]]}},
      'malformed audit record: training.history[0].lr = "0.05" (not as')],
    # Review: a record lacking a section was counted, with whatever its metrics said (nothing to compare them with).
    [("tiny-cosine-s1", lambda r: {**{k: v for k, v in r.items() if k != "measurements"},
                                   "metrics": {**r["metrics"], "test_acc": 0.99}},
      "incomplete audit record: missing measurements"),
     # Review: these two were taken for unreadable or another spec's records, and trained again.
     ("tiny-constant-s0", lambda r: {**r, "training": {**r["training"], "train_time_s": float("nan")}},
      "not an audit record: training.train_time_s: NaN"),
     ("tiny-cosine-s0", lambda r: {k: v for k, v in r.items() if k != "spec_hash"},
      "incomplete audit record: missing spec_hash")],
]  # fmt: skip


def test_a_run_record_check_refuses_is_not_counted_on_the_page(tiny_copy: Path) -> None:
    """User tests: the page counted records `check` refuses as not this auditor's (another
    schema_version, a flag written as text, one status changed): a newer format's
    figures went into an older tool's means without a word."""
    reports = tiny_copy / "out/reports"
    original = {run: (reports / run / "audit.json").read_text() for run, _, _ in REFUSED_EDITS[0]}
    for edits in REFUSED_EDITS:
        for run, text in original.items():
            (reports / run / "audit.json").write_text(text)
        for run, edit, _ in edits:
            path = reports / run / "audit.json"
            path.write_text(json.dumps(edit(json.loads(path.read_text()))))
            checked = run_cli("check", str(path.parent), cwd=tiny_copy)
            assert checked.returncode == 2, checked.stdout + checked.stderr  # the case: check refuses it
        proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
        assert proc.returncode == 0, proc.stderr
        page = (reports / "tiny/ABLATIONS.md").read_text()
        for run, edit, said in edits:
            (line,) = [x for x in page.splitlines() if f": `{run}` (" in x]
            assert said in line and "; its figures are not counted" in line, line
        counted = {v["name"]: v["seeds"] for v in json.loads((reports / "tiny/ablations.json").read_text())["variants"]}
        refused = {run for run, _, _ in edits}
        assert counted == {v: [s for s in SEEDS if f"tiny-{v}-s{s}" not in refused] for v in VARIANTS}
        assert "99.00" not in page
        dry = ablate("tiny.yaml", "--out", "out", "--dry-run", cwd=tiny_copy)  # skipped, not trained again
        planned = {line.split()[0]: line for line in dry.stdout.splitlines() if line.startswith("tiny-")}
        assert all("[skip, but not counted: `auditor check` refuses" in planned[run] for run in refused), dry.stdout
        if "tiny-cosine-s0" in refused and len(edits) == 3:  # its spec_hash deleted: its spec's hash is what tells
            other = ablate("tiny.yaml", "--out", "out", "--dry-run", "--set", "train.epochs=2", "--replace-stale", cwd=tiny_copy)
            replaced = [line for line in other.stdout.splitlines() if line.startswith("tiny-cosine-s0 ")]
            assert replaced and "[run (replaces a run of a different spec" in replaced[0], other.stdout


def test_variants_scored_on_different_test_images_are_said_not_to_compare(tiny_copy: Path) -> None:
    """Only seeds of one variant had been compared: variants whose test accuracies were measured on
    other test images sat side by side without a word."""
    page = tiny_copy / "out/reports/tiny/ABLATIONS.md"
    assert "Variants scored on different test images" not in page.read_text()
    for seed in SEEDS:  # as if constant's runs had read another test file
        path = tiny_copy / f"out/reports/tiny-constant-s{seed}/audit.json"
        record = json.loads(path.read_text())
        record["data"]["scored_test_fingerprint"] = "f" * 64
        path.write_text(json.dumps(record))
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert "### Variants scored on different test images" in text
    assert f"- scored test images `{'f' * 12}`: constant" in text and "`: cosine" in text
    assert "scored on different test images, so they do not compare directly" in proc.stdout + proc.stderr


def _audits(out: Path) -> dict[str, list[dict]]:
    return {
        v: [json.loads((out / "reports" / f"tiny-{v}-s{s}" / "audit.json").read_text()) for s in SEEDS]
        for v in VARIANTS
    }


def test_dry_run_runs_nothing(tmp_path: Path) -> None:
    write(tmp_path / "tiny.yaml", TINY)
    proc = ablate("tiny.yaml", "--dry-run", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("auditor run ") == 4 and "--set seed=1 --set name=tiny-constant-s1" in proc.stdout
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "reports").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_table_matches_audits(tiny_out: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = tiny_out
    here = root / "out" / "reports" / "tiny"
    page = (here / "ABLATIONS.md").read_text()
    record = json.loads((here / "ablations.json").read_text())
    audits = _audits(root / "out")
    for v in VARIANTS:
        row = next(line for line in page.splitlines() if line.startswith(f"| {v} | 2 |"))
        rec = next(x for x in record["variants"] if x["name"] == v)
        for key in (*ACC, "train_time_s"):
            xs = [a["metrics"][key] for a in audits[v]]
            mean, std = statistics.mean(xs), statistics.stdev(xs)
            assert rec["stats"][key]["mean"] == pytest.approx(mean)
            assert rec["stats"][key]["std"] == pytest.approx(std)
            cell = f"{100 * mean:.2f} ± {100 * std:.2f} %" if key in ACC else f"{mean:.1f} ± {std:.1f} s"
            assert f"| {cell} |" in row, (cell, row)
        assert [r["metrics"]["test_acc"] for r in rec["runs"]] == [a["metrics"]["test_acc"] for a in audits[v]]
        links = re.findall(r"\]\(([^)]+REPRODUCIBILITY\.md)\)", row)
        assert len(links) == 2 and all((here / link).is_file() for link in links)
    assert "| reference | Δ |" in page and "| 50.00 % (made-up figure) |" in page
    assert (here / "figures" / "val_acc.png").stat().st_size > 0
    assert "![figures/val_acc.png](figures/val_acc.png)" in page
    env = audits["cosine"][0]["environment"]
    software = f"auditor {auditor.__version__} (source {env['auditor_source'][:12]}), torch {torch.__version__}, cpu ({env['cpu_model']}, "
    software += f"{env['torch_threads']} threads)"
    rows = [line for line in page.splitlines() if re.match(r"\| (cosine|constant) \| [01] \|", line)]
    assert len(rows) == 4 and all(row.endswith(f"| {software} |") for row in rows)
    assert record["mixed_software"] == {} and "different software" not in page
    assert [[a["run"]["ablation_run"] for a in audits[v]] for v in VARIANTS] == [
        [{"ablation": "tiny", "variant": v, "seed": s} for s in SEEDS] for v in VARIANTS]  # whose run each is


@pytest.mark.slow
def test_rerun_skips_finished(tiny_copy: Path) -> None:
    root = tiny_copy
    audit_files = sorted((root / "out" / "reports").glob("tiny-*/audit.json"))
    assert len(audit_files) == 4
    before = {p: p.stat().st_mtime_ns for p in audit_files}
    proc = ablate("tiny.yaml", "--out", "out", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("skip (finished)") == 4 and "auditor run" not in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in audit_files} == before


@pytest.mark.slow
def test_a_page_rebuilt_after_a_variant_was_renamed_says_which_finished_runs_it_leaves_out(tiny_copy: Path) -> None:
    """A user test: renaming a variant in the file made --render-only drop its finished runs from the page
    without a word (runs dropped with --seeds were named)."""
    write(tiny_copy / "tiny.yaml", TINY.replace("  constant: [", "  flat: ["))
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    assert ("note: the page it replaced also listed finished runs of 1 variant that tiny.yaml no longer has (renamed or "
            "removed; 'constant': tiny-constant-s0, tiny-constant-s1), which this page leaves out; those runs are left "
            "as they are") in proc.stdout + proc.stderr  # fmt: skip
    assert (tiny_copy / "out/reports/tiny-constant-s0/audit.json").is_file()
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)  # that page lists no 'constant'
    assert proc.returncode == 0 and "no longer has" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_run_by_hand_over_an_ablation_s_run_says_the_page_shows_the_run_it_replaces(tiny_copy: Path) -> None:
    """A user test: `auditor run --set name=tiny-constant-s0` replaced a run the page counts, saying only
    that it replaced an earlier run; the page went on showing the earlier figures beside a link to the new sheet."""
    overrides = [line.strip()[2:] for line in TINY.splitlines() if line.startswith("  - ")]
    proc = subprocess.run([sys.executable, "-m", "auditor", "run", "smoke", *sets([*overrides, "name=tiny-constant-s0",
                           "train.optimizer.lr=0.3"]), "--out", "out"], cwd=tiny_copy, check=False, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    page = tiny_copy / "out" / "reports" / "tiny" / "ABLATIONS.md"
    assert (f"note: the run there is seed 0 of variant 'constant' of ablation 'tiny', whose page {page} goes on showing "
            "its figures, while the page's link to its sheet opens this run's, until the page is rebuilt: auditor ablate "
            "tiny.yaml --out out --render-only\n") in proc.stderr, proc.stderr  # fmt: skip
    record = json.loads((tiny_copy / "out/reports/tiny-constant-s0/audit.json").read_text())
    assert record["run"]["ablation_run"] is None  # not the ablation's run: the ablation runs it again
    # The review: the page's own re-judge command (a --resume by hand) had dropped whose run it is, and said nothing.
    proc = subprocess.run([sys.executable, "-m", "auditor", "run", "smoke", *sets([*overrides, "seed=0", "name=tiny-cosine-s0",
                           "criteria.test_acc=>= 0.01"]), "--out", "out", "--resume"], cwd=tiny_copy, check=False,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "note: the run there is seed 0 of variant 'cosine' of ablation 'tiny', whose page " in proc.stderr
    record = json.loads((tiny_copy / "out/reports/tiny-cosine-s0/audit.json").read_text())
    assert record["run"]["ablation_run"] == {"ablation": "tiny", "variant": "cosine", "seed": 0}  # carried by last.pt
    assert "ablation_run" not in record["training"]
    # A user test: a finished run that no ablation started, of another spec, was replaced by the ablation's run
    # of that name (its report and checkpoints gone). It is refused, before anything runs.
    kept = (tiny_copy / "out/reports/tiny-constant-s0/audit.json").read_bytes()
    for dry in (["--dry-run"], []):
        proc = ablate("tiny.yaml", "--out", "out", *dry, cwd=tiny_copy)
        assert_invalid(proc, "tiny.yaml: variant 'constant' seed 0: out/reports/tiny-constant-s0: a finished run that "
                       "no ablation started (as its audit.json records), of other settings than this ablation's run of "
                       "that name, which would replace it; ", "move that run's report folder and checkpoints away",
                       "nothing was run")  # fmt: skip
        assert "[1/" not in proc.stdout
    assert (tiny_copy / "out/reports/tiny-constant-s0/audit.json").read_bytes() == kept
    assert (tiny_copy / "out/checkpoints/tiny-constant-s0/last.pt").is_file()
    # The ablation's own run of another spec is replaced, as before: tiny-cosine-s0 records whose run it is,
    # and tiny-cosine-s1's record, as one written before runs recorded it, is the one its page counts (the review).
    older = tiny_copy / "out/reports/tiny-cosine-s1/audit.json"
    record = json.loads(older.read_text())
    del record["run"]["ablation_run"]
    older.write_text(json.dumps(record))
    plan = ablate("tiny.yaml", "--out", "out", "--dry-run", "--only", "cosine", "--set", "train.optimizer.lr=0.2",
                  "--replace-stale", cwd=tiny_copy)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    for seed in (0, 1):
        assert f"tiny-cosine-s{seed}  variant cosine  seed {seed}  [run (replaces a run of a different spec)]" in plan.stdout
    assert page.is_file()


def test_an_epoch_edited_in_one_place_is_said_by_check_render_and_the_page(tiny_copy: Path) -> None:
    """A user test: an epoch's figure edited in audit.json alone (metrics.csv holds the run's) passed
    `check` without a word, and the page's curves drew it."""
    reports = tiny_copy / "out/reports"
    clean = run_cli("check", str(reports / "tiny-cosine-s1"), cwd=tiny_copy)
    assert "metrics.csv" not in clean.stderr, clean.stderr  # as the run wrote them: they agree
    path = reports / "tiny-cosine-s0/audit.json"
    record = json.loads(path.read_text())
    was = record["training"]["history"][0]["train_loss"]  # (its val_acc is the selected epoch's: check refuses that)
    record["training"]["history"][0]["train_loss"] = 0.01
    path.write_text(json.dumps(record))
    said = (f"{reports / 'tiny-cosine-s0/metrics.csv'} does not hold audit.json's per-epoch history (epoch 1 "
            f"train_loss: {was!r} in metrics.csv, 0.01 in audit.json): one of them was edited after the run; the "
            "curves are drawn from audit.json's")  # fmt: skip
    for command in ("check", "render"):
        proc = run_cli(command, str(path.parent), cwd=tiny_copy)
        assert proc.returncode in (0, 1) and said in proc.stderr, proc.stderr
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    assert ("note: the metrics.csv of 1 run does not hold the per-epoch history of its audit.json, whose curves the "
            "page draws (`auditor check` on its report folder says where they differ): tiny-cosine-s0") in proc.stdout
    page = (reports / "tiny/ABLATIONS.md").read_text()
    marked = [line for line in page.splitlines() if "does not hold the per-epoch history drawn here" in line]
    assert len(marked) == 1 and "[tiny-cosine-s0](" in marked[0], marked


def test_the_page_gives_its_files_from_its_own_folder_whichever_folder_rebuilt_it(tiny_copy: Path) -> None:
    """A user test: `auditor ablate a1/lr.yaml --out a1 --render-only`, as `check` advises, rewrote the
    page's `Ablation file: lr.yaml` as `a1/lr.yaml`: a path from the folder the command ran in."""
    page = tiny_copy / "out/reports/tiny/ABLATIONS.md"
    before = page.read_text()
    base = build_plan(str(tiny_copy / "tiny.yaml")).base_path.resolve()
    assert "- Ablation file: `../../../tiny.yaml` (from this page's folder)\n" in before
    # The shipped spec lies outside the ablation file's folder: absolute, whichever folder holds the page.
    assert f"- Base spec: `{base}` (`base: smoke`)\n" in before, before[:600]
    proc = ablate("copy/tiny.yaml", "--out", "copy/out", "--render-only", cwd=tiny_copy.parent)
    assert proc.returncode == 0, proc.stderr
    assert page.read_text() == before
    from auditor.ablate import _page_paths

    older = {"file": "abl/tiny.yaml", "base_path": "/x/smoke.yaml"}  # recorded before: said as they were, no claim
    assert _page_paths(older) == {"file": "`abl/tiny.yaml`", "base": "`/x/smoke.yaml`"}
    from auditor.ablate import page_path

    project = tiny_copy / "study"
    assert page_path(project / "base.yaml", project / "out/reports/x", project) == "../../../base.yaml"
    assert page_path(project / "base.yaml", tiny_copy / "elsewhere/reports/x", project) == str(project / "base.yaml")


def test_a_run_whose_resolved_spec_file_was_edited_is_marked_on_the_page(tiny_copy: Path) -> None:
    """The page goes by audit.json; a run's spec.resolved.yaml no longer holds that spec (`check`
    warned of it, the page did not: a user test). Here a copy of the ablation's folder: the file
    beside its audit.json."""
    reports = tiny_copy / "out/reports"
    spec_file = reports / "tiny-cosine-s1/spec.resolved.yaml"
    before = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert before.returncode == 0 and "spec.resolved.yaml" not in before.stdout, before.stdout  # as the runs wrote them
    assert "\nseed: 1\n" in spec_file.read_text()
    spec_file.write_text(spec_file.read_text().replace("\nseed: 1\n", "\nseed: 7\n"))
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    assert ("note: the spec.resolved.yaml of 1 run does not hold the spec of its audit.json, which the page goes by "
            "(edited, missing or unreadable; `auditor check` on its report folder says which file and how): "
            "tiny-cosine-s1") in proc.stdout  # fmt: skip
    page = (reports / "tiny/ABLATIONS.md").read_text()
    marked = [line for line in page.splitlines() if "does not hold its spec" in line]
    assert len(marked) == 1 and "[tiny-cosine-s1](" in marked[0], marked
    said = run_cli("check", str(spec_file.parent), cwd=tiny_copy)  # what the note sends the reader to
    assert f"{spec_file} does not hold the spec audit.json records" in said.stderr, said.stderr


def test_the_page_gives_the_verdict_check_gives_not_a_stored_one_edited(tiny_copy: Path) -> None:
    """A user test: a run's stored verdict edited from FAIL to PASS (which `check` only warns of,
    gating on the metrics) was shown on the page as the run's verdict, and not named as failed."""
    reports = tiny_copy / "out/reports"
    path = reports / "tiny-constant-s1/audit.json"
    record = json.loads(path.read_text())
    judged = record["verdict"]
    flipped = "FAIL" if judged == "PASS" else "PASS"
    record["verdict"] = flipped
    path.write_text(json.dumps(record))
    checked = run_cli("check", str(path.parent), cwd=tiny_copy)
    assert checked.returncode == (0 if judged == "PASS" else 1) and f"verdict stored {flipped}, now {judged}" in checked.stderr
    proc = ablate("tiny.yaml", "--out", "out", "--render-only", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    (row,) = [line for line in (reports / "tiny/ABLATIONS.md").read_text().splitlines() if "[tiny-constant-s1](" in line]
    assert (f"| {judged} (judged again, as `auditor check` does; stored {flipped}, which its criteria do not give on "
            "its metrics: edited, or another version's) |") in row, row
    assert ("note: the stored verdict of 1 run is not what the run's own criteria give on its metrics as recorded "
            "(edited by hand, or another version's); the page gives the verdict judged again, as `auditor check` "
            f"does: tiny-constant-s1 (stored {flipped}, now {judged})") in proc.stdout
    failed = [line for line in proc.stdout.splitlines() if " on the page failed " in line]
    assert ("tiny-constant-s1" in "".join(failed)) == (judged == "FAIL")
    (entry,) = [r for v in json.loads((reports / "tiny/ablations.json").read_text())["variants"] for r in v["runs"]
                if r["name"] == "tiny-constant-s1"]  # fmt: skip
    assert (entry["verdict"], entry["stored_verdict"]) == (judged, flipped)


@pytest.mark.slow
def test_a_missing_member_sheet_or_unreadable_record_is_said(tiny_copy: Path) -> None:
    (tiny_copy / "out/reports/tiny-cosine-s0/REPRODUCIBILITY.md").unlink()
    edited = tiny_copy / "out/reports/tiny-constant-s0/REPRODUCIBILITY.md"
    edited.write_text(edited.read_text() + "my note\n")  # a user test: the page linked it without a word
    proc = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    page = " ".join((tiny_copy / "out/reports/tiny/ABLATIONS.md").read_text().split())
    assert "[s0](../tiny-constant-s0/REPRODUCIBILITY.md) (sheet edited by hand) [s1](" in page
    assert "| constant | 0 | [tiny-constant-s0](../tiny-constant-s0/REPRODUCIBILITY.md) (sheet edited by hand) |" in page
    assert page.count("(sheet edited by hand)") == 2
    assert ("except that the sheet of tiny-cosine-s0 is missing (`auditor render` rebuilds it from the run's "
            "`audit.json`: `auditor render ../tiny-cosine-s0`, from this folder)") in page  # fmt: skip
    # A user test: the Results table linked the missing sheet unmarked (the Runs table said so).
    assert "[s0](../tiny-cosine-s0/REPRODUCIBILITY.md) (sheet missing) [s1](../tiny-cosine-s1/REPRODUCIBILITY.md) |" in page
    (tiny_copy / "out/reports/tiny-constant-s1/audit.json").write_text("{")  # cut short
    (tiny_copy / "out/checkpoints/tiny-constant-s1/last.pt").unlink()  # with its checkpoint: re-judged (a test above)
    dry = ablate("tiny.yaml", "--dry-run", "--out", "out", cwd=tiny_copy)
    assert "tiny-constant-s1  variant constant  seed 1  [run (replaces a report whose audit.json cannot be read)]" in dry.stdout
    (tiny_copy / "afile").write_text("x")
    proc = ablate("tiny.yaml", "--dry-run", "--out", "afile", cwd=tiny_copy)
    assert proc.returncode == 2 and "--out: cannot write under afile: afile is a file, not a folder (--out)" in proc.stderr


@pytest.mark.slow
def test_resume_and_new_seeds_are_planned(tiny_copy: Path) -> None:
    root = tiny_copy
    staging = root / "out" / "checkpoints" / "tiny-cosine-s2.partial"
    staging.mkdir()  # a run stopped before its first checkpoint: nothing to continue
    empty = ablate("tiny.yaml", "--seeds", "3", "--dry-run", "--out", "out", cwd=root)
    assert "tiny-cosine-s2 " in empty.stdout and "[resume" not in empty.stdout, empty.stdout
    (staging / "last.pt").write_bytes(b"")  # one that wrote a checkpoint (read when it resumes)
    proc = ablate("tiny.yaml", "--seeds", "3", "--dry-run", "--out", "out", cwd=root)
    assert proc.returncode == 0, proc.stderr
    lines = {ln.split()[0]: ln for ln in proc.stdout.splitlines() if ln.startswith("tiny-")}
    assert "[resume (interrupted)]" in lines["tiny-cosine-s2"] and "[run]" in lines["tiny-constant-s2"]
    assert "[skip (finished)]" in lines["tiny-cosine-s0"]
    assert "extended with [2]" in proc.stdout
    assert re.search(r"--set name=tiny-cosine-s2 --out out --resume$", proc.stdout, re.MULTILINE)
    # A run another process is on now (a second ablate of the same file) is named as such, and
    # this ablate stops before it instead of starting the run again.
    first = next(name for name, ln in lines.items() if "[skip" not in ln)
    lock = run_paths(root / "out", first).lock
    with held_lock(lock, "busy", root / "out"):
        listed = ablate("tiny.yaml", "--seeds", "3", "--dry-run", "--out", "out", cwd=root)
        assert f"[going on now in another process (process {os.getpid()} on " in listed.stdout
        stopped = ablate("tiny.yaml", "--seeds", "3", "--out", "out", cwd=root)
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr, stopped.stderr
    assert f"{lock.relative_to(root)}: run {first} is going on in another process (process {os.getpid()} on " \
        in stopped.stderr
    assert [p.name for p in staging.iterdir()] == ["last.pt"]  # nothing was started


@pytest.mark.slow
def test_changed_criteria_rejudge_and_changed_training_reruns(tiny_copy: Path) -> None:
    root = tiny_copy
    stricter = ablate("tiny.yaml", "--set", "criteria.best_val_acc=>= 0.2", "--dry-run", "--out", "out", cwd=root)
    assert stricter.returncode == 0, stricter.stderr
    lines = [ln for ln in stricter.stdout.splitlines() if ln.startswith("tiny-")]
    assert len(lines) == 4 and all("[re-judge (changed only outside training: no training)]" in ln for ln in lines)
    assert len(re.findall(r" --resume$", stricter.stdout, re.MULTILINE)) == 4
    last = root / "out" / "checkpoints" / "tiny-cosine-s0" / "last.pt"
    last.unlink()  # nothing to resume from: that pair must re-run, not fail its resume
    no_ckpt = ablate("tiny.yaml", "--set", "criteria.best_val_acc=>= 0.2", "--dry-run", "--out", "out", cwd=root)
    line = next(ln for ln in no_ckpt.stdout.splitlines() if ln.startswith("tiny-cosine-s0"))
    assert "[refused: a finished run of a different spec, which --replace-stale replaces (see below)]" in line
    assert no_ckpt.returncode == 2 and no_ckpt.stderr.count(STALE_RUN) == 1
    longer = ablate("tiny.yaml", "--set", "train.epochs=3", "--dry-run", "--out", "out", "--replace-stale", cwd=root)
    assert longer.returncode == 0, longer.stderr
    assert sum("[run (replaces a run of a different spec)]" in ln for ln in longer.stdout.splitlines()) == 4


@pytest.mark.slow
def test_a_finished_run_whose_record_is_damaged_is_rejudged_from_its_checkpoint_not_trained_again(
    tiny_copy: Path,
) -> None:
    """A user test: a truncated audit.json beside intact checkpoints was planned as a new run: the
    run was trained again, and its checkpoints replaced. A report deleted is still trained afresh:
    the README's way to redo a run (a review)."""
    out = tiny_copy / "out"
    record = out / "reports/tiny-constant-s0/audit.json"
    record.write_text(record.read_text()[:500])  # truncated
    (out / "reports/tiny-cosine-s1/audit.json").write_text("[1, 2]")  # not a record
    shutil.rmtree(out / "reports/tiny-constant-s1")  # deleted, to redo the run
    lasts = {n: (out / f"checkpoints/{n}/last.pt").read_bytes() for n in ("tiny-constant-s0", "tiny-cosine-s1")}
    dry = ablate("tiny.yaml", "--out", "out", "--dry-run", cwd=tiny_copy)
    assert dry.returncode == 0, dry.stderr
    label = ("[re-judge (its audit.json cannot be read: its intact last.pt, of this training, is measured and judged "
             "again; delete its report folder to train it afresh)]")
    planned = {ln.split()[0]: ln.split("  ")[-1] for ln in dry.stdout.splitlines() if ln.startswith("tiny-")}
    assert planned == {"tiny-cosine-s0": "[skip (finished)]", "tiny-cosine-s1": label,
                       "tiny-constant-s0": label, "tiny-constant-s1": "[run]"}, dry.stdout  # fmt: skip
    proc = ablate("tiny.yaml", "--out", "out", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (proc.stdout + proc.stderr).count("epoch 1/1 ") == 1, proc.stderr  # tiny-constant-s1 alone was trained
    for name, before in lasts.items():
        assert (out / f"checkpoints/{name}/last.pt").read_bytes() == before
        assert json.loads((out / f"reports/{name}/audit.json").read_text())["run"]["status"] == "completed"


def test_a_page_folder_or_out_that_cannot_be_written_is_refused_before_any_run_and_in_a_dry_run(tmp_path: Path) -> None:
    """A user test: a file where the page folder goes was found only once every run had trained;
    a --dry-run planned an --out under a file without a word."""
    write(tmp_path / "tiny.yaml", TINY)
    (tmp_path / "o/reports").mkdir(parents=True)
    (tmp_path / "o/reports/tiny").write_text("hi")
    (tmp_path / "afile").write_text("f")
    for dry in (["--dry-run"], []):
        proc = ablate("tiny.yaml", "--out", "o", *dry, cwd=tmp_path)
        assert_invalid(proc, "--out: cannot write under o: o/reports/tiny is a file, not a folder (the ablation's page "
                             "folder); move it away: nothing was run")  # fmt: skip
        assert "epoch" not in proc.stdout + proc.stderr
        proc = ablate("tiny.yaml", "--out", "afile/sub", *dry, cwd=tmp_path)
        assert_invalid(proc, "--out: cannot write under afile/sub: afile is a file, not a folder (--out)")
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2/reports").write_text("every run's reports go here")
    assert_invalid(ablate("tiny.yaml", "--out", "o2", "--dry-run", cwd=tmp_path),
                   "--out: cannot write under o2: o2/reports is a file, not a folder (the reports folder)")
    assert not (tmp_path / "o/checkpoints").exists()


def test_a_page_of_the_same_ablation_file_moved_is_said_to_be_removable(tiny_copy: Path) -> None:
    """A user test: after the file moved, the refusal named a file no longer there and offered only
    fixes that train every run again, where removing the page folder rebuilds it from the runs."""
    (tiny_copy / "moved").mkdir()
    shutil.move(tiny_copy / "tiny.yaml", tiny_copy / "moved/tiny.yaml")
    proc = ablate("moved/tiny.yaml", "--out", "out", "--dry-run", cwd=tiny_copy)
    page = Path("out/reports/tiny")
    assert_invalid(proc, f"{page}: holds the page of the ablation in ../tiny.yaml (from --out), also named 'tiny', which is "
                         f"not there now; rename one of them, or use another --out; if that file was moved to "
                         f"moved/tiny.yaml, remove {page}: the page is made again from the runs, which are kept and not "
                         "trained again")  # fmt: skip
    shutil.rmtree(tiny_copy / page)
    proc = ablate("moved/tiny.yaml", "--out", "out", "--dry-run", cwd=tiny_copy)
    assert proc.returncode == 0 and proc.stdout.count("[skip (finished)]") == 4, proc.stdout + proc.stderr


def test_a_stopped_ablation_says_which_runs_its_earlier_page_no_longer_shows(tiny_copy: Path) -> None:
    """A user test: a re-run stopped after replacing a run left the page showing the replaced run's
    figures beside a link to the new sheet, with no word of it."""
    from auditor.ablate import stale_page_note

    out = tiny_copy / "out"
    plan = build_plan(str(tiny_copy / "tiny.yaml"), [], None, None, False)
    assert stale_page_note(out, plan) is None  # as written
    record = out / "reports/tiny-constant-s1/audit.json"
    audit = json.loads(record.read_text())
    audit["metrics"]["best_val_acc"] = 0.123  # as a run of the same spec that measured otherwise
    record.write_text(json.dumps(audit))
    (out / "reports/tiny-cosine-s0/audit.json").unlink()
    assert stale_page_note(out, plan) == (
        f"note: {out / 'reports/tiny/ABLATIONS.md'} is out of date: 2 runs it counts were replaced or removed since it "
        "was written (tiny-cosine-s0, tiny-constant-s1); it is rewritten when the ablation finishes")


def test_only_runs_some_variants_but_the_page_covers_the_file(tmp_path: Path) -> None:
    _first_run_finished(write(tmp_path / "tiny.yaml", TINY), tmp_path / "out", only=["constant"])
    proc = ablate("tiny.yaml", "--only", "constant", "--render-only", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    assert "- Variants on this page: cosine, constant\n" in page and "do not resolve" not in page
    assert "`tiny-cosine-s0` (no report: not run yet, or its report was removed)" in page and "3 planned runs have no finished report yet" in proc.stdout
    # a user test: pairs not run yet had been labelled "not counted" alone, as if refused
    assert '| 0 (+2 not run yet or not counted: see "Runs not run yet or not counted") |' in page
    assert "\n### Runs not run yet or not counted\n" in page


def test_only_leaves_out_of_the_page_the_variants_that_do_not_resolve_alone(tmp_path: Path) -> None:
    """A user test: one broken variant had left the page with the --only variant alone, a finished
    variant that resolves dropped, said to be among those that 'do not resolve'."""
    three = TINY.replace("constant: [train.schedule.name=constant]",
                         "constant: [train.schedule.name=constant]\n  broken: [train.epochs=-1]")  # fmt: skip
    write(tmp_path / "tiny.yaml", three)
    dry = ablate("tiny.yaml", "--only", "cosine", "--dry-run", "--out", "out", cwd=tmp_path)  # said before any run too
    assert dry.returncode == 0 and "\n# note: the page leaves out 1 variant that does not resolve (broken): tiny.yaml" in dry.stdout
    _first_run_finished(tmp_path / "tiny.yaml", tmp_path / "out", only=["cosine"])
    proc = ablate("tiny.yaml", "--only", "cosine", "--render-only", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "note: the page leaves out 1 variant that does not resolve (broken): tiny.yaml" in proc.stdout
    assert "train.epochs" in proc.stdout and "selected with --only" not in proc.stdout
    page = (tmp_path / "out/reports/tiny/ABLATIONS.md").read_text()
    assert ("- Variants on this page: cosine, constant (the file's other variants do not resolve with these "
            "overrides; it defines cosine, constant, broken)") in page


@pytest.mark.slow
def test_only_keeps_the_finished_variants_on_the_page(tiny_copy: Path) -> None:
    here = tiny_copy / "out" / "reports" / "tiny"
    before = [ln for ln in (here / "ABLATIONS.md").read_text().splitlines() if ln.startswith("| c")]
    proc = ablate("tiny.yaml", "--only", "cosine", "--out", "out", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    assert "# ablation 'tiny': 2 runs (1 variant x seeds [0, 1])" in proc.stdout
    assert [ln for ln in (here / "ABLATIONS.md").read_text().splitlines() if ln.startswith("| c")] == before


@pytest.mark.slow
def test_render_only_rebuilds_from_audits(tiny_copy: Path) -> None:
    root = tiny_copy
    here = root / "out" / "reports" / "tiny"
    table = [ln for ln in (here / "ABLATIONS.md").read_text().splitlines() if ln.startswith("| c")]
    shutil.rmtree(here)
    proc = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert [ln for ln in (here / "ABLATIONS.md").read_text().splitlines() if ln.startswith("| c")] == table
    assert (here / "ablations.json").is_file()


def test_render_only_of_one_seed_says_which_runs_the_page_dropped_and_its_command_rebuilds_the_page(
    tiny_copy: Path,
) -> None:
    page = tiny_copy / "out/reports/tiny/ABLATIONS.md"
    proc = ablate("tiny.yaml", "--render-only", "--seeds", "1", "--out", "out", cwd=tiny_copy)
    assert proc.returncode == 0, proc.stderr
    command = "auditor ablate tiny.yaml --out out --render-only"
    assert (f"note: this page covers seeds [0]; the page it replaced (seeds [0, 1]) also listed 2 finished runs of "
            f"other seeds (tiny-constant-s1, tiny-cosine-s1), which this command left untouched; `{command}` rebuilds "
            "that page") in proc.stdout  # fmt: skip
    assert "tiny-cosine-s1" not in page.read_text()
    again = ablate(*command.split()[2:], cwd=tiny_copy)
    assert again.returncode == 0, again.stderr
    assert "tiny-cosine-s1" in page.read_text() and "note: this page covers" not in again.stdout
    checked = subprocess.run([sys.executable, "-m", "auditor", "check", "out/reports/tiny"], cwd=tiny_copy, check=False,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert checked.returncode == 2 and f"rebuild the page with `{command}`" in checked.stderr, checked.stderr


@pytest.mark.slow
def test_a_page_of_one_seed_whose_run_replaced_one_the_earlier_page_listed_offers_no_rebuild(tiny_copy: Path) -> None:
    """Run (not rendered) under another --set, seed 0's runs are made again: the 2-seed page is gone for good."""
    proc = ablate("tiny.yaml", "--set", "train.optimizer.lr=0.07", "--seeds", "1", "--out", "out", "--replace-stale",
                  cwd=tiny_copy)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert ("the page it replaced (seeds [0, 1]) also listed 2 finished runs of other seeds (tiny-constant-s1, "
            "tiny-cosine-s1), which this command left untouched; that page cannot be rebuilt as it was: 2 runs it "
            "listed (tiny-constant-s0, tiny-cosine-s0) are no longer there under the spec it listed") in proc.stdout
    assert "rebuilds that page" not in proc.stdout


@pytest.mark.slow
def test_runs_made_by_other_software_are_named(tiny_copy: Path) -> None:
    root = tiny_copy
    reports = root / "out" / "reports"
    edits = {"tiny-constant-s1": ("auditor", "0.1.0"), "tiny-cosine-s1": ("cpu_model", "Other CPU")}
    for run, (key, value) in edits.items():
        audit = json.loads((reports / run / "audit.json").read_text())
        audit["environment"][key] = value
        (reports / run / "audit.json").write_text(json.dumps(audit))
    plan = ablate("tiny.yaml", "--dry-run", "--out", "out", cwd=root)
    render = ablate("tiny.yaml", "--render-only", "--out", "out", cwd=root)
    page = (reports / "tiny" / "ABLATIONS.md").read_text()
    assert plan.returncode == 0 and render.returncode == 0, plan.stderr + render.stderr
    env = json.loads((reports / "tiny-cosine-s0" / "audit.json").read_text())["environment"]
    cpu = f"cpu ({env['cpu_model']}, {env['torch_threads']} threads)"
    lines = {ln.split()[0]: ln for ln in plan.stdout.splitlines() if ln.startswith("tiny-")}
    redo = "delete its report to re-run)]"
    assert f"[skip (finished with auditor 0.1.0 (now {auditor.__version__}); {redo}" in lines.pop("tiny-constant-s1")
    moved = f"cpu (Other CPU, {env['torch_threads']} threads) (now {cpu})"
    assert f"[skip (finished with {moved}; {redo}" in lines.pop("tiny-cosine-s1")
    assert all("[skip (finished)]" in ln for ln in lines.values()) and len(lines) == 2
    assert "note: the runs were made with 3 different software versions or devices" in render.stdout
    section = page.split("### Runs made with different software or devices")[1].split("##")[0]
    source = f"(source {env['auditor_source'][:12]})"
    now = f"auditor {auditor.__version__} {source}, torch {torch.__version__}"
    assert f"- {now}, {cpu}: `tiny-cosine-s0`, `tiny-constant-s0`" in section
    assert f"- {now}, cpu (Other CPU, {env['torch_threads']} threads): `tiny-cosine-s1`" in section
    assert f"- auditor 0.1.0 {source}, torch {torch.__version__}, {cpu}: `tiny-constant-s1`" in section


def test_runs_trained_on_a_busy_machine_are_named_beside_the_train_times(tiny_copy: Path) -> None:
    """A user test: every run's sheet warned that other processes used half the CPU, while the
    page compared their train times without a word."""
    reports = tiny_copy / "out" / "reports"

    def metered(share: float, *runs: str) -> subprocess.CompletedProcess[str]:
        for run in runs:  # the share this machine's own load gave them is replaced: the page is what is tested
            audit = json.loads((reports / run / "audit.json").read_text())
            audit["training"] |= {"other_cpu_share": share, "other_cpu_window_s": 30.0}
            (reports / run / "audit.json").write_text(json.dumps(audit))
        return ablate("tiny.yaml", "--render-only", "--out", "out", cwd=tiny_copy)

    assert metered(0.0, *(f"tiny-{v}-s{s}" for v in ("constant", "cosine") for s in (0, 1))).returncode == 0
    assert "Busy machine" not in (reports / "tiny" / "ABLATIONS.md").read_text()
    render = metered(0.5, "tiny-cosine-s1")
    assert render.returncode == 0, render.stderr
    page = (reports / "tiny" / "ABLATIONS.md").read_text()
    assert ("**Busy machine:** other processes used a share of the CPU while 1 run trained: `tiny-cosine-s1` (50%). "
            "Their train times are slower") in page.replace("\n", " ")
    assert "note: 1 run trained on a busy machine, so train time does not compare (listed on the page): tiny-cosine-s1" in render.stdout
    from auditor.ablate import busy_share

    assert busy_share({"other_cpu_share": 0.02, "other_cpu_window_s": 30.0}) is None  # quiet enough
    assert busy_share({"other_cpu_share": "0.5", "other_cpu_window_s": 30.0}) is None  # not a number


def test_variants_that_differ_only_outside_training_are_said_to_train_alike(tmp_path: Path) -> None:
    """A user test: a variant changing only its criteria showed the same accuracies as the base's row,
    as if compared, where variants resolving to one spec are named."""
    from auditor import ablate

    text = TINY.replace("constant: [train.schedule.name=constant]",
                        "constant: [train.schedule.name=constant]\n  strict: ['criteria.best_val_acc=>= 0.99']\n"
                        "  lean: [train.host_memory=release, 'criteria.best_val_acc=>= 0.99']")  # fmt: skip
    f = write(tmp_path / "x.yaml", text)
    plan = build_plan(str(f))
    said = ("variants 'cosine', 'strict' and 'lean' differ only outside training (criteria, measure, verify, "
            "train.host_memory): their runs train the same weights at each seed")
    whole = f"{said}, so their accuracies repeat one another; their rows differ only in what is measured or gated"
    assert [w for w in plan.warnings if "outside training" in w] == [whole]
    # strict and lean resolve to one spec but for host_memory: not the "same spec" note, which names one spec
    assert not any("resolve to the same spec" in w for w in plan.warnings)
    for run in plan.runs[:1]:
        _fake_finished(tmp_path / "out", run, "completed", 0.5)
    page, record = ablate.write_outputs(tmp_path / "out", plan)
    assert record["same_training_variants"] == [["cosine", "strict", "lean"]]
    text = page.read_text()
    assert "### Variants that train alike" in text and "\n- cosine, strict, lean\n" in text
    assert ("note: variants cosine, strict, lean differ only outside training, so their runs train the same weights and "
            "their accuracies repeat one another (listed on the page)") in ablate.page_notes(record)
    same = write(tmp_path / "y.yaml", TINY.replace("constant: [train.schedule.name=constant]",
                                                   "constant: [train.schedule.name=cosine]"))  # one spec: said once
    assert ablate.same_training_variants(build_plan(str(same)).runs) == []
    # The review: pairs each of one spec, the pairs alike in training, were said only as the two pairs.
    pairs = write(tmp_path / "z.yaml", TINY.replace("constant: [train.schedule.name=constant]",
                                                    "again: [train.schedule.name=cosine]\n"
                                                    "  strict: ['criteria.best_val_acc=>= 0.9']\n"
                                                    "  strict2: ['criteria.best_val_acc=>= 0.9']"))  # fmt: skip
    assert ablate.same_training_variants(build_plan(str(pairs)).runs) == [["cosine", "again", "strict", "strict2"]]


def test_runs_of_different_lengths_end_the_mean_where_the_first_run_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: under early stopping two seeds stopped after epoch 3 and one ran 5; the figures'
    mean of epochs 4-5 was that one run alone (a jump of 28 points, legend n=3), and nothing said the
    final val acc averaged runs of different lengths."""
    from auditor import ablate, render

    drawn: dict[str, Any] = {}
    monkeypatch.setattr(render, "write_png", lambda fig, path: drawn.__setitem__(path.name, fig))
    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=3, depth_figure=True)
    long, *short = plan.runs
    curves = {long.name: [0.30, 0.45, 0.55, 0.86, 0.88], **{r.name: [0.31, 0.50, 0.58] for r in short}}
    for r in plan.runs:
        history = [{"val_acc": v, "train_acc": v - 0.05} for v in curves[r.name]]
        (tmp_path / "reports" / r.name).mkdir(parents=True)
        audit = finished_record(r, 0.5, history=history)
        audit["training"]["resumed_from"] = "last.pt" if r is long else None  # resumed after a kill: metered in part
        (tmp_path / "reports" / r.name / "audit.json").write_text(json.dumps(audit))
    page, record = ablate.write_outputs(tmp_path, plan)
    assert [r["busy_part"] for r in record["variants"][0]["runs"]] == [True, False, False]
    [ax] = drawn["val_acc.png"].axes
    mean, tail = ax.lines  # the mean over the three runs, then the long run alone
    assert list(mean.get_xdata()) == [1, 2, 3] and list(tail.get_xdata()) == [3, 4, 5]
    assert list(tail.get_ydata()) == pytest.approx([55.0, 86.0, 88.0]) and tail.get_linestyle() == ":"
    assert list(mean.get_ydata())[-1] == pytest.approx(100 * statistics.mean([0.55, 0.58, 0.58]))
    [depth] = drawn["depth.png"].axes
    assert [list(line.get_xdata()) for line in depth.lines] == [[1, 2, 3], [1, 2, 3], [3, 4, 5], [3, 4, 5]]
    text = page.read_text().replace("\n", " ")
    seeds = ", ".join(str(r.seed) for r in short)
    listed = f"cosine: seeds {seeds} ran 3 epochs; seed {long.seed} ran 5 epochs"
    assert listed in ablate.uneven_epochs(record["variants"]) and "**Runs of different lengths:**" in text
    assert text.count(ablate.TAILS_CAPTION[2:] + ".") == 2 and "it.." not in text  # both figures' captions, ended once
    assert ablate._band([[0.5, 0.6], []]) == ([1, 2], [0.5, 0.6], [0.5, 0.6], [0.5, 0.6])  # a run with no history
    assert any(listed in note for note in ablate.page_notes(record))
    # the figure asked for last time and not now is removed
    depth_png = tmp_path / "reports" / plan.ablation.name / "figures" / "depth.png"
    depth_png.write_bytes(b"an earlier render's")
    plain = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=3)
    assert "depth.png" not in ablate.write_outputs(tmp_path, plain)[0].read_text() and not depth_png.exists()


def test_rows_that_average_different_seeds_are_said_to(tmp_path: Path) -> None:
    """A user test: after `--seeds 4 --only lr10`, one row averaged seeds 0-3 and the others 0-2, and the page
    listed only the missing pairs."""
    from auditor import ablate

    plan = build_plan("resnet18_cifar10", only=["cosine", "constant"], n_seeds=2)
    for r in plan.runs:
        if not (r.variant == "constant" and r.seed == plan.seeds[1]):
            _fake_finished(tmp_path, r, "completed", 0.5)
    page, record = ablate.write_outputs(tmp_path, plan)
    first, second = plan.seeds
    assert ablate.seed_sets(record["variants"]) == [f"cosine: seeds {first}, {second}", f"constant: seed {first}"]
    assert ("**Different seeds:** the rows do not all average the same seeds, so a difference between them is partly "
            f"one of seeds: cosine: seeds {first}, {second}; constant: seed {first}.") in page.read_text().replace("\n", " ")
    assert f"note: the rows do not all average the same seeds (listed on the page): cosine: seeds {first}, {second}; " \
        f"constant: seed {first}" in ablate.page_notes(record)
    _fake_finished(tmp_path, plan.runs_of("constant")[1], "completed", 0.5)
    assert "**Different seeds:**" not in ablate.write_outputs(tmp_path, plan)[0].read_text()


def test_runs_rejudged_after_their_training_are_said_to_have_an_unknown_busy_share() -> None:
    """A user test: a re-judge keeps a run's train time but writes no CPU share (the processes that
    trained it are gone), and the page's Busy machine warning went without a word."""
    from auditor.ablate import busy_note

    busy = {"name": "a-s0", "busy_share": 0.5, "busy_unknown": False}
    rejudged = [{"name": f"b-s{i}", "busy_share": None, "busy_unknown": True} for i in range(2)]
    quiet = {"name": "c-s0", "busy_share": None, "busy_unknown": False}
    unknown = ("How busy the machine was while 2 runs trained is not known: `b-s0`, `b-s1` were re-judged after the "
               "training had ended, and the share of the processes that trained them was not kept; their train times "
               "may not compare either.")
    assert busy_note([quiet, *rejudged]) == f"**Busy machine:** {unknown}"
    assert busy_note([busy, quiet, *rejudged]).endswith(f"the accuracies are not affected. {unknown}")
    assert busy_note([quiet, {"name": "d-s0"}]) is None  # an older record: neither field
    # A user test: a run resumed after a kill was metered in the resuming process alone.
    resumed = {"name": "e-s0", "busy_share": None, "busy_unknown": False, "busy_part": True}
    part = ("How busy the machine was is known only in part for 1 run: `e-s0` was resumed, and the training before "
            "the resume, in earlier processes, was not metered; its train time may not compare either.")
    assert busy_note([quiet, resumed]) == f"**Busy machine:** {part}"
    assert busy_note([busy, resumed, *rejudged]).endswith(f"the accuracies are not affected. {unknown} {part}")


def test_software_label_and_skip_label() -> None:
    from auditor.ablate import mixed_software, skip_label
    from auditor.environment import source_digest

    env = {"auditor": auditor.__version__, "torch": str(torch.__version__), "device": "cuda:0",
           "auditor_source": source_digest()}  # fmt: skip
    env["gpu"] = {"name": "NVIDIA H100", "memory_total_mb": 81559.0, "driver": "580.1", "source": "nvml"}
    label = software_label({"environment": env})
    src = source_digest()[:12]
    assert label == f"auditor {auditor.__version__} (source {src}), torch {torch.__version__}, cuda (NVIDIA H100)"
    assert software_label({"environment": {**env, "device": "cuda"}}) == label  # the index is not the GPU
    cpu = {**env, "device": "cpu", "gpu": None, "cpu_model": "AMD EPYC", "torch_threads": 2}
    assert software_label({"environment": cpu}).endswith(", cpu (AMD EPYC, 2 threads)")
    assert software_label({"environment": {**cpu, "torch_threads": 16}}) != software_label({"environment": cpu})
    assert software_label({}) == "auditor unknown, torch unknown, unknown device"  # no digest recorded: none shown
    now = {"auditor": auditor.__version__, "auditor_source": src, "torch": str(torch.__version__), "device": "cuda:0",
           "gpu": env["gpu"]}  # fmt: skip
    assert skip_label({"environment": env}, now) == "skip (finished)"
    assert skip_label({"environment": {**env, "torch": "2.0.0"}}, now).startswith(
        f"skip (finished with torch 2.0.0 (now {torch.__version__})")
    edited = skip_label({"environment": {**env, "auditor_source": "0" * 64}}, now)  # the same version, other code
    assert edited.startswith(f"skip (finished with auditor source 000000000000 (now {src})")
    older = {k: v for k, v in env.items() if k != "auditor_source"}  # a record before the digest: compared without it
    assert skip_label({"environment": older}, now) == "skip (finished)"
    # The page's mixed-software list: a record without a digest is not told apart by its absence.
    row = lambda name, e: {"name": name, "software": software_label({"environment": e}),
                           "software_base": software_label({"environment": e}, source=False)}  # fmt: skip
    assert mixed_software([{"runs": [row("a", env), row("b", older)]}]) == {}
    edited_env = {**env, "auditor_source": "0" * 64}
    assert len(mixed_software([{"runs": [row("a", env), row("b", edited_env)]}])) == 2


@pytest.mark.slow
@requires_subset
def test_preset_tiny_budget_on_real_subset(tmp_path: Path) -> None:
    args = ["specs/ablations/plain_vs_resnet.yaml", "--only", "resnet20", "--seeds", "1", "--out", str(tmp_path)]
    proc = ablate(*args, *sets(TINY_BUDGET), cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    here = tmp_path / "reports" / "plain-vs-resnet-cifar10"
    page = (here / "ABLATIONS.md").read_text()
    assert "| resnet20 | 1 |" in page and (here / "figures" / "depth.png").is_file()
    assert "91.25 %" in page  # He et al.'s ResNet-20, labelled as a single reported run


def test_counts_agree_with_their_nouns() -> None:
    from auditor.words import count

    assert (count(1, "run"), count(0, "run"), count(4, "planned run")) == ("1 run", "0 runs", "4 planned runs")


def test_an_ablation_path_that_is_a_folder_or_missing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.ablate import resolve_ablation_path

    with pytest.raises(InvalidInput, match=f"^{re.escape(str(tmp_path))}: a folder, not an ablation file$"):
        resolve_ablation_path(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert resolve_ablation_path("resnet18_cifar10").is_file()  # shipped, by name
    with pytest.raises(InvalidInput, match=r"^\./specs/ablations/resnet18_cifar10\.yaml: ablation file not found$"):
        resolve_ablation_path("./specs/ablations/resnet18_cifar10.yaml")  # a path: never the shipped one
    with pytest.raises(InvalidInput, match=r"^plain_vs_resnt: ablation file not found \(and no shipped ablation of "
                                           r"that name; did you mean plain_vs_resnet\?\)$"):  # fmt: skip
        resolve_ablation_path("plain_vs_resnt")
    with pytest.raises(InvalidInput, match=r"; smoke is a shipped spec: `auditor run smoke`\)$"):
        resolve_ablation_path("smoke")


def test_the_depth_figure_draws_only_variants_with_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant with no finished run has no curve and no family: it was put among the residual networks."""
    from auditor import ablate, render

    drawn: list[Any] = []
    monkeypatch.setattr(render, "write_png", lambda fig, path: drawn.append(fig))
    curve = {"val_acc": [[0.3, 0.5]], "train_acc": [[0.2, 0.4]], "split": ["val"]}
    none: dict[str, list[Any]] = {"val_acc": [], "train_acc": [], "split": []}

    def variant(name: str, family: str | None) -> dict[str, Any]:
        return {"name": name, "runs": [{"family": family}] if family else []}

    record = {"variants": [variant("plain20", "plain-cifar"), variant("plain56", None), variant("resnet20", None)]}
    caption = ablate._depth_figure(record, {"plain20": curve, "plain56": none, "resnet20": none}, tmp_path, "val", False)["caption"]
    (ax,) = drawn[-1].axes
    assert ax.get_title() == "plain networks" and ax.get_legend_handles_labels()[1] == ["plain20 (n=1)"]
    assert "x" not in ax.get_legend().get_title().get_text() and "an x where" not in caption
    # One epoch: the training error is a marker, not the dashed line the legend named (a user test).
    one = {"val_acc": [[0.3]], "train_acc": [[0.2]], "split": ["val"]}
    caption = ablate._depth_figure(record, {"plain20": one, "plain56": none, "resnet20": none}, tmp_path, "val", False)["caption"]
    assert "dashed thin = training error (an x where the runs of a variant have one epoch in common)" in caption
    assert drawn[-1].axes[0].get_legend().get_title().get_text() == "bold: val error; dashed: training error (x: one epoch)"
    ablate._depth_figure({"variants": record["variants"][1:]}, {"plain56": none, "resnet20": none}, tmp_path, "val", False)
    (ax,) = drawn[-1].axes  # no run to draw: one panel that says so
    assert ax.get_legend_handles_labels()[1] == [] and [t.get_text() for t in ax.texts] == ["no finished epochs yet"]


def test_a_broken_runs_accuracies_are_withheld_from_the_page(tmp_path: Path) -> None:
    """The page says 'accuracies withheld'; a record from before final_val_acc was withheld holds one."""
    from auditor import ablate

    f = write(tmp_path / "x.yaml", TINY)
    run = build_plan(str(f)).runs[0]
    audit = finished_record(run, 0.5)  # (a record the page counts: `check` does not refuse it)
    audit["metrics"] |= {"best_val_acc": None, "final_val_acc": 0.2344, "test_acc": None, "train_time_s": 3.0, "params_m": 0.08}
    audit["measurements"]["nonfinite"] = ["bn1.running_var"]
    row = ablate._run_row(run, audit, tmp_path / "r", tmp_path)
    assert row["broken"] and row["metrics"] == {"best_val_acc": None, "final_val_acc": None, "test_acc": None,
                                                "train_time_s": 3.0, "params_m": 0.08}  # fmt: skip
    audit["measurements"]["nonfinite"] = []
    assert ablate._run_row(run, audit, tmp_path / "r", tmp_path)["metrics"]["final_val_acc"] == 0.2344


def test_a_run_whose_record_names_another_ablation_is_not_taken_for_this_ones(tmp_path: Path) -> None:
    from auditor import ablate

    out, plan = tmp_path / "out", build_plan(str(write(tmp_path / "a.yaml", TINY)))
    record = out / "reports" / "tiny-cosine-s0" / "audit.json"
    record.parent.mkdir(parents=True)
    for made, refused in [({"ablation": "tiny", "variant": "cosine", "seed": 0}, False),  # this ablation's own
                          (None, False), ({"ablation": "tiny"}, False), ("tiny", False),  # not said, or malformed
                          ({"ablation": "tiny", "variant": "co", "seed": 0}, True),
                          ({"ablation": "tiny-cosine", "variant": "x", "seed": 0}, True)]:  # fmt: skip
        record.write_text(json.dumps({"run": {"name": "tiny-cosine-s0", "ablation_run": made}}))
        if not refused:
            ablate.check_run_names(out, plan)
            continue
        with pytest.raises(InvalidInput, match=re.escape(f"tiny-cosine-s0 (seed 0 of variant {made['variant']!r} of "
                                                         f"ablation {made['ablation']!r}, as its audit.json records)")):  # fmt: skip
            ablate.check_run_names(out, plan)


def test_a_run_replacing_one_an_ablation_page_counts_says_the_page_shows_the_earlier(tmp_path: Path) -> None:
    from auditor.audit import ablation_page_note

    reports = tmp_path / "out" / "reports"
    (reports / "tiny-cosine-s0").mkdir(parents=True)
    made = {"ablation": "tiny", "variant": "cosine", "seed": 0}
    (reports / "tiny-cosine-s0" / "audit.json").write_text(json.dumps({"run": {"ablation_run": made}}))
    assert ablation_page_note(reports / "tiny-cosine-s0", None) is None  # no page: nothing shows it
    (reports / "tiny").mkdir()
    page = {"ablation": {"name": "tiny"}, "variants": [{"name": "cosine", "runs": [{"name": "tiny-cosine-s1"}]}]}
    (reports / "tiny" / "ablations.json").write_text(json.dumps(page))
    assert ablation_page_note(reports / "tiny-cosine-s0", None) is None  # a page of other seeds (--seeds) shows none of it
    page["variants"][0]["runs"].append({"name": "tiny-cosine-s0"})
    (reports / "tiny" / "ablations.json").write_text(json.dumps(page))
    note = ablation_page_note(reports / "tiny-cosine-s0", None)
    assert note is not None and note.startswith(f"the run there is seed 0 of variant 'cosine' of ablation 'tiny', whose page "
                                                f"{reports / 'tiny' / 'ABLATIONS.md'} goes on showing its figures, while "
                                                "the page's link to its sheet opens this run's")  # fmt: skip
    assert note.endswith("until the page is rebuilt: auditor ablate FILE --render-only --out DIR")
    assert ablation_page_note(reports / "tiny-cosine-s0", made) is None  # the ablation running it again rewrites its page
    assert ablation_page_note(reports / "tiny-cosine-s0", {**made, "variant": "x"}) is not None
    (reports / "tiny-cosine-s0" / "audit.json").write_text(json.dumps({"run": {"ablation_run": None}}))
    assert ablation_page_note(reports / "tiny-cosine-s0", None) is None


def test_page_folders_and_run_names_of_two_ablations_may_not_meet(tmp_path: Path) -> None:
    """Pages and runs share reports/: an ablation named as another's run, or a run named as another's page."""
    from auditor import ablate

    out = tmp_path / "out"
    page = out / "reports" / "tiny" / "ablations.json"
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"ablation": {"name": "tiny"}, "variants": [
        {"name": "r8", "runs": [], "missing": [{"seed": 0, "name": "tiny-r8-s0", "why": "not run"}]}]}))
    named_as_run = build_plan(str(write(tmp_path / "a.yaml", TINY.replace("name: tiny", "name: tiny-r8-s0"))))
    with pytest.raises(InvalidInput, match=re.escape(
            "would take the names of another's: tiny-r8-s0 (this ablation's page folder; a run of variant 'r8' of "
            "ablation 'tiny')")):  # fmt: skip
        ablate.check_run_names(out, named_as_run)
    # the other way round: a page named as one of this ablation's runs
    (out / "reports" / "x-cosine-s0").mkdir()
    (out / "reports" / "x-cosine-s0" / "ablations.json").write_text(json.dumps({"ablation": {"name": "x-cosine-s0"},
                                                                                "variants": []}))  # fmt: skip
    runs_as_page = build_plan(str(write(tmp_path / "b.yaml", TINY.replace("name: tiny", "name: x"))))
    with pytest.raises(InvalidInput, match=re.escape("x-cosine-s0 (the page folder of ablation 'x-cosine-s0')")):
        ablate.check_run_names(out, runs_as_page)
    ablate.check_run_names(out, build_plan(str(write(tmp_path / "c.yaml", TINY.replace("name: tiny", "name: y")))))
    for suffix in (".partial", ".old", ".failed"):  # its page folder would pass for a run's own staging folder
        with pytest.raises(InvalidInput, match="name: must not end in .partial, .old, .failed"):
            build_plan(str(write(tmp_path / "d.yaml", TINY.replace("name: tiny", f"name: tiny-cosine-s0{suffix}"))))


def _data_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preset's data folder passes ablate's check: the `auditor run` processes are stood in for."""
    from auditor import runner

    monkeypatch.setattr(runner, "data_problems", lambda spec: [])


def test_a_second_ablate_of_the_same_page_is_refused_while_one_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: two ablates of one file and --out with other --only variants both ran, each
    writing the page in turn (the first counted a run the other had not finished)."""
    from auditor.fileio import held_lock, lock_beside

    f = write(tmp_path / "x.yaml", TINY)
    out = tmp_path / "out"
    _first_run_finished(f, out)  # a --render-only of an --out holding no run of it is refused before the lock
    lock = lock_beside(out / "reports" / "tiny")
    with held_lock(lock, "held by this test", out):  # as another `auditor ablate` process holds it
        for extra in (["--only", "cosine"], ["--render-only"]):
            assert main(["ablate", str(f), "--out", str(out), *extra]) == 2
            err = capsys.readouterr().err
            assert f"{lock}: an `auditor ablate` of 'tiny' is going on in this --out" in err and "Traceback" not in err
        assert main(["ablate", str(f), "--out", str(out), "--dry-run"]) == 0  # writes nothing: not refused
    assert not (out / "reports" / "tiny").exists() and not list(out.glob("checkpoints/*"))


@pytest.mark.parametrize("stop", ["Terminated", "KeyboardInterrupt"])
def test_a_stop_during_a_run_is_passed_on_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str) -> None:
    """A SIGTERM or SIGINT may reach ablate only (`kill PID`), unlike Ctrl-C at a terminal, which the
    whole process group gets (the run ignores the second it then receives)."""
    from auditor import ablate
    from auditor.errors import Terminated

    raised = {"Terminated": Terminated, "KeyboardInterrupt": KeyboardInterrupt}[stop]
    calls: list[object] = []

    class Run:  # stands in for the `auditor run` child process
        def __init__(self, argv: list[str], **kwargs: object) -> None:
            calls.append("start")

        def wait(self, timeout: float | None = None) -> int:
            calls.append("wait")
            if calls.count("wait") == 1:
                raise raised  # the signal arrives while ablate waits
            return 143 if signal.SIGTERM in calls else 130

        def send_signal(self, signum: int) -> None:
            calls.append(signum)

    monkeypatch.setattr(ablate.subprocess, "Popen", Run)
    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=1)
    with pytest.raises(raised):
        ablate.execute_plan(plan, tmp_path, lambda msg: None)
    assert calls == ["start", "wait", signal.SIGTERM if stop == "Terminated" else signal.SIGINT, "wait"]


@pytest.mark.slow
def test_ctrl_c_sent_to_ablate_alone_stops_the_run_it_waits_for(tmp_path: Path) -> None:
    """`kill -INT PID` reaches ablate and not its run (a terminal's Ctrl-C reaches both): the run
    must stop now, resumable, not train to its end first."""
    write(tmp_path / "tiny.yaml", TINY.replace("train.epochs=1", "train.epochs=60"))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited as ignored
    try:
        proc = subprocess.Popen([sys.executable, "-m", "auditor", "ablate", "tiny.yaml", "--only", "cosine",
                                 "--seeds", "1", "--out", "out"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    staging = run_paths(tmp_path / "out", "tiny-cosine-s0").ckpt_staging
    deadline = time.monotonic() + 300
    while not (staging / "last.pt.sha256").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first epoch's checkpoint is there to continue from
    os.kill(proc.pid, signal.SIGINT)  # its own session: nothing else gets it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err, out + err
    assert "interrupted; continue with: auditor ablate tiny.yaml --only cosine --seeds 1 --out out" in out
    assert (staging / "last.pt").is_file()  # resumable
    assert not (tmp_path / "out/reports/tiny-cosine-s0/audit.json").exists()  # it did not train its 60 epochs


def test_a_run_stopped_by_its_own_sigterm_is_an_interruption_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _data_not_read(monkeypatch)
    from auditor import ablate
    from auditor.errors import EXIT_INTERRUPTED

    class Run:  # `auditor run` stopped cleanly by a SIGTERM sent to it alone: exit 143
        def __init__(self, argv: list[str], **kwargs: object) -> None:
            pass

        def wait(self, timeout: float | None = None) -> int:
            return 143

    monkeypatch.setattr(ablate.subprocess, "Popen", Run)
    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=1)
    done = ablate.execute_plan(plan, tmp_path, lambda msg: None)
    assert done == ablate.Execution(plan.runs[0].name, 1, 143, interrupted=True)

    argv = ["ablate", "resnet18_cifar10", "--only", "cosine", "--seeds", "1", "--out", str(tmp_path)]
    assert main(argv) == EXIT_INTERRUPTED
    again = shlex.join(["auditor", *argv])
    assert f"[1/1] {plan.runs[0].name}: interrupted (exit 143); continue with: {again}" in capsys.readouterr().out
    page = tmp_path / "reports" / plan.ablation.name
    assert not page.exists()  # no page for a stopped ablation
    # An earlier invocation's page, counting a run since removed
    page.mkdir(parents=True)
    (page / "ablations.json").write_text(json.dumps({"variants": [{"runs": [{"name": "gone-s0", "spec_hash": "x"}]}]}))
    assert main(argv) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == (f"auditor ablate: note: {page / 'ABLATIONS.md'} is out of date: 1 run it counts was "
                                       "replaced or removed since it was written (gone-s0); it is rewritten when the "
                                       "ablation finishes\n")  # fmt: skip


@pytest.mark.parametrize(("returncode", "interrupted"), [(-9, True), (-11, False), (-6, False)])
def test_a_run_killed_by_a_crash_signal_is_a_crash_not_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], returncode: int, interrupted: bool
) -> None:
    _data_not_read(monkeypatch)
    from auditor import ablate

    class Run:  # `auditor run` killed by a signal: SIGKILL stops it (it resumes); SIGSEGV, SIGABRT crash it
        def __init__(self, argv: list[str], **kwargs: object) -> None:
            pass

        def wait(self, timeout: float | None = None) -> int:
            return returncode

    monkeypatch.setattr(ablate.subprocess, "Popen", Run)
    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=1)
    assert ablate.execute_plan(plan, tmp_path, lambda msg: None).interrupted is interrupted
    argv = ["ablate", "resnet18_cifar10", "--only", "cosine", "--seeds", "1", "--out", str(tmp_path)]
    assert main(argv) == (128 - returncode if not interrupted else 130)
    out, err = capsys.readouterr()
    if not interrupted:
        name = {-11: "SIGSEGV", -6: "SIGABRT"}[returncode]
        assert f"{plan.runs[0].name}: `auditor run` was killed by {name} without a finished report" in err
        assert "interrupted" not in out


@pytest.mark.parametrize(
    ("where", "code", "stream", "said"),
    [("crash", 1, "err", ("auditor ablate: error: {name}: `auditor run` exited 1 without a finished report; stopped "
                          "(see its output above); {again} --render-only writes the page of the runs finished")),
     ("wait", 130, "out", "\ninterrupted; continue with: {again}"),  # Ctrl-C while a run goes
     ("between", 130, "out", "\ninterrupted; continue with: {again}"),  # Ctrl-C between runs
     ("refused", 2, "err", ("`auditor run` refused to go on (exit 2: bad input, or a file it could not write; message "
                            "above); stopped (mend what it refused and run the ablation again: it continues from the "
                            "runs finished; the same command with --render-only writes the page of those now)"))],
)  # fmt: skip
def test_ablate_reports_how_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    where: str, code: int, stream: str, said: str,
) -> None:  # fmt: skip
    _data_not_read(monkeypatch)
    from auditor import ablate

    class Run:  # stands in for the `auditor run` child, which writes no report
        def __init__(self, argv: list[str], **kwargs: object) -> None:
            self.waited = 0

        def wait(self, timeout: float | None = None) -> int:
            self.waited += 1
            if where == "wait" and self.waited == 1:
                raise KeyboardInterrupt
            return 130 if where == "wait" else 1

        def send_signal(self, signum: int) -> None:  # ablate passes the Ctrl-C on
            pass

    def stop_between(plan: ablate.Plan) -> dict[str, dict[str, object]]:
        raise KeyboardInterrupt

    monkeypatch.setattr(ablate.subprocess, "Popen", Run)
    if where == "between":
        monkeypatch.setattr(ablate, "this_machine", stop_between)
    argv = ["ablate", "resnet18_cifar10", "--only", "cosine", "--seeds", "1", "--out", str(tmp_path)]
    if where == "refused":
        monkeypatch.setattr(Run, "wait", lambda self, timeout=None: 2)
    assert main(argv) == code
    name = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=1).runs[0].name
    out = capsys.readouterr()
    assert said.format(name=name, again=shlex.join(["auditor", *argv])) in getattr(out, stream)
    assert not (tmp_path / "reports" / "resnet18_cifar10").exists()  # no page for a stopped ablation


def test_runs_that_fail_their_own_criteria_are_named_and_the_ablation_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditor import ablate

    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=2)
    hashes, started = {r.name: r.spec_hash for r in plan.runs}, []

    class Run:  # `auditor run` that finished with a sheet saying FAIL: exit 1
        def __init__(self, cmd: list[str], **kwargs: object) -> None:
            name = next(a.split("=", 1)[1] for a in cmd if a.startswith("name="))
            started.append(name)
            (tmp_path / "reports" / name).mkdir(parents=True, exist_ok=True)
            audit = finished_record(next(r for r in plan.runs if r.name == name), 0.1)  # below the 0.85 test_acc criterion
            assert audit["verdict"] == "FAIL"
            (tmp_path / "reports" / name / "audit.json").write_text(json.dumps(audit))

        def wait(self, timeout: float | None = None) -> int:
            return 1

    states = iter(["new", "finished", "new", "finished"])  # before and after each run
    monkeypatch.setattr(ablate.subprocess, "Popen", Run)
    monkeypatch.setattr(ablate, "run_state", lambda out, r: (next(states), None))
    assert ablate.execute_plan(plan, tmp_path, lambda msg: None) == ablate.Execution()  # all ran: none stopped it
    assert started == list(hashes)

    # Again through the command: the first run failed in an earlier call (skipped now), the second runs.
    shutil.rmtree(tmp_path / "reports" / plan.runs[1].name)
    states = iter(["finished", "new", "finished"])
    monkeypatch.setattr(ablate, "check_runnable", lambda plan, out, replace_stale=False: None)  # its own test; it reads the states too
    assert main(["ablate", "resnet18_cifar10", "--only", "cosine", "--seeds", "2", "--out", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    names = f"{plan.runs[0].name}, {plan.runs[1].name}"
    assert f"note: 2 runs on the page failed (their own criteria, or training diverged; see their sheets): {names}" in said
    assert "ablation page: " in said  # the page is written all the same


def test_a_run_whose_selected_model_is_broken_is_marked_on_the_page(tmp_path: Path) -> None:
    """Its accuracies are withheld (runner._metrics): the page says why its cells are empty."""
    from auditor import ablate

    r = build_plan(str(write(tmp_path / "x.yaml", TINY))).runs[0]
    audit = finished_record(r, 0.5)
    audit["measurements"]["nonfinite"] = ["bn1.running_var"]
    assert ablate._run_row(r, audit, tmp_path / "run", tmp_path)["broken"] is True
    assert ablate._run_row(r, {**audit, "measurements": {"nonfinite": []}}, tmp_path / "run", tmp_path)["broken"] is False


def _consistent_copies(a: dict[str, Any], spec: Any) -> None:
    """What a run records from its spec and epochs, made so in the golden record `a` given another
    spec, history and sizes (`check.edited_metrics` compares them): the seed and determinism asked
    for, the class counts of each split's size, the steps per epoch of its training images, the training time summed over its epochs."""
    a["determinism"] |= {"seed": spec.seed, "requested": spec.determinism.enabled}
    counts = a["data"]["class_counts"]
    for split, n in a["data"]["sizes"].items():  # sizes `data` gave: all of the first class
        counts[split] = counts[split] if sum(counts[split]) == n else [n, *[0] * (len(counts[split]) - 1)]
    tr, spe = a["training"], -(-a["data"]["sizes"]["train"] // spec.train.batch_size)
    tr["history"] = [{**h, "steps": min(h["steps"], spe)} if "steps" in h else h for h in tr["history"]]
    total = 0.0
    for h in tr["history"]:
        total += h["epoch_s"]
    images = sum(h["images_per_s"] * h["epoch_s"] for h in tr["history"])
    tr |= {"steps_per_epoch": spe, "train_time_s": total, "images_per_s": images / total if total else 0.0}


def finished_record(
    run: Any, best: float, status: str = "completed", test_loss: float | None = 1.0,
    history: list[dict[str, Any]] | None = None, data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete audit.json of a planned run (`PlannedRun`), which `check` accepts: the golden
    record under the run's resolved spec, name and folders; `history` (by default one epoch of val
    acc `best`) of at most the spec's epochs, with its first epoch of highest val acc selected (on
    the test split where the spec has no validation split); a test evaluation of accuracy about
    `best` (`test_loss` None: not a number), all of its images of the first class; `data` merged
    into the data section; metrics copied from these figures, as a run copies them, and the spec's
    criteria judged on them. What the page does not read (the model, timings, checkpoint files, the
    data's provenance unless `data` gives it) stays the golden record's."""
    from auditor.audit import metric_sources, nan_test_loss_note, record_problem
    from auditor.check import edited_metrics, evaluate_criteria, record_gate_status, verdict
    from auditor.spec import resolved_dict

    a = json.loads((REPO / "tests/fixtures/audit_golden.json").read_text())
    a["spec"], a["spec_hash"], a["run"]["name"] = resolved_dict(run.spec), run.spec_hash, run.name
    a["run"] |= {"report_dir": f"reports/{run.name}", "checkpoint_dir": f"checkpoints/{run.name}"}
    for section in ("run", "training", "metrics"):
        a[section]["status"] = status
    history = [{**a["training"]["history"][-1], **h} for h in history or [{"val_acc": best, "train_acc": 0.5}]]
    history = [{**h, "epoch": i, "val_loss": h.get("val_loss", 1.0)} for i, h in enumerate(history, 1)]
    assert len(history) <= run.spec.train.epochs, "a run trains the spec's epochs at the most"
    selectable = [h for h in history if h["val_loss"] is not None]
    chosen = max(selectable, key=lambda h: h["val_acc"]) if selectable else None  # the first of the highest
    selection_split = "val" if run.spec.data.val_split else "test"
    a["training"] |= {"history": history, "epochs_run": len(history), "epochs_planned": run.spec.train.epochs,
                      "selection_split": selection_split,
                      "best_epoch": chosen and chosen["epoch"],
                      "best_metric": chosen and chosen["val_acc"], "diverged_at_step": 7 if status == "diverged" else None}
    a["data"] |= data or {}
    _consistent_copies(a, run.spec)
    classes, n = a["data"]["classes"], a["data"]["sizes"]["test"]
    a["data"]["class_counts"]["test"] = [n, *[0] * (len(classes) - 1)]
    right = round(best * n)
    a["measurements"]["test"] |= {
        "n": n, "acc": right / n, "loss": test_loss, "per_class": {c: right / n if i == 0 else None for i, c in enumerate(classes)},
        "confusion": [[right, n - right, *[0] * (len(classes) - 2)], *([0] * len(classes) for _ in classes[1:])]}
    sources = metric_sources(a)
    a["metrics"] |= {m: source.value for m, source in sources.items() if m in a["metrics"]}
    a["metric_notes"] |= {m: "withheld by the run" for m, source in sources.items()
                          if m in a["metrics"] and source.value is None and source.measured is not None}
    if selection_split != "val":
        a["metric_notes"] |= dict.fromkeys(("best_val_acc", "final_val_acc"), "the spec has no validation split")
    if test_loss is None:
        a["metric_notes"]["test_acc"] = nan_test_loss_note("best.pt", right / n)
    criteria = evaluate_criteria(run.spec.parsed_criteria(), a["metrics"], a["metric_notes"], run.spec.verify.allow_tolerance)
    a["criteria"] = [asdict(c) for c in criteria]
    a["verdict"] = verdict(criteria, record_gate_status(a))
    assert record_problem(a) is None and not edited_metrics(a), (record_problem(a), edited_metrics(a))
    return a


def _fake_finished(out: Path, run: object, status: str, best: float, test_loss: float | None = 1.0) -> None:
    """A finished run's report: its `finished_record` (one epoch, selected on val) and a sheet."""
    (out / "reports" / run.name).mkdir(parents=True)
    (out / "reports" / run.name / "audit.json").write_text(json.dumps(finished_record(run, best, status, test_loss)))
    (out / "reports" / run.name / "REPRODUCIBILITY.md").write_text("sheet")


def _first_run_finished(ablation: Path, out: Path, only: list[str] | None = None) -> str:
    """One finished (faked) run of the ablation file's plan under `out`, for a `--render-only`, which
    refuses an --out holding no run of it; returns its name."""
    run = build_plan(str(ablation), only=only).runs[0]
    _fake_finished(out, run, "completed", 0.5)
    return run.name


def test_diverged_and_non_finite_runs_stay_out_of_the_means_and_the_page_says_so(tmp_path: Path) -> None:
    from auditor import ablate

    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=3)
    ok, diverged, nan_out = plan.runs
    _fake_finished(tmp_path, ok, "completed", 0.50)
    _fake_finished(tmp_path, diverged, "diverged", 0.90)  # its best epoch came before the divergence
    _fake_finished(tmp_path, nan_out, "completed", 0.80, test_loss=None)  # NaN test loss: outputs not numbers
    page, record = ablate.write_outputs(tmp_path, plan)
    [v] = record["variants"]
    assert v["n"] == 1 and v["seeds"] == [ok.seed] and v["stats"]["best_val_acc"]["mean"] == 0.50
    assert [r["name"] for r in v["left_out"]] == [diverged.name, nan_out.name]
    text = page.read_text()
    assert "| cosine | 1 (+2 left out [^left]) | 50.00 % |" in text
    section = text.split("### Runs left out of the means")[1].split("##")[0]
    assert f"- cosine, seed {diverged.seed}: [{diverged.name}](" in section and "training diverged (at step 7)" in section
    assert "its selected model's losses are not numbers (its test loss)" in section
    assert "(left out of the means)" in text  # the Runs table marks the one whose status does not say it
    notes = " ".join(ablate.page_notes(record))
    assert f"2 runs left out of the means (listed on the page): {diverged.name} (training diverged" in notes
    assert ablate.counted_runs(record) == 3  # --render-only's guard counts every finished run
    assert ablate.left_out_reason({"run": {"status": "completed"}, "training": None}) is None  # too damaged to tell
    unselected = {"run": {"status": "completed"}, "measurements": {"nonfinite": [], "test": None},
                  "training": {"history": [{"epoch": 1, "val_loss": None}], "best_epoch": None, "selection_split": "val"}}
    assert ablate.left_out_reason(unselected) == (
        "no epoch was selected: the val loss of every completed epoch (1 epoch) was not a number (the model computed "
        "inf or NaN), so no best checkpoint was written")  # fmt: skip
    unselected["measurements"]["nonfinite"] = ["fc.weight"]  # the last weights, measured: no selected model's
    assert ablate.left_out_reason(unselected).startswith("no epoch was selected: ")
    damaged = {"run": {"status": "completed"}, "measurements": {"nonfinite": ["fc.weight"]}, "training": ["x"]}
    assert ablate.left_out_reason(damaged) == "its selected model holds inf or NaN (broken)"  # the review: kept in


def _pages_of_n_then_one_seed(out: Path, n: int = 3) -> tuple[Any, Any, dict, dict]:
    """The cosine variant's page over `n` finished (faked) seeds, then replaced by a page of one:
    (plan of n, plan of one, the earlier page's record, the new page's record)."""
    from auditor import ablate

    many = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=n)
    for r in many.runs:
        _fake_finished(out, r, "completed", 0.5)
    ablate.write_outputs(out, many)
    one = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=1)
    earlier = ablate.page_record(out, one)
    return many, one, earlier, ablate.write_outputs(out, one)[1]


def test_a_page_that_counts_fewer_of_the_same_runs_names_them_and_how_to_rebuild_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: a `--render-only --set` that matched 2 of 8 runs replaced the page with one counting
    2, the other 6 "stale", with no word of the page it replaced, where fewer --seeds get one."""
    from auditor import ablate

    monkeypatch.chdir(tmp_path)
    three, _, earlier, _ = _pages_of_n_then_one_seed(tmp_path)
    [v] = earlier["variants"]
    fewer = {**earlier, "variants": [{**v, "runs": v["runs"][:1]}]}  # as of a --set only seed 0's run matches
    others = ", ".join(r.name for r in three.runs[1:])
    made = {**earlier, "ablation": {**earlier["ablation"], "cli_overrides": ["train.epochs=2"]}}  # as its runs were made
    assert ablate.replaced_page_note(made, fewer, three, tmp_path) == (
        f"note: this page covers seeds [0, 1, 2]; the page it replaced (seeds [0, 1, 2], --set train.epochs=2) also listed "
        f"2 finished runs this page does not count ({others}: of the spec the --set above gave them), which this "
        f"command left untouched; `auditor ablate {ablate.display_path(three.path)} --set train.epochs=2 --only cosine "
        "--render-only` rebuilds that page")  # fmt: skip
    # The same --set: runs not counted since the file changed, which that command would not rebuild (a review).
    assert ablate.replaced_page_note(earlier, fewer, three, tmp_path) is None


def test_a_page_of_fewer_seeds_names_the_runs_it_no_longer_lists_and_how_to_rebuild_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor import ablate

    monkeypatch.chdir(tmp_path)  # `--out .`, the default, goes unsaid
    three, one, earlier, record = _pages_of_n_then_one_seed(tmp_path)
    assert ablate.counted_runs(record) == 1
    file = ablate.display_path(one.path)
    dropped = ", ".join(r.name for r in three.runs[1:])
    assert ablate.replaced_page_note(earlier, record, one, tmp_path) == (
        f"note: this page covers seeds [0]; the page it replaced (seeds [0, 1, 2]) also listed 2 finished runs of other "
        f"seeds ({dropped}), which this command left untouched; `auditor ablate {file} --only cosine --render-only` "
        "rebuilds that page")  # fmt: skip
    # A page of more seeds, or of the same ones, drops nothing; neither does a first page, nor one of runs not finished.
    assert ablate.replaced_page_note(record, earlier, three, tmp_path) is None
    assert ablate.replaced_page_note(earlier, earlier, three, tmp_path) is None
    assert ablate.replaced_page_note(None, record, one, tmp_path) is None
    assert ablate.replaced_page_note({"ablation": "edited", "variants": 3}, record, one, tmp_path) is None
    [v] = earlier["variants"]
    unfinished = {**earlier, "variants": [{**v, "runs": v["runs"][:1], "missing": v["runs"][1:]}]}
    assert ablate.replaced_page_note(unfinished, record, one, tmp_path) is None
    # Made with --set and two seeds: the command gives both; seeds the file cannot give again get no command.
    two = [{**v, "runs": v["runs"][:2]}]
    made = {**earlier, "variants": two,
            "ablation": {**earlier["ablation"], "seeds": [0, 1], "cli_overrides": ["train.epochs=2"]}}  # fmt: skip
    assert ablate.replaced_page_note(made, record, one, tmp_path).endswith(
        f"(seeds [0, 1], --set train.epochs=2) also listed 1 finished run of other seeds ({three.runs[1].name}), which "
        f"this command left untouched; `auditor ablate {file} --set train.epochs=2 --seeds 2 --only cosine "
        "--render-only` rebuilds that page")  # fmt: skip
    odd = {**earlier, "variants": [{**v, "runs": v["runs"][::2]}], "ablation": {**earlier["ablation"], "seeds": [0, 2]}}
    assert ablate.replaced_page_note(odd, record, one, tmp_path).endswith(
        f"({three.runs[2].name}), which this command left untouched; no `--render-only` of the file as it is now "
        "rebuilds that page (its seeds [0, 2] are not what the file's seeds [0, 1, 2] give)")  # fmt: skip
    # A run this page does not count (of another --set), still there as the earlier page listed it: that
    # page can be rebuilt all the same (a user test: it was said to be gone).
    again = {**record, "variants": [{**record["variants"][0], "runs": [{**record["variants"][0]["runs"][0], "spec_hash": "x"}]}]}
    assert ablate.replaced_page_note(earlier, again, one, tmp_path).endswith("--render-only` rebuilds that page")
    # A run both pages cover, edited since (its test_acc no longer what its confusion matrix gives): a
    # rebuilt page would not count it, so that page cannot be rebuilt (it was offered a command).
    on_disk = tmp_path / "reports" / three.runs[0].name / "audit.json"
    kept = json.loads(on_disk.read_text())
    on_disk.write_text(json.dumps({**kept, "metrics": {**kept["metrics"], "test_acc": 0.99}}))
    assert check_refusal(json.loads(on_disk.read_text())) is not None
    assert ablate.replaced_page_note(earlier, record, one, tmp_path).endswith(
        f"which this command left untouched; that page cannot be rebuilt as it was: `auditor check` now refuses the "
        f"audit.json of 1 run it listed ({three.runs[0].name})")  # fmt: skip
    dropped = tmp_path / "reports" / three.runs[1].name / "audit.json"  # one of those it dropped, edited alike
    other = json.loads(dropped.read_text())
    dropped.write_text(json.dumps({**other, "metrics": {**other["metrics"], "test_acc": 0.99}}))
    assert ablate.replaced_page_note(earlier, record, one, tmp_path).endswith(
        f"refuses the audit.json of 2 runs it listed ({three.runs[0].name}, {three.runs[1].name})")
    dropped.write_text(json.dumps(other))
    # A run both pages cover made again under another spec: the earlier page is gone for good.
    on_disk.write_text(json.dumps({**kept, "spec_hash": "x"}))
    assert ablate.replaced_page_note(earlier, record, one, tmp_path).endswith(
        f"which this command left untouched; that page cannot be rebuilt as it was: 1 run it listed ({three.runs[0].name}) "
        "is no longer there under the spec it listed")  # fmt: skip


def test_a_page_dropping_many_runs_names_ten(tmp_path: Path) -> None:
    from auditor import ablate

    twelve, one, earlier, record = _pages_of_n_then_one_seed(tmp_path, 12)
    note = ablate.replaced_page_note(earlier, record, one, tmp_path)
    names = sorted(r.name for r in twelve.runs[1:])
    assert f"also listed 11 finished runs of other seeds ({', '.join(names[:10])} and 1 more)" in note


def test_an_ablation_page_folder_given_for_a_run_s_names_the_command_that_rebuilds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor import ablate
    from auditor.audit import read_audit
    from auditor.errors import InvalidInput

    _, one, _, _ = _pages_of_n_then_one_seed(tmp_path)
    page = tmp_path / "reports" / one.ablation.name
    monkeypatch.chdir(tmp_path)
    command = f"auditor ablate {ablate.display_path(one.path)} --seeds 1 --only cosine"
    for given, out in ((page.relative_to(tmp_path), ""), (Path("reports") / ".." / page.relative_to(tmp_path), "")):
        with pytest.raises(InvalidInput, match=re.escape(f"or rebuild the page with `{command}{out} --render-only`")):
            read_audit(given)
    monkeypatch.chdir(page)  # `auditor check .` in the page folder
    with pytest.raises(InvalidInput, match=re.escape(f"`{command} --out {tmp_path} --render-only`")):
        read_audit(Path("."))
    placeholder = re.escape("`auditor ablate FILE --render-only --out DIR`")
    shutil.copytree(page, tmp_path / "reports" / "renamed")  # --render-only would write reports/<its name>
    shutil.copytree(page, tmp_path / "elsewhere" / "reports" / one.ablation.name)  # its runs not beside it
    for moved in (tmp_path / "reports" / "renamed", tmp_path / "elsewhere" / "reports" / one.ablation.name):
        with pytest.raises(InvalidInput, match=placeholder):
            read_audit(moved)


def test_seeds_of_one_variant_that_read_different_data_are_named(tmp_path: Path) -> None:
    from auditor import ablate

    plan = build_plan("resnet18_cifar10", only=["cosine"], n_seeds=3)
    for i, r in enumerate(plan.runs):
        fingerprints = {"fingerprint": ("a" if i < 2 else "b") * 64, "scored_test_fingerprint": "c" * 64}
        (tmp_path / "reports" / r.name).mkdir(parents=True)
        (tmp_path / "reports" / r.name / "audit.json").write_text(json.dumps(finished_record(r, 0.5, data=fingerprints)))
    page, record = ablate.write_outputs(tmp_path, plan)
    a, b = plan.runs[:2], plan.runs[2]
    assert record["variants"][0]["mixed_data"] == {
        f"data {'a' * 12}, scored test images {'c' * 12}": [a[0].name, a[1].name],
        f"data {'b' * 12}, scored test images {'c' * 12}": [b.name]}  # fmt: skip
    section = page.read_text().split("### Seeds of one variant that read different data")[1].split("###")[0]
    assert f"- cosine, data {'b' * 12}, scored test images {'c' * 12}: `{b.name}`" in section
    assert any("the seeds of cosine read different data" in n for n in ablate.page_notes(record))
    same = {"data": "d" * 12}
    assert ablate.mixed_data([{"name": "x", "data_id": same}, {"name": "y", "data_id": same}]) == {}
    # Only what both recorded is compared: an older record without the scored fingerprint, or none at all.
    newer = {"data": "d" * 12, "scored test images": "e" * 12}
    assert ablate.mixed_data([{"name": "x", "data_id": same}, {"name": "y", "data_id": newer},
                              {"name": "z", "data_id": None}]) == {}  # fmt: skip


def test_check_runnable_names_each_variant_and_skips_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor import ablate

    f = write(tmp_path / "x.yaml", TINY.replace("cosine: []", "cosine: [train.device=cuda]"))
    plan = build_plan(str(f))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as here, and as in CI
    with pytest.raises(InvalidInput, match=r"variant 'cosine': train.device: .*CUDA") as exc:
        ablate.check_runnable(plan, tmp_path)
    assert "variant 'constant'" not in str(exc.value) and str(exc.value).endswith("where they can run")
    states = {r.name: "finished" if r.variant == "cosine" else "new" for r in plan.runs}
    monkeypatch.setattr(ablate, "run_state", lambda out, r: (states[r.name], None))
    ablate.check_runnable(plan, tmp_path)  # cosine's runs are finished: nothing left to run on CUDA


def test_data_a_variant_lacks_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`auditor run` finds a missing data.root only when that variant's turn comes, naming the base spec."""
    nowhere = tmp_path / "nowhere"
    f = write(tmp_path / "x.yaml", TINY.replace("constant: [train.schedule.name=constant]",
                                                f"constant: [data.dataset=cifar10, 'data.root={nowhere}']"))  # fmt: skip
    out = tmp_path / "out"
    for extra in ([], ["--dry-run"]):
        assert main(["ablate", str(f), "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{f}: variant 'constant': data.root: {nowhere} does not exist; set data.root" in err, err
        assert "variant 'cosine'" not in err
        assert "nothing was run; leave the variants whose own overrides cause it out with --only" in err
    assert not out.exists()  # not even the variant that could run


def test_a_problem_every_variant_meets_is_said_once_with_the_set_that_mends_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipped ablation run from a folder without ./data: one line, not one per variant, and the
    advice is a --set (which every variant takes), not --only (which would leave nothing to run)."""
    nowhere = tmp_path / "nowhere"
    f = write(tmp_path / "x.yaml", TINY.replace("  - train.epochs=1\n", "  - train.epochs=1\n  - data.dataset=cifar10\n"
                                                f"  - 'data.root={nowhere}'\n"))  # fmt: skip
    f.write_text(f.read_text().replace("cosine: []", "cosine: [train.device=cuda]"))
    out = tmp_path / "out"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # cosine alone also lacks CUDA
    assert main(["ablate", str(f), "--out", str(out), "--dry-run"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (f"auditor ablate: error: {f}: every variant to run: data.root: {nowhere} does not exist; set "
                        "data.root to the folder that holds cifar-10-batches-py/, or set data.download: true")
    assert lines[1].startswith(f"{f}: variant 'cosine': train.device: ") and "CUDA" in lines[1]
    assert lines[2] == ("nothing was run; what every variant is given is mended in the base spec, the file's overrides "
                        "or a --set, which every variant takes (e.g. --set data.root=DIR for your copy of CIFAR-10; a "
                        "--set that changes what is trained makes finished runs run again); leave the variants whose "
                        "own overrides cause it out with --only, or run the ablation where they can run")
    assert len(lines) == 3 and not out.exists()
    capsys.readouterr()
    assert main(["ablate", str(f), "--out", str(out), "--dry-run", "--only", "constant"]) == 2  # one variant to run
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"auditor ablate: error: {f}: variant 'constant': data.root: {nowhere} does not exist")
    assert len(lines) == 2 and "a --set, which every variant takes" in lines[1] and "--only" not in lines[1]


def _interrupted(out: Path, run_name: str, spec: Any, ablation_run: dict[str, Any] | None = None) -> Path:
    """An interrupted run's staging folder with one intact checkpoint of `spec` (of `ablation_run`)."""
    from auditor import checkpoint
    from auditor.spec import resolved_dict, spec_hash

    staging = run_paths(out, run_name).ckpt_staging
    staging.mkdir(parents=True)
    checkpoint.save(staging / "step-00000002.pt", {"model": {}, "spec": resolved_dict(spec), "spec_hash": spec_hash(spec),
                                                    "global_step": 2, "ablation_run": ablation_run})  # fmt: skip
    return staging


def test_an_interrupted_run_another_ablation_started_is_not_continued_as_this_ones(tmp_path: Path) -> None:
    """The review: with the other ablation's page not written yet, its interrupted run, of a name this
    ablation's run shares and of the same training, was continued by this one as its own."""
    from auditor import ablate

    plan = build_plan(str(write(tmp_path / "x.yaml", TINY)))
    run, out = plan.runs_of("constant")[0], tmp_path / "out"
    staging = _interrupted(out, run.name, run.spec, {"ablation": "tiny-constant", "variant": "x", "seed": 0})
    assert ablate.other_spec_interrupted(out, run) == (
        f"{staging}: an interrupted run of seed 0 of variant 'x' of ablation 'tiny-constant', as its checkpoints record, "
        "which this ablation's run of that name would continue as its own (names join ablation, variant and seed with "
        "a dash)")  # fmt: skip
    shutil.rmtree(staging)
    _interrupted(out, run.name, run.spec, {"ablation": "tiny", "variant": "constant", "seed": 0})  # its own
    assert ablate.other_spec_interrupted(out, run) is None


def test_an_interrupted_run_is_judged_by_the_best_pt_it_would_resume_from(tmp_path: Path) -> None:
    """`auditor run --resume` continues from an intact best.pt further on than the newest other
    candidate that verifies (`checkpoint.resume_point`): best.pt's spec is checked."""
    from auditor import ablate, checkpoint
    from auditor.spec import resolved_dict, spec_hash

    f = write(tmp_path / "x.yaml", TINY)
    out = tmp_path / "out"
    run = build_plan(str(f)).runs_of("constant")[1]
    started = build_plan(str(f), ["train.optimizer.lr=0.04"]).runs_of("constant")[1]
    staging = _interrupted(out, run.name, run.spec)  # step-00000002.pt: this spec
    checkpoint.save(staging / "best.pt", {"model": {}, "spec": resolved_dict(started.spec),
                                          "spec_hash": spec_hash(started.spec), "global_step": 8})  # fmt: skip
    said = "(changed in its training settings: train.optimizer.lr: 0.04 -> 0.05)"
    assert str(ablate.other_spec_interrupted(out, run)).endswith(said)  # stopped between best.pt and last.pt
    checkpoint.save(staging / "last.pt", {"global_step": 8})
    (staging / "last.pt").write_bytes(b"damaged")
    assert str(ablate.other_spec_interrupted(out, run)).endswith(said)  # last.pt failed its digest
    assert ablate.other_spec_interrupted(out, started) is None
    (staging / "best.pt").unlink()
    assert ablate.other_spec_interrupted(out, run) is None  # step-00000002.pt: this spec


def test_an_interrupted_run_of_another_spec_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`auditor run --resume` refuses a checkpoint whose training differs; ablate would plan a resume
    and stop there, at every try."""
    from auditor import ablate

    f = write(tmp_path / "x.yaml", TINY)
    out = tmp_path / "out"
    plan = build_plan(str(f))
    run = plan.runs_of("constant")[1]
    _interrupted(out, run.name, plan.runs_of("constant")[0].spec.model_copy(update={"name": run.name}))
    assert str(ablate.other_spec_interrupted(out, run)).endswith("(changed in its training settings: seed: 0 -> 1)")
    staging = run_paths(out, run.name).ckpt_staging
    shutil.rmtree(staging)
    # the same run, started with another lr: what is trained differs
    started = build_plan(str(f), ["train.optimizer.lr=0.04"]).runs_of("constant")[1]
    _interrupted(out, run.name, started.spec)
    said = ablate.other_spec_interrupted(out, run)
    assert said == (f"{staging}: an interrupted run of this name trained under another spec, which --resume cannot "
                    "continue under this one (changed in its training settings: train.optimizer.lr: 0.04 -> 0.05)")  # fmt: skip
    assert ablate.other_spec_interrupted(out, started) is None  # continued with the --set it was started with
    before = sorted(p.name for p in staging.iterdir())
    for extra in ([], ["--dry-run"]):
        assert main(["ablate", str(f), "--out", str(out), *extra]) == 2
        printed, err = capsys.readouterr()
        assert f"{f}: variant 'constant' seed 1: {said}" in err and "Traceback" not in err
        assert "remove such a folder to start that run afresh (its training so far is lost), or continue it" in err
        if extra:
            assert "tiny-constant-s1  variant constant  seed 1  [refused: interrupted under another spec (see " in printed
    assert sorted(p.name for p in staging.iterdir()) == before and not (out / "reports").exists()


def test_the_log_says_a_finished_run_of_another_spec_is_replaced() -> None:
    from auditor import ablate

    assert ablate.STATE_WORDS["stale"].startswith("run, replacing the finished run of a different spec there")
    assert ablate.STATE_WORDS["new"] == "run" and ablate.STATE_WORDS["resume"] == "resume"


def test_a_one_epoch_variant_shows_its_seeds_spread_and_the_depth_legend_gives_n(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ablation audit: one epoch drew a dot with no min-max (fill_between of one point draws
    nothing), and the depth figure did not say over how many seeds it averaged."""
    from matplotlib.container import ErrorbarContainer

    from auditor import ablate, render

    drawn: dict[str, Any] = {}
    monkeypatch.setattr(render, "write_png", lambda fig, path: drawn.setdefault(path.name, fig))
    plan = build_plan("plain_vs_resnet", only=["resnet20"], n_seeds=3)
    for r, best in zip(plan.runs, (0.40, 0.50, 0.70), strict=True):
        _fake_finished(tmp_path, r, "completed", best)
    page = ablate.write_outputs(tmp_path, plan)[0].read_text()
    [ax] = drawn["val_acc.png"].axes
    [bar] = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    [segment] = bar.lines[2][0].get_segments()
    assert segment[:, 1].tolist() == pytest.approx([40.0, 70.0])  # min-max of the three seeds, in %
    labels = [t.get_text() for a in drawn["depth.png"].axes for t in a.get_legend().get_texts()]
    assert labels == ["resnet20 (n=3)"]
    assert "an error bar where the runs of a variant have one epoch in common" in page and "Mean over seeds (n in the legend)." in page


def test_a_record_check_refuses_for_the_sheet_is_not_counted() -> None:
    """The review: `check` came to refuse a record the sheet cannot be rendered from (a field deleted,
    one of another kind the renderer fails on), while the ablation page still counted it."""

    record = json.loads((REPO / "tests/fixtures/audit_golden.json").read_text())
    assert check_refusal(record) is None
    missing = copy.deepcopy(record)
    del missing["measurements"]["latency"]["min_ms"]
    assert check_refusal(missing).startswith("incomplete audit record: it has no field 'min_ms'")
    epoch = copy.deepcopy(record)
    epoch["training"]["history"][0]["epoch"] = []  # the figures' x axis: refused where check and render read it
    assert "training.history[0].epoch" in check_refusal(epoch)


def test_the_readme_s_ablation_file_plans(tmp_path: Path) -> None:
    """The README's example ablation file is one the tool takes, as written."""
    readme = (REPO / "README.md").read_text()
    example = readme.split("run once per seed:\n\n```yaml\n", 1)[1].split("```", 1)[0]
    plan = build_plan(str(write(tmp_path / "lr.yaml", example)))
    assert [r.name for r in plan.runs][:3] == ["lr-study-default-s0", "lr-study-default-s1", "lr-study-default-s2"]
    assert {r.variant: r.spec.train.optimizer.lr for r in plan.runs} == {"default": 0.05, "low": 0.01, "high": 0.2}
    assert {r.spec.train.epochs for r in plan.runs} == {2}


def test_display_path_is_absolute_from_the_root_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user test: `cd /; auditor ablate /tmp/.../lr.yaml` gave the page `tmp/.../lr.yaml`."""
    from auditor.ablate import display_path

    f = write(tmp_path / "abl.yaml", TINY)
    monkeypatch.chdir(tmp_path)
    assert display_path(f) == "abl.yaml"
    monkeypatch.chdir("/")
    assert display_path(f) == str(f.resolve())
