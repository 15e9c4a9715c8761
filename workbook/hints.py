"""Progressive hints: each call shows one more, and the workbook remembers how far you got."""
from __future__ import annotations

import json

from workbook import manifest
from workbook.config import settings


def _log_path():
    return settings().data_dir / "hints.json"


def _seen() -> dict[str, int]:
    try:
        return json.loads(_log_path().read_text())
    except (OSError, ValueError):
        return {}


def hint(name: str, number: int | None = None) -> str:
    """Hint `number` of an exercise, or the next one not yet shown.

    Asking for a number is a peek: only the plain request moves the remembered place on.
    """
    ex = manifest.get(name)
    seen = _seen()
    note = ""
    peek = number is not None
    if peek:
        asked = int(number)
        number = max(1, min(asked, len(ex.hints)))
        if number != asked:
            note = f"(There are {len(ex.hints)} hints for exercise {ex.number}; here is hint {number}.)\n"
    else:
        number = min(seen.get(ex.id, 0) + 1, len(ex.hints))
        seen[ex.id] = number
        path = _log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(seen, indent=1))
    if number == len(ex.hints):
        more = " (that was the last one)"
    elif peek:  # a peek does not move the remembered place, so "run it again" would repeat it
        more = f" (ask for hint {number + 1} to see the next one)"
    else:
        more = f" (run it again for hint {number + 1} of {len(ex.hints)})"
    return f"{note}Hint {number} of {len(ex.hints)} for exercise {ex.number}{more}:\n{ex.hints[number - 1]}"
