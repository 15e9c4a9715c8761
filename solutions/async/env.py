"""Alembic environment of exercise 11, part B: async, from the command line and inside a running
event loop.

Alembic's async template (`alembic init -t async`): an AsyncEngine (psycopg's async driver,
postgresql+psycopg) and `await connection.run_sync(do_run_migrations)`, which hands the
migrations a synchronous Connection on the async one. One change: the template's asyncio.run()
refuses to start when an event loop already runs in the thread, as in a Jupyter kernel
("asyncio.run() cannot be called from a running event loop"). Then the migrations run in a loop
of their own on a worker thread, and this thread waits for them.
"""
import asyncio
import concurrent.futures
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

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
    """Run migrations in 'offline' mode: print the SQL; no engine, async or not."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """An AsyncEngine, and the migrations run on its connection through run_sync."""
    engine = async_engine_from_config({"sqlalchemy.url": database_url()}, prefix="sqlalchemy.",
                                      poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode, whether or not an event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none: the command line
        asyncio.run(run_async_migrations())
        return
    # One runs (a notebook cell): a loop of our own, on a worker thread; wait for it here.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(asyncio.run, run_async_migrations()).result()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
