"""Exercise 1: ix_finding_severity, built without blocking writers, proven from pg_locks."""
from __future__ import annotations

import json

import sqlalchemy as sa

from workbook import locks, schema
from workbook.checks import common, lint, statement_log
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, is_stub

INDEX, TABLE = "ix_finding_severity", "finding"
PROBE_SECONDS = 10  # the longest we hold the reader's transaction open while watching the downgrade
# Proof scale: 0.1 (100,000 findings). Which lock the build asked for, whether the index is valid and
# whether the drop is concurrent are facts of pg_locks and the catalog at any size; the planner's
# choice is not: on a table of a few thousand rows a sequential scan is cheaper than any index.
# With 1,000 'critical' rows among 100,000 it picks the index, as at the learning scale.
PROOF_SCALE = 0.1


def attempted(path) -> bool:
    return not is_stub(path)


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ev.drop_locks = None
    eng = r.engine()
    with eng.connect() as mig, eng.connect() as other, eng.connect() as watch:
        ev.before = schema.snapshot(mig)
        mig.commit()
        # Statement by statement, with a writer's UPDATE open as a busy application always has one.
        ev.upgrade, ev.upgrade_statements = statement_log.replay(
            r, mig, other, watch, "upgrade", r.exercise.revision, [TABLE], [TABLE])
        ev.locks = seen(ev.upgrade_statements)
        if ev.upgrade.ok:
            ev.index = index_facts(mig)
            ev.plan = plan(mig)
            mig.commit()

            def downgrade():  # with a reader's transaction open: which lock does the drop ask for?
                step, ev.drop_locks = watched(r, mig, other, watch, locks.READER,
                                              "downgrade", r.exercise.down_revision)
                return step
            r.round_trip(mig, downgrade)
    eng.dispose()
    ev.sql = lint.revision_sql(r)
    return ev


def seen(log: list[dict]) -> list[tuple[str, bool]]:
    """The (mode, granted) pairs the upgrade's statements showed on finding, in order.

    A statement shows its hand when it waits for the writer: a plain CREATE INDEX waits for SHARE
    (which the writer's ROW EXCLUSIVE blocks), CONCURRENTLY holds SHARE UPDATE EXCLUSIVE and waits
    for the writer's transaction to end.
    """
    pairs: list[tuple[str, bool]] = []
    for entry in log:
        for table, mode in sorted(entry["locks"]):
            pair = (mode, (table, mode) not in entry["waited"])
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def watched(r: Replay, mig, holder, watch, hold: str, verb: str, target: str):
    """Run the migration while `holder` keeps `hold` open; the locks it showed on finding.

    It shows its hand when it waits: a plain DROP INDEX waits for ACCESS EXCLUSIVE behind the reader.
    """
    pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    mig.commit()
    holder.execute(sa.text(hold))
    thread, box = r.migrate_in_thread(mig, verb, target)
    seen, _ = locks.watch(watch, pid, TABLE, thread.is_alive, PROBE_SECONDS)
    holder.rollback()  # let the migration finish, whichever lock it took
    thread.join(60)
    if thread.is_alive():
        locks.cancel(watch, pid)
        thread.join(10)
    return box.get("step"), seen


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
    seen = ev.locks or []
    blocked = [mode for mode, granted in seen if mode not in locks.WRITER_SAFE]
    if blocked:
        mode = blocked[0]
        waiting = " and had to wait for it" if (mode, False) in seen else ""
        raise Incorrect(
            f"While a writer held an open UPDATE on finding, the upgrade asked for {mode}{waiting}. "
            f"{mode} conflicts with writers: in production every INSERT, UPDATE and DELETE on "
            "finding would queue for the whole build. Use postgresql_concurrently=True inside "
            "op.get_context().autocommit_block().")
    if not seen:
        raise Incorrect("The upgrade took no lock on finding at all, so it built nothing there. "
                        "Expected CREATE INDEX CONCURRENTLY on finding(severity).")
    modes = ", ".join(sorted({m for m, _ in seen}))
    return f"With a writer's UPDATE open, the upgrade held only {modes}: writers were not blocked."


@criterion("concurrent_drop", "Advisory: the downgrade drops the index without ACCESS EXCLUSIVE "
           "on finding (read from pg_locks).", required=False)
def concurrent_drop(ev: Evidence) -> str:
    """Assert that the rollback does not take ACCESS EXCLUSIVE on finding (plain DROP INDEX does).

    Read from pg_locks while a reader's transaction is open: even a SELECT queues behind
    ACCESS EXCLUSIVE, so a plain DROP INDEX waiting for a long report stops every query.
    """
    ev.require("upgrade", "downgrade")
    seen = ev.get("drop_locks") or []
    heavy = [mode for mode, _ in seen if mode in locks.READER_BLOCKING]
    if heavy:
        waiting = " and had to wait for the open SELECT" if (heavy[0], False) in seen else ""
        raise Incorrect(
            f"While a reader held an open SELECT on finding, the downgrade asked for {heavy[0]}{waiting}: "
            "that is a plain DROP INDEX, and every later query on finding, even a SELECT, queues behind "
            "it. Use postgresql_concurrently=True inside op.get_context().autocommit_block().")
    if not seen:
        raise Incorrect("The downgrade took no lock on finding, so it dropped no index there. Expected "
                        "DROP INDEX CONCURRENTLY ix_finding_severity.")
    modes = ", ".join(sorted({m for m, _ in seen}))
    return f"With a reader's SELECT open, the downgrade held only {modes}: readers and writers went on."


downgrade_restores = common.schema_restored(
    "Downgrade removes the index and leaves the schema exactly as before.",
    "drop the index in downgrade()")

CRITERIA = [index_exists, planner_uses_it, writers_not_blocked, downgrade_restores, common.upgrade_again,
            concurrent_drop, common.lock_timeout, common.squawk()]
