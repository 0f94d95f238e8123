"""E-mailing a ready report: the file attached, or a link when it is over the size
limit. smtplib on a pool thread (blocking I/O never runs on the reactor); STARTTLS
or implicit TLS with certificate verification; credentials from the configuration
(`${VAR}`). A failure raises MailError with the server's words, which the service
shows on the report and retries with back-off.

Sending is at-least-once: a crash after the server accepted the message and before
the report was marked `sent` sends it again, with the same Message-ID (derived from
the report id) so a mail system or reader can tell it is the same.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from ..mail import MailError, deliver

__all__ = ["MailError", "compose", "deliver"]


def compose(sender: str, recipients: list[str], report: Any, attach_max: int,
            link: str) -> EmailMessage:
    message = EmailMessage()
    title = report.name or f"{report.type} report"
    message["Subject"] = f"smppd report: {title}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<report-{report.id}@smppd>"
    period = ""
    if report.period_start is not None:
        period = (f"Period: {report.period_start:%Y-%m-%d %H:%M} to "
                  f"{report.period_end:%Y-%m-%d %H:%M} UTC ({report.timezone} days)\n")
    lines = [f"Your report \"{title}\" is ready.", "", f"Type: {report.type}",
             f"Format: {report.format}", f"Rows: {report.rows:,}"]
    size = report.file_size or 0
    path = Path(report.file_path) if report.file_path else None
    attach = path is not None and size <= attach_max
    if attach:
        lines.append(f"The file is attached ({report.file_name}, {size:,} bytes).")
    else:
        lines += [f"The file ({size:,} bytes) is too large to attach; download it here",
                  "(with your API token as the Bearer credential):", link]
    message.set_content(period + "\n".join(lines) + "\n")
    if attach and path is not None:
        maintype, _, subtype = (report.content_type or "application/octet-stream").split(
            ";")[0].partition("/")
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype,
                               filename=report.file_name)
    return message
