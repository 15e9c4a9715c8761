"""Exercise 9: one revision, ex09_squashed, builds the schema the chain baseline -> ex08_merge leaves.

Where the squash sits: a new root (down_revision = None) on its own branch label, "squashed", in
a folder of its own (squashed/) that the check reads together with versions/, as a project does
once it rolls the squash out. New environments run `alembic upgrade squashed@head`; a database
that already runs the old chain never executes the squash: every table exists there already, so
its CREATE TABLE fails, or, written with IF NOT EXISTS, adds second copies of unnamed
constraints. Such a database is moved over with `alembic stamp --purge ex09_squashed`: it
rewrites alembic_version and runs no DDL. Kept out of versions/, the squash gives no learner's
track a second head, so `alembic upgrade head` keeps working at every exercise before and after.

Evidence, all live:
- two fresh empty databases: one upgraded through the committed chain (the reference track, what
  shipped), one through the learner's squash; their catalogs (workbook.schema.catalog: names,
  types, defaults, nullability, identity and sequences, constraint definitions and validity,
  index definitions with predicates, triggers, functions, enums, comments) must be equal;
- Alembic's compare_metadata (what `alembic check` runs) on the squashed database;
- the squash's downgrade to empty and its upgrade again;
- a copy of the start (a database at ex08_merge that ran the chain): the old chain's deploy
  (`alembic upgrade ex08_merge@head`, in the history as it was then: exercise 10's revision, which
  follows the merge, left out) must run nothing, then the rollout (stamp --purge) must
  run no DDL: every relfilenode and the xmin of every catalog row of the application's
  relations, columns, constraints and indexes the same before and after.
The rows the chain seeds are out of scope: a squash rebuilds the schema only.

Proof scale: 0.001, the smallest (sizes() floors it at 1,000 findings). The two fresh databases
are empty at any scale; the copy of the start is only read for catalog facts (relfilenode, xmin,
alembic_version), which do not depend on how many rows its tables hold.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import sqlalchemy as sa

from workbook import db, migrate, models, schema, templates
from workbook.checks.base import (Evidence, Incorrect, Replay, Step, criterion, explain_failure,
                                  first_line, is_stub, phase)
from workbook.checks.ex06_autogenerate import drift
from workbook.manifest import ROOT

PROOF_SCALE = 0.001  # empty databases and catalog facts only: see the docstring
SQUASHED, LABEL, OLD_HEAD = "ex09_squashed", "squashed", "ex08_merge"
FOLDER = "squashed"  # the squash's own version location inside a track
VERSIONS = "SELECT coalesce(array_agg(version_num ORDER BY version_num), '{}') FROM alembic_version"

# Every relation of the application and the xmin of each catalog row that describes it: DDL
# writes new catalog rows (a new xmin), a rewrite gives a new relfilenode. alembic_version's
# rows change with a stamp; its catalog rows do not.
FINGERPRINT = """
    SELECT 'class ' || n.nspname || '.' || c.relname, c.relfilenode::text || ' ' || c.xmin::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'wb_probe')
      AND n.nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 'column ' || a.attrelid::regclass::text || '.' || a.attname, a.xmin::text
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE a.attnum > 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'wb_probe')
      AND n.nspname NOT LIKE 'pg\\_%'
    UNION ALL
    SELECT 'constraint ' || k.conname, k.xmin::text
    FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'wb_probe')
    UNION ALL
    SELECT 'index ' || x.indexrelid::regclass::text, x.xmin::text
    FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'wb_probe')
"""


def attempted(path: Path) -> bool:
    return not is_stub(path)


def alembic_config(track_dir: Path, stdout=None):
    """The track's Alembic config with the squash's folder as one more version location."""
    cfg = migrate.alembic_config(track_dir, stdout=stdout)
    where = cfg.get_main_option("version_locations")
    cfg.set_main_option("version_locations", os.pathsep.join([where, str(Path(track_dir) / FOLDER)]))
    return cfg


def alembic(conn, track_dir: Path, verb: str, target: str, path: Path | None = None, **kw) -> Step:
    """`alembic VERB TARGET` (upgrade, downgrade, stamp) with both folders, on conn, as a Step."""
    from alembic import command

    phase(f"running {verb} {target}", learner=path is not None)
    if conn.in_transaction():
        conn.commit()
    cfg = alembic_config(track_dir, stdout=io.StringIO())
    cfg.attributes["connection"] = conn
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(command, verb)(cfg, target, **kw)
        if conn.in_transaction():
            conn.commit()
        return Step(True)
    except Exception as exc:  # the learner's code may raise anything; we explain it
        if conn.in_transaction():
            conn.rollback()
        raw = first_line(getattr(exc, "orig", None) or exc)
        return Step(False, explain_failure(exc, path, verb) if path else raw, raw)


def read(conn, sql: str):
    rows = conn.execute(sa.text(sql)).all()
    conn.rollback()
    return rows


def fingerprint(conn) -> dict[str, str]:
    return dict(read(conn, FINGERPRINT))


def versions(conn) -> list[str]:
    return list(read(conn, VERSIONS)[0][0])


def catalog(conn) -> dict[str, str]:
    shot = schema.catalog(conn)
    conn.rollback()
    return shot


def graph(track_dir: Path) -> dict:
    """Alembic's reading of versions/ and squashed/ together: the squash's parent, labels, the heads."""
    from alembic.script import ScriptDirectory

    out = {"error": None, "found": False, "down": None, "labels": (), "heads": [], "old_head": OLD_HEAD}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            script = ScriptDirectory.from_config(alembic_config(track_dir))
            out["heads"] = sorted(script.get_heads())
            # `alembic upgrade ex08_merge@head` in the history as it was then (exercise 10's revision,
            # which follows the merge, left out): the squash, if it follows ex08_merge, else ex08_merge.
            after = [h for h in migrate.heads_before_later(script, OLD_HEAD) if h != OLD_HEAD
                     and OLD_HEAD in {r.revision for r in script.iterate_revisions(h, "base")}]
            out["old_head"] = after[0] if len(after) == 1 else OLD_HEAD
            rev = script.get_revision(SQUASHED)
            if rev is not None:
                out.update(found=True, down=rev.down_revision, labels=tuple(sorted(rev.branch_labels)))
    except Exception as exc:  # a history Alembic cannot read
        out["error"] = first_line(exc)
    return out


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ev.update(graph=graph(r.track_dir), chain=None, squash=None, drift=None, trip=[], old_deploy=None,
              stamp=None, existing={})
    if ev.graph["error"] or not ev.graph["found"]:
        return ev
    with templates.empty() as chain_db, templates.empty() as squash_db:
        eng = db.engine(chain_db, statement_timeout=r.statement_timeout)
        try:
            with eng.connect() as conn:
                phase("building an empty database through the committed chain")
                migrate.run(conn, "upgrade", OLD_HEAD, ROOT / "solutions")
                ev.chain = catalog(conn)
        finally:
            eng.dispose()
        eng = db.engine(squash_db, statement_timeout=r.statement_timeout)
        try:
            with eng.connect() as conn:
                ev.squash_step = alembic(conn, r.track_dir, "upgrade", f"{LABEL}@head", r.path)
                if ev.squash_step.ok:
                    ev.squash = catalog(conn)
                    ev.squash_versions = versions(conn)
                    ev.drift = drift(conn, r, models.at(models.track_metadata(ROOT / "solutions"), [OLD_HEAD]))
                    for label, verb, target in (("down to an empty database", "downgrade", "base"),
                                                ("up again", "upgrade", f"{LABEL}@head")):
                        step = alembic(conn, r.track_dir, verb, target, r.path)
                        ev.trip.append((label, step, catalog(conn) if step.ok else None))
                        if not step.ok:
                            break
        finally:
            eng.dispose()
    existing(r)
    return ev


def existing(r: Replay) -> None:
    """The copy of the start: the old chain's deploy, then the rollout, watched for DDL."""
    ev = r.evidence
    eng = db.engine(r.database, statement_timeout=r.statement_timeout)
    try:
        with eng.connect() as conn:
            ex = ev.existing
            ex["before"], ex["marks before"] = catalog(conn), fingerprint(conn)
            ev.old_deploy = alembic(conn, r.track_dir, "upgrade", ev.graph["old_head"], r.path)
            ex["after deploy"], ex["versions after deploy"] = catalog(conn), versions(conn)
            ex["marks after deploy"] = fingerprint(conn)
            phase("rolling the squash out: alembic stamp --purge")
            ev.stamp = alembic(conn, r.track_dir, "stamp", SQUASHED, purge=True)
            if ev.stamp.ok:
                ev.after_stamp = alembic(conn, r.track_dir, "upgrade", f"{LABEL}@head", r.path)
                ex["after"], ex["versions"], ex["marks after"] = catalog(conn), versions(conn), fingerprint(conn)
    finally:
        eng.dispose()


# ---- criteria ---------------------------------------------------------------------------------

def first_difference(chain: dict, squash: dict) -> tuple[str, int]:
    """The first difference between the chain's catalog and the squash's, in words, and how many there are."""
    # The most telling first: a changed validity, any changed definition, then what is missing or extra.
    rank = lambda k: (0 if k.startswith("validity ") else 1) if k in chain and k in squash else (  # noqa: E731
        2 if k in chain else 3)
    keys = sorted((k for k in chain.keys() | squash.keys() if chain.get(k) != squash.get(k)),
                  key=lambda k: (rank(k), k))
    if not keys:
        return "", 0
    key = keys[0]
    kind, _, name = key.partition(" ")
    short = _short(name)
    if key not in squash:
        extra = [_short(k.partition(" ")[2]) for k in keys if k not in chain and k.startswith(kind + " ")]
        instead = f" ({extra[0]} is there instead)" if extra else ""
        text = f"{kind} {short}: in the chain ({chain[key]}), missing from your squash{instead}"
    elif key not in chain:
        text = f"{kind} {short}: in your squash ({squash[key]}), not in the chain"
    else:
        text = f"{kind} {short}: {chain[key]} in the chain, {squash[key]} in your squash"
    return text, len(keys)


def _short(name: str) -> str:
    return name.split(".", 1)[1] if name.startswith("public.") else name


def _squash_ran(ev: Evidence) -> None:
    g = ev.graph
    if g["error"]:
        raise Incorrect(f"Alembic could not read versions/ and {FOLDER}/ together: {g['error']}.")
    if not g["found"]:
        raise Incorrect(f"Alembic found no revision {SQUASHED!r} in {FOLDER}/. Keep revision = {SQUASHED!r}.")
    if not ev.squash_step.ok:
        raise Incorrect(f"On an empty database, `alembic upgrade {LABEL}@head` failed: {ev.squash_step.error}")


@criterion("own_root", f"The squash is a new root on the branch label {LABEL!r}: a database that runs "
           "the old chain never executes it.")
def own_root(ev: Evidence) -> str:
    """Assert that an existing database's deploy of the old chain does not run the squash.

    A database at ex08_merge already has every table. A squash that follows ex08_merge is run by
    its next `alembic upgrade`: CREATE TABLE fails, or IF NOT EXISTS adds duplicates.
    """
    g = ev.graph
    if g["error"] or not g["found"]:
        _squash_ran(ev)
    step = ev.old_deploy
    said = (f" The existing database's `alembic upgrade {OLD_HEAD}@head` failed: {step.error}"
            if step is not None and not step.ok else "")
    if g["down"] is not None or LABEL not in g["labels"]:
        raise Incorrect(
            f"{SQUASHED} says down_revision = {g['down']!r}, branch_labels = {g['labels'] or None!r}.{said} "
            f"Expected a new root: down_revision = None, branch_labels = ({LABEL!r},). A squash that follows "
            "the old head is run by every database that already has the schema.")
    if not step.ok:
        raise Incorrect(said.strip())
    changes = schema.diff(ev.existing["before"], ev.existing["after deploy"])
    if changes or ev.existing["versions after deploy"] != [OLD_HEAD]:
        raise Incorrect(f"The old chain's deploy on a database at {OLD_HEAD} changed it: "
                        f"{'; '.join(changes[:3]) or ev.existing['versions after deploy']}. Expected nothing to run.")
    return (f"{SQUASHED} is a root on the branch {LABEL!r}; a database at {OLD_HEAD} runs nothing of it "
            f"(`alembic upgrade {OLD_HEAD}@head` left it as it was).")


@criterion("exact_schema", "A fresh empty database built by the squash has the same catalog as one built "
           "through the whole chain.")
def exact_schema(ev: Evidence) -> str:
    """Assert that names, types, defaults, nullability, identity, constraints and their validity,
    indexes and their predicates, triggers, functions, enums and comments all match the chain's."""
    _squash_ran(ev)
    text, count = first_difference(ev.chain, ev.squash)
    if count:
        raise Incorrect(
            f"The catalogs differ in {count} place{'s' if count > 1 else ''}; the first: {text}. Expected your "
            "squash to build exactly what baseline -> ex08_merge builds: every constraint and index under the "
            "chain's name, the same validity, and what the chain made outside the models (autogenerate "
            "never sees those).")
    return (f"The squash's catalog equals the chain's: {len(ev.chain)} columns, constraints, indexes, "
            "sequences and other entries compared.")


@criterion("models_match", f"At {SQUASHED} `alembic check` finds no drift between the models and the database.")
def models_match(ev: Evidence) -> str:
    """Assert that the models describe the squashed database, as they describe the chain's."""
    _squash_ran(ev)
    if ev.drift:
        raise Incorrect(f"On the squashed database `alembic check` would report: {'; '.join(ev.drift[:3])}. "
                        "Expected no difference from workbook/models.py.")
    return "On the squashed database `alembic check` finds nothing to change."


@criterion("rollout_no_ddl", f"A database at {OLD_HEAD} moves to {SQUASHED} with `alembic stamp --purge` "
           "and no DDL runs.")
def rollout_no_ddl(ev: Evidence) -> str:
    """Assert that the rollout only rewrites alembic_version: every relfilenode and catalog xmin unchanged."""
    _squash_ran(ev)
    if not ev.stamp.ok:
        raise Incorrect(f"`alembic stamp --purge {SQUASHED}` failed on a database at {OLD_HEAD}: {ev.stamp.error}")
    if not ev.after_stamp.ok:
        raise Incorrect(f"After the stamp, `alembic upgrade {LABEL}@head` failed: {ev.after_stamp.error}")
    ex = ev.existing
    before, after = ex["marks before"], ex["marks after"]
    moved = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if moved:
        raise Incorrect(f"The rollout changed the catalog of a database at {OLD_HEAD}: {', '.join(moved[:3])} "
                        "has a new relfilenode or catalog row. Expected only alembic_version to change.")
    if ex["versions"] != [SQUASHED]:
        raise Incorrect(f"After the rollout alembic_version holds {ex['versions']}; expected only {SQUASHED}.")
    return (f"`alembic stamp --purge {SQUASHED}` and `alembic upgrade {LABEL}@head` ran no DDL on a database at "
            f"{OLD_HEAD}: {len(before)} relfilenodes and catalog xmins unchanged; alembic_version is {SQUASHED}.")


@criterion("round_trip", "The squash's downgrade leaves an empty database, and the upgrade works again.")
def round_trip(ev: Evidence) -> str:
    """Assert that downgrade base removes everything the squash made, and upgrading rebuilds it."""
    _squash_ran(ev)
    for label, step, shot in ev.trip:
        if not step.ok:
            raise Incorrect(f"Going {label} failed: {step.error}")
    if len(ev.trip) < 2:
        raise Incorrect("Not checked: the round trip did not run.")
    left = sorted(k for k in ev.trip[0][2] if "alembic_version" not in k and k != "schema public")
    if left:
        raise Incorrect(f"After the downgrade to base these remain: {', '.join(left[:4])}. "
                        "Expected an empty database: drop everything the upgrade made.")
    changes = schema.diff(ev.squash, ev.trip[1][2])
    if changes:
        raise Incorrect(f"Upgraded again, the catalog differs from the first time: {'; '.join(changes[:3])}.")
    return "Down to an empty database and up again: both worked, and the catalog came back the same."


CRITERIA = [own_root, exact_schema, models_match, rollout_no_ddl, round_trip]
