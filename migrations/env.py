"""Alembic environment for the workbook.

Close to Alembic's generic template, with four changes:
- the URL comes from the workbook (embedded server, Docker or DATABASE_URL), not alembic.ini;
- a caller may hand over an Engine or a Connection in config.attributes["connection"]
  (Alembic's cookbook recipe), which is how the checks and pytest-alembic drive migrations;
- target_metadata is the models of the track being run (its models.py, which exercise 6 edits);
- on a learner's command line, a file Python cannot read is named in one sentence (plainly()).
"""
import contextlib
import logging
import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from workbook import models
from workbook.manifest import ROOT

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Logging as configured in alembic.ini (track files carry no logging sections of their own).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(ROOT / "alembic.ini", disable_existing_loggers=False)


@contextlib.contextmanager
def plainly():
    """On a learner's command line, a file Python cannot read is one sentence, not a traceback
    (through models.py, Alembic's loader or anywhere else). The checks (which hand over a
    connection) explain it themselves."""
    try:
        yield
    except SyntaxError as exc:
        if "connection" in config.attributes:  # a check's or a test's run: theirs to explain
            raise
        name = Path(exc.filename or "a file")
        with contextlib.suppress(ValueError):
            name = name.resolve().relative_to(ROOT)
        raise SystemExit(f"alembic: File {name}, line {exc.lineno}: {exc.msg}. Python cannot read this "
                         "file: fix that line (or the one before it), save, and run the command again.") from None


# The models autogenerate and `alembic check` compare against: those of the track whose
# versions/ folder is in version_locations (its models.py). pytest-alembic passes its own.
track_dir = Path(config.get_main_option("version_locations").split(os.pathsep)[-1]).parent
with plainly():
    target_metadata = config.attributes.get("target_metadata") or models.track_metadata(track_dir)


def models_at(connection: Connection):
    """The track's models as the revisions the database has run leave them (models.at).

    A rename leaves the models' class alone (finding.title is still title in workbook/models.py);
    once the database has run the revision that renames it (exercise 7), the column goes by its
    new name. What exercise 8's teams add counts once the database has run their revisions. A
    database may be at two heads (exercise 8's start), so all of them are read.
    """
    if config.attributes.get("target_metadata") is not None:
        return target_metadata
    from alembic.migration import MigrationContext

    began = not connection.in_transaction()
    said = logging.getLogger("alembic.runtime.migration")
    quiet, said.disabled = said.disabled, True  # its "Context impl ..." lines: once, from the run itself
    try:
        heads = MigrationContext.configure(connection).get_current_heads()
    finally:
        said.disabled = quiet
    if began and connection.in_transaction():
        connection.rollback()  # leave no transaction open: autocommit_block() asserts on one
    return models.at(target_metadata, heads, track_dir)


def run_migrations_offline() -> None:
    """Run migrations in 'offline' mode: print the SQL instead of running it.

    Only the dialect matters here, so no server is started for `alembic upgrade --sql`.
    """
    context.configure(
        url="postgresql+psycopg://",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )

    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    # One transaction per revision: a failing revision does not roll back the ones before it.
    # compare_server_default: autogenerate and `alembic check` skip server defaults without it.
    context.configure(
        connection=connection,
        target_metadata=models_at(connection),
        transaction_per_migration=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations in 'online' mode, on a connection or engine handed over, or a new one."""
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Connection):
        do_run_migrations(connectable)
        return
    if connectable is None:
        from workbook import db
        from workbook.errors import WorkbookError

        # A learner's command line: say what is wrong in a sentence, not a traceback.
        try:
            with db.explained():
                connection = create_engine(db.url(), poolclass=pool.NullPool).connect()
        except WorkbookError as err:
            raise SystemExit(f"alembic: {err}") from None
        with connection:
            do_run_migrations(connection)
            connection.commit()
        return
    with connectable.connect() as connection:
        do_run_migrations(connection)
        connection.commit()


with plainly():
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()
