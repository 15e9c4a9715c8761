"""Exercise 8's check: the solution passes, the stub is not attempted, each known-wrong answer fails for its reason."""
import subprocess

from conftest import make_track, message, outcomes
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
    track = make_track(tmp_path, **{"08_merge": SOLUTION.replace(PARENTS, 'down_revision = "ex08_assignee"').replace(
        "def upgrade() -> None:\n    pass", "def upgrade() -> None:\n" + TEAM_B_TABLE).replace(
        "def downgrade() -> None:\n    pass", "def downgrade() -> None:\n    op.drop_table('asset_owner')")})
    (track / "versions" / "08_asset_owner.py").unlink()
    report = base.check("08", track)
    assert "teams_untouched" in failed(report)
    text = message(report, "teams_untouched")
    assert "versions/08_asset_owner.py (ex08_asset_owner) is gone" in text
    assert "Can't locate revision identified by 'ex08_asset_owner'" in text
