"""Does the upgrade's DDL give up when its table is locked? Proven live, for the lock_timeout advisory.

On a second scratch copy, one session holds ACCESS EXCLUSIVE on the exercise's tables while the
upgrade runs in a child process; pg_locks shows the DDL waiting, and it must fail with
lock_not_available (SQLSTATE 55P03) within SECONDS of starting to wait, or it is cancelled.

A child process, not a thread: Alembic's `op` and `context` are process-wide, so two migrations
cannot run at once in one process, and this one mostly sleeps on a lock beside the main replay.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from workbook import db, locks, templates
from workbook.checks.base import Replay
from workbook.manifest import ROOT

SECONDS = 6.0  # how long a DDL may wait behind the held lock before we call its wait unbounded
STARTUP = 30.0  # the child's own start (imports, connecting) and whatever runs before the DDL
MARK = "LOCK-PROBE "


def start(r: Replay, tables: list[str]) -> threading.Thread:
    """Run the probe beside the main replay; it leaves its result in ev.lock_probe. Join it."""
    ev = r.evidence
    ev.lock_probe = None

    def probe() -> None:
        try:
            ev.lock_probe = run(r, tables)
        except Exception as exc:  # the advisory says it could not run; the required criteria stand
            ev.lock_probe = {"failed": db.first_line(exc)}

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    return thread


def run(r: Replay, tables: list[str]) -> dict:
    out: dict = {"waited": False, "lock": None, "gave_up": False, "cancelled": False,
                 "error": None, "sqlstate": None, "seconds": None, "notices": []}
    app = f"wb_lock_probe_{os.getpid()}_{threading.get_ident()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # Start the child first: its imports (a second or two) overlap the copy below. It waits for
    # the copy's URL on stdin; the URL may hold a password, so not on its command line.
    child = subprocess.Popen(
        [sys.executable, "-m", "workbook.checks.lock_probe", str(r.track_dir), r.exercise.revision, app],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stdout = ""
    try:
        with templates.scratch(r.exercise.start) as database:
            eng = db.engine(database)
            try:
                with eng.connect() as holder, eng.connect() as watcher:
                    for table in tables:
                        holder.execute(sa.text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
                    child.stdin.write(eng.url.render_as_string(hide_password=False) + "\n")
                    child.stdin.flush()
                    try:
                        _watch(child, watcher, app, tables, out)
                    finally:
                        holder.rollback()
                        try:
                            stdout, _ = child.communicate(timeout=15)
                        except subprocess.TimeoutExpired:
                            child.kill()
                            stdout, _ = child.communicate()
            finally:
                eng.dispose()
    finally:
        if child.poll() is None:  # the copy failed before the child got its URL
            child.kill()
            child.wait()
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    if lines:
        out.update(json.loads(lines[-1][len(MARK):]))
    out["gave_up"] = out["sqlstate"] == "55P03" and not out["cancelled"]
    return out


def _watch(child: subprocess.Popen, watcher, app: str, tables: list[str], out: dict) -> None:
    began, pid, waiting_since = time.monotonic(), None, None
    while child.poll() is None and time.monotonic() - began < STARTUP + SECONDS:
        if pid is None:
            pid = watcher.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                                  {"a": app}).scalar()
            watcher.commit()
        if pid is not None:
            waiting = [(t, m) for t, m, granted, _ in locks.on_tables(watcher, pid, tables) if not granted]
            if waiting and waiting_since is None:
                out["waited"], out["lock"], waiting_since = True, waiting[0], time.monotonic()
            if waiting:
                out["seconds"] = time.monotonic() - waiting_since
            if waiting_since is not None and time.monotonic() - waiting_since > SECONDS:
                out["cancelled"] = True
                locks.cancel(watcher, pid)
                break
        time.sleep(0.02)
    else:
        if child.poll() is None and pid is not None:  # never waited, never ended: bounded all the same
            out["cancelled"] = True
            locks.cancel(watcher, pid)
    child.wait(15)


def _child(track: str, revision: str, app: str) -> None:
    """In the child process: run the upgrade on the probe's copy and print what happened."""
    from sqlalchemy.pool import NullPool

    from workbook import migrate

    url = sys.stdin.readline().strip()
    if not url:  # the parent gave up before the copy was ready
        return
    out: dict = {"error": None, "sqlstate": None, "notices": []}
    eng = sa.create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT set_config('application_name', :a, false)"), {"a": app})
            conn.commit()
            # The server's own warnings, such as "SET LOCAL can only be used in transaction blocks".
            conn.connection.dbapi_connection.add_notice_handler(
                lambda d: out["notices"].append(d.message_primary))
            migrate.run(conn, "upgrade", revision, Path(track))
    except Exception as exc:  # the learner's code may raise anything; the parent judges it
        out["error"], out["sqlstate"] = db.first_line(exc), locks.sqlstate(exc)
    finally:
        eng.dispose()
    print(MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    _child(*sys.argv[1:4])
