"""What `alembic revision --autogenerate` writes for exercise 6, run for real on a scratch copy.

The learner's own database and files are untouched: the track's versions/ (without exercise 6's
file, so the head is exercise 6's start) and its models.py are copied to a temporary folder, a
scratch copy of the start is migrated there, and Alembic's revision command writes its draft.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path

import sqlalchemy as sa

from workbook import db, manifest, migrate, templates
from workbook.config import settings


def autogenerate(name: str = "06", track_dir: Path | None = None, metadata: sa.MetaData | None = None,
                 message: str = "draft") -> str:
    """The revision file autogenerate writes for exercise `name` (its text).

    `metadata` replaces the track's models as target_metadata (an empty MetaData, for example).
    """
    from alembic import command

    ex = manifest.get(name)
    track_dir = Path(track_dir or settings().track_dir)
    with tempfile.TemporaryDirectory() as tmp, templates.scratch(ex.start) as database:
        track = Path(tmp) / "track"
        # This exercise's file and every later one's: autogenerate writes after the exercise's start.
        later = manifest.exercises()[manifest.exercises().index(ex):]
        skip = [Path(part.file).name for e in later if e.revision for part in e.parts()]
        shutil.copytree(track_dir / "versions", track / "versions",
                        ignore=shutil.ignore_patterns("__pycache__", *skip))
        if (track_dir / "models.py").exists():
            shutil.copy(track_dir / "models.py", track)
        cfg = migrate.alembic_config(track)
        if metadata is not None:
            cfg.attributes["target_metadata"] = metadata
        eng = db.engine(database)
        try:
            # Alembic prints "Generating ... done" itself; the caller shows the file instead.
            with eng.connect() as conn, warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # reflection warns about options it does not know
                cfg.attributes["connection"] = conn
                script = command.revision(cfg, message, autogenerate=True, rev_id=f"{ex.revision}_draft",
                                          version_path=str(track / "versions"))
                conn.rollback()
            return Path(script.path).read_text()
        finally:
            eng.dispose()
