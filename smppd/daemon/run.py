"""`smppd run`: the daemon in the foreground under the global reactor.

SIGTERM (and SIGINT) stop the reactor, and a before-shutdown trigger drains the
daemon first, so the process exits 0 only after in-flight work is settled. SIGHUP
re-reads the configuration file and applies what can change live. Watchdog pings
come from a LoopingCall on the reactor: a hung reactor stops pinging and systemd
restarts the service, which is the point.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from .. import config as config_module
from .. import logs
from ..heap import freeze_startup_heap
from ..store.database import DatabaseError
from ..store.single import lock_sqlite
from . import systemd
from .app import Daemon

log = logging.getLogger("smppd.daemon")


def run(path: str) -> int:
    try:
        settings = config_module.load(path)
    except config_module.ConfigError as exc:
        logs.print_error(exc)
        return config_module.EXIT_CONFIG
    logs.set_level(settings.log_level)
    from twisted.internet import reactor, task

    from ..twistedlog import AcceptFailures, install

    bridge = install(reactor)  # Twisted's own events (accept failures...) into our log

    try:
        held = lock_sqlite(settings.database)  # noqa: F841 - kept for the process's life
        daemon = Daemon(settings, reactor)
    except DatabaseError as exc:
        logs.print_error(f"{path}: {exc}")
        return 1
    daemon.metrics.registry.register(AcceptFailures(bridge))
    outcome = {"code": 0}

    def started(_: Any) -> None:
        log.debug("daemon: start-up heap frozen: %d objects", freeze_startup_heap())
        systemd.notify("READY=1", f"STATUS=HTTP on port {daemon.http_port}")
        interval = systemd.watchdog_interval()
        if interval:
            task.LoopingCall(systemd.notify, "WATCHDOG=1").start(interval)

    def failed(failure: Any) -> None:
        message = failure.getErrorMessage()
        if failure.check(DatabaseError):
            logs.print_error(f"{path}: {message}")
        else:
            log.error("smppd could not start: %s", message)
        outcome["code"] = 1
        daemon.started = True  # so the shutdown trigger releases what did start
        reactor.stop()

    def shutting_down() -> Any:
        systemd.notify("STOPPING=1")
        return daemon.stop()

    def hangup(_signum: int, _frame: Any) -> None:
        reactor.callFromThread(reload)

    def reload() -> None:
        # MONOTONIC_USEC lets Type=notify-reload (systemd >= 253) tell this reload
        # from an earlier one; `systemctl reload` returns at READY=1.
        systemd.notify("RELOADING=1", systemd.monotonic_usec())
        try:
            new = config_module.load(path)
        except config_module.ConfigError as exc:
            log.error("reload refused, the running configuration stays:\n%s", exc)
            daemon.metrics.reloaded(False)
            systemd.notify("READY=1", "STATUS=reload refused: the configuration has errors "
                           "(see the log); the running configuration stays")
            return
        daemon.reload(new)
        daemon.metrics.reloaded(True)
        systemd.notify("READY=1", f"STATUS=HTTP on port {daemon.http_port}; configuration "
                       "reloaded")

    reactor.callWhenRunning(lambda: daemon.start().addCallbacks(started, failed))
    reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
    signal.signal(signal.SIGHUP, hangup)
    reactor.run()
    return outcome["code"]
