"""The application's models once exercise 11 is done: what `alembic check` compares the
SQLite database with (env.py's target_metadata).

Every constraint has a name, so a later batch can find it: the naming convention gives the
unique constraints and the foreign key theirs; a CHECK is named where it is written (a "ck"
convention would be applied to those names a second time by op.create_check_constraint).
"""
import sqlalchemy as sa

NAMING_CONVENTION = {
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

customer = sa.Table(
    "customer", metadata,
    # The legacy `id INTEGER PRIMARY KEY` has no NOT NULL: it is SQLite's rowid, which is never
    # NULL, and autogenerate reads it as nullable. Saying so here keeps `alembic check` quiet.
    sa.Column("id", sa.Integer, primary_key=True, nullable=True),
    sa.Column("email", sa.String(200), nullable=False),
    sa.Column("full_name", sa.Text),
    sa.UniqueConstraint("email"),  # uq_customer_email
)

invoice = sa.Table(
    "invoice", metadata,
    sa.Column("id", sa.Integer, primary_key=True, nullable=True),
    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customer.id"), nullable=False),
    sa.Column("number", sa.String(20), nullable=False),
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.CheckConstraint("status IN ('open', 'paid', 'void')", name="ck_invoice_status"),
    sa.CheckConstraint("amount >= 0", name="ck_invoice_amount"),
    sa.UniqueConstraint("number"),  # uq_invoice_number
)
