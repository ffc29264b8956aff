"""auditor.runner pieces that the CLI tests do not reach directly."""

from __future__ import annotations

import gc

import pytest

from auditor.runner import long_lived_frozen


def test_long_lived_frozen_freezes_only_inside_the_block() -> None:
    assert gc.get_freeze_count() == 0
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0  # the objects alive at entry are left out of collections
    assert gc.get_freeze_count() == 0
    with pytest.raises(KeyError), long_lived_frozen():
        raise KeyError("x")  # a failing run unfreezes too
    assert gc.get_freeze_count() == 0
