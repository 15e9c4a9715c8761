"""What the notebooks call: setup(), check(), hint(). Display only; the checks judge."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from workbook import db, hints, manifest, migrate, progress, report, templates, verdicts
from workbook.checks import base
from workbook.config import settings


class CheckNotPassed(AssertionError):
    """A check cell that does not pass. It stays an error, so "Run All" and nbval stop there, but
    IPython shows only this one line under the checklist instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[1;31m{self}\x1b[0m"]


def setup(name: str, quiet: bool = False) -> str:
    """Reset the database to the exercise's start and point %sql and !alembic at it; bring the
    exercise's given files (exercise 8's teams') into the track when they are missing there.

    Also the one cell to run again after a kernel restart: it starts the server if it was
    stopped, loads the %sql magic and connects it. quiet: one line instead of four, for the
    "Run it" cells, which start over so that the upgrade runs the file as it is now.
    """
    ex = manifest.get(name)
    if ex.environment:
        return _setup_own(ex, quiet)
    db.forget()  # the server may have been stopped since this kernel last looked
    info = templates.reset(ex)
    url = db.url()
    _forget_sql_connections()
    os.environ["DATABASE_URL"] = url  # ipython-sql's %sql uses it when no URL is given
    os.environ["ALEMBIC_CONFIG"] = str(migrate.ini_file())  # !alembic runs this track
    _put_venv_on_path()
    _connect_sql(url)
    s = settings()
    arrived = manifest.bring_given(ex, s.track_dir)
    if quiet:
        print(f"database reset to {info['revision']} (exercise {ex.number}'s start)")
        if arrived:
            print(arrived)
        return url
    given = ", ".join(base.relative(g.path(s.track_dir)) for g in ex.given_parts())
    print(f"Exercise {ex.number}: {ex.title}\n"
          f"  database : {info['database']} on {db.backend().describe()} (WORKBOOK_DB={s.mode})\n"
          f"  revision : {info['revision']} (fresh copy of the exercise's start)\n"
          f"  your file: {base.relative(ex.path(s.track_dir))} (track: {s.track})"
          + (f"\n{arrived}" if arrived else f"\n  given    : {given} (complete: leave them as they are)"
             if given else ""))
    return url


def _setup_own(ex: manifest.Exercise, quiet: bool) -> str:
    """setup() for an exercise with an environment of its own (11's SQLite): a fresh file, and
    %sql and !alembic pointed at it and at the track's sqlite/alembic.ini."""
    from workbook import sqlite_track

    info = templates.reset(ex)
    url = sqlite_track.url(info["database"])
    s = settings()
    _forget_sql_connections()
    os.environ["ALEMBIC_CONFIG"] = str(sqlite_track.environment(s.track_dir) / "alembic.ini")
    _put_venv_on_path()
    _connect_sql(url)
    if quiet:
        print(f"database reset to {info['revision']} (exercise {ex.number}'s start)")
    else:
        print(f"Exercise {ex.number}: {ex.title}\n"
              f"  database : {info['database']} (a SQLite file of its own; no PostgreSQL here)\n"
              f"  revision : {info['revision']} (fresh copy of the legacy database)\n"
              f"  your file: {base.relative(ex.path(s.track_dir))} (track: {s.track}; "
              f"!alembic uses {base.relative(Path(os.environ['ALEMBIC_CONFIG']))})")
    return url


def _put_venv_on_path() -> None:
    """!alembic, !squawk and !workbook must be this environment's, even if it was not activated."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def _connect_sql(url: str) -> None:
    """Load ipython-sql, make it quiet (no connection URL, no "1 rows affected."), connect it."""
    ip = _ipython()
    if ip is None:
        return
    ip.extension_manager.load_extension("sql")
    for line in ("SqlMagic.displaylimit = 20", "SqlMagic.displaycon = False", "SqlMagic.feedback = False"):
        ip.run_line_magic("config", line)
    ip.run_line_magic("sql", url)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _forget_sql_connections() -> None:
    """ipython-sql keeps its connection open; after a reset that session is gone, so drop it."""
    conn_module = sys.modules.get("sql.connection")
    if conn_module is None:
        return
    cls = conn_module.Connection
    for conn in list(cls.connections.values()):
        try:
            conn.internal_connection.close()
        except Exception:  # already closed by the reset; nothing to keep
            pass
    cls.connections.clear()
    cls.current = None


def check(name: str) -> None:
    """The success-criteria cell: shows the checklist, raises CheckNotPassed unless it passes.

    Returns nothing, so the cell shows the checklist and not the Report's repr under it.
    """
    try:
        began = time.monotonic()
        with progress.shown(f"checking exercise {name}", "notebook" if _in_kernel() else "terminal"):
            result = base.check(name)
        verdicts.keep(result, time.monotonic() - began)
    except base.WorkbookError as err:
        result = base.error_report(name, err)
    _show(result)
    if not result.passed:
        raise CheckNotPassed(verdict(result))


def verdict(result: base.Report) -> str:
    """The one line under a checklist that did not pass."""
    number = result.exercise[:2]
    if result.status == base.NOT_ATTEMPTED:
        return f"Exercise {number}: not attempted yet. Edit {result.file}, then run this cell again."
    if result.status == base.ERROR:
        return f"Exercise {number}: the check could not run (see ! above)."
    missing = len(result.failed_required())
    criteria = "1 required criterion is" if missing == 1 else f"{missing} required criteria are"
    return f"Exercise {number}: {criteria} not met (see ✗ above)."


def hint(name: str, number: int | None = None) -> None:
    print(hints.hint(name, number))


def url() -> str:
    return db.url()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _show(result: base.Report) -> None:
    if _ipython() is not None:
        from IPython.display import HTML, display
        display(HTML(report.as_html(result)))
    else:
        print(report.as_text(result))
