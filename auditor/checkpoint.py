"""Checkpoints: atomic writes with a verified sha256, and safe loading.

A checkpoint `X.pt` is written to a temp file, fsynced and renamed into
place; its digest goes first to `X.pt.sha256.next` and, once the file is in
place, is renamed to `X.pt.sha256`. A file whose digest matches neither is
never loaded as intact (corrupted later, or cut short); one that matches the
`.next` digest landed and its write was killed before the last rename, which
`verify` accepts (and `discard_leftovers` completes), so a kill at any moment leaves
`X.pt` usable.

Training hands its checkpoints to a `BackgroundWriter`: the payload is
serialised on the training thread (that is the snapshot), and hashing,
writing and fsync run on one background thread in the order submitted, so
the next epoch starts while the file lands (a ResNet-18 checkpoint is about
90 MB: 11.2 M fp32 weights and as many momentum buffers; an improving epoch
writes two, best.pt and last.pt).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import torch

from auditor.audit import STEP_NAME, is_count, is_number, is_sha256, step_checkpoints, step_of
from auditor.errors import InvalidInput
from auditor.fileio import atomic_write_bytes, replace_durably, sha256_file
from auditor.words import count, first_of

KEEP_STEP_CHECKPOINTS = 2  # so a corrupted newest one still has a fallback


def to_bytes(payload: dict[str, Any]) -> bytes:
    """Serialise a payload with torch.save into memory."""
    buf = io.BytesIO()
    torch.save(shared_text(payload), buf)
    return buf.getvalue()


def shared_text(value: Any) -> Any:
    """A copy of `value`'s plain dicts, lists and tuples with every text in them interned (other objects,
    tensors and state dicts among them, as they are). Pickle writes an object once and refers back to it
    after: a resumed run's history, read back from a checkpoint, held a copy of each key per epoch where a
    fresh run's literals were one object, and a fresh run's `compute` was the object `computes` held
    where a resumed run's were two, so its checkpoints came out some hundred bytes larger (a user test).
    Copies share nothing, as a payload read back shares nothing; a payload holds no cycle."""
    if isinstance(value, str):
        return sys.intern(value) if type(value) is str else value
    if type(value) is dict:
        return {shared_text(k): shared_text(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(shared_text(v) for v in value)
    return value


def save(path: Path, payload: dict[str, Any]) -> str:
    """Atomically write a checkpoint and its digest sidecar; return the sha256."""
    return save_bytes(path, to_bytes(payload))


def save_bytes(path: Path, data: bytes) -> str:
    """Atomically write serialised checkpoint bytes and their digest sidecar."""
    return save_copies([path], data)


def save_copies(paths: Sequence[Path], data: bytes) -> str:
    """Write the same serialised bytes (hashed once) to each of `paths`, in that order."""
    digest = hashlib.sha256(data).hexdigest()
    for path in paths:
        atomic_write_bytes(next_digest_path(path), f"{digest}  {path.name}\n".encode())
        atomic_write_bytes(path, data)
        replace_durably(next_digest_path(path), digest_path(path))
    return digest


class BackgroundWriter:
    """Runs checkpoint writes on one background thread, in the order submitted.

    `wait()` blocks until every submitted write has landed and re-raises the
    first failure as it was raised (a full disk is the same OSError as
    before); `raise_if_failed()` does so without blocking, so the training
    loop can stop at the next step instead of training on for an epoch whose
    checkpoint cannot be written. Used as a context manager it waits on the
    way out; when the block is already leaving with an exception (Ctrl-C),
    pending writes still land, that exception is the one that propagates, and
    a write that failed meanwhile is added to it as a note. The thread starts
    on the first submit: a loop that never checkpoints has none.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="auditor-checkpoint")
        self._pending: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)` after every write submitted before it."""
        self._pending.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        """Block until the queue is empty; raise the first failed write's exception."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def raise_if_failed(self) -> None:
        """Raise the exception of a write that already failed; forget the ones that landed."""
        while self._pending and self._pending[0].done():
            future = self._pending.pop(0)
            future.result()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.wait()
        except Exception as failed:
            if exc is None:
                raise
            exc.add_note(f"a pending checkpoint write failed too: {type(failed).__name__}: {failed}")
        finally:
            self._pool.shutdown(wait=True)


DIGEST_SUFFIX = ".sha256"


def digest_path(path: Path) -> Path:
    """The sidecar file holding a checkpoint's sha256."""
    return path.with_name(path.name + DIGEST_SUFFIX)


def next_digest_path(path: Path) -> Path:
    """The digest of a write of `path` in progress (renamed to `digest_path` once it landed)."""
    return path.with_name(path.name + ".sha256.next")


def recorded_digest(path: Path) -> str:
    """The sha256 written beside `path` for it ('' where its sidecar holds none; of a list of
    files, the line naming it); once `verify` passed, the file's own."""
    return digest_in(digest_path(path), path)


def digest_in(sidecar: Path, path: Path) -> str:
    """The sha256 the digest file `sidecar` gives for `path` ('' where it holds none)."""
    return _sidecar_words(sidecar, path.name)[0]


# sha256sum --tag (and BSD's sha256): 'SHA256 (NAME) = DIGEST'
_TAGGED_LINE = re.compile(r"SHA256 \((.*)\) = (\S+)")
# What sha256sum escapes in a name holding a backslash or a line break (it marks the line with '\')
_NAME_ESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


def _sidecar_words(sidecar: Path, for_name: str) -> tuple[str, str | None]:
    """(the digest, lower-cased, '' where there is none; the file it names, or None) of a digest
    file, as sha256sum writes one: 'DIGEST  NAME' ('*NAME' in binary mode; a name may hold spaces,
    and any UTF-8 text), with --tag 'SHA256 (NAME) = DIGEST'. Of a file of several lines (a list,
    perhaps joined from files an editor began with a byte-order mark), the first line naming
    `for_name` (a file name, in any folder), else the first line. UnicodeDecodeError for a file
    not UTF-8."""
    lines = [_digest_line(line) for line in sidecar.read_bytes().decode().split("\n") if line.strip(" \t\r\ufeff")]
    named = [pair for pair in lines if pair[1] is not None and Path(pair[1]).name == for_name]
    return (named or lines or [("", None)])[0]


def _digest_line(line: str) -> tuple[str, str | None]:
    """(digest lower-cased, '' where the line has none; name or None) of one line of a digest file
    (`_sidecar_words`)."""
    line = line.strip().lstrip("\ufeff")
    escaped, line = line.startswith("\\"), line.removeprefix("\\")
    if tagged := _TAGGED_LINE.fullmatch(line):
        digest, name = tagged[2], tagged[1]
    else:
        words = line.split(maxsplit=1) or [""]  # a line of a lone backslash (a shell script's) holds nothing
        digest, name = words[0], (words[1].removeprefix("*") if len(words) > 1 else None)
    if escaped and name is not None:
        name = re.sub(r"\\(.)", lambda m: _NAME_ESCAPES.get(m[1], m[0]), name)
    return digest.lower(), name


def verify(path: Path, *, complete: bool = False) -> str | None:
    """None if `path` is intact (digest matches), else the reason it is not.

    A file that matches the digest of a write in progress (`next_digest_path`) landed, and
    its write was killed before the digest's rename (or is finishing now): intact. With
    `complete` (the run that owns the folder, no writer running) that rename is done here;
    commands that only read never rename in a folder a live run may be writing.
    """
    if not path.is_file():
        return "missing"
    reason, actual = _check_sidecar(path)
    if reason is None or not _matches_next(path, actual):
        return reason
    if complete:
        try:
            replace_durably(next_digest_path(path), digest_path(path))
        except OSError as exc:
            return f"{reason}; {next_digest_path(path).name} matches, but it could not be put in place ({exc})"
    return None


def matching_digest(path: Path) -> Path | None:
    """The digest file `path` matches: its sidecar, or the digest of a write of it whose last
    rename was cut short (`verify` takes that as intact); None when it matches neither."""
    reason, actual = _check_sidecar(path)
    if reason is None:
        return digest_path(path)
    return next_digest_path(path) if _matches_next(path, actual) else None


def _matches_next(path: Path, actual: str | None) -> bool:
    """Whether `path` matches the digest of a write in progress (`actual`: its sha256, if computed)."""
    nxt = next_digest_path(path)
    try:
        return nxt.is_file() and digest_in(nxt, path) == (actual or sha256_file(path))  # the file is hashed once
    except (OSError, UnicodeDecodeError):
        return False


def _check_sidecar(path: Path) -> tuple[str | None, str | None]:
    """(None, or why `path` does not match its digest file; the file's sha256 where computed)."""
    if not os.path.lexists(digest_path(path)):
        return f"no digest file ({digest_path(path).name} is missing: it was removed, or the file was copied without it)", None
    if not digest_path(path).is_file():
        return f"unreadable digest file {digest_path(path).name} (not a regular file)", None
    try:
        expected, named = _sidecar_words(digest_path(path), path.name)  # one read: the digest and the file it names
    except OSError as exc:
        return f"unreadable digest file {digest_path(path).name} ({exc.strerror or exc})", None
    except UnicodeDecodeError:
        return f"unreadable digest file {digest_path(path).name} (not UTF-8 text)", None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
        return f"damaged digest file {digest_path(path).name} (no sha256 in it)", None
    actual = sha256_file(path)
    if actual == expected:
        return None, actual
    # a digest file naming another file: a checkpoint copied under a new name beside another's digest
    other = f", for {named}" if named and Path(named).name != path.name else ""
    return f"sha256 mismatch (file {actual[:12]}, recorded {expected[:12]}{other})", actual


def load(path: Path, *, check_digest: bool = True) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True; raise InvalidInput when unusable."""
    if check_digest and (reason := verify(path)) is not None:
        raise InvalidInput(f"{path}: checkpoint is not intact: {reason}")
    try:
        with warnings.catch_warnings():  # e.g. a foreign pickle's protocol: the failure says enough
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways: all are bad input
        raise InvalidInput(f"{path}: cannot load checkpoint ({load_failure(path, exc)})") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InvalidInput(f"{path}: not an auditor checkpoint (no 'model' entry){_bare_weights_hint(payload)}")
    return payload


CHECKPOINT_FORMAT = 1  # the payload's layout (`train.payload`'s "format")


def other_format(fmt: Any) -> bool:
    """Whether a checkpoint's recorded "format" is not the one this auditor writes (`true` and 1.0,
    which equal 1, are not it either)."""
    return fmt != CHECKPOINT_FORMAT or type(fmt) is not int


def resume_problem(state: dict[str, Any]) -> str | None:
    """What makes a loaded checkpoint's payload unfit to continue a run from (a file another tool
    wrote, or one edited and digested again), or None: its format, and the kinds of the entries
    the loop reads itself (positions, history, best-so-far, the partial epoch). What torch's own
    state dicts hold is for the restore to refuse (`train.resume_into`)."""
    fmt = state.get("format", CHECKPOINT_FORMAT)
    if other_format(fmt):
        return f"it is of checkpoint format {_kind(fmt)}, and this auditor reads format {CHECKPOINT_FORMAT}"
    for key, kind in _ENTRY_KINDS.items():
        if not isinstance(state.get(key, _ABSENT), kind):
            return f"its {key!r} entry is {_kind(state.get(key, _ABSENT))}, not {kind.__name__}"
    for key in ("epoch", "step_in_epoch", "global_step"):
        if (problem := count_problem(state, key)) is not None:
            return problem
    if state["step_losses"].dim() != 1 or not all(isinstance(h, dict) for h in state["history"]):
        return "its 'step_losses' or 'history' entry is not a list of steps' losses or epochs' records"
    seconds = ("train_time_s", "compile_s") if state.get("compile_s") is not None else ("train_time_s",)
    best, partial = state["best"], state["partial"]
    wrong = [k for k in seconds if not is_number(state.get(k))]
    wrong += [f"best.{k}" for k in ("metric", "epoch") if best.get(k, _ABSENT) is not None and not is_number(best.get(k))]
    wrong += [] if is_count(best.get("since")) else ["best.since"]
    wrong += [f"partial.{k}" for k in ("loss_sum", "correct", "elapsed") if k in partial and not is_number(partial[k])]
    losses = partial.get("losses", [])
    wrong += [] if isinstance(losses, list) and all(map(is_number, losses)) else ["partial.losses"]
    return f"its {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not what a run writes there" if wrong else None


_ENTRY_KINDS: dict[str, type] = {
    "model": dict, "optimizer": dict, "scheduler": dict, "scaler": dict, "rng": dict, "partial": dict,
    "history": list, "step_losses": torch.Tensor, "best": dict,
}  # fmt: skip
_ABSENT = object()


def count_problem(state: dict[str, Any], key: str) -> str | None:
    """Where a checkpoint's `key` entry (a position: epoch, step) is not a count, what it is."""
    value = state.get(key, _ABSENT)
    return None if is_count(value) else f"its {key!r} entry is {_kind(value)}, not a count (a whole number, 0 or more)"


def _kind(value: Any) -> str:
    """A value's kind in words, with a short value ("str 'abc'", 'None', 'missing')."""
    if value is _ABSENT:
        return "missing"
    text = repr(value)
    return text if value is None else f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _bare_weights_hint(payload: Any) -> str:
    """Where `payload` is a bare state dict (tensors by name, as `torch.save(model.state_dict())`
    writes), what is needed instead: the weights alone name no model, data or spec to judge them by."""
    if not (isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values())):
        return ""
    return (f": it holds a bare state dict ({count(len(payload), 'tensor')} by name), which names no model, data or spec; "
            "give a checkpoint `auditor run` wrote (best.pt, last.pt), which carries its resolved spec")


@dataclass(frozen=True)
class ZipCrcs:
    """What the CRC-32s a checkpoint's zip archive records say of its entries."""

    checked: bool  # some entry's bytes were compared with its CRC-32
    damaged: str | None = None  # the first entry whose bytes fail it (or cannot be read back)
    note: str = ""  # entries left unchecked, in words (", except N written without one")
    unreadable: str | None = None  # why a zip archive's directory cannot be read (damaged: a run's always can)


def zip_crcs(path: Path) -> ZipCrcs:
    """Read every entry of the zip archive at `path` against the CRC-32 it records. torch.load
    does not check them, so without a digest file a flipped byte would load as other weights.
    Entries recorded with a CRC of 0 are skipped: torch writes 0 when its compute_crc32 setting
    is off. Not checked where the file is no zip archive (torch.save's legacy format, or not a
    checkpoint at all: loading says why), and `unreadable` where the archive's directory cannot be
    read (torch may still load it: a user test loaded such a file's flipped weights unchecked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            checked = [i for i in infos if i.CRC != 0 or i.file_size == 0]
            for info in checked:
                try:
                    with archive.open(info) as f:  # ZipExtFile compares the CRC-32 at the end
                        while f.read(1 << 20):
                            pass
                except (zipfile.BadZipFile, RuntimeError, zlib.error, NotImplementedError, EOFError, ValueError):
                    return ZipCrcs(True, info.filename)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        return _unopened(path, exc)
    if not checked:
        return ZipCrcs(False, None, ", and its zip archive records no CRC-32s to check its entries against")
    skipped = len(infos) - len(checked)
    note = f", except {skipped} {'entry' if skipped == 1 else 'entries'} written without one" if skipped else ""
    return ZipCrcs(True, None, note)


def _unopened(path: Path, exc: Exception) -> ZipCrcs:
    """`zip_crcs` of a file Python's zipfile could not open: no zip archive (said in the note), or
    one whose directory is damaged (`unreadable`); nothing where the file cannot be read (loading says why)."""
    try:
        with path.open("rb") as f:  # by its head: is_zipfile looks for an end record a legacy file's bytes may hold
            is_zip = f.read(4) == b"PK\x03\x04"
    except OSError:
        return ZipCrcs(False)
    if not is_zip:
        return ZipCrcs(False, None, ", and it is not a zip archive (a run writes one; torch.save's legacy format is "
                                    "not), so no CRC-32 checks its bytes")  # fmt: skip
    if isinstance(exc, zipfile.BadZipFile) and "not a zip file" in str(exc):  # what zipfile says of a missing end record
        return ZipCrcs(False, unreadable="no end-of-archive record was found: the file was cut short, or damaged at its end")
    return ZipCrcs(False, unreadable=f"{type(exc).__name__}: {exc}")


# torch.save's legacy (non-zip) format opens with a pickled magic number (protocol 2, LONG1).
LEGACY_HEAD = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


def load_failure(path: Path, exc: Exception) -> str:
    """Why torch.load(weights_only=True) refused `path`, in one line.

    torch's own message for a refused pickle advises `weights_only=False`,
    which would run code from the file: it is never repeated here.
    """
    try:
        with path.open("rb") as f:
            head = f.read(len(LEGACY_HEAD))
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    first = str(exc).strip().split("\n")[0].split(". ")[0]
    if not head:
        return "empty file"
    detail = _refused_object(str(exc))
    if is_zip and (foreign := _foreign_zip(path)) is not None:
        return foreign
    if is_zip and head[:4] != b"PK\x03\x04":  # torch's reader wants the archive at byte 0 (it spoke of a legacy .tar)
        return "a zip archive that does not start at the file's first byte (were bytes added before it?)"
    if is_zip and isinstance(exc, pickle.UnpicklingError):
        return f"holds an object that loading with weights_only=True refuses: {detail or 'unsupported pickle'}"
    if is_zip:
        return f"{type(exc).__name__}: {first}"
    if head == LEGACY_HEAD:  # torch.save's format before torch 1.6: refused content, or cut short
        return f"a legacy-format torch.save file that loading with weights_only=True refuses: {detail or first}"
    if head[:4] == b"PK\x03\x04":  # a zip's first entry, but no central directory: cut short
        return f"a truncated or damaged zip archive ({type(exc).__name__}: {first})"
    if (named := _digest_file_names(path)) is not None:
        return f"a digest file, not a checkpoint{f': give the checkpoint it names, {named}' if named else ''}"
    return "not a torch.save file: neither its zip archive nor a legacy pickle of tensors"


_BLOCKED = re.compile(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked")


def _refused_object(message: str) -> str:
    """What torch's refusal names of a pickle weights_only=True loading refuses, or "": its
    WeightsUnpickler line (an unlisted class: "Unsupported global: GLOBAL argparse.Namespace ..."),
    else an object of a module it blocks outright (`os.system`, which torch names without that line)."""
    if detail := message.partition("WeightsUnpickler error:")[2].strip().split("\n")[0].split(". ")[0]:
        return detail
    blocked = _BLOCKED.search(message)
    return f"{blocked[1]}, whose module {blocked[2]} torch blocks (it would run code)" if blocked else ""


def _digest_file_names(path: Path) -> str | None:
    """Of a file that reads as a digest file ('DIGEST  NAME', as sha256sum writes it): the file it
    names ('' where it names none); None for any other file."""
    try:
        if path.stat().st_size > 65536:  # a digest file, or a list of them, is a few lines
            return None
        digest, named = _sidecar_words(path, path.name.removesuffix(DIGEST_SUFFIX))
    except (OSError, UnicodeDecodeError):
        return None
    if not is_sha256(digest):
        return None
    return named or ""


def _foreign_zip(path: Path) -> str | None:
    """What a zip archive without torch.save's `data.pkl` entry holds, or None (one with it, or one
    whose names cannot be read: its own error says more)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, NotImplementedError):  # a name not UTF-8: damaged
        return None
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return None
    shown = first_of([repr(n) for n in names[:3]], len(names))
    return f"a zip archive, but not one torch.save writes (no data.pkl entry; it holds {shown or 'nothing'})"


def candidates(ckpt_dir: Path) -> list[Path]:
    """Resume candidates: last.pt and step checkpoints, newest position first."""
    return [p for _, p in _ranked(ckpt_dir)]


def _ranked(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(global step, path) of the resume candidates, newest first; -1 for a last.pt whose step
    cannot be read (it is loaded once, here)."""
    last = [ckpt_dir / "last.pt"] if (ckpt_dir / "last.pt").is_file() else []
    ranked = [(position(p), p) for p in [*last, *step_checkpoints(ckpt_dir)]]
    return sorted(ranked, key=lambda r: (r[0], r[1].name), reverse=True)


def position(path: Path) -> int:
    """A checkpoint's global step: from a step checkpoint's name, else read from the file; -1 where
    it cannot be read."""
    if (step := step_of(path)) is not None:
        return step
    try:
        step = load(path, check_digest=False).get("global_step")
    except InvalidInput:
        return -1
    return step if is_count(step) else -1  # not a count: its step cannot be read


def newest_intact(ckpt_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint whose digest verifies, and the ones skipped (with reasons): newer
    ones, and a last.pt too damaged to say its step (it sorts last, but may well be the newest)."""
    return _newest_of(_ranked(ckpt_dir))


def _newest_of(ranked: list[tuple[int, Path]]) -> tuple[Path | None, list[tuple[Path, str]]]:
    """`newest_intact` over candidates `_ranked` has read already."""
    skipped: list[tuple[Path, str]] = []
    for i, (_, p) in enumerate(ranked):
        reason = verify(p)
        if reason is None:
            unread = [q for step, q in ranked[i + 1 :] if step == -1]
            return p, skipped + [(q, verify(q) or "its step could not be read") for q in unread]
        skipped.append((p, reason))
    return None, skipped


def resume_point(ckpt_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The checkpoint `auditor run --resume` continues from, and the ones skipped (`newest_intact`):
    best.pt too, where it verifies and is further on than the newest candidate that does
    (`newer_best`): a process stopped between writing best.pt and last.pt, or a newer candidate
    (a finished run's last.pt too) that failed its digest. A run writes best.pt with the same bytes
    as last.pt at the end of an epoch whose model it selects, so it holds that epoch's whole
    training state."""
    ranked = _ranked(ckpt_dir)  # each candidate's step read once, for both
    found, skipped = _newest_of(ranked)
    best = ckpt_dir / "best.pt"
    if not best.is_file():
        return found, skipped
    damage = verify(best)  # hashed once, for both uses
    if damage is None and newer_best(ckpt_dir, found, {p: step for step, p in ranked}) is not None:
        return best, skipped
    if found is None and damage is not None:
        skipped = [*skipped, (best, damage)]  # the only one there: said, as a damaged last.pt is
    return found, skipped


def newer_best(ckpt_dir: Path, found: Path | None, steps: Mapping[Path, int]) -> Path | None:
    """best.pt, which verifies (`resume_point` has checked it), where it is further on than `found`
    (the newest resume candidate that verifies; None: none does), else None. An interrupted run
    whose last.pt was damaged or not yet written after its best epoch would otherwise resume from
    an older checkpoint (training that epoch's steps again), or be refused with its best.pt intact.
    `steps`: the resume candidates' global steps as `_ranked` read them (`found` and any last.pt)."""
    best, last = ckpt_dir / "best.pt", ckpt_dir / "last.pt"
    step = position(best)
    if step < 0 or (found is not None and step <= steps[found]):
        return None
    # The resume writes last.pt again from best.pt: not where its bytes read as further on (only its
    # digest file may be damaged, and it holds the later state), which is left for the user as before.
    return None if last in steps and steps[last] > step else best


def best_passed_over(ckpt_dir: Path, skipped: Sequence[tuple[Path, str]]) -> str | None:
    """Where no resume candidate verified (`skipped`, from `resume_point`): why best.pt, which verifies,
    was not taken either (a damaged last.pt's bytes read as further on: only its digest may be
    damaged, and best.pt would write over it), or None where best.pt is absent or failed too.
    `resume_point` hashed best.pt already: where none verified, a damaged best.pt is among `skipped`."""
    best, last = ckpt_dir / "best.pt", ckpt_dir / "last.pt"
    if not best.is_file() or any(p == best for p, _ in skipped):
        return None
    if (step := position(best)) < 0:
        return "best.pt verifies but its step cannot be read"
    return (f"best.pt verifies but holds step {step}, before the step {position(last)} that last.pt's bytes "
            "read as: it is not taken over them, as only last.pt's digest may be damaged")


def prune_step_checkpoints(ckpt_dir: Path, keep: int = KEEP_STEP_CHECKPOINTS) -> None:
    """Delete all but the newest `keep` step checkpoints (and their digests)."""
    steps = sorted(step_checkpoints(ckpt_dir), key=position, reverse=True)
    for p in steps[keep:]:
        p.unlink(missing_ok=True)
        digest_path(p).unlink(missing_ok=True)
        next_digest_path(p).unlink(missing_ok=True)


# The files a run's checkpoint folder holds: its checkpoints and their digests (pending ones too).
# Globs, and a pattern for the step checkpoints: step-<digits>.pt exactly, so that a user's own
# step-backup.pt is not taken for one (and deleted with the folder it is in).
FILE_PATTERNS: tuple[str | re.Pattern[str], ...] = (
    *(name for c in ("last.pt", "best.pt") for name in (c, digest_path(Path(c)).name, next_digest_path(Path(c)).name)),
    re.compile(STEP_NAME.pattern.removesuffix("$") + r"(\.sha256(\.next)?)?$"),
)


def name_matches(name: str, pattern: str | re.Pattern[str]) -> bool:
    """Whether a file name matches one of FILE_PATTERNS' (or any) globs or patterns."""
    return bool(pattern.match(name)) if isinstance(pattern, re.Pattern) else fnmatch(name, pattern)


def discard_leftovers(ckpt_dir: Path) -> None:
    """Remove what writes and deletions killed part-way left (temp files, digests of files that
    never landed or are gone), so that a finished run's folder holds its checkpoints and their
    digests only."""
    for nxt in ckpt_dir.glob("*.sha256.next"):
        verify(nxt.with_name(nxt.name.removesuffix(".sha256.next")), complete=True)  # a rename cut short
        nxt.unlink(missing_ok=True)
    for left in ckpt_dir.glob(".*.tmp"):
        left.unlink(missing_ok=True)
    for digest in ckpt_dir.glob("*.pt.sha256"):  # a deletion (pruning) cut short between the two files
        if not digest.with_name(digest.name.removesuffix(DIGEST_SUFFIX)).exists():
            digest.unlink(missing_ok=True)


def weights_only_bytes(state_dict: dict[str, torch.Tensor]) -> int:
    """Size in bytes of a bare state dict as torch.save writes it."""
    return len(to_bytes(state_dict))
