"""The one intake path: route, text, price and the Accept operation, for API
messages and job rows alike."""

from __future__ import annotations

import pytest

from smppd import config
from smppd.api.validation import ApiError
from smppd.daemon.intake import Admission, Tariff, queued
from smppd.daemon.router import Router
from smppd.protocol.segmentation import ConcatReferences


def _smsc(name: str, **kw: object) -> config.SmscSettings:
    return config.SmscSettings(name=name, host="127.0.0.1", port=2775, system_id="a",
                               password="b", **kw)  # type: ignore[arg-type]


def _admission(routes: dict[str, tuple[str, ...]] | None = None) -> Admission:
    return Admission(Router.of(routes or {}, [_smsc("a"), _smsc("b", max_parts=2)]),
                     Tariff(2, (("48", 3), ("4860", 5))))


def test_tariff_takes_the_longest_prefix() -> None:
    tariff = Tariff(2, (("48", 3), ("4860", 5)))
    assert [tariff.price(n) for n in ("48601", "48501", "4412")] == [5, 3, 2]


def test_a_long_message_is_priced_per_part_with_a_reference() -> None:
    references = ConcatReferences(bits=16)
    prepared = _admission().prepare(7, "Acme", "48601234567", "PL", "x" * 200, references,
                                    1000.0, ref_id="r1", params='{"a":"b"}')
    op = prepared.op
    assert (op.parts, op.points, op.encoding) == (2, 10, "gsm")
    assert op.concat_ref != 0 and op.smsc is None and op.ref_id == "r1"
    short = _admission().prepare(7, "Acme", "48601234567", "PL", "hi", references, 1000.0)
    assert short.op.concat_ref == 0 and short.op.points == 5
    message = queued(op)
    assert message.unsent == (1, 2) and message.id == op.message_id


def test_unrouted_numbers_and_texts_the_route_cannot_carry_are_refused() -> None:
    admission = _admission({"4860": ("b",)})
    references = ConcatReferences(bits=16)
    with pytest.raises(ApiError) as refused:
        admission.prepare(7, "Acme", "12025550123", "US", "hi", references, 0.0)
    assert refused.value.field == "to" and "no route" in refused.value.message
    with pytest.raises(ApiError) as too_long:  # SMSC b allows 2 parts
        admission.prepare(7, "Acme", "48601234567", "PL", "x" * 500, references, 0.0)
    assert too_long.value.field == "text"
    routed = admission.prepare(7, "Acme", "48601234567", "PL", "hi", references, 0.0, job_id="j")
    assert routed.op.smsc == "b" and routed.op.job_id == "j"
