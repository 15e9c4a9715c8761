"""autogenerate: rename, widen and default lead's columns, reviewed by hand

Revision ID: ex06_autogenerate
Revises: ex05_constraints
Create Date: 2026-11-24

Exercise 6 (notebooks/06_autogenerate.ipynb). A teammate's pull request changes the models in
your track's models.py: lead.name becomes lead.full_name, lead.email widens from String(320) to
String(512), lead.company gets server_default 'unknown'. Make those changes there, let
`alembic revision --autogenerate` write a draft, read it, and put the right operations here:
every name must survive, and lead must not be rewritten. And a downgrade that undoes them,
data included. Check your work with `workbook check 06`; `workbook hint 06` gives a hint.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex06_autogenerate"
down_revision = "ex05_constraints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: the rename, the wider email and the server default, as reviewed operations.
    pass


def downgrade() -> None:
    # TODO: undo them, keeping every value.
    pass
