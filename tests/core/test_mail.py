"""smppd.mail against a real SMTP server (aiosmtpd) on 127.0.0.1: sent, refused
for good, refused for now, unreachable."""

from __future__ import annotations

import socket

import pytest

from smppd.config import SmtpSettings
from smppd.mail import Attachment, Mail, MailError, send
from tests.support.smtp_sink import SmtpSink


def _mail() -> Mail:
    return Mail(("ops@example.com",), "Zażółć", "Treść ✓", "<test-1@smppd>",
                (Attachment("r.csv", "text/csv", b"a,b\r\n1,2\r\n"),))


def test_a_mail_arrives_with_its_id_and_attachment() -> None:
    sink = SmtpSink().start()
    try:
        send(SmtpSettings("127.0.0.1", sink.port, starttls=False, sender="smppd@example.com"),
             _mail())
    finally:
        sink.stop()
    (message,) = sink.messages
    assert message["Message-ID"] == "<test-1@smppd>" and message["From"] == "smppd@example.com"
    parts = list(message.walk())
    assert any(p.get_filename() == "r.csv" for p in parts)
    assert any("Treść ✓" in (p.get_payload(decode=True) or b"").decode("utf-8", "replace")
               for p in parts if p.get_content_type() == "text/plain")


@pytest.mark.parametrize(("answer", "temporary"), [("451 4.3.0 try later", True),
                                                   ("550 5.1.1 no such user", False)])
def test_refusals_say_whether_to_retry(answer: str, temporary: bool) -> None:
    sink = SmtpSink(answer).start()
    try:
        with pytest.raises(MailError) as error:
            send(SmtpSettings("127.0.0.1", sink.port, starttls=False), _mail())
    finally:
        sink.stop()
    assert error.value.temporary is temporary and answer[:3] in str(error.value)


def test_an_unreachable_server_is_temporary() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MailError) as error:
        send(SmtpSettings("127.0.0.1", port, starttls=False, timeout=2), _mail())
    assert error.value.temporary
