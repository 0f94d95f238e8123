"""The portal and console over real HTTP from a real daemon (no browser): every
page renders for its role, sessions, CSRF, roles, isolation and escaping."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.pages import PageClient, start_portal


@pytest.fixture
def portal(start_daemon: Any) -> Any:
    return start_portal(start_daemon)


PAGES = ["/portal/", "/portal/send", "/portal/history", "/portal/jobs", "/portal/jobs/new",
         "/portal/reports", "/portal/inbound", "/portal/polls", "/portal/polls/new",
         "/portal/contacts", "/portal/callbacks", "/portal/users", "/portal/password"]


def test_every_page_renders_for_an_owner(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("ann")
    for path in PAGES:
        answer = client.get(path)
        assert answer.status == 200, (path, answer.status, answer.text[:2000])
        assert "<html lang=\"en\">" in answer.text


def test_every_console_page_renders(portal: Any) -> None:
    client = PageClient(portal.daemon.http_port)
    client.login("root", area="ops")
    for path in ["/ops/", "/ops/accounts", "/ops/inbound", "/ops/callbacks",
                 f"/ops/accounts/{portal.daemon.accounts['acme'].id}"]:
        answer = client.get(path)
        assert answer.status == 200, (path, answer.status, answer.text[:2000])
