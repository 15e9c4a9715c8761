"""Every failure ends in a verdict: a revision that hangs, loops, waits on a lock or drops a table
gets a one-line answer within its deadline, and leaves no scratch database or backend behind."""
import json
import time

import pytest

from conftest import make_track, message, revision, run_cli, scratch_left
from workbook.checks import base

DEADLINE = 6
HANGS = {
    "sleeps for an hour": "op.execute('SELECT pg_sleep(3600)')",
    "loops in Python": "while True:\n    pass",
    "sleeps in Python": "import time\ntime.sleep(3600)",
    # A second session takes lead's lock and keeps it; the revision's own ALTER waits for it.
    "waits on a lock another session holds": """
        other = op.get_bind().engine.connect()
        other.exec_driver_sql('LOCK TABLE lead IN ACCESS EXCLUSIVE MODE')
        op.add_column('lead', sa.Column('priority', sa.String(20), server_default='medium', nullable=False))
        """,
}


@pytest.mark.serial  # a 6 s deadline that must end in the upgrade: run alone, after make test's workers
@pytest.mark.parametrize("case", HANGS)
def test_a_revision_that_never_finishes_is_stopped_with_a_verdict(tmp_path, case):
    track = make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index", HANGS[case], "op.drop_column('lead', 'priority')")})
    start = time.monotonic()
    report = base.check("02", track, deadline=DEADLINE)
    took = time.monotonic() - start
    assert report.status == base.FAILED
    first = report.criteria[0]
    assert first.id == "deadline"
    assert first.message.startswith(f"Stopped after {DEADLINE} s while running your upgrade to ex02_column_default")
    assert "a loop that never advances" in first.message and "a lock that is never granted" in first.message
    assert took < DEADLINE + 10, took
    assert scratch_left() == []


DROP_FINDING = "op.drop_table('finding')"


@pytest.mark.parametrize("number, rev, down", [("01", "ex01_add_index", "baseline"),
                                               ("03", "ex03_data_migration", "ex02_column_default")])
def test_a_revision_that_drops_finding_gets_a_verdict_not_a_traceback(tmp_path, number, rev, down):
    name = {"01": "01_add_index", "03": "03_data_migration"}[number]
    track = make_track(tmp_path, **{name: revision(rev, down, DROP_FINDING, "pass")})
    proc = run_cli("check", number, "--json", env={"WORKBOOK_TRACK": str(track)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed"
    first = doc["criteria"][0]
    assert first["id"] == "replay"
    assert 'relation "finding" does not exist' in first["message"]
    assert "drop or rename something" in first["message"]
    assert scratch_left() == []


def test_a_misspelt_evidence_key_is_an_error_not_none():
    ev = base.Evidence(upgrade=base.Step(True))
    with pytest.raises(AttributeError, match="no evidence named 'upgarde'"):
        ev.upgarde

    @base.criterion("typo", "A judge with a typo.")
    def typo(ev):
        return "fine" if ev.upgarde is None else "also fine"

    assert base._judge(typo, ev).outcome == base.ERROR


def test_a_judge_that_fails_makes_the_report_an_error(monkeypatch, tmp_path):
    from workbook.checks import ex02_column_default as ex02

    @base.criterion("broken", "A judge that reads evidence nobody gathered.")
    def broken(ev):
        return ev.nothing_like_this

    monkeypatch.setattr(ex02, "CRITERIA", ex02.CRITERIA + [broken])
    report = base.check("02", make_track(tmp_path))
    assert report.status == base.ERROR
    assert "no evidence named 'nothing_like_this'" in message(report, "broken")
