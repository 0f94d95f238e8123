"""The submit window: room, deadlines in order, timeouts remembered for late
responses."""

from __future__ import annotations

import pytest

from smppd.protocol.session import SessionError, SubmitWindow


def test_the_window_holds_at_most_its_size_and_expires_in_order() -> None:
    window = SubmitWindow(3)
    for sequence, deadline in ((1, 5.0), (2, 6.0), (3, 7.0)):
        window.open(sequence, f"t{sequence}", deadline)
    assert window.room == 0 and len(window) == 3 and 2 in window
    with pytest.raises(SessionError):
        window.open(4, "t4", 8.0)
    assert window.next_deadline() == 5.0
    assert window.expire(6.0) == ["t1", "t2"]
    assert window.room == 2 and window.next_deadline() == 7.0
    assert window.settle(3) == ("t3", False)
    assert window.settle(1) == ("t1", True)  # a late response, still reported
    assert window.settle(1) is None  # once
    assert window.settle(99) is None


def test_a_lost_connection_gives_every_open_submit_up() -> None:
    window = SubmitWindow(5)
    window.open(10, "a", 1.0)
    window.open(11, "b", 1.0)
    assert window.fail_all() == ["a", "b"]
    assert not window and window.knows(10) and window.next_deadline() is None
