"""The run spec: one YAML file that describes a run completely.

`load_spec` reads the YAML, applies `--set` overrides, validates strictly
(unknown keys, wrong types and out-of-range values are errors) and returns a
frozen `Spec`. Every later stage takes its own section of it. The resolved
spec (all defaults filled in) and its sha256 are written with every artifact.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import math
import operator
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Annotated, Any, BinaryIO, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from auditor.errors import InvalidInput
from auditor.fileio import REGULAR_FILE, home_expanded, is_regular_file, not_readable, what_stands_at
from auditor.words import count, exact, path_arg

# The correct CIFAR-10 per-channel statistics over the 50k training images,
# and the widely copied (wrong) std that is accepted but flagged.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_STD_LEGACY = (0.2023, 0.1994, 0.2010)

HostMemoryMode = Literal["retain", "release"]  # train.host_memory (auditor.hostmem applies it)

NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"  # run and variant names: file and folder names anywhere;
# not hidden ones, which the tool keeps for itself (`checkpoints/.<name>.lock`, `.<name>.old.trash-*`)
# The devices a run can name: an index as torch reads it (ASCII, no leading zero; it wraps past 127)
DEVICE_FORM = re.compile(r"auto|cpu|cuda(:(0|[1-9][0-9]?|1[01][0-9]|12[0-7]))?")
DEVICE_FORMS = "must be auto, cpu, cuda or cuda:N"

# Folder suffixes the tool keeps for itself (audit uses them; named here, where a name is refused them).
STAGING = ".partial"  # a run's (or verify's) folder while it is written
ASIDE = ".old"  # an earlier run's report (`aside`), or an earlier verify's work dir, while a new one goes in place
FAILED = ".failed"  # a verify attempt that failed, kept for reading beside the evidence put back
ABLATION_PAGE = "ABLATIONS.md"  # an ablation's page, in reports/<ablation name>/ beside its ablations.json
RESERVED_SUFFIXES = (STAGING, ASIDE, FAILED)
DATASET_CLASSES = MappingProxyType({"cifar10": 10, "synthetic": 10})

# Validation context for a spec a run recorded (in a checkpoint): checks added after runs could be
# recorded with such values guard new runs only, so an older checkpoint still evaluates.
RECORDED = MappingProxyType({"recorded": True})


def _new_run(info: ValidationInfo) -> bool:
    """Whether the spec validated is for a new run (not one a run recorded)."""
    return not (info.context or {}).get("recorded")


# The metrics measured on the validation split, which data.val_split: 0 leaves out.
VAL_METRICS = ("best_val_acc", "final_val_acc")

SUBKEY = "@"  # a validator's message "@key: why" names the key inside the field it checks

# float32's largest finite value and smallest normal positive one: training computes in float32
# (bf16 has the same range), where torch refuses a larger lr or weight decay mid-run ("cannot be
# converted to type float without overflow"), and a std of 1e-50 is 0 (images inf: the run diverges).
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38


def _float32_check(zero: bool) -> AfterValidator:
    """The validator of a float training computes with in float32: at most FLOAT32_MAX in size,
    and, unless 0 (where `zero` allows it), at least FLOAT32_TINY; new specs only."""

    def check(v: float, info: ValidationInfo) -> float:
        if abs(v) > FLOAT32_MAX and _new_run(info):
            # exact figures: `got 3.40282e+38` beside "about 3.4e38" read as a contradiction (a user test)
            raise ValueError(f"must be at most {FLOAT32_MAX!r}, got {v!r}: beyond float32's range, in which training computes")
        if 0 < abs(v) < FLOAT32_TINY and _new_run(info):
            raise ValueError(f"must be {'0 or ' if zero else ''}at least {FLOAT32_TINY!r}, got {v!r}: below float32's "
                             "smallest normal positive value, in which training computes (there it would be 0, or "
                             "lose its precision)")  # fmt: skip
        return v

    return AfterValidator(check)


def _float32_schema(schema: dict[str, Any]) -> None:
    """The bounds `_float32_check` keeps, for the JSON schema: at most FLOAT32_MAX (where no
    tighter bound is given), and not between 0 and FLOAT32_TINY."""
    if "maximum" not in schema and "exclusiveMaximum" not in schema:
        schema["maximum"] = FLOAT32_MAX
    schema["not"] = {"exclusiveMinimum": 0, "exclusiveMaximum": FLOAT32_TINY}


# After a field's own constraints (which say more): Annotated[float, Field(ge=0), *IN_FLOAT32]
IN_FLOAT32 = (_float32_check(zero=True), Field(json_schema_extra=_float32_schema))
POSITIVE_IN_FLOAT32 = (_float32_check(zero=False), Field(json_schema_extra=_float32_schema))


class _Section(BaseModel):
    """Base for every spec section: strict types, no unknown keys, immutable, finite numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Determinism(_Section):
    """Seeding aside, the determinism flags `auditor run` sets (on by default)."""

    enabled: bool = True
    # torch's NaN-filling of fresh torch.empty() memory under deterministic algorithms.
    # It only matters to an op that reads memory it never wrote (none is known in these
    # models; `auditor verify` checks the result is bitwise reproducible, though twin runs
    # may read the same leftover bytes); it costs 1-3% of a CPU training step
    # (bench/RESULTS.md). Turn it on to hunt such an op.
    fill_uninitialized_memory: bool = False


class Augment(_Section):
    """Per-sample training augmentation, done as batched tensor ops on the device."""

    crop_padding: Annotated[int, Field(ge=0, le=16)] = 4  # pixels of zero padding
    hflip: bool = True


class SyntheticSize(_Section):
    """Image counts of the procedurally generated data set (dataset: synthetic)."""

    # images; at most a million (3 GB of uint8 pixels), where larger sizes fail to allocate
    train: Annotated[int, Field(ge=10, le=1_000_000)] = 2000
    test: Annotated[int, Field(ge=10, le=1_000_000)] = 500


# per channel; each within float32, in which images are normalised (a std of 1e-50 would be 0)
Triple = Annotated[list[Annotated[float, *IN_FLOAT32]], Field(min_length=3, max_length=3)]
PositiveTriple = Annotated[list[Annotated[float, *POSITIVE_IN_FLOAT32]], Field(min_length=3, max_length=3)]


class DataSpec(_Section):
    """Where the data comes from, how it is split, normalised and augmented."""

    dataset: Literal["cifar10", "synthetic"] = "cifar10"
    root: str = "data"  # holds cifar-10-batches-py/; relative to the working dir (empty: refused when read)
    download: bool = False
    require_official: bool = False  # fail unless the files match the official MD5s
    val_split: Annotated[int, Field(ge=0)] = 5000  # images held out of train
    mean: Triple = list(CIFAR10_MEAN)
    std: PositiveTriple = list(CIFAR10_STD)
    augment: Augment = Augment()
    limit_train: Annotated[int, Field(ge=1)] | None = None  # cap for smoke runs
    limit_test: Annotated[int, Field(ge=1)] | None = None
    synthetic: SyntheticSize = SyntheticSize()

    @field_validator("mean")
    @classmethod
    def _mean_in_unit_range(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= m <= 1.0 for m in v):
            raise ValueError(f"each mean must be in [0, 1] (pixel scale), got {v}")
        return v

    @field_validator("std")
    @classmethod
    def _std_positive(cls, v: list[float]) -> list[float]:
        if any(not s > 0.0 for s in v):
            raise ValueError(f"each std must be > 0, got {v}")
        return v

    @model_validator(mode="after")
    def _settings_fit_the_dataset(self, info: ValidationInfo) -> DataSpec:
        if not _new_run(info):
            return self
        if self.dataset == "cifar10" and not self.root:  # Path("") would silently be the working directory
            raise ValueError(f"{SUBKEY}root: empty; give the folder that holds cifar-10-batches-py/ ('.' for this one)")
        if self.dataset == "cifar10":
            try:
                home_expanded(self.root)  # `~nosuchuser/data`: refused here as the data stage would
            except ValueError as exc:
                raise ValueError(f"{SUBKEY}root: {exc}") from None
        if self.dataset == "synthetic" and self.require_official:
            raise ValueError(f"{SUBKEY}require_official: true asks for the official CIFAR-10 files; dataset is synthetic")
        return self

    @model_validator(mode="after")
    def _val_split_leaves_training_images(self) -> DataSpec:
        # CIFAR-10's size is known only once its files are read (the data stage checks it then).
        if self.dataset == "synthetic" and self.val_split >= self.synthetic.train:
            raise ValueError(f"{SUBKEY}val_split: {self.val_split_too_large(self.synthetic.train, ' (data.synthetic.train)')}")
        return self

    def val_split_too_large(self, n_train: int, source: str = "") -> str:
        """Why `val_split` cannot split `n_train` training images (counted as `source` says), and,
        where the spec left it at its default (sized for CIFAR-10's 50,000), a value to set."""
        images = f"the {count(n_train, 'training image')}{source}"
        if "val_split" in self.model_fields_set:
            return f"{self.val_split} must be smaller than {images}"
        return (f"{self.val_split} (the default, sized for CIFAR-10's 50,000 training images) must be smaller than "
                f"{images}; set data.val_split, e.g. {max(1, n_train // 10)}")


class ModelSpec(_Section):
    """A registered model (see `auditor models`), its head size and its normalisation layers."""

    name: str = "resnet18"
    norm: Literal["batch", "group", "none"] = "batch"
    num_classes: Annotated[int, Field(ge=2)] = 10

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str, info: ValidationInfo) -> str:
        if not _new_run(info):  # a record's: `check` and `render` read it without torch, which the registry imports;
            return v  # a checkpoint's is checked where its model is built (inspect.model_from_checkpoint)
        from auditor.models import list_models

        if v not in list_models():
            raise ValueError(f"unknown model {v!r}; known: {', '.join(list_models())}")
        return v


class Optimizer(_Section):
    """SGD (momentum, optional Nesterov, weight decay); lr is the base rate the schedule scales."""

    name: Literal["sgd"] = "sgd"
    lr: Annotated[float, Field(gt=0), *POSITIVE_IN_FLOAT32] = 0.1
    momentum: Annotated[float, Field(ge=0, lt=1), *IN_FLOAT32] = 0.9
    weight_decay: Annotated[float, Field(ge=0), *IN_FLOAT32] = 5.0e-4
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Optimizer:
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"{SUBKEY}nesterov: true needs momentum > 0 (momentum is {self.momentum})")
        return self


class Schedule(_Section):
    """The learning-rate schedule over epochs, with an optional linear warm-up."""

    name: Literal["cosine", "multistep", "constant"] = "cosine"
    warmup_epochs: Annotated[float, Field(ge=0)] = 0.0  # fractional epochs allowed
    eta_min: Annotated[float, Field(ge=0), *IN_FLOAT32] = 0.0  # cosine floor, absolute lr
    milestones: list[Annotated[float, Field(gt=0)]] = []  # epochs (multistep)
    gamma: Annotated[float, Field(gt=0, le=1), *POSITIVE_IN_FLOAT32] = 0.1  # multistep decay factor

    @model_validator(mode="after")
    def _milestones_increase(self, info: ValidationInfo) -> Schedule:
        # multistep without milestones is the train section's to refuse: its example is for its epochs
        pairs = list(zip(self.milestones, self.milestones[1:], strict=False))
        if any(b < a for a, b in pairs) or (_new_run(info) and any(b == a for a, b in pairs)):
            raise ValueError(f"{SUBKEY}milestones: must be increasing (each once), got {epochs_text(self.milestones)}")
        return self


def epochs_text(epochs: list[float]) -> str:
    """Epoch counts as written (`[91, 136]`, `[0.5]`): validation reads them as floats (`91.0`)."""
    return "[" + ", ".join(map(exact, epochs)) + "]"


class EarlyStopping(_Section):
    """Stop when the selection accuracy has not improved for `patience` epochs."""

    floor: Annotated[float, Field(ge=0, le=1)] = 0.0  # val acc (fraction) before patience counts
    patience: Annotated[int, Field(ge=1)] = 15  # epochs without improvement


def _off_alias(v: Any) -> Any:
    # YAML 1.1 reads a bare `off` as False; treat it as the string "off".
    return "off" if v is False else v


class TrainSpec(_Section):
    """The training loop: budget, batch sizes, device and the speed toggles."""

    epochs: Annotated[int, Field(ge=1)] = 200
    max_steps: Annotated[int, Field(ge=1)] | None = None  # stop early after this many steps (budgets)
    batch_size: Annotated[int, Field(ge=1)] = 128
    eval_batch_size: Annotated[int, Field(ge=1)] = 256  # CPU: smaller batches stay in cache
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()
    label_smoothing: Annotated[float, Field(ge=0, lt=1), *IN_FLOAT32] = 0.0
    early_stopping: EarlyStopping | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = True  # NHWC: faster CPU convolutions (bench/RESULTS.md), deterministic
    # retain: freed host memory stays in the heap for reuse, so a CPU step does not page-fault
    # its activations in anew (auditor.hostmem); release: the C library's defaults.
    host_memory: HostMemoryMode = "retain"
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"
    checkpoint_every_steps: Annotated[int, Field(ge=1)] | None = None  # mid-epoch checkpoints
    log_every_steps: Annotated[int, Field(ge=1)] = 50  # host reads the loss only here

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_off(cls, v: Any) -> Any:
        if v is True:
            raise ValueError("true is ambiguous; use bf16 or fp16")
        return _off_alias(v)

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_off(cls, v: Any) -> Any:
        return "default" if v is True else _off_alias(v)

    @field_validator("device")
    @classmethod
    def _device_form(cls, v: str) -> str:
        if not DEVICE_FORM.fullmatch(v):
            raise ValueError(f"{DEVICE_FORMS}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _schedule_fits_run(self, info: ValidationInfo) -> TrainSpec:
        s = self.schedule
        if s.name == "multistep" and not s.milestones:
            raise ValueError(f"{SUBKEY}schedule.milestones: multistep needs milestones (epochs): "
                             f"{self._milestones_that_fit('give some')}")  # fmt: skip
        late = [m for m in s.milestones if m >= self.epochs]
        if s.name == "multistep" and late:
            raise ValueError(f"{SUBKEY}schedule.milestones: {epochs_text(late)} are not before epochs={self.epochs} "
                             f"(milestones are epochs: {self._milestones_that_fit()})")  # fmt: skip
        if s.warmup_epochs > self.epochs:
            raise ValueError(f"{SUBKEY}schedule.warmup_epochs: {exact(s.warmup_epochs)} must be at most epochs={self.epochs}")
        if s.name == "cosine" and s.eta_min > self.optimizer.lr:
            raise ValueError(f"{SUBKEY}schedule.eta_min: {s.eta_min} is above optimizer.lr={self.optimizer.lr}")
        if self.amp == "fp16" and self.device == "cpu" and _new_run(info):  # the run's own words (check_device_support)
            raise ValueError(f"{SUBKEY}amp: fp16 needs a CUDA device (GradScaler); use bf16 or off on CPU")
        return self

    def _milestones_that_fit(self, verb: str = "scale them with train.epochs") -> str:
        """What to set instead of milestones at or past the last epoch (or none): ones at half and
        three quarters of the epochs after the warm-up (a milestone within it lowers the lr only as
        it ends), said so where there is one (a user test: [1.75, 2.375] for 3 epochs read as wrong)."""
        warm, cosine = self.schedule.warmup_epochs, "or, for a short trial, set train.schedule.name to cosine"
        if warm >= self.epochs:
            return f"the warm-up (warmup_epochs={exact(warm)}) takes every epoch, so none could follow it: give more epochs, {cosine}"
        fit = epochs_text([warm + (self.epochs - warm) * f for f in (0.5, 0.75)])
        of = (f"half and three quarters of the {exact(self.epochs - warm)} epochs after the {exact(warm)}-epoch warm-up"
              if warm else f"half and three quarters of the {self.epochs} epochs")  # fmt: skip
        return f"{verb}, e.g. {fit} ({of}), {cosine}"


def schedule_notes(train: TrainSpec) -> list[tuple[str, str]]:
    """What `validate` and `run` say of a valid multistep schedule that may not be what was meant,
    as (the field to blame, the note): milestones all within the first of several epochs (fractions
    of the training, written as epochs, would be), and milestones within the warm-up, whose decay
    waits for it to end (blamed on the warm-up: a --set of it had been blamed on the milestones' line)."""
    s = train.schedule
    if s.name != "multistep":
        return []
    notes, field = [], "train.schedule.milestones"
    if train.epochs > 1 and s.milestones[-1] < 1:
        fractions = (f"{field}: {epochs_text(s.milestones)} are epochs, not fractions of the training: the lr is "
                     f"{s.gamma ** len(s.milestones):.3g} x its base value after the first "
                     f"{exact(max(s.milestones[-1], s.warmup_epochs))} of the {train.epochs} epochs; if that was "
                     f"not meant, {train._milestones_that_fit()}")  # fmt: skip
        notes.append((field, fractions))
    if hidden := [m for m in s.milestones if m < s.warmup_epochs]:
        within = (f"{field}: {epochs_text(hidden)} lie within the warm-up (warmup_epochs={exact(s.warmup_epochs)}): "
                  "the warm-up ignores them, and their decay applies at once when it ends")
        notes.append(("train.schedule.warmup_epochs", within))
    return notes


SCHEDULE_READERS = MappingProxyType({"milestones": "multistep", "gamma": "multistep", "eta_min": "cosine"})


def unread_schedule_fields(s: Schedule) -> list[tuple[str, str]]:
    """Settings of another schedule than the one named, which it does not read (milestones left by a
    --set of the name to cosine), as (the field, the note); a setting at its default is not named.
    `validate` says them; `run` does not (an ablation sets milestones for every variant, and the
    sheet marks them unused)."""
    notes = []
    for field, reader in SCHEDULE_READERS.items():
        value = getattr(s, field)
        if reader != s.name and value != Schedule.model_fields[field].default:
            shown = epochs_text(value) if field == "milestones" else exact(value)
            said = f"train.schedule.{field} ({shown}) is not read: only a {reader} schedule reads it, and this one is {s.name}"
            notes.append((f"train.schedule.{field}", said))
    return notes


def unread_data_fields(data: DataSpec) -> list[tuple[str, str]]:
    """Settings of the CIFAR-10 files that synthetic data does not read, where the spec or a --set
    gave them (a user test: `--set data.root=/nonexistent` on the smoke spec went without a word),
    as (the field, the note)."""
    if data.dataset != "synthetic":
        return []
    given = [f for f in ("root", "download") if f in data.model_fields_set and getattr(data, f) != DataSpec.model_fields[f].default]
    return [(f"data.{f}", f"data.{f} ({short_value(getattr(data, f))}) is not read: the dataset is synthetic") for f in given]


def unpassable_criterion(
    metric: str, expr: str, dataset: str | None, val_split: float | None, early_stopping: bool
) -> tuple[str, str] | None:
    """Why `metric: expr` fails every run of a spec with these settings, and what a new spec can do
    instead; or None: a validation accuracy where data.val_split is 0 (never measured),
    `official_data` other than false on synthetic data (never official), `status == early_stopped`
    without train.early_stopping. A new spec is refused one; so is a criterion `check` is given for
    a run of such a spec (with its own advice: the run is done)."""
    if metric in VAL_METRICS and val_split == 0:
        return ("never measured, as data.val_split is 0 (no validation split: the checkpoint is selected on the test set)",
                f"remove it (--set criteria.{metric}=null) or hold out images with data.val_split")
    if metric == "official_data" and dataset == "synthetic":
        crit = parse_criterion(metric, expr, recorded=True)
        if (crit.op == "==") != (crit.threshold == "false"):  # judged at false, the only value synthetic data has
            why = f"{expr!r} never passes here: data.dataset is synthetic, which is never the official CIFAR-10 (official_data is false)"
            return why, "remove it, or train on cifar10"
    if metric == "status" and not early_stopping:
        crit = parse_criterion(metric, expr, recorded=True)
        if crit.op == "==" and crit.threshold == "early_stopped":
            return (f"{expr!r} never passes here: train.early_stopping is not set, so no run of this spec stops early",
                    "set it, or gate on '!= diverged'")  # fmt: skip
    return None


MAX_WARMUP, MAX_ITERS = 100_000, 1_000_000  # measure.latency bounds for a new spec


class Latency(_Section):
    """Batch-1 latency measurement: untimed warm-up, then individually timed iterations."""

    batch_size: Annotated[int, Field(ge=1, le=4096)] = 1  # images a timed forward; 4096 x 12 KB in fp32
    # untimed iterations (at most MAX_WARMUP in a new spec)
    warmup: Annotated[int, Field(ge=0, json_schema_extra={"maximum": MAX_WARMUP})] = 20
    # timed iterations, median and p95 reported (at most MAX_ITERS in a new spec)
    iters: Annotated[int, Field(ge=5, json_schema_extra={"maximum": MAX_ITERS})] = 200

    @field_validator("warmup", "iters")
    @classmethod
    def _not_for_days(cls, v: int, info: ValidationInfo) -> int:
        """Refuse a slip (an exponent too many) that would time for days, in a new spec only: an
        older checkpoint whose spec asked for more still loads (evaluate times nothing)."""
        most = MAX_WARMUP if info.field_name == "warmup" else MAX_ITERS
        if v > most and _new_run(info):
            # at 10 ms a forward pass (a small model on a CPU): 360,000 an hour; in integers, as a float's
            # digits past its precision would show as exact (277,777,777,777,777,792 hours)
            took = f"{(v + 180_000) // 360_000:,} hours" if v >= 720_000 else f"{(v + 3_000) // 6_000:,} minutes"
            raise ValueError(f"at most {most:,}, got {v:,} ({v:,} iterations of a 10 ms CPU forward take {took})")
        return v


class MeasureSpec(_Section):
    """What the measure stage does after training."""

    latency: Latency = Latency()


# --- criteria -------------------------------------------------------------

# metric -> (kind, unit-range note). Accuracy metrics are fractions in [0, 1].
NUMERIC_METRICS: Mapping[str, str] = MappingProxyType({
    "test_acc": "fraction",
    "best_val_acc": "fraction",
    "final_val_acc": "fraction",
    "final_train_acc": "fraction",
    "latency_ms": "ms",
    "params_m": "millions",
    "checkpoint_mb": "MB",  # best.pt as written: weights + optimiser + RNG + history
    "weights_mb": "MB",  # a bare state_dict (the deployable model)
    "train_time_s": "s",
    "images_per_s": "images/s",
    "peak_rss_mb": "MB",
})
CATEGORICAL_METRICS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "status": ("completed", "diverged", "early_stopped"),
    "reproducible": ("bitwise", "tolerance", "diverged", "unresumed", "incomplete"),
    "official_data": ("true", "false"),
})
# ASCII digits only: Python's \d also takes other scripts' ('٠.٥'), which the schema's pattern (ECMA-262) does not
_NUM = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
# The spaces both Python's and ECMA-262's \s take: Python's also takes U+001C-U+001F and U+0085, and
# ECMA's U+FEFF, so that `\s` had the schema and validation disagree on those (a user test).
_WS = r"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"
_CMP_RE = re.compile(rf"^{_WS}(>=|<=|==|!=|>|<){_WS}({_NUM}){_WS}$")
_TOL_RE = re.compile(rf"^{_WS}({_NUM}){_WS}(?:\+-|\+/-|±){_WS}({_NUM}){_WS}$")
_CAT_RE = re.compile(rf"^{_WS}(==|!=){_WS}([A-Za-z_]+){_WS}$")


class Criterion(BaseModel):
    """A parsed criterion: `metric op threshold`, or `metric == target +- tol`."""

    model_config = ConfigDict(frozen=True)
    metric: str
    expr: str
    op: Literal[">=", ">", "<=", "<", "==", "!=", "+-"]
    threshold: float | str
    tolerance: float | None = None


def criterion_gap(metric: str, what: str) -> str:
    """Why a criterion with an empty value or none (an unset variable, a template's gap) is
    refused rather than read as null, which would remove the gate, and what to write instead."""
    block = "; if you wrote `>1` or `|1` unquoted in a YAML file, quote it: YAML reads that as an empty block" if what == "empty" else ""
    return (f"{what}; write an expression (e.g. \">= 0.85\"), or remove the criterion: "
            f"--set criteria.{metric}=null, or delete its line in a file{block}")


PASSING_FORMS = "'== bitwise', or '== tolerance' (met by a bitwise verdict too)"  # the reproducible criteria a spec takes
PASSING_VERDICT = "cannot use {expr}: name the verdict that passes, " + PASSING_FORMS


# The verify verdicts a `reproducible` criterion may name: those that can pass (tolerance only
# with verify.allow_tolerance, which `_reproducible_as_verify_judges` holds it to).
PASSING_VERDICTS = ("bitwise", "tolerance")


def failing_verdict_problem(metric: str, expr: Any) -> str | None:
    """Why a new `reproducible` criterion cannot gate: it names a verdict that fails verify
    (`== diverged`, `== unresumed`, `== incomplete`), which it would pass. None otherwise, and
    for what does not parse (parse_criterion says why). Records that hold one are still read."""
    if metric != "reproducible":
        return None
    try:
        wanted = parse_criterion(metric, expr).threshold
    except ValueError:
        return None
    return PASSING_VERDICT.format(expr=repr(expr)) if wanted not in PASSING_VERDICTS else None


def verdict_disagreement(expr: str, allow_tolerance: bool, recorded_run: bool = False) -> str | None:
    """Why a `reproducible` criterion (one that parses, naming a passing verdict) judges a
    tolerance verdict otherwise than verify does under `verify.allow_tolerance`, or None.
    `recorded_run`: the setting is a finished run's (`check`), which no flag changes."""
    wanted = parse_criterion("reproducible", expr).threshold
    fixed = (" (fixed by the spec the run ran: a run and its verification with another setting can be gated so)"
             if recorded_run else "")
    if wanted == "tolerance" and not allow_tolerance:
        change = "" if recorded_run else "set verify.allow_tolerance: true, or "
        return (f"{expr.strip()!r} asks for a tolerance verdict, which verify fails while verify.allow_tolerance "
                f"is false{fixed}: {change}require '== bitwise'")
    if wanted == "bitwise" and allow_tolerance:
        change = "" if recorded_run else ", or set verify.allow_tolerance: false"
        return (f"{expr.strip()!r} fails a tolerance verdict, which verify passes while verify.allow_tolerance is "
                f"true{fixed}: require '== tolerance'{change}")
    return None


def unknown_metric(metric: str) -> str | None:
    """Why `metric` cannot be a criterion's (it is none of the metrics), or None."""
    if metric in NUMERIC_METRICS or metric in CATEGORICAL_METRICS:
        return None
    known = [*NUMERIC_METRICS, *CATEGORICAL_METRICS]
    near = difflib.get_close_matches(metric, known, n=2, cutoff=0.75)
    return (f"unknown metric {metric!r}" + (f"; did you mean {' or '.join(near)}?" if near else "")
            + f"; known: {', '.join(known)}")


# Units of metrics where more is better (NUMERIC_METRICS): a bare number's hint offers `>=` for
# these, `<=` for the rest (times, sizes, counts of parameters).
_MORE_IS_BETTER_UNITS = frozenset({"fraction", "images/s"})


def reads_as_zero(written: str, value: float) -> bool:
    """Whether a number written other than 0 (`1e-400`) read as `value` 0.0: refused in a spec
    (`_construct_float`) and in a new spec's criteria (an older run's criterion is judged as read)."""
    return value == 0 and re.search(r"[1-9]", re.split(r"[eE]", written)[0]) is not None


def _lone_number_hint(metric: str, expr: Any) -> str:
    """For a threshold given without its comparison (`0.5`, quoted or not): a criterion that
    would be accepted, or nothing where none is clear (a categorical metric, a fraction out of range)."""
    text = str(expr).strip() if not isinstance(expr, bool) else ""
    if metric not in NUMERIC_METRICS or not re.fullmatch(_NUM, text):
        return ""
    if NUMERIC_METRICS[metric] == "fraction" and not 0 <= float(text) <= 1:
        return ""
    op = ">=" if NUMERIC_METRICS[metric] in _MORE_IS_BETTER_UNITS else "<="
    return f"; a number alone names no comparison: write, e.g., \"{op} {text}\""


def _missing_part_hint(expr: str, part: str = "number") -> str:
    """For an expression that lost its number (`">= $UNSET"` expanded by a shell), holds a variable
    nothing expanded (`">= $MIN_ACC"` in a YAML file), or is Python's `None` written for YAML's
    null: what happened and what to write; '' otherwise."""
    text = expr.strip()
    if re.fullmatch(rf"(>=|<=|==|!=|>|<)|{_NUM}\s*(\+-|\+/-|±)", text):
        return f"; the {part} after it is missing (an unset variable?)"
    if var := re.search(r"\$\{?[A-Za-z_]\w*\}?", text):
        return (f"; {var[0]} is not expanded here: a YAML file takes no variables, and a shell expands one in "
                "--set only outside single quotes")
    if text in ("None", "none"):
        return "; to remove the criterion, write null (YAML's word; None is text there)"
    return ""


def _percent_hint(metric: str, expr: str) -> str:
    """For a percentage ('>= 92.5%', '90% +- 1%'): what the criterion reads instead, as a fraction
    for a fraction metric ('>= 0.925', '0.9 +- 0.01'); nothing where no % is written."""
    m = re.fullmatch(rf"\s*(>=|>|<=|<|==|!=)?\s*({_NUM})\s*%\s*", expr)
    # '90% +- 1%' (or +/-, ±; the tolerance's % may be left out)
    tol = re.fullmatch(rf"\s*({_NUM})\s*%\s*(\+-|\+/-|±)\s*({_NUM})\s*%?\s*", expr)
    if not m and not tol:
        return ""
    if NUMERIC_METRICS.get(metric) != "fraction":
        return f"; {metric} is not a percentage: write its number without %"
    percent = Decimal(m[2] if m else tol[1])
    if not 0 <= percent <= 100:  # compared before dividing: 1e999999999 / 100 overflows Decimal's context
        return f"; {metric} is a fraction in [0, 1], not a percentage"
    fraction = f"{(percent / 100).normalize():f}"
    if m:
        op = m[1] or (">=" if NUMERIC_METRICS[metric] in _MORE_IS_BETTER_UNITS else "<=")
        return f"; {metric} is a fraction in [0, 1]: write, e.g., \"{op} {fraction}\" for {m[2]}%"
    tolerance = Decimal(tol[3])
    if not 0 <= tolerance <= 100:  # a negative one is refused whatever its unit
        return ""
    return (f"; {metric} is a fraction in [0, 1]: write, e.g., \"{fraction} {tol[2]} {(tolerance / 100).normalize():f}\" "
            f"for {tol[1]}% {tol[2]} {tol[3]}%")


def parse_criterion(metric: str, expr: Any, *, recorded: bool = False) -> Criterion:
    """Parse one criterion expression; raise ValueError with a precise reason.

    `recorded`: the criterion comes from a run's record, which an older version may have written
    with a `reproducible` `!=` criterion: parsed then, for the gate to fail (check._fails_verification),
    where one given now is refused."""
    if (unknown := unknown_metric(metric)) is not None:
        raise ValueError(unknown)
    if not isinstance(expr, str):
        raise ValueError(f"must be a quoted string like \">= 0.85\", got {value_text(expr)}"  # noqa: TRY004 (pydantic)
                         + (_categorical_hint(metric, expr) if metric in CATEGORICAL_METRICS else
                            _lone_number_hint(metric, expr)))
    if not expr.strip():  # `>1` unquoted in a criteria file: YAML read an empty block
        raise ValueError(criterion_gap(metric, "empty"))
    if metric in CATEGORICAL_METRICS:
        return _parse_categorical(metric, expr, recorded)
    if m := _CMP_RE.match(text := _as_matched(expr, recorded)):
        crit = Criterion(metric=metric, expr=expr, op=m[1], threshold=float(m[2]))
    elif m := _TOL_RE.match(text):
        crit = Criterion(
            metric=metric, expr=expr, op="+-", threshold=float(m[1]), tolerance=float(m[2])
        )
        if crit.tolerance < 0 or m[2].startswith("-"):  # `-0` too, which the schema's pattern refuses
            raise ValueError(f"tolerance must be >= 0 in {expr!r}")
    else:
        raise _unparsed(metric, expr)
    if not all(math.isfinite(v) for v in (float(crit.threshold), crit.tolerance or 0.0)):
        raise ValueError(f"numbers must be finite in {expr!r}")  # 1e999 reads as inf
    if not recorded and any(reads_as_zero(n, float(n)) for n in (m.groups() if crit.op == "+-" else m.groups()[1:])):
        raise ValueError(f"a number in {expr!r} is too small for a float to tell from 0 (it would read as 0.0)")
    if NUMERIC_METRICS[metric] == "fraction" and not 0 <= float(crit.threshold) <= 1:
        raise ValueError(f"{metric} is a fraction in [0, 1], got {expr!r}")  # as written: not 5.0 for 5
    if not recorded and not _reachable(crit):  # a gate no model can pass is a typo, not a gate
        hi = metric_ceiling(metric)
        raise ValueError(f"{expr!r} can never pass: {metric} is always in [0, {exact(hi)}]" if hi < math.inf else
                         f"{expr!r} can never pass: {metric} is never below 0")  # fmt: skip
    return crit


def _as_matched(expr: str, recorded: bool) -> str:
    """`expr` as the criteria patterns match it: a recorded one with Python's spaces read as spaces
    (auditor 0.2.0's patterns took U+001C-U+001F and U+0085 as spaces, which the ones shared with the
    schema do not: an upgrade test had an older run's record refused as edited)."""
    return re.sub(r"\s", " ", expr) if recorded else expr


def _unparsed(metric: str, expr: str) -> ValueError:
    """The error for a numeric criterion neither form reads, with what it may have meant."""
    if re.search(r"(?i)(?<![a-z])(?:[+-]?inf(?:inity)?|nan)(?![a-z])", expr):  # as `<= 1e999` is said (a user test)
        return ValueError(f"numbers must be finite in {expr!r}")
    digits = "; write numbers in ASCII digits (0-9)" if any(c.isdigit() and not c.isascii() for c in expr) else ""
    return ValueError(
        f"cannot parse {expr!r}: expected '<op> <number>' (op one of >=, >, <=, <, ==, !=)"
        f" or '<number> +- <tolerance>' (also +/- or ±){digits}{_lone_number_hint(metric, expr)}"
        f"{_percent_hint(metric, expr)}{_missing_part_hint(expr)}"
    )


REL_EPS = 1e-9  # relative slack for numeric `==` and `+-`
_ORDERED: Mapping[str, Callable[[float, float], bool]] = MappingProxyType({
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
})  # fmt: skip


def numeric_passes(op: str, threshold: float, tolerance: float | None, measured: float) -> bool:
    """Whether `measured` meets `op threshold` (`+-`: within `tolerance`); `==`, `!=` and `+-`
    allow a relative slack of REL_EPS, so a figure written as text and read back still matches."""
    slack = REL_EPS * max(1.0, abs(threshold))
    if op in _ORDERED:
        return _ORDERED[op](measured, threshold)
    if op == "+-":
        return abs(measured - threshold) <= float(tolerance or 0.0) + slack
    close = abs(measured - threshold) <= slack
    if op == "==":
        return close
    if op == "!=":
        return not close
    raise ValueError(f"unknown operator {op!r}")


def metric_ceiling(metric: str) -> float:
    """The largest value a numeric metric can take: 1 for a fraction, else none (inf); every one is >= 0."""
    return 1.0 if NUMERIC_METRICS[metric] == "fraction" else math.inf


def _reachable(crit: Criterion) -> bool:
    """Whether some value in the metric's range [0, ceiling] passes `crit`: judged by the
    comparison itself at the value in the range nearest to what it asks for."""
    t, hi = float(crit.threshold), metric_ceiling(crit.metric)
    nearest = {"<": 0.0, "<=": 0.0, ">": hi, ">=": hi}.get(crit.op, min(max(t, 0.0), hi))
    if nearest == math.inf:  # `> t` with no ceiling: any larger value passes
        return True
    return crit.op == "!=" or numeric_passes(crit.op, t, crit.tolerance, nearest)


# YAML 1.1's words for booleans, which spec booleans accept: a criterion names the record's value.
_BOOLEAN_WORDS = MappingProxyType({"yes": "true", "on": "true", "y": "true", "no": "false", "off": "false", "n": "false"})


def _categorical_hint(metric: str, expr: Any, passing_said: bool = False) -> str:
    """'; write "== bitwise"' for a categorical criterion that names an allowed value without its
    comparison, in other letter case, or (for true/false) in another word a spec's booleans take
    (`yes`, `off`; YAML's unquoted true); '' otherwise. `passing_said`: the message names the
    passing `reproducible` forms itself, which the hint for a failing verdict would repeat."""
    allowed = CATEGORICAL_METRICS[metric]
    text = str(expr).lower() if isinstance(expr, bool) else expr
    m = re.fullmatch(r"\s*(==|!=)?\s*([A-Za-z_]+)\s*", text) if isinstance(text, str) else None
    if m is None:
        return ""
    word = m[2].lower()
    meant = word if word in allowed else _BOOLEAN_WORDS.get(word) if "true" in allowed else None
    if metric == "reproducible" and meant and (m[1] == "!=" or meant not in PASSING_VERDICTS):
        # `!= diverged` or `== diverged` would pass what verify fails: never offered, in any case
        return "" if passing_said else f"; name the verdict that passes: {PASSING_FORMS}"
    return f'; write "{m[1] or "=="} {meant}"' if meant else ""  # called only where `expr` did not parse


def _parse_categorical(metric: str, expr: str, recorded: bool = False) -> Criterion:
    allowed = CATEGORICAL_METRICS[metric]
    m = _CAT_RE.match(_as_matched(expr, recorded))
    if (not m or m[2] not in allowed) and metric == "reproducible" and not recorded:  # the other forms are refused
        raise ValueError(f"cannot parse {expr!r}: expected {PASSING_FORMS}{_categorical_hint(metric, expr, True)}"
                         f"{_missing_part_hint(expr, 'value')}")  # fmt: skip
    if not m or m[2] not in allowed:
        raise ValueError(
            f"cannot parse {expr!r}: expected '== <value>' or '!= <value>' with value one of "
            + ", ".join(allowed) + _categorical_hint(metric, expr) + _missing_part_hint(expr, "value")
        )
    if metric == "reproducible" and m[1] == "!=" and not recorded:
        # `!= diverged` would pass verdicts that fail verify: unresumed, or tolerance
        # where verify.allow_tolerance is false.
        raise ValueError(PASSING_VERDICT.format(expr=repr(expr)))
    return Criterion(metric=metric, expr=expr, op=m[1], threshold=m[2])


class VerifySpec(_Section):
    # max |a-b| over compared losses, metrics and tensors accepted as `tolerance` when allow_tolerance
    """What `auditor verify` accepts as reproduced."""
    # The bound below 1 is checked for new specs only (a validator); the schema states it for editors.
    tolerance: Annotated[float, Field(ge=0, json_schema_extra={"exclusiveMaximum": 1})] = 1e-6
    allow_tolerance: bool = False

    @field_validator("tolerance")
    @classmethod
    def _below_one(cls, v: float, info: ValidationInfo) -> float:
        """Refuse a tolerance that accepts any two accuracies (new specs only)."""
        if v >= 1 and _new_run(info):  # a record written before the rule is still read
            raise ValueError(f"must be < 1, got {v:g}: it bounds every compared difference, accuracies (fractions) "
                             "included, and 1 accepts any two of them")  # fmt: skip
        return v


class Spec(_Section):
    """A complete, validated run description."""

    name: Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=128)]
    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 42
    determinism: Determinism = Determinism()
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    measure: MeasureSpec = MeasureSpec()
    verify: VerifySpec = VerifySpec()
    criteria: dict[str, str] = {}

    @field_validator("name")
    @classmethod
    def _not_dots(cls, v: str, info: ValidationInfo) -> str:
        if v in {".", ".."}:
            raise ValueError("must not be '.' or '..'")
        if v.endswith(RESERVED_SUFFIXES) and (_new_run(info) or not v.endswith(".failed")):  # .failed: reserved later
            raise ValueError(f"must not end in {', '.join(RESERVED_SUFFIXES)} (reserved for the tool's own folders)")
        # A new run's name in any case: a case-insensitive file system (macOS, Windows) takes `x.PARTIAL` for
        # `x.partial`. A recorded one (an earlier run's checkpoint) was allowed then, and is read as it is.
        if v.lower().endswith(RESERVED_SUFFIXES) and _new_run(info):
            raise ValueError(f"must not end in {', '.join(RESERVED_SUFFIXES)} in any letter case (reserved for the "
                             "tool's own folders, which a case-insensitive file system would take it for)")
        return v

    @field_validator("criteria", mode="before")
    @classmethod
    def _criteria_parse(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:  # `criteria:` with nothing under it, `--set criteria=null`: none (the schema allows it)
            return {}
        if isinstance(v, dict):
            # `--set criteria.X=null` removes a criterion (apply_parsed), as in `check`; an empty
            # text (`--set criteria.X=` with an unset variable in a CI script) or an entry written
            # with no value is refused rather than taken to remove the gate. Runs recorded their
            # criteria with such entries dropped.
            if _new_run(info) and (empty := [k for k, e in v.items() if e is None]):
                raise ValueError(f"{SUBKEY}{empty[0]}: {criterion_gap(empty[0], 'no value')}")
            v = {k: e for k, e in v.items() if e is not None}
            for metric, expr in v.items():  # an empty text is parse_criterion's to refuse (criterion_gap)
                try:
                    parse_criterion(str(metric), expr, recorded=not _new_run(info))
                except ValueError as exc:  # located at criteria.<metric> by format_validation_error
                    raise ValueError(f"{SUBKEY}{metric}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _classes_fit_the_data(self, info: ValidationInfo) -> Spec:
        classes = DATASET_CLASSES[self.data.dataset]
        if self.model.num_classes != classes and _new_run(info):
            raise ValueError(
                f"{SUBKEY}model.num_classes: {self.model.num_classes}, but data.dataset "
                f"{self.data.dataset} has {classes} classes"
            )
        return self

    @model_validator(mode="after")
    def _criteria_can_pass(self, info: ValidationInfo) -> Spec:
        """Refuse a criterion no run of the spec can pass (`unpassable_criterion`): it would fail only
        once the training is done (user tests). New specs only."""
        if not _new_run(info):
            return self
        for metric in (*VAL_METRICS, "official_data", "status"):  # one refusal: the first of these
            expr = self.criteria.get(metric)
            if expr is not None and (why := unpassable_criterion(metric, expr, self.data.dataset, self.data.val_split,
                                                                 self.train.early_stopping is not None)):  # fmt: skip
                raise ValueError(f"{SUBKEY}criteria.{metric}: {why[0]}; {why[1]}")
        return self

    @model_validator(mode="after")
    def _reproducible_as_verify_judges(self, info: ValidationInfo) -> Spec:
        """Refuse a `reproducible` criterion that judges a tolerance verdict otherwise than verify
        does (it passes one exactly when verify.allow_tolerance): the record's verdict and
        verify's exit code would differ. New specs only."""
        expr = self.criteria.get("reproducible")
        if expr is None or not _new_run(info):
            return self
        if problem := failing_verdict_problem("reproducible", expr) or verdict_disagreement(expr, self.verify.allow_tolerance):
            raise ValueError(f"{SUBKEY}criteria.reproducible: {problem}")
        return self

    def parsed_criteria(self) -> list[Criterion]:
        """The criteria as parsed `Criterion` objects, in spec order (a new spec was refused a
        `reproducible` `!=` criterion when validated; a recorded one keeps it, which then fails)."""
        return [parse_criterion(k, v, recorded=True) for k, v in self.criteria.items()]


# --- loading --------------------------------------------------------------


MAX_YAML_DEPTH = 64  # nesting levels of a spec, ablation or criteria file (they use about 4)
# Values in such a file once its aliases are expanded (a spec holds about 100): ten lines of
# aliases of aliases can expand to billions, which validation and messages would walk.
MAX_YAML_VALUES = 100_000
# Characters of such a file (a spec holds a few thousand): a 50 MB comment took PyYAML 90 s to read.
MAX_YAML_CHARS = 1_000_000


class DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping: `first_line` (from 1) names the first, the mark the second."""

    def __init__(self, key: str, first_line: int, mark: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", mark)
        self.first_line = first_line


class RefusedYaml(yaml.constructor.ConstructorError):
    """Valid YAML refused at its place (a `--set` value too, not taken as text): a number no field
    can hold as written (an integer past Python's digit limit, a float that reads as 0), or mappings
    merged with one key given two values, which versions read differently."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(None, None, problem, mark)


class YamlLimit(yaml.YAMLError):
    """YAML text past MAX_YAML_CHARS, MAX_YAML_DEPTH or MAX_YAML_VALUES: valid YAML, refused (a `--set` value too,
    which is otherwise taken as text where it is not YAML)."""


class DeepNode(yaml.composer.ComposerError, YamlLimit):
    """Nesting past MAX_YAML_DEPTH, found while composing (with its position)."""


class SpecLoader(yaml.SafeLoader):
    """SafeLoader that reads `5e-4` and `1e3` as floats (YAML 1.2), not strings,
    rejects a key given twice in one mapping (plain YAML keeps the last silently),
    an alias inside the node it names (a structure containing itself) and nesting
    deeper than MAX_YAML_DEPTH."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        """PyYAML's node composition, refusing nesting deeper than MAX_YAML_DEPTH."""
        event = self.peek_event()
        depth = self.__dict__.get("_depth", 0)
        if depth >= MAX_YAML_DEPTH:  # before Python's recursion limit turns it into a crash
            raise DeepNode(
                None, None, f"nested more than {MAX_YAML_DEPTH} levels deep (a spec needs a few)", event.start_mark
            )
        self._depth = depth + 1
        try:
            return self._compose_checked(parent, index, event)
        finally:
            self._depth = depth

    def _compose_checked(self, parent: yaml.Node | None, index: object, event: yaml.Event) -> yaml.Node | None:
        """`compose_node`, refusing an alias met inside the node its anchor names."""
        opened: set[str] = self.__dict__.setdefault("_open_anchors", set())
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) and anchor in opened:
            raise yaml.composer.ComposerError(
                None, None, f"the alias *{anchor} is inside the node it names (a structure containing itself)",
                event.start_mark,
            )  # fmt: skip
        if anchor is None or isinstance(event, yaml.AliasEvent):
            return super().compose_node(parent, index)
        opened.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            opened.discard(anchor)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        """The mapping as written, checked before any construction: a merge (`<<`) rewrites the
        node it merges from in place, so a mapping that both merges and overrides a key would
        show that key twice to a check made while constructing it after such a rewrite."""
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # complex keys are not spec keys (validation refuses them)
            key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1  # as written
            if key in seen:
                raise DuplicateKey(key_node.value, seen[key], key_node.start_mark)
            seen[key] = line
        return node

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """PyYAML's merge (`<<: *a` or `<<: [*a, *b]`), keeping YAML's precedence: of the mappings
        merged, the earlier one's key wins, and the mapping's own keys win over them all. PyYAML
        6.0.4 tells merged keys apart by object identity, so a key of more than one letter in two
        merged mappings took the later one's value (a user test: `<<: [{lr: 0.05}, {lr: 0.07}]`
        read as lr 0.07)."""
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        seen: dict[object, yaml.Node] = {}  # each merged key's value node, the first given
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.tag == "tag:yaml.org,2002:value":  # `=`, as PyYAML reads it
                    key_node.tag = "tag:yaml.org,2002:str"
                index += 1
                continue
            del node.value[index]
            for source in self._merge_sources(node, value_node):
                self.flatten_mapping(source)
                for pair in source.value:
                    if (key := _merge_key(pair[0])) not in seen:
                        seen[key] = pair[1]
                        merged.append(pair)
                    elif _merge_key(seen[key]) != _merge_key(pair[1]):
                        raise _merge_conflict(pair[0], seen[key], pair[1])
        if merged:  # without the keys it gives itself: flattened, a node holds each key once (it may be merged again)
            own = {_merge_key(k) for k, _ in node.value}
            node.value = [pair for pair in merged if _merge_key(pair[0]) not in own] + node.value

    @staticmethod
    def _merge_sources(node: yaml.MappingNode, value: yaml.Node) -> list[yaml.MappingNode]:
        """The mappings a merge key's value names, in order; an error for anything else."""
        sources = [value] if isinstance(value, yaml.MappingNode) else value.value if isinstance(value, yaml.SequenceNode) else None
        bad = value if sources is None else next((s for s in sources if not isinstance(s, yaml.MappingNode)), None)
        if bad is not None:
            raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                    f"expected a mapping or list of mappings for merging, but found "
                                                    f"{bad.id}", bad.start_mark)  # fmt: skip
        return sources  # type: ignore[return-value]


def _merge_conflict(key: yaml.Node, first: yaml.Node, later: yaml.Node) -> RefusedYaml:
    """Two mappings merged into one that give `key` other values: YAML takes the first, and auditor
    0.2.0 (PyYAML 6.0.4) took the last for most keys, so the file's meaning depends on the version
    (an upgrade test: a criteria file's gate flipped from FAIL to PASS)."""
    shown = [repr(n.value) if isinstance(n, yaml.ScalarNode) else f"a {n.id}" for n in (first, later)]
    return RefusedYaml(f"the mappings merged here give {key.value!r} twice, as {shown[0]} (line "
                       f"{first.start_mark.line + 1}) and {shown[1]}: YAML takes the first, auditor 0.2.0 took the "
                       "last; give it once, or as this mapping's own key", later.start_mark)  # fmt: skip


def _merge_key(node: yaml.Node) -> object:
    """What tells keys (or values) apart in a merge: a scalar's tag and text (not the object, as PyYAML
    6.0.4 does); another node by its identity (one anchor merged twice is one value)."""
    return (node.tag, node.value) if isinstance(node, yaml.ScalarNode) else id(node)


# Numbers as YAML 1.2 reads them. PyYAML's YAML 1.1 rules read `5e-4` as text, `017` as octal
# 15, `0b101` as 5 and `1:20` as base 60 (80); here they are 0.0005, 17, text and text.
# `0o17`, `0x1f` and `1_000` still read as numbers; `_` only between digits (`3_` and `1__0`,
# which YAML 1.1 reads as 3 and 10, are text: a typo is refused, not read as another number).
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_DIGITS = "[0-9](?:_?[0-9])*"
SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver(
    _INT, re.compile(rf"^(?:[-+]?{_DIGITS}|0o[0-7](?:_?[0-7])*|0x[0-9a-fA-F](?:_?[0-9a-fA-F])*)$"), list("-+0123456789")
)
SpecLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(rf"^(?:[-+]?(?:{_DIGITS}\.(?:{_DIGITS})?|\.{_DIGITS}|{_DIGITS}(?=[eE]))(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)  # fmt: skip


MAX_INT_DIGITS = sys.int_info.default_max_str_digits  # 4,300: the decimal digits int() reads and str() writes


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer in decimal (leading zeros allowed: `017` is 17), `0o` octal or `0x` hex."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    base = {"0o": 8, "0x": 16}.get(digits[:2], 10)
    digits = (digits[2:] if base != 10 else digits).lstrip("0") or "0"  # leading zeros: allowed, not counted
    # Past Python's limit on decimal digits, int() refuses the text (and str() the value of a long hex
    # or octal one): no field holds any such number.
    value = int(digits, base) if base != 10 or len(digits) <= MAX_INT_DIGITS else None
    if value is None or (base != 10 and value.bit_length() > MAX_INT_DIGITS * 3):  # 3 bits a digit: under log2(10)
        kind = {8: "octal ", 16: "hexadecimal "}.get(base, "")
        raise RefusedYaml(f"an integer of {len(digits):,} {kind}digits: no field holds one so long (the most any "
                          f"holds is {INT64_MAX})", node.start_mark)  # fmt: skip
    return sign * value


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    """A float as SafeLoader builds it; a value written other than 0 that a float cannot tell from
    0 (`1e-400`) is refused at its line (a user test: it read as 0.0, and a weight decay so
    written hashed as the spec with 0)."""
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if reads_as_zero(str(node.value), value):
        raise RefusedYaml(f"{node.value} is too small for a float to tell from 0 (it would read as 0.0): write 0, or a "
                          "larger value", node.start_mark)  # fmt: skip
    return value


SpecLoader.add_constructor(_INT, _construct_int)
SpecLoader.add_constructor(_FLOAT, _construct_float)


def _construct_date(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """A date or time as SafeLoader builds it; one that is none (`2024-13-45`) is a YAML error
    at its line, not a ValueError from nowhere."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value} reads as a date but is none ({exc}); quote it if it is text", node.start_mark
        ) from None


SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date)


class SpecDumper(yaml.SafeDumper):
    """SafeDumper that quotes text as SpecLoader would otherwise read it (a name `08` or `1e5`
    written bare would read back as a number): the resolved spec it writes reads back the same."""


SpecDumper.yaml_implicit_resolvers = {first: list(rs) for first, rs in SpecLoader.yaml_implicit_resolvers.items()}

# Line breaks to YAML 1.1 (which PyYAML reads) beside \n and \r: written raw, plainly or in single
# quotes, they are folded (NEL into a space) or read otherwise by YAML 1.2, where they are not breaks.
YAML11_BREAKS = "\x85\u2028\u2029"


def _represent_text(dumper: SpecDumper, text: str) -> yaml.ScalarNode:
    """Text as SafeDumper writes it, but double-quoted, where those breaks are escapes (\\N, \\L,
    \\P), when it holds one of YAML11_BREAKS: it reads back as the same text."""
    style = '"' if any(c in YAML11_BREAKS for c in text) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


SpecDumper.add_representer(str, _represent_text)


def yaml_too_long(chars: int | None) -> YamlLimit:
    """The error for YAML text of `chars` characters (None: more than MAX_YAML_CHARS, not counted)."""
    counted = f"{chars:,} characters, more than the {MAX_YAML_CHARS:,} allowed" if chars is not None else (
        f"more than the {MAX_YAML_CHARS:,} characters allowed")
    return YamlLimit(f"{counted} (a spec, ablation or criteria file holds a few thousand)")


def read_limited(f: BinaryIO) -> str:
    """The UTF-8 text of an open YAML file (or stream), read no further than the bytes
    MAX_YAML_CHARS + 1 characters can take: a file past the limit (a large file given by mistake,
    an endless stream) is refused (YamlLimit) without being held in memory. Decoded whole, so a
    UnicodeDecodeError gives its place in the file; load_yaml counts the characters."""
    most = 4 * (MAX_YAML_CHARS + 1)  # UTF-8 takes up to 4 bytes a character
    data = f.read(most)
    if len(data) == most:  # more characters than MAX_YAML_CHARS, whatever they are
        raise yaml_too_long(None)
    return data.decode("utf-8")


def read_yaml_text(path: Path) -> str:
    """`read_limited` of the file at `path`; OSError, UnicodeDecodeError or YamlLimit."""
    with open(path, "rb") as f:
        return read_limited(f)


def load_yaml(text: str) -> Any:
    """Parse YAML text with the spec loader; a scalar YAML cannot build (the date `2024-13-45`)
    is a YAML error like any other, not a ValueError."""
    if len(text) > MAX_YAML_CHARS:
        raise yaml_too_long(len(text))
    try:
        loaded = yaml.load(text, Loader=SpecLoader)  # SpecLoader is a SafeLoader subclass: no code runs
        _expanded_size(loaded, {})
        return loaded
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, f"an unquoted value YAML cannot read: {exc}") from None
    except RecursionError:  # aliases of deep nodes nested in one another, past MAX_YAML_DEPTH's check
        raise YamlLimit("nested too deeply to read") from None


def _expanded_size(value: Any, seen: dict[int, tuple[int, int]], depth: int = 0) -> tuple[int, int]:
    """(values, nesting levels) of `value` with its aliases expanded, each shared node walked
    once; a YAMLError past MAX_YAML_VALUES or MAX_YAML_DEPTH (aliases of nested nodes nest too)."""
    if not isinstance(value, (dict, list)):
        return 1, 0
    if id(value) not in seen:
        if depth > MAX_YAML_DEPTH:  # the walk itself stays within Python's recursion limit
            raise YamlLimit(f"nested more than {MAX_YAML_DEPTH} levels deep once its aliases are expanded")
        size, height = 1, 1
        for item in value.values() if isinstance(value, dict) else value:
            n, h = _expanded_size(item, seen, depth + 1)
            size, height = size + n, max(height, h + 1)
            if size > MAX_YAML_VALUES:
                raise YamlLimit(f"more than {MAX_YAML_VALUES:,} values (any aliases expanded)")
        seen[id(value)] = size, height
    size, height = seen[id(value)]
    if depth + height > MAX_YAML_DEPTH:
        raise YamlLimit(f"nested more than {MAX_YAML_DEPTH} levels deep once its aliases are expanded")
    return size, height


def resource_dir(name: str) -> Path:
    """A data folder shipped with the package (`specs`, `templates`).

    Installed, it lives inside the package; in a source checkout (editable
    install) it is the top-level folder beside `auditor/`.
    """
    here = Path(__file__).resolve().parent
    for cand in (here / name, here.parent / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"auditor installation is missing its {name}/ folder")


def names_a_path(arg: str) -> bool:
    """`./x.yaml`, `../x.yaml`, `/abs/x.yaml`, `~/x.yaml`: the user means that file, never a shipped
    one of its name (a bare `x`, or `specs/x.yaml` as in this repository, may be one)."""
    return Path(arg).is_absolute() or arg.startswith(("./", "../", "~", ".\\", "..\\"))


def resolve_spec_path(arg: str) -> Path:
    """A spec path as given, or a shipped spec by name (`smoke`, `specs/smoke.yaml`)."""
    return given_or_shipped(arg, resource_dir("specs"), (("specs",),), "spec")


def shipped_stand_in(arg: str) -> Path | None:
    """The shipped spec that `arg` was read as (`smoke` -> .../specs/smoke.yaml), or None where `arg`
    names the file read (which may be a shipped one, given by its path) or cannot be read."""
    try:
        found, stood_in = locate(arg, resource_dir("specs"), (("specs",),), "spec")
    except InvalidInput:
        return None
    return found if stood_in else None


def shipped_name(arg: str) -> str | None:
    """`specs/NAME.yaml` where `arg` was read as a spec shipped with the package, else None."""
    found = shipped_stand_in(arg)
    return None if found is None else f"specs/{found.relative_to(resource_dir('specs')).as_posix()}"


def given_or_shipped(arg: str, shipped: Path, prefixes: tuple[tuple[str, ...], ...], what: str) -> Path:
    """The `what` file `arg` names, or else a shipped one under `shipped` by name (`locate`)."""
    return locate(arg, shipped, prefixes, what)[0]


def locate(arg: str, shipped: Path, prefixes: tuple[tuple[str, ...], ...], what: str) -> tuple[Path, bool]:
    """(the `what` file `arg` names, False), or else (a shipped one under `shipped` by name, True):
    `x`, `x.yaml`, either after one of `prefixes`, where this repository keeps them. A path
    (`names_a_path`) is only ever the file it names. Only a path where nothing is at all may mean a
    shipped file (or a bare name where a folder is, an earlier run's `--out smoke`): a link to
    nothing, a FIFO, or a folder at a name written as a file is refused (InvalidInput), never replaced."""
    if not arg:  # Path("") is the current folder: an unset variable, not a path
        article = "an" if what[0] in "aeiou" else "a"
        raise InvalidInput(f"the {what} path is empty: give {article} {what} file, or the name of a shipped one")
    try:
        p = home_expanded(arg)
    except ValueError as exc:
        raise InvalidInput(f"{exc}; no {what} there") from None
    found = what_stands_at(p)
    if found == (p, REGULAR_FILE):
        return p, False
    stand_in = None if names_a_path(arg) else _shipped_file(p, shipped, prefixes)
    if stand_in is not None and (found is None or bare_name_of_a_folder(arg, p)):
        return stand_in, True
    if found is None:
        shipped_too = "" if names_a_path(arg) else f" (and no shipped {what} of that name{_shipped_hint(p, shipped, prefixes, what)})"
        shown = arg if arg.isprintable() and arg == arg.strip() else repr(arg)  # `'smoke\n'`: what else was found?
        raise InvalidInput(f"{shown}: {what} file not found{shipped_too}")
    also = f" (the shipped {what} {stand_in} stands in only where nothing is at the path given)" if stand_in else ""
    raise InvalidInput(f"{arg}: {not_readable(p, *found, what)}{also}")


def bare_name_of_a_folder(arg: str, p: Path) -> bool:
    """A bare name (`smoke`: no folder, no .yaml) where a folder stands at `p`, such as an earlier
    run's `--out smoke`: no spec file is meant there, so the name still means the shipped one."""
    return "/" not in arg and not arg.endswith((".yaml", ".yml")) and what_stands_at(p) == (p, "a folder")


def _shipped_file(p: Path, shipped: Path, prefixes: tuple[tuple[str, ...], ...]) -> Path | None:
    """The shipped file a name `p` means (`x`, `x.yaml`, either after one of `prefixes`), or None."""
    parts = _unprefixed(p, prefixes)
    return next((c for c in (shipped / Path(*parts), shipped / f"{Path(*parts)}.yaml") if is_regular_file(c)), None)


def _unprefixed(p: Path, prefixes: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    parts = p.parts
    for prefix in prefixes:
        if parts[: len(prefix)] == prefix and len(parts) > len(prefix):
            return parts[len(prefix) :]
    return parts


def _shipped_hint(p: Path, shipped: Path, prefixes: tuple[tuple[str, ...], ...], what: str) -> str:
    """`; did you mean resnet20_cifar10?` for a name near a shipped one (or that begins one), else
    the shipped names, for a name that means none (`auditor run resnet20`)."""
    names = sorted(f.stem for f in shipped.glob("*.yaml") if f.is_file())
    name = Path(*_unprefixed(p, prefixes)).name.removesuffix(".yaml")
    # the other kind of shipped file (specs/ holds ablations/), which another command takes
    other = {"spec": (shipped / "ablations", "ablation", "auditor ablate"),
             "ablation": (shipped.parent, "spec", "auditor run")}.get(what)  # fmt: skip
    if name and other and is_regular_file(other[0] / f"{name}.yaml"):
        return f"; {name} is a shipped {other[1]}: `{other[2]} {name}`"
    # compared without case, '-' and '_' (a user test: `SMOKE` was offered nothing, `resnet_20`
    # resnet56_cifar10 first)
    plain = {re.sub(r"[-_]", "", n.lower()): n for n in names}
    key = re.sub(r"[-_]", "", name.lower())
    near = [n for folded, n in plain.items() if folded.startswith(key)] if key else []
    near = near or [plain[m] for m in difflib.get_close_matches(key, list(plain), n=3, cutoff=0.6)]
    if near:
        return f"; did you mean {' or '.join(near[:3])}?"
    return f"; the shipped {what}s are {', '.join(names)}" if names else ""


def parse_override(item: str, flag: str = "--set") -> tuple[list[str], Any]:
    """Split `a.b.c=VALUE` into (["a","b","c"], `override_value(VALUE)`). `flag`: how errors name
    the item and write a fix: "--set" (a shell argument), or "override" (an ablation file's item)."""
    key, sep, raw = item.partition("=")
    if (yaml_style := re.fullmatch(r"([^\s:=]+):\s*(\S.*)", item)) and ": " not in yaml_style[2]:
        # `train.epochs: 3` as a file writes it; a value holding `: ` would read as a mapping: no hint
        fixed = written_as(flag, f"{yaml_style[1]}={yaml_style[2].strip()}")
        short = f"'{yaml_style[1]}=...'"  # the value is shown already
        shown = fixed if len(fixed) <= FIX_SHOWN_CHARS else f"--set {short}" if flag == "--set" else short
        raise InvalidInput(f"{set_shown(item, flag)}: expected KEY=VALUE; write it as {shown}")
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise InvalidInput(f"{set_shown(item, flag)}: expected KEY=VALUE with a dotted KEY, e.g. train.epochs=5")
    path = key.split(".")
    refuse_spaced_key(item, flag)
    if UNDECODED.search(key):  # as plain_value_problems says of values
        raise InvalidInput(f"{set_shown(item, flag)}: its KEY is text that is not valid UTF-8 (bytes in another "
                           "encoding); give it in UTF-8")  # fmt: skip
    if len(path) > MAX_YAML_DEPTH:
        raise InvalidInput(f"{set_shown(item, flag)}: a KEY of {len(path)} parts; a spec is nested a few levels deep, "
                           f"and no deeper than {MAX_YAML_DEPTH}")  # fmt: skip
    return path, override_value(raw, item, criterion=path[0] == "criteria", flag=flag)


def refuse_spaced_key(item: str, flag: str = "--set") -> None:
    """Refuse `KEY=VALUE` whose KEY has a part with a space at its start or end (`' seed=5'` from a
    stray quote or space, `'seed = 5'`): no spec key has one. The message writes the fix."""
    key, _, raw = item.partition("=")
    path = key.split(".")
    if all(part == part.strip() for part in path):
        return
    value = raw.lstrip() if key != key.rstrip() else raw  # `seed = 5`: the space after `=` goes too
    fixed = written_as(flag, ".".join(part.strip() for part in path) + "=" + value)
    shown = fixed if len(fixed) <= FIX_SHOWN_CHARS and fixed.isprintable() else "the KEY without them"
    raise InvalidInput(f"{set_shown(item, flag)}: its KEY has a space at the start or end of {key!r}; no spec "
                       f"key has one: write {shown}")  # fmt: skip


def written_as(flag: str, item: str) -> str:
    """How a message writes a corrected `KEY=VALUE` item: a `--set` quoted for the shell, or an
    ablation file's override quoted as a YAML list item."""
    if flag == "--set":
        return f"--set {shlex.quote(item)}"
    return "'" + item.replace("'", "''") + "'"


class SetValueRefused(InvalidInput):
    """A `--set` VALUE that is valid YAML but refused as a spec file's would be (a key given twice,
    a number no float can tell from 0, past the limits): named after the spec, as validation names
    a --set's value, where a spec is read."""


def override_value(raw: str, item: str, criterion: bool = False, flag: str = "--set") -> Any:
    """A `--set` VALUE: parsed as YAML (`""` for a blank one), or, where it is not YAML (`>= 0.9`
    opens a block scalar, `!= diverged` names a tag), the text itself, without a trailing
    `# comment` as YAML would drop it. For a `criterion`, a value that is nothing but a comment
    is blank too (`criteria.X=$UNSET # why`: the gate must not read as null, which removes it);
    elsewhere it is null, as in YAML. Validation still rejects text wherever a string is not
    allowed. A mapping with a key given twice, and YAML nested or expanding past the limits of a
    spec file, are refused (InvalidInput naming `item` as `flag` names it: `parse_override`)."""
    if not raw.strip() or (criterion and raw.strip().startswith("#")):
        return ""
    try:
        value = load_yaml(raw)
        if criterion and value == "" and raw.strip()[:1] in ">|":  # `>1` opens a YAML block, read as empty
            return _without_comment(raw.strip())
        return value
    except (DuplicateKey, YamlLimit, RefusedYaml) as exc:  # valid YAML, refused
        # A value on one line: its column alone places a refused number (a user test: "line 1, column 1").
        one_line = isinstance(exc, RefusedYaml) and not any(c in raw for c in "\n\r" + YAML11_BREAKS)
        raise SetValueRefused(f"{set_shown(item, flag)}: {yaml_problem(exc, raw if one_line else None)}") from None
    except yaml.YAMLError as exc:
        text = raw.strip()
        if text[:1] in "[{" and "undefined alias" in str(getattr(exc, "problem", "")):  # `[*a]`: a list, not text
            raise InvalidInput(f"{set_shown(item, flag)}: {yaml_problem(exc)} (a {flag} VALUE is a YAML document of "
                               "its own, so an alias can name only an anchor within it)") from None  # fmt: skip
        if text[:1] == "{" and (advice := _criteria_mapping_advice(item, text, flag)):
            raise InvalidInput(f"{set_shown(item, flag)}: {yaml_problem(exc)} ({advice})") from None
        if text[:1] in "[{":  # `[50, 75` cut short: a typo, not text (a user test: it became the description)
            raise InvalidInput(f"{set_shown(item, flag)}: {yaml_problem(exc)} (a VALUE that begins with {text[0]!r} is "
                               f"read as a YAML {'list' if text[0] == '[' else 'mapping'}; for text, quote it: "
                               f"{written_as(flag, item.partition('=')[0] + '=' + json.dumps(text))})") from None  # fmt: skip
        if any(c in text for c in "\n\r" + YAML11_BREAKS):  # cut at a `#` lines below, the rest dropped unseen (a user test)
            raise InvalidInput(f"{set_shown(item, flag)}: {yaml_problem(exc)} (a VALUE of more than one line is read "
                               f"as YAML; for text, quote it: {written_as(flag, item.partition('=')[0] + '=' + json.dumps(text))})") from None  # fmt: skip
        return _without_comment(text)


def _criteria_mapping_advice(item: str, text: str, flag: str) -> str | None:
    """How to write `criteria={test_acc: >= 0.5}`, whose unquoted expressions YAML cannot read
    (a user test: quoting the whole mapping, as advised for text, could never be valid), or None
    where `item` sets no criteria mapping, or its entries do not read as METRIC: EXPRESSION."""
    key = item.partition("=")[0].strip()
    pairs = [(metric, expr.strip()) for metric, expr in re.findall(r"([A-Za-z_]\w*)\s*:\s*([^,{}]+)", text)]
    bare = [(metric, expr) for metric, expr in pairs if not _is_quoted(expr)]
    if key != "criteria" or not bare:
        return None
    quoted = ", ".join(f"{metric}: {expr if _is_quoted(expr) else json.dumps(expr)}" for metric, expr in pairs)
    metric, expr = bare[0]
    return (f"in a YAML mapping an expression such as {expr} must be quoted: "
            f"{written_as(flag, f'criteria={{{quoted}}}')}; or set each criterion on its own: "
            f"{written_as(flag, f'criteria.{metric}={expr}')}")


def _is_quoted(text: str) -> bool:
    """Whether `text` is a YAML scalar in quotes ('x' or "x")."""
    return len(text) > 1 and text[0] == text[-1] and text[0] in "'\""


def _without_comment(text: str) -> str:
    """`text` without a trailing `# comment`, as YAML would drop it (a quoted '#' is text)."""
    comment = re.search(r"\s#", text)
    if comment and not any(q in text[: comment.start()] for q in "'\""):
        return text[: comment.start()].rstrip()
    return text


def yaml_problem(exc: yaml.YAMLError, text: str | None = None) -> str:
    """A YAML error in one line with its position (not PyYAML's multi-line excerpt of the text); given
    the `text` it was found in, its column only, for a message that gives the line before it (`yaml_line`)."""
    line = text is None
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        problem = f"{exc.context}, {exc.problem}" if exc.context and exc.problem.startswith("but ") else exc.problem
        if isinstance(exc, DuplicateKey):  # the column of a key says nothing its line does not
            if line and mark.line + 1 != exc.first_line:
                return f"{problem} (line {mark.line + 1}; first given on line {exc.first_line})"
            return problem if line else f"{problem} (first given on line {exc.first_line})"
        if not mark:
            return problem
        if not line and _at_the_end(mark, text):  # the line after the last, column 1: say where it began
            began = exc.context_mark
            opened = f"; {exc.context} from line {began.line + 1}, column {began.column + 1}" if exc.context and began else ""
            return f"{problem} (at the end of the file{opened})"
        return f"{problem} ({f'line {mark.line + 1}, ' if line else ''}column {mark.column + 1})"
    if isinstance(exc, yaml.reader.ReaderError):  # not a MarkedYAMLError: its str() quotes "<unicode string>"
        where = f"character {exc.position + 1}" if text is None else f"column {exc.position - text.rfind(chr(10), 0, exc.position)}"
        return f"{str(exc).splitlines()[0]} ({where})"
    return str(exc)


def _at_the_end(mark: yaml.Mark, text: str) -> bool:
    """Whether YAML stopped at the end of `text` (an unclosed `[` or quote): nothing but blanks
    and comments after `mark`, which may be the line after the last."""
    rest = text[mark.index:].splitlines()
    return all(not r.strip() or r.lstrip().startswith("#") for r in rest)


def yaml_line(exc: yaml.YAMLError, text: str) -> int | None:
    """The line (from 1) of `text` where the YAML error `exc` was found, or None where it has no place."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and mark is not None:
        return max(1, len(text.rstrip().splitlines())) if _at_the_end(mark, text) else mark.line + 1
    if isinstance(exc, yaml.reader.ReaderError):
        return text.count("\n", 0, exc.position) + 1
    return None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with every `--set KEY=VALUE` applied (before validation)."""
    return apply_parsed(raw, parse_overrides(overrides))


def set_args(items: Sequence[str]) -> list[str]:
    """`--set KEY=VALUE` items as a command's arguments again, in their order."""
    return [a for item in items for a in ("--set", item)]


def parse_overrides(items: list[str]) -> list[tuple[str, list[str], Any]]:
    """Each `--set KEY=VALUE` item with its parsed key path and value (`parse_override`)."""
    return [(item, *parse_override(item)) for item in items]


def apply_parsed(
    raw: dict[str, Any], parsed: list[tuple[str, list[str], Any]], shown: Sequence[str] = ()
) -> dict[str, Any]:
    """`apply_overrides` for items parse_override has read already: (item, key path, value).
    `shown`: how each item is named in an error (`SetItem.shown`; default: as `set_items` names them)."""
    out = tree_copy(raw)
    names = list(shown) or [s.shown for s in set_items(parsed)]
    for n, (item, path, value) in enumerate(parsed):
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise InvalidInput(_not_a_section(names[n], path[: i + 1], child, parsed[:n], names))
            node = child
        old = node.get(path[-1])
        if len(path) == 2 and path[0] == "criteria" and value is None:  # removes the gate; elsewhere
            if (unknown := unknown_metric(path[-1])) is not None:  # a typo would remove nothing, unseen
                raise InvalidInput(f"{names[n]}: criteria.{path[-1]}: {unknown}")
            node.pop(path[-1], None)  # (a file, a `criteria={...}` mapping) an entry with no value is refused
            continue
        node[path[-1]] = merged(old, value) if isinstance(old, dict) and merges_into(path, value) else value
    return out


def _not_a_section(name: str, where: list[str], held: Any, before: Sequence[tuple[str, list[str], Any]],
                   names: Sequence[str]) -> str:
    """Why the --set `name` cannot set a key within `where`: it holds a value (a list, say), which
    the file gave, or an earlier --set (named then)."""
    dotted, kind = ".".join(where), "a list" if isinstance(held, list) else "a value"
    if by := [names[i] for i, (_, path, _) in enumerate(before) if _under(where, path)]:
        return f"{name}: {dotted} is {kind} that {by[-1]} gave, not a section"
    return f"{name}: {dotted} is {kind}, not a section{_whole_list_hint(dotted) if isinstance(held, list) else ''}"


def _whole_list_hint(dotted: str) -> str:
    """For a --set of one position of a list (`data.mean.0=0.4`): the list is given whole."""
    return f"; give the whole list: --set '{dotted}=[...]'"


def tree_copy(value: Any) -> Any:
    """A copy of a YAML tree in which no mapping or list is shared, and -0.0 is 0.0: a YAML alias
    (`verify: *e`) becomes a copy of what it names, so a `--set` of one section leaves the other
    alone (copy.deepcopy keeps them shared), and -0.0, the same number as 0, hashes (and resumes)
    as the same spec. Depth and size are bounded by load_yaml's limits."""
    if isinstance(value, dict):
        return {k: tree_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tree_copy(v) for v in value]
    return 0.0 if isinstance(value, float) and value == 0 else value


def merges_into(path: list[str], value: Any) -> bool:
    """Whether a `--set` of `value` at `path` merges into the section there rather than replacing
    it: a mapping does, except for `criteria`, the list of gates, which it replaces."""
    return isinstance(value, dict) and path != ["criteria"]


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra`'s keys set, section by section: `--set 'train.optimizer={lr: 0.05}'`
    changes the learning rate and keeps the optimizer's other settings, as
    `--set train.optimizer.lr=0.05` does."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        out[key] = merged(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def read_yaml(path: Path, what: str = "spec") -> dict[str, Any]:
    """Read a YAML mapping (a `what`) from `path`, raising InvalidInput on any problem."""
    try:
        text = read_yaml_text(path)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read {what}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{not_utf8_place(path, exc)}: not a UTF-8 text file") from None
    except yaml.YAMLError as exc:  # past MAX_YAML_CHARS
        raise InvalidInput(yaml_error_text(path, exc, "")) from None
    if (hidden := hidden_break(text)) is not None:
        raise InvalidInput(f"{path}:{hidden}")
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(yaml_error_text(path, exc, text)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: the {what} must be a YAML mapping, got {type(raw).__name__}")
    return raw


_BREAK_NAMES = MappingProxyType({"\x85": ("NEXT LINE (U+0085)", "\\N"), "\u2028": ("LINE SEPARATOR (U+2028)", "\\L"),
                                  "\u2029": ("PARAGRAPH SEPARATOR (U+2029)", "\\P")})  # fmt: skip


_YAML11_BREAK = re.compile(f"[{YAML11_BREAKS}]")


def hidden_break(text: str) -> str | None:
    """'LINE: why' for the first of YAML 1.1's other line breaks (YAML11_BREAKS) in a file's `text`,
    or None. The YAML reader breaks the line there, while editors, grep and a diff show none: a
    setting after one inside a comment is read, unseen (a user test), and every later line is
    counted one further on. LINE as an editor counts it."""
    if (found := _YAML11_BREAK.search(text)) is None:
        return None
    at = found.start()
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    name, escape = _BREAK_NAMES[text[at]]
    return (f"{line}: column {column} holds a {name}, which YAML reads as a line break though editors and grep show "
            "none (text after it, in a comment too, would be read as the next line); remove it, or write it as "
            f"{escape} inside a double-quoted string")


NEWLINE = b"\n"


def not_utf8_place(path: Path | str, exc: UnicodeDecodeError) -> str:
    """`path:LINE` of the first byte of a file that is not UTF-8, for an editor to go to."""
    data = exc.object if isinstance(exc.object, bytes) else b""
    return f"{path}:{data.count(NEWLINE, 0, exc.start) + 1}" if data else str(path)


def yaml_error_text(path: Path | str, exc: yaml.YAMLError, text: str) -> str:
    """The message for a YAML file at `path` (holding `text`) that `load_yaml` refused with `exc`:
    not valid YAML, a key given twice, or valid YAML past the limits of a spec, ablation or criteria
    file; as `path:LINE:` where the error has a line, as field errors are given, for an editor."""
    line = yaml_line(exc, text)
    where = f"{path}:{line}" if line is not None else f"{path}"
    problem = yaml_problem(exc, None if line is None else text)
    if isinstance(exc, YamlLimit):
        return f"{where}: YAML too large to read: {problem}"
    if isinstance(exc, (DuplicateKey, RefusedYaml)):  # valid YAML, refused
        return f"{where}: {problem}"
    return f"{where}: not valid YAML{quote_hint(exc, text)}: {problem}"


def quote_hint(exc: yaml.YAMLError, text: str) -> str:
    """A hint for the YAML error `exc` in `text`: to quote criteria when the line YAML stopped at
    holds an unquoted `>= 0.9`; to drop a tag (`!!python/object:...`); to indent a line that sits
    deeper than a `key: value` line above it; or to quote a value with ": " in it (`description:
    a: b`), which YAML reads as a second key. Empty where none applies."""
    mark = getattr(exc, "problem_mark", None)
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    problem = str(getattr(exc, "problem", ""))
    if re.search(r":\s*(?:[<>=]|!=)", line):  # `!=` is read as a tag, `!!python/...` is not a criterion
        return ' (quote expressions, e.g. test_acc: ">= 0.85")'
    if problem.startswith("could not determine a constructor for the tag"):  # `!!python/object:...`
        return " (a YAML tag names a type to build, and a spec holds none: remove the tag, or quote the value if it is text)"
    # Deeper than a `key: value` line: read as more of that value, or, after a comment ended it, as a stray block.
    nested = ("mapping values are not allowed", "expected <block end>, but found '<block mapping start>'")
    deeper = problem.startswith(nested) and mark is not None and mark.line < len(lines)
    if deeper and (above := _valued_key_above(lines, mark.line)) is not None:
        return (f" (line {mark.line + 1} is indented deeper than {above!r}, which has a value already: a key "
                f"holds a value or keys, not both; indent line {mark.line + 1} as {above!r} is if it is a key "
                f"of its own, or quote the value if line {mark.line + 1} goes on with it)")  # fmt: skip
    if problem.startswith(nested[0]):
        return (' (an unquoted value holds ": ", which YAML reads as the start of a mapping: quote the value if it '
                'is text, e.g. description: "Setup: resnet20", or give a nested key a line of its own)')
    return ""


def _valued_key_above(lines: list[str], at: int) -> str | None:
    """The key of the nearest line above line `at` that has content, where that line is `key: value`
    and line `at` is indented deeper than it (so YAML read line `at` as more of that value)."""
    indent = len(lines[at]) - len(lines[at].lstrip(" "))
    for above in reversed(lines[:at]):
        if not above.strip() or above.lstrip().startswith("#"):
            continue
        m = re.match(r"( *)(- +)?([^\s:#-][^:#]*?):\s+[^\s#]", above)  # `key: value`, or a list item's
        return m[3] if m and len(m[1]) + len(m[2] or "") < indent else None
    return None


MAX_ERRORS_SHOWN = 20  # a file's validation errors, one a line; the rest are counted


def format_validation_error(
    source: str, err: ValidationError, model: type[BaseModel] | None = None, sets: Sequence[SetItem] = (),
    given: Mapping[str, Any] | None = None, lines: Mapping[tuple[str, ...], int] | None = None,
    keys_taken: Callable[[Sequence[str]], str] | None = None,
) -> str:
    """One line per error: `source: field.path: message, got VALUE`.

    A message that already shows the offending value (", got ...") is not
    given a second one; "@key: why" from a validator extends the path. An
    unknown key of `model` gets the nearest key the schema has, if one is
    near (a typo). An error in what a `--set` of `sets` wrote names that
    `--set` after `source` (`origin`); `given`, the file's own mapping, tells a key the file
    holds from one that a `--set` below it made (`--set trian.epochs=5` made `trian`); `lines`, its
    keys' lines, puts the line after `source` where the file is to blame (`spec.yaml:12: train.lr: ...`);
    `keys_taken(path)` says what the place of an unknown key takes, for another file than a spec.
    """
    errors = err.errors()
    # Each error is looked up in the file: thousands of keys took minutes, so only the first are said.
    said = [_error_line(source, e, model, sets, given, lines, keys_taken) for e in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        said.append(f"{source}: and {len(errors) - MAX_ERRORS_SHOWN:,} more errors, not shown: mend those above, "
                    "then give the command again")  # fmt: skip
    return "\n".join(said)


def _error_line(
    source: str, e: Any, model: type[BaseModel] | None, sets: Sequence[SetItem], given: Mapping[str, Any] | None,
    lines: Mapping[tuple[str, ...], int] | None, keys_taken: Callable[[Sequence[str]], str] | None,
) -> str:
    """One pydantic error `e` as `format_validation_error` says it (its arguments: see there)."""
    parts = [str(p) for p in e["loc"] if not str(p).startswith("function-")]
    path = [p for p in parts if p != "[key]"]  # a key holding a dot stays one key
    loc = ".".join(path) + (" (the name)" if "[key]" in parts else "")
    msg = e["msg"].removeprefix("Value error, ")
    # A whole section (a cross-field check) is no help as the offending value.
    whole_section = e["type"] == "value_error" and isinstance(e.get("input"), dict)
    got = "" if e["type"] == "missing" or whole_section else f", got {short_value(e.get('input'))}"
    checked = list(path)  # the section a check across its fields was run on, or the field itself
    if msg.startswith(SUBKEY) and ": " in msg:
        key, msg = msg[len(SUBKEY) :].split(": ", 1)
        loc, got = f"{loc}.{key}" if loc else key, ""  # the message quotes the expression itself
        path += key.split(".")
    if ", got " in msg or (isinstance(e.get("input"), str) and repr(e["input"]) in msg):  # shown already
        got = ""
    msg = msg[0].lower() + msg[1:] if msg else msg
    loc, msg, got = _typed_message(e, parts, loc, msg, got, model, path, keys_taken)
    # An unknown key, or a value where a --set below it made a mapping (`data.mean.0=0.4`), that
    # the file does not hold: the --sets below it made it.
    made = (e["type"] == "extra_forbidden" or (isinstance(e.get("input"), dict) and not whole_section)) and not (
        given is not None and _at(given, path) is not _ABSENT)
    if made and e["type"] == "list_type" and all(str(k).isdigit() for k in e["input"]):
        got += _whole_list_hint(loc)
    at = _written_key(lines, path, e.get("input")) if e["type"] == "invalid_key" and lines else path
    blamed = _at_line(origin(source, path, sets, checked, made), source, lines, at)
    return f"{blamed}: {loc or '(top level)'}: {msg}{got}"


def _written_key(lines: Mapping[tuple[str, ...], int], path: list[str], key: Any) -> list[str]:
    """`path`, whose last part is a key YAML read as other than text (`~`, `1`), with that key as
    the file writes it, for its line (a user test: a top-level `~: 2` was given no line); `path`
    where no key of its section reads as `key`."""
    section = tuple(path[:-1])
    for written in lines:
        if len(written) != len(path) or written[:-1] != section:
            continue
        try:
            read = load_yaml(written[-1])
        except (yaml.YAMLError, ValueError):
            continue
        if read == key and type(read) is type(key):
            return list(written)
    return path


def _typed_message(
    e: Any, parts: list[str], loc: str, msg: str, got: str, model: type[BaseModel] | None, path: list[str],
    keys_taken: Callable[[Sequence[str]], str] | None,
) -> tuple[str, str, str]:
    """(loc, msg, got) of the pydantic error `e` in plain words for its type: an unknown key with
    its nearest known one, a key that is not text, a value YAML read as another type than it looks
    (quoted, unquoted, `key:value` with no space), a name in another encoding, an infinity."""
    kind, given = e["type"], e.get("input")
    if kind == "extra_forbidden":
        taken = keys_taken(path) if keys_taken else "not in the spec schema"
        msg, got = f"unknown key ({taken})", _unknown_key_hint(model, path)
    if kind == "invalid_key":  # loc ends with the key itself, as text
        loc, yaml_kind = ".".join(parts[:-1]), _yaml_kind(given)
        msg = f"a key must be text, got {value_text(given)}"
        got = f": YAML reads that unquoted key as {yaml_kind}; quote it" if yaml_kind else ""
    if (plain := _PLAIN_MESSAGES.get(kind)) is not None:
        msg = plain(e.get("ctx") or {})
    if kind == "model_type" and isinstance(given, str):  # `train:` then `  epochs:3`
        got += _colon_hint(model, path, given, "text") if model else ""
    if kind == "string_unicode":  # `name`'s pattern is checked before plain_value_problems would say it
        msg, got = NOT_UTF8, ""
    if kind == "finite_number" and isinstance(given, float) and math.isinf(given):
        sign = "-" if given < 0 else ""
        got += f" (YAML's {sign}.inf, or a number beyond float range such as {sign}1e999)"
    if kind == "string_type" and (yaml_kind := _yaml_kind(given)):
        got = f", got {value_text(given)}: YAML reads that unquoted value as {yaml_kind}; quote it"
    if kind in QUOTED_TYPES and (quoted := _quoted_kind(given, QUOTED_TYPES[kind])):
        got = f", got the text {given!r}: it is quoted (or tagged !!str); write the {quoted} without quotes or tag"
    return loc, msg, got


class SetItem(NamedTuple):
    """A `--set KEY=VALUE` item (or a flag that sets a field) for naming it in an error."""

    shown: str  # as the user gave it: `--set 'train.epochs=2'`, `--steps 5`
    path: tuple[str, ...]  # KEY's parts
    value: Any  # VALUE as parsed


def parse_sets(overrides: list[str], given_as: Sequence[str] = ()) -> list[SetItem]:
    """`--set` items (and a command's own flags, `given_as`) parsed and named, as `load_spec`
    names them in its errors: for a later stage's errors to name the same ones."""
    return set_items(parse_overrides(overrides), given_as)


def set_items(parsed: Sequence[tuple[str, list[str], Any]], given_as: Sequence[str] = ()) -> list[SetItem]:
    """`parse_overrides`' items as SetItems; `given_as` names the last items, which a command set
    from flags of its own (`--steps 5`), by position: a --set of the same text is the user's."""
    shown = [set_shown(item) for item, _, _ in parsed[: len(parsed) - len(given_as)]] + list(given_as)
    return [SetItem(name, tuple(path), value) for name, (_, path, value) in zip(shown, parsed, strict=True)]


def removes_nothing(shown: str, metric: str, held: Mapping[str, Any]) -> str:
    """The note for a `--set criteria.METRIC=null` (named `shown`) where the criteria before it
    (`held`) hold no METRIC."""
    holding = f"they hold {', '.join(held)}" if held else "they hold none"
    return f"{shown} removes nothing: the criteria before it hold no {metric} ({holding})"


def unmatched_removals(given: Mapping[str, Any], sets: Sequence[SetItem]) -> list[str]:
    """A note (`removes_nothing`) for each `--set criteria.METRIC=null` that removes nothing: the
    file's criteria (`given`, the file's mapping), as the `--set`s before it left them, hold no
    METRIC. Valid, as in `check`, but a misremembered gate name would otherwise go unseen."""
    held = dict(criteria) if isinstance(criteria := given.get("criteria"), dict) else {}
    notes = []
    for s in sets:
        if s.path == ("criteria",):  # `criteria={...}` or `criteria=null` replaces them all
            held = dict(s.value) if isinstance(s.value, dict) else {}
        elif len(s.path) == 2 and s.path[0] == "criteria" and s.value is not None:
            held[s.path[1]] = s.value
        elif len(s.path) == 2 and s.path[0] == "criteria":
            if s.path[1] not in held:
                notes.append(removes_nothing(s.shown, s.path[1], held))
            held.pop(s.path[1], None)
    return notes


def origin(
    source: str, path: Sequence[str], sets: Sequence[SetItem], checked: Sequence[str] | None = None, made: bool = False
) -> str:
    """What an error at `path` (key by key) is to be blamed on: `source --set ITEM` for the last
    `--set` that wrote it (or a section holding it, where the value it gave holds it), rather than
    the spec file alone; `source with --set ...` for the `--set`s that wrote elsewhere in the
    section a check across its fields found wrong (`checked`: `train` for its epochs against its
    warm-up; with the whole spec checked, only how many there are)."""
    if wrote := [s.shown for s in sets if _under(path, s.path) and _wrote(s, path[len(s.path) :])]:
        return f"{source} {wrote[-1]}"
    if made and (below := [s.shown for s in sets if _under(s.path, path)]):  # `trian.epochs=5` made `trian`
        return f"{source} {' '.join(dict.fromkeys(below))}"
    section = list(path if checked is None else checked)
    inside = list(dict.fromkeys(s.shown for s in sets if (len(s.path) > len(section) and _under(s.path, section))
                                or (_under(section, s.path) and _holds(s, section[len(s.path) :]))))
    if not inside:
        return source
    if not section and len(inside) > 1:  # verify's `--epochs N` sets a field too, but is no --set item
        kind = "--set items" if all(s.startswith("--set ") for s in inside) else "command-line settings"
        return f"{source} with its {len(inside)} {kind}"
    return f"{source} with {' '.join(inside)}"


def _wrote(item: SetItem, rest: Sequence[str]) -> bool:
    """Whether `item`, which set the section holding `rest`, wrote what is at `rest` in it: a
    mapping merges into the section, so it wrote only the keys it holds (`criteria` it replaces)."""
    value = item.value
    if not merges_into(list(item.path), value):
        return True
    for part in rest:
        if not isinstance(value, dict):  # a value (a list, say) the set gave, replacing what was there
            return True
        value = {str(k): v for k, v in value.items()}  # `{1: 3}`: the error names the key as text
        if part not in value:
            return False
        value = value[part]
    return True


_ABSENT = object()


def _at(tree: Any, path: Sequence[str]) -> Any:
    """What the YAML tree `tree` holds at `path` (key by key, keys compared as text: `{1: 3}`),
    or _ABSENT."""
    for part in path:
        if not isinstance(tree, dict):
            return _ABSENT
        tree = tree[part] if part in tree else next((v for k, v in tree.items() if str(k) == part), _ABSENT)
    return tree


def written_by(sets: Sequence[SetItem], path: Sequence[str]) -> tuple[SetItem, Any] | None:
    """The last of `sets` that gave the key at `path` a value, with that value, or None (a set
    that replaced a section holding it by a value, `train=null`, gave it none)."""
    for item in reversed(sets):
        if _under(path, item.path) and (value := _at(item.value, path[len(item.path) :])) is not _ABSENT:
            return item, value
    return None


def _holds(item: SetItem, rest: Sequence[str]) -> bool:
    """Whether the mapping `item` gave for a section holding `rest` gave keys within `rest`
    (`--set 'train={epochs: 1}'` for a check across `train`)."""
    value = _at(item.value, rest)
    return isinstance(value, dict) and bool(value)


def path_parts(where: str) -> list[str]:
    """A dotted path as plain_value_problems writes it (`data.mean[0]`), key by key."""
    return re.findall(r"[^.\[\]]+", where)


def _unknown_key_hint(model: type[BaseModel] | None, path: Sequence[str]) -> str:
    """`; did you mean ...?` for an unknown key at `path`, or how to nest a key written with dots
    (`train.epochs: 3` is one key in YAML); '' where nothing is near."""
    if model is None or not path:
        return ""
    if hint := _colon_hint(model, path[:-1], path[-1], "one key"):  # `{train:120}` in a flow mapping
        return hint
    if "." in path[-1]:  # nested as meant, or as the nearest key of that nesting
        meant = [*path[:-1], *path[-1].split(".")]
        if _is_key(model, meant):
            found = meant
        else:
            found = near.split(" or ")[0].split(".") if (near := nearest_key(model, meant)) else []
        if len(found) < len(path) or found[: len(path) - 1] != list(path[:-1]):
            return ""
        nested = found[len(path) - 1 :]
        if len(nested) < 2:  # nothing to nest (`schedule.epochs` means `train.epochs`): the key meant
            return f"; did you mean {'.'.join(found)}?"
        shown = "".join(f"{k}: {{" for k in nested[:-1]) + f"{nested[-1]}: ..." + "}" * (len(nested) - 1)
        return f"; a key with dots in it is one key in YAML: nest it, as {shown}"
    near = nearest_key(model, path)
    return f"; did you mean {near}?" if near else ""


def _colon_hint(model: type[BaseModel], section: Sequence[str], text: str, read_as: str) -> str:
    """`; YAML reads 'epochs:3' as ...` where `text` is `KEY:VALUE`, KEY a key of `section`: no
    space after the colon, so YAML read one key (in a flow mapping) or text (on a line of its own)."""
    key, colon, value = text.partition(":")
    if not colon or not value.strip() or not _is_key(model, [*section, key.strip()]):
        return ""
    return f"; YAML reads {text!r} as {read_as}, with no space after its colon: write {key.strip()}: {value.strip()}"


def _is_key(model: type[BaseModel], path: Sequence[str]) -> bool:
    section = _section_at(model, path[:-1])
    return section is not None and bool(path) and path[-1] in section.model_fields


def _section_at(model: type[BaseModel], path: Sequence[str]) -> type[BaseModel] | None:
    """The section at `path` in `model`, or None where `path` leads to no section."""
    section: type[BaseModel] | None = model
    parts = list(path)
    while parts and section is not None:
        part = parts.pop(0)
        if parts and (entry := _entry_section(section, part)) is not None:  # the next key names an entry
            parts.pop(0)
            section = entry
        else:
            section = _subsection(section, part)
    return section


def _entry_section(section: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The section each entry of `key` is, where it holds a mapping of them (`dict[str, X]`: an
    ablation's `reference.<variant>`), else None."""
    field = section.model_fields.get(key)
    if field is None or get_origin(field.annotation) is not dict:
        return None
    value = get_args(field.annotation)[-1]
    return value if _is_section(value) else None


def nearest_key(model: type[BaseModel], parts: Sequence[str]) -> str | None:
    """The dotted path(s) of the key nearest to an unknown key at `parts`, where one is near, in
    this order: that name in the section's own sections (`train.warmup_epochs`); that name where
    it shares a section with `parts` (`train.schedule.epochs` -> `train.epochs`); a near name in
    the section itself (`train.epoch` -> `train.epochs`); that name anywhere (`data.seed` ->
    `seed`). None where none is, or `parts` is not in a section (a criterion's metric)."""
    if not parts:
        return None
    key, parent = parts[-1], tuple(parts[:-1])
    if (section := _section_at(model, parent)) is None:
        return None
    if cased := [f for f in section.model_fields if f.lower() == key.lower() and f != key]:  # `TRAIN` -> `train`
        return ".".join([*parent, cased[0]])
    named = [p for p in _key_paths(model) if p[-1] == key]
    if below := [p for p in named if _under(p, parent)]:
        return " or ".join(".".join(p) for p in below[:2])
    if related := sorted((p for p in named if _shared(p, parent)), key=lambda p: -_shared(p, parent)):
        return ".".join(related[0])
    if near := difflib.get_close_matches(key, list(section.model_fields), n=1, cutoff=0.6):
        return ".".join([*parent, near[0]])
    return ".".join(named[0]) if named else None


def _under(path: Sequence[str], prefix: Sequence[str]) -> bool:
    """Whether `path` is `prefix` or lies within it."""
    return _shared(path, prefix) == len(prefix)


def _shared(a: Sequence[str], b: Sequence[str]) -> int:
    """How many leading keys two paths share."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _subsection(section: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The section `key` of `section` holds, or None where it holds a value (or is no key of it)."""
    field = section.model_fields.get(key)
    if field is None:
        return None
    # `X | None` is section X; `dict[str, X]` (an ablation's reference) is a mapping of them, no section
    union = get_origin(field.annotation) in (Union, UnionType)
    found = [t for t in (field.annotation, *(get_args(field.annotation) if union else ())) if _is_section(t)]
    return found[0] if found else None


def _key_paths(section: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a section and the sections within it, breadth-first (nearest first)."""
    here = [(*prefix, key) for key in section.model_fields]
    inner = [p for key in section.model_fields if (sub := _subsection(section, key)) for p in _key_paths(sub, (*prefix, key))]
    return here + inner


def _is_section(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


# pydantic's wording where it speaks of Python rather than of the spec
_PLAIN_MESSAGES = {
    "model_type": lambda ctx: "must be a section (a mapping of settings)",
    "dict_type": lambda ctx: "must be a mapping",
    "too_short": lambda ctx: f"needs at least {_values(ctx.get('min_length'))}",
    "too_long": lambda ctx: f"takes at most {_values(ctx.get('max_length'))}",
    "string_pattern_mismatch": lambda ctx: "may contain only ASCII letters, digits, '.', '_' and '-', and may "
    "not start with '.'"
    if ctx.get("pattern") == NAME_PATTERN else f"must match {ctx.get('pattern')}",
    "string_too_short": lambda ctx: "must not be empty" if ctx.get("min_length") == 1
    else f"needs at least {ctx.get('min_length')} characters",
}


# The types a quoted value is text to (`'true'`, `"5"`), with what they want and its name.
QUOTED_TYPES: Mapping[str, tuple[tuple[type, ...], str]] = MappingProxyType({
    "bool_type": ((bool,), "boolean"), "int_type": ((int,), "integer"), "float_type": ((int, float), "number"),
})  # fmt: skip


def _quoted_kind(value: Any, wanted: tuple[tuple[type, ...], str]) -> str | None:
    """What the text `value` would have been unquoted, where that is what the field wants (the
    message had read "should be a valid boolean, got 'true'"); else None."""
    if not isinstance(value, str):
        return None
    try:
        unquoted = load_yaml(value)
    except yaml.YAMLError:
        return None
    types, name = wanted
    if isinstance(unquoted, float) and not math.isfinite(unquoted):  # refused unquoted too (`.nan`)
        return None
    is_bool = isinstance(unquoted, bool)
    return name if isinstance(unquoted, types) and (is_bool == (bool in types)) else None


def _values(n: object) -> str:
    return count(n, "value") if isinstance(n, int) else f"{n} values"


def _yaml_kind(value: Any) -> str | None:
    """What YAML made of an unquoted scalar meant as text (`on`, `2024-01-01`, `1e3`, `null`), or None."""
    if isinstance(value, bool):
        return "a boolean (as it does on/off/yes/no/true/false)"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "nothing (null, as it does an empty value, null and ~)"
    return None


def value_text(value: Any) -> str:
    """A spec value as its YAML would show it (`null`, `true`, `2024-01-01`, not Python's None,
    True, datetime.date(2024, 1, 1)); text in quotes."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_inner_text(k)}: {_inner_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inner_text(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (datetime.date, datetime.time)):  # YAML's unquoted dates and times, at any depth
        return value.isoformat()
    return repr(value)


def _inner_text(value: Any) -> str:
    """An item of a list or mapping: text double-quoted, as a JSON-like flow collection shows it."""
    return json.dumps(value) if isinstance(value, str) else value_text(value)


SET_SHOWN_CHARS = 80  # a --set item longer than this is named by its start and its length
FIX_SHOWN_CHARS = SET_SHOWN_CHARS + len("--set ")  # a fix written out longer than this is described instead


def set_shown(item: str, flag: str = "--set") -> str:
    """How a message names a --set item: quoted as given, or, where it is long (a pasted list, a
    generated value), its start and its length, so that the message stays readable."""
    if len(item) <= SET_SHOWN_CHARS:
        return f"{flag} {item!r}"
    return f"{flag} {clip(item)!r} ({len(item)} characters)"


def clip(text: str, limit: int = SET_SHOWN_CHARS) -> str:
    """`text`, or its first `limit` - 3 characters and '...' where it is longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_value(value: Any) -> str:
    """The offending value as the spec's YAML would show it, shortened."""
    return clip(value_text(value))


def validate_spec(
    raw: dict[str, Any], source: str, recorded: bool = False, sets: Sequence[SetItem] = (),
    given: Mapping[str, Any] | None = None, lines: Mapping[tuple[str, ...], int] | None = None,
) -> Spec:
    """Validate a raw mapping; raise InvalidInput naming `source` (or the `--set` of `sets` that
    wrote what is wrong) and field paths. `recorded`: a spec a run recorded, held only to the
    checks there were when runs could record it (RECORDED); `given`: the file's own mapping,
    before the `--set`s (`format_validation_error`); `lines`: its keys' lines (`key_lines`)."""
    if (deep := nested_past(raw, MAX_YAML_DEPTH)) is not None:  # a record's JSON nests deeper than YAML may
        if not isinstance(raw, dict):  # what it is says more than where it is deep
            raise InvalidInput(f"{source}: (top level): must be a section (a mapping of settings), got a "
                               f"{type(raw).__name__}")  # fmt: skip
        raise InvalidInput(f"{source}: {deep}: nested more than {MAX_YAML_DEPTH} levels deep (a spec nests a few)")
    try:
        spec = Spec.model_validate(tree_copy(raw), context=RECORDED if recorded else None)
    except ValidationError as err:
        raise InvalidInput(format_validation_error(source, err, Spec, sets, given, lines)) from None
    # After the fields' own bounds, which say more; on what is recorded (1e23 for a float is a float).
    if not recorded and (problems := plain_value_problems(resolved := resolved_dict(spec))):
        raise InvalidInput("\n".join(f"{_at_line(origin(source, path_parts(where), sets), source, lines, path_parts(where))}: "
                                     f"{where}: {why}" for where, why in problems[:10]))  # fmt: skip
    if not recorded and len(text := resolved_yaml(resolved)) > MAX_YAML_CHARS:  # the file a run writes, read again
        raise InvalidInput(f"{source}: its resolved spec (spec.resolved.yaml, which a run writes and its sheet retrains "
                           f"from) would be {len(text):,} characters, more than the {MAX_YAML_CHARS:,} a spec file may "
                           "hold: shorten its longest text (the description?)")  # fmt: skip
    return spec


def nested_past(tree: Any, limit: int) -> str | None:
    """The dotted path of the first mapping or list (in the file's order) that makes `tree` more
    than `limit` levels deep, `tree` itself the first level (as a YAML file is held to
    MAX_YAML_DEPTH), or None. Walked without recursion: validation and its messages recurse, and a
    tree deep enough to reach Python's recursion limit (JSON read back from a record may be) must
    be refused first."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if len(path) >= limit:  # its first parts only: the whole path is `limit` parts long
            return ".".join(path[:3]) + (".…" if len(path) > 3 else "")
        items = list(node.items() if isinstance(node, dict) else enumerate(node))
        stack.extend((value, (*path, str(key))) for key, value in reversed(items))  # the first popped first
    return None


def _at_line(blamed: str, source: str, lines: Mapping[tuple[str, ...], int] | None, path: Sequence[str]) -> str:
    """`source:LINE` where the error is the file's own (not a --set's) and the file holds its key or a
    section of it; else `blamed` as it is."""
    line = line_of(lines, path) if lines and blamed == source else None
    return blamed if line is None else f"{source}:{line}"


INT64_MAX = 2**63 - 1  # what audit.json's reader (and torch, numpy) hold as an integer
# Lone surrogates: bytes an argument's encoding could not decode (Python's surrogateescape), which
# no file can record as text.
UNDECODED = re.compile("[\ud800-\udfff]")
NOT_UTF8 = "text that is not valid UTF-8 (bytes in another encoding, as from a --set argument in one); give it in UTF-8"


def plain_value_problems(tree: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted path, why) for each value a record could not hold: an integer beyond 64 bits
    (a run would train, then fail writing its record), or text with characters that are not
    Unicode (bytes an argument's encoding could not decode, which no file can record)."""
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in plain_value_problems(v, f"{path}.{k}" if path else str(k))]
    if isinstance(tree, list):
        return [p for i, v in enumerate(tree) for p in plain_value_problems(v, f"{path}[{i}]")]
    if isinstance(tree, int) and not isinstance(tree, bool) and abs(tree) > INT64_MAX:
        return [(path, f"an integer of {len(str(abs(tree)))} digits; at most {INT64_MAX} (2^63 - 1) can be recorded")]
    if isinstance(tree, str) and UNDECODED.search(tree):
        return [(path, NOT_UTF8)]
    return []


FileKind = Literal["spec", "ablation", "record", "ablation record"]


def file_kind(raw: dict[str, Any]) -> FileKind | None:
    """Which of auditor's files a mapping plainly is, for a message when one is given where another
    goes: a spec has a section (train, model, data) and no variants; an ablation file names a base
    spec and variants, and no section; a run's audit.json and an ablation page's ablations.json,
    records auditor writes (JSON is YAML), carry a schema version. None: none plainly (the
    validator says what is wrong)."""
    if "schema_version" in raw and {"run", "spec", "verdict"} <= raw.keys():
        return "record"
    if "schema_version" in raw and {"ablation", "variants"} <= raw.keys():
        return "ablation record"
    sections = {"train", "model", "data"} & raw.keys()
    if sections and "variants" not in raw:
        return "spec"
    if {"base", "variants"} <= raw.keys() and not sections:
        return "ablation"
    return None


def record_given(path: str | Path, kind: FileKind | None, wanted: str = "a spec") -> str | None:
    """The refusal of a record auditor wrote (`kind`), given where `wanted` goes (a spec, an
    ablation file: a user test, `verify .../audit.json`, listed dozens of unknown keys), or None
    for another kind."""
    beside = Path(str(path)).expanduser().parent
    if kind == "record":
        return (f"{path}: a run's audit record (audit.json), not {wanted}; the spec that run trained is in "
                f"{beside / 'spec.resolved.yaml'}")  # fmt: skip
    if kind == "ablation record":
        return (f"{path}: an ablation page's record (ablations.json), not {wanted}; the page beside it, "
                f"{beside / ABLATION_PAGE}, names the ablation file it was made from")  # fmt: skip
    return None


def load_spec(path: str | Path, overrides: list[str] | None = None, given_as: Sequence[str] = ()) -> Spec:
    """Read, override and validate a spec file (or a shipped spec by name). `given_as`: how the
    last overrides were given, where a command made them from flags of its own (`--steps 5`)."""
    return load_spec_read(path, overrides, given_as)[0]


def load_spec_read(
    path: str | Path, overrides: list[str] | None = None, given_as: Sequence[str] = ()
) -> tuple[Spec, ReadSpec]:
    """`load_spec`, with what was read before validation: for notes on the file and its --sets."""
    read = read_spec(path, overrides, given_as)
    return validate_spec(read.raw, str(path), sets=read.items, given=read.given, lines=read.lines), read


class ReadSpec(NamedTuple):
    """A spec file read and overridden, not yet validated."""

    raw: dict[str, Any]  # the file's mapping with the overrides applied
    given: dict[str, Any]  # the file's mapping as written
    items: list[SetItem]  # the overrides, as given
    lines: Mapping[tuple[str, ...], int]  # the file's line of each key (`key_lines`)


def read_spec(path: str | Path, overrides: list[str] | None = None, given_as: Sequence[str] = ()) -> ReadSpec:
    """What `load_spec` does before validation: find and read the file, apply the overrides.
    Needs no torch (validation does, for the model registry), so a command can refuse a spec
    that cannot be read before it spends seconds importing torch; raises InvalidInput."""
    # A malformed --set first: `--set train.epochs 1` left `1` as the spec.
    try:
        parsed = parse_overrides(overrides or [])
    except SetValueRefused as exc:  # well-formed, so named after the spec (a user test)
        raise InvalidInput(f"{path} {exc}") from None
    p = resolve_spec_path(str(path))
    given = read_yaml(p)
    if (refusal := record_given(path, kind := file_kind(given))) is not None:
        raise InvalidInput(refusal)
    if kind == "ablation":  # given where a spec goes
        quoted = shlex.quote(path_arg(path))
        raise InvalidInput(f"{path}: an ablation file (it names a base spec and variants), not a spec; list its runs "
                           f"with `auditor ablate {quoted} --dry-run`, or train them with `auditor ablate {quoted} "
                           "--out DIR`")  # fmt: skip
    items = set_items(parsed, given_as)
    try:
        raw = apply_parsed(given, parsed, [s.shown for s in items])
    except InvalidInput as exc:  # a --set into what the file holds as a value: named with the file
        raise InvalidInput(f"{path} {exc}") from None
    if not raw.get("name") and not given:
        raise InvalidInput(f"{path}: the spec file sets nothing (it is empty or holds only comments); a "
                           "spec needs at least `name: <run name>`")  # fmt: skip
    return ReadSpec(raw, given, items, spec_lines(path, p))


def spec_lines(path: str | Path, file: Path | None = None) -> Mapping[tuple[str, ...], int]:
    """The key lines (`KeyLines`) of the spec file `path` names (`file`, where resolved already);
    none for a shipped spec by name (`smoke` is no path the user can open)."""
    if not Path(str(path)).expanduser().is_file():
        return {}
    return KeyLines(file if file is not None else resolve_spec_path(str(path)))


def field_source(source: str, field: str, sets: Sequence[SetItem] = (), lines: Mapping[tuple[str, ...], int] | None = None) -> str:
    """How an error at `field` (dotted) of the spec `source` is prefixed, as validation prefixes its
    own: the --set that wrote it (`origin`), else `source:LINE` where the file holds the key or its
    section (`lines`, default: the file's own, read only now)."""
    where = path_parts(field)
    return _at_line(origin(source, where, sets), source, spec_lines(source) if lines is None else lines, where)


class KeyLines(Mapping[tuple[str, ...], int]):
    """`key_lines(path)` (or `text_key_lines(text)`, for text read already: a criteria file on stdin),
    read only when an error asks for a line: a valid file is not parsed twice."""

    def __init__(self, path: Path, text: str | None = None) -> None:
        self.path, self.text = path, text

    @cached_property
    def _lines(self) -> dict[tuple[str, ...], int]:
        return key_lines(self.path) if self.text is None else text_key_lines(self.text)

    def __getitem__(self, key: tuple[str, ...]) -> int:
        return self._lines[key]

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)


def key_lines(path: Path) -> dict[tuple[str, ...], int]:
    """The line (from 1) of each key of the YAML file at `path`, by its path of keys (list items by
    index): for an error to say where in the file to look. Empty where the file cannot be read
    again as it was (read_yaml has read it already and said what is wrong)."""
    try:
        return text_key_lines(read_yaml_text(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}


def text_key_lines(text: str) -> dict[tuple[str, ...], int]:
    """`key_lines` of YAML `text` (a criteria file given on stdin has no path to read again)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return {}
    found: dict[tuple[str, ...], int] = {}
    todo: list[tuple[tuple[str, ...], Any]] = [((), root)]
    while todo and len(found) < MAX_YAML_VALUES:  # aliases can make a small file a large tree
        at, node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and (*at, key.value) not in found:
                    found[(*at, key.value)] = key.start_mark.line + 1
                    todo.append(((*at, key.value), value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found.setdefault((*at, str(i)), item.start_mark.line + 1)
                todo.append(((*at, str(i)), item))
    return found


def line_of(lines: Mapping[tuple[str, ...], int], path: Sequence[str]) -> int | None:
    """The line of `path`'s key in the file, or of the nearest section holding it (a key missing
    from a section: that section's line); None for the top level."""
    for n in range(len(path), 0, -1):
        if (line := lines.get(tuple(map(str, path[:n])))) is not None:
            return line
    return None


def resolved_dict(spec: Spec) -> dict[str, Any]:
    """The spec with every default filled in, as plain JSON data."""
    return spec.model_dump(mode="json")


def resolved_yaml(resolved: dict[str, Any]) -> str:
    """A resolved spec as the YAML text `validate` prints and runs write (`spec.resolved.yaml`),
    text in any language as written (not as escapes)."""
    return yaml.dump(resolved, Dumper=SpecDumper, sort_keys=False, allow_unicode=True)


def spec_hash(spec: Spec) -> str:
    """sha256 over the canonical JSON of the resolved spec."""
    return hash_resolved(resolved_dict(spec))


# Keys (dotted paths) that do not change what is trained: sections that act after
# training or only describe it, and train.host_memory, which changes where memory comes
# from, not what is computed (the speed it gave is recorded with the training, in
# audit.json's training.host_memory). An interrupted run may resume under a spec that
# differs only here.
NON_TRAINING_KEYS = ("description", "criteria", "measure", "verify", "train.host_memory")


def training_hash(resolved: dict[str, Any]) -> str:
    """sha256 of a resolved spec without its NON_TRAINING_KEYS: equal means the same training."""
    return hash_resolved(_without(resolved, [k.split(".") for k in NON_TRAINING_KEYS]))


# Keys that label a run and change nothing it computes, measures or gates.
LABEL_KEYS = ("name", "description")


def content_hash(spec: Spec) -> str:
    """sha256 of a resolved spec without its LABEL_KEYS: equal means the same run under another label."""
    return hash_resolved(_without(resolved_dict(spec), [[k] for k in LABEL_KEYS]))


def trained_hash(spec: Spec) -> str:
    """sha256 of a resolved spec without its LABEL_KEYS and NON_TRAINING_KEYS: equal means the same
    training under another label, measured or gated otherwise."""
    return training_hash(_without(resolved_dict(spec), [[k] for k in LABEL_KEYS]))


def training_changes(recorded: dict[str, Any], spec: Spec) -> tuple[list[str], list[str]]:
    """(changes that alter the training, changes outside it: NON_TRAINING_KEYS) from a recorded
    resolved spec to `spec`, each as `diff_specs` words them."""
    now = resolved_dict(spec)
    paths = [k.split(".") for k in NON_TRAINING_KEYS]
    training = diff_specs(_without(recorded, paths), _without(now, paths))
    return training, [c for c in diff_specs(recorded, now) if c not in training]


def _without(tree: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    """A copy of `tree` without the keys at `paths` (each a list of nested keys)."""
    out = {}
    for key, value in tree.items():
        inner = [p[1:] for p in paths if p[0] == key]
        if [] in inner:
            continue
        out[key] = _without(value, inner) if inner and isinstance(value, dict) else value
    return out


def same_training(recorded: Any, spec: Spec) -> bool:
    """Whether a recorded resolved spec (from a checkpoint or audit.json) trains exactly as `spec`."""
    # -0.0 as 0.0: a spec recorded before validation made them one trains as the same spec
    return isinstance(recorded, dict) and training_hash(tree_copy(recorded)) == training_hash(resolved_dict(spec))


def hash_resolved(resolved: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of a resolved spec given as plain data."""
    blob = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def diff_specs(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two resolved specs."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        va, vb, path = a.get(key), b.get(key), f"{prefix}{key}"
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_specs(va, vb, path + ".")
        elif va != vb and not (is_nan(va) and is_nan(vb)):
            out.append(f"{path}: {value_text(va)} -> {value_text(vb)}")
    return out


def is_nan(v: Any) -> bool:
    """Whether `v` is a float NaN (which equals nothing, itself included)."""
    return isinstance(v, float) and math.isnan(v)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the spec, for editor completion: what validation checks in code (the
    registered model names, the device forms, the criteria's metrics, YAML's `off` and `true`
    for the toggles) written into it, so an editor rejects what `validate` rejects."""
    from auditor.models import list_models

    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "auditor run spec"
    defs = schema["$defs"]
    defs["ModelSpec"]["properties"]["name"]["enum"] = list_models()
    # Validation holds a new spec's head to its data's classes (a user test: the schema took 2 to 2^63 - 1).
    defs["ModelSpec"]["properties"]["num_classes"]["enum"] = sorted(set(DATASET_CLASSES.values()))
    defs["ModelSpec"]["properties"]["num_classes"]["description"] = "the classes of data.dataset: " + ", ".join(
        f"{name} {n}" for name, n in DATASET_CLASSES.items())
    train = defs["TrainSpec"]["properties"]
    train["device"]["pattern"] = f"^(?:{DEVICE_FORM.pattern})$"
    for key, words in (("amp", [False]), ("compile", [False, True])):  # YAML 1.1 reads off as false
        text = {k: train[key].pop(k) for k in ("enum", "type")}
        train[key]["anyOf"] = [text, {"enum": words}]
    data = defs["DataSpec"]["properties"]
    data["mean"]["items"] |= {"minimum": 0, "maximum": 1}
    data["std"]["items"] |= {"exclusiveMinimum": 0}
    # In any letter case, as validation refuses them for a new run; JSON Schema's regexes have no (?i).
    anycase = ["".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in x) for x in RESERVED_SUFFIXES]
    schema["properties"]["name"]["not"] = {"pattern": "(?:" + "|".join(anycase) + ")$"}
    # The schema's tolerance takes no minus sign: validation refuses a negative one with its own words.
    unsigned = _NUM.replace("[-+]?", "\\+?", 1)
    tolerance = _TOL_RE.pattern.strip("^$").removesuffix(rf"{_WS}({_NUM}){_WS}") + rf"{_WS}({unsigned}){_WS}"
    numeric = "^(?:" + _CMP_RE.pattern.strip("^$") + "|" + tolerance + ")$"
    schema["properties"]["criteria"] |= {"type": ["object", "null"], "additionalProperties": False, "properties": {
        **{m: _criterion_schema(f"'<op> <number>' or '<number> +- <tolerance>' (unit: {unit})", numeric)
           for m, unit in NUMERIC_METRICS.items()},
        **{m: _criterion_schema(f"'{_categorical_ops(m)} <value>', value one of {', '.join(v)}",
                                rf"^{_WS}(?:{_categorical_ops(m).replace(' or ', '|')}){_WS}(?:{'|'.join(v)}){_WS}$")
           for m, v in {**CATEGORICAL_METRICS, "reproducible": PASSING_VERDICTS}.items()},
    }}  # fmt: skip
    _finish_nodes(schema)
    return schema


def _finish_nodes(schema: dict[str, Any]) -> None:
    """Two rules for every node of the schema: an integer without an upper bound gets validation's,
    INT64_MAX, the most a record holds (plain_value_problems); a pattern's closing `$` is made to
    match only at the end of the text: ECMA-262's does, but Python's `re` (a jsonschema in CI) also
    matches it before a last line break, so a name `'a\n'` passed that checker while validation
    refused it (a user test)."""
    todo: list[Any] = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo += node
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "integer" and "maximum" not in node and "exclusiveMaximum" not in node:
            node["maximum"] = INT64_MAX
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
            node["pattern"] = pattern[:-1] + r"(?!\n)$"
        todo += node.values()


def _categorical_ops(metric: str) -> str:
    """The operators a categorical criterion takes: `reproducible` refuses '!=' (_parse_categorical)."""
    return "==" if metric == "reproducible" else "== or !="


def _criterion_schema(form: str, pattern: str) -> dict[str, Any]:
    """One criterion's JSON Schema: an expression of `form` (matching `pattern`). An entry with no
    value is refused; `--set criteria.METRIC=null` removes one."""
    return {"type": "string", "pattern": pattern,
            "description": f"{form}; `--set criteria.METRIC=null` removes the criterion"}  # fmt: skip
