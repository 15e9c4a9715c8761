"""Exercise 11's SQLite environment: the legacy database file and Alembic run on it.

The exercise has its own Alembic environment in each track (exercises/sqlite/, solutions/sqlite/:
alembic.ini, env.py, models.py, versions/), apart from the PostgreSQL history. Its database is a
file built here with the standard library's sqlite3, as a legacy application left it: unnamed
constraints, a foreign key, a dead column.
"""
from __future__ import annotations

import hashlib
import io
import sqlite3
from pathlib import Path

from workbook.config import settings

BASE = "sqlite_base"  # the environment's first revision: the legacy schema
CUSTOMERS, INVOICES = 2_000, 6_000

# As the legacy application created them: no constraint has a name.
LEGACY_DDL = """
CREATE TABLE customer (
    id INTEGER PRIMARY KEY,
    email VARCHAR(200) NOT NULL,
    name TEXT,
    fax VARCHAR(40),
    UNIQUE (email)
);
CREATE TABLE invoice (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customer (id),
    number VARCHAR(20) NOT NULL,
    amount TEXT NOT NULL,
    status VARCHAR(10) NOT NULL CHECK (status IN ('open', 'paid', 'void'))
);
"""
TABLES = ("customer", "invoice")


def environment(track_dir: Path) -> Path:
    return Path(track_dir) / "sqlite"


def learner_file() -> Path:
    """The learner's SQLite database (in the data dir, beside the embedded server's files)."""
    return settings().data_dir / "ex11.sqlite"


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def build(path: Path, customers: int = CUSTOMERS, invoices: int = INVOICES) -> Path:
    """A fresh legacy database at `path`, stamped at the environment's base revision."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        con.executescript(LEGACY_DDL)
        con.executemany("INSERT INTO customer VALUES (?, ?, ?, NULL)",
                        ((i, f"customer{i}@example.com", f"Customer {i}") for i in range(1, customers + 1)))
        statuses = ("open", "paid", "void")
        con.executemany("INSERT INTO invoice VALUES (?, ?, ?, ?, ?)",
                        ((i, 1 + (i * 7) % customers, f"INV-{i:06d}", str((i * 137) % 100_000), statuses[i % 3])
                         for i in range(1, invoices + 1)))
        con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        con.execute("INSERT INTO alembic_version VALUES (?)", (BASE,))
        con.commit()
    finally:
        con.close()
    return path


def reset() -> dict:
    """`workbook reset 11`: a fresh legacy file for the learner."""
    path = build(learner_file())
    return {"database": str(path), "template": None, "revision": BASE}


def config(track_dir: Path, path: Path | None = None, stdout=None):
    """Alembic's Config for the track's SQLite environment, on the file `path`."""
    from alembic.config import Config

    env = environment(track_dir)
    cfg = Config(str(env / "alembic.ini"), stdout=stdout if stdout is not None else io.StringIO())
    cfg.set_main_option("script_location", str(env))
    cfg.set_main_option("version_locations", str(env / "versions"))
    if path is not None:
        cfg.set_main_option("sqlalchemy.url", url(path))
    cfg.attributes["configure_logger"] = False
    return cfg


def run(verb: str, target: str, track_dir: Path, path: Path) -> str:
    """`alembic upgrade|downgrade TARGET` on the file; what Alembic printed."""
    from alembic import command

    out = io.StringIO()
    getattr(command, verb)(config(track_dir, path, out), target)
    return out.getvalue()


def connect(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with foreign keys enforced, as an application should open it."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys = ON")
    return con


def fingerprint(con: sqlite3.Connection, table: str, columns: list[str]) -> tuple[int, str]:
    """(row count, digest) of the given columns, values compared as text, in id order."""
    cols = ", ".join(f"CAST({c} AS TEXT)" for c in columns)
    digest = hashlib.sha256()
    n = 0
    for row in con.execute(f"SELECT {cols} FROM {table} ORDER BY id"):
        digest.update(repr(row).encode())
        n += 1
    return n, digest.hexdigest()


def table_sql(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)", TABLES))


def trial(change, customers: int = CUSTOMERS, invoices: int = INVOICES, naming_convention=None) -> dict:
    """change(op) on a scratch copy of the legacy file, for the notebook: the statements SQLite
    ran, the error if any, Alembic's warnings, the tables' SQL after, the seconds it took."""
    import tempfile
    import time
    import warnings

    import sqlalchemy as sa
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with tempfile.TemporaryDirectory(prefix="wb-ex11-trial-") as tmp:
        path = build(Path(tmp) / "trial.sqlite", customers, invoices)
        eng = sa.create_engine(url(path))
        ran: list[str] = []
        sa.event.listen(eng, "before_cursor_execute", lambda *a: ran.append(" ".join(a[2].split())))
        out = {"statements": ran, "error": None, "warnings": [], "bytes": path.stat().st_size}
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            try:
                with eng.begin() as conn:
                    ran.clear()
                    ctx = MigrationContext.configure(conn, opts={"target_metadata": sa.MetaData(
                        naming_convention=naming_convention or {})})
                    change(Operations(ctx))
            except Exception as exc:  # what SQLite or Alembic said is the point of the trial
                out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        out["seconds"] = time.perf_counter() - start
        out["warnings"] = [str(w.message) for w in said]
        eng.dispose()
        with sqlite3.connect(path) as con:
            out["tables"] = table_sql(con)
            out["rows"] = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        return out
