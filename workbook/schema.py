"""Snapshots of a database's schema and data, to compare before and after a migration.

The checks use them, and so can a learner's tests (exercise 4): take one before an upgrade and
one after the downgrade; an empty diff means the downgrade put everything back.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Schemas that belong to PostgreSQL, or to the checks' own probes, not to the application.
IGNORED = ("pg_catalog", "information_schema", "pg_toast", "wb_probe")

_WHERE = "n.nspname NOT IN :ignored AND n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname NOT LIKE 'pg\\_toast%'"

QUERIES = {
    "schema": f"SELECT n.nspname, '' FROM pg_namespace n WHERE {_WHERE}",
    "column": f"""
        SELECT n.nspname || '.' || c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {_WHERE}""",
    "index": f"""
        SELECT n.nspname || '.' || i.relname,
               pg_get_indexdef(x.indexrelid) || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE {_WHERE}""",
    "constraint": f"""
        SELECT n.nspname || '.' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_WHERE}""",
}


def snapshot(conn: Connection) -> dict[str, str]:
    """Every schema, column (type, nullability, default), index (and validity) and constraint."""
    shot: dict[str, str] = {}
    for kind, sql in QUERIES.items():
        rows = conn.execute(sa.text(sql).bindparams(sa.bindparam("ignored", expanding=True)),
                            {"ignored": list(IGNORED)})
        for name, definition in rows:
            shot[f"{kind} {name}"] = definition
    return shot


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Readable differences: '+ added', '- missing', '~ changed (before -> after)'."""
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            lines.append(f"+ {key}: {after[key]}".rstrip(": "))
        elif key not in after:
            lines.append(f"- {key}: {before[key]}".rstrip(": "))
        elif before[key] != after[key]:
            lines.append(f"~ {key}: {before[key]} -> {after[key]}")
    return lines


def columns_of(conn: Connection, table: str) -> list[str]:
    return list(conn.execute(sa.text(
        "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum"), {"t": table}).scalars())
