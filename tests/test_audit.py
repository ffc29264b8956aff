"""Tests for the audit record's files: atomic JSON/CSV writing and reading audit.json back."""

from __future__ import annotations

import json
import math
from pathlib import Path

from auditor.audit import finite_or_none, write_json


def test_non_finite_floats_are_written_as_null(tmp_path: Path) -> None:
    """A diverged loss (NaN) or an overflow (inf) must not make the record unreadable JSON."""
    record = {"loss": math.nan, "lr": math.inf, "hist": [1.0, -math.inf, (2.0, math.nan)], "ok": 0.5, "n": 3}
    write_json(tmp_path / "a.json", record)
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == {"loss": None, "lr": None, "hist": [1.0, None, [2.0, None]], "ok": 0.5, "n": 3}
    assert "NaN" not in text and "Infinity" not in text
    assert finite_or_none({"x": [math.inf]}) == {"x": [None]}
