"""The `workbook` command: database, reset, check, hint, progress, solution."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from workbook.errors import WorkbookError


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except WorkbookError as err:
        print(f"workbook: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `workbook check 01 | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbook", description="The Alembic migration workbook.")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    d = sub.add_parser("db", help="start, stop or show the database (WORKBOOK_DB picks which)",
                       description="up/down start and stop the server the workbook runs; status and "
                       "url describe it; remove drops every database the workbook made for you on "
                       "it (your database, scratch copies, templates you built), and nothing else; "
                       "rehearse dumps your database (pg_dump -Fc), restores it into a throw-away "
                       "database and compares every table's rows (exercise 10).")
    d.add_argument("action", choices=["up", "down", "status", "url", "remove", "rehearse"])
    d.add_argument("--yes", action="store_true", help="with remove: really drop them")
    d.set_defaults(func=cmd_db)

    r = sub.add_parser("reset", help="put your database at an exercise's start (default: 01)")
    r.add_argument("exercise", nargs="?", default="01")
    r.set_defaults(func=cmd_reset)

    c = sub.add_parser("check", help="check an exercise (exit 0 passed, 1 not yet, 2 could not run)")
    c.add_argument("exercise")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_check)

    h = sub.add_parser("hint", help="the next hint for an exercise (or hint N)")
    h.add_argument("exercise")
    h.add_argument("number", nargs="?", type=int)
    h.set_defaults(func=cmd_hint)

    g = sub.add_parser("progress", help="run every check and show how far you are")
    g.add_argument("--fresh", action="store_true",
                   help="rerun every check, even those whose file did not change since its last check")
    g.set_defaults(func=cmd_progress)

    s = sub.add_parser("solution", help="show the reference solution (after your check passes)")
    s.add_argument("exercise")
    s.add_argument("--force", action="store_true", help="show it even if your check does not pass")
    s.set_defaults(func=cmd_solution)

    k = sub.add_parser("classroom", help="an instructor's class on one shared server (WORKBOOK_DB=url)",
                       description="DATABASE_URL is an admin role's URL; its database names the class.")
    ks = k.add_subparsers(required=True, metavar="ACTION")
    kc = ks.add_parser("create", help="a role and a database per learner; their URLs in a 0600 CSV")
    kc.add_argument("--learners", type=int)
    kc.add_argument("--names", metavar="FILE", help="one learner's name a line")
    kc.add_argument("--csv", metavar="PATH", help="where to write the URLs (default CLASS-learners.csv here, which remove deletes)")
    kc.add_argument("--room-only", action="store_true",
                    help="only the room on this server: each learner keeps the embedded database in its own "
                         "Jupyter server and gets a WORKBOOK_ROOM_URL (no CREATEDB, no database here)")
    kc.set_defaults(func=cmd_classroom_create)
    kt = ks.add_parser("status", help="learners x exercises, from the checks they ran")
    kt.add_argument("--json", action="store_true")
    kt.set_defaults(func=cmd_classroom_status)
    kv = ks.add_parser("serve", help="the same table as a self-refreshing page for the projector")
    kv.add_argument("--host", default="127.0.0.1")
    kv.add_argument("--port", type=int, default=8765)
    kv.add_argument("--stuck", type=float, default=10, metavar="MINUTES",
                    help="highlight a learner failing one exercise for longer (default 10)")
    kv.set_defaults(func=cmd_classroom_serve)
    kr = ks.add_parser("remove", help="drop the class's databases and roles (only those)")
    kr.add_argument("--yes", action="store_true", help="really drop them")
    kr.set_defaults(func=cmd_classroom_remove)
    kb = ks.add_parser("bench", help="N simulated learners at once on one server, measured",
                       add_help=False, prefix_chars="\0")  # options go to workbook.classroom_bench
    kb.add_argument("args", nargs=argparse.REMAINDER)
    kb.set_defaults(func=cmd_classroom_bench)

    a = sub.add_parser("alembic", help="run alembic on the track in WORKBOOK_TRACK",
                       prefix_chars="\0")  # pass every option through to alembic
    a.add_argument("args", nargs=argparse.REMAINDER)
    a.set_defaults(func=cmd_alembic)
    return p


def cmd_db(args) -> int:
    from workbook import db

    b = db.backend()
    if args.action == "up":
        print(b.up() if hasattr(b, "up") else _start(b))
    elif args.action == "down":
        print(b.stop())
        db.forget()
    elif args.action == "status":
        for key, value in b.status().items():
            print(f"{key:>9}: {value}")
    elif args.action == "remove":
        from workbook import templates

        names = templates.remove(dry_run=not args.yes)
        if not names:
            print("Nothing to drop: the workbook has made no database of yours on this server.")
            return 0
        if not args.yes:
            print("Would drop " + ", ".join(names) + ". Add --yes to drop them.")
            return 1
        print("Dropped " + ", ".join(names) + ".")
    elif args.action == "rehearse":
        return _rehearse()
    else:
        _print_url(db.ensure_ready())
    return 0


def _rehearse() -> int:
    """A restore rehearsal of the learner's database, said in a few lines; exit 1 if rows differ."""
    from workbook import backup

    print("Dumping your database (pg_dump -Fc) and restoring it into a throw-away one...", flush=True)
    found = backup.rehearse()
    tools = ", ".join(f"{name} {t['major']}" for name, t in found["tools"].items())
    print(f"Dumped in {found['dump']['seconds']:.1f} s ({found['dump']['bytes'] / 1e6:.1f} MB, {tools}, "
          f"server {found['server']}); restored into a throw-away database in {found['restore']['seconds']:.1f} s.")
    if found["restore"]["refused_settings"]:
        print(f"  The server refused settings of the newer pg_restore: "
              f"{', '.join(found['restore']['refused_settings'])} (harmless: nothing else failed).")
    moved = [t for t in found["before"] if found["before"][t] != found["after"].get(t)]
    for table, (rows, _) in found["before"].items():
        print(f"  {table}: {rows:,} row{'' if rows == 1 else 's'}, "
              f"{'the same' if table not in moved else 'DIFFERENT'} after the restore")
    if not found["same"]:
        print("The restore does not hold the same rows: do not rely on this backup.", file=sys.stderr)
        return 1
    print("Every table came back with the same rows: this backup restores.")
    return 0


def _print_url(b) -> None:
    """The libpq form on stdout (`psql "$(workbook db url)"`), SQLAlchemy's labelled beside it.

    SQLAlchemy reads postgresql:// as "use psycopg2", which the workbook does not install; libpq
    (psql, psycopg) refuses a +driver. One URL cannot serve both, so each is named."""
    from workbook import db

    u = b.server_url(b.learner_database)
    print(db.libpq_url(u))
    print(f"  (the line above is for psql and libpq; SQLAlchemy, as in create_engine or %sql, needs "
          f"{u.render_as_string(hide_password=False)})", file=sys.stderr)


def _start(b) -> str:
    from workbook import db

    db.ensure_ready()
    return f"{b.describe()} is running."


def cmd_reset(args) -> int:
    from workbook import manifest, templates
    from workbook.config import settings

    ex = manifest.get(args.exercise)
    info = templates.reset(ex)
    print(f"Database {info['database']} is at the start of exercise {ex.number} "
          f"(revision {info['revision']}).")
    arrived = manifest.bring_given(ex, settings().track_dir)
    if arrived:
        print(arrived)
    return 0


def cmd_check(args) -> int:
    from workbook import report
    from workbook.checks import base

    result = _checked(args.exercise, "none" if args.json else "terminal")
    print(report.as_json(result) if args.json else report.as_text(result))
    return {base.PASSED: 0, base.ERROR: 2}.get(result.status, 1)


def _checked(exercise: str, where: str):
    """One check's Report, remembered and recorded (verdicts.keep), or ERROR if it could not run."""
    from workbook import progress, verdicts
    from workbook.checks import base

    try:
        began = time.monotonic()
        with progress.shown(f"checking exercise {exercise}", where):
            result = base.check(exercise)
        verdicts.keep(result, time.monotonic() - began)
    except WorkbookError as err:
        result = base.error_report(exercise, err)
    return result


def cmd_hint(args) -> int:
    from workbook import hints

    print(hints.hint(args.exercise, args.number))
    return 0


def cmd_progress(args) -> int:
    from workbook import manifest, verdicts
    from workbook.report import MARK
    from workbook.status import PASSED

    done = remembered = 0
    width = max(len(ex.title) for ex in manifest.exercises())
    kept = {ex.id: None if args.fresh else verdicts.recall(ex) for ex in manifest.exercises()}
    with _Checks([ex for ex in manifest.exercises() if not kept[ex.id]]) as running:
        for ex in manifest.exercises():
            if kept[ex.id]:
                status, why, note = kept[ex.id]["status"], kept[ex.id].get("reason"), "  (unchanged since its last check)"
                remembered += 1
            else:
                (status, why), note = running.result(ex), ""
            done += status == PASSED
            said = f": {why}" if why else ""  # a failure's first reason, so nobody has to rerun it to see
            if sys.stderr.isatty():
                sys.stderr.write("\r\033[K")  # the progress line, redrawn below this row
            print(f"  {MARK[status]} {ex.number} {ex.title:<{width}}  {status}{said}{note}", flush=True)
    total = len(manifest.exercises())
    print(f"{done} of {total} exercises passed ({100 * done // total} % complete).")
    if remembered:
        print(f"{remembered} of these answered from the cache, as their files did not change; "
              "`workbook progress --fresh` runs every check again.")
    return 0


class _Checks:
    """The checks `progress` runs, AT_ONCE at a time, the longest first; result(ex) waits for one.
    Each does what `workbook check NN --json` does, in a process of its own: a check forks its
    replay, and a fork beside this process's threads (the progress line, the pool) is unsafe. On
    Linux (STARTS) they are forked by a forkserver, a single-threaded process that imports PRELOAD
    once, where each `workbook check` process spent half a second importing them; it resolves no
    setting and opens no connection, so each check does both as before. Each child remembers its verdict
    (verdicts.remember locks the cache) and records it in the room.
    An untouched stub is answered here: it needs no replay, so no process."""

    AT_ONCE = 2  # two checks keep two cores busy; on a shared server admission still gives turns
    # With each check's module: what a check or its replay imported after its start (measured).
    PRELOAD = ["workbook.cli", "workbook.progress", "workbook.verdicts", "workbook.classroom",
               "workbook.db.embedded", "alembic.command", "alembic.config", "alembic.migration", "logging.config"]

    def __init__(self, exercises):
        self.exercises, self.running = exercises, set()

    def __enter__(self):
        import multiprocessing
        from concurrent.futures import ThreadPoolExecutor
        from multiprocessing import forkserver

        from workbook import manifest, progress, verdicts

        # Longest first, so no long check starts last alone: by how long each took last time, or
        # else by the manifest's deadline (a tenth of it: a check mostly takes far less).
        took = verdicts.last_seconds()
        by_length = sorted(self.exercises, key=lambda ex: -(took.get(ex.id) or ex.deadline / 10))
        stubs = [ex for ex in by_length if _stub(ex)]
        self.forks = multiprocessing.get_context(STARTS)
        if STARTS == "forkserver":
            self.forks.set_forkserver_preload(self.PRELOAD + [ex.check for ex in manifest.exercises()])
            if len(stubs) < len(by_length):
                forkserver.ensure_running()  # now: it imports while this process imports its own
        self.shown = progress.shown("checking")
        self.shown.__enter__()  # first: the checks' starts are what it shows
        self.pool = ThreadPoolExecutor(self.AT_ONCE)
        self.futures = {ex.id: self.pool.submit(self._one, ex) for ex in by_length if ex not in stubs}
        for ex in stubs:
            self.futures[ex.id] = self._here(ex)
        return self

    def __exit__(self, *exc):
        for f in self.futures.values():
            f.cancel()
        self.pool.shutdown(wait=True)
        self.shown.__exit__(*exc)

    def result(self, ex) -> tuple[str, str]:
        """(status, the first failing criterion's message, short); why a check could not run is
        said here, in the main thread, as its row comes: after a Ctrl-C nothing more is said."""
        status, why, aside = self.futures[ex.id].result()
        if aside:
            print(f"  (exercise {ex.number}: {aside})", file=sys.stderr)
        return status, why

    def _say(self, number: str, started: bool) -> None:
        from workbook.checks import base

        (self.running.add if started else self.running.discard)(number)
        if self.running:
            numbers = sorted(self.running)
            base.phase(("exercises " if len(numbers) > 1 else "exercise ") + " and ".join(numbers))

    def _here(self, ex):
        """A stub's verdict from this process (no replay, no database), or a process if it needs one."""
        from concurrent.futures import Future

        from workbook import verdicts
        from workbook.checks import base
        from workbook.config import settings

        found = base.unplayed(ex, settings().track_dir)
        if found is None:
            return self.pool.submit(self._one, ex)
        verdicts.keep(found)
        done = Future()
        done.set_result((found.status, verdicts.reason(found), ""))
        return done

    def _one(self, ex) -> tuple[str, str, str]:
        """(status, the first failing criterion's message, short, why it could not run) of one check."""
        from workbook import verdicts
        from workbook.checks import base

        self._say(ex.number, True)
        receive, send = self.forks.Pipe(duplex=False)
        child = self.forks.Process(target=_check_apart, args=(ex.id, send))
        try:
            child.start()
            send.close()
            found = receive.recv()
        except EOFError:  # it died first
            found = None
        finally:
            receive.close()
            child.join()
            self._say(ex.number, False)
        if found is None:
            found = f"it stopped without a verdict (exit code {child.exitcode})"
        if isinstance(found, str) or found.status == base.ERROR:
            return base.ERROR, "", found if isinstance(found, str) else found.criteria[0].message
        return found.status, verdicts.reason(found), ""


def _check_apart(exercise: str, send) -> None:
    """A forkserver child of progress: the check's Report, or the one line of what broke it, sent
    back. What it or its tools write goes nowhere, as a captured process's output did."""
    nowhere = os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, 1)
    os.dup2(nowhere, 2)
    try:
        send.send(_checked(exercise, "none"))
    except Exception as exc:  # a bug in the check: its line, as a traceback's last one said it
        send.send(f"{type(exc).__name__}: {exc}".splitlines()[0])


# How progress starts its checks: forked from a forkserver on Linux; elsewhere (macOS) each starts
# afresh, since a fork beside the system's frameworks is unsafe there (runner's replay spawns too).
STARTS = "forkserver" if sys.platform.startswith("linux") else "spawn"


def _stub(ex) -> bool:
    """Every file of the exercise is still an untouched revision stub (read, not imported)."""
    from workbook.config import settings
    from workbook.stubs import is_stub

    paths = [settings().track_dir / part.file for part in ex.parts()]
    try:
        return all(is_stub(p) for p in paths)
    except (OSError, SyntaxError, ValueError):
        return False  # its own check says what is wrong


def cmd_solution(args) -> int:
    from workbook import manifest
    from workbook.checks import base
    from workbook.manifest import ROOT

    ex = manifest.get(args.exercise)
    if not args.force and not base.check(ex.id).passed:
        print(f"Your check for exercise {ex.number} does not pass yet, so the reference stays hidden: "
              f"try `workbook hint {ex.number}`, or add --force to see it anyway.")
        return 1
    for part in ex.parts():
        print((ROOT / "solutions" / part.file).read_text())
    return 0


def cmd_classroom_create(args) -> int:
    from workbook import classroom

    learners, out = classroom.create(args.learners, args.names, args.csv, args.room_only)
    # Names only: this terminal may be on the projector. The passwords are in the CSV.
    for one in learners:
        print(f"  {one['name']:<20} {one['role']}")
    if args.room_only:
        print(f"{len(learners)} room-only learners. Their WORKBOOK_ROOM_URLs, passwords included, are in {out} "
              "(readable by you only; keep it out of git). Each learner's server keeps WORKBOOK_DB=embedded "
              "and sets WORKBOOK_ROOM_URL to its own line (deploy/jupyterhub does this for a hub).")
        return 0
    print(f"{len(learners)} learners. Their DATABASE_URLs, passwords included, are in {out} (readable by "
          "you only; keep it out of git): hand each learner their own line. Each sets WORKBOOK_DB=url "
          "and DATABASE_URL to it.")
    return 0


def cmd_classroom_status(args) -> int:
    import json

    from workbook import dashboard

    table = dashboard.table()
    print(json.dumps(table, indent=1) if args.json else dashboard.as_text(table))
    return 0


def cmd_classroom_serve(args) -> int:
    from workbook import dashboard

    dashboard.serve(args.host, args.port, args.stuck)
    return 0


def cmd_classroom_remove(args) -> int:
    from workbook import classroom

    dbs, roles, written = classroom.remove(args.yes)
    what = f"databases: {', '.join(dbs) or 'none'}; roles: {', '.join(roles) or 'none'}"
    if written:
        what += f"; and the learners' CSV {written}"
    if not args.yes:
        print(f"Would drop {what}. Add --yes to drop them.")
        return 1 if dbs or roles else 0
    print(f"Dropped {what}.")
    return 0


def cmd_classroom_bench(args) -> int:
    from workbook import classroom_bench

    return classroom_bench.main(args.args)


def cmd_alembic(args) -> int:
    from workbook import migrate

    env = {**os.environ, "ALEMBIC_CONFIG": str(migrate.ini_file())}
    return subprocess.call([sys.executable, "-m", "alembic", *args.args], env=env)


if __name__ == "__main__":
    sys.exit(main())
