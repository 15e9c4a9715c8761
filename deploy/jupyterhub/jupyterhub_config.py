"""JupyterHub for a workbook class: each hub user works in its own database from the classroom CSV.

    workbook classroom create --names hub-users.txt --csv /srv/workbook/learners.csv
    WORKBOOK_CLASS_CSV=/srv/workbook/learners.csv jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

The CSV is the one `workbook classroom create` wrote (columns name, role, database, DATABASE_URL);
a hub user gets the row whose name is its user name. Its single-user server starts with
WORKBOOK_DB=url and that DATABASE_URL, so `workbook check` and the notebooks' check() use the
learner's own database, and record verdicts in the class's room. A hub user without a row is
refused a server (with a message), never given someone else's database. Keep the CSV readable
by the hub only (create writes it with mode 0600): it holds the learners' passwords.

Room-only (`workbook classroom create --room-only`): the CSV's columns are name, role and
WORKBOOK_ROOM_URL. Each hub user's server then keeps the embedded PostgreSQL (WORKBOOK_DB=embedded)
in a data dir of its own, WORKBOOK_HUB_DATA_DIR (default ~/.workbook: every spawner gives each
user its own HOME), and records its verdicts in the room through its WORKBOOK_ROOM_URL; the
shared server holds only the room, and the checks run where the hub runs its users' servers.
The same file serves both modes: the CSV says which.

Authentication and the spawner are the deployment's choice (set them below or on the command
line); the test in tests/test_jupyterhub.py uses the dummy authenticator and the simple local
process spawner.
"""
import csv
import os

from tornado import web

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

CSV = os.environ.get("WORKBOOK_CLASS_CSV", os.path.join(os.path.dirname(__file__), "learners.csv"))
# The workbook's Jupyter settings (no "Jupyter news?" prompt over the notebooks, the server's bin/
# first in the Terminal; see workbook/serve.py), in the checkout this file belongs to.
LAB_SETTINGS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                             "workbook", "jupyter"))

# Room-only: where each user's embedded PostgreSQL lives; ~ is that user's HOME (the workbook
# expands it), so two users never share one.
DATA_DIR = os.environ.get("WORKBOOK_HUB_DATA_DIR", "~/.workbook")


def learners() -> dict[str, dict]:
    """Read on every spawn, so a class created after the hub started is picked up."""
    with open(CSV, newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


def give_database(spawner) -> None:
    row = learners().get(spawner.user.name)
    if row is None:
        raise web.HTTPError(403, f"{spawner.user.name} has no workbook database in this class; "
                                 "ask the instructor to add you (workbook classroom create --names).")
    if row.get("WORKBOOK_ROOM_URL"):  # room-only: the learner's database lives in its own server
        spawner.environment.update({"WORKBOOK_DB": "embedded", "WORKBOOK_ROOM_URL": row["WORKBOOK_ROOM_URL"],
                                    "WORKBOOK_DATA_DIR": DATA_DIR, "JUPYTER_CONFIG_PATH": LAB_SETTINGS})
        return
    spawner.environment.update({"WORKBOOK_DB": "url", "DATABASE_URL": row["DATABASE_URL"],
                                "JUPYTER_CONFIG_PATH": LAB_SETTINGS})


c.Spawner.pre_spawn_hook = give_database
c.Spawner.default_url = "/lab"
