"""Credentials are read as written: YAML numbers are refused for ids, passwords,
tokens and names (quote them), and secrets may come from systemd credentials
(`${cred:NAME}` = $CREDENTIALS_DIRECTORY/NAME) as well as the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from smppd import cli, config
from tests.core.test_config import VALID, environment, problems, write  # noqa: F401


@pytest.mark.parametrize(("key", "written", "read_as"), [
    ("system_id", "0123", "83"),
    ("password", "00001234", "668"),
    ("system_type", "0777", "511"),
    ("name", "0123", "83"),
    ("system_id", "12.50", "12.5"),
    ("password", "yes", "true"),
])
def test_a_credential_yaml_reads_as_a_number_is_refused(tmp_path: Path, key: str,
                                                       written: str, read_as: str) -> None:
    text = VALID.replace("    bind: transceiver", f"    {key}: {written}\n    bind: transceiver") \
        if key not in ("system_id", "password", "name") else \
        VALID.replace({"system_id": "system_id: acme", "password":
                       "password: ${CARRIER_A_PASSWORD}", "name": "name: carrier-a"}[key],
                      f"{key}: {written}")
    (found,) = problems(tmp_path, text)
    assert found.startswith(f"{tmp_path / 'smppd.yaml'}: smscs[0].{key}: ")
    assert f"YAML read {read_as} as" in found and "quotes" in found


def test_account_token_and_name_must_be_text(tmp_path: Path) -> None:
    text = VALID.replace("token: ${ACME_TOKEN}", "token: 1234567890123456789") \
        .replace("name: acme", "name: 0042")
    found = problems(tmp_path, text)
    assert any(p.endswith("accounts[0].name: expected text in quotes, but YAML read 34 as "
                          "a number; put the value in quotes: unquoted, 0123 becomes 83 and "
                          "00001234 becomes 668") for p in found), found
    assert any("accounts[0].token: expected text in quotes" in p for p in found), found


def test_quoted_values_and_environment_values_keep_their_digits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_A_PASSWORD", "00001234")
    text = VALID.replace("system_id: acme", 'system_id: "0123"')
    smsc = config.load(write(tmp_path, text)).smscs[0]
    assert (smsc.system_id, smsc.password) == ("0123", "00001234")


@pytest.mark.parametrize(("section", "key", "written", "read_as"), [
    ("smtp", "username", "0123", "83"),
    ("smtp", "password", "00001234", "668"),
    ("reports", "smtp", None, None),  # the reports' own SMTP server reads the same way
])
def test_smtp_credentials_yaml_reads_as_numbers_are_refused(
        tmp_path: Path, section: str, key: str, written: str | None,
        read_as: str | None) -> None:
    if section == "reports":
        text = VALID + "reports:\n  smtp:\n    host: mail.test\n    password: 00001234\n"
        where, read_as = "reports.smtp.password", "668"
    else:
        text = VALID + f"smtp:\n  host: mail.test\n  {key}: {written}\n"
        where = f"smtp.{key}"
    (found,) = problems(tmp_path, text)
    assert found.startswith(f"{tmp_path / 'smppd.yaml'}: {where}: "), found
    assert f"YAML read {read_as} as a number" in found and "quotes" in found


@pytest.mark.parametrize(("text_change", "where", "written", "read_as"), [
    # numbers and prefixes are digits, but 0123 is not "83" (YAML 1.1 octal)
    ("inbound_numbers:\n  - number: 0123\n    kind: dedicated\n    account: acme\n",
     "inbound_numbers[0].number", "0123", "83"),
    ("routes:\n  - prefix: 0123\n    smsc: carrier-a\n", "routes[0].prefix", "0123", "83"),
    # a number written so that YAML turns it into another one
    ("retry:\n  max_attempts: 1:30\n", "retry.max_attempts", "1:30", "90"),
])
def test_digits_yaml_reads_as_another_number_are_refused(
        tmp_path: Path, text_change: str, where: str, written: str, read_as: str) -> None:
    found = problems(tmp_path, VALID + text_change)
    expected = f"{tmp_path / 'smppd.yaml'}: {where}: YAML read {written} as the number " \
               f"{read_as}; put the value in quotes (or write the number in plain decimal " \
               "digits)"
    assert expected in found, found


def test_plain_numbers_are_still_numbers(tmp_path: Path) -> None:
    text = VALID.replace("window: 10", "window: 1_000").replace(
        "throughput: 100", "throughput: +100") + \
        "inbound_numbers:\n  - number: 48500100200\n    kind: dedicated\n    account: acme\n" \
        "smtp:\n  host: mail.test\n  username: \"0123\"\n  password: \"00001234\"\n"
    settings = config.load(write(tmp_path, text))
    assert (settings.smscs[0].window, settings.smscs[0].throughput) == (1000, 100)
    assert settings.inbound_numbers[0].number == "48500100200"
    assert settings.smtp is not None
    assert (settings.smtp.username, settings.smtp.password) == ("0123", "00001234")


# systemd credentials ------------------------------------------------------------------

def _with_credentials(text: str) -> str:
    return text.replace("${CARRIER_A_PASSWORD}", "${cred:carrier-a-password}") \
        .replace("${ACME_TOKEN}", "${cred:acme.token}")


def test_secrets_from_systemd_credentials(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "carrier-a-password").write_text("0123\n")  # as `echo` leaves it
    (folder / "acme.token").write_text("token-from-a-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    settings = config.load(write(tmp_path, _with_credentials(VALID)))
    assert settings.smscs[0].password == "0123"
    assert settings.accounts[0].token == "token-from-a-credential"


def test_a_missing_credential_is_a_config_error_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "acme.token").write_text("token-from-a-credential")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    path = write(tmp_path, _with_credentials(VALID))
    assert cli.main(["check-config", "--config", str(path)]) == config.EXIT_CONFIG
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{path}: smscs[0].password: systemd credential "
                           "'carrier-a-password' is not loaded")
    assert "LoadCredential=carrier-a-password:" in line


def test_a_credential_outside_systemd_says_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    found = problems(tmp_path, _with_credentials(VALID))
    assert [p.split(": ")[1] for p in found] == ["smscs[0].password", "accounts[0].token"]
    assert all("$CREDENTIALS_DIRECTORY is not set" in p for p in found)


def test_a_credential_name_cannot_leave_the_folder(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "x").write_text("secret")
    # A name with '/' is not a credential reference at all: it stays literal text.
    text = VALID.replace("${ACME_TOKEN}", "${cred:../x}xxxxxxxxxxxxxxxx")
    assert config.load(write(tmp_path, text)).accounts[0].token.startswith("${cred:../x}")
    (found,) = problems(tmp_path, VALID.replace("${ACME_TOKEN}", "${cred:..}"))
    assert "accounts[0].token: systemd credential '..' is not loaded" in found


@pytest.mark.parametrize(("line", "expected"), [
    ("retry:\n  max_attempts: !!int abc\n",
     "line 19, column 17: invalid YAML: 'abc' tagged !!int is not a whole number"),
    ("retry:\n  max_attempts: !!float abc\n", "invalid YAML: could not convert"),
])
def test_a_tag_that_does_not_fit_its_value_is_a_config_error(
        tmp_path: Path, line: str, expected: str) -> None:
    (found,) = problems(tmp_path, VALID + line)
    assert expected in found, found

