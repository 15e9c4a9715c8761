"""add ix_finding_severity without blocking writes

Revision ID: ex01_add_index
Revises: baseline
Create Date: 2026-11-23

Exercise 1 (notebooks/01_add_index.ipynb). Filtering findings by severity scans a million rows.
Add an index named ix_finding_severity on finding(severity), in a way that lets INSERT, UPDATE
and DELETE on finding carry on while it is built, and a downgrade that removes it.
Check your work with `workbook check 01`; `workbook hint 01` gives a hint.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex01_add_index"
down_revision = "baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: create the index ix_finding_severity on finding (severity) without blocking writers.
    pass


def downgrade() -> None:
    # TODO: remove the index again.
    pass
