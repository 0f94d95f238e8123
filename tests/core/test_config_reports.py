"""Configuration of issue 10: an account's time zone and the `reports:` section, as the
example file documents them; mistakes name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smppd import config
from tests.core.test_config import VALID

EXAMPLE = Path(__file__).parents[2] / "config" / "smppd.example.yaml"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_A_PASSWORD", "secret")
    monkeypatch.setenv("ACME_TOKEN", "a-token-of-twenty-chars")


def _uncommented_reports() -> dict:
    """The example's commented `reports:` block, as an operator would enable it."""
    text = EXAMPLE.read_text()
    block = text[text.index("# reports:"):]
    lines = [line[2:] for line in block.splitlines()
             if line.startswith("# ") and not line.startswith("#   #")]
    return yaml.safe_load("\n".join(lines))["reports"]


def test_the_documented_reports_section_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_USER", "reports")
    monkeypatch.setenv("SMTP_PASSWORD", "secret")
    data = yaml.safe_load(VALID)
    data["accounts"][0]["timezone"] = "Europe/Warsaw"
    reports = _uncommented_reports()
    reports["smtp"].pop("ca_file")  # the example's path does not exist here
    data["reports"] = reports
    settings = config.parse(data, "example.yaml")
    assert settings.accounts[0].timezone == "Europe/Warsaw"
    assert settings.reports.directory == "/var/lib/smppd/reports"
    assert settings.reports.smtp is not None
    assert (settings.reports.smtp.host, settings.reports.smtp.port,
            settings.reports.smtp.starttls, settings.reports.smtp.username,
            settings.reports.smtp.password) == ("smtp.example.com", 587, True, "reports",
                                                "secret")
    assert "secret" not in repr(settings.reports.smtp)  # never logged


def test_defaults_without_a_reports_section() -> None:
    settings = config.parse(yaml.safe_load(VALID), "x.yaml")
    assert settings.accounts[0].timezone == "UTC"
    assert settings.reports.smtp is None and settings.reports.async_rows == 100_000


@pytest.mark.parametrize(("patch", "key"), [
    ({"accounts": [{"name": "acme", "token": "a-token-of-twenty-chars",
                    "timezone": "Europe/Warsow"}]}, "accounts[0].timezone"),
    ({"reports": {"workers": 0}}, "reports.workers"),
    ({"reports": {"expire_days": "soon"}}, "reports.expire_days"),
    ({"reports": {"smtp": {"port": 25}}}, "reports.smtp.host"),
    ({"reports": {"smtp": {"host": "h", "ca_file": "/nonexistent.pem"}}},
     "reports.smtp.ca_file"),
    ({"reports": {"smtp": {"host": "h", "tls": True, "starttls": True}}},
     "reports.smtp.starttls"),
    ({"reports": {"colour": "blue"}}, "reports.colour"),
])
def test_mistakes_name_the_key(patch: dict, key: str) -> None:
    data = yaml.safe_load(VALID) | patch
    with pytest.raises(config.ConfigError) as caught:
        config.parse(data, "bad.yaml")
    assert any(f"bad.yaml: {key}:" in problem for problem in caught.value.problems), \
        caught.value.problems
