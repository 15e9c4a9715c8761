"""The exercise manifest (exercises.toml), read once and shared by everything."""
from __future__ import annotations

import dataclasses
import functools
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
    down_revision: str | None = None
    deadline: float = 60  # seconds a check may take before it is stopped with a verdict
    then: tuple[tuple[str, str], ...] = ()  # further (file, revision) the exercise's chain goes on with

    @property
    def number(self) -> str:
        return self.id[:2]

    @property
    def head(self) -> str | None:
        """The exercise's last revision: its own, or the last of `then`."""
        return self.then[-1][1] if self.then else self.revision

    def path(self, track_dir: Path) -> Path:
        return track_dir / self.file

    def parts(self) -> list["Exercise"]:
        """One Exercise per revision file, each following the one before (most have one)."""
        out = [self]
        for file, revision in self.then:
            out.append(dataclasses.replace(out[-1], file=file, revision=revision,
                                           down_revision=out[-1].revision, then=()))
        return out


@functools.cache
def _load() -> tuple[str, tuple[Exercise, ...]]:
    data = tomllib.loads((PACKAGE_DIR / "exercises.toml").read_text())
    items = tuple(
        Exercise(**{**raw, "hints": tuple(raw.get("hints", ())),
                    "then": tuple((t["file"], t["revision"]) for t in raw.get("then", ()))})
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


def revision_chain(upto: str) -> list[Exercise]:
    """The revision files (Exercise.parts) between the baseline and `upto`, in order."""
    chain = []
    for part in (p for ex in exercises() if ex.revision for p in ex.parts()):
        if upto == baseline():
            break
        chain.append(part)
        if part.revision == upto:
            break
    return chain
