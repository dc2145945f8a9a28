"""asyncio helpers the syncer's loops rely on to end when told to.

Python 3.11's `asyncio.wait_for` loses a cancellation that arrives in the same loop iteration as
the result it waits for (fixed in 3.12): the task goes on as if nothing happened. A cancelled link
then streams on, and the round that cancelled it waits for it forever (the stall of a source back
from an older snapshot: the round wanted to restart every link, one link never stopped, and the
syncer neither asked the other source again nor obeyed SIGTERM). The syncer therefore uses
`asyncio.timeout` for its deadlines, and `cancel_all` to end tasks: it cancels again whatever
keeps running, so that a lost cancellation can never hold a round or a shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("replication.syncer")

RECANCEL_S = 1.0


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again each second what is
    still running. Their exceptions are retrieved (and dropped: the caller already knows why it
    ends them)."""
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
        for t in pending:
            name = t.get_name() if isinstance(t, asyncio.Task) else repr(t)
            log.warning("%s is still running after its cancellation; cancelling it again", name)
            t.cancel()
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()
