"""merge team A's and team B's heads

Revision ID: ex08_merge
Revises: (TODO)
Create Date: 2026-11-26

Exercise 8 (notebooks/08_branches_merge.ipynb). Two teams each shipped a revision after
ex07_contract: 08_assignee.py (team A) and 08_asset_owner.py (team B). Both have run on
databases already, so neither may be edited. The history now has two heads, and
`alembic upgrade head` stops with "Multiple head revisions are present".
Make this file the revision that joins them, as `alembic merge heads` writes it.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep revision as it is: the checks look for it.
revision = "ex08_merge"
# TODO (exercise 8): the revisions this one follows. None makes it a second, unrelated start.
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO (exercise 8): what does a merge revision change in the schema?
    pass


def downgrade() -> None:
    pass
