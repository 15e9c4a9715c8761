"""Binder (repo2docker) files: no Docker engine here to build the image, so what can be tested is:
both scripts are executable, and binder/start brings the embedded database up, then runs its
arguments (the notebook server, on Binder)."""
import os
import subprocess
import sys

from workbook import serve
from workbook.manifest import ROOT


def test_binder_scripts_are_executable():
    for name in ("postBuild", "start"):
        path = ROOT / "binder" / name
        assert os.access(path, os.X_OK), f"{path} is not executable"
        assert path.read_text().startswith("#!/bin/bash\n")


def test_start_brings_the_database_up_then_runs_its_arguments(tmp_path):
    # On Binder `python` is the image's environment; here it is this venv's, which make test
    # runs without putting on PATH.
    env = {**os.environ, "WORKBOOK_DATA_DIR": str(tmp_path / "data"), "WORKBOOK_DB": "embedded",
           "PYTHONPATH": str(ROOT),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("DATABASE_URL", None)
    probe = ("import os; from workbook import db; b = db.backend(); print(os.environ['JUPYTER_CONFIG_PATH']); "
             "print('running' if b.status()['running'] else 'down')")
    try:
        proc = subprocess.run([str(ROOT / "binder" / "start"), sys.executable, "-c", probe], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == "running", proc.stdout + proc.stderr
        # Jupyter finds workbook/jupyter/labconfig (no news prompt over the notebooks).
        assert str(serve.LAB_SETTINGS) in proc.stdout.split(os.pathsep)[0], proc.stdout
    finally:
        subprocess.run([sys.executable, "-m", "workbook", "db", "down"], cwd=ROOT, env=env,
                       capture_output=True, timeout=60)
