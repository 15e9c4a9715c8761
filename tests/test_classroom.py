"""A workshop on the PostgreSQL on 127.0.0.1:5432: three learners, each in its own database, unable
to reach the others', their checks recorded where only the instructor reads them all, a room page
in a real Chromium, and a remove that drops what create made and nothing else."""
import base64
import csv
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import psycopg
import pytest
import sqlalchemy as sa

from conftest import make_track, revision, run_cli
from test_browser import ARGS, CHROMIUM, _need_browser
from workbook import manifest, marks
from workbook.manifest import ROOT

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
TAG = f"wbc{os.getpid()}"  # every role and database this module makes starts with it
CLASS = f"{TAG}_class"


def _server_answers() -> bool:
    try:
        with sa.create_engine(f"{SERVER}/postgres").connect():
            return True
    except sa.exc.OperationalError:
        return False


pytestmark = pytest.mark.skipif(not _server_answers() and not os.environ.get("CI"),
                                reason="no PostgreSQL on 127.0.0.1:5432")


def admin_env(**extra) -> dict:
    return {"WORKBOOK_DB": "url", "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{CLASS}",
            "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01", "WORKBOOK_TRACK": "solutions", **extra}


def learner_env(url: str, **extra) -> dict:
    return {"WORKBOOK_DB": "url", "DATABASE_URL": url, "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01",
            "WORKBOOK_TRACK": "solutions", **extra}


def leftovers(conn, tag: str = TAG) -> tuple[list[str], list[str]]:
    """Databases and roles whose names start with tag, or owned by such a role (templates)."""
    roles = [r for (r,) in conn.execute(
        "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY rolname LIKE '%%learners'", (tag,))]
    owners = dict(conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall())
    dbs = [d for d in owners if d.startswith(tag) or owners[d] in roles]
    return dbs, roles


def drop_leftovers(conn, tag: str = TAG) -> None:
    """Only when a test failed before remove: still only names made with this tag."""
    dbs, roles = leftovers(conn, tag)
    for name in dbs:
        conn.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE false')
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    for role in roles:
        conn.execute(f'DROP ROLE "{role}"')


@pytest.fixture(scope="module")
def server():
    """An autocommit psycopg session on the TCP server, as db.admin() gives the workbook."""
    with connect(f"{SERVER}/postgres") as conn:
        yield conn
        drop_leftovers(conn)


@pytest.fixture(scope="module")
def learners(server, tmp_path_factory):
    out = tmp_path_factory.mktemp("class") / "learners.csv"
    names = out.with_name("names.txt")
    names.write_text("Ada Lovelace\nGrace Hopper\nEdsger Dijkstra\n")
    proc = run_cli("classroom", "create", "--names", str(names), "--csv", str(out), env=admin_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
    assert str(out) in proc.stdout
    for row in rows:  # the terminal may be on the projector: names, never a password
        assert row["name"] in proc.stdout and password(row) not in proc.stdout + proc.stderr
        assert scram_matches(verifier(server, row["role"]), password(row))
    return rows


def password(row: dict) -> str:
    return sa.engine.make_url(row["DATABASE_URL"]).password


def verifier(conn, role: str) -> str:
    return conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()[0]


def scram_matches(stored: str, password: str) -> bool:
    """The server's SCRAM-SHA-256 verifier was made from this password (RFC 5802's keys)."""
    method, iterations_salt, keys = stored.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and \
        base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key and \
        base64.b64encode(hmac.new(salted, b"Server Key", "sha256").digest()).decode() == server_key


def test_a_password_reaches_the_server_only_as_a_scram_verifier(server, tmp_path):
    """What the server may log (log_statement = ddl) is what was sent: libpq's trace of it."""
    from workbook import classroom

    role, secret = f"{TAG}_probe", "not-in-any-log-" + os.urandom(6).hex()
    trace = tmp_path / "sent.trace"
    with connect(f"{SERVER}/postgres") as conn, trace.open("w") as f:
        conn.pgconn.trace(f.fileno())
        try:
            classroom.login_role(conn, role, secret, "pg_monitor")
        finally:
            conn.pgconn.untrace()
    try:
        sent = trace.read_text()
        assert "CREATE ROLE" in sent and "SCRAM-SHA-256$" in sent and secret not in sent
        assert scram_matches(verifier(server, role), secret)
    finally:
        server.execute(f'DROP ROLE "{role}"')


def test_create_refuses_an_empty_names_file_and_a_reserved_name_before_building(server, tmp_path):
    cls = f"{TAG}_refused"
    out = tmp_path / "learners.csv"
    for text, said in (("\n  \n", "holds no names"), ("Ada\nLearners\n", "'Learners'"),
                       ("Templates\n", "'Templates'")):
        names = tmp_path / "names.txt"
        names.write_text(text)
        proc = run_cli("classroom", "create", "--names", str(names), "--csv", str(out),
                       env=admin_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{cls}"))
        assert proc.returncode == 2 and said in proc.stderr and "othing was made" in proc.stderr, proc.stderr
        assert leftovers(server, cls) == ([], []) and not out.exists()


def test_a_create_cut_short_keeps_the_passwords_it_set_and_remove_deletes_its_csv(server, tmp_path):
    """A role of someone else's stops the second learner: the first learner's row is in the CSV
    (written where create runs, by default), and remove deletes that CSV with the class."""
    cls = f"{TAG}_cut"
    env = admin_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{cls}")
    server.execute(f'CREATE ROLE "{cls}_two"')
    try:
        (tmp_path / "names.txt").write_text("One\nTwo\nThree\n")
        create = [sys.executable, "-m", "workbook", "classroom", "create", "--names", "names.txt"]
        proc = subprocess.run(create, cwd=tmp_path, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=300)
        out = tmp_path / f"{cls}-learners.csv"
        assert proc.returncode == 2 and "'Two'" in proc.stderr and str(out) in proc.stderr \
            and "remove --yes" in proc.stderr, proc.stdout + proc.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        with out.open() as f:
            rows = list(csv.DictReader(f))
        assert [r["name"] for r in rows] == ["One"]
        assert scram_matches(verifier(server, rows[0]["role"]), password(rows[0]))
        gone = run_cli("classroom", "remove", "--yes", env=env)  # from elsewhere: the mark knows the CSV
        assert gone.returncode == 0 and str(out) in gone.stdout, gone.stdout + gone.stderr
        assert not out.exists()
        assert leftovers(server, cls) == ([], [f"{cls}_two"])  # someone else's role stays
    finally:
        drop_leftovers(server, cls)


def test_the_default_csv_is_ignored_by_git():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "check-ignore", "-q", "ws2026-learners.csv"], cwd=ROOT).returncode == 0


def connect(url: str, database: str | None = None):
    u = sa.engine.make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                           dbname=database or u.database, autocommit=True)


def test_each_learner_owns_a_private_marked_database(server, learners):
    for row in learners:
        owner, acl = server.execute("SELECT pg_get_userbyid(datdba), datacl::text FROM pg_database "
                                    "WHERE datname = %s", (row["database"],)).fetchone()
        assert owner == row["role"] and acl == f"{{{row['role']}=CTc/{row['role']}}}"  # no PUBLIC entry
        mark = marks.of(server, row["database"])[1]
        assert mark["kind"] == "learner" and mark["classroom"] == CLASS and mark["name"] == row["name"]
        with connect(row["DATABASE_URL"]) as c:
            assert c.execute("SELECT current_user").fetchone()[0] == row["role"]


def test_a_learner_cannot_connect_to_another_learners_database(learners):
    ada, grace, _ = learners
    for who, other in ((ada, grace), (grace, ada)):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(who["DATABASE_URL"], other["database"])


def test_a_learner_resets_and_checks_in_its_own_database(server, learners, tmp_path):
    ada, grace, _ = learners
    assert run_cli("reset", "01", env=learner_env(ada["DATABASE_URL"])).returncode == 0
    # The reset re-created the database: still Ada's, still private, still in the class.
    mark = marks.of(server, ada["database"])[1]
    assert mark["classroom"] == CLASS and mark["key"] == marks.learner_key(ada["database"])
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect(grace["DATABASE_URL"], ada["database"])
    proc = run_cli("check", "01", env=learner_env(ada["DATABASE_URL"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wrong = make_track(tmp_path, **{"01_add_index": revision(
        "ex01_add_index", "baseline", "op.create_index('ix_finding_severity', 'finding', ['severity'])",
        "op.drop_index('ix_finding_severity', table_name='finding')")})
    proc = run_cli("check", "01", env=learner_env(grace["DATABASE_URL"], WORKBOOK_TRACK=str(wrong)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    with connect(ada["DATABASE_URL"], CLASS) as c:  # RLS: a learner reads only its own rows
        assert {r[0] for r in c.execute("SELECT learner FROM results")} == {ada["role"]}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("INSERT INTO results (learner, exercise, status) VALUES (%s, '01', 'passed')",
                      (grace["role"],))


def test_a_learner_can_neither_connect_to_alter_nor_drop_a_template(server, learners):
    """The templates every learner clones belong to a role no learner is a member of; the tables
    in a learner's copy belong to the learners' group, so the learner may still alter them."""
    ada = learners[0]
    shared = [d for (d,) in server.execute(
        "SELECT datname FROM pg_database WHERE datistemplate AND pg_get_userbyid(datdba) = %s",
        (f"{CLASS}_templates",))]
    built = {marks.of(server, name)[1]["revision"] for name in shared}
    assert {ex.start for ex in manifest.exercises() if not ex.environment} <= built  # and those between
    with connect(ada["DATABASE_URL"]) as c:
        for name in shared:
            for sql in (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true',
                        f'ALTER DATABASE "{name}" IS_TEMPLATE false',
                        f'ALTER DATABASE "{name}" RENAME TO "{name}_x"',
                        f'COMMENT ON DATABASE "{name}" IS NULL',
                        f'DROP DATABASE "{name}"'):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute(sql)
            with pytest.raises(psycopg.OperationalError):
                connect(ada["DATABASE_URL"], name)
        assert c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'finding'").fetchone()[0] \
            == f"{CLASS}_learners"
        c.execute("ALTER TABLE finding ADD COLUMN probe int")
        c.execute("ALTER TABLE finding DROP COLUMN probe")
    assert server.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s) AND datistemplate "
                          "AND NOT datallowconn", (shared,)).fetchone()[0] == len(shared)


def test_a_learner_without_the_class_template_builds_one_of_its_own(server, learners):
    """Another scale than the instructor's: the learner cannot build a shared template (it may not
    act as the templates' owner), so it builds its own, which nobody else's lookup finds."""
    edsger = learners[2]
    proc = run_cli("reset", "01", env=learner_env(edsger["DATABASE_URL"], WORKBOOK_SCALE="0.011"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    own = [d for (d,) in server.execute("SELECT datname FROM pg_database WHERE datistemplate "
                                        "AND pg_get_userbyid(datdba) = %s", (edsger["role"],))]
    assert len(own) == 1 and marks.of(server, own[0])[1]["by"] == marks.learner_key(edsger["database"])
    with connect(edsger["DATABASE_URL"]) as c:
        assert c.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'finding'").fetchone()[0] \
            == edsger["role"]


def test_a_database_made_under_a_shared_template_name_is_not_taken_for_it(server, learners, monkeypatch):
    """Any learner may create databases: one named like a class template the class has not built
    yet is someone's database, not the template, for every other learner."""
    from workbook import db, templates

    ada, grace, _ = learners
    # The class built every revision at its scale, and none at this one.
    revision, scale = manifest.baseline(), 0.02
    monkeypatch.setattr(templates, "_owners", {})
    for key, value in learner_env(grace["DATABASE_URL"]).items():
        monkeypatch.setenv(key, value)
    db.forget()
    name = templates.template_name(revision, scale)
    with connect(ada["DATABASE_URL"]) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with db.admin() as conn:
            assert templates._found(conn, revision, scale) is None
    finally:
        db.forget()
        server.execute(f'DROP DATABASE "{name}"')


def test_a_learners_scratch_copy_is_private_too(learners, monkeypatch):
    """The copies a check replays on are made by the learner's role: nobody else connects to them."""
    from workbook import db, templates

    ada, grace, _ = learners
    for key, value in learner_env(ada["DATABASE_URL"]).items():
        monkeypatch.setenv(key, value)
    db.forget()
    try:
        with templates.scratch("baseline") as name:
            with connect(ada["DATABASE_URL"], name) as c:
                assert c.execute("SELECT current_user").fetchone()[0] == ada["role"]
            with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
                connect(grace["DATABASE_URL"], name)
    finally:
        db.forget()


WRITERS = "The upgrade did not block writers (lock mode read from pg_locks)."
MARKUP = "<img src=x onerror=alert(1)><b>bold</b>"


def test_the_room_refuses_rows_it_does_not_know(learners):
    """A learner's role writes in the room with any client: the table itself refuses what the
    workbook would never record, and takes only four columns of a row."""
    ada = learners[0]
    with connect(ada["DATABASE_URL"], CLASS) as c:
        insert = "INSERT INTO results (exercise, status, criterion, message) VALUES (%s, %s, %s, %s)"
        for row in (("01", "<img src=x onerror=alert(1)>", None, None),  # a status it does not know
                    ("1); --", "passed", None, None),                        # nor an exercise number
                    ("01", "failed", "<b>x</b>", None),                      # a criterion is an id
                    ("01", "failed", "probe", "x" * 501)):                   # a message is bounded
            with pytest.raises(psycopg.errors.CheckViolation):
                c.execute(insert, row)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("INSERT INTO results (exercise, status, at) VALUES ('01', 'passed', now() + '1 day')")
        c.execute(insert, ("02", "failed", "probe", MARKUP))  # shown as text on the page, below
        for sql in ("CREATE TABLE junk (x int)", "CREATE TEMPORARY TABLE junk (x int)", "DELETE FROM results",
                    "UPDATE results SET status = 'passed'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(sql)


def test_every_criterion_id_fits_the_room():
    """A verdict the room refused would be lost quietly (recording is best-effort)."""
    import importlib

    from workbook import classroom

    ids = [c.id for ex in manifest.exercises() for c in importlib.import_module(ex.check).CRITERIA]
    assert ids and all(re.fullmatch(classroom.CRITERION_ID.strip("^$"), i) for i in ids)


def test_status_shows_passed_failing_and_not_attempted(learners):
    proc = run_cli("classroom", "status", "--json", env=admin_env())
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    by_name = {row["learner"]: row["exercises"]["01"] for row in table["learners"]}
    assert by_name["Ada Lovelace"]["status"] == "passed"
    assert by_name["Grace Hopper"]["status"] == "failed"
    assert by_name["Grace Hopper"]["criterion"] == "writers_not_blocked"
    assert by_name["Grace Hopper"]["statement"] == WRITERS  # the criterion in words
    assert by_name["Edsger Dijkstra"]["status"] == "not attempted"
    assert table["passed"]["01"] == 1
    # What holds the room back: per exercise, the criteria failing now, and for how many.
    assert table["held_back"]["01"] == [
        {"criterion": "writers_not_blocked", "statement": WRITERS, "learners": 1}]
    assert table["held_back"]["02"] == [{"criterion": "probe", "statement": "probe", "learners": 1}]
    text = run_cli("classroom", "status", env=admin_env()).stdout
    assert "1 of 3" in text and "never" in text and f"01  1 learner: {WRITERS}" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, cookie: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_the_room_page_in_chromium(learners, tmp_path):
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbook", "classroom", "serve", "--port", str(port),
                             "--stuck", "0"], cwd=ROOT, env={**os.environ, **admin_env()},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        base, token = found.groups()
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(base, timeout=5)
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"{base}?token=wrong", timeout=5)
        port = int(base.rsplit(":", 1)[1].strip("/"))
        assert _get(port, "/?token=%C3%A9%E2%82%AC").status == 403  # non-ASCII: refused, not a crash
        assert _get(port, "/", cookie="workbook_room=\u00e9t\u00e9".encode().decode("latin-1")).status == 403
        first = _get(port, f"/?token={token}")  # the token is traded for a cookie, and leaves the URL
        assert first.status == 303 and first.getheader("Location") == "/"
        cookie = first.getheader("Set-Cookie")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert _get(port, "/", cookie=cookie.split(";")[0]).status == 200
        assert _get(port, "/", cookie="workbook_room=wrong").status == 403
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{base}?token={token}")
                assert page.url == base  # the projector shows no token
                (jar,) = page.context.cookies()
                assert jar["httpOnly"] and jar["sameSite"] == "Strict"
                page.reload()  # by the cookie from now on
                expect(page.locator("#room")).to_contain_text("1 of 3 passed 01")
                grace = page.locator("tr", has_text="Grace Hopper")
                expect(grace.locator("td.stuck")).to_contain_text(WRITERS)
                expect(page.locator("#held")).to_contain_text(f"01 1 learner: {WRITERS}")
                expect(page.locator("tr", has_text="Ada Lovelace").locator("td.passed")).to_have_count(1)
                cell = page.locator("tr", has_text="Ada Lovelace").locator("td.failed")
                expect(cell).to_have_attribute("title", MARKUP)  # the learner's text, as text
                expect(page.locator("#room img, #room b")).to_have_count(0)
                content = page.content()
                for row in learners:
                    assert sa.engine.make_url(row["DATABASE_URL"]).password not in content
                refresh = page.locator("meta[http-equiv=refresh]").get_attribute("content")
                assert refresh and int(refresh) > 0
                page.screenshot(path=str(tmp_path / "room.png"))
            finally:
                browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_remove_drops_what_create_made_and_nothing_else(server, learners):
    bystander = f"{TAG}_bystander"  # not the class's: unmarked, owned by the admin
    server.execute(f'CREATE DATABASE "{bystander}"')
    dry = run_cli("classroom", "remove", env=admin_env())
    assert dry.returncode == 1 and "--yes" in dry.stdout and learners[0]["database"] in dry.stdout
    assert marks.of(server, learners[0]["database"])[0]
    done = run_cli("classroom", "remove", "--yes", env=admin_env())
    assert done.returncode == 0, done.stdout + done.stderr
    dbs, roles = leftovers(server)
    assert dbs == [bystander] and roles == []
    server.execute(f'DROP DATABASE "{bystander}"')
