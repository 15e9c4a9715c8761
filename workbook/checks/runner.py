"""Run an exercise's gather() (or lab.deploy's rolling deploy) in a child process, bounded by a deadline.

A learner's revision may sleep for an hour, loop forever in Python, or wait on a lock nobody
releases. Run in the notebook's kernel, none of that could be stopped: a thread cannot be
killed. In a child process (its own process group, so the pytest runs of exercise 4 go too) it
can: at the deadline the group is killed and the caller drops the scratch database, which ends
its sessions. The child reports what it is doing (its phase) as it goes, so a verdict can say
where it stopped, and a progress display can show it.
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from workbook.errors import WorkbookError


@dataclass
class Outcome:
    """What the child came back with: evidence, or why there is none."""
    evidence: object = None
    phase: str = "starting the replay"
    stopped_after: float | None = None   # the deadline was reached
    db_error: str | None = None          # the database refused something the check needed
    error: str | None = None             # anything else: the check could not run
    busy: str | None = None              # the server's words when it, not the revision, stopped the check
    learner: bool = False                # whether the phase running last was the learner's own code


def gather(ex, track_dir: Path, databases: list[str], deadline: float) -> Outcome:
    """The evidence of ex's gather(), run in a child; its phases are passed on to base.phase().

    gather() replays on databases[0].
    """
    return in_child(_gather, (ex.id, str(track_dir), databases, deadline), deadline)


def in_child(work, args: tuple, deadline: float) -> Outcome:
    """work(*args) in a child process stopped at `deadline` seconds; what it returns is the
    Outcome's evidence. Its phases (base.phase) reach this process's listener as they start.
    `work` is a module-level function, so it reaches the child on any platform."""
    from workbook.checks import base

    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, work, args), daemon=True)
    start = time.monotonic()
    child.start()
    send.close()
    outcome = Outcome()
    try:
        while True:
            left = deadline - (time.monotonic() - start)
            if left <= 0:
                outcome.stopped_after = deadline
                return outcome
            if not receive.poll(min(left, 0.25)):
                if not child.is_alive() and not receive.poll():
                    outcome.error = f"the check's process ended unexpectedly (exit code {child.exitcode})"
                    return outcome
                continue
            try:
                kind, payload = receive.recv()
            except EOFError:
                outcome.error = f"the check's process ended unexpectedly (exit code {child.exitcode})"
                return outcome
            if kind == "phase":
                outcome.phase, outcome.learner = payload
                base.phase(*payload)
            else:
                setattr(outcome, kind, payload)
                return outcome
    finally:
        _stop(child)
        receive.close()


def _stop(child) -> None:
    if child.is_alive() and child.pid:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except (OSError, AttributeError):
            child.kill()
    child.join(5)


def _child(send, work, args: tuple) -> None:
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)  # one group: the deadline stops the subprocesses a check starts too
    import sqlalchemy as sa

    from workbook import db
    from workbook.checks import base

    lock = threading.Lock()  # phases may come from the migration's thread too
    current = ["starting the replay"]

    def forward(text: str, learner: bool) -> None:
        current[0] = text
        with lock:
            send.send(("phase", (text, learner)))

    try:
        with base.listening(forward):
            result = work(*args)
        with lock:
            send.send(("evidence", result))
    except sa.exc.DBAPIError as exc:  # the server's trouble (busy), or its refusal of the check's SQL
        busy = base.server_trouble(exc)
        send.send(("busy", db.first_line(exc)) if busy else
                  ("db_error", f"While {current[0]}, PostgreSQL said: {db.first_line(exc)}"))
    except WorkbookError as exc:
        send.send(("error", str(exc)))
    except Exception as exc:  # psycopg's own (the server's trouble), or a bug in the check: one line
        send.send(("busy", db.first_line(exc)) if base.server_trouble(exc) else
                  ("error", f"{type(exc).__name__}: {db.first_line(exc)}"))
    finally:
        send.close()


def _gather(exercise_id: str, track_dir: str, databases: list[str], deadline: float):
    from workbook import manifest
    from workbook.checks import base

    ex = manifest.get(exercise_id)
    module = importlib.import_module(ex.check)
    replay = base.Replay(ex, Path(track_dir), databases[0], getattr(module, "explain", None),
                         statement_timeout=deadline + 5,  # a backstop should the kill not reach the server
                         others=tuple(databases[1:]))
    return module.gather(replay)
