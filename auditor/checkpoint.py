"""Checkpoints: atomic writes with a verified sha256, and safe loading.

A checkpoint `X.pt` is written to a temp file, fsynced and renamed into
place; its digest then goes to `X.pt.sha256` the same way. A file without a
matching digest (killed between the two renames, or corrupted later) is never
loaded as intact.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch

from auditor.errors import InvalidInput
from auditor.fileio import atomic_write_bytes, sha256_file

STEP_GLOB = "step-*.pt"
STEP_NAME = re.compile(r"^step-(\d+)\.pt$")  # what save_step_checkpoint names them
KEEP_STEP_CHECKPOINTS = 2  # so a corrupted newest one still has a fallback


def to_bytes(payload: dict[str, Any]) -> bytes:
    """Serialise a payload with torch.save into memory."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save(path: Path, payload: dict[str, Any]) -> str:
    """Atomically write a checkpoint and its digest sidecar; return the sha256."""
    return save_bytes(path, to_bytes(payload))


def save_bytes(path: Path, data: bytes) -> str:
    """Atomically write serialised checkpoint bytes and their digest sidecar."""
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(path, data)
    atomic_write_bytes(digest_path(path), f"{digest}  {path.name}\n".encode())
    return digest


def digest_path(path: Path) -> Path:
    """The sidecar file holding a checkpoint's sha256."""
    return path.with_name(path.name + ".sha256")


def verify(path: Path) -> str | None:
    """None if `path` is intact (digest matches), else the reason it is not."""
    if not path.is_file():
        return "missing"
    side = digest_path(path)
    if not side.is_file():
        return "no digest file (write was interrupted)"
    try:
        words = side.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return "unreadable digest file"
    expected = words[0] if words else ""
    actual = sha256_file(path)
    return None if actual == expected else f"sha256 mismatch (file {actual[:12]}, recorded {expected[:12]})"


def load(path: Path, *, check_digest: bool = True) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True; raise InvalidInput when unusable."""
    if check_digest and (reason := verify(path)) is not None:
        raise InvalidInput(f"{path}: checkpoint is not intact: {reason}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file fails in many ways: all are bad input
        raise InvalidInput(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise InvalidInput(f"{path}: not an auditor checkpoint (no 'model' entry)")
    return payload


def step_checkpoints(ckpt_dir: Path) -> list[Path]:
    """The step checkpoints the trainer wrote (`step-<digits>.pt`); other files are not ours."""
    return [p for p in ckpt_dir.glob(STEP_GLOB) if STEP_NAME.match(p.name) and p.is_file()]


def candidates(ckpt_dir: Path) -> list[Path]:
    """Resume candidates: last.pt and step checkpoints, newest position first."""
    last = [ckpt_dir / "last.pt"] if (ckpt_dir / "last.pt").is_file() else []
    return sorted([*last, *step_checkpoints(ckpt_dir)], key=lambda p: (_position(p), p.name), reverse=True)


def _position(path: Path) -> int:
    # Global step is encoded in step checkpoint names; last.pt is read for it.
    if m := STEP_NAME.match(path.name):
        return int(m[1])
    try:
        return int(load(path, check_digest=False).get("global_step", -1))
    except InvalidInput:
        return -1


def newest_intact(ckpt_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint whose digest verifies, and the ones skipped (with reasons)."""
    skipped: list[tuple[Path, str]] = []
    for p in candidates(ckpt_dir):
        reason = verify(p)
        if reason is None:
            return p, skipped
        skipped.append((p, reason))
    return None, skipped


def prune_step_checkpoints(ckpt_dir: Path, keep: int = KEEP_STEP_CHECKPOINTS) -> None:
    """Delete all but the newest `keep` step checkpoints (and their digests)."""
    steps = sorted(step_checkpoints(ckpt_dir), key=_position, reverse=True)
    for p in steps[keep:]:
        p.unlink(missing_ok=True)
        digest_path(p).unlink(missing_ok=True)


def weights_only_bytes(state_dict: dict[str, torch.Tensor]) -> int:
    """Size in bytes of a bare state dict as torch.save writes it."""
    return len(to_bytes(state_dict))
