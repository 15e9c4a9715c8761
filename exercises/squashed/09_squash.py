"""the whole schema at ex08_merge in one step, for new environments

Revision ID: ex09_squashed
Revises: (none: a new root, on the branch label "squashed")
Create Date: 2026-11-30

Exercise 9 (notebooks/09_squash.ipynb). The history from baseline to ex08_merge is long; a new
environment runs all of it. Make this revision build, on an empty database, exactly the schema
that chain leaves: tables, columns and types, defaults, identity, every constraint with its name
and validity, every index, and anything the chain made outside the models. Data is not part of it.

This file lives in squashed/, not in versions/: it is a second root, and in versions/ it would
give your track two heads before you are done. The check reads both folders together, as a
project does once the squash is rolled out. Databases that already run the old chain must never
execute this revision: they are moved to it with `alembic stamp --purge ex09_squashed`.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex09_squashed"
down_revision = None
branch_labels = ("squashed",)
depends_on = None


def upgrade() -> None:
    # TODO (exercise 9): create everything the chain baseline -> ex08_merge leaves, in one step.
    pass


def downgrade() -> None:
    # TODO (exercise 9): drop it all again, back to an empty database.
    pass
