"""Data: the real subset, provenance, split, augmentation, bad input, download boundary."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    CRASHES_NUMPY,
    SUBSET,
    assert_clean_error,
    fake_cifar_root,
    requires_subset,
    run_cli,
    sets,
)
from pydantic import ValidationError

from auditor import data as D
from auditor.errors import InvalidInput
from auditor.spec import DataSpec

# sha256 over the subset's train+test images and labels as read (see its SHA256SUMS).
SUBSET_FINGERPRINT = "0818e027d9247fd12b69b6ea40acd508d4717eba363422757805379c69c70aec"


def subset_spec(**kw: object) -> DataSpec:
    return DataSpec(root=str(SUBSET), **{"val_split": 0, **kw})


@requires_subset
def test_real_subset_loads_flagged_unofficial() -> None:
    b = D.load_data(subset_spec(), seed=0)
    assert b.sizes() == {"train": 4068, "val": 0, "test": 1017}
    assert b.train_x.dtype == torch.uint8 and b.train_x.shape[1:] == (3, 32, 32)
    for y in (b.train_y, b.test_y):
        assert y.dtype == torch.int64 and int(y.min()) == 0 and int(y.max()) == 9
    p = b.provenance
    assert p.official is False
    assert p.files["data_batch_5"] == "missing" and p.files["data_batch_1"] == "md5 mismatch"
    assert p.files["batches.meta"] == "ok"
    assert "NOT the official CIFAR-10" in p.note
    assert p.fingerprint == SUBSET_FINGERPRINT
    assert b.classes[:3] == ("airplane", "automobile", "bird")
    assert p.other_entries == () and p.n_other_entries == 0 and D.unread_note(p) is None
    # A user test: a copy that lacks a training batch trained on the rest, said only on the sheet.
    assert D.missing_note(p) == (f"{p.root} lacks data_batch_5: this run trains on the other 4 of the 5 training "
                                 "batches; the copy is recorded as not the official CIFAR-10")  # fmt: skip
    assert D.data_notes(subset_spec()) == [D.missing_note(p).replace("this run", "a run")]  # validate's, unread
    # Each file's sha256 as read: those the copy's own SHA256SUMS lists (the missing data_batch_5 has none)
    listed = {name: digest for digest, name in (line.split() for line in (SUBSET / "SHA256SUMS").read_text().splitlines())}
    assert p.file_sha256 == listed and set(listed) == {name for name, status in p.files.items() if status != "missing"}
    # Real photographs, not noise: the per-channel mean is close to CIFAR-10's.
    mean = b.train_x.float().mean((0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.02)


@requires_subset
def test_require_official_rejects_the_subset() -> None:
    with pytest.raises(InvalidInput, match="data.require_official: .*NOT the official"):
        D.load_data(subset_spec(require_official=True), seed=0)


@requires_subset
def test_split_is_seeded_disjoint_and_sized() -> None:
    a = D.load_data(subset_spec(val_split=500), seed=1)
    b = D.load_data(subset_spec(val_split=500), seed=1)
    c = D.load_data(subset_spec(val_split=500), seed=2)
    assert a.sizes() == {"train": 3568, "val": 500, "test": 1017}
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    tr, va = D.split_train_val(4068, 500, seed=1)
    assert not set(tr) & set(va) and len(set(tr) | set(va)) == 4068


def test_the_split_fingerprint_and_class_counts_record_the_split_as_drawn() -> None:
    spec = DataSpec(dataset="synthetic", val_split=300)
    a, b, c = D.load_data(spec, 1), D.load_data(spec, 1), D.load_data(spec, 2)
    tr, va = D.split_train_val(a.provenance.n_train_files, 300, 1)
    sizes = np.array([len(tr), len(va)], dtype="<i8")
    assert a.provenance.split_fingerprint == hashlib.sha256(sizes.tobytes() + tr.astype("<i8").tobytes()
                                                            + va.astype("<i8").tobytes()).hexdigest()  # as documented
    assert a.provenance.split_fingerprint == b.provenance.split_fingerprint != c.provenance.split_fingerprint
    assert a.provenance.fingerprint == c.provenance.fingerprint  # the same images, split otherwise
    # the boundary between the lists counts: one image moved from train to val is another split
    assert D.split_fingerprint(tr[:-1], np.append(va, tr[-1])) != a.provenance.split_fingerprint
    limited = D.load_data(DataSpec(dataset="synthetic", val_split=300, limit_train=100), 1)
    assert limited.provenance.split_fingerprint == D.split_fingerprint(tr[:100], va)
    for bundle in (a, limited):
        counts = bundle.class_counts()
        assert {k: sum(v) for k, v in counts.items()} == bundle.sizes()
        assert counts["val"] == [int((bundle.val_y == k).sum()) for k in range(len(bundle.classes))]


def test_the_content_fingerprint_is_taken_as_the_sheet_says(tmp_path: Path) -> None:
    """The sheet: train images, train labels, test images, test labels, in that order; images
    uint8 (N, 3, 32, 32), labels int64 little-endian, on any machine (a user test: the byte order
    was the machine's)."""
    x = np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2)
    y = np.array([3, 7], dtype=np.int64)
    expected = hashlib.sha256(x.tobytes() + y.astype("<i8").tobytes()).hexdigest()
    assert D.fingerprint(x, y) == D.fingerprint(x, y.astype(">i8")) == expected
    assert D.fingerprint(x, y.astype(">i8")) != hashlib.sha256(x.tobytes() + y.astype(">i8").tobytes()).hexdigest()
    assert D.fingerprint(np.asfortranarray(x), y) == expected  # the bytes in C order, however the array is laid out
    root = fake_cifar_root(tmp_path)
    (tx, ty), (sx, sy) = (D._read_batch(root / D.CIFAR_DIR / f) for f in ("data_batch_1", "test_batch"))
    files = b"".join(a.tobytes() for a in (tx, ty.astype("<i8"), sx, sy.astype("<i8")))
    assert tx.shape == (20, 3, 32, 32) and tx.dtype == np.uint8
    assert D.load_data(DataSpec(root=str(root), val_split=5), 0).provenance.fingerprint == hashlib.sha256(files).hexdigest()


@requires_subset
def test_limit_train_caps_training_images_only() -> None:
    b = D.load_data(subset_spec(val_split=100, limit_train=256, limit_test=64), seed=0)
    assert b.sizes() == {"train": 256, "val": 100, "test": 64}


@requires_subset
def test_val_split_larger_than_data_is_invalid() -> None:
    with pytest.raises(InvalidInput, match=r"data.val_split: 5000 must be smaller than the 4,068 training images$"):
        D.load_data(subset_spec(val_split=5000), seed=0)
    unset = DataSpec(root=str(SUBSET))  # a spec that leaves it at its default (5000)
    with pytest.raises(InvalidInput, match=r"5000 \(the default, sized for CIFAR-10's 50,000 training images\) must be "
                                           r"smaller than the 4,068 training images; set data.val_split, e.g. 406$"):
        D.load_data(unset, seed=0)


def test_synthetic_is_deterministic_and_balanced() -> None:
    spec = DataSpec(dataset="synthetic", val_split=100)
    a, b = D.load_data(spec, 0), D.load_data(spec, 0)
    assert a.provenance.fingerprint == b.provenance.fingerprint
    assert a.provenance.official is None and a.sizes() == {"train": 1900, "val": 100, "test": 500}
    counts = torch.bincount(a.train_y, minlength=10)
    assert counts.min() > 120  # roughly balanced over 10 classes


def test_normalization_kind_flags_the_legacy_std() -> None:
    assert D.normalization_kind(DataSpec()) == "cifar10-correct"
    assert D.normalization_kind(DataSpec(std=[0.2023, 0.1994, 0.2010])) == "cifar10-legacy-std"
    assert D.normalization_kind(DataSpec(std=[0.5, 0.5, 0.5])) == "custom"
    assert D.normalization_kind(DataSpec(mean=[0.5, 0.5, 0.5])) == "custom"  # right std, wrong mean
    # As commonly written to 3 decimals: the same statistics, the same legacy std.
    three = {"mean": [0.491, 0.482, 0.447], "std": [0.247, 0.243, 0.261]}
    assert D.normalization_kind(DataSpec(**three)) == "cifar10-correct"
    assert D.normalization_kind(DataSpec(mean=[0.491, 0.482, 0.447], std=[0.202, 0.199, 0.201])) == "cifar10-legacy-std"
    assert D.normalization_kind(DataSpec(mean=[0.5, 0.5, 0.5], std=[0.2023, 0.1994, 0.2010])) == "cifar10-legacy-std"
    assert D.normalization_kind(DataSpec(mean=[0.491, 0.482, 0.447], std=[0.25, 0.25, 0.25])) == "custom"


# --- augmentation ---------------------------------------------------------------


def _reference_crop_flip(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Per-image loop doing what torchvision's RandomCrop(pad, fill=0)+HFlip do."""
    b = len(x)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.randint(0, 2, (b,), generator=gen).bool()
    out = []
    for i in range(b):
        p = torch.nn.functional.pad(x[i], (pad,) * 4)[:, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        out.append(p.flip(-1) if flip[i] else p)
    return torch.stack(out)


def _images(n: int = 64) -> torch.Tensor:
    return torch.from_numpy(D.make_synthetic(n, seed=3)[0])


def test_augment_equals_per_image_reference() -> None:
    x = _images()
    got = D.augment(x, 4, True, D.generator(7, "augment", 0, 0))
    assert torch.equal(got, _reference_crop_flip(x, 4, D.generator(7, "augment", 0, 0)))


@pytest.mark.parametrize(("pad", "h", "w"), [(4, 24, 40), (0, 32, 32), (2, 5, 3)])
def test_apply_augment_crops_and_flips_each_image_of_any_size(pad: int, h: int, w: int) -> None:
    x = torch.randint(0, 256, (9, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(pad))
    params = D.augment_params(len(x), pad, True, torch.Generator().manual_seed(h))
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    want = []
    for i, (dy, dx, flip) in enumerate(params.T.tolist()):
        crop = padded[i, :, dy : dy + h, dx : dx + w]
        want.append(crop.flip(-1) if flip else crop)
    got = D.apply_augment(x, params, pad)
    assert got.shape == x.shape and got.is_contiguous() and torch.equal(got, torch.stack(want))


def test_augment_deterministic_per_seed_and_differs_across_seeds() -> None:
    x = _images()
    a = D.augment(x, 4, True, D.generator(1, "augment", 0, 0))
    b = D.augment(x, 4, True, D.generator(1, "augment", 0, 0))
    c = D.augment(x, 4, True, D.generator(2, "augment", 0, 0))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_distribution() -> None:
    """Offsets cover 0..2p uniformly-ish, half the images are flipped, padding is zero."""
    x = torch.full((4000, 3, 32, 32), 200, dtype=torch.uint8)
    x[..., :16] = 100  # left half darker, so a flip is visible
    out = D.augment(x, 4, True, D.generator(0, "dist"))
    flipped = (out[:, 0, 16, 20] == 100) & (out[:, 0, 16, 11] == 200)
    assert 0.45 < flipped.float().mean() < 0.55
    zero_rows = (out[:, 0, :, 16] == 0).sum(1)  # rows of padding seen at column 16: |dy - 4|
    hist = torch.bincount(zero_rows, minlength=5).float() / len(out)
    assert hist[0] == pytest.approx(1 / 9, abs=0.03)  # dy == 4: no padding row
    assert hist[1:5] == pytest.approx(torch.full((4,), 2 / 9), abs=0.03)
    assert torch.equal(D.augment(x, 0, False, D.generator(0, "x")), x)  # identity when off


def test_train_batches_replay_from_any_step() -> None:
    x, y = _images(300), torch.arange(300) % 10
    spec = DataSpec(dataset="synthetic", val_split=0)
    full = list(D.train_batches(x, y, spec, 5, epoch=2, batch_size=64))
    tail = list(D.train_batches(x, y, spec, 5, epoch=2, batch_size=64, start_step=3))
    assert len(full) == D.steps_per_epoch(300, 64) == 5
    for (s1, x1, y1), (s2, x2, y2) in zip(full[3:], tail, strict=True):  # every step left, none short
        assert s1 == s2 and torch.equal(x1, x2) and torch.equal(y1, y2)
    other = list(D.train_batches(x, y, spec, 5, epoch=3, batch_size=64))
    assert not torch.equal(full[0][2], other[0][2])  # a new order each epoch


def test_train_batches_are_augment_step_by_step() -> None:
    """Drawing an epoch's parameters up front keeps each step's stream: old checkpoints resume the same."""
    x, y = _images(300), torch.arange(300) % 10
    spec = DataSpec(dataset="synthetic", val_split=0, augment={"crop_padding": 3, "hflip": True})
    order = D.epoch_order(300, 5, 1)
    for step, xb, yb in D.train_batches(x, y, spec, 5, epoch=1, batch_size=64, start_step=1):
        idx = order[step * 64 : (step + 1) * 64]
        assert torch.equal(xb, D.augment(x[idx], 3, True, D.generator(5, "augment", 1, step))), step
        assert torch.equal(yb, y[idx])
    assert len(xb) == 300 - 4 * 64  # the short last batch too


def _transfers_per_epoch(n: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(Tensor.to calls while one epoch of train_batches is drawn, its steps)."""
    calls = [0]
    real = torch.Tensor.to

    def counting(self: torch.Tensor, *a, **k):
        calls[0] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "to", counting)
    steps = len(list(D.train_batches(_images(n), torch.arange(n) % 10, DataSpec(dataset="synthetic", val_split=0), 0, 0, 16)))
    monkeypatch.undo()
    return calls[0], steps


def test_host_to_device_copies_per_epoch_do_not_grow_with_its_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA a copy from pageable host memory may wait for the stream: none may happen per step."""
    short, long = _transfers_per_epoch(64, monkeypatch), _transfers_per_epoch(640, monkeypatch)
    assert long[1] == 10 * short[1] and short[0] == long[0] == 2  # the order and the parameters


def test_normalize_shapes_and_memory_format() -> None:
    x = _images(4)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
    out = D.normalize(x, mean, torch.full((1, 3, 1, 1), 0.25), channels_last=True)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out[0, 0, 0, 0], (x[0, 0, 0, 0] / 255 - 0.5) / 0.25)


# --- bad input ------------------------------------------------------------------


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def test_fake_copy_loads_as_unofficial(tmp_path: Path) -> None:
    b = D.load_data(DataSpec(root=str(fake_cifar_root(tmp_path)), val_split=5), 0)
    assert b.sizes() == {"train": 15, "val": 5, "test": 20}
    assert b.provenance.official is False and b.provenance.files["batches.meta"] == "missing"


def test_entries_of_the_data_folder_that_no_run_reads_are_recorded_and_said(tmp_path: Path) -> None:
    """A `data_batch_6` or a `.bak` copy put beside the official files is never read: the record says so."""
    base = fake_cifar_root(tmp_path) / D.CIFAR_DIR
    for name in ("data_batch_6", "data_batch_1.bak", "readme.html", "tab\there"):
        (base / name).write_bytes(b"")
    (base / "old").mkdir()
    os.close(os.open(os.fsencode(base) + b"/caf\xe9", os.O_CREAT | os.O_WRONLY))  # a Latin-1 name
    p = D.load_data(DataSpec(root=str(tmp_path), val_split=5), 0).provenance
    assert p.other_entries == ("caf\\xe9", "data_batch_1.bak", "data_batch_6", "old", "tab\\there")  # readme.html is official
    assert p.n_other_entries == 5
    assert D.unread_note(p) == (
        f"{base} holds 'caf\\xe9', 'data_batch_1.bak', 'data_batch_6', 'old', 'tab\\there', which this run does not "
        "read: it reads only the official files (data_batch_1..5, test_batch, batches.meta)")  # fmt: skip
    lacks = (f"{base} lacks data_batch_2, data_batch_3, data_batch_4, data_batch_5, batches.meta: a run trains on "
             "the other 1 of the 5 training batches and names the classes by their labels' numbers; the copy is "
             "recorded as not the official CIFAR-10")  # fmt: skip
    assert D.missing_note(p) == lacks.replace("a run", "this run")
    assert D.data_notes(DataSpec(root=str(tmp_path), val_split=5)) == [  # validate's, without reading the files
        D.unread_note(p).replace("which this run does not read", "which a run does not read"), lacks]
    assert D.data_notes(DataSpec(root=str(tmp_path / "nothing"), val_split=5)) == []  # refused: its warning says why
    # A user test: `validate --strict` passed a download to come without a word, where `run` failed at once offline
    empty = tmp_path / "fresh"
    assert D.data_notes(DataSpec(root=str(empty), val_split=5, download=True)) == [(
        f"{empty} holds no cifar-10-batches-py/ yet, so `auditor run` first downloads the official CIFAR-10 archive "
        "(about 170 MB) into it (data.download: true); whether this machine can reach the internet is not tried here")]
    assert not empty.exists()  # validate fetches nothing, and makes no folder
    for i in range(D.OTHER_ENTRIES_KEPT):
        (base / f"x{i:02d}").write_bytes(b"")
    p = D.load_data(DataSpec(root=str(tmp_path), val_split=5), 0).provenance
    assert len(p.other_entries) == D.OTHER_ENTRIES_KEPT and p.n_other_entries == D.OTHER_ENTRIES_KEPT + 5
    assert D.unread_note(p).endswith("'x14' and 5 more, which this run does not read: it reads only the official "
                                     "files (data_batch_1..5, test_batch, batches.meta)")  # fmt: skip
    synthetic = D.load_data(DataSpec(dataset="synthetic", synthetic={"train": 60, "test": 20}, val_split=10), 0)
    assert synthetic.provenance.other_entries is None and synthetic.provenance.n_other_entries is None
    assert D.unread_note(synthetic.provenance) is None and D.missing_note(synthetic.provenance) is None


def test_a_data_folder_that_cannot_be_listed_is_said_not_taken_for_one_holding_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing a folder whose files could be read can still fail (no read permission on it, for one)."""
    base = fake_cifar_root(tmp_path) / D.CIFAR_DIR
    assert D.other_entries(base) == []

    def refused(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(D.os, "scandir", refused)
    p = D.load_data(DataSpec(root=str(tmp_path), val_split=5), 0).provenance
    assert p.other_entries is None and p.n_other_entries is None and p.root == str(base)
    assert D.unread_note(p) == f"{base} could not be listed, so whether it holds files this run does not read is not known"
    assert D.data_notes(DataSpec(root=str(tmp_path), val_split=5))[0] == (
        f"{base} could not be listed, so whether it holds files a run does not read is not known")


def test_official_file_list_matches_torchvision() -> None:
    from torchvision.datasets import CIFAR10

    assert [list(t) for t in D.OFFICIAL_TRAIN] == CIFAR10.train_list
    assert [list(t) for t in D.OFFICIAL_TEST] == CIFAR10.test_list
    assert D.OFFICIAL_META == CIFAR10.meta and D.CIFAR_DIR == CIFAR10.base_folder
    with pytest.raises(TypeError):
        D.OFFICIAL_META["md5"] = "0" * 32  # type: ignore[index]


def test_reading_the_data_does_not_import_torchvision(tmp_path: Path) -> None:
    """torchvision's import drags in torch._dynamo (seconds); only the download path needs it."""
    code = (
        "import sys\n"
        "from auditor.data import load_data, read_test_set\n"
        "from auditor.spec import DataSpec\n"
        f"load_data(DataSpec(root={str(fake_cifar_root(tmp_path))!r}, val_split=5), 0)\n"
        f"read_test_set({str(tmp_path)!r})\n"
        "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _repeated_lists(depth: int) -> list:
    """A list of 1000 references to one list of 1000 references ... `depth` levels: 1000**depth
    values from a few KB of pickle."""
    x: list = [0] * 1000
    for _ in range(depth - 1):
        x = [x] * 1000
    return x


def _nested_data(depth: int) -> bytes:
    """A protocol 2 pickle of {"data": [[[...]]] `depth` lists deep, "labels": []}, written by opcode
    (pickle.dumps itself refuses to nest that deep)."""
    key = lambda k: b"X" + len(k).to_bytes(4, "little") + k  # BINUNICODE
    nested = b"]" * depth + b"a" * (depth - 1)  # EMPTY_LIST each, then APPEND each into the one before
    return b"\x80\x02}" + key(b"data") + nested + b"s" + key(b"labels") + b"]s."


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda base: shutil.rmtree(base), "has no cifar-10-batches-py/ folder"),
        (lambda base: (base / "test_batch").unlink(), "is missing test_batch$"),  # not the data_batch_5 it can do without
        (lambda base: [p.unlink() for p in base.glob("data_batch_*")], r"is missing every training batch \(data_batch_1..5; a run needs at least one\)$"),  # had said "a"
        (lambda base: (base / "data_batch_1").write_bytes(b"\x80\x04garbage"), "data_batch_1: not a readable"),
        (lambda base: (base / "data_batch_1").write_bytes(b""), "data_batch_1: empty \\(0 bytes\\), where a CIFAR-10 batch pickle goes"),
        # User tests: files laid out flat, or a folder one level too deep, were told of a download
        (lambda base: [p.rename(base.parent / p.name) for p in list(base.iterdir())] and base.rmdir(),
         r"holds CIFAR-10's files \(data_batch_1, test_batch\) itself, not in a cifar-10-batches-py/ folder: move them into "),
        (lambda base: (base.parent / "x").mkdir() or base.rename(base.parent / "x" / base.name),
         r"has no cifar-10-batches-py/ folder, but .*/x has one; set data.root to .*/x$"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})),
         r"'data' must be uint8 of shape \(N, 3072\)"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]})),
         "1 labels for 2 images"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]})),
         r"labels must be in 0..9"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": ["cat", 1]})),
         r"labels must be integers in 0..9, got <U\d+ \(e.g. 'cat'\)"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0.5, 1]})),
         "labels must be integers in 0..9, got float64"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [True, 1]})),
         r"labels must be integers in 0..9, got 1 true/false value \(e.g. True\)"),  # a user test: read as class 1
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [[0], [1]]})),
         r"'labels' must be a flat list of integers, got shape \(2, 1\)"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": None})),
         r"'labels' must be a flat list of integers, got shape \(\)"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [[0], [1, 2]]})),
         "'labels' is not a rectangular array"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8),
                                                                         "labels": _repeated_lists(4)})),
         r"'labels' repeats its own lists by reference \(1,000,000,000,000 values from a [\d,]+-byte file\)"),
        (lambda base: (base / "data_batch_1").write_bytes(_nested_data(5000)), "'data' is nested too deeply to be an array"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps(["not", "a", "dict"])), "expected a dict"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": shutil.rmtree, "labels": []})),
         "refusing to load shutil.rmtree"),
        (lambda base: (base / "data_batch_1").write_bytes(b"\x80\x02}K\x01a."),  # APPEND to a dict: AttributeError
         r"data_batch_1: not a readable CIFAR-10 batch pickle \('dict' object has no attribute 'append'\)"),
        (lambda base: (base / "test_batch").write_bytes(CRASHES_NUMPY), "test_batch: not a readable .*unexpected numpy dtype state"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [2**70, 1]})),
         r"labels must be integers in 0..9, got object \(e.g. 1180591620717411303424\)"),
        (lambda base: _replace(base / "data_batch_1", lambda p: p.mkdir()), "data_batch_1: a folder, where CIFAR-10's data_batch_1 goes"),
        (lambda base: _replace(base / "test_batch", lambda p: p.symlink_to(base / "gone")), "test_batch: a link to nothing"),
        (lambda base: _replace(base / "data_batch_1", os.mkfifo), "data_batch_1: not a regular file"),  # reading it would hang
        (lambda base: (base / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []})),
         "test_batch: holds no images$"),
        (lambda base: (base / "data_batch_1").write_bytes(pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []})),
         (r"data_batch_1: holds no images \(a CIFAR-10 training batch holds 10,000: the file was written empty, or "
          r"cut down to nothing\)$")),
        (lambda base: (base / "data_batch_2").write_bytes(pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []})),
         r"data_batch_2: holds no images \(a CIFAR-10 training batch"),  # beside a full one (a user test: trained on)
        (lambda base: (base / "batches.meta").write_bytes(pickle.dumps({"label_names": ["cat"] * 10})),
         r"batches.meta: 'label_names' must be 10 distinct class names, got 10 names, 1 of them distinct: \['cat', 'cat',"),
        (lambda base: (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(k) for k in range(11)]})),
         r"batches.meta: 'label_names' must be 10 distinct class names, got 11 names: \['0', '1', "),
        (lambda base: (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(100)]})),
         r"names, got 100 names: \['c0', 'c1', .*'c11', \.\.\. \(88 more\)\]$"),  # a user test: cut mid-list, no mark
        (lambda base: (base / "batches.meta").write_bytes(pickle.dumps({"label_names": "abcdefghij"})),
         "batches.meta: expected a dict whose 'label_names' is a list of class names"),
        (lambda base: (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [*"abc", " ", *"efghij"]})),
         r"batches.meta: 'label_names' gives label 3 a blank name \(' '\): every class needs a name"),
        (lambda base: (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [*"ab", "x" * 101, *"defghij"]})),
         (r"batches.meta: 'label_names' gives label 2 a name of 101 characters \('xxx+\.\.\.\): at most 100, a class "
          "name the sheet's tables show on every row")),  # a user test: 100,000 characters, repeated over 520 KB of sheet
    ],
    ids=["no-folder", "no-test-batch", "no-train-batch", "corrupt", "empty", "flat-files", "nested-folder", "shape", "label-count", "label-range", "label-str",
         "label-float", "label-bool", "label-nested", "label-none", "label-ragged", "label-bomb", "data-deep", "not-dict", "code", "attribute-error", "crafted-dtype",
         "label-huge", "folder", "dangling-link", "fifo", "no-test-images", "no-train-images", "one-empty-train-batch", "meta-repeats", "meta-11", "meta-100",
         "meta-str", "meta-blank", "meta-long"],
)  # fmt: skip
def test_bad_data_raises_with_file_and_expectation(tmp_path: Path, break_it, message: str) -> None:
    root = fake_cifar_root(tmp_path)
    break_it(root / D.CIFAR_DIR)
    with pytest.raises(InvalidInput, match=message):
        D.load_data(DataSpec(root=str(root), val_split=0), 0)


def test_missing_data_root_through_cli_exits_2(tmp_path: Path) -> None:
    proc = run_cli("run", "specs/resnet20_cifar10.yaml", *sets(f"data.root={tmp_path / 'nowhere'}"), "--out", str(tmp_path))
    assert_clean_error(proc, "data.root:", "nowhere does not exist; set data.root to the folder that holds")
    assert not (tmp_path / "reports").exists() and not (tmp_path / "checkpoints").exists()


def test_a_home_folder_of_no_user_is_bad_input_not_a_crash() -> None:
    """`~nouser/cifar` made pathlib raise RuntimeError: a traceback with exit 1, which CI reads as a failed gate."""
    said = re.escape("~auditor-no-such-user/cifar: ~auditor-no-such-user names no home folder here (no such user)")
    with pytest.raises(InvalidInput, match=f"^data.root: {said}$"):
        # As a recorded spec holds it (a new one is refused by validation already)
        D.load_data(DataSpec.model_validate({"root": "~auditor-no-such-user/cifar"}, context={"recorded": True}), 0)
    with pytest.raises(InvalidInput, match=f"^--data-root: {said}$"):
        D.read_test_set("~auditor-no-such-user/cifar")


@pytest.mark.parametrize("what", ["a folder", "a link to nothing"])
def test_what_stands_where_batches_meta_goes_is_refused_by_evaluate_too(tmp_path: Path, what: str) -> None:
    root = fake_cifar_root(tmp_path)
    meta = root / D.CIFAR_DIR / "batches.meta"
    meta.unlink(missing_ok=True)
    meta.mkdir() if what == "a folder" else meta.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidInput, match=rf"^{meta}: {what}, where CIFAR-10's batches.meta goes$"):
        D.read_test_set(root)
    with pytest.raises(InvalidInput, match=rf"^{meta}: {what}, where CIFAR-10's batches.meta goes$"):
        D.load_data(DataSpec(root=str(root), val_split=5), 0)


def test_the_test_set_fingerprint_is_the_one_evaluate_prints_for_the_same_copy(tmp_path: Path) -> None:
    root = fake_cifar_root(tmp_path)
    bundle = D.load_data(DataSpec(root=str(root), val_split=5), 0)
    *_, facts = D.read_test_set(root)
    assert bundle.provenance.test_fingerprint == facts["fingerprint"] != bundle.provenance.fingerprint


def test_a_data_root_that_is_not_the_folder_holding_the_set_says_what_to_set(tmp_path: Path) -> None:
    root = fake_cifar_root(tmp_path)
    inner = root / D.CIFAR_DIR
    with pytest.raises(InvalidInput, match=f"is the {D.CIFAR_DIR}/ folder itself; set data.root to the folder that holds it, {root}$"):
        D.load_data(DataSpec(root=str(inner), val_split=0), 0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="file is not a folder"):
        D.load_data(DataSpec(root=str(tmp_path / "file"), val_split=0), 0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=f"empty has no {D.CIFAR_DIR}/ folder; expected the official"):
        D.load_data(DataSpec(root=str(tmp_path / "empty"), val_split=0), 0)
    with pytest.raises(InvalidInput, match=f"{tmp_path / 'nowhere' / D.CIFAR_DIR} does not exist"):
        D.load_data(DataSpec(root=str(tmp_path / "nowhere" / D.CIFAR_DIR), val_split=0), 0)
    with pytest.raises(ValidationError, match="root: empty; give the folder"):  # not silently the working directory
        DataSpec(root="", val_split=0)


def test_root_problem_says_before_reading_what_reading_would_refuse(tmp_path: Path) -> None:
    root = fake_cifar_root(tmp_path)
    assert D.root_problem(DataSpec(root=str(root))) is None
    assert D.root_problem(DataSpec(dataset="synthetic", root=str(tmp_path / "nowhere"), val_split=0)) is None
    inner = DataSpec(root=str(root / D.CIFAR_DIR))
    said = str(D.root_problem(inner))
    assert said == f"data.root: {root / D.CIFAR_DIR} is the {D.CIFAR_DIR}/ folder itself; set data.root to the folder that holds it, {root}"
    with pytest.raises(InvalidInput) as exc:
        D.load_data(inner, 0)
    assert str(exc.value) == said  # the same words as the stage's
    assert str(D.root_problem(DataSpec(root=str(tmp_path / "nowhere")))).endswith("does not exist; set data.root to the "
                                                                            f"folder that holds {D.CIFAR_DIR}/, or set data.download: true")  # fmt: skip
    assert D.root_problem(DataSpec(root=str(tmp_path / "nowhere"), download=True)) is None  # a download would fill it
    (tmp_path / "file").write_text("x")
    assert str(D.root_problem(DataSpec(root=str(tmp_path / "file"), download=True))) == f"data.root: {tmp_path / 'file'} is not a folder"


def test_a_root_that_cannot_be_looked_into_is_blamed_on_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder on the way this user may not search: Path.is_dir raises PermissionError (Python
    3.11) rather than answering False. It is refused as data.root's problem (validate warns and
    goes on; run exits 2 naming the field), with or without a download asked for. Root, as the
    tests run, may search anything, so the refusal is stood in for."""
    locked = tmp_path / "locked"
    real_is_dir = Path.is_dir

    def is_dir(self: Path) -> bool:
        if self == locked or locked in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    for download in (False, True):
        spec = DataSpec(root=str(locked / "inner"), download=download, val_split=0)
        said = str(D.root_problem(spec))
        assert said.startswith(f"data.root: {locked / 'inner'}: cannot be looked into: {locked / 'inner'}")
        assert said.endswith(": Permission denied")
        assert [str(p) for p in D.data_problems(spec)] == [said]
        with pytest.raises(InvalidInput) as exc:
            D.load_data(spec, 0)
        assert str(exc.value) == said

def test_a_download_never_goes_into_the_sets_own_folder_or_over_a_file_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("downloaded")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", never)
    root = fake_cifar_root(tmp_path)
    inner = DataSpec(root=str(root / D.CIFAR_DIR), download=True)  # would nest a second copy inside the first
    with pytest.raises(InvalidInput, match=f"is the {D.CIFAR_DIR}/ folder itself; set data.root to the folder that holds it, {root}$"):
        D.load_data(inner, 0)
    gone = DataSpec(root=str(tmp_path / "new" / D.CIFAR_DIR), download=True)
    with pytest.raises(InvalidInput, match=f"does not exist, and names the {D.CIFAR_DIR}/ folder itself; set data.root "
                                           f"to the folder that holds \\(or is to hold\\) it, {tmp_path / 'new'}$"):  # fmt: skip
        D.load_data(gone, 0)
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / D.CIFAR_DIR).write_bytes(b"\x1f\x8b")  # the .tar.gz saved under the folder's name
    said = (f"data.root: {archive} holds {D.CIFAR_DIR} as a file, not a folder; extract the official "
            f"cifar-10-python.tar.gz in {archive} to make the folder")  # fmt: skip
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / D.CIFAR_DIR)  # never read: it would block
    assert str(D.root_problem(DataSpec(root=str(fifo)))) == (
        f"data.root: {fifo} holds {D.CIFAR_DIR} as a FIFO, socket or device, not a folder; extract the official "
        f"cifar-10-python.tar.gz in {fifo} to make the folder")  # fmt: skip
    for download in (False, True):
        assert str(D.root_problem(DataSpec(root=str(archive), download=download))) == said
        with pytest.raises(InvalidInput) as exc:
            D.load_data(DataSpec(root=str(archive), download=download, val_split=0), 0)
        assert str(exc.value) == said


def test_download_failure_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: the downloader's failure becomes InvalidInput naming the root."""
    import torchvision.datasets

    calls = []

    def offline(self, root: str, train: bool, download: bool) -> None:
        calls.append((root, download))
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", offline)
    with pytest.raises(InvalidInput, match="data.download: could not download CIFAR-10 into .*network unreachable"):
        D.load_data(DataSpec(root=str(tmp_path), download=True), 0)
    assert calls == [(str(tmp_path.resolve()), True)]


def test_a_failed_download_removes_the_root_it_made_and_a_file_as_root_is_not_downloaded_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets

    calls = []

    def offline(self, root: str, train: bool, download: bool) -> None:
        calls.append(root)
        Path(root).mkdir(parents=True, exist_ok=True)  # as torchvision does before fetching
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", offline)
    with pytest.raises(InvalidInput, match="could not download"):
        D.load_data(DataSpec(root=str(tmp_path / "new"), download=True), 0)
    assert calls and not (tmp_path / "new").exists()  # no empty folder left behind
    with pytest.raises(InvalidInput, match="could not download"):
        D.load_data(DataSpec(root=str(tmp_path / "a" / "b" / "c"), download=True), 0)
    assert not (tmp_path / "a").exists()  # nor the parents made for it
    (tmp_path / "kept").mkdir()
    with pytest.raises(InvalidInput, match="could not download"):
        D.load_data(DataSpec(root=str(tmp_path / "kept"), download=True), 0)
    assert (tmp_path / "kept").is_dir()  # the user's folder stays
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="data.root: .*file is not a folder$"):
        D.load_data(DataSpec(root=str(tmp_path / "file"), download=True), 0)
    assert len(calls) == 3


def test_evaluate_data_root_is_checked_as_data_root_is(tmp_path: Path) -> None:
    root = fake_cifar_root(tmp_path / "copy")
    assert len(D.read_test_set(root)[1]) == 20
    with pytest.raises(InvalidInput, match=r"--data-root: empty; give the folder"):
        D.read_test_set("")
    with pytest.raises(InvalidInput, match=f"is the {D.CIFAR_DIR}/ folder itself; set --data-root to the folder that holds it, {root}$"):
        D.read_test_set(root / D.CIFAR_DIR)
    with pytest.raises(InvalidInput, match=f"nowhere does not exist; set --data-root to the folder that holds {D.CIFAR_DIR}/$"):
        D.read_test_set(tmp_path / "nowhere")
    (root / D.CIFAR_DIR / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []}))
    with pytest.raises(InvalidInput, match="test_batch: holds no images$"):
        D.read_test_set(root)
    _replace(root / D.CIFAR_DIR / "test_batch", lambda p: p.mkdir())
    with pytest.raises(InvalidInput, match="test_batch: a folder"):
        D.read_test_set(root)


def test_download_success_path_reads_what_the_downloader_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def fake_download(self, root: str, train: bool, download: bool) -> None:
        fake_cifar_root(Path(root))

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", fake_download)
    b = D.load_data(DataSpec(root=str(tmp_path / "dl"), download=True, val_split=0), 0)
    assert b.sizes()["test"] == 20
    assert b.provenance.downloaded is True  # the sheet says this run downloaded them


def test_download_not_attempted_when_data_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("downloader called although the data is present")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", boom)
    root = fake_cifar_root(tmp_path)
    assert D.load_data(DataSpec(root=str(root), download=True, val_split=0), 0).provenance.downloaded is False
    assert D.load_data(DataSpec(root=str(root), val_split=0), 0).provenance.downloaded is False
    assert D.load_data(DataSpec(dataset="synthetic", val_split=0), 0).provenance.downloaded is None


def test_a_loop_of_links_as_the_data_root_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    """Python 3.11's Path.resolve() raises RuntimeError on a loop: it was a traceback with exit 1."""
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    with pytest.raises(InvalidInput, match=f"^data.root: {re.escape(str(tmp_path / 'l1'))}: a loop of symbolic links$"):
        D.load_data(DataSpec(root=str(tmp_path / "l1")), 0)
    with pytest.raises(InvalidInput, match=f"^--data-root: {re.escape(str(tmp_path / 'l1'))}: a loop of symbolic links$"):
        D.read_test_set(tmp_path / "l1")


def test_copies_of_counts_exact_pixel_copies_only(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    fresh = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    nudged = pool[:2].copy()
    nudged[:, 0, 0, 0] ^= 1  # one bit off: not a copy
    x = np.concatenate([pool[[3, 7, 7]], fresh, nudged])
    assert D.copies_of(pool, x) == 3 and D.copies_of(pool, pool) == 50
    assert D.copies_of(pool[:0], x) == 0 and D.copies_of(pool, x[:0]) == 0
    # every key the same (a hash collision everywhere): the bytes still decide
    monkeypatch.setattr(D, "image_keys", lambda imgs: np.zeros(len(imgs), dtype=np.uint64))
    assert D.copies_of(pool, x) == 3


def test_val_images_found_in_the_train_split_are_recorded(tmp_path: Path) -> None:
    """The selection accuracy counts such images although the model trained on them."""
    root = fake_cifar_root(tmp_path, n=40)
    assert D.load_data(DataSpec(root=str(root), val_split=10), 0).provenance.val_in_train == 0
    batch = pickle.loads((root / D.CIFAR_DIR / "data_batch_1").read_bytes())
    batch["data"][20:] = batch["data"][:20]  # images 20..39 repeat 0..19
    (root / D.CIFAR_DIR / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=4))
    b = D.load_data(DataSpec(root=str(root), val_split=10), 0)
    assert b.provenance.val_in_train == D.copies_of(b.train_x.numpy(), b.val_x.numpy()) > 0
    assert D.load_data(DataSpec(root=str(root), val_split=0), 0).provenance.val_in_train == 0


def test_test_images_found_in_the_train_or_val_split_are_recorded(tmp_path: Path) -> None:
    """A test_batch that is a copy of a training batch (a packaging slip) had passed unremarked."""
    root = fake_cifar_root(tmp_path, n=40)
    base = root / D.CIFAR_DIR
    clean = D.load_data(DataSpec(root=str(root), val_split=10), 0).provenance
    assert (clean.test_in_train, clean.test_in_val) == (0, 0)
    shutil.copy(base / "data_batch_1", base / "test_batch")
    copied = D.load_data(DataSpec(root=str(root), val_split=10), 0).provenance
    assert (copied.test_in_train, copied.test_in_val) == (30, 10)  # every test image, wherever the split put it
    limited = D.load_data(DataSpec(root=str(root), val_split=10, limit_train=5, limit_test=20), 0)
    assert limited.provenance.test_in_train == D.copies_of(limited.train_x.numpy(), limited.test_x.numpy())
    assert limited.provenance.test_in_train + limited.provenance.test_in_val <= 20


def test_the_content_fingerprint_covers_every_training_image_before_the_split_and_limits() -> None:
    """A user test: the sheet's row said "train images", while the fingerprint covers every image
    of the training files (the val split and what limit_train drops included); the row says so now."""
    from auditor.spec import load_spec

    whole = D.load_data(load_spec("smoke").data, seed=0).provenance.fingerprint
    cut = load_spec("smoke", ["data.limit_train=500", "data.val_split=100", "data.limit_test=50"]).data
    assert D.load_data(cut, seed=0).provenance.fingerprint == whole
