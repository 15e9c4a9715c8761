"""rename severity 'info' to 'informational'

Revision ID: ex03_data_migration
Revises: ex02_column_default
Create Date: 2026-11-23

Exercise 3 (notebooks/03_data_migration.ipynb), reference solution: exact and batched.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex03_data_migration"
down_revision = "ex02_column_default"
branch_labels = None
depends_on = None

# Ids of the rows the upgrade changed. The reverse UPDATE alone cannot tell them apart from
# rows that already said 'informational' before the upgrade, so the downgrade reads this list.
# It lives in its own schema so that autogenerate and `alembic check` (public schema) ignore it.
UNDO = "undo_ex03"
BATCH = 20_000


def _in_batches(sql: str) -> None:
    """Run `sql` over the recorded ids, BATCH at a time, each batch its own transaction.

    One UPDATE of ~300,000 rows would hold all their row locks until it commits; a writer
    touching any of them would wait for the whole migration. Batches keep each wait short.
    """
    bind = op.get_bind()
    last = 0
    with op.get_context().autocommit_block():
        while True:
            upper = bind.execute(
                sa.text(f"SELECT max(id) FROM (SELECT id FROM {UNDO}.changed_ids "
                        "WHERE id > :last ORDER BY id LIMIT :n) AS batch"),
                {"last": last, "n": BATCH},
            ).scalar()
            if upper is None:
                break
            bind.execute(sa.text(sql), {"lo": last, "hi": upper})
            last = upper


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA {UNDO}")
    op.execute(f"CREATE TABLE {UNDO}.changed_ids (id bigint PRIMARY KEY)")
    op.execute(f"INSERT INTO {UNDO}.changed_ids SELECT id FROM finding WHERE severity = 'info'")
    _in_batches(
        f"UPDATE finding AS f SET severity = 'informational' FROM {UNDO}.changed_ids AS c "
        "WHERE f.id = c.id AND c.id > :lo AND c.id <= :hi AND f.severity = 'info'"
    )


def downgrade() -> None:
    _in_batches(
        f"UPDATE finding AS f SET severity = 'info' FROM {UNDO}.changed_ids AS c "
        "WHERE f.id = c.id AND c.id > :lo AND c.id <= :hi AND f.severity = 'informational'"
    )
    op.execute(f"DROP SCHEMA {UNDO} CASCADE")
