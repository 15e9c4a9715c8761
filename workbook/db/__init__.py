"""Which PostgreSQL the workbook uses, and how to reach it.

Three backends (embedded, docker, url) share one small interface: start(), stop(), status(),
server_url(database) (SQLAlchemy's URL), conninfo(database) (libpq's) and learner_database.
Everything else asks this module.

The server's own business (CREATE, DROP, marks) goes through psycopg alone: a reset then never
imports SQLAlchemy, which costs more than the reset itself. Migrations and checks use engine().
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Iterator

import psycopg

from workbook.config import settings
from workbook.errors import WorkbookError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

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
    """The learner's database URL (postgresql+psycopg://...), password included: for clients only."""
    b = ensure_ready()
    return b.server_url(database or b.learner_database).render_as_string(hide_password=False)


def libpq_url(u) -> str:
    """A SQLAlchemy URL (or its text) as libpq reads it (psql, psycopg, pg_dump): without the
    +driver, which libpq refuses, and with the password."""
    import sqlalchemy as sa

    return sa.engine.make_url(u).set(drivername="postgresql").render_as_string(hide_password=False)


def display(u) -> str:
    """A URL to show a person: the password replaced by ***."""
    import sqlalchemy as sa

    u = sa.engine.make_url(u)
    return u.set(drivername=u.get_backend_name()).render_as_string(hide_password=True)


def engine(database: str | None = None, statement_timeout: float | None = None,
           pooled: bool = False) -> Engine:
    """An engine without a pool, so no idle session keeps a database from being cloned or dropped.

    statement_timeout (seconds) bounds every statement of its sessions unless they SET another.
    pooled: keep its connections open (SQLAlchemy's default pool) until engine.dispose(), for a
    caller that connects many times and disposes of it before anyone clones or drops the database.
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    b = ensure_ready()
    args = {"options": f"-c statement_timeout={int(statement_timeout * 1000)}"} if statement_timeout else {}
    return sa.create_engine(b.server_url(database or b.learner_database), connect_args=args,
                            **({} if pooled else {"poolclass": NullPool}))


@contextlib.contextmanager
def admin() -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection to the server's maintenance database (CREATE/DROP DATABASE)."""
    b = ensure_ready()
    with _explained(b), psycopg.connect(b.conninfo(b.maintenance_database), autocommit=True) as conn:
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
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(b.conninfo(b.maintenance_database)) as conn:
                version = conn.execute("SHOW server_version_num").fetchone()[0]
            break
        except psycopg.OperationalError as exc:
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


def _is_db_error(exc: BaseException) -> bool:
    """A failure the database reported, through psycopg or through SQLAlchemy (if it is loaded)."""
    sa = sys.modules.get("sqlalchemy")
    return isinstance(exc, psycopg.Error) or (sa is not None and isinstance(exc, sa.exc.DBAPIError))


@contextlib.contextmanager
def _explained(b) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not _is_db_error(exc):
            raise
        raise WorkbookError(explain(exc, b)) from None


@contextlib.contextmanager
def explained() -> Iterator[None]:
    """Database errors inside the block become one WorkbookError that says what to do."""
    with _explained(ensure_ready()):
        yield


# What a learner can do about a server's refusal, by SQLSTATE (PostgreSQL's error codes).
BY_SQLSTATE = {
    "53100": "The server ran out of disk space ({text}). Free some space on {where}, then run it again.",
    "53000": "The server is short of resources ({text}). Free some space or memory on {where}, then run it again.",
    "53300": ("{where} has no free connection slots ({text}). Close notebooks you no longer use, or "
              "ask whoever runs the server to raise max_connections."),
    "57P01": ("{where} ended the session in the middle ({text}): the server was stopped, or someone "
              "ended the session. Run the command again; if it says the server is down: {start}."),
    "57P02": "{where} crashed and restarted in the middle ({text}). Run the command again.",
    "57P03": "{where} is starting or shutting down ({text}). Wait a moment and run the command again.",
    "28P01": "{where} refused the password ({text}). Check the user and password in {source}.",
    "28000": "{where} refused the login ({text}). Check the user in {source} and the server's pg_hba.conf.",
    "55006": "{text}. Close the other sessions using that database (other notebooks, psql) and try again.",
}


def explain(exc: Exception, b) -> str:
    """Turn a database failure into what was found, what was expected and what to do."""
    text = first_line(exc)
    where = b.describe()
    low = text.lower()
    state = sqlstate(exc)
    if state in BY_SQLSTATE:
        return BY_SQLSTATE[state].format(text=text, where=where, source=b.url_source,
                                         start=b.start_hint.rstrip("."))
    if state == "42501" and "create database" in low:
        return (f"{where} does not let this role create databases ({text}). The workbook needs "
                "CREATEDB for its templates and throw-away copies: ask for `ALTER ROLE ... CREATEDB`, "
                "or use the embedded server (unset WORKBOOK_DB).")
    if state == "42501":
        return (f"{where} refused: {text}. The database belongs to another role; use a "
                "DATABASE_URL whose user owns it, or name a database that does not exist yet.")
    if state == "3D000" or ("does not exist" in low and "database" in low):
        return (f"{where} has no such database ({text}). If it is your workbook database, a "
                "reset may have been interrupted: run `workbook reset` (or the notebook's setup "
                f"cell) to make it again; otherwise check the name in {b.url_source}.")
    if "server closed the connection" in low or "terminating connection" in low:
        return (f"{where} closed the connection in the middle ({text}); it may have restarted. "
                f"Run the command again; if it keeps happening: {b.start_hint}")
    if "password authentication failed" in low or "no password supplied" in low:
        return (f"{where} refused the password ({text}). Check the user and password in "
                f"{b.url_source}.")
    if "connection refused" in low or "could not connect" in low or "no such file" in low \
            or "timeout" in low or "could not translate host" in low:
        return f"Could not reach {where} ({text}). {b.start_hint}"
    if state:
        return (f"{where} answered with an error: {text}. Run it again; if it repeats, "
                "`workbook db status` shows the server, and the message above is worth reporting.")
    return f"{where} did not accept the connection: {text}. {b.start_hint}"


def sqlstate(exc: BaseException) -> str | None:
    """PostgreSQL's error code, whether psycopg raised the error or SQLAlchemy wrapped it."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)


def first_line(exc: BaseException) -> str:
    """The first line of what the database (or anything else) said."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
