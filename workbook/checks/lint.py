"""squawk, a linter of SQL text, run on the SQL a revision would run, rendered offline.

The other criteria prove their property on a replay; this one reads text by nature.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

from workbook import migrate
from workbook.checks.base import Incorrect, Replay, first_line


def revision_sql(r: Replay) -> dict:
    """The revision's upgrade and downgrade SQL, or why it cannot be rendered without a database."""
    ex = r.exercise
    sql: dict = {}
    for verb, span in (("upgrade", f"{ex.down_revision}:{ex.revision}"),
                       ("downgrade", f"{ex.revision}:{ex.down_revision}")):
        try:
            sql[verb] = migrate.render_sql(verb, span, r.track_dir)
        except Exception as exc:  # e.g. the revision reads from the database, which offline mode cannot
            sql["error"] = first_line(exc)
    return sql


def _upgrade_sql(sql: dict | None) -> str:
    if not sql or "upgrade" not in sql:
        why = (sql or {}).get("error", "it could not be rendered")
        raise Incorrect(f"Could not render the revision as SQL offline ({why}), so this was not checked.")
    return sql["upgrade"]


def squawk_verdict(sql: dict | None, ignore: dict[str, str] | None = None) -> str:
    """Run squawk on the upgrade SQL. `ignore` maps rule -> why this exercise accepts it."""
    text = _upgrade_sql(sql)
    # squawk-cli installs its binary beside this Python, which may not be on PATH (no activated venv).
    exe = shutil.which("squawk", path=os.path.dirname(sys.executable)) or shutil.which("squawk")
    if exe is None:
        raise Incorrect("squawk is not installed (pip install squawk-cli), so the SQL was not linted.")
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(text)
        f.flush()
        proc = subprocess.run([exe, "--reporter", "gcc", "--pg-version", "15", f.name],
                              capture_output=True, text=True, timeout=30)
    found = re.findall(r":(\d+):\d+: (?:warning|error): ([a-z0-9-]+) (.*)", proc.stdout)
    ignore = ignore or {}
    kept = [(line, rule, msg) for line, rule, msg in found if rule not in ignore]
    skipped = sorted({rule for _, rule, _ in found if rule in ignore})
    note = "".join(f" ({rule} is set aside: {ignore[rule]})" for rule in skipped)
    if kept:
        listed = "; ".join(f"{rule} at SQL line {line}: {msg.strip().rstrip('.')}" for line, rule, msg in kept[:3])
        more = f" ({len(kept) - 3} more: run squawk on `alembic upgrade --sql` to see them all)" if len(kept) > 3 else ""
        raise Incorrect(f"squawk reports {len(kept)} issue(s): {listed}{more}.{note}")
    return "squawk reports nothing." + note
