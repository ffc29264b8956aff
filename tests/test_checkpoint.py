"""Tests for checkpoint files: digests, resume candidates and pruning."""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import re
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from auditor import checkpoint
from auditor.errors import InvalidInput
from auditor.fileio import sha256_file


def _write(path: Path, step: int) -> Path:
    checkpoint.save(path, {"model": {}, "global_step": step})
    return path


def test_candidates_newest_first_and_foreign_step_files_ignored(tmp_path: Path) -> None:
    _write(tmp_path / "last.pt", 8)
    for step in (6, 10, 12):
        _write(tmp_path / f"step-{step:08d}.pt", step)
    stray = _write(tmp_path / "step-final.pt", 99)  # a user's copy, not the trainer's
    assert [p.name for p in checkpoint.candidates(tmp_path)] == [
        "step-00000012.pt", "step-00000010.pt", "last.pt", "step-00000006.pt",
    ]  # fmt: skip
    assert checkpoint.newest_intact(tmp_path) == (tmp_path / "step-00000012.pt", [])
    checkpoint.prune_step_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*.pt")) == ["step-00000010.pt", "step-00000012.pt", "step-final.pt"]
    assert stray.is_file() and not checkpoint.digest_path(tmp_path / "step-00000006.pt").exists()


def test_newest_intact_skips_a_corrupted_file_with_its_reason(tmp_path: Path) -> None:
    _write(tmp_path / "last.pt", 4)
    newest = _write(tmp_path / "step-00000006.pt", 6)
    newest.write_bytes(newest.read_bytes()[:-8] + b"corrupt!")
    found, skipped = checkpoint.newest_intact(tmp_path)
    assert found == tmp_path / "last.pt"
    assert [(p.name, r.split(" (")[0]) for p, r in skipped] == [("step-00000006.pt", "sha256 mismatch")]


def test_a_last_checkpoint_too_damaged_to_read_is_named_among_the_skipped(tmp_path: Path) -> None:
    """It sorts last (its step cannot be read), so the newest intact one was found before it."""
    _write(tmp_path / "step-00000010.pt", 10)
    last = _write(tmp_path / "last.pt", 12)
    last.write_bytes(last.read_bytes()[:1000])
    found, skipped = checkpoint.newest_intact(tmp_path)
    assert found == tmp_path / "step-00000010.pt"
    assert [p.name for p, _ in skipped] == ["last.pt"] and "sha256 mismatch" in skipped[0][1]


def test_a_run_resumes_from_best_pt_only_where_it_verifies_and_is_further_on(tmp_path: Path) -> None:
    """A run writes best.pt with last.pt's bytes at the end of an epoch it selects: where last.pt was
    not written after it, or a newer candidate failed its digest, a run goes on from it rather than
    an older one (a finished run too: its last.pt damaged, it had been refused, or gone on from an
    older step checkpoint, with best.pt intact)."""
    older, best = _write(tmp_path / "step-00000004.pt", 4), _write(tmp_path / "best.pt", 8)
    last = _write(tmp_path / "last.pt", 8)
    assert checkpoint.resume_point(tmp_path) == (last, [])  # nothing failed
    assert checkpoint.newer_best(tmp_path, last, {last: 8, older: 4}) is None  # not further on than last.pt
    _write(last, 4)  # a process stopped between writing best.pt (step 8) and last.pt: nothing failed
    assert checkpoint.resume_point(tmp_path) == (best, [])
    _write(last, 8)
    last.write_bytes(last.read_bytes()[:-8] + b"corrupt!")
    found, skipped = checkpoint.resume_point(tmp_path)
    assert found == best and [p.name for p, _ in skipped] == ["last.pt"]
    assert checkpoint.newest_intact(tmp_path) == (older, skipped)
    _write(last, 9)  # reads as further on than best.pt ...
    checkpoint.digest_path(last).write_text("0" * 64)  # ... and only its digest file is damaged
    assert checkpoint.resume_point(tmp_path)[0] == older  # not overwritten with best.pt's older state
    last.write_bytes(b"damaged")  # unreadable: its step cannot be read
    assert checkpoint.resume_point(tmp_path)[0] == best
    _write(tmp_path / "step-00000010.pt", 10).write_bytes(b"damaged")
    assert checkpoint.resume_point(tmp_path)[0] == best  # a damaged step checkpoint likewise
    best.write_bytes(best.read_bytes()[:-1] + b"x")
    assert checkpoint.resume_point(tmp_path)[0] == older  # damaged too
    best.unlink()
    assert checkpoint.resume_point(tmp_path)[0] == older
    older.unlink()
    assert checkpoint.resume_point(tmp_path)[0] is None
    _write(best, 8).write_bytes(best.read_bytes()[:-1] + b"x")  # a damaged best.pt alone: said, as a last.pt is
    found, skipped = checkpoint.resume_point(tmp_path)
    assert found is None and [p.name for p, _ in skipped] == ["step-00000010.pt", "last.pt", "best.pt"]  # damaged all
    assert "sha256 mismatch" in skipped[-1][1]


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("auditor-checkpoint") and t.is_alive()]


class _Foreign:  # a class torch.load(weights_only=True) must refuse
    pass


def _other_zip(path: Path, names: int = 2) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(names):
            archive.writestr(f"notes/{i}.txt", "not a checkpoint")


def _zip_cut_short(path: Path) -> None:
    torch.save({"model": {"w": torch.ones(64)}}, path)
    path.write_bytes(path.read_bytes()[:300])


def _bytes_before_archive(path: Path) -> None:
    torch.save({"model": {"w": torch.ones(4)}}, path)
    path.write_bytes(bytes(1000) + path.read_bytes())


class _RunsCode:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("true",)  # what a hostile checkpoint holds; never loaded here


UNLOADABLE: list[tuple[str, Callable[[Path], object], str]] = [
    ("empty", lambda p: p.write_bytes(b""), "(empty file)"),
    ("json", lambda p: p.write_text('{"model": 1}'), "not a torch.save file"),
    ("plain pickle", lambda p: p.write_bytes(pickle.dumps({"model": 1})), "not a torch.save file"),
    ("cut short", _zip_cut_short, "a truncated or damaged zip archive"),
    ("another zip", _other_zip, ("a zip archive, but not one torch.save writes (no data.pkl entry; it holds "
                                 "'notes/0.txt', 'notes/1.txt')")),
    ("a zip of many", lambda p: _other_zip(p, 5), ("(no data.pkl entry; it holds 'notes/0.txt', 'notes/1.txt', "
                                                   "'notes/2.txt' and 2 more)")),
    ("an empty zip", lambda p: _other_zip(p, 0), "(no data.pkl entry; it holds nothing)"),
    ("foreign object", lambda p: torch.save({"model": _Foreign()}, p), "weights_only=True refuses: Unsupported global"),
    ("a folder", lambda p: p.mkdir(), "unreadable"),
    ("code to run", lambda p: torch.save({"model": _RunsCode()}, p),  # a user test: torch names it in another line
     "weights_only=True refuses: posix.system, whose module posix torch blocks (it would run code))"),
    ("legacy format, refused object", lambda p: torch.save({"model": _Foreign()}, p, _use_new_zipfile_serialization=False),
     "a legacy-format torch.save file that loading with weights_only=True refuses: Unsupported global"),
    ("bytes before the archive", _bytes_before_archive,  # a user test: torch spoke of a legacy .tar format
     "(a zip archive that does not start at the file's first byte (were bytes added before it?))"),
]


def test_a_digest_file_given_as_the_checkpoint_is_told_to_give_the_checkpoint(tmp_path: Path) -> None:
    """A user test: `evaluate best.pt.sha256` was told the file is neither a zip nor a legacy pickle."""
    path = _write(tmp_path / "best.pt", 1)
    with pytest.raises(InvalidInput, match=re.escape(f"{path}.sha256: cannot load checkpoint (a digest file, not a "
                                                     "checkpoint: give the checkpoint it names, best.pt)")):  # fmt: skip
        checkpoint.load(checkpoint.digest_path(path), check_digest=False)
    listed = tmp_path / "checksums.sha256"  # the review: named by what it names, not by its own file name
    listed.write_text(f"{'a' * 64}  model.pt\n{'b' * 64}  other.pt\n")
    with pytest.raises(InvalidInput, match=re.escape("(a digest file, not a checkpoint: give the checkpoint it names, "
                                                     "model.pt)")):  # fmt: skip
        checkpoint.load(listed, check_digest=False)
    listed.write_text(f"{'a' * 64}\n")
    with pytest.raises(InvalidInput, match=re.escape("(a digest file, not a checkpoint)")):
        checkpoint.load(listed, check_digest=False)
    listed.write_text("not a digest\n")
    with pytest.raises(InvalidInput, match=re.escape("(not a torch.save file: ")):
        checkpoint.load(listed, check_digest=False)


@pytest.mark.parametrize(("make", "reason"), [u[1:] for u in UNLOADABLE], ids=[u[0] for u in UNLOADABLE])
def test_an_unloadable_file_says_why_in_one_line(tmp_path: Path, make: Callable[[Path], object], reason: str) -> None:
    path = tmp_path / "x.pt"
    make(path)
    with warnings.catch_warnings(), pytest.raises(InvalidInput) as err:
        warnings.simplefilter("error")  # torch's warnings about a foreign pickle stay out of the user's way
        checkpoint.load(path, check_digest=False)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot load checkpoint (") and reason in message
    assert "\n" not in message and "\x1b" not in message and "weights_only=False" not in message


def test_a_damaged_digest_file_is_named_as_the_damaged_part(tmp_path: Path) -> None:
    path = _write(tmp_path / "last.pt", 1)
    digest = checkpoint.digest_path(path).read_text()
    checkpoint.digest_path(path).write_text(digest.upper())  # written by hand: still the same digest
    assert checkpoint.verify(path) is None and checkpoint.recorded_digest(path) == digest.split()[0]
    for garbage in ("", "zzz\n", digest[:40]):
        checkpoint.digest_path(path).write_text(garbage)
        assert checkpoint.verify(path) == "damaged digest file last.pt.sha256 (no sha256 in it)"
    checkpoint.digest_path(path).write_text("0" * 64 + "  last.pt\n")
    assert checkpoint.verify(path).startswith("sha256 mismatch (file ")


def test_a_digest_file_written_by_sha256sum_is_read_as_it_writes_one(tmp_path: Path) -> None:
    """A user test: sha256sum's file for a name that is not ASCII, a byte-order mark, its escaped
    line for a name with a backslash, a list of several files, and --tag were all refused. Each
    form comes after another file's line, so the name must be read right for the line to be found."""
    path = _write(tmp_path / "sp ace é\\x.pt", 1)
    digest, sidecar = sha256_file(path), checkpoint.digest_path(path)
    other = "0" * 64
    for line in (f"{digest}  sp ace é\\x.pt", f"\ufeff{digest} *sp ace é\\x.pt",  # binary mode; a list joined from BOM files
                 f"\\{digest}  sp ace é\\\\x.pt",  # sha256sum marks and escapes a name with a backslash
                 f"{digest}  runs/sp ace é\\x.pt\r",  # another folder's path, a Windows line end
                 f"SHA256 (sp ace é\\x.pt) = {digest}"):  # fmt: skip
        sidecar.write_text(f"\ufeff{other}  a.pt\n\n{line}\n{other}  b.pt\n", encoding="utf-8")
        assert checkpoint.verify(path) is None and checkpoint.recorded_digest(path) == digest, line
    sidecar.write_text(f"{other}  a.pt\n{digest}  b.pt\n")  # no line for it: the first line's, naming its file
    assert checkpoint.verify(path) == f"sha256 mismatch (file {digest[:12]}, recorded {other[:12]}, for a.pt)"
    sidecar.write_text(f"{other}  runs/sp ace é\\x.pt\n")  # its own name, in a folder: no other file to name
    assert checkpoint.verify(path).endswith(f"recorded {other[:12]})")
    for lone in ("\\\n", f"{digest}  sp ace é\\x.pt\n\\\n", "\\ \n"):  # a line of a lone backslash was an IndexError
        sidecar.write_text(lone)
        assert checkpoint.verify(path) in (None, f"damaged digest file {sidecar.name} (no sha256 in it)"), lone
    sidecar.write_bytes(f"{digest}  \xe9.pt\n".encode("latin-1"))
    assert checkpoint.verify(path) == f"unreadable digest file {sidecar.name} (not UTF-8 text)"
    sidecar.unlink()
    sidecar.mkdir()
    assert checkpoint.verify(path) == f"unreadable digest file {sidecar.name} (not a regular file)"
    script = tmp_path / "train.sh"  # a small text file given as a checkpoint is read as a digest file might be
    script.write_text("python train.py \\\n    --lr 0.1 \\\n    \\\n")
    with pytest.raises(InvalidInput, match=r"train\.sh: cannot load checkpoint \(not a torch\.save file"):
        checkpoint.load(script, check_digest=False)


def test_a_digest_file_that_cannot_be_read_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "last.pt", 1)
    real = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name.endswith(".sha256"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    assert checkpoint.verify(path) == "unreadable digest file last.pt.sha256 (Permission denied)"


class _Killed(BaseException):
    """A kill between two file operations of a save."""


@pytest.mark.parametrize("landed", [0, 1, 2], ids=["before the next digest", "before the file", "before the digest's rename"])
def test_a_save_killed_at_any_point_leaves_an_intact_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, landed: int
) -> None:
    path = _write(tmp_path / "last.pt", 1)
    done: list[str] = []

    def until_killed(fn: Callable[..., None]) -> Callable[..., None]:
        def operation(*args: object) -> None:
            if len(done) == landed:
                raise _Killed
            done.append(fn.__name__)
            fn(*args)
        return operation

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", until_killed(checkpoint.atomic_write_bytes))
    monkeypatch.setattr(checkpoint, "replace_durably", until_killed(checkpoint.replace_durably))
    with pytest.raises(_Killed):
        _write(path, 2)
    monkeypatch.undo()
    assert checkpoint.verify(path) is None
    assert checkpoint.load(path)["global_step"] == (2 if landed == 2 else 1)  # the new file once it landed
    assert checkpoint.newest_intact(tmp_path) == (path, [])
    before = sorted(p.name for p in tmp_path.iterdir())
    checkpoint.verify(path)  # a reader (evaluate, measure) renames nothing: a live run may be writing
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    checkpoint.discard_leftovers(tmp_path)  # the run that owns the folder completes the rename
    assert checkpoint.recorded_digest(path) == sha256_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256"]


def test_a_next_digest_does_not_vouch_for_another_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "last.pt", 1)
    checkpoint.next_digest_path(path).write_text(checkpoint.digest_path(path).read_text())
    path.write_bytes(path.read_bytes()[:-8] + b"corrupt!")
    assert checkpoint.verify(path).startswith("sha256 mismatch (file ")


def test_tensors_in_plain_containers_load_and_a_payload_without_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"model": {"w": torch.ones(2)}, "seen": collections.Counter("ab")}, path)
    assert torch.equal(checkpoint.load(path, check_digest=False)["model"]["w"], torch.ones(2))
    torch.save({"model": {"w": torch.ones(2)}}, path, _use_new_zipfile_serialization=False)  # the legacy format loads
    assert torch.equal(checkpoint.load(path, check_digest=False)["model"]["w"], torch.ones(2))
    torch.save({"w": torch.ones(2)}, path)  # a bare state dict: said so, with what is needed instead
    with pytest.raises(InvalidInput, match=r"not an auditor checkpoint \(no 'model' entry\): it holds a bare state dict "
                                           r"\(1 tensor by name\), which names no model, data or spec; give a checkpoint"):
        checkpoint.load(path, check_digest=False)
    torch.save({"step": 3}, path)
    with pytest.raises(InvalidInput, match=r"not an auditor checkpoint \(no 'model' entry\)$"):
        checkpoint.load(path, check_digest=False)


def test_background_writer_keeps_order_and_starts_no_thread_until_used(tmp_path: Path) -> None:
    writer = checkpoint.BackgroundWriter()
    assert _writer_threads() == []
    order: list[int] = []
    first_may_finish = threading.Event()

    def job(i: int) -> None:
        if i == 0:
            first_may_finish.wait(5)  # the first job is the slowest: the order must still hold
        order.append(i)

    with writer:
        for i in range(4):
            writer.submit(job, i)
        writer.submit(checkpoint.save_copies, [tmp_path / "best.pt", tmp_path / "last.pt"], b"payload")
        assert order == [] and len(_writer_threads()) == 1
        first_may_finish.set()
    assert order == [0, 1, 2, 3]  # and all done once the block is left
    assert checkpoint.verify(tmp_path / "last.pt") is None and (tmp_path / "best.pt").read_bytes() == b"payload"
    assert checkpoint.verify(tmp_path / "best.pt") is None
    assert _writer_threads() == []


def test_a_failed_background_write_surfaces_without_waiting_and_at_the_next_wait(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = checkpoint.BackgroundWriter()
    with pytest.raises(OSError), writer:
        writer.submit(checkpoint.save_bytes, blocker / "last.pt", b"x")  # its folder is a file
        deadline = time.monotonic() + 10
        with pytest.raises(OSError):  # polled, as the training loop does after each step
            while time.monotonic() < deadline:
                writer.raise_if_failed()
        writer.submit(checkpoint.save_bytes, blocker / "best.pt", b"x")
        with pytest.raises(OSError):
            writer.wait()
        writer.submit(checkpoint.save_bytes, blocker / "x.pt", b"x")  # and on the way out
    assert blocker.read_text() == "not a folder"


def test_leaving_with_an_exception_lands_pending_writes_and_keeps_that_exception(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    may_write = threading.Event()

    def held_save(path: Path, data: bytes) -> None:
        may_write.wait(5)
        checkpoint.save_bytes(path, data)

    with pytest.raises(KeyboardInterrupt) as err, checkpoint.BackgroundWriter() as writer:
        writer.submit(held_save, tmp_path / "last.pt", b"epoch 3")
        writer.submit(checkpoint.save_bytes, tmp_path / "file" / "x.pt", b"x")  # fails: its folder is a file
        may_write.set()
        raise KeyboardInterrupt  # Ctrl-C during the next epoch
    assert checkpoint.verify(tmp_path / "last.pt") is None  # the newest checkpoint landed
    assert any("a pending checkpoint write failed too" in note for note in err.value.__notes__)


def test_leftovers_of_killed_writes_go_and_a_landed_file_keeps_its_digest(tmp_path: Path) -> None:
    best = _write(tmp_path / "best.pt", 1)
    nxt = checkpoint.next_digest_path(best)
    new = checkpoint.to_bytes({"model": {}, "global_step": 2})
    nxt.write_text(hashlib.sha256(new).hexdigest() + "  best.pt\n")
    best.write_bytes(new)  # landed; killed before its digest's rename
    last = _write(tmp_path / "last.pt", 2)
    checkpoint.next_digest_path(last).write_text("0" * 64 + "  last.pt\n")  # a write that never landed
    (tmp_path / ".last.pt.x1y2.tmp").write_bytes(b"half a file")
    pruned = _write(tmp_path / "step-00000014.pt", 3)
    pruned.unlink()  # pruning killed between the checkpoint and its digest
    checkpoint.discard_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "best.pt.sha256", "last.pt", "last.pt.sha256"]
    assert checkpoint.verify(best) is None and checkpoint.load(best)["global_step"] == 2
    assert checkpoint.verify(last) is None


RESUMABLE = {"model": {}, "optimizer": {}, "scheduler": {}, "scaler": {}, "rng": {}, "partial": {}, "history": [],
             "step_losses": torch.zeros(0), "best": {"metric": None, "epoch": None, "since": 0}, "epoch": 0,
             "step_in_epoch": 0, "global_step": 0, "train_time_s": 0.0, "compile_s": None}  # fmt: skip


@pytest.mark.parametrize(("change", "said"), [
    ({"global_step": "abc"}, "its 'global_step' entry is str 'abc', not a count (a whole number, 0 or more)"),
    ({"epoch": True}, "its 'epoch' entry is bool True, not a count (a whole number, 0 or more)"),
    ({"history": "x"}, "its 'history' entry is str 'x', not list"),
    ({"history": [1]}, "its 'step_losses' or 'history' entry is not a list of steps' losses or epochs' records"),
    ({"best": None}, "its 'best' entry is None, not dict"),
    ({"best": {}}, "its best.metric, best.epoch, best.since are not what a run writes there"),
    ({"best": {"metric": "high", "epoch": 1, "since": 0}}, "its best.metric is not what a run writes there"),
    ({"train_time_s": None, "compile_s": "1"}, "its train_time_s, compile_s are not what a run writes there"),
    ({"partial": {"losses": [0.1, "b"], "loss_sum": "1"}}, "its partial.loss_sum, partial.losses are not what"),
    ({"format": 99}, "it is of checkpoint format int 99, and this auditor reads format 1"),
    ({"format": True}, "it is of checkpoint format bool True, and this auditor reads format 1"),
])  # fmt: skip
def test_what_a_checkpoint_holds_is_checked_by_kind_before_a_resume_reads_it(change: dict, said: str) -> None:
    assert checkpoint.resume_problem(RESUMABLE) is None
    assert checkpoint.resume_problem(RESUMABLE | {"format": 1, "compile_s": 2.5}) is None  # as runs write it
    found = checkpoint.resume_problem(RESUMABLE | change)
    assert found is not None and found.startswith(said), found
    missing = {k: v for k, v in RESUMABLE.items() if k != "global_step"}
    assert checkpoint.resume_problem(missing) == "its 'global_step' entry is missing, not a count (a whole number, 0 or more)"


@pytest.mark.parametrize("step", ["abc", None, [1], -1, True])
def test_a_last_checkpoint_whose_step_is_no_count_sorts_as_unreadable(tmp_path: Path, step: object) -> None:
    """The review: a last.pt with global_step 'abc' was a traceback while checkpoints were ranked."""
    _write(tmp_path / "step-00000002.pt", 2)
    checkpoint.save(tmp_path / "last.pt", {"model": {"w": torch.zeros(1)}, "global_step": step})
    found, skipped = checkpoint.newest_intact(tmp_path)
    assert found == tmp_path / "step-00000002.pt"
    assert skipped == [(tmp_path / "last.pt", "its step could not be read")]


def test_best_passed_over_says_why_an_intact_best_pt_was_not_resumed_from(tmp_path: Path) -> None:
    """Where no candidate verifies and best.pt does, the refusal had said "no intact checkpoint"."""
    best, last = _write(tmp_path / "best.pt", 4), _write(tmp_path / "last.pt", 9)
    checkpoint.digest_path(last).write_text("0" * 64)  # its bytes read as step 9: only its digest may be damaged
    found, skipped = checkpoint.resume_point(tmp_path)
    assert found is None and [p.name for p, _ in skipped] == ["last.pt"]
    assert checkpoint.best_passed_over(tmp_path, skipped) == (
        "best.pt verifies but holds step 4, before the step 9 that last.pt's bytes read as: it is not taken over "
        "them, as only last.pt's digest may be damaged")
    checkpoint.save(best, {"model": {}})  # verifies, its step unread
    assert checkpoint.best_passed_over(tmp_path, skipped) == "best.pt verifies but its step cannot be read"
    best.write_bytes(best.read_bytes()[:-1] + b"x")  # damaged too: nothing to name
    assert checkpoint.best_passed_over(tmp_path, checkpoint.resume_point(tmp_path)[1]) is None
    best.unlink()
    assert checkpoint.best_passed_over(tmp_path, checkpoint.resume_point(tmp_path)[1]) is None


def test_a_payload_read_back_serialises_to_as_many_bytes_as_a_fresh_one() -> None:
    """A user test: a resumed run's checkpoints were some hundred bytes larger than an uninterrupted
    run's, its history's keys (read back from a checkpoint) being one copy per epoch, where pickle
    writes one text object once and refers back to it."""
    fresh = {"history": [{"epoch": 1, "lr": 0.1}, {"epoch": 2, "lr": 0.05}], "spec": {"device": "cpu"}, "compute": "cpu"}
    read_back = pickle.loads(pickle.dumps(fresh))  # as torch.load gives it: its texts are new objects
    read_back["history"].append({"epoch": 3, "lr": 0.025})  # a resumed epoch: literal keys again
    fresh["history"].append({"epoch": 3, "lr": 0.025})
    assert read_back["history"][0].keys() == fresh["history"][0].keys()
    assert next(iter(read_back["history"][0])) is not next(iter(fresh["history"][2]))  # copies, not one object
    assert _pickle_bytes(checkpoint.to_bytes(read_back)) == _pickle_bytes(checkpoint.to_bytes(fresh))
    state = torch.nn.Linear(2, 2).state_dict()  # a state dict is saved as it is: its _metadata too
    assert checkpoint.shared_text({"model": state})["model"] is state
    assert checkpoint.shared_text(("a", ["b", 1.0])) == ("a", ["b", 1.0])


def _pickle_bytes(saved: bytes) -> int:
    """The length of a torch.save file's pickle (data.pkl): the archive pads its entries, which can hide a difference."""
    import io

    with zipfile.ZipFile(io.BytesIO(saved)) as z:
        return len(z.read(next(n for n in z.namelist() if n.endswith("data.pkl"))))
