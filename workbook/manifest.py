"""The exercise manifest (exercises.toml), read once and shared by everything."""
from __future__ import annotations

import dataclasses
import functools
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbook.errors import WorkbookError

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    notebook: str
    file: str
    start: str
    check: str
    hints: tuple[str, ...]
    revision: str | None = None
    # The revision it follows; a merge follows several (a tuple, as Alembic writes it).
    down_revision: str | tuple[str, ...] | None = None
    deadline: float = 60  # seconds a check may take before it is stopped with a verdict
    then: tuple[tuple[str, str], ...] = ()  # further (file, revision) the exercise's chain goes on with
    # Revision files given complete, which the learner must not edit: (file, revision, down_revision).
    given: tuple[tuple[str, str, str], ...] = ()
    # An exercise with its own Alembic environment and database (exercise 11's "sqlite"): not on
    # the PostgreSQL revision chain, so it has no `revision`, and no PostgreSQL template.
    environment: str | None = None
    # Further files the learner edits that are no revision (exercise 11's async/env.py): the check
    # reads them, and `workbook progress` checks again when one changes.
    also: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        return self.id[:2]

    @property
    def head(self) -> str | None:
        """The exercise's last revision: its own, or the last of `then`."""
        return self.then[-1][1] if self.then else self.revision

    @property
    def merges(self) -> bool:
        """True when the exercise's revision follows several heads (a merge revision)."""
        return isinstance(self.down_revision, tuple)

    @property
    def stub_down_revision(self) -> str | None:
        """What the stub's down_revision says: the exercise's own, except a merge's, which follows
        the revision its given files follow, so that before they arrive the history has one head."""
        return self.given[0][2] if self.merges and self.given else self.down_revision

    def path(self, track_dir: Path) -> Path:
        return track_dir / self.file

    def parts(self) -> list["Exercise"]:
        """One Exercise per revision file, each following the one before (most have one)."""
        out = [self]
        for file, revision in self.then:
            out.append(dataclasses.replace(out[-1], file=file, revision=revision,
                                           down_revision=out[-1].revision, then=()))
        return out

    def given_parts(self) -> list["Exercise"]:
        """One Exercise per given file, in the manifest's order (none for most exercises)."""
        return [dataclasses.replace(self, file=file, revision=revision, down_revision=down, then=(), given=())
                for file, revision, down in self.given]


@functools.cache
def _load() -> tuple[str, tuple[Exercise, ...]]:
    data = tomllib.loads((PACKAGE_DIR / "exercises.toml").read_text())
    items = tuple(
        Exercise(**{**raw, "hints": tuple(raw.get("hints", ())),
                    "then": tuple((t["file"], t["revision"]) for t in raw.get("then", ())),
                    "given": tuple((g["file"], g["revision"], g["down_revision"]) for g in raw.get("given", ())),
                    "also": tuple(raw.get("also", ())),
                    **({"down_revision": tuple(raw["down_revision"])}
                       if isinstance(raw.get("down_revision"), list) else {})})
        for raw in data["exercise"]
    )
    return data["baseline"], items


def baseline() -> str:
    return _load()[0]


def exercises() -> tuple[Exercise, ...]:
    return _load()[1]


def get(name: str) -> Exercise:
    """Find an exercise by '01', '1', '01_add_index' or 'add_index'."""
    key = str(name).strip().lower()
    for ex in exercises():
        if key in (ex.id, ex.number, ex.number.lstrip("0"), ex.id[3:]):
            return ex
    known = ", ".join(ex.id for ex in exercises())
    numbers = [ex.number for ex in exercises()]
    raise WorkbookError(f"There is no exercise called {name!r}. Use one of: {known} "
                        f"(or just {numbers[0]}..{numbers[-1]}).")


def by_revision(revision: str) -> Exercise | None:
    return next((ex for ex in exercises() if ex.revision == revision), None)


def revisions() -> list[Exercise]:
    """Every revision file the workbook knows, in the manifest's order: an exercise's given files
    (exercise 8's two teams), then its own parts. Each follows one before it in this list."""
    return [p for ex in exercises() if ex.revision for p in ex.given_parts() + ex.parts()]


def unmerged() -> set[str]:
    """The heads the history has while a merge exercise is not done yet: its given files, once
    they arrived, and its own revision (the stub follows their parent too), or the last revision
    after it (exercise 10's follows the merge, so the merge's line ends there). Other exercises'
    checks replay only up to their own revision, so these heads are no problem of theirs."""
    return {rev for ex in exercises() if ex.merges
            for rev in (*ex.down_revision, ex.revision, *after(ex.revision))}


def after(revision: str) -> list[str]:
    """The course's revisions after `revision`, in the manifest's order."""
    order = [p.revision for p in revisions()]
    return order[order.index(revision) + 1:]


def ancestors(revision: str) -> set[str]:
    """`revision` and every revision it follows, through each parent of a merge."""
    parents = {p.revision: p.down_revision for p in revisions()}
    found, todo = set(), [revision]
    while todo:
        rev = todo.pop()
        if rev in found or rev is None:
            continue
        found.add(rev)
        down = parents.get(rev)
        todo += list(down) if isinstance(down, tuple) else [down]
    return found


def revision_chain(upto: str) -> list[Exercise]:
    """The revision files between the baseline and `upto`, in the order of revisions().

    A database built along it runs each in turn, so the chain up to the second of two given
    files that follow one revision (exercise 8's teams) has both applied: two heads.
    """
    chain = []
    for part in revisions():
        if upto == baseline():
            break
        chain.append(part)
        if part.revision == upto:
            break
    return chain


def bring_given(ex: Exercise, track_dir: Path) -> str | None:
    """Copy the given files of the exercise and of those before it that the track lacks from the
    reference track (solutions/); the one line that says what arrived, or None.

    Exercise 8's two teams' revisions are not committed in exercises/: until the learner starts
    exercise 8 their history has one head, as every notebook before it expects. `workbook reset`
    brings them, as a `git pull` of the teams' work would; so does a reset of any later exercise,
    whose start has them applied. A file already there is never replaced, even one that differs:
    the check judges it.
    """
    landed = []  # (exercise number, file)
    for earlier in exercises()[:exercises().index(ex) + 1]:
        for part in earlier.given_parts():
            target = part.path(track_dir)
            if not target.exists():
                shutil.copyfile(part.path(ROOT / "solutions"), target)
                landed.append((earlier.number, part.file))
    if not landed:
        return None
    where = track_dir.name if track_dir.parent == ROOT else str(track_dir)
    numbers = " and ".join(dict.fromkeys(n for n, _ in landed))
    return (f"The teams' work for exercise {numbers} arrived, as a `git pull` would bring it: "
            f"{' and '.join(f for _, f in landed)} copied into {where}/ (given complete: leave them as they are).")
