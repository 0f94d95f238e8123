"""The house rules, read from the code: no module imports upward, and the protocol
knows nothing of the store, the API, the throttle or the reports.

Each room of smppd has a floor; a module may import its own room and the floors
below it. A new room fails this test until it is given a floor here, so where it
stands is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "smppd"

# room (a subpackage or a top-level module of smppd) -> floor
FLOORS = {
    "status": 0, "ids": 0, "ratelog": 0, "logs": 0, "checks": 0, "e164": 0, "heap": 0,
    "twistedlog": 1,
    "throttle": 1, "inbound": 1,
    "protocol": 1, "explain": 1,
    "store": 2,
    "config": 3,
    "fake_smsc": 3,
    "mail": 4, "reports": 4, "callbacks": 4,
    "api": 5,
    "portal": 6,
    "daemon": 7,
    "admin": 8, "demo": 8,
    "cli": 9,
}
# Rooms a room must never import, whatever their floors.
FORBIDDEN = {
    "protocol": {"store", "api", "throttle", "reports", "daemon", "config", "inbound",
                 "callbacks", "portal"},
    "store": {"api", "daemon", "throttle", "config"},
    "throttle": {"protocol", "store", "api", "daemon"},
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[str, int]]:
    """smppd modules imported by the file at `path`, with line numbers."""
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(relative.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names
                      if alias.name.startswith("smppd")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: x is a module of `base`
                    found += [(".".join([*base, alias.name]), node.lineno)
                              for alias in node.names]
                    continue
            else:
                name = node.module or ""
            if name.startswith("smppd"):
                found.append((name, node.lineno))
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        room = _room(module)
        if room in ("", "__init__"):
            continue
        if room not in FLOORS:
            problems.append(f"{module}: room {room!r} has no floor in FLOORS")
            continue
        for imported, line in _imports(path):
            target = _room(imported)
            if target in ("", room):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}"
            if target in FORBIDDEN.get(room, ()):
                problems.append(f"{where}: {room} must know nothing of {target}")
            elif target not in FLOORS:
                problems.append(f"{where}: room {target!r} has no floor in FLOORS")
            elif FLOORS[target] > FLOORS[room]:
                problems.append(f"{where}: upward ({room} is floor {FLOORS[room]}, "
                                f"{target} is floor {FLOORS[target]})")
    return problems


def test_no_module_imports_upward_or_across_the_rules() -> None:
    assert _violations() == []


def test_the_checker_sees_a_violation() -> None:
    """The rule is not vacuous: an upward import in a scratch module is caught."""
    scratch = PACKAGE / "protocol" / "_layering_probe.py"
    scratch.write_text("from ..store import schema\nfrom smppd.daemon import app\n")
    try:
        found = _violations()
    finally:
        scratch.unlink()
    assert "smppd/protocol/_layering_probe.py:1 imports smppd.store: protocol must know " \
        "nothing of store" in found, found
    assert "smppd/protocol/_layering_probe.py:2 imports smppd.daemon: protocol must know " \
        "nothing of daemon" in found, found
    scratch = PACKAGE / "store" / "_layering_probe.py"
    scratch.write_text("from ..reports import x\n")
    try:
        found = _violations()
    finally:
        scratch.unlink()
    assert any(p.startswith("smppd/store/_layering_probe.py:1 imports smppd.reports: upward")
               for p in found), found
