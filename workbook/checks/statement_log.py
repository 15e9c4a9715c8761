"""Replay a migration statement by statement, asking the server what each one did.

For every statement the migration sends, recorded from PostgreSQL itself:
- locks: the (table, mode) pairs its session held or asked for on the busy tables, from
  pg_locks: held before it started (an earlier statement of the same transaction), seen by a
  watcher while it ran, and held after it (until its transaction ends);
- read: how many rows of each table it read (pg_stat_user_tables seq_tup_read + idx_tup_fetch,
  with pg_stat_xact_user_tables for the open transaction, flushed before each reading);
- notices: the server's DEBUG1 messages to its session ("verifying table", "existing constraints
  on column ... are sufficient to prove that it does not contain nulls", ...);
- changes: what appeared or changed in the catalog (constraints, their validity, indexes, NOT NULL).

A writer keeps an UPDATE open on each busy table while a statement starts, as a busy application
does: a statement that needs a lock writers conflict with has to wait for it, which is how the
watcher sees its mode even when it runs outside a transaction. The writer then steps aside.
"""
from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from workbook import locks
from workbook.checks.base import Replay, Step

WRITES = {"lead": "UPDATE lead SET company = company WHERE id = (SELECT min(id) FROM lead)",
          "finding": "UPDATE finding SET status = status WHERE id = (SELECT min(id) FROM finding)"}

_READ = """
    SELECT t.relname, t.seq_tup_read + coalesce(t.idx_tup_fetch, 0)
           + coalesce(x.seq_tup_read, 0) + coalesce(x.idx_tup_fetch, 0)
    FROM pg_stat_user_tables t LEFT JOIN pg_stat_xact_user_tables x USING (relid)
    WHERE t.relname = ANY(%s)"""
_OWN = """
    SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
    WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND c.relname = ANY(%s)"""
_CATALOG = """
    SELECT 'constraint ' || conname, contype::text || CASE WHEN convalidated THEN ' valid' ELSE ' not valid' END
    FROM pg_constraint WHERE conrelid IN (SELECT oid FROM pg_class WHERE relname = ANY(%s))
      AND contype <> 'n'  -- PostgreSQL 18 records NOT NULL as a constraint too: see attnotnull below
    UNION ALL
    SELECT 'index ' || i.relname, CASE WHEN x.indisunique THEN 'unique' ELSE 'index' END
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
    WHERE t.relname = ANY(%s) AND NOT x.indisprimary
    UNION ALL
    SELECT 'not null ' || c.relname || '.' || a.attname, 'not null'
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relname = ANY(%s) AND a.attnum > 0 AND a.attnotnull AND NOT a.attisdropped"""


def replay(r: Replay, mig, writer, watcher, verb: str, target: str,
           tables: list[str], busy: list[str]) -> tuple[Step, list[dict]]:
    """Run `alembic verb target` on `mig`, recording each statement as described above."""
    raw = mig.connection.dbapi_connection
    pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    mig.execute(sa.text("SET client_min_messages = debug1"))
    mig.commit()
    log: list[dict] = []
    state = {"writing": False, "running": True}
    guard = threading.Lock()

    def query(sql: str, *args) -> list[tuple]:
        return raw.execute(sql, args).fetchall()

    def reading() -> dict[str, int]:
        try:
            query("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15+: flush at the next idle
        except Exception:  # an older server flushes on its own schedule: readings may lag
            pass
        return {t: int(n) for t, n in query(_READ, tables)}

    def write() -> None:
        with guard:
            if state["writing"]:
                return
            try:
                writer.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
                for table in busy:
                    writer.execute(sa.text(WRITES[table]))
                state["writing"] = True
            except sa.exc.DBAPIError:  # our own transaction holds the table: no writer this time
                writer.rollback()

    def step_aside() -> None:
        with guard:
            if state["writing"]:
                writer.rollback()
                state["writing"] = False

    def before(conn, cursor, statement, parameters, context, executemany):
        write()
        held = set(query(_OWN, busy))
        log.append({"sql": " ".join(statement.split()), "read_before": reading(), "held_before": held,
                    "locks": set(held), "catalog": set(query(_CATALOG, tables, tables, tables)),
                    "notices": [], "read": {}, "changes": [], "start": time.perf_counter()})

    def after(conn, cursor, statement, parameters, context, executemany):
        entry = log[-1]
        entry["ms"] = (time.perf_counter() - entry.pop("start")) * 1000
        entry["locks"] |= set(query(_OWN, busy))
        now = reading()
        entry["read"] = {t: n - entry["read_before"].get(t, 0) for t, n in now.items()
                         if n - entry["read_before"].get(t, 0) > 0}
        catalog = set(query(_CATALOG, tables, tables, tables))
        entry["changes"] = sorted(catalog - entry.pop("catalog"))

    def watch() -> None:
        while state["running"]:
            rows = locks.on_tables(watcher, pid, busy)
            if log:
                log[-1]["locks"] |= {(t, m) for t, m, _, _ in rows}
            if any(not granted or wait == "Lock" for _, _, granted, wait in rows):
                step_aside()
            time.sleep(0.005)

    raw.add_notice_handler(lambda d: log and log[-1]["notices"].append(d.message_primary))
    sa.event.listen(mig, "before_cursor_execute", before)
    sa.event.listen(mig, "after_cursor_execute", after)
    watcher_thread = threading.Thread(target=watch, daemon=True)
    watcher_thread.start()
    try:
        step = r.migrate(mig, verb, target)
    finally:
        state["running"] = False
        watcher_thread.join(5)
        sa.event.remove(mig, "before_cursor_execute", before)
        sa.event.remove(mig, "after_cursor_execute", after)
        step_aside()
        try:  # back to the usual level for what follows (facts, the round trip)
            mig.execute(sa.text("SET client_min_messages = notice"))
            mig.commit()
        except sa.exc.DBAPIError:
            mig.rollback()
    for entry in log:
        entry.pop("start", None)
        entry.pop("read_before", None)
        entry.pop("catalog", None)
    return step, [e for e in log if not e["sql"].upper().startswith(("SET ", "RESET ", "SHOW "))]
