"""Running pytest several times without paying its start-up each time.

Exercise 4's check runs the learner's tests six times. A fresh `python -m pytest` imports
pytest, SQLAlchemy, Alembic and pytest-alembic every time: about a second of CPU per run, on a
machine that may have two cores. A zygote is one helper process that imports them once, then
forks a child per run; each child starts with them imported, takes its own environment,
working folder and output file, and calls pytest.main(). The zygote has a single thread, so
forking it is safe (forking the check's own process, which has threads, would not be).

Protocol: one JSON line per run on the zygote's stdin ({"args", "env", "output"}); it answers
"started <pid>" and, when that child ends, "ended <pid> <exit code>".
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

# Not pytest-alembic nor workbook.testing: pytest rewrites a plugin's asserts only if it
# imports the plugin itself, and the learner's failure messages come from those asserts.
# The rest is what every run imported in its child all the same: pytest's built-in plugins,
# the ORM (pytest-alembic's experimental tests), the workbook's modules the fixtures and the
# chain's models.py use.
PRELOAD = ["pytest", "_pytest.junitxml", "sqlalchemy", "sqlalchemy.dialects.postgresql", "psycopg",
           "alembic.command", "alembic.autogenerate", "alembic.config", "alembic.migration",
           "sqlalchemy.orm", "sqlalchemy.ext.asyncio", "unittest", "pdb", "readline", "faulthandler",
           "logging.config", "workbook.db.embedded",
           "workbook.checks.ex04_verify", "workbook.db", "workbook.migrate", "workbook.models",
           "workbook.schema", "workbook.templates"]


class Gone(Exception):
    """The zygote process ended unexpectedly."""


class Zygote:
    """The check's side: start runs, wait for them, stop them."""

    def __init__(self, cwd):
        self.proc = subprocess.Popen([sys.executable, "-m", "workbook.checks.zygote"], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.codes: dict[int, int] = {}
        self.ready = threading.Condition()
        self.pending: list[list] = []  # one box per start() waiting for its pid, in order
        self.dead = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            word, *rest = line.split()
            with self.ready:
                if word == "started":
                    self.pending.pop(0).append(int(rest[0]))
                elif word == "ended":
                    self.codes[int(rest[0])] = int(rest[1])
                self.ready.notify_all()
        with self.ready:  # the zygote died: every run still waiting ends as killed
            self.dead = True
            self.ready.notify_all()

    def start(self, args: list[str], env: dict, output: str) -> int | None:
        """The pid of a child running pytest.main(args), or None if the zygote is gone."""
        box: list = []
        with self.ready:
            self.pending.append(box)
            try:
                self.proc.stdin.write(json.dumps({"args": args, "env": env, "output": output}) + "\n")
                self.proc.stdin.flush()
            except OSError:
                self.pending.remove(box)
                return None
            self.ready.wait_for(lambda: box or self.dead)
        return box[0] if box else None

    def wait(self, pid: int, timeout: float) -> int | None:
        """The child's exit code, or None if it is still running after `timeout` seconds.
        Raises Gone if the zygote died before telling (the caller runs pytest itself then)."""
        with self.ready:
            self.ready.wait_for(lambda: pid in self.codes or self.dead, timeout)
            if pid not in self.codes and self.dead:
                raise Gone()
            return self.codes.get(pid)

    def kill(self, pid: int) -> None:
        with self.ready:
            if pid in self.codes:
                return  # ended, and its pid may already belong to someone else
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=30)


def _child(job: dict) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.environ.clear()
    os.environ.update(job["env"])
    fd = os.open(job["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    import pytest

    code = 1
    try:
        code = int(pytest.main(job["args"]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The zygote's side: import once, then fork a child per job until stdin closes.

    One thread only: it waits for stdin and reaps ended children in turn (select with a short
    timeout), so every fork happens in a single-threaded process.
    """
    import gc
    import importlib
    import select
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import _pytest.config

        for name in PRELOAD + [f"_pytest.{p}" for p in _pytest.config.default_plugins]:
            importlib.import_module(name)
    # What was imported stays put: a child's garbage collections (pytest runs some at its end)
    # then neither scan it nor touch its pages, which forking shares until they are written.
    gc.freeze()
    running, buffer, open_ = set(), b"", True

    def say(text: str) -> None:
        os.write(1, (text + "\n").encode())

    while open_ or running:
        if open_ and select.select([0], [], [], 0.05)[0]:
            chunk = os.read(0, 65536)
            open_ = bool(chunk)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                pid = os.fork()
                if pid == 0:
                    _child(json.loads(line))
                running.add(pid)
                say(f"started {pid}")
        elif not open_:
            select.select([], [], [], 0.05)
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            running.discard(pid)
            say(f"ended {pid} {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    serve()
