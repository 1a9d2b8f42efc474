"""new_pool_state (controller/core/state.py) builds a PoolState like PoolState(...) does."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from typing import cast

import pytest

from controller.core.state import NEVER, PoolState, new_pool_state

VALUES = (
    (1500.0, 7, True, 100.0, 90.0, False, True, None, False, False, False, None, "price", "running", False),
    (0.0, 8, False, 120.0, 120.0, True, False, 125.0, True, True, True, 0, "safety", "faulted", True),
    (3.5, 0, True, NEVER, NEVER, False, True, None, False, False, False, 1, "ramp", "ramping", False),
)  # fmt: skip


@pytest.mark.parametrize("values", VALUES)
def test_built_record_is_a_pool_state_in_every_respect(values: tuple[object, ...]) -> None:
    built = new_pool_state(*values)  # type: ignore[arg-type]
    plain = PoolState(*values)  # type: ignore[arg-type]
    assert type(built) is PoolState
    assert built == plain and plain == built
    assert hash(built) == hash(plain)
    assert repr(built) == repr(plain)
    assert dataclasses.astuple(built) == values
    assert dataclasses.replace(built, seq=99) == dataclasses.replace(plain, seq=99)
    assert pickle.loads(pickle.dumps(built)) == plain
    assert copy.copy(built) == plain
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.seq = 1  # type: ignore[misc]


def test_parameters_and_slots_follow_the_fields() -> None:
    names = [f.name for f in dataclasses.fields(PoolState)]
    built_by = cast(type, new_pool_state)
    assert list(inspect.signature(built_by).parameters) == names
    assert built_by.__slots__ == PoolState.__slots__ == tuple(names)  # type: ignore[attr-defined]
