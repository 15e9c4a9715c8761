"""Exercise 3: 'info' becomes 'informational', nothing else changes, and the downgrade is exact."""
from __future__ import annotations

import sqlalchemy as sa

from workbook import schema
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, is_stub, phase

# Every row as it was before the upgrade, copied into the probe schema the snapshots ignore, so
# each row can be compared with itself column by column afterwards. A plain copy, unlogged: it is
# several times faster to take than a hash of every row, and it compares exact values.
# Before anything else, a few random rows (different every check) are respelled, so a
# downgrade that knows the seed data by heart (which ids already said 'informational') fails.
SCATTER = """
UPDATE finding SET severity = CASE WHEN random() < 0.5 THEN 'informational' ELSE 'info' END
WHERE id IN (SELECT 1 + floor(random() * (SELECT max(id) FROM finding))::bigint
             FROM generate_series(1, 200))
"""

BEFORE = """
CREATE SCHEMA IF NOT EXISTS wb_probe;
CREATE UNLOGGED TABLE wb_probe.before AS SELECT * FROM finding
"""

# Proof scale: 0.35 (350,000 findings, about 105,000 of them 'info'). Every criterion compares each
# row with its own copy, at any size, except one wrong answer: a migration that updates one LIMIT
# batch and stops leaves 'info' rows behind only when there are more of them than its batch. With
# 105,000 it is caught for any batch up to 100,000 rows, the most the workbook lets one
# transaction write (check 07's BOUND), and twice the 50,000 a learner may well pick. The batched
# advisory needs two batches: any batch size up to 52,000 has them.
# (Folding the comparisons into one grouped scan was tried and measured slower, not faster.)
PROOF_SCALE = 0.35


def attempted(path) -> bool:
    return not is_stub(path)


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    eng = r.engine()
    with eng.connect() as conn:
        rest = [c for c in schema.columns_of(conn, "finding") if c != "severity"]
        conn.execute(sa.text(SCATTER))
        phase("copying every finding before the upgrade")
        for stmt in BEFORE.split(";"):
            conn.execute(sa.text(stmt))
        ev.before_schema = schema.snapshot(conn)
        conn.commit()
        ev.upgrade = r.migrate(conn, "upgrade", r.exercise.revision)
        if ev.upgrade.ok:
            groups = compare(conn, rest)
            ev.counts_before, ev.counts_after = severities(groups)
            ev.changes = changes_after_upgrade(groups)
            ev.batches = batches(conn)
            ev.drift = drift(conn)
            conn.commit()
            ev.downgrade = r.migrate(conn, "downgrade", r.exercise.down_revision)
            if ev.downgrade.ok:
                ev.restored = differences(conn, rest)
                ev.after_downgrade_schema = schema.snapshot(conn)
                conn.commit()
                ev.upgrade_again = r.migrate(conn, "upgrade", r.exercise.revision)
                if ev.upgrade_again.ok:
                    ev.counts_again = counts(conn)
    eng.dispose()
    return ev


def counts(conn) -> dict[str, int]:
    return dict(conn.execute(sa.text("SELECT severity, count(*) FROM finding GROUP BY severity")).all())


def compare(conn, rest: list[str]) -> list[tuple]:
    """(severity before, severity now, other columns changed, rows, an example id), per group.

    Rows that vanished have severity now = None; rows that are new have severity before = None.
    """
    now, was = (", ".join(f"{t}.{c}" for c in rest) for t in "fb")
    # Enough memory to hash the table in one go rather than in batches on disk (measured about
    # a fifth faster at the proof scale); LOCAL, so the learner's next step runs with their own.
    conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    return [tuple(r) for r in conn.execute(sa.text(f"""
        SELECT b.severity, f.severity,
               b.id IS NOT NULL AND f.id IS NOT NULL AND ({now}) IS DISTINCT FROM ({was}), count(*),
               min(coalesce(b.id, f.id))
        FROM wb_probe.before b FULL JOIN finding f USING (id)
        GROUP BY 1, 2, 3 ORDER BY 4 DESC""")).all()]


def severities(groups: list[tuple]) -> tuple[dict[str, int], dict[str, int]]:
    """The severity counts before and after the upgrade, from compare's groups (what counts()
    would say of each table, without scanning them again)."""
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for was, now, _, n, _ in groups:
        if was is not None:
            before[was] = before.get(was, 0) + n
        if now is not None:
            after[now] = after.get(now, 0) + n
    return before, after


def changes_after_upgrade(groups: list[tuple]) -> dict:
    """Rows whose other columns changed, and rows that were not 'info' but changed severity."""
    def tally(rows):
        rows = list(rows)
        return sum(r[3] for r in rows), min((r[4] for r in rows), default=None)
    return {
        "other_columns": tally(r for r in groups if r[2]),
        "not_info": tally(r for r in groups if r[0] not in (None, "info") and r[1] != r[0]),
        "missing": tally(r for r in groups if r[1] is None)[0],
    }


def drift(conn) -> list[str]:
    """What autogenerate (`alembic check`) would change to make the database match the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from workbook import models

    diffs = compare_metadata(MigrationContext.configure(conn), models.metadata_at("ex03_data_migration"))
    conn.rollback()
    return [_describe(d) for d in diffs]


def _describe(diff) -> str:
    op = diff[0] if isinstance(diff, tuple) else diff[0][0]
    if op == "remove_table":
        return f"an extra table {diff[1].name}"
    if op == "remove_column":
        return f"an extra column {diff[2]}.{diff[3].name}"
    if op == "remove_index":
        return f"an extra index {diff[1].name}"
    return str(diff)[:120]


def batches(conn) -> dict:
    """How the renamed rows were committed: one xmin per transaction that last wrote them.

    Only rows the upgrade renamed count: an 'info' row it never reached still carries the xmin
    of whatever wrote it before (the seed, or the check's respelling), not one of its batches.
    """
    row = conn.execute(sa.text(
        "SELECT count(*), coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM finding f "
        "JOIN wb_probe.before b USING (id) WHERE b.severity = 'info' AND f.severity = 'informational' "
        "GROUP BY f.xmin::text) AS t")).one()
    return {"transactions": row[0], "largest": row[1]}


def differences(conn, rest: list[str]) -> dict:
    """Rows that differ from before the upgrade, grouped by (severity before, severity now)."""
    rows = [(was, now, n, example) for was, now, other, n, example in compare(conn, rest)
            if was is None or now is None or was != now or other]
    return {"total": sum(r[2] for r in rows), "groups": rows}


@criterion("no_info_left", "After the upgrade no finding says 'info'.")
def no_info_left(ev: Evidence) -> str:
    """Assert that the rename reached every row."""
    ev.require("upgrade")
    left = ev.counts_after.get("info", 0)
    renamed = ev.counts_before.get("info", 0) - left
    if left and renamed > 0:
        raise Incorrect(f"After the upgrade {left:,} findings still say 'info'; your upgrade renamed "
                        f"{renamed:,} of them. Expected none left: a batched UPDATE must repeat until "
                        "no 'info' row remains (one LIMIT batch is not enough).")
    if left:
        raise Incorrect(f"After the upgrade {left:,} findings still say 'info'; expected none. "
                        "Check the WHERE clause of your UPDATE (spelling, quotes).")
    return f"No finding says 'info' (there were {ev.counts_before.get('info', 0):,})."


@criterion("informational_count", "'informational' count = old 'info' count + old 'informational' count.")
def informational_count(ev: Evidence) -> str:
    """Assert that the renamed rows joined the ones already spelled 'informational', no more, no fewer."""
    ev.require("upgrade")
    info, already = ev.counts_before.get("info", 0), ev.counts_before.get("informational", 0)
    now = ev.counts_after.get("informational", 0)
    if now != info + already:
        raise Incorrect(f"{now:,} findings say 'informational' after the upgrade; expected {info:,} "
                        f"(were 'info') + {already:,} (already 'informational') = {info + already:,}.")
    return f"{now:,} = {info:,} renamed + {already:,} already 'informational'."


@criterion("nothing_else_changed", "Every other column of every row, and every row that was not 'info', is as before.")
def nothing_else_changed(ev: Evidence) -> str:
    """Assert that a data migration changes what it means to change and nothing more."""
    ev.require("upgrade")
    ch = ev.changes
    problems, advice = [], []
    if ch["missing"]:
        problems.append(f"{ch['missing']:,} rows are gone")
        advice.append("a data migration deletes nothing")
    if ch["not_info"][0]:
        problems.append(f"{ch['not_info'][0]:,} rows that did not say 'info' changed severity (e.g. id {ch['not_info'][1]})")
        advice.append("does your UPDATE have its WHERE severity = 'info'?")
    if ch["other_columns"][0]:
        problems.append(f"{ch['other_columns'][0]:,} rows changed in other columns (e.g. id {ch['other_columns'][1]})")
        advice.append("SET only severity")
    if problems:
        raise Incorrect("The upgrade changed more than the severity of 'info' rows: " + "; ".join(problems)
                        + ". Expected nothing else to change: " + "; ".join(advice) + ".")
    return "Only the severity of the 'info' rows changed."


@criterion("downgrade_exact", "Downgrade restores the table exactly (every row matches its copy from before).")
def downgrade_exact(ev: Evidence) -> str:
    """Assert that a rollback gives back the data as it was, not merely data of the same shape."""
    ev.require("upgrade", "downgrade")
    diff = ev.restored
    if diff["total"]:
        parts = []
        for before, now, n, example in diff["groups"][:3]:
            if before is None:
                parts.append(f"{n:,} rows that did not exist (e.g. id {example})")
            elif now is None:
                parts.append(f"{n:,} rows missing (e.g. id {example})")
            elif before != now:
                parts.append(f"{n:,} rows say '{now}' but said '{before}' (e.g. id {example})")
            else:
                parts.append(f"{n:,} rows changed in other columns (e.g. id {example})")
        extra = ""
        if any(b == "informational" and n == "info" for b, n, *_ in diff["groups"]):
            extra = (" The reverse UPDATE cannot tell the rows the upgrade changed from the ones that "
                     "were already 'informational': record which ids the upgrade changed. (The check "
                     "respells about 200 random rows first, so more than the seed's 400 show here.)")
        raise Incorrect(f"After the downgrade {diff['total']:,} rows differ from before the upgrade: "
                        + "; ".join(parts) + "." + extra)
    changes = schema.diff(ev.before_schema, ev.after_downgrade_schema)
    if changes:
        raise Incorrect("The rows are back, but the schema differs from before the upgrade: "
                        + "; ".join(changes[:3]) + ". Drop what the upgrade created.")
    return "Every row matches its copy from before the upgrade, column by column, and the schema is unchanged."


@criterion("upgrade_again", "Upgrade after downgrade works again, with the same result.")
def upgrade_again(ev: Evidence) -> str:
    """Assert that the migration can be re-applied after a rollback and converges to the same data."""
    ev.require("upgrade", "downgrade", "upgrade_again")
    if ev.counts_again != ev.counts_after:
        raise Incorrect(f"The second upgrade gave severity counts {ev.counts_again}, the first "
                        f"{ev.counts_after}; expected the same.")
    return "The second upgrade gave the same severity counts as the first."


@criterion("models_match", "At the new head the models match the database (alembic check finds nothing).")
def models_match(ev: Evidence) -> str:
    """Assert that the migration leaves nothing in the application's schema the models do not know.

    A helper table left in public makes autogenerate propose dropping it in the next revision,
    and makes `alembic check` (and exercise 4's model test) fail on every run from now on.
    """
    ev.require("upgrade")
    if ev.drift:
        raise Incorrect("After the upgrade, `alembic check` would report: " + "; ".join(ev.drift[:3])
                        + ". Keep bookkeeping such as the list of changed ids in a schema of its own "
                        "(for example CREATE SCHEMA undo_ex03), which autogenerate does not compare.")
    return "alembic check finds no difference between the models and the database."


@criterion("batched", "Advisory: the update ran in batches, each its own transaction.", required=False)
def batched(ev: Evidence) -> str:
    """Assert that no single transaction held the row locks of every renamed row.

    Each committed transaction stamps the rows it wrote with its own xmin, so the number of
    distinct xmin values among the renamed rows is the number of transactions that wrote them.
    """
    ev.require("upgrade")
    b = ev.batches
    if b["transactions"] <= 1:
        raise Incorrect(f"All {b['largest']:,} renamed rows were written by one transaction, which "
                        "held all their row locks until it committed. Batch the UPDATE inside "
                        "op.get_context().autocommit_block().")
    return f"{b['transactions']} transactions wrote the renamed rows; the largest wrote {b['largest']:,}."


CRITERIA = [no_info_left, informational_count, nothing_else_changed, downgrade_exact, upgrade_again,
            models_match, batched]
