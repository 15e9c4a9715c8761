"""A small simulated application, for checks that must prove a migration keeps it running.

One App is one running instance of one version of the application code: a thread with its own
connection that loops over INSERT, UPDATE and SELECT by id against `finding`, naming the text
column as its version does (the old code says title, the new one summary). It counts its errors,
remembers the last value it wrote to each row, and times every statement, so a check can judge
errors, lost writes and waits from what the application itself saw.

Deterministic (the order of operations and the values follow from the name) and bounded (a
statement_timeout on every statement, at most `limit` operations, a stop() that joins).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psycopg

STATEMENT_TIMEOUT_MS = 20_000  # a bound, far above any wait a safe migration causes
SPREAD = 1003  # about this many existing rows per run: one id in 997 of a million, a prime stride


def spread(top: int) -> list[int]:
    """About SPREAD ids spread evenly over 1..top (the table's max(id)), for the applications to use.

    Derived from the data, not from the default size: at any WORKBOOK_SCALE every id exists, and
    every batch of a backfill meets some of them. At most one row in ten, so that on a small table
    most rows are still written by the migration alone. Not the first row: checks.statement_log's
    writer keeps an UPDATE of min(id) open while a statement runs, and would hold them up.
    """
    stride = max(10, top // SPREAD)
    return list(range(1 + stride // 2, top + 1, stride))


@dataclass
class Op:
    at: float  # seconds since the App's clock started (time.monotonic() at `clock`)
    seconds: float
    ok: bool
    kind: str


@dataclass(eq=False)
class App:
    conninfo: str
    name: str  # "old" or "new": also the prefix of every value it writes
    column: str  # the column this version of the code reads and writes
    ids: list[int]  # existing rows it updates and reads, in order
    clock: float = field(default_factory=time.monotonic)
    tag: str = ""  # told apart from another run's values: a new run writes new values
    pause: float = 0.002  # between operations: a busy application, not a benchmark
    limit: int = 100_000
    errors: int = 0
    timeouts: int = 0
    first_error: str | None = None
    busy: str | None = None  # the server's words when it, not the revision, stopped a statement
    written: dict[int, str] = field(default_factory=dict)  # id -> last value committed
    ops: list[Op] = field(default_factory=list)

    def __post_init__(self):
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"app-{self.name}", daemon=True)

    def start(self) -> "App":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._halt.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, application_name=f"wb_app_{self.name}",
                                   options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
        except psycopg.Error as exc:
            self._failed(exc)
            return
        with conn:
            n = 0
            while not self._halt.is_set() and n < self.limit:
                self._one(conn, n)
                n += 1
                time.sleep(self.pause)

    def _one(self, conn, n: int) -> None:
        col, value = self.column, "-".join(filter(None, (self.name, self.tag, str(n))))
        row = self.ids[n % len(self.ids)]
        kind = ("insert", "update", "select")[n % 3]
        began = time.monotonic()
        try:
            if kind == "insert":
                # The old code inserts a finding naming its text column as it knows it, on the asset
                # of an existing finding: one that exists at any scale (asset 1 may not, at 0.01).
                new_id = conn.execute(
                    f"INSERT INTO finding ({col}, severity, asset_id) VALUES (%s, 'low', coalesce("
                    "(SELECT asset_id FROM finding WHERE id = %s), (SELECT min(asset_id) FROM finding))) "
                    "RETURNING id", (value, row)).fetchone()[0]
                self.written[new_id] = value
            elif kind == "update":
                conn.execute(f"UPDATE finding SET {col} = %s WHERE id = %s", (value, row))
                self.written[row] = value
            else:
                conn.execute(f"SELECT {col} FROM finding WHERE id = %s", (row,)).fetchone()
            ok = True
        except psycopg.Error as exc:
            self._failed(exc)
            ok = False
            if conn.broken:
                self._halt.set()
        self.ops.append(Op(began - self.clock, time.monotonic() - began, ok, kind))

    def _failed(self, exc: BaseException) -> None:
        from workbook.checks.base import first_line, server_trouble

        if server_trouble(exc):  # too many connections, a shutdown, a lost connection: no error of the deploy's
            self.busy = self.busy or first_line(exc)
            return
        if "statement timeout" in first_line(exc):
            # A wait the statement_timeout ended: how long depends on the machine and the scale. The
            # checks judge the lock the migration held, from pg_locks, never this clock.
            self.timeouts += 1
            return
        self.errors += 1
        if self.first_error is None:
            self.first_error = first_line(exc)

    def result(self) -> dict:
        """What this instance saw, as plain data (a check's evidence crosses a process boundary)."""
        return {"name": self.name, "errors": self.errors, "timeouts": self.timeouts,
                "first_error": self.first_error, "busy": self.busy,
                "ops": [(op.at, op.seconds, op.ok, op.kind) for op in self.ops]}


def worst(result: dict, start: float = 0.0, end: float = float("inf")) -> float:
    """The longest an operation of `result` that began between start and end took, in seconds."""
    return max((seconds for at, seconds, _, _ in result["ops"] if start <= at < end), default=0.0)
