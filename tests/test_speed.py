"""The verdict cache of `workbook progress`, and the phases a long check announces."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbook import manifest, progress, verdicts
from workbook.checks import base
from workbook.manifest import ROOT

from conftest import make_track


def committed(path: str) -> str:
    """A file as committed in git: the pristine stub, whatever the learner did to exercises/."""
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def progress_output(track, *extra, env=None) -> list[str]:
    env = {**(os.environ if env is None else env), "WORKBOOK_TRACK": str(track)}
    proc = subprocess.run([sys.executable, "-m", "workbook", "progress", *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "…" not in proc.stderr  # no progress line where stderr is not a terminal
    return proc.stdout.splitlines()


def test_progress_answers_from_the_cache_until_a_file_changes(tmp_path):
    # Exercises 1 and 2 solved, every later one the committed stub, so only quick checks replay.
    stubs = {part.file: committed(f"exercises/{part.file}") for ex in manifest.exercises()[2:] for part in ex.parts()}
    track = make_track(tmp_path, **stubs)
    n = len(manifest.exercises())
    first = progress_output(track)
    assert not any("unchanged" in line for line in first)
    assert f"2 of {n} exercises passed" in first[n]

    again = progress_output(track)
    assert all("(unchanged since its last check)" in line for line in again[:n])
    assert again[:n] == [line + "  (unchanged since its last check)" for line in first[:n]]
    assert f"{n} of these answered from the cache" in again[-1] and "--fresh" in again[-1]

    path = track / "versions" / "02_column_default.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    edited = progress_output(track)
    assert "unchanged" in edited[0] and "unchanged" not in edited[1]  # only 02 replays

    fresh = progress_output(track, "--fresh")
    assert not any("unchanged" in line for line in fresh)


def test_the_cache_key_follows_the_revision_graph_not_other_files_bodies(tmp_path):
    track = make_track(tmp_path)
    ex = manifest.get("01")
    before = verdicts.key(ex, track)
    other = track / "versions" / "03_data_migration.py"
    other.write_text(other.read_text().replace("def downgrade", "# a comment\ndef downgrade"))
    assert verdicts.key(ex, track) == before
    other.write_text(other.read_text().replace('revision = "ex03_data_migration"', 'revision = "x"'))
    assert verdicts.key(ex, track) != before
    (track / "versions" / "01_add_index.py").write_text("oops(")
    assert verdicts.key(ex, track) != before


def test_an_error_is_never_remembered(tmp_path):
    track = make_track(tmp_path)
    verdicts.remember(manifest.get("01"), base.ERROR, track)
    assert verdicts.recall(manifest.get("01"), track) is None
    verdicts.remember(manifest.get("01"), base.PASSED, track)
    assert verdicts.recall(manifest.get("01"), track)["status"] == base.PASSED


def test_a_check_announces_its_phases_and_the_learners_own_migrations(tmp_path):
    heard = []
    with base.listening(lambda text, learner: heard.append((text, learner))):
        assert base.check("02", ROOT / "solutions").passed
    assert ("running your upgrade to ex02_column_default", True) in heard
    assert ("running your downgrade to ex01_add_index", True) in heard
    assert heard[-1][1] is False  # the learner's code is not running any more


def test_progress_is_not_drawn_where_no_one_watches(monkeypatch):
    drawn = []
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # not a terminal
    with progress.shown("checking exercise 02"):
        base.phase("anything")
        assert base._listener is None
    line = progress.Line("checking exercise 02", drawn.append)
    with line, base.listening(line.hear):
        base.phase("upgrade")
        time.sleep(0.7)
    assert any("checking exercise 02: upgrade" in text for text in drawn) and drawn[-1] == ""


def test_a_forked_run_can_be_stopped_and_a_dead_zygote_is_not_a_verdict(tmp_path):
    import threading

    from workbook.checks import ex04_verify, pytest_run
    from workbook.checks.zygote import Zygote

    chain = ex04_verify.chain_copy(tmp_path, "chain")
    slow, quick = tmp_path / "test_slow.py", tmp_path / "test_quick.py"
    slow.write_text("import time\n\ndef test_waits():\n    time.sleep(60)\n")
    quick.write_text("def test_passes():\n    assert True\n")
    zygote = Zygote(ROOT)
    try:
        stop = threading.Event()
        threading.Timer(1.0, stop.set).start()
        start = time.monotonic()
        run = pytest_run.run_tests(slow, chain, stop=stop, zygote=zygote)
        assert run.code is None and time.monotonic() - start < 30
        assert pytest_run.run_tests(quick, chain, zygote=zygote).code == 0
        zygote.proc.kill()
        zygote.proc.wait()
        run = pytest_run.run_tests(quick, chain, zygote=zygote)  # runs in a process of its own
        assert run.code == 0 and [t[:2] for t in run.tests] == [("test_passes", "passed")]
    finally:
        zygote.close()


def stubs_track(tmp_path, **files):
    """A track of committed stubs (every check answers at once), some files replaced."""
    stubs = {part.file: committed(f"exercises/{part.file}") for ex in manifest.exercises() for part in ex.parts()}
    return make_track(tmp_path, **{**stubs, **files})


def test_a_notebook_check_and_a_terminal_progress_share_a_verdict(tmp_path):
    """setup() puts the database's URL in the kernel's DATABASE_URL (the embedded server's too, and
    spelt postgresql+psycopg:// on any server); a terminal has its own, or none: one server, one verdict."""
    from workbook import db
    from workbook.config import settings

    track = stubs_track(tmp_path)
    kernel = {**os.environ, "WORKBOOK_TRACK": str(track), "DATABASE_URL": db.url()}  # as setup() leaves it
    cell = "from workbook import notebook\ntry:\n    notebook.check('01')\nexcept notebook.CheckNotPassed:\n    pass\n"
    proc = subprocess.run([sys.executable, "-c", cell], cwd=ROOT, env=kernel, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "not attempted" in proc.stdout, proc.stdout + proc.stderr
    terminal = dict(os.environ)
    if settings().mode != "url":
        terminal.pop("DATABASE_URL", None)  # a terminal of the embedded server has none
    lines = progress_output(track, env=terminal)
    assert lines[0].endswith("(unchanged since its last check)"), lines[0]


def test_failed_exercises_show_their_first_reason_in_progress(tmp_path):
    wrong = committed("exercises/versions/01_add_index.py").replace(
        'down_revision = "baseline"', 'down_revision = "nothing"')
    assert wrong != committed("exercises/versions/01_add_index.py")
    track = stubs_track(tmp_path, **{"versions/01_add_index.py": wrong})
    first = progress_output(track)
    line = first[0]
    kept = verdicts.recall(manifest.get("01"), track)  # the reason is remembered with the verdict
    where, said = str(track / "versions" / "01_add_index.py"), kept["reason"].removesuffix("…")
    # A temporary folder deep enough (a worker's, under pytest-xdist) cuts the path itself short.
    assert kept["status"] == base.FAILED and (said.startswith(where) or where.startswith(said)), kept
    assert "✗ 01" in line and line.endswith(f"failed: {kept['reason']}"), line
    assert "Set down_revision" not in line  # one short sentence, not the whole message
    short = base.Report("01", "t", base.FAILED, [
        base.Result("a", "A", False, base.FAILED, "Advisory only. Not this one."),
        base.Result("b", "B", True, base.FAILED, "exercises/versions/01_add_index.py, line 3: took a ShareLock "
                    "on finding. Use CONCURRENTLY.")])
    assert verdicts.reason(short) == "exercises/versions/01_add_index.py, line 3: took a ShareLock on finding."
    again = progress_output(track)
    assert again[0] == line + "  (unchanged since its last check)"


def test_the_cache_key_follows_the_workbooks_code(tmp_path, monkeypatch):
    """A `git pull` that changes what the checks lean on (a helper module, migrations/env.py, the
    server layer, the manifest) replays them; the learner's track is the same."""
    track = make_track(tmp_path)
    ex = manifest.get("01")
    copy = tmp_path / "checkout"
    for top in verdicts.CODE_DIRS:
        shutil.copytree(ROOT / top, copy / top, ignore=shutil.ignore_patterns("__pycache__"))
    for name in verdicts.CODE_FILES:
        shutil.copy(ROOT / name, copy / name)
    monkeypatch.setattr(verdicts, "ROOT", copy)
    verdicts.code.cache_clear()
    try:
        before = verdicts.key(ex, track)
        assert verdicts.key(ex, track) == before
        for changed in ("workbook/locks.py", "workbook/app.py", "workbook/templates.py", "workbook/db/external.py",
                        "migrations/env.py", "workbook/checks/common.py", "workbook/exercises.toml"):
            path = copy / changed
            path.write_text(path.read_text() + "\n# changed by a pull\n")
            verdicts.code.cache_clear()
            after = verdicts.key(ex, track)
            assert after != before, changed
            before = after
    finally:
        verdicts.code.cache_clear()


def in_session(sid: int) -> list[str]:
    """The command lines of the processes still in session `sid` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # after pid and (comm): state, ppid, pgrp, session
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # it ended while we read
    return found


def test_ctrl_c_stops_progress_and_every_check_it_started(tmp_path):
    """A terminal's Ctrl-C reaches progress, its forkserver and the checks forked from it: all stop,
    nothing more is said about the stopped checks, and no process of theirs stays behind."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the processes from Linux's /proc")
    track = make_track(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "workbook", "progress", "--fresh"], cwd=ROOT,
                            env={**os.environ, "WORKBOOK_TRACK": str(track)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        waited = time.monotonic()  # until a check runs: the forkserver and a child it forked
        while sum("forkserver" in c for c in in_session(proc.pid)) < 2 and proc.poll() is None:
            assert time.monotonic() - waited < 120, "no check started within two minutes"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out + err
    assert "(exercise" not in err, err
    waited = time.monotonic()
    while in_session(proc.pid) and time.monotonic() - waited < 30:
        time.sleep(0.1)  # the forkserver leaves once progress has gone
    assert in_session(proc.pid) == []
