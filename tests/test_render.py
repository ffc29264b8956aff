"""Tests for the render stage: the reproducibility sheet built from audit.json alone.

The golden test compares `render_text(fixtures/audit_golden.json)` with
`fixtures/REPRODUCIBILITY.golden.md` character for character. After a
deliberate change to the template or the formatting helpers, regenerate the
golden file and review its diff before committing it:

    AUDITOR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_render.py -k golden

`audit_golden.json` is a fixture derived from a real smoke run with the
volatile fields (dates, paths, git commit, host names) fixed; edit it freely,
but keep `spec_hash` equal to the hash of its `spec` (see `rehash`). Variants
(diverged, selection on test, legacy std, verification, ...) are made from it
in code below. The figures are not part of the golden comparison.
"""

from __future__ import annotations

import ast
import builtins
import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from conftest import field_paths

import auditor
from auditor import render
from auditor.audit import fields_problem, no_selection_note
from auditor.errors import InvalidInput
from auditor.fileio import with_mark
from auditor.render import agg_figure, code_fence, epoch_axis, render_run, render_text
from auditor.spec import (
    CIFAR10_STD_LEGACY,
    Schedule,
    hash_resolved,
    resolved_dict,
    resolved_yaml,
    resource_dir,
    spec_hash,
    validate_spec,
)
from auditor.train import lr_factor

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN_AUDIT = FIXTURES / "audit_golden.json"
GOLDEN_SHEET = FIXTURES / "REPRODUCIBILITY.golden.md"
FIGURES = {"learning_curves": "figures/learning_curves.png"}
NO_FIGURES: dict[str, str | None] = {"learning_curves": None}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


def golden_audit() -> dict[str, Any]:
    return json.loads(GOLDEN_AUDIT.read_text())


def rehash(audit: dict[str, Any]) -> dict[str, Any]:
    """Keep spec_hash consistent after editing audit['spec'] (as a real run would be): the spec
    resolved again, with every default filled in, and its hash (hashing the resolved spec of a
    record that lacks a newer default would not match the spec stored)."""
    spec = validate_spec(audit["spec"], "fixture")
    audit["spec"], audit["spec_hash"] = resolved_dict(spec), spec_hash(spec)
    return audit


def text_of(audit: dict[str, Any], figures: dict[str, str | None] = FIGURES) -> str:
    return render_text(audit, figures)


def front_matter(text: str) -> dict[str, Any]:
    assert text.startswith("---\n")
    block = text.split("\n---\n", 1)[0].removeprefix("---\n")
    return yaml.safe_load(block)


def section(text: str, heading: str) -> str:
    """The body of one `## heading` section."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def checklist_line(text: str, label: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("- [") and f"**{label}**" in ln]
    return line


def write_run_dir(tmp_path: Path, audit: dict[str, Any]) -> Path:
    run_dir = tmp_path / "reports" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / "audit.json").write_text(json.dumps(audit, indent=2))
    (run_dir / "spec.resolved.yaml").write_text(resolved_yaml(audit["spec"]))  # as a run writes beside it
    return run_dir


def test_a_record_replaced_while_its_sheet_renders_gets_no_stale_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: `auditor render` racing a run of the same name that finished meanwhile wrote
    the old record's sheet beside the new record, and exited 0."""
    from auditor.cli import main

    run_dir = write_run_dir(tmp_path, golden_audit())
    assert main(["render", str(run_dir)]) == 0
    sheet = (run_dir / "REPRODUCIBILITY.md").read_bytes()
    newer = golden_audit()
    newer["determinism"]["seed"] = newer["spec"]["seed"] = 9
    real = render.draw_figures

    def a_run_finishes_meanwhile(*a: Any, **k: Any) -> Any:
        (run_dir / "audit.json").write_text(json.dumps(rehash(newer), indent=2))
        return real(*a, **k)

    monkeypatch.setattr(render, "draw_figures", a_run_finishes_meanwhile)
    assert main(["render", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"{run_dir / 'audit.json'}: replaced while its sheet was rendered (a run of this name finished meanwhile?); "
        "nothing was written: run `auditor render` again")
    assert (run_dir / "REPRODUCIBILITY.md").read_bytes() == sheet
    monkeypatch.undo()
    assert main(["render", str(run_dir)]) == 0 and (run_dir / "REPRODUCIBILITY.md").read_bytes() != sheet


# --- variants ----------------------------------------------------------------------------


def diverged_audit() -> dict[str, Any]:
    """Loss went non-finite in epoch 1: no epoch record, no checkpoint, no test accuracy."""
    a = golden_audit()
    a["run"]["status"] = "diverged"
    tr = a["training"]
    tr.update(status="diverged", epochs_run=0, history=[], best_epoch=None, best_metric=None,
              diverged_at_step=7, train_time_s=0.0, images_per_s=0.0, steps_per_epoch=None)  # fmt: skip
    m = a["measurements"]
    m.update(evaluated_checkpoint=None, test=None)
    m["size"]["checkpoint_bytes"] = None
    a["checkpoints"] = {}
    a["metrics"].update(test_acc=None, best_val_acc=None, final_val_acc=None, final_train_acc=None,
                        checkpoint_mb=None, status="diverged", train_time_s=0.0, images_per_s=0.0)  # fmt: skip
    for c in a["criteria"]:
        if c["metric"] == "status":
            c.update(measured="diverged", passed=False, detail="diverged != completed")
        elif c["metric"] in ("best_val_acc", "checkpoint_mb"):
            c.update(measured=None, passed=False, detail="not measured: no value recorded")
    a["verdict"] = "FAIL"
    return a


def selection_on_test_audit() -> dict[str, Any]:
    a = golden_audit()
    a["spec"]["data"]["val_split"] = 0
    a["data"]["sizes"].update(train=1500, val=0)
    counts = a["data"]["class_counts"]  # the val images trained on instead, as a run counts them
    counts.update(train=[t + v for t, v in zip(counts["train"], counts["val"])], val=[0] * len(counts["val"]))
    a["training"].update(selection_split="test", steps_per_epoch=24)  # 1,500 images in batches of 64
    a["metrics"].update(best_val_acc=None, final_val_acc=None)
    # A run without a val split would fail a best_val_acc criterion: this one has none.
    del a["spec"]["criteria"]["best_val_acc"]
    a["criteria"] = [c for c in a["criteria"] if c["metric"] != "best_val_acc"]
    return rehash(a)


def cifar_audit(std: list[float], official: bool = True) -> dict[str, Any]:
    a = golden_audit()
    a["spec"]["data"].update(dataset="cifar10", std=std, mean=[0.4914, 0.4822, 0.4465])
    files = {f"data_batch_{i}": "ok" for i in range(1, 6)} | {"test_batch": "ok", "batches.meta": "ok"}
    note = "all files match the official CIFAR-10 MD5s"
    if not official:
        files["data_batch_3"] = "md5 mismatch"
        note = "NOT the official CIFAR-10: data_batch_3 md5 mismatch"
    kind = "cifar10-legacy-std" if std == list(CIFAR10_STD_LEGACY) else "cifar10-correct"
    a["data"].update(dataset="cifar10", root="/data/cifar", official=official, files=files, note=note,
                     normalization=kind, classes=["airplane", "automobile", "bird", "cat", "deer",
                                                  "dog", "frog", "horse", "ship", "truck"])  # fmt: skip
    a["metrics"]["official_data"] = official
    return rehash(a)


VERIFICATION = {  # the shape auditor verify records
    "verdict": "bitwise",
    "runs": ["a: reference", "b: twin", "k: killed after step 17 (SIGKILL), resumed from step-00000016.pt"],
    "device": "cpu",
    "budget": {"epochs": 2, "steps": None, "total_steps": 38, "steps_per_epoch": 19, "checkpoint_every_steps": 4,
               "source": "--epochs"},
    "first_divergence": None,
    "pairs": [
        {"pair": "a-b", "equal": True, "max_abs_diff": 0.0, "tensors_compared": 2, "tensors_equal": 2,
         "losses": {"steps_a": 38, "steps_b": 38, "equal": True, "first_divergence": None},
         "metrics": {"equal": True}},
        {"pair": "a-k", "equal": False, "max_abs_diff": 2e-7, "tensors_compared": 2, "tensors_equal": 1,
         "losses": {"steps_a": 38, "steps_b": 38, "equal": False, "first_divergence": 18},
         "metrics": {"equal": False}},
    ],
    "tensors": [
        {"name": "model.fc.weight", "sha256_a": "ab" * 32, "sha256_b": "ab" * 32, "sha256_k": "ab" * 32,
         "max_abs_diff": 0.0, "equal": True},
        {"name": "optimizer.momentum", "sha256_a": "cd" * 32, "sha256_b": "cd" * 32, "sha256_k": "cd" * 32,
         "max_abs_diff": 0.0, "equal": True},
    ],
    "notes": ["both runs used 2 threads"],
}  # fmt: skip


def verified_audit(verdict: str = "bitwise") -> dict[str, Any]:
    a = golden_audit()
    a["verification"] = copy.deepcopy(VERIFICATION)
    a["verification"]["verdict"] = verdict
    if verdict == "diverged":
        a["verification"]["first_divergence"] = {"step": 12, "tensor": "model.fc.weight"}
        a["verification"]["tensors"][0].update(sha256_b="ef" * 32, max_abs_diff=0.003, equal=False)
    return a


# --- golden ---------------------------------------------------------------------------------


def test_golden_sheet() -> None:
    text = text_of(golden_audit())
    if os.environ.get("AUDITOR_UPDATE_GOLDEN") == "1":
        GOLDEN_SHEET.write_text(text, encoding="utf-8")
        pytest.skip("golden file rewritten: review its diff; this run compared nothing")
    assert GOLDEN_SHEET.is_file(), "no golden file: run with AUDITOR_UPDATE_GOLDEN=1 once and review it"
    assert text == GOLDEN_SHEET.read_text(encoding="utf-8")


def test_a_spec_read_by_its_shipped_name_is_said_to_be_the_shipped_file() -> None:
    audit = golden_audit()
    assert "spec_shipped" not in audit["run"] and "| Spec read |" not in text_of(audit)  # a record from before
    audit["run"]["spec_path"], audit["run"]["spec_shipped"] = "smoke", "specs/smoke.yaml"
    version = audit["environment"]["auditor"]
    text = text_of(audit)
    assert (f"| Working directory | `{audit['environment']['cwd']}` |\n| Spec read | no file `smoke` in the working "
            f"directory, so the `specs/smoke.yaml` shipped with auditor {version} was read (another version may ship "
            "other contents under that name; the resolved spec in Hyperparameters is what ran) |\n") in text
    audit["run"]["spec_shipped"] = None  # a file was named
    assert "| Spec read |" not in text_of(audit)


def test_sections_in_order() -> None:
    text = text_of(golden_audit())
    headings = [ln[3:] for ln in text.splitlines() if ln.startswith("## ")]
    assert headings == [
        "Architecture", "Hyperparameters", "Data", "Optimisations in force",
        "Determinism and seeding in force", "Environment", "Results", "Latency and size",
        "Checkpoints", "Reproduce", "Criteria", "Determinism evidence", "Reproducibility checklist",
    ]  # fmt: skip
    title = text.split("\n---\n", 1)[1].lstrip().splitlines()
    assert title[0] == "# Reproducibility sheet: smoke"
    assert title[2].startswith("**Verdict: PASS** · 4/4 criteria passed · status: **completed**")


def test_template_has_no_hand_ticked_box() -> None:
    template = (resource_dir("templates") / render.TEMPLATE).read_text()
    assert "[x]" not in template and "- [ ]" not in template


# --- render_run -----------------------------------------------------------------------------


def test_a_pass_with_no_accuracy_criterion_says_so() -> None:
    """A user test: the He et al. specs gate `status == completed` alone, and a model at chance
    accuracy got a bare "Verdict: PASS"."""
    audit = golden_audit()
    said = "No criterion gates an accuracy: the PASS says the run met its criteria on"
    assert said not in text_of(audit)  # the golden run gates best_val_acc
    audit["criteria"] = [c for c in audit["criteria"] if c["metric"] not in ("best_val_acc",)]
    audit["spec"]["criteria"].pop("best_val_acc")
    audit["spec_hash"] = hash_resolved(audit["spec"])
    assert (f"{said} latency_ms, checkpoint_mb, status, not that the model learned; the accuracies are in Results "
            "below.") in text_of(audit)  # fmt: skip


def test_a_copied_sheet_is_cautioned_by_the_resolved_spec_its_command_names(tmp_path: Path) -> None:
    """A copy of a report on the machine the run wrote it on: its first Reproduce command names the
    run's own spec.resolved.yaml, which the caution then speaks of (a user test: it spoke of the copy's)."""
    audit = golden_audit()
    audit["environment"]["cwd"], audit["run"]["out"] = str(tmp_path), "orig"
    original = tmp_path / "orig" / audit["run"]["report_dir"]
    original.mkdir(parents=True)
    (original / "spec.resolved.yaml").write_text(resolved_yaml(audit["spec"]))
    copied = write_run_dir(tmp_path / "copy", audit)
    (copied / "spec.resolved.yaml").unlink()
    assert "[!CAUTION]" not in section(render_run(copied).read_text(), "Reproduce")
    (original / "spec.resolved.yaml").unlink()
    text = section(render_run(copied).read_text(), "Reproduce")
    assert (f"> [!CAUTION]\n> When this sheet was rendered, `{original / 'spec.resolved.yaml'}`, where the run wrote it, "
            "is missing: the first command below, which retrains from that file, fails.") in text


@pytest.mark.parametrize(("damage", "said", "effect"), [
    ("missing", "is missing", "fails"),
    ("a folder", "is not a file", "fails"),
    ("another spec", "does not hold the spec audit.json records (sha256 ", "would not train this run's spec"),
    ("another description", "does not hold the spec audit.json records (sha256 ",
     "trains as this run did, but judges, measures or describes it otherwise"),
])  # fmt: skip
def test_a_resolved_spec_beside_the_sheet_that_would_train_another_spec_is_cautioned(
    tmp_path: Path, damage: str, said: str, effect: str
) -> None:
    """The first Reproduce command trains spec.resolved.yaml: where that file is missing or holds
    another spec when the sheet is rendered, the sheet says so (not only a warning on stderr)."""
    audit = golden_audit()
    run_dir = write_run_dir(tmp_path, audit)
    assert "[!CAUTION]" not in section(render_run(run_dir).read_text(), "Reproduce")
    resolved = run_dir / "spec.resolved.yaml"
    resolved.unlink()
    if damage == "another spec":
        spec = copy.deepcopy(audit["spec"])
        spec["train"]["optimizer"]["lr"] = 0.5
        resolved.write_text(resolved_yaml(spec))
    elif damage == "another description":
        resolved.write_text(resolved_yaml({**audit["spec"], "description": "edited"}))
    elif damage == "a folder":
        resolved.mkdir()
    text = section(render_run(run_dir).read_text(), "Reproduce")
    assert f"> [!CAUTION]\n> When this sheet was rendered, `spec.resolved.yaml` beside it {said}" in text
    assert f"the first command below, which retrains from that file, {effect}. This run's resolved spec" in text
    if damage == "a folder":
        resolved.rmdir()
    resolved.unlink(missing_ok=True)
    resolved.write_text(resolved_yaml(audit["spec"]))  # put back: the caution goes with the next render
    assert "[!CAUTION]" not in section(render_run(run_dir).read_text(), "Reproduce")


def test_render_run_writes_sheet_and_png_deterministically(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, golden_audit())
    out = render_run(run_dir)
    assert out == run_dir / "REPRODUCIBILITY.md"
    png = run_dir / "figures" / "learning_curves.png"
    assert png.read_bytes().startswith(PNG_MAGIC)
    first_md, first_png = out.read_text(), png.read_bytes()
    assert first_md == with_mark(GOLDEN_SHEET.read_text())  # render_run and render_text agree, with the mark
    assert "(figures/learning_curves.png)" in first_md
    render_run(run_dir)
    assert out.read_text() == first_md
    assert png.read_bytes() == first_png
    assert not [p for p in run_dir.rglob("*.tmp")]  # atomic writes leave no temp files


def test_matplotlib_missing_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r} (test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    run_dir = write_run_dir(tmp_path, golden_audit())
    text = render_run(run_dir).read_text()
    assert not (run_dir / "figures" / "learning_curves.png").exists()
    assert "figures unavailable: matplotlib is not importable" in text
    assert "![Learning curves" not in text


def test_matplotlib_settings_it_refuses_leave_the_figure_out_not_the_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review: `MPLBACKEND=nonsense` failed the import with a ValueError, which the sheet
    blamed on a malformed record (exit 2), and now, imported up front, tracebacked."""
    import builtins

    real_import = builtins.__import__

    def refused(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib.style":
            raise ValueError("Key backend: 'nonsense' is not a valid value for backend (test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refused)
    text = render_run(write_run_dir(tmp_path, golden_audit())).read_text()
    assert "figures unavailable: matplotlib is not importable (ValueError: Key backend: 'nonsense'" in text


@pytest.mark.parametrize("epochs", [[1], [1, 2], list(range(1, 31))])
def test_epoch_axes_tick_whole_epochs_even_for_a_single_epoch(epochs: list[int]) -> None:
    fig = agg_figure((6, 4))
    ax = fig.subplots()
    ax.plot(epochs, [50.0] * len(epochs), marker="o")
    epoch_axis(ax)
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert shown and all(float(t).is_integer() for t in shown), (shown, (lo, hi))
    assert ax.get_xlabel() == "epoch"


def test_missing_or_corrupt_audit_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no audit.json"):
        render_run(tmp_path)
    (tmp_path / "audit.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="unreadable audit record"):
        render_run(tmp_path)
    assert not (tmp_path / "REPRODUCIBILITY.md").exists()


def test_a_staging_folder_without_a_record_is_named_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped before it wrote audit.json leaves reports/<name>.partial/ without one."""
    staging = tmp_path / "reports" / "smoke.partial"
    staging.mkdir(parents=True)
    said = (f"{staging}: a run's staging folder, with no audit.json yet: the run has not finished (interrupted, or "
            f"running now); when it finishes, this folder becomes {tmp_path / 'reports' / 'smoke'}")
    with pytest.raises(InvalidInput, match=re.escape(said)):
        render_run(staging)
    monkeypatch.chdir(staging)  # named as `.`: the folder it is
    with pytest.raises(InvalidInput, match=re.escape(f"this folder becomes {tmp_path / 'reports' / 'smoke'}")):
        render_run(Path("."))
    (tmp_path / ".partial").mkdir()  # a name that is the suffix alone: no run's
    for other in (tmp_path / "reports", tmp_path / ".partial"):
        with pytest.raises(InvalidInput, match="no audit.json [(]is this a report folder"):
            render_run(other)
    staging.rmdir()  # the working directory deleted under the shell, as a failed run's cleanup would
    with pytest.raises(InvalidInput, match="no audit.json [(]is this a report folder"):
        render_run(Path("."))


def test_a_folder_where_the_sheet_goes_is_named(tmp_path: Path) -> None:
    (tmp_path / "audit.json").write_text(GOLDEN_AUDIT.read_text())
    (tmp_path / "REPRODUCIBILITY.md").mkdir()
    with pytest.raises(InvalidInput, match=f"{tmp_path / 'REPRODUCIBILITY.md'}: a folder is where this file goes"):
        render_run(tmp_path)


def test_cli_render_without_audit_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "auditor", "render", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "no audit.json" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_matplotlib_is_imported_only_inside_functions() -> None:
    # Static check (a subprocess import costs seconds): no module-level statement of
    # render.py imports matplotlib, so importing it never selects a backend.
    tree = ast.parse(Path(render.__file__).read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for sub in ast.walk(node):
            names = [a.name for a in sub.names] if isinstance(sub, ast.Import) else []
            names += [sub.module or ""] if isinstance(sub, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "matplotlib" for n in names), ast.dump(sub)


# --- StrictUndefined: no silent blanks --------------------------------------------------------


TEMPLATE_ONLY_FIELDS = [("environment", "cpu_cores_logical"), ("data", "fingerprint"), ("model", "depth")]
REQUIRED_FIELDS = [("determinism", "seed"), ("training", "history"), ("run", "out"), ("verification", None)]


@pytest.mark.parametrize(("section_", "key"), TEMPLATE_ONLY_FIELDS)
def test_missing_template_field_raises(section_: str, key: str) -> None:
    audit = golden_audit()
    del audit[section_][key]
    with pytest.raises(jinja2.UndefinedError):
        text_of(audit)


@pytest.mark.parametrize(("section_", "key"), REQUIRED_FIELDS)
def test_missing_any_required_field_raises(section_: str, key: str | None) -> None:
    audit = golden_audit()
    if key is None:
        del audit[section_]
    else:
        del audit[section_][key]
    with pytest.raises((jinja2.UndefinedError, KeyError)):
        text_of(audit)


def test_render_run_reports_incomplete_audit_as_invalid_input(tmp_path: Path) -> None:
    audit = golden_audit()
    del audit["environment"]["ram_gb"]
    run_dir = write_run_dir(tmp_path, audit)
    # the field named in the record's words (a user test: "missing 'dict object' has no attribute ...")
    with pytest.raises(InvalidInput, match=r"incomplete audit record, cannot render the sheet: it has no field 'ram_gb' "
                                           r"\(environment.ram_gb\) where the sheet reads one$"):  # fmt: skip
        render_run(run_dir)
    # The figure draws from the history, which is intact; it is not written beside no sheet.
    assert not (run_dir / "figures").exists() and not (run_dir / "REPRODUCIBILITY.md").exists()
    # A key the record holds in more than one place is named by the place it lacks (a user test: 'device' alone).
    audit = golden_audit()
    del audit["measurements"]["latency"]["device"]
    (run_dir / "audit.json").write_text(json.dumps(audit))
    with pytest.raises(InvalidInput, match=r"it has no field 'device' \(measurements.latency.device\) where the sheet"):
        render_run(run_dir)


# --- front matter -----------------------------------------------------------------------------


def test_front_matter_is_hugging_face_metadata() -> None:
    meta = front_matter(text_of(golden_audit()))
    assert meta["library_name"] == "pytorch"
    assert meta["tags"] == ["image-classification", "reproducibility", "auditor", "resnet8"]
    assert "datasets" not in meta  # no Hub dataset to link the synthetic data to
    assert meta["metrics"] == ["accuracy"]
    (entry,) = meta["model-index"]
    assert entry["name"] == "smoke"
    (result,) = entry["results"]
    assert result["task"]["type"] == "image-classification"
    assert result["dataset"] == {"name": "synthetic (auditor)", "type": "synthetic", "split": "test"}
    assert result["metrics"] == [{"type": "accuracy", "value": 0.96, "name": "Test accuracy"}]


def test_front_matter_quotes_names_yaml_would_misread() -> None:
    audit = golden_audit()
    audit["run"]["name"] = "true"
    meta = front_matter(text_of(audit))
    assert meta["model-index"][0]["name"] == "true"


def test_front_matter_cifar_and_missing_accuracy() -> None:
    meta = front_matter(text_of(cifar_audit([0.2470, 0.2435, 0.2616])))
    assert meta["datasets"] == ["cifar10"]
    assert meta["model-index"][0]["results"][0]["dataset"]["name"] == "CIFAR-10"
    meta = front_matter(text_of(diverged_audit(), NO_FIGURES))
    assert meta["model-index"][0]["results"][0]["metrics"] == []


def test_a_run_that_scored_no_test_image_is_not_said_to_have_scored_them() -> None:
    """A user test: a diverged run's sheet said "(all its images were scored)" and ticked "none of the 500
    scored test images is a pixel copy", where its Results said no test figure was measured."""
    text = text_of(diverged_audit(), NO_FIGURES)
    assert "were scored" not in text and "scored test images" not in text
    assert "the test set's (all its images; none was scored: no test evaluation ran)" in text
    assert "none of the 500 test images (none was scored: no test evaluation ran) is a pixel copy" in text
    assert "(all its images were scored)" in text_of(golden_audit())  # a run that scored them


@pytest.mark.parametrize(
    ("official", "test_files", "qualifier"),
    [(True, 500, ""), (False, 500, "not the official files"), (True, 10_000, "500 of the 10,000 test images there"),
     (False, 1_017, "not the official files; 500 of the 1,017 test images there")],
)
def test_cifar_data_other_than_the_official_test_set_is_said_so(official: bool, test_files: int, qualifier: str) -> None:
    """The model card's dataset and the headline name what the accuracy was measured on."""
    audit = cifar_audit([0.2470, 0.2435, 0.2616], official=official)
    audit["data"]["n_test_files"] = test_files  # the run measured sizes.test = 500 of them
    text = text_of(audit)
    name = front_matter(text)["model-index"][0]["results"][0]["dataset"]["name"]
    assert name == (f"CIFAR-10 ({qualifier})" if qualifier else "CIFAR-10")
    # the Hub's `datasets` link names the official set: only for the official test set
    assert front_matter(text).get("datasets") == (None if qualifier else ["cifar10"])
    # what tools read (the user test: a subset's run had said `type: cifar10`, `split: test`)
    dataset = front_matter(text)["model-index"][0]["results"][0]["dataset"]
    assert dataset["type"] == ("cifar10" if official else "cifar10-unofficial")
    assert dataset["split"] == ("test" if test_files == 500 else "test[:500]")  # the first 500 were scored
    assert ("on **cifar10** (" + (f"{qualifier}; " if qualifier else "") + "1,200 training images) for") in text  # one parenthesis


def test_the_data_folders_entries_no_run_reads_are_listed_below_the_file_check() -> None:
    audit = cifar_audit([0.2470, 0.2435, 0.2616], official=False)
    folder = Path(audit["data"]["root"]).name
    line = (f"Also in `{folder}/` but not read (a run reads only the official files `data_batch_1`..`5`, `test_batch`, "
            "`batches.meta`): `data_batch_6`, `` a`b `` and 3 more.")  # fmt: skip
    audit["data"] |= {"other_entries": ["data_batch_6", "a`b"], "n_other_entries": 5}
    section = text_of(audit).split("Per-file MD5 check")[1].split("## ")[0]
    assert line in section
    audit["data"] |= {"other_entries": None, "n_other_entries": None}  # the folder could not be listed
    assert "The folder could not be listed, so whether it holds files a run does not read is not known." in text_of(audit)
    audit["data"] |= {"other_entries": [], "n_other_entries": 0}
    assert "but not read" not in text_of(audit)
    del audit["data"]["other_entries"], audit["data"]["n_other_entries"]  # a record from before they were recorded
    assert "but not read" not in text_of(audit)
    golden = golden_audit()  # synthetic data: no folder
    assert golden["data"]["n_other_entries"] is None
    assert "but not read" not in text_of(golden) and "could not be listed" not in text_of(golden)


JUDGED_AGAIN = "judged again by this auditor"


def test_a_record_whose_stored_verdict_its_metrics_contradict_says_so() -> None:
    for audit in (golden_audit(), diverged_audit(), selection_on_test_audit(), verified_audit(),
                  cifar_audit([0.2470, 0.2435, 0.2616])):  # fmt: skip
        assert JUDGED_AGAIN not in text_of(audit, NO_FIGURES)  # records as runs write them
    edited = golden_audit()
    edited["metrics"]["latency_ms"] = 999.0  # the criterion `latency_ms < 50` fails on it now
    text = text_of(edited)
    assert "judged again by this auditor: verdict stored PASS, now FAIL; `latency_ms` stored PASS, now FAIL." in text
    # A user test: this caution said check gates on the metrics, the next one that check refuses the record.
    assert "another version; `auditor check` refuses it (below), and this sheet shows what is stored." in text
    edited = golden_audit()
    edited["verdict"] = "FAIL"  # (a verdict neither PASS nor FAIL: refused by read_audit, test_audit)
    assert "verdict stored FAIL, now PASS." in text_of(edited)
    assert "`auditor check` gates on the metrics, and this sheet shows what is stored." in text_of(edited)
    edited = golden_audit()  # a metric another version knows: the sheet still renders, and says so
    edited["spec"]["criteria"]["future_metric"] = ">= 1"
    assert "criteria cannot be judged again here (unknown metric 'future_metric'; known:" in text_of(edited)


METRICS_EDITED = "audit.json disagrees with what the run measured"


def test_a_record_whose_metrics_contradict_its_measurements_says_so() -> None:
    """The front matter shows metrics.*, the tables the measurements: an edit of one shows two figures."""
    for audit in (golden_audit(), diverged_audit(), selection_on_test_audit(), verified_audit(),
                  cifar_audit([0.2470, 0.2435, 0.2616], official=False)):  # fmt: skip
        assert METRICS_EDITED not in text_of(audit, NO_FIGURES)  # records as runs write them
    edited = golden_audit()
    measured = edited["measurements"]["test"]["acc"]
    edited["metrics"]["test_acc"] = 0.95
    text = text_of(edited, NO_FIGURES)
    # Tools read model-index without the caution: neither figure is offered to them (a user test).
    assert front_matter(text)["model-index"][0]["results"][0]["metrics"] == []
    assert front_matter(text_of(golden_audit(), NO_FIGURES))["model-index"][0]["results"][0]["metrics"][0]["value"] == measured
    assert (f"> [!CAUTION]\n> {METRICS_EDITED}: metrics.test_acc 0.95, but measurements.test.acc is {measured}. "
            "The record was edited after the run; `auditor check` refuses it, this sheet shows each figure where it "
            "is stored, and its front matter offers no accuracy to the tools that read model-index.") in text
    latency = golden_audit()  # any edit: which figures are the measured ones, only the checkpoints can tell
    latency["metrics"]["latency_ms"] = 0.01
    assert front_matter(text_of(latency, NO_FIGURES))["model-index"][0]["results"][0]["metrics"] == []


# --- variants -----------------------------------------------------------------------------------


def test_selection_on_test_set_is_stated_plainly() -> None:
    text = text_of(selection_on_test_audit())
    assert "**The best checkpoint was selected on the TEST set**" in text
    assert "no validation split" in text and "optimistically biased" in text
    assert checklist_line(text, "No model selection on the test set").startswith("- [ ]")
    assert re.search(r"; test accuracy \d+\.\d\d% \(optimistic: the checkpoint was selected on the test set\)\.", text)
    audit = selection_on_test_audit()
    audit["data"]["test_in_train"] = 2
    assert "(optimistic: some test images were seen before; see Data; the checkpoint was selected on the test set)." in (
        text_of(audit, NO_FIGURES))  # fmt: skip
    golden = text_of(golden_audit())
    assert "selected on the TEST set" not in golden and "(optimistic" not in golden
    assert checklist_line(golden, "No model selection on the test set").startswith("- [x]")


def test_an_unverified_run_says_what_its_determinism_settings_allow() -> None:
    """Reproduction is called possible only where determinism was requested and its flags read back."""
    lead = "## Determinism evidence\n\n**This run was not verified.** "
    assert lead + "The settings under *Determinism and seeding in force* make reproduction possible" in text_of(golden_audit())
    off = golden_audit()
    off["determinism"] |= {"requested": False, "cudnn_benchmark": True, "deterministic_algorithms": False}
    text = text_of(off, NO_FIGURES)
    assert lead + "Determinism was switched off for it (see *Determinism and seeding in force*), so a re-run need not" in text
    assert "make reproduction possible" not in text
    untaken = golden_audit()
    untaken["determinism"]["deterministic_algorithms"] = False
    text = text_of(untaken, NO_FIGURES)
    assert lead + "Determinism was requested, but the flags read back are not all deterministic" in text
    assert "make reproduction possible" not in text


def test_one_epoch_scored_on_the_test_set_is_no_selection() -> None:
    audit = selection_on_test_audit()
    audit["training"]["history"] = audit["training"]["history"][:1]
    audit["training"]["epochs_run"] = 1
    text = text_of(audit, NO_FIGURES)
    assert "**The test set was the selection split**" in text and "only one epoch was scored on it" in text
    assert "optimistically biased" not in text and "selected on the TEST set" not in text and "(optimistic" not in text
    line = checklist_line(text, "No model selection on the test set")
    assert line.startswith("- [x]") and "only one epoch was scored: no checkpoint was chosen by it" in line


def test_legacy_std_warning() -> None:
    text = text_of(cifar_audit(list(CIFAR10_STD_LEGACY)))
    data = section(text, "Data")
    assert "> [!WARNING]" in data
    assert "(0.2023, 0.1994, 0.2010) is the widely copied legacy value, which is not" in data  # said once
    rounded = cifar_audit([0.202, 0.199, 0.201])  # written to 3 decimals: the data stage calls it legacy too
    rounded["data"]["normalization"] = "cifar10-legacy-std"
    three = section(text_of(rounded), "Data")
    assert "(0.2020, 0.1990, 0.2010) is the widely copied legacy value (0.2023, 0.1994, 0.2010), which" in three
    assert "The correct std is (0.2470, 0.2435, 0.2616)" in data
    correct = section(text_of(cifar_audit([0.2470, 0.2435, 0.2616])), "Data")
    assert "| Normalisation kind | CIFAR-10 training-set statistics (correct std) |" in correct
    assert "[!WARNING]" not in correct
    synthetic = golden_audit()  # the constants are named, not statistics of the images read
    assert synthetic["spec"]["data"]["dataset"] == "synthetic"
    synthetic["data"]["normalization"] = "cifar10-correct"
    assert ("| Normalisation kind | CIFAR-10 training-set statistics (correct std) (the constants only: this run "
            "read synthetic images, not CIFAR-10) |") in text_of(synthetic)  # fmt: skip


@pytest.mark.parametrize(
    ("family", "depth", "norm", "said"),
    [("resnet-cifar", 20, "batch", None), ("resnet-cifar", 110, "batch", None), ("plain-cifar", 56, "batch", None),
     ("resnet-cifar", 8, "batch", "Depth 8 follows the 6n+2 rule but is not one the paper trained (20, 32, 44, 56, 110, 1202)."),
     ("plain-cifar", 110, "batch", None),  # Fig. 6's caption gives its error
     ("plain-cifar", 8, "batch", "Depth 8 follows the 6n+2 rule but is not one the paper trained (20, 32, 44, 56, 110)."),
     ("resnet-cifar", 20, "group", "Normalisation here is `group`, where the paper's net uses batch norm."),
     ("resnet-imagenet-style", 18, "none", "Normalisation here is `none`, where torchvision's net uses batch norm.")],
)  # fmt: skip
def test_the_architecture_note_says_where_the_net_is_not_what_its_source_trained(
    family: str, depth: int, norm: str, said: str | None
) -> None:
    """A user test: resnet8, plain8 and the group/none-norm variants were all credited to
    He et al. (2016), Sec. 4.2, which trained none of them."""
    audit = golden_audit()
    audit["model"].update(family=family, depth=depth, norm=norm)
    text = section(text_of(audit), "Architecture")
    if said is None:
        assert "not one the paper trained" not in text and "Normalisation here is" not in text
    else:
        assert said in text


@pytest.mark.parametrize(
    ("key", "label"),
    [("fill_uninitialized_memory", "`torch.utils.deterministic.fill_uninitialized_memory`"),
     ("inductor_deterministic",
      "`torch._inductor.config.deterministic` (torch.compile: no kernel choice by timing that could change the numerics)")],
)  # fmt: skip
def test_flag_rows_and_records_without_them(key: str, label: str) -> None:
    audit = golden_audit()
    row = f"| {label} | {{}} |"
    assert row.format("yes") in text_of(audit)
    audit["determinism"][key] = False
    assert row.format("no") in text_of(audit)
    del audit["determinism"][key]  # a record written before the flag was recorded
    assert row.format("not recorded") in text_of(audit)


def test_filling_memory_without_deterministic_algorithms_is_said_to_have_no_effect() -> None:
    audit = golden_audit()
    audit["determinism"] |= {"fill_uninitialized_memory": True, "deterministic_algorithms": False}
    assert ("| `torch.utils.deterministic.fill_uninitialized_memory` | yes (no effect: torch fills memory only "
            "while deterministic algorithms are on) |") in text_of(audit)


def test_a_step_budget_that_stops_mid_epoch_is_not_counted_as_a_whole_epoch() -> None:
    audit = golden_audit()
    assert "for 3 of 3 planned epochs" in text_of(audit)
    tr = audit["training"]
    tr.update(epochs_run=1, epochs_planned=182, history=[{**tr["history"][0], "steps": 13}])
    audit["spec"]["train"]["max_steps"] = 13
    text = text_of(rehash(audit))
    assert "for 0.68 (13 steps) of 182 planned epochs" in text and "| Epochs (planned / run) | 182 / 0.68 (13 steps) |" in text
    assert "stopped by the step budget (`train.max_steps: 13`)" in text
    assert "| 1 (13 of 19 steps) | " in text  # the epoch table marks the partial epoch
    assert ("| Checkpoints | end of each epoch only (a stop by `max_steps` mid-epoch ends that epoch there: it is "
            "evaluated and its checkpoints written at that step) |") in text  # fmt: skip
    golden = text_of(golden_audit())
    assert "| Checkpoints | end of each epoch only |" in golden and " steps) | " not in section(golden, "Results")
    assert ("(lr updated every step); this run stopped after 0.68 (13 steps) of 182 planned epochs, before the "
            f"schedule's end: its lr at the last epoch end recorded was {tr['history'][0]['lr']:.4g} |") in text  # fmt: skip
    assert "before the schedule's end" not in text_of(golden_audit())  # all planned epochs run
    whole = copy.deepcopy(audit)  # a budget of whole epochs ends no epoch part-way
    whole["spec"]["train"]["max_steps"] = 2 * tr["steps_per_epoch"]
    assert "| Checkpoints | end of each epoch only |" in text_of(rehash(whole))
    passed = copy.deepcopy(audit)  # multistep whose every milestone was passed: no decay was cut short
    passed["training"]["epochs_run"] = 3
    passed["spec"]["train"]["schedule"] |= {"name": "multistep", "milestones": [1, 2]}
    assert "before the schedule's end" not in text_of(rehash(passed))
    passed["training"]["epochs_run"] = 1  # the milestone at epoch 2 never came
    assert "before the schedule's end" in text_of(rehash(passed))
    tr.update(epochs_planned=1)  # stopped inside the last planned epoch: still said
    audit["spec"]["train"]["epochs"] = 1
    assert "stopped by the step budget (`train.max_steps: 13`)" in text_of(rehash(audit))


def test_a_training_set_of_one_image_and_a_batch_larger_than_the_set_are_said_as_such() -> None:
    audit = golden_audit()
    n, batch = audit["data"]["sizes"]["train"], audit["spec"]["train"]["batch_size"]
    assert f"({n:,} training images)" in text_of(audit) and "larger than the training set" not in text_of(audit)
    audit["spec"]["train"]["batch_size"] = n + 1
    text = text_of(rehash(audit))
    assert f"| {n + 1} / {audit['spec']['train']['eval_batch_size']} (larger than the training set: each epoch is one " \
           f"step on all {n:,} training images) |" in text and batch <= n
    audit["data"]["sizes"]["train"] = 1
    assert "(1 training image)" in text_of(rehash(audit))


def test_the_normalisation_row_gives_group_norm_s_group_counts_where_recorded() -> None:
    audit = golden_audit()
    assert f"| Normalisation | {audit['model']['norm']} |" in text_of(audit)
    audit["model"] |= {"norm": "group", "norm_groups": {"16": 16, "32": 32, "64": 32}}
    assert "| Normalisation | group (GroupNorm: 16 groups at 16 channels; 32 groups at 32, 64 channels) |" in text_of(
        rehash(audit))
    del audit["model"]["norm_groups"]  # a record from before they were recorded
    assert "| Normalisation | group |" in text_of(rehash(audit))


def test_the_download_row_says_whether_the_run_downloaded_the_data() -> None:
    audit = golden_audit()  # synthetic
    assert "| Download if absent (`data.download`) | n/a (generated in memory) |" in text_of(audit)
    audit["spec"]["data"] |= {"dataset": "cifar10", "val_split": 10}
    audit["data"] |= {"dataset": "cifar10", "root": "/d/cifar-10-batches-py", "official": True, "note": "all files match",
                      "downloaded": False}  # fmt: skip
    row = "| Download if absent (`data.download`) | "
    assert f"{row}off: the files were read where they were |" in text_of(rehash(audit))
    audit["spec"]["data"]["download"] = True
    assert f"{row}on: a cifar-10-batches-py folder was already there when the process that wrote this record read the " \
           "data, so it fetched nothing |" in text_of(rehash(audit))
    audit["data"]["downloaded"] = True
    assert f"{row}on: the process that wrote this record fetched CIFAR-10 with torchvision" in text_of(rehash(audit))
    del audit["data"]["downloaded"]  # a record from before it was recorded
    assert f"{row}on (whether the files were downloaded is not recorded) |" in text_of(rehash(audit))


def test_the_early_stopping_row_says_when_patience_starts_counting() -> None:
    audit = golden_audit()
    assert "| Early stopping | off |" in text_of(audit)
    audit["spec"]["train"]["early_stopping"] = {"floor": 0.0, "patience": 3}
    assert ("| Early stopping | patience 3 epochs without improvement of the selection accuracy, counted from the "
            "first epoch that can be selected |") in text_of(rehash(audit))  # it had read "once it reaches 0.00%"
    audit["spec"]["train"]["early_stopping"]["floor"] = 0.5
    assert "selection accuracy, counted once it reaches 50.00% |" in text_of(rehash(audit))
    audit["spec"]["train"]["early_stopping"]["floor"] = 1e-5
    assert "selection accuracy, counted once it reaches 0.00% (exactly 1e-05) |" in text_of(rehash(audit))
    audit["spec"]["train"]["early_stopping"]["floor"] = 0.007  # exact in decimal, though not in binary
    assert "selection accuracy, counted once it reaches 0.70% |" in text_of(rehash(audit))


def test_step_checkpoints_are_rows_of_the_checkpoint_table_where_recorded() -> None:
    audit = golden_audit()
    assert "| step |" not in text_of(audit) and "mid-epoch" not in text_of(audit)
    audit["step_checkpoints"] = [{"path": "checkpoints/smoke/step-00000023.pt", "bytes": 1_000_000, "sha256": "c" * 64,
                                  "global_step": 23}]  # fmt: skip
    text = text_of(audit)  # 19 steps an epoch
    assert f"| step | `checkpoints/smoke/step-00000023.pt` | 1.00 MB (1,000,000 bytes) | `{'c' * 64}` | 1 (+4 steps) | 23 |" in text
    assert "The `step` row is the mid-epoch checkpoint (`train.checkpoint_every_steps`) left in the folder" in text
    assert "`--resume` of this finished run starts from `last`, and from the newest intact one of them only where " \
           "`last` is damaged" in text
    audit["step_checkpoints"][0] |= {"sha256": None, "problem": "no digest file (step-00000023.pt.sha256 is missing)"}
    assert "| **not intact**: no digest file (step-00000023.pt.sha256 is missing) | 1 (+4 steps) | 23 |" in text_of(audit)
    audit["step_checkpoints"] += [{"path": "checkpoints/smoke/step-00000061.pt", "bytes": 1, "sha256": "d" * 64,
                                   "global_step": 61}, {"path": "checkpoints/smoke/step-00000064.pt", "bytes": 1,
                                   "sha256": "e" * 64, "global_step": 64}]  # fmt: skip
    assert ("`--resume` of this run continues from the newest intact checkpoint by global step: `step-00000064.pt` "
            "(step 64, after `last`'s 57)") in text_of(audit)  # diverged in epoch 4, after step 64
    audit["step_checkpoints"][2] |= {"sha256": None, "problem": "unreadable (Permission denied)"}  # not the one
    assert "by global step: `step-00000061.pt` (step 61, after `last`'s 57)" in text_of(audit)
    audit["step_checkpoints"][1] |= {"sha256": None, "problem": "unreadable (Permission denied)"}  # none newer intact
    assert "`--resume` of this finished run starts from `last`" in text_of(audit)
    audit["checkpoints"] = {}  # diverged in its first epoch: no epoch-end checkpoint
    text = text_of(audit)
    assert "With no `last` checkpoint, `--resume` does not continue this run from them: it must be trained again" in text
    assert "Contents (top-level keys)" not in text
    del audit["step_checkpoints"]  # a record from before they were recorded
    assert "| step |" not in text_of(audit)


def test_the_val_copies_row_says_what_was_found_or_that_it_was_not_checked() -> None:
    audit = golden_audit()
    row = "| Val images also in the train split | "
    assert f"{row}0 of 300 (exact pixel copies; near-duplicates are not looked for) |" in text_of(audit)
    audit["data"]["val_in_train"] = 7
    assert f"{row}7 of 300 (exact pixel copies; near-duplicates are not looked for): the selection accuracy counts " \
           "them, though the model trained on them |" in text_of(audit)
    del audit["data"]["val_in_train"]  # a record from before the check
    assert f"{row}not checked (recorded before this check) |" in text_of(audit)
    audit["data"]["sizes"]["val"] = 0
    assert f"{row}n/a (no val split) |" in text_of(audit)


def test_the_ram_row_gives_the_cgroup_memory_limit_where_recorded() -> None:
    audit = golden_audit()
    assert "| RAM | 23.5 GiB; no cgroup memory limit found |" in text_of(audit)
    audit["environment"]["memory_limit_bytes"] = 8 * 2**30
    assert ("| RAM | 23.5 GiB; the memory limit of this process's cgroup (all its processes and their page cache "
            "together): 8 GiB (8,589,934,592 bytes), past which the kernel reclaims cache, then its OOM killer ends a "
            "process |") in text_of(audit)
    audit["environment"]["memory_limit_bytes"] = 512 * 2**20
    assert "together): 512 MiB (536,870,912 bytes), past which" in text_of(audit)
    del audit["environment"]["memory_limit_bytes"]  # a record from before it was recorded
    assert "| RAM | 23.5 GiB |" in text_of(audit)


def test_class_names_are_shown_as_written_not_as_markdown() -> None:
    """A batches.meta name such as `**bird**` had rendered bold, and `<b>` reached the page as a tag."""
    audit = golden_audit()
    names = ["**bird**", "<b>cat</b>", "a|b", *audit["data"]["classes"][3:]]
    audit["data"]["classes"] = names
    audit["measurements"]["test"]["per_class"] = {n: v for n, v in zip(names, audit["measurements"]["test"]["per_class"].values(),
                                                                     strict=True)}  # fmt: skip
    text = text_of(audit)
    assert "| Classes | \\*\\*bird\\*\\*, \\<b\\>cat\\<\\/b\\>, a\\|b, pattern3," in text
    for row in ("| \\*\\*bird\\*\\* | 100.00% |", "| \\*\\*bird\\*\\* | 115 | 25 | 49 |", "| \\<b\\>cat\\<\\/b\\> | 0 | 51 |"):
        assert row in text, row  # per-class accuracy, class counts, confusion matrix
    assert "| true \\ predicted | \\*\\*bird\\*\\* | \\<b\\>cat\\<\\/b\\> | a\\|b |" in text
    assert "**bird**" not in text and "<b>" not in text
    # a backslash before a pipe survives `cell`; a dotted name is no link
    assert (render.cell(render.plain("a\\|b")), render.plain("www.x.com")) == ("a\\\\\\|b", "www\\.x\\.com")


def test_the_initialisation_row_is_the_recorded_scheme() -> None:
    audit = golden_audit()
    assert f"| Initialisation | {audit['model']['init']} |" in text_of(audit)
    del audit["model"]["init"]  # a record from before it was recorded
    assert "| Initialisation | not recorded (a record from before auditor recorded it) |" in text_of(audit)


def test_a_constant_schedule_row_says_what_the_lr_was() -> None:
    """It had read 'constant: constant (lr updated every step)'."""
    audit = golden_audit()
    audit["spec"]["train"]["schedule"] |= {"name": "constant", "warmup_epochs": 0, "milestones": []}
    assert "| Schedule | constant: the base lr throughout |" in text_of(rehash(audit))
    audit["spec"]["train"]["schedule"]["warmup_epochs"] = 1
    assert ("| Schedule | constant: linear warm-up over 1 epoch, then the base lr (lr updated every step) |"
            in text_of(rehash(audit)))


def test_a_run_stopped_within_its_warm_up_says_the_schedule_after_it_never_took_effect() -> None:
    audit = golden_audit()
    assert "stopped within the warm-up" not in text_of(audit)
    tr = audit["training"]
    tr.update(epochs_run=1, epochs_planned=182, history=[{**tr["history"][0], "steps": 13}])
    audit["spec"]["train"] |= {"max_steps": 13, "epochs": 182}
    audit["spec"]["train"]["schedule"] |= {"name": "cosine", "warmup_epochs": 2, "milestones": []}
    text = text_of(rehash(audit))
    assert "(lr updated every step); this run stopped within the warm-up, after 0.68 epochs (13 steps): its lr only " \
           "rose, and what follows the warm-up never took effect" in text
    # A step budget of exactly one epoch (19 steps) inside a 2-epoch warm-up: one whole epoch, said in the singular.
    tr["history"] = [{**tr["history"][0], "steps": tr["steps_per_epoch"]}]
    audit["spec"]["train"]["max_steps"] = tr["steps_per_epoch"]
    assert "this run stopped within the warm-up, after 1 epoch: its lr only rose" in text_of(rehash(audit))


def test_test_images_seen_in_training_or_selection_are_said() -> None:
    audit = golden_audit()
    assert checklist_line(text_of(audit), "No model selection on the test set").startswith("- [x]")
    assert checklist_line(text_of(audit), "Test images not trained on") == (
        "- [x] **Test images not trained on**: none of the 500 scored test images is a pixel copy of a training "
        "image (exact copies; near-duplicates are not looked for)")  # fmt: skip
    assert "| Scored test images also in the train / val split | 0 / 0 of 500 (exact pixel copies;" in text_of(audit)
    assert "Test images seen before" not in text_of(audit)
    audit["data"] |= {"test_in_train": 12, "test_in_val": 3}
    text = text_of(audit)
    assert "| Scored test images also in the train / val split | 12 / 3 of 500 (exact pixel copies;" in text
    assert ("> [!WARNING]\n> **Test images seen before:** of the 500 scored test images, 12 are copies of images in "
            "the training split, so the test accuracy counts images the model trained on; 3 are copies of images in "
            "the validation split, on which the checkpoint was selected (pixel for pixel).") in text  # fmt: skip
    assert 'name: "Test accuracy (test images seen before, pixel for pixel: 12 trained on, 3 selected on: optimistically' in text
    assert "; test accuracy 96.00% (optimistic: some test images were seen before; see Data)." in text
    assert checklist_line(text, "No model selection on the test set") == (
        "- [ ] **No model selection on the test set**: best checkpoint selected on the val split, which holds 3 of "
        "the scored test images (pixel for pixel): the test accuracy is optimistically biased")  # fmt: skip
    assert checklist_line(text, "Test images not trained on") == (
        "- [ ] **Test images not trained on**: 12 of the 500 scored test images are pixel copies of images in the "
        "training split")  # fmt: skip
    del audit["data"]["test_in_train"], audit["data"]["test_in_val"]  # a record from before the check
    old = text_of(audit)
    assert "| Scored test images also in the train / val split | not checked (recorded before this check) |" in old
    assert checklist_line(old, "Test images not trained on").startswith("- [ ] **Test images not trained on**: not "
                                                                         "checked")  # fmt: skip
    assert checklist_line(old, "No model selection on the test set") == (  # a user test: ticked without evidence
        "- [ ] **No model selection on the test set**: best checkpoint selected on the val split, whose images were "
        "not checked for copies of the scored test images (recorded before this check)")  # fmt: skip
    audit["data"]["test_in_train"] = 0  # only one count: an edited record, said as it is
    assert "| Scored test images also in the train / val split | 0 / not checked of 500 (exact pixel" in text_of(audit)
    assert checklist_line(text_of(audit), "Test images not trained on").startswith("- [x]")
    assert checklist_line(text_of(audit), "No model selection on the test set").startswith("- [ ]")


def test_a_broken_models_validation_accuracies_are_not_reported() -> None:
    """best_val_acc is withheld from the metrics; the sheet printed it from the history all the same."""
    audit = golden_audit()
    best = audit["training"]["best_metric"]
    assert f"| Best val accuracy (selection metric) | {100 * best:.2f}% at epoch" in text_of(audit)
    audit["measurements"]["nonfinite"] = ["bn1.running_var"]
    text = text_of(rehash(audit))
    broken = f"{audit['measurements']['evaluated_checkpoint']} holds inf or NaN in 1 tensor (e.g. `bn1.running_var`)"
    assert (f"| Best val accuracy (selection metric) | not reported (epoch {audit['training']['best_epoch']}, selected "
            f"on the **val** split): {broken}: the model is broken, and its accuracy means nothing |") in text  # fmt: skip
    assert f"{100 * best:.2f}%" not in section(text, "Results").split("| Epoch |")[0]  # the epoch log keeps it
    assert "| Final val accuracy | not reported: " in text  # its last epoch is the selected one: the same weights
    on_test = selection_on_test_audit()  # no val split: the reason is still the broken model, not the split
    on_test["measurements"]["nonfinite"] = ["fc.weight"]
    on_test["metric_notes"] |= {"best_val_acc": "the spec has no validation split"}
    shown = text_of(rehash(on_test))
    assert "| Best test accuracy (selection metric) | not reported (epoch " in shown
    assert "split): best.pt holds inf or NaN in 1 tensor (e.g. `fc.weight`): the model is broken" in shown
    assert "the spec has no validation split" not in section(shown, "Results").split("| Epoch |")[0]
    audit = golden_audit()  # a model that is not broken, whose last epoch computed NaN
    last = audit["training"]["history"][-1]
    last["val_loss"] = None  # NaN, as audit.json holds it
    assert (f"| Final val accuracy | not reported: the val loss at epoch {last['epoch']} is not a number (the model "
            f"computed inf or NaN; its accuracy as measured, {100 * last['val_acc']:.2f}%, means nothing) |"
            in text_of(rehash(audit)))  # fmt: skip


def test_an_accuracy_whose_loss_is_not_a_number_is_not_reported() -> None:
    """One rule for the test accuracy, the selected epoch's (records of versions that selected such
    an epoch) and the final one's: each had its own, and the first two were shown."""
    audit = golden_audit()
    test = audit["measurements"]["test"]
    test["loss"] = None  # NaN, as audit.json holds it
    text = text_of(rehash(audit))
    assert (f"| Test accuracy | not reported: the test loss of best.pt is not a number: it computed inf or NaN on some "
            f"test images, and its accuracy as measured ({100 * test['acc']:.2f}%), which counts argmaxes of "
            "non-numbers, means nothing |") in text  # fmt: skip
    assert "test accuracy not reported (its test loss is not a number)." in text
    assert "**Non-finite outputs:** the selected model's losses are not numbers (its test loss)" in text
    audit = golden_audit()
    tr = audit["training"]
    best = next(h for h in tr["history"] if h["epoch"] == tr["best_epoch"])
    best["val_loss"] = None
    assert (f"| Best val accuracy (selection metric) | not reported (epoch {tr['best_epoch']}, selected on the **val** "
            f"split): its val loss there is not a number (the model computed inf or NaN; its accuracy as measured, "
            f"{100 * tr['best_metric']:.2f}%, means nothing) |") in text_of(rehash(audit))  # fmt: skip
    # An older record whose test loss and selected epoch's val loss are NaN: its stored metrics
    # hold both figures, which the model card's index leaves out as the body does.
    audit = golden_audit()
    audit["measurements"]["test"]["loss"] = None
    assert front_matter(text_of(audit))["model-index"][0]["results"][0]["metrics"] == []


def unselected_audit(split: str = "val") -> dict[str, Any]:
    """The golden record as a run none of whose epochs could be selected writes it: every
    selection loss NaN, no best.pt, nothing measured on a selected model."""
    from auditor.check import judge, record_gate_status, verdict

    audit = selection_on_test_audit() if split == "test" else golden_audit()
    tr, meas = audit["training"], audit["measurements"]
    for h in tr["history"]:
        h["val_loss"] = None
    tr.update(best_epoch=None, best_metric=None)
    meas.update(test=None, evaluated_checkpoint=None)
    meas["size"]["checkpoint_bytes"] = None
    del audit["checkpoints"]["best"]
    why = no_selection_note(len(tr["history"]), None, split)
    audit["metrics"].update(test_acc=None, best_val_acc=None, final_val_acc=None, checkpoint_mb=None)
    audit["metric_notes"].update(test_acc=why, checkpoint_mb=why, final_val_acc="the val loss at the last epoch is NaN",
                                 **({"best_val_acc": why} if split == "val" else {}))  # fmt: skip
    audit["criteria"] = [asdict(r) for r in judge(audit["spec"]["criteria"], audit)]
    audit["verdict"] = verdict(judge(audit["spec"]["criteria"], audit), record_gate_status(audit))
    return rehash(audit)


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_run_none_of_whose_epochs_could_be_selected_says_so_everywhere(split: str) -> None:
    """The review of the change that stopped selecting such epochs: the divergence item stayed
    ticked, the selection item said "no completed epoch", and on the test split the sheet warned
    of a checkpoint selected on the test set, with no checkpoint and no accuracy."""
    audit = unselected_audit(split)
    n = len(audit["training"]["history"])
    why = (f"no epoch was selected: the {split} loss of every completed epoch ({n} epochs) was not a number (the "
           "model computed inf or NaN), so no best checkpoint was written")  # fmt: skip
    text = text_of(audit)
    assert "edited" not in text and audit["verdict"] == "FAIL"
    assert f"| Test accuracy | not measured: {why} |" in text
    assert f"| Best {split} accuracy (selection metric) | none: {why} |" in text
    assert checklist_line(text, "Training finished without divergence") == (
        f"- [ ] **Training finished without divergence**: status completed, but {why}")
    assert checklist_line(text, "No model selection on the test set") == f"- [ ] **No model selection on the test set**: {why}"
    assert "no epoch could be selected: each one's selection-split loss was not a number (such a run fails" in text
    assert "selected on the TEST set" not in text and "optimistically biased" not in text
    if split == "test":
        assert ("but no epoch could be selected (each one's test loss was not a number), so no checkpoint was chosen "
                "by its test score.") in text  # fmt: skip


def test_final_weights_broken_after_the_selected_epoch_are_said() -> None:
    audit = golden_audit()
    audit["measurements"]["final_nonfinite"] = ["stages.0.0.norm1.running_var", "stages.1.0.norm1.running_var"]
    text = text_of(rehash(audit))
    assert ("**Broken final weights:** last.pt (the weights the last epoch was evaluated on) holds inf or NaN in 2 tensors "
            "(`stages.0.0.norm1.running_var`, `stages.1.0.norm1.running_var`): training overflowed after the selected "
            "epoch.") in text  # fmt: skip
    assert checklist_line(text, "Training finished without divergence") == (
        "- [ ] **Training finished without divergence**: status completed, but last.pt (the last epoch's weights) holds "
        "inf or NaN in 2 tensors (`stages.0.0.norm1.running_var`, `stages.1.0.norm1.running_var`)")  # fmt: skip
    assert "| Final val accuracy | not reported: last.pt, which it was measured on, holds inf or NaN in 2 tensors" in text
    audit["measurements"]["final_nonfinite"] = []
    assert checklist_line(text_of(rehash(audit)), "Training finished without divergence").startswith("- [x]")


def test_a_broken_model_is_why_a_run_failed() -> None:
    audit = golden_audit()
    audit["measurements"]["nonfinite"] = ["conv1.weight"]
    audit["verdict"] = "FAIL"  # as the run judged it
    assert ("Why it failed: the model holds inf or NaN weights (a broken model fails whatever its criteria say)"
            in text_of(rehash(audit)))


def test_a_selected_model_whose_losses_are_not_numbers_is_flagged_and_not_ticked() -> None:
    """lr=1000 on the smoke spec: finite weights that overflow on some images; NaN losses, 12% accuracy."""
    audit = golden_audit()
    assert "Non-finite outputs" not in text_of(audit)
    assert checklist_line(text_of(audit), "Training finished without divergence").startswith("- [x]")
    audit["measurements"]["test"]["loss"] = None  # NaN, as audit.json holds it
    best = audit["training"]["best_epoch"]
    next(h for h in audit["training"]["history"] if h["epoch"] == best)["val_loss"] = None
    text = text_of(rehash(audit))
    found = f"its test loss; its val loss at epoch {best}, when it was selected"
    assert (f"> [!CAUTION]\n> **Non-finite outputs:** the selected model's losses are not numbers ({found}): it "
            "computes inf or NaN on some images") in text
    assert "| Test loss (mean cross-entropy per image, in nats) | non-finite |" in text
    line = checklist_line(text, "Training finished without divergence")
    assert line.startswith("- [ ]") and f"status completed, but the selected model's losses are not numbers ({found})" in line


def test_the_test_accuracy_says_what_precision_it_was_measured_in() -> None:
    audit = golden_audit()
    audit["measurements"]["test"]["precision"] = "bf16 autocast, as trained"
    assert "| Test accuracy | 96.00% on 500 images (checkpoint best.pt; bf16 autocast, as trained) |" in text_of(audit)
    del audit["measurements"]["test"]["precision"]  # a record written before it was recorded
    assert "| Test accuracy | 96.00% on 500 images (checkpoint best.pt) |" in text_of(audit)


def test_a_one_epoch_run_is_said_in_the_singular() -> None:
    audit = golden_audit()
    assert " for 3 of 3 planned epochs on " in text_of(audit)
    tr = audit["training"]
    tr.update(epochs_run=1, epochs_planned=1, history=tr["history"][:1], best_epoch=1)
    audit["spec"]["train"]["epochs"] = 1
    assert " for 1 of 1 planned epoch on " in text_of(rehash(audit))


def test_a_non_finite_epoch_loss_is_said_as_such_not_as_missing() -> None:
    audit = golden_audit()
    audit["training"]["history"][0]["val_loss"] = None  # audit.json holds a NaN or inf loss as null
    rows = [r for r in text_of(rehash(audit)).splitlines() if r.startswith("| 1 | 0.04523 |")]
    assert len(rows) == 1 and rows[0].split(" | ")[4] == "non-finite", rows
    assert "| 1 | 0.04523 | 2.0907 | 27.08% | 1.1748 |" in text_of(golden_audit())


def test_limits_above_what_the_data_holds_are_said_to_have_no_effect() -> None:
    audit = golden_audit()
    d = audit["data"]
    train_there = d["n_train_files"] - d["sizes"]["val"]
    audit["spec"]["data"] |= {"limit_train": train_there + 5, "limit_test": 3}
    text = text_of(rehash(audit))
    assert (f"| `limit_train` / `limit_test` | {train_there + 5:,} (no effect: {train_there:,} there) / 3; each keeps "
            "the first images in file order (training: of those left after the validation split), not a random "
            "sample |") in text  # fmt: skip
    audit["spec"]["data"] |= {"limit_train": train_there + 5, "limit_test": None}  # no limit in effect: not said
    assert f"| `limit_train` / `limit_test` | {train_there + 5:,} (no effect: {train_there:,} there) / n/a |" in text_of(rehash(audit))
    audit["spec"]["data"] |= {"limit_train": None, "limit_test": None}
    assert "| `limit_train` / `limit_test` | n/a / n/a |" in text_of(rehash(audit))


@pytest.mark.parametrize(
    ("max_steps", "every", "budget", "checkpoints"),
    [(1000, 1000, "1,000 steps (no effect: the 3 epochs take 57 steps)",
      "every 1,000 steps and at the end of each epoch (no effect: the run plans 57 steps)"),
     (57, 38, "57 steps (no effect: the 3 epochs take 57 steps)",
      ("every 38 steps and at the end of each epoch (no effect: a multiple of the 19 steps of an epoch, so every one "
       "falls at an epoch's end)")),
     (30, 30, "30 steps", ("every 30 steps and at the end of each epoch (no effect: the run plans 30 steps; a stop by "
                           "`max_steps` mid-epoch ends that epoch there: it is evaluated and its checkpoints written at "
                           "that step)")),
     (56, 20, "56 steps", ("every 20 steps and at the end of each epoch (a stop by `max_steps` mid-epoch ends that "
                           "epoch there: it is evaluated and its checkpoints written at that step)"))],
    ids=["both-beyond", "budget-exact-cadence-per-epoch", "cadence-at-the-budget", "both-apply"],
)
def test_budgets_that_never_apply_are_said_to_have_no_effect(
    max_steps: int, every: int, budget: str, checkpoints: str
) -> None:
    """A user test: a step budget of 1,000 and a checkpoint every 1,000 steps were shown for a run of a
    few steps as if they applied (the data limits say "no effect")."""
    audit = golden_audit()  # 3 epochs of 19 steps
    audit["spec"]["train"] |= {"max_steps": max_steps, "checkpoint_every_steps": every}
    text = text_of(rehash(audit))
    assert f"| Step budget (`max_steps`) | {budget} |" in text
    assert f"| Checkpoints | {checkpoints} |" in text


def test_a_run_verify_started_offers_the_verification_not_a_run_into_its_work_dir() -> None:
    """A user test: run A's sheet inside a verify offered `auditor run ... --out verify/smoke/a`
    (and its --resume), which `auditor run` refuses there."""
    audit = golden_audit()
    reproduce = lambda text: text.split("## Reproduce", 1)[1].split("## Criteria", 1)[0]
    assert "auditor run " in reproduce(text_of(audit))  # an ordinary run (and records before verify_out was kept)
    audit["run"]["verify_out"] = "/runs"
    section = reproduce(text_of(audit))
    assert "this is a run `auditor verify` started (its run A, B or K, under /runs/verify/smoke/)" in section
    assert "with the command that run A's sheet gives (/runs/verify/smoke/a/reports/smoke/REPRODUCIBILITY.md)" in section
    assert "auditor run " not in section and "--resume" not in section
    assert "auditor render reports/smoke" in section and "auditor check reports/smoke" in section  # these still work
    # A user test: its JUnit report went into verify's work dir, whose next verify then refused the file as not its own
    run_b = {**audit, "run": {**audit["run"], "out": "/runs/verify/smoke/b"}}  # one file a run: none replaces another
    assert "auditor check reports/smoke --junit /runs/smoke-b-results.xml" in reproduce(text_of(run_b)).splitlines()
    assert "auditor check reports/smoke --junit results.xml" in reproduce(text_of(golden_audit())).splitlines()
    evidence = text_of(audit).split("## Determinism evidence", 1)[1]  # run B's or K's: the verdict is in A's sheet
    assert "This run is one `auditor verify` compared with its run A: the verdict, and the command that repeats it, " \
           "are in run A's sheet (/runs/verify/smoke/a/reports/smoke/REPRODUCIBILITY.md)." in evidence
    assert "auditor verify " not in evidence and "the retrain command above" not in evidence
    audit = verified_audit()  # run A, once verify wrote its verdict (with the command) into it
    audit["run"]["verify_out"] = "/runs"
    audit["verification"] |= {"command": "auditor verify smoke --epochs 2", "cwd": "/home/me"}
    section = reproduce(text_of(audit))
    assert "(cd /home/me && auditor verify smoke --epochs 2)" in section and "run A's sheet gives" not in section
    del audit["run"]["verify_out"]  # run A recorded before verify_out was kept: its folder says whose it is
    audit["run"]["out"] = "/runs/verify/smoke/a"
    section = reproduce(text_of(audit))
    assert "under /runs/verify/smoke/)" in section and "auditor run " not in section
    audit["run"]["out"] = "/runs/elsewhere/a"  # not where verify puts its runs: an ordinary sheet
    assert "auditor run " in reproduce(text_of(audit))


def test_the_peak_rss_row_says_how_the_record_read_it() -> None:
    """A user test: getrusage's ru_maxrss, which the sheet named, carries over the peak of the
    process that started the run; runs now read Linux's VmHWM, and say so, while a record read by
    getrusage (the golden one, from before the source was kept) says what that figure may hold."""
    audit = golden_audit()
    assert ("the torch runtime included; read by `getrusage` (on Linux, it may include the peak of the process that "
            "started this one) after measuring, so writing the report is not counted; MB of 10^6 bytes) | 1,137.2 MB |") in text_of(audit)
    audit["measurements"]["memory"]["peak_rss_source"] = "VmHWM"
    assert ("the torch runtime included; this process's own high-water mark (Linux's `VmHWM`), read after measuring, so "
            "writing the report is not counted; MB of 10^6 bytes) | 1,137.2 MB |") in text_of(audit)
    from auditor.audit import record_problem

    audit["measurements"]["memory"]["peak_rss_source"] = []  # the review: an edit the renderer failed on
    assert "measurements.memory.peak_rss_source" in (record_problem(audit) or "")


def test_a_resumed_run_says_its_wall_time_and_memory_are_the_last_process_s() -> None:
    audit = golden_audit()
    assert "Run started " in text_of(audit) and "| Peak process RSS (data, training and measurement, the torch runtime included; read by `getrusage`" in text_of(audit)
    audit["run"]["resumed_from"] = "step-00000012.pt"
    text = text_of(audit)
    assert "This process (resumed from `step-00000012.pt`) started " in text and "Run started" not in text
    assert "| Resumed from | step-00000012.pt " in text  # a record that does not say whether it was kept
    audit["run"]["resumed_from_kept"] = False  # pruned once newer ones were written
    assert "| Resumed from | step-00000012.pt (a checkpoint of the interrupted run, since removed as the run's checkpoints were pruned)" in text_of(audit)
    audit["run"]["resumed_from_kept"] = True
    assert "| Resumed from | step-00000012.pt " in text_of(audit)
    assert "the training time below sums every process's epochs" in text
    assert "| Peak process RSS (the resumed process only, the torch runtime included; read by `getrusage` " in text
    assert "| CUDA max allocated (the resumed process only) |" in text
    assert "| CUDA max reserved by torch's allocator (the resumed process only; without the CUDA context) |" in text


def test_a_run_resumed_more_than_once_lists_every_resume() -> None:
    """A user test: a run resumed twice said only where its last process continued from."""
    from auditor.audit import record_problem

    audit = golden_audit()
    audit["run"]["resumed_from"] = "step-00000030.pt"
    first = {"checkpoint": "step-00000012.pt", "global_step": 12, "utc": "2026-12-07T10:00:00+00:00"}
    last = {"checkpoint": "step-00000030.pt", "global_step": 30, "utc": "2026-12-07T11:00:00+00:00"}
    listed = ("at global step 12 from step-00000012.pt (2026-12-07T10:00:00+00:00); at global step 30 from "
              "step-00000030.pt (2026-12-07T11:00:00+00:00)")  # fmt: skip
    audit["training"].update(resumes=[last], resumes_unrecorded=False)
    assert "| Resumed from | step-00000030.pt |" in text_of(audit)  # once: the row says it all
    audit["training"]["resumes"] = [first, last]
    assert f"| Resumed from | step-00000030.pt; its training was resumed 2 times in all: {listed} |" in text_of(audit)
    # A finished run re-judged: that process ran no step, so no weights went through its resume (the review).
    audit["run"]["resumed_from"], audit["training"]["trained_here"] = "last.pt", False
    rejudged = "| Resumed from | last.pt (this process ran no training step: it measured and judged the finished training again)"
    assert f"{rejudged}; its training was resumed 2 times in all: {listed} |" in text_of(audit)
    audit["training"]["resumes"] = []
    assert f"{rejudged} |" in text_of(audit)
    audit["training"]["resumes_unrecorded"] = True  # its checkpoint kept no list: an earlier version's
    assert (f"{rejudged}; whether its training was resumed before is not known (continued from a checkpoint that "
            "does not record them: an earlier version's, or one edited) |") in text_of(audit)
    audit["run"]["resumed_from"], audit["training"]["trained_here"] = "step-00000030.pt", True
    audit["training"].update(resumes=[last], resumes_unrecorded=True)
    assert ("| Resumed from | step-00000030.pt; the resumes of its training recorded: at global step 30 from "
            "step-00000030.pt (2026-12-07T11:00:00+00:00); any resumes before them are not known (continued from a "
            "checkpoint that does not record them: an earlier version's, or one edited) |") in text_of(audit)
    # The step it continued from, and (a user test) an epoch's last.pt written again since: not the file there now.
    audit["training"].update(resumes=[first, last], resumes_unrecorded=False, resumed_at_step=30)
    audit["run"]["resumed_from_kept"] = True
    assert "| Resumed from | step-00000030.pt (global step 30); its training was resumed 2 times" in text_of(audit)
    audit["run"].update(resumed_from="last.pt", resumed_from_kept=False)
    audit["training"].update(resumes=[{**last, "checkpoint": "last.pt"}], resumed_at_step=30)
    assert ("| Resumed from | last.pt (global step 30; a checkpoint of the interrupted run, since replaced by the "
            "run's later last.pt) |") in text_of(audit)
    audit["training"]["resumed_at_step"] = "30"
    assert "training.resumed_at_step" in (record_problem(audit) or "")
    audit["training"]["resumed_at_step"] = 30
    for edited in ([{**last, "global_step": -1}], "twice", [first, None], [{**last, "checkpoint": "x|y.pt"}],
                   [{**last, "utc": "2026-01-01\n\n## Injected heading"}]):  # fmt: skip
        audit["training"]["resumes"] = edited
        assert "training.resumes" in (record_problem(audit) or ""), edited  # refused, naming it, not a crash


def test_a_resumed_run_s_command_is_the_resume_s_and_is_not_offered_as_the_original() -> None:
    audit = golden_audit()
    command = audit["environment"]["command"]
    text = text_of(audit)
    assert "# the original command, as run from" in text and f"&& OMP_NUM_THREADS=2 {command} --resume)" in text
    assert "audit.json, from where the original ran (relative paths in the" in text
    audit["environment"]["command"] = f"{command} --resume"
    text = text_of(audit)
    assert "| Command (this run's last process, a resume) |" in text and "--resume --resume" not in text
    assert "# the original command" not in text and "# the command of this run's last process (a resume" in text
    # A --resume that found no checkpoint trained from the start: its folder is the original's.
    assert "audit.json, from where the original ran (relative paths in the" in text
    # A user test: the retrain runs from the last process's folder, which the comment called the original's.
    resumed = copy.deepcopy(audit)
    resumed["run"]["resumed_from"] = "step-00000012.pt"
    resumed_text = text_of(resumed)
    assert ("# retrain from the resolved spec saved beside audit.json, from where this run's last process (a resume) "
            "ran (relative paths in the") in resumed_text and "where the original ran" not in resumed_text  # fmt: skip
    assert "  # where this run's last process (a resume) ran: relative paths in the spec are relative to it" in resumed_text
    assert "the first process's command is not recorded" in text  # a record from before it was carried
    audit["run"]["started_by"] = {"command": command, "cwd": "/work/first place"}
    text = text_of(audit)
    assert ("# the command that started this run (its first process, as its checkpoints record it), as run from "
            f"/work/first place\n(cd '/work/first place' && {command})\n") in text
    assert "is not recorded" not in text and "drop --resume" not in text
    audit["run"]["started_by"]["command"] = f"{command} --resume"  # the user test: a --resume that trained from scratch
    assert ("as run from /work/first place\n# (a --resume that found no checkpoint, so it trained from the start; where "
            f"no run of this name is, drop --resume)\n(cd '/work/first place' && {command} --resume)\n") in text_of(audit)
    # A user test: the first process's command holds no environment, and no comment said so.
    audit["environment"]["numeric_env"] = {"OMP_NUM_THREADS": "1"}  # the resume set it; the first process ran 2
    audit["training"]["trained_at"] = [{"device": "cpu", "processor": "x", "torch_threads": 2, "cpu_capability": "AVX2"}]
    assert ("# (as typed, without its environment: that process trained at 2 torch threads, which only\n"
            "# OMP_NUM_THREADS set to that count gives on another machine)\n(cd '/work/first place' && ") in text_of(audit)
    audit["training"]["trained_at"][0]["device"] = "cuda:0"  # threads do not decide a GPU run's bits
    assert "as typed, without its environment" not in text_of(audit)


def test_unsteady_latency_is_flagged_and_steady_latency_is_not() -> None:
    audit = golden_audit()
    lat = audit["measurements"]["latency"]
    assert "Unsteady timing" not in text_of(audit) and lat["iqr_ms"] <= 0.25 * lat["median_ms"]
    lat.update(median_ms=198.0, iqr_ms=375.0, p95_ms=551.0, min_ms=15.6)  # measured on a busy machine
    note = section(text_of(audit), "Latency and size")
    assert "**Unsteady timing:** the IQR is 189% of the median (p95 551.000 ms, min 15.600 ms)" in note
    assert "`auditor measure` on best.pt measures it again." in note
    audit["measurements"]["evaluated_checkpoint"] = None  # the final in-memory weights: no file to measure
    assert "auditor measure" not in section(text_of(audit), "Latency and size")


def test_a_busy_cpu_latency_at_several_threads_says_fewer_threads_wait_less() -> None:
    """A user test: at 2 threads on a busy 2-core machine the latency was 190x the quiet figure,
    and the note's one advice, `auditor measure`, re-timed it as inflated on the same machine."""
    audit = golden_audit()
    lat = audit["measurements"]["latency"]
    lat.update(other_cpu_share=0.5, other_cpu_window_s=3.0, device="cpu", threads=2)
    said = ("The model was timed at 2 threads, each of which waits for a core at every parallel step: on a shared "
            "machine, fewer threads than the cores left free (e.g. OMP_NUM_THREADS=1) wait less, though at another "
            "setting than the run's.")
    assert said in section(text_of(audit), "Latency and size")
    lat["threads"] = 1  # one thread: nothing fewer to offer
    assert "Busy machine" in text_of(audit) and "waits for a core at every parallel step" not in text_of(audit)
    audit["measurements"]["memory"]["peak_rss_source"] = "sampled"  # the review: an unknown source is said as such
    assert "read by a method this auditor does not know ('sampled') after measuring" in text_of(audit)


def test_test_set_fingerprint_row_and_records_without_it() -> None:
    audit = golden_audit()
    row = "| Test-set fingerprint (the test images, then the test labels, alone; `auditor evaluate` prints it for its copy) | {} |"
    assert row.format(f"`{audit['data']['test_fingerprint']}`") in text_of(audit)
    del audit["data"]["test_fingerprint"]  # a record written before it was recorded
    assert row.format("not recorded") in text_of(audit)


def test_scored_test_images_fingerprint_row() -> None:
    """The fingerprint of the images the test accuracy is on: the limited subset's where limit_test
    cut the test set, said to be the test set's where all were scored, and absent in older records."""
    audit = golden_audit()
    row = ("| Scored test images' fingerprint (those a test accuracy is measured on; `auditor evaluate` prints it as "
           "`scored_fingerprint`) | {} |")  # fmt: skip
    audit["data"]["scored_test_fingerprint"] = "a" * 64
    assert row.format(f"`{'a' * 64}`") in text_of(audit)
    audit["data"]["scored_test_fingerprint"] = audit["data"]["test_fingerprint"]
    assert row.format("the test set's (all its images were scored)") in text_of(audit)
    del audit["data"]["scored_test_fingerprint"]
    assert row.format("not recorded") in text_of(audit)


def test_tf32_rows_and_records_without_them() -> None:
    audit = golden_audit()
    conv = "| `torch.backends.cudnn.allow_tf32` (CUDA: fp32 convolutions in TF32) | {} |"
    matmul = "| `torch.backends.cuda.matmul.allow_tf32` (CUDA: fp32 matmuls in TF32) | {} |"
    on_cpu = text_of(audit)  # the fixture is a CPU run: the flags changed nothing
    assert conv.format("n/a on cpu (flag: yes)") in on_cpu and matmul.format("n/a on cpu (flag: no)") in on_cpu
    audit["environment"]["device"] = "cuda:0"
    assert conv.format("yes") in text_of(audit) and matmul.format("no") in text_of(audit)
    for key in ("cudnn_allow_tf32", "cuda_matmul_allow_tf32"):  # a record written before the flags
        del audit["determinism"][key]
    assert conv.format("not recorded") in text_of(audit) and matmul.format("not recorded") in text_of(audit)


def test_toggle_notes_and_bf16_row_and_records_without_them() -> None:
    audit = golden_audit()
    row = "| CPU bf16 instructions oneDNN may use (avx512_bf16 / amx_bf16; not where `ONEDNN_MAX_CPU_ISA` caps them) | {} |"
    assert row.format("no") in text_of(audit) and "Notes on the toggles" not in text_of(audit)
    audit["run"]["toggle_notes"] = ["train.amp=bf16 on a CPU without bf16 instructions: slow"]
    assert "| Notes on the toggles | train.amp=bf16 on a CPU without bf16 instructions: slow |" in text_of(audit)
    del audit["environment"]["cpu_bf16_native"], audit["run"]["toggle_notes"]  # an older record
    assert row.format("not recorded") in text_of(audit) and "Notes on the toggles" not in text_of(audit)


def test_cpus_row_and_notes_and_records_without_them() -> None:
    audit = golden_audit()
    row = "| CPUs this process may use | {} |"
    assert row.format("2 (CPU affinity); no cgroup CPU quota") in section(text_of(audit), "Environment")
    assert "Notes on the CPUs" not in text_of(audit)
    audit["environment"]["cpu_quota"] = 1.5
    audit["run"]["environment_notes"] = ["torch runs 2 CPU threads but the quota is 1.5 CPUs"]
    env_section = section(text_of(audit), "Environment")
    assert row.format("2 (CPU affinity); cgroup CPU quota of 1.5 CPUs") in env_section
    assert "| Notes on the CPUs | torch runs 2 CPU threads but the quota is 1.5 CPUs |" in env_section
    del audit["environment"]["cpu_affinity"], audit["environment"]["cpu_quota"], audit["run"]["environment_notes"]
    assert row.format("not recorded") in text_of(audit) and "Notes on the CPUs" not in text_of(audit)


def test_label_smoothing_is_named_beside_the_training_loss() -> None:
    audit = golden_audit()
    header = "| Epoch | lr (last step) | {} | Train acc |"
    assert header.format("Train loss") in section(text_of(audit), "Results")
    audit["spec"]["train"]["label_smoothing"] = 0.1  # the held-out loss stays plain cross-entropy
    results = section(text_of(rehash(audit)), "Results")
    assert header.format("Train loss (label smoothing 0.1)") in results
    assert re.search(r"\| Final train accuracy / loss \(.*\) \| [\d.]+% / [\d.]+ \(label smoothing 0.1\) \|", results)
    assert "(label smoothing" not in section(text_of(golden_audit()), "Results")


def test_compile_time_is_said_to_be_inside_the_training_time() -> None:
    audit = golden_audit()
    assert "includes torch.compile's compilation" not in text_of(audit)
    audit["spec"]["train"]["compile"] = "default"
    assert ("; includes torch.compile's compilation, in the first steps (the throughput does too)) |"
            in text_of(rehash(audit)))  # fmt: skip


def test_mid_epoch_checkpoints_are_said_to_be_inside_the_training_time() -> None:
    """The honesty audit: the scope said only what the time excludes, while the step checkpoints
    (verify always asks for them) are taken between the timed steps."""
    audit = golden_audit()
    assert "mid-epoch checkpoints" not in text_of(audit)
    audit["spec"]["train"]["checkpoint_every_steps"] = 4
    assert ("taking the end-of-epoch checkpoints (written to disk in the background, during the steps that follow) "
            "and the measure stage; includes taking the mid-epoch checkpoints (every 4 steps), which happens between "
            "steps") in text_of(rehash(audit))  # fmt: skip


def test_a_latency_timed_without_the_autocast_the_model_trained_in_says_so() -> None:
    audit = golden_audit()
    assert "| dtype | float32 |" in text_of(audit)
    audit["spec"]["train"]["amp"] = "bf16"
    assert ("| dtype | float32 (not the bf16 autocast the model trained and was scored in: timed without autocast) |"
            in text_of(rehash(audit)))  # fmt: skip


def test_the_throughput_without_compiling_is_given_beside_the_whole() -> None:
    audit = golden_audit()
    tr = audit["training"]
    assert f"| Training throughput | {tr['images_per_s']:,.1f} images/s |" in text_of(audit)  # compile_s: None
    tr |= {"train_time_s": 40.0, "images_per_s": 500.0, "compile_s": 15.0}  # 20,000 images, 25 s of steps
    audit["metrics"] |= {"train_time_s": 40.0, "images_per_s": 500.0}  # as a run records them: alike
    assert "| Training throughput | 500.0 images/s; 800.0 images/s without the 15.0 s of compiling |" in text_of(
        rehash(audit))
    # A user test: the same compile took 41.8 s, then 1.3 s, from inductor's cache, and the sheet did not say so.
    assert ("| Compile time (first step at each batch size, compiling included) | 15.0 s (inductor reuses kernels "
            "compiled by earlier runs from its cache") in text_of(rehash(audit))
    assert "| Compile time (first step at each batch size, compiling included) | n/a |" in text_of(golden_audit())
    for odd in (0.0, 40.0, 50.0, float("nan"), True):  # nothing compiled, or no time left: the whole rate only
        assert render.throughput_text({**tr, "compile_s": odd}) == "500.0 images/s"


def test_milestones_within_the_warm_up_are_said_to_wait_for_its_end() -> None:
    """train.lr_factor ramps up through them and applies their decay when the warm-up ends."""
    audit = golden_audit()
    audit["spec"]["train"]["schedule"] |= {"name": "multistep", "milestones": [0.5, 2], "gamma": 0.1, "warmup_epochs": 1}
    text = section(text_of(rehash(audit)), "Hyperparameters")
    assert ("multistep: linear warm-up over 1 epoch, then multiply by gamma = 0.1 once 0.5, 2 epochs have elapsed "
            "(when the warm-up ends; from epoch 3 on, as the tables number epochs from 1); the warm-up ignores the "
            "milestone within it (0.5): its decay applies at once when the warm-up ends, after 1 epoch") in text
    assert lr_factor(9, 10, 3, Schedule(name="multistep", milestones=[0.5], warmup_epochs=1), 0.1) == 1.0
    assert lr_factor(10, 10, 3, Schedule(name="multistep", milestones=[0.5], warmup_epochs=1), 0.1) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("milestones", "said"),
    [([1], "once 1 epoch has elapsed (from epoch 2 on, as the tables number epochs from 1) "),
     ([1, 2], "once 1, 2 epochs have elapsed (from epoch 2 on; from epoch 3 on, as the tables number epochs from 1) "),
],
)  # fmt: skip
def test_multistep_schedule_names_its_milestones(milestones: list[int], said: str) -> None:
    audit = golden_audit()
    audit["spec"]["train"]["schedule"] |= {"name": "multistep", "milestones": milestones, "gamma": 0.5}
    text = section(text_of(rehash(audit)), "Hyperparameters")
    assert f"then multiply by gamma = 0.5 {said}(lr updated every step) |" in text


def test_milestones_say_which_epoch_of_the_tables_they_change() -> None:
    assert render.milestones_text([91, 136]) == ("once 91, 136 epochs have elapsed (from epoch 92 on; from epoch 137 "
                                                 "on, as the tables number epochs from 1)")  # fmt: skip
    assert render.milestones_text([2.5]).startswith("once 2.5 epochs have elapsed (part-way through epoch 3")
    # With the steps per epoch, as lr_factor steps: a fraction may land on an epoch's start.
    assert "(from epoch 2 on, as" in render.milestones_text([0.5], spe=1)
    assert "(from epoch 4 on, as" in render.milestones_text([2.9], spe=4)
    assert "(part-way through epoch 3 (its step 3), as" in render.milestones_text([2.5], spe=4)
    assert "(when the warm-up ends; from epoch 3 on, as" in render.milestones_text([0.5, 2], spe=10, warmup=1)
    for m, spe in ((0.5, 1), (2.9, 4), (2.5, 4), (1, 19), (0.3, 7)):
        sched = Schedule(name="multistep", milestones=[m], gamma=0.1)
        first = next(s for s in range(10 * spe) if lr_factor(s, spe, 10, sched, 0.1) < 1.0)
        said = render.milestones_text([m], spe=spe)
        epoch, within = divmod(first, spe)
        assert (f"from epoch {epoch + 1} on" if within == 0 else f"part-way through epoch {epoch + 1} (its step {within + 1})") in said
    # The schedule itself: milestone 1 leaves epoch 1's steps at the base lr and lowers epoch 2's.
    s = Schedule(name="multistep", milestones=[1], gamma=0.1)
    assert lr_factor(9, 10, 3, s, 0.1) == 1.0 and lr_factor(10, 10, 3, s, 0.1) == pytest.approx(0.1)


def test_seeding_is_read_back_and_records_without_it() -> None:
    audit = golden_audit()
    text = text_of(audit)
    assert "| Seed (requested) / `torch.initial_seed()` read back | 0 / 0 |" in text
    assert "Python's random, NumPy's global generator, torch (CPU and every CUDA device) were seeded with 0." in text
    big = golden_audit()
    big["determinism"]["seed"] = 2**32 + 5
    assert ("were seeded with 4294967301 (NumPy's global generator takes a 32-bit seed: 4294967301 mod 2^32 = 5)."
            in text_of(big))  # fmt: skip
    assert checklist_line(text, "Seeded with the spec's seed (torch's read back)").startswith("- [x]")
    audit["determinism"]["torch_initial_seed"] = 12345  # something re-seeded torch: contrary fact
    assert checklist_line(text_of(audit), "Seeded with the spec's seed (torch's read back)").startswith("- [ ]")
    del audit["determinism"]["torch_initial_seed"], audit["determinism"]["seeded"]  # an older record
    old = text_of(audit)
    assert "| Seed (requested) / `torch.initial_seed()` read back | 0 / n/a |" in old
    assert "which generators were seeded is not recorded in this record" in old
    line = checklist_line(old, "Seeded with the spec's seed (torch's read back)")
    assert line.startswith("- [ ]") and "torch's seed was not read back in this record" in line


def test_official_and_unofficial_provenance() -> None:
    text = text_of(cifar_audit([0.2470, 0.2435, 0.2616]))
    assert "| data_batch_1 | `ok` |" in text
    assert checklist_line(text, "Data provenance official").startswith("- [x]")
    text = text_of(cifar_audit([0.2470, 0.2435, 0.2616], official=False))
    assert "| data_batch_3 | **md5 mismatch** |" in text
    assert "**NOT the official CIFAR-10: data_batch_3 md5 mismatch**" in text
    assert checklist_line(text, "Data provenance official").startswith("- [ ]")
    synthetic = text_of(golden_audit())
    assert checklist_line(synthetic, "Data provenance official").startswith("- [ ]")


def test_each_file_read_is_shown_with_its_sha256_as_found() -> None:
    """The README walk-through: data.files gave only "md5 mismatch", so a copy's own SHA256SUMS could
    not be matched with the sheet; a record from before data.file_sha256 says it is not recorded."""
    from auditor.audit import record_problem

    audit = cifar_audit([0.2470, 0.2435, 0.2616], official=False)
    assert "| data_batch_3 | **md5 mismatch** | not recorded |" in text_of(audit)
    audit["data"]["files"]["data_batch_5"] = "missing"
    audit["data"]["file_sha256"] = {name: f"{i:064x}" for i, name in enumerate(sorted(audit["data"]["files"])) if name != "data_batch_5"}
    text = text_of(audit)
    for name, status in audit["data"]["files"].items():
        shown = f"`{audit['data']['file_sha256'][name]}`" if name != "data_batch_5" else "-"
        assert f"| {name} | {'`ok`' if status == 'ok' else f'**{status}**'} | {shown} |" in text
    audit["data"]["file_sha256"]["data_batch_1"] = "0" * 63  # not a sha256: refused as a run never writes it
    assert "data.file_sha256" in (record_problem(audit) or "")


@pytest.mark.parametrize("case", ["cifar copy", "synthetic"])
def test_an_official_flag_edited_against_the_file_report_ticks_nothing(case: str) -> None:
    """A user test: data.official and metrics.official_data set to true on a run of the subset (or
    of synthetic data): check passed, the box was ticked and the front matter said `type: cifar10`."""
    audit = cifar_audit([0.2470, 0.2435, 0.2616], official=False) if case == "cifar copy" else golden_audit()
    audit["data"]["official"] = audit["metrics"]["official_data"] = True
    text = text_of(audit)
    line = checklist_line(text, "Data provenance official")
    why = "data.files reports data_batch_3 md5 mismatch" if case == "cifar copy" else 'data.dataset is "synthetic"'
    assert line.startswith("- [ ]") and f"audit.json was edited after the run: data.official true, but {why}" in line
    assert f"audit.json disagrees with what the run measured: data.official true, but {why}" in text
    assert f"**audit.json was edited after the run: data.official true, but {why}** (" in text  # the provenance row
    assert "official CIFAR-10 (" not in text
    if case == "cifar copy":
        assert front_matter(text)["model-index"][0]["results"][0]["dataset"]["type"] == "cifar10-unofficial"


def test_evaluate_command_only_for_a_cifar10_run() -> None:
    cifar = text_of(cifar_audit([0.2470, 0.2435, 0.2616]))
    assert "auditor evaluate " in cifar and "--data-root DIR" in cifar
    synthetic = text_of(golden_audit())
    assert "auditor evaluate " not in synthetic.split("## Reproduce", 1)[1].split("## Criteria", 1)[0]
    assert "# (trained on synthetic data: `auditor evaluate` reads CIFAR-10" in synthetic


def test_diverged_run_is_unmistakable(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, diverged_audit())
    text = render_run(run_dir).read_text()
    lines = text.split("\n---\n", 1)[1].lstrip().splitlines()
    assert lines[0] == "# Reproducibility sheet: smoke (FAIL: TRAINING DIVERGED)"
    assert lines[2].startswith("**Verdict: FAIL** · 1/4 criteria passed · status: **DIVERGED**")
    banner = "> [!CAUTION]\n> **FAIL — TRAINING DIVERGED.** The training loss became non-finite at global step 7"
    assert banner in text and "training stopped after 0 completed epochs of 3 planned." in text
    assert "Why it failed: training diverged; criterion `best_val_acc >= 0.5` failed" in text
    assert "No checkpoint was recorded." in text
    assert "no best checkpoint was written, so there is nothing to evaluate" in text
    assert "Learning curves not drawn: no completed epoch to plot" in text
    assert not (run_dir / "figures" / "learning_curves.png").exists()
    # the time and images of the steps up to the divergence count, and the sheet says so
    assert "(the training steps' wall time, summed over the epochs, the steps of the epoch that diverged included; excludes" in text
    assert "the steps of the epoch that diverged" not in text_of(golden_audit())
    assert checklist_line(text, "Training finished without divergence").startswith("- [ ]")
    assert checklist_line(text, "Criteria all pass").startswith("- [ ]")
    assert checklist_line(text, "Checkpoint digests recorded").startswith("- [ ]")
    selection = checklist_line(text, "No model selection on the test set")  # nothing was selected at all
    assert selection.startswith("- [ ]") and "no checkpoint was selected" in selection


def test_a_broken_model_with_no_checkpoint_names_the_model_measured_and_no_test_figures() -> None:
    audit = diverged_audit()
    audit["measurements"]["nonfinite"] = ["conv1.weight", "fc.bias"]  # the weights training left
    text = text_of(rehash(audit), NO_FIGURES)
    assert ("**Broken model:** the model as training left it (no checkpoint was selected) holds inf or NaN in 2 tensors "
            "(`conv1.weight`, `fc.bias`): its outputs are not numbers, and no test figures were measured.") in text
    assert "None holds" not in text and "describe no working model" not in text
    assert "test accuracy not measured" in text and "not reported (broken model)" not in text
    line = checklist_line(text, "Training finished without divergence")
    assert line.startswith("- [ ]") and "but the model as training left it (no checkpoint was selected) holds" in line


def test_verification_present_renders_evidence_and_ticks_box() -> None:
    text = text_of(verified_audit())
    ev = section(text, "Determinism evidence")
    assert ("| Verdict | **bitwise**: every compared loss, metric, result and checkpoint entry is bit-for-bit "
            "identical between the runs |") in ev  # fmt: skip
    assert "| Runs compared | `a: reference`, `b: twin`, `k: killed after step 17 (SIGKILL)," in ev
    assert "| Budget | 38 steps (2 epochs x 19 steps), checkpoint every 4 steps |" in ev
    each = verified_audit()
    each["verification"]["budget"]["checkpoint_every_steps"] = 1
    assert "| Budget | 38 steps (2 epochs x 19 steps), checkpoint every step |" in text_of(each, NO_FIGURES)
    stopped = verified_audit()
    for pair in stopped["verification"]["pairs"]:
        pair["losses"] |= {"steps_a": 19, "steps_b": 19}  # run A stopped early after 19 of the 38 steps
    assert ("| Budget | 38 steps (2 epochs x 19 steps), checkpoint every 4 steps; run A trained 19 of them (early "
            "stopping or a divergence ended it before the budget's end) |") in section(text_of(stopped, NO_FIGURES), "Determinism evidence")
    assert ("| Runs A-B | checkpoint entries 2/2 identical; losses of all 38 steps equal; per-epoch metrics equal |"
            in ev)  # fmt: skip
    # a record written before the count of differing steps, and the results after training, were kept
    assert ("| Runs A-K | checkpoint entries 1/2 identical; losses differ from step 18; "
            "per-epoch metrics differ; largest difference 2e-07 (over losses, metrics and checkpoint entries) |") in ev  # fmt: skip
    counted = verified_audit()
    counted["verification"]["pairs"][1]["losses"]["steps_differ"] = 2
    assert "| Runs A-K | checkpoint entries 1/2 identical; losses of 2 of 38 steps differ, first at step 18; " in (
        text_of(counted))  # fmt: skip
    results = verified_audit()
    results["verification"]["pairs"][0]["results"] = {"equal": True, "differences": []}
    results["verification"]["pairs"][1]["results"] = {
        "equal": False, "differences": [{"metric": "test_acc", "a": 0.5, "b": 0.51, "abs_diff": 0.01}]}  # fmt: skip
    shown = text_of(results)
    assert "| First divergence | none: the runs agree at every compared point |" in shown  # verdict bitwise
    elsewhere = copy.deepcopy(results)
    elsewhere["verification"]["verdict"] = "diverged"
    elsewhere["verification"]["pairs"][1]["losses"] = {"steps_a": 38, "steps_b": 38, "equal": True}
    assert "| First divergence | none in the per-step losses: the runs differ elsewhere (see the rows above) |" in (
        text_of(elsewhere))  # fmt: skip
    assert "per-epoch metrics equal; results after training equal |" in shown
    assert ("per-epoch metrics differ; results after training differ (test_acc); largest difference 2e-07 "
            "(over losses, metrics, results and checkpoint entries) |") in shown  # fmt: skip
    assert "| First divergence | none: the runs agree at every compared point |" in ev
    assert "| Device | cpu |" in ev  # evidence written before the threads and torch version were
    scoped = verified_audit()
    scoped["verification"] |= {"threads": 2, "torch": "2.9.0"}
    assert "| Device | cpu, 2 threads, torch 2.9.0 |" in text_of(scoped)
    unweighed = verified_audit()  # no last.pt in either run: nothing to call a difference over
    unweighed["verification"]["pairs"][1] |= {"tensors_compared": 0, "max_abs_diff": 0.0}
    unweighed["verification"]["pairs"][1]["losses"] = {"equal": True, "steps_a": 38, "steps_b": 38}
    unweighed["verification"]["pairs"][1]["metrics"] = {"equal": True}
    assert ("| Runs A-K | checkpoint entries not compared (no last checkpoint); losses of all 38 steps equal; per-epoch "
            "metrics equal |") in text_of(unweighed)  # fmt: skip
    assert "| `model.fc.weight` | `abababababababab` | `abababababababab` | `abababababababab` | 0 | yes |" in ev
    assert "- both runs used 2 threads" in ev
    assert "not verified" not in ev
    assert checklist_line(text, "Reproducibility verified by re-running").startswith("- [x]")
    assert "determinism off" not in checklist_line(text, "Reproducibility verified by re-running")
    off = verified_audit()
    off["determinism"]["requested"] = False  # the user test: ticked without a word in the checklist
    line = checklist_line(text_of(off), "Reproducibility verified by re-running")
    assert line.startswith("- [x]") and line.endswith(", with determinism off: the runs agreed on this machine, "
                                                      "without the flags that make them agree elsewhere")  # fmt: skip
    within = verified_audit("tolerance")  # a user test: the tick read as bit-for-bit agreement
    within["verification"] |= {"allow_tolerance": True, "tolerance": 0.001, "passed": True}
    line = checklist_line(text_of(within), "Reproducibility verified by re-running")
    assert line.startswith("- [x]") and "; not bit for bit: every difference within verify.tolerance 0.001, as allowed" in line
    assert "not bit for bit" not in checklist_line(text, "Reproducibility verified by re-running")


def test_a_verification_its_own_evidence_contradicts_is_not_ticked() -> None:
    """A user test: a diverged verification edited to bitwise, each pair's `equal` with it, was
    ticked "Reproducibility verified" below its own "checkpoint entries 26/87 identical"."""
    audit = verified_audit()
    audit["environment"]["auditor"] = "0.4.0"  # held to verify's block as it writes it
    same = {"equal": True, "max_abs_diff": 0.0, "tensors_compared": 2, "tensors_equal": 2, "top_tensors": [],
            "losses": {"steps_a": 38, "steps_b": 38, "equal": True, "first_divergence": None},
            "metrics": {"equal": True}, "results": {"equal": True}}  # fmt: skip
    audit["verification"] |= {"tolerance": 0.0, "kill_signal": "SIGKILL", "resumed_from": "step-00000016.pt",
                              "first_divergence": None, "top_tensors": [],
                              "pairs": [{"pair": "a-b", **same}, {"pair": "a-k", **same}]}  # fmt: skip
    label = "Reproducibility verified by re-running"
    assert checklist_line(text_of(audit), label).startswith("- [x]")
    audit["verification"]["pairs"][1]["tensors_equal"] = 1  # one checkpoint entry differs; `equal` left true
    text = text_of(audit)
    line = checklist_line(text, label)
    assert line.startswith("- [ ]") and line.endswith(
        "as stored, which the record's own evidence contradicts (see the warning above)"), line
    assert ('verification pair "a-k": equal true, but its losses, metrics, results and checkpoint entries (1/2 '
            "identical) give false") in " ".join(text.split())


def test_a_verified_sheet_gives_the_command_that_repeats_its_verification() -> None:
    audit = verified_audit()
    assert "Command (repeats" not in text_of(audit)  # a record from before the command was kept
    audit["verification"] |= {"command": "auditor verify specs/x.yaml --steps 6 --kill-at 3", "cwd": "/home/u/proj"}
    ev = section(text_of(audit), "Determinism evidence")
    assert ("| Command (repeats this verification) | `auditor verify specs/x.yaml --steps 6 --kill-at 3` in "
            "`/home/u/proj` |") in ev  # fmt: skip


def test_a_verification_recorded_in_an_older_shape_still_renders() -> None:
    audit = verified_audit()
    ver = audit["verification"]
    ver["budget"] = {"steps": 40}
    del ver["pairs"]
    for t in ver["tensors"]:
        del t["sha256_k"]
    ev = section(text_of(audit), "Determinism evidence")
    assert "| Budget | steps: 40 |" in ev and "| `model.fc.weight` | `abababababababab` | `abababababababab` | n/a |" in ev


def test_verification_absent_says_how_to_verify() -> None:
    text = text_of(golden_audit())
    ev = section(text, "Determinism evidence")
    assert "**This run was not verified.**" in ev
    assert "auditor verify /runs/golden/reports/smoke/spec.resolved.yaml --out /runs/golden" in ev
    assert checklist_line(text, "Reproducibility verified by re-running").startswith("- [ ]")


def test_verification_diverged_is_not_ticked() -> None:
    text = text_of(verified_audit("diverged"))
    ev = section(text, "Determinism evidence")
    assert "> [!CAUTION]\n> Verification verdict **diverged**" in ev
    assert "| First divergence | step 12 (tensor: model.fc.weight) |" in ev
    assert "| 0.003 | no |" in ev
    assert checklist_line(text, "Reproducibility verified by re-running").startswith("- [ ]")


@pytest.mark.parametrize(("verdict", "allow", "gated", "warned"), [
    ("diverged", False, False, True), ("tolerance", False, False, True), ("tolerance", True, False, False),
    ("bitwise", False, False, False), ("diverged", False, True, False),
])  # fmt: skip
def test_a_failed_verification_no_criterion_gates_is_said_under_the_verdict(
    verdict: str, allow: bool, gated: bool, warned: bool
) -> None:
    """A user test: a diverged verification left run A's sheet at a bare 'Verdict: PASS' near its top
    (the shipped specs gate no `reproducible`); the evidence was in a section far below."""
    audit = verified_audit(verdict)
    audit["verification"]["allow_tolerance"] = allow
    if gated:  # the criterion fails the sheet itself, and says why
        audit["criteria"].append({"metric": "reproducible", "expr": "== bitwise", "op": "==", "threshold": "bitwise",
                                  "measured": verdict, "passed": False, "detail": ""})  # fmt: skip
    head = text_of(audit).split("## Architecture")[0]
    note = (f"> [!WARNING]\n> `auditor verify` did not show this training reproducible (verdict: {verdict}), and no "
            "criterion gates `reproducible`, so a PASS does not cover it (verify's exit code does)")
    assert (note in head) is warned


@pytest.mark.parametrize(("allow", "banner"), [(False, True), (True, False)])
def test_tolerance_is_a_failed_verification_unless_the_spec_allows_it(allow: bool, banner: bool) -> None:
    audit = verified_audit("tolerance")
    audit["verification"]["allow_tolerance"] = allow
    text = text_of(audit)
    caution = "> Verification verdict **tolerance**: the runs differ within verify.tolerance, but verify.allow_tolerance"
    assert (caution in section(text, "Determinism evidence")) is banner
    assert checklist_line(text, "Reproducibility verified by re-running").startswith("- [ ]" if banner else "- [x]")


def test_criteria_table_never_rounds_a_failure_into_a_pass() -> None:
    audit = golden_audit()
    row = audit["criteria"][0]  # best_val_acc >= 0.5
    row.update(measured=0.49996, passed=False, detail="0.49996 < 0.5")
    assert "| `best_val_acc` | `>= 0.5` | 0.49996 | **FAIL** |" in text_of(audit)  # not 0.5000 FAIL
    row["added_later"] = "a field of a newer record"
    assert "| `best_val_acc` | `>= 0.5` | 0.49996 | **FAIL** |" in text_of(audit)
    for broken in ({"threshold": None}, {"threshold": "abc"}, {"op": "=~"}):  # hand-edited: shown, never a crash
        assert "| `best_val_acc` | `>= 0.5` | 0.5000 | **FAIL** |" in text_of(audit | {"criteria": [row | broken]})


def test_a_latency_criterion_names_its_median_and_a_batch_size_other_than_one() -> None:
    audit = golden_audit()
    assert audit["measurements"]["latency"]["batch_size"] == 1
    assert "| `latency_ms` (median) | `< 50` |" in text_of(audit)  # the statistic gated, beside its p95
    audit["measurements"]["latency"]["batch_size"] = 8
    text = text_of(audit)
    assert "| `latency_ms` (median, batch 8) | `< 50` |" in text
    assert "| `best_val_acc` | `>= 0.5` |" in text  # the other criteria are not batch figures


def test_long_history_is_truncated_to_first_and_last_ten() -> None:
    audit = golden_audit()
    base = audit["training"]["history"][0]
    audit["training"]["history"] = [dict(base, epoch=e) for e in range(1, 41)]
    audit["training"].update(epochs_run=40, best_epoch=40)
    text = text_of(audit)
    rows = [ln for ln in section(text, "Results").splitlines() if ln.startswith("| ")]
    epochs = [ln.split("|")[1].strip() for ln in rows]
    assert "| 10 |" in "\n".join(rows) and "| 31 |" in "\n".join(rows)
    assert not any(e in ("11", "30", "20") for e in epochs)
    assert "| … | (20 epochs omitted; all rows in metrics.csv) |" in text
    assert "| **40** (best) |" in text


# --- checklist: never ticked without the fact ---------------------------------------------------


def test_golden_checklist_ticks() -> None:
    text = text_of(golden_audit())
    ticked = {
        "Seeded with the spec's seed (torch's read back)": True, "Determinism flags in force (read back)": True,
        "Data provenance official": False, "No model selection on the test set": True,
        "Checkpoint digests recorded": True, "Resolved spec hash recorded": True, "Git tree clean": True,
        "Environment captured": True, "Latency measured with warm-up": True,
        "Reproducibility verified by re-running": False, "Training finished without divergence": True,
        "Criteria all pass": True,
    }  # fmt: skip
    for label, ok in ticked.items():
        assert checklist_line(text, label).startswith("- [x]" if ok else "- [ ]"), label


def test_checklist_unticks_on_contrary_facts() -> None:
    audit = golden_audit()
    audit["environment"]["git_dirty"] = True
    audit["determinism"]["cudnn_benchmark"] = True
    audit["spec_hash"] = "0" * 64
    audit["criteria"] = []
    text = text_of(audit)
    assert checklist_line(text, "Git tree clean").startswith("- [ ]")
    assert "uncommitted changes" in checklist_line(text, "Git tree clean")
    assert checklist_line(text, "Determinism flags in force (read back)").startswith("- [ ]")
    assert "flags read back are not all deterministic" in text
    assert "does NOT match" in checklist_line(text, "Resolved spec hash recorded")
    assert checklist_line(text, "Resolved spec hash recorded").startswith("- [ ]")
    banner = ("> [!CAUTION]\n> audit.json's resolved spec does not match its spec_hash (`000000000000`): the record "
              "was edited after the run.")
    assert banner in text and text.index(banner) < text.index("## ")  # at the top, not only in the checklist
    assert "resolved spec does not match its spec_hash" not in text_of(golden_audit())
    assert render.spec_edited_text("").startswith("audit.json's resolved spec does not match its spec_hash (none "
                                                  "recorded)")  # fmt: skip
    assert checklist_line(text, "Criteria all pass").startswith("- [ ]")
    assert "No criteria are defined in the spec, so nothing was gated" in text
    audit = golden_audit()
    audit["environment"]["git_commit"] = None
    audit["environment"]["git_dirty"] = None
    assert checklist_line(text_of(audit), "Git tree clean").startswith("- [ ]")


@pytest.mark.parametrize(
    ("config", "cuda_up_before", "ticked"),
    [(":4096:8", False, True), (":16:8", False, True), (None, False, False), (":0:0", False, False),
     (":4096:8", True, False)],
)
def test_cuda_flags_box_needs_a_cublas_config_torch_accepts_set_in_time(
    config: str | None, cuda_up_before: bool, ticked: bool
) -> None:
    audit = golden_audit()
    audit["environment"]["device"] = "cuda:0"
    audit["determinism"].update(cublas_workspace_config=config, cuda_initialized_before=cuda_up_before)
    line = checklist_line(text_of(audit), "Determinism flags in force (read back)")
    assert line.startswith("- [x]" if ticked else "- [ ]")
    assert ("may not apply" in line) is cuda_up_before
    assert ("deterministic cuBLAS needs :4096:8 or :16:8" in line) is (not ticked and not cuda_up_before)
    # A user test: an unset variable read "CUBLAS_WORKSPACE_CONFIG=None".
    assert ("CUBLAS_WORKSPACE_CONFIG unset (the run sets it only with determinism on)" in line) is (config is None)
    assert "None" not in line


@pytest.mark.parametrize(
    ("dirty", "changes", "text"),
    [
        (False, {"tracked": 0, "untracked": 0}, "no uncommitted changes; untracked files in the tool's output folders under --out not counted"),
        (True, {"tracked": 2, "untracked": 0}, "2 changed tracked files; untracked files in the tool's output folders"),
        (True, {"tracked": 1, "untracked": 3}, "1 changed tracked file and 3 untracked paths; untracked files in the tool's"),
        (True, {"tracked": 0, "untracked": 1}, "commit `0123456789ab`, 1 untracked path; untracked"),
        (True, None, "uncommitted changes or untracked files"),  # recorded before the counts were
        (False, None, "commit `0123456789ab`, no uncommitted changes"),
    ],
)  # fmt: skip
def test_git_state_says_what_is_uncommitted(dirty: bool, changes: dict | None, text: str) -> None:
    audit = golden_audit()
    audit["environment"].update(git_dirty=dirty, git_changes=changes)
    if changes is None:
        del audit["environment"]["git_changes"]
    line = checklist_line(text_of(audit), "Git tree clean")
    assert line.startswith("- [ ]" if dirty else "- [x]") and text in line


def test_cuda_latency_needs_sync() -> None:
    audit = golden_audit()
    audit["environment"].update(device="cuda:0", gpu={"name": "NVIDIA H100", "memory_total_mb": 81559.0,
                                                      "driver": "580.1", "source": "nvml"})  # fmt: skip
    lat = audit["measurements"]["latency"]
    lat.update(device="cuda:0", device_name="NVIDIA H100", synchronized=True,
               method="eager model ...; torch.cuda.synchronize() before and after each")  # fmt: skip
    audit["measurements"]["memory"]["cuda_max_allocated_mb"] = 123.456
    text = text_of(audit)
    assert checklist_line(text, "Latency measured with warm-up and device sync").startswith("- [x]")
    assert "| CUDA max allocated (whole run) | 123.5 MB |" in text
    assert "| CUDA max reserved by torch's allocator (whole run; without the CUDA context) | not recorded |" in text
    audit["measurements"]["memory"]["cuda_max_reserved_mb"] = 160.0
    assert "| CUDA max reserved by torch's allocator (whole run; without the CUDA context) | 160.0 MB |" in text_of(audit)
    assert "| GPU | NVIDIA H100, 81,559.0 MB, driver 580.1 (via nvml) |" in text
    lat["synchronized"] = False  # the loop's own record decides, not the method text
    assert checklist_line(text_of(audit), "Latency measured with warm-up and device sync").startswith("- [ ]")


# --- formatting helpers -------------------------------------------------------------------------


def test_filters() -> None:
    f = render.FILTERS
    assert f["pct"](0.98666) == "98.67%" and f["pct"](None) == "n/a"
    assert f["thousands"](11173962) == "11,173,962"
    assert f["millions"](11173962) == "11.17 M" and f["millions"](75290) == "0.0753 M"
    assert f["bytes_mb"](643025) == "0.64 MB (643,025 bytes)"
    assert f["ms"](1.19394) == "1.194 ms"
    assert f["num"](0.0005) == "0.0005" and f["num"](3.0) == "3" and f["num"](1e-06) == "1e-06"
    assert f["yesno"](True) == "yes" and f["yesno"](None) == "unknown"
    assert f["short_sha"]("0123456789abcdef") == "0123456789ab"
    assert f["cudnn_version"](92400) == "9.24.0 (92400)" and f["cudnn_version"](8902) == "8.9.2 (8902)"
    assert f["seconds"](3725.0) == "3,725.0 s (1 h 02 min)"
    for s in ("1e5", "true", "off", "123", "a: b", "x #y", "", "synthetic (auditor)", "resnet8", "N"):
        assert yaml.safe_load(f"k: {f['yaml_scalar'](s)}") == {"k": s}, s
    assert f["yaml_scalar"]("1e5") == '"1e5"' and f["yaml_scalar"]("resnet8") == "resnet8"
    assert f["yaml_scalar"](0.96) == "0.96"
    assert f["code"]("a`b") == "`` a`b ``"
    assert f["md_table"]([["a|b", "c\nd"]], ["x", "y"], "lr") == "| x | y |\n|:---|---:|\n| a\\|b | c d |"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda a: a["spec"].update(criteria=["test_acc >= 0.5"]), "spec.criteria"),
        (lambda a: a.update(metric_notes="x"), "metric_notes"),
        (lambda a: a["run"].pop("name"), "run.name"),
        (lambda a: a["training"].update(history="x"), "training.history"),
        (lambda a: a.update(verification="x"), "verification"),
        # The user test: a string "false" (or 1e308) had ticked "Data provenance official" and shown "benchmark yes"
        (lambda a: a["data"].update(official="false"), "data.official"),
        (lambda a: a["data"].update(official=1e308), "data.official"),
        (lambda a: a["determinism"].update(cudnn_benchmark="false"), "determinism.cudnn_benchmark"),
        (lambda a: a["determinism"].update(requested=1), "determinism.requested"),
        (lambda a: a["determinism"].update(inductor_deterministic="yes"), "determinism.inductor_deterministic"),
        # A user test: `"false"` had shown "channels_last | yes", and `0` an unticked box beside "no uncommitted changes".
        (lambda a: a["measurements"]["latency"].update(channels_last="false"), "measurements.latency.channels_last"),
        (lambda a: a["measurements"]["latency"].update(synchronized=0), "measurements.latency.synchronized"),
        (lambda a: a["environment"].update(git_dirty="false"), "environment.git_dirty"),
        (lambda a: a["environment"].update(git_dirty=0), "environment.git_dirty"),
        (lambda a: a["environment"].update(cpu_bf16_native="no"), "environment.cpu_bf16_native"),
        (lambda a: a["training"].update(layout={"input_channels_last": "true", "weights_channels_last": True}),
         "training.layout.input_channels_last"),
        (lambda a: a["training"].update(layout={"input_channels_last": True, "weights_channels_last": 1}),
         "training.layout.weights_channels_last"),
        (lambda a: a["training"]["host_memory"].update(large_blocks_from_heap="false"),
         "training.host_memory.large_blocks_from_heap"),
    ],
)
def test_malformed_nested_fields_are_bad_input_for_render_and_check(
    tmp_path: Path, capsys: pytest.CaptureFixture, edit: Any, named: str
) -> None:
    from auditor.cli import main

    audit = golden_audit()
    edit(audit)
    run_dir = write_run_dir(tmp_path, audit)
    for command in (["render", str(run_dir)], ["check", str(run_dir), "--junit", str(tmp_path / "j.xml")]):
        assert main(command) == 2, command
        said = f"auditor {command[0]}: error: {run_dir / 'audit.json'}: {fields_problem(audit, [named])}"
        assert capsys.readouterr().err.startswith(said) and named in said


def test_a_wrongly_typed_value_deep_in_the_record_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from auditor.cli import main

    def edited(where: str, edit: Callable[[dict], None]) -> tuple[Path, str]:
        audit = golden_audit()
        edit(audit)
        run_dir = write_run_dir(tmp_path / where, audit)
        assert main(["render", str(run_dir)]) == 2  # the runner's own render would raise
        assert not (run_dir / "REPRODUCIBILITY.md").exists()
        return run_dir, capsys.readouterr().err

    cannot = "malformed audit record, cannot render the sheet ({}: "
    # A user test: these failed inside the renderer (its TypeError quoted, no field named), and `check` gated on them.
    for field, edit in [("measurements.latency.median_ms", lambda a: a["measurements"]["latency"].update(median_ms="fast")),
                        ("data.test_in_train", lambda a: a["data"].update(test_in_train="x")),
                        ("environment.command", lambda a: a["environment"].update(command=None)),
                        ("training.history[1].lr, training.history[1].epoch_s",
                         lambda a: a["training"]["history"][1].update(lr=None, epoch_s="1")),
                        ("checkpoints.best.bytes", lambda a: a["checkpoints"]["best"].update(bytes="644 kB"))]:
        run_dir, err = edited(field, edit)
        said = f"{run_dir / 'audit.json'}: {fields_problem(json.loads((run_dir / 'audit.json').read_text()), field.split(', '))}\n"
        assert err == f"auditor render: error: {said}", err
        assert main(["check", str(run_dir)]) == 2 and capsys.readouterr().err == f"auditor check: error: {said}"
    run_dir, err = edited("b", lambda a: a["measurements"]["test"]["confusion"].__setitem__(5, [0]))  # a row cut short
    assert "malformed audit record: measurements.test.confusion = [[" in err, err
    run_dir, err = edited("c", lambda a: a["model"].update(stem="3x3 conv (16 ch), stride 0, no max-pool"))
    assert cannot.format("ZeroDivisionError") in err, err  # a division by the stride
    assert "Traceback" not in err


def test_no_single_edited_field_fails_inside_the_renderer() -> None:
    """A user test: a field of another kind (a string for a count, null for a command) failed inside
    the renderer, whose Python error the message quoted without naming the field, and `check` gated
    on the record. Every field of the golden record, set to a value of each JSON kind or deleted, is
    refused naming it (`record_problem`, or an edited spec validation refuses), or the sheet renders
    (a deleted run.measure_time_s had failed formatting, a TypeError naming no field)."""
    from auditor.audit import record_problem

    base, crashed, deleted = golden_audit(), [], object()
    for path in field_paths(base, per_list=2):
        for value in ("x", None, -1, 0, 1.5, True, [], {}, deleted):
            audit = copy.deepcopy(base)
            node = audit
            for key in path[:-1]:
                node = node[key]
            if value is deleted:
                node.pop(path[-1])
            else:
                node[path[-1]] = value
            if record_problem(audit) is not None:
                continue
            try:
                render._refuse_invalid_edited_spec(Path("run"), audit)
                render_text(audit, FIGURES)
            except (InvalidInput, KeyError, jinja2.UndefinedError):  # said, naming the file and the field
                continue
            except Exception as exc:  # noqa: BLE001 - what a user would see quoted
                shown = "deleted" if value is deleted else f"= {json.dumps(value)}"
                crashed.append(f"{'.'.join(map(str, path))} {shown}: {type(exc).__name__}: {exc}")
    assert not crashed, "\n".join(crashed[:20])


def test_a_record_lacking_a_figure_the_sheet_formats_is_refused_naming_it(tmp_path: Path) -> None:
    """The deleted field had failed inside a formatting filter: 'unsupported format string passed
    to StrictUndefined.__format__', which names no field."""
    audit = golden_audit()
    del audit["run"]["measure_time_s"]
    run_dir = write_run_dir(tmp_path, audit)
    with pytest.raises(InvalidInput, match=r"cannot render the sheet: it has no field 'measure_time_s' \(run.measure_time_s\) where the sheet"):
        render_run(run_dir)
    assert not (run_dir / "REPRODUCIBILITY.md").exists()


@pytest.mark.parametrize("where", ["training", "measurements.latency"])
def test_a_cpu_share_without_its_window_is_refused_naming_it(tmp_path: Path, where: str) -> None:
    """A review: on a busy machine's record, the window deleted failed inside the renderer
    ('>' not supported), a fault of the renderer's by its message."""
    from auditor.audit import record_problem

    audit = golden_audit()
    block = audit
    for key in where.split("."):
        block = block[key]
    block |= {"other_cpu_share": 0.3, "other_cpu_window_s": 0.5}
    assert record_problem(audit) is None
    render_text(audit, FIGURES)  # a busy machine's record renders
    for value in (None, "absent"):
        if value is None:
            block["other_cpu_window_s"] = None
        else:
            del block["other_cpu_window_s"]
        assert record_problem(audit) == (f"malformed audit record: {where}.other_cpu_window_s = null (not as a run writes it)"
                                         if value is None else f"incomplete audit record: missing {where}.other_cpu_window_s")


@pytest.mark.parametrize("read_only", [".", "figures"])
def test_a_folder_that_cannot_be_written_changes_neither_sheet_nor_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: str
) -> None:
    """As on a read-only mount (chmod would not stop root), the report folder or its figures/ on
    another mount: the write fails with EROFS, and the earlier sheet and figures stay, together."""
    from auditor import fileio

    run_dir = write_run_dir(tmp_path, golden_audit())
    render_run(run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "audit.json"}
    audit = golden_audit()
    audit["training"]["history"][0]["train_loss"] += 0.5  # another figure and another sheet
    (run_dir / "audit.json").write_text(json.dumps(audit))
    real = fileio.tempfile.mkstemp

    def mkstemp(*args: Any, dir: str | None = None, **kwargs: Any) -> tuple[int, str]:
        if dir is not None and Path(dir) == (run_dir / read_only).resolve(strict=False).absolute():
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    with pytest.raises(InvalidInput, match="cannot write the sheet or its figures: .*Read-only file system"):
        render_run(run_dir)
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != "audit.json"}
    assert after == before


def test_a_folder_where_the_figure_goes_leaves_the_earlier_sheet(tmp_path: Path) -> None:
    """Found before any file is put in place: the sheet is not replaced beside a figure that could not be."""
    run_dir = write_run_dir(tmp_path, golden_audit())
    render_run(run_dir)
    sheet = (run_dir / "REPRODUCIBILITY.md").read_bytes()
    png = run_dir / "figures" / "learning_curves.png"
    png.unlink()
    (png / "mine").mkdir(parents=True)
    audit = golden_audit()
    audit["training"]["history"][0]["train_loss"] += 0.5
    (run_dir / "audit.json").write_text(json.dumps(audit))
    with pytest.raises(InvalidInput, match="learning_curves.png: a folder is where this file goes"):
        render_run(run_dir)
    assert (run_dir / "REPRODUCIBILITY.md").read_bytes() == sheet and (png / "mine").is_dir()
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_a_file_where_the_figures_go_is_named(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, golden_audit())
    (run_dir / "figures").write_text("mine\n")
    with pytest.raises(InvalidInput, match=f"cannot write the sheet or its figures: {run_dir / 'figures'} is a file, not a folder"):
        render_run(run_dir)
    assert (run_dir / "figures").read_text() == "mine\n" and not (run_dir / "REPRODUCIBILITY.md").exists()


def test_a_broken_selected_model_is_said_and_its_accuracy_not_published() -> None:
    audit = golden_audit()
    audit["measurements"]["nonfinite"] = ["bn1.running_var", "layer1.0.bn1.running_var"]
    audit["metrics"]["test_acc"] = None  # as the runner records it (runner._metrics)
    audit["metric_notes"]["test_acc"] = "best.pt holds non-finite values in 2 tensors (e.g. bn1.running_var): ..."
    text = text_of(audit)
    assert "> **Broken model:** best.pt holds inf or NaN in 2 tensors (`bn1.running_var`, `layer1.0.bn1.running_var`)" in text
    assert "| Test accuracy | not reported: best.pt holds non-finite values in 2 tensors" in text
    assert "test accuracy not reported (broken model)." in text
    assert "- [ ] **Training finished without divergence**: status completed, but the selected model holds inf or NaN in 2 tensors" in text
    assert front_matter(text)["model-index"][0]["results"][0].get("metrics") in (None, [])  # nothing published
    assert "Broken model" not in text_of(golden_audit())


def test_the_sheet_says_whose_method_descriptions_it_prints() -> None:
    audit = golden_audit()
    audit["environment"]["auditor"] = auditor.__version__  # a run of this renderer's version
    assert "(the run itself used" not in text_of(audit)
    audit["environment"]["auditor"] = "0.0.9"
    assert f"those of auditor {auditor.__version__} (the run itself used auditor 0.0.9);" in text_of(audit)


AMP_ROW = "| Automatic mixed precision (`train.amp`) | {} |"
CL_ROW = "| channels_last (`train.channels_last`) | {} |"


def test_amp_and_channels_last_rows_read_back_and_flag_a_mismatch() -> None:
    audit = golden_audit()  # amp off, channels_last no
    audit["training"]["layout"] = {"logits_dtype": "float32", "input_channels_last": False, "weights_channels_last": False}
    text = text_of(audit)
    assert AMP_ROW.format("off; read back: the first training step's logits were float32") in text
    assert CL_ROW.format("no; read back: the first training step's input batch was in NCHW layout and its conv "
                         "kernels were not all in channels_last") in text  # fmt: skip
    assert render.MISMATCH not in text
    audit["spec"]["train"].update(amp="bf16", channels_last=True)  # what the spec asked, not what ran
    text = text_of(audit)
    assert AMP_ROW.format(f"bf16; read back: the first training step's logits were float32, {render.MISMATCH}") in text
    assert CL_ROW.format("yes; read back: the first training step's input batch was in NCHW layout and its conv "
                         f"kernels were not all in channels_last, {render.MISMATCH}") in text  # fmt: skip
    # channels_last asked for: the input alone is not enough, the kernels must be too.
    audit["training"]["layout"] = {"logits_dtype": "bfloat16", "input_channels_last": True, "weights_channels_last": False}
    assert text_of(audit).count(render.MISMATCH) == 1
    audit["training"]["layout"]["weights_channels_last"] = True
    assert render.MISMATCH not in text_of(audit)
    audit["spec"]["train"]["channels_last"] = False  # NCHW asked for, channels_last input found
    assert CL_ROW.format("no; read back: the first training step's input batch was in channels_last layout and its "
                         f"conv kernels were all in channels_last, {render.MISMATCH}") in text_of(audit)  # fmt: skip
    audit["training"]["layout"] = None  # a resume from a checkpoint that predates it, training nothing
    assert AMP_ROW.format("bf16; not read back (the checkpoint this run resumed from predates the read-back, and no "
                          "step was trained after it)") in text_of(audit)  # fmt: skip
    del audit["training"]["layout"]
    assert CL_ROW.format("no; not read back (the record predates it)") in text_of(audit)


def test_compile_row_says_what_is_checked() -> None:
    audit = golden_audit()
    assert "| torch.compile (`train.compile`) | off |" in text_of(audit)
    audit["spec"]["train"]["compile"] = "max-autotune"
    assert ("| torch.compile (`train.compile`) | max-autotune; applied to the training step, with the switches that "
            "would run it eager (`TORCHDYNAMO_DISABLE`, `TORCH_COMPILE_DISABLE`) checked unset; whether its graphs ran "
            "is not read back |") in text_of(audit)  # fmt: skip


def test_environment_rows_name_the_code_kernels_and_variables_and_reproduce_sets_them() -> None:
    audit = golden_audit()
    env = audit["environment"]
    env.update(auditor_source="ab" * 32, cpu_capability="AVX2", git_problem=None, torch_threads=1,
               numeric_env={"OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"})  # fmt: skip
    text = text_of(audit)
    assert f"| auditor | 0.2.0 (source sha256 `{'ab' * 6}`, of its modules and templates) |" in text
    assert "| CPU kernels (`torch.backends.cpu.get_cpu_capability()`) | AVX2 |" in text
    assert ("| Environment variables that change numerics or threads, as set | `OMP_NUM_THREADS=1`, "
            "`ONEDNN_MAX_CPU_ISA=AVX2` |") in text  # fmt: skip
    assert f"auditor 0.2.0 (source `{'ab' * 6}`), device cpu, command recorded" in text
    # The commands set what the run had set; the thread count is then the run's own.
    assert "(cd /runs/golden && OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX2 auditor run smoke --resume)" in text
    assert "OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX2 auditor run /runs/golden/reports/smoke/spec.resolved.yaml" in text
    assert "OMP_NUM_THREADS=2" not in text and "but torch ran" not in text
    env["torch_threads"] = 2  # the user test: OMP_NUM_THREADS=4 (or abc), capped (or ignored) by torch at 2
    for given in ("4", "abc"):
        env["numeric_env"] = {"OMP_NUM_THREADS": given}
        text = text_of(audit)
        assert (f"# (the run had OMP_NUM_THREADS={given}, but torch ran 2 threads: these commands set that count)\n"
                in text)  # fmt: skip
        assert "(cd /runs/golden && OMP_NUM_THREADS=2 auditor run smoke --resume)" in text
        assert "&& OMP_NUM_THREADS=2 auditor run /runs/golden/reports/smoke/spec.resolved.yaml" in text
        assert f"OMP_NUM_THREADS={given} auditor" not in text
        assert f"| Environment variables that change numerics or threads, as set | `OMP_NUM_THREADS={given}` |" in text
    env["numeric_env"] = {}
    text = text_of(audit)
    assert "| Environment variables that change numerics or threads, as set | none set |" in text
    assert "(cd /runs/golden && auditor run smoke)" in text  # the original command, as it ran
    assert "(cd /runs/golden && OMP_NUM_THREADS=2 auditor run smoke --resume)" in text  # continued at its count
    env["numeric_env"] = {}
    audit["determinism"]["cublas_workspace_config"] = ":16:8"  # the user's own, kept by the run
    assert "(cd /runs/golden && CUBLAS_WORKSPACE_CONFIG=:16:8 auditor run smoke)" in text_of(audit)
    audit["determinism"]["cublas_workspace_config"] = ":4096:8"  # the run's own: not needed on the command line
    text = text_of(audit)
    assert "OMP_NUM_THREADS=2 auditor run /runs/golden/reports/smoke/spec.resolved.yaml" in text  # 2 torch threads
    env["auditor_source"] = None  # a record that should hold it and does not
    assert "- [ ] **Environment captured**" in text_of(audit)


def audit_rate(audit: dict) -> str:
    from auditor.render import rate

    return rate(audit["training"]["images_per_s"])


def test_the_retrain_command_sets_the_thread_count_the_weights_were_trained_at() -> None:
    """A finished run resumed under OMP_NUM_THREADS=1 trained nothing at 1 thread: its retrain
    command must set the count the weights were trained at, and a run trained at two says so."""
    audit = golden_audit()
    env, training = audit["environment"], audit["training"]
    setting = {"device": "cpu", "processor": "Xeon", "torch_threads": 2, "cpu_capability": "AVX512", "kernel_env": {}}
    env.update(numeric_env={"OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}, torch_threads=1)
    audit["determinism"]["torch_threads"] = 1
    training.update(trained_on=setting, trained_at=[setting])
    text = text_of(audit)
    assert "&& OMP_NUM_THREADS=2 ONEDNN_MAX_CPU_ISA=AVX2 auditor run /runs/golden/reports/smoke/spec.resolved.yaml" in text
    assert "# (the same bits on a CPU need the same torch thread count, as set here, and the same CPU kernels)" in text
    assert "more than one setting" not in text
    audit["determinism"]["requested"] = False  # a user test: with determinism off, the same bits went unbacked
    text = text_of(audit)
    assert "# (the thread count set here is the run's; determinism was off, so a retrain need not give the same bits)" in text
    assert "same bits on a CPU need" not in text
    audit["determinism"]["requested"] = True
    training["trained_at"] = [{**setting, "torch_threads": 4}, setting]  # resumed at another count
    text = text_of(audit)
    assert ("# (this run was trained at more than one setting, through its resumes, in this order: cpu (Xeon, 4 torch "
            "threads, AVX512 kernels) then cpu (Xeon, 2 torch threads, AVX512 kernels); no single command reproduces "
            "its last bits: this one sets the last one's thread count)") in text  # fmt: skip
    assert f"| Training throughput | {audit_rate(audit)} (over the 2 settings it trained at through its resumes" in text
    del training["trained_on"], training["trained_at"]  # older records: the process's own count, as before
    assert "&& OMP_NUM_THREADS=1 ONEDNN_MAX_CPU_ISA=AVX2 auditor run /runs/golden/reports/smoke/spec.resolved.yaml" in text_of(audit)


def test_the_verify_command_carries_the_environment_the_weights_were_trained_in() -> None:
    """A user test: a run trained at 1 thread (or AVX2 kernels), verified by the sheet's command
    as written at the machine's 2 threads, passed BITWISE for weights it never reproduced."""
    audit = golden_audit()
    env = audit["environment"]
    env.update(numeric_env={"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2"}, torch_threads=1)
    text = section(text_of(audit), "Determinism evidence")
    assert "\nOMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 auditor verify /runs/golden/reports/smoke/spec.resolved.yaml" in text
    assert "# with the variables the retrain command above sets: other settings of them verify other bits" in text
    env["numeric_env"] = {}  # nothing set: the count it ran at, which another machine's default need not be
    text = text_of(audit)
    assert "\nOMP_NUM_THREADS=1 auditor verify " in section(text, "Determinism evidence")
    # The recorded commands stay as typed, with a word on the thread count they do not set.
    assert ("# (a recorded command below is as it was typed and sets no thread count, while this process ran\n"
            "# 1 torch thread, which") in text and "(cd /runs/golden && auditor run smoke)\n" in text  # fmt: skip
    env["numeric_env"] = {"OMP_NUM_THREADS": "1"}  # set by the user: the recorded commands carry it
    text = text_of(audit)
    assert "sets no thread count" not in text and "(cd /runs/golden && OMP_NUM_THREADS=1 auditor run smoke)" in text


def test_a_missing_git_commit_says_why() -> None:
    audit = golden_audit()
    env = audit["environment"]
    env.update(git_commit=None, git_dirty=None, git_changes=None)
    why = "no git commit recorded (not run inside a git work tree, or git unavailable)"  # older records
    assert f"- [ ] **Git tree clean**: {why}" in text_of(audit)
    env["git_problem"] = "detected dubious ownership in repository at '/src'"
    text = text_of(audit)
    assert "- [ ] **Git tree clean**: no git commit recorded (git: detected dubious ownership in repository" in text
    assert "| Git commit | n/a (git: detected dubious ownership in repository at '/src') |" in text
    env["git_problem"] = None
    assert "no git commit recorded (not run inside a git work tree)" in text_of(audit)


def test_host_memory_row_and_records_without_it() -> None:
    audit = golden_audit()
    row = "| Host memory (`train.host_memory`: freed blocks kept for reuse or returned) | {} |"
    assert row.format(
        "retain: glibc 2.36 mallopt M_MMAP_THRESHOLD 1,073,741,824 bytes, M_TRIM_THRESHOLD 2,147,483,647 bytes; "
        "read back: a 64 MiB block is served from the heap, not a fresh mmap (so a freed block can be reused without new page faults)"
    ) in text_of(audit)
    audit["training"]["host_memory"] = {"requested": "release", "allocator": "glibc 2.36", "mmap_threshold": None,
                                        "trim_threshold": None, "large_blocks_from_heap": False,
                                        "probe_bytes": 64 << 20}  # fmt: skip
    assert row.format(
        "release: glibc 2.36, left as it was; read back: a 64 MiB block is served from a fresh mmap (unmapped on free)"
    ) in text_of(audit)
    # A user test: `release` under MALLOC_MMAP_THRESHOLD_ served large blocks from the heap, unflagged.
    audit["training"]["host_memory"]["large_blocks_from_heap"] = True
    assert row.format(
        "release: glibc 2.36, left as it was; read back: a 64 MiB block is served from the heap, not a fresh mmap (so "
        "a freed block can be reused without new page faults), **not what the spec asks for**: glibc's defaults would "
        "map such a block afresh, so something set its thresholds before the run (an environment variable such as "
        "`MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES`, which the Reproduce commands do not carry)"
    ) in text_of(audit)
    audit["training"]["host_memory"] |= {"requested": "retain", "mmap_threshold": 1 << 30, "large_blocks_from_heap": False}
    assert ("read back: a 64 MiB block is served from a fresh mmap (unmapped on free), **not what the spec asks for**: "
            "the raised mmap threshold did not take |") in text_of(audit)
    audit["training"]["host_memory"] = {"requested": "retain", "allocator": "musl (not glibc)", "mmap_threshold": None,
                                        "trim_threshold": None, "large_blocks_from_heap": None}  # fmt: skip
    assert row.format("retain: musl (not glibc), left as it was; not read back") in text_of(audit)
    audit["training"]["host_memory"] = {"requested": "retain", "allocator": "glibc 2.31", "mmap_threshold": None,
                                        "trim_threshold": 2147483647, "large_blocks_from_heap": False,
                                        "probe_bytes": 32 << 20}  # fmt: skip
    assert row.format("retain: glibc 2.31 mallopt M_MMAP_THRESHOLD rejected, M_TRIM_THRESHOLD 2,147,483,647 bytes; "
                      "read back: a 32 MiB block is served from a fresh mmap (unmapped on free)") in text_of(audit)
    del audit["training"]["host_memory"]  # a record written before the setting existed
    assert row.format("not recorded") in text_of(audit)
    note = "last.pt was written under a spec that differs only outside training (train.host_memory: 'retain' -> 'release')"
    audit["run"]["resume_notes"] = [note]
    assert row.format("not recorded; this process's setting: the steps before the resume ran under the one the "
                      "resume notes name, and the training throughput mixes both") in text_of(audit)
    audit["training"]["trained_here"] = False  # the user test: a finished run judged again under `release`
    text = text_of(audit)
    assert "mixes both" not in text
    assert row.format("not recorded; this process's setting, under which no step was trained: the steps ran under "
                      "earlier processes' settings (the resume notes name the last of them), and so was the training "
                      "throughput measured") in text


@pytest.mark.parametrize(
    ("share", "window", "row", "busy"),
    [
        (0.012, 1.3, "1%, about ± 2% (over 1.30 s, counted in 10 ms CPU-time ticks)", False),
        (0.5, 30.0, "50%, about ± 0.1% (over 30.00 s, counted in 10 ms CPU-time ticks)", True),
        (0.16, 0.29, "16%, about ± 7% (over 0.29 s, counted in 10 ms CPU-time ticks)", False),  # within its uncertainty of 10%
        (0.18, 0.29, "18%, about ± 7% (over 0.29 s, counted in 10 ms CPU-time ticks)", True),
        (0.115, 4.0, "12%, about ± 0.5% (over 4.00 s, counted in 10 ms CPU-time ticks)", True),  # judged as shown
        (0.4, 400.0, "40%, within 0.1% (over 400.00 s, counted in 10 ms CPU-time ticks)", True),
        (None, 0.06, ("not recorded: the iterations took 0.06 s, under 0.1 s, where the kernel's 10 ms CPU-time "
                      "ticks leave it more than 20% uncertain"), False),
        (None, 0.09999, ("not recorded: the iterations took 0.09999 s, under 0.1 s, where the kernel's 10 ms CPU-time "
                         "ticks leave it more than 20% uncertain"), False),  # not "0.10 s, under 0.1 s"
        (None, None, "not recorded", False),  # recorded before the share was
    ],
)  # fmt: skip
def test_other_processes_cpu_share_while_timed(share: float | None, window: float | None, row: str, busy: bool) -> None:
    audit = golden_audit()
    lat = audit["measurements"]["latency"]
    lat.update(other_cpu_share=share, other_cpu_window_s=window)
    for key in [k for k in ("other_cpu_share", "other_cpu_window_s") if lat[k] is None]:
        del lat[key]
    text = text_of(audit)
    label = "Other processes' share of its CPUs over the warm-up and timed iterations (their busy time less this process tree's; psutil)"
    assert f"| {label} | {row} |" in text
    assert ("**Busy machine:** other processes used" in text) is busy



def test_a_git_tree_that_does_not_hold_the_spec_ticks_nothing() -> None:
    audit = golden_audit()
    assert checklist_line(text_of(audit), "Git tree clean").startswith("- [x]")  # older records: not recorded
    audit["environment"]["git_holds_spec"] = True
    assert checklist_line(text_of(audit), "Git tree clean").startswith("- [x]")
    audit["environment"]["git_holds_spec"] = False  # run from an unrelated repository
    line = checklist_line(text_of(audit), "Git tree clean")
    assert line.startswith("- [ ]") and line.endswith(
        "; the tree of the working directory, which does not track the spec run (it lies outside, untracked or "
        "ignored): this commit does not identify it")


def test_a_busy_machine_during_training_is_said_beside_the_training_time() -> None:
    audit = golden_audit()
    row = "| Other processes' share of the CPU while this process trained (its steps, evaluations and checkpoints) | {} |"
    assert row.format("not recorded") in text_of(audit)  # older records
    audit["training"] |= {"other_cpu_share": 0.02, "other_cpu_window_s": 10.0}
    text = text_of(audit)
    assert row.format("2%, about ± 0.2% (over 10.00 s, counted in 10 ms CPU-time ticks)") in text and "Busy machine during training" not in text
    audit["training"] |= {"other_cpu_share": 0.55}
    assert "> **Busy machine during training:** other processes used 55% of the CPU while this process trained" in text_of(audit)
    resumed = copy.deepcopy(audit)  # the meter ran in the last process; the training time sums them all
    resumed["training"]["resumed_from"] = "step-00000030.pt"
    text = text_of(resumed, NO_FIGURES)
    assert row.format("55%, about ± 0.2% (over 10.00 s, counted in 10 ms CPU-time ticks), while the process that resumed the run "
                      "trained; the training before the resume from `step-00000030.pt`, in earlier processes, was "
                      "not metered") in text  # fmt: skip
    assert ("> **Busy machine during training:** other processes used 55% of the CPU while the process that resumed "
            "the run trained (the training before the resume from `step-00000030.pt`, in earlier processes, was not "
            "metered), so its training time") in text  # fmt: skip
    audit["training"] |= {"other_cpu_share": None, "other_cpu_window_s": 0.05}  # too short to tell
    assert row.format("not recorded: training took 0.05 s, under 0.1 s, where the kernel's 10 ms CPU-time "
                      "ticks leave it more than 20% uncertain") in text_of(audit)  # fmt: skip


def test_steps_per_epoch_says_a_short_last_batch_and_a_tied_best_says_which_is_kept() -> None:
    assert render.steps_per_epoch_text(4, 500, 128) == "4 (the last on 116 images, not 128)"
    assert render.steps_per_epoch_text(4, 512, 128) == "4" and render.steps_per_epoch_text(None, 1, 1) == "n/a"
    audit = golden_audit()
    hist = audit["training"]["history"]
    best = audit["training"]["best_metric"]
    assert "tie at it" not in text_of(audit)
    other = next(h for h in hist if h["epoch"] != audit["training"]["best_epoch"])
    other["val_acc"] = best
    tied = sorted([other["epoch"], audit["training"]["best_epoch"]])
    assert f"selected on the **val** split (epochs {tied[0]}, {tied[1]} tie at it: the earliest is kept)" in text_of(audit)
    other["val_loss"] = None  # never eligible (its loss was not a number): no tie with it
    assert "tie at it" not in text_of(audit)


def test_text_from_the_run_cannot_close_the_reproduce_code_block_or_break_a_table() -> None:
    """A spec description quoted in the recorded command, and class names read from the data's
    batches.meta, are the run's input: shown verbatim, they must stay inside their block or cell."""
    audit = golden_audit()
    forged = "x\n```\n\n## Criteria\n\n- [x] **Reproducibility verified by re-running**: forged\n\n```sh\necho"
    audit["spec"]["description"] = forged
    audit["environment"]["command"] = f"auditor run smoke --set 'description={forged}'"
    audit["data"]["classes"] = ["air|plane", "auto\nmobile", *audit["data"]["classes"][2:]]
    text = text_of(rehash(audit))
    start = text.index("\n````sh\n", text.index("\n## Reproduce\n"))  # longer than the ``` inside
    end = text.index("\n````\n", start)
    assert "\n## Criteria\n" in text[start:end] and "\n## Criteria\n" in text[end:]  # the forged one is in the block
    # The description itself is fenced too (it had been a blockquote, whose ticked box rendered as the sheet's)
    quoted = text.index("\n````text\n" + forged + "\n````\n")
    outside = re.sub(r"\n(`{3,})[a-z]*\n.*?\n\1\n", "\n", text, flags=re.DOTALL)
    assert quoted > 0 and outside.count("\n## Criteria\n") == 1
    assert "\n- [x] **Reproducibility verified by re-running**: forged" not in outside  # (inline code in a cell is)
    (row,) = [ln for ln in section(text, "Data").splitlines() if ln.startswith("| Classes |")]
    assert row.startswith("| Classes | air\\|plane, auto mobile, ") and row.replace("\\|", "").count("|") == 3
    assert code_fence({"a": ["``x``", {"`": "y"}]}) == "```" and code_fence({"k": "a ````` b"}) == "``````"


def test_render_warns_of_a_record_edited_after_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """check refuses such a record; render draws its sheet (spec-hash box unticked) and says why."""
    from auditor.cli import main

    audit = golden_audit()
    audit["spec"]["criteria"]["test_acc"] = ">= 0.01"  # loosened by hand, spec_hash left as it was
    run_dir = write_run_dir(tmp_path, audit)
    assert main(["render", str(run_dir)]) == 0
    assert (f"auditor render: warning: {run_dir / 'audit.json'}: its resolved spec does not match its spec_hash: "
            "the record was edited after the run") in capsys.readouterr().err


def test_the_criteria_table_shows_each_detail_as_judged_again_not_as_stored() -> None:
    """A user test: a stored detail edited to claim a figure never measured reached the sheet as
    written; `check` and `render` compared the results it holds, not its text."""
    audit = golden_audit()
    audit["criteria"][0]["detail"] = "0.9900 >= 0.5 (verified on full CIFAR-10)"
    text = text_of(audit, NO_FIGURES)
    assert "verified on full CIFAR-10" not in text
    assert "| 0.9867 | PASS | 0.9867 >= 0.5 |" in text
    failed = json.loads(json.dumps(audit))
    failed["criteria"][0]["passed"] = False  # judged otherwise: the row keeps what is stored, under the warning
    assert "| 0.9867 | **FAIL** | 0.9900 >= 0.5 (verified on full CIFAR-10) |" in text_of(failed, NO_FIGURES)
    audit["spec"]["criteria"]["future_metric"] = ">= 1"  # cannot be judged again here: the stored detail shows
    assert "verified on full CIFAR-10" in text_of(audit, NO_FIGURES)


def test_a_verify_budget_max_steps_cuts_short_is_said_as_such() -> None:
    """A user test read '12 steps (182 epochs x 28 steps, max_steps 12)' (verify's summary, and the
    sheet's Budget row, which share this text) as a puzzle."""
    from auditor.render import budget_text

    cut = {"total_steps": 12, "epochs": 182, "steps_per_epoch": 28, "steps": 12, "checkpoint_every_steps": 3}
    assert budget_text(cut) == "12 steps (max_steps 12: the first 12 of 182 epochs x 28 steps), checkpoint every 3 steps"
    whole = {**cut, "epochs": 3, "total_steps": 84}
    for steps in (None, 500):  # none, or one beyond the epochs: they are the budget
        assert budget_text({**whole, "steps": steps}) == "84 steps (3 epochs x 28 steps), checkpoint every 3 steps"
    assert "epochs" in budget_text({"epochs": "x"})  # a record of another shape: shown as it is, not a traceback
