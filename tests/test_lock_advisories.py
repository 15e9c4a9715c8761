"""The lock advisories prove their property live: a DDL behind a held lock gives up, a drop's lock mode."""
from conftest import make_track, message, outcomes, revision
from workbook.checks import base
from workbook.manifest import ROOT

CREATE = "op.create_index('ix_finding_severity', 'finding', ['severity'], postgresql_concurrently=True)"


def ex01(tmp_path, timeout_statement: str, downgrade: str):
    upgrade = f"""
        with op.get_context().autocommit_block():
            op.execute("{timeout_statement}")
            {CREATE}
        """
    return base.check("01", make_track(tmp_path, **{"01_add_index": revision(
        "ex01_add_index", "baseline", upgrade, downgrade)}))


def test_set_local_inside_an_autocommit_block_is_ignored_and_the_message_says_why(tmp_path):
    report = ex01(tmp_path, "SET LOCAL lock_timeout = '1s'", """
        with op.get_context().autocommit_block():
            op.drop_index('ix_finding_severity', table_name='finding', postgresql_concurrently=True)
        """)
    assert report.status == base.PASSED  # an advisory does not block a pass
    assert outcomes(report)["lock_timeout"] == base.FAILED
    text = message(report, "lock_timeout")
    assert "still waiting" in text and "no lock_timeout was in effect" in text
    assert "SET LOCAL can only be used in transaction blocks" in text
    assert outcomes(report)["concurrent_drop"] == base.PASSED


def test_set_inside_an_autocommit_block_gives_up_and_a_plain_drop_is_seen_in_pg_locks(tmp_path):
    report = ex01(tmp_path, "SET lock_timeout = '1s'",
                  "op.drop_index('ix_finding_severity', table_name='finding')")
    assert outcomes(report)["lock_timeout"] == base.PASSED
    assert "gave up after 1." in message(report, "lock_timeout")
    assert outcomes(report)["concurrent_drop"] == base.FAILED
    text = message(report, "concurrent_drop")
    assert "AccessExclusiveLock" in text and "wait for the open SELECT" in text


def test_set_local_in_a_transactional_revision_gives_up():
    report = base.check("02", ROOT / "solutions")
    assert outcomes(report)["lock_timeout"] == base.PASSED
    assert "lead locked by another session" in message(report, "lock_timeout")
    assert "lock_not_available" in message(report, "lock_timeout")


def test_a_statement_timeout_that_fires_first_is_not_a_lock_timeout(tmp_path):
    report = base.check("02", make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index", """
        op.execute("SET LOCAL statement_timeout = '1s'")
        op.execute("SET LOCAL lock_timeout = '3s'")
        op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False, server_default='medium'))
        """, "op.drop_column('lead', 'priority')")}))
    assert outcomes(report)["lock_timeout"] == base.FAILED
    assert "statement timeout" in message(report, "lock_timeout")
