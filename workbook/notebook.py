"""What the notebooks call: setup(), check(), hint(). Display only; the checks judge."""
from __future__ import annotations

import os
import sys

from workbook import db, hints, manifest, migrate, progress, report, templates, verdicts
from workbook.checks import base
from workbook.config import settings


def setup(name: str) -> str:
    """Reset the database to the exercise's start and point %sql and !alembic at it."""
    ex = manifest.get(name)
    info = templates.reset(ex)
    url = db.url()
    _forget_sql_connections()
    os.environ["DATABASE_URL"] = url  # ipython-sql's %sql uses it when no URL is given
    os.environ["ALEMBIC_CONFIG"] = str(migrate.ini_file())  # !alembic runs this track
    _put_venv_on_path()
    s = settings()
    print(f"Exercise {ex.number}: {ex.title}\n"
          f"  database : {info['database']} on {db.backend().describe()} (WORKBOOK_DB={s.mode})\n"
          f"  revision : {info['revision']} (fresh copy of the exercise's start)\n"
          f"  your file: {base.relative(ex.path(s.track_dir))} (track: {s.track})")
    return url


def _put_venv_on_path() -> None:
    """!alembic, !squawk and !workbook must be this environment's, even if it was not activated."""
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


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
    """The success-criteria cell: shows the checklist, raises AssertionError unless it passes.

    Returns nothing, so the cell shows the checklist and not the Report's repr under it.
    """
    try:
        with progress.shown(f"checking exercise {name}", "notebook" if _in_kernel() else "terminal"):
            result = base.check(name)
        verdicts.remember(manifest.get(name), result.status)
    except base.WorkbookError as err:
        result = base.error_report(name, err)
    _show(result)
    if not result.passed:
        missing = ", ".join(r.id for r in result.failed_required())
        raise AssertionError(f"Exercise {result.exercise} {result.status}: {missing}")


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
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(report.as_html(result)))
    else:
        print(report.as_text(result))
