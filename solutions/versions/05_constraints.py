"""constraints on busy tables: check, foreign key, unique, NOT NULL, without long locks

Revision ID: ex05_constraints
Revises: ex03_data_migration
Create Date: 2026-11-24

Exercise 5 (notebooks/05_constraints.ipynb), reference solution.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex05_constraints"
down_revision = "ex03_data_migration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every statement below runs in its own transaction (autocommit block), so a lock one takes
    # is released when it ends: an ADD ... NOT VALID holds its strong lock for a catalog change
    # only, and VALIDATE, which reads every row, holds SHARE UPDATE EXCLUSIVE, which writers do
    # not conflict with. SET, not SET LOCAL: there is no transaction here for SET LOCAL to last.
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '2s'")  # any wait for a lock: give up, retry later
        op.execute("SET statement_timeout = '5min'")  # the scans themselves: bounded, but generous

        # 1. Only 'low', 'medium' and 'high'. NOT VALID checks new rows from now on, at once.
        op.create_check_constraint("ck_lead_priority", "lead", "priority IN ('low', 'medium', 'high')",
                                   postgresql_not_valid=True)
        op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_priority")

        # 2. The assets findings refer to, then the foreign key, then its index: without the
        # index, every DELETE FROM asset would scan finding to look for references.
        op.create_table("asset", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                        sa.Column("name", sa.Text, nullable=False))
        op.execute("INSERT INTO asset (id, name) SELECT DISTINCT asset_id, 'asset ' || asset_id FROM finding")
        op.create_foreign_key("fk_finding_asset_id", "finding", "asset", ["asset_id"], ["id"],
                              postgresql_not_valid=True)
        op.execute("ALTER TABLE finding VALIDATE CONSTRAINT fk_finding_asset_id")
        op.create_index("ix_finding_asset_id", "finding", ["asset_id"], postgresql_concurrently=True)

        # 3. A unique constraint needs a unique index. Build it concurrently, then let the
        # constraint take it over (a catalog change only).
        op.create_index("uq_lead_email", "lead", ["email"], unique=True, postgresql_concurrently=True)
        op.execute("ALTER TABLE lead ADD CONSTRAINT uq_lead_email UNIQUE USING INDEX uq_lead_email")

        # 4. lead.company NOT NULL. Fill the gaps first; then a valid CHECK (company IS NOT NULL)
        # lets SET NOT NULL skip its scan under ACCESS EXCLUSIVE (PostgreSQL 12+).
        op.execute("UPDATE lead SET company = 'unknown' WHERE company IS NULL")
        op.create_check_constraint("ck_lead_company_not_null", "lead", "company IS NOT NULL",
                                   postgresql_not_valid=True)
        op.execute("ALTER TABLE lead VALIDATE CONSTRAINT ck_lead_company_not_null")
        op.alter_column("lead", "company", existing_type=sa.Text, nullable=False)
        op.drop_constraint("ck_lead_company_not_null", "lead", type_="check")

        op.execute("RESET statement_timeout")
        op.execute("RESET lock_timeout")


def downgrade() -> None:
    # Dropping constraints is a catalog change; only the indexes are dropped concurrently. The
    # companies filled in stay filled in: 'unknown' cannot be told from a company named so.
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '2s'")
        op.execute("SET statement_timeout = '5min'")
        op.alter_column("lead", "company", existing_type=sa.Text, nullable=True)
        op.drop_constraint("uq_lead_email", "lead", type_="unique")
        op.drop_constraint("fk_finding_asset_id", "finding", type_="foreignkey")
        op.drop_index("ix_finding_asset_id", table_name="finding", postgresql_concurrently=True)
        op.drop_table("asset")
        op.drop_constraint("ck_lead_priority", "lead", type_="check")
        op.execute("RESET statement_timeout")
        op.execute("RESET lock_timeout")
