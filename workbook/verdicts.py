"""Remembered verdicts, so `workbook progress` need not replay a check whose inputs did not change.

A verdict is kept under a key made of what decides it:
- the learner's file (its bytes), the track's models.py, and of the other revision files in the
  same versions/ folder only what preflight reads from them (their name and revision ids), so
  editing exercise 3 does not rerun exercise 1;
- the workbook's code: one hash of every module in the workbook package (the checks, what they
  lean on, exercises.toml), migrations/ (env.py, the baseline), solutions/ (the templates are
  built from them), pyproject.toml and requirements.txt; so a `git pull` that changes any of
  them replays. About 60 files, read once per process: a few milliseconds. With the scale, this holds every input of the exercise's start template (a superset
  of what templates.fingerprint hashes);
- the server it ran on: which one, not how its URL is spelt. The embedded server is its folder,
  whatever DATABASE_URL says (a notebook's setup() puts one in the kernel's environment); a
  DATABASE_URL server is its user, host, port and database, whichever driver the URL names.
Only verdicts of checks that ran to the end are kept (never "error"), with the first failing
criterion's message for `progress` to show. This module imports no database code, so a progress
answered wholly from here starts fast.
"""
from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from workbook import manifest
from workbook.config import proof_scale_chosen, settings
from workbook.manifest import ROOT
from workbook.status import ERROR, FAILED

FILE = "verdicts.json"
CODE_DIRS = ["workbook", "migrations", "solutions"]
CODE_FILES = ["pyproject.toml", "requirements.txt"]
CODE_SUFFIXES = (".py", ".toml", ".mako")  # code and manifest; not a settings file a tool may rewrite
REASON_LENGTH = 100  # characters of the first failing criterion's message that progress shows


def _store() -> Path:
    return settings().data_dir / FILE


def _declared(path: Path) -> str:
    """What the revision graph needs from another file: its ids, or that Python cannot read it."""
    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return "unreadable"
    ids = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("revision", "down_revision", "depends_on") \
                and isinstance(node.value, ast.Constant):
            ids.append(f"{node.targets[0].id}={node.value.value!r}")
    return ",".join(sorted(ids))


def _code_files() -> list[Path]:
    files = [ROOT / name for name in CODE_FILES]
    for top in CODE_DIRS:
        for folder, subdirs, names in os.walk(ROOT / top):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            files += [Path(folder) / n for n in sorted(names) if n.endswith(CODE_SUFFIXES)]
    return files


@functools.cache
def code() -> str:
    """One hash of the workbook's code and the templates' sources, read once per process."""
    h = hashlib.sha256()
    for path in _code_files():
        h.update(str(path.relative_to(ROOT)).encode() + b"\0")
        h.update(path.read_bytes() if path.exists() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def server() -> str:
    """Which server a verdict came from, however its URL was spelt or set."""
    s = settings()
    if s.mode == "embedded":
        return f"embedded in {s.data_dir}"  # DATABASE_URL, if set, is not this server's
    if s.mode == "docker":
        return "docker"
    return "url " + where(s.database_url or "")


def where(raw: str) -> str:
    """user@host:port/database of a PostgreSQL URL, whatever its scheme, driver or password."""
    try:
        u = urlsplit(raw.strip())
        query = parse_qs(u.query)
        host = (query.get("host") or [u.hostname or "localhost"])[0].lower()
        port = (query.get("port") or [u.port or 5432])[0]
        user = (query.get("user") or [unquote(u.username or "")])[0]
        database = (query.get("dbname") or [unquote(u.path.lstrip("/"))])[0]
    except ValueError:  # a port that is not a number: the check said so; keep the text apart
        return raw.strip()
    return f"{user}@{host}:{port}/{database}"


def key(ex: manifest.Exercise, track_dir: Path | None = None) -> str:
    track_dir = Path(track_dir or settings().track_dir)
    h = hashlib.sha256()
    own = {part.path(track_dir).resolve() for part in ex.parts()}
    h.update(str(track_dir.resolve()).encode())
    for path in sorted(own):
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    models = track_dir / "models.py"  # the track's models: what `alembic check` compares with
    h.update(models.read_bytes() if models.exists() else b"<no models>")
    if ex.environment:  # an environment of its own (11's SQLite): its env.py and models decide too
        for name in ("env.py", "models.py", "alembic.ini"):
            path = track_dir / ex.environment / name
            h.update(path.read_bytes() if path.exists() else b"<missing>")
    for name in ex.also:  # other files the learner edits (11's async/env.py)
        path = track_dir / name
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    for other in sorted((track_dir / "versions").glob("*.py")):
        if other.resolve() not in own:
            h.update(f"{other.name}:{_declared(other)}".encode())
    # The checks' own PROOF_SCALE is in code(); WORKBOOK_PROOF_SCALE overrides it.
    h.update(f"{settings().scale!r} {proof_scale_chosen()!r} {server()} {code()}".encode())
    return h.hexdigest()


def reason(report) -> str:
    """The first failing required criterion's message, cut to its first sentence and a line."""
    if report.status != FAILED:
        return ""
    failed = report.failed_required()
    text = " ".join(failed[0].message.split()) if failed else ""
    text = re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", text, maxsplit=1)[0]
    return text if len(text) <= REASON_LENGTH else text[:REASON_LENGTH - 1].rstrip() + "…"


def _load() -> dict:
    try:
        return json.loads(_store().read_text())
    except (OSError, ValueError):
        return {}


def _entry(ex: manifest.Exercise, track_dir: Path | None) -> str:
    return f"{ex.id} in {Path(track_dir or settings().track_dir).resolve()}"


def recall(ex: manifest.Exercise, track_dir: Path | None = None) -> dict | None:
    """{'status': ..., 'reason': ..., 'at': seconds since the epoch} if this exact input was checked before."""
    found = _load().get(_entry(ex, track_dir))
    return found if found and found.get("key") == key(ex, track_dir) else None


def remember(ex: manifest.Exercise, status: str, track_dir: Path | None = None, why: str = "",
             seconds: float | None = None) -> None:
    """Keep a verdict; `why` is reason(report) for a failed one, `seconds` how long the check took."""
    if status == ERROR:
        return
    entry = {"key": key(ex, track_dir), "status": status, "reason": why, "at": time.time(), "seconds": seconds}
    path = _store()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Checks run side by side (progress, the tests): one writer at a time, or one's verdict is lost.
        with open(path.with_name(f"{FILE}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = {name: v for name, v in _load().items()  # forget tracks that are gone (test copies)
                    if Path(name.split(" in ", 1)[-1]).is_dir()}
            data[_entry(ex, track_dir)] = entry
            partial = path.with_name(f"{FILE}.{os.getpid()}")
            partial.write_text(json.dumps(data, indent=1))
            partial.replace(path)  # never a half-written file for the next reader
    except OSError:
        pass  # a cache that cannot be written only costs time


def keep(report, seconds: float | None = None) -> None:
    """What follows every verdict, from the CLI, a notebook or progress: remembered here (with how
    long the check took), and recorded in the room when there is one."""
    from workbook import classroom

    remember(manifest.get(report.exercise), report.status, why=reason(report), seconds=seconds)
    classroom.record(report)


def last_seconds() -> dict[str, float]:
    """How long each exercise's last remembered check in this track took, whatever its inputs
    were then: {exercise id: seconds}, read in one go."""
    kept = _load()
    found = {ex.id: (kept.get(_entry(ex, None)) or {}).get("seconds") for ex in manifest.exercises()}
    return {exercise: seconds for exercise, seconds in found.items() if seconds}
