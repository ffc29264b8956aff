"""Command-line interface: parses arguments, calls the library, maps errors to exit codes.

Exit codes for every subcommand: 0 success, 1 a check failed, 2 invalid input; 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM), 141 its output pipe closed early.
"""

from __future__ import annotations

import argparse
import atexit
import codecs
import contextlib
import errno
import importlib
import io
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

from auditor import __version__
from auditor.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_TERMINATED,
    VERIFY_RUN_STOPPED,
    InvalidInput,
    Terminated,
    exit_code,
    signals_held,
    started_by_verify,
    stop_after_finish_note,
    stop_with_parent,
    stop_word,
)
from auditor.fileio import home_expanded, resolved_folder
from auditor.words import count, out_args, path_arg

if TYPE_CHECKING:  # the commands import what they use when they run (torch is slow to import)
    from auditor.ablate import Plan
    from auditor.spec import ReadSpec, Spec

DEFAULT_SPEC = "smoke"  # the embedded synthetic spec
MAX_THREADS = 1024  # measure --threads: a slip (a digit too many) would start a thread per count


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
        help="override a spec field before validation (VALUE parsed as YAML), repeatable",
    )  # fmt: skip


class _GivenOnce(argparse._StoreAction):
    """A single-valued option (`--criteria F`, `--junit F`, `--device D`, ...) that refuses to be
    given twice: argparse keeps the last, and `check --criteria a --criteria b` judged b alone,
    dropping a's gates without a word."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:  # fmt: skip
        given = namespace.__dict__.setdefault("_given_once", set())  # per parse: a fresh namespace
        if self.dest in given:
            parser.error(f"{'/'.join(self.option_strings)} given twice: it takes one value, and the first would be "
                         "ignored; give it once")  # fmt: skip
        given.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with single-valued options given once (`_GivenOnce`) and in full (no
    abbreviations), its subcommands too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: `run --resum` had resumed (a user test), and a CI file should say what it means.
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})
        self.register("action", None, _GivenOnce)  # the default action, `store`
        self.register("action", "store", _GivenOnce)

    # On the top-level parser (`build_parser`): whether a refusal is raised to the caller as `_Refused`
    # (`_parse`'s, which finishes it) or ends in argparse's usage error; None on a subcommand's.
    raise_refusals: bool | None = None

    def parse_known_args(self, args: Any = None, namespace: argparse.Namespace | None = None) -> Any:
        """argparse's, without `_GivenOnce`'s bookkeeping in the namespace the command receives."""
        try:
            parsed, extras = super().parse_known_args(args, namespace)
        except _Refused as refused:
            if self.raise_refusals is False:
                usage_exit(refused)
            raise
        parsed.__dict__.pop("_given_once", None)
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """argparse's usage error (exit 2), raised as `_Refused` for the top-level parser to finish,
        or `_parse`: `check` writes its --junit report of the refusal first."""
        if self.raise_refusals is False:  # the top-level parser's own (parse_args: unrecognized arguments)
            usage_exit(_Refused(self, message))
        raise _Refused(self, message)


class _Refused(Exception):
    """A command line argparse refused: the (sub)parser that refused it and its message."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser, self.message = parser, message


def usage_exit(refused: _Refused, said: str = "") -> NoReturn:
    """argparse's usage error for `refused` (usage, then `PROG: error: MESSAGE`, exit 2), `said` added to its line."""
    refused.parser.print_usage(sys.stderr)
    refused.parser.exit(EXIT_INVALID, f"{refused.parser.prog}: error: {refused.message}{said}\n")


def build_parser(raise_refusals: bool = False) -> argparse.ArgumentParser:
    """The argument parser with every subcommand; a command line it refuses is argparse's usage
    error (exit 2), or, with `raise_refusals`, `_Refused` (for `_parse`)."""
    parser = _Parser(
        prog="auditor",
        description="Reproducibility audits for deep-learning training: one YAML spec, trained under "
        "enforced seeding and determinism, measured, and written up as a sheet CI can gate on.",
        epilog=f"Exit codes: {EXIT_OK} success; {EXIT_FAILED} a criterion failed, the run diverged, "
        f"verification found a difference, `evaluate --strict` warned or `validate --strict` found a spec `run` would refuse here; {EXIT_INVALID} invalid input (spec, data, checkpoint, "
        f"path); {EXIT_INTERRUPTED} interrupted (Ctrl-C); {EXIT_TERMINATED} terminated (SIGTERM), which "
        f"stops as cleanly as Ctrl-C; {EXIT_BROKEN_PIPE} its output pipe closed early. "
        "`auditor COMMAND --help` describes each command.",
    )
    parser.raise_refusals = raise_refusals
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("models", help="list registered models with exact parameter counts")
    p.add_argument("--json", action="store_true",
                   help="print JSON (name, params, family, block, depth, stem) instead of a table")
    sub.add_parser("schema", help="print the JSON Schema of the spec")
    p = sub.add_parser("validate", help="validate specs and print the resolved spec")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    _add_set(p)
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1) where `auditor run` would refuse a valid spec on this machine (a CI pre-flight)")  # fmt: skip
    _add_training_commands(sub)
    _add_report_commands(sub)
    _add_ablate(sub)
    for name, command_parser in sub.choices.items():  # stray arguments are reported with the command's usage
        command_parser.set_defaults(command_parser=command_parser)
        command_parser.description = DESCRIPTIONS[name]
    return parser


_GATE = "Exit 0 pass, 1 a criterion failed or the run diverged, 2 invalid input"
DESCRIPTIONS = {
    "models": "List the registered models with their exact parameter counts (CIFAR-10 heads).",
    "schema": "Print the JSON Schema of the spec (for editors and other validators).",
    "validate": "Validate each SPEC strictly (unknown keys rejected, --set applied first) and print it "
    "resolved, with its sha256, and warn (on stderr) of what `auditor run` would refuse on this "
    "machine: a device, a compile or a data folder it lacks, or what reading the data finds. "
    "Exit 0 all valid, 1 (--strict) valid but refused here, 2 invalid.",
    "run": "Train SPEC under enforced seeding and determinism, measure the model (test accuracy, "
    "batch-1 latency, size) and write reports/<name>/ (audit.json, REPRODUCIBILITY.md, CSVs) and "
    "checkpoints/<name>/ under --out. An earlier run of that name is replaced only when this one "
    f"finishes. {_GATE}, 130 interrupted (143 on SIGTERM), with how to go on (--resume, once a "
    "checkpoint was written).",
    "verify": "Train SPEC three times, at its own budget unless --epochs or --steps gives another (twin runs A and B, and run K, killed after "
    "a step and resumed) and compare their losses, metrics, results and checkpoints (every tensor, and the training state) bit for bit; the verdict "
    "goes into run A's sheet and <out>/verify/<name>/verify.json. Exit 0 reproducible, 1 not (or a run "
    "crashed), 2 invalid input, 130 interrupted (143 on SIGTERM).",
    "render": "Rebuild RUN_DIR/REPRODUCIBILITY.md and its figures from RUN_DIR/audit.json alone (no "
    "training, no torch import). Exit 0, or 2 for a missing or malformed record.",
    "check": "Re-evaluate a finished run's criteria from RUN_DIR/audit.json, or criteria given with "
    "--criteria / --set, and print one line per criterion: the CI gate. Exit 0 pass, 1 a criterion "
    "failed, the run diverged or (with --require-criteria) no criterion is defined, 2 invalid input.",
    "evaluate": "Overall and per-class accuracy of CHECKPOINT on the CIFAR-10 test batch under "
    "--data-root (its first data.limit_test images where the run scored only those), with the model "
    "rebuilt from the spec stored in the checkpoint. Warnings (another test set, a broken model) go "
    "to stderr and leave the exit code 0, or make it 1 with --strict (a CI gate). Exit 0, 1 (--strict, "
    "a warning), or 2.",
    "measure": "Parameter count, checkpoint and weight sizes, and FP32 latency (batch 1 unless the "
    "spec's measure.latency.batch_size says otherwise) of CHECKPOINT's model, rebuilt from the spec "
    "stored in it. Exit 0, or 2.",
    "ablate": "Run every variant x seed of an ablation file (a base spec with overrides), one "
    "`auditor run` each, skipping finished runs and resuming interrupted ones, and write a page "
    "aggregating the seeds. Exit 0 when every run finished (the runs on the page that failed their own criteria "
    "or diverged are listed), 2 invalid input, 130 interrupted (143 on SIGTERM); a run that crashed stops it with that "
    "run's exit code.",
}


def _add_spec_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", default=DEFAULT_SPEC, metavar="SPEC",
                   help=f"spec file or shipped spec name (default: {DEFAULT_SPEC})")  # fmt: skip
    _add_set(p)


def _add_training_commands(sub: Any) -> None:
    p = sub.add_parser("run", help="train, measure and write the reproducibility sheet")
    _add_spec_arg(p)
    p.add_argument("--out", type=_out_folder, default=Path("."), help="root of reports/ and checkpoints/ (default: here)")
    p.add_argument("--resume", action="store_true", help="continue from the newest intact checkpoint")

    p = sub.add_parser("verify", help="train twice and once killed+resumed; compare bit for bit")
    _add_spec_arg(p)
    p.add_argument("--out", type=_out_folder, default=Path("."), help="root of verify/<name>/ (the work dir; default: here)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_whole_number, metavar="N", help="budget: set train.epochs to N")
    budget.add_argument("--steps", type=_whole_number, metavar="N", help="budget: set train.max_steps to N")
    p.add_argument("--kill-at", type=_whole_number, metavar="STEP",
                   help="global step (0-based) after which run K is SIGKILLed (default: mid-epoch, mid-budget)")  # fmt: skip


def given_path(text: str) -> str:
    """`text`, refused by argparse (exit 2) where it is empty: an unset variable in a CI file, not
    the current folder that Path("") would make of it."""
    if not text:
        raise argparse.ArgumentTypeError("the path is empty (an unset variable?)")
    return text


def _path(text: str) -> Path:
    """A path argument that is not empty (`given_path`)."""
    return Path(given_path(text))


def _whole_number(text: str) -> int:
    """An integer argument in ASCII digits. Python's int() also reads `1_000` and other scripts'
    digits (`５`), which a shell script or CI file that checks its numbers would not pass."""
    if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        raise argparse.ArgumentTypeError(f"expected a whole number in digits (0-9), got {text!r}")
    return int(text)


def _junit_path(text: str) -> Path:
    """`--junit`'s file: `-` is refused, not written as a file named `-` (`--criteria -` reads stdin,
    so `-` reads as standard output, where check prints its verdict)."""
    if text == "-":
        raise argparse.ArgumentTypeError("'-' is not standard output here (check prints its verdict there): give a "
                                         "file name, e.g. results.xml, or ./- for a file named -")  # fmt: skip
    return _path(text)


def _run_dir(text: str) -> Path:
    """A run's report folder; its audit.json, given instead, names the folder too."""
    path = _path(text)
    try:
        return path.parent if path.name == "audit.json" and path.is_file() else path
    except OSError:  # a name too long, ...: the command reports it
        return path


def _out_folder(text: str) -> Path:
    """`--out` with a leading `~` or `~user` expanded (as for data.root: a quoted `~` in a CI file
    is not a folder named `~`), refused by argparse (exit 2) where its path cannot be resolved:
    an unknown user, a loop of symbolic links."""
    try:
        resolved_folder(given_path(text))
        return home_expanded(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_report_commands(sub: Any) -> None:
    run_dir_help = "a run's report folder (reports/<name>), or its audit.json"
    p = sub.add_parser("render", help="re-render the sheet from RUN_DIR/audit.json alone")
    p.add_argument("run_dir", type=_run_dir, metavar="RUN_DIR", help=run_dir_help)

    p = sub.add_parser("check", help="re-evaluate a finished run's criteria (CI gate)")
    p.add_argument("run_dir", type=_run_dir, metavar="RUN_DIR", help=run_dir_help)
    p.add_argument("--criteria", type=_path, help="YAML file of criteria replacing the run's own (- reads them from stdin)")
    p.add_argument("--junit", type=_junit_path, help="also write JUnit XML here (a file already there is replaced only if it is empty or an earlier JUnit report of auditor's); on bad input (exit 2), a report of one errored test case")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="criteria.METRIC=EXPR",
                   help="add or replace a criterion (null removes it; an empty EXPR, or one that is only a # comment, is refused); "
                        "'criteria={METRIC: EXPR, ...}' replaces them all; repeatable")  # fmt: skip
    p.add_argument("--require-criteria", action="store_true",
                   help="fail (exit 1) when no criterion is left to check, rather than pass with nothing gated")  # fmt: skip

    ckpt_help = "a checkpoint an `auditor run` wrote (its .sha256 beside it is checked when present)"
    p = sub.add_parser("evaluate", help="accuracy of a checkpoint on another copy of the data")
    p.add_argument("checkpoint", type=_path, metavar="CHECKPOINT", help=ckpt_help)
    p.add_argument("--data-root", type=given_path, required=True, help="folder holding cifar-10-batches-py/")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--strict", action="store_true",
                   help="fail (exit 1) when a warning is printed: the accuracy is then not the run's to compare")  # fmt: skip

    p = sub.add_parser("measure", help="parameters, size and latency (batch 1 by default) of a checkpoint")
    p.add_argument("checkpoint", type=_path, metavar="CHECKPOINT", help=ckpt_help)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--iters", type=_whole_number, default=None, help="timed iterations, 5 to 10^6 (default: the spec's)")
    p.add_argument("--warmup", type=_whole_number, default=None, help="untimed warm-up iterations, 0 to 10^5 (default: the spec's)")
    p.add_argument("--batch-size", type=_whole_number, default=None, metavar="N",
                   help="images a timed forward, 1 to 4096 (default: the spec's measure.latency.batch_size)")
    p.add_argument("--threads", type=_whole_number, default=None, metavar="N",
                   help=f"torch threads to time at on a CPU, 1 to {MAX_THREADS} (default: as OMP_NUM_THREADS or "
                        "torch's default set them)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_ablate(sub: Any) -> None:
    p = sub.add_parser("ablate", help="run variants x seeds of a base spec and aggregate them")
    p.add_argument("ablation", metavar="ABLATION", help="ablation YAML file or shipped ablation name")
    mode = p.add_mutually_exclusive_group()  # each asks for something else than running the plan
    mode.add_argument("--list", action="store_true",
                      help="print the variants and their overrides as the file gives them (the file is checked and its "
                           "base found; the runs' specs are not: --dry-run resolves and validates each, which needs torch)")
    mode.add_argument("--dry-run", action="store_true", help="print every resolved run; run nothing")
    mode.add_argument("--render-only", action="store_true", help="rebuild the aggregate from finished runs; run nothing")
    p.add_argument("--only", nargs="+", action="extend", default=[], metavar="NAME", help="run only these variants (the page still covers every variant of the file)")
    p.add_argument("--seeds", type=_whole_number, metavar="N", help="use the first N seeds (beyond the list: max+1, ...)")
    _add_set(p)
    p.add_argument("--out", type=_out_folder, default=Path("."), help="root of reports/ and checkpoints/ (default: here)")
    p.add_argument("--depth-figure", action="store_true", help="also draw error vs epoch per network (He et al. Fig. 6)")
    p.add_argument("--replace-stale", action="store_true",
                   help="train again, replacing them, the ablation's finished runs whose spec has changed since (the file, "
                        "its base or a --set); without it they are refused before anything runs (--list and "
                        "--render-only, which run nothing, take it and do nothing with it)")


# --- subcommands --------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    """`auditor models`: registered models with exact parameter counts."""
    from auditor.models import count_parameters, create_model, list_models, model_info

    models = []
    for name in sorted(list_models(), key=lambda n: (model_info(n).family, model_info(n).depth)):
        info = model_info(name)
        models.append({"name": name, "params": count_parameters(create_model(name))[0], "family": info.family,
                       "block": info.block, "depth": info.depth, "stem": info.stem})  # fmt: skip
    if args.json:
        _print_out([_json(models)])
        return EXIT_OK
    lines = [f"{'model':<10} {'params':>12}  {'family':<22} stem"]
    lines += [f"{m['name']:<10} {m['params']:>12,}  {m['family']:<22} {m['stem']}" for m in models]
    lines.append("(params with a 10-class head and batch norm, the spec defaults; group norm gives the same counts, "
                 "model.norm: none other ones, which a run's sheet states; model.num_classes is the data's class count; every stem is "
                 "a CIFAR one: the ImageNet-style nets lack torchvision's 7x7 stem and max-pool, and its counts)")
    _print_out(lines)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """`auditor schema`: the spec's JSON Schema."""
    from auditor.spec import json_schema

    _print_out([json.dumps(json_schema(), indent=2)])
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """`auditor validate`: print each resolved spec, or its errors (exit 2)."""
    from auditor.runner import machine_problems
    from auditor.spec import (
        field_source,
        load_spec_read,
        resolved_dict,
        resolved_yaml,
        shipped_stand_in,
        spec_hash,
    )

    errors, printed, refused = [], 0, 0
    for path in args.specs:
        try:
            spec, loaded = load_spec_read(path, args.sets)
        except InvalidInput as exc:
            errors.append(str(exc))
            continue
        shipped = shipped_stand_in(path)
        read = f"the shipped spec {shipped}, " if shipped else ""
        shown = path if path.isprintable() else repr(path)  # a line break in its name would end the comment
        head = ("---\n" if printed else "") + f"# {shown}: valid ({read}spec_hash {spec_hash(spec)}, the sha256 of its resolved form)"  # one YAML stream
        _print_out([head, resolved_yaml(resolved_dict(spec)).removesuffix("\n")])
        printed += 1
        sets, lines = loaded.items, loaded.lines
        problems = machine_problems(spec)
        for problem in problems:  # a fact of this machine, not of the spec: said, not refused
            blamed = field_source(path, problem.field, sets, lines)
            _warn("validate", f"{blamed}: {problem} (the spec is valid; `auditor run` would refuse it here)")
        for note in _validate_notes(path, spec, loaded):
            _log(f"auditor validate: note: {note}")
        refused += bool(problems)
    if errors:
        raise InvalidInput("\n".join(errors))
    if args.strict and refused:
        _log(f"auditor validate: FAIL (--strict): `auditor run` would refuse {count(refused, 'valid spec')} here")
        return EXIT_FAILED
    return EXIT_OK


def _validate_notes(path: str, spec: Spec, loaded: ReadSpec) -> list[str]:
    """What `validate` notes of a valid spec (`loaded`: as read), each prefixed by where it comes
    from: its data folder as a run would say before training, schedule settings that may not be
    what was meant, --set removals of nothing."""
    from auditor.data import data_notes
    from auditor.spec import (
        field_source,
        schedule_notes,
        unmatched_removals,
        unread_data_fields,
        unread_schedule_fields,
    )

    sets, lines = loaded.items, loaded.lines
    notes = [f"{field_source(path, 'data.root', sets, lines)}: {note}" for note in data_notes(spec.data)]
    notes += [f"{field_source(path, field, sets, lines)}: {note}"
              for field, note in [*unread_data_fields(spec.data), *unread_schedule_fields(spec.train.schedule),
                                  *schedule_notes(spec.train)]]  # fmt: skip
    return notes + [f"{path} {note}" for note in unmatched_removals(loaded.given, sets)]


def cmd_run(args: argparse.Namespace) -> int:
    """`auditor run`: train, measure, write the sheet; exit 1 when the run fails its gate."""
    from auditor.audit import verify_run_refusal
    from auditor.runner import execute
    from auditor.spec import load_spec_read, set_args, unmatched_removals

    stop_with_parent()
    by_verify = started_by_verify()
    if not by_verify and (refusal := verify_run_refusal(args.out)) is not None:
        raise InvalidInput(refusal)
    spec, read = load_spec_read(args.spec, args.sets)
    if (stood_in := _shipped_for_a_path(args.spec)) is not None:
        _log(f"note: {_shipped_note(args.spec, stood_in)}")
    for note in unmatched_removals(read.given, read.items):
        _log(f"note: {args.spec} {note}")
    argv = ["auditor", "run", path_arg(args.spec), *set_args(args.sets), *out_args(args.out)]
    recorded = [*argv, "--resume"] if args.resume else argv  # the command as this process ran it
    try:
        outcome = execute(spec, args.spec, args.out.resolve(), args.resume, recorded, log=_log,
                          in_place=args.stops.complete, sets=read.items)  # fmt: skip
    except KeyboardInterrupt as stop:  # the run removed its staging if it held no checkpoint yet
        hint = (f"{stop_word(stop)}: {VERIFY_RUN_STOPPED}" if by_verify else
                _interrupted_hint(args.out.resolve(), spec.name, argv, stop_word(stop), args.resume))
        _log(f"\n{hint}")
        return exit_code(stop)
    _print_outcome(outcome.audit, outcome.report_dir)
    return EXIT_OK if outcome.passed else EXIT_FAILED


def _shipped_for_a_path(arg: str) -> Path | None:
    """The shipped spec read for `arg` where `arg` is written as a path (`specs/smoke.yaml`) and no
    file is there (a user test: run from another folder, it ran the shipped one without a word);
    None where it names the file read, or is a bare name, which names a shipped spec as documented."""
    from auditor.spec import shipped_stand_in

    if "/" not in arg and not arg.endswith((".yaml", ".yml")):
        return None
    return shipped_stand_in(arg)


def _shipped_note(arg: str, stood_in: Path) -> str:
    """`_shipped_for_a_path`'s note: no file where `arg` points, so the shipped spec was read."""
    return f"no file {Path.cwd() / arg}: read the spec shipped with auditor, {stood_in}"


def _interrupted_hint(out: Path, name: str, argv: list[str], word: str = "interrupted", resume: bool = False) -> str:
    """How to go on after Ctrl-C (or SIGTERM), as a command a shell takes verbatim. `resume`: the
    command was a --resume, perhaps of a finished run, whose copy the stop removed."""
    from auditor.audit import has_checkpoint, run_paths
    from auditor.runner import report_awaits_promotion, resume_from_text

    paths = run_paths(out, name)
    if report_awaits_promotion(paths):  # stopped between the checkpoints' promotion and the report's
        return (f"{word} while putting the finished run in place (its report waits in staging); put it in "
                f"place without training again with: {shlex.join([*argv, '--resume'])}")  # fmt: skip
    if has_checkpoint(paths.ckpt_staging):
        return f"{word}; continue{resume_from_text(paths.ckpt_staging)} with: {shlex.join([*argv, '--resume'])}"
    if resume and has_checkpoint(paths.checkpoints):  # re-judging the finished run: it is as it was
        return f"{word}; the finished run is as it was: re-judge it again with: {shlex.join([*argv, '--resume'])}"
    return f"{word} before the first checkpoint; start again with: {shlex.join(argv)}"


def _print_outcome(audit: dict, report_dir: Path) -> None:
    from auditor.check import CriterionResult, record_gate_status, render_lines

    results = [CriterionResult(**c) for c in audit["criteria"]]
    sheet = report_dir / "REPRODUCIBILITY.md"
    _print_out([*render_lines(results, record_gate_status(audit)), f"status {audit['run']['status']}; sheet: {sheet}"])


def cmd_render(args: argparse.Namespace) -> int:
    """`auditor render`: rebuild the sheet from audit.json alone."""
    from auditor.audit import moved_note, read_audit
    from auditor.render import RENDER_FAULTS, malformed_text, record_bytes, render_run

    as_read = record_bytes(args.run_dir)  # before it is read: a run finishing meanwhile replaces it
    audit = read_audit(args.run_dir)  # once: for the sheet and for the resolved-YAML check
    try:
        path = render_run(args.run_dir, audit, as_read)
    except RENDER_FAULTS as exc:  # a value edited by hand
        raise InvalidInput(f"{args.run_dir / 'audit.json'}: {malformed_text(exc)}") from None
    for warning in _render_warnings(args.run_dir, audit):
        _warn("render", warning)
    if (note := moved_note(args.run_dir, audit)) is not None:
        _log(f"auditor render: note: {note}")
    _print_out([f"wrote {path}"])
    return EXIT_OK


def _render_warnings(run_dir: Path, audit: dict) -> list[str]:
    """What `render` warns of a record it rendered: what `check` refuses it for (edited after the run),
    a stored verdict its metrics no longer give, its spec files, and runs of its name not finished."""
    from auditor.audit import spec_file_warnings, spec_hash_matches, unfinished_warnings
    from auditor.check import edited_metrics, stored_verdict_warning

    source, warnings, rehashed = run_dir / "audit.json", [], not spec_hash_matches(audit)
    if rehashed:  # check refuses such a record; the sheet unticks its box
        warnings.append(f"{source}: its resolved spec does not match its spec_hash: the record was edited after the run")
    if edited := edited_metrics(audit):  # check refuses such a record; the sheet says so
        warnings.append(f"{source}: the record disagrees with what the run measured ({'; '.join(edited)}): it was "
                        "edited after the run")  # fmt: skip
    refused = bool(edited) or rehashed  # `check` refuses the record: its metrics gate nothing
    try:
        differs = stored_verdict_warning(audit)
    except ValueError as exc:  # a metric this version does not know
        differs = None
        warnings.append(f"{source}: its criteria cannot be judged again here ({exc}): the sheet shows the verdict "
                        "as stored")  # fmt: skip
    if differs:  # the sheet's headline shows the stored verdict, under a caution a CI log would not show
        warnings.append(f"{source}: {differs}; the sheet shows them as stored, and `auditor "
                        + ("check` refuses the record (above)" if refused else "check` gates on the metrics"))
    return [*warnings, *spec_file_warnings(run_dir, audit), *unfinished_warnings(run_dir, audit, "this sheet is rendered from")]


def cmd_verify(args: argparse.Namespace) -> int:
    """`auditor verify`: twin runs and a kill/resume run, compared tensor by tensor; exit 1 when
    they differ or a run crashed."""
    from auditor.audit import verify_out_refusal
    from auditor.spec import read_spec, unmatched_removals
    from auditor.verify import Faults, RunFailed, summary, verify

    if (refusal := verify_out_refusal(args.out)) is not None:
        raise InvalidInput(refusal)
    try:  # as `run` says it: verify's runs are given the spec resolved
        read = read_spec(args.spec, args.sets)
        notes = [f"{args.spec} {note}" for note in unmatched_removals(read.given, read.items)]
    except InvalidInput:  # said by verify, in its order (a budget flag below 1 first)
        notes = []
    if (stood_in := _shipped_for_a_path(args.spec)) is not None:
        notes.insert(0, _shipped_note(args.spec, stood_in))
    for note in notes:
        _log(f"verify: note: {note}")
    try:
        outcome = verify(args.spec, args.sets, args.out.resolve(), epochs=args.epochs, steps=args.steps,
                         kill_at=args.kill_at, log=_log, faults=Faults.from_env(os.environ),
                         in_place=lambda: args.stops.complete("the verification's evidence"))  # fmt: skip
    except RunFailed as exc:
        _log(f"auditor verify: error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt as stop:
        # Where its runs and any earlier evidence are was said above, where it had set them aside
        # (a stop while it planned had nothing to say of them).
        _log(f"\nauditor verify: {stop_word(stop)}; run the same command again to verify")
        return exit_code(stop)
    _print_out([summary(outcome)])
    return EXIT_OK if outcome.passed else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    """`auditor check`: re-judge a run's criteria (or others) for CI; exit 1 when it fails. On bad
    input (exit 2) a --junit report says so, rather than an earlier report's verdict staying there."""
    warned: list[str] = []  # what check warned of before it stopped, for the errored report too
    try:
        return _check(args, warned)
    except InvalidInput as exc:
        if not args.junit:
            raise
        said = _errored_junit(args.junit, f"auditor.{_suite_name(args.run_dir)}", str(exc), warned)
        raise InvalidInput(f"{exc}{said}") from None


def _errored_junit(path: Path, suite: str, message: str, warned: Sequence[str] = ()) -> str:
    """Write check's report of one errored test case (`message`, and what it `warned` of) at `path`;
    what to add to the error line: that the report says so, or why none was written ('' where the
    refusal is what `message` says already: the --junit path was the bad input)."""
    from auditor.check import junit_error_xml, write_junit_text

    try:
        write_junit_text(path, junit_error_xml(suite, message, warned))
    except InvalidInput as refused:
        why = str(refused)
    except OSError as exc:  # a name too long even to look at
        why = f"{path}: {exc.strerror or exc}"
    else:
        return f" (the JUnit report {path} says so: one errored test case)"
    return "" if why in message else f"\n(no JUnit report was written: {why})"


def _suite_name(run_dir: Path) -> str:
    """The name an errored JUnit report goes by, as the run's other reports do: the run's name
    where its audit.json still gives one (a report folder copied elsewhere keeps it), else the
    folder's name (for a run's own report folder, reports/<name>, the same)."""
    record = run_dir / "audit.json"
    try:
        if record.is_file():  # is_file first: a FIFO would block the read
            name = json.loads(record.read_text(encoding="utf-8"))["run"]["name"]
            if isinstance(name, str) and name:
                return name
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # a read refused as too deep
        pass
    return Path(os.path.abspath(run_dir)).name or "check"  # no resolve(): a loop raises


def _check(args: argparse.Namespace, warnings: list[str]) -> int:
    """The judging behind `cmd_check`: the record read and checked, its criteria (as changed by
    --criteria and --set) judged, printed, and written as JUnit. The warnings printed are added
    to `warnings` as they are found, for a report of an error met later."""
    from auditor.audit import read_audit
    from auditor.check import GATE_FAILURES, judge, latency_caveats, record_gate_status, render_lines, verdict

    audit = read_audit(args.run_dir)
    source = str(args.run_dir / "audit.json")
    warnings += _check_warnings(args.run_dir, audit)
    own = audit["spec"].get("criteria") or {}
    criteria = _criteria_to_check(args, audit, own, warnings)
    results = judge(criteria, audit)
    for caveat in latency_caveats(audit, results):
        _warn("check", f"{source}: {caveat}")
        warnings.append(f"{source}: {caveat}")
    status = record_gate_status(audit)
    required = args.require_criteria
    changed = _changed_criteria(own, criteria, args)
    none = [] if results or required else [
        "no criteria defined" + (": nothing to check" if status not in GATE_FAILURES else "")]
    lines = [*changed, *none, *render_lines(results, status, required)]
    if args.junit:
        from auditor.check import junit_xml

        spec_hash = audit.get("spec_hash") if isinstance(audit.get("spec_hash"), str) else None
        report = junit_xml(results, f"auditor.{audit['run']['name']}", status, spec_hash, required, changed, warnings)
        _print_with_junit(args.junit, report, lines)
    else:
        _print_out(lines)
    return EXIT_OK if verdict(results, status, required) == "PASS" else EXIT_FAILED


def _criteria_to_check(args: argparse.Namespace, audit: dict, own: dict, warnings: list[str]) -> dict[str, str]:
    """The run's own criteria `own`, as --criteria and --set change them; the notes on them (a
    setting they leave unused, a criterion a verification has not reproduced) warned of and added
    to `warnings`."""
    from auditor.check import load_criteria, recorded_allow_tolerance, unreproduced_note

    source = str(args.run_dir / "audit.json")
    unused: list[str] = []
    criteria = load_criteria(own, args.criteria, args.sets, base_source=source,
                             allow_tolerance=recorded_allow_tolerance(audit), notes=unused, run_spec=audit["spec"])
    if (unreproduced := unreproduced_note(audit, criteria)) is not None:
        unused.append(f"{source}: {unreproduced}")
    for note in unused:
        _warn("check", note)
    warnings += unused
    return criteria


def _print_with_junit(path: Path, report: str, lines: list[str]) -> None:
    """Print the verdict's `lines` with the JUnit `report` written in full before (a folder that takes
    no file is said first, with no PASS above it) and put in place once they are printed: output
    that cannot be written is an error (exit 2), and the report then says so rather than give a
    verdict the exit code does not."""
    from auditor.check import staged_junit

    reader_left = False
    with staged_junit(path, report):
        try:
            _print_out(lines)
        except BrokenPipeError:  # `| head`: the report, which the README points a pipe's CI to, still goes in place
            reader_left = True
    if reader_left:
        raise BrokenPipeError(errno.EPIPE, "the reader of standard output closed it")


def _check_warnings(run_dir: Path, audit: dict) -> list[str]:
    """Refuse a record edited after the run (`_refuse_edited`); warn of a stored verdict its metrics no longer give,
    of a spec.resolved.yaml that no longer holds its spec, of a later unfinished run of the name, and
    of a run of an unfinished or failed verify attempt. The warnings are printed, and returned for
    the JUnit report, whose CI page would otherwise show a clean PASS."""
    from auditor.audit import spec_file_warnings, unfinished_warnings
    from auditor.check import stored_verdict_warning

    _refuse_edited(run_dir, audit)
    source, warnings = run_dir / "audit.json", []
    try:
        differs = stored_verdict_warning(audit)
    except ValueError:  # judged afterwards, with the reason
        differs = None
    if differs:
        warnings.append(f"{source}: {differs}: the record was changed after the run, or written by another version; "
                        "this check gates on the metrics as recorded")  # fmt: skip
    warnings += spec_file_warnings(run_dir, audit)
    warnings += unfinished_warnings(run_dir, audit, "this check judges")
    for warning in warnings:
        _warn("check", warning)
    return warnings


def _refuse_edited(run_dir: Path, audit: dict) -> None:
    """InvalidInput for a record `check.edited_record` refuses: edited after the run, or a field the
    sheet reads missing or malformed."""
    from auditor.check import edited_record

    if (edited := edited_record(audit)) is not None:
        why, advice = edited
        raise InvalidInput(f"{run_dir / 'audit.json'}: {why}" + (f"; {advice}" if advice else ""))


def _changed_criteria(own: dict, criteria: dict, args: argparse.Namespace) -> list[str]:
    """The line saying which of the run's own criteria --criteria and --set changed, or none."""
    from auditor.check import criteria_changes

    changes = criteria_changes(own, criteria)
    if not changes:
        return []
    by = " and ".join(flag for flag, given in (("--criteria", args.criteria), ("--set", args.sets)) if given)
    return [f"criteria changed from the run's own by {by}: {'; '.join(changes)}"]


def _warn(command: str, message: str) -> None:
    _log(f"auditor {command}: warning: {message}")


# Control characters but line breaks and tabs: a path holding ESC would drive the terminal (colours,
# a cleared line) rather than be read (a user test: `check "$(printf 'x\033[31my')"`).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C1 too: U+009B is CSI to some terminals


def terminal_safe(message: str) -> str:
    """`message` with control characters shown as `\\xNN` escapes, as Python writes them."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}", message)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`auditor evaluate`: a checkpoint's accuracy on the user's own copy of the data."""
    from auditor.inspect import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, args.data_root, args.device)
    for warning in report["warnings"]:
        _log(f"auditor evaluate: warning: {warning}")
    _print_out([_json(report) if args.json else _table(report)])
    if args.strict and report["warnings"]:
        _log(f"auditor evaluate: FAIL (--strict): {count(len(report['warnings']), 'warning')}")
        return EXIT_FAILED
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    """`auditor measure`: a checkpoint's parameters, sizes and latency (its spec's batch size, 1 by default)."""
    from auditor.inspect import measure_checkpoint

    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise InvalidInput(f"--threads: 1 to {MAX_THREADS}, got {args.threads}")
    report = measure_checkpoint(args.checkpoint, args.device, args.iters, args.warmup, args.batch_size, args.threads)
    for note in report["notes"]:
        _log(f"auditor measure: note: {note}")
    _print_out([_json(report) if args.json else _table(report)])
    return EXIT_OK


def cmd_ablate(args: argparse.Namespace) -> int:
    """`auditor ablate`: --list, --dry-run, --render-only, or every variant x seed, then the mean ± std page."""
    from auditor import ablate

    if args.list:
        return _say(ablate.list_lines(args.ablation, args.only, args.seeds))
    plan = ablate.build_plan(args.ablation, args.sets, args.only, args.seeds, args.depth_figure)
    ablate.check_page_folder(args.out, plan)  # before any run: the page could not be written afterwards
    ablate.check_run_names(args.out, plan)
    if args.dry_run:  # the whole plan, then what the ablation would refuse here (exit 2)
        page_said: list[str] = []  # what the page will leave out, which the run says at its end (a user test)
        ablate.page_plan(plan, args.seeds, page_said.append)
        _say([*ablate.plan_lines(plan, args.out, args.replace_stale), *(f"# {n}" for n in page_said),
              "# dry run: nothing was run or written"])  # fmt: skip
        ablate.check_runnable(plan, args.out, args.replace_stale)
        return EXIT_OK
    if not args.render_only:  # a page of runs made elsewhere can be rendered anywhere
        ablate.check_runnable(plan, args.out, args.replace_stale)
    else:
        ablate.refuse_nothing_to_render(args.out, plan)
    with ablate.held_page(args.out, plan):  # another ablate of this page is refused: two would write it in turn
        return _ablate_held(args, plan)


def _ablate_held(args: argparse.Namespace, plan: Plan) -> int:
    """`auditor ablate` with the page's lock held: run what is left (unless --render-only), then the page."""
    from auditor import ablate

    if not args.render_only:
        _say(ablate.header_lines(plan, args.out))
        code = _run_ablation(args, plan)
        if code != EXIT_OK:
            return code
    page_plan = ablate.page_plan(plan, args.seeds, _progress)
    earlier = ablate.page_record(args.out, page_plan)
    page, record = ablate.write_outputs(args.out, page_plan, args.render_only)
    notes = [ablate.replaced_page_note(earlier, record, page_plan, args.out), ablate.variants_gone_note(earlier, page_plan)]
    return _say([*ablate.page_notes(record), *filter(None, notes), f"ablation page: {page}"])


def _run_ablation(args: argparse.Namespace, plan: Plan) -> int:
    """Run the plan's pairs; after a stop, say how to continue."""
    from auditor.ablate import execute_plan

    again = f"continue with: {_ablate_relaunch(args)}"
    try:
        done = execute_plan(plan, args.out, _progress)
    except KeyboardInterrupt as stop:  # after the run it was waiting for (if any) stopped cleanly
        _progress(f"\n{stop_word(stop)}; {again}")
        code = exit_code(stop)
    else:
        if not done.stopped_at:
            return EXIT_OK
        if done.interrupted:
            _progress(f"[{done.position}/{len(plan.runs)}] {done.stopped_at}: interrupted (exit {done.returncode}); {again}")
            code = EXIT_INTERRUPTED
        else:  # a crash: no finished report
            _log(f"auditor ablate: error: {done.stopped_at}: `auditor run` {done.ended()} without a "
                 f"finished report; stopped (see its output above); {_ablate_relaunch(args)} --render-only writes "
                 "the page of the runs finished")  # fmt: skip
            code = done.exit_code()
    _stale_page(args, plan)  # stopped before the page is rewritten
    return code


def _stale_page(args: argparse.Namespace, plan: Plan) -> None:
    """Say, of an ablation stopped before its end, that its earlier page no longer shows some runs it counts."""
    from auditor.ablate import stale_page_note

    if (note := stale_page_note(args.out, plan)) is not None:
        _log(f"auditor ablate: {note}")


def _ablate_relaunch(args: argparse.Namespace) -> str:
    """The `auditor ablate` command that continues this invocation after an interruption."""
    from auditor.ablate import shell_command
    from auditor.spec import set_args

    argv = ["ablate", path_arg(args.ablation), *set_args(args.sets)]
    argv += ["--only", *args.only] if args.only else []
    argv += ["--seeds", str(args.seeds)] if args.seeds is not None else []
    argv += ["--depth-figure"] if args.depth_figure else []
    argv += ["--replace-stale"] if args.replace_stale else []  # those still to run are stale still
    return shell_command([*argv, *out_args(args.out)])


def _progress(msg: str) -> None:
    """A line of ablate's progress on stdout, flushed before a run's own output follows."""
    _print_out([msg])


def _print_out(lines: list[str]) -> None:
    """Print `lines` to stdout and flush them. InvalidInput where they cannot be written (a full
    disk behind a redirection), so that the command does not pass for one that failed a criterion
    (exit 1) or worked (exit 0); a closed pipe stays BrokenPipeError (exit 141)."""
    try:
        for line in lines:
            print(terminal_safe(line))  # a class name, a run name or a path from a file, shown, not obeyed
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        _to_devnull(sys.stdout)  # what stdout still buffers would fail again at exit (exit 120)
        raise InvalidInput(f"standard output: cannot write: {exc.strerror or exc}") from None


def _say(lines: list[str]) -> int:
    """Print `lines` as progress; exit 0."""
    for line in lines:
        _progress(line)
    return EXIT_OK


def _json(report: dict | list) -> str:
    """Strict JSON (a NaN loss from non-finite weights is written as null, as in audit.json)."""
    from auditor.audit import finite_or_none

    return json.dumps(finite_or_none(report), indent=2, allow_nan=False)


def _table(report: dict) -> str:
    """A report as aligned `key value` lines; a mapping's or a non-empty list's items one a line
    (a note may hold '; ' itself)."""
    lines = []
    for key, value in report.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k:<22} {_fmt(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value:
            lines.append(f"{key}:")
            lines += [f"  - {item}" for item in value]
        else:
            lines.append(f"{key:<24} {_fmt(value)}")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    """A table's value on its line: a mapping as `key value; ...` (not Python's repr), a line break
    in a text (a path's) escaped, as it would end the row."""
    if isinstance(v, dict):
        return "; ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "none"
    if isinstance(v, list):
        return "; ".join(map(_fmt, v)) or "none"
    return f"{v:.4f}" if isinstance(v, float) else str(v).replace("\r", "\\r").replace("\n", "\\n")


def _log(msg: str) -> None:
    """A line on stderr, flushed, its control characters escaped (`terminal_safe`): it may quote
    a path, a class name or a record's text, which a terminal would otherwise obey."""
    print(terminal_safe(msg), file=sys.stderr, flush=True)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "models": cmd_models, "schema": cmd_schema, "validate": cmd_validate, "run": cmd_run,
    "render": cmd_render, "verify": cmd_verify, "check": cmd_check, "evaluate": cmd_evaluate, "measure": cmd_measure,
    "ablate": cmd_ablate,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `auditor` console script (`argv` None: sys.argv's, and the process
    exits when this returns; given, a call from Python, which finds the stop handlers as they were)."""
    args = _parse(argv)
    stops = Stops()
    stops.install()
    args.stops = stops  # for a command whose work becomes complete (`run`)
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _usable_streams(*streams)
    # A Ctrl-C to a pipeline (`auditor run ... 2>&1 | tee log`) ends the reader too: the stop's cleanup
    # and its lines must not end in a closed pipe's error (a user test: exit 141, not 130).
    stops.on_stop = getattr(sys.stderr, "let_pipe_close", None)
    _names_printable()
    try:
        return _run_command(args, stops)
    except KeyboardInterrupt as stop:  # before a command's own handler took over (e.g. while importing torch)
        again = VERIFY_RUN_STOPPED if args.command == "run" and started_by_verify() else "to go on, run the same command again"
        _log(f"\nauditor {args.command}: {stop_word(stop)}; {again}")
        return exit_code(stop)
    except InvalidInput as exc:
        return _report_error(args.command, str(exc) + _checkpoint_meant(args, str(exc)))
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        code = _broken_pipe()
        # ... unless a stop came first, whose signal the reader took too: the stop's exit code
        return code if stops.stopped_by is None else exit_code(stops.stopped_by)
    except OSError as exc:
        if exc.errno not in PATH_ERRNOS or exc.filename is None:
            raise  # not about a path the user gave (a full disk, a broken install, ...): not bad input
        names = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return _report_error(args.command, f"{names}: {exc.strerror or exc}")
    finally:
        if not stops.said and (note := stops.late_note()) is not None:  # it raised after its work was complete
            _log(note)
        sys.stdout, sys.stderr = streams
        stops.restore(to_exit=argv is None)  # None: the console script's (or `python -m`'s) call


def _run_command(args: argparse.Namespace, stops: Stops) -> int:
    """Import what the command needs, refuse input it cannot read, run it, and say a stop that came
    once its work was complete; its exit code."""
    _import_held(LIGHT_MODULES)
    if args.command in TORCH_COMMANDS:
        _refuse_unreadable_input(args)
    _import_held(COMMAND_MODULES.get(args.command, ()))
    code = COMMANDS[args.command](args)
    if (note := stops.late_note()) is not None:
        _log(note)
    _print_out([])  # a pipe is block-buffered: a closed reader (or a full disk) must surface here, not at exit
    return code


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line parsed; argparse's usage error (exit 2) for arguments no command takes."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args, stray = build_parser(raise_refusals=True).parse_known_args(words)
        if args.command == "validate" and stray and not any(a.startswith("-") for a in stray):
            args.specs, stray = [*args.specs, *stray], []  # specs after a --set: `validate a.yaml --set k=v b.yaml`
        if stray:
            args.command_parser.error(f"unrecognized arguments: {' '.join(stray)}")
    except _Refused as refused:
        said = _refused_check_junit(words, refused.message) if words[:1] == ["check"] else ""
        usage_exit(refused, abbreviation_hint(refused.parser, words) + said)
    return args


def _refused_check_junit(words: list[str], message: str) -> str:
    """For `check` arguments argparse refused (an unset variable's empty RUN_DIR, an option given
    twice, a misspelt one): an errored report at each --junit path the command line names, so that
    a CI page does not show the previous report's verdict; what to add to the error line about it.
    The paths are read by argparse itself (`_junit_values`), as the words would have been."""
    said = ""
    for given in _junit_values(words):
        try:
            path = _junit_path(given)
        except (argparse.ArgumentTypeError, ValueError) as exc:  # `--junit -`: the refusal itself, said already
            said += "" if str(exc) in message else f"\n(no JUnit report was written: {given}: {exc})"
            continue
        said += _errored_junit(path, "auditor.check", message)
    return said


def _junit_values(words: Sequence[str]) -> list[str]:
    """The --junit values of a `check` command line, each once, as argparse reads them: a parser of
    that one option (abbreviated too: `--jun`, which auditor 0.2.0 took, an upgrade test); none
    where argparse takes none (`--junit` last, or before another option)."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("--junit", action="append", default=[])
    try:
        return list(dict.fromkeys(parser.parse_known_args(list(words))[0].junit))
    except argparse.ArgumentError:
        return []


def abbreviation_hint(parser: argparse.ArgumentParser, words: Sequence[str]) -> str:
    """For a refused command line holding abbreviations of options the refusing `parser` has, which
    auditor 0.2.0 took (`--resum`, `--data DIR`): what each stands for, to add to the error line."""
    options = [o for o in parser._option_string_actions if o.startswith("--")]
    hints = []
    for word in dict.fromkeys(w.partition("=")[0] for w in words if w.startswith("--")):
        if word not in options and len(full := [o for o in options if o.startswith(word)]) == 1:
            hints.append(f"{word} for {full[0]}")
    return f" (options are given in full, not abbreviated: {', '.join(hints)})" if hints else ""


def _checkpoint_meant(args: argparse.Namespace, error: str) -> str:
    """For a command given a run's report (folder, audit.json or sheet) where a checkpoint goes, and
    refused for it (`error` names that path first): the checkpoints that run wrote beside it; ''
    otherwise (another refusal, such as --iters, or a checkpoint that loaded)."""
    if getattr(args, "checkpoint", None) is None or not error.startswith(f"{args.checkpoint}:"):
        return ""
    from auditor.audit import checkpoints_meant

    return checkpoints_meant(args.checkpoint)


def _usable_streams(stdout: Any, stderr: Any) -> tuple[Any, Any]:
    """stdout and stderr as the command writes them. A closed stdout (`>&-`, None in Python, where
    print writes nothing) fails as a full one does: results that cannot be written are an error.
    stderr carries diagnostics only: a closed one is /dev/null (print would fall back to stdout),
    and one that cannot be written (a full disk behind `2>`) drops what fails."""
    out = ClosedStream() if stdout is None else stdout
    err = open(os.devnull, "w", encoding="utf-8") if stderr is None else LenientStream(stderr)  # noqa: SIM115
    return out, err


class ClosedStream(io.TextIOBase):
    """A closed stdout: every write fails, as on a file descriptor that is not open."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed")

    def isatty(self) -> bool:
        return False


class LenientStream:
    """A stream whose failed writes are dropped (once one fails, its descriptor points at /dev/null,
    so that the flush at exit cannot fail again); a closed pipe is still BrokenPipeError (exit 141)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._pipe_may_close = False

    def let_pipe_close(self) -> None:
        """From now on a closed pipe is dropped as other failures are: a stop is under way, whose
        signal may have ended the reader (`| tee`), and whose cleanup must go on."""
        self._pipe_may_close = True

    def write(self, text: str) -> int:
        return self._lenient(lambda: self._stream.write(text), len(text))

    def flush(self) -> None:
        self._lenient(self._stream.flush, None)

    def _lenient(self, act: Callable[[], Any], instead: Any) -> Any:
        try:
            return act()
        except BrokenPipeError:
            if not self._pipe_may_close:
                raise
            _to_devnull(self._stream)
            return instead
        except OSError:
            _to_devnull(self._stream)
            return instead

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ... as the stream has them
        return getattr(self._stream, name)


def _names_printable() -> None:
    """Let stdout write what it cannot encode (stderr escapes it already): a path whose bytes are not
    UTF-8 reaches Python as lone surrogates, and printing one must not crash a command. Such a path
    is written as its own bytes (so that it can be pasted back), any other lone surrogate escaped."""
    codecs.register_error(NAMES_PRINTABLE, _own_bytes_or_escaped)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors=NAMES_PRINTABLE)


NAMES_PRINTABLE = "auditor.names"


def _own_bytes_or_escaped(exc: UnicodeError) -> tuple[str | bytes, int]:
    """An encoding error handler: surrogateescape's bytes where it has them, else `\\udXXX`."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in bad):
        return bytes(ord(c) - 0xDC00 for c in bad), exc.end
    return bad.encode("ascii", "backslashreplace").decode("ascii"), exc.end


# Commands that import torch before they start, once their spec or checkpoint could be read
# (validate: for the model registry and this machine's checks).
TORCH_COMMANDS = ("run", "verify", "evaluate", "measure", "validate")
# What a command imports before it starts, with stops held (`_import_held`): a Ctrl-C inside an import
# leaves modules half-made (inside torch's: an AttributeError or a C++ abort, not exit 130), and one
# inside the exec() by which a dataclass or named tuple makes its methods has CPython end the process
# by SIGINT after the command's own clean stop (-2 to a Python caller; 130 to a shell either way).
LIGHT_MODULES = ("auditor.spec", "auditor.audit", "auditor.check", "auditor.render", "auditor.ablate")  # no torch
TORCH_MODULES = ("torch", "auditor.data", "auditor.models", "auditor.runner", "auditor.inspect", "auditor.verify")
# Imported by a run part way, to draw the sheet's figure (matplotlib, which is optional: a figure it
# cannot draw is said in the sheet). torch._inductor, which use_deterministic_algorithms imports, is
# left to the runner, which holds stops around it: imported here, it would come before the flags.
FIGURE_MODULES = ("matplotlib.style", "matplotlib.figure", "matplotlib.backends.backend_agg")
COMMAND_MODULES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "run": (*TORCH_MODULES, *FIGURE_MODULES), "verify": (*TORCH_MODULES, *FIGURE_MODULES),
    "render": FIGURE_MODULES, "ablate": FIGURE_MODULES,
    **dict.fromkeys(("evaluate", "measure", "validate", "models"), TORCH_MODULES),
})  # fmt: skip


def _import_held(modules: Sequence[str]) -> None:
    """Import `modules` with Ctrl-C and SIGTERM held until all are (`COMMAND_MODULES`); a figure
    module that cannot be imported (not installed, or `MPLBACKEND` naming no backend) is left to
    the figure's own import, which says so or refuses it as the command did before."""
    with signals_held():
        for module in modules:
            try:
                importlib.import_module(module)
            except Exception:  # a figure module's failure is the figure's to report
                if module not in FIGURE_MODULES:
                    raise


def _refuse_unreadable_input(args: argparse.Namespace) -> None:
    """Refuse a spec that cannot be read (not found, not YAML, a malformed --set, ...) or a
    checkpoint path where no checkpoint file is (nothing, a folder, a FIFO, a link to nothing)
    before torch is imported, which takes seconds: the error its command would raise after the
    import, word for word, and first as there (`read_spec` is the first part of `load_spec`,
    `checkpoint_file` the first check of a checkpoint). Validation needs torch."""
    if args.command in ("evaluate", "measure"):
        from auditor.fileio import checkpoint_file

        checkpoint_file(args.checkpoint)
        return
    if args.command == "verify" and any(n is not None and n < 1 for n in (args.epochs, args.steps)):
        return  # verify says a budget flag below 1 before it reads the spec (make_plan)
    from auditor.spec import read_spec

    specs = args.specs if args.command == "validate" else [args.spec]
    errors = []
    for path in specs:
        try:
            read_spec(path, args.sets)  # the user's --set alone: verify's budget flags are applied after the import
        except InvalidInput as exc:
            errors.append(str(exc))
    if errors and len(errors) == len(specs):  # validate prints every spec that is valid: it goes on while one reads
        raise InvalidInput("\n".join(errors))


# The exception the first stop signal raises where the command is (Terminated is a KeyboardInterrupt).
STOPS: Mapping[int, type[KeyboardInterrupt]] = MappingProxyType({signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated})


class Stops:
    """What Ctrl-C (SIGINT) and SIGTERM do while a command runs (`install`, then `restore`).

    The first raises KeyboardInterrupt or Terminated where the command is, and both are ignored
    after it, so that the clean stop it starts is not cut short (a process group and ablate passing
    the signal on can deliver two; a second Ctrl-C would break off a checkpoint being written).
    Once the command's work is complete and in place (`complete`: a run's folders promoted), a stop
    has nothing left to stop: it is recorded in `came_after`, to be said, and the exit code stays
    the command's verdict; until the process exits, as a Ctrl-C in the second its exit takes (torch
    tearing down) had turned a complete, passing run into exit 130.
    """

    def __init__(self) -> None:
        self.replaced: dict[int, Any] = {}  # none off the main thread, none for a signal ignored already
        self.stopped_by: KeyboardInterrupt | None = None  # the stop raised, once one was
        self.on_stop: Callable[[], None] | None = None  # called as a stop is raised (stderr lets a closed pipe go)
        self.completed = False
        self.what = "the finished run"  # what was complete, for the note (`complete`)
        self.exiting = False  # the command has returned its exit code (`restore` for the process's exit)
        self.came_after: list[int] = []
        self.said = False  # late_note was given: a stop from then on (the process exiting) is said as it comes

    def install(self) -> None:
        """Handle both signals, except one ignored already (as a parent may arrange; a shell
        without job control, for Ctrl-C)."""
        handler = self._stop  # one object for both
        try:
            for signum in STOPS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self.replaced[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread
            pass

    def _stop(self, signum: int, frame: Any) -> None:
        if self.completed or self.exiting:
            self.came_after.append(signum)
            if (self.said or self.exiting) and len(self.came_after) == 1:  # no line of the command's comes after it
                with contextlib.suppress(OSError):  # stderr closed, or its reader gone: nothing to tell
                    os.write(2, f"{self._exit_note(signum)}\n".encode(errors="replace"))
            return
        for s in STOPS:
            signal.signal(s, signal.SIG_IGN)
        self.stopped_by = STOPS[signum]()
        if self.on_stop is not None:
            self.on_stop()
        raise self.stopped_by

    def _exit_note(self, signum: int) -> str:
        """The note for a stop that came while the process exited, its command's exit code given."""
        if self.completed:
            return stop_after_finish_note(signum, f"after {self.what} was in place, while the process exited")
        return f"note: {signal.Signals(signum).name} came while the process exited; it stopped nothing"

    def complete(self, what: str = "the finished run") -> None:
        """The command's work (`what`) is complete and in place: stops from now on change nothing."""
        self.completed, self.what = True, what

    def restore(self, to_exit: bool) -> None:
        """Put back the handlers replaced, for a caller in Python that goes on. Not where the process
        exits next (`to_exit`: it is the command): its exit code is given then, so that stops are
        recorded (and said) until exit, and ignored from the interpreter's shutdown on (it resets a
        Python handler to the default, which a stop would die of: -2 or -15 to a parent, rather than
        the command's exit code, as a Ctrl-C in the second a complete run's exit takes had given 130)."""
        if to_exit:
            self.exiting = True
            atexit.register(_ignore_stops, tuple(self.replaced))
            return
        for signum, handler in self.replaced.items():
            signal.signal(signum, handler)

    def late_note(self) -> str | None:
        """What to say of the stops that came after the work was complete, if any came; the first
        to come after this is said by the handler itself."""
        self.said = True
        return stop_after_finish_note(self.came_after[0], f"after {self.what} was in place") if self.came_after else None


def _ignore_stops(signums: tuple[int, ...]) -> None:
    for signum in signums:
        signal.signal(signum, signal.SIG_IGN)


# A path the OS refused, which no stage reported itself: bad input naming that path.
PATH_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENOENT, errno.EACCES, errno.EROFS}
)


def _report_error(command: str, message: str) -> int:
    """Print `auditor CMD: error: ...` on stderr; exit code 2 (141 when stderr's reader is gone)."""
    try:
        _log(f"auditor {command}: error: {message}")
    except BrokenPipeError:
        return _broken_pipe()
    return EXIT_INVALID


def _broken_pipe() -> int:
    """Exit code 141; stdout and stderr go to /dev/null so that nothing fails again at exit."""
    _to_devnull(sys.stdout, sys.stderr)
    return EXIT_BROKEN_PIPE


def _to_devnull(*streams: Any) -> None:
    """Point `streams`' file descriptors at /dev/null, so that Python's flush at exit cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in streams:
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a stream replaced by one without a file descriptor
            pass
    os.close(devnull)
