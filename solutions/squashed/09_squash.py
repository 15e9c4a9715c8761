"""the whole schema at ex08_merge in one step, for new environments

Revision ID: ex09_squashed
Revises: (none: a new root, on the branch label "squashed")
Create Date: 2026-11-30

Exercise 9 (notebooks/09_squash.ipynb), reference solution. It builds, on an empty database,
exactly the catalog that baseline -> ... -> ex08_merge leaves: every name, type, default,
identity, constraint (with its name and validity), index and the undo_ex03 schema the chain
leaves behind. The rows the chain seeds are not part of it: a squash rebuilds the schema only.

It is a root of its own (down_revision = None) on the branch label "squashed", so a database
that already runs the old chain never executes it: there every table already exists, and
CREATE TABLE would fail (or, written with IF NOT EXISTS, add a second copy of an unnamed
constraint). Such a database is moved over with `alembic stamp --purge ex09_squashed`, which
rewrites alembic_version and runs no DDL; new environments run `alembic upgrade squashed@head`.
No application code is imported here: revisions outlive the code around them.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep revision as it is: the checks look for it.
revision = "ex09_squashed"
down_revision = None
branch_labels = ("squashed",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.create_table(
        "finding",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("asset_id", sa.Integer,
                  sa.ForeignKey("asset.id", name="fk_finding_asset_id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="open"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("assignee", sa.Text, nullable=True),
    )
    op.create_table(
        "lead",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        # Created as `name` and renamed below, as the chain did: PostgreSQL 18 names a column's
        # NOT NULL constraint after the column it was made for (lead_name_not_null), and keeps it.
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("email", sa.String(512), nullable=False),
        sa.Column("company", sa.Text, nullable=False, server_default="unknown"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("priority", sa.String(20), nullable=False, server_default="medium"),
        sa.CheckConstraint("priority IN ('low', 'medium', 'high')", name="ck_lead_priority"),
    )
    op.alter_column("lead", "name", new_column_name="full_name", existing_type=sa.Text)
    op.create_table(
        "asset_owner",
        sa.Column("asset_id", sa.Integer,
                  sa.ForeignKey("asset.id", name="fk_asset_owner_asset_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Built concurrently in the chain, because the tables were full; on an empty table a plain
    # index is the same catalog entry, and the unique constraint uses its index as before.
    op.create_index("ix_finding_severity", "finding", ["severity"])
    op.create_index("ix_finding_asset_id", "finding", ["asset_id"])
    op.create_index("ix_finding_assignee", "finding", ["assignee"])
    op.create_index("uq_lead_email", "lead", ["email"], unique=True)
    op.execute("ALTER TABLE lead ADD CONSTRAINT uq_lead_email UNIQUE USING INDEX uq_lead_email")
    # Outside the models, so autogenerate never writes it: exercise 3's record of the ids it
    # changed, which the chain leaves in every database (empty here: data is not squashed).
    op.execute("CREATE SCHEMA undo_ex03")
    op.execute("CREATE TABLE undo_ex03.changed_ids (id bigint PRIMARY KEY)")


def downgrade() -> None:
    op.execute("DROP SCHEMA undo_ex03 CASCADE")
    op.drop_table("asset_owner")
    op.drop_table("lead")
    op.drop_table("finding")
    op.drop_table("asset")
