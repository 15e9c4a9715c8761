"""Exercise 2's check: each wrong answer fails on the criterion it breaks, with a message that says so."""
from conftest import make_track, message, only_failures, outcomes, revision, rows
from workbook.checks import base
from workbook.manifest import ROOT

REV, DOWN = "ex02_column_default", "ex01_add_index"
DROP = "op.drop_column('lead', 'priority')"


def check_with(tmp_path, upgrade, downgrade=DROP):
    return base.check("02", make_track(tmp_path, **{"02_column_default": revision(REV, DOWN, upgrade, downgrade)}))


def test_solution_passes_every_criterion():
    report = base.check("02", ROOT / "solutions")
    assert report.status == base.PASSED
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(stub_track):
    assert base.check("02", stub_track).status == base.NOT_ATTEMPTED


def test_python_side_default_is_recognised(tmp_path):
    report = check_with(tmp_path, "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False, default='medium'))")
    assert report.status == base.FAILED
    text = message(report, "column_shape")
    assert "contains null values" in text and "server_default" in text


def test_nullable_without_default(tmp_path):
    report = check_with(tmp_path, "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=True))")
    assert {"column_shape", "existing_rows", "insert_default"} <= only_failures(report)
    assert "allows NULL" in message(report, "column_shape")
    assert "read NULL" in message(report, "existing_rows")
    assert outcomes(report)["no_rewrite"] == base.PASSED


def test_wrong_default_value(tmp_path):
    report = check_with(tmp_path, "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False, server_default='normal'))")
    assert {"column_shape", "existing_rows", "insert_default"} == only_failures(report)
    assert "'normal'" in message(report, "column_shape")
    assert f"{rows('02')['lead']:,} read normal" in message(report, "existing_rows")


def test_downgrade_that_does_nothing(tmp_path):
    report = check_with(tmp_path, "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False, server_default='medium'))", "pass")
    assert "downgrade_restores" in only_failures(report)
    assert "priority" in message(report, "downgrade_restores")
    assert outcomes(report)["no_rewrite"] == base.PASSED


def test_volatile_default_rewrites_the_table(tmp_path):
    report = check_with(tmp_path, """
        op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False,
                      server_default=sa.text("CASE WHEN random() < 2 THEN 'medium' END")))
        """)
    assert "no_rewrite" in only_failures(report)
    assert "rewritten" in message(report, "no_rewrite") and "volatile" in message(report, "no_rewrite")
    assert outcomes(report)["existing_rows"] == base.PASSED


def test_backfill_in_three_steps_is_a_rewrite_of_every_row(tmp_path):
    report = check_with(tmp_path, """
        op.add_column('lead', sa.Column('priority', sa.String(20), nullable=True))
        op.execute("UPDATE lead SET priority = 'medium'")
        op.alter_column('lead', 'priority', nullable=False, server_default='medium')
        """)
    assert only_failures(report) == {"no_rewrite"}
    n = rows("02")["lead"]
    assert f"{n:,} of {n:,} existing leads were written again" in message(report, "no_rewrite")
