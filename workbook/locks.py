"""Watching pg_locks: the one place that asks PostgreSQL which lock a session holds or waits for.

The checks use it on a replay (which lock did the learner's migration take on the table, did a
DDL give up behind a held lock); the notebooks use it through workbook.lab for demonstrations.
Every wait here is bounded: a session still waiting at the bound is cancelled.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import sqlalchemy as sa

from workbook import db

# Modes that INSERT/UPDATE/DELETE (ROW EXCLUSIVE) do not conflict with.
WRITER_SAFE = {"AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock"}
# ACCESS EXCLUSIVE is the only mode a plain SELECT (ACCESS SHARE) conflicts with.
READER_BLOCKING = {"AccessExclusiveLock"}
# PostgreSQL's table lock modes, weakest first; from SHARE UPDATE EXCLUSIVE on, schema changes take them.
MODES = ["AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
         "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"]

# An open transaction that has written to finding, as a busy application always has one.
WRITER = "INSERT INTO finding (title, severity, asset_id) VALUES ('open write', 'low', 1)"
# An open transaction that has read finding: a long report.
READER = "SELECT count(*) FROM finding WHERE id <= 1000"

# Every query about another session names it by backend pid AND this connection's database:
# copies of one template share their tables' oids, and a pid read elsewhere (another container,
# another check) may belong to a session on another copy.
_ON_TABLE = """
    SELECT c.relname, l.mode, l.granted, a.wait_event_type
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid AND a.datname = current_database()
    JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid = :pid AND l.locktype = 'relation'
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      -- to_regclass, not a cast: a revision may drop a watched table, and the watcher goes on
      AND l.relation = ANY(ARRAY(SELECT to_regclass(t) FROM unnest(CAST(:tables AS text[])) AS t))"""


def on_tables(conn, pid: int, tables: list[str]) -> list[tuple[str, str, bool, str | None]]:
    """(table, mode, granted, wait_event_type) for each lock session `pid`, connected to this
    connection's database, has on `tables`."""
    rows = conn.execute(sa.text(_ON_TABLE), {"pid": pid, "tables": list(tables)}).all()
    if conn.in_transaction():
        conn.commit()  # a fresh snapshot of pg_locks each time
    return [tuple(r) for r in rows]


def watch(conn, pid: int, table: str, alive: Callable[[], bool],
          seconds: float) -> tuple[list[tuple[str, bool]], bool]:
    """The (mode, granted) pairs session `pid` shows on `table` until it waits, ends, or `seconds` pass.

    A session shows its hand when it waits: then its lock request stays in pg_locks with
    granted = false (or it waits on a lock of another kind, such as another transaction's id).
    Returns the pairs seen and whether it was seen waiting.
    """
    seen: list[tuple[str, bool]] = []
    deadline = time.monotonic() + seconds
    while alive() and time.monotonic() < deadline:
        rows = on_tables(conn, pid, [table])
        for _, mode, granted, _ in rows:
            if (mode, granted) not in seen:
                seen.append((mode, granted))
        if any(not granted or wait == "Lock" for _, _, granted, wait in rows):
            return seen, True
        time.sleep(0.01)
    return seen, False


def own(conn, table: str) -> list[str]:
    """The lock modes this connection's own session holds on `table` right now."""
    return sorted(conn.execute(sa.text(
        "SELECT DISTINCT mode FROM pg_locks WHERE pid = pg_backend_pid() "
        "AND relation = CAST(:t AS regclass) AND granted"), {"t": table}).scalars().all())


def cancel(conn, pid: int) -> None:
    """Cancel session `pid`'s statement, if it is connected to this connection's database."""
    conn.execute(sa.text("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                         "WHERE pid = :p AND datname = current_database()"), {"p": pid})
    if conn.in_transaction():
        conn.commit()


def blocking(database: str, statement: str, *, hold: str, table: str = "finding",
             probe: str | None = None, lock_timeout: str | None = None,
             wait: float = 10.0, probe_timeout: float = 1.0) -> dict:
    """Run `statement` while another session has run `hold` and not committed yet.

    Reads from pg_locks the lock `statement` holds or waits for on `table` (mode, granted), and
    optionally times `probe`, a query a third session sends meanwhile (cancelled after
    `probe_timeout` seconds). Then the holder rolls back and `statement` may finish.
    """
    eng = db.engine(database)
    auto = eng.execution_options(isolation_level="AUTOCOMMIT")
    out: dict = {"locks": [], "waited": False, "error": None, "probe_ms": None, "probe_error": None}
    try:
        with eng.connect() as holder, auto.connect() as runner, auto.connect() as watcher:
            holder.execute(sa.text(hold))  # its transaction stays open
            pid = runner.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            if lock_timeout:
                runner.execute(sa.text(f"SET lock_timeout = '{lock_timeout}'"))

            def run() -> None:
                try:
                    runner.execute(sa.text(statement))
                except sa.exc.DBAPIError as exc:
                    out["error"] = db.first_line(exc)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            out["locks"], out["waited"] = watch(watcher, pid, table, thread.is_alive, wait)
            if probe and thread.is_alive():
                out["probe_ms"], out["probe_error"] = _probe(auto, probe, probe_timeout)
            holder.rollback()
            thread.join(wait)
            if thread.is_alive():
                cancel(watcher, pid)
                thread.join(5)
    finally:
        eng.dispose()
    return out


def _probe(auto, sql: str, timeout: float) -> tuple[float, str | None]:
    """Time one query from a fresh session; give up after `timeout` seconds."""
    with auto.connect() as conn:
        conn.execute(sa.text(f"SET statement_timeout = '{int(timeout * 1000)}ms'"))
        start = time.perf_counter()
        try:
            conn.execute(sa.text(sql))
            error = None
        except sa.exc.DBAPIError as exc:
            error = db.first_line(exc)
        return (time.perf_counter() - start) * 1000, error


def taken(database: str, table: str, *steps: str) -> list[dict]:
    """Run each step in its own transaction; the locks it held on `table` before commit, its time."""
    eng = db.engine(database)
    out = []
    try:
        with eng.connect() as conn:
            for sql in steps:
                start = time.perf_counter()
                conn.execute(sa.text(sql))
                ms = (time.perf_counter() - start) * 1000
                modes = own(conn, table)
                conn.commit()
                out.append({"step": sql, "locks": modes, "ms": ms})
    finally:
        eng.dispose()
    return out
