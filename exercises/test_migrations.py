"""Tests for the project's migrations (exercise 4, notebooks/04_verify.ipynb).

Write pytest tests that would stop a broken migration before it ships: pytest-alembic's
built-in tests, run against PostgreSQL, plus at least one test of your own.
Run them with `pytest exercises/test_migrations.py`; `workbook check 04` runs them against the
correct chain and against copies with planted bugs, and tells you which bugs got through.
`workbook hint 04` gives a hint.
"""

# The workbook's fixtures replace pytest-alembic's defaults (SQLite): each test gets a fresh,
# empty PostgreSQL database and the revision chain of the active track.
from workbook.testing import alembic_config, alembic_engine  # noqa: F401  (pytest finds fixtures by name)

# TODO: import pytest-alembic's built-in tests from pytest_alembic.tests, so pytest collects
#       them in this file: test_single_head_revision, test_upgrade, test_up_down_consistency,
#       test_model_definitions_match_ddl.

# TODO: write a test of your own that takes alembic_runner and alembic_engine, and proves each
#       revision's downgrade puts the schema back exactly as it was before its upgrade
#       (workbook.schema.snapshot before, snapshot after, workbook.schema.diff must be empty).

# TODO: write a test for exercise 3's data migration: at the revision before it
#       (alembic_runner.migrate_up_before), insert a few findings that say 'info' and a few
#       that already say 'informational'; upgrade, downgrade, and compare the rows with before.
