"""Driving the portal and console without a browser: a cookie-keeping HTTP client
that reads a page's CSRF token as a browser's form would send it, and the set-up
of a daemon with users of every role and an operator."""

from __future__ import annotations

import http.client
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import urlencode

from argon2 import PasswordHasher

from smppd.store import portal_ops as pops
from tests.conftest import call

PASSWORD = "correct horse battery"
# Cheap parameters for the tests' own users: the portal verifies whatever hash it
# finds (argon2 keeps its parameters in the hash), and 0.2 s per login adds up.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
OPERATOR_HASH = _CHEAP.hash(PASSWORD)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    cookies: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def csrf(self) -> str:
        found = _CSRF.search(self.text)
        assert found, f"no CSRF token on the page (status {self.status})"
        return unescape(found.group(1))


class PageClient:
    """What a browser without JavaScript does: GET, POST forms, keep cookies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
            set_cookies = response.headers.get_all("Set-Cookie") or []
        finally:
            conn.close()
        for cookie in set_cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      data.decode("utf-8", "replace"), set_cookies)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, fields: dict[str, Any], token: str | None = None,
             files: dict[str, tuple[str, bytes]] | None = None) -> Answer:
        fields = dict(fields)
        if token is not None:
            fields["csrf"] = token
        if files:
            boundary = uuid.uuid4().hex
            chunks = []
            for name, value in fields.items():
                chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                              f'\r\n\r\n{value}\r\n'.encode())
            for name, (filename, data) in files.items():
                chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                              f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                              + data + b"\r\n")
            chunks.append(f"--{boundary}--\r\n".encode())
            return self.request("POST", path, b"".join(chunks), {
                "Content-Type": f"multipart/form-data; boundary={boundary}"})
        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def form(self, page_path: str, action: str, fields: dict[str, Any],
             files: dict[str, tuple[str, bytes]] | None = None) -> Answer:
        """Open the page, then post its form with the token it carries."""
        return self.post(action, fields, self.get(page_path).csrf(), files)

    def login(self, login: str, password: str = PASSWORD, area: str = "portal") -> Answer:
        answer = self.form(f"/{area}/login", f"/{area}/login",
                           {"login": login, "password": password})
        assert answer.status == 303, (answer.status, answer.text[:500])
        return answer


def add_user(daemon: Any, account: str, login: str, role: str, password: str = PASSWORD,
             must_change: bool = False, locale: str = "en") -> int:
    """A user straight through the daemon's writer (as `smppd user add` does)."""
    account_id = daemon.accounts[account].id
    result = call(daemon.writer.put, pops.CreateUser(
        account_id, login, None, _CHEAP.hash(password), role, must_change, locale, "test"))
    assert isinstance(result, int), result
    return result


def portal_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"operators": [{"login": "root", "password_hash": OPERATOR_HASH}]}
    settings.update(overrides)
    return settings


def start_portal(start_daemon: Callable[..., Any], **overrides: Any) -> Any:
    """A daemon with users ann (owner), sam (sender), vic (viewer) of acme and olga
    (owner) of other, and the operator root."""
    running = start_daemon(**portal_settings(**overrides))
    for account, login, role in (("acme", "ann", "owner"), ("acme", "sam", "sender"),
                                 ("acme", "vic", "viewer"), ("other", "olga", "owner")):
        add_user(running.daemon, account, login, role)
    return running
