"""Replay a migration statement by statement, asking the server what each one did.

For every statement the migration sends, one entry of the log, recorded from PostgreSQL itself:
- sql: the statement, whitespace squeezed;
- locks: the (table, mode) pairs its session held or asked for on the busy tables, from
  pg_locks: held before it started, seen by a watcher while it ran, and held after it;
- held_before: those of them held before it started (taken by an earlier statement of the same
  transaction, and still held);
- read: {table: rows} it read from each table, by any path: rows of the table itself
  (seq_tup_read) plus entries of its indexes (idx_tup_read), so an index-only scan counts too;
- read_via: {table: [index, ...]}, the indexes through which it read some of those rows;
- notices: the server's DEBUG1 messages to its session ("verifying table", "existing constraints
  on column ... are sufficient to prove that it does not contain nulls", ...);
- changes: what appeared or changed in the catalog, sorted (name, value) pairs: constraints with
  their validity ("c valid", "f not valid"), indexes ("index", "unique"), NOT NULL columns
  ("not null", or "not null not valid" for PostgreSQL 18's NOT NULL ... NOT VALID);
- gone: what disappeared or changed away, the same pairs (a VALIDATE shows "c not valid" gone);
- ms: its time, from sending it to its end; waited_ms: the part of it spent waiting for the
  writer's lock (0 when it never waited), so ms - waited_ms is the statement's own work;
- waited: the (table, mode) pairs among locks that the watcher saw not yet granted;
- lock_timeout, statement_timeout: the settings in force for it, in ms (0: none), asked of the
  migration's own session right before it was sent; lock_timeout_after: the lock_timeout after
  it (another value only when one string held a SET and more: the server is asked between
  strings, so which part of it ran under which value is not known);
- set_before: the SET, RESET and SHOW statements sent since the previous entry, each an entry
  of its own (sql, notices, the settings in force before it): PostgreSQL's warning that a SET
  LOCAL outside a transaction does nothing is among their notices. They are not entries.

The timeouts are asked of the migration's own session right before each statement, not recorded
by an event trigger on ddl_command_start (as live a fact, but creating one needs a superuser,
which a classroom learner's role, owner of its own templates only, is not; and a trigger knows
nothing of the lock a statement takes, which pg_locks tells here beside the settings). What is
read is what the server applies: settings belong to the session, nothing else runs on it in
between, and a SET LOCAL that PostgreSQL ignored, or a RESET, reads as it acts. Only one string
holding several statements hides which part ran under which value; lock_timeout_after shows it.

Reads are the migration session's own counts (pg_stat_* plus its unflushed pg_stat_xact_*, read
in that session with stats_fetch_consistency = none), so they are exact per statement: parallel
workers, which flush their counts when they exit, are turned off for the replay, and the writer
below reads no row of the tables.

A writer holds an UPDATE open on each busy table while a statement starts, as a busy application
does: a statement that needs a lock writers conflict with has to wait for it, which is how the
watcher sees its mode even when it runs outside a transaction. The writer then steps aside. It
leaves alone a table the migration's own transaction already holds in a mode writers conflict
with: it could only wait there, and the statement's locks are read from pg_locks all the same.
"""
from __future__ import annotations

import re
import threading
import time

import sqlalchemy as sa

from workbook import locks
from workbook.checks.base import Replay, Step

# The writer's UPDATE changes no row: its ROW EXCLUSIVE lock on the table is what a DDL meets,
# and reading nothing keeps its counts out of the statements' reads.
WRITES = {table: f"UPDATE {table} SET id = id WHERE false" for table in ("lead", "finding")}
LARGER = 100  # a production table this many times larger than the exercise's, for the stall estimate

# Asked before and after every statement: the table, then its indexes, each found through the
# catalog's own indexes (an OR in one join scanned pg_class: 8 ms a time, against 0.3).
_READ = """
    SELECT t.relname, t.relname, true, pg_stat_get_tuples_returned(t.oid) + pg_stat_get_xact_tuples_returned(t.oid)
    FROM pg_class t
    WHERE t.relname = ANY(%s) AND t.relkind IN ('r', 'p') AND pg_table_is_visible(t.oid)
    UNION ALL
    SELECT t.relname, r.relname, false, pg_stat_get_tuples_returned(r.oid) + pg_stat_get_xact_tuples_returned(r.oid)
    FROM pg_class t JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class r ON r.oid = x.indexrelid
    WHERE t.relname = ANY(%s) AND t.relkind IN ('r', 'p') AND pg_table_is_visible(t.oid)"""
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
    SELECT 'not null ' || c.relname || '.' || a.attname,
           CASE WHEN EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'n'
                             AND NOT k.convalidated AND k.conkey = ARRAY[a.attnum])
                THEN 'not null not valid' ELSE 'not null' END  -- PostgreSQL 18 sets attnotnull for both
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    WHERE c.relname = ANY(%s) AND a.attnum > 0 AND a.attnotnull AND NOT a.attisdropped"""
# Exact counts need PostgreSQL 15+ (shared statistics; earlier servers send them late).
_SETTINGS = ["SET stats_fetch_consistency = none", "SET max_parallel_workers_per_gather = 0",
             "SET max_parallel_maintenance_workers = 0"]
# One SET, RESET or SHOW statement alone; one string with more in it is an entry of its own.
_SETTING = re.compile(r"(SET|RESET|SHOW) [^;]*;?", re.IGNORECASE)
# The timeouts in force for the session's next statement, in ms: what the server will apply to it.
_TIMEOUTS = """
    SELECT max(setting::int) FILTER (WHERE name = 'lock_timeout'),
           max(setting::int) FILTER (WHERE name = 'statement_timeout')
    FROM pg_settings WHERE name IN ('lock_timeout', 'statement_timeout')"""


def replay(r: Replay, mig, writer, watcher, verb: str, target: str,
           tables: list[str], busy: list[str]) -> tuple[Step, list[dict]]:
    """Run `alembic verb target` on `mig`, recording each statement as described above."""
    raw = mig.connection.dbapi_connection
    pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    mig.execute(sa.text("SET client_min_messages = debug1"))
    exact = int(mig.execute(sa.text("SHOW server_version_num")).scalar_one()) >= 150000
    for setting in _SETTINGS if exact else []:
        mig.execute(sa.text(setting))
    mig.commit()
    log: list[dict] = []
    state = {"writing": False, "running": True}
    guard = threading.Lock()

    def query(sql: str, *args) -> list[tuple]:
        return raw.execute(sql, args).fetchall()

    def queries(*asked: tuple) -> list[list[tuple]]:
        """Several (sql, *args) in one round trip (a pipeline): the server runs them in this order."""
        with raw.pipeline():
            cursors = [raw.execute(sql, args) for sql, *args in asked]
        return [c.fetchall() for c in cursors]

    def counted(rows: list[tuple]) -> dict[tuple[str, str, bool], int]:
        return {(t, rel, own): int(n) for t, rel, own, n in rows}

    def write(held: set) -> None:
        with guard:
            if state["writing"]:
                return
            free = [t for t in busy if not any(t == table and m not in locks.WRITER_SAFE for table, m in held)]
            try:
                writer.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
                for table in free:
                    writer.execute(sa.text(WRITES[table]))
                state["writing"] = True
            except sa.exc.DBAPIError:  # our own transaction holds the table: no writer this time
                writer.rollback()

    def step_aside() -> None:
        with guard:
            if state["writing"]:
                writer.rollback()
                state["writing"] = False
                entry = log[-1] if log else None
                if entry is not None and "start" in entry and not entry["waited_ms"]:
                    entry["waited_ms"] = (time.perf_counter() - entry["start"]) * 1000

    def before(conn, cursor, statement, parameters, context, executemany):
        held = set(query(_OWN, busy))
        write(held)
        [(lock_timeout, statement_timeout)], read, catalog = queries(
            (_TIMEOUTS,), (_READ, tables, tables), (_CATALOG, tables, tables, tables))
        log.append({"sql": " ".join(statement.split()), "read_before": counted(read), "held_before": held,
                    "locks": set(held), "waited": set(), "catalog": set(catalog),
                    "notices": [], "read": {}, "read_via": {}, "changes": [], "gone": [],
                    "lock_timeout": lock_timeout, "statement_timeout": statement_timeout,
                    "waited_ms": 0.0, "start": time.perf_counter()})

    def after(conn, cursor, statement, parameters, context, executemany):
        entry = log[-1]
        entry["ms"] = (time.perf_counter() - entry.pop("start")) * 1000
        own, timeouts, read, catalog = queries(
            (_OWN, busy), (_TIMEOUTS,), (_READ, tables, tables), (_CATALOG, tables, tables, tables))
        entry["locks"] |= set(own)
        entry["lock_timeout_after"] = timeouts[0][0]
        _reads(entry, entry.pop("read_before"), counted(read))
        catalog, earlier = set(catalog), entry.pop("catalog")
        entry["changes"], entry["gone"] = sorted(catalog - earlier), sorted(earlier - catalog)

    def watch() -> None:
        while state["running"]:
            rows = locks.on_tables(watcher, pid, busy)
            if log:
                log[-1]["locks"] |= {(t, m) for t, m, _, _ in rows}
                log[-1]["waited"] |= {(t, m) for t, m, granted, _ in rows if not granted}
            if any(not granted or wait == "Lock" for _, _, granted, wait in rows):
                step_aside()
            time.sleep(0.005)

    def hear(diag) -> None:
        if log:
            log[-1]["notices"].append(diag.message_primary)

    raw.add_notice_handler(hear)
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
        raw.remove_notice_handler(hear)  # a later replay on this connection keeps its own notices
        step_aside()
        try:  # back to the usual settings for what follows (facts, the round trip)
            mig.execute(sa.text("SET client_min_messages = notice"))
            for setting in _SETTINGS if exact else []:
                mig.execute(sa.text("RESET " + setting.split()[1]))
            mig.commit()
        except sa.exc.DBAPIError:
            mig.rollback()
    kept, settings = [], []
    for entry in log:
        for key in ("start", "read_before", "catalog"):  # a statement that failed never reached after()
            entry.pop(key, None)
        entry.setdefault("ms", 0.0)
        entry.setdefault("lock_timeout_after", entry["lock_timeout"])
        if _SETTING.fullmatch(entry["sql"]):
            settings.append(entry)
        else:
            entry["set_before"], settings = settings, []
            kept.append(entry)
    return step, kept


def _reads(entry: dict, before: dict, now: dict) -> None:
    """Per table, the rows read between two readings: each relation's own difference, so an
    index made or dropped by the statement neither adds nor hides the others' counts."""
    for (table, rel, own), n in now.items():
        delta = n - before.get((table, rel, own), 0)
        if delta > 0:
            entry["read"][table] = entry["read"].get(table, 0) + delta
            if not own:
                entry["read_via"].setdefault(table, []).append(rel)


def read_under_lock(log: list[dict], rows: dict[str, int], share: float) -> list[dict]:
    """The statements that read at least `share` of a table while holding a lock writers conflict with.

    `rows` is each table's size before the replay. One dict per such statement: entry, table
    and n (what it read, the most first), lock (table, mode: on the table it read if it held one
    there), inherited (that lock was held before it started), taken_by (the earlier entry of
    the same transaction that took it, or None).
    """
    found = []
    for i, entry in enumerate(log):
        strong = sorted((t, m) for t, m in entry["locks"] if m not in locks.WRITER_SAFE)
        scanned = sorted(((n, t) for t, n in entry["read"].items() if t in rows and n >= share * rows[t]),
                         reverse=True)
        if not strong or not scanned:
            continue
        n, table = scanned[0]
        lock = next((lk for lk in strong if lk[0] == table), strong[0])
        inherited = lock in entry["held_before"]
        taken_by = next((e for e in reversed(log[:i]) if lock in e["locks"] and lock not in e["held_before"]),
                        None) if inherited else None
        found.append({"entry": entry, "table": table, "n": n, "lock": lock, "inherited": inherited,
                      "taken_by": taken_by})
    return found


def schema_locks(entry: dict) -> list[tuple[str, str]]:
    """The (table, mode) locks stronger than ROW EXCLUSIVE the statement asked for on a busy table,
    strongest first, leaving out any its transaction already held as strong: those it might have
    had to wait for, and every query after it with it. Plain reads and writes take none of them."""
    rank = locks.MODES.index
    held = {}
    for table, mode in entry["held_before"]:
        held[table] = max(held.get(table, -1), rank(mode))
    return sorted(((t, m) for t, m in entry["locks"]
                   if rank(m) > rank("RowExclusiveLock") and rank(m) > held.get(t, -1)),
                  key=lambda lk: (-rank(lk[1]), lk[0]))


def quoted(sql: str, most: int = 100) -> str:
    """A statement as a message shows it, in backticks: cut at `most` characters with an ellipsis."""
    return f"`{sql if len(sql) <= most else sql[:most - 1].rstrip() + '…'}`"


def stall(entry: dict, lock: tuple[str, str]) -> str:
    """What the statement's time under `lock` would mean on a table LARGER times bigger."""
    table, mode = lock
    seconds = max(entry["ms"] - entry.get("waited_ms", 0.0), 0.0) * LARGER / 1000
    who = f"every query on {table}, reads included," if mode in locks.READER_BLOCKING else f"every write to {table}"
    return f"on a table {LARGER} times larger, {who} would wait about {_duration(seconds)}"


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
