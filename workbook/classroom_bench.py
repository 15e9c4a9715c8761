"""`workbook classroom bench`: N simulated learners at once on one server, measured.

A throw-away class (its name starts with wbbench_) is created on the server DATABASE_URL names
(default: the PostgreSQL on 127.0.0.1:5432 as postgres); every learner then, at the same
moment, runs `workbook reset 01` and `workbook check` 01, 02 and 03 on the solutions track, each
in its own process with its own role, as thirty terminals would. Reported: the wall time for the
whole room, the slowest learner, server connections at peak (pg_stat_activity, sampled), and
disk (pg_database_size) of the shared templates, of one learner database and of the room at
its peak. The class is removed afterwards, whatever happens.

    python -m workbook.classroom_bench [--learners 10 30] [--scale 1]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import sqlalchemy as sa

from workbook.manifest import ROOT

SERVER = "postgresql://postgres@127.0.0.1:5432"
STEPS = [["reset", "01"], ["check", "01"], ["check", "02"], ["check", "03"]]


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbook", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env})


def learner(url: str, scale: str, times: list, failures: list) -> None:
    env = {"WORKBOOK_DB": "url", "DATABASE_URL": url, "WORKBOOK_TRACK": "solutions", "WORKBOOK_SCALE": scale}
    start = time.perf_counter()
    for step in STEPS:
        proc = run(step + (["--json"] if step[0] == "check" else []), env)
        if proc.returncode != 0:
            failures.append(f"{' '.join(step)}: {why(proc)}")
    times.append(time.perf_counter() - start)


def why(proc: subprocess.CompletedProcess) -> str:
    """The verdict and the criteria that did not pass, or the command's first words."""
    try:
        found = json.loads(proc.stdout)
    except ValueError:
        return (proc.stderr or proc.stdout).strip()[:300]
    missed = [f"{c['id']} ({c['message'][:120]})" for c in found.get("criteria", []) if c["outcome"] != "passed"]
    return f"{found.get('status')}: " + "; ".join(missed[:2])


def sampler(eng, stop: threading.Event, peak: dict, cls: str) -> None:
    with eng.connect() as c:
        while not stop.is_set():
            n = c.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")).scalar()
            size = c.execute(sa.text(
                "SELECT coalesce(sum(pg_database_size(oid)), 0) FROM pg_database WHERE datallowconn "
                "AND (starts_with(datname, :c) OR starts_with(datname, 'wb_' || :k))"),
                {"c": cls, "k": cls.replace("_", "")[:12]}).scalar()
            peak["connections"] = max(peak.get("connections", 0), n)
            peak["disk"] = max(peak.get("disk", 0), int(size))
            stop.wait(0.25)


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="workbook classroom bench")
    p.add_argument("--learners", type=int, nargs="+", default=[10, 30])
    p.add_argument("--scale", default="1")
    a = p.parse_args(argv)
    given = os.environ.get("DATABASE_URL") if os.environ.get("WORKBOOK_DB") == "url" else None
    admin = sa.engine.make_url(given or SERVER)
    cls = f"wbbench_{os.getpid()}"
    env = {"WORKBOOK_DB": "url", "WORKBOOK_TRACK": "solutions", "WORKBOOK_SCALE": a.scale,
           "DATABASE_URL": admin.set(database=cls).render_as_string(hide_password=False)}
    eng = sa.create_engine(admin.set(drivername="postgresql+psycopg", database="postgres"),
                           isolation_level="AUTOCOMMIT")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "learners.csv")
        t0 = time.perf_counter()
        proc = run(["classroom", "create", "--learners", str(max(a.learners)), "--csv", out], env)
        if proc.returncode != 0:
            raise SystemExit(proc.stdout + proc.stderr)
        print(f"class of {max(a.learners)} created in {time.perf_counter() - t0:.1f} s "
              f"(templates built, scale {a.scale}); {os.cpu_count()} cores", flush=True)
        try:
            with open(out) as f:
                urls = [row["DATABASE_URL"] for row in csv.DictReader(f)]
            with eng.connect() as c:
                sizes = dict(c.execute(sa.text(
                    "SELECT datname, pg_database_size(oid) FROM pg_database WHERE datistemplate "
                    "AND pg_get_userbyid(datdba) = :g OR datname = :l"), {"g": f"{cls}_templates",
                                                                           "l": f"{cls}_01"}).all())
            one = sizes.pop(f"{cls}_01")
            print(f"disk: shared templates {mb(sum(sizes.values()))} ({len(sizes)}), one learner "
                  f"database {mb(one)}", flush=True)
            for n in a.learners:
                times, failures, peak, stop = [], [], {}, threading.Event()
                watch = threading.Thread(target=sampler, args=(eng, stop, peak, cls))
                watch.start()
                start = time.perf_counter()
                threads = [threading.Thread(target=learner, args=(u, a.scale, times, failures)) for u in urls[:n]]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                total = time.perf_counter() - start
                stop.set()
                watch.join()
                print(f"N={n}: total {total:.1f} s, slowest learner {max(times):.1f} s, median "
                      f"{sorted(times)[len(times) // 2]:.1f} s, peak connections {peak['connections']}, "
                      f"peak disk of the class's databases {mb(peak['disk'])}, failures {len(failures)}",
                      flush=True)
                for f in sorted(set(failures))[:6]:
                    print("   ", f)
        finally:
            proc = run(["classroom", "remove", "--yes"], env)
            print(proc.stdout.strip() and "class removed" or proc.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
