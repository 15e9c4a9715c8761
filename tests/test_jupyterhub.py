"""deploy/jupyterhub/jupyterhub_config.py for real: a hub (dummy authenticator, local process
spawner, configurable-http-proxy) gives two users their own DATABASE_URL from the classroom CSV,
and `workbook check 01` run in each one's kernel lands in that learner's rows of the room.

Needs `jupyterhub` (deploy/jupyterhub/requirements.txt) and `configurable-http-proxy` (npm) on
PATH: skipped without them, a failure in CI.
"""
import asyncio
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import sqlalchemy as sa

from conftest import run_cli
from test_classroom import SERVER, _server_answers, connect, drop_leftovers
from workbook import serve
from workbook.manifest import ROOT

TAG = f"wbh{os.getpid()}"
CLASS = f"{TAG}_hub"
USERS = ["alice", "bob"]

pytestmark = [pytest.mark.full,
              pytest.mark.skipif(not _server_answers() and not os.environ.get("CI"),
                                 reason="no PostgreSQL on 127.0.0.1:5432")]


# The hub and its single-user servers come from the venv running the tests, then from PATH.
SEARCH = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


def _need_hub():
    missing = [cmd for cmd in ("jupyterhub", "jupyterhub-singleuser", "configurable-http-proxy")
               if shutil.which(cmd, path=SEARCH) is None]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{', '.join(missing)} not on PATH; CI must run the JupyterHub test.")
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH (pip install -r deploy/jupyterhub/requirements.txt; "
                    "npm install configurable-http-proxy)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_env() -> dict:
    return {"WORKBOOK_DB": "url", "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{CLASS}",
            "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01", "WORKBOOK_TRACK": "solutions"}


@pytest.fixture
def hub_class(tmp_path):
    _need_hub()
    names = tmp_path / "users.txt"
    names.write_text("\n".join(USERS) + "\n")
    out = tmp_path / "learners.csv"
    try:
        proc = run_cli("classroom", "create", "--names", str(names), "--csv", str(out), env=admin_env())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with out.open() as f:
            yield out, {row["name"]: row for row in csv.DictReader(f)}
    finally:
        run_cli("classroom", "remove", "--yes", env=admin_env())
        with connect(f"{SERVER}/postgres") as conn:
            drop_leftovers(conn, TAG)


def api(base: str, token: str, method: str, path: str, body: dict | None = None):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


async def run_in_kernel(ws_url: str, token: str, code: str, timeout: float = 240) -> str:
    """Execute code over the kernel's websocket (the Jupyter messaging protocol); its stdout."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    msg_id, out = uuid.uuid4().hex, []
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    conn.close()
    return "".join(out)


CODE = """
import os, subprocess, sys
print("URL=" + os.environ.get("DATABASE_URL", ""))
print("LAB=" + os.environ.get("JUPYTER_CONFIG_PATH", ""))
p = subprocess.run([sys.executable, "-m", "workbook", "check", "01"], capture_output=True, text=True)
print("RC=%d" % p.returncode)
print(p.stdout[-400:], p.stderr[-800:])
"""


def run_on_hub(tmp_path, csv_path, home_base: str, drop: tuple[str, ...], code: str,
               timeout: float = 240) -> dict[str, str]:
    """Start a real hub with the workbook's config (dummy authenticator, local processes, homes
    under `home_base`), start each of USERS' servers, and return what `code` printed in each
    one's kernel. The environment variables named in `drop` do not reach the hub."""
    port, token = _free_port(), secrets.token_hex(16)
    config = tmp_path / "hub_config.py"
    config.write_text(f"""
load_subconfig({str(ROOT / 'deploy' / 'jupyterhub' / 'jupyterhub_config.py')!r})
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.Spawner.env_keep.extend(["WORKBOOK_TRACK", "WORKBOOK_SCALE", "WORKBOOK_PROOF_SCALE", "PYTHONPATH"])
c.Spawner.default_url = "/tree"
c.Spawner.args = {["--allow-root"] if os.geteuid() == 0 else []!r}  # the spawner runs as the hub's user
c.Spawner.http_timeout = c.Spawner.start_timeout = 180  # a shared 2-core machine under load
c.JupyterHub.services = [{{"name": "test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "test", "services": ["test"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "tokens"]}}]
c.SimpleLocalProcessSpawner.home_dir_template = {os.path.join(home_base, '{username}')!r}
""")
    env = {**os.environ, "WORKBOOK_CLASS_CSV": str(csv_path), "WORKBOOK_TRACK": "solutions",
           "WORKBOOK_SCALE": "0.01", "WORKBOOK_PROOF_SCALE": "0.01", "PYTHONPATH": str(ROOT), "PATH": SEARCH}
    for name in drop:
        env.pop(name, None)
    log = (tmp_path / "hub.log").open("w")
    hub = subprocess.Popen([shutil.which("jupyterhub", path=SEARCH), "-f", str(config), "--ip", "127.0.0.1",
                            "--port", str(port), f"--JupyterHub.hub_port={_free_port()}",
                            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{_free_port()}"],
                           cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                api(base, token, "GET", "/hub/api/")
                break
            except OSError:
                if hub.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterHub did not start: {(tmp_path / 'hub.log').read_text()[-3000:]}")
                time.sleep(0.5)
        outputs = {}
        for user in USERS:
            api(base, token, "POST", f"/hub/api/users/{user}")
            api(base, token, "POST", f"/hub/api/users/{user}/server")
            deadline = time.monotonic() + 240
            while not api(base, token, "GET", f"/hub/api/users/{user}").get("servers", {}).get("", {}).get("ready"):
                assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()[-3000:]
                time.sleep(0.5)
            user_token = api(base, token, "POST", f"/hub/api/users/{user}/tokens", {"note": "test"})["token"]
            kernel = api(base, user_token, "POST", f"/user/{user}/api/kernels", {"name": "python3"})
            ws = f"ws://127.0.0.1:{port}/user/{user}/api/kernels/{kernel['id']}/channels"
            outputs[user] = asyncio.run(run_in_kernel(ws, user_token, code, timeout=timeout))
        return outputs
    finally:
        if hub.poll() is None:
            os.killpg(hub.pid, signal.SIGTERM)  # the hub stops the servers it spawned
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait(5)
        log.close()


def test_each_hub_user_checks_in_its_own_database(hub_class, tmp_path):
    csv_path, rows = hub_class
    outputs = run_on_hub(tmp_path, csv_path, str(tmp_path / "home"), ("DATABASE_URL", "WORKBOOK_DB"), CODE)
    for user in USERS:
        assert f"URL={rows[user]['DATABASE_URL']}" in outputs[user], outputs[user]
        assert "RC=0" in outputs[user], outputs[user]
        assert f"LAB={serve.LAB_SETTINGS}" in outputs[user], outputs[user]  # no news prompt
    eng = sa.create_engine(f"{SERVER}/{CLASS}")
    with eng.connect() as c:
        landed = c.execute(sa.text("SELECT learner, exercise, status FROM results ORDER BY learner")).all()
    eng.dispose()
    assert landed == [(rows[u]["role"], "01", "passed") for u in USERS]
