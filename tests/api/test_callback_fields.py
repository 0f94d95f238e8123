"""ref_id, params and partner at their limits; short-link replacement (and the part
count it changes at the GSM boundary); Standard Webhooks keys and signatures."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as s
from standardwebhooks import Webhook

from smppd.api import validation as v
from smppd.api.validation import ApiError
from smppd.callbacks import links, signing
from smppd.protocol.segmentation import describe
from tests.support.receiver import raw_signature

BASE = {"to": "+48500100200", "from": "Acme", "text": "x"}


def refused(body: dict[str, Any]) -> str | None:
    try:
        v.message(body)
    except ApiError as exc:
        assert exc.status == 400
        return exc.field
    return None


def test_ref_id_256_bytes_is_taken_257_is_refused() -> None:
    assert v.message({**BASE, "ref_id": "r" * 256}).ref_id == "r" * 256
    assert v.message({**BASE, "ref_id": "ż" * 128}).ref_id == "ż" * 128  # 256 bytes
    with pytest.raises(ApiError, match=r"at most 256 bytes \(UTF-8\), got 257") as caught:
        v.message({**BASE, "ref_id": "r" * 257})
    assert caught.value.field == "ref_id"
    assert refused({**BASE, "ref_id": "ż" * 128 + "r"}) == "ref_id"  # 257 bytes
    assert refused({**BASE, "ref_id": 7}) == "ref_id"
    assert refused({**BASE, "ref_id": "\ud800"}) == "ref_id"


@pytest.mark.parametrize(("params", "field"), [
    ({f"k{i}": "v" for i in range(21)}, "params"),
    ({"k": "v" * 256}, "params.k"),
    ({"k": "€" * 85 + "a"}, "params.k"),  # 256 bytes
    ({"k": 1}, "params.k"),
    ({"k": None}, "params.k"),
    ({"k": {"nested": "x"}}, "params.k"),
    ({"k": ["x"]}, "params.k"),
    ({"": "v"}, "params"),
    ({"k" * 65: "v"}, "params"),
    ([1], "params"),
    ("a=b", "params"),
])
def test_params_edge_cases_are_refused_naming_the_field(params: Any, field: str) -> None:
    assert refused({**BASE, "params": params}) == field


def test_params_at_their_limits_are_taken_as_written() -> None:
    full = {f"k{i}": "v" * 255 for i in range(20)}
    assert v.message({**BASE, "params": full}).params == full
    assert v.message({**BASE, "params": {"k": "€" * 85}}).params == {"k": "€" * 85}
    assert v.message({**BASE, "params": {}}).params == {}
    assert v.message({**BASE, "params": {"k": ""}}).params == {"k": ""}


def test_partner_callback_and_shorten_links() -> None:
    message = v.message({**BASE, "partner": "p" * 64, "callback": "a" * 32,
                         "shorten_links": True})
    assert (message.partner, message.callback, message.shorten_links) == \
        ("p" * 64, "a" * 32, True)
    assert refused({**BASE, "partner": "p" * 65}) == "partner"
    assert refused({**BASE, "partner": " "}) == "partner"
    assert refused({**BASE, "callback": "nope"}) == "callback"
    assert refused({**BASE, "shorten_links": "yes"}) == "shorten_links"


def test_job_rows_carry_their_own_ref_id_and_params_over_the_jobs() -> None:
    job = v.job({"name": "n", "from": "Acme", "text": "Hi {name}", "ref_id": "job-ref",
                 "params": {"campaign": "x", "shop": "a"}, "partner": "p1",
                 "recipients": ["+48500100200"]})
    base = job.extras
    row = v.job_row({"to": "+48500100200", "name": "Ann", "ref_id": "row-1",
                     "param.shop": "b", "param.till": "3"}, job.template, base)
    assert row.text == "Hi Ann" and row.ref_id == "row-1"
    assert row.params == {"campaign": "x", "shop": "b", "till": "3"}
    plain = v.job_row({"to": "+48500100200", "name": "Bo", "ref_id": ""}, job.template, base)
    assert plain.ref_id == "job-ref" and plain.params is base.params
    nested = v.job_row({"to": "+48500100200", "name": "C", "params": {"shop": "c"}},
                       job.template, base)
    assert nested.params == {"campaign": "x", "shop": "c"}
    with pytest.raises(ApiError) as caught:
        v.job_row({"to": "+48500100200", "name": "D", "param.x": "v" * 256}, job.template,
                  base)
    assert caught.value.field == "params.x"
    with pytest.raises(ApiError) as caught:
        v.job_row({"to": "+48500100200", "name": "D", "ref_id": "r" * 257}, job.template,
                  base)
    assert caught.value.field == "ref_id"


def test_a_form_job_reads_its_extras_from_text_fields() -> None:
    job = v.job({"name": "n", "from": "Acme", "text": "t", "params": '{"a": "b"}',
                 "shorten_links": "true", "ref_id": "", "partner": "p"}, rows=iter(()))
    assert job.extras == v.Extras(None, {"a": "b"}, "p", None, True)
    with pytest.raises(ApiError) as caught:
        v.job({"name": "n", "from": "Acme", "text": "t", "params": "{"}, rows=iter(()))
    assert caught.value.field == "params"


# Short links ---------------------------------------------------------------------------

SHORT = links.Shortener("https://s.example/")


def test_urls_are_found_without_the_sentences_punctuation() -> None:
    text = ("Sale! See https://shop.example/a?b=1&c=2. Or (http://x.example/p_(1)) and "
            "HTTPS://UP.example/X, not ftp://no.example or http:// alone.")
    assert [url for _, _, url in links.find_urls(text)] == [
        "https://shop.example/a?b=1&c=2", "http://x.example/p_(1)", "HTTPS://UP.example/X"]


def test_every_url_gets_its_own_code_and_ours_are_left_alone() -> None:
    text, made = SHORT.shorten("a https://x.example/1 b https://x.example/1 "
                               "c https://s.example/abcdefghi")
    assert [url for _, url in made] == ["https://x.example/1", "https://x.example/1"]
    codes = [code for code, _ in made]
    assert len(set(codes)) == 2 and all(links.CODE.match(code) for code in codes)
    assert text == (f"a https://s.example/{codes[0]} b https://s.example/{codes[1]} "
                    "c https://s.example/abcdefghi")


def test_codes_are_unguessable_and_short() -> None:
    assert links.CODE_BITS >= 48 and 62 ** links.CODE_LENGTH >= 2 ** links.CODE_BITS
    codes = {links.new_code() for _ in range(20_000)}
    assert len(codes) == 20_000
    assert all(len(code) == links.CODE_LENGTH for code in codes)


def test_replacement_moves_the_part_count_across_the_gsm_boundary() -> None:
    """160 GSM characters are one part, 161 are two (153 + 8): a long URL that makes
    the text two parts becomes one once shortened, and a short one the reverse."""
    url = "https://shop.example/" + "p" * 60
    text = "Offer " + url + " " + "x" * (161 - len("Offer ") - len(url) - 1)
    assert len(text) == 161 and describe(text).parts == 2
    shortened, _ = SHORT.shorten(text)
    assert len(shortened) == 161 - len(url) + len("https://s.example/") + links.CODE_LENGTH
    assert describe(shortened).parts == 1
    tiny = "https://t.co/a"
    grows = "y" * (160 - len(tiny) - 1) + " " + tiny
    assert len(grows) == 160 and describe(grows).parts == 1
    assert describe(SHORT.shorten(grows)[0]).parts == 2
    # Unicode in the URL made the text UCS-2; once replaced it is GSM again.
    text = "Hi https://example.com/zażółć"
    assert describe(text).encoding.value == "ucs2"
    assert describe(SHORT.shorten(text)[0]).encoding.value == "gsm"


@given(s.text(alphabet=s.sampled_from("ab :/.?()[]httpsx,!\n"), max_size=200))
def test_shortening_any_text_keeps_everything_but_the_urls(text: str) -> None:
    shortened, made = SHORT.shorten(text)
    rebuilt = shortened
    for code, url in made:
        rebuilt = rebuilt.replace("https://s.example/" + code, url, 1)
    assert rebuilt == text
    assert not [u for _, _, u in links.find_urls(shortened) if not u.startswith(SHORT.base_url)]


# Signatures ----------------------------------------------------------------------------

def test_keys_are_made_and_checked() -> None:
    key = signing.new_secret()
    assert key.startswith("whsec_") and signing.check_secret(key) is None
    assert len(base64.b64decode(key[6:])) == 32
    assert "whsec_" in signing.check_secret("abc")
    assert "base64" in signing.check_secret("whsec_***")
    assert "24 to 64 bytes" in signing.check_secret("whsec_" + base64.b64encode(b"k").decode())


def test_signature_verifies_with_the_library_and_by_hand() -> None:
    key = signing.new_secret()
    body = '{"type":"message.final","data":{"id":"x"}}'
    now = int(time.time())
    headers = signing.headers(key, "evt-1", now, body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]+=*", headers["webhook-signature"])
    assert Webhook(key).verify(body, headers) == {"type": "message.final",
                                                  "data": {"id": "x"}}
    assert headers["webhook-signature"] == raw_signature(key, "evt-1", str(now),
                                                         body.encode())
    with pytest.raises(Exception, match="signature"):
        Webhook(signing.new_secret()).verify(body, headers)
