"""The one intake path: route, text, price and the Accept operation, for API
messages and job rows alike."""

from __future__ import annotations

import random

import pytest

from smppd import config
from smppd.api import validation
from smppd.api.validation import ApiError
from smppd.daemon import intake
from smppd.daemon.intake import Admission, Tariff, queued
from smppd.daemon.router import Router
from smppd.protocol.segmentation import ConcatReferences
from smppd.store import operations as ops


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


def test_a_job_message_is_an_accept_as_a_tuple() -> None:
    """The store reads a JobMessage where it reads an Accept: the same fields, in the
    same order, and a job row gets what `prepare` gives the same message."""
    assert ops.JobMessage._fields == ops.Accept._fields
    references = ConcatReferences(bits=16)
    for text in ("hi", "x" * 200, "Zażółć gęślą jaźń", "€" * 100):
        accept = _admission().prepare(7, "Acme", "48601234567", "PL", text, references,
                                      1000.0, ref_id="r", params="{}", job_id="j",
                                      channel="job", sent_by="u", partner="p",
                                      callback_id="c").op
        row = _admission().job_message(7, "Acme", "48601234567", "PL", text, references,
                                       1000.0, "j", "r", "{}", "u", "p", "c", False)
        assert isinstance(row, ops.JobMessage)
        mine = {f: getattr(row, f) for f in row._fields if f not in ("message_id",
                                                                     "concat_ref")}
        theirs = {f: getattr(accept, f) for f in mine}
        assert mine == theirs
        assert (row.concat_ref == 0) == (accept.concat_ref == 0)


@pytest.mark.parametrize("smsc", [_smsc("a"), _smsc("a", dcs0_charset="latin1"),
                                  _smsc("a", split="udh16", max_parts=4),
                                  _smsc("a", latin1=True, split="sar")])
def test_plain_texts_are_described_by_their_length(smsc: config.SmscSettings) -> None:
    """Admission.info answers a plain text from the first of its length: the same as
    validation.text_info for every length, and other texts are asked each time."""
    admission = Admission(Router.of({}, [smsc]), Tariff(1))
    settings = admission.router.text_for("a")
    plain = [ch for ch in map(chr, range(256)) if intake._PLAIN.fullmatch(ch)]
    assert "{" not in plain and "€" not in plain and "a" in plain and "\n" in plain
    rng = random.Random(14)
    for length in [*range(0, 700, 7), 152, 153, 159, 160, 161, 306, 307, 459, 460]:
        for alphabet in (plain, [*plain, "{", "€", "ą", "Δ"]):
            for _ in range(3):
                text = "".join(rng.choice(alphabet) for _ in range(length))
                try:
                    expected = validation.text_info(text, settings.profile,
                                                    settings.policy)
                except ApiError as exc:
                    with pytest.raises(ApiError) as raised:
                        admission.info("a", text)
                    assert raised.value.message == exc.message
                    continue
                assert admission.info("a", text) == expected
