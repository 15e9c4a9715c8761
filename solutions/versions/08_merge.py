"""merge team A's and team B's heads

Revision ID: ex08_merge
Revises: ex08_assignee, ex08_asset_owner
Create Date: 2026-11-26

Exercise 8 (notebooks/08_branches_merge.ipynb), reference solution: what
`alembic merge -m "merge team A's and team B's heads" --rev-id ex08_merge heads` writes.
It changes no schema: each team's revision already did its own part, and a database runs this
after both, whichever shipped first. Its only job is to make the two heads one again.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex08_merge"
down_revision = ("ex08_assignee", "ex08_asset_owner")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
