"""Exercise 11: change a legacy SQLite schema with batch mode.

SQLite's ALTER TABLE can add and rename a column, and little else: no type change, no constraint
added or dropped. op.batch_alter_table() makes a new table the way you describe it, copies the
rows across, drops the old one and renames the new one into its place.

Make the schema what models.py says:
- customer: drop fax (the legacy application never filled it); rename name to full_name;
- invoice: amount from TEXT to Integer; add CHECK ck_invoice_amount (amount >= 0) and
  UNIQUE uq_invoice_number (number);
- every constraint gets a name: uq_customer_email, fk_invoice_customer_id_customer and
  ck_invoice_status (the legacy CHECK on status), so a later batch can find it;
- and nothing lost: every row, the foreign key, the CHECK on status.
downgrade() brings the legacy schema back with every row.

Revision ID: ex11_batch
Revises: sqlite_base
"""
from alembic import op
import sqlalchemy as sa

revision = "ex11_batch"
down_revision = "sqlite_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO: one `with op.batch_alter_table(...)` block per table (see the hints: workbook hint 11)
    pass


def downgrade() -> None:
    # TODO: the reverse, table by table
    pass
