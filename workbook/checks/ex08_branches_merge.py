"""Exercise 8: two teams' revisions follow ex07_contract; the learner's merge joins the two heads.

Judged on three fresh copies, each a database that has really run the committed team files
(built with the reference track, so its alembic_version names the ids as committed):
- the start: both teams shipped (alembic_version holds both ids);
- team A shipped first: only ex08_assignee has run;
- team B shipped first: only ex08_asset_owner has run.
Each runs the learner's `alembic upgrade head`; their catalogs (workbook.schema.snapshot) must be
one and the same. The start's copy then goes down to each branch and to ex07_contract and up
again, and Alembic's compare_metadata (what `alembic check` runs) reads its catalog at the head.
Alembic's reading of the learner's files (ScriptDirectory) says which heads there are and which
team revision was renamed or re-parented; the copies show what that does to a database.

The size of the data each criterion needs to be decided (the proof scale): none of them reads
rows. one_head, teams_untouched, deploy_orders, fresh_start, merge_changes_nothing, round_trip
and models_match are facts of Alembic's graph, of alembic_version and of the catalog, the same
at any size; the smallest scale (0.001: sizes() floors it at 1,000 findings) decides them all.
Team A's index is built concurrently over finding at whatever scale the copies have: at 1.0
each build takes about a second, so the check spends most of its time there.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import sqlalchemy as sa

from workbook import db, manifest, migrate, models, schema
from workbook.checks.base import (Evidence, Incorrect, Replay, criterion, declared_ids, is_stub,
                                  phase, relative)
from workbook.checks.ex06_autogenerate import drift
from workbook.manifest import ROOT

PROOF_SCALE = 0.001  # catalog and alembic_version facts only: see the docstring
COPIES = 3  # the start, and one copy for each team shipping first
MULTIPLE = "Multiple head revisions"
VERSIONS = "SELECT coalesce(array_agg(version_num ORDER BY version_num), '{}') FROM alembic_version"


def attempted(path: Path) -> bool:
    """The stub follows ex07_contract, like every stub its last revision, and does nothing; any
    other file is an answer. Empty bodies alone do not tell: the right merge's are empty too."""
    stub = manifest.get("08").stub_down_revision
    return not (is_stub(path) and declared_ids(path).get("down_revision", "") == stub)


def teams(ex) -> list[manifest.Exercise]:
    return ex.given_parts()


def gather(r: Replay) -> Evidence:
    ev = r.evidence
    ex = r.exercise
    team_a, team_b = teams(ex)
    ev.update(graph=graph(r), orders={}, order_steps={}, shots={}, versions={}, trip=[], drift=None)
    # The two further copies of the start (COPIES), each taken back (with the reference files) to
    # one team's revision: a database where that team shipped first.
    a_first, b_first = r.others
    for name, database, other in (("A", a_first, team_b), ("B", b_first, team_a)):
        phase(f"taking a copy back to team {name}'s revision alone")
        reference(database, "downgrade", f"{other.revision}@-1")
    for name, database in (("start", r.database), ("A", a_first), ("B", b_first)):
        eng = db.engine(database, statement_timeout=r.statement_timeout)
        try:
            with eng.connect() as conn:
                ev.shots[f"{name} before"] = schema.snapshot(conn)
                conn.commit()
                ev.order_steps[name] = r.migrate(conn, "upgrade", ev.graph["target"])
                ev.versions[name] = versions(conn)
                ev.shots[name] = schema.snapshot(conn)
                conn.commit()
                if name == "start" and ev.order_steps[name].ok:
                    ev.drift = drift(conn, r, models.at(models.track_metadata(ROOT / "solutions"), [ex.revision]))
                    round_trip(r, conn, team_a, team_b)
        finally:
            eng.dispose()
    return ev


def reference(database: str, verb: str, target: str) -> None:
    """Run the committed files (the reference track's) on a copy: a database that shipped them."""
    eng = db.engine(database)
    try:
        with eng.connect() as conn:
            migrate.run(conn, verb, target, ROOT / "solutions")
    finally:
        eng.dispose()


def round_trip(r: Replay, conn, team_a, team_b) -> None:
    """From the merge down to each branch alone, down to ex07_contract, and up to the head each time."""
    ev = r.evidence
    head = ev.graph["target"]
    # (what the step does, its target, the copy whose catalog it must match afterwards)
    # Down to a branch undoes the merge only (the other branch stays); X@-1 then undoes one branch.
    for label, target, like in ((f"down to {team_b.revision}", team_b.revision, "start before"),
                                (f"down to {team_b.revision} alone", f"{team_a.revision}@-1", "B before"),
                                ("up to the head again", head, "start"),
                                (f"down to {team_a.revision}", team_a.revision, "start before"),
                                (f"down to {team_a.revision} alone", f"{team_b.revision}@-1", "A before"),
                                ("up to the head again", head, "start"),
                                (f"down to {team_a.down_revision}, before both teams", team_a.down_revision, None),
                                (f"up to the head from {team_a.down_revision}", head, "start")):
        step = r.migrate(conn, "downgrade" if label.startswith("down") else "upgrade", target)
        ev.trip.append((label, step, like, schema.snapshot(conn) if step.ok else None))
        conn.commit()
        if not step.ok:
            return


def versions(conn) -> list[str]:
    found = conn.execute(sa.text(VERSIONS)).scalar_one()
    conn.rollback()
    return list(found)


def graph(r: Replay) -> dict:
    """Alembic's reading of the learner's track: its heads, and each team revision's id, parent and file."""
    out: dict = {"heads": [], "teams": {}, "error": None, "merge_parents": None, "target": "head"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            script = migrate.script_directory(r.track_dir)
            out["heads"] = migrate.heads_before_later(script, r.exercise.revision)
            if len(out["heads"]) == 1:  # `upgrade head` in a history that ended here; else it fails as there
                out["target"] = out["heads"][0]
            merge = script.get_revision(r.exercise.revision)
            out["merge_parents"] = merge.down_revision if merge else None
            by_file = {Path(s.path).resolve(): s for s in script.walk_revisions()}
            for team in teams(r.exercise):
                found = by_file.get(team.path(r.track_dir).resolve())
                out["teams"][team.revision] = (found.revision, found.down_revision) if found else None
    except Exception as exc:  # a history Alembic cannot read: preflight names most cases first
        out["error"] = db.first_line(exc)
    return out


# ---- criteria ---------------------------------------------------------------------------------

def _step_error(ev: Evidence, name: str) -> str:
    return ev.order_steps[name].error


def _two_heads(ev: Evidence) -> bool:
    return any(MULTIPLE in s.raw for s in ev.order_steps.values())


@criterion("one_head", "The history has exactly one head, ex08_merge, and `alembic upgrade head` reaches it.")
def one_head(ev: Evidence) -> str:
    """Assert that the merge joins every head: with two, `alembic upgrade head` cannot tell which one is meant."""
    g = ev.graph
    if g["error"]:
        raise Incorrect(f"Alembic could not read the history: {g['error']}.")
    want = ("ex08_assignee", "ex08_asset_owner")
    if g["heads"] != ["ex08_merge"]:
        parents = g["merge_parents"]
        said = f" ex08_merge follows {parents!r} only;" if parents and not isinstance(parents, tuple) else ""
        raise Incorrect(
            f"Alembic finds {len(g['heads'])} heads ({', '.join(g['heads'])}):{said} `alembic upgrade head` "
            f"on a copy of the start said \"{ev.order_steps['start'].raw or 'nothing'}\". Expected one head, "
            f"ex08_merge, following both teams' revisions: down_revision = {want!r} "
            "(what `alembic merge heads` writes).")
    if ev.order_steps["start"].ok and ev.versions["start"] != ["ex08_merge"]:
        raise Incorrect(f"After `alembic upgrade head` alembic_version holds {ev.versions['start']}; "
                        "expected only ex08_merge.")
    return "Alembic finds one head, ex08_merge, which joins ex08_assignee and ex08_asset_owner."


@criterion("teams_untouched", "The teams' committed revisions keep their ids and parents: a database "
           "that ran them still upgrades.")
def teams_untouched(ev: Evidence) -> str:
    """Assert that no shipped revision was renamed, re-parented or deleted.

    A database's alembic_version names the revisions it ran; Alembic finds their place by id in
    the files. Rename one and the database names a revision that no longer exists; re-parent one
    and the database holds two revisions the files now say are one line: neither upgrades again.
    """
    changed = []
    for team in teams(manifest.get("08")):
        found = ev.graph["teams"].get(team.revision)
        file = relative(team.path(Path(".")))
        if found is None:
            changed.append(f"{file} ({team.revision}) is gone")
        elif found != (team.revision, team.down_revision):
            changed.append(f"{file} now says revision = {found[0]!r}, down_revision = {found[1]!r} "
                           f"(committed: {team.revision!r} after {team.down_revision!r})")
    start = ev.order_steps["start"]
    if not changed and (start.ok or _two_heads(ev)):
        return ("Both teams' revisions keep their committed ids and parents, and a database that ran "
                "them (alembic_version: ex08_asset_owner, ex08_assignee) upgrades to the head.")
    said = (f"on a copy that has run both as committed, `alembic upgrade head` failed: \"{start.raw}\""
            if not start.ok else "")
    what = "; ".join(changed) or "the team revisions load as committed"
    raise Incorrect(
        f"{what}; {said or 'the copy that ran them as committed upgraded'}. Those revisions have "
        "shipped: every database that ran them names them in alembic_version, and after a rename or "
        "a new parent such a database can no longer be upgraded (its recorded revisions are gone, or "
        "now overlap). Expected both files exactly as committed (delete versions/08_assignee.py and "
        "versions/08_asset_owner.py from your track and run `workbook reset 08`, which copies them "
        "back) and the two heads joined by a merge revision in 08_merge.py.")


@criterion("deploy_orders", "Whichever team shipped first, `alembic upgrade head` reaches ex08_merge "
           "and leaves the same catalog.")
def deploy_orders(ev: Evidence) -> str:
    """Assert that a database where team A shipped first and one where team B did end up identical."""
    for name, team in (("A", "ex08_assignee"), ("B", "ex08_asset_owner")):
        step = ev.order_steps[name]
        if not step.ok:
            raise Incorrect(f"On a copy where only {team} has run (team {name} shipped first), "
                            f"`alembic upgrade head` failed: {step.error} Expected it to run the other "
                            "team's revision, then the merge.")
        if ev.versions[name] != ["ex08_merge"]:
            raise Incorrect(f"On a copy where only {team} has run, `alembic upgrade head` left "
                            f"alembic_version at {ev.versions[name]}; expected ex08_merge.")
    changes = schema.diff(ev.shots["A"], ev.shots["B"])
    if changes:
        raise Incorrect("Team A first and team B first end with different catalogs: "
                        + "; ".join(changes[:3]) + " (+ in the B-first copy). Expected the same schema "
                        "whichever shipped first: a database that ran one team's revision must get the "
                        "other's from the upgrade.")
    return ("Team A first and team B first both reach ex08_merge with identical catalogs "
            f"({len(ev.shots['A'])} columns, indexes and constraints compared).")


@criterion("fresh_start", "A copy of the start (both teams shipped) reaches ex08_merge with the same catalog.")
def fresh_start(ev: Evidence) -> str:
    """Assert that `alembic upgrade head` works on the exercise's start and agrees with the deploy orders."""
    step = ev.order_steps["start"]
    if not step.ok:
        raise Incorrect(f"On a copy of the start, `alembic upgrade head` failed: {step.error}")
    for name in ("A", "B"):
        changes = schema.diff(ev.shots[name], ev.shots["start"]) if ev.order_steps[name].ok else []
        if changes:
            raise Incorrect(f"From the start the head's catalog differs from team {name} first's: "
                            + "; ".join(changes[:3]) + ". Expected one schema at ex08_merge.")
    return "A copy of the start reaches ex08_merge with the same catalog as both deploy orders."


@criterion("merge_changes_nothing", "The merge revision itself changes no schema.")
def merge_changes_nothing(ev: Evidence) -> str:
    """Assert that the merge only joins heads: each team's revision already made its own change.

    Whatever a merge does runs once more on top of both teams' revisions: a copied operation fails
    (it exists already) or is applied twice.
    """
    step = ev.order_steps["start"]
    if not step.ok and "08_merge.py" in step.error:
        raise Incorrect(f"On a database that has run both teams' revisions, the merge's own upgrade failed: "
                        f"{step.error} The merge repeats a change a team's revision already made. Expected "
                        "upgrade() and downgrade() to do nothing (pass): a merge only joins the heads.")
    if not step.ok:
        raise Incorrect("Not checked: the upgrade from the start failed (see above).")
    changes = schema.diff(ev.shots["start before"], ev.shots["start"])
    if changes:
        raise Incorrect("On a database that has run both teams' revisions, the merge itself changed the "
                        "schema: " + "; ".join(changes[:3]) + ". Expected no change: a merge only joins "
                        "the heads; a change of its own belongs in a revision after it (and a team's change "
                        "in that team's revision, where it has already run).")
    return "The merge changes nothing in the catalog: it only joins the two heads."


@criterion("round_trip", "Downgrade from the merge to each branch alone, then before both, and "
           "upgrade to ex08_merge again.")
def round_trip_works(ev: Evidence) -> str:
    """Assert that the merge and both branches can be rolled back one at a time and re-applied."""
    if not ev.order_steps["start"].ok:
        raise Incorrect("Not checked: the upgrade from the start failed (see above).")
    for label, step, like, shot in ev.trip:
        if not step.ok:
            raise Incorrect(f"Going {label} failed: {step.error}")
        changes = schema.diff(ev.shots[like], shot) if like else []
        if changes:
            raise Incorrect(f"After going {label}, the catalog differs from a database that shipped the same "
                            f"revisions: {'; '.join(changes[:3])}. Expected a merge whose downgrade changes nothing.")
    if len(ev.trip) < 8:
        raise Incorrect("Not checked: the round trip did not run.")
    return ("Down to both branches, to ex08_asset_owner alone, up; to ex08_assignee alone, to ex07_contract "
            "and up again: each step worked and matched a database that had run the same revisions.")


@criterion("models_match", "At ex08_merge `alembic check` finds no drift between the models and the database.")
def models_match(ev: Evidence) -> str:
    """Assert that the models (finding.assignee, asset_owner) describe the merged database."""
    if not ev.order_steps["start"].ok:
        raise Incorrect("Not checked: the upgrade from the start failed (see above).")
    if ev.drift:
        raise Incorrect("At ex08_merge `alembic check` would report: " + "; ".join(ev.drift[:3])
                        + ". Expected no difference between workbook/models.py and the database.")
    return "At ex08_merge `alembic check` finds nothing to change."


CRITERIA = [one_head, teams_untouched, deploy_orders, fresh_start, merge_changes_nothing, round_trip_works,
            models_match]
