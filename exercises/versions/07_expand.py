"""expand: add finding.summary beside finding.title, keep the two in step, backfill in batches

Revision ID: ex07_expand
Revises: ex06_autogenerate
Create Date: 2026-11-25

Exercise 7 (notebooks/07_expand_contract.ipynb), first half. finding.title is to become
finding.summary while the application runs: the old code (title) keeps running through this
revision, and the new code (summary) starts once it is done. Add summary, keep the two columns
in step whichever version writes, and copy the existing titles across in batches that each
commit. And a downgrade that works while the old code runs. The second half is 07_contract.py.
Check your work with `workbook check 07`; `workbook hint 07` gives a hint.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex07_expand"
down_revision = "ex06_autogenerate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: add summary, keep title and summary in step, backfill in batches.
    pass


def downgrade() -> None:
    # TODO: undo it while the old code still writes title.
    pass
