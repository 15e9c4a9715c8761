"""Tests for the project's migrations (exercise 4, notebooks/04_verify.ipynb), reference solution.

Run them with `pytest solutions/test_migrations.py` (or your track's file); `workbook check 04`
runs them against the correct chain and against copies with planted bugs.
"""
import sqlalchemy as sa

# The workbook's fixtures replace pytest-alembic's defaults (SQLite): each test gets a fresh,
# empty PostgreSQL database and the revision chain of the active track.
from workbook.testing import alembic_config, alembic_engine  # noqa: F401  (pytest finds fixtures by name)

# pytest-alembic's built-in tests, imported so pytest collects them here: one head, base -> head
# applies, every revision can go down and up again, and the models match what the migrations build.
from pytest_alembic.tests import (  # noqa: F401
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

from workbook.schema import diff, snapshot

DATA_MIGRATION = "ex03_data_migration"


def schema_now(engine) -> dict[str, str]:
    # Alembic creates alembic_version on the first upgrade and never drops it, so it is not
    # part of what a revision's downgrade has to restore.
    with engine.connect() as conn:
        return {k: v for k, v in snapshot(conn).items() if "alembic_version" not in k}


def test_each_downgrade_restores_the_schema(alembic_runner, alembic_engine):
    """Assert that every revision's downgrade leaves the schema exactly as before its upgrade.

    test_up_down_consistency only proves the downgrades run. A downgrade that forgets to drop
    an index or a column runs fine, and the next upgrade may even succeed on top of it.
    """
    while True:
        before = schema_now(alembic_engine)
        revision = alembic_runner.migrate_up_one()
        if revision is None:  # at the head
            break
        alembic_runner.migrate_down_one()
        changes = diff(before, schema_now(alembic_engine))
        assert not changes, f"downgrade of {revision} left the schema changed: {changes}"
        alembic_runner.migrate_up_one()


def findings(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, title, severity FROM finding ORDER BY id")).all()


def test_data_migration_round_trip(alembic_runner, alembic_engine):
    """Assert that exercise 3's downgrade gives back exactly the rows it changed, and no others.

    Rows that already said 'informational' before the upgrade are the trap: a reverse UPDATE
    cannot tell them from the rows the upgrade renamed.
    """
    alembic_runner.migrate_up_before(DATA_MIGRATION)
    alembic_runner.insert_into("finding", [
        {"title": "old spelling 1", "severity": "info", "asset_id": 1},
        {"title": "old spelling 2", "severity": "info", "asset_id": 2},
        {"title": "already renamed", "severity": "informational", "asset_id": 3},
        {"title": "untouched", "severity": "critical", "asset_id": 4},
    ])
    before = findings(alembic_engine)

    alembic_runner.migrate_up_one()
    after = findings(alembic_engine)
    assert [s for _, _, s in after] == ["informational", "informational", "informational", "critical"]

    alembic_runner.migrate_down_one()
    assert findings(alembic_engine) == before
