"""Alembic environment for exercise 11's SQLite database.

Alembic's generic template, with three changes:
- the URL: a caller's config (the checks), else WORKBOOK_SQLITE_URL, else the file `workbook
  reset 11` builds in the workbook's data dir;
- render_as_batch=True, so autogenerate writes batch_alter_table blocks: SQLite's ALTER TABLE
  cannot alter a column or add a constraint;
- foreign keys stay off while migrating (SQLite's default): batch mode drops and renames whole
  tables, which an enforced foreign key would refuse half way. Check them after, with
  PRAGMA foreign_key_check.
"""
import importlib.util
import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config

# Logging as alembic.ini configures it (the checks, which capture output, ask for none).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def load_models():
    """This environment's models.py, loaded by path: each track has its own."""
    spec = importlib.util.spec_from_file_location("sqlite_models", Path(__file__).with_name("models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.metadata


target_metadata = load_models()


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("WORKBOOK_SQLITE_URL")
    if url:
        return url
    from workbook import sqlite_track

    return sqlite_track.url(sqlite_track.learner_file())


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode: print the SQL instead of running it."""
    context.configure(url=database_url(), target_metadata=target_metadata, render_as_batch=True,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode: on a connection to the file."""
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
