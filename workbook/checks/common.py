"""Criteria several exercises share, so each rule is written (and worded) once."""
from __future__ import annotations

from workbook import schema
from workbook.checks import lint
from workbook.checks.base import Criterion, Evidence, Incorrect, criterion


def schema_restored(statement: str, fix: str) -> Criterion:
    """A criterion comparing ev.before with ev.after_downgrade; `fix` says what to write."""
    @criterion("downgrade_restores", statement)
    def downgrade_restores(ev: Evidence) -> str:
        """Assert that rolling back returns the schema to exactly what it was."""
        ev.require("upgrade", "downgrade")
        changes = schema.diff(ev.before, ev.after_downgrade)
        if changes:
            raise Incorrect("After the downgrade the schema differs from before the upgrade: "
                            + "; ".join(changes[:3]) + f". Expected no difference: {fix}.")
        return "After the downgrade the schema is identical to the one before the upgrade."
    return downgrade_restores


@criterion("upgrade_again", "Upgrade after downgrade works again.")
def upgrade_again(ev: Evidence) -> str:
    """Assert that the revision can be re-applied after a rollback, as a redeploy would."""
    ev.require("upgrade", "downgrade", "upgrade_again")
    return "The upgrade ran again after the downgrade."


@criterion("lock_timeout", "Advisory: the revision sets a lock_timeout.", required=False)
def lock_timeout(ev: Evidence) -> str:
    """Assert that a DDL waiting for its lock gives up instead of queueing every query behind it."""
    return lint.require_lock_timeout(ev.get("sql"))


def squawk(ignore: dict[str, str] | None = None) -> Criterion:
    """The squawk criterion; `ignore` maps a rule to why this exercise accepts it."""
    @criterion("squawk", "Advisory: squawk reports nothing on the revision's SQL.", required=False)
    def squawk_clean(ev: Evidence) -> str:
        """Assert that a migration linter finds nothing unsafe in the SQL this revision runs."""
        return lint.squawk_verdict(ev.get("sql"), ignore=ignore)
    return squawk_clean
