"""Exercise 5's check: the solution passes, the stub is not attempted, each known-wrong answer fails for its reason."""
import subprocess

import pytest

from conftest import make_track, message, only_failures, outcomes, revision, rows
from workbook import db
from workbook.checks import base
from workbook.manifest import ROOT

FILE = "versions/05_constraints.py"
SOLUTION = (ROOT / "solutions" / FILE).read_text()
CHECK_ADD = ('''op.create_check_constraint("ck_lead_priority", "lead", "priority IN ('low', 'medium', 'high')",
                                   postgresql_not_valid=True)''')
CHECK_VALIDATE = 'op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_priority")'
FK = '''op.create_foreign_key("fk_finding_asset_id", "finding", "asset", ["asset_id"], ["id"],
                              postgresql_not_valid=True)
        op.execute("ALTER TABLE finding VALIDATE CONSTRAINT fk_finding_asset_id")
        op.create_index("ix_finding_asset_id", "finding", ["asset_id"], postgresql_concurrently=True)'''
NOT_NULL = '''op.create_check_constraint("ck_lead_company_not_null", "lead", "company IS NOT NULL",
                                   postgresql_not_valid=True)
        op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_company_not_null")
        op.alter_column("lead", "company", existing_type=sa.Text, nullable=False)
        op.drop_constraint("ck_lead_company_not_null", "lead", type_="check")'''
# PostgreSQL 18's own form: a NOT NULL constraint added NOT VALID, then validated in a later transaction.
NOT_NULL_18 = '''op.execute("ALTER TABLE lead ADD CONSTRAINT lead_company_not_null NOT NULL company NOT VALID")
        op.execute("ALTER TABLE lead VALIDATE CONSTRAINT lead_company_not_null")'''
STALL_LEAD = "on a table 100 times larger, every query on lead, reads included, would wait about "


def variant(tmp_path, *replacements):
    source = SOLUTION
    for old, new in replacements:
        assert old in source, old
        source = source.replace(old, new)
    return base.check("05", make_track(tmp_path, **{"05_constraints": source}))


def needs_postgres_18():
    with db.admin() as conn:
        if conn.info.server_version < 180000:
            pytest.skip("ADD CONSTRAINT ... NOT NULL ... NOT VALID arrived in PostgreSQL 18; "
                        f"this server is {conn.info.server_version // 10000}")


def test_solution_passes_every_criterion():
    report = base.check("05", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(tmp_path):
    committed = subprocess.run(["git", "show", f"HEAD:exercises/{FILE}"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout
    report = base.check("05", make_track(tmp_path, **{"05_constraints": committed}))
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "constraints_valid")


def test_plain_check_constraint_reads_lead_under_its_lock(tmp_path):
    report = variant(tmp_path, (CHECK_ADD, CHECK_ADD.replace(",\n                                   postgresql_not_valid=True", "")),
                     (CHECK_VALIDATE, ""))
    assert only_failures(report) == {"no_read_under_lock"}
    text = message(report, "no_read_under_lock")
    assert f"read {rows('05')['lead']:,} rows of lead while holding AccessExclusiveLock on lead" in text
    assert STALL_LEAD in text  # the stall is the measured time scaled up, never a threshold
    assert "plain check constraint" in text and "VALIDATE CONSTRAINT ck_lead_priority" in text


def test_plain_foreign_key_reads_finding_under_its_lock(tmp_path):
    report = variant(tmp_path, ('["asset_id"], ["id"],\n                              postgresql_not_valid=True)', '["asset_id"], ["id"])'),
                     ('op.execute("ALTER TABLE finding VALIDATE CONSTRAINT fk_finding_asset_id")', ""))
    assert only_failures(report) == {"no_read_under_lock"}
    text = message(report, "no_read_under_lock")
    assert f"read {rows('05')['finding']:,} rows of finding while holding ShareRowExclusiveLock on finding" in text
    assert "every write to finding would wait about" in text and "plain foreign key" in text


def test_plain_foreign_key_after_its_index_reads_the_whole_index_under_its_lock(tmp_path):
    # Hint 4's order: the index first. The foreign key's check then reads every row, on
    # PostgreSQL 18 through the index alone (an index-only scan), still under SHARE ROW EXCLUSIVE.
    report = variant(tmp_path, (FK, '''op.create_index("ix_finding_asset_id", "finding", ["asset_id"], postgresql_concurrently=True)
        op.create_foreign_key("fk_finding_asset_id", "finding", "asset", ["asset_id"], ["id"])'''))
    assert only_failures(report) == {"no_read_under_lock"}
    text = message(report, "no_read_under_lock")
    assert "rows of finding" in text and "while holding ShareRowExclusiveLock on finding" in text
    assert "plain foreign key" in text and "VALIDATE CONSTRAINT fk_finding_asset_id" in text


def test_not_valid_without_validate_is_left_unvalidated(tmp_path):
    report = variant(tmp_path, (CHECK_VALIDATE, ""))
    assert only_failures(report) == {"constraints_valid"}
    assert "ck_lead_priority exists but is NOT VALID" in message(report, "constraints_valid")


def test_validate_in_the_same_transaction_as_the_add(tmp_path):
    report = variant(tmp_path, (CHECK_ADD, ""), (CHECK_VALIDATE, ""),
                     ("    with op.get_context().autocommit_block():\n        op.execute(\"SET lock_timeout = '2s'\")  #",
                      f"    op.execute(\"SET LOCAL lock_timeout = '2s'\")\n    {CHECK_ADD}\n    {CHECK_VALIDATE}\n"
                      "    with op.get_context().autocommit_block():\n        op.execute(\"SET lock_timeout = '2s'\")  #"))
    assert only_failures(report) == {"no_read_under_lock"}
    text = message(report, "no_read_under_lock")
    assert f"VALIDATE CONSTRAINT ck_lead_priority` read {rows('05')['lead']:,} rows of lead" in text and "same transaction" in text
    assert "taken by `ALTER TABLE lead ADD CONSTRAINT ck_lead_priority" in text


def test_create_unique_constraint_builds_its_index_under_lock(tmp_path):
    report = variant(tmp_path, (
        'op.create_index("uq_lead_email", "lead", ["email"], unique=True, postgresql_concurrently=True)\n'
        '        op.execute("ALTER TABLE lead ADD CONSTRAINT uq_lead_email UNIQUE USING INDEX uq_lead_email")',
        'op.create_unique_constraint("uq_lead_email", "lead", ["email"])'))
    assert only_failures(report) == {"no_read_under_lock"}
    assert "plain unique constraint" in message(report, "no_read_under_lock")


def test_alter_column_not_null_directly_scans(tmp_path):
    report = variant(tmp_path, (NOT_NULL, 'op.alter_column("lead", "company", existing_type=sa.Text, nullable=False)'))
    assert only_failures(report) == {"set_not_null_without_scan"}
    text = message(report, "set_not_null_without_scan")
    assert f"SET NOT NULL` read {rows('05')['lead']:,} rows of lead" in text and STALL_LEAD in text
    assert 'verifying table "lead"' in text and "CHECK (company IS NOT NULL) NOT VALID" in text


def test_postgres_18_not_null_not_valid_then_validate_passes(tmp_path):
    needs_postgres_18()
    report = variant(tmp_path, (NOT_NULL, NOT_NULL_18))
    assert report.status == base.PASSED, report
    text = message(report, "set_not_null_without_scan")
    assert "VALIDATE CONSTRAINT lead_company_not_null` made lead.company NOT NULL" in text
    assert "without a lock writers conflict with" in text


def test_postgres_18_not_null_not_valid_without_validate_is_left_unvalidated(tmp_path):
    needs_postgres_18()
    report = variant(tmp_path, (NOT_NULL, NOT_NULL_18.split("\n")[0]))
    assert "constraints_valid" in only_failures(report)
    assert "NOT NULL constraint lead_company_not_null is NOT VALID" in message(report, "constraints_valid")


NAIVE_UPGRADE = """
    op.create_check_constraint("ck_lead_priority", "lead", "priority IN ('low', 'medium', 'high')")
    op.create_table("asset", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("name", sa.Text, nullable=False))
    op.execute("INSERT INTO asset (id, name) SELECT DISTINCT asset_id, 'asset ' || asset_id FROM finding")
    op.create_foreign_key("fk_finding_asset_id", "finding", "asset", ["asset_id"], ["id"])
    op.create_index("ix_finding_asset_id", "finding", ["asset_id"])
    op.create_unique_constraint("uq_lead_email", "lead", ["email"])
    op.execute("UPDATE lead SET company = 'unknown' WHERE company IS NULL")
    op.alter_column("lead", "company", existing_type=sa.Text, nullable=False)
    """
NAIVE_DOWNGRADE = """
    op.alter_column("lead", "company", existing_type=sa.Text, nullable=True)
    op.drop_constraint("uq_lead_email", "lead", type_="unique")
    op.drop_index("ix_finding_asset_id", table_name="finding")
    op.drop_constraint("fk_finding_asset_id", "finding", type_="foreignkey")
    op.drop_table("asset")
    op.drop_constraint("ck_lead_priority", "lead", type_="check")
    """


def test_a_naive_answer_hears_of_every_offending_statement_at_once(tmp_path):
    report = base.check("05", make_track(tmp_path, **{"05_constraints": revision(
        "ex05_constraints", "ex03_data_migration", NAIVE_UPGRADE, NAIVE_DOWNGRADE)}))
    assert only_failures(report) == {"no_read_under_lock", "set_not_null_without_scan"}
    text = message(report, "no_read_under_lock")
    # Five plain forms, and the INSERT and UPDATE that ran while the check constraint's lock on lead was held.
    assert text.startswith("6 statements read a table while holding a lock writers conflict with")
    assert "plain check constraint" in text
    assert "plain foreign key" in text
    assert "CREATE INDEX CONCURRENTLY: op.create_index(\"ix_finding_asset_id\"" in text
    assert "plain unique constraint" in text
    assert (f"`UPDATE lead SET company = 'unknown' WHERE company IS NULL` read {rows('05')['lead']:,} rows of lead while "
            "holding AccessExclusiveLock on lead") in text and "same transaction" in text
    assert "`INSERT INTO asset" in text
    assert f"SET NOT NULL` read {rows('05')['lead']:,} rows of lead" in message(report, "set_not_null_without_scan")


def test_foreign_key_without_its_index(tmp_path):
    report = variant(tmp_path, ('        op.create_index("ix_finding_asset_id", "finding", ["asset_id"], postgresql_concurrently=True)', ""),
                     ('        op.drop_index("ix_finding_asset_id", table_name="finding", postgresql_concurrently=True)', ""))
    assert "fk_indexed" in only_failures(report)
    text = message(report, "fk_indexed")
    assert "rows of finding to look for references" in text and "ix_finding_asset_id" in text
