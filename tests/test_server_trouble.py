"""The server's trouble is never the learner's mistake: a replay the server stopped (too many
connections, a cancel by an administrator) ends in ERROR, "your answer was not judged", never
FAILED and never remembered; the learner's own statement_timeout stays their FAILED. On a shared
server, checks take turns (admission) and the deadline counts only the replay, not the wait."""
import json
import socket
import os
import threading
import time

import psycopg
import pytest

from conftest import make_track, revision, run_cli
from test_classroom import _server_answers, drop_leftovers
from workbook import admission, classroom, db, manifest, marks, templates, verdicts
from workbook.checks import base

TAG = f"wbadm{os.getpid()}"  # the role, its database, and every template or copy it makes
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MARK = f"/* {TAG} */"
BOUND = 120  # seconds an event may take to come, on a busy machine; never a verdict's timing

needs_server = pytest.mark.skipif(not _server_answers() and not os.environ.get("CI"),
                                  reason="no PostgreSQL on 127.0.0.1:5432")


def sleeper(upgrade: str) -> str:
    return revision("ex03_data_migration", "ex02_column_default", upgrade, "pass")


def wait_for(find, what: str):
    end = time.monotonic() + BOUND
    while time.monotonic() < end:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {BOUND} s")


def in_thread(fn) -> tuple[threading.Thread, dict]:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(report=fn()), daemon=True)
    thread.start()
    return thread, box


def test_a_cancel_by_an_administrator_is_the_servers_trouble(tmp_path):
    track = make_track(tmp_path, **{"03_data_migration": sleeper(f"op.execute('SELECT pg_sleep(3600) {MARK}')")})
    thread, box = in_thread(lambda: base.check("03", track, deadline=BOUND * 3))
    with db.admin() as conn:
        pids = wait_for(lambda: conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (f"%pg_sleep(3600) {MARK}%",)).fetchall(), "the revision's sleep")
        for (pid,) in pids:
            conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
    thread.join(BOUND)
    report = box["report"]
    assert report.status == base.ERROR, report
    first = report.criteria[0]
    assert first.id == "server" and first.outcome == base.ERROR
    assert first.message.startswith("The server was busy (canceling statement due to user request)")
    assert "your answer was not judged" in first.message
    assert all(r.outcome == base.ERROR for r in report.criteria)


def test_the_learners_own_statement_timeout_stays_their_failure(tmp_path):
    track = make_track(tmp_path, **{"03_data_migration": sleeper(
        "op.execute(\"SET statement_timeout = '1s'\")\nop.execute('SELECT pg_sleep(60)')")})
    report = base.check("03", track, deadline=BOUND * 3)
    assert report.status == base.FAILED, report
    said = " ".join(r.message for r in report.criteria)
    assert "canceling statement due to statement timeout" in said
    assert "server was busy" not in said


@pytest.mark.serial  # a 5 s deadline: run alone, after make test's workers
@pytest.mark.parametrize("stalled, status", [("copying every finding before the upgrade", base.ERROR),
                                              ("running your upgrade to ex03_data_migration", base.FAILED)])
def test_a_deadline_outside_the_learners_phases_is_the_servers(stalled, status):
    """The parent sees the deadline pass while the check is in `stalled` (its listener holds the
    parent past the deadline there): the check's own phase gives ERROR, the learner's FAILED."""
    deadline = 5

    def hear(text: str, learner: bool) -> None:
        if text == stalled:
            time.sleep(deadline + 1)

    with base.listening(hear):
        report = base.check("03", deadline=deadline)
    assert report.status == status, report
    first = report.criteria[0]
    if status == base.ERROR:
        assert first.id == "server"
        assert first.message.startswith(f"The server was too slow: after {deadline} s the check itself "
                                        f"was still {stalled}")
    else:
        assert first.id == "deadline" and "a loop that never advances" in first.message


# --- a shared server: a role of this test's own on 127.0.0.1:5432 ------------------------------

@pytest.fixture(scope="module")
def server():
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{TAG}" LOGIN CREATEDB')
        conn.execute(f'CREATE DATABASE "{TAG}" OWNER "{TAG}"')
        try:
            yield conn
        finally:
            conn.execute(f'ALTER ROLE "{TAG}" CONNECTION LIMIT -1')
            drop_leftovers(conn, TAG)


@pytest.fixture
def shared(server, monkeypatch, tmp_path):
    """This process as a learner on the shared server (WORKBOOK_DB=url), small data."""
    env = {"WORKBOOK_DB": "url", "DATABASE_URL": f"postgresql://{TAG}@127.0.0.1:5432/{TAG}",
           "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01", "WORKBOOK_TRACK": "solutions", "WORKBOOK_DATA_DIR": str(tmp_path / "data")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    db.forget()
    templates._owners.clear()
    templates.ensure_template(manifest.get("02").start)  # built before any limit is set
    yield env
    server.execute(f'ALTER ROLE "{TAG}" CONNECTION LIMIT -1')
    db.forget()
    templates._owners.clear()


@needs_server
def test_too_many_connections_is_an_error_never_remembered(server, shared):
    room = f"{TAG}_room"  # a room of one, as classroom create makes it, to see what is recorded
    server.execute(f'CREATE ROLE "{TAG}_learners" NOLOGIN')
    server.execute(f'GRANT "{TAG}_learners" TO "{TAG}"')
    server.execute(f'CREATE DATABASE "{room}"')
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{room}", autocommit=True) as c:
        c.execute(classroom.room_sql(f"{TAG}_learners"))
    marks.mark(server, TAG, "learner", classroom=room)
    server.execute(f'ALTER ROLE "{TAG}" CONNECTION LIMIT 1')  # a check needs more than one
    try:
        proc = run_cli("check", "02", "--json", env=shared)
    finally:
        server.execute(f'COMMENT ON DATABASE "{TAG}" IS NULL')
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{room}") as c:
        assert c.execute("SELECT exercise, status FROM results").fetchall() == [("02", "error")]
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "error", doc
    first = doc["criteria"][0]
    assert first["message"].startswith("The server was busy (") and "too many connections" in first["message"]
    assert "your answer was not judged" in first["message"]
    assert verdicts.recall(manifest.get("02")) is None


@needs_server
def test_a_connection_refused_in_the_middle_of_the_replay_is_an_error(server, shared, tmp_path):
    """The limit falls while the revision runs (it waits until it sees the new limit): the
    check's next connection is refused with 53300, and the verdict is the server's."""
    track = make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index", f"""
        # The wait is in the query, so it is the session's active statement nearly all the time:
        # the check's statement log asks that session a few questions after each statement.
        while not op.get_bind().exec_driver_sql(
                "SELECT rolconnlimit = 0 {MARK} FROM pg_roles, pg_sleep(0.3) WHERE rolname = current_user").scalar():
            pass
        op.add_column('lead', sa.Column('priority', sa.String(20), server_default='medium', nullable=False))
        """, "op.drop_column('lead', 'priority')")})
    thread, box = in_thread(lambda: base.check("02", track, deadline=BOUND * 3))
    wait_for(lambda: server.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                                    (f"%{MARK}%",)).fetchone(), "the revision's wait")
    server.execute(f'ALTER ROLE "{TAG}" CONNECTION LIMIT 0')
    thread.join(BOUND * 3)
    report = box["report"]
    assert report.status == base.ERROR, report
    assert report.criteria[0].message.startswith("The server was busy ("), report.criteria[0]
    assert "too many connections" in report.criteria[0].message


@needs_server
@pytest.mark.serial  # slot 0, which make test's workers take over a URL, must be free: run alone
def test_a_check_waits_its_turn_and_its_deadline_starts_after(server, shared, monkeypatch):
    """K = 1 and the test holds the only slot for longer than the check's deadline: the check shows
    the checks ahead of it, waits, and passes once the slot is free."""
    monkeypatch.setenv("WORKBOOK_ADMISSION", "1")
    deadline = 15  # well above check 02's replay on a busy machine; the wait below outlasts it
    heard: list[str] = []
    waiting = threading.Event()

    def hear(text: str, learner: bool) -> None:
        heard.append(text)
        if text.startswith("waiting for the server"):
            waiting.set()

    assert server.execute("SELECT pg_try_advisory_lock(%s::int, 0)", (admission.SLOTS,)).fetchone()[0]
    try:
        with base.listening(hear):
            thread, box = in_thread(lambda: base.check("02", deadline=deadline))
            assert waiting.wait(BOUND), heard
            held = time.monotonic()
            while time.monotonic() - held < deadline + 5:  # the wait outlasts the deadline
                assert thread.is_alive() and "report" not in box
                time.sleep(1)
    finally:
        server.execute("SELECT pg_advisory_unlock(%s::int, 0)", (admission.SLOTS,))
    thread.join(BOUND * 3)
    assert "waiting for the server: 1 check ahead" in heard
    assert box["report"].status == base.PASSED, [r.message for r in box["report"].criteria]


@needs_server
def test_a_learners_connection_limit_fits_a_check_and_two_more_sessions(server, shared):
    """classroom's learner roles get CONNECTIONS; check 05 (the most sessions at once, with
    01 and 07) passes with two fewer, which leaves the notebook's %sql and a terminal theirs."""
    role = f"{TAG}_limit"
    classroom.login_role(server, role, "not-used", "pg_monitor")
    assert server.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0] \
        == classroom.CONNECTIONS
    server.execute(f'ALTER ROLE "{TAG}" CONNECTION LIMIT {classroom.CONNECTIONS - 2}')
    report = base.check("05")
    assert report.status == base.PASSED, report


def test_an_error_in_the_room_is_grey_and_never_stuck():
    from workbook import dashboard
    cell = {"status": base.ERROR, "criterion": None, "message": "", "statement": "", "minutes": 90}
    page = dashboard.as_html({"classroom": "c", "at": None, "exercises": ["01"], "passed": {"01": 0},
                              "learners": [{"learner": "a", "exercises": {"01": cell}, "last_check": None}],
                              "held_back": {"01": []}}, stuck_minutes=10)
    assert "<td class='error'" in page and "not judged" in page and "stuck" not in page.split("<table")[1]


def test_a_simulated_application_the_server_refused_is_no_error_of_the_deploy():
    """Exercise 7's and 10's applications: a connection the server refuses (here nobody listens)
    is the server's trouble, so the check judges nothing rather than blame the revision."""
    from workbook import app
    from workbook.checks import common

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = app.App(f"postgresql://nobody@127.0.0.1:{port}/none", "old", "title", [1]).start()
    refused.stop()
    result = refused.result()
    assert result["errors"] == 0 and "refused" in result["busy"], result
    step = common.apps_busy([result])
    assert not step.ok and base._busy(base.Evidence(apps_busy=step)).startswith("the simulated application")
    assert common.apps_busy([{"busy": None}]).ok


@needs_server
def test_learners_of_two_roles_on_one_server_outside_a_class_each_get_copies_they_may_alter(server, shared, tmp_path):
    """A shared template another role built is that role's, and so are its copies' tables: a learner
    of another role builds templates of its own (templates._foreign) instead of failing every check
    with "permission denied for table lead"."""
    other = f"{TAG}_other"
    server.execute(f'CREATE ROLE "{other}" LOGIN CREATEDB')
    env = {**shared, "DATABASE_URL": f"postgresql://{other}@127.0.0.1:5432/{other}",
           "WORKBOOK_DATA_DIR": str(tmp_path / "other")}
    try:
        assert run_cli("reset", "02", env=env).returncode == 0
        for who in (env, shared):  # the shared fixture's learner built the shared templates first
            proc = run_cli("check", "02", "--json", env=who)
            assert json.loads(proc.stdout)["status"] == base.PASSED, proc.stdout[-600:]
    finally:
        run_cli("db", "remove", "--yes", env=env)
        server.execute(f'DROP ROLE IF EXISTS "{other}"')
