"""Shared helpers: every test runs against a real PostgreSQL (embedded, or DATABASE_URL in CI).

Layers, as markers (`pytest -m db`, `-m "not full"`): unit (no database), db (the default: real
PostgreSQL, checks at their proof scale), full (the learning scale and real front ends: the
notebooks, the browser, the hub, the test that verdicts do not move with the scale). A file
names its layer with `pytestmark`; the notebooks nbval collects are full.
"""
from __future__ import annotations

import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from workbook import manifest
from workbook.checks import base
from workbook.manifest import ROOT


def pytest_configure(config):
    os.environ.update(worker_environment(os.environ.get("PYTEST_XDIST_WORKER")))
    config.pluginmanager.register(EarlyLearningRun())


def worker_environment(worker: str | None) -> dict[str, str]:
    """Under pytest-xdist (`make test`'s JOBS) each worker after the first is a learner of its
    own, so its resets, scratch copies, sweeps and stopped servers touch no other worker's: a
    data folder of its own, the data folder's workers/gwN (hints, verdicts, exercise 11's SQLite
    file and, embedded, a server with its templates, kept for the next run), and over a URL a
    database of its own beside DATABASE_URL's, named DATABASE_gwN. The first worker (gw0), like
    a run without workers, is the learner the environment names."""
    if not worker or worker == "gw0":
        return {}
    from workbook.config import settings

    s = settings()
    own = {"WORKBOOK_DATA_DIR": str(s.data_dir / "workers" / worker)}
    if s.mode == "embedded":
        return own
    if s.mode == "url":
        from workbook.db.external import normalise

        u = normalise(s.database_url)
        u = u.set(drivername="postgresql", database=f"{u.database}_{worker}")
        return {**own, "DATABASE_URL": u.render_as_string(hide_password=False)}
    raise pytest.UsageError(f"WORKBOOK_DB={s.mode} has one learner database, which test workers would "
                            "share: run the tests in one process (make test JOBS=1, or pytest -n 0).")


# Files pytest-xdist runs on one worker, one after the other, as one unit. Every other test goes
# to whichever worker is free (whole files would leave one worker alone at the end).
TOGETHER = [
    {"tests/test_classroom.py"},  # the class it makes once, and its tests' order
    {"tests/test_ex06_autogenerate.py"},  # exercise 6's draft, made once (11 s)
    # Learners at scale 0.01 on 127.0.0.1:5432: test_safety's open and drop the shared templates
    # test_server_trouble's learner clones.
    {"tests/test_safety.py", "tests/test_server_trouble.py"},
]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":  # -n's default; another --dist asked is another's
        return None
    from xdist.scheduler import LoadScopeScheduling

    class TestsOrFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return next((f"together {i}" for i, files in enumerate(TOGETHER) if file in files), nodeid)

    return TestsOrFiles(config, log)


WORKERS: list[str] = []  # the workers of this run, as the controller saw them end


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    WORKERS.append(node.gateway.id)


def pytest_sessionfinish(session):
    """What a worker's own learner leaves behind goes when the run ends: its embedded server stops
    (the worker itself stops it), and over a URL the controller drops what the workbook made for
    that learner (`workbook db remove`), once no worker can still be cloning a template it built."""
    from workbook import db
    from workbook.config import settings
    from workbook.errors import WorkbookError

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    try:
        mode = settings().mode
        if worker and worker != "gw0" and mode == "embedded":
            db.backend().stop()
    except WorkbookError as exc:
        print(f"\n{worker}'s server was not stopped: {exc}")
        return
    if worker is None and mode == "url":
        for other in sorted(set(WORKERS) - {"gw0"}):
            proc = run_cli("db", "remove", "--yes", env=worker_environment(other), timeout=600)
            if proc.returncode != 0:
                print(f"\n{other}'s databases were not removed: {proc.stdout}{proc.stderr}")


EQUIVALENCE = "tests/test_scale_equivalence.py"


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.full)
        elif not any(item.get_closest_marker(m) for m in ("unit", "full")):
            item.add_marker(pytest.mark.db)
    # The other layers first (the serial tests alone on the machine), then the full layer, the
    # scale-equivalence test last: its learning-scale run starts with the first full test.
    items.sort(key=lambda i: (i.get_closest_marker("full") is not None, i.nodeid.startswith(EQUIVALENCE)))


class EarlyLearningRun:
    """A plugin, not a conftest hook: this conftest's hooks see only the items under tests/, and
    the notebooks may be the first full items."""

    @staticmethod
    def pytest_runtest_setup(item):
        if item.get_closest_marker("full") and not item.nodeid.startswith(EQUIVALENCE):
            equivalence = sys.modules.get("test_scale_equivalence")
            if equivalence is not None and any(i.nodeid.startswith(EQUIVALENCE) for i in item.session.items):
                equivalence.start_early()


def pytest_unconfigure(config):
    equivalence = sys.modules.get("test_scale_equivalence")
    if equivalence is not None:
        equivalence.stop_early()  # a run cut short leaves no learning-scale run behind


@pytest.fixture(autouse=True)
def database_ready(request):
    if request.node.get_closest_marker("unit") is None:
        _ready()


# Every verdict base.check gave in this session, by test: the scale-equivalence test compares
# them with the same tests' verdicts at the learning scale. WORKBOOK_VERDICT_LOG also writes
# them to a file, one JSON line each (the equivalence test's runs in a subprocess; make test's
# workers, in a pytest before the one that runs the equivalence test: proof_verdicts()).
VERDICTS: dict[str, list[dict]] = {}


def proof_verdicts() -> dict[str, list[dict]]:
    """This run's verdicts at the proof scale: this session's (VERDICTS), and those make test's
    first pass logged (its workers' tests) in the file WORKBOOK_PROOF_VERDICTS names."""
    found = {test: list(v) for test, v in VERDICTS.items()}
    path = os.environ.get("WORKBOOK_PROOF_VERDICTS")
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                v = json.loads(line)
                found.setdefault(v.pop("test"), []).append(v)
    return found


@pytest.fixture(autouse=True)
def record_verdicts(request, monkeypatch):
    check = base.check

    def recorded(*args, **kwargs):
        report = check(*args, **kwargs)
        verdict = {"exercise": report.exercise, "status": report.status,
                   "failed": sorted(r.id for r in report.failed_required())}
        VERDICTS.setdefault(request.node.nodeid, []).append(verdict)
        if os.environ.get("WORKBOOK_VERDICT_LOG"):  # workers append to one file: one write each
            with open(os.environ["WORKBOOK_VERDICT_LOG"], "a") as f:
                f.write(json.dumps({"test": request.node.nodeid, **verdict}) + "\n")
        return report

    monkeypatch.setattr(base, "check", recorded)


@functools.cache
def _ready() -> None:
    from workbook import db
    db.ensure_ready()


def run_cli(*args, env=None, timeout=300):
    """`workbook ARGS` as a learner runs it: a process of its own, from the repository."""
    return subprocess.run([sys.executable, "-m", "workbook", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def stub_track(tmp_path_factory) -> Path:
    """exercises/ as committed (the untouched stubs), never the learner's working files.

    A learner who has edited or solved the exercises still gets a green `make test`. Without git
    (a zip download) there is no committed copy to compare with, so the tests using it skip.
    """
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "exercises"],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (a zip download?): the untouched stubs are read from git, "
                    "so the tests of the stubs cannot run here")
    out = tmp_path_factory.mktemp("committed")
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python < 3.11.4 has none
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(out, **safe)
    track = out / "exercises"
    solved = [part.file for ex in manifest.exercises() if ex.revision for part in ex.parts()
              if not base.is_stub(track / part.file)]
    if solved:
        pytest.skip(f"the committed {', '.join(solved)} is no longer the stub (your work was committed), "
                    "so the tests of the untouched stubs cannot run")
    return track


def make_track(tmp_path: Path, **files: str) -> Path:
    """A copy of the solutions track with some files replaced: {'01_add_index': source}."""
    track = tmp_path / "track"
    shutil.copytree(ROOT / "solutions", track)
    for name, source in files.items():
        target = track / "versions" / f"{name}.py" if not name.endswith(".py") else track / name
        target.write_text(textwrap.dedent(source).lstrip())
    return track


def revision(rev: str, down: str, upgrade: str, downgrade: str) -> str:
    """A small revision module with the given bodies (indented by the caller's dedent)."""
    return (
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {rev!r}\ndown_revision = {down!r}\n\n\n"
        "def upgrade():\n" + textwrap.indent(textwrap.dedent(upgrade).strip() or "pass", "    ") + "\n\n\n"
        "def downgrade():\n" + textwrap.indent(textwrap.dedent(downgrade).strip() or "pass", "    ") + "\n"
    )


def rows(number: str) -> dict[str, int]:
    """The seeded tables' sizes on the copies exercise `number`'s check replays on (its proof
    scale, or the learning scale in the scale-equivalence run), for messages that count rows."""
    from workbook import seed
    return seed.sizes(base.replay_scale(manifest.get(number)))


def outcomes(report: base.Report) -> dict[str, str]:
    return {r.id: r.outcome for r in report.criteria}


def message(report: base.Report, criterion: str) -> str:
    return next(r.message for r in report.criteria if r.id == criterion)


def only_failures(report: base.Report) -> set[str]:
    return {r.id for r in report.criteria if r.required and r.outcome != base.PASSED}


def scratch_left() -> list[str]:
    """This learner's scratch copies that still exist, and backends still connected to them, but
    for those another live process of the same learner is using (the learning-scale run's other
    process, a notebook's check): its copies are in flight, not left behind."""
    from workbook import db, marks, templates

    key, who = templates.prefix(), templates.learner()

    with db.admin() as conn:
        found = marks.databases(conn)
        others = {n for n, m in found.items() if marks.in_flight_elsewhere(n, m, who)}
        names = [n for n, m in found.items()
                 if m and m.get("kind") == "scratch" and m.get("learner") == key and n not in others]
        names += [f"backend {pid} in {d}" for pid, d in conn.execute(
            "SELECT pid, datname FROM pg_stat_activity WHERE starts_with(datname, %s)",
            (key + "_s",)) if d not in others]
    return names
