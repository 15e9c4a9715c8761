"""Exercise 5's check: the solution passes, the stub is not attempted, each known-wrong answer fails for its reason."""
import subprocess

from conftest import make_track, message, only_failures, outcomes
from workbook.checks import base
from workbook.manifest import ROOT

FILE = "versions/05_constraints.py"
SOLUTION = (ROOT / "solutions" / FILE).read_text()
CHECK_ADD = ('''op.create_check_constraint("ck_lead_priority", "lead", "priority IN ('low', 'medium', 'high')",
                                   postgresql_not_valid=True)''')
CHECK_VALIDATE = 'op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_priority")'


def variant(tmp_path, *replacements):
    source = SOLUTION
    for old, new in replacements:
        assert old in source, old
        source = source.replace(old, new)
    return base.check("05", make_track(tmp_path, **{"05_constraints": source}))


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
    assert "AccessExclusiveLock on lead while it read 100,000 rows of lead" in text
    assert "plain check constraint" in text


def test_plain_foreign_key_reads_finding_under_its_lock(tmp_path):
    report = variant(tmp_path, ('["asset_id"], ["id"],\n                              postgresql_not_valid=True)', '["asset_id"], ["id"])'),
                     ('op.execute("ALTER TABLE finding VALIDATE CONSTRAINT fk_finding_asset_id")', ""))
    assert only_failures(report) == {"no_read_under_lock"}
    text = message(report, "no_read_under_lock")
    assert "ShareRowExclusiveLock" in text and "plain foreign key" in text


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
    assert "VALIDATE CONSTRAINT ck_lead_priority" in text and "same transaction" in text


def test_create_unique_constraint_builds_its_index_under_lock(tmp_path):
    report = variant(tmp_path, (
        'op.create_index("uq_lead_email", "lead", ["email"], unique=True, postgresql_concurrently=True)\n'
        '        op.execute("ALTER TABLE lead ADD CONSTRAINT uq_lead_email UNIQUE USING INDEX uq_lead_email")',
        'op.create_unique_constraint("uq_lead_email", "lead", ["email"])'))
    assert only_failures(report) == {"no_read_under_lock"}
    assert "plain unique constraint" in message(report, "no_read_under_lock")


def test_alter_column_not_null_directly_scans(tmp_path):
    report = variant(tmp_path, ('''        op.create_check_constraint("ck_lead_company_not_null", "lead", "company IS NOT NULL",
                                   postgresql_not_valid=True)
        op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_company_not_null")''', ""),
                     ('        op.drop_constraint("ck_lead_company_not_null", "lead", type_="check")', ""))
    assert only_failures(report) == {"set_not_null_without_scan"}
    text = message(report, "set_not_null_without_scan")
    assert 'verifying table "lead"' in text and "CHECK (company IS NOT NULL) NOT VALID" in text


def test_foreign_key_without_its_index(tmp_path):
    report = variant(tmp_path, ('        op.create_index("ix_finding_asset_id", "finding", ["asset_id"], postgresql_concurrently=True)', ""),
                     ('        op.drop_index("ix_finding_asset_id", table_name="finding", postgresql_concurrently=True)', ""))
    assert "fk_indexed" in only_failures(report)
    text = message(report, "fk_indexed")
    assert "rows of finding to look for references" in text and "ix_finding_asset_id" in text
