"""Operators' commands: `smppd status`, `account list|topup`, `db current`, `reload`.

They run as their own process next to the daemon (or without it): they read the
configuration for the database and the metrics address, read the store through
their own engine, and write only through the store's writer operations in their
own transaction. A top-up is a LedgerEntry, not an UPDATE: the balance change is
recorded with its reason, and because the daemon charges with
`balance = balance - ?` inside its own transactions, the two never overwrite each
other.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from . import config as config_module
from .config import EXIT_CONFIG, ConfigError, Settings
from .store import database
from .store import schema as t

FAILED = 1


class AdminError(Exception):
    """A user-facing failure: the message is printed, the command exits non-zero."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def run(command: Any, args: Any) -> int:
    """Run an admin command; every expected failure is one clear message."""
    try:
        return command(args)
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except database.DatabaseError as exc:
        print(exc, file=sys.stderr)
        return FAILED


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("smppd")
    except PackageNotFoundError:
        return "unknown (not installed)"


# Shared plumbing ---------------------------------------------------------------------

def load_settings(path: str) -> Settings:
    try:
        return config_module.load(path)
    except ConfigError as exc:
        raise AdminError(str(exc), EXIT_CONFIG) from None


def open_store(url: str, need_schema: bool = True) -> Engine:
    engine = database.make_engine(url, pool_size=1)
    if need_schema:
        current = _revision(engine)
        head = database.head_revision()
        if current != head:
            engine.dispose()
            state = "has no smppd schema" if current is None else f"is at revision {current}"
            raise AdminError(f"the database {state}; this smppd needs {head}: run "
                             "`smppd db upgrade --config PATH` (or start the daemon once)")
    return engine


def _revision(engine: Engine) -> str | None:
    try:
        return database.current_revision(engine)
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: unreachable
        raise AdminError(f"database: cannot connect: {str(exc).splitlines()[0]}") from None


def metrics_url(settings: Settings) -> str:
    """Where this configuration's daemon serves /metrics: the ops listener if set."""
    host, port = settings.ops_listen or (settings.http_listen_host, settings.http_listen_port)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/metrics"


def scrape(url: str, timeout: float = 3.0) -> dict[str, list[tuple[dict[str, str], float]]]:
    """name -> [(labels, value)] from the daemon's /metrics; AdminError when it does
    not answer (the daemon is not running, or listens elsewhere)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminError(f"no answer at {url}: {reason}") from None
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _one(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
         **labels: str) -> float | None:
    for found, value in samples.get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    return None


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


# smppd status ------------------------------------------------------------------------

def status(args: Any) -> int:
    settings = load_settings(args.config)
    lines = [f"smppd {version()}, configuration {args.config}"]
    url = metrics_url(settings)
    try:
        samples: dict[str, Any] | None = scrape(url)
        lines.append(f"daemon:    running (metrics from {url})")
    except AdminError as exc:
        samples = None
        lines.append(f"daemon:    NOT RUNNING ({exc}); what follows is from the store")
    engine = open_store(settings.database, need_schema=False)
    try:
        lines += _store_lines(engine, settings)
    finally:
        engine.dispose()
    lines.append("SMSCs:")
    states = _link_states(url) if samples is not None else {}
    for smsc in settings.smscs:
        lines.append("  " + _smsc_line(smsc.name, samples, states.get(smsc.name)))
    if samples is not None:
        lines.append(f"queue:     {_one(samples, 'smppd_queue_depth') or 0:.0f} message(s) in "
                     f"memory, {_one(samples, 'smppd_parts_unsettled') or 0:.0f} part(s) "
                     f"awaiting an outcome, store backlog "
                     f"{_one(samples, 'smppd_store_backlog') or 0:.0f}")
        ok = _one(samples, "smppd_config_last_reload_successful")
        stamp = _one(samples, "smppd_config_last_reload_success_timestamp_seconds")
        applied = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") \
            if stamp else "never"
        lines.append("config:    " + ("applied" if ok == 1 else
                                      "LAST RELOAD REFUSED (the log says why)")
                     + f", last applied {applied}")
    print("\n".join(lines))
    return 0 if samples is not None else 3  # LSB: 3 = not running


def _store_lines(engine: Engine, settings: Settings) -> list[str]:
    revision = _revision(engine)
    head = database.head_revision()
    shown = engine.url.render_as_string(hide_password=True)
    if revision is None:
        return [f"database:  {shown} (no smppd schema yet)"]
    note = "current" if revision == head else f"BEHIND {head}: run smppd db upgrade"
    lines = [f"database:  {shown} (revision {revision}, {note})"]
    if revision != head:
        return lines
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(t.messages.c.status, func.count())
                                     .group_by(t.messages.c.status)).all())
        jobs = dict(conn.execute(select(t.jobs.c.state, func.count())
                                 .group_by(t.jobs.c.state)).all())
    order = [*("queued", "submitted", "unknown"), *sorted(set(statuses) - {
        "queued", "submitted", "unknown"})]
    counts = ", ".join(f"{statuses.get(s, 0)} {s}" for s in order)
    lines.append(f"messages:  {sum(statuses.values())} stored: {counts}")
    active = ", ".join(f"{jobs.get(s, 0)} {s}" for s in ("running", "paused", "scheduled"))
    lines.append(f"jobs:      {active} ({sum(jobs.values())} in all)")
    return lines


def _link_states(metrics: str) -> dict[str, str]:
    """smsc -> its links' state (bound, backoff, auth_failed...) from /readyz."""
    url = metrics.rsplit("/", 1)[0] + "/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3.0) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:  # 503 while not ready still carries the detail
        body = exc.read()
    except (urllib.error.URLError, OSError):
        return {}
    try:
        return dict(json.loads(body).get("smscs", {}))
    except (ValueError, AttributeError):
        return {}


def _smsc_line(name: str, samples: dict[str, Any] | None, state: str | None = None) -> str:
    if samples is None:
        return f"{name:<20} unknown (the daemon is not running)"
    bound = _one(samples, "smppd_smsc_bound", smsc=name)
    if bound is None:
        return f"{name:<20} not in the running daemon (reload or restart to add it)"
    in_use = _one(samples, "smppd_window_in_use", smsc=name) or 0
    capacity = _one(samples, "smppd_window_capacity", smsc=name) or 0
    sent = _one(samples, "smppd_pdus_sent_total", smsc=name, command="submit_sm") or 0
    ups = _one(samples, "smppd_bind_transitions_total", smsc=name, direction="up") or 0
    downs = _one(samples, "smppd_bind_transitions_total", smsc=name, direction="down") or 0
    throttled = _one(samples, "smppd_throttled_total", smsc=name) or 0
    unknown = _one(samples, "smppd_submit_unknown_total", smsc=name) or 0
    shown = "bound" if bound == 1 else f"NOT BOUND ({state or 'down'})"
    return (f"{name:<20} {shown:<9} window {in_use:.0f}/"
            f"{capacity:.0f}  submit_sm {sent:.0f}  throttled {throttled:.0f}  unknown "
            f"{unknown:.0f}  binds up {ups:.0f}/down {downs:.0f}")


# smppd account ... -------------------------------------------------------------------

def account_list(args: Any) -> int:
    settings = load_settings(args.config)
    engine = open_store(settings.database)
    configured = {a.name for a in settings.accounts}
    e = t.ledger_entries.c
    last_entry = (select(e.account_id, func.max(e.created_at).label("at"))
                  .group_by(e.account_id).subquery())
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.accounts.c.name, t.accounts.c.balance, last_entry.c.at)
                .outerjoin(last_entry, last_entry.c.account_id == t.accounts.c.id)
                .order_by(t.accounts.c.name)).all()
    finally:
        engine.dispose()
    print(f"{'ACCOUNT':<24} {'BALANCE':>12}  {'LAST LEDGER ENTRY':<20} CONFIGURED")
    for name, balance, at in rows:
        stamp = at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"
        print(f"{name:<24} {balance:>12}  {stamp:<20} {'yes' if name in configured else 'no'}")
    for name in sorted(configured - {row[0] for row in rows}):
        print(f"{name:<24} {'-':>12}  {'-':<20} yes (created when the daemon starts)")
    return 0


def account_topup(args: Any) -> int:
    from .store import operations as ops
    from .store.batch import BatchApplier

    if args.points <= 0:
        raise AdminError("POINTS must be a whole number above 0 (a top-up adds points)", 2)
    settings = load_settings(args.config)
    engine = open_store(settings.database)
    try:
        with engine.begin() as conn:  # one transaction, like one of the daemon's batches
            account_id = conn.execute(select(t.accounts.c.id).where(
                t.accounts.c.name == args.name)).scalar()
            if account_id is None:
                known = conn.execute(select(t.accounts.c.name).order_by(t.accounts.c.name))
                raise AdminError(f"no account named {args.name!r} in the database (there are: "
                                 + (", ".join(r[0] for r in known) or "none") + ")")
            entry = ops.LedgerEntry(account_id, "topup", args.points, note=args.note,
                                    created_by=f"cli:{_who()}")
            (after,) = BatchApplier({}).apply(conn, [entry])
            if isinstance(after, Exception):
                raise AdminError(f"top-up refused: {after}")
    finally:
        engine.dispose()
    print(f"{args.name}: +{args.points} points recorded in the ledger, balance now {after}")
    return 0


def _who() -> str:
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (OSError, KeyError):
        return str(os.getuid())


# smppd db current --------------------------------------------------------------------

def db_current(args: Any) -> int:
    url = args.url or load_settings(args.config).database
    engine = open_store(url, need_schema=False)
    try:
        revision = _revision(engine)
    finally:
        engine.dispose()
    head = database.head_revision()
    if revision is None:
        print(f"no smppd schema (this smppd migrates to {head}: smppd db upgrade)")
        return FAILED
    if revision == head:
        print(f"{revision} (head: up to date)")
        return 0
    print(f"{revision} (this smppd needs {head}: run smppd db upgrade)")
    return FAILED


# smppd reload (ExecReload= for systemd without Type=notify-reload) -------------------

def reload(args: Any) -> int:
    """Signal the daemon and wait until it has applied (or refused) the file, so
    `systemctl reload` returns when the reload is done and fails when it was refused."""
    try:
        settings = config_module.load(args.config)
    except ConfigError as exc:
        # The daemon would refuse it too; it still hears of it (its gauge and log).
        _signal(args.pid)
        print(f"reload refused, the running configuration stays:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    _signal(args.pid, 0)  # is it there at all?
    url = metrics_url(settings)
    try:
        before = _total(scrape(url), "smppd_config_reloads_total")
    except AdminError as exc:
        _signal(args.pid)
        raise AdminError(f"SIGHUP sent, but the reload cannot be followed: {exc} (a changed "
                         "http.listen or http.ops_listen needs a restart)") from None
    _signal(args.pid)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            samples = scrape(url)
        except AdminError:
            continue  # e.g. a moment of backlog on the listener
        if _total(samples, "smppd_config_reloads_total") > before:
            if _one(samples, "smppd_config_last_reload_successful") == 1:
                print("configuration reloaded")
                return 0
            print("reload refused by the daemon (its log says why); the running "
                  "configuration stays", file=sys.stderr)
            return EXIT_CONFIG
    raise AdminError(f"the daemon did not report the reload within {args.timeout:g} s")


def _signal(pid: int, signum: int = signal.SIGHUP) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        raise AdminError(f"no process {pid}: is smppd running?") from None
    except PermissionError:
        raise AdminError(f"not allowed to signal process {pid}") from None


# smppd user ... and smppd operator hash (issue 15) ------------------------------------

def _apply(engine: Engine, op: Any) -> Any:
    """One writer operation in its own transaction, like one of the daemon's batches."""
    from .store.batch import BatchApplier

    with engine.begin() as conn:
        (result,) = BatchApplier({}).apply(conn, [op])
    return result


def _account_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        account_id = conn.execute(select(t.accounts.c.id).where(
            t.accounts.c.name == name)).scalar()
        if account_id is None:
            known = [r[0] for r in conn.execute(select(t.accounts.c.name)
                                                .order_by(t.accounts.c.name))]
            raise AdminError(f"no account named {name!r} in the database (there are: "
                             + (", ".join(known) or "none; start the daemon once") + ")")
    return account_id


def user_add(args: Any) -> int:
    from .portal import i18n, passwords
    from .portal.views.users import check_login
    from .store import portal_ops as pops

    try:
        check_login(args.login)
    except Exception as exc:
        raise AdminError(f"LOGIN: {getattr(exc, 'message', exc)}", 2) from None
    settings = load_settings(args.config)
    engine = open_store(settings.database)
    try:
        account_id = _account_id(engine, args.account)
        password = passwords.one_time_password()
        result = _apply(engine, pops.CreateUser(
            account_id, args.login, args.email, passwords.hash_password(password), args.role,
            True, i18n.pick(args.locale, settings.portal.default_locale), f"cli:{_who()}"))
    finally:
        engine.dispose()
    if isinstance(result, Exception):
        raise AdminError(f"user not created: {result}")
    print(f"user {args.login} ({args.role}) added to {args.account}")
    print(f"one-time password: {password}")
    print("(shown once; it must be changed at the first sign-in at /portal/login)")
    return 0


def user_reset(args: Any) -> int:
    from .portal import passwords
    from .store import portal_ops as pops
    from .store import portal_queries as pq

    settings = load_settings(args.config)
    engine = open_store(settings.database)
    try:
        with engine.connect() as conn:
            user = pq.user_by_login(conn, args.login)
        if user is None:
            raise AdminError(f"no user with the login {args.login!r}")
        password = passwords.one_time_password()
        _apply(engine, pops.SetPassword(user.id, None, passwords.hash_password(password), True))
        if args.enable:
            _apply(engine, pops.UpdateUser(user.id, None, disabled=False))
    finally:
        engine.dispose()
    print(f"{args.login}: new one-time password: {password}")
    print("(their sessions were signed out; the password must be changed at sign-in)")
    return 0


def user_list(args: Any) -> int:
    from .store import portal_queries as pq

    settings = load_settings(args.config)
    engine = open_store(settings.database)
    try:
        account_id = _account_id(engine, args.account) if args.account else None
        with engine.connect() as conn:
            users = pq.users(conn, account_id)
    finally:
        engine.dispose()
    print(f"{'ACCOUNT':<20} {'LOGIN':<28} {'ROLE':<7} {'STATE':<10} LAST SIGN-IN")
    for user in users:
        state = "disabled" if user["disabled"] else (
            "one-time" if user["must_change_password"] else "active")
        print(f"{user['account']:<20} {user['login']:<28} {user['role']:<7} {state:<10} "
              f"{user['last_login_at'] or '-'}")
    return 0


def operator_hash(args: Any) -> int:
    """An argon2 hash for `operators[].password_hash`: the password from the terminal
    (asked twice) or, piped, from the first line of standard input."""
    from .portal import passwords

    if sys.stdin.isatty():
        password = getpass.getpass("operator password: ")
        if getpass.getpass("again: ") != password:
            raise AdminError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < passwords.MIN_LENGTH:
        raise AdminError(f"use at least {passwords.MIN_LENGTH} characters", 2)
    print(passwords.hash_password(password))
    return 0
