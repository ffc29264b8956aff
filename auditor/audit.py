"""The audit record: where a run's files live, and reading and writing them.

`audit.json` is the single source the sheet, `check`, `verify` and `ablate`
read; every write here is atomic, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import json.scanner
import math
import numbers
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from auditor.errors import InvalidInput, ablation_run_of
from auditor.fileio import (
    NO_MARK,
    atomic_write_bytes,
    file_words,
    hand_edited,
    holder_now,
    is_regular_file,
    lock_beside,
    what_stands_at,
)
from auditor.spec import ABLATION_PAGE, ASIDE, FAILED, STAGING, not_utf8_place
from auditor.words import count

SCHEMA_VERSION = 1
AUDIT_KEYS: dict[str, type | tuple[type, ...]] = {
    "run": dict, "spec": dict, "spec_hash": str, "determinism": dict, "environment": dict,
    "data": dict, "model": dict, "training": dict, "measurements": dict, "checkpoints": dict,
    "metrics": dict, "criteria": list, "verdict": str,
}  # fmt: skip
# The metrics every run has written, from the first version on: one missing was deleted by hand (a
# seed's test accuracy dropped from an ablation's mean would have shown only as a smaller n).
FIRST_METRICS = ("test_acc", "best_val_acc", "final_val_acc", "final_train_acc", "latency_ms", "params_m",
                 "checkpoint_mb", "train_time_s", "images_per_s", "peak_rss_mb", "status", "official_data")  # fmt: skip
# Nested fields `check` and `render` read without further checks: (path, types, required).
NESTED_KEYS: list[tuple[tuple[str, ...], type | tuple[type, ...], bool]] = [
    (("run", "name"), str, True), (("run", "status"), str, True),
    (("training", "history"), list, True), (("spec", "criteria"), dict, False),
    (("metric_notes",), dict, False), (("verification",), (dict, type(None)), False),
    # Flags the sheet ticks boxes on: `"false"` or 1e308 in place of a bool would read as true.
    (("data", "official"), (bool, type(None)), False), (("data", "downloaded"), (bool, type(None)), False),
    # Shown on the sheet as recorded (runs since they were recorded; items checked by _malformed_items).
    (("model", "init"), str, False), (("data", "split_fingerprint"), (str, type(None)), False),
    (("data", "class_counts"), dict, False), (("step_checkpoints",), list, False),
    (("data", "other_entries"), (list, type(None)), False),
    # The Reproduce commands' paths (null in their place had been a Python TypeError's text).
    (("run", "out"), str, False), (("run", "report_dir"), str, False), (("environment", "cwd"), str, False),
    *((("determinism", flag), bool, False) for flag in (
        "requested", "cudnn_deterministic", "cudnn_benchmark", "deterministic_algorithms", "cuda_initialized_before")),
    *((("determinism", flag), (bool, type(None)), False) for flag in (  # null: not recorded (older records)
        "fill_uninitialized_memory", "inductor_deterministic", "cudnn_allow_tf32", "cuda_matmul_allow_tf32")),
    *((("metrics", m), (int, float, str, bool, type(None)), True) for m in FIRST_METRICS),  # kinds: edited_metrics
]  # fmt: skip
OTHER_ENTRIES_KEPT = 20  # names of a data folder's unread entries a record keeps (thousands would swamp it)
# Written by `promote` into a run's folder just before it renames it to `<name>.old`: a copy a user
# made under that name (a backup of the run) holds a run too, and must not be taken for one set aside.
SET_ASIDE = ".set-aside-by-auditor"
# Written first into every work dir `auditor verify` makes (verify/<name>/, its runs under a/, b/, k/).
VERIFY_MARKER = ".auditor-verify"
# Step checkpoints' names (checkpoint.save_step_checkpoint writes them).
STEP_GLOB = "step-*.pt"
STEP_NAME = re.compile(r"^step-(\d+)\.pt$")
# The sheet's one figure, reports/<run>/figures/<this>.png (render writes it).
LEARNING_CURVES = "learning_curves"


@dataclass(frozen=True)
class RunPaths:
    """Final and staging folders of one run."""

    out: Path
    reports: Path
    checkpoints: Path

    @property
    def reports_staging(self) -> Path:
        """The report folder being written; promoted over `reports` when the run ends."""
        return self.reports.with_name(self.reports.name + STAGING)

    @property
    def ckpt_staging(self) -> Path:
        """The checkpoint folder being written; promoted over `checkpoints` when the run ends."""
        return self.checkpoints.with_name(self.checkpoints.name + STAGING)

    @property
    def lock(self) -> Path:
        """The run's lock file, beside its checkpoint folder: it never moves, unlike the folders."""
        return lock_beside(self.checkpoints)

    @property
    def last_checkpoint(self) -> Path:
        """A finished run's last.pt: what `--resume` on a finished run starts from."""
        return self.checkpoints / "last.pt"


def step_checkpoints(ckpt_dir: Path) -> list[Path]:
    """The step checkpoints the trainer wrote (`step-<digits>.pt`); other files are not ours."""
    return [p for p in ckpt_dir.glob(STEP_GLOB) if STEP_NAME.match(p.name) and p.is_file()]


def step_of(path: Path) -> int | None:
    """The global step a step checkpoint's name gives (`step-00000049.pt` -> 49), or None for another name."""
    m = STEP_NAME.match(path.name)
    return int(m[1]) if m else None


def has_checkpoint(ckpt_dir: Path) -> bool:
    """Whether `ckpt_dir` holds a checkpoint to continue from (intact or not), without loading one:
    best.pt alone too, which a run writes before last.pt with the same bytes (a full disk can stop
    it between them: `checkpoint.resume_point` continues from it)."""
    return any((ckpt_dir / name).is_file() for name in ("last.pt", "best.pt")) or bool(step_checkpoints(ckpt_dir))


# The CUBLAS_WORKSPACE_CONFIG values torch's deterministic mode accepts (it raises at the
# first cuBLAS call otherwise); repro sets the first, the sheet ticks its flags box for either.
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")
# The kernel counts CPU time in 10 ms ticks (Linux), so other processes' share of the
# CPU (measure.ForeignCpu) is uncertain by about 2 ticks over its window (cpu_share_error);
# under MIN_CPU_WINDOW_S (20% uncertain) it is not recorded.
MIN_CPU_WINDOW_S = 0.1
# Other processes' share of the CPUs at or above this while the latency was timed (beyond
# its uncertainty): the timed model's threads had to wait for them, so its median is inflated.
BUSY_CPU_SHARE = 0.10


def cpu_share_error(window_s: float) -> float:
    """Uncertainty of a CPU share measured over `window_s` seconds: two 10 ms ticks."""
    return 0.02 / max(window_s, 1e-9)


def busy_cpu(share: float | None, window_s: float | None) -> bool:
    """Whether other processes' CPU `share` calls for a warning: above BUSY_CPU_SHARE by more
    than its uncertainty (judged as shown: whole percent)."""
    if share is None or window_s is None:
        return False
    return round(share - cpu_share_error(window_s), 2) >= BUSY_CPU_SHARE


def chose_on_test(training: Mapping[str, Any]) -> bool:
    """Whether a run's checkpoint was chosen among several epochs by their test-set scores
    (one scored epoch is no choice, so no selection bias); `training`: a record's section."""
    return (training.get("selection_split") == "test" and (training.get("epochs_run") or 0) > 1
            and training.get("best_epoch", 0) is not None)  # null: none selected (no loss a number), no choice


def losses_text(losses: Mapping[str, Any]) -> str:
    """How two runs' per-step losses compare (verify's `compare_losses` record): 'losses of all
    7 steps equal', 'losses of 2 of 7 steps differ, first at step 5'."""
    a, b, first = losses.get("steps_a"), losses.get("steps_b"), losses.get("first_divergence")
    if losses.get("equal"):
        return f"losses of all {a} steps equal"
    lengths = "" if a == b else f" (the runs wrote {a} and {b} steps)"
    if losses.get("steps_differ") is None:  # a record written before the count was kept
        return f"losses differ from step {first}{lengths}"
    return f"losses of {losses['steps_differ']} of {max(a or 0, b or 0)} steps differ, first at step {first}{lengths}"


def short_of_budget(block: Mapping[str, Any]) -> str:
    """'; run A trained 6 of them (...)' where verify's reference run stopped before the budget's
    end (early stopping, a divergence), else '' (also for records of another shape)."""
    try:
        trained, total = block["pairs"][0]["losses"]["steps_a"], block["budget"]["total_steps"]
    except (KeyError, IndexError, TypeError):
        return ""
    if not isinstance(trained, int) or not isinstance(total, int) or trained >= total:
        return ""
    return f"; run A trained {trained:,} of them (early stopping or a divergence ended it before the budget's end)"


# Above this IQR / median, the timed iterations did not run alike (another process, a
# frequency change): the median then says more about the machine than about the model.
UNSTEADY_IQR_SHARE = 0.25


def unweighed(pair: Mapping[str, Any]) -> bool:
    """A verify pair with no final weights to compare (no last.pt: training diverged first) in which
    everything else compared agrees: losses, metrics, and results (records before those: none)."""
    return pair.get("tensors_compared") == 0 and all(
        (pair.get(k) or {"equal": True}).get("equal") for k in ("losses", "metrics", "results"))  # fmt: skip


def nothing_differs(pairs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether no compared point differs in any verify pair."""
    return all(p.get("equal") or unweighed(p) for p in pairs)


def decide(pairs: Sequence[Mapping[str, Any]], tolerance: float, incomplete: bool = True) -> str:
    """bitwise | incomplete (nothing differs, but final weights went uncompared: no last.pt) |
    tolerance | diverged, of verify's pairs; `verify.settle_verdict` also makes agreeing runs
    incomplete when training diverged, or unresumed. Here, torch-free, for `check` to judge a
    stored verdict against its stored pairs. `incomplete=False`: as verify decided before
    2026-12-01, when uncompared final weights did not make a verdict incomplete."""
    if all(p["equal"] for p in pairs):
        return "bitwise"
    if incomplete and nothing_differs(pairs):
        return "incomplete"
    if all(p["max_abs_diff"] is not None and p["max_abs_diff"] <= tolerance for p in pairs):
        return "tolerance"
    return "diverged"


def scope_text(block: Mapping[str, Any]) -> str:
    """`, 2 threads, torch 2.x`: what verify's three runs shared besides the device (absent in
    evidence written before it was recorded)."""
    threads = f", {count(block['threads'], 'thread')}" if block.get("threads") else ""
    return threads + (f", torch {block['torch']}" if block.get("torch") else "")


def latency_warnings(lat: Mapping[str, Any], checkpoint_name: str | None) -> dict[str, tuple[str, str]]:
    """Warnings on a latency record (measure.LatencyResult as a dict), by kind ("spread",
    "busy"), each (title, text); `checkpoint_name` names what `auditor measure` can re-time."""
    again = f" `auditor measure` on {checkpoint_name} measures it again." if checkpoint_name else ""
    judged = f"a latency criterion judged on this median may not hold on a quiet machine.{again}"
    found = {}
    median, iqr = lat["median_ms"], lat["iqr_ms"]
    if median and iqr > UNSTEADY_IQR_SHARE * median:
        found["spread"] = ("Unsteady timing", (
            f"the IQR is {iqr / median:.0%} of the median (p95 {lat['p95_ms']:.3f} ms, min {lat['min_ms']:.3f} ms): "
            f"the iterations did not run alike, most likely because other work shared the machine. {judged[0].upper()}{judged[1:]}"
        ))  # fmt: skip
    share = lat.get("other_cpu_share")
    if busy_cpu(share, lat.get("other_cpu_window_s")):
        found["busy"] = ("Busy machine", (
            f"other processes used {share:.0%} of the CPU while the latency was timed. The timed model's threads "
            f"then wait for cores, which inflates every iteration alike (the IQR need not widen); {judged}"
            f"{_fewer_threads(lat)}"
        ))  # fmt: skip
    return found


def _fewer_threads(lat: Mapping[str, Any]) -> str:
    """For a CPU latency timed at more than one thread: that a timing at fewer threads than the
    cores left free waits less (a user test: re-timed at the same threads on the same busy machine,
    the figure was as inflated, 190-fold), and is another setting than the run's."""
    threads = lat.get("threads")
    if not str(lat.get("device", "")).startswith("cpu") or not isinstance(threads, int) or threads < 2:
        return ""
    return (f" The model was timed at {threads} threads, each of which waits for a core at every parallel step: on a "
            "shared machine, fewer threads than the cores left free (e.g. OMP_NUM_THREADS=1) wait less, though at "
            "another setting than the run's.")


# What the tool writes under an output root (`--out`): runs' reports and checkpoints, verify's runs.
OUTPUT_DIRS = ("reports", "checkpoints", "verify")


def run_paths(out: Path, name: str) -> RunPaths:
    """Where run `name` lives under the output root `out`."""
    return RunPaths(out, out / "reports" / name, out / "checkpoints" / name)


def checkpoints_meant(path: Path) -> str:
    """Where `path` is a run's report folder or a file in one (audit.json, the sheet), given where a
    checkpoint goes: "; this is a run's report folder: its checkpoints are ...", naming the files its
    run wrote beside it (`run_paths`), or '' for any other path."""
    try:
        if not path.exists():  # a checkpoint not found there: not taken for one of the report's files
            return ""
        folder = Path(os.path.abspath(path if path.is_dir() else path.parent))
        if not (folder / "audit.json").is_file() or folder.parent.name != "reports":
            return ""
        at = run_paths(folder.parent.parent, folder.name).checkpoints
        if not at.parent.is_dir():  # not beside the report as a run writes them (or reached through a link): not guessed
            return ""
        ckpts = Path(os.path.relpath(at)) if not path.is_absolute() else at  # written as the user wrote theirs
        found = [str(ckpts / name) for name in ("best.pt", "last.pt") if (at / name).is_file()]
    except (OSError, ValueError):  # ValueError: relpath across Windows drives
        return ""
    what = "a run's report folder" if path.is_dir() else f"a file in a run's report folder ({path.parent})"
    if not found:
        return f"; this is {what}: its checkpoints would be in {ckpts}, which holds no best.pt or last.pt"
    return f"; this is {what}: its checkpoints are {' and '.join(found)}"


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (NaN and ±inf written as null so any JSON reader accepts it)."""
    text = json.dumps(finite_or_none(obj), indent=2, allow_nan=False)
    atomic_write_bytes(path, text.encode() + b"\n")


def finite_or_none(obj: Any) -> Any:
    """`obj` with every non-finite float (a diverged loss, an overflow) replaced by None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    """Atomic CSV write."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


MB = 1e6  # sizes are reported in decimal megabytes (measure's figures, the runner's metrics)
PARAMS_UNIT = 1e6  # params_m counts parameters in millions


class _Absent:
    """The value of a field a record does not hold (written before it was kept, or edited away)."""

    def __repr__(self) -> str:
        return "absent"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class MetricSource:
    """Where a record holds the figure a metric copies, and what the metric may then be."""

    source: str  # the field, e.g. `measurements.test.acc`
    value: Any  # what a run of this version records: the figure, or None where it withholds it
    measured: Any  # the figure before any withholding (what versions that withheld less recorded)
    # The field whose presence shows a version that withholds the figure, where the record holds it
    # (`measurements.final_nonfinite`: no version that wrote it recorded the last epoch's accuracy then).
    withheld_by: str | None = None


def metric_sources(audit: Mapping[str, Any]) -> dict[str, MetricSource]:
    """Every metric a run records, with the field of the record it is copied from, as
    `runner._metrics` copies it (and `verify` the verdict into `reproducible`).

    Metrics are copies, not recomputations, so a metric that is not exactly its source's figure
    was edited after the run. ABSENT where the record lacks the source field."""
    meas, tr = _section(audit, "measurements"), _section(audit, "training")
    nonfinite = bool(meas.get("nonfinite"))  # absent before broken models were detected: none withheld
    return {
        **_accuracy_sources(meas, tr, nonfinite),
        "latency_ms": _copied("measurements.latency.median_ms", _at(meas, "latency", "median_ms")),
        "params_m": _per(meas, "params_total", PARAMS_UNIT),
        "checkpoint_mb": _per(meas, "checkpoint_bytes", MB),
        "weights_mb": _per(meas, "weights_bytes", MB),
        "train_time_s": _copied("training.train_time_s", _at(tr, "train_time_s")),
        "images_per_s": _copied("training.images_per_s", _at(tr, "images_per_s")),
        "peak_rss_mb": _copied("measurements.memory.peak_rss_mb", _at(meas, "memory", "peak_rss_mb")),
        "status": _copied("training.status", _at(tr, "status")),
        "official_data": _official_source(_at(audit, "data", "official")),
        "reproducible": _reproducible_source(audit.get("verification")),
    }


def _accuracy_sources(meas: Mapping[str, Any], tr: Mapping[str, Any], nonfinite: bool) -> dict[str, MetricSource]:
    """The accuracies, which a run withholds (null, with a metric note) where they mean nothing:
    measured on a model holding inf or NaN, or (the last epoch's) from a loss that was not a number."""
    has_val = tr.get("selection_split") == "val"
    test = meas.get("test", ABSENT)
    test_acc = test if test is None or test is ABSENT else _at(test, "acc")
    best = _at(tr, "best_metric") if has_val else None
    history = tr.get("history")
    last = history[-1] if isinstance(history, list) and history else None
    if last is not None and not isinstance(last, dict):
        last = ABSENT
    final = _at(last, "val_acc") if last is not None and has_val else None
    withheld = isinstance(last, dict) and final is not None and final_withheld(last, meas, tr)
    nan_test = isinstance(test, dict) and "loss" in test and not_a_number(test["loss"])
    return {
        "test_acc": MetricSource("measurements.test.acc", None if nonfinite or nan_test else test_acc, test_acc,
                                 "measurements.nonfinite" if nonfinite else None),
        "best_val_acc": MetricSource("training.best_metric", None if nonfinite or _best_nan(tr) else best, best),
        "final_val_acc": MetricSource("training.history[-1].val_acc", None if withheld else final, final,
                                      "measurements.final_nonfinite" if meas.get("final_nonfinite") else None),
        "final_train_acc": _copied("training.history[-1].train_acc", _at(last, "train_acc") if last is not None else None),
    }  # fmt: skip


def selected_epoch(tr: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The history entry of a record's selected epoch (`training.best_epoch`), or None: none was
    selected, or the record does not hold it."""
    history, best = tr.get("history"), tr.get("best_epoch")
    if not isinstance(history, list) or best is None:
        return None
    return next((h for h in history if isinstance(h, dict) and h.get("epoch") == best), None)


def _best_nan(tr: Mapping[str, Any]) -> bool:
    """Whether the selected epoch's selection loss was not a number, which records of versions
    that selected such an epoch hold (this version never selects one: `train.selectable`)."""
    rec = selected_epoch(tr)
    return rec is not None and "val_loss" in rec and not_a_number(rec["val_loss"])


def final_withheld(last: Mapping[str, Any], meas: Mapping[str, Any], tr: Mapping[str, Any]) -> bool:
    """Whether a run withholds the last epoch's validation accuracy (`runner._final_is_noise`): its
    val loss was not a number (a record holds null for one), or the weights it was measured on
    (last.pt, or the selected epoch's when it is the last) hold inf or NaN."""
    if not_a_number(last.get("val_loss")):
        return True
    return bool(meas.get("final_nonfinite")) or (bool(meas.get("nonfinite")) and last.get("epoch") == tr.get("best_epoch"))


def none_selected(epochs_run: int, best_epoch: Any) -> bool:
    """Whether epochs completed but none was selected: every one's selection loss was not a number,
    and such an epoch is never selected (`train.selectable`; older versions always selected one)."""
    return bool(epochs_run) and best_epoch is None


def no_selection_note(epochs_run: int, best_epoch: Any, split: str) -> str | None:
    """Why no checkpoint was selected although epochs completed (`none_selected`), or None."""
    if not none_selected(epochs_run, best_epoch):
        return None
    return (f"no epoch was selected: the {split} loss of every completed epoch ({count(epochs_run, 'epoch')}) was "
            "not a number (the model computed inf or NaN), so no best checkpoint was written")


def record_no_selection(training: Mapping[str, Any]) -> str | None:
    """`no_selection_note` of a record's training section."""
    history = training.get("history")
    return no_selection_note(len(history) if isinstance(history, list) else 0, training.get("best_epoch"),
                             training.get("selection_split"))


def nan_test_loss_note(checkpoint_name: str | None, acc: Any) -> str:
    """Why a test accuracy whose test loss is not a number is not reported."""
    measured = f" ({acc:.2%})" if is_number(acc) else ""
    return (f"the test loss of {checkpoint_name or 'the model'} is not a number: it computed inf or NaN on some "
            f"test images, and its accuracy as measured{measured}, which counts argmaxes of non-numbers, means nothing")


def not_a_number(loss: Any) -> bool:
    """Whether a recorded loss is not a number: null in a record, NaN or inf in memory."""
    return loss is None or (isinstance(loss, float) and not math.isfinite(loss))


def _official_source(official: Any) -> MetricSource:
    # Versions before the metric was a bool recorded the provenance as it was (None: synthetic data).
    return MetricSource("data.official", official is True if official is not ABSENT else ABSENT, official)


def _reproducible_source(verification: Any) -> MetricSource:
    if verification is None:  # never verified: the metric is absent, with a note saying so
        return _copied("verification", None)
    return _copied("verification.verdict", _at(verification, "verdict"))


def _copied(source: str, value: Any) -> MetricSource:
    return MetricSource(source, value, value)


def _section(audit: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    node = audit.get(key)
    return node if isinstance(node, dict) else {}


def _at(node: Any, *keys: str) -> Any:
    """`node[k1][k2]...`, or ABSENT where a key is missing or a step is not an object."""
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


def _per(meas: Mapping[str, Any], field: str, unit: float) -> MetricSource:
    """measurements.size.<field> over `unit`, divided as the runner divides it (so bit for bit the
    same float); None kept, and ABSENT for what is not a number."""
    count_ = _at(meas, "size", field)
    source = f"measurements.size.{field} / {unit:.0e}".replace("e+0", "e")  # `/ 1e6`
    if is_number(count_):
        return _copied(source, count_ / unit)
    return _copied(source, None if count_ is None else ABSENT)


def spec_hash_matches(audit: dict[str, Any]) -> bool:
    """Whether `spec_hash` is the sha256 of the resolved spec recorded beside it (False: the
    record was edited after the run)."""
    from auditor.spec import hash_resolved

    return hash_resolved(audit["spec"]) == audit["spec_hash"]


RESOLVED_YAML = "spec.resolved.yaml"  # the resolved spec as YAML, beside audit.json


class ResolvedProblem(NamedTuple):
    """What is wrong with a run folder's spec.resolved.yaml: `kind` is "unusable" (missing, not a
    file, unreadable: the Reproduce command fails), "other" (another training) or "alike" (the
    same training, other criteria, description, measure or verify settings); `text` says it of the file."""

    kind: str
    text: str
    path: Path  # the file that command names (`retrain_spec_file`)
    beside: bool  # whether that is the one beside the record
    by_verify: bool = False  # a run `auditor verify` started: its sheet's first command repeats the verification


# What a retrain from spec.resolved.yaml (the sheet's first Reproduce command, but for a run verify started) does then.
RESOLVED_EFFECT = MappingProxyType({
    "unusable": "fails",
    "other": "would not train this run's spec",
    "alike": "trains as this run did, but judges, measures or describes it otherwise",
})  # fmt: skip


def resolved_yaml_warning(run_dir: Path, audit: dict[str, Any]) -> str | None:
    """A warning when the spec.resolved.yaml the sheet's first Reproduce command retrains from
    (`retrain_spec_file`: RUN_DIR's, or that of the folder the run wrote) does not hold the spec
    audit.json records (it hashes otherwise, cannot be read, or is missing): the sheet and `check`
    go by audit.json. None when it agrees."""
    problem = resolved_yaml_problem(run_dir, audit)
    if problem is None:
        return None
    return (f"{problem.path} {problem.text}: the sheet and check go by audit.json, but {retrain_words(problem)} "
            f"{RESOLVED_EFFECT[problem.kind]}")  # fmt: skip


def other_run_files_warning(run_dir: Path, audit: dict[str, Any]) -> str | None:
    """A warning where RUN_DIR's own spec.resolved.yaml is not the file the Reproduce command
    names (the record's run wrote its report in another folder, which is here) and holds another
    spec: an audit.json put in another run's report folder, or a copy's file edited. None where
    RUN_DIR has no such file (a record copied alone) or it holds the recorded spec."""
    own = run_dir / RESOLVED_YAML
    if retrain_spec_file(run_dir, audit) == own or not own.is_file():
        return None
    if (problem := _spec_file_problem(own, run_dir, audit)) is None:
        return None
    return (f"{own} {problem.text}: it was edited, or is another run's beside this record (whose run wrote its "
            f"report in {_moved_from(run_dir, audit)}, whose file the sheet's Reproduce commands name); the sheet and "
            "check go by audit.json alone")


def spec_file_warnings(run_dir: Path, audit: dict[str, Any]) -> list[str]:
    """What `render` and `check` warn of the files beside a record in RUN_DIR: the spec.resolved.yaml
    its Reproduce command names (`resolved_yaml_warning`), RUN_DIR's own (`other_run_files_warning`),
    and a metrics.csv that no longer holds its epochs (`history_file_warning`)."""
    return [w for w in (resolved_yaml_warning(run_dir, audit), other_run_files_warning(run_dir, audit),
                        history_file_warning(run_dir, audit)) if w]  # fmt: skip


class HistoryProblem(NamedTuple):
    """What `history_file_problem` found: `edited` (metrics.csv no longer holds the history) or
    not (it cannot be read), and the warning that says so."""

    edited: bool
    text: str


def history_file_warning(run_dir: Path, audit: Mapping[str, Any]) -> str | None:
    """`history_file_problem`'s warning, or None."""
    problem = history_file_problem(run_dir, audit)
    return problem.text if problem else None


def history_file_problem(run_dir: Path, audit: Mapping[str, Any]) -> HistoryProblem | None:
    """Where RUN_DIR's metrics.csv, which the run writes with audit.json from the same epochs, no
    longer holds the record's `training.history` (an epoch's figure, a column, the epochs themselves):
    one of them was edited after the run, and the sheet's and an ablation page's curves draw the
    record's (a user test: an edited epoch went unnoticed), or where it cannot be read. None where
    they agree, or no metrics.csv is there (a copy of audit.json alone) to compare."""
    path, training = run_dir / "metrics.csv", audit.get("training")
    history = training.get("history") if isinstance(training, dict) else None
    if not isinstance(history, list) or not is_regular_file(path):
        return None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return HistoryProblem(False, f"{path}: unreadable ({exc}), so audit.json's per-epoch history cannot be compared with it")
    if (differs := _history_difference(history, rows)) is None:
        return None
    return HistoryProblem(True, f"{path} does not hold audit.json's per-epoch history ({differs}): one of them was "
                                "edited after the run; the curves are drawn from audit.json's")  # fmt: skip


def _history_difference(history: list[Any], rows: list[dict[str, Any]]) -> str | None:
    """The first way `history` (the record's epochs) differs from metrics.csv's `rows`, or None: the
    epoch counts, a column the record's epochs hold, or an epoch's figure (written from one float,
    so read back equal). A row cut short has None for its missing cells (csv.DictReader's)."""
    if len(history) != len(rows):
        return f"{len(rows)} epochs in metrics.csv, {len(history)} in audit.json"
    for i, (epoch, row) in enumerate(zip(history, rows)):
        if not isinstance(epoch, dict):
            continue  # malformed: read_audit and the renderer say so
        for key, recorded in epoch.items():
            if key not in row:
                return f"no column {key!r} in metrics.csv"
            if not _same_figure(written := row[key], recorded):
                cell = "missing" if written is None else written or "empty"
                return f"epoch {row.get('epoch') or i + 1} {key}: {cell} in metrics.csv, {json.dumps(recorded)} in audit.json"
    return None


def _same_figure(written: str | None, recorded: Any) -> bool:
    """Whether a metrics.csv cell holds the record's value: None as an empty cell, or as a value no
    JSON number holds (`nan`, `inf`: a diverged epoch's loss, which the record writes as null)."""
    if written is None:  # a row cut short
        return False
    try:
        value = float(written) if written != "" else None
    except ValueError:
        return False
    if recorded is None:
        return value is None or not math.isfinite(value)
    return is_number(recorded) and value == recorded


def retrain_words(problem: ResolvedProblem, first: str = "the sheet's first Reproduce command") -> str:
    """What retrains from the spec.resolved.yaml of `problem`: the sheet's first command (`first`),
    but for a run verify started, whose sheet offers the verification instead."""
    return "a retrain from that file" if problem.by_verify else f"{first}, which retrains from that file,"


def moved_note(run_dir: Path, audit: dict[str, Any]) -> str | None:
    """A note where RUN_DIR is not where the run wrote its report (a CI artifact, a copy): the
    sheet, rendered from audit.json alone, names the paths there. None where it is, or the record
    does not say where that was."""
    written = _moved_from(run_dir, audit)
    if written is None:
        return None
    return (f"{run_dir}: the run wrote this report in {written}; the sheet's Reproduce commands name the paths there "
            "(the spec file, the checkpoints), as its record gives them, not this folder")


def _moved_from(run_dir: Path, audit: dict[str, Any]) -> Path | None:
    """The folder the run wrote its report in, where RUN_DIR is another (a copy); None where it is
    that folder, or the record does not say."""
    run, env = audit.get("run"), audit.get("environment")
    out, rel = (run.get("out"), run.get("report_dir")) if isinstance(run, dict) else (None, None)
    cwd = env.get("cwd") if isinstance(env, dict) else None
    if not isinstance(out, str) or not isinstance(rel, str) or not out or not rel:
        return None
    written = Path(cwd if isinstance(cwd, str) else "", out, rel)  # as the Reproduce commands name it
    try:
        here = os.path.realpath(run_dir)
        # The run's own staging folder (`<name>.partial`, where the run renders its sheet) is that
        # folder too: an earlier run of the name still in `<name>` is not this run's.
        same = here in (os.path.realpath(written), os.path.realpath(written.with_name(written.name + STAGING)))
    except (OSError, ValueError):  # a name the OS refuses, a NUL in the record's text
        return None
    return None if same else written


def retrain_spec_file(run_dir: Path, audit: dict[str, Any]) -> Path:
    """The spec.resolved.yaml the sheet's first Reproduce command retrains from: the one in the
    folder the run wrote, which the command names, also for a copy of the report on this machine;
    the copy's own where that folder is not here (a report from another machine, whose commands
    the moved note speaks of). A run verify started: its own (its sheet names no retrain; a kept
    `.failed` attempt's recorded folder holds the evidence put back, of another verify)."""
    if verify_out_of(audit) is not None:
        return run_dir / RESOLVED_YAML
    written = _moved_from(run_dir, audit)
    try:
        there = written is not None and written.is_dir()
    except (OSError, ValueError):
        there = False
    return written / RESOLVED_YAML if there and written is not None else run_dir / RESOLVED_YAML


def verify_out_of(audit: dict[str, Any]) -> str | None:
    """verify's --out, where the record is of a run `auditor verify` started (its run A, B or K),
    else None: recorded as `run.verify_out`; for a run A recorded before that was kept, read from
    where its folder sits (VERIFY_OUT/verify/NAME/a) where the record holds a verification."""
    run = audit.get("run")
    if not isinstance(run, dict):
        return None
    if isinstance(recorded := run.get("verify_out"), str):
        return recorded
    out, name = run.get("out"), run.get("name")
    if not audit.get("verification") or not isinstance(out, str) or not isinstance(name, str) or not out:
        return None
    run_root = Path(out)
    above = run_root.parents[2] if len(run_root.parents) > 2 else None
    return str(above) if above is not None and run_root == verify_workdir(above, name) / "a" else None


def resolved_yaml_problem(run_dir: Path, audit: dict[str, Any]) -> ResolvedProblem | None:
    """What is wrong with the spec.resolved.yaml the sheet's Reproduce command retrains from
    (`retrain_spec_file`), or None where it holds the recorded spec."""
    return _spec_file_problem(retrain_spec_file(run_dir, audit), run_dir, audit)


def _spec_file_problem(path: Path, run_dir: Path, audit: dict[str, Any]) -> ResolvedProblem | None:
    """What is wrong with the spec.resolved.yaml at `path` (RUN_DIR's, or its record's folder's),
    or None where it holds the spec the record in RUN_DIR records."""
    import yaml

    from auditor.spec import hash_resolved, load_yaml, read_yaml_text, training_hash

    beside, by_verify = path.parent == run_dir, verify_out_of(audit) is not None
    if not path.is_file():  # is_file first: a FIFO would block the read
        missing = "is missing" if not os.path.lexists(path) else "is not a file"
        return ResolvedProblem("unusable", missing, path, beside, by_verify)
    try:
        found = load_yaml(read_yaml_text(path))
        digest = hash_resolved(found) if isinstance(found, dict) else "not a mapping"
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        digest = f"unreadable: {type(exc).__name__}"
    except (TypeError, ValueError):  # a value JSON cannot hold (a date): not what a run writes
        digest = "not a resolved spec"
    if digest == audit.get("spec_hash"):
        return None
    shown = digest[:12] if len(digest) == 64 else digest
    text = f"does not hold the spec audit.json records (sha256 {shown}, recorded {str(audit.get('spec_hash'))[:12]})"
    if len(digest) != 64:  # not a spec at all
        return ResolvedProblem("unusable", text, path, beside, by_verify)
    try:
        alike = training_hash(found) == training_hash(audit["spec"])
    except (TypeError, ValueError, KeyError):  # an edited record's spec
        alike = False
    return ResolvedProblem("alike" if alike else "other", text, path, beside, by_verify)


def recorded_ablation_run(audit: Any) -> dict[str, Any] | None:
    """Which run of which ablation a run's record says it is (`run.ablation_run`: ablation, variant,
    seed), or None: not an ablation's run, recorded before the field was, or malformed."""
    run = audit.get("run") if isinstance(audit, dict) else None
    return ablation_run_of(run.get("ablation_run")) if isinstance(run, dict) else None


def _record_in(reports: Path) -> Any:
    """The JSON of `reports/audit.json` as it stands, for a look at a run about to be replaced; None
    where there is none or it is no JSON (the checks that read it say nothing then)."""
    try:
        return json.loads((reports / "audit.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _made_by_another(reports: Path, this_run: dict[str, Any] | None) -> dict[str, Any] | None:
    """Which ablation's run the record in `reports` says it is (`recorded_ablation_run`), or None: not
    an ablation's, unreadable, or `this_run` is that ablation's run of the same variant (a rerun of
    the ablation)."""
    made = recorded_ablation_run(_record_in(reports))
    if made is None or (this_run is not None and (this_run["ablation"], this_run["variant"]) == (made["ablation"], made["variant"])):
        return None
    return made


def ablation_going_on(reports: Path, this_run: dict[str, Any] | None) -> str | None:
    """Why a run may not replace the record in `reports` now, or None: the record is a run of an
    ablation that is going on in another process (it holds its page's lock), whose page would count
    this run under that ablation's settings (a user test: a plain run replaced an ablation's run
    while the ablation ran, and the page showed one run's figures beside the other's sheet)."""
    if (made := _made_by_another(reports, this_run)) is None:
        return None
    if not (holder := holder_now(lock_beside(reports.parent / made["ablation"]))):
        return None
    return (f"{reports}: holds seed {made['seed']} of variant {made['variant']!r} of ablation {made['ablation']!r}, "
            f"which is going on now ({holder}): this run would replace it while the ablation counts it; wait for the "
            "ablation to finish, or run under another name or --out")  # fmt: skip


# The first version that marks the sheets and pages it writes (fileio.with_mark).
MARKED_FROM = (0, 4, 0)


def written_from(audit: Mapping[str, Any], version: tuple[int, ...]) -> bool:
    """Whether the record was written by auditor `version` or later (`environment.auditor`)."""
    env = audit.get("environment")
    written = env.get("auditor") if isinstance(env, dict) else None
    return isinstance(written, str) and re.fullmatch(r"\d+\.\d+\.\d+", written) is not None and tuple(
        map(int, written.split("."))) >= version


def sheet_edited(reports: Path) -> str | None:
    """'SHEET: why' the sheet in the report folder `reports` was edited by hand (`fileio.hand_edited`), so
    that replacing the folder would lose the edit, or None. A sheet with no mark is said only where
    the record beside it was written by a version that marks its sheets: one of 0.3.0 marked none,
    but 0.4.0's sheet without its mark had its last line removed by hand (a user test)."""
    record = _record_in(reports)  # none, or not a record: the sheet's mark alone says
    marks = isinstance(record, dict) and written_from(record, MARKED_FROM)
    sheet = reports / "REPRODUCIBILITY.md"
    if (why := hand_edited(sheet, unmarked=marks)) == NO_MARK:
        why = (f"it carries no mark of auditor's (the sha256 of its text, on its last line), though its audit.json was "
               f"written by auditor {record['environment']['auditor']}, which marks every sheet: it was edited by hand")
    return None if why is None else f"{sheet}: {why}"


def ablation_page_note(reports: Path, this_run: dict[str, Any] | None) -> str | None:
    """Of a run about to replace the record in `reports`: that the record is counted on an ablation's
    page, which goes on showing its figures until rebuilt, or None (not an ablation's run, no page, or
    `this_run` is that ablation's run of the same variant, as a rerun of the ablation is)."""
    if (made := _made_by_another(reports, this_run)) is None:
        return None
    page_dir = reports.parent / made["ablation"]
    try:
        page = json.loads((page_dir / "ablations.json").read_text())
        listed = {r.get("name") for v in page["variants"] for r in v["runs"] if isinstance(r, dict)}
    except (OSError, ValueError, RecursionError, TypeError, KeyError, AttributeError):  # no page, or not one ablate wrote
        return None
    if reports.name not in listed:  # a page of other seeds (--seeds) shows nothing of it
        return None
    return (f"the run there is seed {made['seed']} of variant {made['variant']!r} of ablation {made['ablation']!r}, "
            f"whose page {page_dir / ABLATION_PAGE} goes on showing its figures, while the page's link to its sheet "
            f"opens this run's, until the page is rebuilt: {_page_rebuild_command(page_dir)}{_moved_first(page_dir)}")  # fmt: skip


def _page_rebuild_command(page_dir: Path) -> str:
    """The command that rebuilds the ablation page in `page_dir`, with FILE and DIR where its
    record cannot tell them."""
    from auditor.ablate import page_rebuild_command  # lazy: ablate reads run records through this module

    return page_rebuild_command(page_dir) or "auditor ablate FILE --render-only --out DIR"


def _moved_first(page_dir: Path) -> str:
    """'' or, where the page in `page_dir` was edited by hand or carries no mark (of 0.3.0), which
    a rebuild refuses to replace, that it must be moved away first (a user test: the command
    given was then refused)."""
    page = page_dir / ABLATION_PAGE
    return "" if (why := hand_edited(page)) is None else f", once {page} is moved away ({why})"


def aside(final: Path) -> Path:
    """Where `promote` moves the earlier run's folder while it puts the new one in place."""
    return final.with_name(final.name + ASIDE)


def _where_the_report_is(run_dir: Path) -> str:
    """For a report folder that is not there: where a run left its report instead ('; ...'), or ''.
    A run killed while it put its new report in place leaves the earlier one set aside in
    `<name>.old`; one interrupted (or running) leaves its report so far in `<name>.partial`."""
    folder = Path(os.path.abspath(run_dir))  # `..` named as the folder it is
    old, staged = aside(folder), folder.with_name(folder.name + STAGING)
    set_aside = (old / SET_ASIDE).is_file()
    if (set_aside or staged.is_dir()) and (workdir := verify_workdir_of(folder.parent.parent)) is not None:
        # WORKDIR/{a,b,k}/reports/<name>: a run of verify's, which verify alone finishes
        if workdir.name.endswith(FAILED):
            return (f"; this is a run of a verify attempt that failed or was stopped (kept in {workdir} until the "
                    "next verify of the spec finishes), and the run did not finish: it has no report")
        return (f"; a run that `auditor verify` started here (work dir {workdir}) has not finished (running now, "
                "or stopped): that verify writes this report when the run finishes, and one that stopped is "
                "run again whole (`auditor run --resume` is refused there: verify starts its runs afresh)")
    if set_aside:
        return (f"; {old} holds the report a run set aside while it put a new one in place, and that run was "
                f"killed before it finished: {resume_command(folder)} puts a report back (the new one where it "
                "was complete) and trains nothing")
    if staged.is_dir():
        return (f"; a run of this name started and has not finished (interrupted, or running now: {staged} is "
                f"where it writes its report): {resume_command(folder)} continues an interrupted one")
    return _report_meant(run_dir)


def _report_meant(run_dir: Path) -> str:
    """'; did you mean X?' for a report folder the user likely meant, or '': a run's name given
    where its folder goes (`check smoke` beside reports/smoke), or a name a typo away from a
    report folder beside it (`reports/smok`)."""
    try:
        if (run_dir.parent / "reports" / run_dir.name / "audit.json").is_file():
            return f"; did you mean {run_dir.parent / 'reports' / run_dir.name} (that run's report folder)?"
        names = [p.name for p in _report_folders(run_dir.parent)]
    except OSError:
        return ""
    near = difflib.get_close_matches(run_dir.name, names, n=1, cutoff=0.6)
    return f"; did you mean {run_dir.parent / near[0]}?" if near else ""


def _report_folders(folder: Path) -> list[Path]:
    """The report folders in `folder` (holding an audit.json), less a run's own staging and
    set-aside folders beside them."""
    return [p.parent for p in folder.glob("*/audit.json") if not p.parent.name.endswith((STAGING, ASIDE, FAILED))]


def _reports_near(folder: Path) -> str:
    """'; the report folders in it: ...' for an output root's reports/ (or the root itself) given
    as RUN_DIR, or '; its report folder is ...' for a run's checkpoint folder; '' otherwise."""
    try:
        held = sorted([*_report_folders(folder), *_report_folders(folder / "reports")])
        if held:
            shown = ", ".join(str(p) for p in held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            return f"; the report folders in it: {shown}"
        report = folder.parent.parent / "reports" / folder.name
        if folder.parent.name == "checkpoints" and (report / "audit.json").is_file():
            return f"; this is a run's checkpoint folder: its report folder is {report}"
    except OSError:
        pass
    return ""


def staging_final(folder: Path) -> Path | None:
    """The folder a run's staging folder becomes when the run finishes (`x.partial` -> `x`), or
    None where `folder` is no staging folder (or has no name to read: a working directory
    deleted meanwhile, given as `.`)."""
    try:
        named = Path(os.path.abspath(folder))  # `.` named as the folder it is
    except OSError:
        return None
    stem = named.name.removesuffix(STAGING)
    return named.with_name(stem) if stem and stem != named.name else None


def verify_attempt_note(run_dir: Path, verified: bool = False) -> str | None:
    """Of a run's report folder inside a work dir of `auditor verify` (WORKDIR/{a,b,k}/reports/NAME):
    what `check` should say where that work dir holds no finished verify's evidence (a verify
    stopped or still running, or the failed attempt kept in `<name>.failed`), with where the
    evidence of the verify before it is, and of run B or K of a finished one, where the verdict is
    (run A's record); None for any other folder. `verified`: the record holds a
    verification block (verify writes it into run A's record just before verify.json)."""
    folder = Path(os.path.abspath(run_dir))  # `.` named as the folder it is
    if len(folder.parents) < 4 or folder.parent.name != "reports":
        return None
    if (workdir := verify_workdir_of(folder.parents[1])) is None:
        return None
    if workdir.name.endswith(ASIDE):  # a user test: checked with no word, as if it were the evidence
        later = workdir.with_name(workdir.name.removesuffix(ASIDE))
        state = ("that one finished (its verify.json is there): this is superseded" if (later / "verify.json").is_file()
                 else "that one has not finished (stopped, or running now): the next verify puts this back in place")
        return f"{run_dir} is a run of an earlier verify, set aside in {workdir} when a later one started in {later}; {state}"
    failed = workdir.name.endswith(FAILED)
    if not failed and (workdir / "verify.json").is_file():
        if folder.parents[1].name == "a":
            return None
        return (f"{run_dir} is run {folder.parents[1].name.upper()} of the verify in {workdir}, compared with run A: "
                f"the verdict is recorded in run A's record, {workdir / 'a' / 'reports' / folder.name}")
    kept = (f"that did not finish, kept in {workdir} for reading" if failed else
            f"in {workdir} that has not finished (stopped, or running now)")
    where = _other_evidence(workdir)
    held = ("it holds that attempt's verdict, but the attempt stopped before writing verify.json" if verified else
            "it holds no verdict of that attempt")
    return f"{run_dir} is a run of a verify attempt {kept}: {held}{where}"


def verify_workdir(out: Path, name: str) -> Path:
    """The work dir `auditor verify --out OUT` gives a spec named `name` (its runs in a/, b/, k/)."""
    return out / "verify" / name


def verify_workdir_of(run_root: Path) -> Path | None:
    """The work dir of `auditor verify` whose run A, B or K has its output root at `run_root`
    (absolute: WORKDIR/{a,b,k}, the marker in WORKDIR), or None."""
    if run_root.name not in ("a", "b", "k") or not (run_root.parent / VERIFY_MARKER).is_file():
        return None
    return run_root.parent


def verify_workdir_holding(path: Path) -> Path | None:
    """The work dir of `auditor verify` that `path` is, or is inside (the nearest folder up that
    holds its marker), or None."""
    folder = Path(os.path.abspath(path))
    return next((f for f in (folder, *folder.parents) if is_regular_file(f / VERIFY_MARKER)), None)


def verify_out_refusal(out: Path) -> str | None:
    """Why `auditor verify --out OUT` must not run where OUT is in a work dir of another verify
    (a user test: it trained there, and the outer verify then refused its own folder as holding
    files it did not write); None for any other --out."""
    for folder in _named_and_resolved(out):
        if (holder := verify_workdir_holding(folder)) is not None:
            return (f"--out {_as_reached(out, folder)}: in the work dir {holder} of `auditor verify`, which a verify of "
                    "it replaces whole; give an --out outside it")
    return None


def _named_and_resolved(out: Path) -> list[Path]:
    """`out` made absolute, and with its links resolved where that differs: a link into a work dir
    of `auditor verify` leads a run there as surely as its path does (a user test)."""
    return list(dict.fromkeys((Path(os.path.abspath(out)), Path(os.path.realpath(out)))))


def _as_reached(out: Path, folder: Path) -> str:
    """`out` as given, and the folder its links lead to where that is what a refusal is about."""
    return str(out) if folder == Path(os.path.abspath(out)) else f"{out} (which leads to {folder})"


def verify_run_refusal(out: Path) -> str | None:
    """Why `auditor run --out OUT` must not run where OUT is run A, B or K of a work dir of
    `auditor verify` (WORKDIR/{a,b,k}): verify starts its runs itself, afresh, and a run there
    would replace the record verify wrote its verdict into; or elsewhere in such a work dir, which
    verify replaces whole (`verify_out_refusal`); None for any other --out."""
    folder = next((f for f in _named_and_resolved(out) if verify_workdir_of(f) is not None), None)
    if folder is None:
        return verify_out_refusal(out)
    replaced = ("the runs of a verify attempt kept for reading" if folder.parent.name.endswith(FAILED) else
                "the record verify wrote its verdict into" if folder.name == "a" else "a run verify compared with run A")
    return (f"--out {_as_reached(out, folder)}: run {folder.name.upper()} of the work dir {folder.parent} of "
            f"`auditor verify`, which starts its runs itself, afresh: a run here would replace {replaced}; run "
            "`auditor verify` again, or give another --out")


def unfinished_warnings(run_dir: Path, audit: Mapping[str, Any], use: str) -> list[str]:
    """What `check` and `render` warn of a run that has not finished where `run_dir` is concerned:
    `run_dir` itself a staging folder, a later run of its name unfinished beside it, or `run_dir`
    a run of an unfinished or failed verify attempt. `use`: what the command does with the finished
    run ("this check judges", "this sheet is rendered from")."""
    warnings, folder = [], Path(os.path.abspath(run_dir))  # `.` and `..` named as the folder they are
    if (final := staging_final(run_dir)) is not None:
        warnings.append(f"{run_dir} is a run's staging folder, not its report: the run had not finished putting "
                        f"its report in place {unfinished_text(final)}")  # fmt: skip
    elif (staging := folder.with_name(folder.name + STAGING)).is_dir():
        finished = audit["run"].get("finished_utc", "at a time not recorded")
        warnings.append(f"{staging} exists: a later run of this name started and has not finished (interrupted, or "
                        f"running now); {use} the finished run in {run_dir}, finished {finished}")  # fmt: skip
    if (attempt := verify_attempt_note(run_dir, isinstance(audit.get("verification"), dict))) is not None:
        warnings.append(attempt)
    return warnings


def unfinished_text(final: Path) -> str:
    """Of a run's staging folder: whose run has not finished, and what it becomes (`final`)."""
    if (workdir := verify_workdir_of(Path(os.path.abspath(final)).parent.parent)) is not None:  # refuses `run --resume`
        return (f"(running now, or stopped); when it finishes, this folder becomes {final}; it is a run of the "
                f"`auditor verify` whose work dir is {workdir}, which runs a stopped one again whole")
    return (f"(interrupted, or running now); when it finishes, this folder becomes {final}, and an interrupted one "
            f"is finished by {resume_command(final)}")


def resume_command(folder: Path) -> str:
    """`auditor run SPEC --resume` for the run whose report or checkpoint folder is `folder`
    (OUT/reports/NAME, OUT/checkpoints/NAME), with the `--out OUT` it was run with, where OUT is not
    the working directory: without it, the resume would look for the run in the wrong place."""
    named = Path(os.path.abspath(folder))
    if named.parent.name not in ("reports", "checkpoints"):
        return "`auditor run SPEC --resume` with its spec and the --out it was run with"
    if named.parent.parent == Path.cwd():
        return "`auditor run SPEC --resume` with its spec"
    # As given where it names the folder plainly (`runs/reports/x`); absolute where it does not (`.`, `x/..`).
    out = folder.parent.parent if folder.parent.name == named.parent.name else named.parent.parent
    return f"`auditor run SPEC --out {shlex.quote(str(out))} --resume` with its spec"


def _unfinished_workdir_text(workdir: Path) -> str:
    """Of a work dir of `auditor verify` with no verify.json: whose it is, and where the evidence of
    the verify before it is, if any (a user test: `check` of it after verify was killed said only
    that it held no audit.json)."""
    folder = Path(os.path.abspath(workdir))
    state = "kept for reading from a verify attempt that did not finish" if folder.name.endswith(FAILED) else (
        "whose verify has not finished (stopped, or running now)")
    return f"a work dir of `auditor verify` {state}, not a run's report folder: it holds no verdict{_other_evidence(folder)}"


def _other_evidence(workdir: Path) -> str:
    """'; ...' where finished evidence of another verify of the spec lies beside the work dir (absolute)
    of a verify that did not finish: set aside in `.old` while it ran (the next verify puts it back
    first), or, beside a kept `.failed` attempt, in the work dir itself, which a later verify may
    have written since (the review: it was called the verify before it); '' where there is none."""
    if workdir.name.endswith(FAILED):
        other = workdir.with_name(workdir.name.removesuffix(FAILED))
        return f"; {other} holds the evidence of another verify of it" if (other / "verify.json").is_file() else ""
    earlier = aside(workdir)  # killed outright: `verify._set_aside_workdir` restores it first
    if not (earlier / "verify.json").is_file():
        return ""
    return f"; the evidence of the verify before it is in {earlier}, which the next `auditor verify` of this spec puts back first"


def read_audit(run_dir: Path) -> dict[str, Any]:
    """Load `RUN_DIR/audit.json`, raising InvalidInput when absent or unreadable."""
    path = run_dir / "audit.json"
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block the read forever
        raise InvalidInput(f"{path}: not a regular file (a device, pipe or socket)")
    try:
        audit = json.loads(text := path.read_text(), object_pairs_hook=unique_keys)
    except FileNotFoundError:
        raise InvalidInput(_no_record_text(run_dir)) from None
    except NotADirectoryError:
        raise InvalidInput(_not_a_folder_text(run_dir)) from None
    except json.JSONDecodeError as exc:  # `FILE:LINE:` for an editor, as a spec's errors are given
        if exc.msg.startswith("Unexpected UTF-8 BOM"):  # Python's advice to decode otherwise: no help to a user
            raise InvalidInput(f"{path}:1: unreadable audit record: it starts with a UTF-8 byte-order mark, which "
                               "no run writes (an editor's?)") from None  # fmt: skip
        raise InvalidInput(f"{path}:{exc.lineno}: unreadable audit record: not valid JSON: {exc.msg} (column "
                           f"{exc.colno})") from None  # fmt: skip
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{not_utf8_place(path, exc)}: unreadable audit record: not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: unreadable audit record ({exc})") from None
    except RecursionError:
        raise InvalidInput(f"{path}: unreadable audit record (nested too deeply to read)") from None
    except ValueError as exc:  # unique_keys, or an integer past Python's digit limit for reading one
        why = str(exc) if "int_max_str_digits" not in str(exc) else (
            f"it holds an integer of more than {sys.get_int_max_str_digits():,} digits, which no field of a record holds")
        line = twice_at(text) if isinstance(exc, KeyTwice) else None  # the text json read
        raise InvalidInput(f"{path}{'' if line is None else f':{line}'}: not an audit record: {why}") from None
    if (problem := record_problem(audit)) is not None:
        raise InvalidInput(f"{path}: {problem}")
    return audit


def _not_a_folder_text(run_dir: Path) -> str:
    """Why `run_dir`, given for a report folder, is none: a file stands at it or above it (the
    evidence file of `auditor verify`, an ablation's record, a run's sheet, a device)."""
    if (found := what_stands_at(run_dir)) is not None and found[0] != run_dir:  # `audit.json/x`: a parent is
        return f"{run_dir}: {found[0]} is {found[1]}, not a folder"
    if run_dir.name == "verify.json" and (run_dir.parent / VERIFY_MARKER).is_file():
        name = run_dir.parent.name.removesuffix(ASIDE).removesuffix(FAILED)  # an earlier verify set aside: `x.old`
        return (f"{run_dir}: the evidence file of `auditor verify`, not a run's report folder: its verdict is "
                f"recorded in run A's, {run_dir.parent / 'a' / 'reports' / name}")  # fmt: skip
    if run_dir.name == "ablations.json":  # the page's record, not a run's
        return (f"{run_dir}: an ablation's record, not a run's report folder: give one of its runs' report folders "
                "(ABLATIONS.md beside it links each run's sheet)")  # fmt: skip
    hint = (f"give its folder, {run_dir.parent}, which holds audit.json" if (run_dir.parent / "audit.json").is_file()
            else "give the folder that holds audit.json")  # e.g. the sheet given for its folder
    return f"{run_dir}: {file_words(run_dir)}, not a report folder ({hint})"  # `/dev/zero`: a device


def _no_record_text(run_dir: Path) -> str:
    """Why `run_dir` holds no audit.json, and where its report is: no such folder, an ablation's
    page folder, a work dir of `auditor verify` (finished or not), a run's staging folder, or none
    of these."""
    if not run_dir.exists():
        return f"{run_dir}: no such folder{_where_the_report_is(run_dir)}"
    if (run_dir / "ablations.json").is_file():  # `auditor ablate` writes it beside ABLATIONS.md
        return (f"{run_dir}: an ablation's page folder (ablations.json), not a run's report folder: give one of "
                "its runs' report folders (ABLATIONS.md links each run's sheet), or rebuild the page with "
                f"`{_page_rebuild_command(run_dir)}`{_moved_first(run_dir)}")  # fmt: skip
    if (run_dir / "verify.json").is_file():  # `auditor verify`'s work dir: the verdict is in run A's record
        return (f"{run_dir}: a work dir of `auditor verify`, not a run's report folder: its verdict is recorded "
                f"in run A's, {run_dir / 'a' / 'reports' / run_dir.name}")  # fmt: skip
    if (run_dir / VERIFY_MARKER).is_file():  # a work dir whose verify stopped (or runs) before verify.json
        return f"{run_dir}: {_unfinished_workdir_text(run_dir)}"
    if (final := staging_final(run_dir)) is not None and final.parent.name == "checkpoints":  # holds none, ever
        return (f"{run_dir}: a run's checkpoint staging folder, not a report folder: the run has not finished "
                f"{unfinished_text(final)}; its report goes to {final.parent.parent / 'reports' / final.name}")  # fmt: skip
    if final is not None:
        return f"{run_dir}: a run's staging folder, with no audit.json yet: the run has not finished {unfinished_text(final)}"
    return f"{run_dir}: no audit.json (is this a report folder of `auditor run`?){_reports_near(run_dir)}"


def record_problem(audit: Any) -> str | None:
    """Why parsed JSON is not a record `read_audit` accepts (a number no record holds, not an object,
    another schema_version, a field missing or malformed, statuses that disagree), or None: what
    `check` and `render` refuse, and `ablate` does not count."""
    if (bad := unrecordable_number(audit)) is not None:
        return f"not an audit record: {bad}"
    if not isinstance(audit, dict):
        return f"not an audit record (a JSON object), got JSON {type(audit).__name__}"
    version = audit.get("schema_version")
    if type(version) is int and version > SCHEMA_VERSION:
        return (f"unsupported audit schema_version {version} (this auditor reads {SCHEMA_VERSION}: a newer auditor "
                "wrote it? read it with that version)")  # fmt: skip
    if type(version) is not int or version != SCHEMA_VERSION:  # not `true` or 1.0
        what = "no schema_version" if version is None else f"unsupported audit schema_version {json.dumps(version)}"
        return f"{what} (expected {SCHEMA_VERSION}: is this a record of `auditor run`?)"
    missing = [k for k in AUDIT_KEYS if not isinstance(audit.get(k), AUDIT_KEYS[k])]
    missing += [".".join(keys) for keys, kind, required in NESTED_KEYS if not _nested_ok(audit, keys, kind, required)]
    missing += [] if missing else _malformed_items(audit)
    if missing:
        return fields_problem(audit, missing)
    statuses = {k: audit[k]["status"] for k in ("run", "training", "metrics") if "status" in audit.get(k, {})}
    if len(set(map(str, statuses.values()))) > 1:  # a run writes one status three times
        said = ", ".join(f"{k}.status {json.dumps(v)}" for k, v in statuses.items())
        return f"its statuses disagree ({said}): the record was edited after the run"
    return None


# A malformed field's value is shown up to this many characters (a confusion matrix would swamp the line),
# and this many fields are named (every row of a long history edited alike would make one line of pages).
VALUE_SHOWN_CHARS = 40
FIELDS_SHOWN = 10


def fields_problem(audit: dict[str, Any], fields: list[str]) -> str:
    """What `record_problem` says of the fields a run writes otherwise: those absent as missing, those
    present as malformed with the value found ('training.history[0].lr = "0.05"'). A field under
    another listed one (`data.official` under a `data` that is text) is left to that one."""
    fields = [f for f in fields if not any(f.startswith((g + ".", g + "[")) for g in fields)]
    more = len(fields) - FIELDS_SHOWN
    absent, found = [], []
    for field in fields[:FIELDS_SHOWN]:
        there, value = look_up(audit, field)
        if there:
            shown = json.dumps(value)
            shown = shown if len(shown) <= VALUE_SHOWN_CHARS else shown[:VALUE_SHOWN_CHARS] + "..."
            found.append(f"{field} = {shown}{_against(audit, field, value)}")
        else:
            absent.append(field)
    wrong = f"{'; '.join(found)} (not as a run writes {'it' if len(found) == 1 else 'them'})"
    rest = f"; and {count(more, 'more field')}" if more > 0 else ""
    if not absent:
        return f"malformed audit record: {wrong}{rest}"
    return f"incomplete audit record: missing {', '.join(absent)}{f'; malformed {wrong}' if found else ''}{rest}"


# Counts a record bounds by another field (none can exceed the images of the split it counts in).
_BOUNDED_BY = {"data.val_in_train": "data.sizes.val", "data.test_in_train": "data.sizes.test",
               "data.test_in_val": "data.sizes.test"}  # fmt: skip


def _against(audit: Any, field: str, value: Any) -> str:
    """For a count malformed only against another field, that field (', more than data.sizes.val =
    300'): the value alone would look right. Empty for one malformed in itself."""
    if field in _BOUNDED_BY and is_count(value):
        there, bound = look_up(audit, _BOUNDED_BY[field])
        return f", more than {_BOUNDED_BY[field]} = {bound}" if there and is_count(bound) and value > bound else ""
    if field == "data.n_other_entries" and (value is None or is_count(value)):
        _, names = look_up(audit, "data.other_entries")
        if not isinstance(names, list):
            return ", with no data.other_entries beside it"
        kept = f" (a run keeps {min(value, OTHER_ENTRIES_KEPT)})" if value is not None else ""
        return f", where data.other_entries holds {count(len(names), 'name')}{kept}"
    return ""


def look_up(audit: Any, field: str) -> tuple[bool, Any]:
    """Whether the dotted field (`a.b[0].c`) is in the record, and its value where it is (a record
    of another shape: not there)."""
    node = audit
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        if key and isinstance(node, dict) and key in node:
            node = node[key]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return False, None
    return True, node


class KeyTwice(ValueError):
    """A JSON object gives a key twice (`unique_keys`): `key`."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} twice in one object")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members; a key twice (a hand edit: a run writes each once, and JSON readers
    disagree on which to keep) is a KeyTwice naming it."""
    record = dict(pairs)
    if len(record) != len(pairs):
        twice = next(k for i, (k, _) in enumerate(pairs) if any(k == other for other, _ in pairs[:i]))
        raise KeyTwice(twice)
    return record


class _KeyLines(json.JSONDecoder):
    """A decoder (Python's own scanner, slower than the C one) that raises, at the first object
    giving a key twice, the line of the key's second place in that object (json's hook for an
    object's members is given no position)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.spans = text, []  # spans: (start, end) of each object read so far
        self.parse_object = self._object
        self.scan_once = json.scanner.py_make_scanner(self)

    def _object(self, s_and_end: tuple[str, int], *args: Any) -> tuple[dict[str, Any], int]:
        start = s_and_end[1] - 1  # at its "{"
        pairs, end = json.decoder.JSONObject(s_and_end, args[0], args[1], None, list, *args[4:])
        self.spans.append((start, end))
        try:
            return unique_keys(pairs), end
        except KeyTwice as exc:
            key_at = re.compile(re.escape(json.dumps(exc.key)) + r"\s*:")
        inner = [(a, b) for a, b in self.spans if start < a and b <= end]  # its members' objects, read first
        places = [m.start() for m in key_at.finditer(self.text, start, end)
                  if not any(a <= m.start() < b for a, b in inner)]  # fmt: skip
        at = places[1] if len(places) > 1 else start  # written as escapes no other way: the object
        raise _Found(self.text.count("\n", 0, at) + 1)


class _Found(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def twice_at(text: str) -> int | None:
    """The line (1-based) of the first key given twice in one object of the JSON `text`, or None."""
    try:
        _KeyLines(text).decode(text)
    except _Found as found:
        return found.line
    except (ValueError, RecursionError):  # Python's scanner takes more stack a level than the C one
        return None
    return None


def unrecordable_number(record: Any) -> str | None:
    """Where `record` holds a number no field of a record can hold, as 'FIELD: an integer of N
    digits' (a float would overflow on it) or 'FIELD: Infinity' (NaN, or a literal beyond the
    float range: a run writes null for a value that is not a finite number), or None."""
    todo: list[tuple[str, Any]] = [("(top level)", record)]
    while todo:
        where, value = todo.pop()
        if isinstance(value, dict):
            todo += [(k if where == "(top level)" else f"{where}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            return f"{where}: an integer of {len(str(abs(value)))} digits"
        elif isinstance(value, float) and not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            return f"{where}: {shown} (a run writes null where a value is not a finite number)"
    return None


def is_number(value: Any) -> bool:
    """Whether `value` is a number as a measurement is one (numbers.Real covers numpy scalars;
    bool is an int but never a measurement)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_sha256(value: Any) -> bool:
    """Whether `value` is a sha256 as a run writes one: 64 lower-case hex digits."""
    return isinstance(value, str) and re.fullmatch("[0-9a-f]{64}", value) is not None


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Training steps per epoch (the last partial batch is kept): here, where `check` reads it
    without torch, for the steps a record gives against its images and batch size."""
    return -(-n // batch_size)


def is_count(value: Any) -> bool:
    """A whole number >= 0 as JSON or a checkpoint gives one (not `true`, which Python counts as 1)."""
    return type(value) is int and value >= 0


def _criterion_ok(entry: Any) -> bool:
    """Whether a stored criterion result has the fields the sheet's Criteria table shows."""
    return (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("metric", "expr", "detail"))
            and isinstance(entry.get("passed"), bool) and "measured" in entry)  # fmt: skip


def _malformed_verification(ver: Any) -> list[str]:
    """The fields of a verification block (verify's evidence) the sheet reads without further
    checks, where one is missing or of another kind; none for no block (an unverified run)."""
    if not isinstance(ver, dict):
        return []
    kinds: dict[str, type | tuple[type, ...]] = {
        "verdict": str, "first_divergence": (dict, type(None)), "runs": list, "tensors": list, "notes": list,
    }  # fmt: skip
    bad = [f"verification.{k}" for k, kind in kinds.items() if k not in ver or not isinstance(ver[k], kind)]
    bad += [f"verification.{k}" for k in ("device", "budget") if k not in ver]
    tensor_keys = ("name", "sha256_a", "sha256_b", "max_abs_diff", "equal")
    if isinstance(ver.get("tensors"), list) and not all(isinstance(t, dict) and all(k in t for k in tensor_keys)
                                                        for t in ver["tensors"]):  # fmt: skip
        bad.append("verification.tensors")
    if isinstance(first := ver.get("first_divergence"), dict) and not is_count(first.get("step")):
        bad.append("verification.first_divergence")
    pairs = ver.get("pairs", [])  # records before pairs were kept: none
    if not isinstance(pairs, list) or not all(_pair_ok(p) for p in pairs):
        bad.append("verification.pairs")
    return bad


def _pair_ok(pair: Any) -> bool:
    """Whether a verify pair's record has what the sheet reads: its name, and mappings where it compared."""
    return (isinstance(pair, dict) and isinstance(pair.get("pair"), str)
            and all(isinstance(pair.get(k) or {}, dict) for k in ("losses", "metrics", "results")))  # fmt: skip


def _or_null(kind: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or kind(v)


def _texts(v: Any) -> bool:
    return isinstance(v, list) and all(map(_text, v))


def _counts(v: Any) -> bool:
    return isinstance(v, list) and all(map(is_count, v))


def _measured(v: Any) -> bool:  # a criterion's measured value: a number, a word (status), or null
    return v is None or isinstance(v, str) or is_number(v)


def _mapping(v: Any) -> bool:
    return isinstance(v, dict)


def _text(v: Any) -> bool:
    return isinstance(v, str)


_NUMBER, _COUNT = _or_null(is_number), _or_null(is_count)  # null: not measured, or not a finite number
# Times, rates, sizes and losses a run measures are never negative; accuracies and shares are fractions
# (a user test: a training time edited to -1.0 s was gated and shown).
_NONNEG, _FRACTION = _or_null(lambda v: is_number(v) and v >= 0), _or_null(lambda v: is_number(v) and 0 <= v <= 1)
_TEXT, _WHOLE = _or_null(_text), _or_null(lambda v: type(v) is int)
_YES_NO, _YES_NO_OR_NULL = (lambda v: isinstance(v, bool)), _or_null(lambda v: isinstance(v, bool))


# A resume's checkpoint file name and time (UTC, ISO 8601 to the second) as a run records them.
_RESUMED_FROM, _RESUMED_AT = re.compile(r"[\w.-]+\.pt"), re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def recorded_resumes(value: Any) -> bool:
    """Whether `value` is a list of resumes as a run records them (`training.resumes`, and its
    checkpoints' `resumes`): {"checkpoint": file name, "global_step", "utc"} each (the review: text
    edited into them reached the sheet's table)."""
    return isinstance(value, list) and all(
        isinstance(r, dict) and isinstance(r.get("checkpoint"), str) and _RESUMED_FROM.fullmatch(r["checkpoint"])
        and is_count(r.get("global_step")) and isinstance(r.get("utc"), str) and _RESUMED_AT.fullmatch(r["utc"])
        for r in value)  # fmt: skip


# Fields the sheet formats (numbers with a format code, counts with separators, lists it joins), as a
# run writes them; a hand edit of another kind is refused naming the field, as `check` refuses it,
# rather than fail inside the renderer. Where the sheet needs a value, null is refused too. An
# absent field (an older record) is left to the sheet, which says which one it lacks.
SHEET_FIELDS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("verdict", lambda v: v in ("PASS", "FAIL")),  # the sheet's headline; `check.verdict` writes one of the two
    ("run.wall_time_s", _NONNEG), ("run.measure_time_s", _NONNEG),
    ("run.resume_notes", _or_null(_texts)), ("run.toggle_notes", _or_null(_texts)),
    ("run.environment_notes", _or_null(_texts)), ("run.verify_out", _TEXT),
    ("determinism.seeded", _or_null(_texts)), ("determinism.nondeterminism_sources", _texts),
    ("environment.cudnn", _COUNT), ("environment.gpu", _or_null(_mapping)),
    ("environment.torch_threads", is_count), ("environment.cpu_quota", _NONNEG),
    ("environment.git_commit", _TEXT),
    ("environment.command", _text),
    ("environment.numeric_env", _or_null(lambda v: _mapping(v) and all(map(_text, v.values())))),
    ("environment.auditor_source", _TEXT),
    ("data.files", lambda v: _mapping(v) and all(map(_text, v.values()))),
    ("data.file_sha256", _or_null(lambda v: _mapping(v) and all(map(is_sha256, v.values())))),
    ("data.normalization", _text),
    ("data.n_train_files", is_count), ("data.n_test_files", _COUNT),
    ("data.sizes", _mapping),
    *((f"data.sizes.{split}", is_count) for split in ("train", "val", "test")),
    ("model.family", _TEXT), ("model.stem", _text),
    ("model.stage_widths", _or_null(_counts)), ("model.blocks_per_stage", _or_null(_counts)),
    ("training.epochs_run", is_count), ("training.epochs_planned", is_count), ("training.steps_per_epoch", _COUNT),
    ("training.best_metric", _NUMBER), *((f"training.{k}", _NONNEG) for k in ("train_time_s", "images_per_s", "compile_s")),
    ("training.host_memory", _or_null(_mapping)),
    ("training.other_cpu_share", _FRACTION), ("training.other_cpu_window_s", _NONNEG),
    ("training.layout", _or_null(_mapping)), ("training.trained_on", _or_null(_mapping)),
    ("training.trained_at", _or_null(lambda v: isinstance(v, list) and all(map(_mapping, v)))),
    ("training.resumes", recorded_resumes), ("training.resumes_unrecorded", _YES_NO),
    ("training.resumed_at_step", _COUNT),
    ("training.host_memory.mmap_threshold", _NUMBER), ("training.host_memory.trim_threshold", _NUMBER),
    ("training.host_memory.probe_bytes", _COUNT),
    *((f"measurements.{k}", _mapping) for k in ("size", "latency", "memory")),
    *((f"measurements.size.{k}", _COUNT) for k in ("params_total", "params_trainable", "checkpoint_bytes", "weights_bytes")),
    ("measurements.latency.warmup", is_count), ("measurements.latency.iters", is_count),
    *((f"measurements.latency.{k}", lambda v: v is not None and _NONNEG(v)) for k in ("median_ms", "p95_ms", "mean_ms", "iqr_ms", "min_ms")),
    ("measurements.latency.other_cpu_share", _FRACTION), ("measurements.latency.other_cpu_window_s", _NONNEG),
    ("measurements.memory.peak_rss_mb", _NONNEG), ("measurements.memory.cuda_max_allocated_mb", _NONNEG),
    ("measurements.memory.peak_rss_source", _TEXT),
    ("measurements.nonfinite", _or_null(_texts)),
    *((f"checkpoints.{c}", _mapping) for c in ("last", "best")),
    *((f"checkpoints.{c}.bytes", _COUNT) for c in ("last", "best")),
    *((f"checkpoints.{c}.global_step", is_count) for c in ("last", "best")),
    *((f"checkpoints.{c}.contents", _or_null(_texts)) for c in ("last", "best")),
    ("metrics.final_train_acc", _NUMBER),
    # Shown as they stand (a list or an object here had reached the sheet as Python's text of it). Null is
    # let through: some a run writes so (no resume, CUDA), and a record's null is not a list's repr.
    *((f"run.{k}", _TEXT) for k in ("started_utc", "finished_utc", "resumed_from")),
    ("determinism.cublas_workspace_config", _TEXT), ("determinism.seed", _WHOLE), ("determinism.torch_initial_seed", _WHOLE),
    *((f"determinism.{k}", _COUNT) for k in ("torch_threads", "interop_threads")),
    *((f"environment.{k}", _TEXT) for k in ("python", "torch", "torchvision", "numpy", "auditor", "cuda", "device",
                                            "cpu_model", "os")),
    *((f"environment.{k}", _COUNT) for k in ("cpu_cores_logical", "cpu_cores_physical", "cpu_affinity")),
    ("environment.ram_gb", _NONNEG),
    *((f"data.{k}", _TEXT) for k in ("dataset", "root", "note", "fingerprint", "test_fingerprint", "scored_test_fingerprint")),
    *((f"model.{k}", _TEXT) for k in ("name", "block", "shortcut", "norm")),
    *((f"model.{k}", _COUNT) for k in ("depth", "num_classes")),
    ("training.selection_split", _TEXT), ("training.best_epoch", _COUNT), ("training.diverged_at_step", _COUNT),
    *((f"training.host_memory.{k}", _TEXT) for k in ("requested", "allocator")),
    ("measurements.evaluated_checkpoint", _TEXT), ("measurements.test.precision", _TEXT),
    *((f"measurements.latency.{k}", _TEXT) for k in ("device", "device_name", "dtype", "method")),
    *((f"measurements.latency.{k}", _COUNT) for k in ("threads", "batch_size")),
    *((f"checkpoints.{c}.{k}", _TEXT) for c in ("last", "best") for k in ("path", "sha256")),
    *((f"checkpoints.{c}.epoch", _COUNT) for c in ("last", "best")),
    # Yes/no the sheet says of them (a user test: `"false"` had read as yes, `0` as a tree not clean).
    ("environment.git_dirty", _YES_NO_OR_NULL), ("environment.cpu_bf16_native", _YES_NO_OR_NULL),
    ("measurements.latency.channels_last", _YES_NO), ("measurements.latency.synchronized", _YES_NO),
    ("training.layout.input_channels_last", _YES_NO), ("training.layout.weights_channels_last", _YES_NO),
    ("training.host_memory.large_blocks_from_heap", _YES_NO_OR_NULL),
)  # fmt: skip
# Each epoch's row of training.history, as the sheet's table and curves show it.
HISTORY_FIELDS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("epoch", is_count),  # the figures' x axis (a review: `[]` there passed `check`, which renders no figure)
    *((k, lambda v: v is not None and _NONNEG(v)) for k in ("lr", "epoch_s", "images_per_s")), ("steps", is_count),
    *((k, _NONNEG) for k in ("train_loss", "val_loss")), *((k, _FRACTION) for k in ("train_acc", "val_acc")),
)  # fmt: skip


def known_fields() -> list[str]:
    """The dotted places of the fields a run writes that the record's checks know by name
    (NESTED_KEYS, SHEET_FIELDS): for naming the place of a field a message knows only by its key."""
    return list(dict.fromkeys([*(".".join(keys) for keys, _, _ in NESTED_KEYS), *(dotted for dotted, _ in SHEET_FIELDS)]))


def _field_ok(audit: Mapping[str, Any], dotted: str, kind: Callable[[Any], bool]) -> bool:
    """Whether the field at `dotted` is of `kind`; an absent one (or one under a parent that is
    no mapping, which its own entry names) passes."""
    node: Any = audit
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return True
        node = node[key]
    return kind(node)


def _malformed_fields(audit: dict[str, Any]) -> list[str]:
    """The SHEET_FIELDS and the history rows' HISTORY_FIELDS of another kind than a run writes."""
    bad = [dotted for dotted, kind in SHEET_FIELDS if not _field_ok(audit, dotted, kind)]
    for i, row in enumerate(audit.get("training", {}).get("history", [])):
        if not isinstance(row, dict):
            bad.append(f"training.history[{i}]")
        else:
            bad += [f"training.history[{i}].{k}" for k, kind in HISTORY_FIELDS if k in row and not kind(row[k])]
    return bad


def _malformed_items(audit: dict[str, Any]) -> list[str]:
    """The fields whose values the sheet formats (lists' items, counts), where one is not what a run
    writes. Each section is a mapping and criteria a list: `record_problem` has checked that."""
    criteria = audit.get("criteria", [])
    bad = [f"criteria[{i}]" for i, c in enumerate(criteria) if not _criterion_ok(c)]
    bad += [f"criteria[{i}].measured" for i, c in enumerate(criteria) if _criterion_ok(c) and not _measured(c["measured"])]
    bad += _malformed_fields(audit)
    bad += _malformed_verification(audit.get("verification"))
    for i, c in enumerate(audit.get("step_checkpoints") or []):
        if not (isinstance(c, dict) and isinstance(c.get("path"), str) and is_count(c.get("bytes"))
                and is_count(c.get("global_step")) and "sha256" in c and isinstance(c["sha256"], (str, type(None)))
                and isinstance(c.get("problem", ""), str)):  # fmt: skip
            bad.append(f"step_checkpoints[{i}]")
    data, env = audit.get("data", {}), audit.get("environment", {})
    val, sizes = data.get("val_in_train"), data.get("sizes")
    most = sizes.get("val") if isinstance(sizes, dict) and is_count(sizes.get("val")) else val  # no more than val has
    if val is not None and not (is_count(val) and val <= most):
        bad.append("data.val_in_train")
    scored = sizes.get("test") if isinstance(sizes, dict) and is_count(sizes.get("test")) else None
    for key in ("test_in_train", "test_in_val"):  # counts of scored test images (null: not checked)
        if (n := data.get(key)) is not None and not (is_count(n) and (scored is None or n <= scored)):
            bad.append(f"data.{key}")
    if (limit := env.get("memory_limit_bytes")) is not None and not (is_count(limit) and limit > 0):
        bad.append("environment.memory_limit_bytes")
    others, n_others = data.get("other_entries"), data.get("n_other_entries")
    if others is not None and not all(isinstance(name, str) and name.isprintable() for name in others):
        bad.append("data.other_entries")  # a run escapes what is not printable: a newline would break the sheet
    if (others is not None or n_others is not None) and not (
            is_count(n_others) and len(others or []) == min(n_others, OTHER_ENTRIES_KEPT)):  # fmt: skip
        bad.append("data.n_other_entries")
    bad += malformed_test(audit.get("measurements"))
    latency = audit["measurements"].get("latency")
    for where, block in (("training", audit["training"]), ("measurements.latency", latency)):
        if isinstance(block, dict) and block.get("other_cpu_share") is not None and block.get("other_cpu_window_s") is None:
            bad.append(f"{where}.other_cpu_window_s")  # a run records a CPU share with the window it was measured over
    counts, classes = data.get("class_counts"), data.get("classes")
    if not isinstance(classes, list):
        bad.append("data.classes")
    elif counts is not None and isinstance(classes, list) and not (counts.keys() == {"train", "val", "test"} and all(
            isinstance(c, list) and len(c) == len(classes) and all(map(is_count, c)) for c in counts.values())):
        bad.append("data.class_counts")
    return bad


def malformed_test(measurements: Any) -> list[str]:
    """The fields of a recorded test evaluation (measurements.test; null: none ran) that are not what
    a run writes: the sheet shows them, and `check` recomputes the accuracy from the confusion
    matrix, which a record without one would let an edited accuracy pass."""
    test = measurements.get("test") if isinstance(measurements, dict) else None
    if test is None:
        return []
    if not isinstance(test, dict):
        return ["measurements.test"]
    cm, per_class, acc, loss = (test.get(k) for k in ("confusion", "per_class", "acc", "loss"))
    bad = [] if is_count_matrix(cm) else ["measurements.test.confusion"]
    bad += [] if is_count(test.get("n")) else ["measurements.test.n"]
    bad += [] if is_number(acc) and 0 <= acc <= 1 else ["measurements.test.acc"]
    bad += [] if loss is None or is_number(loss) else ["measurements.test.loss"]  # null: not a number (NaN)
    if not (isinstance(per_class, dict) and (not is_count_matrix(cm) or len(per_class) == len(cm))
            and all(a is None or (is_number(a) and 0 <= a <= 1) for a in per_class.values())):  # fmt: skip
        bad.append("measurements.test.per_class")  # one accuracy (null: no image) per row of the matrix
    return bad


def is_count_matrix(cm: Any) -> bool:
    """Whether `cm` is a square matrix of non-negative integer counts (a confusion matrix)."""
    return (isinstance(cm, list) and len(cm) > 0 and all(isinstance(r, list) and len(r) == len(cm) for r in cm)
            and all(is_count(c) for r in cm for c in r))  # fmt: skip


def _nested_ok(audit: dict[str, Any], keys: tuple[str, ...], kind: type | tuple[type, ...], required: bool) -> bool:
    node: Any = audit
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return not required and isinstance(node, dict)  # absent optional field; a malformed parent fails
        node = node[key]
    return isinstance(node, kind)
