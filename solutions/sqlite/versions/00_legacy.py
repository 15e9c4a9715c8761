"""The legacy schema, as the application created it: no constraint has a name.

`workbook reset 11` builds this with sqlite3 and stamps it; on an empty file, upgrading through
this revision creates the same tables.

Revision ID: sqlite_base
"""
from alembic import op

from workbook.sqlite_track import LEGACY_DDL

revision = "sqlite_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in filter(str.strip, LEGACY_DDL.split(";")):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE invoice")
    op.execute("DROP TABLE customer")
