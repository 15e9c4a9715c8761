"""add ix_finding_severity without blocking writes

Revision ID: ex01_add_index
Revises: baseline
Create Date: 2026-11-23

Exercise 1 (notebooks/01_add_index.ipynb), reference solution.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex01_add_index"
down_revision = "baseline"
branch_labels = None
depends_on = None

INDEX = "ix_finding_severity"


def upgrade() -> None:
    # A plain CREATE INDEX takes a SHARE lock: every INSERT, UPDATE and DELETE on finding waits
    # for the whole build. CONCURRENTLY takes SHARE UPDATE EXCLUSIVE, which writers do not
    # conflict with. It refuses to run inside a transaction, and Alembic wraps each revision in
    # one, so the autocommit block commits what came before and runs this outside it.
    with op.get_context().autocommit_block():
        # Give up after 2 s rather than queue every later query behind a waiting DDL, and
        # bound the build itself.
        op.execute("SET lock_timeout = '2s'")
        op.execute("SET statement_timeout = '10min'")
        # An interrupted concurrent build leaves an INVALID index behind, which IF NOT EXISTS
        # alone would keep: drop any leftover first, so a retry builds a valid one.
        op.drop_index(INDEX, table_name="finding", postgresql_concurrently=True, if_exists=True)
        op.create_index(INDEX, "finding", ["severity"], postgresql_concurrently=True,
                        if_not_exists=True)
        op.execute("RESET statement_timeout")
        op.execute("RESET lock_timeout")


def downgrade() -> None:
    # DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE: even readers would wait.
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '2s'")
        op.drop_index(INDEX, table_name="finding", postgresql_concurrently=True, if_exists=True)
        op.execute("RESET lock_timeout")
