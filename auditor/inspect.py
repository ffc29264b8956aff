"""`auditor evaluate` / `auditor measure`: check a checkpoint's claims on its own.

Both rebuild the model from the resolved spec stored inside the checkpoint,
so nothing but the checkpoint (and, for accuracy, a copy of the data) is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import torch
from pydantic import ValidationError
from torch import nn

from auditor import __version__, checkpoint, environment
from auditor.audit import is_count, is_sha256, latency_warnings
from auditor.data import LABEL_NUMBERS, class_changes, fingerprint, norm_tensors, read_test_set
from auditor.errors import InvalidInput
from auditor.fileio import checkpoint_file, sha256_file
from auditor.measure import MB, accuracy, latency, nonfinite_tensors, size
from auditor.models import build_model, list_models
from auditor.spec import (
    DEVICE_FORM,
    DEVICE_FORMS,
    MAX_ITERS,
    MAX_WARMUP,
    Latency,
    Spec,
    hash_resolved,
    short_value,
    validate_spec,
)
from auditor.words import count


class Loaded(NamedTuple):
    """A checkpoint's model and what the run recorded with it."""

    spec: Spec  # the embedded resolved spec
    model: nn.Module  # with the checkpoint's weights, on the CPU
    spec_hash: str | None  # as the run recorded it
    test_fingerprint: str | None  # the test file the run read (None: not recorded)
    scored_fingerprint: str | None  # the test images the run scored, its first data.limit_test (None: not recorded)
    integrity: str  # whether its bytes were checked against a digest file, in words
    warnings: list[str]  # what makes the checkpoint's own record doubtful
    classes: list[str] | None = None  # the class names the run read, by label (None: not recorded)
    global_step: int | None = None  # optimiser steps the weights had taken when saved (None: not recorded)
    unrecorded: tuple[str, ...] = ()  # "test images", "classes": what the checkpoint lacks (an older one), not what it holds wrongly
    trained_threads: int | None = None  # torch threads of the CPU process that wrote it (None: not a CPU run, or not recorded)
    sha256: str = ""  # of the file's bytes: the digest they matched, or hashed here where none came with them


def model_from_checkpoint(path: Path) -> Loaded:
    """The checkpoint's model, spec, spec hash and test fingerprints as the run recorded them,
    its integrity in words and warnings on its record. A link is followed: the digest file
    checked is the one beside the file it names, or else one beside the link."""
    target = checkpoint_file(path)
    integrity, digest = _integrity(path, target)  # before the bytes are read as a checkpoint: a mismatch is refused
    state = checkpoint.load(path, check_digest=False)
    if not isinstance(state.get("spec"), dict):
        raise InvalidInput(f"{path}: checkpoint holds no resolved spec")
    spec = validate_spec(state["spec"], f"{path} (embedded spec)", recorded=True)
    if spec.model.name not in list_models():  # a recorded spec's model name is not checked by validation
        raise InvalidInput(f"{path} (embedded spec): model.name: unknown model {spec.model.name!r} (a newer auditor's?); "
                           f"this one registers {', '.join(list_models())}")  # fmt: skip
    model = _fitted_model(path, state["model"], spec)
    warnings = _record_warnings(state, target, digest)
    recorded = _sha256_text(state.get("spec_hash"))  # as written, not recomputed under today's defaults
    test, scored = (state.get(k) for k in ("test_fingerprint", "scored_test_fingerprint"))  # older: none
    classes = _recorded_classes(state.get("classes"), spec.model.num_classes, warnings)
    fmt = state.get("format")  # older checkpoints: none
    if fmt is not None and checkpoint.other_format(fmt):
        warnings.append(f"it is of checkpoint format {short_value(fmt)} and this auditor writes format "
                        f"{checkpoint.CHECKPOINT_FORMAT}: its entries were read as that format's")  # fmt: skip
    step = state.get("global_step")
    if step is not None and not is_count(step):
        warnings.append(f"the global_step recorded with it ({short_value(step)}) is not a count of steps: ignored")
        step = None
    lacks = (("test images",) if test is None and scored is None else ()) + (
        ("classes",) if state.get("classes") is None else ())  # fmt: skip
    return Loaded(spec, model, recorded, _sha256_text(test), _sha256_text(scored), integrity, warnings, classes, step,
                  lacks, _trained_threads(state), digest or sha256_file(target))  # fmt: skip


def _fitted_model(path: Path, weights: Any, spec: Spec) -> nn.Module:
    """The spec's model with the checkpoint's weights loaded. Raises InvalidInput where they do not fit."""
    model = build_model(spec.model)
    try:
        if (problem := _foreign_entries(weights, model)) is not None:
            raise TypeError(problem)
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:  # wrong shapes/keys, or not a state dict at all
        raise InvalidInput(f"{path}: weights do not fit {spec.model.name}: {_misfit(weights, exc)}") from None
    return model


def _record_warnings(state: dict[str, Any], target: Path, digest: str | None) -> list[str]:
    """Warnings on what the checkpoint records of its run: hashes that are not sha256s, no digest file
    beside it (`digest`: the digest it matched, None where none came), an embedded spec that no longer
    hashes to its recorded spec_hash."""
    warnings = [f"the {key} recorded with it is not a sha256 (64 hex digits): ignored"
                for key in ("spec_hash", "test_fingerprint", "scored_test_fingerprint")
                if state.get(key) is not None and _sha256_text(state[key]) is None]  # printed, or compared
    if digest is None:  # `evaluate --strict` fails on it: nothing ties these bytes to the run's
        warnings.append(f"no {checkpoint.digest_path(target).name} came with it, so its bytes are not checked against "
                        "the digest the run wrote (a zip archive's CRC-32s, where it has them, find damage, not another file): copy the digest "
                        "file with the checkpoint")  # fmt: skip
    recorded = _sha256_text(state.get("spec_hash"))
    if recorded is not None and hash_resolved(state["spec"]) != recorded:
        warnings.append(f"its embedded spec does not hash to the spec_hash recorded with it ({recorded[:12]}): "
                        "the spec or the hash was changed after the run, so the run, model and hash printed "
                        "here may not belong together")  # fmt: skip
    return warnings


def _recorded_classes(classes: Any, n: int, warnings: list[str]) -> list[str] | None:
    """The class names a checkpoint records (None: none, older ones), or, where they are not a list
    of `n` distinct names as a run records the data's (a user test: ten 'a's), None, with a warning."""
    if classes is None or (isinstance(classes, list) and all(isinstance(c, str) for c in classes)
                           and len(classes) == n == len(set(classes))):  # fmt: skip
        return classes
    warnings.append(f"the class names recorded with it ({short_value(classes)}) are not a list of {n} distinct "
                    "names: ignored (`evaluate` compares a data copy's class names with none)")  # fmt: skip
    return None


def _trained_threads(state: dict[str, Any]) -> int | None:
    """The torch threads of the CPU process that wrote the checkpoint `state`; None where it is not
    a CPU run's, or does not record them (older checkpoints)."""
    compute = state.get("compute") if isinstance(state.get("compute"), dict) else {}
    threads = compute.get("torch_threads") if str(compute.get("device", "")).startswith("cpu") else None
    return threads if is_count(threads) and threads > 0 else None


def _sha256_text(value: Any) -> str | None:
    """`value` where it is a sha256 as a run writes one (64 lower-case hex digits), else None."""
    return value if is_sha256(value) else None


def _integrity(path: Path, target: Path) -> tuple[str, str | None]:
    """Check the checkpoint's bytes against a digest file, when there is one (a copied checkpoint
    may travel without it): beside `target`, the file a link at `path` names, or else beside the
    link (a content-addressed store names its files by hash); say which matched, with the sha256
    it gives (None: no digest was there to check), or refuse."""
    link = path.is_symlink()
    checked = next((p for p in ((target, path) if link else (target,)) if _has_digest(p)), None)
    if checked is None:
        also = f", nor {checkpoint.digest_path(path).name} beside the link {path}" if link else ""
        crc = checkpoint.zip_crcs(target)
        if crc.unreadable is not None:
            raise InvalidInput(f"{path}: checkpoint is damaged: its zip archive's directory cannot be read "
                               f"({crc.unreadable}), so its entries cannot be checked against their CRC-32s (and no "
                               f"{checkpoint.digest_path(target).name} is there to compare with); copy it again from "
                               "where the run wrote it")  # fmt: skip
        if crc.damaged is not None:
            raise InvalidInput(f"{path}: checkpoint is damaged: its archive entry {crc.damaged} fails the CRC-32 check "
                               f"the archive records for it (and no {checkpoint.digest_path(target).name} is there to "
                               "compare with); copy it again from where the run wrote it")
        passed = f", but its zip entries pass their CRC-32 checks{crc.note}" if crc.checked else crc.note
        return f"not checked: no {checkpoint.digest_path(target).name} beside {target if link else 'it'}{also}{passed}", None
    where = f" (beside {target}, which {path} links to)" if link and checked == target else ""
    matched = checkpoint.matching_digest(checked)
    if matched is None:
        reason = checkpoint.verify(checked) or "its digest file changed while it was read (a run writing it?): try again"
        if not os.path.lexists(checkpoint.digest_path(checked)):  # only an unfinished write's digest is there (a user test)
            reason = (f"{checkpoint.next_digest_path(checked).name}, the digest of an unfinished write of it, does not "
                      f"match it, and no {checkpoint.digest_path(checked).name} is there: a stale file, or another "
                      "file's; copy the checkpoint and its digest file again from where the run wrote them")  # fmt: skip
        fix = ("; the file changed after the run wrote it, or the digest file is another file's: copy the checkpoint "
               "and its digest file again from where the run wrote them") if reason.startswith("sha256 mismatch") else ""
        raise InvalidInput(f"{path}: checkpoint is not intact: {reason}{where}{fix}")
    if link and checked == target and _has_digest(path) and checkpoint.matching_digest(path) is None:
        # checked beside the file linked to, as documented, but one beside the link says otherwise (a user test)
        where = f"{where[:-1]}; {checkpoint.digest_path(path).name} beside the link does not match it: another file's?)"
    digest = checkpoint.digest_in(matched, checked)  # the bytes' own, as matching_digest hashed them
    if matched == checkpoint.digest_path(checked):
        return f"sha256 matches {matched.name}{where}", digest
    return f"sha256 matches {matched.name}{where}, the digest of a write whose last rename was cut short", digest


def _has_digest(path: Path) -> bool:
    """Whether a digest file of `path` is there: its sidecar (whatever it is), or a write's."""
    return os.path.lexists(checkpoint.digest_path(path)) or checkpoint.next_digest_path(path).is_file()


def _foreign_entries(weights: Any, model: torch.nn.Module) -> str | None:
    """What load_state_dict would take without a word: a key that is not a name, or a tensor of
    another dtype than the model's, which it casts (bf16- or int-rounded weights would then be
    scored as if trained so); None where neither (or `weights` is no dict: load_state_dict says)."""
    if not isinstance(weights, dict):
        return None
    if odd := [k for k in weights if not isinstance(k, str)]:
        return f"key {odd[0]!r} is not a parameter name (a state dict's keys are text)"
    for key, own in model.state_dict().items():
        given = weights.get(key)
        if isinstance(given, torch.Tensor) and given.dtype != own.dtype:
            return (f"{key} is {str(given.dtype).removeprefix('torch.')}, the model's "
                    f"{str(own.dtype).removeprefix('torch.')}: a run's checkpoint holds its weights as "
                    "trained, and a cast copy would be scored as if they were")
    return None


def _misfit(weights: Any, exc: Exception) -> str:
    """Why the weights do not fit, short: a wrapper's key prefix said as such, torch's list of
    every missing and unexpected key cut to its start."""
    keys = [k for k in weights if isinstance(k, str)] if isinstance(weights, dict) else []
    for prefix in ("module.", "_orig_mod."):
        if keys and all(k.startswith(prefix) for k in keys):
            return (f"every key starts with {prefix!r} (saved from a DataParallel or torch.compile wrapper); "
                    "a checkpoint holds the bare model's state dict")  # fmt: skip
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _device(name: str) -> torch.device:
    if not DEVICE_FORM.fullmatch(name):  # torch knows many more device types; this build runs these
        raise InvalidInput(f"--device: {DEVICE_FORMS}, got {name!r}")
    device = environment.resolve_device(name)
    if (problem := environment.cuda_problem(device)) is not None:
        raise InvalidInput(f"--device: {name} {problem}")
    environment.make_current(device)
    return device


def evaluate_checkpoint(path: Path, data_root: str, device_name: str) -> dict[str, Any]:
    """Overall and per-class test accuracy of a checkpoint on the data under `data_root`."""
    loaded = model_from_checkpoint(path)
    spec, model = loaded.spec, loaded.model
    device = _device(device_name)
    x, y, classes, facts = read_test_set(data_root)
    if len(classes) != spec.model.num_classes:
        raise InvalidInput(f"{path}: its model has {spec.model.num_classes} output classes (model.num_classes in its "
                           f"spec), and the test set under --data-root has {len(classes)}: it was not trained on "
                           "that data set")  # fmt: skip
    total, limit = len(y), spec.data.limit_test
    scored = facts["fingerprint"]  # of the whole file, hashed once: the images scored unless limited
    if limit and limit < total:  # the run scored the first `limit` test images (data stage): so does this
        x, y = x[:limit], y[:limit]
        scored = fingerprint(x.numpy(), y.numpy())
    fmt = torch.channels_last if spec.train.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    mean, std = norm_tensors(spec.data, device)
    acc = accuracy(model, x.to(device), y.to(device), mean, std, spec.train, classes, "test")
    scope = (f"the first {acc.n:,} of the {total:,} test images, as the run's data.limit_test" if acc.n < total
             else f"all {total:,} test images")  # fmt: skip
    return {
        "checkpoint": str(path), "integrity": loaded.integrity, "checkpoint_sha256": loaded.sha256,
        "run": spec.name, "spec_hash": loaded.spec_hash, "global_step": loaded.global_step,
        "device": str(device), "data": facts, "scored": scope, "scored_fingerprint": scored,
        "test_images": total,  # in the test file; `n` of them scored (its first data.limit_test)
        "n": acc.n, "test_acc": acc.acc, "test_loss": acc.loss, "precision": acc.precision, "per_class_acc": acc.per_class,
        "confusion": acc.confusion,  # rows: true class, columns: predicted, by label (audit.json's measurements.test)
        "measured_with": measured_with(device),
        "warnings": [*loaded.warnings, *evaluation_warnings(spec, model), *_output_warnings(acc.loss, model),
                     *_copy_warnings(spec, loaded, facts["fingerprint"], scored, acc.n), *_class_warnings(spec, loaded, classes, facts)],
    }  # fmt: skip


def _copy_warnings(spec: Spec, loaded: Loaded, file_here: str, scored_here: str, n: int) -> list[str]:
    """A warning when the CIFAR-10 test images scored here are not those the run scored (a run on
    other data has its own warning): compared as scored where the run recorded that, else as files."""
    run_scored, run_file = loaded.scored_fingerprint, loaded.test_fingerprint
    if spec.data.dataset == "cifar10" and "test images" in loaded.unrecorded:  # `--strict` must not pass unchecked
        return [("its checkpoint records no fingerprint of the test images its run scored (an older auditor's "
                 "checkpoint, or an edited one), so whether the images scored here are those is not checked")]
    if spec.data.dataset != "cifar10" or (run_scored or run_file) in (None, scored_here if run_scored else file_here):
        return []
    fewer = (f" (this copy holds fewer than the run's data.limit_test, {spec.data.limit_test:,})"
             if spec.data.limit_test and n < spec.data.limit_test else "")  # fmt: skip
    if run_scored is not None:
        why = (f"the {count(n, 'test image')} scored here{fewer}, or their labels (sha256 {scored_here[:12]}), are not "
               f"those the run scored ({run_scored[:12]}): this accuracy is not the run's to reproduce")
    elif scored_here != file_here:  # a limit: the images scored may be the same in another file
        why = (f"the test file here (sha256 {file_here[:12]}) is not the one the run read ({run_file[:12]}); the "
               f"run scored its first {count(n, 'image')}, and whether those are the same here its checkpoint "
               "does not record")
    else:
        why = (f"the test images or labels here{fewer} (sha256 {file_here[:12]}) are not those the run was scored on "
               f"({run_file[:12]}): this accuracy is not the run's to reproduce")
    return [why]


def _class_warnings(spec: Spec, loaded: Loaded, classes: Sequence[str], facts: dict[str, Any]) -> list[str]:
    """A warning when this copy names the classes otherwise than the run read them (its
    batches.meta, which the test fingerprint leaves out): the per-class figures go by these names.
    A run on other data has its own warning. And one where the copy has no batches.meta."""
    if not facts["meta_found"]:  # one cause, one warning: its numbers would also differ from the run's names
        return [(f"{Path(facts['test_batch']).with_name('batches.meta')} is missing: the classes are named by their "
                 "labels' numbers, not compared with the names the run read")]
    if spec.data.dataset != "cifar10":
        return []
    if "classes" in loaded.unrecorded:
        return [("its checkpoint records no class names (an older auditor's checkpoint, or an edited one): the "
                 "per-class accuracies are named as this copy's batches.meta names them, not checked against the run's")]
    if loaded.classes is None or loaded.classes == list(classes):
        return []
    if loaded.classes == list(LABEL_NUMBERS):  # the run's copy had no batches.meta: it read no names to compare
        return [("the run's copy of the data had no batches.meta (the run named the classes by their labels' numbers): "
                 "the per-class accuracies are named as this copy's batches.meta names them, not checked against the run's")]
    changed = class_changes(loaded.classes, classes)
    return [f"the class names here are not those the run read: {changed}; the per-class accuracies are named as here, by label"]


def evaluation_warnings(spec: Spec, model: nn.Module) -> list[str]:
    """Why an accuracy of this checkpoint on CIFAR-10 may mean nothing."""
    warnings = []
    if spec.data.dataset != "cifar10":
        warnings.append(
            f"the model was trained on {spec.data.dataset} data, whose classes are not CIFAR-10's: "
            "this accuracy says nothing about the run"
        )
    return warnings + broken_warnings(model)


def _output_warnings(loss: float, model: nn.Module) -> list[str]:
    """A warning when the mean test loss is inf or NaN though the weights are finite (broken_warnings
    covers weights that are not): the model outputs non-numbers on some images, and an argmax over
    a NaN is the first NaN's class, so the accuracy counts predictions made from non-numbers."""
    if math.isfinite(loss) or nonfinite_tensors(model):
        return []
    return [(f"the test loss is {loss}: the model outputs inf or NaN on some images, so the accuracies count "
             "predictions made from non-numbers")]


def broken_warnings(model: nn.Module) -> list[str]:
    """A warning when weights hold inf or NaN: every figure measured on the model is of a broken one."""
    bad = nonfinite_tensors(model)
    verb = "holds" if len(bad) == 1 else "hold"
    return [f"{count(len(bad), 'weight tensor')} {verb} non-finite values (e.g. {bad[0]}): the model is broken"] if bad else []


def _latency_spec(
    latency: Latency, iters: int | None, warmup: int | None = None, batch_size: int | None = None
) -> Latency:
    """The checkpoint's latency settings with `--iters`, `--warmup` and `--batch-size` applied, each
    validated as that field of a new spec is; InvalidInput where the result would time more than a
    new spec may (an older checkpoint's spec may ask for more: the option replacing it is named)."""
    given = (("--iters", "iters", iters), ("--warmup", "warmup", warmup), ("--batch-size", "batch_size", batch_size))
    for option, field, value in given:
        if value is None:
            continue
        try:
            Latency.model_validate({field: value})  # this field alone: the others are the checkpoint's
        except ValidationError as err:
            why = err.errors()[0]["msg"].removeprefix("Value error, ")
            why = why[0].lower() + why[1:] + ("" if ", got " in why else f", got {value}")
            raise InvalidInput(f"{option}: {why} (as the spec's measure.latency.{field})") from None
        latency = latency.model_copy(update={field: value})
    return latency


def _times_too_long(latency: Latency) -> str | None:
    """Why `latency` asks for more iterations than a new spec may (an older checkpoint's spec),
    naming the option that times fewer, or None."""
    for option, field, most in (("--iters", "iters", MAX_ITERS), ("--warmup", "warmup", MAX_WARMUP)):
        if getattr(latency, field) > most:
            return (f"its spec's measure.latency.{field} is {getattr(latency, field):,}, more than a new spec may "
                    f"time ({most:,}): give {option} to time fewer")  # fmt: skip
    return None


def measure_checkpoint(
    path: Path, device_name: str, iters: int | None, warmup: int | None = None, batch_size: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Parameters, sizes and FP32 latency of a checkpoint's model: at its spec's
    measure.latency settings, or those given (`batch_size`; `threads`: torch's intra-op threads
    for this process, else as OMP_NUM_THREADS or torch's default set them)."""
    loaded = model_from_checkpoint(path)
    spec, model = loaded.spec, loaded.model
    device = _device(device_name)
    lat_spec = _latency_spec(spec.measure.latency, iters, warmup, batch_size)
    if (too_long := _times_too_long(lat_spec)) is not None:
        raise InvalidInput(f"{path}: {too_long}")
    if threads is not None:
        torch.set_num_threads(threads)
    used = measured_with(device)  # the device's name, as the latency names it too
    lat = latency(model, lat_spec, device, spec.train.channels_last, used["device_name"])
    s = size(model, path)
    return {
        "checkpoint": str(path), "integrity": loaded.integrity, "checkpoint_sha256": loaded.sha256,
        "run": spec.name, "spec_hash": loaded.spec_hash, "global_step": loaded.global_step,
        "model": spec.model.name,
        "params_total": s.params_total, "params_trainable": s.params_trainable,
        "checkpoint_mb": (s.checkpoint_bytes or 0) / MB, "weights_mb": s.weights_bytes / MB,
        "checkpoint_bytes": s.checkpoint_bytes, "weights_bytes": s.weights_bytes,  # exact, as audit.json records them
        "latency": (timed := asdict(lat)), "measured_with": used,
        "notes": [*loaded.warnings, *broken_warnings(model), *_cpu_notes(device, threads is not None),
                  *_setting_notes(loaded, device, lat_spec, threads is not None),
                  *(f"{t}: {text}" for t, text in latency_warnings(timed, None).values())],
    }  # fmt: skip


def measured_with(device: torch.device) -> dict[str, Any]:
    """What a figure printed by `evaluate` or `measure` was measured with, for comparing it with
    another machine's or version's: the auditor, torch, the CPU kernels torch picked (AVX2 and
    AVX-512 time bf16 ten times apart), the device, and when (UTC)."""
    gpu = environment.gpu_info(device)
    return {"auditor": __version__, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "device_name": gpu.name if gpu else environment.cpu_model(),
            "at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip


def _setting_notes(loaded: Loaded, device: torch.device, timed: Latency, threads_given: bool = False) -> list[str]:
    """Where this timing's setting is not the one the run's sheet timed at (a user test: a run at
    1 thread was re-timed at 2 without a word): the thread count of the CPU process that wrote the
    checkpoint, or one OMP_NUM_THREADS asked for that torch did not take; the batch size; and the
    autocast and compilation the model trained under (every latency is timed eager, in fp32)."""
    notes = []
    now, then = torch.get_num_threads(), loaded.trained_threads
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    if device.type == "cpu" and not threads_given and asked and not (asked.isdigit() and int(asked) == now):
        notes.append(f"OMP_NUM_THREADS={asked}, but torch runs {count(now, 'thread')} (it caps the count at the CPUs "
                     "this process may use, and ignores a value that is not a whole number): timed at that count")  # fmt: skip
    if device.type == "cpu" and then is not None and then != now:
        notes.append(f"timed at {count(now, 'torch thread')}; the process that wrote it trained at {then} (the run's "
                     f"sheet gives the count its latency was timed at): --threads {then} times it at that setting")  # fmt: skip
    if timed.batch_size != (ran := loaded.spec.measure.latency.batch_size):
        notes.append(f"timed at batch {timed.batch_size}; the run's sheet times batch {ran} (its spec's "
                     "measure.latency.batch_size)")  # fmt: skip
    if (amp := loaded.spec.train.amp) != "off":
        notes.append(f"timed in float32 without autocast, as a run's sheet times it; the model trained and was scored "
                     f"under {amp} autocast")  # fmt: skip
    if (mode := loaded.spec.train.compile) != "off":
        notes.append(f"timed as the eager model, as a run's sheet times it; the model trained under torch.compile "
                     f"(train.compile: {mode})")  # fmt: skip
    return notes


def _cpu_notes(device: torch.device, threads_given: bool = False) -> list[str]:
    """`environment.cpu_notes` for this process now: more torch threads than CPUs inflates the latency.
    `threads_given`: --threads chose the count, which is then what to change (a user test: the note
    said to set OMP_NUM_THREADS)."""
    remedy = ("give --threads {n} to time it without the turns" if threads_given else
              "set OMP_NUM_THREADS={n}, or give --threads {n}, to time it without the turns")  # fmt: skip
    return environment.cpu_notes(str(device), torch.get_num_threads(), environment.usable_cpus(),
                                 environment.cgroup_cpu_quota(), slows="inflates the latency timed here", remedy=remedy)  # fmt: skip
