"""ship ck_finding_status and ix_finding_status_created_at on a busy finding table

Revision ID: ex10_production
Revises: ex08_merge
Create Date: 2026-11-30

Exercise 10 (notebooks/10_production.ipynb), reference solution.
"""
import time

import sqlalchemy as sa
from alembic import context, op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex10_production"
down_revision = "ex08_merge"
branch_labels = None
depends_on = None

CHECK = "ck_finding_status"
INDEX = "ix_finding_status_created_at"
ATTEMPTS = 12


def lock_timeout() -> str:
    """Short: while a DDL waits for its lock, every query that conflicts with it waits behind it.

    `alembic -x lock_timeout=500ms upgrade ...` may set another per environment: a setting of the
    deploy, never the schema, which must be the same everywhere.
    """
    return context.get_x_argument(as_dictionary=True).get("lock_timeout", "200ms")


def patiently(step) -> None:
    """Run step() until it gets its locks: after a lock timeout, wait (longer each time) and retry.

    Only inside an autocommit block: there each statement commits on its own, so a failed one
    leaves no aborted transaction behind and the next attempt starts clean.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            step()
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03" or attempt == ATTEMPTS:
                raise  # not a lock timeout, or the last try: the deploy stops here
            time.sleep(min(0.1 * 2 ** attempt, 3.0))


def one(sql: str):
    """A step of one statement, for patiently()."""
    return lambda: op.execute(sql)


def found(sql: str) -> bool:
    """Ask the database (online only: offline there is none, and the script is for a fresh run)."""
    if context.is_offline_mode():
        return False
    return op.get_bind().execute(sa.text(sql)).scalar() is not None


def build_index() -> None:
    # A cancelled or timed-out concurrent build leaves an INVALID index, which IF NOT EXISTS would
    # keep: drop such a leftover first, then build.
    if found(f"SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('{INDEX}') AND NOT indisvalid"):
        op.drop_index(INDEX, table_name="finding", postgresql_concurrently=True, if_exists=True)
    op.create_index(INDEX, "finding", ["status", "created_at"], postgresql_concurrently=True,
                    if_not_exists=True)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"SET lock_timeout = '{lock_timeout()}'")
        op.execute("SET statement_timeout = '10min'")
        # ADD CONSTRAINT has no IF NOT EXISTS: a re-run after a failure further on skips it.
        if not found(f"SELECT 1 FROM pg_constraint WHERE conname = '{CHECK}' AND conrelid = 'finding'::regclass"):
            # NOT VALID: ACCESS EXCLUSIVE for a catalog change only, no scan.
            patiently(one(f"ALTER TABLE finding ADD CONSTRAINT {CHECK} "
                          "CHECK (status IN ('open', 'resolved')) NOT VALID"))
        # The scan, under SHARE UPDATE EXCLUSIVE: writers carry on. Harmless when already valid.
        patiently(one(f"ALTER TABLE finding VALIDATE CONSTRAINT {CHECK}"))
        patiently(build_index)
        op.execute("RESET statement_timeout")
        op.execute("RESET lock_timeout")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"SET lock_timeout = '{lock_timeout()}'")
        op.execute("SET statement_timeout = '10min'")
        patiently(lambda: op.drop_index(INDEX, table_name="finding", postgresql_concurrently=True,
                                        if_exists=True))
        patiently(one(f"ALTER TABLE finding DROP CONSTRAINT IF EXISTS {CHECK}"))
        op.execute("RESET statement_timeout")
        op.execute("RESET lock_timeout")
