"""Exercise 7's check: the solution passes, the stubs are not attempted, each known-wrong answer
fails for its own reason, judged from what the simulated application saw and the server said."""
import re

from conftest import make_track, message, only_failures, rows, scratch_left
from workbook.checks import base
from workbook.manifest import ROOT

EXPAND = (ROOT / "solutions" / "versions" / "07_expand.py").read_text()
CONTRACT = (ROOT / "solutions" / "versions" / "07_contract.py").read_text()


# The models of a learner who skipped exercise 6: exercise 7 is judged on its rename alone.
BEFORE_SIX = ((ROOT / "solutions" / "models.py").read_text().replace("full_name: Mapped", "name: Mapped")
              .replace("sa.String(512)", "sa.String(320)").replace('sa.Text, server_default="unknown"', "sa.Text"))


def check(tmp_path, expand: str = EXPAND, contract: str = CONTRACT, **files: str) -> base.Report:
    return base.check("07", make_track(tmp_path, **{"07_expand": expand, "07_contract": contract}, **files))


def replace_function(source: str, name: str, new_body: str) -> str:
    """`source` with function `name`'s body replaced (up to the next top-level definition)."""
    return re.sub(rf"^def {name}\(.*?(?=^def |\Z)", f"def {name}() -> None:\n{new_body}\n\n",
                  source, flags=re.S | re.M)


def test_solution_passes_every_criterion():
    report = base.check("07", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert not scratch_left()


def test_untouched_stubs_are_not_attempted(stub_track):
    report = base.check("07", stub_track)
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "apps_kept_running")


def test_a_rename_in_one_step_breaks_the_old_code(tmp_path):
    expand = replace_function(EXPAND, "upgrade", "    op.alter_column('finding', 'title', new_column_name='summary')")
    expand = replace_function(expand, "downgrade", "    op.alter_column('finding', 'summary', new_column_name='title')")
    untouched = replace_function(replace_function(CONTRACT, "upgrade", "    pass"), "downgrade", "    pass")
    report = check(tmp_path, expand, untouched)
    assert "apps_kept_running" in only_failures(report)
    text = message(report, "apps_kept_running")
    assert "The old code had" in text and '"title"' in text and "does not exist" in text
    assert "07_contract.py is still the stub" in message(report, "contracted")


def test_expand_without_the_trigger_loses_the_old_codes_writes(tmp_path):
    expand = re.sub(r"\n    op\.execute\(SYNC\)\n    op\.execute\(\"CREATE TRIGGER.*?\)\n", "\n",
                    EXPAND, flags=re.S)
    assert "CREATE TRIGGER" not in expand.split("def upgrade")[1].split("def downgrade")[0]
    expand = expand.replace('op.execute("DROP TRIGGER finding_sync_summary ON finding")\n    '
                            'op.execute("DROP FUNCTION finding_sync_summary()")\n    ', "")
    report = check(tmp_path, expand)
    assert "no_lost_write" in only_failures(report)
    assert "trigger" in message(report, "no_lost_write")


def test_a_backfill_in_one_transaction_holds_the_application_up(tmp_path):
    start, end = EXPAND.index("    bind = op.get_bind()"), EXPAND.index("def downgrade")
    expand = EXPAND[:start] + '    op.execute("UPDATE finding SET summary = title")\n\n\n' + EXPAND[end:]
    report = check(tmp_path, expand)
    assert only_failures(report) >= {"writes_in_batches", "no_read_under_lock"}
    text = message(report, "writes_in_batches")
    assert "`UPDATE finding SET summary = title` (holding AccessExclusiveLock, RowExclusiveLock" in text, text
    assert "in one transaction (every row of the table" in text and "the old code's writes" in text
    # The UPDATE also ran under the ADD COLUMN's lock, in Alembic's one transaction.
    text = message(report, "no_read_under_lock")
    assert "In expand, `UPDATE finding SET summary = title` read " in text, text
    assert "while holding AccessExclusiveLock on finding" in text
    assert "same transaction" in text


def test_a_wait_the_applications_statement_timeout_ends_is_no_error_of_the_deploy(monkeypatch):
    """How long the one-transaction backfill holds the applications up depends on the machine and
    the scale: at the learning scale, beside other work, past their statement_timeout. The wait
    is judged by the lock behind it (no_read_under_lock, writes_in_batches), never as an error."""
    import time

    from workbook import app, db, manifest, templates

    monkeypatch.setattr(app, "STATEMENT_TIMEOUT_MS", 200)
    ex = manifest.get("07")
    with templates.scratch(ex.start, base.replay_scale(ex)) as database:
        eng = db.engine(database)
        try:
            with eng.connect() as holder:
                holder.exec_driver_sql("LOCK TABLE finding IN ACCESS EXCLUSIVE MODE")
                application = app.App(db.libpq_url(eng.url), "old", "title", [1, 2, 3], limit=3).start()
                time.sleep(1.0)
                application.stop()
                holder.rollback()
        finally:
            eng.dispose()
    result = application.result()
    assert result["errors"] == 0 and result["timeouts"] >= 1 and result["first_error"] is None, result


def test_batches_of_fifty_thousand_rows_that_each_commit_pass(tmp_path):
    """Such a backfill passed or failed on the machine's load while a 2 s wait decided; now the server's facts do."""
    report = check(tmp_path, EXPAND.replace("BATCH = 20_000", "BATCH = 50_000"))
    assert report.status == base.PASSED, report
    batches = -(-rows("07")["finding"] // 50_000)  # ids run 1..n: the last batch is the rest
    assert f"{batches} transaction(s) of at most 49," in message(report, "writes_in_batches")


def test_validate_in_the_transaction_of_its_add_fails(tmp_path):
    """VALIDATE's scan under the ADD's ACCESS EXCLUSIVE, all in Alembic's one transaction: SET NOT NULL is proved all the same."""
    contract = replace_function(CONTRACT, "upgrade", """\
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.alter_column("finding", "title", existing_type=sa.Text, nullable=True)
    op.execute("DROP TRIGGER finding_sync_summary ON finding")
    op.execute("DROP FUNCTION finding_sync_summary()")
    op.execute("ALTER TABLE finding ADD CONSTRAINT ck_finding_summary_not_null CHECK (summary IS NOT NULL) NOT VALID")
    op.execute("ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_summary_not_null")
    op.alter_column("finding", "summary", existing_type=sa.Text, nullable=False)
    op.drop_constraint("ck_finding_summary_not_null", "finding", type_="check")
    op.drop_column("finding", "title")""")
    report = check(tmp_path, contract=contract)
    assert "no_read_under_lock" in only_failures(report)
    assert "not_null_without_scan" not in only_failures(report)
    text = message(report, "no_read_under_lock")
    assert "In contract, `ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_summary_not_null` read " in text, text
    assert "while holding AccessExclusiveLock on finding" in text and "same transaction" in text
    assert "every query on finding, reads included" in text, text


def test_at_a_tenth_of_the_data_the_solution_passes_and_one_transaction_fails(tmp_path, monkeypatch):
    """The applications' rows come from the data, and the verdicts from facts that hold at any size."""
    monkeypatch.setenv("WORKBOOK_PROOF_SCALE", "0.1")  # the check replays on copies of 100,000 findings
    report = base.check("07", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert "100,000 titles" in message(report, "values_survive")
    # In autocommit, one statement: no strong lock, but every row locked until it commits.
    start, end = EXPAND.index("    bind = op.get_bind()"), EXPAND.index("def downgrade")
    expand = EXPAND[:start] + ("    with op.get_context().autocommit_block():\n"
                               '        op.execute("UPDATE finding SET summary = title")\n\n\n') + EXPAND[end:]
    report = check(tmp_path, expand)
    assert only_failures(report) == {"writes_in_batches", "downgrades_restore", "upgrade_again"}, report
    text = message(report, "writes_in_batches")
    assert "`UPDATE finding SET summary = title` (holding " in text and "RowExclusiveLock on finding)" in text, text
    assert "AccessExclusiveLock" not in text
    assert "every row of the table" in text


def test_set_not_null_with_a_full_scan(tmp_path):
    contract = CONTRACT.replace('        _not_null("summary")\n',
                                '        op.alter_column("finding", "summary", existing_type=sa.Text, nullable=False)\n')
    report = check(tmp_path, contract=contract, **{"models.py": BEFORE_SIX})
    assert only_failures(report) >= {"not_null_without_scan"}
    assert "read every finding" in message(report, "not_null_without_scan")
    assert "models_match" not in only_failures(report), message(report, "models_match")


def test_a_rollback_in_one_transaction_is_judged_as_the_deploy_is(tmp_path):
    """Contract's downgrade refills title in Alembic's one transaction, under its ADD COLUMN's lock, while the new code runs."""
    contract = replace_function(CONTRACT, "downgrade", """\
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.add_column("finding", sa.Column("title", sa.Text, nullable=True))
    op.execute(SYNC)
    op.execute("CREATE TRIGGER finding_sync_summary BEFORE INSERT OR UPDATE ON finding "
               "FOR EACH ROW EXECUTE FUNCTION finding_sync_summary()")
    op.execute("UPDATE finding SET title = summary")
    op.alter_column("finding", "title", existing_type=sa.Text, nullable=False)
    op.alter_column("finding", "summary", existing_type=sa.Text, nullable=True)""")
    report = check(tmp_path, contract=contract)
    assert only_failures(report) == {"downgrades_restore"}, report
    text = message(report, "downgrades_restore")
    assert "In contract's downgrade, `UPDATE finding SET title = summary` read " in text, text
    assert "while holding AccessExclusiveLock on finding" in text


def test_a_rollback_whose_set_not_null_scans(tmp_path):
    contract = CONTRACT.replace('        _not_null("title")\n',
                                '        op.alter_column("finding", "title", existing_type=sa.Text, nullable=False)\n')
    report = check(tmp_path, contract=contract)
    assert only_failures(report) == {"downgrades_restore"}, report
    text = message(report, "downgrades_restore")
    assert "In contract's downgrade, `ALTER TABLE finding ALTER COLUMN title SET NOT NULL` read every finding" in text, text
