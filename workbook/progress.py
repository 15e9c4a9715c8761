"""Showing what a long check is doing while it runs: one line that changes, then disappears.

The checks announce their phases through workbook.checks.base.phase(); this only displays them.
Nothing shows during the first second, so quick checks stay quiet, and nothing shows where no
one watches (stderr not a terminal), so piped and --json output stay clean. In a notebook the
line is an output of the running cell, updated in place and emptied when the verdict arrives.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time

QUIET_FOR = 1.0  # seconds before anything is shown


class Line:
    """Redraws "what: phase (N s)" every half second on a background thread."""

    def __init__(self, what: str, draw):
        self.what, self.draw = what, draw
        self.text, self.start, self.shown = "starting", time.monotonic(), False
        self.done = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)

    def hear(self, text: str, learner: bool) -> None:
        self.text = text

    def _tick(self) -> None:
        while not self.done.wait(0.5):
            elapsed = time.monotonic() - self.start
            if elapsed >= QUIET_FOR:
                self.draw(f"… {self.what}: {self.text} ({elapsed:.0f} s)")
                self.shown = True

    def __enter__(self):
        self.ticker.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.ticker.join()
        if self.shown:
            self.draw("")  # the verdict comes next, without this line above it


def _terminal(text: str) -> None:
    sys.stderr.write("\r\033[K" + ("  " + text)[:110] if text else "\r\033[K")
    sys.stderr.flush()


class _Cell:
    """One output of the running notebook cell, created on first use and updated in place."""

    def __init__(self):
        self.handle = None

    def __call__(self, text: str) -> None:
        import html

        from IPython.display import HTML, display

        shown = HTML(f"<div style='color:#6e7781'>{html.escape(text)}</div>" if text else "")
        if self.handle is None:
            self.handle = display(shown, display_id=True)
        else:
            self.handle.update(shown)


def here() -> str:
    """Where a display goes from this process: the running notebook cell, or the terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return "terminal"
    return "notebook" if get_ipython() is not None else "terminal"


@contextlib.contextmanager
def shown(what: str, where: str = "terminal"):
    """Display the phases of the checks run in this block; where: terminal, notebook or none."""
    from workbook.checks import base

    if where == "terminal" and not sys.stderr.isatty():
        where = "none"
    if where == "none" or base._listener is not None:  # inside another shown(): its one line says it
        yield
        return
    line = Line(what, _terminal if where == "terminal" else _Cell())
    with line, base.listening(line.hear):
        yield
