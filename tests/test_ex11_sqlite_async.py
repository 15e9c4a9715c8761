"""Exercise 11's check (SQLite batch mode): each wrong answer fails on the criterion it breaks,
with a message that says so. The check builds its own SQLite file; no PostgreSQL template."""
import textwrap

from conftest import make_track, message, only_failures, outcomes
from workbook.checks import base
from workbook.manifest import ROOT

FILE = "sqlite/versions/11_batch.py"
HEAD = '''
import sqlalchemy as sa
from alembic import op

revision = "ex11_batch"
down_revision = "sqlite_base"

NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
STATUS = sa.CheckConstraint("status IN ('open', 'paid', 'void')", name="ck_invoice_status")
'''
SOLUTION_DOWN = '''
def downgrade():
    with op.batch_alter_table("invoice") as batch:
        batch.drop_constraint("uq_invoice_number", type_="unique")
        batch.drop_constraint("ck_invoice_amount", type_="check")
        batch.alter_column("amount", type_=sa.Text, existing_type=sa.Integer, existing_nullable=False)
    with op.batch_alter_table("customer") as batch:
        batch.alter_column("full_name", new_column_name="name", existing_type=sa.Text)
        batch.add_column(sa.Column("fax", sa.String(40)))
'''


def batch_upgrade(customer_kw="naming_convention=NAMING", invoice_kw="naming_convention=NAMING, table_args=(STATUS,)",
                  extra=""):
    return f'''
def upgrade():
    with op.batch_alter_table("customer", {customer_kw}) as batch:
        batch.drop_column("fax")
        batch.alter_column("name", new_column_name="full_name", existing_type=sa.Text)
    with op.batch_alter_table("invoice", {invoice_kw}) as batch:
        batch.alter_column("amount", type_=sa.Integer, existing_type=sa.Text, existing_nullable=False)
        batch.create_check_constraint("ck_invoice_amount", "amount >= 0")
        batch.create_unique_constraint("uq_invoice_number", ["number"])
{textwrap.indent(textwrap.dedent(extra), "    ")}
'''


def check_with(tmp_path, upgrade, downgrade=SOLUTION_DOWN):
    return base.check("11", make_track(tmp_path, **{FILE: HEAD + upgrade + "\n" + downgrade}))


def test_solution_passes_every_criterion():
    report = base.check("11", ROOT / "solutions")
    assert report.status == base.PASSED, report
    assert set(outcomes(report).values()) == {base.PASSED}


def test_untouched_stub_is_not_attempted(stub_track):
    assert base.check("11", stub_track).status == base.NOT_ATTEMPTED


def test_the_reference_written_here_passes(tmp_path):
    """The test's own copy of the answer passes, so each variant below fails for its one change."""
    assert check_with(tmp_path, batch_upgrade()).status == base.PASSED


def test_plain_operations_without_batch_mode(tmp_path):
    report = check_with(tmp_path, '''
def upgrade():
    op.drop_column("customer", "fax")
    op.alter_column("customer", "name", new_column_name="full_name")
    op.alter_column("invoice", "amount", type_=sa.Integer, existing_type=sa.Text)
    op.create_check_constraint("ck_invoice_amount", "invoice", "amount >= 0")
''')
    assert report.status == base.FAILED
    text = message(report, "rows")
    assert "ALTER" in text and "batch_alter_table" in text and "11_batch.py, line" in text


def test_plain_constraint_outside_batch_mode(tmp_path):
    report = check_with(tmp_path, '''
def upgrade():
    op.create_unique_constraint("uq_invoice_number", "invoice", ["number"])
''')
    assert "No support for ALTER of constraints" in message(report, "rows")
    assert "batch_alter_table" in message(report, "rows")


def test_batch_without_naming_convention(tmp_path):
    """The legacy UNIQUE and FOREIGN KEY stay unnamed, and the unnamed CHECK on status is left out."""
    report = check_with(tmp_path, batch_upgrade(customer_kw="", invoice_kw=""))
    assert {"names", "enforced"} <= only_failures(report)
    text = message(report, "names")
    assert "uq_customer_email" in text and "fk_invoice_customer_id_customer" in text and "naming_convention" in text
    assert "Unnamed CHECK" in text
    assert "the CHECK on invoice.status" in message(report, "enforced")
    assert outcomes(report)["rows"] == outcomes(report)["foreign_key"] == base.PASSED


def test_batch_that_forgets_the_unnamed_check(tmp_path):
    report = check_with(tmp_path, batch_upgrade(invoice_kw="naming_convention=NAMING"))
    assert {"names", "enforced", "downgrade"} == only_failures(report)  # the legacy rule stays lost
    assert "ck_invoice_status" in message(report, "names") and "table_args" in message(report, "names")


def test_batch_that_loses_the_foreign_key(tmp_path):
    """copy_from: batch mode builds the new table from the given one, which has no foreign key."""
    lost_fk = '''copy_from=sa.Table("invoice", sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, nullable=True),
            sa.Column("customer_id", sa.Integer, nullable=False),
            sa.Column("number", sa.String(20), nullable=False),
            sa.Column("amount", sa.Text, nullable=False),
            sa.Column("status", sa.String(10), nullable=False), STATUS)'''
    report = check_with(tmp_path, batch_upgrade(invoice_kw=lost_fk))
    assert "foreign_key" in only_failures(report)
    assert "no foreign key on customer_id" in message(report, "foreign_key")
    assert "the FOREIGN KEY" in message(report, "enforced")
    assert outcomes(report)["rows"] == base.PASSED


def test_batch_that_loses_rows(tmp_path):
    report = check_with(tmp_path, batch_upgrade(extra='op.execute("DELETE FROM invoice WHERE status = \'void\'")'))
    assert only_failures(report) == {"rows", "downgrade"}
    assert "invoice had 6000 rows before the upgrade and 4000 after" in message(report, "rows")


def test_downgrade_that_does_nothing(tmp_path):
    report = check_with(tmp_path, batch_upgrade(), "def downgrade():\n    pass\n")
    assert only_failures(report) == {"downgrade"}
    assert "full_name" in message(report, "downgrade")


def test_the_sqlite_environment_keeps_its_ids_in_both_tracks(stub_track):
    """Off the PostgreSQL chain the manifest holds no revision for 11 (test_layout cannot compare
    them), so this does: the same ids in stub and solution, a stub that is a stub, and neither
    file on the PostgreSQL track's version path."""
    from conftest import ROOT as root
    from test_layout import assignments
    from workbook import manifest, migrate

    ex = manifest.get("11")
    for track in (stub_track, root / "solutions"):
        ids = assignments(ex.path(track))
        assert (ids["revision"], ids["down_revision"]) == ("ex11_batch", "sqlite_base")
        assert assignments(track / "sqlite" / "versions" / "00_legacy.py")["revision"] == "sqlite_base"
    assert base.is_stub(ex.path(stub_track)) and not base.is_stub(ex.path(root / "solutions"))
    pg = {r.revision for r in migrate.script_directory(root / "solutions").walk_revisions()}
    assert not pg & {"ex11_batch", "sqlite_base"}


# ---- part B: async/env.py -------------------------------------------------------------------

ENV = "async/env.py"


def solution_env(replace_from: str, replace_to: str) -> str:
    source = (ROOT / "solutions" / ENV).read_text()
    assert replace_from in source
    return source.replace(replace_from, replace_to)


def test_the_async_template_verbatim_fails_inside_a_running_loop(tmp_path):
    """Alembic's async template calls asyncio.run() unconditionally: fine on the command line,
    refused from a notebook cell."""
    source = (ROOT / "solutions" / ENV).read_text()
    start, end = source.index("    try:\n        asyncio.get_running_loop()"), source.index("\n\nif context.is_offline_mode")
    report = base.check("11", make_track(tmp_path, **{ENV: source[:start] + "    asyncio.run(run_async_migrations())" + source[end:]}))
    assert only_failures(report) == {"async_in_loop"}
    text = message(report, "async_in_loop")
    assert "cannot be called from a running event loop" in text and "worker thread" in text


def test_offline_mode_that_needs_a_database(tmp_path):
    """Everything made async, the offline function too: called without await, it prints nothing."""
    env = solution_env("def run_migrations_offline() -> None:", "async def run_migrations_offline() -> None:")
    report = base.check("11", make_track(tmp_path, **{ENV: env}))
    assert only_failures(report) == {"async_offline"}
    assert "CREATE TABLE async_note" in message(report, "async_offline")


def test_part_a_done_and_part_b_not_attempted(tmp_path, stub_track):
    report = base.check("11", make_track(tmp_path, **{ENV: (stub_track / ENV).read_text()}))
    assert report.status == base.FAILED
    assert only_failures(report) == {"async_command_line", "async_in_loop", "async_offline"}
    assert "Part B not attempted yet" in message(report, "async_in_loop")


def test_part_b_done_and_part_a_not_attempted(tmp_path, stub_track):
    report = base.check("11", make_track(tmp_path, **{FILE: (stub_track / FILE).read_text()}))
    assert report.status == base.FAILED
    assert "Part A not attempted yet" in message(report, "rows")
    assert outcomes(report)["async_in_loop"] == base.PASSED
