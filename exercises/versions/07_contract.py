"""contract: stop syncing, make finding.summary NOT NULL without a scan, drop finding.title

Revision ID: ex07_contract
Revises: ex07_expand
Create Date: 2026-11-25

Exercise 7 (notebooks/07_expand_contract.ipynb), second half. It runs once no old code is left:
only the new application (summary) is running. Stop keeping the columns in step, make summary
NOT NULL without a full scan under ACCESS EXCLUSIVE (exercise 5), drop title. And a downgrade
that brings title back, filled, while the new code runs.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex07_contract"
down_revision = "ex07_expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: drop the syncing, summary NOT NULL (no full scan), drop title.
    pass


def downgrade() -> None:
    # TODO: title back, in step and filled, while the new code writes summary.
    pass
