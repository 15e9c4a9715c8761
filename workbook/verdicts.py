"""Remembered verdicts, so `workbook progress` need not replay a check whose inputs did not change.

A verdict is kept under a key made of everything that could change it:
- the learner's file (its bytes), the track's models.py, and of the other revision files in the same versions/ folder
  only what preflight reads from them (their name and revision ids), so editing exercise 3 does
  not rerun exercise 1;
- the template's inputs (scale, seed, baseline and every reference solution: a superset of what
  templates.fingerprint hashes, so a change there is never missed);
- the workbook itself: its version (pyproject.toml), its requirements, and the check code
  (every module in workbook/checks, and the modules they lean on);
- the server it ran on (WORKBOOK_DB and DATABASE_URL).
Only verdicts of checks that ran to the end are kept (never "error"). This module imports no
database code, so a progress answered wholly from here starts fast.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from pathlib import Path

from workbook import manifest
from workbook.config import settings
from workbook.manifest import ROOT
from workbook.status import ERROR

FILE = "verdicts.json"
CHECK_CODE = ["workbook/testing.py", "workbook/schema.py", "workbook/models.py", "workbook/migrate.py",
              "requirements.txt"]


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


def key(ex: manifest.Exercise, track_dir: Path | None = None) -> str:
    track_dir = Path(track_dir or settings().track_dir)
    h = hashlib.sha256()
    own = {part.path(track_dir).resolve() for part in ex.parts()}
    h.update(str(track_dir.resolve()).encode())
    for path in sorted(own):
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    models = track_dir / "models.py"  # the track's models: what `alembic check` compares with
    h.update(models.read_bytes() if models.exists() else b"<no models>")
    for other in sorted((track_dir / "versions").glob("*.py")):
        if other.resolve() not in own:
            h.update(f"{other.name}:{_declared(other)}".encode())
    s = settings()
    h.update(f"{s.scale!r} {s.mode} {s.database_url}".encode())  # another server may answer otherwise
    inputs = [ROOT / "workbook" / "seed.py", ROOT / "migrations" / "versions" / "0000_baseline.py",
              ROOT / "workbook" / "exercises.toml", ROOT / "pyproject.toml"]
    inputs += sorted((ROOT / "solutions").rglob("*.py"))
    inputs += [ROOT / name for name in CHECK_CODE]
    inputs += sorted((ROOT / "workbook" / "checks").glob("*.py"))
    for path in inputs:
        h.update(path.name.encode())
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    return h.hexdigest()


def _load() -> dict:
    try:
        return json.loads(_store().read_text())
    except (OSError, ValueError):
        return {}


def _entry(ex: manifest.Exercise, track_dir: Path | None) -> str:
    return f"{ex.id} in {Path(track_dir or settings().track_dir).resolve()}"


def recall(ex: manifest.Exercise, track_dir: Path | None = None) -> dict | None:
    """{'status': ..., 'at': seconds since the epoch} if this exact input was checked before."""
    found = _load().get(_entry(ex, track_dir))
    return found if found and found.get("key") == key(ex, track_dir) else None


def remember(ex: manifest.Exercise, status: str, track_dir: Path | None = None) -> None:
    if status == ERROR:
        return
    data = {name: v for name, v in _load().items()  # forget tracks that are gone (test copies)
            if Path(name.split(" in ", 1)[-1]).is_dir()}
    data[_entry(ex, track_dir)] = {"key": key(ex, track_dir), "status": status, "at": time.time()}
    path = _store()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{FILE}.{os.getpid()}")
        partial.write_text(json.dumps(data, indent=1))
        partial.replace(path)  # never a half-written file for the next reader
    except OSError:
        pass  # a cache that cannot be written only costs time
