"""Atomic writes and digests (`auditor.fileio`), which every written file goes through."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.errors import InvalidInput
from auditor.fileio import (
    NotReplaceable,
    atomic_write_bytes,
    atomic_write_files,
    file_in_the_way,
    hand_edited,
    held_lock,
    holder_now,
    is_regular_file,
    lock_file,
    lock_holder,
    out_error,
    sha256_file,
    staged_write,
    why_not_replaceable,
    why_not_writable,
    with_mark,
)


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.json"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["audit.json"]


def test_atomic_write_gives_the_usual_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o640


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    """The user test: a JUnit report made private (0600) was replaced by one anyone could read (0644)."""
    path = tmp_path / "results.xml"
    path.write_bytes(b"old")
    for mode in (0o600, 0o640, 0o444):
        path.chmod(mode)
        atomic_write_bytes(path, b"new")
        assert stat.S_IMODE(path.stat().st_mode) == mode | 0o600 and path.read_bytes() == b"new"  # 0444: 0644
        with staged_write(path, b"staged"):
            pass
        assert stat.S_IMODE(path.stat().st_mode) == mode | 0o600 and path.read_bytes() == b"staged"
    for mode, kept in ((0o4755, 0o755), (0o200, 0o600)):  # a review: no setuid carried; we can read it back
        path.chmod(mode)
        atomic_write_bytes(path, b"new")
        assert stat.S_IMODE(path.stat().st_mode) == kept
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_bytes(b"t")
    target.chmod(0o600)
    link.symlink_to(target)
    old = os.umask(0o022)
    try:
        atomic_write_bytes(link, b"new")  # the link is replaced by a file: its target's mode is not the file's
    finally:
        os.umask(old)
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o644 and target.read_bytes() == b"t"


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "REPRODUCIBILITY.md"
    path.write_bytes(b"the user's sheet")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]  # fails inside the write
    assert path.read_bytes() == b"the user's sheet"
    assert [p.name for p in tmp_path.iterdir()] == ["REPRODUCIBILITY.md"]


def test_files_one_of_which_cannot_be_replaced_are_all_left_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: a sheet was replaced and its immutable figure not (chattr +i; root may not
    rename over it either). The inode flag is simulated where chattr is not allowed."""
    from auditor import fileio

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old a")
    b.write_text("old b")
    real = fileio._inode_flags
    monkeypatch.setattr(fileio, "_inode_flags", lambda p: 0x10 if p == b else real(p))  # FS_IMMUTABLE_FL
    with pytest.raises(NotReplaceable, match=r"the file there cannot be replaced: it is immutable \(chattr \+i") as caught:
        atomic_write_files({a: b"new a", b: b"new b"})
    assert caught.value.filename == str(b)
    assert (a.read_text(), b.read_text()) == ("old a", "old b") and sorted(os.listdir(tmp_path)) == ["a", "b"]
    monkeypatch.setattr(fileio, "_inode_flags", lambda p: 0x20 if p == tmp_path else 0)  # FS_APPEND_FL on the folder
    with pytest.raises(NotReplaceable, match=r"\] no file can be put there: its folder is append-only"):
        atomic_write_files({tmp_path / "new": b"new"})  # a new file too: no rename into such a folder
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]  # nothing written first, to be left behind
    monkeypatch.setattr(fileio, "_inode_flags", real)
    atomic_write_files({a: b"new a", b: b"new b"})  # and replaceable: both replaced, nothing left beside them
    assert (a.read_text(), b.read_text()) == ("new a", "new b") and sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_another_users_file_in_a_sticky_folder_is_not_replaceable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/tmp's rule: only the file's or the folder's owner (or root) may rename over it there."""
    (tmp_path / "f").write_text("theirs")
    tmp_path.chmod(0o1777)
    assert why_not_replaceable(tmp_path / "f") is None  # ours (or we are root)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid + 4242)  # as another user
    assert why_not_replaceable(tmp_path / "f") == ("the file there cannot be replaced: it is another user's, in a "
                                                   "folder with the sticky bit")
    assert why_not_replaceable(tmp_path / "missing") is None


def test_a_real_immutable_file_is_said_to_be_so(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not allowed here (it needs CAP_LINUX_IMMUTABLE and a file system with the flag)")
    try:
        assert why_not_replaceable(target) == "the file there cannot be replaced: it is immutable (chattr +i; lsattr shows it)"
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)
    assert why_not_replaceable(target) is None


def test_sha256_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 7)
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_is_regular_file_follows_links_and_takes_a_name_too_long_for_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "to_f").symlink_to("f")
    (tmp_path / "to_nothing").symlink_to("gone")
    os.mkfifo(tmp_path / "fifo")
    assert is_regular_file(tmp_path / "f") and is_regular_file(tmp_path / "to_f")
    for other in ("to_nothing", "fifo", "missing", "x" * 300):  # 300 bytes: over NAME_MAX, where is_file() raises
        assert not is_regular_file(tmp_path / other), other
    assert not is_regular_file(tmp_path)


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, auditor.fileio; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_file_in_the_way_names_the_file_a_folder_was_needed_for(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    assert file_in_the_way(tmp_path / "a" / "f" / "b" / "c") == tmp_path / "a" / "f"
    assert file_in_the_way(tmp_path / "a" / "f") == tmp_path / "a" / "f"
    assert file_in_the_way(tmp_path / "a" / "new" / "b") is None
    assert file_in_the_way(tmp_path / "a") is None


def test_why_not_writable_names_the_file_in_the_way_else_the_os_reason(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.tmp"))
    assert why_not_writable(full, tmp_path / "f" / "sub") == f"{tmp_path / 'f'} is a file, not a folder"
    assert why_not_writable(full, tmp_path / "free") == f"{tmp_path / 'a.tmp'}: No space left on device"
    unnamed = OSError(errno.EROFS, "Read-only file system")
    assert why_not_writable(unnamed, path=tmp_path / "lock") == f"{tmp_path / 'lock'}: Read-only file system"
    assert why_not_writable(unnamed) == "Read-only file system"
    # A user test: `--out /dev/null` was "a file".
    assert why_not_writable(full, Path("/dev/null/reports")) == "/dev/null is a character device, not a folder"
    os.mkfifo(tmp_path / "fifo")
    assert why_not_writable(full, tmp_path / "fifo" / "x") == f"{tmp_path / 'fifo'} is a FIFO (a pipe), not a folder"
    assert str(out_error(Path("out"), "why")) == "--out: cannot write under out: why"


def test_a_folder_where_the_file_goes_is_named_not_the_temp_file(tmp_path: Path) -> None:
    (tmp_path / "audit.json").mkdir()
    with pytest.raises(IsADirectoryError) as err:
        atomic_write_bytes(tmp_path / "audit.json", b"x")
    assert err.value.filename == str(tmp_path / "audit.json")
    assert os.listdir(tmp_path) == ["audit.json"]  # no temp file left


@pytest.mark.skipif(sys.platform == "win32", reason="no flock there")
def test_lock_file_is_exclusive_between_open_files_until_closed(tmp_path: Path) -> None:
    first = lock_file(tmp_path / "run.lock")
    assert first is not None
    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(BlockingIOError):
        lock_file(tmp_path / "run.lock")
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before  # the refused attempt kept no descriptor
    os.close(first)
    second = lock_file(tmp_path / "run.lock")
    assert second is not None
    os.close(second)


@pytest.mark.skipif(sys.platform == "win32", reason="no flock there")
def test_a_file_system_that_cannot_lock_gives_no_lock_and_keeps_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    closed: list[int] = []
    real_close = os.close

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(os, "close", close)
    assert lock_file(tmp_path / "run.lock") is None and len(closed) == 1



@pytest.mark.skipif(sys.platform == "win32", reason="no flock there")
def test_another_users_lock_file_is_locked_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.lock"
    path.touch()
    real_open, modes = os.open, []

    def not_writable(file: object, flags: int, *args: object) -> int:  # as another user's file, umask 022
        modes.append(flags & os.O_ACCMODE)
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, flags, *args)

    monkeypatch.setattr(os, "open", not_writable)
    fd = lock_file(path)
    assert fd is not None and modes == [os.O_RDWR, os.O_RDONLY]
    os.close(fd)


@pytest.mark.skipif(sys.platform == "win32", reason="no flock there")
def test_a_link_where_the_lock_file_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError) as err:
        lock_file(tmp_path / "run.lock")
    assert err.value.errno == errno.ELOOP and not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no flock there")
def test_a_busy_lock_names_its_holder_and_another_users_lock_file_holds_without_the_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / ".smoke.lock"
    # flock locks conflict between open files, so a second hold in this process is refused
    with held_lock(lock, "a run is going on", tmp_path), pytest.raises(InvalidInput) as err, \
            held_lock(lock, "a run is going on", tmp_path):  # fmt: skip
        pass
    holder = f"process {os.getpid()} on {socket.gethostname()} since "
    assert str(err.value).startswith(f"{lock}: a run is going on (holder: {holder}")
    lock.write_text("")  # a holder that could not write its note (read-only lock file)
    real_open = os.open

    def read_only(file: object, flags: int, *args: object) -> int:
        return real_open(file, flags & ~os.O_ACCMODE | os.O_RDONLY, *args)

    monkeypatch.setattr(os, "open", read_only)
    with held_lock(lock, "a run is going on", tmp_path) as locked:
        assert locked and lock.read_text() == ""
        with pytest.raises(InvalidInput, match=r"a run is going on$"), held_lock(lock, "a run is going on", tmp_path):
            pass


def test_a_folder_that_refuses_new_files_is_reported_at_the_file_meant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a read-only report folder (chmod does not stop root): not at the temp file's name."""
    import tempfile

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".REPRODUCIBILITY.md.x1.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError) as err:
        atomic_write_bytes(tmp_path / "REPRODUCIBILITY.md", b"x")
    assert err.value.filename == str(tmp_path / "REPRODUCIBILITY.md") and err.value.strerror == "Permission denied"


def test_a_holder_note_of_a_process_gone_is_not_named_and_a_release_clears_the_note(tmp_path: Path) -> None:
    lock, host = tmp_path / ".smoke.lock", socket.gethostname()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    lock.write_text(f"process {done.stdout.strip()} on {host} since 2026-01-01T00:00:00+00:00\n")  # left by a holder gone
    assert lock_holder(lock) == ""
    lock.write_text(f"process {os.getpid()} on {host} since 2026-01-01T00:00:00+00:00\n")
    assert lock_holder(lock).startswith(f"process {os.getpid()} on {host}")
    with held_lock(lock, "busy", tmp_path):
        assert lock_holder(lock).startswith(f"process {os.getpid()} on {host} since ")
    assert lock.read_text() == ""  # released: the note named a holder only while it held the lock
    elsewhere = f"process {os.getpid()} on not-{host} since 2026-01-01T00:00:00+00:00"
    lock.write_text(elsewhere + "\n")  # a holder on another machine: its process cannot be checked from here
    assert lock_holder(lock) == elsewhere and lock_holder(lock, this_host_only=True) == ""


def test_holder_now_trusts_a_note_only_while_the_lock_is_held(tmp_path: Path) -> None:
    """A note naming a live process (a PID reused after its holder was killed) is stale once the lock is free."""
    lock, host = tmp_path / ".smoke.lock", socket.gethostname()
    lock.write_text(f"process {os.getpid()} on {host} since 2026-01-01T00:00:00+00:00\n")
    assert lock_holder(lock) and holder_now(lock) == ""  # alive, but holding nothing
    with held_lock(lock, "busy", tmp_path):
        assert holder_now(lock).startswith(f"process {os.getpid()} on {host} since ")
    assert holder_now(tmp_path / ".missing.lock") == "" and not (tmp_path / ".missing.lock").exists()


def test_a_marked_file_is_told_from_one_edited_by_hand(tmp_path: Path) -> None:
    """A user test: `render` replaced a sheet edited by hand. The mark (the sha256 of the text
    above it) tells a file as auditor wrote it from every kind of edit tried."""
    page = tmp_path / "REPRODUCIBILITY.md"
    assert hand_edited(page) is None  # nothing there to lose
    marked = with_mark("# Sheet\n\n- [x] passed\n")
    assert marked.startswith("# Sheet\n\n- [x] passed\n\n<!-- written by auditor; sha256 of the text above: ")
    assert marked.count("\n") == 5 and with_mark("# Sheet\n\n- [x] passed") == marked  # one blank line before it
    page.write_text(marked)
    assert hand_edited(page) is None
    edited = "it was edited by hand: its text no longer matches the sha256 on its last line"
    for text in (marked.replace("[x]", "[ ]"), marked.replace("\n", "\r\n"), "A note\n" + marked,
                 marked.replace("\n\n<!--", "\n<!--")):  # fmt: skip
        page.write_text(text, newline="")
        assert hand_edited(page) == edited, text
    page.write_text(marked + "A note after it\n")
    assert hand_edited(page) == "it was edited by hand: text follows the mark of auditor's on what was its last line"
    page.write_text(marked.rstrip("\n"))  # the last newline dropped by an editor: the text is as written
    assert hand_edited(page) is None
    page.write_text("# Sheet\n")
    assert hand_edited(page) == ("it carries no mark of auditor's (the sha256 of its text, on its last line): it was "
                                 "edited by hand, or written by auditor 0.3.0 or earlier, which marked nothing")
    page.unlink()
    page.mkdir()  # not a file: what stands there is the write's to say
    assert hand_edited(page) is None
