"""The `smppd` command line (names fixed by DESIGN.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535, got {text}")
    return value


def _fake_smsc(args: argparse.Namespace) -> int:
    from twisted.internet import reactor

    from .fake_smsc import Behaviour, FakeSmsc

    credentials = None
    if args.credentials:
        system_id, _, password = args.credentials.partition(":")
        credentials = {system_id: password}
    behaviour = Behaviour(credentials=credentials, receipt_delay=args.receipt_delay,
                          id_format=args.id_format, receipt_id_format=args.receipt_id_format,
                          receipt_tlvs=not args.no_receipt_tlvs, drop_every=args.drop_every)
    smsc = FakeSmsc(behaviour)
    port = smsc.listen(args.port, args.host)
    logging.getLogger("smppd.fake_smsc").info(
        "fake SMSC listening on %s:%d (%s)", args.host, port.getHost().port,
        "any credentials" if credentials is None else f"system_id {args.credentials.split(':')[0]}")
    reactor.run()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.count, Path(args.dir), serve=args.serve)


def _run(args: argparse.Namespace) -> int:
    from .daemon.run import run

    return run(args.config)


def _check_config(args: argparse.Namespace) -> int:
    from .config import EXIT_CONFIG, ConfigError, load

    try:
        settings = load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.config}: OK ({len(settings.smscs)} SMSC(s), {len(settings.accounts)} "
          f"account(s), {len(settings.routes)} route(s))")
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from .config import EXIT_CONFIG, ConfigError, load
    from .store import database

    try:
        url = args.url or load(args.config).database
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    try:
        engine = database.make_engine(url)
        database.upgrade(engine)
        print(f"database at revision {database.current_revision(engine)}")
    except database.DatabaseError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _admin(name: str) -> Any:
    """A handler from smppd.admin (imported when used: it loads the store)."""

    def handler(args: argparse.Namespace) -> int:
        from . import admin

        return admin.run(getattr(admin, name), args)

    return handler


class _VersionAction(argparse.Action):
    """`--version`, looked up only when asked: building the parser must not import the
    admin module (SQLAlchemy, Alembic), which every daemon start would then pay for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default,
                         help=help or "show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from .admin import version

        print(f"smppd {version()}")
        parser.exit()


def _unassigned(args: argparse.Namespace) -> int:
    """The operator's list of MO messages no account holds (newest first)."""
    from .config import ConfigError, load
    from .store import database
    from .store import inbound_queries as iq

    try:
        engine = database.make_engine(load(args.config).database)
        with engine.connect() as conn:
            items, _ = iq.list_inbound(conn, None, iq.InboundFilter(), None, args.limit)
            total = iq.unassigned_count(conn)
    except (ConfigError, database.DatabaseError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{total} unassigned MO message(s); the newest {len(items)}:")
    for item in items:
        text = (item["text"] or "(binary)").replace("\n", " ")
        print(f"{item['received_at']}  {item['from']:>16} -> {item['to']:<16} "
              f"{item['reason'] or '':<15} {text[:60]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smppd", description="SMPP 3.4 carrier connector")
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", required=True)
    run.set_defaults(handler=_run)

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("--config", required=True)
    check.set_defaults(handler=_check_config)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate the schema to this version")
    source = upgrade.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="take the database URL from this file")
    source.add_argument("--url", help="a database URL (sqlite:///... or postgresql+psycopg://...)")
    upgrade.set_defaults(handler=_db_upgrade)
    current = db_commands.add_parser("current", help="the schema revision, and whether it is "
                                                     "this version's")
    source = current.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="take the database URL from this file")
    source.add_argument("--url", help="a database URL")
    current.set_defaults(handler=_admin("db_current"))

    _add_admin_commands(commands)

    inbound = commands.add_parser("unassigned", help="list MO messages no account holds")
    inbound.add_argument("--config", required=True)
    inbound.add_argument("--limit", type=_positive_int, default=50)
    inbound.set_defaults(handler=_unassigned)

    fake = commands.add_parser("fake-smsc", help="run the bundled fake SMSC")
    fake.add_argument("--port", type=_port, default=2775)
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--credentials", metavar="SYSTEM_ID:PASSWORD",
                      help="accept only these credentials (default: any)")
    fake.add_argument("--receipt-delay", type=float, default=0.0, metavar="SECONDS")
    id_formats = ["dec", "hex", "hexpad", "hexlower", "uuid", "big"]
    fake.add_argument("--id-format", default="dec", choices=id_formats,
                      help="message ids in submit_sm_resp")
    fake.add_argument("--receipt-id-format", choices=id_formats,
                      help="message ids in receipts (default: as --id-format)")
    fake.add_argument("--no-receipt-tlvs", action="store_true",
                      help="receipts carry the id in their text only")
    fake.add_argument("--drop-every", type=int, default=0, metavar="N",
                      help="close each connection on its Nth submit, unanswered")
    fake.set_defaults(handler=_fake_smsc)

    demo = commands.add_parser("demo", help="send messages through the fake SMSC and report")
    demo.add_argument("--count", type=_positive_int, default=300)
    demo.add_argument("--dir", default="demo-output", help="where the report is written")
    demo.add_argument("--serve", action="store_true",
                      help="keep the daemon and its portal running afterwards (Ctrl-C stops)")
    demo.set_defaults(handler=_demo)
    return parser


def _add_admin_commands(commands: Any) -> None:
    status = commands.add_parser("status", help="binds, queue and jobs, from the store and "
                                                "the running daemon's /metrics")
    status.add_argument("--config", required=True)
    status.set_defaults(handler=_admin("status"))

    account = commands.add_parser("account", help="accounts and their balances")
    account_commands = account.add_subparsers(dest="account_command", required=True)
    listing = account_commands.add_parser("list", help="accounts with their balances")
    listing.add_argument("--config", required=True)
    listing.set_defaults(handler=_admin("account_list"))
    topup = account_commands.add_parser("topup", help="add points, recorded in the ledger "
                                                      "(safe while the daemon runs)")
    topup.add_argument("name", metavar="NAME")
    topup.add_argument("points", metavar="POINTS", type=int)
    topup.add_argument("--config", required=True)
    topup.add_argument("--note", help="why (kept in the ledger)")
    topup.set_defaults(handler=_admin("account_topup"))

    # Portal users and operator passwords (issue 15).
    user = commands.add_parser("user", help="portal users of an account")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create a user; prints a one-time password")
    add.add_argument("account", metavar="ACCOUNT")
    add.add_argument("login", metavar="LOGIN")
    add.add_argument("--role", required=True, choices=["owner", "sender", "viewer"])
    add.add_argument("--email")
    add.add_argument("--locale", choices=["en", "pl"], help="the portal's language for them")
    add.add_argument("--config", required=True)
    add.set_defaults(handler=_admin("user_add"))
    reset = user_commands.add_parser("reset", help="a new one-time password (signs them out)")
    reset.add_argument("login", metavar="LOGIN")
    reset.add_argument("--enable", action="store_true", help="also enable a disabled user")
    reset.add_argument("--config", required=True)
    reset.set_defaults(handler=_admin("user_reset"))
    users = user_commands.add_parser("list", help="users, with role and state")
    users.add_argument("account", metavar="ACCOUNT", nargs="?")
    users.add_argument("--config", required=True)
    users.set_defaults(handler=_admin("user_list"))
    operator = commands.add_parser("operator", help="the operator's console")
    operator_commands = operator.add_subparsers(dest="operator_command", required=True)
    hashing = operator_commands.add_parser("hash", help="an argon2 hash of a password, for "
                                                        "operators[].password_hash")
    hashing.set_defaults(handler=_admin("operator_hash"))

    reload = commands.add_parser("reload", help="SIGHUP the daemon and wait until it has "
                                                "applied the file (systemd's ExecReload=)")
    reload.add_argument("--config", required=True)
    reload.add_argument("--pid", type=_positive_int, required=True,
                        help="the daemon's process id ($MAINPID)")
    reload.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    reload.set_defaults(handler=_admin("reload"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import logs

    quiet = args.command in ("demo", "status", "account", "db", "reload", "user", "operator")
    logs.configure("warning" if quiet and args.log_level == "info" else args.log_level)
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    from .twistedlog import install

    install(reactor)  # Twisted's own events into our logging, rate-limited

    try:
        return args.handler(args)
    except CannotListenError as exc:
        print(f"smppd {args.command}: cannot listen on {exc.interface or '*'}:{exc.port}: "
              f"{exc.socketError}", file=sys.stderr)
    except OSError as exc:
        print(f"smppd {args.command}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
