"""`make bench`: the workbook's speed, measured in one run on this machine.

Embedded start and template seeding are measured in a throw-away data folder, so the learner's
server and templates are left alone. Prints a table; --quick skips the full test suite.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from workbook import db, manifest, templates
from workbook.checks import base
from workbook.manifest import ROOT

TARGETS = {"embedded start": 1.5, "template seeding": 10, "reset (median)": 0.5,
           "check 01": 3, "check 02": 3, "check 03": 3, "check 04": 60, "make test": 120}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cold_figures() -> dict[str, float]:
    """Start and seeding in a fresh data folder, in a child process so settings stay untouched."""
    code = ("import time, json;"
            "from workbook import db, templates;"
            "t = time.perf_counter(); db.ensure_ready(); first = time.perf_counter() - t;"
            "print(db.backend().stop()); db.forget();"
            "t = time.perf_counter(); db.ensure_ready(); start = time.perf_counter() - t;"
            "t = time.perf_counter(); templates.ensure_template('baseline'); seed = time.perf_counter() - t;"
            "db.backend().stop();"
            "print(json.dumps({'first start (initdb)': first, 'embedded start': start, 'template seeding': seed}))")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WORKBOOK_DB": "embedded", "WORKBOOK_DATA_DIR": tmp}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    figures: dict[str, float] = {}
    if db.backend().name == "embedded":
        figures.update(cold_figures())
    solutions = ROOT / "solutions"
    for ex in manifest.exercises():  # warm the templates first, so the figures below are steady
        templates.ensure_template(ex.start)
    figures["reset (median)"] = statistics.median(timed(lambda: templates.reset(manifest.get("03"))) for _ in range(5))
    for ex in manifest.exercises():
        runs = 1 if ex.number == "04" else 3
        figures[f"check {ex.number}"] = statistics.median(timed(lambda: base.check(ex.id, solutions)) for _ in range(runs))
    if not quick:
        env = {**os.environ, "WORKBOOK_TRACK": "solutions"}
        cmd = [sys.executable, "-m", "pytest", "-q", "tests", "--nbval-lax", "--nbval-current-env", "notebooks"]
        figures["make test"] = timed(lambda: subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True))
    print(f"{'measure':<24}{'seconds':>9}{'target':>9}  verdict")
    for name, value in figures.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("meets" if value <= target else f"misses by {value - target:.1f} s")
        shown = f"{target:>9.1f}" if target is not None else f"{'-':>9}"
        print(f"{name:<24}{value:>9.2f}{shown}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
