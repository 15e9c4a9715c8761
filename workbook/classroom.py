"""A workshop on one shared PostgreSQL: a role and a database per learner, and a room where checks land.

The instructor's DATABASE_URL (WORKBOOK_DB=url, a role with CREATEROLE and CREATEDB, usually a
superuser) names the class: its database becomes the room, and every name the class gets starts
with it. `create` makes
- a role ROOM_templates (NOLOGIN, CREATEDB) that owns the class's template databases, and that
  no learner is a member of: a learner may clone a template, but not connect to it, alter it or
  drop it;
- a group role ROOM_learners (NOLOGIN) that every learner is a member of and that owns the tables
  in those templates, so a learner may alter the tables in its own copies (a copy keeps the
  owners its template's tables had);
- the room database: one results table, row-level security so each learner inserts and reads
  only its own rows; only the group may connect, and the instructor reads everything;
- per learner a LOGIN role with a generated password and CREATEDB (for scratch copies), and a
  database it owns, private to it, marked as a learner database of this class.
A learner's workbook finds the room in its database's mark and records each verdict there,
best-effort. `remove` drops what `create` made and nothing else.

`create --room-only` keeps only the room on the shared server: each learner works in the
embedded PostgreSQL of its own Jupyter server (a process, a container, a pod), so the class's
checks run on the hub's machines, not on this server. A room-only learner is a LOGIN role in
the group and nothing else (no CREATEDB, no database, no template is built), marked in its
role's comment; its CSV row holds WORKBOOK_ROOM_URL, the room with that role's password.
"""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

import psycopg
from psycopg import Connection

from workbook import db, manifest, marks, templates
from workbook.config import settings
from workbook.errors import WorkbookError
from workbook.marks import q
from workbook.status import ERROR, FAILED, NOT_ATTEMPTED, PASSED

# What a learner may write is bounded here, by the server: its own rows only (row-level
# security), four columns, the statuses the workbook knows, an exercise's number (any two
# digits: a class outlives an update of the workbook that adds exercises, and the page shows
# the manifest's only), an id-shaped criterion and a bounded message. The page escapes all of
# it anyway.
ROOM_SQL = """
CREATE TABLE results (
    id bigserial PRIMARY KEY,
    learner name NOT NULL DEFAULT current_user,
    exercise text NOT NULL CHECK (exercise ~ '^[0-9]{{2}}$'),
    status text NOT NULL CHECK (status IN ({statuses})),
    criterion text CHECK (criterion ~ '{criterion_id}'),
    message text CHECK (length(message) <= {message_max}),
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX results_learner_at ON results (learner, at);
REVOKE CREATE ON SCHEMA public FROM PUBLIC;  -- PostgreSQL 13 and 14 let every role create tables
ALTER TABLE results ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON results USING (learner = current_user) WITH CHECK (learner = current_user);
GRANT SELECT ON results TO {group};
GRANT INSERT (exercise, status, criterion, message) ON results TO {group};
GRANT USAGE ON SEQUENCE results_id_seq TO {group};
"""
MESSAGE_MAX = 500
CRITERION_ID = "^[a-z][a-z0-9_]{0,62}$"  # every check's criterion ids have this shape (a test says so)
# Sessions one learner's role may hold at once. Measured (pg_stat_activity) during checks 01, 05
# and 07: 6 at the peak (the admission turn and up to five on the replay's copy); the rest is for
# the notebook's %sql, the room's insert and a terminal. One more is refused (SQLSTATE 53300),
# which the check reports as the server's trouble, not theirs.
CONNECTIONS = 10


def room_sql(grp: str) -> str:
    def listed(values) -> str:
        return ", ".join(marks.literal(v) for v in values)
    return ROOM_SQL.format(group=q(grp), message_max=MESSAGE_MAX, criterion_id=CRITERION_ID,
                           statuses=listed((PASSED, FAILED, NOT_ATTEMPTED, ERROR)))


def room() -> str:
    """The class's name: the database the instructor's DATABASE_URL names."""
    if settings().mode != "url":
        raise WorkbookError("`workbook classroom` runs against a shared server: set WORKBOOK_DB=url and "
                            "DATABASE_URL=postgresql://ADMIN:PASSWORD@HOST:5432/CLASSNAME (a role that "
                            "may create roles and databases; CLASSNAME becomes the room database).")
    name = db.ensure_ready().learner_database
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise WorkbookError(f"The class name {name!r} (the database in DATABASE_URL) must be lower-case "
                            "letters, digits and _, starting with a letter, at most 40 characters.")
    return name


def group(name: str) -> str:
    return f"{name}_learners"


def templates_role(name: str) -> str:
    return f"{name}_templates"


CSV_FIELDS = ["name", "role", "database", "DATABASE_URL"]
ROOM_ONLY_FIELDS = ["name", "role", "WORKBOOK_ROOM_URL"]
RESERVED = ("learners", "templates")  # the class's own roles are CLASS_learners, CLASS_templates


def seats(count: int | None, names_file: str | None) -> list[tuple[str, str]]:
    """(display name, seat) pairs: seat is the suffix of the learner's role and database."""
    if names_file:
        names = [line.strip() for line in Path(names_file).read_text().splitlines() if line.strip()]
        if not names:
            raise WorkbookError(f"{names_file} holds no names (one learner's name a line); nothing was made.")
        slugs = [re.sub(r"[^a-z0-9]+", "_", n.lower()).strip("_")[:20] or "learner" for n in names]
        if len(set(slugs)) != len(slugs):
            raise WorkbookError(f"Two names in {names_file} give the same role name; make them differ.")
        for display, slug in zip(names, slugs):
            if slug in RESERVED:
                raise WorkbookError(f"The name {display!r} in {names_file} would give the role CLASS_{slug}, "
                                    "which is the class's own; write it another way (a surname, say). "
                                    "Nothing was made.")
        return list(zip(names, slugs))
    if not count or count < 1:
        raise WorkbookError("Say how many learners: --learners 30, or --names FILE (one name a line).")
    return [(f"learner {i:02d}", f"{i:02d}") for i in range(1, count + 1)]


def login_role(conn: Connection, role: str, password: str, grp: str, createdb: bool = True) -> None:
    """The statement carries a SCRAM verifier, never the password: a server that logs its DDL
    (log_statement = ddl) keeps no learner's password."""
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    rights = "CREATEDB" if createdb else "NOCREATEDB"
    conn.execute(f"CREATE ROLE {q(role)} LOGIN {rights} CONNECTION LIMIT {CONNECTIONS} "
                 f"PASSWORD {marks.literal(verifier)} IN ROLE {q(grp)}")


def create(count: int | None, names_file: str | None, csv_path: str | None,
           room_only: bool = False) -> tuple[list[dict], Path]:
    """Make the class; each learner's row goes into the CSV (mode 0600) as soon as its role exists,
    so a create cut short keeps every password it set. Returns the rows and the CSV's path."""
    name, members = room(), seats(count, names_file)
    grp = group(name)
    owners = {} if room_only else {"template_owner": templates_role(name), "table_owner": grp}
    out = Path(csv_path or f"{name}-learners.csv").absolute()
    if out.exists():
        raise WorkbookError(f"{out} already exists; it may hold another class's passwords. Move it, "
                            "or name another file with --csv.")
    # remove deletes the CSV when create chose where it went (it has no other use afterwards).
    wrote = {} if csv_path else {"csv": str(out)}
    with db.admin() as conn:
        if marks.of(conn, name)[0]:
            raise WorkbookError(f"The database {name} already exists, so this class was created before "
                                "(or the name is taken). `workbook classroom remove --yes` removes a class.")
        conn.execute(f"CREATE ROLE {q(grp)} NOLOGIN")
        if not room_only:
            conn.execute(f"CREATE ROLE {q(templates_role(name))} NOLOGIN CREATEDB")
        conn.execute(f"CREATE DATABASE {q(name)}")
        marks.mark(conn, name, "room", classroom=name, **owners, **wrote,
                   **({"room_only": True} if room_only else {}))
        marks.private(conn, name)
        conn.execute(f"GRANT CONNECT ON DATABASE {q(name)} TO {q(grp)}")
    eng = db.engine(name)
    with eng.begin() as c:
        c.exec_driver_sql(room_sql(grp))
    eng.dispose()
    templates._owners.clear()  # the room's mark now names the template owner
    from workbook.checks.base import replay_scale  # the check modules: only to create a class

    first = None
    for ex in [] if room_only else manifest.exercises():  # built once, for everyone
        if ex.environment:
            continue  # its own database (11's SQLite file), built by its reset and its check
        tpl = templates.ensure_template(ex.start)
        templates.ensure_template(ex.start, replay_scale(ex))  # where its check replays
        first = first or tpl
    base_url = db.ensure_ready().server_url(name)
    learners: list[dict] = []
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # passwords: the instructor's eyes only
    with os.fdopen(fd, "w", newline="") as f, db.admin() as conn:
        fields = ROOM_ONLY_FIELDS if room_only else CSV_FIELDS
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
        display = ""
        try:
            for display, seat in members:
                role = f"{name}_{seat}"
                password = secrets.token_urlsafe(18)  # letters, digits, - and _: safe in URLs
                login_role(conn, role, password, grp, createdb=not room_only)
                if room_only:
                    url = base_url.set(drivername="postgresql", username=role, password=password, database=name)
                    learners.append({"name": display, "role": role,
                                     "WORKBOOK_ROOM_URL": url.render_as_string(hide_password=False)})
                    writer.writerow(learners[-1])
                    f.flush()
                    mark_role(conn, role, classroom=name, name=display)
                    continue
                url = base_url.set(drivername="postgresql", username=role, password=password, database=role)
                learners.append({"name": display, "role": role, "database": role,
                                 "DATABASE_URL": url.render_as_string(hide_password=False)})
                writer.writerow(learners[-1])
                f.flush()
                conn.execute(f"CREATE DATABASE {q(role)} OWNER {q(role)} TEMPLATE {q(first)}{strategy}")
                marks.mark(conn, role, "learner", key=marks.learner_key(role), classroom=name, name=display,
                           **owners)
                marks.private(conn, role)
        except (Exception, KeyboardInterrupt) as exc:
            made = (f"{len(learners)} of {len(members)} learners' roles were made; their URLs are in {out}. "
                    "`workbook classroom remove --yes` removes the class, to create it again.")
            if isinstance(exc, KeyboardInterrupt):
                print(made, file=sys.stderr)
                raise
            raise WorkbookError(f"Stopped at the learner {display!r}: {db.first_line(exc)}. {made}") from None
    return learners, out


def mark_role(conn: Connection, role: str, **facts) -> None:
    """A room-only learner has no database to carry its mark: its role does."""
    text = marks.MARK + json.dumps({"kind": "learner", **facts}, sort_keys=True)
    conn.execute(f"COMMENT ON ROLE {q(role)} IS {marks.literal(text)}")


def roster(conn: Connection, name: str) -> list[tuple[str, str]]:
    """(role, display name) of the class's learners, those with a database and room-only ones."""
    found = {d: m.get("name") or d for d, m in marks.databases(conn).items()
             if m and m.get("kind") == "learner" and m.get("classroom") == name}
    for role, comment in conn.execute(
            "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles "
            "WHERE pg_has_role(rolname, %s, 'MEMBER') AND rolname <> %s", (group(name), group(name))):
        m = marks._parse(comment) or {}
        if m.get("kind") == "learner" and m.get("classroom") == name:
            found[role] = m.get("name") or role
    return sorted(found.items())


def _made(conn: Connection, name: str) -> tuple[list[str], list[str]]:
    """(databases, roles) this class's create made, or its learners made since: all marked."""
    roles = [r for (r,) in conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN (%(g)s, %(t)s) "
        "OR pg_has_role(rolname, %(g)s, 'MEMBER') "
        "AND rolname <> current_user AND NOT rolsuper ORDER BY rolname IN (%(g)s, %(t)s), rolname",
        {"g": group(name), "t": templates_role(name)})]
    owners = dict(conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall())
    keys = {marks.learner_key(r) for r in roles} | {marks.learner_key(name)}
    dbs = []
    for datname, m in marks.databases(conn).items():
        if not m:
            continue  # never an unmarked database, whoever owns it
        ours = (m.get("classroom") == name and m.get("kind") in ("room", "learner")) \
            or (m.get("kind") in ("scratch", "template") and owners.get(datname) in roles) \
            or (m.get("kind") == "scratch" and m.get("learner") in keys)
        if ours:
            dbs.append(datname)
    return sorted(dbs), roles


def remove(yes: bool) -> tuple[list[str], list[str], str | None]:
    """Drop what create made; and the CSV, when create chose where it went. Returns the
    databases, the roles and that CSV (None when there is none to delete)."""
    name = room()
    with db.admin() as conn:
        dbs, roles = _made(conn, name)
        m = marks.of(conn, name)[1] or {}
        written = m.get("csv") if m.get("kind") == "room" and _ours(m.get("csv"), name) else None
        if yes:
            for d in dbs:
                conn.execute(f"ALTER DATABASE {q(d)} IS_TEMPLATE false")
                templates.drop(conn, d)
            for r in roles:
                try:
                    conn.execute(f"DROP ROLE IF EXISTS {q(r)}")
                except psycopg.Error as exc:  # it owns something create did not make
                    raise WorkbookError(
                        f"Dropped the class's databases, but not the role {r}: {db.first_line(exc)}. "
                        "That is something the workbook did not make, so it is left alone: drop it "
                        f"or REASSIGN OWNED BY {r} TO another role, then run remove again.") from None
            if written:
                os.unlink(written)
    return dbs, roles, written


def _ours(path: str | None, name: str) -> bool:
    """The CSV create wrote for this class: its header, and only this class's roles."""
    try:
        with open(path or "", newline="") as f:
            rows = list(csv.reader(f))
    except OSError:
        return False
    return bool(rows) and rows[0] in (CSV_FIELDS, ROOM_ONLY_FIELDS) \
        and all(r[1].startswith(f"{name}_") for r in rows[1:])


# --- the learner's side: record a verdict in the room ---------------------------------------

_rooms: dict[str, str | None] = {}


def _my_room() -> str | None:
    """The room's libpq URL: WORKBOOK_ROOM_URL when set (room-only), else the room named in the
    mark of this learner's database on the shared server (url mode), else none."""
    s = settings()
    if s.room_url:
        return s.room_url
    if s.mode != "url":
        return None
    if s.database_url not in _rooms:
        with db.admin() as conn:
            m = marks.of(conn, db.ensure_ready().learner_database)[1] or {}
        where = m.get("classroom") if m.get("kind") == "learner" else None
        _rooms[s.database_url] = where and db.libpq_url(db.ensure_ready().server_url(where))
    return _rooms[s.database_url]


def record(report) -> None:
    """Best-effort: a check never fails because the room could not be written, and never waits
    on it for more than a few seconds (a room that is down or unreachable)."""
    try:
        url = _my_room()
        if not url:
            return
        failed = report.failed_required() if report.status == "failed" else []
        row = (report.exercise[:2], report.status, failed[0].id if failed else None,
               (failed[0].message if failed else "")[:MESSAGE_MAX])
        # A role at its CONNECTION LIMIT right after a check: the check's own sessions are still
        # closing on the server, so a slot frees within a moment (53300, "too many connections for
        # role"). Three tries, 1.5 s of waiting.
        for wait in (0.5, 1.0, None):
            try:
                with psycopg.connect(url, connect_timeout=3, options="-c statement_timeout=3000",
                                     application_name="workbook record", autocommit=True) as conn:
                    conn.execute("INSERT INTO results (exercise, status, criterion, message) "
                                 "VALUES (%s, %s, %s, %s)", row)
                return
            except psycopg.OperationalError as exc:  # refused at login: libpq gives no SQLSTATE
                if wait is None or "too many connections" not in str(exc):
                    raise
                time.sleep(wait)
    except Exception:  # noqa: BLE001  (recording is a courtesy to the instructor, never a failure)
        pass
