"""Every setting in one place, read from the environment when asked, never at import time.

WORKBOOK_DB         embedded (default) | docker | url
DATABASE_URL        the server and database to use when WORKBOOK_DB=url
WORKBOOK_ADMISSION  on that shared server, how many checks replay at once (default 4; 0: no limit)
WORKBOOK_TRACK      exercises (default) | solutions | a folder laid out like them
WORKBOOK_DATA_DIR   where the embedded server and the hint log live (default: .workbook/)
WORKBOOK_SCALE      the learning scale: a fraction of the default data size of your own database
                    (default 1.0: a million findings, a hundred thousand leads)
WORKBOOK_PROOF_SCALE  the scale every check replays at, instead of each check's own PROOF_SCALE
                    (unset: the check's; "learning": WORKBOOK_SCALE); the test of verdicts that
                    must not move with the scale sets it
WORKBOOK_ROOM_URL   the class's room (postgresql://ROLE:PASSWORD@HOST:5432/ROOM), for a learner
                    whose own database is elsewhere (room-only: `workbook classroom create --room-only`)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbook.errors import WorkbookError
from workbook.manifest import ROOT

MODES = ("embedded", "docker", "url")
TRACKS = ("exercises", "solutions")


@dataclass(frozen=True)
class Settings:
    mode: str
    database_url: str | None
    track_dir: Path
    data_dir: Path
    scale: float
    room_url: str | None

    @property
    def track(self) -> str:
        return self.track_dir.name if self.track_dir.parent == ROOT else str(self.track_dir)


def settings() -> Settings:
    mode = os.environ.get("WORKBOOK_DB", "embedded").strip().lower() or "embedded"
    if mode not in MODES:
        raise WorkbookError(
            f"WORKBOOK_DB is {mode!r}, but it must be one of {', '.join(MODES)}. "
            "Unset it to use the embedded server."
        )
    url = os.environ.get("DATABASE_URL") or None
    if mode == "url" and not url:
        raise WorkbookError(
            "WORKBOOK_DB=url but DATABASE_URL is not set. "
            "Set it, for example DATABASE_URL=postgresql://user:password@host:5432/mydb."
        )
    return Settings(
        mode=mode,
        database_url=url,
        track_dir=track_dir(),
        # ~ expands, so a hub can give every user "~/.workbook" (each its own HOME).
        data_dir=Path(os.environ.get("WORKBOOK_DATA_DIR") or ROOT / ".workbook").expanduser().resolve(),
        scale=_scale(),
        room_url=os.environ.get("WORKBOOK_ROOM_URL") or None,
    )


def track_dir(name: str | None = None) -> Path:
    name = name or os.environ.get("WORKBOOK_TRACK") or "exercises"
    path = ROOT / name if name in TRACKS else Path(name).expanduser().resolve()
    if not (path / "versions").is_dir():
        raise WorkbookError(
            f"WORKBOOK_TRACK is {name!r}, but {path}/versions does not exist. "
            "Use 'exercises' (your work) or 'solutions' (the reference answers)."
        )
    return path


def _scale() -> float:
    raw = os.environ.get("WORKBOOK_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not 0 < value <= 10:
        raise WorkbookError(f"WORKBOOK_SCALE is {raw!r}; use a number between 0 and 10, such as 0.1 or 1.")
    return value


def proof_scale(declared: float) -> float:
    """The scale a check replays at: the check's own PROOF_SCALE (the smallest at which each of
    its criteria is decided), unless WORKBOOK_PROOF_SCALE names another."""
    chosen = proof_scale_chosen()
    return declared if chosen is None else chosen


def proof_scale_chosen() -> float | None:
    """The scale WORKBOOK_PROOF_SCALE sets for every check, or None when it is unset."""
    raw = os.environ.get("WORKBOOK_PROOF_SCALE", "").strip()
    if not raw:
        return None
    if raw == "learning":
        return _scale()
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if not 0 < value <= 10:
        raise WorkbookError(f"WORKBOOK_PROOF_SCALE is {raw!r}; unset it (each check replays at its own "
                            "proof scale), or use a number between 0 and 10, or 'learning'.")
    return value


ADMISSION_DEFAULT = 4  # a fixed default: a learner's role cannot read how many cores the server has


def admission() -> int:
    """How many checks may replay at once on a shared server (0: as many as ask)."""
    raw = os.environ.get("WORKBOOK_ADMISSION", "").strip() or str(ADMISSION_DEFAULT)
    if not raw.isdigit():
        raise WorkbookError(f"WORKBOOK_ADMISSION is {raw!r}; use a whole number such as 2 "
                            "(checks replaying at once on the server), or 0 for no limit.")
    return int(raw)
