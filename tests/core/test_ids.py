"""Message ids sort by creation, even within a millisecond or when the clock steps back."""

from __future__ import annotations

from typing import Any

import pytest

from smppd import ids as ids_module
from smppd.ids import IdBlocks, bound_for_time, looks_like_id, new_id


@pytest.fixture(autouse=True)
def own_clock_state(monkeypatch: Any) -> None:
    """These tests move the id clock into the future; keep that out of other tests."""
    monkeypatch.setattr(ids_module, "_state", {"ms": 0, "counter": 0})


def test_ids_increase_within_a_millisecond_and_across_a_clock_step_back() -> None:
    moments = [1_800_000_000.0001] * 50 + [1_799_999_999.0] * 5 + [1_800_000_001.0] * 5
    ids = [new_id(moment) for moment in moments]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(looks_like_id(i) for i in ids)


def test_time_bounds_bracket_the_ids_of_that_moment() -> None:
    made = new_id(1_900_000_000.5)
    assert bound_for_time(1_900_000_000.5) <= made <= bound_for_time(1_900_000_000.5, True)
    assert made > bound_for_time(1_899_999_999.0, True)
    assert not looks_like_id("../etc/passwd") and not looks_like_id("A" * 32)


def test_id_blocks_make_what_new_id_makes() -> None:
    """A block is what as many new_id(now) calls make; ids made meanwhile come after."""
    now = 1_800_000_000.25
    new_id(now)
    state = dict(ids_module._state)
    expected = [new_id(now) for _ in range(7)]
    ids_module._state.update(state)
    block = IdBlocks(now, size=3)
    made = [block() for _ in range(3)]
    meanwhile = new_id(now)
    made += [block() for _ in range(4)]
    assert made[:3] == expected[:3] and meanwhile > made[2]
    assert made == sorted(made) and len({*made, meanwhile}) == 8
    assert all(looks_like_id(i) for i in made) and made[3] > meanwhile
