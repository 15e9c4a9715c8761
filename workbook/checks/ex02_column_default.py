"""Exercise 2: lead.priority NOT NULL DEFAULT 'medium', added without rewriting the table."""
from __future__ import annotations

import re

import sqlalchemy as sa

from workbook import db, schema
from workbook.checks import common, lint, statement_log
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, is_stub

SQUAWK_ACCEPTS = {"prefer-text-field": "the exercise asks for varchar(20)"}
# Proof scale: any. The column's shape and default, every row's value and whether any row or the
# table's file was written again (xmin, relfilenode) are per-row and catalog facts; 0.1 (10,000
# leads) shares its copies with the other checks' chain.
PROOF_SCALE = 0.1


def attempted(path) -> bool:
    return not is_stub(path)


def explain(text: str) -> str | None:
    """Recognise the commonest mistake of this exercise from PostgreSQL's words."""
    if "contains null values" in text or "not-null constraint" in text:
        return ("That is the default= versus server_default= mistake: default='medium' is applied "
                "by SQLAlchemy in Python when it inserts, so PostgreSQL never sees it; the existing "
                "rows get NULL and NOT NULL refuses them. Use server_default='medium'.")
    return None


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    eng = r.engine()
    with eng.connect() as conn, eng.connect() as writer, eng.connect() as watcher:
        ev.before = schema.snapshot(conn)
        ev.leads = conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one()
        ev.filenode_before = filenode(conn)
        # Each row version carries the transaction that wrote it (xmin): a backfill UPDATE
        # changes them all even when the table keeps its file.
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS wb_probe"))
        conn.execute(sa.text("CREATE UNLOGGED TABLE wb_probe.lead_xmin AS SELECT id, xmin::text AS x FROM lead"))
        # Statement by statement, for the lock_timeout each schema change ran with (common.lock_timeout).
        ev.upgrade, ev.upgrade_statements = statement_log.replay(
            r, conn, writer, watcher, "upgrade", r.exercise.revision, ["lead"], ["lead"])
        if ev.upgrade.ok:
            ev.filenode_after = filenode(conn)
            ev.rows_rewritten = conn.execute(sa.text(
                "SELECT count(*) FROM lead l JOIN wb_probe.lead_xmin b USING (id) WHERE l.xmin::text <> b.x")).scalar_one()
            ev.column = column_facts(conn)
            if ev.column:
                ev.priorities = dict(conn.execute(sa.text(
                    "SELECT coalesce(priority, 'NULL'), count(*) FROM lead GROUP BY 1")).all())
                ev.inserted = insert_without_priority(conn)
            conn.commit()
            r.round_trip(conn)
    eng.dispose()
    ev.sql = lint.revision_sql(r)
    return ev


def filenode(conn) -> int:
    return conn.execute(sa.text("SELECT relfilenode FROM pg_class WHERE oid = 'lead'::regclass")).scalar_one()


def column_facts(conn) -> dict | None:
    row = conn.execute(sa.text("""
        SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
               a.atthasmissing
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = 'lead'::regclass AND a.attname = 'priority' AND NOT a.attisdropped""")).first()
    if row is None:
        return None
    return {"type": row[0], "not_null": row[1], "default": row[2], "has_missing": row[3]}


def insert_without_priority(conn) -> str:
    """What a new lead gets when the INSERT does not mention priority (rolled back afterwards)."""
    try:
        with conn.begin_nested():
            value = conn.execute(sa.text(
                "INSERT INTO lead (name, email) VALUES ('probe', 'probe@example.com') RETURNING priority")).scalar_one()
            conn.execute(sa.text("SELECT 1"))
            raise _Rollback(value)
    except _Rollback as done:
        return done.args[0]
    except sa.exc.DBAPIError as exc:
        return f"error: {db.first_line(exc)}"


class _Rollback(Exception):
    pass


@criterion("column_shape", "lead.priority exists: varchar(20), NOT NULL, server default 'medium'.")
def column_shape(ev: Evidence) -> str:
    """Assert that the column is declared in the database as the application expects it."""
    ev.require("upgrade")
    col = ev.column
    if col is None:
        raise Incorrect("After the upgrade lead has no column priority; expected op.add_column('lead', "
                        "sa.Column('priority', ...)).")
    problems = []
    if col["type"] != "character varying(20)":
        problems.append(f"its type is {col['type']}, expected varchar(20) (sa.String(20))")
    if not col["not_null"]:
        problems.append("it allows NULL, expected nullable=False")
    if col["default"] is None:
        problems.append("it has no server default, expected server_default='medium' "
                        "(default= lives only in Python)")
    elif not re.fullmatch(r"'medium'(::[a-z ]+)?", col["default"]):
        problems.append(f"its server default is {col['default']}, expected 'medium'")
    if problems:
        raise Incorrect("lead.priority exists, but " + "; ".join(problems) + ".")
    return "lead.priority is varchar(20) NOT NULL DEFAULT 'medium'."


@criterion("existing_rows", "Every pre-existing lead reads 'medium' after the upgrade.")
def existing_rows(ev: Evidence) -> str:
    """Assert that no lead was left without a priority, or with another one."""
    ev.require("upgrade")
    if ev.column is None:
        raise Incorrect("Not checked: lead.priority does not exist.")
    values = ev.priorities or {}
    medium = values.get("medium", 0)
    if medium != ev.leads:
        others = ", ".join(f"{n:,} read {v}" for v, n in sorted(values.items()) if v != "medium")
        raise Incorrect(f"Of {ev.leads:,} existing leads, {medium:,} read 'medium' and {others}; "
                        "expected all of them to read 'medium'. A server_default fills them.")
    return f"All {ev.leads:,} existing leads read 'medium'."


@criterion("insert_default", "An INSERT that omits priority gets 'medium'.")
def insert_default(ev: Evidence) -> str:
    """Assert that writers that do not know the column yet (old code, raw SQL) keep working."""
    ev.require("upgrade")
    if ev.column is None:
        raise Incorrect("Not checked: lead.priority does not exist.")
    if ev.inserted != "medium":
        raise Incorrect(f"INSERT INTO lead (name, email) ... gave priority = {ev.inserted}; expected "
                        "'medium'. Only a server_default applies to INSERTs that omit the column.")
    return "A new lead inserted without priority reads 'medium'."


@criterion("no_rewrite", "The upgrade did not rewrite the table (same relfilenode, no row written again).")
def no_rewrite(ev: Evidence) -> str:
    """Assert that adding the column was a catalog change, not a copy of every row under lock."""
    ev.require("upgrade")
    if ev.filenode_after != ev.filenode_before:
        raise Incorrect(
            f"The table was rewritten: lead's relfilenode changed from {ev.filenode_before} to "
            f"{ev.filenode_after}, so every row was copied under an ACCESS EXCLUSIVE lock. The usual "
            "causes are a volatile default (now(), random(), gen_random_uuid()) or a type change; "
            "a constant server_default is stored in the catalog instead.")
    if ev.rows_rewritten:
        raise Incorrect(
            f"The table kept its file, but {ev.rows_rewritten:,} of {ev.leads:,} existing leads were "
            "written again (a new row version each, as a backfill UPDATE does): that holds their row "
            "locks and leaves as many dead rows. With a constant server_default, PostgreSQL 11+ "
            "fills existing rows from the catalog, so no backfill is needed.")
    return f"lead kept relfilenode {ev.filenode_before} and no existing row was written again: no rewrite."


downgrade_restores = common.schema_restored(
    "Downgrade drops the column and leaves the schema exactly as before.",
    "drop the column in downgrade()")

CRITERIA = [column_shape, existing_rows, insert_default, no_rewrite, downgrade_restores, common.upgrade_again,
            common.lock_timeout, common.squawk(SQUAWK_ACCEPTS)]
