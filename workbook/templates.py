"""Template databases: the seeded baseline and each exercise's start, cloned in a fraction of a second.

A template for revision R is the baseline data with the reference solutions applied up to R.
Its name carries a fingerprint of everything that shaped it (seed code, scale, baseline and
solution files), so editing any of them builds a new one instead of reusing a stale one, and
learners on one server whose checkouts are identical share one set of templates. A template
is built under another name, made unconnectable and marked as a template, then renamed, all
under one server-wide lock: CREATE DATABASE ... TEMPLATE never finds anyone connected to it,
and any role with CREATEDB may clone it.

In a classroom (workbook.classroom) a shared template database belongs to the class's
templates role, which no learner is a member of, so no learner may connect to it, alter or
drop it; the tables inside belong to the learners' group, so each learner may alter them in
its own copies. A learner never builds a shared template: when the class's is missing (another
WORKBOOK_SCALE, say) it builds one of its own, under a name of its own.

Every database made here is marked (workbook.marks); nothing unmarked is ever dropped.
The server's side of it runs on db.admin()'s psycopg connection, so a reset never loads
SQLAlchemy or Alembic; only a template's build (migrating and seeding) does.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
from typing import Iterator

import psycopg
from psycopg import Connection

from workbook import db, manifest, marks
from workbook.config import settings
from workbook.errors import WorkbookError
from workbook.manifest import ROOT
from workbook.marks import q

_counter = itertools.count()
BUILD_LOCK = "alembic-workbook templates"


def learner() -> str:
    return db.ensure_ready().learner_database


def prefix() -> str:
    """The start of every name this learner's databases get (templates excepted: they are shared)."""
    return marks.learner_key(learner())


def fingerprint(revision: str, scale: float | None = None) -> str:
    h = hashlib.sha256()
    h.update(repr(settings().scale if scale is None else scale).encode())
    h.update((ROOT / "workbook" / "seed.py").read_bytes())
    h.update((ROOT / "migrations" / "versions" / "0000_baseline.py").read_bytes())
    for ex in manifest.revision_chain(revision):
        h.update((ROOT / "solutions" / ex.file).read_bytes())
    return h.hexdigest()[:10]


def template_name(revision: str, scale: float | None = None) -> str:
    """The shared template's name. A classroom's are kept apart from templates other roles own."""
    role = owner_role()
    suffix = f"_{hashlib.sha256(role.encode()).hexdigest()[:6]}" if role else ""
    return f"wbtpl_{revision[:24]}_{fingerprint(revision, scale)}{suffix}"


def _own_name(revision: str, scale: float) -> str:
    """A learner's own template (_private): nobody else looks for this name."""
    mine = hashlib.sha256(prefix().encode()).hexdigest()[:6]
    return f"wbtpl_{revision[:24]}_{fingerprint(revision, scale)}_{mine}"


_owners: dict[str, tuple[str | None, str | None]] = {}


def class_roles() -> tuple[str | None, str | None]:
    """(the role a classroom's template databases belong to, the role the tables in them belong
    to), named in the mark of this learner's database (or of the class's room database, for the
    instructor); (None, None) outside a classroom."""
    s = settings()
    if s.mode != "url":
        return None, None
    if s.database_url not in _owners:
        with db.admin() as conn:
            m = marks.of(conn, learner())[1] or {}
        owner = m.get("template_owner")
        _owners[s.database_url] = (owner, m.get("table_owner") or owner)
    return _owners[s.database_url]


def owner_role() -> str | None:
    return class_roles()[0]


def drop(conn: Connection, name: str) -> None:
    """Drop a database the caller has made sure is the workbook's (ends its sessions)."""
    conn.execute(f"DROP DATABASE IF EXISTS {q(name)} WITH (FORCE)")


def clone(conn: Connection, template: str, name: str) -> None:
    # FILE_COPY copies files instead of logging every block: much faster for a large template.
    strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
    try:
        conn.execute(f"CREATE DATABASE {q(name)} TEMPLATE {q(template)}{strategy}")
    except psycopg.errors.ObjectInUse:
        who = conn.execute(
            "SELECT pid, coalesce(nullif(application_name, ''), 'unnamed client') FROM pg_stat_activity "
            "WHERE datname = %s", (template,)).fetchall()
        names = ", ".join(f"pid {pid} ({app})" for pid, app in who) or "a session that has just left"
        raise WorkbookError(
            f"Could not copy the template {template}: {names} is connected to it, and PostgreSQL "
            "only copies a database nobody is using. Close that session and run reset again."
        ) from None


def ensure_template(revision: str, scale: float | None = None) -> str:
    """The template for `revision` at `scale` (default: WORKBOOK_SCALE, the learning scale),
    built (once per server, under a lock) if it does not exist yet. Each scale has its own chain."""
    scale = settings().scale if scale is None else scale
    with db.admin() as conn:
        name = _found(conn, revision, scale)
        if name:
            return name
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (BUILD_LOCK,))
        try:
            return _ensure_locked(conn, revision, scale)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (BUILD_LOCK,))


def built(revision: str, scale: float | None = None) -> str | None:
    """The template for `revision` at `scale` if it exists already, else None: nothing is built."""
    with db.admin() as conn:
        return _found(conn, revision, settings().scale if scale is None else scale)


def _found(conn: Connection, revision: str, scale: float) -> str | None:
    """The usable template for `revision`: the shared one or, for a learner who needs its own
    (_private), that one."""
    shared = template_name(revision, scale)
    if not _foreign(conn, shared) and _usable(conn, shared, owner_role()):
        return shared
    if _private(conn, revision, scale) and _usable(conn, _own_name(revision, scale), conn.info.user):
        return _own_name(revision, scale)
    return None


def _private(conn: Connection, revision: str, scale: float) -> bool:
    """True when this session builds templates of its own: a classroom learner, or a role that
    may not use the shared one (_foreign)."""
    return _learner_in_class(conn) or _foreign(conn, template_name(revision, scale))


def _learner_in_class(conn: Connection) -> bool:
    """In a classroom, a session that cannot act as the templates' owner: a learner."""
    owner = owner_role()
    return owner is not None and not conn.execute("SELECT pg_has_role(%s, 'MEMBER')", (owner,)).fetchone()[0]


def _foreign(conn: Connection, name: str) -> bool:
    """Outside a classroom: the shared template `name` exists and belongs to a role this session
    is no member of. A copy's tables would be that role's, which this one may not alter
    ("permission denied for table lead"): two learners of different roles on one server."""
    if owner_role() is not None:
        return False
    row = conn.execute("SELECT pg_has_role(datdba, 'MEMBER') FROM pg_database WHERE datname = %s",
                       (name,)).fetchone()
    return row is not None and not row[0]


def _usable(conn: Connection, name: str, owner: str | None = None) -> bool:
    """True when the template exists (owned by `owner`, if given: a learner may have made a
    database under a shared name); one left connectable (by an interrupted build) is closed."""
    row = conn.execute("SELECT datallowconn, pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                       (name,)).fetchone()
    if row is None or (owner is not None and row[1] != owner):
        return False
    if row[0]:
        conn.execute(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS false")
    return True


def _ensure_locked(conn: Connection, revision: str, scale: float) -> str:
    name = _found(conn, revision, scale)  # another process may have built it while we waited
    if name:
        return name
    if _private(conn, revision, scale):
        name = _own_name(revision, scale)
        _build(conn, revision, name, None, scale)
    else:
        name = template_name(revision, scale)
        db_owner, table_owner = class_roles()
        _build(conn, revision, name, (db_owner, table_owner) if db_owner else None, scale)
    return name


def _build(conn: Connection, revision: str, name: str, roles: tuple[str, str] | None, scale: float) -> None:
    """Build `name`; a classroom's shared template as roles = (database owner, table owner)."""
    building = f"{name}_building"
    # Built on the template of the revision before it in the chain: its down_revision, except
    # for the second of two given files that follow one revision (exercise 8), built on the first.
    chain = manifest.revision_chain(revision)
    parent = None if revision == manifest.baseline() else _ensure_locked(
        conn, chain[-2].revision if len(chain) > 1 else manifest.baseline(), scale)
    if roles:
        conn.execute(f"SET ROLE {q(roles[0])}")
    try:
        _drop_if_ours(conn, building, "template")  # left by a build that was killed
        if parent is None:
            conn.execute(f"CREATE DATABASE {q(building)} TEMPLATE template0")
        else:
            clone(conn, parent, building)
        marks.mark(conn, building, "template", revision=revision, fingerprint=fingerprint(revision, scale),
                   scale=scale, by=prefix())
        marks.private(conn, building)  # nobody else connects while it is built
        if roles:  # the migrations run as the table owner, and exercise 03's creates a schema
            conn.execute(f"GRANT CREATE ON DATABASE {q(building)} TO {q(roles[1])}")
        _apply(building, revision, seeded=parent is None, roles=roles, scale=scale)
        # Complete before it is published: nobody can connect, any CREATEDB role may clone it.
        conn.execute(f"ALTER DATABASE {q(building)} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true")
        conn.execute(f"ALTER DATABASE {q(building)} RENAME TO {q(name)}")
        _drop_stale(conn, revision, name, scale)
    except Exception:
        with contextlib.suppress(psycopg.Error):  # a failed build leaves no half-built copy
            _drop_if_ours(conn, building, "template")
        raise
    finally:
        conn.execute("RESET ROLE")


def _drop_stale(conn: Connection, revision: str, keep: str, scale: float) -> None:
    """Older builds of this revision at this scale made by this learner (another learner's may
    still be in use; another scale's chain is another chain, kept). A mark without a scale is
    from before there were several: stale too."""
    for other, m in marks.databases(conn).items():
        if (other != keep and m and m.get("kind") == "template" and m.get("revision") == revision
                and m.get("scale", scale) == scale and m.get("by") == prefix()):
            conn.execute(f"ALTER DATABASE {q(other)} IS_TEMPLATE false")
            drop(conn, other)


def _drop_if_ours(conn: Connection, name: str, kind: str) -> None:
    exists, m = marks.of(conn, name)
    if exists and m and m.get("kind") == kind:
        conn.execute(f"ALTER DATABASE {q(name)} IS_TEMPLATE false")
        drop(conn, name)


def _apply(database: str, revision: str, seeded: bool, roles: tuple[str, str] | None, scale: float) -> None:
    from workbook import migrate, seed

    # A classroom's tables belong to the learners' group. PostgreSQL 15 gives the database's
    # owner (the templates role) the public schema, so the group is let create there first.
    set_role = None
    if roles:
        set_role = f"SET ROLE {q(roles[1])}"
        first = f"SET ROLE {q(roles[0])}; GRANT CREATE ON SCHEMA public TO {q(roles[1])}; {set_role}"
    eng = db.engine(database)
    try:
        with eng.connect() as c:
            if set_role:
                c.exec_driver_sql(first)
            migrate.run(c, "upgrade", revision, ROOT / "solutions")
            if seeded:
                seed.seed(c, scale)
                c.commit()
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            if set_role:
                c.exec_driver_sql(set_role)
            c.exec_driver_sql("VACUUM ANALYZE" if seeded else "ANALYZE")
    finally:
        eng.dispose()


def reset(exercise: manifest.Exercise) -> dict:
    """Replace the learner's database with a fresh copy of the exercise's start.

    Only a database the workbook made is replaced; one that holds someone's data is refused.
    An exercise with an environment of its own (11's SQLite) gets its own fresh file instead.
    """
    if exercise.environment:
        from workbook import sqlite_track

        return sqlite_track.reset()
    backend = db.ensure_ready()
    name = backend.learner_database
    with db.admin() as conn:  # one connection, unless the template must be built first
        template = _found(conn, exercise.start, settings().scale) or ensure_template(exercise.start)
        old = guard(conn, backend, name)
        drop(conn, name)
        clone(conn, template, name)
        # Facts a classroom keeps in the mark (its room, the template owner) outlive the reset.
        kept = {k: v for k, v in (old or {}).items() if k not in ("kind", "key")}
        marks.mark(conn, name, "learner", **kept, key=prefix())
        marks.private(conn, name)
        sweep(conn)
        if getattr(backend, "owns_server", False):
            _drop_legacy(conn)
    return {"database": name, "template": template, "revision": exercise.start}


def guard(conn: Connection, backend, name: str) -> dict | None:
    """Refuse to replace a database the workbook did not create; its mark when it may be replaced."""
    exists, m = marks.of(conn, name)
    if not exists or (m and m.get("kind") == "learner"):
        return m
    if m is None and getattr(backend, "owns_server", False):
        return None  # the embedded or Compose server is the workbook's own, made for this database
    what = "another of the workbook's databases" if m else _contents(name)
    raise WorkbookError(
        f"{db.display(backend.server_url(name))} names the database {name!r}, which the workbook "
        f"did not create ({what}); the workbook never replaces such a database. Name one that "
        f"does not exist yet in DATABASE_URL (for example .../{name}_workbook): the workbook "
        "creates it and resets only that one.")


def _contents(name: str) -> str:
    """A few words on what an unmarked database holds, to show the learner what was protected."""
    try:
        with psycopg.connect(db.ensure_ready().conninfo(name)) as c:
            tables = [t for (t,) in c.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")]
    except psycopg.Error:
        return "it could not be inspected"
    if not tables:
        return "it is empty, but unmarked"
    listed = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
    return f"it holds {len(tables)} table{'s' if len(tables) != 1 else ''}: {listed}"


@contextlib.contextmanager
def scratch(revision: str, scale: float | None = None) -> Iterator[str]:
    """A throw-away copy of the template for `revision`, dropped afterwards whatever happens."""
    with scratches(revision, 1, scale) as (name,):
        yield name


@contextlib.contextmanager
def scratches(revision: str, n: int, scale: float | None = None) -> Iterator[list[str]]:
    """n throw-away copies of the template for `revision` (at `scale`: ensure_template), all
    dropped afterwards.

    Made side by side, one connection each: the server spends a copy mostly copying files, so
    two take little longer than one.
    """
    template = ensure_template(revision, scale)
    with contextlib.ExitStack() as stack:
        names: list[str] = []
        errors: list[BaseException] = []

        def make() -> None:
            try:
                names.append(stack.enter_context(created(lambda conn, name: clone(conn, template, name))))
            except BaseException as exc:  # raised below, in the caller's thread
                errors.append(exc)

        others = [threading.Thread(target=make) for _ in range(n - 1)]
        for t in others:
            t.start()
        make()
        _join_through_ctrl_c(others)
        if errors:
            raise errors[0]
        yield names


def _join_through_ctrl_c(threads: list[threading.Thread]) -> None:
    """Wait for every thread, a Ctrl-C (KeyboardInterrupt) included, and raise it after: a copy
    still being made when the stack unwound would be made after the stack that drops it closed."""
    stopped = None
    for t in threads:
        while t.is_alive():
            try:
                t.join()
            except KeyboardInterrupt as exc:
                stopped = exc
    if stopped:
        raise stopped


@contextlib.contextmanager
def empty() -> Iterator[str]:
    """A throw-away database with nothing in it (exercise 9 builds schemas from scratch), dropped afterwards."""
    with created(lambda conn, name: conn.execute(f"CREATE DATABASE {q(name)}")) as name:
        yield name


@contextlib.contextmanager
def created(make) -> Iterator[str]:
    """A scratch database made by `make(conn, name)`, marked with its owner, dropped afterwards."""
    name = marks.scratch_name(learner(), next(_counter))
    with db.admin() as conn:
        _drop_if_ours(conn, name, "scratch")
        try:
            make(conn, name)
            marks.mark(conn, name, "scratch", learner=prefix(), **marks.owner())
            marks.private(conn, name)
        except BaseException:  # an interrupt between the copy and its mark: drop it now
            with contextlib.suppress(Exception):
                drop(conn, name)  # the name carries this process's pid: nobody else's
            raise
    try:
        yield name
    finally:
        with db.admin() as conn:
            drop(conn, name)
            sweep(conn)


def _drop_legacy(conn: Connection) -> None:
    """Templates and copies an earlier version of the workbook left, unmarked, on its own server."""
    for name, m in marks.databases(conn).items():
        if m is None and ("__tpl_" in name or "__scratch_" in name):
            conn.execute(f"ALTER DATABASE {q(name)} IS_TEMPLATE false")
            drop(conn, name)


def sweep(conn: Connection) -> list[str]:
    """Drop this learner's scratch copies whose owner is gone (a killed check or test run), and
    those a process killed between copy and mark left unmarked on this host (marks.scratch_maker)."""
    dropped = []
    mine, who = prefix(), learner()
    for name, m in marks.databases(conn).items():
        if (m and m.get("kind") == "scratch" and m.get("learner") == mine and marks.abandoned(m)) \
                or (m is None and marks.unmarked_scratch_abandoned(name, who)):
            drop(conn, name)
            dropped.append(name)
    return dropped


def mine(conn: Connection) -> list[str]:
    """What this learner's workbook made on the server: its database, scratch copies (an unmarked
    one too, by its name: marks.scratch_maker), templates."""
    key, who = prefix(), learner()
    return sorted(name for name, m in marks.databases(conn).items()
                  if (m and key in (m.get("key"), m.get("learner"), m.get("by")))
                  or (m is None and marks.scratch_maker(name, who)))


def remove(dry_run: bool = False) -> list[str]:
    """Drop mine(), and only that (`workbook db remove`). Another learner rebuilds a shared
    template it still needs."""
    with db.admin() as conn:
        names = mine(conn)
        if not dry_run:
            for name in names:
                conn.execute(f"ALTER DATABASE {q(name)} IS_TEMPLATE false")
                drop(conn, name)
    return names
