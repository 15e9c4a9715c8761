"""PostgreSQL 18 in Docker Compose (docker-compose.yml at the top of the repository).

The URL here must match the credentials and port in docker-compose.yml; a test checks they do.
The password is a local development password, published on 127.0.0.1 only.
"""
from __future__ import annotations

import shutil
import subprocess

from psycopg.conninfo import make_conninfo

from workbook.errors import WorkbookError
from workbook.manifest import ROOT

USER = PASSWORD = DATABASE = "workbook"
HOST, PORT = "127.0.0.1", 55432


class Docker:
    name = "docker"
    url_source = "docker-compose.yml"
    learner_database = DATABASE
    maintenance_database = "postgres"
    owns_server = True  # the Compose volume is the workbook's; it creates "workbook" itself
    start_hint = "Start it with `workbook db up` (docker compose up -d --wait)."

    def describe(self) -> str:
        return f"the Docker Compose PostgreSQL on {HOST}:{PORT}"

    def server_url(self, database: str):
        from sqlalchemy.engine import URL

        return URL.create("postgresql+psycopg", username=USER, password=PASSWORD, host=HOST,
                          port=PORT, database=database)

    def conninfo(self, database: str) -> str:
        return make_conninfo(host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=database)

    def _compose(self, *args: str) -> str:
        if shutil.which("docker") is None:
            raise WorkbookError(
                "WORKBOOK_DB=docker, but the docker command is not installed. Install Docker, "
                "or unset WORKBOOK_DB to use the embedded server."
            )
        proc = subprocess.run(["docker", "compose", *args], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            low = err.lower()
            if "unknown command" in low or "unknown shorthand flag" in low or "not a docker command" in low:
                raise WorkbookError(
                    "Docker is installed but without the Compose plugin (`docker compose`). Install "
                    "Docker Compose v2, or unset WORKBOOK_DB to use the embedded server."
                )
            if "cannot connect to the docker daemon" in low or "docker.sock" in low:
                raise WorkbookError(
                    "Docker is installed but its engine is not running. Start Docker Desktop "
                    "(or `sudo systemctl start docker`), or unset WORKBOOK_DB to use the embedded server."
                )
            raise WorkbookError(f"`docker compose {' '.join(args)}` failed: {err[-400:]}")
        return proc.stdout

    def start(self) -> None:
        pass  # `workbook db up` starts it; checks only connect, and explain when it is down

    def up(self) -> str:
        self._compose("up", "-d", "--wait")
        return f"Started {self.describe()}."

    def stop(self) -> str:
        self._compose("down")
        return f"Stopped {self.describe()} (the data volume is kept)."

    def status(self) -> dict:
        return {"mode": self.name, "server": self.describe(), "database": self.learner_database}
