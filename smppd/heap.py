"""Keeps the cyclic garbage collector off the objects a process keeps for its whole life.

Why: CPython's collector walks every tracked object of a generation each time it
collects it, and a full (oldest-generation) collection walks them all. A started
daemon holds about 100,000 such objects that never die: modules, Twisted's and
SQLAlchemy's machinery, the compiled configuration, templates. Measured at a 100/s
contract (peer-bench, 4,500 messages), each full collection cost the reactor about
100 ms of CPU, all spent re-proving that start-up objects are still alive, and it
stalls every bind while it runs; the writer process paid the same in smaller
measure. `gc.freeze()` moves what exists now into a permanent generation the
collector never walks, so later collections look only at what the daemon made since.

Called once a process has built everything it keeps (the daemon once it has started,
the writer process once its engine exists), after one full collection so that start-up
garbage is freed rather than frozen. Frozen objects are not collected if they later
become cyclic garbage; start-up objects do not, and what a reload replaces is small.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then hide every surviving object from later collections.

    Returns how many objects were frozen (for the log line that says it was done)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
