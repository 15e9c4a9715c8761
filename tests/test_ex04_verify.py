"""Exercise 4's check: the solution's tests catch every planted bug, weak tests are told which they miss."""
import shutil

from conftest import message, outcomes
from workbook.checks import base
from workbook.checks.ex04_verify import MUTANTS
from workbook.manifest import ROOT

FIXTURES = "from workbook.testing import alembic_config, alembic_engine  # noqa: F401\n"


def track_with_tests(tmp_path, source: str):
    """A copy of the solutions track whose test_migrations.py is `source`."""
    track = tmp_path / "track"
    shutil.copytree(ROOT / "solutions", track, ignore=shutil.ignore_patterns("__pycache__"))
    (track / "test_migrations.py").write_text(source)
    return track


def test_solution_catches_every_planted_bug():
    report = base.check("04", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert set(outcomes(report).values()) == {base.PASSED}
    assert f"caught {len(MUTANTS)} of {len(MUTANTS)} planted bugs" in message(report, "catches_planted_bugs")


def test_untouched_stub_is_not_attempted(stub_track):
    report = base.check("04", stub_track)
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "passes_on_correct")


def test_tests_that_only_assert_true_pass_but_catch_nothing(tmp_path):
    track = track_with_tests(tmp_path, FIXTURES + "\n\ndef test_nothing():\n    assert True\n")
    report = base.check("04", track)
    result = outcomes(report)
    assert result["passes_on_correct"] == base.PASSED
    assert result["catches_planted_bugs"] == base.FAILED
    assert result["own_test"] == base.PASSED  # it is their own test, just a useless one
    text = message(report, "catches_planted_bugs")
    assert f"caught 0 of {len(MUTANTS)} planted bugs" in text
    assert all(m.name in text for m in MUTANTS)


def test_syntax_error_names_the_file(tmp_path):
    track = track_with_tests(tmp_path, FIXTURES + "\ndef test_broken(:\n    pass\n")
    report = base.check("04", track)
    assert report.status == base.FAILED
    assert "test_migrations.py, line 3" in message(report, "loads")


def test_import_error_is_explained_not_a_traceback(tmp_path):
    track = track_with_tests(tmp_path, FIXTURES + "from pytest_alembic.tests import test_no_such_check\n")
    report = base.check("04", track)
    assert report.status == base.FAILED
    text = message(report, "passes_on_correct")
    assert "pytest could not load" in text and "test_migrations.py" in text
    assert "test_no_such_check" in text
    assert "Traceback" not in text
