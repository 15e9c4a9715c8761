"""Alembic environment of exercise 11, part B: still the synchronous template.

TODO: make it async (the application moved to an async engine): build the engine with
sqlalchemy.ext.asyncio.async_engine_from_config and run the migrations through
`await connection.run_sync(...)`. It must work both on the command line (`alembic upgrade head`)
and from a notebook cell (alembic.command.upgrade), where an event loop is already running.
Offline mode (`alembic upgrade head --sql`) must keep working. Notebook 11, part B, shows how.
"""
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config

# Logging as alembic.ini configures it (the checks, which capture output, ask for none).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = None  # the environment has one given revision and no models


def database_url() -> str:
    """A caller's config (the checks), else WORKBOOK_ASYNC_URL (postgresql+psycopg://...)."""
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("WORKBOOK_ASYNC_URL")
    if not url:
        raise SystemExit("alembic: set WORKBOOK_ASYNC_URL to a PostgreSQL URL "
                         "(postgresql+psycopg://...); notebook 11 sets it to a database of its own.")
    return url


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode: print the SQL instead of running it."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode."""
    engine = engine_from_config({"sqlalchemy.url": database_url()}, prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
