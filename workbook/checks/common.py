"""Criteria several exercises share, so each rule is written (and worded) once."""
from __future__ import annotations

from workbook import locks, schema
from workbook.checks import lint, statement_log
from workbook.checks.base import Criterion, Evidence, Incorrect, Step, criterion


def apps_busy(results) -> Step:
    """A step the simulated applications' server trouble stopped, if any (a check then judges
    nothing: base.check's _busy), else a step that went well."""
    said = next((r["busy"] for r in results if r.get("busy")), "")
    return Step(not said, busy=f"the simulated application could not run: {said}" if said else "")


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
# The longest lock_timeout the advisory accepts. While a DDL waits for its lock, the queries after it
# on the table wait behind it: a few seconds is what an application's own timeouts absorb. The
# hints ask for 2s; 10 s leaves room for a deliberate choice and is as long as the old live probe
# (6 s of waiting, plus its start) ever let a DDL wait.
MOST_MS = 10_000


@criterion("lock_timeout", "Advisory: each schema change of the upgrade runs with a lock_timeout (above 0, at "
           "most 10 s, below any statement_timeout), so behind a held lock it gives up instead of waiting.",
           required=False)
def lock_timeout(ev: Evidence) -> str:
    """Assert that a DDL waiting for its lock gives up instead of queueing every query behind it.

    Judged per statement from the server (checks.statement_log, ev.upgrade_statements): for each
    statement that asked for a lock stronger than ROW EXCLUSIVE on the exercise's tables (pg_locks;
    CREATE INDEX CONCURRENTLY's SHARE UPDATE EXCLUSIVE included, as it too waits behind an ACCESS
    EXCLUSIVE holder), the lock_timeout and statement_timeout the migration's own session had in
    force right before it was sent. Those are the values the server applies to its wait: a
    SET LOCAL it ignored reads 0 there, a RESET before the statement reads 0, a SET after it
    counts for later statements only. tests/test_lock_advisories.py shows a recorded value making
    the same DDL give up behind a held lock, live. Decided at any scale: a setting and a lock
    mode do not depend on how many rows the table holds.
    """
    log = ev.get("upgrade_statements")
    if log is None:
        raise Incorrect("Not checked: the upgrade was not recorded statement by statement.")
    ev.require("upgrade")
    changes = [(e, statement_log.schema_locks(e)[0]) for e in log if statement_log.schema_locks(e)]
    if not changes:
        raise Incorrect("Not checked: no statement of the upgrade asked for a lock stronger than ROW EXCLUSIVE "
                        "on the exercise's tables, so none could have queued queries behind it.")
    short = [(e, lock, problem) for e, lock in changes for problem in [_timeout_problem(e)] if problem]
    if not short:
        tables = ", ".join(sorted({t for _, (t, _) in changes}))
        values = " or ".join(sorted({_shown(e["lock_timeout"]) for e, _ in changes}))
        one = len(changes) == 1
        return (f"{len(changes)} statement{'' if one else 's'} of the upgrade asked for a lock stronger than ROW "
                f"EXCLUSIVE on {tables}, with lock_timeout = {values} in force for {'it' if one else 'each'}, as the "
                f"server reported just before: behind another session's lock, {'it' if one else 'each'} gives up "
                "instead of queueing queries.")
    entry, (table, mode), problem = short[0]
    lt, st = entry["lock_timeout"], entry["statement_timeout"]
    said = f"{statement_log.quoted(entry['sql'], 80)} asked for {mode} on {table}"
    more = (f" ({len(short) - 1} more of the upgrade's {len(changes)} such statements fall short too.)"
            if len(short) > 1 else "")
    if problem == "mixed":
        raise Incorrect(f"{said} in one string that also changed lock_timeout ({_shown(lt)} before it, "
                        f"{_shown(entry['lock_timeout_after'])} after it): the server is asked between the strings "
                        f"a migration sends, so which part of this one ran under which value is not known.{more} "
                        "Send the SET in an op.execute() of its own, before the statement it should bound.")
    if problem == "long":
        raise Incorrect(f"{said} with lock_timeout = {_shown(lt)}: behind another session's lock it would wait up "
                        f"to {_shown(lt)}, and {_queue(table, mode)} for as long.{more} Expected at most "
                        f"{_shown(MOST_MS)}: '2s' is usual, as a DDL that gives up can be retried later.")
    if problem == "statement":
        raise Incorrect(f"{said} with lock_timeout = {_shown(lt)} and statement_timeout = {_shown(st)}: behind another "
                        "session's lock the statement timeout would end its wait first (\"canceling statement due "
                        f"to statement timeout\"), not a lock timeout.{more} Expected a lock_timeout shorter than "
                        "any statement_timeout, so a wait for a lock gives up first and the statement_timeout "
                        "bounds the work itself.")
    raise Incorrect(f"{said} with lock_timeout = 0 (none) in force, as the server reported just before it ran: "
                    f"behind another session's lock it would wait for as long as that lock is held, and "
                    f"{_queue(table, mode)}.{_why_none(log, entry)}{more} Expected it to give up: "
                    "op.execute(\"SET LOCAL lock_timeout = '2s'\") in a revision that runs in Alembic's transaction, "
                    "op.execute(\"SET lock_timeout = '2s'\") inside an autocommit block.")


def _timeout_problem(entry: dict) -> str | None:
    lt, st = entry["lock_timeout"], entry["statement_timeout"]
    if entry["lock_timeout_after"] != lt:
        return "mixed"
    if lt == 0:
        return "none"
    if lt > MOST_MS:
        return "long"
    if st and st <= lt:
        return "statement"
    return None


def _why_none(log: list[dict], entry: dict) -> str:
    """Why no lock_timeout was in force for `entry`, from what the server said and had in force around it."""
    sent = [s for e in log for s in [*e.get("set_before", []), e]]  # every statement, in order
    i = next(i for i, s in enumerate(sent) if s is entry)
    ignored = next((s for s in sent[:i + 1] if any(SET_LOCAL_IGNORED in n for n in s["notices"])), None)
    if ignored is not None:
        return (f" PostgreSQL warned \"{SET_LOCAL_IGNORED}\" at {statement_log.quoted(ignored['sql'], 60)}: inside "
                "an autocommit block there is no transaction for SET LOCAL to last until, so it did nothing. "
                "There, write SET lock_timeout and RESET it after the DDL.")
    earlier = next((s for s in reversed(sent[:i]) if s["lock_timeout"]), None)
    if earlier is not None:
        return (f" Earlier statements ran with lock_timeout = {_shown(earlier['lock_timeout'])}, but it was 0 again "
                "by this one: a RESET, or the end of the transaction a SET LOCAL lasts until, came before it. "
                "Keep it in force until the last statement it should bound.")
    later = next((s for s in sent[i + 1:] if s["lock_timeout"]), None)
    if later is not None:
        return (f" A lock_timeout ({_shown(later['lock_timeout'])}) came into force only after this statement: "
                "set it before the statements it should bound.")
    return ""


def _queue(table: str, mode: str) -> str:
    """Who would wait behind a request for `mode` on `table` while it waits."""
    if mode in locks.READER_BLOCKING:
        return f"every later query on {table}, reads included, would queue behind it"
    if mode not in locks.WRITER_SAFE:
        return f"every later write to {table} would queue behind it"
    return f"every later schema change, index build and vacuum of {table} would queue behind it"


def _shown(ms: int) -> str:
    """A timeout as PostgreSQL's SHOW writes it: 0 means none."""
    if ms == 0:
        return "0 (none)"
    for unit, size in (("min", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def squawk(ignore: dict[str, str] | None = None, required: bool = False) -> Criterion:
    """The squawk criterion; `ignore` maps a rule to why this exercise accepts it. Advisory, except
    where reviewing the script is the exercise's subject (exercise 10)."""
    @criterion("squawk", ("" if required else "Advisory: ") + "squawk, a linter of the SQL text, reports nothing "
               "on the revision's offline SQL" + (" beyond the rules the exercise sets aside, each with its reason."
                                                   if required else "."), required=required)
    def squawk_clean(ev: Evidence) -> str:
        """Assert that a migration linter finds nothing unsafe in the SQL this revision runs.

        squawk reads text by nature (Alembic's offline SQL); the live proofs are the other criteria.
        """
        return lint.squawk_verdict(ev.get("sql"), ignore=ignore)
    return squawk_clean
