"""add lead.priority, NOT NULL with server default 'medium'

Revision ID: ex02_column_default
Revises: ex01_add_index
Create Date: 2026-11-23

Exercise 2 (notebooks/02_column_default.ipynb), reference solution.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex02_column_default"
down_revision = "ex01_add_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN takes ACCESS EXCLUSIVE, if only for a moment. Behind a long query it would
    # queue every later query on lead, so give up after 2 s instead (and retry later). SET LOCAL
    # lasts until Alembic's transaction ends. Keep lock_timeout below statement_timeout, so a
    # wait for the lock is what gives up first.
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '5s'")  # the change itself is instant
    # server_default, not default: the database itself must know the value, both for the rows
    # that exist now and for INSERTs that do not go through SQLAlchemy. A constant default is
    # kept in the catalog (PostgreSQL 11+), so the table is not rewritten.
    op.add_column(
        "lead",
        sa.Column("priority", sa.String(20), nullable=False, server_default="medium"),
    )


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.drop_column("lead", "priority")
