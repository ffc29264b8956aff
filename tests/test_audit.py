"""Tests for the audit record's files: atomic JSON/CSV writing and reading audit.json back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from auditor.audit import finite_or_none, read_audit, write_json
from auditor.errors import InvalidInput


def test_non_finite_floats_are_written_as_null(tmp_path: Path) -> None:
    """A diverged loss (NaN) or an overflow (inf) must not make the record unreadable JSON."""
    record = {"loss": math.nan, "lr": math.inf, "hist": [1.0, -math.inf, (2.0, math.nan)], "ok": 0.5, "n": 3}
    write_json(tmp_path / "a.json", record)
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"loss": None, "lr": None, "hist": [1.0, None, [2.0, None]], "ok": 0.5, "n": 3}
    assert "NaN" not in text and "Infinity" not in text
    assert finite_or_none({"x": [math.inf]}) == {"x": [None]}


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
    with pytest.raises(InvalidInput, match=r"audit\.json: not an audit record: the key 'verdict' twice in one object"):
        read_audit(tmp_path)
    for version in ("true", "1.0"):
        record = json.loads(text)
        (tmp_path / "audit.json").write_text(json.dumps(record).replace('"schema_version": 1', f'"schema_version": {version}'))
        with pytest.raises(InvalidInput, match=f"unsupported audit schema_version {version.title() if version == 'true' else version}"):
            read_audit(tmp_path)


def test_a_record_nested_too_deeply_to_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "audit.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInput, match=r"audit\.json: unreadable audit record \(nested too deeply to read\)"):
        read_audit(tmp_path)


def test_a_record_whose_statuses_disagree_is_refused(tmp_path: Path) -> None:
    """Edited by hand: the sheet would say DIVERGED in its title and tick 'finished without divergence'."""
    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    record["run"]["status"] = "diverged"
    (tmp_path / "audit.json").write_text(json.dumps(record))
    with pytest.raises(InvalidInput, match=r"its statuses disagree \(run\.status 'diverged', training\.status "
                                           r"'completed', metrics\.status 'completed'\): the record was edited"):
        read_audit(tmp_path)
    del record["metrics"]["status"], record["training"]["status"]  # not every record holds all three
    (tmp_path / "audit.json").write_text(json.dumps(record))
    assert read_audit(tmp_path)["run"]["status"] == "diverged"


def test_a_resolved_yaml_that_no_longer_holds_the_recorded_spec_is_warned_of(tmp_path: Path) -> None:
    from auditor.audit import resolved_yaml_warning
    from auditor.spec import resolved_yaml

    record = json.loads((FIXTURES / "audit_golden.json").read_text())
    yaml_file = tmp_path / "spec.resolved.yaml"
    # Gone, or a folder in its place: the sheet's first Reproduce command would fail.
    assert resolved_yaml_warning(tmp_path, record) == (
        f"{yaml_file} is missing: the sheet and check go by audit.json, but the sheet's first Reproduce command "
        "retrains from that file")  # fmt: skip
    yaml_file.mkdir()
    assert (resolved_yaml_warning(tmp_path, record) or "").startswith(f"{yaml_file} is not a file: ")
    yaml_file.rmdir()
    yaml_file.write_text(resolved_yaml(record["spec"]))
    assert resolved_yaml_warning(tmp_path, record) is None  # as the run wrote it
    yaml_file.write_text(yaml_file.read_text().replace("lr: 0.05", "lr: 0.5"))
    warning = resolved_yaml_warning(tmp_path, record)
    assert warning is not None and warning.startswith(f"{yaml_file} does not hold the spec audit.json records (sha256 ")
    assert f"recorded {record['spec_hash'][:12]})" in warning and "retrains from that file" in warning
    yaml_file.write_text("a: [unclosed")
    assert "(sha256 unreadable: " in (resolved_yaml_warning(tmp_path, record) or "")
