"""Exercise 10: the production playbook. The revision ships ck_finding_status and
ix_finding_status_created_at on a busy finding, and must survive what production does to it.

Three copies of the start (ex08_merge, COPIES), each its own scenario, all judged from the server:
- clean: the upgrade alone, recorded statement by statement (checks.statement_log: locks, rows
  read, the lock_timeout in force); its catalog (workbook.schema.catalog) is the reference the
  re-run is compared with; then the downgrade (schema as before?) and the upgrade again.
- busy: the simulated application (workbook.app) runs throughout; another session holds SHARE
  UPDATE EXCLUSIVE on finding (as a vacuum, an ANALYZE or another index build does) for WINDOW
  seconds from the migration's first statement, and again from the first statement it sends after
  one has got through. That lock does not stop the application, but every DDL of the revision
  conflicts with it, and a queued ACCESS EXCLUSIVE request stops the application's queries
  behind it. Per statement: the lock_timeout the server had in force, whether pg_locks showed it
  waiting, and the errors the server sent it (55P03: lock timeout).
- cancelled: the upgrade runs until pg_stat_progress_create_index shows its concurrent build past
  the catalog entry, then the check cancels it (pg_cancel_backend): an INVALID index is left, as
  an operator's cancel or a lost connection leaves one. The upgrade runs again; its catalog must
  equal the clean run's, with no INVALID index.
And, without a database, the offline script (`alembic upgrade ex08_merge:ex10_production --sql`):
it must render, and hold every statement of the clean run that changed the catalog.

Proof scale: 0.1 (100,000 findings).
- gets_through, no_queue: any scale: lock timeouts are the server's errors, counted; waiting is
  what pg_locks shows while the other session holds its lock, whatever the table's size.
- rerunnable: the cancel must land while the concurrent build runs after its catalog entry. At
  0.1 the build of (status, created_at) takes tens of milliseconds, several polls of the
  progress view (every 2 ms). A build that came and went unseen (a machine too busy to poll)
  makes the report the server's error ("not judged, run it again"), never a failure.
- no_read_under_lock: any scale from 0.01 (exercise 5's judgement: a share of the table read).
- shipped, offline_script, downgrade_restores, upgrade_again: any scale (catalog facts, text).
Time: three copies (clones of one template), WINDOW twice, and five migrations of 100,000 rows.
"""
from __future__ import annotations

import threading
import time

import psycopg
import sqlalchemy as sa

from workbook import app, db, locks, schema
from workbook.checks import common, lint, statement_log
from workbook.checks.base import Evidence, Incorrect, Replay, Step, criterion, is_stub
from workbook.checks.ex05_constraints import read_under_lock

PROOF_SCALE = 0.1  # why: the module's docstring
COPIES = 3  # busy (the first), clean and cancelled
WINDOW = 1.2  # seconds the other session holds its lock, each time
MARGIN = 1.0  # the application may wait this much longer than the lock_timeout (a busy machine)
TABLES = ["finding"]
CHECK, INDEX = "ck_finding_status", "ix_finding_status_created_at"
LOCK_TIMEOUT = "55P03"
SQUAWK_ACCEPTS = {
    # ADD CONSTRAINT has no IF NOT EXISTS, and VALIDATE needs none: the revision asks pg_constraint
    # first, online, which an offline script cannot show; rerunnable proves it live.
    "prefer-robust-stmts": "the revision asks the catalog before ADD CONSTRAINT (online only); "
                           "the re-run after a cancel is proved live",
}
INVALID = """
    SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indrelid = 'finding'::regclass AND NOT x.indisvalid ORDER BY 1"""
PROGRESS = """
    SELECT phase FROM pg_stat_progress_create_index p
    JOIN pg_stat_activity a ON a.pid = p.pid AND a.datname = current_database() WHERE p.pid = %s"""


def attempted(path) -> bool:
    return not is_stub(path)


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ev.update(sql=lint.revision_sql(r), cancel={}, again=None, clean=None)
    clean_db, cancel_db = r.others
    clean(r, clean_db)
    busy(r)
    cancelled(r, cancel_db)
    return ev


def _engine(database: str, r: Replay):
    return db.engine(database, statement_timeout=r.statement_timeout)


def clean(r: Replay, database: str) -> None:
    """The upgrade alone, statement by statement; the reference catalog; the round trip."""
    ev = r.evidence
    eng = _engine(database, r)
    try:
        with eng.connect() as conn, eng.connect() as writer, eng.connect() as watcher:
            ev.before = schema.snapshot(conn)
            ev.rows = {"finding": conn.execute(sa.text("SELECT count(*) FROM finding")).scalar_one()}
            conn.commit()
            ev.upgrade, ev.upgrade_statements = statement_log.replay(
                r, conn, writer, watcher, "upgrade", r.exercise.revision, TABLES, TABLES)
            if ev.upgrade.ok:
                ev.clean = schema.catalog(conn)
                conn.commit()
                r.round_trip(conn)
    finally:
        eng.dispose()


def busy(r: Replay) -> None:
    """The upgrade under the application, with another session holding a lock twice (module docstring)."""
    ev = r.evidence
    eng = _engine(r.database, r)
    url = db.libpq_url(eng.url)
    log: list[dict] = []
    ev.busy_log, ev.windows, ev.windows_skipped = log, [], None
    state = {"window": 0, "through": False, "running": True}
    try:
        with eng.connect() as mig, eng.connect() as watcher, \
                psycopg.connect(url, application_name="wb_blocker") as blocker:
            top = mig.execute(sa.text("SELECT max(id) FROM finding")).scalar_one()
            pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            mig.commit()
            raw = mig.connection.dbapi_connection
            clock = time.monotonic()
            released = threading.Event()

            def hold() -> None:
                state["window"] += 1
                try:
                    # Called from the migration's own thread: if its open transaction holds finding,
                    # waiting here would wait for ourselves. Then there is no second window.
                    blocker.execute("SET LOCAL lock_timeout = '500ms'")
                    blocker.execute("LOCK TABLE finding IN SHARE UPDATE EXCLUSIVE MODE")
                except psycopg.errors.LockNotAvailable:
                    blocker.rollback()
                    ev.windows_skipped = state["window"]
                    return
                start = time.monotonic() - clock
                ev.windows.append([start, None])

                def release() -> None:
                    blocker.rollback()
                    ev.windows[-1][1] = time.monotonic() - clock
                    released.set()
                released.clear()
                threading.Timer(WINDOW, release).start()

            def before(conn, cursor, statement, parameters, context, executemany):
                if state["window"] == 0 or (state["window"] == 1 and released.is_set() and state["through"]):
                    hold()
                lt = raw.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
                log.append({"sql": " ".join(statement.split()), "lock_timeout": _ms(lt), "waited": False,
                            "error": None, "at": time.monotonic() - clock})

            def after(conn, cursor, statement, parameters, context, executemany):
                log[-1]["end"] = time.monotonic() - clock
                # A statement got through after the first window: the second starts with the next one.
                if state["window"] == 1 and released.is_set() and log[-1]["waited_after_release"]:
                    state["through"] = True

            def failed(ctx) -> None:
                if ctx.connection is mig and log:
                    log[-1]["end"] = time.monotonic() - clock
                    log[-1]["error"] = (db.sqlstate(ctx.original_exception), db.first_line(ctx.original_exception))

            def watch() -> None:
                while state["running"]:
                    rows = locks.on_tables(watcher, pid, TABLES)
                    if log and any(not granted or wait == "Lock" for _, _, granted, wait in rows):
                        log[-1]["waited"] = True
                    time.sleep(0.005)

            def tracking(conn, cursor, statement, parameters, context, executemany):
                before(conn, cursor, statement, parameters, context, executemany)
                log[-1]["waited_after_release"] = released.is_set()

            application = app.App(url, "app", "summary", app.spread(top), clock=clock).start()
            time.sleep(0.3)
            sa.event.listen(mig, "before_cursor_execute", tracking)
            sa.event.listen(mig, "after_cursor_execute", after)
            sa.event.listen(eng, "handle_error", failed)
            watching = threading.Thread(target=watch, daemon=True)
            watching.start()
            ev.migration_at = [time.monotonic() - clock, None]
            try:
                ev.busy_upgrade = r.migrate(mig, "upgrade", r.exercise.revision)
            finally:
                ev.migration_at[1] = time.monotonic() - clock
                state["running"] = False
                watching.join(5)
                sa.event.remove(mig, "before_cursor_execute", tracking)
                sa.event.remove(mig, "after_cursor_execute", after)
                sa.event.remove(eng, "handle_error", failed)
                released.wait(WINDOW + 5)
                time.sleep(0.2)
                application.stop()
            ev.app = application.result()
            ev.app_busy = common.apps_busy([ev.app])
            ev.after_busy = schema.catalog(mig) if ev.busy_upgrade.ok else None
            mig.commit()
            for entry in log:
                entry.pop("waited_after_release", None)
    finally:
        eng.dispose()


def _ms(setting: str) -> int:
    """A SHOW value (0, 200ms, 2s, 1min) in milliseconds."""
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    number = setting.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(float(number) * units.get(setting[len(number):], 1))


def cancelled(r: Replay, database: str) -> None:
    """Cancel the upgrade during its concurrent build, then run it again."""
    ev = r.evidence
    eng = _engine(database, r)
    url = db.libpq_url(eng.url)
    try:
        with eng.connect() as mig, psycopg.connect(url, autocommit=True) as watcher:
            pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            mig.commit()
            seen = {"phase": None}

            def watch(thread) -> None:
                while thread.is_alive():
                    row = watcher.execute(PROGRESS, (pid,)).fetchone()
                    if row and row[0] != "initializing":
                        seen["phase"] = row[0]
                        watcher.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        return
                    time.sleep(0.002)

            thread, box = r.migrate_in_thread(mig, "upgrade", r.exercise.revision)
            watch(thread)
            thread.join(r.statement_timeout or 60)
            step = box.get("step") or Step(False, "the upgrade did not finish")
            ev.cancel = {"phase": seen["phase"], "ok": step.ok, "raw": step.raw,
                         "invalid": [n for (n,) in watcher.execute(INVALID).fetchall()]}
            if seen["phase"] is None and step.ok and _builds_concurrently(ev):
                # The build came and went between two polls: a machine too busy for the check
                # to catch it, not the revision's doing. Judge nothing; the learner runs it again.
                ev.cancel_missed = Step(False, busy="the concurrent index build ended before the check "
                                                    "could cancel it, on a busy machine")
            ev.again = r.migrate(mig, "upgrade", r.exercise.revision)
            if ev.again.ok:
                ev.after_again = schema.catalog(mig)
                mig.commit()
    finally:
        eng.dispose()


def _builds_concurrently(ev: Evidence) -> bool:
    """True when the clean run built an index concurrently (the statement the cancel aims at)."""
    return any("CONCURRENTLY" in e["sql"].upper() and "CREATE" in e["sql"].upper()
               for e in ev.get("upgrade_statements") or [])


# ---- criteria ---------------------------------------------------------------------------------

def _blocked(ev: Evidence) -> list[dict]:
    return [e for e in ev.busy_log if e["waited"] or (e["error"] or ("",))[0] == LOCK_TIMEOUT]


def _timeouts(ev: Evidence) -> list[dict]:
    return [e for e in ev.busy_log if (e["error"] or ("",))[0] == LOCK_TIMEOUT]


@criterion("gets_through", f"Twice another session holds a lock on finding for {WINDOW} s while the upgrade "
           "runs: it reaches its head anyway, after giving up at least once (the server's lock timeouts).")
def gets_through(ev: Evidence) -> str:
    """Assert that a short lock_timeout comes with retries: the deploy gets through a busy moment.

    Counted from the server: the errors with SQLSTATE 55P03 the migration's session received.
    """
    ev.require("upgrade")
    timeouts = _timeouts(ev)
    step = ev.busy_upgrade
    if not step.ok:
        if "lock timeout" in step.raw:
            raise Incorrect(
                f"The upgrade stopped at the first busy moment: {statement_log.quoted(timeouts[-1]['sql'] if timeouts else '?', 90)} "
                f"gave up (\"{step.raw}\") and nothing tried again. A lock_timeout without retries turns every busy "
                "moment into a failed deploy. Expected a helper that catches the lock timeout (sqlstate 55P03), "
                "sleeps a little longer each time and runs the step again, inside the autocommit block.")
        if "current transaction is aborted" in step.raw:
            raise Incorrect(
                f"The upgrade retried inside a transaction: after the first lock timeout every statement failed "
                f"with \"{step.raw}\". Expected the retries inside `with op.get_context().autocommit_block():`, "
                "where each statement commits on its own and a failed one leaves nothing aborted behind.")
        raise Incorrect(step.error)
    if not timeouts:
        waited = [e for e in ev.busy_log if e["waited"]]
        said = (f" {statement_log.quoted(waited[0]['sql'], 90)} waited for the other session's lock instead "
                f"(lock_timeout = {waited[0]['lock_timeout']} ms in force)." if waited else "")
        raise Incorrect(f"The upgrade reached its head, but the server never cancelled one of its statements for a "
                        f"lock timeout while the other session held finding for {WINDOW} s{', twice' if len(ev.windows) > 1 else ''}.{said} Expected a "
                        "lock_timeout shorter than that (a few hundred ms) and retries: see no_queue for what the "
                        "waiting cost the application.")
    diff = schema.diff(ev.clean, ev.after_busy)
    if diff:
        raise Incorrect(f"The upgrade reached its head through the busy moments, but its catalog differs from a clean "
                        f"run's: {'; '.join(diff[:3])}. A retry loop that runs out of attempts must raise, not return "
                        "as if the step had run: the deploy then stops, and says why.")
    windows = len(ev.windows)
    return (f"The upgrade reached its head through {windows} window{'s' if windows > 1 else ''} of another session's "
            f"lock: the server cancelled {len(timeouts)} of its statements for a lock timeout, and the retries got "
            "through.")


@criterion("no_queue", "While the upgrade waited for a lock, the application's statements never waited longer "
           f"than the lock_timeout plus {MARGIN:.0f} s.")
def no_queue(ev: Evidence) -> str:
    """Assert that a DDL waiting behind another session gives up instead of queueing the application.

    The decisive fact is the server's: a statement pg_locks showed waiting ran with lock_timeout = 0.
    The application's worst wait (its own clock) is reported, and judged against the lock_timeout
    in force plus MARGIN only when a lock_timeout was set.
    """
    ev.require("upgrade")
    start, end = ev.migration_at
    worst = app.worst(ev.app, start, end)
    unbounded = [e for e in ev.busy_log if e["waited"] and not e["lock_timeout"]]
    if unbounded:
        e = unbounded[0]
        raise Incorrect(f"{statement_log.quoted(e['sql'], 90)} waited for the other session's lock with lock_timeout = 0 "
                        f"(none) in force, as the server reported: the application's statements queued behind it, "
                        f"the longest for {worst * 1000:.0f} ms. Expected op.execute(\"SET lock_timeout = '200ms'\") "
                        "first inside the autocommit block, so a waiting DDL gives up and the queue drains.")
    blocked = _blocked(ev)
    limit = max((e["lock_timeout"] for e in blocked), default=0) / 1000 + MARGIN
    if blocked and worst > limit:
        raise Incorrect(f"The application's longest statement during the upgrade took {worst * 1000:.0f} ms, more than "
                        f"the lock_timeout in force plus {MARGIN:.0f} s ({limit * 1000:.0f} ms). Expected a lock_timeout "
                        "of a few hundred ms, so that a waiting DDL gives up before the application notices.")
    return (f"The application's longest statement during the upgrade took {worst * 1000:.0f} ms; "
            f"{len(ev.app['ops'])} statements, {ev.app['errors']} errors.")


@criterion("rerunnable", "Cancelled during its concurrent index build, the upgrade runs again to its head: the "
           "catalog equals a clean run's, with no INVALID index.")
def rerunnable(ev: Evidence) -> str:
    """Assert that a deploy stopped half-way can simply be run again (pg_cancel_backend mid-build)."""
    ev.require("upgrade")
    c = ev.cancel
    if c.get("phase") is None:
        raise Incorrect("Not judged: the check did not see a concurrent index build to cancel (is "
                        f"{INDEX} built with postgresql_concurrently=True?).")
    if c["ok"]:
        raise Incorrect(f"The check cancelled the concurrent build ({c['phase']}), yet the upgrade carried on to its head: "
                        "your retries caught the cancel too. Retry only a lock timeout (sqlstate 55P03): a cancel "
                        "(57014) is an operator, or a statement_timeout, saying stop.")
    if not ev.again.ok:
        raise Incorrect(f"After the cancel left {', '.join(c['invalid']) or 'nothing'} INVALID, the second run failed "
                        f"(\"{ev.again.raw or ev.again.error}\"). Expected a revision that can run again: drop an INVALID leftover of "
                        "the index first, create with if_not_exists=True, and skip ADD CONSTRAINT when pg_constraint "
                        "already has it.")
    invalid = sorted(k for k, v in ev.after_again.items() if v.endswith("(INVALID)"))
    if invalid:
        raise Incorrect(f"After the cancel and a second run, {', '.join(invalid)} is still INVALID: IF NOT EXISTS kept "
                        "the leftover of the cancelled build, which PostgreSQL never uses. Expected the revision to drop "
                        "an INVALID leftover (pg_index.indisvalid) before building again.")
    diff = schema.diff(ev.clean, ev.after_again)
    if diff:
        raise Incorrect(f"After the cancel and a second run the catalog differs from a clean run's: {'; '.join(diff[:3])}.")
    return (f"Cancelled while {c['phase']} (leaving {', '.join(c['invalid']) or 'nothing'} INVALID), the second run "
            "reached the head with the clean run's catalog and no INVALID index.")


@criterion("shipped", f"After a clean upgrade: {CHECK} (status IN ('open', 'resolved')) valid, and {INDEX} on "
           "finding (status, created_at) valid.")
def shipped(ev: Evidence) -> str:
    """Assert that the revision made the change the exercise asks for."""
    ev.require("upgrade")
    con = ev.clean.get(f"constraint public.finding.{CHECK}", "")
    if "status" not in con or ev.clean.get(f"validity public.finding.{CHECK}") != "valid":
        raise Incorrect(f"After the upgrade finding has {CHECK} as {con or 'nothing'} "
                        f"({ev.clean.get(f'validity public.finding.{CHECK}', 'missing')}). Expected CHECK (status IN "
                        "('open', 'resolved')), added NOT VALID and then validated.")
    index = ev.clean.get(f"index public.{INDEX}", "")
    if "(status, created_at)" not in index or index.endswith("(INVALID)"):
        raise Incorrect(f"After the upgrade {INDEX} is {index or 'missing'}. Expected a valid index on finding "
                        "(status, created_at).")
    return f"{CHECK} is valid, and {INDEX} is {index}."


@criterion("no_read_under_lock", "No statement of the upgrade read finding while holding a lock writers conflict "
           "with (per statement: pg_locks and the rows it read).")
def no_read_under_lock(ev: Evidence) -> str:
    """Assert that the check's scan runs under VALIDATE's SHARE UPDATE EXCLUSIVE, not the ADD's ACCESS EXCLUSIVE."""
    ev.require("upgrade")
    found = read_under_lock(ev.upgrade_statements, ev.rows)
    if found:
        raise Incorrect(found)
    return f"{len(ev.upgrade_statements)} statements: none read finding under a lock writers conflict with."


@criterion("offline_script", "`alembic upgrade ex08_merge:ex10_production --sql` renders, and holds every "
           "statement of a live upgrade that changed the catalog.")
def offline_script(ev: Evidence) -> str:
    """Assert that the script a reviewer reads before the deploy is the deploy (offline mode)."""
    sql = ev.sql or {}
    if "upgrade" not in sql:
        raise Incorrect(f"`alembic upgrade ex08_merge:ex10_production --sql` failed: {sql.get('error', '?')}. Offline "
                        "there is no database to ask: put every op.get_bind() query under `if not "
                        "context.is_offline_mode():` (from alembic import context) and let the script print the DDL.")
    ev.require("upgrade")
    text = " ".join(sql["upgrade"].split())
    ddl = [e["sql"] for e in ev.upgrade_statements if e["changes"] or e["gone"]]
    missing = [s for s in ddl if s.rstrip(";") not in text]
    if missing:
        raise Incorrect(f"The offline script lacks {statement_log.quoted(missing[0], 90)}, which the live upgrade ran. "
                        "Expected the script to print the DDL it runs, so that the reviewer reads what will happen.")
    if not ddl:
        raise Incorrect("The live upgrade changed nothing in the catalog, so the script has nothing to review.")
    return f"The offline script renders and holds the {len(ddl)} statements that changed the catalog live."


CRITERIA = [gets_through, no_queue, rerunnable, offline_script, shipped, no_read_under_lock,
            common.schema_restored("The downgrade restores the schema exactly.",
                                   f"drop {INDEX} concurrently and {CHECK}, with the same lock_timeout and retries"),
            common.upgrade_again, common.lock_timeout, common.squawk(SQUAWK_ACCEPTS, required=True)]
