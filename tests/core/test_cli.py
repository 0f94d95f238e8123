"""User mistakes on the command line end in one clear line, not a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from smppd import cli
from smppd.store import database


def test_port_in_use_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["fake-smsc", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"smppd fake-smsc: cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_unwritable_report_directory(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["demo", "--dir", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("smppd demo: ") and str(blocker) in err


@pytest.mark.parametrize("argv", [["demo", "--count", "0"], ["demo", "--count", "x"],
                                  ["fake-smsc", "--port", "70000"]])
def test_bad_numbers_are_rejected_by_name(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert argv[1] in capsys.readouterr().err




def test_db_upgrade_creates_the_schema(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert cli.main(["db", "upgrade", "--url", url]) == 0
    assert f"revision {database.head_revision()}" in capsys.readouterr().out
    assert cli.main(["db", "upgrade", "--url", url]) == 0  # again: nothing to do


def test_db_upgrade_names_a_missing_folder(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "upgrade", "--url", f"sqlite:///{tmp_path}/absent/x.db"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_db_upgrade_names_a_missing_driver(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["db", "upgrade", "--url", "postgresql+nosuchdriver://x@127.0.0.1/db"]) == 1
    err = capsys.readouterr().err
    assert "no driver for postgresql+nosuchdriver" in err and "Traceback" not in err
