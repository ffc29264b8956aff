"""Data stage: CIFAR-10 (or a synthetic stand-in) as uint8 tensors, with provenance.

Images stay uint8 of shape (N, 3, 32, 32) until a batch is drawn; augmentation
(random crop with zero padding, horizontal flip) and normalisation run on whole
batches as tensor ops on the training device. All data randomness is
counter-based: the split comes from (seed, "split"), the order of epoch e from
(seed, "shuffle", e) and the augmentation of step s of epoch e from
(seed, "augment", e, s). A resumed run therefore replays exactly the batches
and augmentations that an uninterrupted one sees, with no generator state to
carry beyond the (epoch, step) position.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from auditor import unpickle
from auditor.audit import OTHER_ENTRIES_KEPT, steps_per_epoch
from auditor.errors import InvalidInput, SpecFieldError
from auditor.fileio import not_a_file, resolved_folder
from auditor.spec import CIFAR10_MEAN, CIFAR10_STD, CIFAR10_STD_LEGACY, DataSpec
from auditor.words import count, first_of

CIFAR_DIR = "cifar-10-batches-py"
IMAGE_SHAPE = (3, 32, 32)
SYNTHETIC_CLASSES = tuple(f"pattern{k}" for k in range(10))


@dataclass(frozen=True)
class Provenance:
    """Where the data came from and whether it is the official CIFAR-10."""

    dataset: str
    root: str | None  # absolute path read, None for synthetic
    official: bool | None  # None for synthetic
    files: dict[str, str]  # file -> "ok" | "md5 mismatch" | "missing"
    note: str
    fingerprint: str  # sha256 over train+test images and labels as read
    n_train_files: int  # images in the training files before split/limit
    n_test_files: int
    normalization: str  # "cifar10-correct" | "cifar10-legacy-std" | "custom"
    test_fingerprint: str | None = None  # sha256 over the test images and labels alone: what evaluate prints
    # sha256 over the test images and labels the run scored: the first data.limit_test (the same
    # as test_fingerprint without a limit); evaluate compares those it scores with it
    scored_test_fingerprint: str | None = None
    # scored test images whose pixels equal an image of the train (val) split: exact copies only
    test_in_train: int | None = None
    test_in_val: int | None = None
    val_in_train: int | None = None  # val images whose pixels equal a train image's: their val accuracy is partly seen
    # data.download fetched the files (torchvision: downloaded the archive, or took a matching one in
    # data.root) and extracted them before they were read; None: synthetic
    downloaded: bool | None = None
    split_fingerprint: str | None = None  # split_fingerprint(): which training-file images went to train, val
    # entries of CIFAR_DIR/ that are no file of the official layout, so were not read (`data_batch_6`,
    # a `.bak` copy): the first OTHER_ENTRIES_KEPT names, sorted, and how many there are; None: synthetic,
    # or a folder that could not be listed (`root` tells them apart)
    other_entries: tuple[str, ...] | None = None
    n_other_entries: int | None = None
    # sha256 of each official-layout file read, as found (a copy's own SHA256SUMS, or a download's,
    # can be matched with it; `files` gives only whether the MD5 is the official one); None: synthetic
    file_sha256: dict[str, str] | None = None


@dataclass(frozen=True)
class DataBundle:
    """The split data set, on the CPU, uint8 images and int64 labels."""

    train_x: torch.Tensor  # (N_train, 3, 32, 32) uint8
    train_y: torch.Tensor  # (N_train,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    provenance: Provenance

    def sizes(self) -> dict[str, int]:
        """Images per split."""
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}

    def class_counts(self) -> dict[str, list[int]]:
        """Images of each class (by label) in each split: the split is not stratified, and limits cut it."""
        n = len(self.classes)
        return {split: torch.bincount(y, minlength=n).tolist()
                for split, y in (("train", self.train_y), ("val", self.val_y), ("test", self.test_y))}  # fmt: skip


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for one named random stream, independent of the others."""
    blob = "/".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & (2**63 - 1)


def generator(seed: int, *keys: object) -> torch.Generator:
    """A CPU torch.Generator for the stream named by `keys`."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


# --- reading CIFAR-10 -------------------------------------------------------


def _unpickle(path: Path, what: str) -> object:
    """The object in a CIFAR-10 pickle file, read by `unpickle.load` (no code runs, no numpy
    on the file's structure); InvalidInput naming `path` when it cannot be read or is not one."""
    try:
        empty = path.stat().st_size == 0  # unpickle would say "Ran out of input" (a user test)
        obj = None if empty else unpickle.load(path)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # a corrupt pickle fails in many ways (EOFError, AttributeError, MemoryError, ...)
        raise InvalidInput(f"{path}: not a readable {what} pickle ({str(exc) or type(exc).__name__})") from None
    if empty:
        raise InvalidInput(f"{path}: empty (0 bytes), where a {what} pickle goes: the file was written empty, or cut down to nothing")
    return obj


def _array(value: object, path: Path, key: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        # Each value a pickle's lists hold costs it at least a byte, unless a list is held again by
        # reference: 4 KB of lists that repeat themselves expand to 10^12 values for numpy to build.
        try:
            values = _expanded_size(value, {})
        except RecursionError:
            raise InvalidInput(f"{path}: {key!r} is nested too deeply to be an array") from None
        if values > (size := path.stat().st_size):
            raise InvalidInput(f"{path}: {key!r} repeats its own lists by reference ({values:,} values from a "
                               f"{size:,}-byte file): not a CIFAR-10 batch")  # fmt: skip
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nesting, ...
        raise InvalidInput(f"{path}: {key!r} is not a rectangular array ({exc})") from None


def _expanded_size(value: list[Any] | tuple[Any, ...], seen: dict[int, int]) -> int:
    """How many non-list values `value` holds once every list in it is expanded (`seen`: the
    count of each list met so far, by id, so that a list held many times is walked once)."""
    if (known := seen.get(id(value))) is not None:
        return known
    n = sum(_expanded_size(v, seen) if isinstance(v, (list, tuple)) else 1 for v in value)
    seen[id(value)] = n
    return n


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images (N,3,32,32) uint8, labels (N,) int64)."""
    d = _unpickle(path, "CIFAR-10 batch")
    if not isinstance(d, dict) or "data" not in d or "labels" not in d:
        raise InvalidInput(f"{path}: expected a dict with 'data' and 'labels' keys")
    data, labels = _array(d["data"], path, "data"), _array(d["labels"], path, "labels")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise InvalidInput(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.ndim != 1:
        raise InvalidInput(f"{path}: 'labels' must be a flat list of integers, got shape {labels.shape}")
    if labels.shape[0] != data.shape[0]:
        raise InvalidInput(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        bad = next(v for v in labels.tolist() if not (type(v) is int and 0 <= v <= 9))
        raise InvalidInput(f"{path}: labels must be integers in 0..9, got {labels.dtype} (e.g. {bad!r})")
    if isinstance(d["labels"], (list, tuple)) and (flags := [v for v in d["labels"] if isinstance(v, (bool, np.bool_))]):
        # numpy reads True as 1 beside integers: a flag is no class index
        raise InvalidInput(f"{path}: labels must be integers in 0..9, got {count(len(flags), 'true/false value')} (e.g. {flags[0]!r})")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise InvalidInput(f"{path}: labels must be in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


# The official python-version files and their MD5s, as torchvision.datasets.CIFAR10 lists them
# (tests/test_data.py checks they still agree). Kept here so that reading the data never
# imports torchvision (only the download path does): its import costs about 0.1 s on 2 cores
# and pulls in torch._dynamo (over 1 s) when nothing has imported that yet.
OFFICIAL_TRAIN = (
    ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
    ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
    ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
    ("data_batch_4", "634d18415352ddfa80567beed471001a"),
    ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
)
OFFICIAL_TEST = (("test_batch", "40351d587109b95175f43aff81a1287e"),)
OFFICIAL_README = "readme.html"  # in the official archive too; nothing reads it
OFFICIAL_FILES_TEXT = "data_batch_1..5, test_batch, batches.meta"  # what a run reads, as messages name it
OFFICIAL_META = MappingProxyType(  # read-only: one caller must not change what the next one checks
    {"filename": "batches.meta", "key": "label_names", "md5": "5ff9c542aee3614f3951f8cda6e48888"}
)
_OFFICIAL_NAMES = (*(name for name, _ in OFFICIAL_TRAIN + OFFICIAL_TEST), OFFICIAL_META["filename"])


def _digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of the file at `path`, in one read."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()  # md5: the official list's digest
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def _download(root: Path) -> None:
    """Fetch the official archive with torchvision's downloader (needs network)."""
    from torchvision.datasets import CIFAR10

    made = [p for p in (root, *root.parents) if not p.exists()]  # the folders torchvision will make
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        for folder in made:  # deepest first: leave nothing behind that was not there
            if not folder.is_dir() or folder.is_symlink() or any(folder.iterdir()):
                break
            folder.rmdir()
        raise SpecFieldError(
            "data.download",
            f"could not download CIFAR-10 into {root} ({exc}); "
            f"place the official {CIFAR_DIR}/ there or use dataset: synthetic"
        ) from None


def read_cifar10(spec: DataSpec) -> tuple[Any, ...]:
    """Read the official layout under `spec.root` into uint8 arrays + a file report, fetching
    it first where `data.download` asks and nothing is there.

    Returns (train_x, train_y, test_x, test_y, classes, files, base, fetched, sha256s).
    A partial or modified copy still loads; `files` says what differs, `sha256s` what each file is.
    """
    root = _data_root(spec)
    base = root / CIFAR_DIR
    fetched = _downloads(spec.download, root)
    if fetched:
        _download(root)
    if (refusal := _no_cifar_dir(root)) is not None:
        raise refusal
    meta = OFFICIAL_META
    checked = {name: _file_check(base / name, md5)
               for name, md5 in (*OFFICIAL_TRAIN, *OFFICIAL_TEST, (meta["filename"], meta["md5"]))}  # fmt: skip
    files = {name: status for name, (status, _) in checked.items()}
    sha256s = {name: digest for name, (_, digest) in checked.items() if digest is not None}
    present = [n for n, _ in OFFICIAL_TRAIN if files[n] != "missing"]
    if not present or files["test_batch"] == "missing":
        # What a run needs: the test batch and at least one training batch (a partial copy loads).
        needed = (["test_batch"] if files["test_batch"] == "missing" else []) + (
            [] if present else ["every training batch (data_batch_1..5; a run needs at least one)"])  # fmt: skip
        raise SpecFieldError("data.root", f"{base} is missing {' and '.join(needed)}")
    train = [_read_batch(base / n) for n in present]
    test_x, test_y = _read_batch(base / "test_batch")
    if not len(test_y):
        raise InvalidInput(f"{base / 'test_batch'}: holds no images")
    if empty := [name for name, (_, y) in zip(present, train, strict=True) if not len(y)]:
        # A user test: one empty batch beside full ones trained on, the sheet saying only "md5 mismatch".
        raise InvalidInput(f"{base / empty[0]}: holds no images (a CIFAR-10 training batch holds 10,000: the file "
                           "was written empty, or cut down to nothing)")  # fmt: skip
    classes = _read_classes(base / meta["filename"])
    train_x, train_y = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    return train_x, train_y, test_x, test_y, classes, files, base, fetched, sha256s


def _downloads(download: bool, root: Path) -> bool:
    """Whether reading the data fetches it first: asked to, and nothing named CIFAR_DIR where a
    folder can hold one. Never into a folder named CIFAR_DIR: that is the set's own folder, whose
    parent data.root names (a download there would nest a second copy inside it)."""
    try:
        return (download and not os.path.lexists(root / CIFAR_DIR) and root.name != CIFAR_DIR
                and (root.is_dir() or not root.exists()))  # fmt: skip
    except OSError:  # a folder on the way this user may not search: nothing is fetched; _no_cifar_dir says why
        return False


def root_problem(spec: DataSpec) -> SpecFieldError | None:
    """What `read_cifar10` would refuse about `data.root` before reading any file ('data.root: ...'),
    or None: synthetic data, a root holding CIFAR_DIR/, or one data.download would fill (the
    download's own failure is found only when it is tried)."""
    if spec.dataset != "cifar10":
        return None
    try:
        root = _data_root(spec)
    except SpecFieldError as exc:
        return exc
    return None if _downloads(spec.download, root) else _no_cifar_dir(root)


def data_problems(spec: DataSpec) -> list[SpecFieldError]:
    """What `load_data` would refuse about the CIFAR-10 copy under data.root: the folder itself
    (`root_problem`), or, reading its files as a run does (about a second for the full set), a
    file it cannot read (blamed on data.root), else each of a copy data.require_official refuses
    and a val_split the training images cannot hold (`read_refusals`; a run names the first). Empty
    for synthetic data (validation checks its sizes) and where a download would fill the folder
    (nothing is fetched)."""
    if spec.dataset != "cifar10":
        return []
    if (refusal := root_problem(spec)) is not None or _downloads(spec.download, _data_root(spec)):
        return [refusal] if refusal is not None else []
    try:  # download off: a folder filled since the check above is read, never fetched into
        _, train_y, _, _, _, files, base, _, _ = read_cifar10(spec.model_copy(update={"download": False}))
    except SpecFieldError as exc:
        return [exc]
    except InvalidInput as exc:
        return [SpecFieldError("data.root", str(exc))]
    except OSError as exc:  # e.g. a file that cannot even be looked at (permission denied)
        return [SpecFieldError("data.root", f"{exc.filename or spec.root}: {exc.strerror or exc}")]
    return read_refusals(spec, len(train_y), files, base)


def read_refusals(spec: DataSpec, n_train: int, files: dict[str, str], base: Path | None) -> list[SpecFieldError]:
    """What data, once read, is refused for: a copy under `base` whose `files` (CIFAR-10's file
    report; empty for synthetic data) data.require_official refuses, and a val_split not smaller
    than the `n_train` training images."""
    refusals = []
    if spec.require_official and any(status != "ok" for status in files.values()):
        refusals.append(SpecFieldError("data.require_official", f"{base}: {_unofficial_note(files)}"))
    if spec.val_split >= n_train:
        refusals.append(SpecFieldError("data.val_split", spec.val_split_too_large(n_train)))
    return refusals


def _data_root(spec: DataSpec) -> Path:
    """`data.root` with `~` expanded, absolute; SpecFieldError where it names no folder path."""
    try:
        return resolved_folder(spec.root)
    except ValueError as exc:
        raise SpecFieldError("data.root", str(exc)) from None


def _no_cifar_dir(root: Path) -> SpecFieldError | None:
    """The refusal of a data.root without CIFAR_DIR/ (after any download), or None."""
    try:
        return None if (root / CIFAR_DIR).is_dir() else SpecFieldError("data.root", f"{root} {_why_no_cifar_dir(root)}")
    except OSError as exc:
        return _unlookable(root, exc)


def _unlookable(root: Path, exc: OSError) -> SpecFieldError:
    """The refusal of a data.root that cannot be looked into (e.g. a folder on its way this
    user may not search: Path.is_dir raises PermissionError there rather than answering False)."""
    where = _first_unsearchable(root) or exc.filename or root
    return SpecFieldError("data.root", f"{root}: cannot be looked into: {where}: {exc.strerror or exc}")


def _first_unsearchable(path: Path) -> Path | None:
    """The outermost folder on `path`'s way this user may not search (the one to fix), or None
    where none shows (the OS refused for another reason)."""
    for p in (*reversed(path.parents), path):
        try:
            if p.is_dir() and not os.access(p, os.X_OK):
                return p
        except OSError:
            return None
    return None


def _why_no_cifar_dir(root: Path, setting: str = "data.root") -> str:
    """Why `root` (given as `setting`) holds no CIFAR_DIR/, with what to set instead when that
    is clear; the spec's data.root is also told of data.download."""
    download = ", or set data.download: true" if setting == "data.root" else ""
    if root.name == CIFAR_DIR and root.is_dir():
        return f"is the {CIFAR_DIR}/ folder itself; set {setting} to the folder that holds it, {root.parent}"
    if root.name == CIFAR_DIR and not root.exists():
        return (f"does not exist, and names the {CIFAR_DIR}/ folder itself; set {setting} to the folder that "
                f"holds (or is to hold) it, {root.parent}")  # fmt: skip
    if not root.exists():
        return f"does not exist; set {setting} to the folder that holds {CIFAR_DIR}/{download}"
    if not root.is_dir():
        return "is not a folder"
    if os.path.lexists(root / CIFAR_DIR):  # a file (the archive saved under the folder's name?), a dangling link
        what = not_a_file(root / CIFAR_DIR) or "a file"
        what = "a FIFO, socket or device" if what.startswith("not ") else what
        return (f"holds {CIFAR_DIR} as {what}, not a folder; extract the official cifar-10-python.tar.gz in {root} "
                "to make the folder")  # fmt: skip
    if loose := [name for name in _OFFICIAL_NAMES if os.path.lexists(root / name)]:  # the archive's files, unfolded
        return (f"holds CIFAR-10's files ({', '.join(loose)}) itself, not in a {CIFAR_DIR}/ folder: move them into "
                f"{root / CIFAR_DIR}/, the official layout")  # fmt: skip
    if nested := sorted(p.parent for p in root.glob(f"*/{CIFAR_DIR}") if p.is_dir()):  # one level too high
        return f"has no {CIFAR_DIR}/ folder, but {nested[0]} has one; set {setting} to {nested[0]}"
    return (
        f"has no {CIFAR_DIR}/ folder; expected the official CIFAR-10 python layout there "
        f"({OFFICIAL_FILES_TEXT}){download}"
    )


def why_no_cifar_dir(root: Path, setting: str) -> str | None:
    """Why the folder `root`, given as `setting` (an option: `--data-root`), holds no CIFAR-10 copy
    to read, or None where it holds a cifar-10-batches-py/ folder."""
    return None if (root / CIFAR_DIR).is_dir() else _why_no_cifar_dir(root, setting)


def _file_check(path: Path, md5: str) -> tuple[str, str | None]:
    """(status: "ok", "md5 mismatch" or "missing"; the file's sha256, None where missing)."""
    if (what := not_a_file(path)) is not None:
        raise InvalidInput(f"{path}: {what}, where CIFAR-10's {path.name} goes")
    if not path.is_file():
        return "missing", None
    try:
        found, sha256 = _digests(path)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None
    return ("ok" if found == md5 else "md5 mismatch"), sha256


def _file_status(path: Path, md5: str) -> str:
    """`_file_check`'s status alone."""
    return _file_check(path, md5)[0]


LABEL_NUMBERS = tuple(str(k) for k in range(10))  # the class names of a copy without batches.meta
MAX_CLASS_NAME = 100  # characters (CIFAR-10's longest is 10): a longer one is damage, not a name


def _read_classes(path: Path) -> tuple[str, ...]:
    """batches.meta's class names; the labels' numbers where it is missing (said in provenance)."""
    if (what := not_a_file(path)) is not None:
        raise InvalidInput(f"{path}: {what}, where CIFAR-10's {path.name} goes")
    if not path.is_file():
        return LABEL_NUMBERS
    meta = _unpickle(path, "batches.meta")
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise InvalidInput(f"{path}: expected a dict whose 'label_names' is a list of class names")
    if len(names) != 10 or len(set(names)) != 10:
        more = f", ... ({len(names) - 12:,} more)" if len(names) > 12 else ""
        shown = ", ".join(f"{n!r:.40}" for n in names[:12]) + more  # each cut: one may be a megabyte
        distinct = f", {len(set(names))} of them distinct" if len(set(names)) != len(names) else ""
        raise InvalidInput(f"{path}: 'label_names' must be 10 distinct class names, got {count(len(names), 'name')}"
                           f"{distinct}: [{shown}]")  # fmt: skip
    if blank := [label for label, name in enumerate(names) if not name.strip()]:
        raise InvalidInput(f"{path}: 'label_names' gives label {blank[0]} a blank name ({names[blank[0]]!r}): every "
                           "class needs a name the sheet and the reports can show")  # fmt: skip
    if long := [label for label, name in enumerate(names) if len(name) > MAX_CLASS_NAME]:
        raise InvalidInput(f"{path}: 'label_names' gives label {long[0]} a name of {len(names[long[0]]):,} characters "
                           f"({names[long[0]]!r:.40}...): at most {MAX_CLASS_NAME}, a class name the sheet's tables "
                           "show on every row")  # fmt: skip
    return tuple(names)


def other_entries(base: Path) -> list[str] | None:
    """The entries of the data folder `base` that are no file of the official layout, sorted:
    what a user may have put there thinking it is read (`data_batch_6`, `data_batch_1.bak`).
    A byte that is not UTF-8 is shown as `\\xff` and a character that is not printable (a newline)
    as Python escapes it (`\\n`), so a name may read like another's that holds those characters
    literally. None where the folder cannot be listed."""
    official = {*_OFFICIAL_NAMES, OFFICIAL_README}
    try:
        names = [e.name for e in os.scandir(base) if e.name not in official]
    except OSError:
        return None
    shown = [n.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for n in names]
    return sorted("".join(c if c.isprintable() else ascii(c)[1:-1] for c in n) for n in shown)


def unread_note(prov: Provenance) -> str | None:
    """What a run says before training where its data folder holds entries it does not read (or
    could not be listed), or None."""
    if prov.root is None:
        return None
    return _unread_text(prov.root, prov.other_entries, prov.n_other_entries, "this run")


def _unread_text(base: str, others: Sequence[str] | None, n_others: int | None, reader: str) -> str | None:
    """The note on `n_others` entries of the folder `base` (None: it could not be listed) that
    `reader` ('this run', 'a run') does not read, naming the first `others`; None for none."""
    if n_others is None:
        return f"{base} could not be listed, so whether it holds files {reader} does not read is not known"
    if not n_others:
        return None
    names = first_of([f"'{name}'" for name in others or []], n_others)
    return f"{base} holds {names}, which {reader} does not read: it reads only the official files ({OFFICIAL_FILES_TEXT})"


def missing_note(prov: Provenance) -> str | None:
    """What a run says before training where its copy lacks official files it can do without (a
    training batch, batches.meta; a user test: a quarter of the images went untrained, said only on
    the sheet), or None."""
    if prov.root is None:
        return None
    return _missing_text(prov.root, [name for name, status in prov.files.items() if status == "missing"], "this run")


def _missing_text(base: str, missing: Sequence[str], reader: str) -> str | None:
    """The note on the official files `missing` from the folder `base` that `reader` ('this run', 'a
    run') does without; None for none."""
    if not missing:
        return None
    batches, total = sum(name.startswith("data_batch_") for name in missing), len(OFFICIAL_TRAIN)
    did = [f"trains on the other {total - batches} of the {total} training batches"] if batches else []
    did += ["names the classes by their labels' numbers"] if OFFICIAL_META["filename"] in missing else []
    return f"{base} lacks {', '.join(missing)}: {reader} {' and '.join(did)}; the copy is recorded as not the official CIFAR-10"


def data_notes(spec: DataSpec) -> list[str]:
    """What `validate` says of a valid spec's data folder that a run would say before training:
    entries of it no run reads (`other_entries`), official files it does without, or a download to come (which `validate` cannot
    try: a user test passed `--strict` on a machine without internet, where `run` failed at once);
    none for synthetic data or a data.root refused."""
    if spec.dataset != "cifar10" or root_problem(spec) is not None:
        return []
    if _downloads(spec.download, root := _data_root(spec)):
        return [(f"{root} holds no {CIFAR_DIR}/ yet, so `auditor run` first downloads the official CIFAR-10 archive "
                 "(about 170 MB) into it (data.download: true); whether this machine can reach the internet is not "
                 "tried here")]  # fmt: skip
    base = root / CIFAR_DIR
    if not base.is_dir():
        return []
    others = other_entries(base)
    unread = _unread_text(str(base), others, None if others is None else len(others), "a run")
    # A lost test_batch, or every training batch, is refused when the files are read (`data_problems`).
    optional = [name for name, _ in OFFICIAL_TRAIN] + [OFFICIAL_META["filename"]]
    missing = _missing_text(str(base), [name for name in optional if not os.path.lexists(base / name)], "a run")
    return [note for note in (unread, missing) if note]


def _unofficial_note(files: dict[str, str]) -> str:
    bad = {n: s for n, s in files.items() if s != "ok"}
    if not bad:
        return "all files match the official CIFAR-10 MD5s"
    parts = [f"{n} {s}" for n, s in sorted(bad.items())]
    return "NOT the official CIFAR-10: " + "; ".join(parts)


# --- synthetic --------------------------------------------------------------


def make_synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A learnable 10-class 32x32 set: class k is a grating at angle k*pi/10 with a tint.

    Per image: random frequency, phase, contrast and Gaussian pixel noise, so
    the task needs spatial features, not just the mean colour.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    theta = y * np.pi / 10 + rng.normal(0, 0.05, n)  # radians
    freq = rng.uniform(0.10, 0.25, n)  # cycles per pixel
    phase = rng.uniform(0, 2 * np.pi, n)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)  # (32, 32)
    proj = np.cos(theta)[:, None, None] * xx + np.sin(theta)[:, None, None] * yy
    wave = np.sin(2 * np.pi * freq[:, None, None] * proj + phase[:, None, None])  # (n,32,32)
    tint = 0.6 + 0.4 * np.stack([np.cos(y), np.sin(y), np.cos(2 * y)], 1)  # (n, 3)
    contrast = rng.uniform(40, 90, n)
    img = 128 + contrast[:, None, None, None] * tint[:, :, None, None] * wave[:, None]
    img += rng.normal(0, 25, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), y.astype(np.int64)


def _synthetic_arrays(spec: DataSpec) -> tuple[np.ndarray, ...]:
    # Fixed data seeds: the data set is the same whatever the run seed.
    tx, ty = make_synthetic(spec.synthetic.train, seed=1)
    vx, vy = make_synthetic(spec.synthetic.test, seed=2)
    return tx, ty, vx, vy


# --- assembling the bundle --------------------------------------------------


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the raw bytes of the given arrays, in order, each little-endian (the bytes of a
    little-endian machine, where every fingerprint so far was taken, on any machine)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def split_fingerprint(train: np.ndarray, val: np.ndarray) -> str:
    """sha256 of the split as drawn: int64 little-endian [len(train), len(val)], then the train
    indices, then the val indices, each in ascending order (positions in the training files, read
    in batch order)."""
    sizes = np.array([len(train), len(val)], dtype="<i8")
    return fingerprint(sizes, train.astype("<i8"), val.astype("<i8"))


def class_changes(then: Sequence[str], now: Sequence[str]) -> str:
    """'cat, dog (now dog, cat)': the class names that differ, by label, then and now."""
    pairs = [(a, b) for a, b in zip(then, now, strict=False) if a != b] or [(", ".join(then), ", ".join(now))]
    return f"{', '.join(a for a, _ in pairs)} (now {', '.join(b for _, b in pairs)})"


def normalization_kind(spec: DataSpec) -> str:
    """Which normalisation the spec uses, so the sheet can name it: the legacy std whatever the
    mean beside it, the CIFAR-10 statistics as the spec's defaults give them or as commonly
    written to 3 decimals ((0.491, 0.482, 0.447), (0.247, 0.243, 0.261)), else custom."""
    close = lambda a, b: all(abs(x - y) <= 1e-3 for x, y in zip(a, b))  # the constants' rounding, and 3 decimals'
    if close(spec.std, CIFAR10_STD_LEGACY):
        return "cifar10-legacy-std"
    if close(spec.mean, CIFAR10_MEAN) and close(spec.std, CIFAR10_STD):
        return "cifar10-correct"
    return "custom"


def split_train_val(n: int, val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of range(n) into (train indices, val indices), each sorted."""
    perm = torch.randperm(n, generator=generator(seed, "split")).numpy()
    return np.sort(perm[val:]), np.sort(perm[:val])


def load_data(spec: DataSpec, seed: int) -> DataBundle:
    """Read and split the data set named by the spec; raise InvalidInput on bad data."""
    if spec.dataset == "synthetic":
        tx, ty, sx, sy = _synthetic_arrays(spec)
        classes, files, base, root, official, downloaded, others = SYNTHETIC_CLASSES, {}, None, None, None, None, None
        sha256s = None
        note = "procedurally generated (auditor.data.make_synthetic), not CIFAR-10"
    else:
        tx, ty, sx, sy, classes, files, base, downloaded, sha256s = read_cifar10(spec)
        root, official, note = str(base), all(s == "ok" for s in files.values()), _unofficial_note(files)
        others = other_entries(base)
    if refusals := read_refusals(spec, len(ty), files, base):
        raise refusals[0]
    te = np.arange(len(sy))[: spec.limit_test] if spec.limit_test else np.arange(len(sy))
    test_fp = fingerprint(sx, sy)
    prov = Provenance(
        dataset=spec.dataset, root=root, official=official, files=files, note=note,
        fingerprint=fingerprint(tx, ty, sx, sy), n_train_files=len(ty), n_test_files=len(sy),
        normalization=normalization_kind(spec), test_fingerprint=test_fp,
        scored_test_fingerprint=test_fp if len(te) == len(sy) else fingerprint(sx[te], sy[te]),
        downloaded=downloaded, other_entries=None if others is None else tuple(others[:OTHER_ENTRIES_KEPT]),
        n_other_entries=None if others is None else len(others), file_sha256=sha256s,
    )  # fmt: skip
    tr, va = split_train_val(len(ty), spec.val_split, seed)
    tr = tr[: spec.limit_train] if spec.limit_train else tr
    train_x, val_x, test_x = tx[tr], tx[va], sx[te]  # copies, each made once
    test_keys, train_keys = image_keys(test_x), image_keys(train_x)
    prov = replace(prov, test_in_train=copies_of(train_x, test_x, test_keys, train_keys),
                   test_in_val=copies_of(val_x, test_x, test_keys), val_in_train=copies_of(train_x, val_x, None, train_keys),
                   split_fingerprint=split_fingerprint(tr, va))  # fmt: skip
    t = torch.from_numpy
    return DataBundle(
        train_x=t(train_x), train_y=t(ty[tr]), val_x=t(val_x), val_y=t(ty[va]),
        test_x=t(test_x), test_y=t(sy[te]), classes=tuple(classes), provenance=prov,
    )  # fmt: skip


# Fixed odd 64-bit weights (one per 8 pixel bytes of a 3x32x32 image): image_keys' hash.
_KEY_WEIGHTS = np.random.default_rng(0x5EED).integers(1, 2**63, size=3 * 32 * 32 // 8, dtype=np.uint64) | np.uint64(1)


def image_keys(x: np.ndarray) -> np.ndarray:
    """(N,) uint64: a hash of each uint8 image of x (N, 3, 32, 32), equal for equal pixels
    (a weighted sum of its 8-byte words, modulo 2**64; equal keys are confirmed byte by byte)."""
    return np.ascontiguousarray(x).reshape(len(x), -1).view(np.uint64) @ _KEY_WEIGHTS


def copies_of(
    pool: np.ndarray, x: np.ndarray, x_keys: np.ndarray | None = None, pool_keys: np.ndarray | None = None
) -> int:
    """How many images of x (N, 3, 32, 32) uint8 are pixel-for-pixel copies of an image in pool
    (`x_keys`, `pool_keys`: their `image_keys`, where already computed)."""
    if not len(pool) or not len(x):
        return 0
    x_keys = image_keys(x) if x_keys is None else x_keys
    pool_keys = image_keys(pool) if pool_keys is None else pool_keys
    order = np.argsort(pool_keys, kind="stable")
    sorted_keys = pool_keys[order]
    candidates = np.flatnonzero(np.isin(x_keys, pool_keys))  # almost never more than the true copies
    lo = np.searchsorted(sorted_keys, x_keys[candidates], "left")
    hi = np.searchsorted(sorted_keys, x_keys[candidates], "right")
    return sum(any(np.array_equal(pool[order[j]], x[i]) for j in range(a, b)) for i, a, b in zip(candidates, lo, hi))


# --- batches on the device ----------------------------------------------------


def augment(x: torch.Tensor, padding: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Per-sample random crop (zero padding) and horizontal flip of a uint8 batch.

    x: (B, C, H, W) uint8 on any device; the random parameters are drawn on the
    CPU from `gen` (so the stream is the same on every device) and applied as
    one gather on x's device. Equivalent to torchvision's RandomCrop(H,
    padding, fill=0) followed by RandomHorizontalFlip(p=0.5), per sample.
    """
    return apply_augment(x, augment_params(len(x), padding, hflip, gen).to(x.device), padding)


def augment_params(b: int, padding: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """(3, b) int64 on the CPU: each sample's crop offsets dy, dx in [0, 2*padding] and flip flag."""
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=gen)
    flip = torch.randint(0, 2, (b,), generator=gen) * int(hflip)
    return torch.stack([dy, dx, flip])


def apply_augment(x: torch.Tensor, params: torch.Tensor, padding: int) -> torch.Tensor:
    """Crop and flip uint8 x (B, C, H, W) per sample as `params` (3, B), on x's device, say."""
    b, c, h, w = x.shape
    dy, dx, flip = params
    if padding:
        x = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h  # (B, H)
    cols = dx[:, None] + torch.where(flip[:, None].bool(), w - 1 - ar_w, ar_w)  # (B, W)
    # Two gathers, rows then columns: the same bytes as one 4-index lookup, in half its time on a CPU.
    x = x.gather(2, rows[:, None, :, None].expand(b, c, h, x.shape[3]))  # (B, C, H, W+2p)
    return x.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # (B, C, H, W)


def normalize(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """uint8 (B,C,H,W) -> float32 normalised; mean/std are (1,C,1,1) on x's device."""
    out = (x.float() / 255.0 - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def norm_tensors(spec: DataSpec, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The spec's mean and std as (1, 3, 1, 1) float32 tensors on `device`."""
    def as_tensor(v: list[float]) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    return as_tensor(spec.mean), as_tensor(spec.std)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled sample order of one epoch (CPU int64)."""
    return torch.randperm(n, generator=generator(seed, "shuffle", epoch))


def epoch_augment_params(n: int, spec: DataSpec, seed: int, epoch: int, batch_size: int, start_step: int = 0) -> torch.Tensor:
    """(3, images of steps start_step..end) augmentation parameters of one epoch, on the CPU.

    Each step's columns come from that step's own generator, exactly as `augment`
    draws them, so a resumed epoch replays the same crops and flips.
    """
    a = spec.augment
    parts = [
        augment_params(min(batch_size, n - step * batch_size), a.crop_padding, a.hflip, generator(seed, "augment", epoch, step))
        for step in range(start_step, steps_per_epoch(n, batch_size))
    ]  # fmt: skip
    return torch.cat(parts, dim=1) if parts else torch.empty((3, 0), dtype=torch.long)


def train_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    spec: DataSpec,
    seed: int,
    epoch: int,
    batch_size: int,
    start_step: int = 0,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield (step, augmented uint8 images, labels) of one epoch from `start_step` on.

    x, y are resident on the training device. The sample order and every
    step's augmentation parameters cross from the host once per epoch (two
    copies of at most 32 bytes an image): on CUDA a copy from pageable host
    memory may wait for the stream, so none happens per step.
    """
    order = epoch_order(len(y), seed, epoch).to(x.device)
    params = epoch_augment_params(len(y), spec, seed, epoch, batch_size, start_step).to(x.device)
    first = start_step * batch_size  # params[:, 0] belongs to sample `first` of the order
    for step in range(start_step, steps_per_epoch(len(y), batch_size)):
        lo, hi = step * batch_size, min((step + 1) * batch_size, len(y))
        idx = order[lo:hi]
        yield step, apply_augment(x[idx], params[:, lo - first : hi - first], spec.augment.crop_padding), y[idx]


def read_test_set(root: str | Path) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], dict[str, Any]]:
    """Only the test batch (and class names) of a CIFAR-10 copy under `root`.

    Returns (images uint8 (N,3,32,32), labels int64, classes, provenance facts).
    """
    if not str(root):  # "" (as Path(""), the working directory) is a mistake: '.' says it
        raise InvalidInput("--data-root: empty; give the folder that holds cifar-10-batches-py/ ('.' for this one)")
    try:
        folder = resolved_folder(root)
    except ValueError as exc:
        raise InvalidInput(f"--data-root: {exc}") from None
    base = folder / CIFAR_DIR
    if not base.is_dir():
        raise InvalidInput(f"--data-root: {folder} {_why_no_cifar_dir(folder, '--data-root')}")
    path = base / "test_batch"
    if (what := not_a_file(path)) is not None or not path.is_file():
        raise InvalidInput(f"--data-root: {path}: {what or 'not found'} (expected the official CIFAR-10 python layout)")
    x, y = _read_batch(path)
    if not len(y):
        raise InvalidInput(f"{path}: holds no images")
    meta = base / OFFICIAL_META["filename"]
    # as a run's data.official: every file read is the official one (the names in batches.meta too)
    files = {"test_batch": _file_status(path, dict(OFFICIAL_TEST)["test_batch"]),
             meta.name: _file_status(meta, OFFICIAL_META["md5"])}  # fmt: skip
    classes = _read_classes(meta)
    facts = {"test_batch": str(path), "official": all(s == "ok" for s in files.values()), "files": files,
             "fingerprint": fingerprint(x, y), "meta_found": files[meta.name] != "missing"}  # fmt: skip
    return torch.from_numpy(x), torch.from_numpy(y), classes, facts
