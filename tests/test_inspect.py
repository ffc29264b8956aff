"""Tests for `auditor.inspect`: a checkpoint's model rebuilt from its embedded spec, and its checks.

The CLI commands (`evaluate`, `measure`) are tested end to end in test_cli.py on a trained run.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import fake_cifar_root

import auditor
from auditor import checkpoint, measure
from auditor import inspect as auditor_inspect
from auditor.errors import InvalidInput
from auditor.models import build_model
from auditor.spec import Spec, load_spec, resolved_dict, short_value, spec_hash
from auditor.words import count


@pytest.fixture
def spec() -> Spec:
    return load_spec("smoke", ["model.name=resnet8"])


def save_checkpoint(path: Path, spec: Spec, changes: dict[str, object] | None = None) -> Path:
    torch.manual_seed(0)
    state = {"model": build_model(spec.model).state_dict(), "spec": resolved_dict(spec), "spec_hash": spec_hash(spec)}
    checkpoint.save(path, {**state, **(changes or {})})
    return path


def test_the_model_comes_back_from_the_embedded_spec_with_its_weights(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    loaded = auditor_inspect.model_from_checkpoint(path)
    got_spec, model, recorded = loaded.spec, loaded.model, loaded.spec_hash
    assert spec_hash(got_spec) == recorded == spec_hash(spec) and loaded.warnings == []
    saved = checkpoint.load(path)["model"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert auditor_inspect.evaluation_warnings(got_spec, model) == [
        "the model was trained on synthetic data, whose classes are not CIFAR-10's: this accuracy says nothing about the run"
    ]  # fmt: skip


def test_a_checkpoint_of_a_run_that_later_checks_would_refuse_still_loads(tmp_path: Path, spec: Spec) -> None:
    """Checks added after runs recorded such specs guard new runs only: evaluate and measure read the run."""
    recorded = resolved_dict(spec)
    recorded["name"] = "sweep.failed"  # before .failed was reserved
    recorded["train"]["schedule"] |= {"name": "multistep", "milestones": [1, 1]}  # before milestones had to differ
    recorded["data"]["require_official"] = True  # before synthetic data refused it
    path = save_checkpoint(tmp_path / "best.pt", spec, {"spec": recorded})
    assert auditor_inspect.model_from_checkpoint(path).spec.name == "sweep.failed"
    recorded["train"]["schedule"]["milestones"] = [2, 1]  # refused by every version: still refused
    path = save_checkpoint(tmp_path / "other.pt", spec, {"spec": recorded})
    with pytest.raises(InvalidInput, match=r"other.pt \(embedded spec\): train.schedule.milestones: must be increasing"):
        auditor_inspect.model_from_checkpoint(path)


def test_a_copied_checkpoint_without_its_digest_loads_but_a_damaged_one_does_not(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    loaded = auditor_inspect.model_from_checkpoint(path)
    assert loaded.integrity == "sha256 matches best.pt.sha256" and loaded.warnings == []
    checkpoint.digest_path(path).unlink()  # travelled alone
    loaded = auditor_inspect.model_from_checkpoint(path)
    assert loaded.integrity == "not checked: no best.pt.sha256 beside it, but its zip entries pass their CRC-32 checks"
    # A user test: `evaluate --strict` passed it; nothing ties these bytes to the run's, so it warns
    said = ("no best.pt.sha256 came with it, so its bytes are not checked against the digest the run wrote (a zip "
            "archive's CRC-32s, where it has them, find damage, not another file): copy the digest file with the "
            "checkpoint")  # where it has none (a legacy file), its integrity line says no CRC-32 checked it (a user test)
    assert loaded.warnings == [said]
    assert auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["integrity"].startswith("not checked")
    path = save_checkpoint(tmp_path / "last.pt", spec)
    checkpoint.digest_path(path).write_text("0" * 64 + "  last.pt\n")
    fix = ("; the file changed after the run wrote it, or the digest file is another file's: copy the checkpoint and "
           "its digest file again from where the run wrote them")
    with pytest.raises(InvalidInput, match="last.pt: checkpoint is not intact: sha256 mismatch") as err:
        auditor_inspect.model_from_checkpoint(path)
    assert str(err.value).endswith(", recorded 000000000000)" + fix)  # a user test: the mismatch came with no fix
    checkpoint.digest_path(path).write_text("0" * 64 + "  best.pt\n")  # another checkpoint's digest, renamed along
    with pytest.raises(InvalidInput) as err:
        auditor_inspect.model_from_checkpoint(path)
    assert str(err.value).endswith(", recorded 000000000000, for best.pt)" + fix)
    for own in ("checkpoints/smoke/last.pt", "*last.pt"):  # its own name, with a folder or sha256sum's binary mark
        checkpoint.digest_path(path).write_text(f"{'0' * 64}  {own}\n")
        with pytest.raises(InvalidInput) as err:
            auditor_inspect.model_from_checkpoint(path)
        assert ", for " not in str(err.value)
    spaced = save_checkpoint(tmp_path / "my best.pt", spec)  # a name with a space is one name
    checkpoint.digest_path(spaced).write_text("0" * 64 + "  my best.pt\n")
    with pytest.raises(InvalidInput) as err:
        auditor_inspect.model_from_checkpoint(spaced)
    assert ", for " not in str(err.value)


def test_a_damaged_checkpoint_without_its_digest_is_refused_by_its_zip_crcs(tmp_path: Path, spec: Spec) -> None:
    """The user test: 200 bytes flipped in a copied best.pt (no .sha256 beside it) had loaded as other
    weights, and evaluate had printed their accuracy with exit 0."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    checkpoint.digest_path(path).unlink()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(b ^ 0xFF for b in data[middle : middle + 200])
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"best.pt: checkpoint is damaged: its archive entry \S+ fails the CRC-32 "
                                           r"check the archive records for it \(and no best.pt.sha256 is there"):
        auditor_inspect.model_from_checkpoint(path)
    with pytest.raises(InvalidInput, match="checkpoint is damaged"):
        auditor_inspect.measure_checkpoint(path, "cpu", iters=5)


def _central_entry(data: bytes, name: bytes) -> int:
    """Offset of the central-directory record of the entry named `name`."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + name_len] == name:
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError("no such entry")


@pytest.mark.parametrize(("offset", "value", "what"), [
    (8, b"\x01\x00", "the encrypted flag (zipfile raises RuntimeError)"),
    (10, b"\x08\x00", "deflate as the method of a stored entry (zlib.error)"),
])  # fmt: skip
def test_a_damaged_zip_header_is_refused_as_damaged_not_a_traceback(
    tmp_path: Path, spec: Spec, offset: int, value: bytes, what: str
) -> None:
    """The review: testzip let these through as RuntimeError and zlib.error, a traceback (exit 1)."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    checkpoint.digest_path(path).unlink()
    data = bytearray(path.read_bytes())
    name = next(i.filename for i in zipfile.ZipFile(path).infolist() if i.filename.endswith("/data/0"))
    at = _central_entry(bytes(data), name.encode()) + offset
    data[at : at + 2] = value
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"best.pt: checkpoint is damaged: its archive entry \S+/data/0 fails the "):
        auditor_inspect.model_from_checkpoint(path)


@pytest.mark.parametrize(("offset", "value", "raised"), [
    (28, None, "UnicodeDecodeError"),  # the name's length: the name read cut elsewhere (a traceback in load_failure)
    (6, b"\x5a\x00", "NotImplementedError: zip file version 9.0"),  # "version needed": torch loads it all the same
])  # fmt: skip
def test_a_zip_directory_python_cannot_read_is_refused_as_damaged_not_loaded_unchecked(
    tmp_path: Path, spec: Spec, offset: int, value: bytes | None, raised: str
) -> None:
    """A user test: such a file without its digest was a traceback (exit 1), or loaded with a flipped
    weight byte and no CRC-32 checked (exit 0, "not checked" with no word why)."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    checkpoint.digest_path(path).unlink()
    data = bytearray(path.read_bytes())
    names = [i.filename for i in zipfile.ZipFile(path).infolist()]
    at = _central_entry(bytes(data), names[-2].encode()) + offset
    data[at : at + 2] = value if value is not None else bytes([data[at] ^ 0x5A, data[at + 1]])
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=(rf"best.pt: checkpoint is damaged: its zip archive's directory cannot be "
                                            rf"read \({re.escape(raised)}")) as err:  # fmt: skip
        auditor_inspect.model_from_checkpoint(path)
    assert "and no best.pt.sha256 is there to compare with" in str(err.value)


def test_a_truncated_checkpoint_without_its_digest_is_said_cut_short(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    checkpoint.digest_path(path).unlink()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidInput, match=re.escape("best.pt: checkpoint is damaged: its zip archive's directory cannot be "
                                                     "read (no end-of-archive record was found: the file was cut short")):
        auditor_inspect.model_from_checkpoint(path)


def test_a_checkpoint_in_torch_legacy_format_says_no_crc_checks_it(tmp_path: Path, spec: Spec) -> None:
    """A user test: it loaded "not checked", with no word that no CRC-32 could check it."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(path, weights_only=False), legacy, _use_new_zipfile_serialization=False)
    assert auditor_inspect.model_from_checkpoint(legacy).integrity == (
        "not checked: no legacy.pt.sha256 beside it, and it is not a zip archive (a run writes one; torch.save's legacy "
        "format is not), so no CRC-32 checks its bytes")


def test_a_stale_unfinished_write_digest_is_named_not_a_missing_one(tmp_path: Path, spec: Spec) -> None:
    """A user test: a `.sha256.next` of another file beside a checkpoint without its `.sha256` was
    refused as "no digest file", which alone is only a note; the file that refused it went unnamed."""
    path = save_checkpoint(tmp_path / "g.pt", spec)
    checkpoint.digest_path(path).unlink()
    checkpoint.next_digest_path(path).write_text("0" * 64 + "  g.pt\n")
    with pytest.raises(InvalidInput, match=re.escape("g.pt: checkpoint is not intact: g.pt.sha256.next, the digest of an "
                                                     "unfinished write of it, does not match it, and no g.pt.sha256 is "
                                                     "there")):  # fmt: skip
        auditor_inspect.model_from_checkpoint(path)


def test_entries_written_without_a_crc_are_not_called_damaged(tmp_path: Path, spec: Spec) -> None:
    """torch writes a CRC-32 of 0 when its compute_crc32 setting is off: such a file loads, its
    other entries are still checked, and the integrity line says what was not."""
    from torch.utils.serialization import config

    path = tmp_path / "best.pt"
    torch.manual_seed(0)
    state = {"model": build_model(spec.model).state_dict(), "spec": resolved_dict(spec), "spec_hash": spec_hash(spec)}
    saved = config.save.compute_crc32
    config.save.compute_crc32 = False
    try:
        torch.save(state, path)
    finally:
        config.save.compute_crc32 = saved
    assert auditor_inspect.model_from_checkpoint(path).integrity == (
        "not checked: no best.pt.sha256 beside it, and its zip archive records no CRC-32s to check its entries against")
    assert checkpoint.zip_crcs(path) == checkpoint.ZipCrcs(False, None, checkpoint.zip_crcs(path).note)
    mixed = save_checkpoint(tmp_path / "mixed.pt", spec)  # every CRC-32 recorded; all but one set to 0, as above
    data = bytearray(mixed.read_bytes())
    infos = zipfile.ZipFile(mixed).infolist()
    for info in infos[1:]:
        for at in (info.header_offset + 14, _central_entry(bytes(data), info.filename.encode()) + 16):
            data[at : at + 4] = b"\0\0\0\0"
    mixed.write_bytes(bytes(data))
    assert checkpoint.zip_crcs(mixed) == checkpoint.ZipCrcs(True, None, f", except {len(infos) - 1} entries written without one")
    assert not checkpoint.zip_crcs(tmp_path).checked  # a folder: no archive to check (loading says why)


def test_a_link_to_a_checkpoint_is_checked_against_the_digest_beside_its_target(tmp_path: Path, spec: Spec) -> None:
    """Through a link the digest file was looked up beside the link, not found, and a corrupt file measured."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    link = tmp_path / "latest.pt"
    link.symlink_to(path.name)
    assert auditor_inspect.model_from_checkpoint(link).integrity == (
        f"sha256 matches best.pt.sha256 (beside {path.resolve()}, which {link} links to)")
    other = save_checkpoint(tmp_path / "other.pt", spec, {"global_step": 3})  # a user test: a contrary digest beside
    checkpoint.digest_path(link).write_text(checkpoint.digest_path(other).read_text())  # the link went unsaid
    assert auditor_inspect.model_from_checkpoint(link).integrity == (
        f"sha256 matches best.pt.sha256 (beside {path.resolve()}, which {link} links to; latest.pt.sha256 beside the "
        "link does not match it: another file's?)")
    checkpoint.digest_path(link).write_text(checkpoint.digest_path(path).read_text())  # agreeing: nothing more said
    assert auditor_inspect.model_from_checkpoint(link).integrity.endswith("links to)")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"latest\.pt: checkpoint is not intact: sha256 mismatch"):
        auditor_inspect.model_from_checkpoint(link)


def test_a_link_whose_digest_sits_beside_it_not_its_target_is_checked_too(tmp_path: Path, spec: Spec) -> None:
    """A content-addressed store (snapshots/x/best.pt -> ../blobs/<sha>) keeps the digest beside the link."""
    blobs, snap = tmp_path / "blobs", tmp_path / "snap"
    blobs.mkdir()
    snap.mkdir()
    saved = save_checkpoint(tmp_path / "best.pt", spec)
    (blobs / "aaa").write_bytes(saved.read_bytes())
    (blobs / "bbb").write_text(checkpoint.digest_path(saved).read_text())
    (snap / "best.pt").symlink_to("../blobs/aaa")
    (snap / "best.pt.sha256").symlink_to("../blobs/bbb")
    assert auditor_inspect.model_from_checkpoint(snap / "best.pt").integrity == "sha256 matches best.pt.sha256"
    data = bytearray((blobs / "aaa").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (blobs / "aaa").write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"snap/best\.pt: checkpoint is not intact: sha256 mismatch"):
        auditor_inspect.model_from_checkpoint(snap / "best.pt")
    (snap / "best.pt.sha256").unlink()
    with pytest.raises(InvalidInput, match=r"snap/best\.pt: checkpoint is damaged: its archive entry"):
        auditor_inspect.model_from_checkpoint(snap / "best.pt")  # no digest: its zip CRCs still tell
    (blobs / "aaa").write_bytes(saved.read_bytes())
    assert auditor_inspect.model_from_checkpoint(snap / "best.pt").integrity == (
        f"not checked: no aaa.sha256 beside {(blobs / 'aaa').resolve()}, nor best.pt.sha256 beside the link {snap / 'best.pt'}, "
        "but its zip entries pass their CRC-32 checks")


def test_a_checkpoint_under_a_linked_folder_is_not_said_to_be_a_link(tmp_path: Path, spec: Spec) -> None:
    (tmp_path / "real").mkdir()
    save_checkpoint(tmp_path / "real" / "best.pt", spec)
    (tmp_path / "ck").symlink_to(tmp_path / "real")  # as a /home that is itself a link
    assert auditor_inspect.model_from_checkpoint(tmp_path / "ck" / "best.pt").integrity == "sha256 matches best.pt.sha256"


def test_the_digest_a_checkpoint_matched_is_the_one_named(tmp_path: Path, spec: Spec) -> None:
    """A write killed before its digest's last rename: the file matches X.sha256.next, not X.sha256."""
    path = save_checkpoint(tmp_path / "g.pt", spec)
    checkpoint.next_digest_path(path).write_text(checkpoint.digest_path(path).read_text())
    checkpoint.digest_path(path).write_text("0" * 64 + "  g.pt\n")
    assert auditor_inspect.model_from_checkpoint(path).integrity == (
        "sha256 matches g.pt.sha256.next, the digest of a write whose last rename was cut short")
    checkpoint.next_digest_path(path).unlink()
    checkpoint.digest_path(path).unlink()
    checkpoint.digest_path(path).mkdir()  # not a file: damaged, not absent
    with pytest.raises(InvalidInput, match=r"not intact: unreadable digest file g\.pt\.sha256 \(not a regular file\)"):
        auditor_inspect.model_from_checkpoint(path)


def test_what_stands_where_a_checkpoint_goes_is_named(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f.pt")  # reading it would block
    with pytest.raises(InvalidInput, match=r"f\.pt: not a regular file \(a FIFO, socket or device\), not a checkpoint file"):
        auditor_inspect.model_from_checkpoint(tmp_path / "f.pt")
    (tmp_path / "gone.pt").symlink_to(tmp_path / "nowhere.pt")
    with pytest.raises(InvalidInput, match=r"gone\.pt: a link to nothing, not a checkpoint file"):
        auditor_inspect.model_from_checkpoint(tmp_path / "gone.pt")
    (tmp_path / "a.pt").symlink_to(tmp_path / "b.pt")
    (tmp_path / "b.pt").symlink_to(tmp_path / "a.pt")  # had been "a link to nothing" too
    with pytest.raises(InvalidInput, match=r"a\.pt: a loop of symbolic links, not a checkpoint file"):
        auditor_inspect.model_from_checkpoint(tmp_path / "a.pt")
    with pytest.raises(InvalidInput, match=r"none\.pt: checkpoint not found"):
        auditor_inspect.model_from_checkpoint(tmp_path / "none.pt")
    (tmp_path / "best.pt").write_bytes(b"x")  # `best.pt/x` had been "checkpoint not found"
    with pytest.raises(InvalidInput, match=rf"best\.pt/x: {re.escape(str(tmp_path))}/best\.pt is a regular file, not a folder"):
        auditor_inspect.model_from_checkpoint(tmp_path / "best.pt/x")


def test_a_checkpoint_of_a_model_this_auditor_does_not_register_is_refused_by_name(tmp_path: Path, spec: Spec) -> None:
    """Validation no longer checks a recorded spec's model name (check and render read records
    without torch, which the registry imports): the model is named where it would be built."""
    path = save_checkpoint(tmp_path / "best.pt", spec, {"spec": {**resolved_dict(spec), "model": {
        **resolved_dict(spec)["model"], "name": "resnet9000"}}})  # fmt: skip
    with pytest.raises(InvalidInput, match=r"best.pt \(embedded spec\): model.name: unknown model 'resnet9000' \(a newer "
                                           r"auditor's\?\); this one registers plain110, "):
        auditor_inspect.model_from_checkpoint(path)


def test_a_checkpoint_whose_spec_was_changed_after_the_run_is_flagged(tmp_path: Path, spec: Spec) -> None:
    changed = {**resolved_dict(spec), "description": "edited"}  # spec_hash left as the run wrote it
    path = save_checkpoint(tmp_path / "best.pt", spec, {"spec": changed})
    [warning] = auditor_inspect.model_from_checkpoint(path).warnings
    assert warning.startswith(f"its embedded spec does not hash to the spec_hash recorded with it ({spec_hash(spec)[:12]})")
    assert warning in auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["notes"]


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod."])
def test_a_wrapper_prefixed_state_dict_is_said_in_one_line(tmp_path: Path, spec: Spec, prefix: str) -> None:
    weights = {prefix + k: v for k, v in build_model(spec.model).state_dict().items()}
    path = save_checkpoint(tmp_path / "best.pt", spec, {"model": weights})
    with pytest.raises(InvalidInput) as info:
        auditor_inspect.model_from_checkpoint(path)
    assert str(info.value) == (f"{path}: weights do not fit {spec.model.name}: every key starts with {prefix!r} (saved "
                               "from a DataParallel or torch.compile wrapper); a checkpoint holds the bare model's state dict")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64, torch.int64, torch.complex64])
def test_weights_of_another_dtype_are_refused_not_cast(tmp_path: Path, spec: Spec, dtype: torch.dtype) -> None:
    """load_state_dict would cast them: rounded weights scored and measured as if trained so."""
    weights = build_model(spec.model).state_dict()
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name].to(dtype)
    path = save_checkpoint(tmp_path / "best.pt", spec, {"model": weights})
    with pytest.raises(InvalidInput) as info:
        auditor_inspect.model_from_checkpoint(path)
    assert str(info.value) == (f"{path}: weights do not fit {spec.model.name}: {name} is {str(dtype)[6:]}, the model's "
                               "float32: a run's checkpoint holds its weights as trained, and a cast copy would be "
                               "scored as if they were")  # fmt: skip


def test_a_key_that_is_not_a_name_is_said_so(tmp_path: Path, spec: Spec) -> None:
    weights: dict = {**build_model(spec.model).state_dict(), 3: torch.zeros(1)}
    path = save_checkpoint(tmp_path / "best.pt", spec, {"model": weights})
    with pytest.raises(InvalidInput, match=r"weights do not fit \w+: key 3 is not a parameter name \(a state dict's keys are text\)$"):
        auditor_inspect.model_from_checkpoint(path)


def test_measure_says_a_broken_model_is_broken(tmp_path: Path, spec: Spec) -> None:
    weights = build_model(spec.model).state_dict()
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    path = save_checkpoint(tmp_path / "best.pt", spec, {"model": weights})
    notes = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["notes"]
    assert f"1 weight tensor holds non-finite values (e.g. {name}): the model is broken" in notes


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"spec": None}, "checkpoint holds no resolved spec"),
     ({"spec": {"name": "x", "unknown": 1}}, "embedded spec"),
     ({"model": {"conv.weight": torch.zeros(1)}}, "weights do not fit resnet8"),
     ({"model": "not a state dict"}, "weights do not fit resnet8")],
    ids=["no spec", "invalid spec", "wrong keys", "not a state dict"],
)
def test_a_checkpoint_that_cannot_rebuild_its_model_is_bad_input(
    tmp_path: Path, spec: Spec, changes: dict[str, object], message: str
) -> None:
    path = save_checkpoint(tmp_path / "odd.pt", spec, changes)
    with pytest.raises(InvalidInput, match=message):
        auditor_inspect.model_from_checkpoint(path)


def test_a_missing_path_or_a_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="checkpoint not found"):
        auditor_inspect.model_from_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(InvalidInput, match="a folder, not a checkpoint file"):
        auditor_inspect.model_from_checkpoint(tmp_path)


def test_device_names_this_build_cannot_measure_on_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for other in ("gpu", "meta", "mps", "xpu", "CPU", "cuda:x"):  # device types torch names, or none at all
        with pytest.raises(InvalidInput, match=rf"--device: must be auto, cpu, cuda or cuda:N, got '{other}'"):
            auditor_inspect._device(other)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInput, match=r"--device: cuda requested but CUDA is not available here"):
        auditor_inspect._device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InvalidInput, match=r"--device: cuda:3 does not exist \(1 GPUs\)"):
        auditor_inspect._device("cuda:3")


def test_non_finite_weights_are_warned_about(tmp_path: Path, spec: Spec) -> None:
    loaded = auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "best.pt", spec))
    spec_, model = loaded.spec, loaded.model
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    assert any("non-finite values" in w for w in auditor_inspect.evaluation_warnings(spec_, model))


def test_an_accuracy_from_non_finite_outputs_of_finite_weights_is_warned_about(tmp_path: Path, spec: Spec) -> None:
    """The user test: a diverged run's best.pt (or a BatchNorm running_var of -1) had been scored
    at about 10% (every prediction the argmax of NaN) with `test_loss nan` and no warning."""
    state = build_model(spec.model).state_dict()
    bn = next(k for k in state if k.endswith("running_var"))
    state[bn] = torch.full_like(state[bn], -1.0)  # finite, but sqrt(-1) is NaN: every output is NaN
    path = save_checkpoint(tmp_path / "best.pt", spec, {"model": state})
    report = auditor_inspect.evaluate_checkpoint(path, str(fake_cifar_root(tmp_path / "data")), "cpu")
    assert math.isnan(report["test_loss"])
    assert [w for w in report["warnings"] if "non-numbers" in w] == [(
        "the test loss is nan: the model outputs inf or NaN on some images, so the accuracies count predictions "
        "made from non-numbers")]  # fmt: skip
    assert not any("weight tensor" in w for w in report["warnings"])  # the weights are finite
    intact = auditor_inspect.evaluate_checkpoint(save_checkpoint(tmp_path / "ok.pt", spec), str(tmp_path / "data"), "cpu")
    assert math.isfinite(intact["test_loss"]) and not any("non-numbers" in w for w in intact["warnings"])


def test_a_checkpoint_with_another_class_count_is_refused_naming_the_checkpoint(tmp_path: Path, spec: Spec) -> None:
    """It had been blamed on --data-root ('10 classes there, the model has 100')."""
    wide = spec.model_copy(update={"model": spec.model.model_copy(update={"num_classes": 100})})
    path = save_checkpoint(tmp_path / "best.pt", wide)
    with pytest.raises(InvalidInput, match=re.escape(
            f"{path}: its model has 100 output classes (model.num_classes in its spec), and the test set under "
            "--data-root has 10: it was not trained on that data set")):  # fmt: skip
        auditor_inspect.evaluate_checkpoint(path, str(fake_cifar_root(tmp_path / "data")), "cpu")


@pytest.mark.parametrize(("iters", "ok"), [(None, True), (7, True), (0, False), (-1, False), (2**63, False)])
def test_iters_is_validated_as_the_spec_field(spec: Spec, iters: int | None, ok: bool) -> None:
    if ok:
        got = auditor_inspect._latency_spec(spec.measure.latency, iters)
        assert got.iters == (spec.measure.latency.iters if iters is None else iters)
    else:
        with pytest.raises(InvalidInput, match=rf"--iters: .*, got ({iters:,}|{iters}).* \(as the spec's measure.latency.iters\)$"):
            auditor_inspect._latency_spec(spec.measure.latency, iters)


def test_warmup_is_validated_as_the_spec_field_and_a_slip_of_exponent_is_refused(spec: Spec) -> None:
    assert auditor_inspect._latency_spec(spec.measure.latency, None, 0).warmup == 0
    with pytest.raises(InvalidInput, match=r"--warmup: at most 100,000, got 1,000,000,000,000 \(1,000,000,000,000 iterations of a 10 ms CPU forward take 2,777,778 hours\) "
                                           r"\(as the spec's measure\.latency\.warmup\)$"):
        auditor_inspect._latency_spec(spec.measure.latency, None, 10**12)
    with pytest.raises(InvalidInput, match=r"measure\.latency\.iters: at most 1,000,000, got 1,000,000,000,000"):
        load_spec("smoke", ["measure.latency.iters=1000000000000"])  # it had trained, then timed for ever


def test_a_checkpoint_whose_spec_timed_more_than_a_new_spec_may_still_loads(tmp_path: Path, spec: Spec) -> None:
    recorded = resolved_dict(spec)
    recorded["measure"]["latency"]["iters"] = 2_000_000
    recorded["measure"]["latency"]["warmup"] = 200_000
    path = save_checkpoint(tmp_path / "best.pt", spec, {"spec": recorded})
    old = auditor_inspect.model_from_checkpoint(path).spec.measure.latency
    assert (old.iters, old.warmup) == (2_000_000, 200_000)
    # --iters is judged alone, not blamed for the checkpoint's warm-up; timing that long is refused, naming the way out
    assert auditor_inspect._latency_spec(old, 100).iters == 100
    with pytest.raises(InvalidInput, match=r"best\.pt: its spec's measure\.latency\.iters is 2,000,000, more than a new "
                                           r"spec may time \(1,000,000\): give --iters to time fewer"):
        auditor_inspect.measure_checkpoint(path, "cpu", iters=None)
    with pytest.raises(InvalidInput, match=r"measure\.latency\.warmup is 200,000, .*: give --warmup to time fewer"):
        auditor_inspect.measure_checkpoint(path, "cpu", iters=5)


def test_a_recorded_hash_that_is_not_a_sha256_is_not_printed(tmp_path: Path, spec: Spec) -> None:
    """Printed in `measure`'s and `evaluate`'s tables, a crafted one could forge lines there."""
    path = save_checkpoint(tmp_path / "best.pt", spec, {"spec_hash": "ok\nintegrity  forged", "test_fingerprint": 7})
    loaded = auditor_inspect.model_from_checkpoint(path)
    assert loaded.spec_hash is None and loaded.test_fingerprint is None
    assert loaded.warnings == ["the spec_hash recorded with it is not a sha256 (64 hex digits): ignored",
                               "the test_fingerprint recorded with it is not a sha256 (64 hex digits): ignored"]


def test_measure_checkpoint_reports_the_recorded_hash_sizes_and_a_latency(tmp_path: Path, spec: Spec) -> None:
    path = save_checkpoint(tmp_path / "best.pt", spec)
    report = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)
    assert report["spec_hash"] == spec_hash(spec) and report["model"] == "resnet8"
    assert report["params_total"] == sum(p.numel() for p in build_model(spec.model).parameters())
    assert report["checkpoint_mb"] * 1e6 == pytest.approx(path.stat().st_size)  # decimal MB
    assert report["latency"]["iters"] == 5 and report["latency"]["median_ms"] > 0


def test_measure_says_when_the_latency_was_timed_on_a_busy_machine(
    tmp_path: Path, spec: Spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sheet's busy-machine and unsteady-timing warnings send users to `auditor measure`,
    which says the same of its own timing."""
    path = save_checkpoint(tmp_path / "best.pt", spec)
    quiet = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["latency"]
    busy = {**quiet, "other_cpu_share": 0.5, "other_cpu_window_s": 2.0, "median_ms": 2.0, "iqr_ms": 1.0}
    monkeypatch.setattr(auditor_inspect, "latency", lambda *a, **k: measure.LatencyResult(**busy))
    monkeypatch.setattr(auditor_inspect, "_cpu_notes", lambda device, threads_given: [])
    notes = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["notes"]
    assert [n.split(":")[0] for n in notes] == ["Unsteady timing", "Busy machine"]
    assert notes[1].startswith("Busy machine: other processes used 50% of the CPU while the latency was timed")
    assert "may not hold on a quiet machine." in notes[1] and "auditor measure" not in notes[1]  # not from measure itself


def test_a_checkpoint_that_recorded_only_its_test_file_says_what_it_cannot_tell(spec: Spec) -> None:
    """Written before the scored images were fingerprinted: under a limit another file may hold the same ones."""
    cifar = spec.model_copy(update={"data": spec.data.model_copy(update={"dataset": "cifar10"})})
    older = auditor_inspect.Loaded(cifar, torch.nn.Identity(), None, "a" * 64, None, "not checked", [])
    assert auditor_inspect._copy_warnings(cifar, older, "a" * 64, "c" * 64, 100) == []  # the same file
    [limited] = auditor_inspect._copy_warnings(cifar, older, "b" * 64, "c" * 64, 100)
    assert limited.endswith("the run scored its first 100 images, and whether those are the same here its "
                            "checkpoint does not record")
    [whole] = auditor_inspect._copy_warnings(cifar, older, "b" * 64, "b" * 64, 100)
    assert whole.endswith("are not those the run was scored on (aaaaaaaaaaaa): this accuracy is not the run's to reproduce")
    short = cifar.model_copy(update={"data": cifar.data.model_copy(update={"limit_test": 200})})
    [fewer] = auditor_inspect._copy_warnings(short, older, "b" * 64, "b" * 64, 100)  # the review: said here too
    assert fewer.startswith("the test images or labels here (this copy holds fewer than the run's data.limit_test, 200)")
    newer = older._replace(scored_fingerprint="c" * 64)
    assert auditor_inspect._copy_warnings(cifar, newer, "b" * 64, "c" * 64, 100) == []  # the images scored agree


def test_the_reports_say_how_far_the_weights_had_trained(tmp_path: Path, spec: Spec) -> None:
    """best.pt and last.pt of one run are told apart by the step their weights were saved at."""
    assert auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "old.pt", spec)).global_step is None
    path = save_checkpoint(tmp_path / "best.pt", spec, {"global_step": 12})
    assert auditor_inspect.model_from_checkpoint(path).global_step == 12
    assert auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["global_step"] == 12
    assert not any("global_step" in w for w in auditor_inspect.model_from_checkpoint(path).warnings)
    for edited, shown in [(-3, "-3"), ("12", "'12'"), (True, "true"), (1.5, "1.5"), ("x" * 99, repr("x" * 99)[:77] + "...")]:
        loaded = auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "edited.pt", spec, {"global_step": edited}))
        assert loaded.global_step is None  # shown as null, and said why
        assert f"the global_step recorded with it ({shown}) is not a count of steps: ignored" in loaded.warnings


def test_class_names_recorded_otherwise_than_a_run_writes_them_are_said_to_be_ignored(tmp_path: Path, spec: Spec) -> None:
    """A user test: a checkpoint whose classes entry was 5 was evaluated without a word."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    loaded = auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "named.pt", spec, {"classes": names}))
    assert loaded.classes == names and not any("class names" in w for w in loaded.warnings)
    assert auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "old.pt", spec)).warnings == []  # none recorded
    # Not a list of names; and (a user test) one name ten times, which a data copy's batches.meta may not hold, or two
    for edited, shown in [(5, "5"), (["airplane", 3], '["airplane", 3]'), ("airplane", "'airplane'"),
                          (["a"] * 10, short_value(["a"] * 10)), (names[:2], short_value(names[:2]))]:  # fmt: skip
        loaded = auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "edited.pt", spec, {"classes": edited}))
        assert loaded.classes is None
        assert (f"the class names recorded with it ({shown}) are not a list of 10 distinct names: ignored (`evaluate` "
                "compares a data copy's class names with none)") in loaded.warnings  # `measure` reads no copy: it had said "the copy's"


def test_a_checkpoint_format_other_than_this_auditors_is_warned_of(tmp_path: Path, spec: Spec) -> None:
    """evaluate and measure read any format field without a word; --resume refuses one."""
    for fmt in (None, checkpoint.CHECKPOINT_FORMAT):  # older checkpoints record none
        extra = {} if fmt is None else {"format": fmt}
        assert auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "ok.pt", spec, extra)).warnings == []
    for edited, shown in [(2, "2"), ("1", "'1'"), (True, "true"), (1.0, "1.0")]:
        loaded = auditor_inspect.model_from_checkpoint(save_checkpoint(tmp_path / "f.pt", spec, {"format": edited}))
        assert (f"it is of checkpoint format {shown} and this auditor writes format {checkpoint.CHECKPOINT_FORMAT}: "
                "its entries were read as that format's") in loaded.warnings


def test_the_thread_note_of_measure_speaks_of_what_it_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditor_inspect.environment, "usable_cpus", lambda: 1)
    monkeypatch.setattr(auditor_inspect.torch, "get_num_threads", lambda: 2)
    [note] = auditor_inspect._cpu_notes(torch.device("cpu"))
    assert note.endswith("the threads take turns, which inflates the latency timed here; set OMP_NUM_THREADS=1, or "
                         "give --threads 1, to time it without the turns")  # fmt: skip
    assert "training" not in note
    # --threads chose the count: that is what to change (a user test: the note said to set OMP_NUM_THREADS)
    [note] = auditor_inspect._cpu_notes(torch.device("cpu"), threads_given=True)
    assert note.endswith("inflates the latency timed here; give --threads 1 to time it without the turns")


def _cifar_copy(root: Path) -> Path:
    """fake_cifar_root with a batches.meta naming CIFAR-10's classes."""
    import pickle

    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    fake_cifar_root(root)
    (root / "cifar-10-batches-py/batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return root


def test_evaluate_warns_where_a_checkpoint_records_nothing_to_compare_the_copy_with(tmp_path: Path, spec: Spec) -> None:
    """A user test: `--strict` passed an older (or edited) checkpoint that records neither the test
    images its run scored nor their class names, on another copy, without a word."""
    cifar = spec.model_copy(update={"data": spec.data.model_copy(update={"dataset": "cifar10"})})
    root = str(_cifar_copy(tmp_path / "data"))
    report = auditor_inspect.evaluate_checkpoint(save_checkpoint(tmp_path / "old.pt", cifar), root, "cpu")
    lacking = [w for w in report["warnings"] if "records no" in w]
    assert lacking == [
        ("its checkpoint records no fingerprint of the test images its run scored (an older auditor's checkpoint, or "
         "an edited one), so whether the images scored here are those is not checked"),
        ("its checkpoint records no class names (an older auditor's checkpoint, or an edited one): the per-class "
         "accuracies are named as this copy's batches.meta names them, not checked against the run's")]
    names = list(report["per_class_acc"])
    recorded = {"scored_test_fingerprint": report["scored_fingerprint"], "classes": names}
    same = auditor_inspect.evaluate_checkpoint(save_checkpoint(tmp_path / "new.pt", cifar, recorded), root, "cpu")
    assert not any("records no" in w or "not those" in w for w in same["warnings"]), same["warnings"]
    # A run whose copy had no batches.meta read no names: not "the class names here are not those the run read".
    numbered = {"scored_test_fingerprint": report["scored_fingerprint"], "classes": [str(k) for k in range(10)]}
    unnamed = auditor_inspect.evaluate_checkpoint(save_checkpoint(tmp_path / "un.pt", cifar, numbered), root, "cpu")
    assert [w for w in unnamed["warnings"] if "class" in w] == [
        ("the run's copy of the data had no batches.meta (the run named the classes by their labels' numbers): the "
         "per-class accuracies are named as this copy's batches.meta names them, not checked against the run's")]
    edited = auditor_inspect.evaluate_checkpoint(
        save_checkpoint(tmp_path / "ed.pt", cifar, {"classes": 5, "test_fingerprint": "x"}), root, "cpu")
    assert not any("records no" in w for w in edited["warnings"])  # recorded wrongly: warned as ignored, once
    assert sum("not a list of 10 distinct names" in w or "not a sha256" in w for w in edited["warnings"]) == 2


def test_evaluate_warns_once_of_a_missing_batches_meta_and_says_when_a_copy_holds_fewer_images(tmp_path: Path, spec: Spec) -> None:
    """A user test: a missing batches.meta gave two warnings (missing; names differ: 0, 1, ...), and a
    copy with fewer test images than the run's limit was told only that they are not those scored."""
    cifar = spec.model_copy(update={"data": spec.data.model_copy(update={"dataset": "cifar10", "limit_test": 30})})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    path = save_checkpoint(tmp_path / "best.pt", cifar, {"scored_test_fingerprint": "c" * 64, "classes": names})
    report = auditor_inspect.evaluate_checkpoint(path, str(fake_cifar_root(tmp_path / "data")), "cpu")  # 20 images
    meta = [w for w in report["warnings"] if "batches.meta" in w or "class names" in w]
    assert meta == [(f"{tmp_path}/data/cifar-10-batches-py/batches.meta is missing: the classes are named by their "
                     "labels' numbers, not compared with the names the run read")]
    [fewer] = [w for w in report["warnings"] if "not those the run scored" in w]
    assert fewer.startswith("the 20 test images scored here (this copy holds fewer than the run's data.limit_test, 30), or")
    assert report["data"]["official"] is False and report["data"]["files"] == {"test_batch": "md5 mismatch",
                                                                                "batches.meta": "missing"}


def test_measure_says_where_its_setting_is_not_the_one_the_run_timed_at(tmp_path: Path, spec: Spec) -> None:
    """A user test: a bf16 run trained at 1 thread was re-timed at 2, in float32, without a word."""
    now = torch.get_num_threads()
    other = now + 1
    path = save_checkpoint(tmp_path / "best.pt", spec, {"compute": {"device": "cpu", "torch_threads": other}})
    notes = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["notes"]
    assert (f"timed at {count(now, 'torch thread')}; the process that wrote it trained at {other} (the run's sheet "
            f"gives the count its latency was timed at): --threads {other} times it at that setting") in notes
    same = save_checkpoint(tmp_path / "same.pt", spec, {"compute": {"device": "cpu", "torch_threads": now}})
    # startswith: a busy machine's note (other processes meanwhile) also speaks of what the latency was timed at
    assert not any(n.startswith("timed at") for n in auditor_inspect.measure_checkpoint(same, "cpu", iters=5)["notes"])
    gpu = save_checkpoint(tmp_path / "gpu.pt", spec, {"compute": {"device": "cuda:0", "torch_threads": other}})
    assert not any(n.startswith("timed at") for n in auditor_inspect.measure_checkpoint(gpu, "cpu", iters=5)["notes"])
    bf16 = spec.model_copy(update={"train": spec.train.model_copy(update={"amp": "bf16"})})
    notes = auditor_inspect.measure_checkpoint(save_checkpoint(tmp_path / "bf16.pt", bf16), "cpu", iters=5)["notes"]
    assert ("timed in float32 without autocast, as a run's sheet times it; the model trained and was scored under bf16 "
            "autocast") in notes


def test_measure_times_another_batch_size_and_thread_count_and_says_so(
    tmp_path: Path, spec: Spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user test: a deployment's batch size meant retraining, a thread count the environment, and
    an OMP_NUM_THREADS torch did not take was timed at torch's count without a word."""
    path = save_checkpoint(tmp_path / "best.pt", spec, {"compute": {"device": "cpu", "torch_threads": 2}})
    before = torch.get_num_threads()
    try:
        report = auditor_inspect.measure_checkpoint(path, "cpu", iters=5, batch_size=3, threads=1)
    finally:
        torch.set_num_threads(before)
    assert (report["latency"]["batch_size"], report["latency"]["threads"]) == (3, 1)
    assert "input of 3x3x32x32" in report["latency"]["method"]
    assert "timed at batch 3; the run's sheet times batch 1 (its spec's measure.latency.batch_size)" in report["notes"]
    assert ("timed at 1 torch thread; the process that wrote it trained at 2 (the run's sheet gives the count its "
            "latency was timed at): --threads 2 times it at that setting") in report["notes"]
    with pytest.raises(InvalidInput, match=r"^--batch-size: input should be greater than or equal to 1, got 0"):
        auditor_inspect.measure_checkpoint(path, "cpu", iters=5, batch_size=0)
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # read by torch at start-up; here it only differs from the count
    notes = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)["notes"]
    assert [n for n in notes if n.startswith(f"OMP_NUM_THREADS=many, but torch runs {count(before, 'thread')} (it caps")]


def test_measure_and_evaluate_say_what_they_measured_with_and_the_checkpoints_digest(tmp_path: Path, spec: Spec) -> None:
    """A user test: a saved report named no torch version, CPU kernels or checkpoint digest, and
    evaluate's left out the confusion matrix audit.json records; a compiled model was timed eager
    without the note an autocast one gets."""
    compiled = spec.model_copy(update={"train": spec.train.model_copy(update={"compile": "default"})})
    path = save_checkpoint(tmp_path / "best.pt", compiled)
    report = auditor_inspect.measure_checkpoint(path, "cpu", iters=5)
    assert report["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    used = report["measured_with"]
    assert (used["auditor"], used["torch"], used["cpu_capability"]) == (
        auditor.__version__, torch.__version__, torch.backends.cpu.get_cpu_capability())
    assert ("timed as the eager model, as a run's sheet times it; the model trained under torch.compile "
            "(train.compile: default)") in report["notes"]
    cifar = spec.model_copy(update={"data": spec.data.model_copy(update={"dataset": "cifar10"})})
    scored = auditor_inspect.evaluate_checkpoint(save_checkpoint(tmp_path / "c.pt", cifar),
                                                 str(fake_cifar_root(tmp_path / "data")), "cpu")  # fmt: skip
    cm = scored["confusion"]
    assert sum(map(sum, cm)) == scored["n"] and sum(cm[i][i] for i in range(len(cm))) / scored["n"] == scored["test_acc"]
    assert scored["measured_with"]["torch"] == torch.__version__ and len(scored["checkpoint_sha256"]) == 64
