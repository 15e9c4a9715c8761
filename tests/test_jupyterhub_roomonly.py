"""Room-only classes on the PostgreSQL on 127.0.0.1:5432: only the room lives on the shared server.

`workbook classroom create --room-only` makes login roles that may insert their own verdicts in the
room and nothing else; a hub (deploy/jupyterhub/jupyterhub_config.py, dummy authenticator, local
process spawner) gives two users each an embedded PostgreSQL in a data dir of its own and its
WORKBOOK_ROOM_URL, and `workbook check 01` run in each one's kernel lands in its rows of the room.
"""
import csv
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import psycopg
import pytest
import sqlalchemy as sa

from conftest import run_cli
from test_classroom import SERVER, _server_answers, connect, drop_leftovers, leftovers, scram_matches, verifier
from test_jupyterhub import USERS, _need_hub, run_on_hub
from workbook import classroom
from workbook.manifest import ROOT

TAG = f"wbr{os.getpid()}"
CLASS = f"{TAG}_room"

pytestmark = [pytest.mark.full,
              pytest.mark.skipif(not _server_answers() and not os.environ.get("CI"),
                                 reason="no PostgreSQL on 127.0.0.1:5432")]


def admin_env() -> dict:
    return {"WORKBOOK_DB": "url", "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{CLASS}",
            "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01", "WORKBOOK_TRACK": "solutions"}


@pytest.fixture(scope="module")
def server():
    with connect(f"{SERVER}/postgres") as conn:
        yield conn


@pytest.fixture(scope="module")
def room_class(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("roomonly")
    names, out = folder / "users.txt", folder / "learners.csv"
    names.write_text("\n".join(USERS) + "\n")
    try:
        proc = run_cli("classroom", "create", "--room-only", "--names", str(names), "--csv", str(out),
                       env=admin_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        with out.open() as f:
            rows = list(csv.DictReader(f))
        for row in rows:  # names on screen, never a password
            assert row["name"] in proc.stdout and password(row) not in proc.stdout + proc.stderr
        yield out, {row["name"]: row for row in rows}
    finally:
        run_cli("classroom", "remove", "--yes", env=admin_env())
        left = leftovers(server, TAG)
        drop_leftovers(server, TAG)
    assert left == ([], []), f"remove left {left}"  # the room-only roles too


def password(row: dict) -> str:
    return sa.engine.make_url(row["WORKBOOK_ROOM_URL"]).password


def test_room_only_makes_the_room_and_login_roles_only(server, room_class):
    out, rows = room_class
    with out.open() as f:
        assert next(csv.reader(f)) == classroom.ROOM_ONLY_FIELDS
    dbs = [d for (d,) in server.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (TAG,))]
    assert dbs == [CLASS]  # no learner database, no template
    for user in USERS:
        url = sa.engine.make_url(rows[user]["WORKBOOK_ROOM_URL"])
        assert (url.username, url.database, url.host, url.port) == (rows[user]["role"], CLASS, "127.0.0.1", 5432)
        assert scram_matches(verifier(server, url.username), url.password)
        rights = server.execute("SELECT rolcanlogin, rolcreatedb, rolcreaterole, rolsuper, rolreplication, "
                                "rolbypassrls FROM pg_roles WHERE rolname = %s", (url.username,)).fetchone()
        assert rights == (True, False, False, False, False, False)


def test_a_room_only_learner_inserts_its_own_verdicts_and_nothing_else(server, room_class):
    _, rows = room_class
    alice, bob = rows["alice"], rows["bob"]
    private = f"{TAG}_elsewhere"  # any database not open to every role, as the workbook's are
    server.execute(f'CREATE DATABASE "{private}"')
    server.execute(f'REVOKE ALL ON DATABASE "{private}" FROM PUBLIC')
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect(alice["WORKBOOK_ROOM_URL"], private).close()
        with connect(alice["WORKBOOK_ROOM_URL"]) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'CREATE DATABASE "{TAG}_mine"')
            for statement in ("CREATE TABLE mine (x int)", "CREATE TEMP TABLE mine (x int)",
                              "DELETE FROM results", "UPDATE results SET status = 'passed'"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # writing as someone else
                conn.execute("INSERT INTO results (learner, exercise, status) VALUES (%s, '01', 'passed')",
                             (bob["role"],))
            conn.execute("INSERT INTO results (exercise, status) VALUES ('01', 'failed')")
        with connect(bob["WORKBOOK_ROOM_URL"]) as conn:
            assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 0  # alice's row is hers
    finally:
        server.execute(f'DROP DATABASE "{private}"')
    with connect(f"{SERVER}/{CLASS}") as conn:
        conn.execute("DELETE FROM results")  # the hub test below counts its own rows only


RECORD = """
from types import SimpleNamespace
from workbook import classroom
classroom.record(SimpleNamespace(exercise="01_add_column", status="passed", failed_required=list))
print("returned")
"""


def test_recording_to_a_room_that_never_answers_gives_up(tmp_path):
    """The check's verdict is shown even when the room is unreachable: record returns."""
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        env = {**os.environ, "WORKBOOK_DB": "embedded", "WORKBOOK_DATA_DIR": str(tmp_path),
               "WORKBOOK_ROOM_URL": f"postgresql://someone:secret@127.0.0.1:{port}/room", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-c", RECORD], env=env, capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert proc.returncode == 0 and "returned" in proc.stdout, proc.stderr
        silent.settimeout(0)
        silent.accept()[0].close()  # record did try the room it was given


CODE = """
import os, subprocess, sys
for name in ("WORKBOOK_DB", "WORKBOOK_DATA_DIR", "WORKBOOK_ROOM_URL", "DATABASE_URL"):
    print(name + "=" + os.environ.get(name, ""))
p = subprocess.run([sys.executable, "-m", "workbook", "check", "01"], capture_output=True, text=True)
print("RC=%d" % p.returncode)
print(p.stdout[-400:], p.stderr[-800:])
"""


def _stop_embedded(home) -> None:
    """The embedded servers outlive the single-user servers that started them."""
    env = {"WORKBOOK_DB": "embedded", "WORKBOOK_DATA_DIR": os.path.join(home, ".workbook")}
    if os.path.exists(os.path.join(home, ".workbook", "pgdata")):
        run_cli("db", "down", env=env, timeout=60)


def test_each_hub_user_keeps_its_own_embedded_database_and_records_in_the_room(room_class, tmp_path):
    _need_hub()
    csv_path, rows = room_class
    # Not under tmp_path: another pytest run on this machine makes /tmp/pytest-of-USER private
    # again, and as root the embedded servers run as another user who must reach their data dir.
    home_base = tempfile.mkdtemp(prefix=f"{TAG}-homes-")
    homes = {u: os.path.join(home_base, u) for u in USERS}
    try:
        outputs = run_on_hub(tmp_path, csv_path, home_base,
                             ("DATABASE_URL", "WORKBOOK_DB", "WORKBOOK_DATA_DIR", "WORKBOOK_ROOM_URL"), CODE,
                             timeout=420)
        for user in USERS:
            out = outputs[user]
            assert "WORKBOOK_DB=embedded" in out and "DATABASE_URL=\n" in out, out
            assert f"WORKBOOK_ROOM_URL={rows[user]['WORKBOOK_ROOM_URL']}\n" in out, out
            assert "RC=0" in out, out
            # Its own embedded server, in its own HOME: a cluster of its own, running.
            assert os.path.exists(os.path.join(homes[user], ".workbook", "pgdata", "postmaster.pid")), out
        eng = sa.create_engine(f"{SERVER}/{CLASS}")
        with eng.connect() as c:
            landed = c.execute(sa.text("SELECT learner, exercise, status FROM results ORDER BY learner")).all()
        eng.dispose()
        assert landed == [(rows[u]["role"], "01", "passed") for u in USERS]
        status = run_cli("classroom", "status", "--json", env=admin_env())  # room-only learners are listed
        assert status.returncode == 0, status.stderr
        table = json.loads(status.stdout)
        assert [(r["learner"], r["role"]) for r in table["learners"]] == [(u, rows[u]["role"]) for u in USERS]
        assert table["passed"]["01"] == 2
    finally:
        for home in homes.values():
            _stop_embedded(home)
        shutil.rmtree(home_base, ignore_errors=True)


def test_the_zero_to_jupyterhub_values_parse_and_name_the_hook():
    """All that can be checked without a cluster: the YAML, and the hub snippet it carries."""
    import yaml
    from traitlets.config import Config

    values = yaml.safe_load((ROOT / "deploy" / "zero-to-jupyterhub" / "values.yaml").read_text())
    c = Config()
    exec(values["hub"]["extraConfig"]["workbook-room-only"], {"c": c})
    assert callable(c.KubeSpawner.pre_spawn_hook)
    assert values["singleuser"]["storage"]["homeMountPath"] in "/home/jovyan/work/.workbook"
    assert values["hub"]["extraVolumes"][0]["secret"]["secretName"] == "workbook-class"
