"""Errors a learner reads: one or two sentences, what was found, what was expected, what to do."""


class WorkbookError(Exception):
    """A problem the workbook explains in plain words instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it in a notebook: the sentence alone, no traceback."""
        return [f"\x1b[1;31m{self}\x1b[0m"]
