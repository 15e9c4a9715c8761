"""expand: add finding.summary beside finding.title, keep the two in step, backfill in batches

Revision ID: ex07_expand
Revises: ex06_autogenerate
Create Date: 2026-11-25

Exercise 7 (notebooks/07_expand_contract.ipynb), reference solution, first half. The old
application (title) keeps running through this revision; the new one (summary) starts after it.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex07_expand"
down_revision = "ex06_autogenerate"
branch_labels = None
depends_on = None

BATCH = 20_000

# Whichever version writes, the other name gets the same value: the old code writes title, the
# new code summary, and the backfill (summary from NULL to a value) counts as the new code.
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


def upgrade() -> None:
    # Both statements take ACCESS EXCLUSIVE on finding for a catalog change only: give up rather
    # than queue the application behind a long transaction.
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.add_column("finding", sa.Column("summary", sa.Text, nullable=True))
    op.execute(SYNC)
    op.execute("CREATE TRIGGER finding_sync_summary BEFORE INSERT OR UPDATE ON finding "
               "FOR EACH ROW EXECUTE FUNCTION finding_sync_summary()")
    # The column and trigger commit first (autocommit_block commits Alembic's transaction); then
    # each batch commits on its own, so a row lock is held for one batch, not for a million rows.
    bind = op.get_bind()
    with op.get_context().autocommit_block():
        top = bind.execute(sa.text("SELECT max(id) FROM finding")).scalar() or 0
        for lo in range(0, top, BATCH):
            bind.execute(sa.text("UPDATE finding SET summary = title "
                                 "WHERE id > :lo AND id <= :hi AND summary IS NULL"),
                         {"lo": lo, "hi": lo + BATCH})


def downgrade() -> None:
    # The old code still writes title, which the trigger kept complete: summary can simply go.
    op.execute("SET LOCAL lock_timeout = '2s'")
    op.execute("DROP TRIGGER finding_sync_summary ON finding")
    op.execute("DROP FUNCTION finding_sync_summary()")
    op.drop_column("finding", "summary")
