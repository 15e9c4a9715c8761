"""Template databases: the seeded baseline and each exercise's start, cloned in a fraction of a second.

A template for revision R is the baseline data with the reference solutions applied up to R.
Its name carries a fingerprint of everything that shaped it (seed code, scale, baseline and
solution files), so editing any of them builds a new one instead of reusing a stale one.
Templates are built under another name and renamed when complete, and they refuse connections,
so CREATE DATABASE ... TEMPLATE never finds anyone connected to them.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workbook import db, manifest, migrate, seed
from workbook.config import settings
from workbook.errors import WorkbookError
from workbook.manifest import ROOT

_counter = itertools.count()


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def prefix() -> str:
    learner = db.ensure_ready().learner_database
    return re.sub(r"[^a-z0-9_]", "_", learner.lower())[:20]


def fingerprint(revision: str) -> str:
    h = hashlib.sha256()
    h.update(repr(settings().scale).encode())
    h.update((ROOT / "workbook" / "seed.py").read_bytes())
    h.update((ROOT / "migrations" / "versions" / "0000_baseline.py").read_bytes())
    for ex in manifest.revision_chain(revision):
        h.update((ROOT / "solutions" / ex.file).read_bytes())
    return h.hexdigest()[:10]


def template_name(revision: str) -> str:
    return f"{prefix()}__tpl_{revision[:24]}_{fingerprint(revision)}"


def exists(conn: Connection, name: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None


def drop(conn: Connection, name: str) -> None:
    conn.execute(sa.text(f"DROP DATABASE IF EXISTS {q(name)} WITH (FORCE)"))


def clone(conn: Connection, template: str, name: str) -> None:
    version = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    # FILE_COPY copies files instead of logging every block: much faster for a large template.
    strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
    try:
        conn.execute(sa.text(f"CREATE DATABASE {q(name)} TEMPLATE {q(template)}{strategy}"))
    except sa.exc.OperationalError as exc:
        if "being accessed by other users" not in str(exc):
            raise
        who = conn.execute(sa.text(
            "SELECT pid, coalesce(nullif(application_name, ''), 'unnamed client') FROM pg_stat_activity "
            "WHERE datname = :t"), {"t": template}).all()
        names = ", ".join(f"pid {pid} ({app})" for pid, app in who) or "a session that has just left"
        raise WorkbookError(
            f"Could not copy the template {template}: {names} is connected to it, and PostgreSQL "
            "only copies a database nobody is using. Close that session and run reset again."
        ) from None


def ensure_template(revision: str) -> str:
    """The template for `revision`, built (once, under a lock) if it does not exist yet."""
    name = template_name(revision)
    with db.admin() as conn:
        if exists(conn, name):
            return name
        key = f"{prefix()} templates"
        conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
        try:
            if not exists(conn, name):  # another process may have built it while we waited
                _build(conn, revision, name)
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
    return name


def _build(conn: Connection, revision: str, name: str) -> None:
    building = f"{name}_building"
    drop(conn, building)
    if revision == manifest.baseline():
        conn.execute(sa.text(f"CREATE DATABASE {q(building)} TEMPLATE template0"))
        _apply(building, revision, seeded=True)
    else:
        parent = next(ex.down_revision for ex in manifest.exercises() if ex.revision == revision)
        clone(conn, ensure_template_locked(conn, parent), building)
        _apply(building, revision, seeded=False)
    # Publish atomically, then forbid connections so cloning never finds a session inside.
    conn.execute(sa.text(f"ALTER DATABASE {q(building)} RENAME TO {q(name)}"))
    conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS false"))
    stale = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p AND datname <> :n"),
                         {"p": name.rsplit("_", 1)[0] + "\\_%", "n": name}).scalars().all()
    for old in stale:
        conn.execute(sa.text(f"ALTER DATABASE {q(old)} ALLOW_CONNECTIONS true"))
        drop(conn, old)


def ensure_template_locked(conn: Connection, revision: str) -> str:
    """Like ensure_template, for use while the build lock is already held."""
    name = template_name(revision)
    if not exists(conn, name):
        _build(conn, revision, name)
    return name


def _apply(database: str, revision: str, seeded: bool) -> None:
    eng = db.engine(database)
    try:
        with eng.connect() as c:
            migrate.run(c, "upgrade", revision, ROOT / "solutions")
            if seeded:
                seed.seed(c, settings().scale)
                c.commit()
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("VACUUM ANALYZE" if seeded else "ANALYZE"))
    finally:
        eng.dispose()


def reset(exercise: manifest.Exercise) -> dict:
    """Replace the learner's database with a fresh copy of the exercise's start."""
    template = ensure_template(exercise.start)
    learner = db.ensure_ready().learner_database
    with db.admin() as conn:
        drop(conn, learner)
        clone(conn, template, learner)
        _drop_orphans(conn)
    return {"database": learner, "template": template, "revision": exercise.start}


@contextlib.contextmanager
def scratch(revision: str) -> Iterator[str]:
    """A throw-away copy of the template for `revision`, dropped afterwards whatever happens."""
    template = ensure_template(revision)
    name = f"{prefix()}__scratch_{os.getpid()}_{next(_counter)}"
    with db.admin() as conn:
        drop(conn, name)
        clone(conn, template, name)
    try:
        yield name
    finally:
        with db.admin() as conn:
            drop(conn, name)


def _drop_orphans(conn: Connection) -> None:
    """Scratch copies left by a process that was killed mid-check."""
    names = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                         {"p": f"{prefix()}\\_\\_scratch\\_%"}).scalars().all()
    for name in names:
        pid = int(name.split("_")[-2]) if name.split("_")[-2].isdigit() else 0
        if pid and not _alive(pid):
            drop(conn, name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
