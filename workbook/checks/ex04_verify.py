"""Exercise 4: the learner's migration tests pass on the correct chain and fail on planted bugs.

The check runs the learner's test file with pytest (workbook.checks.pytest_run) once against a
copy of the reference chain and once against each mutant: a copy with one bug planted. The chain is
the one exercise 4 finds (the revisions of exercises 1 to 3, and the models as they leave them):
what the learner's tests are about, and a run that does not grow with every later exercise. Copies
live in a temporary folder; the learner's files are only read. WORKBOOK_CHAIN tells workbook.testing's
fixtures which copy is under test. The scratch database base.check() clones is not used here:
each test gets its own empty database from the fixtures.
"""
from __future__ import annotations

import ast
import shutil
import tempfile
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workbook import manifest
from workbook.checks.base import Evidence, Incorrect, Replay, criterion, phase, relative
from workbook.checks.pytest_run import Run, run_tests
from workbook.checks.zygote import Zygote
from workbook.manifest import ROOT

# Proof scale: any. The learner's tests run on empty databases of their own (workbook.testing's
# fixtures); the copy base.check() makes is not used, so it is the smallest chain the others share.
PROOF_SCALE = 0.1
COPIES = 0  # no copy of the start: each of the learner's tests gets an empty database
LIMIT = 60          # seconds the tests may take on the correct chain (criterion 3)


def under_test() -> str:
    """The last revision before exercise 4 in the manifest: the head of the chain it tests."""
    before = manifest.exercises()[:manifest.exercises().index(manifest.get("04"))]
    return [ex.head for ex in before if ex.revision][-1]


# ---- planted bugs -----------------------------------------------------------------------------

def _revision(rev: str, down: str, upgrade: str, downgrade: str) -> str:
    body = lambda code: textwrap.indent(textwrap.dedent(code).strip(), "    ")  # noqa: E731
    return ("import sqlalchemy as sa\nfrom alembic import op\n\n"
            f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{body(upgrade)}\n\n\ndef downgrade():\n{body(downgrade)}\n")


def _replace(number: str, upgrade: str, downgrade: str) -> Callable[[Path], None]:
    """Replace exercise `number`'s revision in a chain copy, same ids, other bodies."""
    def plant(chain: Path) -> None:
        ex = manifest.get(number)
        ex.path(chain).write_text(_revision(ex.revision, ex.down_revision, upgrade, downgrade))
    return plant


def _second_head(chain: Path) -> None:
    parent = manifest.get("03").down_revision
    (chain / "versions" / "03_hotfix.py").write_text(_revision(
        "hotfix_finding_comment", parent,
        "op.execute(\"COMMENT ON TABLE finding IS 'hotfix'\")",
        "op.execute('COMMENT ON TABLE finding IS NULL')"))


def _model_drift(chain: Path) -> None:
    (chain / "models.py").write_text(_MODELS + textwrap.dedent("""
        metadata.tables["finding"].append_column(sa.Column("risk_score", sa.Integer, nullable=True))
        """))


@dataclass(frozen=True)
class Mutant:
    name: str
    plant: Callable[[Path], None]
    advice: str  # how a test would catch it, shown when it is missed


MUTANTS = [
    Mutant("exercise 1's downgrade leaves ix_finding_severity behind",
           _replace("01", """
               with op.get_context().autocommit_block():
                   op.create_index('ix_finding_severity', 'finding', ['severity'], postgresql_concurrently=True)
               """, "pass"),
           "compare a schema snapshot taken before each upgrade with one taken after its downgrade"),
    Mutant("exercise 2's downgrade forgets to drop lead.priority",
           _replace("02", """
               op.add_column('lead', sa.Column('priority', sa.String(20), nullable=False, server_default='medium'))
               """, "pass"),
           "compare a schema snapshot taken before each upgrade with one taken after its downgrade"),
    Mutant("a second head (another revision with the same parent as exercise 3)",
           _second_head,
           "import pytest-alembic's test_single_head_revision"),
    Mutant("a model that drifts from the DDL (finding.risk_score in the models, in no migration)",
           _model_drift,
           "import pytest-alembic's test_model_definitions_match_ddl"),
    Mutant("exercise 3's lossy downgrade (the reverse UPDATE also turns findings that already "
           "said 'informational' into 'info')",
           _replace("03", "op.execute(\"UPDATE finding SET severity = 'informational' WHERE severity = 'info'\")",
                    "op.execute(\"UPDATE finding SET severity = 'info' WHERE severity = 'informational'\")"),
           "insert 'info' and already-'informational' findings before exercise 3, then upgrade, "
           "downgrade and compare the rows"),
]


# ---- running the learner's tests: workbook.checks.pytest_run ------------------------------

def attempted(path: Path) -> bool:
    """True when the file defines or imports at least one test (a name starting with test)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.ImportFrom):
            names += [a.asname or a.name for a in node.names]
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return any(n.lower().startswith("test") for n in names)


# The models as exercises 1 to 3 leave them (a copy: a mutant adds to it).
_MODELS = textwrap.dedent("""\
    import sqlalchemy as sa
    from workbook.checks.ex04_verify import under_test
    from workbook.models import metadata_at

    metadata = sa.MetaData()
    for table in metadata_at(under_test()).sorted_tables:
        table.to_metadata(metadata)
    """)


def chain_copy(tmp: Path, name: str, plant: Callable[[Path], None] | None = None) -> Path:
    """The reference revisions up to under_test() and the models at that point, in tmp/name."""
    chain = tmp / name
    (chain / "versions").mkdir(parents=True)
    for part in manifest.revision_chain(under_test()):
        shutil.copy(part.path(ROOT / "solutions"), chain / part.file)
    (chain / "models.py").write_text(_MODELS)
    if plant:
        plant(chain)
    return chain


def gather(r: Replay) -> Evidence:
    """The correct chain and the mutants run at once, all six, forked from one zygote;
    the mutants' runs count only if the tests pass on the correct chain, and are stopped as
    soon as they do not."""
    ev = r.evidence
    ev.test_file = r.path
    zygote = Zygote(ROOT)  # imports pytest and the rest while the chains are copied
    try:
        with tempfile.TemporaryDirectory(prefix="workbook-ex04-") as tmp:
            ev.update(_run_all(r, Path(tmp), zygote))
    finally:
        zygote.close()
    return ev


def _run_all(r: Replay, tmp: Path, zygote: Zygote) -> dict:
    correct_chain = chain_copy(tmp, "correct")
    chains = [chain_copy(tmp, f"mutant{i}", m.plant) for i, m in enumerate(MUTANTS)]
    stop, finished = threading.Event(), [0]

    def run(chain: Path, first_failure: bool) -> Run:
        result = run_tests(r.path, chain, first_failure, stop, zygote)
        finished[0] += 1
        phase(f"your tests ran on {finished[0]} of {len(chains) + 1} chains", learner=True)
        return result

    phase(f"running your tests on the correct chain and {len(chains)} with planted bugs", learner=True)
    # All at once: the runs differ in length (a mutant's run stops at its first failing test),
    # and three at a time left the last long run alone on the machine at the end.
    with ThreadPoolExecutor(max_workers=len(chains) + 1) as pool:
        correct = pool.submit(run, correct_chain, False)
        mutants = [pool.submit(run, chain, True) for chain in chains]
        found = {"correct": correct.result()}
        if found["correct"].code != 0:
            stop.set()
            for future in mutants:
                future.cancel()
            return found
        found["mutants"] = dict(zip((m.name for m in MUTANTS), (f.result() for f in mutants)))
    if found["correct"].seconds >= LIMIT - 5:
        # Timed beside the other runs and without pytest's start-up, it may be off either way
        # near the limit: time it alone, in a process of its own, as the criterion means it.
        phase("timing your tests on the correct chain alone", learner=True)
        found["correct"] = run_tests(r.path, correct_chain)
    return found


def built_in_names() -> set[str]:
    """The tests pytest-alembic's tests and tests.experimental export, read from their
    __init__.py: importing them costs this process half a second (the ORM), after the runs."""
    import importlib.util

    package = Path(importlib.util.find_spec("pytest_alembic").origin).parent  # not imported
    names = set()
    for init in (package / "tests" / "__init__.py", package / "tests" / "experimental" / "__init__.py"):
        for node in ast.parse(init.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                names |= {a.asname or a.name for a in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
    return {n for n in names if n.startswith("test_")}


# ---- criteria ---------------------------------------------------------------------------------

def _require_run(ev: Evidence, first: bool = False) -> Run:
    """The run on the correct chain, or why there is none (said in full only by the first criterion)."""
    run = ev.correct
    if run.problem or run.code == 5:
        if not first:
            raise Incorrect("Not checked: your tests could not run (see the first criterion).")
        raise Incorrect(run.problem or "pytest found no tests in the file; expected test functions "
                        "(names starting with test_) or pytest-alembic's built-in tests imported into it.")
    return run


def _tests(n: int) -> str:
    return f"{n} test" + ("" if n == 1 else "s")


@criterion("passes_on_correct", "Your tests pass against the correct revision chain.")
def passes_on_correct(ev: Evidence) -> str:
    """Assert that the tests accept correct migrations: a test that fails on them blocks every deploy."""
    run = _require_run(ev, first=True)
    if run.code != 0:
        if not run.failures:
            raise Incorrect(f"pytest stopped with exit code {run.code} and reported no test; run "
                            f"`pytest {relative(ev.test_file)}` to see why.")
        listed = "; ".join(f"{name}: {msg}" if msg else name for name, _, msg in run.failures[:3])
        raise Incorrect(f"{len(run.failures)} of {_tests(len(run.tests))} fail against the correct chain "
                        f"(the reference solutions): {listed}. Expected every test to pass on it; "
                        "fix the test, not the migrations.")
    verb = "passes" if len(run.tests) == 1 else "pass"
    return f"Your {_tests(len(run.tests))} {verb} against the correct chain."


@criterion("catches_planted_bugs",
           f"Your tests fail against each of {len(MUTANTS)} copies of the chain with a planted bug.")
def catches_planted_bugs(ev: Evidence) -> str:
    """Assert that the tests would stop each broken migration before it ships.

    A test suite that passes on a broken chain gives false comfort: these are the bugs that
    reach production because the upgrade works and only the rollback, or a second head, or a
    drifted model, is wrong.
    """
    if ev.get("mutants") is None:
        raise Incorrect("Not checked: your tests must pass against the correct chain first, "
                        "or their failing would prove nothing.")
    caught = [name for name, run in ev.mutants.items() if run.caught]
    missed = [m for m in MUTANTS if not ev.mutants[m.name].caught]
    head = f"Your tests caught {len(caught)} of {len(MUTANTS)} planted bugs"
    if missed:
        names = "; ".join(m.name + (" (the run timed out)" if ev.mutants[m.name].code is None else "")
                          for m in missed)
        advice = "; ".join(dict.fromkeys(m.advice for m in missed))
        raise Incorrect(f"{head}. Missed: {names}. To catch them: {advice}.")
    by = "; ".join(f"{name} (first failing test: {ev.mutants[name].failures[0][0]})"
                   if ev.mutants[name].failures else name for name in caught)
    return f"{head}: {by}."


@criterion("fast_enough", f"Your tests run in under {LIMIT} s on the correct chain.")
def fast_enough(ev: Evidence) -> str:
    """Assert that the tests are quick enough to run on every change, in CI and before a push."""
    run = _require_run(ev)
    if run.seconds >= LIMIT:
        raise Incorrect(f"Your tests took {run.seconds:.0f} s on the correct chain; expected under "
                        f"{LIMIT} s. Test against the empty database the fixtures give you and insert "
                        "only the few rows a test needs.")
    return f"They took {run.seconds:.1f} s on the correct chain."


@criterion("own_test", "Advisory: at least one test of your own beyond pytest-alembic's built-ins.",
           required=False)
def own_test(ev: Evidence) -> str:
    """Assert that the suite checks something the generic built-ins cannot: this project's data."""
    run = _require_run(ev)
    built_in = built_in_names()
    own = sorted({name.split("[")[0] for name, _, _ in run.tests} - built_in)
    if not own:
        raise Incorrect("Every test in the file is one of pytest-alembic's built-ins; expected at least "
                        "one of your own, for example a schema round trip of each revision.")
    return f"Your own tests: {', '.join(own)}."


CRITERIA = [passes_on_correct, catches_planted_bugs, fast_enough, own_test]
