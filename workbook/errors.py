"""Errors a learner reads: one or two sentences, what was found, what was expected, what to do."""


class WorkbookError(Exception):
    """A problem the workbook explains in plain words instead of a traceback."""
