"""The application's tables as SQLAlchemy models: Alembic's target_metadata.

They describe the schema at the head of the exercise chain (the index of exercise 1 and the
column of exercise 2 included), so `alembic check` and autogenerate compare against the
finished project.
"""
from __future__ import annotations

import datetime as dt

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
    asset_id: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(20), server_default="open")
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True),
                                                    server_default=sa.func.now())

    __table_args__ = (sa.Index("ix_finding_severity", "severity"),)


class Lead(Base):
    """A sales lead."""

    __tablename__ = "lead"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    email: Mapped[str] = mapped_column(sa.String(320))
    company: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True),
                                                    server_default=sa.func.now())
    priority: Mapped[str] = mapped_column(sa.String(20), server_default="medium")


metadata = Base.metadata
