"""Tests for the audit record's files: atomic JSON/CSV writing and reading audit.json back."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import field_paths

from auditor.audit import (
    FIRST_METRICS,
    SET_ASIDE,
    SHEET_FIELDS,
    VERIFY_MARKER,
    fields_problem,
    finite_or_none,
    is_number,
    nan_test_loss_note,
    read_audit,
    record_problem,
    twice_at,
    write_json,
)
from auditor.errors import InvalidInput


def test_non_finite_floats_are_written_as_null(tmp_path: Path) -> None:
    """A diverged loss (NaN) or an overflow (inf) must not make the record unreadable JSON."""
    record = {"loss": math.nan, "lr": math.inf, "hist": [1.0, -math.inf, (2.0, math.nan)], "ok": 0.5, "n": 3}
    write_json(tmp_path / "a.json", record)
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"loss": None, "lr": None, "hist": [1.0, None, [2.0, None]], "ok": 0.5, "n": 3}
    assert "NaN" not in text and "Infinity" not in text
    assert finite_or_none({"x": [math.inf]}) == {"x": [None]}


@pytest.mark.parametrize(("value", "expected"), [
    (0, True), (0.25, True), (math.nan, True), (np.float32(0.5), True), (np.int64(3), True),
    (True, False), (np.bool_(True), False), ("0.5", False), (None, False), ([0.5], False),
])
def test_is_number_takes_what_a_measurement_can_be(value: Any, expected: bool) -> None:
    """One rule for every reader of a record (check, verify, the sheet's sources): a bool is never a figure."""
    assert is_number(value) is expected


def test_the_nan_loss_note_shows_a_measured_accuracy_but_not_a_bool() -> None:
    assert "(75.00%)" in nan_test_loss_note("last.pt", np.float64(0.75))
    assert "%" not in nan_test_loss_note("last.pt", True) and "%" not in nan_test_loss_note(None, "0.75")


FIXTURES = Path(__file__).parent / "fixtures"


def test_a_record_with_an_integer_no_field_can_hold_is_refused_naming_the_field(tmp_path: Path) -> None:
    """A hand-edited `1000...0` (400 digits) made every float() of it overflow: a traceback, exit 1."""
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["metrics"]["latency_ms"] = 10**400
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=r"audit\.json: not an audit record: metrics\.latency_ms: an integer of 401 digits"):
        read_audit(tmp_path)
    record["metrics"]["latency_ms"] = 2**62  # large, but a float holds it
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert read_audit(tmp_path)["metrics"]["latency_ms"] == 2**62


@pytest.mark.parametrize(("literal", "shown"), [("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("NaN", "NaN"),
                                                ("1e999", "Infinity")])  # fmt: skip
def test_a_record_with_a_number_that_is_not_finite_is_refused_naming_the_field(
    tmp_path: Path, literal: str, shown: str
) -> None:
    """A run writes null for such values; hand-edited in, they crashed the sheet's formatting
    (a traceback, exit 1) or were shown as `inf`."""
    text = (FIXTURES / "audit_golden.json").read_text()
    record = json.loads(text)
    record["run"]["wall_time_s"] = 12345.678  # a unique literal to replace
    (tmp_path / "audit.json").write_text(json.dumps(record).replace("12345.678", literal))
    with pytest.raises(InvalidInput, match=rf"audit\.json: not an audit record: run\.wall_time_s: {shown} \(a run "
                                           r"writes null where a value is not a finite number\)"):
        read_audit(tmp_path)


def test_a_record_with_a_key_twice_or_a_version_that_only_equals_1_is_refused(tmp_path: Path) -> None:
    text = (FIXTURES / "audit_golden.json").read_text()
    (tmp_path / "audit.json").write_text(text.replace('"verdict": ', '"verdict": "PASS", "verdict": ', 1))
    line = text[: text.index('"verdict": ')].count("\n") + 1  # FILE:LINE: for an editor, as for JSON not valid
    with pytest.raises(InvalidInput, match=rf"audit\.json:{line}: not an audit record: the key 'verdict' twice in one object"):
        read_audit(tmp_path)
    nested = text.replace('"epoch": 2,', '"epoch": 2,\n"lr": 1,', 1)  # the second `lr` of an epoch, not others of its name
    assert nested.count('"lr":') > 2
    (tmp_path / "audit.json").write_text(nested)
    line = nested[: nested.index('"epoch": 2,')].count("\n") + 3  # the one there before, after the added one
    with pytest.raises(InvalidInput, match=rf"audit\.json:{line}: not an audit record: the key 'lr' twice in one object"):
        read_audit(tmp_path)
    assert twice_at('{"a": {"k": 1}, "b": {"k": 2}}') is None and twice_at("{") is None
    assert twice_at("[" * 600 + '{"a": 1, "a": 2}' + "]" * 600) is None  # too deep for Python's scanner: no line
    assert twice_at('{\n"\\u0061": 1,\n"a": 2}') == 1  # a key escaped: its object's line
    (tmp_path / "audit.json").write_text(text.replace('"schema_version": 1', '"schema_version": ' + "9" * 5000, 1))
    with pytest.raises(InvalidInput, match=r"audit\.json: not an audit record: it holds an integer of more than 4,300 "
                                           r"digits, which no field of a record holds$"):  # not Python's advice to raise the limit
        read_audit(tmp_path)
    for version in ("true", "1.0"):
        record = json.loads(text)
        (tmp_path / "audit.json").write_text(json.dumps(record).replace('"schema_version": 1', f'"schema_version": {version}'))
        with pytest.raises(InvalidInput, match=f"unsupported audit schema_version {version} \\(expected 1"):  # as JSON writes it
            read_audit(tmp_path)
    del record["schema_version"]  # a user test: "unsupported audit schema_version None"
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=r"audit\.json: no schema_version \(expected 1: is this a record of `auditor run`\?\)$"):
        read_audit(tmp_path)


STEP = {"path": "checkpoints/smoke/step-00000049.pt", "bytes": 644_049, "sha256": "a" * 64, "global_step": 49}
CRITERION = {"metric": "status", "expr": "== completed", "op": "==", "threshold": "completed", "tolerance": None,
             "measured": "completed", "passed": True, "detail": ""}  # fmt: skip
VERIFIED = {"verdict": "bitwise", "first_divergence": None, "runs": [], "tensors": [], "notes": [], "device": "cpu",
            "budget": {}}  # fmt: skip
UNVERIFIED_BLOCK = ("verification.first_divergence, verification.runs, verification.tensors, verification.notes, "
                    "verification.device, verification.budget")  # fmt: skip


@pytest.mark.parametrize(("field", "value", "named"), [
    (("data", "downloaded"), "false", "data.downloaded"),  # a string would read as true
    (("model", "init"), 5, "model.init"),
    (("data", "split_fingerprint"), ["a"], "data.split_fingerprint"),
    (("step_checkpoints",), "step-00000049.pt", "step_checkpoints"),
    (("step_checkpoints",), [STEP, "x"], "step_checkpoints[1]"),
    (("step_checkpoints",), [STEP | {"global_step": -1}], "step_checkpoints[0]"),
    (("step_checkpoints",), [STEP | {"global_step": True}], "step_checkpoints[0]"),
    (("step_checkpoints",), [STEP | {"bytes": 49.5}], "step_checkpoints[0]"),
    (("step_checkpoints",), [STEP | {"sha256": 7}], "step_checkpoints[0]"),
    (("step_checkpoints",), [{k: v for k, v in STEP.items() if k != "sha256"}], "step_checkpoints[0]"),
    (("data", "classes"), "pattern0", "data.classes"),
    (("data", "val_in_train"), True, "data.val_in_train"), (("data", "val_in_train"), -5, "data.val_in_train"),
    (("data", "val_in_train"), 301, "data.val_in_train"),  # the val split holds 300
    # A user test: a negative count of scored test images was rendered ("-1 of the 500 ...") and passed `check`.
    (("data", "test_in_train"), -1, "data.test_in_train"), (("data", "test_in_val"), 501, "data.test_in_val"),
    (("data", "test_in_train"), "x", "data.test_in_train"), (("data", "test_in_val"), 1.0, "data.test_in_val"),
    (("environment", "memory_limit_bytes"), 0, "environment.memory_limit_bytes"),
    (("environment", "memory_limit_bytes"), "8G", "environment.memory_limit_bytes"),
    (("data", "class_counts"), {"train": [1] * 10, "val": [1] * 10}, "data.class_counts"),
    (("data", "class_counts"), {"train": [1] * 9, "val": [1] * 10, "test": [1] * 10}, "data.class_counts"),
    (("data", "class_counts"), {"train": ["1"] * 10, "val": [1] * 10, "test": [1] * 10}, "data.class_counts"),
    (("data", "other_entries"), "data_batch_6", "data.other_entries"),
    (("data", "other_entries"), ["data_batch_6", 7], "data.other_entries, data.n_other_entries"),
    (("data", "other_entries"), ["data_batch_6"], "data.n_other_entries"),  # no count beside the names
    (("data", "other_entries"), ["a\n\n# Injected"], "data.other_entries, data.n_other_entries"),  # a run escapes it
    (("data", "n_other_entries"), True, "data.n_other_entries"),
    (("data", "n_other_entries"), 3, "data.n_other_entries"),  # three, but no names
    # A user test: render quoted a Python TypeError for these (the Reproduce commands' paths).
    (("run", "out"), None, "run.out"), (("run", "report_dir"), 7, "run.report_dir"),
    (("environment", "cwd"), None, "environment.cwd"),
    # A user test: `check` passed these records, which `render` called malformed.
    (("criteria",), [1, 2], "criteria[0], criteria[1]"),
    (("criteria",), [CRITERION | {"passed": "yes"}], "criteria[0]"),
    (("criteria",), [CRITERION, {k: v for k, v in CRITERION.items() if k != "measured"}], "criteria[1]"),
    (("verification",), {"verdict": "bogus"}, UNVERIFIED_BLOCK),
    (("verification",), VERIFIED | {"tensors": [{"name": "w"}]}, "verification.tensors"),
    (("verification",), VERIFIED | {"first_divergence": {"pair": "a-b"}}, "verification.first_divergence"),
    (("verification",), VERIFIED | {"pairs": [{}]}, "verification.pairs"),
    (("verification",), VERIFIED | {"pairs": [{"pair": "a-b", "losses": "equal"}]}, "verification.pairs"),
    # A user test: with no confusion matrix, `check` passed an edited accuracy it recomputes from one.
    (("measurements", "test", "confusion"), None, "measurements.test.confusion"),
    (("measurements", "test", "confusion"), "x", "measurements.test.confusion"),
    (("measurements", "test", "confusion"), [[1, 2], [3, -1]], "measurements.test.confusion"),
    (("measurements", "test", "confusion"), [[1, 0], [0, 1]], "measurements.test.per_class"),  # 10 classes, 2 rows
    (("measurements", "test", "n"), None, "measurements.test.n"),
    (("measurements", "test", "acc"), "0.9", "measurements.test.acc"),
    (("measurements", "test", "acc"), 1.5, "measurements.test.acc"),
    (("measurements", "test", "loss"), "x", "measurements.test.loss"),
    (("measurements", "test", "per_class"), {"pattern0": 1.0}, "measurements.test.per_class"),  # 1 of 10 rows
    (("measurements", "test", "per_class"), None, "measurements.test.per_class"),
    (("measurements", "test"), "none", "measurements.test"),
    # A user test: impossible figures were gated and shown (a training time of -1.0 s, an IQR below 0,
    # a file's status an object rendered raw into the sheet's table).
    (("training", "train_time_s"), -1.0, "training.train_time_s"),
    (("measurements", "latency", "min_ms"), -0.1, "measurements.latency.min_ms"),
    (("measurements", "latency", "iqr_ms"), -0.1, "measurements.latency.iqr_ms"),
    (("run", "wall_time_s"), -3.0, "run.wall_time_s"),
    (("data", "files"), {"data_batch_1": {"<b>": 1}}, "data.files"),
])  # fmt: skip
def test_a_record_with_a_malformed_field_the_sheet_shows_is_refused_naming_it(
    tmp_path: Path, field: tuple[str, ...], value: Any, named: str
) -> None:
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    node = record
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput) as refused:
        read_audit(tmp_path)
    assert str(refused.value) == f"{tmp_path / 'audit.json'}: {fields_problem(record, named.split(', '))}"


def test_a_refused_record_says_which_fields_are_missing_and_what_the_malformed_ones_hold(tmp_path: Path) -> None:
    """A README walk-through: a field present with a value of the wrong kind was called 'missing or malformed'."""
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["training"]["history"][0]["lr"] = "0.05"
    assert record_problem(record) == 'malformed audit record: training.history[0].lr = "0.05" (not as a run writes it)'
    for key, value in (("val_acc", 1.5), ("train_loss", -0.1), ("epoch_s", -1.0)):  # never so in a run
        edited = copy.deepcopy(record)
        edited["training"]["history"][0]["lr"] = 0.05
        edited["training"]["history"][0][key] = value
        assert record_problem(edited) == f"malformed audit record: training.history[0].{key} = {value} (not as a run writes it)"
    record["measurements"]["test"]["confusion"] = [[i] * 10 for i in range(10)]
    record["measurements"]["test"]["confusion"][0] = [0]  # a row cut short
    assert record_problem(record) == (  # shown up to 40 characters
        "malformed audit record: training.history[0].lr = \"0.05\"; measurements.test.confusion = [[0], [1, 1, 1, 1, "
        "1, 1, 1, 1, 1, 1], [2... (not as a run writes them)")
    del record["spec_hash"], record["run"]["name"]
    record["data"]["official"] = "false"
    assert record_problem(record) == (
        'incomplete audit record: missing spec_hash, run.name; malformed data.official = "false" (not as a run writes it)')
    record["data"] = "x"  # a review: its optional fields were listed as missing too
    assert record_problem(record) == (
        'incomplete audit record: missing spec_hash, run.name; malformed data = "x" (not as a run writes it)')
    del record["data"], record["run"]["status"]
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput) as refused:
        read_audit(tmp_path)
    assert str(refused.value) == (f"{tmp_path / 'audit.json'}: incomplete audit record: missing spec_hash, data, run.name, "
                                  "run.status")  # fmt: skip
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["training"]["history"] *= 2  # six rows, each with two fields edited: ten named, not every one
    for row in record["training"]["history"]:
        row.update(lr="1", epoch_s="2")
    problem = record_problem(record)
    assert problem.startswith('malformed audit record: training.history[0].lr = "1"; training.history[0].epoch_s = "2"; ')
    assert problem.endswith('training.history[4].epoch_s = "2" (not as a run writes them); and 2 more fields')


def test_every_field_the_sheet_shows_refuses_a_kind_no_run_writes_there(tmp_path: Path) -> None:
    """A user test: `environment.cpu_model = ["a"]` reached the sheet as Python's text, `(['a'])`; a search over
    every field of the golden record found 52 such (run.started_utc, model.depth, ...), now in SHEET_FIELDS. This
    holds each field SHEET_FIELDS lists to it; a field left out of the list is not found here."""
    golden = json.loads((FIXTURES / "audit_golden.json").read_text())
    tried = 0
    for dotted, kind in SHEET_FIELDS:
        *parents, last = dotted.split(".")
        record = copy.deepcopy(golden)
        node = record
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or kind({"zq": 1}):  # not in this record, or an object is its kind
            continue
        node[last] = {"zq": 1}
        (tmp_path / "audit.json").write_text(json.dumps(record))
        with pytest.raises(InvalidInput, match=re.escape(f'{dotted} = {{"zq": 1}}')):
            read_audit(tmp_path)
        tried += 1
    assert tried > 100  # most of SHEET_FIELDS: the golden record holds them


@pytest.mark.parametrize("metric", FIRST_METRICS)
def test_a_record_without_a_metric_every_run_writes_is_refused_naming_it(tmp_path: Path, metric: str) -> None:
    """A user test: `metrics.test_acc` deleted by hand was read as not measured, and an ablation's mean left
    that seed out with no word but a smaller n (null in its place was refused as an edit)."""
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    del record["metrics"][metric]
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=re.escape(f"incomplete audit record: missing metrics.{metric}")):
        read_audit(tmp_path)


@pytest.mark.parametrize(("field", "value", "said"), [
    ("val_in_train", 301, "data.val_in_train = 301, more than data.sizes.val = 300 (not as a run writes it)"),
    ("test_in_val", 501, "data.test_in_val = 501, more than data.sizes.test = 500 (not as a run writes it)"),
    ("n_other_entries", 3, "data.n_other_entries = 3, with no data.other_entries beside it (not as"),
    ("other_entries", ["data_batch_6"], "data.n_other_entries = null, where data.other_entries holds 1 name (not as"),
    ("val_in_train", -5, "data.val_in_train = -5 (not as a run writes it)"),  # wrong in itself: nothing else named
])  # fmt: skip
def test_a_count_refused_against_another_field_names_that_field(tmp_path: Path, field: str, value: Any, said: str) -> None:
    """A review: `data.val_in_train = 301` read as a fine count, the split it exceeds unnamed."""
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["data"][field] = value
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=re.escape(said)):
        read_audit(tmp_path)
    record["data"] |= {"other_entries": ["a", "b"], "n_other_entries": 5}
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=re.escape("n_other_entries = 5, where data.other_entries holds 2 names (a run keeps 5)")):
        read_audit(tmp_path)


def test_the_fields_the_sheet_shows_pass_as_a_run_writes_them_or_as_older_runs_left_them(tmp_path: Path) -> None:
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["step_checkpoints"] = [STEP, STEP | {"sha256": None, "problem": "no digest file (step-00000049.pt.sha256 is missing: it was removed, or the file was copied without it)"}]
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert read_audit(tmp_path)["step_checkpoints"][1]["sha256"] is None
    for names, n in ((["data_batch_6", "caf\\xe9"], 2), ([f"x{i:02d}" for i in range(20)], 25)):  # 20 kept of 25
        record["data"] |= {"other_entries": names, "n_other_entries": n}
        (tmp_path / "audit.json").write_text(json.dumps(record))
        assert read_audit(tmp_path)["data"]["n_other_entries"] == n
    del record["step_checkpoints"], record["data"]["other_entries"], record["data"]["n_other_entries"]  # older records
    for key in ("downloaded", "split_fingerprint", "class_counts"):
        del record["data"][key]
    del record["model"]["init"]
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert "init" not in read_audit(tmp_path)["model"]
    record["measurements"]["test"]["loss"] = None  # a NaN loss, as a run records it
    record["measurements"]["test"]["per_class"]["pattern0"] = None  # a class with no test image
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert read_audit(tmp_path)["measurements"]["test"]["loss"] is None
    record["measurements"]["test"] = None  # no test evaluation ran (a run that diverged)
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert read_audit(tmp_path)["measurements"]["test"] is None


def test_an_ablation_page_folder_given_for_a_run_s_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "ablations.json").write_text("{}")
    with pytest.raises(InvalidInput, match=re.escape(
            f"{tmp_path}: an ablation's page folder (ablations.json), not a run's report folder: give one of its "
            "runs' report folders (ABLATIONS.md links each run's sheet), or rebuild the page with `auditor ablate "
            "FILE --render-only --out DIR`")):  # fmt: skip
        read_audit(tmp_path)
    with pytest.raises(InvalidInput, match=re.escape(f"{tmp_path / 'ablations.json'}: an ablation's record, not a run's "
                                                     "report folder: give one of its runs' report folders")):
        read_audit(tmp_path / "ablations.json")
    # A page the rebuild refuses to replace (edited by hand, or of 0.3.0: no mark) is to be moved away first (a user test).
    (tmp_path / "ABLATIONS.md").write_text("# the page of 0.3.0\n")
    with pytest.raises(InvalidInput) as info:
        read_audit(tmp_path)
    assert str(info.value).endswith(
        f"rebuild the page with `auditor ablate FILE --render-only --out DIR`, once {tmp_path / 'ABLATIONS.md'} is moved "
        "away (it carries no mark of auditor's (the sha256 of its text, on its last line): it was edited by hand, or "
        "written by auditor 0.3.0 or earlier, which marked nothing)")  # fmt: skip


def test_a_missing_report_folder_names_where_an_interrupted_run_left_its_report(tmp_path: Path) -> None:
    """Killed between promote's two renames, a run leaves the report in `<name>.old`: not 'no such folder' alone."""
    run_dir = tmp_path / "reports" / "smoke"
    old, staged = tmp_path / "reports" / "smoke.old", tmp_path / "reports" / "smoke.partial"
    old.mkdir(parents=True)  # a folder of the user's under the name: nothing is said of it
    with pytest.raises(InvalidInput, match=f"^{re.escape(str(run_dir))}: no such folder$"):
        read_audit(run_dir)
    (old / SET_ASIDE).touch()
    with pytest.raises(InvalidInput, match=re.escape(
            f"{run_dir}: no such folder; {old} holds the report a run set aside while it put a new one in place, and "
            f"that run was killed before it finished: `auditor run SPEC --out {tmp_path} --resume` with its spec puts a "
            "report back")):  # the --out it was run with (a user test: without it, the resume looked in ./)
        read_audit(run_dir)
    shutil.rmtree(old)
    staged.mkdir()
    with pytest.raises(InvalidInput, match=re.escape(
            f"{run_dir}: no such folder; a run of this name started and has not finished (interrupted, or running now: "
            f"{staged} is where it writes its report): `auditor run SPEC --out {tmp_path} --resume` with its spec "
            "continues an interrupted one")):  # fmt: skip
        read_audit(run_dir)
    # A user test: of a run that `auditor verify` started, `render` advised `auditor run SPEC --resume`,
    # which is refused there.
    workdir = tmp_path / "verify" / "smoke"
    (workdir / "a" / "reports" / "smoke.partial").mkdir(parents=True)
    (workdir / VERIFY_MARKER).touch()
    with pytest.raises(InvalidInput, match=re.escape(
            f"no such folder; a run that `auditor verify` started here (work dir {workdir}) has not finished (running "
            "now, or stopped): that verify writes this report when the run finishes, and one that stopped is run "
            "again whole (`auditor run --resume` is refused there")):  # fmt: skip
        read_audit(workdir / "a" / "reports" / "smoke")
    failed = workdir.rename(workdir.with_name("smoke.failed"))  # the review: that one is no verify going on
    with pytest.raises(InvalidInput, match=re.escape(
            f"no such folder; this is a run of a verify attempt that failed or was stopped (kept in {failed} until "
            "the next verify of the spec finishes), and the run did not finish: it has no report")):  # fmt: skip
        read_audit(failed / "a" / "reports" / "smoke")


def test_a_missing_report_folder_points_at_the_one_likely_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A README walk-through: `check reports/smok`, or a run's name given where its folder goes,
    said 'no such folder' alone."""
    report = tmp_path / "reports" / "smoke"
    for folder in (report, tmp_path / "reports" / "smok.old"):  # a run's set-aside folder is not suggested
        folder.mkdir(parents=True)
        (folder / "audit.json").write_text("{}")
    with pytest.raises(InvalidInput, match=f"^{re.escape(str(tmp_path / 'reports' / 'smok'))}: no such folder; did you "
                                           f"mean {re.escape(str(report))}\\?$"):
        read_audit(tmp_path / "reports" / "smok")
    with pytest.raises(InvalidInput, match="^reports/unrelated: no such folder$"):
        monkeypatch.chdir(tmp_path)
        read_audit(Path("reports/unrelated"))
    with pytest.raises(InvalidInput, match=r"^smoke: no such folder; did you mean reports/smoke \(that run's report folder\)\?$"):
        read_audit(Path("smoke"))


def test_a_record_nested_too_deeply_to_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "audit.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInput, match=r"audit\.json: unreadable audit record \(nested too deeply to read\)"):
        read_audit(tmp_path)


def test_a_record_whose_statuses_disagree_is_refused(tmp_path: Path) -> None:
    """Edited by hand: the sheet would say DIVERGED in its title and tick 'finished without divergence'."""
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["run"]["status"] = "diverged"
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=r'its statuses disagree \(run\.status "diverged", training\.status '
                                           r'"completed", metrics\.status "completed"\): the record was edited'):
        read_audit(tmp_path)
    record["metrics"]["status"] = "diverged"  # (every run has written metrics.status: FIRST_METRICS)
    del record["training"]["status"]  # not every record holds all three
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert read_audit(tmp_path)["run"]["status"] == "diverged"


def test_a_resolved_yaml_that_no_longer_holds_the_recorded_spec_is_warned_of(tmp_path: Path) -> None:
    from auditor.audit import resolved_yaml_warning
    from auditor.spec import resolved_yaml

    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    yaml_file = tmp_path / "spec.resolved.yaml"
    # Gone, or a folder in its place: the sheet's first Reproduce command would fail.
    assert resolved_yaml_warning(tmp_path, record) == (
        f"{yaml_file} is missing: the sheet and check go by audit.json, but the sheet's first Reproduce command, "
        "which retrains from that file, fails")  # fmt: skip
    yaml_file.mkdir()
    assert (resolved_yaml_warning(tmp_path, record) or "").startswith(f"{yaml_file} is not a file: ")
    yaml_file.rmdir()
    yaml_file.write_text(resolved_yaml(record["spec"]))
    assert resolved_yaml_warning(tmp_path, record) is None  # as the run wrote it
    yaml_file.write_text(yaml_file.read_text().replace("lr: 0.05", "lr: 0.5"))
    warning = resolved_yaml_warning(tmp_path, record)
    assert warning is not None and warning.startswith(f"{yaml_file} does not hold the spec audit.json records (sha256 ")
    assert f"recorded {record['spec_hash'][:12]})" in warning and warning.endswith("would not train this run's spec")
    yaml_file.write_text(resolved_yaml({**record["spec"], "description": "edited"}))
    assert (resolved_yaml_warning(tmp_path, record) or "").endswith(
        "trains as this run did, but judges, measures or describes it otherwise")  # fmt: skip
    yaml_file.write_text("a: [unclosed")
    assert "(sha256 unreadable: " in (resolved_yaml_warning(tmp_path, record) or "")


def test_a_copied_report_is_warned_of_by_the_resolved_yaml_its_command_names(tmp_path: Path) -> None:
    """A user test: a report copied elsewhere on the machine was warned of by the copy's own file,
    while its first Reproduce command names the one where the run wrote it (a false alarm, and a
    missing file there said nothing)."""
    from auditor.audit import resolved_yaml_problem, resolved_yaml_warning
    from auditor.spec import resolved_yaml

    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["environment"]["cwd"], record["run"]["out"] = str(tmp_path), "orig"
    original = tmp_path / "orig" / record["run"]["report_dir"]
    original.mkdir(parents=True)
    (original / "spec.resolved.yaml").write_text(resolved_yaml(record["spec"]))
    copy = tmp_path / "copy"
    copy.mkdir()  # no spec.resolved.yaml beside the copied record: the command does not need one
    assert resolved_yaml_warning(copy, record) is None
    (original / "spec.resolved.yaml").unlink()
    (copy / "spec.resolved.yaml").write_text(resolved_yaml(record["spec"]))  # the copy's own is no help
    assert resolved_yaml_warning(copy, record) == (
        f"{original / 'spec.resolved.yaml'} is missing: the sheet and check go by audit.json, but the sheet's first "
        "Reproduce command, which retrains from that file, fails")  # fmt: skip
    problem = resolved_yaml_problem(copy, record)
    assert problem is not None and not problem.beside
    shutil.rmtree(tmp_path / "orig")  # a report from another machine: its own file is checked, as before
    assert resolved_yaml_warning(copy, record) is None
    (copy / "spec.resolved.yaml").unlink()
    assert (resolved_yaml_warning(copy, record) or "").startswith(f"{copy / 'spec.resolved.yaml'} is missing")


def test_a_kept_failed_verify_attempt_is_judged_by_its_own_resolved_yaml(tmp_path: Path) -> None:
    """A user test: check and render of a run in `verify/<name>.failed/` warned that the
    spec.resolved.yaml in `verify/<name>/` (the evidence put back, of another verify) held another
    spec, and spoke of a retrain command that a verify run's sheet does not give."""
    from auditor.audit import resolved_yaml_warning
    from auditor.render import render_text
    from auditor.spec import resolved_yaml

    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["environment"]["cwd"], record["run"]["out"] = str(tmp_path), "out/verify/smoke/a"
    record["run"]["verify_out"] = str(tmp_path / "out")
    restored = tmp_path / "out/verify/smoke/a" / record["run"]["report_dir"]
    restored.mkdir(parents=True)
    (restored / "spec.resolved.yaml").write_text(resolved_yaml({**record["spec"], "seed": 99}))  # the other verify's
    failed = tmp_path / "out/verify/smoke.failed/a" / record["run"]["report_dir"]
    failed.mkdir(parents=True)
    (failed / "spec.resolved.yaml").write_text(resolved_yaml(record["spec"]))
    assert resolved_yaml_warning(failed, record) is None
    (failed / "spec.resolved.yaml").write_text(resolved_yaml({**record["spec"], "seed": 7}))
    assert (resolved_yaml_warning(failed, record) or "").startswith(f"{failed / 'spec.resolved.yaml'} does not hold")
    assert (resolved_yaml_warning(failed, record) or "").endswith(
        ": the sheet and check go by audit.json, but a retrain from that file would not train this run's spec")
    from auditor.audit import resolved_yaml_problem

    text = render_text(record, {}, [], resolved_yaml_problem(failed, record))
    assert "`spec.resolved.yaml` beside it does not hold the spec audit.json records" in text
    assert ": a retrain from that file would not train this run's spec." in text and "first command below" not in text
    # The review: run A recorded before verify_out was kept is told by where its folder sits, as its sheet tells it
    older = json.loads(json.dumps(record))
    del older["run"]["verify_out"]
    older["run"]["out"] = str(tmp_path / "out/verify/smoke/a")
    older["verification"] = {"verdict": "bitwise"}
    (failed / "spec.resolved.yaml").unlink()
    assert (resolved_yaml_warning(failed, older) or "").endswith("but a retrain from that file fails")
    older["verification"] = None  # no verification, and no verify_out: an ordinary run whose folder is called a
    assert "the sheet's first Reproduce command" in (resolved_yaml_warning(failed, older) or "")


def test_the_runs_own_staging_folder_is_no_copy_of_its_report(tmp_path: Path) -> None:
    """A review: a run renders its sheet in `<name>.partial`, which was taken for a copy of
    `<name>`, where the earlier run of the name still was: its spec.resolved.yaml, of another
    spec, put a false caution in the new run's sheet."""
    from auditor.audit import moved_note, resolved_yaml_warning
    from auditor.spec import resolved_yaml

    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["environment"]["cwd"], record["run"]["out"] = str(tmp_path), "out"
    final = tmp_path / "out" / record["run"]["report_dir"]
    staging = final.with_name(final.name + ".partial")
    final.mkdir(parents=True)
    (final / "spec.resolved.yaml").write_text(resolved_yaml({**record["spec"], "seed": 99}))  # the earlier run's
    staging.mkdir()
    (staging / "spec.resolved.yaml").write_text(resolved_yaml(record["spec"]))
    assert resolved_yaml_warning(staging, record) is None and moved_note(staging, record) is None
    assert (resolved_yaml_warning(final, record) or "").startswith(f"{final / 'spec.resolved.yaml'} does not hold")


# --- metrics against what the record measured ----------------------------------------------


def runner_record(case: str) -> dict[str, Any]:
    """The sections of a record as `auditor run` assembles them (runner._metrics and _metric_notes
    on a TrainResult and measurements), for a run of kind `case`, read back through JSON."""
    from dataclasses import asdict, replace

    from auditor.runner import _metric_notes, _metrics
    from auditor.train import EpochRecord, TrainResult

    val = case not in ("no_val",)
    epochs = [] if case == "diverged_early" else [
        EpochRecord(epoch=e, steps=19, lr=0.1 / e, train_loss=1.1 / e, train_acc=0.3 + e / 7, val_loss=0.9 / e,
                    val_acc=0.1 + e / 3, epoch_s=1.5, images_per_s=123.4 + e) for e in (1, 2)]  # fmt: skip
    if case == "final_loss_nan":
        epochs[-1] = replace(epochs[-1], val_loss=math.nan)
    if case == "none_selected":  # every epoch's val loss NaN: none is selected, and no best.pt written
        epochs = [replace(e, val_loss=math.nan) for e in epochs]
    selected = bool(epochs) and case != "none_selected"
    best = 1 if case == "final_loss_nan" else len(epochs)  # an epoch whose val loss is NaN is never selected
    result = TrainResult(
        status="diverged" if case in ("diverged_early", "final_loss_nan") else "completed", epochs_run=len(epochs),
        history=epochs, step_losses=[], best_epoch=best if selected else None,
        best_metric=epochs[best - 1].val_acc if selected else None, selection_split="val" if val else "test",
        train_time_s=3.0 if epochs else 0.4, images_per_s=sum(e.images_per_s * e.epoch_s for e in epochs) / 3.0,
        diverged_at_step=None, resumed_from=None, steps_per_epoch=19,  # the epochs' sum; a diverged one's steps besides
    )  # fmt: skip
    broken = ["fc.weight"] if case == "broken" else []
    test_loss = math.nan if case == "test_loss_nan" else 0.8123
    measured = {
        "evaluated_checkpoint": "best.pt" if selected else None,
        "test": {"acc": 0.7133333333333334, "n": 300, "loss": test_loss} if selected else None,
        "size": {"params_total": 75290, "checkpoint_bytes": 644113 if selected else None,
                 "weights_bytes": 317279},
        "latency": {"median_ms": 0.9434075000172015}, "memory": {"peak_rss_mb": 984.510464},
        "nonfinite": broken, "final_nonfinite": ["fc.bias"] if case == "last_broken" else broken,
    }  # fmt: skip
    official = {"official": True, "synthetic": None}.get(case, False)
    record = {
        "training": asdict(result), "measurements": measured, "data": {"official": official},
        "metrics": _metrics(result, measured, official), "metric_notes": _metric_notes(result, measured),
        "criteria": [], "verification": None,
    }  # fmt: skip
    return json.loads(json.dumps(finite_or_none(record)))


RUN_KINDS = ["completed", "no_val", "broken", "last_broken", "final_loss_nan", "test_loss_nan", "none_selected",
             "diverged_early", "official", "synthetic"]


@pytest.mark.parametrize("case", RUN_KINDS)
def test_every_metric_a_run_records_is_exactly_its_source_in_the_record(case: str) -> None:
    """`metric_sources` covers every metric the runner records (and verify's `reproducible`), and
    a record as a run writes it agrees with it exactly, floats included, after a trip through JSON."""
    from auditor.audit import metric_sources
    from auditor.check import edited_metrics

    record = runner_record(case)
    assert set(metric_sources(record)) == {*record["metrics"], "reproducible"}
    assert edited_metrics(record) == []
    withheld = {"broken": {"test_acc", "best_val_acc", "final_val_acc"}, "last_broken": {"final_val_acc"},
                "final_loss_nan": {"final_val_acc"}, "test_loss_nan": {"test_acc"},
                "none_selected": {"test_acc", "best_val_acc", "final_val_acc", "checkpoint_mb"}}.get(case, set())  # fmt: skip
    assert withheld <= set(record["metric_notes"])
    assert withheld <= {m for m, v in record["metrics"].items() if v is None}


@pytest.mark.parametrize("case", RUN_KINDS)
def test_any_metric_edited_by_the_least_amount_is_found(case: str) -> None:
    from auditor.check import edited_metrics

    for metric, value in runner_record(case)["metrics"].items():
        record = runner_record(case)
        if isinstance(value, bool):
            record["metrics"][metric] = not value
        elif isinstance(value, float):
            record["metrics"][metric] = math.nextafter(value, 1.0)  # the next float: compared exactly
        elif isinstance(value, str):
            record["metrics"][metric] = "early_stopped" if value != "early_stopped" else "completed"
        else:  # a figure withheld (null, with a note saying why): given a value back
            sources = {"test_acc": 0.7133333333333334, "best_val_acc": 0.7666666666666666,
                       "final_val_acc": 0.7666666666666666, "checkpoint_mb": 0.644113}  # fmt: skip
            record["metrics"][metric] = sources.get(metric, 0.5)
        (found,) = edited_metrics(record)
        assert found.startswith(f"metrics.{metric} "), found


def test_what_older_versions_recorded_is_not_taken_for_an_edit() -> None:
    """Before broken models were withheld a record held their accuracies (and no note, and
    before `nonfinite` was kept, no list); before official_data was a bool it was the provenance."""
    from auditor.check import edited_metrics

    record = runner_record("broken")
    record["metrics"]["best_val_acc"] = record["training"]["best_metric"]  # no note for it: an older version's
    del record["metric_notes"]["best_val_acc"]
    assert edited_metrics(record) == []
    del record["measurements"]["nonfinite"], record["measurements"]["final_nonfinite"], record["metric_notes"]["test_acc"]
    record["metrics"]["test_acc"] = record["measurements"]["test"]["acc"]
    assert edited_metrics(record) == []
    record = runner_record("synthetic")
    record["metrics"]["official_data"] = None
    assert edited_metrics(record) == []
    del record["metrics"]["weights_mb"]  # the first versions measured weights_bytes but had no weights_mb metric
    assert edited_metrics(record) == []
    del record["measurements"]["size"]["weights_bytes"]
    assert edited_metrics(record) == []
    record["metrics"]["weights_mb"] = 0.3  # a figure with nothing in the record it could come from
    assert edited_metrics(record) == ["metrics.weights_mb 0.3, but the record holds no measurements.size.weights_bytes / 1e6"]
    older = json.loads((FIXTURES / "audit_golden.json").read_text())
    tr = older["training"]  # before train.selectable, an epoch whose val loss was NaN (null) could be selected
    history, best = tr["history"], tr["best_epoch"]
    history[best - 1]["val_loss"] = None

    def selection(audit: dict[str, Any]) -> list[str]:  # the metrics of the last epoch are another matter
        return [f for f in edited_metrics(audit) if f.startswith("training.best_epoch")]

    assert selection(older) == []
    history[best - 2]["val_acc"] = tr["best_metric"]  # an earlier epoch as high: the older rule chose that one
    (found,) = selection(older)
    assert found.startswith(f"training.best_epoch {best} ")
    record["criteria"].append({"metric": ["best_val_acc"], "expr": ">= 0", "measured": 1, "passed": True, "detail": ""})
    assert edited_metrics(record) == ["metrics.weights_mb 0.3, but the record holds no measurements.size.weights_bytes / 1e6"]


def test_a_record_lacking_any_one_field_is_judged_without_an_error() -> None:
    """A review: with data.classes absent and class_counts there, ablate's reading of the record
    raised a TypeError, a traceback where `check` names the field."""
    from auditor.check import check_refusal

    base = json.loads((FIXTURES / "audit_golden.json").read_text())
    for path in field_paths(base, per_list=1):
        record = json.loads(json.dumps(base))
        node = record
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        problem = record_problem(record)  # no exception, whichever field is gone
        assert problem is None or isinstance(problem, str)
        assert check_refusal(record) == problem or problem is None  # what the page says is check's reason
    del base["data"]["classes"]
    assert "data.classes" in str(record_problem(base))
    assert "data.classes" in str(check_refusal(base))  # the page does not count what check refuses


def test_the_resume_advice_of_a_report_or_checkpoint_folder_gives_the_out_it_was_run_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditor.audit import resume_command

    assert resume_command(tmp_path / "out dir" / "reports" / "x") == f"`auditor run SPEC --out '{tmp_path}/out dir' --resume` with its spec"
    assert resume_command(tmp_path / "checkpoints" / "x") == f"`auditor run SPEC --out {tmp_path} --resume` with its spec"
    monkeypatch.chdir(tmp_path)
    assert resume_command(Path("reports/x")) == "`auditor run SPEC --resume` with its spec"  # the working directory's
    assert resume_command(Path("runs/reports/x")) == "`auditor run SPEC --out runs --resume` with its spec"  # as given
    assert resume_command(tmp_path / "x") == "`auditor run SPEC --resume` with its spec and the --out it was run with"


def test_a_checkpoint_staging_folder_is_not_said_to_lack_an_audit_json_yet(tmp_path: Path) -> None:
    """A user test: it was called a staging folder "with no audit.json yet", which a checkpoint folder never holds."""
    staging = tmp_path / "checkpoints" / "smoke.partial"
    staging.mkdir(parents=True)
    with pytest.raises(InvalidInput) as err:
        read_audit(staging)
    assert str(err.value) == (
        f"{staging}: a run's checkpoint staging folder, not a report folder: the run has not finished (interrupted, or "
        f"running now); when it finishes, this folder becomes {tmp_path / 'checkpoints' / 'smoke'}, and an interrupted "
        f"one is finished by `auditor run SPEC --out {tmp_path} --resume` with its spec; its report goes to "
        f"{tmp_path / 'reports' / 'smoke'}")


@pytest.mark.parametrize(("data", "said"), [
    (b'{\n  "run": {\n    "name": "x",\n', (":4: unreadable audit record: not valid JSON: Expecting property name enclosed "
                                              "in double quotes (column 1)")),  # truncated: its line, for an editor
    (b'\xef\xbb\xbf{}', ":1: unreadable audit record: it starts with a UTF-8 byte-order mark, which no run writes (an editor's?)"),
    (b'{\n"a": "caf\xe9"}', ":2: unreadable audit record: not UTF-8 text"),
    (json.dumps({"schema_version": 2}).encode(), (": unsupported audit schema_version 2 (this auditor reads 1: a newer "
                                                  "auditor wrote it? read it with that version)")),
])
def test_an_unreadable_record_is_said_at_its_line_in_a_users_words(tmp_path: Path, data: bytes, said: str) -> None:
    """A user test: a truncated record gave Python's "(char 7600)", a byte-order mark Python's advice to
    decode with utf-8-sig, a byte not UTF-8 its offset, and a newer schema_version no hint of why."""
    (tmp_path / "audit.json").write_bytes(data)
    with pytest.raises(InvalidInput) as err:
        read_audit(tmp_path)
    assert str(err.value) == f"{tmp_path / 'audit.json'}{said}"


def test_a_staging_folder_of_a_verify_run_is_not_given_a_resume_that_verify_refuses(tmp_path: Path) -> None:
    """A review: `auditor run --out WORKDIR/a --resume` is refused there (verify runs its runs afresh)."""
    workdir = tmp_path / "verify" / "smoke"
    staging = workdir / "a" / "reports" / "smoke.partial"
    staging.mkdir(parents=True)
    (workdir / VERIFY_MARKER).write_text("")
    with pytest.raises(InvalidInput) as err:
        read_audit(staging)
    assert str(err.value).endswith(f"it is a run of the `auditor verify` whose work dir is {workdir}, which runs a "
                                   "stopped one again whole") and "--resume" not in str(err.value)


def test_a_work_dir_of_a_verify_that_did_not_finish_is_named_as_such(tmp_path: Path) -> None:
    """A user test: after verify was killed outright, `check` of its work dir said only that it held
    no audit.json (with its evidence, it says whose work dir it is)."""
    workdir = tmp_path / "verify" / "smoke"
    (workdir / "a").mkdir(parents=True)
    (workdir / VERIFY_MARKER).write_text("")
    unfinished = f"{workdir}: a work dir of `auditor verify` whose verify has not finished (stopped, or running now), " \
        "not a run's report folder: it holds no verdict"
    with pytest.raises(InvalidInput) as err:
        read_audit(workdir)
    assert str(err.value) == unfinished
    earlier = tmp_path / "verify" / "smoke.old"  # the evidence a killed re-verify had set aside
    earlier.mkdir()
    (earlier / "verify.json").write_text("{}")
    with pytest.raises(InvalidInput) as err:
        read_audit(workdir)
    assert str(err.value) == (f"{unfinished}; the evidence of the verify before it is in {earlier}, which the next "
                              "`auditor verify` of this spec puts back first")
    failed = workdir.rename(tmp_path / "verify" / "smoke.failed")
    (tmp_path / "verify" / "smoke").mkdir()
    (tmp_path / "verify" / "smoke" / "verify.json").write_text("{}")
    with pytest.raises(InvalidInput) as err:
        read_audit(failed)
    assert str(err.value) == (f"{failed}: a work dir of `auditor verify` kept for reading from a verify attempt that did "
                              f"not finish, not a run's report folder: it holds no verdict; {tmp_path / 'verify' / 'smoke'} "
                              "holds the evidence of another verify of it")


def test_history_file_warning_compares_every_epoch_figure_both_files_hold(tmp_path: Path) -> None:
    """metrics.csv is written with audit.json from the same epochs: a figure edited in one of them is said."""
    from auditor.audit import history_file_problem, history_file_warning, write_csv

    history = [{"epoch": 1, "val_acc": 0.5966666666666667, "val_loss": None, "lr": 0.1},
               {"epoch": 2, "val_acc": 0.25, "val_loss": None, "lr": 0.01}]  # fmt: skip
    # As a run writes them: metrics.csv from the epochs as computed, audit.json with null for NaN and inf.
    computed = [{**history[0], "steps": 3}, {**history[1], "val_loss": float("nan"), "train_loss": float("inf"), "steps": 3}]
    write_csv(tmp_path / "metrics.csv", computed, ["epoch", "steps", "lr", "train_loss", "val_loss", "val_acc"])
    history[1]["train_loss"] = None
    audit = {"training": {"history": history}}
    assert history_file_warning(tmp_path, audit) is None
    assert history_file_warning(tmp_path / "elsewhere", audit) is None  # a record without its metrics.csv
    edited = {"training": {"history": [history[0], {**history[1], "lr": 0.02}]}}
    assert "(epoch 2 lr: 0.01 in metrics.csv, 0.02 in audit.json)" in str(history_file_warning(tmp_path, edited))
    fewer = {"training": {"history": history[:1]}}
    assert "(2 epochs in metrics.csv, 1 in audit.json)" in str(history_file_warning(tmp_path, fewer))
    filled = {"training": {"history": [{**history[0], "val_loss": 1.5}, history[1]]}}
    assert "(epoch 1 val_loss: empty in metrics.csv, 1.5 in audit.json)" in str(history_file_warning(tmp_path, filled))
    text = (tmp_path / "metrics.csv").read_text()
    lines = text.splitlines()
    # a row cut short was a traceback (the review)
    (tmp_path / "metrics.csv").write_text("\n".join([lines[0], lines[1], lines[2].rsplit(",", 2)[0]]) + "\n")
    assert "(epoch 2 val_acc: missing in metrics.csv, 0.25 in audit.json)" in str(history_file_warning(tmp_path, audit))
    (tmp_path / "metrics.csv").write_text(text.replace(",lr,", ",rate,"))  # a column renamed
    assert "(no column 'lr' in metrics.csv)" in str(history_file_warning(tmp_path, audit))
    (tmp_path / "metrics.csv").write_bytes(b"epoch\n\xff\n")
    problem = history_file_problem(tmp_path, audit)
    assert problem is not None and not problem.edited and "unreadable" in problem.text  # not said to be an edit


def test_a_run_of_a_verify_set_aside_is_said_to_be_one(tmp_path: Path) -> None:
    """A user test: `check verify/smoke.old/a/reports/smoke` (a verify killed while a later one ran)
    passed with no word that it was an earlier verification set aside."""
    from auditor.audit import verify_attempt_note

    later, aside = tmp_path / "verify/smoke", tmp_path / "verify/smoke.old"
    run_a = aside / "a/reports/smoke"
    run_a.mkdir(parents=True)
    (aside / VERIFY_MARKER).write_text("")
    (aside / "verify.json").write_text("{}")
    said = f"{run_a} is a run of an earlier verify, set aside in {aside} when a later one started in {later}; "
    assert verify_attempt_note(run_a, verified=True) == said + (
        "that one has not finished (stopped, or running now): the next verify puts this back in place")
    later.mkdir()
    (later / "verify.json").write_text("{}")
    assert verify_attempt_note(run_a, verified=True) == said + "that one finished (its verify.json is there): this is superseded"
    assert verify_attempt_note(later / "a/reports/smoke") is None  # not a verify's work dir: no marker
