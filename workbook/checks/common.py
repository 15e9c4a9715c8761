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


SET_LOCAL_IGNORED = "SET LOCAL can only be used in transaction blocks"


@criterion("lock_timeout", "Advisory: behind a held lock, the upgrade's DDL gives up (lock_timeout) "
           "instead of waiting.", required=False)
def lock_timeout(ev: Evidence) -> str:
    """Assert that a DDL waiting for its lock gives up instead of queueing every query behind it.

    Proven live by checks.lock_probe: another session holds ACCESS EXCLUSIVE on the table while
    the upgrade runs on a copy; the DDL must fail with lock_not_available (SQLSTATE 55P03)
    within a few seconds of starting to wait.
    """
    p = ev.get("lock_probe")
    if not p or "failed" in p:
        raise Incorrect(f"Not checked: the lock probe could not run ({(p or {}).get('failed', 'no result')}).")
    if not p["waited"]:
        if p["error"]:
            raise Incorrect(f"Not checked: the upgrade failed before any statement waited for a lock ({p['error']}).")
        raise Incorrect("Not checked: no statement of the upgrade waited behind the held lock, so it "
                        "touched none of the exercise's tables.")
    table, mode = p["lock"]
    if p["gave_up"]:
        return (f"With {table} locked by another session, the upgrade's {mode} request gave up after "
                f"{p['seconds']:.1f} s (lock_not_available): a lock_timeout was in effect.")
    why = ""
    if any(SET_LOCAL_IGNORED in n for n in p.get("notices", [])):
        why = (f" PostgreSQL warned \"{SET_LOCAL_IGNORED}\": a SET LOCAL inside an autocommit block is "
               "ignored, as there is no transaction for it to last until. There, write SET lock_timeout "
               "and RESET it after the DDL.")
    if p["cancelled"]:
        raise Incorrect(
            f"With {table} locked by another session, the upgrade's {mode} request was still waiting "
            f"after {p['seconds']:.0f} s, when the check cancelled it: no lock_timeout was in effect, so "
            f"in production every later query on {table} would queue behind it.{why} Expected it to give "
            "up: op.execute(\"SET LOCAL lock_timeout = '2s'\") in a revision that runs in Alembic's "
            "transaction, op.execute(\"SET lock_timeout = '2s'\") inside an autocommit block.")
    raise Incorrect(
        f"With {table} locked by another session, the upgrade's {mode} request ended after "
        f"{p['seconds']:.1f} s with \"{p['error']}\", not with a lock timeout.{why} Expected a "
        "lock_timeout shorter than any statement_timeout, so a wait for a lock gives up first.")


def squawk(ignore: dict[str, str] | None = None) -> Criterion:
    """The squawk criterion; `ignore` maps a rule to why this exercise accepts it."""
    @criterion("squawk", "Advisory: squawk, a linter of the SQL text, reports nothing on the revision's "
               "offline SQL.", required=False)
    def squawk_clean(ev: Evidence) -> str:
        """Assert that a migration linter finds nothing unsafe in the SQL this revision runs.

        squawk reads text by nature (Alembic's offline SQL); the live proofs are the other criteria.
        """
        return lint.squawk_verdict(ev.get("sql"), ignore=ignore)
    return squawk_clean
