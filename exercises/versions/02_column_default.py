"""add lead.priority, NOT NULL with server default 'medium'

Revision ID: ex02_column_default
Revises: ex01_add_index
Create Date: 2026-11-23

Exercise 2 (notebooks/02_column_default.ipynb). Leads get a priority: a varchar(20) column
`priority` on lead, NOT NULL. Every existing lead must read 'medium' and new leads default to
it, without rewriting the table. The downgrade drops the column.
Check your work with `workbook check 02`; `workbook hint 02` gives a hint.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex02_column_default"
down_revision = "ex01_add_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: add lead.priority (varchar(20), NOT NULL) so that every lead reads 'medium'.
    pass


def downgrade() -> None:
    # TODO: drop the column again.
    pass
