"""Exercise 8's check: the solution passes, the stub is not attempted, each known-wrong answer fails for its reason."""
import shutil
import subprocess

import pytest

from conftest import make_track, message, outcomes, run_cli
from workbook import manifest, migrate
from workbook.checks import base
from workbook.manifest import ROOT

MERGE = "versions/08_merge.py"
SOLUTION = (ROOT / "solutions" / MERGE).read_text()
TEAM_B = (ROOT / "solutions" / "versions" / "08_asset_owner.py").read_text()
PARENTS = 'down_revision = ("ex08_assignee", "ex08_asset_owner")'
TEAM_B_TABLE = TEAM_B[TEAM_B.index("    op.create_table("):TEAM_B.index("\n\ndef downgrade")]


def failed(report) -> set[str]:
    return {r.id for r in report.criteria if r.outcome == base.FAILED}


def check(tmp_path, **files):
    return base.check("08", make_track(tmp_path, **files))


def learner_track(stub_track, tmp_path):
    """A learner's track as committed: the stubs, and no team files (they arrive with reset 08)."""
    track = tmp_path / "learner"
    shutil.copytree(stub_track, track)
    return track


def test_solution_passes_every_criterion():
    report = base.check("08", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(tmp_path):
    committed = subprocess.run(["git", "show", f"HEAD:exercises/{MERGE}"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout
    report = check(tmp_path, **{"08_merge": committed})
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "one_head")


def test_a_merge_of_one_head_leaves_two(tmp_path):
    report = check(tmp_path, **{"08_merge": SOLUTION.replace(PARENTS, 'down_revision = "ex08_asset_owner"')})
    assert "one_head" in failed(report)
    text = message(report, "one_head")
    assert "Alembic finds 2 heads (ex08_assignee, ex08_merge)" in text
    assert "Multiple head revisions are present" in text and "('ex08_assignee', 'ex08_asset_owner')" in text
    assert "teams_untouched" not in failed(report)


def test_team_b_reparented_onto_team_a_breaks_a_database_that_ran_it(tmp_path):
    # The course outline's advice: make one branch follow the other, and no merge is needed.
    reparented = TEAM_B.replace('down_revision = "ex07_contract"', 'down_revision = "ex08_assignee"')
    report = check(tmp_path, **{"08_asset_owner": reparented,
                                "08_merge": SOLUTION.replace(PARENTS, 'down_revision = "ex08_asset_owner"')})
    assert {"teams_untouched", "deploy_orders"} <= failed(report)
    assert "one_head" not in failed(report)
    text = message(report, "teams_untouched")
    assert "down_revision = 'ex08_assignee' (committed: 'ex08_asset_owner' after 'ex07_contract')" in text
    assert "overlaps with other requested revisions" in text  # Alembic's own words on the stamped copy
    assert "can no longer be upgraded" in text
    # Team B shipped first: Alembic now believes team A's revision has run there too.
    assert "Team A first and team B first end with different catalogs" in message(report, "deploy_orders")


def test_a_merge_that_repeats_a_teams_change_fails_on_a_database_that_ran_it(tmp_path):
    body = SOLUTION.replace("def upgrade() -> None:\n    pass", "def upgrade() -> None:\n" + TEAM_B_TABLE)
    report = check(tmp_path, **{"08_merge": body})
    assert "merge_changes_nothing" in failed(report)
    text = message(report, "merge_changes_nothing")
    assert 'relation "asset_owner" already exists' in text and "repeats a change" in text


def test_a_merge_with_a_change_of_its_own_changes_the_schema(tmp_path):
    body = SOLUTION.replace("def upgrade() -> None:\n    pass", "def upgrade() -> None:\n"
                            "    op.add_column('finding', sa.Column('triaged', sa.Boolean, nullable=True))")
    report = check(tmp_path, **{"08_merge": body})
    assert failed(report) >= {"merge_changes_nothing"}
    assert "+ column public.finding.triaged: boolean NULL" in message(report, "merge_changes_nothing")


def test_team_b_deleted_and_copied_into_the_merge(tmp_path):
    # A deleted team file looks like one that never arrived: the answer cannot be replayed without it.
    track = make_track(tmp_path, **{"08_merge": SOLUTION.replace(PARENTS, 'down_revision = "ex08_assignee"').replace(
        "def upgrade() -> None:\n    pass", "def upgrade() -> None:\n" + TEAM_B_TABLE).replace(
        "def downgrade() -> None:\n    pass", "def downgrade() -> None:\n    op.drop_table('asset_owner')")})
    (track / "versions" / "08_asset_owner.py").unlink()
    report = base.check("08", track)
    assert report.status == base.FAILED
    text = message(report, "loads")
    assert "versions/08_asset_owner.py is missing from your track" in text and "the teams' shipped work" in text
    assert "`workbook reset 08`" in text and "08_assignee" not in text


def test_the_untouched_stub_before_the_teams_files_arrived_is_not_attempted(stub_track):
    assert not (stub_track / "versions" / "08_assignee.py").exists()
    report = base.check("08", stub_track)
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "one_head")


def test_an_answer_before_the_teams_files_arrived_is_told_to_run_reset_08(stub_track, tmp_path):
    track = learner_track(stub_track, tmp_path)
    (track / MERGE).write_text(SOLUTION)
    report = base.check("08", track)
    assert report.status == base.FAILED
    text = message(report, "loads")
    assert "versions/08_assignee.py and versions/08_asset_owner.py are missing from your track" in text
    assert "Run `workbook reset 08` (in a notebook: the setup cell of 08)" in text
    assert all(r.message.startswith("Not checked") for r in report.criteria if r.id != "loads")


def test_reset_08_brings_the_teams_files_and_never_overwrites_one(stub_track, tmp_path):
    track = learner_track(stub_track, tmp_path)
    ex = manifest.get("08")
    # Before exercise 8: one head, exercise 10's stub, which follows the merge's.
    assert migrate.script_directory(track).get_heads() == ["ex10_production"]
    proc = run_cli("reset", "08", env={"WORKBOOK_TRACK": str(track), "WORKBOOK_SCALE": str(base.replay_scale(ex))})
    assert proc.returncode == 0, proc.stderr
    assert "versions/08_assignee.py and versions/08_asset_owner.py copied into" in proc.stdout
    for team in ex.given_parts():
        assert team.path(track).read_bytes() == team.path(ROOT / "solutions").read_bytes()
    assert sorted(migrate.script_directory(track).get_heads()) == ["ex08_asset_owner", "ex08_assignee", "ex10_production"]

    edited = track / "versions" / "08_assignee.py"
    edited.write_text(edited.read_text().replace('"ex07_contract"', '"ex07_expand"'))
    (track / "versions" / "08_asset_owner.py").unlink()
    said = manifest.bring_given(ex, track)
    assert "versions/08_asset_owner.py copied" in said and "08_assignee" not in said
    assert 'down_revision = "ex07_expand"' in edited.read_text()  # left for the check to judge
    assert manifest.bring_given(ex, track) is None


def test_a_later_exercise_brings_the_teams_files_too(stub_track, tmp_path):
    # Exercise 9 starts at ex08_merge: a learner who goes there straight needs both teams' files
    # in the track, or Alembic cannot find the revisions the database says it ran.
    track = learner_track(stub_track, tmp_path)
    said = manifest.bring_given(manifest.get("09"), track)
    assert "exercise 08 arrived" in said and "08_assignee.py and versions/08_asset_owner.py" in said
    assert manifest.bring_given(manifest.get("05"), learner_track(stub_track, tmp_path / "early")) is None


@pytest.mark.parametrize("arrived", [False, True], ids=["one head", "teams and stub: three heads"])
def test_checks_before_08_run_with_or_without_the_teams_files(stub_track, tmp_path, arrived):
    track = learner_track(stub_track, tmp_path)
    if arrived:
        manifest.bring_given(manifest.get("08"), track)
    assert len(migrate.script_directory(track).get_heads()) == (3 if arrived else 1)
    for ex in manifest.exercises()[:-1]:
        assert [base.preflight(part, track) for part in ex.parts()] == [None] * len(ex.parts()), ex.id
        assert base.check(ex.id, track).status == base.NOT_ATTEMPTED, ex.id
