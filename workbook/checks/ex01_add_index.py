"""Exercise 1: ix_finding_severity, built without blocking writers, proven from pg_locks."""
from __future__ import annotations

import json
import time

import sqlalchemy as sa

from workbook import schema
from workbook.checks import common, lint
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, is_stub

INDEX, TABLE = "ix_finding_severity", "finding"
WRITER_SAFE = {"ShareUpdateExclusiveLock", "RowExclusiveLock", "AccessShareLock", "RowShareLock"}
PROBE_SECONDS = 10  # the longest we hold the writer's transaction open while watching the locks


def attempted(path) -> bool:
    return not is_stub(path)


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    eng = r.engine()
    with eng.connect() as mig, eng.connect() as writer, eng.connect() as watch:
        pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        ev.before = schema.snapshot(mig)
        mig.commit()
        # A writer with an uncommitted INSERT, as a busy application always has one.
        writer.execute(sa.text("INSERT INTO finding (title, severity, asset_id) "
                               "VALUES ('lock probe', 'low', 1)"))
        thread, box = r.migrate_in_thread(mig, "upgrade", r.exercise.revision)
        ev.locks = watch_locks(watch, pid, thread)
        writer.rollback()  # let the migration finish, whichever lock it took
        thread.join(60)
        if thread.is_alive():
            watch.execute(sa.text("SELECT pg_cancel_backend(:p)"), {"p": pid})
            thread.join(10)
        watch.commit()
        ev.upgrade = box.get("step")
        if ev.upgrade is None:
            return ev
        if ev.upgrade.ok:
            ev.index = index_facts(mig)
            ev.plan = plan(mig)
            mig.commit()
            r.round_trip(mig)
    eng.dispose()
    ev.sql = lint.revision_sql(r)
    return ev


def watch_locks(watch, pid: int, thread) -> list[tuple[str, bool]]:
    """The locks the migration's session holds or waits for on finding, until it shows its hand.

    It shows its hand when it waits: a plain CREATE INDEX waits for SHARE (which the writer's
    ROW EXCLUSIVE blocks), CONCURRENTLY holds SHARE UPDATE EXCLUSIVE and waits for the writer's
    transaction to end. Or the migration finishes without waiting at all.
    """
    seen: list[tuple[str, bool]] = []
    deadline = time.monotonic() + PROBE_SECONDS
    while thread.is_alive() and time.monotonic() < deadline:
        rows = watch.execute(sa.text(
            "SELECT l.mode, l.granted, a.wait_event_type FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.pid = :p AND l.relation = CAST(:t AS regclass)"), {"p": pid, "t": TABLE}).all()
        watch.commit()
        for mode, granted, _ in rows:
            if (mode, granted) not in seen:
                seen.append((mode, granted))
        if any(not granted for _, granted, _ in rows) or any(w == "Lock" for *_, w in rows):
            break
        time.sleep(0.01)
    return seen


def index_facts(conn) -> dict | None:
    row = conn.execute(sa.text("""
        SELECT t.relname, array_agg(a.attname ORDER BY k.n), x.indisvalid, x.indisready
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
        LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE i.relname = :i
        GROUP BY t.relname, x.indisvalid, x.indisready"""), {"i": INDEX}).first()
    if row is None:
        return None
    return {"table": row[0], "columns": list(row[1]), "valid": row[2], "ready": row[3]}


def plan(conn) -> list[str]:
    """The index names the planner uses for the critical findings."""
    doc = conn.execute(sa.text(
        "EXPLAIN (FORMAT JSON) SELECT * FROM finding WHERE severity = 'critical'")).scalar_one()
    doc = json.loads(doc) if isinstance(doc, str) else doc
    found, stack = [], [doc[0]["Plan"]]
    while stack:
        node = stack.pop()
        if "Index Name" in node:
            found.append(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return found


@criterion("index_exists", "After the upgrade, ix_finding_severity exists on finding(severity), valid and ready.")
def index_exists(ev: Evidence) -> str:
    """Assert that the upgrade leaves a usable index: an INVALID one costs writes and serves no reads."""
    ev.require("upgrade")
    idx = ev.index
    if idx is None:
        raise Incorrect(f"After the upgrade there is no index named {INDEX}; expected one on "
                        "finding(severity). Name it exactly ix_finding_severity.")
    if (idx["table"], idx["columns"]) != (TABLE, ["severity"]):
        raise Incorrect(f"{INDEX} is on {idx['table']}({', '.join(map(str, idx['columns']))}); "
                        "expected finding(severity).")
    if not (idx["valid"] and idx["ready"]):
        raise Incorrect(f"{INDEX} exists but is INVALID (indisvalid={idx['valid']}): a concurrent "
                        "build failed part-way. Drop it and build it again.")
    return "ix_finding_severity is on finding(severity), valid and ready."


@criterion("planner_uses_it", "The planner uses the index for severity = 'critical'.")
def planner_uses_it(ev: Evidence) -> str:
    """Assert that the index serves the slow query it was made for."""
    ev.require("upgrade")
    if INDEX not in (ev.plan or []):
        if ev.plan:
            raise Incorrect(f"EXPLAIN of SELECT ... WHERE severity = 'critical' uses the index "
                            f"{', '.join(ev.plan)}, not {INDEX}: name your index exactly {INDEX}.")
        raise Incorrect(f"EXPLAIN of SELECT ... WHERE severity = 'critical' still reads the whole table "
                        f"(a sequential scan), not {INDEX}. Is the index on finding(severity)?")
    return "EXPLAIN shows an index scan on ix_finding_severity."


@criterion("writers_not_blocked", "The upgrade did not block writers (lock mode read from pg_locks).")
def writers_not_blocked(ev: Evidence) -> str:
    """Assert that INSERT/UPDATE/DELETE on finding could go on during the build.

    A plain CREATE INDEX asks for SHARE, which conflicts with every writer's ROW EXCLUSIVE:
    on a busy table all writes queue for as long as the build takes.
    """
    ev.require("upgrade")
    locks = ev.locks or []
    blocked = [mode for mode, granted in locks if mode not in WRITER_SAFE]
    if blocked:
        mode = blocked[0]
        waiting = " and had to wait for the open INSERT" if (mode, False) in locks else ""
        raise Incorrect(
            f"While a writer held an open INSERT on finding, the upgrade asked for {mode}{waiting}. "
            f"{mode} conflicts with writers: in production every INSERT, UPDATE and DELETE on "
            "finding would queue for the whole build. Use postgresql_concurrently=True inside "
            "op.get_context().autocommit_block().")
    if not locks:
        raise Incorrect("The upgrade took no lock on finding at all, so it built nothing there. "
                        "Expected CREATE INDEX CONCURRENTLY on finding(severity).")
    modes = ", ".join(sorted({m for m, _ in locks}))
    return f"With a writer's INSERT open, the upgrade held only {modes}: writers were not blocked."


@criterion("concurrent_drop", "Advisory: the downgrade drops the index concurrently.", required=False)
def concurrent_drop(ev: Evidence) -> str:
    """Assert that the rollback does not take ACCESS EXCLUSIVE on finding (plain DROP INDEX does)."""
    down = (ev.get("sql") or {}).get("downgrade", "")
    if "DROP INDEX CONCURRENTLY" not in down.upper():
        raise Incorrect("The downgrade runs DROP INDEX without CONCURRENTLY, which takes ACCESS "
                        "EXCLUSIVE: even reads of finding wait. Use postgresql_concurrently=True in "
                        "an autocommit block.")
    return "The downgrade uses DROP INDEX CONCURRENTLY."


downgrade_restores = common.schema_restored(
    "Downgrade removes the index and leaves the schema exactly as before.",
    "drop the index in downgrade()")

CRITERIA = [index_exists, planner_uses_it, writers_not_blocked, downgrade_restores, common.upgrade_again,
            concurrent_drop, common.lock_timeout, common.squawk()]
