"""ship ck_finding_status and ix_finding_status_created_at on a busy finding table

Revision ID: ex10_production
Revises: ex08_merge
Create Date: 2026-11-30

Exercise 10 (notebooks/10_production.ipynb). finding is busy: the application writes to it all
the time, and other sessions (a long report, a vacuum, another team's index build) hold locks on
it now and then. Ship two changes as a production deploy would:
- CHECK (status IN ('open', 'resolved')) named ck_finding_status, without a scan under a lock
  writers wait for;
- an index ix_finding_status_created_at on finding (status, created_at), built concurrently.
The deploy must get through short windows when another session holds a lock it needs (a short
lock_timeout, and retries), survive being cancelled half-way (a second run finishes the job),
and print a correct script with `alembic upgrade ex08_merge:ex10_production --sql`.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic. Keep them as they are: the checks look for them.
revision = "ex10_production"
down_revision = "ex08_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # TODO (exercise 10): ck_finding_status and ix_finding_status_created_at, safely, re-runnably.
    pass


def downgrade() -> None:
    # TODO (exercise 10): drop both, as safely.
    pass
