"""Checklist 31: framing by command_length."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppd.protocol import pdu as codec
from smppd.protocol.framing import Framer, FramingError


def _pdus(n: int) -> list[bytes]:
    return [codec.encode(codec.make("submit_sm", i + 1, destination_addr="48500100200",
                                    short_message=b"x" * i)) for i in range(n)]


def test_byte_by_byte() -> None:
    framer = Framer()
    (raw,) = _pdus(1)
    frames = []
    for octet in raw:
        frames += framer.feed(bytes([octet]))
    assert frames == [raw]
    assert framer.pending == 0


def test_three_pdus_in_one_chunk() -> None:
    raws = _pdus(3)
    assert Framer().feed(b"".join(raws)) == raws


@given(st.lists(st.integers(1, 40), max_size=10))
def test_any_chunking_gives_the_same_pdus(cuts: list[int]) -> None:
    raws = _pdus(5)
    stream = b"".join(raws)
    framer = Framer()
    frames: list[bytes] = []
    position = 0
    for cut in cuts:
        frames += framer.feed(stream[position:position + cut])
        position += cut
    frames += framer.feed(stream[position:])
    assert frames == raws


@pytest.mark.parametrize("length", [0xFFFFFFF0, 15, 0])
def test_impossible_length_is_unrecoverable(length: int) -> None:
    framer = Framer()
    with pytest.raises(FramingError) as info:
        framer.feed(length.to_bytes(4, "big") + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x09")
    assert info.value.sequence == 9
    assert framer.pending == 0
