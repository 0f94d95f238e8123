"""Units of the portal without a daemon: the login throttle on a fake clock, session
expiry, CSRF comparison, passwords, roles, the chart, error explanations, and the
catalogs (every message translated, placeholders kept, the template up to date)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from twisted.internet import defer

from smppd.config import PortalSettings
from smppd.portal import chart, csrf, explain, i18n, passwords, templating
from smppd.portal.sessions import Sessions, cookie_header, cookies
from smppd.portal.throttle import LoginThrottle
from smppd.portal.web import ROLES, allowed
from smppd.status import ALL
from smppd.store import portal_ops as pops
from smppd.store.portal_queries import SessionRow

PORTAL = Path(__file__).parents[2] / "smppd" / "portal"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_failed_logins_are_throttled_per_login_and_per_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, per_login=3, per_address=5, window=600)
    for _ in range(3):
        assert throttle.wait("ann", "10.0.0.1") == 0
        throttle.failed("ann", "10.0.0.1")
    assert throttle.wait("ann", "10.0.0.9") == pytest.approx(600)  # the login, anywhere
    assert throttle.wait("ANN", "10.0.0.9") > 0  # whatever its case
    assert throttle.wait("bob", "10.0.0.9") == 0
    for login in ("bob", "cid"):  # the address: 5 failures whatever the logins
        throttle.failed(login, "10.0.0.1")
    assert throttle.wait("dan", "10.0.0.1") > 0
    assert throttle.wait("dan", "10.0.0.2") == 0
    clock.now += 601  # the window passes
    assert throttle.wait("ann", "10.0.0.1") == 0
    throttle.failed("ann", "10.0.0.3")
    throttle.succeeded("ann")  # a success clears the login's count
    assert "ann" not in throttle.logins.failures


def test_the_throttle_keeps_a_bounded_memory() -> None:
    throttle = LoginThrottle(Clock(), per_login=2, per_address=2, window=600, max_keys=100)
    for n in range(1000):
        throttle.failed(f"login{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(throttle.logins.failures) == 100
    assert len(throttle.addresses.failures) == 100


def _row(**values: Any) -> SessionRow:
    base = dict(id="abc", kind="user", csrf="t", created_at=1_000_000.0,
                last_seen_at=1_000_000.0, user_id=1, login="ann", role="owner",
                locale="en", account_id=1, account_name="acme")
    base.update(values)
    return SessionRow(**base)


class FakeStore:
    def __init__(self, row: SessionRow | None) -> None:
        self.row = row
        self.ops: list[Any] = []

    def read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return defer.succeed(self.row)

    def put(self, op: Any) -> defer.Deferred[Any]:
        self.ops.append(op)
        return defer.succeed(None)


def _load(row: SessionRow | None, now: float, **settings: Any) -> tuple[Any, FakeStore]:
    from smppd.api.server import HttpRequest

    store = FakeStore(row)
    clock = Clock()
    clock.now = now
    sessions = Sessions(store.read, store.put, clock, lambda: PortalSettings(**settings))
    request = HttpRequest(b"GET", "/portal/", {}, {b"cookie": b"smppd_portal=value"}, b"")
    found = []
    sessions.load(request, "user").addCallback(found.append)
    return found[0], store


def test_a_session_ends_when_idle_or_too_old_and_is_touched_at_most_once_a_minute() -> None:
    start = 1_000_000.0
    found, store = _load(_row(), start + 30, idle_timeout=600, absolute_timeout=3600)
    assert found is not None and store.ops == []  # used 30 s ago: no write
    found, store = _load(_row(), start + 90, idle_timeout=600, absolute_timeout=3600)
    assert found is not None and isinstance(store.ops[0], pops.TouchSession)
    found, store = _load(_row(), start + 601, idle_timeout=600, absolute_timeout=3600)
    assert found is None and store.ops == [pops.EndSessions(("abc",))]
    old = _row(created_at=start - 3600, last_seen_at=start)  # busy, but logged in long ago
    found, store = _load(old, start + 1, idle_timeout=600, absolute_timeout=3600)
    assert found is None and store.ops == [pops.EndSessions(("abc",))]
    found, _ = _load(_row(disabled=True), start + 1)
    assert found is None
    found, _ = _load(_row(kind="operator"), start + 1)  # a console session is not a portal's
    assert found is None


def test_cookies_are_httponly_lax_and_secure_when_asked() -> None:
    name, value = cookie_header("smppd_portal", "v", "/portal/", secure=False)
    assert name == b"Set-Cookie"
    assert value == b"smppd_portal=v; Path=/portal/; HttpOnly; SameSite=Lax"
    _, value = cookie_header("smppd_portal", "", "/portal/", secure=True, max_age=0)
    assert value.endswith(b"; Secure; Max-Age=0")
    assert PortalSettings(base_url="https://sms.example/").secure_cookies
    assert not PortalSettings(base_url="http://127.0.0.1:8080/").secure_cookies


def test_cookie_parsing_takes_the_first_of_a_name_and_ignores_junk() -> None:
    from smppd.api.server import HttpRequest

    request = HttpRequest(b"GET", "/", {}, {b"cookie": b'a=1; junk; b="2"; a=3;;=x'}, b"")
    assert cookies(request) == {"a": "1", "b": "2"}


def test_csrf_tokens_compare_in_constant_time_and_nothing_matches_nothing() -> None:
    token = csrf.new_token()
    assert len(token) >= 40 and token != csrf.new_token()
    assert csrf.matches(token, token)
    assert not csrf.matches(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not csrf.matches(token, "") and not csrf.matches("", "") \
        and not csrf.matches(None, None)


def test_passwords() -> None:
    hashed = passwords.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "a long enough password")
    assert not passwords.verify(hashed, "a long enough passworD")
    assert not passwords.verify(None, "anything")  # no such user: still a mismatch
    assert not passwords.verify("not a hash", "anything")
    one_time = passwords.one_time_password()
    assert re.fullmatch(r"[A-Za-z2-9]{4}(-[A-Za-z2-9]{4}){3}", one_time)
    assert not set(one_time) & set("01lIO")
    assert passwords.problem("short", "ann") == "too_short"
    assert passwords.problem("Ann.Smith.1", "ann.smith.1") == "same_as_login"
    assert passwords.problem("x" * 300, "ann") == "too_long"
    assert passwords.problem("a good long one", "ann") is None


def test_roles() -> None:
    assert ROLES == ("owner", "sender", "viewer")
    assert [r for r in ROLES if allowed(r, "view")] == list(ROLES)
    assert [r for r in ROLES if allowed(r, "send")] == ["owner", "sender"]
    assert [r for r in ROLES if allowed(r, "owner")] == ["owner"]
    assert not allowed(None, "view")


def test_the_chart_escapes_its_labels_and_describes_every_figure() -> None:
    svg = str(chart.bars("Votes <b>", [("<i>x</i>", 3, 75.0), ("mint", 1, 25.0)], "votes"))
    assert "<i>" not in svg and "&lt;i&gt;x&lt;/i&gt;" in svg
    assert "&lt;i&gt;x&lt;/i&gt;: 3 votes, 75%; mint: 1 votes, 25%" in svg
    tracks = re.findall(r'width="([\d.]+)" height="28" class="chart-track"', svg)
    bars = re.findall(r'width="([\d.]+)" height="28" class="chart-bar"', svg)
    assert tracks == ["370", "370"] and bars == ["277.5", "92.5"]  # in proportion


def test_every_status_is_explained_and_errors_read_as_sentences() -> None:
    assert set(explain.STATUSES) == set(ALL)
    assert explain.error(None) is None
    assert explain.error("ESME_RINVDSTADR")[0].startswith("The SMSC says")
    text, values = explain.error("1:34")
    assert "network type" in text and values == {"code": "34", "type": "1"}
    assert explain.error("0x00000400")[1] == {"code": "0x00000400"}
    assert explain.error("vendor says no")[1] == {"code": "vendor says no"}


def _catalog() -> Any:
    with (PORTAL / "locales" / "pl" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale="pl")


def test_the_polish_catalog_translates_everything_and_keeps_placeholders() -> None:
    untranslated, broken = [], []
    for message in _catalog():
        if not message.id:
            continue
        if not message.string or message.fuzzy:
            untranslated.append(message.id)
        wanted = sorted(re.findall(r"%\(\w+\)s|\{\w+\}", message.id))
        if sorted(re.findall(r"%\(\w+\)s|\{\w+\}", message.string or "")) != wanted:
            broken.append(message.id)
    assert untranslated == [] and broken == []


def test_the_catalog_template_is_up_to_date_with_the_code(tmp_path: Path) -> None:
    """A message added to a page or view without re-extracting fails here."""
    out = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    str(PORTAL / "babel.cfg"), "-k", "N_", "--no-location", "-o", str(out),
                    str(PORTAL)], check=True, capture_output=True)
    with out.open("rb") as handle:
        extracted = {m.id for m in read_po(handle) if m.id}
    translated = {m.id for m in _catalog() if m.id}
    assert extracted - translated == set(), "run pybabel extract and update the catalog"


def test_pages_render_in_both_languages_with_autoescaping() -> None:
    for locale in i18n.LOCALES:
        env = templating.environment(locale)
        assert env.autoescape is True
        rendered = env.from_string("{{ value }} {{ _('Sign in') }}").render(value="<b>&")
        assert rendered.startswith("&lt;b&gt;&amp; ")
    assert templating.environment("pl").from_string("{{ _('Sign in') }}").render() \
        == "Zaloguj się"
    assert i18n.when("2026-11-22T10:05:00Z", "pl") == "22.11.2026, 10:05"
    assert i18n.number(1234567, "pl") == "1\xa0234\xa0567"
    assert i18n.from_header("pl-PL,pl;q=0.9,en;q=0.8") == "pl"
    assert i18n.from_header("de-DE,fr", "en") == "en"


def test_the_wheel_ships_the_pages_the_stylesheet_and_the_catalogs(tmp_path: Path) -> None:
    import zipfile

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "-w", str(tmp_path), str(PORTAL.parents[1])],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and ("NewConnectionError" in built.stderr
                                  or "No matching distribution" in built.stderr):
        pytest.skip("cannot build a wheel here (no package index for setuptools): "
                    + built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("smppd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(PORTAL.parent.parent)) for folder in ("templates", "static",
                                                                      "locales")
               for p in (PORTAL / folder).rglob("*") if p.is_file()}
    assert shipped and shipped <= names, shipped - names
    assert "smppd/portal/views/history.py" in names
