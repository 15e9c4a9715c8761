"""checks.statement_log: each statement's locks and reads, exactly, from the server itself."""
import pytest

from conftest import make_track, revision, rows
from workbook import manifest, templates
from workbook.checks import base, statement_log
from workbook.checks.base import Replay

TABLES, BUSY = ["lead", "finding", "asset"], ["lead", "finding"]


def replayed(tmp_path, upgrade: str) -> list[dict]:
    """The statement log of an upgrade written in exercise 5's place, on a copy of its start."""
    ex = manifest.get("05")
    track = make_track(tmp_path, **{"05_constraints": revision(ex.revision, ex.down_revision, upgrade, "pass")})
    with templates.scratch(ex.start, base.replay_scale(ex)) as database:
        r = Replay(ex, track, database)
        eng = r.engine()
        with eng.connect() as mig, eng.connect() as writer, eng.connect() as watcher:
            step, log = statement_log.replay(r, mig, writer, watcher, "upgrade", ex.revision, TABLES, BUSY)
        eng.dispose()
    assert step.ok, step.error
    return log


def entry(log: list[dict], start: str) -> dict:
    return next(e for e in log if e["sql"].startswith(start))


def test_each_statement_is_charged_its_own_reads_index_only_scans_included(tmp_path):
    log = replayed(tmp_path, """
        with op.get_context().autocommit_block():
            op.execute("UPDATE lead SET company = 'unknown' WHERE company IS NULL")
            op.execute("ALTER TABLE lead ADD CONSTRAINT ck_lead_company_not_null CHECK (company IS NOT NULL) NOT VALID")
            op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_company_not_null")
            op.execute("CREATE TABLE asset (id integer PRIMARY KEY, name text NOT NULL)")
            op.execute("INSERT INTO asset SELECT DISTINCT asset_id, 'asset' FROM finding")
            op.execute("CREATE INDEX CONCURRENTLY ix_finding_asset_id ON finding (asset_id)")
            op.execute("VACUUM finding")
            op.execute("ALTER TABLE finding ADD CONSTRAINT fk_finding_asset_id FOREIGN KEY (asset_id) REFERENCES asset")
        """)
    n = rows("05")
    # The UPDATE's scan stays its own: nothing of it (or of the writer's) lands on the ADD after it.
    assert entry(log, "UPDATE lead")["read"] == {"lead": n["lead"]}
    add = entry(log, "ALTER TABLE lead ADD CONSTRAINT")
    assert add["read"] == {} and ("lead", "AccessExclusiveLock") in add["locks"]
    assert add["changes"] == [("constraint ck_lead_company_not_null", "c not valid")]
    validate = entry(log, "ALTER TABLE lead VALIDATE")
    assert validate["read"] == {"lead": n["lead"]} and validate["read_via"] == {}
    assert validate["changes"] == [("constraint ck_lead_company_not_null", "c valid")]
    assert validate["gone"] == [("constraint ck_lead_company_not_null", "c not valid")]
    # With the index there (and the table all-visible), the foreign key's check reads the whole
    # index and not one row of the table: it counts all the same.
    fk = entry(log, "ALTER TABLE finding ADD CONSTRAINT fk_finding_asset_id")
    assert fk["read"]["finding"] >= n["finding"] and fk["read_via"] == {"finding": ["ix_finding_asset_id"]}
    found = statement_log.read_under_lock(log, {"lead": n["lead"], "finding": n["finding"]}, 0.10)
    assert [(f["entry"]["sql"][:40], f["lock"]) for f in found] == [
        (fk["sql"][:40], ("finding", "ShareRowExclusiveLock"))]


def test_a_validate_in_the_add_s_transaction_reads_under_the_add_s_lock(tmp_path):
    # Exercise 7's contract, written wrong: the helper check's ADD, its VALIDATE and SET NOT NULL
    # in one transaction. SET NOT NULL reads nothing, but the VALIDATE reads every row under the
    # ADD's ACCESS EXCLUSIVE, still held.
    log = replayed(tmp_path, """
        op.execute("UPDATE lead SET company = 'unknown' WHERE company IS NULL")
        op.execute("ALTER TABLE lead ADD CONSTRAINT ck_lead_company_not_null CHECK (company IS NOT NULL) NOT VALID")
        op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_company_not_null")
        op.execute("ALTER TABLE lead ALTER COLUMN company SET NOT NULL")
        """)
    set_not_null = entry(log, "ALTER TABLE lead ALTER COLUMN company SET NOT NULL")
    assert set_not_null["read"] == {} and set_not_null["changes"] == [("not null lead.company", "not null")]
    assert any("sufficient to prove" in n for n in set_not_null["notices"])
    n = rows("05")
    (found,) = statement_log.read_under_lock(log, {"lead": n["lead"]}, 0.10)
    assert found["entry"] is entry(log, "ALTER TABLE lead VALIDATE")
    assert found["n"] == n["lead"] and found["lock"] == ("lead", "AccessExclusiveLock") and found["inherited"]
    assert found["taken_by"] is entry(log, "ALTER TABLE lead ADD CONSTRAINT")
    assert "every query on lead, reads included, would wait about" in statement_log.stall(found["entry"], found["lock"])


@pytest.mark.unit
def test_schema_locks_are_those_stronger_than_row_exclusive_not_already_held():
    def e(locks, held=()):
        return {"locks": set(locks) | set(held), "held_before": set(held)}
    # Reads and writes take none; CREATE INDEX CONCURRENTLY's SHARE UPDATE EXCLUSIVE counts.
    assert statement_log.schema_locks(e({("lead", "AccessShareLock"), ("lead", "RowExclusiveLock")})) == []
    assert statement_log.schema_locks(e({("finding", "ShareUpdateExclusiveLock")})) == [
        ("finding", "ShareUpdateExclusiveLock")]
    # Strongest first; a lock its transaction already held as strong could not have waited.
    assert statement_log.schema_locks(e({("lead", "ShareLock"), ("finding", "AccessExclusiveLock")})) == [
        ("finding", "AccessExclusiveLock"), ("lead", "ShareLock")]
    assert statement_log.schema_locks(e({("lead", "ShareUpdateExclusiveLock")},
                                        held={("lead", "AccessExclusiveLock")})) == []
    assert statement_log.schema_locks(e({("lead", "AccessExclusiveLock")},
                                        held={("lead", "ShareUpdateExclusiveLock")})) == [
        ("lead", "AccessExclusiveLock")]
