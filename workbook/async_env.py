"""Exercise 11, part B: the track's async/ Alembic environment, run the two ways a learner runs it.

On the command line (`alembic upgrade head`, a process of its own, where no event loop runs) and
from a notebook cell (alembic.command.upgrade called while an event loop runs in the thread, as
in a Jupyter kernel), each on an empty PostgreSQL database of its own, twice; and offline (--sql).
"""
from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path

HEAD = "ex11_async_note"
ASYNC_NAMES = {"async_engine_from_config", "create_async_engine", "AsyncEngine", "run_sync"}


def env_file(track_dir: Path) -> Path:
    return Path(track_dir) / "async" / "env.py"


def attempted(path: Path) -> bool:
    """True once env.py names an async engine (the stub is the synchronous template)."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return path.exists()  # a file Python cannot read was edited: the replay says why
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    return bool(names & ASYNC_NAMES)


def config(track_dir: Path, url: str):
    from alembic.config import Config

    env = Path(track_dir) / "async"
    cfg = Config(str(env / "alembic.ini"))
    cfg.set_main_option("script_location", str(env))
    cfg.set_main_option("version_locations", str(env / "versions"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolates %
    cfg.attributes["configure_logger"] = False
    return cfg


def replay(track_dir: Path) -> dict:
    """{"cli": [run, run], "loop": [run, run], "offline": run}; a run is {ok, error, version}."""
    from workbook import db, templates
    from workbook.checks.base import phase

    def empty(conn, name):
        conn.execute(f"CREATE DATABASE {templates.q(name)}")

    out: dict = {}
    with templates.created(empty) as cli_db, templates.created(empty) as loop_db:
        cli_url, loop_url = db.url(cli_db), db.url(loop_db)
        phase("running `alembic upgrade head` with your async env.py", learner=True)
        out["cli"] = [_after(_command_line(track_dir, cli_url, "upgrade", "head"), cli_url) for _ in range(2)]
        phase("running alembic.command.upgrade inside an event loop with your async env.py", learner=True)
        out["loop"] = [_after(_in_loop(track_dir, loop_url), loop_url) for _ in range(2)]
        phase("running `alembic upgrade head --sql` with your async env.py", learner=True)
        offline = _command_line(track_dir, cli_url, "upgrade", "head", "--sql")
        if offline["ok"] and "CREATE TABLE async_note" not in offline["output"]:
            offline = {"ok": False, "error": "`alembic upgrade head --sql` printed no CREATE TABLE async_note. "
                       "Expected the revision's SQL: keep run_migrations_offline() as the template has it."}
        out["offline"] = offline
        phase("reading what your env.py did")
    return out


def _command_line(track_dir: Path, url: str, *args: str) -> dict:
    ini = Path(track_dir) / "async" / "alembic.ini"
    proc = subprocess.run([sys.executable, "-m", "alembic", "-c", str(ini), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "WORKBOOK_ASYNC_URL": url})
    if proc.returncode != 0:
        said = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        return {"ok": False, "error": explain(said[-1] if said else f"exit code {proc.returncode}", "alembic " + " ".join(args))}
    return {"ok": True, "error": "", "output": proc.stdout}


def _in_loop(track_dir: Path, url: str) -> dict:
    """command.upgrade called from a coroutine: what a notebook cell does in the kernel's loop."""
    from alembic import command

    async def cell():
        command.upgrade(config(track_dir, url), "head")

    try:
        asyncio.run(cell())
        return {"ok": True, "error": ""}
    except BaseException as exc:  # the learner's env.py may raise anything, SystemExit included
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"ok": False, "error": explain(f"{type(exc).__name__}: {text}", "alembic.command.upgrade in a running loop")}


def _after(run: dict, url: str) -> dict:
    """The run, with the version the database is at afterwards."""
    import sqlalchemy as sa

    from workbook import db

    eng = db.engine(sa.engine.make_url(url).database)
    try:
        with eng.connect() as conn:
            has = conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
            run["version"] = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() if has else None
    finally:
        eng.dispose()
    return run


def explain(said: str, how: str) -> str:
    low = said.lower()
    if "running event loop" in low:
        return (f"{how} failed: {said}. That is asyncio.run() called while an event loop already runs "
                "(a notebook cell runs inside the kernel's). Detect it with asyncio.get_running_loop() "
                "and run asyncio.run(run_async_migrations()) on a worker thread instead.")
    if "greenlet_spawn" in low:
        return (f"{how} failed: {said}. The migrations ran on the async connection directly: hand them "
                "to it with `await connection.run_sync(do_run_migrations)`.")
    if "async driver" in low or "is not async" in low:
        return (f"{how} failed: {said}. An AsyncEngine needs an async driver: postgresql+psycopg "
                "(psycopg 3) is one; the URL the workbook gives already names it.")
    return f"{how} failed: {said}. Fix async/env.py and run the check again."


def judge(runs: dict, key: str, what: str, incorrect) -> str:
    first, second = runs[key]
    if not first["ok"]:
        raise incorrect(first["error"])
    if first["version"] != HEAD:
        raise incorrect(f"After {what} the fresh database is at {first['version']!r}; expected {HEAD!r} "
                        "(the head). Does env.py run the migrations inside a transaction that commits?")
    if not second["ok"]:
        raise incorrect(f"The second run failed: {second['error']}")
    if second["version"] != HEAD:
        raise incorrect(f"After a second {what} the database is at {second['version']!r}; expected it "
                        f"still at {HEAD!r}, nothing run again.")
    return f"A fresh database reached {HEAD}; the second run changed nothing."
