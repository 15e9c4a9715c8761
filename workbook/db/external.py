"""Any PostgreSQL server named by DATABASE_URL: a classroom server, a managed instance, CI."""
from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import URL

from workbook.errors import WorkbookError


def normalise(raw: str) -> URL:
    """Accept postgres://, postgresql:// and other drivers; always talk through psycopg 3."""
    try:
        u = sa.engine.make_url(raw.strip())
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise WorkbookError(
            f"DATABASE_URL ({hidden(raw)!r}) is not a database URL. "
            "Expected something like postgresql://user:password@host:5432/dbname."
        ) from None
    if u.get_backend_name() not in ("postgres", "postgresql"):
        raise WorkbookError(
            f"DATABASE_URL points at {u.get_backend_name()!r}; the workbook needs PostgreSQL "
            "(postgresql://...)."
        )
    return u.set(drivername="postgresql+psycopg")


def hidden(raw: str) -> str:
    """A URL as typed, with anything that may be a password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw.strip())[:80]


class FromURL:
    name = "url"
    url_source = "DATABASE_URL"
    owns_server = False  # someone else's server: only databases the workbook marked are its own

    def __init__(self, raw: str):
        self._url = normalise(raw)
        if not self._url.database:
            raise WorkbookError(
                "DATABASE_URL names no database. Add one at the end, for example .../workbook; "
                "the workbook creates it and resets it for each exercise."
            )
        self.learner_database = self._url.database
        self.maintenance_database = "postgres"

    @property
    def start_hint(self) -> str:
        return "Check that the server is running and that DATABASE_URL's host and port are right."

    def describe(self) -> str:
        return f"the server at {self._url.host or 'localhost'}:{self._url.port or 5432}"

    def server_url(self, database: str) -> URL:
        return self._url.set(database=database)

    def conninfo(self, database: str) -> str:
        """libpq reads the same URL (percent-escapes and ?host=... included) without the driver."""
        from workbook.db import libpq_url

        return libpq_url(self.server_url(database))

    def start(self) -> None:
        pass  # not ours to start

    def stop(self) -> str:
        return "This server is not managed by the workbook (WORKBOOK_DB=url); nothing was stopped."

    def status(self) -> dict:
        return {"mode": self.name, "server": self.describe(), "database": self.learner_database}
