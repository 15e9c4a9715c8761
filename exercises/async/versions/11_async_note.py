"""The one revision of exercise 11's async environment: given complete, leave it as it is.

Revision ID: ex11_async_note
"""
from alembic import op
import sqlalchemy as sa

revision = "ex11_async_note"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("async_note", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("body", sa.Text, nullable=False))


def downgrade() -> None:
    op.drop_table("async_note")
