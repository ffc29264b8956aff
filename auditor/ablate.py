"""`auditor ablate`: variants x seeds of one base spec, each a normal `auditor run`.

An ablation file names a base spec, overrides applied to every run, a list of
seeds and named variants (each a list of `KEY=VALUE` overrides). Every
(variant, seed) pair is resolved to a full spec and validated before anything
runs; then each pair runs as its own `python -m auditor run ...` process and
writes its own reproducibility sheet. The ablation's page (`ABLATIONS.md`),
`ablations.json` and figures are built from the runs' `audit.json` files alone,
so they can be rebuilt at any time (`--render-only`).

Override order for one run: base spec, the file's `overrides`, the command
line's `--set`, the variant's overrides, then `seed=<seed>` and
`name=<ablation>-<variant>-s<seed>`; a later override wins.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from auditor.audit import (
    ABLATION_PAGE,
    busy_cpu,
    chose_on_test,
    final_withheld,
    has_checkpoint,
    history_file_problem,
    is_number,
    other_run_files_warning,
    record_no_selection,
    recorded_ablation_run,
    resolved_yaml_problem,
    run_paths,
    sheet_edited,
    unrecordable_number,
    write_json,
)
from auditor.check import check_refusal, judged_verdict
from auditor.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_TERMINATED,
    InvalidInput,
    ablation_run_env,
    ablation_run_of,
    signal_name,
    wait_passing_stop,
)
from auditor.fileio import (
    atomic_write_bytes,
    file_in_the_way,
    file_problem,
    held_lock,
    holder_now,
    lock_beside,
    lock_holder,
    not_a_folder,
    out_error,
    why_not_writable,
    with_mark,
)
from auditor.render import cifar_qualifier, in_millions, refuse_hand_edited
from auditor.spec import (
    INT64_MAX,
    LABEL_KEYS,
    NAME_PATTERN,
    NON_TRAINING_KEYS,
    RESERVED_SUFFIXES,
    SUBKEY,
    VAL_METRICS,
    SetValueRefused,
    Spec,
    apply_overrides,
    bare_name_of_a_folder,
    content_hash,
    file_kind,
    format_validation_error,
    given_or_shipped,
    hash_resolved,
    key_lines,
    merges_into,
    parse_override,
    parse_sets,
    read_yaml,
    record_given,
    resolve_spec_path,
    resource_dir,
    same_training,
    set_args,
    set_shown,
    spec_hash,
    trained_hash,
    training_changes,
    validate_spec,
)
from auditor.words import count, first_of, out_args, path_arg

SCHEMA_VERSION = 2  # 2: runs record the software and device they ran with
RESERVED_KEYS = ("seed", "name")  # set by ablate for every run
# metric key in audit.json `metrics` -> (label, kind)
METRICS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "best_val_acc": ("best val acc", "acc"),
    "final_val_acc": ("final val acc", "acc"),
    "test_acc": ("test acc", "acc"),
    "train_time_s": ("train time", "seconds"),
    "params_m": ("params", "millions"),
})
REFERENCE_METRICS = ("best_val_acc", "final_val_acc", "test_acc")
ACCURACIES = tuple(k for k, (_, kind) in METRICS.items() if kind == "acc")
UNREADABLE = "its audit.json is unreadable"  # why a run is not counted, as the page and the console say

Fraction = Annotated[float, Field(ge=0, le=1)]


# --- the ablation file --------------------------------------------------------------


class Reference(BaseModel):
    """Published numbers for one variant (fractions), shown beside ours."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    best_val_acc: Fraction | None = None
    final_val_acc: Fraction | None = None
    test_acc: Fraction | None = None
    note: str | None = None  # what the numbers are, e.g. "one run" or "best of 5 runs (mean 93.39 %)"


def _check_override(item: str) -> str:
    try:
        path, _ = parse_override(item, "override")
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    if path[0] in RESERVED_KEYS and len(path) == 1:
        raise ValueError(f"{set_shown(item, 'override')}: {path[0]} is set by ablate for every run; remove it")
    return item


Override = Annotated[str, AfterValidator(_check_override)]


def _leaf_keys(path: list[str], value: Any) -> list[str]:
    """The dotted keys an override sets: each one a mapping for a section sets (it merges)."""
    if merges_into(path, value) and value:
        return [k for key, v in value.items() for k in _leaf_keys([*path, str(key)], v)]
    return [".".join(path)]


def _keys_once(items: list[str]) -> list[str]:
    """One list of overrides sets each key once: a second would silently win over the first."""
    keys = [k for item in items for k in _leaf_keys(*parse_override(item))]
    if repeated := sorted({k for k in keys if keys.count(k) > 1}):
        raise ValueError(f"sets {', '.join(repeated)} more than once; give each key once")
    return items


Overrides = Annotated[list[Override], AfterValidator(_keys_once)]
VariantName = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=48)]


MAX_SEEDS = 1000  # runs per variant; a mistyped count would otherwise plan millions of runs


class Ablation(BaseModel):
    """A validated ablation file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    name: Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
    description: str = ""
    base: Annotated[str, Field(min_length=1)]
    overrides: Overrides = []
    seeds: Annotated[list[Annotated[int, Field(ge=0, le=2**63 - 1)]], Field(min_length=1, max_length=MAX_SEEDS)]  # as --seeds
    variants: Annotated[dict[VariantName, Overrides], Field(min_length=1)]
    figure: Literal["depth"] | None = None
    reference: dict[str, Reference] = {}
    reference_note: str = ""

    @field_validator("name")
    @classmethod
    def _name_not_reserved(cls, v: str) -> str:
        if v.endswith(RESERVED_SUFFIXES):  # its page folder would pass for a run's staging or set-aside folder
            raise ValueError(f"must not end in {', '.join(RESERVED_SUFFIXES)} (reserved for the tool's own folders)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, v: list[int]) -> list[int]:
        dup = sorted({s for s in v if v.count(s) > 1})
        if dup:
            raise ValueError(f"seeds must be unique, repeated: {dup}")
        # torch and NumPy take a seed modulo 2**32: such seeds initialise the models alike.
        alike = sorted({s for s in v if [t % 2**32 for t in v].count(s % 2**32) > 1})
        if alike:
            raise ValueError(f"seeds {alike} are equal modulo 2**32, where torch and NumPy seed alike: their models "
                             "would start from the same weights")  # fmt: skip
        return v

    @field_validator("variants", mode="before")
    @classmethod
    def _variants_none_is_empty(cls, v: Any) -> Any:
        # `cosine:` with nothing after it (YAML null) means "the base": no overrides.
        return {k: ([] if x is None else x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("variants")
    @classmethod
    def _variants_differ_in_more_than_case(cls, v: dict[str, Overrides]) -> dict[str, Overrides]:
        # Their runs' folders (`<ablation>-<variant>-s<seed>`) would be one folder on a file system
        # that ignores case (macOS's and Windows' defaults): one run would replace the other's.
        alike = [name for name in v if [other.casefold() for other in v].count(name.casefold()) > 1]
        if alike:
            raise ValueError(f"variant names {', '.join(map(repr, alike))} differ only in case: their runs' folders "
                             "would be one on a file system that ignores case (macOS's and Windows' default); give "
                             "each a name of its own")
        return v

    @model_validator(mode="after")
    def _reference_names_variants(self) -> Ablation:
        unknown = [k for k in self.reference if k not in self.variants]
        if unknown:
            raise ValueError(f"{SUBKEY}reference: names unknown variants {unknown}; variants: {', '.join(self.variants)}")
        return self


def resolve_ablation_path(arg: str) -> Path:
    """An ablation file as given, or a shipped one by name (`resnet18_cifar10`)."""
    return given_or_shipped(arg, resource_dir("specs") / "ablations", (("specs", "ablations"), ("ablations",)), "ablation")


def load_ablation(arg: str) -> tuple[Path, Ablation]:
    """Read and strictly validate an ablation file."""
    path = resolve_ablation_path(arg)
    raw = read_yaml(path, "ablation file")
    if (refusal := record_given(arg, kind := file_kind(raw), "an ablation file")) is not None:
        raise InvalidInput(refusal)
    if kind == "spec":  # given where an ablation goes
        raise InvalidInput(f"{arg}: a spec, not an ablation file (which names a base spec, seeds and variants); "
                           "run a spec with `auditor run`")  # fmt: skip
    try:
        return path, Ablation.model_validate(raw)
    except ValidationError as err:
        raise InvalidInput(format_validation_error(str(arg), err, Ablation, lines=key_lines(path),
                                                   keys_taken=_keys_taken)) from None


def _keys_taken(path: Sequence[str]) -> str:
    """The keys the place of an unknown key at `path` takes: a reference entry's (`test_acc`, ...) under
    `reference.<variant>` (a variant's name may hold dots: `path` is key by key), else the file's own."""
    if len(path) == 3 and path[0] == "reference":
        return f"a reference entry has: {', '.join(Reference.model_fields)}"
    return f"an ablation file has: {', '.join(Ablation.model_fields)}"


def resolve_base(abl_path: Path, abl: Ablation, source: str) -> Path:
    """The base spec: relative to the ablation file's folder, else a path or shipped spec name."""
    cand = abl_path.parent / abl.base
    if cand.is_file():
        return cand
    problem = file_problem(cand, "spec")
    if problem is not None and not bare_name_of_a_folder(abl.base, cand):  # there, but unreadable
        raise InvalidInput(f"{source}: base: {cand}: {problem}")
    try:
        return resolve_spec_path(abl.base)
    except InvalidInput as exc:
        if "file not found" not in str(exc):  # there, but unreadable: said as it is
            raise InvalidInput(f"{source}: base: {exc}") from None
        raise InvalidInput(
            f"{source}: base: {abl.base!r} not found relative to {abl_path.parent} "
            f"nor as a path or shipped spec name{_shipped_ablation_hint(abl.base)}"
        ) from None


def _shipped_ablation_hint(base: str) -> str:
    """'; X is a shipped ablation file, ...' where a base names one (a user test: it read as a typo)."""
    try:
        found = resolve_ablation_path(base)
    except InvalidInput:
        return ""
    return (f"; {base!r} names a shipped ablation file ({display_path(found)}), not a spec: an ablation's base is "
            "the spec its variants change")


# --- the plan ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One (variant, seed) pair, resolved and validated."""

    variant: str
    seed: int
    name: str
    overrides: tuple[str, ...]  # every --set passed to `auditor run`, in order
    spec: Spec
    spec_hash: str


@dataclass(frozen=True)
class Plan:
    """Every run of an ablation invocation, in execution order."""

    source: str  # the ablation file as the user named it
    path: Path
    ablation: Ablation
    base_path: Path
    cli_sets: tuple[str, ...]
    seeds: tuple[int, ...]
    seeds_note: str
    variants: tuple[str, ...]
    runs: tuple[PlannedRun, ...]
    figure: str | None
    warnings: tuple[str, ...]

    def runs_of(self, variant: str) -> list[PlannedRun]:
        """The planned runs of one variant, in seed order."""
        return [r for r in self.runs if r.variant == variant]


def run_name(ablation: str, variant: str, seed: int) -> str:
    """A run's name: `<ablation>-<variant>-s<seed>`."""
    return f"{ablation}-{variant}-s{seed}"


def run_names(ablation: str, variants: Iterable[str]) -> re.Pattern[str]:
    """The names `run_name` gives the runs of `variants`, of any seed (to match in full)."""
    return re.compile(rf"{re.escape(ablation)}-(?:{'|'.join(map(re.escape, variants))})-s\d+")


def choose_seeds(seeds: list[int], n: int | None, source: str) -> tuple[list[int], str]:
    """The first n seeds; beyond the list, continue from max+1 (deterministically)."""
    if n is None:
        return list(seeds), ""
    if not 1 <= n <= MAX_SEEDS:
        raise InvalidInput(f"--seeds: must be 1 to {MAX_SEEDS} (each seed trains every variant once), got {n}")
    if n <= len(seeds):
        return list(seeds[:n]), f"--seeds {n}: the first {n} of the file's seeds {seeds}"
    extra = list(range(max(seeds) + 1, max(seeds) + 1 + n - len(seeds)))
    # Said of --seeds, not of a variant's run (a user test: a seed past the bound was blamed on one).
    if extra[-1] > INT64_MAX:  # a spec's seed bound
        raise InvalidInput(f"--seeds {n}: {source} lists {count(len(seeds), 'seed')} {seeds}; extending them from max+1 "
                           f"passes the largest seed, {INT64_MAX}: list the seeds to use in the file")  # fmt: skip
    if alike := sorted({e for e in extra if e % 2**32 in {s % 2**32 for s in seeds}}):
        raise InvalidInput(f"--seeds {n}: extending {source}'s seeds {seeds} from max+1 gives {first_of([str(a) for a in alike[:5]], len(alike))}, "
                           "equal modulo 2**32 to a listed seed (torch and NumPy seed alike): list the seeds to use "
                           "in the file")  # fmt: skip
    note = (
        f"--seeds {n}: {source} lists {count(len(seeds), 'seed')} {seeds}; "
        f"extended with {extra} (continuing from max+1)"
    )
    return list(seeds) + extra, note


def _keys(items: list[str] | tuple[str, ...]) -> set[str]:
    """The dotted keys the override items set, a mapping for a section counting as each of its keys."""
    return {k for i in items for k in _leaf_keys(*parse_override(i))}


def _overlap(a: str, b: str) -> bool:
    """Whether setting dotted keys `a` and `b` touches one value (equal, or one inside the other)."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _check_cli_sets(cli_sets: list[str], source: str, base: str) -> None:
    """--set items parse, and none sets what ablate sets for every run. A VALUE refused as YAML is
    named as validation names a --set's value (`base`: the file's base, as it gives it)."""
    for item in cli_sets:
        try:
            key = parse_override(item)[0]  # syntax errors name the --set item
        except SetValueRefused as exc:  # well-formed: said of the runs, as the review found `run` says it of the spec
            raise InvalidInput(f"{source}: base {base} with the overrides (every variant) {exc}") from None
        if key in [["seed"], ["name"]]:
            hint = "use --seeds N or the file's seeds" if key == ["seed"] else "rename the ablation"
            raise InvalidInput(f"{set_shown(item)}: {key[0]} is set by ablate for every run; {hint}")


def _select_variants(source: str, abl: Ablation, only: list[str]) -> list[str]:
    """The file's variants in file order, or those named by --only (all must exist)."""
    unknown = [v for v in only if v not in abl.variants]
    if unknown:
        raise InvalidInput(
            f"{source}: --only: unknown variant {', '.join(map(repr, unknown))}; "
            f"variants: {', '.join(abl.variants)}"
        )
    return [v for v in abl.variants if not only or v in only]


def _shadow_warnings(abl: Ablation, variants: list[str], cli_sets: list[str]) -> list[str]:
    """A variant's own override of a --set key wins; say so rather than surprise."""
    cli_keys = _keys(cli_sets)
    return [
        f"variant {v!r} sets {', '.join(shadowed)} itself; its value wins over --set"
        for v in variants
        if (shadowed := sorted({k for k in _keys(abl.variants[v]) if any(_overlap(k, c) for c in cli_keys)}))
    ]


def identical_variants(runs: list[PlannedRun] | tuple[PlannedRun, ...]) -> list[list[str]]:
    """Groups of two or more variants whose runs resolve to one spec but for its LABEL_KEYS: their
    rows measure one training, not an ablation. Compared at one seed, which every variant shares."""
    groups: dict[str, list[str]] = {}
    for v, r in _first_runs(runs).items():
        groups.setdefault(content_hash(r.spec), []).append(v)
    return [g for g in groups.values() if len(g) > 1]


def same_training_variants(runs: Sequence[PlannedRun]) -> list[list[str]]:
    """Groups of two or more variants whose specs differ only outside training (NON_TRAINING_KEYS:
    criteria, measure, verify, train.host_memory): their runs train the same weights, so their
    accuracies repeat one another (a user test: a variant changing only its criteria was shown as a
    comparison). A group of one spec alone is `identical_variants`'. Compared at one seed."""
    first = _first_runs(runs)
    groups: dict[str, list[str]] = {}
    for v, r in first.items():
        groups.setdefault(trained_hash(r.spec), []).append(v)
    return [g for g in groups.values() if len({content_hash(first[v].spec) for v in g}) > 1]


def same_training_text(group: list[str]) -> str:
    """The warning for one `same_training_variants` group."""
    names = ", ".join(repr(v) for v in group[:-1]) + f" and {group[-1]!r}"
    return (f"variants {names} differ only outside training ({', '.join(k for k in NON_TRAINING_KEYS if k not in LABEL_KEYS)}): their runs train "
            "the same weights at each seed, so their accuracies repeat one another; their rows differ only in what "
            "is measured or gated")  # fmt: skip


def _first_runs(runs: Iterable[PlannedRun]) -> dict[str, PlannedRun]:
    """Each variant's first planned run, by variant (its runs differ only in seed and name)."""
    first: dict[str, PlannedRun] = {}
    for r in runs:
        first.setdefault(r.variant, r)
    return first


def unchanged_variants(
    abl: Ablation, base_raw: dict[str, Any], cli_sets: list[str], runs: list[PlannedRun], said: list[list[str]],
) -> list[str]:  # fmt: skip
    """Notes of the variants whose own overrides change nothing: each resolves to the base spec (with the
    file's overrides and --set), so its runs train the base while its overrides read as a change (a user
    test). A variant that sets none (`base: []`) is the base by intent; one `identical_variants` named
    (`said`) is noted there already. Compared at one seed, as identical_variants compares."""
    noted = {v for group in said for v in group}
    todo = [(v, r) for v, r in _first_runs(runs).items() if abl.variants[v] and v not in noted]
    base: dict[int, str | None] = {}  # the base's content hash at a seed (None: the base alone does not validate)
    notes = []
    for v, r in todo:
        if r.seed not in base:  # once: every variant's first run is at the plan's first seed
            try:
                sets = [*abl.overrides, *cli_sets, f"seed={r.seed}", f"name={r.name}"]
                base[r.seed] = content_hash(validate_spec(apply_overrides(base_raw, sets), "base"))
            except InvalidInput:  # the variants' overrides are needed
                base[r.seed] = None
        if base[r.seed] == content_hash(r.spec):
            notes.append(f"variant {v!r} resolves to the base spec (with the file's overrides and --set): its overrides "
                         f"({' '.join(abl.variants[v])}) change nothing, so its runs train the base")  # fmt: skip
    return notes


def identical_text(group: list[str]) -> str:
    """The warning for one `identical_variants` group."""
    names = ", ".join(repr(v) for v in group[:-1]) + f" and {group[-1]!r}"
    return (f"variants {names} resolve to the same spec (apart from name and description): their runs repeat one "
            "another (one training per seed), so their rows compare nothing; drop all but one, or change their "
            "overrides")  # fmt: skip


def _resolve_variant(
    source: str, abl: Ablation, base_raw: dict[str, Any], cli_sets: list[str], v: str, seeds: list[int],
) -> tuple[list[PlannedRun], list[str]]:  # fmt: skip
    """Every seed's run of variant `v`, validated; (runs, problems) with duplicate problems once."""
    runs: list[PlannedRun] = []
    errs: list[str] = []
    where = f"{source}: variant {v!r}"
    # An error in what a --set wrote names it, as `run` does, unless the variant sets that key itself.
    own = _keys(abl.variants[v])
    named = [s for s in parse_sets(cli_sets) if not any(_overlap(".".join(s.path), k) for k in own)]
    for seed in seeds:
        name = run_name(abl.name, v, seed)
        overrides = (*abl.overrides, *cli_sets, *abl.variants[v], f"seed={seed}", f"name={name}")
        try:
            spec = validate_spec(apply_overrides(base_raw, list(overrides)), where, sets=named)
        except InvalidInput as exc:
            msg = str(exc)
            lines = msg.splitlines() if msg.startswith(where) else [f"{where}: {msg}"]
            errs += [line for line in lines if line not in errs]
            continue
        if spec.name != name:  # the name override must survive YAML parsing unchanged
            errs.append(f"{where}: name: resolved to {spec.name!r}, expected {name!r}")
            continue
        runs.append(PlannedRun(v, seed, name, tuple(overrides), spec, spec_hash(spec)))
    return runs, errs


def build_plan(
    source: str, cli_sets: list[str] | None = None, only: list[str] | None = None,
    n_seeds: int | None = None, depth_figure: bool = False,
) -> Plan:  # fmt: skip
    """Resolve and validate every (variant, seed) pair; raise InvalidInput naming all problems."""
    path, abl = load_ablation(source)
    cli_sets = list(cli_sets or [])
    _check_cli_sets(cli_sets, source, abl.base)
    variants = _select_variants(source, abl, list(only or []))
    seeds, seeds_note = choose_seeds(abl.seeds, n_seeds, source)
    base_path = resolve_base(path, abl, source)
    base_raw = read_yaml(base_path)
    if (refusal := record_given(base_path, file_kind(base_raw))) is not None:
        raise InvalidInput(f"{source}: base: {refusal}")
    if {"variants", "base"} <= base_raw.keys():
        raise InvalidInput(f"{source}: base: {base_path} is an ablation file; the base must be a spec")
    runs: list[PlannedRun] = []
    errors: dict[str, list[str]] = {}
    for v in variants:
        v_runs, errs = _resolve_variant(source, abl, base_raw, cli_sets, v, seeds)
        runs += v_runs
        if errs:
            errors[v] = errs
    if errors:
        raise InvalidInput(_merge_errors(source, abl, errors, len(variants), key_lines(path)))
    return Plan(
        source=source, path=path, ablation=abl, base_path=base_path, cli_sets=tuple(cli_sets),
        seeds=tuple(seeds), seeds_note=seeds_note, variants=tuple(variants), runs=tuple(runs),
        figure="depth" if depth_figure else abl.figure,
        warnings=(*_shadow_warnings(abl, variants, cli_sets), *map(identical_text, same := identical_variants(runs)),
                  *map(same_training_text, same_training_variants(runs)),
                  *unchanged_variants(abl, base_raw, cli_sets, runs, same)),
    )  # fmt: skip


def _merge_errors(
    source: str, abl: Ablation, errors: dict[str, list[str]], n_variants: int, at: Mapping[tuple[str, ...], int]
) -> str:
    """One line per problem; a problem shared by every variant is reported once, on the base (with the
    line of the file's override that sets its key, where one does), as is one of a file of one variant
    that is not of its own overrides. What follows a line's variant (': PROBLEM', or ' --set ITEM:
    PROBLEM' naming a --set) is kept; a problem of a key the variant's own overrides set names the line
    of the variant's key (`at`: the file's key lines)."""
    stripped = {v: [line.removeprefix(f"{source}: variant {v!r}") for line in lines] for v, lines in errors.items()}
    common: set[str] = set()
    if len(errors) == n_variants > 1:
        common = set.intersection(*(set(s) for s in stripped.values()))
    elif len(errors) == len(abl.variants) == 1:  # "every variant" is the one: no --only left others out
        ((v, items),) = stripped.items()
        common = {c for c in items if not _own_problem(c, abl.variants[v])}
    lines = []
    for c in (c for c in next(iter(stripped.values()), []) if c in common):
        line = _override_line(c, abl, at)
        lines.append(f"{source}{f':{line}' if line else ''}: base {abl.base} with the overrides (every variant){c}")
    for v, items in stripped.items():
        for c in (c for c in items if c not in common):
            if _own_problem(c, abl.variants[v]) and (line := at.get(("variants", v))):
                lines.append(f"{source}:{line}: variant {v!r}{c}")
            elif line := _override_line(c, abl, at):  # --only left out the others: one variant's, of the file's line
                lines.append(f"{source}:{line}: base {abl.base} with the overrides (variant {v!r}){c}")
            else:
                lines.append(f"{source}: variant {v!r}{c}")
    return "\n".join(lines)


def _override_line(problem: str, abl: Ablation, at: Mapping[tuple[str, ...], int]) -> int | None:
    """The line of the last of the file's own overrides that sets `problem`'s key (`_own_problem`), or
    None: the key is the base's, or a --set's."""
    lines = [at.get(("overrides", str(i))) for i, item in enumerate(abl.overrides) if _own_problem(problem, [item])]
    return max((n for n in lines if n), default=None)


def _own_problem(problem: str, overrides: Sequence[str]) -> bool:
    """Whether `problem` (': KEY: why', as a variant's line goes on) is of a key that the variant's
    own `overrides` set (or a section of one, or a key within one), not of the base or the shared ones."""
    if not problem.startswith(": "):
        return False
    key = problem[2:].split(": ", 1)[0]
    return any(key == k or key.startswith(f"{k}.") or k.startswith(f"{key}.")
               for k in (item.partition("=")[0].strip() for item in overrides))  # fmt: skip


# --- run state on disk ---------------------------------------------------------------


def report_dir(out: Path, run: str) -> Path:
    """Where `auditor run` writes the report folder of run `run` under `out`."""
    return out / "reports" / run


def run_state(out: Path, run: PlannedRun) -> tuple[str, dict[str, Any] | None]:
    """(state, the run's audit.json or None), read once. The state is 'finished' (same spec hash),
    'running' (a live process on this machine holds the run's lock now, e.g. a second ablate;
    a holder elsewhere cannot be checked, and the run itself refuses while it holds the lock),
    'resume' (interrupted staging dir), 'rejudge' (finished under a spec that differs only outside
    training, or one whose record is there but cannot be read, beside an intact last.pt of the planned
    training: `--resume` re-measures and re-judges it), 'stale' or 'new' (a report deleted: trained afresh)."""
    paths = run_paths(out, run.name)
    audit = _read_record(paths.reports / "audit.json")
    if audit is not None and not _of_another_spec(audit, run):  # a record without its hash: `check` refuses it
        return "finished", audit
    if holder_now(paths.lock):
        return "running", audit
    if has_checkpoint(paths.ckpt_staging):
        return "resume", audit
    if audit is None:  # a record there that cannot be read: its finished training is not thrown away (a
        # user test); a report deleted is the documented way to train a run afresh
        damaged = os.path.lexists(paths.reports / "audit.json")
        return ("rejudge" if damaged and _trained_as_planned(paths.last_checkpoint, run) else "new"), audit
    # Re-judging resumes from last.pt: a run without one (diverged early, checkpoints
    # deleted) or one that diverged (the resume would train its last epoch again) re-runs.
    diverged = audit.get("run", {}).get("status") == "diverged"
    rejudge = same_training(audit.get("spec"), run.spec) and paths.last_checkpoint.is_file() and not diverged
    return ("rejudge" if rejudge else "stale"), audit


def _trained_as_planned(last: Path, run: PlannedRun) -> bool:
    """Whether a finished run's `last.pt` is intact and was trained under the planned spec's training
    (a user test: a run whose audit.json was damaged was trained again, its checkpoints replaced;
    `--resume` measures and judges it again from them, training nothing)."""
    from auditor import checkpoint  # torch: only where a record is missing beside a checkpoint

    if not last.is_file():
        return False
    try:
        spec = checkpoint.load(last).get("spec")
    except InvalidInput:  # damaged: trained afresh, as before
        return False
    return isinstance(spec, dict) and same_training(spec, run.spec)


def _holder_text(out: Path, run: PlannedRun) -> str:
    """' (process PID on HOST since TIME)' of the process running `run`, or '' once it is gone.
    Said of a run `run_state` found running: the lock was tried there, so its note is read here
    without trying the lock again."""
    holder = lock_holder(run_paths(out, run.name).lock, this_host_only=True)
    return f" ({holder})" if holder else ""


def software_label(audit: dict[str, Any], source: bool = True) -> str:
    """'auditor V (source DIGEST), torch V, DEVICE (MODEL...)' from a run's audit.json: what its
    numerics depend on (`source`: with the auditor source digest, where the record holds one).

    CPU runs name the CPU model and torch's thread count (reductions split by thread);
    CUDA runs the GPU model, whatever its index.
    """
    env = audit.get("environment") or {}
    digest = f" (source {_part(env, 'auditor_source')})" if source and env.get("auditor_source") else ""
    return f"auditor {_part(env, 'auditor')}{digest}, torch {_part(env, 'torch')}, {_part(env, 'device')}"


def _part(env: dict[str, Any], key: str) -> str:
    """One fact of an environment record that a run's numerics depend on: a version, the
    auditor source's digest (12 hex digits, as checkpoints hold it) or the device."""
    if key == "auditor_source":  # records before 0.2.0's source digest have none
        return str(env.get(key) or "not recorded")[:12]
    if key != "device":
        return str(env.get(key) or "unknown")
    device = str(env.get("device") or "unknown device").split(":")[0]
    if isinstance(env.get("gpu"), dict):  # environment.GPUInfo as recorded
        return f"{device} ({env['gpu'].get('name')})"
    if device == "cpu":
        threads = env.get("torch_threads")
        threads_text = count(threads, "thread") if isinstance(threads, int) else "? threads"
        return f"{device} ({env.get('cpu_model') or 'unknown model'}, {threads_text})"
    return device


def _changes(then: dict[str, Any], now: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """'KEY THEN (now NOW)' for each fact that differs between two environment records."""
    changed = [(k, _part(then, k), _part(now, k)) for k in keys if k != "auditor_source" or then.get(k)]
    return [f"{a} (now {b})" if k == "device" else f"{k.replace('_', ' ')} {a} (now {b})"
            for k, a, b in changed if a != b]  # fmt: skip


def mixed_software(variants: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{software label: run names} over every finished run on the page when they differ; {} when
    all agree. The source digest counts only where every run recorded one (older records hold none,
    which is not a difference)."""
    runs = [r for v in variants for r in v["runs"]]
    key = "software" if all(r.get("software") != r.get("software_base") for r in runs) else "software_base"
    by_label: dict[str, list[str]] = {}
    for r in runs:
        by_label.setdefault(r.get(key) or r["software"], []).append(r["name"])
    return by_label if len(by_label) > 1 else {}


def this_machine(plan: Plan) -> dict[str, dict[str, Any]]:
    """This machine's environment facts, as a run records them, per train.device the plan names.

    Probed once per plan (NVML, /proc/cpuinfo), not once per run.
    """
    import torch

    from auditor.environment import cpu_model, gpu_info, resolve_device, software_versions

    common = {**software_versions(), "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads()}
    facts = {}
    for name in {r.spec.train.device for r in plan.runs}:
        device = resolve_device(name)
        gpu = gpu_info(device) if device.type == "cuda" and torch.cuda.is_available() else None
        facts[name] = {**common, "device": str(device), "gpu": vars(gpu) if gpu else None}
    return facts


def skip_label(audit: dict[str, Any], now: dict[str, Any]) -> str:
    """How the plan shows a finished run it skips; names any software or device change since it ran."""
    changes = _changes(audit.get("environment") or {}, now, ("auditor", "auditor_source", "torch", "device"))
    if not changes:
        return "skip (finished)"
    return f"skip (finished with {', '.join(changes)}; delete its report to re-run)"


def finished_label(audit: dict[str, Any], now: dict[str, Any]) -> str:
    """How the plan and the log show a finished run it skips: `skip_label`, or, for a record `check`
    refuses (`check_refusal`), that the page does not count it."""
    if check_refusal(audit):
        return "skip, but not counted: `auditor check` refuses its audit.json (the page says how to mend it)"
    return skip_label(audit, now)


def _read_record(path: Path) -> dict[str, Any] | None:
    """A JSON object file as JSON gives it (None: no file, or not a JSON object): for a run's
    audit.json, numbers no field holds (NaN, a 400-digit integer) included, which `check_refusal`
    then names, as `check` does."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _of_another_spec(audit: dict[str, Any], run: PlannedRun) -> bool:
    """Whether a run's record was made of another spec than the plan's for it: its spec_hash
    differs, or, for a record without one (which `check` refuses), the hash of its resolved spec."""
    recorded, spec = audit.get("spec_hash"), audit.get("spec")
    if not isinstance(recorded, str) and isinstance(spec, dict):
        try:
            recorded = hash_resolved(spec)
        except (TypeError, ValueError):  # not JSON a spec is made of: which spec cannot be told
            return False
    return isinstance(recorded, str) and recorded != run.spec_hash


def _read_json(path: Path) -> dict[str, Any] | None:
    data = _read_record(path)
    return data if data is not None and unrecordable_number(data) is None else None  # unreadable as audit.read_audit says


def display_path(p: Path) -> str:
    """`p` relative to the working directory when it lies below it, else absolute (also from `/`,
    below which every path lies: a user test read `tmp/abl.yaml` on the page as a path from nowhere)."""
    here = Path.cwd().resolve()
    try:
        return str(p.resolve().relative_to(here)) if here != Path(here.anchor) else str(p.resolve())
    except ValueError:
        return str(p.resolve())


def run_argv(plan: Plan, run: PlannedRun, out: Path, resume: bool) -> list[str]:
    """`auditor run` arguments (after the program) for one pair."""
    argv = ["run", path_arg(display_path(plan.base_path)), *set_args(run.overrides), *out_args(out)]
    return argv + (["--resume"] if resume else [])


def shell_command(argv: list[str]) -> str:
    """The `auditor ARGV` command line, quoted for a POSIX shell."""
    return " ".join(shlex.quote(a) for a in ["auditor", *argv])


# --- aggregation -----------------------------------------------------------------------


def summarize(values: list[float | None]) -> dict[str, Any]:
    """n, mean, sample std (ddof=1; null for n=1), min and max of the non-null values."""
    xs = [float(x) for x in values if x is not None]
    if not xs:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": len(xs), "mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else None,
        "min": min(xs), "max": max(xs),
    }  # fmt: skip


def _run_row(r: PlannedRun, audit: dict[str, Any], rdir: Path, here: Path) -> dict[str, Any]:
    """One finished run as the ablation record lists it (links relative to the page folder)."""
    m, training, model = audit.get("metrics", {}), audit.get("training", {}), audit.get("model", {})
    broken = bool(audit.get("measurements", {}).get("nonfinite"))  # its selected model holds inf/NaN
    return {
        "seed": r.seed, "name": r.name, "spec_hash": r.spec_hash,
        "report_dir": _rel(rdir, here), "sheet": _rel(rdir / "REPRODUCIBILITY.md", here),
        "sheet_exists": (rdir / "REPRODUCIBILITY.md").is_file(),
        # its sheet no longer holds what the run wrote (a user test: the page linked it without a word)
        "sheet_edited": (rdir / "REPRODUCIBILITY.md").is_file() and sheet_edited(rdir) is not None,
        "status": audit.get("run", {}).get("status"), "verdict": (again := judged_verdict(audit)),
        # a stored verdict that is not check's (edited by hand, or another version's): said beside it
        "stored_verdict": audit.get("verdict") if audit.get("verdict") != again else None,
        "broken": broken,
        "left_out": left_out_reason(audit),  # why its figures stay out of the means (None: counted)
        "selection_split": training.get("selection_split"), "epochs_run": training.get("epochs_run"),
        "data_label": _data_label(audit.get("data")),
        "data_id": _data_id(audit.get("data")),
        "model": model.get("name"), "family": model.get("family"),
        "software": software_label(audit), "software_base": software_label(audit, source=False),
        # a broken model's accuracies are noise (records from before they were withheld hold some)
        "metrics": {k: None if k in ACCURACIES and broken else m.get(k) for k in METRICS},
        # the run's own sheet says why; a spec without a validation split measures no val accuracy
        "withheld": [k for k in METRICS if _withheld(audit, k) and not (k in VAL_METRICS and training.get("selection_split") == "test")],
        # `check` and `render` warn of it: an edit (True), or a metrics.csv that cannot be read (False)
        "history_differs": (problem := history_file_problem(rdir, audit)) is not None and problem.edited,
        "history_unread": problem is not None and not problem.edited,
        # the spec.resolved.yaml beside it, or the one its sheet's Reproduce command retrains from (the folder
        # the run wrote, for a copy), holds another spec or none: `check` and `render` warn of it
        "spec_file_differs": resolved_yaml_problem(rdir, audit) is not None or bool(other_run_files_warning(rdir, audit)),
        "busy_share": busy_share(training),
        # re-judged after its training ended: the share of the processes that trained it was not kept
        "busy_unknown": training.get("trained_here") is False,
        # resumed: the process that finished it metered its own share, not the earlier processes'
        "busy_part": training.get("trained_here") is not False and bool(training.get("resumed_from")),
    }  # fmt: skip


def busy_share(training: Mapping[str, Any]) -> float | None:
    """Other processes' share of the CPU while a run trained, where its sheet warns of a busy
    machine (its train time is then slower than its spec alone would make it); else None."""
    share, window = training.get("other_cpu_share"), training.get("other_cpu_window_s")
    return share if is_number(share) and is_number(window) and busy_cpu(share, window) else None


def left_out_reason(audit: dict[str, Any]) -> str | None:
    """Why a finished run's figures stay out of its variant's means, or None: it diverged, its
    selected model holds inf/NaN, no epoch could be selected, or that model's losses are not
    numbers (its accuracies then count predictions made from inf or NaN)."""
    from auditor.render import nonfinite_losses

    training = audit.get("training") or {}
    if audit.get("run", {}).get("status") == "diverged":
        step = training.get("diverged_at_step")
        return "training diverged" + (f" (at step {step})" if step is not None else "")
    try:  # before the weights: with no epoch selected, the model measured is no selected one (a user test)
        if why := record_no_selection(training):
            return why
    except (KeyError, TypeError, AttributeError):  # a record too old or too damaged to tell: its weights may
        pass
    if (audit.get("measurements") or {}).get("nonfinite"):
        return "its selected model holds inf or NaN (broken)"
    try:
        found = nonfinite_losses(audit)
    except (KeyError, TypeError, AttributeError):  # a record too old or too damaged to tell
        return None
    return f"its selected model's losses are not numbers ({'; '.join(found)})" if found else None


def _data_id(data: Any) -> dict[str, str] | None:
    """The data a run read, as its record fingerprints it: {"data": train and test read, "scored
    test images": those scored}, 12 hex digits each; None where the record does not say."""
    if not isinstance(data, dict):
        return None
    found = {k: data[f][:12] for k, f in (("data", "fingerprint"), ("scored test images", "scored_test_fingerprint"))
             if isinstance(data.get(f), str)}  # fmt: skip
    return found or None


def mixed_data(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{data fingerprints: run names} over one variant's runs when they read different data (its
    files changed between seeds); {} when they agree. Only what every fingerprinted run recorded is
    compared (older records lack the scored one), and a run with no fingerprint is no difference."""
    ids = [(r["name"], r["data_id"]) for r in runs if r.get("data_id")]
    shared = set.intersection(*(set(i) for _, i in ids)) if ids else set()
    by_id: dict[str, list[str]] = {}
    for name, found in ids:
        by_id.setdefault(", ".join(f"{k} {found[k]}" for k in sorted(shared)), []).append(name)
    return by_id if len(by_id) > 1 and shared else {}


def mixed_data_files(variants: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{data fingerprint: variant names} where the counted runs of the variants read different data
    files (the fingerprint covers the train and test files read, not limit_* or val_split): a
    variant that reads other data, or files that changed between runs; {} where they agree."""
    return _variants_by_fingerprint(variants, "data")


def mixed_test_sets(variants: list[dict[str, Any]]) -> dict[str, list[str]]:
    """{scored test images' fingerprint: variant names} where the counted runs of the variants were
    scored on different test images (a variant that changes data.limit_test, or test files that
    changed between runs); {} where they agree or the records do not say."""
    return _variants_by_fingerprint(variants, "scored test images")


def _variants_by_fingerprint(variants: list[dict[str, Any]], kind: str) -> dict[str, list[str]]:
    """{fingerprint of `kind` (a key of `_data_id`): variant names} over the counted runs, where
    there is more than one; {} otherwise."""
    by_fp: dict[str, list[str]] = {}
    for v in variants:
        for r in v["runs"]:
            fp = (r.get("data_id") or {}).get(kind)
            if fp and not r["left_out"] and v["name"] not in by_fp.setdefault(fp, []):
                by_fp[fp].append(v["name"])
    return by_fp if len(by_fp) > 1 else {}


def _data_label(data: Any) -> str | None:
    """What a run was scored on when it is not the official CIFAR-10 test set, else None."""
    if not isinstance(data, dict):
        return None
    if data.get("dataset") != "cifar10":
        return f"{data.get('dataset')} data"
    try:
        qualifier = cifar_qualifier(data)
    except (KeyError, TypeError):  # a record too old or too damaged to tell
        return "CIFAR-10 data whose provenance the record does not give"
    return f"CIFAR-10 ({qualifier})" if qualifier else None


def _mending(out: Path, plan: Plan, run: PlannedRun, audit: dict[str, Any]) -> str:
    """How to replace a run's refused record (`audit`): re-judge it from its last checkpoint
    (`--resume` measures and judges a finished run again without training it; one that diverged
    it would train again), or train it afresh."""
    afresh = "remove its report folder, and this ablation trains it afresh"
    diverged = (audit.get("run") or {}).get("status") == "diverged"  # the resume would train its last epoch again
    if diverged or not run_paths(out, run.name).last_checkpoint.is_file():
        return afresh
    return f"`{shell_command(run_argv(plan, run, out, resume=True))}` measures and judges it again from its last checkpoint, or {afresh}"


def _variant_record(out: Path, plan: Plan, v: str, here: Path) -> dict[str, Any]:
    """A variant's finished runs, its missing ones (not run / stale) and its statistics."""
    runs, missing = [], []
    for r in plan.runs_of(v):
        rdir = report_dir(out, r.name)
        audit = _read_record(rdir / "audit.json")
        if audit is None or _of_another_spec(audit, r):
            unreadable = audit is None and (rdir / "audit.json").exists()
            why = "stale" if audit else (UNREADABLE if unreadable else "not run")
            missing.append({"seed": r.seed, "name": r.name, "why": why})
        elif refusal := check_refusal(audit):
            missing.append({"seed": r.seed, "name": r.name, "edited": True, "why": (
                f"`auditor check` refuses its audit.json: {refusal}; its figures are not counted; "
                f"{_mending(out, plan, r, audit)}")})  # fmt: skip
        else:
            runs.append(_run_row(r, audit, rdir, here))
    ref = plan.ablation.reference.get(v)
    counted = [r for r in runs if not r["left_out"]]
    return {
        "name": v, "overrides": list(plan.ablation.variants[v]), "n": len(counted),
        "seeds": [r["seed"] for r in counted],
        "stats": {k: summarize([r["metrics"][k] for r in counted]) for k in METRICS},
        "runs": runs, "missing": missing, "left_out": [r for r in runs if r["left_out"]],
        "mixed_data": mixed_data(runs),
        "no_val_split": [r["name"] for r in runs if r["selection_split"] == "test"],
        "selected_on_test": [r["name"] for r in runs if chose_on_test(r)],  # the row has its keys
        "reference": ref.model_dump() if ref else None,
    }  # fmt: skip


def aggregate(out: Path, plan: Plan) -> dict[str, Any]:
    """The ablation record, rebuilt from the runs' audit.json files alone.

    A run counts only when its audit.json exists and its spec hash equals the
    planned spec's; others are listed as missing (not run yet) or stale (run
    with a different spec).
    """
    abl = plan.ablation
    here = report_dir(out, abl.name)
    variants = [_variant_record(out, plan, v, here) for v in plan.variants]
    return {
        "schema_version": SCHEMA_VERSION,
        "ablation": {
            "name": abl.name, "description": abl.description, "file": display_path(plan.path),
            "file_from_out": _rel(plan.path, out),  # the file itself, wherever the command ran
            # As the page gives them: from its folder, as its links are, whichever folder a rebuild ran from
            "file_from_page": page_path(plan.path, here, plan.path.parent),
            "base_from_page": page_path(plan.base_path, here, plan.path.parent),
            "base": abl.base, "base_path": display_path(plan.base_path), "overrides": list(abl.overrides),
            "cli_overrides": list(plan.cli_sets), "seeds": list(plan.seeds), "seeds_note": plan.seeds_note,
            "variants_selected": list(plan.variants), "variants_all": list(abl.variants),
            "figure": plan.figure, "reference_note": abl.reference_note,
        },
        "variants": variants,
        "mixed_software": mixed_software(variants),
        "mixed_test_sets": mixed_test_sets(variants),
        "mixed_data_files": mixed_data_files(variants),
        "identical_variants": identical_variants(plan.runs),
        "same_training_variants": same_training_variants(plan.runs),
    }  # fmt: skip


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def page_path(target: Path, here: Path, project: Path) -> str:
    """`target` as the page in `here` gives it: from that folder, as its links are, where both lie in
    `project` (the ablation file's folder: the two travel together), else absolute (a shipped spec,
    an --out elsewhere), so that neither the folder a rebuild runs from (a user test: the page's
    `Ablation file` changed with it) nor a copy of the folder changes it."""
    target, here, project = target.resolve(), here.resolve(), project.resolve()
    return _rel(target, here) if target.is_relative_to(project) and here.is_relative_to(project) else str(target)


def _page_paths(ablation: dict[str, Any]) -> dict[str, str]:
    """The page's `Ablation file` and `Base spec` lines' paths, said as from the page's folder; a
    record written before it recorded them gives those of the folder it was made from."""
    if "file_from_page" not in ablation:  # older records
        return {"file": f"`{ablation['file']}`", "base": f"`{ablation['base_path']}`"}
    return {key: f"`{path}`" + ("" if Path(path).is_absolute() else " (from this page's folder)")
            for key, path in (("file", ablation["file_from_page"]), ("base", ablation["base_from_page"]))}


# --- figures -------------------------------------------------------------------------


def _curves(run_dirs: list[Path]) -> dict[str, list[list[float]]]:
    """Per-epoch val_acc / train_acc series of each run (from audit.json)."""
    out: dict[str, list[list[float]]] = {"val_acc": [], "train_acc": [], "split": []}
    for d in run_dirs:
        audit = _read_json(d / "audit.json") or {}
        hist = audit.get("training", {}).get("history", [])
        val = [h.get("val_acc") for h in hist]
        if val and _last_epoch_broken(audit):  # its point means nothing
            val[-1] = None
        out["val_acc"].append(val)
        out["train_acc"].append([h.get("train_acc") for h in hist])
        out["split"].append(audit.get("training", {}).get("selection_split"))
    return out


def _last_epoch_broken(audit: Mapping[str, Any]) -> bool:
    """Whether the accuracy the last epoch recorded was measured on a broken model (or from a loss
    that is not a number). With a val split, the run says so by withholding final_val_acc; without
    one it withholds that metric for want of the split, and its last epoch's test accuracy is
    judged as the run judges a val one (`audit.final_withheld`)."""
    training = audit.get("training", {})
    if training.get("selection_split") == "val":
        return _withheld(audit, "final_val_acc")
    last = training.get("history", [])[-1]
    return isinstance(last, dict) and final_withheld(last, audit.get("measurements") or {}, training)


def _withheld(audit: Mapping[str, Any], metric: str) -> bool:
    """Whether the run withheld `metric` (null, with a metric note saying why: a broken model, a
    loss that is not a number, no epoch selected)."""
    metrics, notes = audit.get("metrics"), audit.get("metric_notes")
    return isinstance(metrics, dict) and metrics.get(metric) is None and isinstance(notes, dict) and metric in notes


def _split_mark(curves: dict[str, Any], mixed: bool) -> str:
    """Legend suffix naming the split when variants differ in it."""
    if not mixed:
        return ""
    return " [" + "/".join(sorted({s for s in curves["split"] if s})) + "]"


def _band(series: list[list[float | None]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs (1-based), mean, min and max over the runs, up to the last epoch every run reached:
    past a run stopped early (early stopping), a mean over the runs left would jump with which runs
    went on, a step that is no trend (a user test); `_tails` gives the rest, run by run."""
    length = _common_length(series)
    epochs, mean, lo, hi = [], [], [], []
    for i in range(length):
        xs = [s[i] for s in series if i < len(s) and s[i] is not None]  # a run with no history has none
        if xs:
            epochs.append(i + 1)
            mean.append(statistics.mean(xs))
            lo.append(min(xs))
            hi.append(max(xs))
    return epochs, mean, lo, hi


def _common_length(series: list[list[float | None]]) -> int:
    """The epochs every run with a history reached."""
    return min((len(s) for s in series if s), default=0)


def _tails(series: list[list[float | None]]) -> list[tuple[list[int], list[float]]]:
    """Each run's epochs past those every run reached, as (epochs 1-based, values), from the last
    common epoch on so that it joins the band's end."""
    common = _common_length(series)
    tails = []
    for s in series:
        points = [(i + 1, x) for i, x in enumerate(s) if i >= common - 1 and x is not None]
        if len(s) > common and points:
            tails.append(([e for e, _ in points], [x for _, x in points]))
    return tails


def _uneven(data: dict[str, Any]) -> bool:
    """Whether a variant's runs ended at different epochs (drawn as tails)."""
    return any(_tails(c[key]) for c in data.values() for key in ("val_acc", "train_acc"))


FIGURE_NAMES = frozenset({"val_acc.png", "depth.png"})  # what the page folder's figures/ holds of ours

# The caption's words for `_tails`: a mean past the first run's end would be over the runs left alone.
TAILS_CAPTION = ("; where a variant's runs ended at different epochs (early stopping), its mean ends at the last "
                 "epoch all of them reached, and each run that went on is drawn alone, dotted, after it")


def make_figures(record: dict[str, Any], here: Path) -> dict[str, Any]:
    """Write figures/val_acc.png (and figures/depth.png when asked); say why when impossible."""
    try:
        import matplotlib.style
    except Exception as exc:  # noqa: BLE001 - not installed, or its settings refused (MPLBACKEND naming no backend)
        why = "is not installed" if isinstance(exc, ImportError) else f"cannot be imported ({type(exc).__name__}: {exc})"
        return {"available": False, "note": f"matplotlib {why}: no figures were drawn", "files": []}
    fig_dir = here / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    with matplotlib.style.context("default"):  # independent of any matplotlibrc
        files = _draw_figures(record, here, fig_dir)
    # A figure an earlier render drew and this page does not show (depth.png, asked for then) would stay
    # beside it, frozen at that render's runs (a user test).
    for name in FIGURE_NAMES - {Path(f["path"]).name for f in files}:
        if (fig_dir / name).is_file() and not (fig_dir / name).is_symlink():
            (fig_dir / name).unlink()
    return {"available": True, "note": "", "files": files}


def _draw_figures(record: dict[str, Any], here: Path, fig_dir: Path) -> list[dict[str, str]]:
    """Draw figures/val_acc.png (and depth.png where the record asks for it) into `fig_dir`; their
    paths and captions."""
    from auditor.render import agg_figure, epoch_axis, write_png

    data = {v["name"]: _curves([here / r["report_dir"] for r in v["runs"] if not r.get("left_out")])
            for v in record["variants"]}  # fmt: skip
    splits = sorted({s for c in data.values() for s in c["split"] if s})
    mixed = len(splits) > 1
    split_label = splits[0] if len(splits) == 1 else ("held-out" if mixed else "val")
    files = []

    fig = agg_figure((7, 4.5))
    ax = fig.subplots()
    for i, (name, c) in enumerate(data.items()):
        epochs, mean, lo, hi = _band(c["val_acc"])
        if not epochs:
            continue
        color = f"C{i % 10}"
        n = len(c["val_acc"])
        ax.plot(epochs, [100 * x for x in mean], color=color, lw=1.8, label=f"{name}{_split_mark(c, mixed)} (n={n})", marker="o" if len(epochs) == 1 else None)
        if n > 1 and len(epochs) == 1:  # one epoch has no band to fill: its min-max as an error bar
            ax.errorbar(epochs, [100 * mean[0]], yerr=[[100 * (mean[0] - lo[0])], [100 * (hi[0] - mean[0])]],
                        color=color, capsize=4, lw=0, elinewidth=1.2)
        elif n > 1:
            ax.fill_between(epochs, [100 * x for x in lo], [100 * x for x in hi], color=color, alpha=0.18, lw=0)
        _draw_tails(ax, c["val_acc"], color, 0.9, lambda x: 100 * x)
    epoch_axis(ax)
    ax.set_ylabel(f"{split_label} accuracy (%)")
    ax.set_title(f"{record['ablation']['name']}: mean over seeds, band min-max", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_or_note(ax, fontsize=8)
    fig.tight_layout()
    write_png(fig, fig_dir / "val_acc.png")
    files.append({"path": "figures/val_acc.png", "caption": _val_acc_caption(record, data, split_label, mixed)})

    if record["ablation"]["figure"] == "depth":
        files.append(_depth_figure(record, data, fig_dir, split_label, mixed))
    return files


def _val_acc_caption(record: dict[str, Any], data: dict[str, Any], split_label: str, mixed: bool) -> str:
    """What val_acc.png shows: the split, the line and band, and the runs it draws otherwise or not."""
    return (
        f"Per-epoch accuracy on the {split_label} split of every variant"
        + (" (legend: [val] or [test], the split each variant selected its best checkpoint on)" if mixed else "")
        + ": line = mean over seeds, band = min-max over seeds (an error bar where the runs of a variant have one "
        "epoch in common)" + (TAILS_CAPTION if _uneven(data) else "")
        + ("; the runs left out of the means are not drawn." if any(v.get("left_out") for v in record["variants"]) else ".")
    )  # fmt: skip


def _draw_tails(ax: Any, series: list[list[float | None]], color: str, width: float, shown: Callable[[float], float]) -> None:
    """Each run's epochs past those all its variant's runs reached (`_tails`), dotted; `shown`
    maps an accuracy to the axis' unit (%, or error %)."""
    for epochs, xs in _tails(series):
        ax.plot(epochs, [shown(x) for x in xs], color=color, lw=width, ls=":")


def _legend_or_note(ax: Any, **legend: Any) -> None:
    """The legend, or a note on an empty plot that no run has finished an epoch yet."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**legend)
    else:
        ax.text(0.5, 0.5, "no finished epochs yet", transform=ax.transAxes, ha="center", va="center", color="0.4")


def _depth_figure(
    record: dict[str, Any], data: dict[str, Any], fig_dir: Path, split_label: str, mixed: bool
) -> dict[str, str]:
    """He et al. (2016) Fig. 6 style: train error dashed/thin, held-out error bold, per network."""
    from auditor.render import agg_figure, epoch_axis, write_png

    # Only variants with a curve: a variant with no counted run has no family to group it by either.
    family = {v["name"]: str(v["runs"][0]["family"]) for v in record["variants"] if _band(data[v["name"]]["val_acc"])[0]}
    groups = {"plain": [n for n, f in family.items() if f.startswith("plain")]}
    groups["residual"] = [n for n in family if n not in groups["plain"]]
    groups = {k: v for k, v in groups.items() if v} or {"no": []}  # one empty panel, saying why
    place = {v["name"]: i for i, v in enumerate(record["variants"])}  # colours as in val_acc.png
    fig = agg_figure((6 * len(groups), 4.5))
    axes = fig.subplots(1, len(groups), squeeze=False)
    # One epoch has no line: its points are markers, which the legend and caption say (a user test).
    single = " (an x where the runs of a variant have one epoch in common)" if any(len(_band(data[n]["train_acc"])[0]) == 1 for n in family) else ""
    for ax, (title, names) in zip(axes[0], groups.items(), strict=True):
        for i, name in enumerate(names):
            c, color = data[name], f"C{place[name] % 10}"
            ep, tr, _, _ = _band(c["train_acc"])
            dot = {"marker": "o"} if len(ep) == 1 else {}  # a single epoch has no line to draw
            ax.plot(ep, [100 * (1 - x) for x in tr], color=color, lw=0.8, ls="--", **({"marker": "x"} if dot else {}))
            ep, va, _, _ = _band(c["val_acc"])
            label = f"{name}{_split_mark(c, mixed)} (n={len(c['val_acc'])})"
            ax.plot(ep, [100 * (1 - x) for x in va], color=color, lw=2.2, label=label, **dot)
            for key, width in (("train_acc", 0.6), ("val_acc", 1.2)):
                _draw_tails(ax, c[key], color, width, lambda x: 100 * (1 - x))
        epoch_axis(ax)
        ax.set_title(f"{title} networks")
        ax.set_ylabel("error (%)")
        ax.grid(alpha=0.3)
        _legend_or_note(ax, fontsize=8, title=f"bold: {split_label} error; dashed: training error{single and ' (x: one epoch)'}",
                        title_fontsize=7)  # fmt: skip
    fig.tight_layout()
    write_png(fig, fig_dir / "depth.png")
    return {"path": "figures/depth.png", "caption": (
        f"Error vs epoch per network, in the style of He et al. (2016) Fig. 6: dashed thin = training error{single} "
        f"(running, on augmented training batches), bold = error on the {split_label} split{' (legend: [val] or [test])' if mixed else ''} "
        "(He et al. plot test error; here it is the split each run selected on). Mean over seeds (n in the legend)"
        + (TAILS_CAPTION if _uneven({n: data[n] for n in family}) else "") + "."
    )}  # fmt: skip


# --- rendering -----------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def fmt_stat(stat: dict[str, Any], kind: str, n_total: int | None = None) -> str:
    """`93.91 ± 0.12 %`, `123.4 ± 5.6 s`, `11.17 M`; `—` when nothing was measured."""
    mean, std, n = stat["mean"], stat["std"], stat["n"]
    if mean is None:
        return "—"
    if kind == "acc":
        text = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "") + " %"
    elif kind == "seconds":
        text = f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "") + " s"
    else:  # params: identical across seeds for one architecture
        same = stat["min"] == stat["max"]
        text = in_millions(mean) + ("" if same or std is None else f" ± {in_millions(std)}") + " M"
    if n_total is not None and n != n_total:
        text += f" (n={n})"
    return text


def fmt_value(x: float | None, kind: str) -> str:
    """One published or measured value: `93.57 %`, `12.3 s`, `11.17 M`; `—` when absent."""
    if x is None:
        return "—"
    return {"acc": f"{100 * x:.2f} %", "seconds": f"{x:.1f} s"}.get(kind, f"{in_millions(x)} M")


def fmt_reference(ref: dict[str, Any] | None, metric: str) -> str:
    """A variant's published `metric` with what it is (its note), or `—`."""
    value = ref.get(metric) if ref else None
    if value is None:
        return "—"
    note = ref.get("note") if ref else None
    return fmt_value(value, "acc") + (f" ({note})" if note else "")


def fmt_delta(ours: dict[str, Any], ref: float | None, chosen_on_test: bool = False) -> str:
    """Our mean minus the reference, in percentage points, with the spread of ours and its n beside
    it (the reference has none on the page); `—` when either is missing. `chosen_on_test`: our
    figure is a test accuracy of a checkpoint chosen on the test split (optimistic)."""
    if ours["mean"] is None or ref is None:
        return "—"
    spread = (f"our std {100 * ours['std']:.2f} pp, n={ours['n']}" if ours["std"] is not None else
              "1 seed: no spread measured")
    optimistic = "; optimistic: our checkpoint was chosen on the test split [^test]" if chosen_on_test else ""
    return f"{100 * (ours['mean'] - ref):+.2f} pp ({spread}{optimistic})"


def variant_delta(v: dict[str, Any], metric: str) -> str:
    """`fmt_delta` of variant `v`'s `metric` against its reference, said optimistic for a test
    accuracy where some of its runs chose their checkpoint on the test split."""
    ref = v["reference"][metric] if v["reference"] else None
    return fmt_delta(v["stats"][metric], ref, metric == "test_acc" and bool(v["selected_on_test"]))


def fmt_overrides(items: list[str]) -> str:
    """A variant's overrides as inline code, or `(none: the base)`."""
    return ", ".join(f"`{i}`" for i in items) if items else "(none: the base)"


def _env() -> Any:
    from auditor.render import make_environment

    return make_environment({
        "stat": fmt_stat, "value": fmt_value, "pct": _pct, "delta": variant_delta, "overrides": fmt_overrides,
        "reference": fmt_reference,
    })  # fmt: skip


def data_labels(variants: list[dict[str, Any]]) -> list[str]:
    """What the page's runs were scored on where that is not the official CIFAR-10 test set, one
    entry each, naming its variants unless every run on the page was scored on that one."""
    runs = [(v["name"], r.get("data_label")) for v in variants for r in v["runs"]]
    by_label: dict[str, list[str]] = {}
    for name, label in runs:
        if label and name not in by_label.setdefault(label, []):
            by_label[label].append(name)
    if len(by_label) == 1 and all(label for _, label in runs):
        return list(by_label)
    return [f"{label} ({'variant' if len(names) == 1 else 'variants'} {', '.join(names)})"
            for label, names in sorted(by_label.items())]  # fmt: skip


def busy_note(runs: list[dict[str, Any]]) -> str | None:
    """The page's warning of runs that trained on a busy machine (their sheets warn of it too),
    whose train times then do not compare; None where none did (or the record is older)."""
    busy = [r for r in runs if r.get("busy_share") is not None]
    unknown = [r["name"] for r in runs if r.get("busy_unknown")]
    # A re-judge keeps a run's train time but not how busy the machine was then (a user test: the warning went).
    not_known = (f"How busy the machine was while {count(len(unknown), 'run')} trained is not known: "
                 f"{first_of([f'`{n}`' for n in unknown[:10]], len(unknown))} {'was' if len(unknown) == 1 else 'were'} "
                 "re-judged after the training had ended, and the share of the processes that trained "
                 f"{'it' if len(unknown) == 1 else 'them'} was not kept; "
                 f"{'its train time' if len(unknown) == 1 else 'their train times'} may not compare either.") if unknown else ""
    part = [r["name"] for r in runs if r.get("busy_part")]
    # A resumed run's meter ran in the process that resumed it alone (a user test: a run busy before it was
    # killed was then shown beside the others as if trained on a quiet machine).
    in_part = (f"How busy the machine was is known only in part for {count(len(part), 'run')}: "
               f"{first_of([f'`{n}`' for n in part[:10]], len(part))} {'was' if len(part) == 1 else 'were'} "
               "resumed, and the training before the resume, in earlier processes, was not metered; "
               f"{'its train time' if len(part) == 1 else 'their train times'} may not compare either.") if part else ""
    rest = " ".join(t for t in (not_known, in_part) if t)
    if not busy:
        return f"**Busy machine:** {rest}" if rest else None
    which = ", ".join(f"`{r['name']}` ({r['busy_share']:.0%})" for r in busy)
    return (f"**Busy machine:** other processes used a share of the CPU while {count(len(busy), 'run')} trained: "
            f"{which}. Their train times are slower than their specs alone would make them, so the train time "
            "column does not compare like with like; the accuracies are not affected." + (f" {rest}" if rest else ""))


def uneven_epochs(variants: list[dict[str, Any]]) -> list[str]:
    """Per variant whose counted runs ended after different numbers of epochs (early stopping, or a
    step budget reached at another point), which seeds ran how many: its final val acc and train
    time then average runs of different lengths. Empty where none did (or the record is older)."""
    lines = []
    for v in variants:
        by_epochs: dict[int, list[int]] = {}
        for r in v["runs"]:
            if not r.get("left_out") and isinstance(r.get("epochs_run"), int):
                by_epochs.setdefault(r["epochs_run"], []).append(r["seed"])
        if len(by_epochs) > 1:
            parts = [f"{'seed' if len(seeds) == 1 else 'seeds'} {', '.join(map(str, seeds))} ran {count(n, 'epoch')}"
                     for n, seeds in sorted(by_epochs.items())]  # fmt: skip
            lines.append(f"{v['name']}: {'; '.join(parts)}")
    return lines


def seed_sets(variants: list[dict[str, Any]]) -> list[str]:
    """Each counted variant's seeds, where the rows do not all average the same seeds (a user test:
    after `--seeds 4 --only lr10`, one row averaged seeds 0-3 and the others 0-2, unsaid); empty
    where they do."""
    counted = [v for v in variants if v.get("n") and v.get("seeds")]  # a record too old to say: none
    if len({tuple(sorted(v["seeds"])) for v in counted}) < 2:
        return []
    return [f"{v['name']}: {'seed' if v['n'] == 1 else 'seeds'} {', '.join(map(str, sorted(v['seeds'])))}" for v in counted]


def render_ablation(here: Path) -> Path:
    """(Re)write ABLATIONS.md and the figures from `here/ablations.json` and the runs' audit.json."""
    record = _read_json(here / "ablations.json")
    if record is None or record.get("schema_version") != SCHEMA_VERSION:
        raise InvalidInput(f"{here}: no readable ablations.json (is this an `auditor ablate` report folder?)")
    figures = make_figures(record, here)  # a page edited by hand was refused before (check_page_folder)
    ref_metrics = [
        k for k in REFERENCE_METRICS
        if any(v["reference"] and v["reference"].get(k) is not None for v in record["variants"])
    ]  # fmt: skip
    text = _env().get_template("ablations.md.j2").render(
        a=record["ablation"], paths=_page_paths(record["ablation"]), variants=record["variants"], metrics=METRICS,
        figures=figures,
        ref_metrics=ref_metrics, any_test_selection=any(v["no_val_split"] for v in record["variants"]),
        any_test_choice=any(v["selected_on_test"] for v in record["variants"]),
        data_labels=data_labels(record["variants"]),
        any_missing=any(v["missing"] for v in record["variants"]), mixed_software=record["mixed_software"],
        any_left_out=any(v.get("left_out") for v in record["variants"]),  # older records: none
        any_mixed_data=any(v.get("mixed_data") for v in record["variants"]),
        mixed_test_sets=record.get("mixed_test_sets") or {},  # older records: not compared
        mixed_data_files=record.get("mixed_data_files") or {},  # older records: not compared
        one_seed=[v["name"] for v in record["variants"] if v["n"] == 1],
        identical=record.get("identical_variants") or [],  # older records: not compared
        same_training=record.get("same_training_variants") or [],  # older records: not compared
        sheetless=[r for v in record["variants"] for r in v["runs"] if not r.get("sheet_exists", True)],
        busy_note=busy_note([r for v in record["variants"] for r in v["runs"]]),
        uneven=uneven_epochs(record["variants"]), seed_sets=seed_sets(record["variants"]),
    )  # fmt: skip
    out = here / ABLATION_PAGE
    atomic_write_bytes(out, with_mark(text).encode())
    return out


def check_page_folder(out: Path, plan: Plan) -> None:
    """Refuse, before anything runs, a page folder that is not this ablation's: a run's report
    folder of the same name, or the page of another ablation file with the same name."""
    here = report_dir(out, plan.ablation.name)
    if (blocker := file_in_the_way(here)) is not None:  # found only once every run had trained (a user test)
        where = ("--out" if blocker in (out, *out.parents) else "the reports folder" if blocker == out / "reports"
                 else "the ablation's page folder")  # fmt: skip
        raise out_error(out, f"{not_a_folder(blocker)} ({where}); move it away: nothing was run")
    if not os.access(nearest := next(p for p in (here, *here.parents) if p.exists()), os.W_OK | os.X_OK):
        raise out_error(out, f"{nearest}: permission denied (the ablation's page goes in {here}); nothing was run")
    if (here / "audit.json").exists():
        raise InvalidInput(f"{here}: is the report folder of a run named {plan.ablation.name!r}; rename the ablation")
    refuse_hand_edited(here / ABLATION_PAGE, "page")  # found before any run, not once every run had trained
    earlier = _read_json(here / "ablations.json")
    theirs = earlier.get("ablation", {}).get("file_from_out") if isinstance(earlier, dict) else None  # older: none
    # The file's path from --out stays when both move together (a clone elsewhere, another working
    # directory) and differs for another file of the same name.
    if theirs is not None and theirs != _rel(plan.path, out):
        gone = not isinstance(theirs, str) or not (out / theirs).is_file()  # moved: its runs are this one's (a user test)
        raise InvalidInput(
            f"{here}: holds the page of the ablation in {theirs} (from --out), also named {plan.ablation.name!r}"
            + (", which is not there now" if gone else "") + "; rename one of them, or use another --out"
            + (f"; if that file was moved to {plan.source}, remove {here}: the page is made again from the runs, "
               "which are kept and not trained again" if gone else "")
        )  # fmt: skip


def check_run_names(out: Path, plan: Plan) -> None:
    """Refuse run names another ablation's page in `out` lists for another of its variants: names
    join ablation, variant and seed with '-', which both may contain (`tiny` + `abl-cos` and
    `tiny-abl` + `cos`), so one ablation's run would replace the other's. Refuse as well a run
    named as another ablation's page folder, and a page folder named as another's run (both
    live in reports/: `tiny-cos-s0` as an ablation's name)."""
    mine, page_folder = {r.name for r in plan.runs}, plan.ablation.name
    clashes, named = [], set()  # named: this ablation's runs a page's clash names already
    for page in sorted((out / "reports").glob("*/ablations.json")):
        record = _read_json(page)
        name = record.get("ablation", {}).get("name") if isinstance(record, dict) else None
        if name is None or name == plan.ablation.name:
            continue
        theirs = [(v["name"], r["name"]) for v in record.get("variants", [])
                  for r in [*v.get("runs", []), *v.get("missing", [])] if isinstance(r.get("name"), str)]  # fmt: skip
        clashes += [f"{run} (variant {v!r} of ablation {name!r})" for v, run in theirs if run in mine]
        named |= {run for _, run in theirs} & mine
        clashes += [f"{run} (this ablation's page folder; a run of variant {v!r} of ablation {name!r})"
                    for v, run in theirs if run == page_folder]  # fmt: skip
        if page.parent.name in mine:
            clashes.append(f"{page.parent.name} (the page folder of ablation {name!r})")
    for r in plan.runs:  # a run whose record says another ablation made it: its page may be gone (stopped before it)
        made = recorded_ablation_run(_read_record(report_dir(out, r.name) / "audit.json"))
        if r.name in named or made is None:
            continue
        if (made["ablation"], made["variant"]) != (plan.ablation.name, r.variant):
            clashes.append(f"{r.name} (seed {made['seed']} of variant {made['variant']!r} of ablation "
                           f"{made['ablation']!r}, as its audit.json records)")  # fmt: skip
    if clashes:
        raise InvalidInput(
            f"{out}: this ablation's runs or page would take the names of another's: {', '.join(clashes[:5])}; rename the "
            "ablation or the variant, or use another --out"
        )


def another_users_run(out: Path, run: PlannedRun, state: str, audit: dict[str, Any] | None) -> str | None:
    """Why `run` may not replace the finished run in its folders (`state` and `audit`: its
    `run_state`), or None: one of other settings that no ablation started (`auditor run --set
    name=...`, say: its record holds no `run.ablation_run`), which a rerun of this ablation would
    replace as if its own (a user test: a user's own run of the name was replaced, its report and
    checkpoints gone). A record written before runs recorded whose they are is this ablation's
    where its page lists that record for the run's variant."""
    if state not in ("stale", "rejudge") or audit is None or recorded_ablation_run(audit) is not None:
        return None
    if _on_the_page(out, run, audit.get("spec_hash")):
        return None
    return (f"{report_dir(out, run.name)}: a finished run that no ablation started (as its audit.json records), "
            f"of other settings than this ablation's run of that name, which would replace {'it' if state == 'stale' else 'its report'}; "
            "rename the ablation or the variant, use another --out, or move that run's report folder and checkpoints "
            "away")  # fmt: skip


def _on_the_page(out: Path, run: PlannedRun, spec_hash: Any) -> bool:
    """Whether the page of `run`'s ablation under `out` counts a run of `run`'s name and variant
    whose spec hash is `spec_hash`."""
    page = _read_json(report_dir(out, _ablation_of(run)) / "ablations.json")
    variants = page.get("variants") if isinstance(page, dict) else None
    return isinstance(variants, list) and any(
        isinstance(r, dict) and r.get("name") == run.name and r.get("spec_hash") == spec_hash
        for v in variants if isinstance(v, dict) and v.get("name") == run.variant and isinstance(v.get("runs"), list)
        for r in v["runs"])  # fmt: skip


def counted_runs(record: dict[str, Any]) -> int:
    """How many finished runs an ablation record lists (those left out of the means included)."""
    return sum(len(v["runs"]) for v in record["variants"])


@contextmanager
def held_page(out: Path, plan: Plan) -> Iterator[None]:
    """Hold the flock on `reports/.<ablation>.lock` beside the page folder while an ablation runs
    and writes its page: a second `auditor ablate` of that page (other --only variants, say) is
    refused, rather than both writing the page, the last one's counting runs the other had not
    finished. Where files cannot be locked, nothing is held."""
    busy = (f"an `auditor ablate` of {plan.ablation.name!r} is going on in this --out (another process holds this "
            "lock); wait for it to finish, then run this one: finished runs are skipped")  # fmt: skip
    with held_lock(lock_beside(report_dir(out, plan.ablation.name)), busy, out):
        yield


def write_outputs(out: Path, plan: Plan, render_only: bool = False) -> tuple[Path, dict[str, Any]]:
    """Aggregate, write ablations.json, render ABLATIONS.md and figures; return the page and the
    record it was rendered from. `render_only`: refuse a page that would count no run where the
    page there counted some (other --set or --seeds than the runs were made with)."""
    check_page_folder(out, plan)
    here = report_dir(out, plan.ablation.name)
    record = aggregate(out, plan)
    earlier = _read_json(here / "ablations.json") if render_only and not counted_runs(record) else None
    if isinstance(earlier, dict) and "variants" in earlier and counted_runs(earlier):
        made = earlier.get("ablation", {})
        refused = [m["name"] for v in record["variants"] for m in v["missing"] if m.get("edited")]
        if refused:  # finished under the plan's spec, but not counted
            raise InvalidInput(
                f"--render-only: no run of this plan under {out} would be counted, where the page counts "
                f"{counted_runs(earlier)}: `auditor check` refuses the audit.json of its "
                f"{count(len(refused), 'finished run')} ({', '.join(refused[:5])}{', ...' if len(refused) > 5 else ''}; "
                "`auditor check` on a run's report folder says why): the page says how to mend each, or remove "
                "their report folders and run the plan (without --render-only) to train them afresh; nothing was "
                "rewritten")
        if made.get("cli_overrides") == list(plan.cli_sets) and made.get("seeds") == list(plan.seeds):
            why = ("with the same --set and seeds as this one, so the base spec or the ablation file changed since "
                   "(every run's spec hash differs from the plan's); undo that change, or run the plan")  # fmt: skip
        else:
            why = _made_with_text(made, plan, out)
        raise InvalidInput(f"--render-only: no finished run of this plan under {out}, where the page counts "
                           f"{counted_runs(earlier)}, {why}; nothing was rewritten")  # fmt: skip
    try:
        write_json(here / "ablations.json", record)
    except OSError as exc:
        raise out_error(out, why_not_writable(exc, here)) from None
    return render_ablation(here), record


def _made_with_text(made: Any, plan: Plan, out: Path) -> str:
    """How the page's runs were made (`made`: its ablations.json's "ablation"), with the command
    that rebuilds it where the record gives one (a user test: "seeds 0" read as `--seeds 0`)."""
    given, seeds = made.get("cli_overrides"), made.get("seeds")
    sets = " ".join(f"--set {shlex.quote(str(s))}" for s in given) if isinstance(given, list) else ""
    seeds = ", ".join(map(str, seeds)) if isinstance(seeds, list) and seeds else "none recorded"
    argv = rebuild_argv(made, plan.path, out, list(plan.ablation.seeds))
    rebuild = f"`{shell_command(argv)}` rebuilds it" if argv is not None else "give those"
    return f"made with {sets or 'no --set'} and seeds {seeds}: {rebuild}, or run the plan"


def refuse_nothing_to_render(out: Path, plan: Plan) -> None:
    """InvalidInput for `--render-only` where `out` holds neither a page of the ablation nor a
    report of any of its runs (a mistyped --out): an empty page would pass for the aggregate."""
    reports = out / "reports"
    here = report_dir(out, plan.ablation.name)
    runs = run_names(plan.ablation.name, plan.ablation.variants)
    found = (p for p in reports.glob(f"{glob.escape(plan.ablation.name)}-*/audit.json") if runs.fullmatch(p.parent.name))
    if (here / "ablations.json").exists() or next(found, None) is not None:
        return
    raise InvalidInput(f"--render-only: {reports} holds no report of a run of {plan.ablation.name} "
                       f"({plan.ablation.name}-<variant>-s<seed>/audit.json) and no page of it: nothing to aggregate; "
                       "run the ablation (without --render-only), or give the --out it was run with; nothing was written")


def page_record(out: Path, plan: Plan) -> dict[str, Any] | None:
    """The ablations.json now under `out` for `plan`'s ablation (read before a page replaces it), or None."""
    return _read_json(report_dir(out, plan.ablation.name) / "ablations.json")


def _counted_rows(record: Any) -> dict[str, Any]:
    """The runs an ablation record lists as finished: name -> the spec hash it was counted under
    (none for a record this version cannot read)."""
    try:
        return {r["name"]: r.get("spec_hash") for v in record["variants"] for r in v["runs"] if isinstance(r["name"], str)}
    except (KeyError, TypeError, AttributeError):
        return {}


def dropped_runs(earlier: Any, plan: Plan) -> list[str]:
    """The finished runs the page `earlier` (an ablations.json) listed for seeds that `plan` leaves
    out (`--seeds 1` after 3): runs this plan never touches, which its page no longer lists."""
    made = earlier.get("ablation") if isinstance(earlier, dict) else None
    seeds = made.get("seeds") if isinstance(made, dict) else None
    if not isinstance(seeds, list):
        return []
    left = {run_name(plan.ablation.name, v, s) for v in plan.variants for s in seeds
            if type(s) is int and s not in plan.seeds}  # fmt: skip
    return sorted(left & _counted_rows(earlier).keys())


def _seeds_given(file_seeds: list[int], n: int, file: Path) -> list[int] | None:
    """The seeds `--seeds n` gives of the file's, or None where it would refuse them (past the bound)."""
    try:
        return choose_seeds(file_seeds, n, str(file))[0]
    except InvalidInput:
        return None


def rebuild_argv(made: Mapping[str, Any], file: Path, out: Path, file_seeds: list[int]) -> list[str] | None:
    """The `ablate FILE ... --render-only` arguments that rebuild the page whose ablations.json
    records `made` (its "ablation"): its --set, --seeds, --only (a page of the selected variants
    alone) and --depth-figure; None where the record or the file's seeds cannot give them."""
    sets, seeds = made.get("cli_overrides"), made.get("seeds")
    chosen, every = made.get("variants_selected"), made.get("variants_all")
    if not (isinstance(sets, list) and all(isinstance(s, str) for s in sets) and isinstance(seeds, list)
            and 1 <= len(seeds) <= MAX_SEEDS and _seeds_given(file_seeds, len(seeds), file) == seeds):
        return None  # fmt: skip
    only = ["--only", *chosen] if isinstance(chosen, list) and chosen != every and all(
        isinstance(v, str) for v in chosen) else []  # fmt: skip
    return ["ablate", path_arg(display_path(file)), *set_args(sets),
            *([] if seeds == file_seeds else ["--seeds", str(len(seeds))]), *only,
            *(["--depth-figure"] if made.get("figure") == "depth" else []), *out_args(display_path(out)),
            "--render-only"]  # fmt: skip


def replaced_page_note(earlier: Any, record: dict[str, Any], plan: Plan, out: Path) -> str | None:
    """A note for the page of `plan` (`record`) where it replaced one (`earlier`, that page's
    ablations.json) that listed finished runs of seeds this plan leaves out, or runs of this plan's
    names that `record` does not count (another --set), with the command that rebuilds that page,
    or why none can; else None. Nothing else would say the page dropped them."""
    dropped, then = dropped_runs(earlier, plan), _counted_rows(earlier)
    made = earlier.get("ablation") if isinstance(earlier, dict) else None
    sets = made.get("cli_overrides") if isinstance(made, dict) and isinstance(made.get("cli_overrides"), list) else []
    # Runs of this plan's names that page counted and this one does not, where another --set made them (a
    # --render-only of some had shrunk the page without a word: a user test); not where the file changed
    # since, which that page's command would not rebuild (a review): the page lists those as stale.
    counted = _counted_rows(record)
    uncounted = sorted(n for n in then.keys() & {r.name for r in plan.runs} if n not in counted) \
        if isinstance(made, dict) and sets != list(plan.cli_sets) else []  # fmt: skip
    if not dropped and not uncounted:
        return None
    made_with = f"seeds {made['seeds']}" + (f", {shlex.join(set_args(list(map(str, sets))))}" if sets else "")
    listed = [f"{count(len(dropped), 'finished run')} of other seeds ({_first_names(dropped)})"] if dropped else []
    if uncounted:
        listed.append(f"{count(len(uncounted), 'finished run')} this page does not count ({_first_names(uncounted)}: "
                      "of the spec the --set above gave them)")  # fmt: skip
    text = (f"note: this page covers seeds {list(plan.seeds)}; the page it replaced ({made_with}) also listed "
            f"{' and '.join(listed)}, which this command left untouched")  # fmt: skip
    if why := _not_rebuildable(then, dropped, out):
        return f"{text}; that page cannot be rebuilt as it was: {'; '.join(why)}"
    return f"{text}; {_rebuild_text(made, plan, out)}"


def _not_rebuildable(then: dict[str, Any], dropped: Sequence[str], out: Path) -> list[str]:
    """Why the replaced page (`then`: its counted runs' specs) cannot be rebuilt as it was, or []."""
    # Runs of the seeds both pages cover, as they are on disk (not as this page counts them: one of
    # another --set is there all the same): made again under another spec, or gone; or there, but
    # edited since, so that a rebuilt page would not count it.
    on_disk = {name: _spec_on_disk(out, name) for name in then}  # the dropped runs too: a rebuild counts them
    changed = sorted(n for n, spec in on_disk.items() if n not in dropped and (spec is None or spec[0] != then[n]))
    refused = sorted(name for name, spec in on_disk.items() if spec == (then[name], True))
    why = []
    if changed:
        why.append(f"{count(len(changed), 'run')} it listed ({_first_names(changed)}) "
                   f"{'is' if len(changed) == 1 else 'are'} no longer there under the spec it listed")  # fmt: skip
    if refused:
        why.append(f"`auditor check` now refuses the audit.json of {count(len(refused), 'run')} it listed "
                   f"({_first_names(refused)})")  # fmt: skip
    return why


def _rebuild_text(made: Any, plan: Plan, out: Path) -> str:
    """The command that rebuilds the replaced page (`made`: how its ablations.json says it was
    made), or why none does."""
    argv = rebuild_argv(made, plan.path, out, list(plan.ablation.seeds))
    if argv is None:
        seeds, given = made.get("seeds"), made.get("cli_overrides")
        told = isinstance(seeds, list) and isinstance(given, list) and all(isinstance(x, str) for x in given)
        why = (f"its seeds {seeds} are not what the file's seeds {list(plan.ablation.seeds)} give" if told
               else "its ablations.json does not say how it was made")  # fmt: skip
        return f"no `--render-only` of the file as it is now rebuilds that page ({why})"
    return f"`{shell_command(argv)}` rebuilds that page"


def variants_gone_note(earlier: Any, plan: Plan) -> str | None:
    """A note where the page replaced (`earlier`, its ablations.json) listed finished runs of variants
    the ablation file no longer has (renamed or removed), or None: the new page left them out
    without a word (a user test)."""
    gone: dict[str, list[str]] = {}
    for v in earlier.get("variants", []) if isinstance(earlier, dict) and isinstance(earlier.get("variants"), list) else []:
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or v["name"] in plan.ablation.variants:
            continue
        runs = v.get("runs") if isinstance(v.get("runs"), list) else []
        if names := [r["name"] for r in runs if isinstance(r, dict) and isinstance(r.get("name"), str)]:
            gone[v["name"]] = names
    if not gone:
        return None
    listed = "; ".join(f"{name!r}: {_first_names(names)}" for name, names in gone.items())
    return (f"note: the page it replaced also listed finished runs of {count(len(gone), 'variant')} that {plan.source} "
            f"no longer has (renamed or removed; {listed}), which this page leaves out; those runs are left as they are")  # fmt: skip


def _spec_on_disk(out: Path, run: str) -> tuple[Any, bool] | None:
    """(spec hash, whether `check` refuses it) of run `run`'s finished report under `out`; None:
    none, or unreadable."""
    record = _read_json(report_dir(out, run) / "audit.json")
    return (record.get("spec_hash"), check_refusal(record) is not None) if record is not None else None


def _first_names(names: list[str], most: int = 10) -> str:
    """'a, b, c' or, past `most` names, 'a, ..., j and 3 more'."""
    return first_of(names[:most], len(names))


def page_rebuild_command(page_dir: Path) -> str | None:
    """`auditor ablate FILE ... --render-only` that rebuilds the ablation page in `page_dir` (an
    `OUT/reports/<ablation>` folder) as its ablations.json records it; None where that record,
    the ablation file or the runs cannot tell it (a page folder renamed, or moved without its runs)."""
    page = Path(os.path.abspath(page_dir))  # `.` or `x/..` named as the folder it is
    record = _read_json(page / "ablations.json")
    made = record.get("ablation") if record else None
    if not isinstance(made, dict) or page.parent.name != "reports" or made.get("name") != page.name:
        return None
    out = page.parent.parent
    if not isinstance(made.get("file_from_out"), str) or not any(
            (out / "reports" / name / "audit.json").is_file() for name in _counted_rows(record)):  # fmt: skip
        return None
    try:
        file, abl = load_ablation(str(out / made["file_from_out"]))
    except InvalidInput:
        return None
    argv = rebuild_argv(made, file, out, list(abl.seeds))
    return None if argv is None else shell_command(argv)


# --- running a plan ----------------------------------------------------------------


Log = Callable[[str], None]


def list_lines(plan_source: str, only: list[str] | None = None, n_seeds: int | None = None) -> list[str]:
    """`--list`: the ablation file, its overrides, seeds (the first `n_seeds`, as `--seeds` picks
    them, when given) and variants (those of `only`, when given)."""
    path, abl = load_ablation(plan_source)
    chosen = _select_variants(plan_source, abl, only or [])
    seeds, note = choose_seeds(abl.seeds, n_seeds, plan_source)
    resolve_base(path, abl, plan_source)  # a base that is not there is refused here too (a user test)
    width = max(len(v) for v in chosen)
    return [
        f"# {display_path(path)}: ablation {abl.name!r}, base {abl.base}",
        f"# overrides (every run): {' '.join(abl.overrides) or '(none)'}",
        f"# seeds: {seeds}" + (f"  ({note})" if note else ""),
        *(f"{v:<{width}}  {' '.join(abl.variants[v]) or '(base)'}" for v in chosen),
        "# the overrides as written: --dry-run resolves and validates every run",
    ]


def plan_lines(plan: Plan, out: Path, replace_stale: bool = False) -> list[str]:
    """`--dry-run`: every planned pair, its state and its `auditor run` command (`replace_stale`:
    as `check_runnable` takes it)."""
    abl = plan.ablation
    lines = [f"# ablation {abl.name!r} ({display_path(plan.path)}): base {display_path(plan.base_path)}",
             f"# overrides (every run): {' '.join(abl.overrides) or '(none)'}"]  # fmt: skip
    if plan.cli_sets:
        lines.append(f"# --set (every run, before the variant's own): {' '.join(plan.cli_sets)}")
    lines.append(f"# seeds: {list(plan.seeds)}" + (f"  ({plan.seeds_note})" if plan.seeds_note else ""))
    lines.append(f"# {count(len(plan.runs), 'run')}: {count(len(plan.variants), 'variant')} x "
                 f"{count(len(plan.seeds), 'seed')}; out: {out}")  # fmt: skip
    lines += [f"# note: {w}" for w in plan.warnings]
    now = this_machine(plan)
    for r in plan.runs:
        state, audit = run_state(out, r)
        label = finished_label(audit or {}, now[r.spec.train.device]) if state == "finished" else (
            _refused_label(out, r, state, audit, replace_stale) or _to_do_label(out, r, state, audit))  # fmt: skip
        lines += [f"{r.name}  variant {r.variant}  seed {r.seed}  [{label}]", f"  spec sha256: {r.spec_hash}",
                  f"  overrides: {' '.join(abl.variants[r.variant]) or '(base)'}",
                  f"  {shell_command(run_argv(plan, r, out, state in ('resume', 'rejudge')))}"]  # fmt: skip
    return lines


def _to_do_label(out: Path, run: PlannedRun, state: str, audit: dict[str, Any] | None) -> str:
    """The dry run's word for a run that is not finished, where `check_runnable` lets it run."""
    return {
        "running": f"going on now in another process{_holder_text(out, run)}",
        "resume": "resume (interrupted)",
        "rejudge": "re-judge (changed only outside training: no training)" if audit is not None else
        "re-judge (its audit.json cannot be read: its intact last.pt, of this training, is measured and judged "
        "again; delete its report folder to train it afresh)",
        "stale": "run (replaces a run of a different spec)",
        "new": "run (replaces a report whose audit.json cannot be read)"
        if (report_dir(out, run.name) / "audit.json").exists() else "run",
    }[state]  # fmt: skip


def _refused_label(out: Path, run: PlannedRun, state: str, audit: dict[str, Any] | None,
                   replace_stale: bool) -> str | None:
    """The dry run's word for a run that `check_runnable` refuses, or None (a user test: the plan
    said "run" above the refusal, for a stale run and for one whose sheet was edited by hand)."""
    from auditor.runner import run_folder_problems

    if state == "running":
        return None
    if state == "resume" and other_spec_interrupted(out, run, state):
        return "refused: interrupted under another spec (see below)"
    if another_users_run(out, run, state, audit) is not None:
        return "refused: a finished run of other settings that no ablation started (see below)"
    if run_folder_problems(run_paths(out, run.name)):
        return "refused: its folders hold what this run would not replace (see below)"
    if state == "stale" and not replace_stale:
        return "refused: a finished run of a different spec, which --replace-stale replaces (see below)"
    return None


def header_lines(plan: Plan, out: Path) -> list[str]:
    """What is about to run, printed before the first run starts."""
    runs = f"{count(len(plan.runs), 'run')} ({count(len(plan.variants), 'variant')} x seeds {list(plan.seeds)})"
    return [
        f"# ablation {plan.ablation.name!r}: {runs}; out: {out}",
        *([f"# {plan.seeds_note}"] if plan.seeds_note else []),
        *(f"# note: {w}" for w in plan.warnings),
    ]


# Signals that stop a run rather than crash it (a kill -9 too: the run resumes from its checkpoints);
# a run killed by another (SIGSEGV, SIGABRT) crashed.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


@dataclass(frozen=True)
class Execution:
    """How running a plan ended: every run finished, or one stopped it (`stopped_at`)."""

    stopped_at: str | None = None  # the run whose process ended without a finished report
    position: int = 0  # its place in the plan's runs, from 1
    returncode: int = 0  # that process's exit status (negative: the signal that killed it)
    interrupted: bool = False  # it was stopped (Ctrl-C, SIGTERM, a kill) rather than crashed

    def ended(self) -> str:
        """How the stopped run's process ended: 'exited 1', 'was killed by SIGSEGV'."""
        return f"exited {self.returncode}" if self.returncode >= 0 else f"was killed by {signal_name(self.returncode)}"

    def exit_code(self) -> int:
        """This command's exit code for a crashed run: its own, or 128 + its signal, as a shell says."""
        return 128 - self.returncode if self.returncode < 0 else self.returncode or EXIT_FAILED


# Why check_runnable refuses a stale run (one of this ablation's, finished under a spec changed since)
STALE_RUN = ("a finished run of this ablation, made under a spec that has changed since (the file, its base or a "
             "--set), which running would replace, its report and checkpoints")  # fmt: skip

# How execute_plan's log names a run it starts, by run_state
STATE_WORDS = MappingProxyType({
    "resume": "resume", "rejudge": "rejudge", "new": "run",
    "stale": "run, replacing the finished run of a different spec there (its report and checkpoints)",
})  # fmt: skip


def check_runnable(plan: Plan, out: Path, replace_stale: bool = False) -> None:
    """Refuse, before anything runs, what `auditor run` would refuse only when a run's turn came
    (and the ablation stop there), naming the variant: runs to come that need what this machine
    lacks (CUDA, fp16 without it, a compile the environment switches off) or data that is not
    there, interrupted runs that cannot be continued under the spec planned for them, and files of
    the user's in a run's folders, which the run would refuse to replace. Refuse as well, unless
    `replace_stale`, to train again the finished runs of a spec that has changed since (a user
    test: a one-off `--set train.epochs=3` replaced a whole study's runs without a word)."""
    from auditor.runner import machine_problems, run_folder_problems

    found: dict[str, list[tuple[str, bool]]] = {}
    interrupted: list[str] = []
    blocked: list[str] = []
    stale: list[str] = []
    if os.path.lexists(out) and not out.is_dir():
        raise InvalidInput(f"--out {out}: not a folder; nothing was run")
    for v in plan.variants:
        todo = [(r, *now) for r in plan.runs_of(v) if (now := run_state(out, r))[0] != "finished"]  # (run, state, audit)
        if todo:  # the seeds differ only in seed and name
            own_keys = _keys(plan.ablation.variants[v])
            found[v] = list(dict.fromkeys((str(p), any(_overlap(p.field, k) for k in own_keys))
                                          for p in machine_problems(todo[0][0].spec)))  # fmt: skip
        interrupted += [f"{plan.source}: variant {v!r} seed {r.seed}: {p}" for r, state, _ in todo
                        if (p := other_spec_interrupted(out, r, state))]  # fmt: skip
        for r, state, audit in todo:
            where, theirs = f"{plan.source}: variant {v!r} seed {r.seed}: ", another_users_run(out, r, state, audit)
            blocked += [where + p for p in [*run_folder_problems(run_paths(out, r.name)), theirs] if p]
            stale += [f"{where}{report_dir(out, r.name)}: {STALE_RUN}"] if state == "stale" and theirs is None else []
    problems, advice = _problem_lines(plan.source, found)
    if interrupted:
        advice.append("remove such a folder to start that run afresh (its training so far is lost), or continue it "
                      "with the ablation file and --set it was started with")  # fmt: skip
    if replace_stale:
        stale = []
    elif stale:
        advice.append("add --replace-stale to train such runs again in their place, or keep them: use another --out, or "
                      "rename the ablation (or give the --set they were made with)")  # fmt: skip
    if problems or interrupted or blocked or stale:
        done = "; ".join(["nothing was run", *advice])
        raise InvalidInput("\n".join([*problems, *interrupted, *blocked, *stale, done]))


def _problem_lines(source: str, found: dict[str, list[tuple[str, bool]]]) -> tuple[list[str], list[str]]:
    """(lines, advice) for what the variants to run meet, each (problem, whether the variant's own
    overrides set its field). One that comes from what every variant is given (the base spec,
    the file's overrides, --set) is said once where more than one variant meets it, and is
    mended there; one a variant's own overrides cause is left out with --only."""
    given = [{p for p, own in ps if not own} for ps in found.values()]
    shared = set.intersection(*given) if len(given) > 1 else set()
    lines = [f"{source}: every variant to run: {p}" for p, _ in next(iter(found.values()), []) if p in shared]
    lines += [f"{source}: variant {v!r}: {p}" for v, ps in found.items() for p, _ in ps if p not in shared]
    advice = []
    if any(not own for ps in found.values() for _, own in ps):
        advice.append("what every variant is given is mended in the base spec, the file's overrides or a --set, "
                      "which every variant takes (e.g. --set data.root=DIR for your copy of CIFAR-10; a --set that "
                      "changes what is trained makes finished runs run again)")  # fmt: skip
    if any(own for ps in found.values() for _, own in ps):
        advice.append("leave the variants whose own overrides cause it out with --only, or run the ablation where "
                      "they can run")  # fmt: skip
    return lines, advice


def other_spec_interrupted(out: Path, run: PlannedRun, state: str | None = None) -> str | None:
    """Why `auditor run --resume` would refuse the interrupted run in the way of `run`: the
    checkpoint it would continue from (`checkpoint.resume_point`) trained under a spec that differs
    in what is trained. None where there is none, or nothing intact (the run says so, and starts
    over where it can). `state`: the run's `run_state`, where the caller has read it already."""
    from auditor import checkpoint
    from auditor.runner import listed

    if (state or run_state(out, run)[0]) != "resume":
        return None
    staging = run_paths(out, run.name).ckpt_staging
    try:
        found, _ = checkpoint.resume_point(staging)
        payload = checkpoint.load(found, check_digest=False) if found is not None else {}  # verified
    except InvalidInput:
        return None
    made, before = ablation_run_of(payload.get("ablation_run")), payload.get("spec")
    if made is not None and (made["ablation"], made["variant"]) != (_ablation_of(run), run.variant):
        return (f"{staging}: an interrupted run of seed {made['seed']} of variant {made['variant']!r} of ablation "
                f"{made['ablation']!r}, as its checkpoints record, which this ablation's run of that name would "
                "continue as its own (names join ablation, variant and seed with a dash)")  # fmt: skip
    if found is None or same_training(before, run.spec):
        return None
    changed, _ = training_changes(before if isinstance(before, dict) else {}, run.spec)
    return (f"{staging}: an interrupted run of this name trained under another spec, which --resume cannot "
            f"continue under this one (changed in its training settings: {listed(changed) or 'unknown'})")  # fmt: skip


def _ablation_of(run: PlannedRun) -> str:
    """The ablation's name in `run`'s name (`run_name`: `<ablation>-<variant>-s<seed>`)."""
    return run.name.removesuffix(f"-{run.variant}-s{run.seed}")


def execute_plan(plan: Plan, out: Path, log: Log) -> Execution:
    """Run every pair in order (one `auditor run` process each); skip finished ones; resume
    interrupted ones. A Ctrl-C or SIGTERM to this process is passed on to the run (which may not
    have received it), waits for the run's own clean stop and propagates."""
    total, now = len(plan.runs), this_machine(plan)
    for i, r in enumerate(plan.runs, 1):
        head = f"[{i}/{total}] {r.name}"
        state, audit = run_state(out, r)
        if state == "finished":
            log(f"{head}: {finished_label(audit or {}, now[r.spec.train.device])}")
            continue
        if state == "running":
            raise InvalidInput(f"{run_paths(out, r.name).lock}: run {r.name} is going on in another process"
                               f"{_holder_text(out, r)}; wait for it to finish, then run this ablation again: it "
                               "continues from the runs finished")  # fmt: skip
        argv = run_argv(plan, r, out, resume=state in ("resume", "rejudge"))
        what = STATE_WORDS.get(state, "run")
        log(f"{head}: {what}: {shell_command(argv)}")
        env = ablation_run_env(plan.ablation.name, r.variant, r.seed)
        rc = wait_passing_stop(subprocess.Popen([sys.executable, "-m", "auditor", *argv], env=env), "auditor ablate")
        if rc == EXIT_INVALID:
            left = f" before the remaining {count(total - i, 'run')}" if total > i else ""
            raise InvalidInput(
                f"{plan.source}: variant {r.variant!r} seed {r.seed}: `auditor run` refused to go on "
                f"(exit 2: bad input, or a file it could not write; message above); stopped{left} (mend what it refused and run "
                "the ablation again: it continues from the runs finished; the same command with --render-only writes "
                "the page of those now)"
            )  # fmt: skip
        if rc in (EXIT_INTERRUPTED, EXIT_TERMINATED) or -rc in STOP_SIGNALS:
            return Execution(r.name, i, rc, interrupted=True)
        if run_state(out, r)[0] != "finished":  # rc 1 from a crash leaves no audit.json
            return Execution(r.name, i, rc)
    return Execution()


def stale_page_note(out: Path, plan: Plan) -> str | None:
    """Of an ablation stopped before its end: the runs its page (written by an earlier invocation)
    counts that have since been replaced or removed (another spec hash, other metrics, no record),
    or None. The page is rewritten only at the end, and had linked sheets whose figures it no
    longer showed, without a word (a user test)."""
    here = report_dir(out, plan.ablation.name)
    record = _read_json(here / "ablations.json")
    if not isinstance(record, dict) or not isinstance(record.get("variants"), list):
        return None
    changed = []
    for row in (r for v in record["variants"] if isinstance(v, dict) for r in v.get("runs") or []):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            continue
        now = _read_record(run_paths(out, row["name"]).reports / "audit.json")
        metrics = now.get("metrics") if now is not None else None
        if (now is None or now.get("spec_hash") != row.get("spec_hash") or not isinstance(metrics, dict)
                or any(metrics.get(k) != v for k, v in (row.get("metrics") or {}).items())):  # fmt: skip
            changed.append(row["name"])
    if not changed:
        return None
    return (f"note: {here / ABLATION_PAGE} is out of date: {count(len(changed), 'run')} it counts {'was' if len(changed) == 1 else 'were'} "
            f"replaced or removed since it was written ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}); "
            "it is rewritten when the ablation finishes")


def page_plan(plan: Plan, n_seeds: int | None, log: Log) -> Plan:
    """The plan the page covers: every variant of the file, whichever ones --only ran
    (`n_seeds`: the --seeds the plan was built with).

    A page of the selected variants alone would replace the page of a whole
    ablation; where some variants do not resolve, the page covers every one that does (a user
    test: one broken variant had left the page with the --only one alone, finished ones dropped).
    """
    if len(plan.variants) == len(plan.ablation.variants):
        return plan
    depth = plan.figure == "depth"
    try:
        return build_plan(plan.source, list(plan.cli_sets), None, n_seeds, depth)
    except InvalidInput as exc:
        first = str(exc).splitlines()[0]
    unresolved = [v for v in plan.ablation.variants if v not in plan.variants and _unresolved(plan, v, n_seeds)]
    resolved = [v for v in plan.ablation.variants if v not in unresolved]
    try:
        page = build_plan(plan.source, list(plan.cli_sets), resolved, n_seeds, depth)
    except InvalidInput:  # a problem of no one variant: the selected ones alone, as before
        log(f"note: the page shows only the variants selected with --only; the others do not resolve: {first}")
        return plan
    log(f"note: the page leaves out {count(len(unresolved), 'variant')} that {'does' if len(unresolved) == 1 else 'do'} "
        f"not resolve ({', '.join(unresolved)}): {first}")  # fmt: skip
    return page


def _unresolved(plan: Plan, variant: str, n_seeds: int | None) -> bool:
    """Whether `variant` of `plan`'s file does not resolve on its own."""
    try:
        build_plan(plan.source, list(plan.cli_sets), [variant], n_seeds, plan.figure == "depth")
    except InvalidInput:
        return True
    return False


def page_notes(record: dict[str, Any]) -> list[str]:
    """What the page of `record` (write_outputs') leaves open: runs that failed (their own
    criteria, or a divergence), runs without a finished report, mixed software."""
    notes = [*_counted_notes(record), *_uncounted_notes(record)]
    if record.get("mixed_test_sets"):
        notes.append("note: the variants' test accuracies were scored on different test images, so they do not "
                     "compare directly (listed on the page)")  # fmt: skip
    if record.get("mixed_data_files"):
        notes.append("note: the variants' runs read different data files, so their accuracies do not compare "
                     "directly (listed on the page)")  # fmt: skip
    return notes + _comparison_notes(record)


def _counted_notes(record: dict[str, Any]) -> list[str]:
    """`page_notes` on the finished runs the page lists: failed, a stored verdict not check's, a
    history its metrics.csv does not hold, left out of the means, seeds that read different data."""
    runs = [r for v in record["variants"] for r in v["runs"]]
    notes = []
    if failed := [r["name"] for r in runs if r["verdict"] != "PASS"]:
        notes.append(f"note: {count(len(failed), 'run')} on the page failed (their own criteria, or training "
                     f"diverged; see their sheets): {', '.join(failed)}")  # fmt: skip
    if restated := [f"{r['name']} (stored {r['stored_verdict']}, now {r['verdict']})" for r in runs if r.get("stored_verdict")]:
        notes.append(f"note: the stored verdict of {count(len(restated), 'run')} is not what the run's own criteria "
                     "give on its metrics as recorded (edited by hand, or another version's); the page gives the "
                     f"verdict judged again, as `auditor check` does: {', '.join(restated)}")  # fmt: skip
    if differs := [r["name"] for r in runs if r.get("history_differs")]:
        notes.append(f"note: the metrics.csv of {count(len(differs), 'run')} does not hold the per-epoch history "
                     "of its audit.json, whose curves the page draws (`auditor check` on its report folder says "
                     f"where they differ): {_first_names(differs)}")  # fmt: skip
    if retrain := [r["name"] for r in runs if r.get("spec_file_differs")]:
        notes.append(f"note: the spec.resolved.yaml of {count(len(retrain), 'run')} does not hold the spec of its "
                     "audit.json, which the page goes by (edited, missing or unreadable; `auditor check` on its report "
                     f"folder says which file and how): {_first_names(retrain)}")  # fmt: skip
    if mixed := [v["name"] for v in record["variants"] if v.get("mixed_data")]:
        notes.append(f"note: the seeds of {', '.join(mixed)} read different data (their files changed between "
                     "runs; listed on the page)")  # fmt: skip
    if left := [f"{r['name']} ({r['left_out']})" for v in record["variants"] for r in v.get("left_out", [])]:
        notes.append(f"note: {count(len(left), 'run')} left out of the means (listed on the page): {', '.join(left)}")
    return notes


def _uncounted_notes(record: dict[str, Any]) -> list[str]:
    """`page_notes` on the planned runs the page does not count: refused by `check`, stale, with an
    audit.json that cannot be read, or not finished."""
    missing = [r for v in record["variants"] for r in v["missing"]]
    notes = []
    if edited := [r["name"] for r in missing if r.get("edited")]:  # older: not said
        notes.append(f"note: {count(len(edited), 'run')} not counted, as `auditor check` refuses "
                     f"{'its' if len(edited) == 1 else 'their'} audit.json (listed on the page): {', '.join(edited)}")  # fmt: skip
    if stale := [r["name"] for r in missing if r.get("why") == "stale"]:
        notes.append(f"note: {count(len(stale), 'run')} not counted, as {'its' if len(stale) == 1 else 'their'} "
                     f"audit.json {'was' if len(stale) == 1 else 'were'} written by a different spec than the plan's "
                     f"(stale; listed on the page): {_first_names(stale)}")  # fmt: skip
    if unreadable := [r["name"] for r in missing if r.get("why") == UNREADABLE]:
        notes.append(f"note: {count(len(unreadable), 'run')} not counted, as {'its' if len(unreadable) == 1 else 'their'} "
                     f"audit.json cannot be read (listed on the page): {_first_names(unreadable)}")  # fmt: skip
    if unfinished := len(missing) - len(edited) - len(stale) - len(unreadable):
        notes.append(f"note: {count(unfinished, 'planned run')} {'has' if unfinished == 1 else 'have'} "
                     "no finished report yet (listed on the page)")  # fmt: skip
    return notes


def _comparison_notes(record: dict[str, Any]) -> list[str]:
    """`page_notes` on what the page's rows compare: variants alike, busy or uneven runs, mixed software."""
    notes = []
    for names in record.get("identical_variants") or []:  # older records: not compared
        notes.append(f"note: variants {', '.join(names)} resolve to the same spec, so their rows compare nothing "
                     "(listed on the page)")  # fmt: skip
    for names in record.get("same_training_variants") or []:  # older records: not compared
        notes.append(f"note: variants {', '.join(names)} differ only outside training, so their runs train the same "
                     "weights and their accuracies repeat one another (listed on the page)")  # fmt: skip
    if busy := [r["name"] for v in record["variants"] for r in v["runs"] if r.get("busy_share") is not None]:
        notes.append(f"note: {count(len(busy), 'run')} trained on a busy machine, so train time does not compare "
                     f"(listed on the page): {', '.join(busy)}")  # fmt: skip
    if differ := seed_sets(record["variants"]):
        notes.append(f"note: the rows do not all average the same seeds (listed on the page): {'; '.join(differ)}")
    if uneven := uneven_epochs(record["variants"]):
        notes.append(f"note: the runs of a variant ended at different epochs, so its final val acc and train time "
                     f"average runs of different lengths (listed on the page): {'; '.join(uneven)}")  # fmt: skip
    if record["mixed_software"]:
        notes.append(f"note: the runs were made with {len(record['mixed_software'])} different software "
                     "versions or devices; their last bits may differ (listed on the page)")  # fmt: skip
    return notes
