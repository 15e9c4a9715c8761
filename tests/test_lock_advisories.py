"""The lock advisories prove their property live: a DDL behind a held lock gives up, a drop's lock mode."""
import os
import subprocess
import sys
import time

import psycopg

from conftest import make_track, message, outcomes, revision
from workbook import db, locks, manifest, templates
from workbook.checks import base, lock_probe
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


DECOY = """
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True, application_name=sys.argv[2])
conn.execute("SET statement_timeout = '60s'")
try:
    conn.execute("ALTER TABLE lead ADD COLUMN decoy integer")
    print("done")
except psycopg.Error as exc:
    print(exc.sqlstate)
"""


def test_the_probe_watches_and_cancels_only_its_own_session_on_its_own_copy(tmp_path):
    """Learners in separate containers can share a process id, so a probe's label can be another
    check's: here a DDL on another copy of the same start, under the probe's application_name,
    waits for a lock. The probe must neither watch nor cancel it, and cancel its own upgrade,
    which waits without a lock_timeout."""
    ex = manifest.get("02")
    with templates.scratches(ex.start, 2) as (mine, other):
        info = db.ensure_ready().conninfo(other)
        with psycopg.connect(info) as holder:
            holder.execute("LOCK TABLE lead IN ACCESS EXCLUSIVE MODE")
            label = f"wb_lock_probe_{os.getpid()}"  # what the probe started below calls its own session
            decoy = subprocess.Popen([sys.executable, "-c", DECOY, info, label], stdout=subprocess.PIPE, text=True)
            try:
                for _ in range(500):
                    waiting = holder.execute("SELECT pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                                             "WHERE a.application_name = %s AND NOT l.granted", (label,)).fetchone()
                    if waiting:
                        break
                    time.sleep(0.02)
                else:
                    raise AssertionError("the decoy never waited for its lock")
                eng = db.engine(mine)
                with eng.connect() as watcher:  # the same table oid on both copies, another database
                    assert locks.on_tables(watcher, waiting[0], ["lead"]) == []
                eng.dispose()
                track = make_track(tmp_path, **{"02_column_default": revision(
                    "ex02_column_default", "ex01_add_index",
                    "op.add_column('lead', sa.Column('priority', sa.String(20), server_default='medium'))",
                    "op.drop_column('lead', 'priority')")})
                replay = base.Replay(ex, track, mine)
                lock_probe.start(replay, ["lead"], mine).join(lock_probe.STARTUP + lock_probe.SECONDS + 30)
                holder.rollback()
                said = decoy.communicate(timeout=60)[0].strip()
            finally:
                decoy.kill()
    probe = replay.evidence.lock_probe
    assert probe["cancelled"] and probe["lock"] == ("lead", "AccessExclusiveLock"), probe
    assert said == "done", f"the decoy on the other copy ended with {said!r}: the probe cancelled it"
