"""The daemon's configuration: YAML as in DESIGN.md, `${VAR}` from the environment,
`${cred:NAME}` from systemd's credentials ($CREDENTIALS_DIRECTORY/NAME).

Validation is a small hand-written walker rather than a schema library because the
one thing that matters here is the message an operator reads at 2 a.m.: one line
naming the file, the key path (`smscs[1].window`) and what was expected. Every
problem is collected, so one run of `smppd check-config` lists them all.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .inbound.pool import InboundNumber
from .protocol.command_status import Action
from .protocol.connector import BindKind
from .protocol.constants import STATUS_CODES
from .protocol.message_id import IdFormat
from .protocol.segmentation import MAX_PARTS_LIMIT, SplitMode
from .store.limits import StoreLimits
from .throttle.rate import Pacing

_VARIABLE = re.compile(r"\$\{(?:cred:([A-Za-z0-9_.@-]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}")
# sysexits.h EX_CONFIG: what `smppd run` and `check-config` exit with for a
# configuration problem, so systemd does not restart a daemon that cannot start
# (RestartPreventExitStatus=78 in systemd/smppd.service).
EXIT_CONFIG = 78
LOG_LEVELS = ("debug", "info", "warning", "error")
RECEIPT_POLICIES = ("all", "any", "first", "last")
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ConfigError(ValueError):
    """One or more configuration problems; str() is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TlsSettings:
    ca_file: str | None
    server_name: str | None


@dataclass(frozen=True)
class SmscSettings:
    name: str
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    bind: BindKind = BindKind.TRANSCEIVER
    window: int = 10
    throughput: float = 0.0  # submit_sm per second; 0 = no limit
    releases_per_second: int = 1  # how many sends a paced second is split into
    tls: TlsSettings | None = None
    dcs0_charset: str = "gsm"
    latin1: bool = False
    split: SplitMode = SplitMode.UDH
    max_parts: int = 10
    id_format_response: IdFormat = IdFormat.AUTO  # AUTO on both sides, or neither
    id_format_receipt: IdFormat = IdFormat.AUTO
    receipt_policy: str = "all"
    response_timeout: float = 30.0
    enquire_link_interval: float = 30.0
    throttle_policy: str = "adaptive"  # adaptive | fixed (smppd.throttle.rate)
    # A submit with no response: reconnect (and resend after the bind) | resend (on the
    # same link) | never (it stays `unknown`); a lost connection resends unless never.
    wait_ack_expire: str = "reconnect"
    reconnect_initial: float = 1.0  # reconnect back-off, seconds
    reconnect_max: float = 60.0
    # command_status -> what to do with it, for vendor codes (smppd.protocol.command_status)
    status_overrides: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class AccountSettings:
    name: str
    token: str = field(repr=False)
    balance: int = 0
    timezone: str = "UTC"  # issue 10: IANA zone the account's report days are cut in


@dataclass(frozen=True)
class SmtpSettings:
    """Where smppd sends e-mail (inbound forwards, reports): `smtp:` at the top of the
    file; `reports.smtp:` may name another server for reports."""

    host: str
    port: int = 587
    starttls: bool = True
    tls: bool = False  # implicit TLS (port 465) instead of STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "smppd@localhost"
    timeout: float = 30.0
    ca_file: str | None = None  # a private CA for the server's certificate


@dataclass(frozen=True)
class ReportSettings:
    """Issue 10: report files, the queue threshold, expiry, e-mail."""

    directory: str | None = None  # None: next to the SQLite file, else /var/lib/smppd/reports
    async_rows: int = 100_000  # reports estimated above this many rows are queued
    expire_days: int = 7
    workers: int = 1  # queued reports run at the same time
    schedule_check: float = 60.0  # seconds between looks for due periodic reports
    attach_max_bytes: int = 5 * 1024 * 1024  # larger files are e-mailed as a link
    link_base_url: str | None = None  # the link's base, e.g. https://sms.example.com
    email_attempts: int = 5
    email_retry: float = 30.0  # seconds before the first retry; doubles each time
    smtp: SmtpSettings | None = None


@dataclass(frozen=True)
class RouteSettings:
    prefix: str  # digits of the E.164 number, without '+'
    smscs: tuple[str, ...]  # in order of preference: the next takes over when one is down


@dataclass(frozen=True)
class HttpSettings:
    """Connection limits and timeouts of the HTTP listener (seconds, counts)."""

    idle_timeout: float = 60.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_min_rate: float = 1024.0
    max_connections: int = 1024
    max_pipelined: int = 16
    auth_failures: int = 20
    auth_window: float = 60.0


@dataclass(frozen=True)
class CallbackSettings:
    """`callbacks:` (issue 12): how the outbox is delivered."""

    concurrency: int = 10  # requests at once per endpoint
    timeout: float = 10.0  # seconds per attempt
    max_age: float = 86400.0  # an event is retried this long, then failed
    retry_initial: float = 2.0  # an endpoint's back-off after a failure...
    retry_max: float = 300.0  # ...doubling up to this
    max_endpoints: int = 20  # per account
    keep_days: float = 14.0  # delivered and failed events are kept this long
    ca_file: str | None = None  # trust this CA (PEM) for https instead of the system's
    # Drain in a process of its own (smppd.callbacks.worker): the daemon's interpreter
    # keeps its core for sending. False: in the daemon (an in-memory database).
    process: bool = True


@dataclass(frozen=True)
class LinkSettings:
    """`links:` (issue 12): the short-link redirector."""

    listen_host: str
    listen_port: int
    base_url: str


@dataclass(frozen=True)
class OperatorSettings:
    """A login to the operator's console (/ops/): an argon2 hash, never a password."""

    login: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class PortalSettings:
    """The customer portal and the operator's console (issue 15)."""

    enabled: bool = True
    base_url: str | None = None  # https://...: cookies are Secure behind a TLS proxy
    idle_timeout: float = 30 * 60.0  # seconds without a request before a session ends
    absolute_timeout: float = 12 * 3600.0  # seconds after login at most
    default_locale: str = "en"
    failed_logins_per_login: int = 5  # within failed_login_window, then refused
    failed_logins_per_address: int = 20
    failed_login_window: float = 15 * 60.0

    @property
    def secure_cookies(self) -> bool:
        return bool(self.base_url and self.base_url.startswith("https://"))


PORTAL_LOCALES = ("en", "pl")


@dataclass(frozen=True)
class ClusterSettings:
    """`cluster:` several instances on one PostgreSQL database (issue 14). `lease`:
    seconds a dead instance's queued work stays its own before others take it;
    `heartbeat`: seconds between renewals (and between looks for free work)."""

    lease: float = 10.0
    heartbeat: float = 1.0


@dataclass(frozen=True)
class Settings:
    path: str
    database: str
    http_listen_host: str
    http_listen_port: int
    smscs: tuple[SmscSettings, ...]
    accounts: tuple[AccountSettings, ...]
    routes: tuple[RouteSettings, ...] = ()
    price_default: int = 1
    price_by_prefix: tuple[tuple[str, int], ...] = ()
    log_level: str = "info"
    max_body_bytes: int = 64 * 1024
    max_job_body_bytes: int = 32 * 1024 * 1024
    retry_initial: float = 1.0
    retry_max: float = 60.0
    max_attempts: int = 10
    ops_listen: tuple[str, int] | None = None  # /metrics, /healthz, /readyz on their own port
    inbound_numbers: tuple[InboundNumber, ...] = ()  # issue 11
    auto_replies_per_hour: int = 5
    smtp: SmtpSettings | None = None
    http: HttpSettings = field(default_factory=HttpSettings)
    reports: ReportSettings = ReportSettings()  # issue 10
    callbacks: CallbackSettings = CallbackSettings()  # issue 12
    links: LinkSettings | None = None  # issue 12
    store: StoreLimits = field(default_factory=StoreLimits)  # bounds on database waits
    throttle: Pacing = field(default_factory=Pacing)  # the adaptive rate's timing
    operators: tuple[OperatorSettings, ...] = ()  # issue 15
    portal: PortalSettings = field(default_factory=PortalSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)  # issue 14

    def smsc(self, name: str) -> SmscSettings:
        return next(s for s in self.smscs if s.name == name)


class _Reader:
    """Walks the parsed YAML, collecting problems instead of stopping at the first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def section(self, data: Any, key: str, known: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.problem(key or "(top level)", f"expected a mapping, got {_kind(data)}")
            return {}
        for name in data:
            if name not in known:
                where = f"{key}.{name}" if key else str(name)
                self.problem(where, "unknown key (expected one of: "
                             + ", ".join(sorted(known)) + ")")
        return data

    def get(self, data: dict[str, Any], key: str, name: str, kind: Callable[..., Any],
            default: Any = ..., **limits: Any) -> Any:
        where = f"{key}.{name}" if key else name
        if name not in data or data[name] is None:
            if default is ...:
                self.problem(where, "missing required value")
            return None if default is ... else default
        value = self.expand(data[name], where)
        if value is None:
            return None if default is ... else default
        try:
            return kind(value, **limits)
        except ValueError as exc:
            self.problem(where, str(exc))
            return None if default is ... else default

    def expand(self, value: Any, where: str) -> Any:
        if not isinstance(value, str):
            return value
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            credential, name, fallback = match.groups()
            if credential is not None:
                return self.credential(credential, where, missing)
            if name in os.environ:
                return os.environ[name]
            if fallback is not None:
                return fallback
            missing.append(f"environment variable {name} is not set")
            return ""

        result = _VARIABLE.sub(substitute, value)
        if missing:
            self.problem(where, "; ".join(missing))
            return None
        return result

    @staticmethod
    def credential(name: str, where: str, missing: list[str]) -> str:
        """A systemd credential (LoadCredential=NAME:PATH or SetCredentialEncrypted=):
        the file's text, less one trailing newline as `echo` or an editor leaves it."""
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            missing.append(f"systemd credential {name!r} asked for, but $CREDENTIALS_DIRECTORY "
                           "is not set (give the unit LoadCredential=" + name + ":/path)")
            return ""
        path = Path(folder) / name
        if name in (".", "..") or not path.is_file():
            missing.append(f"systemd credential {name!r} is not loaded (no file {path}; "
                           "add LoadCredential=" + name + ":/path to the unit)")
            return ""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            missing.append(f"systemd credential {name!r} cannot be read: {exc}")
            return ""
        return text[:-1] if text.endswith("\n") else text


class _WrittenInt(int):
    """A YAML 1.1 integer not written in plain decimal digits (`0123` is octal 83,
    `1:30` is 90, `0x1F` is 31), with the text as written: wherever such a value
    would be taken as a number or a string of digits, it is refused instead."""

    written: str

    def __new__(cls, value: int, written: str) -> _WrittenInt:
        made = super().__new__(cls, value)
        made.written = written
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        return int, (int(self),)  # copied or pickled, it is the number it was read as


_PLAIN_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")  # 1_000 is 1000 as written


class _Loader(yaml.SafeLoader):
    """safe_load, but an integer keeps how it was written (_WrittenInt)."""


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    try:
        value = loader.construct_yaml_int(node)
    except ValueError:  # `!!int abc`: PyYAML's own constructor lets int() raise
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} tagged !!int is not a whole number",
            node.start_mark) from None
    if _PLAIN_DECIMAL.fullmatch(node.value) is None:
        return _WrittenInt(value, node.value)
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _not_as_written(value: _WrittenInt) -> ValueError:
    return ValueError(f"YAML read {value.written} as the number {int(value)}; put the "
                      "value in quotes (or write the number in plain decimal digits)")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "true/false",
            int: "a number", float: "a number", _WrittenInt: "a number"}.get(
        type(value), type(value).__name__)


def _text(value: Any, allow_empty: bool = False, max_length: int = 256) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a string, got {_kind(value)}")
    if isinstance(value, _WrittenInt):  # `number: 0123` is not "83"
        raise _not_as_written(value)
    text = str(value)
    if not text and not allow_empty:
        raise ValueError("expected a non-empty string")
    if len(text) > max_length:
        raise ValueError(f"expected at most {max_length} characters, got {len(text)}")
    return text


def _quoted(value: Any, allow_empty: bool = False, max_length: int = 256) -> str:
    """Ids, passwords, tokens, names: YAML 1.1 reads `0123` as the number 83 and
    `00001234` as 668, so a credential that is not written as text is refused
    rather than silently turned into another one. ${VAR} values are text already."""
    if not isinstance(value, str):
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        raise ValueError(f"expected text in quotes, but YAML read {shown} as {_kind(value)}; "
                         "put the value in quotes: unquoted, 0123 becomes 83 and 00001234 "
                         "becomes 668")
    return _text(value, allow_empty, max_length)


def _integer(value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        value = int(value)  # from ${VAR}
    if isinstance(value, _WrittenInt):  # `port: 0080` is not 64
        raise _not_as_written(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {_kind(value)} {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f"at least {low}"
        raise ValueError(f"expected {bounds}, got {value}")
    return value


def _number(value: Any, low: float = 0.0) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, _WrittenInt):
        raise _not_as_written(value)
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise ValueError(f"expected a number, got {_kind(value)} {value!r}")
    if value < low:
        raise ValueError(f"expected at least {low:g}, got {value}")
    return float(value)


def _ascii_digits(text: str) -> bool:
    """str.isdigit() is also true of '²' and '١', which int() refuses or reads."""
    return text.isascii() and text.isdigit()


def _boolean(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_kind(value)} {value!r}")
    return value


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _listen(value: Any) -> tuple[str, int]:
    text = _text(value)
    host, sep, port = text.rpartition(":")
    if not sep or not _ascii_digits(port) or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT (port 0..65535), got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _prefix(value: Any) -> str:
    text = _text(value).lstrip("+")
    if not _ascii_digits(text):
        raise ValueError(f"expected a number prefix such as +48, got {value!r}")
    return text


def _database(value: Any) -> str:
    text = _text(value, max_length=4096)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", text):
        raise ValueError("expected a URL starting sqlite:/// or postgresql+psycopg://, got "
                         + repr(text.split("://")[0] + "://..."))
    return text


_SMSC_KEYS = {"name", "host", "port", "system_id", "password", "system_type", "bind", "window",
              "throughput", "releases_per_second", "tls", "dcs0_charset", "latin1", "split",
              "max_parts", "id_format", "receipt_policy", "response_timeout",
              "enquire_link_interval", "throttle_policy", "status_overrides", "wait_ack_expire",
              "reconnect"}
_HTTP_KEYS = {"listen", "ops_listen", "max_body_bytes", "max_job_body_bytes", "idle_timeout",
              "header_timeout", "body_timeout", "body_min_rate", "max_connections",
              "max_pipelined", "auth_failures", "auth_window"}
_TOP_KEYS = {"database", "http", "smscs", "accounts", "routes", "pricing", "log_level",
             "retry", "inbound_numbers", "inbound", "smtp", "reports", "callbacks", "links",
             "store", "throttle", "operators", "portal", "cluster"}


def _read_smsc(r: _Reader, data: Any, key: str) -> SmscSettings | None:
    data = r.section(data, key, _SMSC_KEYS)
    before = len(r.problems)
    get = lambda name, kind, default=..., **kw: r.get(data, key, name, kind, default, **kw)  # noqa: E731
    tls = None
    if data.get("tls") not in (None, False):
        tls_data = {} if data["tls"] is True else r.section(data["tls"], f"{key}.tls",
                                                            {"ca_file", "server_name"})
        ca_file = r.get(tls_data, f"{key}.tls", "ca_file", _text, None)
        if ca_file is not None and not os.access(ca_file, os.R_OK):
            r.problem(f"{key}.tls.ca_file", f"cannot read {ca_file!r}")
        tls = TlsSettings(ca_file, r.get(tls_data, f"{key}.tls", "server_name", _quoted, None))
    ids = data.get("id_format") or "auto"
    id_formats = [f.value for f in IdFormat if f is not IdFormat.AUTO]
    if isinstance(ids, str) and ids == "auto":
        ids = {"response": "auto", "receipt": "auto"}
    elif isinstance(ids, str):
        ids = {"response": ids, "receipt": ids}
    ids = r.section(ids, f"{key}.id_format", {"response", "receipt"})
    if "auto" in ids.values() and set(ids.values()) != {"auto"}:
        r.problem(f"{key}.id_format", "auto applies to both sides: write id_format: auto, "
                  "or give response and receipt as string, hex or dec")
        ids = {"response": "auto", "receipt": "auto"}
    elif ids == {"response": "auto", "receipt": "auto"}:
        id_formats = ["auto"]
    reconnect = r.section(data.get("reconnect") or {}, f"{key}.reconnect", {"initial", "max"})
    settings = dict(
        name=get("name", _quoted, max_length=64), host=get("host", _text),
        port=get("port", _integer, low=1, high=65535), system_id=get("system_id", _quoted,
                                                                     max_length=15),
        password=get("password", _quoted, allow_empty=True, max_length=8),
        system_type=get("system_type", _quoted, "", allow_empty=True, max_length=12),
        bind=BindKind(get("bind", _choice, "transceiver",
                          choices=tuple(k.value for k in BindKind))),
        window=get("window", _integer, 10, low=1, high=10_000),
        throughput=get("throughput", _number, 0.0),
        releases_per_second=get("releases_per_second", _integer, 1, low=1, high=1000),
        tls=tls,
        dcs0_charset=get("dcs0_charset", _choice, "gsm", choices=("gsm", "latin1")),
        latin1=get("latin1", _boolean, False),
        split=SplitMode(get("split", _choice, "udh", choices=tuple(m.value for m in SplitMode))),
        max_parts=get("max_parts", _integer, 10, low=1, high=MAX_PARTS_LIMIT),
        id_format_response=IdFormat(r.get(ids, f"{key}.id_format", "response", _choice,
                                          "string", choices=tuple(id_formats))),
        id_format_receipt=IdFormat(r.get(ids, f"{key}.id_format", "receipt", _choice,
                                         "string", choices=tuple(id_formats))),
        wait_ack_expire=get("wait_ack_expire", _choice, "reconnect",
                            choices=("reconnect", "resend", "never")),
        reconnect_initial=r.get(reconnect, f"{key}.reconnect", "initial", _number, 1.0,
                                low=0.01),
        reconnect_max=r.get(reconnect, f"{key}.reconnect", "max", _number, 60.0, low=0.01),
        receipt_policy=get("receipt_policy", _choice, "all", choices=RECEIPT_POLICIES),
        response_timeout=get("response_timeout", _number, 30.0, low=0.1),
        enquire_link_interval=get("enquire_link_interval", _number, 30.0, low=1.0),
        throttle_policy=get("throttle_policy", _choice, "adaptive",
                            choices=("adaptive", "fixed")),
        status_overrides=_status_overrides(r, data.get("status_overrides"),
                                           f"{key}.status_overrides"),
    )
    if (settings["reconnect_initial"] or 0) > (settings["reconnect_max"] or 0):
        r.problem(f"{key}.reconnect.max", "expected at least reconnect.initial")
    if len(r.problems) > before:
        return None
    return SmscSettings(**settings)


def _status_overrides(r: _Reader, data: Any, key: str) -> tuple[tuple[int, str], ...]:
    """`{ESME_RSYSERR: fail, 0x45: retry, "0x0400": throttled}`: a code by its name,
    as a number, or as hex text; an action of command_status.Action."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        r.problem(key, f"expected a mapping of command_status to action, got {_kind(data)}")
        return ()
    actions = tuple(action.value for action in Action if action is not Action.OK)
    overrides = []
    for code, action in data.items():
        status = _command_status(code)
        if status is None:
            r.problem(f"{key}.{code}", "expected a command_status: an ESME_R... name, a "
                      "number or hex such as 0x45")
            continue
        try:
            overrides.append((status, _choice(r.expand(action, f"{key}.{code}"), actions)))
        except ValueError as exc:
            r.problem(f"{key}.{code}", str(exc))
    return tuple(overrides)


def _command_status(code: Any) -> int | None:
    if isinstance(code, int) and not isinstance(code, bool):
        return int(code) if 0 <= code <= 0xFFFFFFFF else None  # 0x45: 69, as written
    if not isinstance(code, str):
        return None
    text = code.strip()
    if text.upper().startswith("ESME_"):
        return STATUS_CODES.get(text.upper())
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None
    return value if 0 <= value <= 0xFFFFFFFF else None


def _read_http(r: _Reader, data: dict[str, Any]) -> HttpSettings:
    """The listener's limits; each has a default (HttpSettings) and a floor below
    which it would break ordinary clients rather than protect the daemon."""
    default = HttpSettings()
    get = lambda name, kind, **kw: r.get(data, "http", name, kind,  # noqa: E731
                                         getattr(default, name), **kw)
    return HttpSettings(
        idle_timeout=get("idle_timeout", _number, low=1.0),
        header_timeout=get("header_timeout", _number, low=1.0),
        body_timeout=get("body_timeout", _number, low=1.0),
        body_min_rate=get("body_min_rate", _number, low=0.0),
        max_connections=get("max_connections", _integer, low=1, high=1_000_000),
        max_pipelined=get("max_pipelined", _integer, low=1, high=1000),
        auth_failures=get("auth_failures", _integer, low=1, high=1_000_000),
        auth_window=get("auth_window", _number, low=1.0),
    )


def _read_callbacks(r: _Reader, data: Any) -> CallbackSettings:
    key = "callbacks"
    data = r.section(data or {}, key, {"concurrency", "timeout", "max_age", "retry",
                                       "max_endpoints", "keep_days", "ca_file",
                                       "process"})
    retry = r.section(data.get("retry") or {}, f"{key}.retry", {"initial", "max"})
    ca_file = r.get(data, key, "ca_file", _text, None, max_length=4096)
    if ca_file is not None and not os.access(ca_file, os.R_OK):
        r.problem(f"{key}.ca_file", f"cannot read {ca_file!r}")
    initial = r.get(retry, f"{key}.retry", "initial", _number, 2.0, low=0.01)
    maximum = r.get(retry, f"{key}.retry", "max", _number, 300.0, low=0.01)
    if maximum < initial:
        r.problem(f"{key}.retry.max", f"expected at least retry.initial ({initial:g})")
        maximum = initial
    return CallbackSettings(
        concurrency=r.get(data, key, "concurrency", _integer, 10, low=1, high=1000),
        timeout=r.get(data, key, "timeout", _number, 10.0, low=0.1),
        max_age=r.get(data, key, "max_age", _number, 86400.0, low=1.0),
        retry_initial=initial, retry_max=maximum,
        max_endpoints=r.get(data, key, "max_endpoints", _integer, 20, low=1, high=1000),
        keep_days=r.get(data, key, "keep_days", _number, 14.0, low=0.01), ca_file=ca_file,
        process=r.get(data, key, "process", _boolean, True))


def _base_url(value: Any) -> str:
    text = _text(value, max_length=200)
    if not re.match(r"^https?://[^/\s?#]+/([^\s?#]*/)?$", text):
        raise ValueError("expected an http(s) URL ending in '/', such as https://s.example/ "
                         f"(the code is appended to it), got {text!r}")
    return text


def _read_links(r: _Reader, data: Any) -> LinkSettings | None:
    if data is None:
        return None
    data = r.section(data, "links", {"listen", "base_url"})
    listen = r.get(data, "links", "listen", _listen)
    base_url = r.get(data, "links", "base_url", _base_url)
    if listen is None or base_url is None:
        return None
    return LinkSettings(listen[0], listen[1], base_url)


def _read_account(r: _Reader, data: Any, key: str) -> AccountSettings | None:
    data = r.section(data, key, {"name", "token", "balance", "timezone"})
    before = len(r.problems)
    name = r.get(data, key, "name", _quoted, max_length=64)
    if name is not None and not ACCOUNT_NAME.match(name):
        r.problem(f"{key}.name", "expected letters, digits, '.', '_' or '-'")
    token = r.get(data, key, "token", _quoted, max_length=512)
    if token is not None and len(token) < 16:
        r.problem(f"{key}.token", "expected at least 16 characters (a guessable token is "
                  "an open door)")
    balance = r.get(data, key, "balance", _integer, 0, low=0)
    timezone = r.get(data, key, "timezone", _timezone, "UTC")
    if len(r.problems) > before:
        return None
    return AccountSettings(name, token, balance, timezone)


def _timezone(value: Any) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = _text(value, max_length=64)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"expected an IANA time zone such as Europe/Warsaw, got "
                         f"{text!r}") from None
    return text


_SMTP_KEYS = {"host", "port", "starttls", "tls", "username", "password", "from", "timeout",
              "ca_file"}
_REPORT_KEYS = {"directory", "async_rows", "expire_days", "workers", "schedule_check",
                "attach_max_bytes", "link_base_url", "email_attempts", "email_retry", "smtp"}


def _read_reports(r: _Reader, data: Any) -> ReportSettings:
    """Issue 10: the `reports:` section."""
    if data is None:
        return ReportSettings()
    data = r.section(data, "reports", _REPORT_KEYS)
    get = lambda name, kind, default, **kw: r.get(data, "reports", name, kind, default, **kw)  # noqa: E731
    smtp = _read_smtp(r, data.get("smtp"), "reports.smtp")
    return ReportSettings(
        directory=get("directory", _text, None, max_length=4096),
        async_rows=get("async_rows", _integer, 100_000, low=0),
        expire_days=get("expire_days", _integer, 7, low=1, high=3650),
        workers=get("workers", _integer, 1, low=1, high=16),
        schedule_check=get("schedule_check", _number, 60.0, low=1.0),
        attach_max_bytes=get("attach_max_bytes", _integer, 5 * 1024 * 1024, low=0),
        link_base_url=get("link_base_url", _text, None, max_length=1024),
        email_attempts=get("email_attempts", _integer, 5, low=1, high=100),
        email_retry=get("email_retry", _number, 30.0, low=0.01),
        smtp=smtp)


def _unique(r: _Reader, items: list[Any], key: str, what: str,
            value: Callable[[Any], str]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item is None:
            continue
        name = value(item)
        if name in seen:
            r.problem(f"{key}[{index}].name",
                      f"duplicate {what} {name!r} (also {key}[{seen[name]}])")
        seen.setdefault(name, index)


def _read_list(r: _Reader, data: dict[str, Any], key: str, required: bool) -> list[Any]:
    value = data.get(key)
    if value is None:
        if required:
            r.problem(key, "missing required value (a list with at least one entry)")
        return []
    if not isinstance(value, list) or (required and not value):
        r.problem(key, f"expected a list with at least one entry, got {_kind(value)}")
        return []
    return value


WRITERS = ("auto", "process", "thread")


def _read_store(r: _Reader, data: Any) -> StoreLimits:
    """`store:` bounds on every wait on the database (smppd.store.limits)."""
    default = StoreLimits()
    data = r.section(data or {}, "store", set(default.__dataclass_fields__))
    seconds = {name: r.get(data, "store", name, _number, getattr(default, name), low=0.1)
               for name in ("connect_timeout", "statement_timeout", "pool_timeout",
                            "tcp_user_timeout", "stall_timeout")}
    counts = {name: r.get(data, "store", name, _integer, getattr(default, name), low=1,
                          high=3600)
              for name in ("keepalives_idle", "keepalives_interval", "keepalives_count")}
    writer = r.get(data, "store", "writer", _choice, default.writer, choices=WRITERS)
    return StoreLimits(**seconds, **counts, writer=writer)


def _read_throttle(r: _Reader, data: Any) -> Pacing:
    """`throttle:` how the adaptive rate holds and recovers (smppd.throttle.rate)."""
    default = Pacing()
    data = r.section(data or {}, "throttle", set(default.__dataclass_fields__))
    values = {name: r.get(data, "throttle", name, _number, getattr(default, name), low=0.001)
              for name in default.__dataclass_fields__}
    if values["pause_max"] < values["pause_base"]:
        r.problem("throttle.pause_max", f"expected at least pause_base "
                  f"({values['pause_base']:g}), got {values['pause_max']:g}")
        values["pause_max"] = values["pause_base"]
    return Pacing(**values)


def _read_cluster(r: _Reader, data: Any) -> ClusterSettings:
    """`cluster:` leases and heartbeats of several instances (smppd.daemon.cluster)."""
    default = ClusterSettings()
    data = r.section(data or {}, "cluster", set(default.__dataclass_fields__))
    lease = r.get(data, "cluster", "lease", _number, default.lease, low=1.0)
    heartbeat = r.get(data, "cluster", "heartbeat", _number, default.heartbeat, low=0.1)
    if lease is not None and heartbeat is not None and heartbeat * 2 > lease:
        r.problem("cluster.heartbeat", f"expected at most half of cluster.lease "
                  f"({lease:g} s), got {heartbeat:g}")
        heartbeat = lease / 2
    return ClusterSettings(lease or default.lease, heartbeat or default.heartbeat)


def parse(data: Any, path: str = "<config>") -> Settings:
    """Validate parsed YAML into Settings; raises ConfigError listing every problem."""
    r = _Reader(path)
    top = r.section(data, "", _TOP_KEYS)
    database = r.get(top, "", "database", _database)
    http = r.section(top.get("http"), "http", _HTTP_KEYS) \
        if top.get("http") is not None else (r.problem("http", "missing required value") or {})
    listen = r.get(http, "http", "listen", _listen) if http else None
    ops_listen = r.get(http, "http", "ops_listen", _listen, None) if http else None
    if ops_listen and listen and ops_listen == listen and listen[1] != 0:
        r.problem("http.ops_listen", "must differ from http.listen (it is the port that "
                  "keeps /metrics, /healthz and /readyz off the customers' one)")
    max_body = r.get(http, "http", "max_body_bytes", _integer, 64 * 1024, low=1024)
    max_job_body = r.get(http, "http", "max_job_body_bytes", _integer, 32 * 1024 * 1024,
                         low=1024)
    http_settings = _read_http(r, http)
    smscs = [_read_smsc(r, item, f"smscs[{i}]")
             for i, item in enumerate(_read_list(r, top, "smscs", True))]
    _unique(r, smscs, "smscs", "SMSC name", lambda s: s.name)
    accounts = [_read_account(r, item, f"accounts[{i}]")
                for i, item in enumerate(_read_list(r, top, "accounts", True))]
    _unique(r, accounts, "accounts", "account name", lambda a: a.name)
    tokens: dict[str, int] = {}
    for index, account in enumerate(accounts):
        if account is not None and tokens.setdefault(account.token, index) != index:
            r.problem(f"accounts[{index}].token",
                      f"the same token as accounts[{tokens[account.token]}]")
    names = {s.name for s in smscs if s is not None}
    routes = []
    for index, item in enumerate(_read_list(r, top, "routes", False)):
        key = f"routes[{index}]"
        item = r.section(item, key, {"prefix", "smsc", "smscs"})
        prefix = r.get(item, key, "prefix", _prefix)
        if ("smsc" in item) == ("smscs" in item):
            r.problem(f"{key}.smsc", "give either smsc: NAME or smscs: [NAME, ...]")
            continue
        if "smsc" in item:
            targets = [r.get(item, key, "smsc", _text)]
        else:
            targets = item["smscs"] if isinstance(item["smscs"], list) else None
            if not targets:
                r.problem(f"{key}.smscs", "expected a list of SMSC names, in order of "
                          "preference")
                continue
        for position, smsc in enumerate(targets):
            where = f"{key}.smsc" if "smsc" in item else f"{key}.smscs[{position}]"
            if not isinstance(smsc, str) or (names and smsc not in names):
                r.problem(where, f"no SMSC named {smsc!r} (known: {', '.join(sorted(names))})")
        if prefix is not None and all(isinstance(s, str) for s in targets):
            routes.append(RouteSettings(prefix, tuple(targets)))
    pricing = r.section(top.get("pricing") or {}, "pricing", {"default", "prefixes"})
    price_default = r.get(pricing, "pricing", "default", _integer, 1, low=0)
    prices = []
    raw_prices = pricing.get("prefixes") or {}
    if not isinstance(raw_prices, dict):
        r.problem("pricing.prefixes", f"expected a mapping of prefix: points, got "
                  f"{_kind(raw_prices)}")
        raw_prices = {}
    for prefix, points in raw_prices.items():
        where = f"pricing.prefixes.{prefix}"
        try:
            prices.append((_prefix(prefix), _integer(points, low=0)))
        except ValueError as exc:
            r.problem(where, str(exc))
    retry = r.section(top.get("retry") or {}, "retry", {"initial", "max", "max_attempts"})
    inbound_numbers = _read_inbound_numbers(r, top, {a.name for a in accounts if a})
    inbound = r.section(top.get("inbound") or {}, "inbound", {"auto_replies_per_hour"})
    smtp = _read_smtp(r, top.get("smtp"))
    operators = _read_operators(r, top)
    portal = _read_portal(r, top.get("portal"))
    settings = Settings(
        path=path, database=database or "",
        http_listen_host=listen[0] if listen else "", http_listen_port=listen[1] if listen else 0,
        smscs=tuple(s for s in smscs if s is not None),
        accounts=tuple(a for a in accounts if a is not None),
        routes=tuple(routes), price_default=price_default,
        price_by_prefix=tuple(prices),
        log_level=r.get(top, "", "log_level", _choice, "info", choices=LOG_LEVELS),
        max_body_bytes=max_body, max_job_body_bytes=max_job_body,
        retry_initial=r.get(retry, "retry", "initial", _number, 1.0, low=0.01),
        retry_max=r.get(retry, "retry", "max", _number, 60.0, low=0.01),
        max_attempts=r.get(retry, "retry", "max_attempts", _integer, 10, low=1),
        ops_listen=ops_listen,
        inbound_numbers=inbound_numbers,
        auto_replies_per_hour=r.get(inbound, "inbound", "auto_replies_per_hour", _integer, 5,
                                    low=0, high=10_000),
        smtp=smtp,
        http=http_settings,
        reports=_with_smtp(_read_reports(r, top.get("reports")), smtp),
        callbacks=_read_callbacks(r, top.get("callbacks")),
        links=_read_links(r, top.get("links")),
        store=_read_store(r, top.get("store")),
        throttle=_read_throttle(r, top.get("throttle")),
        operators=operators,
        portal=portal,
        cluster=_read_cluster(r, top.get("cluster")),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings


# Inbound numbers and SMTP (issue 11) ---------------------------------------------------

INBOUND_KINDS = ("dedicated", "shared", "shortcode")


def _pool_number(value: Any) -> str:
    text = _text(value, max_length=20).replace(" ", "")
    digits = text.removeprefix("+")
    if not digits.isdigit() or not 3 <= len(digits) <= 15:
        raise ValueError(f"expected +E.164 or a short code of 3-15 digits, got {value!r}")
    return digits


def _read_inbound_numbers(r: _Reader, top: dict[str, Any],
                          accounts: set[str]) -> tuple[InboundNumber, ...]:
    numbers: list[InboundNumber] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(_read_list(r, top, "inbound_numbers", False)):
        key = f"inbound_numbers[{index}]"
        item = r.section(item, key, {"number", "kind", "account", "price"})
        before = len(r.problems)
        number = r.get(item, key, "number", _pool_number)
        kind = r.get(item, key, "kind", _choice, choices=INBOUND_KINDS)
        account = r.get(item, key, "account", _text, None, max_length=64)
        if account is not None and account not in accounts:
            r.problem(f"{key}.account", f"no account named {account!r}")
        if kind == "shortcode" and account is None:
            r.problem(f"{key}.account", "a shortcode is assigned by the operator: name its "
                      "account")
        if kind == "shared" and account is not None:
            r.problem(f"{key}.account", "a shared number is held per prefix through the API, "
                      "not by one account")
        price = r.section(item.get("price") or {}, f"{key}.price", {"reservation", "monthly"})
        reservation = r.get(price, f"{key}.price", "reservation", _integer, 0, low=0)
        monthly = r.get(price, f"{key}.price", "monthly", _integer, 0, low=0)
        if number is not None:
            if number in seen:
                r.problem(f"{key}.number", f"listed twice (also inbound_numbers[{seen[number]}])")
            seen.setdefault(number, index)
        if len(r.problems) == before:
            numbers.append(InboundNumber(number, kind, account, reservation, monthly))
    return tuple(numbers)


def _with_smtp(reports: ReportSettings, smtp: SmtpSettings | None) -> ReportSettings:
    """Reports e-mail through `reports.smtp`, else through the `smtp` server."""
    return reports if reports.smtp is not None or smtp is None else replace(reports,
                                                                           smtp=smtp)


def _read_smtp(r: _Reader, data: Any, key: str = "smtp") -> SmtpSettings | None:
    """An SMTP server: STARTTLS on 587 unless told otherwise, implicit TLS with
    `tls: true` (465), credentials from ${VAR} or ${cred:NAME}."""
    if data is None:
        return None
    mail = r.section(data, key, _SMTP_KEYS)
    before = len(r.problems)
    get = lambda name, kind, default=..., **kw: r.get(mail, key, name, kind, default, **kw)  # noqa: E731
    implicit_tls = get("tls", _boolean, False)
    smtp = SmtpSettings(
        host=get("host", _text) or "", port=get("port", _integer, 587, low=1, high=65535),
        starttls=get("starttls", _boolean, not implicit_tls), tls=implicit_tls,
        username=get("username", _quoted, None),
        password=get("password", _quoted, None, allow_empty=True, max_length=1024),
        sender=get("from", _text, "smppd@localhost"),
        timeout=get("timeout", _number, 30.0, low=0.1),
        ca_file=get("ca_file", _text, None, max_length=4096))
    if "@" not in smtp.sender:
        r.problem(f"{key}.from", "expected an e-mail address")
    if smtp.ca_file is not None and not os.access(smtp.ca_file, os.R_OK):
        r.problem(f"{key}.ca_file", f"cannot read {smtp.ca_file!r}")
    if smtp.tls and smtp.starttls and "starttls" in mail:
        r.problem(f"{key}.starttls", "give tls: true (port 465) or starttls: true, not both")
    return None if len(r.problems) > before else smtp


# Portal and console (issue 15) ---------------------------------------------------------

def _password_hash(value: Any) -> str:
    text = _quoted(value, max_length=512)
    if not text.startswith("$argon2"):
        raise ValueError("expected an argon2 hash ($argon2id$...): make one with "
                         "`smppd operator hash`; a password in clear is refused")
    return text


def _read_operators(r: _Reader, top: dict[str, Any]) -> tuple[OperatorSettings, ...]:
    operators: list[OperatorSettings] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(_read_list(r, top, "operators", False)):
        key = f"operators[{index}]"
        item = r.section(item, key, {"login", "password_hash"})
        before = len(r.problems)
        login = r.get(item, key, "login", _quoted, max_length=128)
        password_hash = r.get(item, key, "password_hash", _password_hash)
        if login is not None:
            if login in seen:
                r.problem(f"{key}.login", f"duplicate operator login (also operators"
                          f"[{seen[login]}])")
            seen.setdefault(login, index)
        if len(r.problems) == before:
            operators.append(OperatorSettings(login, password_hash))
    return tuple(operators)


def _base_url(value: Any) -> str:
    text = _text(value, max_length=2000)
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _read_portal(r: _Reader, data: Any) -> PortalSettings:
    if data is None:
        return PortalSettings()
    keys = {"enabled", "base_url", "idle_timeout", "absolute_timeout", "default_locale",
            "failed_logins_per_login", "failed_logins_per_address", "failed_login_window"}
    data = r.section(data, "portal", keys)
    get = lambda name, kind, default, **kw: r.get(data, "portal", name, kind, default, **kw)  # noqa: E731
    defaults = PortalSettings()
    settings = PortalSettings(
        enabled=get("enabled", _boolean, True),
        base_url=get("base_url", _base_url, None),
        idle_timeout=get("idle_timeout", _number, defaults.idle_timeout, low=60.0),
        absolute_timeout=get("absolute_timeout", _number, defaults.absolute_timeout,
                             low=60.0),
        default_locale=get("default_locale", _choice, "en", choices=PORTAL_LOCALES),
        failed_logins_per_login=get("failed_logins_per_login", _integer, 5, low=1),
        failed_logins_per_address=get("failed_logins_per_address", _integer, 20, low=1),
        failed_login_window=get("failed_login_window", _number, defaults.failed_login_window,
                                low=1.0))
    if settings.absolute_timeout < settings.idle_timeout:
        r.problem("portal.absolute_timeout", "expected at least portal.idle_timeout")
    return settings


def load(path: str | Path) -> Settings:
    """Read and validate a configuration file; every failure is a ConfigError."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) \
            from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except ValueError as exc:  # another explicit tag on a value it does not fit
        raise ConfigError([f"{name}: invalid YAML: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{name}: {where}invalid YAML: {problem}"]) from None
    if data is None:
        raise ConfigError([f"{name}: the file is empty"])
    return parse(data, name)
