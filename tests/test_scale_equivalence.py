"""Verdicts do not move with the scale: every check replays at its proof scale (PROOF_SCALE, the
smallest at which each criterion is decided), and each exercise test's verdicts there (status and
failing criteria, for the solution, the stubs and every known-wrong answer) are the ones the
same tests get at the learning scale (WORKBOOK_PROOF_SCALE=learning)."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import proof_verdicts
from workbook import manifest
from workbook.manifest import ROOT

pytestmark = pytest.mark.full


def copies(path) -> int:
    """How many copies of its start the check of test_exNN_*.py's exercise replays on."""
    ex = manifest.get(path.name.split("_")[1][2:])
    return getattr(importlib.import_module(ex.check), "COPIES", 1)


# A check that makes no copy of the start (exercise 4's tests, 11's SQLite) replays nothing at
# any scale: its tests would only repeat themselves.
EXERCISE_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_ex*.py") if copies(p))


# A check at the learning scale keeps about one core busy (measured alone on 2 cores: 43 % of
# them over the whole run), so the tests run in two processes, as one learner (as progress runs
# two checks at once), each given whole files. More would add learning-scale copies, not speed, on 2.
PROCESSES = 2


def shares(tests) -> list[list[str]]:
    """`tests` dealt into PROCESSES groups of whole files, the heaviest file first to the lightest
    group; a file weighs its tests times its exercise's deadline (what progress orders by)."""
    files: dict[str, list[str]] = {}
    for t in tests:
        files.setdefault(t.split("::")[0], []).append(t)
    weight = {f: len(ts) * manifest.get(Path(f).name.split("_")[1][2:]).deadline for f, ts in files.items()}
    groups: list[list[str]] = [[] for _ in range(PROCESSES)]
    load = [0.0] * PROCESSES
    for f in sorted(files, key=lambda f: -weight[f]):
        i = load.index(min(load))
        groups[i] += files[f]
        load[i] += weight[f]
    return [g for g in groups if g]


def started(scale: str, log: Path, tests) -> list[subprocess.Popen]:
    """`tests` in processes of their own (shares) with WORKBOOK_PROOF_SCALE=scale, their verdicts
    appended to `log` (one write each), each process's output beside it."""
    env = {**os.environ, "WORKBOOK_PROOF_SCALE": scale, "WORKBOOK_VERDICT_LOG": str(log)}
    procs = []
    for i, share in enumerate(shares(tests)):
        with open(log.with_suffix(f".{i}.out"), "w") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *share],
                                          cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True))
    return procs


def verdicts_of(procs: list[subprocess.Popen], log: Path) -> dict[str, list[dict]]:
    try:
        for proc in procs:
            proc.wait(timeout=3 * 3600)
    finally:
        stop(procs)
    for i, proc in enumerate(procs):
        said = log.with_suffix(f".{i}.out").read_text()
        assert proc.returncode == 0, f"the exercise tests at {proc.args} failed:\n{said[-4000:]}"
    found: dict[str, list[dict]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        v = json.loads(line)
        found.setdefault(v.pop("test"), []).append(v)
    return found


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


def replayed(verdicts: list[dict]) -> bool:
    """Whether any of a test's checks replayed on a copy. A stub (not attempted) or a file that
    does not load or fit the history (the criterion `loads`) is judged before any copy is made."""
    return any(v["status"] != "not attempted" and "loads" not in v["failed"] for v in verdicts)


def logged_proof() -> dict[str, list[dict]]:
    """This run's verdicts at the proof scale, of the tests that replayed (make test's workers
    ran the exercise tests before this pytest: proof_verdicts); {} when it has none."""
    if os.environ.get("WORKBOOK_PROOF_SCALE"):
        return {}
    return {t: v for t, v in proof_verdicts().items() if t.split("::")[0] in EXERCISE_TESTS and replayed(v)}


# The learning-scale run, once the proof verdicts are known, started by the first test of the
# full layer (conftest) so that it runs beside the notebooks, the browser and the hub: most of
# the full layer's time is this run, and those wait on kernels and pages more than on the CPU.
EARLY: dict = {}


def start_early() -> None:
    if "tried" in EARLY:
        return
    EARLY["tried"] = True
    proof = logged_proof()
    if proof:
        log = Path(tempfile.mkdtemp(prefix="workbook-learning-")) / "learning.jsonl"
        EARLY.update(proof=proof, log=log, procs=started("learning", log, sorted(proof)))


def stop_early() -> None:
    stop(EARLY.get("procs", []))


def test_every_verdict_is_the_same_at_the_proof_and_the_learning_scale(tmp_path):
    # Only the tests that gave a verdict after a replay run again, at the learning scale: early
    # (start_early) when this run already has their proof-scale verdicts; otherwise both scales here.
    if "procs" in EARLY:
        proof, learning = EARLY["proof"], verdicts_of(EARLY["procs"], EARLY["log"])
        shutil.rmtree(EARLY["log"].parent, ignore_errors=True)
    else:
        proof = logged_proof()
        if not proof:
            proof = verdicts_of(started("", tmp_path / "proof.jsonl", EXERCISE_TESTS), tmp_path / "proof.jsonl")
            proof = {t: v for t, v in proof.items() if replayed(v)}
        learning = verdicts_of(started("learning", tmp_path / "learning.jsonl", sorted(proof)),
                               tmp_path / "learning.jsonl")
    assert learning, "no exercise test ran a check"
    moved = [f"{test}: {proof.get(test)} at the proof scale, {learning.get(test)} at the learning scale"
             for test in sorted(set(proof) | set(learning)) if proof.get(test) != learning.get(test)]
    assert not moved, "verdicts moved with the scale:\n" + "\n".join(moved)
