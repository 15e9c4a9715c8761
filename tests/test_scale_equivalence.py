"""Verdicts do not move with the scale: every check replays at its proof scale (PROOF_SCALE, the
smallest at which each criterion is decided), and each exercise test's verdicts there (status and
failing criteria, for the solution, the stubs and every known-wrong answer) are the ones the
same tests get at the learning scale (WORKBOOK_PROOF_SCALE=learning)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import importlib

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


def verdicts_at(scale: str, log, tests) -> dict[str, list[dict]]:
    """Run `tests` in a process of their own with WORKBOOK_PROOF_SCALE=scale."""
    env = {**os.environ, "WORKBOOK_PROOF_SCALE": scale, "WORKBOOK_VERDICT_LOG": str(log)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", *tests],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3 * 3600)
    assert proc.returncode == 0, f"the exercise tests at scale {scale!r} failed:\n{proc.stdout[-4000:]}"
    found: dict[str, list[dict]] = {}
    for line in log.read_text().splitlines():
        v = json.loads(line)
        found.setdefault(v.pop("test"), []).append(v)
    return found


def test_every_verdict_is_the_same_at_the_proof_and_the_learning_scale(tmp_path):
    # This run's own verdicts at the proof scale when it ran the exercise tests (make test does,
    # in workers before this pytest: proof_verdicts): then only the tests that gave one run
    # again, at the learning scale. Otherwise both scales run here.
    proof = {t: v for t, v in proof_verdicts().items() if t.split("::")[0] in EXERCISE_TESTS}
    if os.environ.get("WORKBOOK_PROOF_SCALE") or not proof:
        proof = verdicts_at("", tmp_path / "proof.jsonl", EXERCISE_TESTS)
    learning = verdicts_at("learning", tmp_path / "learning.jsonl", sorted(proof))
    assert learning, "no exercise test ran a check"
    moved = [f"{test}: {proof.get(test)} at the proof scale, {learning.get(test)} at the learning scale"
             for test in sorted(set(proof) | set(learning)) if proof.get(test) != learning.get(test)]
    assert not moved, "verdicts moved with the scale:\n" + "\n".join(moved)
