"""contract: stop syncing, make finding.summary NOT NULL without a scan, drop finding.title

Revision ID: ex07_contract
Revises: ex07_expand
Create Date: 2026-11-25

Exercise 7 (notebooks/07_expand_contract.ipynb), reference solution, second half. Runs once no
old code is left: only the new application (summary) is running.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex07_contract"
down_revision = "ex07_expand"
branch_labels = None
depends_on = None

BATCH = 20_000

# The same function as in 07_expand.py, for the downgrade: a revision never imports another,
# since a later edit of one would silently change what the other does.
SYNC = """
CREATE FUNCTION finding_sync_summary() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.title IS DISTINCT FROM OLD.title THEN
        NEW.summary := NEW.title;  -- the old code wrote
    ELSIF TG_OP = 'UPDATE' AND NEW.summary IS DISTINCT FROM OLD.summary THEN
        NEW.title := NEW.summary;  -- the new code (or the backfill) wrote
    ELSE  -- an INSERT, or an UPDATE of neither: fill whichever is missing
        NEW.summary := coalesce(NEW.summary, NEW.title);
        NEW.title := coalesce(NEW.title, NEW.summary);
    END IF;
    RETURN NEW;
END $$
"""


def _not_null(column: str) -> None:
    """SET NOT NULL without its full scan under ACCESS EXCLUSIVE (exercise 5's technique)."""
    check = f"ck_finding_{column}_not_null"
    op.execute(f"ALTER TABLE finding ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID")
    op.execute(f"ALTER TABLE finding VALIDATE CONSTRAINT {check}")  # reads rows, writers carry on
    op.alter_column("finding", column, existing_type=sa.Text, nullable=False)  # uses the valid check
    op.drop_constraint(check, "finding", type_="check")


def upgrade() -> None:
    # Each statement commits on its own, so VALIDATE's scan does not run under the ADD's lock.
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '2s'")
        # The new code writes only summary: once nothing copies it into title, title must accept NULL.
        op.alter_column("finding", "title", existing_type=sa.Text, nullable=True)
        op.execute("DROP TRIGGER finding_sync_summary ON finding")
        op.execute("DROP FUNCTION finding_sync_summary()")
        _not_null("summary")
        op.drop_column("finding", "title")
        op.execute("RESET lock_timeout")


def downgrade() -> None:
    # The new code keeps running: title comes back nullable, in step, filled, and only then NOT NULL.
    bind = op.get_bind()
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '2s'")
        op.add_column("finding", sa.Column("title", sa.Text, nullable=True))
        op.execute(SYNC)
        op.execute("CREATE TRIGGER finding_sync_summary BEFORE INSERT OR UPDATE ON finding "
                   "FOR EACH ROW EXECUTE FUNCTION finding_sync_summary()")
        top = bind.execute(sa.text("SELECT max(id) FROM finding")).scalar() or 0
        for lo in range(0, top, BATCH):
            bind.execute(sa.text("UPDATE finding SET title = summary "
                                 "WHERE id > :lo AND id <= :hi AND title IS NULL"),
                         {"lo": lo, "hi": lo + BATCH})
        _not_null("title")
        op.alter_column("finding", "summary", existing_type=sa.Text, nullable=True)
        op.execute("RESET lock_timeout")
