"""Exercise 3's check: the seeds' pair looks right and is caught only by the exact-rollback criterion."""
import re

from conftest import make_track, message, only_failures, outcomes, revision, rows
from workbook.checks import base
from workbook.manifest import ROOT

REV, DOWN = "ex03_data_migration", "ex02_column_default"
UP = "op.execute(\"UPDATE finding SET severity = 'informational' WHERE severity = 'info'\")"
NAIVE_DOWN = "op.execute(\"UPDATE finding SET severity = 'info' WHERE severity = 'informational'\")"


def check_with(tmp_path, upgrade, downgrade):
    return base.check("03", make_track(tmp_path, **{"03_data_migration": revision(REV, DOWN, upgrade, downgrade)}))


def test_solution_passes_every_criterion():
    report = base.check("03", ROOT / "solutions")
    assert report.status == base.PASSED
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(stub_track):
    assert base.check("03", stub_track).status == base.NOT_ATTEMPTED


def test_seeds_pair_fails_only_the_exact_rollback(tmp_path):
    report = check_with(tmp_path, UP, NAIVE_DOWN)
    assert only_failures(report) == {"downgrade_exact"}
    text = message(report, "downgrade_exact")
    # The seed's pre-existing 'informational' rows (one in 2,500), plus the ones the check scattered.
    seeded = rows("03")["finding"] // 2_500
    damaged = int(re.search(r"([\d,]+) rows say 'info' but said 'informational'", text).group(1).replace(",", ""))
    assert seeded < damaged < seeded + 300
    assert outcomes(report)["batched"] == base.FAILED  # advisory: one big transaction


def test_empty_downgrade(tmp_path):
    report = check_with(tmp_path, UP, "pass")
    assert only_failures(report) == {"downgrade_exact"}
    assert "say 'informational' but said 'info'" in message(report, "downgrade_exact")


def test_where_with_the_wrong_spelling(tmp_path):
    report = check_with(tmp_path, UP.replace("'info'", "'Info'"), NAIVE_DOWN)
    assert {"no_info_left", "informational_count"} <= only_failures(report)
    assert "still say 'info'; expected none. Check the WHERE clause" in message(report, "no_info_left")


def test_update_without_where(tmp_path):
    report = check_with(tmp_path, "op.execute(\"UPDATE finding SET severity = 'informational'\")", NAIVE_DOWN)
    assert "nothing_else_changed" in only_failures(report)
    assert "did not say 'info' changed severity" in message(report, "nothing_else_changed")


def test_a_downgrade_that_knows_the_seed_data_by_heart_fails(tmp_path):
    # The seed's pre-existing 'informational' rows are the ids divisible by 2,500; the check
    # respells random rows first, so knowing that is not enough.
    report = check_with(tmp_path, UP, "op.execute(\"UPDATE finding SET severity = 'info' "
                        "WHERE severity = 'informational' AND id % 2500 <> 0\")")
    assert "downgrade_exact" in only_failures(report)


def test_a_helper_table_left_in_public_is_reported(tmp_path):
    report = check_with(tmp_path, """
        op.execute("CREATE TABLE finding_info_backup AS SELECT id FROM finding WHERE severity = 'info'")
        op.execute("UPDATE finding SET severity = 'informational' WHERE severity = 'info'")
        """, """
        op.execute("UPDATE finding SET severity = 'info' WHERE id IN (SELECT id FROM finding_info_backup)")
        op.execute("DROP TABLE finding_info_backup")
        """)
    assert only_failures(report) == {"models_match"}
    assert "extra table finding_info_backup" in message(report, "models_match")


def test_an_update_that_also_touches_another_column(tmp_path):
    # Compared with the copy taken before, column by column: a changed title is seen on its own row.
    report = check_with(tmp_path, "op.execute(\"UPDATE finding SET severity = 'informational', "
                        "title = upper(title) WHERE severity = 'info'\")", NAIVE_DOWN)
    assert {"nothing_else_changed", "downgrade_exact"} <= only_failures(report)
    assert "rows changed in other columns (e.g. id " in message(report, "nothing_else_changed")
    assert "SET only severity" in message(report, "nothing_else_changed")
    assert "rows changed in other columns" in message(report, "downgrade_exact")


def test_one_limit_batch_and_no_loop(tmp_path):
    # The check's copy holds over 100,000 'info' rows (its PROOF_SCALE): more than this batch.
    report = check_with(tmp_path, "op.execute(\"UPDATE finding SET severity = 'informational' WHERE id IN "
                        "(SELECT id FROM finding WHERE severity = 'info' LIMIT 100000)\")", NAIVE_DOWN)
    assert {"no_info_left", "informational_count"} <= only_failures(report)
    assert "renamed 100,000 of them" in message(report, "no_info_left")
    assert "one LIMIT batch is not enough" in message(report, "no_info_left")
    # One statement, one transaction: the rows it never reached do not count as other batches.
    assert outcomes(report)["batched"] == base.FAILED
    assert "All 100,000 renamed rows were written by one transaction" in message(report, "batched")
