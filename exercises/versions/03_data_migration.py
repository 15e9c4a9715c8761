"""rename severity 'info' to 'informational'

Revision ID: ex03_data_migration
Revises: ex02_column_default
Create Date: 2026-11-23

Exercise 3 (notebooks/03_data_migration.ipynb). Severity 'info' becomes 'informational' across
existing findings. Some rows already say 'informational': the downgrade must put back exactly
the rows the upgrade changed, and nothing else.
Check your work with `workbook check 03`; `workbook hint 03` gives a hint.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex03_data_migration"
down_revision = "ex02_column_default"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: change every finding whose severity is 'info' to 'informational'.
    pass


def downgrade() -> None:
    # TODO: undo exactly what upgrade() changed.
    pass
