"""Exercise 1's check: the solution passes, the stub is not attempted, each wrong answer fails for its reason."""
import pytest

from conftest import make_track, message, only_failures, outcomes, revision
from workbook.checks import base
from workbook.manifest import ROOT

REV, DOWN = "ex01_add_index", "baseline"


def check(track):
    return base.check("01", track)


def test_solution_passes_every_criterion():
    report = check(ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(stub_track):
    report = check(stub_track)
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "index_exists")


def test_plain_create_index_blocks_writers(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(
        REV, DOWN, "op.create_index('ix_finding_severity', 'finding', ['severity'])",
        "op.drop_index('ix_finding_severity', table_name='finding')")})
    report = check(track)
    assert only_failures(report) == {"writers_not_blocked"}
    assert "ShareLock" in message(report, "writers_not_blocked")
    assert "open UPDATE on finding, the upgrade asked for ShareLock and had to wait for it" in message(
        report, "writers_not_blocked")


def test_seeds_concurrently_without_autocommit_block_is_explained(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(
        REV, DOWN,
        'op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_finding_severity ON finding (severity)")',
        'op.execute("DROP INDEX IF EXISTS ix_finding_severity")')})
    report = check(track)
    assert report.status == base.FAILED
    text = message(report, "index_exists")
    assert "cannot run inside a transaction block" in text
    assert "autocommit_block" in text and "01_add_index.py, line" in text


def test_index_on_the_wrong_column(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(
        REV, DOWN,
        """
        with op.get_context().autocommit_block():
            op.create_index('ix_finding_severity', 'finding', ['status'], postgresql_concurrently=True)
        """,
        "op.drop_index('ix_finding_severity', table_name='finding')")})
    report = check(track)
    assert "index_exists" in only_failures(report)
    assert "finding(status)" in message(report, "index_exists")
    assert "planner_uses_it" in only_failures(report)


def test_downgrade_that_leaves_the_index_behind(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(
        REV, DOWN,
        """
        with op.get_context().autocommit_block():
            op.create_index('ix_finding_severity', 'finding', ['severity'], postgresql_concurrently=True)
        """,
        "pass")})
    report = check(track)
    assert "downgrade_restores" in only_failures(report)
    assert "ix_finding_severity" in message(report, "downgrade_restores")
    assert outcomes(report)["writers_not_blocked"] == base.PASSED


def test_syntax_error_names_file_and_line(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(REV, DOWN, "op.create_index(", "pass")})
    report = check(track)
    assert report.status == base.FAILED
    assert report.criteria[0].id == "loads"
    assert "01_add_index.py, line" in report.criteria[0].message


@pytest.mark.parametrize("down", ["basline", "ex02_column_default", None])
def test_wrong_down_revision_is_named(tmp_path, down):
    track = make_track(tmp_path, **{"01_add_index": revision(REV, down, "pass", "pass")})
    report = check(track)
    assert report.status == base.FAILED
    assert report.criteria[0].message.endswith("Set down_revision = 'baseline'.")
    assert f"says down_revision = {down!r}" in report.criteria[0].message


def test_changed_revision_id_is_named(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision("ex01_index", DOWN, "pass", "pass")})
    text = check(track).criteria[0].message
    assert "says revision = 'ex01_index'" in text and "'ex01_add_index'" in text


def test_another_broken_file_in_the_history_is_reported(tmp_path):
    track = make_track(tmp_path, **{"99_extra": revision("extra", "nowhere", "pass", "pass")})
    text = check(track).criteria[0].message
    assert "could not read the revision history" in text


def test_down_revision_that_skips_an_exercise(tmp_path):
    track = make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "baseline", "pass", "pass")})
    report = base.check("02", track)
    assert report.status == base.FAILED
    assert "says down_revision = 'baseline'" in report.criteria[0].message
    assert "Set down_revision = 'ex01_add_index'" in report.criteria[0].message


def test_two_heads_are_named(tmp_path):
    track = make_track(tmp_path, **{"99_extra": revision("extra_head", "ex02_column_default", "pass", "pass")})
    report = check(track)
    assert report.status == base.FAILED
    text = report.criteria[0].message
    assert "2 heads" in text and "extra_head" in text and "99_extra.py" in text


def test_upgrade_that_raises_names_the_line(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(
        REV, DOWN, "raise RuntimeError('half-written migration')", "pass")})
    report = check(track)
    text = message(report, "index_exists")
    assert "RuntimeError: half-written migration" in text and "line 9" in text


def test_missing_table_is_named(tmp_path):
    track = make_track(tmp_path, **{"01_add_index": revision(
        REV, DOWN, "op.create_index('ix_finding_severity', 'findings', ['severity'])", "pass")})
    text = message(check(track), "index_exists")
    assert 'relation "findings" does not exist' in text and "table and column names" in text
