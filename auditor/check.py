"""The check stage: compare a run's measured metrics against its criteria.

`load_criteria` gives the criteria to check (the run's own, replaced by a
criteria file, then `--set criteria.X=EXPR` items), `evaluate_criteria` turns them into one
`CriterionResult` each, and `render_lines` / `junit_xml` / `write_junit`
report them. No CLI code lives here.

Comparison rules:

* `>=`, `>`, `<=`, `<` are exact float comparisons (so `>=` passes at
  equality and `>` fails there).
* `==` on a numeric metric is *not* exact: it passes when
  ``|measured - threshold| <= 1e-9 * max(1, |threshold|)``, because a
  measured float rarely equals a decimal literal bit for bit.
* `T +- tol` passes when ``|measured - T| <= tol`` plus the same 1e-9
  relative slack, so a value exactly at the (decimal) tolerance passes even
  when binary rounding puts it a hair outside (``|0.88 - 0.87| > 0.01`` in
  floats).
* Categorical metrics compare strings with `==` / `!=`; a bool value is read
  as ``"true"`` / ``"false"``.
* A `reproducible` criterion that only a verdict verify fails can meet
  (`== unresumed`, any `!=`) fails whatever was measured: new specs and
  criteria given to `check` are refused one, but an older version recorded some.
* A missing (None), NaN or infinite measured value, a fraction outside
  [0, 1] or a negative value, fails every criterion, `!=` included,
  as does a value of the wrong type (a string for a numeric metric, a number
  for a categorical one).
"""

from __future__ import annotations

import codecs
import errno
import json
import math
import os
import re
import stat
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from auditor.audit import (
    ABSENT,
    MetricSource,
    decide,
    is_count,
    is_count_matrix,
    is_number,
    latency_warnings,
    look_up,
    metric_sources,
    none_selected,
    record_problem,
    spec_hash_matches,
    steps_per_epoch,
    written_from,
)
from auditor.errors import InvalidInput
from auditor.fileio import (
    NotReplaceable,
    atomic_write_bytes,
    file_in_the_way,
    not_a_folder,
    staged_write,
)
from auditor.spec import (
    CATEGORICAL_METRICS,
    NUMERIC_METRICS,
    PASSING_VERDICTS,
    REL_EPS,
    Criterion,
    KeyLines,
    Spec,
    criterion_gap,
    failing_verdict_problem,
    hidden_break,
    load_yaml,
    metric_ceiling,
    not_utf8_place,
    numeric_passes,
    override_value,
    parse_criterion,
    read_limited,
    refuse_spaced_key,
    removes_nothing,
    resolved_dict,
    set_shown,
    short_value,
    unknown_metric,
    unpassable_criterion,
    validate_spec,
    verdict_disagreement,
    yaml_error_text,
)
from auditor.words import count, exact

DIVERGED = "diverged"  # the run status that fails a run whatever its criteria say
DIVERGED_DETAIL = "training diverged: a diverged run fails whatever its criteria say"
NONE_REQUIRED_DETAIL = "no criteria defined: nothing was gated, and --require-criteria asks for at least one"
# Not a run status a record holds: what `gate_status` makes of a completed run whose measured
# model holds inf or NaN (its last updates overflowed the weights while every loss was finite).
BROKEN = "broken model"
BROKEN_DETAIL = "the model holds inf or NaN weights: a broken model fails whatever its criteria say"
UNSELECTED = "no model selected"
UNSELECTED_DETAIL = ("no epoch's selection-split loss was a number (the model output inf or NaN), so no model was "
                     "selected: such a run fails whatever its criteria say")
GATE_FAILURES = {DIVERGED: "training diverged", BROKEN: "the model is broken", UNSELECTED: "no model was selected"}
MeasuredValue = float | str | bool | None

# Decimals shown per unit (NUMERIC_METRICS values); others fall back to repr.
_DECIMALS: Mapping[str, int] = MappingProxyType({
    "fraction": 4,
    "ms": 2,
    "MB": 2,
    "millions": 3,
    "s": 2,
    "images/s": 1,
})
# A failed `a op b` is reported as the relation that does hold: `12.31 >= 10`.
_NEGATED = MappingProxyType({">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!=", "!=": "=="})


@dataclass(frozen=True)
class CriterionResult:
    """The outcome of checking one criterion against the measured metrics."""

    metric: str
    expr: str
    op: str
    threshold: float | str
    tolerance: float | None
    measured: float | str | None
    passed: bool
    detail: str


# Both carry metric, op, threshold and tolerance, which is all a comparison needs.
_Comparison = Criterion | CriterionResult


# --- evaluation -----------------------------------------------------------


def evaluate_criteria(
    criteria: list[Criterion],
    metrics: dict[str, MeasuredValue],
    notes: dict[str, str] | None = None,
    allow_tolerance: bool = False,
) -> list[CriterionResult]:
    """Check each criterion against `metrics`, in order.

    `notes` maps a metric to the reason it was not measured (used in the
    detail when its value is None or absent, e.g. "no validation split").
    `allow_tolerance`: the run's verify.allow_tolerance; without it a `tolerance`
    verify verdict is a failed verification, and meets no `reproducible` criterion.
    """
    notes = notes or {}
    return [_evaluate(c, metrics.get(c.metric), notes.get(c.metric), allow_tolerance) for c in criteria]


def judge(criteria: Mapping[str, str], audit: Mapping[str, Any]) -> list[CriterionResult]:
    """`criteria` (metric -> expression) parsed and evaluated on a record's metrics and notes, as
    `auditor check` does; ValueError for an expression that does not parse."""
    # `load_criteria` refused what was given now; a recorded one an older version wrote is judged
    parsed = [parse_criterion(k, v, recorded=True) for k, v in criteria.items()]
    return evaluate_criteria(parsed, audit["metrics"], audit.get("metric_notes", {}), recorded_allow_tolerance(audit))


def recorded_allow_tolerance(audit: Mapping[str, Any]) -> bool:
    """The record's `verify.allow_tolerance`: true only where it says true."""
    verify = audit["spec"].get("verify")
    return isinstance(verify, Mapping) and verify.get("allow_tolerance") is True


def _evaluate(crit: Criterion, value: MeasuredValue, note: str | None, allow_tolerance: bool) -> CriterionResult:
    if (problem := _fails_verification(crit)) is not None:
        return _result(crit, measured_value(crit.metric, value), False, problem)
    if value is None:
        reason = f"not measured: {note}" if note else "not measured: no value recorded"
        return _result(crit, None, False, reason)
    if is_number(value) and math.isnan(float(value)):
        return _result(crit, float(value), False, "measured NaN")
    if crit.metric in CATEGORICAL_METRICS:
        if crit.metric == "reproducible" and value == "tolerance" and not allow_tolerance:
            return _result(crit, value, False, TOLERANCE_NOT_ALLOWED)
        return _evaluate_categorical(crit, value)
    return _evaluate_numeric(crit, value)


def _result(crit: Criterion, measured: float | str | None, passed: bool, detail: str) -> CriterionResult:
    return CriterionResult(
        metric=crit.metric,
        expr=crit.expr.strip(),
        op=crit.op,
        threshold=crit.threshold,
        tolerance=crit.tolerance,
        measured=measured,
        passed=passed,
        detail=detail,
    )


FAILING_VERDICT = "the criterion passes only a verdict that fails verification"


def _fails_verification(crit: Criterion) -> str | None:
    """Why a `reproducible` criterion can pass only what verify fails (`== unresumed`,
    `!= diverged`), or None. New specs and criteria given to `check` are refused such criteria;
    a record an older version wrote may hold one, and the gate must still never pass on it."""
    if crit.metric != "reproducible" or (crit.op == "==" and crit.threshold in PASSING_VERDICTS):
        return None
    if crit.op == "==":
        return f"{FAILING_VERDICT}: {crit.threshold} fails verification, so `{crit.expr.strip()}` can never gate a pass"
    return (f"{FAILING_VERDICT}: `{crit.expr.strip()}` passes verdicts that fail verification (unresumed, incomplete, "
            "...); only `== bitwise` or `== tolerance` can gate")


def measured_value(metric: str, value: MeasuredValue) -> float | str | None:
    """A metric's value as a criterion result records it (`CriterionResult.measured`): a number
    as a float, a bool as `true`/`false`, anything else a number should have been as text."""
    if value is None or isinstance(value, str):
        return value
    if metric in CATEGORICAL_METRICS and isinstance(value, bool):
        return "true" if value else "false"
    return float(value) if is_number(value) else str(value)


TOLERANCE_NOT_ALLOWED = ("tolerance: the runs differ within verify.tolerance, but this run's verify.allow_tolerance "
                         "is false, so verify failed that verdict")

# Values that meet `== key` besides the key itself: identical runs are within any tolerance.
ALSO_MEETS: Mapping[tuple[str, str], tuple[str, ...]] = MappingProxyType({("reproducible", "tolerance"): ("bitwise",)})


def _evaluate_categorical(crit: Criterion, value: MeasuredValue) -> CriterionResult:
    if isinstance(value, bool):
        measured = "true" if value else "false"
    elif isinstance(value, str):
        measured = value
    else:
        # A number here is a producer bug; `!= x` must not pass on it.
        shown = float(value) if is_number(value) else str(value)
        return _result(crit, shown, False, f"measured {value!r} is not a {crit.metric} value")
    if crit.op not in ("==", "!="):
        raise ValueError(f"operator {crit.op!r} is not valid for categorical {crit.metric}")
    also = measured in ALSO_MEETS.get((crit.metric, str(crit.threshold)), ())
    passed = (measured == crit.threshold or also) == (crit.op == "==")
    if also:
        return _result(crit, measured, passed, f"{measured} meets {crit.threshold} (identical is within any tolerance)")
    shown_op = crit.op if passed else _NEGATED[crit.op]
    return _result(crit, measured, passed, f"{measured} {shown_op} {crit.threshold}")


def _evaluate_numeric(crit: Criterion, value: MeasuredValue) -> CriterionResult:
    if not is_number(value):
        return _result(crit, str(value), False, f"measured {value!r} is not a number")
    measured = float(value)  # type: ignore[arg-type]  # is_number checked it
    if not math.isfinite(measured):  # the runner writes null, never inf: a hand-edited record
        return _result(crit, measured, False, f"measured {measured} is not a finite number")
    if NUMERIC_METRICS[crit.metric] == "fraction" and not 0 <= measured <= 1:
        return _result(crit, measured, False, f"measured {measured} is not a fraction in [0, 1]")
    if measured < 0:  # every metric counts or times something: a hand-edited record
        return _result(crit, measured, False, f"measured {measured} is negative, which no {crit.metric} can be")
    passed = _numeric_passes(crit, measured)
    return _result(crit, measured, passed, _numeric_detail(crit, measured, passed))


def _numeric_passes(crit: _Comparison, measured: float) -> bool:
    return numeric_passes(crit.op, float(crit.threshold), crit.tolerance, measured)


def _numeric_detail(crit: Criterion, measured: float, passed: bool) -> str:
    shown = _display_measured(crit, measured)
    threshold = exact(float(crit.threshold))
    if crit.op == "+-":
        diff = abs(measured - float(crit.threshold))
        tol = float(crit.tolerance or 0.0)
        cmp = "<=" if passed else ">"
        # 3 significant digits, unless they would read as the other outcome (0.01000004 > 0.01)
        diff_text = f"{diff:.3g}" if (float(f"{diff:.3g}") <= tol) == passed else exact(diff)
        return f"|{shown} - {threshold}| = {diff_text} {cmp} {exact(tol)}" + (f" (within {SLACK})" if passed and diff > tol else "")
    if crit.op in ("==", "!=") and measured != float(crit.threshold) and (crit.op == "==") == passed:
        return f"{shown} == {threshold} (equal within {SLACK})"  # close enough to count as equal, not exactly so
    shown_op = crit.op if passed else _NEGATED[crit.op]
    return f"{shown} {shown_op} {threshold}"


# numeric_passes: REL_EPS of the threshold, and at least REL_EPS itself (for thresholds below 1)
SLACK = f"the slack ==, != and +- allow: {REL_EPS:.0e}, times the threshold where it is above 1".replace("e-0", "e-")


# --- formatting -----------------------------------------------------------


def format_value(metric: str, value: float | str | None) -> str:
    """A measured value as shown to people: fractions to 4 decimals, ms/MB to 2."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if not math.isfinite(value):
        return str(value)  # nan, inf, -inf
    decimals = _DECIMALS.get(NUMERIC_METRICS.get(metric, ""))
    return f"{value:.{decimals}f}" if decimals is not None else exact(value)


def _display_measured(crit: _Comparison, measured: float) -> str:
    # Rounding must never make a result look wrong (0.84996 shown as 0.8500
    # failing `>= 0.85`): fall back to the exact value when it would.
    shown = format_value(crit.metric, measured)
    if not math.isfinite(measured):
        return shown
    if _numeric_passes(crit, float(shown)) != _numeric_passes(crit, measured):
        return exact(measured)
    if crit.op in ("==", "!=") and float(shown) != measured:
        return exact(measured)  # the difference is the point of these operators (`+-` prints it)
    if float(shown) == float(crit.threshold) != measured:
        return exact(measured)  # `1.04 >= 1.04` would hide the 1.0439 that failed `< 1.04`; `|2.24 - 2.24| = 0.0036`
    return shown


def shown_measured(result: CriterionResult | Mapping[str, Any]) -> str:
    """A result's measured value as `check` prints it: rounded, unless that would mislead.

    Takes a CriterionResult or its dict in audit.json (a dict of another shape: plain rounding).
    """
    if not isinstance(result, CriterionResult):  # the fields it has; extra ones are ignored
        result = CriterionResult(**{f.name: result.get(f.name) for f in fields(CriterionResult)})
    if isinstance(result.measured, float) and result.metric in NUMERIC_METRICS:
        try:
            return _display_measured(result, result.measured)
        except (TypeError, ValueError):  # a hand-edited record: a threshold or operator it cannot compare with
            pass
    return format_value(str(result.metric), result.measured)


def _unusual(r: CriterionResult) -> bool:
    """Whether the printed line shows the detail, not only the value: a value that cannot be
    judged, a tolerance verdict verify failed, a criterion only a failed verification meets, or a
    failed `+-` (its distance from the target)."""
    m = r.measured
    if m is None or (isinstance(m, float) and not math.isfinite(m)):
        return True
    if isinstance(m, float) and r.metric in NUMERIC_METRICS and not 0 <= m <= metric_ceiling(r.metric):
        return True
    if r.detail == TOLERANCE_NOT_ALLOWED or r.detail.startswith(FAILING_VERDICT) or (r.op == "+-" and not r.passed):
        return True
    return isinstance(m, str) != (r.metric in CATEGORICAL_METRICS)


def render_lines(results: list[CriterionResult], status: str | None = None, require_criteria: bool = False) -> list[str]:
    """One `PASS|FAIL  metric expr  (measured X)` line each, then a summary line.

    With the run's `status`, a diverged run gets a FAIL line of its own: it
    fails whatever its criteria say (see `verdict`); so does an empty `results`
    when `require_criteria`.
    """
    lines = []
    for r in results:
        status_word = "PASS" if r.passed else "FAIL"
        # Missing, NaN or wrong-typed values: the detail says why it failed.
        why = r.detail if _unusual(r) else f"measured {shown_measured(r)}"
        lines.append(f"{status_word}  {r.metric} {r.expr}  ({why})")
    lines += [f"FAIL  {detail}" for _, detail in run_failures(results, status, require_criteria)]
    lines.append(summary_line(results, status, require_criteria))
    return lines


def summary_line(results: list[CriterionResult], status: str | None = None, require_criteria: bool = False) -> str:
    """`N/M criteria passed: PASS|FAIL`, naming a diverged run when `status` says so."""
    n_pass = sum(r.passed for r in results)
    failed = f"; {GATE_FAILURES[status]}" if status in GATE_FAILURES else ""
    return f"{n_pass}/{len(results)} criteria passed{failed}: {verdict(results, status, require_criteria)}"


def overall(results: list[CriterionResult]) -> bool:
    """True when every criterion passed; an empty list passes (callers say so)."""
    return all(r.passed for r in results)


# --- JUnit ----------------------------------------------------------------

# Characters XML 1.0 forbids even when escaped; ElementTree writes them as-is.
# Lone surrogates (a file name that is not UTF-8, as Python decodes it) cannot be written as UTF-8 either.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("?", text)


NONE_DEFINED_DETAIL = "no criterion is defined, so nothing was gated; --require-criteria fails this instead"


def junit_xml(
    results: list[CriterionResult], suite_name: str, status: str | None = None, spec_hash: str | None = None,
    require_criteria: bool = False, notes: Sequence[str] = (), warnings: Sequence[str] = (),
) -> str:
    """The results as a JUnit XML document (one testsuite, one testcase each, named by its metric
    alone, so that a changed threshold stays the same test in a CI's history).

    A diverged run (`status`) adds a failing `auditor.run` testcase, and so does
    an empty `results` when `require_criteria`, so the report fails exactly when
    `verdict` does; without it, an empty `results` is one skipped testcase (a CI reader
    may refuse a report of no tests). `spec_hash`, the run's resolved spec's, goes into the
    suite's properties, as into every artifact of a run, and so do `notes` (`auditor.note`:
    e.g. the criteria changed from the run's own) and `warnings` (`auditor.warning`: what
    check warned of on stderr).
    """
    cases = [("auditor.criteria", r.metric, f"{r.metric} {r.expr.strip()}: {r.detail}", None if r.passed else "failure")
             for r in results]  # fmt: skip
    cases += [("auditor.run", name, detail, "failure") for name, detail in run_failures(results, status, require_criteria)]
    if not cases:
        cases = [("auditor.run", "criteria defined", NONE_DEFINED_DETAIL, "skipped")]
    return _junit_document(suite_name, cases, spec_hash, notes, warnings)


def junit_error_xml(suite_name: str, message: str, warnings: Sequence[str] = ()) -> str:
    """A JUnit document of one errored testcase: `check` stopped on bad input (exit 2), so no
    criterion was judged; it replaces an earlier report that would still show the last verdict.
    `warnings`: what check warned of before it stopped (`auditor.warning` properties)."""
    return _junit_document(suite_name, [("auditor.check", "input", message, "error")], None, (), warnings)


def _junit_document(
    suite_name: str, cases: list[tuple[str, str, str, str | None]], spec_hash: str | None, notes: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> str:
    """One testsuite of (classname, name, text, outcome) cases; outcome None (passed), 'failure',
    'error' or 'skipped'."""
    counts = {"tests": str(len(cases)), "failures": str(sum(c[3] == "failure" for c in cases)),
              "errors": str(sum(c[3] == "error" for c in cases))}  # fmt: skip
    skipped = str(sum(c[3] == "skipped" for c in cases))
    root = ET.Element("testsuites", {"name": _xml_text(suite_name), **counts, "skipped": skipped})
    suite = ET.SubElement(root, "testsuite", {"name": _xml_text(suite_name), **counts, "skipped": skipped})
    properties = [*([("auditor.spec_hash", spec_hash)] if spec_hash is not None else []),
                  *(("auditor.note", note) for note in notes), *(("auditor.warning", w) for w in warnings)]  # fmt: skip
    if properties:
        props = ET.SubElement(suite, "properties")
        for name, value in properties:
            ET.SubElement(props, "property", {"name": name, "value": _xml_text(value)})
    for classname, name, text, outcome in cases:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": _xml_text(name)})
        detail = _xml_text(text)
        if outcome == "skipped":
            ET.SubElement(case, outcome, {"message": detail})
        elif outcome is not None:
            kind = "CriterionFailed" if outcome == "failure" else "InvalidInput"
            ET.SubElement(case, outcome, {"message": detail, "type": kind}).text = detail
        ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(
    results: list[CriterionResult], suite_name: str, path: Path, status: str | None = None,
    spec_hash: str | None = None, require_criteria: bool = False, notes: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> None:
    """Write `junit_xml(...)` to `path` atomically; InvalidInput if it cannot."""
    write_junit_text(path, junit_xml(results, suite_name, status, spec_hash, require_criteria, notes, warnings))


def check_junit_target(path: Path) -> None:
    """InvalidInput when `--junit` may not write `path` (`_not_replaceable`) or its folder is not
    there. Whether the folder takes the file shows only in writing it: `staged_junit` does that
    before a verdict is printed, so that no PASS is shown beside an exit 2."""
    path = Path(path)
    directory = path.parent
    if path.is_dir():
        raise InvalidInput(f"{path}: cannot write JUnit report: a folder; give a file name, e.g. results.xml")
    if (blocker := file_in_the_way(directory)) is not None:
        raise InvalidInput(f"{path}: cannot write JUnit report: {not_a_folder(blocker)}")
    if not directory.is_dir():
        raise InvalidInput(f"{path}: cannot write JUnit report: directory {directory} does not exist")
    if (refused := _not_replaceable(path)) is not None:
        raise InvalidInput(f"{path}: cannot write JUnit report: {refused}; give another file name")


def write_junit_text(path: Path, text: str) -> None:
    """Write a JUnit document to `path` atomically where `--junit` may (`check_junit_target`);
    InvalidInput if it cannot."""
    check_junit_target(path)
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise InvalidInput(_junit_unwritable(path, exc)) from None


@contextmanager
def staged_junit(path: Path, text: str) -> Iterator[None]:
    """The JUnit document written in full beside `path` (where `--junit` may write it) before the
    block, put in place after it: a folder that takes no file, or a full disk, is InvalidInput
    before the block prints any verdict. A block that raises leaves `path` as it was."""
    check_junit_target(path)
    in_block = False  # an OSError the block raised is the block's, not the report's
    try:
        with staged_write(path, text.encode("utf-8")):
            in_block = True
            yield
            in_block = False
    except OSError as exc:
        if in_block:
            raise
        raise InvalidInput(_junit_unwritable(path, exc)) from None


def _junit_unwritable(path: Path, exc: OSError) -> str:
    """Why the JUnit report could not be written to `path`. A folder that exists but where no file
    can be made (/proc) says "No such file or directory": said as what it is."""
    why = exc.strerror or str(exc)
    if isinstance(exc, NotReplaceable):
        why += "; give a path in another folder" if exc.folder else "; give another file name"
    elif exc.errno == errno.ENOENT and path.parent.is_dir():
        why = f"no file can be made in {path.parent} (the OS says: {why}); give a path in a folder you can write"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = f"no file can be made in {path.parent} ({why}); give a path in a folder you can write"
    return f"{path}: cannot write JUnit report: {why}"


# The start of a JUnit report of auditor's: an XML declaration and comments at most, then a root
# `testsuites` element named `auditor.<run>` (as _junit_document writes it, quotes either way).
_AUDITORS_REPORT = re.compile(rb"""(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<testsuites\s[^>]*\bname\s*=\s*["']auditor\.""",
                              re.DOTALL)  # fmt: skip


def _not_replaceable(path: Path) -> str | None:
    """Why `--junit` may not write `path`, or None: it may replace nothing, an empty file or an
    earlier JUnit report of auditor's (CI writes one each time; its suite is named `auditor.<run>`),
    never another tool's JUnit report nor any other file (such as the audit.json
    just read), nor a device, pipe or socket (reading one could block, replacing one is wrong)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return "not a regular file (a device, pipe or socket)"
        with path.open("rb") as f:
            head = f.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"the file there cannot be read to tell whether it is an earlier JUnit report ({exc.strerror or exc})"
    if not head or _AUDITORS_REPORT.match(head):
        return None
    if head.startswith((b"<?xml", b"<testsuite")) and b"<testsuite" in head:  # a CI job's shared results.xml
        return ("the file there is a JUnit report another tool wrote (auditor's is a <testsuites> named "
                "auditor.<run>), and writing would replace it")  # fmt: skip
    return "the file there is not a JUnit report (the run's record, its sheet, a criteria file?), and writing would replace it"


# --- loading --------------------------------------------------------------

_SET_PREFIX = "criteria."
_SPEC_KEYS = frozenset(Spec.model_fields)


def load_criteria(
    base: dict[str, str],
    file: Path | None,
    sets: list[str],
    *,
    base_source: str = "run spec",
    allow_tolerance: bool | None = None,
    notes: list[str] | None = None,
    run_spec: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The criteria to check: the run's own, replaced by `file`, then `--set` items.

    `file` is a YAML mapping, either `{criteria: {...}}` (e.g. a whole spec)
    or a bare `{metric: expr}` mapping; it replaces the run's criteria
    entirely. Each `sets` item is `criteria.METRIC=EXPR`, where a null EXPR removes
    that criterion, or `criteria={METRIC: EXPR, ...}`, which replaces them all, as in `run`; an empty one is refused (an unset variable must not drop a gate). Every surviving expression is parsed; any
    problem raises InvalidInput naming its source and `criteria.<metric>`.
    `base_source` names where `base` came from (e.g. the audit.json path). `allow_tolerance`: the
    run's `verify.allow_tolerance`, against which a `reproducible` criterion given now is held as
    validation holds a spec's (None: not held). A `--set` that removes a criterion the criteria
    do not hold at that point is said in `notes`, where given (a misremembered gate stays silent otherwise).
    `run_spec`: the run's resolved spec, where a criterion given now that no run of it can pass
    (`spec.unpassable_criterion`) is refused, as validation refuses it in a new spec.
    """
    criteria: dict[str, Any] = _drop_nulls(base)
    sources: dict[str, str | _Place] = dict.fromkeys(criteria, base_source)
    if file is not None:
        criteria, sources = _read_criteria_file(Path(file))
    for item in sets:
        criteria, sources = _apply_set(item, criteria, sources, notes)
    for metric, expr in criteria.items():
        recorded = sources[metric] == base_source  # the run's own, which an older version may have written
        try:
            parse_criterion(metric, expr, recorded=recorded)
        except ValueError as exc:
            raise InvalidInput(f"{sources[metric]}: criteria.{metric}: {exc}") from None
        if not recorded and (problem := _given_now_problem(metric, expr, allow_tolerance, run_spec)):
            raise InvalidInput(f"{sources[metric]}: criteria.{metric}: {problem}")
    return criteria


def _apply_set(
    item: str, criteria: dict[str, Any], sources: dict[str, str | _Place], notes: list[str] | None
) -> tuple[dict[str, Any], dict[str, str | _Place]]:
    """`criteria` and where each came from (`sources`), with the `--set` `item` applied: one criterion
    set or removed (a removal of one they do not hold said in `notes`, where given), or all replaced
    (`criteria={...}`, as a file replaces them)."""
    if (whole := _parse_whole_set(item)) is not None:
        return whole, dict.fromkeys(whole, set_shown(item))
    metric, expr = _parse_set(item)
    if expr is None:
        if metric not in criteria and notes is not None:
            notes.append(removes_nothing(set_shown(item), metric, criteria))
        criteria.pop(metric, None)
    else:
        criteria[metric] = expr
        sources[metric] = set_shown(item)
    return criteria, sources


def _given_now_problem(metric: str, expr: str, allow_tolerance: bool | None, run_spec: Mapping[str, Any] | None) -> str | None:
    """Why a criterion given now (not the run's own, which is judged, and fails: `_fails_verification`)
    is refused, or None: a verdict that fails by definition, a `reproducible` gate that judges a
    tolerance verdict otherwise than verify did, or one the run's spec can never pass."""
    if problem := failing_verdict_problem(metric, expr):
        return problem
    if metric == "reproducible" and allow_tolerance is not None and (
            problem := verdict_disagreement(expr, allow_tolerance, recorded_run=True)):  # fmt: skip
        return problem
    return _unpassable_for(run_spec, metric, expr) if run_spec is not None else None


def _unpassable_for(run_spec: Mapping[str, Any], metric: str, expr: str) -> str | None:
    """`spec.unpassable_criterion` for a run's resolved spec (a valid one: `edited_spec_problem`), in
    a finished run's words: its advice for a new spec left out."""
    data, train = run_spec.get("data") or {}, run_spec.get("train") or {}
    why = unpassable_criterion(metric, expr, data.get("dataset"), data.get("val_split"),
                               train.get("early_stopping") is not None)  # fmt: skip
    return None if why is None else f"{why[0]}; nor can this run pass it: gate on another criterion"


def criteria_changes(base: Mapping[str, Any], checked: Mapping[str, str]) -> list[str]:
    """How the criteria checked differ from the run's own (`base`, as recorded), one phrase each:
    `best_val_acc >= 0.5 -> >= 0.3`, `latency_ms < 5 removed`, `test_acc >= 0.9 added`."""
    own = _drop_nulls(base)
    changes = []
    for metric in {**own, **checked}:
        before, after = own.get(metric), checked.get(metric)
        if before is None:
            changes.append(f"{metric} {after} added")
        elif after is None:
            changes.append(f"{metric} {before} removed")
        elif not _same_criterion(metric, before, after):
            changes.append(f"{metric} {str(before).strip()} -> {str(after).strip()}")
    return changes


def _same_criterion(metric: str, a: Any, b: Any) -> bool:
    """Whether two expressions judge alike (`>= 0.5` and `>=0.5`), read as recorded ones are
    (today's rules refuse some an older version wrote); text that does not parse is compared as text."""
    try:
        x, y = parse_criterion(metric, a, recorded=True), parse_criterion(metric, b, recorded=True)
    except ValueError:
        return str(a).strip() == str(b).strip()
    return (x.op, x.threshold, x.tolerance) == (y.op, y.threshold, y.tolerance)


STDIN = "-"  # `--criteria -`: the criteria come on standard input (`./-` names a file called -)


def criteria_file_name(file: Path | str) -> str:
    """How a criteria file is named in messages: its path, or stdin for `-`."""
    return "stdin (--criteria -)" if str(file) == STDIN else str(file)


def _read_criteria_file(file: Path) -> tuple[dict[str, Any], dict[str, _Place]]:
    """A criteria file's criteria, and where each is given (`c.yaml:3`) for messages."""
    path, text = criteria_file_name(file), ""
    try:
        text = _stdin_text() if str(file) == STDIN else _criteria_text(file)
        if (hidden := hidden_break(text)) is not None:  # a gate after one, in a comment, would be read unseen
            raise InvalidInput(f"{path}:{hidden}")
        raw = load_yaml(text)  # the spec's YAML rules
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read criteria file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{not_utf8_place(path, exc)}: criteria file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(yaml_error_text(path, exc, text)) from None
    if raw is None:
        raise InvalidInput(f'{path}: criteria file is empty (expected lines of metric: expression, e.g. test_acc: ">= 0.85")')
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: criteria file must be a YAML mapping, got {type(raw).__name__}")
    if "schema_version" in raw and "metrics" in raw:  # JSON is YAML: a run's record reads as a mapping
        raise InvalidInput(f"{path}: a run's audit record, not a criteria file: give its folder as RUN_DIR, and "
                           "other criteria in a YAML file of metric: expression lines")  # fmt: skip
    if "criteria" in raw:
        section = raw["criteria"]
        at = KeyLines(Path(path), text).get(("criteria",))  # FILE:LINE, as its other errors are given
        place = path if at is None else f"{path}:{at}"
        if not isinstance(section, dict | None):
            raise InvalidInput(f"{place}: criteria: must be a mapping of metric: expression")
        if (stray := [str(k) for k in raw if k != "criteria" and str(k) not in _SPEC_KEYS]):
            where = ("a metric outside the criteria section (indent it under criteria:)"
                     if stray[0] in NUMERIC_METRICS or stray[0] in CATEGORICAL_METRICS else
                     "neither a spec field nor part of the criteria section")  # fmt: skip
            line = KeyLines(Path(path), text).get((stray[0],))  # FILE:LINE, as its other errors are given
            raise InvalidInput(f"{path}{'' if line is None else f':{line}'}: {stray[0]}: {where}")
        if section is None:  # an unset variable in a template must not drop every gate
            raise InvalidInput(f'{place}: criteria: no value (expected lines of metric: expression under it, e.g. '
                               'test_acc: ">= 0.85"; `criteria: {}` checks none)')  # fmt: skip
        return _with_values(section, path, text, ("criteria",))
    spec_keys = sorted(k for k in map(str, raw) if k in _SPEC_KEYS)
    if spec_keys:
        # A spec without a criteria section would silently check nothing.
        raise InvalidInput(f"{path}: criteria: missing (a spec file with no criteria section)")
    return _with_values(raw, path, text)


def _criteria_text(path: Path) -> str:
    """The text of a criteria file: a regular file, or a pipe with no name on disk, as a shell's
    `<(...)` hands over (/dev/fd/N, written by the process it started). A named pipe (FIFO) on disk,
    which may have no writer and would be waited on forever, a folder or a device is InvalidInput.
    Opened without blocking (opening a FIFO waits for a writer), judged, then read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) and not _unnamed_pipe(st):
            raise InvalidInput(f"{path}: criteria file is not a regular file: {_file_kind(st.st_mode)}; "
                               "give a YAML file (a shell's <(...) is read too)")  # fmt: skip
        os.set_blocking(fd, True)  # a pipe's writer may not have written yet: wait for it
        f = open(fd, "rb")  # noqa: SIM115 (it owns fd from here: closed by the with)
    except BaseException:
        os.close(fd)
        raise
    with f:
        return read_limited(f)


def _stdin_text() -> str:
    """The criteria given on standard input, as UTF-8 text (read to its end, up to `read_limited`'s bound)."""
    if sys.stdin is None:  # started with stdin closed (`<&-`)
        raise InvalidInput("stdin (--criteria -): standard input is closed; give the criteria on it, or a file")
    return read_limited(sys.stdin.buffer)


def _unnamed_pipe(st: os.stat_result) -> bool:
    """Whether `st` is of a pipe with no name on disk (Linux puts every one in one pipe file
    system): its writer is the process that made it; a FIFO anyone may have made need have none."""
    if not stat.S_ISFIFO(st.st_mode):
        return False
    read_end, write_end = os.pipe()
    try:
        return os.fstat(read_end).st_dev == st.st_dev
    finally:
        os.close(read_end)
        os.close(write_end)


def _file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in a few words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), which would be waited on until something writes to it"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"


@dataclass(frozen=True)
class _Place:
    """Where a criteria file gives an entry, shown as `FILE:LINE`: its line is read only when a
    message shows it (a file that is valid is not parsed twice)."""

    name: str
    lines: Mapping[tuple[str, ...], int]
    key: tuple[str, ...]

    def __str__(self) -> str:
        line = self.lines.get(self.key)
        return f"{self.name}:{line}" if line else self.name


def _with_values(
    mapping: dict[Any, Any], path: str, text: str, section: tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, _Place]]:
    """A criteria file's entries (under `section` of its YAML `text`) and where each is given
    (`path:LINE`); one with no value (an unset variable in a template) is refused."""
    lines = KeyLines(Path(path), text)
    where = {str(k): _Place(path, lines, (*section, str(k))) for k in mapping}
    if (empty := [k for k, v in mapping.items() if v is None]):
        raise InvalidInput(f"{where[str(empty[0])]}: criteria.{empty[0]}: {criterion_gap(str(empty[0]), 'no value')}")
    return {str(k): v for k, v in mapping.items()}, where


def _drop_nulls(mapping: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in mapping.items() if v is not None}


def _parse_whole_set(item: str) -> dict[str, Any] | None:
    """`criteria={METRIC: EXPR, ...}` -> the criteria it gives ({} for `criteria=null` or `{}`, as
    in `auditor run`); None for any other item. An entry with no value or an empty one is refused,
    as an unset variable must not drop a gate, and so is anything but a mapping."""
    key, sep, raw = item.partition("=")
    if not sep or key.strip() != "criteria":
        return None
    refuse_spaced_key(item)  # as `auditor run --set` refuses it
    value = override_value(raw, item, criterion=True)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{set_shown(item)}: criteria: must be a mapping of metric: expression, got "
                           f"{short_value(value)}; e.g. 'criteria={{test_acc: \">= 0.85\"}}' (`criteria=null` checks "
                           "none)")  # fmt: skip
    for metric, expr in value.items():
        if expr is None or not str(expr).strip():
            raise InvalidInput(f"{set_shown(item)}: criteria.{metric}: "
                               f"{criterion_gap(str(metric), 'no value' if expr is None else 'empty')}")  # fmt: skip
    # The metric and the expression's type (a quoted string, as validation holds a spec's mapping to)
    # are parse_criterion's, which load_criteria calls on every criterion, naming this --set.
    return {str(metric): expr.strip() if isinstance(expr, str) else expr for metric, expr in value.items()}


def _parse_set(item: str) -> tuple[str, Any]:
    """`criteria.METRIC=EXPR` -> (METRIC, EXPR as read, or None to remove)."""
    key, sep, raw = item.partition("=")
    joined = ".".join(part.strip() for part in key.split("."))  # the KEY its spaces stripped
    named = joined.removeprefix(_SET_PREFIX)
    if sep and joined.startswith(_SET_PREFIX) and named and "." not in named:
        refuse_spaced_key(item)  # as `auditor run --set` refuses it, where the fix is one check takes
    key = key.strip()
    metric = key.removeprefix(_SET_PREFIX)
    if not sep and key.startswith(_SET_PREFIX) and metric and "." not in metric and unknown_metric(metric) is None:
        raise InvalidInput(f"{set_shown(item)}: no '=' and no EXPR: write {key}=EXPR, or {key}=null to remove "
                           "it")  # no example: the forms depend on the metric (`== completed`, `< 50`)
    if not sep or not key.startswith(_SET_PREFIX) or not metric or "." in metric:
        raise InvalidInput(
            f"{set_shown(item)}: only criteria.<metric>=EXPR (or criteria={{...}}) can be set in check"
            " (other spec fields are fixed by the run)"
        )
    if (unknown := unknown_metric(metric)) is not None:  # a typo, also where it removes (parse_criterion sees none)
        raise InvalidInput(f"{set_shown(item)}: criteria.{metric}: {unknown}")
    # Read as `auditor run --set` reads it: YAML, or the text where it is not YAML (`>= 0.9`).
    value = override_value(raw, item, criterion=True)
    if value is None:
        return metric, None
    if not str(value).strip():
        raise InvalidInput(f"{set_shown(item)}: criteria.{metric}: {criterion_gap(metric, 'empty')}")
    # a number or a bool stays one, for parse_criterion to refuse as validation does (`got 0.5`)
    return metric, value.strip() if isinstance(value, str) else value


def verification_passed(verdict: str, allow_tolerance: bool) -> bool:
    """A verify verdict passes when bitwise, or within tolerance where the spec allows it."""
    return verdict == "bitwise" or (verdict == "tolerance" and allow_tolerance)


def unreproduced_note(audit: Mapping[str, Any], gated: Iterable[str]) -> str | None:
    """Where `auditor verify` recorded a verdict that does not pass in the record and no criterion
    (`gated`: the metrics judged) gates `reproducible`, what a PASS leaves out; else None. A user
    test: a diverged verification left run A's sheet and `check` at a bare PASS."""
    ver = audit.get("verification")
    if not isinstance(ver, Mapping) or "reproducible" in gated or not isinstance(verdict := ver.get("verdict"), str):
        return None
    if verification_passed(verdict, bool(ver.get("allow_tolerance"))):
        return None
    return (f"`auditor verify` did not show this training reproducible (verdict: {verdict}), and no criterion gates "
            "`reproducible`, so a PASS does not cover it (verify's exit code does): see the determinism evidence, or "
            'gate it with `reproducible: "== bitwise"`')


def latency_caveats(audit: Mapping[str, Any], results: Sequence[CriterionResult]) -> list[str]:
    """The sheet's warnings on the recorded latency (a busy machine, an unsteady timing), for `check`
    to give beside a latency_ms criterion it judged (a user test: a latency FAIL in a CI log did not
    say the machine was busy while it was timed); none where a quiet machine would judge alike: an
    inflated figure that passes an upper bound passes there too (the review)."""
    if not any(r.metric == "latency_ms" and (not r.passed or r.op not in ("<", "<=")) for r in results):
        return []
    lat = audit["measurements"].get("latency")
    try:
        found = latency_warnings(lat, None) if isinstance(lat, dict) else {}
    except (KeyError, TypeError):  # a record that timed none
        return []
    return [f"latency_ms was timed with a caveat its sheet gives: {title}: {text}" for title, text in found.values()]


def verdict(results: list[CriterionResult], status: str | None, require_criteria: bool = False) -> str:
    """PASS when every criterion passed and training did not diverge, else FAIL; with
    `require_criteria`, also FAIL when there was no criterion to pass.

    `auditor run` and `auditor check` both judge by this, so the CI gate
    and the run agree on a run that diverged after its best checkpoint.
    """
    return "PASS" if overall(results) and not run_failures(results, status, require_criteria) else "FAIL"


def gate_status(status: str | None, nonfinite: Any, unselected: bool = False) -> str | None:
    """The status the gate judges: the run's, or for a run that did not diverge, BROKEN where its
    measured model holds inf/NaN (`nonfinite`: measurements.nonfinite, absent in older records)
    and UNSELECTED where epochs completed but none could be selected (`unselected`)."""
    if status == DIVERGED:
        return status
    return BROKEN if nonfinite else UNSELECTED if unselected else status


def record_gate_status(audit: Mapping[str, Any]) -> str | None:
    """`gate_status` of a run's record."""
    tr = audit["training"]
    unselected = none_selected(len(tr.get("history") or []), tr.get("best_epoch"))
    return gate_status(audit["run"].get("status"), audit["measurements"].get("nonfinite"), unselected)


def run_failures(results: list[CriterionResult], status: str | None, require_criteria: bool) -> list[tuple[str, str]]:
    """Why the run fails whatever its criteria say, as (JUnit test name, detail) pairs: training
    diverged, or no criterion is defined while `require_criteria`. verdict, the printed lines and
    the JUnit report all judge by this."""
    failures = [("training status", DIVERGED_DETAIL)] if status == DIVERGED else []
    failures += [("model finite", BROKEN_DETAIL)] if status == BROKEN else []
    failures += [("model selected", UNSELECTED_DETAIL)] if status == UNSELECTED else []
    if require_criteria and not results:
        failures.append(("criteria defined", NONE_REQUIRED_DETAIL))
    return failures


def stored_verdict_differs(audit: dict[str, Any]) -> str | None:
    """How the stored verdict and criteria results differ from the record's own criteria judged
    again on its metrics ('verdict stored PASS, now FAIL; `test_acc` stored PASS, now FAIL'; the
    verdict left out where only a criterion's result differs), or None where they agree.
    ValueError where they cannot be judged here (an unknown metric)."""
    results, again = _judged(audit)
    now = {r.metric: r.passed for r in results}
    try:
        stored = {c["metric"]: bool(c["passed"]) for c in audit["criteria"]}
    except (KeyError, TypeError) as exc:  # entries edited by hand: reported as what cannot be judged
        raise ValueError(f"the stored criteria results are malformed ({type(exc).__name__}: {exc})") from None
    differ = [f"`{m}` stored {_pass_word(stored.get(m))}, now {_pass_word(now.get(m))}" for m in {**stored, **now}
              if stored.get(m) != now.get(m)]  # fmt: skip
    said = [f"verdict stored {audit['verdict']}, now {again}"] if again != audit["verdict"] else []
    return "; ".join([*said, ", ".join(differ)] if differ else said) or None


def judged_verdict(audit: Mapping[str, Any]) -> str:
    """The verdict `check` gives a record on its own criteria: judged again on its metrics (a stored
    verdict edited by hand, or one another version judged otherwise, is not taken). ValueError
    where they cannot be judged here (an unknown metric: a record `check_refusal` refuses)."""
    return _judged(audit)[1]


def _judged(audit: Mapping[str, Any]) -> tuple[list[CriterionResult], str]:
    """The record's own criteria judged again on its metrics, and the verdict they give."""
    results = judge(audit["spec"].get("criteria") or {}, audit)
    return results, verdict(results, record_gate_status(audit))


def judged_details(audit: Mapping[str, Any]) -> dict[str, str]:
    """The detail ('0.9867 >= 0.5', 'not measured: ...') of each stored criterion result that its
    metrics judged again give alike (the same pass or fail, the same figure), by metric: what the
    sheet shows, as a stored detail is text nothing checks (a user test edited one to claim a
    figure never measured). A result judged otherwise keeps its stored detail, beside its stored
    verdict, under the sheet's warning that they differ. Empty where the criteria cannot be judged
    here (`stored_verdict_differs` says why)."""
    try:
        results = _judged(audit)[0]
        stored = {c["metric"]: c for c in audit["criteria"] if isinstance(c, dict) and isinstance(c.get("metric"), str)}
    except (ValueError, TypeError, AttributeError, KeyError):
        return {}
    return {r.metric: r.detail for r in results if (c := stored.get(r.metric)) is not None
            and c.get("passed") is r.passed and _same(c.get("measured"), r.measured)}  # fmt: skip


def stored_verdict_warning(audit: dict[str, Any]) -> str | None:
    """`stored_verdict_differs` as `render` and `check` warn of it ('the stored verdict or criteria
    results do not agree with the record's metrics judged again (...)'), or None; ValueError as it."""
    differs = stored_verdict_differs(audit)
    return differs and f"the stored verdict or criteria results do not agree with the record's metrics judged again ({differs})"


def check_refusal(audit: Mapping[str, Any]) -> str | None:
    """Why `auditor check` refuses a run's audit.json, as it says it (without its advice), or None:
    not a record this auditor reads (`record_problem`), or `edited_record`'s reason. `ablate`
    counts no run whose record this refuses."""
    if (problem := record_problem(audit)) is not None:
        return problem
    edited = edited_record(audit)
    return edited[0] if edited else None


def edited_record(audit: Mapping[str, Any]) -> tuple[str, str] | None:
    """(why, advice to the gate) for a record `record_problem` passes but `check` refuses, or None:
    edited after the run (its resolved spec no longer its spec_hash's, or none a run records; its
    metrics not what it measured: a metric changed by hand would be gated as if measured), or a
    field the sheet reads missing or malformed (`render.sheet_problem`: perhaps one side of a
    cross-check above deleted)."""
    from auditor.render import sheet_problem  # render imports this module

    advice = "gate on the record as the run wrote it"
    if not spec_hash_matches(audit):
        why = f"its resolved spec does not match its spec_hash ({str(audit['spec_hash'])[:12]}): the record was edited after the run"
        return why, f"{advice}, with --criteria or --set for other criteria"
    if (problem := edited_spec_problem(audit)) is not None:  # its spec_hash made again to match
        return f"its resolved spec was edited after the run into none a run records ({problem})", advice
    if edited := edited_metrics(audit):
        return f"the record disagrees with what the run measured ({'; '.join(edited)}): it was edited after the run", advice
    if (problem := sheet_problem(audit)) is not None:
        return f"{problem} (`auditor render` refuses it too)", ""
    return None


def edited_spec_problem(audit: Mapping[str, Any]) -> str | None:
    """Why a record's resolved spec is none a run records (a hand edit), or None: validation refuses
    it, reads a field as another value (`compile: true`, read as "default"), or drops a criterion
    (`null`). Checked whether or not its spec_hash matches: the hash is no signature, and the sheet
    says how it is computed. Said as "its resolved spec is none a run records (REASON)"."""
    try:
        spec = validate_spec(audit["spec"], "spec", recorded=True)
    except InvalidInput as exc:
        return f"validation refuses it: {exc}"
    resolved = resolved_dict(spec)
    if (odd := _unresolved(audit["spec"], resolved, "spec")) is not None:
        return odd
    criteria = audit["spec"].get("criteria")
    if isinstance(criteria, dict) and (dropped := [m for m in criteria if m not in resolved["criteria"]]):
        return f"spec.criteria.{dropped[0]} {json.dumps(criteria[dropped[0]])}, which validation drops"
    return None


def _unresolved(recorded: Mapping[str, Any], resolved: Mapping[str, Any], where: str) -> str | None:
    """The first field of `recorded` that validation reads as another value ('FIELD X, read as Y'),
    or None; a field it lacks (an older record: a newer default) is not compared."""
    for key, value in recorded.items():
        if key not in resolved:
            continue
        if isinstance(value, dict) and isinstance(resolved[key], dict):
            if (odd := _unresolved(value, resolved[key], f"{where}.{key}")) is not None:
                return odd
        elif value != resolved[key] or isinstance(value, bool) != isinstance(resolved[key], bool):
            return f"{where}.{key} {json.dumps(value)}, read as {json.dumps(resolved[key])}"
    return None


def edited_metrics(audit: Mapping[str, Any]) -> list[str]:
    """Where a record's metrics disagree with what the record itself measured, one phrase each
    ('metrics.test_acc 0.95, but measurements.test.acc holds 0.96'): each metric against the
    field it is copied from (`metric_sources`), and each stored criterion result's measured value
    against its metric; and figures against what they are computed from in the record (the test
    evaluation's confusion matrix, the data's file report, the epochs' history). Empty where they agree: the metrics are as the run wrote them, or every
    copy of a figure was edited alike (which only the checkpoints and logs can tell).

    Exact comparisons: a metric is a copy of its figure (or that figure over a fixed unit, as
    the runner divides it), and JSON gives back every float it was written with."""
    metrics, notes = audit["metrics"], audit.get("metric_notes") or {}
    # A metric the record does not hold at all (one added after the first version, e.g. weights_mb, in an
    # older record; read_audit refuses a record without one of audit.FIRST_METRICS) gates nothing: no pass
    found = [_metric_disagrees(m, source, metrics[m], m in notes) for m, source in metric_sources(audit).items()
             if m in metrics]  # fmt: skip
    found += [_stored_disagrees(i, entry, metrics) for i, entry in enumerate(audit["criteria"])]
    found += _criteria_disagree(audit)
    found += [*_test_disagrees(audit), *_name_disagrees(audit), *provenance_disagrees(audit.get("data")),
              *_selection_disagrees(audit.get("training")), *_verification_disagrees(audit), *_verdict_disagrees(audit),
              *_size_disagrees(audit), *_latency_disagrees(audit), *_training_disagrees(audit),
              *_counts_disagree(audit.get("data")), *_spec_copies_disagree(audit)]
    return [f for f in found if f]


def _test_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where measurements.test contradicts its own confusion matrix, from which a run computes its
    image count, accuracy and per-class accuracies (`measure.accuracy`: exact integer ratios, as
    JSON gives them back). Empty for a record of another shape, which the sheet shows as it is."""
    meas = audit.get("measurements")
    test = meas.get("test") if isinstance(meas, dict) else None
    if not isinstance(test, dict) or not is_count_matrix(cm := test.get("confusion")):
        return []
    n, right = sum(map(sum, cm)), sum(row[i] for i, row in enumerate(cm))
    found = []
    if is_number(test.get("n")) and test["n"] != n:
        found.append(f"measurements.test.n {_json(test['n'])}, but its confusion matrix counts {n} images")
    sizes = audit["data"].get("sizes") if isinstance(audit.get("data"), dict) else None
    if isinstance(sizes, dict) and is_count(scored := sizes.get("test")) and scored != n:  # a run scores every one
        found.append(f"data.sizes.test {scored}, but the test confusion matrix counts {n} images")
    if is_number(test.get("acc")) and n and test["acc"] != right / n:
        found.append(f"measurements.test.acc {_json(test['acc'])}, but its confusion matrix gives {right}/{n} = {right / n:.6g}")
    per_class = test.get("per_class")
    if isinstance(per_class, dict) and len(per_class) == len(cm):
        labels = _class_labels(audit, per_class)
        for name, acc in per_class.items():
            i = labels[name]  # the confusion row and column of that class
            row = cm[i]
            expected = row[i] / sum(row) if sum(row) else None  # NaN in memory, null in the record
            if (acc is None) != (expected is None) or (expected is not None and acc != expected):
                shown = f"{row[i]}/{sum(row)}" if sum(row) else "no image of the class, so null"
                found.append(f"measurements.test.per_class.{name} {_json(acc)}, but its confusion matrix gives {shown}")
    return found


def _class_labels(audit: Mapping[str, Any], per_class: dict[str, Any]) -> dict[str, int]:
    """Each class name's label: its place in data.classes where the record names the classes (a
    JSON tool that sorted per_class's keys moved them, not the labels), else in per_class."""
    data = audit.get("data")
    classes = data.get("classes") if isinstance(data, dict) else None
    named = list(map(str, classes)) if isinstance(classes, list) else []
    return {name: i for i, name in enumerate(named if sorted(named) == sorted(per_class) else per_class)}


def _name_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where run.name is not the resolved spec's name, which a run copies it from (the spec's is
    under the spec hash, and restricted to characters safe in a file name and on the sheet)."""
    spec, run = audit.get("spec"), audit.get("run")
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not isinstance(run, dict) or run.get("name") == name:
        return []
    return [f"run.name {_json(run.get('name'))}, but the resolved spec names the run {_json(name)}"]


def _verification_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where the verification block was not made for this run: verify records the hash of the
    spec its runs trained, run A's own (`verify.verification_block`). A block copied from another
    run's record would otherwise tick the sheet's verified box. Records without either hash: none."""
    block, own = audit.get("verification"), audit.get("spec_hash")
    theirs = block.get("spec_hash") if isinstance(block, dict) else None
    if not isinstance(theirs, str) or not isinstance(own, str) or theirs == own:
        return []
    return [(f"verification.spec_hash {theirs[:12]}, but this run's spec_hash is {own[:12]}: the verification "
             "was made of another spec's runs")]


# Records of this version on are held to verify's block as it writes it (pairs, tolerance) and to its
# unresumed/incomplete rules: verify settled on neither before 2026-12-01.
WEIGHED_FROM = (0, 4, 0)
# The verdicts verify settles on (`verify.settle_verdict`) from what its pairs decide (`audit.decide`)
SETTLED_FROM: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "bitwise": ("bitwise",), "tolerance": ("tolerance",), "diverged": ("diverged",),
    "incomplete": ("bitwise", "tolerance", "incomplete"), "unresumed": ("bitwise", "tolerance", "incomplete"),
})  # fmt: skip


def _verdict_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where the verification's verdict is not one verify settles on from its own pairs (the pairs
    it compared, which the block keeps), or its `passed` not what the verdict gives (a user test: a
    diverged verification edited to bitwise passed `check`, above its own evidence of 26 steps
    differing). A block whose pairs or tolerance are not as verify writes them is refused as well."""
    block = audit.get("verification")
    if not isinstance(block, dict) or (verdict := block.get("verdict")) not in SETTLED_FROM:
        return []
    found = []
    if isinstance(passed := block.get("passed"), bool) and passed != verification_passed(verdict, bool(block.get("allow_tolerance"))):
        found.append(f"verification.passed {_json(passed)}, but a {verdict} verdict "
                     f"{'fails' if passed else 'passes'} verification")  # fmt: skip
    pairs, tolerance = block.get("pairs"), block.get("tolerance")
    if not is_number(tolerance) or not isinstance(pairs, list) or not pairs or not all(map(_weighed_pair, pairs)):
        malformed = (f"verification {_json(verdict)}, but its pairs or tolerance are not as verify records them: the "
                     "verdict cannot be weighed against what was compared")  # fmt: skip
        return [*found, malformed] if written_from(audit, WEIGHED_FROM) else found  # older blocks: other shapes
    if written_from(audit, WEIGHED_FROM) and (contradictions := _pairs_contradict(block, pairs)):
        return [*found, *contradictions]  # a verdict weighed on pairs that contradict themselves proves nothing
    if verdict not in _settled_verdicts(pairs, tolerance):
        decided = decide(pairs, tolerance)
        differ = [str(p["pair"]) for p in pairs if not p["equal"]]
        why = ("nothing compared differs, but no final weights were compared" if decided == "incomplete" else
               f"{', '.join(differ)} not equal" if differ else "every pair equal")  # fmt: skip
        found.append(f"verification.verdict {_json(verdict)}, but its pairs give {decided} ({why})")
    elif verdict in ("bitwise", "tolerance") and (otherwise := _settles_otherwise(audit, block)):
        found.append(f"verification.verdict {_json(verdict)}, but {otherwise}")
    return found


def _pairs_contradict(block: Mapping[str, Any], pairs: list[dict[str, Any]]) -> list[str]:
    """Where a pair's `equal` is not what its own losses, metrics, results and checkpoint entries
    give (`verify.compare_pair`), or the block's first divergence and top tensors not what its pairs
    hold (a user test: a diverged verification edited to bitwise, each pair's `equal` with it,
    passed `check` above its own "checkpoint entries 26/87 identical")."""
    found = []
    for p in pairs:
        lo, me, res = (p.get(k) or {} for k in ("losses", "metrics", "results"))
        compared, same, top = p.get("tensors_compared"), p.get("tensors_equal"), p.get("top_tensors")
        name = f"verification pair {_json(p.get('pair'))}"
        if not (all(isinstance(x.get("equal"), bool) for x in (lo, me, res)) and is_count(compared)
                and is_count(same) and same <= compared and isinstance(top, list)):  # fmt: skip
            found.append(f"{name} is not as verify records a pair (losses, metrics, results, checkpoint entries)")
            continue
        agree = lo["equal"] and me["equal"] and res["equal"] and 0 < compared == same
        if p["equal"] != agree:
            found.append(f"{name}: equal {_json(p['equal'])}, but its losses, metrics, results and checkpoint entries "
                         f"({same}/{compared} identical) give {_json(agree)}")  # fmt: skip
        if lo["equal"] != (lo.get("first_divergence") is None):
            found.append(f"{name}: losses.equal {_json(lo['equal'])}, but losses.first_divergence "
                         f"{_json(lo.get('first_divergence'))}")  # fmt: skip
        if bool(top) == (same == compared):
            found.append(f"{name}: {len(top)} top differing tensors, but {same}/{compared} checkpoint entries identical")
        if p["equal"] and p["max_abs_diff"] != 0:
            found.append(f"{name}: equal true, but max_abs_diff {_json(p['max_abs_diff'])}")
    losses_agree = all((p.get("losses") or {}).get("equal") is True for p in pairs)
    if (block.get("first_divergence") is None) != losses_agree:
        found.append(f"verification.first_divergence {_json(block.get('first_divergence'))}, but the pairs' losses "
                     f"are {'all' if losses_agree else 'not all'} equal")  # fmt: skip
    if bool(block.get("top_tensors")) != any(p.get("top_tensors") for p in pairs):
        found.append("verification.top_tensors is not what its pairs' top differing tensors give")
    return found


def _settled_verdicts(pairs: list[dict[str, Any]], tolerance: float) -> set[str]:
    """The verdicts verify can have settled on from these pairs. Pairs that compared no final
    weights decide `incomplete` since 2026-12-01; a verify before then decided them as if they had
    (tolerance or diverged), as records of 0.2.0 hold (the review)."""
    decided = (decide(pairs, tolerance), decide(pairs, tolerance, incomplete=False))
    return {verdict for verdict, froms in SETTLED_FROM.items() if any(d in froms for d in decided)}


def _settles_otherwise(audit: Mapping[str, Any], block: Mapping[str, Any]) -> str | None:
    """Why verify of this version would not have settled on an agreeing verdict its pairs give
    (`verify.settle_verdict`): run K was not resumed (unresumed), or run A's training diverged after
    its last checkpoint (incomplete). Only records of 0.4.0 on: before 2026-12-01, verify settled
    on neither."""
    if not written_from(audit, WEIGHED_FROM):
        return None
    if block.get("kill_signal") is None or block.get("resumed_from") is None:
        return "run K was not resumed from a checkpoint (verification.kill_signal, resumed_from): verify gives unresumed"
    training = audit.get("training")
    if isinstance(training, dict) and training.get("status") == "diverged":
        return "run A's training diverged after its last checkpoint (training.status): verify gives incomplete"
    return None


def _weighed_pair(pair: Any) -> bool:
    """Whether a stored verify pair has what `decide` reads, of the kinds it writes them."""
    return (isinstance(pair, dict) and isinstance(pair.get("equal"), bool) and "max_abs_diff" in pair
            and (pair["max_abs_diff"] is None or is_number(pair["max_abs_diff"]))
            and all(isinstance(pair.get(k) or {}, dict) for k in ("losses", "metrics", "results")))  # fmt: skip


def _size_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where the measured checkpoint size is not the size the record gives the evaluated
    checkpoint's file (`checkpoints.<best>.bytes`: a run takes both from the one file's stat), or is
    smaller than the bare weights it holds (with optimiser state, RNG and history besides), or the
    evaluated checkpoint is not among the record's checkpoints (its entry deleted with the check)."""
    meas, files = audit.get("measurements"), audit.get("checkpoints")
    size = meas.get("size") if isinstance(meas, dict) else None
    name = meas.get("evaluated_checkpoint") if isinstance(meas, dict) else None
    measured = size.get("checkpoint_bytes") if isinstance(size, dict) else None
    weights = size.get("weights_bytes") if isinstance(size, dict) else None
    found = []
    if is_count(measured) and is_count(weights) and weights > measured:  # the checkpoint holds the weights and more
        found.append(f"measurements.size.weights_bytes {weights} exceeds checkpoint_bytes {measured}, which hold them")
    stem = name.removesuffix(".pt") if isinstance(name, str) else None
    if stem is not None and isinstance(files, dict) and stem not in files:  # a run lists the file it measured
        found.append(f"measurements.evaluated_checkpoint is {name}, but checkpoints lists no {stem}")
    entry = files.get(stem) if isinstance(files, dict) and stem is not None else None
    listed = entry.get("bytes") if isinstance(entry, dict) else None
    if is_count(measured) and is_count(listed) and measured != listed:
        found.append(f"measurements.size.checkpoint_bytes {measured}, but checkpoints.{stem}.bytes holds {listed}")
    return found


def _latency_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where the latency statistics are out of the order any one sample set gives them
    (min <= median <= p95, min <= mean, IQR = p75 - p25 <= p95 - min): one of them was edited."""
    meas = audit.get("measurements")
    lat = meas.get("latency") if isinstance(meas, dict) else None
    keys = ("min_ms", "median_ms", "p95_ms", "mean_ms", "iqr_ms")
    if not isinstance(lat, dict) or not all(is_number(lat.get(k)) for k in keys):
        return []
    lo, mid, p95, mean, iqr = (lat[k] for k in keys)
    if _at_most(lo, mid) and _at_most(mid, p95) and _at_most(lo, mean) and _at_most(iqr, p95 - lo, p95):
        return []
    return [(f"measurements.latency is out of order (min {lo}, median {mid}, p95 {p95}, mean {mean}, IQR {iqr} ms): "
             "no set of timings gives these")]


def _training_disagrees(audit: Mapping[str, Any]) -> list[str]:
    """Where the training section contradicts its own epochs or the spec it copies: a run records
    epochs_run as its number of epoch records, epochs_planned as the spec's train.epochs, and
    `_steps_disagree` and `_time_disagrees` below (a user test: each edited alone gave the sheet
    "2 of 200 planned epochs", "the last on -101,272 images", a training time under one epoch's).
    Empty for a record of another shape."""
    tr, history = audit.get("training"), look_up(audit, "training.history")[1]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        return []
    found = []
    if is_count(run := tr.get("epochs_run")) and run != len(history):
        found.append(f"training.epochs_run {run}, but its history records {count(len(history), 'epoch')}")
    planned, epochs = tr.get("epochs_planned"), look_up(audit, "spec.train.epochs")[1]
    if is_count(planned) and is_count(epochs) and planned != epochs:
        found.append(f"training.epochs_planned {planned}, but the resolved spec's train.epochs is {epochs}")
    n_train = look_up(audit, "data.sizes.train")[1]
    return [*found, *_steps_disagree(audit, tr, history), *_time_disagrees(tr, history, n_train)]


def _steps_disagree(audit: Mapping[str, Any], tr: Mapping[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """Where training.steps_per_epoch is not the training images over the batch size (the last
    partial batch kept: `data.steps_per_epoch`), or an epoch record trained more steps than that."""
    spe = tr.get("steps_per_epoch")
    if not is_count(spe):
        return []  # null in a record of an older version
    n, batch = (look_up(audit, field)[1] for field in ("data.sizes.train", "spec.train.batch_size"))
    found = []
    made = steps_per_epoch(n, batch) if is_count(n) and is_count(batch) and batch > 0 else spe
    if spe != made:
        found.append(f"training.steps_per_epoch {spe}, but {count(n, 'training image')} (data.sizes.train) in "
                     f"batches of {batch} make {count(made, 'step')}")  # fmt: skip
    if over := next((h for h in history if is_count(h.get("steps")) and h["steps"] > spe), None):
        found.append(f"epoch {_json(over.get('epoch'))} of training.history trained {over['steps']} steps, more than "
                     f"training.steps_per_epoch {spe}")  # fmt: skip
    return found


def _time_disagrees(tr: Mapping[str, Any], history: list[dict[str, Any]], n_train: Any) -> list[str]:
    """Where training.train_time_s is not the sum of the epochs' epoch_s, or images_per_s not the
    images those epochs trained over it. A run adds each epoch's time to the one total, in order
    (so the sum is exact), and a diverged run the steps of its last epoch besides, which has no
    record: only bounds hold there (that epoch trained at most `n_train` images, one epoch's)."""
    total, rate = tr.get("train_time_s"), tr.get("images_per_s")
    timed = all(is_number(h.get("epoch_s")) and is_number(h.get("images_per_s")) for h in history)
    if not is_number(total) or not timed:
        return []
    summed, images = 0.0, 0.0
    for h in history:
        summed += h["epoch_s"]
        images += h["images_per_s"] * h["epoch_s"]  # each epoch's images, to the last bits
    diverged, found = tr.get("status") == "diverged", []
    if not (_at_most(summed, total) if diverged else math.isclose(summed, total, rel_tol=1e-9, abs_tol=1e-9)):
        found.append(f"training.train_time_s {_json(total)}, but its epochs' epoch_s sum to {summed:.6g} s")
    elif is_number(rate) and total > 0:
        expected, most = images / total, (images + n_train) / total if is_count(n_train) else math.inf
        held = _at_most(expected, rate) and _at_most(rate, most) if diverged else math.isclose(rate, expected, rel_tol=1e-9)
        if not held:
            found.append(f"training.images_per_s {_json(rate)}, but its epochs trained {images:,.0f} images in "
                         f"train_time_s {total:.6g} s: {expected:.6g} images/s")  # fmt: skip
    return found


def _counts_disagree(data: Any) -> list[str]:
    """Where a split's size (data.sizes) is not the sum of its class counts (data.class_counts),
    which a run counts from the same labels. Empty for a record of another shape."""
    sizes, counts = (look_up(data, key)[1] for key in ("sizes", "class_counts"))
    if not isinstance(sizes, dict) or not isinstance(counts, dict):
        return []
    found = []
    for split, n in sizes.items():
        per_class = counts.get(split)
        if is_count(n) and isinstance(per_class, list) and all(map(is_count, per_class)) and sum(per_class) != n:
            found.append(f"data.sizes.{split} {n}, but data.class_counts.{split} sums to {sum(per_class)}")
    return found


def _spec_copies_disagree(audit: Mapping[str, Any]) -> list[str]:
    """Where the determinism section's copies of the resolved spec (the seed, whether determinism
    was asked for) are not its values: the sheet's summary and determinism rows read the copies."""
    det = audit.get("determinism")
    if not isinstance(det, dict):
        return []
    copies = (("seed", "seed"), ("requested", "determinism.enabled"))  # (its key, the spec field it copies)
    pairs = [(key, where, look_up(audit, f"spec.{where}")[1]) for key, where in copies]
    return [f"determinism.{key} {_json(det[key])}, but the resolved spec's {where} is {_json(value)}"
            for key, where, value in pairs if key in det and value is not None and not _same(det[key], value)]


def _at_most(a: float, b: float, scale: float | None = None) -> bool:
    """a <= b, with slack for the last bits of np.percentile's interpolation (relative to `scale`, or b)."""
    return a <= b + abs(b if scale is None else scale) * 1e-9


def _selection_disagrees(training: Any) -> list[str]:
    """Where training.best_epoch and best_metric are not what the record's own history gives: a
    run selects the first epoch of highest selection accuracy (`val_acc`) among those whose
    selection loss is a number (`train.selectable`); none where no epoch is. Empty for a record of
    another shape, or one whose history holds a selectable epoch without an accuracy."""
    if not isinstance(training, dict) or not isinstance(history := training.get("history"), list):
        return []
    if not all(isinstance(h, dict) and is_number(h.get("epoch")) for h in history):
        return []
    best = None
    for h in (h for h in history if is_number(h.get("val_loss"))):
        if not is_number(h.get("val_acc")):
            return []
        if best is None or h["val_acc"] > best["val_acc"]:
            best = h
    epoch, metric = training.get("best_epoch"), training.get("best_metric")
    expected = (None, None) if best is None else (best["epoch"], best["val_acc"])
    if _same(epoch, expected[0]) and (_same(metric, expected[1]) or metric is expected[1] is None):
        return []
    if _older_choice(history, epoch, metric):
        return []
    gives = "no selectable epoch" if best is None else f"epoch {expected[0]} ({_json(expected[1])})"
    return [f"training.best_epoch {_json(epoch)} (best_metric {_json(metric)}), but its history selects {gives}"]


def _older_choice(history: list[dict[str, Any]], epoch: Any, metric: Any) -> bool:
    """Whether `epoch` (whose selection loss is not a number) is what versions before
    `train.selectable` selected: the first epoch of highest `val_acc` (null as 0) over all epochs;
    a run resumed under this version keeps it unless a later selectable epoch beat it."""
    rec = next((h for h in history if _same(h["epoch"], epoch)), None)
    if rec is None or is_number(rec.get("val_loss")):
        return False
    acc = rec.get("val_acc")
    if not (_same(metric, acc) or metric is acc is None):
        return False
    score = acc if is_number(acc) else 0.0
    before = [h for h in history if h["epoch"] < rec["epoch"]]
    after = [h for h in history if h["epoch"] > rec["epoch"] and is_number(h.get("val_loss"))]
    return all((h["val_acc"] if is_number(h.get("val_acc")) else 0.0) < score for h in before) and not any(
        is_number(h.get("val_acc")) and h["val_acc"] > score for h in after)


def provenance_disagrees(data: Any) -> list[str]:
    """Where data.official (in a record's `data` section) is not what the record's own file report
    gives: a run sets it true for CIFAR-10 whose every file checked "ok" (data.files), false for
    one where any did not, and leaves it null for synthetic data. Empty for a record of another shape."""
    if not isinstance(data, dict) or "official" not in data:
        return []
    dataset, files, official = data.get("dataset"), data.get("files"), data.get("official")
    if dataset == "synthetic":
        expected, why = None, 'data.dataset is "synthetic"'
    elif dataset == "cifar10" and isinstance(files, dict) and files:
        odd = [f"{name} {status}" for name, status in files.items() if status != "ok"]
        expected = not odd
        why = f"data.files reports {', '.join(map(str, odd[:3]))}" if odd else 'data.files reports every file "ok"'
    else:
        return []
    return [] if official is expected else [f"data.official {_json(official)}, but {why}"]


def _metric_disagrees(metric: str, src: MetricSource, value: Any, noted: bool) -> str | None:
    """Why `value` (metrics.<metric>; None where absent) is not what the record's `src` gives,
    or None. A null the record explains (a metric note) is a figure withheld, by this version's
    rules or another's; a figure an older version did not withhold agrees where no note says so."""
    if value is None and (noted or src.value in (None, ABSENT)):
        return None
    if src.withheld_by is not None:  # every version that wrote that field withheld the figure then
        return (f"metrics.{metric} {_json(value)}, but {src.withheld_by} names tensors holding inf or NaN, "
                "for which a run records null")
    allowed = [src.value] if noted else [src.value, src.measured]
    if any(a is not ABSENT and _same(value, a) for a in allowed):
        return None
    if src.value is ABSENT:
        return f"metrics.{metric} {_json(value)}, but the record holds no {src.source}"
    if _same(src.value, src.measured):
        return f"metrics.{metric} {_json(value)}, but {src.source} is {_json(src.value)}"
    return f"metrics.{metric} {_json(value)}, but a run records {_json(src.value)} from {src.source} {_json(src.measured)}"


def _stored_disagrees(index: int, entry: Any, metrics: Mapping[str, Any]) -> str | None:
    """Why a stored criterion result's measured value is not its metric's, or None (also for an
    entry of another shape, which `stored_verdict_differs` reports)."""
    if not isinstance(entry, dict) or "measured" not in entry:
        return None
    metric = entry.get("metric")
    if not isinstance(metric, str) or (metric not in NUMERIC_METRICS and metric not in CATEGORICAL_METRICS):
        return None
    expected = measured_value(metric, metrics.get(metric))
    if _same(entry["measured"], expected):
        return None
    return (f"criteria[{index}] ({metric} {str(entry.get('expr', '')).strip()}) measured {_json(entry['measured'])}, "
            f"but metrics.{metric} {_json(metrics.get(metric))}")


# What a stored criterion result takes from its criterion in the hashed spec: none of it is judged.
CRITERION_FIELDS = ("expr", "op", "threshold", "tolerance")


def _criteria_disagree(audit: Mapping[str, Any]) -> list[str]:
    """Where a stored criterion result's metric has no criterion, or its expression, operator,
    threshold or tolerance is not its criterion's, in the record's own (hashed) spec, one phrase
    each: the sheet's Criteria table shows
    the stored results, so an edited `expr` would show a gate the run was never judged by. Empty
    where the spec's criteria cannot be judged here (`stored_verdict_differs` says why)."""
    if not isinstance(spec := audit.get("spec"), Mapping) or not isinstance(audit.get("criteria"), list):
        return []  # a record read_audit refuses, or a part of one: nothing to compare
    try:
        again = {r.metric: r for r in judge(spec.get("criteria") or {}, audit)}
    except (ValueError, TypeError, AttributeError, KeyError):
        return []
    found = []
    for i, entry in enumerate(audit["criteria"]):
        if not isinstance(entry, dict) or not isinstance(metric := entry.get("metric"), str):
            continue
        if (r := again.get(metric)) is None:  # a run stores a result for each of its spec's criteria only
            found.append(f"criteria[{i}] metric {_json(metric)}, but the record's spec has no criterion on it")
            continue
        if odd := [f for f in CRITERION_FIELDS if f in entry and not _same(entry[f], getattr(r, f))]:
            found.append(f"criteria[{i}] ({r.metric}) {odd[0]} {_json(entry[odd[0]])}, but its criterion in the "
                         f"record's spec gives {_json(getattr(r, odd[0]))}")  # fmt: skip
    return found


def _same(a: Any, b: Any) -> bool:
    """Equal and of one kind: numbers by value (an int is its float), a bool never a number."""
    if is_number(a) and is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _json(value: Any) -> str:
    """A value as the record writes it (`null`, `"bitwise"`, `0.95`)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _pass_word(passed: bool | None) -> str:
    return "absent" if passed is None else "PASS" if passed else "FAIL"
