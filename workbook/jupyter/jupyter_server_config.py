"""The workbook's Jupyter server settings; this folder is on JUPYTER_CONFIG_PATH for `make lab`
(workbook/serve.py), Binder (binder/start) and the hub's servers (deploy/jupyterhub).

The Terminal must have this environment's alembic, squawk and workbook first on PATH, as the
README and the notebooks promise. The server's PATH has them, but a server without a terminal of
its own (Binder, a hub, a background `make lab`) starts a login shell, and a login shell's profile
may set PATH anew (Debian's /etc/profile does). So the Terminal is still a login shell, then puts
the server's bin/ first and becomes the interactive shell the learner types in.
"""
import os
import shlex
import shutil
import sys

c = get_config()  # noqa: F821  (provided by Jupyter when it loads this file)

# Shells that understand the line below; any other (fish, say) gets bash, or sh.
POSIX = {"bash", "zsh", "sh", "dash", "ksh"}
shell = os.environ.get("SHELL") or ""
if os.path.basename(shell) not in POSIX:
    shell = shutil.which("bash") or "/bin/sh"
bin_dir = os.path.dirname(sys.executable)
# -c's next argument is its $0: the shell execs itself, interactive, with the PATH just set.
c.ServerApp.terminado_settings = {"shell_command": [
    shell, "-l", "-c", f'PATH={shlex.quote(bin_dir)}:"$PATH"; export PATH; exec "$0" -i', shell]}
