"""At most K checks replay at once on a shared server, however many learners press check.

Thirty replays on a two-core server all miss their deadlines; four at a time, each finishes in
its usual time and the others wait their turn. The turns are advisory locks on the server itself,
so they hold across every machine and notebook of a class: K slot keys in the workbook's own
namespace, one taken with pg_try_advisory_lock by a connection held for the check's life (its
end, or its process's death, frees the slot). A waiting check holds a shared "waiting" lock keyed
by when it came, so each can count the checks ahead of it, and the first to come is the first in.
The embedded server has one learner and skips all this.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from workbook import config, db

SLOTS = 0x57420001    # pg_locks.classid of the slot keys (objid: 0 .. K-1)
WAITING = 0x57420002  # pg_locks.classid of the waiters' keys (objid: when each came, in 1/10 s)
POLL = 0.5

_HERE = ("locktype = 'advisory' AND granted AND classid = %s::bigint::oid "
         "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


@contextlib.contextmanager
def admitted(say: Callable[[str], None] = lambda text: None) -> Iterator[None]:
    """Wait for a free slot (telling `say` how many checks are ahead), hold it inside the block."""
    if not queued():
        yield
        return
    k = config.admission()
    with db.admin() as conn:
        came = int(time.time() * 10) % 2**31
        conn.execute("SELECT pg_advisory_lock_shared(%s::int, %s::int)", (WAITING, came))
        told = None
        while True:
            earlier = conn.execute(f"SELECT count(*) FROM pg_locks WHERE {_HERE} AND objid::bigint < %s",
                                   (WAITING, came)).fetchone()[0]
            if not earlier and _take_slot(conn, k):
                break
            running = conn.execute(f"SELECT count(*) FROM pg_locks WHERE {_HERE} AND objid::bigint < %s",
                                   (SLOTS, k)).fetchone()[0]
            ahead = earlier + running
            if ahead != told:
                say(f"waiting for the server: {ahead} check{'s' if ahead != 1 else ''} ahead")
                told = ahead
            time.sleep(POLL)
        conn.execute("SELECT pg_advisory_unlock_shared(%s::int, %s::int)", (WAITING, came))
        yield  # the slot goes with the connection


def queued() -> bool:
    """Whether checks take turns here (a shared server with K > 0)."""
    return config.settings().mode == "url" and config.admission() != 0


def _take_slot(conn, k: int) -> bool:
    return any(conn.execute("SELECT pg_try_advisory_lock(%s::int, %s::int)", (SLOTS, slot)).fetchone()[0]
               for slot in range(k))
