"""constraints on busy tables: check, foreign key, unique, NOT NULL, without long locks

Revision ID: ex05_constraints
Revises: ex03_data_migration
Create Date: 2026-11-24

Exercise 5 (notebooks/05_constraints.ipynb). Writers use lead and finding all day. Add, without
holding a lock that writers wait for while a table is read:
1. a check constraint ck_lead_priority: lead.priority is 'low', 'medium' or 'high';
2. a table asset (id integer primary key, name text not null) holding every asset_id that
   finding refers to, a foreign key fk_finding_asset_id from finding.asset_id to it, and an
   index ix_finding_asset_id on finding(asset_id);
3. a unique constraint uq_lead_email on lead(email);
4. NOT NULL on lead.company (fill the NULLs with 'unknown' first).
And a downgrade that removes them. Check your work with `workbook check 05`; `workbook hint 05`
gives a hint.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex05_constraints"
down_revision = "ex03_data_migration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: the four changes above, each without reading a table under a lock writers wait for.
    pass


def downgrade() -> None:
    # TODO: remove them again.
    pass
