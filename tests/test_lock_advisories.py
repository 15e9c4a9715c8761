"""The lock advisories judge what the server reports: the lock_timeout in force for each schema
change (checks.statement_log, common.lock_timeout), a drop's lock mode (pg_locks); and the
recorded lock_timeout is shown live to be the one that makes a DDL give up."""
import threading
import time

import pytest
import sqlalchemy as sa

from conftest import make_track, message, outcomes, revision
from workbook import locks, manifest, templates
from workbook.checks import base, common, statement_log
from workbook.manifest import ROOT

CREATE = "op.create_index('ix_finding_severity', 'finding', ['severity'], postgresql_concurrently=True)"
ADD = "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False, server_default='medium'))"


def ex01_upgrade(timeout_statement: str) -> str:
    return f"""
        with op.get_context().autocommit_block():
            op.execute("{timeout_statement}")
            {CREATE}
        """


def ex01(tmp_path, timeout_statement: str, downgrade: str):
    return base.check("01", make_track(tmp_path, **{"01_add_index": revision(
        "ex01_add_index", "baseline", ex01_upgrade(timeout_statement), downgrade)}))


def ex02(tmp_path, upgrade: str):
    return base.check("02", make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index", upgrade, "op.drop_column('lead', 'priority')")}))


def test_set_local_inside_an_autocommit_block_is_ignored_and_the_message_says_why(tmp_path):
    report = ex01(tmp_path, "SET LOCAL lock_timeout = '1s'", """
        with op.get_context().autocommit_block():
            op.drop_index('ix_finding_severity', table_name='finding', postgresql_concurrently=True)
        """)
    assert report.status == base.PASSED  # an advisory does not block a pass
    assert outcomes(report)["lock_timeout"] == base.FAILED
    text = message(report, "lock_timeout")
    # CREATE INDEX CONCURRENTLY counts: its SHARE UPDATE EXCLUSIVE waits behind an ACCESS EXCLUSIVE holder.
    assert "CREATE INDEX CONCURRENTLY" in text and "ShareUpdateExclusiveLock on finding" in text
    assert "lock_timeout = 0 (none)" in text
    assert f'warned "{common.SET_LOCAL_IGNORED}" at `SET LOCAL lock_timeout' in text
    assert "write SET lock_timeout and RESET it" in text
    assert outcomes(report)["concurrent_drop"] == base.PASSED


def test_set_inside_an_autocommit_block_is_in_force_and_a_plain_drop_is_seen_in_pg_locks(tmp_path):
    report = ex01(tmp_path, "SET lock_timeout = '1s'",
                  "op.drop_index('ix_finding_severity', table_name='finding')")
    assert outcomes(report)["lock_timeout"] == base.PASSED
    assert "on finding, with lock_timeout = 1s in force for it" in message(report, "lock_timeout")
    assert outcomes(report)["concurrent_drop"] == base.FAILED
    text = message(report, "concurrent_drop")
    assert "AccessExclusiveLock" in text and "wait for the open SELECT" in text


def test_set_local_in_a_transactional_revision_is_in_force():
    report = base.check("02", ROOT / "solutions")
    assert outcomes(report)["lock_timeout"] == base.PASSED
    assert "on lead, with lock_timeout = 2s in force for it" in message(report, "lock_timeout")


@pytest.mark.parametrize("upgrade, said", [
    pytest.param(ADD, "with lock_timeout = 0 (none) in force", id="none"),
    pytest.param(f"""
        op.execute("SET LOCAL statement_timeout = '1s'")
        op.execute("SET LOCAL lock_timeout = '3s'")
        {ADD}
        """, "with lock_timeout = 3s and statement_timeout = 1s: behind another session's lock the statement "
             "timeout would end its wait first", id="statement_timeout first"),
    pytest.param(f"""
        {ADD}
        op.execute("SET LOCAL lock_timeout = '2s'")
        """, "A lock_timeout (2s) came into force only after this statement", id="set after the DDL"),
    pytest.param(f"""
        op.execute("SET LOCAL lock_timeout = '2s'")
        op.execute("RESET lock_timeout")
        {ADD}
        """, "Earlier statements ran with lock_timeout = 2s, but it was 0 again by this one", id="reset before"),
    pytest.param(f"""
        op.execute("SET LOCAL lock_timeout = '1min'")
        {ADD}
        """, "with lock_timeout = 1min: behind another session's lock it would wait up to 1min", id="too long"),
    pytest.param("""
        op.execute("SET LOCAL lock_timeout = '2s'; ALTER TABLE lead ADD COLUMN priority varchar(20) NOT NULL DEFAULT 'medium'")
        """, "in one string that also changed lock_timeout (0 (none) before it, 2s after it)", id="one string"),
])
def test_each_wrong_lock_timeout_fails_for_its_own_reason(tmp_path, upgrade, said):
    report = ex02(tmp_path, upgrade)
    assert report.status == base.PASSED, report  # an advisory: the column itself is right
    assert outcomes(report)["lock_timeout"] == base.FAILED
    text = message(report, "lock_timeout")
    assert "ALTER TABLE lead ADD COLUMN priority" in text and "AccessExclusiveLock on lead" in text
    assert said in text
    reasons = ["statement timeout would end", "came into force only after", "Earlier statements",
               "wait up to", "in one string", "warned"]
    assert [w for w in reasons if w in text] == [w for w in reasons if w in said], text  # its own reason only


def test_no_lock_timeout_says_what_would_queue(tmp_path):
    text = message(ex02(tmp_path, ADD), "lock_timeout")
    assert "every later query on lead, reads included, would queue behind it" in text
    assert "SET LOCAL lock_timeout = '2s'" in text  # the fix


def upgrade_behind_a_held_lock(tmp_path, timeout_statement: str) -> dict:
    """Exercise 1's upgrade under statement_log while another session holds ACCESS EXCLUSIVE on finding.

    Once pg_locks shows the CREATE INDEX CONCURRENTLY waiting, the holder keeps its lock `hold`
    seconds more, then lets go. What the replay recorded, whether it was still running when the
    holder let go, and its step.
    """
    ex = manifest.get("01")
    track = make_track(tmp_path, **{"01_add_index": revision(
        ex.revision, ex.down_revision, ex01_upgrade(timeout_statement), "pass")})
    out: dict = {}
    with templates.scratch(ex.start, base.replay_scale(ex)) as database:
        r = base.Replay(ex, track, database)
        eng = r.engine()
        with eng.connect() as holder, eng.connect() as mig, eng.connect() as writer, \
                eng.connect() as watcher, eng.connect() as looker:
            pid = mig.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            mig.commit()
            holder.execute(sa.text("LOCK TABLE finding IN ACCESS EXCLUSIVE MODE"))

            def run() -> None:
                out["step"], out["log"] = statement_log.replay(
                    r, mig, writer, watcher, "upgrade", ex.revision, ["finding"], ["finding"])

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            for _ in range(3000):  # until pg_locks shows the DDL waiting for the holder (or the replay ends)
                out["waited"] = any(not granted for _, _, granted, _ in locks.on_tables(looker, pid, ["finding"]))
                if out["waited"] or not thread.is_alive():
                    break
                time.sleep(0.01)
            thread.join(3)  # three times the 1s the upgrades below set, whether or not in force
            out["ended_while_held"] = not thread.is_alive()
            holder.rollback()
            thread.join(60)
        eng.dispose()
    return out


def test_the_recorded_lock_timeout_is_the_one_that_makes_the_ddl_give_up(tmp_path):
    """Recorded 1s before the DDL: behind the held lock, that DDL ended with a lock timeout while
    the lock was still held."""
    out = upgrade_behind_a_held_lock(tmp_path, "SET lock_timeout = '1s'")
    assert out["waited"] and out["ended_while_held"], out
    assert not out["step"].ok and "canceling statement due to lock timeout" in out["step"].raw
    ddl = out["log"][-1]
    assert ddl["sql"].startswith("CREATE INDEX CONCURRENTLY")
    assert ddl["lock_timeout"] == 1000
    assert ("finding", "ShareUpdateExclusiveLock") in ddl["waited"]


def test_a_recorded_zero_is_a_ddl_that_waits_as_long_as_the_lock_is_held(tmp_path):
    """SET LOCAL in an autocommit block: recorded 0, and the DDL waited until the holder let go."""
    out = upgrade_behind_a_held_lock(tmp_path, "SET LOCAL lock_timeout = '1s'")
    assert out["waited"] and not out["ended_while_held"], out
    assert out["step"].ok, out["step"].error
    ddl = next(e for e in out["log"] if e["sql"].startswith("CREATE INDEX CONCURRENTLY"))
    assert ddl["lock_timeout"] == 0
    assert ("finding", "ShareUpdateExclusiveLock") in ddl["waited"]
    said = [n for s in ddl["set_before"] for n in s["notices"]]
    assert any(common.SET_LOCAL_IGNORED in n for n in said), said
