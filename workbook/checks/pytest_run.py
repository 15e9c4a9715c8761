"""Running the learner's test file with pytest against one revision chain, and reading the result.

A run is a pytest process of its own, or a child forked from a zygote (workbook.checks.zygote)
that has pytest and the database libraries imported already. Either way it can be stopped: after
TIMEOUT seconds, or when another thread sets `stop` (exercise 4 stops the mutants' runs as soon
as the tests fail on the correct chain).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from workbook.checks.base import relative
from workbook.checks.zygote import Gone, Zygote
from workbook.manifest import ROOT

TIMEOUT = 180       # seconds before a run is stopped; a hung migration must not hang the check


@dataclass
class Run:
    """One pytest run of the learner's file against one chain."""
    code: int | None                      # pytest's exit code; None when it was stopped
    seconds: float
    tests: list[tuple[str, str, str]] = field(default_factory=list)  # (name, outcome, message)
    problem: str = ""                     # why the file could not be run, for the learner

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        return [t for t in self.tests if t[1] in ("failed", "error")]

    @property
    def caught(self) -> bool:
        return self.code not in (0, None) and not self.problem


def run_tests(test_file: Path, chain: Path, stop_at_first_failure: bool = False,
              stop: threading.Event | None = None, zygote: Zygote | None = None) -> Run:
    """pytest on `test_file` against `chain`, forked from `zygote` if given, else a new process;
    `stop` set by another thread ends the run early."""
    xml = chain / "junit.xml"
    args = ["-q", "-p", "no:cacheprovider",
            # Only pytest-alembic: autoloading every installed plugin (nbval, jupyter) costs
            # seconds per run, and the check runs the file six times.
            "-p", "pytest_alembic.plugin",
            "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
            f"--junitxml={xml}", "-o", "junit_family=xunit2", str(test_file)]
    if stop_at_first_failure:
        args.append("-x")
    env = {**os.environ, "WORKBOOK_CHAIN": str(chain), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    start = time.monotonic()
    pid = zygote.start(args, env, str(chain / "pytest.out")) if zygote else None
    try:
        code = _wait_forked(zygote, pid, start, stop) if pid is not None else None
        output = (chain / "pytest.out").read_text(errors="replace") if pid is not None else None
    except Gone:
        pid = None
    if pid is None:
        with subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
            output = _wait(proc, start, stop)
        code = proc.returncode
    if code is None or output is None:
        return Run(None, time.monotonic() - start,
                   problem=f"Your tests did not finish within {TIMEOUT} s, so they were stopped. "
                           "Look for a test that waits forever (a lock, a loop) and run them with pytest.")
    run = Run(code, time.monotonic() - start, tests=_testcases(xml))
    if code in (2, 3, 4) or (code != 5 and not run.tests):
        run.problem = _collection_problem(test_file, xml, output)
    return run


def _stopped(start: float, stop: threading.Event | None) -> bool:
    return time.monotonic() - start > TIMEOUT or (stop is not None and stop.is_set())


def _wait(proc: subprocess.Popen, start: float, stop: threading.Event | None) -> str | None:
    """The run's output, or None when it was stopped (TIMEOUT passed, or `stop` was set)."""
    while True:
        try:
            return proc.communicate(timeout=0.2)[0]
        except subprocess.TimeoutExpired:
            if _stopped(start, stop):
                proc.kill()
                proc.communicate()
                return None


def _wait_forked(zygote: Zygote, pid: int, start: float, stop: threading.Event | None) -> int | None:
    """The forked run's exit code, or None when it was stopped."""
    while True:
        code = zygote.wait(pid, 0.2)
        if code is not None:
            return code
        if _stopped(start, stop):
            zygote.kill(pid)
            zygote.wait(pid, 5)
            return None


def _testcases(xml: Path) -> list[tuple[str, str, str]]:
    if not xml.exists():
        return []
    found = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = _cause(node.get("message") or "", node.text or "")
                break
        found.append((case.get("name", ""), outcome, message))
    return found


def _cause(message: str, text: str) -> str:
    """The one line that says why: pytest's 'E   ' lines hold the exception."""
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    picked = next((ln for ln in lines if re.match(r"[\w.]*(Error|Exception|Failure)\b", ln)), None)
    picked = picked or (lines[0] if lines else message.strip().splitlines()[0] if message.strip() else "")
    picked = re.sub(r"^[\w.]+\.(\w+:)", r"\1", picked)          # AlembicTestFailure, not its module path
    picked = re.sub(r" \((/|[A-Z]:\\)[^)]*\)$", "", picked)     # ImportError's "(/path/to/module.py)"
    return picked if len(picked) <= 300 else picked[:297] + "..."


def _collection_problem(test_file: Path, xml: Path, output: str) -> str:
    name = relative(test_file)
    text = ""
    if xml.exists():
        text = "\n".join((n.text or "") for n in ET.parse(xml).getroot().iter("error"))
    text = text or output
    cause = _cause("", text) or (output.strip().splitlines() or ["no output"])[-1]
    line = next((m.group(1) for m in re.finditer(re.escape(test_file.name) + r":(\d+)", text)), None)
    where = f"{name}, line {line}" if line else name
    return (f"pytest could not load {where}: {cause}. Fix it so `pytest {name}` collects your "
            "tests, then run the check again.")
