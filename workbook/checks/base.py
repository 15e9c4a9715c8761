"""The check framework: criteria judge evidence gathered by replaying the learner's migration.

An exercise's check module provides
- CRITERIA: small judge functions made with @criterion, each with an "Assert that ..." docstring;
- gather(replay): runs the learner's revision on a throw-away copy of the exercise's start
  database and returns the Evidence the judges read;
- PROOF_SCALE: the smallest data scale (WORKBOOK_SCALE's unit) at which every criterion is
  decided, with the reason per criterion in the module; the replay runs on copies built at it.
Judging never touches the database and never prints; displaying a Report is workbook.report's job.
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbook import admission, db, manifest, migrate, schema, templates
from workbook.checks import runner
from workbook.config import proof_scale, settings
from workbook.errors import WorkbookError  # noqa: F401  (re-exported for callers)
from workbook.manifest import ROOT, Exercise
from workbook.status import ERROR, FAILED, NOT_ATTEMPTED, PASSED  # noqa: F401  (re-exported)
from workbook.stubs import is_stub  # noqa: F401  (re-exported for the check modules)

# Who wants to hear what a long check is doing: a callable (phase, learner) installed by a display
# (workbook.progress) or by the benchmark; learner is True while the learner's own code runs.
# Judging never reads it, so a check gives the same verdict with or without a listener.
# A plain global rather than a context variable: exercise 1 migrates in a second thread.
_listener: Callable[[str, bool], None] | None = None


@contextlib.contextmanager
def listening(hear: Callable[[str, bool], None]):
    global _listener
    previous, _listener = _listener, hear
    try:
        yield
    finally:
        _listener = previous


def phase(text: str, learner: bool = False) -> None:
    """Tell the listener, if any, that the check has moved on to `text`."""
    if _listener is not None:
        _listener(text, learner)


class Incorrect(Exception):
    """Raised by a judge: the message says what was found, what was expected and what to do."""


@dataclass(frozen=True)
class Criterion:
    id: str
    statement: str
    required: bool
    judge: Callable[["Evidence"], str]


def criterion(id: str, statement: str, required: bool = True):
    def wrap(fn: Callable[["Evidence"], str]) -> Criterion:
        return Criterion(id, statement, required, fn)
    return wrap


@dataclass
class Result:
    id: str
    statement: str
    required: bool
    outcome: str
    message: str


@dataclass
class Report:
    exercise: str
    title: str
    status: str
    criteria: list[Result]
    file: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def failed_required(self) -> list[Result]:
        return [r for r in self.criteria if r.required and r.outcome != PASSED]


@dataclass
class Step:
    """One thing the replay did (upgrade, downgrade, ...): whether it worked, and why not."""
    ok: bool
    error: str = ""
    raw: str = ""  # the database's own words, for exercise-specific diagnoses
    busy: str = ""  # the server's words when the server, not the revision, stopped the step


class Evidence(dict):
    """What the replay observed. Attribute access for readability in judges.

    A key that was never gathered is an error, not None: a misspelt name must not judge silently.
    Use ev.get(name) for evidence that only some paths gather.
    """

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no evidence named {key!r} was gathered") from None

    __setattr__ = dict.__setitem__

    def require(self, *steps: str) -> None:
        for name in steps:
            step = self.get(name)
            if step is None:
                raise Incorrect(f"Not checked: the {name} did not run because an earlier step failed.")
            if not step.ok:
                raise Incorrect(step.error)


@dataclass
class Replay:
    """The throw-away database and the learner's file, handed to an exercise's gather()."""
    exercise: Exercise
    track_dir: Path
    database: str
    explain: Callable[[str], str | None] | None = None
    evidence: Evidence = field(default_factory=Evidence)
    statement_timeout: float | None = None
    others: tuple[str, ...] = ()  # the further copies a module with COPIES > 1 asked for

    @property
    def path(self) -> Path:
        return self.exercise.path(self.track_dir)

    def engine(self):
        return db.engine(self.database, statement_timeout=self.statement_timeout)

    def migrate(self, conn, verb: str, target: str) -> Step:
        """Run alembic upgrade/downgrade on conn, turning a failure into a learner's message."""
        phase(f"running your {verb} to {target}", learner=True)
        try:
            migrate.run(conn, verb, target, self.track_dir)
            return Step(True)
        except Exception as exc:  # the learner's code may raise anything; we explain it
            if conn.in_transaction():
                conn.rollback()
            raw = first_line(getattr(exc, "orig", None) or exc)
            if server_trouble(exc):
                return Step(False, busy_message(raw), raw, busy=raw)
            return Step(False, explain_failure(exc, self.path, verb, self.explain), raw)
        finally:
            phase(f"reading the database after your {verb}")

    def round_trip(self, conn, downgrade: Callable[[], Step] | None = None) -> None:
        """Downgrade, snapshot the schema, upgrade again: the evidence checks.common judges.

        `downgrade` replaces the plain downgrade step (for example, to watch its locks)."""
        ev = self.evidence
        ev.downgrade = downgrade() if downgrade else self.migrate(conn, "downgrade", self.exercise.down_revision)
        if ev.downgrade.ok:
            ev.after_downgrade = schema.snapshot(conn)
            conn.commit()
            ev.upgrade_again = self.migrate(conn, "upgrade", self.exercise.revision)

    def migrate_in_thread(self, conn, verb: str, target: str) -> tuple[threading.Thread, dict]:
        box: dict = {}
        thread = threading.Thread(target=lambda: box.update(step=self.migrate(conn, verb, target)),
                                  daemon=True)
        thread.start()
        return thread, box


first_line = db.first_line


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def server_trouble(exc: BaseException) -> bool:
    """True when the server, not the revision, stopped a statement: out of resources (SQLSTATE
    class 53: too many connections, disk full, out of memory), operator intervention (57: shut
    down, cancelled by another session or an administrator) or a lost connection (08, or none).

    The one exception is the learner's own timeout: their `SET statement_timeout` cancels with
    "due to statement timeout" (the workbook's backstop fires only after the deadline stopped the
    replay). A lock_timeout is 55P03, the revision's too.
    """
    import psycopg

    state = db.sqlstate(exc) or ""
    if state == "57014":
        return "statement timeout" not in first_line(exc)
    if state[:2] in ("53", "57", "08"):
        return True
    # libpq's own failures (server closed the connection, could not connect) carry no code.
    return not state and isinstance(getattr(exc, "orig", None) or exc, psycopg.OperationalError)


def unreachable(exc: BaseException) -> bool:
    """True when no connection opened at all: nothing listens there (refused, no socket, no such
    host, no answer). That is a wrong URL or a stopped server, which db.explain words, not a busy one."""
    low = first_line(exc).lower()
    return not db.sqlstate(exc) and any(s in low for s in (
        "connection refused", "no such file", "could not translate host", "timeout expired"))


def busy_message(said: str) -> str:
    return (f"The server was busy ({said}): your answer was not judged. Run the check again in a "
            "minute; if it keeps happening, tell whoever runs the server.")


def explain_failure(exc: BaseException, path: Path, verb: str,
                    explain: Callable[[str], str | None] | None = None) -> str:
    line = migrate.where_in(exc, path)
    where = f"{relative(path)}, line {line}" if line else relative(path)
    text = first_line(getattr(exc, "orig", None) or exc)
    low = text.lower()
    special = explain(text) if explain else None
    if special:
        return f"The {verb} failed at {where}: {text}. {special}"
    if "cannot run inside a transaction block" in low:
        return (f"The {verb} failed at {where}: PostgreSQL said \"{text}\". Alembic runs every "
                "revision inside a transaction, and CONCURRENTLY refuses to run in one: put the "
                "statement inside `with op.get_context().autocommit_block():`.")
    if "does not exist" in low:
        return (f"The {verb} failed at {where}: {text}. Check the table and column names "
                "against the schema (finding, lead) at this revision.")
    return f"The {verb} failed at {where}: {type(exc).__name__}: {text}. Fix it and run the check again."


def declared_ids(path: Path) -> dict:
    """The constants a revision file assigns at module level (revision, down_revision, ...)."""
    found = {}
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and isinstance(getattr(node, "value", None), ast.Constant):
            found[target.id] = node.value.value
        elif isinstance(target, ast.Name) and isinstance(getattr(node, "value", None), ast.Tuple):
            with contextlib.suppress(ValueError):  # a merge's down_revision: a tuple of ids
                found[target.id] = ast.literal_eval(node.value)
    return found


def preflight(ex: Exercise, track_dir: Path) -> str | None:
    """Why the revision cannot be replayed (syntax, ids, heads), or None when it can."""
    path = ex.path(track_dir)
    name = relative(path)
    if not path.exists():
        return f"{name} is missing. Restore it from git (git checkout -- {name}) and try again."
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as exc:
        return (f"{name}, line {exc.lineno}: Python cannot read it ({exc.msg}). "
                "Fix the syntax and run the check again.")
    if ex.revision is None:
        return None
    declared = declared_ids(path)
    if declared.get("revision") != ex.revision:
        return (f"{name} says revision = {declared.get('revision')!r}, but the checks look for "
                f"{ex.revision!r}. Put the original id back.")
    if declared.get("down_revision") != ex.down_revision and not ex.merges:
        return (f"{name} says down_revision = {declared.get('down_revision')!r}, but this exercise "
                f"follows {ex.down_revision!r}. Set down_revision = {ex.down_revision!r}.")
    missing = _not_arrived(ex, track_dir)
    if missing:
        return missing
    claims: dict = {}  # two files with one id break the whole history: name them, not this one
    for other in sorted(path.parent.glob("*.py")):
        try:
            claims.setdefault(declared_ids(other).get("revision"), []).append(other)
        except SyntaxError:
            continue  # Alembic's load below names it
    for rev, files in claims.items():
        others = [relative(f) for f in files if f.resolve() != path.resolve()]
        if rev is not None and len(files) > 1 and rev == ex.revision:
            return (f"{others[0]} also says revision = {rev!r}, which belongs to {name}. Give "
                    f"{others[0]} back its own revision id and run the check again.")
        if rev is not None and len(files) > 1:
            return (f"{' and '.join(others)} both say revision = {rev!r}; each revision needs its own "
                    f"id. Put the original id back in the one that changed, then check exercise "
                    f"{ex.number} again.")
    try:
        with warnings.catch_warnings():  # Alembic warns, then raises; the message below says it
            warnings.simplefilter("ignore")
            script = migrate.script_directory(track_dir)
            heads = script.get_heads()
            found = script.get_revision(ex.revision)
    except Exception as exc:  # Alembic reports a broken history in many ways
        # Alembic loads every revision file: name the one that failed, which may be another exercise's.
        frames = [Path(exc.filename)] if isinstance(exc, SyntaxError) and exc.filename else []
        frames += [Path(f.filename) for f in traceback.extract_tb(exc.__traceback__)]
        culprit = next((f for f in reversed(frames) if f.parent.name == "versions"), None)
        line = f", line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
        said = exc.msg if isinstance(exc, SyntaxError) else first_line(exc)
        if culprit is not None and culprit.resolve() == path.resolve():
            return f"{name}{line} does not load: {said}. Fix it and run the check again."
        if culprit is not None:
            return (f"{relative(culprit)}{line} does not load ({said}), and Alembic reads every "
                    f"revision before it can replay exercise {ex.number}; {name} itself is fine. "
                    f"Fix {relative(culprit)} (or `git checkout -- {relative(culprit)}`), then "
                    "run the check again.")
        return (f"Alembic could not read the revision history: {first_line(exc)}. Expected {name} to "
                f"keep revision = {ex.revision!r} and down_revision = {ex.down_revision!r}.")
    if found is None or Path(found.path).resolve() != path.resolve():
        return (f"{name} must keep revision = {ex.revision!r} (the checks look for it), but Alembic "
                "did not find that revision there. Put the original id back.")
    if found.down_revision != ex.down_revision and not ex.merges:  # a merge's parents: judged live
        return (f"{name} says down_revision = {found.down_revision!r}, but this exercise follows "
                f"{ex.down_revision!r}. Set down_revision = {ex.down_revision!r}.")
    strangers = _strangers(script)
    if strangers:
        return _stranger_problem(strangers, heads, track_dir)
    if len(heads) > 1 and not ex.merges and not set(heads) <= manifest.unmerged():
        files = ", ".join(f"{h} ({relative(Path(script.get_revision(h).path))})" for h in sorted(heads))
        return (f"The history has {len(heads)} heads: {files}; expected one. Delete the extra "
                "revision, or make it follow the last one (or `alembic merge heads`).")
    return None


def _not_arrived(ex: Exercise, track_dir: Path) -> str | None:
    """Why an answer cannot be judged yet: given files (exercise 8's teams') missing from the track.

    They reach a learner's track with `workbook reset` of the exercise. The untouched stub still
    reads "not attempted": it follows their parent, so the history loads without them.
    """
    missing = [g.file for g in ex.given_parts() if not g.path(track_dir).exists()]
    if not missing or not importlib.import_module(ex.check).attempted(ex.path(track_dir)):
        return None
    return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing from your track "
            f"({relative(track_dir)}): "
            f"exercise {ex.number}'s given revisions (the teams' shipped work), which your answer needs "
            f"before it can be replayed. Run `workbook reset {ex.number}` (in a notebook: the setup cell "
            f"of {ex.number}), which copies each missing one into versions/ (never over a file you "
            "have), then run the check again.")


def _strangers(script) -> list:
    """Revisions in the track's history that are none of the workbook's: a draft left in versions/, say."""
    ours = {manifest.baseline()} | {p.revision for p in manifest.revisions()}
    return sorted((r for r in script.walk_revisions() if r.revision not in ours), key=lambda r: r.path)


def _stranger_problem(strangers: list, heads, track_dir: Path) -> str:
    """Why a revision the workbook does not know breaks the learner's next `alembic upgrade head`.

    Checks replay only up to their own revision, so such a file never fails a replay; the
    learner's own `alembic upgrade head` meets it (autogenerate's draft, left beside the exercise).
    """
    said = "; ".join(f"{relative(Path(r.path))} (revision = {r.revision!r}, after {r.down_revision!r})"
                     for r in strangers)
    files = " and ".join(relative(Path(r.path)) for r in strangers)
    owner = {p.down_revision: relative(p.path(track_dir)) for ex in manifest.exercises() if ex.revision
             for p in ex.parts() if isinstance(p.down_revision, str)}
    into = [owner[r.down_revision] for r in strangers if r.down_revision in owner]
    move = f" (its operations belong in {into[0]})" if into else ""
    if len(heads) > 1:
        found = (f"{said} is not one of the workbook's revisions, and the history now has {len(heads)} heads "
                 f"({', '.join(sorted(heads))}): your next `alembic upgrade head` fails with "
                 "\"Multiple head revisions are present\".")
        fix = "or, to keep it, join the heads with `alembic merge heads`."
    else:
        found = (f"{said} is not one of the workbook's revisions: your next `alembic upgrade head` runs it "
                 "after the exercises.")
        fix = "or move it out of versions/."
    return f"{found} A draft autogenerate left there? Delete {files}{move}, {fix}"


def _scratches(ex: Exercise):
    """The databases the replay gets: the module's COPIES copies of the start template (one
    unless it says otherwise), or none when it builds its own (exercise 4's tests, 11's SQLite)."""
    copies = getattr(importlib.import_module(ex.check), "COPIES", 1)
    if not copies:
        return contextlib.nullcontext([""])
    return templates.scratches(ex.start, copies, replay_scale(ex))


def _copy_early(module, path: Path) -> bool:
    """Whether to start the replay's copies before preflight: when there will be copies, the
    answer is not the stub (whose verdict needs none), and no queue decides when they are made."""
    if not getattr(module, "COPIES", 1) or admission.queued():
        return False
    try:
        return module.attempted(path) is not False
    except Exception:  # a file that does not load: preflight says why, and no copy is needed
        return False


class _Copies:
    """The replay's copies (_scratches), made in a thread while this process loads the learner's
    history (preflight) when `early`: the server copies files while Python reads them.

    Early, only a built template is copied: a first build waits for a replay that needs it.
    """

    def __init__(self, ex: Exercise, early: bool):
        self.ex, self.box, self.thread = ex, {}, None
        if early:
            # The server's modules are imported here, not in the thread beside preflight's own
            # imports: two threads importing one package can meet it half initialised.
            try:
                db.ensure_ready()
            except WorkbookError:
                return  # said again where the replay needs the server, after preflight
            self.thread = threading.Thread(target=self._make, daemon=True)
            self.thread.start()

    def _make(self) -> None:
        try:
            if templates.built(self.ex.start, replay_scale(self.ex)):
                made = _scratches(self.ex)
                self.box["databases"] = made.__enter__()
                self.box["made"] = made
        except BaseException as exc:  # raised in made(), in the caller's thread
            self.box["error"] = exc

    @contextlib.contextmanager
    def made(self):
        """The databases: the early ones, or made now (and dropped at the end of the block)."""
        if self.thread is not None:
            self.thread.join()
        if "error" in self.box:
            raise self.box.pop("error")
        if "databases" in self.box:
            yield self.box["databases"]
        else:
            with _scratches(self.ex) as databases:
                yield databases

    def close(self) -> None:
        """Drop the early copies, used or not; once."""
        if self.thread is not None:
            self.thread.join()
        made = self.box.pop("made", None)
        if made is not None:
            made.__exit__(None, None, None)


def _reporter(ex: Exercise, path: Path) -> Callable[[str, list], Report]:
    return lambda status, results: Report(ex.id, ex.title, status, results, relative(path))


def replay_scale(ex: Exercise) -> float:
    """The data scale `ex`'s check replays at: its module's PROOF_SCALE, or WORKBOOK_PROOF_SCALE."""
    return proof_scale(importlib.import_module(ex.check).PROOF_SCALE)


def unplayed(ex: Exercise, track_dir: Path) -> Report | None:
    """The verdict that needs no replay and no database: a file that does not load or does not fit
    the history (FAILED), or the untouched stub (NOT ATTEMPTED). None when the answer must be replayed."""
    module = importlib.import_module(ex.check)
    path = ex.path(track_dir)
    report = _reporter(ex, path)
    problem = next(filter(None, (preflight(part, track_dir) for part in ex.parts())), None)
    if problem:
        return report(FAILED, [Result("loads", "The file loads and fits the revision history.", True,
                                      FAILED, problem)]
                      + [_result(c, FAILED, "Not checked: fix the problem above first.")
                         for c in module.CRITERIA])
    if module.attempted(path) is False:
        hint = (f"Not attempted yet: {relative(path)} is still the stub. Start with "
                f"`workbook hint {ex.number}` (in a notebook: hint(\"{ex.number}\")).")
        return report(NOT_ATTEMPTED, [_result(c, NOT_ATTEMPTED, hint) for c in module.CRITERIA])
    return None


def check(name: str, track_dir: Path | str | None = None, deadline: float | None = None) -> Report:
    """Judge one exercise. Never raises for the learner's mistakes; WorkbookError when it cannot run.

    The replay runs in a child process and stops at the exercise's deadline (the manifest's,
    or `deadline` seconds); its phases reach this process's listener as they start.
    """
    ex = manifest.get(name)
    track_dir = Path(track_dir) if track_dir else settings().track_dir
    module = importlib.import_module(ex.check)
    path = ex.path(track_dir)
    report = _reporter(ex, path)

    copies = _Copies(ex, _copy_early(module, path))
    try:
        settled = unplayed(ex, track_dir)
        if settled:
            return settled
        limit = deadline or ex.deadline
        try:
            # On a shared server, wait for a turn first: the deadline starts after it, in the runner.
            with admission.admitted(phase), \
                    copies.made() as databases:
                outcome = runner.gather(ex, track_dir, databases, limit)
        except WorkbookError as err:  # db.explained keeps the server's own error as the context
            if err.__context__ is None or not server_trouble(err.__context__) or unreachable(err.__context__):
                raise  # a server that is not there is no busy one: its message says what to do
            return report(ERROR, _not_judged(busy_message(first_line(err.__context__)), module))
    finally:
        # Early copies, used or not, go here; a verdict without a replay needs no server, and a
        # copy a busy server could not drop is swept later (templates.sweep).
        with contextlib.suppress(WorkbookError):
            copies.close()

    if outcome.evidence is None:
        status, first = _no_evidence(outcome, limit)
        return report(status, [first] + [_result(c, status, "Not checked: see the first line.")
                                          for c in module.CRITERIA])
    said = _busy(outcome.evidence)
    if said:  # a step the server stopped proves nothing about the revision: judge nothing
        return report(ERROR, _not_judged(busy_message(said), module))
    results = [_judge(c, outcome.evidence) for c in module.CRITERIA]
    if any(r.outcome == ERROR for r in results):
        status = ERROR
    else:
        status = PASSED if all(r.outcome == PASSED for r in results if r.required) else FAILED
    return report(status, results)


def _no_evidence(outcome, limit: float) -> tuple[str, Result]:
    """The one verdict when the replay produced nothing to judge."""
    if outcome.busy:
        return ERROR, _server_was_busy(busy_message(outcome.busy))
    if outcome.stopped_after is not None and not outcome.learner:
        return ERROR, _server_was_busy(
            f"The server was too slow: after {limit:.0f} s the check itself was still {outcome.phase}, "
            "outside your revision, so your answer was not judged. Run the check again in a minute.")
    if outcome.stopped_after is not None:
        return FAILED, Result(
            "deadline", f"The replay finishes within {limit:.0f} s.", True, FAILED,
            f"Stopped after {limit:.0f} s while {outcome.phase}. Expected the revision to finish well "
            "within that: look for a loop that never advances (a batch whose range does not move) "
            "or a lock that is never granted (a second connection holding it).")
    if outcome.db_error:
        return FAILED, Result(
            "replay", "The checks can read the database your revision leaves.", True, FAILED,
            f"{outcome.db_error}. Expected finding and lead as the exercise describes them: does "
            "your revision drop or rename something the exercise did not ask for?")
    return ERROR, Result("run", "The check ran to the end.", True, ERROR,
                         f"The check could not run: {outcome.error}. Run it again; if it repeats, "
                         "please report it with this line.")


def _server_was_busy(message: str) -> Result:
    return Result("server", "The server could run the check.", True, ERROR, message)


def _not_judged(message: str, module) -> list[Result]:
    return [_server_was_busy(message)] + [_result(c, ERROR, "Not judged: see the first line.")
                                          for c in module.CRITERIA]


def _busy(evidence: Evidence) -> str:
    """The server's words if it stopped any step of the replay (a Step, or one in a list or dict)."""
    for value in evidence.values():
        for item in value.values() if isinstance(value, dict) else \
                value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, Step) and item.busy:
                return item.busy
    return ""


def _result(c: Criterion, outcome: str, message: str) -> Result:
    return Result(c.id, c.statement, c.required, outcome, message)


def _judge(c: Criterion, evidence: Evidence) -> Result:
    try:
        return _result(c, PASSED, c.judge(evidence) or "")
    except Incorrect as exc:
        return _result(c, FAILED, str(exc))
    except Exception as exc:  # a bug in the judge must not hide the other verdicts
        return _result(c, ERROR, f"The check itself failed here ({exc!r}); please report it.")


def error_report(name: str, err: WorkbookError) -> Report:
    ex = manifest.get(name)
    return Report(ex.id, ex.title, ERROR, [Result("run", "The database answered and the check ran.", True, ERROR, str(err))])
