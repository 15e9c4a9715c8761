"""Which PostgreSQL the workbook uses, and how to reach it.

Three backends (embedded, docker, url) share one small interface: start(), stop(), status(),
server_url(database) and learner_database. Everything else asks this module.
"""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from workbook.config import settings
from workbook.errors import WorkbookError

MIN_SERVER_VERSION = 130000  # DROP DATABASE ... WITH (FORCE) arrived in PostgreSQL 13


def backend():
    s = settings()
    if s.mode == "embedded":
        from workbook.db.embedded import Embedded

        return Embedded(s.data_dir)
    if s.mode == "docker":
        from workbook.db.docker import Docker

        return Docker()
    from workbook.db.external import FromURL

    return FromURL(s.database_url)


def url(database: str | None = None) -> str:
    """The learner's database URL (postgresql+psycopg://...), starting the server if needed."""
    b = ensure_ready()
    return b.server_url(database or b.learner_database).render_as_string(hide_password=False)


def engine(database: str | None = None) -> Engine:
    """An engine without a pool, so no idle session keeps a database from being cloned or dropped."""
    b = ensure_ready()
    return sa.create_engine(b.server_url(database or b.learner_database), poolclass=NullPool)


@contextlib.contextmanager
def admin() -> Iterator[Connection]:
    """An autocommit connection to the server's maintenance database (for CREATE/DROP DATABASE)."""
    b = ensure_ready()
    eng = sa.create_engine(b.server_url(b.maintenance_database), poolclass=NullPool,
                           isolation_level="AUTOCOMMIT")
    with _explained(b), eng.connect() as conn:
        yield conn


_ready: dict[tuple, object] = {}


def ensure_ready():
    """Start the server if this mode manages one, and prove it answers; cached per process."""
    s = settings()
    key = (s.mode, s.database_url, str(s.data_dir))
    if key in _ready:
        return _ready[key]
    b = backend()
    b.start()
    wait_until_answering(b)
    _ready[key] = b
    return b


def forget() -> None:
    """Drop the cached readiness, for example after `workbook db down`."""
    _ready.clear()


def wait_until_answering(b, timeout: float = 20.0) -> None:
    eng = sa.create_engine(b.server_url(b.maintenance_database), poolclass=NullPool)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with eng.connect() as conn:
                version = conn.execute(sa.text("SHOW server_version_num")).scalar_one()
            break
        except sa.exc.OperationalError as exc:
            if time.monotonic() > deadline or not _transient(exc):
                raise WorkbookError(explain(exc, b)) from None
            time.sleep(0.25)
    if int(version) < MIN_SERVER_VERSION:
        raise WorkbookError(
            f"The server runs PostgreSQL {int(version) // 10000}, but the workbook needs "
            f"{MIN_SERVER_VERSION // 10000} or newer. "
            "Point DATABASE_URL at a newer server, or use the embedded one (unset WORKBOOK_DB)."
        )


def _transient(exc: Exception) -> bool:
    """A server that is still starting answers, but not yet; one that is down just refuses."""
    text = str(exc).lower()
    return "starting up" in text or "not yet accepting" in text


@contextlib.contextmanager
def _explained(b) -> Iterator[None]:
    try:
        yield
    except sa.exc.OperationalError as exc:
        if "terminating connection" in str(exc) or "server closed the connection" in str(exc):
            raise
        raise WorkbookError(explain(exc, b)) from None


def explain(exc: Exception, b) -> str:
    """Turn a connection failure into what was found, what was expected and what to do."""
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    where = b.describe()
    low = text.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return (f"{where} refused the password ({text}). Check the user and password in "
                f"{b.url_source}.")
    if "does not exist" in low and "database" in low:
        return (f"{where} has no such database ({text}). Create it, or point {b.url_source} "
                "at a database that exists.")
    if "connection refused" in low or "could not connect" in low or "no such file" in low \
            or "timeout" in low or "could not translate host" in low:
        return f"Could not reach {where} ({text}). {b.start_hint}"
    return f"{where} did not accept the connection: {text}. {b.start_hint}"
