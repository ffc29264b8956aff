"""Render stage: the Markdown reproducibility sheet (model card) from audit.json alone.

`render_run(run_dir)` reads `RUN_DIR/audit.json`, draws the learning curves
into `RUN_DIR/figures/` and writes `RUN_DIR/REPRODUCIBILITY.md` atomically, so
a sheet can be re-rendered at any time without retraining, unless it was
edited by hand (its last line, `fileio.with_mark`, no longer matches its text).
`render_text` is the pure part (audit dict in, Markdown out) that golden tests
pin down.

Every statement on the sheet is derived from a fact in the audit record: the
checklist is ticked by the predicates in `checklist`, never by hand. The
template holds layout only; all formatting is done by the helpers below,
registered as Jinja filters, and the template runs under StrictUndefined so a
missing field raises instead of printing a blank.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jinja2

from auditor.audit import (
    CUBLAS_DETERMINISTIC,
    LEARNING_CURVES,
    MIN_CPU_WINDOW_S,
    RESOLVED_EFFECT,
    RESOLVED_YAML,
    ResolvedProblem,
    busy_cpu,
    chose_on_test,
    cpu_share_error,
    is_count,
    is_number,
    is_sha256,
    known_fields,
    latency_warnings,
    losses_text,
    metric_sources,
    nan_test_loss_note,
    not_a_number,
    nothing_differs,
    read_audit,
    record_no_selection,
    resolved_yaml_problem,
    retrain_words,
    scope_text,
    selected_epoch,
    short_of_budget,
    spec_hash_matches,
    step_of,
    verify_out_of,
    verify_workdir,
)
from auditor.check import (
    BROKEN,
    UNSELECTED,
    edited_metrics,
    edited_spec_problem,
    judged_details,
    provenance_disagrees,
    record_gate_status,
    shown_measured,
    stored_verdict_differs,
    unreproduced_note,
    verification_passed,
)
from auditor.errors import InvalidInput
from auditor.fileio import atomic_write_bytes, atomic_write_files, hand_edited, why_not_writable, with_mark
from auditor.spec import (
    CIFAR10_STD,
    CIFAR10_STD_LEGACY,
    NUMERIC_METRICS,
    resource_dir,
)
from auditor.words import count, describe_setting, every_n, exact, first_of, plural

TEMPLATE = "reproducibility.md.j2"
SHEET = "REPRODUCIBILITY.md"
FIGURES_DIR = "figures"
MAX_EPOCH_ROWS = 30  # longer histories show the first and last EPOCH_EDGE rows
EPOCH_EDGE = 10
IMAGENET_STEM = "7x7 conv (64 ch), stride 2, padding 3, then 3x3 max-pool, stride 2"
FIGURE_DPI = 100

__all__ = ["FILTERS", "build_context", "draw_figures", "make_environment", "render_run", "render_text"]


# --- public API ---------------------------------------------------------------------


def render_run(run_dir: Path, audit: dict[str, Any] | None = None, as_read: bytes | None = None) -> Path:
    """Render `run_dir/REPRODUCIBILITY.md` (and its figures) from `run_dir/audit.json` (`audit`:
    that record, where the caller has read it already; `as_read`: then its bytes as read, where
    no run holds the record, as for `auditor render`).

    Raises InvalidInput when audit.json is missing, unreadable, lacks a field the sheet needs, or
    was replaced while the sheet was rendered (a run of that name finishing meanwhile: the sheet
    of the record read must not land beside the new one). Returns the path of the sheet.
    """
    run_dir = Path(run_dir)
    read_here = record_bytes(run_dir) if audit is None else as_read
    audit = read_audit(run_dir) if audit is None else audit
    _refuse_invalid_edited_spec(run_dir, audit)
    refuse_hand_edited(run_dir / SHEET, "sheet")
    try:
        figures, notes, pngs = draw_figures(audit, run_dir / FIGURES_DIR)
        text = with_mark(render_text(audit, figures, notes, resolved_yaml_problem(run_dir, audit)))
        _unchanged_since(run_dir, read_here)
        # Written only once the text has rendered, and all or none: a record the template cannot
        # render, or a folder that cannot take the sheet, leaves the earlier sheet and figures as they
        # were, together. The sheet goes in place first: only a rename could fail after it.
        atomic_write_files({run_dir / SHEET: text.encode("utf-8"), **pngs})
    except OSError as exc:  # a read-only or full report folder, or a file where `figures/` goes
        _unchanged_since(run_dir, read_here)  # or the folder was replaced under the writes
        why = why_not_writable(exc, run_dir / FIGURES_DIR)
        raise InvalidInput(f"{run_dir}: cannot write the sheet or its figures: {why}") from None
    except (jinja2.UndefinedError, KeyError) as exc:
        raise InvalidInput(
            f"{run_dir / 'audit.json'}: incomplete audit record, cannot render the sheet: {_missing_field(exc, audit)}"
        ) from None
    return run_dir / SHEET


def refuse_hand_edited(path: Path, what: str) -> None:
    """InvalidInput where the file at `path` (the sheet, an ablation's page) is not as auditor wrote
    it (`hand_edited`): a rebuild would replace what was written there by hand (a user test)."""
    if (why := hand_edited(path)) is not None:
        raise InvalidInput(f"{path}: {why}; it is kept, and nothing was written: move it away (or delete it) to "
                           f"have auditor write the {what} again")  # fmt: skip


def _refuse_invalid_edited_spec(run_dir: Path, audit: dict[str, Any]) -> None:
    """InvalidInput, naming the field, for a resolved spec edited after the run into one that is no
    valid spec, or that validation reads otherwise (`edited_spec_problem`): the sheet reads its fields
    as validation leaves them. An edited spec that is valid is rendered, and the sheet says it was
    edited where its spec_hash no longer matches."""
    if (problem := edited_spec_problem(audit)) is not None:
        raise InvalidInput(f"{run_dir / 'audit.json'}: its resolved spec was edited after the run into none a run "
                           f"records ({problem}), so the sheet cannot be rendered")  # fmt: skip


# What a value edited by hand into another kind raises in the renderer (a record `read_audit` accepts).
RENDER_FAULTS = (TypeError, ValueError, AttributeError, IndexError, ArithmeticError)


def sheet_problem(audit: dict[str, Any]) -> str | None:
    """Why the sheet cannot be rendered from `audit`, as `render` says it, or None: `check` refuses
    what `render` refuses, as a record lacking a field may also lack one side of a cross-check
    (`check.edited_metrics`) that an edit would otherwise have failed."""
    try:
        render_text(audit, {LEARNING_CURVES: None})  # the figures' fields are read by the text too
    except (jinja2.UndefinedError, KeyError) as exc:
        return f"incomplete audit record: {_missing_field(exc, audit)}"
    except RENDER_FAULTS as exc:
        return malformed_text(exc)
    return None


def malformed_text(exc: Exception) -> str:
    """What `render` and `check` say of a record the renderer fails on with `exc` (one of RENDER_FAULTS)."""
    return (f"malformed audit record, cannot render the sheet ({type(exc).__name__}: {exc}); if the file was not "
            "edited by hand, this is a fault of auditor's renderer: please report it with the file")


def _missing_field(exc: Exception, audit: dict[str, Any]) -> str:
    """What a record lacks, in its own words: the key a KeyError names, or the attribute a Jinja
    UndefinedError names ("'dict object' has no attribute 'resume_notes'"), with the place of each
    field of that name a run writes that this record lacks (`environment.device`), where known."""
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    if key is None and (m := re.search(r"has no attribute '([^']+)'", str(exc))):
        key = m[1]
    if key is None:
        return f"a field the sheet reads is missing ({exc})"
    places = [d for d in known_fields() if d.rsplit(".", 1)[-1] == key and _lacks(audit, d.split("."))]
    return f"it has no field {key!r}" + (f" ({' or '.join(places)})" if places else "") + " where the sheet reads one"


def _lacks(audit: dict[str, Any], keys: list[str]) -> bool:
    """Whether the record lacks the field at `keys` (its section there, but not the field)."""
    node: Any = audit
    for key in keys[:-1]:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return isinstance(node, dict) and keys[-1] not in node


def record_bytes(run_dir: Path) -> bytes | None:
    """audit.json's bytes as they are now (None: unreadable, or not a regular file, whose read might
    block forever, a FIFO: `read_audit` then reports it)."""
    path = run_dir / "audit.json"
    if not path.is_file():
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _unchanged_since(run_dir: Path, read: bytes | None) -> None:
    """Refuse to write a sheet of a record that has since been replaced (`read`: its bytes when
    read; None: the caller passed the record and holds the run)."""
    if read is not None and record_bytes(run_dir) != read:
        raise InvalidInput(f"{run_dir / 'audit.json'}: replaced while its sheet was rendered (a run of this name "
                           "finished meanwhile?); nothing was written: run `auditor render` again")


def render_text(
    audit: dict[str, Any], figures: dict[str, str | None], figure_notes: dict[str, str] | None = None,
    resolved_problem: ResolvedProblem | None = None,
) -> str:
    """The sheet as Markdown: a pure function of the audit record and the figure paths.

    `figures` maps a figure name (`learning_curves`) to its path relative to
    the sheet, or None when it was not drawn; `figure_notes` optionally says
    why (shown instead of the image). `resolved_problem`: what is wrong with the
    spec.resolved.yaml beside the sheet, which its first Reproduce command trains
    (`audit.resolved_yaml_problem`), or None.
    """
    env = _sheet_environment()
    context = build_context(audit, figures, figure_notes or {}, resolved_problem)
    return env.get_template(TEMPLATE).render(**context)


@functools.cache
def _sheet_environment() -> jinja2.Environment:
    """The sheet's environment, made once: compiling the template takes about 0.1 s, and
    rendering it a few ms (the loader still reloads a template whose file changed)."""
    return make_environment()


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined that fails with UndefinedError, naming the field, also where a filter
    formats it (`f"{value:.2f}"`): StrictUndefined leaves that to object.__format__, whose
    TypeError names no field (a record lacking run.measure_time_s)."""

    def __format__(self, spec: str) -> str:
        self._fail_with_undefined_error()


def make_environment(filters: Mapping[str, Callable[..., str]] | None = None) -> jinja2.Environment:
    """The Jinja environment of the shipped templates: StrictUndefined, Markdown, `filters`
    (default: the sheet's FILTERS)."""
    env = jinja2.Environment(
        undefined=_Undefined,
        loader=jinja2.FileSystemLoader(resource_dir("templates")),
        autoescape=False,  # Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS if filters is None else filters)
    return env


# --- figures ------------------------------------------------------------------------


def draw_figures(
    audit: dict[str, Any], fig_dir: Path
) -> tuple[dict[str, str | None], dict[str, str], dict[Path, bytes]]:
    """Draw the learning curves in memory; return (figure -> path relative to the sheet or
    None, figure -> why not, file to write under `fig_dir` -> its PNG bytes)."""
    history = audit["training"]["history"]
    if not history:
        return {LEARNING_CURVES: None}, {LEARNING_CURVES: "no completed epoch to plot"}, {}
    try:
        import matplotlib.style
    except Exception as exc:  # noqa: BLE001 - not installed, or its settings refused (MPLBACKEND naming no backend)
        return {LEARNING_CURVES: None}, {
            LEARNING_CURVES: f"figures unavailable: matplotlib is not importable ({type(exc).__name__}: {exc}); "
            "install matplotlib (or mend its settings) and run `auditor render` again"
        }, {}
    split = audit["training"]["selection_split"]
    # The default style makes the output independent of any matplotlibrc.
    with matplotlib.style.context("default"):
        fig = agg_figure((12, 3.6))
        _plot_curves(fig, history, split, train_loss_label(audit))
        name = f"{LEARNING_CURVES}.png"
        png = png_bytes(fig)
    return {LEARNING_CURVES: f"{fig_dir.name}/{name}"}, {}, {fig_dir / name: png}


def agg_figure(figsize: tuple[float, float]) -> Any:
    """A matplotlib Figure drawn by an explicit Agg canvas: no pyplot state, no global backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    return fig


def epoch_axis(ax: Any) -> None:
    """Whole-epoch ticks on `ax`'s x axis, a single one too: with one epoch plotted the axis
    spans about 0.95-1.05, where an integer locator that wants two ticks falls back to fractions."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")


def png_bytes(fig: Any) -> bytes:
    """`fig` as PNG, without a timestamp or version in its metadata (the same bytes each time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buf.getvalue()


def write_png(fig: Any, path: Path) -> None:
    """Save `fig` as PNG atomically."""
    atomic_write_bytes(path, png_bytes(fig))


def _plot_curves(fig: Any, history: list[dict[str, Any]], split: str, train_loss: str) -> None:
    epochs = [h["epoch"] for h in history]
    val = lambda k: [math.nan if h[k] is None else h[k] for h in history]

    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "acc", "Accuracy")):
        train_label = "train" if key == "acc" else train_loss.replace("Train loss", "train", 1)
        ax.plot(epochs, val(f"train_{key}"), marker="o", markersize=3, label=train_label)
        ax.plot(epochs, val(f"val_{key}"), marker="o", markersize=3, label=f"{split} (selection)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    # Points only: a line joining two epochs' last lr drew a step decay as a gradual one (a user test).
    ax_lr.plot(epochs, val("lr"), marker="o", markersize=3, linestyle="none", color="tab:green")
    ax_lr.set_title("Learning rate (the epoch's last step)")
    ax_lr.grid(True, alpha=0.3)
    for ax in (ax_loss, ax_acc, ax_lr):
        epoch_axis(ax)
    # Fixed margins (inches-stable at this figure size): tight_layout would cost a
    # third of the drawing time (45 of 140 ms here) for the same look.
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.91, wspace=0.2)


# --- formatting filters -----------------------------------------------------------------

NA = "n/a"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def na(x: Any) -> str:
    """`n/a` for None, else str(x)."""
    return NA if x is None else str(x)


def num(x: float | None) -> str:
    """Shortest exact form of a number: 0.05, 5e-06, 3 (integral floats lose `.0`)."""
    if _missing(x):
        return NA
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return exact(x) if math.isfinite(x) else str(x)
    return str(x)


def fixed(x: float | None, decimals: int = 4) -> str:
    """A float with a fixed number of decimals (losses)."""
    return NA if _missing(x) else f"{x:.{decimals}f}"


def loss_cell(x: float | None) -> str:
    """An epoch's loss: every epoch records both, so a missing one was non-finite
    (audit.json writes NaN and inf as null)."""
    return "non-finite" if x is None or not math.isfinite(x) else fixed(x)


def pct(x: float | None, decimals: int = 2) -> str:
    """A fraction as a percentage: 0.9867 -> 98.67%."""
    return NA if _missing(x) else f"{100 * x:.{decimals}f}%"


def ms(x: float | None) -> str:
    """Milliseconds, three decimals."""
    return NA if _missing(x) else f"{x:,.3f} ms"


def mb(x: float | None) -> str:
    """A value already in (decimal) megabytes."""
    return NA if _missing(x) else f"{x:,.1f} MB"


def bytes_mb(n: int | None) -> str:
    """A byte count as decimal MB with the exact count: 0.64 MB (643,025 bytes)."""
    return NA if n is None else f"{n / 1e6:,.2f} MB ({n:,} bytes)"


def thousands(n: float | None) -> str:
    """Thousands separators: 11173962 -> 11,173,962."""
    if _missing(n):
        return NA
    return f"{n:,}" if isinstance(n, int) else f"{n:,.1f}"


def millions(n: int | None) -> str:
    """A count in millions: 11.17 M, or 0.0753 M below one million."""
    return NA if n is None else f"{in_millions(n / 1e6)} M"


def in_millions(x: float) -> str:
    """A figure already in millions, without its unit: 11.17, or 0.0753 below one (two decimals
    would make a 0.0753 M model read 0.08)."""
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def seconds(s: float | None) -> str:
    """Seconds, with h/min added from two minutes up."""
    if _missing(s):
        return NA
    text = f"{s:,.1f} s"
    if s >= 120:
        h, rem = divmod(round(s), 3600)
        m, sec = divmod(rem, 60)
        text += f" ({h} h {m:02d} min)" if h else f" ({m} min {sec:02d} s)"
    return text


def rate(x: float | None) -> str:
    """Images per second."""
    return NA if _missing(x) else f"{x:,.1f} images/s"


def yesno(x: bool | None, yes: str = "yes", no: str = "no", unknown: str = "unknown") -> str:
    """yes / no / unknown for a bool or None."""
    return unknown if x is None else (yes if x else no)


def short_sha(s: str | None, n: int = 12) -> str:
    """The first `n` hex digits of a digest."""
    return NA if s is None else str(s)[:n]


def code(x: Any) -> str:
    """An inline code span (n/a for None), safe for values containing backticks."""
    if x is None:
        return NA
    text = str(x)
    if "`" not in text:
        return f"`{text}`"
    fence = "``" if "``" not in text else "```"
    return f"{fence} {text} {fence}"


def cell(x: Any) -> str:
    """Escape a value for a Markdown table cell (pipes, newlines)."""
    return str(x).replace("\\|", "|").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation mark: Markdown lets each be escaped


def plain(x: Any) -> str:
    """Text from the data (class names) shown as written: every ASCII punctuation mark escaped,
    so `**bird**` is not bold, `<b>` no tag, `a.com` no link, and a pipe or backslash survives
    `cell` (which handles newlines)."""
    return _MD_PUNCTUATION.sub(r"\\\1", str(x))


def md_table(rows: Iterable[Sequence[Any]], headers: Sequence[str], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; `align` is one letter per column (l, r, c)."""
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    align = align or "l" * len(headers)
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def shq(x: Any) -> str:
    """Quote a word for a POSIX shell (only when needed)."""
    return shlex.quote(str(x))


_YAML_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.() -]*[A-Za-z0-9_.)]|[A-Za-z]")
_YAML_RESERVED = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}


def yaml_scalar(x: Any) -> str:
    """A value as one YAML scalar that YAML 1.1 and 1.2 parsers read back identically.

    Strings stay plain only when they start with a letter and are not a
    boolean/null word (so `1e5`, `true`, `off` are quoted); others are written
    as JSON strings, which are valid double-quoted YAML.
    """
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, (int, float)):
        return num(x)
    s = str(x)
    if _YAML_PLAIN.fullmatch(s) and s.lower() not in _YAML_RESERVED:
        return s
    return json.dumps(s, ensure_ascii=False)


def cudnn_version(v: int | None) -> str:
    """cuDNN's integer version as x.y.z: 92400 -> 9.24.0 (92400), 8902 -> 8.9.2."""
    if v is None:
        return "none"
    if v >= 90000:  # cuDNN 9 packs major * 10000 + minor * 100 + patch
        major, minor, patch = v // 10000, v % 10000 // 100, v % 100
    else:  # earlier versions: major * 1000 + minor * 100 + patch
        major, minor, patch = v // 1000, v % 1000 // 100, v % 100
    return f"{major}.{minor}.{patch} ({v})"


def triple(xs: Sequence[float] | None) -> str:
    """Per-channel statistics to four decimals: (0.2470, 0.2435, 0.2616)."""
    return NA if xs is None else "(" + ", ".join(f"{x:.4f}" for x in xs) + ")"


def listing(xs: Iterable[Any] | None, empty: str = "none") -> str:
    """Comma-separated values, or `empty`."""
    items = [num(x) if isinstance(x, (int, float)) else str(x) for x in (xs or [])]
    return ", ".join(items) if items else empty


def code_list(xs: Iterable[Any] | None, empty: str = "none") -> str:
    """Comma-separated inline code spans."""
    items = [code(x) for x in (xs or [])]
    return ", ".join(items) if items else empty


def blockquote(text: str) -> str:
    """Prefix every line with `> `."""
    return "\n".join(f"> {line}" if line else ">" for line in str(text).splitlines())


def any_value(x: Any) -> str:
    """A value of unknown shape (dict, list, number, str) as one readable line."""
    if isinstance(x, dict):
        return ", ".join(f"{k}: {any_value(v)}" for k, v in x.items()) or "none"
    if isinstance(x, (list, tuple)):
        return ", ".join(any_value(v) for v in x) or "none"
    return num(x) if isinstance(x, (int, float)) else na(x)


def checkbox(ok: bool) -> str:
    """A task-list box."""
    return "[x]" if ok else "[ ]"


FILTERS: Mapping[str, Callable[..., str]] = MappingProxyType({
    "na": na, "num": num, "pct": pct, "ms": ms, "mb": mb, "bytes_mb": bytes_mb,
    "thousands": thousands, "millions": millions, "seconds": seconds, "rate": rate,
    "yesno": yesno, "short_sha": short_sha, "code": code, "cell": cell, "md_table": md_table,
    "shq": shq, "yaml_scalar": yaml_scalar, "cudnn_version": cudnn_version, "triple": triple,
    "listing": listing, "code_list": code_list, "blockquote": blockquote, "any_value": any_value,
    "checkbox": checkbox,
})  # fmt: skip


# --- the view: facts prepared for the template ---------------------------------------------


def build_context(
    audit: dict[str, Any], figures: dict[str, str | None], figure_notes: dict[str, str],
    resolved_problem: ResolvedProblem | None = None,
) -> dict[str, Any]:
    """Everything the template needs: the raw audit plus rows and sentences derived from it
    (`resolved_problem`: see render_text)."""
    v: dict[str, Any] = {"resolved_caution": _resolved_caution(resolved_problem)}
    v.update(_summary(audit))
    v.update(_architecture(audit))
    v.update(_hyperparameters(audit))
    v.update(_data(audit))
    v.update(_determinism(audit))
    v.update(_cpus(audit))
    v["host_memory"] = host_memory_text(audit)  # the optimisations table
    v["compile_cache_note"] = COMPILE_CACHE_NOTE
    v.update(toggle_texts(audit))
    v.update(_results(audit))
    v.update(_measurements(audit))
    v.update(_checkpoints(audit))
    v.update(_reproduce(audit))
    v.update(_criteria(audit))
    v.update(_verification(audit))
    v["figure"] = figures.get(LEARNING_CURVES)
    v["figure_note"] = figure_notes.get(LEARNING_CURVES, "no figure was supplied to the renderer")
    v |= _edits(audit)
    qualifier = cifar_qualifier(audit["data"])
    # One parenthesis: "(not the official files; 1,024 training images)", never two in a row.
    v["data_scope"] = "; ".join([*([qualifier] if qualifier else []), count(audit["data"]["sizes"]["train"], "training image")])
    v["spec_shipped_text"] = _spec_shipped_text(audit)
    v |= _processes(audit)
    v |= _verify_run(audit)
    v["limits_text"] = _limits_text(audit["spec"]["data"], audit["data"])
    v["batch_sizes"] = _batch_sizes(audit["spec"]["train"], audit["data"]["sizes"]["train"])
    v["checklist"] = checklist(audit)
    # Free text: fenced, so that its Markdown (a ticked box, a heading) cannot pass for the sheet's.
    v["description"] = str(audit["spec"].get("description") or "").rstrip("\n")
    v["generated_text"] = _generated_text(audit["environment"]["auditor"], bool(v["description"]))
    v.update(_process_scope(audit["run"]))
    v["fence"] = code_fence(audit)
    return {"audit": audit, "v": v}


def _edits(audit: dict[str, Any]) -> dict[str, Any]:
    """What the sheet says of a record edited after the run (metrics that disagree with what it
    measured, a spec no longer its hash's), and the front matter, which marks such figures disputed."""
    edited, spec_ok = edited_metrics(audit), spec_hash_matches(audit)
    return {
        "front_matter": _front_matter(audit, cifar_qualifier(audit["data"]), disputed=bool(edited)),
        "judged_again": _judged_again(audit, refused=bool(edited) or not spec_ok),
        "metrics_edited": metrics_edited_text(edited),
        "spec_edited": None if spec_ok else spec_edited_text(audit["spec_hash"]),
    }


def _processes(audit: dict[str, Any]) -> dict[str, Any]:
    """The Reproduce section's facts of the processes that made the run: the last one a resume or
    not, and the first one's command, folder and threads where the record carries them."""
    run = audit["run"]
    started = run.get("started_by")  # records before it was carried: none
    started = started if isinstance(started, dict) and {"command", "cwd"} <= started.keys() else None
    return {
        "resumed_from_text": _resumed_from_text(run, audit["training"]),
        # Records before the command kept --resume hold a resumed run's command without it.
        "command_was_resume": bool(run["resumed_from"]) or audit["environment"]["command"].endswith(" --resume"),
        # The retrain runs where the last process ran: a resume from another folder read the same data
        # (it checks the data's fingerprint) through the spec's relative paths, taken from there.
        "retrain_from": "where this run's last process (a resume) ran" if run["resumed_from"] else "where the original ran",
        "started_by": started,
        # A first process given --resume found no checkpoint and trained from the start: where no run of
        # the name is, --resume is refused, so the command that reproduces it is the one without it.
        "started_by_resumed": bool(started) and str(started["command"]).endswith(" --resume"),
        "started_by_threads": _first_threads(audit["training"]) if started else None,
    }


def code_fence(record: Any) -> str:
    """A Markdown code fence longer than any run of backticks in `record`'s text (3 at least), so
    that no value shown inside a code block (a command quoting a spec's text, a path) can close it."""
    longest, todo = 0, [record]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            todo += value
        elif isinstance(value, str) and "`" in value:
            longest = max(longest, *(len(run) for run in re.findall(r"`+", value)))
    return "`" * max(3, longest + 1)


def _process_scope(run: dict[str, Any]) -> dict[str, Any]:
    """When the run took place, and what its memory peaks cover: a resumed run's are its last process's."""
    times = (f"{run['started_utc']}, finished {run['finished_utc']} (wall time {seconds(run['wall_time_s'])}, from "
             "loading the data to the last measurement: Python's and torch's start-up and writing this report are not in it")
    if not run["resumed_from"]:
        return {"run_time_text": f"Run started {times}).", "memory_scope": None}
    return {
        "run_time_text": f"This process (resumed from `{run['resumed_from']}`) started {times}; "
        "the training time below sums every process's epochs).",
        "memory_scope": "the resumed process only",
    }


def _generated_text(run_version: str, described: bool) -> str:
    """Whose words the method descriptions are: this renderer's, which may not be the run's version;
    `described`: the spec's description, its author's, is quoted above."""
    from auditor import __version__

    text = (f"Generated by auditor {__version__} from `audit.json` alone: every figure and setting comes "
            f"from that record, and the descriptions of method are those of auditor {__version__}")  # fmt: skip
    if run_version != __version__:
        text += f" (the run itself used auditor {run_version})"
    return text + ("; nothing on this sheet is entered by hand" +
                   (" but the spec's description quoted above" if described else "") +
                   ". The record is a plain JSON file: `auditor check` refuses one whose spec no longer matches its "
                   "hash, or in which a figure it cross-checks no longer agrees with another (README lists them); an "
                   "edit that keeps those in agreement shows only against the checkpoints and logs.")


def _front_matter(audit: dict[str, Any], qualifier: str, disputed: bool = False) -> dict[str, Any]:
    """The model card's model-index facts. No accuracy is offered where the run withheld it, nor
    from a `disputed` record (edited after the run: which of its figures is the measured one, only
    the checkpoints can tell), since the tools that read model-index see no warning."""
    dataset = audit["data"]["dataset"]
    withheld = disputed or metric_sources(audit)["test_acc"].value is None
    test_acc = None if withheld else audit["metrics"]["test_acc"]
    name = "Test accuracy"
    if chose_on_test(audit["training"]):
        name += " (checkpoint selected on the test split: optimistically biased)"
    seen = [f"{n:,} {what}" for what, n in (("trained on", audit["data"].get("test_in_train")),
                                            ("selected on", audit["data"].get("test_in_val"))) if n]  # fmt: skip
    if seen:
        name += f" (test images seen before, pixel for pixel: {', '.join(seen)}: optimistically biased)"
    metrics = [] if _missing(test_acc) else [{"type": "accuracy", "value": test_acc, "name": name}]
    data = audit["data"]
    # Tools that read model-index (the Hub's, leaderboards) go by `type` and `split`, not by the
    # name: files that are not the official ones are another dataset to them, and the first N
    # test images are `test[:N]` (the split's slicing syntax; limit_test scores the first N).
    return {
        "dataset_id": f"{dataset}-unofficial" if unofficial(data) else dataset,
        "split": "test" if test_files_beyond_scored(data) is None else f"test[:{data['sizes']['test']}]",
        # The Hub's `datasets` links the card to the official set: not for a copy that differs from
        # it, nor for the synthetic data (no Hub dataset).
        "datasets": [dataset] if dataset == "cifar10" and not qualifier else [],
        "dataset_name": f"CIFAR-10 ({qualifier})" if qualifier else
        "CIFAR-10" if dataset == "cifar10" else f"{dataset} (auditor)",
        "metrics": metrics,
    }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def cifar_qualifier(data: dict[str, Any]) -> str:
    """How CIFAR-10 data differs from the official test set ('' when it does not, or is not CIFAR-10)."""
    if data["dataset"] != "cifar10":
        return ""
    parts = ["not the official files"] if unofficial(data) else []
    if (files := test_files_beyond_scored(data)) is not None:
        parts.append(f"{data['sizes']['test']:,} of the {files:,} test images there")
    return "; ".join(parts)


def unofficial(data: dict[str, Any]) -> bool:
    """Whether CIFAR-10 data is not the official files: so recorded, or recorded official against
    the record's own file report (edited after the run)."""
    return data["dataset"] == "cifar10" and (data["official"] is False or bool(provenance_disagrees(data)))


def test_files_beyond_scored(data: dict[str, Any]) -> int | None:
    """How many test images CIFAR-10's files held where a run scored only the first of them
    (data.limit_test), else None."""
    files = data.get("n_test_files")
    return files if data["dataset"] == "cifar10" and files and data["sizes"]["test"] < files else None


def _summary(audit: dict[str, Any]) -> dict[str, Any]:
    run, tr, crit = audit["run"], audit["training"], audit["criteria"]
    status = run["status"]
    n_pass = sum(bool(c["passed"]) for c in crit)
    reasons = [f"criterion `{c['metric']} {c['expr']}` failed" for c in crit if not c["passed"]]
    if status == "diverged":
        reasons.insert(0, "training diverged")
    elif (gate := record_gate_status(audit)) == BROKEN:
        reasons.insert(0, "the model holds inf or NaN weights (a broken model fails whatever its criteria say)")
    elif gate == UNSELECTED:
        reasons.insert(0, "no epoch could be selected: each one's selection-split loss was not a number (such a run "
                          "fails whatever its criteria say)")
    env = audit["environment"]
    gpu = env["gpu"]
    hw = gpu["name"] if gpu else env["cpu_model"]
    diverged = None
    if status == "diverged":
        step = tr["diverged_at_step"]
        where = f"at global step {step} (0-based)" if step is not None else "(step not recorded)"
        diverged = (
            f"**FAIL — TRAINING DIVERGED.** The training loss became non-finite {where} and training "
            f"stopped after {count(tr['epochs_run'], 'completed epoch')} of {tr['epochs_planned']} planned. "
            "No metric on this sheet describes a successfully trained model."
        )
    return {
        "verdict": audit["verdict"],
        "title_suffix": " (FAIL: TRAINING DIVERGED)" if status == "diverged" else "",
        "n_pass": n_pass,
        "n_criteria": len(crit),
        "fail_reasons": reasons,
        "accuracy_ungated": _accuracy_ungated(crit) if not reasons and audit["verdict"] == "PASS" else None,
        "unreproduced": unreproduced_note(audit, [str(c["metric"]) for c in crit]),
        "diverged_banner": diverged,
        "hardware": hw,
        "date": str(run["finished_utc"])[:10],
        "status_text": {"completed": "completed", "early_stopped": "early stopped",
                        "diverged": "DIVERGED"}.get(status, status),
    }


def _accuracy_ungated(crit: list[dict[str, Any]]) -> str | None:
    """Where criteria are defined but none gates an accuracy, what the PASS says then (a user test:
    a spec gating `status == completed` alone passed a model at chance); else None."""
    metrics = list(dict.fromkeys(str(c["metric"]) for c in crit))
    if not metrics or any(NUMERIC_METRICS.get(m) == "fraction" for m in metrics):  # the accuracies
        return None
    return (f"No criterion gates an accuracy: the PASS says the run met its criteria on {', '.join(metrics)}, not "
            "that the model learned; the accuracies are in Results below.")


_FAMILY_NOTES = {
    "resnet-cifar": (
        "CIFAR-native: a net of the family He et al. (2016), Sec. 4.2 designed for 32x32 inputs (depth 6n+2, "
        "three stages of 16/32/64 channels); it has no ImageNet stem to adapt."
    ),
    "plain-cifar": (
        "CIFAR-native: a plain (shortcut-free) twin of the nets of He et al. (2016), Sec. 4.2, designed for "
        "32x32 inputs; it has no ImageNet stem to adapt."
    ),
    "resnet-imagenet-style": (
        "ImageNet architecture (torchvision) adapted to CIFAR-10: the 7x7 stride-2 conv and the "
        "max-pool are replaced by a 3x3 stride-1 conv, so a 32x32 image is not shrunk to 8x8 before "
        "the first stage."
    ),
}


# Depths He et al. (2016) trained on CIFAR-10: ResNets (Table 6), and plain nets (Fig. 6, whose
# caption gives plain-110's error, above 60%, without plotting it).
_PAPER_DEPTHS = {"resnet-cifar": (20, 32, 44, 56, 110, 1202), "plain-cifar": (20, 32, 44, 56, 110)}


def _family_note(m: dict[str, Any]) -> str:
    """The family's note, qualified where this net departs from what its source trained: a depth
    the paper did not train, or a normalisation other than batch norm."""
    note = _FAMILY_NOTES.get(m["family"], f"family {m['family']}: no note recorded")
    depths = _PAPER_DEPTHS.get(m["family"])
    if depths and m.get("depth") not in depths:
        note += (f" Depth {m.get('depth')} follows the 6n+2 rule but is not one the paper trained "
                 f"({', '.join(map(str, depths))}).")
    if m.get("norm", "batch") != "batch":
        source = "the paper's" if m["family"] in _PAPER_DEPTHS else "torchvision's"
        note += f" Normalisation here is `{m.get('norm')}`, where {source} net uses batch norm."
    return note


def _norm_text(m: dict[str, Any]) -> str:
    """`model.norm`, with GroupNorm's group counts where the record holds them (runs since they were
    recorded): `group (GroupNorm: 16 groups at 16 channels; 32 groups at 32, 64 channels)`."""
    norm, groups = m.get("norm", "batch"), m.get("norm_groups")
    if norm != "group" or not groups:
        return norm
    by_count: dict[int, list[str]] = {}
    for channels, g in groups.items():
        by_count.setdefault(g, []).append(channels)
    said = [f"{count(g, 'group')} at {listing(cs)} channels" for g, cs in by_count.items()]
    return f"group (GroupNorm: {'; '.join(said)})"


def _stem_facts(stem: str) -> tuple[str, str]:
    """(max-pool, spatial size entering stage 1 for a 32x32 input) read from the stem text."""
    m = re.search(r"stride (\d+)", stem)
    pool = "no max-pool" not in stem and "max-pool" in stem
    if not m:
        return ("yes" if pool else "none"), "see stem"
    size = 32 // int(m[1]) // (2 if pool else 1)
    return ("yes" if pool else "none"), f"{size}x{size}"


def _architecture(audit: dict[str, Any]) -> dict[str, Any]:
    m = audit["model"]
    pool, res = _stem_facts(m["stem"])
    rows = [
        ["Stem", m["stem"], IMAGENET_STEM],
        ["Max-pool after the stem", pool, "3x3, stride 2"],
        ["Spatial size entering stage 1 (32x32 input)", res, "8x8"],
    ]
    widths = listing(m["stage_widths"])
    if m["block"] == "bottleneck":
        widths += " (bottleneck widths; each stage outputs 4x as many channels)"
    return {
        "family_note": _family_note(m),
        "norm_text": _norm_text(m),
        "init_text": m.get("init", "not recorded (a record from before auditor recorded it)"),
        "stem_rows": rows,
        "stage_widths": widths,
    }


def _hyperparameters(audit: dict[str, Any]) -> dict[str, Any]:
    t = audit["spec"]["train"]
    s = t["schedule"]
    name = s["name"]
    warm = f"linear warm-up over {num(s['warmup_epochs'])} {plural(s['warmup_epochs'], 'epoch')}, then " \
        if s["warmup_epochs"] else ""
    body = {
        "cosine": f"cosine decay to eta_min = {num(s['eta_min'])}",
        "multistep": (f"multiply by gamma = {num(s['gamma'])} "
                      f"{milestones_text(s['milestones'], audit['training'].get('steps_per_epoch'), s['warmup_epochs'])}"),
        "constant": "the base lr" if s["warmup_epochs"] else "the base lr throughout",
    }.get(name, name)
    hidden = [m for m in s["milestones"] if m < s["warmup_epochs"]] if name == "multistep" else []
    if hidden:  # train.lr_factor: the warm-up's ramp ignores them; their decay applies when it ends
        body += (f"; the warm-up ignores the {plural(len(hidden), 'milestone')} within it ({listing(hidden)}): "
                 f"{'their' if len(hidden) != 1 else 'its'} decay applies at once when the warm-up ends, "
                 f"after {count(s['warmup_epochs'], 'epoch')}")  # fmt: skip
    unused = "not used by this schedule"
    es = t["early_stopping"]
    return {
        "schedule_text": f"{name}: {warm}{body}{'' if name == 'constant' and not warm else ' (lr updated every step)'}{_within_warmup(audit['training'], s) or _cut_short(audit['training'], s)}",
        "milestones_text": (
            listing(s["milestones"]) if name == "multistep" else f"{listing(s['milestones'])} ({unused})"
        ),
        "gamma_text": num(s["gamma"]) if name == "multistep" else f"{num(s['gamma'])} ({unused})",
        "eta_min_text": num(s["eta_min"]) if name == "cosine" else f"{num(s['eta_min'])} ({unused})",
        "early_stopping_text": "off" if es is None else (
            f"patience {count(es['patience'], 'epoch')} without improvement of the selection accuracy, counted "
            + (f"once it reaches {_exact_pct(es['floor'])}" if es["floor"] else "from the first epoch that can be selected")
        ),
        "max_steps_text": _max_steps_text(t, audit["training"].get("steps_per_epoch")),
        "steps_per_epoch_text": steps_per_epoch_text(
            audit["training"].get("steps_per_epoch"), audit["data"]["sizes"]["train"], t["batch_size"]),
        "ckpt_every_text": _ckpt_every_text(t, audit["training"].get("steps_per_epoch")),
    }  # fmt: skip


def _normalization(kind: str, ds: dict[str, Any]) -> tuple[str | None, str]:
    """(the legacy-std warning or None, the Normalisation kind row) of a record's data section
    kind and its spec's data section `ds`."""
    legacy_warning = None
    if kind == "cifar10-legacy-std":
        legacy_warning = (
            f"The normalisation std {triple(ds['std'])} is the widely copied legacy value"
            + ("" if triple(ds["std"]) == triple(CIFAR10_STD_LEGACY) else f" {triple(CIFAR10_STD_LEGACY)}")
            + ", which is not the per-channel std of the CIFAR-10 training "
            f"images. The correct std is {triple(CIFAR10_STD)}. A model trained this way expects "
            "inputs normalised the same (wrong) way."
        )
    norm_text = {
        "cifar10-correct": "CIFAR-10 training-set statistics (correct std)",
        "cifar10-legacy-std": "**legacy std (wrong)**, see the warning below",
        "custom": "custom (neither the CIFAR-10 statistics nor the legacy std)",
    }.get(kind, kind)
    if ds.get("dataset") == "synthetic" and kind != "custom":  # the constants named, not the data read
        norm_text += " (the constants only: this run read synthetic images, not CIFAR-10)"
    return legacy_warning, norm_text


def other_entries_text(d: Mapping[str, Any]) -> str | None:
    """The sheet's line on the entries of the data folder (`d`: the record's data) that were not
    read, or that it could not be listed; None where there are none, or the record is of synthetic
    data or of a version before they were recorded."""
    if "n_other_entries" not in d or d["root"] is None:
        return None
    if d["n_other_entries"] is None:
        return "The folder could not be listed, so whether it holds files a run does not read is not known."
    if not d["n_other_entries"]:
        return None
    shown = first_of([code(name) for name in d["other_entries"] or []], d["n_other_entries"])
    return (f"Also in {code(Path(d['root']).name + '/')} but not read (a run reads only the official files "
            f"`data_batch_1`..`5`, `test_batch`, `batches.meta`): {shown}.")


def _data(audit: dict[str, Any]) -> dict[str, Any]:
    d, ds = audit["data"], audit["spec"]["data"]
    if disputed := provenance_disagrees(d):
        provenance = f"**audit.json was edited after the run: {disputed[0]}** ({d['note']})"
    elif d["official"] is None:
        provenance = f"not applicable: {d['note']}"
    elif d["official"]:
        provenance = f"official CIFAR-10 ({d['note']})"
    else:
        provenance = f"**{d['note']}**"
    legacy_warning, norm_text = _normalization(d["normalization"], ds)
    aug, scored = ds["augment"], test_scored(audit)
    parts = []
    if aug["crop_padding"]:
        parts.append(f"random 32x32 crop after {aug['crop_padding']} px zero padding")
    if aug["hflip"]:
        parts.append("random horizontal flip (p = 0.5)")
    return {
        "root_text": code(d["root"]) if d["root"] is not None else "n/a (generated in memory)",
        "provenance_text": provenance,
        "download_text": _download_text(d, ds["download"]),
        "file_rows": _file_rows(d),
        "other_entries_text": other_entries_text(d),
        "normalization_text": norm_text,
        "legacy_std_warning": legacy_warning,
        "augment_text": "; ".join(parts) if parts else "none",
        "test_fingerprint": code(d["test_fingerprint"]) if d.get("test_fingerprint") else "not recorded",
        "scored_fingerprint": _scored_fingerprint(d, scored),
        "split_fingerprint": code(d["split_fingerprint"]) if d.get("split_fingerprint") else "not recorded",
        "val_copies_text": _val_copies_text(d),
        "class_count_rows": _class_count_rows(d),
        "classes_text": listing([plain(c) for c in d["classes"]]),
        **_test_copies(d, scored),
    }  # fmt: skip


EXACT_COPIES = "(exact pixel copies; near-duplicates are not looked for)"  # what data.copies_of counts


def _val_copies_text(d: dict[str, Any]) -> str:
    """The val images found, pixel for pixel, in the train split: the selection accuracy counts them."""
    n, copies = d["sizes"]["val"], d.get("val_in_train")
    if not n:
        return "n/a (no val split)"
    if copies is None:  # records written before the check
        return "not checked (recorded before this check)"
    them = "it" if copies == 1 else "them"
    counted = f": the selection accuracy counts {them}, though the model trained on {them}" if copies else ""
    return f"{copies:,} of {n:,} {EXACT_COPIES}{counted}"


def _class_count_rows(d: dict[str, Any]) -> list[list[str]]:
    """Class, and its images in train / val / test, where the record holds the counts (runs since
    they were recorded)."""
    counts = d.get("class_counts")
    if not counts:
        return []
    by_split = [counts[split] for split in ("train", "val", "test")]
    return [[plain(name), *(f"{c[i]:,}" for c in by_split)] for i, name in enumerate(d["classes"])]


def _exact_pct(fraction: float) -> str:
    """`pct`, with the exact fraction beside it where the percentage rounds it (1e-05: 0.00%)."""
    shown = pct(fraction)
    exactly = Decimal(shown.rstrip("%")).scaleb(-2) == Decimal(repr(fraction))  # in decimal: 0.007 is 0.70%
    return shown if exactly else f"{shown} (exactly {exact(fraction)})"


def _file_rows(d: dict[str, Any]) -> list[list[str]]:
    """Per file read: its MD5 check against the official list and its sha256 as found (records
    before `data.file_sha256`: not recorded)."""
    sha256 = d.get("file_sha256")
    return [[name, code(status) if status == "ok" else f"**{status}**",
             "not recorded" if sha256 is None else code(sha256[name]) if name in sha256 else "-"]
            for name, status in sorted(d["files"].items())]  # fmt: skip


def _download_text(d: dict[str, Any], asked: bool) -> str:
    """`data.download`, and whether the process that wrote the record downloaded the files."""
    if d["official"] is None:
        return "n/a (generated in memory)"
    if not asked:
        return "off: the files were read where they were"
    fetched = d.get("downloaded")
    if fetched is None:  # a record from before it was recorded
        return "on (whether the files were downloaded is not recorded)"
    if fetched:
        return ("on: the process that wrote this record fetched CIFAR-10 with torchvision (it downloads the archive, "
                "or takes one with the right MD5 already in data.root) and extracted it before reading the files")
    return (f"on: a {Path(d['root']).name} folder was already there when the process that wrote this record read "
            "the data, so it fetched nothing")


def test_scored(audit: Mapping[str, Any]) -> bool:
    """Whether the run scored its test images (a diverged run, with no checkpoint, evaluated none)."""
    meas = audit.get("measurements")
    return isinstance(meas, Mapping) and isinstance(meas.get("test"), Mapping)


# What the test images the data section speaks of are, where no test evaluation ran to score them.
UNSCORED = "none was scored: no test evaluation ran"


def _scored_fingerprint(d: dict[str, Any], scored: bool = True) -> str:
    """The fingerprint of the test images scored (or, where none was, those a test evaluation would
    score): the whole test set's where all were."""
    fingerprint = d.get("scored_test_fingerprint")
    if not fingerprint:
        return "not recorded"
    if fingerprint == d.get("test_fingerprint"):
        return "the test set's (all its images were scored)" if scored else f"the test set's (all its images; {UNSCORED})"
    return code(fingerprint) if scored else f"{code(fingerprint)} ({UNSCORED})"


def _copies(n: int) -> str:
    return f"{n:,} {'is a copy' if n == 1 else 'are copies'}"


def _test_copies(d: dict[str, Any], scored: bool = True) -> dict[str, str | None]:
    """The scored test images found, pixel for pixel, among the images trained on or selected on
    (`copies_text`), and a warning when there are any (`copies_warning`); where none was scored
    (`scored`), the test images a test evaluation would have scored."""
    train, val = d.get("test_in_train"), d.get("test_in_val")
    if train is None and val is None:  # records written before the check
        return {"copies_text": "not checked (recorded before this check)", "copies_warning": None}
    n = d["sizes"]["test"]
    counts = " / ".join("not checked" if c is None else f"{c:,}" for c in (train, val))  # one of them: an edited record
    said = [f"{_copies(train)} of images in the training split, so the test accuracy counts images the model "
            "trained on" if train else "", f"{_copies(val)} of images in the validation split, on which the "
            "checkpoint was selected" if val else ""]  # fmt: skip
    images = "scored test images" if scored else f"test images ({UNSCORED})"
    warning = ("**Test images seen before:** " + f"of the {n:,} {images}, "
               + "; ".join(s for s in said if s) + " (pixel for pixel).") if train or val else None  # fmt: skip
    return {"copies_text": f"{counts} of {n:,} {EXACT_COPIES}" + ("" if scored else f"; {UNSCORED}"),
            "copies_warning": warning}


def _flags_in_force(audit: dict[str, Any]) -> tuple[bool, str]:
    det = audit["determinism"]
    cuda = str(audit["environment"]["device"]).startswith("cuda")
    ok = det["cudnn_deterministic"] and not det["cudnn_benchmark"] and det["deterministic_algorithms"]
    if cuda:  # a config torch accepts, set before CUDA was up
        ok = ok and det["cublas_workspace_config"] in CUBLAS_DETERMINISTIC and not det["cuda_initialized_before"]
    evidence = (
        f"cudnn.deterministic={det['cudnn_deterministic']}, cudnn.benchmark={det['cudnn_benchmark']}, "
        f"use_deterministic_algorithms={det['deterministic_algorithms']}, "
        + (f"CUBLAS_WORKSPACE_CONFIG={cublas} (read back; set only where it was unset)"
           if (cublas := det["cublas_workspace_config"]) is not None
           else "CUBLAS_WORKSPACE_CONFIG unset (the run sets it only with determinism on)")
    )
    if cuda and det["cuda_initialized_before"]:
        evidence += "; CUDA was initialised before that config was set, so it may not apply"
    elif cuda and det["cublas_workspace_config"] not in CUBLAS_DETERMINISTIC:
        evidence += f"; deterministic cuBLAS needs {' or '.join(CUBLAS_DETERMINISTIC)}"
    return bool(ok), evidence


def _resolved_caution(problem: ResolvedProblem | None) -> str | None:
    """The Reproduce section's caution where the spec.resolved.yaml its first command trains is
    missing or holds another spec than the record (`problem`), or None."""
    if problem is None:
        return None
    named = f"`{RESOLVED_YAML}` beside it" if problem.beside else f"{code(problem.path)}, where the run wrote it,"
    return (f"When this sheet was rendered, {named} {problem.text}: {retrain_words(problem, 'the first command below')} "
            f"{RESOLVED_EFFECT[problem.kind]}. This run's resolved spec is `spec` in `audit.json`, which this sheet and "
            "`auditor check` go by.")  # fmt: skip


def _best_text(tr: dict[str, Any], meas: dict[str, Any], none_selected: str | None) -> str:
    """The selection metric at the selected epoch, unless none was selected or it means nothing:
    the model is broken, or (records of versions that selected such an epoch) its loss there was
    not a number."""
    split, epoch = tr["selection_split"], tr["best_epoch"]
    if tr["best_metric"] is None:
        return f"none: {none_selected}" if none_selected else "none (no completed epoch)"
    where = f"epoch {epoch}, selected on the **{split}** split"
    if meas.get("nonfinite"):
        return f"not reported ({where}): {_broken_reason(meas)}"
    best = selected_epoch(tr)
    if best is not None and best["val_loss"] is None:
        return (f"not reported ({where}): its {split} loss there is not a number (the model computed inf or NaN; "
                f"its accuracy as measured, {pct(tr['best_metric'])}, means nothing)")  # fmt: skip
    return f"{pct(tr['best_metric'])} at epoch {epoch}, selected on the **{split}** split{_tie_text(tr)}"


def _test_short(audit: dict[str, Any], test: dict[str, Any] | None, broken: Any) -> str:
    """The test accuracy for the summary line, with why it is optimistic where it is: test images
    seen in training or selection, or the checkpoint selected on the test set itself."""
    if test is None:
        return "not measured"
    if broken:
        return "not reported (broken model)"
    if not_a_number(test["loss"]):
        return "not reported (its test loss is not a number)"
    why = [w for w, found in (
        ("some test images were seen before; see Data", audit["data"].get("test_in_train") or audit["data"].get("test_in_val")),
        ("the checkpoint was selected on the test set", chose_on_test(audit["training"])),
    ) if found]  # fmt: skip
    return pct(test["acc"]) + (f" (optimistic: {'; '.join(why)})" if why else "")


def _determinism(audit: dict[str, Any]) -> dict[str, Any]:
    det = audit["determinism"]
    ok, _ = _flags_in_force(audit)
    if not det["requested"]:
        note = (
            "Determinism was switched off in the spec (`determinism.enabled: false`): "
            "non-deterministic settings (cudnn.benchmark's timed choice of kernels on CUDA, no "
            "refusal of non-deterministic ops) are in force."
        )
    elif not ok:
        note = (
            "**Determinism was requested but the flags read back are not all deterministic** "
            "(see the table)."
        )
    else:
        note = "Determinism was requested and every flag read back is in its deterministic setting."
    # Records written before the flag was recorded lack it: say so rather than refuse to render.
    fill = yesno(det.get("fill_uninitialized_memory"), unknown="not recorded")
    if det.get("fill_uninitialized_memory") and det.get("deterministic_algorithms") is False:
        fill += " (no effect: torch fills memory only while deterministic algorithms are on)"
    inductor = yesno(det.get("inductor_deterministic"), unknown="not recorded")
    device = str(audit["environment"]["device"])
    tf32 = {k: _tf32_cell(det.get(k), device) for k in ("cudnn_allow_tf32", "cuda_matmul_allow_tf32")}
    bf16 = yesno(audit["environment"].get("cpu_bf16_native"), unknown="not recorded")
    return {
        "determinism_note": note, "fill_uninitialized_memory": fill, "inductor_deterministic": inductor,
        "tf32": tf32, "cpu_bf16": bf16, "git_text": git_changes_text(audit["environment"]),
        "trained_threads_note": trained_threads_note(audit),
        **_code_and_kernels(audit["environment"]),
        "seeding_text": _seeding_text(det), "torch_seed": na(det.get("torch_initial_seed")),
    }  # fmt: skip


def trained_threads_note(audit: dict[str, Any]) -> str:
    """Where this process trained nothing (a finished run resumed) and the weights were trained at
    another CPU thread count: that count, which their bits depend on; else ''."""
    trained, det = audit["training"].get("trained_on"), audit["determinism"]  # older records: none
    threads = trained.get("torch_threads") if isinstance(trained, dict) else None
    if threads is None or threads == det["torch_threads"]:
        return ""
    return (f" (this process's, which trained nothing: the weights were trained at "
            f"{count(threads, 'torch thread')}, on {trained.get('processor')})")  # fmt: skip


def _code_and_kernels(env: dict[str, Any]) -> dict[str, str]:
    """The auditor source digest, torch's CPU kernel set and the numeric environment variables
    (records written before they were captured: not recorded)."""
    source = env.get("auditor_source")
    numeric = env.get("numeric_env")
    return {
        "source_text": f"source sha256 {code(source[:12])}, of its modules and templates" if source else "source not recorded",
        "cpu_capability": env.get("cpu_capability") or "not recorded",
        "numeric_env_text": ("not recorded" if numeric is None else
                             ", ".join(code(f"{k}={v}") for k, v in numeric.items()) or "none set"),
    }  # fmt: skip


def cpus_text(affinity: int, quota: float | None) -> str:
    """'2 (CPU affinity); no cgroup CPU quota', or the quota in CPUs."""
    limit = "no cgroup CPU quota" if quota is None else f"cgroup CPU quota of {quota:g} CPUs"
    return f"{affinity} (CPU affinity); {limit}"


def _cpus(audit: dict[str, Any]) -> dict[str, Any]:
    """The CPUs the run could use (affinity, cgroup quota) and notes on their share-out; records
    written before these were captured say so."""
    env = audit["environment"]
    text = cpus_text(env["cpu_affinity"], env.get("cpu_quota")) if "cpu_affinity" in env else "not recorded"
    return {"cpus_text": text, "ram_text": _ram_text(env), "environment_notes": audit["run"].get("environment_notes") or []}


def _ram_text(env: dict[str, Any]) -> str:
    """The machine's RAM, and the cgroup memory limit where the record says (runs since it was recorded)."""
    ram = f"{num(env['ram_gb'])} GiB"
    if "memory_limit_bytes" not in env:
        return ram
    limit = env["memory_limit_bytes"]
    if limit is None:
        return f"{ram}; no cgroup memory limit found"
    size = f"{num(round(limit / 2**30, 1))} GiB" if limit >= 2**30 else f"{num(round(limit / 2**20, 1))} MiB"
    return (f"{ram}; the memory limit of this process's cgroup (all its processes and their page cache together): "
            f"{size} ({limit:,} bytes), past which the kernel reclaims cache, then its OOM killer ends a process")


def host_memory_text(audit: dict[str, Any]) -> str:
    """`train.host_memory` as requested, set and read back (older records: not recorded), and
    whether the run was resumed under another setting."""
    text = _host_memory_setting(audit["training"].get("host_memory"))
    if not any("train.host_memory" in note for note in audit["run"].get("resume_notes") or []):
        return text
    if audit["training"].get("trained_here") is False:  # a finished run judged again: it trained no step
        return text + ("; this process's setting, under which no step was trained: the steps ran under earlier "
                       "processes' settings (the resume notes name the last of them), and so was the training "
                       "throughput measured")  # fmt: skip
    return text + ("; this process's setting: the steps before the resume ran under the one the resume notes name, "
                   "and the training throughput mixes both")  # fmt: skip


_LOGITS_DTYPE = MappingProxyType({"off": "float32", "bf16": "bfloat16", "fp16": "float16"})  # train.amp's
MISMATCH = "**not what the spec asks for**"
# Said beside a compile time: inductor's kernel cache outlives the run (a user test: 41.8 s, then 1.3 s).
COMPILE_CACHE_NOTE = ("inductor reuses kernels compiled by earlier runs from its cache, `TORCHINDUCTOR_CACHE_DIR` or "
                      "by default `/tmp/torchinductor_<user>`, so a run after another of the same model and shapes "
                      "compiles in a fraction of a cold compile's time; `auditor verify` gives each run a cache of "
                      "its own")


def toggle_texts(audit: dict[str, Any]) -> dict[str, str]:
    """The amp, channels_last and compile rows: the spec's setting, and for the first two what the
    first training step computed in, read back from its tensors (`training.layout`)."""
    train, layout = audit["spec"]["train"], audit["training"].get("layout")
    if "layout" not in audit["training"]:
        amp = layout_cl = "not read back (the record predates it)"
    elif layout is None:
        amp = layout_cl = ("not read back (the checkpoint this run resumed from predates the read-back, and no "
                           "step was trained after it)")  # fmt: skip
    else:
        amp, layout_cl = _amp_readback(train["amp"], layout), _channels_last_readback(train["channels_last"], layout)
    compile_ = train["compile"]
    if compile_ != "off":
        compile_ += ("; applied to the training step, with the switches that would run it eager "
                     "(`TORCHDYNAMO_DISABLE`, `TORCH_COMPILE_DISABLE`) checked unset; whether its graphs ran is not read back")  # fmt: skip
    return {"amp_text": f"{train['amp']}; {amp}", "channels_last_text": f"{yesno(train['channels_last'])}; {layout_cl}",
            "compile_text": compile_}  # fmt: skip


def _amp_readback(amp: str, layout: dict[str, Any]) -> str:
    found = f"read back: the first training step's logits were {layout['logits_dtype']}"
    return found if layout["logits_dtype"] == _LOGITS_DTYPE[amp] else f"{found}, {MISMATCH}"


def _channels_last_readback(asked: bool, layout: dict[str, Any]) -> str:
    inp, kernels = layout["input_channels_last"], layout["weights_channels_last"]
    found = (f"read back: the first training step's input batch was in {'channels_last' if inp else 'NCHW'} layout "
             f"and its conv kernels {'were all' if kernels else 'were not all'} in channels_last")  # fmt: skip
    return found if ((inp and kernels) if asked else not inp) else f"{found}, {MISMATCH}"


def _host_memory_setting(hm: dict[str, Any] | None) -> str:
    if not hm:
        return "not recorded"
    if hm["large_blocks_from_heap"] is None:
        found = "not read back"
    else:
        source = ("the heap, not a fresh mmap (so a freed block can be reused without new page faults)"
                  if hm["large_blocks_from_heap"] else "a fresh mmap (unmapped on free)")
        size = f"{hm['probe_bytes'] / 2**20:g} MiB" if hm.get("probe_bytes") else "large"
        found = f"read back: a {size} block is served from {source}" + _host_memory_mismatch(hm)
    if hm["mmap_threshold"] is None and hm["trim_threshold"] is None:
        return f"{hm['requested']}: {hm['allocator']}, left as it was; {found}"
    sets = [f"{k} {thousands(hm[f]) + ' bytes' if hm[f] is not None else 'rejected'}"
            for k, f in (("M_MMAP_THRESHOLD", "mmap_threshold"), ("M_TRIM_THRESHOLD", "trim_threshold"))]
    return f"{hm['requested']}: {hm['allocator']} mallopt {', '.join(sets)}; {found}"


def _host_memory_mismatch(hm: dict[str, Any]) -> str:
    """', **not what the spec asks for**: ...' where the read-back contradicts the setting (a user
    test: `release` under MALLOC_MMAP_THRESHOLD_ served large blocks from the heap, unflagged)."""
    if hm["requested"] == "release" and hm["large_blocks_from_heap"]:
        return (f", {MISMATCH}: glibc's defaults would map such a block afresh, so something set its thresholds "
                "before the run (an environment variable such as `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES`, which "
                "the Reproduce commands do not carry)")  # fmt: skip
    if hm["requested"] == "retain" and hm["mmap_threshold"] is not None and not hm["large_blocks_from_heap"]:
        return f", {MISMATCH}: the raised mmap threshold did not take"
    return ""


def _tie_text(tr: dict[str, Any]) -> str:
    """' (epochs 1, 2 tie at it: the earliest is kept)' where the selected accuracy was reached
    by more than one epoch (train._update_best keeps the first), else ''."""
    tied = [h["epoch"] for h in tr["history"]
            if h["val_acc"] is not None and h["val_acc"] == tr["best_metric"] and not not_a_number(h["val_loss"])]
    return f" (epochs {listing(tied)} tie at it: the earliest is kept)" if len(tied) > 1 else ""


def steps_per_epoch_text(steps: int | None, n_train: int, batch_size: int) -> str:
    """'4 (the last on 116 images)': steps per epoch, and a short last batch where there is one
    (it is kept: every training image is seen each epoch)."""
    if not steps:
        return NA
    last = n_train - (steps - 1) * batch_size
    return f"{steps:,}" if last == batch_size else f"{steps:,} (the last on {count(last, 'image')}, not {batch_size:,})"


def milestones_text(milestones: list[float], spe: int | None = None, warmup: float = 0.0) -> str:
    """'once 1 epoch has elapsed (from epoch 2 on, ...)': milestones count elapsed epochs
    (train.lr_factor: from the first step s with s / spe >= m), which the tables number from 1;
    a milestone within the warm-up waits for its end. `spe`: steps per epoch (older records:
    none, and a fractional milestone is said to fall part-way through its epoch)."""
    if not milestones:
        return "at no milestone (none given)"
    where = [_milestone_epoch(m, spe, warmup) for m in milestones]
    has = "has" if len(milestones) == 1 and milestones[0] == 1 else "have"
    return (f"once {listing(milestones)} {plural(milestones[0] if len(milestones) == 1 else 2, 'epoch')} {has} "
            f"elapsed ({'; '.join(where)}, as the tables number epochs from 1)")


def _milestone_epoch(m: float, spe: int | None, warmup: float) -> str:
    """Where in the tables' epochs milestone `m` lowers the lr."""
    if m < warmup:
        return "when the warm-up ends"
    if not spe:
        return f"from epoch {int(m) + 1} on" if float(m).is_integer() else f"part-way through epoch {math.floor(m) + 1}"
    step = math.ceil(m * spe)
    step -= 1 if step > 0 and (step - 1) / spe >= m else 0  # float rounding of m * spe
    epoch, within = divmod(step, spe)
    return f"from epoch {epoch + 1} on" if within == 0 else f"part-way through epoch {epoch + 1} (its step {within + 1})"


def _seeding_text(det: dict[str, Any]) -> str:
    """Which generators the run seeded, as the record names them (older records: not recorded)."""
    seeded = det.get("seeded")
    if not seeded:
        return f"Seed {det['seed']}; which generators were seeded is not recorded in this record."
    seed = det["seed"]
    numpy = (f" (NumPy's global generator takes a 32-bit seed: {seed} mod 2^32 = {seed % 2**32})"
             if isinstance(seed, int) and not 0 <= seed < 2**32 and any("NumPy" in g for g in seeded) else "")  # fmt: skip
    return f"{listing(seeded)} were seeded with {seed}{numpy}."


def _tf32_cell(flag: bool | None, device: str) -> str:
    """A TF32 flag as read back; on a CPU run it was in force but changed nothing."""
    if flag is None:
        return "not recorded"
    return yesno(flag) if device.startswith("cuda") else f"n/a on {device} (flag: {yesno(flag)})"


def _epoch_rows(
    history: list[dict[str, Any]], best_epoch: int | None, steps_per_epoch: int | None
) -> tuple[list[list[str]], int]:
    def row(h: dict[str, Any]) -> list[str]:
        ep = f"**{h['epoch']}** (best)" if h["epoch"] == best_epoch else str(h["epoch"])
        steps = h.get("steps")  # older records do not say
        if steps is not None and steps_per_epoch and steps < steps_per_epoch:  # cut short by max_steps
            ep += f" ({steps:,} of {steps_per_epoch:,} steps)"
        return [
            ep, f"{h['lr']:.4g}", loss_cell(h["train_loss"]), pct(h["train_acc"]), loss_cell(h["val_loss"]),
            pct(h["val_acc"]), f"{h['epoch_s']:,.1f}", f"{h['images_per_s']:,.1f}",
        ]  # fmt: skip

    if len(history) <= MAX_EPOCH_ROWS:
        return [row(h) for h in history], 0
    omitted = len(history) - 2 * EPOCH_EDGE
    gap = ["…", f"({omitted} epochs omitted; all rows in metrics.csv)", "", "", "", "", "", ""]
    return [row(h) for h in history[:EPOCH_EDGE]] + [gap] + [row(h) for h in history[-EPOCH_EDGE:]], omitted


def _smoothing_note(audit: dict[str, Any]) -> str:
    """' (label smoothing 0.1)' after a training loss computed with it, else ''."""
    smoothing = audit["spec"]["train"].get("label_smoothing") or 0
    return f" (label smoothing {num(smoothing)})" if smoothing else ""


def train_loss_label(audit: dict[str, Any]) -> str:
    """'Train loss', naming label smoothing when on: it raises the training loss's floor, and the
    held-out loss is plain cross-entropy, so the two are not on one scale then."""
    return "Train loss" + _smoothing_note(audit)


def _selection_warning(audit: dict[str, Any]) -> str | None:
    tr = audit["training"]
    if tr["selection_split"] != "test":
        return None
    split = f"split (`data.val_split: {audit['spec']['data']['val_split']}`)"
    if not chose_on_test(tr):
        scored = "only one epoch was scored on it" if tr["epochs_run"] else "no epoch was scored on it"
        unbiased = ": the test accuracy below is not biased by selection" if tr["epochs_run"] else ""
        if tr["epochs_run"] and tr["best_epoch"] is None:
            scored, unbiased = "no epoch could be selected (each one's test loss was not a number)", ""
        return (
            f"**The test set was the selection split**, because this spec has no validation {split}, but "
            f"{scored}, so no checkpoint was chosen by its test score{unbiased}."
        )
    return (
        "**The best checkpoint was selected on the TEST set**, because this spec has no validation "
        f"{split}. The test accuracy reported below is therefore optimistically biased: it is the best of "
        f"{tr['epochs_run']} epochs as scored on the test set itself, not a held-out estimate."
    )


def _per_class(test: dict[str, Any] | None) -> dict[str, Any]:
    """Per-class accuracy rows and the confusion matrix (rows: true class) of the test record."""
    if test is None:
        return {"per_class_rows": [], "confusion_headers": [], "confusion_rows": [], "confusion_align": "l"}
    classes = list(test["per_class"])
    per_class = [
        [plain(c), pct(test["per_class"][c]), f"{test['confusion'][i][i]:,}", f"{sum(test['confusion'][i]):,}"]
        for i, c in enumerate(classes)
    ]
    confusion = [[plain(c), *[f"{n:,}" for n in test["confusion"][i]]] for i, c in enumerate(classes)]
    headers = ["true \\ predicted", *map(plain, classes)]
    return {
        "per_class_rows": per_class, "confusion_headers": headers, "confusion_rows": confusion,
        "confusion_align": "l" + "r" * len(classes),
    }  # fmt: skip


def _steps_trained(tr: dict[str, Any]) -> int | None:
    """The training steps the history records, or None where the record does not say (older records)."""
    steps = [h.get("steps") for h in tr["history"]]
    return None if not tr.get("steps_per_epoch") or None in steps else sum(steps)


def _steps_short_of(tr: dict[str, Any], epochs: float) -> int | None:
    """The steps trained, when fewer than `epochs` whole epochs; None when as many or more, or not recorded."""
    steps = _steps_trained(tr)
    return None if steps is None or steps >= epochs * tr["steps_per_epoch"] else steps


def _within_warmup(tr: dict[str, Any], schedule: dict[str, Any]) -> str:
    """A note when the run stopped before its warm-up ended: it never reached the schedule after it."""
    if not schedule["warmup_epochs"] or _steps_short_of(tr, schedule["warmup_epochs"]) is None:
        return ""
    part = _part_epochs(tr)
    run = count(tr["epochs_run"], "epoch") if part is None else f"{part[0]} epochs ({count(part[1], 'step')})"
    return (f"; this run stopped within the warm-up, after {run}: its lr only rose, "
            "and what follows the warm-up never took effect")  # fmt: skip


def _max_steps_text(train: dict[str, Any], steps_per_epoch: int | None) -> str:
    """The step budget, said to have had no effect where the epochs end before it (a user test: a
    budget of 1,000 steps was shown for a run of 1 step, as if it applied)."""
    cap = train["max_steps"]
    if cap is None:
        return "none"
    if steps_per_epoch and cap >= (planned := train["epochs"] * steps_per_epoch):
        return f"{cap:,} steps (no effect: the {count(train['epochs'], 'epoch')} take {count(planned, 'step')})"
    return f"{cap:,} steps"


def _ckpt_every_text(train: dict[str, Any], steps_per_epoch: int | None) -> str:
    """When checkpoints are written, with where a stop by the budget writes them, and where step
    checkpoints have no effect (`_no_mid_epoch_checkpoint`)."""
    every = train["checkpoint_every_steps"]
    text = "end of each epoch only" if every is None else f"{every_n(every, 'step')} and at the end of each epoch"
    notes = [] if every is None else [_no_mid_epoch_checkpoint(every, train, steps_per_epoch)]
    if _budget_mid_epoch(train, steps_per_epoch):
        notes.append("a stop by `max_steps` mid-epoch ends that epoch there: it is evaluated and its checkpoints "
                     "written at that step")  # fmt: skip
    return text + (f" ({'; '.join(n for n in notes if n)})" if any(notes) else "")


def _no_mid_epoch_checkpoint(every: int, train: dict[str, Any], steps_per_epoch: int | None) -> str:
    """'no effect: ...' where no step checkpoint falls inside an epoch (a user test): the cadence is a
    multiple of the epoch's steps, or no shorter than the steps the run plans (its epochs, or its
    budget); '' otherwise, or where the steps per epoch are not recorded."""
    if not steps_per_epoch:
        return ""
    total = min(train["epochs"] * steps_per_epoch, train["max_steps"] or math.inf)
    if every >= total:
        return f"no effect: the run plans {count(total, 'step')}"
    if every % steps_per_epoch == 0:
        return f"no effect: a multiple of the {count(steps_per_epoch, 'step')} of an epoch, so every one falls at an epoch's end"
    return ""


def _budget_mid_epoch(train: dict[str, Any], steps_per_epoch: int | None) -> bool:
    """Whether `train.max_steps` ends training inside an epoch (unknown steps per epoch: assumed so)."""
    cap = train["max_steps"]
    if cap is None:
        return False
    if not steps_per_epoch:
        return True
    return cap < train["epochs"] * steps_per_epoch and cap % steps_per_epoch != 0


def _cut_short(tr: dict[str, Any], schedule: dict[str, Any]) -> str:
    """A note when a decaying schedule was stopped before its planned end (a step budget, early
    stopping, a divergence): the lr never went as low as the schedule row says."""
    if schedule["name"] == "constant" or not tr["history"]:
        return ""
    if schedule["name"] == "multistep" and tr["epochs_run"] >= max(schedule["milestones"], default=0):
        return ""  # every decay took effect: what was cut short ran at the last lr anyway
    steps = _steps_trained(tr)
    short = tr["epochs_run"] < tr["epochs_planned"] if steps is None else (
        steps < tr["epochs_planned"] * tr["steps_per_epoch"])  # fmt: skip
    if not short:
        return ""
    return (f"; this run stopped after {epochs_run_text(tr)} of {count(tr['epochs_planned'], 'planned epoch')}, "
            f"before the schedule's end: its lr at the last epoch end recorded was {tr['history'][-1]['lr']:.4g}")


def _part_epochs(tr: dict[str, Any]) -> tuple[str, int] | None:
    """('0.71', 20): the epochs (2 decimals) and steps trained where a step budget stopped the
    last epoch part-way; None where every epoch run was whole."""
    steps = _steps_short_of(tr, tr["epochs_run"])
    return None if steps is None else (f"{steps / tr['steps_per_epoch']:.2f}", steps)


def epochs_run_text(tr: dict[str, Any]) -> str:
    """'3', or '0.71 (20 steps)' where a step budget stopped the last epoch part-way."""
    part = _part_epochs(tr)
    return str(tr["epochs_run"]) if part is None else f"{part[0]} ({count(part[1], 'step')})"


def _stop_text(audit: dict[str, Any]) -> str | None:
    tr, status = audit["training"], audit["run"]["status"]
    short = _steps_short_of(tr, tr["epochs_planned"]) is not None  # inside the last planned epoch too
    if status == "completed" and (tr["epochs_run"] < tr["epochs_planned"] or short):
        return f"stopped by the step budget (`train.max_steps: {audit['spec']['train']['max_steps']}`)"
    if status == "early_stopped":
        return "stopped early: no improvement of the selection accuracy within the patience"
    return None


def measured_model(meas: dict[str, Any]) -> str:
    """The model the measure stage measured: the selected checkpoint, or, where none was
    written (a run that diverged first), the weights as training left them."""
    return meas["evaluated_checkpoint"] or "the model as training left it (no checkpoint was selected)"


def _broken_warning(meas: dict[str, Any], broken: list[str]) -> str:
    """What a model holding inf/NaN makes of the figures measured on it."""
    which = _tensor_list(broken)
    figures = ("so the test figures below (accuracy, loss, per-class, confusion) describe no working model"
               if meas["test"] is not None else "and no test figures were measured")  # fmt: skip
    return f"**Broken model:** {measured_model(meas)} holds inf or NaN in {which}: its outputs are not numbers, {figures}."


def _tensor_list(names: list[str], most: int = 5) -> str:
    """'2 tensors (`a`, `b`)': how many, and the first `most` of them by name."""
    return f"{count(len(names), 'tensor')} ({code_list(names[:most])}{', ...' if len(names) > most else ''})"


def _final_warning(meas: dict[str, Any]) -> str | None:
    """The model as training left it holds inf/NaN while the selected one (measured) does not."""
    if not (final := meas.get("final_nonfinite")):  # records written before the check have none
        return None
    which = _tensor_list(final)
    return (f"**Broken final weights:** last.pt (the weights the last epoch was evaluated on) holds inf or NaN in {which}: training "
            "overflowed after the selected epoch. The selected checkpoint is finite, and it is the one measured here; "
            "last.pt is not a model to use.")  # fmt: skip


def _broken_reason(meas: dict[str, Any]) -> str:
    """Why an accuracy measured on the broken selected model is not reported."""
    bad = meas["nonfinite"]
    return (f"{meas['evaluated_checkpoint'] or 'the model'} holds inf or NaN in {count(len(bad), 'tensor')} "
            f"(e.g. {code(bad[0])}): the model is broken, and its accuracy means nothing")  # fmt: skip


def _final_selection_text(final: dict[str, Any] | None, split: str, meas: dict[str, Any]) -> str:
    """The last epoch's accuracy on the selection split, unless its loss there is not a number
    (null in audit.json) or last.pt, which it was measured on, holds inf or NaN: predictions made
    from inf or NaN, whose count of hits means nothing."""
    if final is None or final["val_acc"] is None:
        return NA
    if final["val_loss"] is None:
        return (f"not reported: the {split} loss at epoch {final['epoch']} is not a number (the model computed inf "
                f"or NaN; its accuracy as measured, {pct(final['val_acc'])}, means nothing)")  # fmt: skip
    if bad := meas.get("final_nonfinite"):
        return (f"not reported: last.pt, which it was measured on, holds inf or NaN in {count(len(bad), 'tensor')} (e.g. "
                f"{code(bad[0])}; its accuracy as measured, {pct(final['val_acc'])}, means nothing)")  # fmt: skip
    return pct(final["val_acc"])


def nonfinite_losses(audit: dict[str, Any]) -> list[str]:
    """The losses measured on the selected model that are not numbers (audit.json holds them as
    null): its test loss, and its selection-split loss at the epoch it was selected."""
    tr, test = audit["training"], audit["measurements"]["test"]
    best = selected_epoch(tr)
    found = ["its test loss"] if test is not None and test["loss"] is None else []
    if best is not None and best["val_loss"] is None:
        found.append(f"its {tr['selection_split']} loss at epoch {best['epoch']}, when it was selected")
    return found


def _outputs_warning(audit: dict[str, Any]) -> str | None:
    """A selected model with finite weights whose losses are inf or NaN: it outputs inf or NaN
    on some images, whose predictions the accuracies then count as an argmax of non-numbers."""
    if not (found := nonfinite_losses(audit)):
        return None
    return (f"**Non-finite outputs:** the selected model's losses are not numbers ({'; '.join(found)}): it computes "
            "inf or NaN on some images, and an accuracy counted from such predictions (argmaxes of non-numbers) "
            "means nothing, so none is reported where its loss is not a number.")


def training_cpu(tr: dict[str, Any]) -> dict[str, str | None]:
    """Other processes' share of the CPU while this process trained (records before it was
    measured: not recorded), and a warning when it was busy."""
    if "other_cpu_window_s" not in tr:
        return {"training_cpu_text": "not recorded", "training_busy_warning": None}
    if tr.get("trained_here") is False:
        return {"training_cpu_text": "not measured: this process trained nothing (a resume after the training had "
                                     "ended: the training time and throughput are those of the processes that "
                                     "trained, whose share was not kept)", "training_busy_warning": None}
    text = other_cpu_text(tr, "training")
    # The meter runs in one process; the training time and throughput sum every process's epochs.
    resumed = tr.get("resumed_from")
    unmetered = (f"the training before the resume from `{resumed}`, in earlier processes, was not metered"
                 if isinstance(resumed, str) and resumed else None)  # fmt: skip
    if unmetered and tr.get("other_cpu_share") is not None:
        text += f", while the process that resumed the run trained; {unmetered}"
    warning = None
    if busy_cpu(tr.get("other_cpu_share"), tr.get("other_cpu_window_s")):
        warning = (f"**Busy machine during training:** other processes used {tr['other_cpu_share']:.0%} of the CPU "
                   + ("while the process that resumed the run trained (" + unmetered + ")" if unmetered
                      else "while this process trained")
                   + ", so its training time and throughput (and a criterion on them) are slower than this spec "
                   "alone would make them; the weights are not affected.")  # fmt: skip
    return {"training_cpu_text": text, "training_busy_warning": warning}


def _results(audit: dict[str, Any]) -> dict[str, Any]:
    tr, meas, run = audit["training"], audit["measurements"], audit["run"]
    split, test = tr["selection_split"], meas["test"]
    rows, omitted = _epoch_rows(tr["history"], tr["best_epoch"], tr.get("steps_per_epoch"))
    final = tr["history"][-1] if tr["history"] else None
    headers = [
        "Epoch", "lr (last step)", train_loss_label(audit), "Train acc", f"{split} loss", f"{split} acc",
        "Time (s)", "Images/s",
    ]  # fmt: skip
    broken = meas.get("nonfinite")  # records written before the check have none
    none_selected = record_no_selection(tr)
    return {
        "broken_warning": _broken_warning(meas, broken) if broken else _outputs_warning(audit) or _final_warning(meas),
        "epoch_rows": rows, "epoch_headers": headers, "epochs_omitted": omitted,
        "selection_warning": _selection_warning(audit), **_per_class(test),
        "test_text": _test_text(audit, none_selected), "stop_text": _stop_text(audit),
        "epochs_run_text": epochs_run_text(tr),
        "planned_text": count(tr["epochs_planned"], "planned epoch"),
        "test_loss": loss_cell(test["loss"]) if test else NA,
        "test_short": _test_short(audit, test, broken),
        "best_text": _best_text(tr, meas, none_selected),
        "final_selection_text": _final_selection_text(final, split, meas) if not (
            broken and final and final["epoch"] == tr["best_epoch"]) else f"not reported: {_broken_reason(meas)}",
        "final_train_loss": (loss_cell(final["train_loss"]) + _smoothing_note(audit)) if final else NA,
        "toggle_notes": run.get("toggle_notes") or [],  # older records have none
        **training_cpu(tr),
        "throughput_text": throughput_text(tr),
        "train_time_scope": _train_time_scope(audit),
    }  # fmt: skip


def _test_text(audit: dict[str, Any], none_selected: str | None) -> str:
    """The test accuracy with its image count and checkpoint, or why it is not measured or not reported."""
    meas = audit["measurements"]
    test, broken = meas["test"], meas.get("nonfinite")  # records written before the check have no `nonfinite`
    if test is None:
        return "not measured: " + (none_selected or f"no best checkpoint (run {audit['run']['status']})")
    if broken:
        return f"not reported: {audit['metric_notes'].get('test_acc', 'the model is broken')}"
    if not_a_number(test["loss"]):
        return f"not reported: {nan_test_loss_note(meas['evaluated_checkpoint'], test['acc'])}"
    precision = f"; {test['precision']}" if test.get("precision") else ""  # older records do not say
    return f"{pct(test['acc'])} on {count(test['n'], 'image')} (checkpoint {meas['evaluated_checkpoint']}{precision})"


def _train_time_scope(audit: dict[str, Any]) -> str:
    """What the recorded train time covers and leaves out."""
    train, split = audit["spec"]["train"], audit["training"]["selection_split"]
    diverged = ", the steps of the epoch that diverged included" if audit["training"]["status"] == "diverged" else ""
    every = train.get("checkpoint_every_steps")
    mid = (f"; includes taking the mid-epoch checkpoints (every {every} steps), which happens between steps"
           if every else "")  # fmt: skip
    compiled = ("; includes torch.compile's compilation, in the first steps (the throughput does too)"
                if train.get("compile", "off") != "off" else "")  # fmt: skip
    return (f"the training steps' wall time, summed over the epochs{diverged}; excludes the per-epoch {split} "
            "evaluation, taking the end-of-epoch checkpoints (written to disk in the background, during the steps "
            f"that follow) and the measure stage{mid}{compiled}")


def throughput_text(tr: dict[str, Any]) -> str:
    """The training throughput and, where compiling took part of the training time, the rate of
    the steps without it (the images trained over the time less `compile_s`)."""
    text, r, t, c = rate(tr["images_per_s"]), tr["images_per_s"], tr["train_time_s"], tr.get("compile_s")
    settings = tr.get("trained_at")  # a user test: a resume at another thread count blended two rates unsaid
    if isinstance(settings, list) and len(settings) > 1:
        text += f" (over the {len(settings)} settings it trained at through its resumes, listed under Reproduce)"
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in (r, t, c))
    if not numbers or not 0 < c < t:
        return text
    return f"{text}; {rate(r * t / (t - c))} without the {seconds(c)} of compiling"


def _measurements(audit: dict[str, Any]) -> dict[str, Any]:
    meas = audit["measurements"]
    lat = meas["latency"]
    sync = str(lat["device"]).startswith("cuda")
    model_note = (
        f"the selected checkpoint ({meas['evaluated_checkpoint']})"
        if meas["evaluated_checkpoint"]
        else "the final in-memory weights (no best checkpoint was written)"
    )
    cuda_mem = meas["memory"]["cuda_max_allocated_mb"]
    ckpt_bytes = meas["size"]["checkpoint_bytes"]
    warnings = latency_warnings(lat, meas["evaluated_checkpoint"])
    return {
        "ckpt_file_text": bytes_mb(ckpt_bytes) if ckpt_bytes is not None else "n/a (no checkpoint evaluated)",
        "latency_dtype_text": latency_dtype_text(lat, audit["spec"]["train"].get("amp", "off")),
        "latency_model_note": model_note,
        **{f"latency_{kind}_note": warning_text(warnings.get(kind)) for kind in ("spread", "busy")},
        "other_cpu_text": other_cpu_text(lat),
        "latency_on_cuda": sync,
        "cuda_mem_text": mb(cuda_mem) if cuda_mem is not None else "n/a (not a CUDA run)",
        "cuda_reserved_text": cuda_reserved_text(meas["memory"], cuda_mem is not None),
        "rss_method": _rss_method(meas["memory"].get("peak_rss_source")),
    }


# How a record's peak RSS was read
_RSS_METHODS = MappingProxyType({
    "VmHWM": "this process's own high-water mark (Linux's `VmHWM`), read",
    "getrusage": "read by `getrusage` (on Linux, it may include the peak of the process that started this one)",
})  # fmt: skip


def _rss_method(source: str | None) -> str:
    """How the peak RSS was read, in words: records before `peak_rss_source` was kept read it by getrusage."""
    if source is None:
        return _RSS_METHODS["getrusage"]
    return _RSS_METHODS.get(source, f"read by a method this auditor does not know ({source!r})")


def latency_dtype_text(lat: dict[str, Any], amp: str) -> str:
    """The dtype the latency was timed in, and where training ran under autocast, that the timing
    did not (the test accuracy did: `measure.precision`)."""
    if amp == "off":
        return str(lat["dtype"])
    return f"{lat['dtype']} (not the {amp} autocast the model trained and was scored in: timed without autocast)"


def cuda_reserved_text(memory: dict[str, Any], cuda: bool) -> str:
    """Peak memory reserved by torch's CUDA allocator; records from before it was measured say so."""
    if not cuda:
        return "n/a (not a CUDA run)"
    reserved = memory.get("cuda_max_reserved_mb")
    return mb(reserved) if reserved is not None else "not recorded"


def warning_text(warning: tuple[str, str] | None) -> str | None:
    """'**Title:** text' for the sheet, or None."""
    return f"**{warning[0]}:** {warning[1]}" if warning else None


def _share_error_text(error: float) -> str:
    """An uncertainty in percent, to as many decimals as keep it from reading as zero."""
    for digits in (0, 1):
        if (text := f"{error:.{digits}%}") not in ("0%", "0.0%"):
            return text
    return "under 0.1%"


def other_cpu_text(lat: dict[str, Any], timed: str = "the iterations") -> str:
    """'12%, about ± 7% (over 0.29 s, ...)', or why there is no share: too short a window (`timed` took it),
    or not recorded."""
    share, window = lat.get("other_cpu_share"), lat.get("other_cpu_window_s")
    if share is not None:  # recorded with its window, always
        # "about": two ticks is the typical error; a bound would add a tick per CPU-time field summed
        error = _share_error_text(cpu_share_error(window))
        within = "within 0.1%" if error == "under 0.1%" else f"about ± {error}"  # not "about ± under 0.1%"
        return f"{share:.0%}, {within} (over {window:.2f} s, counted in 10 ms CPU-time ticks)"
    if window is not None and window < MIN_CPU_WINDOW_S:
        places = next((d for d in range(2, 16) if round(window, d) < MIN_CPU_WINDOW_S), 16)  # never "0.10 s, under 0.1 s"
        return (f"not recorded: {timed} took {window:.{places}f} s, under {MIN_CPU_WINDOW_S:g} s, where the "
                "kernel's 10 ms CPU-time ticks leave it more than 20% uncertain")  # fmt: skip
    return "not recorded"


def _checkpoints(audit: dict[str, Any]) -> dict[str, Any]:
    ck = audit["checkpoints"]
    rows = [
        [name, code(c["path"]), bytes_mb(c["bytes"]), code(c["sha256"]), str(c["epoch"]),
         f"{c['global_step']:,}"]
        for name, c in ck.items()
    ]
    content_rows = [[name, code_list(c["contents"])] for name, c in ck.items()]
    same = "last" in ck and "best" in ck and ck["last"]["sha256"] == ck["best"]["sha256"]
    steps = audit.get("step_checkpoints") or []  # older records: not recorded
    spe = audit["training"].get("steps_per_epoch")
    rows += [["step", code(c["path"]), bytes_mb(c["bytes"]),
              code(c["sha256"]) if c["sha256"] else f"**not intact**: {c.get('problem') or 'no digest recorded'}",
              _epochs_done(c["global_step"], spe), f"{c['global_step']:,}"] for c in steps]  # fmt: skip
    return {"ckpt_rows": rows, "ckpt_content_rows": content_rows, "ckpt_identical": same,
            "step_ckpt_note": _step_checkpoint_note(steps, ck.get("last"))}


def _step_checkpoint_note(steps: list[dict[str, Any]], last: dict[str, Any] | None) -> str:
    """What the `step` rows are, and what uses them: `--resume` continues from the newest intact
    checkpoint by global step (checkpoint.newest_intact), which is `last` unless the run diverged
    after a step checkpoint of an epoch that did not end; without `last` (no epoch ended with
    finite losses) it refuses the run (runner._nothing_to_resume)."""
    n = len(steps)
    if not n:
        return ""
    which = "`step` row is the mid-epoch checkpoint" if n == 1 else f"{n} `step` rows are the mid-epoch checkpoints"
    newer = [c for c in steps if last is not None and c["global_step"] > last["global_step"] and c["sha256"]]  # intact
    if last is None:
        use = "with no `last` checkpoint, `--resume` does not continue this run from them: it must be trained again"
    elif newer:
        newest = max(newer, key=lambda c: c["global_step"])
        use = (f"`--resume` of this run continues from the newest intact checkpoint by global step: "
               f"`{Path(newest['path']).name}` (step {newest['global_step']:,}, after `last`'s "
               f"{last['global_step']:,})")
    else:
        use = ("`--resume` of this finished run starts from `last`, and from the newest intact one of them only where "
               "`last` is damaged")
    return (f"The {which} (`train.checkpoint_every_steps`) left in the folder when the run ended (older ones are "
            f"removed as newer ones land). {use[0].upper()}{use[1:]}. The measure stage does not load them, and "
            "their contents (a `last` checkpoint's keys) are not listed.")


def _epochs_done(step: int, steps_per_epoch: int | None) -> str:
    """Whole epochs done at a global step, and the steps into the next: `2 (+5 steps)`."""
    if not steps_per_epoch:
        return "n/a"
    done, into = divmod(step, steps_per_epoch)
    return str(done) + (f" (+{count(into, 'step')})" if into else "")


def _reproduce(audit: dict[str, Any]) -> dict[str, Any]:
    run, ck = audit["run"], audit["checkpoints"]
    best = ck.get("best")
    command = _command_env(audit["environment"], audit["determinism"], audit["training"])
    sets_threads = command["retrain_prefix"] != command["env_prefix"] + command["threads_prefix"] or command["threads_prefix"]
    bits = audit["determinism"]["requested"]  # determinism off: the same bits are not promised
    return {
        **command,
        "retrain_bits_note": None if not sets_threads else (
            "the same bits on a CPU need the same torch thread count, as set here, and the same CPU kernels" if bits else
            "the thread count set here is the run's; determinism was off, so a retrain need not give the same bits"),
        "threads_effect": "gives the same bits" if bits else "trains at the run's setting",
        "resolved_spec": f"{run['report_dir']}/spec.resolved.yaml",
        # Run from the last process's working directory (`retrain_from`): relative paths in the spec (data.root) are relative to it.
        "resolved_spec_abs": str(Path(audit["environment"]["cwd"], run["out"], run["report_dir"], "spec.resolved.yaml")),
        "best_path": best["path"] if best else None,
        "evaluate_note": _evaluate_note(audit["data"]["dataset"], best is not None),
    }


def _first_threads(training: dict[str, Any]) -> str | None:
    """'2 torch threads': what the first training process of a CPU run ran at (the first setting its
    checkpoints record), whose recorded command holds no environment; None where not on a CPU or
    not recorded."""
    settings = training.get("trained_at") or []
    first = settings[0] if settings and isinstance(settings[0], dict) else None
    threads = first.get("torch_threads") if first and str(first.get("device", "")).startswith("cpu") else None
    return count(threads, "torch thread") if is_count(threads) and threads > 0 else None


def _command_env(env: dict[str, Any], det: dict[str, Any], training: dict[str, Any]) -> dict[str, str]:
    """The environment variables the Reproduce commands set: those set in the run that change
    numerics or threads, and a CUBLAS_WORKSPACE_CONFIG other than the one the run sets itself
    (`env_prefix`); on a CPU run that did not set OMP_NUM_THREADS, the thread count it ran at
    (`threads_prefix`), which another machine's default need not be; and for the retraining
    command (`retrain_prefix`), the thread count the weights were trained at, which a process
    that trained nothing (a finished run resumed) need not have run at, and the settings
    (`trained_at_text`) where training ran at more than one."""
    numeric = dict(env.get("numeric_env") or {})
    cublas = det.get("cublas_workspace_config")
    if env.get("numeric_env") is not None and cublas not in (None, CUBLAS_DETERMINISTIC[0]):  # the user's own
        numeric["CUBLAS_WORKSPACE_CONFIG"] = cublas
    cpu = str(env["device"]).startswith("cpu")
    threads_note = ""
    if cpu and "OMP_NUM_THREADS" in numeric and str(numeric["OMP_NUM_THREADS"]).strip() != str(env["torch_threads"]):
        # torch capped it (more threads than CPUs it may use) or ignored it (not a number): the
        # commands set the count it ran at, which another machine would otherwise not reproduce
        threads_note = (f"the run had OMP_NUM_THREADS={shq(numeric['OMP_NUM_THREADS'])}, but torch ran "
                        f"{count(env['torch_threads'], 'thread')}: these commands set that count")  # fmt: skip
        numeric["OMP_NUM_THREADS"] = str(env["torch_threads"])
    prefix = "".join(f"{k}={shq(v)} " for k, v in numeric.items())
    threads = f"OMP_NUM_THREADS={env['torch_threads']} " if cpu and "OMP_NUM_THREADS" not in numeric else ""
    trained = training.get("trained_on")  # older records: none
    trained_threads = trained.get("torch_threads") if isinstance(trained, dict) else None
    retrain = prefix + threads
    if trained_threads is not None and (trained_threads != env["torch_threads"] or not cpu):  # trained on a CPU
        numeric["OMP_NUM_THREADS"] = str(trained_threads)
        retrain = "".join(f"{k}={shq(v)} " for k, v in numeric.items())
    settings = training.get("trained_at") or []  # older records: none
    trained_at = ""
    if len(settings) > 1:
        last = "this one sets the last one's thread count" if "OMP_NUM_THREADS=" in retrain else "this one sets none"
        trained_at = f"{' then '.join(describe_setting(s) for s in settings)}; no single command reproduces its last bits: {last}"
    return {"env_prefix": prefix, "threads_prefix": threads, "retrain_prefix": retrain, "trained_at_text": trained_at,
            "threads_note": threads_note, "threads_ran": count(env["torch_threads"], "torch thread")}  # fmt: skip


def _evaluate_note(dataset: str, has_best: bool) -> str | None:
    """Why the sheet offers no `auditor evaluate` command (None: it offers one)."""
    if not has_best:
        return "no best checkpoint was written, so there is nothing to evaluate"
    if dataset != "cifar10":
        return (f"trained on {dataset} data: `auditor evaluate` reads CIFAR-10, "
                "whose accuracy says nothing about this model")  # fmt: skip
    return None


def _criteria(audit: dict[str, Any]) -> dict[str, Any]:
    details = judged_details(audit)  # the stored detail only where a result is judged otherwise, or cannot be
    batch = (audit["measurements"].get("latency") or {}).get("batch_size")
    # latency_ms is the median of the timed iterations (the Latency table gives p95 beside it), and
    # a batch-1 figure unless the spec set another batch, which the row must then say
    at_batch = f" (median, batch {batch})" if isinstance(batch, int) and batch != 1 else " (median)"
    rows = []
    for c in audit["criteria"]:
        rows.append([
            code(c["metric"]) + (at_batch if c["metric"] == "latency_ms" else ""), code(c["expr"]),
            shown_measured(c), "PASS" if c["passed"] else "**FAIL**", details.get(c["metric"], c["detail"]),
        ])  # fmt: skip
    return {"criteria_rows": rows}


_VERDICT_TEXT = {
    "bitwise": "every compared loss, metric, result and checkpoint entry is bit-for-bit identical between the runs",
    "tolerance": "the runs are not bit-identical, but every compared loss, metric, result and checkpoint entry is "
    "within the accepted tolerance",
    "diverged": "the runs are NOT reproducible: they differ beyond the accepted tolerance (see the rows below), or in "
    "what has no distance (a status, a value missing in one run)",
    "unresumed": "NOT verified: run K did not continue from a checkpoint after a kill, so the resume went untested",
    "incomplete": "NOT verified: the runs agreed, but training diverged, and no checkpoint holds the weights it ended with, so they went uncompared",
}


_VERIFY_BANNER = {
    "incomplete": "the runs agree, but training diverged, and no checkpoint holds the weights it ended with to compare",
    "unresumed": "the runs agree, but run K did NOT resume from a checkpoint: the kill/resume path went untested",
    "tolerance": "the runs differ within verify.tolerance, but verify.allow_tolerance is false, so that is not a pass",
}


def budget_text(budget: Any) -> str:
    """'38 steps (2 epochs x 19 steps), checkpoint every 4 steps', or where max_steps cuts the epochs
    short, '12 steps (max_steps 12: the first 12 of 182 epochs x 28 steps), ...' (a user test read
    '12 steps (182 epochs x 28 steps, max_steps 12)' as a puzzle); or the record as it is."""
    try:
        total, epochs = budget["total_steps"], f"{num(budget['epochs'])} {plural(budget['epochs'], 'epoch')}"
        of = f"{epochs} x {count(budget['steps_per_epoch'], 'step')}"
        if budget.get("steps") and total < budget["epochs"] * budget["steps_per_epoch"]:
            of = f"max_steps {budget['steps']:,}: the first {total:,} of {of}"
        return f"{count(total, 'step')} ({of}), checkpoint {every_n(budget['checkpoint_every_steps'], 'step')}"
    except (KeyError, TypeError, ValueError):  # a record of another shape: shown, not refused
        return any_value(budget)


def pair_text(pair: dict[str, Any]) -> str:
    """What one comparison found: checkpoint entries, per-step losses, per-epoch metrics and the
    results measured after training (a record from before verify compared those has no `results`)."""
    losses, metrics, results = pair.get("losses") or {}, pair.get("metrics") or {}, pair.get("results")
    compared = pair.get("tensors_compared")
    parts = [f"checkpoint entries {pair.get('tensors_equal', '?')}/{compared} identical" if compared != 0
             else "checkpoint entries not compared (no last checkpoint)"]  # fmt: skip
    if losses:
        parts.append(losses_text(losses))
    if metrics:
        parts.append("per-epoch metrics " + ("equal" if metrics.get("equal") else "differ"))
    if isinstance(results, dict):
        differ = [str(d.get("metric")) for d in results.get("differences") or [] if isinstance(d, dict)]
        parts.append("results after training " + (f"differ ({', '.join(differ)})" if differ else "equal"))
    if not pair.get("equal") and (compared != 0 or pair.get("max_abs_diff") != 0):
        over = ["losses", "metrics", *(["results"] if isinstance(results, dict) else []),
                *(["checkpoint entries"] if compared != 0 else [])]  # fmt: skip
        parts.append(f"largest difference {num(pair.get('max_abs_diff'))} (over {', '.join(over[:-1])} and {over[-1]})")
    return "; ".join(parts)


def _unverified_text(audit: dict[str, Any]) -> str:
    """What the settings of an unverified run say about reproducing it: possible where determinism
    was requested and read back, not assured where it was switched off or did not take."""
    lead = "**This run was not verified.** "
    if not audit["determinism"]["requested"]:
        return lead + ("Determinism was switched off for it (see *Determinism and seeding in force*), so a re-run "
                       "need not reproduce it, and no second run has been compared with this one.")  # fmt: skip
    if not _flags_in_force(audit)[0]:
        return lead + ("Determinism was requested, but the flags read back are not all deterministic (see "
                       "*Determinism and seeding in force*), so reproduction is not assured, and no second run has "
                       "been compared with this one.")  # fmt: skip
    return lead + ("The settings under *Determinism and seeding in force* make reproduction possible but are not "
                   "evidence that it happens: no second run has been compared with this one.")


def _verification(audit: dict[str, Any]) -> dict[str, Any]:
    ver = audit["verification"]
    if ver is None:
        return {"verified": False, "verification_rows": [], "tensor_rows": [], "unverified_text": _unverified_text(audit)}
    verdict = ver["verdict"]
    first = ver["first_divergence"]
    if first is None:
        first_text = ("none: the runs agree at every compared point"
                      if verdict == "bitwise" or nothing_differs(ver.get("pairs") or [])
                      else "none in the per-step losses: the runs differ elsewhere (see the rows above)")
    else:
        rest = {k: val for k, val in first.items() if k != "step"}
        first_text = f"step {num(first['step'])}" + (f" ({any_value(rest)})" if rest else "")
    rows = [
        ["Verdict", f"**{verdict}**: {_VERDICT_TEXT.get(verdict, 'unrecognised verdict')}"],
        ["Runs compared", code_list(ver["runs"])],
        ["Device", any_value(ver["device"]) + scope_text(ver)],
        ["Budget", budget_text(ver["budget"]) + short_of_budget(ver)],
        *[[f"Runs {p['pair'].upper()}", pair_text(p)] for p in ver.get("pairs") or []],
        ["First divergence", first_text],
        ["Tolerance (spec `verify.tolerance`)", f"{num(audit['spec']['verify']['tolerance'])} "
         f"(`verify.allow_tolerance`: {yesno(audit['spec']['verify']['allow_tolerance'])})"],
        *_verify_command_rows(ver),
    ]  # fmt: skip
    tensor_rows = [
        [code(t["name"]), code(short_sha(t["sha256_a"], 16)), code(short_sha(t["sha256_b"], 16)),
         code(short_sha(t["sha256_k"], 16)) if t.get("sha256_k") else "n/a", num(t["max_abs_diff"]), yesno(t["equal"])]
        for t in ver["tensors"]
    ]  # fmt: skip
    return {
        "verified": True,
        "verification_verdict": verdict,
        "verification_failed": not verification_passed(verdict, bool(ver.get("allow_tolerance"))),
        "verification_banner": _VERIFY_BANNER.get(verdict, "re-running this spec did NOT reproduce it"),
        "verification_rows": rows,
        "tensor_rows": tensor_rows,
        "verification_notes": list(ver["notes"]),
    }


def _verify_run(audit: dict[str, Any]) -> dict[str, Any]:
    """For a run `auditor verify` started (its run A, B or K), which `auditor run` may not retrain
    or resume: verify's --out, and the command that repeats the verification where the record
    holds it (run A's, once verify wrote its verdict). Records before it was kept: not verify's."""
    run, ver = audit["run"], audit.get("verification") or {}
    verify_out = verify_out_of(audit)
    command, cwd = _recorded_verify_command(ver) or (None, None)
    run_a = verify_workdir(Path(verify_out), run["name"]) / "a" / run["report_dir"] / SHEET if verify_out else None
    # outside verify's work dir, which the next verify refuses to replace while it holds a file of the user's
    # one file a run (A, B, K) and spec: the others under that --out do not replace it
    junit = str(Path(verify_out) / f"{run['name']}-{Path(str(run['out'])).name}-results.xml") if verify_out else "results.xml"
    return {"verify_out": verify_out, "verify_command": command, "verify_cwd": cwd, "run_a_sheet": run_a,
            "junit_path": junit}


def _recorded_verify_command(ver: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(command, folder it ran from or None) that verified, where the record has it (records from
    before it was kept do not)."""
    command, cwd = ver.get("command"), ver.get("cwd")
    if not isinstance(command, str) or not command:
        return None
    return command, cwd if isinstance(cwd, str) else None


def _verify_command_rows(ver: dict[str, Any]) -> list[list[str]]:
    """The command that verified (and repeats the verification), as a row where the record has it."""
    if (recorded := _recorded_verify_command(ver)) is None:
        return []
    command, cwd = recorded
    return [["Command (repeats this verification)", code(command) + (f" in {code(cwd)}" if cwd is not None else "")]]


# --- the checklist ---------------------------------------------------------------------------

Item = tuple[bool, str, str]  # (ticked, label, evidence)


def checklist(audit: dict[str, Any]) -> list[dict[str, Any]]:
    """The reproducibility checklist: each item ticked only by the fact that supports it."""
    checks: list[Callable[[dict[str, Any]], Item]] = [
        _seed_item, _flags_item, _provenance_item, _selection_item, _unseen_item, _digests_item, _spec_hash_item,
        _git_item, _environment_item, _latency_item, _verified_item, _divergence_item, _criteria_item,
    ]  # fmt: skip
    return [{"ok": bool(ok), "label": label, "evidence": ev} for ok, label, ev in (c(audit) for c in checks)]


def _seed_item(audit: dict[str, Any]) -> Item:
    det, seed = audit["determinism"], audit["spec"]["seed"]
    label, found = "Seeded with the spec's seed (torch's read back)", det.get("torch_initial_seed")
    if found is None:  # records written before the read-back
        return False, label, f"seed {det['seed']} requested; torch's seed was not read back in this record"
    ok = isinstance(found, int) and found == seed == det["seed"]
    # Only torch's generator can be asked its seed; Python's and NumPy's cannot. The read-back is
    # taken right after seeding, so it shows the seed the run gave, not that nothing reseeded later.
    return ok, label, (f"torch.initial_seed() read back after seeding: {found} (spec seed {seed}); Python's and "
                       "NumPy's generators were seeded in the same call (neither can be asked its seed); the model's "
                       "initialisation re-seeds torch with the spec seed, and the data split, order and augmentation "
                       "draw from generators derived from it (see Determinism and seeding)")


def _flags_item(audit: dict[str, Any]) -> Item:
    ok, evidence = _flags_in_force(audit)
    return ok, "Determinism flags in force (read back)", evidence


def _provenance_item(audit: dict[str, Any]) -> Item:
    data = audit["data"]
    if disputed := provenance_disagrees(data):
        return False, "Data provenance official", f"audit.json was edited after the run: {disputed[0]}"
    if data["official"] is None:
        return False, "Data provenance official", f"{data['dataset']} data: {data['note']}"
    return data["official"], "Data provenance official", data["note"]


def _selection_item(audit: dict[str, Any]) -> Item:
    split = audit["training"]["selection_split"]
    if audit["training"]["best_epoch"] is None:
        why = record_no_selection(audit["training"]) or "no checkpoint was selected (no completed epoch)"
        return False, "No model selection on the test set", why
    chose = chose_on_test(audit["training"])
    label = "No model selection on the test set"
    seen = audit["data"].get("test_in_val")
    if split == "val" and seen is None:  # records before the check
        return False, label, ("best checkpoint selected on the val split, whose images were not checked for copies "
                              "of the scored test images (recorded before this check)")  # fmt: skip
    if split == "val" and seen:
        return False, label, (f"best checkpoint selected on the val split, which holds {seen:,} of the scored test "
                              "images (pixel for pixel): the test accuracy is optimistically biased")  # fmt: skip
    if split == "val":
        return True, label, "best checkpoint selected on the val split"
    if chose:
        return False, label, "best checkpoint selected on the test split (no validation split): the test accuracy is optimistically biased"
    return True, label, ("the test split was the selection split (no validation split), but only one epoch was "
                         "scored: no checkpoint was chosen by it")  # fmt: skip


def _unseen_item(audit: dict[str, Any]) -> Item:
    label, d = "Test images not trained on", audit["data"]
    if d.get("test_in_train") is None:
        return False, label, "not checked (recorded before this check)"
    n, images = d["sizes"]["test"], "scored test images" if test_scored(audit) else f"test images ({UNSCORED})"
    if d["test_in_train"]:
        return False, label, (f"{d['test_in_train']:,} of the {n:,} {images} are pixel copies of images in "
                              "the training split")  # fmt: skip
    return True, label, (f"none of the {n:,} {images} is a pixel copy of a training image (exact copies; "
                         "near-duplicates are not looked for)")  # fmt: skip


def _resumed_from_text(run: dict[str, Any], training: dict[str, Any]) -> str:
    """The checkpoint a resumed run's last process continued from, at which global step, whether the
    run kept it (older records say neither), and whether that process trained; where the training
    was resumed more than once, or from a checkpoint that did not list the resumes before it, every
    resume its weights went through."""
    name = run["resumed_from"]
    if not name:
        return NA
    step = training.get("resumed_at_step")  # older records: not kept
    said = [f"global step {step:,}"] if is_count(step) else []
    if run.get("resumed_from_kept") is False:  # pruned, or (a user test) written again at a later step since
        said.append("a checkpoint of the interrupted run, since " + (
            "removed as the run's checkpoints were pruned" if step_of(Path(name)) is not None else
            f"replaced by the run's later {name}"))  # fmt: skip
    if (rejudged := training.get("trained_here") is False):
        said.append("this process ran no training step: it measured and judged the finished training again")
    text = f"{name} ({'; '.join(said)})" if said else name
    if "resumes" not in training:  # older records: not kept
        return text
    resumes, unknown = training["resumes"], training.get("resumes_unrecorded") is True
    steps = "; ".join(f"at global step {r['global_step']:,} from {r['checkpoint']} ({r['utc']})" for r in resumes)
    if unknown:  # the list begins at a checkpoint that kept none (an earlier version's, or one edited)
        before = "any resumes before them are" if resumes else "whether its training was resumed before is"
        return (f"{text}; {f'the resumes of its training recorded: {steps}; ' if resumes else ''}{before} not known "
                "(continued from a checkpoint that does not record them: an earlier version's, or one edited)")  # fmt: skip
    if len(resumes) > (0 if rejudged else 1):  # the last is this process's own, where it trained
        return f"{text}; its training was resumed {count(len(resumes), 'time')} in all: {steps}"
    return text


def _limits_text(spec_data: dict[str, Any], data: dict[str, Any]) -> str:
    """`limit_train / limit_test`, each said to have had no effect where the split held no more."""
    there = {"limit_train": data["n_train_files"] - data["sizes"]["val"], "limit_test": data["n_test_files"]}
    parts = []
    for key, available in there.items():
        limit = spec_data.get(key)
        if limit is None:
            parts.append(NA)
        elif limit >= available:
            parts.append(f"{limit:,} (no effect: {available:,} there)")
        else:
            parts.append(f"{limit:,}")
    text = " / ".join(parts)
    if any(p != NA and "no effect" not in p for p in parts):
        text += ("; each keeps the first images in file order (training: of those left after the validation "
                 "split), not a random sample")  # fmt: skip
    return text


def _batch_sizes(train: dict[str, Any], n_train: int) -> str:
    """'128 / 256', and what a training batch larger than the training set amounts to."""
    text = f"{train['batch_size']} / {train['eval_batch_size']}"
    if train["batch_size"] > n_train:
        text += f" (larger than the training set: each epoch is one step on all {count(n_train, 'training image')})"
    return text


def _judged_again(audit: dict[str, Any], refused: bool = False) -> str | None:
    """A warning when the stored verdict or criteria disagree with the record's own metrics judged
    again (as `auditor check` does): the record was edited, or written by another version.
    `refused`: `check` refuses the record (edited metrics or spec), which the next warning says."""
    try:
        differs = stored_verdict_differs(audit)
    except ValueError as exc:  # e.g. a metric this version does not know
        return f"This record's criteria cannot be judged again here ({_one_line(exc)}): the verdict above is as stored."
    return differs and (
        f"audit.json does not agree with its own metrics judged again by this auditor: {differs}. The record was "
        "changed after the run, or written by another version; " + ("`auditor check` refuses it (below), and" if refused
        else "`auditor check` gates on the metrics, and") + " this sheet shows what is stored."
    )


def metrics_edited_text(edited: list[str]) -> str | None:
    """A warning where the record's metrics disagree with what it measured (`edited`, as
    `edited_metrics` finds it): criteria would show one figure and the tables another."""
    return edited and (
        f"audit.json disagrees with what the run measured: {'; '.join(edited)}. The record was edited after "
        "the run; `auditor check` refuses it, this sheet shows each figure where it is stored, and its front "
        "matter offers no accuracy to the tools that read model-index."
    )


def spec_edited_text(spec_hash: Any) -> str:
    """A warning where the record's resolved spec is not the one its `spec_hash` (as recorded) names."""
    recorded = code(short_sha(spec_hash)) if isinstance(spec_hash, str) and spec_hash else "none recorded"
    return (
        f"audit.json's resolved spec does not match its spec_hash ({recorded}): the record was edited after the "
        "run. `auditor check` refuses it; Hyperparameters shows the spec as it is stored now, not necessarily "
        "what ran."
    )


def _digests_item(audit: dict[str, Any]) -> Item:
    ck = audit["checkpoints"]
    digests = [c["sha256"] for c in ck.values()]
    ok = bool(digests) and all(map(is_sha256, digests))
    evidence = f"sha256 of {', '.join(ck)} recorded" if ok else "no checkpoint digest recorded"
    return ok, "Checkpoint digests recorded", evidence


def _spec_hash_item(audit: dict[str, Any]) -> Item:
    h, label = audit["spec_hash"], "Resolved spec hash recorded"
    if not is_sha256(h):
        return False, label, "no sha256 of the resolved spec recorded"
    if not spec_hash_matches(audit):
        return False, label, f"`{h[:12]}` does NOT match the recorded resolved spec"
    return True, label, f"sha256 `{h[:12]}`, matches the recorded resolved spec"


def _git_item(audit: dict[str, Any]) -> Item:
    env = audit["environment"]
    commit, dirty = env["git_commit"], env["git_dirty"]
    if commit is None:
        return False, "Git tree clean", f"no git commit recorded ({no_commit_reason(env)})"
    evidence = f"commit `{commit[:12]}`, {git_changes_text(env)}"
    return dirty is False and env.get("git_holds_spec") is not False, "Git tree clean", evidence


def _spec_shipped_text(audit: dict[str, Any]) -> str | None:
    """Where the spec a name stood for came from: the package, not the working directory (None:
    a file named, or a record from before it was said)."""
    shipped = audit["run"].get("spec_shipped")
    if not isinstance(shipped, str):
        return None
    given, version = audit["run"].get("spec_path", "?"), audit["environment"].get("auditor", "?")
    return (f"no file {code(str(given))} in the working directory, so the {code(shipped)} shipped with auditor "
            f"{version} was read (another version may ship other contents under that name; the resolved spec "
            "in Hyperparameters is what ran)")


def no_commit_reason(env: dict[str, Any]) -> str:
    """Why a record holds no git commit: git's own words where it gave them."""
    if problem := env.get("git_problem"):
        return f"git: {problem}"
    if "git_problem" in env:
        return "not run inside a git work tree"
    return "not run inside a git work tree, or git unavailable"  # older records do not tell them apart


def git_changes_text(env: dict[str, Any]) -> str:
    """'no uncommitted changes', '2 changed tracked files and 1 untracked file', ..., and whether
    the tree holds the spec run (where the record says)."""
    text = _dirty_text(env)
    if env.get("git_commit") is not None and env.get("git_holds_spec") is False:  # the working directory's tree
        text += ("; the tree of the working directory, which does not track the spec run (it lies outside, "
                 "untracked or ignored): this commit does not identify it")  # fmt: skip
    return text


def _dirty_text(env: dict[str, Any]) -> str:
    dirty, changes = env["git_dirty"], env.get("git_changes")
    if env.get("git_commit") is None:
        return no_commit_reason(env)
    if dirty is None:
        return "dirty state unknown"
    outputs = "; untracked files in the tool's output folders under --out not counted"
    if not dirty:
        return "no uncommitted changes" + (outputs if changes else "")
    found = [(changes[k], noun) for k, noun in (("tracked", "changed tracked file"), ("untracked", "untracked path"))
             if changes and changes.get(k)]  # fmt: skip
    if not found:  # recorded before the counts were
        return "uncommitted changes or untracked files"
    return " and ".join(count(n, noun) for n, noun in found) + outputs


def _environment_item(audit: dict[str, Any]) -> Item:
    env = audit["environment"]
    # The source digest and the numeric environment variables are required once records hold them.
    ok = all(env[k] for k in ("python", "torch", "torchvision", "numpy", "os", "command")) and all(
        env[k] is not None for k in ("auditor_source", "numeric_env", "cpu_capability") if k in env)
    source = f" (source `{env['auditor_source'][:12]}`)" if env.get("auditor_source") else ""
    return ok, "Environment captured", (
        f"python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
        f"numpy {env['numpy']}, auditor {env['auditor']}{source}, device {env['device']}, command recorded"
    )


def _latency_item(audit: dict[str, Any]) -> Item:
    lat = audit["measurements"]["latency"]
    cuda = str(lat["device"]).startswith("cuda")
    synced = bool(lat["synchronized"])  # recorded by the timing loop itself
    ok = lat["warmup"] > 0 and lat["iters"] > 0 and (synced or not cuda)
    evidence = f"{lat['warmup']} warm-up + {lat['iters']} timed iterations on {lat['device']}"
    if cuda:
        evidence += "; device synchronised around each" if synced else "; NOT synchronised on CUDA"
    return ok, "Latency measured with warm-up" + (" and device sync" if cuda else ""), evidence


def _verified_item(audit: dict[str, Any]) -> Item:
    ver, label = audit["verification"], "Reproducibility verified by re-running"
    if ver is None:
        return False, label, "not verified (run `auditor verify`)"
    ok = verification_passed(ver["verdict"], bool(ver.get("allow_tolerance")))
    evidence = f"verdict {ver['verdict']} over runs {', '.join(map(str, ver['runs']))}"
    if ok and any(e.startswith(("verification", "metrics.reproducible")) for e in edited_metrics(audit)):
        # a user test: a diverged verification edited to bitwise was ticked, below its own 26/87 identical entries
        return False, label, f"{evidence} as stored, which the record's own evidence contradicts (see the warning above)"
    if ok and ver["verdict"] == "tolerance" and is_number(ver.get("tolerance")):  # a user test: read as bitwise
        evidence += f"; not bit for bit: every difference within verify.tolerance {ver['tolerance']:g}, as allowed"
    if ok and not audit["determinism"]["requested"]:  # agreed here, with nothing enforcing it
        evidence += (", with determinism off: the runs agreed on this machine, without the flags that make "
                     "them agree elsewhere")  # fmt: skip
    return ok, label, evidence


def _divergence_item(audit: dict[str, Any]) -> Item:
    status, label = audit["training"]["status"], "Training finished without divergence"
    if broken := audit["measurements"].get("nonfinite"):  # records written before the check have none
        model = "the selected model" if audit["measurements"]["evaluated_checkpoint"] else measured_model(audit["measurements"])
        return False, label, f"status {status}, but {model} holds inf or NaN in {count(len(broken), 'tensor')}"
    if found := nonfinite_losses(audit):
        return False, label, f"status {status}, but the selected model's losses are not numbers ({'; '.join(found)})"
    if why := record_no_selection(audit["training"]):
        return False, label, f"status {status}, but {why}"
    if final := audit["measurements"].get("final_nonfinite"):  # records written before the check have none
        return False, label, f"status {status}, but last.pt (the last epoch's weights) holds inf or NaN in {_tensor_list(final, 3)}"
    return status != "diverged", label, f"status {status}"


def _criteria_item(audit: dict[str, Any]) -> Item:
    crit = audit["criteria"]
    if not crit:
        return False, "Criteria all pass", "no criteria defined: nothing was gated"
    n_pass = sum(bool(c["passed"]) for c in crit)
    return n_pass == len(crit), "Criteria all pass", f"{n_pass}/{len(crit)} criteria passed"
