"""Exercise 5: check, foreign key, unique and NOT NULL on busy tables, without long locks.

Judged per statement from the server (checks.statement_log): the lock each statement held or
asked for on lead and finding (pg_locks, with a writer's UPDATE open on each), the rows it read
(pg_stat_user_tables), and PostgreSQL's own DEBUG1 words. A statement may take a lock writers
conflict with (an ADD ... NOT VALID must, for a moment) but must not read a table while it holds
one. The thresholds are shares of a table (SCANNED), not row counts, so every verdict would hold
on a smaller check-only copy too. It runs on the exercise's usual copy for now: a smaller one
needs templates built at another scale, which templates.py does not offer yet.
"""
from __future__ import annotations

import warnings

import sqlalchemy as sa

from workbook import locks, models, schema
from workbook.checks import common, lint, statement_log
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, is_stub

TABLES, BUSY = ["lead", "finding", "asset"], ["lead", "finding"]
SCANNED = 0.10  # reading this share of a table's rows in one statement counts as reading the table
PROVED = "are sufficient to prove that it does not contain nulls"
SQUAWK_ACCEPTS = {
    "prefer-bigint-over-int": "asset.id matches finding.asset_id, an integer since the baseline",
    "prefer-robust-stmts": "each statement commits on its own on purpose, so VALIDATE runs after the ADD's lock is gone",
    "ban-drop-constraint": "the helper CHECK (company IS NOT NULL) is dropped once NOT NULL says the same",
}
LOCK_PROBE = BUSY  # held by checks.lock_probe while the upgrade runs on its copy


def attempted(path) -> bool:
    return not is_stub(path)


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ev.update(statements=[], facts=None, fk_delete_read=None, drift=[])
    eng = r.engine()
    with eng.connect() as mig, eng.connect() as writer, eng.connect() as watcher:
        ev.before = schema.snapshot(mig)
        ev.rows = dict(mig.execute(sa.text(
            "SELECT 'lead', count(*) FROM lead UNION ALL SELECT 'finding', count(*) FROM finding")).all())
        mig.commit()
        ev.upgrade, ev.statements = statement_log.replay(
            r, mig, writer, watcher, "upgrade", r.exercise.revision, TABLES, BUSY)
        if ev.upgrade.ok:
            ev.facts = facts(mig)
            ev.fk_delete_read = fk_delete_read(mig)
            ev.drift = drift(mig)
            r.round_trip(mig)
    eng.dispose()
    ev.sql = lint.revision_sql(r)
    return ev


def facts(conn) -> dict:
    rows = conn.execute(sa.text("""
        SELECT conname, contype::text, convalidated, conrelid::regclass::text,
               confrelid::regclass::text, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE conrelid IN ('lead'::regclass, 'finding'::regclass)""")).all()
    company = conn.execute(sa.text(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'lead'::regclass AND attname = 'company'")).scalar()
    conn.rollback()
    return {"constraints": {r[0]: {"type": r[1], "valid": r[2], "table": r[3], "refers": r[4], "def": r[5]}
                            for r in rows},
            "company_not_null": bool(company)}


def fk_delete_read(conn) -> int | None:
    """Rows of finding read by the foreign key's check when an unreferenced asset is deleted.

    In one transaction, rolled back: remove one asset's findings, then the asset, and count the
    rows of finding this transaction's DELETE FROM asset read (pg_stat_xact_user_tables).
    """
    read = ("SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
            "WHERE relname = 'finding'")
    try:
        last = conn.execute(sa.text("SELECT max(id) FROM asset")).scalar()
        conn.execute(sa.text("DELETE FROM finding WHERE asset_id = :a"), {"a": last})
        before = conn.execute(sa.text(read)).scalar_one()
        conn.execute(sa.text("DELETE FROM asset WHERE id = :a"), {"a": last})
        return conn.execute(sa.text(read)).scalar_one() - before
    except sa.exc.DBAPIError:
        return None
    finally:
        conn.rollback()


def drift(conn) -> list[str]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with warnings.catch_warnings():  # reflection warns about options it does not know; not the learner's
        warnings.simplefilter("ignore")
        diffs = compare_metadata(MigrationContext.configure(conn), models.metadata)
    conn.rollback()
    return [str(d[0] if isinstance(d, tuple) else d[0][0]) + " " + _name(d) for d in diffs]


def _name(d) -> str:
    item = d[1] if isinstance(d, tuple) else d[0][1]
    return str(getattr(item, "name", item))


@criterion("constraints_valid", "At the end, ck_lead_priority, fk_finding_asset_id and uq_lead_email exist and "
           "are valid, lead.company is NOT NULL, and no helper check is left.")
def constraints_valid(ev: Evidence) -> str:
    """Assert that each constraint is in force for every row, not only for new ones.

    A NOT VALID constraint checks new rows only: the planner cannot trust it, and old rows may break it.
    """
    ev.require("upgrade")
    found = ev.facts["constraints"]
    expected = {"ck_lead_priority": ("c", "lead", None), "fk_finding_asset_id": ("f", "finding", "asset"),
                "uq_lead_email": ("u", "lead", None)}
    kinds = {"c": "check", "f": "foreign key", "u": "unique"}
    for name, (kind, table, refers) in expected.items():
        con = found.get(name)
        if con is None or con["type"] != kind or con["table"] != table or (refers and con["refers"] != refers):
            raise Incorrect(f"After the upgrade there is no {kinds[kind]} constraint {name} on {table}"
                            + (f" referring to {refers}" if refers else "") + ". Name it exactly so.")
        if not con["valid"]:
            raise Incorrect(f"{name} exists but is NOT VALID (pg_constraint.convalidated is false): it checks new "
                            "rows only, and the rows already there were never read. Expected "
                            f"ALTER TABLE {table} VALIDATE CONSTRAINT {name} after the ADD, in a later transaction.")
    if "'low'" not in found["ck_lead_priority"]["def"] or "'high'" not in found["ck_lead_priority"]["def"]:
        raise Incorrect(f"ck_lead_priority is {found['ck_lead_priority']['def']}; expected priority IN "
                        "('low', 'medium', 'high').")
    if not ev.facts["company_not_null"]:
        raise Incorrect("lead.company still allows NULL; expected NOT NULL (fill the NULLs with 'unknown' first).")
    helpers = [n for n, c in found.items() if c["type"] == "c" and "IS NOT NULL" in c["def"]]
    if helpers:
        raise Incorrect(f"The helper check {helpers[0]} ({found[helpers[0]]['def']}) is still there; once "
                        "SET NOT NULL has used it, drop it: NOT NULL says the same.")
    return "ck_lead_priority, fk_finding_asset_id and uq_lead_email are valid; lead.company is NOT NULL."


def _cause(entry: dict, held_before: bool) -> str:
    changes = " ".join(value for _, value in entry["changes"]) + " " + " ".join(n for n, _ in entry["changes"])
    if held_before:
        return ("the lock was taken by an earlier statement of the same transaction (such as an ADD), and this "
                "one read the rows while it was still held. Run it in a later transaction: inside "
                "op.get_context().autocommit_block() each statement commits on its own")
    if "f valid" in changes:
        return ("a plain foreign key checks every row while it holds the lock. Add it with "
                "postgresql_not_valid=True, then VALIDATE CONSTRAINT in a later transaction")
    if "u valid" in changes or "unique" in changes:
        return ("a plain unique constraint builds its index under the lock. Build the index with "
                "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX")
    if "c valid" in changes:
        return ("a plain check constraint checks every row while it holds the lock. Add it with "
                "postgresql_not_valid=True, then VALIDATE CONSTRAINT in a later transaction")
    return "split it so that the rows are read without that lock"


@criterion("no_read_under_lock", "No statement read lead or finding while holding a lock writers conflict with "
           "(per statement: pg_locks and pg_stat_user_tables).")
def no_read_under_lock(ev: Evidence) -> str:
    """Assert that writers never wait for a scan: a strong lock is held for catalog changes only.

    ADD ... NOT VALID takes ACCESS EXCLUSIVE (check) or SHARE ROW EXCLUSIVE (foreign key) but
    reads nothing; VALIDATE reads every row under SHARE UPDATE EXCLUSIVE, which writers do not
    conflict with. The plain forms, or a VALIDATE in the ADD's transaction, read under the strong lock.
    """
    ev.require("upgrade")
    found = read_under_lock(ev.statements, ev.rows)
    if found:
        raise Incorrect(found)
    return (f"{len(ev.statements)} statements: none read lead or finding while holding a lock writers "
            "conflict with.")


def read_under_lock(statements: list[dict], rows: dict[str, int]) -> str | None:
    """What the first statement that read a table while holding a lock writers conflict with did, or None.

    `statements` is a statement_log.replay log, `rows` the size of each table before the replay.
    Shared with exercise 7, whose contract makes a column NOT NULL the same way. SET NOT NULL is
    left to the criteria on PostgreSQL's own words about its scan.
    """
    for entry in statements:
        if entry["changes"] and all(name.startswith("not null") for name, _ in entry["changes"]):
            continue
        strong = sorted((t, m) for t, m in entry["locks"] if m not in locks.WRITER_SAFE)
        scanned = {t: n for t, n in entry["read"].items() if t in rows and n >= SCANNED * rows[t]}
        if strong and scanned:
            (table, mode), (read_table, n) = strong[0], next(iter(scanned.items()))
            held_before = (table, mode) in entry["held_before"]
            who = "every reader and writer" if mode in locks.READER_BLOCKING else "every writer"
            return (f"`{entry['sql'][:100]}` held {mode} on {table} while it read {n:,} rows of "
                    f"{read_table}: {who} on {table} waited for the whole read. The cause: "
                    f"{_cause(entry, held_before)}.")
    return None


@criterion("set_not_null_without_scan", "SET NOT NULL on lead.company did not scan the table (PostgreSQL says so).")
def set_not_null_without_scan(ev: Evidence) -> str:
    """Assert that SET NOT NULL used a valid CHECK (company IS NOT NULL) instead of a full scan.

    SET NOT NULL holds ACCESS EXCLUSIVE; without a valid check that proves it, PostgreSQL reads
    every row under it. At client_min_messages = debug1 it says which of the two it did.
    """
    ev.require("upgrade")
    entry = next((e for e in ev.statements if ("not null lead.company", "not null") in e["changes"]), None)
    if entry is None:
        raise Incorrect("No statement of the upgrade made lead.company NOT NULL; expected "
                        "op.alter_column('lead', 'company', existing_type=sa.Text, nullable=False) after a "
                        "valid CHECK (company IS NOT NULL).")
    if any(PROVED in n for n in entry["notices"]):
        return f"PostgreSQL said: existing constraints on column \"lead.company\" {PROVED}."
    scanned = next((n for n in entry["notices"] if n.startswith("verifying table")), None)
    raise Incorrect(f"`{entry['sql'][:80]}` made PostgreSQL read every lead under ACCESS EXCLUSIVE to look for "
                    f"NULLs (it said \"{scanned or 'no proof from an existing constraint'}\"). Expected it to say "
                    f"the existing constraints {PROVED}: add CHECK (company IS NOT NULL) NOT VALID, VALIDATE it, "
                    "then SET NOT NULL, then drop the check.")


@criterion("fk_indexed", "Deleting an asset does not scan finding (ix_finding_asset_id serves the foreign key).")
def fk_indexed(ev: Evidence) -> str:
    """Assert that the foreign key's check on DELETE FROM asset finds references through an index.

    PostgreSQL indexes the referenced side (asset.id) but not the referencing one: without an
    index on finding(asset_id), every DELETE FROM asset reads all of finding.
    """
    ev.require("upgrade")
    n = ev.fk_delete_read
    if n is None:
        raise Incorrect("Not checked: DELETE FROM asset failed (is there an asset table with the foreign key?).")
    if n >= SCANNED * ev.rows["finding"]:
        raise Incorrect(f"DELETE FROM asset WHERE id = ... read {n:,} rows of finding to look for references: "
                        "the foreign key has no index on finding(asset_id). Add ix_finding_asset_id, "
                        "built concurrently.")
    return f"DELETE FROM asset read {n:,} rows of finding: the foreign key's check used an index."


@criterion("models_match", "At the new head the models match the database (alembic check finds nothing).")
def models_match(ev: Evidence) -> str:
    """Assert that workbook/models.py and the migrated database agree, as `alembic check` would."""
    ev.require("upgrade")
    if ev.drift:
        raise Incorrect("After the upgrade, `alembic check` would report: " + "; ".join(ev.drift[:3])
                        + ". Expected none: use the names and types the exercise gives.")
    return "alembic check finds no difference between the models and the database."


downgrade_restores = common.schema_restored(
    "Downgrade removes the constraints, the index and asset, and leaves the schema exactly as before.",
    "drop each constraint, the index and the asset table in downgrade(), and make company nullable again")

CRITERIA = [constraints_valid, no_read_under_lock, set_not_null_without_scan, fk_indexed, models_match,
            downgrade_restores, common.upgrade_again, common.lock_timeout, common.squawk(SQUAWK_ACCEPTS)]
