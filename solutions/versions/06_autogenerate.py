"""autogenerate: rename, widen and default lead's columns, reviewed by hand

Revision ID: ex06_autogenerate
Revises: ex05_constraints
Create Date: 2026-11-24

Exercise 6 (notebooks/06_autogenerate.ipynb), reference solution: autogenerate's draft, reviewed.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex06_autogenerate"
down_revision = "ex05_constraints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each ALTER takes ACCESS EXCLUSIVE on lead, for a catalog change only: give up rather than
    # queue every query behind a long transaction. SET LOCAL lasts until Alembic's transaction ends.
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '5s'")
    # Autogenerate wrote add_column(full_name) + drop_column(name): every name lost. A rename keeps them.
    op.alter_column("lead", "name", new_column_name="full_name", existing_type=sa.Text, existing_nullable=False)
    # A larger varchar: no row needs checking or rewriting, so PostgreSQL changes the catalog only.
    op.alter_column("lead", "email", type_=sa.String(512), existing_type=sa.String(320), existing_nullable=False)
    # A constant default lives in the catalog; existing rows are not touched.
    op.alter_column("lead", "company", server_default="unknown", existing_type=sa.Text, existing_nullable=False)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("SET LOCAL statement_timeout = '5min'")  # narrowing email reads (and rewrites) lead
    op.alter_column("lead", "company", server_default=None, existing_type=sa.Text, existing_nullable=False)
    op.alter_column("lead", "email", type_=sa.String(320), existing_type=sa.String(512), existing_nullable=False)
    op.alter_column("lead", "full_name", new_column_name="name", existing_type=sa.Text, existing_nullable=False)
