"""`make bench`: the workbook's speed as a learner waits for it, measured on this machine.

Every figure times a whole `workbook ...` command in a fresh process (start-up and imports
included), as a learner in a terminal waits for it; medians of several runs. Beside each check
stands its floor: the time spent in the learner's own code (the reference solutions here:
their migrations for exercises 1-3, their tests on the correct chain for exercise 4), which no
checker can go under. Embedded start and the first template build use a throw-away data folder,
so the learner's server and templates are left alone.

    python -m workbook.bench [--quick] [--no-suite]
        --quick: one run each, and no test suite; --no-suite: the commands only
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbook import manifest
from workbook.manifest import ROOT

TARGETS = {"embedded start": 1, "reset": 0.3, "check 01": 2, "check 02": 2, "check 03": 3,
           "check 04": 6, "check 05": 2, "check 06": 2, "check 07": 10, "check 08": 3, "check 09": 3, "check 10": 10,
           "progress, every check run": 20,
           "progress, nothing changed": 1, "test suite, unit and db layers": 180}
# The suite's layers (tests/conftest.py), each timed as one pytest process: the db layer is what
# a contributor waits for after a change; the full layer adds the notebooks, the browser, the hub
# and the exercise tests again at the learning scale.
LAYERS = {"test suite, unit and db layers": "not full", "test suite, full layer": "full"}
WORKBOOK = [sys.executable, "-m", "workbook"]


def timed(cmd: list[str], env: dict | None = None, check: bool = False) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed:\n{proc.stdout}{proc.stderr}")
    return seconds


def median(cmd: list[str], runs: int, env: dict | None = None) -> float:
    return statistics.median(timed(cmd, env) for _ in range(runs))


def cold_figures() -> dict[str, float]:
    """`workbook db up` on a new data folder (initdb), again after a stop, and a first reset."""
    with tempfile.TemporaryDirectory(prefix="workbook-bench-") as tmp:
        env = {**os.environ, "WORKBOOK_DB": "embedded", "WORKBOOK_DATA_DIR": tmp}
        try:
            first = timed([*WORKBOOK, "db", "up"], env, check=True)
            timed([*WORKBOOK, "db", "down"], env, check=True)
            start = timed([*WORKBOOK, "db", "up"], env, check=True)
            seeding = timed([*WORKBOOK, "reset", "01"], env, check=True)
        finally:
            timed([*WORKBOOK, "db", "down"], env)
    return {"first start (initdb)": first, "embedded start": start,
            "first reset (seeds the data)": seeding}


def floors(runs: int) -> dict[str, float]:
    """Seconds spent in the learner's own code per check, measured in this process."""
    from workbook.checks import base, ex04_verify, pytest_run

    solutions = ROOT / "solutions"
    found = {}
    for ex in manifest.exercises():
        if ex.number == "04":
            with tempfile.TemporaryDirectory() as tmp:
                chain = ex04_verify.chain_copy(Path(tmp), "correct")
                found["check 04"] = pytest_run.run_tests(ex.path(solutions), chain).seconds
            continue
        samples = []
        for _ in range(runs):
            spent, current = [0.0], [None]

            def hear(text: str, learner: bool) -> None:
                now = time.perf_counter()
                if current[0] is not None:
                    spent[0] += now - current[0]
                current[0] = now if learner else None

            with base.listening(hear):
                base.check(ex.id, solutions)
            samples.append(spent[0])
        found[f"check {ex.number}"] = statistics.median(samples)
    return found


def load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    runs = 1 if quick else 3
    env = {**os.environ, "WORKBOOK_TRACK": "solutions"}
    print(f"machine: {machine()}\nload average (1/5/15 min) at start: {load()}", flush=True)
    figures: dict[str, float] = {}
    from workbook import db

    if db.backend().name == "embedded":
        figures.update(cold_figures())
    timed([*WORKBOOK, "progress", "--fresh"], env)  # builds every template, so later runs are steady
    figures["reset"] = median([*WORKBOOK, "reset", "03"], 1 if quick else 5, env)
    for ex in manifest.exercises():
        figures[f"check {ex.number}"] = median([*WORKBOOK, "check", ex.number], runs, env)
    figures["progress, every check run"] = median([*WORKBOOK, "progress", "--fresh"], 1, env)
    figures["progress, nothing changed"] = median([*WORKBOOK, "progress"], 1 if quick else 5, env)
    floor = floors(runs)
    for name, layers in {} if quick or "--no-suite" in argv else LAYERS.items():
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", layers, "tests", "--nbval-lax",
               "--nbval-current-env", "notebooks"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        figures[name] = time.perf_counter() - start
        print(f"{name}:", (proc.stdout.strip().splitlines() or ["no output"])[-1], flush=True)
    print(f"load average (1/5/15 min) at end: {load()}\n")
    print(f"{'measure':<30}{'seconds':>9}{'target':>8}{'floor':>8}  verdict")
    for name, value in figures.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("meets" if value <= target else f"misses by {value - target:.1f} s")
        shown = f"{target:>8.1f}" if target is not None else f"{'-':>8}"
        low = f"{floor[name]:>8.2f}" if name in floor else f"{'-':>8}"
        print(f"{name:<30}{value:>9.2f}{shown}{low}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
