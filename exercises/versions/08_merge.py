"""merge team A's and team B's heads

Revision ID: ex08_merge
Revises: ex07_contract
Create Date: 2026-11-26

Exercise 8 (notebooks/08_branches_merge.ipynb). Two teams each shipped a revision after
ex07_contract: 08_assignee.py (team A) and 08_asset_owner.py (team B). They arrive in your
versions/ when you start exercise 8 (`workbook reset 08`, or the notebook's setup cell). Both
have run on databases already, so neither may be edited. The history then has two heads (three
with this stub, which still follows ex07_contract), and `alembic upgrade head` stops with
"Multiple head revisions are present". Make this file the revision that joins them, as
`alembic merge heads` writes it.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep revision as it is: the checks look for it.
revision = "ex08_merge"
# TODO (exercise 8): the revisions this one follows. A merge names both teams' revisions,
# ex08_assignee and ex08_asset_owner, not the one they both follow.
down_revision = "ex07_contract"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO (exercise 8): what does a merge revision change in the schema?
    pass


def downgrade() -> None:
    pass
