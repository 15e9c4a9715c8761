"""`make lab`: JupyterLab on the whole repository, opening notebooks/00_setup.ipynb.

One command line, used by the Makefile and by the browser test, so both start the same server.
Jupyter's own settings still apply: JUPYTER_PORT, JUPYTER_TOKEN, ~/.jupyter/*.
"""
from __future__ import annotations

import os
import sys

from workbook.manifest import ROOT

FIRST_NOTEBOOK = "notebooks/00_setup.ipynb"
# Jupyter settings of the workbook's own, put on JUPYTER_CONFIG_PATH: labconfig/page_config.json
# (no news prompt) and jupyter_server_config.py (the Terminal's PATH).
LAB_SETTINGS = ROOT / "workbook" / "jupyter"
# Jupyter's own hidden names, plus the package metadata `pip install -e .` leaves at the root:
# a learner browsing the repository has no use for it.
HIDDEN = ["__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*~", "*.egg-info"]


def argv(*extra: str) -> list[str]:
    """The jupyter lab command: the repository as root, so exercises/ is in the file browser."""
    args = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}",
            *(f"--ContentsManager.hide_globs={glob}" for glob in HIDDEN)]
    if os.geteuid() == 0:  # containers and workshop VMs often run as root; Jupyter refuses unless told
        args.append("--allow-root")
    return [*args, *extra, FIRST_NOTEBOOK]


def environment() -> dict[str, str]:
    """The environment for the server: this venv's alembic, squawk and workbook come first on PATH.

    workbook/jupyter/ is added to Jupyter's config path: its page_config.json turns off the
    "Jupyter news?" prompt, which covers the end of the check cells' output and asks to go online,
    and its jupyter_server_config.py keeps this bin/ first in the Terminal, after the login profile.
    """
    bin_dir = os.path.dirname(sys.executable)
    config = os.pathsep.join(filter(None, [str(LAB_SETTINGS), os.environ.get("JUPYTER_CONFIG_PATH")]))
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "JUPYTER_CONFIG_PATH": config}


def main() -> None:
    os.chdir(ROOT)
    args = argv(*sys.argv[1:])
    os.execve(args[0], args, environment())


if __name__ == "__main__":
    main()
