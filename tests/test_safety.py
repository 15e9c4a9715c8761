"""The learner's data is safe: the workbook replaces only databases it made, and learners sharing
one server (the PostgreSQL on 127.0.0.1:5432) cannot disturb each other."""
import contextlib
import os
import shutil
import subprocess
import sys
import time

import psycopg
import pytest
import sqlalchemy as sa

from conftest import run_cli
from workbook import db, manifest, marks, templates
from workbook.checks import base
from workbook.manifest import ROOT

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
TAG = f"wbt{os.getpid()}"  # every database these tests make starts with it, and is dropped after


def _server_answers() -> bool:
    try:
        with sa.create_engine(f"{SERVER}/postgres").connect():
            return True
    except sa.exc.OperationalError:
        return False


pytestmark = pytest.mark.skipif(not _server_answers() and not os.environ.get("CI"),
                                reason="no PostgreSQL on 127.0.0.1:5432")


@pytest.fixture(scope="module")
def server():
    """An autocommit psycopg session on the TCP server, as db.admin() gives the workbook; drops
    what the tests made, and only that."""
    with psycopg.connect(f"{SERVER.replace('+psycopg', '')}/postgres", autocommit=True) as conn:
        yield conn
        for name, m in marks.databases(conn).items():
            made_here = name.startswith(TAG) or (m and TAG.lower() in str(m.get("key") or m.get("learner")
                                                                          or m.get("by") or ""))
            if made_here:
                conn.execute(f'ALTER DATABASE "{name}" IS_TEMPLATE false')
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
                                    (TAG,)).fetchall():
            conn.execute(f'DROP ROLE "{role}"')


def learner_env(database: str, user: str = "postgres", **extra) -> dict:
    # A small scale keeps the shared templates these learners build quick to make.
    return {"WORKBOOK_DB": "url", "DATABASE_URL": f"postgresql://{user}@127.0.0.1:5432/{database}",
            "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01", "WORKBOOK_TRACK": "solutions", **extra}


@contextlib.contextmanager
def acting_as(database: str):
    """This process as another learner for the block (quicker than a CLI process)."""
    saved = {k: os.environ.get(k) for k in learner_env(database)}
    os.environ.update(learner_env(database))
    try:
        db.forget()
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        db.forget()


def reset_as(database: str, exercise: str = "02") -> None:
    """`workbook reset` in this process as another learner."""
    with acting_as(database):
        templates.reset(manifest.get(exercise))


def rows(database: str, sql: str):
    eng = sa.create_engine(f"{SERVER}/{database}")
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql)).all()
    finally:
        eng.dispose()


def test_reset_refuses_a_database_the_workbook_did_not_create(server):
    name = f"{TAG}_team_dev"
    server.execute(f'CREATE DATABASE "{name}"')
    eng = sa.create_engine(f"{SERVER}/{name}")
    with eng.connect() as other:  # someone else's session, which must survive
        other.execute(sa.text("CREATE TABLE customers (id int PRIMARY KEY, name text)"))
        other.execute(sa.text("INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace')"))
        other.commit()
        for argv in (["reset", "01"], ["reset", "03"]):
            proc = run_cli(*argv, env=learner_env(name))
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "did not create" in proc.stderr and "customers" in proc.stderr
            assert "Traceback" not in proc.stderr
        setup = subprocess.run([sys.executable, "-c", "from workbook import setup; setup('01')"],
                               env={**os.environ, **learner_env(name)}, capture_output=True, text=True,
                               cwd=ROOT, timeout=300)
        assert setup.returncode != 0 and "did not create" in setup.stdout + setup.stderr
        assert other.execute(sa.text("SELECT count(*) FROM customers")).scalar_one() == 2
    eng.dispose()


def test_a_database_that_does_not_exist_is_created_marked_and_reset_again(server):
    name = f"{TAG}_fresh"
    for _ in range(2):
        proc = run_cli("reset", "02", env=learner_env(name))
        assert proc.returncode == 0, proc.stderr
    exists, mark = marks.of(server, name)
    assert exists and mark["kind"] == "learner"
    assert rows(name, "SELECT version_num FROM alembic_version") == [("ex01_add_index",)]


def test_messages_hide_the_password(server):
    proc = run_cli("reset", "01", env=learner_env("x", DATABASE_URL="postgresql://me:s3cret@127.0.0.1:notaport/x"))
    assert proc.returncode == 2 and "s3cret" not in proc.stderr and "***" in proc.stderr
    name = f"{TAG}_pw"
    server.execute(f'CREATE DATABASE "{name}"')  # unmarked: refused, and the URL is shown
    proc = run_cli("reset", "01", env=learner_env(name, DATABASE_URL=f"postgresql://postgres:s3cret@127.0.0.1:5432/{name}"))
    assert proc.returncode == 2 and "s3cret" not in proc.stderr and "***" in proc.stderr


def test_look_alike_learners_do_not_disturb_each_other(server):
    """Two learners check while two with look-alike names reset, again and again; a fifth, whose
    name is a prefix of the others', keeps a table of their own."""
    checking = [f"{TAG}_classroom2025_student_01", f"{TAG}_a_b"]
    resetting = [f"{TAG}_classroom2025_student_02", f"{TAG}_a1b"]
    bystander = f"{TAG}_classroom2025_student_0"
    for name in checking + resetting + [bystander]:
        reset_as(name)
    eng = sa.create_engine(f"{SERVER}/{bystander}")
    with eng.connect() as conn:
        conn.execute(sa.text("CREATE TABLE mine (note text)"))
        conn.execute(sa.text("INSERT INTO mine VALUES ('my notes')"))
        conn.commit()
    eng.dispose()
    checks = [subprocess.Popen([sys.executable, "-m", "workbook", "check", "02", "--json"], cwd=ROOT,
                               env={**os.environ, **learner_env(n)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for n in checking]
    for _ in range(3):
        for name in resetting:
            reset_as(name)
    for proc in checks:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    assert rows(bystander, "SELECT note FROM mine") == [("my notes",)]
    for name in checking + resetting + [bystander]:
        exists, mark = marks.of(server, name)
        assert exists and mark["kind"] == "learner", name
    assert len({marks.learner_key(n) for n in checking + resetting + [bystander]}) == 5


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare to give each 'machine' its own process ids")
def test_checks_from_separate_machines_keep_their_scratch_copies(server):
    """Two containers (own pid namespaces, so both may be pid 2) check at once as the same learner,
    while a third resets: nobody's scratch copy is taken for an orphan."""
    name = f"{TAG}_shared_login"
    env = {**os.environ, **learner_env(name)}
    assert run_cli("reset", "02", env=learner_env(name)).returncode == 0
    cmd = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "workbook", "check", "02"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    time.sleep(0.5)
    assert run_cli("reset", "02", env=learner_env(name)).returncode == 0
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err


def test_a_role_without_createdb_is_told_so(server):
    role = f"{TAG}_nocreate"
    server.execute(f'CREATE ROLE "{role}" LOGIN')
    proc = run_cli("reset", "01", env=learner_env(f"{TAG}_nocreate_db", user=role))
    assert proc.returncode == 2 and "does not let this role create databases" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_database_of_another_role_is_not_replaced(server):
    name, role = f"{TAG}_owned", f"{TAG}_intruder"
    assert run_cli("reset", "02", env=learner_env(name)).returncode == 0  # made (and owned) by postgres
    server.execute(f'CREATE ROLE "{role}" LOGIN CREATEDB')
    proc = run_cli("reset", "02", env=learner_env(name, user=role))
    assert proc.returncode == 2 and "must be owner" in proc.stderr and "Traceback" not in proc.stderr
    assert marks.of(server, name)[0]


def test_a_learner_database_lost_in_a_killed_reset_says_run_reset(server):
    name = f"{TAG}_lost"
    assert run_cli("reset", "01", env=learner_env(name)).returncode == 0
    server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # as a reset killed mid-way leaves it
    proc = run_cli("alembic", "current", env=learner_env(name))
    assert proc.returncode != 0 and "workbook reset" in proc.stderr and "Traceback" not in proc.stderr
    assert run_cli("reset", "01", env=learner_env(name)).returncode == 0


def test_a_template_left_connectable_is_closed_again(server):
    name = f"{TAG}_tpl"
    env = learner_env(name)
    assert run_cli("reset", "01", env=env).returncode == 0
    template = subprocess.run([sys.executable, "-c", "from workbook import templates; "
                               "print(templates.template_name('baseline'))"], cwd=ROOT, text=True,
                              env={**os.environ, **env}, capture_output=True, check=True).stdout.strip()
    server.execute(f'ALTER DATABASE "{template}" ALLOW_CONNECTIONS true')
    assert run_cli("reset", "01", env=env).returncode == 0
    assert server.execute("SELECT datallowconn FROM pg_database WHERE datname = %s",
                          (template,)).fetchone()[0] is False


def test_a_failed_template_build_leaves_no_half_built_copy(server):
    name = f"{TAG}_broken"
    saved = {k: os.environ.get(k) for k in learner_env(name)}
    os.environ.update(learner_env(name))
    try:
        db.forget()
        with pytest.raises(Exception):  # the solutions track has no such revision: Alembic refuses
            templates.ensure_template("no_such_revision")
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
        db.forget()
    assert not [n for n in marks.databases(server) if n.endswith("_building")]


def test_db_remove_drops_only_what_the_workbook_made_for_this_learner(server):
    name, other = f"{TAG}_leaving", f"{TAG}_staying"
    reset_as(name)
    reset_as(other)
    dry = run_cli("db", "remove", env=learner_env(name))
    assert dry.returncode == 1 and name in dry.stdout and "--yes" in dry.stdout
    assert marks.of(server, name)[0]
    done = run_cli("db", "remove", "--yes", env=learner_env(name))
    assert done.returncode == 0 and name in done.stdout, done.stderr
    assert not marks.of(server, name)[0] and marks.of(server, other)[0]
    again = run_cli("db", "remove", env=learner_env(name))  # nothing left: says so, and succeeds
    assert again.returncode == 0 and "Nothing to drop" in again.stdout, again.stdout


def test_an_unmarked_scratch_copy_of_a_killed_check_is_dropped_by_its_name(server):
    """A check killed between copying its scratch database and marking it leaves it unmarked; its
    name (learner key, host, pid) still says it is this learner's: sweep drops it once that pid is
    gone on this host, and `db remove` drops it too. Names of another learner, or not exactly of
    the pattern, stay."""
    name = f"{TAG}_interrupted"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid nobody runs now
    host = marks.host_id()[:6]
    key, other_host = marks.learner_key(name), "000000" if host != "000000" else "111111"
    orphan = f"{key}_s{host}_{dead.pid}_0"
    running = f"{key}_s{host}_{os.getpid()}_97"  # its maker (this process) still runs
    elsewhere = f"{key}_s{other_host}_{dead.pid}_0"  # another machine's: its pid says nothing here
    theirs = f"{marks.learner_key(name + '2')}_s{host}_{dead.pid}_0"  # a look-alike learner's
    notes = f"{orphan}_notes"  # someone's database that only starts like one
    made = [orphan, running, elsewhere, theirs, notes]  # no reset: remove then touches no shared template
    try:
        for one in made:
            server.execute(f'CREATE DATABASE "{one}"')
        with acting_as(name), db.admin() as conn:
            assert templates.sweep(conn) == [orphan]
        left = set(marks.databases(server))
        assert orphan not in left and {running, elsewhere, theirs, notes} <= left
        done = run_cli("db", "remove", "--yes", env=learner_env(name))
        assert done.returncode == 0 and running in done.stdout and elsewhere in done.stdout, done.stdout + done.stderr
        left = set(marks.databases(server))
        assert not {running, elsewhere} & left and {theirs, notes} <= left
    finally:
        for one in made:
            server.execute(f'DROP DATABASE IF EXISTS "{one}" WITH (FORCE)')


def test_an_interrupt_between_copy_and_mark_leaves_no_copy(monkeypatch):
    """Ctrl-C after CREATE DATABASE and before COMMENT ON DATABASE: the copy goes at once."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    scale = base.replay_scale(manifest.get("01"))  # any chain; this one the checks build anyway
    templates.ensure_template("baseline", scale)  # built first: only the copy is interrupted
    monkeypatch.setattr(marks, "mark", interrupted)
    with pytest.raises(KeyboardInterrupt), templates.scratch("baseline", scale):
        pass
    monkeypatch.undo()
    with db.admin() as conn:
        left = [n for n in marks.databases(conn)
                if (marks.scratch_maker(n, templates.learner()) or ("", 0))[1] == os.getpid()]
    assert left == []
