"""pytest fixtures for exercise 4: pytest-alembic's two fixtures, pointed at the workbook.

pytest-alembic expects a project to override `alembic_config` and `alembic_engine`; by default
it would run against SQLite, which cannot run this project's migrations (CONCURRENTLY, schemas,
batched updates). Import both into your test file and pytest uses these instead:

    from workbook.testing import alembic_config, alembic_engine

WORKBOOK_CHAIN  the folder whose versions/ is under test (default: the active track). It may hold
                a models.py defining `metadata`, which then replaces workbook.models as the
                models the migrations must match. `workbook check 04` uses it to run your tests
                against copies of the chain with planted bugs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from pytest_alembic.config import Config
from sqlalchemy.engine import Engine

from workbook import db, migrate, models, templates
from workbook.marks import q
from workbook.config import settings
from workbook.errors import WorkbookError


def chain_dir() -> Path:
    """The revision chain under test: WORKBOOK_CHAIN, or the active track."""
    raw = os.environ.get("WORKBOOK_CHAIN")
    if not raw:
        return settings().track_dir
    path = Path(raw).expanduser().resolve()
    if not (path / "versions").is_dir():
        raise WorkbookError(f"WORKBOOK_CHAIN is {raw!r}, but {path}/versions does not exist. "
                            "Unset it to test the active track.")
    return path


def target_metadata(chain: Path) -> sa.MetaData:
    """The models the migrations must match at the chain's head: its models.py if it has one,
    with the columns its revisions rename under their new names (exercise 7)."""
    from workbook import manifest

    return models.renamed(models.track_metadata(chain), [ex.head for ex in manifest.exercises() if ex.revision][-1], chain)


@pytest.fixture
def alembic_config() -> Config:
    """The chain under test: the baseline, then <chain>/versions, with its target metadata."""
    chain = chain_dir()
    return Config(config_options={"target_metadata": target_metadata(chain)},
                  alembic_config=migrate.alembic_config(chain))


@pytest.fixture
def alembic_engine() -> Iterator[Engine]:
    """A fresh, empty database on the workbook's server for one test, dropped afterwards.

    Empty, not a copy of the seeded data: pytest-alembic migrates from base, and a test that
    needs rows inserts them (alembic_runner.insert_into). A pool: pytest-alembic connects for
    every step (some 25 times a test), and a new session costs the server a process of its own;
    disposed of before the drop, so the drop finds nobody connected. It is marked as a scratch
    copy owned by this process, so one left behind by a test run that was killed is removed by
    the next check or reset.
    """
    empty = lambda conn, name: conn.execute(f"CREATE DATABASE {q(name)} TEMPLATE template0")  # noqa: E731
    with templates.created(empty) as name:
        engine = db.engine(name, pooled=True)
        try:
            yield engine
        finally:
            engine.dispose()
