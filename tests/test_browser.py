"""JupyterLab in a real (headless) Chromium: what a learner does first, end to end.

The server is started with the command line `make lab` uses (workbook.serve.argv), on a free
port with a token given through Jupyter's own JUPYTER_PORT / JUPYTER_TOKEN. The notebook is run
in the browser but never saved: autosave is off in a throw-away settings folder.
Skipped when Chromium is missing on a learner's machine; a failure in CI (CI is set).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from workbook import serve
from workbook.manifest import ROOT

pytestmark = pytest.mark.full

CHROMIUM = Path(os.environ.get("WORKBOOK_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def _need_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        missing = f"Playwright is not installed ({exc})"
    else:
        missing = None if CHROMIUM.exists() else f"no Chromium at {CHROMIUM}"
    if missing and os.environ.get("CI"):
        pytest.fail(f"{missing}; CI must run the browser test (.ci/run installs Chromium).")
    if missing:
        pytest.skip(f"{missing}: the real-browser test needs Debian's chromium package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_server(tmp_path):
    """`make lab`'s server on a free port; stopped (kernels included) whatever happens."""
    with _lab(tmp_path) as server:
        yield server


@contextlib.contextmanager
def _lab(tmp_path, **env_extra: str):
    _need_browser()
    port, token = _free_port(), secrets.token_hex(16)
    for plugin, values in {"docmanager-extension/plugin": {"autosave": False},  # never save the notebook
                           "apputils-extension/notification": {"fetchNews": "false"},
                           # the Terminal's text also as DOM rows, which the test can read
                           "terminal-extension/plugin": {"screenReaderMode": True}}.items():
        path = tmp_path / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    extra = ["--no-browser", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
             f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    env = {**serve.environment(), "JUPYTER_PORT": str(port), "JUPYTER_TOKEN": token, **env_extra}
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(serve.argv(*extra), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield base, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def test_a_learner_runs_the_setup_notebook_and_opens_exercise_01(lab_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{serve.FIRST_NOTEBOOK}?token={token}")
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            expect(notebook.locator(".jp-Cell").first).to_be_visible()
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)

            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
            prompts = notebook.locator(".jp-CodeCell .jp-InputPrompt")
            n_cells = prompts.count()
            assert n_cells > 10
            # Done when every code cell shows an execution count and none is queued ([*]).
            page.wait_for_function(
                """() => {
                    const ps = [...document.querySelectorAll(
                        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
                    return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent));
                }""", timeout=180_000)
            page.screenshot(path=str(tmp_path / "setup_notebook.png"), full_page=False)

            errors = notebook.locator("[data-mime-type='application/vnd.jupyter.error'], "
                                      ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert errors.count() == 0, errors.all_inner_texts()
            outputs = " ".join(notebook.locator(".jp-OutputArea-output").all_inner_texts())
            assert re.search(r"Exercise 01_add_index \(.*\): (passed|not attempted)", outputs), outputs[-3000:]
            assert "✓" in outputs or "·" in outputs  # the checklist's marks
            # workbook/jupyter/labconfig turns off the news prompt that would cover the outputs.
            disabled = page.evaluate(
                "JSON.parse(document.getElementById('jupyter-config-data').textContent).disabledExtensions")
            assert "@jupyterlab/apputils-extension:announcements" in disabled, disabled
            assert page.get_by_text("official Jupyter news").count() == 0

            # The learner's file, from the file browser: notebooks/ is not the root, the repository is.
            if not page.locator("#filebrowser").is_visible():
                page.get_by_role("tab", name="File Browser").click()
            page.locator("#filebrowser .jp-BreadCrumbs-home").click()
            listing = page.locator(".jp-DirListing-content")
            listing.get_by_text("exercises", exact=True).dblclick()
            listing.get_by_text("versions", exact=True).dblclick()
            listing.get_by_text("01_add_index.py", exact=True).dblclick()
            editor = page.locator(".jp-FileEditor:not(.lm-mod-hidden)")
            expect(editor).to_contain_text("ex01_add_index")
            expect(page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")).to_contain_text("01_add_index.py")
            page.screenshot(path=str(tmp_path / "exercise_01.png"))
        finally:
            browser.close()


def test_the_terminal_has_the_venvs_commands(lab_server, tmp_path):
    """The Terminal is a login shell: Debian's /etc/profile sets PATH anew, and the venv must
    still come first (workbook/jupyter/jupyter_server_config.py), as the README and notebook 06 say."""
    from playwright.sync_api import expect, sync_playwright

    base, token = lab_server
    bin_dir = os.path.dirname(os.path.abspath(__import__("sys").executable))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab?token={token}")
            expect(page.locator("#jp-main-statusbar")).to_be_visible()
            page.get_by_role("menuitem", name="File", exact=True).click()
            page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(r"^New$")).click()
            page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(r"^Terminal$")).click()
            terminal = page.locator(".jp-Terminal:not(.lm-mod-hidden)")
            expect(terminal).to_be_visible()
            rows = terminal.locator(".xterm-accessibility-tree")
            expect(rows).to_contain_text(re.compile(r"[$#]"))  # the prompt: the shell is ready
            terminal.click()
            page.keyboard.type("which alembic workbook; echo which-done\n")
            lines = rows.get_by_role("listitem")
            expect(lines.filter(has_text=re.compile(r"^which-done\s*$"))).to_have_count(1)
            text = "\n".join(lines.all_inner_texts())
            page.screenshot(path=str(tmp_path / "terminal.png"))
        finally:
            browser.close()
    found = [line.strip() for line in text.splitlines() if line.strip().endswith(("/alembic", "/workbook"))]
    assert f"{bin_dir}/alembic" in found and f"{bin_dir}/workbook" in found, text


def test_run_it_after_an_edit_applies_the_edited_file(tmp_path):
    """The learner ran Run it with the stub, then edits the revision and runs Run it again: the
    second run must apply the edit. The server's track is a copy (the test writes the edit there,
    as the editor's Ctrl+S would), never exercises/."""
    from playwright.sync_api import expect, sync_playwright

    from conftest import make_track
    stub = (ROOT / "exercises" / "versions" / "01_add_index.py").read_text()
    track = make_track(tmp_path, **{"01_add_index": stub})
    ini = track / "alembic.ini"  # the copy's `alembic` must find the repository's migrations/
    ini.write_text(ini.read_text().replace("%(here)s/..", str(ROOT)))
    with _lab(tmp_path, WORKBOOK_TRACK=str(track)) as (base, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/notebooks/01_add_index.ipynb?token={token}")
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)

            def run(cell, expect_text: str) -> str:
                cell.locator(".jp-InputArea-editor").click()
                before = cell.locator(".jp-InputPrompt").inner_text()
                page.keyboard.press("Control+Enter")  # run in place
                expect(cell.locator(".jp-InputPrompt")).not_to_have_text(before)
                expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"), timeout=180_000)
                expect(cell.locator(".jp-OutputArea")).to_contain_text(expect_text)
                return cell.locator(".jp-OutputArea").inner_text()

            cells = notebook.locator(".jp-CodeCell")
            run(cells.filter(has_text='url = setup("01")'), "Exercise 01")
            run_it = cells.filter(has_text="!alembic upgrade ex01_add_index")
            first = run(run_it, "Running upgrade baseline -> ex01_add_index")  # the stub
            (track / "versions" / "01_add_index.py").write_text(
                (ROOT / "solutions" / "versions" / "01_add_index.py").read_text())
            second = run(run_it, "Running upgrade baseline -> ex01_add_index")
            indexes = run(cells.filter(has_text="SELECT c.relname AS index"), "finding_pkey")
            page.screenshot(path=str(tmp_path / "run_it_again.png"))
        finally:
            browser.close()
    assert "database reset to baseline" in first and "database reset to baseline" in second, second
    assert "ix_finding_severity" in indexes, indexes
