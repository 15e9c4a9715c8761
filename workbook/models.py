"""The application's tables as SQLAlchemy models, as exercises 1 to 5, 8 and 10 leave them.

They describe the schema at the end of exercise 5 (the index of exercise 1, the column of
exercise 2 and the constraints of exercise 5 included), with what exercise 8's two teams add
(finding.assignee, asset_owner) and exercise 10's index and check on finding.status. A check that compares the models with
the database at an earlier revision uses metadata_at(revision), which leaves out what later
exercises add.

From exercise 6 on, the learner edits models: each track has its own models.py (exercises/ and
solutions/) that takes finding and asset from here and defines lead itself. Alembic's
target_metadata is the active track's (track_metadata), so `alembic revision --autogenerate`
and `alembic check` compare the database with the models of the track being worked on.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Finding(Base):
    """A security finding raised against an asset."""

    __tablename__ = "finding"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(sa.Text)
    severity: Mapped[str] = mapped_column(sa.String(20))
    asset_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("asset.id", name="fk_finding_asset_id"))
    status: Mapped[str] = mapped_column(sa.String(20), server_default="open")
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True),
                                                    server_default=sa.func.now())

    # Exercise 8's team A: who works on the finding (nullable: most have nobody yet).
    assignee: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    __table_args__ = (sa.Index("ix_finding_severity", "severity"),
                      sa.Index("ix_finding_asset_id", "asset_id"),
                      sa.Index("ix_finding_assignee", "assignee"),
                      # Exercise 10: the open findings by age, and the statuses the application writes.
                      sa.Index("ix_finding_status_created_at", "status", "created_at"),
                      sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_finding_status"))


class Asset(Base):
    """A host or service that findings are raised against."""

    __tablename__ = "asset"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.Text)


class AssetOwner(Base):
    """Exercise 8's team B: who answers for an asset."""

    __tablename__ = "asset_owner"

    asset_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("asset.id", name="fk_asset_owner_asset_id", ondelete="CASCADE"),
        primary_key=True, autoincrement=False)
    owner: Mapped[str] = mapped_column(sa.Text)
    since: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class Lead(Base):
    """A sales lead."""

    __tablename__ = "lead"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    email: Mapped[str] = mapped_column(sa.String(320))
    company: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True),
                                                    server_default=sa.func.now())
    priority: Mapped[str] = mapped_column(sa.String(20), server_default="medium")

    __table_args__ = (sa.CheckConstraint("priority IN ('low', 'medium', 'high')", name="ck_lead_priority"),
                      sa.UniqueConstraint("email", name="uq_lead_email"))


metadata = Base.metadata

# Columns an exercise renames, by revision: (table, old name, new name), renamed by metadata_at().
RENAMED_BY = {"ex07_contract": ("finding", "title", "summary")}

# What each exercise adds to the models, by revision: left out of metadata_at() before it.
# Names a table, a constraint or an index; "table.column" a column, "... NOT NULL" a nullability.
ADDED_BY = {
    "ex05_constraints": {"asset", "fk_finding_asset_id", "ix_finding_asset_id", "ck_lead_priority",
                         "uq_lead_email", "lead.company NOT NULL"},
    "ex08_assignee": {"finding.assignee", "ix_finding_assignee"},
    "ex08_asset_owner": {"asset_owner"},
    "ex10_production": {"ix_finding_status_created_at", "ck_finding_status"},
}


def renamed(meta: sa.MetaData, revision: str | None, track_dir: Path | None = None) -> sa.MetaData:
    """`meta`, with the columns that exercises up to `revision` rename under their new names.

    With `track_dir`, only the renames its revision files really make: an untouched stub renames
    nothing, so a database that ran it still has the old name.
    """
    from workbook import manifest

    chain = manifest.revision_chain(revision) if revision and meta is not None else []
    if not chain or chain[-1].revision != revision:  # none to rename, or not a revision the workbook knows
        return meta
    applied = {part.revision for part in chain}
    if track_dir is not None:
        from workbook.checks.base import is_stub

        applied = {part.revision for part in chain
                   if (Path(track_dir) / part.file).exists() and not is_stub(Path(track_dir) / part.file)}
    renames = {(t, old): new for rev, (t, old, new) in RENAMED_BY.items() if rev in applied}
    if not renames:
        return meta
    out = sa.MetaData()
    for table in meta.sorted_tables:
        for column in table.to_metadata(out).columns:
            if (table.name, column.name) in renames:  # autogenerate compares by name
                column.name = column.key = renames[(table.name, column.name)]
    return out


def metadata_at(revision: str) -> sa.MetaData:
    """The models as they are at `revision`: without what exercises after it add."""
    return renamed(without_later(metadata, [revision]), revision)


def at(meta: sa.MetaData, heads, track_dir: Path | None = None) -> sa.MetaData:
    """`meta` as a database whose alembic_version holds `heads` should match: without what
    revisions it has not run add (exercise 8's teams add to the models every track takes), with
    the renames of those it has. A revision the workbook does not know leaves `meta` as it is."""
    from workbook import manifest

    known = {p.revision for p in manifest.revisions()} | {manifest.baseline()}
    if not heads or not set(heads) <= known:
        return meta
    order = [manifest.baseline()] + [p.revision for p in manifest.revisions()]
    return renamed(without_later(meta, heads), max(heads, key=order.index), track_dir)


def without_later(meta: sa.MetaData, heads) -> sa.MetaData:
    """`meta` without what ADDED_BY says revisions outside the ancestry of `heads` add."""
    from workbook import manifest

    applied = set().union(*(manifest.ancestors(h) for h in heads))
    later = set().union(*(names for rev, names in ADDED_BY.items() if rev not in applied))
    if not later:
        return meta
    out = sa.MetaData()
    for table in meta.sorted_tables:
        if table.name in later:
            continue
        copy = table.to_metadata(out)
        for column in [c for c in copy.columns if f"{table.name}.{c.name}" in later]:
            copy._columns.remove(column)  # Table has no public way to drop a column
        for con in list(copy.constraints):
            if con.name in later:
                copy.constraints.remove(con)
                for fk in getattr(con, "elements", []):
                    fk.parent.foreign_keys.discard(fk)
                    copy.foreign_keys.discard(fk)
        for index in list(copy.indexes):
            if index.name in later:
                copy.indexes.remove(index)
        for column in copy.columns:
            if f"{table.name}.{column.name} NOT NULL" in later:
                column.nullable = True
    return out


_loads = itertools.count()


def track_metadata(track_dir: Path) -> sa.MetaData:
    """The models of a track: its models.py's `metadata`, or these when it has none.

    Loaded afresh from the file each time, so an edit shows at once (a notebook's kernel, a check).
    """
    path = Path(track_dir) / "models.py"
    if not path.exists():
        return metadata
    name = f"workbook_track_models_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # SQLAlchemy resolves the annotations through it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module.metadata
