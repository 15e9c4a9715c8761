"""The manifest, the mirrored trees and docker-compose.yml agree with each other."""
import ast
import importlib
import json
from pathlib import Path

import jsonschema
import yaml

import pytest

from workbook import manifest
from workbook.checks.base import is_stub
from workbook.db import docker
from workbook.manifest import ROOT

# Vendored with its licence and source (tests/vendor/compose-spec/README.md): nothing outside the repository.
pytestmark = pytest.mark.unit

COMPOSE_SCHEMA = ROOT / "tests" / "vendor" / "compose-spec" / "compose-spec.json"


def assignments(path):
    tree = ast.parse(path.read_text())
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name) and isinstance(node.value, (ast.Constant, ast.Tuple))}


def test_exercise_and_solution_trees_mirror_each_other(stub_track):
    """File for file, except the given files (exercise 8's teams'): only in solutions/, the committed
    record of what shipped; `workbook reset 08` copies them into the learner's track."""
    files = lambda top: sorted(p.relative_to(top) for p in top.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    given = {Path(g.file) for ex in manifest.exercises() for g in ex.given_parts()}
    assert given and files(stub_track) == sorted(set(files(ROOT / "solutions")) - given)


def test_manifest_matches_the_files(stub_track):
    for ex in manifest.exercises():
        for track in (stub_track, ROOT / "solutions"):
            for part in ex.parts():
                path = track / part.file
                assert path.exists(), path
                if part.revision:
                    ids = assignments(path)
                    # A merge's stub follows the last revision, as every stub does: one head until
                    # the given files arrive; its down_revision is what the learner writes.
                    down = part.stub_down_revision if track == stub_track else part.down_revision
                    assert (ids["revision"], ids.get("down_revision")) == (part.revision, down), path
        for given in ex.given_parts():  # committed in solutions/ only; reset copies it to a learner
            ids = assignments(ROOT / "solutions" / given.file)
            assert (ids["revision"], ids["down_revision"]) == (given.revision, given.down_revision)
            assert not (stub_track / given.file).exists(), given.file
        assert (ROOT / ex.notebook).exists(), ex.notebook
        assert ex.hints, ex.id


def test_stubs_are_stubs_and_solutions_are_not(stub_track):
    for ex in manifest.exercises():
        for part in ex.parts() if ex.revision else ():
            assert is_stub(stub_track / part.file)
            # A merge's upgrade and downgrade are empty when it is right: its check tells the stub.
            assert not is_stub(ROOT / "solutions" / part.file) or part.merges
        if ex.merges:
            attempted = importlib.import_module(ex.check).attempted
            assert not attempted(stub_track / ex.file) and attempted(ROOT / "solutions" / ex.file)


def test_compose_file_is_valid_and_matches_the_workbook():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(doc, json.loads(COMPOSE_SCHEMA.read_text()))
    pg = doc["services"]["postgres"]
    assert pg["image"].split(":")[1].split(".")[0] == "18"
    assert any(v.endswith(":/var/lib/postgresql") for v in pg["volumes"])  # not .../data on 18
    assert pg["ports"] == [f"{docker.HOST}:{docker.PORT}:5432"]  # loopback only
    env = pg["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (docker.USER, docker.PASSWORD, docker.DATABASE)
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])


def test_requirements_are_all_pinned():
    lines = [l.split(";")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines and all("==" in l for l in lines), lines


def test_a_notebook_saved_by_jupyterlab_strips_to_the_committed_file():
    """`make update` stages notebooks through workbook/strip.py, then pulls: a notebook the learner
    only ran must strip to exactly the committed bytes, or git refuses the pull. JupyterLab saves
    with sorted keys, outputs, counts and the name of the kernel it ran."""
    import subprocess
    import sys

    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nb.metadata.kernelspec.display_name = "Python 3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
                cell.execution_count = 7
        stripped = subprocess.run([sys.executable, str(ROOT / "workbook" / "strip.py")], input=nbformat.writes(nb),
                                  capture_output=True, text=True, check=True).stdout
        assert stripped == path.read_text(), f"{path.name} is not committed as workbook/strip.py writes it"
