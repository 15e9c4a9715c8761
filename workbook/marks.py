"""Which databases are the workbook's, and whose: names, marks and owners.

Every database the workbook creates carries a mark in its comment (COMMENT ON DATABASE): what
it is (learner, template, scratch), for which learner, and for a scratch copy the process that
owns it. Nothing unmarked is ever dropped. Names are unambiguous on a shared server: each
learner's names start with a key made from the full database name (a readable part and a
hash), and a scratch copy's name adds the host and process that made it.

The functions that read or write marks take db.admin()'s connection (psycopg, autocommit).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg import Connection

MARK = "alembic-workbook "
ORPHAN_AGE = 3600  # seconds after which another host's scratch copy counts as abandoned


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def learner_key(database: str) -> str:
    """A short name prefix that only this learner database produces."""
    readable = "".join(ch for ch in database.lower() if ch.isascii() and ch.isalnum())[:12] or "db"
    return f"wb_{readable}_{hashlib.sha256(database.encode()).hexdigest()[:8]}"


@functools.cache
def host_id() -> str:
    """This machine, and this process namespace on it: containers with small pids differ here."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as f:
                parts.append(f.read().strip())
        except OSError:
            pass
    try:
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


def process_start(pid: int) -> str | None:
    """When a process started (Linux), so a reused pid is not mistaken for the owner."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner() -> dict:
    pid = os.getpid()
    return {"host": host_id(), "pid": pid, "start": process_start(pid), "at": round(time.time())}


def scratch_name(learner: str, n: int) -> str:
    return f"{learner_key(learner)}_s{host_id()[:6]}_{os.getpid()}_{n}"


def scratch_maker(name: str, learner: str) -> tuple[str, int] | None:
    """(host, pid) a name of scratch_name(learner, ...) carries; None for any other name.

    A scratch copy is created, then marked: a process killed in between leaves it unmarked, and
    its name is then the only sign that the workbook made it. The name is only ever produced by
    scratch_name: this learner's key (a hash of the full database name), then _s, six hex digits,
    a pid and a counter; nobody names a database that by chance.
    """
    found = re.fullmatch(re.escape(learner_key(learner)) + r"_s([0-9a-f]{6})_([0-9]{1,10})_([0-9]{1,10})", name)
    return (found[1], int(found[2])) if found else None


def unmarked_scratch_abandoned(name: str, learner: str) -> bool:
    """An unmarked database named as this learner's scratch copy, made on this host by a process
    that is gone. A live pid (the maker, or a process that reuses its number) keeps it: its
    start time was never recorded, so the doubt goes to keeping it."""
    maker = scratch_maker(name, learner)
    return maker is not None and maker[0] == host_id()[:6] and not _alive(maker[1])


def in_flight_elsewhere(name: str, m: dict | None, learner: str) -> bool:
    """A scratch copy of `learner` that another live process (not this one) is using, by its
    mark, or for a copy not yet marked, by the maker its name carries."""
    if m:
        return m.get("kind") == "scratch" and m.get("pid") != os.getpid() and not abandoned(m)
    made = scratch_maker(name, learner)
    return made is not None and made[1] != os.getpid() and not unmarked_scratch_abandoned(name, learner)


def mark(conn: Connection, database: str, kind: str, **facts) -> None:
    text = MARK + json.dumps({"kind": kind, **facts}, sort_keys=True)
    conn.execute(f"COMMENT ON DATABASE {q(database)} IS {literal(text)}")


def private(conn: Connection, database: str) -> None:
    """Only its owner (and superusers) may connect: a new database lets every role in."""
    conn.execute(f"REVOKE ALL ON DATABASE {q(database)} FROM PUBLIC")


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parse(comment: str | None) -> dict | None:
    if not comment or not comment.startswith(MARK):
        return None
    try:
        found = json.loads(comment[len(MARK):])
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def databases(conn: Connection) -> dict[str, dict | None]:
    """Every database on the server with its workbook mark (None when unmarked)."""
    rows = conn.execute("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database").fetchall()
    return {name: _parse(comment) for name, comment in rows}


def of(conn: Connection, database: str) -> tuple[bool, dict | None]:
    """(exists, mark) for one database."""
    row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                       "WHERE datname = %s", (database,)).fetchone()
    return (row is not None, _parse(row[0]) if row else None)


def abandoned(m: dict, now: float | None = None) -> bool:
    """A scratch copy whose owner is gone: dead on this host, or old enough anywhere."""
    now = time.time() if now is None else now
    if m.get("host") == host_id():
        pid = m.get("pid")
        if not isinstance(pid, int) or not _alive(pid):
            return True
        return m.get("start") is not None and process_start(pid) not in (None, m["start"])
    return now - float(m.get("at") or 0) > ORPHAN_AGE


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
