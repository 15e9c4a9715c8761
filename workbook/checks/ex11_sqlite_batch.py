"""Exercise 11: a legacy SQLite schema changed with batch mode (part A), and an async env.py
that runs on the command line and inside a running event loop (part B).

The exercise has its own Alembic environment (<track>/sqlite/) and its own database: gather()
builds the legacy file with sqlite3 in a temporary folder, runs the learner's upgrade and
downgrade there through Alembic, and reads what SQLite kept. No PostgreSQL is involved, so the
manifest's `environment = "sqlite"` tells base.check() to make no scratch copy for it.

Part B runs the track's async/ environment (its env.py is the learner's, its one revision given)
on two empty PostgreSQL databases of its own: `alembic upgrade head` as a learner types it, in a
process of its own, and alembic.command.upgrade called from a coroutine, as a notebook cell
runs inside the kernel's event loop; each twice, and once offline (--sql).
"""
from __future__ import annotations

import io
import sqlite3
import tempfile
import warnings
from pathlib import Path

from workbook import async_env, sqlite_track
from workbook.checks.base import Evidence, Incorrect, Replay, Step, criterion, explain_failure, is_stub, phase

# Proof scale: any. The exercise's database is its own SQLite file of a fixed size (2,000
# customers, 6,000 invoices), built by gather(); WORKBOOK_SCALE does not reach it, and every
# criterion (row fingerprints, PRAGMA foreign_key_check, refused inserts, names, the model
# comparison) is a per-row or per-table fact that a few thousand rows decide. Part B runs its one
# given revision on empty PostgreSQL databases it creates itself: no seeded data is involved.
PROOF_SCALE = 0.1
COPIES = 0  # its own SQLite file and empty PostgreSQL databases: no copy of a start

OLD_COLUMNS = {"customer": ["id", "email", "name"], "invoice": ["id", "customer_id", "number", "amount", "status"]}
NEW_COLUMNS = {"customer": ["id", "email", "full_name"], "invoice": OLD_COLUMNS["invoice"]}
NAMES = {  # constraint name -> what it is, as a learner reads it
    "uq_customer_email": "the UNIQUE on customer.email",
    "fk_invoice_customer_id_customer": "the FOREIGN KEY invoice.customer_id -> customer.id",
    "ck_invoice_status": "the CHECK on invoice.status",
    "ck_invoice_amount": "the new CHECK amount >= 0",
    "uq_invoice_number": "the new UNIQUE on invoice.number",
}
# Inserts each of which breaks one rule; every one must be refused. {amount} is filled per schema.
PROBES = {
    "the FOREIGN KEY invoice.customer_id -> customer.id":
        "INSERT INTO invoice (customer_id, number, amount, status) VALUES (999999, 'P-1', 1, 'open')",
    "the CHECK on invoice.status":
        "INSERT INTO invoice (customer_id, number, amount, status) VALUES (1, 'P-2', 1, 'lost')",
    "the UNIQUE on customer.email":
        "INSERT INTO customer (email) VALUES ('customer1@example.com')",
}
NEW_PROBES = {
    "the new CHECK amount >= 0":
        "INSERT INTO invoice (customer_id, number, amount, status) VALUES (1, 'P-3', -5, 'open')",
    "the new UNIQUE on invoice.number":
        "INSERT INTO invoice (customer_id, number, amount, status) VALUES (1, 'INV-000001', 1, 'open')",
}


def attempted(path) -> bool:
    """Either part begun: the batch revision is no longer the stub, or async/env.py is async."""
    return not is_stub(path) or async_env.attempted(async_env.env_file(Path(path).parents[2]))


def explain(text: str) -> str | None:
    """SQLite's and Alembic's words for the plain (non-batch) operations."""
    if "no support for alter of constraints" in text.lower():
        return ("SQLite's ALTER TABLE cannot add or drop a constraint, so Alembic refuses the plain op.* "
                "call. Put it inside `with op.batch_alter_table('TABLE') as batch:` and call batch.* instead.")
    if 'near "alter"' in text.lower():
        return ("SQLite has no ALTER COLUMN: a plain op.alter_column cannot change a type. Inside "
                "`with op.batch_alter_table('invoice') as batch:`, batch.alter_column(...) rebuilds the table.")
    if "constraint must have a name" in text.lower() or "no such constraint" in text.lower():
        return ("The legacy constraints have no name, so nothing can address them: give batch_alter_table "
                "a naming_convention (or restate them with table_args) so they get names.")
    return None


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ev.batch_attempted = not is_stub(r.path)
    ev.async_attempted = async_env.attempted(async_env.env_file(r.track_dir))
    if ev.async_attempted:
        ev.async_runs = async_env.replay(r.track_dir)
    if ev.batch_attempted:
        _gather_batch(r, ev)
    return ev


def _gather_batch(r: Replay, ev: Evidence) -> None:
    env = sqlite_track.environment(r.track_dir)
    with tempfile.TemporaryDirectory(prefix="wb-ex11-") as tmp:
        path = sqlite_track.build(Path(tmp) / "legacy.sqlite")
        with sqlite3.connect(path) as con:
            ev.before_rows = {t: sqlite_track.fingerprint(con, t, OLD_COLUMNS[t]) for t in OLD_COLUMNS}
            ev.before_shape = shape(con)
        ev.upgrade = _migrate(r, env, "upgrade", "ex11_batch", path)
        if not ev.upgrade.ok:
            return
        phase("reading the database after your upgrade")
        con = sqlite_track.connect(path)
        try:
            ev.after_sql = sqlite_track.table_sql(con)
            ev.after_shape = shape(con)
            ev.after_rows = rows(con, NEW_COLUMNS)
            ev.fk_violations = con.execute("PRAGMA foreign_key_check").fetchall()
            ev.names = constraint_names(path)
            ev.accepted = accepted(con, {**PROBES, **NEW_PROBES})
        finally:
            con.close()
        ev.model_diff = model_diff(r.track_dir, path)
        ev.downgrade = _migrate(r, env, "downgrade", "sqlite_base", path)
        if ev.downgrade.ok:
            con = sqlite_track.connect(path)
            try:
                ev.down_shape = shape(con)
                ev.down_rows = rows(con, OLD_COLUMNS)
                ev.down_fk_violations = con.execute("PRAGMA foreign_key_check").fetchall()
                ev.down_accepted = accepted(con, PROBES)
            finally:
                con.close()


def _migrate(r: Replay, env: Path, verb: str, target: str, path: Path) -> Step:
    phase(f"running your {verb} to {target} on SQLite", learner=True)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            sqlite_track.run(verb, target, r.track_dir, path)
        return Step(True, raw="; ".join(str(w.message) for w in said))
    except Exception as exc:  # the learner's code may raise anything; we explain it
        return Step(False, explain_failure(exc, r.path, verb, explain), str(exc).splitlines()[0] if str(exc) else "")


def rows(con, columns: dict) -> dict:
    """Fingerprints of each table's columns; a column that is not there reads as missing."""
    out = {}
    for table, cols in columns.items():
        try:
            out[table] = sqlite_track.fingerprint(con, table, cols)
        except sqlite3.Error as exc:
            out[table] = (0, f"unreadable: {exc}")
    return out


def shape(con) -> dict:
    """What a schema comparison needs, names aside: columns (name, declared type, NOT NULL),
    foreign keys (column -> table.column), unique column sets, per table."""
    out = {}
    for table in sqlite_track.TABLES:
        cols = [(c[1], c[2].upper(), bool(c[3])) for c in con.execute(f"PRAGMA table_info({table})")]
        fks = sorted((f[3], f[2], f[4] or "id") for f in con.execute(f"PRAGMA foreign_key_list({table})"))
        uniques = sorted(
            tuple(c[2] for c in con.execute(f"PRAGMA index_info('{i[1]}')"))
            for i in con.execute(f"PRAGMA index_list({table})") if i[2] and i[3] == "u")
        out[table] = {"columns": cols, "foreign_keys": fks, "uniques": uniques}
    return out


def constraint_names(path: Path) -> set[str]:
    """The names SQLAlchemy's SQLite inspector reads back from the tables' CREATE statements."""
    import sqlalchemy as sa

    eng = sa.create_engine(sqlite_track.url(path))
    try:
        insp = sa.inspect(eng)
        found = set()
        for table in sqlite_track.TABLES:
            for get in (insp.get_unique_constraints, insp.get_foreign_keys, insp.get_check_constraints):
                found |= {c["name"] for c in get(table) if c.get("name")}
        return found
    finally:
        eng.dispose()


def accepted(con, probes: dict) -> list[str]:
    """The rules whose breaking insert SQLite accepted (foreign keys on); each is rolled back."""
    out = []
    for rule, sql in probes.items():
        con.execute("SAVEPOINT probe")
        try:
            con.execute(sql)
            out.append(rule)
        except sqlite3.IntegrityError:
            pass
        except sqlite3.Error as exc:  # a column the revision renamed away: say so, do not crash
            out.append(f"{rule} (the insert failed otherwise: {exc})")
        finally:
            con.execute("ROLLBACK TO probe")
            con.execute("RELEASE probe")
    return out


def model_diff(track_dir: Path, path: Path) -> str:
    """What `alembic check` finds between the database and the track's sqlite/models.py ('' when clean)."""
    from alembic import command
    from alembic.util import AutogenerateDiffsDetected

    try:
        command.check(sqlite_track.config(track_dir, path, io.StringIO()))
        return ""
    except AutogenerateDiffsDetected as exc:
        return str(exc).replace("\n", " ")
    except Exception as exc:  # models.py that does not load, say
        return f"alembic check could not run: {exc}"


# ---- criteria ------------------------------------------------------------------------------

@criterion("rows", "Every customer and invoice survives the upgrade, values unchanged.")
def rows_survive(ev: Evidence) -> str:
    """Assert that each table's rows (the renamed column under its new name) have the same
    fingerprint after the upgrade: a batch copies rows with INSERT ... SELECT, and a copy that
    leaves some out, or a revision that recreates the table, loses them without an error."""
    _part_a(ev)
    for table, (n, digest) in ev.before_rows.items():
        got_n, got = ev.after_rows[table]
        if (got_n, got) != (n, digest):
            raise Incorrect(f"{table} had {n} rows before the upgrade and {got_n} after"
                            + (", with different values" if got_n == n else "")
                            + f" ({', '.join(NEW_COLUMNS[table])}). Expected every row unchanged: "
                              "batch_alter_table copies them for you; do not drop and recreate the table.")
    return f"{sum(n for n, _ in ev.before_rows.values())} rows, the same values after the upgrade."


@criterion("foreign_key", "The foreign key invoice.customer_id -> customer.id is still there and holds.")
def foreign_key_kept(ev: Evidence) -> str:
    """Assert that invoice still declares its foreign key and PRAGMA foreign_key_check finds no
    orphan: a batch that rebuilds invoice from a table definition of its own (copy_from, a
    hand-written CREATE TABLE) drops the foreign key, and SQLite says nothing."""
    _part_a(ev)
    fks = ev.after_shape["invoice"]["foreign_keys"]
    if ("customer_id", "customer", "id") not in fks:
        raise Incorrect("After the upgrade invoice declares no foreign key on customer_id (found "
                        f"{fks or 'none'}). Expected it kept: let batch_alter_table reflect the table "
                        "(no copy_from) so the foreign key is copied into the new one.")
    if ev.fk_violations:
        raise Incorrect(f"PRAGMA foreign_key_check finds {len(ev.fk_violations)} invoices whose "
                        "customer is missing. Expected none: every customer must survive.")
    return "invoice.customer_id -> customer.id declared; PRAGMA foreign_key_check is empty."


@criterion("names", "Every constraint has a name: the legacy ones and the new ones.")
def constraints_named(ev: Evidence) -> str:
    """Assert that the legacy unnamed UNIQUE, FOREIGN KEY and CHECK now carry the names
    models.py gives them: an unnamed constraint cannot be dropped or changed by a later batch,
    and batch mode silently leaves an unnamed CHECK out of the table it rebuilds."""
    _part_a(ev)
    missing = [f"{name} ({what})" for name, what in NAMES.items() if name not in ev.names]
    if missing:
        lost = " Alembic warned: " + ev.upgrade.raw if "Unnamed CHECK" in ev.upgrade.raw else ""
        raise Incorrect(f"After the upgrade no constraint is named {'; '.join(missing)}. Found names: "
                        f"{', '.join(sorted(ev.names)) or 'none'}. Expected each named: pass "
                        "naming_convention={'uq': 'uq_%(table_name)s_%(column_0_name)s', 'fk': "
                        "'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s'} to "
                        "batch_alter_table, and restate the CHECK on status, named, in table_args." + lost)
    return "uq_customer_email, fk_invoice_customer_id_customer, ck_invoice_status, ck_invoice_amount, uq_invoice_number."


@criterion("enforced", "Each rule refuses an insert that breaks it (foreign keys on).")
def rules_enforced(ev: Evidence) -> str:
    """Assert that an insert breaking each rule (the foreign key, both CHECKs, both UNIQUEs) is
    refused with PRAGMA foreign_keys = ON: a name in the schema is not proof the rule is there."""
    _part_a(ev)
    if ev.accepted:
        raise Incorrect(f"After the upgrade SQLite accepted an insert that breaks {'; '.join(ev.accepted)}. "
                        "Expected each refused: a batch keeps only the constraints it reflects or is "
                        "given (an unnamed CHECK is left out: restate it in table_args).")
    return f"{len(PROBES) + len(NEW_PROBES)} breaking inserts, each refused."


@criterion("model", "`alembic check` finds nothing between the database and sqlite/models.py.")
def model_matches(ev: Evidence) -> str:
    """Assert that autogenerate finds no difference after the upgrade: the column types, names
    and unique constraints are what the application's models say."""
    _part_a(ev)
    if ev.model_diff:
        raise Incorrect(f"alembic check still finds differences: {ev.model_diff[:400]}. Expected none: "
                        "the upgrade should leave the schema models.py describes.")
    return "No differences."


@criterion("downgrade", "The downgrade restores the legacy schema and every row.")
def downgrade_restores(ev: Evidence) -> str:
    """Assert that after the downgrade the columns (name, type, NOT NULL), the foreign key, the
    unique column sets, the legacy rules and every row are those of the legacy database."""
    _part_a(ev)
    ev.require("downgrade")
    for table, before in ev.before_shape.items():
        after = ev.down_shape[table]
        for part, what in (("columns", "columns"), ("foreign_keys", "foreign keys"), ("uniques", "unique columns")):
            if after[part] != before[part]:
                raise Incorrect(f"After the downgrade {table} has {what} {after[part]}; the legacy "
                                f"database had {before[part]}. Expected the downgrade to undo each change.")
    if ev.down_rows != ev.before_rows:
        bad = [t for t in ev.before_rows if ev.down_rows[t] != ev.before_rows[t]]
        raise Incorrect(f"After the downgrade the rows of {', '.join(bad)} differ from the legacy ones. "
                        "Expected every row back as it was.")
    if ev.down_accepted or ev.down_fk_violations:
        raise Incorrect(f"After the downgrade SQLite accepts an insert that breaks {'; '.join(ev.down_accepted)}"
                        f"{' and foreign_key_check finds orphans' if ev.down_fk_violations else ''}. "
                        "Expected the legacy rules kept on the way down too.")
    return "Legacy columns, keys and rules back, every row as before."


def _part_a(ev: Evidence) -> None:
    if not ev.batch_attempted:
        raise Incorrect("Part A not attempted yet: sqlite/versions/11_batch.py is still the stub. "
                        "Start with `workbook hint 11`.")
    ev.require("upgrade")


def _part_b(ev: Evidence) -> dict:
    if not ev.async_attempted:
        raise Incorrect("Part B not attempted yet: async/env.py still builds a synchronous engine "
                        "(engine_from_config). Make it async: notebook 11, part B, and `workbook hint 11`.")
    return ev.async_runs


@criterion("async_command_line", "Part B: `alembic upgrade head` reaches the head from the command line; run again, it changes nothing.")
def async_command_line(ev: Evidence) -> str:
    """Assert that the async env.py migrates a fresh database to the head when run by the
    `alembic` command, where no event loop runs yet, and that a second run applies nothing."""
    return async_env.judge(_part_b(ev), "cli", "`alembic upgrade head` on the command line", Incorrect)


@criterion("async_in_loop", "Part B: alembic.command.upgrade inside a running event loop (a notebook cell) reaches the head; run again, it changes nothing.")
def async_in_loop(ev: Evidence) -> str:
    """Assert that the same env.py works when called from a coroutine, as a Jupyter cell runs
    inside the kernel's loop: the template's asyncio.run() refuses there with "cannot be called
    from a running event loop"."""
    return async_env.judge(_part_b(ev), "loop", "alembic.command.upgrade inside a running event loop", Incorrect)


@criterion("async_offline", "Part B: `alembic upgrade head --sql` still prints the SQL (offline mode).")
def async_offline(ev: Evidence) -> str:
    """Assert that offline mode renders the revision's SQL without connecting: an env.py that
    builds its async engine for offline mode too needs a database it should not."""
    runs = _part_b(ev)
    if not runs["offline"]["ok"]:
        raise Incorrect(runs["offline"]["error"])
    return "Offline mode printed CREATE TABLE async_note."


CRITERIA = [rows_survive, foreign_key_kept, constraints_named, rules_enforced, model_matches, downgrade_restores,
            async_command_line, async_in_loop, async_offline]
