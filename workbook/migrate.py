"""Run Alembic from Python on a connection the caller owns (Alembic's shared-connection recipe)."""
from __future__ import annotations

import io
import os
import traceback
from pathlib import Path

from typing import TYPE_CHECKING

from workbook.config import settings
from workbook.manifest import ROOT

if TYPE_CHECKING:  # Alembic is imported when used: `workbook reset` never needs it
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection


def alembic_config(track_dir: Path | None = None, stdout=None) -> Config:
    """Alembic's Config for a track: the baseline, then the track's versions/ folder."""
    from alembic.config import Config

    track_dir = Path(track_dir or settings().track_dir)
    cfg = Config(str(ROOT / "alembic.ini"), stdout=stdout if stdout is not None else io.StringIO())
    cfg.set_main_option(
        "version_locations",
        os.pathsep.join([str(ROOT / "migrations" / "versions"), str(track_dir / "versions")]),
    )
    cfg.attributes["configure_logger"] = False
    return cfg


def ini_file(track_dir: Path | None = None) -> Path:
    """The alembic.ini the `alembic` command should use for a track (for ALEMBIC_CONFIG)."""
    track_dir = Path(track_dir or settings().track_dir)
    own = track_dir / "alembic.ini"
    return own if own.exists() else ROOT / "alembic.ini"


def script_directory(track_dir: Path | None = None) -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(track_dir))


def heads_before_later(script: ScriptDirectory, revision: str) -> list[str]:
    """The heads of a track's history without the revisions of the exercises after `revision`'s
    (manifest order): the history as it was when `revision` shipped. Exercise 10's revision follows
    exercise 8's merge, so the whole history's head is exercise 10's; exercises 8 and 9 judge the
    history up to the merge."""
    from workbook import manifest

    later = set(manifest.after(revision))
    ours = [s for s in script.walk_revisions() if s.revision not in later]
    parents = {p for s in ours for p in (s.down_revision if isinstance(s.down_revision, tuple) else (s.down_revision,))}
    return sorted(s.revision for s in ours if s.revision not in parents)


def run(connection: Connection, verb: str, target: str, track_dir: Path | None = None) -> str:
    """`alembic upgrade|downgrade TARGET` on this connection; returns what Alembic printed.

    The connection must not be inside a transaction: autocommit_block() needs Alembic to own
    the transaction it commits early, so whatever the caller did is committed first.
    """
    from alembic import command

    if connection.in_transaction():
        connection.commit()
    out = io.StringIO()
    cfg = alembic_config(track_dir, stdout=out)
    cfg.attributes["connection"] = connection
    getattr(command, verb)(cfg, target)
    if connection.in_transaction():
        connection.commit()
    return out.getvalue()


def offline_sql(start: str, end: str, track_dir: Path | None = None) -> str:
    """The SQL `alembic upgrade START:END --sql` prints, without touching any database."""
    return render_sql("upgrade", f"{start}:{end}", track_dir)


def render_sql(verb: str, span: str, track_dir: Path | None = None) -> str:
    """Offline mode: the SQL `alembic VERB SPAN --sql` would run, captured instead of printed."""
    from alembic import command

    out = io.StringIO()
    cfg = alembic_config(track_dir)
    cfg.output_buffer = out
    getattr(command, verb)(cfg, span, sql=True)
    return out.getvalue()


def where_in(exc: BaseException, path: Path) -> int | None:
    """The line of `path` where an exception passed through, if it did."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == path:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename and Path(frame.filename) == path:
            line = frame.lineno
    return line
