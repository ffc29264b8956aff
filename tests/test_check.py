"""Tests for the check stage: evaluating, loading and reporting criteria."""

from __future__ import annotations

import errno
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from auditor.check import (
    CriterionResult,
    criteria_changes,
    evaluate_criteria,
    format_value,
    judge,
    junit_error_xml,
    junit_xml,
    load_criteria,
    overall,
    render_lines,
    shown_measured,
    verdict,
    write_junit,
    write_junit_text,
)
from auditor.errors import InvalidInput
from auditor.spec import parse_criterion


def check_one(
    metric: str, expr: str, value: Any, notes: dict[str, str] | None = None, allow_tolerance: bool = True
) -> CriterionResult:
    """Evaluate the single criterion `metric: expr` against one measured value (in a run whose
    verify.allow_tolerance is `allow_tolerance`)."""
    (result,) = evaluate_criteria([parse_criterion(metric, expr)], {metric: value}, notes, allow_tolerance)
    return result


# --- numeric operators ----------------------------------------------------

NUMERIC_CASES = [
    # (metric, expr, measured, passes)
    ("test_acc", ">= 0.85", 0.85, True),  # >= at equality passes
    ("test_acc", ">= 0.85", 0.8712, True),
    ("test_acc", ">= 0.85", 0.8499, False),
    ("test_acc", "> 0.85", 0.85, False),  # > at equality fails
    ("test_acc", "> 0.85", 0.8501, True),
    ("latency_ms", "<= 10", 10.0, True),
    ("latency_ms", "<= 10", 10.01, False),
    ("latency_ms", "< 10", 10.0, False),
    ("latency_ms", "< 10", 9.99, True),
    ("latency_ms", "< 10", 12.31, False),
    ("params_m", "== 0.269722", 0.269722, True),
    # == tolerates float noise of ~1e-9 relative, not more
    ("params_m", "== 0.3", 0.1 + 0.2, True),
    ("params_m", "== 0.269722", 0.269723, False),
    ("images_per_s", "== 1000", 1000 * (1 + 5e-10), True),
    ("images_per_s", "== 1000", 1000 * (1 + 5e-9), False),
    ("params_m", "!= 0.3", 0.1 + 0.2, False),  # != is the negation of == with the same slack
    ("params_m", "!= 0.3", 0.31, True),
    # +- at exactly the tolerance passes, also where binary rounding
    # makes |0.88 - 0.87| a hair above 0.01
    ("final_val_acc", "0.5 +- 0.25", 0.75, True),
    ("final_val_acc", "0.5 +- 0.25", 0.25, True),
    ("final_val_acc", "0.87 +- 0.01", 0.88, True),
    ("final_val_acc", "0.87 +- 0.01", 0.86, True),
    ("final_val_acc", "0.87 +- 0.01", 0.8801, False),
    ("final_val_acc", "0.87 +- 0.01", 0.8599, False),
    ("final_val_acc", "0.87 +- 0", 0.87, True),
    ("train_time_s", "< 60", 59, True),  # ints are numbers too
    ("latency_ms", "< 10", math.inf, False),
    ("latency_ms", "> 10", math.inf, False),  # not finite: never a measurement
]


@pytest.mark.parametrize(("metric", "expr", "measured", "passes"), NUMERIC_CASES)
def test_numeric_operators(metric: str, expr: str, measured: float, passes: bool) -> None:
    result = check_one(metric, expr, measured)
    assert result.passed is passes
    assert result.measured == float(measured)
    assert isinstance(result.measured, float)
    assert result.detail


def test_result_carries_the_parsed_criterion() -> None:
    result = check_one("final_val_acc", " 0.87 +- 0.01 ", 0.88)
    assert (result.metric, result.expr, result.op) == ("final_val_acc", "0.87 +- 0.01", "+-")
    assert (result.threshold, result.tolerance) == (0.87, 0.01)


@pytest.mark.parametrize(
    ("metric", "expr", "measured", "detail"),
    [
        ("test_acc", ">= 0.85", 0.8712, "0.8712 >= 0.85"),
        ("latency_ms", "< 10", 12.3094, "12.31 >= 10"),
        ("test_acc", "> 0.85", 0.85, "0.8500 <= 0.85"),
        ("status", "== completed", "diverged", "diverged != completed"),
        ("final_val_acc", "0.87 +- 0.01", 0.9, "|0.9000 - 0.87| = 0.03 > 0.01"),
        # rounded where the rounding keeps the outcome: the difference is printed beside it
        ("final_val_acc", "0.87 +- 0.01", 0.8723456789, "|0.8723 - 0.87| = 0.00235 <= 0.01"),
        ("final_val_acc", "0.87 +- 0.01", 0.88000004, "|0.88000004 - 0.87| = 0.010000039999999988 > 0.01"),
        ("final_val_acc", "== 0.87", 0.8700001, "0.8700001 != 0.87"),
        # within REL_EPS: equal for the gate, and said so (a user test: "35.67301590699935 == 35.67301591")
        ("train_time_s", "!= 35.67301591", 35.67301590699935,
         "35.67301590699935 == 35.67301591 (equal within the slack ==, != and +- allow: 1e-9, times the threshold where it is above 1)"),
        ("test_acc", "== 0.9600000009", 0.96, ("0.9600 == 0.9600000009 (equal within the slack ==, != and +- allow: 1e-9, "
                                               "times the threshold where it is above 1)")),
        ("test_acc", "== 0.96", 0.96, "0.9600 == 0.96"),  # exactly equal: nothing to say
        ("test_acc", "0.95 +- 0.01", 0.96, ("|0.9600 - 0.95| = 0.01 <= 0.01 (within the slack ==, != and +- allow: 1e-9, "
                                            "times the threshold where it is above 1)")),  # 0.96 - 0.95 is 0.010000000000000009 in floats
    ],
)
def test_detail_text(metric: str, expr: str, measured: object, detail: str) -> None:
    assert check_one(metric, expr, measured).detail == detail


def test_rounding_never_makes_a_failure_look_like_a_pass() -> None:
    result = check_one("test_acc", ">= 0.85", 0.84996)
    assert not result.passed
    assert result.detail == "0.84996 < 0.85"  # not "0.8500 < 0.85"


@pytest.mark.parametrize(("expr", "measured", "detail", "passed"), [
    ("< 1.04", 1.0439, "1.0439 >= 1.04", False),  # a user test: "1.04 >= 1.04" hid why it failed
    ("<= 1.04", 1.0361, "1.0361 <= 1.04", True),
    ("> 1.04", 1.0361, "1.0361 <= 1.04", False),
    ("< 1.04", 1.05, "1.05 >= 1.04", False),  # rounding that shows another number stays rounded
    ("< 1.04", 1.04, "1.04 >= 1.04", False),
])  # fmt: skip
def test_a_rounded_value_that_reads_as_the_threshold_is_shown_exactly(
    expr: str, measured: float, detail: str, passed: bool
) -> None:
    result = check_one("latency_ms", expr, measured)
    assert (result.detail, result.passed) == (detail, passed)
    assert shown_measured(result) == detail.split()[0]


# --- missing, NaN and wrong-typed values ----------------------------------


@pytest.mark.parametrize(("metric", "expr"), [("best_val_acc", ">= 0.9"), ("status", "!= diverged")])
def test_none_fails_with_the_note_as_reason(metric: str, expr: str) -> None:
    result = check_one(metric, expr, None, notes={metric: "no validation split"})
    assert result.passed is False
    assert result.measured is None
    assert result.detail == "not measured: no validation split"


def test_missing_metric_fails_even_without_a_note() -> None:
    (result,) = evaluate_criteria([parse_criterion("latency_ms", "< 10")], {})
    assert result.passed is False
    assert result.measured is None
    assert result.detail.startswith("not measured")


@pytest.mark.parametrize(
    ("metric", "expr"),
    [
        ("test_acc", ">= 0.0"),
        ("latency_ms", "< 1e9"),
        ("final_val_acc", "0.5 +- 1"),
        ("status", "!= diverged"),  # NaN must not satisfy a negation
    ],
)
def test_nan_fails_with_a_reason(metric: str, expr: str) -> None:
    result = check_one(metric, expr, math.nan)
    assert result.passed is False
    assert isinstance(result.measured, float) and math.isnan(result.measured)
    assert "NaN" in result.detail


@pytest.mark.parametrize(
    ("metric", "expr", "value"),
    [
        ("test_acc", ">= 0.5", "0.9"),  # a string is not a number
        ("test_acc", ">= 0.0", True),  # nor is a bool
        ("status", "!= diverged", 1.0),  # a number is not a category
    ],
)
def test_wrong_type_fails(metric: str, expr: str, value: object) -> None:
    result = check_one(metric, expr, value)
    assert result.passed is False
    assert "not a" in result.detail


# --- categorical operators ------------------------------------------------

CATEGORICAL_CASES = [
    ("status", "== completed", "completed", True, "completed"),
    ("status", "== completed", "early_stopped", False, "early_stopped"),
    ("status", "!= diverged", "completed", True, "completed"),
    ("status", "!= diverged", "diverged", False, "diverged"),
    ("reproducible", "== bitwise", "bitwise", True, "bitwise"),
    ("reproducible", "== bitwise", "tolerance", False, "tolerance"),
    ("reproducible", "== tolerance", "tolerance", True, "tolerance"),
    ("reproducible", "== tolerance", "bitwise", True, "bitwise"),  # identical is within any tolerance
    ("reproducible", "== tolerance", "unresumed", False, "unresumed"),
    ("reproducible", "== tolerance", "diverged", False, "diverged"),
    ("official_data", "== true", True, True, "true"),
    ("official_data", "== true", False, False, "false"),
    ("official_data", "!= true", False, True, "false"),
    ("official_data", "!= false", False, False, "false"),
    ("official_data", "== false", "false", True, "false"),  # already a string
]


@pytest.mark.parametrize(("metric", "expr", "value", "passes", "measured"), CATEGORICAL_CASES)
def test_categorical_operators(metric: str, expr: str, value: object, passes: bool, measured: str) -> None:
    result = check_one(metric, expr, value)
    assert result.passed is passes
    assert result.measured == measured


def test_a_bitwise_verdict_meets_a_tolerance_criterion_and_says_why() -> None:
    result = check_one("reproducible", "== tolerance", "bitwise")
    assert result.passed and result.detail == "bitwise meets tolerance (identical is within any tolerance)"
    assert check_one("reproducible", "== bitwise", "bitwise").detail == "bitwise == bitwise"


def test_a_tolerance_verdict_meets_no_criterion_where_the_spec_does_not_allow_tolerance() -> None:
    """verify fails a `tolerance` verdict unless verify.allow_tolerance: so do the criteria."""
    result = check_one("reproducible", "== tolerance", "tolerance", allow_tolerance=False)
    assert not result.passed and result.measured == "tolerance"
    assert "verify.allow_tolerance is false, so verify failed that verdict" in result.detail
    assert render_lines([result])[0].endswith(f"({result.detail})")  # not just "(measured tolerance)"
    assert check_one("reproducible", "== tolerance", "bitwise", allow_tolerance=False).passed


def test_a_reproducible_criterion_given_now_is_held_to_allow_tolerance_but_the_run_s_own_is_not() -> None:
    with pytest.raises(InvalidInput, match=r"--set 'criteria\.reproducible=== bitwise': criteria\.reproducible: '== bitwise' fails a tolerance verdict"):
        load_criteria({}, None, ["criteria.reproducible=== bitwise"], allow_tolerance=True)
    assert load_criteria({}, None, ["criteria.reproducible=== tolerance"], allow_tolerance=True)
    own = {"reproducible": "== tolerance"}  # recorded before the rule: judged as it stands
    assert load_criteria(own, None, [], allow_tolerance=False) == own
    assert load_criteria({}, None, ["criteria.reproducible=== tolerance"]) == own  # not held where not known


def test_check_reads_allow_tolerance_from_the_record() -> None:
    audit: dict[str, Any] = {"spec": {"verify": {"allow_tolerance": False}}, "metrics": {"reproducible": "tolerance"}}
    assert not judge({"reproducible": "== tolerance"}, audit)[0].passed
    audit["spec"]["verify"]["allow_tolerance"] = True
    assert judge({"reproducible": "== tolerance"}, audit)[0].passed


def test_a_failed_tolerance_criterion_prints_how_far_off_it_was() -> None:
    line = render_lines([check_one("test_acc", "0.9 +- 0.01", 0.5)])[0]
    assert line == "FAIL  test_acc 0.9 +- 0.01  (|0.5000 - 0.9| = 0.4 > 0.01)"


def test_evaluate_keeps_order_and_overall() -> None:
    criteria = [parse_criterion("test_acc", ">= 0.5"), parse_criterion("status", "== completed")]
    results = evaluate_criteria(criteria, {"test_acc": 0.9, "status": "diverged"})
    assert [r.metric for r in results] == ["test_acc", "status"]
    assert [r.passed for r in results] == [True, False]
    assert overall(results) is False
    assert overall(results[:1]) is True
    assert overall([]) is True


# --- load_criteria --------------------------------------------------------

BASE = {"test_acc": ">= 0.85", "latency_ms": "< 10"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_without_file_or_sets_keeps_the_run_criteria() -> None:
    assert load_criteria(BASE, None, []) == BASE


def test_criteria_file_replaces_the_run_criteria(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", 'status: "== completed"\ntest_acc: ">= 0.9"\n')
    assert load_criteria(BASE, f, []) == {"status": "== completed", "test_acc": ">= 0.9"}


def test_criteria_file_in_spec_shape(tmp_path: Path) -> None:
    f = write(
        tmp_path / "spec.yaml",
        'name: x\ntrain:\n  epochs: 3\ncriteria:\n  test_acc: ">= 0.5"\n  official_data: "== true"\n',
    )
    assert load_criteria(BASE, f, []) == {"test_acc": ">= 0.5", "official_data": "== true"}


def test_spec_file_without_criteria_is_rejected(tmp_path: Path) -> None:
    # It would replace the run's criteria with nothing and pass vacuously.
    f = write(tmp_path / "spec.yaml", "name: x\ntrain:\n  epochs: 3\n")
    with pytest.raises(InvalidInput, match=r"spec\.yaml: criteria: missing"):
        load_criteria(BASE, f, [])


def test_a_criterion_no_value_passes_is_refused_in_check_unless_the_run_recorded_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"--set 'criteria\.latency_ms=< -5': criteria\.latency_ms: '< -5' can never pass: latency_ms is never below 0"):
        load_criteria(BASE, None, ["criteria.latency_ms=< -5"])
    f = write(tmp_path / "c.yaml", 'test_acc: "> 1"\n')
    with pytest.raises(InvalidInput, match=r"c\.yaml:1: criteria\.test_acc: '> 1' can never pass: test_acc is always in \[0, 1\]"):
        load_criteria(BASE, f, [])
    assert load_criteria({"test_acc": "> 1"}, None, []) == {"test_acc": "> 1"}  # an older run's own: judged
    # One that every value passes is kept (README): it still gates that the metric was measured.
    assert load_criteria(BASE, None, ["criteria.latency_ms=>= 0"])["latency_ms"] == ">= 0"
    (result,) = evaluate_criteria([parse_criterion("latency_ms", ">= 0")], {})
    assert not result.passed and result.detail.startswith("not measured")


def test_a_set_of_a_criterion_without_its_equals_sign_says_so() -> None:
    """The user test: `--set criteria.test_acc` was told only criteria.<metric>=EXPR can be set, which it is."""
    with pytest.raises(InvalidInput, match=re.escape("--set 'criteria.test_acc': no '=' and no EXPR: write "
                                                     "criteria.test_acc=EXPR, or criteria.test_acc=null to remove it")):  # fmt: skip
        load_criteria(BASE, None, ["criteria.test_acc"])
    for other in ("criteria.nonsense", "train.lr"):  # another's problem comes first
        with pytest.raises(InvalidInput, match="can be set in check"):
            load_criteria(BASE, None, [other])


def test_precedence_run_then_file_then_set(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", 'test_acc: ">= 0.9"\nparams_m: "< 12"\n')
    got = load_criteria(
        {"test_acc": ">= 0.1", "status": "== completed"},
        f,
        ["criteria.test_acc=>= 0.95", "criteria.reproducible=== bitwise"],
    )
    # status came only from the run, so the file dropped it
    assert got == {"test_acc": ">= 0.95", "params_m": "< 12", "reproducible": "== bitwise"}


def test_set_overrides_run_criteria_without_file() -> None:
    got = load_criteria(BASE, None, ["criteria.latency_ms=< 5", "criteria.status=!= diverged"])
    assert got == {"test_acc": ">= 0.85", "latency_ms": "< 5", "status": "!= diverged"}


@pytest.mark.parametrize("null", ["null", "~", "Null"])
def test_set_null_removes_a_criterion(null: str) -> None:
    assert load_criteria(BASE, None, [f"criteria.latency_ms={null}"]) == {"test_acc": ">= 0.85"}


@pytest.mark.parametrize("empty", ["", "  ", '""', "''"])
def test_set_empty_value_is_refused_not_taken_to_remove_the_gate(empty: str) -> None:
    """`--set criteria.test_acc=$THRESHOLD` with the variable unset must not drop the gate."""
    with pytest.raises(InvalidInput, match="criteria.latency_ms: empty; write an expression"):
        load_criteria(BASE, None, [f"criteria.latency_ms={empty}"])


def test_set_removing_an_absent_criterion_is_fine_and_noted() -> None:
    assert load_criteria(BASE, None, ["criteria.status=null"]) == BASE
    notes: list[str] = []
    sets = ["criteria.status=null", "criteria.params_m=< 9", "criteria.params_m=null", "criteria.params_m=null"]
    assert load_criteria(BASE, None, sets, notes=notes) == BASE
    held = "they hold test_acc, latency_ms"
    said = "removes nothing: the criteria before it hold no"
    assert notes == [f"--set 'criteria.status=null' {said} status ({held})",
                     f"--set 'criteria.params_m=null' {said} params_m ({held})"]
    notes.clear()
    load_criteria(BASE, None, ["criteria={}", "criteria.test_acc=null"], notes=notes)
    assert notes == [f"--set 'criteria.test_acc=null' {said} test_acc (they hold none)"]


@pytest.mark.parametrize(("given", "fixed"), [
    (" criteria.test_acc=>= 0.5", "'criteria.test_acc=>= 0.5'"), ("criteria.test_acc = >= 0.5", "'criteria.test_acc=>= 0.5'"),
    ("criteria .test_acc=null", "criteria.test_acc=null"), (" criteria={test_acc: 0.5}", "'criteria={test_acc: 0.5}'"),
])  # fmt: skip
def test_a_set_key_with_a_space_at_its_start_or_end_is_refused_as_in_run(given: str, fixed: str) -> None:
    """A review: check stripped the key and went on, where `run`, `validate` and `ablate` refuse it."""
    with pytest.raises(InvalidInput) as err:
        load_criteria(BASE, None, [given])
    key = given.partition("=")[0]
    assert str(err.value) == (f"--set {given!r}: its KEY has a space at the start or end of {key!r}; no spec key has "
                              f"one: write --set {fixed}")  # fmt: skip


def test_set_quoted_value_is_unquoted() -> None:
    assert load_criteria({}, None, ["criteria.test_acc='>= 0.5'"]) == {"test_acc": ">= 0.5"}


def test_a_criteria_file_error_names_its_line(tmp_path: Path) -> None:
    """As a spec's errors do: `c.yaml:3: criteria.params_m: ...` (they had named the file alone)."""
    f = write(tmp_path / "c.yaml", '# gates\ntest_acc: ">= 0.5"\nparams_m: "<< 5"\n')
    with pytest.raises(InvalidInput, match=f"^{f}:3: criteria.params_m: cannot parse '<< 5'"):
        load_criteria(BASE, f, [])
    f = write(tmp_path / "c.yaml", 'name: x\ncriteria:\n  test_acc: ">= 0.5"\n\n  latency_ms: "< -5"\n')
    with pytest.raises(InvalidInput, match=f"^{f}:5: criteria.latency_ms: "):
        load_criteria(BASE, f, [])
    with pytest.raises(InvalidInput, match=r"^--set 'criteria.latency_ms=<< 5': criteria.latency_ms: cannot parse"):
        load_criteria(BASE, f, ["criteria.latency_ms=<< 5"])  # a --set over the file's entry: the --set named


def test_file_entries_with_no_value_and_empty_ones_are_refused(tmp_path: Path) -> None:
    """An entry a template left empty (`latency_ms: ${UNSET}`) must not drop the gate."""
    for text, line in (('test_acc: ">= 0.5"\nlatency_ms:\n', 2), ('criteria:\n  test_acc: ">= 0.5"\n  latency_ms: ~\n', 3)):
        f = write(tmp_path / "c.yaml", text)
        with pytest.raises(InvalidInput, match=f"{f}:{line}: criteria.latency_ms: no value; write an expression"):
            load_criteria(BASE, f, [])
    f = write(tmp_path / "c.yaml", 'test_acc: ">= 0.5"\nstatus: ""\n')
    with pytest.raises(InvalidInput, match="criteria.status: empty; write an expression"):
        load_criteria(BASE, f, [])
    f = write(tmp_path / "c.yaml", "params_m: >1\n")  # a user test: YAML reads `>1` as a block, empty
    with pytest.raises(InvalidInput) as err:
        load_criteria(BASE, f, [])
    assert str(err.value).startswith(f"{f}:1: criteria.params_m: empty; write an expression")
    assert str(err.value).endswith("if you wrote `>1` or `|1` unquoted in a YAML file, quote it: YAML reads that as an empty block")


def test_empty_criteria_section_clears_everything(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", "criteria: {}\n")
    assert load_criteria(BASE, f, []) == {}


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        ('test_acc: ">= abc"\n', "criteria.test_acc", "cannot parse"),
        ('criteria:\n  latency_ms: "<< 3"\n', "criteria.latency_ms", "cannot parse"),
        ('test_acc: ">= 85"\n', "criteria.test_acc", "fraction"),
        ('status: "== finished"\n', "criteria.status", "cannot parse"),
        # != would pass a failed verification (unresumed, tolerance without allow_tolerance)
        ('reproducible: "!= diverged"\n', "criteria.reproducible", "name the verdict that passes, '== bitwise'"),
        # == a failing verdict would pass what verify fails
        ('reproducible: "== diverged"\n', "criteria.reproducible", "name the verdict that passes, '== bitwise'"),
        ('reproducible: "== unresumed"\n', "criteria.reproducible", "name the verdict that passes, '== bitwise'"),
        ('bogus_metric: ">= 1"\n', "criteria.bogus_metric", "unknown metric"),
        ("test_acc: 0.85\n", "criteria.test_acc", "quoted string"),
    ],
)
def test_bad_file_entry_names_file_and_field(tmp_path: Path, content: str, field: str, reason: str) -> None:
    f = write(tmp_path / "ci-criteria.yaml", content)
    with pytest.raises(InvalidInput) as info:
        load_criteria({}, f, [])
    msg = str(info.value)
    line = 2 if content.startswith("criteria:") else 1
    assert msg.startswith(f"{f}:{line}: {field}: ")
    assert reason in msg


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        ("criteria.test_acc=>= abc", "criteria.test_acc", "cannot parse"),
        ("criteria.official_data=== maybe", "criteria.official_data", "cannot parse"),
        ("criteria.latency_ms=0.5 +- -1", "criteria.latency_ms", "tolerance must be >= 0"),
        ("criteria.latency_ms=0.5 +- -0", "criteria.latency_ms", "tolerance must be >= 0"),  # the schema refuses it too
        ("criteria.nope=>= 1", "criteria.nope", "unknown metric"),
        ("criteria.nope=", "criteria.nope", "unknown metric"),  # a typo, even when removing
        # as run and validate say it: an unquoted number is no criterion (it had read "cannot parse '0.5'")
        ("criteria.test_acc=0.5", "criteria.test_acc", 'must be a quoted string like ">= 0.85", got 0.5'),
        ("criteria.official_data=true", "criteria.official_data", "must be a quoted string"),
        # quoted, it still names no comparison (the user test: quoting alone had not helped)
        ("criteria.test_acc='0.5'", "criteria.test_acc", 'no comparison: write, e.g., ">= 0.5"'),
    ],
)
def test_bad_set_names_set_and_field(item: str, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_criteria(BASE, None, [item])
    msg = str(info.value)
    assert msg.startswith(f"--set {item!r}: {field}: ")  # the item as given, as run and validate name it
    assert reason in msg


@pytest.mark.parametrize(
    "item",
    [
        "train.epochs=5",
        "seed=1",
        "criteria.=x",
        "criteria.test_acc.x=>= 1",
        "criteria.nonsense",  # no `=`, no known metric (criteria.test_acc: test_a_set_of_a_criterion_without_its_...)
        " criteria.=x",
        "criteria.a. b=x",
    ],
)
def test_set_outside_criteria_is_rejected(item: str) -> None:
    """(` criteria.=x` and `criteria.a. b=x`: a review; a fix that check then refuses was offered.)"""
    with pytest.raises(InvalidInput) as info:
        load_criteria(BASE, None, [item])
    msg = str(info.value)
    assert "--set" in msg and repr(item) in msg
    assert "only criteria." in msg and "in check" in msg


def test_a_criteria_mapping_set_in_check_replaces_them_as_in_run() -> None:
    """The user test: `check --set 'criteria={...}'` was refused, though `run` and `validate` take it."""
    assert load_criteria(BASE, None, ['criteria={test_acc: ">= 0.1", status: == completed}']) == {
        "test_acc": ">= 0.1", "status": "== completed"}
    assert load_criteria(BASE, None, ["criteria=null"]) == load_criteria(BASE, None, ["criteria={}"]) == {}
    assert load_criteria(BASE, None, ["criteria={test_acc: 0.5 +- 0.5}", "criteria.status=== completed"]) == {
        "test_acc": "0.5 +- 0.5", "status": "== completed"}  # a later item changes what it gave
    assert load_criteria(BASE, None, ["criteria.status=== completed", "criteria={test_acc: '>= 0.1'}"]) == {
        "test_acc": ">= 0.1"}  # and it replaces what an earlier one gave


@pytest.mark.parametrize(
    ("item", "needle"),
    [("criteria=", "criteria: must be a mapping of metric: expression, got ''"),  # an unset variable
     ("criteria=x", "criteria: must be a mapping of metric: expression, got 'x'"),
     ("criteria=[1]", "criteria: must be a mapping"),
     ("criteria={test_acc: }", "criteria.test_acc: no value; write an expression"),
     ("criteria={test_acc: ''}", "criteria.test_acc: empty; write an expression"),
     ("criteria={bogus: '>= 1'}", "--set \"criteria={bogus: '>= 1'}\": criteria.bogus: unknown metric 'bogus'"),
     ("criteria={test_acc: 0.5}", "criteria.test_acc: must be a quoted string like \">= 0.85\", got 0.5"),  # as run says
     ("criteria={test_acc: '>= 2'}", "criteria.test_acc: test_acc is a fraction in [0, 1], got '>= 2'")],  # not 2.0
)  # fmt: skip
def test_a_criteria_mapping_that_could_drop_or_break_a_gate_is_refused(item: str, needle: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_criteria(BASE, None, [item])
    assert needle in str(info.value)


def test_bad_run_criterion_names_its_source() -> None:
    with pytest.raises(InvalidInput, match=r"^runs/x/audit\.json: criteria\.test_acc: cannot parse"):
        load_criteria({"test_acc": "about 0.9"}, None, [], base_source="runs/x/audit.json")


def test_bad_run_criterion_is_fine_once_replaced(tmp_path: Path) -> None:
    f = write(tmp_path / "c.yaml", 'test_acc: ">= 0.9"\n')
    assert load_criteria({"test_acc": "about 0.9"}, f, []) == {"test_acc": ">= 0.9"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("test_acc: >= 0.85\n", ':1: not valid YAML (quote expressions, e.g. test_acc: ">= 0.85"): '),  # `>` is YAML syntax
        ("[" * 20_000 + "]" * 20_000, ":1: YAML too large to read: nested more than 64 levels deep"),  # was a RecursionError
        ('test_acc: ">= 0.85"\ntest_acc: ">= 0.9"\n', ":2: duplicate key 'test_acc' (first given on line 1)"),  # no quoting hint
        ("- a\n- b\n", "must be a YAML mapping"),
        ("", "criteria file is empty (expected lines of metric: expression"),  # not "no criteria": a gate never passes by default
        ("# nothing yet\n", "criteria file is empty"),
        ("name: x\ncriteria: [1, 2]\n", ":2: criteria: must be a mapping"),
        # An unset template variable must not drop every gate (`criteria: {}` says so on purpose);
        # at its line (a README walk-through: the file's other errors gave theirs).
        ("criteria:\n", ":1: criteria: no value (expected lines of metric: expression under it"),
        # A mis-indented line would be a gate silently dropped.
        ('criteria:\n  test_acc: ">= 0.05"\nlatency_ms: "< 0.001"\n',
         ":3: latency_ms: a metric outside the criteria section (indent it under criteria:)"),  # its line (a user test)
        ('criteria:\n  test_acc: ">= 0.05"\nfoo: 1\n', ":3: foo: neither a spec field nor part of the criteria section"),
    ],
)
def test_malformed_file_is_invalid_input(tmp_path: Path, content: str, reason: str) -> None:
    f = write(tmp_path / "c.yaml", content)
    with pytest.raises(InvalidInput) as info:
        load_criteria(BASE, f, [])
    assert str(info.value).startswith(f"{f}:")  # `FILE: ` or, at a line, `FILE:LINE: `
    assert reason in str(info.value)


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read criteria file"):
        load_criteria(BASE, tmp_path / "nope.yaml", [])


# --- rendering ------------------------------------------------------------


def sample_results() -> list[CriterionResult]:
    criteria = [
        parse_criterion("test_acc", ">= 0.85"),
        parse_criterion("latency_ms", "< 10"),
        parse_criterion("best_val_acc", ">= 0.9"),
        parse_criterion("official_data", "== true"),
    ]
    metrics: dict[str, Any] = {
        "test_acc": 0.8712,
        "latency_ms": 12.3094,
        "best_val_acc": None,
        "official_data": True,
    }
    return evaluate_criteria(criteria, metrics, {"best_val_acc": "no validation split"})


def test_render_lines() -> None:
    assert render_lines(sample_results()) == [
        "PASS  test_acc >= 0.85  (measured 0.8712)",
        "FAIL  latency_ms < 10  (measured 12.31)",
        "FAIL  best_val_acc >= 0.9  (not measured: no validation split)",
        "PASS  official_data == true  (measured true)",
        "2/4 criteria passed: FAIL",
    ]


def test_render_summary_all_pass_and_empty() -> None:
    results = sample_results()
    passing = [results[0], results[3]]
    assert render_lines(passing)[-1] == "2/2 criteria passed: PASS"
    assert render_lines([]) == ["0/0 criteria passed: PASS"]


def test_a_diverged_run_fails_whatever_its_criteria() -> None:
    passing = [sample_results()[0]]
    assert verdict(passing, "completed") == "PASS" and verdict(passing, None) == "PASS"
    assert verdict(passing, "diverged") == "FAIL"
    assert render_lines(passing, "diverged")[-2:] == [
        "FAIL  training diverged: a diverged run fails whatever its criteria say",
        "1/1 criteria passed; training diverged: FAIL",
    ]
    assert render_lines(passing, "completed") == render_lines(passing)
    root = ET.fromstring(junit_xml(passing, "run", "diverged"))
    suite = root.find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failed = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("auditor.run", "training status")]
    assert junit_xml(passing, "run", "completed") == junit_xml(passing, "run")


def test_required_criteria_fail_a_run_that_has_none() -> None:
    passing = [sample_results()[0]]
    assert verdict([], "completed") == "PASS" and verdict([], "completed", require_criteria=True) == "FAIL"
    assert verdict(passing, "completed", require_criteria=True) == "PASS"
    assert render_lines([], "completed", require_criteria=True) == [
        "FAIL  no criteria defined: nothing was gated, and --require-criteria asks for at least one",
        "0/0 criteria passed: FAIL",
    ]
    assert render_lines(passing, None, require_criteria=True) == render_lines(passing)
    suite = ET.fromstring(junit_xml([], "run", "completed", require_criteria=True)).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("1", "1")
    assert junit_xml(passing, "run", require_criteria=True) == junit_xml(passing, "run")


def test_render_nan_and_wrong_type_say_why() -> None:
    nan = check_one("test_acc", ">= 0.5", math.nan)
    text = check_one("test_acc", ">= 0.5", "high")
    lines = render_lines([nan, text])
    assert lines[0] == "FAIL  test_acc >= 0.5  (measured NaN)"
    assert lines[1].startswith("FAIL  test_acc >= 0.5  (measured 'high' is not a number")


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("test_acc", 0.87123, "0.8712"),
        ("latency_ms", 12.3094, "12.31"),
        ("checkpoint_mb", 42.666, "42.67"),
        ("peak_rss_mb", 1024, "1024.00"),
        ("params_m", 0.269722, "0.270"),
        ("status", "completed", "completed"),
        ("latency_ms", math.nan, "nan"),
        ("test_acc", None, "n/a"),
    ],
)
def test_format_value(metric: str, value: float | str | None, text: str) -> None:
    assert format_value(metric, value) == text


# --- JUnit ----------------------------------------------------------------


def test_junit_xml_structure() -> None:
    root = ET.fromstring(junit_xml(sample_results(), "smoke-run"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.attrib == {
        "name": "smoke-run",
        "tests": "4",
        "failures": "2",
        "errors": "0",
        "skipped": "0",
    }
    cases = suite.findall("testcase")
    # named by the metric alone (a user test): a threshold changed stays one test in a CI's history
    assert [c.get("name") for c in cases] == ["test_acc", "latency_ms", "best_val_acc", "official_data"]
    assert {c.get("classname") for c in cases} == {"auditor.criteria"}
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["latency_ms", "best_val_acc"]
    failure = cases[2].find("failure")
    assert failure is not None
    assert failure.get("type") == "CriterionFailed"
    assert failure.get("message") == "best_val_acc >= 0.9: not measured: no validation split"
    assert [c.findtext("system-out") for c in cases] == [f"{r.metric} {r.expr}: {r.detail}" for r in sample_results()]


def test_junit_xml_empty_and_odd_characters() -> None:
    """No criterion (and no --require-criteria): one skipped case, as a CI reader may refuse a
    report of no tests (a user test: `tests="0"`)."""
    suite = ET.fromstring(junit_xml([], "none")).find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("skipped"), suite.get("failures")) == ("1", "1", "0")
    (case,) = suite.findall("testcase")
    assert (case.get("name"), case.find("skipped").get("message")) == (  # type: ignore[union-attr]
        "criteria defined", "no criterion is defined, so nothing was gated; --require-criteria fails this instead")
    required = ET.fromstring(junit_xml([], "none", require_criteria=True)).find("testsuite")
    assert required is not None and (required.get("skipped"), required.get("failures")) == ("0", "1")
    result = check_one("test_acc", ">= 0.5", None, notes={"test_acc": 'bad <"&> \x01 text'})
    root = ET.fromstring(junit_xml([result], "s&<'\""))
    assert root.find("testsuite").get("name") == "s&<'\""  # type: ignore[union-attr]
    assert "bad <\"&>" in root.findtext("testsuite/testcase/system-out", "")


def test_junit_of_a_name_that_is_not_utf8_is_written(tmp_path: Path) -> None:
    """A folder name Python decodes with lone surrogates (bytes that are not UTF-8) is shown as `?`."""
    target = tmp_path / "junit.xml"
    write_junit(sample_results(), "auditor.bad\udcffdir", target)
    assert ET.parse(target).getroot().get("name") == "auditor.bad?dir"


def test_criteria_changes_name_what_was_added_removed_and_replaced() -> None:
    base = {"test_acc": ">= 0.5", "latency_ms": "< 5", "status": None}
    checked = {"test_acc": ">= 0.3", "params_m": "< 1"}
    assert sorted(criteria_changes(base, checked)) == ["latency_ms < 5 removed", "params_m < 1 added",
                                                        "test_acc >= 0.5 -> >= 0.3"]  # fmt: skip
    assert criteria_changes(base, {"test_acc": " >=0.50", "latency_ms": "< 5"}) == []  # judged alike


def test_write_junit(tmp_path: Path) -> None:
    target = tmp_path / "junit.xml"
    write_junit([], "auditor.smoke", target)  # an earlier report, as CI leaves one: replaced
    write_junit(sample_results(), "auditor.smoke", target)
    root = ET.parse(target).getroot()
    assert root.find("testsuite").get("failures") == "2"  # type: ignore[union-attr]
    assert os.listdir(tmp_path) == ["junit.xml"]  # no temp file left behind
    (tmp_path / "empty.xml").touch()  # nothing to lose
    write_junit(sample_results(), "smoke", tmp_path / "empty.xml")
    assert ET.parse(tmp_path / "empty.xml").getroot().tag == "testsuites"


def test_write_junit_never_reads_or_replaces_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # reading it would block until a writer came
    with pytest.raises(InvalidInput, match="pipe: cannot write JUnit report: not a regular file"):
        write_junit(sample_results(), "smoke", fifo)
    with pytest.raises(InvalidInput, match="cannot write JUnit report: not a regular file"):
        write_junit(sample_results(), "smoke", Path(os.devnull))  # reads as empty; root could replace it
    assert Path(os.devnull).is_char_device()


def test_write_junit_never_replaces_a_report_another_tool_wrote(tmp_path: Path) -> None:
    """A user test: a CI job's shared results.xml, pytest's 250 tests, was replaced without a word."""
    other = tmp_path / "results.xml"
    content = b'<?xml version="1.0"?>\n<testsuites><testsuite name="pytest" tests="250"/></testsuites>'
    other.write_bytes(content)
    with pytest.raises(InvalidInput, match="results.xml: cannot write JUnit report: the file there is a JUnit report "
                                           r"another tool wrote \(auditor's is a <testsuites> named auditor.<run>\), and "
                                           "writing would replace it; give another file name"):  # fmt: skip
        write_junit(sample_results(), "auditor.smoke", other)
    assert other.read_bytes() == content
    bare = b'<testsuite name="auditor.smoke" tests="0"/>'  # a user test: its suite *is* named so, as it had been told
    other.write_bytes(bare)
    with pytest.raises(InvalidInput, match=r"another tool wrote \(auditor's is a <testsuites> named auditor.<run>\)"):
        write_junit(sample_results(), "auditor.smoke", other)
    assert other.read_bytes() == bare
    other.write_bytes(b"\xef\xbb\xbf<testsuites name='auditor.smoke'><testsuite/></testsuites>")  # a BOM, no declaration
    write_junit(sample_results(), "auditor.smoke", other)  # an earlier report of auditor's, written otherwise
    assert ET.parse(other).getroot().get("failures") == "2"
    other.write_text(junit_error_xml("auditor.smoke", "bad input"))  # check's report of an error: replaced too
    write_junit(sample_results(), "auditor.smoke", other)
    assert ET.parse(other).getroot().get("errors") == "0"
    # The review: a file that only mentions the root element anywhere in its first 4 KB was taken for a report
    notes = b'# CI notes\nOur gate writes <testsuites name="auditor.smoke"> reports; keep this file!\n'
    other.write_bytes(notes)
    with pytest.raises(InvalidInput, match="the file there is not a JUnit report"):
        write_junit(sample_results(), "auditor.smoke", other)
    assert other.read_bytes() == notes


@pytest.mark.parametrize(
    ("name", "content"),
    [("audit.json", b'{"schema_version": 1}'), ("criteria.yaml", b"test_acc: '>= 0.9'\n"),
     ("REPRODUCIBILITY.md", b"---\nlibrary_name: pytorch\n"), ("best.pt", b"PK\x03\x04weights"),
     ("other.xml", b'<?xml version="1.0"?>\n<project/>\n')],
)  # fmt: skip
def test_write_junit_never_replaces_a_file_that_is_not_a_junit_report(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InvalidInput, match=f"{name}: cannot write JUnit report: the file there is not a JUnit report"):
        write_junit(sample_results(), "smoke", tmp_path / name)
    assert (tmp_path / name).read_bytes() == content and os.listdir(tmp_path) == [name]


def test_write_junit_to_missing_dir_is_invalid_input(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "junit.xml"
    expected = r"junit\.xml: cannot write JUnit report: directory .* does not exist"
    with pytest.raises(InvalidInput, match=expected):
        write_junit(sample_results(), "smoke", target)
    assert not target.parent.exists()


def test_write_junit_onto_a_directory_is_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidInput, match="cannot write JUnit report: a folder; give a file name"):
        write_junit(sample_results(), "smoke", tmp_path / "out")
    assert os.listdir(tmp_path) == ["out"]  # temp file cleaned up


def test_write_junit_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("mine")
    with pytest.raises(InvalidInput, match=f"cannot write JUnit report: {tmp_path / 'f'} is a file, not a folder"):
        write_junit(sample_results(), "smoke", tmp_path / "f" / "sub" / "junit.xml")
    assert (tmp_path / "f").read_text() == "mine"


def refuse_new_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every folder refuses a new file, as one without write permission does (chmod cannot make
    one for root, who may run the tests)."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_write_junit_to_read_only_dir_is_invalid_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_new_files(monkeypatch)
    with pytest.raises(InvalidInput, match=rf"cannot write JUnit report: no file can be made in {tmp_path} "
                                           r"\(Permission denied\)"):  # fmt: skip
        write_junit(sample_results(), "smoke", tmp_path / "junit.xml")
    assert os.listdir(tmp_path) == []


def test_a_criteria_file_with_a_key_twice_is_rejected(tmp_path: Path) -> None:
    """Last-one-wins would silently drop the stricter of two gates."""
    f = tmp_path / "dup.yaml"
    f.write_text('test_acc: ">= 0.9"\ntest_acc: ">= 0.1"\n')
    with pytest.raises(InvalidInput, match=r"dup.yaml:2: duplicate key 'test_acc' \(first given on line 1\)$"):
        load_criteria({}, f, [])


def test_a_criteria_file_that_is_not_text_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInput, match="bin.yaml:1: criteria file is not UTF-8 text"):
        load_criteria({}, f, [])
    f.write_bytes(b'test_acc: ">= 0.5"\n# caf\xe9\n')  # Latin-1 in a comment: the line of its first such byte
    with pytest.raises(InvalidInput, match="bin.yaml:2: criteria file is not UTF-8 text$"):
        load_criteria({}, f, [])


@pytest.mark.parametrize(
    ("metric", "value", "detail"),
    [
        ("best_val_acc", math.inf, "measured inf is not a finite number"),
        ("latency_ms", -math.inf, "measured -inf is not a finite number"),
        ("test_acc", 1.5, "measured 1.5 is not a fraction in [0, 1]"),
        ("latency_ms", -1.0, "measured -1.0 is negative, which no latency_ms can be"),
    ],
)
def test_impossible_measurements_fail_and_say_why(metric: str, value: float, detail: str) -> None:
    """The runner never writes these; a tampered record must not pass a gate with them."""
    (r,) = evaluate_criteria([parse_criterion(metric, ">= 0.5" if metric != "latency_ms" else "< 10")], {metric: value})
    assert not r.passed and r.detail == detail
    assert render_lines([r])[0].endswith(f"({detail})")


def test_a_broken_model_fails_the_gate_whatever_its_criteria_say() -> None:
    """Every loss finite but the last update overflowed the weights: status completed, model inf/NaN."""
    from auditor.check import BROKEN, gate_status

    ok = [check_one("status", "== completed", "completed")]
    assert gate_status("completed", ["fc.weight"]) == BROKEN and gate_status("completed", []) == "completed"
    assert gate_status("diverged", ["fc.weight"]) == "diverged" and gate_status("completed", None) == "completed"
    assert verdict(ok, "completed") == "PASS" and verdict(ok, BROKEN) == "FAIL"
    lines = render_lines(ok, BROKEN)
    assert "FAIL  the model holds inf or NaN weights: a broken model fails whatever its criteria say" in lines
    assert lines[-1] == "1/1 criteria passed; the model is broken: FAIL"
    suite = ET.fromstring(junit_xml(ok, "auditor.x", BROKEN)).find("testsuite")
    assert suite.get("failures") == "1" and suite.find("testcase[@name='model finite']/failure") is not None


def test_a_run_none_of_whose_epochs_could_be_selected_fails_the_gate() -> None:
    """Every epoch's selection loss NaN: no model to offer, whatever its criteria say (a spec
    gating only `status` had passed it)."""
    from auditor.check import BROKEN, UNSELECTED, gate_status, record_gate_status

    ok = [check_one("status", "== completed", "completed")]
    assert gate_status("completed", [], unselected=True) == UNSELECTED
    assert gate_status("diverged", [], unselected=True) == "diverged"  # the first reason is kept
    assert gate_status("completed", ["fc.weight"], unselected=True) == BROKEN
    lines = render_lines(ok, UNSELECTED)
    assert lines[-2] == ("FAIL  no epoch's selection-split loss was a number (the model output inf or NaN), so no model "
                         "was selected: such a run fails whatever its criteria say")  # fmt: skip
    assert lines[-1] == "1/1 criteria passed; no model was selected: FAIL"
    suite = ET.fromstring(junit_xml(ok, "auditor.x", UNSELECTED)).find("testsuite")
    assert suite.find("testcase[@name='model selected']/failure") is not None
    record = {"run": {"status": "completed"}, "measurements": {"nonfinite": []},
              "training": {"history": [{"epoch": 1}], "best_epoch": None}}  # fmt: skip
    assert record_gate_status(record) == UNSELECTED
    assert record_gate_status({**record, "training": {"history": [], "best_epoch": None}}) == "completed"  # no epoch


def test_a_failing_verdict_criterion_is_refused_when_given_and_read_when_recorded(tmp_path: Path) -> None:
    """`== diverged` passes a verdict that fails verify: refused in a new spec or on the command
    line; a record an older version wrote with one is still checked."""
    from auditor.spec import validate_spec

    old = {"reproducible": "== diverged"}
    assert load_criteria(old, None, []) == old  # the run's own, as recorded
    with pytest.raises(InvalidInput, match=r"^--set 'criteria.reproducible=== unresumed': criteria.reproducible: cannot use '== unresumed': name the verdict"):
        load_criteria({}, None, ["criteria.reproducible=== unresumed"])
    spec = {"name": "x", "criteria": {"reproducible": "== incomplete"}}
    assert validate_spec(spec, "old.json", recorded=True).criteria == {"reproducible": "== incomplete"}
    with pytest.raises(InvalidInput, match=r"criteria.reproducible: cannot use '== incomplete'"):
        validate_spec(spec, "new.yaml")
    before = {"reproducible": "!= diverged"}  # what a version before `!=` was refused wrote
    assert load_criteria(before, None, []) == before
    assert validate_spec({"name": "x", "criteria": before}, "old.json", recorded=True).criteria == before
    with pytest.raises(InvalidInput, match=r"^--set 'criteria.reproducible=!= diverged': criteria.reproducible: cannot use '!= diverged'"):
        load_criteria({}, None, ["criteria.reproducible=!= diverged"])


@pytest.mark.parametrize(
    ("expr", "verdict_"),
    [("== unresumed", "unresumed"), ("== diverged", "diverged"), ("== incomplete", "incomplete"),
     ("!= diverged", "unresumed"), ("!= diverged", "bitwise"), ("!= unresumed", "incomplete")],
)  # fmt: skip
def test_a_recorded_criterion_naming_a_failing_verdict_never_passes(expr: str, verdict_: str) -> None:
    """An older version recorded such criteria; whoever wrote one, the gate fails on it (and says
    why), as `auditor run` and `verify` judge it."""
    audit: dict[str, Any] = {"spec": {"verify": {"allow_tolerance": False}}, "metrics": {"reproducible": verdict_}}
    (result,) = judge({"reproducible": expr}, audit)
    assert not result.passed and result.measured == verdict_
    assert result.detail.startswith("the criterion passes only a verdict that fails verification: ")
    assert render_lines([result])[0] == f"FAIL  reproducible {expr}  ({result.detail})"
    assert verdict([result], "completed") == "FAIL"
    (same,) = evaluate_criteria([parse_criterion("reproducible", expr, recorded=True)], audit["metrics"])
    assert same == result  # run and verify judge with evaluate_criteria
    for ok in ("bitwise", "tolerance"):  # the verdicts that pass verify still meet their criterion
        assert judge({"reproducible": "== tolerance"}, {**audit, "metrics": {"reproducible": ok},
                                                          "spec": {"verify": {"allow_tolerance": True}}})[0].passed


# --- a record's metrics against what it measured ----------------------------------------------

GOLDEN = Path(__file__).parent / "fixtures" / "audit_golden.json"


def golden() -> dict[str, Any]:
    import json

    return json.loads(GOLDEN.read_text())


def test_an_accuracy_the_record_shows_withheld_is_an_edit_when_present() -> None:
    """A user test: `measurements.final_nonfinite` set in a record whose final_val_acc stayed was
    gated (PASS) though the sheet said "not reported"; every version that writes that field (and
    `nonfinite`, for test_acc) records the accuracy as null then, with a note."""
    from auditor.check import edited_metrics

    audit = golden()
    audit["measurements"]["final_nonfinite"] = ["conv1.weight"]
    final = audit["metrics"]["final_val_acc"]
    said = "measurements.final_nonfinite names tensors holding inf or NaN, for which a run records null"
    assert edited_metrics(audit) == [f"metrics.final_val_acc {final}, but {said}"]
    audit["metrics"]["final_val_acc"] = None
    for c in audit["criteria"]:
        c["measured"] = None if c["metric"] == "final_val_acc" else c["measured"]
    assert not [f for f in edited_metrics(audit) if "final_val_acc" in f]
    audit = golden()
    audit["measurements"]["nonfinite"] = ["conv1.weight"]
    assert any(f.startswith("metrics.test_acc ") and "measurements.nonfinite names" in f for f in edited_metrics(audit))


def test_a_metric_edited_by_hand_is_found_against_its_measurement_and_stored_results() -> None:
    """The user test: test_acc set to 0.95 in metrics only, while the measurements and the stored
    criteria results keep the measured figure."""
    from auditor.check import edited_metrics

    assert edited_metrics(golden()) == []
    audit = golden()
    measured = audit["measurements"]["test"]["acc"]
    audit["metrics"]["test_acc"] = 0.95
    assert edited_metrics(audit) == [f"metrics.test_acc 0.95, but measurements.test.acc is {measured}"]
    audit = golden()
    (i, entry), *_ = [(i, c) for i, c in enumerate(audit["criteria"]) if c["metric"] == "best_val_acc"]
    entry_measured = entry["measured"]
    audit["metrics"]["best_val_acc"] = entry["measured"] = 0.99  # the stored result edited alike
    found = edited_metrics(audit)
    assert [f.split(",")[0] for f in found] == ["metrics.best_val_acc 0.99"]
    audit["training"]["best_metric"] = 0.99  # the epoch's history row still holds the measured figure
    epoch = audit["training"]["best_epoch"]
    said = f"training.best_epoch {epoch} (best_metric 0.99), but its history selects epoch {epoch} ({entry_measured})"
    assert edited_metrics(audit) == [said]
    audit["training"]["history"][epoch - 1]["val_acc"] = 0.99  # every copy edited alike: nothing in the record tells
    assert epoch == len(audit["training"]["history"])  # the last epoch: final_val_acc is a copy of it too
    audit["metrics"]["final_val_acc"] = 0.99
    for c in audit["criteria"]:
        c["measured"] = 0.99 if c["metric"] == "final_val_acc" else c["measured"]
    assert edited_metrics(audit) == []
    entry["measured"] = 0.5  # a stored result alone
    assert edited_metrics(audit) == [f"criteria[{i}] (best_val_acc {entry['expr']}) measured 0.5, but metrics.best_val_acc 0.99"]


def test_an_official_flag_against_the_records_own_file_report_is_found() -> None:
    """A user test: data.official set to true (metrics.official_data alike) on a run of a copy whose
    files data.files reports as not the official ones, or of synthetic data: check passed."""
    from auditor.check import edited_metrics

    audit = golden()  # synthetic data: official null
    audit["data"]["official"] = audit["metrics"]["official_data"] = True
    assert edited_metrics(audit) == ['data.official true, but data.dataset is "synthetic"']
    files = {"data_batch_1": "md5 mismatch", "data_batch_5": "missing", "test_batch": "ok"}
    audit["data"] |= {"dataset": "cifar10", "files": files}
    said = "data.official true, but data.files reports data_batch_1 md5 mismatch, data_batch_5 missing"
    assert edited_metrics(audit) == [said]
    audit["data"]["official"] = audit["metrics"]["official_data"] = False
    assert edited_metrics(audit) == []
    audit["data"]["files"] = dict.fromkeys(files, "ok")
    assert edited_metrics(audit) == ['data.official false, but data.files reports every file "ok"']
    audit["data"]["official"] = audit["metrics"]["official_data"] = True
    assert edited_metrics(audit) == []
    audit["data"]["files"] = "edited"  # a record of another shape: not judged here
    assert edited_metrics(audit) == []


def test_a_best_epoch_the_history_does_not_select_is_found() -> None:
    """A user test: training.best_epoch set from 3 to 1; check passed and the sheet bolded epoch 1
    as the best beside its own lower accuracy."""
    from auditor.check import edited_metrics

    audit = golden()
    history = audit["training"]["history"]
    best = audit["training"]["best_metric"]
    audit["training"]["best_epoch"] = 1
    assert edited_metrics(audit) == [f"training.best_epoch 1 (best_metric {best}), but its history selects epoch 3 ({best})"]
    audit["training"]["best_epoch"] = 3
    history[0]["val_acc"] = best  # a tie: the first epoch of the highest accuracy is the one selected
    assert edited_metrics(audit)[0].endswith(f"but its history selects epoch 1 ({best})")
    history[0]["val_loss"] = None  # not selectable: its loss is not a number
    assert edited_metrics(audit) == []
    for h in history:
        h["val_loss"] = None
    assert f"training.best_epoch 3 (best_metric {best}), but its history selects no selectable epoch" in edited_metrics(audit)
    audit["training"]["history"] = "edited"  # a record of another shape: not judged here
    assert not any(f.startswith("training.best_epoch") for f in edited_metrics(audit))


# One field edited alone: a user test found each gave the sheet a figure its own record contradicts
# ("2 of 200 planned epochs", "the last on -101,272 images", a training time under one epoch's).
COPY_EDITS = [
    (lambda a: a["training"].update(train_time_s=1.0), "training.train_time_s 1.0, but its epochs' epoch_s sum to 3.71198 s"),
    (lambda a: a["training"].update(images_per_s=5000.0), "training.images_per_s 5000.0, but its epochs trained 3,600 images"),
    (lambda a: a["training"].update(epochs_run=2), "training.epochs_run 2, but its history records 3 epochs"),
    (lambda a: a["training"].update(epochs_planned=200), "training.epochs_planned 200, but the resolved spec's train.epochs is 3"),
    (lambda a: a["training"].update(steps_per_epoch=800),
     "training.steps_per_epoch 800, but 1,200 training images (data.sizes.train) in batches of 64 make 19 steps"),
    (lambda a: a["training"]["history"][1].update(steps=25), "epoch 2 of training.history trained 25 steps, more than"),
    (lambda a: a["data"]["class_counts"].update(train=[1] * 10), "data.sizes.train 1200, but data.class_counts.train sums to 10"),
    (lambda a: a["data"]["sizes"].update(val=30), "data.sizes.val 30, but data.class_counts.val sums to 300"),
    (lambda a: a["determinism"].update(seed=7), "determinism.seed 7, but the resolved spec's seed is 0"),
    (lambda a: a["determinism"].update(requested=False),
     "determinism.requested false, but the resolved spec's determinism.enabled is true"),
]


@pytest.mark.parametrize("edit, said", COPY_EDITS)
def test_a_figure_edited_apart_from_what_the_record_computes_it_from_is_found(edit: Any, said: str) -> None:
    from auditor.check import edited_metrics

    audit = golden()
    audit["training"]["history"] = [{**h, "steps": 19} for h in audit["training"]["history"]]
    assert edited_metrics(audit) == []
    edit(audit)
    assert [f for f in edited_metrics(audit) if f.startswith(said)], edited_metrics(audit)


def test_a_diverged_runs_time_and_rate_count_its_unrecorded_steps() -> None:
    """A diverged run adds the time and images of its last epoch's steps, which has no record: its
    totals are bounded by its epochs', not equal to them."""
    from auditor.check import edited_metrics

    audit = golden()
    tr = audit["training"]
    tr.update(status="diverged", train_time_s=tr["train_time_s"] + 0.5, images_per_s=(3600 + 64) / (tr["train_time_s"] + 0.5))
    assert not [f for f in edited_metrics(audit) if f.startswith("training.")]
    tr.update(train_time_s=1.0)
    assert [f for f in edited_metrics(audit) if f.startswith("training.train_time_s 1.0")]
    tr.update(train_time_s=5.0, images_per_s=100.0)  # fewer images than its epochs alone trained
    assert [f for f in edited_metrics(audit) if f.startswith("training.images_per_s 100.0")]
    tr.update(images_per_s=(3600 + 1200 + 1) / 5.0)  # more than one epoch's images (1,200) beyond its epochs'
    assert [f for f in edited_metrics(audit) if f.startswith("training.images_per_s 960.2")]
    tr.update(images_per_s=(3600 + 1200) / 5.0)  # a whole epoch's: the most a diverged epoch trains
    assert not [f for f in edited_metrics(audit) if f.startswith("training.")]


def test_a_copied_verification_an_edited_size_or_latency_is_found() -> None:
    """The honesty audit: a verification block pasted from another run's record ticked the sheet's
    verified box and passed `reproducible == bitwise`; a checkpoint size edited in measurements and
    metrics alike (checkpoints.best.bytes left), and a latency median above its own p95, passed."""
    from auditor.check import edited_metrics

    audit = golden()
    audit["verification"] = {"verdict": "bitwise", "spec_hash": audit["spec_hash"]}
    assert not any("verification" in f for f in edited_metrics(audit))
    audit["verification"]["spec_hash"] = "3c009d22" * 8
    assert (f"verification.spec_hash 3c009d223c00, but this run's spec_hash is {audit['spec_hash'][:12]}: the "
            "verification was made of another spec's runs") in edited_metrics(audit)
    del audit["verification"]["spec_hash"]  # a block without the hash (another shape): not judged
    assert not any("verification" in f for f in edited_metrics(audit))

    audit = golden()
    size = audit["measurements"]["size"]
    size["checkpoint_bytes"] = 44177
    audit["metrics"]["checkpoint_mb"] = 44177 / 1e6
    for entry in audit["criteria"]:
        entry["measured"] = audit["metrics"].get(entry["metric"], entry["measured"])
    listed, weights = audit["checkpoints"]["best"]["bytes"], size["weights_bytes"]
    assert edited_metrics(audit) == [
        f"measurements.size.weights_bytes {weights} exceeds checkpoint_bytes 44177, which hold them",
        f"measurements.size.checkpoint_bytes 44177, but checkpoints.best.bytes holds {listed}"]

    audit = golden()
    lat = audit["measurements"]["latency"]
    lat["median_ms"] = audit["metrics"]["latency_ms"] = lat["p95_ms"] * 2
    for entry in audit["criteria"]:
        entry["measured"] = audit["metrics"].get(entry["metric"], entry["measured"])
    said = (f"measurements.latency is out of order (min {lat['min_ms']}, median {lat['median_ms']}, p95 {lat['p95_ms']}, "
            f"mean {lat['mean_ms']}, IQR {lat['iqr_ms']} ms): no set of timings gives these")
    assert [f for f in edited_metrics(audit) if "latency" in f] == [said]
    lat["p95_ms"] = lat["min_ms"] = lat["mean_ms"] = lat["median_ms"]
    lat["iqr_ms"] = 0.0  # every sample alike: in order
    assert edited_metrics(audit) == []
    lat["iqr_ms"] = 1000.0  # wider than the whole spread from min to p95
    m = lat["median_ms"]
    assert edited_metrics(audit) == [(f"measurements.latency is out of order (min {m}, median {m}, p95 {m}, mean {m}, "
                                      "IQR 1000.0 ms): no set of timings gives these")]

    audit = golden()  # a user test: the size edited with checkpoints.best deleted, which the check compares with
    del audit["checkpoints"]["best"]
    assert edited_metrics(audit) == ["measurements.evaluated_checkpoint is best.pt, but checkpoints lists no best"]
    audit = golden()  # and the test split's size edited to 0 beside 500 images scored
    n = audit["measurements"]["test"]["n"]
    audit["data"]["sizes"]["test"] = 0
    assert edited_metrics(audit) == [f"data.sizes.test 0, but the test confusion matrix counts {n} images",
                                     f"data.sizes.test 0, but data.class_counts.test sums to {n}"]


def test_test_figures_that_contradict_their_confusion_matrix_are_found() -> None:
    """The user test: per_class.x set to 0.5, test.acc to 1.5 or 0.99 (in metrics too), test.n to 0:
    the sheet had shown them, and check passed, though the confusion matrix beside them says otherwise."""
    from auditor.check import edited_metrics

    audit = golden()
    test = audit["measurements"]["test"]
    cm, first = test["confusion"], next(iter(test["per_class"]))
    test["per_class"][first] = 0.5
    assert edited_metrics(audit) == [
        f"measurements.test.per_class.{first} 0.5, but its confusion matrix gives {cm[0][0]}/{sum(cm[0])}"]
    audit = golden()
    test, n = audit["measurements"]["test"], audit["measurements"]["test"]["n"]
    right = sum(row[i] for i, row in enumerate(test["confusion"]))
    for acc in (1.5, 0.99):
        test["acc"] = audit["metrics"]["test_acc"] = acc  # edited alike in both places
        for entry in audit["criteria"]:
            if entry["metric"] == "test_acc":
                entry["measured"] = acc
        assert edited_metrics(audit) == [
            f"measurements.test.acc {acc}, but its confusion matrix gives {right}/{n} = {right / n:.6g}"]
    audit = golden()
    audit["measurements"]["test"]["n"] = 0
    assert edited_metrics(audit) == [f"measurements.test.n 0, but its confusion matrix counts {n} images"]
    audit = golden()
    test = audit["measurements"]["test"]
    test["confusion"][0] = [0] * len(test["confusion"])  # a class with no image: its accuracy is null
    test["n"] = audit["data"]["sizes"]["test"] = sum(map(sum, test["confusion"]))
    audit["data"]["class_counts"]["test"][0] = 0
    right = sum(row[i] for i, row in enumerate(test["confusion"]))
    test["acc"] = audit["metrics"]["test_acc"] = right / test["n"]
    for entry in audit["criteria"]:
        if entry["metric"] == "test_acc":
            entry["measured"] = test["acc"]
    assert edited_metrics(audit) == [(f"measurements.test.per_class.{first} 1.0, but its confusion matrix gives "
                                      "no image of the class, so null")]
    test["per_class"][first] = None
    assert edited_metrics(audit) == []
    test["confusion"] = "edited"  # a record of another shape: the sheet shows what it holds
    assert edited_metrics(audit) == []
    audit = golden()  # per_class's keys reordered (a JSON tool that sorts keys): paired by class name, not place
    test = audit["measurements"]["test"]
    test["per_class"] = dict(reversed(list(test["per_class"].items())))
    assert audit["data"]["classes"] == list(reversed(test["per_class"])) and edited_metrics(audit) == []
    del audit["run"]  # a record of another shape: no KeyError (ablate had dropped the edits found before it)
    assert edited_metrics(audit) == []


def test_a_run_name_that_is_not_the_spec_name_is_found() -> None:
    """The user test: run.name edited to hold a Markdown heading had put it into the sheet, unchecked
    (the spec's name is under the spec hash and restricted to safe characters)."""
    from auditor.check import edited_metrics

    audit = golden()
    name = audit["spec"]["name"]
    assert audit["run"]["name"] == name
    audit["run"]["name"] = "x\n# INJECTED"
    assert edited_metrics(audit) == [f'run.name "x\\n# INJECTED", but the resolved spec names the run "{name}"']


def test_a_metric_given_null_is_an_edit_unless_the_record_says_why() -> None:
    from auditor.check import edited_metrics

    audit = golden()
    audit["metrics"]["test_acc"] = None
    assert edited_metrics(audit) == [f"metrics.test_acc null, but measurements.test.acc is {audit['measurements']['test']['acc']}"]
    audit["metric_notes"]["test_acc"] = "withheld by another version"
    assert edited_metrics(audit) == []
    del audit["metrics"]["images_per_s"]  # absent (a version before the metric): it gates nothing, and fails a criterion
    assert edited_metrics(audit) == []
    audit["metrics"]["images_per_s"] = None  # null, where its source is there and no note says why
    assert edited_metrics(audit) == [f"metrics.images_per_s null, but training.images_per_s is {audit['training']['images_per_s']}"]


def test_a_verification_verdict_and_the_reproducible_metric_must_agree() -> None:
    from auditor.check import edited_metrics

    audit = golden()
    audit["metrics"]["reproducible"] = "bitwise"  # never verified
    assert edited_metrics(audit) == ['metrics.reproducible "bitwise", but verification is null']
    audit["verification"] = {"verdict": "unresumed"}
    assert edited_metrics(audit) == ['metrics.reproducible "bitwise", but verification.verdict is "unresumed"']
    audit["metrics"]["reproducible"] = "unresumed"
    assert edited_metrics(audit) == []


def test_a_verification_verdict_must_be_one_its_own_pairs_give() -> None:
    """A user test: a diverged verification edited to bitwise (verdict, passed and the metric alike)
    passed `check`, its sheet saying "bit-for-bit identical" above 26 steps' losses that differ."""
    from auditor.check import edited_metrics

    def pair(name: str, equal: bool, diff: float | None) -> dict:  # as verify.compare_pair writes one
        return {"pair": name, "equal": equal, "max_abs_diff": diff, "tensors_compared": 2, "tensors_equal": 2 - (not equal),
                "top_tensors": [] if equal else [{"name": "fc.weight", "max_abs_diff": diff}],
                "losses": {"equal": equal, "first_divergence": None if equal else 3},
                "metrics": {"equal": True}, "results": {"equal": True}}  # fmt: skip

    audit = golden()
    agree, differ = [pair("a-b", True, 0.0), pair("a-k", True, 0.0)], [pair("a-b", True, 0.0), pair("a-k", False, 0.0115)]
    honest = [("bitwise", True, agree), ("unresumed", False, agree), ("incomplete", False, agree),
              ("diverged", False, differ), ("tolerance", True, [pair("a-b", False, 1e-9), pair("a-k", True, 0.0)])]
    for settled, passed, pairs in honest:  # as verify settles them; a tolerance verdict passes where allowed
        audit["metrics"]["reproducible"] = settled
        audit["verification"] = {"verdict": settled, "passed": passed, "tolerance": 1e-6, "allow_tolerance": True,
                                 "pairs": pairs}  # fmt: skip
        assert edited_metrics(audit) == [], settled
    audit["metrics"]["reproducible"] = "bitwise"
    audit["verification"] |= {"verdict": "bitwise", "passed": True, "pairs": differ}
    assert edited_metrics(audit) == ['verification.verdict "bitwise", but its pairs give diverged (a-k not equal)']
    audit["verification"] |= {"verdict": "diverged", "pairs": agree}
    audit["metrics"]["reproducible"] = "diverged"
    assert edited_metrics(audit) == ["verification.passed true, but a diverged verdict fails verification",
                                     'verification.verdict "diverged", but its pairs give bitwise (every pair equal)']
    audit["verification"] |= {"verdict": "tolerance", "passed": True, "allow_tolerance": False, "pairs": differ}
    audit["metrics"]["reproducible"] = "tolerance"
    assert edited_metrics(audit) == ["verification.passed true, but a tolerance verdict fails verification",
                                     'verification.verdict "tolerance", but its pairs give diverged (a-k not equal)']
    malformed = ('verification "tolerance", but its pairs or tolerance are not as verify records them: the verdict '
                 "cannot be weighed against what was compared")  # fmt: skip
    audit["verification"] |= {"passed": False, "pairs": agree}  # the review: deleting what it is weighed on hid it
    for edit in ({"tolerance": None}, {"pairs": []}, {"pairs": [{**agree[0], "equal": "false"}]},
                 {"pairs": [{k: v for k, v in agree[0].items() if k != "max_abs_diff"}]}):  # the last had crashed
        edited = audit | {"verification": audit["verification"] | edit}
        assert edited_metrics(edited) == [], edit  # written by 0.2.0, whose blocks may be of other shapes
        edited["environment"] = {**audit["environment"], "auditor": "0.4.0"}
        assert edited_metrics(edited) == [malformed], edit
    # Pairs that compared no final weights (no last.pt): incomplete now, tolerance as 0.2.0 decided it (the review).
    unweighed = [pair("a-b", False, 0.0) | {"tensors_compared": 0, "losses": {"equal": True}}] * 2
    for settled in ("incomplete", "unresumed", "tolerance"):
        audit["metrics"]["reproducible"] = settled
        audit["verification"] = {"verdict": settled, "tolerance": 1e-6, "pairs": unweighed}
        assert edited_metrics(audit) == [], settled
    audit["metrics"]["reproducible"] = "bitwise"
    audit["verification"]["verdict"] = "bitwise"
    assert edited_metrics(audit) == [('verification.verdict "bitwise", but its pairs give incomplete (nothing compared '
                                      "differs, but no final weights were compared)")]  # fmt: skip
    # A record of 0.4.0 on: an agreeing verdict of runs whose run K was not resumed is unresumed.
    audit["verification"] = {"verdict": "bitwise", "tolerance": 1e-6, "pairs": agree, "kill_signal": None,
                             "resumed_from": None}  # fmt: skip
    assert edited_metrics(audit) == []  # written by 0.2.0, which settled on bitwise so
    audit["environment"]["auditor"] = "0.4.0"
    assert edited_metrics(audit) == [('verification.verdict "bitwise", but run K was not resumed from a checkpoint '
                                      "(verification.kill_signal, resumed_from): verify gives unresumed")]  # fmt: skip
    audit["verification"] |= {"kill_signal": "SIGKILL", "resumed_from": "step-00000016.pt"}
    assert edited_metrics(audit) == []
    audit["training"]["status"] = "diverged"
    assert 'verification.verdict "bitwise", but run A\'s training diverged after its last checkpoint' in " ".join(
        edited_metrics(audit))


def test_a_verification_s_pairs_must_agree_with_what_they_compared() -> None:
    """A user test: a diverged verification edited to bitwise with each pair's `equal` flipped too
    passed `check`, its sheet "bit-for-bit identical" above "checkpoint entries 26/87 identical"."""
    from auditor.check import edited_metrics

    def pair(name: str, same: int, first: int | None) -> dict:  # as verify.compare_pair writes one
        equal = same == 87 and first is None
        return {"pair": name, "equal": equal, "max_abs_diff": 0.0 if equal else 0.08, "tensors_compared": 87,
                "tensors_equal": same, "top_tensors": [] if same == 87 else [{"name": "fc.weight", "max_abs_diff": 0.08}],
                "losses": {"equal": first is None, "first_divergence": first}, "metrics": {"equal": first is None},
                "results": {"equal": True}}  # fmt: skip

    audit = golden()
    audit["environment"]["auditor"] = "0.4.0"
    diverged = [pair("a-b", 26, 12), pair("a-k", 87, None)]
    block = {"verdict": "diverged", "passed": False, "tolerance": 0.0, "allow_tolerance": False, "pairs": diverged,
             "first_divergence": {"step": 12, "pair": "a-b"}, "top_tensors": [{"pair": "a-b", "name": "fc.weight"}],
             "kill_signal": "SIGKILL", "resumed_from": "step-00000016.pt"}  # fmt: skip
    audit["verification"], audit["metrics"]["reproducible"] = block, "diverged"
    assert edited_metrics(audit) == []  # as verify wrote it
    audit["verification"] = block | {"verdict": "bitwise", "passed": True,
                                     "pairs": [diverged[0] | {"equal": True}, diverged[1]]}  # fmt: skip
    audit["metrics"]["reproducible"] = "bitwise"
    assert edited_metrics(audit) == [
        ('verification pair "a-b": equal true, but its losses, metrics, results and checkpoint entries (26/87 '
         "identical) give false"), 'verification pair "a-b": equal true, but max_abs_diff 0.08']
    # Each further edit that hides one contradiction leaves another.
    hidden = diverged[0] | {"equal": True, "max_abs_diff": 0.0, "tensors_equal": 87, "top_tensors": [],
                            "losses": {"equal": True, "first_divergence": 12}, "metrics": {"equal": True}}  # fmt: skip
    audit["verification"]["pairs"] = [hidden, diverged[1]]
    assert edited_metrics(audit) == ['verification pair "a-b": losses.equal true, but losses.first_divergence 12',
                                     ("verification.first_divergence {\"step\": 12, \"pair\": \"a-b\"}, but the "
                                      "pairs' losses are all equal"),
                                     "verification.top_tensors is not what its pairs' top differing tensors give"]
    audit["verification"]["pairs"] = [{k: v for k, v in hidden.items() if k != "tensors_equal"}, diverged[1]]
    assert edited_metrics(audit)[0] == ('verification pair "a-b" is not as verify records a pair (losses, metrics, '
                                        "results, checkpoint entries)")  # fmt: skip
    audit["environment"]["auditor"] = "0.3.0"  # older blocks: weighed on `equal` alone, as before
    audit["verification"]["pairs"] = [hidden, diverged[1]]
    assert edited_metrics(audit) == []


@pytest.mark.parametrize(
    ("value", "metric"),
    [(None, "test_acc"), (0.5, "test_acc"), (7, "params_m"), ("0.5", "test_acc"), (True, "official_data"),
     (False, "official_data"), ("bitwise", "reproducible"), (3.0, "status"), (math.nan, "test_acc"), (True, "test_acc")],
)  # fmt: skip
def test_measured_value_is_what_a_criterion_result_records(value: Any, metric: str) -> None:
    """edited_metrics compares stored results' `measured` with it: it must be evaluate's."""
    from auditor.check import measured_value

    expr = {"official_data": "== true", "reproducible": "== bitwise", "status": "== completed"}.get(metric, ">= 0.5")
    (result,) = evaluate_criteria([parse_criterion(metric, expr)], {metric: value})
    got = measured_value(metric, value)
    nan = isinstance(got, float) and math.isnan(got) and math.isnan(result.measured)  # type: ignore[arg-type]
    assert type(got) is type(result.measured) and (got == result.measured or nan)


# --- JUnit: written before the verdict is printed ---------------------------------------------


def test_a_junit_report_is_written_in_full_before_the_block_and_put_in_place_after(tmp_path: Path) -> None:
    from auditor.check import staged_junit

    target = tmp_path / "j.xml"
    with staged_junit(target, junit_xml(sample_results(), "auditor.smoke")):
        assert not target.exists() and len(os.listdir(tmp_path)) == 1  # the staged copy
    assert ET.parse(target).getroot().get("failures") == "2" and os.listdir(tmp_path) == ["j.xml"]
    before = target.read_bytes()
    with pytest.raises(InvalidInput, match="stdout"), staged_junit(target, junit_xml([], "auditor.smoke")):
        raise InvalidInput("stdout")  # printing the verdict failed: the report is left as it was
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["j.xml"]


def test_a_folder_that_takes_no_file_is_said_before_the_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where root may write anything, the folder's refusal is simulated: the OS's own error."""
    from auditor.check import staged_junit

    refuse_new_files(monkeypatch)
    ran = []
    refused = rf"j.xml: cannot write JUnit report: no file can be made in {tmp_path} \(Permission denied\)"
    with pytest.raises(InvalidInput, match=refused), staged_junit(tmp_path / "j.xml", junit_xml([], "smoke")):
        ran.append(True)
    assert ran == [] and os.listdir(tmp_path) == []
    monkeypatch.undo()
    (tmp_path / "j.xml").write_text(junit_xml([], "auditor.smoke"))  # an earlier report there: still the folder's fault
    refuse_new_files(monkeypatch)  # (the review: a probe of the file had blamed it, "give another file name")
    with pytest.raises(InvalidInput, match=refused):
        write_junit_text(tmp_path / "j.xml", junit_error_xml("auditor.smoke", "bad input"))


def test_a_report_that_cannot_be_replaced_is_said_before_the_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user test: an immutable earlier report (chattr +i) was found only at the rename, after the
    PASS lines were printed, and said as "no file can be made in ." (one could). The inode flag is
    simulated where chattr is not allowed."""
    from auditor import fileio
    from auditor.check import staged_junit

    target = tmp_path / "j.xml"
    target.write_text(junit_xml([], "auditor.smoke"))
    before = target.read_bytes()
    monkeypatch.setattr(fileio, "_inode_flags", lambda p: 0x10 if p == target else 0)  # FS_IMMUTABLE_FL
    ran = []
    refused = (r"j.xml: cannot write JUnit report: the file there cannot be replaced: it is immutable \(chattr \+i; "
               r"lsattr shows it\); give another file name")
    with pytest.raises(InvalidInput, match=refused), staged_junit(target, junit_xml(sample_results(), "auditor.smoke")):
        ran.append(True)
    assert ran == [] and target.read_bytes() == before and os.listdir(tmp_path) == ["j.xml"]
    with pytest.raises(InvalidInput, match=refused):  # the errored report of an exit 2, said alike
        write_junit_text(target, junit_error_xml("auditor.smoke", "bad input"))
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["j.xml"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_a_folder_that_exists_but_takes_no_file_is_not_said_to_be_missing() -> None:
    """/proc exists; creating a file there fails with ENOENT, for root too."""
    with pytest.raises(InvalidInput, match=r"^/proc/j.xml: cannot write JUnit report: no file can be made in /proc "
                                           r"\(the OS says: No such file or directory\)"):  # fmt: skip
        write_junit(sample_results(), "smoke", Path("/proc/j.xml"))


# --- a criteria file that is not a regular file ------------------------------------------------


def load_without_hanging(path: Path) -> dict[str, str] | BaseException:
    """load_criteria on `path` in a thread; a read that would wait for a writer forever is freed
    after 10 s by opening the FIFO for writing, and fails the test rather than hanging it."""
    import threading

    outcome: list[Any] = []

    def load() -> None:
        try:
            outcome.append(load_criteria({}, path, []))
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # EOF for the reader
        worker.join(10)
        pytest.fail(f"reading {path} waited for a writer")
    return outcome[0]


def test_a_named_pipe_folder_or_device_is_no_criteria_file(tmp_path: Path) -> None:
    fifo = tmp_path / "crit.yaml"
    os.mkfifo(fifo)  # no one writes to it
    refused = load_without_hanging(fifo)
    assert isinstance(refused, InvalidInput)
    assert str(refused).startswith(f"{fifo}: criteria file is not a regular file: a named pipe (FIFO)")
    for path, kind in ((tmp_path, "a folder"), (Path(os.devnull), "a device")):
        with pytest.raises(InvalidInput, match=rf"criteria file is not a regular file: {kind}; give a YAML file"):
            load_criteria({}, path, [])


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="needs /dev/fd")
def test_a_pipe_a_shell_hands_over_is_read(tmp_path: Path) -> None:
    """`--criteria <(echo ...)`: the shell passes /dev/fd/N, a pipe its own process writes."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b'test_acc: ">= 0.5"\n')
        os.close(write_end)
        assert load_criteria({}, Path(f"/dev/fd/{read_end}"), []) == {"test_acc": ">= 0.5"}
    finally:
        os.close(read_end)


def test_check_warns_of_a_failed_verification_that_no_criterion_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user test: `check` passed run A of a diverged verification without a word (the shipped
    specs gate no `reproducible`); a criterion on it judges it instead, and needs no warning."""
    import json

    from test_render import verified_audit

    from auditor.cli import main

    audit = verified_audit("diverged")
    audit["metrics"]["reproducible"] = "diverged"
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    junit = tmp_path / "junit.xml"
    assert main(["check", str(tmp_path), "--junit", str(junit)]) == 0
    said = ("`auditor verify` did not show this training reproducible (verdict: diverged), and no criterion gates "
            "`reproducible`, so a PASS does not cover it")  # fmt: skip
    assert f"auditor check: warning: {tmp_path / 'audit.json'}: {said}" in capsys.readouterr().err
    assert said.replace("`", "") in junit.read_text().replace("`", "")  # the CI page shows it too
    assert main(["check", str(tmp_path), "--set", "criteria.reproducible=== bitwise"]) == 1
    assert said not in capsys.readouterr().err


def test_check_gives_the_sheet_s_caveats_on_a_latency_it_judges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user test: a latency FAIL in a CI log did not say that the machine was busy while it was
    timed, which the sheet says of that figure; check says it where it judges latency_ms."""
    import json

    from auditor.cli import main

    audit = golden()
    audit["measurements"]["latency"].update(other_cpu_share=0.5, other_cpu_window_s=3.0)
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    junit = tmp_path / "junit.xml"
    assert main(["check", str(tmp_path), "--junit", str(junit), "--set", "criteria.latency_ms=< 0.5"]) == 1
    said = ("latency_ms was timed with a caveat its sheet gives: Busy machine: other processes used 50% of the CPU "
            "while the latency was timed")
    assert f"auditor check: warning: {tmp_path / 'audit.json'}: {said}" in capsys.readouterr().err
    assert said in junit.read_text()  # the CI page shows it too
    assert main(["check", str(tmp_path), "--set", "criteria.latency_ms=> 0.5"]) == 0  # a lower bound could flip too
    assert said in capsys.readouterr().err
    assert main(["check", str(tmp_path)]) == 0  # `< 50` passed: a quiet machine passes it too (the review)
    assert "latency_ms was timed" not in capsys.readouterr().err
    assert main(["check", str(tmp_path), "--set", "criteria.latency_ms=null"]) == 0  # not judged: not said
    assert "latency_ms was timed" not in capsys.readouterr().err


@pytest.mark.parametrize(("sets", "metric", "expr", "said"), [
    ([], "status", "== early_stopped", "'== early_stopped' never passes here: train.early_stopping is not set"),
    ([], "official_data", "== true", "'== true' never passes here: data.dataset is synthetic"),
    (["data.val_split=0", "criteria.best_val_acc=null"], "best_val_acc", ">= 0.1", "never measured, as data.val_split is 0"),
])
def test_a_criterion_given_now_that_the_runs_spec_can_never_pass_is_refused(
    sets: list[str], metric: str, expr: str, said: str
) -> None:
    """A user test: `check` failed these (exit 1, as a regression) where validation refuses them in a
    new spec; the run's own recorded criteria are judged as before."""
    from auditor.spec import load_spec, resolved_dict

    run_spec, given = resolved_dict(load_spec("smoke", sets)), f"criteria.{metric}={expr}"
    with pytest.raises(InvalidInput, match=re.escape(f"criteria.{metric}: {said}")) as err:
        load_criteria({}, None, [given], run_spec=run_spec)
    assert str(err.value).endswith("; nor can this run pass it: gate on another criterion")
    assert load_criteria({}, None, [given]) == {metric: expr}  # no spec to hold it against
    assert load_criteria({metric: expr}, None, [], run_spec=run_spec) == {metric: expr}  # the run's own: judged
    assert load_criteria({}, None, ["criteria.status=!= diverged", "criteria.official_data=== false"], run_spec=run_spec)


def test_a_tolerance_detail_never_shows_the_measured_rounded_onto_the_threshold() -> None:
    """A user test: `|2.24 - 2.24| = 0.00356` for 2.236443 against `2.24 +- 0.01`."""
    from auditor.check import evaluate_criteria, parse_criterion

    [result] = evaluate_criteria([parse_criterion("checkpoint_mb", "2.24 +- 0.01")], {"checkpoint_mb": 2.236443})
    assert result.passed and result.detail.startswith("|2.236443 - 2.24| = 0.00356 <= 0.01"), result.detail
