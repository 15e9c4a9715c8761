"""Exercise 7's check: the solution passes, the stubs are not attempted, each known-wrong answer
fails for its own reason, judged from what the simulated application saw and the server said."""
import re

from conftest import make_track, message, only_failures, scratch_left
from workbook.checks import base
from workbook.manifest import ROOT

EXPAND = (ROOT / "solutions" / "versions" / "07_expand.py").read_text()
CONTRACT = (ROOT / "solutions" / "versions" / "07_contract.py").read_text()


# The models of a learner who skipped exercise 6: exercise 7 is judged on its rename alone.
BEFORE_SIX = ((ROOT / "solutions" / "models.py").read_text().replace("full_name: Mapped", "name: Mapped")
              .replace("sa.String(512)", "sa.String(320)").replace('sa.Text, server_default="unknown"', "sa.Text"))


def check(tmp_path, expand: str = EXPAND, contract: str = CONTRACT, **files: str) -> base.Report:
    return base.check("07", make_track(tmp_path, **{"07_expand": expand, "07_contract": contract}, **files))


def replace_function(source: str, name: str, new_body: str) -> str:
    """`source` with function `name`'s body replaced (up to the next top-level definition)."""
    return re.sub(rf"^def {name}\(.*?(?=^def |\Z)", f"def {name}() -> None:\n{new_body}\n\n",
                  source, flags=re.S | re.M)


def test_solution_passes_every_criterion():
    report = base.check("07", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert not scratch_left()


def test_untouched_stubs_are_not_attempted(stub_track):
    report = base.check("07", stub_track)
    assert report.status == base.NOT_ATTEMPTED
    assert "still the stub" in message(report, "apps_kept_running")


def test_a_rename_in_one_step_breaks_the_old_code(tmp_path):
    expand = replace_function(EXPAND, "upgrade", "    op.alter_column('finding', 'title', new_column_name='summary')")
    expand = replace_function(expand, "downgrade", "    op.alter_column('finding', 'summary', new_column_name='title')")
    untouched = replace_function(replace_function(CONTRACT, "upgrade", "    pass"), "downgrade", "    pass")
    report = check(tmp_path, expand, untouched)
    assert "apps_kept_running" in only_failures(report)
    text = message(report, "apps_kept_running")
    assert "The old code had" in text and '"title"' in text and "does not exist" in text
    assert "07_contract.py is still the stub" in message(report, "contracted")


def test_expand_without_the_trigger_loses_the_old_codes_writes(tmp_path):
    expand = re.sub(r"\n    op\.execute\(SYNC\)\n    op\.execute\(\"CREATE TRIGGER.*?\)\n", "\n",
                    EXPAND, flags=re.S)
    assert "CREATE TRIGGER" not in expand.split("def upgrade")[1].split("def downgrade")[0]
    expand = expand.replace('op.execute("DROP TRIGGER finding_sync_summary ON finding")\n    '
                            'op.execute("DROP FUNCTION finding_sync_summary()")\n    ', "")
    report = check(tmp_path, expand)
    assert "no_lost_write" in only_failures(report)
    assert "trigger" in message(report, "no_lost_write")


def test_a_backfill_in_one_transaction_holds_the_application_up(tmp_path):
    start, end = EXPAND.index("    bind = op.get_bind()"), EXPAND.index("def downgrade")
    expand = EXPAND[:start] + '    op.execute("UPDATE finding SET summary = title")\n\n\n' + EXPAND[end:]
    report = check(tmp_path, expand)
    assert only_failures(report) >= {"short_waits"}
    assert "waited" in message(report, "short_waits") and "batches" in message(report, "short_waits")


def test_set_not_null_with_a_full_scan(tmp_path):
    contract = CONTRACT.replace('        _not_null("summary")\n',
                                '        op.alter_column("finding", "summary", existing_type=sa.Text, nullable=False)\n')
    report = check(tmp_path, contract=contract, **{"models.py": BEFORE_SIX})
    assert only_failures(report) >= {"not_null_without_scan"}
    assert "read every finding" in message(report, "not_null_without_scan")
    assert "models_match" not in only_failures(report), message(report, "models_match")
