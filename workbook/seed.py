"""The baseline data, generated inside the server in one statement per table.

Realistic enough that the lessons hold: a million findings with a skewed severity mix (critical
about 1 %, so the planner wants an index for it; 'info' about 30 %; a few hundred rows already
spelled 'informational', as a real pipeline leaves them) and a hundred thousand leads.
setseed() makes every build of the template hold the same rows.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

FINDINGS = 1_000_000
LEADS = 100_000
ALREADY_INFORMATIONAL_EVERY = 2_500  # one row in 2,500: 400 rows at the default scale

FINDING_SQL = """
INSERT INTO finding (title, severity, asset_id, status, created_at)
SELECT
    (ARRAY['Outdated TLS version', 'Open S3 bucket', 'Default credentials', 'Missing patch',
           'Weak cipher suite', 'Exposed admin panel', 'Verbose error page',
           'Self-signed certificate'])[1 + (g % 8)] || ' on asset ' || (g % 5000),
    CASE
        WHEN g % :every = 0 THEN 'informational'
        WHEN r < 0.01 THEN 'critical'
        WHEN r < 0.06 THEN 'high'
        WHEN r < 0.26 THEN 'medium'
        WHEN r < 0.70 THEN 'low'
        ELSE 'info'
    END,
    1 + (g % 5000),
    CASE WHEN g % 7 = 0 THEN 'resolved' ELSE 'open' END,
    timestamptz '2025-01-01' + (g * interval '30 seconds')
FROM (SELECT g, random() AS r FROM generate_series(1, :n) AS g) AS s
"""

LEAD_SQL = """
INSERT INTO lead (name, email, company, created_at)
SELECT
    'Lead ' || g,
    'lead' || g || '@example.com',
    (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', NULL])[1 + (g % 6)],
    timestamptz '2025-01-01' + (g * interval '5 minutes')
FROM generate_series(1, :n) AS g
"""


def sizes(scale: float) -> dict[str, int]:
    return {"finding": max(1000, round(FINDINGS * scale)), "lead": max(100, round(LEADS * scale))}


def seed(conn: Connection, scale: float) -> dict[str, int]:
    """Fill the baseline tables; the caller commits and runs VACUUM ANALYZE."""
    n = sizes(scale)
    conn.execute(sa.text("SELECT setseed(0.42)"))
    conn.execute(sa.text(FINDING_SQL), {"n": n["finding"], "every": ALREADY_INFORMATIONAL_EVERY})
    conn.execute(sa.text(LEAD_SQL), {"n": n["lead"]})
    return n
