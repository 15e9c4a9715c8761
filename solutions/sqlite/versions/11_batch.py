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

# Names for the constraints the legacy tables reflect without one: batch mode gives them these
# names in the new table. Without it they stay unnamed, and no later migration can drop them.
NAMING = {
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}
# Batch mode leaves an unnamed CHECK out of the new table (it only warns): restate it, named.
STATUS = "status IN ('open', 'paid', 'void')"


def upgrade() -> None:
    with op.batch_alter_table("customer", naming_convention=NAMING) as batch:
        batch.drop_column("fax")
        batch.alter_column("name", new_column_name="full_name", existing_type=sa.Text)

    with op.batch_alter_table("invoice", naming_convention=NAMING,
                              table_args=(sa.CheckConstraint(STATUS, name="ck_invoice_status"),)) as batch:
        batch.alter_column("amount", type_=sa.Integer, existing_type=sa.Text, existing_nullable=False)
        batch.create_check_constraint("ck_invoice_amount", "amount >= 0")
        batch.create_unique_constraint("uq_invoice_number", ["number"])


def downgrade() -> None:
    with op.batch_alter_table("invoice") as batch:
        batch.drop_constraint("uq_invoice_number", type_="unique")
        batch.drop_constraint("ck_invoice_amount", type_="check")
        batch.alter_column("amount", type_=sa.Text, existing_type=sa.Integer, existing_nullable=False)

    with op.batch_alter_table("customer") as batch:
        batch.alter_column("full_name", new_column_name="name", existing_type=sa.Text)
        batch.add_column(sa.Column("fax", sa.String(40)))
