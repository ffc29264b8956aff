"""Atomic file writes, file digests and what stands at a path, without torch.

Every file the auditor writes (checkpoints, audit.json, the sheet, its figures,
JUnit XML) goes through `atomic_write_bytes`: readers see the old file or the
new one, never a half-written one. Kept apart from `checkpoint` so that the
commands that only read and write reports (`check`, `render`) never import
torch: a CI gate should not pay for an import it does not use (1.3-1.4 s and
650 MB resident for `import torch` on the 2-core machine of bench/RESULTS.md).
What stands at a path (`file_problem`, `checkpoint_file`) is here for the same
reason: `evaluate` and `measure` refuse a checkpoint path where no file is
before they import torch.
"""

from __future__ import annotations

import array
import errno
import hashlib
import os
import re
import socket
import stat
import struct
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from auditor.errors import InvalidInput


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# The last line of a Markdown file auditor writes (the sheet, an ablation's page): the sha256 of the
# text above it, by which a rebuild tells a file as auditor wrote it from one edited by hand.
_MARK = "<!-- written by auditor; sha256 of the text above: {} (a rebuild replaces this file only while it matches) -->\n"
_MARK_RE = re.compile(rb"<!-- written by auditor; sha256 of the text above: ([0-9a-f]{64})[^\n]*-->")


# What `hand_edited` says of a file without the mark.
NO_MARK = ("it carries no mark of auditor's (the sha256 of its text, on its last line): it was edited by hand, or "
           "written by auditor 0.3.0 or earlier, which marked nothing")


def with_mark(text: str) -> str:
    """`text` (Markdown) with auditor's mark as its last line, after a blank one: an HTML comment,
    not shown where the Markdown is displayed, giving the sha256 of the text above it (`hand_edited`)."""
    body = text.rstrip("\n") + "\n\n"
    return body + _MARK.format(hashlib.sha256(body.encode("utf-8")).hexdigest())


def hand_edited(path: Path, unmarked: bool = True) -> str | None:
    """Why the Markdown file at `path` is not as auditor wrote it (`with_mark`), so that a rebuild
    would lose what was changed by hand, or None: no file there (or none a read could check: the
    write says what is there), or one whose mark matches the text above it. `unmarked`: whether a
    file with no mark (of 0.3.0, or its mark removed) is said too."""
    try:
        data = path.read_bytes() if is_regular_file(path) else None
    except OSError:
        data = None
    if data is None:
        return None
    if not (marks := list(_MARK_RE.finditer(data))):
        return NO_MARK if unmarked else None
    mark = marks[-1]
    if data[mark.end():].strip():  # only line ends may follow (an editor's own are caught below)
        return "it was edited by hand: text follows the mark of auditor's on what was its last line"
    if hashlib.sha256(data[: mark.start()]).hexdigest() != mark[1].decode():
        return "it was edited by hand: its text no longer matches the sha256 on its last line"
    return None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old or the new file."""
    atomic_write_files({path: data})


def atomic_write_files(files: Mapping[Path, bytes]) -> None:
    """Write each file so that readers see either the old or the new one. Every new file is
    written in full before any is put in place, in the order given, so one that cannot be
    written (a read-only folder, a full disk) or put in place (`check_replaceable`) leaves them
    all as they were."""
    for path in files:  # all or none: a rename refused after another is made would leave a mix
        check_replaceable(path)
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            staged.append((_written_beside(path, data), path))
        for _, path in staged:  # what would stop a rename, found before any is made
            if path.is_dir() and not path.is_symlink():
                raise IsADirectoryError(errno.EISDIR, "a folder is where this file goes", str(path))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except IsADirectoryError as exc:  # the error would name the temp file, which is gone after this
                raise IsADirectoryError(exc.errno, "a folder is where this file goes", str(path)) from None
    except BaseException:
        for tmp, _ in staged:
            with suppress(OSError):  # a folder that refuses it: the error raised says why, not this
                tmp.unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(path.parent for path in files):
        _fsync_dir(folder)


@contextmanager
def staged_write(path: Path, data: bytes) -> Iterator[None]:
    """`data` written in full beside `path` on entry, put in place when the block ends without an
    exception, discarded when it raises: what may be said only once the file is sure to be written
    (a verdict beside its report) goes in the block. OSError on entry where it cannot be written."""
    check_replaceable(path)
    tmp = _written_beside(path, data)
    try:
        yield
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(errno.EISDIR, "a folder is where this file goes", str(path))
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class NotReplaceable(OSError):
    """No rename can put a file at a path, though one can be made beside it; `folder`: because
    of the folder (append-only, immutable), not of the file there."""

    folder = False


# Linux's inode flags (chattr): _IOR('f', 1, long), and the two under which no rename replaces a file
_FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1
_NO_RENAME_FLAGS = ((0x10, "immutable"), (0x20, "append-only"))  # FS_IMMUTABLE_FL, FS_APPEND_FL


_FOLDER_REFUSES = "no file can be put there"


def check_replaceable(path: Path) -> None:
    """NotReplaceable, naming `path`, where no rename could put a file there
    (`why_not_replaceable`): found before anything is written, so that a sheet and its figures stay
    all or none, and a PASS is not printed before its JUnit report fails (a user test)."""
    if (why := why_not_replaceable(path)) is not None:
        exc = NotReplaceable(errno.EPERM, why, str(path))
        exc.folder = why.startswith(_FOLDER_REFUSES)
        raise exc


def why_not_replaceable(path: Path) -> str | None:
    """Why no rename could put a file at `path`, or None (no cause seen): its folder is immutable
    or append-only (chattr +i, +a), or the file there is, or is another user's in a folder with the
    sticky bit (/tmp). Read from stat and the inode flags: nothing is moved, so readers never miss
    the file; a cause not seen here still shows when the rename fails."""
    if said := no_rename_flag(path.parent):
        return f"{_FOLDER_REFUSES}: its folder is {said}"
    try:
        st, folder = os.lstat(path), os.stat(path.parent)
    except OSError:
        return None  # nothing there to replace
    euid = os.geteuid()
    if folder.st_mode & stat.S_ISVTX and euid != 0 and euid not in (st.st_uid, folder.st_uid):
        return "the file there cannot be replaced: it is another user's, in a folder with the sticky bit"
    if stat.S_ISREG(st.st_mode) and (said := no_rename_flag(path)):
        return f"the file there cannot be replaced: it is {said}"
    return None


def no_rename_flag(path: Path) -> str | None:
    """'immutable (chattr +i; ...)' or 'append-only (...)' where `path` carries that inode flag."""
    flags = _inode_flags(path)
    word = next((word for bit, word in _NO_RENAME_FLAGS if flags & bit), None)
    return word and f"{word} (chattr +{word[0]}; lsattr shows it)"


def _inode_flags(path: Path) -> int:
    """`path`'s Linux inode flags (FS_IOC_GETFLAGS); 0 where they cannot be read (another OS, a
    file system without them, a file this user may not open)."""
    try:
        import fcntl

        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (ImportError, OSError):
        return 0
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        return flags[0]
    except OSError:
        return 0
    finally:
        os.close(fd)


def _written_beside(path: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `path`, on disk; the caller renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # it would name a temp file the user never asked for: name the file meant
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        os.fchmod(fd, _mode_for(path))  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def replace_durably(src: Path, dst: Path) -> None:
    """Rename `src` over `dst` (same folder) and make the rename survive a power cut."""
    os.replace(src, dst)
    _fsync_dir(dst.parent)


def _mode_for(path: Path) -> int:
    """The mode a file replacing `path` gets: the permissions of the regular file of ours it replaces
    (a report the user made private stays private), readable and writable by us still; else the
    usual one for a new file (0666 less the umask). Another user's file (this process as root)
    becomes ours, so its mode, set for its owner, is not copied; nor is a link's target's."""
    try:
        st = path.lstat()
    except OSError:  # none there (or unreadable: the rename will say so)
        return 0o666 & ~_umask()
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
        return (st.st_mode & 0o777) | 0o600  # no setuid/setgid/sticky bit carried to new contents
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read from /proc where it can be (os.umask can only read by setting it,
    which for a moment would give any file created by another thread mode 0666)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)  # the fallback sets a strict mask, never a permissive one, meanwhile
    os.umask(mask)
    return mask


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_in_the_way(path: Path) -> Path | None:
    """The first of `path`'s parents, or `path` itself, that exists but is not a folder.

    Creating folders under such a path fails with "Not a directory" naming the
    deepest path; this names the file that causes it.
    """
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
        if not p.exists():
            return None
    return None


def home_expanded(text: str | Path) -> Path:
    """`text` as a path with a leading `~` or `~user` expanded; ValueError when that names no
    home folder here (an unknown user), which pathlib raises as a RuntimeError."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        head = str(text).split("/", 1)[0]
        why = "no home folder is known for this user" if head == "~" else "no such user"
        raise ValueError(f"{text}: {head} names no home folder here ({why})") from None


def resolved_folder(text: str | Path) -> Path:
    """`text` with `~` expanded, made absolute with its links followed; ValueError, not pathlib's
    RuntimeError, for an unknown user or a loop of symbolic links."""
    path = home_expanded(text)
    try:
        return path.resolve()
    except RuntimeError:  # Python 3.11's resolve() on a loop of links
        raise ValueError(f"{text}: a loop of symbolic links") from None


def out_error(out: Path, why: str) -> InvalidInput:
    """The error for an output folder that cannot be written: `--out: cannot write under OUT: WHY`."""
    return InvalidInput(f"--out: cannot write under {out}: {why}")


def why_not_writable(exc: OSError, *folders: Path, path: Path | None = None) -> str:
    """Why a write failed: the file in the way of one of `folders` (a folder could not be made
    under a file), else the OS's reason with the file it names (or `path`)."""
    for folder in folders:
        if blocker := file_in_the_way(folder):
            return not_a_folder(blocker)
    where = exc.filename or path
    return (f"{where}: " if where else "") + str(exc.strerror or exc)


def lock_file(path: Path) -> int | None:
    """A descriptor of `path` (created, empty, if missing) under an exclusive flock, held until it
    is closed (or the process ends); BlockingIOError when another process holds the lock. None
    where there is no flock (not POSIX, or a file system without it): nothing is locked then.
    Opened for writing, as NFS needs for an exclusive lock, or for reading where another user's
    file may not be written (a local flock needs no more); a link there is refused (ELOOP)."""
    try:
        import fcntl
    except ImportError:
        return None
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY | flags)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:  # ENOLCK and the like: a file system that cannot lock
        os.close(fd)
        return None
    except BaseException:  # Ctrl-C: no descriptor (and lock) may outlive the call
        os.close(fd)
        raise
    return fd


def lock_beside(folder: Path) -> Path:
    """The lock file of `folder`: `.<name>.lock` beside it, which stays put when the folder is
    renamed or replaced."""
    return folder.with_name(f".{folder.name}.lock")


def _note_holder(fd: int) -> None:
    """Write who holds the lock into its file, for the message of a process that finds it busy."""
    since = datetime.now(UTC).isoformat(timespec="seconds")
    note = f"process {os.getpid()} on {socket.gethostname()} since {since}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, note.encode(), 0)
    except OSError:  # opened read-only (another user's lock file): it locks all the same
        pass


def lock_holder(lock: Path, this_host_only: bool = False) -> str:
    """Who holds `lock` as its holder wrote it ('process PID on HOST since TIME'), or '' when
    the file holds no such note (a holder that could not write it, or one just starting).
    `this_host_only`: '' also for a holder on another machine, whose note cannot be checked
    (a process there that was killed leaves its note)."""
    try:
        note = lock.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    m = re.fullmatch(r"process (\d+) on (\S+) since \S+", note)
    here = m is not None and m[2] == socket.gethostname()
    if m is None or (here and not _alive(int(m[1]))) or (this_host_only and not here):
        return ""  # no note, or one an earlier holder left (a holder that opened the file read-only writes none)
    return note


def holder_now(lock: Path) -> str:
    """Who holds `lock` now on this machine, as its note says ('process PID on HOST since TIME'),
    or '' when no live process here does: the note's process is gone, the note is another
    machine's, or the lock is free (the note outlived a killed holder whose PID was reused).
    The lock is tried for that, and released at once."""
    if not (holder := lock_holder(lock, this_host_only=True)):
        return ""
    try:
        fd = lock_file(lock)
    except BlockingIOError:
        return holder
    except OSError:  # cannot be tried (e.g. no permission to open it): the note is all there is
        return holder
    if fd is None:  # no flock here: the note is all there is
        return holder
    os.close(fd)
    return ""


def _alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


@contextmanager
def held_lock(lock: Path, busy: str, out: Path) -> Iterator[bool]:
    """Hold `lock_file(lock)` (its folder made if missing) for the block: True, or False where
    files cannot be locked. InvalidInput `{lock}: {busy}` when another process holds it, and
    `--out: cannot write under {out}: ...` when it cannot be made."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = lock_file(lock)
    except BlockingIOError:
        holder = lock_holder(lock)
        raise InvalidInput(f"{lock}: {busy}" + (f" (holder: {holder})" if holder else "")) from None
    except OSError as exc:
        raise out_error(out, why_not_writable(exc, lock.parent, path=lock)) from None
    if fd is not None:
        _note_holder(fd)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            with suppress(OSError):  # opened read-only: nothing of ours to clear
                os.ftruncate(fd, 0)  # the note names a holder only while it holds the lock
            os.close(fd)


# --- what stands at a path ---------------------------------------------------------------


def file_problem(path: Path, what: str) -> str | None:
    """Why a `what` file cannot be read at `path` though something is there (a folder, a link to
    nothing, a FIFO, a file where a parent folder goes); None for a regular file or nothing at all."""
    found = what_stands_at(path)
    return None if found is None or found == (path, REGULAR_FILE) else not_readable(path, *found, what)


def not_readable(p: Path, where: Path, kind: str, what: str) -> str:
    """Why the `what` file at `p` cannot be read, `where` (p or a parent of it) being `kind`."""
    if where != p:
        return f"{where} is {kind}, not a folder"
    if kind == "a folder":
        return f"a folder, not {'an' if what[0] in 'aeiou' else 'a'} {what} file"
    if kind.startswith(("a broken", "a loop", "unreadable")):
        return kind
    # A FIFO, socket or device: a read could wait for ever on a FIFO no one writes to, and a
    # pipe (`<(...)`, /dev/stdin) could be read only once, where a run records the path to rerun.
    return f"{kind}, not a regular file; save the {what} to a file and give its path"


REGULAR_FILE = "a regular file"
_FILE_KINDS = MappingProxyType({
    stat.S_IFREG: REGULAR_FILE, stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (a pipe)",
    stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
})  # fmt: skip


def what_stands_at(path: Path) -> tuple[Path, str] | None:
    """(where, what) for the first of `path`'s parents that is something but not a folder (a
    file, a link to nothing), or else for `path` itself ("a regular file", "a folder", "a FIFO
    (a pipe)", "a broken symbolic link to X"...; links followed); None where nothing is at all."""
    for where in [*reversed(path.parents), path]:
        kind = kind_of(where)
        if kind is None:
            return None  # nothing here, so nothing under it either
        if where == path or kind != "a folder":
            return where, kind
    return None  # not reached: the loop ends at `path`


LINK_LOOP = "a loop of symbolic links"


def not_a_folder(path: Path) -> str:
    """`PATH is a file, not a folder` (a device, a FIFO ... where it is one: `/dev/null`)."""
    return f"{path} is {file_words(path)}, not a folder"


def file_words(path: Path) -> str:
    """What the file at `path` is, for a message: "a file", or a device, a FIFO ... where it is one."""
    kind = kind_of(path)
    return "a file" if kind in (None, REGULAR_FILE) else kind


def kind_of(path: Path) -> str | None:
    """What `path` is, its links followed (`_FILE_KINDS`, or what stops the look); None for nothing."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a folder that may not be searched: not taken for nothing there
        return f"unreadable ({exc.strerror})"
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"a broken symbolic link to {os.readlink(path)}"
    except OSError as exc:
        return LINK_LOOP if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
    return _FILE_KINDS.get(stat.S_IFMT(mode), "a special file")


def is_regular_file(path: Path) -> bool:
    """Whether a regular file is at `path`, links followed. Unlike `Path.is_file()`, a name too
    long for a file is False, not an OSError naming another path than the one the caller gives."""
    return kind_of(path) == REGULAR_FILE


def not_a_file(path: Path) -> str | None:
    """What stands at `path` where a file should, when it is not a regular file (None for a file
    or nothing): a folder, a dangling link, or a FIFO, socket or device (reading one would hang)."""
    if path.is_file() or not os.path.lexists(path):
        return None
    if path.is_dir():
        return "a folder"
    if not path.exists():  # exists() is False for a loop of links as for a dangling one
        return LINK_LOOP if kind_of(path) == LINK_LOOP else "a link to nothing"
    return "not a regular file (a FIFO, socket or device)"


def checkpoint_file(path: Path) -> Path:
    """`path`, or the file a link there names; InvalidInput when no regular file is there (a
    FIFO would block the read)."""
    if path.is_dir():
        held = sorted(p.name for p in path.glob("*.pt"))[:6]  # a run's checkpoints/<name>/ given for its best.pt
        raise InvalidInput(f"{path}: a folder, not a checkpoint file" + (f" (it holds {', '.join(held)})" if held else ""))
    if (what := not_a_file(path)) is not None:
        raise InvalidInput(f"{path}: {what}, not a checkpoint file")
    if not path.is_file():  # `best.pt/x` too, whose ENOTDIR is_file() reads as absent: file_problem names best.pt
        raise InvalidInput(f"{path}: {file_problem(path, 'checkpoint') or 'checkpoint not found'}")
    return path.resolve()
