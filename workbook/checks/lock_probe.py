"""Does the upgrade's DDL give up when its table is locked? Proven live, for the lock_timeout advisory.

On a second scratch copy, one session holds ACCESS EXCLUSIVE on the exercise's tables while the
upgrade runs in a child process; pg_locks shows the DDL waiting, and it must fail with
lock_not_available (SQLSTATE 55P03) within SECONDS of starting to wait, or it is cancelled.
The child tells the probe its backend pid; the probe watches and cancels that pid on its own copy
only (locks.py filters by database), never a session found by a name: checks in separate
containers share process ids, so a name made from one could be another check's.
A check module asks for it by naming the tables: LOCK_PROBE = ["lead"]. The check's runner
starts it before gather() and joins it after; base.check makes its copy beside the replay's.

A child process, not a thread: Alembic's `op` and `context` are process-wide, so two migrations
cannot run at once in one process, and this one mostly sleeps on a lock beside the main replay.
The child is forked when the probe starts, while the check's process has one thread and no
connection: it begins with Alembic imported, where a new interpreter would spend half a second
of CPU on imports beside the replay.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from workbook import db, locks
from workbook.checks.base import Replay

SECONDS = 6.0  # how long a DDL may wait behind the held lock before we call its wait unbounded
STARTUP = 30.0  # the child's own start (connecting) and whatever runs before the DDL


def start(r: Replay, tables: list[str], database: str) -> threading.Thread:
    """Run the probe on `database` beside the replay; it leaves its result in ev.lock_probe.

    Call it before any connection or thread: the child is forked here. Join the thread.
    """
    import alembic.command  # noqa: F401  (imported before the fork: the child starts with it)

    ev = r.evidence
    ev.lock_probe = None
    app = f"wb_lock_probe_{os.getpid()}"  # a label for pg_stat_activity's readers, not an identity
    ours, theirs = multiprocessing.Pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the check's code, never run its exit handlers
        code = 1
        try:
            ours.close()
            _child(theirs, str(r.track_dir), r.exercise.revision, app)
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    child = Child(pid)

    def probe() -> None:
        try:
            ev.lock_probe = run(database, tables, child, ours)
        except Exception as exc:  # the advisory says it could not run; the required criteria stand
            ev.lock_probe = {"failed": db.first_line(exc)}
        finally:
            child.stop()
            ours.close()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    return thread


class Child:
    """The forked child, seen from the probe's thread."""

    def __init__(self, pid: int):
        self.pid, self.code = pid, None

    def is_alive(self) -> bool:
        if self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code is None

    def stop(self) -> None:
        if self.is_alive():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.code = -signal.SIGKILL


def run(database: str, tables: list[str], child: Child, pipe) -> dict:
    out: dict = {"waited": False, "lock": None, "gave_up": False, "cancelled": False,
                 "error": None, "sqlstate": None, "seconds": None, "notices": []}
    eng = db.engine(database)
    try:
        with eng.connect() as holder, eng.connect() as watcher:
            for table in tables:
                holder.execute(sa.text(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE'))
            # The URL may hold a password: through the pipe, never on a command line.
            pipe.send(eng.url.render_as_string(hide_password=False))
            try:
                _watch(child, watcher, pipe, tables, out)
            finally:
                holder.rollback()
                while "result" not in out and pipe.poll(15):
                    _receive(pipe, out)
    finally:
        eng.dispose()
    for kind in ("pid", "result"):  # the messages themselves, already merged into out
        out.pop(kind, None)
    out["gave_up"] = out["sqlstate"] == "55P03" and not out["cancelled"]
    return out


def _receive(pipe, out: dict) -> None:
    """One message from the child: first its backend pid, last its result."""
    kind, value = pipe.recv()
    out[kind] = value
    if kind == "result":
        out.update(value)


def _watch(child: Child, watcher, pipe, tables: list[str], out: dict) -> None:
    began, pid, waiting_since = time.monotonic(), None, None
    while child.is_alive() and time.monotonic() - began < STARTUP + SECONDS:
        if pid is None and "result" not in out and pipe.poll():
            _receive(pipe, out)
            pid = out.pop("pid", None)
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
        if child.is_alive() and pid is not None:  # never waited, never ended: bounded all the same
            out["cancelled"] = True
            locks.cancel(watcher, pid)


def _child(pipe, track: str, revision: str, app: str) -> None:
    """In the child process: run the upgrade on the probe's copy and send back what happened."""
    from sqlalchemy.pool import NullPool

    from workbook import migrate

    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):  # the learner's prints belong to the main replay, not twice on the screen
        os.dup2(devnull, fd)
    try:
        url = pipe.recv()
    except EOFError:  # the parent gave up before the copy was ready
        return
    out: dict = {"error": None, "sqlstate": None, "notices": []}
    eng = sa.create_engine(url, poolclass=NullPool)
    try:
        with eng.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid() FROM set_config('application_name', :a, false)"),
                               {"a": app}).scalar_one()
            conn.commit()
            pipe.send(("pid", pid))
            # The server's own warnings, such as "SET LOCAL can only be used in transaction blocks".
            conn.connection.dbapi_connection.add_notice_handler(
                lambda d: out["notices"].append(d.message_primary))
            migrate.run(conn, "upgrade", revision, Path(track))
    except Exception as exc:  # the learner's code may raise anything; the parent judges it
        out["error"], out["sqlstate"] = db.first_line(exc), db.sqlstate(exc)
    finally:
        eng.dispose()
    pipe.send(("result", out))
