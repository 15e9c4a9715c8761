"""What a learner sees in a notebook: one line instead of a traceback, a setup cell that
recovers after a restart or a stopped server, quiet %sql, hints that count right."""
import os
import subprocess

import pytest

from workbook import db, hints, manifest, notebook, report, seed
from workbook.config import settings
from workbook.checks import base
from workbook.errors import WorkbookError
from workbook.manifest import ROOT


@pytest.fixture
def shell(monkeypatch):
    """A real IPython shell, as in a notebook kernel; setup() changes these variables."""
    from IPython.core.interactiveshell import InteractiveShell
    for key in ("DATABASE_URL", "ALEMBIC_CONFIG", "PATH"):
        monkeypatch.setenv(key, os.environ.get(key, ""))
    ip = InteractiveShell.instance()
    yield ip
    notebook._forget_sql_connections()
    InteractiveShell.clear_instance()  # later tests must not find a notebook around them


def test_the_one_line_counts_the_criteria_not_met(tmp_path):
    from conftest import make_track, revision
    track = make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index",
        "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=True))",
        "op.drop_column('lead', 'priority')")})
    result = base.check("02", track)
    line = notebook.verdict(result)
    missing = len(result.failed_required())
    assert line.startswith("Exercise 02: ") and "(see ✗ above)" in line
    assert (f"{missing} required criteria are" if missing > 1 else "1 required criterion is") in line


def test_workbook_errors_show_their_sentence_alone():
    with pytest.raises(WorkbookError) as caught:
        notebook.hint("99")
    shown = caught.value._render_traceback_()
    assert len(shown) == 1 and "There is no exercise called '99'" in shown[0]


def test_html_messages_render_code_spans_after_escaping():
    result = base.Report("01_add_index", "t", base.FAILED, [base.Result(
        "x", "Uses `autocommit_block()`", True, base.FAILED, "Write `<b>` as `op.execute(...)`, not <b>.")])
    page = report.as_html(result)
    assert "<code>autocommit_block()</code>" in page
    assert "<code>&lt;b&gt;</code>" in page and "not &lt;b&gt;." in page and "`" not in page


def test_a_peek_does_not_promise_the_next_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBOOK_DATA_DIR", str(tmp_path))
    first, again = hints.hint("01", 1), hints.hint("01", 1)
    assert first == again and first.startswith("Hint 1 of")
    assert "run it again" not in first and "ask for hint 2" in first
    plain = hints.hint("01")  # the plain request moves on, and says so truthfully
    assert plain.startswith("Hint 1 of") and "run it again for hint 2" in plain
    assert hints.hint("01").startswith("Hint 2 of")


def test_setup_starts_a_stopped_server_and_quiets_sql(shell, capsys):
    if db.settings().mode != "embedded":
        pytest.skip("only the embedded server is started and stopped by the workbook")
    db.backend().stop()
    assert db.backend().status()["running"] is False
    shell.run_cell('from workbook import setup\nurl = setup("01")', store_history=False)
    assert db.backend().status()["running"] is True
    capsys.readouterr()
    result = shell.run_cell("%sql SELECT count(*) AS leads FROM lead", store_history=False)
    assert result.success, result.error_in_exec
    out = capsys.readouterr().out
    assert "rows affected" not in out and "postgresql" not in out.lower(), out
    assert result.result[0][0] == seed.sizes(settings().scale)["lead"]  # the learner's scale


def test_alembic_in_notebooks_folder_works_before_setup():
    """After a kernel restart ALEMBIC_CONFIG is unset and the working folder is notebooks/."""
    env = {k: v for k, v in os.environ.items() if k != "ALEMBIC_CONFIG"}
    import sys
    alembic = os.path.join(os.path.dirname(sys.executable), "alembic")
    proc = subprocess.run([alembic, "heads"], cwd=ROOT / "notebooks", env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = [ex.head for ex in manifest.exercises() if ex.revision][-1]
    assert f"{last} (head)" in proc.stdout


def _run_it_cell(notebook_file: str) -> str:
    """The code cell under a notebook's "## Run it" heading, as the learner runs it."""
    import json
    cells = json.loads((ROOT / "notebooks" / notebook_file).read_text())["cells"]
    heading = next(i for i, c in enumerate(cells)
                   if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Run it"))
    return "".join(cells[heading + 1]["source"])


def test_run_it_runs_the_file_as_it_is_now_after_an_edit(shell, monkeypatch, tmp_path, capfd):
    """Run All applies the stub first; the learner then edits the file and runs "Run it" again.
    The second run must apply the edited file, not find the database already at ex01_add_index."""
    from conftest import make_track
    track = make_track(tmp_path, **{"01_add_index": (ROOT / "exercises" / "versions" / "01_add_index.py").read_text()})
    ini = track / "alembic.ini"  # the copy's `alembic` must find the repository's migrations/
    ini.write_text(ini.read_text().replace("%(here)s/..", str(ROOT)))
    monkeypatch.setenv("WORKBOOK_TRACK", str(track))
    cell = _run_it_cell("01_add_index.ipynb")

    def index_exists() -> bool:
        from workbook import lab
        return bool(lab.query("SELECT 1 FROM pg_indexes WHERE indexname = 'ix_finding_severity'"))

    assert shell.run_cell('from workbook import setup\nurl = setup("01")', store_history=False).success
    assert shell.run_cell(cell, store_history=False).success
    assert not index_exists()  # the untouched stub, marked as applied
    (track / "versions" / "01_add_index.py").write_text(
        (ROOT / "solutions" / "versions" / "01_add_index.py").read_text())
    capfd.readouterr()
    assert shell.run_cell(cell, store_history=False).success
    out = capfd.readouterr()
    assert "Running upgrade baseline -> ex01_add_index" in out.out + out.err, out
    assert index_exists()


@pytest.mark.parametrize("notebook_file", ["01_add_index.ipynb", "02_column_default.ipynb",
                                           "03_data_migration.ipynb", "05_constraints.ipynb",
                                           "06_autogenerate.ipynb", "08_branches_merge.ipynb",
                                           "11_sqlite_async.ipynb"])
def test_every_run_it_upgrade_starts_over_first(notebook_file):
    cell = _run_it_cell(notebook_file)
    number = notebook_file[:2]
    assert cell.index(f'setup("{number}", quiet=True)') < cell.index("!alembic upgrade "), cell


def test_a_progress_line_inside_another_shows_one_line(monkeypatch):
    """Notebook 07's pitfall cell wraps lab.deploy in a progress line; should deploy show one of
    its own, the cell must still show one line, with the inner phases on it."""
    from workbook import progress
    lines = []

    class Counted(progress.Line):
        def __init__(self, what, draw):
            super().__init__(what, lambda text: None)  # drawn nowhere: only counted
            lines.append(self)

    monkeypatch.setattr(progress, "Line", Counted)
    with progress.shown("outer", "notebook"):
        with progress.shown("inner", "notebook"):
            base.phase("deep inside")
    assert len(lines) == 1 and lines[0].text == "deep inside"
