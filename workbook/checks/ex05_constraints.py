"""Exercise 5: check, foreign key, unique and NOT NULL on busy tables, without long locks.

Judged per statement from the server (checks.statement_log): the lock each statement held or
asked for on lead and finding (pg_locks, with a writer's UPDATE open on each), the rows it read
from each table or its indexes (pg_stat_*), and PostgreSQL's own DEBUG1 words. A statement may
take a lock writers conflict with (an ADD ... NOT VALID must, for a moment) but must not read a
table while it holds one. The thresholds are shares of a table (SCANNED), not row counts or
times, so every verdict holds on a smaller copy too; the time a statement took only sizes the stall
its message predicts for a larger table.

Proof scale: 0.1 (100,000 findings, 10,000 leads). Locks, DEBUG1 words and validity are facts at
any size, and the reads are shares. Two things need rows: a share of 10 % must stay well above
the handful of rows a statement reads through an index, and fk_indexed needs a finding table big
enough that the planner prefers ix_finding_asset_id to a scan for the delete's foreign-key
check, as it does at 100,000 rows (20 per asset).
"""
from __future__ import annotations

import warnings

import sqlalchemy as sa

from workbook import locks, models, schema
from workbook.checks import common, lint, statement_log
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, is_stub

TABLES, BUSY = ["lead", "finding", "asset"], ["lead", "finding"]
SCANNED = 0.10  # reading this share of a table's rows in one statement counts as reading the table
COMPANY = "not null lead.company"  # statement_log's name for lead.company's NOT NULL
PROVED = "are sufficient to prove that it does not contain nulls"
SQUAWK_ACCEPTS = {
    "prefer-bigint-over-int": "asset.id matches finding.asset_id, an integer since the baseline",
    "prefer-robust-stmts": "each statement commits on its own on purpose, so VALIDATE runs after the ADD's lock is gone",
    "ban-drop-constraint": "the helper CHECK (company IS NOT NULL) is dropped once NOT NULL says the same",
}
PROOF_SCALE = 0.1  # why: the module's docstring


def attempted(path) -> bool:
    return not is_stub(path)


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ev.update(statements=[], facts=None, fk_delete_read=None, drift=[])
    eng = r.engine()
    with eng.connect() as mig, eng.connect() as writer, eng.connect() as watcher:
        ev.server = int(mig.execute(sa.text("SHOW server_version_num")).scalar_one())
        ev.before = schema.snapshot(mig)
        ev.rows = dict(mig.execute(sa.text(
            "SELECT 'lead', count(*) FROM lead UNION ALL SELECT 'finding', count(*) FROM finding")).all())
        mig.commit()
        ev.upgrade, ev.statements = statement_log.replay(
            r, mig, writer, watcher, "upgrade", r.exercise.revision, TABLES, BUSY)
        ev.upgrade_statements = ev.statements  # what common.lock_timeout reads
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
    # PostgreSQL 18 sets attnotnull for a NOT NULL ... NOT VALID too: its rows were never read.
    company = conn.execute(sa.text("""
        SELECT a.attnotnull, (SELECT conname FROM pg_constraint k WHERE k.conrelid = a.attrelid
                              AND k.contype = 'n' AND NOT k.convalidated AND k.conkey = ARRAY[a.attnum])
        FROM pg_attribute a WHERE a.attrelid = 'lead'::regclass AND a.attname = 'company'""")).one()
    conn.rollback()
    return {"constraints": {r[0]: {"type": r[1], "valid": r[2], "table": r[3], "refers": r[4], "def": r[5]}
                            for r in rows},
            "company_not_null": bool(company[0]) and company[1] is None, "company_not_valid": company[1]}


def fk_delete_read(conn) -> int | None:
    """Rows of finding read by the foreign key's check when an unreferenced asset is deleted.

    In one transaction, rolled back: remove one asset's findings, then the asset, and count the
    rows of finding, or entries of its indexes, this transaction's DELETE FROM asset read
    (pg_stat_xact_*: a whole index read counts as much as the table).
    """
    read = ("SELECT sum(pg_stat_get_xact_tuples_returned(oid)) FROM pg_class WHERE oid = 'finding'::regclass "
            "OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'finding'::regclass)")
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
        diffs = compare_metadata(MigrationContext.configure(conn), models.metadata_at("ex05_constraints"))
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
    if ev.facts["company_not_valid"]:
        name = ev.facts["company_not_valid"]
        raise Incorrect(f"lead.company's NOT NULL constraint {name} is NOT VALID: it checks new rows only, and "
                        f"the rows already there were never read. Expected ALTER TABLE lead VALIDATE CONSTRAINT "
                        f"{name} after the ADD, in a later transaction.")
    if not ev.facts["company_not_null"]:
        raise Incorrect("lead.company still allows NULL; expected NOT NULL (fill the NULLs with 'unknown' first).")
    helpers = [n for n, c in found.items() if c["type"] == "c" and "IS NOT NULL" in c["def"]]
    if helpers:
        raise Incorrect(f"The helper check {helpers[0]} ({found[helpers[0]]['def']}) is still there; once "
                        "SET NOT NULL has used it, drop it: NOT NULL says the same.")
    return "ck_lead_priority, fk_finding_asset_id and uq_lead_email are valid; lead.company is NOT NULL."


def _fix(found: dict, server: int) -> str:
    """Why the statement read under its lock and what to write instead, from what it changed."""
    entry, table = found["entry"], found["table"]
    validated = {name for name, value in entry["gone"] if value.endswith("not valid")}
    made = {name: value for name, value in entry["changes"] if name not in validated}
    constraint = {value.split()[0]: name.split(" ", 1)[1] for name, value in made.items()
                  if name.startswith("constraint ")}
    index = next((name.split(" ", 1)[1] for name in made if name.startswith("index ")), None)
    if found["inherited"] and not (constraint or index or COMPANY in made):
        earlier = found["taken_by"]
        by = statement_log.quoted(earlier["sql"], 80) if earlier else "an earlier statement"
        return (f"its lock was taken by {by} earlier in the same transaction and was still held. Run it in "
                "a later transaction: inside op.get_context().autocommit_block() each statement commits on its own")
    if COMPANY in made:
        said = next((f'PostgreSQL said "{n}": ' for n in entry["notices"] if n.startswith("verifying table")), "")
        return (f"{said}no valid constraint proved that lead.company holds no NULL, so it read every row to "
                f"look for one. {_not_null_way(server)}")
    if "f" in constraint:
        via = entry["read_via"].get(table)
        return ("a plain foreign key checks every row while it holds the lock"
                + (f" (reading the index {via[0]} instead of the table is still reading every row)" if via else "")
                + f". Add it with postgresql_not_valid=True, then ALTER TABLE {table} VALIDATE CONSTRAINT "
                f"{constraint['f']} in a later transaction")
    if "u" in constraint:
        name = constraint["u"]
        return ("a plain unique constraint builds its index under the lock. Build the index first with "
                f"op.create_index(\"{name}\", ..., unique=True, postgresql_concurrently=True) inside "
                f"op.get_context().autocommit_block(), then ADD CONSTRAINT {name} UNIQUE USING INDEX {name}")
    if "c" in constraint:
        return ("a plain check constraint checks every row while it holds the lock. Add it with "
                f"postgresql_not_valid=True, then ALTER TABLE {table} VALIDATE CONSTRAINT {constraint['c']} "
                "in a later transaction")
    if index:
        kind = "UNIQUE INDEX" if made[f"index {index}"] == "unique" else "INDEX"
        return (f"a plain CREATE {kind} reads the table while it holds its lock. Build it with CREATE {kind} "
                f"CONCURRENTLY: op.create_index(\"{index}\", ..., postgresql_concurrently=True) inside "
                "op.get_context().autocommit_block(), as CONCURRENTLY cannot run in a transaction")
    if found["inherited"]:
        return ("its lock was taken earlier in the same transaction. Commit before it: inside "
                "op.get_context().autocommit_block() each statement commits on its own")
    return ("it read the rows while holding that lock. Split it into a catalog change under the lock and "
            "a read without it (NOT VALID, then VALIDATE CONSTRAINT; an index built CONCURRENTLY)")


def _not_null_way(server: int) -> str:
    way = ("Expected the existing constraints to prove it: add CHECK (company IS NOT NULL) NOT VALID, VALIDATE "
           f"it in a later transaction, then SET NOT NULL (PostgreSQL then says they {PROVED}), then drop the check")
    if server >= 180000:
        way += (". Or, on PostgreSQL 18: ALTER TABLE lead ADD CONSTRAINT lead_company_not_null NOT NULL company "
                "NOT VALID, then ALTER TABLE lead VALIDATE CONSTRAINT lead_company_not_null in a later transaction")
    return way


def _verdict(server: int, found: list[dict], what: str) -> str:
    """Every offending statement, each with what it read under which lock, and its own fix."""
    lines = []
    for f in found:
        entry, (locked, mode) = f["entry"], f["lock"]
        via = entry["read_via"].get(f["table"])
        lines.append(f"{statement_log.quoted(entry['sql'], 100)} read {f['n']:,} rows of {f['table']}"
                     + (f" through its index {', '.join(via)}" if via else "")
                     + f" while holding {mode} on {locked}: {statement_log.stall(entry, f['lock'])}. "
                     f"The cause: {_fix(f, server)}.")
    if len(lines) == 1:
        return lines[0]
    return f"{len(lines)} statements {what}: " + " ".join(f"({i}) {line}" for i, line in enumerate(lines, 1))


def read_under_lock(statements: list[dict], rows: dict[str, int], server: int = 0) -> str | None:
    """This exercise's judgement on any statement_log replay: every statement that read a table under
    a lock writers conflict with, each with its fix, or None. Exercise 7 judges its revisions with it;
    a statement that makes a column NOT NULL is left to the criteria on PostgreSQL's own words."""
    found = [f for f in statement_log.read_under_lock(statements, rows, SCANNED)
             if not (f["entry"]["changes"] and all(n.startswith("not null") for n, _ in f["entry"]["changes"]))]
    return _verdict(server, found, "read a table while holding a lock writers conflict with") if found else None


def _offences(ev: Evidence, not_null: bool) -> list[dict]:
    """The statements that read a table under a lock writers conflict with: those that change
    lead.company's NOT NULL (not_null=True), or all the others."""
    return [f for f in statement_log.read_under_lock(ev.statements, ev.rows, SCANNED)
            if any(name == COMPANY for name, _ in f["entry"]["changes"]) == not_null]


@criterion("no_read_under_lock", "No statement read lead or finding while holding a lock writers conflict with "
           "(per statement: pg_locks and the rows it read, pg_stat_*).")
def no_read_under_lock(ev: Evidence) -> str:
    """Assert that writers never wait for a scan: a strong lock is held for catalog changes only.

    ADD ... NOT VALID takes ACCESS EXCLUSIVE (check) or SHARE ROW EXCLUSIVE (foreign key) but
    reads nothing; VALIDATE reads every row under SHARE UPDATE EXCLUSIVE, which writers do not
    conflict with. The plain forms, or a VALIDATE in the ADD's transaction, read under the strong
    lock. Rows read through an index count: a foreign key added after its index reads the whole
    index. Every offending statement is named, each with its own fix; the NOT NULL ones are
    set_not_null_without_scan's.
    """
    ev.require("upgrade")
    found = _offences(ev, not_null=False)
    if found:
        raise Incorrect(_verdict(ev.server, found, "read a table while holding a lock writers conflict with"))
    return (f"{len(ev.statements)} statements: none read lead or finding while holding a lock writers "
            "conflict with.")


@criterion("set_not_null_without_scan", "Making lead.company NOT NULL did not read lead under a lock writers "
           "conflict with (pg_locks, the rows read, and PostgreSQL's own words).")
def set_not_null_without_scan(ev: Evidence) -> str:
    """Assert that NOT NULL on lead.company was proved without a full scan under ACCESS EXCLUSIVE.

    SET NOT NULL holds ACCESS EXCLUSIVE; without a valid check that proves it, PostgreSQL reads
    every row under it (at client_min_messages = debug1 it says which of the two it did). On
    PostgreSQL 18, ADD CONSTRAINT ... NOT NULL ... NOT VALID reads nothing, and VALIDATE reads
    the rows under SHARE UPDATE EXCLUSIVE, which writers do not conflict with.
    """
    ev.require("upgrade")
    found = _offences(ev, not_null=True)
    if found:
        raise Incorrect(_verdict(ev.server, found, "read lead while making lead.company NOT NULL"))
    entry = next((e for e in ev.statements if (COMPANY, "not null") in e["changes"]), None)
    if entry is None:
        raise Incorrect("No statement of the upgrade made lead.company NOT NULL; expected "
                        "op.alter_column('lead', 'company', existing_type=sa.Text, nullable=False) after a "
                        "valid CHECK (company IS NOT NULL)" + (", or ALTER TABLE lead VALIDATE CONSTRAINT after "
                                                               "ADD CONSTRAINT ... NOT NULL company NOT VALID"
                                                               if ev.server >= 180000 else "") + ".")
    if any(PROVED in n for n in entry["notices"]):
        return f"PostgreSQL said: existing constraints on column \"lead.company\" {PROVED}."
    modes = sorted({m for t, m in entry["locks"] if t == "lead"} - {"AccessShareLock", "RowExclusiveLock"})
    strong = [m for m in modes if m not in locks.WRITER_SAFE]
    said = f"{statement_log.quoted(entry['sql'], 80)} made lead.company NOT NULL and read {entry['read'].get('lead', 0):,} rows of lead"
    if strong:
        return f"{said} under {', '.join(strong)}: a catalog change only."
    # A lock writers do not conflict with is seen only if the watcher polls while it is held:
    # the verdict rests on the absence of any other, so the message does not name it.
    return f"{said} without a lock writers conflict with."


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
