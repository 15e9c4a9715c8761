"""Whether a revision file is still the untouched stub. Reads the file's syntax only, so `workbook
progress` can tell a stub without importing the database code (half a second a process)."""
from __future__ import annotations

import ast
from pathlib import Path


def is_stub(path: Path) -> bool:
    """True when upgrade() and downgrade() still do nothing (only pass, docstrings, comments)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bodies = [node.body for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name in ("upgrade", "downgrade")]
    return bool(bodies) and all(
        all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
            for s in body)
        for body in bodies)
