"""Sending e-mail over SMTP (smtplib, blocking: call it from a thread, never the
reactor). One sender for whatever smppd mails: inbound forwards (`send` a Mail),
reports (`deliver` a composed message).

    send(settings.smtp, Mail(to=("ops@example.com",), subject="...", text="...",
                             message_id="<inbound-forward-7@smppd>"))

`message_id` should be stable per logical e-mail: an outbox that resends after a
crash then sends the same Message-ID, and mail systems drop the duplicate.
Failures raise MailError; `temporary` says whether trying later can help (the
server is unreachable or answered 4xx) or not (5xx: the address is refused).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from .config import SmtpSettings


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # e.g. text/csv
    data: bytes


@dataclass(frozen=True, slots=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    text: str
    message_id: str | None = None
    attachments: tuple[Attachment, ...] = ()


class MailError(Exception):
    def __init__(self, message: str, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


def build(settings: SmtpSettings, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    if mail.message_id:
        message["Message-ID"] = mail.message_id
    message.set_content(mail.text)
    for attachment in mail.attachments:
        main, _, sub = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=main, subtype=sub or "octet-stream",
                               filename=attachment.filename)
    return message


def send(settings: SmtpSettings, mail: Mail) -> None:
    """Blocking. Raises MailError naming what failed."""
    if not mail.to:
        raise MailError("no recipients", temporary=False)
    deliver(settings, build(settings, mail))


def deliver(settings: SmtpSettings, message: EmailMessage) -> None:
    """Blocking: one message to the server, over STARTTLS or implicit TLS with the
    certificate verified (the system's trust store, or `ca_file`)."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    where = f"SMTP {settings.host}:{settings.port}"
    try:
        if settings.tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port,
                                                    timeout=settings.timeout, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.starttls and not settings.tls:
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, settings.password or "")
            refused = client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(f"every recipient was refused: {_codes(exc.recipients)}",
                        temporary=_all_temporary(exc.recipients)) from None
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                        temporary=400 <= exc.smtp_code < 500) from None
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        raise MailError(f"{where}: {exc}", temporary=True) from None
    if refused:
        raise MailError(f"some recipients were refused: {_codes(refused)}",
                        temporary=False)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _codes(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{address} ({code})" for address, (code, _) in recipients.items())


def _all_temporary(recipients: dict[str, tuple[int, bytes]]) -> bool:
    return all(400 <= code < 500 for code, _ in recipients.values())
