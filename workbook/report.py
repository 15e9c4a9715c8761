"""Showing a Report: plain text for the terminal, HTML for JupyterLab, JSON for tools.

Nothing here judges; it only displays what workbook.checks decided.
"""
from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING

from workbook.status import ERROR, FAILED, NOT_ATTEMPTED, PASSED

if TYPE_CHECKING:
    from workbook.checks.base import Report

MARK = {PASSED: "✓", FAILED: "✗", NOT_ATTEMPTED: "·", ERROR: "!"}
HEADLINE = {
    PASSED: "passed: every required criterion holds.",
    FAILED: "not yet: see the criteria marked ✗.",
    NOT_ATTEMPTED: "not attempted yet.",
    ERROR: "the check could not run.",
}
COLOUR = {PASSED: "#1a7f37", FAILED: "#cf222e", NOT_ATTEMPTED: "#6e7781", ERROR: "#9a6700"}


def _messages(report: Report):
    """Each criterion with its message, repeated causes shortened to 'same as above'."""
    previous = None
    for r in report.criteria:
        message = "Same cause as above." if r.message and r.message == previous else r.message
        previous = r.message
        yield r, message


def as_text(report: Report) -> str:
    lines = [f"Exercise {report.exercise} ({report.title}): {HEADLINE[report.status]}"]
    if report.file:
        lines.append(f"  file: {report.file}")
    quiet = report.status == NOT_ATTEMPTED  # one message says it all
    for r, message in _messages(report):
        lines.append(f"  {MARK[r.outcome]} {r.statement}")
        if message and not quiet:
            lines.append(f"      {message}")
    if quiet and report.criteria:
        lines.append(f"  {report.criteria[0].message}")
    return "\n".join(lines)


def _html(text: str) -> str:
    """Escaped text in which `backtick spans` become <code> (escaped first, so nothing leaks in)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def as_html(report: Report) -> str:
    rows = []
    for r, message in _messages(report):
        colour = COLOUR[r.outcome]
        rows.append(
            f"<tr><td style='color:{colour};font-weight:bold;text-align:center'>{MARK[r.outcome]}</td>"
            f"<td style='text-align:left'><b>{_html(r.statement)}</b><br>"
            f"<span style='color:#57606a'>{_html(message)}</span></td></tr>")
    colour = COLOUR[report.status]
    return (f"<div><p style='color:{colour};font-weight:bold'>Exercise {html.escape(report.exercise)} "
            f"({html.escape(report.title)}): {html.escape(HEADLINE[report.status])}</p>"
            f"<table>{''.join(rows)}</table></div>")


def as_dict(report: Report) -> dict:
    return {
        "exercise": report.exercise,
        "passed": report.passed,
        "status": report.status,
        "criteria": [{"id": r.id, "statement": r.statement, "required": r.required,
                      "outcome": r.outcome, "message": r.message} for r in report.criteria],
    }


def as_json(report: Report) -> str:
    return json.dumps(as_dict(report), ensure_ascii=False)
