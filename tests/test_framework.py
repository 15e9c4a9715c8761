"""The check framework and its views, independent of any one exercise."""
import json

import pytest

from conftest import make_track, revision, scratch_left
from workbook import notebook, report
from workbook.checks import base


def test_stub_detection_ignores_comments_and_docstrings(tmp_path):
    path = tmp_path / "x.py"
    path.write_text(revision("r", "b", '"""Nothing yet."""\n# TODO later', "pass"))
    assert base.is_stub(path)
    path.write_text(revision("r", "b", "op.execute('SELECT 1')", "pass"))
    assert not base.is_stub(path)


def test_notebook_check_fails_the_cell_with_one_line(monkeypatch, capsys, stub_track):
    monkeypatch.setenv("WORKBOOK_TRACK", str(stub_track))
    with pytest.raises(AssertionError, match=r"Exercise 01: not attempted yet\. Edit .*01_add_index\.py") as caught:
        notebook.check("01")
    shown = caught.value._render_traceback_()  # what IPython prints instead of a traceback
    assert len(shown) == 1 and "not attempted yet" in shown[0]
    assert "not attempted yet" in capsys.readouterr().out


def test_notebook_check_shows_a_pass_without_raising(monkeypatch, capsys):
    monkeypatch.setenv("WORKBOOK_TRACK", "solutions")
    assert notebook.check("02") is None
    assert "passed: every required criterion holds" in capsys.readouterr().out


def test_views_render_the_same_report(tmp_path):
    track = make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index",
        "op.add_column('lead', sa.Column('priority', sa.String(20), nullable=True))",
        "op.drop_column('lead', 'priority')")})
    result = base.check("02", track)
    text, html, doc = report.as_text(result), report.as_html(result), json.loads(report.as_json(result))
    assert "✗ lead.priority exists" in text and "allows NULL" in text
    assert "allows NULL" in html and "<table>" in html
    assert doc["status"] == "failed" and doc["passed"] is False
    assert {c["id"]: c["outcome"] for c in doc["criteria"]}["no_rewrite"] == "passed"


def test_a_hand_made_index_is_not_a_migration(tmp_path):
    import sqlalchemy as sa
    from workbook import db, manifest, templates
    templates.reset(manifest.get("01"))
    with db.engine().connect() as conn:  # made by hand in the learner's database
        conn.execute(sa.text("CREATE INDEX ix_finding_severity ON finding (severity)"))
        conn.commit()
    track = make_track(tmp_path, **{"01_add_index": revision(
        "ex01_add_index", "baseline", "op.execute('SELECT 1')", "pass")})
    result = base.check("01", track)
    assert {r.id: r.outcome for r in result.criteria}["index_exists"] == base.FAILED
    assert "no index named ix_finding_severity" in result.criteria[0].message


def test_a_failed_replay_leaves_no_scratch_database(tmp_path):
    track = make_track(tmp_path, **{"02_column_default": revision(
        "ex02_column_default", "ex01_add_index", "raise ValueError('boom')", "pass")})
    assert base.check("02", track).status == base.FAILED
    assert scratch_left() == []


def test_setup_finds_alembic_and_squawk_without_an_activated_venv(monkeypatch):
    import os
    import shutil
    import sys
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("WORKBOOK_TRACK", "solutions")
    for key in ("DATABASE_URL", "ALEMBIC_CONFIG"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test
    notebook.setup("01")
    here = os.path.dirname(sys.executable)
    assert shutil.which("alembic") == os.path.join(here, "alembic")
    assert shutil.which("squawk") == os.path.join(here, "squawk")
    assert os.environ["ALEMBIC_CONFIG"].endswith("solutions/alembic.ini")


@pytest.mark.parametrize("exercise", ["01", "03"])
def test_a_broken_neighbour_is_blamed_not_this_exercise(tmp_path, exercise):
    """A syntax error in exercise 2's file: checks 1 and 3 name that file, and only that one."""
    track = make_track(tmp_path)
    target = track / "versions" / "02_column_default.py"
    target.write_text(target.read_text().replace("def upgrade() -> None:", "def upgrade( -> None:", 1))
    result = base.check(exercise, track)
    problem = result.criteria[0].message
    assert result.criteria[0].id == "loads" and result.status == base.FAILED
    assert "02_column_default.py, line" in problem and "does not load" in problem
    own = base.manifest.get(exercise).file
    assert f"{own} itself is fine" in problem and "Expected" not in problem and "keep revision" not in problem


def test_a_stolen_revision_id_blames_the_thief(tmp_path):
    track = make_track(tmp_path)
    target = track / "versions" / "02_column_default.py"
    target.write_text(target.read_text().replace('revision = "ex02_column_default"', 'revision = "ex01_add_index"', 1))
    problem = base.check("01", track).criteria[0].message
    assert problem.startswith(f"{track}/versions/02_column_default.py also says revision = 'ex01_add_index'")


@pytest.mark.parametrize("after", ["ex05_constraints", "ex07_contract"])
def test_a_stray_draft_is_named_by_every_later_check(tmp_path, after):
    """Exercise 6's autogenerate draft left in versions/ (a second head, or a revision after the
    last exercise): exercise 7's check names it before replaying anything."""
    draft = ('"""draft"""\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
             f"revision = '5c1e2d3f4a6b'\ndown_revision = {after!r}\n\n\n"
             "def upgrade():\n    op.drop_column('lead', 'name')\n\n\ndef downgrade():\n    pass\n")
    track = make_track(tmp_path, **{"5c1e2d3f4a6b_draft": draft})
    problem = base.preflight(base.manifest.get("07"), track)
    assert problem and "versions/5c1e2d3f4a6b_draft.py" in problem and f"after {after!r}" in problem
    assert "Delete" in problem and "not one of the workbook's revisions" in problem
    if after == "ex05_constraints":
        assert "Multiple head revisions" in problem and "alembic merge heads" in problem


@pytest.mark.serial  # an 8 s deadline that must end in the expand: run alone, after make test's workers
def test_a_deploy_that_never_ends_is_stopped_with_one_verdict(tmp_path, capsys):
    """lab.deploy (notebook 07) runs in a child process with a deadline, as a check does: an expand
    that sleeps forever ends there with one sentence, and leaves no scratch copy or backend."""
    from workbook import lab

    track = make_track(tmp_path, **{"07_expand": revision(
        "ex07_expand", "ex06_autogenerate", "op.execute('SELECT pg_sleep(3600)')", "pass")})
    run = lab.deploy("07", track, deadline=8)
    assert len(run["failed"]) == 1 and run["apps"] == {}, run["failed"]
    said = run["failed"][0]
    assert said.startswith("Stopped after 8 s while running your upgrade to ex07_expand."), said
    assert said in capsys.readouterr().out and "Traceback" not in said
    assert scratch_left() == []
