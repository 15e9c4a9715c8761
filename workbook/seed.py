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

# Every category is drawn at random (seeded), not from the row's id: real data has no period,
# and a check must not let a bug pass because the data repeats itself. The rows already spelled
# 'informational' are exactly n / 2,500 rows picked at random (`pick` ranks the rows randomly).
FINDING_SQL = """
INSERT INTO finding (title, severity, asset_id, status, created_at)
SELECT
    (ARRAY['Outdated TLS version', 'Open S3 bucket', 'Default credentials', 'Missing patch',
           'Weak cipher suite', 'Exposed admin panel', 'Verbose error page',
           'Self-signed certificate'])[1 + floor(t * 8)::int] || ' on asset ' || asset,
    CASE
        WHEN pick <= CAST(:n AS bigint) / CAST(:every AS bigint) THEN 'informational'
        WHEN r < 0.01 THEN 'critical'
        WHEN r < 0.06 THEN 'high'
        WHEN r < 0.26 THEN 'medium'
        WHEN r < 0.70 THEN 'low'
        ELSE 'info'
    END,
    asset,
    CASE WHEN s < 1.0 / 7 THEN 'resolved' ELSE 'open' END,
    timestamptz '2025-01-01' + (g * interval '30 seconds')
FROM (
    SELECT g, r, t, s, 1 + floor(a * 5000)::int AS asset, row_number() OVER (ORDER BY p) AS pick
    FROM (SELECT g, random() AS r, random() AS t, random() AS s, random() AS a, random() AS p
          FROM generate_series(1, :n) AS g) AS draws
) AS rows
ORDER BY g
"""

LEAD_SQL = """
INSERT INTO lead (name, email, company, created_at)
SELECT
    'Lead ' || g,
    'lead' || g || '@example.com',
    (ARRAY['Acme', 'Globex', 'Initech', 'Umbrella', 'Hooli', NULL])[1 + floor(random() * 6)::int],
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
